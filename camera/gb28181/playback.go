package gb28181

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"gridwatch"
	"gridwatch/camera/pull"
	"gridwatch/camera/stream"
)

// Playbacks are the recordings devices hold, played on demand: each is an
// INVITE with s=Playback for a time range, its pictures in a hub of its own
// (served like a live stream), paused, resumed, moved and sped up with
// MANSRTSP over INFO, and ended (BYE) when nobody has watched it for Idle
// or the device says the recording is over.
type Playbacks struct {
	Server *Server
	// Idle ends a playback nobody watches (default 30 s).
	Idle time.Duration

	mu   sync.Mutex
	runs map[string]*Playback
	ctx  context.Context
	wg   sync.WaitGroup
}

// Playback is one device recording being played.
type Playback struct {
	ID              string    `json:"id"`
	Camera          int64     `json:"camera_id"`
	Device          string    `json:"device"`
	Channel         string    `json:"channel"`
	From            time.Time `json:"from"`
	To              time.Time `json:"to"`
	Transport       string    `json:"transport"`
	Created         time.Time `json:"created"`
	hub             *stream.Hub
	sup             *pull.Supervisor
	cancel          context.CancelFunc
	done            chan struct{}
	mu              sync.Mutex
	users           int
	idleSince       time.Time
	sess            *session
	paused          bool
	scale           float64
	ended           bool
	cseq            int
	lastCommandedAt time.Time
	fetch           bool   // a fetch's: opened once
	opened          bool   // its INVITE was answered once
	failure         string // why a fetch's playback stopped short
}

// PlaybackState is a playback as the API shows it.
type PlaybackState struct {
	*Playback
	Stream pull.State `json:"stream"`
	Paused bool       `json:"paused"`
	Scale  float64    `json:"scale"`
	Ended  bool       `json:"ended"`
	// Failure says why a fetch's playback stopped before its end.
	Failure string `json:"failure,omitempty"`
}

// Run keeps the playbacks until ctx ends, ending idle ones.
func (p *Playbacks) Run(ctx context.Context) error {
	p.mu.Lock()
	p.ctx = ctx
	if p.runs == nil {
		p.runs = map[string]*Playback{}
	}
	p.mu.Unlock()
	idle := p.idle()
	tick := time.NewTicker(min(idle/4, 5*time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			p.mu.Lock()
			runs := p.runs
			p.runs = map[string]*Playback{}
			p.mu.Unlock()
			for _, pb := range runs {
				pb.stop()
			}
			p.wg.Wait()
			return nil
		case <-tick.C:
			p.reap(time.Now())
		}
	}
}

func (p *Playbacks) idle() time.Duration {
	if p.Idle <= 0 {
		return 30 * time.Second
	}
	return p.Idle
}

func (p *Playbacks) reap(now time.Time) {
	p.mu.Lock()
	var gone []*Playback
	for id, pb := range p.runs {
		pb.mu.Lock()
		idle := pb.users == 0 && now.Sub(pb.idleSince) > p.idle()
		pb.mu.Unlock()
		if idle {
			gone = append(gone, pb)
			delete(p.runs, id)
		}
	}
	p.mu.Unlock()
	for _, pb := range gone {
		pb.stop()
	}
}

// maxPlayback bounds one playback's range.
const maxPlayback = 24 * time.Hour

// Start plays a channel's recording from from to to (on the device).
func (p *Playbacks) Start(ctx context.Context, camera int64, device, channel string, from, to time.Time, transport string) (*Playback, error) {
	return p.start(ctx, camera, device, channel, from, to, transport, false)
}

// maxPerDevice bounds the playbacks of one device at once: devices serve
// few.
const maxPerDevice = 4

