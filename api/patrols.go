package api

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"gridwatch"
	"gridwatch/api/httpapi"
	"gridwatch/auth"
	"gridwatch/geo"
	"gridwatch/incident"
	"gridwatch/patrol"
)

// Patrols (巡查): a member starts, feeds and ends their own patrol
// (patrols.record); the command centre reads everyone's in its scope
// (patrols.read), a member always their own. The read routes need
// patrols.record at the door, which every holder of patrols.read has, and
// the service narrows what each caller sees.

// patrols returns the patrol service, or 503 when the server has none.
func (s *Server) patrols() (*patrol.Service, error) {
	if s.deps.Patrols == nil {
		return nil, gridwatch.Errorf(gridwatch.EUnavailable, "patrols are not available on this server")
	}
	return s.deps.Patrols, nil
}

// patrolViewer is what p may see of patrols: its own (as a user; a token
// owns none) and, with patrols.read, others' in its scope.
func patrolViewer(p *auth.Principal) patrol.Viewer {
	v := patrol.Viewer{All: p.Can(auth.PatrolsRead), Grids: p.ScopeIDs()}
	if p.Kind == "user" {
		v.UserID = p.ID
	}
	return v
}

// patrolZone is the tz parameter, the statistics' zone by default.
func patrolZone(c *gin.Context) string {
	if z := c.Query("tz"); z != "" {
		return z
	}
	return incident.DefaultStatsZone
}

// optionalTime reads a body that is empty or {"<field>": RFC 3339 time}.
func optionalTime(c *gin.Context, field string) (*time.Time, error) {
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	var req map[string]*string
	if err := httpapi.BindJSON(c, &req); err != nil {
		return nil, err
	}
	for k := range req {
		if k != field {
			return nil, gridwatch.Errorf(gridwatch.EInvalid, "unknown field %q", k).WithDetails(map[string]any{"field": k})
		}
	}
	v := req[field]
	if v == nil {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, *v)
	if err != nil {
		return nil, patrol.FieldError(field, nil, "%q is not an RFC 3339 time such as 2026-11-26T09:30:00+08:00", *v)
	}
	return &t, nil
}

// replayed marks an answer that repeats an earlier change.
func replayed(c *gin.Context) { c.Header("Idempotent-Replayed", "true") }

// startPatrol is POST /api/v1/patrols: body {} or {"started_at"}, header
// Idempotency-Key (optional, 8..64 [A-Za-z0-9_-]). 201 with the patrol; a
// replay 200 with the same patrol. The member's patrol left open (or ended
// after started_at) that began before started_at is closed by the start,
// at its last point or started_at: the answer names it (closed_patrol_id).
// 409 when one of theirs began at or after started_at: details.patrol_id
// names it, and details.open_patrol_id too when it is still open.
func (s *Server) startPatrol(c *gin.Context) error {
	svc, err := s.patrols()
	if err != nil {
		return err
	}
	at, err := optionalTime(c, "started_at")
	if err != nil {
		return err
	}
	p, created, err := svc.Start(c.Request.Context(), patrolViewer(httpapi.Principal(c)), strings.TrimSpace(c.GetHeader("Idempotency-Key")), at)
	if err != nil {
		return err
	}
	c.Header("Location", "/api/v1/patrols/"+strconv.FormatInt(p.ID, 10))
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
		replayed(c)
	}
	c.JSON(status, p)
	return nil
}

// patrolPoints is POST /api/v1/patrols/:id/points[?crs=]: a batch
// {"points":[{"at","lon","lat","accuracy_m"}]} of the caller's patrol.
func (s *Server) patrolPoints(c *gin.Context, id int64) error {
	svc, err := s.patrols()
	if err != nil {
		return err
	}
	crs, err := geo.ParseCRS(c.Query("crs"))
	if err != nil {
		return err
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return err
	}
	pts, err := patrol.ParsePoints(body, crs)
	if err != nil {
		return err
	}
	added, err := svc.AddPoints(c.Request.Context(), id, patrolViewer(httpapi.Principal(c)), pts)
	return httpapi.JSON(c, http.StatusOK, added, err)
}

