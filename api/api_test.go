package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"gridwatch/api"
	"gridwatch/auth"
	"gridwatch/geo"
	"gridwatch/internal/domain"
	"gridwatch/internal/testdb"
	"gridwatch/internal/testtool"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

type env struct {
	t     *testing.T
	srv   *httptest.Server
	store *geo.Store
	auth  *auth.Service
	logs  *testtool.LogBuffer
	// token is sent as a bearer token by do; the bootstrap admin by default.
	token string
}

const adminToken = "bootstrap-admin-token-for-tests"

func newEnv(t *testing.T, tweak ...func(*api.Deps)) *env {
	t.Helper()
	return newEnvOn(t, testdb.New(t), domain.Options{}, tweak...)
}

// newEnvOn is newEnv over pool, with the domain built as gridwatch serve
// builds it from opts, plus the bootstrap admin token, a cheap password hash
// and a temporary attachment directory.
func newEnvOn(t *testing.T, pool *pgxpool.Pool, opts domain.Options, tweak ...func(*api.Deps)) *env {
	t.Helper()
	opts.Auth.BootstrapToken, opts.Auth.Hash = adminToken, cheapHash
	opts.Incidents.AttachmentDir = t.TempDir()
	d := domain.New(pool, opts)
	if err := d.Locator.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	logs := &testtool.LogBuffer{}
	deps := d.APIDeps()
	deps.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	deps.Version = "test"
	deps.Metrics = prometheus.NewRegistry()
	deps.Assets = fstest.MapFS{"index.html": {Data: []byte("<!doctype html><title>Gridwatch</title>")}, "maplibre-gl-worker.mjs": {Data: []byte("//")}}
	deps.AssetsBuilt = true
	for _, f := range tweak {
		f(&deps)
	}
	srv := httptest.NewServer(api.New(deps).Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, store: d.Grids, auth: d.Auth, logs: logs, token: adminToken}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not JSON: %v: %s", err, r.body)
	}
	return m
}

// errorOf returns the error object of a JSON error response.
func (r response) errorOf(t *testing.T) map[string]any {
	t.Helper()
	e, ok := r.json(t)["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object in %s", r.body)
	}
	return e
}

// badQuery is a request the API refuses: the status, the query parameter
// its error names in the details ("" when it names none) and a piece of its
// message.
type badQuery struct {
	path, param, inMessage string
	status                 int
}

// checkBadQueries sends each query with get and checks the JSON error it
// answers: the status, a message that says what is wrong, the parameter.
func checkBadQueries(t *testing.T, get func(path string) response, queries []badQuery) {
	t.Helper()
	for _, q := range queries {
		r := get(q.path)
		if r.status != q.status || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Errorf("%s: %d %s, want %d JSON", q.path, r.status, r.body, q.status)
			continue
		}
		er := r.errorOf(t)
		if msg, _ := er["message"].(string); msg == "" || !strings.Contains(msg, q.inMessage) {
			t.Errorf("%s: message %q, want one with %q", q.path, er["message"], q.inMessage)
		}
		if q.param != "" {
			if d, _ := er["details"].(map[string]any); d == nil || d["param"] != q.param {
				t.Errorf("%s: details %v, want param %s", q.path, er["details"], q.param)
			}
		}
	}
}

func (e *env) do(method, path string, body []byte) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func (e *env) importDemo() {
	e.t.Helper()
	r := e.do("POST", "/api/v1/grids/import", geo.DemoCity())
	if r.status != http.StatusCreated {
		e.t.Fatalf("import demo: %d %s", r.status, r.body)
	}
}

func TestImportListAndShow(t *testing.T) {
	e := newEnv(t)
	r := e.do("POST", "/api/v1/grids/import", geo.DemoCity())
	if r.status != http.StatusCreated || r.json(t)["created"].(float64) != 76 {
		t.Fatalf("import: %d %s", r.status, r.body)
	}
	r = e.do("GET", "/api/v1/grids.geojson", nil)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/geo+json") {
		t.Fatalf("geojson: %d %s", r.status, r.header.Get("Content-Type"))
	}
	features := r.json(t)["features"].([]any)
	if len(features) != 76 {
		t.Fatalf("geojson has %d features, want 76", len(features))
	}
	r = e.do("GET", "/api/v1/grids.geojson?level=street", nil)
	if n := len(r.json(t)["features"].([]any)); n != 3 {
		t.Errorf("level=street: %d features, want 3", n)
	}
	r = e.do("GET", "/api/v1/grids?level=grid&limit=50", nil)
	page := r.json(t)
	if len(page["grids"].([]any)) != 50 || page["next"] == nil {
		t.Fatalf("page 1: %s", r.body)
	}
	r = e.do("GET", "/api/v1/grids?level=grid&limit=50&cursor="+page["next"].(string), nil)
	page = r.json(t)
	if len(page["grids"].([]any)) != 16 || page["next"] != nil {
		t.Fatalf("page 2: %d grids, next %v; want 16 and null", len(page["grids"].([]any)), page["next"])
	}
	grid := page["grids"].([]any)[0].(map[string]any)
	id := int64(grid["id"].(float64))
	r = e.do("GET", fmt.Sprintf("/api/v1/grids/%d", id), nil)
	d := r.json(t)
	if r.status != 200 || len(d["chain"].([]any)) != 4 || d["geometry"].(map[string]any)["type"] != "MultiPolygon" {
		t.Errorf("detail: %d %s", r.status, r.body)
	}
	if d["properties"].(map[string]any)["leader"] == nil {
		t.Errorf("detail properties lack the grid leader: %v", d["properties"])
	}
}

