package pull

import "time"

// keyWatch decides how long a session waits for a keyframe before it gives
// up on the camera. A fixed wait does not fit the cameras in the field: in
// a "smart" encoding mode (H.264+, H.265+) a camera stretches its GOP to
// 10 s or more when the scene is still, and a 15 s watchdog then
// reconnects it in a loop. So the wait is learnt: the longest of the last
// few GOPs (by the wall-clock arrival of their keyframes, the clock the
// watchdog runs on), times gops, and never less than floor nor more than
// ceiling. Until a GOP is known, a wait that ran out doubles for the next
// session, so a camera whose first GOP outlasts the floor is learnt after
// a reconnect or two instead of never; and a camera whose GOP stretches
// beyond what was learnt (day to night) widens the wait the same way.
type keyWatch struct {
	floor, ceiling time.Duration
	gops           float64

	last    time.Time        // the session's previous keyframe
	recent  [8]time.Duration // the last GOPs, a ring
	n       int              // GOPs recorded, up to len(recent)
	next    int              // where the next one goes
	unknown time.Duration    // the wait while no GOP is known (grows on misses)
}

// newSession forgets the previous session's last keyframe: the gap across a
// reconnect is not a GOP.
func (k *keyWatch) newSession() { k.last = time.Time{} }

// key records a keyframe that arrived at t.
func (k *keyWatch) key(t time.Time) {
	if !k.last.IsZero() && t.After(k.last) {
		k.recent[k.next] = t.Sub(k.last)
		k.next = (k.next + 1) % len(k.recent)
		k.n = min(k.n+1, len(k.recent))
	}
	k.last = t
}

// gop is the longest recent GOP, 0 while none is known.
func (k *keyWatch) gop() time.Duration {
	var g time.Duration
	for _, d := range k.recent[:k.n] {
		g = max(g, d)
	}
	return g
}

// wait is how long to wait for the next keyframe.
func (k *keyWatch) wait() time.Duration {
	w := max(k.floor, k.unknown)
	if g := k.gop(); g > 0 {
		w = max(k.floor, time.Duration(float64(g)*k.gops))
	}
	return min(w, k.ceiling)
}

// missed notes that a session's wait ran out. Before a GOP is known the
// wait doubles; after, the camera's GOP is now longer than the wait allowed
// (a still night scene in a smart mode stretches it), so the wait itself
// counts as a GOP seen: the next wait is gops times it.
func (k *keyWatch) missed() {
	w := k.wait()
	if k.gop() == 0 {
		k.unknown = min(2*max(k.floor, k.unknown), k.ceiling)
		return
	}
	k.recent[k.next] = w
	k.next = (k.next + 1) % len(k.recent)
	k.n = min(k.n+1, len(k.recent))
}
