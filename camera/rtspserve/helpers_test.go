package rtspserve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"go.uber.org/goleak"

	"gridwatch"
	"gridwatch/camera/internal/cliptest"
	"gridwatch/camera/stream"
	"gridwatch/internal/testtool"

	"gridwatch/camera/internal/rtsptest"
)

// waitLong bounds every wait for something that should happen within a few
// pictures.
const waitLong = rtsptest.WaitLong

// Tokens the fake Access knows. Each is long and unique, so that finding one
// in a log is never a coincidence.
const (
	goodToken      = "tok-GOOD-7f3a9c1e5b"
	forbiddenToken = "tok-FORBIDDEN-2d8e4a6c"
	badToken       = "tok-BAD-9b1f3e7d"
)

// allTokens are the strings no log line may contain.
var allTokens = []string{goodToken, forbiddenToken, badToken}

// Cameras the fake Acquire knows.
const (
	camMain        = 1  // main and sub streams, published by the test
	camOther       = 2  // a second camera
	camUnavailable = 4  // Acquire fails with EUnavailable
	camNeverReady  = 5  // a hub that never gets a picture
	camUnknown     = 99 // Access says ENotFound
)

var toolDir string // TestMain's temporary directory, for the ffmpeg clips

func TestMain(m *testing.M) {
	if spec := os.Getenv(readerEnv); spec != "" {
		os.Exit(readersMain(spec)) // BenchmarkFanOut's readers
	}
	dir, err := os.MkdirTemp("", "rtspserve-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	toolDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// requireTool returns the path of an executable, or skips the test (fails
// it when GRIDWATCH_REQUIRE_ALL=1) saying why.
func requireTool(tb testing.TB, name string) string {
	tb.Helper()
	return testtool.Require(tb, name)
}

// picture is one access unit of a clip, ready to publish again and again.
type picture struct {
	nalus [][]byte
	key   bool
}

// clip is an H.264 clip from ffmpeg split into pictures.
type clip struct {
	pics   []picture
	params *stream.Params
}

// clipSpec is what ffmpeg makes: testsrc2 of a size, 25 fps, a keyframe
// every 25 pictures, no B-frames, SPS/PPS before every keyframe.
type clipSpec struct {
	size    string // e.g. "320x180"
	bitrate string // e.g. "500k"; "" = x264's default quality
}

var (
	clipsMu sync.Mutex
	clips   = map[clipSpec]*clip{}
)

// camsimClip is one of camsim's embedded clips (camsim.ClipH265, …) as a
// test clip.
func camsimClip(tb testing.TB, name string) *clip {
	tb.Helper()
	aus, params := cliptest.Clip(tb, name)
	c := &clip{params: params}
	for _, au := range aus {
		c.pics = append(c.pics, picture{nalus: au, key: params.Kind.IsKey(au)})
	}
	return c
}

// testClip returns the 4 s test clip, made by ffmpeg once per spec.
func testClip(tb testing.TB, spec clipSpec) *clip {
	tb.Helper()
	ffmpeg := requireTool(tb, "ffmpeg")
	clipsMu.Lock()
	defer clipsMu.Unlock()
	if c, ok := clips[spec]; ok {
		return c
	}
	out := filepath.Join(toolDir, strings.NewReplacer("x", "_").Replace(spec.size)+"-"+spec.bitrate+".h264")
	args := []string{"-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=" + spec.size + ":rate=25", "-t", "4",
		"-c:v", "libx264", "-g", "25", "-bf", "0"}
	if spec.bitrate != "" {
		args = append(args, "-b:v", spec.bitrate, "-maxrate", spec.bitrate, "-bufsize", spec.bitrate)
	}
	args = append(args, "-x264-params", "repeat-headers=1", "-f", "h264", out)
	if b, err := exec.Command(ffmpeg, args...).CombinedOutput(); err != nil {
		tb.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := parseClip(data)
	if err != nil {
		tb.Fatalf("clip %v: %v", spec, err)
	}
	clips[spec] = c
	return c
}

// parseClip splits an Annex-B stream into pictures.
func parseClip(data []byte) (*clip, error) {
	var nalus h264.AnnexB
	if err := nalus.Unmarshal(data); err != nil {
		return nil, err
	}
	c := &clip{}
	var sps, pps []byte
	for _, au := range splitAccessUnits(nalus) {
		for _, n := range au {
			switch h264.NALUType(n[0] & 0x1f) {
			case h264.NALUTypeSPS:
				sps = n
			case h264.NALUTypePPS:
				pps = n
			}
		}
		c.pics = append(c.pics, picture{nalus: au, key: stream.H264.IsKey(au)})
	}
	if len(c.pics) == 0 || !c.pics[0].key {
		return nil, errors.New("no pictures, or the first is not a keyframe")
	}
	p, err := stream.NewParams(sps, pps)
	if err != nil {
		return nil, err
	}
	c.params = p
	return c, nil
}

// splitAccessUnits groups NAL units into access units: a new one starts at
// an AUD, at a non-VCL unit after a slice, or at a slice with
// first_mb_in_slice = 0 after a slice. AUDs are dropped, as the puller does.
func splitAccessUnits(nalus [][]byte) [][][]byte {
	var aus [][][]byte
	var cur [][]byte
	vcl := false
	for _, n := range nalus {
		if len(n) == 0 {
			continue
		}
		typ := h264.NALUType(n[0] & 0x1f)
		isVCL := typ >= h264.NALUTypeNonIDR && typ <= h264.NALUTypeIDR
		var starts bool
		switch {
		case typ == h264.NALUTypeAccessUnitDelimiter:
			starts = true
		case isVCL:
			starts = vcl && len(n) > 1 && n[1]&0x80 != 0 // ue(v) 0 is the bit 1
		default:
			starts = vcl
		}
		if starts && len(cur) > 0 {
			if vcl {
				aus = append(aus, cur)
			}
			cur, vcl = nil, false
		}
		if typ == h264.NALUTypeAccessUnitDelimiter {
			continue
		}
		cur = append(cur, n)
		vcl = vcl || isVCL
	}
	if vcl {
		aus = append(aus, cur)
	}
	return aus
}

// source publishes a clip to a hub in a loop, on one continuous timeline:
// picture i has DTS = PTS = i*3600 (25 fps).
type source struct {
	hub  *stream.Hub
	clip *clip

	mu  sync.Mutex
	n   int                 // pictures published
	pub map[int64]time.Time // PTS → when published, for latency checks
}

func newSource(hub *stream.Hub, c *clip) *source {
	return &source{hub: hub, clip: c, pub: map[int64]time.Time{}}
}

// publish publishes the next k pictures at once.
func (s *source) publish(k int) {
	for range k {
		s.mu.Lock()
		i := s.n
		s.n++
		now := time.Now()
		s.pub[int64(i)*3600] = now
		s.mu.Unlock()
		p := s.clip.pics[i%len(s.clip.pics)]
		s.hub.Publish(&stream.AccessUnit{
			DTS: int64(i) * 3600, PTS: int64(i) * 3600, Duration: 3600,
			NALUs: p.nalus, Key: p.key, Params: s.clip.params, Received: now,
		})
	}
}

// published returns how many pictures were published so far.
func (s *source) published() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// picture returns the clip picture published with PTS pts.
func (s *source) picture(pts int64) picture {
	return s.clip.pics[int(pts/3600)%len(s.clip.pics)]
}

// run publishes a picture every interval until the test ends. Pacing a
// publisher is what a camera does; nothing here waits for an event.
func (s *source) run(t testing.TB, interval time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				s.publish(1)
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// fakes are the Access and Acquire of a test, with their bookkeeping.
type fakes struct {
	hubs map[key]*stream.Hub

	mu       sync.Mutex
	acquired int         // acquisitions so far; each has a number from 1
	released map[int]int // acquisition → times released
	order    []key       // acquisition → what it acquired (index n-1)
	rel      chan int    // gets an acquisition's number when it is released
	acq      chan int    // gets an acquisition's number when it is made
	accesses atomic.Int64
	revoked  atomic.Bool // goodToken no longer grants anything
}

func newFakes() *fakes {
	return &fakes{hubs: map[key]*stream.Hub{}, released: map[int]int{}, rel: make(chan int, 1000), acq: make(chan int, 1000)}
}

func (f *fakes) access(ctx context.Context, token string, id int64) error {
	f.accesses.Add(1)
	switch token {
	case goodToken:
		if f.revoked.Load() {
			return gridwatch.Errorf(gridwatch.EUnauthenticated, "the token was revoked")
		}
	case forbiddenToken:
		return gridwatch.Errorf(gridwatch.EForbidden, "not your camera")
	default:
		return gridwatch.Errorf(gridwatch.EUnauthenticated, "a valid token is required")
	}
	if id == camUnknown {
		return gridwatch.Errorf(gridwatch.ENotFound, "camera %d not found", id)
	}
	return nil
}

func (f *fakes) acquire(ctx context.Context, id int64, name string) (*stream.Hub, func(), error) {
	if id == camUnavailable {
		return nil, nil, gridwatch.Errorf(gridwatch.EUnavailable, "camera %d offline", id)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k := key{id, name}
	hub, ok := f.hubs[k]
	if !ok {
		return nil, nil, gridwatch.Errorf(gridwatch.ENotFound, "camera %d has no %s stream", id, name)
	}
	f.acquired++
	n := f.acquired
	f.order = append(f.order, k)
	f.acq <- n
	return hub, func() {
		f.mu.Lock()
		f.released[n]++
		f.mu.Unlock()
		f.rel <- n
	}, nil
}

// counts returns acquisitions and releases so far.
func (f *fakes) counts() (acquired, released int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.released {
		released += c
	}
	return f.acquired, released
}

// check fails the test unless every acquisition was released exactly once.
func (f *fakes) check(t testing.TB) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for n := 1; n <= f.acquired; n++ {
		if got := f.released[n]; got != 1 {
			t.Errorf("acquisition %d (%v) released %d times, want 1", n, f.order[n-1], got)
		}
	}
}

// waitRelease waits for acquisition n to be released.
func (f *fakes) waitRelease(t testing.TB, n int) {
	t.Helper()
	deadline := time.After(waitLong)
	for {
		f.mu.Lock()
		done := f.released[n] > 0
		f.mu.Unlock()
		if done {
			return
		}
		select {
		case <-f.rel:
		case <-deadline:
			t.Fatalf("acquisition %d not released within %v", n, waitLong)
		}
	}
}

// env is a running Server with fake Access and Acquire and test hubs.
type env struct {
	srv   *Server
	fakes *fakes
	logs  *testtool.LogBuffer
	main  *stream.Hub // camera 1 main
	sub   *stream.Hub // camera 1 sub
	other *stream.Hub // camera 2 main
	stop  func()      // stops the server and runs the checks; once
}

// envOptions change a test env.
type envOptions struct {
	readyTimeout time.Duration
	writeTimeout time.Duration
	hub          stream.HubOptions
	recheck      time.Duration
	sndbuf       int // SO_SNDBUF of the server's connections, 0 = the kernel's
	watch        Watch
}

// startEnv starts a Server on 127.0.0.1:0 for the test. Cleanup stops it,
// then checks that Run returned, every acquisition was released once, no
// goroutine leaked and no token reached the log.
func startEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	e := &env{fakes: newFakes(), logs: &testtool.LogBuffer{}}
	e.main = stream.NewHub(o.hub)
	e.sub = stream.NewHub(o.hub)
	e.other = stream.NewHub(o.hub)
	e.fakes.hubs[key{camMain, StreamMain}] = e.main
	e.fakes.hubs[key{camMain, StreamSub}] = e.sub
	e.fakes.hubs[key{camOther, StreamMain}] = e.other
	e.fakes.hubs[key{camNeverReady, StreamMain}] = stream.NewHub(o.hub)
	srv, err := New(Config{
		Addr:         "127.0.0.1:0",
		Access:       e.fakes.access,
		Acquire:      e.fakes.acquire,
		Logger:       slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		ReadyTimeout: o.readyTimeout,
		Recheck:      o.recheck,
		Watch:        o.watch,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if o.writeTimeout > 0 {
		srv.writeTimeout = o.writeTimeout
	}
	if o.sndbuf > 0 {
		srv.ln.(*gateListener).tune = func(c net.Conn) {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetWriteBuffer(o.sndbuf)
			}
		}
	}
	e.srv = srv
	stopRun := testtool.Run(t, waitLong, srv.Run)
	var once sync.Once
	e.stop = func() { once.Do(func() { stopRun(); e.checkAfterRun(t) }) }
	t.Cleanup(e.stop)
	return e
}

// checkAfterRun checks what must hold once Run has returned.
func (e *env) checkAfterRun(t testing.TB) {
	t.Helper()
	e.fakes.check(t)
	if st := e.srv.Stats(); st.Sessions != 0 {
		t.Errorf("Stats().Sessions = %d after Run, want 0", st.Sessions)
	}
	logs := e.logs.String()
	for _, tok := range allTokens {
		if strings.Contains(logs, tok) {
			t.Errorf("log contains token %q:\n%s", tok, logs)
		}
	}
	goleak.VerifyNone(t)
}

// url returns an rtsp:// URL of the server for path, with ?token=tok
// unless tok is "".
func (e *env) url(path, tok string) string {
	u := "rtsp://" + e.srv.Addr() + path
	if tok != "" {
		u += "?token=" + tok
	}
	return u
}

// rawClient is a minimal RTSP client over one TCP connection: requests are
// written and responses read by hand, so a test sees exactly what the
// server sends and can stop reading whenever it likes.
type rawClient struct {
	nc      net.Conn
	br      *bufio.Reader
	cseq    int
	session string
}

// dialRaw connects to addr; rcvbuf > 0 sets SO_RCVBUF before connecting,
// so that the TCP window stays that small.
func dialRaw(t testing.TB, addr string, rcvbuf int) *rawClient {
	t.Helper()
	d := net.Dialer{Timeout: waitLong}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			return errors.Join(err, serr)
		}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c := &rawClient{nc: nc, br: bufio.NewReaderSize(nc, 64<<10)}
	t.Cleanup(func() { _ = nc.Close() })
	return c
}

// do sends a request and reads its response.
func (c *rawClient) do(t testing.TB, method base.Method, rawURL string, h base.Header) *base.Response {
	t.Helper()
	u, err := base.ParseURL(rawURL)
	if err != nil {
		t.Fatalf("ParseURL: %v", err)
	}
	c.cseq++
	req := base.Request{Method: method, URL: u, Header: base.Header{"CSeq": base.HeaderValue{fmt.Sprint(c.cseq)}}}
	for k, v := range h {
		req.Header[k] = v
	}
	if c.session != "" {
		req.Header["Session"] = base.HeaderValue{c.session}
	}
	b, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	_ = c.nc.SetDeadline(time.Now().Add(waitLong))
	defer func() { _ = c.nc.SetDeadline(time.Time{}) }()
	if _, err := c.nc.Write(b); err != nil {
		t.Fatalf("%s: write: %v", method, err)
	}
	// While playing, frames come before and after the response: skip them.
	for {
		b, err := c.br.Peek(1)
		if err != nil {
			t.Fatalf("%s: read response: %v", method, err)
		}
		if b[0] != base.InterleavedFrameMagicByte {
			break
		}
		var f base.InterleavedFrame
		if err := f.Unmarshal(c.br); err != nil {
			t.Fatalf("%s: read frame: %v", method, err)
		}
	}
	var res base.Response
	if err := res.Unmarshal(c.br); err != nil {
		t.Fatalf("%s: read response: %v", method, err)
	}
	if s, ok := res.Header["Session"]; ok && len(s) == 1 {
		c.session, _, _ = strings.Cut(s[0], ";")
	}
	return &res
}

// play DESCRIBEs, SETUPs (interleaved 0-1) and PLAYs path; it fails the
// test unless each answers 200.
func (c *rawClient) play(t testing.TB, e *env, path, tok string) {
	t.Helper()
	if res := c.do(t, base.Describe, e.url(path, tok), nil); res.StatusCode != base.StatusOK {
		t.Fatalf("DESCRIBE %s: %d", path, res.StatusCode)
	}
	c.setupPlay(t, e, path, tok)
}

// setupPlay SETUPs and PLAYs path and returns the SETUP response.
func (c *rawClient) setupPlay(t testing.TB, e *env, path, tok string) *base.Response {
	t.Helper()
	res := c.do(t, base.Setup, e.url(path+"/trackID=0", tok),
		base.Header{"Transport": base.HeaderValue{"RTP/AVP/TCP;unicast;interleaved=0-1"}})
	if res.StatusCode != base.StatusOK {
		t.Fatalf("SETUP %s: %d", path, res.StatusCode)
	}
	if res := c.do(t, base.Play, e.url(path, tok), nil); res.StatusCode != base.StatusOK {
		t.Fatalf("PLAY %s: %d", path, res.StatusCode)
	}
	return res
}

// frame reads one interleaved frame.
func (c *rawClient) frame(t testing.TB) *base.InterleavedFrame {
	t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(waitLong))
	var f base.InterleavedFrame
	if err := f.Unmarshal(c.br); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return &f
}
