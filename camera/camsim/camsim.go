// Package camsim serves simulated IP cameras over real RTSP, so that the
// camera puller, the hub, the recorder and the end-to-end tests can run
// against something that behaves like a camera without one on the desk.
//
// Each camera n has two H.264 streams, rtsp://host:port/cam/n/main (640x360)
// and /cam/n/sub (320x180), and an H.265 one, /cam/n/h265 (640x360, as a
// camera whose main stream is set to H.265), each looping an embedded 4 s
// clip at 25 fps with a 1 s GOP and continuous 90 kHz RTP timestamps. A camera can be put in a
// fault mode at runtime (see Fault) to exercise reconnects, stall detection,
// loss handling and multi-slice frames, a change of picture size, jumps of
// the RTP clock, a stream without keyframes, and an RTSP server that
// answers slowly, with garbage, or hangs up after DESCRIBE. RTSP is served over TCP (interleaved)
// only: UDP would need fixed port pairs, and tests never use fixed ports.
//
// With Config.Audio, each camera also has streams with sound, as real
// cameras send it: a video stream plus one audio medium in the same
// session (video first). main-aac, main-latm, main-pcma, main-pcmu and
// main-opus are the main stream with AAC-LC 16 kHz (RFC 3640
// MPEG4-GENERIC), the same AAC in LATM (RFC 6416), G.711 A-law or µ-law
// 8 kHz, or Opus 48 kHz; h265-aac is the H.265 stream with AAC. The sound
// is a 1 kHz beep for the first 100 ms of every second, in step with the
// video's keyframes, paced by the video's pacer on the same clock. The AAC
// and Opus clips are embedded (see clips/make.sh); G.711 is made at New.
// Without Config.Audio these paths do not exist (404) and cost nothing.
package camsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"

	"gridwatch/camera/internal/rtsprun"
	"gridwatch/camera/stream"
)

// Fault is a fault mode a simulated camera can be put in.
type Fault string

// The fault modes. FaultNone is a healthy camera.
//
// The stream faults act on what is sent, from the next picture on (the
// clip switches at the next IDR); the RTSP faults act on the requests of
// new connections only, so sessions already playing go on.
const (
	FaultNone       Fault = ""
	FaultDisconnect Fault = "disconnect" // drop every session of that camera and refuse new ones (DESCRIBE answers 503/404) until cleared
	FaultStall      Fault = "stall"      // sessions stay open but no packet is sent
	FaultLoss       Fault = "loss"       // drop ~3% of RTP packets at random (seeded, reproducible), incl. middle FU-A fragments
	FaultSlices     Fault = "slices"     // serve the 4-slices-per-frame clip (main stream; sub has no such clip), switching at the next IDR
	FaultSlices32   Fault = "slices32"   // serve the 32-slices-per-frame clip (main stream), more NAL units a picture than mediacommon's decoders take
	FaultMute       Fault = "mute"       // streams with sound announce it but send none (the pictures go on)

	// FaultResize changes the picture size mid-stream, as a camera whose
	// resolution an installer changes: from the next IDR the main stream
	// (and those with sound built on it) sends the sub stream's 320x180
	// clip and the sub stream the main's 640x360 one, each IDR with its
	// own SPS and PPS in band (the SDP still announces the old ones).
	// Clearing it switches back at the next IDR. The H.265 stream has no
	// clip of another size and goes on unchanged.
	FaultResize Fault = "resize"
	// FaultTSJump makes the video's RTP timestamps jump 10 minutes forward
	// once, at the first picture sent in the fault; FaultTSBack makes them
	// jump 30 s back; FaultTSWrap makes them jump to 2 s before the 32-bit
	// wrap, which they then go through. The jump stays after the fault is
	// cleared (the camera's clock moved; clearing does not move it back).
	// RTCP sender reports follow the new timestamps, as a camera's do.
	// Audio is not moved.
	FaultTSJump Fault = "tsjump"
	FaultTSBack Fault = "tsback"
	FaultTSWrap Fault = "tswrap"
	// FaultNoKey sends only the pictures between keyframes: every IDR,
	// with the parameter sets in front of it, is left out for as long as
	// the fault is on (the RTP timestamps keep their place, so a picture
	// interval is missing once a second).
	FaultNoKey Fault = "nokey"
	// FaultSlow answers every RTSP request of a new connection (DESCRIBE,
	// SETUP, PLAY) SlowDelay late.
	FaultSlow Fault = "slow"
	// FaultGarbage answers DESCRIBE with bytes that are not RTSP, then
	// closes the connection.
	FaultGarbage Fault = "garbage"
	// FaultDescribeClose answers DESCRIBE properly (the SDP), then closes
	// the connection before SETUP.
	FaultDescribeClose Fault = "describe-close"
)

