#!/usr/bin/env bash
# Runs the real-time end-to-end tests STRESS_COUNT times in a row (10 by
# default) while a CPU hog keeps the other core busy, to shake out tests that
# pass only on an idle machine: every test that drives Chromium, the demo's
# video and recording end-to-end tests in cmd/gridwatch, and the camera
# packages that pull, serve and record real RTSP on loopback in real time.
#
# Usage: scripts/stress.sh   (make stress; needs make build first)
#   STRESS_COUNT  runs of each test (10)
#   STRESS_HOGS   busy-loop processes started beside the tests (1: one of two cores)
#   STRESS_LOG    where the verbose test output goes (test-artifacts/stress.log)
# Prints, per test, how many runs passed and failed; exits 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."

count=${STRESS_COUNT:-10}
hogs=${STRESS_HOGS:-1}
log=${STRESS_LOG:-test-artifacts/stress.log}
go=${GO:-go}
# Every test that starts Chromium is named …InBrowser; the demo's video and
# recording tests in cmd/gridwatch are …EndToEnd and …SurvivesKill.
main_run='InBrowser|EndToEnd|SurvivesKill'
# These camera packages' tests all run real RTSP on loopback in real time.
camera_pkgs=(./camera/camsim/ ./camera/live/ ./camera/rtspserve/ ./camera/record/)
case $count in '' | *[!0-9]* | 0) echo "stress: STRESS_COUNT must be a positive number, not \"$count\"" >&2; exit 2 ;; esac
case $hogs in '' | *[!0-9]*) echo "stress: STRESS_HOGS must be a number, not \"$hogs\"" >&2; exit 2 ;; esac

mkdir -p "$(dirname "$log")" test-artifacts
hog_pids=()
stop_hogs() {
	# Only the processes started here, by their ids.
	for p in "${hog_pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${hog_pids[@]}"; do wait "$p" 2>/dev/null; done
	hog_pids=()
}
trap stop_hogs EXIT
trap 'exit 130' INT TERM
for ((i = 0; i < hogs; i++)); do
	# A busy loop in a subshell of its own: one core's worth of load.
	(exec yes >/dev/null) &
	hog_pids+=($!)
done
echo "stress: $count runs each, $hogs CPU hog(s) (pids ${hog_pids[*]:-none}), output in $log"

# A browser test takes a minute or two on a loaded machine: the timeout
# grows with the count (go test's default is 10 min per package).
timeout="$((count * 15 + 10))m"
export GRIDWATCH_REQUIRE_ALL=1
export GRIDWATCH_TEST_ARTIFACTS="$PWD/test-artifacts"
start=$(date +%s)
status=0
(
	"$go" test -race -count="$count" -timeout "$timeout" -v -run "$main_run" ./cmd/gridwatch/ || status=1
	"$go" test -race -count="$count" -timeout "$timeout" -v "${camera_pkgs[@]}" || status=1
	exit $status
) >"$log" 2>&1
status=$?
stop_hogs

# Top-level tests only (subtests are indented): passes and failures per test.
echo "stress: $(( ($(date +%s) - start) / 60 )) min; per test, runs passed/failed:"
grep -E '^--- (PASS|FAIL)' "$log" | awk '{n[$3]++; if ($2 == "PASS:") p[$3]++; else f[$3]++}
	END {for (t in n) printf "  %-40s %3d passed %3d failed\n", t, p[t], f[t]}' | sort
pass=$(grep -cE '^--- PASS' "$log")
fail=$(grep -cE '^--- FAIL' "$log")
echo "stress: $pass passed, $fail failed"
if [ "$pass" -eq 0 ]; then
	echo "stress: no test ran (details in $log)" >&2
	exit 1
fi
if [ "$status" -ne 0 ] || [ "$fail" -ne 0 ]; then
	grep -E '^(--- FAIL|FAIL|panic:)|_test\.go:[0-9]+:|e2e: FAIL' "$log" | head -40 >&2
	echo "stress: FAILED (details in $log)" >&2
	exit 1
fi
echo "stress: ok"
