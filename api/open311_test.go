package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strings"
	"testing"
	"time"

	"gridwatch/auth"
	"gridwatch/geo"
)

// open311Point is a point inside a grid-level cell of the demo city.
type open311Point struct {
	lon, lat float64
	id       int64
	code     string
}

// open311Points returns points inside the first n grid-level cells, by code.
func open311Points(e *authEnv, n int) []open311Point {
	e.t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)), id, code
		FROM grids WHERE level = 'grid' ORDER BY code LIMIT $1`, n)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []open311Point
	for rows.Next() {
		var p open311Point
		if err := rows.Scan(&p.lon, &p.lat, &p.id, &p.code); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, p)
	}
	if len(out) != n {
		e.t.Fatalf("%d grid points, want %d", len(out), n)
	}
	return out
}

// open311Post posts a form as a GeoReport client does: api_key in the body.
func open311Post(e *authEnv, query string, form url.Values, hdr map[string]string) response {
	e.t.Helper()
	h := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	for k, v := range hdr {
		h[k] = v
	}
	return e.send(e.srv.Client(), "POST", "/open311/v2/requests.json"+query, form.Encode(), h)
}

// open311List decodes a JSON array answer.
func open311List(t *testing.T, r response) []map[string]any {
	t.Helper()
	var l []map[string]any
	if err := json.Unmarshal(r.body, &l); err != nil {
		t.Fatalf("answer is not a JSON array: %v: %d %s", err, r.status, r.body)
	}
	return l
}

// open311Err checks an answer is the spec's error list with the status
// and a description that mentions want.
func open311Err(t *testing.T, r response, status int, want string) {
	t.Helper()
	var l []struct {
		Code        int    `json:"code"`
		Description string `json:"description"`
	}
	if err := json.Unmarshal(r.body, &l); err != nil || len(l) != 1 {
		t.Fatalf("want [{code, description}], got %d %s", r.status, r.body)
	}
	if r.status != status || l[0].Code != status || !strings.Contains(l[0].Description, want) {
		t.Errorf("got %d %d %q, want %d mentioning %q", r.status, l[0].Code, l[0].Description, status, want)
	}
}

func TestOpen311Services(t *testing.T) {
	e := newAuthEnv(t)
	e.token = "" // the service list is public
	r := e.do("GET", "/open311/v2/services.json?jurisdiction_id=zhengzhou", nil)
	services := open311List(t, r)
	if r.status != 200 || len(services) != 24 {
		t.Fatalf("services: %d, %d services, want 200 and 24 subclasses (0101…0601 and the component classes 0701…0705)", r.status, len(services))
	}
	first := services[0]
	for k, want := range map[string]any{"service_code": "0101", "service_name": "暴露垃圾", "group": "市容环境", "metadata": false, "type": "realtime"} {
		if first[k] != want {
			t.Errorf("services[0].%s = %v, want %v", k, first[k], want)
		}
	}
	if d, _ := first["description"].(string); !strings.Contains(d, "24") {
		t.Errorf("description %q does not give the 24 h limit", d)
	}
	if k, _ := first["keywords"].(string); !strings.Contains(k, "暴露垃圾") {
		t.Errorf("keywords %q", k)
	}
	for _, sv := range services {
		if code := sv["service_code"].(string); len(code) != 4 {
			t.Errorf("service %s is not a subclass", code)
		}
	}

	r = e.do("GET", "/open311/v2/services/0404.json", nil)
	var def map[string]any
	if err := json.Unmarshal(r.body, &def); err != nil || r.status != 200 || def["service_code"] != "0404" {
		t.Fatalf("definition: %d %s", r.status, r.body)
	}
	if a, ok := def["attributes"].([]any); !ok || len(a) != 0 {
		t.Errorf("attributes %v, want []", def["attributes"])
	}
	for _, tc := range []struct {
		path   string
		status int
		want   string
	}{
		{"/open311/v2/services/9999.json", 404, `"9999" not found`},
		{"/open311/v2/services/01.json", 404, `"01" not found`}, // a class is not a service
		{"/open311/v2/services/0101.xml", 400, "only JSON"},
		{"/open311/v2/services/0101", 404, "{id}.json"},
	} {
		t.Run(tc.path, func(t *testing.T) { open311Err(t, e.do("GET", tc.path, nil), tc.status, tc.want) })
	}
}

func TestOpen311RequestsAsTheSpecShowsThem(t *testing.T) {
	e := newAuthEnv(t)
	pts := open311Points(e, 2)
	key := e.tokenFor(auth.RoleIntegration)

	// POST requests.json, form-encoded, with the spec's fields.
	form := url.Values{
		"api_key": {key}, "jurisdiction_id": {"zhengzhou"}, "service_code": {"0101"},
		"lat": {fmt.Sprint(pts[0].lat)}, "long": {fmt.Sprint(pts[0].lon)},
		"address_string": {"经八路1号"}, "description": {"路口东侧垃圾堆放三天无人清理，气味很大，影响行人通行，请尽快处理。附近还有一处积水，也请一并查看。另外路灯也坏了，晚上很黑。谢谢！"},
		"email": {"citizen@example.com"}, "first_name": {"明"}, "last_name": {"李"}, "phone": {"13800000000"},
		"media_url": {"https://example.com/photo.jpg"},
	}
	r := open311Post(e, "", form, nil)
	if r.status != 201 {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	created := open311List(t, r)
	if len(created) != 1 || created[0]["service_request_id"] == nil || created[0]["service_notice"] == "" {
		t.Fatalf("POST answer %s", r.body)
	}
	if v, ok := created[0]["account_id"]; !ok || v != nil {
		t.Errorf("account_id %v, want null", v)
	}
	id := created[0]["service_request_id"].(string)
	if !strings.Contains(created[0]["service_notice"].(string), pts[0].code) {
		t.Errorf("service_notice %q does not name the grid %s", created[0]["service_notice"], pts[0].code)
	}
	if loc := r.header.Get("Location"); loc != "/open311/v2/requests/"+id+".json" {
		t.Errorf("Location %q", loc)
	}

	// The incident behind it, as the command centre sees it.
	e.token = adminToken
	in := e.do("GET", "/api/v1/incidents/"+id, nil).json(t)
	if in["source"] != "citizen" || in["category"] != "0101" || in["address"] != "经八路1号" ||
		in["grid"].(map[string]any)["code"] != pts[0].code || in["status"] != "reported" {
		t.Errorf("incident: %v", in)
	}
	if title := in["title"].(string); !strings.HasPrefix(title, "路口东侧垃圾堆放") || len([]rune(title)) != 61 {
		t.Errorf("title %q: want the description's first 60 characters and an ellipsis", title)
	}
	if strings.Contains(string(e.do("GET", "/api/v1/incidents/"+id, nil).body), "citizen@example.com") {
		t.Error("contact details were stored on the incident")
	}

	// A retry with the same Idempotency-Key: 200 and the same request.
	retryForm := url.Values{"api_key": {key}, "service_code": {"0401"}, "lat": {fmt.Sprint(pts[1].lat)}, "long": {fmt.Sprint(pts[1].lon)}}
	a := open311Post(e, "", retryForm, map[string]string{"Idempotency-Key": "app-42"})
	b := open311Post(e, "", retryForm, map[string]string{"Idempotency-Key": "app-42"})
	if a.status != 201 || b.status != 200 || open311List(t, a)[0]["service_request_id"] != open311List(t, b)[0]["service_request_id"] {
		t.Fatalf("retry: %d %s / %d %s", a.status, a.body, b.status, b.body)
	}
	second := open311List(t, a)[0]["service_request_id"].(string)
	in = e.do("GET", "/api/v1/incidents/"+second, nil).json(t)
	if in["title"] != "路面塌陷" {
		t.Errorf("title without a description: %q, want the service name", in["title"])
	}

	// A JSON body (api_key in the query), in GCJ-02 as a phone reports it.
	glon, glat := geo.WGS84ToGCJ02(pts[1].lon, pts[1].lat)
	body := fmt.Sprintf(`{"service_code":"0504","lat":%v,"long":%v,"description":"车辆乱停"}`, glat, glon)
	r = e.send(e.srv.Client(), "POST", "/open311/v2/requests.json?crs=gcj02&api_key="+url.QueryEscape(key), body, map[string]string{"Content-Type": "application/json"})
	if r.status != 201 {
		t.Fatalf("JSON POST: %d %s", r.status, r.body)
	}
	third := open311List(t, r)[0]["service_request_id"].(string)
	in = e.do("GET", "/api/v1/incidents/"+third, nil).json(t)
	c := in["location"].(map[string]any)["coordinates"].([]any)
	if math.Abs(c[0].(float64)-pts[1].lon) > 1e-5 || math.Abs(c[1].(float64)-pts[1].lat) > 1e-5 || in["grid"].(map[string]any)["code"] != pts[1].code {
		t.Errorf("gcj02 report stored at %v in %v, want %v,%v in %s", c, in["grid"], pts[1].lon, pts[1].lat, pts[1].code)
	}

	// Someone else's incident, which the integration must not see.
	other := e.do("POST", "/api/v1/incidents", []byte(fmt.Sprintf(`{"source":"hotline","category":"0101","title":"暴露垃圾",
		"location":{"type":"Point","coordinates":[%v,%v]}}`, pts[0].lon, pts[0].lat))).json(t)
	otherID := fmt.Sprint(int64(other["id"].(float64)))

	// GET requests/{id}.json: the spec's fields.
	e.token = ""
	r = e.do("GET", "/open311/v2/requests/"+id+".json?api_key="+url.QueryEscape(key), nil)
	got := open311List(t, r)
	if r.status != 200 || len(got) != 1 {
		t.Fatalf("GET request: %d %s", r.status, r.body)
	}
	sr := got[0]
	want := map[string]any{"service_request_id": id, "status": "open", "service_code": "0101", "service_name": "暴露垃圾",
		"address": "经八路1号", "lat": pts[0].lat, "long": pts[0].lon, "media_url": nil, "address_id": nil, "zipcode": nil}
	for k, w := range want {
		if v, ok := sr[k]; !ok || v != w {
			t.Errorf("request.%s = %v, want %v", k, sr[k], w)
		}
	}
	if ag, _ := sr["agency_responsible"].(string); !strings.Contains(ag, pts[0].code) {
		t.Errorf("agency_responsible %q, want the grid", ag)
	}
	if !strings.Contains(sr["status_notes"].(string), "reported") || !strings.HasPrefix(sr["description"].(string), "路口东侧") {
		t.Errorf("status_notes %q, description %q", sr["status_notes"], sr["description"])
	}
	req, _ := time.Parse(time.RFC3339, sr["requested_datetime"].(string))
	exp, _ := time.Parse(time.RFC3339, sr["expected_datetime"].(string))
	if _, err := time.Parse(time.RFC3339, sr["updated_datetime"].(string)); err != nil || exp.Sub(req) != 24*time.Hour {
		t.Errorf("datetimes %v %v %v: want RFC 3339 and the 24 h deadline as expected_datetime", sr["requested_datetime"], sr["updated_datetime"], sr["expected_datetime"])
	}
	for _, path := range []string{"/open311/v2/requests/" + otherID + ".json", "/open311/v2/requests/99999.json", "/open311/v2/requests/abc.json"} {
		open311Err(t, e.do("GET", path+"?api_key="+url.QueryEscape(key), nil), 404, "not found")
	}
	open311Err(t, e.do("GET", "/open311/v2/requests/"+id+".xml?api_key="+url.QueryEscape(key), nil), 400, "only JSON")

	// The command centre rejects one: it is closed, with the note.
	e.token = adminToken
	if r := e.do("POST", "/api/v1/incidents/"+third+"/transitions", []byte(`{"to":"rejected","version":1,"note":"已自行驶离"}`)); r.status != 200 {
		t.Fatalf("reject: %d %s", r.status, r.body)
	}
	e.token = ""
	sr = open311List(t, e.do("GET", "/open311/v2/requests/"+third+".json?api_key="+url.QueryEscape(key), nil))[0]
	if sr["status"] != "closed" || !strings.Contains(sr["status_notes"].(string), "不予立案") || !strings.Contains(sr["status_notes"].(string), "已自行驶离") {
		t.Errorf("rejected request: status %v, notes %v", sr["status"], sr["status_notes"])
	}

	// GET requests.json with the spec's filters; the integration sees its own.
	ids := func(q string) []string {
		t.Helper()
		r := e.do("GET", "/open311/v2/requests.json?api_key="+url.QueryEscape(key)+q, nil)
		if r.status != 200 {
			t.Fatalf("GET requests.json%s: %d %s", q, r.status, r.body)
		}
		var out []string
		for _, sr := range open311List(t, r) {
			out = append(out, sr["service_request_id"].(string))
		}
		return out
	}
	now := e.clock.Now() // the service's clock dates the requests
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{third, second, id}},
		{"&jurisdiction_id=zhengzhou", []string{third, second, id}},
		{"&service_code=0101", []string{id}},
		{"&service_code=0101,0504", []string{third, id}},
		{"&service_code=0102", nil},
		{"&status=open", []string{second, id}},
		{"&status=closed", []string{third}},
		{"&status=open,closed", []string{third, second, id}},
		{"&start_date=" + url.QueryEscape(now.Add(time.Hour).Format(time.RFC3339)), nil},
		{"&start_date=" + url.QueryEscape(now.Add(-time.Hour).Format(time.RFC3339)) + "&end_date=" + url.QueryEscape(now.Add(time.Hour).Format(time.RFC3339)), []string{third, second, id}},
		{"&end_date=" + url.QueryEscape(now.Add(-time.Hour).Format(time.RFC3339)), nil},
		{"&service_request_id=" + id + "," + otherID + ",99999," + second, []string{id, second}},
		{"&service_request_id=" + id + "&status=closed", []string{id}}, // ids override the rest
	} {
		if got := ids(tc.query); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("requests.json?%s: %v, want %v", tc.query, got, tc.want)
		}
	}
	// The command centre sees every request.
	e.token = adminToken
	if r := e.do("GET", "/open311/v2/requests.json", nil); len(open311List(t, r)) != 4 {
		t.Errorf("admin list: %s", r.body)
	}
}

func TestOpen311BadInput(t *testing.T) {
	e := newAuthEnv(t)
	pt := open311Points(e, 1)[0]
	key := e.tokenFor(auth.RoleIntegration)
	good := func() url.Values {
		return url.Values{"api_key": {key}, "service_code": {"0101"}, "lat": {fmt.Sprint(pt.lat)}, "long": {fmt.Sprint(pt.lon)}}
	}
	posts := []struct {
		name   string
		query  string
		change func(url.Values)
		status int
		want   string
	}{
		{"missing service_code", "", func(f url.Values) { f.Del("service_code") }, 400, "service_code: is required"},
		{"unknown service_code", "", func(f url.Values) { f.Set("service_code", "9999") }, 400, `service_code: "9999" is not a service code`},
		{"class as service_code", "", func(f url.Values) { f.Set("service_code", "01") }, 400, "service_code"},
		{"lat out of range", "", func(f url.Values) { f.Set("lat", "95") }, 400, "lat: 95 is out of range"},
		{"long out of range", "", func(f url.Values) { f.Set("long", "-181") }, 400, "long: -181 is out of range"},
		{"lat not a number", "", func(f url.Values) { f.Set("lat", "north") }, 400, `lat: "north" is not a number`},
		{"lat NaN", "", func(f url.Values) { f.Set("lat", "NaN") }, 400, "lat:"},
		{"address only", "", func(f url.Values) { f.Del("lat"); f.Del("long"); f.Set("address_string", "经八路1号") }, 400, "lat: is required"},
		{"long missing", "", func(f url.Values) { f.Del("long") }, 400, "long: is required"},
		{"description too long", "", func(f url.Values) { f.Set("description", strings.Repeat("长", 5001)) }, 400, "description: is longer than"},
		{"address too long", "", func(f url.Values) { f.Set("address_string", strings.Repeat("路", 501)) }, 400, "address_string: is longer than"},
		{"NUL in description", "", func(f url.Values) { f.Set("description", "a\x00b") }, 400, "description: holds a NUL"},
		{"unknown crs", "?crs=mars", func(url.Values) {}, 400, "coordinate system"},
	}
	for _, tc := range posts {
		t.Run(tc.name, func(t *testing.T) {
			f := good()
			tc.change(f)
			open311Err(t, open311Post(e, tc.query, f, nil), tc.status, tc.want)
		})
	}
	t.Run("JSON with an object for lat", func(t *testing.T) {
		r := e.send(e.srv.Client(), "POST", "/open311/v2/requests.json?api_key="+url.QueryEscape(key),
			`{"service_code":"0101","lat":{"deg":34},"long":113.6}`, map[string]string{"Content-Type": "application/json"})
		open311Err(t, r, 400, "lat: want a string or a number")
	})
	t.Run("JSON not an object", func(t *testing.T) {
		r := e.send(e.srv.Client(), "POST", "/open311/v2/requests.json?api_key="+url.QueryEscape(key),
			`[1,2]`, map[string]string{"Content-Type": "application/json"})
		open311Err(t, r, 400, "not a JSON object")
	})
	// No key: the authorisation layer's 401 (in gridwatch's error shape).
	t.Run("missing api_key", func(t *testing.T) {
		f := good()
		f.Del("api_key")
		if r := open311Post(e, "", f, nil); r.status != 401 {
			t.Errorf("no api_key: %d %s, want 401", r.status, r.body)
		}
		f.Set("api_key", "not-a-key")
		if r := open311Post(e, "", f, nil); r.status != 401 {
			t.Errorf("wrong api_key: %d %s, want 401", r.status, r.body)
		}
	})
	// Nothing of the above was stored.
	e.token = adminToken
	if l := e.do("GET", "/api/v1/incidents", nil).json(t)["incidents"].([]any); len(l) != 0 {
		t.Errorf("%d incidents stored by bad requests", len(l))
	}

	e.token = ""
	gets := []struct{ query, want string }{
		{"status=pending", `status: "pending" is not open or closed`},
		{"start_date=yesterday", "start_date:"},
		{"end_date=2026-13-01T00:00:00Z", "end_date:"},
		{"start_date=2026-11-02T00:00:00Z&end_date=2026-11-01T00:00:00Z", "end_date: 2026-11-01T00:00:00Z is before start_date"},
		{"service_code=9999", `service_code: "9999" is not a service code`},
		{"service_request_id=1,x", `service_request_id: "x" is not`},
		{"service_request_id=" + strings.Repeat("1,", 100) + "1", "at most 100"},
	}
	for _, tc := range gets {
		t.Run(tc.query, func(t *testing.T) {
			open311Err(t, e.do("GET", "/open311/v2/requests.json?api_key="+url.QueryEscape(key)+"&"+tc.query, nil), 400, tc.want)
		})
	}
}
