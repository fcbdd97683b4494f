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

// writer writes one playing session's media: it takes the session's
// viewer's pictures, frames their packets with the session's own headers
// and writes each batch in one call.
//
// A writer has no goroutine of its own while its client keeps up: the
// hub's pump (see pump) writes for it, without blocking, together with the
// hub's other sessions, so that a picture costs one wake-up a camera, not
// one a viewer. When the socket does not take a whole batch, the rest and
// whatever follows go through a goroutine of the writer's own, with
// blocking writes bounded by the write deadline, until it has kept up for a
// while and hands the session back to the pump.
type writer struct {
	writerConfig
	s      *Server
	viewer *stream.Viewer
	pump   *pump
	ctx    context.Context
	cancel context.CancelFunc
	// started and stopped are only read and set by the connection's
	// goroutine.
	started, stopped bool

	// mu guards the mode and what the mode's goroutine hands over; the
	// pump holds it while it writes for the session, never while waiting.
	mu   sync.Mutex
	mode writerMode
	// owned is set while the writer's own goroutine runs.
	owned bool
	// pending is what the pump framed and the socket did not take, with
	// its packets: the own goroutine writes it first.
	pending     []byte
	pendingPkts int
	// batch is the pump's scratch list of this session's pictures.
	batch []*stream.AccessUnit
	// recheck checks the token again every Config.Recheck; rechecks
	// counts those running, so that stop can wait for them.
	recheck  *time.Timer
	rechecks sync.WaitGroup

	// video and audio are touched by whichever goroutine writes: the
	// pump under mu, or the own goroutine, which the mode hands them to.
	video, audio track
	// sent counts the bytes written to this client, for Config.Watch.
	sent atomic.Int64
	// done is closed once nothing writes for the session any more: sent
	// is final then (a client may read a packet before the write that
	// sent it has returned).
	done chan struct{}
}

// writerMode says who writes a session's media.
type writerMode int

const (
	modePumped writerMode = iota // the hub's pump, without blocking
	modeOwn                      // the writer's own goroutine
	modeFailed                   // nobody: the connection is closing
	modeEnded                    // nobody: stop has run
)

// ownKeptUp is how many batches in a row the own goroutine must write with
// nothing left queued before it hands the session back to the pump: about
// a second of pictures, so a client on the edge does not flap.
const ownKeptUp = 25

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
// first thing the session gets, and gives the session to the hub's pump.
func (w *writer) start() {
	if w.started || w.stopped {
		return
	}
	w.started = true
	w.pump = w.lease.cache.pump
	w.viewer = w.lease.hub.SubscribeNotify(w.audioChannel >= 0, w.pump.notify)
	w.recheck = time.AfterFunc(w.s.cfg.Recheck, w.checkAccess)
	w.pump.add(w)
}

// stop ends the writer and returns once nobody writes for it any more
// (done is closed then) and no access check runs: the viewer is closed, a
// write in progress ends with the connection, or at its deadline.
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
	w.pump.remove(w)
	w.viewer.Close()
	w.mu.Lock()
	owned := w.owned
	w.mode = modeEnded
	w.mu.Unlock()
	w.recheck.Stop()
	w.rechecks.Wait()
	w.recheck.Stop() // a check that was running may have set it again
	if !owned {
		close(w.done)
	}
	<-w.done
}

// checkAccess checks the session's token again, on the recheck timer's
// goroutine; a revoked token, a disabled account or a narrowed grid scope
// ends the session.
func (w *writer) checkAccess() {
	w.mu.Lock()
	if w.mode == modeEnded {
		w.mu.Unlock()
		return
	}
	w.rechecks.Add(1)
	w.mu.Unlock()
	defer w.rechecks.Done()
	err := w.s.cfg.Access(w.ctx, w.lease.token, w.lease.key.camera)
	if w.ctx.Err() != nil {
		return
	}
	if err != nil {
		w.fail(fmt.Errorf("%w: %s", errRevoked, codeOf(err)))
		return
	}
	w.recheck.Reset(w.s.cfg.Recheck)
}

// errRevoked ends a session whose token no longer grants the camera.
var errRevoked = errors.New("access withdrawn")

// errCodingChanged ends a session whose camera switched between H.264 and
// H.265: the client must DESCRIBE again to learn the new coding.
var errCodingChanged = errors.New("the camera changed its video coding")

