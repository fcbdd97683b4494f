package basedata_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"gridwatch"
	"gridwatch/basedata"
	"gridwatch/geo"
	"gridwatch/geo/geotest"
	"gridwatch/internal/domain"
	"gridwatch/internal/domain/domaintest"
)

// place is the base-data service over the demo city, wired as gridwatch
// serve wires it (boundary changes carry base data along).
type place struct {
	t     *testing.T
	ctx   context.Context
	city  *domaintest.City
	base  *basedata.Service
	cells []geo.ImportFeature
	ids   map[string]int64 // grid code → id
}

func newPlace(t *testing.T) *place {
	t.Helper()
	city := domaintest.New(t, domain.Options{}, geo.DemoCity())
	p := &place{t: t, ctx: context.Background(), city: city, base: city.Base, cells: geotest.Cells(city.Features), ids: map[string]int64{}}
	list, _, err := city.Grids.List(p.ctx, geo.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range list {
		p.ids[g.Code] = g.ID
	}
	return p
}

// middle is the i-th cell's code and interior point.
func (p *place) middle(i int) (string, [2]float64) {
	return p.cells[i].Code, geotest.Middle(p.cells[i])
}

// box is a GeoJSON Polygon of the square of side 2d degrees around c.
func box(c [2]float64, d float64) string {
	return fmt.Sprintf(`{"type":"Polygon","coordinates":[[[%[1]f,%[2]f],[%[3]f,%[2]f],[%[3]f,%[4]f],[%[1]f,%[4]f],[%[1]f,%[2]f]]]}`,
		c[0]-d, c[1]-d, c[0]+d, c[1]+d)
}

func pointJSON(c [2]float64) string {
	return fmt.Sprintf(`{"type":"Point","coordinates":[%.7f,%.7f]}`, c[0], c[1])
}

// collection is a FeatureCollection of features (properties JSON, geometry JSON) pairs.
func collection(pairs ...string) string {
	var b strings.Builder
	b.WriteString(`{"type":"FeatureCollection","features":[`)
	for i := 0; i+1 < len(pairs); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":"Feature","properties":%s,"geometry":%s}`, pairs[i], pairs[i+1])
	}
	b.WriteString(`]}`)
	return b.String()
}

func (p *place) importBuildings(format basedata.ImportFormat, crs geo.CRS, data string) *basedata.ImportResult {
	p.t.Helper()
	res, err := p.base.ImportBuildings(p.ctx, strings.NewReader(data), basedata.ImportOptions{Format: format, CRS: crs})
	if err != nil {
		p.t.Fatalf("import buildings: %v", err)
	}
	return res
}

func (p *place) importComponents(data string) *basedata.ImportResult {
	p.t.Helper()
	res, err := p.base.ImportComponents(p.ctx, strings.NewReader(data), basedata.ImportOptions{Format: basedata.FormatGeoJSON})
	if err != nil {
		p.t.Fatalf("import components: %v", err)
	}
	return res
}

func (p *place) importParcels(data string) *basedata.ImportResult {
	p.t.Helper()
	res, err := p.base.ImportParcels(p.ctx, strings.NewReader(data), basedata.ImportOptions{Format: basedata.FormatGeoJSON})
	if err != nil {
		p.t.Fatalf("import parcels: %v", err)
	}
	return res
}

// gridOf is the code of the grid of the row of table with code ("" when none).
func (p *place) gridOf(table, code string) string {
	p.t.Helper()
	var g *string
	if err := p.city.Pool.QueryRow(p.ctx, `SELECT g.code FROM `+table+` t LEFT JOIN grids g ON g.id = t.grid_id WHERE t.code = $1`, code).Scan(&g); err != nil {
		p.t.Fatalf("%s %s: %v", table, code, err)
	}
	if g == nil {
		return ""
	}
	return *g
}

