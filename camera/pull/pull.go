// Package pull brings a camera's RTSP stream into a stream.Hub: one upstream
// session per camera stream, kept alive by a Supervisor that reconnects with
// backoff and watches for stalls.
//
// The RTSP session itself (OPTIONS, DESCRIBE, SETUP over TCP, PLAY, Basic
// and Digest authentication, keep-alives) is deepch/vdk's rtspv2 client.
// Its depacketiser is not used: it flags keyframes only when the IDR is not
// inside a STAP-A packet, makes one packet per NAL unit (a multi-slice
// picture becomes several "frames"), hands out raw RTP timestamps that wrap
// after 13¼ hours, and joins FU-A fragments across a lost packet into a
// corrupt picture, which a decoder then smears over the following seconds.
// vdk has no hook to fix that inside it, so we ask it for the raw RTP
// packets (its OutgoingProxy queue) and rebuild pictures ourselves with
// gortsplib's RTP/H.264 decoder (whole access units by marker and timestamp,
// STAP-A and FU-A, fragment-loss detection) plus a sequence-number loss
// detector: after any loss we drop everything up to the next IDR picture.
// Keyframes are found from NAL unit types; timestamps are unwrapped to 64
// bits and rebased onto one continuous timeline, which also runs on across
// reconnects. vdk closes a session whose queues fill (a slow reader) and its
// Signals channel can block its reader, so every vdk channel is drained by
// its own goroutine at once.
//
// Remaining vdk limits: it reads RTSP over TCP only (fine for cameras on
// thin links, where UDP loses more), and a panic inside its reader goroutine
// (on a malformed packet) cannot be recovered from here.
package pull

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/rtplossdetector"
	"github.com/bluenviron/gortsplib/v4/pkg/sdp"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/deepch/vdk/format/rtspv2"
	"github.com/pion/rtp"

	"gridwatch/camera/stream"
)

// Redact removes the credentials from an RTSP URL, for logs and errors.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "rtsp://(unparsable URL)"
	}
	u.User = nil
	return u.String()
}

// sessionError is an error of one upstream session, with the URL's
// credentials scrubbed from whatever the libraries put in it.
func sessionError(rawURL string, err error) error {
	msg := err.Error()
	if u, perr := url.Parse(rawURL); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "***")
		}
		msg = strings.ReplaceAll(msg, u.User.String()+"@", "")
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
		if d := dts - t.lastDTS; d > 0 && d < 10*stream.ClockRate {
			t.lastDur = d
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
	switch {
	case err == nil:
	case errors.Is(err, rtph264.ErrMorePacketsNeeded), errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious):
		return nil
	default:
		// A missing FU-A fragment or a malformed packet: the picture is lost.
		a.lost++
		a.resetKeepLoss()
		return nil
	}
	// Timestamps are read before anything is dropped, so the unwrapping
	// sees every picture.
	ext := a.tl.unwrap(pkt.Timestamp)
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
	if sps != nil {
		a.sps = sps
	}
	if pps != nil {
		a.pps = pps
	}
	if len(a.sps) > 0 && len(a.pps) > 0 && !a.params.Same(a.sps, a.pps) {
		p, err := stream.NewParams(a.sps, a.pps)
		if err != nil {
			a.log.Warn("camera sent a bad SPS", "err", err)
		} else {
			a.params = p
		}
	}
	key := stream.IsKey(out)
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

// session is one connection to a camera, from dial to the first error.
type session struct {
	url          string
	dialTimeout  time.Duration
	readTimeout  time.Duration
	stallTimeout time.Duration
	keyTimeout   time.Duration
	log          *slog.Logger
	now          func() time.Time
}

// run dials the camera and feeds pictures to out until ctx ends or the
// session fails. onPlay is called once the camera plays. Every goroutine
// it starts has ended when it returns.
func (s *session) run(ctx context.Context, tl *timeline, onPlay func(), out func(*stream.AccessUnit)) error {
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
			return sessionError(s.url, d.err)
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
		return ctx.Err()
	}

	f, err := findH264(c.SDPRaw)
	if err != nil {
		c.Close()
		drainUntilStop(c)
		return err
	}
	asm, err := newAssembler(f, tl, s.log, s.now)
	if err != nil {
		c.Close()
		drainUntilStop(c)
		return err
	}
	tl.newSession()

	// vdk's own packets are not used, but its queue must never fill: it
	// drops the camera when it does.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-c.OutgoingPacketQueue:
			case <-stop:
				return
			}
		}
	}()
	ended := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-c.Signals:
				if sig == rtspv2.SignalStreamRTPStop {
					close(ended)
					return
				}
			case <-stop:
				return
			}
		}
	}()
	defer func() {
		c.Close()
		// vdk's reader sends its stop signal on the way out; once it has,
		// nothing of this session runs any more.
		select {
		case <-ended:
		case <-time.After(s.readTimeout + time.Second):
			s.log.Warn("camera reader did not stop", "url", Redact(s.url))
		}
		close(stop)
		<-done
	}()

	onPlay()
	stall := time.NewTimer(s.stallTimeout)
	defer stall.Stop()
	key := time.NewTimer(s.keyTimeout)
	defer key.Stop()
	var pkt rtp.Packet
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ended:
			return errors.New("the camera closed the session")
		case <-stall.C:
			return fmt.Errorf("no picture for %s", s.stallTimeout)
		case <-key.C:
			return fmt.Errorf("no keyframe for %s", s.keyTimeout)
		case raw := <-c.OutgoingProxyQueue:
			b := *raw
			// 4 bytes of RTSP interleaving, then RTP; odd channels carry RTCP.
			if len(b) < 4+12 || b[1]%2 == 1 {
				continue
			}
			if err := pkt.Unmarshal(b[4:]); err != nil || pkt.PayloadType != f.PayloadTyp {
				continue
			}
			au := asm.packet(&pkt)
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
