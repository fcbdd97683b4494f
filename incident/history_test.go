package incident

import (
	"context"
	"testing"
	"time"

	"gridwatch"
)

// TestSeedHistory: a case seeded with its steps reads as the same case
// walked through Transition does (status, version, dates, assignee, the
// history's steps and their details); the statistics count it; seeding
// again stores nothing; a case that breaks the workflow is refused naming
// the case and the field, and nothing of the batch is stored.
func TestSeedHistory(t *testing.T) {
	ctx := context.Background()
	c := newCity(t)
	code := anyGridCode(c)
	grid := c.byCode[code]
	leader, err := c.svc.AddStaff(ctx, Staff{GridID: grid.ID, Role: "leader", Name: "李强"})
	if err != nil {
		t.Fatal(err)
	}
	volunteer, err := c.svc.AddStaff(ctx, Staff{GridID: grid.ID, Role: "volunteer", Name: "王芳"})
	if err != nil {
		t.Fatal(err)
	}
	p := c.inside[code]

	// The real walk: reported → registered → dispatched (to the leader) →
	// returned → dispatched (to the volunteer) → in progress → handled →
	// verified → closed.
	real := c.report(t, code)
	walk := []TransitionRequest{{To: Registered}, {To: Dispatched}, {To: Returned}, {To: Dispatched, AssigneeID: &volunteer.ID},
		{To: InProgress}, {To: Handled}, {To: Verified}, {To: Closed}}
	for _, req := range walk {
		req.Version = real.Version
		if real, err = c.svc.Transition(ctx, real.ID, req, Viewer{}, "tester", all); err != nil {
			t.Fatalf("walk %s: %v", req.To, err)
		}
	}
	real, err = c.svc.Get(ctx, real.ID, Viewer{})
	if err != nil {
		t.Fatal(err)
	}

	// The same walk, seeded, three days ago and closed late (0101: 24 h).
	at := c.clock().Add(-72 * time.Hour).Truncate(time.Second)
	step := func(to Status, h float64, assignee *int64) HistoricStep {
		return HistoricStep{To: to, At: at.Add(time.Duration(h * float64(time.Hour))), Actor: "tester", Note: string(to), AssigneeID: assignee}
	}
	closedLate := HistoricCase{Source: "hotline", ExternalID: "h-1", Category: "0101", Title: "暴露垃圾", Lon: p[0], Lat: p[1], ReportedAt: at,
		Steps: []HistoricStep{step(Registered, 0.2, nil), step(Dispatched, 0.3, nil), step(Returned, 1, nil),
			step(Dispatched, 1.5, &volunteer.ID), step(InProgress, 2, nil), step(Handled, 20, nil), step(Verified, 26, nil), step(Closed, 30, nil)}}
	rejected := HistoricCase{Source: "citizen", ExternalID: "h-2", Category: "0504", Title: "乱停车", Lon: p[0], Lat: p[1], ReportedAt: at,
		Steps: []HistoricStep{step(Rejected, 1, nil)}}
	open := HistoricCase{Source: "patrol", ExternalID: "h-3", Category: "0203", Title: "广告牌", Lon: p[0], Lat: p[1], ReportedAt: at,
		Steps: []HistoricStep{step(Registered, 1, nil), step(Dispatched, 2, nil)}}
	cases := []HistoricCase{closedLate, rejected, open}
	by := Reporter{Name: "history-test"}
	n, err := c.svc.SeedHistory(ctx, by, cases)
	if err != nil || n != 3 {
		t.Fatalf("seed: %d, %v; want 3 stored", n, err)
	}
	list, _, err := c.svc.List(ctx, Filter{From: at, To: at.Add(time.Second)}, Viewer{})
	if err != nil || len(list) != 3 {
		t.Fatalf("the seeded cases: %d, %v", len(list), err)
	}
	byExt := map[string]*Incident{}
	for i := range list {
		got, err := c.svc.Get(ctx, list[i].ID, Viewer{})
		if err != nil {
			t.Fatal(err)
		}
		byExt[*got.ExternalID] = got
	}

	seeded := byExt["h-1"]
	if seeded.Status != real.Status || seeded.Version != real.Version || seeded.Grid == nil || seeded.Grid.ID != grid.ID ||
		seeded.Assignee == nil || seeded.Assignee.ID != volunteer.ID || real.Assignee.ID != volunteer.ID {
		t.Errorf("seeded %s v%d grid %v assignee %v; the walked case %s v%d, assignee %v",
			seeded.Status, seeded.Version, seeded.Grid, seeded.Assignee, real.Status, real.Version, real.Assignee)
	}
	if seeded.RegisteredAt == nil || !seeded.RegisteredAt.Equal(at.Add(12*time.Minute)) ||
		seeded.ClosedAt == nil || !seeded.ClosedAt.Equal(at.Add(30*time.Hour)) || !seeded.UpdatedAt.Equal(*seeded.ClosedAt) {
		t.Errorf("seeded registered %v, closed %v, updated %v", seeded.RegisteredAt, seeded.ClosedAt, seeded.UpdatedAt)
	}
	if !seeded.Deadline.Equal(at.Add(24 * time.Hour)) {
		t.Errorf("deadline %v, want the report + 24 h", seeded.Deadline)
	}
	if len(seeded.History) != len(real.History) {
		t.Fatalf("seeded history has %d steps, the walked case's %d", len(seeded.History), len(real.History))
	}
	for i := range real.History {
		r, s := real.History[i], seeded.History[i]
		if r.Action != s.Action || r.To != s.To || (r.From == nil) != (s.From == nil) || (r.From != nil && *r.From != *s.From) ||
			len(r.Details) != len(s.Details) && i > 0 || r.Details["assignee_id"] != s.Details["assignee_id"] {
			t.Errorf("step %d: seeded %s %v→%s %v; walked %s %v→%s %v", i, s.Action, s.From, s.To, s.Details, r.Action, r.From, r.To, r.Details)
		}
	}
	if byExt["h-2"].Status != Rejected || byExt["h-2"].RegisteredAt != nil {
		t.Errorf("rejected case: %s, registered %v", byExt["h-2"].Status, byExt["h-2"].RegisteredAt)
	}
	if o := byExt["h-3"]; o.Status != Dispatched || o.Assignee == nil || o.Assignee.ID != leader.ID || !o.Overdue {
		t.Errorf("open case: %s, assignee %v, overdue %v; want dispatched to the leader by default, overdue", o.Status, o.Assignee, o.Overdue)
	}

	st, err := c.svc.Stats(ctx, StatsQuery{From: at.Add(-time.Hour), To: c.clock()}, Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	if tot := st.Totals; tot.Reported != 3 || tot.Registered != 2 || tot.Closed != 1 || tot.ClosedOnTime != 0 || tot.Open != 1 || tot.Overdue != 1 {
		t.Errorf("stats of the seeded cases: %+v; want 3 reported, 2 registered, 1 closed late, 1 open overdue", tot)
	}
	// As of a time before the close, the late case was still open.
	st, err = c.svc.Stats(ctx, StatsQuery{From: at.Add(-time.Hour), To: at.Add(25 * time.Hour)}, Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	if tot := st.Totals; tot.Reported != 3 || tot.Closed != 0 || tot.Open != 2 {
		t.Errorf("stats as of 25 h after: %+v; want 2 open, none closed", tot)
	}

	if n, err := c.svc.SeedHistory(ctx, by, cases); err != nil || n != 0 {
		t.Errorf("seeding again: %d, %v; want nothing stored", n, err)
	}

	// Bad cases: nothing of their batch is stored.
	count := func() int64 {
		n, err := c.svc.CountFeatures(ctx, FeatureFilter{}, Viewer{})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := count()
	other := ""
	for k := range c.inside {
		if k != code && (other == "" || k < other) {
			other = k
		}
	}
	q := c.inside[other]
	good := HistoricCase{Source: "patrol", ExternalID: "h-4", Category: "0101", Title: "x", Lon: p[0], Lat: p[1], ReportedAt: at}
	for _, tc := range []struct {
		name  string
		bad   HistoricCase
		field string
	}{
		{"a step the workflow has not", HistoricCase{Source: "patrol", ExternalID: "h-5", Category: "0101", Title: "x", Lon: p[0], Lat: p[1], ReportedAt: at,
			Steps: []HistoricStep{step(Closed, 1, nil)}}, "steps[0].to"},
		{"steps out of order", HistoricCase{Source: "patrol", ExternalID: "h-5", Category: "0101", Title: "x", Lon: p[0], Lat: p[1], ReportedAt: at,
			Steps: []HistoricStep{step(Registered, 2, nil), step(Dispatched, 1, nil)}}, "steps[1].at"},
		{"an assignee of another grid", HistoricCase{Source: "patrol", ExternalID: "h-5", Category: "0101", Title: "x", Lon: q[0], Lat: q[1], ReportedAt: at,
			Steps: []HistoricStep{step(Registered, 1, nil), step(Dispatched, 2, &leader.ID)}}, "steps[1].assignee_id"},
		{"an unknown category", HistoricCase{Source: "patrol", ExternalID: "h-5", Category: "9999", Title: "x", Lon: p[0], Lat: p[1], ReportedAt: at}, "category"},
		{"no external id", HistoricCase{Source: "patrol", Category: "0101", Title: "x", Lon: p[0], Lat: p[1], ReportedAt: at}, "external_id"},
		{"in the future", HistoricCase{Source: "patrol", ExternalID: "h-5", Category: "0101", Title: "x", Lon: p[0], Lat: p[1], ReportedAt: c.clock().Add(time.Hour)}, "reported_at"},
	} {
		_, err := c.svc.SeedHistory(ctx, by, []HistoricCase{good, tc.bad})
		d := gridwatch.ErrorDetails(err)
		if gridwatch.ErrorCode(err) != gridwatch.EInvalid || d["case"] != 1 || d["field"] != tc.field {
			t.Errorf("%s: %v %v; want invalid, case 1, field %s", tc.name, err, d, tc.field)
		}
	}
	if after := count(); after != before {
		t.Errorf("bad batches stored %d cases", after-before)
	}

	// Placed by PostGIS when the service has no locator: the same grid.
	plain := NewService(c.svc.pool, Options{Now: c.clock})
	if n, err := plain.SeedHistory(ctx, by, []HistoricCase{good}); err != nil || n != 1 {
		t.Fatalf("seed without a locator: %d, %v", n, err)
	}
	list, _, err = c.svc.List(ctx, Filter{Limit: 1}, Viewer{})
	if err != nil || len(list) != 1 || *list[0].ExternalID != "h-4" || list[0].Grid == nil || list[0].Grid.ID != grid.ID {
		t.Errorf("placed without a locator: %+v, %v; want grid %s", list, err, code)
	}
}
