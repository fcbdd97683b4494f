package camsim

import (
	"bytes"
	"context"
	"encoding/base64"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/deepch/vdk/codec/h264parser"
	"github.com/deepch/vdk/format/rtspv2"
	"go.uber.org/goleak"

	"gridwatch/camera/internal/rtsptest"
	"gridwatch/camera/stream"
	"gridwatch/internal/testtool"
)

// TestRunEndsEverything runs first and serially: after Run returns, with a
// client still playing when ctx ended, no goroutine of the Sim or of
// gortsplib is left.
func TestRunEndsEverything(t *testing.T) {
	s, err := New(Config{N: 2, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	stop := testtool.Run(t, waitLong, s.Run)
	p, err := rtsptest.TryPlay(s.URL(1, StreamMain))
	if err != nil {
		t.Fatal(err)
	}
	p.NextPacket(t)
	stop()
	select {
	case <-p.Done(): // the server closed the session
	case <-time.After(waitLong):
		t.Error("client session still open after Run returned")
	}
	p.Close()
	if err := s.Run(context.Background()); err == nil {
		t.Error("second Run = nil, want error")
	}
	goleak.VerifyNone(t)
}

func TestConfigValidate(t *testing.T) {
	ok := Config{N: 2, Addr: "127.0.0.1:0"}
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr bool
	}{
		{"ok", func(*Config) {}, false},
		{"credentials", func(c *Config) { c.Username, c.Password = "u", "p" }, false},
		{"each fault", func(c *Config) { c.Fault = FaultSlices }, false},
		{"no cameras", func(c *Config) { c.N = 0 }, true},
		{"no addr", func(c *Config) { c.Addr = "" }, true},
		{"unknown fault", func(c *Config) { c.Fault = "melt" }, true},
		{"password without user", func(c *Config) { c.Password = "p" }, true},
		{"colon in user", func(c *Config) { c.Username, c.Password = "a:b", "p" }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			err := c.Validate()
			if (err != nil) != tt.wantErr {
				t.Errorf("Validate() = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestFeedByPath(t *testing.T) {
	s, err := New(Config{N: 3, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.ln.Close() // never Run
	tests := []struct {
		path       string
		wantCam    int
		wantStream string
	}{
		{"/cam/1/main", 1, "main"},
		{"/cam/3/sub", 3, "sub"},
		{"/cam/4/main", 0, ""},
		{"/cam/0/main", 0, ""},
		{"/cam/01/main", 0, ""},
		{"/cam/+1/main", 0, ""},
		{"/cam/-1/main", 0, ""},
		{"/cam/1/third", 0, ""},
		{"/cam/1/main/x", 0, ""},
		{"/cam/1", 0, ""},
		{"/cam//main", 0, ""},
		{"/", 0, ""},
		{"", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			f := s.feedByPath(tt.path)
			gotCam, gotStream := 0, ""
			if f != nil {
				gotCam, gotStream = f.cam.n, f.name
			}
			if gotCam != tt.wantCam || gotStream != tt.wantStream {
				t.Errorf("feedByPath(%q) = cam %d %q, want cam %d %q", tt.path, gotCam, gotStream, tt.wantCam, tt.wantStream)
			}
		})
	}
}

func TestURL(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		cam  int
		str  string
		want string // with PORT for the bound port
	}{
		{"plain", Config{N: 2, Addr: "127.0.0.1:0"}, 2, "sub", "rtsp://127.0.0.1:PORT/cam/2/sub"},
		{"credentials", Config{N: 1, Addr: "127.0.0.1:0", Username: "ad min", Password: "p@ss/w:rd"}, 1, "main",
			"rtsp://ad%20min:p%40ss%2Fw%3Ard@127.0.0.1:PORT/cam/1/main"},
		{"unspecified host", Config{N: 1, Addr: ":0"}, 1, "main", "rtsp://127.0.0.1:PORT/cam/1/main"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.ln.Close() // never Run
			_, port, err := net.SplitHostPort(s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			want := strings.Replace(tt.want, "PORT", port, 1)
			if got := s.URL(tt.cam, tt.str); got != want {
				t.Errorf("URL = %q, want %q", got, want)
			}
		})
	}
}

// TestTimestamps plays each stream from its first frame with StartTimestamp
// 50 frames before the 32-bit wrap, through the wrap and the clip's loop
// (frame 100): every access unit is the clip's, bit for bit, and RTP time
// advances by exactly 3600 per frame.
func TestTimestamps(t *testing.T) {
	t.Parallel()
	const start = uint32(1<<32 - 50*ticksPerFrame)
	clips, err := loadClips()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		stream string
		clip   *clip
	}{
		{StreamMain, clips.main},
		{StreamSub, clips.sub},
	}
	for _, tt := range tests {
		t.Run(tt.stream, func(t *testing.T) {
			t.Parallel()
			s := startSim(t, Config{StartTimestamp: start})
			p := rtsptest.Play(t, s.URL(1, tt.stream))
			if got := p.Forma.SPS; !bytes.Equal(got, tt.clip.sps) {
				t.Errorf("SDP SPS = %x, want %x", got, tt.clip.sps)
			}
			aus := p.AccessUnits(t, 105)
			if aus[0].TS != start {
				t.Errorf("first timestamp = %d, want StartTimestamp %d", aus[0].TS, start)
			}
			wrapped := false
			for i, a := range aus {
				frame := (a.TS - start) / ticksPerFrame
				want := tt.clip.aus[frame%clipFrames]
				if !slices.EqualFunc(a.NALUs, want, bytes.Equal) {
					t.Errorf("access unit %d (frame %d) differs from the clip", i, frame)
				}
				if i == 0 {
					continue
				}
				if d := a.TS - aus[i-1].TS; d != ticksPerFrame {
					t.Errorf("access unit %d: timestamp step %d, want %d", i, d, ticksPerFrame)
				}
				if a.TS < aus[i-1].TS {
					wrapped = true
				}
			}
			if !wrapped {
				t.Error("timestamps never wrapped")
			}
			if !stream.H264.IsKey(aus[100].NALUs) {
				t.Error("frame 100 (clip loop) is not an IDR")
			}
			if n := s.Frames(1, tt.stream); n < 105 {
				t.Errorf("Frames = %d, want >= 105", n)
			}
		})
	}
}

func TestVDKClient(t *testing.T) {
	t.Parallel()
	eachStream(t, "vdk", nil, func(t *testing.T, s *Sim, tt streamCase) {
		c, err := rtspv2.Dial(rtspv2.RTSPClientOptions{
			URL: s.URL(1, tt.stream), DialTimeout: waitLong, ReadWriteTimeout: waitLong, DisableAudio: true,
		})
		if err != nil {
			t.Fatalf("rtspv2.Dial: %v", err)
		}
		defer c.Close()
		if len(c.CodecData) != 1 {
			t.Fatalf("codec data = %d entries, want 1", len(c.CodecData))
		}
		cd, ok := c.CodecData[0].(h264parser.CodecData)
		if !ok || cd.Width() != tt.w || cd.Height() != tt.h {
			t.Fatalf("codec data = %T %v, want H.264 %dx%d (from sprop-parameter-sets)", c.CodecData[0], c.CodecData[0], tt.w, tt.h)
		}
		keyframes, packets := 0, 0
		deadline := time.After(waitLong)
		for keyframes < 1 || packets < 30 {
			select {
			case pkt := <-c.OutgoingPacketQueue:
				packets++
				if pkt.IsKeyFrame {
					keyframes++
				}
			case sig := <-c.Signals:
				if sig == rtspv2.SignalStreamRTPStop {
					t.Fatal("vdk client stopped")
				}
			case <-deadline:
				t.Fatalf("got %d packets, %d keyframes in %v", packets, keyframes, waitLong)
			}
		}
	})
}

func TestFFprobe(t *testing.T) {
	t.Parallel()
	testtool.Require(t, "ffprobe")
	sliced := streamCase{"slices", Config{Fault: FaultSlices}, StreamMain, 640, 360}
	eachStream(t, "ff", []streamCase{sliced}, func(t *testing.T, s *Sim, tt streamCase) {
		got := testtool.FFprobe(t, "-rtsp_transport", "tcp",
			"-select_streams", "v:0", "-show_entries", "stream=codec_name,width,height", s.URL(1, tt.stream))
		if len(got.Streams) != 1 {
			t.Fatalf("ffprobe streams = %d, want 1: %s", len(got.Streams), got.Out)
		}
		st := got.Streams[0]
		if st.CodecName != "h264" || st.Width != tt.w || st.Height != tt.h {
			t.Errorf("ffprobe = %s %dx%d, want h264 %dx%d", st.CodecName, st.Width, st.Height, tt.w, tt.h)
		}
	})
}

// streamCase is a stream a client must read from a Sim set up by cfg, and
// the picture size it must find.
type streamCase struct {
	name   string
	cfg    Config
	stream string
	w, h   int
}

// eachStream runs check, in parallel, against the main and the sub
// stream, a camera that asks user for a password, and the extra cases,
// each on a Sim of its own.
func eachStream(t *testing.T, user string, extra []streamCase, check func(*testing.T, *Sim, streamCase)) {
	cases := append([]streamCase{
		{"main", Config{}, StreamMain, 640, 360},
		{"sub", Config{}, StreamSub, 320, 180},
		{"credentials", Config{Username: user, Password: user + "-pass"}, StreamMain, 640, 360},
	}, extra...)
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			check(t, startSim(t, tt.cfg), tt)
		})
	}
}

func TestDisconnect(t *testing.T) {
	t.Parallel()
	s := startSim(t, Config{N: 2})
	p1 := rtsptest.Play(t, s.URL(1, StreamMain))
	p2 := rtsptest.Play(t, s.URL(2, StreamMain))
	p1.NextPacket(t)
	p2.NextPacket(t)

	// A client that described camera 1 before the fault, to SETUP after it.
	u, err := base.ParseURL(s.URL(1, StreamMain))
	if err != nil {
		t.Fatal(err)
	}
	tcp := gortsplib.TransportTCP
	late := gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tcp, ReadTimeout: waitLong}
	if err := late.Start2(); err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	desc, _, err := late.Describe(u)
	if err != nil {
		t.Fatal(err)
	}

	s.SetFault(1, FaultDisconnect)
	select {
	case <-p1.Done():
		t.Logf("camera 1 session ended: %v", p1.Err())
	case <-time.After(waitLong):
		t.Fatal("camera 1 session still open after FaultDisconnect")
	}

	// Camera 2 is untouched: its session is open and packets still come.
	p2.Drain()
	p2.NextPacket(t)
	select {
	case <-p2.Done():
		t.Fatalf("camera 2 session ended: %v", p2.Err())
	default:
	}

	// New sessions of camera 1 are refused, at DESCRIBE and at SETUP.
	if got := rtsptest.StatusOf(rtsptest.Describe(t, s.URL(1, StreamMain))); got != base.StatusServiceUnavailable {
		t.Errorf("DESCRIBE while disconnected: status %d, want 503", got)
	}
	if got := rtsptest.StatusOf(rtsptest.Describe(t, s.URL(1, StreamSub))); got != base.StatusServiceUnavailable {
		t.Errorf("DESCRIBE sub while disconnected: status %d, want 503", got)
	}
	if _, err := late.Setup(desc.BaseURL, desc.Medias[0], 0, 0); rtsptest.StatusOf(err) != base.StatusServiceUnavailable {
		t.Errorf("SETUP while disconnected: %v, want status 503", err)
	}

	// Cleared, camera 1 serves again.
	s.SetFault(1, FaultNone)
	p3 := rtsptest.Play(t, s.URL(1, StreamMain))
	p3.AccessUnits(t, 1)
}

