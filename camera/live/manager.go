// Package live runs the cameras' streams: one Supervisor and one Hub per
// camera stream, started when someone watches (or records), stopped after an
// idle delay, and the outputs browsers read from a hub: fMP4 over WebSocket
// for Media Source Extensions, and HLS.
package live

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"gridwatch"
	"gridwatch/camera/pull"
	"gridwatch/camera/stream"
	"gridwatch/internal/fence"
)

// Stream names. Transcoded is the main stream transcoded to H.264, for
// browsers that cannot decode an H.265 camera (see transcoder).
const (
	Main       = "main"
	Sub        = "sub"
	Transcoded = "h264"
)

// Source tells the manager how to reach a camera.
type Source struct {
	ID      int64
	MainURL string // with credentials; never logged
	SubURL  string // "" when the camera has no sub stream: the main one serves
	Enabled bool
	Record  bool
}

// URL is the upstream URL of a stream (for Transcoded, the main stream's).
func (s Source) URL(name string) string {
	if name == Sub && s.SubURL != "" {
		return s.SubURL
	}
	return s.MainURL
}

// Sources looks cameras up: one by id (a gridwatch.ENotFound error when it
// does not exist), and all that record.
type Sources interface {
	Source(ctx context.Context, id int64) (Source, error)
	Recording(ctx context.Context) ([]Source, error)
}

// Key names one camera stream.
type Key struct {
	Camera int64
	Stream string
}

// Config configures a Manager.
type Config struct {
	Sources Sources
	Logger  *slog.Logger
	// Idle is how long a stream nobody watches keeps running (default 30 s).
	Idle time.Duration
	// Pull and Hub are the settings of every supervisor and hub; Pull's
	// URL, Hub, Logger and OnState are filled in per stream.
	Pull pull.Config
	Hub  stream.HubOptions
	// OnState receives every status change of every camera (online while
	// any of its streams is), in order per camera, from one goroutine; it
	// may block (it writes to the database). Key names the stream the
	// state is from.
	OnState func(context.Context, Key, pull.State)
	// Record, when set, records a recording camera's main stream from its
	// hub until ctx ends; the manager runs it while the camera records.
	Record func(ctx context.Context, camera int64, hub *stream.Hub) error
	// FFmpeg is the ffmpeg binary transcoding runs ("": none, and the
	// Transcoded stream answers unavailable). MaxTranscodes bounds the
	// cameras transcoded at once on this node (default 2); TranscodeIdle
	// is how long a transcode nobody watches keeps running (default 5 s).
	FFmpeg        string
	MaxTranscodes int
	TranscodeIdle time.Duration
	// Router, when set, places the streams among several nodes (see
	// Router); nil: this node pulls every camera itself.
	Router Router
	// Openers, when set, gives the source of a stream URL that is not
	// RTSP (a GB/T 28181 channel's gb28181:// URL); false: the URL is
	// pulled over RTSP.
	Openers func(url string) (pull.Source, bool)
}

// Router places camera streams when several nodes share the cameras
// (package cluster): only a camera's owner pulls it from the camera, and
// records it and writes its status; every other node that has a viewer
// for it relays it from the owner's RTSP re-serve, one relay per stream
// however many viewers.
type Router interface {
	// Route is where camera's streams come from now.
	Route(camera int64) Route
	// Want is told of each stream of camera that starts here (on) and of
	// each that stops: a camera wanted on any node gets an owner.
	Want(camera int64, on bool)
}

// Route is where a camera's streams come from: this node pulls it (Local,
// with the fence of its lease, which its writes carry), or relays it from
// the owner's re-serve at Relay ("rtsp://user:token@host:port"), or
// neither while no node has taken the camera (the stream waits).
type Route struct {
	Local bool
	Fence fence.Fence
	Relay string
}

// url is the stream's URL on the relay.
func (r Route) url(k Key) string {
	u := r.Relay + "/cameras/" + strconv.FormatInt(k.Camera, 10)
	if k.Stream == Sub {
		u += "/sub"
	}
	return u
}

// recorderStopWait bounds how long Reroute waits for the recorders of the
// cameras this node lost to write their last rows.
const recorderStopWait = 10 * time.Second

// ownerWait bounds how long a stream waits for a node to take its camera
// before its attempt fails (and is made again).
const ownerWait = 15 * time.Second

