package live

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	"github.com/pion/rtp"

	"gridwatch/camera/internal/rtpaudio"
	"gridwatch/camera/pull"
	"gridwatch/camera/stream"
)

// Transcoding. A browser without an H.265 decoder (most desktop Chromium
// builds, Firefox) cannot play an H.265 camera over MSE. Its player then
// tries the camera's sub stream (often H.264), and then this: the
// "h264" stream of a camera, its main stream decoded and encoded again to
// H.264 by one ffmpeg process, however many watch it. The transcoder is a
// pull.Source like a camera, so the hub, the GOP cache, MSE, HLS and the
// RTSP re-serve work on it unchanged; it holds the main stream's hub while
// it runs, and stops when its last viewer has gone (TranscodeIdle).
//
// ffmpeg is fed and read in MPEG-TS over pipes: TS carries each picture's
// time, so the transcoded pictures keep the camera's timing (-copyts)
// instead of being retimed by ffmpeg.

// transcodeArgs are ffmpeg's arguments: H.265 in on stdin, H.264 out on
// stdout, at most 720 lines high (a 4 MP or 4K main stream would not
// encode in real time on a core or two, and a browser tile does not need
// it), no B-frames, a keyframe every second (a late viewer's wait, and the
// GOP cache's size), low latency (no lookahead), two threads a camera.
var transcodeArgs = []string{
	"-hide_banner", "-nostdin", "-loglevel", "error",
	"-fflags", "+nobuffer", "-probesize", "65536", "-analyzeduration", "0",
	"-f", "mpegts", "-i", "pipe:0",
	"-map", "0:v:0", "-copyts", "-fps_mode", "passthrough",
	"-vf", "scale=-2:'min(720,ih)'",
	"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-profile:v", "high",
	"-bf", "0", "-force_key_frames", "expr:gte(t,n_forced*1)", "-threads", "2",
	"-f", "mpegts", "-muxdelay", "0", "pipe:1",
}

// transcodeStats counts the transcodes of a manager for /metrics.
type transcodeStats struct {
	running  atomic.Int64
	started  atomic.Int64
	mu       sync.Mutex
	cpuDone  time.Duration                 // CPU time of ffmpeg processes that have ended
	procs    map[*os.Process]time.Duration // running ffmpeg processes, with the CPU time last read
	refusals atomic.Int64                  // transcodes refused by the limit
}

// cpu is the CPU time (user+system) all transcodes have used so far.
func (s *transcodeStats) cpu() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	total := s.cpuDone
	for p, last := range s.procs {
		// A process just reaped reads 0 (its /proc entry is gone) until
		// its end is accounted: never less than last read, so the
		// counter never goes back.
		c := max(procCPU(p.Pid), last)
		s.procs[p] = c
		total += c
	}
	return total
}

// procCPU reads a running process's CPU time from /proc (Linux; 0
// elsewhere). Fields 14 and 15 of /proc/PID/stat are utime and stime in
// clock ticks, 100 a second on Linux.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * (time.Second / 100)
}

// transcoder is the Source of a camera's "h264" stream.
type transcoder struct {
	m      *Manager
	camera int64
}