// SlowDelay is how late FaultSlow answers each RTSP request.
const SlowDelay = 3 * time.Second

// Faults lists every fault mode but FaultNone, in the order a command's
// help names them.
func Faults() []Fault {
	return []Fault{FaultDisconnect, FaultStall, FaultLoss, FaultSlices, FaultSlices32, FaultMute,
		FaultResize, FaultTSJump, FaultTSBack, FaultTSWrap, FaultNoKey, FaultSlow, FaultGarbage, FaultDescribeClose}
}

// Valid reports whether f is one of the defined fault modes.
func (f Fault) Valid() bool {
	return f == FaultNone || slices.Contains(Faults(), f)
}

// Stream names, the last element of a camera's path.
const (
	StreamMain = "main" // H.264 640x360, ~0.5 Mbit/s
	StreamSub  = "sub"  // H.264 320x180, ~0.15 Mbit/s
	StreamH265 = "h265" // H.265 640x360, ~0.5 Mbit/s: a camera's main stream set to H.265

	// The streams with audio (Config.Audio): a video stream above plus an
	// audio medium.
	StreamMainAAC  = "main-aac"  // main + AAC-LC 16 kHz mono, MPEG4-GENERIC (RFC 3640), payload type 97
	StreamMainLATM = "main-latm" // main + the same AAC as MP4A-LATM (RFC 6416, cpresent=0), payload type 97
	StreamMainPCMA = "main-pcma" // main + G.711 A-law 8 kHz mono, static payload type 8
	StreamMainPCMU = "main-pcmu" // main + G.711 µ-law 8 kHz mono, static payload type 0
	StreamMainOpus = "main-opus" // main + Opus 48 kHz mono, payload type 97
	StreamH265AAC  = "h265-aac"  // h265 + AAC-LC 16 kHz mono, MPEG4-GENERIC
	// A camera's sub stream carries the same sound as its main one.
	StreamSubAAC  = "sub-aac"  // sub + AAC-LC 16 kHz mono, MPEG4-GENERIC
	StreamSubPCMA = "sub-pcma" // sub + G.711 A-law 8 kHz mono
)

// audioStream says what a stream with audio is made of.
type audioStream struct {
	name  string
	video string // the stream whose video it carries
	codec audioCodec
}

// audioStreams lists the streams with audio.
func audioStreams() []audioStream {
	return []audioStream{
		{StreamMainAAC, StreamMain, audioAAC},
		{StreamMainLATM, StreamMain, audioLATM},
		{StreamMainPCMA, StreamMain, audioPCMA},
		{StreamMainPCMU, StreamMain, audioPCMU},
		{StreamMainOpus, StreamMain, audioOpus},
		{StreamH265AAC, StreamH265, audioAAC},
		{StreamSubAAC, StreamSub, audioAAC},
		{StreamSubPCMA, StreamSub, audioPCMA},
	}
}

// maxCameras bounds Config.N; a simulator is for tests and demos.
const maxCameras = 10000

