package api

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"gridwatch"
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
	id, err := idParam(c)
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
			return 0, from, to, paramError(p.name, v, "required: an RFC 3339 time")
		}
		if *p.t, err = time.Parse(time.RFC3339, v); err != nil {
			return 0, from, to, paramError(p.name, v, "not an RFC 3339 time, like 2026-11-26T09:00:00+08:00")
		}
	}
	if err := record.CheckRange(from, to); err != nil {
		return 0, from, to, err
	}
	if _, err := s.deps.Cameras.Get(c.Request.Context(), id, cameraViewer(principal(c))); err != nil {
		return 0, from, to, err
	}
	return id, from, to, nil
}

// listRecordings answers what a camera recorded between from and to: the
// recorded files and the gaps.
func (s *Server) listRecordings(c *gin.Context) {
	id, from, to, err := s.footageCamera(c)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	recs, gaps, err := s.deps.Recordings.List(c.Request.Context(), id, from, to)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	if recs == nil {
		recs = []record.Recording{}
	}
	if gaps == nil {
		gaps = []record.Gap{}
	}
	c.JSON(http.StatusOK, gin.H{"camera_id": id, "from": from, "to": to, "recordings": recs, "gaps": gaps})
}

// recordingStatus says whether recording runs: a full disk stops it
// (recording.disk_full and recording.resumed events tell the change).
func (s *Server) recordingStatus(c *gin.Context) {
	if s.deps.Recorder == nil {
		writeError(c, s.log, gridwatch.Errorf(gridwatch.EUnavailable, "recording is not running on this server"))
		return
	}
	c.JSON(http.StatusOK, s.deps.Recorder.DiskState())
}

// playback is an HLS VOD playlist of a camera's footage from the keyframe
// at or before from to to; its segments are byte ranges of the files.
func (s *Server) playback(c *gin.Context) {
	id, from, to, err := s.footageCamera(c)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	recs, _, err := s.deps.Recordings.List(c.Request.Context(), id, from, to)
	if err != nil {
		writeError(c, s.log, err)
		return
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
		writeError(c, s.log, err)
		return
	}
	// The playlist and the byte ranges it names are one viewing session.
	v := viewing(c, audit.Playback, audit.ProtoHLS, id, "")
	v.From, v.To = &from, &to
	s.deps.Viewings.Touch(v, int64(len(pl)))
	c.Data(http.StatusOK, "application/vnd.apple.mpegurl", pl)
}

