package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"gridwatch/assets"
	"gridwatch/auth"
	"gridwatch/internal/domain"
	"gridwatch/internal/pgcluster"
	"gridwatch/internal/testtool"
)

// TestMain lets the test binary act as the gridwatch command for the
// kill-and-recover test: GRIDWATCH_BE_MAIN=1 runs main() instead of tests.
func TestMain(m *testing.M) {
	if os.Getenv("GRIDWATCH_BE_MAIN") == "1" {
		os.Args = append([]string{"gridwatch"}, strings.Fields(os.Getenv("GRIDWATCH_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// requireAll is set by `make test`: nothing may be skipped there.
func dataDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gwmain-") // short: the socket path must fit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startMain runs the real wiring on 127.0.0.1:0 with a private cluster.
func startMain(t *testing.T, dir string, seed bool, extra ...string) *Main {
	t.Helper()
	return startMainWith(t, dir, seed, nil, extra...)
}

// startMainWith is startMain with tune applied to the Main before it runs.
func startMainWith(t testing.TB, dir string, seed bool, tune func(*Main), extra ...string) *Main {
	t.Helper()
	args := append([]string{"--addr", "127.0.0.1:0", "--rtsp-addr", "127.0.0.1:0", "--data-dir", dir, "--admin-token", testAdminToken}, extra...)
	cfg, err := LoadConfig("serve", args, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// Its warnings and errors are shown with a test that fails (the last
	// 64 KiB): why an export failed, or a request was refused.
	logs := &testtool.LogBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			l := logs.String()
			if len(l) > 64<<10 {
				l = "…" + l[len(l)-64<<10:]
			}
			t.Logf("gridwatch's warnings and errors:\n%s", l)
		}
	})
	m := NewMain(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	m.SeedDemo = seed
	// The demo's cameras are simulated in process, as `gridwatch demo` does.
	m.Camsim = seed
	m.PasswordHash = cheapHash
	if tune != nil {
		tune(m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		m.Close()
		t.Fatalf("run: %v", err)
	}
	return m
}

// cheapHash is the password hashing of the gridwatch the tests start: the
// demo users and every sign-in of the browser tests would otherwise cost
// an argon2id hash of 19 MiB each, slow under the race detector on a loaded
// machine (a start ran out of its 2 min in SeedDemo's users under make stress).
var cheapHash = auth.HashParams{MemoryKiB: 1024, Time: 1, Threads: 1}

// testAdminToken is the bootstrap admin token the tests start gridwatch with.
const testAdminToken = "test-admin-token-0123456789"

// getJSON gets url as the admin and decodes the JSON answer into v.
func getJSON(t testing.TB, url string, v any) int {
	t.Helper()
	return doJSON(t, http.DefaultClient, "GET", url, nil, v)
}

// doJSON sends body (nil: none) as the admin and decodes the JSON answer
// into v (nil: not read); it returns the status.
func doJSON(t testing.TB, client *http.Client, method, url string, body []byte, v any) int {
	t.Helper()
	status, b := send(t, client, method, url, body)
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", url, err)
		}
	}
	return status
}

// send sends body (nil: none; else JSON) as the admin and returns the
// status and the answer.
func send(t testing.TB, client *http.Client, method, url string, body []byte) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return res.StatusCode, b
}

// childCmd is gridwatch command (serve, demo) as a child process, this
// test binary acting as main, on data dir dir with flags more, not yet
// started; its stdout goes nowhere unless the caller takes it. The child,
// and any postgres it leaves behind, is stopped when the test ends,
// whatever happened to it.
func childCmd(t *testing.T, command, dir, more string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "GRIDWATCH_BE_MAIN=1", "GRIDWATCH_ARGS="+command+" --addr 127.0.0.1:0 --rtsp-addr 127.0.0.1:0 --data-dir "+dir+
		" --log-format text"+more)
	cmd.Stderr = io.Discard
	t.Cleanup(func() {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait() // an error when the test waited already
		}
		if c, err := pgcluster.Start(context.Background(), pgcluster.Options{Dir: filepath.Join(dir, "pg")}); err == nil {
			c.Close()
		}
	})
	return cmd
}

