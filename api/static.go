package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"gridwatch/api/httpapi"
	"gridwatch/assets"

	"github.com/gin-gonic/gin"
)

const notBuiltPage = `<!doctype html><meta charset="utf-8"><title>Gridwatch</title>
<h1>Gridwatch</h1><p>The dashboard assets are not built into this binary. Run <code>make build</code>
(it runs <code>npm ci</code> and esbuild in <code>assets/</code>) and start it again. The API is up: try
<a href="/api/v1/grids">/api/v1/grids</a>.</p>`

// Cache-Control of the built files: a content-hashed name (assets.Hashed)
// never changes content, so browsers keep it a year without asking; every
// other file (the pages, field/sw.js, the manifest, the icons) is checked
// with its ETag on each use.
const (
	cacheImmutable  = "public, max-age=31536000, immutable"
	cacheRevalidate = "no-cache"
)

// staticTypes are the Content-Types of the files the build writes, by the
// extension of their own name (never the .br or .gz sibling's).
var staticTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".webp":        "image/webp",
	".ico":         "image/x-icon",
	".json":        "application/json",
	".map":         "application/json",
	".webmanifest": "application/manifest+json",
	".woff2":       "font/woff2",
	".txt":         "text/plain; charset=utf-8",
}

// Content codings a file may be stored in beside its plain form: its name
// plus the suffix. Their order is the preference when a client accepts
// both equally.
var staticCodings = [...]struct{ name, suffix string }{{"br", ".br"}, {"gzip", ".gz"}}

// staticFile is one built file. Its contents stay in the fs.FS (the
// binary, for the embedded dashboard) and are read from there for each
// answer: held on the heap they cost several megabytes, twice that in RSS
// once the GC's headroom is counted. Its ETags and sniffed type are worked
// out at its first request (load), not at start, so that a node that serves
// no browser (a relay, say) never pages the dashboard in at all.
type staticFile struct {
	name         string
	cacheControl string
	// plain is the file itself; coded[i] is its staticCodings[i] form,
	// nil when the build wrote none (small or binary files).
	plain staticBody
	coded [len(staticCodings)]*staticBody

	once        sync.Once
	loadErr     error
	contentType string // set by load
}

// staticBody is one stored form of a file: where it is and what its
// headers say, never its bytes.
type staticBody struct {
	path string // in the site's fs.FS
	size int64
	etag string // strong, quoted; differs between a file's forms
}

// staticSite is the built dashboard: its files by path ("index.html",
// "field/sw.js") and its folders ("field"). The .br and .gz siblings are
// part of their file, not files of their own.
type staticSite struct {
	fsys  fs.FS
	files map[string]*staticFile
	dirs  map[string]bool
}

// newStaticSite walks fsys and notes every file's forms and sizes; nothing
// is read until a file is first asked for (see staticFile.load).
func newStaticSite(fsys fs.FS) (*staticSite, error) {
	site := &staticSite{fsys: fsys, files: map[string]*staticFile{}, dirs: map[string]bool{}}
	if fsys == nil {
		return site, nil
	}
	sizes := map[string]int64{}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name != "." {
				site.dirs[name] = true
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		sizes[name] = info.Size()
		return nil
	})
	for name, size := range sizes {
		if isCodedSibling(name, sizes) || name == ".gitkeep" {
			continue
		}
		f := &staticFile{name: name, cacheControl: cacheRevalidate, plain: staticBody{path: name, size: size}}
		if assets.Hashed(name) {
			f.cacheControl = cacheImmutable
		}
		for i, c := range staticCodings {
			if coded, ok := sizes[name+c.suffix]; ok {
				f.coded[i] = &staticBody{path: name + c.suffix, size: coded}
			}
		}
		site.files[name] = f
	}
	return site, err
}

// load hashes the plain file, once, as a stream, and sets every form's ETag
// and the Content-Type. A file that cannot be read answers 500, and is
// tried again on no later request: the binary does not change.
func (f *staticFile) load(fsys fs.FS) error {
	f.once.Do(func() {
		size, sum, ctype, err := hashStatic(fsys, f.plain.path)
		if err != nil {
			f.loadErr = fmt.Errorf("reading the dashboard file %s: %w", f.plain.path, err)
			return
		}
		tag := hex.EncodeToString(sum[:12])
		f.plain.size, f.plain.etag, f.contentType = size, `"`+tag+`"`, ctype
		for i, c := range staticCodings {
			if f.coded[i] != nil {
				f.coded[i].etag = `"` + tag + "-" + c.suffix[1:] + `"`
			}
		}
	})
	return f.loadErr
}