// fromScratch is the number of buildings and components not in the grid a
// placement from scratch gives them: a point's finest covering grid (lowest
// code on a shared edge); a footprint's finest grid sharing area with it,
// the most area first, then the lowest code. Written here in its own SQL,
// apart from the package's, to check it.
func (p *place) fromScratch() int {
	p.t.Helper()
	const point = `(SELECT g.id FROM grids g WHERE ST_Covers(g.geom, x.location) ORDER BY g.level_rank DESC, g.code LIMIT 1)`
	const shape = `(SELECT g.id FROM grids g, LATERAL (SELECT ST_Area(ST_Intersection(g.geom, x.footprint)) AS a) s
		WHERE s.a > 0 ORDER BY g.level_rank DESC, s.a DESC, g.code LIMIT 1)`
	var n int
	if err := p.city.Pool.QueryRow(p.ctx, `SELECT
		(SELECT count(*) FROM buildings x WHERE x.grid_id IS DISTINCT FROM CASE WHEN x.footprint IS NULL THEN `+point+` ELSE coalesce(`+shape+`, `+point+`) END)
		+ (SELECT count(*) FROM components x WHERE x.grid_id IS DISTINCT FROM `+point+`)`).Scan(&n); err != nil {
		p.t.Fatal(err)
	}
	return n
}

// TestImportPlacesBuildings: buildings from CSV (GCJ-02) and GeoJSON
// (points and footprints) land in their grids; one outside every grid is
// kept unassigned; a second import updates by code.
func TestImportPlacesBuildings(t *testing.T) {
	p := newPlace(t)
	code0, mid0 := p.middle(0)
	code1, mid1 := p.middle(1)
	glon, glat := geo.WGS84ToGCJ02(mid0[0], mid0[1])
	res := p.importBuildings(basedata.FormatCSV, geo.CRSGCJ02, fmt.Sprintf("code,name,address,floors,units,use,lon,lat\n"+
		"B-CSV,一号楼,文化路1号,6,2,住宅,%.7f,%.7f\nB-FAR,远楼,,,,,%.7f,%.7f\n", glon, glat, mid0[0]+1, mid0[1]))
	if res.Created != 2 || res.Updated != 0 || res.Grids != 1 || res.Unassigned != 1 {
		t.Errorf("CSV import: %+v", res)
	}
	// A footprint across the edge of cells 0 and 1, most of it nearer cell
	// 1's middle, and another inside cell 1.
	across := [2]float64{mid0[0]*0.4 + mid1[0]*0.6, mid0[1]*0.4 + mid1[1]*0.6}
	res = p.importBuildings(basedata.FormatGeoJSON, geo.CRSWGS84, collection(
		`{"code":"B-ACROSS","floors":18}`, box(across, 0.004),
		`{"code":"B-IN","name":"二号楼","floors":"3"}`, box(mid1, 0.0002),
		`{"code":"B-PT"}`, pointJSON(mid1)))
	if res.Created != 3 || res.Unassigned != 0 {
		t.Errorf("GeoJSON import: %+v", res)
	}
	if g := p.gridOf("buildings", "B-CSV"); g != code0 {
		t.Errorf("the GCJ-02 building is in %q, want %s", g, code0)
	}
	if g := p.gridOf("buildings", "B-FAR"); g != "" {
		t.Errorf("the building outside the city is in %q, want none", g)
	}
	if g := p.gridOf("buildings", "B-IN"); g != code1 {
		t.Errorf("the footprint in cell 1 is in %q, want %s", g, code1)
	}
	var grids int
	if err := p.city.Pool.QueryRow(p.ctx, `SELECT count(*) FROM grids g, buildings b WHERE b.code = 'B-ACROSS' AND g.level = 'grid'
		AND ST_Area(ST_Intersection(g.geom, b.footprint)) > 0`).Scan(&grids); err != nil || grids < 2 {
		t.Fatalf("fixture: the footprint across the edge meets %d grid cells (%v)", grids, err)
	}
	if n := p.fromScratch(); n != 0 {
		t.Errorf("%d buildings not where a placement from scratch puts them", n)
	}
	var lon, lat float64
	if err := p.city.Pool.QueryRow(p.ctx, `SELECT ST_X(location), ST_Y(location) FROM buildings WHERE code = 'B-CSV'`).Scan(&lon, &lat); err != nil {
		t.Fatal(err)
	}
	if math.Abs(lon-mid0[0]) > 1e-5 || math.Abs(lat-mid0[1]) > 1e-5 {
		t.Errorf("the GCJ-02 point is stored at %v,%v, want about %v", lon, lat, mid0)
	}

	// Again: updated by code, nothing created.
	res = p.importBuildings(basedata.FormatCSV, geo.CRSWGS84, fmt.Sprintf("code,name,lon,lat\nB-CSV,一号楼（改）,%f,%f\n", mid1[0], mid1[1]))
	if res.Created != 0 || res.Updated != 1 {
		t.Errorf("re-import: %+v", res)
	}
	if g := p.gridOf("buildings", "B-CSV"); g != code1 {
		t.Errorf("the moved building is in %q, want %s", g, code1)
	}
}

