# Gridwatch — `make help` lists the targets.
SHELL := /bin/bash
# A failing benchmark must fail make bench, even piped into tee.
.SHELLFLAGS := -o pipefail -c
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GO ?= go
BIN := bin/gridwatch
LDFLAGS := -s -w -X main.version=$(VERSION)
ASSET_SRC := $(shell find assets/src -type f) assets/build.mjs assets/package.json assets/package-lock.json
ARTIFACTS ?= test-artifacts
# make bench-peers: the peers' source snapshots (go2rtc/ and mediamtx/, git
# work trees or git directories) and where the three binaries go.
PEERS_SRC ?= $(abspath $(CURDIR)/../peers)
PEERS_BIN ?= $(CURDIR)/.peers/bin
PEERS_PROFILES := $(CURDIR)/.peers/profiles
# make soak: how long the load runs and where the samples, chart and
# summary go (CI runs 3m; the figures come from 1h).
SOAK_DURATION ?= 1h
SOAK_OUT ?= $(ARTIFACTS)/soak

.PHONY: help deps test-deps assets build run test stress soak reliability bench bench-peers lint fuzz clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

deps: ## install PostgreSQL+PostGIS and Node/npm when missing (Debian/Ubuntu)
	@scripts/install-deps.sh run

test-deps: ## install what the tests need too (Chromium)
	@scripts/install-deps.sh test

assets/node_modules/.stamp: assets/package.json assets/package-lock.json
	cd assets && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

assets/dist/index.html: assets/node_modules/.stamp $(ASSET_SRC)
	cd assets && npm run --silent build

assets: assets/dist/index.html ## build the web dashboard (npm ci + esbuild)

build: assets ## build bin/gridwatch with the version stamped, and check the stamp
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/gridwatch
	@test "$$($(BIN) version)" = "$(VERSION)" || { echo "version stamp mismatch: $$($(BIN) version) != $(VERSION)"; exit 1; }
	@echo "built $(BIN) $(VERSION)"

run: deps build ## build, seed the demo city into ./data and serve it on 127.0.0.1:8080
	$(BIN) demo

test: test-deps build ## run every test (real PostGIS, race detector, headless Chromium)
	@mkdir -p $(ARTIFACTS)
	GRIDWATCH_TEST_ARTIFACTS=$(CURDIR)/$(ARTIFACTS) GRIDWATCH_REQUIRE_ALL=1 $(GO) test -race -count=1 -timeout 45m ./...

stress: test-deps build ## run the browser and real-time video tests STRESS_COUNT (10) times beside a CPU hog; per-test pass counts
	@scripts/stress.sh

soak: deps build ## run bin/gridwatch's demo with 20 recording cameras, 100 viewers joining and leaving, 5 reports/s, redraw previews, exports and tag edits for SOAK_DURATION (1h); sample every 10 s into SOAK_OUT (samples.csv, samples.svg, summary.md); fail on growth after the warm-up (SOAK_FLAGS pass to bin/soak: --interval, --warmup, --viewers, …)
	$(GO) build -trimpath -o bin/soak ./cmd/soak
	bin/soak --gridwatch $(BIN) --duration $(SOAK_DURATION) --out $(SOAK_OUT) $(SOAK_FLAGS)

# make reliability: the fault tests (RELIABILITY.md), by name.
FAULT_TESTS := TestDatabaseRestart|TestSlowDatabase|TestKill|TestResourceLimits|TestOutOf|TestRTSPServerFaults|TestNoKeyframes|TestReconnectStorm|TestTimelineClockJumps|TestResizeMidStream|TestTimestampJumps|TestRecordResize|TestRecordTimestampJumps|TestRecordNoKeyframes|TestRecordClockSteps|TestRecordLockedIndex|TestClockSteps|TestIncidentClockStep

reliability: test-deps build ## run the fault tests alone (the database restarted, slow or locked; kill -9; cameras misbehaving; clock steps; out of fds and connections) and collect their RELIABILITY: figures into $(ARTIFACTS)/reliability.txt (RELIABILITY.md's tables)
	@mkdir -p $(ARTIFACTS)
	GRIDWATCH_TEST_ARTIFACTS=$(CURDIR)/$(ARTIFACTS) GRIDWATCH_REQUIRE_ALL=1 $(GO) test -race -count=1 -v -timeout 30m -run '$(FAULT_TESTS)' \
		./cmd/gridwatch ./camera/pull ./camera/live ./camera/record ./incident ./api | grep -E '^(--- |ok |FAIL)|RELIABILITY:' | tee $(ARTIFACTS)/reliability.txt

