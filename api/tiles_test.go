package api_test

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gridwatch/auth"
	"gridwatch/geo"
	"gridwatch/internal/testtool"
)

// tileFeatures decodes a tile response and returns its layer's features by
// id; a 204 is a tile with none.
func tileFeatures(t *testing.T, r response, layer string) map[uint64]testtool.MVTFeature {
	t.Helper()
	out := map[uint64]testtool.MVTFeature{}
	if r.status == http.StatusNoContent {
		return out
	}
	if r.status != 200 || r.header.Get("Content-Type") != "application/vnd.mapbox-vector-tile" {
		t.Fatalf("tile: %d %s %.300s", r.status, r.header.Get("Content-Type"), r.body)
	}
	layers, err := testtool.DecodeMVT(r.body)
	if err != nil {
		t.Fatalf("decode tile: %v", err)
	}
	if len(layers) != 1 || layers[layer] == nil {
		t.Fatalf("tile layers %v, want only %s", layers, layer)
	}
	for _, f := range layers[layer].Features {
		if !f.HasID {
			t.Fatalf("feature without an id: %+v", f)
		}
		out[f.ID] = f
	}
	return out
}

func ids[V any](m map[uint64]V) []uint64 {
	out := make([]uint64, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// cityTile is the deepest tile holding the whole demo city.
func (e *authEnv) cityTile() geo.Tile {
	e.t.Helper()
	tj := e.do("GET", "/tiles/grids.json", nil).json(e.t)
	b := tj["bounds"].([]any)
	minLon, minLat, maxLon, maxLat := b[0].(float64), b[1].(float64), b[2].(float64), b[3].(float64)
	for z := 16; z >= 0; z-- {
		if t := geo.TileAt(z, minLon, minLat); t == geo.TileAt(z, maxLon, maxLat) {
			return t
		}
	}
	e.t.Fatal("no tile holds the city")
	return geo.Tile{}
}

func tilePath(layer string, t geo.Tile) string {
	return fmt.Sprintf("/tiles/%s/%d/%d/%d.mvt", layer, t.Z, t.X, t.Y)
}

func TestGridTilesOverHTTP(t *testing.T) {
	e := newAuthEnv(t)
	r := e.do("GET", "/tiles/grids.json", nil)
	tj := r.json(t)
	rev := int64(tj["revision"].(float64))
	v := strconv.FormatInt(rev, 10)
	tiles := tj["tiles"].([]any)
	if r.status != 200 || tj["tilejson"] != "3.0.0" || len(tiles) != 1 || tj["version_param"] != "v" || tj["version"] != "1."+v+".0" {
		t.Fatalf("tilejson: %d %s", r.status, r.body)
	}
	if want := e.srv.URL + "/tiles/grids/{z}/{x}/{y}.mvt?v=" + v; tiles[0] != want {
		t.Errorf("tiles %v, want %s", tiles[0], want)
	}
	layers := tj["vector_layers"].([]any)
	fields := layers[0].(map[string]any)["fields"].(map[string]any)
	if len(layers) != 1 || layers[0].(map[string]any)["id"] != "grids" || fields["code"] == nil || fields["name"] == nil || fields["level"] == nil || fields["parent_id"] == nil {
		t.Errorf("vector_layers %v", layers)
	}
	if b := tj["bounds"].([]any); b[0].(float64) < 113 || b[2].(float64) > 115 || b[1].(float64) < 34 || b[3].(float64) > 35.5 {
		t.Errorf("bounds %v are not the demo city's", b)
	}

	// The whole city: every grid, ids as integers, with a strong ETag;
	// asked for at the current revision, cacheable for good.
	city := e.cityTile()
	path := tilePath("grids", city)
	r = e.do("GET", path+"?v="+v, nil)
	all := tileFeatures(t, r, "grids")
	if len(all) != 76 {
		t.Fatalf("city tile %v: %d features, want 76", city, len(all))
	}
	etag := r.header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) || !strings.Contains(r.header.Get("Cache-Control"), "immutable") || !strings.Contains(r.header.Get("Cache-Control"), "private") {
		t.Errorf("ETag %q, Cache-Control %q: want a strong ETag, private and immutable", etag, r.header.Get("Cache-Control"))
	}
	if cc := e.do("GET", path, nil).header.Get("Cache-Control"); strings.Contains(cc, "immutable") || !strings.Contains(cc, "no-cache") {
		t.Errorf("without v: Cache-Control %q, want no-cache", cc)
	}
	if cc := e.do("GET", path+"?v=999", nil).header.Get("Cache-Control"); strings.Contains(cc, "immutable") {
		t.Errorf("with a stale v: Cache-Control %q, want no-cache", cc)
	}
	if r := e.get(path, map[string]string{"If-None-Match": etag}); r.status != http.StatusNotModified || len(r.body) != 0 || r.header.Get("ETag") != etag {
		t.Errorf("If-None-Match: %d (%d bytes), want 304", r.status, len(r.body))
	}
	if r := e.get(path, map[string]string{"If-None-Match": `"other", W/` + etag}); r.status != http.StatusNotModified {
		t.Errorf("If-None-Match with a list: %d, want 304", r.status)
	}

	// Nothing there: 204. Bad coordinates: 400 naming the value.
	if r := e.do("GET", "/tiles/grids/5/0/0.mvt", nil); r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Errorf("empty tile: %d %s", r.status, r.body)
	}
	for _, bad := range []struct{ path, param, value string }{
		{"/tiles/grids/23/0/0.mvt", "z", "23"},
		{"/tiles/grids/3/8/0.mvt", "x", "8"},
		{"/tiles/grids/3/0/-1.mvt", "y", "-1"},
		{"/tiles/grids/3/zero/0.mvt", "x", `"zero"`},
	} {
		r := e.do("GET", bad.path, nil)
		d, _ := r.errorOf(t)["details"].(map[string]any)
		if r.status != 400 || d["param"] != bad.param || d["value"] != bad.value || !strings.Contains(r.errorOf(t)["message"].(string), bad.value) {
			t.Errorf("%s: %d %s, want 400 naming %s=%s", bad.path, r.status, r.body, bad.param, bad.value)
		}
	}
	for _, p := range []string{"/tiles/roads/1/0/0.mvt", "/tiles/roads.json", "/tiles/grids/1/0/0.png"} {
		if r := e.do("GET", p, nil); r.status != 404 || r.errorOf(t)["code"] != "not_found" {
			t.Errorf("%s: %d %s, want a JSON 404", p, r.status, r.body)
		}
	}

	// A grid leader sees their community only, under another ETag.
	var community map[string]any
	for _, g := range e.do("GET", "/api/v1/grids?level=community&limit=1", nil).json(t)["grids"].([]any) {
		community = g.(map[string]any)
	}
	e.token = e.tokenFor(auth.RoleGridLeader, community["code"].(string))
	r = e.do("GET", path+"?v="+v, nil)
	scoped := tileFeatures(t, r, "grids")
	cid := uint64(community["id"].(float64))
	if _, ok := scoped[cid]; !ok || len(scoped) < 2 || len(scoped) >= len(all) {
		t.Errorf("grid leader of %v sees %d grids: %v", community["code"], len(scoped), ids(scoped))
	}
	for id, f := range scoped {
		if id != cid && f.Properties["parent_id"] != cid {
			t.Errorf("grid leader of community %d sees grid %d of %v", cid, id, f.Properties["parent_id"])
		}
	}
	if r.header.Get("ETag") == etag {
		t.Error("the scoped tile has the unscoped tile's ETag")
	}
	if r := e.get(path, map[string]string{"If-None-Match": etag}); r.status == http.StatusNotModified {
		t.Error("the unscoped ETag answers 304 to a scoped caller")
	}
	e.token = adminToken

	// A redraw (here a delete) moves the revision: a new v in the TileJSON,
	// the old ETag no longer matches and the old v is no longer immutable.
	var leaf uint64
	for id, f := range all {
		if f.Properties["level"] == "grid" {
			leaf = id
			break
		}
	}
	if r := e.do("DELETE", fmt.Sprintf("/api/v1/grids/%d", leaf), nil); r.status != 204 {
		t.Fatalf("delete grid %d: %d %s", leaf, r.status, r.body)
	}
	tj = e.do("GET", "/tiles/grids.json", nil).json(t)
	v2 := strconv.FormatInt(int64(tj["revision"].(float64)), 10)
	if v2 == v || !strings.HasSuffix(tj["tiles"].([]any)[0].(string), "?v="+v2) {
		t.Fatalf("after a delete: revision %s (was %s), tiles %v", v2, v, tj["tiles"])
	}
	r = e.get(path+"?v="+v, map[string]string{"If-None-Match": etag})
	if r.status != 200 || r.header.Get("ETag") == etag || strings.Contains(r.header.Get("Cache-Control"), "immutable") {
		t.Errorf("old v and ETag after a redraw: %d, ETag %s, Cache-Control %s", r.status, r.header.Get("ETag"), r.header.Get("Cache-Control"))
	}
	if after := tileFeatures(t, r, "grids"); len(after) != 75 {
		t.Errorf("after deleting grid %d: %d features, want 75", leaf, len(after))
	} else if _, ok := after[leaf]; ok {
		t.Errorf("deleted grid %d is still drawn", leaf)
	}
}

