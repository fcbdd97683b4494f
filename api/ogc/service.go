package ogc

import (
	"log/slog"
	"maps"
	"slices"

	"gridwatch/camera"
	"gridwatch/geo"
	"gridwatch/incident"
)

// Deps are what OGC API Features needs from the rest of the service.
type Deps struct {
	Logger    *slog.Logger
	Version   string
	Grids     *geo.Store
	Incidents *incident.Service
	Cameras   *camera.Store
	// MaxVertices caps a written grid's geometry.
	MaxVertices int
	// OGCRequireIfMatch: see api.Deps.
	OGCRequireIfMatch bool
}

// Service serves the OGC API Features routes.
type Service struct {
	deps Deps
	log  *slog.Logger
}

// New returns the OGC API Features service.
func New(deps Deps) *Service {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{deps: deps, log: deps.Logger}
}

// Query lists, for the routes of Routes that are the same for every
// collection, as "METHOD /path", the query parameters they read; the
// handlers refuse other parameters with the collection's list themselves,
// and the table says the same. QueryRules adds each collection's.
var Query = map[string][]string{
	"GET /ogc":                                 {"f"},
	"GET /ogc/":                                {"f"},
	"GET /ogc/conformance":                     {"f"},
	"GET /ogc/api":                             {"f"},
	"GET /ogc/collections":                     {"f"},
	"GET /ogc/collections/:cid":                {"f"},
	"GET /ogc/collections/:cid/queryables":     {"f"},
	"GET /ogc/collections/:cid/items":          ogcCommonParams,
	"GET /ogc/collections/:cid/items/:fid":     {"f", "crs"},
	"POST /ogc/collections/grids/items":        {"f"},
	"PUT /ogc/collections/grids/items/:fid":    {"f", "dry_run"},
	"PATCH /ogc/collections/grids/items/:fid":  {"f", "dry_run"},
	"DELETE /ogc/collections/grids/items/:fid": {"f"},
}

// QueryRules adds to rules the static routes' entries (Query) and each OGC collection's items routes, whose parameters
// are the common ones and the collection's queryables (OGC API Features
// Part 1: a queryable property is a parameter; anything else is a 400).
func (s *Service) QueryRules(rules map[string][]string) {
	maps.Copy(rules, Query)
	for _, col := range s.ogcCollections() {
		base := "/ogc/collections/" + col.id
		rules["GET "+base] = []string{"f"}
		rules["GET "+base+"/queryables"] = []string{"f"}
		rules["GET "+base+"/items"] = append(slices.Clone(ogcCommonParams), col.queryableNames()...)
		rules["GET "+base+"/items/:fid"] = []string{"f", "crs"}
	}
}
