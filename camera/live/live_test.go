package live

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"go.uber.org/goleak"

	"gridwatch"
	"gridwatch/camera/camsim"
	"gridwatch/camera/internal/cliptest"
	"gridwatch/camera/pull"
	"gridwatch/camera/stream"
	"gridwatch/internal/testtool"
)

// sources is a registry in memory: the manager's tests need no database.
type sources struct {
	mu  sync.Mutex
	all map[int64]Source
}

func (s *sources) Source(_ context.Context, id int64) (Source, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	src, ok := s.all[id]
	if !ok {
		return src, gridwatch.Errorf(gridwatch.ENotFound, "camera %d not found", id)
	}
	return src, nil
}

func (s *sources) Recording(context.Context) ([]Source, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Source
	for _, src := range s.all {
		if src.Record {
			out = append(out, src)
		}
	}
	return out, nil
}

// rig is camsim plus a running manager over it.
type rig struct {
	sim    *camsim.Sim
	m      *Manager
	src    *sources
	states chan stateChange
}

// setMain points camera id's main stream at another simulated stream
// (camsim.StreamH265: a camera whose main stream is set to H.265).
func (r *rig) setMain(id int64, simStream string) {
	r.src.mu.Lock()
	defer r.src.mu.Unlock()
	s := r.src.all[id]
	s.MainURL = r.sim.URL(int(id), simStream)
	r.src.all[id] = s
}

type stateChange struct {
	key Key
	st  pull.State
}

// hold acquires camera id's stream name for the rest of the test (it is
// released when the test ends) and returns its hub.
func (r *rig) hold(t *testing.T, id int64, name string) *stream.Hub {
	t.Helper()
	hub, release, err := r.m.Acquire(context.Background(), id, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	return hub
}

// waitState waits for key's next state of status want, skipping the others,
// and fails the test when deadline passes first.
func (r *rig) waitState(t *testing.T, key Key, want pull.Status, deadline <-chan time.Time) pull.State {
	t.Helper()
	for {
		select {
		case sc := <-r.states:
			if sc.key == key && sc.st.Status == want {
				return sc.st
			}
		case <-deadline:
			t.Fatalf("no %s state of %v in time", want, key)
		}
	}
}

func startRig(t *testing.T, n int, fault camsim.Fault, pc pull.Config) *rig {
	t.Helper()
	states := make(chan stateChange, 100)
	r := newRig(t, camsim.Config{N: n, Addr: "127.0.0.1:0", Username: "cam", Password: "s3cret-cam", Fault: fault, StartTimestamp: 0xFFFFFFFF - 90000},
		Config{Idle: time.Minute, Pull: pc, OnState: func(_ context.Context, k Key, st pull.State) { states <- stateChange{k, st} }})
	r.states = states
	return r
}

// newRig runs simulated cameras and a manager of their streams (cfg, its
// Sources filled in) until the test ends; it returns once the manager
// takes Acquire calls.
func newRig(tb testing.TB, simCfg camsim.Config, cfg Config) *rig {
	tb.Helper()
	sim, err := camsim.New(simCfg)
	if err != nil {
		tb.Fatal(err)
	}
	src := &sources{all: map[int64]Source{}}
	for i := 1; i <= simCfg.N; i++ {
		src.all[int64(i)] = Source{ID: int64(i), MainURL: sim.URL(i, "main"), SubURL: sim.URL(i, "sub"), Enabled: true}
	}
	cfg.Sources = src
	r := &rig{sim: sim, m: NewManager(cfg), src: src}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = sim.Run(ctx) })
	wg.Go(func() { _ = r.m.Run(ctx) })
	tb.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	// Run must have stored its context before Acquire works.
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.m.mu.Lock()
		ok := r.m.ctx != nil
		r.m.mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatal("manager did not start")
		}
		waitBriefly()
	}
	return r
}

// noLeaks checks, after the test and its cleanups, that every goroutine
// the test started has ended.
func noLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// waitBriefly yields while polling a condition that has no event to wait on.
func waitBriefly() { <-time.After(5 * time.Millisecond) }

// recConn records what ServeMSE sends.
type recConn struct {
	mu   sync.Mutex
	msgs []msg
	got  chan struct{}
}

type msg struct {
	text bool
	data []byte
	at   time.Time
}

func newRecConn() *recConn { return &recConn{got: make(chan struct{}, 1000)} }