// hashStatic streams the file name of fsys through SHA-256 and returns its
// length, its hash and its Content-Type. Only the first 512 bytes are kept
// aside, and only when the extension does not give the type, for
// http.DetectContentType.
func hashStatic(fsys fs.FS, name string) (size int64, sum [sha256.Size]byte, ctype string, err error) {
	file, err := fsys.Open(name)
	if err != nil {
		return 0, sum, "", err
	}
	defer file.Close()
	hash := sha256.New()
	ctype = staticTypeByName(name)
	if ctype == "" {
		head := make([]byte, 512)
		n, err := io.ReadFull(file, head)
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return 0, sum, "", err
		}
		ctype = http.DetectContentType(head[:n])
		hash.Write(head[:n])
		size = int64(n)
	}
	n, err := io.Copy(hash, file)
	if err != nil {
		return 0, sum, "", err
	}
	hash.Sum(sum[:0])
	return size + n, sum, ctype, nil
}

// isCodedSibling reports whether name is the .br or .gz form of another file.
func isCodedSibling(name string, all map[string]int64) bool {
	for _, c := range staticCodings {
		if plain, ok := strings.CutSuffix(name, c.suffix); ok {
			if _, ok := all[plain]; ok {
				return true
			}
		}
	}
	return false
}

// staticTypeByName is the Content-Type the name's extension gives, "" when
// it gives none and the contents must be sniffed.
func staticTypeByName(name string) string {
	ext := path.Ext(name)
	if t, ok := staticTypes[ext]; ok {
		return t
	}
	return mime.TypeByExtension(ext)
}

// noRoute returns the handler for requests no route takes: JSON 404s under
// /api, /ogc and /tiles and for methods other than GET and HEAD, the built
// dashboard otherwise. Its files are looked at here, once.
func (s *Server) noRoute() httpapi.Handler {
	site, err := newStaticSite(s.deps.Assets)
	if err != nil && s.deps.AssetsBuilt {
		s.log.Error("reading the built dashboard", "err", err)
	}
	return func(c *gin.Context) error {
		p := c.Request.URL.Path
		if strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/ogc/") || strings.HasPrefix(p, "/tiles/") || (c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead) {
			return httpapi.Errorf(http.StatusNotFound, "not_found", "no route for %s %s", c.Request.Method, p)
		}
		if !s.deps.AssetsBuilt {
			c.Data(http.StatusOK, "text/html; charset=utf-8", []byte(notBuiltPage))
			return nil
		}
		return site.serve(c.Writer, c.Request)
	}
}

