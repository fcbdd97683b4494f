// Package pull brings a camera's RTSP stream into a stream.Hub: one upstream
// session per camera stream, kept alive by a Supervisor that reconnects with
// backoff and watches for stalls.
//
// Pictures are rebuilt from RTP packets here, whichever client brings them:
// gortsplib's RTP/H.264 depacketiser (whole access units by marker and
// timestamp, STAP-A and FU-A, fragment-loss detection) plus a
// sequence-number loss detector, after which everything up to the next IDR
// picture is dropped, so no viewer sees a picture smeared by a lost packet.
// Keyframes are found from NAL unit types; timestamps are unwrapped to 64
// bits and rebased onto one continuous timeline that runs on across
// reconnects.
//
// Two RTSP clients can bring the packets (Config.Client):
//
//   - gortsplib's client, the default. It is a well-kept RTSP client with
//     contexts, timeouts, Basic and Digest authentication and keep-alives,
//     and it cannot be crashed by what a camera sends.
//   - deepch/vdk's rtspv2 client, which the design started from and which
//     some installations know. Its depacketiser is not used: it flags
//     keyframes only when the IDR is not inside a STAP-A packet, makes one
//     packet per NAL unit (a multi-slice picture becomes several frames),
//     hands out raw RTP timestamps that wrap after 13¼ hours, and joins
//     FU-A fragments across a lost packet into a corrupt picture. We take
//     its raw RTP packets (the OutgoingProxy queue) instead, and drain every
//     one of its channels at once, since it drops a camera whose queue fills
//     and its reader blocks on a full Signals channel.
//
// Why vdk is not the default: three of its defects cannot be guarded from
// outside. Its reader goroutine panics on some malformed input (an RTP
// packet whose padding length exceeds it; a negative Content-Length), and a
// panic in a goroutine we do not own cannot be recovered, so one broken
// camera would stop the whole service. Its Dial leaves the connection open
// when a request fails (a wrong password leaks a camera connection per
// retry, and cameras accept few). And its keep-alive writes race with
// Close. gortsplib meets those requirements; vdk is kept behind the same
// assembler for cameras that need it (--rtsp-client vdk).
package pull

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/rtplossdetector"
	"github.com/bluenviron/gortsplib/v4/pkg/sdp"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/deepch/vdk/format/rtspv2"
	"github.com/pion/rtp"

	"gridwatch/camera/stream"
	"gridwatch/camera/streamurl"
)

// sessionError is an error of one upstream session, with the URL's
// credentials (wherever the URL carries them: see camera/streamurl)
// scrubbed from whatever the libraries put in it: it becomes the camera's
// status reason, shown to users, and goes to the log.
func sessionError(rawURL string, err error) error {
	msg := err.Error()
	if u, perr := url.Parse(rawURL); perr == nil && u.User != nil {
		msg = strings.ReplaceAll(msg, u.User.String()+"@", "")
	}
	_, secret := streamurl.Split(rawURL)
	for _, text := range secret.Texts() {
		msg = strings.ReplaceAll(msg, text, "***")
	}
	return errors.New(msg)
}

// findH264 reads the video format from the SDP vdk received.
func findH264(raw []byte) (*format.H264, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("SDP: %w", err)
	}
	var desc description.Session
	if err := desc.Unmarshal(&sd); err != nil {
		return nil, fmt.Errorf("SDP: %w", err)
	}
	var f *format.H264
	if desc.FindFormat(&f) == nil {
		return nil, errors.New("the camera offers no H.264 video")
	}
	return f, nil
}

// timeline maps a session's RTP timestamps onto the stream's continuous
// timeline: unwrapped to 64 bits, starting where the previous session ended.
type timeline struct {
	lastDTS int64 // last DTS handed out, -1 before the first
	lastDur int64
	offset  int64 // added to the unwrapped RTP time of this session
	lastRTP uint32
	ext     int64 // unwrapped RTP time of lastRTP
	started bool  // this session has had its first picture
}

func newTimeline() *timeline { return &timeline{lastDTS: -1, lastDur: stream.ClockRate / 25} }

// newSession forgets the RTP clock of the previous session.
func (t *timeline) newSession() { t.started = false }

// unwrap extends a 32-bit RTP timestamp to 64 bits, relative to the session.
func (t *timeline) unwrap(ts uint32) int64 {
	if !t.started {
		t.started = true
		t.lastRTP, t.ext = ts, 0
		// The session's first picture follows the last one of the previous
		// session by one picture interval.
		t.offset = t.lastDTS + t.lastDur
		if t.lastDTS < 0 {
			t.offset = 0
		}
		return 0
	}
	t.ext += int64(int32(ts - t.lastRTP))
	t.lastRTP = ts
	return t.ext
}

