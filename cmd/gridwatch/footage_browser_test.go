package main

import "testing"

// TestFootageInBrowser plays recorded footage in Chromium, in real time:
// gridwatch runs with 3 s recording files (1 s fragments) so the demo
// cameras' footage is indexed within seconds; e2e/footage.mjs opens a
// camera's footage view, clicks its timeline inside a recorded run and checks
// that the <video> plays from there (hls.js over the HLS VOD playlist) and
// shows the wall-clock time clicked, and that a time without footage gets a
// message instead of a blank player; then it drag-selects a range, tags it
// (the API lists the tag) and exports it (the page's SHA-256 is the API's and
// verifies), and files an incident at the camera whose page lists the
// auto-linked footage and plays it; last, another camera's recordings
// directory is replaced by a file and its card says it does not record, and
// stops saying so once the directory is back.
func TestFootageInBrowser(t *testing.T) {
	var recordings string
	runBrowserScriptTuned(t, "e2e/footage.mjs", func(m *Main) { recordings = m.recordingsDir() },
		[]string{"--recording-file", "3s", "--recording-fragment", "1s"}, func(url, dir string) []string { return []string{url, dir, recordings} })
}

// TestFootageOpsInBrowser is the operator's footage work in Chromium, in real
// time (assets/e2e/footage-ops.mjs): on an incident's page the linked clip
// plays inline, is exported (done, with its SHA-256), footage is linked by
// hand and unlinked; in the footage view a tag is made, edited (label, note,
// range), found by the tag search and deleted by its author, while another
// non-admin is offered neither edit nor delete; a disk-full recording status
// shows its banner.
func TestFootageOpsInBrowser(t *testing.T) {
	runBrowserScriptWith(t, "e2e/footage-ops.mjs", []string{"--recording-file", "3s", "--recording-fragment", "1s"}, func(url, dir string) []string { return []string{url, dir, "footage"} })
}

// TestExportsInBrowser: an incident's export plays with its own length
// (video.duration, from 0), also one taken from well into the recording;
// operators see no hold or delete; an admin holds, releases and deletes an
// export from the incident page (footage-ops.mjs, steps 1–3 and 8).
func TestExportsInBrowser(t *testing.T) {
	runBrowserScriptWith(t, "e2e/footage-ops.mjs", []string{"--recording-file", "3s", "--recording-fragment", "1s"}, func(url, dir string) []string { return []string{url, dir, "exports"} })
}
