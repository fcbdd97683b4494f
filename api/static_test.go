package api_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"

	"gridwatch/api"
	"gridwatch/assets"
)

// staticApp is the JavaScript of the test dist: a hashed bundle with .br and
// .gz forms. The .br bytes are a stand-in (Go has no brotli decoder and the
// server never decodes): what matters is that they are what is sent.
var staticApp = []byte(strings.Repeat("export const grid = 'grid';\n", 80))

const staticAppBr = "BROTLI-FORM-OF-APP"

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	z, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := z.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// staticFS is a small built dist: pages, hashed bundles (one with
// compressed forms), the field app's unhashed files, and a .gz that is a
// file of its own (nothing beside it has its name without .gz).
func staticFS(t testing.TB) fstest.MapFS {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	return fstest.MapFS{
		".gitkeep":                        file(""),
		"index.html":                      file(`<!doctype html><title>Gridwatch</title><script type="module" src="app-ABCDEFGH.js"></script>`),
		"favicon.svg":                     file(`<svg xmlns="http://www.w3.org/2000/svg"/>`),
		"app-ABCDEFGH.js":                 {Data: staticApp},
		"app-ABCDEFGH.js.br":              file(staticAppBr),
		"app-ABCDEFGH.js.gz":              {Data: gzipped(t, staticApp)},
		"app-QRSTUVWX.css":                file("body{color:red}"),
		"maplibre-gl-worker-MNOPQR23.mjs": file("self.worker=1"),
		"field/index.html":                file(`<!doctype html><title>Field</title>`),
		"field/sw.js":                     file(`self.addEventListener("install",()=>{})`),
		"field/manifest.webmanifest":      file(`{"name":"Gridwatch Field"}`),
		"field/icon-192.png":              file("\x89PNG\r\n\x1a\n"),
		"exports/data.gz":                 file("\x1f\x8b-not-a-sibling"),
	}
}

func staticServer(t testing.TB, fsys fs.FS) http.Handler {
	t.Helper()
	return api.New(api.Deps{Assets: fsys, AssetsBuilt: true}).Handler()
}

func request(h http.Handler, method, target string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestStaticEncodingNegotiation(t *testing.T) {
	h := staticServer(t, staticFS(t))
	gz := gzipped(t, staticApp)
	for _, c := range []struct{ accept, want string }{
		{"", ""},
		{"gzip", "gzip"},
		{"br", "br"},
		{"gzip, deflate, br, zstd", "br"}, // what Chrome sends
		{"gzip, br", "br"},                // br wins a tie
		{"BR", "br"},
		{"x-gzip", "gzip"},
		{"br;q=0.5, gzip", "gzip"},
		{"br;q=0.5, gzip;q=0.4", "br"},
		{"br;q=0, gzip;q=0", ""},
		{"br;q=0", ""},
		{"identity", ""},
		{"identity, br;q=0.5", ""}, // identity q=1 beats br at 0.5
		{"identity;q=0.1, gzip;q=0.2", "gzip"},
		{"*", "br"},
		{"*;q=0.5, gzip", "gzip"},
		{"*;q=0", ""}, // nothing acceptable: the plain file rather than a 406
		{"deflate", ""},
		{"br;q=bogus, gzip;q=0.3", "gzip"},
		{" br ; q=0.8 , gzip ; q=0.9 ", "gzip"},
	} {
		w := request(h, "GET", "/app-ABCDEFGH.js", "Accept-Encoding", c.accept)
		want := map[string][]byte{"": staticApp, "gzip": gz, "br": []byte(staticAppBr)}[c.want]
		if w.Code != 200 || w.Header().Get("Content-Encoding") != c.want || !bytes.Equal(w.Body.Bytes(), want) {
			t.Errorf("Accept-Encoding %q: %d, Content-Encoding %q, %d bytes; want %q, %d bytes", c.accept, w.Code, w.Header().Get("Content-Encoding"), w.Body.Len(), c.want, len(want))
			continue
		}
		if got := w.Header().Get("Content-Length"); got != strconv.Itoa(len(want)) {
			t.Errorf("Accept-Encoding %q: Content-Length %s, want %d", c.accept, got, len(want))
		}
		if got := w.Header().Get("Content-Type"); got != "text/javascript; charset=utf-8" {
			t.Errorf("Accept-Encoding %q: Content-Type %q", c.accept, got)
		}
		if got := w.Header().Values("Vary"); len(got) != 1 || got[0] != "Accept-Encoding" {
			t.Errorf("Accept-Encoding %q: Vary %q", c.accept, got)
		}
		if got := w.Header().Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
			t.Errorf("Accept-Encoding %q: Cache-Control %q", c.accept, got)
		}
	}
	// The .gz form is the file.
	w := request(h, "GET", "/app-ABCDEFGH.js", "Accept-Encoding", "gzip")
	z, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := io.ReadAll(z); err != nil || !bytes.Equal(plain, staticApp) {
		t.Errorf("gzip form decodes to %d bytes (%v), want the file", len(plain), err)
	}
	// A file without compressed forms does not vary.
	w = request(h, "GET", "/app-QRSTUVWX.css", "Accept-Encoding", "br, gzip")
	if w.Header().Get("Content-Encoding") != "" || w.Header().Get("Vary") != "" || w.Body.String() != "body{color:red}" {
		t.Errorf("css without forms: Content-Encoding %q, Vary %q, %q", w.Header().Get("Content-Encoding"), w.Header().Get("Vary"), w.Body)
	}
}

