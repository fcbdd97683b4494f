package api

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"gridwatch"
	"gridwatch/auth"
	"gridwatch/geo"
	"gridwatch/incident"
)

// viewer turns the principal into the incident service's view: grid scope,
// and an integration token's own reports only.
func viewer(p *auth.Principal) incident.Viewer {
	v := incident.Viewer{Grids: p.ScopeIDs()}
	if p != nil && p.Role == auth.RoleIntegration {
		v.OwnToken = p.ID
		if p.Kind != "token" || p.ID == 0 {
			v.OwnToken = -1 // an integration without a stored token sees nothing
		}
	}
	return v
}

// forCaller trims what an integration (a hotline, a citizen app) sees of a
// case to its status: not who handles it, nor the internal history.
func forCaller(p *auth.Principal, in *incident.Incident) *incident.Incident {
	if p == nil || p.Role != auth.RoleIntegration || in == nil {
		return in
	}
	out := *in
	out.Assignee, out.History, out.CreatedBy = nil, nil, ""
	return &out
}

// reporter is who files a report: the caller (its keys are its own) and,
// for a grid leader unless Deps.LeaderReportOutside allows it, the grids
// the report must lie in.
func (s *Server) reporter(p *auth.Principal) incident.Reporter {
	r := incident.Reporter{Name: p.Username}
	if p.Kind == "token" {
		r.TokenID = p.ID
	} else {
		r.UserID = p.ID
	}
	if p.Role == auth.RoleGridLeader && !s.deps.LeaderReportOutside {
		r.Confine = p.Grids
		if r.Confine == nil {
			r.Confine = []geo.Ref{} // a leader without grids reports nowhere
		}
	}
	return r
}

func (s *Server) createIncident(c *gin.Context) {
	crs, err := geo.ParseCRS(c.Query("crs"))
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	n, err := incident.ParseNew(body, crs, time.Now())
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	if n.IdempotencyKey = strings.TrimSpace(c.GetHeader("Idempotency-Key")); len(n.IdempotencyKey) > 200 {
		writeError(c, s.log, gridwatch.Errorf(gridwatch.EInvalid, "the Idempotency-Key header is longer than 200 characters"))
		return
	}
	p := principal(c)
	in, created, err := s.deps.Incidents.Create(c.Request.Context(), n, s.reporter(p), viewer(p))
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.Header("Location", "/api/v1/incidents/"+strconv.FormatInt(in.ID, 10))
	status := http.StatusCreated
	if !created {
		status = http.StatusOK // a retry: the incident first filed
	}
	c.JSON(status, forCaller(p, in))
}

// bulkIncidents reads NDJSON and answers NDJSON: one result a line, then
// a summary line, streamed as the batches are stored.
func (s *Server) bulkIncidents(c *gin.Context) {
	crs, err := geo.ParseCRS(c.Query("crs"))
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	w := bufio.NewWriterSize(c.Writer, 32<<10)
	enc := json.NewEncoder(w)
	started := false
	sum, err := s.deps.Incidents.Bulk(c.Request.Context(), c.Request.Body, crs, s.reporter(principal(c)), func(r incident.LineResult) error {
		if !started {
			c.Header("Content-Type", "application/x-ndjson")
			c.Status(http.StatusOK)
			started = true
		}
		return enc.Encode(r)
	})
	if err != nil {
		if !started {
			writeError(c, s.log, err)
			return
		}
		s.log.Error("bulk incidents: stream broken", "err", err, "request_id", c.GetString("request_id"))
		_ = enc.Encode(gin.H{"error": gin.H{"code": gridwatch.ErrorCode(err), "message": gridwatch.ErrorMessage(err)}})
		_ = w.Flush()
		return
	}
	if !started {
		c.Header("Content-Type", "application/x-ndjson")
		c.Status(http.StatusOK)
	}
	_ = enc.Encode(gin.H{"summary": sum})
	_ = w.Flush()
}

// maxListIDs caps the ids a list may name (?ids=): a bulk event names at
// most incident.BulkEventIDs.
const maxListIDs = 1000

func (s *Server) listIncidents(c *gin.Context) {
	var f incident.Filter
	var err error
	if g := c.Query("grid"); g != "" {
		if f.GridID, err = strconv.ParseInt(g, 10, 64); err != nil || f.GridID <= 0 {
			writeError(c, s.log, paramError("grid", g, "want a grid id"))
			return
		}
	}
	if v := c.Query("ids"); v != "" {
		for _, x := range strings.Split(v, ",") {
			id, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
			if err != nil || id <= 0 {
				writeError(c, s.log, paramError("ids", v, "want incident ids separated by commas"))
				return
			}
			f.IDs = append(f.IDs, id)
		}
		if len(f.IDs) > maxListIDs {
			writeError(c, s.log, paramError("ids", v, "at most "+strconv.Itoa(maxListIDs)+" ids"))
			return
		}
	}
	if st := c.Query("status"); st != "" {
		for _, x := range strings.Split(st, ",") {
			status := incident.Status(strings.TrimSpace(x))
			if !status.Valid() {
				writeError(c, s.log, paramError("status", st, "unknown status "+string(status)))
				return
			}
			f.Statuses = append(f.Statuses, status)
		}
	}
	f.Category = c.Query("category")
	for _, tp := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := c.Query(tp.name); v != "" {
			if *tp.dst, err = time.Parse(time.RFC3339, v); err != nil {
				writeError(c, s.log, paramError(tp.name, v, "want an RFC 3339 time such as 2026-11-26T08:00:00+08:00"))
				return
			}
		}
	}
	if b := c.Query("bbox"); b != "" {
		bb, err := geo.ParseBBox(b)
		if err != nil {
			writeError(c, s.log, err)
			return
		}
		f.BBox = &bb
	}
	if f.Overdue, err = boolParam(c, "overdue"); err != nil {
		writeError(c, s.log, err)
		return
	}
	if f.Unassigned, err = boolParam(c, "unassigned"); err != nil {
		writeError(c, s.log, err)
		return
	}
	if f.Limit, f.Before, err = pageParams(c); err != nil {
		writeError(c, s.log, err)
		return
	}
	list, next, err := s.deps.Incidents.List(c.Request.Context(), f, viewer(principal(c)))
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	for i := range list {
		list[i] = *forCaller(principal(c), &list[i])
	}
	c.JSON(http.StatusOK, page("incidents", list, next))
}

