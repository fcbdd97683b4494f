package pull

import (
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"

	"gridwatch/camera/stream"
)

func g711Track(t *testing.T, channels int) *audioTrack {
	t.Helper()
	dp, err := newAudioDepacketizer(&format.G711{PayloadTyp: 8, SampleRate: 8000, ChannelCount: channels})
	if err != nil {
		t.Fatal(err)
	}
	return newAudioTrack(dp)
}

func g711Packet(ts uint32, n int) *rtp.Packet {
	return &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 8, Timestamp: ts}, Payload: make([]byte, n)}
}

// The sound is placed by arrival once, then runs on the camera's clock:
// regular packets follow each other exactly, whatever their arrival jitter;
// a small step back is absorbed without drifting later; a jump of the
// camera's clock is not believed.
func TestAudioTrackTiming(t *testing.T) {
	tr := g711Track(t, 1)
	t0 := time.Now()
	pic := &stream.AccessUnit{PTS: 90000, Received: t0} // a picture at 1 s
	at := func(ts uint32, arrival time.Duration) *stream.AccessUnit {
		t.Helper()
		out := tr.packet(g711Packet(ts, 160), pic, t0.Add(arrival))
		if len(out) != 1 {
			t.Fatalf("packet at %d: %d frames", ts, len(out))
		}
		return out[0]
	}
	if tr.packet(g711Packet(1000, 160), nil, t0) != nil {
		t.Fatal("sound before any picture was kept")
	}
	first := at(1000, 20*time.Millisecond)
	if first.DTS != 8000+160 || first.Duration != 160 {
		t.Fatalf("first frame at %d for %d, want 8160 (the picture's 1 s and 20 ms) for 160", first.DTS, first.Duration)
	}
	// Jittered arrivals change nothing: the camera's clock rules.
	for i, jitter := range []time.Duration{70, 10, 55, 38} {
		f := at(1000+uint32(i+1)*160, jitter*time.Millisecond)
		if want := first.DTS + int64(i+1)*160; f.DTS != want {
			t.Errorf("frame %d at %d, want %d", i+1, f.DTS, want)
		}
	}
	// A frame stamped 2 ms early overlaps the last: it starts where that
	// ended, and the next is back on the camera's clock.
	f := at(1000+5*160-16, 100*time.Millisecond)
	if want := first.DTS + 5*160; f.DTS != want {
		t.Errorf("an early frame at %d, want %d (the end of the last)", f.DTS, want)
	}
	if f := at(1000+6*160, 120*time.Millisecond); f.DTS != first.DTS+6*160 {
		t.Errorf("after the early one: %d, want %d: the sound drifted", f.DTS, first.DTS+6*160)
	}
	// The camera's clock leaps half of 2^32 ahead: placed by arrival again.
	f = at(1000+6*160+1<<31-1, 140*time.Millisecond)
	if want := int64(8000 + 140*8); f.DTS < want || f.DTS > want+2*160 || tr.resets != 1 {
		t.Errorf("after the leap: %d (resets %d), want about %d", f.DTS, tr.resets, want)
	}
	if f2 := at(1000+7*160+1<<31-1, 160*time.Millisecond); f2.DTS != f.DTS+160 {
		t.Errorf("the frame after the leap at %d, want %d", f2.DTS, f.DTS+160)
	}
}

// Whatever a camera sends, a packet gives whole frames or none.
func TestAudioTrackOddPayloads(t *testing.T) {
	tr := g711Track(t, 2)
	pic := &stream.AccessUnit{PTS: 0, Received: time.Now()}
	for _, n := range []int{0, 1, 3, 321} {
		out := tr.packet(g711Packet(uint32(n), n), pic, time.Now())
		for _, f := range out {
			if len(f.Payload)%2 != 0 || len(f.Payload) == 0 || f.Duration != int64(len(f.Payload)/2) {
				t.Errorf("%d bytes of stereo G.711 gave a frame of %d bytes lasting %d", n, len(f.Payload), f.Duration)
			}
		}
	}
}
