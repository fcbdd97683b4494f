// Package tiles serves Mapbox Vector Tiles of the grids, incidents and
// cameras, and each layer's TileJSON, as route entries (Routes) that
// package api gathers into its table; Query lists their query parameters.
// Tiles are drawn by the domain stores; this package reads the tile from
// the path, caches by ETag and answers.
package tiles

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/fnv"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"gridwatch/api/httpapi"
	"gridwatch/auth"
	"gridwatch/basedata"
	"gridwatch/camera"
	"gridwatch/geo"
	"gridwatch/incident"
)

// Mapbox Vector Tiles: /tiles/{layer}/{z}/{x}/{y}.mvt for the grids,
// incidents and cameras, and /tiles/{layer}.json, each layer's TileJSON.
// Each layer is its own route so that each carries its own permission;
// an unknown layer is a JSON 404.

// mvtType is the media type of a vector tile.
const mvtType = "application/vnd.mapbox-vector-tile"

// tileFormat is part of every grid tile's ETag: change it when the tiles'
// contents change for the same grids (new properties, another extent), so
// that no cache keeps the old ones.
const tileFormat = "1"

// versionParam is the query parameter naming the grid revision a grid tile
// URL was made for; the grids' TileJSON names it.
const versionParam = "v"

// Cache-Control of the tiles: a grid tile asked for at the current
// revision never changes (a redraw changes the revision and so the URL);
// any other tile is checked again every time (its ETag makes that cheap).
const (
	cacheImmutable  = "private, max-age=31536000, immutable"
	cacheRevalidate = "private, no-cache"
)

// tileLayer describes a layer for its TileJSON.
type tileLayer struct {
	name, title, description string
	// minZoom is the shallowest zoom served (fewer points per tile);
	// maxZoom the deepest a client needs (it over-zooms beyond).
	minZoom, maxZoom int
	fields           map[string]string
}

var (
	gridTiles = tileLayer{name: geo.GridLayer, title: "Gridwatch grids",
		description: "Grid boundaries: districts, streets, communities and grids. Code and name are left out of a grid narrower than 8 pixels at the tile's zoom.",
		minZoom:     0, maxZoom: 16,
		fields: map[string]string{"code": "String", "name": "String", "level": "String: district, street, community or grid", "parent_id": "Number"}}
	incidentTiles = tileLayer{name: incident.IncidentLayer, title: "Gridwatch incidents",
		description: "Incidents the caller may see, one point each.",
		minZoom:     10, maxZoom: 16,
		fields: map[string]string{"status": "String", "priority": "String", "category": "String", "title": "String",
			"grid_id": "Number", "reported_at": "String (RFC 3339)", "overdue": "Boolean"}}
	cameraTiles = tileLayer{name: camera.CameraLayer, title: "Gridwatch cameras",
		description: "Cameras the caller may see, one point each.",
		minZoom:     10, maxZoom: 16,
		fields: map[string]string{"code": "String", "name": "String", "status": "String", "enabled": "Boolean",
			"heading": "Number (degrees from north)", "grid_id": "Number"}}
	buildingTiles = tileLayer{name: basedata.BuildingLayer, title: "Gridwatch buildings",
		description: "Buildings the caller may see: the footprint where known, else the point.",
		minZoom:     13, maxZoom: 18,
		fields: map[string]string{"code": "String", "name": "String", "floors": "Number", "grid_id": "Number"}}
	componentTiles = tileLayer{name: basedata.ComponentLayer, title: "Gridwatch city components",
		description: "City components (GB/T 30428.2) the caller may see, one point each.",
		minZoom:     14, maxZoom: 18,
		fields: map[string]string{"code": "String", "class": "String (class code)", "state": "String: intact, damaged, lost or removed", "grid_id": "Number"}}
)

// Deps are what the tiles need from the rest of the service.
type Deps struct {
	Grids     *geo.Store
	Incidents *incident.Service
	Cameras   *camera.Store
	// Base draws the buildings' and components' tiles.
	Base *basedata.Service
	// TLS makes the TileJSON's tile URLs https.
	TLS bool
}

// Service serves the tile routes.
type Service struct{ deps Deps }

// New returns the tile service.
func New(deps Deps) *Service { return &Service{deps: deps} }

