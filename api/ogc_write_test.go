package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"gridwatch/api"

	"gridwatch/auth"
)

// ogcSend sends a write with the env's token and the given headers
// (name, value pairs).
func (e *authEnv) ogcSend(method, path, body string, hdr ...string) response {
	e.t.Helper()
	h := map[string]string{"Authorization": "Bearer " + e.token, "Content-Type": "application/geo+json"}
	for i := 0; i+1 < len(hdr); i += 2 {
		h[hdr[i]] = hdr[i+1]
	}
	return e.send(e.srv.Client(), method, path, body, h)
}

// A district far from the demo city and from importAB's, for creates.
const (
	cWest, cEast   = 114.200, 114.210
	cSouth, cNorth = 34.950, 34.960
)

func ogcGridFeature(code, name, level, parent, geometry string, extra ...string) string {
	p := ""
	if parent != "" {
		p = fmt.Sprintf(`,"parent_code":%q`, parent)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		p += fmt.Sprintf(`,%q:%s`, extra[i], extra[i+1])
	}
	return fmt.Sprintf(`{"type":"Feature","properties":{"code":%q,"name":%q,"level":%q%s},"geometry":%s}`, code, name, level, p, geometry)
}

func gridItem(id int64) string { return fmt.Sprintf("/ogc/collections/grids/items/%d", id) }

func TestOGCCreateGrid(t *testing.T) {
	e := newAuthEnvWith(t, strictOGC)
	const items = "/ogc/collections/grids/items"
	district := ogcGridFeature("410198", "创建试验区", "district", "", bRect(cWest, cSouth, cEast, cNorth),
		"owner", `"GIS 科"`, "area_m2", "1", "version", "7")
	r := e.ogcSend("POST", items, district)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	f := r.json(t)
	id := int64(f["id"].(float64))
	loc := r.header.Get("Location")
	if loc != e.srv.URL+gridItem(id) || r.header.Get("ETag") != fmt.Sprintf(`"grid-%d-v1"`, id) {
		t.Errorf("create: Location %q, ETag %q", loc, r.header.Get("ETag"))
	}
	// The new item reads back with the same ETag, its free property kept
	// and the read-only ones it was sent taken from the grid.
	got := e.ogcGet(loc)
	props := got.json(t)["properties"].(map[string]any)
	if got.status != 200 || got.header.Get("ETag") != r.header.Get("ETag") || props["code"] != "410198" || props["name"] != "创建试验区" ||
		props["owner"] != "GIS 科" || props["version"] != float64(1) || props["area_m2"].(float64) < 1e6 {
		t.Errorf("GET the new item: %d ETag %q %s", got.status, got.header.Get("ETag"), got.body)
	}

	// The same code again is a conflict.
	if r := e.ogcSend("POST", items, district); r.status != http.StatusConflict || r.errorOf(t)["code"] != "conflict" {
		t.Errorf("duplicate code: %d %s", r.status, r.body)
	}
	// A bow tie is invalid, and the error says where.
	bowtie := fmt.Sprintf(`{"type":"Polygon","coordinates":[[[%v,%v],[%v,%v],[%v,%v],[%v,%v],[%v,%v]]]}`,
		cWest, cSouth, cEast, cNorth, cEast, cSouth, cWest, cNorth, cWest, cSouth)
	r = e.ogcSend("POST", items, ogcGridFeature("410198001", "蝴蝶街道", "street", "410198", bowtie))
	if r.status != http.StatusUnprocessableEntity || r.errorOf(t)["code"] != "invalid_geometry" ||
		!strings.Contains(r.errorOf(t)["message"].(string), "at [114.205, 34.955]") {
		t.Errorf("bow tie: %d %s", r.status, r.body)
	}
	// Outside the parent: the topology check of an import.
	r = e.ogcSend("POST", items, ogcGridFeature("410198001", "越界街道", "street", "410198", bRect(cWest, cSouth, cEast+0.01, cNorth)))
	if r.status != http.StatusUnprocessableEntity || r.errorOf(t)["code"] != "topology" {
		t.Errorf("street outside its district: %d %s", r.status, r.body)
	}
	// Coordinates in EPSG:4326 are latitude first (Content-Crs).
	latLon := fmt.Sprintf(`{"type":"Polygon","coordinates":[[[%v,%v],[%v,%v],[%v,%v],[%v,%v],[%v,%v]]]}`,
		cSouth, cWest, cSouth, cEast, cNorth, cEast, cNorth, cWest, cSouth, cWest)
	r = e.ogcSend("POST", items, ogcGridFeature("410198001", "纬经街道", "street", "410198", latLon),
		"Content-Crs", "<http://www.opengis.net/def/crs/EPSG/0/4326>")
	if r.status != http.StatusCreated {
		t.Fatalf("create in EPSG:4326: %d %s", r.status, r.body)
	}
	ring := r.json(t)["geometry"].(map[string]any)["coordinates"].([]any)[0].([]any)[0].([]any)
	for _, p := range ring {
		x, y := p.([]any)[0].(float64), p.([]any)[1].(float64)
		if x < cWest || x > cEast || y < cSouth || y > cNorth {
			t.Errorf("EPSG:4326 body stored with axes swapped: %v", ring)
			break
		}
	}
	if r := e.ogcSend("POST", items, district, "Content-Crs", "<urn:bogus>"); r.status != 400 || !strings.Contains(string(r.body), "Content-Crs") {
		t.Errorf("unknown Content-Crs: %d %s", r.status, r.body)
	}
	if r := e.ogcSend("POST", items, district, "Content-Type", "text/plain"); r.status != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain body: %d %s", r.status, r.body)
	}
	// Read-only collections take no writes.
	if r := e.ogcSend("POST", "/ogc/collections/incidents/items", district); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST incidents: %d %s", r.status, r.body)
	}
	// A scoped editor creates only under their scope.
	e.token = e.tokenFor(auth.RoleGISEditor, "410198")
	r = e.ogcSend("POST", items, ogcGridFeature("410105099", "别区街道", "street", "410105", bRect(113.6, 34.7, 113.61, 34.71)))
	if r.status != http.StatusNotFound || !strings.Contains(string(r.body), "parent_code") {
		t.Errorf("scoped editor, another district's street: %d %s", r.status, r.body)
	}
	if r := e.ogcSend("POST", items, ogcGridFeature("410197", "新区", "district", "", bRect(114.3, 34.9, 114.31, 34.91))); r.status != http.StatusForbidden {
		t.Errorf("scoped editor, a district: %d %s", r.status, r.body)
	}
}

