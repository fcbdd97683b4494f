package rtspserve

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"

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

// lease is one acquisition of a camera stream's hub, with the ServerStream
// that describes it to gortsplib. It belongs to a connection between
// DESCRIBE and SETUP, then to the session; close releases it once.
type lease struct {
	key   key
	hub   *stream.Hub
	cache *packetCache // the hub's, shared with its other leases
	st    *gortsplib.ServerStream
	media *description.Media
	ssrc  uint32
	kind  stream.Kind // the coding the SDP announced
	// audio is the audio track the SDP announced (nil: none), as its
	// second medium.
	audio      *stream.Audio
	audioMedia *description.Media
	audioSSRC  uint32
	s          *Server
	release    func()
	once       sync.Once
	// token admitted the lease; the session's writer checks it again now
	// and then, so a revoked token's stream ends.
	token string
}

// close closes the ServerStream and calls release, the first time only.
func (l *lease) close() {
	l.once.Do(func() {
		if l.st != nil {
			l.st.Close()
		}
		if l.cache != nil {
			l.s.dropPacketCache(l.hub)
		}
		l.release()
		l.s.untrack(l)
	})
}

// connState is what a connection holds: the acquisition of its last
// successful DESCRIBE, until a SETUP takes it over or the connection closes.
// One at most, so a client cannot pile up cameras on a connection.
type connState struct {
	nc *gateConn

	mu      sync.Mutex
	pending *lease
}

// take removes and returns the pending lease if it is for k.
func (c *connState) take(k key) *lease {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.pending
	if l == nil || l.key != k {
		return nil
	}
	c.pending = nil
	return l
}

// put makes l the pending lease and returns the one it replaces, if any.
func (c *connState) put(l *lease) *lease {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.pending
	c.pending = l
	return old
}

// peek returns the pending lease if it is for k, leaving it in place.
func (c *connState) peek(k key) *lease {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending != nil && c.pending.key == k {
		return c.pending
	}
	return nil
}

// sessState is what a session holds: its lease from SETUP on, and from
// PLAY on its writer.
type sessState struct {
	lease *lease
	// channel is the interleaved channel of the video's RTP (RTCP is
	// channel+1); audioChannel the audio's. -1: that medium is not set up.
	channel, audioChannel int
	w                     *writer
	// end is what Config.Watch returned for this session's PLAY.
	end func(bytes int64)
}

// handler answers gortsplib's callbacks. It is separate from Server so that
// the callbacks are not part of Server's API. Nothing here logs a request as
// a whole: its URL and Authorization header may hold the token.
type handler struct {
	s   *Server
	srv *gortsplib.Server
	ctx context.Context // ends when Run is stopping
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

func remote(c *gortsplib.ServerConn) string { return c.NetConn().RemoteAddr().String() }

// OnConnOpen implements gortsplib.ServerHandlerOnConnOpen.
func (h *handler) OnConnOpen(ctx *gortsplib.ServerHandlerOnConnOpenCtx) {
	nc, _ := ctx.Conn.NetConn().(*gateConn)
	ctx.Conn.SetUserData(&connState{nc: nc})
	h.s.log.Debug("rtspserve: conn open", "remote", remote(ctx.Conn))
}

// OnConnClose implements gortsplib.ServerHandlerOnConnClose: an acquisition
// DESCRIBE made and no SETUP took over is released here.
func (h *handler) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	if cs, ok := ctx.Conn.UserData().(*connState); ok {
		if l := cs.put(nil); l != nil {
			l.close()
		}
	}
	h.s.log.Debug("rtspserve: conn closed", "remote", remote(ctx.Conn), "reason", errText(ctx.Error))
}

