package assets

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"image/png"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
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

func TestHashed(t *testing.T) {
	for name, want := range map[string]bool{
		"app-XL52XKXG.js":                 true,
		"app-MTY2NUQQ.css":                true,
		"hls.light-Z3YY76IU.js":           true,
		"chunk-LIF4LPA3.js":               true,
		"maplibre-gl-worker-XO4GDAXT.mjs": true,
		"sub/field-C25TPPHB.css":          true,
		"app-XL52XKXG.js.map":             false, // a map changes with its sources, not only its bundle
		"app.js":                          false,
		"maplibre-gl-worker.mjs":          false,
		"index.html":                      false,
		"field/sw.js":                     false,
		"field/manifest.webmanifest":      false,
		"field/icon-192.png":              false,
		"field/icon-maskable-512.png":     false,
		"app-xl52xkxg.js":                 false, // esbuild's hashes are upper case
		"app-XL52XKX1.js":                 false, // and have no 0, 1, 8 or 9
		"app-XL52XKXGA.js":                false,
		"app-XL52XKX.js":                  false,
		"XL52XKXG-app.js":                 false,
	} {
		if Hashed(name) != want {
			t.Errorf("Hashed(%q) = %v, want %v", name, !want, want)
		}
	}
}

// builtManifest is dist/assets.json as build.mjs writes it.
type builtManifest struct {
	Entries map[string]string `json:"entries"`
	Shell   *struct {
		Version string   `json:"version"`
		Files   []string `json:"files"`
	} `json:"shell"`
	Files map[string]struct {
		Raw    int64  `json:"raw"`
		Gzip   *int64 `json:"gzip"`
		Brotli *int64 `json:"brotli"`
		Hashed bool   `json:"hashed"`
	} `json:"files"`
}

var textExt = map[string]bool{".js": true, ".mjs": true, ".css": true, ".html": true, ".svg": true, ".json": true, ".webmanifest": true}

