// Package assets holds the web dashboard: its npm/esbuild source under src/ and
// the built bundle under dist/, which is embedded into the gridwatch binary.
//
// The bundle is produced by `npm ci && npm run build` in this folder (the
// Makefile's assets target). A checkout that has not been built embeds only
// dist/.gitkeep; Built reports that case so the server can say so instead of
// serving an empty page.
package assets

import (
	"embed"
	"io/fs"
)

// dist is the build output; "all:" keeps dist/.gitkeep so the pattern always
// matches, even before the first build.
//
//go:embed all:dist
var dist embed.FS

// FS returns the built dashboard rooted at dist/, so "index.html", "app.js",
// "app.css", "favicon.svg" and "maplibre-gl-worker.mjs" are at its top level.
func FS() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		// fs.Sub fails only for an invalid path, and "dist" is a constant valid one.
		panic("assets: " + err.Error())
	}
	return sub
}

// Built reports whether the embedded bundle contains index.html, that is
// whether `make assets` (npm run build) ran before the binary was compiled.
func Built() bool {
	_, err := fs.Stat(FS(), "index.html")
	return err == nil
}
