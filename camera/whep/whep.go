// Package whep serves camera streams over WebRTC, answering WHEP offers
// (the WebRTC-HTTP Egress Protocol, draft-ietf-wish-whep, which go2rtc and
// MediaMTX speak too): a viewer POSTs an SDP offer, gets an answer, and
// receives the camera's video, and its audio when a browser can play it,
// over SRTP with sub-second latency.
//
// A session reads the camera's hub like every other output. Its first
// pictures are the hub's cached group of pictures, sent at once with tiny
// durations so the browser decodes through them and shows the latest
// picture immediately instead of queueing a GOP's worth of delay; after that
// each picture keeps its own duration. H.264 goes as it arrives; an H.265
// camera goes as H.265 to a viewer whose offer includes it, and otherwise
// from the camera's transcoded H.264 stream.
//
// Audio goes on a second track when the camera sends G.711 at 8 kHz mono
// or Opus, WebRTC's own codecs, and the offer receives that codec; only
// then does a session read the hub's audio frames too. AAC, which most
// cameras send, is no WebRTC codec: such a camera's viewers get its video
// only (MSE and HLS carry its audio), and the Session says so. Audio is
// sent as it arrives, each frame with its own duration, except that of a
// burst only the last moments go (see audioBurst).
//
// Offers are answered without trickle ICE: the answer carries the server's
// host candidates (and any configured public addresses), so one POST
// suffices, as WHEP allows.
package whep

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"gridwatch"
	"gridwatch/camera/stream"
)

// Acquirer hands out a camera stream's hub (live.Manager.Acquire).
type Acquirer func(ctx context.Context, camera int64, name string) (*stream.Hub, func(), error)

// Config configures a Server.
type Config struct {
	Acquire Acquirer
	Logger  *slog.Logger
	// PublicIPs are addresses to announce instead of the host's own (a
	// server behind 1:1 NAT); empty: the host's addresses.
	PublicIPs []string
	// ICEServers are STUN and TURN servers (stun:, turn:, turns: URLs)
	// the server gathers candidates through, and offers the browsers
	// (ICEServers()); TURNUsername and TURNCredential go with the TURN ones.
	ICEServers                   []string
	TURNUsername, TURNCredential string
	// UDPPortMin and UDPPortMax bound the ports sessions use (0: any).
	UDPPortMin, UDPPortMax uint16
	// GatherTimeout bounds waiting for the server's candidates (default 2 s).
	GatherTimeout time.Duration
	// MaxSessions bounds the sessions at once (default 500).
	MaxSessions int
}

// Server answers WHEP offers and runs their sessions.
type Server struct {
	cfg Config
	api *webrtc.API
	log *slog.Logger

	mu       sync.Mutex
	sessions map[string]*Session
	closed   bool
	wg       sync.WaitGroup
}

// New makes a server.
func New(cfg Config) (*Server, error) {
	if cfg.Acquire == nil {
		return nil, errors.New("whep: Acquire is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.GatherTimeout <= 0 {
		cfg.GatherTimeout = 2 * time.Second
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 500
	}
	me := &webrtc.MediaEngine{}
	for _, c := range []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, PayloadType: 102},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032"}, PayloadType: 112},
		// H.265 Main and Main 10 (profile-id 1 and 2), offered to whom
		// offers them.
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH265, ClockRate: 90000, SDPFmtpLine: "profile-id=1"}, PayloadType: 49},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH265, ClockRate: 90000, SDPFmtpLine: "profile-id=2"}, PayloadType: 50},
	} {
		if err := me.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, fmt.Errorf("whep: %w", err)
		}
	}
	// The audio a camera may send that browsers play over WebRTC (see
	// webrtcAudio); registered, they are answered to whom offers them.
	for _, c := range []webrtc.RTPCodecParameters{opusCodec, pcmuCodec, pcmaCodec} {
		if err := me.RegisterCodec(c, webrtc.RTPCodecTypeAudio); err != nil {
			return nil, fmt.Errorf("whep: %w", err)
		}
	}
	se := webrtc.SettingEngine{}
	// A viewer on the same host (the demo, the tests) reaches loopback.
	se.SetIncludeLoopbackCandidate(true)
	// Host candidates only, no mDNS: the server's addresses are what the
	// viewer must reach.
	se.SetICEMulticastDNSMode(0)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	if len(cfg.PublicIPs) > 0 {
		se.SetNAT1To1IPs(cfg.PublicIPs, webrtc.ICECandidateTypeHost)
	}
	if cfg.UDPPortMin > 0 || cfg.UDPPortMax > 0 {
		if err := se.SetEphemeralUDPPortRange(cfg.UDPPortMin, cfg.UDPPortMax); err != nil {
			return nil, fmt.Errorf("whep: UDP ports: %w", err)
		}
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se))
	return &Server{cfg: cfg, api: api, log: cfg.Logger, sessions: map[string]*Session{}}, nil
}