func TestBuiltBundleIsComplete(t *testing.T) {
	if !Built() {
		// make test builds the dashboard first; there a missing bundle is a failure.
		testtool.SkipOrFail(t, "dashboard not built (make test builds it: npm ci && npm run build in assets/)")
	}
	dist := FS()
	var m builtManifest
	data, err := fs.ReadFile(dist, "assets.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("assets.json: %v", err)
	}

	for _, entry := range []string{"app.js", "app.css", "maplibre-gl-worker.mjs"} {
		name := m.Entries[entry]
		if !Hashed(name) {
			t.Errorf("assets.json names %q for %s, not a hashed name", name, entry)
		}
		if info, err := fs.Stat(dist, name); err != nil || info.Size() == 0 {
			t.Errorf("built bundle lacks %s (%s): %v", entry, name, err)
		}
	}

	// Every file is in assets.json with its size, hashed when its name says
	// so; text files of 1 KiB or more have .br and .gz forms that decode to
	// them (brotli through node, which the build needs anyway).
	var brNames []string
	var brForms [][]byte
	var brSums []string
	seen := map[string]bool{}
	err = fs.WalkDir(dist, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || name == ".gitkeep" || name == "assets.json" {
			return err
		}
		for _, suffix := range []string{".br", ".gz"} {
			if plain, ok := strings.CutSuffix(name, suffix); ok {
				if _, err := fs.Stat(dist, plain); err == nil {
					return nil
				}
			}
		}
		seen[name] = true
		body, err := fs.ReadFile(dist, name)
		if err != nil {
			return err
		}
		meta, listed := m.Files[name]
		switch {
		case !listed:
			t.Errorf("%s is not in assets.json", name)
		case meta.Raw != int64(len(body)):
			t.Errorf("%s: assets.json says %d bytes, it has %d", name, meta.Raw, len(body))
		case meta.Hashed != Hashed(name):
			t.Errorf("%s: assets.json says hashed %v, Hashed says %v", name, meta.Hashed, Hashed(name))
		}
		if !textExt[path.Ext(name)] || len(body) < 1024 {
			return nil
		}
		gz, err := fs.ReadFile(dist, name+".gz")
		if err != nil {
			t.Errorf("%s (%d bytes) has no .gz: %v", name, len(body), err)
		} else if plain, err := gunzip(gz); err != nil || !bytes.Equal(plain, body) {
			t.Errorf("%s.gz does not decode to %s: %v", name, name, err)
		} else if listed && (meta.Gzip == nil || *meta.Gzip != int64(len(gz))) {
			t.Errorf("%s: assets.json gzip size %s, the file has %d", name, size(meta.Gzip), len(gz))
		}
		br, err := fs.ReadFile(dist, name+".br")
		if err != nil {
			t.Errorf("%s (%d bytes) has no .br: %v", name, len(body), err)
			return nil
		}
		if listed && (meta.Brotli == nil || *meta.Brotli != int64(len(br))) {
			t.Errorf("%s: assets.json brotli size %s, the file has %d", name, size(meta.Brotli), len(br))
		}
		if len(br) >= len(body) {
			t.Errorf("%s.br (%d bytes) is no smaller than %s (%d)", name, len(br), name, len(body))
		}
		sum := sha256.Sum256(body)
		brNames, brForms, brSums = append(brNames, name), append(brForms, br), append(brSums, hex.EncodeToString(sum[:]))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name := range m.Files {
		if !seen[name] {
			t.Errorf("assets.json lists %s, which dist/ lacks", name)
		}
	}
	t.Run("brotli", func(t *testing.T) { checkBrotli(t, brNames, brForms, brSums) })

	// The pages refer to files that exist, the bundles by their hashed names.
	checkPage(t, dist, "index.html", m.Entries["app.js"], m.Entries["app.css"])
	if !namesWorker(t, dist, m, nil) {
		t.Errorf("no bundle names %s: MapLibre would look for its worker under the unhashed name", m.Entries["maplibre-gl-worker.mjs"])
	}

	if _, err := os.Stat("src/field/main.js"); err != nil {
		t.Logf("no src/field/main.js: no field app to check")
		return
	}
	checkPage(t, dist, "field/index.html", m.Entries["field.js"], m.Entries["field.css"])
	if !Hashed(m.Entries["field.js"]) {
		t.Errorf("assets.json names %q for field.js", m.Entries["field.js"])
	}
	checkIcons(t, dist)
	manifest, err := fs.ReadFile(dist, "field/manifest.webmanifest")
	var parsed map[string]any
	if err != nil || json.Unmarshal(manifest, &parsed) != nil {
		t.Errorf("field/manifest.webmanifest missing or not JSON: %v", err)
	}
	if _, err := os.Stat("src/field/sw.js"); err != nil {
		t.Logf("no src/field/sw.js: no service worker to check")
		return
	}
	checkServiceWorker(t, dist, m)
}

func size(n *int64) string {
	if n == nil {
		return "null"
	}
	return strconv.FormatInt(*n, 10)
}

func gunzip(b []byte) ([]byte, error) {
	z, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(z)
}

// checkBrotli decodes each .br form with node and compares its SHA-256 with
// the plain file's.
func checkBrotli(t *testing.T, names []string, forms [][]byte, sums []string) {
	if len(names) == 0 {
		t.Fatal("no .br files in the build")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		testtool.SkipOrFail(t, "node is not installed: cannot decode the .br files")
	}
	const script = `const z = require('zlib'), c = require('crypto'); let s = '';
process.stdin.on('data', (d) => { s += d; }).on('end', () => {
  for (const line of s.split('\n')) {
    if (!line) continue;
    try {
      console.log(c.createHash('sha256').update(z.brotliDecompressSync(Buffer.from(line, 'base64'))).digest('hex'));
    } catch {
      console.log('undecodable');
    }
  }
});`
	var in bytes.Buffer
	for _, f := range forms {
		in.WriteString(base64.StdEncoding.EncodeToString(f) + "\n")
	}
	cmd := exec.Command(node, "-e", script)
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node decoding the .br files: %v\n%s", err, stderr.Bytes())
	}
	got := strings.Fields(string(out))
	if len(got) != len(sums) {
		t.Fatalf("node decoded %d .br files of %d", len(got), len(sums))
	}
	for i := range sums {
		if got[i] != sums[i] {
			t.Errorf("%s.br does not decode to %s", names[i], names[i])
		}
	}
}

var (
	pageRef = regexp.MustCompile(`\b(?:src|href)="([^"]*)"`)
	// notLocal are references a page may make outside dist/: absolute URLs and
	// paths, fragments, data: URLs.
	notLocal = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9+.-]*:|//|#|/)`)
)

