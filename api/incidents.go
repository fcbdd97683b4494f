package api

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"gridwatch"
	"gridwatch/api/httpapi"
	"gridwatch/auth"
	"gridwatch/geo"
	"gridwatch/incident"
)

func (s *Server) createIncident(c *gin.Context) error {
	crs, err := geo.ParseCRS(c.Query("crs"))
	if err != nil {
		return err
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return err
	}
	n, err := incident.ParseNew(body, crs, s.deps.Incidents.Now())
	if err != nil {
		return err
	}
	if n.IdempotencyKey = strings.TrimSpace(c.GetHeader("Idempotency-Key")); len(n.IdempotencyKey) > 200 {
		return gridwatch.Errorf(gridwatch.EInvalid, "the Idempotency-Key header is longer than 200 characters")
	}
	p := httpapi.Principal(c)
	if (n.Via != "" || n.AccuracyM != nil) && (p.Session == nil || p.Session.Device == "") {
		field := "via"
		if n.Via == "" {
			field = "accuracy_m"
		}
		return incident.FieldError(field, "is sent by the field app, signed in on a phone: other callers give the place alone")
	}
	in, created, err := s.deps.Incidents.Create(c.Request.Context(), n, httpapi.Reporter(s.deps.LeaderReportOutside, p), httpapi.IncidentViewer(p))
	if err != nil {
		return err
	}
	c.Header("Location", "/api/v1/incidents/"+strconv.FormatInt(in.ID, 10))
	status := http.StatusCreated
	if !created {
		status = http.StatusOK // a retry: the incident first filed
	}
	c.JSON(status, httpapi.ForCaller(p, in))
	return nil
}

// bulkIncidents reads NDJSON and answers NDJSON: one result a line, then
// a summary line, streamed as the batches are stored.
func (s *Server) bulkIncidents(c *gin.Context) error {
	crs, err := geo.ParseCRS(c.Query("crs"))
	if err != nil {
		return err
	}
	// The answer starts while the body is still being read: without full
	// duplex, net/http's HTTP/1 server reads up to 256 KiB of the unread
	// body away when the answer's header goes out (beside the reader),
	// and those lines were lost without a word (the kill test found it).
	// (A writer without it, HTTP/2's or a test's recorder, reads nothing
	// away.)
	if err := http.NewResponseController(c.Writer).EnableFullDuplex(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("bulk incidents: full duplex: %w", err)
	}
	// A body left unread by an early answer (the database away before
	// the first line) is read to its end here: net/http, in full duplex,
	// would otherwise start reading the connection's next request while
	// its own read of the body's end was still going, and panic
	// ("invalid concurrent Body.Read call"; the database restart test
	// found it). The body is bounded by the request size limit.
	defer func() { _, _ = io.Copy(io.Discard, c.Request.Body) }()
	w := bufio.NewWriterSize(c.Writer, 32<<10)
	enc := json.NewEncoder(w)
	started := false
	sum, err := s.deps.Incidents.Bulk(c.Request.Context(), c.Request.Body, crs, httpapi.Reporter(s.deps.LeaderReportOutside, httpapi.Principal(c)), func(r incident.LineResult) error {
		if !started {
			c.Header("Content-Type", "application/x-ndjson")
			c.Status(http.StatusOK)
			started = true
		}
		return enc.Encode(r)
	})
	if err != nil {
		if !started {
			return err
		}
		s.log.Error("bulk incidents: stream broken", "err", err, "request_id", c.GetString("request_id"))
		_ = enc.Encode(gin.H{"error": gin.H{"code": gridwatch.ErrorCode(err), "message": gridwatch.ErrorMessage(err)}})
		_ = w.Flush()
		return nil
	}
	if !started {
		c.Header("Content-Type", "application/x-ndjson")
		c.Status(http.StatusOK)
	}
	_ = enc.Encode(gin.H{"summary": sum})
	_ = w.Flush()
	return nil
}

