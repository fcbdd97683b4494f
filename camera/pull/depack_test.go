package pull

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/pion/rtp"

	"gridwatch/camera/camsim"
	"gridwatch/camera/stream"
)

// An H.265 camera may put more NAL units in a picture than mediacommon's
// cap of 21 (slices, SEI messages): the picture still comes through whole.
func TestAssemblerH265ManyNALUnits(t *testing.T) {
	aus, err := camsim.ClipAccessUnits(camsim.ClipH265)
	if err != nil {
		t.Fatal(err)
	}
	// A prefix SEI (type 39), user data unregistered, 30 times in front of
	// every picture's slices.
	sei := []byte{39 << 1, 1, 5, 17, 0x47, 0x52, 0x49, 0x44, 0x57, 0x41, 0x54, 0x43, 0x48, 0, 0, 0, 0, 0, 0, 0, 0, 0x80}
	enc := &rtph265.Encoder{PayloadType: 96, PayloadMaxSize: 1400}
	if err := enc.Init(); err != nil {
		t.Fatal(err)
	}
	a := newTestAssemblerFor(t, newTimeline(), &format.H265{PayloadTyp: 96})
	var got []*stream.AccessUnit
	for i, au := range aus[:30] {
		var padded [][]byte
		for _, n := range au {
			if stream.H265.ParamSet(n) == "" && len(padded) == len(au)-1 {
				for range 30 {
					padded = append(padded, sei)
				}
			}
			padded = append(padded, n)
		}
		pkts, err := enc.Encode(padded)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pkts {
			p.Timestamp = 9000 + uint32(i)*3600
			got = append(got, a.packet(p)...)
		}
	}
	if len(got) != 30 {
		t.Fatalf("%d pictures out of 30 (lost %d, dropped %d)", len(got), a.lost, a.dropped)
	}
	checkTimeline(t, got)
	if n := len(got[1].NALUs); n != 31 {
		t.Errorf("a P picture has %d NAL units, want 31 (30 SEI and a slice)", n)
	}
}

func TestDepacketizerDamage(t *testing.T) {
	d := depacketizer{kind: stream.H264}
	// An FU-A middle fragment with no start: refused, nothing emitted.
	out, err := d.push(nil, 1, false, []byte{28 | 0x60, 0x05, 1, 2, 3})
	if !errors.Is(err, errDepack) || len(out) != 0 {
		t.Fatalf("fragment without start: %v, %d out", err, len(out))
	}
	// A start, then the next picture before its end: the damaged picture
	// is dropped and said so; the next one, a single NAL unit, comes out.
	if _, err := d.push(nil, 2, false, []byte{28 | 0x60, 0x85, 1, 2}); err != nil {
		t.Fatal(err)
	}
	out, err = d.push(nil, 3, true, []byte{0x65, 9, 9})
	if !errors.Is(err, errDepack) || len(out) != 1 || out[0].ts != 3 {
		t.Fatalf("lost end fragment: %v; the next picture: %+v", err, out)
	}
	// A STAP-A whose unit overruns the packet.
	if _, err := d.push(nil, 4, true, []byte{24, 0, 9, 0x67, 1}); !errors.Is(err, errDepack) {
		t.Fatalf("overrunning STAP-A: %v", err)
	}
	// H.265 PACI and a truncated header.
	d5 := depacketizer{kind: stream.H265}
	if _, err := d5.push(nil, 1, true, []byte{50 << 1, 1, 0, 0}); !errors.Is(err, errDepack) {
		t.Fatalf("PACI: %v", err)
	}
	if _, err := d5.push(nil, 2, true, []byte{1 << 1}); !errors.Is(err, errDepack) {
		t.Fatalf("short H.265 payload: %v", err)
	}
}

// A fragmented NAL unit comes out whole, in an array of its own exactly its
// size (it is kept with the cached pictures), never in the buffer the
// fragments are gathered in, which the next fragmented unit reuses.
func TestDepacketizerFragments(t *testing.T) {
	for _, c := range []struct {
		kind   stream.Kind
		header []byte // the NAL unit header the FU stands for
		fu     func(start, end bool, data []byte) []byte
	}{
		{stream.H264, []byte{0x65}, func(start, end bool, data []byte) []byte {
			h := byte(5)
			if start {
				h |= 0x80
			}
			if end {
				h |= 0x40
			}
			return append([]byte{28 | 0x60, h}, data...)
		}},
		{stream.H265, []byte{19 << 1, 1}, func(start, end bool, data []byte) []byte {
			h := byte(19)
			if start {
				h |= 0x80
			}
			if end {
				h |= 0x40
			}
			return append([]byte{49 << 1, 1, h}, data...)
		}},
	} {
		d := depacketizer{kind: c.kind}
		// Two fragmented units of one picture, the second longer, each in
		// fragments of 1000 bytes.
		var want [][]byte
		var out []unit
		for i, size := range []int{2500, 7300} {
			body := make([]byte, size)
			for j := range body {
				body[j] = byte(i*7 + j)
			}
			want = append(want, append(slices.Clone(c.header), body...))
			for off := 0; off < size; off += 1000 {
				var err error
				last := off+1000 >= size
				out, err = d.push(out, 1, i == 1 && last, c.fu(off == 0, last, body[off:min(off+1000, size)]))
				if err != nil {
					t.Fatalf("%v: %v", c.kind, err)
				}
			}
		}
		if len(out) != 1 || len(out[0].nalus) != 2 {
			t.Fatalf("%v: %+v, want one picture of two NAL units", c.kind, out)
		}
		for i, n := range out[0].nalus {
			if !bytes.Equal(n, want[i]) || cap(n) != len(n) {
				t.Errorf("%v: NAL unit %d: %d bytes (capacity %d), want %d", c.kind, i, len(n), cap(n), len(want[i]))
			}
		}
		if cap(d.scratch) == 0 {
			t.Errorf("%v: the fragment buffer was not kept", c.kind)
		}
		// A unit larger than maxScratch: its buffer is not kept.
		big := make([]byte, maxScratch+1)
		if _, err := d.push(nil, 2, false, c.fu(true, false, big[:len(big)/2])); err != nil {
			t.Fatal(err)
		}
		out, err := d.push(nil, 2, true, c.fu(false, true, big[len(big)/2:]))
		if err != nil || len(out) != 1 || len(out[0].nalus[0]) != len(c.header)+len(big) {
			t.Fatalf("%v: large unit: %v, %+v", c.kind, err, out)
		}
		if cap(d.scratch) != 0 {
			t.Errorf("%v: a fragment buffer of %d bytes was kept", c.kind, cap(d.scratch))
		}
	}
}

