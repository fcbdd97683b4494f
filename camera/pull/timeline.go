package pull

import "gridwatch/camera/stream"

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
