// Package wheptest is a WHEP viewer for tests: a pion peer connection that
// offers to receive video, and audio if asked, as a browser does, and
// counts what comes.
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

	// heard is signalled (without blocking) at each audio packet.
	heard     chan struct{}
	audioMime string
	audio     []*rtp.Packet
}

// Offer is what a viewer offers to receive.
type Offer struct {
	// H265 offers H.265 besides H.264.
	H265 bool
	// Audio are the audio codecs offered (webrtc.MimeTypeOpus,
	// MimeTypePCMU, MimeTypePCMA) with the payload types browsers give
	// them; none: no audio medium, as a video-only player offers.
	Audio []string
}

// audioCodecs are the audio codecs a viewer may offer, as Chrome and
// Firefox offer them.
var audioCodecs = map[string]webrtc.RTPCodecParameters{
	webrtc.MimeTypeOpus: {RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
		SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111},
	webrtc.MimeTypePCMU: {RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, PayloadType: 0},
	webrtc.MimeTypePCMA: {RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMA, ClockRate: 8000}, PayloadType: 8},
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
// given, sees every RTP packet of the video as it arrives (on the reading
// goroutine).
func Dial(t testing.TB, h265 bool, post func(offer string) (string, error), onPacket ...func(*rtp.Packet)) *Viewer {
	t.Helper()
	return DialOffer(t, Offer{H265: h265}, post, onPacket...)
}

// DialOffer is Dial for an offer that may receive audio too; the audio
// packets are kept (Audio, WaitAudio), not given to onPacket.
func DialOffer(t testing.TB, o Offer, post func(offer string) (string, error), onPacket ...func(*rtp.Packet)) *Viewer {
	t.Helper()
	me := &webrtc.MediaEngine{}
	codecs := []webrtc.RTPCodecParameters{{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, PayloadType: 102}}
	if o.H265 {
		codecs = append(codecs, webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH265, ClockRate: 90000}, PayloadType: 49})
	}
	for _, c := range codecs {
		if err := me.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			t.Fatal(err)
		}
	}
	for _, mime := range o.Audio {
		c, ok := audioCodecs[mime]
		if !ok {
			t.Fatalf("wheptest: no audio codec %q", mime)
		}
		if err := me.RegisterCodec(c, webrtc.RTPCodecTypeAudio); err != nil {
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
	if len(o.Audio) > 0 {
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan struct{})
	v := &Viewer{Got: got, got: got, heard: make(chan struct{}, 1)}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		mime := tr.Codec().MimeType
		if tr.Kind() == webrtc.RTPCodecTypeAudio {
			v.readAudio(tr)
			return
		}
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

// readAudio keeps the audio track's packets until the connection closes.
func (v *Viewer) readAudio(tr *webrtc.TrackRemote) {
	v.mu.Lock()
	v.audioMime = tr.Codec().MimeType
	v.mu.Unlock()
	for {
		// ReadRTP unmarshals into a buffer of its own each time: the
		// packet may be kept.
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		v.mu.Lock()
		v.audio = append(v.audio, pkt)
		v.mu.Unlock()
		select {
		case v.heard <- struct{}{}:
		default:
		}
	}
}

// Audio returns the audio track's codec ("" before it is known) and the
// audio packets received so far, in order of arrival.
func (v *Viewer) Audio() (string, []*rtp.Packet) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.audioMime, append([]*rtp.Packet(nil), v.audio...)
}

// WaitAudio waits for n audio packets, failing the test after d, and
// returns what Audio does.
func (v *Viewer) WaitAudio(t testing.TB, n int, d time.Duration) (string, []*rtp.Packet) {
	t.Helper()
	deadline := time.After(d)
	for {
		mime, pkts := v.Audio()
		if len(pkts) >= n {
			return mime, pkts
		}
		select {
		case <-v.heard:
		case <-deadline:
			t.Fatalf("%d audio packets not received in %v (%d came, codec %q)", n, d, len(pkts), mime)
		}
	}
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