func (c *recConn) add(text bool, b []byte) error {
	c.mu.Lock()
	c.msgs = append(c.msgs, msg{text, append([]byte(nil), b...), time.Now()})
	c.mu.Unlock()
	select {
	case c.got <- struct{}{}:
	default:
	}
	return nil
}
func (c *recConn) WriteText(_ context.Context, b []byte) error   { return c.add(true, b) }
func (c *recConn) WriteBinary(_ context.Context, b []byte) error { return c.add(false, b) }

func (c *recConn) snapshot() []msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]msg(nil), c.msgs...)
}

// mseFrames parses what a viewer received: the codec mime, the init
// segment and every sample with its decode time and sync flag.
type mseSample struct {
	dts  uint64
	sync bool
	size int
}

func parseMSE(t *testing.T, msgs []msg) (mime string, init []byte, samples []mseSample) {
	t.Helper()
	for _, m := range msgs {
		if m.text {
			var mm MSEMessage
			if err := json.Unmarshal(m.data, &mm); err != nil {
				t.Fatalf("text message %q: %v", m.data, err)
			}
			if mm.Type == "codec" {
				mime = mm.Mime
			}
			continue
		}
		if init == nil {
			init = m.data
			var in fmp4.Init
			if err := in.Unmarshal(bytes.NewReader(m.data)); err != nil {
				t.Fatalf("init segment: %v", err)
			}
			if len(in.Tracks) != 1 || in.Tracks[0].TimeScale != stream.ClockRate {
				t.Fatalf("init: %+v", in.Tracks)
			}
			continue
		}
		var parts fmp4.Parts
		if err := parts.Unmarshal(m.data); err != nil {
			t.Fatalf("fragment: %v", err)
		}
		for _, p := range parts {
			for _, tr := range p.Tracks {
				dts := tr.BaseTime
				for _, s := range tr.Samples {
					samples = append(samples, mseSample{dts: dts, sync: !s.IsNonSyncSample, size: len(s.Payload)})
					dts += uint64(s.Duration)
				}
			}
		}
	}
	return mime, init, samples
}

// watch serves a viewer until it has n samples (or the deadline passes).
func watch(t *testing.T, hub *stream.Hub, m *Manager, key Key, n int) ([]msg, time.Duration) {
	t.Helper()
	conn := newRecConn()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- ServeMSE(ctx, hub, conn, func() (pull.State, bool) { return m.State(key.Camera, key.Stream) }, MSEOptions{})
	}()
	deadline := time.After(20 * time.Second)
	var first time.Duration
	for {
		_, _, samples := parseMSE(t, conn.snapshot())
		if first == 0 && len(samples) > 0 {
			first = time.Since(start)
		}
		if len(samples) >= n {
			break
		}
		select {
		case <-conn.got:
		case <-deadline:
			cancel()
			t.Fatalf("%d samples after 20 s, want %d", len(samples), n)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("ServeMSE: %v", err)
	}
	return conn.snapshot(), first
}

func checkSamples(t *testing.T, samples []mseSample, gop int) {
	t.Helper()
	if !samples[0].sync {
		t.Fatalf("first sample is not a sync sample")
	}
	for i := 1; i < len(samples); i++ {
		if samples[i].dts <= samples[i-1].dts {
			t.Fatalf("sample %d: decode time %d after %d: not increasing", i, samples[i].dts, samples[i-1].dts)
		}
	}
	syncs := 0
	for _, s := range samples {
		if s.sync {
			syncs++
		}
	}
	// One keyframe a second at 25 fps: sync flags only on those. (After a
	// loss, pictures up to the next keyframe are dropped: no count then.)
	if gop == 0 {
		return
	}
	if want := (len(samples) + gop - 1) / gop; syncs > want+1 || syncs < want-1 {
		t.Errorf("%d sync samples in %d, want about %d (one per GOP of %d)", syncs, len(samples), want, gop)
	}
}

