package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"gridwatch"
	"gridwatch/api/httpapi"
	"gridwatch/audit"
	"gridwatch/auth"
	"gridwatch/camera/record"
)

// footageCamera resolves the camera of a footage route in the caller's
// scope, and the from/to range asked for.
func (s *Server) footageCamera(c *gin.Context) (int64, time.Time, time.Time, error) {
	if s.deps.Recordings == nil {
		return 0, time.Time{}, time.Time{}, gridwatch.Errorf(gridwatch.EUnavailable, "recording is not running on this server")
	}
	id, err := httpapi.IDParam(c)
	if err != nil {
		return 0, time.Time{}, time.Time{}, err
	}
	var from, to time.Time
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"from", &from}, {"to", &to}} {
		v := c.Query(p.name)
		if v == "" {
			return 0, from, to, httpapi.ParamError(p.name, v, "required: an RFC 3339 time")
		}
		if *p.t, err = time.Parse(time.RFC3339, v); err != nil {
			return 0, from, to, httpapi.ParamError(p.name, v, "not an RFC 3339 time, like 2026-11-26T09:00:00+08:00")
		}
	}
	if err := record.CheckRange(from, to); err != nil {
		return 0, from, to, err
	}
	if _, err := s.deps.Cameras.Get(c.Request.Context(), id, httpapi.CameraViewer(httpapi.Principal(c))); err != nil {
		return 0, from, to, err
	}
	return id, from, to, nil
}

// footage lists what the camera of a footage route recorded in the range
// asked for: the files and the gaps.
func (s *Server) footage(c *gin.Context) (int64, time.Time, time.Time, []record.Recording, []record.Gap, error) {
	id, from, to, err := s.footageCamera(c)
	if err != nil {
		return id, from, to, nil, nil, err
	}
	recs, gaps, err := s.deps.Recordings.List(c.Request.Context(), id, from, to)
	return id, from, to, recs, gaps, err
}

// listRecordings answers what a camera recorded between from and to: the
// recorded files and the gaps.
func (s *Server) listRecordings(c *gin.Context) error {
	id, from, to, recs, gaps, err := s.footage(c)
	if err != nil {
		return err
	}
	if recs == nil {
		recs = []record.Recording{}
	}
	if gaps == nil {
		gaps = []record.Gap{}
	}
	c.JSON(http.StatusOK, gin.H{"camera_id": id, "from": from, "to": to, "recordings": recs, "gaps": gaps})
	return nil
}

// recordingStatus says whether recording runs: a full disk stops it
// (recording.disk_full and recording.resumed events tell the change).
func (s *Server) recordingStatus(c *gin.Context) error {
	if s.deps.Recorder == nil {
		return gridwatch.Errorf(gridwatch.EUnavailable, "recording is not running on this server")
	}
	c.JSON(http.StatusOK, s.deps.Recorder.DiskState())
	return nil
}

// playback is an HLS VOD playlist of a camera's footage from the keyframe
// at or before from to to; its segments are byte ranges of the files.
func (s *Server) playback(c *gin.Context) error {
	id, from, to, recs, _, err := s.footage(c)
	if err != nil {
		return err
	}
	// Players do not carry a URL token over to the segments: name it.
	q := ""
	if tok := c.Query("token"); tok != "" {
		q = "?token=" + url.QueryEscape(tok)
	}
	pl, err := record.Playlist(recs, from, to, func(r record.Recording) string {
		return fmt.Sprintf("/api/v1/recordings/%d/file.mp4%s", r.ID, q)
	})
	if err != nil {
		return err
	}
	// The playlist and the byte ranges it names are one viewing session.
	v := viewing(c, audit.Playback, audit.ProtoHLS, id, "")
	v.From, v.To = &from, &to
	s.deps.Viewings.Touch(v, int64(len(pl)))
	c.Data(http.StatusOK, "application/vnd.apple.mpegurl", pl)
	return nil
}

