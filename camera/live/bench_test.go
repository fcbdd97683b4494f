package live

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"gridwatch/camera/camsim"
	"gridwatch/camera/pull"
	"gridwatch/camera/rtspserve"
	"gridwatch/camera/stream"
	"gridwatch/internal/testtool"
)

// benchRig is camsim, a manager and an HTTP server answering
// /live/{camera} with ServeMSE over a WebSocket, as the API does.
type benchRig struct {
	*rig
	srv *httptest.Server
}

func startBenchRig(b *testing.B, cameras int) *benchRig {
	b.Helper()
	r := newRig(b, camsim.Config{N: cameras, Addr: "127.0.0.1:0"}, Config{Idle: time.Minute})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		id, _ := strconv.ParseInt(strings.TrimPrefix(req.URL.Path, "/live/"), 10, 64)
		hub, release, err := r.m.Acquire(req.Context(), id, Main)
		if err != nil {
			http.Error(w, err.Error(), 404)
			return
		}
		defer release()
		c, err := websocket.Accept(w, req, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := c.CloseRead(req.Context())
		_ = ServeMSE(ctx, hub, wsBench{c}, func() (pull.State, bool) { return r.m.State(id, Main) }, MSEOptions{})
	}))
	b.Cleanup(func() {
		// Before the rig's cleanup: the viewers' handlers end first.
		srv.CloseClientConnections()
		srv.Close()
	})
	return &benchRig{rig: r, srv: srv}
}

type wsBench struct{ c *websocket.Conn }

func (w wsBench) WriteText(ctx context.Context, b []byte) error {
	return w.c.Write(ctx, websocket.MessageText, b)
}
func (w wsBench) WriteBinary(ctx context.Context, b []byte) error {
	return w.c.Write(ctx, websocket.MessageBinary, b)
}

// firstFrame dials /live/{cam} and returns the time to the first fragment.
func (br *benchRig) firstFrame(b *testing.B, cam int) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(br.srv.URL, "http")+"/live/"+strconv.Itoa(cam), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(16 << 20)
	binary := 0
	for {
		typ, _, err := c.Read(ctx)
		if err != nil {
			b.Fatal(err)
		}
		// The first binary message is the init segment, the second the
		// first pictures.
		if typ == websocket.MessageBinary {
			if binary++; binary == 2 {
				return time.Since(start)
			}
		}
	}
}

