package soak

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Growth bounds a metric that should stay level under a steady load. Over
// the samples after the warm-up, a least-squares line is fitted; its rise
// across that window (slope × window) may be at most
//
//	Abs + Rel × level + PerHour × window in hours
//
// where level is the line's value at the end of the warm-up. Abs and Rel
// absorb what a short run cannot tell from a leak (a heap still finding its
// size, viewers joining and leaving), PerHour is the drift allowed over a
// long run: a real leak grows with time and crosses it.
type Growth struct {
	Name    string
	Unit    string  // for the report: the values are divided by Scale
	Scale   float64 // 0: 1
	Value   func(*Sample) float64
	Abs     float64
	Rel     float64
	PerHour float64
}

// Limits are what a soak must stay within after its warm-up.
type Limits struct {
	Growth []Growth
	// EventP95 bounds the event latency's 95th percentile of every
	// interval; EventP50 the median interval's 50th percentile. SentP95 and
	// SentP50 bound the same measured from the moment a report was sent.
	EventP95, EventP50 time.Duration
	SentP95, SentP50   time.Duration
	// IncidentBytesPerReport bounds how much the incident tables
	// (incidents, incident_events) grow per report filed;
	// DBBytesPerReport the whole database per report (everything the
	// load writes: footage index, viewings, audit, tags, exports).
	IncidentBytesPerReport, DBBytesPerReport float64
	// RecordingDrift bounds how far the footage written per second in the
	// second half of the run may stray from the first half (0.25: ±25%).
	RecordingDrift float64
	// Cameras is how many cameras must have written footage in the last
	// 30 s at every sample after the warm-up.
	Cameras int64
	// IndexSlack bounds the difference between the bytes on disk and the
	// bytes the footage index holds: IndexSlackBytes + IndexSlack × disk.
	IndexSlack      float64
	IndexSlackBytes float64
	// ErrorRate bounds the share of failed requests of each kind of load
	// (reports, viewer joins, previews, exports, tag edits); MissedEvents
	// the reports acknowledged whose event never came.
	ErrorRate    float64
	MissedEvents int64
}

const mib = 1 << 20

// DefaultLimits are the bounds `make soak` holds the service to, chosen
// for a loaded 2-core machine (see the package doc for why each).
func DefaultLimits(cameras int64) Limits {
	return Limits{
		Growth: []Growth{
			{Name: "rss", Unit: "MiB", Scale: mib, Value: func(s *Sample) float64 { return float64(s.RSS) },
				Abs: 48 * mib, Rel: 0.10, PerHour: 32 * mib},
			{Name: "heap_inuse", Unit: "MiB", Scale: mib, Value: func(s *Sample) float64 { return float64(s.HeapInuse) },
				Abs: 24 * mib, Rel: 0.15, PerHour: 16 * mib},
			{Name: "goroutines", Value: func(s *Sample) float64 { return float64(s.Goroutines) },
				Abs: 60, Rel: 0.05, PerHour: 30},
			{Name: "open_fds", Value: func(s *Sample) float64 { return float64(s.FDs) },
				Abs: 20, Rel: 0.05, PerHour: 10},
			{Name: "threads", Value: func(s *Sample) float64 { return float64(s.Threads) },
				Abs: 8, Rel: 0.25, PerHour: 4},
			{Name: "pg_connections", Value: func(s *Sample) float64 { return float64(s.PGConns) },
				Abs: 3, PerHour: 1},
			{Name: "events_table", Unit: "MiB", Scale: mib, Value: func(s *Sample) float64 { return float64(s.Events) },
				Abs: 8 * mib, Rel: 0.5, PerHour: 16 * mib},
		},
		EventP95:               time.Second,
		EventP50:               250 * time.Millisecond,
		SentP95:                1500 * time.Millisecond,
		SentP50:                300 * time.Millisecond,
		IncidentBytesPerReport: 8 << 10,
		DBBytesPerReport:       24 << 10,
		RecordingDrift:         0.25,
		Cameras:                cameras,
		IndexSlack:             0.05,
		IndexSlackBytes:        16 * mib,
		ErrorRate:              0.01,
		MissedEvents:           0,
	}
}

// Result is one check of a soak: what was measured against what bound.
type Result struct {
	Name   string
	OK     bool
	Detail string
	// For growth checks: the values at the end of the warm-up and at the
	// end (fitted), the slope per hour, the rise and what was allowed, in
	// Unit.
	Growth                                  bool
	Unit                                    string
	Start, End, PerHour, Rise, Allowed, Max float64
}

