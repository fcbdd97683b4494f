package api

// OGC API Features (read side) under /ogc: the landing page, conformance,
// the OpenAPI document, and the grids, incidents and cameras collections
// with their items, so that QGIS and GDAL load them. Standards: OGC 17-069r4
// (Part 1: Core, GeoJSON, OpenAPI 3.0) and OGC 18-058 (Part 2: coordinate
// reference systems by reference).
//
// Every route carries its collection's permission; the data comes through
// the domain packages with the caller's grid scope, as on /api/v1. The
// grids collection also takes writes (Part 4, ogc_write.go); a grid item's
// ETag is its version's (geo.ETag), the one a replace or delete sends back
// in If-Match.

import (
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/twpayne/go-geom"

	"gridwatch"
	"gridwatch/api/httpapi"
	"gridwatch/auth"
	"gridwatch/camera"
	"gridwatch/geo"
	"gridwatch/incident"
)

// Media types of OGC API Features responses.
const (
	mediaJSON       = "application/json"
	mediaGeoJSON    = "application/geo+json"
	mediaOpenAPI    = "application/vnd.oai.openapi+json;version=3.0"
	mediaJSONSchema = "application/schema+json"
)

// ogcConformance lists the conformance classes implemented and tested;
// Part 4's (ogcWriteConformance) apply to the grids collection.
var ogcConformance = append([]string{
	"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
	"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
	"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
	"http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
}, ogcWriteConformance...)

// ogcLink is a link of OGC API resources; hrefs are absolute.
type ogcLink struct {
	Href  string `json:"href"`
	Rel   string `json:"rel"`
	Type  string `json:"type,omitempty"`
	Title string `json:"title,omitempty"`
}

// ogcGeometry is a GeoJSON geometry in the requested CRS's axis order.
type ogcGeometry struct {
	Type        string `json:"type"`
	Coordinates any    `json:"coordinates"`
}

// ogcFeature is a GeoJSON feature; its id is the record's id.
type ogcFeature struct {
	Type       string         `json:"type"`
	ID         int64          `json:"id"`
	Geometry   *ogcGeometry   `json:"geometry"`
	Properties map[string]any `json:"properties"`
	Links      []ogcLink      `json:"links,omitempty"`
	etag       string
}

// ogcQueryable is a property an items request may filter on by equality.
type ogcQueryable struct {
	Name, Type, Description string
	Enum                    []string
	// Multi: several values may be given, comma-separated (any matches).
	Multi bool
}

// ogcPage is one page of items.
type ogcPage struct {
	features []ogcFeature
	next     int64
	matched  int64
}

// ogcCollection is one collection: its description and how its features
// are read.
type ogcCollection struct {
	id, title, description string
	perm                   auth.Permission
	queryables             []ogcQueryable
	list                   func(c *gin.Context, q ogcQuery) (ogcPage, error)
	get                    func(c *gin.Context, id int64, crs ogcCRS) (ogcFeature, error)
	extent                 func(c *gin.Context) (*geo.Extent, error)
}

func (col *ogcCollection) queryableNames() []string {
	out := make([]string, len(col.queryables))
	for i, q := range col.queryables {
		out[i] = q.Name
	}
	return out
}

// ogcCollections are the collections offered, in the order listed.
func (s *Server) ogcCollections() []*ogcCollection {
	return []*ogcCollection{
		{
			id: "grids", title: "Grids", perm: auth.GridsRead,
			description: "The grid hierarchy (district, street, community, grid) with each grid's current boundary; datetime selects on updated_at.",
			queryables: []ogcQueryable{
				{Name: "level", Type: "string", Enum: []string{"district", "street", "community", "grid"}, Description: "The grid's level."},
				{Name: "code", Type: "string", Description: "The grid's code (GB/T 2260 district code and three digits per level below)."},
				{Name: "parent_id", Type: "integer", Description: "The id of the grid's parent."},
			},
			list: s.ogcGridItems, get: s.ogcGridItem, extent: s.ogcGridExtent,
		},
		{
			id: "incidents", title: "Incidents", perm: auth.IncidentsRead,
			description: "Incidents (事件) at their reported location, newest first; datetime selects on reported_at.",
			queryables: []ogcQueryable{
				{Name: "status", Type: "string", Enum: incidentStatuses(), Multi: true, Description: "The workflow status; several may be given, comma-separated."},
				{Name: "category", Type: "string", Description: "The category code: a 4-digit subclass, or a 2-digit class for all its subclasses."},
				{Name: "priority", Type: "string", Enum: incident.Priorities(), Description: "The priority."},
				{Name: "grid_id", Type: "integer", Description: "The id of the grid the incident is assigned to."},
			},
			list: s.ogcIncidentItems, get: s.ogcIncidentItem, extent: s.ogcIncidentExtent,
		},
		{
			id: "cameras", title: "Cameras", perm: auth.CamerasRead,
			description: "Cameras at their location (stream URLs without credentials); datetime selects on updated_at.",
			queryables: []ogcQueryable{
				{Name: "status", Type: "string", Enum: []string{"online", "connecting", "offline"}, Description: "The camera's stream status."},
				{Name: "grid_id", Type: "integer", Description: "The id of the grid the camera stands in."},
				{Name: "code", Type: "string", Description: "The camera's code."},
			},
			list: s.ogcCameraItems, get: s.ogcCameraItem, extent: s.ogcCameraExtent,
		},
	}
}

