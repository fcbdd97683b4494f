package whep

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"gridwatch/camera/camsim"
	"gridwatch/camera/internal/cliptest"
	"gridwatch/camera/stream"
)

// noLeaks checks, after everything else the test set up has been torn
// down, that no goroutine of it is left.
func noLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// publisher plays one of camsim's clips into a hub at 25 pictures a second
// until the test ends.
func publisher(t *testing.T, clip string) *stream.Hub {
	t.Helper()
	aus, params := cliptest.Clip(t, clip)
	hub := stream.NewHub(stream.HubOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(40 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			au := aus[i%len(aus)]
			hub.Publish(&stream.AccessUnit{DTS: int64(i) * 3600, PTS: int64(i) * 3600, Duration: 3600, NALUs: au,
				Key: params.Kind.IsKey(au), Params: params, Received: time.Now()})
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		hub.Close()
	})
	return hub
}

// received is what a viewer got: pictures (by marker bit), whether the
// first one was a keyframe, and when the first packet came.
type received struct {
	mu       sync.Mutex
	mime     string
	pictures int
	firstKey bool
	first    time.Time
	got      chan struct{} // closed at the 25th picture
}

// view is a WHEP viewer (pion, as a browser would be): it offers to receive
// video (H.264, and H.265 when h265), posts the offer to srv and reads what
// comes.
func view(t *testing.T, srv *Server, camera int64, h265 bool) (*Session, *received, time.Time) {
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
	rec := &received{got: make(chan struct{})}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		rec.mu.Lock()
		rec.mime = tr.Codec().MimeType
		rec.mu.Unlock()
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			rec.packet(pkt, tr.Codec().MimeType == webrtc.MimeTypeH265)
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
	asked := time.Now()
	sess, answer, err := srv.Offer(context.Background(), camera, "main", pc.LocalDescription().SDP)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	return sess, rec, asked
}

func (r *received) packet(p *rtp.Packet, h265 bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.first.IsZero() {
		r.first = time.Now()
		// The first packet starts the first picture: a keyframe's
		// parameter set (SPS 7 / VPS 32), alone or aggregated.
		if len(p.Payload) > 3 {
			if h265 {
				t := (p.Payload[0] >> 1) & 0x3f
				if t == 48 { // AP: its first unit's header
					t = (p.Payload[4] >> 1) & 0x3f
				}
				r.firstKey = t == 32 || t == 33 || t == 34 || (t >= 16 && t <= 21)
			} else {
				t := p.Payload[0] & 0x1f
				if t == 24 { // STAP-A
					t = p.Payload[3] & 0x1f
				}
				r.firstKey = t == 7 || t == 8 || t == 5
			}
		}
	}
	if p.Marker {
		r.pictures++
		if r.pictures == 25 {
			close(r.got)
		}
	}
}

// A viewer gets the camera's picture at once (from the cached GOP, a
// keyframe first) and then 25 a second; deleting the session ends it.
func TestWHEPPlaysH264(t *testing.T) {
	noLeaks(t)
	hub := publisher(t, camsim.ClipMain)
	<-time.After(300 * time.Millisecond) // the hub holds part of a GOP: a late joiner
	acquired := map[string]int{}
	var mu sync.Mutex
	srv, err := New(Config{Acquire: func(_ context.Context, _ int64, name string) (*stream.Hub, func(), error) {
		mu.Lock()
		acquired[name]++
		mu.Unlock()
		return hub, func() {}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	sess, rec, asked := view(t, srv, 1, false)
	select {
	case <-rec.got:
	case <-time.After(20 * time.Second):
		t.Fatalf("25 pictures not received in 20 s (%d)", rec.pictures)
	}
	rec.mu.Lock()
	first, firstKey, mime := rec.first.Sub(asked), rec.firstKey, rec.mime
	rec.mu.Unlock()
	t.Logf("first packet %v after the offer was posted", first)
	if !firstKey || mime != webrtc.MimeTypeH264 || sess.Codec != "H264" || sess.Stream != "main" {
		t.Errorf("first picture a keyframe: %v; track %s; session %+v", firstKey, mime, sess)
	}
	if sess.Bytes() == 0 || srv.Sessions() != 1 {
		t.Errorf("session sent %d bytes; %d sessions", sess.Bytes(), srv.Sessions())
	}
	if !srv.Delete(sess.ID) || srv.Sessions() != 0 || srv.Delete(sess.ID) {
		t.Error("delete did not end the session once")
	}
}

// An H.265 camera: as H.265 to a viewer that offers it, else from the
// camera's H.264 transcode.
func TestWHEPH265OrTranscode(t *testing.T) {
	noLeaks(t)
	h265, h264 := publisher(t, camsim.ClipH265), publisher(t, camsim.ClipMain)
	srv, err := New(Config{Acquire: func(_ context.Context, _ int64, name string) (*stream.Hub, func(), error) {
		if name == "h264" {
			return h264, func() {}, nil
		}
		return h265, func() {}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, tc := range []struct {
		offers           bool
		codec, streamWas string
	}{{true, "H265", "main"}, {false, "H264", "h264"}} {
		sess, rec, _ := view(t, srv, 7, tc.offers)
		select {
		case <-rec.got:
		case <-time.After(20 * time.Second):
			t.Fatalf("offer with H.265 %v: 25 pictures not received in 20 s (%d)", tc.offers, rec.pictures)
		}
		rec.mu.Lock()
		firstKey := rec.firstKey
		rec.mu.Unlock()
		if sess.Codec != tc.codec || sess.Stream != tc.streamWas || !firstKey {
			t.Errorf("offer with H.265 %v: session %s from %s, first a keyframe %v; want %s from %s", tc.offers, sess.Codec, sess.Stream, firstKey, tc.codec, tc.streamWas)
		}
		sess.Close()
	}
}

func TestWHEPRefusesBadOffers(t *testing.T) {
	srv, err := New(Config{Acquire: func(context.Context, int64, string) (*stream.Hub, func(), error) {
		t.Fatal("a bad offer acquired a stream")
		return nil, nil, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if _, _, err := srv.Offer(context.Background(), 1, "main", "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"); err == nil {
		t.Error("an offer without video was answered")
	}
}
