package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"gridwatch/auth"
	"gridwatch/geo"
)

// upload sends body to path with a Content-Type, as the caller with token.
func (e *authEnv) upload(token, path, ctype, body string) response {
	e.t.Helper()
	return e.send(e.srv.Client(), "POST", path, body, map[string]string{"Authorization": "Bearer " + token, "Content-Type": ctype})
}

// as sends a JSON request as the caller with token.
func (e *authEnv) as(token, method, path, body string) response {
	e.t.Helper()
	return e.send(e.srv.Client(), method, path, body, map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"})
}

func geoPoint(lon, lat float64) string {
	return fmt.Sprintf(`{"type":"Point","coordinates":[%.7f,%.7f]}`, lon, lat)
}

// baseCity imports, as a GIS editor, a building and a component in a grid
// of community 410105001001 (in) and in a grid of another community (out).
func (e *authEnv) baseCity(t *testing.T) (in, out [2]float64, inGrid, outGrid int64) {
	t.Helper()
	lon, lat, id, code := e.gridPoint()
	olon, olat, oid := e.otherGridPoint(code)
	gis := e.tokenFor(auth.RoleGISEditor)
	glon, glat := geo.WGS84ToGCJ02(lon, lat)
	r := e.upload(gis, "/api/v1/buildings/import?crs=gcj02", "text/csv",
		fmt.Sprintf("code,name,address,floors,lon,lat\nB-IN,一号楼,文化路1号,6,%.7f,%.7f\n", glon, glat))
	if res := want(t, "CSV import", r, http.StatusCreated, ""); res["created"] != 1.0 || res["grids"] != 1.0 || res["unassigned"] != 0.0 {
		t.Errorf("CSV import: %s", r.body)
	}
	r = e.upload(gis, "/api/v1/buildings/import", "application/geo+json", `{"type":"FeatureCollection","features":[
		{"type":"Feature","properties":{"code":"B-OUT","name":"远楼","use":"商业"},"geometry":`+geoPoint(olon, olat)+`}]}`)
	want(t, "GeoJSON import", r, http.StatusCreated, "")
	r = e.upload(gis, "/api/v1/components/import?format=geojson", "application/octet-stream", `{"type":"FeatureCollection","features":[
		{"type":"Feature","properties":{"code":"K-IN","class":"0101","name":"上水井盖"},"geometry":`+geoPoint(lon, lat)+`},
		{"type":"Feature","properties":{"code":"K-OUT","class":"0120","state":"damaged"},"geometry":`+geoPoint(olon, olat)+`}]}`)
	if res := want(t, "component import", r, http.StatusCreated, ""); res["created"] != 2.0 {
		t.Errorf("component import: %s", r.body)
	}
	return [2]float64{lon, lat}, [2]float64{olon, olat}, id, oid
}

// idOf returns the id of the item with code in a list answer under key.
func idOf(t *testing.T, r response, key, code string) int64 {
	t.Helper()
	for _, it := range r.json(t)[key].([]any) {
		m := it.(map[string]any)
		if m["code"] == code {
			return int64(m["id"].(float64))
		}
	}
	t.Fatalf("no %s in %s", code, r.body)
	return 0
}

func TestBaseImportOverHTTP(t *testing.T) {
	e := newAuthEnv(t)
	in, _, inGrid, _ := e.baseCity(t)
	r := e.do("GET", "/api/v1/buildings?q=一号楼", nil)
	list := want(t, "list", r, http.StatusOK, "")["buildings"].([]any)
	if len(list) != 1 {
		t.Fatalf("list: %s", r.body)
	}
	b := list[0].(map[string]any)
	if g, _ := b["grid"].(map[string]any); g == nil || int64(g["id"].(float64)) != inGrid || b["floors"] != 6.0 || b["footprint"] != nil ||
		fmt.Sprintf("%.5f,%.5f", b["lon"], b["lat"]) != fmt.Sprintf("%.5f,%.5f", in[0], in[1]) {
		t.Errorf("the GCJ-02 building: %s", r.body)
	}

	// Bad rows: 422 naming each, nothing stored, what was there intact.
	gis := e.tokenFor(auth.RoleGISEditor)
	r = e.upload(gis, "/api/v1/buildings/import", "text/csv", fmt.Sprintf("code,name,floors,lon,lat\nB-IN,改名,6,%[1]f,%[2]f\nB-NEW,,999,%[1]f,%[2]f\n,,,%[1]f,91\n", in[0], in[1]))
	want(t, "bad rows", r, http.StatusUnprocessableEntity, "invalid_rows", "count", 3)
	rows := r.errorOf(t)["details"].(map[string]any)["rows"].([]any)
	got := []string{}
	for _, x := range rows {
		m := x.(map[string]any)
		got = append(got, fmt.Sprintf("%v:%v", m["row"], m["field"]))
	}
	if strings.Join(got, " ") != "2:floors 3:lat 3:code" {
		t.Errorf("bad rows %v: %s", got, r.body)
	}
	r = e.do("GET", "/api/v1/buildings", nil)
	if list := r.json(t)["buildings"].([]any); len(list) != 2 || !strings.Contains(string(r.body), "一号楼") || strings.Contains(string(r.body), "改名") {
		t.Errorf("after the refused import: %s", r.body)
	}
	want(t, "bad crs", e.upload(gis, "/api/v1/buildings/import?crs=utm", "text/csv", "code,lon,lat\n"), http.StatusBadRequest, "invalid", "param", "crs")
	want(t, "parcels as CSV", e.upload(gis, "/api/v1/parcels/import", "text/csv", "code,lon,lat\n"), http.StatusBadRequest, "invalid")
	r = e.upload(gis, "/api/v1/parcels/import", "application/json", `{"type":"FeatureCollection","features":[
		{"type":"Feature","properties":{"code":"P-1","use":"住宅用地"},"geometry":{"type":"Polygon","coordinates":[[`+
		fmt.Sprintf("[%[1]f,%[2]f],[%[3]f,%[2]f],[%[3]f,%[4]f],[%[1]f,%[4]f],[%[1]f,%[2]f]", in[0]-0.001, in[1]-0.001, in[0]+0.001, in[1]+0.001)+`]]}}]}`)
	want(t, "parcel import", r, http.StatusCreated, "")
	r = e.do("GET", "/api/v1/parcels", nil)
	p := want(t, "parcels", r, http.StatusOK, "")["parcels"].([]any)[0].(map[string]any)
	if p["geometry"].(map[string]any)["type"] != "MultiPolygon" || len(p["grids"].([]any)) == 0 || p["area_m2"].(float64) < 10000 {
		t.Errorf("parcel: %s", r.body)
	}
	// Only those who may import.
	op := e.tokenFor(auth.RoleOperator)
	want(t, "operator import", e.upload(op, "/api/v1/buildings/import", "text/csv", "code,lon,lat\n"), http.StatusForbidden, "forbidden")
}

func TestBaseScopeAndComponentCases(t *testing.T) {
	e := newAuthEnv(t)
	in, out, inGrid, outGrid := e.baseCity(t)
	leader := e.tokenFor(auth.RoleGridLeader, "410105001001")
	r := e.as(leader, "GET", "/api/v1/buildings", "")
	if list := want(t, "leader's buildings", r, http.StatusOK, "")["buildings"].([]any); len(list) != 1 || list[0].(map[string]any)["code"] != "B-IN" {
		t.Errorf("leader's buildings: %s", r.body)
	}
	all := e.do("GET", "/api/v1/buildings", nil)
	outB, inB := idOf(t, all, "buildings", "B-OUT"), idOf(t, all, "buildings", "B-IN")
	want(t, "another grid's building", e.as(leader, "GET", fmt.Sprintf("/api/v1/buildings/%d", outB), ""), http.StatusNotFound, "not_found")
	comps := e.do("GET", "/api/v1/components?class=01", nil)
	kin, kout := idOf(t, comps, "components", "K-IN"), idOf(t, comps, "components", "K-OUT")
	if n := len(e.do("GET", "/api/v1/components?state=damaged", nil).json(t)["components"].([]any)); n != 1 {
		t.Errorf("damaged components: %d", n)
	}
	want(t, "bad state", e.do("GET", "/api/v1/components?state=broken", nil), http.StatusBadRequest, "invalid", "param", "state")

	// A grid leader changes a component of theirs, not another's; an
	// operator none.
	r = e.as(leader, "PATCH", fmt.Sprintf("/api/v1/components/%d", kin), `{"state":"lost"}`)
	if k := want(t, "leader's patch", r, http.StatusOK, ""); k["state"] != "lost" || k["class"].(map[string]any)["name"] != "上水井盖" {
		t.Errorf("patch: %s", r.body)
	}
	want(t, "another grid's component", e.as(leader, "PATCH", fmt.Sprintf("/api/v1/components/%d", kout), `{"state":"lost"}`), http.StatusNotFound, "not_found")
	want(t, "operator's patch", e.as(e.tokenFor(auth.RoleOperator), "PATCH", fmt.Sprintf("/api/v1/components/%d", kin), `{"state":"intact"}`), http.StatusForbidden, "forbidden")
	want(t, "unknown field", e.as(leader, "PATCH", fmt.Sprintf("/api/v1/components/%d", kin), `{"colour":"red"}`), http.StatusBadRequest, "invalid", "field", "colour")

	// A component case: filed with the component, listed on it and by it.
	body := fmt.Sprintf(`{"source":"hotline","category":"0701","title":"井盖丢失","location":%s,"component_id":%d}`, geoPoint(in[0], in[1]), kin)
	r = e.do("POST", "/api/v1/incidents", []byte(body))
	c := want(t, "component case", r, http.StatusCreated, "")
	if c["component_id"] != float64(kin) {
		t.Errorf("case: %s", r.body)
	}
	caseID := c["id"].(float64)
	bad := fmt.Sprintf(`{"source":"hotline","category":"0701","title":"井盖丢失","location":%s,"component_id":99999999}`, geoPoint(in[0], in[1]))
	want(t, "unknown component", e.do("POST", "/api/v1/incidents", []byte(bad)), http.StatusBadRequest, "invalid", "field", "component_id")
	// A grid leader's case, in their grid, may not name another grid's
	// component: told as if it did not exist.
	other := fmt.Sprintf(`{"source":"patrol","category":"0701","title":"井盖丢失","location":%s,"component_id":%d}`, geoPoint(in[0], in[1]), kout)
	want(t, "another grid's component", e.as(leader, "POST", "/api/v1/incidents", other), http.StatusBadRequest, "invalid", "field", "component_id")
	r = e.do("GET", fmt.Sprintf("/api/v1/components/%d", kin), nil)
	cases, _ := want(t, "component", r, http.StatusOK, "")["cases"].([]any)
	if len(cases) != 1 || cases[0].(map[string]any)["id"] != caseID || cases[0].(map[string]any)["category"] != "0701" {
		t.Errorf("the component's cases: %s", r.body)
	}
	r = e.do("GET", fmt.Sprintf("/api/v1/incidents?component=%d", kin), nil)
	if list := r.json(t)["incidents"].([]any); len(list) != 1 || list[0].(map[string]any)["id"] != caseID {
		t.Errorf("cases by component: %s", r.body)
	}
	if list := e.do("GET", fmt.Sprintf("/api/v1/incidents?component=%d", kout), nil).json(t)["incidents"].([]any); len(list) != 0 {
		t.Errorf("the other component has %d cases", len(list))
	}
	// The building lists the case reported at it; a GIS editor, who
	// reads no cases, gets the building without them.
	r = e.do("GET", fmt.Sprintf("/api/v1/buildings/%d", inB), nil)
	if cs, _ := r.json(t)["cases"].([]any); len(cs) != 1 {
		t.Errorf("the building's cases: %s", r.body)
	}
	r = e.as(e.tokenFor(auth.RoleGISEditor), "GET", fmt.Sprintf("/api/v1/buildings/%d", inB), "")
	if _, has := want(t, "GIS editor's building", r, http.StatusOK, "")["cases"]; has {
		t.Errorf("a GIS editor sees cases: %s", r.body)
	}

	// Summaries: the leader's community, not another's.
	r = e.as(leader, "GET", "/api/v1/grids/"+fmt.Sprint(inGrid)+"/summary", "")
	sum := want(t, "summary", r, http.StatusOK, "")
	if sum["buildings"] != 1.0 || sum["components"].(map[string]any)["lost"] != 1.0 || sum["components"].(map[string]any)["removed"] != 0.0 ||
		sum["grid"].(map[string]any)["id"] != float64(inGrid) {
		t.Errorf("summary: %s", r.body)
	}
	for _, k := range []string{"households", "residents", "care", "parcels", "parcel_area_m2"} {
		if _, ok := sum[k]; !ok {
			t.Errorf("summary without %s: %s", k, r.body)
		}
	}
	want(t, "another grid's summary", e.as(leader, "GET", "/api/v1/grids/"+fmt.Sprint(outGrid)+"/summary", ""), http.StatusNotFound, "not_found")
	_ = out
}

func TestBaseExportAndTiles(t *testing.T) {
	e := newAuthEnv(t)
	in, out, _, _ := e.baseCity(t)
	leader := e.tokenFor(auth.RoleGridLeader, "410105001001")
	r := e.as(leader, "GET", "/api/v1/buildings/export?format=csv", "")
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") || !strings.Contains(r.header.Get("Content-Disposition"), "buildings.csv") {
		t.Fatalf("CSV export: %d %v %s", r.status, r.header, r.body)
	}
	lines := strings.Split(strings.TrimSpace(string(r.body)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "id,code,name") || !strings.Contains(lines[1], "B-IN") {
		t.Errorf("the leader's CSV: %s", r.body)
	}
	r = e.do("GET", "/api/v1/components/export?state=damaged", nil)
	var fc struct {
		Features []struct {
			Properties map[string]any `json:"properties"`
		} `json:"features"`
	}
	if err := json.Unmarshal(r.body, &fc); err != nil || r.header.Get("Content-Type") != "application/geo+json" || len(fc.Features) != 1 ||
		fc.Features[0].Properties["code"] != "K-OUT" {
		t.Errorf("GeoJSON export: %d %v %s", r.status, err, r.body)
	}
	want(t, "bad format", e.do("GET", "/api/v1/parcels/export?format=xlsx", nil), http.StatusBadRequest, "invalid", "param", "format")

	// Tiles: the leader sees their building and component, not the others.
	tin, tout := geo.TileAt(16, in[0], in[1]), geo.TileAt(16, out[0], out[1])
	for layer, code := range map[string]string{"buildings": "B-IN", "components": "K-IN"} {
		fs := tileFeatures(t, e.as(leader, "GET", tilePath(layer, tin), ""), layer)
		if len(fs) != 1 {
			t.Errorf("%s tile: %d features", layer, len(fs))
		}
		for _, f := range fs {
			if f.Properties["code"] != code || f.Properties["grid_id"] == nil {
				t.Errorf("%s tile: %v", layer, f.Properties)
			}
		}
		if r := e.as(leader, "GET", tilePath(layer, tout), ""); r.status != http.StatusNoContent {
			t.Errorf("%s tile out of scope: %d", layer, r.status)
		}
		if fs := tileFeatures(t, e.do("GET", tilePath(layer, tout), nil), layer); len(fs) != 1 {
			t.Errorf("admin's %s tile elsewhere: %d features", layer, len(fs))
		}
		tj := e.do("GET", "/tiles/"+layer+".json", nil)
		if m := want(t, layer+" TileJSON", tj, http.StatusOK, ""); !strings.Contains(fmt.Sprint(m["tiles"]), "/tiles/"+layer+"/{z}/{x}/{y}.mvt") {
			t.Errorf("TileJSON: %s", tj.body)
		}
	}
	if r := e.do("GET", tilePath("components", tin)+"?state=removed", nil); r.status != http.StatusNoContent {
		t.Errorf("no removed component: %d", r.status)
	}
	want(t, "shallow tile", e.do("GET", tilePath("buildings", geo.TileAt(5, in[0], in[1])), nil), http.StatusBadRequest, "invalid", "param", "z")
}