func incidentStatuses() []string {
	var out []string
	for _, st := range incident.Statuses() {
		out = append(out, string(st))
	}
	return out
}

// ogcRoutes serves OGC API Features under /ogc. The collection routes
// carry their collection's permission; the catch-all ones answer 404 for
// collections that do not exist. All take HTTP Basic too (QGIS 3.22).
func (s *Server) ogcRoutes() []Route {
	routes := []Route{
		httpapi.R("GET", "/ogc", auth.Authenticated, s.ogcLanding),
		httpapi.R("GET", "/ogc/", auth.Authenticated, s.ogcLanding),
		httpapi.R("GET", "/ogc/conformance", auth.Authenticated, s.ogcConformanceDoc),
		httpapi.R("GET", "/ogc/api", auth.Authenticated, s.ogcAPI),
		httpapi.R("GET", "/ogc/collections", auth.Authenticated, s.ogcCollectionList),
	}
	for _, col := range s.ogcCollections() {
		base := "/ogc/collections/" + col.id
		routes = append(routes,
			httpapi.R("GET", base, col.perm, s.ogcCollectionDoc(col)),
			httpapi.R("GET", base+"/queryables", col.perm, s.ogcQueryablesDoc(col)),
			httpapi.R("GET", base+"/items", col.perm, s.ogcItems(col)),
			httpapi.R("GET", base+"/items/:fid", col.perm, s.ogcItem(col)),
		)
	}
	routes = append(routes, s.ogcGridWriteRoutes()...)
	return basicRoutes(append(routes,
		httpapi.R("GET", "/ogc/collections/:cid", auth.Authenticated, s.ogcNoCollection),
		httpapi.R("GET", "/ogc/collections/:cid/queryables", auth.Authenticated, s.ogcNoCollection),
		httpapi.R("GET", "/ogc/collections/:cid/items", auth.Authenticated, s.ogcNoCollection),
		httpapi.R("GET", "/ogc/collections/:cid/items/:fid", auth.Authenticated, s.ogcNoCollection),
	))
}

// ogcOrigin is scheme://host of the request as its client sent it: the
// Host header and the connection's TLS; X-Forwarded-Proto and
// X-Forwarded-Host count only from a configured trusted proxy.
func (s *Server) ogcOrigin(c *gin.Context) string {
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	host := c.Request.Host
	if s.fromTrustedProxy(c.Request.RemoteAddr) {
		if p := firstHeaderValue(c.GetHeader("X-Forwarded-Proto")); p == "http" || p == "https" {
			scheme = p
		}
		if h := firstHeaderValue(c.GetHeader("X-Forwarded-Host")); validHost(h) {
			host = h
		}
	}
	if !validHost(host) {
		host = "localhost"
	}
	return scheme + "://" + host
}

func firstHeaderValue(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(first)
}

// validHost accepts a host[:port] made of the characters a host name, an
// IPv4 or a bracketed IPv6 address may hold.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-.:[]_", r)) {
			return false
		}
	}
	return true
}

// fromTrustedProxy reports whether the connection comes from one of
// Deps.TrustedProxies (addresses or CIDR prefixes, as gin takes them).
func (s *Server) fromTrustedProxy(remote string) bool {
	if len(s.deps.TrustedProxies) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range s.deps.TrustedProxies {
		if pre, err := netip.ParsePrefix(p); err == nil && pre.Contains(addr) {
			return true
		}
		if a, err := netip.ParseAddr(p); err == nil && a.Unmap() == addr {
			return true
		}
	}
	return false
}