func TestLocate(t *testing.T) {
	e := newEnv(t)
	e.importDemo()
	// An interior point of a grid: the chain of 4, the grid first.
	r := e.do("GET", "/api/v1/grids?level=grid&limit=1", nil)
	g := r.json(t)["grids"].([]any)[0].(map[string]any)
	det := e.do("GET", fmt.Sprintf("/api/v1/grids/%d", int64(g["id"].(float64))), nil).json(t)
	ring := det["geometry"].(map[string]any)["coordinates"].([]any)[0].([]any)[0].([]any)
	var sx, sy float64
	for _, p := range ring[:len(ring)-1] {
		sx += p.([]any)[0].(float64)
		sy += p.([]any)[1].(float64)
	}
	n := float64(len(ring) - 1)
	lon, lat := sx/n, sy/n
	r = e.do("GET", fmt.Sprintf("/api/v1/locate?lon=%v&lat=%v", lon, lat), nil)
	chain := r.json(t)["grids"].([]any)
	if r.status != 200 || len(chain) != 4 || chain[0].(map[string]any)["code"] != g["code"] {
		t.Fatalf("locate: %d %s; want %s first of 4", r.status, r.body, g["code"])
	}
	// The same place as a phone in GCJ-02 would report it.
	glon, glat := geo.WGS84ToGCJ02(lon, lat)
	r = e.do("GET", fmt.Sprintf("/api/v1/locate?lon=%v&lat=%v&crs=gcj02", glon, glat), nil)
	if c := r.json(t)["grids"].([]any); len(c) != 4 || c[0].(map[string]any)["code"] != g["code"] {
		t.Errorf("locate gcj02: %s", r.body)
	}
	// Nowhere: 200 with an empty list.
	r = e.do("GET", "/api/v1/locate?lon=0&lat=0", nil)
	if r.status != 200 || len(r.json(t)["grids"].([]any)) != 0 || !strings.Contains(string(r.body), `"grids":[]`) {
		t.Errorf("locate nowhere: %d %s", r.status, r.body)
	}
	bad := []struct{ query, param, inMsg string }{
		{"lat=34.7", "lon", "required"},
		{"lon=abc&lat=34.7", "lon", "not a finite number"},
		{"lon=Inf&lat=34.7", "lon", "not a finite number"},
		{"lon=113.6&lat=-Infinity", "lat", "not a finite number"},
		{"lon=NaN&lat=34.7", "lon", "not a finite number"},
		{"lon=34.7&lat=113.6", "", "[lat, lon]"},
		{"lon=113.6&lat=34.7&crs=epsg:3857", "crs", "3857"},
	}
	for _, b := range bad {
		r := e.do("GET", "/api/v1/locate?"+b.query, nil)
		er := r.errorOf(t)
		if r.status != 400 || er["code"] != "invalid" || !strings.Contains(er["message"].(string), b.inMsg) {
			t.Errorf("%s: %d %s; want 400 invalid mentioning %q", b.query, r.status, r.body, b.inMsg)
		}
		if b.param != "" && er["details"].(map[string]any)["param"] != b.param {
			t.Errorf("%s: details %v, want param %s", b.query, er["details"], b.param)
		}
	}
}

