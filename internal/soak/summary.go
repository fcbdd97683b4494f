package soak

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// panels are the chart's panels: one per metric (latency's two
// percentiles share one).
func panels(samples []Sample) []Panel {
	series := func(name string, scale float64, f func(*Sample) float64) Series {
		v := make([]float64, len(samples))
		for i := range samples {
			v[i] = f(&samples[i]) / scale
		}
		return Series{Name: name, Values: v}
	}
	one := func(title, unit string, scale float64, f func(*Sample) float64) Panel {
		return Panel{Title: title, Unit: unit, Series: []Series{series(title, scale, f)}}
	}
	b := func(f func(*Sample) int64) func(*Sample) float64 {
		return func(s *Sample) float64 { return float64(f(s)) }
	}
	return []Panel{
		one("RSS", "MiB", mib, b(func(s *Sample) int64 { return s.RSS })),
		{Title: "Go heap", Unit: "MiB", Series: []Series{
			series("in use", mib, b(func(s *Sample) int64 { return s.HeapInuse })),
			series("allocated", mib, b(func(s *Sample) int64 { return s.HeapAlloc })),
		}},
		one("goroutines", "count", 1, b(func(s *Sample) int64 { return s.Goroutines })),
		one("open fds", "count", 1, b(func(s *Sample) int64 { return s.FDs })),
		one("threads", "count", 1, b(func(s *Sample) int64 { return s.Threads })),
		one("PostgreSQL connections", "count", 1, b(func(s *Sample) int64 { return s.PGConns })),
		{Title: "event latency", Unit: "ms", Series: []Series{
			series("p50", 1, ms(func(s *Sample) time.Duration { return s.EventP50 })),
			series("p95", 1, ms(func(s *Sample) time.Duration { return s.EventP95 })),
			series("p95 from send", 1, ms(func(s *Sample) time.Duration { return s.SentP95 })),
		}},
		one("database", "MiB", mib, b(func(s *Sample) int64 { return s.DBBytes })),
		{Title: "incident tables", Unit: "MiB", Series: []Series{
			series("incidents", mib, b(func(s *Sample) int64 { return s.Incidents })),
			series("incident_events", mib, b(func(s *Sample) int64 { return s.IncidentEvents })),
		}},
		{Title: "feed and logs", Unit: "MiB", Series: []Series{
			series("events", mib, b(func(s *Sample) int64 { return s.Events })),
			series("audit", mib, b(func(s *Sample) int64 { return s.Audit })),
			series("viewings", mib, b(func(s *Sample) int64 { return s.Viewings })),
		}},
		{Title: "footage tables", Unit: "MiB", Series: []Series{
			series("recordings", mib, b(func(s *Sample) int64 { return s.Recordings })),
			series("footage_tags", mib, b(func(s *Sample) int64 { return s.Tags })),
			series("exports", mib, b(func(s *Sample) int64 { return s.Exports })),
		}},
		{Title: "footage", Unit: "MiB", Series: []Series{
			series("on disk", mib, b(func(s *Sample) int64 { return s.RecordingBytes })),
			series("indexed", mib, b(func(s *Sample) int64 { return s.IndexedBytes })),
		}},
		one("cameras recording", "count", 1, b(func(s *Sample) int64 { return s.RecordingCameras })),
		one("live viewers", "count", 1, b(func(s *Sample) int64 { return s.Viewers })),
		{Title: "load per interval", Unit: "count", Series: []Series{
			series("reports", 1, b(func(s *Sample) int64 { return s.Reports })),
			series("viewer joins", 1, b(func(s *Sample) int64 { return s.Joins })),
			series("failures", 1, b(func(s *Sample) int64 {
				return s.ReportErrors + s.JoinErrors + s.PreviewErrors + s.ExportErrors + s.TagErrors + s.EventsMissed
			})),
		}},
	}
}

// writeOutputs writes samples.csv, samples.svg and summary.md into c.Out.
func writeOutputs(c Config, samples []Sample, results []Result, t totals) error {
	var csvBuf bytes.Buffer
	if err := WriteCSV(&csvBuf, samples); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.Out, "samples.csv"), csvBuf.Bytes(), 0o644); err != nil {
		return err
	}
	ts := make([]float64, len(samples))
	for i, s := range samples {
		ts[i] = s.Elapsed.Seconds()
	}
	title := fmt.Sprintf("gridwatch soak: %d cameras, %d viewers, %.0f reports/s, %s (warm-up %s, dashed)",
		c.Cameras, c.Viewers, c.ReportsPerSecond, c.Duration, c.Warmup)
	var svg bytes.Buffer
	if err := WriteSVG(&svg, title, ts, c.Warmup, panels(samples)); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.Out, "samples.svg"), svg.Bytes(), 0o644); err != nil {
		return err
	}
	var md bytes.Buffer
	writeSummary(&md, c, samples, results, t)
	return os.WriteFile(filepath.Join(c.Out, "summary.md"), md.Bytes(), 0o644)
}

// writeSummary writes the figures and the checks as markdown.
func writeSummary(w io.Writer, c Config, samples []Sample, results []Result, t totals) {
	verdict := "passed"
	if Failed(results) {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "# Soak: %s\n\n", verdict)
	ran := time.Duration(0)
	if len(samples) > 0 {
		ran = samples[len(samples)-1].Elapsed.Round(time.Second)
		fmt.Fprintf(w, "Started %s, ran %s (asked %s), warm-up %s, a sample every %s (%d samples).\n\n",
			samples[0].At.UTC().Format(time.RFC3339), ran, c.Duration, c.Warmup, c.Interval, len(samples))
	}
	fmt.Fprintf(w, "Load: the demo city with %d recording cameras; %d live viewers joining and leaving (half MSE, half RTSP); "+
		"%.0f reports/s; a redraw preview every %s, an export every %s, a tag edit every %s.\n\n",
		c.Cameras, c.Viewers, c.ReportsPerSecond, c.PreviewEvery, c.ExportEvery, c.TagEvery)
	fmt.Fprintf(w, "Done: %d reports (%d failed), %d viewer joins (%d failed), %d pictures to viewers, %d previews (%d failed), "+
		"%d exports (%d failed), %d tag edits (%d failed), %d events missed, %d event stream reconnects.\n\n",
		t.reports, t.reportErrors, t.joins, t.joinErrors, t.pictures, t.previews, t.previewErrors,
		t.exports, t.exportErrors, t.tagEdits, t.tagErrors, t.missed, t.reconnects)
	fmt.Fprintf(w, "## Level metrics (least-squares fit after the warm-up)\n\n")
	fmt.Fprintf(w, "| metric | after warm-up | end | peak | slope per hour | rise | allowed | |\n|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range results {
		if !r.Growth {
			continue
		}
		fmt.Fprintf(w, "| %s (%s) | %.1f | %.1f | %.1f | %+.1f | %+.1f | %.1f | %s |\n",
			r.Name, unitOr(r.Unit), r.Start, r.End, r.Max, r.PerHour, r.Rise, r.Allowed, okText(r.OK))
	}
	fmt.Fprintf(w, "\n## Other checks\n\n| check | result | |\n|---|---|---|\n")
	for _, r := range results {
		if r.Growth {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", r.Name, r.Detail, okText(r.OK))
	}
	fmt.Fprintf(w, "\nFiles: `samples.csv` (every sample), `samples.svg` (a panel per metric), `gridwatch.log`, `camsim.log`.\n")
}

func unitOr(u string) string {
	if u == "" {
		return "count"
	}
	return u
}

func okText(ok bool) string {
	if ok {
		return "ok"
	}
	return "**FAIL**"
}