// ogcWrite answers v as JSON with the given media type.
func (s *Server) ogcWrite(c *gin.Context, status int, mediaType string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.Data(status, mediaType, b)
	return nil
}

// ogcOnlyParams refuses parameters other than allowed, and formats other
// than JSON.
func ogcOnlyParams(c *gin.Context, allowed ...string) error {
	for name := range c.Request.URL.Query() {
		if !contains(allowed, name) {
			return gridwatch.Errorf(gridwatch.EInvalid, "unknown query parameter %q; this resource takes %s", name, strings.Join(allowed, ", ")).
				WithDetails(map[string]any{"param": name})
		}
	}
	return checkFormat(c.Query("f"))
}

func (s *Server) ogcLanding(c *gin.Context) error {
	if err := ogcOnlyParams(c, "f"); err != nil {
		return err
	}
	base := s.ogcOrigin(c) + "/ogc"
	return s.ogcWrite(c, http.StatusOK, mediaJSON, gin.H{
		"title":       "Gridwatch",
		"description": "Grids, incidents and cameras of the city grid-governance service, as OGC API Features.",
		"links": []ogcLink{
			{Href: base, Rel: "self", Type: mediaJSON, Title: "This document"},
			{Href: base + "/api", Rel: "service-desc", Type: mediaOpenAPI, Title: "The API definition (OpenAPI 3.0)"},
			{Href: base + "/conformance", Rel: "conformance", Type: mediaJSON, Title: "Conformance classes implemented"},
			{Href: base + "/collections", Rel: "data", Type: mediaJSON, Title: "The collections"},
		},
	})
}

func (s *Server) ogcConformanceDoc(c *gin.Context) error {
	if err := ogcOnlyParams(c, "f"); err != nil {
		return err
	}
	return s.ogcWrite(c, http.StatusOK, mediaJSON, gin.H{"conformsTo": ogcConformance})
}

func (s *Server) ogcCollectionList(c *gin.Context) error {
	if err := ogcOnlyParams(c, "f"); err != nil {
		return err
	}
	base := s.ogcOrigin(c) + "/ogc"
	p := httpapi.Principal(c)
	cols := []gin.H{}
	for _, col := range s.ogcCollections() {
		if !p.Can(col.perm) {
			continue
		}
		doc, err := s.ogcCollectionJSON(c, col, base)
		if err != nil {
			return err
		}
		cols = append(cols, doc)
	}
	return s.ogcWrite(c, http.StatusOK, mediaJSON, gin.H{
		"links": []ogcLink{{Href: base + "/collections", Rel: "self", Type: mediaJSON}},
		// Part 2: the CRSs every collection offers.
		"crs":         ogcCRSURIs(),
		"collections": cols,
	})
}

func (s *Server) ogcCollectionDoc(col *ogcCollection) httpapi.Handler {
	return func(c *gin.Context) error {
		if err := ogcOnlyParams(c, "f"); err != nil {
			return err
		}
		doc, err := s.ogcCollectionJSON(c, col, s.ogcOrigin(c)+"/ogc")
		if err != nil {
			return err
		}
		return s.ogcWrite(c, http.StatusOK, mediaJSON, doc)
	}
}

// ogcCollectionJSON describes col as the caller sees it: the extent is of
// the features in their scope.
func (s *Server) ogcCollectionJSON(c *gin.Context, col *ogcCollection, base string) (gin.H, error) {
	ext, err := col.extent(c)
	if err != nil {
		return nil, err
	}
	href := base + "/collections/" + col.id
	extent := gin.H{}
	if ext.BBox != nil {
		b := ext.BBox
		extent["spatial"] = gin.H{"bbox": [][4]float64{{round7(b.MinLon), round7(b.MinLat), round7(b.MaxLon), round7(b.MaxLat)}}, "crs": crs84URI}
	}
	if ext.From != nil && ext.To != nil {
		extent["temporal"] = gin.H{
			"interval": [][2]string{{ext.From.UTC().Format(time.RFC3339), ext.To.UTC().Format(time.RFC3339)}},
			"trs":      "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
		}
	}
	doc := gin.H{
		"id":          col.id,
		"title":       col.title,
		"description": col.description,
		"itemType":    "feature",
		"crs":         ogcCRSURIs(),
		"storageCrs":  crs84URI,
		"links": []ogcLink{
			{Href: href, Rel: "self", Type: mediaJSON, Title: col.title},
			{Href: href + "/items", Rel: "items", Type: mediaGeoJSON, Title: col.title + " as GeoJSON"},
			{Href: href + "/queryables", Rel: "http://www.opengis.net/def/rel/ogc/1.0/queryables", Type: mediaJSONSchema, Title: "Properties items may be filtered on"},
		},
	}
	if len(extent) > 0 {
		doc["extent"] = extent
	}
	return doc, nil
}