// maxListIDs caps the ids a list may name (?ids=): a bulk event names at
// most incident.BulkEventIDs.
const maxListIDs = 1000

func (s *Server) listIncidents(c *gin.Context) error {
	var f incident.Filter
	var err error
	if f.GridID, err = httpapi.IDQuery(c, "grid", "a grid"); err != nil {
		return err
	}
	if f.ComponentID, err = httpapi.IDQuery(c, "component", "a component"); err != nil {
		return err
	}
	if v := c.Query("ids"); v != "" {
		for _, x := range strings.Split(v, ",") {
			id, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
			if err != nil || id <= 0 {
				return httpapi.ParamError("ids", v, "want incident ids separated by commas")
			}
			f.IDs = append(f.IDs, id)
		}
		if len(f.IDs) > maxListIDs {
			return httpapi.ParamError("ids", v, "at most "+strconv.Itoa(maxListIDs)+" ids")
		}
	}
	if st := c.Query("status"); st != "" {
		for _, x := range strings.Split(st, ",") {
			status := incident.Status(strings.TrimSpace(x))
			if !status.Valid() {
				return httpapi.ParamError("status", st, "unknown status "+string(status))
			}
			f.Statuses = append(f.Statuses, status)
		}
	}
	f.Category = c.Query("category")
	if err := httpapi.Span(c, &f.From, &f.To); err != nil {
		return err
	}
	if b := c.Query("bbox"); b != "" {
		bb, err := geo.ParseBBox(b)
		if err != nil {
			return err
		}
		f.BBox = &bb
	}
	if f.Overdue, err = httpapi.BoolParam(c, "overdue"); err != nil {
		return err
	}
	if f.Unassigned, err = httpapi.BoolParam(c, "unassigned"); err != nil {
		return err
	}
	if a := c.Query("assignee"); a != "" {
		p := httpapi.Principal(c)
		if a != "me" {
			return httpapi.ParamError("assignee", a, `want "me": the cases assigned to you`)
		}
		if p.Kind != "user" {
			return httpapi.ParamError("assignee", a, "an API token is nobody's staff member: assignee=me is for signed-in users")
		}
		f.AssigneeUser = p.ID
	}
	if f.Limit, f.Before, err = httpapi.PageParams(c); err != nil {
		return err
	}
	list, next, err := s.deps.Incidents.List(c.Request.Context(), f, httpapi.IncidentViewer(httpapi.Principal(c)))
	if err != nil {
		return err
	}
	for i := range list {
		list[i] = *httpapi.ForCaller(httpapi.Principal(c), &list[i])
	}
	c.JSON(http.StatusOK, httpapi.Page("incidents", list, next))
	return nil
}

func (s *Server) getIncident(c *gin.Context, id int64) error {
	in, err := s.deps.Incidents.Get(c.Request.Context(), id, httpapi.IncidentViewer(httpapi.Principal(c)))
	return httpapi.JSON(c, http.StatusOK, httpapi.ForCaller(httpapi.Principal(c), in), err)
}

func (s *Server) transitionIncident(c *gin.Context, id int64) error {
	var req incident.TransitionRequest
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	p := httpapi.Principal(c)
	may := func(st incident.Stage) bool {
		if st == incident.StageCommand {
			return p.Can(auth.IncidentsCommand)
		}
		return p.Can(auth.IncidentsHandle)
	}
	once, err := onceOf(c, p)
	if err != nil {
		return err
	}
	in, replayed, err := s.deps.Incidents.TransitionOnce(c.Request.Context(), id, req, once, httpapi.IncidentViewer(p), p.Username, may)
	if replayed {
		c.Header("Idempotent-Replayed", "true")
	}
	return httpapi.JSON(c, http.StatusOK, in, err)
}