// recordingFile serves a recorded file, with byte ranges.
func (s *Server) recordingFile(c *gin.Context) error {
	if s.deps.Recordings == nil {
		return gridwatch.Errorf(gridwatch.EUnavailable, "recording is not running on this server")
	}
	id, err := httpapi.IDParam(c)
	if err != nil {
		return err
	}
	ctx := c.Request.Context()
	r, err := s.deps.Recordings.Get(ctx, id)
	if err == nil {
		// Footage of a camera outside the caller's scope does not exist for it.
		if _, err2 := s.deps.Cameras.Get(ctx, r.Camera, httpapi.CameraViewer(httpapi.Principal(c))); err2 != nil {
			err = gridwatch.Errorf(gridwatch.ENotFound, "recording %d not found", id)
		}
	}
	if err != nil {
		return err
	}
	f, err := s.deps.Recorder.OpenFile(ctx, r)
	if err != nil {
		return err
	}
	defer f.Close()
	c.Header("Cache-Control", "private, max-age=3600")
	c.Header("Content-Type", "video/mp4")
	http.ServeContent(c.Writer, c.Request, "", r.End, f)
	if st := c.Writer.Status(); st == http.StatusOK || st == http.StatusPartialContent {
		v := viewing(c, audit.Playback, audit.ProtoFile, r.Camera, "")
		v.From, v.To = &r.Start, &r.End
		s.deps.Viewings.Touch(v, int64(max(c.Writer.Size(), 0)))
	}
	return nil
}

// peerRecordingFile serves another node a recorded file on this node's
// disk (a file still growing, or not yet uploaded to the object store):
// only to the cluster's peer token (auth.ClusterPeer).
func (s *Server) peerRecordingFile(c *gin.Context) error {
	if s.deps.Recordings == nil {
		return gridwatch.Errorf(gridwatch.EUnavailable, "recording is not running on this server")
	}
	id, err := httpapi.IDParam(c)
	if err != nil {
		return err
	}
	r, err := s.deps.Recordings.Get(c.Request.Context(), id)
	if err != nil {
		return err
	}
	if r.Object != "" || (r.Node != "" && r.Node != s.deps.Node) {
		return gridwatch.Errorf(gridwatch.ENotFound, "recording %d is not on this node", id)
	}
	r.Node = ""
	f, err := s.deps.Recorder.OpenFile(c.Request.Context(), r)
	if err != nil {
		return err
	}
	defer f.Close()
	c.Header("Content-Type", "video/mp4")
	http.ServeContent(c.Writer, c.Request, "", r.End, f)
	return nil
}

