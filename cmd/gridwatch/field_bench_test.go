package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkFieldFirstLoad loads the field app (/field/) on a phone over a
// throttled network (1.6 Mbit/s down, 750 kbit/s up, 150 ms RTT), signed
// in, until its task list shows: cold (CDP throttling, and a throttling
// proxy that also slows the service worker), and again from the service
// worker's cache; beside the dashboard's cold first load through the same
// proxy, the baseline. Each iteration is one such round in the browser
// (assets/e2e/field.mjs in its bench mode); the metrics are the medians.
func BenchmarkFieldFirstLoad(b *testing.B) {
	chromium := browserReady(b)
	m := startMainWith(b, dataDir(b), true, func(m *Main) { m.DemoTasks = true })
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	runs := max(b.N, 1)
	b.ResetTimer()
	cmd := exec.CommandContext(ctx, "node", "e2e/field.mjs", m.URL(), artifactDir(b))
	cmd.Dir = "../../assets"
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium, "E2E_TIMEOUT_MS=60000", "FIELD_BENCH_RUNS="+strconv.Itoa(runs))
	out, err := cmd.CombinedOutput()
	b.StopTimer()
	if err != nil {
		b.Fatalf("field.mjs bench: %v\n%s", err, out)
	}
	var sum map[string]any
	for line := range strings.SplitSeq(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "FIELD-BENCH-SUMMARY "); ok {
			if err := json.Unmarshal([]byte(rest), &sum); err != nil {
				b.Fatalf("summary %q: %v", rest, err)
			}
		}
	}
	if sum == nil {
		b.Fatalf("no FIELD-BENCH-SUMMARY in:\n%s", out)
	}
	for _, k := range []string{"field_cold_cdp_ms", "field_cold_proxy_ms", "field_warm_proxy_ms", "dashboard_cold_proxy_ms", "field_shell_bytes", "field_precache_bytes", "dashboard_bytes"} {
		v, ok := sum[k].(float64)
		if !ok {
			b.Fatalf("summary lacks %s: %v", k, sum)
		}
		unit := strings.ReplaceAll(strings.TrimSuffix(strings.TrimSuffix(k, "_ms"), "_bytes"), "_", "-")
		if strings.HasSuffix(k, "_ms") {
			unit += "-ms"
		} else {
			unit += "-B"
		}
		b.ReportMetric(v, unit)
	}
	if f, d := sum["field_cold_proxy_ms"].(float64), sum["dashboard_cold_proxy_ms"].(float64); f > 0 {
		b.ReportMetric(d/f, "dashboard/field-cold")
	}
	b.ReportMetric(0, "ns/op")
}
