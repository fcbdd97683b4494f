package pull

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/pion/rtp"

	"gridwatch/camera/camsim"
	"gridwatch/camera/stream"
)

// packets turns a clip into RTP packets as a camera would send them, from
// RTP time start; maxPayload small makes FU-A runs, large makes STAP-A.
func packets(t testing.TB, clip string, start uint32, maxPayload int, loops int) ([]*rtp.Packet, int) {
	t.Helper()
	aus, err := camsim.ClipAccessUnits(clip)
	if err != nil {
		t.Fatal(err)
	}
	var enc interface {
		Encode([][]byte) ([]*rtp.Packet, error)
	}
	if clip == camsim.ClipH265 {
		e := &rtph265.Encoder{PayloadType: 96, PayloadMaxSize: maxPayload}
		if err := e.Init(); err != nil {
			t.Fatal(err)
		}
		enc = e
	} else {
		e := &rtph264.Encoder{PayloadType: 96, PacketizationMode: 1, PayloadMaxSize: maxPayload}
		if err := e.Init(); err != nil {
			t.Fatal(err)
		}
		enc = e
	}
	var out []*rtp.Packet
	n := 0
	for l := 0; l < loops; l++ {
		for _, au := range aus {
			pkts, err := enc.Encode(au)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pkts {
				p.Timestamp = start + uint32(n)*3600
			}
			out = append(out, pkts...)
			n++
		}
	}
	return out, n
}

func newTestAssembler(t testing.TB, tl *timeline) *assembler {
	t.Helper()
	return newTestAssemblerFor(t, tl, &format.H264{PayloadTyp: 96, PacketizationMode: 1})
}

