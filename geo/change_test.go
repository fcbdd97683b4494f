package geo_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twpayne/go-geom"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/camera"
	"gridwatch/geo"
	"gridwatch/incident"
	"gridwatch/internal/domain"
	"gridwatch/internal/testdb"
)

// The fixture: one community C (113.700–113.710 E, 34.800–34.805 N, about
// 910 × 555 m) under its street and district, cut at 113.705 into grid A
// (west) and grid B (east).
const (
	west, mid, east = 113.700, 113.705, 113.710
	south, north    = 34.800, 34.805
	codeA, codeB    = "410105001001001", "410105001001002"
	codeC           = "410105001001"
	metre           = 1.0 / 91_000 // about a metre of longitude here
)

func rect(x0, y0, x1, y1 float64) string {
	return fmt.Sprintf(`{"type":"Polygon","coordinates":[[[%v,%v],[%v,%v],[%v,%v],[%v,%v],[%v,%v]]]}`, x0, y0, x1, y0, x1, y1, x0, y1, x0, y0)
}

func feature(code, name, level, parent, geometry string) string {
	p := ""
	if parent != "" {
		p = fmt.Sprintf(`,"parent_code":%q`, parent)
	}
	return fmt.Sprintf(`{"type":"Feature","properties":{"code":%q,"name":%q,"level":%q%s},"geometry":%s}`, code, name, level, p, geometry)
}

