package api

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/twpayne/go-geom/encoding/geojson"

	"gridwatch"
	"gridwatch/auth"
	"gridwatch/geo"
)

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// gridDetail is a grid in responses: its fields, its chain (itself first, up
// to the district) and, on request, its geometry.
type gridDetail struct {
	geo.Grid
	Chain    []geo.Ref       `json:"chain"`
	Geometry json.RawMessage `json:"geometry,omitempty"`
}

func (s *Server) importGrids(c *gin.Context) {
	res, err := s.importBody(c, func(body []byte, opts geo.ParseOptions) ([]geo.ImportFeature, error) {
		return geo.ParseFeatureCollection(body, opts)
	})
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.JSON(http.StatusCreated, res)
}

func (s *Server) createGrid(c *gin.Context) {
	res, err := s.importBody(c, func(body []byte, opts geo.ParseOptions) ([]geo.ImportFeature, error) {
		f, err := geo.ParseFeature(body, opts)
		return []geo.ImportFeature{f}, err
	})
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	d, err := s.detail(c.Request.Context(), principal(c), res.Grids[0].ID, true)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.Header("Location", "/api/v1/grids/"+strconv.FormatInt(d.ID, 10))
	c.JSON(http.StatusCreated, gin.H{"grid": d, "repairs": res.Repairs})
}

// importBody reads ?crs= and ?repair=, parses the body with parse and
// imports what it gives.
func (s *Server) importBody(c *gin.Context, parse func([]byte, geo.ParseOptions) ([]geo.ImportFeature, error)) (*geo.ImportResult, error) {
	opts, err := s.parseOptions(c)
	if err != nil {
		return nil, err
	}
	repair, err := boolParam(c, "repair")
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return nil, err
	}
	features, err := parse(body, opts)
	if err != nil {
		return nil, err
	}
	return s.deps.Grids.Import(c.Request.Context(), features, geo.ImportOptions{Repair: repair})
}

func (s *Server) parseOptions(c *gin.Context) (geo.ParseOptions, error) {
	crs, err := geo.ParseCRS(c.Query("crs"))
	if err != nil {
		return geo.ParseOptions{}, err
	}
	return geo.ParseOptions{CRS: crs, MaxVertices: s.deps.MaxVertices}, nil
}

func (s *Server) getGrid(c *gin.Context) {
	id, err := idParam(c)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	if at := c.Query("at"); at != "" {
		s.gridAt(c, id, at)
		return
	}
	withGeom := c.DefaultQuery("geometry", "true") != "false"
	d, err := s.detail(c.Request.Context(), principal(c), id, withGeom)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	// The ETag names the version: a change sends it back in If-Match.
	etag := geo.ETag(id, d.Version)
	c.Header("ETag", etag)
	c.Header("Cache-Control", "private, no-cache")
	c.JSON(http.StatusOK, d)
}

// scopedChain returns grid id's chain as p may see it; a grid outside p's
// scope is not found, as if it did not exist.
func (s *Server) scopedChain(ctx context.Context, p *auth.Principal, id int64) ([]geo.Ref, error) {
	chain, err := s.deps.Grids.Chain(ctx, id)
	if err != nil {
		return nil, err
	}
	if p.Scoped() {
		if chain = p.InScope(chain); len(chain) == 0 {
			return nil, gridwatch.Errorf(gridwatch.ENotFound, "grid %d not found", id)
		}
	}
	return chain, nil
}