// Failed reports whether any result failed.
func Failed(rs []Result) bool {
	return slices.ContainsFunc(rs, func(r Result) bool { return !r.OK })
}

// fit returns the least-squares line y = a + b·x through the points.
func fit(x, y []float64) (a, b float64) {
	n := float64(len(x))
	if n == 0 {
		return 0, 0
	}
	var sx, sy float64
	for i := range x {
		sx += x[i]
		sy += y[i]
	}
	mx, my := sx/n, sy/n
	var sxy, sxx float64
	for i := range x {
		sxy += (x[i] - mx) * (y[i] - my)
		sxx += (x[i] - mx) * (x[i] - mx)
	}
	if sxx == 0 {
		return my, 0
	}
	b = sxy / sxx
	return my - b*mx, b
}

// Check holds the samples taken after warmup to the limits.
func Check(samples []Sample, warmup time.Duration, l Limits) []Result {
	var after []Sample
	for _, s := range samples {
		if s.Elapsed >= warmup {
			after = append(after, s)
		}
	}
	if len(after) < 3 {
		return []Result{{Name: "samples", Detail: fmt.Sprintf("%d samples after the warm-up of %s: at least 3 are needed", len(after), warmup)}}
	}
	var rs []Result
	x := make([]float64, len(after))
	for i, s := range after {
		x[i] = s.Elapsed.Hours()
	}
	window := x[len(x)-1] - x[0]
	for _, g := range l.Growth {
		rs = append(rs, checkGrowth(g, after, x, window))
	}
	rs = append(rs, checkLatency(after, l)...)
	rs = append(rs, checkTables(after, l)...)
	rs = append(rs, checkRecording(after, l)...)
	rs = append(rs, checkErrors(after, l)...)
	// An event missed during the warm-up is missed all the same.
	var missed int64
	for _, s := range samples {
		missed += s.EventsMissed
	}
	rs = append(rs, Result{Name: "events_missed", OK: missed <= l.MissedEvents,
		Detail: fmt.Sprintf("%d acknowledged reports without their event within 30 s, bound %d", missed, l.MissedEvents)})
	return rs
}

func checkGrowth(g Growth, after []Sample, x []float64, window float64) Result {
	scale := g.Scale
	if scale == 0 {
		scale = 1
	}
	y := make([]float64, len(after))
	peak := math.Inf(-1)
	for i := range after {
		y[i] = g.Value(&after[i])
		peak = max(peak, y[i])
	}
	a, b := fit(x, y)
	level := a + b*x[0]
	rise := b * window
	allowed := g.Abs + g.Rel*max(level, 0) + g.PerHour*window
	r := Result{Name: g.Name, Growth: true, Unit: g.Unit, OK: rise <= allowed,
		Start: level / scale, End: (a + b*x[len(x)-1]) / scale, PerHour: b / scale,
		Rise: rise / scale, Allowed: allowed / scale, Max: peak / scale}
	r.Detail = fmt.Sprintf("fitted rise %.1f %s over %s (%+.1f %s/h), allowed %.1f", r.Rise, g.Unit,
		(time.Duration(window * float64(time.Hour))).Round(time.Second), r.PerHour, g.Unit, r.Allowed)
	return r
}

func checkLatency(after []Sample, l Limits) []Result {
	var n int64
	for _, s := range after {
		n += s.EventN
	}
	if n == 0 {
		return []Result{{Name: "event_latency", Detail: "no events arrived after the warm-up"}}
	}
	var rs []Result
	for _, m := range []struct {
		name     string
		p50, p95 func(*Sample) time.Duration
		b50, b95 time.Duration
	}{
		{"event_latency", func(s *Sample) time.Duration { return s.EventP50 }, func(s *Sample) time.Duration { return s.EventP95 }, l.EventP50, l.EventP95},
		{"event_latency_from_send", func(s *Sample) time.Duration { return s.SentP50 }, func(s *Sample) time.Duration { return s.SentP95 }, l.SentP50, l.SentP95},
	} {
		var p50s []time.Duration
		var worst, worstAt time.Duration
		for i := range after {
			s := &after[i]
			if s.EventN == 0 {
				continue
			}
			p50s = append(p50s, m.p50(s))
			if m.p95(s) > worst {
				worst, worstAt = m.p95(s), s.Elapsed
			}
		}
		slices.Sort(p50s)
		med := p50s[len(p50s)/2]
		rs = append(rs,
			Result{Name: m.name + "_p95", OK: worst <= m.b95,
				Detail: fmt.Sprintf("worst interval's p95 %s (at %s), bound %s; %d events", worst.Round(time.Millisecond), worstAt.Round(time.Second), m.b95, n)},
			Result{Name: m.name + "_p50", OK: med <= m.b50,
				Detail: fmt.Sprintf("median interval's p50 %s, bound %s", med.Round(time.Millisecond), m.b50)})
	}
	return rs
}

