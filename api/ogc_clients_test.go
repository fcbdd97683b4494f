package api_test

// The OGC API read by the GIS clients a city uses: GDAL's OAPIF driver
// (ogrinfo, ogr2ogr) and headless QGIS.

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gridwatch/auth"
	"gridwatch/internal/testtool"
)

// gdal runs a GDAL program against the test server with the admin token in
// a bearer header and returns its standard output and, with debug, its
// debug messages (the URLs it fetched among them).
func (e *env) gdal(ctx context.Context, debug bool, prog string, args ...string) (string, string) {
	e.t.Helper()
	path := testtool.Require(e.t, prog)
	dbg := "OFF"
	if debug {
		dbg = "ON"
	}
	args = append([]string{"--config", "GDAL_HTTP_HEADERS", "Authorization: Bearer " + e.token,
		"--config", "CPL_DEBUG", dbg, "--config", "GDAL_HTTP_TIMEOUT", "60"}, args...)
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		e.t.Fatalf("%s %s: %v\nstderr: %s\nstdout: %s", prog, strings.Join(args[6:], " "), err, stderr.String(), stdout.String())
	}
	if s := stderr.String(); strings.Contains(s, "ERROR") {
		e.t.Fatalf("%s %s reported an error:\n%s", prog, strings.Join(args[6:], " "), s)
	}
	return stdout.String(), stderr.String()
}

