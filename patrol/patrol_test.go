package patrol

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch"
	"gridwatch/geo"
	"gridwatch/geo/geotest"
	"gridwatch/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

var shanghai = mustZone("Asia/Shanghai")

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// city is the service over the demo city, with its cells' interior points
// and a clock the test moves.
type city struct {
	t        testing.TB
	pool     *pgxpool.Pool
	svc      *Service
	features []geo.ImportFeature
	cells    []geo.ImportFeature
	ids      map[string]int64 // grid code → id
	mu       sync.Mutex
	now      time.Time
}

func (c *city) clock() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *city) set(t time.Time)  { c.mu.Lock(); c.now = t; c.mu.Unlock() }

func newCity(t testing.TB, now time.Time) *city {
	t.Helper()
	demo := geotest.Demo(t)
	c := &city{t: t, pool: demo.Pool, features: demo.Features, cells: geotest.Cells(demo.Features), ids: map[string]int64{}, now: now}
	c.svc = NewService(demo.Pool, Options{Now: c.clock})
	list, _, err := demo.Grids.List(context.Background(), geo.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range list {
		c.ids[g.Code] = g.ID
	}
	return c
}

// member adds a user and returns the viewer of their own patrols.
func (c *city) member(name string) Viewer {
	c.t.Helper()
	var id int64
	if err := c.pool.QueryRow(context.Background(), `INSERT INTO users (username, display_name, role, password_hash)
		VALUES ($1, $2, 'grid_leader', 'x') RETURNING id`, name, "网格员 "+name).Scan(&id); err != nil {
		c.t.Fatal(err)
	}
	return Viewer{UserID: id}
}

// cell is the i-th grid cell's code and interior point.
func (c *city) cell(i int) (string, [2]float64) {
	return c.cells[i].Code, geotest.Middle(c.cells[i])
}

func (c *city) start(v Viewer, at time.Time) *Patrol {
	c.t.Helper()
	p, created, err := c.svc.Start(context.Background(), v, "", &at)
	if err != nil || !created {
		c.t.Fatalf("start: %v (created %v)", err, created)
	}
	return p
}

func (c *city) add(id int64, v Viewer, pts ...Point) *Added {
	c.t.Helper()
	a, err := c.svc.AddPoints(context.Background(), id, v, pts)
	if err != nil {
		c.t.Fatalf("add points: %v", err)
	}
	return a
}

// geoLength is PostGIS's geography length of the line through pts, in
// order: the distance the walk should find for the points it counts.
func (c *city) geoLength(pts []Point) float64 {
	c.t.Helper()
	if len(pts) < 2 {
		return 0
	}
	lons, lats := make([]float64, len(pts)), make([]float64, len(pts))
	for i, p := range pts {
		lons[i], lats[i] = p.Lon, p.Lat
	}
	var m float64
	if err := c.pool.QueryRow(context.Background(), `SELECT ST_Length(ST_MakeLine(array_agg(ST_MakePoint(x, y) ORDER BY n))::geography)
		FROM unnest($1::float8[], $2::float8[]) WITH ORDINALITY AS u (x, y, n)`, lons, lats).Scan(&m); err != nil {
		c.t.Fatal(err)
	}
	return m
}

// haversine is the great-circle distance in metres, to check geoLength
// against something computed apart from PostGIS.
func haversine(a, b Point) float64 {
	const r = 6371008.8
	rad := math.Pi / 180
	dlat, dlon := (b.Lat-a.Lat)*rad, (b.Lon-a.Lon)*rad
	h := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(a.Lat*rad)*math.Cos(b.Lat*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * r * math.Asin(math.Sqrt(h))
}

func acc(m float64) *float64 { return &m }

func errCode(err error) string { return gridwatch.ErrorCode(err) }

func TestPatrolStartReplayConflict(t *testing.T) {
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	c := newCity(t, now)
	ctx := context.Background()
	wang := c.member("wang")

	p, created, err := c.svc.Start(ctx, wang, "start-key-0001", nil)
	if err != nil || !created || !p.Active || !p.StartedAt.Equal(now) || p.User.Username != "wang" || p.Last != nil || len(p.Grids) != 0 {
		t.Fatalf("start: %+v, created %v, %v", p, created, err)
	}
	again, created, err := c.svc.Start(ctx, wang, "start-key-0001", nil)
	if err != nil || created || again.ID != p.ID {
		t.Errorf("replay: %+v, created %v, %v; want patrol %d again", again, created, err, p.ID)
	}
	_, _, err = c.svc.Start(ctx, wang, "start-key-0002", nil)
	if errCode(err) != gridwatch.EConflict || gridwatch.ErrorDetails(err)["open_patrol_id"] != p.ID {
		t.Errorf("second start: %v %v, want a conflict naming open patrol %d", err, gridwatch.ErrorDetails(err), p.ID)
	}
	other := now.Add(-time.Hour)
	if _, _, err = c.svc.Start(ctx, wang, "start-key-0001", &other); errCode(err) != gridwatch.EIdempotencyMismatch {
		t.Errorf("same key, other start time: %v, want idempotency_mismatch", err)
	}
	if _, _, err = c.svc.Start(ctx, Viewer{All: true}, "", nil); errCode(err) != gridwatch.EForbidden {
		t.Errorf("a token starts: %v, want forbidden", err)
	}
	for _, key := range []string{"short", strings.Repeat("k", 65), "has space!"} {
		if _, _, err = c.svc.Start(ctx, c.member("k"+fmt.Sprint(len(key))), key, nil); errCode(err) != gridwatch.EInvalid {
			t.Errorf("key %q: %v, want invalid", key, err)
		}
	}
	future := now.Add(10 * time.Minute)
	if _, _, err = c.svc.Start(ctx, c.member("li"), "", &future); errCode(err) != gridwatch.EInvalid || gridwatch.ErrorDetails(err)["field"] != "started_at" {
		t.Errorf("start in the future: %v, want invalid started_at", err)
	}

	// End, idempotently; then a new start, but not one overlapping the last.
	ended, changed, err := c.svc.End(ctx, p.ID, wang, nil)
	if err != nil || !changed || ended.Active || ended.EndedAt == nil {
		t.Fatalf("end: %+v %v %v", ended, changed, err)
	}
	again, changed, err = c.svc.End(ctx, p.ID, wang, nil)
	if err != nil || changed || !again.EndedAt.Equal(*ended.EndedAt) {
		t.Errorf("end again: %+v %v %v, want the same end, unchanged", again, changed, err)
	}
	if again, created, err = c.svc.Start(ctx, wang, "start-key-0001", nil); err != nil || created || again.ID != p.ID || again.Active {
		t.Errorf("replay of the first start after its end: %+v %v %v", again, created, err)
	}
	early := now.Add(-time.Minute)
	if _, _, err = c.svc.Start(ctx, wang, "", &early); errCode(err) != gridwatch.EConflict {
		t.Errorf("start overlapping the last patrol: %v, want conflict", err)
	}
	c.set(now.Add(time.Hour))
	if _, created, err = c.svc.Start(ctx, wang, "start-key-0003", nil); err != nil || !created {
		t.Errorf("second patrol: %v %v", created, err)
	}
	// Someone else may not end it, nor see it.
	if _, _, err := c.svc.End(ctx, p.ID, c.member("zhao"), nil); errCode(err) != gridwatch.ENotFound {
		t.Errorf("another member ends it: %v, want not found", err)
	}
	if _, _, err := c.svc.End(ctx, p.ID, Viewer{UserID: 999999, All: true}, nil); errCode(err) != gridwatch.EForbidden {
		t.Errorf("a commander ends it: %v, want forbidden", err)
	}
}

func TestPatrolPointsBatches(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, shanghai)
	c := newCity(t, t0.Add(30*time.Minute))
	ctx := context.Background()
	wang := c.member("wang")
	p := c.start(wang, t0)
	_, mid := c.cell(0)
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	pt := func(min int) Point {
		return Point{At: at(min), Lon: mid[0] + float64(min)*0.00005, Lat: mid[1], AccuracyM: acc(8)}
	}

	a := c.add(p.ID, wang, pt(0), pt(1), pt(1), pt(2))
	if a.Accepted != 3 || a.Duplicates != 1 || a.Patrol.Points != 3 || !a.Patrol.Last.At.Equal(at(2)) {
		t.Errorf("batch with a repeated point: %+v, want 3 accepted, 1 duplicate", a)
	}
	// A replayed batch changes nothing.
	a = c.add(p.ID, wang, pt(0), pt(1), pt(1), pt(2))
	if a.Accepted != 0 || a.Duplicates != 4 || a.Patrol.Points != 3 {
		t.Errorf("replay: %+v, want all duplicates", a)
	}
	// Out of the patrol's time: the error names the point.
	for _, tc := range []struct {
		name  string
		at    time.Time
		index int
	}{
		{"before the start", t0.Add(-2 * time.Minute), 1},
		{"in the future", c.clock().Add(6 * time.Minute), 1},
	} {
		_, err := c.svc.AddPoints(ctx, p.ID, wang, []Point{pt(3), {At: tc.at, Lon: mid[0], Lat: mid[1]}})
		d := gridwatch.ErrorDetails(err)
		if errCode(err) != gridwatch.EInvalid || d["index"] != tc.index || d["field"] != fmt.Sprintf("points[%d].at", tc.index) {
			t.Errorf("%s: %v %v, want invalid naming point %d", tc.name, err, d, tc.index)
		}
	}
	// Just before the start is the phone's first fix: taken.
	if a = c.add(p.ID, wang, Point{At: t0.Add(-30 * time.Second), Lon: mid[0], Lat: mid[1]}); a.Accepted != 1 {
		t.Errorf("a fix 30 s before the start: %+v", a)
	}
	// Others may not add points.
	if _, err := c.svc.AddPoints(ctx, p.ID, c.member("zhao"), []Point{pt(4)}); errCode(err) != gridwatch.ENotFound {
		t.Errorf("another member's points: %v, want not found", err)
	}
	if _, err := c.svc.AddPoints(ctx, p.ID, Viewer{All: true}, []Point{pt(4)}); errCode(err) != gridwatch.EForbidden {
		t.Errorf("a commander's points: %v, want forbidden", err)
	}

	// Offline: the member ends the patrol at 09:20, the points of 09:03 to
	// 09:20 arrive at 09:30, after the end; one dated after the end does not.
	end := at(20)
	if _, _, err := c.svc.End(ctx, p.ID, wang, &end); err != nil {
		t.Fatal(err)
	}
	var late []Point
	for m := 3; m <= 20; m++ {
		late = append(late, pt(m))
	}
	if _, err := c.svc.AddPoints(ctx, p.ID, wang, append(slices.Clone(late), pt(21))); errCode(err) != gridwatch.EInvalid ||
		gridwatch.ErrorDetails(err)["index"] != len(late) {
		t.Errorf("a point after the end: %v %v, want invalid naming point %d", err, gridwatch.ErrorDetails(err), len(late))
	}
	a = c.add(p.ID, wang, late...)
	if a.Accepted != len(late) || a.Patrol.Points != 4+len(late) || !a.Patrol.Last.At.Equal(end) || a.Patrol.Active {
		t.Errorf("late batch: %+v, last %v", a, a.Patrol.Last)
	}
	// The distance: 20 steps of 0.00005° of longitude, plus the first fix
	// (at the start's spot) — the line through them all, all accurate.
	want := c.geoLength(append([]Point{{Lon: mid[0], Lat: mid[1]}}, append([]Point{pt(0), pt(1), pt(2)}, late...)...))
	if math.Abs(a.Patrol.DistanceM-want) > 1 {
		t.Errorf("distance %.1f m, want %.1f", a.Patrol.DistanceM, want)
	}
	// An end before the last point is refused.
	q := c.start(wang, at(25))
	c.add(q.ID, wang, pt(26))
	early := at(25).Add(30 * time.Second)
	if _, _, err := c.svc.End(ctx, q.ID, wang, &early); errCode(err) != gridwatch.EInvalid || gridwatch.ErrorDetails(err)["field"] != "ended_at" {
		t.Errorf("end before the last point: %v, want invalid ended_at", err)
	}
}

// TestPatrolDistance: the distance is the geography length of the accurate
// points' line without the GPS jumps, whatever order the batches come in.
func TestPatrolDistance(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, shanghai)
	c := newCity(t, t0.Add(time.Hour))
	_, mid := c.cell(3)
	// A walk east, 20 m every 15 s; point 4 is 150 m off with an accuracy
	// of 150 m; point 7 jumps 4.5 km north (GPS), point 8 is back.
	var all, counted []Point
	for i := range 12 {
		p := Point{At: t0.Add(time.Duration(i) * 15 * time.Second), Lon: mid[0] + float64(i)*0.00022, Lat: mid[1], AccuracyM: acc(10)}
		switch i {
		case 4:
			p.Lat += 0.00135
			p.AccuracyM = acc(150)
		case 7:
			p.Lat += 0.04
		case 9:
			p.AccuracyM = nil // unknown accuracy counts
		}
		all = append(all, p)
		if i != 4 && i != 7 {
			counted = append(counted, p)
		}
	}
	want := c.geoLength(counted)
	if naive := c.geoLength(all); naive-want < 8000 {
		t.Fatalf("the jump and the inaccurate point add only %.0f m", naive-want)
	}
	var hav float64
	for i := 1; i < len(counted); i++ {
		hav += haversine(counted[i-1], counted[i])
	}
	if math.Abs(hav-want)/want > 0.005 {
		t.Fatalf("PostGIS says %.2f m, the sphere %.2f m", want, hav)
	}

	for _, tc := range []struct {
		name    string
		batches [][]int
	}{
		{"one batch", [][]int{{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}}},
		{"in order", [][]int{{0, 1, 2}, {3, 4, 5}, {6, 7}, {8, 9, 10, 11}}},
		{"jump last in a batch", [][]int{{0, 1, 2, 3, 4, 5, 6, 7}, {8, 9, 10, 11}}},
		{"late batches", [][]int{{0, 1, 8, 9}, {10, 11}, {2, 3, 4}, {5, 6, 7}}},
		{"reversed", [][]int{{11}, {10}, {9}, {8}, {7}, {6}, {5}, {4}, {3}, {2}, {1}, {0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := c.member(strings.ReplaceAll(tc.name, " ", "-"))
			p := c.start(v, t0)
			var a *Added
			for _, b := range tc.batches {
				var pts []Point
				for _, i := range b {
					pts = append(pts, all[i])
				}
				a = c.add(p.ID, v, pts...)
			}
			if math.Abs(a.Patrol.DistanceM-want) > 1 {
				t.Errorf("distance %.2f m, want %.2f m (the geography length without points 4 and 7)", a.Patrol.DistanceM, want)
			}
			var sum float64
			var jumps int
			if err := c.pool.QueryRow(context.Background(), `SELECT sum(segment_m), count(*) FILTER (WHERE segment_m = 0)
				FROM patrol_points WHERE patrol_id = $1`, p.ID).Scan(&sum, &jumps); err != nil {
				t.Fatal(err)
			}
			if math.Abs(sum-a.Patrol.DistanceM) > 0.1 || jumps != 3 {
				t.Errorf("segments sum to %.2f m with %d uncounted, want %.2f m and 3 (the first, the inaccurate, the jump)", sum, jumps, a.Patrol.DistanceM)
			}
			if last := a.Patrol.Last; last == nil || !last.At.Equal(all[11].At) || last.Lon != all[11].Lon || *last.AccuracyM != 10 {
				t.Errorf("last %+v, want point 11", last)
			}
		})
	}
}

func TestPatrolGridsAndVisibility(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, shanghai)
	c := newCity(t, t0.Add(time.Hour))
	ctx := context.Background()
	wang, li := c.member("wang"), c.member("li")
	codeA, a := c.cell(0)
	codeB, b := c.cell(1)
	shared := geotest.SharedVertex(c.features)
	var lowest string
	if err := c.pool.QueryRow(ctx, `SELECT min(code) FROM grids WHERE level = 'grid' AND ST_Covers(geom, ST_SetSRID(ST_MakePoint($1, $2), 4326))`,
		shared[0], shared[1]).Scan(&lowest); err != nil {
		t.Fatal(err)
	}
	p := c.start(wang, t0)
	c.add(p.ID, wang,
		Point{At: t0.Add(time.Minute), Lon: a[0], Lat: a[1]},
		Point{At: t0.Add(2 * time.Minute), Lon: 0, Lat: 0}, // in no grid: kept, unassigned
		Point{At: t0.Add(20 * time.Minute), Lon: b[0], Lat: b[1]},
		Point{At: t0.Add(40 * time.Minute), Lon: shared[0], Lat: shared[1]})
	got, err := c.svc.Get(ctx, p.ID, wang)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, g := range got.Grids {
		codes = append(codes, g.Code)
	}
	want := []string{codeA, codeB, lowest}
	slices.Sort(want)
	want = slices.Compact(want)
	if fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Errorf("grids %v, want %v (the shared vertex goes to %s, the lowest code)", codes, want, lowest)
	}
	if got.Points != 4 || got.Last.GridID == nil || *got.Last.GridID != c.ids[lowest] || *got.FreshSeconds != 20*60 {
		t.Errorf("patrol %+v, last %+v", got, got.Last)
	}
	q := c.start(li, t0) // no points yet

	community := c.ids[codeA[:12]]
	for _, tc := range []struct {
		name string
		v    Viewer
		want []int64
	}{
		{"own", wang, []int64{p.ID}},
		{"own, the other", li, []int64{q.ID}},
		{"a token without patrols.read", Viewer{}, nil},
		{"commander", Viewer{All: true}, []int64{q.ID, p.ID}},
		{"commander of A's community", Viewer{All: true, Grids: []int64{community}}, []int64{p.ID}},
		{"commander of B", Viewer{All: true, Grids: []int64{c.ids[codeB]}}, []int64{p.ID}},
		{"commander elsewhere", Viewer{All: true, Grids: []int64{c.ids[c.cells[len(c.cells)-1].Code]}}, nil},
		{"commander elsewhere, with a patrol of their own", Viewer{UserID: li.UserID, All: true, Grids: []int64{c.ids[c.cells[len(c.cells)-1].Code]}}, []int64{q.ID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, _, err := c.svc.List(ctx, Filter{}, tc.v)
			if err != nil {
				t.Fatal(err)
			}
			var ids []int64
			for _, x := range list {
				ids = append(ids, x.ID)
			}
			if fmt.Sprint(ids) != fmt.Sprint(tc.want) {
				t.Errorf("sees %v, want %v", ids, tc.want)
			}
			_, err = c.svc.Get(ctx, p.ID, tc.v)
			if seen := slices.Contains(tc.want, p.ID); (err == nil) != seen {
				t.Errorf("get: %v, want seen %v", err, seen)
			}
			_, err = c.svc.Track(ctx, p.ID, tc.v)
			if seen := slices.Contains(tc.want, p.ID); (err == nil) != seen {
				t.Errorf("track: %v, want seen %v", err, seen)
			}
		})
	}
	// Filters: active, member, grid, day.
	for _, tc := range []struct {
		name string
		f    Filter
		want []int64
	}{
		{"grid B", Filter{GridID: c.ids[codeB]}, []int64{p.ID}},
		{"A's community", Filter{GridID: community}, []int64{p.ID}},
		{"member", Filter{UserID: li.UserID}, []int64{q.ID}},
		{"active", Filter{Active: true}, []int64{q.ID, p.ID}},
		{"today", dayFilter(t, "2026-11-26"), []int64{q.ID, p.ID}},
		{"yesterday", dayFilter(t, "2026-11-25"), nil},
		{"page", Filter{Limit: 1}, []int64{q.ID}},
		{"next page", Filter{Limit: 1, Before: q.ID}, []int64{p.ID}},
	} {
		list, _, err := c.svc.List(ctx, tc.f, Viewer{All: true})
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, x := range list {
			ids = append(ids, x.ID)
		}
		if fmt.Sprint(ids) != fmt.Sprint(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, ids, tc.want)
		}
	}
	if _, _, err := c.svc.End(ctx, p.ID, wang, nil); err != nil {
		t.Fatal(err)
	}
	if list, _, _ := c.svc.List(ctx, Filter{Active: true}, Viewer{All: true}); len(list) != 1 || list[0].ID != q.ID {
		t.Errorf("active after the end: %v", list)
	}

	// The track: the points in time order, their times and accuracies.
	tr, err := c.svc.Track(ctx, p.ID, wang)
	if err != nil {
		t.Fatal(err)
	}
	coords := tr.Geometry.Coordinates.([][2]float64)
	if tr.Type != "Feature" || tr.Geometry.Type != "LineString" || len(coords) != 4 || coords[2] != [2]float64{b[0], b[1]} ||
		len(tr.Properties.Times) != 4 || !tr.Properties.Times[3].Equal(t0.Add(40*time.Minute)) || tr.Properties.Accuracy[0] != nil {
		t.Errorf("track %+v", tr)
	}
	if tr, err = c.svc.Track(ctx, q.ID, li); err != nil || tr.Geometry != nil || len(tr.Properties.Times) != 0 {
		t.Errorf("empty track: %+v %v, want a null geometry", tr, err)
	}
}