// get is do with request headers.
func (e *env) get(path string, hdr map[string]string) response {
	e.t.Helper()
	req, err := http.NewRequest("GET", e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// otherGridPoint returns a point inside a grid of another community than
// code's, and that grid's id.
func (e *authEnv) otherGridPoint(code string) (lon, lat float64, id int64) {
	e.t.Helper()
	for _, g := range e.do("GET", "/api/v1/grids?level=grid&limit=100", nil).json(e.t)["grids"].([]any) {
		m := g.(map[string]any)
		if strings.HasPrefix(m["code"].(string), code[:12]) {
			continue
		}
		id = int64(m["id"].(float64))
		ring := e.do("GET", fmt.Sprintf("/api/v1/grids/%d", id), nil).json(e.t)["geometry"].(map[string]any)["coordinates"].([]any)[0].([]any)[0].([]any)
		for _, p := range ring[:len(ring)-1] {
			lon += p.([]any)[0].(float64)
			lat += p.([]any)[1].(float64)
		}
		n := float64(len(ring) - 1)
		return lon / n, lat / n, id
	}
	e.t.Fatal("no grid in another community")
	return
}

// pointTiles fetches the tiles of layer at zoom z holding each point and
// returns their features together.
func (e *authEnv) pointTiles(layer string, z int, query string, pts ...[2]float64) map[uint64]testtool.MVTFeature {
	e.t.Helper()
	out := map[uint64]testtool.MVTFeature{}
	seen := map[geo.Tile]bool{}
	for _, p := range pts {
		tl := geo.TileAt(z, p[0], p[1])
		if seen[tl] {
			continue
		}
		seen[tl] = true
		for id, f := range tileFeatures(e.t, e.do("GET", tilePath(layer, tl)+query, nil), layer) {
			out[id] = f
		}
	}
	return out
}

func TestIncidentAndCameraTilesOverHTTP(t *testing.T) {
	e := newAuthEnv(t)
	lon, lat, gridID, code := e.gridPoint()
	olon, olat, otherID := e.otherGridPoint(code)
	pts := [][2]float64{{lon, lat}, {olon, olat}}
	mine := int64(e.do("POST", "/api/v1/incidents", incidentBody(lon, lat, "T-1")).json(t)["id"].(float64))
	theirs := int64(e.do("POST", "/api/v1/incidents", incidentBody(olon, olat, "T-2")).json(t)["id"].(float64))
	cam := func(code string, lon, lat float64) int64 {
		body := fmt.Sprintf(`{"code":%q,"name":"路口","location":{"type":"Point","coordinates":[%v,%v]},"heading":90,"fov":70,"range":120,"main_url":"rtsp://127.0.0.1:1/a"}`, code, lon, lat)
		r := e.do("POST", "/api/v1/cameras", []byte(body))
		if r.status != 201 {
			t.Fatalf("camera: %d %s", r.status, r.body)
		}
		return int64(r.json(t)["id"].(float64))
	}
	myCam, theirCam := cam("T-CAM-1", lon, lat), cam("T-CAM-2", olon, olat)

	// The admin sees both, as points with their ids and properties.
	got := e.pointTiles("incidents", 14, "", pts...)
	if !slices.Equal(ids(got), []uint64{uint64(mine), uint64(theirs)}) {
		t.Fatalf("admin incident tiles: %v, want %d and %d", ids(got), mine, theirs)
	}
	f := got[uint64(mine)]
	if f.Type != 1 || f.Properties["status"] != "reported" || f.Properties["priority"] != "high" || f.Properties["category"] != "0101" ||
		f.Properties["title"] != "暴露垃圾" || f.Properties["grid_id"] != uint64(gridID) || f.Properties["overdue"] != false ||
		!strings.HasSuffix(f.Properties["reported_at"].(string), "Z") {
		t.Errorf("incident feature %+v", f)
	}
	cams := e.pointTiles("cameras", 14, "", pts...)
	if !slices.Equal(ids(cams), []uint64{uint64(myCam), uint64(theirCam)}) {
		t.Fatalf("admin camera tiles: %v, want %d and %d", ids(cams), myCam, theirCam)
	}
	if c := cams[uint64(theirCam)]; c.Properties["code"] != "T-CAM-2" || c.Properties["grid_id"] != uint64(otherID) || c.Properties["status"] == nil || c.Properties["heading"] == nil {
		t.Errorf("camera feature %+v", c)
	}
	// Filters: none closed; an unknown status and a zoom too shallow are 400.
	if got := e.pointTiles("incidents", 14, "?status=closed", pts...); len(got) != 0 {
		t.Errorf("status=closed: %v", ids(got))
	}
	if got := e.pointTiles("incidents", 14, "?status=open", pts...); len(got) != 2 {
		t.Errorf("status=open: %v", ids(got))
	}
	if r := e.do("GET", "/tiles/incidents/14/0/0.mvt?status=lost", nil); r.status != 400 {
		t.Errorf("status=lost: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/tiles/cameras/5/0/0.mvt", nil); r.status != 400 || r.errorOf(t)["details"].(map[string]any)["param"] != "z" {
		t.Errorf("camera tile at zoom 5: %d %s, want 400 on z", r.status, r.body)
	}
	// An ETag over the bytes; the same tile again is a 304.
	tl := geo.TileAt(14, lon, lat)
	r := e.do("GET", tilePath("incidents", tl), nil)
	if r2 := e.get(tilePath("incidents", tl), map[string]string{"If-None-Match": r.header.Get("ETag")}); r.header.Get("ETag") == "" || r2.status != 304 {
		t.Errorf("incident tile ETag %q: again %d, want 304", r.header.Get("ETag"), r2.status)
	}
	for _, layer := range []string{"incidents", "cameras"} {
		tj := e.do("GET", "/tiles/"+layer+".json", nil).json(t)
		if tj["tilejson"] != "3.0.0" || tj["minzoom"].(float64) != 10 || tj["tiles"].([]any)[0] != e.srv.URL+"/tiles/"+layer+"/{z}/{x}/{y}.mvt" {
			t.Errorf("%s tilejson: %v", layer, tj)
		}
	}

	// A commander scoped to the first grid's community sees only its own.
	body := fmt.Sprintf(`{"name":"scoped","role":"commander","grid_codes":[%q]}`, code[:12])
	e.token = e.do("POST", "/api/v1/tokens", []byte(body)).json(t)["secret"].(string)
	if got := e.pointTiles("incidents", 14, "", pts...); !slices.Equal(ids(got), []uint64{uint64(mine)}) {
		t.Errorf("scoped incident tiles: %v, want only %d", ids(got), mine)
	}
	if got := e.pointTiles("cameras", 14, "", pts...); !slices.Equal(ids(got), []uint64{uint64(myCam)}) {
		t.Errorf("scoped camera tiles: %v, want only %d", ids(got), myCam)
	}
	// An integration sees only its own reports: none here.
	e.token = adminToken
	e.token = e.tokenFor(auth.RoleIntegration)
	if got := e.pointTiles("incidents", 14, "", pts...); len(got) != 0 {
		t.Errorf("integration incident tiles: %v, want none", ids(got))
	}
}

func TestTilePermissions(t *testing.T) {
	e := newAuthEnv(t)
	city := e.cityTile()
	for _, c := range []struct {
		role   auth.Role
		path   string
		status int
	}{
		{auth.RoleGISEditor, tilePath("grids", city), 200},
		{auth.RoleGISEditor, "/tiles/grids.json", 200},
		{auth.RoleGISEditor, "/tiles/incidents/14/0/0.mvt", 403},
		{auth.RoleGISEditor, "/tiles/incidents.json", 403},
		{auth.RoleGISEditor, "/tiles/cameras/14/0/0.mvt", 403},
		{auth.RoleIntegration, tilePath("grids", city), 403},
		{auth.RoleIntegration, "/tiles/cameras.json", 403},
		{auth.RoleIntegration, "/tiles/incidents/14/0/0.mvt", 204},
		{auth.RoleOperator, "/tiles/cameras/14/0/0.mvt", 204},
	} {
		e.token = adminToken
		e.token = e.tokenFor(c.role)
		if r := e.do("GET", c.path, nil); r.status != c.status {
			t.Errorf("%s %s: %d %s, want %d", c.role, c.path, r.status, r.body, c.status)
		}
	}
	e.token = ""
	if r := e.do("GET", tilePath("grids", city), nil); r.status != 401 {
		t.Errorf("anonymous: %d, want 401", r.status)
	}
}
