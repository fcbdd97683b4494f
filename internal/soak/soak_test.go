package soak

import (
	"bytes"
	"encoding/csv"
	"encoding/xml"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// steady makes n samples 10 s apart of a service that holds level under a
// steady load (with a little noise), with edit applied to each.
func steady(n int, edit func(i int, s *Sample)) []Sample {
	t0 := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	out := make([]Sample, n)
	for i := range out {
		wobble := int64(i%3) - 1 // -1, 0, 1
		s := Sample{
			At: t0.Add(time.Duration(i) * 10 * time.Second), Elapsed: time.Duration(i) * 10 * time.Second,
			RSS: 200*mib + wobble*4*mib, HeapAlloc: 40 * mib, HeapInuse: 60*mib + wobble*3*mib,
			Goroutines: 800 + wobble*10, Threads: 14, FDs: 200 + wobble*2, PGConns: 5,
			DBBytes: 80*mib + int64(i)*50_000, Incidents: 10*mib + int64(i)*40_000, IncidentEvents: 20 * mib, Events: mib,
			RecordingBytes: int64(i) * 12_500_000, IndexedBytes: int64(i)*12_500_000 - 1_000_000, RecordingCameras: 20,
			EventP50: 2 * time.Millisecond, EventP95: 20 * time.Millisecond, SentP50: 5 * time.Millisecond, SentP95: 40 * time.Millisecond,
			EventN: 50, Reports: 50, Viewers: 100, Joins: 30, Pictures: 25_000,
			Previews: 1, ExportsDone: 1, TagEdits: 2,
		}
		if edit != nil {
			edit(i, &s)
		}
		out[i] = s
	}
	return out
}

func failedNames(rs []Result) []string {
	var names []string
	for _, r := range rs {
		if !r.OK {
			names = append(names, r.Name)
		}
	}
	return names
}

func TestCheck(t *testing.T) {
	warm := 60 * time.Second
	for _, tc := range []struct {
		name    string
		samples []Sample
		fail    []string // the checks that must fail, exactly
	}{
		{"steady", steady(30, nil), nil},
		{"grows only during the warm-up", steady(30, func(i int, s *Sample) {
			if i < 6 {
				s.RSS = int64(i) * 30 * mib
				s.Goroutines = int64(i) * 130
			}
		}), nil},
		{"rss leaks", steady(30, func(i int, s *Sample) { s.RSS += int64(i) * 4 * mib }), []string{"rss"}},
		{"a goroutine per join left behind", steady(30, func(i int, s *Sample) { s.Goroutines += int64(i) * 6 }), []string{"goroutines"}},
		{"descriptors leak", steady(30, func(i int, s *Sample) { s.FDs += int64(i) * 2 }), []string{"open_fds"}},
		{"connections pile up", steady(30, func(i int, s *Sample) { s.PGConns += int64(i / 5) }), []string{"pg_connections"}},
		{"one slow interval", steady(30, func(i int, s *Sample) {
			if i == 20 {
				s.EventP95, s.SentP95 = 3*time.Second, 3*time.Second
			}
		}), []string{"event_latency_p95", "event_latency_from_send_p95"}},
		{"slow throughout", steady(30, func(i int, s *Sample) { s.SentP50 = 400 * time.Millisecond }), []string{"event_latency_from_send_p50"}},
		{"incident rows bloat", steady(30, func(i int, s *Sample) { s.Incidents = int64(i) * 500_000 }),
			[]string{"incident_tables_per_report"}},
		{"footage stalls", steady(30, func(i int, s *Sample) {
			if i > 20 {
				s.RecordingBytes, s.IndexedBytes = 20*12_500_000, 20*12_500_000
			}
		}), []string{"recording_rate"}},
		{"a camera stops", steady(30, func(i int, s *Sample) {
			if i == 25 {
				s.RecordingCameras = 19
			}
		}), []string{"recording_cameras"}},
		{"index behind the disk", steady(30, func(i int, s *Sample) { s.IndexedBytes = s.RecordingBytes / 2 }), []string{"recording_index"}},
		{"reports fail", steady(30, func(i int, s *Sample) { s.ReportErrors = 1 }), []string{"reports"}},
		{"no exports", steady(30, func(i int, s *Sample) { s.ExportsDone = 0 }), []string{"exports"}},
		{"an event missed in the warm-up", steady(30, func(i int, s *Sample) {
			if i == 1 {
				s.EventsMissed = 1
			}
		}), []string{"events_missed"}},
		{"too short", steady(7, nil), []string{"samples"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := Check(tc.samples, warm, DefaultLimits(20))
			got := failedNames(rs)
			if strings.Join(got, ",") != strings.Join(tc.fail, ",") {
				for _, r := range rs {
					t.Logf("%v %s: %s", r.OK, r.Name, r.Detail)
				}
				t.Errorf("failed %v, want %v", got, tc.fail)
			}
			if Failed(rs) != (len(tc.fail) > 0) {
				t.Errorf("Failed = %v, want %v", Failed(rs), len(tc.fail) > 0)
			}
		})
	}
}

func TestCheckGrowthFigures(t *testing.T) {
	// RSS rising 1 MiB a sample (10 s): 360 MiB an hour, over the 4
	// samples after the warm-up 3 MiB.
	samples := steady(10, func(i int, s *Sample) { s.RSS = 100*mib + int64(i)*mib })
	var r Result
	for _, x := range Check(samples, 60*time.Second, DefaultLimits(20)) {
		if x.Name == "rss" {
			r = x
		}
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"start", r.Start, 106}, {"end", r.End, 109}, {"per hour", r.PerHour, 360}, {"rise", r.Rise, 3},
		{"allowed", r.Allowed, 48 + 0.1*106 + 32*30.0/3600}, {"max", r.Max, 109},
	} {
		if math.Abs(c.got-c.want) > 1e-6 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestFit(t *testing.T) {
	a, b := fit([]float64{0, 1, 2, 3}, []float64{5, 7, 9, 11})
	if a != 5 || b != 2 {
		t.Errorf("fit = %v + %v·x, want 5 + 2·x", a, b)
	}
	a, b = fit([]float64{1, 1}, []float64{3, 5})
	if a != 4 || b != 0 {
		t.Errorf("fit of one x = %v + %v·x, want the mean 4 and no slope", a, b)
	}
}

func TestQuantile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	if got := quantile(d, 0.95); got != 95*time.Millisecond {
		t.Errorf("p95 of 1..100 ms = %s, want 95ms", got)
	}
	if got := quantile(d, 0.5); got != 50*time.Millisecond {
		t.Errorf("p50 of 1..100 ms = %s, want 50ms", got)
	}
	if got := quantile(d[:1], 0.95); got != time.Millisecond {
		t.Errorf("p95 of one = %s, want 1ms", got)
	}
	if got := quantile(nil, 0.95); got != 0 {
		t.Errorf("p95 of none = %s, want 0", got)
	}
}

func TestWriteCSV(t *testing.T) {
	samples := steady(2, func(i int, s *Sample) { s.EventP95 = 12500 * time.Microsecond })
	var b bytes.Buffer
	if err := WriteCSV(&b, samples); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows, want a header and 2", len(rows))
	}
	head := map[string]int{}
	for i, h := range rows[0] {
		head[h] = i
	}
	if len(head) != 2+len(columns) {
		t.Errorf("%d distinct columns, want %d", len(head), 2+len(columns))
	}
	for _, c := range []struct {
		col  string
		row  int
		want string
	}{
		{"t_s", 2, "10.0"}, {"at", 1, "2026-12-07T03:00:00Z"}, {"rss_bytes", 1, strconv.Itoa(196 * mib)},
		{"rss_bytes", 2, strconv.Itoa(200 * mib)}, {"goroutines", 2, "800"}, {"event_p95_ms", 1, "12.5"},
		{"recording_bytes", 2, "12500000"}, {"viewers", 1, "100"},
	} {
		i, ok := head[c.col]
		if !ok {
			t.Errorf("no column %s", c.col)
			continue
		}
		if got := rows[c.row][i]; got != c.want {
			t.Errorf("row %d %s = %q, want %q", c.row, c.col, got, c.want)
		}
	}
}

