package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gridwatch/auth"
	"gridwatch/internal/testtool"
)

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