// place turns a picture's session DTS and PTS into timeline times, keeping
// DTS strictly increasing whatever the camera sends.
func (t *timeline) place(dts, pts int64) (int64, int64, int64) {
	dts += t.offset
	pts += t.offset
	if dts <= t.lastDTS {
		shift := t.lastDTS + 1 - dts
		dts += shift
		pts += shift
		t.offset += shift
	}
	if pts < dts {
		pts = dts
	}
	if t.lastDTS >= 0 {
		// The picture interval, for the duration of a picture whose
		// successor has not come yet. A gap (pictures dropped after a
		// loss) is not an interval: only one up to 1.5 times the current
		// estimate replaces it at once; longer ones (a camera that really
		// slowed down) pull it up slowly.
		if d := dts - t.lastDTS; d > 0 && d <= 3*t.lastDur/2 {
			t.lastDur = d
		} else if d > 0 && d < stream.ClockRate {
			t.lastDur += (d - t.lastDur) / 8
		}
	}
	t.lastDTS = dts
	return dts, pts, t.lastDur
}

// assembler turns RTP packets into access units for the hub.
type assembler struct {
	log     *slog.Logger
	dec     *rtph264.Decoder
	mode    int
	loss    *rtplossdetector.LossDetector
	dtsx    h264.DTSExtractor
	tl      *timeline
	sps     []byte
	pps     []byte
	params  *stream.Params
	waitKey bool
	now     func() time.Time
	// pending: the decoder holds packets of a picture not finished yet,
	// whose timestamp is pendingTS.
	pending   bool
	pendingTS uint32

	lost, dropped int64
}

func newAssembler(f *format.H264, tl *timeline, log *slog.Logger, now func() time.Time) (*assembler, error) {
	a := &assembler{log: log, mode: f.PacketizationMode, tl: tl, now: now, waitKey: true}
	a.sps, a.pps = f.SafeParams()
	if len(a.sps) > 0 && len(a.pps) > 0 {
		if p, err := stream.NewParams(a.sps, a.pps); err == nil {
			a.params = p
		}
	}
	return a, a.reset()
}

// reset throws away a partial picture; pictures are dropped until the next
// IDR picture, the first one that decodes without what was lost.
func (a *assembler) reset() error {
	a.dec = &rtph264.Decoder{PacketizationMode: a.mode}
	a.loss = rtplossdetector.New()
	a.dtsx = h264.DTSExtractor{}
	a.dtsx.Initialize()
	a.waitKey = true
	a.pending = false
	return a.dec.Init()
}

// packet feeds one RTP packet; it returns a finished picture or nil.
func (a *assembler) packet(pkt *rtp.Packet) *stream.AccessUnit {
	if lost := a.loss.Process(pkt); lost > 0 {
		a.lost += int64(lost)
		a.resetKeepLoss()
		// The loss detector has seen this packet; feed it to a clean decoder.
	}
	nalus, err := a.dec.Decode(pkt)
	ts := pkt.Timestamp
	switch {
	case err == nil:
		// Without marker bits the decoder finishes a picture when the
		// next one's first packet arrives, and keeps that packet: the
		// picture returned is the pending one, with its own timestamp.
		if a.pending && a.pendingTS != pkt.Timestamp {
			ts, a.pendingTS = a.pendingTS, pkt.Timestamp
		} else {
			a.pending = false
		}
	case errors.Is(err, rtph264.ErrMorePacketsNeeded):
		if !a.pending {
			a.pending, a.pendingTS = true, pkt.Timestamp
		}
		return nil
	case errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious):
		return nil
	default:
		// A missing FU-A fragment or a malformed packet: the picture is lost.
		a.lost++
		a.resetKeepLoss()
		return nil
	}
	// Timestamps are read before anything is dropped, so the unwrapping
	// sees every picture.
	ext := a.tl.unwrap(ts)
	return a.picture(nalus, ext)
}

func (a *assembler) resetKeepLoss() {
	loss := a.loss
	_ = a.reset()
	a.loss = loss
}

