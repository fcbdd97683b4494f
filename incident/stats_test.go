package incident_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"gridwatch"
	"gridwatch/geo/geotest"
	"gridwatch/incident"
)

// TestMain is store_test.go's (one per test binary).

// testClock is the service's clock, set by the test. When steps is not
// empty, each reading takes the next of them and the clock stays at the
// last (a clock that steps between two readings).
type testClock struct {
	mu    sync.Mutex
	now   time.Time
	steps []time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.steps) > 0 {
		c.now, c.steps = c.steps[0], c.steps[1:]
	}
	return c.now
}
func (c *testClock) Set(t time.Time) { c.mu.Lock(); c.now, c.steps = t, nil; c.mu.Unlock() }
func utc(s string) time.Time         { t, _ := time.Parse(time.RFC3339, s); return t }
func ptr[T any](v T) *T              { return &v }
func eqPtr(a, b *float64) bool       { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
func fmtPtr(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// statsCity is a demo city with two grids that have leaders, and the
// service over it.
type statsCity struct {
	svc        *incident.Service
	clock      *testClock
	gridA      int64
	codeA      string
	gridB      int64
	codeB      string
	ptA, ptB   [2]float64
	nowhere    [2]float64
	reportedBy incident.Reporter
}

func newStatsCity(t *testing.T) *statsCity {
	t.Helper()
	ctx := context.Background()
	pool := geotest.Demo(t).Pool
	c := &statsCity{clock: &testClock{now: utc("2026-11-26T09:00:00Z")}, nowhere: [2]float64{0, 0}, reportedBy: incident.Reporter{Name: "test"}}
	c.svc = incident.NewService(pool, incident.Options{Now: c.clock.Now})
	rows, err := pool.Query(ctx, `SELECT id, code, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom))
		FROM grids WHERE level = 'grid' ORDER BY code LIMIT 2`)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	var codes []string
	var pts [][2]float64
	for rows.Next() {
		var id int64
		var code string
		var p [2]float64
		if err := rows.Scan(&id, &code, &p[0], &p[1]); err != nil {
			t.Fatal(err)
		}
		ids, codes, pts = append(ids, id), append(codes, code), append(pts, p)
	}
	if rows.Err() != nil || len(ids) != 2 {
		t.Fatalf("grids: %v, %d found", rows.Err(), len(ids))
	}
	c.gridA, c.codeA, c.ptA = ids[0], codes[0], pts[0]
	c.gridB, c.codeB, c.ptB = ids[1], codes[1], pts[1]
	for i, id := range ids {
		if _, err := c.svc.AddStaff(ctx, incident.Staff{GridID: id, Role: "leader", Name: []string{"王芳", "李强"}[i]}); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// report files a case at pt, reported at the given time.
func (c *statsCity) report(t *testing.T, pt [2]float64, category, reported string) int64 {
	t.Helper()
	c.clock.Set(utc(reported))
	in, _, err := c.svc.Create(context.Background(), incident.NewIncident{
		Source: "patrol", Category: category, Title: "巡查发现", Lon: pt[0], Lat: pt[1],
		ReportedAt: utc(reported), Priority: "normal",
	}, c.reportedBy, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	return in.ID
}

// move takes case id through the statuses, the last step at the given time.
func (c *statsCity) move(t *testing.T, id int64, at string, to ...incident.Status) {
	t.Helper()
	c.clock.Set(utc(at))
	in, err := c.svc.Get(context.Background(), id, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	version := in.Version
	for _, st := range to {
		if _, err := c.svc.Transition(context.Background(), id, incident.TransitionRequest{To: st, Version: version},
			incident.Viewer{}, "test", func(incident.Stage) bool { return true }); err != nil {
			t.Fatalf("incident %d to %s: %v", id, st, err)
		}
		version++
	}
}

var toClosed = []incident.Status{incident.Registered, incident.Dispatched, incident.InProgress, incident.Handled, incident.Verified, incident.Closed}

// seed files the cases the statistics tests count (times in UTC; the
// clock ends at 2026-11-26T09:00Z):
//
//	A 0101 reported 11-10 00:00, closed 11-10 10:00: on time, 10 h
//	A 0101 reported 11-12 00:00, closed 11-14 00:00: late (deadline 11-13), 48 h
//	A 0103 reported 11-20 00:00, registered, open, overdue (deadline 11-20 12:00)
//	B 0301 reported 11-25 00:00, rejected unregistered
//	B 0101 reported 11-26 08:00, open, not yet due
//	none 0601 reported 10-31 20:00 (11-01 04:00 in Shanghai), open, overdue
//	A 0101 reported 09-01, closed: outside the ranges queried
func (c *statsCity) seed(t *testing.T) {
	t.Helper()
	id := c.report(t, c.ptA, "0101", "2026-11-10T00:00:00Z")
	c.move(t, id, "2026-11-10T10:00:00Z", toClosed...)
	id = c.report(t, c.ptA, "0101", "2026-11-12T00:00:00Z")
	c.move(t, id, "2026-11-14T00:00:00Z", toClosed...)
	id = c.report(t, c.ptA, "0103", "2026-11-20T00:00:00Z")
	c.move(t, id, "2026-11-20T01:00:00Z", incident.Registered)
	id = c.report(t, c.ptB, "0301", "2026-11-25T00:00:00Z")
	c.move(t, id, "2026-11-25T01:00:00Z", incident.Rejected)
	c.report(t, c.ptB, "0101", "2026-11-26T08:00:00Z")
	c.report(t, c.nowhere, "0601", "2026-10-31T20:00:00Z")
	id = c.report(t, c.ptA, "0101", "2026-09-01T00:00:00Z")
	c.move(t, id, "2026-09-01T05:00:00Z", toClosed...)
	c.clock.Set(utc("2026-11-26T09:00:00Z"))
}

// figures is a row's numbers, for comparing.
type figures struct {
	key                                                 string
	reported, registered, closed, onTime, open, overdue int64
	closeRate, onTimeRate, median                       *float64
}

func figuresOf(r incident.StatsRow) figures {
	return figures{r.Key, r.Reported, r.Registered, r.Closed, r.ClosedOnTime, r.Open, r.Overdue, r.CloseRate, r.OnTimeRate, r.MedianHours}
}

func checkRows(t *testing.T, got []incident.StatsRow, want []figures) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		checkRow(t, figuresOf(got[i]), w)
	}
}

func checkRow(t *testing.T, g, w figures) {
	t.Helper()
	if g.key != w.key || g.reported != w.reported || g.registered != w.registered || g.closed != w.closed ||
		g.onTime != w.onTime || g.open != w.open || g.overdue != w.overdue ||
		!eqPtr(g.closeRate, w.closeRate) || !eqPtr(g.onTimeRate, w.onTimeRate) || !eqPtr(g.median, w.median) {
		t.Errorf("row %s:\n got reported %d registered %d closed %d on time %d open %d overdue %d rates %v %v median %v\nwant reported %d registered %d closed %d on time %d open %d overdue %d rates %v %v median %v",
			w.key, g.reported, g.registered, g.closed, g.onTime, g.open, g.overdue, fmtPtr(g.closeRate), fmtPtr(g.onTimeRate), fmtPtr(g.median),
			w.reported, w.registered, w.closed, w.onTime, w.open, w.overdue, fmtPtr(w.closeRate), fmtPtr(w.onTimeRate), fmtPtr(w.median))
	}
}

func TestStatsGroupings(t *testing.T) {
	c := newStatsCity(t)
	c.seed(t)
	ctx := context.Background()
	from, to := utc("2026-09-30T16:00:00Z"), utc("2026-11-30T16:00:00Z") // October and November in Shanghai
	total := figures{"total", 6, 3, 2, 1, 3, 2, ptr(0.6667), ptr(0.5), ptr(29.0)}

	st, err := c.svc.Stats(ctx, incident.StatsQuery{From: from, To: to, Group: incident.ByGrid}, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, st.Rows, []figures{
		{c.codeA, 3, 3, 2, 1, 1, 1, ptr(0.6667), ptr(0.5), ptr(29.0)},
		{c.codeB, 2, 0, 0, 0, 1, 0, nil, nil, nil},
		{"unassigned", 1, 0, 0, 0, 1, 1, nil, nil, nil},
	})
	checkRow(t, figuresOf(st.Totals), total)
	if st.Rows[0].GridID == nil || *st.Rows[0].GridID != c.gridA || st.Rows[0].Name == "" || st.Rows[2].Name != "未分配网格" {
		t.Errorf("grid row identity: %+v / %+v", st.Rows[0], st.Rows[2])
	}
	if st.Group != incident.ByGrid || st.Zone != "Asia/Shanghai" || st.From.Format(time.RFC3339) != "2026-10-01T00:00:00+08:00" {
		t.Errorf("header: group %s zone %s from %s", st.Group, st.Zone, st.From.Format(time.RFC3339))
	}

	st, err = c.svc.Stats(ctx, incident.StatsQuery{From: from, To: to, Group: incident.ByCategory}, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, st.Rows, []figures{
		{"0101", 3, 2, 2, 1, 1, 0, ptr(1.0), ptr(0.5), ptr(29.0)},
		{"0103", 1, 1, 0, 0, 1, 1, ptr(0.0), nil, nil},
		{"0301", 1, 0, 0, 0, 0, 0, nil, nil, nil},
		{"0601", 1, 0, 0, 0, 1, 1, nil, nil, nil},
	})
	checkRow(t, figuresOf(st.Totals), total)
	if r := st.Rows[0]; r.Name != "暴露垃圾" || r.ClassCode != "01" || r.ClassName != "市容环境" {
		t.Errorf("category row: %+v", r)
	}

	// Months cut in Shanghai time: the case of 10-31 20:00Z is November's.
	st, err = c.svc.Stats(ctx, incident.StatsQuery{From: from, To: to, Group: incident.ByMonth}, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, st.Rows, []figures{
		{"2026-10", 0, 0, 0, 0, 0, 0, nil, nil, nil},
		{"2026-11", 6, 3, 2, 1, 3, 2, ptr(0.6667), ptr(0.5), ptr(29.0)},
	})
	if st.Rows[1].Name != "2026年11月" {
		t.Errorf("month name %q", st.Rows[1].Name)
	}
	// And in UTC it is October's.
	st, err = c.svc.Stats(ctx, incident.StatsQuery{From: utc("2026-10-01T00:00:00Z"), To: utc("2026-12-01T00:00:00Z"), Group: incident.ByMonth, Zone: "UTC"}, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, st.Rows, []figures{
		{"2026-10", 1, 0, 0, 0, 1, 1, nil, nil, nil},
		{"2026-11", 5, 3, 2, 1, 2, 1, ptr(0.6667), ptr(0.5), ptr(29.0)},
	})
	checkRow(t, figuresOf(st.Totals), total)
}

func TestStatsScopeDefaultsAndBadQueries(t *testing.T) {
	c := newStatsCity(t)
	c.seed(t)
	ctx := context.Background()

	// A grid leader's view: their grid only, and totals of it alone.
	st, err := c.svc.Stats(ctx, incident.StatsQuery{From: utc("2026-10-01T00:00:00Z"), To: utc("2026-12-01T00:00:00Z")}, incident.Viewer{Grids: []int64{c.gridA}})
	if err != nil {
		t.Fatal(err)
	}
	want := figures{c.codeA, 3, 3, 2, 1, 1, 1, ptr(0.6667), ptr(0.5), ptr(29.0)}
	checkRows(t, st.Rows, []figures{want})
	want.key = "total"
	checkRow(t, figuresOf(st.Totals), want)

	// No range: the 30 days up to now (2026-10-27T09:00Z – 2026-11-26T09:00Z).
	st, err = c.svc.Stats(ctx, incident.StatsQuery{}, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	if !st.To.Equal(utc("2026-11-26T09:00:00Z")) || !st.From.Equal(utc("2026-10-27T09:00:00Z")) || st.Group != incident.ByGrid {
		t.Errorf("defaults: %s – %s %s", st.From, st.To, st.Group)
	}
	if st.Totals.Reported != 6 {
		t.Errorf("defaults: %d reported, want 6", st.Totals.Reported)
	}

	// Nothing in range: no rows, zero totals.
	st, err = c.svc.Stats(ctx, incident.StatsQuery{From: utc("2020-01-01T00:00:00Z"), To: utc("2020-02-01T00:00:00Z")}, incident.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Rows) != 0 || st.Totals.Reported != 0 || st.Totals.CloseRate != nil {
		t.Errorf("empty range: %+v", st)
	}

	bad := []struct {
		name  string
		q     incident.StatsQuery
		field string
	}{
		{"unknown group", incident.StatsQuery{Group: "week"}, "group"},
		{"from after to", incident.StatsQuery{From: utc("2026-11-02T00:00:00Z"), To: utc("2026-11-01T00:00:00Z")}, "from"},
		{"empty range", incident.StatsQuery{From: utc("2026-11-01T00:00:00Z"), To: utc("2026-11-01T00:00:00Z")}, "from"},
		{"too long", incident.StatsQuery{From: utc("2000-01-01T00:00:00Z"), To: utc("2026-11-01T00:00:00Z")}, "from"},
		{"unknown zone", incident.StatsQuery{Zone: "Mars/Olympus"}, "tz"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.svc.Stats(ctx, tc.q, incident.Viewer{})
			if gridwatch.ErrorCode(err) != gridwatch.EInvalid || gridwatch.ErrorDetails(err)["field"] != tc.field {
				t.Errorf("got %v (details %v), want invalid naming %s", err, gridwatch.ErrorDetails(err), tc.field)
			}
		})
	}
}

// TestStatsAsOfRangeEnd: a past range's report counts as of its end, so it
// reads the same when run again after its cases are closed, rejected or
// become overdue.
func TestStatsAsOfRangeEnd(t *testing.T) {
	c := newStatsCity(t)
	c.seed(t)
	// More cases in the range [11-10, 11-21), moved after its end.
	late := c.report(t, c.ptA, "0101", "2026-11-15T00:00:00Z") // registered 11-15, closed 11-22
	c.move(t, late, "2026-11-15T01:00:00Z", incident.Registered)
	rejected := c.report(t, c.ptA, "0301", "2026-11-18T00:00:00Z") // registered 11-18, rejected 11-22
	c.move(t, rejected, "2026-11-18T01:00:00Z", incident.Registered)
	due := c.report(t, c.ptA, "0601", "2026-11-20T00:00:00Z") // 72 h: due 11-23, after the range
	c.move(t, late, "2026-11-22T00:00:00Z", toClosed[1:]...)
	c.move(t, rejected, "2026-11-22T00:00:00Z", incident.Rejected)
	c.clock.Set(utc("2026-11-26T09:00:00Z"))

	q := incident.StatsQuery{From: utc("2026-11-10T00:00:00Z"), To: utc("2026-11-21T00:00:00Z"), Zone: "UTC"}
	// At 11-21: six reported; five registered (not the 0601); the two
	// closed by then; open: the 0103, the three moved later; overdue: all
	// of those but the 0601.
	want := figures{key: "total", reported: 6, registered: 5, closed: 2, onTime: 1, open: 4, overdue: 3,
		closeRate: ptr(0.4), onTimeRate: ptr(0.5), median: ptr(29.0)}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T)
	}{
		{"run on 11-26", func(*testing.T) {}},
		{"run again after more closing, on 12-30", func(t *testing.T) {
			ids := []int64{}
			list, _, err := c.svc.List(context.Background(), incident.Filter{Statuses: []incident.Status{incident.Registered}}, incident.Viewer{})
			if err != nil {
				t.Fatal(err)
			}
			for _, in := range list {
				ids = append(ids, in.ID)
			}
			for _, id := range ids {
				c.move(t, id, "2026-11-27T00:00:00Z", toClosed[1:]...)
			}
			c.move(t, due, "2026-11-27T00:00:00Z", toClosed...)
			c.clock.Set(utc("2026-12-30T00:00:00Z"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup(t)
			got, err := c.svc.Stats(context.Background(), q, incident.Viewer{})
			if err != nil {
				t.Fatal(err)
			}
			checkRow(t, figuresOf(got.Totals), want)
		})
	}
}