func TestMSEFromCamera(t *testing.T) {
	noLeaks(t)
	r := startRig(t, 1, camsim.FaultNone, pull.Config{})
	ctx := context.Background()
	hub, release, err := r.m.Acquire(ctx, 1, Main)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	msgs, _ := watch(t, hub, r.m, Key{1, Main}, 60)
	mime, _, samples := parseMSE(t, msgs)
	if !strings.HasPrefix(mime, `video/mp4; codecs="avc1.`) {
		t.Errorf("mime %q", mime)
	}
	checkSamples(t, samples, 25)
	// The camera's RTP clock started 1 s before its 32-bit wrap: the
	// timeline went through it without a jump.
	for i := 1; i < len(samples); i++ {
		if d := samples[i].dts - samples[i-1].dts; d > 2*3600 {
			t.Fatalf("sample %d: gap of %d ticks", i, d)
		}
	}

	// A viewer joining a running camera starts at once from the cached
	// keyframe, not at the next one.
	msgs, first := watch(t, hub, r.m, Key{1, Main}, 1)
	_, _, samples = parseMSE(t, msgs)
	if !samples[0].sync {
		t.Error("late joiner's first sample is not a keyframe")
	}
	t.Logf("late joiner: first picture after %v", first)

	st, ok := r.m.State(1, Main)
	if !ok || st.Status != pull.StatusOnline || st.Width != 640 || st.Height != 360 || st.FPS == 0 && st.Uptime > 1.5 {
		t.Errorf("state %+v", st)
	}
}

// A camera whose main stream is H.265 plays over MSE as hvc1, decodes
// cleanly (ffmpeg reads the fMP4) and says its codec in its state.
func TestH265FromCamera(t *testing.T) {
	noLeaks(t)
	for _, fault := range []camsim.Fault{camsim.FaultNone, camsim.FaultLoss} {
		t.Run(string(fault)+"fault", func(t *testing.T) {
			r := startRig(t, 1, fault, pull.Config{})
			r.setMain(1, camsim.StreamH265)
			hub := r.hold(t, 1, Main)
			msgs, _ := watch(t, hub, r.m, Key{1, Main}, 60)
			mime, init, samples := parseMSE(t, msgs)
			if !strings.HasPrefix(mime, `video/mp4; codecs="hvc1.1.`) {
				t.Errorf("mime %q, want hvc1 Main profile", mime)
			}
			var in fmp4.Init
			if err := in.Unmarshal(bytes.NewReader(init)); err != nil {
				t.Fatal(err)
			}
			if c, ok := in.Tracks[0].Codec.(*fmp4.CodecH265); !ok || len(c.VPS) == 0 || len(c.SPS) == 0 || len(c.PPS) == 0 {
				t.Fatalf("init segment codec %T, want H.265 with its parameter sets", in.Tracks[0].Codec)
			}
			checkDecodes(t, fault, init, msgs, samples)
			if st, _ := r.m.State(1, Main); !strings.HasPrefix(st.Codec, "hvc1.") || st.Width != 640 {
				t.Errorf("state %+v", st)
			}
		})
	}
}

func TestSlowViewerDoesNotDelayOthers(t *testing.T) {
	noLeaks(t)
	r := startRig(t, 1, camsim.FaultNone, pull.Config{})
	hub := r.hold(t, 1, Main)
	// A viewer that never reads.
	stalled := hub.Subscribe()
	defer stalled.Close()
	msgs, _ := watch(t, hub, r.m, Key{1, Main}, 100)
	_, _, samples := parseMSE(t, msgs)
	checkSamples(t, samples, 25)
	// 100 pictures at 25 fps arrive in about 4 s (less the cached GOP);
	// a stalled viewer holding the hub would have stopped them at the
	// queue's 50.
	if span := msgs[len(msgs)-1].at.Sub(msgs[0].at); span > 6*time.Second {
		t.Errorf("100 pictures took %v", span)
	}
	if hub.Stats().Skips == 0 {
		t.Error("the stalled viewer was never skipped ahead")
	}
}

// checkDecodes checks what a viewer got from a camera in fault: a sync
// sample a GOP (unless packets were lost) and pictures ffmpeg decodes
// without complaint.
func checkDecodes(t *testing.T, fault camsim.Fault, init []byte, msgs []msg, samples []mseSample) {
	t.Helper()
	gop := 25
	if fault == camsim.FaultLoss {
		gop = 0
	}
	checkSamples(t, samples, gop)
	if out := decodeErrors(t, init, msgs); out != "" {
		t.Errorf("ffmpeg found corrupt pictures:\n%s", out)
	}
}

// decodeErrors feeds an fMP4 to ffmpeg and returns what it complains of.
func decodeErrors(t *testing.T, init []byte, msgs []msg) string {
	t.Helper()
	testtool.Require(t, "ffmpeg")
	var file bytes.Buffer
	file.Write(init)
	for _, m := range msgs[1:] {
		if !m.text && !bytes.Equal(m.data, init) {
			file.Write(m.data)
		}
	}
	cmd := exec.Command("ffmpeg", "-v", "warning", "-f", "mp4", "-i", "-", "-f", "null", "-")
	cmd.Stdin = &file
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
	return string(out)
}

