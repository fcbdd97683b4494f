package pull

import (
	"time"

	"gridwatch/camera/stream"
)

// jumpTolerance is how much further a picture's timestamp may be from the
// one before than the time between their arrivals says before it counts
// as a jump of the camera's clock forward (its RTP clock reset, stepped or
// moved by hours). Pictures that come late in a burst move less than their
// timestamps say, never more; pictures dropped up to a keyframe make a
// step of a GOP at most, under it. backTolerance is how far back a
// timestamp may go: pictures in presentation order (B-frames) go back a
// few picture intervals, never a second.
const (
	jumpTolerance = 3 * stream.ClockRate
	backTolerance = stream.ClockRate
)

// timeline maps a session's RTP timestamps onto the stream's continuous
// timeline: unwrapped to 64 bits, starting where the previous session ended.
type timeline struct {
	lastDTS int64 // last DTS handed out, -1 before the first
	lastDur int64
	offset  int64 // added to the unwrapped RTP time of this session
	lastRTP uint32
	ext     int64 // unwrapped RTP time of lastRTP
	started bool  // this session has had its first picture
	// now is the clock arrivals are measured on (time.Now: its monotonic
	// reading is immune to steps of the wall clock); lastAt is when the
	// picture at lastRTP came.
	now    func() time.Time
	lastAt time.Time
}

func newTimeline() *timeline {
	return &timeline{lastDTS: -1, lastDur: stream.ClockRate / 25, now: time.Now}
}

// newSession forgets the RTP clock of the previous session.
func (t *timeline) newSession() { t.started = false }

// unwrap extends a 32-bit RTP timestamp to 64 bits, relative to the
// session. A camera whose clock jumps (forward or back: see
// jumpTolerance and backTolerance) goes on one picture interval after the picture before:
// the viewers' and the recorder's timeline has neither a hole of hours nor
// a step back, and the pictures after the jump are not dropped as out of
// order.
func (t *timeline) unwrap(ts uint32) int64 {
	at := t.now()
	last := t.lastAt
	t.lastAt = at
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
	step := int64(int32(ts - t.lastRTP))
	if arrived := stream.Ticks(at.Sub(last)); step < -backTolerance || step-arrived > jumpTolerance {
		step = t.lastDur
	}
	t.ext += step
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
