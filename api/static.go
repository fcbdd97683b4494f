package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
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

// staticFile is one built file, read once when the server starts.
type staticFile struct {
	name         string
	contentType  string
	cacheControl string
	// plain is the file itself; coded[i] is its staticCodings[i] form,
	// nil when the build wrote none (small or binary files).
	plain staticBody
	coded [len(staticCodings)]*staticBody
}

type staticBody struct {
	data []byte
	etag string // strong, quoted; differs between a file's forms
}

// staticSite is the built dashboard: its files by path ("index.html",
// "field/sw.js") and its folders ("field"). The .br and .gz siblings are
// part of their file, not files of their own.
type staticSite struct {
	files map[string]*staticFile
	dirs  map[string]bool
}

// newStaticSite reads every file of fsys and works out its headers.
func newStaticSite(fsys fs.FS) (*staticSite, error) {
	site := &staticSite{files: map[string]*staticFile{}, dirs: map[string]bool{}}
	if fsys == nil {
		return site, nil
	}
	all := map[string][]byte{}
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
		data, err := fs.ReadFile(fsys, name)
		all[name] = data
		return err
	})
	for name, data := range all {
		if isCodedSibling(name, all) || name == ".gitkeep" {
			continue
		}
		sum := sha256.Sum256(data)
		tag := hex.EncodeToString(sum[:12])
		f := &staticFile{name: name, contentType: staticType(name, data), cacheControl: cacheRevalidate,
			plain: staticBody{data: data, etag: `"` + tag + `"`}}
		if assets.Hashed(name) {
			f.cacheControl = cacheImmutable
		}
		for i, c := range staticCodings {
			if coded, ok := all[name+c.suffix]; ok {
				f.coded[i] = &staticBody{data: coded, etag: `"` + tag + "-" + c.suffix[1:] + `"`}
			}
		}
		site.files[name] = f
	}
	return site, err
}

// isCodedSibling reports whether name is the .br or .gz form of another file.
func isCodedSibling(name string, all map[string][]byte) bool {
	for _, c := range staticCodings {
		if plain, ok := strings.CutSuffix(name, c.suffix); ok {
			if _, ok := all[plain]; ok {
				return true
			}
		}
	}
	return false
}

func staticType(name string, data []byte) string {
	ext := path.Ext(name)
	if t, ok := staticTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return http.DetectContentType(data)
}

// noRoute returns the handler for requests no route takes: JSON 404s under
// /api, /ogc and /tiles and for methods other than GET and HEAD, the built
// dashboard otherwise. Its files are read here, once.
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
	h := w.Header()
	h.Set("Cache-Control", f.cacheControl)
	if f.coded != [len(staticCodings)]*staticBody{} {
		h.Add("Vary", "Accept-Encoding")
	}
	// A range is of the plain file: ranges of a compressed form would not
	// survive a client asking again with other codings.
	ranged := r.Header.Get("Range") != ""
	body, coding := &f.plain, ""
	if !ranged {
		body, coding = f.negotiate(r.Header.Get("Accept-Encoding"))
	}
	h.Set("ETag", body.etag)
	if etagMatches(r.Header.Get("If-None-Match"), body.etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	h.Set("Content-Type", f.contentType)
	if ranged {
		http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(body.data))
		return nil
	}
	if coding != "" {
		h.Set("Content-Encoding", coding)
	} else {
		h.Set("Accept-Ranges", "bytes")
	}
	h.Set("Content-Length", strconv.Itoa(len(body.data)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body.data)
	}
	return nil
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
