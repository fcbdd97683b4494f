package stream_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	"gridwatch/camera/camsim"
	"gridwatch/camera/stream"
)

// testSPS and testPPS are the SPS and PPS of camsim's 320x180 clip.
var testSPS, testPPS = func() ([]byte, []byte) {
	aus, err := camsim.ClipAccessUnits(camsim.ClipSub)
	if err != nil {
		panic(err)
	}
	return aus[0][0], aus[0][1]
}()

func testParams(t testing.TB) *stream.Params {
	t.Helper()
	p, err := stream.NewParams(testSPS, testPPS)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pic is picture i of a stream with a keyframe every gop pictures.
func pic(p *stream.Params, i, gop int) *stream.AccessUnit {
	key := i%gop == 0
	nalus := [][]byte{{0x41, 0x9a, byte(i)}}
	if key {
		nalus = [][]byte{p.SPS, p.PPS, {0x65, 0x88, byte(i)}}
	}
	return &stream.AccessUnit{DTS: int64(i) * 3600, PTS: int64(i) * 3600, Duration: 3600, NALUs: nalus, Key: key, Params: p, Received: time.Now()}
}

func next(t *testing.T, v *stream.Viewer) []*stream.AccessUnit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := v.Next(ctx, nil)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return got
}

func TestParams(t *testing.T) {
	p := testParams(t)
	if p.Width != 320 || p.Height != 180 || !strings.HasPrefix(p.Codec, "avc1.42") || len(p.Codec) != len("avc1.42c00d") {
		t.Errorf("params %+v", p)
	}
	if !p.Same(testSPS, testPPS) || p.Same(testSPS, []byte{0x68, 1}) {
		t.Error("Same")
	}
	for _, bad := range [][2][]byte{{nil, testPPS}, {testPPS, testSPS}, {{0x67, 0xff, 0xff, 0xff}, testPPS}} {
		if _, err := stream.NewParams(bad[0], bad[1]); err == nil {
			t.Errorf("NewParams(%x, %x) accepted", bad[0], bad[1])
		}
	}
}

func TestNewViewerStartsAtCachedKeyframe(t *testing.T) {
	p := testParams(t)
	h := stream.NewHub(stream.HubOptions{})
	for i := 0; i < 33; i++ { // keyframes at 0, 25; 8 pictures after the last
		h.Publish(pic(p, i, 25))
	}
	v := h.Subscribe()
	defer v.Close()
	got := next(t, v)
	if len(got) != 8 || !got[0].Key || got[0].DTS != 25*3600 {
		t.Fatalf("a new viewer got %d pictures from DTS %d (key %v), want the 8 from the keyframe at %d", len(got), got[0].DTS, got[0].Key, 25*3600)
	}
	h.Publish(pic(p, 33, 25))
	if got := next(t, v); len(got) != 1 || got[0].DTS != 33*3600 {
		t.Fatalf("then %d pictures", len(got))
	}
	if n, _ := h.Viewers(); n != 1 {
		t.Errorf("viewers = %d", n)
	}
}

func TestViewerWithoutCacheWaitsForKeyframe(t *testing.T) {
	p := testParams(t)
	h := stream.NewHub(stream.HubOptions{MaxGOP: 5}) // a GOP of 25 does not fit: no cache
	for i := 0; i < 10; i++ {
		h.Publish(pic(p, i, 25))
	}
	v := h.Subscribe()
	defer v.Close()
	for i := 10; i < 26; i++ {
		h.Publish(pic(p, i, 25))
	}
	got := next(t, v)
	if !got[0].Key || got[0].DTS != 25*3600 {
		t.Fatalf("first picture at %d (key %v), want the keyframe at %d", got[0].DTS, got[0].Key, 25*3600)
	}
}

func TestSlowViewerSkipsThenIsDropped(t *testing.T) {
	p := testParams(t)
	h := stream.NewHub(stream.HubOptions{Queue: 10, MaxSkips: 2})
	fast, slow := h.Subscribe(), h.Subscribe()
	defer fast.Close()
	total := 0
	for i := 0; i < 12; i++ { // the slow viewer's queue overflows at 10
		h.Publish(pic(p, i, 5))
		if i%5 == 4 {
			total += len(next(t, fast))
		}
	}
	// The slow viewer skipped: what it holds starts at a keyframe.
	got := next(t, slow)
	if !got[0].Key {
		t.Fatalf("after a skip the slow viewer starts at DTS %d, not a keyframe", got[0].DTS)
	}
	if st := h.Stats(); st.Skips == 0 {
		t.Error("no skip counted")
	}
	// It keeps not reading: more skips, then it is dropped.
	for i := 12; i < 100; i++ {
		h.Publish(pic(p, i, 5))
		if i%5 == 4 {
			total += len(next(t, fast))
		}
	}
	if err := drain(t, slow); !errors.Is(err, stream.ErrSlow) {
		t.Errorf("slow viewer ended with %v, want ErrSlow", err)
	}
	if total != 100 {
		t.Errorf("the fast viewer got %d of 100 pictures", total)
	}
	if st := h.Stats(); st.Drops != 1 || st.Viewers != 1 {
		t.Errorf("stats %+v: want one drop, one viewer left", st)
	}
}

func TestCloseEndsViewers(t *testing.T) {
	p := testParams(t)
	h := stream.NewHub(stream.HubOptions{})
	v := h.Subscribe()
	ready := make(chan *stream.Params, 1)
	go func() {
		got, _ := h.Ready(context.Background())
		ready <- got
	}()
	h.Publish(pic(p, 0, 25))
	if got := <-ready; got != p {
		t.Error("Ready did not return the parameters")
	}
	h.Close()
	if err := drain(t, v); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if err := drain(t, h.Subscribe()); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("subscribing to a closed hub: %v", err)
	}
}

func TestFragments(t *testing.T) {
	p := testParams(t)
	init, err := stream.InitSegment(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(init)); err != nil {
		t.Fatal(err)
	}
	if c, ok := in.Tracks[0].Codec.(*fmp4.CodecH264); !ok || !bytes.Equal(c.SPS, testSPS) || in.Tracks[0].TimeScale != stream.ClockRate {
		t.Fatalf("init %+v", in.Tracks[0])
	}
	aus := []*stream.AccessUnit{pic(p, 25, 25), pic(p, 26, 25), pic(p, 27, 25)}
	frag, err := stream.Fragment(7, aus, 28*3600)
	if err != nil {
		t.Fatal(err)
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(frag); err != nil {
		t.Fatal(err)
	}
	tr := parts[0].Tracks[0]
	if tr.BaseTime != 25*3600 || len(tr.Samples) != 3 {
		t.Fatalf("fragment: base %d, %d samples", tr.BaseTime, len(tr.Samples))
	}
	for i, s := range tr.Samples {
		if s.Duration != 3600 || s.IsNonSyncSample != (i > 0) {
			t.Errorf("sample %d: duration %d, non-sync %v", i, s.Duration, s.IsNonSyncSample)
		}
	}
	// The one-picture fragment is built once and shared.
	a, _ := aus[1].Fragment()
	b, _ := aus[1].Fragment()
	if &a[0] != &b[0] {
		t.Error("a picture's fragment was built twice")
	}
}

// drain reads v until it ends and returns why; reading on for a second
// ends it too (with context.DeadlineExceeded).
func drain(t *testing.T, v *stream.Viewer) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for {
		if _, err := v.Next(ctx, nil); err != nil {
			return err
		}
	}
}
