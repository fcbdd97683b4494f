package geo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"gridwatch"
	"gridwatch/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

func newTestStore(t testing.TB) *Store {
	t.Helper()
	return NewStore(testdb.New(t), StoreOptions{})
}

func mustParse(t testing.TB, data []byte) []ImportFeature {
	t.Helper()
	fs, err := ParseFeatureCollection(data, ParseOptions{})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return fs
}

func countGrids(t testing.TB, s *Store) int {
	t.Helper()
	var n int
	if err := s.pool.QueryRow(context.Background(), "SELECT count(*) FROM grids").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func problemsOf(t testing.TB, err error) []Problem {
	t.Helper()
	ps, _ := gridwatch.ErrorDetails(err)["problems"].([]Problem)
	if len(ps) == 0 {
		t.Fatalf("error %v has no problems listed", err)
	}
	return ps
}

func TestImportDemoCity(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	res, err := s.Import(ctx, mustParse(t, DemoCity()), ImportOptions{})
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if res.Created != 76 || countGrids(t, s) != 76 {
		t.Fatalf("created %d (stored %d), want 1+3+6+66 = 76", res.Created, countGrids(t, s))
	}
	grids, _, err := s.List(ctx, Filter{Level: LevelGrid})
	if err != nil || len(grids) != 66 {
		t.Fatalf("list grid level: %d, %v; want 66", len(grids), err)
	}
	g := grids[0]
	if g.ParentID == nil || g.ParentCode == "" || !strings.HasPrefix(g.Code, g.ParentCode) || g.AreaM2 <= 0 {
		t.Errorf("grid %+v: want parent, code prefix and area", g)
	}
	if g.Properties["leader"] == nil {
		t.Errorf("grid properties %v: want the 1+X+Y team kept", g.Properties)
	}
	chain, err := s.Chain(ctx, g.ID)
	if err != nil || len(chain) != 4 || chain[0].ID != g.ID || chain[3].Level != LevelDistrict {
		t.Errorf("chain = %+v, %v; want grid → community → street → district", chain, err)
	}
	// Importing it again: every code is taken, nothing changes.
	_, err = s.Import(ctx, mustParse(t, DemoCity()), ImportOptions{})
	if gridwatch.ErrorCode(err) != gridwatch.EConflict || countGrids(t, s) != 76 {
		t.Errorf("re-import: %v (code %s), %d grids; want conflict and 76", err, gridwatch.ErrorCode(err), countGrids(t, s))
	}
}

// bowtie is a self-intersecting ring crossing itself at (113.65, 34.75).
const bowtie = `{"type":"Polygon","coordinates":[[[113.6,34.7],[113.7,34.8],[113.7,34.7],[113.6,34.8],[113.6,34.7]]]}`

func TestImportRejectsBadGeometryWithLocation(t *testing.T) {
	s := newTestStore(t)
	_, err := s.Import(context.Background(), mustParse(t, fc(feat(districtProps, bowtie))), ImportOptions{})
	if gridwatch.ErrorCode(err) != gridwatch.EInvalidGeometry {
		t.Fatalf("err = %v, want invalid_geometry", err)
	}
	p := problemsOf(t, err)[0]
	if p.Reason != "self_intersection" || len(p.Location) != 2 {
		t.Fatalf("problem = %+v, want self_intersection with a location", p)
	}
	if abs(p.Location[0]-113.65) > 1e-9 || abs(p.Location[1]-34.75) > 1e-9 {
		t.Errorf("location = %v, want [113.65, 34.75]", p.Location)
	}
	if !strings.Contains(err.Error(), "113.65") || !strings.Contains(err.Error(), "repair=true") {
		t.Errorf("message %q should give the place and the way out", err)
	}
	if n := countGrids(t, s); n != 0 {
		t.Errorf("%d grids stored after a refused import", n)
	}
}

func TestImportRepair(t *testing.T) {
	s := newTestStore(t)
	res, err := s.Import(context.Background(), mustParse(t, fc(feat(districtProps, bowtie))), ImportOptions{Repair: true})
	if err != nil {
		t.Fatalf("import with repair: %v", err)
	}
	if len(res.Repairs) != 1 {
		t.Fatalf("repairs = %+v, want one", res.Repairs)
	}
	r := res.Repairs[0]
	if r.Code != "410105" || r.Reason == "" || r.PartsAfter != 2 || r.AreaAfterM2 <= 0 {
		t.Errorf("repair = %+v, want the bowtie split into 2 valid triangles", r)
	}
	g, err := s.Get(context.Background(), res.Grids[0].ID)
	if err != nil || g.Geometry.NumPolygons() != 2 {
		t.Errorf("stored %v, %v; want a 2-part MultiPolygon", g, err)
	}
}

func TestImportAllOrNothing(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	tests := []struct {
		name       string
		features   []string
		wantCode   string
		wantReason string
		wantInMsg  string
	}{
		{"unknown parent", []string{feat(districtProps, squareGeom), feat(`{"code":"410105001001","name":"c","level":"community","parent_code":"410105001"}`, squareGeom)},
			gridwatch.EInvalid, "unknown_parent", "parent 410105001"},
		{"parent two levels up", []string{feat(districtProps, squareGeom), feat(`{"code":"410105001","name":"s","level":"street","parent_code":"410105"}`, squareGeom),
			feat(`{"code":"410105001001001","name":"g","level":"grid","parent_code":"410105001"}`, squareGeom)},
			gridwatch.EInvalid, "bad_parent", "one level up"},
		{"child outside parent", []string{feat(districtProps, squareGeom),
			feat(streetProps, `{"type":"Polygon","coordinates":[[[113.65,34.75],[113.75,34.75],[113.75,34.78],[113.65,34.78],[113.65,34.75]]]}`)},
			gridwatch.ETopology, "outside_parent", "outside its parent 410105"},
		{"siblings overlap", []string{feat(districtProps, squareGeom),
			feat(`{"code":"410105001","name":"a","level":"street","parent_code":"410105"}`, `{"type":"Polygon","coordinates":[[[113.6,34.7],[113.66,34.7],[113.66,34.8],[113.6,34.8],[113.6,34.7]]]}`),
			feat(`{"code":"410105002","name":"b","level":"street","parent_code":"410105"}`, `{"type":"Polygon","coordinates":[[[113.65,34.7],[113.7,34.7],[113.7,34.8],[113.65,34.8],[113.65,34.7]]]}`)},
			gridwatch.ETopology, "overlap", "overlaps grid 410105002"},
		{"one bad geometry among good", []string{feat(districtProps, squareGeom), feat(streetProps, bowtie)},
			gridwatch.EInvalidGeometry, "self_intersection", "feature 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Import(ctx, mustParse(t, fc(tt.features...)), ImportOptions{})
			if gridwatch.ErrorCode(err) != tt.wantCode {
				t.Fatalf("err = %v (code %s), want %s", err, gridwatch.ErrorCode(err), tt.wantCode)
			}
			p := problemsOf(t, err)[0]
			if p.Reason != tt.wantReason || !strings.Contains(err.Error(), tt.wantInMsg) {
				t.Errorf("first problem %+v / message %q; want reason %s mentioning %q", p, err, tt.wantReason, tt.wantInMsg)
			}
			if n := countGrids(t, s); n != 0 {
				t.Errorf("%d grids stored; want none", n)
			}
		})
	}
}

