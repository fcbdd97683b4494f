package rtspserve

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"

	"gridwatch"
	"gridwatch/camera/internal/rtpaudio"
	"gridwatch/camera/stream"
)

// payloadType is the dynamic RTP payload type of the H.264 medium.
const payloadType = 96

// key names a camera stream.
type key struct {
	camera int64
	stream string
}

// lease is one acquisition of a camera stream's hub, with the SDP that
// describes it. It belongs to a connection between DESCRIBE and SETUP, then
// to the session; close releases it once.
type lease struct {
	key   key
	hub   *stream.Hub
	cache *packetCache // the hub's, shared with its other leases
	sdp   []byte
	ssrc  uint32
	kind  stream.Kind // the coding the SDP announced
	// audio is the audio track the SDP announced (nil: none), as its
	// second medium.
	audio     *stream.Audio
	audioSSRC uint32
	s         *Server
	release   func()
	once      sync.Once
	// token admitted the lease; the session's writer checks it again now
	// and then, so a revoked token's stream ends.
	token string
}

// close calls release, the first time only.
func (l *lease) close() {
	l.once.Do(func() {
		if l.cache != nil {
			l.s.dropPacketCache(l.hub)
		}
		l.release()
		l.s.untrack(l)
	})
}

func status(code base.StatusCode) *base.Response { return &base.Response{StatusCode: code} }

// unauthorized is a 401 with the Basic challenge, so that clients that were
// given credentials (rtsp://user:token@host/…) send them.
func unauthorized() *base.Response {
	return &base.Response{
		StatusCode: base.StatusUnauthorized,
		Header:     base.Header{"WWW-Authenticate": base.HeaderValue{`Basic realm="gridwatch"`}},
	}
}

// admit authorises a request for path and acquires the hub, waiting for its
// first picture. It returns the lease, or the response to send.
func (s *Server) admit(req *base.Request, path, query, remote string) (*lease, *base.Response) {
	id, name, ok := parsePath(path)
	if !ok {
		s.log.Debug("rtspserve: no such path", "method", string(req.Method), "path", path)
		return nil, status(base.StatusNotFound)
	}
	log := s.log.With("method", string(req.Method), "camera", id, "stream", name, "remote", remote)

	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ReadyTimeout)
	defer cancel()
	// Access first: an unauthorised client must not start a camera.
	token := requestToken(req, query)
	if err := s.cfg.Access(ctx, token, id); err != nil {
		st := statusOf(err)
		switch {
		case st == base.StatusInternalServerError:
			log.Error("rtspserve: access check failed", "err", errText(err))
		case gridwatch.ErrorCode(err) == gridwatch.EInternal:
			// A fault that passes (statusOf): refused for now.
			log.Warn("rtspserve: access check failed; refused for now", "status", int(st), "err", errText(err))
		default:
			log.Info("rtspserve: refused", "status", int(st), "code", codeOf(err))
		}
		if st == base.StatusUnauthorized {
			return nil, unauthorized()
		}
		return nil, status(st)
	}
	hub, release, err := s.cfg.Acquire(ctx, id, name)
	if err == nil && hub == nil {
		err = errors.New("Acquire returned no hub")
		if release != nil {
			release()
		}
	}
	if err != nil {
		st := statusOf(err)
		log.Warn("rtspserve: acquire failed", "status", int(st), "err", errText(err))
		return nil, status(st)
	}
	if release == nil {
		release = func() {}
	}
	l := &lease{key: key{id, name}, hub: hub, s: s, release: release, token: token}
	s.track(l)
	params, err := hub.Ready(ctx)
	if err == nil {
		err = l.describe(params, hub.Audio())
	}
	if err == nil {
		l.cache, err = s.packetCache(hub)
	}
	if err != nil {
		l.close()
		st := statusOf(err)
		log.Warn("rtspserve: stream not ready", "status", int(st), "err", errText(err))
		return nil, status(st)
	}
	return l, nil
}

// describe builds the SDP that describes the hub: a video medium, H.264
// with the SPS and PPS in packetization mode 1, or H.265 with the VPS, SPS
// and PPS; then, when the camera has audio, an audio medium (see
// rtpaudio.Format). Their controls are trackID=0 and trackID=1, which every
// client resolves (some cannot do better). The SSRCs are the ones the
// session's writer uses, announced in SETUP.
func (l *lease) describe(p *stream.Params, a *stream.Audio) error {
	var forma format.Format = &format.H264{PayloadTyp: payloadType, PacketizationMode: 1, SPS: p.SPS, PPS: p.PPS}
	if p.Kind == stream.H265 {
		forma = &format.H265{PayloadTyp: payloadType, VPS: p.VPS, SPS: p.SPS, PPS: p.PPS}
	}
	l.kind = p.Kind
	l.ssrc = rand.Uint32()
	desc := &description.Session{Medias: []*description.Media{{Type: description.MediaTypeVideo, Control: "trackID=0", Formats: []format.Format{forma}}}}
	if a != nil {
		aforma, err := rtpaudio.Format(a)
		if err != nil {
			return err
		}
		l.audio = a
		l.audioSSRC = rand.Uint32()
		desc.Medias = append(desc.Medias, &description.Media{Type: description.MediaTypeAudio, Control: "trackID=1", Formats: []format.Format{aforma}})
	}
	sdp, err := desc.Marshal(false)
	if err != nil {
		return err
	}
	l.sdp = sdp
	return nil
}

// codeOf is err's code for a log line, never its text: what Access says
// about a token is for the client, not for the log.
func codeOf(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return gridwatch.ErrorCode(err)
}