func reportPercentiles(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	p := func(q float64) float64 { return float64(d[int(q*float64(len(d)-1))].Microseconds()) / 1000 }
	b.ReportMetric(p(0.5), "p50-ms")
	b.ReportMetric(p(0.95), "p95-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkTimeToFirstFrame measures, over a real WebSocket, how long a
// viewer waits for its first picture: joining a camera already pulled
// (warm: the cached GOP answers at once) and a camera nobody watched
// (cold: RTSP connect, then the camera's next keyframe).
func BenchmarkTimeToFirstFrame(b *testing.B) {
	b.Run("warm", func(b *testing.B) {
		br := startBenchRig(b, 1)
		_, release, err := br.m.Acquire(context.Background(), 1, Main)
		if err != nil {
			b.Fatal(err)
		}
		defer release()
		br.firstFrame(b, 1) // the camera is running from here on
		var d []time.Duration
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			d = append(d, br.firstFrame(b, 1))
		}
		reportPercentiles(b, d)
	})
	b.Run("cold", func(b *testing.B) {
		const cams = 40
		br := startBenchRig(b, cams)
		br.m.cfg.Idle = time.Millisecond
		// Watch every camera once first: camsim starts a camera's clip at
		// an IDR for its very first viewer, which no real camera does.
		// From then on its clock runs, so a cold join lands anywhere in
		// the GOP and waits for the next keyframe, as with a real camera.
		for cam := 1; cam <= cams; cam++ {
			br.firstFrame(b, cam)
		}
		var d []time.Duration
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			cam := i%cams + 1
			// Wait for the stream to have stopped since its last use.
			for {
				if _, running := br.m.State(int64(cam), Main); !running {
					break
				}
				waitBriefly()
			}
			// Join at a different place in the camera's GOP each time
			// (spread evenly over its 25 pictures); joining in lockstep
			// would always land at the same distance from a keyframe.
			b.StopTimer()
			<-time.After(time.Duration(i*37%25) * 40 * time.Millisecond)
			b.StartTimer()
			d = append(d, br.firstFrame(b, cam))
		}
		reportPercentiles(b, d)
	})
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func rssMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkFanOut streams 20 cameras (camsim, ~0.5 Mbit/s each, pulled
// over RTSP on loopback) to 10 viewers each, for one second per
// iteration, and reports the CPU cores the whole process used (camsim and
// the readers included), its RSS and the heap per camera.
//
//   - mse: viewers are WebSocket clients reading fMP4, through ServeMSE;
//   - rtsp: viewers are RTSP clients (TCP) of the re-serve;
//   - raw-relay: the baseline, the same pictures written as raw bytes to
//     plain TCP sockets (no muxing, no framing), one write per picture.
func BenchmarkFanOut(b *testing.B) {
	const cameras, viewers = 20, 10
	b.Run("mse-20x10", func(b *testing.B) {
		br := startBenchRig(b, cameras)
		var wg sync.WaitGroup
		ctx, cancel := context.WithCancel(context.Background())
		defer func() { cancel(); wg.Wait() }()
		var received sync.Map
		for cam := 1; cam <= cameras; cam++ {
			for v := 0; v < viewers; v++ {
				c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(br.srv.URL, "http")+"/live/"+strconv.Itoa(cam), nil)
				if err != nil {
					b.Fatal(err)
				}
				c.SetReadLimit(16 << 20)
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer c.CloseNow()
					var n int64
					for {
						_, r, err := c.Reader(ctx)
						if err != nil {
							received.Store(c, n)
							return
						}
						m, _ := io.Copy(io.Discard, r)
						n += m
					}
				}()
			}
		}
		measureFanOut(b, br.rig, cameras)
	})
	b.Run("rtsp-20x10", func(b *testing.B) { benchRTSP(b, cameras, viewers, camsim.StreamMain) })
	// The same with H.265 cameras (a similar bitrate): what the second
	// codec costs the relay.
	b.Run("rtsp-h265-20x10", func(b *testing.B) { benchRTSP(b, cameras, viewers, camsim.StreamH265) })
	// The published reference: 10 cameras × 50 RTSP viewers (go2rtc 0.14
	// cores / 62 MiB, MediaMTX 0.29 cores / 88 MiB, readers elsewhere).
	b.Run("rtsp-10x50", func(b *testing.B) { benchRTSP(b, 10, 50, camsim.StreamMain) })
	b.Run("raw-relay-20x10", func(b *testing.B) {
		br := startBenchRig(b, cameras)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		defer func() { cancel(); ln.Close(); wg.Wait() }()
		for cam := 1; cam <= cameras; cam++ {
			hub, release, err := br.m.Acquire(ctx, int64(cam), Main)
			if err != nil {
				b.Fatal(err)
			}
			defer release()
			conns := make([]net.Conn, viewers)
			for v := range conns {
				cc, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				sc, err := ln.Accept()
				if err != nil {
					b.Fatal(err)
				}
				conns[v] = sc
				wg.Add(1)
				go func() { defer wg.Done(); defer cc.Close(); _, _ = io.Copy(io.Discard, bufio.NewReader(cc)) }()
			}
			for _, sc := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer sc.Close()
					v := hub.Subscribe()
					defer v.Close()
					var batch []*stream.AccessUnit
					var buf []byte
					for {
						var err error
						if batch, err = v.Next(ctx, batch); err != nil {
							return
						}
						buf = buf[:0]
						for _, au := range batch {
							for _, n := range au.NALUs {
								buf = append(buf, n...)
							}
						}
						if _, err := sc.Write(buf); err != nil {
							return
						}
					}
				}()
			}
		}
		measureFanOut(b, br.rig, cameras)
	})
}

// measureFanOut waits for every camera to be online, then measures b.N
// seconds of streaming.
func measureFanOut(b *testing.B, r *rig, cameras int) {
	deadline := time.Now().Add(30 * time.Second)
	for cam := 1; cam <= cameras; cam++ {
		for {
			if st, ok := r.m.State(int64(cam), Main); ok && st.Status == pull.StatusOnline {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("camera %d not online", cam)
			}
			waitBriefly()
		}
	}
	<-time.After(time.Second) // let every viewer get past its GOP burst
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	frames0 := totalFrames(r)
	cpu0, wall0 := cpuTime(), time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		<-time.After(time.Second)
	}
	b.StopTimer()
	cpu, wall := cpuTime()-cpu0, time.Since(wall0)
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cores")
	b.ReportMetric(rssMiB(), "RSS-MiB")
	b.ReportMetric(float64(ms.HeapInuse)/float64(cameras)/(1<<20), "heap-MiB/camera")
	b.ReportMetric(float64(totalFrames(r)-frames0)/wall.Seconds()/float64(cameras), "fps/camera")
	b.ReportMetric(0, "ns/op")
}

