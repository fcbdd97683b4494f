package rtspserve

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"gridwatch"
	"gridwatch/camera/camsim"
	"gridwatch/camera/stream"

	"gridwatch/camera/internal/rtsptest"
	"gridwatch/internal/testtool"
)

var smallClip = clipSpec{size: "320x180"}

// A new client's first picture is the cached keyframe, at once: the source
// is paused, so the next keyframe never comes. After that it receives every
// picture, byte for byte, with rising timestamps.
func TestPlayStartsFromCachedGOP(t *testing.T) {
	c := testClip(t, smallClip)
	e := startEnv(t, envOptions{})
	src := newSource(e.main, c)
	src.publish(5) // a keyframe and 4 pictures after it, then nothing

	start := time.Now()
	p := rtsptest.Play(t, e.url("/cameras/1", goodToken))
	if got := e.srv.Stats().Sessions; got != 1 {
		t.Errorf("Stats().Sessions = %d while playing, want 1", got)
	}
	first := p.Next(t)
	if wait := time.Since(start); wait > 500*time.Millisecond {
		t.Errorf("first picture after %v, want it at once (< 500ms; the next keyframe is 1 s away)", wait)
	}
	if !stream.H264.IsKey(first.NALUs) {
		t.Fatalf("first picture is not an IDR: NAL types %v", naluTypes(first.NALUs))
	}
	if !slices.EqualFunc(first.NALUs, c.pics[0].nalus, bytes.Equal) {
		t.Fatalf("first picture differs from the published keyframe")
	}
	for i := 1; i < 5; i++ {
		au := p.Next(t)
		if d := int64(au.TS - first.TS); d != int64(i)*3600 {
			t.Fatalf("cached picture %d: timestamp +%d, want +%d", i, d, i*3600)
		}
	}

	// Live from here: every picture arrives, intact, in order.
	src.run(t, 10*time.Millisecond)
	prev := first.TS + 4*3600
	for range 60 {
		au := p.Next(t)
		if d := int32(au.TS - prev); d <= 0 {
			t.Fatalf("timestamp went from %d to %d", prev, au.TS)
		}
		prev = au.TS
		pts := int64(au.TS - first.TS)
		if pts%3600 != 0 {
			t.Fatalf("timestamp +%d is not on the 25 fps grid", pts)
		}
		if want := src.picture(pts); !slices.EqualFunc(au.NALUs, want.nalus, bytes.Equal) {
			t.Fatalf("picture at +%d differs from the one published", pts)
		}
	}
	if n := p.DecodeErrors.Load(); n != 0 {
		t.Errorf("%d RTP packets did not decode", n)
	}
	st := e.srv.Stats()
	if st.Packets == 0 || st.Bytes == 0 || st.Writes == 0 || st.Writes > st.Packets {
		t.Errorf("Stats = %+v, want packets, bytes and no more writes than packets", st)
	}
	p.Close()
	e.fakes.waitRelease(t, 1)
	if got := e.srv.Stats().Sessions; got != 0 {
		t.Errorf("Stats().Sessions = %d after the client left, want 0", got)
	}
}

// Two clients of one hub get their own SSRC and sequence numbers.
func TestSessionsHaveOwnSSRC(t *testing.T) {
	c := testClip(t, smallClip)
	e := startEnv(t, envOptions{})
	src := newSource(e.main, c)
	src.publish(1)
	p1 := rtsptest.Play(t, e.url("/cameras/1", goodToken))
	p2 := rtsptest.Play(t, e.url("/cameras/1", goodToken))
	a, b := p1.Next(t), p2.Next(t)
	if a.SSRC == b.SSRC {
		t.Errorf("both sessions have SSRC %08x", a.SSRC)
	}
	if !slices.EqualFunc(a.NALUs, b.NALUs, bytes.Equal) {
		t.Errorf("the sessions got different first pictures")
	}
}

