package gb28181

import (
	"time"

	"github.com/pion/rtp"
)

// reorder puts RTP packets that came over UDP back in sequence order. A
// packet ahead of the next expected one waits in a window of reorderSize
// slots; a gap still open when the window fills or its oldest packet has
// waited reorderWait is a loss: the packets after it go on and the
// caller is told (the demultiplexer then resynchronises and the pictures
// wait for a keyframe).
type reorder struct {
	started bool
	next    uint16
	slots   [reorderSize]*rtp.Packet
	at      [reorderSize]time.Time
	held    int
	late    int // packets in a row that came behind next
}

const (
	reorderSize = 64
	reorderWait = 150 * time.Millisecond
)

// push takes a packet and calls out for each packet now in order, with
// lost true on the first one after a gap.
func (r *reorder) push(p *rtp.Packet, now time.Time, out func(p *rtp.Packet, lost bool)) {
	if !r.started {
		r.started, r.next = true, p.SequenceNumber
	}
	d := int16(p.SequenceNumber - r.next)
	if d >= 0 {
		r.late = 0
	}
	switch {
	case d < 0:
		// Late (its slot was given up) or a duplicate: dropped; a run of
		// them is a sender that started its numbers again.
		if r.late++; r.late > reorderSize {
			r.flush(out)
			r.next, r.late = p.SequenceNumber, 0
			out(p, true)
			r.next++
		}
		return
	case int(d) >= reorderSize:
		// Far ahead: everything held is flushed as lost up to it.
		r.flush(out)
		r.next = p.SequenceNumber
		out(p, true)
		r.next++
		return
	}
	i := int(p.SequenceNumber) % reorderSize
	if r.slots[i] != nil {
		return // duplicate
	}
	r.slots[i], r.at[i] = p, now
	r.held++
	r.drain(out, false)
	// A gap left open too long: skip to the oldest held packet.
	for r.held > 0 && r.oldest(now) > reorderWait {
		r.skip()
		r.drain(out, true)
	}
}

// drain hands out the packets in order from next.
func (r *reorder) drain(out func(*rtp.Packet, bool), lost bool) {
	for {
		i := int(r.next) % reorderSize
		p := r.slots[i]
		if p == nil {
			return
		}
		r.slots[i] = nil
		r.held--
		out(p, lost)
		lost = false
		r.next++
	}
}

// skip moves next to the first held packet.
func (r *reorder) skip() {
	for k := 0; k < reorderSize; k++ {
		if r.slots[int(r.next)%reorderSize] != nil {
			return
		}
		r.next++
	}
}

func (r *reorder) oldest(now time.Time) time.Duration {
	var o time.Duration
	for i, p := range r.slots {
		if p != nil && now.Sub(r.at[i]) > o {
			o = now.Sub(r.at[i])
		}
	}
	return o
}

// flush hands out everything held, in order, as after a loss.
func (r *reorder) flush(out func(*rtp.Packet, bool)) {
	for r.held > 0 {
		r.skip()
		r.drain(out, true)
	}
}