// endPatrol is POST /api/v1/patrols/:id/end: body {} or {"ended_at"}; {}
// ends it now, or at its last point when the phone's clock put that later.
// Ending an ended patrol answers it as it is (Idempotent-Replayed), unless
// ended_at is earlier than its end and fits it, which brings the end
// forward (the member's own end arriving after the server ended it).
func (s *Server) endPatrol(c *gin.Context, id int64) error {
	svc, err := s.patrols()
	if err != nil {
		return err
	}
	at, err := optionalTime(c, "ended_at")
	if err != nil {
		return err
	}
	p, changed, err := svc.End(c.Request.Context(), id, patrolViewer(httpapi.Principal(c)), at)
	if err != nil {
		return err
	}
	if !changed {
		replayed(c)
	}
	c.JSON(http.StatusOK, p)
	return nil
}

// listPatrols is GET /api/v1/patrols?active&user_id&day&tz&grid&limit&cursor.
func (s *Server) listPatrols(c *gin.Context) error {
	svc, err := s.patrols()
	if err != nil {
		return err
	}
	var f patrol.Filter
	if f.Active, err = httpapi.BoolParam(c, "active"); err != nil {
		return err
	}
	if f.UserID, err = httpapi.IDQuery(c, "user_id", "a user"); err != nil {
		return err
	}
	if f.GridID, err = httpapi.IDQuery(c, "grid", "a grid"); err != nil {
		return err
	}
	if day := c.Query("day"); day != "" {
		if f.From, f.To, err = patrol.Day(day, patrolZone(c)); err != nil {
			return err
		}
	} else if c.Query("tz") != "" {
		return httpapi.ParamError("tz", c.Query("tz"), "is the zone of day: give day too")
	}
	if f.Limit, f.Before, err = httpapi.PageParams(c); err != nil {
		return err
	}
	list, next, err := svc.List(c.Request.Context(), f, patrolViewer(httpapi.Principal(c)))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, httpapi.Page("patrols", list, next))
	return nil
}

func (s *Server) getPatrol(c *gin.Context, id int64) error {
	svc, err := s.patrols()
	if err != nil {
		return err
	}
	p, err := svc.Get(c.Request.Context(), id, patrolViewer(httpapi.Principal(c)))
	return httpapi.JSON(c, http.StatusOK, p, err)
}

// patrolTrack is GET /api/v1/patrols/:id/track: a GeoJSON Feature.
func (s *Server) patrolTrack(c *gin.Context, id int64) error {
	svc, err := s.patrols()
	if err != nil {
		return err
	}
	tr, err := svc.Track(c.Request.Context(), id, patrolViewer(httpapi.Principal(c)))
	if err != nil {
		return err
	}
	c.Header("Content-Type", "application/geo+json")
	c.JSON(http.StatusOK, tr)
	return nil
}

// patrolStats is GET /api/v1/stats/patrols?month=YYYY-MM&tz=: per member,
// the month's patrols, hours, distance and grids covered, with their open
// and overdue cases now. A member without patrols.read gets their own row.
// An open patrol's hours run to 10 minutes (patrol.LostAfter) past its last
// point, or to now when sooner; GET /patrols?active=true still lists it,
// its fresh_seconds telling how long it has been silent.
func (s *Server) patrolStats(c *gin.Context) error {
	svc, err := s.patrols()
	if err != nil {
		return err
	}
	q, err := svc.MonthQuery(c.Query("month"), patrolZone(c))
	if err != nil {
		return err
	}
	p := httpapi.Principal(c)
	v := patrolViewer(p)
	if !v.All {
		q.Members = []int64{v.UserID}
	}
	if s.deps.Incidents != nil {
		wl, err := s.deps.Incidents.Workload(c.Request.Context(), httpapi.IncidentViewer(p), q.Members)
		if err != nil {
			return err
		}
		q.Tasks = make(map[int64]patrol.Tasks, len(wl))
		for _, w := range wl {
			q.Tasks[w.UserID] = patrol.Tasks{Open: w.Open, Overdue: w.Overdue}
		}
	}
	st, err := svc.Stats(c.Request.Context(), q, v)
	return httpapi.JSON(c, http.StatusOK, st, err)
}