// incidentFootage lists the footage linked to an incident the caller sees.
func (s *Server) incidentFootage(c *gin.Context) error {
	id, err := s.visibleIncident(c)
	if err != nil {
		return err
	}
	links, err := s.deps.Recordings.Links(c.Request.Context(), id)
	if err != nil {
		return err
	}
	if links == nil {
		links = []record.Link{}
	}
	out := gin.H{"footage": links}
	// Its evidence exports, for those who may make and fetch them.
	if s.deps.Exports != nil && httpapi.Principal(c).Can(auth.VideoPlayback) {
		exports, err := s.deps.Exports.ForIncident(c.Request.Context(), id)
		if err != nil {
			return err
		}
		if exports == nil {
			exports = []record.Export{}
		}
		out["exports"] = exports
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// linkFootage links a camera's footage to an incident by hand:
// {"camera_id", "from", "to"}. Linked footage is on evidence hold.
func (s *Server) linkFootage(c *gin.Context) error {
	id, err := s.visibleIncident(c)
	if err != nil {
		return err
	}
	var req struct {
		CameraID int64     `json:"camera_id"`
		From     time.Time `json:"from"`
		To       time.Time `json:"to"`
	}
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	ctx := c.Request.Context()
	if _, err := s.deps.Cameras.Get(ctx, req.CameraID, httpapi.CameraViewer(httpapi.Principal(c))); err != nil {
		return err
	}
	l, err := s.deps.Recordings.AddLink(ctx, id, req.CameraID, req.From, req.To, httpapi.Principal(c).Username)
	return httpapi.JSON(c, http.StatusCreated, l, err)
}

// unlinkFootage removes a footage link (and its evidence hold).
func (s *Server) unlinkFootage(c *gin.Context) error {
	id, err := s.visibleIncident(c)
	if err != nil {
		return err
	}
	link, err := strconv.ParseInt(c.Param("link"), 10, 64)
	if err != nil || link <= 0 {
		return httpapi.ParamError("link", c.Param("link"), "not a positive integer")
	}
	return httpapi.NoContent(c, s.deps.Recordings.RemoveLink(c.Request.Context(), id, link))
}

// visibleIncident is the incident of the path, if the caller may see it.
func (s *Server) visibleIncident(c *gin.Context) (int64, error) {
	if s.deps.Recordings == nil {
		return 0, gridwatch.Errorf(gridwatch.EUnavailable, "recording is not running on this server")
	}
	id, err := httpapi.IDParam(c)
	if err != nil {
		return 0, err
	}
	if _, err := s.deps.Incidents.Get(c.Request.Context(), id, httpapi.IncidentViewer(httpapi.Principal(c))); err != nil {
		return 0, err
	}
	return id, nil
}

// listTags finds footage tags by camera, grid (with descendants), label and
// time; a scoped caller sees only its grids' cameras' tags.
func (s *Server) listTags(c *gin.Context) error {
	if s.deps.Recordings == nil {
		return gridwatch.Errorf(gridwatch.EUnavailable, "recording is not running on this server")
	}
	var f record.TagFilter
	for name, dst := range map[string]*int64{"camera": &f.CameraID} {
		if v := c.Query(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return httpapi.ParamError(name, v, "want an id")
			}
			*dst = n
		}
	}
	if v := c.Query("grid"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return httpapi.ParamError("grid", v, "want a grid id")
		}
		f.Grids = []int64{n}
	}
	f.Label = c.Query("label")
	if c.Query("from") != "" || c.Query("to") != "" {
		var err error
		if f.From, err = time.Parse(time.RFC3339, c.Query("from")); err != nil {
			return httpapi.ParamError("from", c.Query("from"), "not an RFC 3339 time")
		}
		if f.To, err = time.Parse(time.RFC3339, c.Query("to")); err != nil {
			return httpapi.ParamError("to", c.Query("to"), "not an RFC 3339 time")
		}
		if err := record.CheckRange(f.From, f.To); err != nil {
			return err
		}
	}
	tags, err := s.deps.Recordings.Tags(c.Request.Context(), f, httpapi.Principal(c).ScopeIDs())
	if err != nil {
		return err
	}
	if tags == nil {
		tags = []record.Tag{}
	}
	for i := range tags {
		s.markEditable(c, &tags[i])
	}
	c.JSON(http.StatusOK, gin.H{"tags": tags})
	return nil
}

// markEditable says whether the caller may edit and delete t.
func (s *Server) markEditable(c *gin.Context, t *record.Tag) {
	p := httpapi.Principal(c)
	t.Editable = p.Role == auth.RoleAdmin || (t.AuthorKey != "" && t.AuthorKey == tagAuthor(p).Key)
}

// createTag tags a stretch of a camera's footage.
func (s *Server) createTag(c *gin.Context, in *record.TagInput) error {
	if err := s.tagCamera(c, in.CameraID); err != nil {
		return err
	}
	t, err := s.deps.Recordings.AddTag(c.Request.Context(), *in, tagAuthor(httpapi.Principal(c)))
	s.markEditable(c, &t)
	return httpapi.JSON(c, http.StatusCreated, t, err)
}