// start is Start; a fetch's playback keeps the device's times as they are
// (no smoothing over a jump) and is never invited again once it fails
// (a second INVITE would start the range over).
func (p *Playbacks) start(ctx context.Context, camera int64, device, channel string, from, to time.Time, transport string, fetch bool) (*Playback, error) {
	if !to.After(from) || to.Sub(from) > maxPlayback {
		return nil, gridwatch.Errorf(gridwatch.EInvalid, "to: the range must be after from and at most %s", maxPlayback).WithDetails(map[string]any{"field": "to"})
	}
	if transport == "" {
		transport = p.Server.cfg.MediaTransport
	}
	if transport == "" {
		transport = UDP
	}
	if err := CheckTransport(transport); err != nil {
		return nil, gridwatch.Errorf(gridwatch.EInvalid, "transport: %s", err.Error())
	}
	if _, ok := p.Server.registered(device); !ok {
		return nil, gridwatch.Errorf(gridwatch.EUnavailable, "device %s is not registered with this node", device)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx == nil {
		return nil, gridwatch.Errorf(gridwatch.EUnavailable, "device playback is not running")
	}
	n := 0
	for _, r := range p.runs {
		if r.Device == device {
			n++
		}
	}
	if n >= maxPerDevice {
		return nil, gridwatch.Errorf(gridwatch.EConflict, "device %s plays back %d recordings already, the most it is asked for at once", device, n)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	now := time.Now()
	pb := &Playback{ID: hex.EncodeToString(b[:]), Camera: camera, Device: device, Channel: channel, From: from, To: to, Transport: transport,
		Created: now, idleSince: now, scale: 1, done: make(chan struct{}), fetch: fetch}
	pb.hub = stream.NewHub(stream.HubOptions{})
	ctx, cancel := context.WithCancel(p.ctx)
	pb.cancel = cancel
	// A paused playback sends nothing: that is no stall.
	pb.sup = pull.NewSupervisor(pull.Config{Hub: pb.hub, Logger: p.Server.log.With("playback", pb.ID, "channel", channel),
		StallTimeout: time.Hour, KeyTimeout: time.Hour, MaxKeyTimeout: time.Hour,
		Source: playbackSource{pb: pb, src: Source{Server: p.Server, Device: device, Channel: channel, Transport: transport, From: from, To: to, raw: fetch}}})
	p.runs[pb.ID] = pb
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(pb.done)
		_ = pb.sup.Run(ctx)
	}()
	return pb, nil
}

// Get is a playback and its state.
func (p *Playbacks) Get(id string) (PlaybackState, error) {
	p.mu.Lock()
	pb := p.runs[id]
	p.mu.Unlock()
	if pb == nil {
		return PlaybackState{}, gridwatch.Errorf(gridwatch.ENotFound, "no device playback %s (it ended, or was never started)", id)
	}
	pb.mu.Lock()
	defer pb.mu.Unlock()
	return PlaybackState{Playback: pb, Stream: pb.sup.State(), Paused: pb.paused, Scale: pb.scale, Ended: pb.ended, Failure: pb.failure}, nil
}

// Acquire is a playback's hub for one viewer; release lets go of it.
func (p *Playbacks) Acquire(id string) (*stream.Hub, func() pull.State, func(), error) {
	p.mu.Lock()
	pb := p.runs[id]
	p.mu.Unlock()
	if pb == nil {
		return nil, nil, nil, gridwatch.Errorf(gridwatch.ENotFound, "no device playback %s (it ended, or was never started)", id)
	}
	pb.mu.Lock()
	pb.users++
	pb.mu.Unlock()
	var once sync.Once
	return pb.hub, pb.sup.State, func() {
		once.Do(func() {
			pb.mu.Lock()
			pb.users--
			pb.idleSince = time.Now()
			pb.mu.Unlock()
		})
	}, nil
}

// Stop ends a playback.
func (p *Playbacks) Stop(id string) error {
	p.mu.Lock()
	pb := p.runs[id]
	delete(p.runs, id)
	p.mu.Unlock()
	if pb == nil {
		return gridwatch.Errorf(gridwatch.ENotFound, "no device playback %s", id)
	}
	pb.stop()
	return nil
}

func (pb *Playback) stop() {
	pb.cancel()
	<-pb.done
}

// Command is a playback control: pause, resume, seek (to At seconds from
// the start of the range) or speed (Scale 0.25 to 8).
type Command struct {
	Op    string  `json:"op"`
	At    float64 `json:"at"`
	Scale float64 `json:"scale"`
}

// Control sends a command to the device playing id (INFO, MANSRTSP).
func (p *Playbacks) Control(ctx context.Context, id string, c Command) (PlaybackState, error) {
	p.mu.Lock()
	pb := p.runs[id]
	p.mu.Unlock()
	if pb == nil {
		return PlaybackState{}, gridwatch.Errorf(gridwatch.ENotFound, "no device playback %s", id)
	}
	var lines []string
	switch c.Op {
	case "pause":
		lines = []string{"PAUSE MANSRTSP/1.0", "", "PauseTime: now"}
	case "resume":
		lines = []string{"PLAY MANSRTSP/1.0", "", "Range: npt=now-"}
	case "seek":
		if c.At < 0 || c.At > pb.To.Sub(pb.From).Seconds() {
			return PlaybackState{}, gridwatch.Errorf(gridwatch.EInvalid, "at: %v is outside the range (0 to %v seconds)", c.At, pb.To.Sub(pb.From).Seconds()).WithDetails(map[string]any{"field": "at"})
		}
		lines = []string{"PLAY MANSRTSP/1.0", "", "Range: npt=" + strconv.FormatFloat(c.At, 'f', -1, 64) + "-"}
	case "speed":
		if !(c.Scale >= 0.25 && c.Scale <= 8) {
			return PlaybackState{}, gridwatch.Errorf(gridwatch.EInvalid, "scale: %v is outside 0.25 to 8", c.Scale).WithDetails(map[string]any{"field": "scale"})
		}
		lines = []string{"PLAY MANSRTSP/1.0", "", "Scale: " + strconv.FormatFloat(c.Scale, 'f', -1, 64)}
	default:
		return PlaybackState{}, gridwatch.Errorf(gridwatch.EInvalid, "op: %q is not pause, resume, seek or speed", c.Op).WithDetails(map[string]any{"field": "op"})
	}
	pb.mu.Lock()
	ss := pb.sess
	pb.cseq++
	lines[1] = "CSeq: " + strconv.Itoa(pb.cseq)
	pb.mu.Unlock()
	if ss == nil || ss.dialog == nil {
		return PlaybackState{}, gridwatch.Errorf(gridwatch.EConflict, "playback %s is not playing yet", id)
	}
	if err := ss.info(ctx, strings.Join(lines, "\r\n")+"\r\n"); err != nil {
		return PlaybackState{}, gridwatch.Errorf(gridwatch.EUnavailable, "playback %s: %s", id, err.Error())
	}
	pb.mu.Lock()
	switch c.Op {
	case "pause":
		pb.paused = true
	case "resume", "seek":
		pb.paused = false
	case "speed":
		pb.scale = c.Scale
	}
	pb.mu.Unlock()
	return p.Get(id)
}

// info sends a MANSRTSP command in the session's dialog.
func (s *session) info(ctx context.Context, body string) error {
	res := s.dialog.InviteResponse
	if res == nil {
		return errors.New("the stream is not answered yet")
	}
	target := s.dialog.InviteRequest.Recipient
	if c := res.Contact(); c != nil {
		target = c.Address
	}
	req := sip.NewRequest(sip.INFO, target)
	req.SetTransport(s.dialog.InviteRequest.Transport())
	req.SetDestination(s.dialog.InviteRequest.Destination())
	req.AppendHeader(sip.NewHeader("Content-Type", "Application/MANSRTSP"))
	req.SetBody([]byte(body))
	ctx, cancel := context.WithTimeout(ctx, s.srv.cfg.Timeout)
	defer cancel()
	r, err := s.dialog.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("INFO: %w", err)
	}
	if r.StatusCode >= 300 {
		return fmt.Errorf("the device refused: %d %s", r.StatusCode, r.Reason)
	}
	return nil
}

