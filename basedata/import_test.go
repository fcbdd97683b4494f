package basedata

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/geo"
	"gridwatch/geo/geotest"
)

// parseAll parses data as an import of k and returns the records, the bad
// rows and the error of the whole.
func parseAll(t testing.TB, k kind, format ImportFormat, data string) ([]record, []RowError, error) {
	t.Helper()
	recs, errs, err := k.parse(strings.NewReader(data), ImportOptions{Format: format})
	if err != nil {
		return nil, nil, err
	}
	return recs, errs.list, nil
}

// TestParseNamesEveryBadRow: a file with several faults reports each by
// row and field, and keeps the good rows.
func TestParseNamesEveryBadRow(t *testing.T) {
	csv := "code,name,floors,lon,lat\n" +
		"B1,一号楼,6,113.64,34.83\n" + // good
		",无号楼,6,113.64,34.83\n" + // no code
		"B3,三号楼,301,113.64,34.83\n" + // floors out of range
		"B4,四号楼,6,34.83,113.64\n" + // lat/lon swapped
		"B5,五号楼,six,113.64,x\n" + // two faults in one row
		"B1,又一号楼,6,113.64,34.83\n" // a code given twice
	recs, bad, err := parseAll(t, buildingKind, FormatCSV, csv)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		row   int
		field string
		says  string
	}{{2, "code", "required"}, {3, "floors", "out of range"}, {4, "lat", "looks like [lat, lon]"},
		{5, "floors", "not a whole number"}, {5, "lat", "not a number"}, {6, "code", "first in row 1"}}
	if len(bad) != len(want) {
		t.Fatalf("bad rows %+v, want %d", bad, len(want))
	}
	for i, w := range want {
		if bad[i].Row != w.row || bad[i].Field != w.field || !strings.Contains(bad[i].Message, w.says) {
			t.Errorf("bad row %d: %+v, want row %d field %s saying %q", i, bad[i], w.row, w.field, w.says)
		}
	}
	if len(recs) != 2 || recs[0].Code != "B1" || *recs[0].Floors != 6 {
		t.Errorf("good rows %+v", recs)
	}

	gj := `{"type":"FeatureCollection","features":[
		{"type":"Feature","properties":{"code":"K1","class":"0101"},"geometry":{"type":"Point","coordinates":[113.64,34.83]}},
		{"type":"Feature","properties":{"code":"K2","class":"0101","state":"broken"},"geometry":{"type":"Point","coordinates":[113.64,34.83]}},
		{"type":"Feature","properties":{"code":"K3"},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}},
		{"type":"Feature","properties":{"code":"K4","class":"0101","name":{"a":1}},"geometry":null},
		{"type":"Feature","properties":{"code":"K5","class":"0101"},"geometry":{"type":"Point","coordinates":[200,34.83]}}]}`
	_, bad, err = parseAll(t, componentKind, FormatGeoJSON, gj)
	if err != nil {
		t.Fatal(err)
	}
	wantGJ := []struct {
		row   int
		field string
	}{{2, "state"}, {3, "geometry"}, {3, "class"}, {4, "name"}, {4, "geometry"}, {5, "geometry"}}
	if len(bad) != len(wantGJ) {
		t.Fatalf("bad features %+v, want %d", bad, len(wantGJ))
	}
	for i, w := range wantGJ {
		if bad[i].Row != w.row || bad[i].Field != w.field {
			t.Errorf("bad feature %d: %+v, want row %d field %s", i, bad[i], w.row, w.field)
		}
	}

	// A polygon's fault says where it is.
	_, bad, err = parseAll(t, parcelKind, FormatGeoJSON, `{"type":"FeatureCollection","features":[
		{"type":"Feature","properties":{"code":"P1"},"geometry":{"type":"Polygon","coordinates":[[[113.6,34.8],[113.61,34.8],[113.61,34.81],[113.6,34.81]]]}}]}`)
	if err != nil || len(bad) != 1 || !strings.Contains(bad[0].Message, "exterior ring is not closed") {
		t.Errorf("an open ring: %+v, %v", bad, err)
	}
}