// serve answers a GET or HEAD for path r.URL.Path: "/" and "/dir/" are
// their index.html, "/dir" redirects to "/dir/", a file is sent in the
// form Accept-Encoding prefers, 304 when If-None-Match names it.
func (site *staticSite) serve(w http.ResponseWriter, r *http.Request) error {
	p := r.URL.Path
	name := strings.TrimPrefix(p, "/")
	if name == "" || strings.HasSuffix(name, "/") {
		name += "index.html"
	} else if site.dirs[name] {
		to := p + "/"
		if r.URL.RawQuery != "" {
			to += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, to, http.StatusMovedPermanently)
		return nil
	}
	f := site.files[name]
	if f == nil {
		return httpapi.Errorf(http.StatusNotFound, "not_found", "no file %s", p)
	}
	if err := f.load(site.fsys); err != nil {
		return err
	}
	// A range is of the plain file: ranges of a compressed form would not
	// survive a client asking again with other codings.
	ranged := r.Header.Get("Range") != ""
	body, coding := &f.plain, ""
	if !ranged {
		body, coding = f.negotiate(r.Header.Get("Accept-Encoding"))
	}
	h := w.Header()
	if etagMatches(r.Header.Get("If-None-Match"), body.etag) {
		f.setValidators(h, body)
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	// The file is opened before any header is set, so that an error answers
	// a plain 500 rather than one carrying the file's ETag and caching.
	file, err := site.fsys.Open(body.path)
	if err != nil {
		return fmt.Errorf("opening the dashboard file %s: %w", body.path, err)
	}
	defer file.Close()
	f.setValidators(h, body)
	h.Set("Content-Type", f.contentType)
	if ranged {
		content, ok := file.(io.ReadSeeker)
		if !ok {
			// Every fs.FS the server is given (embed.FS, os.DirFS) seeks;
			// one that does not costs a copy of the file for this answer.
			data, err := io.ReadAll(file)
			if err != nil {
				return fmt.Errorf("reading the dashboard file %s: %w", body.path, err)
			}
			content = bytes.NewReader(data)
		}
		http.ServeContent(w, r, f.name, time.Time{}, content)
		return nil
	}
	if coding != "" {
		h.Set("Content-Encoding", coding)
	} else {
		h.Set("Accept-Ranges", "bytes")
	}
	h.Set("Content-Length", strconv.FormatInt(body.size, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		// No more than the Content-Length sent, whatever the file holds now.
		// A failed write is the client gone: the status is out, nothing to add.
		buf := staticBuffers.Get().(*[]byte)
		_, _ = io.CopyBuffer(w, io.LimitReader(file, body.size), *buf)
		staticBuffers.Put(buf)
	}
	return nil
}

// staticBuffers hold the buffers files are copied to the client through:
// the writer gin hands a handler has no ReadFrom, so io.Copy would make a
// new 32 KiB buffer for every answer.
var staticBuffers = sync.Pool{New: func() any {
	buf := make([]byte, 32<<10)
	return &buf
}}

// setValidators sets the headers a 200, a 206 and a 304 for body share.
func (f *staticFile) setValidators(h http.Header, body *staticBody) {
	h.Set("Cache-Control", f.cacheControl)
	if f.coded != [len(staticCodings)]*staticBody{} {
		h.Add("Vary", "Accept-Encoding")
	}
	h.Set("ETag", body.etag)
}

// negotiate picks the form of f to send for an Accept-Encoding header: the
// highest q-value among the forms f has (br before gzip before the plain
// file on a tie). Without the header, or when it refuses everything, the
// plain file.
func (f *staticFile) negotiate(accept string) (*staticBody, string) {
	if accept == "" || f.coded == [len(staticCodings)]*staticBody{} {
		return &f.plain, ""
	}
	q := parseAcceptEncoding(accept)
	best, bestQ, coding := &f.plain, q.of("identity"), ""
	for i := len(staticCodings) - 1; i >= 0; i-- {
		if c := staticCodings[i]; f.coded[i] != nil {
			if v := q.of(c.name); v > 0 && v >= bestQ {
				best, bestQ, coding = f.coded[i], v, c.name
			}
		}
	}
	return best, coding
}

// acceptEncoding is a parsed Accept-Encoding header: coding → q-value,
// "*" included when given.
type acceptEncoding map[string]float64

func parseAcceptEncoding(header string) acceptEncoding {
	q := acceptEncoding{}
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding == "" {
			continue
		}
		if coding == "x-gzip" {
			coding = "gzip"
		}
		v := 1.0
		for param := range strings.SplitSeq(params, ";") {
			k, val, _ := strings.Cut(strings.TrimSpace(param), "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				parsed, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
				if err != nil || parsed < 0 || parsed > 1 {
					parsed = 0
				}
				v = parsed
			}
		}
		if old, seen := q[coding]; !seen || v > old {
			q[coding] = v
		}
	}
	return q
}

// of is coding's q-value: as given, else that of "*", else 0. Identity,
// when the header names neither it nor "*", is acceptable but ranks below
// every coding the header does accept.
func (q acceptEncoding) of(coding string) float64 {
	if v, ok := q[coding]; ok {
		return v
	}
	if v, ok := q["*"]; ok {
		return v
	}
	if coding == "identity" {
		return identityLast
	}
	return 0
}

const identityLast = 1e-9

// etagMatches reports whether an If-None-Match header names etag (weak
// comparison, as RFC 9110 asks for If-None-Match) or is "*".
func etagMatches(header, etag string) bool {
	s := header
	for {
		s = strings.TrimLeft(s, " \t,")
		switch {
		case s == "":
			return false
		case s[0] == '*':
			return true
		}
		s = strings.TrimPrefix(s, "W/")
		if s == "" || s[0] != '"' {
			return false
		}
		end := strings.IndexByte(s[1:], '"')
		if end < 0 {
			return false
		}
		if s[:end+2] == etag {
			return true
		}
		s = s[end+2:]
	}
}