// polyline is a drawn line of the chart.
type polyline struct {
	name string
	pts  [][2]float64
}

// readSVG parses the chart as XML and returns its panels' lines, in
// order, and how many panels and warm-up markers it has.
func readSVG(t *testing.T, r io.Reader) (lines []polyline, panels, warm int) {
	t.Helper()
	dec := xml.NewDecoder(r)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return lines, panels, warm
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v", err)
		}
		el, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		attr := map[string]string{}
		for _, a := range el.Attr {
			attr[a.Name.Local] = a.Value
		}
		switch {
		case el.Name.Local == "g" && attr["class"] == "panel":
			panels++
		case el.Name.Local == "line" && attr["class"] == "warmup":
			warm++
		case el.Name.Local == "polyline":
			p := polyline{name: attr["data-name"]}
			for xy := range strings.FieldsSeq(attr["points"]) {
				xs, ys, _ := strings.Cut(xy, ",")
				x, err1 := strconv.ParseFloat(xs, 64)
				y, err2 := strconv.ParseFloat(ys, 64)
				if err1 != nil || err2 != nil {
					t.Fatalf("polyline %s: bad point %q", p.name, xy)
				}
				p.pts = append(p.pts, [2]float64{x, y})
			}
			lines = append(lines, p)
		}
	}
}