// Open starts ffmpeg on the camera's main stream.
func (t transcoder) Open(ctx context.Context) (pull.Session, error) {
	m := t.m
	if m.cfg.FFmpeg == "" {
		return nil, errors.New("transcoding needs ffmpeg, which is not installed")
	}
	hub, release, err := m.Acquire(ctx, t.camera, Main)
	if err != nil {
		return nil, fmt.Errorf("the main stream: %w", err)
	}
	params, err := hub.Ready(ctx)
	if err != nil {
		release()
		return nil, fmt.Errorf("the main stream: %w", err)
	}
	if params.Kind != stream.H265 {
		release()
		return nil, errors.New("the main stream is H.264 already: play it")
	}
	sctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(sctx, m.cfg.FFmpeg, transcodeArgs...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		cancel()
		release()
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		release()
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &limitedWriter{w: &stderr, n: 2048}
	if err := cmd.Start(); err != nil {
		cancel()
		release()
		return nil, fmt.Errorf("ffmpeg: %w", err)
	}
	st := &m.transcodes
	st.running.Add(1)
	st.started.Add(1)
	st.mu.Lock()
	st.procs[cmd.Process] = 0
	st.mu.Unlock()

	s := &transcodeSession{packets: make(chan *rtp.Packet, 1024), done: make(chan struct{})}
	// The camera's sound needs no transcoding: it is handed on beside the
	// new pictures (see transcodeSession).
	var viewer *stream.Viewer
	if a := hub.Audio(); a != nil {
		if f, ferr := rtpaudio.Format(a); ferr == nil {
			s.audio, s.audioFormat, s.audioPackets = a, f, make(chan *rtp.Packet, 256)
		}
	}
	if s.audio != nil {
		viewer = hub.SubscribeAV()
	} else {
		viewer = hub.Subscribe()
	}
	var wg sync.WaitGroup
	var feedErr, readErr error
	fctx, stopFeed := context.WithCancel(sctx)
	wg.Go(func() { feedErr = feedTranscoder(fctx, viewer, stdin, s.hold) })
	wg.Go(func() {
		readErr = s.read(stdout)
		stopFeed() // ffmpeg has ended: nothing more to feed it
	})
	go func() {
		wg.Wait()
		waitErr := cmd.Wait()
		viewer.Close()
		release()
		st.mu.Lock()
		used := st.procs[cmd.Process]
		if ps := cmd.ProcessState; ps != nil {
			used = max(used, ps.UserTime()+ps.SystemTime())
		}
		st.cpuDone += used
		delete(st.procs, cmd.Process)
		st.mu.Unlock()
		st.running.Add(-1)
		stopFeed()
		// ffmpeg's own account first: a write to its stdin after it died
		// says only "broken pipe".
		switch {
		case sctx.Err() != nil:
		case waitErr != nil:
			s.err = fmt.Errorf("transcoding: ffmpeg: %w %s", waitErr, strings.TrimSpace(stderr.String()))
		case readErr != nil:
			s.err = fmt.Errorf("transcoding: %w %s", readErr, strings.TrimSpace(stderr.String()))
		case feedErr != nil && !errors.Is(feedErr, io.ErrClosedPipe) && !errors.Is(feedErr, syscall.EPIPE):
			s.err = fmt.Errorf("transcoding: the main stream: %w", feedErr)
		}
		close(s.done)
	}()
	s.close = func() {
		cancel()
		<-s.done
	}
	return s, nil
}

// feedTranscoder writes the main stream's pictures to ffmpeg as MPEG-TS until the
// viewer or ffmpeg ends; closing stdin then lets ffmpeg finish. Audio
// frames go to sound instead.
func feedTranscoder(ctx context.Context, v *stream.Viewer, stdin io.WriteCloser, sound func(*stream.AccessUnit)) error {
	defer stdin.Close()
	bw := bufio.NewWriterSize(stdin, 64<<10)
	track := &mpegts.Track{Codec: &mpegts.CodecH265{}}
	w := &mpegts.Writer{W: bw, Tracks: []*mpegts.Track{track}}
	if err := w.Initialize(); err != nil {
		return err
	}
	var batch []*stream.AccessUnit
	for {
		var err error
		batch, err = v.Next(ctx, batch)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, au := range batch {
			if au.Audio != nil {
				sound(au)
				continue
			}
			if au.Params == nil || au.Params.Kind != stream.H265 {
				return errors.New("the main stream is no longer H.265")
			}
			if err := w.WriteH265(track, au.PTS, au.DTS, au.NALUs); err != nil {
				return err
			}
		}
		clear(batch)
		if err := bw.Flush(); err != nil {
			return err
		}
	}
}

// transcodeSession is the pull.Session of a running transcode: ffmpeg's
// H.264 pictures, packetised as a camera would send them, and the camera's
// sound as it came.
//
// The sound does not go through ffmpeg (MPEG-TS cannot carry G.711, and it
// needs no transcoding), but it must not run ahead of the pictures, which
// ffmpeg delays: the supervisor places audio by its arrival against the
// pictures. So each audio frame is held until ffmpeg has put out the
// picture of the same moment (-copyts keeps the camera's times), and
// handed on just after it.
type transcodeSession struct {
	packets chan *rtp.Packet
	done    chan struct{}
	err     error
	close   func()

	audio        *stream.Audio // the camera's sound, nil for none
	audioFormat  format.Format
	audioPackets chan *rtp.Packet

	mu   sync.Mutex
	held []*stream.AccessUnit // audio frames waiting for their picture
}

// heldAudio bounds the audio frames held for their pictures: about 4 s of
// G.711 in 20 ms packets, far more than ffmpeg's delay.
const heldAudio = 200

// hold keeps an audio frame of the camera's until its picture is out.
func (s *transcodeSession) hold(au *stream.AccessUnit) {
	if au.Audio != s.audio {
		return // not the sound the session announced
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.held) >= heldAudio {
		s.held = s.held[1:]
	}
	s.held = append(s.held, au)
}

// release hands on the audio frames heard by picture time pts (90 kHz, the
// camera's timeline mod 2^33, as MPEG-TS carries it).
func (s *transcodeSession) release(pts int64, enc func(*stream.AccessUnit) ([]*rtp.Packet, error)) {
	s.mu.Lock()
	n := 0
	for _, au := range s.held {
		at := au.DTS * stream.ClockRate / int64(s.audio.ClockRate())
		// Wrap-aware: the frame is due when it is not after the picture.
		if d := (at - pts) & tsMask; d != 0 && d < tsMask/2 {
			break
		}
		n++
	}
	due := s.held[:n:n]
	s.held = s.held[n:]
	s.mu.Unlock()
	for _, au := range due {
		pkts, err := enc(au)
		if err != nil {
			continue
		}
		for _, p := range pkts {
			p.Timestamp += uint32(au.PTS)
			select {
			case s.audioPackets <- p:
			default:
			}
		}
	}
}

// tsMask is MPEG-TS's 33-bit clock.
const tsMask = 1<<33 - 1

// The AudioSession methods: see pull.AudioSession.
func (s *transcodeSession) AudioFormat() format.Format       { return s.audioFormat }
func (s *transcodeSession) AudioPackets() <-chan *rtp.Packet { return s.audioPackets }

var transcodeFormat = &format.H264{PayloadTyp: 96, PacketizationMode: 1}

func (s *transcodeSession) Format() format.Format       { return transcodeFormat }
func (s *transcodeSession) Packets() <-chan *rtp.Packet { return s.packets }
func (s *transcodeSession) Done() <-chan struct{}       { return s.done }
func (s *transcodeSession) Err() error                  { return s.err }
func (s *transcodeSession) Close()                      { s.close() }

// read reads ffmpeg's MPEG-TS until it ends and queues its pictures as RTP
// packets (a full queue drops, as a camera's connection would).
func (s *transcodeSession) read(stdout io.Reader) error {
	r := &mpegts.Reader{R: bufio.NewReaderSize(stdout, 64<<10)}
	if err := r.Initialize(); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("ffmpeg produced nothing")
		}
		return err
	}
	var track *mpegts.Track
	for _, t := range r.Tracks() {
		if _, ok := t.Codec.(*mpegts.CodecH264); ok {
			track = t
		}
	}
	if track == nil {
		return errors.New("ffmpeg produced no H.264")
	}
	enc := &rtph264.Encoder{PayloadType: 96, PacketizationMode: 1}
	if err := enc.Init(); err != nil {
		return err
	}
	var aenc func(*stream.AccessUnit) ([]*rtp.Packet, error)
	if s.audio != nil {
		var err error
		if aenc, err = rtpaudio.Encoder(s.audio); err != nil {
			return err
		}
	}
	r.OnDecodeError(func(error) {})
	r.OnDataH264(track, func(pts, _ int64, au [][]byte) error {
		pkts, err := enc.Encode(au)
		if err != nil {
			return err
		}
		for _, p := range pkts {
			p.Timestamp = uint32(pts)
			select {
			case s.packets <- p:
			default:
			}
		}
		if aenc != nil {
			s.release(pts, aenc)
		}
		return nil
	})
	for {
		if err := r.Read(); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, os.ErrClosed) {
				return nil
			}
			return err
		}
	}
}

// limitedWriter keeps the first n bytes written to it (ffmpeg's errors,
// for the stream's status reason) and drops the rest.
type limitedWriter struct {
	mu sync.Mutex
	w  io.Writer
	n  int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n > 0 {
		k := min(len(p), l.n)
		_, _ = l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
