package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"gridwatch/api"
)

// fillPath puts value in place of the path parameter param and "1" in
// place of the others (a layer or collection gets a real name).
func fillPath(path, param, value string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if !strings.HasPrefix(p, ":") {
			continue
		}
		switch {
		case p == param:
			parts[i] = value
		case p == ":cid":
			parts[i] = "grids"
		case p == ":layer":
			parts[i] = "grids"
		case p == ":file" && strings.Contains(path, "/hls/"):
			parts[i] = "index.m3u8"
		case p == ":file" && strings.HasPrefix(path, "/tiles/"):
			parts[i] = "1.mvt"
		case p == ":file":
			parts[i] = "1.json"
		default:
			parts[i] = "1"
		}
	}
	return strings.Join(parts, "/")
}

func (e *env) doType(method, path, ctype string, body []byte) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return readResponse(res)
}

// TestBadTextInBodiesIs400OnEveryRoute sends a NUL, invalid UTF-8 and a
// second document to every route that takes a body: each must be a 400
// naming the field (its JSON path), never a 500 and never an ERROR log.
func TestBadTextInBodiesIs400OnEveryRoute(t *testing.T) {
	e := newEnv(t)
	e.importDemo()
	// Bodies that are not JSON: NDJSON, photos, an SDP offer.
	raw := map[string]bool{"POST /api/v1/incidents/bulk": true, "POST /api/v1/incidents/:id/attachments": true, "POST /api/v1/cameras/:id/whep": true}
	for _, tc := range []struct {
		name, body, field string
	}{
		{"NUL in note", `{"note":"a\u0000b"}`, "note"},
		{"NUL in properties.name", `{"type":"Feature","properties":{"name":"x\u0000"}}`, "properties.name"},
		{"raw NUL byte in username", "{\"username\":\"a\x00\",\"password\":\"p\"}", "username"},
		{"invalid UTF-8 in title", "{\"title\":\"caf\xe9\"}", "title"},
		{"lone surrogate in label", `{"label":"\udc00"}`, "label"},
		{"trailing data", `{"note":"a"} {"note":"b"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range api.New(api.Deps{}).Routes() {
				if r.Method == "GET" || raw[r.Method+" "+r.Path] {
					continue
				}
				path := fillPath(r.Path, "", "")
				ctype := "application/json"
				res := e.doType(r.Method, path, ctype, []byte(tc.body))
				if res.status != 400 {
					t.Errorf("%s %s: %d %s, want 400", r.Method, path, res.status, res.body)
					continue
				}
				if strings.HasPrefix(path, "/open311/") {
					// GeoReport v2's error list has no details: the text names it.
					if !strings.Contains(string(res.body), tc.field) {
						t.Errorf("%s %s: %s, want the error to name %q", r.Method, path, res.body, tc.field)
					}
					continue
				}
				er := res.errorOf(t)
				details, _ := er["details"].(map[string]any)
				if tc.field == "" {
					if !strings.Contains(er["message"].(string), "trailing data after the JSON document") {
						t.Errorf("%s %s: %s, want trailing data after the JSON document", r.Method, path, res.body)
					}
					continue
				}
				if details["field"] != tc.field {
					t.Errorf("%s %s: field %v (%s), want %q", r.Method, path, details["field"], res.body, tc.field)
				}
			}
		})
	}
	if strings.Contains(e.logs.String(), `"level":"ERROR"`) {
		t.Errorf("bad input logged an error:\n%s", e.logs.String())
	}
	// Nothing was stored: the demo's 76 grids, no user, no incident.
	if n := len(e.do("GET", "/api/v1/grids?limit=1000", nil).json(t)["grids"].([]any)); n != 76 {
		t.Errorf("%d grids after the bad bodies, want the demo's 76", n)
	}
	if n := len(e.do("GET", "/api/v1/incidents", nil).json(t)["incidents"].([]any)); n != 0 {
		t.Errorf("%d incidents after the bad bodies, want 0", n)
	}
}

// TestBadTextInBulkLinesNamesLineAndField: each bad NDJSON line is
// reported with its line and field; the good lines are stored.
func TestBadTextInBulkLinesNamesLineAndField(t *testing.T) {
	e := newAuthEnv(t)
	lon, lat, _, _ := e.gridPoint()
	good := func(i int) string {
		return fmt.Sprintf(`{"source":"sensor","external_id":"t-%d","category":"0404","title":"积水","location":{"type":"Point","coordinates":[%v,%v]}}`, i, lon, lat)
	}
	lines := []string{
		good(1),
		`{"source":"sensor","external_id":"t-2","category":"0404","title":"a\u0000b","location":{"type":"Point","coordinates":[1,2]}}`,
		"{\"source\":\"sensor\",\"external_id\":\"t-3\",\"category\":\"0404\",\"title\":\"\xff\xfe\",\"location\":{\"type\":\"Point\",\"coordinates\":[1,2]}}",
		good(4) + ` {"x":1}`,
		good(5),
	}
	r := e.do("POST", "/api/v1/incidents/bulk", []byte(strings.Join(lines, "\n")+"\n"))
	if r.status != 200 {
		t.Fatalf("bulk: %d %s", r.status, r.body)
	}
	got := r.ndjson(t)
	if len(got) != 6 {
		t.Fatalf("%d answer lines, want 5 results and a summary: %s", len(got), r.body)
	}
	for _, want := range []struct {
		line         int
		status       string
		field, words string
	}{
		{1, "created", "", ""},
		{2, "error", "title", "NUL"},
		{3, "error", "title", "UTF-8"},
		{4, "error", "", "trailing data after the JSON document"},
		{5, "created", "", ""},
	} {
		res := got[want.line-1]
		if res["line"] != float64(want.line) || res["status"] != want.status {
			t.Errorf("line %d: %v, want %s", want.line, res, want.status)
			continue
		}
		if want.status != "error" {
			continue
		}
		er := res["error"].(map[string]any)
		details, _ := er["details"].(map[string]any)
		if want.field != "" && details["field"] != want.field {
			t.Errorf("line %d: field %v, want %s (%v)", want.line, details["field"], want.field, er)
		}
		if !strings.Contains(er["message"].(string), want.words) {
			t.Errorf("line %d: message %q, want it to mention %q", want.line, er["message"], want.words)
		}
	}
	if sum := got[5]["summary"].(map[string]any); sum["created"] != float64(2) || sum["errors"] != float64(3) {
		t.Errorf("summary %v, want 2 created and 3 errors", sum)
	}
}

// TestQueryParametersAreChecked: a parameter a route does not read, or
// one Go's URL parser would drop (a semicolon), is a 400 naming it — the
// incident list no longer answers every incident for ?grid=22;.
func TestQueryParametersAreChecked(t *testing.T) {
	e := newAuthEnv(t)
	lon, lat, gridID, _ := e.gridPoint()
	if r := e.do("POST", "/api/v1/incidents", incidentBody(lon, lat, "q-1")); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		name, path string
		param      string // "" accepted
	}{
		{"grid with a semicolon", "/api/v1/incidents?grid=22;", "grid"},
		{"semicolon separator", fmt.Sprintf("/api/v1/incidents?grid=%d;status=reported", gridID), "grid"},
		{"misspelt filter", "/api/v1/incidents?gird=22", "gird"},
		{"token where no token is taken", "/api/v1/grids?token=x", "token"},
		{"api_key where none is taken", "/api/v1/cameras?api_key=x", "api_key"},
		{"bad escape", "/api/v1/grids?level=%zz", "level"},
		{"known filters", fmt.Sprintf("/api/v1/incidents?grid=%d&status=reported&limit=5", gridID), ""},
		{"the dashboard's camera list", "/api/v1/cameras?limit=1000", ""},
		{"an OGC queryable", "/ogc/collections/incidents/items?status=reported&limit=5&f=json", ""},
		{"not an OGC queryable", "/ogc/collections/incidents/items?colour=red", "colour"},
		{"a grid tile's revision", "/tiles/grids/10/0/0.mvt?v=1", ""},
		{"an incident tile's status", "/tiles/incidents/10/0/0.mvt?status=open", ""},
		{"an unknown tile parameter", "/tiles/grids/10/0/0.mvt?w=1", "w"},
		{"Open311 jurisdiction", "/open311/v2/services.json?jurisdiction_id=zz", ""},
		{"Open311 api_key on a keyParam route", "/open311/v2/requests.json?api_key=" + adminToken, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("GET", tc.path, nil)
			if tc.param == "" {
				if r.status/100 != 2 {
					t.Fatalf("%s: %d %s, want 2xx", tc.path, r.status, r.body)
				}
				return
			}
			if r.status != 400 {
				t.Fatalf("%s: %d %s, want 400", tc.path, r.status, r.body)
			}
			er := r.errorOf(t)
			if d, _ := er["details"].(map[string]any); d["param"] != tc.param {
				t.Errorf("%s: names %v (%s), want %q", tc.path, d["param"], r.body, tc.param)
			}
		})
	}
	// Open311 clients get GeoReport v2's error list.
	r := e.do("GET", "/open311/v2/services.json?foo=1", nil)
	var list []map[string]any
	if r.status != 400 || json.Unmarshal(r.body, &list) != nil || len(list) != 1 || !strings.Contains(fmt.Sprint(list[0]["description"]), "foo") {
		t.Errorf("open311 unknown parameter: %d %s, want 400 with a GeoReport error naming foo", r.status, r.body)
	}
}

// TestPathParametersNeverAnswer5xx sends garbage and huge numbers in every
// path parameter of every route: a 400 or 404, never a 500. Services this
// test does not run (video, recordings, exports) may answer 503 unavailable.
func TestPathParametersNeverAnswer5xx(t *testing.T) {
	e := newEnv(t)
	e.importDemo()
	values := []string{"abc", "0", "-1", "1.5", "99999999999", "9223372036854775808", "99999999999999999999999", "%ff", "1e3", "seg-abc.m4s", "seg-99999999999.m4s", "init-x.mp4", "..%2f1"}
	for _, r := range api.New(api.Deps{}).Routes() {
		for _, part := range strings.Split(r.Path, "/") {
			if !strings.HasPrefix(part, ":") {
				continue
			}
			for _, v := range values {
				path := fillPath(r.Path, part, v)
				res := e.do(r.Method, path, []byte("{}"))
				switch {
				case res.status == 503 && errCode(res) == "unavailable":
				case res.status >= 500:
					t.Errorf("%s %s: %d %s, want 4xx", r.Method, path, res.status, res.body)
				}
			}
		}
	}
	if strings.Contains(e.logs.String(), `"level":"ERROR"`) {
		t.Errorf("bad path parameters logged an error:\n%s", e.logs.String())
	}
	// The two from the issue, by status.
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/api/v1/grids/1/versions/99999999999", 404},
		{"/api/v1/grids/1/versions/abc", 400},
		{"/api/v1/grids/1/versions/1", 200},
		{"/api/v1/cameras/1/hls/seg-abc.m4s", 404},
	} {
		if r := e.do("GET", tc.path, nil); r.status != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.path, r.status, r.body, tc.want)
		}
	}
}

// TestDeepGridPropertiesAreRefused: free properties nested 9,000 levels
// deep (or too large) are refused by the import, the single create and the
// OGC create, naming the feature and the property; nothing is stored, so
// the grid lists stay readable.
func TestDeepGridPropertiesAreRefused(t *testing.T) {
	e := newEnv(t)
	deep := strings.Repeat("[", 9000) + "1" + strings.Repeat("]", 9000)
	district := func(code, extra string) string {
		return fmt.Sprintf(`{"type":"Feature","properties":{"code":%q,"name":"区 %s","level":"district",%s},"geometry":%s}`, code, code, extra, square(113.0, 34.0, 0.01))
	}
	big := `"blob":"` + strings.Repeat("x", 70<<10) + `"`
	for _, tc := range []struct {
		name, method, path, body string
		feature                  float64
		property                 string
	}{
		{"import, deep", "POST", "/api/v1/grids/import", `{"type":"FeatureCollection","features":[` + district("410101", `"a":1`) + "," + district("410102", `"tree":`+deep) + `]}`, 1, "tree"},
		{"import, large", "POST", "/api/v1/grids/import", `{"type":"FeatureCollection","features":[` + district("410102", big) + `]}`, 0, "blob"},
		{"single create", "POST", "/api/v1/grids", district("410103", `"tree":`+deep), 0, "tree"},
		{"OGC create", "POST", "/ogc/collections/grids/items", district("410104", `"tree":`+deep), 0, "tree"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, []byte(tc.body))
			if r.status != 400 {
				t.Fatalf("%d %.300s, want 400", r.status, r.body)
			}
			d, _ := r.errorOf(t)["details"].(map[string]any)
			probs, _ := d["problems"].([]any)
			if len(probs) == 0 {
				t.Fatalf("no problems listed: %.300s", r.body)
			}
			p := probs[0].(map[string]any)
			if p["feature"] != tc.feature || p["property"] != tc.property {
				t.Errorf("problem %v, want feature %v property %q", p, tc.feature, tc.property)
			}
		})
	}
	if n := len(e.do("GET", "/api/v1/grids?limit=1000", nil).json(t)["grids"].([]any)); n != 0 {
		t.Errorf("%d grids stored, want none", n)
	}
}
