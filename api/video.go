package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/gin-gonic/gin"

	"gridwatch"
	"gridwatch/api/httpapi"
	"gridwatch/audit"
	"gridwatch/auth"
	"gridwatch/camera"
	"gridwatch/camera/live"
	"gridwatch/camera/pull"
	"gridwatch/camera/stream"
)

// videoCamera resolves the camera of a video route: in the caller's scope
// (404 outside it, as for the camera itself) and the stream asked for.
func (s *Server) videoCamera(c *gin.Context) (*camera.Camera, string, error) {
	if s.deps.Video == nil {
		return nil, "", gridwatch.Errorf(gridwatch.EUnavailable, "video is not running on this server")
	}
	id, err := httpapi.IDParam(c)
	if err != nil {
		return nil, "", err
	}
	name := c.DefaultQuery("stream", live.Main)
	if name != live.Main && name != live.Sub && name != live.Transcoded {
		return nil, "", httpapi.ParamError("stream", name, "want main, sub or h264 (the main stream transcoded to H.264)")
	}
	cam, err := s.deps.Cameras.Get(c.Request.Context(), id, httpapi.CameraViewer(httpapi.Principal(c)))
	if err != nil {
		return nil, "", err
	}
	if !cam.Enabled {
		return nil, "", gridwatch.Errorf(gridwatch.EConflict, "camera %s is disabled", cam.Code)
	}
	return cam, name, nil
}

// streamStates adds the running streams' live states to a camera.
func (s *Server) streamStates(cam *camera.Camera) {
	if s.deps.Video == nil {
		return
	}
	for _, name := range []string{live.Main, live.Sub, live.Transcoded} {
		if st, ok := s.deps.Video.State(cam.ID, name); ok {
			if cam.Streams == nil {
				cam.Streams = map[string]any{}
			}
			cam.Streams[name] = st
		}
	}
}

// wsConn adapts a WebSocket to live.Conn, counting what it sends for the
// viewing session.
type wsConn struct {
	c    *websocket.Conn
	view *audit.ViewSession
}

func (w wsConn) WriteText(ctx context.Context, b []byte) error {
	err := w.c.Write(ctx, websocket.MessageText, b)
	if err == nil {
		w.view.Add(int64(len(b)))
	}
	return err
}

func (w wsConn) WriteBinary(ctx context.Context, b []byte) error {
	err := w.c.Write(ctx, websocket.MessageBinary, b)
	if err == nil {
		w.view.Add(int64(len(b)))
	}
	return err
}

// viewing describes the caller watching a camera, for the view log: who,
// from where, how and what.
func viewing(c *gin.Context, kind, protocol string, cameraID int64, stream string) audit.Viewing {
	a := audit.ActorFrom(c.Request.Context())
	return audit.Viewing{Actor: a, Kind: kind, Protocol: protocol, Camera: cameraID, Stream: stream, IP: a.IP}
}

// liveMSE streams a camera as fMP4 over a WebSocket for Media Source
// Extensions (see live.ServeMSE for the messages).
func (s *Server) liveMSE(c *gin.Context) error {
	cam, name, err := s.videoCamera(c)
	if err != nil {
		return err
	}
	return s.serveMSE(c, cam.ID, name, audit.Live, func(ctx context.Context) (*stream.Hub, func() (pull.State, bool), func(), error) {
		hub, release, err := s.deps.Video.Acquire(ctx, cam.ID, name)
		return hub, func() (pull.State, bool) { return s.deps.Video.State(cam.ID, name) }, release, err
	})
}

