package main

import "testing"

// TestPTZInBrowser adds a camera found by ONVIF discovery among the demo's
// simulated devices and steers it from the player's PTZ pad in headless
// Chromium (assets/e2e/ptz.mjs): discovery, a refused password named, the
// probe, the camera added with the device's streams, hold-to-move, the
// operator shown in control and another actor refused, a preset saved and
// recalled, home, control let go on close, every command audited.
// Screenshot ptz-player.png.
func TestPTZInBrowser(t *testing.T) {
	runBrowserScript(t, "e2e/ptz.mjs", func(url, dir string) []string { return []string{url, dir} })
}