// recordingFile serves a recorded file, with byte ranges.
func (s *Server) recordingFile(c *gin.Context) {
	if s.deps.Recordings == nil {
		writeError(c, s.log, gridwatch.Errorf(gridwatch.EUnavailable, "recording is not running on this server"))
		return
	}
	id, err := idParam(c)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	ctx := c.Request.Context()
	r, err := s.deps.Recordings.Get(ctx, id)
	if err == nil {
		// Footage of a camera outside the caller's scope does not exist for it.
		if _, err2 := s.deps.Cameras.Get(ctx, r.Camera, cameraViewer(principal(c))); err2 != nil {
			err = gridwatch.Errorf(gridwatch.ENotFound, "recording %d not found", id)
		}
	}
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	f, err := os.Open(filepath.Join(s.deps.RecordingsDir, filepath.Clean("/"+r.Path)))
	if err != nil {
		writeError(c, s.log, gridwatch.Errorf(gridwatch.ENotFound, "recording %d: its file is missing", id))
		return
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
}

// incidentFootage lists the footage linked to an incident the caller sees.
func (s *Server) incidentFootage(c *gin.Context) {
	id, err := s.visibleIncident(c)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	links, err := s.deps.Recordings.Links(c.Request.Context(), id)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	if links == nil {
		links = []record.Link{}
	}
	out := gin.H{"footage": links}
	// Its evidence exports, for those who may make and fetch them.
	if s.deps.Exports != nil && principal(c).Can(auth.VideoPlayback) {
		exports, err := s.deps.Exports.ForIncident(c.Request.Context(), id)
		if err != nil {
			writeError(c, s.log, err)
			return
		}
		if exports == nil {
			exports = []record.Export{}
		}
		out["exports"] = exports
	}
	c.JSON(http.StatusOK, out)
}

// linkFootage links a camera's footage to an incident by hand:
// {"camera_id", "from", "to"}. Linked footage is on evidence hold.
func (s *Server) linkFootage(c *gin.Context) {
	id, err := s.visibleIncident(c)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	var req struct {
		CameraID int64     `json:"camera_id"`
		From     time.Time `json:"from"`
		To       time.Time `json:"to"`
	}
	if err := bindJSON(c, &req); err != nil {
		writeError(c, s.log, err)
		return
	}
	ctx := c.Request.Context()
	if _, err := s.deps.Cameras.Get(ctx, req.CameraID, cameraViewer(principal(c))); err != nil {
		writeError(c, s.log, err)
		return
	}
	l, err := s.deps.Recordings.AddLink(ctx, id, req.CameraID, req.From, req.To, principal(c).Username)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.JSON(http.StatusCreated, l)
}

// unlinkFootage removes a footage link (and its evidence hold).
func (s *Server) unlinkFootage(c *gin.Context) {
	id, err := s.visibleIncident(c)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	link, err := strconv.ParseInt(c.Param("link"), 10, 64)
	if err != nil || link <= 0 {
		writeError(c, s.log, paramError("link", c.Param("link"), "not a positive integer"))
		return
	}
	if err := s.deps.Recordings.RemoveLink(c.Request.Context(), id, link); err != nil {
		writeError(c, s.log, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// visibleIncident is the incident of the path, if the caller may see it.
func (s *Server) visibleIncident(c *gin.Context) (int64, error) {
	if s.deps.Recordings == nil {
		return 0, gridwatch.Errorf(gridwatch.EUnavailable, "recording is not running on this server")
	}
	id, err := idParam(c)
	if err != nil {
		return 0, err
	}
	if _, err := s.deps.Incidents.Get(c.Request.Context(), id, viewer(principal(c))); err != nil {
		return 0, err
	}
	return id, nil
}

// listTags finds footage tags by camera, grid (with descendants), label and
// time; a scoped caller sees only its grids' cameras' tags.
func (s *Server) listTags(c *gin.Context) {
	if s.deps.Recordings == nil {
		writeError(c, s.log, gridwatch.Errorf(gridwatch.EUnavailable, "recording is not running on this server"))
		return
	}
	var f record.TagFilter
	for name, dst := range map[string]*int64{"camera": &f.CameraID} {
		if v := c.Query(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				writeError(c, s.log, paramError(name, v, "want an id"))
				return
			}
			*dst = n
		}
	}
	if v := c.Query("grid"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			writeError(c, s.log, paramError("grid", v, "want a grid id"))
			return
		}
		f.Grids = []int64{n}
	}
	f.Label = c.Query("label")
	if c.Query("from") != "" || c.Query("to") != "" {
		var err error
		if f.From, err = time.Parse(time.RFC3339, c.Query("from")); err != nil {
			writeError(c, s.log, paramError("from", c.Query("from"), "not an RFC 3339 time"))
			return
		}
		if f.To, err = time.Parse(time.RFC3339, c.Query("to")); err != nil {
			writeError(c, s.log, paramError("to", c.Query("to"), "not an RFC 3339 time"))
			return
		}
		if err := record.CheckRange(f.From, f.To); err != nil {
			writeError(c, s.log, err)
			return
		}
	}
	tags, err := s.deps.Recordings.Tags(c.Request.Context(), f, principal(c).ScopeIDs())
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	if tags == nil {
		tags = []record.Tag{}
	}
	for i := range tags {
		s.markEditable(c, &tags[i])
	}
	c.JSON(http.StatusOK, gin.H{"tags": tags})
}

// markEditable says whether the caller may edit and delete t.
func (s *Server) markEditable(c *gin.Context, t *record.Tag) {
	p := principal(c)
	t.Editable = p.Role == auth.RoleAdmin || (t.AuthorKey != "" && t.AuthorKey == tagAuthor(p).Key)
}

// createTag tags a stretch of a camera's footage.
func (s *Server) createTag(c *gin.Context) {
	var in record.TagInput
	if err := bindJSON(c, &in); err != nil {
		writeError(c, s.log, err)
		return
	}
	if err := s.tagCamera(c, in.CameraID); err != nil {
		writeError(c, s.log, err)
		return
	}
	t, err := s.deps.Recordings.AddTag(c.Request.Context(), in, tagAuthor(principal(c)))
	s.markEditable(c, &t)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.JSON(http.StatusCreated, t)
}

// updateTag edits a tag: its author or an admin.
func (s *Server) updateTag(c *gin.Context) {
	id, t, err := s.visibleTag(c)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	var in record.TagInput
	if err := bindJSON(c, &in); err != nil {
		writeError(c, s.log, err)
		return
	}
	if in.CameraID != 0 && in.CameraID != t.CameraID {
		writeError(c, s.log, gridwatch.Errorf(gridwatch.EInvalid, "camera_id: a tag stays on its camera"))
		return
	}
	p := principal(c)
	t, err = s.deps.Recordings.UpdateTag(c.Request.Context(), id, in, tagAuthor(p), p.Role == auth.RoleAdmin)
	s.markEditable(c, &t)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.JSON(http.StatusOK, t)
}

// deleteTag removes a tag: its author or an admin.
func (s *Server) deleteTag(c *gin.Context) {
	id, _, err := s.visibleTag(c)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	p := principal(c)
	if err := s.deps.Recordings.DeleteTag(c.Request.Context(), id, tagAuthor(p), p.Role == auth.RoleAdmin); err != nil {
		writeError(c, s.log, err)
		return
	}
	c.Status(http.StatusNoContent)
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
	_, err := s.deps.Cameras.Get(c.Request.Context(), camera, cameraViewer(principal(c)))
	return err
}

// visibleTag is the tag of the path, if the caller sees its camera.
func (s *Server) visibleTag(c *gin.Context) (int64, record.Tag, error) {
	if s.deps.Recordings == nil {
		return 0, record.Tag{}, gridwatch.Errorf(gridwatch.EUnavailable, "recording is not running on this server")
	}
	id, err := idParam(c)
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
func (s *Server) requestExport(c *gin.Context) {
	if s.deps.Exports == nil {
		writeError(c, s.log, gridwatch.Errorf(gridwatch.EUnavailable, "exports are not running on this server"))
		return
	}
	var req struct {
		CameraID   int64     `json:"camera_id"`
		From       time.Time `json:"from"`
		To         time.Time `json:"to"`
		IncidentID *int64    `json:"incident_id"`
	}
	if err := bindJSON(c, &req); err != nil {
		writeError(c, s.log, err)
		return
	}
	if err := s.tagCamera(c, req.CameraID); err != nil {
		writeError(c, s.log, err)
		return
	}
	ctx := c.Request.Context()
	if req.IncidentID != nil {
		if _, err := s.deps.Incidents.Get(ctx, *req.IncidentID, viewer(principal(c))); err != nil {
			writeError(c, s.log, err)
			return
		}
	}
	e, err := s.deps.Exports.Request(ctx, req.CameraID, req.From, req.To, req.IncidentID, principal(c).Username)
	if err != nil {
		if d := gridwatch.ErrorDetails(err); gridwatch.ErrorCode(err) == gridwatch.EThrottled && d["retry_after_s"] != nil {
			c.Header("Retry-After", fmt.Sprint(d["retry_after_s"]))
		}
		writeError(c, s.log, err)
		return
	}
	if e.Existing {
		// The same request was made before: its export, not a second copy.
		c.JSON(http.StatusOK, e)
		return
	}
	c.JSON(http.StatusAccepted, e)
}

// deleteExport removes an export, its file and its row (admins; audited).
// A held export must be released first.
func (s *Server) deleteExport(c *gin.Context) {
	e, err := s.visibleExport(c)
	if err == nil {
		err = s.deps.Exports.Delete(c.Request.Context(), e.ID)
	}
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// holdExport sets or clears an admin's hold on an export: {"held": bool}.
// A held export outlives --export-max-age and cannot be deleted.
func (s *Server) holdExport(c *gin.Context) {
	var req struct {
		Held *bool `json:"held"`
	}
	e, err := s.visibleExport(c)
	if err == nil {
		err = bindJSON(c, &req)
	}
	if err == nil && req.Held == nil {
		err = gridwatch.Errorf(gridwatch.EInvalid, "held is required: true to hold the export, false to release it").
			WithDetails(map[string]any{"field": "held"})
	}
	if err == nil {
		e, err = s.deps.Exports.Hold(c.Request.Context(), e.ID, *req.Held, principal(c).Username)
	}
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.JSON(http.StatusOK, e)
}

// visibleExport is the export of the path, if the caller sees its camera.
func (s *Server) visibleExport(c *gin.Context) (record.Export, error) {
	if s.deps.Exports == nil {
		return record.Export{}, gridwatch.Errorf(gridwatch.EUnavailable, "exports are not running on this server")
	}
	id, err := idParam(c)
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
func (s *Server) getExport(c *gin.Context) {
	e, err := s.visibleExport(c)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.JSON(http.StatusOK, e)
}

// exportFile downloads a finished export.
func (s *Server) exportFile(c *gin.Context) {
	e, err := s.visibleExport(c)
	if err == nil && e.Status != "done" {
		err = gridwatch.Errorf(gridwatch.EConflict, "export %d is %s, not done", e.ID, e.Status)
	}
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	f, err := os.Open(s.deps.Exports.Path(e.ID))
	if err != nil {
		writeError(c, s.log, gridwatch.Errorf(gridwatch.ENotFound, "export %d: its file is missing", e.ID))
		return
	}
	defer f.Close()
	c.Header("Content-Type", "video/mp4")
	c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="gridwatch-export-%d.mp4"`, e.ID))
	if e.SHA256 != nil {
		c.Header("X-Content-SHA256", *e.SHA256)
	}
	http.ServeContent(c.Writer, c.Request, "", *e.FinishedAt, f)
}

// verifyExport recomputes the SHA-256 of an export's file.
func (s *Server) verifyExport(c *gin.Context) {
	e, err := s.visibleExport(c)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	stored, now, err := s.deps.Exports.Verify(c.Request.Context(), e.ID)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"id": e.ID, "sha256": stored, "recomputed": now, "ok": stored == now})
}