// rowsOf returns the bad rows of an invalid_rows error.
func rowsOf(t *testing.T, err error) []basedata.RowError {
	t.Helper()
	if gridwatch.ErrorCode(err) != basedata.EInvalidRows {
		t.Fatalf("%v, want %s", err, basedata.EInvalidRows)
	}
	d := gridwatch.ErrorDetails(err)
	rows, _ := d["rows"].([]basedata.RowError)
	if d["count"] != len(rows) {
		t.Errorf("count %v for %d rows", d["count"], len(rows))
	}
	return rows
}

// TestImportAllOrNothing: an import with bad rows — in Go's checks and in
// PostGIS's — stores nothing, reports each, and leaves what was stored.
func TestImportAllOrNothing(t *testing.T) {
	p := newPlace(t)
	_, mid := p.middle(0)
	p.importBuildings(basedata.FormatCSV, "", fmt.Sprintf("code,name,lon,lat\nKEEP,原名,%f,%f\n", mid[0], mid[1]))
	bowtie := fmt.Sprintf(`{"type":"Polygon","coordinates":[[[%[1]f,%[2]f],[%[3]f,%[4]f],[%[3]f,%[2]f],[%[1]f,%[4]f],[%[1]f,%[2]f]]]}`,
		mid[0]-0.001, mid[1]-0.001, mid[0]+0.001, mid[1]+0.001)
	_, err := p.base.ImportBuildings(p.ctx, strings.NewReader(collection(
		`{"code":"KEEP","name":"新名"}`, pointJSON(mid),
		`{"code":"BOWTIE"}`, bowtie,
		`{"code":"HIGH","floors":400}`, pointJSON(mid))), basedata.ImportOptions{})
	rows := rowsOf(t, err)
	if len(rows) != 2 || rows[0].Row != 3 || rows[0].Field != "floors" || rows[1].Row != 2 || rows[1].Field != "geometry" ||
		!strings.Contains(rows[1].Message, "Self-intersection") {
		t.Errorf("bad rows %+v", rows)
	}
	_, err = p.base.ImportComponents(p.ctx, strings.NewReader(collection(
		`{"code":"K-OK","class":"0101"}`, pointJSON(mid),
		`{"code":"K-BAD","class":"0199"}`, pointJSON(mid))), basedata.ImportOptions{})
	if rows := rowsOf(t, err); len(rows) != 1 || rows[0].Row != 2 || rows[0].Field != "class" || !strings.Contains(rows[0].Message, "0199") {
		t.Errorf("bad class: %+v", rows)
	}
	var buildings, components int
	var name string
	if err := p.city.Pool.QueryRow(p.ctx, `SELECT (SELECT count(*) FROM buildings), (SELECT count(*) FROM components),
		(SELECT name FROM buildings WHERE code = 'KEEP')`).Scan(&buildings, &components, &name); err != nil {
		t.Fatal(err)
	}
	if buildings != 1 || components != 0 || name != "原名" {
		t.Errorf("after refused imports: %d buildings, %d components, KEEP named %q", buildings, components, name)
	}
	if _, err := p.base.ImportParcels(p.ctx, strings.NewReader("code,lon,lat\n"), basedata.ImportOptions{Format: basedata.FormatCSV}); gridwatch.ErrorCode(err) != gridwatch.EInvalid {
		t.Errorf("parcels as CSV: %v", err)
	}
}

