package main

import "testing"

// TestGB28181InBrowser opens the admin view's GB/T 28181 tab in headless
// Chromium against the demo's simulated NVR, registered over real SIP on
// loopback (assets/e2e/gb28181.mjs): the NVR listed online with 5 channels,
// 4 cameras and 1 unplaced; its catalog read again and its status asked,
// the answers shown; its password set (has_password, never the password);
// the unplaced channel placed — a point picked on the map, then typed — and
// shown as a camera in its grid; a device provisioned before it registers,
// the server's refusal shown when it is asked; the dome's card linking to its
// device, its live video playing in the player with the numbered PTZ pad;
// and its footage view with the device's own recordings in their lane
// ("On device"): a range of them played from the device (pause, resume,
// seek, 2×, close: the playback gone on the server), and 20 s of them
// fetched into gridwatch's footage, which then covers them (the API and
// the lane). Screenshots gb-*.png.
func TestGB28181InBrowser(t *testing.T) {
	// The demo as `gridwatch demo` runs it: with the GB/T 28181 platform and its NVR.
	runBrowserScriptTuned(t, "e2e/gb28181.mjs", func(m *Main) { m.DemoNVR = true }, nil,
		func(url, artifacts string) []string { return []string{url, artifacts} })
}