func (a *assembler) picture(nalus [][]byte, pts int64) *stream.AccessUnit {
	var sps, pps []byte
	out := make([][]byte, 0, len(nalus)+2)
	for _, n := range nalus {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps = n
		case h264.NALUTypePPS:
			pps = n
		case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeFillerData:
			// Carry nothing a decoder needs; MSE players dislike stray AUDs.
		default:
			out = append(out, n)
		}
	}
	key := stream.IsKey(out)
	if sps != nil {
		a.sps = sps
	}
	if pps != nil {
		a.pps = pps
	}
	// New parameters take effect at a keyframe only: a camera that repeats
	// or flips them between pictures must not make every viewer start
	// over (a new init segment each time).
	if (key || a.params == nil) && len(a.sps) > 0 && len(a.pps) > 0 && !a.params.Same(a.sps, a.pps) {
		p, err := stream.NewParams(a.sps, a.pps)
		if err != nil {
			a.log.Warn("camera sent a bad SPS", "err", err)
		} else {
			a.params = p
		}
	}
	if a.waitKey && !key || a.params == nil || len(out) == 0 {
		a.dropped++
		return nil
	}
	if key {
		// Every keyframe carries its parameter sets, so a recording or a
		// re-served stream can start at any keyframe.
		out = append([][]byte{a.params.SPS, a.params.PPS}, out...)
	}
	dts, err := a.dtsx.Extract(out, pts)
	if err != nil {
		a.log.Debug("DTS", "err", err)
		a.dropped++
		_ = a.reset()
		return nil
	}
	a.waitKey = false
	dts, pts, dur := a.tl.place(dts, pts)
	return &stream.AccessUnit{DTS: dts, PTS: pts, Duration: dur, NALUs: out, Key: key, Params: a.params, Received: a.now()}
}

// Client names the RTSP client library a session uses.
type Client string

// The RTSP clients: gortsplib's is the default; vdk's stays available for
// cameras that only it gets along with.
const (
	ClientGortsplib Client = "gortsplib"
	ClientVDK       Client = "vdk"
)

// session is one connection to a camera, from dial to the first error.
type session struct {
	url          string
	client       Client
	dialTimeout  time.Duration
	readTimeout  time.Duration
	stallTimeout time.Duration
	keyTimeout   time.Duration
	log          *slog.Logger
	now          func() time.Time
}

// source is an open upstream session: its H.264 format and its RTP
// packets. done is closed when it has ended by itself (err says why);
// close ends it and returns once nothing of it runs any more.
type source struct {
	format  *format.H264
	packets chan *rtp.Packet
	done    chan struct{}
	err     error
	close   func()
}

// packetQueue is how many RTP packets may wait between the client's reader
// and our assembler (a second of a 4 Mbit/s stream). When it is full a
// packet is dropped: the assembler sees the gap and waits for a keyframe,
// and the camera's connection is never slowed.
const packetQueue = 512

// run dials the camera and feeds pictures to out until ctx ends or the
// session fails. onPlay is called once the camera plays. Every goroutine
// it starts has ended when it returns.
func (s *session) run(ctx context.Context, tl *timeline, onPlay func(), out func(*stream.AccessUnit)) error {
	var src *source
	var err error
	if s.client == ClientVDK {
		src, err = s.openVDK(ctx)
	} else {
		src, err = s.openGortsplib(ctx)
	}
	if err != nil {
		return err
	}
	defer src.close()
	asm, err := newAssembler(src.format, tl, s.log, s.now)
	if err != nil {
		return err
	}
	tl.newSession()
	onPlay()
	stall := time.NewTimer(s.stallTimeout)
	defer stall.Stop()
	key := time.NewTimer(s.keyTimeout)
	defer key.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-src.done:
			if src.err != nil {
				return sessionError(s.url, src.err)
			}
			return errors.New("the camera closed the session")
		case <-stall.C:
			return fmt.Errorf("no picture for %s", s.stallTimeout)
		case <-key.C:
			return fmt.Errorf("no keyframe for %s", s.keyTimeout)
		case pkt := <-src.packets:
			if pkt.PayloadType != src.format.PayloadTyp {
				continue
			}
			au := asm.packet(pkt)
			if au == nil {
				continue
			}
			stall.Reset(s.stallTimeout)
			if au.Key {
				key.Reset(s.keyTimeout)
			}
			out(au)
		}
	}
}

