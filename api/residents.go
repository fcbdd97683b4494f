package api

import (
	"maps"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"gridwatch/api/httpapi"
	"gridwatch/auth"
	"gridwatch/basedata"
)

// People (issue 19): households, residents, unmasking, moves, home visits.
// Households and residents are read with residents.read, always masked and
// narrowed to the caller's grids (outside them: 404); unmasking one
// resident needs residents.unmask and a stated purpose, and is audited;
// the bulk export of personal data needs residents.export and a server
// started with --pii-export. Roles without residents.read see people only
// as counts (the grid summary).

// peopleFilters are the list filters of households and residents.
var peopleFilters = []string{"grid", "care", "household", "building", "q"}

// peopleQuery are the query parameters of the people routes; peopleBodies
// the routes whose body is not one JSON document.
var (
	peopleQuery = map[string][]string{
		"POST /api/v1/residents/import":      {"format"},
		"GET /api/v1/households":             append(append([]string{}, peopleFilters...), pageQuery...),
		"GET /api/v1/households/:id":         nil,
		"GET /api/v1/residents":              append(append([]string{"id_number"}, peopleFilters...), pageQuery...),
		"GET /api/v1/residents/export":       append([]string{"id_number"}, peopleFilters...),
		"GET /api/v1/residents/:id":          nil,
		"POST /api/v1/residents/:id/unmask":  nil,
		"POST /api/v1/residents/:id/moves":   nil,
		"GET /api/v1/households/:id/visits":  pageQuery,
		"POST /api/v1/households/:id/visits": nil,
		"GET /api/v1/visits":                 append([]string{"grid", "mine"}, pageQuery...),
		"GET /api/v1/care-flags":             nil,
		"PUT /api/v1/care-flags/:code":       nil,
	}
	peopleBodies = map[string]bodyKind{
		"POST /api/v1/residents/import": bodyTable,
	}
)

func init() {
	maps.Copy(queryParams, peopleQuery)
	maps.Copy(bodyKinds, peopleBodies)
}

// peopleRoutes are the people routes.
func (s *Server) peopleRoutes() []Route {
	return []Route{
		s.bulkBody(httpapi.R("POST", "/api/v1/residents/import", auth.ResidentsWrite, s.importResidents)),
		httpapi.R("GET", "/api/v1/households", auth.ResidentsRead, baseList(s, "households", pagedPeopleFilter, (*basedata.Service).Households)),
		httpapi.R("GET", "/api/v1/households/:id", auth.ResidentsRead, baseGet(s, (*basedata.Service).Household)),
		httpapi.R("GET", "/api/v1/residents", auth.ResidentsRead, baseList(s, "residents", pagedPeopleFilter, (*basedata.Service).Residents)),
		httpapi.R("GET", "/api/v1/residents/export", auth.ResidentsExport, s.exportResidents),
		httpapi.R("GET", "/api/v1/residents/:id", auth.ResidentsRead, baseGet(s, (*basedata.Service).Resident)),
		httpapi.R("POST", "/api/v1/residents/:id/unmask", auth.ResidentsUnmask, httpapi.ByID(s.unmaskResident)),
		httpapi.R("POST", "/api/v1/residents/:id/moves", auth.ResidentsWrite, httpapi.ByID(s.moveResident)),
		// Every holder of visits.record holds residents.read.
		httpapi.R("GET", "/api/v1/households/:id/visits", auth.ResidentsRead, httpapi.ByID(s.householdVisits)),
		httpapi.R("POST", "/api/v1/households/:id/visits", auth.VisitsRecord, httpapi.ByID(s.recordVisit)),
		httpapi.R("GET", "/api/v1/visits", auth.VisitsRecord, s.listVisits),
		httpapi.R("GET", "/api/v1/care-flags", auth.Authenticated, s.listCareFlags),
		httpapi.R("PUT", "/api/v1/care-flags/:code", auth.UsersManage, s.putCareFlag),
	}
}