// Session is one viewer's WebRTC session.
type Session struct {
	ID     string
	Camera int64
	// Stream is the camera stream it plays (main, sub, or h264 when an
	// H.265 camera is transcoded for a viewer without H.265).
	Stream string
	// Codec is what it sends: "H264" or "H265".
	Codec string
	// Audio describes the camera's audio track when the session sends it
	// too ("G.711 A-law 8 kHz mono"); "" when it sends video only.
	Audio string
	// AudioNote says why a camera's audio is not sent ("the camera's audio
	// (AAC 16 kHz mono) is not playable over WebRTC: MSE/HLS carry it");
	// "" when it is, or the camera has none.
	AudioNote string

	pc      *webrtc.PeerConnection
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	bytes   int64
	started time.Time
}

// Bytes is how many bytes of video and audio the session has sent so far.
func (s *Session) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// Done is closed once the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Close ends the session; it returns once its writer has stopped.
func (s *Session) Close() {
	s.cancel()
	<-s.done
}

// ICEServer is a STUN or TURN server as a browser's RTCPeerConnection
// takes it.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// ICEServers are the configured STUN and TURN servers, for the browsers.
func (s *Server) ICEServers() []ICEServer {
	var out []ICEServer
	for _, u := range s.cfg.ICEServers {
		is := ICEServer{URLs: []string{u}}
		if strings.HasPrefix(u, "turn") {
			is.Username, is.Credential = s.cfg.TURNUsername, s.cfg.TURNCredential
		}
		out = append(out, is)
	}
	return out
}

func (s *Server) iceServers() []webrtc.ICEServer {
	var out []webrtc.ICEServer
	for _, is := range s.ICEServers() {
		w := webrtc.ICEServer{URLs: is.URLs}
		if is.Username != "" {
			w.Username, w.Credential = is.Username, is.Credential
		}
		out = append(out, w)
	}
	return out
}

// CheckICEServer says what is wrong with a STUN or TURN URL, if anything.
func CheckICEServer(u string) error {
	_, err := stunURL(u)
	return err
}

// offersH265 reports whether an SDP offer lists H.265 of a profile
// (general_profile_idc: 1 Main, 2 Main 10) among its video codecs. An
// H.265 payload type without a profile-id is Main (RFC 7798 7.1).
func offersH265(offer string, profile int) bool {
	pts := map[string]string{} // H.265 payload types → their profile-id
	for _, line := range strings.Split(offer, "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "a=rtpmap:"); ok {
			pt, codec, _ := strings.Cut(rest, " ")
			if strings.EqualFold(codec, "H265/90000") {
				if _, seen := pts[pt]; !seen {
					pts[pt] = "1"
				}
			}
		}
	}
	for _, line := range strings.Split(offer, "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "a=fmtp:"); ok {
			pt, params, _ := strings.Cut(rest, " ")
			if _, ok := pts[pt]; !ok {
				continue
			}
			for _, kv := range strings.Split(params, ";") {
				if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok && k == "profile-id" {
					pts[pt] = v
				}
			}
		}
	}
	want := strconv.Itoa(profile)
	for _, id := range pts {
		if id == want {
			return true
		}
	}
	return false
}