func (s *Server) ogcQueryablesDoc(col *ogcCollection) httpapi.Handler {
	return func(c *gin.Context) error {
		if err := ogcOnlyParams(c, "f"); err != nil {
			return err
		}
		props := gin.H{}
		for _, q := range col.queryables {
			p := gin.H{"type": q.Type, "description": q.Description}
			if len(q.Enum) > 0 {
				p["enum"] = q.Enum
			}
			props[q.Name] = p
		}
		return s.ogcWrite(c, http.StatusOK, mediaJSONSchema, gin.H{
			"$schema":              "https://json-schema.org/draft/2020-12/schema",
			"$id":                  s.ogcOrigin(c) + "/ogc/collections/" + col.id + "/queryables",
			"type":                 "object",
			"title":                col.title,
			"properties":           props,
			"additionalProperties": false,
		})
	}
}

func (s *Server) ogcItems(col *ogcCollection) httpapi.Handler {
	return func(c *gin.Context) error {
		q, err := parseOGCQuery(c.Request.URL.Query(), col.queryableNames())
		if err != nil {
			return err
		}
		q.collectionID = col.id
		page, err := col.list(c, q)
		if err != nil {
			return err
		}
		origin := s.ogcOrigin(c)
		path := "/ogc/collections/" + col.id + "/items"
		self := origin + path
		if raw := c.Request.URL.RawQuery; raw != "" {
			self += "?" + raw
		}
		links := []ogcLink{
			{Href: self, Rel: "self", Type: mediaGeoJSON, Title: "This page"},
			{Href: origin + "/ogc/collections/" + col.id, Rel: "collection", Type: mediaJSON, Title: col.title},
		}
		if page.next != 0 {
			v := url.Values{}
			for k, vals := range q.values {
				v[k] = vals
			}
			v.Set("cursor", strconv.FormatInt(page.next, 10))
			links = append(links, ogcLink{Href: origin + path + "?" + v.Encode(), Rel: "next", Type: mediaGeoJSON, Title: "The next page"})
		}
		c.Header("Content-Crs", "<"+q.crs.URI+">")
		return s.ogcWrite(c, http.StatusOK, mediaGeoJSON, gin.H{
			"type":           "FeatureCollection",
			"features":       page.features,
			"numberMatched":  page.matched,
			"numberReturned": len(page.features),
			"timeStamp":      time.Now().UTC().Format(time.RFC3339),
			"links":          links,
		})
	}
}

func (s *Server) ogcItem(col *ogcCollection) httpapi.Handler {
	return func(c *gin.Context) error {
		if err := ogcOnlyParams(c, "f", "crs"); err != nil {
			return err
		}
		crs, err := parseOGCCRS("crs", c.Query("crs"))
		if err != nil {
			return err
		}
		fid := c.Param("fid")
		id, err := strconv.ParseInt(fid, 10, 64)
		if err != nil || id <= 0 {
			return gridwatch.Errorf(gridwatch.ENotFound, "feature %q not found in %s", fid, col.id)
		}
		f, err := col.get(c, id, crs)
		if err != nil {
			return err
		}
		origin := s.ogcOrigin(c)
		self := origin + c.Request.URL.Path
		if raw := c.Request.URL.RawQuery; raw != "" {
			self += "?" + raw
		}
		f.Links = []ogcLink{
			{Href: self, Rel: "self", Type: mediaGeoJSON, Title: "This feature"},
			{Href: origin + "/ogc/collections/" + col.id, Rel: "collection", Type: mediaJSON, Title: col.title},
		}
		c.Header("Content-Crs", "<"+crs.URI+">")
		if f.etag != "" {
			c.Header("ETag", f.etag)
			if inm := c.GetHeader("If-None-Match"); inm != "" && etagMatches(inm, f.etag) {
				c.Status(http.StatusNotModified)
				return nil
			}
		}
		return s.ogcWrite(c, http.StatusOK, mediaGeoJSON, f)
	}
}

