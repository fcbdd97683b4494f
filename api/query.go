package api

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"gridwatch"
	"gridwatch/api/open311"
	"gridwatch/api/tiles"
	"gridwatch/internal/jsoncheck"
)

// Input rules: what each route accepts beside its path, checked before the
// handler runs (checkInput). A parameter a route does not read used to be
// ignored, so a typo (?gird=22) or a value Go's URL parser dropped
// (?grid=22; — a semicolon makes it skip the pair) answered as if no filter
// had been asked for: every incident instead of one grid's. Now both are a
// 400 naming the parameter.

// pageQuery are the parameters of a paged list (pageParams).
var pageQuery = []string{"limit", "cursor"}

// tokenQuery may carry the caller's token on keyParam routes (authenticate).
var tokenQuery = []string{"api_key", "token"}

// queryParams lists, for every route as "METHOD /path" exactly as in
// Server.Routes, the query parameters it reads. A route added to the table
// without an entry here fails TestEveryRouteDeclaresItsQuery, and at run
// time takes no parameters. KeyParam routes take tokenQuery as well. The
// route packages keep their entries beside their routes (tiles.Query,
// open311.Query, ogc.Query; OGC items routes add their collection's
// queryables, ogc.Service.QueryRules); queryRules gathers them all.
var queryParams = map[string][]string{
	"GET /healthz":                         nil,
	"GET /readyz":                          nil,
	"GET /metrics":                         nil,
	"GET /api/v1/meta":                     nil,
	"GET /api/v1/nodes":                    nil,
	"GET /internal/v1/recordings/:id/file": nil,
	"POST /api/v1/auth/login":              nil,
	"POST /api/v1/auth/logout":             nil,
	"GET /api/v1/me":                       nil,
	"POST /api/v1/me/password":             nil,

	"GET /api/v1/users":              nil,
	"POST /api/v1/users":             nil,
	"GET /api/v1/users/:id":          nil,
	"PATCH /api/v1/users/:id":        nil,
	"GET /api/v1/users/:id/sessions": nil,
	"DELETE /api/v1/sessions/:id":    nil,
	"GET /api/v1/tokens":             nil,
	"POST /api/v1/tokens":            nil,
	"DELETE /api/v1/tokens/:id":      nil,
	"GET /api/v1/audit":              append([]string{"actor", "action", "target_type", "target_id", "from", "to"}, pageQuery...),
	"GET /api/v1/audit/viewings":     append([]string{"camera", "actor", "kind", "from", "to"}, pageQuery...),

	"GET /api/v1/grids":                       append([]string{"level", "parent", "bbox"}, pageQuery...),
	"GET /api/v1/grids.geojson":               {"level", "parent", "bbox"},
	"POST /api/v1/grids":                      {"crs"},
	"POST /api/v1/grids/import":               {"crs", "repair"},
	"GET /api/v1/grids/:id":                   {"at", "geometry"},
	"DELETE /api/v1/grids/:id":                nil,
	"PUT /api/v1/grids/:id/geometry":          {"dry_run", "crs"},
	"POST /api/v1/grids/:id/edge":             {"dry_run", "crs"},
	"POST /api/v1/grids/:id/split":            {"dry_run", "crs"},
	"POST /api/v1/grids/:id/merge":            {"dry_run"},
	"GET /api/v1/grids/:id/versions":          {"geometry"},
	"GET /api/v1/grids/:id/versions/:version": nil,
	"GET /api/v1/locate":                      {"lon", "lat", "crs"},
	"GET /api/v1/grids/:id/staff":             nil,
	"POST /api/v1/grids/:id/staff":            nil,
	"DELETE /api/v1/staff/:id":                nil,

	"GET /api/v1/categories":                             nil,
	"POST /api/v1/incidents":                             {"crs"},
	"POST /api/v1/incidents/bulk":                        {"crs"},
	"GET /api/v1/incidents":                              append([]string{"grid", "status", "category", "from", "to", "bbox", "overdue", "unassigned", "ids", "assignee", "component"}, pageQuery...),
	"GET /api/v1/incidents/:id":                          nil,
	"POST /api/v1/incidents/:id/transitions":             nil,
	"POST /api/v1/incidents/:id/attachments":             {"filename"},
	"GET /api/v1/incidents/:id/attachments/:aid":         nil,
	"PUT /api/v1/incidents/:id/attachments/uploads/:key": {"filename"},
	"GET /api/v1/incidents/:id/attachments/uploads/:key": nil,
	"GET /api/v1/stats/incidents":                        {"group", "tz", "from", "to", "format"},

	"POST /api/v1/patrols":            nil,
	"GET /api/v1/patrols":             append([]string{"active", "user_id", "day", "tz", "grid"}, pageQuery...),
	"GET /api/v1/patrols/:id":         nil,
	"POST /api/v1/patrols/:id/points": {"crs"},
	"POST /api/v1/patrols/:id/end":    nil,
	"GET /api/v1/patrols/:id/track":   nil,
	"GET /api/v1/stats/patrols":       {"month", "tz"},

	"GET /api/v1/cameras":                        append([]string{"grid", "bbox", "status"}, pageQuery...),
	"POST /api/v1/cameras":                       {"crs"},
	"GET /api/v1/cameras/:id":                    nil,
	"PATCH /api/v1/cameras/:id":                  {"crs"},
	"DELETE /api/v1/cameras/:id":                 nil,
	"GET /api/v1/grids/:id/cameras":              append([]string{"bbox", "status"}, pageQuery...),
	"GET /api/v1/cameras/:id/live":               {"stream", "audio"},
	"GET /api/v1/cameras/:id/hls/:file":          {"stream"},
	"POST /api/v1/cameras/:id/whep":              {"stream"},
	"GET /api/v1/cameras/:id/snapshot.jpg":       {"stream"},
	"DELETE /api/v1/cameras/:id/whep/:session":   nil,
	"POST /api/v1/onvif/probe":                   nil,
	"GET /api/v1/onvif/discover":                 nil,
	"GET /api/v1/cameras/:id/ptz":                nil,
	"POST /api/v1/cameras/:id/ptz":               nil,
	"GET /api/v1/cameras/:id/recordings":         {"from", "to"},
	"GET /api/v1/cameras/:id/device-recordings":  {"from", "to"},
	"POST /api/v1/cameras/:id/device-playback":   nil,
	"POST /api/v1/cameras/:id/device-fetch":      nil,
	"GET /api/v1/cameras/:id/device-fetch":       nil,
	"GET /api/v1/device-playbacks/:pb":           nil,
	"POST /api/v1/device-playbacks/:pb/control":  nil,
	"DELETE /api/v1/device-playbacks/:pb":        nil,
	"GET /api/v1/device-playbacks/:pb/live":      {"audio"},
	"GET /api/v1/gb28181/devices":                nil,
	"GET /api/v1/gb28181/devices/:id":            nil,
	"PUT /api/v1/gb28181/devices/:id":            nil,
	"POST /api/v1/gb28181/devices/:id/catalog":   nil,
	"GET /api/v1/gb28181/devices/:id/status":     nil,
	"POST /api/v1/gb28181/channels/:id/place":    nil,
	"GET /api/v1/recording/status":               nil,
	"GET /api/v1/cameras/:id/playback.m3u8":      {"from", "to"},
	"GET /api/v1/recordings/:id/file.mp4":        nil,
	"POST /api/v1/exports":                       nil,
	"GET /api/v1/exports/:id":                    nil,
	"GET /api/v1/exports/:id/file":               nil,
	"GET /api/v1/exports/:id/verify":             nil,
	"DELETE /api/v1/exports/:id":                 nil,
	"PUT /api/v1/exports/:id/hold":               nil,
	"GET /api/v1/tags":                           {"camera", "grid", "label", "from", "to"},
	"POST /api/v1/tags":                          nil,
	"PATCH /api/v1/tags/:id":                     nil,
	"DELETE /api/v1/tags/:id":                    nil,
	"GET /api/v1/incidents/:id/footage":          nil,
	"POST /api/v1/incidents/:id/footage":         nil,
	"DELETE /api/v1/incidents/:id/footage/:link": nil,
	"GET /api/v1/events":                         {"last_event_id"},
}