// admit authorises a request for path and acquires the hub, waiting for its
// first picture. It returns the lease, or the response to send.
func (h *handler) admit(conn *gortsplib.ServerConn, req *base.Request, path, query string) (*lease, *base.Response) {
	s := h.s
	id, name, ok := parsePath(path)
	if !ok {
		s.log.Debug("rtspserve: no such path", "method", string(req.Method), "path", path)
		return nil, status(base.StatusNotFound)
	}
	log := s.log.With("method", string(req.Method), "camera", id, "stream", name, "remote", remote(conn))

	ctx, cancel := context.WithTimeout(h.ctx, s.cfg.ReadyTimeout)
	defer cancel()
	// Access first: an unauthorised client must not start a camera.
	token := requestToken(req, query)
	if err := s.cfg.Access(ctx, token, id); err != nil {
		st := statusOf(err)
		if st == base.StatusInternalServerError {
			log.Error("rtspserve: access check failed", "err", errText(err))
		} else {
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
		err = l.describe(h.srv, params, hub.Audio())
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

// describe builds the ServerStream that describes the hub to gortsplib: a
// video medium, H.264 with the SPS and PPS in packetization mode 1, or
// H.265 with the VPS, SPS and PPS; then, when the camera has audio, an
// audio medium (see rtpaudio.Format). Their SSRCs are the ones the session's
// writer uses; gortsplib announces them in SETUP.
func (l *lease) describe(srv *gortsplib.Server, p *stream.Params, a *stream.Audio) error {
	var forma format.Format = &format.H264{PayloadTyp: payloadType, PacketizationMode: 1, SPS: p.SPS, PPS: p.PPS}
	if p.Kind == stream.H265 {
		forma = &format.H265{PayloadTyp: payloadType, VPS: p.VPS, SPS: p.SPS, PPS: p.PPS}
	}
	l.kind = p.Kind
	l.media = &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{forma}}
	desc := &description.Session{Medias: []*description.Media{l.media}}
	var aforma format.Format
	if a != nil {
		var err error
		if aforma, err = rtpaudio.Format(a); err != nil {
			return err
		}
		l.audio = a
		l.audioMedia = &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{aforma}}
		desc.Medias = append(desc.Medias, l.audioMedia)
	}
	st := &gortsplib.ServerStream{Server: srv, Desc: desc}
	if err := st.Initialize(); err != nil {
		return err
	}
	l.st = st
	stats := st.Stats()
	l.ssrc = stats.Medias[l.media].Formats[forma].LocalSSRC
	if l.audioMedia != nil {
		l.audioSSRC = stats.Medias[l.audioMedia].Formats[aforma].LocalSSRC
	}
	return nil
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (h *handler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	cs, ok := ctx.Conn.UserData().(*connState)
	if !ok {
		return status(base.StatusInternalServerError), nil, nil
	}
	if id, name, ok := parsePath(ctx.Path); ok {
		// A client describing the same stream again on this connection
		// was let in already: answer from what it holds.
		if l := cs.peek(key{id, name}); l != nil {
			return status(base.StatusOK), l.st, nil
		}
	}
	l, res := h.admit(ctx.Conn, ctx.Request, ctx.Path, ctx.Query)
	if l == nil {
		return res, nil, nil
	}
	if old := cs.put(l); old != nil {
		old.close()
	}
	h.s.log.Debug("rtspserve: described", "camera", l.key.camera, "stream", l.key.stream, "remote", remote(ctx.Conn))
	return status(base.StatusOK), l.st, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup. The lease comes from
// this connection's DESCRIBE of the same path, which authorised it, or from
// a new admission (a client that skips DESCRIBE, or SETUPs on another
// connection).
func (h *handler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Transport != gortsplib.TransportTCP {
		return status(base.StatusUnsupportedTransport), nil, nil
	}
	id, name, ok := parsePath(ctx.Path)
	if !ok {
		return status(base.StatusNotFound), nil, nil
	}
	k := key{id, name}
	if ss, ok := ctx.Session.UserData().(*sessState); ok {
		// SETUP again (gortsplib refused the previous one after we
		// answered it, or the client repeats it): same stream or nothing.
		if ss.lease.key != k {
			return status(base.StatusBadRequest), nil, nil
		}
		ss.setup(ctx.Request)
		return status(base.StatusOK), ss.lease.st, nil
	}
	var l *lease
	if cs, ok := ctx.Conn.UserData().(*connState); ok {
		l = cs.take(k)
	}
	if l == nil {
		var res *base.Response
		if l, res = h.admit(ctx.Conn, ctx.Request, ctx.Path, ctx.Query); l == nil {
			return res, nil, nil
		}
	}
	ss := &sessState{lease: l, channel: -1, audioChannel: -1}
	ss.setup(ctx.Request)
	ctx.Session.SetUserData(ss)
	return status(base.StatusOK), l.st, nil
}

// setup notes the channel of the medium a SETUP is for: the video (the
// first medium, trackID=0) or the audio (trackID=1).
func (ss *sessState) setup(req *base.Request) {
	used := 0
	if ss.channel >= 0 {
		used++
	}
	if ss.audioChannel >= 0 {
		used++
	}
	ch := interleavedChannel(req, used)
	if setupTrack(req) == 1 && ss.lease.audioMedia != nil {
		ss.audioChannel = ch
	} else {
		ss.channel = ch
	}
}

// setupTrack is the medium a SETUP names: gortsplib's controls end in
// "/trackID=N", N the medium's index (in the path, or in the query when
// the stream's URL has one). No control is the first medium.
func setupTrack(req *base.Request) int {
	for _, s := range []string{req.URL.RawQuery, req.URL.Path} {
		if i := strings.LastIndex(s, "/trackID="); i >= 0 {
			if n, err := strconv.Atoi(s[i+len("/trackID="):]); err == nil {
				return n
			}
		}
	}
	return 0
}

// interleavedChannel returns the RTP channel gortsplib assigns in SETUP:
// the client's interleaved=a-b when it gives one in the first transport
// gortsplib supports (the first TCP one: UDP is not offered), else the
// first free pair after the used media's.
func interleavedChannel(req *base.Request, used int) int {
	var ths headers.Transports
	if err := ths.Unmarshal(req.Header["Transport"]); err != nil {
		return 2 * used
	}
	for _, th := range ths {
		if th.Protocol == headers.TransportProtocolTCP && !th.Secure {
			if th.InterleavedIDs != nil {
				return th.InterleavedIDs[0]
			}
			return 2 * used
		}
	}
	return 2 * used
}

// OnPlay implements gortsplib.ServerHandlerOnPlay: it subscribes the
// session to the hub now, so the cached GOP is its first pictures, and
// starts its writer, which waits until this PLAY's response is written.
func (h *handler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	ss, ok := ctx.Session.UserData().(*sessState)
	if !ok {
		return status(base.StatusBadRequest), nil
	}
	if ss.w != nil {
		return status(base.StatusOK), nil // PLAY again while playing
	}
	cs, ok := ctx.Conn.UserData().(*connState)
	if !ok || cs.nc == nil || ss.channel > 253 || ss.audioChannel > 253 || ss.channel < 0 && ss.audioChannel < 0 {
		return status(base.StatusInternalServerError), nil
	}
	w := h.s.startWriter(h.ctx, writerConfig{
		lease:        ss.lease,
		session:      ctx.Session,
		conn:         ctx.Conn,
		nc:           cs.nc,
		channel:      ss.channel,
		audioChannel: ss.audioChannel,
		remote:       remote(ctx.Conn),
	})
	ss.w = w
	if watch := h.s.cfg.Watch; watch != nil {
		wctx, cancel := context.WithTimeout(h.ctx, h.s.cfg.ReadyTimeout)
		ss.end = watch(wctx, Play{Token: ss.lease.token, Camera: ss.lease.key.camera, Stream: ss.lease.key.stream, Remote: remote(ctx.Conn)})
		cancel()
	}
	h.s.log.Info("rtspserve: play", "camera", ss.lease.key.camera, "stream", ss.lease.key.stream, "remote", remote(ctx.Conn))
	return status(base.StatusOK), nil
}

// OnSessionClose implements gortsplib.ServerHandlerOnSessionClose: it stops
// the writer (which closes the viewer) and releases the acquisition.
func (h *handler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	ss, ok := ctx.Session.UserData().(*sessState)
	if !ok {
		return
	}
	if ss.w != nil {
		ss.w.stop()
		if ss.end != nil {
			// The count is final once the writer has returned (its write
			// has a deadline, so this wait is bounded): under load a
			// client can read a picture and leave before the Write that
			// sent it returned and was counted.
			<-ss.w.done
			ss.end(ss.w.sent.Load())
		}
	}
	ss.lease.close()
	h.s.log.Info("rtspserve: session closed", "camera", ss.lease.key.camera, "stream", ss.lease.key.stream,
		"reason", errText(ctx.Error))
}

// OnStreamWriteError implements gortsplib.ServerHandlerOnStreamWriteError,
// so that gortsplib never logs through the standard logger. Nothing is
// written through a ServerStream here, so it should not be called.
func (h *handler) OnStreamWriteError(ctx *gortsplib.ServerHandlerOnStreamWriteErrorCtx) {
	h.s.log.Debug("rtspserve: stream write error", "reason", errText(ctx.Error))
}

// OnDecodeError implements gortsplib.ServerHandlerOnDecodeError, for the
// same reason: RTCP a client sends that gortsplib cannot decode.
func (h *handler) OnDecodeError(ctx *gortsplib.ServerHandlerOnDecodeErrorCtx) {
	h.s.log.Debug("rtspserve: decode error", "reason", errText(ctx.Error))
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