func TestBadInputIsRefusedAndNothingStored(t *testing.T) {
	e := newEnv(t, func(d *api.Deps) { d.MaxBodyBytes = 8192; d.MaxVertices = 100 })
	bowtie := `{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"code":"410105","name":"金水区","level":"district"},
		"geometry":{"type":"Polygon","coordinates":[[[113.6,34.7],[113.7,34.8],[113.7,34.7],[113.6,34.8],[113.6,34.7]]]}}]}`
	tests := []struct {
		name       string
		path, body string
		wantStatus int
		wantCode   string
	}{
		{"not json", "/api/v1/grids/import", `{"type":`, 400, "invalid_json"},
		{"not geojson", "/api/v1/grids/import", `{"type":"Topology"}`, 400, "invalid_geojson"},
		{"self intersection", "/api/v1/grids/import", bowtie, 422, "invalid_geometry"},
		{"too large", "/api/v1/grids/import", `{"type":"FeatureCollection","features":[` + strings.Repeat(" ", 9000) + `]}`, 413, "too_large"},
		{"bad crs", "/api/v1/grids/import?crs=utm", bowtie, 400, "invalid"},
		{"bad repair flag", "/api/v1/grids/import?repair=maybe", bowtie, 400, "invalid"},
		{"single feature not a feature", "/api/v1/grids", `{"type":"Point","coordinates":[1,2]}`, 400, "invalid_geojson"},
		{"array body", "/api/v1/grids/import", `[1,2,3]`, 400, "invalid_geojson"},
		{"unknown parent", "/api/v1/grids", gridFeature("410105001", "street", "410105", square(113.6, 34.7, 0.1)), 400, "invalid"},
		{"too many vertices", "/api/v1/grids", gridFeature("410105", "district", "", manyVertices(120)), 422, "invalid_geometry"},
		{"huge property number", "/api/v1/grids", strings.Replace(gridFeature("410105", "district", "", square(113.6, 34.7, 0.1)), `"level"`, `"pop":1e400,"level"`, 1), 400, "invalid"},
		{"nul in name", "/api/v1/grids", strings.Replace(gridFeature("410105", "district", "", square(113.6, 34.7, 0.1)), `"name":"`, `"name":"\u0000`, 1), 400, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("POST", tt.path, []byte(tt.body))
			er := r.errorOf(t)
			if r.status != tt.wantStatus || er["code"] != tt.wantCode || er["message"] == "" {
				t.Errorf("%d %s; want %d %s", r.status, r.body, tt.wantStatus, tt.wantCode)
			}
		})
	}
	r := e.do("POST", "/api/v1/grids/import", []byte(bowtie))
	p := r.errorOf(t)["details"].(map[string]any)["problems"].([]any)[0].(map[string]any)
	if p["reason"] != "self_intersection" || p["location"] == nil || p["feature"].(float64) != 0 {
		t.Errorf("problem %v: want reason, location and feature", p)
	}
	if r := e.do("GET", "/api/v1/grids", nil); len(r.json(t)["grids"].([]any)) != 0 {
		t.Errorf("something was stored: %s", r.body)
	}
	// The body limit is per route: a bulk upload may be far larger.
	var bulk strings.Builder
	for bulk.Len() < 20000 {
		bulk.WriteString(`{"source":"sensor","category":"0101","title":"暴露垃圾","location":{"type":"Point","coordinates":[113.6,34.7]}}` + "\n")
	}
	if r := e.do("POST", "/api/v1/incidents/bulk", []byte(bulk.String())); r.status != 200 || !strings.Contains(string(r.body), `"errors":0`) {
		t.Errorf("20 KB bulk upload with an 8 KB body limit: %d %.200s", r.status, r.body)
	}
	r = e.do("POST", "/api/v1/grids/import?repair=true", []byte(bowtie))
	if r.status != 201 || len(r.json(t)["repairs"].([]any)) != 1 {
		t.Errorf("repair=true: %d %s", r.status, r.body)
	}
}

// square is a closed square ring's Polygon geometry JSON.
func square(lon, lat, d float64) string {
	return fmt.Sprintf(`{"type":"Polygon","coordinates":[[[%v,%v],[%v,%v],[%v,%v],[%v,%v],[%v,%v]]]}`,
		lon, lat, lon+d, lat, lon+d, lat+d, lon, lat+d, lon, lat)
}

// manyVertices is a Polygon geometry with n vertices on a circle.
func manyVertices(n int) string {
	var b strings.Builder
	b.WriteString(`{"type":"Polygon","coordinates":[[`)
	for i := 0; i < n; i++ {
		a := 2 * math.Pi * float64(i) / float64(n)
		fmt.Fprintf(&b, "[%v,%v],", 113.65+0.05*math.Cos(a), 34.75+0.05*math.Sin(a))
	}
	b.WriteString(`[113.7,34.75]]]}`)
	return b.String()
}