// TestParseRefusesTheWholeFile: what is not an import at all is one error,
// not rows.
func TestParseRefusesTheWholeFile(t *testing.T) {
	for _, c := range []struct {
		k      kind
		format ImportFormat
		data   string
		code   string
		says   string
	}{
		{buildingKind, FormatGeoJSON, `{"type":"Feature"}`, gridwatch.EInvalidGeoJSON, "FeatureCollection"},
		{buildingKind, FormatGeoJSON, `{"type":`, gridwatch.EInvalidJSON, "line 1"},
		{buildingKind, FormatCSV, "code,lat\nB1,34\n", gridwatch.EInvalid, "no lon column"},
		{buildingKind, FormatCSV, "code,lon,lat,flors\n", gridwatch.EInvalid, `unknown column "flors"`},
		{componentKind, FormatCSV, "code,lon,lat\n", gridwatch.EInvalid, "no class column"},
		{buildingKind, FormatCSV, "  \n", gridwatch.EInvalid, "empty"},
	} {
		_, _, err := parseAll(t, c.k, c.format, c.data)
		var ge *gridwatch.Error
		if !errors.As(err, &ge) || ge.Code != c.code || !strings.Contains(ge.Message, c.says) {
			t.Errorf("%q: %v, want %s saying %q", c.data, err, c.code, c.says)
		}
	}
}

// TestParseConvertsCoordinates: GCJ-02 and BD-09 points are stored in
// WGS-84, as geo converts them.
func TestParseConvertsCoordinates(t *testing.T) {
	for _, crs := range []geo.CRS{geo.CRSGCJ02, geo.CRSBD09} {
		recs, errs, err := buildingKind.parse(strings.NewReader("code,lon,lat\nB1,113.65,34.80\n"), ImportOptions{Format: FormatCSV, CRS: crs})
		if err != nil || errs.count > 0 {
			t.Fatal(err, errs.list)
		}
		lon, lat := crs.ToWGS84(113.65, 34.80)
		if got := recs[0].Point.Coords(); got[0] != lon || got[1] != lat || math.Abs(lon-113.65) < 1e-4 {
			t.Errorf("%s: stored %v, want [%v %v]", crs, got, lon, lat)
		}
	}
}

// checkParsed holds what every parse must give, whatever its input: good
// rows have a code, a class and state for components, and a geometry in
// range; bad rows name a row, a field and what is wrong.
func checkParsed(t *testing.T, k kind, recs []record, errs *rowErrors) {
	for _, r := range recs {
		if r.Code == "" || len([]rune(r.Code)) > maxCode || strings.ContainsRune(r.Code, 0) {
			t.Fatalf("row %d kept with code %q", r.Row, r.Code)
		}
		if r.Point == nil && r.Shape == nil {
			t.Fatalf("row %d kept without a geometry", r.Row)
		}
		if r.Point != nil {
			c := r.Point.Coords()
			if math.IsNaN(c[0]) || math.Abs(c[0]) > 180 || math.Abs(c[1]) > 90 {
				t.Fatalf("row %d kept with point %v", r.Row, c)
			}
		}
		if k.name == componentKind.name && (!classPattern(r.Class) || !contains(States(), r.State)) {
			t.Fatalf("row %d kept with class %q, state %q", r.Row, r.Class, r.State)
		}
		if r.Floors != nil && (*r.Floors < 0 || *r.Floors > 300) {
			t.Fatalf("row %d kept with %d floors", r.Row, *r.Floors)
		}
	}
	if len(errs.list) > MaxListedRows || errs.count < len(errs.list) {
		t.Fatalf("%d listed of %d", len(errs.list), errs.count)
	}
	for _, e := range errs.list {
		if e.Row < 1 || e.Field == "" || e.Message == "" {
			t.Fatalf("a bad row without its place: %+v", e)
		}
	}
}

func FuzzImportCSV(f *testing.F) {
	f.Add("code,name,floors,lon,lat\nB1,一号楼,6,113.64,34.83\n", false)
	f.Add("code,class,state,lon,lat\nK1,0101,damaged,113.64,34.83\n\"K2\",\"0304\",,1e2,NaN\n", true)
	f.Add("\xef\xbb\xbfCODE,Lng,Latitude\nB1,113,34\nB1,113,34,9\n\"x\n", false)
	f.Add("code,lon,lat\n\"B\"\"1\",-180,90\n,,\n", false)
	f.Fuzz(func(t *testing.T, data string, components bool) {
		k := buildingKind
		if components {
			k = componentKind
		}
		recs, errs, err := k.parse(strings.NewReader(data), ImportOptions{Format: FormatCSV, CRS: geo.CRSGCJ02})
		if err != nil {
			if gridwatch.ErrorCode(err) == gridwatch.EInternal {
				t.Fatalf("an internal error for input: %v", err)
			}
			return
		}
		checkParsed(t, k, recs, errs)
	})
}