// etagMatches reports whether an If-None-Match list names etag (weak
// comparison, as RFC 9110 asks for If-None-Match).
func etagMatches(list, etag string) bool {
	want := strings.TrimPrefix(etag, "W/")
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == want {
			return true
		}
	}
	return false
}

func (s *Server) ogcNoCollection(c *gin.Context) error {
	var names []string
	for _, col := range s.ogcCollections() {
		if httpapi.Principal(c).Can(col.perm) {
			names = append(names, col.id)
		}
	}
	httpapi.WriteError(c, s.log, gridwatch.Errorf(gridwatch.ENotFound, "collection %q does not exist; GET /ogc/collections lists them (%s)",
		c.Param("cid"), strings.Join(names, ", ")).WithDetails(map[string]any{"collection": c.Param("cid")}))
	return nil
}

// Geometries.

func pointGeometry(crs ogcCRS, lon, lat float64) *ogcGeometry {
	x, y := crs.out(lon, lat)
	return &ogcGeometry{Type: "Point", Coordinates: [2]float64{x, y}}
}

func multiPolygonGeometry(crs ogcCRS, mp *geom.MultiPolygon) *ogcGeometry {
	if mp == nil {
		return nil
	}
	polys := make([][][][2]float64, mp.NumPolygons())
	for i := range polys {
		p := mp.Polygon(i)
		rings := make([][][2]float64, p.NumLinearRings())
		for j := range rings {
			lr := p.LinearRing(j)
			pts := make([][2]float64, lr.NumCoords())
			for k := range pts {
				co := lr.Coord(k)
				pts[k][0], pts[k][1] = crs.out(co.X(), co.Y())
			}
			rings[j] = pts
		}
		polys[i] = rings
	}
	return &ogcGeometry{Type: "MultiPolygon", Coordinates: polys}
}

// Grids.

func (s *Server) ogcGridFilter(c *gin.Context, q ogcQuery) (geo.Filter, error) {
	f := geo.Filter{Scope: httpapi.Principal(c).ScopeIDs(), BBox: q.bbox, UpdatedFrom: q.from, UpdatedUntil: q.until, Code: q.props["code"]}
	if lv := q.props["level"]; lv != "" {
		if f.Level = geo.Level(lv); !f.Level.Valid() {
			return f, httpapi.ParamError("level", lv, "want district, street, community or grid")
		}
	}
	if p := q.props["parent_id"]; p != "" {
		id, err := strconv.ParseInt(p, 10, 64)
		if err != nil || id <= 0 {
			return f, httpapi.ParamError("parent_id", p, "want a grid id")
		}
		f.ParentID = id
	}
	return f, nil
}

func (s *Server) ogcGridItems(c *gin.Context, q ogcQuery) (ogcPage, error) {
	f, err := s.ogcGridFilter(c, q)
	if err != nil {
		return ogcPage{}, err
	}
	var page ogcPage
	if page.matched, err = s.deps.Grids.Count(c.Request.Context(), f); err != nil {
		return page, err
	}
	f.Limit, f.After, f.Geometry = q.limit, q.cursor, true
	grids, next, err := s.deps.Grids.List(c.Request.Context(), f)
	if err != nil {
		return page, err
	}
	page.next = next
	page.features = make([]ogcFeature, len(grids))
	for i := range grids {
		page.features[i] = gridFeature(&grids[i], q.crs)
	}
	return page, nil
}

func (s *Server) ogcGridItem(c *gin.Context, id int64, crs ogcCRS) (ogcFeature, error) {
	if _, err := httpapi.ScopedChain(c.Request.Context(), s.deps.Grids, httpapi.Principal(c), id); err != nil {
		return ogcFeature{}, err
	}
	g, err := s.deps.Grids.Get(c.Request.Context(), id)
	if err != nil {
		return ogcFeature{}, err
	}
	return gridFeature(g, crs), nil
}

