package camsim

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/pion/rtp"
)

// encoder is gortsplib's H.264 or H.265 RTP packetiser.
type encoder interface {
	Encode(au [][]byte) ([]*rtp.Packet, error)
}

const (
	frameRate     = 25
	frameDuration = time.Second / frameRate
	clockRate     = 90000
	ticksPerFrame = clockRate / frameRate // 3600
	// lossRate is the share of RTP packets FaultLoss drops.
	lossRate = 0.03
	// maxCatchUp is how many late frames a pacer still sends in a burst
	// (after a GC pause, say); beyond it, it skips ahead like a camera whose
	// encoder dropped frames.
	maxCatchUp = clipGOP
)

// feed is one stream of one camera: a gortsplib ServerStream plus the
// goroutine that paces the clip into it.
//
// The frame clock is wall time: frame i is due at epoch + i*40ms and carries
// RTP timestamp start + i*3600 (mod 2^32). The epoch is fixed when the feed
// is first watched, so the first reader ever gets frame 0 (an IDR) with the
// configured StartTimestamp; later the clock keeps running whether or not
// anyone watches, so RTP time, RTCP sender reports and RTP-Info agree with
// wall time the way a real camera's do. Frames are only encoded and sent
// while the stream has readers.
//
// A stream with audio has a second medium on the same clock (see
// audioTrack): the pacer sends, after video frame i, the audio frames that
// start before frame i+1 is due, so the first reader gets audio frame 0
// with video frame 0, and audio is never more than a video frame ahead.
type feed struct {
	cam   *camera
	name  string
	clip  *clip           // normal clip
	alt   map[Fault]*clip // served in a fault mode instead (FaultSlices…), if any
	media *description.Media
	start uint32
	audio *audioTrack // the audio medium, for the streams with audio; else nil

	stream *gortsplib.ServerStream // set by Run before serving

	readers atomic.Int32  // playing sessions; changed under Sim.mu
	wake    chan struct{} // cap 1: readers went 0 -> 1
	frames  atomic.Int64  // access units sent

	// Owned by the pacer goroutine (run).
	enc   encoder
	rng   *rand.Rand
	cur   *clip // clip of the current GOP
	epoch time.Time
	next  int64 // index of the next frame to send
	// seen is the fault the pacer last sent in, so that a timestamp
	// fault jumps once, when it begins; tsOff is what the jumps added to
	// the video's RTP timestamps.
	seen  Fault
	tsOff uint32
}

// The timestamp faults' jumps, in 90 kHz ticks.
const (
	tsJumpTicks = 10 * 60 * clockRate // FaultTSJump: 10 minutes forward
	tsBackTicks = 30 * clockRate      // FaultTSBack: 30 s back
	tsWrapLead  = 2 * clockRate       // FaultTSWrap: 2 s before the wrap
)

// medias returns the stream's media: the video, then the audio if any.
func (f *feed) medias() []*description.Media {
	if f.audio != nil {
		return []*description.Media{f.media, f.audio.media}
	}
	return []*description.Media{f.media}
}

func (f *feed) addReader() {
	if f.readers.Add(1) == 1 {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
}

func (f *feed) removeReader() { f.readers.Add(-1) }

// due returns when frame i is due.
func (f *feed) due(i int64) time.Time { return f.epoch.Add(time.Duration(i) * frameDuration) }

// lastDue returns the index of the last frame due at t (-1 before the epoch).
func (f *feed) lastDue(t time.Time) int64 {
	if t.Before(f.epoch) {
		return -1
	}
	return int64(t.Sub(f.epoch) / frameDuration)
}

// run paces the feed until ctx ends. While the feed has no reader it sleeps
// on the wake channel and costs nothing.
func (f *feed) run(ctx context.Context, log *slog.Logger) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		for f.readers.Load() == 0 {
			select {
			case <-ctx.Done():
				return
			case <-f.wake:
			}
		}
		now := time.Now()
		if f.epoch.IsZero() {
			// First frame one frame period from now: PLAY has returned and
			// the session is an active reader by then, so it gets the IDR.
			f.epoch = now.Add(frameDuration)
		} else if last := f.lastDue(now); f.next <= last {
			// Resume with the next frame due: no burst of stale frames.
			f.next = last + 1
		}
		timer.Reset(time.Until(f.due(f.next)))
		for f.readers.Load() > 0 {
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			last := f.lastDue(time.Now())
			if last-f.next > maxCatchUp {
				f.next = last
			}
			for ; f.next <= last; f.next++ {
				f.send(f.next, log)
			}
			timer.Reset(time.Until(f.due(f.next)))
		}
		timer.Stop() // Go 1.23+ timers: no stale tick survives Stop and Reset
	}
}