func checkTables(after []Sample, l Limits) []Result {
	first, last := after[0], after[len(after)-1]
	var reports int64
	for _, s := range after[1:] {
		reports += s.Reports
	}
	if reports == 0 {
		return []Result{{Name: "table_growth", Detail: "no reports filed after the warm-up"}}
	}
	inc := float64(last.Incidents+last.IncidentEvents-first.Incidents-first.IncidentEvents) / float64(reports)
	db := float64(last.DBBytes-first.DBBytes) / float64(reports)
	return []Result{
		{Name: "incident_tables_per_report", OK: inc <= l.IncidentBytesPerReport,
			Detail: fmt.Sprintf("%.0f bytes per report over %d reports, bound %.0f", inc, reports, l.IncidentBytesPerReport)},
		{Name: "database_per_report", OK: db <= l.DBBytesPerReport,
			Detail: fmt.Sprintf("%.0f bytes per report (all tables), bound %.0f", db, l.DBBytesPerReport)},
	}
}

func checkRecording(after []Sample, l Limits) []Result {
	var rs []Result
	// The rate of each half is the slope of a least-squares line through
	// its samples: fragments land in one interval or the next, the line
	// evens that out.
	rate := func(part []Sample) float64 {
		x, y := make([]float64, len(part)), make([]float64, len(part))
		for i, s := range part {
			x[i], y[i] = s.Elapsed.Seconds(), float64(s.RecordingBytes)
		}
		_, b := fit(x, y)
		return b
	}
	if half := len(after) / 2; half >= 3 {
		early, late := rate(after[:half]), rate(after[len(after)-half:])
		drift := math.Inf(1)
		if early > 0 {
			drift = late/early - 1
		}
		rs = append(rs, Result{Name: "recording_rate", OK: early > 0 && math.Abs(drift) <= l.RecordingDrift,
			Detail: fmt.Sprintf("footage written %.0f kB/s in the first half, %.0f kB/s in the second (%+.0f%%), bound ±%.0f%%",
				early/1e3, late/1e3, drift*100, l.RecordingDrift*100)})
	}
	least := after[0].RecordingCameras
	for _, s := range after {
		least = min(least, s.RecordingCameras)
	}
	rs = append(rs, Result{Name: "recording_cameras", OK: least >= l.Cameras,
		Detail: fmt.Sprintf("at least %d cameras wrote footage in every sample's last 30 s, want %d", least, l.Cameras)})
	last := after[len(after)-1]
	diff := math.Abs(float64(last.RecordingBytes - last.IndexedBytes))
	slack := l.IndexSlackBytes + l.IndexSlack*float64(last.RecordingBytes)
	rs = append(rs, Result{Name: "recording_index", OK: last.IndexedBytes > 0 && diff <= slack,
		Detail: fmt.Sprintf("%.1f MiB on disk, %.1f MiB indexed: %.1f MiB apart, bound %.1f MiB",
			float64(last.RecordingBytes)/mib, float64(last.IndexedBytes)/mib, diff/mib, slack/mib)})
	return rs
}

func checkErrors(after []Sample, l Limits) []Result {
	var rs []Result
	kind := func(name string, done, failed func(*Sample) int64) {
		var d, f int64
		for i := range after[1:] {
			d += done(&after[i+1])
			f += failed(&after[i+1])
		}
		ok := d+f > 0 && float64(f) <= l.ErrorRate*float64(d+f)
		rs = append(rs, Result{Name: name, OK: ok, Detail: fmt.Sprintf("%d done, %d failed, bound %.1f%% failed and at least one done", d, f, l.ErrorRate*100)})
	}
	kind("reports", func(s *Sample) int64 { return s.Reports }, func(s *Sample) int64 { return s.ReportErrors })
	kind("viewer_joins", func(s *Sample) int64 { return s.Joins }, func(s *Sample) int64 { return s.JoinErrors })
	kind("previews", func(s *Sample) int64 { return s.Previews }, func(s *Sample) int64 { return s.PreviewErrors })
	kind("exports", func(s *Sample) int64 { return s.ExportsDone }, func(s *Sample) int64 { return s.ExportErrors })
	kind("tag_edits", func(s *Sample) int64 { return s.TagEdits }, func(s *Sample) int64 { return s.TagErrors })
	return rs
}