func FuzzImportGeoJSON(f *testing.F) {
	f.Add(`{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"code":"B1","floors":6},"geometry":{"type":"Point","coordinates":[113.64,34.83]}}]}`, 0)
	f.Add(`{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"code":7,"floors":"6.0"},"geometry":{"type":"MultiPolygon","coordinates":[[[[113.6,34.8],[113.61,34.8],[113.61,34.81],[113.6,34.8]]]]}}]}`, 1)
	f.Add(`{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"code":"K","class_code":"0101","state":"lost"},"geometry":{"type":"Point","coordinates":[1e400,0]}},null,{}]}`, 2)
	f.Add(`{"type":"FeatureCollection","features":[{"type":"Feature","properties":null,"geometry":{"type":"Polygon","coordinates":[[[0,0],[0,0]]]}}]}`, 1)
	f.Fuzz(func(t *testing.T, data string, which int) {
		k := []kind{buildingKind, parcelKind, componentKind}[uint(which)%3]
		recs, errs, err := k.parse(strings.NewReader(data), ImportOptions{Format: FormatGeoJSON, CRS: geo.CRSBD09})
		if err != nil {
			if gridwatch.ErrorCode(err) == gridwatch.EInternal {
				t.Fatalf("an internal error for input: %v", err)
			}
			return
		}
		checkParsed(t, k, recs, errs)
	})
}

// gridOfCode is the grid_id of the row of table with code (0: none).
func (p *people) gridOfCode(table, code string) int64 {
	p.t.Helper()
	var g *int64
	if err := p.pool.QueryRow(p.ctx, `SELECT grid_id FROM `+pgx.Identifier{table}.Sanitize()+` WHERE code = $1`, code).Scan(&g); err != nil {
		p.t.Fatal(err)
	}
	if g == nil {
		return 0
	}
	return *g
}

// TestBuildingReimportCarriesHouseholds: a building imported again at a
// point in another grid takes its households and residents there, in the
// import's transaction; a building re-imported where it was leaves them.
func TestBuildingReimportCarriesHouseholds(t *testing.T) {
	p := newPeople(t)
	p.mustImport(family...)
	g0, g9 := p.buildings["B0"], p.buildings["B9"]
	moved := geotest.Middle(p.cells[9])
	stay := geotest.Middle(p.cells[1])
	csv := fmt.Sprintf("code,name,lon,lat\nB0,零号楼,%f,%f\nB1,一号楼,%f,%f\n", moved[0], moved[1], stay[0], stay[1])
	res, err := p.svc.ImportBuildings(p.ctx, strings.NewReader(csv), ImportOptions{Format: FormatCSV})
	if err != nil {
		t.Fatal(err)
	}
	if res.Created != 0 || res.Updated != 2 {
		t.Fatalf("result %+v", res)
	}
	if g := p.gridOfCode("buildings", "B0"); g != g9 {
		t.Fatalf("B0 in grid %d, want %d", g, g9)
	}
	if g := p.gridOfCode("households", "H1"); g != g9 {
		t.Errorf("household H1 in grid %d after its building moved to %d (was %d)", g, g9, g0)
	}
	if g := p.gridOfCode("households", "H2"); g != p.buildings["B1"] {
		t.Errorf("household H2 in grid %d, want %d (its building stayed)", g, p.buildings["B1"])
	}
	for _, id := range []string{zhangID, wifeID} {
		if r := p.find(id); r.Grid == nil || r.Grid.ID != g9 {
			t.Errorf("resident %s in grid %+v, want %d", r.Name, r.Grid, g9)
		}
	}
	var stale int
	if err := p.pool.QueryRow(p.ctx, `SELECT count(*) FROM residents r JOIN households h ON h.id = r.household_id
		JOIN buildings b ON b.id = h.building_id WHERE r.grid_id IS DISTINCT FROM b.grid_id OR h.grid_id IS DISTINCT FROM b.grid_id`).Scan(&stale); err != nil {
		t.Fatal(err)
	}
	if stale != 0 {
		t.Errorf("%d residents not in their building's grid", stale)
	}
}