// tagEdit is a handler of a change to the tag named by the path's :id,
// which the caller must see; by is the caller as a tag author, admin
// whether it may change others' tags.
func (s *Server) tagEdit(do func(c *gin.Context, id int64, t record.Tag, by record.Author, admin bool) error) httpapi.Handler {
	return func(c *gin.Context) error {
		id, t, err := s.visibleTag(c)
		if err != nil {
			return err
		}
		p := httpapi.Principal(c)
		return do(c, id, t, tagAuthor(p), p.Role == auth.RoleAdmin)
	}
}

// updateTag edits a tag: its author or an admin.
func (s *Server) updateTag(c *gin.Context, id int64, t record.Tag, by record.Author, admin bool) error {
	var in record.TagInput
	if err := httpapi.BindJSON(c, &in); err != nil {
		return err
	}
	if in.CameraID != 0 && in.CameraID != t.CameraID {
		return gridwatch.Errorf(gridwatch.EInvalid, "camera_id: a tag stays on its camera")
	}
	t, err := s.deps.Recordings.UpdateTag(c.Request.Context(), id, in, by, admin)
	s.markEditable(c, &t)
	return httpapi.JSON(c, http.StatusOK, t, err)
}

// deleteTag removes a tag: its author or an admin.
func (s *Server) deleteTag(c *gin.Context, id int64, _ record.Tag, by record.Author, admin bool) error {
	return httpapi.NoContent(c, s.deps.Recordings.DeleteTag(c.Request.Context(), id, by, admin))
}

// tagAuthor names the caller as a tag's author.
func tagAuthor(p *auth.Principal) record.Author {
	name := p.DisplayName
	if name == "" {
		name = p.Username
	}
	return record.Author{Name: name, Key: p.Kind + ":" + strconv.FormatInt(p.ID, 10)}
}

// tagCamera checks the caller sees the camera a tag is on.
func (s *Server) tagCamera(c *gin.Context, camera int64) error {
	if s.deps.Recordings == nil {
		return gridwatch.Errorf(gridwatch.EUnavailable, "recording is not running on this server")
	}
	if camera <= 0 {
		return gridwatch.Errorf(gridwatch.EInvalid, "camera_id: is required").WithDetails(map[string]any{"field": "camera_id"})
	}
	_, err := s.deps.Cameras.Get(c.Request.Context(), camera, httpapi.CameraViewer(httpapi.Principal(c)))
	return err
}

// visibleTag is the tag of the path, if the caller sees its camera.
func (s *Server) visibleTag(c *gin.Context) (int64, record.Tag, error) {
	if s.deps.Recordings == nil {
		return 0, record.Tag{}, gridwatch.Errorf(gridwatch.EUnavailable, "recording is not running on this server")
	}
	id, err := httpapi.IDParam(c)
	if err != nil {
		return 0, record.Tag{}, err
	}
	t, err := s.deps.Recordings.GetTag(c.Request.Context(), id)
	if err == nil {
		if err2 := s.tagCamera(c, t.CameraID); err2 != nil {
			err = gridwatch.Errorf(gridwatch.ENotFound, "tag %d not found", id)
		}
	}
	return id, t, err
}

// requestExport queues an evidence export: {"camera_id","from","to","incident_id"?}.
func (s *Server) requestExport(c *gin.Context) error {
	if s.deps.Exports == nil {
		return gridwatch.Errorf(gridwatch.EUnavailable, "exports are not running on this server")
	}
	var req struct {
		CameraID   int64     `json:"camera_id"`
		From       time.Time `json:"from"`
		To         time.Time `json:"to"`
		IncidentID *int64    `json:"incident_id"`
	}
	if err := httpapi.BindJSON(c, &req); err != nil {
		return err
	}
	if err := s.tagCamera(c, req.CameraID); err != nil {
		return err
	}
	ctx := c.Request.Context()
	if req.IncidentID != nil {
		if _, err := s.deps.Incidents.Get(ctx, *req.IncidentID, httpapi.IncidentViewer(httpapi.Principal(c))); err != nil {
			return err
		}
	}
	e, err := s.deps.Exports.Request(ctx, req.CameraID, req.From, req.To, req.IncidentID, httpapi.Principal(c).Username)
	if err != nil {
		if d := gridwatch.ErrorDetails(err); gridwatch.ErrorCode(err) == gridwatch.EThrottled && d["retry_after_s"] != nil {
			c.Header("Retry-After", fmt.Sprint(d["retry_after_s"]))
		}
		return err
	}
	if e.Existing {
		// The same request was made before: its export, not a second copy.
		c.JSON(http.StatusOK, e)
		return nil
	}
	c.JSON(http.StatusAccepted, e)
	return nil
}

