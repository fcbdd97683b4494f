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
	c.JSON(http.StatusOK, gin.H{"footage": links})
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
