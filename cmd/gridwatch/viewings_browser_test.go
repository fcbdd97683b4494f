package main

import "testing"

// TestViewingsInBrowser checks the viewing audit in headless Chromium
// (assets/e2e/viewings.mjs): an operator watches a demo camera over the live
// WebSocket and asks for its HLS playlist; an admin then finds both sessions
// in Admin → Viewings, filtered by the camera and by the operator, and
// nobody else's. Screenshot admin-viewings.png is kept as an artefact.
func TestViewingsInBrowser(t *testing.T) {
	runBrowserScript(t, "e2e/viewings.mjs", func(url, dir string) []string { return []string{url, dir} })
}