func TestStall(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		atStart bool
	}{
		{"at runtime", false},
		{"from config", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, p := playFaulted(t, FaultStall, tt.atStart, StreamMain, func(p *rtsptest.Player) { p.NextPacket(t) })
			if !tt.atStart {
				p.Quiet(t, 400*time.Millisecond) // packets already in flight
			}
			before := s.Frames(1, StreamMain)
			p.NoPacketFor(t, 20*frameDuration) // a stall
			if got := s.Frames(1, StreamMain); got != before {
				t.Errorf("Frames went from %d to %d during a stall", before, got)
			}
			s.SetFault(1, FaultNone)
			p.AccessUnits(t, 1) // the same session resumes, from the next IDR
		})
	}
}

// lossRun plays camera 1's main stream in loss mode for the clip's first
// 100 frames and returns the received packets' sequence numbers and
// whether a gap was seen inside an FU-A run.
func lossRun(t *testing.T) (seqs []uint16, received, lost int, insideFUA bool) {
	const start = 90000
	s := startSim(t, Config{Fault: FaultLoss, StartTimestamp: start})
	p := rtsptest.Play(t, s.URL(1, StreamMain))
	var prevSeq uint16
	var prevTS uint32
	for {
		pkt := p.NextPacket(t)
		if (pkt.Timestamp-start)/ticksPerFrame >= clipFrames {
			return seqs, received, lost, insideFUA
		}
		if received > 0 {
			gap := int(pkt.SequenceNumber - prevSeq - 1)
			lost += gap
			fuaMiddle := len(pkt.Payload) > 1 && pkt.Payload[0]&0x1f == 28 && pkt.Payload[1]&0x80 == 0
			if gap > 0 && pkt.Timestamp == prevTS && fuaMiddle {
				insideFUA = true
			}
		}
		seqs = append(seqs, pkt.SequenceNumber)
		received++
		prevSeq, prevTS = pkt.SequenceNumber, pkt.Timestamp
	}
}

