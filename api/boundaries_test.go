package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"gridwatch/auth"
)

// A community far from the demo city, cut into grids A (west) and B (east).
const (
	bWest, bMid, bEast = 114.100, 114.105, 114.110
	bSouth, bNorth     = 34.900, 34.905
)

func bRect(x0, y0, x1, y1 float64) string {
	return fmt.Sprintf(`{"type":"Polygon","coordinates":[[[%v,%v],[%v,%v],[%v,%v],[%v,%v],[%v,%v]]]}`, x0, y0, x1, y0, x1, y1, x0, y1, x0, y0)
}

// importAB imports the fixture and returns the ids of A and B.
func (e *authEnv) importAB() (int64, int64) {
	e.t.Helper()
	all := bRect(bWest, bSouth, bEast, bNorth)
	f := func(code, name, level, parent, g string) string {
		p := ""
		if parent != "" {
			p = fmt.Sprintf(`,"parent_code":%q`, parent)
		}
		return fmt.Sprintf(`{"type":"Feature","properties":{"code":%q,"name":%q,"level":%q%s},"geometry":%s}`, code, name, level, p, g)
	}
	fc := `{"type":"FeatureCollection","features":[` + strings.Join([]string{
		f("410199", "试验区", "district", "", all), f("410199001", "试验街道", "street", "410199", all),
		f("410199001001", "试验社区", "community", "410199001", all),
		f("410199001001001", "试验一网格", "grid", "410199001001", bRect(bWest, bSouth, bMid, bNorth)),
		f("410199001001002", "试验二网格", "grid", "410199001001", bRect(bMid, bSouth, bEast, bNorth)),
	}, ",") + `]}`
	saved := e.token
	e.token = adminToken
	defer func() { e.token = saved }()
	r := e.do("POST", "/api/v1/grids/import", []byte(fc))
	if r.status != 201 && r.status != 200 {
		e.t.Fatalf("import: %d %s", r.status, r.body)
	}
	ids := map[string]int64{}
	for _, g := range r.json(e.t)["grids"].([]any) {
		m := g.(map[string]any)
		ids[m["code"].(string)] = int64(m["id"].(float64))
	}
	return ids["410199001001001"], ids["410199001001002"]
}

