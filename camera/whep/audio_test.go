package whep

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"gridwatch/camera/camsim"
	"gridwatch/camera/internal/cliptest"
	"gridwatch/camera/stream"
	"gridwatch/camera/whep/wheptest"
)

// allAudio is what a browser's offer receives: Opus, then G.711.
var allAudio = []string{webrtc.MimeTypeOpus, webrtc.MimeTypePCMU, webrtc.MimeTypePCMA}

// newAudio makes an audio track's parameters or fails the test.
func newAudio(t testing.TB, codec stream.AudioCodec, rate, channels int, config *mpeg4audio.AudioSpecificConfig) *stream.Audio {
	t.Helper()
	a, err := stream.NewAudio(codec, rate, channels, config)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// aacAudio is a camera's usual audio: AAC LC at 16 kHz, mono.
func aacAudio(t testing.TB) *stream.Audio {
	t.Helper()
	return newAudio(t, stream.AAC, 0, 0, &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 16000, ChannelCount: 1})
}

// audioPayload is audio frame i's payload, size bytes: i (big-endian) and
// then i's low byte over and over, so that a viewer can tell which frame a
// packet is.
func audioPayload(i, size int) []byte {
	p := bytes.Repeat([]byte{byte(i)}, size)
	binary.BigEndian.PutUint32(p, uint32(i))
	return p
}