// city fills the first two cells with buildings, components and a parcel
// across them, and returns their codes' ids.
func (p *place) fill() map[string]int64 {
	p.t.Helper()
	_, mid0 := p.middle(0)
	_, mid1 := p.middle(1)
	p.importBuildings(basedata.FormatGeoJSON, "", collection(
		`{"code":"H-0","name":"和平小区1号楼","address":"文化路1号","use":"住宅"}`, pointJSON(mid0),
		`{"code":"H-1","name":"商场","address":"花园路9号","use":"商业"}`, pointJSON(mid1)))
	p.importComponents(collection(
		`{"code":"4101050101000001","class":"0101","name":"上水井盖","department":"自来水公司"}`, pointJSON(mid0),
		`{"code":"4101050304000001","class":"0304","state":"damaged"}`, pointJSON([2]float64{mid0[0] + 0.0005, mid0[1]}),
		`{"code":"4101050120000001","class":"0120","state":"lost"}`, pointJSON(mid1)))
	across := [2]float64{(mid0[0] + mid1[0]) / 2, (mid0[1] + mid1[1]) / 2}
	p.importParcels(collection(`{"code":"P-1","use":"住宅用地","holder":"某开发公司"}`, box(across, 0.003)))
	ids := map[string]int64{}
	rows, err := p.city.Pool.Query(p.ctx, `SELECT code, id FROM buildings UNION ALL SELECT code, id FROM components UNION ALL SELECT code, id FROM parcels`)
	if err != nil {
		p.t.Fatal(err)
	}
	for rows.Next() {
		var code string
		var id int64
		if err := rows.Scan(&code, &id); err != nil {
			p.t.Fatal(err)
		}
		ids[code] = id
	}
	return ids
}