// send writes video frame i to the stream and, for a stream with audio,
// the audio frames that start before frame i+1 is due, subject to the
// fault: one pacer and one clock for both media.
func (f *feed) send(i int64, log *slog.Logger) {
	fault := f.cam.currentFault()
	if fault != f.seen {
		f.seen = fault
		switch fault {
		case FaultTSJump:
			f.tsOff += tsJumpTicks
		case FaultTSBack:
			f.tsOff -= tsBackTicks
		case FaultTSWrap:
			// The next picture's timestamp is tsWrapLead before 2^32.
			f.tsOff = uint32(1<<32-tsWrapLead) - (f.start + uint32(i)*ticksPerFrame)
		}
	}
	if i%clipGOP == 0 {
		// Switch clips only at an IDR, so a reader never decodes P-frames
		// against the other clip's pictures.
		f.cur = f.clip
		if alt := f.alt[fault]; alt != nil {
			f.cur = alt
		}
	}
	if fault == FaultStall || fault == FaultDisconnect {
		return
	}
	if fault == FaultNoKey && i%clipGOP == 0 {
		// The keyframe and its parameter sets are left out; the sound goes on.
		if f.audio != nil {
			f.sendAudio(i, fault, log)
		}
		return
	}
	f.sendVideo(i, fault, log)
	if f.audio != nil && fault != FaultMute {
		f.sendAudio(i, fault, log)
	}
}

// sendVideo encodes video frame i and writes it to the stream.
func (f *feed) sendVideo(i int64, fault Fault, log *slog.Logger) {
	au := f.cur.aus[i%int64(len(f.cur.aus))]
	ntp := f.due(i)
	if f.cam.stamp {
		au = withSEI(f.cur.kind, au, time.Now())
	}
	pkts, err := f.enc.Encode(au)
	if err != nil {
		log.Error("camsim: encode", "camera", f.cam.n, "stream", f.name, "err", err)
		return
	}
	// uint32 arithmetic wraps at 2^32 as RTP timestamps do.
	ts := f.start + uint32(i)*ticksPerFrame + f.tsOff
	// Counted before the first packet goes out, so a reader that has the
	// whole picture always finds it counted.
	f.frames.Add(1)
	for _, pkt := range pkts {
		pkt.Timestamp = ts
		if fault == FaultLoss && f.rng.Float64() < lossRate {
			continue // sequence number consumed: a real gap
		}
		if err := f.stream.WritePacketRTPWithNTP(f.media, pkt, ntp); err != nil {
			log.Debug("camsim: write", "camera", f.cam.n, "stream", f.name, "err", err)
			return
		}
	}
}

// sendAudio writes the audio frames that start in [due(i), due(i+1)),
// each with its own NTP time so that RTCP sender reports map its RTP time
// to wall time exactly. Frames that start earlier and were not sent (the
// pacer skipped ahead, or the camera stalled) are skipped too, as a camera
// drops the audio it could not send: RTP time keeps to wall time.
func (f *feed) sendAudio(i int64, fault Fault, log *slog.Logger) {
	a := f.audio
	a.next = max(a.next, a.firstAt(i))
	for end := a.firstAt(i + 1); a.next < end; a.next++ {
		k := a.next
		pkts, err := a.pack(a.clip.frames[k%int64(len(a.clip.frames))])
		if err != nil {
			log.Error("camsim: encode audio", "camera", f.cam.n, "stream", f.name, "err", err)
			continue
		}
		ts, ntp := a.timestamp(k), f.epoch.Add(a.offset(k))
		a.frames.Add(1) // before the packets, as for video
		for _, pkt := range pkts {
			pkt.Timestamp += ts // the packetiser's are relative to the frame
			if fault == FaultLoss && a.rng.Float64() < lossRate {
				continue
			}
			if err := f.stream.WritePacketRTPWithNTP(a.media, pkt, ntp); err != nil {
				log.Debug("camsim: write audio", "camera", f.cam.n, "stream", f.name, "err", err)
				return
			}
		}
	}
}