func newTestAssemblerFor(t testing.TB, tl *timeline, f format.Format) *assembler {
	t.Helper()
	a, err := newAssembler(f, tl, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func feed(a *assembler, pkts []*rtp.Packet) []*stream.AccessUnit {
	var out []*stream.AccessUnit
	for _, p := range pkts {
		out = append(out, a.packet(p)...)
	}
	return out
}

// checkTimeline asserts what every consumer relies on: decode times rise
// strictly, keyframes are IDR pictures carrying their parameter sets, and
// nothing starts before a keyframe.
func checkTimeline(t *testing.T, aus []*stream.AccessUnit) {
	t.Helper()
	if len(aus) == 0 {
		t.Fatal("no pictures")
	}
	if !aus[0].Key {
		t.Fatal("the first picture is not a keyframe")
	}
	for i, au := range aus {
		if i > 0 && au.DTS <= aus[i-1].DTS {
			t.Fatalf("picture %d: DTS %d after %d", i, au.DTS, aus[i-1].DTS)
		}
		k := au.Params.Kind
		if au.Key != k.IsKey(au.NALUs) {
			t.Fatalf("picture %d: Key %v but IDR %v", i, au.Key, k.IsKey(au.NALUs))
		}
		if au.Key {
			for j, set := range au.Params.Sets() {
				if string(au.NALUs[j]) != string(set) {
					t.Fatalf("picture %d: keyframe without its parameter sets in front", i)
				}
			}
		}
	}
}

func TestAssembler(t *testing.T) {
	for _, tc := range []struct {
		name       string
		clip       string
		start      uint32
		maxPayload int
		noMarker   bool
		slices     int // NAL units of a P picture; 0: 1
	}{
		// FU-A fragments for big pictures, the usual case.
		{"fu-a", camsim.ClipMain, 1000, 1400, false, 0},
		// Whole pictures in STAP-A packets: vdk misses these keyframes.
		{"stap-a", camsim.ClipSub, 1000, 60000, false, 0},
		// Four slices a picture: one access unit, not four.
		{"multi-slice", camsim.ClipSlices, 1000, 1400, false, 4},
		// 32 slices a picture: more than mediacommon's decoder takes (25).
		{"32-slices", camsim.ClipSlices32, 1000, 1400, false, 32},
		{"32-slices-no-marker", camsim.ClipSlices32, 1000, 1400, true, 32},
		// H.265: fragmentation units, aggregation packets, no marker.
		{"h265-fu", camsim.ClipH265, 1000, 1400, false, 0},
		{"h265-ap", camsim.ClipH265, 1000, 60000, false, 0},
		{"h265-no-marker", camsim.ClipH265, 1000, 1400, true, 0},
		// The 32-bit RTP clock wraps in the middle.
		{"wrap", camsim.ClipMain, 0xFFFFFFFF - 50*3600, 1400, false, 0},
		// Cameras that set no marker bit: a picture ends when the next
		// one's first packet comes, and keeps its own timestamp.
		{"no-marker", camsim.ClipMain, 1000, 1400, true, 0},
		{"no-marker-stap-a", camsim.ClipSub, 1000, 60000, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkts, n := packets(t, tc.clip, tc.start, tc.maxPayload, 2)
			if tc.noMarker {
				for _, p := range pkts {
					p.Marker = false
				}
				// The last picture waits for a next one that never comes.
				n--
			}
			var f format.Format = &format.H264{PayloadTyp: 96, PacketizationMode: 1}
			if tc.clip == camsim.ClipH265 {
				f = &format.H265{PayloadTyp: 96}
			}
			aus := feed(newTestAssemblerFor(t, newTimeline(), f), pkts)
			if len(aus) != n {
				t.Fatalf("%d pictures out of %d in", len(aus), n)
			}
			checkTimeline(t, aus)
			for i, au := range aus {
				if want := int64(i) * 3600; au.DTS != want {
					t.Fatalf("picture %d: DTS %d, want %d", i, au.DTS, want)
				}
				if want := i%25 == 0; au.Key != want {
					t.Fatalf("picture %d: key %v", i, au.Key)
				}
			}
			if want := max(tc.slices, 1); len(aus[1].NALUs) != want {
				t.Errorf("a P picture has %d NAL units, want %d", len(aus[1].NALUs), want)
			}
			if want := stream.H264; tc.clip == camsim.ClipH265 {
				if aus[0].Params.Kind != stream.H265 || !strings.HasPrefix(aus[0].Params.Codec, "hvc1.") {
					t.Errorf("H.265 clip read as %v, codec %q", aus[0].Params.Kind, aus[0].Params.Codec)
				}
			} else if aus[0].Params.Kind != want {
				t.Errorf("H.264 clip read as %v", aus[0].Params.Kind)
			}
		})
	}
}

func TestAssemblerDropsToNextKeyframeAfterLoss(t *testing.T) {
	pkts, _ := packets(t, camsim.ClipMain, 5000, 1400, 1)
	// Lose one packet in the middle of picture 5's FU-A run (or its only
	// packet): pictures 5..24 cannot decode; 25 (an IDR) can.
	var lossy []*rtp.Packet
	lost := false
	for _, p := range pkts {
		if !lost && p.Timestamp == 5000+5*3600 {
			lost = true
			continue
		}
		lossy = append(lossy, p)
	}
	a := newTestAssembler(t, newTimeline())
	aus := feed(a, lossy)
	checkTimeline(t, aus)
	if len(aus) != 5+75 {
		t.Fatalf("%d pictures, want 5 before the loss and 75 from the next keyframe", len(aus))
	}
	if !aus[5].Key || aus[5].DTS != 25*3600 {
		t.Errorf("after the loss: picture at %d (key %v), want the keyframe at %d", aus[5].DTS, aus[5].Key, 25*3600)
	}
	if a.lost == 0 || a.dropped == 0 {
		t.Errorf("lost %d, dropped %d: the loss went unnoticed", a.lost, a.dropped)
	}
}

func TestTimelineContinuesAcrossSessions(t *testing.T) {
	tl := newTimeline()
	first := feed(newTestAssembler(t, tl), mustPackets(t, 123456))
	tl.newSession()
	// The camera comes back with a clock that has nothing to do with the
	// old one, much lower.
	second := feed(newTestAssembler(t, tl), mustPackets(t, 7))
	all := append(first, second...)
	checkTimeline(t, all)
	if gap := second[0].DTS - first[len(first)-1].DTS; gap != 3600 {
		t.Errorf("the second session starts %d ticks after the first ends, want one picture (3600)", gap)
	}
}

func mustPackets(t *testing.T, start uint32) []*rtp.Packet {
	p, _ := packets(t, camsim.ClipSub, start, 1400, 1)
	return p
}

func TestTimelinePlaceKeepsDTSRising(t *testing.T) {
	tl := newTimeline()
	tl.unwrap(0)
	var last int64 = -1
	// A camera whose clock jumps back, stands still and leaps forward.
	for _, ts := range []int64{0, 3600, 3600, 1000, 7200, 900000} {
		dts, pts, dur := tl.place(ts, ts)
		if dts <= last || pts < dts || dur <= 0 {
			t.Fatalf("ts %d → dts %d pts %d dur %d after %d", ts, dts, pts, dur, last)
		}
		last = dts
	}
}

func TestSessionErrorHidesCredentials(t *testing.T) {
	for _, raw := range []string{
		"rtsp://admin:Hik12345@10.0.0.9:554/ch1",
		"rtsp://10.0.0.9/live?channel=1&Password=Hik12345",
		"rtsp://10.0.0.9/live?passwd=Hik12345",
		"rtsp://10.0.0.9/user=admin&password=Hik12345&channel=1&stream=0.sdp",
		"rtsp://10.0.0.9/user=admin_password=Hik12345_channel=1_stream=0.sdp?real_stream",
	} {
		err := sessionError(raw, fmt.Errorf("dial %s: 401 for password Hik12345", raw))
		if strings.Contains(err.Error(), "Hik12345") {
			t.Errorf("credentials of %s in %q", raw, err)
		}
	}
	// A short username is scrubbed where it stands alone, not from inside
	// the words of the reason an operator reads.
	for _, tc := range []struct{ raw, msg, want string }{
		{"rtsp://cam:pw-Hik12345@10.0.0.9/ch1", "camera 10.0.0.9: 401 for user cam (cam:pw-Hik12345)",
			"camera 10.0.0.9: 401 for user *** (***)"},
		{"rtsp://10.0.0.9/user=cam_password=Hik12345_channel=1", "camera says user=cam_ refused; Hik12345x is not Hik12345",
			"camera says user=***_ refused; Hik12345x is not ***"},
		{"rtsp://admin:admin@10.0.0.9/ch1", "administrator: admin/admin refused by admin", "administrator: ***/*** refused by ***"},
	} {
		if got := sessionError(tc.raw, errors.New(tc.msg)).Error(); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.raw, got, tc.want)
		}
	}
}

