package api

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/twpayne/go-geom/encoding/geojson"

	"gridwatch/api/httpapi"
	"gridwatch/auth"
	"gridwatch/geo"
)

// gridDetail is a grid in responses: its fields, its chain (itself first, up
// to the district) and, on request, its geometry.
type gridDetail struct {
	geo.Grid
	Chain    []geo.Ref       `json:"chain"`
	Geometry json.RawMessage `json:"geometry,omitempty"`
}

func (s *Server) importGrids(c *gin.Context) error {
	res, err := s.importBody(c, func(body []byte, opts geo.ParseOptions) ([]geo.ImportFeature, error) {
		return geo.ParseFeatureCollection(body, opts)
	})
	if err != nil {
		return err
	}
	c.JSON(http.StatusCreated, res)
	return nil
}

func (s *Server) createGrid(c *gin.Context) error {
	res, err := s.importBody(c, func(body []byte, opts geo.ParseOptions) ([]geo.ImportFeature, error) {
		f, err := geo.ParseFeature(body, opts)
		return []geo.ImportFeature{f}, err
	})
	if err != nil {
		return err
	}
	d, err := s.detail(c.Request.Context(), httpapi.Principal(c), res.Grids[0].ID, true)
	if err != nil {
		return err
	}
	c.Header("Location", "/api/v1/grids/"+strconv.FormatInt(d.ID, 10))
	c.JSON(http.StatusCreated, gin.H{"grid": d, "repairs": res.Repairs})
	return nil
}

// importBody reads ?crs= and ?repair=, parses the body with parse and
// imports what it gives.
func (s *Server) importBody(c *gin.Context, parse func([]byte, geo.ParseOptions) ([]geo.ImportFeature, error)) (*geo.ImportResult, error) {
	opts, err := s.parseOptions(c)
	if err != nil {
		return nil, err
	}
	repair, err := httpapi.BoolParam(c, "repair")
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

func (s *Server) getGrid(c *gin.Context, id int64) error {
	if at := c.Query("at"); at != "" {
		return s.gridAt(c, id, at)
	}
	withGeom := c.DefaultQuery("geometry", "true") != "false"
	d, err := s.detail(c.Request.Context(), httpapi.Principal(c), id, withGeom)
	if err != nil {
		return err
	}
	// The ETag names the version: a change sends it back in If-Match.
	etag := geo.ETag(id, d.Version)
	c.Header("ETag", etag)
	c.Header("Cache-Control", "private, no-cache")
	c.JSON(http.StatusOK, d)
	return nil
}

func (s *Server) detail(ctx context.Context, p *auth.Principal, id int64, withGeom bool) (*gridDetail, error) {
	chain, err := httpapi.ScopedChain(ctx, s.deps.Grids, p, id)
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

func (s *Server) deleteGrid(c *gin.Context, id int64) error {
	return httpapi.NoContent(c, s.deps.Grids.Delete(c.Request.Context(), id))
}

func (s *Server) listGrids(c *gin.Context) error {
	f, err := gridFilter(c)
	if err != nil {
		return err
	}
	if f.Limit, f.After, err = httpapi.PageParams(c); err != nil {
		return err
	}
	grids, next, err := s.deps.Grids.List(c.Request.Context(), f)
	return httpapi.JSON(c, http.StatusOK, httpapi.Page("grids", grids, next), err)
}

func (s *Server) gridsGeoJSON(c *gin.Context) error {
	f, err := gridFilter(c)
	if err != nil {
		return err
	}
	// Buffer the head so an error before the first byte is still a JSON error.
	c.Header("Content-Type", "application/geo+json")
	w := bufio.NewWriterSize(c.Writer, 64<<10)
	if err := s.deps.Grids.WriteGeoJSON(c.Request.Context(), w, f); err != nil {
		if c.Writer.Written() {
			s.log.Error("grids geojson: stream broken", "err", err, "request_id", c.GetString("request_id"))
			c.Abort()
			return nil
		}
		c.Writer.Header().Set("Content-Type", "application/json")
		return err
	}
	if err := w.Flush(); err != nil {
		s.log.Debug("grids geojson: client went away", "err", err)
	}
	return nil
}

func gridFilter(c *gin.Context) (geo.Filter, error) {
	var f geo.Filter
	f.Scope = httpapi.Principal(c).ScopeIDs()
	if lv := c.Query("level"); lv != "" {
		f.Level = geo.Level(strings.ToLower(lv))
		if !f.Level.Valid() {
			return f, httpapi.ParamError("level", lv, "want district, street, community or grid")
		}
	}
	if p := c.Query("parent"); p != "" {
		id, err := strconv.ParseInt(p, 10, 64)
		if err != nil || id <= 0 {
			return f, httpapi.ParamError("parent", p, "want a grid id")
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

func (s *Server) locate(c *gin.Context) error {
	lon, err := httpapi.FloatParam(c, "lon")
	if err != nil {
		return err
	}
	lat, err := httpapi.FloatParam(c, "lat")
	if err != nil {
		return err
	}
	crs, err := geo.ParseCRS(c.Query("crs"))
	if err != nil {
		return err
	}
	if err := geo.CheckLonLat(lon, lat); err != nil {
		return err
	}
	wlon, wlat := crs.ToWGS84(lon, lat)
	chain := httpapi.Principal(c).InScope(s.deps.Locator.Locate(wlon, wlat))
	c.JSON(http.StatusOK, gin.H{"grids": chain, "point": []float64{wlon, wlat}})
	return nil
}