func gridFeature(code, level, parent, geometry string) string {
	pc := ""
	if parent != "" {
		pc = fmt.Sprintf(`,"parent_code":%q`, parent)
	}
	return fmt.Sprintf(`{"type":"Feature","properties":{"code":%q,"name":"网格 %s","level":%q%s},"geometry":%s}`, code, code, level, pc, geometry)
}

// TestTopologyErrorsOverHTTP: the store's refusals reach the client with
// the right status and their details.
func TestTopologyErrorsOverHTTP(t *testing.T) {
	e := newEnv(t)
	if r := e.do("POST", "/api/v1/grids", []byte(gridFeature("410105", "district", "", square(113.6, 34.7, 0.1)))); r.status != 201 {
		t.Fatalf("district: %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/api/v1/grids", []byte(gridFeature("410105001", "street", "410105", square(113.6, 34.7, 0.05)))); r.status != 201 {
		t.Fatalf("street: %d %s", r.status, r.body)
	}
	tests := []struct {
		name, body string
		status     int
		code       string
		reason     string
	}{
		{"duplicate", gridFeature("410105001", "street", "410105", square(113.65, 34.75, 0.01)), 409, "conflict", "duplicate_code"},
		{"overlap", gridFeature("410105002", "street", "410105", square(113.62, 34.72, 0.05)), 422, "topology", "overlap"},
		{"outside parent", gridFeature("410105003", "street", "410105", square(113.68, 34.78, 0.05)), 422, "topology", "outside_parent"},
		{"bowtie", gridFeature("410105004", "street", "410105", `{"type":"Polygon","coordinates":[[[113.65,34.75],[113.7,34.8],[113.7,34.75],[113.65,34.8],[113.65,34.75]]]}`), 422, "invalid_geometry", "self_intersection"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("POST", "/api/v1/grids", []byte(tt.body))
			er := r.errorOf(t)
			if r.status != tt.status || er["code"] != tt.code {
				t.Fatalf("%d %s, want %d %s", r.status, r.body, tt.status, tt.code)
			}
			p := er["details"].(map[string]any)["problems"].([]any)[0].(map[string]any)
			if p["reason"] != tt.reason {
				t.Errorf("reason %v, want %s", p["reason"], tt.reason)
			}
			if tt.code == "topology" && (p["area_m2"] == nil || p["location"] == nil) {
				t.Errorf("topology problem %v lacks area or location", p)
			}
		})
	}
	if n := len(e.do("GET", "/api/v1/grids", nil).json(t)["grids"].([]any)); n != 2 {
		t.Errorf("%d grids stored, want the 2 good ones", n)
	}
}

