package api

import (
	"context"
	"io"
	"maps"
	"mime"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"gridwatch"
	"gridwatch/api/httpapi"
	"gridwatch/auth"
	"gridwatch/basedata"
	"gridwatch/geo"
	"gridwatch/incident"
)

// Base data (issue 19): buildings, parcels, components and grid summaries.
// Reading needs base.read, importing base.import, changing a component
// base.write; the service narrows everything to the caller's grids (an
// object outside them is not found).

// baseFilters are the list filters of buildings, parcels and components.
var baseFilters = []string{"grid", "bbox", "q", "use"}

// baseQuery are the query parameters of the base-data routes; baseBodies
// the routes whose body is not one JSON document.
var (
	baseQuery = map[string][]string{
		"POST /api/v1/buildings/import":  {"crs", "format"},
		"POST /api/v1/parcels/import":    {"crs", "format"},
		"POST /api/v1/components/import": {"crs", "format"},
		"GET /api/v1/buildings":          append(append([]string{}, baseFilters...), pageQuery...),
		"GET /api/v1/buildings/export":   append([]string{"format"}, baseFilters...),
		"GET /api/v1/buildings/:id":      nil,
		"GET /api/v1/parcels":            append(append([]string{}, baseFilters...), pageQuery...),
		"GET /api/v1/parcels/export":     append([]string{"format"}, baseFilters...),
		"GET /api/v1/parcels/:id":        nil,
		"GET /api/v1/components":         append(append([]string{"class", "state"}, baseFilters...), pageQuery...),
		"GET /api/v1/components/export":  append([]string{"format", "class", "state"}, baseFilters...),
		"GET /api/v1/components/:id":     nil,
		"PATCH /api/v1/components/:id":   nil,
		"GET /api/v1/component-classes":  nil,
		"GET /api/v1/grids/:id/summary":  nil,
	}
	baseBodies = map[string]bodyKind{
		"POST /api/v1/buildings/import":  bodyTable,
		"POST /api/v1/parcels/import":    bodyTable,
		"POST /api/v1/components/import": bodyTable,
	}
)

func init() {
	maps.Copy(queryParams, baseQuery)
	maps.Copy(bodyKinds, baseBodies)
}

// baseRoutes are the base-data routes.
func (s *Server) baseRoutes() []Route {
	imports := func(path string, do func(*basedata.Service, context.Context, io.Reader, basedata.ImportOptions) (*basedata.ImportResult, error)) Route {
		return s.bulkBody(httpapi.R("POST", path, auth.BaseImport, s.importBase(do)))
	}
	return []Route{
		imports("/api/v1/buildings/import", (*basedata.Service).ImportBuildings),
		imports("/api/v1/parcels/import", (*basedata.Service).ImportParcels),
		imports("/api/v1/components/import", (*basedata.Service).ImportComponents),
		httpapi.R("GET", "/api/v1/buildings", auth.BaseRead, baseList(s, "buildings", pagedFilter, (*basedata.Service).Buildings)),
		httpapi.R("GET", "/api/v1/buildings/export", auth.BaseRead, s.exportBase("buildings")),
		httpapi.R("GET", "/api/v1/buildings/:id", auth.BaseRead, httpapi.ByID(s.getBuilding)),
		httpapi.R("GET", "/api/v1/parcels", auth.BaseRead, baseList(s, "parcels", pagedFilter, (*basedata.Service).Parcels)),
		httpapi.R("GET", "/api/v1/parcels/export", auth.BaseRead, s.exportBase("parcels")),
		httpapi.R("GET", "/api/v1/parcels/:id", auth.BaseRead, baseGet(s, (*basedata.Service).Parcel)),
		httpapi.R("GET", "/api/v1/components", auth.BaseRead, baseList(s, "components", pagedFilter, (*basedata.Service).Components)),
		httpapi.R("GET", "/api/v1/components/export", auth.BaseRead, s.exportBase("components")),
		httpapi.R("GET", "/api/v1/components/:id", auth.BaseRead, httpapi.ByID(s.getComponent)),
		httpapi.R("PATCH", "/api/v1/components/:id", auth.BaseWrite, httpapi.ByID(s.patchComponent)),
		httpapi.R("GET", "/api/v1/component-classes", auth.BaseRead, s.componentClasses),
		httpapi.R("GET", "/api/v1/grids/:id/summary", auth.BaseRead, s.inGrid(s.gridSummary)),
	}
}

// base returns the base-data service, or 503 when the server has none.
func (s *Server) base() (*basedata.Service, error) {
	if s.deps.Base == nil {
		return nil, gridwatch.Errorf(gridwatch.EUnavailable, "base data is not available on this server")
	}
	return s.deps.Base, nil
}

