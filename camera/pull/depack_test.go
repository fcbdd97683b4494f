package pull

import (
	"errors"
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
		for i, p := range [][]byte{p1, p2, p3, p1, p3} {
			out, _ = d.push(out, uint32(i/2), i%2 == 1, p)
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