// Offer answers a viewer's SDP offer for a camera stream ("main" or
// "sub"): the session starts and its answer is returned. The session runs
// until the viewer leaves (ICE fails or the connection closes), Close or
// Delete ends it, or the stream ends.
func (s *Server) Offer(ctx context.Context, camera int64, name, offer string) (*Session, string, error) {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return nil, "", gridwatch.Errorf(gridwatch.EUnavailable, "WebRTC is shutting down")
	case len(s.sessions) >= s.cfg.MaxSessions:
		s.mu.Unlock()
		return nil, "", gridwatch.Errorf(gridwatch.EUnavailable, "this node has %d WebRTC sessions, its limit", len(s.sessions))
	}
	s.mu.Unlock()
	if !strings.Contains(offer, "m=video") {
		return nil, "", gridwatch.Errorf(gridwatch.EInvalid, "the SDP offer has no video medium")
	}
	hub, release, err := s.cfg.Acquire(ctx, camera, name)
	if err != nil {
		return nil, "", err
	}
	// A camera that has sent nothing within a few seconds is answered 503
	// at once: the player falls back to MSE, which reports its state.
	rctx, cancelReady := context.WithTimeout(ctx, 5*time.Second)
	params, err := hub.Ready(rctx)
	cancelReady()
	if err != nil {
		release()
		return nil, "", gridwatch.Errorf(gridwatch.EUnavailable, "camera %d has sent no picture yet", camera)
	}
	codec, fmtp, playing := webrtc.MimeTypeH264, "", name
	if params.Kind == stream.H265 {
		if offersH265(offer, params.Profile) {
			codec, fmtp = webrtc.MimeTypeH265, "profile-id="+strconv.Itoa(params.Profile)
		} else {
			// The viewer cannot take H.265: its H.264 transcode.
			release()
			playing = "h264"
			if hub, release, err = s.cfg.Acquire(ctx, camera, playing); err != nil {
				return nil, "", err
			}
		}
	}
	// The audio is the played stream's: a transcode carries what it does.
	audio := planAudio(hub.Audio(), offer)
	sess, answer, err := s.start(camera, playing, codec, fmtp, audio, hub, release, offer)
	if err != nil {
		release()
		return nil, "", err
	}
	return sess, answer, nil
}

// start sets up the peer connection and runs the session; the session
// calls release when it ends (start's caller does, if start fails).
func (s *Server) start(camera int64, name, codec, fmtp string, audio audioPlan, hub *stream.Hub, release func(), offer string) (*Session, string, error) {
	pc, err := s.api.NewPeerConnection(webrtc.Configuration{ICEServers: s.iceServers()})
	if err != nil {
		return nil, "", fmt.Errorf("whep: %w", err)
	}
	fail := func(err error) (*Session, string, error) {
		_ = pc.Close()
		return nil, "", err
	}
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: codec, ClockRate: 90000, SDPFmtpLine: fmtp}, "video", "gridwatch")
	if err != nil {
		return fail(err)
	}
	sender, err := pc.AddTrack(track)
	if err != nil {
		return fail(err)
	}
	senders := []*webrtc.RTPSender{sender}
	var at *audioTrack
	if audio.codec.MimeType != "" {
		// In the video's stream: a browser puts both tracks in one
		// MediaStream and keeps them in sync.
		tr, err := webrtc.NewTrackLocalStaticSample(audio.codec, "audio", "gridwatch")
		if err != nil {
			return fail(err)
		}
		sender, err := pc.AddTrack(tr)
		if err != nil {
			return fail(err)
		}
		senders = append(senders, sender)
		at = &audioTrack{track: tr, mime: audio.codec.MimeType}
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return fail(gridwatch.Errorf(gridwatch.EInvalid, "the SDP offer: %v", err))
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail(gridwatch.Errorf(gridwatch.EInvalid, "no answer to the offer (does it receive %s video?): %v", strings.TrimPrefix(codec, "video/"), err))
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return fail(err)
	}
	select {
	case <-gathered:
	case <-time.After(s.cfg.GatherTimeout):
	}
	ctx, cancel := context.WithCancel(context.Background())
	sess := &Session{ID: newID(), Camera: camera, Stream: name, Codec: strings.TrimPrefix(codec, "video/"),
		Audio: audio.sent, AudioNote: audio.note,
		pc: pc, cancel: cancel, done: make(chan struct{}), started: time.Now()}
	connected := make(chan struct{})
	var once sync.Once
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			once.Do(func() { close(connected) })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			// Disconnected is not the end: consent may resume (a Wi-Fi
			// blip); pion calls it failed after its ICE timeout.
			cancel()
		}
	})
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancel()
		return fail(gridwatch.Errorf(gridwatch.EUnavailable, "WebRTC is shutting down"))
	}
	s.sessions[sess.ID] = sess
	// Added under the lock that Close takes before it waits: no session
	// starts once Close is waiting.
	s.wg.Add(1)
	s.mu.Unlock()
	local := pc.LocalDescription()
	go func() {
		defer s.wg.Done()
		defer release()
		defer close(sess.done)
		defer func() {
			s.mu.Lock()
			delete(s.sessions, sess.ID)
			s.mu.Unlock()
			_ = pc.Close()
		}()
		// RTCP from the viewer (receiver reports, PLI) must be read for
		// the interceptors to work; its content is not needed here. The
		// readers end when the connection closes.
		for _, sender := range senders {
			go func() {
				buf := make([]byte, 1500)
				for {
					if _, _, err := sender.Read(buf); err != nil {
						return
					}
				}
			}()
		}
		// A viewer that never connects is given up after a while.
		select {
		case <-connected:
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Second):
			s.log.Info("whep: the viewer never connected", "camera", camera)
			return
		}
		if err := sess.send(ctx, hub, track, at); err != nil && ctx.Err() == nil {
			s.log.Info("whep: session ended", "camera", camera, "err", err)
		}
	}()
	return sess, local.SDP, nil
}