// Config configures a Sim.
type Config struct {
	N                  int          // cameras, numbered 1..N
	Addr               string       // RTSP listen address, e.g. "127.0.0.1:0" (":0" works: tests never use fixed ports)
	Logger             *slog.Logger // nil = discard
	Username, Password string       // optional: when set, require these credentials (Basic or Digest MD5)
	StartTimestamp     uint32       // first RTP timestamp (lets tests start near the 32-bit wrap); 0 = random
	Fault              Fault        // fault for all cameras at start
	// StampSEI puts the wall-clock time each picture is sent in an SEI
	// message in front of its slices (see SEITime), to measure latency
	// through every output.
	StampSEI bool
	// Audio adds the streams with audio (StreamMainAAC…) to every camera.
	// Off, they answer 404 and a simulator of many cameras pays nothing
	// for them. With StartTimestamp set, their audio starts at that RTP
	// timestamp too, at the same instant as the video.
	Audio bool
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.N < 1 || c.N > maxCameras {
		return fmt.Errorf("camsim: N = %d, want 1..%d", c.N, maxCameras)
	}
	if c.Addr == "" {
		return errors.New("camsim: Addr is empty")
	}
	if !c.Fault.Valid() {
		var names []string
		for _, f := range Faults() {
			names = append(names, string(f))
		}
		return fmt.Errorf("camsim: unknown fault %q (want one of %s)", c.Fault, strings.Join(names, ", "))
	}
	if c.Username == "" && c.Password != "" {
		return errors.New("camsim: Password set without Username")
	}
	if strings.Contains(c.Username, ":") {
		return errors.New("camsim: Username must not contain ':'")
	}
	return nil
}

// Sim is a set of simulated RTSP cameras on one listener. Create it with
// New, serve with Run; the other methods are safe for concurrent use.
type Sim struct {
	cfg   Config
	log   *slog.Logger
	ln    net.Listener
	addr  string
	cams  []*camera
	ran   atomic.Bool
	feeds []*feed // every camera's streams, for Run

	ptzOnce sync.Once  // makes heads on the first ONVIFHandler
	heads   []*ptzHead // the cameras' PTZ heads, by camera - 1

	stop chan struct{} // closed when Run ends serving: FaultSlow's waits end

	mu       sync.Mutex                           // guards srvReady, sessions and fault changes
	srvReady bool                                 // streams are initialised and accept readers
	sessions map[*gortsplib.ServerSession]*reader // SETUP done, by session
}

// camera is one simulated camera: its fault and its streams.
type camera struct {
	n     int
	stamp bool         // Config.StampSEI
	fault atomic.Value // Fault; written under Sim.mu, read lock-free by the pacers
	main  *feed
	sub   *feed
	h265  *feed
	audio map[string]*feed // the streams with audio, by name; nil without Config.Audio
}

func (c *camera) currentFault() Fault { return c.fault.Load().(Fault) }

// reader is a session that has set up one of our streams.
type reader struct {
	feed    *feed
	playing bool
}

// New validates cfg, loads the clips and binds the listener. Serving starts
// with Run; connections made before that wait in the listen backlog.
func New(cfg Config) (*Sim, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	clips, err := loadClips()
	if err != nil {
		return nil, fmt.Errorf("camsim: %w", err)
	}
	var audio audioClipSet
	if cfg.Audio {
		if audio, err = loadAudioClips(); err != nil {
			return nil, fmt.Errorf("camsim: %w", err)
		}
	}
	s := &Sim{
		cfg:      cfg,
		log:      log,
		stop:     make(chan struct{}),
		sessions: make(map[*gortsplib.ServerSession]*reader),
	}
	for n := 1; n <= cfg.N; n++ {
		c := &camera{n: n, stamp: cfg.StampSEI}
		c.fault.Store(cfg.Fault)
		if c.main, err = newFeed(c, StreamMain, clips.main, clips.mainAlt(), cfg.StartTimestamp); err != nil {
			return nil, fmt.Errorf("camsim: camera %d: %w", n, err)
		}
		if c.sub, err = newFeed(c, StreamSub, clips.sub, clips.subAlt(), cfg.StartTimestamp); err != nil {
			return nil, fmt.Errorf("camsim: camera %d: %w", n, err)
		}
		if c.h265, err = newFeed(c, StreamH265, clips.h265, nil, cfg.StartTimestamp); err != nil {
			return nil, fmt.Errorf("camsim: camera %d: %w", n, err)
		}
		s.cams = append(s.cams, c)
		s.feeds = append(s.feeds, c.main, c.sub, c.h265)
		if cfg.Audio {
			if err := s.addAudioFeeds(c, clips, audio); err != nil {
				return nil, fmt.Errorf("camsim: camera %d: %w", n, err)
			}
		}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("camsim: listen: %w", err)
	}
	s.ln = ln
	s.addr = ln.Addr().String()
	return s, nil
}