func (s *Server) getIncident(c *gin.Context) {
	id, err := idParam(c)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	in, err := s.deps.Incidents.Get(c.Request.Context(), id, viewer(principal(c)))
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.JSON(http.StatusOK, forCaller(principal(c), in))
}

func (s *Server) transitionIncident(c *gin.Context) {
	id, err := idParam(c)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	var req incident.TransitionRequest
	if err := bindJSON(c, &req); err != nil {
		writeError(c, s.log, err)
		return
	}
	p := principal(c)
	may := func(st incident.Stage) bool {
		if st == incident.StageCommand {
			return p.Can(auth.IncidentsCommand)
		}
		return p.Can(auth.IncidentsHandle)
	}
	in, err := s.deps.Incidents.Transition(c.Request.Context(), id, req, viewer(p), p.Username, may)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.JSON(http.StatusOK, in)
}

func (s *Server) listCategories(c *gin.Context) {
	cats, err := s.deps.Incidents.Categories(c.Request.Context())
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"categories": cats})
}

// gridInScope answers 404 for a grid the caller may not see.
func (s *Server) gridInScope(c *gin.Context, id int64) error {
	_, err := s.scopedChain(c.Request.Context(), principal(c), id)
	return err
}

func (s *Server) listStaff(c *gin.Context) {
	id, err := idParam(c)
	if err == nil {
		err = s.gridInScope(c, id)
	}
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	staff, err := s.deps.Incidents.ListStaff(c.Request.Context(), id)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"staff": staff})
}

func (s *Server) addStaff(c *gin.Context) {
	id, err := idParam(c)
	if err == nil {
		err = s.gridInScope(c, id)
	}
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	var st incident.Staff
	var req struct {
		Role         string `json:"role"`
		Name         string `json:"name"`
		Phone        string `json:"phone"`
		Organisation string `json:"organisation"`
		UserID       *int64 `json:"user_id"`
	}
	if err := bindJSON(c, &req); err != nil {
		writeError(c, s.log, err)
		return
	}
	st = incident.Staff{GridID: id, Role: req.Role, Name: req.Name, Phone: req.Phone, Organisation: req.Organisation, UserID: req.UserID}
	out, err := s.deps.Incidents.AddStaff(c.Request.Context(), st)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.JSON(http.StatusCreated, out)
}

func (s *Server) removeStaff(c *gin.Context) {
	id, err := idParam(c)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	grid, err := s.deps.Incidents.StaffGrid(c.Request.Context(), id)
	if err == nil {
		err = s.gridInScope(c, grid)
	}
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	if err := s.deps.Incidents.RemoveStaff(c.Request.Context(), id); err != nil {
		writeError(c, s.log, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// attachPhoto takes a photo as multipart form field "file", or as the raw
// body (with ?filename=).
func (s *Server) attachPhoto(c *gin.Context) {
	id, err := idParam(c)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	var body io.Reader = c.Request.Body
	name := c.Query("filename")
	if strings.HasPrefix(c.ContentType(), "multipart/") {
		fh, err := c.FormFile("file")
		if err != nil {
			writeError(c, s.log, incident.FieldError("file", "a multipart upload needs its photo in the field \"file\""))
			return
		}
		f, err := fh.Open()
		if err != nil {
			writeError(c, s.log, err)
			return
		}
		defer f.Close()
		body, name = f, fh.Filename
	}
	p := principal(c)
	a, err := s.deps.Incidents.Attach(c.Request.Context(), id, viewer(p), name, body, p.Username)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.JSON(http.StatusCreated, a)
}

func (s *Server) getPhoto(c *gin.Context) {
	id, err := idParam(c)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	aid, err := strconv.ParseInt(c.Param("aid"), 10, 64)
	if err != nil || aid <= 0 {
		writeError(c, s.log, paramError("aid", c.Param("aid"), "want an attachment id"))
		return
	}
	a, f, err := s.deps.Incidents.OpenAttachment(c.Request.Context(), id, aid, viewer(principal(c)))
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	defer f.Close()
	c.Header("Content-Type", a.ContentType)
	c.Header("Cache-Control", "private, max-age=3600")
	c.Header("Content-Disposition", "inline; filename*=UTF-8''"+url.PathEscape(a.Filename))
	http.ServeContent(c.Writer, c.Request, "", a.CreatedAt, f)
}
