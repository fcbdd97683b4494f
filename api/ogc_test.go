package api_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gridwatch/api"
	"gridwatch/auth"
)

// ogcGet GETs an OGC API path (or an absolute href of this server).
func (e *env) ogcGet(path string, hdr ...string) response {
	e.t.Helper()
	path = strings.TrimPrefix(path, e.srv.URL)
	req, err := http.NewRequest("GET", e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return readResponse(res)
}

// linkOf returns the href of the first link with rel (and type, if given).
func linkOf(t *testing.T, doc map[string]any, rel string) string {
	t.Helper()
	links, _ := doc["links"].([]any)
	for _, l := range links {
		m := l.(map[string]any)
		if m["rel"] == rel {
			return m["href"].(string)
		}
	}
	return ""
}

// ogcAll follows next links from path and returns every feature, checking
// each page's counts.
func (e *env) ogcAll(path string) (features []map[string]any, matched float64, pages int) {
	e.t.Helper()
	for next := path; next != ""; pages++ {
		r := e.ogcGet(next)
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/geo+json") {
			e.t.Fatalf("GET %s: %d %s %s", next, r.status, r.header.Get("Content-Type"), r.body)
		}
		doc := r.json(e.t)
		fs := doc["features"].([]any)
		if int(doc["numberReturned"].(float64)) != len(fs) {
			e.t.Fatalf("numberReturned %v, features %d", doc["numberReturned"], len(fs))
		}
		if pages > 0 && doc["numberMatched"].(float64) != matched {
			e.t.Fatalf("numberMatched changed between pages: %v then %v", matched, doc["numberMatched"])
		}
		matched = doc["numberMatched"].(float64)
		for _, f := range fs {
			features = append(features, f.(map[string]any))
		}
		next = linkOf(e.t, doc, "next")
		if next != "" && !strings.HasPrefix(next, e.srv.URL+"/ogc/") {
			e.t.Fatalf("next link %q is not absolute on this server", next)
		}
		if pages > 1000 {
			e.t.Fatal("more than 1000 pages: the next links loop")
		}
	}
	return features, matched, pages
}

func featureIDs(fs []map[string]any) []int64 {
	var ids []int64
	for _, f := range fs {
		ids = append(ids, int64(f["id"].(float64)))
	}
	return ids
}

