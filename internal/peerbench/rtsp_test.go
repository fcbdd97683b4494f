package peerbench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gridwatch/camera/camsim"

	"github.com/coder/websocket"
)

func TestResolveControl(t *testing.T) {
	for _, c := range []struct{ base, control, want string }{
		{"rtsp://h:554/cam1", "trackID=0", "rtsp://h:554/cam1/trackID=0"},
		{"rtsp://h:554/cam1/", "trackID=0", "rtsp://h:554/cam1/trackID=0"},
		{"rtsp://h:554/cam/1/main/", "trackID=1", "rtsp://h:554/cam/1/main/trackID=1"},
		{"rtsp://h:554/cam1", "rtsp://other:8554/x/track1", "rtsp://other:8554/x/track1"},
		{"rtsp://h:554/cam1", "rtsps://other/x/track1", "rtsps://other/x/track1"},
		{"rtsp://h:554/cam1", "*", "rtsp://h:554/cam1"},
		{"rtsp://h:554/cam1", "", "rtsp://h:554/cam1"},
		// The control goes on the path, before the query.
		{"rtsp://h:554/cam1?token=abc&x=1", "trackID=0", "rtsp://h:554/cam1/trackID=0?token=abc&x=1"},
		{"rtsp://h:554/cam1/?token=abc", "trackID=0", "rtsp://h:554/cam1/trackID=0?token=abc"},
		{"rtsp://u:p@h:554/cam1", "trackID=0", "rtsp://u:p@h:554/cam1/trackID=0"},
	} {
		if got := ResolveControl(c.base, c.control); got != c.want {
			t.Errorf("ResolveControl(%q, %q) = %q, want %q", c.base, c.control, got, c.want)
		}
	}
}

