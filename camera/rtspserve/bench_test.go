package rtspserve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"

	"gridwatch/camera/stream"
	"gridwatch/internal/testtool"
)

// benchClip is a realistic camera stream: 640x360, 25 fps, 1 s GOP,
// 0.5 Mbit/s.
var benchClip = clipSpec{size: "640x360", bitrate: "500k"}

// readerEnv names the environment variable that turns the test binary into
// the benchmark's readers: "rtsp|raw,ADDR,N". The readers run in their own
// process so that the benchmark's CPU figure is the server's alone, as
// go2rtc's and MediaMTX's published figures are.
const readerEnv = "GRIDWATCH_RTSPSERVE_BENCH_READERS"

// BenchmarkFanOut sends one hub's 0.5 Mbit/s stream to N readers over
// loopback, paced in real time (25 pictures a second), through the RTSP
// server and, as a baseline, through a raw relay: the same hub and a
// goroutine per reader writing the same interleaved RTP bytes, built once,
// to a plain TCP socket in one write per batch. The difference is what
// RTSP costs (per-session packetisation, gortsplib's connection and
// session goroutines, sender reports).
//
// Metrics: cores = the server process's user+system CPU time per second of
// wall time (the readers run in a child process); B/s = bytes written to
// readers; writes/pic = write calls per picture per reader; heapB/reader and
// stackB/reader = live heap and goroutine stacks per reader.
//
// rtsp+g711 is rtsp with the camera's G.711 sound (20 ms packets, as cameras
// send it: 50 a second beside 25 pictures) set up and played by every
// reader: what sound costs a relay.
func BenchmarkFanOut(b *testing.B) {
	c := testClip(b, benchClip)
	for _, mode := range []string{"rtsp", "rtsp+g711", "raw-relay"} {
		for _, n := range []int{10, 50} {
			b.Run(fmt.Sprintf("%s/N=%d", mode, n), func(b *testing.B) { benchFanOut(b, c, mode, n) })
		}
	}
}

func benchFanOut(b *testing.B, c *clip, mode string, n int) {
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)

	hub := stream.NewHub(stream.HubOptions{})
	var audio *stream.Audio
	if mode == "rtsp+g711" {
		audio, _ = stream.NewAudio(stream.PCMA, 8000, 1, nil)
		hub.SetAudio(audio)
	}
	src := newSource(hub, c)
	src.publish(1)

	var addr, readerMode string
	var written func() (bytes, writes int64)
	var stop func()
	switch mode {
	case "rtsp", "rtsp+g711":
		f := newFakes()
		f.hubs[key{camMain, StreamMain}] = hub
		srv, err := New(Config{Addr: "127.0.0.1:0", Access: f.access, Acquire: f.acquire})
		if err != nil {
			b.Fatal(err)
		}
		stop = testtool.Run(b, waitLong, srv.Run)
		addr, readerMode = srv.Addr(), mode
		written = func() (int64, int64) { st := srv.Stats(); return st.Bytes, st.Writes }
	default:
		r := startRelay(b, hub, c)
		addr, readerMode = r.ln.Addr().String(), "raw"
		written = func() (int64, int64) { return r.bytes.Load(), r.writes.Load() }
		stop = r.stop
	}
	readers := startReaders(b, readerMode, addr, n)

	// A tick every 20 ms: a picture every other one, a G.711 packet on
	// each when there is sound.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	g711 := make([]byte, 160)
	bytes0, writes0 := written()
	cpu0 := cpuTime()
	b.ResetTimer()
	start := time.Now()
	for i := range 2 * b.N {
		<-tick.C
		if i%2 == 0 {
			src.publish(1)
		}
		if audio != nil {
			hub.Publish(&stream.AccessUnit{Audio: audio, Payload: g711, DTS: int64(i) * 160, PTS: int64(i) * 160, Duration: 160, Received: time.Now()})
		}
	}
	wall := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	bytes1, writes1 := written()

	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)

	readers.stop(b)
	stop()
	hub.Close()

	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cores")
	b.ReportMetric(float64(bytes1-bytes0)/wall.Seconds(), "B/s")
	b.ReportMetric(float64(writes1-writes0)/float64(b.N*n), "writes/pic")
	b.ReportMetric(float64(int64(m1.HeapInuse)-int64(m0.HeapInuse))/float64(n), "heapB/reader")
	b.ReportMetric(float64(int64(m1.StackInuse)-int64(m0.StackInuse))/float64(n), "stackB/reader")
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// relay is the baseline: hub viewers written to plain TCP sockets.
type relay struct {
	ln            net.Listener
	wire          sync.Map // *stream.AccessUnit → []byte, its interleaved RTP
	enc           *rtph264.Encoder
	bytes, writes atomic.Int64
	wg            sync.WaitGroup
	mu            sync.Mutex
	conns         []net.Conn
	views         []*stream.Viewer
}

func startRelay(b *testing.B, hub *stream.Hub, c *clip) *relay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	r := &relay{ln: ln, enc: &rtph264.Encoder{PayloadType: payloadType, PacketizationMode: 1}}
	if err := r.enc.Init(); err != nil {
		b.Fatal(err)
	}
	r.wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			v := hub.Subscribe()
			r.mu.Lock()
			r.conns = append(r.conns, nc)
			r.views = append(r.views, v)
			r.mu.Unlock()
			r.wg.Go(func() { r.serve(nc, v) })
		}
	})
	return r
}

