package ogc

// The grids collection's adapter: its filter, items, item and extent over geo.Store.

import (
	"strconv"

	"github.com/gin-gonic/gin"

	"gridwatch/api/httpapi"
	"gridwatch/geo"
)

func (s *Service) ogcGridFilter(c *gin.Context, q ogcQuery) (geo.Filter, error) {
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

func (s *Service) ogcGridItems(c *gin.Context, q ogcQuery) (ogcPage, error) {
	f, err := s.ogcGridFilter(c, q)
	if err != nil {
		return ogcPage{}, err
	}
	matched, err := s.deps.Grids.Count(c.Request.Context(), f)
	if err != nil {
		return ogcPage{}, err
	}
	f.Limit, f.After, f.Geometry = q.limit, q.cursor, true
	grids, next, err := s.deps.Grids.List(c.Request.Context(), f)
	return pageOf(matched, grids, next, q.crs, gridFeature), err
}

func (s *Service) ogcGridItem(c *gin.Context, id int64, crs ogcCRS) (ogcFeature, error) {
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

func (s *Service) ogcGridExtent(c *gin.Context) (*geo.Extent, error) {
	return s.deps.Grids.ExtentOf(c.Request.Context(), geo.Filter{Scope: httpapi.Principal(c).ScopeIDs()})
}

// Incidents.