// Query lists, for every route of Routes as "METHOD /path", the query
// parameters it reads (api checks them before the handler runs). Grid
// tiles name the revision they were drawn for as ?v= (TileJSON's
// template), the cache key that every change bumps.
var Query = map[string][]string{
	"GET /tiles/grids/:z/:x/:file":      {versionParam},
	"GET /tiles/grids.json":             nil,
	"GET /tiles/incidents/:z/:x/:file":  {"status"},
	"GET /tiles/incidents.json":         nil,
	"GET /tiles/cameras/:z/:x/:file":    {"status"},
	"GET /tiles/cameras.json":           nil,
	"GET /tiles/buildings/:z/:x/:file":  nil,
	"GET /tiles/buildings.json":         nil,
	"GET /tiles/components/:z/:x/:file": {"state", "class"},
	"GET /tiles/components.json":        nil,
	"GET /tiles/:layer":                 nil,
	"GET /tiles/:layer/:z/:x/:file":     nil,
}

// Routes serves the vector tiles; GIS clients may use HTTP Basic.
func (s *Service) Routes() []httpapi.Route {
	return httpapi.Basic([]httpapi.Route{
		httpapi.R("GET", "/tiles/grids/:z/:x/:file", auth.GridsRead, s.gridTile),
		httpapi.R("GET", "/tiles/grids.json", auth.GridsRead, s.gridTileJSON),
		httpapi.R("GET", "/tiles/incidents/:z/:x/:file", auth.IncidentsRead, s.incidentTile),
		httpapi.R("GET", "/tiles/incidents.json", auth.IncidentsRead, s.tileJSON(incidentTiles)),
		httpapi.R("GET", "/tiles/cameras/:z/:x/:file", auth.CamerasRead, s.cameraTile),
		httpapi.R("GET", "/tiles/cameras.json", auth.CamerasRead, s.tileJSON(cameraTiles)),
		httpapi.R("GET", "/tiles/buildings/:z/:x/:file", auth.BaseRead, s.buildingTile),
		httpapi.R("GET", "/tiles/buildings.json", auth.BaseRead, s.tileJSON(buildingTiles)),
		httpapi.R("GET", "/tiles/components/:z/:x/:file", auth.BaseRead, s.componentTile),
		httpapi.R("GET", "/tiles/components.json", auth.BaseRead, s.tileJSON(componentTiles)),
		// Any other layer: a JSON 404, not the dashboard's file server.
		httpapi.R("GET", "/tiles/:layer", auth.Authenticated, s.unknownTileLayer),
		httpapi.R("GET", "/tiles/:layer/:z/:x/:file", auth.Authenticated, s.unknownTileLayer),
	})
}

func (s *Service) unknownTileLayer(c *gin.Context) error {
	layer := strings.TrimSuffix(c.Param("layer"), ".json")
	return httpapi.Errorf(http.StatusNotFound, "not_found", "no tile layer %q: the layers are grids, incidents, cameras, buildings and components", layer)
}

// tileParam reads the tile from the path: z, x and the file {y}.mvt.
func tileParam(c *gin.Context) (geo.Tile, error) {
	file := c.Param("file")
	y, ok := strings.CutSuffix(file, ".mvt")
	if !ok {
		return geo.Tile{}, httpapi.Errorf(http.StatusNotFound, "not_found", "no tile %q: tiles are {y}.mvt", file)
	}
	return geo.ParseTile(c.Param("z"), c.Param("x"), y)
}

// check refuses a tile shallower than the layer serves.
func (l tileLayer) check(t geo.Tile) error {
	if t.Z < l.minZoom {
		return httpapi.ParamError("z", strconv.Itoa(t.Z), "the "+l.name+" layer is served from zoom "+strconv.Itoa(l.minZoom))
	}
	return nil
}

// scopeKey names a grid scope in ETags and URLs: "all", or a hash of the
// sorted root grid ids.
func scopeKey(scope []int64) string {
	if scope == nil {
		return "all"
	}
	ids := slices.Clone(scope)
	slices.Sort(ids)
	h := fnv.New64a()
	for _, id := range ids {
		h.Write(strconv.AppendInt(nil, id, 10))
		h.Write([]byte{','})
	}
	return strconv.FormatUint(h.Sum64(), 36)
}

// gridETag is the strong ETag of a grid tile: what it is drawn from.
func gridETag(rev int64, scope []int64, t geo.Tile) string {
	return `"g` + tileFormat + "-" + strconv.FormatInt(rev, 10) + "-" + scopeKey(scope) + "-" +
		strconv.Itoa(t.Z) + "-" + strconv.Itoa(t.X) + "-" + strconv.Itoa(t.Y) + `"`
}

// bytesETag is a strong ETag of a tile's bytes.
func bytesETag(prefix string, b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + prefix + "-" + hex.EncodeToString(sum[:12]) + `"`
}

