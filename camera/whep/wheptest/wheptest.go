// Package wheptest is a WHEP viewer for tests: a pion peer connection that
// offers to receive video, as a browser does, and counts what comes.
package wheptest

import (
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Viewer is what a test's WHEP viewer received.
type Viewer struct {
	// Got is closed at the 25th picture.
	Got <-chan struct{}
	// Asked is when the offer was handed to post.
	Asked time.Time

	got      chan struct{}
	mu       sync.Mutex
	mime     string
	pictures int
	firstKey bool
	first    time.Time
}

// Stats are a viewer's figures so far.
type Stats struct {
	Mime     string    // the track's codec
	Pictures int       // pictures (RTP marker bits) received
	FirstKey bool      // the first packet began a keyframe (its parameter sets or an IDR/IRAP slice)
	First    time.Time // when the first packet came
}

// Stats returns the viewer's figures so far.
func (v *Viewer) Stats() Stats {
	v.mu.Lock()
	defer v.mu.Unlock()
	return Stats{Mime: v.mime, Pictures: v.pictures, FirstKey: v.firstKey, First: v.first}
}

// Dial offers to receive video (H.264, and H.265 when h265), hands the
// offer to post, which returns the answer (through the API, or straight to
// a whep.Server), and reads the track until the test ends. onPacket, if
// given, sees every RTP packet as it arrives (on the reading goroutine).
func Dial(t testing.TB, h265 bool, post func(offer string) (string, error), onPacket ...func(*rtp.Packet)) *Viewer {
	t.Helper()
	me := &webrtc.MediaEngine{}
	codecs := []webrtc.RTPCodecParameters{{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, PayloadType: 102}}
	if h265 {
		codecs = append(codecs, webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH265, ClockRate: 90000}, PayloadType: 49})
	}
	for _, c := range codecs {
		if err := me.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			t.Fatal(err)
		}
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(0)
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{})
	v := &Viewer{Got: got, got: got}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		mime := tr.Codec().MimeType
		v.mu.Lock()
		v.mime = mime
		v.mu.Unlock()
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			v.packet(pkt, mime == webrtc.MimeTypeH265)
			for _, f := range onPacket {
				f(pkt)
			}
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	v.Asked = time.Now()
	answer, err := post(pc.LocalDescription().SDP)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	return v
}

// Wait waits for 25 pictures, failing the test after d.
func (v *Viewer) Wait(t testing.TB, d time.Duration) Stats {
	t.Helper()
	select {
	case <-v.Got:
	case <-time.After(d):
		t.Fatalf("25 pictures not received in %v (%+v)", d, v.Stats())
	}
	return v.Stats()
}

func (v *Viewer) packet(p *rtp.Packet, h265 bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.first.IsZero() {
		v.first = time.Now()
		// The first packet starts the first picture: a keyframe's
		// parameter set (SPS 7 / VPS 32) or slice, alone or aggregated.
		if len(p.Payload) > 4 {
			if h265 {
				t := (p.Payload[0] >> 1) & 0x3f
				if t == 48 { // AP: its first unit's header
					t = (p.Payload[4] >> 1) & 0x3f
				}
				v.firstKey = t == 32 || t == 33 || t == 34 || (t >= 16 && t <= 21)
			} else {
				t := p.Payload[0] & 0x1f
				if t == 24 { // STAP-A
					t = p.Payload[3] & 0x1f
				}
				v.firstKey = t == 7 || t == 8 || t == 5
			}
		}
	}
	if p.Marker {
		v.pictures++
		if v.pictures == 25 {
			close(v.got)
		}
	}
}