// Manager owns the running camera streams.
type Manager struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	ctx     context.Context // Run's; nil before Run and after it returns
	entries map[Key]*entry
	hls     map[Key]*HLS
	hlsSeq  map[Key]int
	wg      sync.WaitGroup

	transcodes transcodeStats
	snapshots  snapshotCache

	// routes is closed (and replaced) whenever Reroute changed a route.
	routes chan struct{}

	states   chan struct{}
	pending  map[int64]keyState
	order    []int64
	reported map[int64]pull.State // last status passed on, per camera
}

type entry struct {
	key    Key
	url    string
	hub    *stream.Hub
	sup    *pull.Supervisor
	cancel context.CancelFunc
	done   chan struct{}
	users  int
	pinned bool
	idle   *time.Timer
	ctx    context.Context
	// stopRecording ends the entry's recorder; nil when none runs.
	// recDone is closed when it has ended, recFence is the fence it writes with.
	stopRecording context.CancelFunc
	recDone       chan struct{}
	recFence      fence.Fence
	// routed: the Router places this stream (all but the transcoded);
	// route is where it comes from now, dialed where its source last
	// opened, waiting whether it waits for an owner (see routedSource).
	routed  bool
	route   Route
	dialed  Route
	waiting bool
}

// NewManager makes a manager; Run starts it.
func NewManager(cfg Config) *Manager {
	if cfg.Idle <= 0 {
		cfg.Idle = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.OnState == nil {
		cfg.OnState = func(context.Context, Key, pull.State) {}
	}
	if cfg.MaxTranscodes <= 0 {
		cfg.MaxTranscodes = 2
	}
	if cfg.TranscodeIdle <= 0 {
		cfg.TranscodeIdle = 5 * time.Second
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, entries: map[Key]*entry{}, hls: map[Key]*HLS{}, hlsSeq: map[Key]int{},
		states: make(chan struct{}, 1), pending: map[int64]keyState{}, reported: map[int64]pull.State{}, routes: make(chan struct{})}
	m.transcodes.procs = map[*os.Process]time.Duration{}
	return m
}

// Run serves until ctx ends, then stops every stream and returns once all
// have stopped. Recording cameras are kept running.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.ctx != nil {
		m.mu.Unlock()
		return errors.New("live: manager already running")
	}
	m.ctx = ctx
	m.mu.Unlock()
	if err := m.Refresh(ctx); err != nil {
		m.log.Warn("cannot start the recording cameras", "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			m.mu.Lock()
			m.ctx = nil
			for _, e := range m.entries {
				m.stopLocked(e)
			}
			m.mu.Unlock()
			m.wg.Wait()
			m.flushStates(context.WithoutCancel(ctx))
			return nil
		case <-m.states:
			m.flushStates(ctx)
		}
	}
}

// flushStates hands the pending status changes to OnState.
func (m *Manager) flushStates(ctx context.Context) {
	m.mu.Lock()
	ids := m.order
	m.order = nil
	states := make([]keyState, len(ids))
	for i, id := range ids {
		states[i] = m.pending[id]
		delete(m.pending, id)
	}
	m.mu.Unlock()
	for _, ks := range states {
		sctx := ctx
		if ks.fence.Valid() {
			sctx = fence.With(ctx, ks.fence)
		}
		m.cfg.OnState(sctx, ks.key, ks.st)
	}
}