// TestOGCWithGDAL reads the collections with GDAL's OAPIF driver, as QGIS
// does: ogrinfo lists them and ogr2ogr pages through every grid.
func TestOGCWithGDAL(t *testing.T) {
	testtool.Require(t, "ogr2ogr")
	e := newAuthEnv(t)
	lon, lat, _, _ := e.gridPoint()
	e.report(lon, lat)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	if dl, ok := t.Deadline(); ok {
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-5*time.Second))
	}
	defer cancel()
	src := "OAPIF:" + e.srv.URL + "/ogc"

	out, _ := e.gdal(ctx, false, "ogrinfo", "-ro", "-so", src)
	for _, want := range []string{"1: grids (title: Grids) (Multi Polygon)", "2: incidents (title: Incidents) (Point)", "3: cameras (title: Cameras)"} {
		if !strings.Contains(out, want) {
			t.Errorf("ogrinfo lacks %q:\n%s", want, out)
		}
	}
	out, _ = e.gdal(ctx, false, "ogrinfo", "-ro", "-so", "-oo", "PAGE_SIZE=10", src, "grids")
	for _, want := range []string{"Feature Count: 76", "Geometry: Multi Polygon", "code: String", "level: String"} {
		if !strings.Contains(out, want) {
			t.Errorf("ogrinfo grids lacks %q:\n%s", want, out)
		}
	}

	before := strings.Count(e.logs.String(), `"route":"/ogc/collections/grids/items"`)
	dst := filepath.Join(t.TempDir(), "grids.geojson")
	e.gdal(ctx, false, "ogr2ogr", "-f", "GeoJSON", "-oo", "PAGE_SIZE=10", dst, src, "grids")
	if pages := strings.Count(e.logs.String(), `"route":"/ogc/collections/grids/items"`) - before; pages < 8 {
		t.Errorf("ogr2ogr read the grids in %d requests; 76 grids at 10 a page need 8", pages)
	}
	b, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Features []struct {
			Properties map[string]any `json:"properties"`
			Geometry   struct {
				Type        string `json:"type"`
				Coordinates any    `json:"coordinates"`
			} `json:"geometry"`
		} `json:"features"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("ogr2ogr output: %v", err)
	}
	// The reference: every grid from the store, through the GeoJSON endpoint.
	var ref struct {
		Features []struct {
			Properties map[string]any `json:"properties"`
			Geometry   struct {
				Coordinates any `json:"coordinates"`
			} `json:"geometry"`
		} `json:"features"`
	}
	if err := json.Unmarshal(e.do("GET", "/api/v1/grids.geojson", nil).body, &ref); err != nil || len(ref.Features) != 76 {
		t.Fatalf("reference: %v, %d grids", err, len(ref.Features))
	}
	want := map[string]any{}
	for _, f := range ref.Features {
		want[f.Properties["code"].(string)] = f.Geometry.Coordinates
	}
	if len(got.Features) != len(want) {
		t.Fatalf("ogr2ogr wrote %d grids, want %d", len(got.Features), len(want))
	}
	seen := map[string]bool{}
	for _, f := range got.Features {
		code, _ := f.Properties["code"].(string)
		wantGeom, ok := want[code]
		if !ok || seen[code] {
			t.Errorf("ogr2ogr wrote grid %q: unknown or twice", code)
			continue
		}
		seen[code] = true
		if f.Geometry.Type != "MultiPolygon" {
			t.Errorf("grid %s: geometry %s", code, f.Geometry.Type)
		}
		var a, w [][2]float64
		eachCoord(f.Geometry.Coordinates, func(x, y float64) { a = append(a, [2]float64{x, y}) })
		eachCoord(wantGeom, func(x, y float64) { w = append(w, [2]float64{x, y}) })
		if len(a) != len(w) {
			t.Errorf("grid %s: %d positions, want %d", code, len(a), len(w))
			continue
		}
		for i := range a {
			if math.Abs(a[i][0]-w[i][0]) > 1e-7 || math.Abs(a[i][1]-w[i][1]) > 1e-7 {
				t.Errorf("grid %s position %d: %v, want %v", code, i, a[i], w[i])
				break
			}
		}
	}
	// The round trip: what ogr2ogr wrote imports into an empty gridwatch
	// as the same 76 grids.
	fresh := newEnv(t)
	if r := fresh.do("POST", "/api/v1/grids/import", b); r.status != 201 || r.json(t)["created"].(float64) != 76 {
		t.Errorf("re-import of ogr2ogr's output: %d %.300s", r.status, r.body)
	}
	// A filter on a queryable the API definition declares runs on the
	// server: GDAL sends level=grid.
	out, debug := e.gdal(ctx, true, "ogrinfo", "-ro", "-so", "-oo", "PAGE_SIZE=10", "-where", "level = 'grid'", src, "grids")
	if !strings.Contains(out, "Feature Count: 66") || !strings.Contains(debug, "level=grid") {
		t.Errorf("ogrinfo -where level = 'grid':\n%s\n%s", out, debug)
	}
	// The incidents, in the scope of the token: the one reported.
	if out, _ := e.gdal(ctx, false, "ogrinfo", "-ro", "-so", src, "incidents"); !strings.Contains(out, "Feature Count: 1") {
		t.Errorf("ogrinfo incidents:\n%s", out)
	}
}

// qgisResult is what testdata/qgis_oapif.py reports of a layer.
type qgisResult struct {
	QGIS        string   `json:"qgis"`
	Valid       bool     `json:"valid"`
	Features    int      `json:"features"`
	IDs         int      `json:"ids"`
	Error       string   `json:"error"`
	AuthMethods []string `json:"auth_methods"`
	Fields      []string `json:"fields"`
}

// requireQGIS returns the Python that imports Debian's QGIS bindings.
func requireQGIS(t *testing.T) string {
	t.Helper()
	const python = "/usr/bin/python3"
	cmd := exec.Command(python, "-c", "import qgis.core")
	cmd.Env = append(os.Environ(), "QT_QPA_PLATFORM=offscreen")
	if out, err := cmd.CombinedOutput(); err != nil {
		testtool.SkipOrFail(t, "python3-qgis not installed (scripts/install-deps.sh test installs it): "+err.Error()+": "+string(out))
	}
	return python
}

// qgisLoad loads typename from the server's /ogc in headless QGIS through
// a Basic authentication configuration of user and password, in a fresh
// profile and auth database.
func (e *authEnv) qgisLoad(t testing.TB, ctx context.Context, python, typename, user, password string) qgisResult {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "result.json")
	// Qt wants a private runtime directory.
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// -X faulthandler: a crash shows where, in Python, it happened.
	cmd := exec.CommandContext(ctx, python, "-X", "faulthandler", filepath.Join("testdata", "qgis_oapif.py"), e.srv.URL+"/ogc", typename, user, password, "10", out)
	cmd.Env = append(os.Environ(), "QT_QPA_PLATFORM=offscreen", "HOME="+dir, "XDG_RUNTIME_DIR="+dir,
		"QGIS_AUTH_DB_DIR_PATH="+dir, "QGIS_CUSTOM_CONFIG_PATH="+dir)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	// A crash (QGIS 3.22 dies on a 401 without a challenge) fails here.
	if err := cmd.Run(); err != nil {
		t.Fatalf("QGIS loading %s as %q: %v\n%s", typename, user, err, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("QGIS wrote no result: %v\n%s", err, stderr.String())
	}
	var r qgisResult
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("QGIS result %s: %v", b, err)
	}
	t.Logf("QGIS %s, %s as %q: valid %v, %d features, error %q", r.QGIS, typename, user, r.Valid, r.Features, r.Error)
	return r
}

// TestOGCWithQGIS loads the grids layer in real QGIS (Debian's
// python3-qgis, 3.22 LTR on Debian 12: no API Header method) through a
// Basic authentication configuration, as the README tells GIS staff to.
func TestOGCWithQGIS(t *testing.T) {
	python := requireQGIS(t)
	e := newAuthEnv(t)
	const pw = "correct horse battery"
	e.createUser("qgis-gis", pw, auth.RoleGISEditor)
	e.createUser("qgis-leader", pw, auth.RoleGridLeader, "410105001001")
	token := e.tokenFor(auth.RoleCommander)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	if dl, ok := t.Deadline(); ok {
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-5*time.Second))
	}
	defer cancel()

	// What the API says each caller sees, through a bearer token.
	count := func(tok string) int {
		t.Helper()
		e.token = tok
		defer func() { e.token = adminToken }()
		features, matched, _ := e.ogcAll("/ogc/collections/grids/items?limit=10")
		if len(features) != int(matched) {
			t.Fatalf("API: %d grids on the pages, numberMatched %v", len(features), matched)
		}
		return len(features)
	}
	all := count(token)
	leader := count(e.tokenFor(auth.RoleGridLeader, "410105001001"))
	if all != 76 || leader != 12 {
		t.Fatalf("API grids: %d for all and %d for the leader, want 76 and 12", all, leader)
	}

	tests := []struct {
		name, user, password string
		want                 int // features read; 0: nothing
	}{
		{"gis editor, name and password", "qgis-gis", pw, all},
		{"any name, API token as password", "qgis", token, all},
		{"grid leader sees the scope", "qgis-leader", pw, leader},
		{"wrong password", "qgis-gis", "wrong horse battery", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := strings.Count(e.logs.String(), `"route":"/ogc/collections/grids/items"`)
			r := e.qgisLoad(t, ctx, python, "grids", tc.user, tc.password)
			pages := strings.Count(e.logs.String(), `"route":"/ogc/collections/grids/items"`) - before
			if tc.want == 0 {
				if r.Valid && r.Features != 0 {
					t.Errorf("QGIS read %d grids with a wrong credential, want an invalid layer or none", r.Features)
				}
				return
			}
			if !r.Valid || r.Features != tc.want || r.IDs != tc.want {
				t.Errorf("QGIS: valid %v, %d features (%d ids), error %q; want a valid layer of %d grids",
					r.Valid, r.Features, r.IDs, r.Error, tc.want)
			}
			// Pages of 10: every one authenticated with the same Basic credential.
			if want := (tc.want + 9) / 10; pages < want {
				t.Errorf("QGIS read the grids in %d requests, want at least %d pages of 10", pages, want)
			}
		})
	}
}