// TestScopedImportStaysInScope: an importer limited to a grid imports
// only into it. A row placed in another grid, a row in no grid and a row
// taking over the code of a building elsewhere are each refused by row,
// and nothing is stored; the same import within the grid passes.
func TestScopedImportStaysInScope(t *testing.T) {
	p := newPeople(t)
	g0 := p.buildings["B0"]
	in := geotest.Middle(p.cells[0])
	out := geotest.Middle(p.cells[9])
	scoped := ImportOptions{Format: FormatCSV, Viewer: Viewer{Grids: []int64{g0}}}
	csv := fmt.Sprintf("code,lon,lat\nN1,%f,%f\nN2,%f,%f\nN3,100.5,30.5\nB9,%f,%f\n", in[0], in[1], out[0], out[1], in[0], in[1])
	_, err := p.svc.ImportBuildings(p.ctx, strings.NewReader(csv), scoped)
	bad, _ := gridwatch.ErrorDetails(err)["rows"].([]RowError)
	if gridwatch.ErrorCode(err) != EInvalidRows || len(bad) != 3 {
		t.Fatalf("scoped import: %v %+v, want rows 2, 3 and 4 refused", err, bad)
	}
	for i, w := range []struct {
		row         int
		field, says string
	}{{2, "lon", "outside your grids"}, {3, "lon", "none of your grids"}, {4, "code", "outside your grids"}} {
		if bad[i].Row != w.row || bad[i].Field != w.field || !strings.Contains(bad[i].Message, w.says) {
			t.Errorf("bad row %+v, want row %d %s saying %q", bad[i], w.row, w.field, w.says)
		}
	}
	if n := p.count("buildings"); n != 5 {
		t.Errorf("%d buildings after a refused import, want the 5 there were", n)
	}
	if g := p.gridOfCode("buildings", "B9"); g != p.buildings["B9"] {
		t.Errorf("B9 taken over: now in grid %d", g)
	}
	ok := fmt.Sprintf("code,lon,lat\nN1,%f,%f\nB0,%f,%f\n", in[0], in[1], in[0], in[1])
	if res, err := p.svc.ImportBuildings(p.ctx, strings.NewReader(ok), scoped); err != nil || res.Created != 1 || res.Updated != 1 {
		t.Fatalf("in-scope import: %+v %v", res, err)
	}

	// Components, by the same rule.
	kcsv := fmt.Sprintf("code,class,lon,lat\nK1,0101,%f,%f\nK2,0101,%f,%f\n", in[0], in[1], out[0], out[1])
	_, err = p.svc.ImportComponents(p.ctx, strings.NewReader(kcsv), scoped)
	if bad, _ := gridwatch.ErrorDetails(err)["rows"].([]RowError); len(bad) != 1 || bad[0].Row != 2 {
		t.Errorf("scoped component import: %v %+v", err, bad)
	}
	if n := p.count("components"); n != 0 {
		t.Errorf("%d components stored by a refused import", n)
	}

	// Parcels: every grid a parcel shares area with must be in scope.
	gj := `{"type":"FeatureCollection","features":[
		{"type":"Feature","properties":{"code":"P1"},"geometry":` + squareJSON(in, 0.0002) + `},
		{"type":"Feature","properties":{"code":"P2"},"geometry":` + squareJSON(out, 0.0002) + `},
		{"type":"Feature","properties":{"code":"P3"},"geometry":` + squareJSON([2]float64{100.5, 30.5}, 0.0002) + `}]}`
	_, err = p.svc.ImportParcels(p.ctx, strings.NewReader(gj), ImportOptions{Format: FormatGeoJSON, Viewer: scoped.Viewer})
	if bad, _ := gridwatch.ErrorDetails(err)["rows"].([]RowError); len(bad) != 2 || bad[0].Row != 2 || bad[1].Row != 3 || bad[0].Field != "geometry" {
		t.Errorf("scoped parcel import: %v %+v", err, bad)
	}
	if n := p.count("parcels"); n != 0 {
		t.Errorf("%d parcels stored by a refused import", n)
	}
	// An unscoped importer may place rows anywhere, and in no grid.
	if res, err := p.svc.ImportParcels(p.ctx, strings.NewReader(gj), ImportOptions{Format: FormatGeoJSON}); err != nil || res.Created != 3 || res.Unassigned != 1 {
		t.Errorf("unscoped parcel import: %+v %v", res, err)
	}
}

func squareJSON(c [2]float64, d float64) string {
	return fmt.Sprintf(`{"type":"Polygon","coordinates":[[[%[1]f,%[2]f],[%[3]f,%[2]f],[%[3]f,%[4]f],[%[1]f,%[4]f],[%[1]f,%[2]f]]]}`,
		c[0]-d, c[1]-d, c[0]+d, c[1]+d)
}