func TestImportOverlapArea(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, mustParse(t, fc(feat(districtProps, squareGeom),
		feat(`{"code":"410105001","name":"a","level":"street","parent_code":"410105"}`, `{"type":"Polygon","coordinates":[[[113.6,34.7],[113.66,34.7],[113.66,34.8],[113.6,34.8],[113.6,34.7]]]}`))), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	// A new street overlapping the stored one by 0.01° × 0.1° (≈ 914 m × 11 km).
	_, err := s.Import(ctx, mustParse(t, fc(feat(`{"code":"410105002","name":"b","level":"street","parent_code":"410105"}`,
		`{"type":"Polygon","coordinates":[[[113.65,34.7],[113.7,34.7],[113.7,34.8],[113.65,34.8],[113.65,34.7]]]}`))), ImportOptions{})
	p := problemsOf(t, err)[0]
	if p.Reason != "overlap" || p.Other != "410105001" || p.AreaM2 == nil || *p.AreaM2 < 9e6 || *p.AreaM2 > 1.1e7 || len(p.Location) != 2 {
		t.Errorf("problem = %+v, want an overlap of ≈1.0e7 m² with 410105001 and a location", p)
	}
	if countGrids(t, s) != 2 {
		t.Error("the refused import changed what was stored")
	}
	// Touching along an edge is not an overlap.
	if _, err := s.Import(ctx, mustParse(t, fc(feat(`{"code":"410105002","name":"b","level":"street","parent_code":"410105"}`,
		`{"type":"Polygon","coordinates":[[[113.66,34.7],[113.7,34.7],[113.7,34.8],[113.66,34.8],[113.66,34.7]]]}`))), ImportOptions{}); err != nil {
		t.Errorf("edge-sharing neighbour refused: %v", err)
	}
}