func (s *Server) detail(ctx context.Context, p *auth.Principal, id int64, withGeom bool) (*gridDetail, error) {
	chain, err := s.scopedChain(ctx, p, id)
	if err != nil {
		return nil, err
	}
	g, err := s.deps.Grids.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	d := &gridDetail{Grid: *g, Chain: chain}
	if withGeom && g.Geometry != nil {
		if d.Geometry, err = geojson.Marshal(g.Geometry, geojson.EncodeGeometryWithMaxDecimalDigits(7)); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func (s *Server) deleteGrid(c *gin.Context) {
	id, err := idParam(c)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	if err := s.deps.Grids.Delete(c.Request.Context(), id); err != nil {
		writeError(c, s.log, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) listGrids(c *gin.Context) {
	f, err := gridFilter(c)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	if f.Limit, f.After, err = pageParams(c); err != nil {
		writeError(c, s.log, err)
		return
	}
	grids, next, err := s.deps.Grids.List(c.Request.Context(), f)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.JSON(http.StatusOK, page("grids", grids, next))
}

func (s *Server) gridsGeoJSON(c *gin.Context) {
	f, err := gridFilter(c)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	// Buffer the head so an error before the first byte is still a JSON error.
	c.Header("Content-Type", "application/geo+json")
	w := bufio.NewWriterSize(c.Writer, 64<<10)
	if err := s.deps.Grids.WriteGeoJSON(c.Request.Context(), w, f); err != nil {
		if c.Writer.Written() {
			s.log.Error("grids geojson: stream broken", "err", err, "request_id", c.GetString("request_id"))
			c.Abort()
			return
		}
		c.Writer.Header().Set("Content-Type", "application/json")
		writeError(c, s.log, err)
		return
	}
	if err := w.Flush(); err != nil {
		s.log.Debug("grids geojson: client went away", "err", err)
	}
}

func gridFilter(c *gin.Context) (geo.Filter, error) {
	var f geo.Filter
	f.Scope = principal(c).ScopeIDs()
	if lv := c.Query("level"); lv != "" {
		f.Level = geo.Level(strings.ToLower(lv))
		if !f.Level.Valid() {
			return f, paramError("level", lv, "want district, street, community or grid")
		}
	}
	if p := c.Query("parent"); p != "" {
		id, err := strconv.ParseInt(p, 10, 64)
		if err != nil || id <= 0 {
			return f, paramError("parent", p, "want a grid id")
		}
		f.ParentID = id
	}
	if b := c.Query("bbox"); b != "" {
		bb, err := geo.ParseBBox(b)
		if err != nil {
			return f, err
		}
		f.BBox = &bb
	}
	return f, nil
}

func (s *Server) locate(c *gin.Context) {
	lon, err := floatParam(c, "lon")
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	lat, err := floatParam(c, "lat")
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	crs, err := geo.ParseCRS(c.Query("crs"))
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	if err := geo.CheckLonLat(lon, lat); err != nil {
		writeError(c, s.log, err)
		return
	}
	wlon, wlat := crs.ToWGS84(lon, lat)
	chain := principal(c).InScope(s.deps.Locator.Locate(wlon, wlat))
	c.JSON(http.StatusOK, gin.H{"grids": chain, "point": []float64{wlon, wlat}})
}

func paramError(name, value, why string) error {
	return gridwatch.Errorf(gridwatch.EInvalid, "query parameter %s=%q: %s", name, value, why).
		WithDetails(map[string]any{"param": name, "value": value})
}

func idParam(c *gin.Context) (int64, error) {
	v := c.Param("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, gridwatch.Errorf(gridwatch.EInvalid, "id %q in the path is not a positive integer", v).WithDetails(map[string]any{"param": "id", "value": v})
	}
	return id, nil
}

func floatParam(c *gin.Context, name string) (float64, error) {
	v, ok := c.GetQuery(name)
	if !ok || v == "" {
		return 0, paramError(name, v, "required")
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, paramError(name, v, "not a finite number")
	}
	return f, nil
}

// page is a list response: the items under key and the cursor of the next
// page, null on the last.
func page(key string, items any, next int64) gin.H {
	resp := gin.H{key: items, "next": nil}
	if next != 0 {
		resp["next"] = strconv.FormatInt(next, 10)
	}
	return resp
}

// pageParams reads ?limit= (default 100, at most 1000) and ?cursor= (the
// next of a previous page).
func pageParams(c *gin.Context) (int, int64, error) {
	limit, err := intParam(c, "limit", defaultPageSize, 1, maxPageSize)
	if err != nil {
		return 0, 0, err
	}
	var cursor int64
	if cur := c.Query("cursor"); cur != "" {
		if cursor, err = strconv.ParseInt(cur, 10, 64); err != nil || cursor <= 0 {
			return 0, 0, paramError("cursor", cur, "not a cursor from a previous page's next")
		}
	}
	return limit, cursor, nil
}

func intParam(c *gin.Context, name string, def, lo, hi int) (int, error) {
	v := c.Query(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, paramError(name, v, "want an integer from "+strconv.Itoa(lo)+" to "+strconv.Itoa(hi))
	}
	return n, nil
}

func boolParam(c *gin.Context, name string) (bool, error) {
	v := c.Query(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, paramError(name, v, "want true or false")
	}
	return b, nil
}
