package ogc

// OGC API Features Part 4 (OGC 20-002: create, replace, update and delete)
// for the grids collection, so that QGIS edits grids. Every write goes
// through the same domain paths as /api/v1: a create is an import of one
// feature (validity, codes, parents, topology), a replace or an update is
// a versioned boundary change (geo.Store.Replace: If-Match, topology,
// cameras, cases and scopes following) and a delete is geo.Store's, under
// If-Match. ETags are geo.ETag's, the same as the REST API's and the read
// side's. ?dry_run=true on PUT and PATCH answers the change's preview (an
// extension, declared in /ogc/api).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/twpayne/go-geom"

	"gridwatch"
	"gridwatch/api/httpapi"
	"gridwatch/auth"
	"gridwatch/geo"
)

// ogcWriteConformance are the Part 4 conformance classes implemented for
// the grids collection.
var ogcWriteConformance = []string{
	"http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
	"http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
	"http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/features",
}

// ogcGridWriteRoutes are the write routes of the grids collection; the
// other collections are read only (their items paths answer 405 to writes).
func (s *Service) ogcGridWriteRoutes() []httpapi.Route {
	const items = "/ogc/collections/grids/items"
	return []httpapi.Route{
		httpapi.R("POST", items, auth.GridsWrite, s.ogcCreateGrid),
		httpapi.R("PUT", items+"/:fid", auth.GridsWrite, s.ogcChangeGrid(true)),
		httpapi.R("PATCH", items+"/:fid", auth.GridsWrite, s.ogcChangeGrid(false)),
		httpapi.R("DELETE", items+"/:fid", auth.GridsWrite, s.ogcDeleteGrid),
	}
}

// ogcReadOnlyProperties are the properties the read side adds to a grid
// from its fields; clients send them back unchanged (QGIS sends every
// attribute of the layer), and writes ignore them. parent_id is compared
// with the grid's parent instead (see gridEditOf).
var ogcReadOnlyProperties = []string{"area_m2", "version", "created_at", "updated_at"}

// ogcFID reads the feature id of the path; one that is not a positive
// integer names no grid.
func ogcFID(c *gin.Context) (int64, error) {
	fid := c.Param("fid")
	id, err := strconv.ParseInt(fid, 10, 64)
	if err != nil || id <= 0 {
		return 0, gridwatch.Errorf(gridwatch.ENotFound, "feature %q not found in grids", fid)
	}
	return id, nil
}

// ogcBodyType refuses a request body that is not JSON: GeoJSON, JSON, or
// (for PATCH) a JSON merge patch. A missing Content-Type is taken as
// GeoJSON.
func ogcBodyType(c *gin.Context) error {
	ct := c.GetHeader("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil {
		switch mt {
		case mediaGeoJSON, mediaJSON, "application/merge-patch+json":
			return nil
		}
	}
	return httpapi.Errorf(http.StatusUnsupportedMediaType, "unsupported_media_type",
		"Content-Type %q is not accepted: send the feature as %s", ct, mediaGeoJSON)
}

// ogcContentCRS reads the CRS of the body's coordinates from the
// Content-Crs header (Part 2), as <URI> or URI; none is CRS84.
func ogcContentCRS(c *gin.Context) (ogcCRS, error) {
	h := strings.TrimSpace(c.GetHeader("Content-Crs"))
	h = strings.TrimSuffix(strings.TrimPrefix(h, "<"), ">")
	crs, err := parseOGCCRS("Content-Crs", h)
	if err != nil {
		return crs, gridwatch.Errorf(gridwatch.EInvalid, "header Content-Crs %q: not a coordinate reference system offered here; use one of %s",
			c.GetHeader("Content-Crs"), strings.Join(ogcCRSURIs(), ", ")).
			WithDetails(map[string]any{"header": "Content-Crs", "value": c.GetHeader("Content-Crs"), "allowed": ogcCRSURIs()})
	}
	return crs, nil
}

// toCRS84 rewrites the coordinates of a GeoJSON geometry given in crs as
// CRS84 longitude and latitude. What is not a geometry it leaves as it is,
// for the parser to name.
func toCRS84(raw json.RawMessage, crs ogcCRS) json.RawMessage {
	if crs.URI == crs84URI || len(raw) == 0 {
		return raw
	}
	var g map[string]any
	if json.Unmarshal(raw, &g) != nil || g == nil {
		return raw
	}
	var walk func(v any) any
	walk = func(v any) any {
		arr, ok := v.([]any)
		if !ok {
			return v
		}
		if len(arr) >= 2 {
			x, okx := arr[0].(float64)
			y, oky := arr[1].(float64)
			if okx && oky {
				out := append([]any{}, arr...)
				out[0], out[1] = crs.in(x, y)
				return out
			}
		}
		out := make([]any, len(arr))
		for i, e := range arr {
			out[i] = walk(e)
		}
		return out
	}
	g["coordinates"] = walk(g["coordinates"])
	b, err := json.Marshal(g)
	if err != nil {
		return raw
	}
	return b
}