// serveMSE serves a hub as fMP4 over a WebSocket (live.ServeMSE) to a
// viewer of camera, recorded in the view log as kind, until the viewer
// leaves or may no longer watch; acquire gives the hub (after the socket
// is accepted: a refused one closes it with the reason), its state and its
// release.
func (s *Server) serveMSE(c *gin.Context, camera int64, name, kind string, acquire func(ctx context.Context) (*stream.Hub, func() (pull.State, bool), func(), error)) error {
	// The server's write timeout is for ordinary requests; a stream sets
	// a deadline per message instead.
	rc := http.NewResponseController(c.Writer)
	_ = rc.SetWriteDeadline(time.Time{})
	_ = rc.SetReadDeadline(time.Time{})
	// Accept checks that a browser's Origin is this host: a page on
	// another site cannot open the stream with our cookie. It comes before
	// the camera is started.
	conn, err := websocket.Accept(c.Writer, c.Request, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return nil // Accept has answered
	}
	defer conn.CloseNow()
	ctx, cancel := context.WithCancelCause(conn.CloseRead(c.Request.Context()))
	defer cancel(nil)
	hub, state, release, err := acquire(ctx)
	if err != nil {
		conn.Close(websocket.StatusTryAgainLater, closeReason(err))
		return nil
	}
	defer release()
	// The session is recorded from the moment there is something to watch.
	view := s.deps.Viewings.Start(viewing(c, kind, audit.ProtoMSE, camera, name))
	defer view.End()
	// The stream ends when its session or token does, or the camera leaves
	// the caller's scope: recheck now and then, as the event stream does.
	// The recheck reads the gin context, which gin reuses once this
	// handler returns: wait for it to end first.
	done := make(chan struct{})
	rechecked := make(chan struct{})
	defer func() { close(done); <-rechecked }()
	go func() {
		defer close(rechecked)
		s.recheckVideo(c, camera, done, cancel)
	}()
	err = live.ServeMSE(ctx, hub, wsConn{conn, view}, state, live.MSEOptions{Audio: c.Query("audio") == "1"})
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errAccessWithdrawn):
		conn.Close(websocket.StatusPolicyViolation, closeReason(cause))
	case err == nil || errors.Is(err, context.Canceled):
		conn.Close(websocket.StatusNormalClosure, "")
	default:
		s.log.Debug("video viewer ended", "camera", camera, "stream", name, "err", err)
		conn.Close(websocket.StatusGoingAway, closeReason(err))
	}
	return nil
}

// errAccessWithdrawn ends a video stream whose caller may no longer watch.
var errAccessWithdrawn = errors.New("access withdrawn")

// recheckVideo checks the caller of a video stream again every
// EventsRecheck until done, and cancels the stream when the session or
// token has ended, the role lost video.live or the camera left the scope.
func (s *Server) recheckVideo(c *gin.Context, id int64, done <-chan struct{}, cancel context.CancelCauseFunc) {
	every := s.deps.EventsRecheck
	if every <= 0 {
		every = 30 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		ctx := c.Request.Context()
		p, err := s.authenticate(c, true)
		if err == nil && !p.Can(auth.VideoLive) {
			err = gridwatch.Errorf(gridwatch.EForbidden, "may not watch video")
		}
		if err == nil {
			_, err = s.deps.Cameras.Get(ctx, id, httpapi.CameraViewer(p))
		}
		if err != nil && ctx.Err() == nil {
			cancel(fmt.Errorf("%w: %s", errAccessWithdrawn, gridwatch.ErrorCode(err)))
			return
		}
	}
}

// closeReason is a WebSocket close reason: at most 123 bytes.
func closeReason(err error) string {
	msg := err.Error()
	if len(msg) > 120 {
		msg = msg[:120]
	}
	return msg
}

// hlsFile is a file of a live HLS stream, from its name: index.m3u8,
// init-N.mp4 or seg-N.m4s.
type hlsFile struct {
	kind string // "index", "init" or "seg"
	n    int
}

// parseHLSFile reads a live HLS file name. Anything else — seg-abc.m4s, a
// number beyond int, a sign — is no such file (404): the names are ours,
// written into the playlist, so a client never has a reason to send others.
func parseHLSFile(name string) (hlsFile, error) {
	if name == "index.m3u8" {
		return hlsFile{kind: "index"}, nil
	}
	for _, f := range []struct{ kind, prefix, suffix string }{{"init", "init-", ".mp4"}, {"seg", "seg-", ".m4s"}} {
		digits, ok := strings.CutPrefix(name, f.prefix)
		if digits, ok = strings.CutSuffix(digits, f.suffix); !ok || digits == "" || strings.Trim(digits, "0123456789") != "" {
			continue
		}
		n, err := strconv.ParseInt(digits, 10, 32)
		if err != nil {
			break
		}
		return hlsFile{kind: f.kind, n: int(n)}, nil
	}
	return hlsFile{}, gridwatch.Errorf(gridwatch.ENotFound, "no such file %q: the playlist is index.m3u8 and names its init-N.mp4 and seg-N.m4s", name)
}

