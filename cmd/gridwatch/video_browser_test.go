package main

import "testing"

// TestVideoInBrowser plays the demo's simulated cameras in headless Chromium
// (assets/e2e/video.mjs), in real time: as an operator, a grid's video wall
// plays its camera over the MSE WebSocket (the time to the first picture is
// logged), a tile opens the main stream in the larger player, a camera
// registered with an unreachable URL shows as offline with the reason, and
// closing the panel closes every video socket; a GIS editor sees no wall.
// Screenshots video-wall.png and video-player.png are kept as artefacts.
func TestVideoInBrowser(t *testing.T) {
	runBrowserScript(t, "e2e/video.mjs", func(url, dir string) []string { return []string{url, dir} })
}