// gridFeature is a grid as a feature: its fields, and the properties kept
// from its import where they do not clash with a field. Its ETag is the
// grid version's, as on /api/v1: a replace or delete sends it in If-Match.
func gridFeature(g *geo.Grid, crs ogcCRS) ogcFeature {
	props := map[string]any{}
	for k, v := range g.Properties {
		props[k] = v
	}
	var parentCode any
	if g.ParentCode != "" {
		parentCode = g.ParentCode
	}
	props["code"], props["name"], props["level"] = g.Code, g.Name, string(g.Level)
	props["parent_id"], props["parent_code"], props["area_m2"] = g.ParentID, parentCode, g.AreaM2
	props["version"], props["created_at"], props["updated_at"] = g.Version, g.CreatedAt, g.UpdatedAt
	return ogcFeature{
		Type: "Feature", ID: g.ID, Geometry: multiPolygonGeometry(crs, g.Geometry), Properties: props,
		etag: geo.ETag(g.ID, g.Version),
	}
}

func (s *Server) ogcGridExtent(c *gin.Context) (*geo.Extent, error) {
	return s.deps.Grids.ExtentOf(c.Request.Context(), geo.Filter{Scope: httpapi.Principal(c).ScopeIDs()})
}

// Incidents.

func (s *Server) ogcIncidentFilter(q ogcQuery) (incident.FeatureFilter, error) {
	f := incident.FeatureFilter{Filter: incident.Filter{BBox: q.bbox, From: q.from}, Until: q.until}
	if st := q.props["status"]; st != "" {
		for _, x := range strings.Split(st, ",") {
			status := incident.Status(strings.TrimSpace(x))
			if !status.Valid() {
				return f, httpapi.ParamError("status", st, "unknown status "+string(status))
			}
			f.Statuses = append(f.Statuses, status)
		}
	}
	if cat := q.props["category"]; cat != "" {
		if _, err := strconv.ParseUint(cat, 10, 32); err != nil || (len(cat) != 2 && len(cat) != 4) {
			return f, httpapi.ParamError("category", cat, "want a 2-digit class or 4-digit subclass code")
		}
		f.Category = cat
	}
	if p := q.props["priority"]; p != "" {
		if !contains(incident.Priorities(), p) {
			return f, httpapi.ParamError("priority", p, "want one of "+strings.Join(incident.Priorities(), ", "))
		}
		f.Priority = p
	}
	if g := q.props["grid_id"]; g != "" {
		id, err := strconv.ParseInt(g, 10, 64)
		if err != nil || id <= 0 {
			return f, httpapi.ParamError("grid_id", g, "want a grid id")
		}
		f.InGrid = id
	}
	return f, nil
}

func (s *Server) ogcIncidentItems(c *gin.Context, q ogcQuery) (ogcPage, error) {
	f, err := s.ogcIncidentFilter(q)
	if err != nil {
		return ogcPage{}, err
	}
	p := httpapi.Principal(c)
	v := httpapi.IncidentViewer(p)
	var page ogcPage
	if page.matched, err = s.deps.Incidents.CountFeatures(c.Request.Context(), f, v); err != nil {
		return page, err
	}
	f.Limit, f.Before = q.limit, q.cursor
	list, next, err := s.deps.Incidents.Features(c.Request.Context(), f, v)
	if err != nil {
		return page, err
	}
	page.next = next
	page.features = make([]ogcFeature, len(list))
	for i := range list {
		page.features[i] = incidentFeature(forCaller(p, &list[i]), q.crs)
	}
	return page, nil
}

func (s *Server) ogcIncidentItem(c *gin.Context, id int64, crs ogcCRS) (ogcFeature, error) {
	p := httpapi.Principal(c)
	in, err := s.deps.Incidents.Get(c.Request.Context(), id, httpapi.IncidentViewer(p))
	if err != nil {
		return ogcFeature{}, err
	}
	return incidentFeature(forCaller(p, in), crs), nil
}

