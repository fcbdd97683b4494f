// Package ogc is OGC API Features under /ogc: the landing page, conformance,
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
//
// Shape: the routes (Routes) and their query parameters (Query,
// QueryRules) are gathered by package api into its one table and checked
// there; the handlers are httpapi.Handlers. ogc.go holds the documents
// (landing, conformance, collections, items), ogc_params.go the query
// parsers, one file per collection its adapter (grids.go, incidents.go,
// cameras.go), ogc_write.go the grids' writes, ogc_openapi.go the OpenAPI
// document; links are built on the request's origin (httpapi.Origin).
package ogc

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"gridwatch"
	"gridwatch/api/httpapi"
	"gridwatch/auth"
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
func (s *Service) ogcCollections() []*ogcCollection {
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

// Routes serves OGC API Features under /ogc. The collection routes
// carry their collection's permission; the catch-all ones answer 404 for
// collections that do not exist. All take HTTP Basic too (QGIS 3.22).
func (s *Service) Routes() []httpapi.Route {
	routes := []httpapi.Route{
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
	return httpapi.Basic(append(routes,
		httpapi.R("GET", "/ogc/collections/:cid", auth.Authenticated, s.ogcNoCollection),
		httpapi.R("GET", "/ogc/collections/:cid/queryables", auth.Authenticated, s.ogcNoCollection),
		httpapi.R("GET", "/ogc/collections/:cid/items", auth.Authenticated, s.ogcNoCollection),
		httpapi.R("GET", "/ogc/collections/:cid/items/:fid", auth.Authenticated, s.ogcNoCollection),
	))
}

// ogcWrite answers v as JSON with the given media type.
func (s *Service) ogcWrite(c *gin.Context, status int, mediaType string, v any) error {
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

func (s *Service) ogcLanding(c *gin.Context) error {
	if err := ogcOnlyParams(c, "f"); err != nil {
		return err
	}
	base := httpapi.Origin(c) + "/ogc"
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

func (s *Service) ogcConformanceDoc(c *gin.Context) error {
	if err := ogcOnlyParams(c, "f"); err != nil {
		return err
	}
	return s.ogcWrite(c, http.StatusOK, mediaJSON, gin.H{"conformsTo": ogcConformance})
}

func (s *Service) ogcCollectionList(c *gin.Context) error {
	if err := ogcOnlyParams(c, "f"); err != nil {
		return err
	}
	base := httpapi.Origin(c) + "/ogc"
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

func (s *Service) ogcCollectionDoc(col *ogcCollection) httpapi.Handler {
	return func(c *gin.Context) error {
		if err := ogcOnlyParams(c, "f"); err != nil {
			return err
		}
		doc, err := s.ogcCollectionJSON(c, col, httpapi.Origin(c)+"/ogc")
		if err != nil {
			return err
		}
		return s.ogcWrite(c, http.StatusOK, mediaJSON, doc)
	}
}

// ogcCollectionJSON describes col as the caller sees it: the extent is of
// the features in their scope.
func (s *Service) ogcCollectionJSON(c *gin.Context, col *ogcCollection, base string) (gin.H, error) {
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

func (s *Service) ogcQueryablesDoc(col *ogcCollection) httpapi.Handler {
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
			"$id":                  httpapi.Origin(c) + "/ogc/collections/" + col.id + "/queryables",
			"type":                 "object",
			"title":                col.title,
			"properties":           props,
			"additionalProperties": false,
		})
	}
}

func (s *Service) ogcItems(col *ogcCollection) httpapi.Handler {
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
		origin := httpapi.Origin(c)
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

func (s *Service) ogcItem(col *ogcCollection) httpapi.Handler {
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
		origin := httpapi.Origin(c)
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

func (s *Service) ogcNoCollection(c *gin.Context) error {
	var names []string
	for _, col := range s.ogcCollections() {
		if httpapi.Principal(c).Can(col.perm) {
			names = append(names, col.id)
		}
	}
	return gridwatch.Errorf(gridwatch.ENotFound, "collection %q does not exist; GET /ogc/collections lists them (%s)",
		c.Param("cid"), strings.Join(names, ", ")).WithDetails(map[string]any{"collection": c.Param("cid")})
}
