package pull

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"

	"gridwatch/camera/stream"
)

// Source is where a camera stream comes from: all a Supervisor needs of
// a camera. The supervisor opens it once per attempt and reads the
// session until it ends, fails or stalls; a new kind of camera (ONVIF,
// GB/T 28181, a relay from another node) is a new Source, not a change
// here.
type Source interface {
	// Open connects and starts the stream. ctx bounds the opening only:
	// the session, once open, runs until it ends or is closed. Errors are
	// shown to users as the stream's status reason, so they must carry no
	// credentials.
	Open(ctx context.Context) (Session, error)
}

// Session is an open upstream session of a Source.
type Session interface {
	// Format is the stream's video as announced: H.264 or H.265, its RTP
	// payload type, packetisation and parameter sets.
	Format() format.Format
	// Packets are the video's RTP packets in arrival order; their
	// timestamps are the stream's timing (90 kHz). Packets of other
	// payload types are ignored.
	Packets() <-chan *rtp.Packet
	// Done is closed when the session has ended by itself; Err then says
	// why (nil: the camera closed it), without credentials.
	Done() <-chan struct{}
	Err() error
	// Close ends the session and returns once nothing of it runs any more.
	Close()
}

// UnitSession is a Session whose source brings whole pictures rather than
// RTP packets of the video (a GB/T 28181 channel's program stream, taken
// apart by its source). Its Packets are then not read.
type UnitSession interface {
	Units() <-chan Unit
}

// Unit is one picture of a UnitSession.
type Unit struct {
	// NALUs are the picture's NAL units, without start codes.
	NALUs [][]byte
	// TS is its presentation time on the 90 kHz clock (wrapping as an RTP
	// timestamp does).
	TS uint32
	// Loss says something was lost before it: the pictures wait for the
	// next keyframe.
	Loss bool
}

// Status is where a camera stream stands.
type Status string

// A stream is connecting on its first attempt, online while pictures flow,
// and offline after a failure until a reconnect succeeds.
const (
	StatusConnecting Status = "connecting"
	StatusOnline     Status = "online"
	StatusOffline    Status = "offline"
)

// State is a stream's status and health, as the API and /metrics show it.
type State struct {
	Status Status `json:"status"`
	// Reason says why the stream is offline: the last error, without
	// credentials.
	Reason string `json:"reason,omitempty"`
	// Since is when the status last changed.
	Since time.Time `json:"since"`
	// FPS and Bitrate (bit/s) are measured over the last second or so.
	FPS          float64    `json:"fps"`
	Bitrate      int64      `json:"bitrate"`
	LastKeyframe *time.Time `json:"last_keyframe,omitempty"`
	Reconnects   int64      `json:"reconnects"`
	// Uptime is how long the current session has been online, in seconds.
	Uptime float64 `json:"uptime"`
	// GOP is the longest interval between keyframes seen lately, in
	// seconds (a camera in a "smart" H.264+/H.265+ mode stretches it to
	// 10 s or more); KeyTimeout is how long the stream now waits for a
	// keyframe before it reconnects, learnt from it.
	GOP        float64 `json:"gop,omitempty"`
	KeyTimeout float64 `json:"key_timeout,omitempty"`
	Width      int     `json:"width,omitempty"`
	Height     int     `json:"height,omitempty"`
	Codec      string  `json:"codec,omitempty"`
	// Audio is the camera's audio as played ("AAC 16 kHz mono"), empty
	// when it sends none the stream carries.
	Audio string `json:"audio,omitempty"`
}

