package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/twpayne/go-geom"
	"github.com/twpayne/go-geom/encoding/geojson"

	"gridwatch"
	"gridwatch/api/httpapi"
	"gridwatch/geo"
)

// Boundary changes: PUT a grid's geometry, move an edge, split, merge —
// each previewed with ?dry_run=true and committed under If-Match — and
// the grids' history.

// changeHandler serves a boundary change: it reads the grid id, If-Match,
// dry_run and the caller's scope, lets do read the rest of the request and
// make the change, and answers its report (or the error).
func (s *Server) changeHandler(do func(c *gin.Context, id int64, opts geo.ChangeOptions) (*geo.ChangeReport, error)) httpapi.Handler {
	return func(c *gin.Context) error {
		id, err := httpapi.IDParam(c)
		var opts geo.ChangeOptions
		if err == nil {
			opts, err = httpapi.ChangeOptions(c, s.deps.Grids, id)
		}
		var rep *geo.ChangeReport
		if err == nil {
			rep, err = do(c, id, opts)
		}
		return httpapi.ChangeResult(c, id, rep, err)
	}
}

// putGridGeometry replaces a grid's boundary: a GeoJSON geometry, or a
// Feature (editors send either).
func (s *Server) putGridGeometry(c *gin.Context, id int64, opts geo.ChangeOptions) (*geo.ChangeReport, error) {
	popts, err := s.parseOptions(c)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return nil, err
	}
	var probe struct {
		Type     string          `json:"type"`
		Geometry json.RawMessage `json:"geometry"`
	}
	if json.Unmarshal(body, &probe) == nil && probe.Type == "Feature" {
		body = probe.Geometry
	}
	g, err := geo.ParseGeometry(body, popts)
	if err != nil {
		return nil, err
	}
	return s.deps.Grids.Redraw(c.Request.Context(), id, g, opts)
}

func (s *Server) moveGridEdge(c *gin.Context, id int64, opts geo.ChangeOptions) (*geo.ChangeReport, error) {
	var req struct {
		Neighbour        int64           `json:"neighbour"`
		NeighbourVersion int             `json:"neighbour_version"`
		Line             json.RawMessage `json:"line"`
	}
	line, err := s.lineRequest(c, &req, func() json.RawMessage { return req.Line })
	if err != nil {
		return nil, err
	}
	if err := s.otherGrid(c, "neighbour", req.Neighbour, "the id of the grid on the other side of the edge"); err != nil {
		return nil, err
	}
	return s.deps.Grids.MoveEdge(c.Request.Context(), id, req.Neighbour, line, opts, req.NeighbourVersion)
}

func (s *Server) splitGrid(c *gin.Context, id int64, opts geo.ChangeOptions) (*geo.ChangeReport, error) {
	var req struct {
		Line json.RawMessage `json:"line"`
		New  geo.NewGrid     `json:"new"`
	}
	line, err := s.lineRequest(c, &req, func() json.RawMessage { return req.Line })
	if err != nil {
		return nil, err
	}
	return s.deps.Grids.Split(c.Request.Context(), id, line, req.New, opts)
}

func (s *Server) mergeGrids(c *gin.Context, id int64, opts geo.ChangeOptions) (*geo.ChangeReport, error) {
	var req struct {
		With        int64 `json:"with"`
		WithVersion int   `json:"with_version"`
	}
	if err := httpapi.BindJSON(c, &req); err != nil {
		return nil, err
	}
	if err := s.otherGrid(c, "with", req.With, "the id of the grid to merge into this one"); err != nil {
		return nil, err
	}
	return s.deps.Grids.Merge(c.Request.Context(), id, req.With, opts, req.WithVersion)
}

// lineRequest reads a JSON body into req and the line in it.
func (s *Server) lineRequest(c *gin.Context, req any, line func() json.RawMessage) (*geom.LineString, error) {
	popts, err := s.parseOptions(c)
	if err != nil {
		return nil, err
	}
	if err := httpapi.BindJSON(c, req); err != nil {
		return nil, err
	}
	return geo.ParseLine(line(), "line", popts)
}