func TestServeDemoEndToEnd(t *testing.T) {
	// Every goroutine the service starts ends by the time Close returns.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := dataDir(t)
	m := startMain(t, dir, true)
	var fc struct{ Features []json.RawMessage }
	if code := getJSON(t, m.URL()+"/api/v1/grids.geojson", &fc); code != 200 || len(fc.Features) != 76 {
		t.Fatalf("grids.geojson: %d, %d features; want 76", code, len(fc.Features))
	}
	if code := getJSON(t, m.URL()+"/readyz", nil); code != 200 {
		t.Errorf("readyz = %d", code)
	}
	var cams struct {
		Cameras []struct {
			MainURL string `json:"main_url"`
			Grid    *struct{ Code string }
		}
	}
	getJSON(t, m.URL()+"/api/v1/cameras", &cams)
	if len(cams.Cameras) != domain.DemoCameras {
		t.Errorf("demo cameras: %+v, want %d", cams.Cameras, domain.DemoCameras)
	}
	for _, c := range cams.Cameras {
		if c.Grid == nil || strings.Contains(c.MainURL, "demo@") {
			t.Errorf("demo camera %+v: want it placed in a grid, its URL without credentials", c)
		}
	}
	// A second gridwatch on the same data dir is refused with a clear error.
	cfg := *m.Config
	cfg.Addr = "127.0.0.1:0"
	other := NewMain(&cfg, slog.New(slog.DiscardHandler))
	err := other.Run(context.Background())
	other.Close()
	if !errors.Is(err, pgcluster.ErrInUse) {
		t.Errorf("second serve on the same data dir: %v, want ErrInUse", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	// Restart: the data is still there and seeding again adds nothing.
	m = startMain(t, dir, true)
	if getJSON(t, m.URL()+"/api/v1/grids.geojson", &fc); len(fc.Features) != 76 {
		t.Errorf("after restart: %d features, want 76", len(fc.Features))
	}
	http.DefaultClient.CloseIdleConnections()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRecoverAfterKill runs gridwatch as a child process, kills it with
// SIGKILL (its postgres survives it), and starts again on the same data dir.
func TestRecoverAfterKill(t *testing.T) {
	dir := dataDir(t)
	cmd := childCmd(t, "serve", dir, "")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	up := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if _, url, ok := strings.Cut(sc.Text(), " is up: "); ok {
				up <- url
			}
		}
		close(up)
	}()
	select {
	case url, ok := <-up:
		if !ok {
			t.Fatal("child exited before serving")
		}
		if code := getJSON(t, url+"/healthz", nil); code != 200 {
			t.Fatalf("child healthz = %d", code)
		}
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		t.Fatal("child did not come up")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(dir, "pg", "data", "postmaster.pid")); err != nil {
		t.Fatalf("want the killed owner's postgres still running: %v", err)
	}
	m := startMain(t, dir, false)
	defer m.Close()
	if code := getJSON(t, m.URL()+"/readyz", nil); code != 200 {
		t.Errorf("readyz after recovery = %d", code)
	}
}

// TestFirstStartCreatesAdmin: without GRIDWATCH_ADMIN_TOKEN, an empty
// database gets user "admin" with a generated password, shown once.
func TestFirstStartCreatesAdmin(t *testing.T) {
	dir := dataDir(t)
	cfg, err := LoadConfig("serve", []string{"--addr", "127.0.0.1:0", "--rtsp-addr", "127.0.0.1:0", "--data-dir", dir}, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMain(cfg, slog.New(slog.DiscardHandler))
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	pw := m.AdminPassword
	if len(pw) < 16 {
		t.Fatalf("generated password %q: want one of at least 16 characters", pw)
	}
	body := fmt.Sprintf(`{"username":"admin","password":%q}`, pw)
	res, err := http.Post(m.URL()+"/api/v1/auth/login", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("login with the generated password: %d", res.StatusCode)
	}
	m.Close()
	m = NewMain(cfg, slog.New(slog.DiscardHandler))
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.AdminPassword != "" {
		t.Error("a second start generated another admin password")
	}
}

func TestVersionAndUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"version"}, envOf(nil), &out, &errOut); err != nil || strings.TrimSpace(out.String()) != version {
		t.Errorf("version: %q, %v", out.String(), err)
	}
	if err := run(context.Background(), []string{"frobnicate"}, envOf(nil), &out, &errOut); err == nil || !strings.Contains(errOut.String(), "Usage") {
		t.Errorf("unknown command: %v; usage printed: %q", err, errOut.String())
	}
	if err := run(context.Background(), []string{"serve", "--addr", "bad"}, envOf(nil), &out, &errOut); err == nil || !strings.Contains(err.Error(), "addr") {
		t.Errorf("bad flag: %v", err)
	}
}