// baseViewer is what p may see of base data: its grids, and residents one
// by one with residents.read.
func baseViewer(p *auth.Principal) basedata.Viewer {
	v := basedata.Viewer{Grids: p.ScopeIDs(), Residents: p.Can(auth.ResidentsRead)}
	if p.Kind == "user" {
		v.UserID = p.ID
	}
	return v
}

// baseList is the handler of a list of base data: the filter read by
// filter, the page listed by list as the caller may see it, under name.
func baseList[T any](s *Server, name string, filter func(*gin.Context) (basedata.Filter, error),
	list func(*basedata.Service, context.Context, basedata.Filter, basedata.Viewer) ([]T, int64, error)) httpapi.Handler {
	return func(c *gin.Context) error {
		svc, err := s.base()
		if err != nil {
			return err
		}
		f, err := filter(c)
		if err != nil {
			return err
		}
		items, next, err := list(svc, c.Request.Context(), f, baseViewer(httpapi.Principal(c)))
		if err != nil {
			return err
		}
		c.JSON(http.StatusOK, httpapi.Page(name, items, next))
		return nil
	}
}

// baseGet is the handler of one item of base data by id, as get gives it
// to the caller.
func baseGet[T any](s *Server, get func(*basedata.Service, context.Context, int64, basedata.Viewer) (*T, error)) httpapi.Handler {
	return httpapi.ByID(func(c *gin.Context, id int64) error {
		svc, err := s.base()
		if err != nil {
			return err
		}
		item, err := get(svc, c.Request.Context(), id, baseViewer(httpapi.Principal(c)))
		return httpapi.JSON(c, http.StatusOK, item, err)
	})
}

// importFormat is the format of an import: ?format=, else its
// Content-Type (text/csv is CSV; anything else GeoJSON).
func importFormat(c *gin.Context) (basedata.ImportFormat, error) {
	if f := c.Query("format"); f != "" {
		return basedata.ParseFormat(f)
	}
	if mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type")); err == nil && mt == "text/csv" {
		return basedata.FormatCSV, nil
	}
	return basedata.FormatGeoJSON, nil
}

// importBase is POST …/import[?crs=&format=]: 201 with what was created
// and updated; 422 invalid_rows listing every bad row, nothing stored.
func (s *Server) importBase(do func(*basedata.Service, context.Context, io.Reader, basedata.ImportOptions) (*basedata.ImportResult, error)) httpapi.Handler {
	return func(c *gin.Context) error {
		svc, err := s.base()
		if err != nil {
			return err
		}
		o := basedata.ImportOptions{Viewer: baseViewer(httpapi.Principal(c))}
		if o.CRS, err = geo.ParseCRS(c.Query("crs")); err != nil {
			return err
		}
		if o.Format, err = importFormat(c); err != nil {
			return err
		}
		res, err := do(svc, c.Request.Context(), c.Request.Body, o)
		return httpapi.JSON(c, http.StatusCreated, res, err)
	}
}

// baseFilter reads the list filters: grid, bbox, q, use (and, for
// components, class and state).
func baseFilter(c *gin.Context) (basedata.Filter, error) {
	var f basedata.Filter
	var err error
	if f.GridID, err = httpapi.IDQuery(c, "grid", "a grid"); err != nil {
		return f, err
	}
	if b := c.Query("bbox"); b != "" {
		bb, err := geo.ParseBBox(b)
		if err != nil {
			return f, err
		}
		f.BBox = &bb
	}
	f.Q, f.Use, f.Class, f.State = c.Query("q"), c.Query("use"), c.Query("class"), c.Query("state")
	return f, basedata.CheckFilter(f)
}

// pagedFilter is baseFilter with the page's limit and cursor.
func pagedFilter(c *gin.Context) (basedata.Filter, error) {
	f, err := baseFilter(c)
	if err != nil {
		return f, err
	}
	f.Limit, f.Before, err = httpapi.PageParams(c)
	return f, err
}

// caseSummary is a case as a building or component lists it.
type caseSummary struct {
	ID         int64           `json:"id"`
	Title      string          `json:"title"`
	Status     incident.Status `json:"status"`
	Category   string          `json:"category"`
	ReportedAt time.Time       `json:"reported_at"`
}

// maxListedCases is how many cases, newest first, a building or a
// component lists.
const maxListedCases = 20

// casesOf lists the newest cases matching f that p may see; nil when p
// may not read cases (the answer then has no "cases").
func (s *Server) casesOf(c *gin.Context, f incident.Filter) (*[]caseSummary, error) {
	p := httpapi.Principal(c)
	if s.deps.Incidents == nil || !p.Can(auth.IncidentsRead) {
		return nil, nil
	}
	f.Limit = maxListedCases
	list, _, err := s.deps.Incidents.List(c.Request.Context(), f, httpapi.IncidentViewer(p))
	if err != nil {
		return nil, err
	}
	out := make([]caseSummary, len(list))
	for i, in := range list {
		out[i] = caseSummary{ID: in.ID, Title: in.Title, Status: in.Status, Category: in.Category, ReportedAt: in.ReportedAt}
	}
	return &out, nil
}