// playbackSource opens the playback's INVITE, keeping the session for the
// controls; once the device says the recording is over it opens no more.
type playbackSource struct {
	pb  *Playback
	src Source
}

func (ps playbackSource) Open(ctx context.Context) (pull.Session, error) {
	ps.pb.mu.Lock()
	ended := ps.pb.ended
	if ps.pb.fetch && ps.pb.opened && !ended {
		// A fetch's stream broke off: asking again would start the range
		// over and record it twice.
		ps.pb.ended, ps.pb.failure = true, "the device's stream broke off"
		ended = true
	}
	ps.pb.mu.Unlock()
	if ended {
		// The last session has handed on all it had (the supervisor asks
		// again only once it is over): its viewers see the end now.
		ps.pb.hub.Close()
		<-ctx.Done() // nothing more to play: wait to be stopped
		return nil, errors.New("the recording ended")
	}
	src := ps.src
	src.onEnd = func() {
		ps.pb.mu.Lock()
		ps.pb.ended = true
		ps.pb.mu.Unlock()
	}
	s, err := src.Open(ctx)
	if err != nil {
		return nil, err
	}
	ss := s.(*session)
	ps.pb.mu.Lock()
	ps.pb.sess, ps.pb.paused, ps.pb.scale, ps.pb.opened = ss, false, 1, true
	ps.pb.mu.Unlock()
	return ss, nil
}
