package whep

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"gridwatch/camera/camsim"
	"gridwatch/camera/stream"
	"gridwatch/camera/whep/wheptest"
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
	return publisherTB(t, clip)
}

// publisherTB is publisher for a test or a benchmark.
func publisherTB(t testing.TB, clip string) *stream.Hub {
	t.Helper()
	return avHub(t, clip, nil, 0, nil)
}

// view offers straight to srv for the camera's main stream.
func view(t *testing.T, srv *Server, camera int64, h265 bool) (*Session, *wheptest.Viewer) {
	t.Helper()
	var sess *Session
	v := wheptest.Dial(t, h265, func(offer string) (string, error) {
		var answer string
		var err error
		sess, answer, err = srv.Offer(context.Background(), camera, "main", offer)
		return answer, err
	})
	return sess, v
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
	sess, v := view(t, srv, 1, false)
	st := v.Wait(t, 20*time.Second)
	t.Logf("first packet %v after the offer was posted", st.First.Sub(v.Asked))
	if !st.FirstKey || st.Mime != webrtc.MimeTypeH264 || sess.Codec != "H264" || sess.Stream != "main" {
		t.Errorf("first picture a keyframe: %v; track %s; session %+v", st.FirstKey, st.Mime, sess)
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
		sess, v := view(t, srv, 7, tc.offers)
		st := v.Wait(t, 20*time.Second)
		if sess.Codec != tc.codec || sess.Stream != tc.streamWas || !st.FirstKey {
			t.Errorf("offer with H.265 %v: session %s from %s, first a keyframe %v; want %s from %s", tc.offers, sess.Codec, sess.Stream, st.FirstKey, tc.codec, tc.streamWas)
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