// getBuilding is GET /api/v1/buildings/:id: the building, its households
// and, for those who may read cases, the newest cases reported at it
// (within 30 m of its footprint or point).
func (s *Server) getBuilding(c *gin.Context, id int64) error {
	svc, err := s.base()
	if err != nil {
		return err
	}
	b, err := svc.Building(c.Request.Context(), id, baseViewer(httpapi.Principal(c)))
	if err != nil {
		return err
	}
	box := b.Around(30)
	cases, err := s.casesOf(c, incident.Filter{BBox: &box})
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, struct {
		*basedata.BuildingDetail
		Cases *[]caseSummary `json:"cases,omitempty"`
	}{b, cases})
	return nil
}

// componentAnswer is a component with its cases, newest first.
func (s *Server) componentAnswer(c *gin.Context, status int, k *basedata.Component) error {
	cases, err := s.casesOf(c, incident.Filter{ComponentID: k.ID})
	if err != nil {
		return err
	}
	c.JSON(status, struct {
		*basedata.Component
		Cases *[]caseSummary `json:"cases,omitempty"`
	}{k, cases})
	return nil
}

func (s *Server) getComponent(c *gin.Context, id int64) error {
	svc, err := s.base()
	if err != nil {
		return err
	}
	k, err := svc.Component(c.Request.Context(), id, baseViewer(httpapi.Principal(c)))
	if err != nil {
		return err
	}
	return s.componentAnswer(c, http.StatusOK, k)
}

// patchComponent is PATCH /api/v1/components/:id {"state","name","department"}.
func (s *Server) patchComponent(c *gin.Context, id int64) error {
	svc, err := s.base()
	if err != nil {
		return err
	}
	var p basedata.ComponentPatch
	if err := httpapi.BindJSON(c, &p); err != nil {
		return err
	}
	k, err := svc.UpdateComponent(c.Request.Context(), id, p, baseViewer(httpapi.Principal(c)))
	if err != nil {
		return err
	}
	return s.componentAnswer(c, http.StatusOK, k)
}

func (s *Server) componentClasses(c *gin.Context) error {
	svc, err := s.base()
	if err != nil {
		return err
	}
	classes, err := svc.Classes(c.Request.Context())
	return httpapi.JSON(c, http.StatusOK, gin.H{"classes": classes}, err)
}

// gridSummary is GET /api/v1/grids/:id/summary: what the grid and its
// descendants hold.
func (s *Server) gridSummary(c *gin.Context, id int64) error {
	svc, err := s.base()
	if err != nil {
		return err
	}
	sum, err := svc.Summary(c.Request.Context(), id, baseViewer(httpapi.Principal(c)))
	return httpapi.JSON(c, http.StatusOK, sum, err)
}

// exportBase is GET /api/v1/{kind}/export?format=geojson|csv and the list
// filters: every row the caller sees, as a download.
func (s *Server) exportBase(kind string) httpapi.Handler {
	return func(c *gin.Context) error {
		svc, err := s.base()
		if err != nil {
			return err
		}
		format, err := basedata.ParseFormat(c.Query("format"))
		if err != nil {
			return err
		}
		f, err := baseFilter(c)
		if err != nil {
			return err
		}
		ctype, ext := "application/geo+json", ".geojson"
		if format == basedata.FormatCSV {
			ctype, ext = "text/csv; charset=utf-8", ".csv"
		}
		// The headers go out with the first bytes: an error before them
		// is still answered as JSON.
		w := &lazyHeaders{ResponseWriter: c.Writer, set: func(h http.Header) {
			h.Set("Content-Type", ctype)
			h.Set("Content-Disposition", `attachment; filename="`+kind+ext+`"`)
			h.Set("Cache-Control", "private, no-store")
		}}
		if err := svc.Export(c.Request.Context(), kind, format, f, baseViewer(httpapi.Principal(c)), w); err != nil {
			if w.wrote {
				s.log.Error("export cut short", "kind", kind, "err", err)
				return nil
			}
			return err
		}
		if !w.wrote {
			w.Write(nil) //nolint:errcheck // the headers of an empty answer
		}
		return nil
	}
}

// lazyHeaders sets a download's headers when its first bytes are written.
type lazyHeaders struct {
	gin.ResponseWriter
	set   func(http.Header)
	wrote bool
}

func (w *lazyHeaders) Write(b []byte) (int, error) {
	if !w.wrote {
		w.wrote = true
		w.set(w.Header())
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}