// liveHLS serves a camera's live HLS: index.m3u8, init-N.mp4, seg-N.m4s.
func (s *Server) liveHLS(c *gin.Context) error {
	// The name first: a bad one should not start pulling the camera.
	file, err := parseHLSFile(c.Param("file"))
	if err != nil {
		return err
	}
	cam, name, err := s.videoCamera(c)
	if err != nil {
		return err
	}
	ctx := c.Request.Context()
	h, err := s.deps.Video.HLS(ctx, cam.ID, name)
	if err != nil {
		return err
	}
	c.Header("Cache-Control", "no-cache")
	switch file.kind {
	case "index":
		// Playlist URIs are relative; the stream choice and a URL token
		// must follow them.
		q := "?stream=" + name
		if tok := c.Query("token"); tok != "" {
			q += "&token=" + url.QueryEscape(tok)
		}
		wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		b, err := h.Playlist(wctx, q)
		if err != nil {
			return err
		}
		s.deps.Viewings.Touch(viewing(c, audit.Live, audit.ProtoHLS, cam.ID, name), int64(len(b)))
		c.Data(http.StatusOK, "application/vnd.apple.mpegurl", b)
	case "init":
		b, err := h.Init(file.n)
		if err != nil {
			return gridwatch.Errorf(gridwatch.ENotFound, "no such file %s", c.Param("file"))
		}
		s.deps.Viewings.Touch(viewing(c, audit.Live, audit.ProtoHLS, cam.ID, name), int64(len(b)))
		c.Data(http.StatusOK, "video/mp4", b)
	default:
		b, err := h.Segment(file.n)
		if err != nil {
			return err
		}
		s.deps.Viewings.Touch(viewing(c, audit.Live, audit.ProtoHLS, cam.ID, name), int64(len(b)))
		c.Header("Cache-Control", "max-age=60")
		c.Data(http.StatusOK, "video/iso.segment", b)
	}
	return nil
}

// snapshot answers a still of a camera (GET /api/v1/cameras/{id}/
// snapshot.jpg?stream=main|sub): its latest keyframe as a JPEG, the same
// for every caller for live.SnapshotTTL. X-Snapshot-Time says when the
// picture arrived. Taking one is recorded as watching.
func (s *Server) snapshot(c *gin.Context) error {
	cam, name, err := s.videoCamera(c)
	if err != nil {
		return err
	}
	if name == live.Transcoded {
		name = live.Main
	}
	snap, err := s.deps.Video.Snapshot(c.Request.Context(), cam.ID, name)
	if err != nil && cam.ONVIF != nil && s.deps.ONVIF != nil && c.Request.Context().Err() == nil {
		// No picture from the stream (it does not connect, no ffmpeg on this
		// node): the camera's own snapshot, over ONVIF.
		jpg, at, oerr := s.deps.ONVIF.Snapshot(c.Request.Context(), cam.ID)
		if oerr != nil {
			return err
		}
		snap, err = &live.Snapshot{JPEG: jpg, At: at}, nil
		c.Header("X-Snapshot-Source", "onvif")
	}
	if err != nil {
		return err
	}
	view := s.deps.Viewings.Start(viewing(c, audit.Live, audit.ProtoJPEG, cam.ID, name))
	view.Add(int64(len(snap.JPEG)))
	view.End()
	c.Header("Cache-Control", "private, max-age="+strconv.Itoa(int(live.SnapshotTTL/time.Second)))
	c.Header("X-Snapshot-Time", snap.At.UTC().Format(time.RFC3339Nano))
	c.Data(http.StatusOK, "image/jpeg", snap.JPEG)
	return nil
}