func TestStaticETags(t *testing.T) {
	h := staticServer(t, staticFS(t))
	tags := map[string]string{}
	for _, coding := range []string{"", "gzip", "br"} {
		w := request(h, "GET", "/app-ABCDEFGH.js", "Accept-Encoding", coding)
		tag := w.Header().Get("ETag")
		if !strings.HasPrefix(tag, `"`) || !strings.HasSuffix(tag, `"`) || len(tag) < 10 {
			t.Fatalf("%q: ETag %q, want a strong one", coding, tag)
		}
		for other, seen := range tags {
			if seen == tag {
				t.Errorf("%q and %q share ETag %s", coding, other, tag)
			}
		}
		tags[coding] = tag
		// The same request again: the same tag.
		if again := request(h, "GET", "/app-ABCDEFGH.js", "Accept-Encoding", coding).Header().Get("ETag"); again != tag {
			t.Errorf("%q: ETag %s then %s", coding, tag, again)
		}
	}
	br := tags["br"]
	for _, c := range []struct {
		inm, accept string
		want        int
	}{
		{br, "br", 304},
		{"W/" + br, "br", 304}, // If-None-Match compares weakly
		{`"other", ` + br, "br", 304},
		{`"other",` + br + `,"more"`, "gzip, br", 304},
		{"*", "br", 304},
		{br, "gzip", 200}, // another form: its own tag
		{tags["gzip"], "gzip", 304},
		{tags[""], "", 304},
		{`"other"`, "br", 200},
		{`garbage ` + br, "br", 200},
		{strings.Trim(br, `"`), "br", 200}, // unquoted is no entity tag
	} {
		w := request(h, "GET", "/app-ABCDEFGH.js", "Accept-Encoding", c.accept, "If-None-Match", c.inm)
		if w.Code != c.want {
			t.Errorf("If-None-Match %s, Accept-Encoding %q: %d, want %d", c.inm, c.accept, w.Code, c.want)
			continue
		}
		if c.want != 304 {
			continue
		}
		hd := w.Header()
		if w.Body.Len() != 0 || hd.Get("ETag") == "" || hd.Get("Cache-Control") == "" || hd.Get("Vary") != "Accept-Encoding" {
			t.Errorf("304 for %s: body %d bytes, headers %v", c.inm, w.Body.Len(), hd)
		}
		if hd.Get("Content-Type") != "" || hd.Get("Content-Encoding") != "" {
			t.Errorf("304 for %s carries representation headers: %v", c.inm, hd)
		}
	}
	// Unhashed files revalidate with their tag.
	w := request(h, "GET", "/field/sw.js")
	if w2 := request(h, "GET", "/field/sw.js", "If-None-Match", w.Header().Get("ETag")); w2.Code != 304 {
		t.Errorf("sw.js revalidation: %d", w2.Code)
	}
	// HEAD answers 304 too.
	if w := request(h, "HEAD", "/app-ABCDEFGH.js", "Accept-Encoding", "br", "If-None-Match", br); w.Code != 304 {
		t.Errorf("HEAD If-None-Match: %d", w.Code)
	}
}