// Each session has the SSRC its SETUP announced, its own gapless sequence
// numbers, and starts with a sender report tying its timestamps to the
// wall clock; packets of two sessions differ only in their headers.
func TestRTPHeaders(t *testing.T) {
	c := testClip(t, smallClip)
	e := startEnv(t, envOptions{})
	src := newSource(e.main, c)
	src.publish(25) // a whole GOP: keyframe, big pictures, FU-A

	type sess struct {
		ssrc     uint32
		payloads [][]byte
	}
	var got [2]sess
	for i := range got {
		rc := dialRaw(t, e.srv.Addr(), 0)
		if res := rc.do(t, base.Describe, e.url("/cameras/1", goodToken), nil); res.StatusCode != base.StatusOK {
			t.Fatalf("DESCRIBE: %d", res.StatusCode)
		}
		setup := rc.setupPlay(t, e, "/cameras/1", goodToken)
		var th headers.Transport
		if err := th.Unmarshal(setup.Header["Transport"]); err != nil || th.SSRC == nil {
			t.Fatalf("SETUP Transport %q: %v, want an ssrc", setup.Header["Transport"], err)
		}
		got[i].ssrc = *th.SSRC

		f := rc.frame(t)
		if f.Channel != 1 {
			t.Fatalf("first frame on channel %d, want a sender report on 1", f.Channel)
		}
		pkts, err := rtcp.Unmarshal(f.Payload)
		sr, ok := pkts[0].(*rtcp.SenderReport)
		if err != nil || !ok || sr.SSRC != got[i].ssrc {
			t.Fatalf("first RTCP %v, %v: want a sender report of SSRC %08x", pkts, err, got[i].ssrc)
		}
		var prev *rtp.Packet
		for pics := 0; pics < 25; {
			f := rc.frame(t)
			if f.Channel != 0 {
				continue
			}
			var p rtp.Packet
			if err := p.Unmarshal(f.Payload); err != nil {
				t.Fatalf("RTP: %v", err)
			}
			if p.SSRC != got[i].ssrc {
				t.Fatalf("SSRC %08x, SETUP said %08x", p.SSRC, got[i].ssrc)
			}
			if prev == nil && p.Timestamp != sr.RTPTime {
				t.Errorf("first RTP timestamp %d, sender report said %d", p.Timestamp, sr.RTPTime)
			}
			if prev != nil && p.SequenceNumber != prev.SequenceNumber+1 {
				t.Fatalf("sequence number %d after %d", p.SequenceNumber, prev.SequenceNumber)
			}
			if p.PayloadType != payloadType {
				t.Fatalf("payload type %d", p.PayloadType)
			}
			prev = &p
			got[i].payloads = append(got[i].payloads, p.Payload)
			if p.Marker {
				pics++
			}
		}
	}
	if got[0].ssrc == got[1].ssrc {
		t.Errorf("both sessions have SSRC %08x", got[0].ssrc)
	}
	if len(got[0].payloads) != len(got[1].payloads) {
		t.Fatalf("%d and %d packets for the same pictures", len(got[0].payloads), len(got[1].payloads))
	}
	for i := range got[0].payloads {
		if !bytes.Equal(got[0].payloads[i], got[1].payloads[i]) {
			t.Fatalf("payload %d differs between sessions", i)
		}
	}
}

// The packet cache is bounded in pictures and bytes, and packetises a
// picture it no longer holds again.
func TestPacketCacheBounds(t *testing.T) {
	c, err := newPacketCache()
	if err != nil {
		t.Fatal(err)
	}
	au := func(size int) *stream.AccessUnit {
		n := make([]byte, size)
		n[0] = byte(h264.NALUTypeNonIDR)
		return &stream.AccessUnit{NALUs: [][]byte{n}}
	}
	first := au(100)
	p1, _ := c.packets(first)
	if p2, _ := c.packets(first); &p1[0] != &p2[0] {
		t.Error("a cached picture was packetised again")
	}
	for range 3 * cachePictures {
		if _, err := c.packets(au(100)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.entries); n != cachePictures || len(c.fifo)-c.head != n {
		t.Errorf("%d entries, fifo %d, want %d", n, len(c.fifo)-c.head, cachePictures)
	}
	if cap(c.fifo) > 4*cachePictures {
		t.Errorf("fifo capacity %d keeps growing", cap(c.fifo))
	}
	if _, ok := c.entries[first]; ok {
		t.Error("the oldest picture was not evicted")
	}
	for range 10 {
		if _, err := c.packets(au(cacheBytes / 4)); err != nil {
			t.Fatal(err)
		}
	}
	if c.bytes > cacheBytes {
		t.Errorf("%d bytes cached, bound %d", c.bytes, cacheBytes)
	}
	if p3, _ := c.packets(first); len(p3) != 1 || !bytes.Equal(p3[0].Payload, first.NALUs[0]) {
		t.Error("an evicted picture did not packetise again")
	}
}

// The sub stream is its own hub; the SETUP without DESCRIBE path admits
// the client itself.
func TestSubStreamAndSetupWithoutDescribe(t *testing.T) {
	c := testClip(t, smallClip)
	e := startEnv(t, envOptions{})
	newSource(e.sub, c).publish(3)

	p := rtsptest.Play(t, e.url("/cameras/1/sub", goodToken))
	if au := p.Next(t); !stream.H264.IsKey(au.NALUs) {
		t.Fatalf("first picture of the sub stream is not an IDR")
	}
	e.fakes.mu.Lock()
	got := e.fakes.order[0]
	e.fakes.mu.Unlock()
	if got != (key{camMain, StreamSub}) {
		t.Errorf("acquired %v, want camera 1 sub", got)
	}

	// SETUP straight away, on a fresh connection: authorised and acquired
	// there, released when the connection goes.
	rc := dialRaw(t, e.srv.Addr(), 0)
	rc.setupPlay(t, e, "/cameras/1/sub", goodToken)
	if f := rc.frame(t); f.Channel != 0 && f.Channel != 1 {
		t.Fatalf("frame on channel %d, want 0 (RTP) or 1 (RTCP)", f.Channel)
	}
	_ = rc.nc.Close()
	e.fakes.waitRelease(t, 2)
}

// ffprobe, an independent client, reads the stream and decodes frames: with
// the token in the query, as Basic credentials, and with ffmpeg's default
// transport order (UDP, answered 461, then TCP).
func TestFFprobe(t *testing.T) {
	requireTool(t, "ffprobe")
	c := testClip(t, smallClip)
	e := startEnv(t, envOptions{})
	src := newSource(e.main, c)
	src.publish(1)
	src.run(t, 40*time.Millisecond)

	basic := "rtsp://viewer:" + goodToken + "@" + e.srv.Addr() + "/cameras/1"
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"query token", []string{"-rtsp_transport", "tcp", e.url("/cameras/1", goodToken)}},
		{"basic credentials", []string{"-rtsp_transport", "tcp", basic}},
		{"default transports", []string{e.url("/cameras/1", goodToken)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := testtool.FFprobe(t, append([]string{"-rw_timeout", "10000000", "-select_streams", "v:0",
				"-show_entries", "stream=codec_name,width,height"}, tc.args...)...)
			if len(got.Streams) != 1 || got.Streams[0].CodecName != "h264" ||
				got.Streams[0].Width != 320 || got.Streams[0].Height != 180 {
				t.Fatalf("ffprobe streams = %+v, want one h264 320x180", got.Streams)
			}
		})
	}

	t.Run("frames decode", func(t *testing.T) {
		got := testtool.FFprobe(t, "-rw_timeout", "10000000", "-rtsp_transport", "tcp", "-select_streams", "v:0", "-count_frames",
			"-read_intervals", "%+2", "-show_entries", "stream=nb_read_frames", e.url("/cameras/1", goodToken))
		if len(got.Streams) != 1 {
			t.Fatalf("ffprobe streams = %+v", got.Streams)
		}
		if n, err := strconv.Atoi(got.Streams[0].ReadFrames); err != nil || n < 25 {
			t.Fatalf("ffprobe decoded %q frames in 2 s of stream, want >= 25", got.Streams[0].ReadFrames)
		}
	})
}