// bodyKind is how checkInput treats a route's request body.
type bodyKind int

const (
	// bodyJSON: one JSON document (the default for POST, PUT, PATCH and
	// DELETE), checked as a whole by jsoncheck.
	bodyJSON bodyKind = iota
	// bodyRaw is not JSON (photos), or is checked where it is read:
	// NDJSON line by line (incident.ParseNew names the line and field).
	bodyRaw
	// bodyForm is a form (Open311) or, when so labelled, JSON.
	bodyForm
	// bodyTable is an import: CSV (text/csv or ?format=csv), checked as
	// UTF-8 text without NUL, or else JSON, checked as a whole.
	bodyTable
)

// bodyKinds are the routes whose body is not one JSON document.
var bodyKinds = map[string]bodyKind{
	"POST /api/v1/incidents/bulk":            bodyRaw,
	"POST /api/v1/incidents/:id/attachments": bodyRaw,
	"POST /api/v1/cameras/:id/whep":          bodyRaw, // an SDP offer, read by pion
}

// queryRules is queryParams with the route packages' entries.
func (s *Server) queryRules() map[string][]string {
	rules := make(map[string][]string, len(queryParams)+16)
	for _, m := range []map[string][]string{queryParams, tiles.Query, open311.Query} {
		maps.Copy(rules, m)
	}
	s.ogc.QueryRules(rules)
	return rules
}