func TestStaticHeadersByFile(t *testing.T) {
	h := staticServer(t, staticFS(t))
	const immutable, revalidate = "public, max-age=31536000, immutable", "no-cache"
	for _, c := range []struct{ path, ctype, cache string }{
		{"/", "text/html; charset=utf-8", revalidate},
		{"/index.html", "text/html; charset=utf-8", revalidate},
		{"/favicon.svg", "image/svg+xml", revalidate},
		{"/app-ABCDEFGH.js", "text/javascript; charset=utf-8", immutable},
		{"/app-QRSTUVWX.css", "text/css; charset=utf-8", immutable},
		{"/maplibre-gl-worker-MNOPQR23.mjs", "text/javascript; charset=utf-8", immutable},
		{"/field/", "text/html; charset=utf-8", revalidate},
		{"/field/index.html", "text/html; charset=utf-8", revalidate},
		{"/field/sw.js", "text/javascript; charset=utf-8", revalidate},
		{"/field/manifest.webmanifest", "application/manifest+json", revalidate},
		{"/field/icon-192.png", "image/png", revalidate},
		{"/exports/data.gz", "application/gzip", revalidate},
	} {
		w := request(h, "GET", c.path, "Accept-Encoding", "br, gzip")
		if w.Code != 200 || w.Header().Get("Content-Type") != c.ctype || w.Header().Get("Cache-Control") != c.cache {
			t.Errorf("%s: %d, Content-Type %q, Cache-Control %q; want 200, %q, %q", c.path, w.Code, w.Header().Get("Content-Type"), w.Header().Get("Cache-Control"), c.ctype, c.cache)
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" || w.Header().Get("Content-Security-Policy") == "" {
			t.Errorf("%s lacks the security headers: %v", c.path, w.Header())
		}
	}
	if w := request(h, "GET", "/field/"); !strings.Contains(w.Body.String(), "<title>Field</title>") {
		t.Errorf("/field/ is not the field app's page: %s", w.Body)
	}
	if w := request(h, "GET", "/field/index.html"); !strings.Contains(w.Body.String(), "<title>Field</title>") {
		t.Errorf("/field/index.html is not the field app's page: %s", w.Body)
	}
}

func TestStaticPaths(t *testing.T) {
	h := staticServer(t, staticFS(t))
	for _, c := range []struct {
		method, path string
		status       int
		location     string
	}{
		{"GET", "/field", 301, "/field/"},
		{"GET", "/field?tab=map", 301, "/field/?tab=map"},
		{"HEAD", "/field", 301, "/field/"},
		{"GET", "/exports", 301, "/exports/"},
		{"GET", "/exports/", 404, ""}, // a folder without index.html: no listing
		{"GET", "/app-ABCDEFGH.js.br", 404, ""},
		{"GET", "/app-ABCDEFGH.js.gz", 404, ""},
		{"GET", "/app.js", 404, ""},
		{"GET", "/missing/", 404, ""},
		{"GET", "/app-ABCDEFGH.js/", 404, ""},
		{"GET", "/.gitkeep", 404, ""},
		{"GET", "/field/../index.html", 404, ""},
		{"GET", "//index.html", 404, ""},
		{"POST", "/", 404, ""},
		{"GET", "/api/v1/nothing", 404, ""},
	} {
		w := request(h, c.method, c.path)
		if w.Code != c.status || w.Header().Get("Location") != c.location {
			t.Errorf("%s %s: %d Location %q, want %d %q", c.method, c.path, w.Code, w.Header().Get("Location"), c.status, c.location)
		}
		if c.status == 404 && w.Header().Get("Cache-Control") != "" {
			t.Errorf("%s %s: a 404 with Cache-Control %q", c.method, c.path, w.Header().Get("Cache-Control"))
		}
	}
}