// An H.265 camera is re-served as H.265 (RFC 7798, its VPS, SPS and PPS in
// the SDP): ffprobe reads hevc 640x360 and decodes its pictures.
func TestFFprobeH265(t *testing.T) {
	requireTool(t, "ffprobe")
	e := startEnv(t, envOptions{})
	src := newSource(e.main, camsimClip(t, camsim.ClipH265))
	src.publish(1)
	src.run(t, 40*time.Millisecond)
	got := testtool.FFprobe(t, "-rw_timeout", "10000000", "-rtsp_transport", "tcp", "-select_streams", "v:0", "-count_frames",
		"-read_intervals", "%+2", "-show_entries", "stream=codec_name,width,height,nb_read_frames", e.url("/cameras/1", goodToken))
	if len(got.Streams) != 1 || got.Streams[0].CodecName != "hevc" || got.Streams[0].Width != 640 || got.Streams[0].Height != 360 {
		t.Fatalf("ffprobe streams = %+v, want one hevc 640x360", got.Streams)
	}
	if n, err := strconv.Atoi(got.Streams[0].ReadFrames); err != nil || n < 25 {
		t.Fatalf("ffprobe decoded %q frames in 2 s of stream, want >= 25", got.Streams[0].ReadFrames)
	}
}

// Access decides before anything touches a camera: 401 with a Basic
// challenge without a valid token, 403 when the token may not see the
// camera, 404 for an unknown camera or a path that is not a camera's.
func TestAccess(t *testing.T) {
	c := testClip(t, smallClip)
	e := startEnv(t, envOptions{readyTimeout: 300 * time.Millisecond})
	newSource(e.main, c).publish(1)
	newSource(e.other, c).publish(1)
	basic := func(user, pass string) base.Header {
		return base.Header{"Authorization": base.HeaderValue{"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}}
	}
	for _, tc := range []struct {
		name    string
		path    string
		tok     string
		hdr     base.Header
		want    base.StatusCode
		acquire bool // whether the camera may be acquired
	}{
		{"no token", "/cameras/1", "", nil, base.StatusUnauthorized, false},
		{"bad token", "/cameras/1", badToken, nil, base.StatusUnauthorized, false},
		{"bad basic password", "/cameras/1", "", basic("viewer", badToken), base.StatusUnauthorized, false},
		{"forbidden", "/cameras/1", forbiddenToken, nil, base.StatusForbidden, false},
		{"forbidden basic", "/cameras/1", "", basic("x", forbiddenToken), base.StatusForbidden, false},
		{"unknown camera", "/cameras/99", goodToken, nil, base.StatusNotFound, false},
		{"no such stream", "/cameras/3", goodToken, nil, base.StatusNotFound, false},
		{"unavailable", "/cameras/4", goodToken, nil, base.StatusServiceUnavailable, false},
		{"never ready", "/cameras/5", goodToken, nil, base.StatusServiceUnavailable, true},
		{"query token", "/cameras/1", goodToken, nil, base.StatusOK, true},
		{"basic token", "/cameras/2", "", basic("anyone", goodToken), base.StatusOK, true},
		{"basic empty user", "/cameras/1/sub", "", basic("", goodToken), base.StatusServiceUnavailable, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			acq0, _ := e.fakes.counts()
			rc := dialRaw(t, e.srv.Addr(), 0)
			res := rc.do(t, base.Describe, e.url(tc.path, tc.tok), tc.hdr)
			if res.StatusCode != tc.want {
				t.Fatalf("DESCRIBE %s: status %d, want %d", tc.path, res.StatusCode, tc.want)
			}
			if tc.want == base.StatusUnauthorized {
				if ch := res.Header["WWW-Authenticate"]; len(ch) != 1 || !strings.HasPrefix(ch[0], "Basic ") {
					t.Errorf("WWW-Authenticate = %q, want a Basic challenge", ch)
				}
			}
			if tc.want == base.StatusOK {
				sdp := string(res.Body)
				for _, want := range []string{"m=video", "H264/90000", "packetization-mode=1", "sprop-parameter-sets="} {
					if !strings.Contains(sdp, want) {
						t.Errorf("SDP lacks %q:\n%s", want, sdp)
					}
				}
			}
			if acq, _ := e.fakes.counts(); !tc.acquire && acq != acq0 {
				t.Errorf("camera acquired on a %d", tc.want)
			}
			_ = rc.nc.Close()
		})
	}
	// Every acquisition made above is released with its connection.
	acq, _ := e.fakes.counts()
	for n := 1; n <= acq; n++ {
		e.fakes.waitRelease(t, n)
	}
}

// Paths that are not /cameras/{id}[/sub] are 404, before Access is asked.
func TestBadPaths(t *testing.T) {
	e := startEnv(t, envOptions{})
	for _, path := range []string{"/", "/cameras", "/cameras/", "/cameras/abc", "/cameras/01", "/cameras/+1",
		"/cameras/-1", "/cameras/0", "/cameras/1/main", "/cameras/1/xyz", "/cameras/1/sub/x", "/cams/1",
		"/cameras/99999999999999999999", "/cameras/1//sub"} {
		t.Run(path, func(t *testing.T) {
			rc := dialRaw(t, e.srv.Addr(), 0)
			if res := rc.do(t, base.Describe, e.url(path, goodToken), nil); res.StatusCode != base.StatusNotFound {
				t.Errorf("DESCRIBE %s: %d, want 404", path, res.StatusCode)
			}
		})
	}
	if n := e.fakes.accesses.Load(); n != 0 {
		t.Errorf("Access called %d times for bad paths", n)
	}
}

// A gortsplib client with credentials in the URL answers the challenge
// with Basic and plays.
func TestBasicCredentialsPlay(t *testing.T) {
	c := testClip(t, smallClip)
	e := startEnv(t, envOptions{})
	newSource(e.main, c).publish(2)
	p := rtsptest.Play(t, "rtsp://someone:"+goodToken+"@"+e.srv.Addr()+"/cameras/1")
	if au := p.Next(t); !stream.H264.IsKey(au.NALUs) {
		t.Fatal("first picture is not an IDR")
	}
	if _, err := rtsptest.TryPlay("rtsp://someone:" + badToken + "@" + e.srv.Addr() + "/cameras/1"); rtsptest.StatusOf(err) != base.StatusUnauthorized {
		t.Errorf("bad password: %v, want 401", err)
	}
}

// Every acquisition is released exactly once, whichever way the client
// goes (the env's cleanup checks the counts; each case waits for its own).
func TestReleaseOnce(t *testing.T) {
	c := testClip(t, smallClip)
	e := startEnv(t, envOptions{})
	newSource(e.main, c).publish(1)
	newSource(e.other, c).publish(1)
	next := 0 // acquisitions so far
	acquired := func(t *testing.T, n int) {
		t.Helper()
		next += n
		if got, _ := e.fakes.counts(); got != next {
			t.Fatalf("%d acquisitions, want %d", got, next)
		}
	}

	t.Run("describe then close", func(t *testing.T) {
		rc := dialRaw(t, e.srv.Addr(), 0)
		rc.do(t, base.Describe, e.url("/cameras/1", goodToken), nil)
		acquired(t, 1)
		_ = rc.nc.Close()
		e.fakes.waitRelease(t, next)
	})
	t.Run("describe twice, then another camera", func(t *testing.T) {
		rc := dialRaw(t, e.srv.Addr(), 0)
		rc.do(t, base.Describe, e.url("/cameras/1", goodToken), nil)
		rc.do(t, base.Describe, e.url("/cameras/1", goodToken), nil)
		acquired(t, 1) // the same stream again on the same connection: held once
		rc.do(t, base.Describe, e.url("/cameras/2", goodToken), nil)
		acquired(t, 1)
		e.fakes.waitRelease(t, next-1) // camera 1, replaced
		_ = rc.nc.Close()
		e.fakes.waitRelease(t, next)
	})
	t.Run("setup then close", func(t *testing.T) {
		rc := dialRaw(t, e.srv.Addr(), 0)
		rc.do(t, base.Describe, e.url("/cameras/1", goodToken), nil)
		res := rc.do(t, base.Setup, e.url("/cameras/1/trackID=0", goodToken),
			base.Header{"Transport": base.HeaderValue{"RTP/AVP/TCP;unicast;interleaved=0-1"}})
		if res.StatusCode != base.StatusOK {
			t.Fatalf("SETUP: %d", res.StatusCode)
		}
		acquired(t, 1) // SETUP took DESCRIBE's over
		_ = rc.nc.Close()
		e.fakes.waitRelease(t, next)
	})
	t.Run("play then teardown", func(t *testing.T) {
		rc := dialRaw(t, e.srv.Addr(), 0)
		rc.play(t, e, "/cameras/1", goodToken)
		acquired(t, 1)
		rc.frame(t)
		rc.do(t, base.Teardown, e.url("/cameras/1", goodToken), nil)
		e.fakes.waitRelease(t, next)
		// The connection outlives its session; closing it releases nothing more.
		_ = rc.nc.Close()
	})
	t.Run("play then close", func(t *testing.T) {
		rc := dialRaw(t, e.srv.Addr(), 0)
		rc.play(t, e, "/cameras/1", goodToken)
		acquired(t, 1)
		rc.frame(t)
		_ = rc.nc.Close()
		e.fakes.waitRelease(t, next)
	})
	t.Run("setup refused transport", func(t *testing.T) {
		rc := dialRaw(t, e.srv.Addr(), 0)
		rc.do(t, base.Describe, e.url("/cameras/1", goodToken), nil)
		acquired(t, 1)
		res := rc.do(t, base.Setup, e.url("/cameras/1/trackID=0", goodToken),
			base.Header{"Transport": base.HeaderValue{"RTP/AVP;unicast;client_port=5000-5001"}})
		if res.StatusCode != base.StatusUnsupportedTransport {
			t.Fatalf("SETUP over UDP: %d, want 461", res.StatusCode)
		}
		_ = rc.nc.Close()
		e.fakes.waitRelease(t, next)
	})
	t.Run("stream closes while playing", func(t *testing.T) {
		hub := stream.NewHub(stream.HubOptions{})
		newSource(hub, c).publish(1)
		e.fakes.mu.Lock()
		e.fakes.hubs[key{3, StreamMain}] = hub
		e.fakes.mu.Unlock()
		rc := dialRaw(t, e.srv.Addr(), 0)
		rc.play(t, e, "/cameras/3", goodToken)
		acquired(t, 1)
		rc.frame(t)
		hub.Close()
		e.fakes.waitRelease(t, next)
		// The server closed the session and its connection.
		_ = rc.nc.SetReadDeadline(time.Now().Add(waitLong))
		var err error
		for err == nil {
			var f base.InterleavedFrame
			err = f.Unmarshal(rc.br)
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("connection still open after the stream closed")
		}
	})
	t.Run("server stops while playing and described", func(t *testing.T) {
		// Left to the env's cleanup: Run must release these when it stops.
		rc := dialRaw(t, e.srv.Addr(), 0)
		rc.play(t, e, "/cameras/1", goodToken)
		rc2 := dialRaw(t, e.srv.Addr(), 0)
		rc2.do(t, base.Describe, e.url("/cameras/2", goodToken), nil)
		acquired(t, 2)
	})
}

// Stopping the server while a DESCRIBE waits for a camera's first picture
// ends the wait at once (not after ReadyTimeout) and releases the camera.
func TestStopDuringDescribe(t *testing.T) {
	e := startEnv(t, envOptions{readyTimeout: time.Hour})
	rc := dialRaw(t, e.srv.Addr(), 0)
	u, err := base.ParseURL(e.url("/cameras/5", goodToken))
	if err != nil {
		t.Fatal(err)
	}
	req := base.Request{Method: base.Describe, URL: u, Header: base.Header{"CSeq": base.HeaderValue{"1"}}}
	b, _ := req.Marshal()
	if _, err := rc.nc.Write(b); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.fakes.acq:
	case <-time.After(waitLong):
		t.Fatal("DESCRIBE did not acquire the camera")
	}
	start := time.Now()
	e.stop() // checks the release, the goroutines and Run's return
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %v to stop during a DESCRIBE", d)
	}
	if _, released := e.fakes.counts(); released != 1 {
		t.Errorf("%d releases, want 1", released)
	}
}