func TestVideoControl(t *testing.T) {
	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
	audioFirst := crlf("v=0\no=- 0 0 IN IP4 127.0.0.1\ns= \nt=0 0\na=control:*\n" +
		"m=audio 0 RTP/AVP 8\na=control:trackID=0\na=rtpmap:8 PCMA/8000\n" +
		"m=video 0 RTP/AVP 96\na=rtpmap:96 H264/90000\na=control:trackID=1\n" +
		"m=video 0 RTP/AVP 97\na=control:trackID=2\n")
	for _, c := range []struct {
		name, sdp, want string
	}{
		{"audio first then video", audioFirst, "trackID=1"},
		{"LF line ends", strings.ReplaceAll(audioFirst, "\r\n", "\n"), "trackID=1"},
		{"video without control", "v=0\nm=video 0 RTP/AVP 96\na=rtpmap:96 H264/90000\nm=audio 0 RTP/AVP 0\na=control:trackID=1\n", ""},
		{"absolute control", "m=video 0 RTP/AVP 96\r\na=control:rtsp://h/cam/trackID=0\r\n", "rtsp://h/cam/trackID=0"},
	} {
		got, err := videoControl(c.sdp)
		if err != nil || got != c.want {
			t.Errorf("%s: videoControl = %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	for _, sdp := range []string{"", "v=0\r\nm=audio 0 RTP/AVP 8\r\na=control:trackID=0\r\n", "v=0\r\na=control:*\r\n"} {
		if got, err := videoControl(sdp); err == nil {
			t.Errorf("videoControl(%q) = %q, nil; want an error (no video)", sdp, got)
		}
	}
}

func TestIsIDR(t *testing.T) {
	sps := []byte{0x67, 0x42, 0xc0, 0x1e}
	pps := []byte{0x68, 0xcb, 0x8c}
	idr := []byte{0x65, 0x88, 0x84}
	slice := []byte{0x41, 0x9a, 0x02}
	stap := func(units ...[]byte) []byte {
		b := []byte{0x78} // F=0, NRI=3, type 24
		for _, u := range units {
			b = append(b, byte(len(u)>>8), byte(len(u)))
			b = append(b, u...)
		}
		return b
	}
	for _, c := range []struct {
		name string
		pl   []byte
		want bool
	}{
		{"empty", nil, false},
		{"single IDR", idr, true},
		{"single IDR, NRI 0", []byte{0x05, 0x00}, true},
		{"single non-IDR slice", slice, false},
		{"single SPS", sps, false},
		{"STAP-A SPS, PPS, IDR", stap(sps, pps, idr), true},
		{"STAP-A IDR first", stap(idr, sps), true},
		{"STAP-A SPS, PPS", stap(sps, pps), false},
		{"STAP-A SPS, PPS, slice", stap(sps, pps, slice), false},
		{"STAP-A truncated before IDR", stap(sps, pps, idr)[:len(stap(sps, pps))+2], false},
		{"STAP-A size past the end", []byte{0x78, 0x00, 0x09, 0x65, 0x88}, false},
		{"STAP-A zero size", []byte{0x78, 0x00, 0x00, 0x65, 0x88}, false},
		{"FU-A start of IDR", []byte{0x7c, 0x85, 0x88}, true},
		{"FU-A middle of IDR", []byte{0x7c, 0x05, 0x88}, false},
		{"FU-A end of IDR", []byte{0x7c, 0x45, 0x88}, false},
		{"FU-A start of non-IDR", []byte{0x5c, 0x81, 0x9a}, false},
		{"FU-A header only", []byte{0x7c}, false},
	} {
		if got := IsIDR(c.pl); got != c.want {
			t.Errorf("%s: IsIDR(% x) = %v, want %v", c.name, c.pl, got, c.want)
		}
	}
}

// describeOK is camsim's answer to DESCRIBE (gortsplib's server), as sent.
const describeOK = "RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Base: rtsp://127.0.0.1:35433/cam/1/main/\r\nContent-Length: 253\r\nContent-Type: application/sdp\r\nServer: gortsplib\r\n\r\n" +
	"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns= \r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=control:trackID=0\r\na=rtpmap:96 H264/90000\r\n" +
	"a=fmtp:96 packetization-mode=1; profile-level-id=42C01E; sprop-parameter-sets=Z0LAHtkAoC/5cBEAAAMAAQAAAwAyDxYuSA==,aMuMsg==\r\n"

// setupOK is camsim's answer to SETUP.
const setupOK = "RTSP/1.0 200 OK\r\nCSeq: 2\r\nServer: gortsplib\r\nSession: 1538b92e286c4eca8b073d0201d9e148\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=B32D12C2\r\n\r\n"

// frame is an interleaved frame on channel ch.
func frame(ch byte, payload []byte) []byte {
	return append([]byte{'$', ch, byte(len(payload) >> 8), byte(len(payload))}, payload...)
}

func TestReadMessage(t *testing.T) {
	var in bytes.Buffer
	// Lengths whose low bits overlap the 4-byte header's: a frame is
	// skipped whole, header and payload.
	in.Write(frame(0, []byte("abcd")))
	in.Write(frame(1, bytes.Repeat([]byte{'$'}, 0x107)))
	in.WriteString(describeOK)
	in.Write(frame(0, nil))
	in.WriteString("RTSP/1.0 401 Unauthorized\r\ncseq: 2\r\nWWW-Authenticate: Basic realm=\"x\"\r\n\r\n")
	in.WriteString(setupOK)
	br := bufio.NewReader(&in)

	for i := range 2 {
		if res, err := readMessage(br); res != nil || err != nil {
			t.Fatalf("interleaved frame %d: readMessage = %+v, %v; want nil, nil", i, res, err)
		}
	}
	res, err := readMessage(br)
	if err != nil {
		t.Fatal(err)
	}
	if res.status != 200 || res.header["Content-Base"] != "rtsp://127.0.0.1:35433/cam/1/main/" || res.header["Content-Length"] != "253" {
		t.Errorf("DESCRIBE answer: status %d, headers %v", res.status, res.header)
	}
	if len(res.body) != 253 || !strings.HasPrefix(string(res.body), "v=0\r\n") || !strings.HasSuffix(string(res.body), "aMuMsg==\r\n") {
		t.Errorf("DESCRIBE body (%d bytes): %q", len(res.body), res.body)
	}
	if c, err := videoControl(string(res.body)); err != nil || c != "trackID=0" {
		t.Errorf("its video control: %q, %v", c, err)
	}
	if res, err := readMessage(br); res != nil || err != nil {
		t.Fatalf("empty interleaved frame: readMessage = %+v, %v; want nil, nil", res, err)
	}
	if res, err = readMessage(br); err != nil || res.status != 401 || res.body != nil {
		t.Fatalf("401: %+v, %v", res, err)
	}
	if res, err = readMessage(br); err != nil {
		t.Fatal(err)
	}
	if res.status != 200 || res.header["Session"] != "1538b92e286c4eca8b073d0201d9e148" ||
		res.header["Transport"] != "RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=B32D12C2" || len(res.body) != 0 {
		t.Errorf("SETUP answer: %+v", res)
	}
	if res, err := readMessage(br); res != nil || err != io.EOF {
		t.Errorf("at the end: %+v, %v; want io.EOF", res, err)
	}

	for _, bad := range []string{
		"garbage\r\n",
		"HTTP/1.1 200 OK\r\n\r\n",
		"RTSP/1.0\r\n\r\n",
		"RTSP/1.0 OK 200\r\n\r\n",
		"RTSP/1.0 20 OK\r\n\r\n",
		"RTSP/1.0 -200 OK\r\n\r\n",
		"RTSP/1.0 2000 OK\r\n\r\n",
		"RTSP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n",
		"RTSP/1.0 200 OK\r\nContent-Length: ten\r\n\r\n",
		"RTSP/1.0 200 OK\r\nContent-Length: 99999999\r\n\r\n",
	} {
		if res, err := readMessage(bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Errorf("readMessage(%q) = %+v, nil; want an error", bad, res)
		}
	}
	// Cut short anywhere: an error, never a response.
	whole := describeOK
	for n := 1; n < len(whole); n++ {
		if res, err := readMessage(bufio.NewReader(strings.NewReader(whole[:n]))); err == nil {
			t.Fatalf("readMessage of the first %d bytes = %+v, nil; want an error", n, res)
		}
	}
	for n := 1; n < 8; n++ {
		if _, err := readMessage(bufio.NewReader(bytes.NewReader(frame(0, []byte("abcd"))[:n]))); err == nil {
			t.Errorf("readMessage of a frame's first %d bytes: no error", n)
		}
	}
}

func FuzzReadMessage(f *testing.F) {
	f.Add([]byte(describeOK))
	f.Add([]byte(setupOK))
	f.Add(append(frame(0, []byte("abcd")), describeOK...))
	f.Add(frame(1, bytes.Repeat([]byte{0x80}, 300)))
	f.Add([]byte(describeOK[:60]))
	f.Add([]byte(describeOK[:len(describeOK)-10]))
	f.Add([]byte("$\x00\x01"))
	f.Add([]byte("RTSP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nab"))
	f.Add([]byte("RTSP/1.0 454 Session Not Found\r\nSession\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(bytes.NewReader(data))
		// Each call consumes at least a byte or fails, so this ends.
		for range len(data) + 1 {
			res, err := readMessage(br)
			if err != nil {
				return
			}
			if res == nil {
				continue
			}
			if res.status < 100 || res.status > 999 {
				t.Fatalf("status %d", res.status)
			}
			if len(res.body) > 1<<20 {
				t.Fatalf("a body of %d bytes", len(res.body))
			}
		}
	})
}

func TestField(t *testing.T) {
	status := "Name:\tgridwatch\nVmPeak:\t  20000 kB\nVmRSS:\t   12345 kB\n" +
		"nonvoluntary_ctxt_switches:\t7\nvoluntary_ctxt_switches:\t3\nEmpty:\nWord:\tabc\n"
	for _, c := range []struct {
		name string
		want int64
		ok   bool
	}{
		{"VmRSS:", 12345, true},
		{"VmPeak:", 20000, true},
		// At the start of a line only: not nonvoluntary_ctxt_switches.
		{"voluntary_ctxt_switches:", 3, true},
		{"nonvoluntary_ctxt_switches:", 7, true},
		{"Missing:", 0, false},
		{"Empty:", 0, false},
		{"Word:", 0, false},
	} {
		if got, ok := field(status, c.name); got != c.want || ok != c.ok {
			t.Errorf("field(%q) = %d, %v; want %d, %v", c.name, got, ok, c.want, c.ok)
		}
	}
	if got, ok := field("rchar: 1\nsyscw: 42\n", "syscw:"); got != 42 || !ok {
		t.Errorf("syscw: %d, %v", got, ok)
	}
}

func TestTake(t *testing.T) {
	s0, err := Take(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until the kernel has counted some (a tick is 10 ms).
	var s1 Sample
	sink := 0
	for deadline := time.Now().Add(10 * time.Second); ; {
		for i := range 1 << 20 {
			sink += i * i
		}
		if s1, err = Take(os.Getpid()); err != nil {
			t.Fatal(err)
		}
		if s1.CPU > s0.CPU || time.Now().After(deadline) {
			break
		}
	}
	_ = sink
	if s1.CPU <= 0 || s1.CPU <= s0.CPU {
		t.Errorf("CPU %v, then %v after a busy loop", s0.CPU, s1.CPU)
	}
	if s1.RSS <= 0 {
		t.Errorf("RSS %d", s1.RSS)
	}
	if s1.CtxSw < 0 {
		t.Errorf("context switches %d", s1.CtxSw)
	}
	if !s1.At.After(s0.At) {
		t.Errorf("At %v, then %v", s0.At, s1.At)
	}

	// Each Write to a file is one write system call.
	const writes = 50
	fh, err := os.Create(filepath.Join(t.TempDir(), "w"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	w0, err := Take(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for range writes {
		if _, err := fh.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	w1, err := Take(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if w0.Writes < 0 || w1.Writes-w0.Writes < writes {
		t.Errorf("write system calls %d, then %d after %d writes", w0.Writes, w1.Writes, writes)
	}

	if _, err := Take(-1); err == nil {
		t.Error("Take(-1): no error")
	}
}

func TestTable(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	results := []Result{
		{Server: "go2rtc", Load: Load{10, 5}, Cores: 0.5, RSS: 100 << 20, CtxSw: 1200, WritesPerPicture: 1.5, FPS: 25, Joins: ms(100, 200)},
		{Server: "gridwatch", Load: Load{10, 5}, Cores: 0.25, RSS: 150 << 20, CtxSw: 600.4, WritesPerPicture: 0.25, FPS: 24.96, Joins: ms(50, 60)},
		// The best peer per column: MediaMTX for CPU, go2rtc for memory.
		{Server: "go2rtc", Load: Load{100, 5}, Cores: 2, RSS: 200 << 20, FPS: 25},
		{Server: "mediamtx", Load: Load{100, 5}, Cores: 1, RSS: 400 << 20, FPS: 25},
		{Server: "gridwatch", Load: Load{100, 5}, Cores: 1.5, RSS: 100 << 20, FPS: 25},
		// Gridwatch alone: nothing to compare with.
		{Server: "gridwatch", Load: Load{1, 1}, Cores: 0.01, RSS: 50 << 20, FPS: 25},
	}
	got := Table(results, map[string]string{"go2rtc": "dc1685e9", "mediamtx": "", "gridwatch": "23bde11-dirty"})
	want := []string{
		"| load | server | cores (lowest–highest) | RSS (lowest–highest) | ctx switches/s | writes per picture per viewer | pictures/s per viewer | late joiner's first keyframe p50 / p95 | cores vs best peer | RSS vs best peer |",
		"|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
		"| 10 × 5 | go2rtc | 0.500 | 100 MiB | 1200 | 1.50 | 25.0 | 100 / 200 ms | 1.00× | 1.00× |",
		"| 10 × 5 | gridwatch | 0.250 | 150 MiB | 600 | 0.25 | 25.0 | 50 / 60 ms | 0.50× | 1.50× |",
		"| 100 × 5 | go2rtc | 2.000 | 200 MiB | 0 | 0.00 | 25.0 | 0 / 0 ms | 2.00× | 1.00× |",
		"| 100 × 5 | mediamtx | 1.000 | 400 MiB | 0 | 0.00 | 25.0 | 0 / 0 ms | 1.00× | 2.00× |",
		"| 100 × 5 | gridwatch | 1.500 | 100 MiB | 0 | 0.00 | 25.0 | 0 / 0 ms | 1.50× | 0.50× |",
		"| 1 × 1 | gridwatch | 0.010 | 50 MiB | 0 | 0.00 | 25.0 | 0 / 0 ms | — | — |",
		"",
		"Built from: go2rtc dc1685e9; mediamtx unknown; gridwatch 23bde11-dirty;",
		"",
	}
	if got != strings.Join(want, "\n") {
		t.Errorf("Table:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if v := Table(nil, map[string]string{"gridwatch": "x"}); !strings.HasSuffix(v, "Built from: gridwatch x;\n") {
		t.Errorf("no results:\n%s", v)
	}
}

func TestJoinP(t *testing.T) {
	var r Result
	if r.JoinP(0.5) != 0 {
		t.Errorf("no joins: %v", r.JoinP(0.5))
	}
	for i := 1; i <= 20; i++ {
		r.Joins = append(r.Joins, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0, time.Millisecond}, {0.5, 10 * time.Millisecond}, {0.95, 19 * time.Millisecond}, {1, 20 * time.Millisecond}} {
		if got := r.JoinP(c.q); got != c.want {
			t.Errorf("JoinP(%v) = %v, want %v", c.q, got, c.want)
		}
	}
}

// TestPlayerCamsim plays real RTSP over loopback from the camera simulator:
// what every viewer of the benchmark does, against a server known to be
// right.
func TestPlayerCamsim(t *testing.T) {
	sim, err := camsim.New(camsim.Config{N: 2, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	simDone := make(chan error, 1)
	go func() { simDone <- sim.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-simDone; err != nil {
			t.Errorf("camsim: %v", err)
		}
	})

	hctx, hcancel := context.WithTimeout(ctx, 15*time.Second)
	defer hcancel()
	p, err := Dial(hctx, sim.URL(1, camsim.StreamMain), "", "")
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() { ended <- p.Run() }()
	defer func() {
		p.Close()
		select {
		case <-ended: // Run returns once the connection is closed
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after Close")
		}
	}()
	select {
	case <-p.FirstKeyframe():
	case err := <-ended:
		t.Fatalf("the stream ended before its first keyframe: %v", err)
	case <-hctx.Done():
		t.Fatal("no keyframe in 15 s (the GOP is 1 s)")
	}
	if p.Keyframes.Load() < 1 || p.Pictures.Load() < 1 || p.Bytes.Load() <= 0 {
		t.Fatalf("at the first keyframe: %d pictures, %d keyframes, %d bytes", p.Pictures.Load(), p.Keyframes.Load(), p.Bytes.Load())
	}

	// Two more GOPs: 25 pictures each, a keyframe first.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for p.Keyframes.Load() < 3 {
		select {
		case <-tick.C:
		case err := <-ended:
			t.Fatalf("the stream ended: %v", err)
		case <-hctx.Done():
			t.Fatalf("%d keyframes after 15 s", p.Keyframes.Load())
		}
	}
	k, pics, n := p.Keyframes.Load(), p.Pictures.Load(), p.Bytes.Load()
	if pics < 25*(k-1)+1 {
		t.Errorf("%d pictures by keyframe %d: want at least %d (a GOP of 25)", pics, k, 25*(k-1)+1)
	}
	// About 0.5 Mbit/s: two seconds of it are well over 20 kB.
	if n < 20_000 {
		t.Errorf("%d bytes in %d pictures", n, pics)
	}
	t.Logf("%d pictures, %d keyframes, %d bytes", pics, k, n)

	// A late joiner, timed as Measure times them, on the other camera.
	s := &Server{Name: "camsim", URL: func(n int) string { return sim.URL(n, camsim.StreamMain) }}
	jctx, jcancel := context.WithTimeout(ctx, 15*time.Second)
	defer jcancel()
	d, err := Join(jctx, s, 2)
	if err != nil {
		t.Fatal(err)
	}
	// At worst a GOP and a picture, plus the handshake.
	if d <= 0 || d > 5*time.Second {
		t.Errorf("Join took %v", d)
	}
	t.Logf("joined in %v", d)

	// A camera the server does not have: DESCRIBE fails.
	if _, err := Join(jctx, s, 3); err == nil || !strings.Contains(err.Error(), "status 404") {
		t.Errorf("Join on a missing camera: %v; want status 404", err)
	}
	if _, err := Join(jctx, &Server{Name: "none", URL: func(int) string { return "rtsp://127.0.0.1:1/x" }}, 1); err == nil || errors.Is(err, errNoKeyframe) {
		t.Errorf("Join on a closed port: %v; want a dial error", err)
	}
}

// Merge takes each figure's median over the runs, keeps the ranges of cores
// and RSS and every late joiner, and the table shows the ranges.
func TestMerge(t *testing.T) {
	runs := []Result{
		{Server: "gridwatch", Load: Load{10, 50}, Cores: 0.30, RSS: 60 << 20, FPS: 25, Joins: []time.Duration{3}},
		{Server: "gridwatch", Load: Load{10, 50}, Cores: 0.10, RSS: 50 << 20, FPS: 24, Joins: []time.Duration{1}},
		{Server: "gridwatch", Load: Load{10, 50}, Cores: 0.20, RSS: 70 << 20, FPS: 25, Joins: []time.Duration{2}},
	}
	m := Merge(runs)
	if m.Cores != 0.20 || m.RSS != 60<<20 || m.FPS != 25 || m.Runs != 3 {
		t.Errorf("medians: cores %v RSS %d FPS %v runs %d, want 0.2, 60 MiB, 25, 3", m.Cores, m.RSS, m.FPS, m.Runs)
	}
	if m.CoresRange != [2]float64{0.10, 0.30} || m.RSSRange != [2]int64{50 << 20, 70 << 20} {
		t.Errorf("ranges %v %v", m.CoresRange, m.RSSRange)
	}
	if !slices.Equal(m.Joins, []time.Duration{1, 2, 3}) {
		t.Errorf("joins %v, want all three, sorted", m.Joins)
	}
	if even := Merge(runs[:2]); even.Cores != 0.20 {
		t.Errorf("median of two runs: %v, want their mean 0.2", even.Cores)
	}
	table := Table([]Result{m}, nil)
	for _, want := range []string{"0.200 (0.100–0.300)", "60 MiB (50–70)", "Medians of 3 runs"} {
		if !strings.Contains(table, want) {
			t.Errorf("the table lacks %q:\n%s", want, table)
		}
	}
}

// box is an MP4 box of type typ whose body is that many zero bytes.
func box(typ string, body int) []byte {
	b := make([]byte, 8+body)
	binary.BigEndian.PutUint32(b, uint32(8+body))
	copy(b[4:], typ)
	return b
}

// CountBoxes counts an fMP4 fragment's top-level boxes of a type, and
// refuses a message whose boxes do not add up.
func TestCountBoxes(t *testing.T) {
	two := slices.Concat(box("moof", 20), box("mdat", 100), box("moof", 4), box("mdat", 0))
	if n, err := CountBoxes(two, "moof"); n != 2 || err != nil {
		t.Errorf("two fragments: %d, %v", n, err)
	}
	if n, err := CountBoxes(slices.Concat(box("ftyp", 12), box("moov", 50)), "moof"); n != 0 || err != nil {
		t.Errorf("an init segment: %d, %v", n, err)
	}
	large := make([]byte, 16+5)
	binary.BigEndian.PutUint32(large, 1)
	copy(large[4:], "moof")
	binary.BigEndian.PutUint64(large[8:], 21)
	if n, err := CountBoxes(large, "moof"); n != 1 || err != nil {
		t.Errorf("a 64-bit size: %d, %v", n, err)
	}
	for name, b := range map[string][]byte{"truncated header": two[:5], "past the end": two[:30], "size under header": {0, 0, 0, 4, 'm', 'o', 'o', 'f'}} {
		if _, err := CountBoxes(b, "moof"); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// An MSE viewer says hello, skips the init segment and counts fragments
// however the server packs them into messages.
func TestMSEViewer(t *testing.T) {
	frag := func() []byte { return slices.Concat(box("moof", 16), box("mdat", 40<<10)) }
	hello := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		_, msg, err := c.Read(r.Context())
		if err != nil {
			return
		}
		hello <- string(msg)
		_ = c.Write(r.Context(), websocket.MessageText, []byte(`{"type":"mse"}`))
		_ = c.Write(r.Context(), websocket.MessageBinary, slices.Concat(box("ftyp", 16), box("moov", 100)))
		_ = c.Write(r.Context(), websocket.MessageBinary, frag())
		_ = c.Write(r.Context(), websocket.MessageBinary, slices.Concat(frag(), frag()))
		_ = c.Close(websocket.StatusNormalClosure, "done")
	}))
	defer srv.Close()
	m := &MSE{
		URL:    func(n int) string { return "ws" + strings.TrimPrefix(srv.URL, "http") + "/cam" + strconv.Itoa(n) },
		Header: http.Header{"Authorization": {"Bearer tok"}},
		Hello:  []byte(`{"type":"mse","value":"avc1.640029"}`),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := DialMSE(ctx, m, 1)
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() { ended <- v.Run() }()
	select {
	case err := <-ended: // the server closes once it has sent everything
		if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
			t.Errorf("Run: %v, want the server's normal closure", err)
		}
	case <-ctx.Done():
		t.Fatal("the viewer did not see the server close")
	}
	select {
	case <-v.FirstKeyframe():
	default:
		t.Error("FirstKeyframe not closed")
	}
	if got := <-hello; got != string(m.Hello) {
		t.Errorf("hello %q", got)
	}
	if v.Count() != 3 {
		t.Errorf("%d fragments, want 3 (one message held two)", v.Count())
	}
	v.Close()
	if _, err := DialMSE(ctx, &MSE{URL: m.URL}, 1); err == nil {
		t.Error("dialled without the token")
	}
}