// TestListsFiltersAndScope: the lists' filters, paging, and a viewer
// scoped to one grid sees only what lies in it.
func TestListsFiltersAndScope(t *testing.T) {
	p := newPlace(t)
	ids := p.fill()
	code0, mid0 := p.middle(0)
	code1, _ := p.middle(1)
	all := basedata.Viewer{}
	codes := func(list []basedata.Building) string {
		var out []string
		for _, b := range list {
			out = append(out, b.Code)
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		f    basedata.Filter
		want string
	}{
		{basedata.Filter{}, "H-1,H-0"},
		{basedata.Filter{GridID: p.ids[code0]}, "H-0"},
		{basedata.Filter{GridID: p.ids["410105001001"]}, "H-1,H-0"},
		{basedata.Filter{Q: "花园"}, "H-1"},
		{basedata.Filter{Q: "h-0"}, "H-0"},
		{basedata.Filter{Q: "%"}, ""},
		{basedata.Filter{Use: "商业"}, "H-1"},
		{basedata.Filter{BBox: &geo.BBox{MinLon: mid0[0] - 1e-4, MinLat: mid0[1] - 1e-4, MaxLon: mid0[0] + 1e-4, MaxLat: mid0[1] + 1e-4}}, "H-0"},
	} {
		list, _, err := p.base.Buildings(p.ctx, c.f, all)
		if err != nil {
			t.Fatal(err)
		}
		if got := codes(list); got != c.want {
			t.Errorf("buildings %+v: %s, want %s", c.f, got, c.want)
		}
	}
	page, next, err := p.base.Buildings(p.ctx, basedata.Filter{Limit: 1}, all)
	if err != nil || len(page) != 1 || next == 0 {
		t.Fatalf("page 1: %v, next %d, %v", codes(page), next, err)
	}
	page, next, err = p.base.Buildings(p.ctx, basedata.Filter{Limit: 1, Before: next}, all)
	if err != nil || codes(page) != "H-0" || next != 0 {
		t.Errorf("page 2: %v, next %d, %v", codes(page), next, err)
	}
	b, err := p.base.Building(p.ctx, ids["H-0"], all)
	if err != nil || b.Grid == nil || b.Grid.Code != code0 || b.Name != "和平小区1号楼" || string(b.Footprint) != "null" || b.HouseholdList == nil {
		t.Errorf("building: %+v, %v", b, err)
	}

	for _, c := range []struct {
		f    basedata.Filter
		want int
	}{{basedata.Filter{Class: "01"}, 2}, {basedata.Filter{Class: "0304"}, 1}, {basedata.Filter{State: "lost"}, 1},
		{basedata.Filter{GridID: p.ids[code0], State: "intact"}, 1}} {
		list, _, err := p.base.Components(p.ctx, c.f, all)
		if err != nil || len(list) != c.want {
			t.Errorf("components %+v: %d, want %d (%v)", c.f, len(list), c.want, err)
		}
	}
	if _, _, err := p.base.Components(p.ctx, basedata.Filter{State: "broken"}, all); gridwatch.ErrorCode(err) != gridwatch.EInvalid {
		t.Errorf("an unknown state: %v", err)
	}

	// A viewer of cell 0 only.
	v := basedata.Viewer{Grids: []int64{p.ids[code0]}}
	list, _, err := p.base.Buildings(p.ctx, basedata.Filter{}, v)
	if err != nil || codes(list) != "H-0" {
		t.Errorf("scoped buildings: %s, %v", codes(list), err)
	}
	if _, err := p.base.Building(p.ctx, ids["H-1"], v); gridwatch.ErrorCode(err) != gridwatch.ENotFound {
		t.Errorf("another grid's building: %v, want not found", err)
	}
	if _, err := p.base.Component(p.ctx, ids["4101050120000001"], v); gridwatch.ErrorCode(err) != gridwatch.ENotFound {
		t.Errorf("another grid's component: %v, want not found", err)
	}
	if ks, _, err := p.base.Components(p.ctx, basedata.Filter{}, v); err != nil || len(ks) != 2 {
		t.Errorf("scoped components: %d, %v", len(ks), err)
	}
	// The parcel across both cells is seen from either, with its share of each.
	parcel, err := p.base.Parcel(p.ctx, ids["P-1"], basedata.Viewer{Grids: []int64{p.ids[code1]}})
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, g := range parcel.Grids {
		sum += g.AreaM2
	}
	if len(parcel.Grids) < 2 || math.Abs(sum-parcel.AreaM2) > 1 || parcel.AreaM2 < 1000 {
		t.Errorf("parcel grids %+v, area %v: shares sum to %v", parcel.Grids, parcel.AreaM2, sum)
	}
	if ps, _, err := p.base.Parcels(p.ctx, basedata.Filter{}, basedata.Viewer{Grids: []int64{p.ids["410105003001"]}}); err != nil || len(ps) != 0 {
		t.Errorf("a viewer elsewhere sees %d parcels (%v)", len(ps), err)
	}
}

// TestUpdateComponentAudited: a state change is stored and audited; a
// viewer outside its grid cannot change it; a bad state is refused.
func TestUpdateComponentAudited(t *testing.T) {
	p := newPlace(t)
	ids := p.fill()
	id := ids["4101050101000001"]
	damaged, dept := "damaged", "市政公司"
	k, err := p.base.UpdateComponent(p.ctx, id, basedata.ComponentPatch{State: &damaged, Department: &dept}, basedata.Viewer{Grids: []int64{p.ids["410105001001"]}})
	if err != nil || k.State != "damaged" || k.Department != "市政公司" || k.Name != "上水井盖" {
		t.Fatalf("update: %+v, %v", k, err)
	}
	var summary map[string]any
	if err := p.city.Pool.QueryRow(p.ctx, `SELECT summary FROM audit_log WHERE action = 'component.update' AND target_id = $1`, fmt.Sprint(id)).Scan(&summary); err != nil {
		t.Fatal(err)
	}
	changes, _ := summary["changes"].(map[string]any)
	if st, _ := changes["state"].(map[string]any); st["before"] != "intact" || st["after"] != "damaged" || changes["name"] != nil {
		t.Errorf("audit summary %v", summary)
	}
	lost := "lost"
	if _, err := p.base.UpdateComponent(p.ctx, id, basedata.ComponentPatch{State: &lost}, basedata.Viewer{Grids: []int64{p.ids["410105003001"]}}); gridwatch.ErrorCode(err) != gridwatch.ENotFound {
		t.Errorf("out of scope: %v", err)
	}
	bad := "gone"
	if _, err := p.base.UpdateComponent(p.ctx, id, basedata.ComponentPatch{State: &bad}, basedata.Viewer{}); gridwatch.ErrorCode(err) != gridwatch.EInvalid {
		t.Errorf("bad state: %v", err)
	}
}

// TestSummaryCounts: a grid's summary counts its own and its descendants'
// base data.
func TestSummaryCounts(t *testing.T) {
	p := newPlace(t)
	p.fill()
	code0, _ := p.middle(0)
	sum, err := p.base.Summary(p.ctx, p.ids["410105001001"], basedata.Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Grid.Code != "410105001001" || sum.Buildings != 2 || sum.Components["intact"] != 1 || sum.Components["damaged"] != 1 ||
		sum.Components["lost"] != 1 || sum.Components["removed"] != 0 || sum.Parcels != 1 || sum.ParcelAreaM2 < 1000 {
		t.Errorf("community summary %+v", sum)
	}
	one, err := p.base.Summary(p.ctx, p.ids[code0], basedata.Viewer{Grids: []int64{p.ids["410105001"]}})
	if err != nil || one.Buildings != 1 || one.Components["lost"] != 0 || one.ParcelAreaM2 >= sum.ParcelAreaM2 {
		t.Errorf("cell summary %+v, %v", one, err)
	}
	if _, err := p.base.Summary(p.ctx, p.ids["410105001001"], basedata.Viewer{Grids: []int64{p.ids[code0]}}); gridwatch.ErrorCode(err) != gridwatch.ENotFound {
		t.Errorf("a grid above the viewer's: %v", err)
	}
}

// TestExportImportsAgain: an export in CSV imports again as it is (all
// updated); in GeoJSON it is a FeatureCollection of what the viewer sees.
func TestExportImportsAgain(t *testing.T) {
	p := newPlace(t)
	p.fill()
	for _, kind := range []string{"buildings", "components"} {
		var out bytes.Buffer
		if err := p.base.Export(p.ctx, kind, basedata.FormatCSV, basedata.Filter{}, basedata.Viewer{}, &out); err != nil {
			t.Fatal(err)
		}
		o := basedata.ImportOptions{Format: basedata.FormatCSV}
		var res *basedata.ImportResult
		var err error
		if kind == "buildings" {
			res, err = p.base.ImportBuildings(p.ctx, &out, o)
		} else {
			res, err = p.base.ImportComponents(p.ctx, &out, o)
		}
		if err != nil || res.Created != 0 || res.Updated != map[string]int{"buildings": 2, "components": 3}[kind] {
			t.Errorf("%s exported and imported again: %+v, %v", kind, res, err)
		}
	}
	if n := p.fromScratch(); n != 0 {
		t.Errorf("%d moved by the round trip", n)
	}
	code0, _ := p.middle(0)
	for _, kind := range []string{"buildings", "parcels", "components"} {
		var out bytes.Buffer
		if err := p.base.Export(p.ctx, kind, basedata.FormatGeoJSON, basedata.Filter{}, basedata.Viewer{Grids: []int64{p.ids[code0]}}, &out); err != nil {
			t.Fatal(err)
		}
		var fc struct {
			Type     string `json:"type"`
			Features []struct {
				Geometry   map[string]any `json:"geometry"`
				Properties map[string]any `json:"properties"`
			} `json:"features"`
		}
		if err := json.Unmarshal(out.Bytes(), &fc); err != nil {
			t.Fatalf("%s: %v: %s", kind, err, out.String())
		}
		want := map[string]int{"buildings": 1, "parcels": 1, "components": 2}[kind]
		if fc.Type != "FeatureCollection" || len(fc.Features) != want || fc.Features[0].Geometry["type"] == nil || fc.Features[0].Properties["code"] == nil {
			t.Errorf("%s GeoJSON: %s", kind, out.String())
		}
	}
}

// TestTiles: the layers hold what the viewer sees in the tile, and a tile
// elsewhere is empty.
func TestTiles(t *testing.T) {
	p := newPlace(t)
	p.fill()
	code0, mid0 := p.middle(0)
	tile := geo.TileAt(16, mid0[0], mid0[1])
	for _, c := range []struct {
		what  string
		v     basedata.Viewer
		t     geo.Tile
		empty bool
	}{
		{"all", basedata.Viewer{}, tile, false},
		{"in scope", basedata.Viewer{Grids: []int64{p.ids[code0]}}, tile, false},
		{"out of scope", basedata.Viewer{Grids: []int64{p.ids["410105003001"]}}, tile, true},
		{"elsewhere", basedata.Viewer{}, geo.TileAt(16, mid0[0]+0.5, mid0[1]), true},
	} {
		b, err := p.base.BuildingTile(p.ctx, c.t, c.v)
		if err != nil {
			t.Fatal(err)
		}
		k, err := p.base.ComponentTile(p.ctx, c.t, basedata.Filter{}, c.v)
		if err != nil {
			t.Fatal(err)
		}
		if (len(b) == 0) != c.empty || (len(k) == 0) != c.empty {
			t.Errorf("%s: building tile %d bytes, component tile %d bytes; want empty %v", c.what, len(b), len(k), c.empty)
		}
		if !c.empty && (!bytes.Contains(b, []byte("H-0")) || !bytes.Contains(k, []byte("4101050101000001"))) {
			t.Errorf("%s: the tiles lack the codes", c.what)
		}
	}
	if k, err := p.base.ComponentTile(p.ctx, tile, basedata.Filter{State: "lost"}, basedata.Viewer{}); err != nil || len(k) != 0 {
		t.Errorf("no lost component in the tile: %d bytes, %v", len(k), err)
	}
}
