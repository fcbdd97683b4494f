package incident_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"gridwatch"
	"gridwatch/geo"
	"gridwatch/incident"
)

// step moves case id one step on, at the clock as it stands, and returns it.
func (c *statsCity) step(t *testing.T, id int64, to incident.Status) *incident.Incident {
	t.Helper()
	ctx := context.Background()
	in, err := c.svc.Get(ctx, id, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.svc.Transition(ctx, id, incident.TransitionRequest{To: to, Version: in.Version},
		incident.Viewer{}, "test", func(incident.Stage) bool { return true })
	if err != nil {
		t.Fatalf("incident %d to %s: %v", id, to, err)
	}
	return out
}

// checkOrder fails unless in's times never go back: reported ≤ received
// (within the 5 minutes a reporter's clock may be ahead), every step at or
// after the report and the step before it, registered_at and closed_at
// those of their steps.
func checkOrder(t *testing.T, in *incident.Incident) {
	t.Helper()
	last := in.ReportedAt
	for _, e := range in.History[1:] {
		if e.At.Before(last) {
			t.Errorf("incident %d: step to %s at %s, before the report or the step before (%s)", in.ID, e.To, e.At.Format(time.RFC3339), last.Format(time.RFC3339))
		}
		last = e.At
		switch {
		case e.To == incident.Registered && (in.RegisteredAt == nil || !in.RegisteredAt.Equal(e.At)):
			t.Errorf("incident %d: registered_at %v, its step at %s", in.ID, in.RegisteredAt, e.At.Format(time.RFC3339))
		case e.To == incident.Closed && (in.ClosedAt == nil || !in.ClosedAt.Equal(e.At)):
			t.Errorf("incident %d: closed_at %v, its step at %s", in.ID, in.ClosedAt, e.At.Format(time.RFC3339))
		}
	}
	if in.RegisteredAt != nil && in.RegisteredAt.Before(in.ReportedAt) {
		t.Errorf("incident %d: registered_at %s before reported_at %s", in.ID, in.RegisteredAt.Format(time.RFC3339), in.ReportedAt.Format(time.RFC3339))
	}
	if in.ClosedAt != nil && (in.RegisteredAt == nil || in.ClosedAt.Before(*in.RegisteredAt)) {
		t.Errorf("incident %d: closed_at %s before registered_at %v", in.ID, in.ClosedAt.Format(time.RFC3339), in.RegisteredAt)
	}
}

// overdueNow is what every reader of "overdue" says of the cases, at the
// clock as it stands: each case's flag (Get), the overdue list of them and
// its count, and the statistics' count of all cases. They must agree.
func (c *statsCity) overdueNow(t *testing.T, ids ...int64) (flags map[int64]bool, listed map[int64]bool, count, stats int64) {
	t.Helper()
	ctx := context.Background()
	flags, listed = map[int64]bool{}, map[int64]bool{}
	for _, id := range ids {
		in, err := c.svc.Get(ctx, id, incident.Viewer{})
		if err != nil {
			t.Fatal(err)
		}
		flags[id] = in.Overdue
	}
	f := incident.FeatureFilter{Filter: incident.Filter{Overdue: true, IDs: ids}}
	list, _, err := c.svc.Features(ctx, f, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range list {
		listed[in.ID] = true
	}
	if count, err = c.svc.CountFeatures(ctx, f, incident.Viewer{}); err != nil {
		t.Fatal(err)
	}
	st, err := c.svc.Stats(ctx, incident.StatsQuery{}, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	return flags, listed, count, st.Totals.Overdue
}

// TestClockSteps steps the service's clock forward and back between a
// case's report, its steps and its close: the deadline stays the report's
// time plus the category's hours, no step is dated before the one before,
// overdue follows the clock as it stands in every reader, and the
// statistics' handling times stay at or above zero.
func TestClockSteps(t *testing.T) {
	c := newStatsCity(t)
	ctx := context.Background()
	t0 := c.clock.Now() // 2026-11-26T09:00Z
	at := func(d time.Duration) { c.clock.Set(t0.Add(d)) }

	// A: 0101 (24 h), dated by the service's clock (no reported_at).
	a, _, err := c.svc.Create(ctx, incident.NewIncident{Source: "patrol", Category: "0101", Title: "暴露垃圾",
		Lon: c.ptA[0], Lat: c.ptA[1], Priority: "normal"}, c.reportedBy, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	if !a.ReportedAt.Equal(t0) || !a.ReceivedAt.Equal(t0) || !a.Deadline.Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("A: reported %s received %s deadline %s; want %s, %s, %s", a.ReportedAt, a.ReceivedAt, a.Deadline, t0, t0, t0.Add(24*time.Hour))
	}
	// B: 0103 (12 h), open throughout; C: 0301 (4 h), dated 4 minutes
	// ahead of the clock (a phone's clock, within the tolerance).
	b := c.report(t, c.ptA, "0103", t0.Format(time.RFC3339))
	cIn, _, err := c.svc.Create(ctx, incident.NewIncident{Source: "citizen", Category: "0301", Title: "施工扰民",
		Lon: c.ptB[0], Lat: c.ptB[1], ReportedAt: t0.Add(4 * time.Minute), Priority: "normal"}, c.reportedBy, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	deadlines := map[int64]time.Time{a.ID: t0.Add(24 * time.Hour), b: t0.Add(12 * time.Hour), cIn.ID: t0.Add(4*time.Minute + 4*time.Hour)}

	// +1 h: A registered. −1 h (back to t0): dispatched. −1 h more: the
	// rest, to closed. Each step is at its clock, but never before the
	// step before: from the dispatch on, A's steps are at t0 + 1 h.
	at(time.Hour)
	if got := c.step(t, a.ID, incident.Registered); !got.RegisteredAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("A registered at %v, want %s (the clock)", got.RegisteredAt, t0.Add(time.Hour))
	}
	at(0)
	c.step(t, a.ID, incident.Dispatched)
	at(-time.Hour)
	for _, st := range []incident.Status{incident.InProgress, incident.Handled, incident.Verified, incident.Closed} {
		c.step(t, a.ID, st)
	}
	// C, 4 minutes ahead of the clock that stepped back an hour, closed
	// at once: its steps are at its report's time, not before it.
	for _, st := range toClosed {
		c.step(t, cIn.ID, st)
	}
	for _, id := range []int64{a.ID, b, cIn.ID} {
		in, err := c.svc.Get(ctx, id, incident.Viewer{})
		if err != nil {
			t.Fatal(err)
		}
		checkOrder(t, in)
		if !in.Deadline.Equal(deadlines[id]) || !in.Deadline.Equal(in.ReportedAt.Add(time.Duration(map[string]int{"0101": 24, "0103": 12, "0301": 4}[in.Category])*time.Hour)) {
			t.Errorf("incident %d (%s): deadline %s, want %s = reported_at + the category's hours", id, in.Category, in.Deadline, deadlines[id])
		}
	}
	closedA, _ := c.svc.Get(ctx, a.ID, incident.Viewer{})
	if closedA.ClosedAt == nil || !closedA.ClosedAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("A closed at %v, want %s (its registration; the clock was behind it)", closedA.ClosedAt, t0.Add(time.Hour))
	}
	closedC, _ := c.svc.Get(ctx, cIn.ID, incident.Viewer{})
	if closedC.ClosedAt == nil || !closedC.ClosedAt.Equal(t0.Add(4*time.Minute)) {
		t.Errorf("C closed at %v, want %s (its reported_at; the clock was behind it)", closedC.ClosedAt, t0.Add(4*time.Minute))
	}

	// The report up to now, with the clock an hour behind A's and C's
	// close: both closed on time with handling times of 1 h and 0, B open
	// and not overdue.
	checkStats := func(t *testing.T, when string, overdue int64) {
		t.Helper()
		st, err := c.svc.Stats(ctx, incident.StatsQuery{}, incident.Viewer{})
		if err != nil {
			t.Fatal(err)
		}
		// The median of 1 h and 0 h; the minutes C was ahead are not negative hours.
		checkRow(t, figuresOf(st.Totals), figures{"total", 3, 2, 2, 2, 1, overdue, ptr(1.0), ptr(1.0), ptr(0.5)})
		if st.Totals.MedianHours == nil || *st.Totals.MedianHours < 0 {
			t.Errorf("%s: median handling time %v, want ≥ 0", when, fmtPtr(st.Totals.MedianHours))
		}
	}
	checkStats(t, "clock 1 h back", 0)

	// Overdue, as the clock stands: B's deadline (t0 + 12 h) is passed at
	// +1 day and not at −1 h, and every reader says the same.
	for _, tc := range []struct {
		name    string
		clock   time.Duration
		overdue bool
	}{
		{"1 h back", -time.Hour, false},
		{"1 day on", 24 * time.Hour, true},
		{"back from 1 day on to 1 h on", time.Hour, false},
		{"a second after the deadline", 12*time.Hour + time.Second, true},
		{"at the deadline", 12 * time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at(tc.clock)
			flags, listed, count, stats := c.overdueNow(t, a.ID, b, cIn.ID)
			want := int64(0)
			if tc.overdue {
				want = 1
			}
			if flags[b] != tc.overdue || listed[b] != tc.overdue || count != want || stats != want ||
				flags[a.ID] || listed[a.ID] || flags[cIn.ID] || listed[cIn.ID] {
				t.Errorf("clock %s: B overdue flag %v, listed %v, count %d, stats %d; want %v, %v, %d, %d (closed A and C never)",
					c.clock.Now().Format(time.RFC3339), flags[b], listed[b], count, stats, tc.overdue, tc.overdue, want, want)
			}
			checkStats(t, tc.name, want)
			in, _ := c.svc.Get(ctx, b, incident.Viewer{})
			if !in.Deadline.Equal(deadlines[b]) {
				t.Errorf("B's deadline %s at clock %s, want %s", in.Deadline, c.clock.Now().Format(time.RFC3339), deadlines[b])
			}
		})
	}

	// A list of the overdue cases reads the clock once: stepped back from
	// 1 day on to 1 h back between its filter and its rows, B is still
	// listed overdue and flagged so.
	c.clock.mu.Lock()
	c.clock.steps = []time.Time{t0.Add(24 * time.Hour), t0.Add(-time.Hour)}
	c.clock.mu.Unlock()
	list, _, err := c.svc.Features(ctx, incident.FeatureFilter{Filter: incident.Filter{Overdue: true, IDs: []int64{b}}}, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || !list[0].Overdue {
		t.Errorf("overdue list with the clock stepping back while it was read: %d cases, overdue flag %v; want B, flagged overdue", len(list), len(list) == 1 && list[0].Overdue)
	}
	c.clock.Set(t0)

	// A report dated more than 5 minutes ahead of the clock is refused,
	// naming reported_at: here a client's true time after the server's
	// clock stepped back an hour.
	at(-time.Hour)
	_, _, err = c.svc.Create(ctx, incident.NewIncident{Source: "citizen", Category: "0101", Title: "x",
		Lon: c.ptA[0], Lat: c.ptA[1], ReportedAt: t0, Priority: "normal"}, c.reportedBy, incident.Viewer{})
	if gridwatch.ErrorCode(err) != gridwatch.EInvalid || gridwatch.ErrorDetails(err)["field"] != "reported_at" {
		t.Errorf("a report 1 h ahead of the clock: %v, want invalid naming reported_at", err)
	}
	t.Logf("RELIABILITY: clock steps (+1 h, −1 h, −1 h, +1 day, back): deadlines = reported_at + category hours, unchanged; steps never before the one before; overdue agreed by Get, list, count and stats at 5 clock settings; median handling time ≥ 0; a report 1 h ahead refused naming reported_at")
}

// TestParseNewLeavesTheDateToTheService: a report without reported_at is
// dated by the service that files it, not by the clock of whoever parsed
// it (the API's handler reads another clock than the service's).
func TestParseNewLeavesTheDateToTheService(t *testing.T) {
	c := newStatsCity(t)
	parsedAt := c.clock.Now().Add(11 * 24 * time.Hour) // the parser's clock, 11 days ahead
	n, err := incident.ParseNew([]byte(`{"source":"hotline","category":"0101","title":"暴露垃圾",
		"location":{"type":"Point","coordinates":[`+fmt.Sprint(c.ptA[0])+`,`+fmt.Sprint(c.ptA[1])+`]}}`), geo.CRSWGS84, parsedAt)
	if err != nil {
		t.Fatal(err)
	}
	if !n.ReportedAt.IsZero() {
		t.Fatalf("ParseNew dated the report %s, want zero (the service dates it)", n.ReportedAt)
	}
	in, _, err := c.svc.Create(context.Background(), n, c.reportedBy, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	now := c.clock.Now()
	if !in.ReportedAt.Equal(now) || !in.ReceivedAt.Equal(now) || !in.Deadline.Equal(now.Add(24*time.Hour)) {
		t.Errorf("reported %s received %s deadline %s; want %s, %s, %s", in.ReportedAt, in.ReceivedAt, in.Deadline, now, now, now.Add(24*time.Hour))
	}
}
