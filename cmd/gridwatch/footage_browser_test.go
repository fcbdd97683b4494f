package main

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"gridwatch/assets"
)

// TestFootageInBrowser plays recorded footage in Chromium, in real time:
// gridwatch runs with 3 s recording files (1 s fragments) so the demo
// cameras' footage is indexed within seconds; e2e/footage.mjs opens a
// camera's footage view, clicks its timeline inside a recorded run and checks
// that the <video> plays from there (hls.js over the HLS VOD playlist) and
// shows the wall-clock time clicked, and that a time without footage gets a
// message instead of a blank player; then it drag-selects a range, tags it
// (the API lists the tag) and exports it (the page's SHA-256 is the API's and
// verifies), and files an incident at the camera whose page lists the
// auto-linked footage and plays it.
func TestFootageInBrowser(t *testing.T) {
	runBrowserScriptWith(t, "e2e/footage.mjs", []string{"--recording-file", "3s", "--recording-fragment", "1s"}, func(url, dir string) []string { return []string{url, dir} })
}

// runBrowserScriptWith is runBrowserScript with extra gridwatch flags.
func runBrowserScriptWith(t *testing.T, script string, extra []string, args func(url, artifacts string) []string) {
	t.Helper()
	if !assets.Built() {
		skipOrFail(t, "dashboard assets are not built into this test binary (run `make assets` first)")
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		skipOrFail(t, "Chromium not found at "+chromium+" (`make test` installs it)")
	}
	if _, err := os.Stat("../../assets/node_modules/playwright-core"); err != nil {
		skipOrFail(t, "playwright-core is not installed in assets/node_modules (run `make assets`)")
	}
	m := startMain(t, dataDir(t), true, extra...)
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args(m.URL(), artifactDir(t))...)...)
	cmd.Dir = "../../assets"
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium, "E2E_TIMEOUT_MS=60000")
	out, err := cmd.CombinedOutput()
	t.Logf("%s: %s", script, out)
	if err != nil {
		t.Fatalf("%s failed: %v", script, err)
	}
}