func TestLossyAndMultiSliceStreamsDecodeCleanly(t *testing.T) {
	for _, fault := range []camsim.Fault{camsim.FaultNone, camsim.FaultLoss, camsim.FaultSlices, camsim.FaultSlices32} {
		t.Run(string(fault)+"fault", func(t *testing.T) {
			r := startRig(t, 1, fault, pull.Config{})
			hub := r.hold(t, 1, Main)
			msgs, _ := watch(t, hub, r.m, Key{1, Main}, 100)
			_, init, samples := parseMSE(t, msgs)
			checkDecodes(t, fault, init, msgs, samples)
			if (fault == camsim.FaultSlices || fault == camsim.FaultSlices32) && hub.Stats().Frames > 0 {
				// Four (or 32) slices a picture are still one picture each.
				if n := hub.Stats().Frames; float64(n) > 1.2*float64(r.sim.Frames(1, "main")) {
					t.Errorf("%d pictures published for %d sent", n, r.sim.Frames(1, "main"))
				}
			}
		})
	}
}

func TestCameraDropAndReturn(t *testing.T) {
	noLeaks(t)
	r := startRig(t, 2, camsim.FaultNone, pull.Config{MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	hub := r.hold(t, 1, Main)
	waitState := func(want pull.Status) pull.State {
		return r.waitState(t, Key{1, Main}, want, time.After(20*time.Second))
	}
	waitState(pull.StatusOnline)
	r.sim.SetFault(1, camsim.FaultDisconnect)
	st := waitState(pull.StatusOffline)
	if st.Reason == "" || strings.Contains(st.Reason, "s3cret-cam") {
		t.Errorf("offline reason %q: want one, without the camera's password", st.Reason)
	}
	r.sim.SetFault(1, camsim.FaultNone)
	waitState(pull.StatusOnline)
	if st, _ := r.m.State(1, Main); st.Reconnects == 0 {
		t.Errorf("reconnects = 0 after a drop")
	}
	// Pictures flow again, on the same continuous timeline.
	msgs, _ := watch(t, hub, r.m, Key{1, Main}, 30)
	_, _, samples := parseMSE(t, msgs)
	checkSamples(t, samples, 25)
}

func TestStalledCameraGoesOffline(t *testing.T) {
	noLeaks(t)
	r := startRig(t, 1, camsim.FaultNone, pull.Config{StallTimeout: 300 * time.Millisecond, MinBackoff: 50 * time.Millisecond})
	r.hold(t, 1, Main)
	deadline := time.After(20 * time.Second)
	r.waitState(t, Key{1, Main}, pull.StatusOnline, deadline)
	r.sim.SetFault(1, camsim.FaultStall)
	if st := r.waitState(t, Key{1, Main}, pull.StatusOffline, deadline); !strings.Contains(st.Reason, "no picture") {
		t.Errorf("reason %q", st.Reason)
	}
}

func TestIdleStreamStops(t *testing.T) {
	noLeaks(t)
	r := startRig(t, 1, camsim.FaultNone, pull.Config{})
	r.m.cfg.Idle = 50 * time.Millisecond
	hub, release, err := r.m.Acquire(context.Background(), 1, Sub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hub.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	release()
	release() // twice is harmless
	v := hub.Subscribe()
	defer v.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, err := v.Next(ctx, nil); err != nil {
			if err != stream.ErrClosed {
				t.Fatalf("viewer ended with %v, want the stream closed after the idle delay", err)
			}
			break
		}
	}
	if _, ok := r.m.State(1, Sub); ok {
		t.Error("an idle stream is still running")
	}
	if _, _, err := r.m.Acquire(context.Background(), 99, Main); gridwatch.ErrorCode(err) != gridwatch.ENotFound {
		t.Errorf("unknown camera: %v", err)
	}
}

// TestVDKClient pulls through deepch/vdk's client instead of gortsplib's:
// the same assembler rebuilds clean pictures from its raw RTP packets,
// multi-slice and lossy streams included, where vdk's own depacketiser
// would split pictures and stitch corrupt ones.
func TestVDKClient(t *testing.T) {
	for _, tc := range []struct {
		fault  camsim.Fault
		stream string
	}{{camsim.FaultLoss, camsim.StreamMain}, {camsim.FaultSlices, camsim.StreamMain}, {camsim.FaultNone, camsim.StreamH265}} {
		t.Run(string(tc.fault)+tc.stream, func(t *testing.T) {
			noLeaks(t)
			r := startRig(t, 1, tc.fault, pull.Config{Client: pull.ClientVDK})
			r.setMain(1, tc.stream)
			hub := r.hold(t, 1, Main)
			msgs, _ := watch(t, hub, r.m, Key{1, Main}, 60)
			_, init, samples := parseMSE(t, msgs)
			checkSamples(t, samples, 0)
			if out := decodeErrors(t, init, msgs); out != "" {
				t.Errorf("ffmpeg found corrupt pictures:\n%s", out)
			}
		})
	}
}

// TestHLSConcurrentStart asks for one camera's HLS from many requests at
// once: one muxer runs, the others' acquisitions are released, and nothing
// locks up.
func TestHLSConcurrentStart(t *testing.T) {
	noLeaks(t)
	r := startRig(t, 1, camsim.FaultNone, pull.Config{})
	var wg sync.WaitGroup
	muxers := make([]*HLS, 20)
	for i := range muxers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := r.m.HLS(context.Background(), 1, Sub)
			if err != nil {
				t.Error(err)
			}
			muxers[i] = h
		}()
	}
	wg.Wait()
	for _, h := range muxers[1:] {
		if h != muxers[0] {
			t.Fatal("two HLS muxers for one stream")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	pl, err := muxers[0].Playlist(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(pl), "#EXT-X-TARGETDURATION:2") || !strings.Contains(string(pl), "seg-0.m4s") {
		t.Errorf("playlist:\n%s", pl)
	}
	if st := r.m.Stats(); len(st) != 1 || st[0].Hub.Viewers != 1 {
		t.Errorf("stats %+v: want one stream with the muxer as its one viewer", st)
	}
}

// TestBrokenSubStreamDoesNotFlap: a camera whose sub stream fails while its
// main stream plays stays online; its status does not flap.
func TestBrokenSubStreamDoesNotFlap(t *testing.T) {
	noLeaks(t)
	r := startRig(t, 1, camsim.FaultNone, pull.Config{MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	src := r.m.cfg.Sources.(*sources)
	src.mu.Lock()
	s := src.all[1]
	s.SubURL = strings.Replace(s.SubURL, "/cam/1/sub", "/cam/99/sub", 1)
	src.all[1] = s
	src.mu.Unlock()
	r.hold(t, 1, Main)
	if sc := <-r.states; sc.st.Status != pull.StatusOnline {
		t.Fatalf("first state %+v, want online", sc.st)
	}
	r.hold(t, 1, Sub)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if st, _ := r.m.State(1, Sub); st.Status == pull.StatusOffline && st.Reconnects >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the broken sub stream never failed")
		}
		waitBriefly()
	}
	select {
	case sc := <-r.states:
		t.Errorf("camera status changed to %+v while its main stream plays", sc.st)
	default:
	}
}

// blockedConn is a viewer whose socket takes nothing: every write waits
// for its context.
type blockedConn struct{ writes chan struct{} }

func (c blockedConn) WriteText(ctx context.Context, msg []byte) error { return c.WriteBinary(ctx, msg) }
func (c blockedConn) WriteBinary(ctx context.Context, msg []byte) error {
	select {
	case c.writes <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

// A viewer whose writes never complete is ended once one has taken the
// write timeout, with an error that says so.
func TestMSEWriteTimeout(t *testing.T) {
	aus, params := cliptest.Clip(t, camsim.ClipMain)
	hub := stream.NewHub(stream.HubOptions{})
	hub.Publish(&stream.AccessUnit{NALUs: aus[0], Key: true, Params: params, Duration: 3600, Received: time.Now()})
	conn := blockedConn{writes: make(chan struct{}, 1)}
	done := make(chan error, 1)
	go func() {
		done <- ServeMSE(context.Background(), hub, conn, func() (pull.State, bool) { return pull.State{}, false },
			MSEOptions{WriteTimeout: 200 * time.Millisecond})
	}()
	<-conn.writes
	began := time.Now()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "took over 200ms") {
			t.Errorf("ServeMSE: %v, want the write timeout", err)
		}
		if d := time.Since(began); d < 200*time.Millisecond {
			t.Errorf("ended %v after the write began, before the timeout", d)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a blocked viewer was never ended")
	}
}