func TestDeleteAndGet(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	res, err := s.Import(ctx, mustParse(t, fc(feat(districtProps, squareGeom), feat(streetProps, squareGeom))), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	district, street := res.Grids[0].ID, res.Grids[1].ID
	if err := s.Delete(ctx, district); gridwatch.ErrorCode(err) != gridwatch.EConflict || !strings.Contains(err.Error(), "1 child") {
		t.Errorf("delete parent: %v, want conflict naming 1 child", err)
	}
	if err := s.Delete(ctx, street); err != nil {
		t.Errorf("delete leaf: %v", err)
	}
	if _, err := s.Get(ctx, street); gridwatch.ErrorCode(err) != gridwatch.ENotFound {
		t.Errorf("get deleted: %v, want not_found", err)
	}
	if err := s.Delete(ctx, street); gridwatch.ErrorCode(err) != gridwatch.ENotFound {
		t.Errorf("delete twice: %v, want not_found", err)
	}
	g, err := s.Get(ctx, district)
	if err != nil || g.Geometry == nil || g.Version != 1 {
		t.Errorf("get district: %+v, %v", g, err)
	}
}

func TestListPagingAndFilters(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, mustParse(t, DemoCity()), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	var after int64
	pages := 0
	for {
		page, next, err := s.List(ctx, Filter{Level: LevelGrid, Limit: 25, After: after})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, g := range page {
			if seen[g.ID] {
				t.Fatalf("grid %d on two pages", g.ID)
			}
			seen[g.ID] = true
		}
		if next == 0 {
			break
		}
		after = next
	}
	if len(seen) != 66 || pages != 3 {
		t.Errorf("paged %d grids in %d pages, want 66 in 3", len(seen), pages)
	}
	streets, _, _ := s.List(ctx, Filter{Level: LevelStreet})
	kids, _, _ := s.List(ctx, Filter{ParentID: streets[0].ID})
	if len(kids) != 2 {
		t.Errorf("street %s has %d children, want 2 communities", streets[0].Code, len(kids))
	}
	// A bbox around one corner of the district finds only grids there.
	some, _, _ := s.List(ctx, Filter{Level: LevelGrid, BBox: &BBox{0, 0, 1, 1}})
	if len(some) != 0 {
		t.Errorf("bbox far away found %d grids", len(some))
	}
}

func TestWriteGeoJSON(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, mustParse(t, DemoCity()), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.WriteGeoJSON(ctx, &buf, Filter{}); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Type     string `json:"type"`
		Features []struct {
			ID         int64          `json:"id"`
			Properties map[string]any `json:"properties"`
			Geometry   struct {
				Type string `json:"type"`
			} `json:"geometry"`
		} `json:"features"`
	}
	if err := json.Unmarshal(buf.Bytes(), &out); err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	if out.Type != "FeatureCollection" || len(out.Features) != 76 {
		t.Fatalf("got %s with %d features, want 76", out.Type, len(out.Features))
	}
	f := out.Features[0]
	if f.Properties["level"] != "district" || f.Geometry.Type != "MultiPolygon" || f.ID == 0 || f.Properties["area_m2"].(float64) <= 0 {
		t.Errorf("first feature %+v: want the district, with id, area and MultiPolygon", f)
	}
	// Round trip: what we export imports again elsewhere.
	s2 := newTestStore(t)
	if _, err := s2.Import(ctx, mustParse(t, buf.Bytes()), ImportOptions{}); err != nil {
		t.Errorf("re-importing the export: %v", err)
	}
}

// TestIndexAgreesWithPostGIS: the in-process index and PostGIS give the same
// chain for random points, every lattice vertex (shared by up to 4 grids)
// and points on shared edges.
func TestIndexAgreesWithPostGIS(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	fs := mustParse(t, DemoCity())
	if _, err := s.Import(ctx, fs, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	loc := NewLocator(s)
	if err := loc.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	var pts [][2]float64
	for _, f := range fs {
		for _, ring := range f.Geometry.Polygon(0).Coords() {
			for i, c := range ring {
				pts = append(pts, [2]float64{c[0], c[1]})
				if i > 0 { // the midpoint of each edge
					p := ring[i-1]
					pts = append(pts, [2]float64{(p[0] + c[0]) / 2, (p[1] + c[1]) / 2})
				}
			}
		}
	}
	b := fs[0].Geometry.Bounds()
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		pts = append(pts, [2]float64{
			b.Min(0) - 0.01 + r.Float64()*(b.Max(0)-b.Min(0)+0.02),
			b.Min(1) - 0.01 + r.Float64()*(b.Max(1)-b.Min(1)+0.02),
		})
	}
	mismatches := 0
	for _, p := range pts {
		want, err := s.LocateDB(ctx, p[0], p[1])
		if err != nil {
			t.Fatal(err)
		}
		got := loc.Locate(p[0], p[1])
		if !sameChain(got, want) {
			mismatches++
			if mismatches <= 5 {
				t.Errorf("point %v: index %v, PostGIS %v", p, codes(got), codes(want))
			}
		}
	}
	if mismatches > 0 {
		t.Errorf("%d of %d points disagree", mismatches, len(pts))
	}
	t.Logf("%d points agree", len(pts))
}

