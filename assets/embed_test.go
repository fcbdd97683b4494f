package assets

import (
	"io/fs"
	"testing"

	"gridwatch/internal/testtool"
)

func TestFSIsRootedAtDist(t *testing.T) {
	if _, err := fs.Stat(FS(), ".gitkeep"); err != nil {
		t.Fatalf("FS() should hold .gitkeep at its root: %v", err)
	}
	if _, err := fs.Stat(FS(), "dist"); err == nil {
		t.Fatalf("FS() should be the dist subtree, but it contains dist/")
	}
}

func TestBuiltBundleIsComplete(t *testing.T) {
	if !Built() {
		// make test builds the dashboard first; there a missing bundle is a failure.
		testtool.SkipOrFail(t, "dashboard not built (make test builds it: npm ci && npm run build in assets/)")
	}
	for _, name := range []string{"index.html", "app.js", "app.css", "favicon.svg", "maplibre-gl-worker.mjs"} {
		info, err := fs.Stat(FS(), name)
		if err != nil {
			t.Errorf("built bundle lacks %s: %v", name, err)
			continue
		}
		if info.Size() == 0 {
			t.Errorf("built bundle has an empty %s", name)
		}
	}
}