func TestStaticHeadAndRange(t *testing.T) {
	h := staticServer(t, staticFS(t))
	w := request(h, "HEAD", "/app-ABCDEFGH.js", "Accept-Encoding", "br")
	if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Encoding") != "br" || w.Header().Get("Content-Length") != strconv.Itoa(len(staticAppBr)) {
		t.Errorf("HEAD: %d, %d bytes, headers %v", w.Code, w.Body.Len(), w.Header())
	}
	// Ranges are of the plain file, whatever the client accepts.
	w = request(h, "GET", "/app-ABCDEFGH.js", "Accept-Encoding", "br, gzip", "Range", "bytes=7-11")
	if w.Code != 206 || w.Body.String() != string(staticApp[7:12]) || w.Header().Get("Content-Encoding") != "" {
		t.Errorf("Range: %d %q, Content-Encoding %q", w.Code, w.Body, w.Header().Get("Content-Encoding"))
	}
	if got := w.Header().Get("Content-Range"); got != "bytes 7-11/"+strconv.Itoa(len(staticApp)) {
		t.Errorf("Content-Range %q", got)
	}
	plainTag := request(h, "GET", "/app-ABCDEFGH.js").Header().Get("ETag")
	if got := w.Header().Get("ETag"); got != plainTag || w.Header().Get("Cache-Control") == "" {
		t.Errorf("Range answer: ETag %q (want the plain file's %q), Cache-Control %q", got, plainTag, w.Header().Get("Cache-Control"))
	}
	// If-Range with the plain tag keeps the range; with the br form's, the
	// whole plain file.
	brTag := request(h, "GET", "/app-ABCDEFGH.js", "Accept-Encoding", "br").Header().Get("ETag")
	if w := request(h, "GET", "/app-ABCDEFGH.js", "Range", "bytes=0-3", "If-Range", plainTag); w.Code != 206 || w.Body.Len() != 4 {
		t.Errorf("If-Range with the plain tag: %d, %d bytes", w.Code, w.Body.Len())
	}
	if w := request(h, "GET", "/app-ABCDEFGH.js", "Accept-Encoding", "br", "Range", "bytes=0-3", "If-Range", brTag); w.Code != 200 || !bytes.Equal(w.Body.Bytes(), staticApp) || w.Header().Get("Content-Encoding") != "" {
		t.Errorf("If-Range with the br tag: %d, %d bytes, Content-Encoding %q", w.Code, w.Body.Len(), w.Header().Get("Content-Encoding"))
	}
	if w := request(h, "GET", "/app-ABCDEFGH.js", "Range", "bytes=100000-"); w.Code != 416 {
		t.Errorf("unsatisfiable range: %d", w.Code)
	}
	if w := request(h, "HEAD", "/app-ABCDEFGH.js", "Range", "bytes=0-3"); w.Code != 206 || w.Body.Len() != 0 || w.Header().Get("Content-Length") != "4" {
		t.Errorf("HEAD with Range: %d, %d bytes, Content-Length %q", w.Code, w.Body.Len(), w.Header().Get("Content-Length"))
	}
}

// storeFS is an fs.FS whose files the test can make fail to open, or hide
// the Seek method of, after the server has looked at them.
type storeFS struct {
	fs.FS
	gone   atomic.Bool
	noSeek bool
}

func (s *storeFS) Open(name string) (fs.File, error) {
	if s.gone.Load() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("the store is gone")}
	}
	f, err := s.FS.Open(name)
	if err != nil || !s.noSeek {
		return f, err
	}
	if info, err := f.Stat(); err == nil && info.IsDir() {
		return f, nil // a folder keeps ReadDir, which the walk needs
	}
	return struct{ fs.File }{f}, nil
}