// addAudioFeeds gives camera c its streams with audio: each a feed of its
// own (own pacer, RTP sequence and SSRC, as a camera encodes each stream
// separately) with the video of the stream it repeats.
func (s *Sim) addAudioFeeds(c *camera, clips clipSet, audio audioClipSet) error {
	c.audio = make(map[string]*feed)
	for _, as := range audioStreams() {
		cl, alt := clips.main, clips.mainAlt()
		switch as.video {
		case StreamH265:
			cl, alt = clips.h265, nil
		case StreamSub:
			cl, alt = clips.sub, clips.subAlt()
		}
		f, err := newFeed(c, as.name, cl, alt, s.cfg.StartTimestamp)
		if err != nil {
			return err
		}
		seed := [2]uint64{uint64(c.n), streamSeed(as.name) | 1<<32}
		if f.audio, err = newAudioTrack(as.codec, audio, s.cfg.StartTimestamp, seed); err != nil {
			return fmt.Errorf("%s: %w", as.name, err)
		}
		c.audio[as.name] = f
		s.feeds = append(s.feeds, f)
	}
	return nil
}

// streamSeed tells streams apart in the loss generators' seeds, so that
// each stream of a camera loses its own packets.
func streamSeed(name string) uint64 {
	switch name {
	case StreamMain:
		return 1
	case StreamSub:
		return 2
	case StreamH265:
		return 3
	}
	for i, as := range audioStreams() {
		if as.name == name {
			return uint64(4 + i)
		}
	}
	return 0
}

// newFeed prepares one stream of a camera. alt holds the clips served in
// fault modes (FaultSlices, FaultSlices32, FaultResize), if any. Each feed gets its own
// loss generator, seeded by camera and stream, so a loss run is
// reproducible.
func newFeed(c *camera, name string, cl *clip, alt map[Fault]*clip, start uint32) (*feed, error) {
	var forma format.Format
	var enc encoder
	if cl.kind == stream.H265 {
		forma = &format.H265{PayloadTyp: 96, VPS: cl.vps, SPS: cl.sps, PPS: cl.pps}
		e := &rtph265.Encoder{PayloadType: 96}
		if err := e.Init(); err != nil {
			return nil, err
		}
		enc = e
	} else {
		forma = &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: cl.sps, PPS: cl.pps}
		e := &rtph264.Encoder{PayloadType: 96, PacketizationMode: 1}
		if err := e.Init(); err != nil {
			return nil, err
		}
		enc = e
	}
	if start == 0 {
		start = rand.Uint32() | 1 // never 0, which means "random" in Config
	}
	return &feed{
		cam:   c,
		name:  name,
		clip:  cl,
		alt:   alt,
		cur:   cl,
		start: start,
		enc:   enc,
		rng:   rand.New(rand.NewPCG(uint64(c.n), streamSeed(name))),
		media: &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{forma}},
		wake:  make(chan struct{}, 1),
	}, nil
}