// replaceBody is the item as read, with its name and geometry replaced
// where given, as QGIS sends it back.
func replaceBody(t *testing.T, item response, name, geometry string) string {
	t.Helper()
	f := item.json(t)
	if name != "" {
		f["properties"].(map[string]any)["name"] = name
	}
	if geometry != "" {
		f["geometry"] = json.RawMessage(geometry)
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOGCReplaceGrid(t *testing.T) {
	e := newAuthEnvWith(t, strictOGC)
	a, b := e.importAB()
	e.token = e.tokenFor(auth.RoleGISEditor)
	path := gridItem(a)
	item := e.ogcGet(path)
	etag := item.header.Get("ETag")
	if rest := e.do("GET", fmt.Sprintf("/api/v1/grids/%d", a), nil).header.Get("ETag"); item.status != 200 || etag != rest {
		t.Fatalf("the OGC item's ETag %q is not the REST one %q", etag, rest)
	}
	smaller := bRect(bWest, bSouth, bMid-0.0005, bNorth)

	// A change names the version it edits.
	r := e.ogcSend("PUT", path, replaceBody(t, item, "", smaller))
	if r.status != http.StatusPreconditionRequired || !strings.Contains(r.errorOf(t)["message"].(string), etag) {
		t.Errorf("without If-Match: %d %s", r.status, r.body)
	}
	if r := e.ogcSend("PUT", path, replaceBody(t, item, "", smaller), "If-Match", "*"); r.status != http.StatusPreconditionRequired {
		t.Errorf("If-Match *: %d %s", r.status, r.body)
	}
	// A preview needs no version and changes nothing.
	r = e.ogcSend("PUT", path+"?dry_run=true", replaceBody(t, item, "", smaller))
	if r.status != 200 || r.json(t)["committed"] != false || r.json(t)["kind"] != "redraw" || r.header.Get("ETag") != "" ||
		!strings.Contains(string(r.body), `"kind":"gap"`) {
		t.Errorf("preview: %d %s", r.status, r.body)
	}
	if got := e.ogcGet(path).header.Get("ETag"); got != etag {
		t.Errorf("after a preview the ETag is %q, want %q", got, etag)
	}
	// The commit gives the next version's ETag, which the item then has.
	r = e.ogcSend("PUT", path, replaceBody(t, item, "", smaller), "If-Match", etag)
	v2 := fmt.Sprintf(`"grid-%d-v2"`, a)
	if r.status != 200 || r.json(t)["committed"] != true || r.header.Get("ETag") != v2 {
		t.Fatalf("replace: %d %s (ETag %q)", r.status, r.body, r.header.Get("ETag"))
	}
	item = e.ogcGet(path)
	if item.header.Get("ETag") != v2 || item.json(t)["properties"].(map[string]any)["version"] != float64(2) {
		t.Errorf("after the replace: ETag %q %s", item.header.Get("ETag"), item.body)
	}
	vs := e.do("GET", fmt.Sprintf("/api/v1/grids/%d/versions", a), nil).json(t)["versions"].([]any)
	if len(vs) != 2 || vs[0].(map[string]any)["change"] != "redraw" {
		t.Errorf("versions after the replace: %v", vs)
	}
	// The old ETag is stale, and the answer says who changed it and when.
	r = e.ogcSend("PUT", path, replaceBody(t, item, "", bRect(bWest, bSouth, bMid, bNorth)), "If-Match", etag)
	if r.status != http.StatusPreconditionFailed || !strings.Contains(string(r.body), "version 2 by") {
		t.Errorf("stale: %d %s", r.status, r.body)
	}
	// Overlapping B is refused with the finding.
	r = e.ogcSend("PUT", path, replaceBody(t, item, "", bRect(bWest, bSouth, bMid+0.0005, bNorth)), "If-Match", v2)
	if r.status != http.StatusUnprocessableEntity || r.errorOf(t)["code"] != "topology" || !strings.Contains(string(r.body), `"kind":"overlap"`) ||
		!strings.Contains(r.errorOf(t)["message"].(string), "410199001001002") {
		t.Errorf("overlap: %d %s", r.status, r.body)
	}
	// The feature sent back as read changes nothing and keeps the ETag.
	r = e.ogcSend("PUT", path, replaceBody(t, item, "", ""), "If-Match", v2)
	if r.status != 200 || r.json(t)["kind"] != "none" || r.header.Get("ETag") != v2 {
		t.Errorf("unchanged: %d %s (ETag %q)", r.status, r.body, r.header.Get("ETag"))
	}
	// A new name is a new version, in the history as a rename.
	r = e.ogcSend("PUT", path, replaceBody(t, item, "更名网格", ""), "If-Match", v2)
	v3 := fmt.Sprintf(`"grid-%d-v3"`, a)
	if r.status != 200 || r.json(t)["kind"] != "rename" || r.header.Get("ETag") != v3 {
		t.Fatalf("rename: %d %s (ETag %q)", r.status, r.body, r.header.Get("ETag"))
	}
	rest := e.do("GET", fmt.Sprintf("/api/v1/grids/%d", a), nil).json(t)
	vs = e.do("GET", fmt.Sprintf("/api/v1/grids/%d/versions", a), nil).json(t)["versions"].([]any)
	if rest["name"] != "更名网格" || rest["version"] != float64(3) || len(vs) != 3 || vs[0].(map[string]any)["change"] != "rename" {
		t.Errorf("after the rename: %v, versions %v", rest, vs)
	}
	item = e.ogcGet(path)
	// Code, level and parent do not change here; the error names the property.
	for prop, value := range map[string]any{"code": "410199001001009", "level": "community", "parent_code": "410199001", "owner": "someone"} {
		f := item.json(t)
		f["properties"].(map[string]any)[prop] = value
		body, _ := json.Marshal(f)
		r := e.ogcSend("PUT", path, string(body), "If-Match", v3)
		if r.status != 400 || !strings.Contains(r.errorOf(t)["message"].(string), "properties."+prop) ||
			r.errorOf(t)["details"].(map[string]any)["property"] != prop {
			t.Errorf("changing %s: %d %s", prop, r.status, r.body)
		}
	}
	// A replacement is a whole feature.
	if r := e.ogcSend("PUT", path, `{"type":"Feature","properties":{"name":"x"}}`, "If-Match", v3); r.status != 400 || !strings.Contains(string(r.body), "geometry") {
		t.Errorf("PUT without geometry: %d %s", r.status, r.body)
	}
	if r := e.ogcSend("PUT", path, fmt.Sprintf(`{"type":"Feature","geometry":%s}`, smaller), "If-Match", v3); r.status != 400 || !strings.Contains(string(r.body), "properties") {
		t.Errorf("PUT without properties: %d %s", r.status, r.body)
	}
	// Nothing of the refused attempts was stored.
	if got := e.ogcGet(path).header.Get("ETag"); got != v3 {
		t.Errorf("after the refused changes the ETag is %q, want %q", got, v3)
	}
	// Read-only collections take no replace.
	if r := e.ogcSend("PUT", "/ogc/collections/cameras/items/1", "{}"); r.status != http.StatusMethodNotAllowed {
		t.Errorf("PUT a camera: %d %s", r.status, r.body)
	}
	_ = b
}

func TestOGCUpdateGrid(t *testing.T) {
	e := newAuthEnvWith(t, strictOGC)
	a, _ := e.importAB()
	e.token = e.tokenFor(auth.RoleGISEditor)
	path := gridItem(a)
	v1 := fmt.Sprintf(`"grid-%d-v1"`, a)
	// A name alone.
	r := e.ogcSend("PATCH", path, `{"properties":{"name":"补丁网格"}}`, "If-Match", v1, "Content-Type", "application/merge-patch+json")
	if r.status != 200 || r.json(t)["kind"] != "rename" || r.header.Get("ETag") != fmt.Sprintf(`"grid-%d-v2"`, a) {
		t.Fatalf("patch the name: %d %s", r.status, r.body)
	}
	// A geometry alone, after a preview.
	g := fmt.Sprintf(`{"type":"Feature","geometry":%s}`, bRect(bWest, bSouth, bMid-0.0002, bNorth))
	if r := e.ogcSend("PATCH", path+"?dry_run=true", g); r.status != 200 || r.json(t)["committed"] != false {
		t.Errorf("preview a patch: %d %s", r.status, r.body)
	}
	r = e.ogcSend("PATCH", path, g, "If-Match", r.header.Get("ETag"))
	if r.status != 200 || r.json(t)["kind"] != "redraw" || r.header.Get("ETag") != fmt.Sprintf(`"grid-%d-v3"`, a) {
		t.Fatalf("patch the geometry: %d %s", r.status, r.body)
	}
	f := e.ogcGet(path).json(t)
	if f["properties"].(map[string]any)["name"] != "补丁网格" || f["properties"].(map[string]any)["version"] != float64(3) {
		t.Errorf("after the patches: %v", f["properties"])
	}
	// Both at once are one new version.
	both := fmt.Sprintf(`{"type":"Feature","geometry":%s,"properties":{"name":"整体网格"}}`, bRect(bWest, bSouth, bMid, bNorth))
	r = e.ogcSend("PATCH", path, both, "If-Match", r.header.Get("ETag"))
	if r.status != 200 || r.json(t)["kind"] != "redraw" || r.header.Get("ETag") != fmt.Sprintf(`"grid-%d-v4"`, a) {
		t.Fatalf("patch both: %d %s (ETag %q)", r.status, r.body, r.header.Get("ETag"))
	}
	vs := e.do("GET", fmt.Sprintf("/api/v1/grids/%d/versions", a), nil).json(t)["versions"].([]any)
	if len(vs) != 4 || vs[0].(map[string]any)["name"] != "整体网格" || vs[1].(map[string]any)["name"] != "补丁网格" {
		t.Errorf("versions after patching both: %v", vs)
	}
	// A grid cannot lose its boundary, and an empty name is no name.
	v4 := fmt.Sprintf(`"grid-%d-v4"`, a)
	if r := e.ogcSend("PATCH", path, `{"geometry":null}`, "If-Match", v4); r.status != 400 || !strings.Contains(string(r.body), "geometry") {
		t.Errorf("patch geometry null: %d %s", r.status, r.body)
	}
	if r := e.ogcSend("PATCH", path, `{"properties":{"name":"  "}}`, "If-Match", v4); r.status != 400 || !strings.Contains(string(r.body), "properties.name") {
		t.Errorf("patch an empty name: %d %s", r.status, r.body)
	}
	if r := e.ogcSend("PATCH", path, `{"properties":{"level":"street"}}`, "If-Match", v4); r.status != 400 || !strings.Contains(string(r.body), "properties.level") {
		t.Errorf("patch the level: %d %s", r.status, r.body)
	}
	if r := e.ogcSend("PATCH", path, `{"properties":{"name":"x"}}`); r.status != http.StatusPreconditionRequired {
		t.Errorf("patch without If-Match: %d %s", r.status, r.body)
	}
	if r := e.ogcSend("PATCH", path, `{"properties":{"name":"x"`, "If-Match", v4); r.status != 400 || r.errorOf(t)["code"] != "invalid_json" {
		t.Errorf("patch with broken JSON: %d %s", r.status, r.body)
	}
}

func TestOGCDeleteGrid(t *testing.T) {
	e := newAuthEnvWith(t, strictOGC)
	a, b := e.importAB()
	e.token = e.tokenFor(auth.RoleGISEditor)
	path := gridItem(a)
	if r := e.ogcSend("DELETE", path, ""); r.status != http.StatusPreconditionRequired || !strings.Contains(string(r.body), fmt.Sprintf(`grid-%d-v1`, a)) {
		t.Errorf("delete without If-Match: %d %s", r.status, r.body)
	}
	if r := e.ogcSend("DELETE", path, "", "If-Match", fmt.Sprintf(`"grid-%d-v1"`, b)); r.status != http.StatusPreconditionFailed {
		t.Errorf("delete with another grid's ETag: %d %s", r.status, r.body)
	}
	// Renamed since: the version read first is stale.
	if r := e.ogcSend("PATCH", path, `{"properties":{"name":"将删网格"}}`, "If-Match", fmt.Sprintf(`"grid-%d-v1"`, a)); r.status != 200 {
		t.Fatalf("rename: %d %s", r.status, r.body)
	}
	if r := e.ogcSend("DELETE", path, "", "If-Match", fmt.Sprintf(`"grid-%d-v1"`, a)); r.status != http.StatusPreconditionFailed || !strings.Contains(string(r.body), "version 2 by") {
		t.Errorf("delete a stale version: %d %s", r.status, r.body)
	}
	if r := e.ogcSend("DELETE", path, "", "If-Match", fmt.Sprintf(`"grid-%d-v2"`, a)); r.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := e.ogcGet(path); r.status != http.StatusNotFound {
		t.Errorf("GET after delete: %d %s", r.status, r.body)
	}
	// The history stays, and says who closed it.
	e.token = adminToken
	vs := e.do("GET", fmt.Sprintf("/api/v1/grids/%d/versions", a), nil).json(t)["versions"].([]any)
	if len(vs) != 2 || vs[0].(map[string]any)["valid_to"] == nil {
		t.Errorf("history after delete: %v", vs)
	}
	// A grid with children is refused, with their count.
	parent := e.do("GET", fmt.Sprintf("/api/v1/grids/%d", b), nil).json(t)["parent_id"].(float64)
	e.token = e.tokenFor(auth.RoleGISEditor)
	r := e.ogcSend("DELETE", gridItem(int64(parent)), "", "If-Match", fmt.Sprintf(`"grid-%d-v1"`, int64(parent)))
	if r.status != http.StatusConflict || !strings.Contains(r.errorOf(t)["message"].(string), "1 child grids") ||
		r.errorOf(t)["details"].(map[string]any)["children"] != float64(1) {
		t.Errorf("delete a community with a grid: %d %s", r.status, r.body)
	}
}

func TestOGCWritePermissionAndScope(t *testing.T) {
	e := newAuthEnvWith(t, strictOGC)
	a, _ := e.importAB()
	v1 := fmt.Sprintf(`"grid-%d-v1"`, a)
	body := ogcGridFeature("410198", "无权区", "district", "", bRect(cWest, cSouth, cEast, cNorth))
	// A role without grids.write may read grids but not write them.
	e.token = e.tokenFor(auth.RoleCommander)
	for _, w := range []struct{ method, path, body string }{
		{"POST", "/ogc/collections/grids/items", body},
		{"PUT", gridItem(a), body},
		{"PATCH", gridItem(a), `{"properties":{"name":"x"}}`},
		{"DELETE", gridItem(a), ""},
	} {
		r := e.ogcSend(w.method, w.path, w.body, "If-Match", v1)
		if r.status != http.StatusForbidden || r.errorOf(t)["code"] != "forbidden" {
			t.Errorf("commander %s %s: %d %s", w.method, w.path, r.status, r.body)
		}
	}
	// An editor scoped elsewhere does not see the grid.
	e.token = adminToken
	e.token = e.tokenFor(auth.RoleGISEditor, "410105")
	for _, method := range []string{"PUT", "PATCH", "DELETE"} {
		if r := e.ogcSend(method, gridItem(a), `{"properties":{"name":"x"}}`, "If-Match", v1); r.status != http.StatusNotFound {
			t.Errorf("editor scoped elsewhere %s: %d %s", method, r.status, r.body)
		}
	}
	// An editor scoped to the community renames its grid.
	e.token = adminToken
	e.token = e.tokenFor(auth.RoleGISEditor, "410199001001")
	if r := e.ogcSend("PATCH", gridItem(a), `{"properties":{"name":"辖内更名"}}`, "If-Match", v1); r.status != 200 {
		t.Errorf("editor in scope: %d %s", r.status, r.body)
	}
	e.token = adminToken
	if r := e.ogcGet(gridItem(a)); r.json(t)["properties"].(map[string]any)["name"] != "辖内更名" {
		t.Errorf("after the scoped rename: %s", r.body)
	}
}

func TestOGCWriteConformanceAndAPI(t *testing.T) {
	e := newAuthEnvWith(t, strictOGC)
	conf := e.ogcGet("/ogc/conformance").json(t)["conformsTo"].([]any)
	for _, c := range []string{"create-replace-delete", "update", "features"} {
		if !slices.Contains(conf, any("http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/"+c)) {
			t.Errorf("conformsTo lacks Part 4 %s: %v", c, conf)
		}
	}
	var doc struct {
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Parameters map[string]map[string]any `json:"parameters"`
			Schemas    map[string]any            `json:"schemas"`
			Responses  map[string]any            `json:"responses"`
		} `json:"components"`
	}
	if err := json.Unmarshal(e.ogcGet("/ogc/api").body, &doc); err != nil {
		t.Fatal(err)
	}
	ops := map[string][]string{
		"/collections/grids/items":                 {"post"},
		"/collections/grids/items/{featureId}":     {"put", "patch", "delete"},
		"/collections/incidents/items":             nil,
		"/collections/incidents/items/{featureId}": nil,
		"/collections/cameras/items/{featureId}":   nil,
	}
	// Every $ref must resolve.
	var refs func(v any)
	refs = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, y := range x {
				if s, ok := y.(string); ok && k == "$ref" {
					parts := strings.Split(strings.TrimPrefix(s, "#/components/"), "/")
					var found bool
					switch parts[0] {
					case "parameters":
						_, found = doc.Components.Parameters[parts[1]]
					case "schemas":
						_, found = doc.Components.Schemas[parts[1]]
					case "responses":
						_, found = doc.Components.Responses[parts[1]]
					}
					if !found {
						t.Errorf("$ref %s does not resolve", s)
					}
				}
				refs(y)
			}
		case []any:
			for _, y := range x {
				refs(y)
			}
		}
	}
	for path, want := range ops {
		for _, m := range []string{"post", "put", "patch", "delete"} {
			op := doc.Paths[path][m]
			if !slices.Contains(want, m) {
				if op != nil {
					t.Errorf("%s %s is declared but read only", m, path)
				}
				continue
			}
			if op == nil {
				t.Errorf("api lacks %s %s", m, path)
				continue
			}
			refs(op)
			resp := op["responses"].(map[string]any)
			var codes []string
			for c := range resp {
				codes = append(codes, c)
			}
			wantCodes := map[string][]string{"post": {"201", "400", "403", "409", "422"}, "put": {"200", "400", "412", "422", "428"},
				"patch": {"200", "400", "412", "422", "428"}, "delete": {"204", "409", "412", "428"}}[m]
			for _, c := range wantCodes {
				if !slices.Contains(codes, c) {
					t.Errorf("%s %s lacks response %s (has %v)", m, path, c, codes)
				}
			}
			if m != "delete" && op["requestBody"] == nil {
				t.Errorf("%s %s has no requestBody", m, path)
			}
		}
	}
	var params []string
	for _, p := range doc.Paths["/collections/grids/items/{featureId}"]["put"]["parameters"].([]any) {
		params = append(params, p.(map[string]any)["$ref"].(string))
	}
	if !slices.Contains(params, "#/components/parameters/If-Match") || !slices.Contains(params, "#/components/parameters/dry_run") ||
		doc.Components.Parameters["If-Match"]["required"] != true || doc.Components.Parameters["If-Match"]["in"] != "header" {
		t.Errorf("PUT parameters %v, If-Match %v", params, doc.Components.Parameters["If-Match"])
	}
	if h := doc.Paths["/collections/grids/items/{featureId}"]["get"]["responses"].(map[string]any)["200"].(map[string]any)["headers"].(map[string]any); h["ETag"] == nil {
		t.Errorf("GET item declares no ETag: %v", h)
	}
}