// Acquire returns the hub of a camera stream, starting it when it is not
// running, and a release func to call once the caller is done with it.
func (m *Manager) Acquire(ctx context.Context, id int64, name string) (*stream.Hub, func(), error) {
	if name != Main && name != Sub && name != Transcoded {
		return nil, nil, gridwatch.Errorf(gridwatch.EInvalid, "stream: %q is not main, sub or h264", name)
	}
	src, err := m.cfg.Sources.Source(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if !src.Enabled {
		return nil, nil, gridwatch.Errorf(gridwatch.EConflict, "camera %d is disabled", id)
	}
	if name == Transcoded {
		// Only an H.265 camera is transcoded: an H.264 one would hold one
		// of the node's transcode slots for nothing.
		if err := m.checkTranscodable(ctx, id); err != nil {
			return nil, nil, err
		}
	}
	key := Key{id, name}
	m.mu.Lock()
	defer m.mu.Unlock()
	if name == Transcoded && m.entries[key] == nil {
		if m.cfg.FFmpeg == "" {
			return nil, nil, gridwatch.Errorf(gridwatch.EUnavailable, "this node cannot transcode: ffmpeg is not installed")
		}
		n := 0
		for k := range m.entries {
			if k.Stream == Transcoded {
				n++
			}
		}
		if n >= m.cfg.MaxTranscodes {
			m.transcodes.refusals.Add(1)
			return nil, nil, gridwatch.Errorf(gridwatch.EUnavailable, "this node transcodes %d cameras already, its limit (--transcode-max)", n)
		}
	}
	e, err := m.ensureLocked(key, src.URL(name))
	if err != nil {
		return nil, nil, err
	}
	e.users++
	if e.idle != nil {
		e.idle.Stop()
		e.idle = nil
	}
	var once sync.Once
	return e.hub, func() { once.Do(func() { m.release(e) }) }, nil
}

// checkTranscodable refuses the Transcoded stream of a camera whose main
// stream is not H.265 (its main stream is started, and kept for the idle
// delay, to find out: the transcode needs it anyway).
func (m *Manager) checkTranscodable(ctx context.Context, id int64) error {
	hub, release, err := m.Acquire(ctx, id, Main)
	if err != nil {
		return err
	}
	defer release()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	p, err := hub.Ready(rctx)
	if err != nil {
		return gridwatch.Errorf(gridwatch.EUnavailable, "camera %d has sent no picture yet", id)
	}
	if p.Kind != stream.H265 {
		return gridwatch.Errorf(gridwatch.EConflict, "camera %d's main stream is %s already: play it, no transcoding needed", id, p.Kind)
	}
	return nil
}

func (m *Manager) ensureLocked(key Key, url string) (*entry, error) {
	if m.ctx == nil {
		return nil, gridwatch.Errorf(gridwatch.EUnavailable, "video is not running")
	}
	e := m.entries[key]
	if e != nil && e.url == url {
		return e, nil
	}
	if e != nil {
		// The camera's URL changed: its viewers end and reconnect.
		m.stopLocked(e)
	}
	ctx, cancel := context.WithCancel(m.ctx)
	e = &entry{key: key, url: url, cancel: cancel, done: make(chan struct{}), ctx: ctx}
	e.hub = stream.NewHub(m.cfg.Hub)
	pc := m.cfg.Pull
	pc.URL, pc.Hub = url, e.hub
	pc.Logger = m.log.With("camera", key.Camera, "stream", key.Stream)
	pc.OnState = func(st pull.State) { m.noteState(key, st) }
	if key.Stream == Transcoded {
		pc.Source = transcoder{m: m, camera: key.Camera}
	} else if m.cfg.Router != nil {
		e.routed, e.route = true, m.cfg.Router.Route(key.Camera)
		pc.Source = routedSource{m: m, e: e}
		m.cfg.Router.Want(key.Camera, true)
	} else if src, ok := m.otherSource(url); ok {
		pc.Source = src
	}
	e.sup = pull.NewSupervisor(pc)
	m.entries[key] = e
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(e.done)
		_ = e.sup.Run(ctx)
	}()
	return e, nil
}

// noteState turns a stream's status change into the camera's: a camera
// is online while any of its running streams is (a broken sub stream
// does not make a camera with a good main stream flap), and otherwise
// takes the state just reported. Only a change of the camera's status or
// reason is passed on.
func (m *Manager) noteState(key Key, st pull.State) {
	m.mu.Lock()
	e := m.entries[key]
	if m.cfg.Router != nil && (e == nil || !e.routed || !e.route.Local || !e.route.Fence.Valid()) {
		// A relay's state (or a transcode's) is this node's, not the
		// camera's: only the owner's pull says whether the camera is
		// online, under its lease's fence.
		m.mu.Unlock()
		return
	}
	var f fence.Fence
	if e != nil {
		f = e.route.Fence
	}
	agg, aggKey := st, key
	if st.Status != pull.StatusOnline {
		for _, name := range []string{Main, Sub} {
			if e := m.entries[Key{key.Camera, name}]; e != nil && name != key.Stream {
				if os := e.sup.State(); os.Status == pull.StatusOnline {
					agg, aggKey = os, e.key
				}
			}
		}
	}
	if last, ok := m.reported[key.Camera]; ok && last.Status == agg.Status && last.Reason == agg.Reason {
		m.mu.Unlock()
		return
	}
	m.reported[key.Camera] = agg
	if _, ok := m.pending[key.Camera]; !ok {
		m.order = append(m.order, key.Camera)
	}
	m.pending[key.Camera] = keyState{aggKey, agg, f}
	m.mu.Unlock()
	select {
	case m.states <- struct{}{}:
	default:
	}
}