// Run serves RTSP until ctx ends, then closes every session, the listener
// and the streams. Every goroutine it started has ended when it returns.
// It returns nil after ctx ends, or the error that stopped the server.
func (s *Sim) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("camsim: Run called twice")
	}
	ln := s.ln
	srv := &gortsplib.Server{
		Handler:     &handler{s: s},
		RTSPAddress: s.addr,
		// The listener was bound in New, so Addr and URL are valid before Run.
		Listen: func(string, string) (net.Listener, error) { return ln, nil },
	}

	s.mu.Lock()
	if err := srv.Start(); err != nil {
		s.mu.Unlock()
		_ = ln.Close()
		return fmt.Errorf("camsim: start: %w", err)
	}
	var err error
	for _, f := range s.feeds {
		f.stream = &gortsplib.ServerStream{Server: srv, Desc: &description.Session{Medias: f.medias()}}
		if err = f.stream.Initialize(); err != nil {
			f.stream = nil
			break
		}
	}
	if err == nil {
		s.srvReady = true
	}
	s.mu.Unlock()
	if err != nil {
		s.closeStreams()
		srv.Close()
		return fmt.Errorf("camsim: stream: %w", err)
	}
	s.log.Info("camsim: serving", "addr", s.addr, "cameras", s.cfg.N, "fault", string(s.cfg.Fault))

	pctx, stopPacers := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, f := range s.feeds {
		wg.Go(func() { f.run(pctx, s.log) })
	}

	// Pacers first, so nothing writes to a closed stream; then the streams
	// (they close their readers' sessions); then the server and its conns.
	var runErr error
	if err := rtsprun.Until(ctx, srv, func() {
		close(s.stop)
		stopPacers()
		wg.Wait()
		s.mu.Lock()
		s.srvReady = false
		s.mu.Unlock()
		s.closeStreams()
	}); err != nil {
		runErr = fmt.Errorf("camsim: server stopped: %w", err)
	}
	s.log.Info("camsim: stopped", "addr", s.addr)
	return runErr
}

func (s *Sim) closeStreams() {
	for _, f := range s.feeds {
		if f.stream != nil {
			f.stream.Close()
		}
	}
}

// Addr returns the address the listener is bound to, as host:port.
func (s *Sim) Addr() string { return s.addr }

// URL returns the RTSP URL of a camera's stream (StreamMain…), with the
// configured credentials in it. When the listener is on an unspecified
// address (":0", "0.0.0.0:0"), the URL uses loopback, which a client can dial.
func (s *Sim) URL(cam int, stream string) string {
	host, port, err := net.SplitHostPort(s.addr)
	if err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		host = net.JoinHostPort(host, port)
	} else {
		host = s.addr
	}
	u := url.URL{Scheme: "rtsp", Host: host, Path: "/cam/" + strconv.Itoa(cam) + "/" + stream}
	if s.cfg.Username != "" {
		u.User = url.UserPassword(s.cfg.Username, s.cfg.Password)
	}
	return u.String()
}