// avHub plays one of camsim's clips into a hub at 25 pictures a second and,
// when audio is set, an audio frame of size bytes (audioPayload) every
// 20 ms of audio's clock, the same timeline. trackOf, if given, says the
// track audio frame i is published with (a camera that changed its coding);
// otherwise it is audio. It runs until the test ends.
func avHub(t testing.TB, clip string, audio *stream.Audio, size int, trackOf func(i int) *stream.Audio) *stream.Hub {
	t.Helper()
	aus, params := cliptest.Clip(t, clip)
	hub := stream.NewHub(stream.HubOptions{})
	hub.SetAudio(audio)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			if i%2 == 0 {
				au := aus[i/2%len(aus)]
				hub.Publish(&stream.AccessUnit{DTS: int64(i/2) * 3600, PTS: int64(i/2) * 3600, Duration: 3600, NALUs: au,
					Key: params.Kind.IsKey(au), Params: params, Received: time.Now()})
			}
			if audio != nil {
				a := audio
				if trackOf != nil {
					a = trackOf(i)
				}
				// 20 ms of audio is ClockRate/50 ticks; a longer run
				// (size above it, G.711) lasts what it holds.
				ticks := int64(max(a.ClockRate()/50, size))
				if a.Codec == stream.Opus || a.Codec == stream.AAC {
					ticks = int64(a.ClockRate() / 50)
				}
				hub.Publish(&stream.AccessUnit{Audio: a, Payload: audioPayload(i, size), DTS: int64(i) * ticks, PTS: int64(i) * ticks,
					Duration: ticks, Received: time.Now()})
			}
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

// serverOf is a server whose every stream is hub.
func serverOf(t *testing.T, hub *stream.Hub) *Server {
	t.Helper()
	srv, err := New(Config{Acquire: func(context.Context, int64, string) (*stream.Hub, func(), error) { return hub, func() {}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// viewOffer offers o straight to srv for the camera's main stream.
func viewOffer(t *testing.T, srv *Server, o wheptest.Offer) (*Session, *wheptest.Viewer) {
	t.Helper()
	var sess *Session
	v := wheptest.DialOffer(t, o, func(offer string) (string, error) {
		var answer string
		var err error
		sess, answer, err = srv.Offer(context.Background(), 1, "main", offer)
		return answer, err
	})
	return sess, v
}

// A camera's G.711 (8 kHz mono) or Opus goes to a viewer whose offer
// receives it, on a second track, each frame as it came: the payload type
// is WebRTC's for the codec, the RTP timestamps advance by each frame's
// duration, and the video plays as before. Frames in another coding (the
// camera changed it) are left out; frames of an equal track are not. A
// G.711 run longer than 60 ms goes in pieces, each at its own time.
func TestWHEPSendsAudio(t *testing.T) {
	for _, tc := range []struct {
		name     string
		codec    stream.AudioCodec
		rate, ch int
		size     int // bytes of each frame
		mime     string
		pt       uint8
		other    stream.AudioCodec // the coding the camera switches to now and then
	}{
		{"G.711 A-law", stream.PCMA, 8000, 1, 160, webrtc.MimeTypePCMA, 8, stream.PCMU},
		{"G.711 µ-law", stream.PCMU, 8000, 1, 160, webrtc.MimeTypePCMU, 0, stream.PCMA},
		{"Opus", stream.Opus, 48000, 2, 97, webrtc.MimeTypeOpus, 111, stream.PCMA},
		{"Opus mono", stream.Opus, 48000, 1, 61, webrtc.MimeTypeOpus, 111, stream.PCMU},
		{"G.711 A-law, 150 ms runs", stream.PCMA, 8000, 1, 1200, webrtc.MimeTypePCMA, 8, stream.PCMU},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeaks(t)
			audio := newAudio(t, tc.codec, tc.rate, tc.ch, nil)
			// An equal track the puller might have made anew: carried.
			same := newAudio(t, tc.codec, tc.rate, tc.ch, nil)
			other := newAudio(t, tc.other, 8000, 1, nil)
			hub := avHub(t, camsim.ClipMain, audio, tc.size, func(i int) *stream.Audio {
				switch i % 5 {
				case 2:
					return same
				case 4:
					return other
				}
				return audio
			})
			srv := serverOf(t, hub)
			sess, v := viewOffer(t, srv, wheptest.Offer{Audio: allAudio})
			st := v.Wait(t, 20*time.Second)
			mime, pkts := v.WaitAudio(t, 40, 20*time.Second)
			if !st.FirstKey || st.Mime != webrtc.MimeTypeH264 {
				t.Errorf("video: first a keyframe %v, codec %s; want a keyframe, %s", st.FirstKey, st.Mime, webrtc.MimeTypeH264)
			}
			if sess.Audio != audio.String() || sess.AudioNote != "" {
				t.Errorf("session audio %q, note %q; want %q and no note", sess.Audio, sess.AudioNote, audio.String())
			}
			if mime != tc.mime {
				t.Errorf("audio track codec %s, want %s", mime, tc.mime)
			}
			checkAudio(t, pkts, tc.pt, tc.mime, tc.size)
			sess.Close()
		})
	}
}

// checkAudio checks the audio packets a viewer got: payload type pt, the
// RTP timestamps advancing by each packet's duration (one tick a byte for
// G.711, 20 ms for the test's Opus), and whole frames (size bytes, up to
// 60 ms of G.711) in the order published, none of the frames published in
// another coding (every fifth, from the fifth on), some of those of the
// equal track (every fifth from the third).
func checkAudio(t *testing.T, pkts []*rtp.Packet, pt uint8, mime string, size int) {
	t.Helper()
	piece := size
	if mime != webrtc.MimeTypeOpus && size > maxG711Run {
		piece = size / ((size + maxG711Run - 1) / maxG711Run)
	}
	last, equal := -1, 0
	for k, p := range pkts {
		if p.PayloadType != pt || len(p.Payload) != piece {
			t.Fatalf("packet %d: payload type %d, %d bytes; want %d, %d bytes", k, p.PayloadType, len(p.Payload), pt, piece)
		}
		if k > 0 && p.SequenceNumber == pkts[k-1].SequenceNumber+1 {
			want := uint32(len(pkts[k-1].Payload))
			if mime == webrtc.MimeTypeOpus {
				want = 960
			}
			if got := p.Timestamp - pkts[k-1].Timestamp; got != want {
				t.Errorf("packet %d: timestamp %d after the one before, want %d", k, got, want)
			}
		}
		if piece != size {
			continue
		}
		i := int(binary.BigEndian.Uint32(p.Payload))
		if !bytes.Equal(p.Payload, audioPayload(i, size)) {
			t.Fatalf("packet %d: payload %x is no frame's", k, p.Payload)
		}
		if i <= last {
			t.Errorf("packet %d: frame %d after frame %d", k, i, last)
		}
		if i%5 == 4 {
			t.Errorf("packet %d: frame %d, in another coding, was sent", k, i)
		}
		if i%5 == 2 {
			equal++
		}
		last = i
	}
	if piece == size && equal == 0 {
		t.Error("no frame of the equal track was sent")
	}
}

// The camera's audio that is not sent, and why: AAC (no WebRTC codec),
// G.711 at another rate than 8 kHz, a codec the offer does not receive, an
// offer with no audio at all. The video plays as before each time, and no
// audio track is answered. A camera without audio has no note.
func TestWHEPWithoutAudio(t *testing.T) {
	for _, tc := range []struct {
		name  string
		audio func(testing.TB) *stream.Audio
		offer []string
		note  string // a part of the note
	}{
		{"AAC", aacAudio, allAudio, "the camera's audio (AAC 16 kHz mono) is not playable over WebRTC: MSE/HLS carry it"},
		{"G.711 at 16 kHz", func(t testing.TB) *stream.Audio { return newAudio(t, stream.PCMA, 16000, 1, nil) }, allAudio,
			"(G.711 A-law 16 kHz mono) is not playable over WebRTC"},
		{"Opus only offered, G.711 camera", func(t testing.TB) *stream.Audio { return newAudio(t, stream.PCMU, 8000, 1, nil) },
			[]string{webrtc.MimeTypeOpus}, "the camera's audio (G.711 µ-law 8 kHz mono) is not sent: the offer does not receive G.711 µ-law"},
		{"video-only offer", func(t testing.TB) *stream.Audio { return newAudio(t, stream.PCMA, 8000, 1, nil) }, nil,
			"is not sent: the offer does not receive G.711 A-law"},
		{"no audio", func(testing.TB) *stream.Audio { return nil }, allAudio, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeaks(t)
			hub := avHub(t, camsim.ClipMain, tc.audio(t), 160, nil)
			srv := serverOf(t, hub)
			sess, v := viewOffer(t, srv, wheptest.Offer{Audio: tc.offer})
			st := v.Wait(t, 20*time.Second)
			if !st.FirstKey || st.Mime != webrtc.MimeTypeH264 || sess.Codec != "H264" {
				t.Errorf("video: first a keyframe %v, codec %s, session's %s; want a keyframe, H.264", st.FirstKey, st.Mime, sess.Codec)
			}
			// A second of video has come: audio sent with it would have too.
			if mime, pkts := v.Audio(); mime != "" || len(pkts) != 0 {
				t.Errorf("%d audio packets (%q) came, want none", len(pkts), mime)
			}
			if sess.Audio != "" || !strings.Contains(sess.AudioNote, tc.note) || (tc.note == "") != (sess.AudioNote == "") {
				t.Errorf("session audio %q, note %q; want none, a note with %q", sess.Audio, sess.AudioNote, tc.note)
			}
			sess.Close()
		})
	}
}

// Only an audio medium that receives the codec counts: not a send-only
// or inactive one, not one refused with port 0 (unless bundled), not the
// codec in the video medium. G.711 may be listed by its static payload
// type alone.
func TestOffersAudio(t *testing.T) {
	const video = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n"
	for _, tc := range []struct {
		name  string
		offer string
		mime  string
		want  bool
	}{
		{"no audio", video, webrtc.MimeTypeOpus, false},
		{"Opus", video + "m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8\r\na=recvonly\r\na=rtpmap:111 opus/48000/2\r\n", webrtc.MimeTypeOpus, true},
		{"OPUS, sendrecv", video + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\na=rtpmap:111 OPUS/48000/2\r\n", webrtc.MimeTypeOpus, true},
		{"PCMA by rtpmap", video + "m=audio 9 UDP/TLS/RTP/SAVPF 8\r\na=rtpmap:8 PCMA/8000\r\n", webrtc.MimeTypePCMA, true},
		{"PCMU by static type", video + "m=audio 9 RTP/AVP 0\r\n", webrtc.MimeTypePCMU, true},
		{"PCMA, only PCMU offered", video + "m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n", webrtc.MimeTypePCMA, false},
		{"PCMA at 16 kHz", video + "m=audio 9 RTP/AVP 97\r\na=rtpmap:97 PCMA/16000\r\n", webrtc.MimeTypePCMA, false},
		{"send-only", video + "m=audio 9 RTP/AVP 8\r\na=sendonly\r\n", webrtc.MimeTypePCMA, false},
		{"inactive", video + "m=audio 9 RTP/AVP 8\r\na=inactive\r\n", webrtc.MimeTypePCMA, false},
		{"refused", video + "m=audio 0 RTP/AVP 8\r\n", webrtc.MimeTypePCMA, false},
		{"bundled", video + "m=audio 0 RTP/AVP 8\r\na=bundle-only\r\n", webrtc.MimeTypePCMA, true},
		{"audio first", "v=0\r\nm=audio 9 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\nm=video 9 RTP/AVP 96\r\n", webrtc.MimeTypeOpus, true},
		{"in the video medium", "v=0\r\nm=video 9 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n", webrtc.MimeTypePCMA, false},
		{"second audio medium", video + "m=audio 9 RTP/AVP 8\r\na=sendonly\r\nm=audio 9 RTP/AVP 8\r\na=recvonly\r\n", webrtc.MimeTypePCMA, true},
	} {
		if got := offersAudio(tc.offer, tc.mime); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Of a batch, the audio more than audioBurst older than its newest frame
// is left out: a new viewer's cached GOP does not make it hear a second
// late. A short backlog goes whole, and the video is never left out.
func TestStaleAudio(t *testing.T) {
	a := newAudio(t, stream.PCMA, 8000, 1, nil)
	frames := func(n int) []*stream.AccessUnit {
		var b []*stream.AccessUnit
		for i := range n {
			if i%2 == 0 {
				b = append(b, &stream.AccessUnit{DTS: int64(i) * 1800, Duration: 3600})
			}
			b = append(b, &stream.AccessUnit{Audio: a, DTS: int64(i) * 160, Duration: 160})
		}
		return b
	}
	for _, tc := range []struct {
		name   string
		batch  []*stream.AccessUnit
		stale  int // audio frames left out, the oldest
		frames int
	}{
		{"one frame", frames(1), 0, 1},
		{"a backlog of 100 ms", frames(5), 0, 5},
		// The 12 newest end within 200 ms of the newest frame's start.
		{"a GOP of a second", frames(50), 38, 50},
	} {
		skip := staleAudio(nil, tc.batch)
		stale, n := 0, 0
		for i, au := range tc.batch {
			if au.Audio == nil {
				if skip[i] {
					t.Errorf("%s: picture %d left out", tc.name, i)
				}
				continue
			}
			if skip[i] {
				if n != stale {
					t.Errorf("%s: audio frame %d left out after one sent", tc.name, n)
				}
				stale++
			}
			n++
		}
		if stale != tc.stale || n != tc.frames {
			t.Errorf("%s: %d of %d audio frames left out, want %d", tc.name, stale, n, tc.stale)
		}
	}
}
