package live

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/pion/rtp"

	"gridwatch/camera/camsim"
	"gridwatch/camera/internal/rtsptest"
	"gridwatch/camera/pull"
	"gridwatch/camera/rtspserve"
	"gridwatch/camera/stream"
	"gridwatch/camera/whep"
	"gridwatch/camera/whep/wheptest"
)

// BenchmarkLatency is camera-to-viewer latency through each output: the
// simulated camera stamps each picture's send time in an SEI message
// (camsim.Config.StampSEI), every output carries it through, and a client
// of each reads it back when the whole picture has arrived. Loopback, one
// camera (H.264 640x360, 25 fps), b.N pictures per output; p50 and p95.
//   - rtsp: the RTSP re-serve, read by gortsplib's client (TCP);
//   - webrtc: WHEP, read by a pion viewer (the picture's last packet);
//   - mse: the fMP4 messages ServeMSE writes, taken as they are written
//     (no socket: the WebSocket adds a loopback write);
//   - hls: when a picture can first be fetched — its segment finished and
//     listed (segments of about 2 s cut at keyframes): the floor under any
//     HLS player's latency, which adds its own buffer (typically three
//     segments) on top.
func BenchmarkLatency(b *testing.B) {
	r := newRig(b, camsim.Config{N: 1, Addr: "127.0.0.1:0", StampSEI: true}, Config{Idle: time.Minute})
	hub, release, err := r.m.Acquire(context.Background(), 1, Main)
	if err != nil {
		b.Fatal(err)
	}
	defer release()
	rctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := hub.Ready(rctx); err != nil {
		b.Fatal(err)
	}
	// The cached GOP is old by the time a viewer reads it: measure from
	// the first keyframe sent after the viewer joined.
	b.Run("rtsp", func(b *testing.B) {
		srv, err := rtspserve.New(rtspserve.Config{Addr: "127.0.0.1:0",
			Access:  func(context.Context, string, int64) error { return nil },
			Acquire: r.m.Acquire})
		if err != nil {
			b.Fatal(err)
		}
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { _ = srv.Run(ctx) })
		defer func() { stop(); wg.Wait() }()
		p := rtsptest.Play(b, fmt.Sprintf("rtsp://%s/cameras/1", srv.Addr()))
		skipCached := time.Now()
		var lat []time.Duration
		b.ResetTimer()
		for len(lat) < b.N {
			au := p.Next(b)
			if at, ok := camsim.SEITime(stream.H264, au.NALUs); ok && at.After(skipCached) {
				lat = append(lat, au.At.Sub(at))
			}
		}
		b.StopTimer()
		p.Close()
		reportLatency(b, lat)
	})
	b.Run("webrtc", func(b *testing.B) {
		srv, err := whep.New(whep.Config{Acquire: r.m.Acquire})
		if err != nil {
			b.Fatal(err)
		}
		defer srv.Close()
		var mu sync.Mutex
		var lat []time.Duration
		var stamp time.Time
		enough := make(chan struct{})
		joined := time.Now()
		want := b.N
		wheptest.Dial(b, false, func(offer string) (string, error) {
			_, answer, err := srv.Offer(context.Background(), 1, Main, offer)
			return answer, err
		}, func(pkt *rtp.Packet) {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if at, ok := rtpSEITime(pkt.Payload); ok {
				stamp = at
			}
			if pkt.Marker && !stamp.IsZero() && stamp.After(joined) && len(lat) < want {
				lat = append(lat, now.Sub(stamp))
				if len(lat) == want {
					close(enough)
				}
			}
		})
		b.ResetTimer()
		select {
		case <-enough:
		case <-time.After(time.Duration(want)*time.Second/10 + 30*time.Second):
			b.Fatalf("only %d pictures over WebRTC", len(lat))
		}
		b.StopTimer()
		mu.Lock()
		defer mu.Unlock()
		reportLatency(b, lat)
	})
	b.Run("mse", func(b *testing.B) {
		conn := newRecConn()
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		joined := time.Now()
		go func() {
			defer close(done)
			_ = ServeMSE(ctx, hub, conn, func() (pull.State, bool) { return r.m.State(1, Main) }, MSEOptions{})
		}()
		var lat []time.Duration
		b.ResetTimer()
		seen := 0
		for len(lat) < b.N {
			select {
			case <-conn.got:
			case <-time.After(10 * time.Second):
				b.Fatalf("MSE: no message for 10 s (%d pictures)", len(lat))
			}
			msgs := conn.snapshot()
			for _, m := range msgs[seen:] {
				if m.text {
					continue
				}
				lat = append(lat, seiLatencies(m.data, joined, m.at)...) // nothing from the init segment
			}
			seen = len(msgs)
		}
		b.StopTimer()
		stop()
		<-done
		reportLatency(b, lat[:b.N])
	})
	b.Run("hls", func(b *testing.B) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute+time.Duration(b.N)*time.Second/10)
		defer cancel()
		h, err := r.m.HLS(ctx, 1, Main)
		if err != nil {
			b.Fatal(err)
		}
		joined := time.Now()
		var lat []time.Duration
		last := -1
		b.ResetTimer()
		for len(lat) < b.N {
			h.mu.Lock()
			segs, changed, ferr := h.segs, h.changed, h.err
			h.mu.Unlock()
			now := time.Now()
			for _, sg := range segs {
				if sg.seq <= last {
					continue
				}
				last = sg.seq
				lat = append(lat, seiLatencies(sg.data, joined, now)...) // none from pictures sent before joining
			}
			if ferr != nil {
				b.Fatalf("HLS: %v", ferr)
			}
			if len(lat) >= b.N {
				break
			}
			select {
			case <-changed:
			case <-ctx.Done():
				b.Fatalf("HLS: %d pictures in time", len(lat))
			}
		}
		b.StopTimer()
		h.touch()
		reportLatency(b, lat[:b.N])
	})
}

// seiLatencies reads the pictures of fMP4 fragments (moof+mdat, one or
// many) and returns, for each stamped after joined, how long before at it
// was sent; nothing for what is not a fragment (an init segment).
func seiLatencies(data []byte, joined, at time.Time) []time.Duration {
	var parts fmp4.Parts
	if parts.Unmarshal(data) != nil {
		return nil
	}
	var out []time.Duration
	for _, pt := range parts {
		for _, tr := range pt.Tracks {
			for _, smp := range tr.Samples {
				var au h264.AVCC
				if au.Unmarshal(smp.Payload) != nil {
					continue
				}
				if sent, ok := camsim.SEITime(stream.H264, au); ok && sent.After(joined) {
					out = append(out, at.Sub(sent))
				}
			}
		}
	}
	return out
}

// rtpSEITime reads the SEI stamp from an RTP payload that carries it: a
// single NAL unit or one unit of a STAP-A.
func rtpSEITime(p []byte) (time.Time, bool) {
	if len(p) < 1 {
		return time.Time{}, false
	}
	if p[0]&0x1f != 24 {
		return camsim.SEITime(stream.H264, [][]byte{p})
	}
	for off := 1; off+2 <= len(p); {
		n := int(p[off])<<8 | int(p[off+1])
		off += 2
		if off+n > len(p) {
			break
		}
		if at, ok := camsim.SEITime(stream.H264, [][]byte{p[off : off+n]}); ok {
			return at, true
		}
		off += n
	}
	return time.Time{}, false
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		b.Fatal("no picture measured")
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(p(0.5), "p50-ms")
	b.ReportMetric(p(0.95), "p95-ms")
	b.ReportMetric(0, "ns/op")
}