// peopleFilter reads the list filters: grid, care (flags, comma-separated:
// all of them), household, building, q, id_number.
func peopleFilter(c *gin.Context) (basedata.Filter, error) {
	var f basedata.Filter
	var err error
	if f.GridID, err = httpapi.IDQuery(c, "grid", "a grid"); err != nil {
		return f, err
	}
	if f.HouseholdID, err = httpapi.IDQuery(c, "household", "a household"); err != nil {
		return f, err
	}
	if f.BuildingID, err = httpapi.IDQuery(c, "building", "a building"); err != nil {
		return f, err
	}
	if v := c.Query("care"); v != "" {
		for _, flag := range strings.Split(v, ",") {
			if flag = strings.TrimSpace(flag); flag != "" {
				f.Care = append(f.Care, flag)
			}
		}
	}
	f.Q, f.IDNumber = c.Query("q"), strings.TrimSpace(c.Query("id_number"))
	return f, nil
}

func pagedPeopleFilter(c *gin.Context) (basedata.Filter, error) {
	f, err := peopleFilter(c)
	if err != nil {
		return f, err
	}
	f.Limit, f.Before, err = httpapi.PageParams(c)
	return f, err
}

// importResidents is POST /api/v1/residents/import[?format=csv|json]: a
// CSV (text/csv) or a JSON array of residents; 201 with what was created
// and updated; 422 invalid_rows listing every bad row, nothing stored.
func (s *Server) importResidents(c *gin.Context) error {
	svc, err := s.base()
	if err != nil {
		return err
	}
	o := basedata.ImportOptions{Viewer: baseViewer(httpapi.Principal(c)), Format: basedata.FormatGeoJSON}
	switch f := strings.ToLower(c.Query("format")); f {
	case "csv":
		o.Format = basedata.FormatCSV
	case "json":
	case "":
		if mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type")); err == nil && mt == "text/csv" {
			o.Format = basedata.FormatCSV
		}
	default:
		return httpapi.ParamError("format", f, "want csv or json")
	}
	res, err := svc.ImportResidents(c.Request.Context(), c.Request.Body, o)
	return httpapi.JSON(c, http.StatusCreated, res, err)
}

// unmaskResident is POST /api/v1/residents/:id/unmask {"purpose"}: the
// resident's personal data in full, recorded in the audit trail with the
// purpose; 422 purpose_required without one.
func (s *Server) unmaskResident(c *gin.Context, id int64) error {
	svc, err := s.base()
	if err != nil {
		return err
	}
	var req struct {
		Purpose string `json:"purpose"`
	}
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	// Personal data are not kept by anything between here and the browser.
	c.Header("Cache-Control", "no-store")
	u, err := svc.Unmask(c.Request.Context(), id, req.Purpose, baseViewer(httpapi.Principal(c)))
	return httpapi.JSON(c, http.StatusOK, u, err)
}

// moveResident is POST /api/v1/residents/:id/moves {"kind":"in",
// "household_id"} or {"kind":"out"}, with "at" (RFC 3339, default now) and
// "note": the resident as they now are, with their history.
func (s *Server) moveResident(c *gin.Context, id int64) error {
	svc, err := s.base()
	if err != nil {
		return err
	}
	var req struct {
		Kind        string     `json:"kind"`
		HouseholdID int64      `json:"household_id"`
		At          *time.Time `json:"at"`
		Note        string     `json:"note"`
	}
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	m := basedata.Move{Kind: req.Kind, HouseholdID: req.HouseholdID, Note: req.Note}
	if req.At != nil {
		m.At = *req.At
	}
	r, err := svc.Move(c.Request.Context(), id, m, baseViewer(httpapi.Principal(c)))
	return httpapi.JSON(c, http.StatusOK, r, err)
}

