package rtspserve

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"gridwatch/camera/stream"
)

const (
	// flushBytes is where a batch is cut into several writes: a cached
	// GOP of a big stream need not sit in one buffer.
	flushBytes = 64 << 10
	// keepBytes is the largest batch buffer kept for the next batch; a
	// bigger one (grown by a GOP burst) is dropped.
	keepBytes = 64 << 10
	// srPeriod is how often a session writes an RTCP sender report, which
	// ties its RTP timestamps to wall-clock time.
	srPeriod = 5 * time.Second
)

// gateListener hands out the connections it accepts, after tune.
type gateListener struct {
	net.Listener
	// tune, if set, adjusts each accepted connection before use (tests
	// shrink the socket buffers to make a stalled client stall at once).
	tune func(net.Conn)
}

// Accept implements net.Listener.
func (l *gateListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if l.tune != nil {
		l.tune(c)
	}
	return c, nil
}

// writerConfig is what a session writer writes, and to whom.
type writerConfig struct {
	lease *lease
	c     *conn
	// channel is the video's RTP channel, audioChannel the audio's (RTCP
	// is on the next one); -1 for a medium the session did not set up.
	channel, audioChannel int
}

// writer is one playing session's goroutine: it takes the session's
// viewer's pictures, frames their packets with the session's own headers
// and writes each batch in one call.
type writer struct {
	writerConfig
	s       *Server
	viewer  *stream.Viewer
	ctx     context.Context
	cancel  context.CancelFunc
	started bool // start ran; only the connection's goroutine reads or sets it
	stopped bool // stop ran; likewise

	video, audio track
	// sent counts the bytes written to this client, for Config.Watch.
	sent atomic.Int64
	// done is closed when run has returned, or by stop when run never
	// started: sent is final then (a client may read a packet before the
	// Write that sent it has returned).
	done chan struct{}
}

// track is the RTP state of one medium of a session.
type track struct {
	channel byte   // RTP channel; RTCP is channel+1
	ssrc    uint32 // the one SETUP announced
	seq     uint16 // sequence number of the next RTP packet
	base    uint32 // RTP timestamp of PTS 0
	lastSR  time.Time
	packets uint32 // RTP packets and payload octets, for sender reports
	octets  uint32
}

func newTrack(channel int, ssrc uint32) track {
	return track{channel: byte(channel), ssrc: ssrc, seq: uint16(rand.Uint32()), base: rand.Uint32()}
}

// newWriter makes the writer of a session that is about to play; start
// starts it once PLAY has been answered.
func (s *Server) newWriter(cfg writerConfig) *writer {
	ctx, cancel := context.WithCancel(s.ctx)
	s.sessions.Add(1)
	return &writer{
		writerConfig: cfg,
		s:            s,
		ctx:          ctx,
		cancel:       cancel,
		done:         make(chan struct{}),
		video:        newTrack(cfg.channel, cfg.lease.ssrc),
		audio:        newTrack(cfg.audioChannel, cfg.lease.audioSSRC),
	}
}

// start subscribes to the lease's hub now, so that the cached GOP is the
// first thing the session gets, and starts the writer's goroutine.
func (w *writer) start() {
	if w.started || w.stopped {
		return
	}
	w.started = true
	if w.audioChannel >= 0 {
		w.viewer = w.lease.hub.SubscribeAV()
	} else {
		w.viewer = w.lease.hub.Subscribe()
	}
	w.s.writers.Add(1)
	go w.run(w.ctx)
}

// stop ends the writer without waiting for it: its viewer is closed, so
// nothing is queued for it any more, and a write in progress ends with the
// connection, or at its deadline. Run waits for every writer.
func (w *writer) stop() {
	if w.stopped {
		return
	}
	w.stopped = true
	w.cancel()
	w.s.sessions.Add(-1)
	if !w.started {
		close(w.done)
		return
	}
	w.viewer.Close()
}

// errRevoked ends a session whose token no longer grants the camera.
var errRevoked = errors.New("access withdrawn")

// errCodingChanged ends a session whose camera switched between H.264 and
// H.265: the client must DESCRIBE again to learn the new coding.
var errCodingChanged = errors.New("the camera changed its video coding")

func (w *writer) run(ctx context.Context) {
	defer w.s.writers.Done()
	defer close(w.done)
	defer w.viewer.Close()
	err := w.loop(ctx)
	if ctx.Err() != nil {
		return // the session is closing already
	}
	log := w.s.log.With("camera", w.lease.key.camera, "stream", w.lease.key.stream, "remote", w.c.remote)
	switch {
	case errors.Is(err, stream.ErrSlow):
		log.Info("rtspserve: client too slow, closing")
	case errors.Is(err, stream.ErrClosed):
		log.Info("rtspserve: stream ended, closing")
	case errors.Is(err, errCodingChanged):
		log.Info("rtspserve: the camera changed its coding, closing so the client describes it again")
	case errors.Is(err, errRevoked):
		log.Info("rtspserve: access withdrawn, closing", "reason", err.Error())
	default:
		// A write failed or timed out, maybe in the middle of a frame:
		// the connection is of no further use.
		log.Info("rtspserve: write to client failed, closing", "err", errText(err))
	}
	// The connection's goroutine sees it close, ends the session and
	// releases the lease. A write may have failed in the middle of a
	// frame: the connection is of no further use in any case.
	_ = w.c.nc.Close()
}

