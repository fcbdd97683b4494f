// Package assets holds the web dashboard and the field app: their npm/esbuild
// source under src/ and the built bundles under dist/, which are embedded into
// the gridwatch binary.
//
// The bundle is produced by `npm ci && npm run build` in this folder (the
// Makefile's assets target). A checkout that has not been built embeds only
// dist/.gitkeep; Built reports that case so the server can say so instead of
// serving an empty page.
package assets

import (
	"embed"
	"io/fs"
	"path"
	"regexp"
)

// dist is the build output; "all:" keeps dist/.gitkeep so the pattern always
// matches, even before the first build.
//
//go:embed all:dist
var dist embed.FS

// FS returns the built dashboard rooted at dist/: "index.html",
// "favicon.svg", the content-hashed bundles ("app-XL52XKXG.js",
// "app-….css", "maplibre-gl-worker-….mjs", chunks), the field app under
// "field/" and "assets.json", which names the hashed files (see build.mjs).
// Text files of 1 KiB or more have ".br" and ".gz" siblings.
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

// hashedName is build.mjs's rule for content-addressed names: "-", eight
// characters of esbuild's hash alphabet (A-Z, 2-7), then the extension.
var hashedName = regexp.MustCompile(`-[A-Z2-7]{8}\.[a-z0-9]+$`)

// Hashed reports whether name, a path in FS, is a content-hashed build
// output ("app-XL52XKXG.js", "hls.light-Z3YY76IU.js"): changed content gets a
// new name, so a browser may keep such a file for good. Source maps
// ("app-XL52XKXG.js.map"), pages, the service worker, the manifest and the
// icons are not.
func Hashed(name string) bool {
	return hashedName.MatchString(path.Base(name))
}