func TestRedrawOverHTTP(t *testing.T) {
	e := newAuthEnv(t)
	a, b := e.importAB()
	e.token = e.tokenFor(auth.RoleGISEditor)
	get := e.do("GET", fmt.Sprintf("/api/v1/grids/%d", a), nil)
	etag := get.header.Get("ETag")
	if get.status != 200 || etag != fmt.Sprintf(`"grid-%d-v1"`, a) {
		t.Fatalf("GET: %d, ETag %q", get.status, etag)
	}
	path := fmt.Sprintf("/api/v1/grids/%d/geometry", a)
	// A case in the strip A gives up, to see it move.
	lon, lat := bMid-0.0003, (bSouth+bNorth)/2
	e.token = adminToken
	inc := e.do("POST", "/api/v1/incidents", incidentBody(lon, lat, "strip-1"))
	if inc.status != 201 {
		t.Fatalf("report: %d %s", inc.status, inc.body)
	}
	incID := int64(inc.json(t)["id"].(float64))
	e.token = e.tokenFor(auth.RoleGISEditor)
	smaller := []byte(bRect(bWest, bSouth, bMid-0.0005, bNorth))

	// A preview needs no version and changes nothing.
	r := e.do("PUT", path+"?dry_run=true", smaller)
	if r.status != 200 {
		t.Fatalf("preview: %d %s", r.status, r.body)
	}
	var rep struct {
		Committed bool
		Findings  []struct{ Severity, Kind string }
		Incidents struct {
			Count int
			Items []struct {
				ID   int64
				From struct{ Code string }
				To   *struct{ Code string }
			}
		}
		Grids []struct {
			VersionAfter int     `json:"version_after"`
			AreaBefore   float64 `json:"area_before_m2"`
			AreaAfter    float64 `json:"area_after_m2"`
		}
	}
	if err := json.Unmarshal(r.body, &rep); err != nil {
		t.Fatal(err)
	}
	// A GIS editor, who may not read cases, learns how many move, not which.
	if rep.Committed || len(rep.Findings) != 1 || rep.Findings[0].Kind != "gap" || rep.Findings[0].Severity != "warning" ||
		rep.Incidents.Count != 1 || len(rep.Incidents.Items) != 0 || strings.Contains(string(r.body), "暴露垃圾") {
		t.Errorf("preview report to a GIS editor: %s", r.body)
	}
	gis := e.token
	e.token = adminToken
	r = e.do("PUT", path+"?dry_run=true", smaller)
	rep.Incidents.Items = nil
	if err := json.Unmarshal(r.body, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Incidents.Items) != 1 || rep.Incidents.Items[0].ID != incID || rep.Incidents.Items[0].To == nil || rep.Incidents.Items[0].To.Code != "410199001001" {
		t.Errorf("preview report to an admin: %s", r.body)
	}
	e.token = gis
	// A change must name the version it edits.
	if r := e.do("PUT", path, smaller); r.status != http.StatusPreconditionRequired || !strings.Contains(string(r.body), "If-Match") {
		t.Errorf("without If-Match: %d %s", r.status, r.body)
	}
	r = e.send(e.srv.Client(), "PUT", path, string(smaller), map[string]string{"If-Match": etag, "Authorization": "Bearer " + e.token})
	if r.status != 200 || r.header.Get("ETag") != fmt.Sprintf(`"grid-%d-v2"`, a) {
		t.Fatalf("commit: %d %s (ETag %q)", r.status, r.body, r.header.Get("ETag"))
	}
	// The same old ETag again: stale, and it says who and when.
	r = e.send(e.srv.Client(), "PUT", path, bRect(bWest, bSouth, bMid, bNorth), map[string]string{"If-Match": etag, "Authorization": "Bearer " + e.token})
	if r.status != http.StatusPreconditionFailed || !strings.Contains(string(r.body), "version 2 by") {
		t.Errorf("stale: %d %s", r.status, r.body)
	}
	// Overlapping B is refused, with the report.
	over := bRect(bWest, bSouth, bMid+0.0005, bNorth)
	r = e.send(e.srv.Client(), "PUT", path, over, map[string]string{"If-Match": fmt.Sprintf(`"grid-%d-v2"`, a), "Authorization": "Bearer " + e.token})
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(string(r.body), `"kind":"overlap"`) {
		t.Errorf("overlap: %d %s", r.status, r.body)
	}
	// Bad input is named.
	if r := e.do("PUT", path+"?dry_run=true", []byte(`{"type":"Point","coordinates":[1,2]}`)); r.status != 400 && r.status != 422 {
		t.Errorf("a point: %d %s", r.status, r.body)
	}
	if r := e.do("POST", fmt.Sprintf("/api/v1/grids/%d/edge?dry_run=true", a), []byte(`{"neighbour":`+fmt.Sprint(b)+`,"line":{"type":"LineString","coordinates":[[1,2]]}}`)); r.status != 400 ||
		!strings.Contains(string(r.body), "line") {
		t.Errorf("a one-point line: %d %s", r.status, r.body)
	}
	for _, bad := range []struct{ path, body, want string }{
		{"merge", `{}`, "with"},
		{"merge", `{"with":"b"}`, "JSON"},
		{"split", `{"new":{"code":"410199001001003","name":"x"}}`, "line"},
		{"edge", fmt.Sprintf(`{"line":{"type":"LineString","coordinates":[[%v,%v],[%v,%v]]}}`, bMid, bSouth, bMid, bNorth), "neighbour"},
		{"edge", `{"neighbour":999999,"line":{"type":"LineString","coordinates":[[1,2],[3,4]]}}`, "not found"},
	} {
		r := e.do("POST", fmt.Sprintf("/api/v1/grids/%d/%s?dry_run=true", a, bad.path), []byte(bad.body))
		if r.status != 400 && r.status != 404 || !strings.Contains(string(r.body), bad.want) {
			t.Errorf("%s %s: %d %s, want an error naming %s", bad.path, bad.body, r.status, r.body, bad.want)
		}
	}
	// History and as-of.
	r = e.do("GET", fmt.Sprintf("/api/v1/grids/%d/versions", a), nil)
	vs := r.json(t)["versions"].([]any)
	if r.status != 200 || len(vs) != 2 || vs[0].(map[string]any)["change"] != "redraw" {
		t.Fatalf("versions: %d %s", r.status, r.body)
	}
	from, _ := time.Parse(time.RFC3339Nano, vs[0].(map[string]any)["valid_from"].(string))
	r = e.do("GET", fmt.Sprintf("/api/v1/grids/%d?at=%s", a, from.Add(-time.Millisecond).Format(time.RFC3339Nano)), nil)
	if r.status != 200 || r.json(t)["version"].(float64) != 1 || r.json(t)["geometry"] == nil {
		t.Errorf("as of before the redraw: %d %s", r.status, r.body)
	}
	if r := e.do("GET", fmt.Sprintf("/api/v1/grids/%d/versions/1", a), nil); r.status != 200 || r.json(t)["geometry"] == nil {
		t.Errorf("version 1: %d", r.status)
	}
	// Grids that do not touch share no edge to move.
	body := fmt.Sprintf(`{"neighbour":%d,"line":{"type":"LineString","coordinates":[[%v,%v],[%v,%v]]}}`, b, bMid+0.001, bSouth, bMid+0.001, bNorth)
	r = e.send(e.srv.Client(), "POST", fmt.Sprintf("/api/v1/grids/%d/edge", a), body, map[string]string{"If-Match": fmt.Sprintf(`"grid-%d-v2"`, a), "Authorization": "Bearer " + e.token})
	if r.status != 400 || !strings.Contains(string(r.body), "share no edge") {
		t.Errorf("move an edge of grids apart: %d %s", r.status, r.body)
	}
	// Back to the full half, then the edge moves 90 m east.
	r = e.send(e.srv.Client(), "PUT", path, bRect(bWest, bSouth, bMid, bNorth), map[string]string{"If-Match": fmt.Sprintf(`"grid-%d-v2"`, a), "Authorization": "Bearer " + e.token})
	if r.status != 200 {
		t.Fatalf("redraw back: %d %s", r.status, r.body)
	}
	r = e.send(e.srv.Client(), "POST", fmt.Sprintf("/api/v1/grids/%d/edge", a), body, map[string]string{"If-Match": r.header.Get("ETag"), "Authorization": "Bearer " + e.token})
	if r.status != 200 || !r.json(t)["committed"].(bool) {
		t.Fatalf("move edge: %d %s", r.status, r.body)
	}
	e.token = adminToken
	if r := e.do("GET", fmt.Sprintf("/api/v1/incidents/%d", incID), nil); r.json(t)["grid"].(map[string]any)["code"] != "410199001001001" {
		t.Errorf("the case in the strip is in %v after the edge moved east", r.json(t)["grid"])
	}
	// Who may not change grids cannot, preview or not.
	e.token = e.tokenFor(auth.RoleOperator)
	if r := e.do("PUT", path+"?dry_run=true", smaller); r.status != 403 {
		t.Errorf("an operator previewed a redraw: %d", r.status)
	}
}