// Config configures a Supervisor. Zero durations take the defaults.
type Config struct {
	// URL is the camera's RTSP URL, credentials included. It is never
	// logged nor put in a State.
	URL string
	Hub *stream.Hub
	// Client is the RTSP client library (default gortsplib).
	Client Client
	// Source, when set, is where the stream comes from instead of the
	// RTSP camera at URL (URL and Client are then not used).
	Source Source
	Logger *slog.Logger
	// DialTimeout bounds connecting and each RTSP request (default 5 s);
	// ReadTimeout bounds a silent connection (default 10 s).
	DialTimeout, ReadTimeout time.Duration
	// StallTimeout: no picture for this long restarts the session (default
	// 5 s); pictures dropped while waiting for a keyframe count as
	// pictures here. KeyTimeout: no keyframe for this long restarts it too
	// (default 15 s), unless the camera's GOP is known to be longer: see
	// keyWatch.
	StallTimeout, KeyTimeout time.Duration
	// KeyGOPs is how many of the camera's longest GOPs the keyframe
	// watchdog waits (default 2); MaxKeyTimeout bounds the wait however
	// long the GOP (default 2 min).
	KeyGOPs       float64
	MaxKeyTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts (defaults
	// 500 ms and 30 s); it doubles per failure, with ±50 % jitter.
	MinBackoff, MaxBackoff time.Duration
	// OnState is called after each status change. It must not block.
	OnState func(State)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.DialTimeout, defaultDialTimeout)
	def(&c.ReadTimeout, defaultReadTimeout)
	def(&c.StallTimeout, 5*time.Second)
	def(&c.KeyTimeout, 15*time.Second)
	def(&c.MaxKeyTimeout, 2*time.Minute)
	c.MaxKeyTimeout = max(c.MaxKeyTimeout, c.KeyTimeout)
	if c.KeyGOPs <= 0 {
		c.KeyGOPs = 2
	}
	def(&c.MinBackoff, 500*time.Millisecond)
	def(&c.MaxBackoff, 30*time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.OnState == nil {
		c.OnState = func(State) {}
	}
	if c.Source == nil {
		c.Source = RTSP{URL: c.URL, Client: c.Client, DialTimeout: c.DialTimeout, ReadTimeout: c.ReadTimeout, Logger: c.Logger}
	}
}

// Supervisor keeps one camera stream pulled into its hub.
type Supervisor struct {
	cfg Config

	mu         sync.Mutex
	st         State
	online     time.Time
	window     time.Time
	winFrames  int
	winBytes   int
	lastKey    time.Time
	reconnects int64
	keys       keyWatch // used by the session goroutine only; its GOP is read under mu
	restart    chan struct{}
}

// errRestart ends a session that Restart asked to end.
var errRestart = errors.New("restarted: the stream's source changed")

// Restart ends the current session (or the wait before the next attempt)
// and opens the source again at once, without going offline: the stream
// moves to where the Source now points (a relay that follows its camera to
// a new owner node). The hub's viewers stay.
func (s *Supervisor) Restart() {
	select {
	case s.restart <- struct{}{}:
	default:
	}
}

// NewSupervisor makes a supervisor; Run starts it.
func NewSupervisor(cfg Config) *Supervisor {
	cfg.defaults()
	return &Supervisor{cfg: cfg, st: State{Status: StatusConnecting, Since: cfg.Now()}, restart: make(chan struct{}, 1),
		keys: keyWatch{floor: cfg.KeyTimeout, gops: cfg.KeyGOPs, ceiling: cfg.MaxKeyTimeout}}
}

// Run pulls the stream until ctx ends, reconnecting after every failure.
// Every goroutine it starts has ended when it returns.
func (s *Supervisor) Run(ctx context.Context) error {
	log := s.cfg.Logger
	tl := newTimeline()
	var audio *audioTrack // kept across sessions while the audio stays the same
	backoff := s.cfg.MinBackoff
	for {
		select {
		case <-s.restart: // asked before this attempt: it opens where the source points now
		default:
		}
		err := s.session(ctx, tl, &audio)
		if ctx.Err() != nil {
			s.stopped()
			return nil
		}
		s.cfg.Hub.Reset()
		if errors.Is(err, errRestart) {
			s.cfg.Logger.Info("camera stream: source changed, reopening")
			continue
		}
		s.mu.Lock()
		wasUp := !s.online.IsZero() && s.cfg.Now().Sub(s.online) > 10*time.Second
		s.online = time.Time{}
		s.mu.Unlock()
		if wasUp {
			backoff = s.cfg.MinBackoff
		}
		s.setStatus(StatusOffline, err.Error())
		log.Warn("camera stream failed", "err", err, "retry_in", backoff.Round(time.Millisecond))
		wait := time.Duration(float64(backoff) * (0.5 + rand.Float64()))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			s.stopped()
			return nil
		case <-t.C:
		case <-s.restart:
			t.Stop() // where the source points changed: try it now
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
		s.mu.Lock()
		s.reconnects++
		s.mu.Unlock()
	}
}

// session opens the source and feeds its pictures to the hub until ctx
// ends or the session fails, ends, stalls or sends no keyframe for too
// long. Every goroutine of the session has ended when it returns.
func (s *Supervisor) session(ctx context.Context, tl *timeline, audio **audioTrack) error {
	sess, err := s.cfg.Source.Open(ctx)
	if err != nil {
		return err
	}
	defer sess.Close()
	f := sess.Format()
	asm, err := newAssembler(f, tl, s.cfg.Logger, s.cfg.Now)
	if err != nil {
		return err
	}
	tl.newSession()
	at, audioPackets := s.openAudio(sess, *audio)
	*audio = at
	s.playing()
	stall := time.NewTimer(s.cfg.StallTimeout)
	defer stall.Stop()
	s.mu.Lock()
	s.keys.newSession()
	s.mu.Unlock()
	keyWait := s.keys.wait()
	key := time.NewTimer(keyWait)
	defer key.Stop()
	packets := sess.Packets()
	var units <-chan Unit
	if us, ok := sess.(UnitSession); ok {
		units, packets = us.Units(), nil
	}
	// The latest picture of this session: audio is placed from it.
	var lastPicture *stream.AccessUnit
	picture := func(au *stream.AccessUnit) {
		stall.Reset(s.cfg.StallTimeout)
		if au.Key {
			s.mu.Lock()
			s.keys.key(au.Received)
			s.mu.Unlock()
			keyWait = s.keys.wait()
			key.Reset(keyWait)
		}
		s.publish(au)
		lastPicture = au
	}
	video := func(pkt *rtp.Packet) {
		if pkt.PayloadType != f.PayloadType() {
			return
		}
		n := asm.pictures
		for _, au := range asm.packet(pkt) {
			picture(au)
		}
		if asm.pictures != n {
			// Pictures that wait for a keyframe are not a stall: a camera
			// that sends no keyframe (or only damaged ones) is given up on
			// by the keyframe watchdog, with a reason that says so.
			stall.Reset(s.cfg.StallTimeout)
		}
	}
	unit := func(u Unit) {
		if au := asm.unit(u); au != nil {
			picture(au)
		} else {
			stall.Reset(s.cfg.StallTimeout)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.restart:
			return errRestart
		case <-sess.Done():
			if err := sess.Err(); err != nil {
				return err
			}
			return errors.New("the camera closed the session")
		case <-stall.C:
			return fmt.Errorf("no picture for %s", s.cfg.StallTimeout)
		case <-key.C:
			s.mu.Lock()
			s.keys.missed()
			s.mu.Unlock()
			return fmt.Errorf("no keyframe for %s", keyWait)
		case pkt := <-packets:
			video(pkt)
		case u := <-units:
			unit(u)
		case pkt := <-audioPackets:
			if pkt.PayloadType != at.dp.format.PayloadType() {
				continue
			}
			// The pictures that came before it first: audio is placed
			// against the latest picture, which must not be one behind
			// because select picked the audio first.
		drain:
			for {
				select {
				case vp := <-packets:
					video(vp)
				case u := <-units:
					unit(u)
				default:
					break drain
				}
			}
			for _, au := range at.packet(pkt, lastPicture, s.cfg.Now()) {
				s.cfg.Hub.Publish(au)
			}
		}
	}
}

// openAudio prepares the session's audio: the track its frames are placed
// on (the previous session's, when the audio is the same, so its time
// goes on) and its packets; nil and a nil channel when the session plays
// none. It tells the hub, before the session's first frame.
func (s *Supervisor) openAudio(sess Session, prev *audioTrack) (*audioTrack, <-chan *rtp.Packet) {
	as, ok := sess.(AudioSession)
	var f format.Format
	if ok {
		f = as.AudioFormat()
	}
	var dp *audioDepacketizer
	if f != nil {
		var err error
		if dp, err = newAudioDepacketizer(f); err != nil {
			s.cfg.Logger.Info("camera audio not played", "reason", err)
		}
	}
	if dp == nil {
		s.cfg.Hub.SetAudio(nil)
		s.setAudio("")
		return nil, nil
	}
	dp.format = f
	s.cfg.Hub.SetAudio(dp.audio)
	// Frames carry the hub's pointer: consumers compare them with it.
	dp.audio = s.cfg.Hub.Audio()
	s.setAudio(dp.audio.String())
	at := prev
	if at == nil || !at.dp.audio.Equal(dp.audio) {
		at = newAudioTrack(dp)
	}
	at.dp = dp
	at.newSession()
	return at, as.AudioPackets()
}

func (s *Supervisor) setAudio(a string) {
	s.mu.Lock()
	s.st.Audio = a
	s.mu.Unlock()
}

// stopped notes that the supervisor was stopped. It is not a status
// change of the camera: nobody watching says nothing about the camera, so
// OnState is not called.
func (s *Supervisor) stopped() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.FPS, s.st.Bitrate = 0, 0
	s.online = time.Time{}
}