// A picture grown past maxAUSize by fragments is refused, and so are its
// packets still to come; the next picture comes through.
func TestDepacketizerFragmentTooLarge(t *testing.T) {
	d := depacketizer{kind: stream.H264}
	chunk := make([]byte, 64<<10)
	_, err := d.push(nil, 1, false, append([]byte{28 | 0x60, 0x85}, chunk...))
	for n := len(chunk); err == nil && n <= maxAUSize; n += len(chunk) {
		_, err = d.push(nil, 1, false, append([]byte{28 | 0x60, 0x05}, chunk...))
	}
	if !errors.Is(err, errDepack) {
		t.Fatalf("a fragmented unit over %d bytes: %v", maxAUSize, err)
	}
	if out, err := d.push(nil, 1, true, []byte{28 | 0x60, 0x45, 1}); err != nil || len(out) != 0 {
		t.Fatalf("the rest of the refused picture: %v, %+v", err, out)
	}
	out, err := d.push(nil, 2, true, []byte{28 | 0x60, 0xc5, 1, 2})
	if err != nil || len(out) != 1 || !bytes.Equal(out[0].nalus[0], []byte{0x65, 1, 2}) {
		t.Fatalf("the next picture: %v, %+v", err, out)
	}
}

// A packet lost inside a keyframe: the rest of that keyframe is dropped
// (never published short of slices), and so is every picture up to the
// next keyframe; a loss just before a keyframe's first packet costs nothing.
func TestAssemblerDropsDamagedKeyframe(t *testing.T) {
	pkts, _ := packets(t, camsim.ClipSlices32, 7000, 1400, 1)
	drop := func(pic int, nth int) []*rtp.Packet {
		var out []*rtp.Packet
		seen := 0
		for _, p := range pkts {
			if p.Timestamp == 7000+uint32(pic)*3600 {
				if seen == nth {
					seen++
					continue
				}
				seen++
			}
			out = append(out, p)
		}
		return out
	}
	// The third packet of keyframe 25 (one of its 32 slices) is lost.
	aus := feed(newTestAssembler(t, newTimeline()), drop(25, 2))
	checkTimeline(t, aus)
	if len(aus) != 25+50 || aus[25].DTS != 50*3600 || !aus[25].Key {
		t.Fatalf("%d pictures; after the loss the first is at %d (key %v); want 25, then the keyframe at %d", len(aus), aus[min(25, len(aus)-1)].DTS, aus[min(25, len(aus)-1)].Key, 50*3600)
	}
	for _, au := range aus {
		if au.Key && len(au.NALUs) != 2+32 {
			t.Fatalf("keyframe at %d has %d NAL units, want SPS, PPS and 32 slices", au.DTS, len(au.NALUs))
		}
	}
}

// FuzzDepacketizer: whatever the payloads, no panic, and every picture
// handed on holds non-empty NAL units within the bounds.
func FuzzDepacketizer(f *testing.F) {
	f.Add(false, []byte{28 | 0x60, 0x85, 1, 2}, []byte{28 | 0x60, 0x45, 3}, []byte{24, 0, 2, 0x67, 1, 0, 1, 0x68})
	f.Add(true, []byte{49 << 1, 1, 0x93, 1}, []byte{49 << 1, 1, 0x53, 2}, []byte{48 << 1, 1, 0, 3, 0x40, 1, 7})
	f.Fuzz(func(t *testing.T, h265 bool, p1, p2, p3 []byte) {
		d := depacketizer{kind: stream.H264}
		if h265 {
			d.kind = stream.H265
		}
		var out []unit
		var kept [][]byte // copies of the NAL units as they came out
		for i, p := range [][]byte{p1, p2, p3, p1, p3} {
			n := len(out)
			out, _ = d.push(out, uint32(i/2), i%2 == 1, p)
			for _, u := range out[n:] {
				for _, nalu := range u.nalus {
					kept = append(kept, slices.Clone(nalu))
				}
			}
		}
		// A NAL unit handed on is never changed by later packets (it
		// must not share the fragment buffer).
		i := 0
		for _, u := range out {
			for _, nalu := range u.nalus {
				if !bytes.Equal(nalu, kept[i]) {
					t.Fatalf("NAL unit %d changed after it was handed on", i)
				}
				i++
			}
		}
		for _, u := range out {
			if len(u.nalus) == 0 || len(u.nalus) > maxNALUs {
				t.Fatalf("a picture of %d NAL units", len(u.nalus))
			}
			for _, n := range u.nalus {
				if len(n) == 0 {
					t.Fatal("an empty NAL unit")
				}
			}
		}
	})
}