func TestWriteSVG(t *testing.T) {
	ts := []float64{0, 10, 20, 30, 40}
	ps := []Panel{
		{Title: "flat", Unit: "MiB", Series: []Series{{Name: "flat", Values: []float64{50, 50, 50, 50, 50}}}},
		{Title: "rising", Unit: "count", Series: []Series{
			{Name: "a", Values: []float64{0, 1, 2, 3, 4}},
			{Name: "b <&>", Values: []float64{4, 3, 2, 1, math.NaN()}},
		}},
		{Title: "fourth row", Unit: "ms", Series: []Series{{Name: "x", Values: []float64{1, 2, 3, 4, 5}}}},
		{Title: "p", Unit: "ms", Series: []Series{{Name: "y", Values: []float64{1, 2, 3, 4, 5}}}},
	}
	var b bytes.Buffer
	if err := WriteSVG(&b, `soak "test" <1h>`, ts, 15*time.Second, ps); err != nil {
		t.Fatal(err)
	}
	lines, panels, warm := readSVG(t, &b)
	if panels != len(ps) || warm != len(ps) {
		t.Errorf("%d panels and %d warm-up marks, want %d of each", panels, warm, len(ps))
	}
	if len(lines) != 5 {
		t.Fatalf("%d lines, want 5", len(lines))
	}
	flat := lines[0]
	if len(flat.pts) != 5 {
		t.Fatalf("flat line: %d points, want 5", len(flat.pts))
	}
	for _, p := range flat.pts {
		if p[1] != flat.pts[0][1] {
			t.Errorf("flat line: y %v and %v, want one height", p[1], flat.pts[0][1])
		}
	}
	// Time runs left to right across the plot area, the last sample at its
	// right edge.
	if flat.pts[0][0] != plotL || flat.pts[4][0] != panelW-plotR {
		t.Errorf("flat line runs from x %v to %v, want %d to %d", flat.pts[0][0], flat.pts[4][0], plotL, panelW-plotR)
	}
	// A rising series goes up the page (y falls), from the bottom (0).
	a := lines[1]
	if a.pts[0][1] != 30+plotT+panelH-plotT-plotB || a.pts[4][1] >= a.pts[0][1] {
		t.Errorf("rising line: y from %v to %v, want from the plot's bottom %d upwards", a.pts[0][1], a.pts[4][1], 30+panelH-plotB)
	}
	if lines[2].name != "b <&>" || len(lines[2].pts) != 4 {
		t.Errorf("second series: %q with %d points, want its name escaped and the NaN left out", lines[2].name, len(lines[2].pts))
	}
	// The fourth panel starts a second row.
	if got := lines[4].pts[0]; got[0] != plotL || got[1] <= float64(30+panelH) {
		t.Errorf("fourth panel starts at %v, want the second row's left", got)
	}
}

func TestParseMetrics(t *testing.T) {
	page := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines{node="vm"} 328
go_memstats_heap_inuse_bytes 1.183744e+07
gridwatch_camera_bitrate{camera="1"} 500
gridwatch_camera_bitrate{camera="2",note="a } in a label"} 700
go_goroutines_total 5
`
	m, err := parseMetrics(strings.NewReader(page), "go_goroutines", "go_memstats_heap_inuse_bytes", "gridwatch_camera_bitrate")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"go_goroutines": 328, "go_memstats_heap_inuse_bytes": 11837440, "gridwatch_camera_bitrate": 1200}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if _, err := parseMetrics(strings.NewReader(page), "go_threads"); err == nil {
		t.Error("a missing metric: no error")
	}
}

func TestShrink(t *testing.T) {
	ring := [][2]float64{{0, 0}, {2, 0}, {2, 2}, {0, 2}, {0, 0}}
	shrink(ring, 0.5)
	want := [][2]float64{{0.5, 0.5}, {1.5, 0.5}, {1.5, 1.5}, {0.5, 1.5}, {0.5, 0.5}}
	for i := range want {
		if ring[i] != want[i] {
			t.Errorf("point %d = %v, want %v", i, ring[i], want[i])
		}
	}
}

func TestLatencyPairs(t *testing.T) {
	d := &driver{pending: map[int64]*pendingEvent{}, logf: func(string, ...any) {}}
	t0 := time.Now()
	d.acked(1, t0, t0.Add(10*time.Millisecond))
	d.evented(1, t0.Add(30*time.Millisecond)) // after its answer
	d.evented(2, t0.Add(5*time.Millisecond))  // before its answer
	d.acked(2, t0, t0.Add(8*time.Millisecond))
	d.acked(3, t0, t0.Add(time.Millisecond)) // never comes
	ack, sent := d.takeLatencies(t0.Add(time.Second), 30*time.Second)
	if len(ack) != 2 || ack[0] != 0 || ack[1] != 20*time.Millisecond {
		t.Errorf("latencies after the answer %v, want [0 20ms]", ack)
	}
	if len(sent) != 2 || sent[0] != 5*time.Millisecond || sent[1] != 30*time.Millisecond {
		t.Errorf("latencies after sending %v, want [5ms 30ms]", sent)
	}
	if d.c.missed.Load() != 0 {
		t.Errorf("missed %d within the grace, want 0", d.c.missed.Load())
	}
	d.takeLatencies(t0.Add(time.Minute), 30*time.Second)
	if d.c.missed.Load() != 1 {
		t.Errorf("missed %d after the grace, want 1 (case 3)", d.c.missed.Load())
	}
}