// TestStaticReadsTheFS checks the answers of files larger than a copy
// buffer, which the server reads from the fs.FS for each answer rather than
// keeping: every form, ranges, HEAD, 304, a type sniffed from the first
// bytes, a file that does not seek, and an fs.FS that stops opening.
func TestStaticReadsTheFS(t *testing.T) {
	big := []byte(strings.Repeat("<p>grid 110105001002003 is covered by patrol 7</p>\n", 2000)) // ~100 KB
	bigBr := bytes.Repeat([]byte("BROTLI"), 7000)
	page := append([]byte("<!doctype html><title>Sniffed</title>"), big...)
	dist := fstest.MapFS{
		"index.html":              {Data: []byte("<!doctype html>")},
		"report-ABCDEFGH.html":    {Data: big},
		"report-ABCDEFGH.html.br": {Data: bigBr},
		"report-ABCDEFGH.html.gz": {Data: gzipped(t, big)},
		"page.html":               {Data: page},
		"page":                    {Data: page}, // no extension: its type is sniffed
	}
	for _, noSeek := range []bool{false, true} {
		store := &storeFS{FS: dist, noSeek: noSeek}
		h := staticServer(t, store)
		for _, c := range []struct {
			accept, coding string
			want           []byte
		}{
			{"", "", big},
			{"br, gzip", "br", bigBr},
			{"gzip", "gzip", gzipped(t, big)},
		} {
			w := request(h, "GET", "/report-ABCDEFGH.html", "Accept-Encoding", c.accept)
			if w.Code != 200 || w.Header().Get("Content-Encoding") != c.coding || !bytes.Equal(w.Body.Bytes(), c.want) {
				t.Errorf("noSeek %v, %q: %d, Content-Encoding %q, %d bytes; want %q, %d bytes", noSeek, c.accept, w.Code, w.Header().Get("Content-Encoding"), w.Body.Len(), c.coding, len(c.want))
			}
			if got := w.Header().Get("Content-Length"); got != strconv.Itoa(len(c.want)) {
				t.Errorf("noSeek %v, %q: Content-Length %s, want %d", noSeek, c.accept, got, len(c.want))
			}
			head := request(h, "HEAD", "/report-ABCDEFGH.html", "Accept-Encoding", c.accept)
			if head.Code != 200 || head.Body.Len() != 0 || head.Header().Get("Content-Length") != w.Header().Get("Content-Length") || head.Header().Get("ETag") != w.Header().Get("ETag") {
				t.Errorf("noSeek %v, HEAD %q: %d, %d bytes, headers %v", noSeek, c.accept, head.Code, head.Body.Len(), head.Header())
			}
			if nm := request(h, "GET", "/report-ABCDEFGH.html", "Accept-Encoding", c.accept, "If-None-Match", w.Header().Get("ETag")); nm.Code != 304 || nm.Body.Len() != 0 {
				t.Errorf("noSeek %v, %q revalidation: %d, %d bytes", noSeek, c.accept, nm.Code, nm.Body.Len())
			}
		}
		w := request(h, "GET", "/report-ABCDEFGH.html", "Accept-Encoding", "br", "Range", "bytes=40000-40099")
		if w.Code != 206 || !bytes.Equal(w.Body.Bytes(), big[40000:40100]) || w.Header().Get("Content-Range") != "bytes 40000-40099/"+strconv.Itoa(len(big)) {
			t.Errorf("noSeek %v, Range: %d %q, Content-Range %q", noSeek, w.Code, w.Body, w.Header().Get("Content-Range"))
		}
		// The same bytes under two names: the same tag, whether or not the
		// first of them were set aside to find the type.
		sniffed, named := request(h, "GET", "/page"), request(h, "GET", "/page.html")
		if sniffed.Header().Get("Content-Type") != "text/html; charset=utf-8" || !bytes.Equal(sniffed.Body.Bytes(), page) {
			t.Errorf("noSeek %v, sniffed file: Content-Type %q, %d bytes", noSeek, sniffed.Header().Get("Content-Type"), sniffed.Body.Len())
		}
		if tag := sniffed.Header().Get("ETag"); tag == "" || tag != named.Header().Get("ETag") {
			t.Errorf("noSeek %v: ETag %q for the sniffed file, %q for the named one", noSeek, tag, named.Header().Get("ETag"))
		}
		// A file that cannot be opened any more is a JSON 500 without the
		// file's validators; a revalidation needs no file and still answers.
		tag := request(h, "GET", "/report-ABCDEFGH.html").Header().Get("ETag")
		store.gone.Store(true)
		for _, hdr := range [][]string{nil, {"Range", "bytes=0-9"}, {"Accept-Encoding", "gzip"}} {
			w := request(h, "GET", "/report-ABCDEFGH.html", hdr...)
			if w.Code != 500 || !strings.Contains(w.Body.String(), `"internal"`) || w.Header().Get("ETag") != "" || w.Header().Get("Cache-Control") != "" {
				t.Errorf("noSeek %v, %v with the store gone: %d %s, headers %v", noSeek, hdr, w.Code, w.Body, w.Header())
			}
		}
		if w := request(h, "GET", "/report-ABCDEFGH.html", "If-None-Match", tag); w.Code != 304 {
			t.Errorf("noSeek %v, revalidation with the store gone: %d", noSeek, w.Code)
		}
	}
}