// onceOf reads a request's Idempotency-Key (gridwatch.ValidKey) and who
// sent it.
func onceOf(c *gin.Context, p *auth.Principal) (incident.Once, error) {
	key := strings.TrimSpace(c.GetHeader("Idempotency-Key"))
	if err := gridwatch.CheckIdempotencyKey(key); err != nil || key == "" {
		return incident.Once{}, err
	}
	return incident.Once{Caller: callerKey(p), Key: key}, nil
}

// callerKey names who sends a keyed request ("user:<id>", "token:<id>"):
// one caller's keys never match another's.
func callerKey(p *auth.Principal) string { return p.Kind + ":" + strconv.FormatInt(p.ID, 10) }

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

func (s *Server) listCategories(c *gin.Context) error {
	cats, err := s.deps.Incidents.Categories(c.Request.Context())
	return httpapi.JSON(c, http.StatusOK, gin.H{"categories": cats}, err)
}

// gridInScope answers 404 for a grid the caller may not see.
func (s *Server) gridInScope(c *gin.Context, id int64) error {
	_, err := httpapi.ScopedChain(c.Request.Context(), s.deps.Grids, httpapi.Principal(c), id)
	return err
}

// inGrid is a handler of the grid named by the path's :id, which must be
// in the caller's scope (404 otherwise).
func (s *Server) inGrid(do func(c *gin.Context, id int64) error) httpapi.Handler {
	return httpapi.ByID(func(c *gin.Context, id int64) error {
		if err := s.gridInScope(c, id); err != nil {
			return err
		}
		return do(c, id)
	})
}

func (s *Server) listStaff(c *gin.Context, id int64) error {
	staff, err := s.deps.Incidents.ListStaff(c.Request.Context(), id)
	return httpapi.JSON(c, http.StatusOK, gin.H{"staff": staff}, err)
}

func (s *Server) addStaff(c *gin.Context, id int64) error {
	var st incident.Staff
	var req struct {
		Role         string `json:"role"`
		Name         string `json:"name"`
		Phone        string `json:"phone"`
		Organisation string `json:"organisation"`
		UserID       *int64 `json:"user_id"`
	}
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	st = incident.Staff{GridID: id, Role: req.Role, Name: req.Name, Phone: req.Phone, Organisation: req.Organisation, UserID: req.UserID}
	out, err := s.deps.Incidents.AddStaff(c.Request.Context(), st)
	return httpapi.JSON(c, http.StatusCreated, out, err)
}

func (s *Server) removeStaff(c *gin.Context, id int64) error {
	grid, err := s.deps.Incidents.StaffGrid(c.Request.Context(), id)
	if err == nil {
		err = s.gridInScope(c, grid)
	}
	if err != nil {
		return err
	}
	return httpapi.NoContent(c, s.deps.Incidents.RemoveStaff(c.Request.Context(), id))
}

// attachPhoto takes a photo as multipart form field "file", or as the raw
// body (with ?filename=).
func (s *Server) attachPhoto(c *gin.Context, id int64) error {
	var body io.Reader = c.Request.Body
	name := c.Query("filename")
	if strings.HasPrefix(c.ContentType(), "multipart/") {
		fh, err := c.FormFile("file")
		if err != nil {
			return incident.FieldError("file", "a multipart upload needs its photo in the field \"file\"")
		}
		f, err := fh.Open()
		if err != nil {
			return err
		}
		defer f.Close()
		body, name = f, fh.Filename
	}
	p := httpapi.Principal(c)
	a, err := s.deps.Incidents.Attach(c.Request.Context(), id, httpapi.IncidentViewer(p), name, body, p.Username)
	return httpapi.JSON(c, http.StatusCreated, a, err)
}

// uploadOf reads an upload's key from the path; its caller is p.
func uploadOf(c *gin.Context, p *auth.Principal) (incident.Once, error) {
	key := c.Param("key")
	if !gridwatch.ValidKey(key) {
		return incident.Once{}, httpapi.ParamError("key", key, "want 8 to 64 letters, digits, _ or -, made by the client for this file")
	}
	return incident.Once{Caller: callerKey(p), Key: key}, nil
}