// fail logs why the session cannot go on and closes its connection; the
// connection's goroutine then ends the session and releases the lease.
func (w *writer) fail(err error) {
	if w.ctx.Err() != nil {
		return // the session is closing already
	}
	w.mu.Lock()
	if w.mode == modePumped {
		w.mode = modeFailed
	}
	w.mu.Unlock()
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
		log.Info("rtspserve: write to client failed, closing", "err", errText(err))
	}
	// A write may have failed in the middle of a frame: the connection is
	// of no further use in any case.
	_ = w.c.nc.Close()
}

// pumped writes what the session has pending without blocking; the pump
// calls it when the hub has published. What the socket does not take goes
// to the writer's own goroutine.
func (w *writer) pumped() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mode != modePumped {
		return
	}
	batch, err := w.viewer.TryNext(w.batch)
	w.batch = batch
	if err == nil && len(batch) > 0 {
		err = w.send(batch, w.emitPumped)
		clear(batch) // let the pictures go; the hub decides how long they live
	}
	switch {
	case err != nil:
		w.mode = modeFailed
		w.mu.Unlock()
		w.fail(err)
		w.mu.Lock()
	case len(w.pending) > 0:
		w.mode, w.owned = modeOwn, true
		w.pump.remove(w)
		w.viewer.SetNotify(make(chan struct{}, 1))
		w.s.writers.Add(1)
		go w.own()
	}
}

// emitPumped writes a framed chunk without blocking, or keeps it (or its
// rest) pending once the socket has not taken everything.
func (w *writer) emitPumped(b []byte, pkts int) error {
	if len(w.pending) > 0 {
		w.pending = append(w.pending, b...)
		w.pendingPkts += pkts
		return nil
	}
	n, wrote, err := w.c.tryWrite(b)
	if wrote {
		w.counted(n)
	}
	if err != nil {
		return err
	}
	if n < len(b) {
		w.pending = append(w.pending[:0], b[n:]...)
		w.pendingPkts = pkts
		return nil
	}
	w.s.packets.Add(int64(pkts))
	return nil
}

// counted adds n bytes written to the counters.
func (w *writer) counted(n int) {
	w.s.writesN.Add(1)
	w.s.bytes.Add(int64(n))
	w.sent.Add(int64(n))
}

// own is the writer's goroutine while its client lags: it writes what the
// pump left pending, then batch after batch with blocking writes, until the
// client has kept up for ownKeptUp batches and the pump takes over again,
// or the session ends.
func (w *writer) own() {
	defer w.s.writers.Done()
	err := w.ownLoop()
	w.mu.Lock()
	w.owned = false
	if len(w.pending) > 0 {
		// Stopped before the rest of a frame got out: nothing may be
		// written after it.
		w.pending = nil
		w.c.abandonPartial()
	}
	switch {
	case w.mode == modeEnded:
		close(w.done)
		w.mu.Unlock()
		return
	case err == nil:
		w.mode = modePumped
		w.viewer.SetNotify(w.pump.notify)
		w.pump.add(w)
		w.mu.Unlock()
		return
	}
	w.mode = modeFailed
	w.mu.Unlock()
	w.fail(err)
}

// ownLoop writes until the client has kept up, the viewer ends, a write
// fails or the session ends (nil: kept up).
func (w *writer) ownLoop() error {
	ctx := w.ctx
	if len(w.pending) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := w.c.writeRest(w.pending)
		w.counted(n)
		if err != nil {
			return err
		}
		w.s.packets.Add(int64(w.pendingPkts))
		w.pending, w.pendingPkts = nil, 0
	}
	var batch []*stream.AccessUnit
	emit := func(b []byte, pkts int) error { return w.write(ctx, b, pkts) }
	for keptUp := 0; keptUp < ownKeptUp; {
		var err error
		if batch, err = w.viewer.Next(ctx, batch); err != nil {
			return err
		}
		err = w.send(batch, emit)
		last := batch[len(batch)-1].DTS
		clear(batch)
		if err != nil {
			return err
		}
		if w.viewer.Pending() == 0 {
			keptUp++
		} else {
			keptUp = 0
		}
		if w.s.ownChecked != nil {
			w.s.ownChecked(last)
		}
	}
	return nil
}

// send frames a batch of pictures as interleaved RTP and hands it to emit
// in one piece, or in several of about flushBytes for a large batch.
func (w *writer) send(batch []*stream.AccessUnit, emit func(b []byte, pkts int) error) error {
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
			if w.audioChannel < 0 || au.Audio != w.lease.audio && !au.Audio.Equal(w.lease.audio) {
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
			if err := emit(buf, pkts); err != nil {
				*bp = buf
				return err
			}
			buf, pkts = buf[:0], 0
		}
	}
	if len(buf) > 0 {
		if err := emit(buf, pkts); err != nil {
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
	w.counted(n)
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