type keyState struct {
	key   Key
	st    pull.State
	fence fence.Fence
}

func (m *Manager) release(e *entry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e.users--
	if e.users > 0 || e.pinned || m.entries[e.key] != e {
		return
	}
	idle := m.cfg.Idle
	if e.key.Stream == Transcoded {
		idle = min(idle, m.cfg.TranscodeIdle)
	}
	e.idle = time.AfterFunc(idle, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if e.users == 0 && !e.pinned && m.entries[e.key] == e {
			m.stopLocked(e)
		}
	})
}

// stopLocked stops a stream; its viewers end with stream.ErrClosed.
func (m *Manager) stopLocked(e *entry) {
	if m.entries[e.key] == e {
		delete(m.entries, e.key)
		if e.routed {
			m.cfg.Router.Want(e.key.Camera, false)
		}
	}
	if e.idle != nil {
		e.idle.Stop()
	}
	e.cancel()
	e.hub.Close()
}

// Refresh brings the running streams in line with the registry: recording
// cameras run (main stream), streams of deleted or disabled cameras stop,
// and a changed URL restarts its stream. Call it after cameras change.
func (m *Manager) Refresh(ctx context.Context) error {
	rec, err := m.cfg.Sources.Recording(ctx)
	if err != nil {
		return err
	}
	m.mu.Lock()
	keys := make([]Key, 0, len(m.entries))
	for k := range m.entries {
		keys = append(keys, k)
	}
	m.mu.Unlock()
	for _, k := range keys {
		src, err := m.cfg.Sources.Source(ctx, k.Camera)
		m.mu.Lock()
		if e := m.entries[k]; e != nil {
			switch {
			case err != nil && gridwatch.ErrorCode(err) == gridwatch.ENotFound, err == nil && !src.Enabled:
				m.stopLocked(e)
			case err == nil && src.URL(k.Stream) != e.url:
				// Viewers reconnect to the new URL; a recording stream is
				// started again below.
				m.stopLocked(e)
			}
		}
		m.mu.Unlock()
	}
	want := map[Key]bool{}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range rec {
		if !s.Enabled {
			continue
		}
		if m.cfg.Router != nil && !m.cfg.Router.Route(s.ID).Local {
			continue // another node records it
		}
		k := Key{s.ID, Main}
		want[k] = true
		e, err := m.ensureLocked(k, s.URL(Main))
		if err != nil {
			return err
		}
		e.pinned = true
		if e.idle != nil {
			e.idle.Stop()
			e.idle = nil
		}
		if m.cfg.Record != nil && e.stopRecording == nil && (m.cfg.Router == nil || (e.route.Local && e.route.Fence.Valid())) {
			rctx, stop := context.WithCancel(e.ctx)
			if e.route.Fence.Valid() {
				rctx = fence.With(rctx, e.route.Fence)
			}
			done := make(chan struct{})
			e.stopRecording, e.recDone, e.recFence = stop, done, e.route.Fence
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				defer close(done)
				err := m.cfg.Record(rctx, k.Camera, e.hub)
				switch {
				case fence.IsStale(err):
					m.log.Info("recorder stopped: another node owns the camera now", "camera", k.Camera)
				case err != nil:
					m.log.Error("recorder stopped", "camera", k.Camera, "err", err)
				}
				// A recorder that ended by itself may be started again
				// (by the next Refresh or Reroute).
				m.mu.Lock()
				if e.recDone == done {
					e.stopRecording, e.recDone = nil, nil
				}
				m.mu.Unlock()
			}()
		}
	}
	for k, e := range m.entries {
		if e.pinned && !want[k] {
			e.pinned = false
			if e.stopRecording != nil {
				e.stopRecording()
				e.stopRecording = nil
			}
			if e.users == 0 {
				m.stopLocked(e)
			}
		}
	}
	return nil
}