// FuzzAssembler feeds damaged RTP packets: whatever arrives, the assembler
// does not panic and what it hands on keeps the timeline's promises.
func FuzzAssembler(f *testing.F) {
	pkts, _ := packets(f, camsim.ClipSub, 0xFFFFF000, 1200, 1)
	for _, p := range pkts[:40] {
		b, _ := p.Marshal()
		f.Add(b, uint8(0))
	}
	f.Fuzz(func(t *testing.T, raw []byte, drop uint8) {
		a := newTestAssembler(t, newTimeline())
		var out []*stream.AccessUnit
		// A valid start, the damaged packet, then valid pictures again.
		seq := append(append([]*rtp.Packet{}, pkts[:20]...), nil)
		seq = append(seq, pkts[20:]...)
		for i, p := range seq {
			if p == nil {
				var bad rtp.Packet
				if bad.Unmarshal(raw) != nil {
					continue
				}
				p = &bad
			} else if drop > 0 && i%int(drop) == 0 {
				continue
			}
			out = append(out, a.packet(p)...)
		}
		for i, au := range out {
			if i > 0 && au.DTS <= out[i-1].DTS {
				t.Fatalf("picture %d: DTS %d after %d", i, au.DTS, out[i-1].DTS)
			}
			if au.Params == nil || au.Key != au.Params.Kind.IsKey(au.NALUs) {
				t.Fatalf("picture %d: key flag or parameters wrong", i)
			}
		}
	})
}

