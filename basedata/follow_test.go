package basedata_test

import (
	"slices"
	"testing"

	"github.com/twpayne/go-geom"

	"gridwatch/basedata"
	"gridwatch/geo"
	"gridwatch/geo/geotest"
)

// shrunk is cell f's boundary shrunk towards its middle to the share k of
// its size (the cells are convex: it stays inside).
func shrunk(f geo.ImportFeature, k float64) *geom.MultiPolygon {
	mid := geotest.Middle(f)
	ring := f.Geometry.Polygon(0).Coords()[0]
	flat := make([]float64, 0, 2*len(ring))
	for _, c := range ring {
		flat = append(flat, mid[0]+(c[0]-mid[0])*k, mid[1]+(c[1]-mid[1])*k)
	}
	return geom.NewMultiPolygonFlat(geom.XY, flat, [][]int{{len(flat)}}).SetSRID(4326)
}

func labels(l geo.MoveList) []string {
	out := []string{}
	for _, m := range l.Items {
		out = append(out, m.Label)
	}
	slices.Sort(out)
	return out
}

// TestFollowRedraw: cell 0 redrawn smaller gives up its rim to its
// community. The preview lists the building and the component on the rim,
// and moves nothing; the commit moves them (and re-places footprints
// across the old boundary) to where a placement from scratch puts them,
// and the parcel's shares follow.
func TestFollowRedraw(t *testing.T) {
	p := newPlace(t)
	p.fill()
	code0, mid0 := p.middle(0)
	cell := p.cells[0]
	// On the rim: between the middle and a corner, outside the shrunk cell.
	corner := cell.Geometry.Polygon(0).Coords()[0][0]
	rim := [2]float64{mid0[0] + (corner[0]-mid0[0])*0.8, mid0[1] + (corner[1]-mid0[1])*0.8}
	p.importBuildings(basedata.FormatGeoJSON, "", collection(
		`{"code":"RIM"}`, pointJSON(rim),
		`{"code":"EDGE"}`, box(rim, 0.0008)))
	p.importComponents(collection(`{"code":"RIM-K","class":"0304"}`, pointJSON(rim)))
	for _, c := range []string{"RIM", "EDGE"} {
		if g := p.gridOf("buildings", c); g != code0 {
			t.Fatalf("fixture: %s in %q, want %s", c, g, code0)
		}
	}
	p.household("RIM")
	var shareBefore float64
	if err := p.city.Pool.QueryRow(p.ctx, `SELECT area_m2 FROM parcel_grids WHERE grid_id = $1`, p.ids[code0]).Scan(&shareBefore); err != nil {
		t.Fatal(err)
	}

	id := p.ids[code0]
	g := shrunk(cell, 0.5)
	rep, err := p.city.Grids.Redraw(p.ctx, id, g, geo.ChangeOptions{IfMatch: -1, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := labels(rep.Buildings); !slices.Contains(got, "RIM") || rep.Buildings.Count != len(got) {
		t.Errorf("preview: buildings %v (%d)", got, rep.Buildings.Count)
	}
	if got := labels(rep.Components); !slices.Equal(got, []string{"RIM-K"}) {
		t.Errorf("preview: components %v", got)
	}
	for _, m := range rep.Buildings.Items {
		if m.Label == "RIM" && (m.From == nil || m.From.Code != code0 || m.To == nil || m.To.Code != "410105001001") {
			t.Errorf("preview: RIM moves %+v → %+v", m.From, m.To)
		}
	}
	if p.gridOf("buildings", "RIM") != code0 || p.gridOf("components", "RIM-K") != code0 {
		t.Errorf("the preview moved something")
	}

	grid, err := p.city.Grids.Get(p.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	rep, err = p.city.Grids.Redraw(p.ctx, id, g, geo.ChangeOptions{IfMatch: grid.Version})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Committed || rep.Components.Count != 1 {
		t.Errorf("commit: %+v", rep)
	}
	// The change's audit entry counts them too.
	var moved struct {
		Buildings  int `json:"buildings_moved"`
		Components int `json:"components_moved"`
	}
	if err := p.city.Pool.QueryRow(p.ctx, `SELECT summary FROM audit_log WHERE action LIKE 'grid.%' ORDER BY id DESC LIMIT 1`).Scan(&moved); err != nil {
		t.Fatal(err)
	}
	if moved.Buildings != rep.Buildings.Count || moved.Components != 1 {
		t.Errorf("the redraw's audit entry counts %+v moved; the report %d buildings, 1 component", moved, rep.Buildings.Count)
	}
	if b, k := p.gridOf("buildings", "RIM"), p.gridOf("components", "RIM-K"); b != "410105001001" || k != "410105001001" {
		t.Errorf("after the redraw: building in %q, component in %q, want the community", b, k)
	}
	if n := p.fromScratch(); n != 0 {
		t.Errorf("after the redraw %d not where a placement from scratch puts them", n)
	}
	if n := p.householdsAstray(); n != 0 {
		t.Errorf("after the redraw %d households not in their building's grid", n)
	}
	var shareAfter float64
	if err := p.city.Pool.QueryRow(p.ctx, `SELECT coalesce(sum(area_m2), 0) FROM parcel_grids WHERE grid_id = $1`, id).Scan(&shareAfter); err != nil {
		t.Fatal(err)
	}
	if !(shareAfter < shareBefore) {
		t.Errorf("the parcel's share of the shrunk cell: %v before, %v after", shareBefore, shareAfter)
	}
	var stale int
	if err := p.city.Pool.QueryRow(p.ctx, `SELECT count(*) FROM (
			SELECT parcel_id, grid_id, round(area_m2) FROM parcel_grids
			EXCEPT SELECT p.id, g.id, round(ST_Area(ST_Intersection(g.geom, p.geom)::geography)) FROM parcels p
				JOIN grids g ON g.level = 'grid' AND ST_Area(ST_Intersection(g.geom, p.geom)::geography) > 1e-4) d`).Scan(&stale); err != nil {
		t.Fatal(err)
	}
	if stale != 0 {
		t.Errorf("%d parcel shares not what the boundaries give", stale)
	}
}

// TestFollowMerge: when cell 1 is merged into cell 0, what lay in cell 1
// goes to cell 0, and the parcel across both has one share, its whole
// area.
func TestFollowMerge(t *testing.T) {
	p := newPlace(t)
	ids := p.fill()
	code0, _ := p.middle(0)
	code1, _ := p.middle(1)
	a, b := p.ids[code0], p.ids[code1]
	p.household("H-1")
	rep, err := p.city.Grids.Merge(p.ctx, a, b, geo.ChangeOptions{IfMatch: 1}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := labels(rep.Buildings); !slices.Equal(got, []string{"H-1"}) || rep.Components.Count != 1 {
		t.Errorf("merge moved buildings %v and %d components", got, rep.Components.Count)
	}
	if g := p.gridOf("buildings", "H-1"); g != code0 {
		t.Errorf("H-1 in %q after the merge, want %s", g, code0)
	}
	if n := p.fromScratch(); n != 0 {
		t.Errorf("after the merge %d not where a placement from scratch puts them", n)
	}
	if n := p.householdsAstray(); n != 0 {
		t.Errorf("after the merge %d households not in their building's grid", n)
	}
	parcel, err := p.base.Parcel(p.ctx, ids["P-1"], basedata.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(parcel.Grids) != 1 || parcel.Grids[0].ID != a || parcel.Grids[0].AreaM2 < parcel.AreaM2-1 {
		t.Errorf("the parcel's grids after the merge: %+v (area %v)", parcel.Grids, parcel.AreaM2)
	}
}

// household adds a household to building code, in its building's grid (as
// an import of residents would).
func (p *place) household(code string) {
	p.t.Helper()
	if _, err := p.city.Pool.Exec(p.ctx, `INSERT INTO households (code, building_id, grid_id)
		SELECT 'HH-' || code, id, grid_id FROM buildings WHERE code = $1`, code); err != nil {
		p.t.Fatal(err)
	}
}

// householdsAstray counts the households not in their building's grid.
func (p *place) householdsAstray() int {
	p.t.Helper()
	var n int
	if err := p.city.Pool.QueryRow(p.ctx, `SELECT count(*) FROM households h JOIN buildings b ON b.id = h.building_id
		WHERE h.grid_id IS DISTINCT FROM b.grid_id`).Scan(&n); err != nil {
		p.t.Fatal(err)
	}
	return n
}