// exportResidents is GET /api/v1/residents/export and the list filters:
// a CSV of the residents the caller sees, personal data in full (the
// import's columns), when the server allows it (403 pii_export_disabled
// otherwise); audited with the rows sent.
func (s *Server) exportResidents(c *gin.Context) error {
	svc, err := s.base()
	if err != nil {
		return err
	}
	f, err := peopleFilter(c)
	if err != nil {
		return err
	}
	w := &lazyHeaders{ResponseWriter: c.Writer, set: func(h http.Header) {
		h.Set("Content-Type", "text/csv; charset=utf-8")
		h.Set("Content-Disposition", `attachment; filename="residents.csv"`)
		h.Set("Cache-Control", "private, no-store")
	}}
	if err := svc.ExportResidents(c.Request.Context(), f, baseViewer(httpapi.Principal(c)), w); err != nil {
		if w.wrote {
			s.log.Error("residents export cut short", "err", err)
			return nil
		}
		return err
	}
	if !w.wrote {
		w.Write(nil) //nolint:errcheck // the headers of an empty answer
	}
	return nil
}

// recordVisit is POST /api/v1/households/:id/visits {"visited_at","note"}
// with an optional Idempotency-Key: 201 with the visit; a replay 200 with
// the same visit (Idempotent-Replayed).
func (s *Server) recordVisit(c *gin.Context, id int64) error {
	svc, err := s.base()
	if err != nil {
		return err
	}
	var req struct {
		VisitedAt *time.Time `json:"visited_at"`
		Note      string     `json:"note"`
	}
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	v, created, err := svc.RecordVisit(c.Request.Context(), id, basedata.NewVisit{VisitedAt: req.VisitedAt, Note: req.Note},
		strings.TrimSpace(c.GetHeader("Idempotency-Key")), baseViewer(httpapi.Principal(c)))
	if err != nil {
		return err
	}
	c.Header("Location", "/api/v1/households/"+strconv.FormatInt(id, 10)+"/visits")
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
		replayed(c)
	}
	c.JSON(status, v)
	return nil
}

// householdVisits is GET /api/v1/households/:id/visits: the household's
// visits, newest first.
func (s *Server) householdVisits(c *gin.Context, id int64) error {
	svc, err := s.base()
	if err != nil {
		return err
	}
	f := basedata.VisitFilter{HouseholdID: id}
	if f.Limit, f.Before, err = httpapi.PageParams(c); err != nil {
		return err
	}
	list, next, err := svc.Visits(c.Request.Context(), f, baseViewer(httpapi.Principal(c)))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, httpapi.Page("visits", list, next))
	return nil
}

// listVisits is GET /api/v1/visits?grid=&mine=true: the visits made in
// the caller's grids (a grid's), or the caller's own.
func (s *Server) listVisits(c *gin.Context) error {
	svc, err := s.base()
	if err != nil {
		return err
	}
	p := httpapi.Principal(c)
	var f basedata.VisitFilter
	if f.GridID, err = httpapi.IDQuery(c, "grid", "a grid"); err != nil {
		return err
	}
	mine, err := httpapi.BoolParam(c, "mine")
	if err != nil {
		return err
	}
	if mine {
		if p.Kind != "user" {
			return httpapi.ParamError("mine", c.Query("mine"), "an API token makes no visits of its own")
		}
		f.UserID = p.ID
	}
	if f.Limit, f.Before, err = httpapi.PageParams(c); err != nil {
		return err
	}
	list, next, err := svc.Visits(c.Request.Context(), f, baseViewer(p))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, httpapi.Page("visits", list, next))
	return nil
}

func (s *Server) listCareFlags(c *gin.Context) error {
	svc, err := s.base()
	if err != nil {
		return err
	}
	flags, err := svc.CareFlags(c.Request.Context())
	return httpapi.JSON(c, http.StatusOK, gin.H{"care_flags": flags}, err)
}

// putCareFlag is PUT /api/v1/care-flags/:code {"name","position"}: adds a
// care flag, or renames or reorders one.
func (s *Server) putCareFlag(c *gin.Context) error {
	svc, err := s.base()
	if err != nil {
		return err
	}
	var req struct {
		Name     string `json:"name"`
		Position int    `json:"position"`
	}
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	f, err := svc.SetCareFlag(c.Request.Context(), c.Param("code"), req.Name, req.Position)
	return httpapi.JSON(c, http.StatusOK, f, err)
}