// notModified reports whether the request's If-None-Match holds etag.
// If-None-Match compares weakly (RFC 9110 §13.1.2): a W/ prefix is ignored.
func notModified(c *gin.Context, etag string) bool {
	h := c.GetHeader("If-None-Match")
	if h == "" {
		return false
	}
	for _, tag := range strings.Split(h, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == "*" || tag == etag {
			return true
		}
	}
	return false
}

// writeTile answers with a tile: 304 when the client has it, 204 when it
// is empty (MapLibre draws nothing there), else the tile.
func writeTile(c *gin.Context, tile []byte, etag, cacheControl string) {
	h := c.Writer.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", cacheControl)
	// The tiles depend on who asks (their grid scope).
	h.Set("Vary", "Authorization, Cookie")
	switch {
	case notModified(c, etag):
		c.Status(http.StatusNotModified)
	case len(tile) == 0:
		c.Status(http.StatusNoContent)
	default:
		c.Data(http.StatusOK, mvtType, tile)
	}
}

func (s *Service) gridTile(c *gin.Context) error {
	t, err := tileParam(c)
	if err != nil {
		return err
	}
	ctx := c.Request.Context()
	scope := httpapi.Principal(c).ScopeIDs()
	cache := func(rev int64) string {
		// A scope can narrow without any grid changing: only an unscoped
		// caller's tiles are immutable for their revision.
		if scope == nil && c.Query(versionParam) == strconv.FormatInt(rev, 10) {
			return cacheImmutable
		}
		return cacheRevalidate
	}
	// A client holding the tile of the current revision is answered
	// without drawing it again.
	if c.GetHeader("If-None-Match") != "" {
		rev, err := s.deps.Grids.Revision(ctx)
		if err != nil {
			return err
		}
		if etag := gridETag(rev, scope, t); notModified(c, etag) {
			writeTile(c, nil, etag, cache(rev))
			return nil
		}
	}
	tile, rev, err := s.deps.Grids.GridTileFor(ctx, t, scope)
	if err != nil {
		return err
	}
	writeTile(c, tile, gridETag(rev, scope, t), cache(rev))
	return nil
}

// pointTile answers a tile of a layer of points (incidents, cameras):
// drawn fresh by draw, its ETag that of its bytes.
func pointTile(c *gin.Context, l tileLayer, etagPrefix string, draw func(t geo.Tile) ([]byte, error)) error {
	t, err := tileParam(c)
	if err == nil {
		err = l.check(t)
	}
	if err != nil {
		return err
	}
	tile, err := draw(t)
	if err != nil {
		return err
	}
	writeTile(c, tile, bytesETag(etagPrefix, tile), cacheRevalidate)
	return nil
}

func (s *Service) incidentTile(c *gin.Context) error {
	return pointTile(c, incidentTiles, "i", func(t geo.Tile) ([]byte, error) {
		f, err := incidentTileFilter(c.Query("status"))
		if err != nil {
			return nil, err
		}
		return s.deps.Incidents.Tile(c.Request.Context(), t, f, httpapi.IncidentViewer(httpapi.Principal(c)))
	})
}

// incidentTileFilter reads ?status=: open, or a list of statuses.
func incidentTileFilter(st string) (incident.TileFilter, error) {
	var f incident.TileFilter
	if st == "" {
		return f, nil
	}
	for _, x := range strings.Split(st, ",") {
		x = strings.TrimSpace(x)
		if x == "open" {
			f.Statuses = append(f.Statuses, incident.OpenStatuses()...)
			continue
		}
		if status := incident.Status(x); status.Valid() {
			f.Statuses = append(f.Statuses, status)
			continue
		}
		return f, httpapi.ParamError("status", st, "unknown status "+x+": want open or statuses such as reported,dispatched")
	}
	return f, nil
}

func (s *Service) cameraTile(c *gin.Context) error {
	return pointTile(c, cameraTiles, "c", func(t geo.Tile) ([]byte, error) {
		return s.deps.Cameras.Tile(c.Request.Context(), t, httpapi.CameraViewer(httpapi.Principal(c)))
	})
}

// baseViewer is what p may see of buildings and components: its grids.
func baseViewer(p *auth.Principal) basedata.Viewer { return basedata.Viewer{Grids: p.ScopeIDs()} }

// baseService returns the base-data service, or 503 when there is none.
func (s *Service) baseService() (*basedata.Service, error) {
	if s.deps.Base == nil {
		return nil, httpapi.Errorf(http.StatusServiceUnavailable, "unavailable", "base data is not available on this server")
	}
	return s.deps.Base, nil
}

func (s *Service) buildingTile(c *gin.Context) error {
	base, err := s.baseService()
	if err != nil {
		return err
	}
	return pointTile(c, buildingTiles, "b", func(t geo.Tile) ([]byte, error) {
		return base.BuildingTile(c.Request.Context(), t, baseViewer(httpapi.Principal(c)))
	})
}