// A client that stops reading does not slow another: the hub skips and
// drops it, the writer never blocks anything shared, and its session ends
// when a write times out. The fast client gets every picture meanwhile.
func TestStalledClientDoesNotSlowOthers(t *testing.T) {
	c := testClip(t, smallClip)
	// Small server socket buffers make the stall bite within a second
	// instead of after megabytes; a short queue makes the hub skip the
	// stalled viewer soon, and a short write timeout ends its session.
	e := startEnv(t, envOptions{writeTimeout: 2 * time.Second, sndbuf: 8 << 10, hub: stream.HubOptions{Queue: 10}})
	src := newSource(e.main, c)
	src.publish(1)

	stalled := dialRaw(t, e.srv.Addr(), 4<<10)
	stalled.play(t, e, "/cameras/1", goodToken) // acquisition 1; never read again
	fast := rtsptest.Play(t, e.url("/cameras/1", goodToken))

	const interval = 20 * time.Millisecond
	src.run(t, interval)
	first := fast.Next(t)
	want := int64(0) // next PTS the fast client must get
	if !stream.H264.IsKey(first.NALUs) {
		t.Fatal("fast client's first picture is not an IDR")
	}
	want += 3600
	released := false
	var maxLag time.Duration
	// The publisher runs on, so the fast client's next picture is never
	// far off: the release and the deadline are looked at after each.
	deadline := time.Now().Add(3 * waitLong)
	for !released || want < 150*3600 {
		au := fast.Next(t)
		pts := int64(au.TS - first.TS)
		if pts != want {
			t.Fatalf("fast client got +%d, want +%d: it was skipped", pts, want)
		}
		src.mu.Lock()
		lag := au.At.Sub(src.pub[pts])
		src.mu.Unlock()
		maxLag = max(maxLag, lag)
		want += 3600
		select {
		case n := <-e.fakes.rel:
			if n == 1 {
				released = true
			}
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: fast client at +%d, stalled session released: %v", 3*waitLong, want, released)
		}
	}
	if maxLag > 500*time.Millisecond {
		t.Errorf("fast client lagged up to %v behind the publisher, want < 500ms", maxLag)
	}
	if st := e.main.Stats(); st.Skips == 0 && st.Drops == 0 {
		t.Errorf("hub stats %+v: the stalled viewer was never skipped, so it never stalled", st)
	}
	t.Logf("fast client max lag %v; stalled session closed and released", maxLag)
}