func TestLoss(t *testing.T) {
	t.Parallel()
	type run struct {
		seqs           []uint16
		received, lost int
		insideFUA      bool
	}
	runs := make(chan run, 2)
	for range 2 {
		go func() {
			// t.Run keeps the Sim's cleanup inside each run.
			var r run
			t.Run("run", func(t *testing.T) {
				r.seqs, r.received, r.lost, r.insideFUA = lossRun(t)
			})
			runs <- r
		}()
	}
	a, b := <-runs, <-runs
	for _, r := range []run{a, b} {
		total := r.received + r.lost
		if ratio := float64(r.lost) / float64(total); r.lost == 0 || ratio > 0.08 {
			t.Errorf("lost %d of %d packets (%.1f%%), want some, about 3%%", r.lost, total, 100*ratio)
		}
		if !r.insideFUA {
			t.Error("no packet dropped inside an FU-A run")
		}
	}
	// Seeded: the same packets are lost in both runs (relative to the first
	// received packet, since the initial sequence number is random).
	rel := func(r run) []uint16 {
		out := make([]uint16, len(r.seqs))
		for i, s := range r.seqs {
			out[i] = s - r.seqs[0]
		}
		return out
	}
	if !slices.Equal(rel(a), rel(b)) {
		t.Errorf("loss pattern differs between runs: %d vs %d packets received", a.received, b.received)
	}
}

