package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestEditorInBrowser drives the boundary editor in headless Chromium
// (assets/e2e/editor.mjs): a GIS editor drags a vertex of a grid on the map
// canvas, sees the dry-run preview (area change, findings), saves, finds the
// new version in the API and the old boundary drawn from History; when
// someone else changes the grid meanwhile, the grid.changed event makes the
// editor warn before any save, a save anyway shows the server's 412 message,
// and Reload starts again from the new version; the Move edge tool, drawn
// with mouse clicks, moves the edge two grids share (one grows, the other
// shrinks, both versions go up); a commander sees no edit action and never
// loads the editor's code.
func TestEditorInBrowser(t *testing.T) {
	var dir string
	runBrowserScript(t, "e2e/editor.mjs", func(url, artifacts string) []string {
		dir = artifacts
		return []string{url, artifacts, testAdminToken}
	})
	if st, err := os.Stat(filepath.Join(dir, "editor-preview.png")); err != nil || st.Size() < 10_000 {
		t.Errorf("editor-preview.png missing or tiny: %v", err)
	}
	for _, shot := range []string{"editor-changed-elsewhere.png", "editor-edge.png"} {
		if st, err := os.Stat(filepath.Join(dir, shot)); err != nil || st.Size() < 10_000 {
			t.Errorf("%s missing or tiny: %v", shot, err)
		}
	}
}