// ogcBodyObject reads the body as a JSON object of members, keeping each
// member's text; a syntax error says where.
func ogcBodyObject(body []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	err := json.Unmarshal(body, &m)
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return nil, gridwatch.Errorf(gridwatch.EInvalidJSON, "the body is not valid JSON: %s at byte %d", se.Error(), se.Offset).
			WithDetails(map[string]any{"offset": se.Offset})
	case err != nil || m == nil:
		return nil, gridwatch.Errorf(gridwatch.EInvalidGeoJSON, `the body must be a GeoJSON Feature: {"type":"Feature","geometry":{…},"properties":{…}}`)
	}
	return m, nil
}

// ogcCreateGrid answers POST /ogc/collections/grids/items: the feature is
// imported as one new grid, as POST /api/v1/grids does.
func (s *Service) ogcCreateGrid(c *gin.Context) error {
	f, err := s.ogcNewGrid(c)
	if err != nil {
		return err
	}
	ctx := c.Request.Context()
	res, err := s.deps.Grids.Import(ctx, []geo.ImportFeature{f}, geo.ImportOptions{})
	if err != nil {
		return err
	}
	g, err := s.deps.Grids.Get(ctx, res.Grids[0].ID)
	if err != nil {
		return err
	}
	origin := httpapi.Origin(c)
	href := origin + "/ogc/collections/grids/items/" + strconv.FormatInt(g.ID, 10)
	feature := gridFeature(g, ogcCRSs[0])
	feature.Links = []ogcLink{
		{Href: href, Rel: "self", Type: mediaGeoJSON, Title: "This feature"},
		{Href: origin + "/ogc/collections/grids", Rel: "collection", Type: mediaJSON, Title: "Grids"},
	}
	c.Header("Location", href)
	c.Header("ETag", feature.etag)
	c.Header("Content-Crs", "<"+crs84URI+">")
	return s.ogcWrite(c, http.StatusCreated, mediaGeoJSON, feature)
}

// ogcNewGrid reads the feature of a create: checked by geo.ParseFeature,
// its geometry converted from Content-Crs, the read-only properties
// dropped, and its parent in the caller's scope.
func (s *Service) ogcNewGrid(c *gin.Context) (geo.ImportFeature, error) {
	var f geo.ImportFeature
	if err := ogcOnlyParams(c, "f"); err != nil {
		return f, err
	}
	if err := ogcBodyType(c); err != nil {
		return f, err
	}
	crs, err := ogcContentCRS(c)
	if err != nil {
		return f, err
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return f, err
	}
	if crs.URI != crs84URI {
		// Rewritten only when it is an object; otherwise the parser names
		// what is wrong with the body as it came.
		if m, err := ogcBodyObject(body); err == nil {
			if g, ok := m["geometry"]; ok {
				m["geometry"] = toCRS84(g, crs)
				if b, err := json.Marshal(m); err == nil {
					body = b
				}
			}
		}
	}
	if f, err = geo.ParseFeature(body, geo.ParseOptions{CRS: geo.CRSWGS84, MaxVertices: s.deps.MaxVertices}); err != nil {
		return f, err
	}
	for _, k := range append(ogcReadOnlyProperties, "parent_id") {
		delete(f.Properties, k)
	}
	p := httpapi.Principal(c)
	if !p.Scoped() {
		return f, nil
	}
	if f.ParentCode == "" {
		return f, gridwatch.Errorf(gridwatch.EForbidden, "a %s has no parent, and you may create grids only inside your scope", f.Level).
			WithDetails(map[string]any{"property": "level"})
	}
	parents, _, err := s.deps.Grids.List(c.Request.Context(), geo.Filter{Code: f.ParentCode, Scope: p.ScopeIDs(), Limit: 1})
	if err != nil {
		return f, err
	}
	if len(parents) == 0 {
		return f, gridwatch.Errorf(gridwatch.ENotFound, "properties.parent_code: grid %s not found in your scope", f.ParentCode).
			WithDetails(map[string]any{"property": "parent_code", "value": f.ParentCode})
	}
	return f, nil
}

// ogcChangeGrid answers PUT (replace, whole feature) and PATCH (update,
// a partial feature) of a grid: a new boundary and a new name make one new
// version; the code, level and parent cannot change here.
func (s *Service) ogcChangeGrid(replace bool) httpapi.Handler {
	return func(c *gin.Context) error {
		id, err := ogcFID(c)
		if err != nil {
			return err
		}
		edit, opts, err := s.ogcGridEdit(c, id, replace)
		if err != nil {
			return err
		}
		rep, err := s.deps.Grids.Replace(c.Request.Context(), id, edit.geometry, edit.name, opts)
		return httpapi.ChangeResult(c, id, rep, err)
	}
}