func TestSlices(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		atStart    bool
		stream     string
		wantSlices int
	}{
		{"from config", true, StreamMain, 4},
		{"at runtime", false, StreamMain, 4},
		{"sub unaffected", true, StreamSub, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, p := playFaulted(t, FaultSlices, tt.atStart, tt.stream, func(p *rtsptest.Player) { p.AccessUnits(t, 1) })
			if !tt.atStart {
				// The switch waits for the next GOP: skip single-slice AUs.
				for {
					nalus := p.Next(t).NALUs
					if countSlices(nalus) != 1 {
						if !stream.H264.IsKey(nalus) {
							t.Fatal("clip switched in the middle of a GOP")
						}
						break
					}
				}
			}
			for i, a := range p.AccessUnits(t, 30) {
				if got := countSlices(a.NALUs); got != tt.wantSlices {
					t.Fatalf("access unit %d: %d slices, want %d", i, got, tt.wantSlices)
				}
			}
		})
	}
}

func countSlices(nalus [][]byte) int {
	n := 0
	for _, nalu := range nalus {
		if t := nalu[0] & 0x1f; t == 1 || t == 5 {
			n++
		}
	}
	return n
}

func TestCredentials(t *testing.T) {
	t.Parallel()
	const user, pass = "cam-user", "s3cret-pw"
	var logs testtool.LogBuffer
	s := startSim(t, Config{N: 1, Username: user, Password: pass, Logger: debugLogger(&logs)})
	plain := strings.Replace(s.URL(1, StreamMain), user+":"+pass+"@", "", 1)
	wrong := strings.Replace(s.URL(1, StreamMain), pass, "wrong", 1)
	tests := []struct {
		name       string
		url        string
		wantStatus base.StatusCode // 0: plays
	}{
		{"none", plain, base.StatusUnauthorized},
		{"wrong password", wrong, base.StatusUnauthorized},
		{"right", s.URL(1, StreamMain), 0},
		{"right, unknown path", strings.Replace(s.URL(1, StreamMain), "/cam/1/", "/cam/2/", 1), base.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantStatus != 0 {
				if got := rtsptest.StatusOf(rtsptest.Describe(t, tt.url)); got != tt.wantStatus {
					t.Errorf("DESCRIBE status %d, want %d", got, tt.wantStatus)
				}
				return
			}
			p := rtsptest.Play(t, tt.url)
			p.AccessUnits(t, 1)
			p.Close()
		})
	}
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	for _, secret := range []string{pass, basic} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log contains a credential (%q)", secret)
		}
	}
	if logs.String() == "" {
		t.Error("nothing logged at debug level; the check above proves nothing")
	}
}

