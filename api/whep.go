package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"gridwatch"
	"gridwatch/api/httpapi"
	"gridwatch/audit"
	"gridwatch/auth"
	"gridwatch/camera/whep"
)

// maxOffer bounds an SDP offer (a browser's is a few kB).
const maxOffer = 64 << 10

// whepOffer answers a WHEP offer (POST /api/v1/cameras/{id}/whep, body
// application/sdp) for a camera stream: 201 with the SDP answer and the
// session's URL in Location. The session outlives the request: it ends
// when the viewer leaves, DELETEs it, or may no longer watch (its session
// or token is rechecked, as the MSE stream's is).
func (s *Server) whepOffer(c *gin.Context) error {
	if s.deps.WHEP == nil {
		return gridwatch.Errorf(gridwatch.EUnavailable, "WebRTC is not running on this server")
	}
	cam, name, err := s.videoCamera(c)
	if err != nil {
		return err
	}
	if ct := c.ContentType(); ct != "application/sdp" {
		return gridwatch.Errorf(gridwatch.EInvalid, "send the offer as application/sdp, not %q", ct)
	}
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, maxOffer+1))
	if err != nil {
		return gridwatch.Errorf(gridwatch.EInvalid, "the offer cannot be read: %v", err)
	}
	if len(body) > maxOffer {
		return gridwatch.Errorf(gridwatch.EInvalid, "the offer is over %d bytes", maxOffer)
	}
	recheck := s.credential(c)
	sess, answer, err := s.deps.WHEP.Offer(c.Request.Context(), cam.ID, name, string(body))
	if err != nil {
		return err
	}
	view := s.deps.Viewings.Start(viewing(c, audit.Live, audit.ProtoRTC, cam.ID, sess.Stream))
	go s.followWHEP(sess, view, cam.ID, recheck)
	c.Header("Location", "/api/v1/cameras/"+strconv.FormatInt(cam.ID, 10)+"/whep/"+sess.ID)
	c.Header("X-Gridwatch-Stream", sess.Stream)
	c.Header("X-Gridwatch-Codec", sess.Codec)
	// What the session does with the camera's audio: sends it, or why not.
	if sess.Audio != "" {
		c.Header("X-Gridwatch-Audio", headerText(sess.Audio))
	}
	if sess.AudioNote != "" {
		c.Header("X-Gridwatch-Audio-Note", headerText(sess.AudioNote))
	}
	c.Data(http.StatusCreated, "application/sdp", []byte(answer))
	return nil
}

// headerText makes a description fit for a response header. A browser
// reads a header's bytes as Latin-1, so UTF-8 beyond ASCII ("G.711 µ-law")
// and '%' are percent-encoded, which decodeURIComponent undoes; plain
// ASCII, most descriptions, reads as it is.
func headerText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// followWHEP records a session's viewing until it ends, and ends it when
// its caller may no longer watch the camera.
func (s *Server) followWHEP(sess *whep.Session, view *audit.ViewSession, id int64, recheck func(context.Context) (*auth.Principal, error)) {
	every := s.deps.EventsRecheck
	if every <= 0 {
		every = 30 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var sent int64
	account := func() {
		n := sess.Bytes()
		view.Add(n - sent)
		sent = n
	}
	defer view.End()
	defer account()
	for {
		select {
		case <-sess.Done():
			return
		case <-t.C:
		}
		account()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		p, err := recheck(ctx)
		if err == nil && !p.Can(auth.VideoLive) {
			err = gridwatch.Errorf(gridwatch.EForbidden, "may not watch video")
		}
		if err == nil {
			_, err = s.deps.Cameras.Get(ctx, id, httpapi.CameraViewer(p))
		}
		cancel()
		if err != nil && gridwatch.ErrorCode(err) != gridwatch.EInternal {
			s.log.Info("whep: access withdrawn, closing", "camera", id, "reason", gridwatch.ErrorCode(err))
			sess.Close()
			return
		}
	}
}

// credential captures how a request authenticated, so that a session that
// outlives it can be checked again later.
func (s *Server) credential(c *gin.Context) func(context.Context) (*auth.Principal, error) {
	if h := c.GetHeader("Authorization"); h != "" {
		tok, err := auth.ParseBearer(h)
		return func(ctx context.Context) (*auth.Principal, error) {
			if err != nil {
				return nil, err
			}
			return s.deps.Auth.AuthenticateToken(ctx, tok)
		}
	}
	for _, k := range []string{"api_key", "token"} {
		if key := c.Query(k); key != "" {
			return func(ctx context.Context) (*auth.Principal, error) { return s.deps.Auth.AuthenticateToken(ctx, key) }
		}
	}
	cookie, _ := c.Cookie(httpapi.SessionCookie)
	return func(ctx context.Context) (*auth.Principal, error) {
		if cookie == "" {
			return nil, gridwatch.Errorf(gridwatch.EUnauthenticated, "no session")
		}
		return s.deps.Auth.AuthenticateSession(ctx, cookie)
	}
}

// whepDelete ends a WHEP session (DELETE on its Location), as WHEP asks a
// viewer to when it leaves.
func (s *Server) whepDelete(c *gin.Context) error {
	if s.deps.WHEP == nil {
		return gridwatch.Errorf(gridwatch.EUnavailable, "WebRTC is not running on this server")
	}
	id, err := httpapi.IDParam(c)
	if err != nil {
		return err
	}
	sess := s.deps.WHEP.Get(c.Param("session"))
	if sess == nil || sess.Camera != id {
		return gridwatch.Errorf(gridwatch.ENotFound, "no WebRTC session %s of camera %d", c.Param("session"), id)
	}
	// Only a caller who may watch the camera may end its sessions.
	if _, _, err := s.videoCamera(c); err != nil {
		return err
	}
	sess.Close()
	c.Status(http.StatusNoContent)
	return nil
}