// loop writes until the viewer ends, a write fails or ctx ends. One timer
// tells when the session's token is due to be checked again: a context with
// a deadline a wait was a tenth of the relay's CPU.
func (w *writer) loop(ctx context.Context) error {
	var batch []*stream.AccessUnit
	recheck := time.NewTimer(w.s.cfg.Recheck)
	defer recheck.Stop()
	for {
		var err error
		batch, err = w.viewer.NextUntil(ctx, recheck.C, batch)
		if errors.Is(err, stream.ErrUntil) {
			if err := w.s.cfg.Access(ctx, w.lease.token, w.lease.key.camera); err != nil {
				return fmt.Errorf("%w: %s", errRevoked, codeOf(err))
			}
			recheck.Reset(w.s.cfg.Recheck)
			continue
		}
		if err != nil {
			return err
		}
		err = w.send(ctx, batch)
		clear(batch) // let the pictures go; the hub decides how long they live
		if err != nil {
			return err
		}
	}
}

// send frames a batch of pictures as interleaved RTP and writes it in one
// call, or in several of about flushBytes for a large batch.
func (w *writer) send(ctx context.Context, batch []*stream.AccessUnit) error {
	bp := batchBuffers.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= keepBytes {
			batchBuffers.Put(bp)
		}
	}()
	buf := (*bp)[:0]
	pkts := 0
	for _, au := range batch {
		tr := &w.video
		switch {
		case au.Audio != nil:
			if au.Audio != w.lease.audio && !au.Audio.Equal(w.lease.audio) {
				continue // not the track the client was told of
			}
			tr = &w.audio
		case len(au.NALUs) == 0 || w.channel < 0:
			continue
		case au.Params != nil && au.Params.Kind != w.lease.kind:
			// The SDP the client holds describes the other coding.
			return errCodingChanged
		}
		rtps, err := w.lease.cache.packets(au)
		if err != nil && au.Audio != nil {
			continue // one audio frame that will not packetise (an oversized Opus packet): skipped, the session goes on
		}
		if err != nil {
			return err
		}
		ts := tr.base + uint32(au.PTS)
		if now := time.Now(); now.Sub(tr.lastSR) >= srPeriod {
			tr.lastSR = now
			at := au.Received
			if at.IsZero() {
				at = now
			}
			buf = tr.appendSR(buf, at, ts)
			pkts++
		}
		for _, p := range rtps {
			h := p.Header // the cached packet is shared: write a copy of its header
			h.SequenceNumber = tr.seq
			h.SSRC = tr.ssrc
			// A video packet's encoder timestamp means nothing; an audio
			// one's is its offset in the frame.
			h.Timestamp = ts
			if au.Audio != nil {
				h.Timestamp += p.Timestamp
			}
			buf = appendPacket(buf, tr.channel, &h, p.Payload)
			tr.seq++
			tr.packets++
			tr.octets += uint32(len(p.Payload))
		}
		pkts += len(rtps)
		if len(buf) >= flushBytes {
			if err := w.write(ctx, buf, pkts); err != nil {
				return err
			}
			buf, pkts = buf[:0], 0
		}
	}
	if len(buf) > 0 {
		if err := w.write(ctx, buf, pkts); err != nil {
			*bp = buf
			return err
		}
	}
	*bp = buf
	return nil
}

// batchBuffers are the buffers batches are framed in. A batch is written
// as soon as it is framed, so a few buffers serve every session of the
// server, instead of one kept by each.
var batchBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// write writes b, which holds pkts packets, with one deadline.
func (w *writer) write(ctx context.Context, b []byte, pkts int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n, err := w.c.write(b)
	w.s.writesN.Add(1)
	w.s.bytes.Add(int64(n))
	w.sent.Add(int64(n))
	if err != nil {
		return err
	}
	w.s.packets.Add(int64(pkts))
	return nil
}

// appendSR appends an RTCP sender report that maps RTP timestamp ts to the
// wall-clock time at, on the track's RTCP channel.
func (tr *track) appendSR(buf []byte, at time.Time, ts uint32) []byte {
	sr := rtcp.SenderReport{
		SSRC:        tr.ssrc,
		NTPTime:     ntpTime(at),
		RTPTime:     ts,
		PacketCount: tr.packets,
		OctetCount:  tr.octets,
	}
	b, err := sr.Marshal()
	if err != nil {
		return buf
	}
	return appendInterleaved(buf, tr.channel+1, b)
}

// appendPacket appends an RTP packet as an RTSP interleaved frame: '$', the
// channel, the length (big-endian 16 bits) and the packet, header h then
// payload (RFC 2326 section 10.12).
func appendPacket(buf []byte, channel byte, h *rtp.Header, payload []byte) []byte {
	n := h.MarshalSize() + len(payload)
	off := len(buf)
	buf = slices.Grow(buf, 4+n)[:off+4+n]
	buf[off] = '$'
	buf[off+1] = channel
	binary.BigEndian.PutUint16(buf[off+2:], uint16(n))
	hn, err := h.MarshalTo(buf[off+4:])
	if err != nil {
		return buf[:off]
	}
	copy(buf[off+4+hn:], payload)
	return buf
}

// appendInterleaved appends an already marshalled packet as a frame.
func appendInterleaved(buf []byte, channel byte, pkt []byte) []byte {
	buf = append(buf, '$', channel, 0, 0)
	binary.BigEndian.PutUint16(buf[len(buf)-2:], uint16(len(pkt)))
	return append(buf, pkt...)
}

// ntpTime is t in the 64-bit NTP format of RTCP: seconds since 1900 in the
// high half, the fraction in the low half.
func ntpTime(t time.Time) uint64 {
	const unixToNTP = 2208988800
	ns := uint64(t.UnixNano()) + unixToNTP*uint64(time.Second)
	sec, frac := ns/uint64(time.Second), ns%uint64(time.Second)
	return sec<<32 | frac<<32/uint64(time.Second)
}