// SetFault puts camera cam in fault f at runtime. FaultDisconnect closes
// the camera's sessions at once; FaultNone clears any fault. An unknown
// camera or fault is ignored (and logged).
func (s *Sim) SetFault(cam int, f Fault) {
	c := s.camera(cam)
	if c == nil || !f.Valid() {
		s.log.Warn("camsim: SetFault ignored", "camera", cam, "fault", string(f))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := c.currentFault()
	c.fault.Store(f)
	closed := 0
	if f == FaultDisconnect {
		for ss, r := range s.sessions {
			if r.feed.cam == c {
				ss.Close() // only cancels; OnSessionClose does the bookkeeping
				closed++
			}
		}
	}
	s.log.Info("camsim: fault", "camera", cam, "from", string(old), "to", string(f), "sessions_closed", closed)
}

// Frames returns the number of video access units of a camera's stream
// sent so far (to readers; nothing is counted while nobody watches or in a
// stall). For a stream with audio it counts the pictures; see AudioFrames.
func (s *Sim) Frames(cam int, stream string) int64 {
	f := s.feed(cam, stream)
	if f == nil {
		return 0
	}
	return f.frames.Load()
}

// AudioFrames returns the number of audio frames (AAC access units, Opus
// or G.711 packets) of a camera's stream with audio sent so far, counted
// as Frames counts pictures; 0 for a stream without audio.
func (s *Sim) AudioFrames(cam int, stream string) int64 {
	f := s.feed(cam, stream)
	if f == nil || f.audio == nil {
		return 0
	}
	return f.audio.frames.Load()
}

func (s *Sim) camera(n int) *camera {
	if n < 1 || n > len(s.cams) {
		return nil
	}
	return s.cams[n-1]
}

func (s *Sim) feed(cam int, stream string) *feed {
	c := s.camera(cam)
	if c == nil {
		return nil
	}
	switch stream {
	case StreamMain:
		return c.main
	case StreamSub:
		return c.sub
	case StreamH265:
		return c.h265
	}
	return c.audio[stream] // nil map without Config.Audio: no such stream
}

// feedByPath maps "/cam/{n}/{stream}" to a feed, or nil.
func (s *Sim) feedByPath(path string) *feed {
	rest, ok := strings.CutPrefix(path, "/cam/")
	if !ok {
		return nil
	}
	num, stream, ok := strings.Cut(rest, "/")
	if !ok || num == "" || num[0] == '0' || num[0] == '+' {
		return nil
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return nil
	}
	return s.feed(n, stream)
}

// handler answers gortsplib's callbacks. Credentials are checked on DESCRIBE
// and SETUP (PLAY belongs to a session made by an authenticated SETUP).
// Nothing here logs a request as a whole: its Authorization header and URL
// may hold credentials.
type handler struct{ s *Sim }

func status(code base.StatusCode) *base.Response { return &base.Response{StatusCode: code} }

// admit runs the checks shared by DESCRIBE and SETUP. It returns the feed,
// or the response to send with its error.
func (h *handler) admit(conn *gortsplib.ServerConn, req *base.Request, path string) (*feed, *base.Response, error) {
	s := h.s
	if s.cfg.Username != "" && !conn.VerifyCredentials(req, s.cfg.Username, s.cfg.Password) {
		return nil, status(base.StatusUnauthorized), liberrors.ErrServerAuth{}
	}
	f := s.feedByPath(path)
	if f == nil {
		return nil, status(base.StatusNotFound), nil
	}
	return f, nil, nil
}

// OnConnOpen implements gortsplib.ServerHandlerOnConnOpen.
func (h *handler) OnConnOpen(ctx *gortsplib.ServerHandlerOnConnOpenCtx) {
	h.s.log.Debug("camsim: conn open", "remote", ctx.Conn.NetConn().RemoteAddr().String())
}

// OnConnClose implements gortsplib.ServerHandlerOnConnClose.
func (h *handler) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	h.s.log.Debug("camsim: conn closed", "remote", ctx.Conn.NetConn().RemoteAddr().String(), "reason", ctx.Error)
}

// errFaultClose ends a connection on purpose: FaultGarbage,
// FaultDescribeClose.
var errFaultClose = errors.New("camsim: connection closed by the fault")

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (h *handler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	var fault Fault
	res, st, err := h.offer(ctx.Conn, ctx.Request, ctx.Path, func(f *feed) *base.Response {
		fault = f.cam.currentFault()
		h.s.log.Debug("camsim: describe", "camera", f.cam.n, "stream", f.name)
		return nil
	})
	if err != nil || res.StatusCode != base.StatusOK {
		return res, st, err
	}
	switch fault {
	case FaultGarbage:
		// What a confused device sends: binary noise, no status line, and
		// the connection closed under gortsplib, so that no response of its
		// own follows the noise.
		nc := ctx.Conn.NetConn()
		_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = nc.Write(garbage())
		_ = nc.Close()
		return status(base.StatusBadRequest), nil, errFaultClose
	case FaultDescribeClose:
		// The SDP goes out; the error closes the connection after it.
		return res, st, errFaultClose
	}
	return res, st, nil
}