// openGortsplib opens the session with gortsplib's client over TCP.
func (s *session) openGortsplib(ctx context.Context) (*source, error) {
	u, err := base.ParseURL(s.url)
	if err != nil {
		return nil, errors.New("the camera URL cannot be parsed")
	}
	tcp := gortsplib.TransportTCP
	src := &source{packets: make(chan *rtp.Packet, packetQueue), done: make(chan struct{})}
	c := &gortsplib.Client{
		Scheme: u.Scheme, Host: u.Host, Transport: &tcp,
		ReadTimeout: s.readTimeout, WriteTimeout: s.dialTimeout,
		UserAgent:   "gridwatch",
		DialContext: (&net.Dialer{Timeout: s.dialTimeout}).DialContext,
	}
	if err := c.Start2(); err != nil {
		return nil, err
	}
	// Describe, Setup and Play block on the network; ctx ends them by
	// closing the client.
	stop := context.AfterFunc(ctx, c.Close)
	fail := func(err error) (*source, error) {
		stop()
		c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, sessionError(s.url, err)
	}
	desc, _, err := c.Describe(u)
	if err != nil {
		return fail(err)
	}
	var f *format.H264
	medi := desc.FindFormat(&f)
	if medi == nil {
		return fail(errors.New("the camera offers no H.264 video"))
	}
	if _, err := c.Setup(desc.BaseURL, medi, 0, 0); err != nil {
		return fail(err)
	}
	src.format = f
	c.OnPacketRTP(medi, f, func(pkt *rtp.Packet) {
		// The client may reuse its buffers: keep a copy.
		cp := &rtp.Packet{Header: pkt.Header, Payload: append([]byte(nil), pkt.Payload...)}
		select {
		case src.packets <- cp:
		default:
		}
	})
	if _, err := c.Play(nil); err != nil {
		return fail(err)
	}
	stop()
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		src.err = c.Wait()
		close(src.done)
	}()
	src.close = func() {
		c.Close()
		<-waited
	}
	return src, nil
}

// openVDK opens the session with vdk's rtspv2 client (see the package doc
// for what is not used of it, and its limits).
func (s *session) openVDK(ctx context.Context) (*source, error) {
	type dialed struct {
		c   *rtspv2.RTSPClient
		err error
	}
	// vdk's Dial takes no context; run it aside so ctx can cut it short.
	dch := make(chan dialed, 1)
	go func() {
		c, err := rtspv2.Dial(rtspv2.RTSPClientOptions{
			URL:              s.url,
			DialTimeout:      s.dialTimeout,
			ReadWriteTimeout: s.readTimeout,
			DisableAudio:     true,
			OutgoingProxy:    true,
		})
		dch <- dialed{c, err}
	}()
	var c *rtspv2.RTSPClient
	select {
	case d := <-dch:
		if d.err != nil {
			return nil, sessionError(s.url, d.err)
		}
		c = d.c
	case <-ctx.Done():
		// The dial ends within its own timeouts; close what it opens.
		go func() {
			if d := <-dch; d.c != nil {
				d.c.Close()
				drainUntilStop(d.c)
			}
		}()
		return nil, ctx.Err()
	}
	f, err := findH264(c.SDPRaw)
	if err != nil {
		c.Close()
		drainUntilStop(c)
		return nil, err
	}
	src := &source{format: f, packets: make(chan *rtp.Packet, packetQueue), done: make(chan struct{})}
	// vdk's own packets are not used, but its queue must never fill: it
	// drops the camera when it does. Its Signals channel must never fill
	// either: its reader blocks on it.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-c.OutgoingPacketQueue:
			case <-stop:
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case sig := <-c.Signals:
				if sig == rtspv2.SignalStreamRTPStop {
					close(src.done)
					return
				}
			case raw := <-c.OutgoingProxyQueue:
				b := *raw
				// 4 bytes of RTSP interleaving, then RTP; odd channels carry RTCP.
				if len(b) < 4+12 || b[1]%2 == 1 {
					continue
				}
				var pkt rtp.Packet
				if pkt.Unmarshal(b[4:]) != nil {
					continue
				}
				select {
				case src.packets <- &pkt:
				default:
				}
			case <-stop:
				return
			}
		}
	}()
	src.close = func() {
		c.Close()
		// vdk's reader sends its stop signal on the way out; once it has,
		// nothing of this session runs any more.
		select {
		case <-src.done:
		case <-time.After(s.readTimeout + time.Second):
			s.log.Warn("camera reader did not stop")
		}
		close(stop)
		wg.Wait()
	}
	return src, nil
}

// drainUntilStop empties a vdk client's channels until its reader has
// stopped, so it never blocks on them.
func drainUntilStop(c *rtspv2.RTSPClient) {
	timeout := time.After(time.Minute)
	for {
		select {
		case sig := <-c.Signals:
			if sig == rtspv2.SignalStreamRTPStop {
				return
			}
		case <-c.OutgoingPacketQueue:
		case <-c.OutgoingProxyQueue:
		case <-timeout:
			return
		}
	}
}