func (s *Supervisor) playing() {
	s.mu.Lock()
	s.online = s.cfg.Now()
	s.window, s.winFrames, s.winBytes = s.online, 0, 0
	s.mu.Unlock()
}

// publish hands a picture to the hub and keeps the rates. The stream is
// online from its first picture, not from PLAY: a camera that answers but
// sends nothing is not online.
func (s *Supervisor) publish(au *stream.AccessUnit) {
	s.cfg.Hub.Publish(au)
	s.mu.Lock()
	s.winFrames++
	s.winBytes += au.Size()
	if au.Key {
		s.lastKey = au.Received
	}
	if el := au.Received.Sub(s.window); el >= time.Second {
		s.st.FPS = float64(s.winFrames) / el.Seconds()
		s.st.Bitrate = int64(float64(s.winBytes*8) / el.Seconds())
		s.window, s.winFrames, s.winBytes = au.Received, 0, 0
	}
	s.st.Width, s.st.Height, s.st.Codec = au.Params.Width, au.Params.Height, au.Params.Codec
	up := s.st.Status != StatusOnline
	s.mu.Unlock()
	if up {
		s.setStatus(StatusOnline, "")
	}
}

func (s *Supervisor) setStatus(st Status, reason string) {
	s.mu.Lock()
	if s.st.Status == st && s.st.Reason == reason {
		s.mu.Unlock()
		return
	}
	if s.st.Status != st {
		s.st.Since = s.cfg.Now()
	}
	s.st.Status, s.st.Reason = st, reason
	if st != StatusOnline {
		s.st.FPS, s.st.Bitrate = 0, 0
	}
	out := s.stateLocked()
	s.mu.Unlock()
	s.cfg.OnState(out)
}

// State is the stream's current state.
func (s *Supervisor) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stateLocked()
}

func (s *Supervisor) stateLocked() State {
	st := s.st
	st.Reconnects = s.reconnects
	if !s.lastKey.IsZero() {
		k := s.lastKey
		st.LastKeyframe = &k
	}
	if g := s.keys.gop(); g > 0 {
		st.GOP = g.Seconds()
		st.KeyTimeout = s.keys.wait().Seconds()
	}
	if st.Status == StatusOnline && !s.online.IsZero() {
		st.Uptime = s.cfg.Now().Sub(s.online).Seconds()
	}
	return st
}