// garbage is what FaultGarbage answers: bytes that are not an RTSP
// response nor an interleaved frame ('$').
func garbage() []byte {
	b := make([]byte, 512)
	for i := range b {
		b[i] = byte(rand.Uint32())
		if b[i] == '$' {
			b[i] = 0xff
		}
	}
	b[0] = 0x16 // as a TLS record would begin: not "RTSP/"
	copy(b[len(b)-4:], "\r\n\r\n")
	return b
}

// slow holds a request of a camera in FaultSlow for SlowDelay (or until
// the simulator stops).
func (h *handler) slow(f *feed) {
	if f.cam.currentFault() != FaultSlow {
		return
	}
	t := time.NewTimer(SlowDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-h.s.stop:
	}
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (h *handler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	closed := false
	res, st, err := h.offer(ctx.Conn, ctx.Request, ctx.Path, func(f *feed) *base.Response {
		if f.cam.currentFault() == FaultDescribeClose {
			// A client that dials again for SETUP finds the connection
			// closed too, without an answer: no session is ever made.
			_ = ctx.Conn.NetConn().Close()
			closed = true
			return status(base.StatusServiceUnavailable)
		}
		s := h.s
		r, ok := s.sessions[ctx.Session]
		if ok && r.feed != f {
			return status(base.StatusBadRequest)
		}
		if !ok {
			s.sessions[ctx.Session] = &reader{feed: f}
		}
		return nil
	})
	if closed {
		return res, nil, errFaultClose
	}
	return res, st, err
}

// offer answers DESCRIBE and SETUP: admit's checks, then, under s.mu, the
// camera's state (a server shutting down or a disconnected camera answers
// 503), then the request's own step, which may refuse with a response.
// Otherwise it offers the feed's stream.
func (h *handler) offer(conn *gortsplib.ServerConn, req *base.Request, path string, step func(*feed) *base.Response) (*base.Response, *gortsplib.ServerStream, error) {
	f, res, err := h.admit(conn, req, path)
	if f == nil {
		return res, nil, err
	}
	h.slow(f) // before s.mu: a slow camera holds up its own requests only
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.srvReady || f.cam.currentFault() == FaultDisconnect {
		return status(base.StatusServiceUnavailable), nil, nil
	}
	if res := step(f); res != nil {
		return res, nil, nil
	}
	return status(base.StatusOK), f.stream, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (h *handler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	s := h.s
	s.mu.Lock()
	r, ok := s.sessions[ctx.Session]
	s.mu.Unlock()
	if ok {
		h.slow(r.feed)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok = s.sessions[ctx.Session]
	if !ok {
		return status(base.StatusBadRequest), nil
	}
	if r.feed.cam.currentFault() == FaultDisconnect {
		return status(base.StatusServiceUnavailable), nil
	}
	if !r.playing {
		r.playing = true
		r.feed.addReader()
		s.log.Debug("camsim: play", "camera", r.feed.cam.n, "stream", r.feed.name,
			"remote", ctx.Conn.NetConn().RemoteAddr().String())
	}
	return status(base.StatusOK), nil
}

// OnSessionClose implements gortsplib.ServerHandlerOnSessionClose.
func (h *handler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.sessions[ctx.Session]
	if !ok {
		return
	}
	delete(s.sessions, ctx.Session)
	if r.playing {
		r.feed.removeReader()
	}
	s.log.Debug("camsim: session closed", "camera", r.feed.cam.n, "stream", r.feed.name, "reason", ctx.Error)
}

// OnStreamWriteError implements gortsplib.ServerHandlerOnStreamWriteError:
// a reader too slow for its write queue loses packets, as with a camera.
func (h *handler) OnStreamWriteError(ctx *gortsplib.ServerHandlerOnStreamWriteErrorCtx) {
	h.s.log.Debug("camsim: write to reader failed", "reason", ctx.Error)
}