func TestLocatorFollowsChanges(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	loc := NewLocator(s)
	if err := loc.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := loc.Locate(113.65, 34.75); len(got) != 0 {
		t.Fatalf("empty store located %v", got)
	}
	res, err := s.Import(ctx, mustParse(t, fc(feat(districtProps, squareGeom))), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.Locate(113.65, 34.75); len(got) != 1 || got[0].Code != "410105" {
		t.Errorf("after import located %v, want 410105", got)
	}
	if err := s.Delete(ctx, res.Grids[0].ID); err != nil {
		t.Fatal(err)
	}
	if got := loc.Locate(113.65, 34.75); len(got) != 0 {
		t.Errorf("after delete located %v", got)
	}
}

func sameChain(a, b []Ref) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID {
			return false
		}
	}
	return true
}

func codes(rs []Ref) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Code
	}
	return out
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// TestLocatorSeesOtherWriters: a change made by another process (here, a
// second store on the same database) reaches the index through Run.
func TestLocatorSeesOtherWriters(t *testing.T) {
	pool := testdb.New(t)
	mine, theirs := NewStore(pool, StoreOptions{}), NewStore(pool, StoreOptions{})
	loc := NewLocator(mine)
	if err := loc.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { loc.Run(ctx, 10*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	if _, err := theirs.Import(context.Background(), mustParse(t, fc(feat(districtProps, squareGeom))), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for {
		reloaded := loc.Reloaded() // taken before the check, so no reload is missed
		if len(loc.Locate(113.65, 34.75)) > 0 {
			break
		}
		select {
		case <-reloaded:
		case <-deadline:
			t.Fatal("the index never saw the other writer's grid")
		}
	}
}

// TestRepairMismatchedEdges: published boundaries whose shared edge does
// not match (a 2 m strip claimed by both streets, and sticking out of the
// district) are refused plainly, and made usable with repair=true.
func TestRepairMismatchedEdges(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	const d = 0.00002 // ≈ 2 m
	features := fc(feat(districtProps, squareGeom),
		feat(`{"code":"410105001","name":"a","level":"street","parent_code":"410105"}`,
			`{"type":"Polygon","coordinates":[[[113.6,34.7],[113.65,34.7],[113.65,34.8],[113.6,34.8],[113.6,34.7]]]}`),
		feat(`{"code":"410105002","name":"b","level":"street","parent_code":"410105"}`,
			fmt.Sprintf(`{"type":"Polygon","coordinates":[[[%v,34.7],[%v,34.7],[%v,34.8],[%v,34.8],[%v,34.7]]]}`, 113.65-d, 113.7+d, 113.7+d, 113.65-d, 113.65-d)))
	_, err := s.Import(ctx, mustParse(t, features), ImportOptions{})
	if gridwatch.ErrorCode(err) != gridwatch.ETopology {
		t.Fatalf("without repair: %v, want a topology error", err)
	}
	res, err := s.Import(ctx, mustParse(t, features), ImportOptions{Repair: true})
	if err != nil {
		t.Fatalf("with repair: %v", err)
	}
	got := map[string]Repair{}
	for _, r := range res.Repairs {
		got[r.Reason] = r
	}
	clip, trim := got["clipped_to_parent"], got["overlap_trimmed"]
	if clip.Code != "410105002" || clip.Other != "410105" || clip.AreaAfterM2 >= clip.AreaBeforeM2 {
		t.Errorf("clip repair = %+v, want street b clipped to the district", clip)
	}
	if trim.Code != "410105002" || trim.Other != "410105001" || trim.AreaAfterM2 >= trim.AreaBeforeM2 {
		t.Errorf("trim repair = %+v, want b's overlap with a cut away", trim)
	}
	// The strip belongs to a (stored first, lower code); b starts at its edge.
	loc := NewLocator(s)
	if err := loc.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if c := loc.Locate(113.65-d/2, 34.75); len(c) == 0 || c[0].Code != "410105001" {
		t.Errorf("the former overlap locates to %v, want 410105001", codes(c))
	}
	if c := loc.Locate(113.7+d/2, 34.75); len(c) != 0 {
		t.Errorf("the part outside the district locates to %v, want nothing", codes(c))
	}
}