type fixture struct {
	t         *testing.T
	pool      *pgxpool.Pool
	grids     *geo.Store
	cams      *camera.Store
	incidents *incident.Service
	ids       map[string]int64
	ctx       context.Context
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	pool := testdb.New(t)
	d := domain.New(pool, domain.Options{Grids: geo.StoreOptions{OverlapToleranceM2: 1}})
	f := &fixture{t: t, pool: pool, grids: d.Grids, cams: d.Cameras, incidents: d.Incidents, ids: map[string]int64{},
		ctx: audit.WithActor(context.Background(), audit.Actor{Kind: "user", Name: "gis-wang"})}
	all := rect(west, south, east, north)
	fc := `{"type":"FeatureCollection","features":[` + strings.Join([]string{
		feature("410105", "金水区", "district", "", all),
		feature("410105001", "经八路街道", "street", "410105", all),
		feature(codeC, "文化社区", "community", "410105001", all),
		feature(codeA, "文化一网格", "grid", codeC, rect(west, south, mid, north)),
		feature(codeB, "文化二网格", "grid", codeC, rect(mid, south, east, north)),
	}, ",") + `]}`
	fs, err := geo.ParseFeatureCollection([]byte(fc), geo.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.grids.Import(f.ctx, fs, geo.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range res.Grids {
		f.ids[g.Code] = g.ID
	}
	return f
}

func (f *fixture) version(code string) int {
	f.t.Helper()
	g, err := f.grids.Get(f.ctx, f.ids[code])
	if err != nil {
		f.t.Fatal(err)
	}
	return g.Version
}

func (f *fixture) camera(code string, lon, lat float64) int64 {
	f.t.Helper()
	sp := camera.Spec{Code: code, Name: code, Location: &camera.Point{Type: "Point", Coordinates: [2]float64{lon, lat}}, MainURL: "rtsp://127.0.0.1:1/x"}
	if err := sp.Check(geo.CRSWGS84); err != nil {
		f.t.Fatal(err)
	}
	c, err := f.cams.Create(f.ctx, sp)
	if err != nil {
		f.t.Fatal(err)
	}
	return c.ID
}

// incident files a case at lon, lat; registered ones are moved on in the
// workflow.
func (f *fixture) incident(title string, lon, lat float64, registered bool) int64 {
	f.t.Helper()
	in, _, err := f.incidents.Create(f.ctx, incident.NewIncident{Source: "patrol", Category: "0101", Title: title, Lon: lon, Lat: lat,
		ReportedAt: time.Now(), Priority: "normal"}, incident.Reporter{Name: "test"}, incident.Viewer{})
	if err != nil {
		f.t.Fatal(err)
	}
	if registered {
		if _, err := f.pool.Exec(f.ctx, `UPDATE incidents SET status = 'registered', registered_at = now() WHERE id = $1`, in.ID); err != nil {
			f.t.Fatal(err)
		}
	}
	return in.ID
}

func (f *fixture) gridOf(table string, id int64) string {
	f.t.Helper()
	var code *string
	if err := f.pool.QueryRow(f.ctx, `SELECT g.code FROM `+table+` x LEFT JOIN grids g ON g.id = x.grid_id WHERE x.id = $1`, id).Scan(&code); err != nil {
		f.t.Fatal(err)
	}
	if code == nil {
		return ""
	}
	return *code
}

func (f *fixture) flagged(id int64) bool {
	f.t.Helper()
	var b bool
	if err := f.pool.QueryRow(f.ctx, `SELECT needs_redispatch FROM incidents WHERE id = $1`, id).Scan(&b); err != nil {
		f.t.Fatal(err)
	}
	return b
}

func mustGeometry(t *testing.T, s string) *geom.MultiPolygon {
	t.Helper()
	g, err := geo.ParseGeometry([]byte(s), geo.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func line(t *testing.T, pts ...[2]float64) *geom.LineString {
	t.Helper()
	flat := make([]float64, 0, 2*len(pts))
	for _, p := range pts {
		flat = append(flat, p[0], p[1])
	}
	return geom.NewLineStringFlat(geom.XY, flat).SetSRID(4326)
}

func moveIDs(l geo.MoveList) map[int64]string {
	m := map[int64]string{}
	for _, it := range l.Items {
		from, to := "", ""
		if it.From != nil {
			from = it.From.Code
		}
		if it.To != nil {
			to = it.To.Code
		}
		m[it.ID] = from + ">" + to
	}
	return m
}

func TestRedrawNeedsTheCurrentVersion(t *testing.T) {
	f := newFixture(t)
	a := f.ids[codeA]
	smaller := mustGeometry(t, rect(west, south, mid, north-50*metre))
	if _, err := f.grids.Redraw(f.ctx, a, smaller, geo.ChangeOptions{}); gridwatch.ErrorCode(err) != gridwatch.ENeedsVersion {
		t.Fatalf("without a version: %v", err)
	}
	rep, err := f.grids.Redraw(f.ctx, a, smaller, geo.ChangeOptions{IfMatch: 1})
	if err != nil || !rep.Committed || rep.Grids[0].VersionBefore != 1 || rep.Grids[0].VersionAfter != 2 {
		t.Fatalf("redraw: %+v, %v", rep, err)
	}
	// Someone else still holds version 1.
	_, err = f.grids.Redraw(f.ctx, a, mustGeometry(t, rect(west, south, mid, north)), geo.ChangeOptions{IfMatch: 1})
	if gridwatch.ErrorCode(err) != gridwatch.EStale || !strings.Contains(err.Error(), "version 2 by gis-wang") {
		t.Fatalf("stale edit: %v", err)
	}
	if d := gridwatch.ErrorDetails(err); d["changed_by"] != "gis-wang" || d["etag"] != geo.ETag(a, 2) {
		t.Errorf("stale details %v", d)
	}
	if v := geo.ParseETag(a, `W/"x", `+geo.ETag(a, 7)); v != 7 {
		t.Errorf("ParseETag = %d", v)
	}
	if v := geo.ParseETag(a, geo.ETag(a+1, 7)); v != 0 {
		t.Errorf("another grid's ETag read as version %d", v)
	}
	// History: both versions, the first closed by the redraw; as of a
	// moment between, the old boundary.
	vs, err := f.grids.Versions(f.ctx, a, false)
	if err != nil || len(vs) != 2 || vs[0].Version != 2 || vs[0].Change != geo.ChangeRedraw || vs[0].ChangedBy != "gis-wang" ||
		vs[1].ValidTo == nil || *vs[1].EndChange != geo.ChangeRedraw {
		t.Fatalf("versions %+v, %v", vs, err)
	}
	old, err := f.grids.VersionAt(f.ctx, a, vs[1].ValidFrom.Add(time.Microsecond))
	if err != nil || old.Version != 1 || old.AreaM2 <= vs[0].AreaM2 {
		t.Errorf("as of before the redraw: %+v, %v", old, err)
	}
	if _, err := f.grids.VersionAt(f.ctx, a, vs[1].ValidFrom.Add(-time.Hour)); gridwatch.ErrorCode(err) != gridwatch.ENotFound {
		t.Errorf("before it existed: %v", err)
	}
}

// TestMoveEdge moves the A|B edge 100 m east. Cameras and cases in the
// strip go to A; one exactly on the new edge too (a shared edge belongs to
// the lowest code); a registered case keeps B and is flagged; the ones
// elsewhere stay. The preview says exactly what the commit then does.
func TestMoveEdge(t *testing.T) {
	f := newFixture(t)
	a, b := f.ids[codeA], f.ids[codeB]
	newX := mid + 100*metre
	midLat := (south + north) / 2
	camStrip := f.camera("CAM-STRIP", mid+50*metre, midLat)
	camEast := f.camera("CAM-EAST", east-50*metre, midLat)
	caseStrip := f.incident("in the strip", mid+50*metre, midLat+10*metre, false)
	caseOnEdge := f.incident("on the new edge", newX, midLat, false)
	caseOldEdge := f.incident("on the old edge", mid, midLat-10*metre, false)
	caseWest := f.incident("west", west+50*metre, midLat, false)
	registered := f.incident("registered in the strip", mid+30*metre, midLat, true)
	if f.gridOf("cameras", camStrip) != codeB || f.gridOf("incidents", caseOnEdge) != codeB || f.gridOf("incidents", caseOldEdge) != codeA {
		t.Fatal("fixture: unexpected grids before the move")
	}
	edge := line(t, [2]float64{newX, south}, [2]float64{newX, north})

	preview, err := f.grids.MoveEdge(f.ctx, a, b, edge, geo.ChangeOptions{IfMatch: 1, DryRun: true}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if preview.Committed || preview.Errors != 0 {
		t.Fatalf("preview: %+v", preview)
	}
	wantCams := map[int64]string{camStrip: codeB + ">" + codeA}
	wantCases := map[int64]string{caseStrip: codeB + ">" + codeA, caseOnEdge: codeB + ">" + codeA}
	wantFlagged := map[int64]string{registered: codeB + ">" + codeA}
	check := func(what string, rep *geo.ChangeReport) {
		t.Helper()
		if got := moveIDs(rep.Cameras); fmt.Sprint(got) != fmt.Sprint(wantCams) || rep.Cameras.Count != 1 {
			t.Errorf("%s: cameras %v, want %v", what, got, wantCams)
		}
		if got := moveIDs(rep.Incidents); fmt.Sprint(got) != fmt.Sprint(wantCases) {
			t.Errorf("%s: incidents %v, want %v", what, got, wantCases)
		}
		if got := moveIDs(rep.Flagged); fmt.Sprint(got) != fmt.Sprint(wantFlagged) {
			t.Errorf("%s: flagged %v, want %v", what, got, wantFlagged)
		}
		if len(rep.Grids) != 2 {
			t.Fatalf("%s: grids %+v", what, rep.Grids)
		}
		ga, gb := rep.Grids[0], rep.Grids[1]
		gained := ga.AreaAfterM2 - ga.AreaBeforeM2
		if gained < 100*555*0.95 || gained > 100*555*1.05 || (gb.AreaBeforeM2-gb.AreaAfterM2-gained) > 1 {
			t.Errorf("%s: areas %+v: want A to gain about 55,500 m² and B to lose as much", what, rep.Grids)
		}
	}
	check("preview", preview)
	// The preview changed nothing.
	if f.version(codeA) != 1 || f.gridOf("cameras", camStrip) != codeB || f.gridOf("incidents", caseStrip) != codeB || f.flagged(registered) {
		t.Fatal("the preview changed the data")
	}
	rev0, _ := f.grids.Revision(f.ctx)
	rep, err := f.grids.MoveEdge(f.ctx, a, b, edge, geo.ChangeOptions{IfMatch: 1}, 1)
	if err != nil || !rep.Committed {
		t.Fatalf("commit: %+v, %v", rep, err)
	}
	check("commit", rep)
	if rev, _ := f.grids.Revision(f.ctx); rev != rev0+1 || rep.Revision != rev {
		t.Errorf("revision %d → %d (report %d), want one bump", rev0, rev, rep.Revision)
	}
	for id, want := range map[int64]string{caseStrip: codeA, caseOnEdge: codeA, caseOldEdge: codeA, caseWest: codeA, registered: codeB} {
		if got := f.gridOf("incidents", id); got != want {
			t.Errorf("incident %d in %s, want %s", id, got, want)
		}
	}
	if f.gridOf("cameras", camStrip) != codeA || f.gridOf("cameras", camEast) != codeB {
		t.Error("cameras not where they belong")
	}
	if !f.flagged(registered) || f.flagged(caseWest) {
		t.Error("flags")
	}
	if f.version(codeA) != 2 || f.version(codeB) != 2 {
		t.Errorf("versions %d, %d; want 2, 2", f.version(codeA), f.version(codeB))
	}
	var n int
	if err := f.pool.QueryRow(f.ctx, `SELECT count(*) FROM events WHERE type = 'grid.changed' AND data->>'kind' = 'move_edge'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d grid.changed events, %v", n, err)
	}
	if err := f.pool.QueryRow(f.ctx, `SELECT count(*) FROM audit_log WHERE action = 'grid.move_edge' AND actor_name = 'gis-wang'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d audit entries, %v", n, err)
	}
	// Moving it back clears the flag.
	back := line(t, [2]float64{mid, south}, [2]float64{mid, north})
	if _, err := f.grids.MoveEdge(f.ctx, a, b, back, geo.ChangeOptions{IfMatch: 2}, 2); err != nil {
		t.Fatal(err)
	}
	if f.flagged(registered) || f.gridOf("incidents", caseStrip) != codeB {
		t.Error("after moving the edge back")
	}
	// A line that does not cut the two grids.
	short := line(t, [2]float64{mid + 10*metre, south + 100*metre}, [2]float64{mid + 10*metre, north - 100*metre})
	if _, err := f.grids.MoveEdge(f.ctx, a, b, short, geo.ChangeOptions{IfMatch: 3, DryRun: true}, 0); gridwatch.ErrorCode(err) != gridwatch.EInvalid ||
		gridwatch.ErrorDetails(err)["field"] != "line" {
		t.Errorf("a line that cuts nothing: %v", err)
	}
}

// TestTopologyFindings redraws grid A into each designed fault.
func TestTopologyFindings(t *testing.T) {
	f := newFixture(t)
	a := f.ids[codeA]
	tests := []struct {
		name     string
		geometry string
		kind     string
		severity string
		other    string
	}{
		{"overlap", rect(west, south, mid+20*metre, north), "overlap", geo.SeverityError, codeB},
		{"outside its parent", rect(west-30*metre, south, mid, north), "outside_parent", geo.SeverityError, codeC},
		{"gap", rect(west, south, mid-30*metre, north), "gap", geo.SeverityWarning, ""},
		{"invalid", fmt.Sprintf(`{"type":"Polygon","coordinates":[[[%v,%v],[%v,%v],[%v,%v],[%v,%v],[%v,%v]]]}`,
			west, south, mid, north, mid, south, west, north, west, south), "invalid", geo.SeverityError, ""},
		{"sliver", fmt.Sprintf(`{"type":"MultiPolygon","coordinates":[%s,%s]}`,
			strings.TrimSuffix(strings.TrimPrefix(rect(west+1*metre, south, mid, north), `{"type":"Polygon","coordinates":`), "}"),
			strings.TrimSuffix(strings.TrimPrefix(rect(west, south, west+0.4*metre, north), `{"type":"Polygon","coordinates":`), "}")),
			"sliver", geo.SeverityWarning, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := mustGeometry(t, tt.geometry)
			rep, err := f.grids.Redraw(f.ctx, a, g, geo.ChangeOptions{IfMatch: f.version(codeA), DryRun: true})
			if err != nil {
				t.Fatal(err)
			}
			var found *geo.Finding
			for i := range rep.Findings {
				if rep.Findings[i].Kind == tt.kind {
					found = &rep.Findings[i]
				}
			}
			if found == nil || found.Severity != tt.severity || found.Other != tt.other || len(found.Location) != 2 {
				t.Fatalf("findings %+v: want a %s %s with %q and a location", rep.Findings, tt.severity, tt.kind, tt.other)
			}
			before := f.version(codeA)
			_, err = f.grids.Redraw(f.ctx, a, g, geo.ChangeOptions{IfMatch: before})
			if tt.severity == geo.SeverityError {
				if gridwatch.ErrorCode(err) != gridwatch.ETopology || f.version(codeA) != before {
					t.Errorf("commit with an error finding: %v (version %d → %d)", err, before, f.version(codeA))
				}
				return
			}
			if err != nil || f.version(codeA) != before+1 {
				t.Errorf("commit with a warning: %v", err)
			}
			// Put it back for the next case.
			if _, err := f.grids.Redraw(f.ctx, a, mustGeometry(t, rect(west, south, mid, north)), geo.ChangeOptions{IfMatch: before + 1}); err != nil {
				t.Fatal(err)
			}
		})
	}
	// A community redrawn smaller than its grids leaves them outside.
	c := f.ids[codeC]
	rep, err := f.grids.Redraw(f.ctx, c, mustGeometry(t, rect(west, south, east-40*metre, north)), geo.ChangeOptions{IfMatch: 1, DryRun: true})
	if err != nil || rep.Errors == 0 || rep.Findings[0].Kind != "child_outside" && rep.Findings[len(rep.Findings)-1].Kind != "child_outside" {
		t.Errorf("community smaller than its grids: %+v, %v", rep, err)
	}
}

// TestSplitAndMerge splits grid A in two, then merges the new grid back.
func TestSplitAndMerge(t *testing.T) {
	f := newFixture(t)
	a := f.ids[codeA]
	cut := south + 200*metre // 200/91000° of latitude: south piece ~244 m, north piece ~311 m
	southCase := f.incident("south", (west+mid)/2, south+50*metre, false)
	southRegistered := f.incident("south, registered", (west+mid)/2, south+60*metre, true)
	northCase := f.incident("north", (west+mid)/2, north-50*metre, false)
	blade := line(t, [2]float64{west, cut}, [2]float64{mid, cut})
	newCode := "410105001001003"
	if _, err := f.grids.Split(f.ctx, a, blade, geo.NewGrid{Code: codeB, Name: "重复"}, geo.ChangeOptions{IfMatch: 1}); gridwatch.ErrorCode(err) != gridwatch.EConflict {
		t.Fatalf("split to an existing code: %v", err)
	}
	rep, err := f.grids.Split(f.ctx, a, blade, geo.NewGrid{Code: newCode, Name: "文化三网格"}, geo.ChangeOptions{IfMatch: 1})
	if err != nil {
		t.Fatal(err)
	}
	var created *geo.GridChange
	for i := range rep.Grids {
		if rep.Grids[i].Created {
			created = &rep.Grids[i]
		}
	}
	if created == nil || created.Code != newCode || created.AreaAfterM2 < 105_000 || created.AreaAfterM2 > 117_000 {
		t.Fatalf("split report %+v", rep.Grids)
	}
	if f.gridOf("incidents", southCase) != newCode || f.gridOf("incidents", northCase) != codeA ||
		f.gridOf("incidents", southRegistered) != codeA || !f.flagged(southRegistered) {
		t.Errorf("after the split: south %s, north %s, registered %s (flagged %v)", f.gridOf("incidents", southCase),
			f.gridOf("incidents", northCase), f.gridOf("incidents", southRegistered), f.flagged(southRegistered))
	}
	// A user scoped to the new grid stops the merge that would remove it.
	newID := created.ID
	if _, err := f.pool.Exec(f.ctx, `WITH u AS (INSERT INTO users (username, role, password_hash) VALUES ('leader-three', 'grid_leader', 'x') RETURNING id)
		INSERT INTO user_grids SELECT id, $1 FROM u`, newID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.grids.Merge(f.ctx, a, newID, geo.ChangeOptions{IfMatch: 2}, 0); gridwatch.ErrorCode(err) != gridwatch.EConflict ||
		!strings.Contains(err.Error(), "leader-three") {
		t.Fatalf("merge away a scoped grid: %v", err)
	}
	if _, err := f.pool.Exec(f.ctx, `DELETE FROM user_grids`); err != nil {
		t.Fatal(err)
	}
	rep, err = f.grids.Merge(f.ctx, a, newID, geo.ChangeOptions{IfMatch: 2}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if f.gridOf("incidents", southCase) != codeA || f.flagged(southRegistered) {
		t.Errorf("after the merge: south in %s, registered flagged %v", f.gridOf("incidents", southCase), f.flagged(southRegistered))
	}
	if _, err := f.grids.Get(f.ctx, newID); gridwatch.ErrorCode(err) != gridwatch.ENotFound {
		t.Errorf("the merged grid is still there: %v", err)
	}
	vs, err := f.grids.Versions(f.ctx, newID, false)
	if err != nil || len(vs) != 1 || vs[0].ValidTo == nil || *vs[0].EndChange != geo.ChangeMerge {
		t.Errorf("the merged grid's history: %+v, %v", vs, err)
	}
	if g, _ := f.grids.Get(f.ctx, a); g.AreaM2 < 500*455*0.95*1.0 {
		t.Errorf("A after the merge: %.0f m²", g.AreaM2)
	}
	// Grids that are not neighbours do not merge.
	if _, err := f.grids.Merge(f.ctx, a, f.ids[codeC], geo.ChangeOptions{IfMatch: 3, DryRun: true}, 0); gridwatch.ErrorCode(err) != gridwatch.EInvalid {
		t.Errorf("merge with the parent: %v", err)
	}
}

// TestDeleteFollows: deleting a grid is a change like the others. An
// account scoped to it or staff on it stop it; then its camera and cases
// go to the grid now covering them (its community), and its history is
// closed as deleted.
func TestDeleteFollows(t *testing.T) {
	f := newFixture(t)
	b := f.ids[codeB]
	cam := f.camera("CAM-B", east-50*metre, (south+north)/2)
	registered := f.incident("registered in B", east-60*metre, (south+north)/2, true)
	if _, err := f.pool.Exec(f.ctx, `WITH u AS (INSERT INTO users (username, role, password_hash) VALUES ('leader-b', 'grid_leader', 'x') RETURNING id)
		INSERT INTO user_grids SELECT id, $1 FROM u`, b); err != nil {
		t.Fatal(err)
	}
	if err := f.grids.Delete(f.ctx, b); gridwatch.ErrorCode(err) != gridwatch.EConflict || !strings.Contains(err.Error(), "leader-b") {
		t.Fatalf("delete a grid someone is scoped to: %v", err)
	}
	if _, err := f.pool.Exec(f.ctx, `DELETE FROM user_grids; INSERT INTO grid_staff (grid_id, role, name) VALUES (`+fmt.Sprint(b)+`, 'volunteer', '李四')`); err != nil {
		t.Fatal(err)
	}
	if err := f.grids.Delete(f.ctx, b); gridwatch.ErrorCode(err) != gridwatch.EConflict || !strings.Contains(err.Error(), "staff") {
		t.Fatalf("delete a grid with staff: %v", err)
	}
	if _, err := f.pool.Exec(f.ctx, `DELETE FROM grid_staff`); err != nil {
		t.Fatal(err)
	}
	if err := f.grids.DeleteVersion(f.ctx, b, 7); gridwatch.ErrorCode(err) != gridwatch.EStale {
		t.Fatalf("delete of a stale version: %v", err)
	}
	if err := f.grids.DeleteVersion(f.ctx, b, 1); err != nil {
		t.Fatal(err)
	}
	if f.gridOf("cameras", cam) != codeC || f.gridOf("incidents", registered) != codeC {
		t.Errorf("after the delete: camera in %q, case in %q; want both in the community", f.gridOf("cameras", cam), f.gridOf("incidents", registered))
	}
	vs, err := f.grids.Versions(f.ctx, b, false)
	if err != nil || len(vs) != 1 || vs[0].ValidTo == nil || *vs[0].EndChange != geo.ChangeDelete || *vs[0].EndedBy != "gis-wang" {
		t.Errorf("history of the deleted grid: %+v, %v", vs, err)
	}
	// The grids the fixture imported say who imported them.
	if vs, _ := f.grids.Versions(f.ctx, f.ids[codeA], false); vs[0].Change != "import" || vs[0].ChangedBy != "gis-wang" {
		t.Errorf("an imported grid's history: %+v", vs[0])
	}
}

// TestSplitRules: a split's new code must be of the level under the same
// parent; the new grid joins the scopes of the grid it was cut from.
func TestSplitRules(t *testing.T) {
	f := newFixture(t)
	a := f.ids[codeA]
	blade := line(t, [2]float64{west, south + 200*metre}, [2]float64{mid, south + 200*metre})
	for _, code := range []string{"410105999999999", "410105001001", "4101050010010031"} {
		if _, err := f.grids.Split(f.ctx, a, blade, geo.NewGrid{Code: code, Name: "x"}, geo.ChangeOptions{IfMatch: 1}); gridwatch.ErrorCode(err) != gridwatch.EInvalid ||
			gridwatch.ErrorDetails(err)["field"] != "new.code" {
			t.Errorf("split to code %s: %v", code, err)
		}
	}
	if _, err := f.pool.Exec(f.ctx, `WITH u AS (INSERT INTO users (username, role, password_hash) VALUES ('leader-a', 'grid_leader', 'x') RETURNING id)
		INSERT INTO user_grids SELECT id, $1 FROM u`, a); err != nil {
		t.Fatal(err)
	}
	rep, err := f.grids.Split(f.ctx, a, blade, geo.NewGrid{Code: "410105001001003", Name: "文化三网格"}, geo.ChangeOptions{IfMatch: 1})
	if err != nil {
		t.Fatal(err)
	}
	created := createdGrid(rep)
	var scoped bool
	if err := f.pool.QueryRow(f.ctx, `SELECT EXISTS (SELECT 1 FROM user_grids ug JOIN users u ON u.id = ug.user_id WHERE u.username = 'leader-a' AND ug.grid_id = $1)`, created).Scan(&scoped); err != nil || !scoped {
		t.Errorf("the leader of the split grid does not see the new one: %v", err)
	}
}