// incidentFeature is an incident as a feature: the fields of the REST
// representation, flat (a grid and an assignee become their id and name).
func incidentFeature(in *incident.Incident, crs ogcCRS) ogcFeature {
	props := map[string]any{
		"source": in.Source, "external_id": in.ExternalID, "category": in.Category, "category_name": in.CategoryName,
		"title": in.Title, "description": in.Description, "address": in.Address,
		"reported_at": in.ReportedAt, "received_at": in.ReceivedAt, "priority": in.Priority,
		"grid_id": nil, "grid_code": nil, "grid_name": nil, "unassigned": in.Unassigned,
		"assignee_id": nil, "assignee_name": nil,
		"deadline": in.Deadline, "overdue": in.Overdue, "status": in.Status, "version": in.Version,
		"registered_at": in.RegisteredAt, "closed_at": in.ClosedAt, "created_by": nil, "updated_at": in.UpdatedAt,
	}
	if in.Grid != nil {
		props["grid_id"], props["grid_code"], props["grid_name"] = in.Grid.ID, in.Grid.Code, in.Grid.Name
	}
	if in.Assignee != nil {
		props["assignee_id"], props["assignee_name"] = in.Assignee.ID, in.Assignee.Name
	}
	if in.CreatedBy != "" {
		props["created_by"] = in.CreatedBy
	}
	return ogcFeature{Type: "Feature", ID: in.ID, Properties: props,
		Geometry: pointGeometry(crs, in.Location.Coordinates[0], in.Location.Coordinates[1])}
}

func (s *Server) ogcIncidentExtent(c *gin.Context) (*geo.Extent, error) {
	return s.deps.Incidents.ExtentOf(c.Request.Context(), httpapi.IncidentViewer(httpapi.Principal(c)))
}

// Cameras.

func (s *Server) ogcCameraItems(c *gin.Context, q ogcQuery) (ogcPage, error) {
	f := camera.FeatureFilter{Filter: camera.Filter{BBox: q.bbox}, Code: q.props["code"], UpdatedFrom: q.from, UpdatedUntil: q.until}
	if st := q.props["status"]; st != "" {
		if st != "online" && st != "connecting" && st != "offline" {
			return ogcPage{}, httpapi.ParamError("status", st, "want online, connecting or offline")
		}
		f.Status = st
	}
	if g := q.props["grid_id"]; g != "" {
		id, err := strconv.ParseInt(g, 10, 64)
		if err != nil || id <= 0 {
			return ogcPage{}, httpapi.ParamError("grid_id", g, "want a grid id")
		}
		f.InGrid = id
	}
	v := httpapi.CameraViewer(httpapi.Principal(c))
	var page ogcPage
	var err error
	if page.matched, err = s.deps.Cameras.CountFeatures(c.Request.Context(), f, v); err != nil {
		return page, err
	}
	f.Limit, f.After = q.limit, q.cursor
	list, next, err := s.deps.Cameras.Features(c.Request.Context(), f, v)
	if err != nil {
		return page, err
	}
	page.next = next
	page.features = make([]ogcFeature, len(list))
	for i := range list {
		page.features[i] = cameraFeature(&list[i], q.crs)
	}
	return page, nil
}

func (s *Server) ogcCameraItem(c *gin.Context, id int64, crs ogcCRS) (ogcFeature, error) {
	cam, err := s.deps.Cameras.Get(c.Request.Context(), id, httpapi.CameraViewer(httpapi.Principal(c)))
	if err != nil {
		return ogcFeature{}, err
	}
	return cameraFeature(cam, crs), nil
}

// cameraFeature is a camera as a feature, from the camera API's public
// representation: its stream URLs have no credentials.
func cameraFeature(cam *camera.Camera, crs ogcCRS) ogcFeature {
	props := map[string]any{
		"code": cam.Code, "name": cam.Name, "heading": cam.Heading, "fov": cam.FOV, "range": cam.Range,
		"main_url": cam.MainURL, "sub_url": cam.SubURL, "has_credentials": cam.HasCreds,
		"enabled": cam.Enabled, "record": cam.Record, "grid_id": nil, "grid_code": nil,
		"status": cam.Status, "status_reason": cam.StatusReason, "status_since": cam.StatusSince,
		"version": cam.Version, "created_at": cam.CreatedAt, "updated_at": cam.UpdatedAt,
	}
	if cam.Grid != nil {
		props["grid_id"], props["grid_code"] = cam.Grid.ID, cam.Grid.Code
	}
	return ogcFeature{Type: "Feature", ID: cam.ID, Properties: props,
		Geometry: pointGeometry(crs, cam.Location.Coordinates[0], cam.Location.Coordinates[1])}
}

func (s *Server) ogcCameraExtent(c *gin.Context) (*geo.Extent, error) {
	return s.deps.Cameras.ExtentOf(c.Request.Context(), httpapi.CameraViewer(httpapi.Principal(c)))
}
