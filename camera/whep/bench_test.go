package whep

import (
	"context"
	"sort"
	"testing"
	"time"

	"gridwatch/camera/camsim"
	"gridwatch/camera/stream"
	"gridwatch/camera/whep/wheptest"
)

// BenchmarkFirstPicture is a late joiner's wait over WebRTC: from posting
// the offer (ICE, DTLS and SRTP set up on loopback) to the first RTP packet
// of the first picture, a keyframe from the hub's cache, while the camera
// is halfway through a 1 s GOP. Each iteration is a new viewer; p50 and
// p95 are reported. A relay without a GOP cache waits for the camera's next
// keyframe: half a GOP on average, a whole one at worst.
func BenchmarkFirstPicture(b *testing.B) {
	hub := publisherTB(b, camsim.ClipMain)
	<-time.After(500 * time.Millisecond) // half a GOP into the clip: a late joiner
	srv, err := New(Config{Acquire: func(context.Context, int64, string) (*stream.Hub, func(), error) { return hub, func() {}, nil }})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	var waits []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var sess *Session
		v := wheptest.Dial(b, false, func(offer string) (string, error) {
			var answer string
			var err error
			sess, answer, err = srv.Offer(context.Background(), 1, "main", offer)
			return answer, err
		})
		for v.Stats().First.IsZero() {
			select {
			case <-sess.Done():
				b.Fatal("the session ended before its first packet")
			case <-time.After(time.Millisecond):
			}
		}
		st := v.Stats()
		if !st.FirstKey {
			b.Fatal("the first picture is not a keyframe")
		}
		waits = append(waits, st.First.Sub(v.Asked))
		sess.Close()
	}
	b.StopTimer()
	sort.Slice(waits, func(i, j int) bool { return waits[i] < waits[j] })
	p := func(q float64) float64 { return float64(waits[int(q*float64(len(waits)-1))].Microseconds()) / 1000 }
	b.ReportMetric(p(0.5), "p50-ms")
	b.ReportMetric(p(0.95), "p95-ms")
	b.ReportMetric(0, "ns/op")
}