// gridEdit is what a PUT or PATCH changes: nil and "" keep the boundary
// and the name.
type gridEdit struct {
	geometry *geom.MultiPolygon
	name     string
}

// ogcGridEdit reads a PUT or PATCH of grid id: its parameters, If-Match,
// scope and body.
func (s *Service) ogcGridEdit(c *gin.Context, id int64, replace bool) (gridEdit, geo.ChangeOptions, error) {
	var edit gridEdit
	if err := ogcOnlyParams(c, "f", "dry_run"); err != nil {
		return edit, geo.ChangeOptions{}, err
	}
	if err := ogcBodyType(c); err != nil {
		return edit, geo.ChangeOptions{}, err
	}
	lenient := s.ogcLenient(c)
	if strings.TrimSpace(c.GetHeader("If-Match")) == "*" {
		// "*" matches any version: the change must name the one edited,
		// unless the server lets the last writer win.
		c.Request.Header.Del("If-Match")
	}
	opts, err := httpapi.ChangeOptions(c, s.deps.Grids, id)
	if err != nil {
		return edit, opts, err
	}
	crs, err := ogcContentCRS(c)
	if err != nil {
		return edit, opts, err
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return edit, opts, err
	}
	g, err := s.deps.Grids.Get(c.Request.Context(), id)
	if err != nil {
		return edit, opts, err
	}
	if lenient && opts.IfMatch <= 0 {
		opts.IfMatch = g.Version
	}
	edit, err = s.gridEditOf(g, body, crs, replace)
	return edit, opts, err
}

// ogcLenient says whether an OGC write without If-Match (or with "*")
// applies to the grid's current version, as QGIS needs: it sends none.
func (s *Service) ogcLenient(c *gin.Context) bool {
	h := strings.TrimSpace(c.GetHeader("If-Match"))
	return !s.deps.OGCRequireIfMatch && (h == "" || h == "*")
}