func TestUnknownPath(t *testing.T) {
	t.Parallel()
	s := startSim(t, Config{N: 2})
	base := strings.TrimSuffix(s.URL(1, StreamMain), "/cam/1/main")
	tests := []string{"/cam/3/main", "/cam/0/main", "/cam/1/hd", "/cam/1", "/foo", "/"}
	for _, path := range tests {
		t.Run(path, func(t *testing.T) {
			if got := rtsptest.StatusOf(rtsptest.Describe(t, base+path)); got != 404 {
				t.Errorf("DESCRIBE %s: status %d, want 404", path, got)
			}
		})
	}
}

// TestIdle checks that only watched streams are paced: with 20 cameras and
// one reader, one feed sends, and it stops once the reader leaves.
func TestIdle(t *testing.T) {
	t.Parallel()
	s := startSim(t, Config{N: 20})
	p := rtsptest.Play(t, s.URL(3, StreamSub))
	p.AccessUnits(t, 2)
	for cam := 1; cam <= 20; cam++ {
		for _, st := range []string{StreamMain, StreamSub} {
			got := s.Frames(cam, st)
			if watched := cam == 3 && st == StreamSub; watched != (got > 0) {
				t.Errorf("camera %d %s: Frames = %d, watched %v", cam, st, got, watched)
			}
		}
	}
	if got := s.Frames(21, StreamMain) + s.Frames(1, "hd"); got != 0 {
		t.Errorf("Frames of unknown streams = %d, want 0", got)
	}
	p.Close()
	f := s.feed(3, StreamSub)
	waitFor(t, "reader gone", func() bool { return f.readers.Load() == 0 })
	before := s.Frames(3, StreamSub)
	<-time.After(10 * frameDuration) // not waiting for an event: a window in which a pacer would have sent
	if after := s.Frames(3, StreamSub); after > before+1 {
		t.Errorf("Frames went from %d to %d with no reader", before, after)
	}
}

// waitFor polls cond until it holds, failing after waitLong.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(waitLong)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