// send writes the hub's pictures to the track, and its audio frames to
// audio when the session sends audio (nil: it does not), until ctx ends or
// the hub does. The pictures of each batch but the last go with a tiny
// duration, so a burst (the cached GOP, a backlog) is decoded through at
// once and the viewer stays at the live edge; of its audio, only the last
// moments go (staleAudio).
func (sess *Session) send(ctx context.Context, hub *stream.Hub, track *webrtc.TrackLocalStaticSample, audio *audioTrack) error {
	var v *stream.Viewer
	if audio != nil {
		v = hub.SubscribeAV()
	} else {
		// A viewer of the pictures only is not sent the audio frames at
		// all, nor queued for them.
		v = hub.Subscribe()
	}
	defer v.Close()
	var batch []*stream.AccessUnit
	var buf []byte
	var skip []bool
	for {
		var err error
		batch, err = v.Next(ctx, batch)
		if err != nil {
			return err
		}
		lastPicture := len(batch) - 1
		if audio != nil {
			for lastPicture >= 0 && batch[lastPicture].Audio != nil {
				lastPicture--
			}
			skip = staleAudio(skip, batch)
		}
		for i, au := range batch {
			if au.Audio != nil {
				// A frame the negotiated track cannot carry (the camera
				// changed its audio coding) is dropped: the video goes on.
				if audio == nil || skip[i] || !audio.carries(au.Audio) {
					continue
				}
				n, err := audio.write(au)
				if err != nil {
					return err
				}
				sess.mu.Lock()
				sess.bytes += int64(n)
				sess.mu.Unlock()
				continue
			}
			if au.Params != nil && au.Params.Kind.String() != codecName(sess.Codec) {
				// The camera switched coding: the negotiated track cannot
				// carry it; the viewer offers again.
				return errCodingChanged
			}
			d := stream.Duration(au.Duration)
			if i < lastPicture {
				d = time.Millisecond
			}
			buf, err = annexB(buf[:0], au.NALUs)
			if err != nil {
				return err
			}
			if err := track.WriteSample(media.Sample{Data: buf, Duration: d}); err != nil {
				return err
			}
			sess.mu.Lock()
			sess.bytes += int64(len(buf))
			sess.mu.Unlock()
		}
		clear(batch)
	}
}

// errCodingChanged ends a session whose camera switched between H.264 and
// H.265.
var errCodingChanged = errors.New("the camera changed its video coding")

// codecName is a session's codec ("H264") as stream.Kind names it.
func codecName(codec string) string {
	if codec == "H265" {
		return stream.H265.String()
	}
	return stream.H264.String()
}

// annexB writes NAL units with start codes, as pion's payloaders take them.
func annexB(dst []byte, nalus [][]byte) ([]byte, error) {
	b, err := h264.AnnexB(nalus).Marshal()
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

// Delete ends a session by id; false when there is none.
func (s *Server) Delete(id string) bool {
	s.mu.Lock()
	sess := s.sessions[id]
	s.mu.Unlock()
	if sess == nil {
		return false
	}
	sess.Close()
	return true
}

// Get returns a running session by id.
func (s *Server) Get(id string) *Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}

// Sessions is the number of running sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Close ends every session and refuses new ones; it returns once all have
// stopped.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	all := make([]*Session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		all = append(all, sess)
	}
	s.mu.Unlock()
	for _, sess := range all {
		sess.cancel()
	}
	s.wg.Wait()
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// stunURL parses a STUN or TURN URL as pion does (RFC 7064, RFC 7065).
func stunURL(u string) (*stun.URI, error) {
	uri, err := stun.ParseURI(u)
	if err != nil {
		return nil, fmt.Errorf("%q is not a stun:, turn: or turns: URL: %v", u, err)
	}
	return uri, nil
}