// Reroute follows the Router: every stream whose camera's route changed
// reopens where it points now (its viewers stay: a relay follows its camera
// to the new owner), the recorders of the cameras this node lost have
// stopped (their last rows written) when it returns, and the recording
// cameras this node gained are started. The cluster calls it after every
// change of owner, before it releases a camera it hands over.
func (m *Manager) Reroute(ctx context.Context) {
	if m.cfg.Router == nil {
		return
	}
	m.mu.Lock()
	var restart []*pull.Supervisor
	var recorders []chan struct{}
	for _, e := range m.entries {
		if !e.routed {
			continue
		}
		r := m.cfg.Router.Route(e.key.Camera)
		if r == e.route {
			continue
		}
		if r.Local && !e.route.Local {
			// The camera's status comes from this node again: the next
			// state is written even if it is the last one this node wrote.
			delete(m.reported, e.key.Camera)
		}
		e.route = r
		if !e.waiting && e.dialed != r {
			// A stream that waits for an owner opens as soon as routes
			// changes; one that opened elsewhere reopens.
			restart = append(restart, e.sup)
		}
		if e.stopRecording != nil && e.recFence != r.Fence {
			e.stopRecording()
			e.stopRecording = nil
			recorders = append(recorders, e.recDone)
		}
	}
	close(m.routes)
	m.routes = make(chan struct{})
	m.mu.Unlock()
	for _, s := range restart {
		s.Restart()
	}
	// Their last rows are written before the cameras are released; a
	// database that does not answer does not hold the hand-over for long.
	wait := time.NewTimer(recorderStopWait)
	defer wait.Stop()
	for _, done := range recorders {
		select {
		case <-done:
		case <-wait.C:
			m.log.Warn("video: a recorder did not stop in time for the hand-over", "wait", recorderStopWait)
		}
	}
	if err := m.Refresh(ctx); err != nil && ctx.Err() == nil {
		m.log.Warn("video: after a change of owners", "err", err)
	}
}

// routedSource is a routed stream's source: the camera itself where this
// node owns it, else the owner's re-serve; while no node has the camera
// it waits (the stream shows "connecting", not offline).
type routedSource struct {
	m *Manager
	e *entry
}

func (r routedSource) Open(ctx context.Context) (pull.Session, error) {
	m := r.m
	wait := time.NewTimer(ownerWait)
	defer wait.Stop()
	for {
		m.mu.Lock()
		route, url, changed := r.e.route, r.e.url, m.routes
		if route.Local || route.Relay != "" {
			r.e.dialed, r.e.waiting = route, false
		} else {
			r.e.waiting = true
		}
		m.mu.Unlock()
		switch {
		case route.Local:
			if src, ok := m.otherSource(url); ok {
				return src.Open(ctx)
			}
			return m.rtspSource(url).Open(ctx)
		case route.Relay != "":
			return m.rtspSource(route.url(r.e.key)).Open(ctx)
		}
		select {
		case <-ctx.Done():
		case <-changed:
			continue
		case <-wait.C:
		}
		m.mu.Lock()
		r.e.waiting = false
		m.mu.Unlock()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, errors.New("no node has taken this camera yet")
	}
}

// otherSource is the source of a URL that is not pulled over RTSP.
func (m *Manager) otherSource(url string) (pull.Source, bool) {
	if m.cfg.Openers == nil {
		return nil, false
	}
	return m.cfg.Openers(url)
}

// rtspSource is an RTSP source at url with the manager's pull settings.
func (m *Manager) rtspSource(url string) pull.RTSP {
	pc := m.cfg.Pull
	return pull.RTSP{URL: url, Client: pc.Client, DialTimeout: cmp.Or(pc.DialTimeout, 5*time.Second),
		ReadTimeout: cmp.Or(pc.ReadTimeout, 10*time.Second), Logger: m.log}
}

// State is the state of a running camera stream; ok is false when the
// stream is not running.
func (m *Manager) State(id int64, name string) (pull.State, bool) {
	m.mu.Lock()
	e := m.entries[Key{id, name}]
	m.mu.Unlock()
	if e == nil {
		return pull.State{}, false
	}
	return e.sup.State(), true
}

// StreamStats is one running stream's state and fan-out counters.
type StreamStats struct {
	Key   Key
	State pull.State
	Hub   stream.HubStats
}

// Stats lists the running streams, for /metrics.
func (m *Manager) Stats() []StreamStats {
	m.mu.Lock()
	es := make([]*entry, 0, len(m.entries))
	for _, e := range m.entries {
		es = append(es, e)
	}
	m.mu.Unlock()
	out := make([]StreamStats, len(es))
	for i, e := range es {
		out[i] = StreamStats{Key: e.key, State: e.sup.State(), Hub: e.hub.Stats()}
	}
	return out
}