// bytesOf returns the interleaved RTP of a picture, built once for all
// readers (what a relay without per-session state would send).
func (r *relay) bytesOf(au *stream.AccessUnit) []byte {
	if b, ok := r.wire.Load(au); ok {
		return b.([]byte)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.wire.Load(au); ok {
		return b.([]byte)
	}
	pkts, _ := r.enc.Encode(au.NALUs)
	var buf []byte
	for _, p := range pkts {
		p.Timestamp = uint32(au.PTS)
		buf = appendPacket(buf, 0, &p.Header, p.Payload)
	}
	r.wire.Store(au, buf)
	return buf
}

func (r *relay) serve(nc net.Conn, v *stream.Viewer) {
	defer v.Close()
	var batch []*stream.AccessUnit
	var buf []byte
	for {
		var err error
		batch, err = v.Next(context.Background(), batch)
		if err != nil {
			return
		}
		buf = buf[:0]
		for _, au := range batch {
			buf = append(buf, r.bytesOf(au)...)
		}
		clear(batch)
		_ = nc.SetWriteDeadline(time.Now().Add(defaultWriteTimeout))
		n, err := nc.Write(buf)
		r.writes.Add(1)
		r.bytes.Add(int64(n))
		if err != nil {
			return
		}
	}
}

func (r *relay) stop() {
	_ = r.ln.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		_ = c.Close()
	}
	for _, v := range r.views {
		v.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// readers is the child process that reads the stream N times.
type readers struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startReaders starts the readers' process and waits until all N play.
func startReaders(b *testing.B, mode, addr string, n int) *readers {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%s,%d", readerEnv, mode, addr, n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		b.Fatalf("readers: %q, %v", line, err)
	}
	return &readers{cmd: cmd, stdin: stdin}
}

// stop ends the readers' process (closing its stdin tells it to go).
func (r *readers) stop(b *testing.B) {
	_ = r.stdin.Close()
	if err := r.cmd.Wait(); err != nil {
		b.Errorf("readers: %v", err)
	}
}

// readersMain is the child process: it plays the stream N times, says
// "ready", reads and discards until its stdin closes, and checks that every
// reader got data.
func readersMain(spec string) int {
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		fmt.Fprintln(os.Stderr, "bad", readerEnv, spec)
		return 2
	}
	mode, addr := parts[0], parts[1]
	n, err := strconv.Atoi(parts[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	got := make([]atomic.Int64, n)
	var conns []net.Conn
	var wg sync.WaitGroup
	for i := range n {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		conns = append(conns, nc)
		br := bufio.NewReaderSize(nc, 64<<10)
		if mode == "rtsp" || mode == "rtsp+g711" {
			if err := rtspPlay(nc, br, "rtsp://"+addr+"/cameras/1?token="+goodToken, mode == "rtsp+g711"); err != nil {
				fmt.Fprintln(os.Stderr, "reader", i, err)
				return 1
			}
		}
		wg.Go(func() {
			buf := make([]byte, 64<<10)
			for {
				k, err := br.Read(buf)
				got[i].Add(int64(k))
				if err != nil {
					return
				}
			}
		})
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		_ = c.Close()
	}
	wg.Wait()
	for i := range got {
		if got[i].Load() == 0 {
			fmt.Fprintln(os.Stderr, "reader", i, "got nothing")
			return 1
		}
	}
	return 0
}

// rtspPlay DESCRIBEs, SETUPs (the video, and the sound with audio) and
// PLAYs rawURL over nc.
func rtspPlay(nc net.Conn, br *bufio.Reader, rawURL string, audio bool) error {
	session := ""
	type step struct {
		method base.Method
		url    string
		hdr    base.Header
	}
	steps := []step{
		{base.Describe, rawURL, nil},
		{base.Setup, strings.Replace(rawURL, "?", "/trackID=0?", 1),
			base.Header{"Transport": base.HeaderValue{"RTP/AVP/TCP;unicast;interleaved=0-1"}}},
	}
	if audio {
		steps = append(steps, step{base.Setup, strings.Replace(rawURL, "?", "/trackID=1?", 1),
			base.Header{"Transport": base.HeaderValue{"RTP/AVP/TCP;unicast;interleaved=2-3"}}})
	}
	steps = append(steps, step{base.Play, rawURL, nil})
	for i, step := range steps {
		u, err := base.ParseURL(step.url)
		if err != nil {
			return err
		}
		req := base.Request{Method: step.method, URL: u, Header: base.Header{"CSeq": base.HeaderValue{strconv.Itoa(i + 1)}}}
		for k, v := range step.hdr {
			req.Header[k] = v
		}
		if session != "" {
			req.Header["Session"] = base.HeaderValue{session}
		}
		b, err := req.Marshal()
		if err != nil {
			return err
		}
		if _, err := nc.Write(b); err != nil {
			return err
		}
		var res base.Response
		if err := res.Unmarshal(br); err != nil {
			return err
		}
		if res.StatusCode != base.StatusOK {
			return fmt.Errorf("%s: %d", step.method, res.StatusCode)
		}
		if s, ok := res.Header["Session"]; ok && len(s) == 1 {
			session, _, _ = strings.Cut(s[0], ";")
		}
	}
	if session == "" {
		return errors.New("no session")
	}
	return nil
}