// gridEditOf compares the body with grid g. A PUT must carry the whole
// feature (geometry and name); a PATCH carries what changes. Read-only
// properties are ignored; code, level and parent, and the properties kept
// from the import, may only be sent unchanged.
func (s *Service) gridEditOf(g *geo.Grid, body []byte, crs ogcCRS, replace bool) (gridEdit, error) {
	var edit gridEdit
	m, err := ogcBodyObject(body)
	if err != nil {
		return edit, err
	}
	if t, ok := m["type"]; ok || replace {
		var typ string
		if json.Unmarshal(t, &typ) != nil || typ != "Feature" {
			return edit, gridwatch.Errorf(gridwatch.EInvalidGeoJSON, `type: the body must be a GeoJSON Feature ("type":"Feature")`).
				WithDetails(map[string]any{"field": "type"})
		}
	}
	if raw, ok := m["geometry"]; ok || replace {
		if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
			hint := ""
			if !replace {
				hint = "; leave geometry out of a PATCH to keep the boundary"
			}
			return edit, gridwatch.Errorf(gridwatch.EInvalidGeoJSON, "geometry: a grid needs a boundary (a Polygon or MultiPolygon)%s", hint).
				WithDetails(map[string]any{"field": "geometry"})
		}
		mp, err := geo.ParseGeometry(toCRS84(raw, crs), geo.ParseOptions{CRS: geo.CRSWGS84, MaxVertices: s.deps.MaxVertices})
		if err != nil {
			return edit, err
		}
		if !sameBoundary(mp, g.Geometry) {
			edit.geometry = mp
		}
	}
	raw, ok := m["properties"]
	if !ok || string(bytes.TrimSpace(raw)) == "null" {
		if replace {
			return edit, gridwatch.Errorf(gridwatch.EInvalid, "properties: a replacement carries the grid's properties (at least name)").
				WithDetails(map[string]any{"field": "properties"})
		}
		return edit, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var props map[string]any
	if err := dec.Decode(&props); err != nil || props == nil {
		return edit, gridwatch.Errorf(gridwatch.EInvalidGeoJSON, "properties: must be a JSON object").WithDetails(map[string]any{"field": "properties"})
	}
	if _, has := props["name"]; replace && !has {
		return edit, gridwatch.Errorf(gridwatch.EInvalid, "properties.name: a replacement carries the grid's name").
			WithDetails(map[string]any{"property": "name"})
	}
	var parentID any
	if g.ParentID != nil {
		parentID = *g.ParentID
	}
	fixed := map[string]any{"code": g.Code, "level": string(g.Level), "parent_code": nullIfEmpty(g.ParentCode), "parent_id": parentID}
	for k, v := range props {
		_, isFixed := fixed[k]
		switch {
		case k == "name":
			name, _ := v.(string)
			if name = strings.TrimSpace(name); name == "" {
				return edit, gridwatch.Errorf(gridwatch.EInvalid, "properties.name: a grid's name must be a non-empty string").
					WithDetails(map[string]any{"property": "name"})
			}
			if name != g.Name {
				edit.name = name
			}
		case contains(ogcReadOnlyProperties, k):
			// Derived from the grid; what the client sends back is ignored.
		case isFixed:
			if !sameValue(v, fixed[k]) {
				return edit, gridwatch.Errorf(gridwatch.EInvalid, "properties.%s: grid %s's %s cannot change here (it is %s, the body says %s); "+
					"create a new grid, or split or merge, to change the hierarchy", k, g.Code, k, jsonText(fixed[k]), jsonText(v)).
					WithDetails(map[string]any{"property": k, "current": fixed[k], "value": v})
			}
		default:
			if !sameValue(v, g.Properties[k]) {
				return edit, gridwatch.Errorf(gridwatch.EInvalid, "properties.%s: grid %s's other properties are kept as imported and cannot change here (it is %s, the body says %s)",
					k, g.Code, jsonText(g.Properties[k]), jsonText(v)).
					WithDetails(map[string]any{"property": k, "current": g.Properties[k], "value": v})
			}
		}
	}
	return edit, nil
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// sameValue compares two JSON values as JSON: numbers by value (a code
// sent as a number equals its string only if the texts match), null equal
// to absent.
func sameValue(a, b any) bool {
	norm := func(v any) any {
		if s, ok := v.(string); ok {
			return strings.TrimSpace(s)
		}
		bs, err := json.Marshal(v)
		if err != nil {
			return v
		}
		var out any
		if json.Unmarshal(bs, &out) != nil {
			return v
		}
		return out
	}
	x, y := norm(a), norm(b)
	if xs, ok := x.(float64); ok {
		if ys, ok := y.(string); ok {
			return strconv.FormatFloat(xs, 'f', -1, 64) == ys
		}
	}
	if ys, ok := y.(float64); ok {
		if xs, ok := x.(string); ok {
			return strconv.FormatFloat(ys, 'f', -1, 64) == xs
		}
	}
	return reflect.DeepEqual(x, y)
}

func jsonText(v any) string {
	if v == nil {
		return "null"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// sameBoundary reports whether a is b as the read side writes it out (to
// 7 decimals): a client sending back the geometry it read changes nothing.
func sameBoundary(a, b *geom.MultiPolygon) bool {
	if a == nil || b == nil || a.NumPolygons() != b.NumPolygons() {
		return false
	}
	for i := range a.NumPolygons() {
		pa, pb := a.Polygon(i), b.Polygon(i)
		if pa.NumLinearRings() != pb.NumLinearRings() {
			return false
		}
		for j := range pa.NumLinearRings() {
			ra, rb := pa.LinearRing(j), pb.LinearRing(j)
			if ra.NumCoords() != rb.NumCoords() {
				return false
			}
			for k := range ra.NumCoords() {
				ca, cb := ra.Coord(k), rb.Coord(k)
				if math.Abs(ca.X()-cb.X()) > 1e-7 || math.Abs(ca.Y()-cb.Y()) > 1e-7 {
					return false
				}
			}
		}
	}
	return true
}

// ogcDeleteGrid answers DELETE of a grid: If-Match must name its current
// version; a grid with children is refused (409, with their count).
func (s *Service) ogcDeleteGrid(c *gin.Context) error {
	id, err := ogcFID(c)
	if err != nil {
		return err
	}
	if err := ogcOnlyParams(c, "f"); err != nil {
		return err
	}
	if _, err := httpapi.ScopedChain(c.Request.Context(), s.deps.Grids, httpapi.Principal(c), id); err != nil {
		return err
	}
	version := 0 // no If-Match (or "*"): the store asks for the version
	if s.ogcLenient(c) {
		g, err := s.deps.Grids.Get(c.Request.Context(), id)
		if err != nil {
			return err
		}
		version = g.Version
	} else if h := strings.TrimSpace(c.GetHeader("If-Match")); h != "" && h != "*" {
		if version = geo.ParseETag(id, h); version == 0 {
			return gridwatch.Errorf(gridwatch.EStale, "If-Match %s is not an ETag of grid %d: reload the grid and use its ETag", h, id)
		}
	}
	return httpapi.NoContent(c, s.deps.Grids.DeleteVersion(c.Request.Context(), id, version))
}