// The gortsplib source hands on the client's packets without copying them
// (see openGortsplib): that is right only while gortsplib gives each packet
// memory of its own. Packets kept while many more arrive must not change.
func TestGortsplibPacketsAreOurs(t *testing.T) {
	sim, err := camsim.New(camsim.Config{N: 1, Addr: "127.0.0.1:0", Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan struct{})
	go func() { defer close(ran); _ = sim.Run(ctx) }()
	defer func() { cancel(); <-ran }()

	sess, err := RTSP{URL: sim.URL(1, "main-pcma"), DialTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second}.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	as, ok := sess.(AudioSession)
	if !ok || as.AudioFormat() == nil {
		t.Fatal("no audio played: the test would not cover the audio packets")
	}
	type kept struct {
		pkt  *rtp.Packet
		copy []byte
	}
	var video, audio []kept
	deadline := time.After(30 * time.Second)
	for len(video) < 300 || len(audio) < 50 {
		select {
		case p := <-sess.Packets():
			video = append(video, kept{p, bytes.Clone(p.Payload)})
		case p := <-as.AudioPackets():
			audio = append(audio, kept{p, bytes.Clone(p.Payload)})
		case <-sess.Done():
			t.Fatalf("session ended: %v", sess.Err())
		case <-deadline:
			t.Fatalf("%d video and %d audio packets in 30 s", len(video), len(audio))
		}
	}
	for name, ks := range map[string][]kept{"video": video, "audio": audio} {
		for i, k := range ks {
			if !bytes.Equal(k.pkt.Payload, k.copy) {
				t.Fatalf("%s packet %d changed after it was handed on: gortsplib now reuses its buffers, so openGortsplib must copy them again", name, i)
			}
		}
	}
}

// A camera whose RTP clock jumps forward by minutes, back by seconds or
// through the 32-bit wrap plays on: every picture is kept, decode times
// rise by one picture interval across each jump, never by the jump.
func TestTimelineClockJumps(t *testing.T) {
	for _, tc := range []struct {
		name string
		jump uint32 // added to the timestamps from the second GOP on
	}{
		{"forward 10 min", 10 * 60 * 90000},
		{"back 30 s", 1<<32 - 30*90000},
		{"back 4 s", 1<<32 - 4*90000},
		{"forward 6 h (past half the 32-bit range)", 6 * 3600 * 90000},
		{"to just before the wrap", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkts, n := packets(t, camsim.ClipMain, 1000, 1400, 1)
			for _, p := range pkts {
				if i := (p.Timestamp - 1000) / 3600; i >= 25 {
					if tc.jump == 0 {
						p.Timestamp = p.Timestamp - 1000 - 25*3600 + (1<<32 - 90000)
					} else {
						p.Timestamp += tc.jump
					}
				}
			}
			tl := newTimeline()
			// Pictures arrive at their pace: 40 ms apart.
			at := time.Now()
			tl.now = func() time.Time { at = at.Add(40 * time.Millisecond); return at }
			aus := feed(newTestAssembler(t, tl), pkts)
			checkTimeline(t, aus)
			if len(aus) != n {
				t.Errorf("%d pictures of %d kept", len(aus), n)
			}
			for i := 1; i < len(aus); i++ {
				if d := aus[i].DTS - aus[i-1].DTS; d != 3600 {
					t.Fatalf("picture %d: %d ticks after the one before, want 3600", i, d)
				}
			}
		})
	}
}