// checkPage checks that every local reference of the page resolves to a
// file in dist, and that it loads each of want.
func checkPage(t *testing.T, dist fs.FS, page string, want ...string) {
	t.Helper()
	html, err := fs.ReadFile(dist, page)
	if err != nil {
		t.Errorf("built bundle lacks %s: %v", page, err)
		return
	}
	dir := path.Dir(page)
	refs := map[string]bool{}
	for _, match := range pageRef.FindAllStringSubmatch(string(html), -1) {
		ref := match[1]
		if ref == "" || notLocal.MatchString(ref) {
			continue
		}
		ref, _, _ = strings.Cut(ref, "?")
		ref, _, _ = strings.Cut(ref, "#")
		name := path.Join(dir, ref)
		refs[name] = true
		if !fs.ValidPath(name) {
			t.Errorf("%s refers to %s, outside dist/", page, match[1])
		} else if _, err := fs.Stat(dist, name); err != nil {
			t.Errorf("%s refers to %s, which is not built: %v", page, match[1], err)
		}
	}
	for _, w := range want {
		if w == "" || !refs[w] {
			t.Errorf("%s does not load %q (it refers to %v)", page, w, refs)
		}
	}
}

func checkIcons(t *testing.T, dist fs.FS) {
	t.Helper()
	for _, icon := range []struct {
		name     string
		size     int
		maskable bool
	}{{"field/icon-192.png", 192, false}, {"field/icon-512.png", 512, false}, {"field/icon-maskable-512.png", 512, true}} {
		f, err := dist.Open(icon.name)
		if err != nil {
			t.Errorf("no %s: %v", icon.name, err)
			continue
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Errorf("%s is not a PNG: %v", icon.name, err)
			continue
		}
		if b := img.Bounds(); b.Dx() != icon.size || b.Dy() != icon.size {
			t.Errorf("%s is %v, want %d×%d", icon.name, b, icon.size, icon.size)
		}
		// The plain icons have rounded corners; a maskable one fills the square.
		_, _, _, cornerA := img.At(0, 0).RGBA()
		_, _, _, centreA := img.At(icon.size/2, icon.size/2).RGBA()
		if centreA != 0xffff || (cornerA == 0xffff) != icon.maskable {
			t.Errorf("%s: corner alpha %#x, centre alpha %#x", icon.name, cornerA, centreA)
		}
	}
}

// checkServiceWorker checks that the build put the shell into sw.js and
// that every file of it exists.
func checkServiceWorker(t *testing.T, dist fs.FS, m builtManifest) {
	t.Helper()
	sw, err := fs.ReadFile(dist, "field/sw.js")
	if err != nil {
		t.Fatalf("no field/sw.js: %v", err)
	}
	if bytes.Contains(sw, []byte("__SHELL__")) {
		t.Errorf("field/sw.js still holds __SHELL__")
	}
	if m.Shell == nil || len(m.Shell.Version) < 8 || len(m.Shell.Files) < 5 {
		t.Fatalf("assets.json has no field shell: %+v", m.Shell)
	}
	if !bytes.Contains(sw, []byte(strconv.Quote(m.Shell.Version))) {
		t.Errorf("field/sw.js lacks the shell version %s", m.Shell.Version)
	}
	for _, want := range []string{"./", "index.html", "../" + m.Entries["field.js"], "../" + m.Entries["maplibre-gl-worker.mjs"], "manifest.webmanifest", "icon-192.png", "icon-512.png", "icon-maskable-512.png"} {
		if !slices.Contains(m.Shell.Files, want) {
			t.Errorf("the field shell lacks %s: %v", want, m.Shell.Files)
		}
	}
	var shellJS []string
	for _, f := range m.Shell.Files {
		if strings.HasSuffix(f, ".js") {
			shellJS = append(shellJS, path.Join("field", f))
		}
	}
	if !namesWorker(t, dist, m, shellJS) {
		t.Errorf("the field app loads MapLibre but none of %v names its worker %s", shellJS, m.Entries["maplibre-gl-worker.mjs"])
	}
	for _, f := range m.Shell.Files {
		if !bytes.Contains(sw, []byte(strconv.Quote(f))) {
			t.Errorf("field/sw.js does not list %s", f)
		}
		name := path.Join("field", f)
		if strings.HasSuffix(f, "/") {
			name = path.Join(name, "index.html")
		}
		if _, err := fs.Stat(dist, name); err != nil {
			t.Errorf("the field shell names %s, which is not built: %v", f, err)
		}
	}
}

// namesWorker reports whether one of files (nil: the .js files at the top of
// dist) names MapLibre's hashed worker, or none of them loads MapLibre.
func namesWorker(t *testing.T, dist fs.FS, m builtManifest, files []string) bool {
	t.Helper()
	if files == nil {
		files, _ = fs.Glob(dist, "*.js")
	}
	worker, maplibre := []byte(m.Entries["maplibre-gl-worker.mjs"]), false
	for _, f := range files {
		js, err := fs.ReadFile(dist, f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if bytes.Contains(js, worker) {
			return true
		}
		maplibre = maplibre || bytes.Contains(js, []byte("setWorkerUrl"))
	}
	return !maplibre
}