func TestStaticNotBuilt(t *testing.T) {
	h := api.New(api.Deps{Assets: fstest.MapFS{".gitkeep": {}}}).Handler()
	for _, p := range []string{"/", "/app-ABCDEFGH.js", "/field/"} {
		w := request(h, "GET", p)
		if w.Code != 200 || !strings.Contains(w.Body.String(), "not built") {
			t.Errorf("%s unbuilt: %d %s", p, w.Code, w.Body)
		}
	}
}

// BenchmarkStaticBrotli serves the dashboard's hashed app bundle, brotli
// form, as a browser's first visit asks for it: through the whole handler
// (middleware included), without the network. It uses the built dist when
// there is one, else the test dist.
func BenchmarkStaticBrotli(b *testing.B) {
	fsys, name := fs.FS(staticFS(b)), "app-ABCDEFGH.js"
	if assets.Built() {
		var manifest struct {
			Entries map[string]string `json:"entries"`
		}
		data, err := fs.ReadFile(assets.FS(), "assets.json")
		if err != nil || json.Unmarshal(data, &manifest) != nil || manifest.Entries["app.js"] == "" {
			b.Fatalf("the built dist has no usable assets.json: %v", err)
		}
		fsys, name = assets.FS(), manifest.Entries["app.js"]
	}
	h := staticServer(b, fsys)
	r := httptest.NewRequest("GET", "/"+name, nil)
	r.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	w := request(h, "GET", "/"+name, "Accept-Encoding", "br")
	if w.Code != 200 || w.Header().Get("Content-Encoding") != "br" {
		b.Fatalf("%s: %d, Content-Encoding %q", name, w.Code, w.Header().Get("Content-Encoding"))
	}
	b.SetBytes(int64(w.Body.Len()))
	b.ReportAllocs()
	for b.Loop() {
		w := discard{header: http.Header{}}
		h.ServeHTTP(&w, r)
		if w.status != 200 {
			b.Fatalf("status %d", w.status)
		}
	}
}

// discard is a ResponseWriter that keeps only the status, so the benchmark
// measures the server rather than a recorder's buffer.
type discard struct {
	header http.Header
	status int
}

func (d *discard) Header() http.Header { return d.header }
func (d *discard) WriteHeader(status int) {
	if d.status == 0 {
		d.status = status
	}
}
func (d *discard) Write(b []byte) (int, error) {
	d.WriteHeader(200)
	return len(b), nil
}