// strictOGC makes OGC API writes need If-Match, as the REST API's do.
func strictOGC(d *api.Deps) { d.OGCRequireIfMatch = true }

// TestOGCWritesAsQGISSendsThem: QGIS sends no If-Match. By default such a
// write applies to the grid's current version (still previewed, checked
// and versioned); only a stale If-Match is refused.
func TestOGCWritesAsQGISSendsThem(t *testing.T) {
	e := newAuthEnv(t)
	a, _ := e.importAB()
	e.token = e.tokenFor(auth.RoleGISEditor)
	path := gridItem(a)
	item := e.ogcGet(path)
	etag := item.header.Get("ETag")
	smaller := bRect(bWest, bSouth, bMid-0.0005, bNorth)
	r := e.ogcSend("PUT", path, replaceBody(t, item, "", smaller))
	if r.status != 200 || r.header.Get("ETag") != fmt.Sprintf(`"grid-%d-v2"`, a) {
		t.Fatalf("PUT without If-Match: %d %s", r.status, r.body)
	}
	// The old ETag, sent, is still checked.
	if r := e.ogcSend("PUT", path, replaceBody(t, item, "", bRect(bWest, bSouth, bMid, bNorth)), "If-Match", etag); r.status != http.StatusPreconditionFailed {
		t.Errorf("a stale If-Match: %d %s", r.status, r.body)
	}
	// An overlap is refused as ever.
	if r := e.ogcSend("PUT", path, replaceBody(t, item, "", bRect(bWest, bSouth, bMid+0.0005, bNorth))); r.status != http.StatusUnprocessableEntity {
		t.Errorf("an overlapping PUT without If-Match: %d %s", r.status, r.body)
	}
	vs := e.do("GET", fmt.Sprintf("/api/v1/grids/%d/versions", a), nil).json(t)["versions"].([]any)
	if len(vs) != 2 {
		t.Errorf("%d versions, want 2", len(vs))
	}
	if r := e.ogcSend("DELETE", path, ""); r.status != http.StatusNoContent {
		t.Errorf("DELETE without If-Match: %d %s", r.status, r.body)
	}
}