// otherGrid checks the second grid a change names: given, and in scope.
func (s *Server) otherGrid(c *gin.Context, field string, id int64, what string) error {
	if id == 0 {
		return httpapi.ParamError(field, "", "required: "+what)
	}
	_, err := httpapi.ScopedChain(c.Request.Context(), s.deps.Grids, httpapi.Principal(c), id)
	return err
}

// versionJSON is a grid version with its boundary as GeoJSON.
type versionJSON struct {
	geo.Version
	Geometry json.RawMessage `json:"geometry,omitempty"`
}

func marshalVersion(v geo.Version) (versionJSON, error) {
	out := versionJSON{Version: v}
	if v.Geometry != nil {
		g, err := geojson.Marshal(v.Geometry, geojson.EncodeGeometryWithMaxDecimalDigits(7))
		if err != nil {
			return out, err
		}
		out.Geometry = g
	}
	return out, nil
}

// gridVersions lists a grid's versions, newest first; a merged-away
// grid's history stays readable to those who may read every grid.
func (s *Server) gridVersions(c *gin.Context, id int64) error {
	if err := s.historyInScope(c, id); err != nil {
		return err
	}
	withGeom, err := httpapi.BoolParam(c, "geometry")
	if err != nil {
		return err
	}
	vs, err := s.deps.Grids.Versions(c.Request.Context(), id, withGeom)
	if err != nil {
		return err
	}
	out := make([]versionJSON, 0, len(vs))
	for _, v := range vs {
		j, err := marshalVersion(v)
		if err != nil {
			return err
		}
		out = append(out, j)
	}
	c.JSON(http.StatusOK, gin.H{"grid_id": id, "versions": out})
	return nil
}

func (s *Server) gridVersion(c *gin.Context, id int64) error {
	n, err := pathVersion(id, c.Param("version"))
	if err != nil {
		return err
	}
	if err := s.historyInScope(c, id); err != nil {
		return err
	}
	v, err := s.deps.Grids.Version(c.Request.Context(), id, n)
	return s.writeVersion(c, v, err)
}

// pathVersion reads a version number from the path. Versions are
// PostgreSQL integers: a larger number is no version of the grid (404),
// not a query the database refuses (which was a 500).
func pathVersion(grid int64, v string) (int, error) {
	n, err := strconv.ParseInt(v, 10, 32)
	var ne *strconv.NumError
	switch {
	case errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) && !strings.HasPrefix(v, "-"):
		return 0, gridwatch.Errorf(gridwatch.ENotFound, "grid %d has no version %s", grid, v)
	case err != nil || n < 1:
		return 0, gridwatch.Errorf(gridwatch.EInvalid, "version %q in the path is not a version number (1, 2, …)", v).
			WithDetails(map[string]any{"param": "version", "value": v})
	}
	return int(n), nil
}

// writeVersion answers one grid version with its boundary.
func (s *Server) writeVersion(c *gin.Context, v *geo.Version, err error) error {
	var j versionJSON
	if err == nil {
		j, err = marshalVersion(*v)
	}
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, j)
	return nil
}

// gridAt answers GET /api/v1/grids/{id}?at=: the grid as it was then.
func (s *Server) gridAt(c *gin.Context, id int64, at string) error {
	t, err := time.Parse(time.RFC3339, at)
	if err != nil {
		return httpapi.ParamError("at", at, "not an RFC 3339 time, like 2026-11-26T09:00:00+08:00")
	}
	if err := s.historyInScope(c, id); err != nil {
		return err
	}
	v, err := s.deps.Grids.VersionAt(c.Request.Context(), id, t)
	return s.writeVersion(c, v, err)
}

// historyInScope: a scoped caller reads the history of a grid in scope;
// a removed grid's history only an unscoped one.
func (s *Server) historyInScope(c *gin.Context, id int64) error {
	p := httpapi.Principal(c)
	if !p.Scoped() {
		return nil
	}
	_, err := httpapi.ScopedChain(c.Request.Context(), s.deps.Grids, p, id)
	return err
}