func TestCreateAndDeleteGrid(t *testing.T) {
	e := newEnv(t)
	district := `{"type":"Feature","properties":{"code":"410105","name":"金水区","level":"district"},"geometry":{"type":"Polygon","coordinates":[[[113.6,34.7],[113.7,34.7],[113.7,34.8],[113.6,34.8],[113.6,34.7]]]}}`
	street := strings.NewReplacer(`"410105"`, `"410105001"`, `"district"`, `"street","parent_code":"410105"`, "金水区", "经八路街道").Replace(district)
	r := e.do("POST", "/api/v1/grids", []byte(district))
	if r.status != 201 || r.header.Get("Location") == "" {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	did := int64(r.json(t)["grid"].(map[string]any)["id"].(float64))
	r = e.do("POST", "/api/v1/grids", []byte(street))
	if r.status != 201 {
		t.Fatalf("create street: %d %s", r.status, r.body)
	}
	sg := r.json(t)["grid"].(map[string]any)
	if len(sg["chain"].([]any)) != 2 || sg["parent_code"] != "410105" {
		t.Errorf("street: %s", r.body)
	}
	if r := e.do("POST", "/api/v1/grids", []byte(district)); r.status != 409 || r.errorOf(t)["code"] != "conflict" {
		t.Errorf("duplicate: %d %s", r.status, r.body)
	}
	if r := e.do("DELETE", fmt.Sprintf("/api/v1/grids/%d", did), nil); r.status != 409 {
		t.Errorf("delete with children: %d %s", r.status, r.body)
	}
	if r := e.do("DELETE", fmt.Sprintf("/api/v1/grids/%d", int64(sg["id"].(float64))), nil); r.status != 204 {
		t.Errorf("delete leaf: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/api/v1/grids/999999", nil); r.status != 404 || r.errorOf(t)["code"] != "not_found" {
		t.Errorf("missing: %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/api/v1/grids/abc", nil); r.status != 400 {
		t.Errorf("bad id: %d %s", r.status, r.body)
	}
}

func TestTransportErrorsAreJSON(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/api/v1/nothing", 404},
		{"PUT", "/api/v1/locate", 405},
		{"POST", "/somewhere", 404},
	} {
		r := e.do(tt.method, tt.path, nil)
		if r.status != tt.status || r.errorOf(t)["message"] == "" {
			t.Errorf("%s %s: %d %s; want %d with a JSON error", tt.method, tt.path, r.status, r.body, tt.status)
		}
	}
}

func TestInternalErrorsHideTheirText(t *testing.T) {
	e := newEnv(t)
	pool := testdb.New(t)
	broken := geo.NewStore(pool, geo.StoreOptions{})
	pool.Close() // every query now fails inside pgx
	logs := &bytes.Buffer{}
	srv := httptest.NewServer(api.New(api.Deps{Grids: broken, Locator: geo.NewLocator(broken), Auth: e.auth,
		Logger: slog.New(slog.NewJSONHandler(logs, nil))}).Handler())
	defer srv.Close()
	status, body := adminGet(t, srv.URL+"/api/v1/grids")
	if status != 500 || !strings.Contains(string(body), `"internal error"`) || strings.Contains(string(body), "closed") {
		t.Errorf("%d %s; want 500 with a plain message", status, body)
	}
	if !strings.Contains(logs.String(), "closed") || !strings.Contains(logs.String(), "request_id") {
		t.Errorf("the log should hold the real error and the request id: %s", logs)
	}
}

func TestOperationsEndpoints(t *testing.T) {
	e := newEnv(t)
	if r := e.do("GET", "/healthz", nil); r.status != 200 {
		t.Errorf("healthz %d", r.status)
	}
	if r := e.do("GET", "/readyz", nil); r.status != 200 {
		t.Errorf("readyz %d", r.status)
	}
	e.do("GET", "/api/v1/grids/123", nil)
	r := e.do("GET", "/metrics", nil)
	if !strings.Contains(string(r.body), `gridwatch_http_requests_total{method="GET",route="/api/v1/grids/:id",status="404"} 1`) {
		t.Errorf("metrics lack the request by route:\n%s", r.body)
	}
	notReady := newEnv(t, func(d *api.Deps) {
		d.Ready = func(context.Context) error { return fmt.Errorf("2 migrations pending") }
	})
	if r := notReady.do("GET", "/readyz", nil); r.status != 503 || !strings.Contains(string(r.body), "pending") {
		t.Errorf("readyz not ready: %d %s", r.status, r.body)
	}
}

func TestDashboardAndHeaders(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/", nil)
	if r.status != 200 || !strings.Contains(string(r.body), "Gridwatch") {
		t.Fatalf("/: %d %s", r.status, r.body)
	}
	csp := r.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP = %q", csp)
	}
	if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("X-Request-ID") == "" {
		t.Errorf("headers: %v", r.header)
	}
	if r := e.do("GET", "/maplibre-gl-worker.mjs", nil); !strings.HasPrefix(r.header.Get("Content-Type"), "text/javascript") {
		t.Errorf("worker content type %q", r.header.Get("Content-Type"))
	}
	m := e.do("GET", "/api/v1/meta", nil).json(t)
	if m["version"] != "test" {
		t.Errorf("meta = %v", m)
	}
}

// TestDatabaseDownIs503: a database that cannot be reached is a 503 the
// client may retry, not a 500.
func TestDatabaseDownIs503(t *testing.T) {
	e := newEnv(t)
	pool, err := pgxpool.New(context.Background(), "host=/nonexistent-gridwatch-socket-dir user=postgres dbname=x connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	down := geo.NewStore(pool, geo.StoreOptions{})
	srv := httptest.NewServer(api.New(api.Deps{Grids: down, Locator: geo.NewLocator(down), Auth: e.auth}).Handler())
	defer srv.Close()
	status, body := adminGet(t, srv.URL+"/api/v1/grids")
	if status != 503 || !strings.Contains(string(body), `"unavailable"`) || strings.Contains(string(body), "nonexistent") {
		t.Errorf("%d %s; want 503 unavailable without the connection details", status, body)
	}
}

func TestBadTextInQueryIs400(t *testing.T) {
	e := newEnv(t)
	for _, q := range []string{"/api/v1/grids?level=%00", "/api/v1/incidents?category=%ff", "/api/v1/audit?actor=%ff%fe"} {
		if r := e.do("GET", q, nil); r.status != 400 || r.errorOf(t)["code"] != "invalid" {
			t.Errorf("%s: %d %s, want 400", q, r.status, r.body)
		}
	}
}

// adminGet GETs url with the admin token: the status and the body.
func adminGet(t testing.TB, url string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, body
}
