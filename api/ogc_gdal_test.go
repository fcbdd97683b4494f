package api_test

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