// checkInput enforces a route's input rules after authorisation: its query
// parameters (queryParams, strictly parsed: a pair Go's parser would drop
// is an error, not a missing filter) and its body's text (jsoncheck: no
// NUL, only UTF-8, nothing after the document; a form's values likewise).
// The body is read once here, under the route's size limit, and handed on.
func (s *Server) checkInput(r Route, rules map[string][]string) gin.HandlerFunc {
	key := r.Method + " " + r.Path
	allowed := slices.Clone(rules[key])
	if r.APIKey {
		allowed = append(allowed, tokenQuery...)
	}
	kind := bodyKinds[key]
	if slices.Contains(open311.Bodies, key) {
		kind = bodyForm
	}
	fail := r.Fail()
	return func(c *gin.Context) {
		if err := checkQuery(c.Request.URL.RawQuery, allowed); err != nil {
			fail(c, s.log, err)
			return
		}
		if err := checkBody(c, kind); err != nil {
			fail(c, s.log, err)
			return
		}
		c.Next()
	}
}

// checkQuery parses a raw query strictly and refuses a parameter not in
// allowed, one Go's parser would drop (a semicolon, a bad %-escape), and a
// name or value that is not UTF-8 text without NUL.
func checkQuery(raw string, allowed []string) error {
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		rawName, rawValue, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(rawName)
		if err != nil {
			name = rawName
		}
		shown := strings.ToValidUTF8(strings.ReplaceAll(name, "\x00", `\u0000`), "\uFFFD")
		bad := func(format string, args ...any) error {
			return gridwatch.Errorf(gridwatch.EInvalid, "query parameter %q: "+format, append([]any{shown}, args...)...).
				WithDetails(map[string]any{"param": shown})
		}
		if strings.Contains(pair, ";") {
			return bad("holds a semicolon, which is not a separator here: escape it as %%3B or use &")
		}
		if err != nil {
			return bad("its name is not properly %%-escaped")
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return bad("its value is not properly %%-escaped")
		}
		if !utf8.ValidString(name) || !utf8.ValidString(value) || strings.ContainsRune(name, 0) || strings.ContainsRune(value, 0) {
			return bad("is not valid UTF-8 text (or holds a NUL)")
		}
		if !slices.Contains(allowed, name) {
			takes := "no query parameters"
			if len(allowed) > 0 {
				takes = strings.Join(allowed, ", ")
			}
			return gridwatch.Errorf(gridwatch.EInvalid, "unknown query parameter %q; this resource takes %s", shown, takes).
				WithDetails(map[string]any{"param": shown})
		}
	}
	return nil
}

// checkBody checks a request body's text by its route's kind.
func checkBody(c *gin.Context, kind bodyKind) error {
	req := c.Request
	if req.Body == nil || req.Body == http.NoBody || req.Method == http.MethodGet || req.Method == http.MethodHead {
		return nil
	}
	switch kind {
	case bodyRaw:
		return nil
	case bodyForm:
		if c.ContentType() != gin.MIMEJSON {
			return checkForm(c)
		}
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return err // over the limit: writeError answers 413
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	if kind == bodyTable && (c.ContentType() == "text/csv" || strings.EqualFold(c.Query("format"), "csv")) {
		return checkText(body)
	}
	return jsoncheck.Check(body)
}

// checkText refuses a text body (CSV) that is not UTF-8 or holds a NUL,
// naming the line.
func checkText(body []byte) error {
	line := 1
	for i := 0; i < len(body); {
		r, n := utf8.DecodeRune(body[i:])
		why := ""
		switch {
		case r == utf8.RuneError && n <= 1:
			why = "is not valid UTF-8 text (save the file as UTF-8)"
		case r == 0:
			why = "holds a NUL character"
		case r == '\n':
			line++
		}
		if why != "" {
			return gridwatch.Errorf(gridwatch.EInvalid, "line %d %s", line, why).WithDetails(map[string]any{"line": line})
		}
		i += n
	}
	return nil
}

// checkForm refuses a form value or name that is not UTF-8 text without NUL.
func checkForm(c *gin.Context) error {
	if err := c.Request.ParseMultipartForm(8 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err // 413
		}
		return gridwatch.Errorf(gridwatch.EInvalid, "the form cannot be read: send application/x-www-form-urlencoded, multipart/form-data or a JSON object")
	}
	for name, vals := range c.Request.PostForm {
		for _, v := range append(slices.Clone(vals), name) {
			why := ""
			switch {
			case strings.ContainsRune(v, 0):
				why = "holds a NUL character (\\u0000), which cannot be stored"
			case !utf8.ValidString(v):
				why = "is not valid UTF-8 text"
			default:
				continue
			}
			shown := strings.ToValidUTF8(strings.ReplaceAll(name, "\x00", `\u0000`), "\uFFFD")
			return gridwatch.Errorf(gridwatch.EInvalid, "%s: %s", shown, why).WithDetails(map[string]any{"field": shown})
		}
	}
	return nil
}