func (s *Service) componentTile(c *gin.Context) error {
	base, err := s.baseService()
	if err != nil {
		return err
	}
	return pointTile(c, componentTiles, "k", func(t geo.Tile) ([]byte, error) {
		f := basedata.Filter{State: c.Query("state"), Class: c.Query("class")}
		return base.ComponentTile(c.Request.Context(), t, f, baseViewer(httpapi.Principal(c)))
	})
}

// tileJSON is a TileJSON 3.0.0 document.
type tileJSON struct {
	TileJSON    string    `json:"tilejson"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Version     string    `json:"version"`
	Scheme      string    `json:"scheme"`
	Tiles       []string  `json:"tiles"`
	MinZoom     int       `json:"minzoom"`
	MaxZoom     int       `json:"maxzoom"`
	Bounds      []float64 `json:"bounds"`
	Center      []float64 `json:"center,omitempty"`
	// Revision and VersionParam (grids only) are gridwatch's: the grid
	// revision the tiles URL names, and the query parameter it is in.
	Revision     *int64        `json:"revision,omitempty"`
	VersionParam string        `json:"version_param,omitempty"`
	VectorLayers []vectorLayer `json:"vector_layers"`
}

type vectorLayer struct {
	ID          string            `json:"id"`
	Description string            `json:"description"`
	MinZoom     int               `json:"minzoom"`
	MaxZoom     int               `json:"maxzoom"`
	Fields      map[string]string `json:"fields"`
}

// baseURL is the scheme and host the request came to.
func (s *Service) baseURL(c *gin.Context) string {
	scheme := "http"
	if s.deps.TLS || c.Request.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.Request.Host
}

func (l tileLayer) document(base, query string) tileJSON {
	return tileJSON{
		TileJSON: "3.0.0", Name: l.title, Description: l.description, Version: "1.0.0", Scheme: "xyz",
		Tiles:   []string{base + "/tiles/" + l.name + "/{z}/{x}/{y}.mvt" + query},
		MinZoom: l.minZoom, MaxZoom: l.maxZoom,
		Bounds:       []float64{-180, -85.051129, 180, 85.051129},
		VectorLayers: []vectorLayer{{ID: l.name, Description: l.description, MinZoom: l.minZoom, MaxZoom: l.maxZoom, Fields: l.fields}},
	}
}

// tileJSON serves the TileJSON of a layer of points, drawn fresh for every
// request (no version in its URL).
func (s *Service) tileJSON(l tileLayer) httpapi.Handler {
	return func(c *gin.Context) error {
		c.Header("Cache-Control", cacheRevalidate)
		c.JSON(http.StatusOK, l.document(s.baseURL(c), ""))
		return nil
	}
}

// gridTileJSON serves the grids' TileJSON: its tiles URL carries the grid
// revision as ?v=, so a redraw changes every tile URL, and its version's
// minor number is the revision (TileJSON: "when changes across tiles are
// introduced the minor version MUST change"). Bounds and center are those
// of the grids the caller sees.
func (s *Service) gridTileJSON(c *gin.Context) error {
	ctx := c.Request.Context()
	scope := httpapi.Principal(c).ScopeIDs()
	rev, err := s.deps.Grids.Revision(ctx)
	if err != nil {
		return err
	}
	box, found, err := s.deps.Grids.Bounds(ctx, scope)
	if err != nil {
		return err
	}
	doc := gridTiles.document(s.baseURL(c), "?"+versionParam+"="+strconv.FormatInt(rev, 10))
	doc.Version = "1." + strconv.FormatInt(rev, 10) + ".0"
	doc.Revision, doc.VersionParam = &rev, versionParam
	if found {
		doc.Bounds = []float64{box.MinLon, box.MinLat, box.MaxLon, box.MaxLat}
		lon, lat := (box.MinLon+box.MaxLon)/2, (box.MinLat+box.MaxLat)/2
		doc.Center = []float64{lon, lat, float64(fitZoom(box))}
	}
	c.Header("Cache-Control", cacheRevalidate)
	c.JSON(http.StatusOK, doc)
	return nil
}

// fitZoom is the deepest zoom at which box fits in one 512-pixel tile,
// the zoom to show it whole at first.
func fitZoom(box geo.BBox) int {
	for z := gridTiles.maxZoom; z > 0; z-- {
		a := geo.TileAt(z, box.MinLon, box.MaxLat)
		b := geo.TileAt(z, box.MaxLon, box.MinLat)
		if b.X-a.X <= 1 && b.Y-a.Y <= 1 {
			return z
		}
	}
	return 0
}