// putUploadChunk is PUT /api/v1/incidents/:id/attachments/uploads/:key: one
// chunk of a resumable upload, placed by its Content-Range ("bytes S-E/T").
// 200 while incomplete, 201 when this chunk completed the attachment.
func (s *Server) putUploadChunk(c *gin.Context, id int64) error {
	p := httpapi.Principal(c)
	once, err := uploadOf(c, p)
	if err != nil {
		return err
	}
	start, end, total, err := parseContentRange(c.GetHeader("Content-Range"))
	if err != nil {
		return err
	}
	data, err := incident.ReadChunk(c.Request.Body, end-start+1)
	if err != nil {
		return err
	}
	up, complete, err := s.deps.Incidents.UploadChunk(c.Request.Context(), id, httpapi.IncidentViewer(p), once, c.Query("filename"),
		incident.Chunk{Start: start, Total: total, Data: data}, p.Username)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if complete {
		status = http.StatusCreated
	}
	c.JSON(status, up)
	return nil
}

// getUpload is GET /api/v1/incidents/:id/attachments/uploads/:key: how
// much of an upload arrived (a phone resuming asks this first).
func (s *Server) getUpload(c *gin.Context, id int64) error {
	p := httpapi.Principal(c)
	once, err := uploadOf(c, p)
	if err != nil {
		return err
	}
	up, err := s.deps.Incidents.UploadState(c.Request.Context(), id, httpapi.IncidentViewer(p), once)
	return httpapi.JSON(c, http.StatusOK, up, err)
}

// parseContentRange reads "bytes START-END/TOTAL" (END inclusive, TOTAL
// known), as a resumable upload's chunk carries it.
func parseContentRange(h string) (start, end, total int64, err error) {
	bad := func(why string) error {
		return gridwatch.Errorf(gridwatch.EInvalid, "Content-Range %q: %s; want bytes START-END/TOTAL, such as bytes 0-262143/1048576", truncateRunes(h, 80), why).
			WithDetails(map[string]any{"header": "Content-Range"})
	}
	if h == "" {
		return 0, 0, 0, bad("missing")
	}
	spec, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, 0, 0, bad(`not in bytes`)
	}
	rng, tot, ok := strings.Cut(spec, "/")
	if !ok {
		return 0, 0, 0, bad("no total")
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, 0, bad("no range")
	}
	num := func(v string) (int64, bool) {
		if v == "" || len(v) > 12 || strings.TrimLeft(v, "0123456789") != "" {
			return 0, false
		}
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	}
	var ok1, ok2, ok3 bool
	start, ok1 = num(a)
	end, ok2 = num(b)
	total, ok3 = num(tot)
	switch {
	case !ok1 || !ok2 || !ok3:
		return 0, 0, 0, bad("not whole numbers")
	case end < start:
		return 0, 0, 0, bad("the range ends before it starts")
	case total <= end:
		return 0, 0, 0, bad("the range ends past the total")
	}
	return start, end, total, nil
}

func (s *Server) getPhoto(c *gin.Context, id int64) error {
	aid, err := strconv.ParseInt(c.Param("aid"), 10, 64)
	if err != nil || aid <= 0 {
		return httpapi.ParamError("aid", c.Param("aid"), "want an attachment id")
	}
	a, f, err := s.deps.Incidents.OpenAttachment(c.Request.Context(), id, aid, httpapi.IncidentViewer(httpapi.Principal(c)))
	if err != nil {
		return err
	}
	defer f.Close()
	c.Header("Content-Type", a.ContentType)
	c.Header("Cache-Control", "private, no-cache") // a phone shared by two members keeps no case photo of the first
	c.Header("Content-Disposition", "inline; filename*=UTF-8''"+url.PathEscape(a.Filename))
	http.ServeContent(c.Writer, c.Request, "", a.CreatedAt, f)
	return nil
}