func dayFilter(t *testing.T, day string) Filter {
	t.Helper()
	from, to, err := Day(day, "Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	return Filter{From: from, To: to}
}

// TestPatrolEvents: start, positions and end publish events whose grid
// and data say what a scoped viewer and the member need.
func TestPatrolEvents(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, shanghai)
	c := newCity(t, t0.Add(time.Hour))
	ctx := context.Background()
	wang := c.member("wang")
	codeA, a := c.cell(0)
	codeB, b := c.cell(1)
	p := c.start(wang, t0)
	c.add(p.ID, wang, Point{At: t0.Add(time.Minute), Lon: a[0], Lat: a[1], AccuracyM: acc(5)})
	c.add(p.ID, wang, Point{At: t0.Add(2 * time.Minute), Lon: a[0], Lat: a[1]}) // a replay
	c.add(p.ID, wang, Point{At: t0.Add(time.Minute), Lon: a[0], Lat: a[1], AccuracyM: acc(5)})
	c.add(p.ID, wang, Point{At: t0.Add(20 * time.Minute), Lon: b[0], Lat: b[1]})
	if _, _, err := c.svc.End(ctx, p.ID, wang, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.svc.End(ctx, p.ID, wang, nil); err != nil { // no second event
		t.Fatal(err)
	}
	rows, err := c.pool.Query(ctx, "SELECT type, grid_id, data FROM events ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var typ string
		var grid *int64
		var data map[string]any
		if err := rows.Scan(&typ, &grid, &data); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(typ, "patrol.") {
			continue
		}
		if data["id"] != float64(p.ID) || data["user_id"] != float64(wang.UserID) {
			t.Errorf("%s data %v: want patrol %d of user %d", typ, data, p.ID, wang.UserID)
		}
		g := "-"
		if grid != nil {
			for code, id := range c.ids {
				if id == *grid {
					g = code
				}
			}
		}
		grids, _ := json.Marshal(data["grids"])
		line := fmt.Sprintf("%s %s %s", typ, g, grids)
		if typ == EventPosition {
			last := data["last"].(map[string]any)
			at, err := time.Parse(time.RFC3339Nano, last["at"].(string))
			if err != nil {
				t.Fatal(err)
			}
			line += " at " + at.UTC().Format(time.RFC3339)
		}
		got = append(got, line)
	}
	ga, gb := c.ids[codeA], c.ids[codeB]
	low, high := min(ga, gb), max(ga, gb)
	utc := func(d time.Duration) string { return t0.Add(d).UTC().Format(time.RFC3339) }
	want := []string{
		"patrol.started - []",
		fmt.Sprintf("patrol.position %s [%d] at %s", codeA, ga, utc(time.Minute)),
		fmt.Sprintf("patrol.position %s [%d] at %s", codeA, ga, utc(2*time.Minute)),
		fmt.Sprintf("patrol.position %s [%d,%d] at %s", codeB, low, high, utc(20*time.Minute)),
		fmt.Sprintf("patrol.ended %s [%d,%d]", codeB, low, high),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestPatrolStats: a month's figures per member, a patrol across the
// month's boundary split by its times, an open patrol counted up to
// LostAfter past its last point, members with cases and no patrols.
func TestPatrolStats(t *testing.T) {
	now := time.Date(2026, 11, 5, 12, 0, 0, 0, shanghai)
	c := newCity(t, now)
	ctx := context.Background()
	wang, li, zhao := c.member("wang"), c.member("li"), c.member("zhao")
	codeX, x := c.cell(0)
	_, y := c.cell(1)
	_, z := c.cell(2)
	_, w := c.cell(len(c.cells) - 1)

	// wang: 31 Oct 23:00 to 1 Nov 01:00, a fix every 10 min: in X until
	// 23:50, in Y from midnight to 00:30, in Z to 01:00.
	start := time.Date(2026, 10, 31, 23, 0, 0, 0, shanghai)
	p := c.start(wang, start)
	var pts []Point
	for i := range 13 {
		spot := x
		switch {
		case i >= 10:
			spot = z
		case i >= 6:
			spot = y
		}
		pts = append(pts, Point{At: start.Add(time.Duration(i) * 10 * time.Minute), Lon: spot[0] + float64(i)*0.00001, Lat: spot[1], AccuracyM: acc(5)})
	}
	c.add(p.ID, wang, pts...)
	end := start.Add(2 * time.Hour)
	if _, _, err := c.svc.End(ctx, p.ID, wang, &end); err != nil {
		t.Fatal(err)
	}
	octDist, novDist := c.geoLength(pts[:6]), c.geoLength(pts[5:])
	// li: open since 11:00 today, in W, one point at 11:10: counted until
	// 11:20 (LostAfter past the last point), not until now (12:00).
	q := c.start(li, now.Add(-time.Hour))
	c.add(q.ID, li, Point{At: now.Add(-50 * time.Minute), Lon: w[0], Lat: w[1]})

	tasks := map[int64]Tasks{zhao.UserID: {Open: 3, Overdue: 1}, wang.UserID: {Open: 1}}
	row := func(m MemberStats) string {
		return fmt.Sprintf("%s patrols=%d hours=%.2f grids=%d tasks=%d/%d", m.User.Username, m.Patrols, m.Hours, m.GridsCovered, m.OpenTasks, m.OverdueTasks)
	}
	for _, tc := range []struct {
		name, month string
		v           Viewer
		members     []int64
		rows        []string
		dist        map[string]float64
	}{
		{"October", "2026-10", Viewer{All: true}, nil,
			[]string{"wang patrols=1 hours=1.00 grids=1 tasks=1/0", "zhao patrols=0 hours=0.00 grids=0 tasks=3/1"},
			map[string]float64{"wang": octDist}},
		{"November", "2026-11", Viewer{All: true}, nil,
			[]string{"li patrols=1 hours=0.33 grids=1 tasks=0/0", "wang patrols=1 hours=1.00 grids=2 tasks=1/0", "zhao patrols=0 hours=0.00 grids=0 tasks=3/1"},
			map[string]float64{"wang": novDist, "li": 0}},
		{"November, scoped to X", "2026-11", Viewer{All: true, Grids: []int64{c.ids[codeX]}}, nil,
			[]string{"wang patrols=1 hours=1.00 grids=2 tasks=1/0", "zhao patrols=0 hours=0.00 grids=0 tasks=3/1"}, nil},
		{"wang's own row", "2026-11", wang, []int64{wang.UserID},
			[]string{"wang patrols=1 hours=1.00 grids=2 tasks=1/0"}, nil},
		{"zhao's own row", "2026-11", zhao, []int64{zhao.UserID},
			[]string{"zhao patrols=0 hours=0.00 grids=0 tasks=3/1"}, nil},
		{"December", "2026-12", Viewer{All: true}, nil,
			[]string{"wang patrols=0 hours=0.00 grids=0 tasks=1/0", "zhao patrols=0 hours=0.00 grids=0 tasks=3/1"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := c.svc.MonthQuery(tc.month, "Asia/Shanghai")
			if err != nil {
				t.Fatal(err)
			}
			q.Tasks, q.Members = tasks, tc.members
			st, err := c.svc.Stats(ctx, q, tc.v)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range st.Members {
				got = append(got, row(m))
				if want, ok := tc.dist[m.User.Username]; ok && math.Abs(m.DistanceM-want) > 1 {
					t.Errorf("%s's distance %.1f m, want %.1f", m.User.Username, m.DistanceM, want)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.rows, "\n") {
				t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.rows, "\n"))
			}
			if st.Month != tc.month || !st.From.Equal(q.From) {
				t.Errorf("month %s from %v", st.Month, st.From)
			}
		})
	}
	if _, err := c.svc.MonthQuery("2026-13", "Asia/Shanghai"); gridwatch.ErrorDetails(err)["param"] != "month" {
		t.Errorf("month 2026-13: %v", err)
	}
	if _, err := c.svc.MonthQuery("", "Mars/Olympus"); gridwatch.ErrorDetails(err)["param"] != "tz" {
		t.Errorf("tz Mars/Olympus: %v", err)
	}
	if q, err := c.svc.MonthQuery("", "UTC"); err != nil || q.Month != "2026-11" {
		t.Errorf("the current month: %+v %v", q, err)
	}
}