// Nothing the server logs contains a token, whatever the client does (the
// env's cleanup checks the whole log of every test; this test makes a log
// with every path that logs).
func TestTokensNeverLogged(t *testing.T) {
	c := testClip(t, smallClip)
	e := startEnv(t, envOptions{readyTimeout: 200 * time.Millisecond})
	newSource(e.main, c).publish(1)
	basic := base.Header{"Authorization": base.HeaderValue{"Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+badToken))}}
	for _, tc := range []struct {
		path, tok string
		hdr       base.Header
	}{
		{"/cameras/1", badToken, nil},
		{"/cameras/1", forbiddenToken, nil},
		{"/cameras/1", "", basic},
		{"/cameras/99", goodToken, nil},
		{"/cameras/5", goodToken, nil},
		{"/cameras/4", goodToken, nil},
		{"/nope", goodToken, nil},
	} {
		rc := dialRaw(t, e.srv.Addr(), 0)
		rc.do(t, base.Describe, e.url(tc.path, tc.tok), tc.hdr)
		_ = rc.nc.Close()
	}
	rc := dialRaw(t, e.srv.Addr(), 0)
	rc.play(t, e, "/cameras/1", goodToken)
	rc.frame(t)
	rc.do(t, base.GetParameter, e.url("/cameras/1", goodToken), nil)
	rc.do(t, base.Teardown, e.url("/cameras/1", goodToken), nil)
	_ = rc.nc.Close()
	e.fakes.waitRelease(t, 2)
	if logs := e.logs.String(); !strings.Contains(logs, "camera=1") {
		t.Errorf("the log says nothing about camera 1; is it capturing?\n%s", logs)
	}
}

func TestNewValidates(t *testing.T) {
	access := func(context.Context, string, int64) error { return nil }
	acquire := func(context.Context, int64, string) (*stream.Hub, func(), error) { return nil, nil, nil }
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no addr", Config{Access: access, Acquire: acquire}},
		{"no access", Config{Addr: "127.0.0.1:0", Acquire: acquire}},
		{"no acquire", Config{Addr: "127.0.0.1:0", Access: access}},
		{"negative timeout", Config{Addr: "127.0.0.1:0", Access: access, Acquire: acquire, ReadyTimeout: -1}},
		{"bad addr", Config{Addr: "127.0.0.1:xyz", Access: access, Acquire: acquire}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := New(tc.cfg); err == nil {
				_ = s.ln.Close()
				t.Fatal("New succeeded, want an error")
			}
		})
	}

	s, err := New(Config{Addr: ":0", Access: access, Acquire: acquire})
	if err != nil {
		t.Fatalf("New on :0: %v", err)
	}
	if strings.HasSuffix(s.Addr(), ":0") {
		t.Errorf("Addr() = %q, want the bound port", s.Addr())
	}
	// Run twice at once: one serves until cancelled, the other refuses.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- s.Run(ctx) }()
	go func() { done <- s.Run(ctx) }()
	returned := func(failure string) error {
		t.Helper()
		select {
		case err := <-done:
			return err
		case <-time.After(waitLong):
			t.Fatal(failure)
			return nil
		}
	}
	if refused := returned("neither Run refused to run twice"); refused == nil || !strings.Contains(refused.Error(), "twice") {
		t.Errorf("second Run: %v, want an error", refused)
	}
	cancel()
	if err := returned("Run did not return"); err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestParsePath(t *testing.T) {
	for _, tc := range []struct {
		path string
		id   int64
		name string
		ok   bool
	}{
		{"/cameras/1", 1, StreamMain, true},
		{"/cameras/42/sub", 42, StreamSub, true},
		{"/cameras/9223372036854775807", 9223372036854775807, StreamMain, true},
		{"/cameras/9223372036854775808", 0, "", false},
		{"/cameras/0", 0, "", false},
		{"/cameras/007", 0, "", false},
		{"/cameras/1/", 0, "", false},
		{"/cameras//sub", 0, "", false},
		{"/cameras/sub", 0, "", false},
		{"cameras/1", 0, "", false},
		{"/cameras/1/sub/sub", 0, "", false},
	} {
		t.Run(tc.path, func(t *testing.T) {
			id, name, ok := parsePath(tc.path)
			if id != tc.id || name != tc.name || ok != tc.ok {
				t.Errorf("parsePath(%q) = %d, %q, %v; want %d, %q, %v", tc.path, id, name, ok, tc.id, tc.name, tc.ok)
			}
		})
	}
}

func TestRequestToken(t *testing.T) {
	basic := func(v string) *base.Request {
		return &base.Request{Header: base.Header{"Authorization": base.HeaderValue{v}}}
	}
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		name  string
		req   *base.Request
		query string
		want  string
	}{
		{"query", &base.Request{Header: base.Header{}}, "token=abc", "abc"},
		{"query escaped", &base.Request{Header: base.Header{}}, "x=1&token=a%2Bb", "a+b"},
		{"query beats basic", basic("Basic " + enc("u:p")), "token=q", "q"},
		{"basic", basic("Basic " + enc("u:p:w")), "", "p:w"},
		{"basic no user", basic("Basic " + enc(":p")), "", "p"},
		{"digest", basic(`Digest username="u", realm="r", nonce="n", uri="/", response="x"`), "", ""},
		{"garbage", basic("Basic !!!"), "", ""},
		{"none", &base.Request{Header: base.Header{}}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := requestToken(tc.req, tc.query); got != tc.want {
				t.Errorf("requestToken = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestStatusOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want base.StatusCode
	}{
		{gridwatch.Errorf(gridwatch.EUnauthenticated, "x"), base.StatusUnauthorized},
		{gridwatch.Errorf(gridwatch.EForbidden, "x"), base.StatusForbidden},
		{gridwatch.Errorf(gridwatch.ENotFound, "x"), base.StatusNotFound},
		{gridwatch.Errorf(gridwatch.EUnavailable, "x"), base.StatusServiceUnavailable},
		{context.DeadlineExceeded, base.StatusServiceUnavailable},
		{errors.New("boom"), base.StatusInternalServerError},
		// Faults that pass: the database's connection broken under the
		// access check, or no descriptor left to open one or a file.
		{fmt.Errorf("camera 2: %w", &net.OpError{Op: "write", Net: "unix", Err: syscall.EPIPE}), base.StatusServiceUnavailable},
		{fmt.Errorf("camera 2: %w", &os.PathError{Op: "open", Path: "x", Err: syscall.EMFILE}), base.StatusServiceUnavailable},
		{fmt.Errorf("camera 2: %w", &os.SyscallError{Syscall: "socket", Err: syscall.ENFILE}), base.StatusServiceUnavailable},
	} {
		if got := statusOf(tc.err); got != tc.want {
			t.Errorf("statusOf(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"no secret":                           "no secret",
		"rtsp://h/cameras/1?token=abc":        "rtsp://h/cameras/1?token=REDACTED",
		"x?a=1&token=abc&b=2 token=def/track": "x?a=1&token=REDACTED&b=2 token=REDACTED/track",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func naluTypes(nalus [][]byte) []h264.NALUType {
	var ts []h264.NALUType
	for _, n := range nalus {
		ts = append(ts, h264.NALUType(n[0]&0x1f))
	}
	return ts
}

// TestRevokedTokenEndsSession revokes the token of a playing client: at the
// next access check its session ends and its acquisition is released.
func TestRevokedTokenEndsSession(t *testing.T) {
	c := testClip(t, smallClip)
	e := startEnv(t, envOptions{recheck: 100 * time.Millisecond})
	src := newSource(e.main, c)
	src.publish(5)
	src.run(t, 10*time.Millisecond)
	p := rtsptest.Play(t, e.url("/cameras/1", goodToken))
	p.Next(t)
	e.fakes.revoked.Store(true)
	e.fakes.waitRelease(t, 1)
	if got := e.srv.Stats().Sessions; got != 0 {
		t.Errorf("Stats().Sessions = %d after revocation, want 0", got)
	}
	p.Close()
}

// watched is what Config.Watch heard of one session.
type watched struct {
	play  Play
	ended chan int64 // the bytes, when the session ends
}

// TestWatchHearsEverySession: Watch hears of each session when it plays,
// with the token, camera, stream and client address, and its end when the
// client goes, with the bytes written to it.
func TestWatchHearsEverySession(t *testing.T) {
	c := testClip(t, smallClip)
	plays := make(chan watched, 4)
	e := startEnv(t, envOptions{watch: func(ctx context.Context, p Play) func(int64) {
		w := watched{play: p, ended: make(chan int64, 1)}
		plays <- w
		return func(n int64) { w.ended <- n }
	}})
	newSource(e.main, c).publish(2)
	newSource(e.sub, c).publish(2)
	for _, tc := range []struct {
		name, url, stream string
	}{
		{"main by URL token", "rtsp://" + e.srv.Addr() + "/cameras/1?token=" + goodToken, StreamMain},
		{"sub by Basic password", "rtsp://someone:" + goodToken + "@" + e.srv.Addr() + "/cameras/1/sub", StreamSub},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := rtsptest.Play(t, tc.url)
			p.Next(t)
			var w watched
			select {
			case w = <-plays:
			case <-time.After(waitLong):
				t.Fatalf("Watch not called within %v of a picture", waitLong)
			}
			if w.play.Token != goodToken || w.play.Camera != camMain || w.play.Stream != tc.stream || !strings.HasPrefix(w.play.Remote, "127.0.0.1:") {
				t.Errorf("got %+v, want token %q camera %d stream %s from 127.0.0.1", w.play, goodToken, camMain, tc.stream)
			}
			select {
			case n := <-w.ended:
				t.Fatalf("session ended (%d bytes) while playing", n)
			default:
			}
			p.Close()
			select {
			case n := <-w.ended:
				if n <= 0 {
					t.Errorf("got %d bytes at the end, want the bytes sent", n)
				}
			case <-time.After(waitLong):
				t.Fatalf("end not heard within %v of the client closing", waitLong)
			}
		})
	}
}

// pumped reports how many sessions the server's pumps write for now (the
// others lag, and write in goroutines of their own).
func (s *Server) pumped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.caches {
		c.pump.mu.Lock()
		n += len(c.pump.members)
		c.pump.mu.Unlock()
	}
	return n
}

// settle waits until the pumps have written what their sessions had
// pending, or the sessions have left them: a member with something pending
// has woken its pump, whose next round ends with a signal on rounds.
func (s *Server) settle(t testing.TB, rounds <-chan struct{}) {
	t.Helper()
	for {
		idle := true
		s.mu.Lock()
		for _, c := range s.caches {
			c.pump.mu.Lock()
			for w := range c.pump.members {
				if w.viewer.Pending() > 0 {
					idle = false
				}
			}
			c.pump.mu.Unlock()
		}
		s.mu.Unlock()
		if idle {
			return
		}
		select {
		case <-rounds:
		case <-time.After(waitLong):
			t.Fatal("the pump did not write what was pending")
		}
	}
}

// A client that stops reading for a while leaves the pump for a goroutine
// of its own once its socket is full, gets every picture in order when it
// reads again, with every frame whole (a write the socket took only part of
// is finished before anything else), and goes back to the pump once it has
// kept up.
func TestLaggingClientCatchesUp(t *testing.T) {
	c := testClip(t, smallClip)
	e := startEnv(t, envOptions{sndbuf: 8 << 10})
	rounds := make(chan struct{}, 1)
	e.srv.pumpRound = func() {
		select {
		case rounds <- struct{}{}:
		default:
		}
	}
	// The lagging session's goroutine says which picture it wrote last
	// each time it has looked whether more is pending.
	checked := make(chan int64, 1024)
	e.srv.ownChecked = func(dts int64) {
		select {
		case checked <- dts:
		default:
		}
	}
	src := newSource(e.main, c)
	src.publish(1)
	cl := dialRaw(t, e.srv.Addr(), 4<<10)
	cl.play(t, e, "/cameras/1", goodToken)

	var seq uint16
	pictures, packets := 0, 0
	// read takes frames until n more pictures have come, checking that the
	// video's sequence numbers follow on.
	read := func(n int) {
		t.Helper()
		for want := pictures + n; pictures < want; {
			f := cl.frame(t)
			if f.Channel != 0 {
				continue // a sender report
			}
			var p rtp.Packet
			if err := p.Unmarshal(f.Payload); err != nil {
				t.Fatalf("picture %d: a broken RTP packet: %v", pictures+1, err)
			}
			if packets > 0 && p.SequenceNumber != seq+1 {
				t.Fatalf("picture %d: sequence number %d after %d", pictures+1, p.SequenceNumber, seq)
			}
			seq = p.SequenceNumber
			packets++
			if p.Marker {
				pictures++
			}
		}
	}
	read(1)
	if got := e.srv.pumped(); got != 1 {
		t.Fatalf("%d sessions pumped while the client keeps up, want 1", got)
	}
	// Stop reading: the socket fills within a few pictures and the session
	// leaves the pump. The hub's queue (50) holds the rest.
	behind := 0
	for e.srv.pumped() != 0 {
		if behind == 40 {
			t.Fatalf("the session was still pumped after %d pictures the client did not read", behind)
		}
		src.publish(1)
		behind++
		e.srv.settle(t, rounds)
	}
	src.publish(5)
	behind += 5
	read(behind)
	// Keeping up again, a picture at a time: the pump takes it back. The
	// next picture is published once the session's goroutine has looked
	// for more after the last (published sooner, it would be pending then,
	// and the goroutine right not to count it as kept up).
	for i := 0; e.srv.pumped() != 1; i++ {
		if i == 4*ownKeptUp {
			t.Fatalf("the session had not gone back to the pump after %d pictures read at once", i)
		}
		src.publish(1)
		read(1)
		last := int64(src.published()-1) * 3600
		for wrote := int64(-1); wrote != last && e.srv.pumped() != 1; {
			select {
			case wrote = <-checked:
			case <-rounds: // the pump took the session back: pumped() says so
			case <-time.After(waitLong):
				t.Fatalf("the lagging session's goroutine did not look for more after picture %d", last/3600)
			}
		}
		e.srv.settle(t, rounds)
	}
	src.publish(3)
	read(3)
	if st := e.main.Stats(); st.Skips != 0 || st.Drops != 0 {
		t.Errorf("hub stats %+v: the lagging client was skipped, the test did not test the catching up", st)
	}
	t.Logf("%d pictures, %d packets, %d behind at most", pictures, packets, behind)
}