func TestOGCLandingConformanceAndAPI(t *testing.T) {
	e := newAuthEnv(t)
	for _, p := range []string{"/ogc", "/ogc/", "/ogc?f=json"} {
		r := e.ogcGet(p)
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Fatalf("landing %s: %d %s %s", p, r.status, r.header.Get("Content-Type"), r.body)
		}
		doc := r.json(t)
		for rel, want := range map[string]string{"self": "/ogc", "service-desc": "/ogc/api", "conformance": "/ogc/conformance", "data": "/ogc/collections"} {
			if got := linkOf(t, doc, rel); got != e.srv.URL+want {
				t.Errorf("landing %s: link %s = %q, want %q", p, rel, got, e.srv.URL+want)
			}
		}
	}
	conf := e.ogcGet("/ogc/conformance").json(t)["conformsTo"].([]any)
	want := []string{
		"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
		"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
		"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
		"http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
		"http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
		"http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
		"http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/features",
	}
	if len(conf) != len(want) {
		t.Errorf("conformsTo %v, want exactly %v", conf, want)
	}
	for _, w := range want {
		if !slices.Contains(conf, any(w)) {
			t.Errorf("conformsTo lacks %s", w)
		}
	}

	r := e.ogcGet("/ogc/api")
	if r.status != 200 || r.header.Get("Content-Type") != "application/vnd.oai.openapi+json;version=3.0" {
		t.Fatalf("api: %d %q", r.status, r.header.Get("Content-Type"))
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
		Servers []struct {
			URL string `json:"url"`
		} `json:"servers"`
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Parameters map[string]struct {
				Name   string         `json:"name"`
				Schema map[string]any `json:"schema"`
			} `json:"parameters"`
		} `json:"components"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatalf("api is not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0") || len(doc.Servers) != 1 || doc.Servers[0].URL != e.srv.URL+"/ogc" {
		t.Errorf("api: openapi %q servers %+v", doc.OpenAPI, doc.Servers)
	}
	for _, p := range []string{"/", "/conformance", "/api", "/collections"} {
		if doc.Paths[p]["get"] == nil {
			t.Errorf("api lacks GET %s", p)
		}
	}
	queryables := map[string][]string{"grids": {"level", "code", "parent_id"}, "incidents": {"status", "category", "priority", "grid_id"}, "cameras": {"status", "grid_id", "code"}}
	for cid, props := range queryables {
		for _, p := range []string{"/collections/" + cid, "/collections/" + cid + "/items", "/collections/" + cid + "/items/{featureId}", "/collections/" + cid + "/queryables"} {
			if doc.Paths[p]["get"] == nil {
				t.Errorf("api lacks GET %s", p)
			}
		}
		var names []string
		for _, prm := range doc.Paths["/collections/"+cid+"/items"]["get"]["parameters"].([]any) {
			m := prm.(map[string]any)
			if n, ok := m["name"].(string); ok {
				names = append(names, n)
			} else if r, ok := m["$ref"].(string); ok {
				names = append(names, doc.Components.Parameters[strings.TrimPrefix(r, "#/components/parameters/")].Name)
			}
		}
		for _, p := range append([]string{"limit", "bbox", "bbox-crs", "crs", "datetime"}, props...) {
			if !slices.Contains(names, p) {
				t.Errorf("api: %s items lacks parameter %s (has %v)", cid, p, names)
			}
		}
	}
	limit := doc.Components.Parameters["limit"].Schema
	if limit["default"] != float64(100) || limit["maximum"] != float64(10000) || limit["minimum"] != float64(1) {
		t.Errorf("limit schema %v, want default 100, minimum 1, maximum 10000", limit)
	}
}

func TestOGCCollections(t *testing.T) {
	e := newAuthEnv(t)
	lon, lat, _, _ := e.gridPoint()
	e.report(lon, lat)
	r := e.ogcGet("/ogc/collections")
	if r.status != 200 {
		t.Fatalf("collections: %d %s", r.status, r.body)
	}
	cols := r.json(t)["collections"].([]any)
	var ids []string
	for _, c := range cols {
		col := c.(map[string]any)
		id := col["id"].(string)
		ids = append(ids, id)
		if got := linkOf(t, col, "items"); got != e.srv.URL+"/ogc/collections/"+id+"/items" {
			t.Errorf("%s items link %q", id, got)
		}
		if crs, _ := col["crs"].([]any); len(crs) != 4 || crs[0] != "http://www.opengis.net/def/crs/OGC/1.3/CRS84" {
			t.Errorf("%s crs %v", id, col["crs"])
		}
		if id == "cameras" {
			if _, has := col["extent"]; has {
				t.Errorf("cameras has an extent with no cameras: %v", col["extent"])
			}
			continue
		}
		bbox := col["extent"].(map[string]any)["spatial"].(map[string]any)["bbox"].([]any)[0].([]any)
		x0, y0, x1, y1 := bbox[0].(float64), bbox[1].(float64), bbox[2].(float64), bbox[3].(float64)
		if !(113 < x0 && x0 <= x1 && x1 < 115 && 34 < y0 && y0 <= y1 && y1 < 36) {
			t.Errorf("%s bbox %v: not around Zhengzhou", id, bbox)
		}
		if iv := col["extent"].(map[string]any)["temporal"].(map[string]any)["interval"].([]any)[0].([]any); len(iv) != 2 || iv[0] == nil {
			t.Errorf("%s temporal interval %v", id, iv)
		}
	}
	if !slices.Equal(ids, []string{"grids", "incidents", "cameras"}) {
		t.Errorf("collections %v", ids)
	}
	// The grid box is the demo city's: the box around every grid.
	all, _, _ := e.ogcAll("/ogc/collections/grids/items?limit=10000")
	minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, f := range all {
		eachCoord(f["geometry"].(map[string]any)["coordinates"], func(x, y float64) {
			minX, minY, maxX, maxY = math.Min(minX, x), math.Min(minY, y), math.Max(maxX, x), math.Max(maxY, y)
		})
	}
	one := e.ogcGet("/ogc/collections/grids").json(t)
	bbox := one["extent"].(map[string]any)["spatial"].(map[string]any)["bbox"].([]any)[0].([]any)
	for i, want := range []float64{minX, minY, maxX, maxY} {
		if math.Abs(bbox[i].(float64)-want) > 1e-6 {
			t.Errorf("grids bbox %v, want %v", bbox, []float64{minX, minY, maxX, maxY})
			break
		}
	}
	// An integration sees the collection it may read, and no other.
	e.token = e.tokenFor(auth.RoleIntegration)
	r = e.ogcGet("/ogc/collections")
	if cols := r.json(t)["collections"].([]any); len(cols) != 1 || cols[0].(map[string]any)["id"] != "incidents" {
		t.Errorf("integration collections: %s", r.body)
	}
	if r := e.ogcGet("/ogc/collections/grids/items"); r.status != 403 {
		t.Errorf("integration grids items: %d, want 403", r.status)
	}
	e.token = ""
	if r := e.ogcGet("/ogc/collections"); r.status != 401 {
		t.Errorf("anonymous: %d, want 401", r.status)
	}
}

// eachCoord calls fn for every position of GeoJSON coordinates.
func eachCoord(c any, fn func(x, y float64)) {
	arr := c.([]any)
	if len(arr) > 0 {
		if x, ok := arr[0].(float64); ok {
			fn(x, arr[1].(float64))
			return
		}
	}
	for _, a := range arr {
		eachCoord(a, fn)
	}
}

func TestOGCGridItemsPagingAndFilters(t *testing.T) {
	e := newAuthEnv(t)
	fs, matched, pages := e.ogcAll("/ogc/collections/grids/items?limit=10")
	ids := featureIDs(fs)
	if len(fs) != 76 || matched != 76 || pages != 8 {
		t.Fatalf("paged %d features in %d pages, numberMatched %v; want 76 in 8", len(fs), pages, matched)
	}
	if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != 76 {
		t.Errorf("ids not unique and ascending: %v", ids)
	}
	first := fs[0]["properties"].(map[string]any)
	if first["code"] == nil || first["level"] != "district" || fs[0]["geometry"].(map[string]any)["type"] != "MultiPolygon" {
		t.Errorf("first grid: %v", fs[0])
	}
	// The default page is 100: every grid, no next link.
	doc := e.ogcGet("/ogc/collections/grids/items").json(t)
	if len(doc["features"].([]any)) != 76 || linkOf(t, doc, "next") != "" || linkOf(t, doc, "self") != e.srv.URL+"/ogc/collections/grids/items" {
		t.Errorf("default page: %d features, next %q, self %q", len(doc["features"].([]any)), linkOf(t, doc, "next"), linkOf(t, doc, "self"))
	}
	// Property filters.
	grids, n, _ := e.ogcAll("/ogc/collections/grids/items?level=grid&limit=50")
	if len(grids) != 66 || n != 66 {
		t.Errorf("level=grid: %d (matched %v), want 66", len(grids), n)
	}
	code := grids[3]["properties"].(map[string]any)["code"].(string)
	one, n, _ := e.ogcAll("/ogc/collections/grids/items?code=" + code)
	if len(one) != 1 || n != 1 || one[0]["properties"].(map[string]any)["code"] != code {
		t.Errorf("code=%s: %v", code, one)
	}
	parent := int64(grids[3]["properties"].(map[string]any)["parent_id"].(float64))
	kids, _, _ := e.ogcAll(fmt.Sprintf("/ogc/collections/grids/items?parent_id=%d", parent))
	want := e.do("GET", fmt.Sprintf("/api/v1/grids?parent=%d&limit=1000", parent), nil).json(t)["grids"].([]any)
	if len(kids) == 0 || len(kids) != len(want) {
		t.Errorf("parent_id=%d: %d grids, want %d", parent, len(kids), len(want))
	}
	for _, k := range kids {
		if int64(k["properties"].(map[string]any)["parent_id"].(float64)) != parent {
			t.Errorf("parent_id=%d returned %v", parent, k["properties"])
		}
	}
	// bbox: the grids the GeoJSON endpoint finds in the same box.
	lon, lat, _, _ := e.gridPoint()
	box := fmt.Sprintf("%v,%v,%v,%v", lon-0.001, lat-0.001, lon+0.001, lat+0.001)
	inBox, n, _ := e.ogcAll("/ogc/collections/grids/items?bbox=" + box)
	ref := e.do("GET", "/api/v1/grids.geojson?bbox="+box, nil).json(t)["features"].([]any)
	if len(inBox) == 0 || len(inBox) >= 76 || len(inBox) != len(ref) || n != float64(len(ref)) {
		t.Errorf("bbox %s: %d grids (matched %v), want %d", box, len(inBox), n, len(ref))
	}
	// datetime on updated_at: every grid was written just now.
	if _, n, _ := e.ogcAll("/ogc/collections/grids/items?datetime=2000-01-01T00:00:00Z/.."); n != 76 {
		t.Errorf("datetime since 2000: %v, want 76", n)
	}
	if _, n, _ := e.ogcAll("/ogc/collections/grids/items?datetime=../2000-01-01T00:00:00Z"); n != 0 {
		t.Errorf("datetime until 2000: %v, want 0", n)
	}
	// One grid, with its ETag.
	id := ids[5]
	r := e.ogcGet(fmt.Sprintf("/ogc/collections/grids/items/%d", id))
	f := r.json(t)
	if r.status != 200 || int64(f["id"].(float64)) != id || f["type"] != "Feature" || r.header.Get("Content-Crs") != "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>" {
		t.Fatalf("item: %d %v %s", r.status, r.header, r.body)
	}
	if linkOf(t, f, "collection") != e.srv.URL+"/ogc/collections/grids" || linkOf(t, f, "self") != fmt.Sprintf("%s/ogc/collections/grids/items/%d", e.srv.URL, id) {
		t.Errorf("item links: %v", f["links"])
	}
	etag := r.header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) || len(etag) < 5 {
		t.Errorf("ETag %q", etag)
	}
	if r := e.ogcGet(fmt.Sprintf("/ogc/collections/grids/items/%d", id), "If-None-Match", etag); r.status != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", r.status)
	}
	if other := e.ogcGet(fmt.Sprintf("/ogc/collections/grids/items/%d", ids[6])).header.Get("ETag"); other == etag || other == "" {
		t.Errorf("two grids share ETag %q", etag)
	}
}

// mercator is EPSG:3857 of a lon/lat point, written here independently.
func mercator(lon, lat float64) (float64, float64) {
	const r = 6378137.0
	return r * lon * math.Pi / 180, r * math.Log(math.Tan(math.Pi/4+lat*math.Pi/360))
}

func TestOGCCRS(t *testing.T) {
	e := newAuthEnv(t)
	g := e.ogcGet("/ogc/collections/grids/items?level=grid&limit=1").json(t)["features"].([]any)[0].(map[string]any)
	id := int64(g["id"].(float64))
	var lonlat [][2]float64
	eachCoord(g["geometry"].(map[string]any)["coordinates"], func(x, y float64) { lonlat = append(lonlat, [2]float64{x, y}) })
	if lonlat[0][0] < 100 || lonlat[0][1] > 50 {
		t.Fatalf("CRS84 is not lon/lat: %v", lonlat[0])
	}
	check := func(crs string, want func(lon, lat float64) (float64, float64), tol float64) {
		t.Helper()
		for _, path := range []string{
			fmt.Sprintf("/ogc/collections/grids/items/%d?crs=%s", id, url.QueryEscape(crs)),
			fmt.Sprintf("/ogc/collections/grids/items?level=grid&limit=1&crs=%s", url.QueryEscape(crs)),
		} {
			r := e.ogcGet(path)
			if r.status != 200 {
				t.Fatalf("%s: %d %s", path, r.status, r.body)
			}
			if got := r.header.Get("Content-Crs"); got != "<"+crs+">" {
				t.Errorf("%s: Content-Crs %q", path, got)
			}
			f := r.json(t)
			if f["type"] == "FeatureCollection" {
				f = f["features"].([]any)[0].(map[string]any)
				if linkOf(t, r.json(t), "next") == "" || !strings.Contains(linkOf(t, r.json(t), "next"), "crs=") {
					t.Errorf("%s: the next link drops crs: %q", path, linkOf(t, r.json(t), "next"))
				}
			}
			i := 0
			eachCoord(f["geometry"].(map[string]any)["coordinates"], func(x, y float64) {
				wx, wy := want(lonlat[i][0], lonlat[i][1])
				if math.Abs(x-wx) > tol || math.Abs(y-wy) > tol {
					t.Fatalf("%s: position %d is [%v, %v], want [%v, %v]", path, i, x, y, wx, wy)
				}
				i++
			})
			if i != len(lonlat) {
				t.Errorf("%s: %d positions, want %d", path, i, len(lonlat))
			}
		}
	}
	check("http://www.opengis.net/def/crs/EPSG/0/3857", mercator, 0.01)
	latFirst := func(lon, lat float64) (float64, float64) { return lat, lon }
	check("http://www.opengis.net/def/crs/EPSG/0/4326", latFirst, 1e-9)
	check("http://www.opengis.net/def/crs/EPSG/0/4490", latFirst, 1e-9)
	check("http://www.opengis.net/def/crs/OGC/1.3/CRS84", func(lon, lat float64) (float64, float64) { return lon, lat }, 1e-9)

	// bbox-crs: the same box in each CRS, in its axis order, finds the same grids.
	lon, lat, _, _ := e.gridPoint()
	x0, y0 := mercator(lon-0.001, lat-0.001)
	x1, y1 := mercator(lon+0.001, lat+0.001)
	m := func(f float64) string { return strconv.FormatFloat(f, 'f', 3, 64) }
	_, want, _ := e.ogcAll(fmt.Sprintf("/ogc/collections/grids/items?bbox=%v,%v,%v,%v", lon-0.001, lat-0.001, lon+0.001, lat+0.001))
	for _, q := range []string{
		fmt.Sprintf("bbox=%v,%v,%v,%v&bbox-crs=%s", lat-0.001, lon-0.001, lat+0.001, lon+0.001, url.QueryEscape("http://www.opengis.net/def/crs/EPSG/0/4326")),
		fmt.Sprintf("bbox=%v,%v,%v,%v&bbox-crs=%s", lat-0.001, lon-0.001, lat+0.001, lon+0.001, url.QueryEscape("http://www.opengis.net/def/crs/EPSG/0/4490")),
		fmt.Sprintf("bbox=%s,%s,%s,%s&bbox-crs=%s", m(x0), m(y0), m(x1), m(y1), url.QueryEscape("http://www.opengis.net/def/crs/EPSG/0/3857")),
	} {
		if _, n, _ := e.ogcAll("/ogc/collections/grids/items?" + q); n != want || want == 0 {
			t.Errorf("%s: %v grids, want %v", q, n, want)
		}
	}
	// The box in lon/lat order read as EPSG:4326 (lat first) has latitudes
	// beyond 90°.
	r := e.ogcGet(fmt.Sprintf("/ogc/collections/grids/items?bbox=%v,%v,%v,%v&bbox-crs=%s", lon-0.001, lat-0.001, lon+0.001, lat+0.001,
		url.QueryEscape("http://www.opengis.net/def/crs/EPSG/0/4326")))
	if r.status != 400 || !strings.Contains(string(r.body), "latitude") {
		t.Errorf("a lon/lat box read as lat/lon: %d %s", r.status, r.body)
	}
	for _, q := range []string{"crs=EPSG:9999", "bbox-crs=http://www.opengis.net/def/crs/EPSG/0/2000"} {
		r := e.ogcGet("/ogc/collections/grids/items?" + q)
		name, _, _ := strings.Cut(q, "=")
		if r.status != 400 || r.errorOf(t)["details"].(map[string]any)["param"] != name {
			t.Errorf("%s: %d %s, want 400 naming %s", q, r.status, r.body, name)
		}
	}
}

func TestOGCIncidents(t *testing.T) {
	e := newAuthEnv(t)
	lon, lat, gridID, code := e.gridPoint()
	var ids []int64
	for i, day := range []string{"2026-11-20", "2026-11-22", "2026-11-24"} {
		body := fmt.Sprintf(`{"source":"hotline","category":"0101","title":"暴露垃圾 %d","priority":"%s","reported_at":"%sT08:00:00+08:00",
			"location":{"type":"Point","coordinates":[%v,%v]}}`, i, []string{"high", "normal", "high"}[i], day, lon, lat)
		r := e.do("POST", "/api/v1/incidents", []byte(body))
		if r.status != 201 {
			t.Fatalf("report: %d %s", r.status, r.body)
		}
		ids = append(ids, int64(r.json(t)["id"].(float64)))
	}
	fs, n, pages := e.ogcAll("/ogc/collections/incidents/items?limit=1")
	if n != 3 || len(fs) != 3 || pages != 3 || !slices.Equal(featureIDs(fs), []int64{ids[2], ids[1], ids[0]}) {
		t.Fatalf("incidents: %v (matched %v, %d pages), want newest first %v", featureIDs(fs), n, pages, ids)
	}
	p := fs[0]["properties"].(map[string]any)
	if p["status"] != "reported" || p["grid_code"] != code || int64(p["grid_id"].(float64)) != gridID || p["category"] != "0101" {
		t.Errorf("properties %v", p)
	}
	if c := fs[0]["geometry"].(map[string]any)["coordinates"].([]any); math.Abs(c[0].(float64)-lon) > 1e-7 || math.Abs(c[1].(float64)-lat) > 1e-7 {
		t.Errorf("location %v, want [%v, %v]", c, lon, lat)
	}
	for q, want := range map[string][]int64{
		// Each was reported at 08:00+08:00, midnight UTC; both ends are inclusive.
		"datetime=2026-11-21T00:00:00Z/2026-11-23T00:00:00Z": {ids[1]},
		"datetime=2026-11-22T00:00:00Z":                      {ids[1]},
		"datetime=2026-11-22T08:00:00%2B08:00":               {ids[1]},
		"datetime=2026-11-21T12:00:00Z":                      {},
		"datetime=2026-11-22T00:00:00Z/..":                   {ids[2], ids[1]},
		"datetime=2026-11-22T00:00:00.000001Z/..":            {ids[2]},
		"datetime=../2026-11-22T00:00:00Z":                   {ids[1], ids[0]},
		"datetime=/2026-11-21T23:59:59Z":                     {ids[0]},
		"datetime=../..":                                     {ids[2], ids[1], ids[0]},
		"datetime=2026-11-24":                                {ids[2]},
		"datetime=2026-11-20T00:00:00Z/2026-11-24":           {ids[2], ids[1], ids[0]},
		"priority=high":                                      {ids[2], ids[0]},
		"priority=high&datetime=2026-11-21T00:00:00Z/..":     {ids[2]},
		"status=reported,closed":                             {ids[2], ids[1], ids[0]},
		"status=closed":                                      {},
		"category=01":                                        {ids[2], ids[1], ids[0]},
		"category=0102":                                      {},
		fmt.Sprintf("grid_id=%d", gridID):                    {ids[2], ids[1], ids[0]},
		fmt.Sprintf("grid_id=%d", gridID+1):                  {},
		fmt.Sprintf("bbox=%v,%v,%v,%v", lon-1e-4, lat-1e-4, lon+1e-4, lat+1e-4): {ids[2], ids[1], ids[0]},
		fmt.Sprintf("bbox=%v,%v,%v,%v", lon+1e-4, lat, lon+2e-4, lat+1e-4):      {},
	} {
		got, n, _ := e.ogcAll("/ogc/collections/incidents/items?" + q)
		if !slices.Equal(featureIDs(got), want) || n != float64(len(want)) {
			t.Errorf("%s: %v (matched %v), want %v", q, featureIDs(got), n, want)
		}
	}
	r := e.ogcGet(fmt.Sprintf("/ogc/collections/incidents/items/%d?crs=%s", ids[0], url.QueryEscape("http://www.opengis.net/def/crs/EPSG/0/4326")))
	if c := r.json(t)["geometry"].(map[string]any)["coordinates"].([]any); r.status != 200 || math.Abs(c[0].(float64)-lat) > 1e-7 || math.Abs(c[1].(float64)-lon) > 1e-7 {
		t.Errorf("incident in EPSG:4326: %d %s, want [lat, lon] = [%v, %v]", r.status, r.body, lat, lon)
	}
}

// TestOGCScope: a scoped grid leader sees only their grid's incidents and
// grids, through items, single items and numberMatched.
func TestOGCScope(t *testing.T) {
	e := newAuthEnv(t)
	lon, lat, gridID, code := e.gridPoint()
	mine, _ := e.report(lon, lat)
	grids := e.ogcGet("/ogc/collections/grids/items?level=grid&limit=2").json(t)["features"].([]any)
	other := grids[1].(map[string]any)
	var sx, sy float64
	ring := other["geometry"].(map[string]any)["coordinates"].([]any)[0].([]any)[0].([]any)
	for _, p := range ring[:len(ring)-1] {
		sx += p.([]any)[0].(float64)
		sy += p.([]any)[1].(float64)
	}
	theirs, otherCode := e.report(sx/float64(len(ring)-1), sy/float64(len(ring)-1))
	if otherCode == code || otherCode == "" {
		t.Fatalf("the second incident landed in %q", otherCode)
	}
	e.token = e.tokenFor(auth.RoleGridLeader, code)
	fs, n, _ := e.ogcAll("/ogc/collections/incidents/items")
	if !slices.Equal(featureIDs(fs), []int64{mine}) || n != 1 {
		t.Errorf("scoped incidents: %v (matched %v), want only %d", featureIDs(fs), n, mine)
	}
	if r := e.ogcGet(fmt.Sprintf("/ogc/collections/incidents/items/%d", theirs)); r.status != 404 || r.errorOf(t)["code"] != "not_found" {
		t.Errorf("another grid's incident: %d %s, want 404", r.status, r.body)
	}
	gs, n, _ := e.ogcAll("/ogc/collections/grids/items")
	if !slices.Equal(featureIDs(gs), []int64{gridID}) || n != 1 {
		t.Errorf("scoped grids: %v (matched %v), want only %d", featureIDs(gs), n, gridID)
	}
	if r := e.ogcGet(fmt.Sprintf("/ogc/collections/grids/items/%d", int64(other["id"].(float64)))); r.status != 404 {
		t.Errorf("another grid: %d, want 404", r.status)
	}
	// The extent is of what the caller sees: one incident, one grid.
	col := e.ogcGet("/ogc/collections/incidents").json(t)
	bbox := col["extent"].(map[string]any)["spatial"].(map[string]any)["bbox"].([]any)[0].([]any)
	if math.Abs(bbox[0].(float64)-lon) > 1e-6 || math.Abs(bbox[2].(float64)-lon) > 1e-6 {
		t.Errorf("scoped incident extent %v, want the one point %v,%v", bbox, lon, lat)
	}
}

func TestOGCCamerasShowNoCredentials(t *testing.T) {
	e := newAuthEnv(t)
	lon, lat, gridID, _ := e.gridPoint()
	body := fmt.Sprintf(`{"code":"JS-0001","name":"经八路口东","location":{"type":"Point","coordinates":[%v,%v]},"heading":90,"fov":70,"range":120,
		"main_url":"rtsp://admin:Hik12345@192.168.1.64:554/Streaming/Channels/101","sub_url":"rtsp://viewer:S3cretSub@192.168.1.64:554/Streaming/Channels/102"}`, lon, lat)
	r := e.do("POST", "/api/v1/cameras", []byte(body))
	if r.status != 201 {
		t.Fatalf("create camera: %d %s", r.status, r.body)
	}
	id := int64(r.json(t)["id"].(float64))
	var bodies []string
	for _, p := range []string{
		"/ogc/collections/cameras/items",
		"/ogc/collections/cameras/items?crs=" + url.QueryEscape("http://www.opengis.net/def/crs/EPSG/0/3857"),
		fmt.Sprintf("/ogc/collections/cameras/items?grid_id=%d&status=offline&code=JS-0001", gridID),
		fmt.Sprintf("/ogc/collections/cameras/items/%d", id),
		"/ogc/collections/cameras",
		"/ogc/collections",
	} {
		r := e.ogcGet(p)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", p, r.status, r.body)
		}
		bodies = append(bodies, string(r.body))
		if strings.Contains(p, "items") && !strings.Contains(p, "items/") {
			if fs := r.json(t)["features"].([]any); len(fs) != 1 {
				t.Errorf("%s: %d cameras, want 1", p, len(fs))
			}
		}
	}
	for i, b := range bodies {
		for _, secret := range []string{"Hik12345", "S3cretSub", "admin:", "viewer:"} {
			if strings.Contains(b, secret) {
				t.Errorf("response %d shows %q: %s", i, secret, b)
			}
		}
	}
	f := e.ogcGet(fmt.Sprintf("/ogc/collections/cameras/items/%d", id)).json(t)
	p := f["properties"].(map[string]any)
	if p["main_url"] != "rtsp://192.168.1.64:554/Streaming/Channels/101" || p["has_credentials"] != true || p["code"] != "JS-0001" {
		t.Errorf("camera properties %v", p)
	}
	for _, q := range []string{"status=broken", "grid_id=x", fmt.Sprintf("grid_id=%d", gridID+1)} {
		r := e.ogcGet("/ogc/collections/cameras/items?" + q)
		if strings.HasPrefix(q, "grid_id=") && q != "grid_id=x" {
			if r.status != 200 || len(r.json(t)["features"].([]any)) != 0 {
				t.Errorf("%s: %d %s, want no cameras", q, r.status, r.body)
			}
			continue
		}
		if r.status != 400 {
			t.Errorf("%s: %d, want 400", q, r.status)
		}
	}
}

func TestOGCErrors(t *testing.T) {
	e := newAuthEnv(t)
	checkBadQueries(t, func(path string) response { return e.ogcGet(path) }, []badQuery{
		{"/ogc/collections/grids/items?bbox=1,2,3", "bbox", "4", 400},
		{"/ogc/collections/grids/items?bbox=1,2,x,4", "bbox", "number", 400},
		{"/ogc/collections/grids/items?bbox=113,34,114,35,0,10", "bbox", "3D bbox not supported", 400},
		{"/ogc/collections/grids/items?bbox=114,34,113,35", "bbox", "east", 400},
		{"/ogc/collections/grids/items?bbox=113,-95,114,35", "bbox", "latitude", 400},
		{"/ogc/collections/grids/items?bbox=", "bbox", "", 400},
		{"/ogc/collections/grids/items?limit=0", "limit", "10000", 400},
		{"/ogc/collections/grids/items?limit=10001", "limit", "10000", 400},
		{"/ogc/collections/grids/items?limit=ten", "limit", "", 400},
		{"/ogc/collections/incidents/items?datetime=yesterday", "datetime", "RFC 3339", 400},
		{"/ogc/collections/incidents/items?datetime=2026-11-24T00:00:00Z/2026-11-20T00:00:00Z", "datetime", "after", 400},
		{"/ogc/collections/incidents/items?datetime=a/b/c", "datetime", "", 400},
		{"/ogc/collections/incidents/items?status=lost", "status", "", 400},
		{"/ogc/collections/incidents/items?priority=whenever", "priority", "", 400},
		{"/ogc/collections/grids/items?level=planet", "level", "", 400},
		{"/ogc/collections/grids/items?parent_id=-3", "parent_id", "", 400},
		{"/ogc/collections/grids/items?colour=red", "colour", "unknown query parameter", 400},
		{"/ogc/collections/grids/items?f=xml", "f", "", 400},
		{"/ogc/collections/grids/items?cursor=abc", "cursor", "", 400},
		{"/ogc/collections/grids/items?limit=5&limit=6", "limit", "more than once", 400},
		{"/ogc/collections/grids/items/999999", "", "not found", 404},
		{"/ogc/collections/grids/items/abc", "", "not found", 404},
		{"/ogc/collections/rivers", "", "does not exist", 404},
		{"/ogc/collections/rivers/items", "", "does not exist", 404},
		{"/ogc/collections/rivers/items/1", "", "does not exist", 404},
		{"/ogc/nowhere", "", "no route", 404},
		{"/tiles/nowhere/1", "", "no route", 404},
	})
}

// TestOGCLinksBehindProxy: links follow X-Forwarded-Proto and -Host from a
// trusted proxy only.
func TestOGCLinksBehindProxy(t *testing.T) {
	for _, trusted := range []bool{true, false} {
		e := newEnv(t, func(d *api.Deps) {
			if trusted {
				d.TrustedProxies = []string{"127.0.0.0/8"}
			}
		})
		r := e.ogcGet("/ogc", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "gw.example.org")
		want := e.srv.URL + "/ogc/collections"
		if trusted {
			want = "https://gw.example.org/ogc/collections"
		}
		if got := linkOf(t, r.json(t), "data"); got != want {
			t.Errorf("trusted %v: data link %q, want %q", trusted, got, want)
		}
	}
}