// TestDashboardInBrowser loads the dashboard in headless Chromium (Debian's,
// driven by playwright-core), waits for the grids to be drawn, clicks a grid
// and checks the side panel. The screenshot is kept as a test artefact.
func TestDashboardInBrowser(t *testing.T) {
	var shot string
	runBrowserScript(t, "e2e/dashboard.mjs", func(url, dir string) []string {
		shot = filepath.Join(dir, "dashboard.png")
		return []string{url, shot}
	})
	st, err := os.Stat(shot)
	if err != nil || st.Size() < 10_000 {
		t.Fatalf("screenshot %s missing or tiny: %v", shot, err)
	}
}

// TestRolesInBrowser signs in as each demo role in headless Chromium and
// checks that each sees what its role allows (assets/e2e/roles.mjs): the
// import tool for GIS staff, none for a commander, fewer grids for a grid
// leader, the admin view for an admin, and a session that expires without
// losing the page.
func TestRolesInBrowser(t *testing.T) {
	runBrowserScript(t, "e2e/roles.mjs", func(url, dir string) []string { return []string{url, dir} })
}

// TestIncidentsInBrowser posts an incident through the API while a
// commander has the map open (assets/e2e/incidents.mjs): it appears without
// a reload, and is registered and dispatched from the page.
func TestIncidentsInBrowser(t *testing.T) {
	runBrowserScript(t, "e2e/incidents.mjs", func(url, dir string) []string { return []string{url, dir} })
}

// browserReady is the Chromium to drive (env CHROMIUM, else Debian's), once
// the dashboard is built into this test binary and playwright-core is
// installed; else the test is skipped (or fails under make test).
func browserReady(t testing.TB) string {
	t.Helper()
	if !assets.Built() {
		testtool.SkipOrFail(t, "dashboard assets are not built into this test binary (run `make assets` first)")
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		testtool.SkipOrFail(t, "Chromium not found at "+chromium+" (`make test` installs it)")
	}
	if _, err := os.Stat("../../assets/node_modules/playwright-core"); err != nil {
		testtool.SkipOrFail(t, "playwright-core is not installed in assets/node_modules (run `make assets`)")
	}
	return chromium
}

// runBrowserScript starts the demo on a free port and runs a playwright-core
// script from assets/ against it; args builds its arguments.
func runBrowserScript(t *testing.T, script string, args func(url, artifacts string) []string) {
	t.Helper()
	runBrowserScriptWith(t, script, nil, args)
}

// runBrowserScriptWith is runBrowserScript with extra gridwatch flags.
func runBrowserScriptWith(t *testing.T, script string, extra []string, args func(url, artifacts string) []string) {
	t.Helper()
	runBrowserScriptTuned(t, script, nil, extra, args)
}

// runBrowserScriptTuned is runBrowserScriptWith with tune applied to the
// Main before it starts (nil: none).
func runBrowserScriptTuned(t *testing.T, script string, tune func(*Main), extra []string, args func(url, artifacts string) []string) {
	t.Helper()
	chromium := browserReady(t)
	m := startMainWith(t, dataDir(t), true, tune, extra...)
	defer m.Close()
	// A script bounds each of its waits, and itself (scriptArgs); this bound
	// is for a hang outside those, with room for a loaded machine (the base
	// data script took 5.5 min beside a CPU hog and another test run).
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args(m.URL(), artifactDir(t))...)...)
	cmd.Dir = "../../assets"
	// A loaded CI machine renders WebGL in software: give each wait room.
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium, "E2E_TIMEOUT_MS=60000")
	out, err := cmd.CombinedOutput()
	t.Logf("%s: %s", script, out)
	if err != nil {
		t.Fatalf("%s failed: %v", script, err)
	}
}

func artifactDir(t testing.TB) string {
	dir := os.Getenv("GRIDWATCH_TEST_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(fmt.Errorf("artifacts: %w", err))
	}
	return dir
}