bench: test-deps build ## run the benchmarks (figures go into BENCHMARKS.md; the 100k-incident ingest runs 3 times, video fan-out 5 s, the footage index loads 10.5M rows first, ten failovers of a three-node cluster, 1,000 GB/T 28181 devices keeping alive, the field app's first load on a throttled phone network, 1,000,000 residents imported into 10,000 grids)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s $$($(GO) list ./... | grep -v -e /incident$$ -e /camera/live$$ -e /camera/record$$ -e /camera/whep$$ -e /camera/gb28181$$ -e /cmd/gridwatch$$ -e /basedata$$ -e /internal/peerbench$$) | tee bench.txt
	$(GO) test -run '^$$' -bench BulkIngest -benchmem -benchtime 3x ./incident | tee -a bench.txt
	$(GO) test -run '^$$' -bench CreateOne -benchmem -benchtime 2s ./incident | tee -a bench.txt
	$(GO) test -run '^$$' -bench 'FanOut|Transcode' -benchtime 5x ./camera/live | tee -a bench.txt
	$(GO) test -run '^$$' -bench TimeToFirstFrame -benchtime 40x ./camera/live | tee -a bench.txt
	$(GO) test -run '^$$' -bench Latency -benchtime 200x ./camera/live | tee -a bench.txt
	$(GO) test -run '^$$' -bench FirstPicture -benchtime 40x ./camera/whep | tee -a bench.txt
	$(GO) test -run '^$$' -bench 'Export60s' -benchtime 10x ./camera/record | tee -a bench.txt
	$(GO) test -run '^$$' -bench 'Record20' -benchtime 30x ./camera/record | tee -a bench.txt
	$(GO) test -run '^$$' -bench 'Failover|RelayHop' -benchtime 1x -timeout 30m ./cmd/gridwatch | tee -a bench.txt
	$(GO) test -run '^$$' -bench RangeQuery -benchtime 200x -timeout 30m ./camera/record | tee -a bench.txt
	$(GO) test -run '^$$' -bench 'Register1000|LiveGB20|InviteFirstPicture' -benchtime 1x -timeout 20m ./camera/gb28181 | tee -a bench.txt
	$(GO) test -run '^$$' -bench FieldFirstLoad -benchtime 3x -timeout 20m ./cmd/gridwatch | tee -a bench.txt
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s -timeout 30m ./basedata | tee -a bench.txt

bench-peers: test-deps build ## relay the same simulated cameras to the same viewers with go2rtc, MediaMTX and gridwatch, taking turns, measured from /proc: RTSP at 10x50, 10x10 and 100x5, MSE at 10x50 (go2rtc and gridwatch), 3 rounds each, about 30 min (peers built from PEERS_SRC into PEERS_BIN; the table goes into bench-peers.md; PROFILE=1: gridwatch's CPU and heap profiles into .peers/profiles; GRIDWATCH_PEERS_LOADS, _MSE_LOADS, _PROTOCOLS, _SERVERS, _ROUNDS and _WINDOW pass through)
	scripts/build-peers.sh $(PEERS_SRC) $(PEERS_BIN)
ifeq ($(PROFILE),1)
	$(GO) build -trimpath -tags pprof -ldflags '-X main.version=$(VERSION)' -o $(PEERS_BIN)/gridwatch ./cmd/gridwatch
	@mkdir -p $(PEERS_PROFILES)
else
	cp -f $(BIN) $(PEERS_BIN)/gridwatch
endif
	git describe --always --dirty >$(PEERS_BIN)/gridwatch.commit
	GRIDWATCH_PEERS_BIN=$(PEERS_BIN) GRIDWATCH_PEERS_OUT=$(CURDIR)/bench-peers.md $(if $(filter 1,$(PROFILE)),GRIDWATCH_PEERS_PROFILE=$(PEERS_PROFILES)) \
		$(GO) test -run '^$$' -bench Peers -benchtime 1x -timeout 60m ./internal/peerbench | tee bench-peers.txt
	@echo; cat bench-peers.md

lint: ## go vet, gofmt and go mod tidy check
	$(GO) vet ./...
	@out=$$(gofmt -l .); [ -z "$$out" ] || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) mod tidy -diff

fuzz: ## run each fuzz target for a while (FUZZTIME=30s); new finds stay in <pkg>/testdata/fuzz
	@for f in $$(grep -rl --include='*_test.go' --exclude-dir=node_modules 'func Fuzz' .); do d=$$(dirname $$f); \
		for t in $$(grep -ho 'func Fuzz[A-Za-z0-9]*' $$f | cut -d' ' -f2); do \
		$(GO) test ./$$d -run '^$$' -fuzz "^$$t$$" -fuzztime $${FUZZTIME:-30s} || exit 1; done; done

clean: ## remove build output (not ./data)
	rm -rf bin assets/dist/* assets/.dist-build-* assets/.dist-old-* $(ARTIFACTS)