// deleteExport removes an export, its file and its row (admins; audited).
// A held export must be released first.
func (s *Server) deleteExport(c *gin.Context) error {
	e, err := s.visibleExport(c)
	if err == nil {
		err = s.deps.Exports.Delete(c.Request.Context(), e.ID)
	}
	if err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// holdExport sets or clears an admin's hold on an export: {"held": bool}.
// A held export outlives --export-max-age and cannot be deleted.
func (s *Server) holdExport(c *gin.Context) error {
	var req struct {
		Held *bool `json:"held"`
	}
	e, err := s.visibleExport(c)
	if err == nil {
		err = httpapi.BindJSON(c, &req)
	}
	if err == nil && req.Held == nil {
		err = gridwatch.Errorf(gridwatch.EInvalid, "held is required: true to hold the export, false to release it").
			WithDetails(map[string]any{"field": "held"})
	}
	if err == nil {
		e, err = s.deps.Exports.Hold(c.Request.Context(), e.ID, *req.Held, httpapi.Principal(c).Username)
	}
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, e)
	return nil
}

// visibleExport is the export of the path, if the caller sees its camera.
func (s *Server) visibleExport(c *gin.Context) (record.Export, error) {
	if s.deps.Exports == nil {
		return record.Export{}, gridwatch.Errorf(gridwatch.EUnavailable, "exports are not running on this server")
	}
	id, err := httpapi.IDParam(c)
	if err != nil {
		return record.Export{}, err
	}
	e, err := s.deps.Exports.Get(c.Request.Context(), id)
	if err == nil && s.tagCamera(c, e.CameraID) != nil {
		err = gridwatch.Errorf(gridwatch.ENotFound, "export %d not found", id)
	}
	return e, err
}

// getExport is an export's state: queued, running (with progress), done
// (with its SHA-256 and manifest) or failed (with why).
func (s *Server) getExport(c *gin.Context) error {
	e, err := s.visibleExport(c)
	return httpapi.JSON(c, http.StatusOK, e, err)
}

// exportFile downloads a finished export.
func (s *Server) exportFile(c *gin.Context) error {
	e, err := s.visibleExport(c)
	if err == nil && e.Status != "done" {
		err = gridwatch.Errorf(gridwatch.EConflict, "export %d is %s, not done", e.ID, e.Status)
	}
	if err != nil {
		return err
	}
	f, err := s.deps.Exports.Open(c.Request.Context(), e)
	if err != nil {
		return err
	}
	defer f.Close()
	c.Header("Content-Type", "video/mp4")
	c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="gridwatch-export-%d.mp4"`, e.ID))
	if e.SHA256 != nil {
		c.Header("X-Content-SHA256", *e.SHA256)
	}
	http.ServeContent(c.Writer, c.Request, "", *e.FinishedAt, f)
	return nil
}

// verifyExport recomputes the SHA-256 of an export's file.
func (s *Server) verifyExport(c *gin.Context) error {
	e, err := s.visibleExport(c)
	if err != nil {
		return err
	}
	stored, now, err := s.deps.Exports.Verify(c.Request.Context(), e.ID)
	return httpapi.JSON(c, http.StatusOK, gin.H{"id": e.ID, "sha256": stored, "recomputed": now, "ok": stored == now}, err)
}