// TestGridChangedReachesEveryGridItTouched: moving the edge of A and B is
// heard by a viewer scoped to B alone, though the change is filed under A.
func TestGridChangedReachesEveryGridItTouched(t *testing.T) {
	e := newEventsEnv(t)
	a, b := e.importAB()
	onlyB := e.openStream(e.tokenFor(auth.RoleGridLeader, "410199001001002"), "")
	onlyDemo := e.openStream(e.tokenFor(auth.RoleGridLeader, "410105001001"), "")
	body := fmt.Sprintf(`{"neighbour":%d,"line":{"type":"LineString","coordinates":[[%v,%v],[%v,%v]]}}`, b, bMid+0.0008, bSouth, bMid+0.0008, bNorth)
	r := e.send(e.srv.Client(), "POST", fmt.Sprintf("/api/v1/grids/%d/edge", a), body, map[string]string{"If-Match": fmt.Sprintf(`"grid-%d-v1"`, a), "Authorization": "Bearer " + adminToken})
	if r.status != 200 {
		t.Fatalf("move edge: %d %s", r.status, r.body)
	}
	for {
		ev := onlyB.nextEvent()
		if ev.event == "grid.changed" {
			if d := eventData(t, ev); d["kind"] != "move_edge" {
				t.Errorf("event %v", d)
			}
			break
		}
	}
	// A report in the demo city comes after the change: the viewer of
	// another community hears it, and never the change before it.
	lon, lat, _, _ := e.gridPoint()
	e.report(lon, lat)
	for {
		ev := onlyDemo.nextEvent()
		if ev.event == "grid.changed" {
			t.Fatal("a viewer of another community heard of the change")
		}
		if ev.event == "incident.created" {
			break
		}
	}
}