// benchRTSP measures the RTSP re-serve: viewers are minimal RTSP clients
// reading over TCP.
func benchRTSP(b *testing.B, cameras, viewers int, simStream string) {
	br := startBenchRig(b, cameras)
	for cam := 1; cam <= cameras; cam++ {
		br.setMain(int64(cam), simStream)
	}
	srv, err := rtspserve.New(rtspserve.Config{Addr: "127.0.0.1:0",
		Access:  func(context.Context, string, int64) error { return nil },
		Acquire: br.m.Acquire})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()
	for cam := 1; cam <= cameras; cam++ {
		for v := 0; v < viewers; v++ {
			nc, err := net.Dial("tcp", srv.Addr())
			if err != nil {
				b.Fatal(err)
			}
			rd := bufio.NewReader(nc)
			if err := rtspPlay(nc, rd, fmt.Sprintf("rtsp://%s/cameras/%d", srv.Addr(), cam)); err != nil {
				b.Fatal(err)
			}
			wg.Add(1)
			go func() { defer wg.Done(); defer nc.Close(); _, _ = io.Copy(io.Discard, rd) }()
			context.AfterFunc(ctx, func() { nc.Close() })
		}
	}
	measureFanOut(b, br.rig, cameras)
}

// rtspPlay is a minimal RTSP client: DESCRIBE, SETUP over TCP, PLAY.
func rtspPlay(nc net.Conn, rd *bufio.Reader, url string) error {
	session := ""
	for i, step := range []struct{ method, url, extra string }{
		{"DESCRIBE", url, "Accept: application/sdp\r\n"},
		{"SETUP", url + "/trackID=0", "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"},
		{"PLAY", url, ""},
	} {
		req := fmt.Sprintf("%s %s RTSP/1.0\r\nCSeq: %d\r\n%s", step.method, step.url, i+1, step.extra)
		if session != "" {
			req += "Session: " + session + "\r\n"
		}
		if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
			return err
		}
		status, err := rd.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.Contains(status, " 200 ") {
			return fmt.Errorf("%s: %s", step.method, strings.TrimSpace(status))
		}
		length := 0
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				return err
			}
			line = strings.TrimSpace(line)
			if line == "" {
				break
			}
			k, v, _ := strings.Cut(line, ":")
			switch strings.ToLower(k) {
			case "content-length":
				length, _ = strconv.Atoi(strings.TrimSpace(v))
			case "session":
				session, _, _ = strings.Cut(strings.TrimSpace(v), ";")
			}
		}
		if _, err := io.CopyN(io.Discard, rd, int64(length)); err != nil {
			return err
		}
	}
	return nil
}

func totalFrames(r *rig) int64 {
	var n int64
	for _, s := range r.m.Stats() {
		n += s.Hub.Frames
	}
	return n
}

// BenchmarkTranscode measures what an H.265 camera costs when browsers
// without an H.265 decoder watch it: one ffmpeg (H.265 to H.264, 640x360
// at 25 fps) whether one or ten viewers watch. Reported: the ffmpeg
// process's cores, the transcodes started (1 however many viewers), and
// the gridwatch process's own cores beside it.
func BenchmarkTranscode(b *testing.B) {
	ffmpeg := testtool.Require(b, "ffmpeg")
	for _, viewers := range []int{1, 10} {
		b.Run(fmt.Sprintf("h265-to-h264-%dviewers", viewers), func(b *testing.B) {
			r := newRig(b, camsim.Config{N: 1, Addr: "127.0.0.1:0"}, Config{Idle: time.Minute, FFmpeg: ffmpeg})
			r.setMain(1, camsim.StreamH265)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			defer func() { cancel(); wg.Wait() }()
			for range viewers {
				hub, release, err := r.m.Acquire(ctx, 1, Transcoded)
				if err != nil {
					b.Fatal(err)
				}
				v := hub.Subscribe()
				wg.Go(func() {
					defer release()
					defer v.Close()
					var batch []*stream.AccessUnit
					for {
						var err error
						if batch, err = v.Next(ctx, batch); err != nil {
							return
						}
						clear(batch)
					}
				})
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				if st, ok := r.m.State(1, Transcoded); ok && st.Status == pull.StatusOnline {
					break
				}
				if time.Now().After(deadline) {
					b.Fatal("the transcode is not online after 30 s")
				}
				waitBriefly()
			}
			<-time.After(time.Second) // past ffmpeg's start
			tc0, cpu0, wall0 := r.m.transcodes.cpu(), cpuTime(), time.Now()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				<-time.After(time.Second)
			}
			b.StopTimer()
			wall := time.Since(wall0).Seconds()
			b.ReportMetric((r.m.transcodes.cpu()-tc0).Seconds()/wall, "ffmpeg-cores")
			b.ReportMetric((cpuTime()-cpu0).Seconds()/wall, "gridwatch-cores")
			b.ReportMetric(float64(r.m.transcodes.started.Load()), "transcodes")
			b.ReportMetric(0, "ns/op")
		})
	}
}
