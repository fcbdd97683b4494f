package live

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	"gridwatch/camera/camsim"
	"gridwatch/camera/pull"
	"gridwatch/camera/stream"
	"gridwatch/internal/testtool"
)

// mseRun is an MSE viewer served in the background for the whole test.
type mseRun struct {
	conn *recConn
	stop func() error
}

// serveMSE starts an MSE viewer of key's hub; stop ends it and returns
// what ServeMSE returned.
func serveMSE(t *testing.T, hub *stream.Hub, m *Manager, key Key) *mseRun {
	t.Helper()
	conn := newRecConn()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ServeMSE(ctx, hub, conn, func() (pull.State, bool) { return m.State(key.Camera, key.Stream) }, MSEOptions{})
	}()
	run := &mseRun{conn: conn}
	var stopped bool
	var err error
	run.stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			err = <-done
		}
		return err
	}
	t.Cleanup(func() { _ = run.stop() })
	return run
}

// mseInit is one initialisation segment a viewer got, with the
// fragments that followed it.
type mseInit struct {
	codec MSEMessage
	init  []byte
	frags [][]byte
}

// splitMSE cuts what a viewer received at each initialisation segment
// (the binary message after a "codec" message).
func splitMSE(t *testing.T, msgs []msg) []mseInit {
	t.Helper()
	var out []mseInit
	wantInit := false
	var codec MSEMessage
	for _, m := range msgs {
		if m.text {
			var mm MSEMessage
			if err := json.Unmarshal(m.data, &mm); err != nil {
				t.Fatalf("text message %q: %v", m.data, err)
			}
			if mm.Type == "codec" {
				wantInit, codec = true, mm
			}
			continue
		}
		if wantInit {
			out = append(out, mseInit{codec: codec, init: m.data})
			wantInit = false
			continue
		}
		if len(out) == 0 {
			t.Fatal("a fragment before any initialisation segment")
		}
		out[len(out)-1].frags = append(out[len(out)-1].frags, m.data)
	}
	return out
}

// samples returns the decode times and sync flags of a part's fragments.
func (p mseInit) samples(t *testing.T) []mseSample {
	t.Helper()
	var out []mseSample
	for _, f := range p.frags {
		var parts fmp4.Parts
		if err := parts.Unmarshal(f); err != nil {
			t.Fatalf("fragment: %v", err)
		}
		for _, part := range parts {
			for _, tr := range part.Tracks {
				dts := tr.BaseTime
				for _, s := range tr.Samples {
					out = append(out, mseSample{dts: dts, sync: !s.IsNonSyncSample, size: len(s.Payload)})
					dts += uint64(s.Duration)
				}
			}
		}
	}
	return out
}

// probeDecode writes init and frags to a file, has ffmpeg decode it (any
// complaint fails the test) and ffprobe count its pictures and read their
// size.
func probeDecode(t *testing.T, init []byte, frags [][]byte) (frames, width, height int) {
	t.Helper()
	var file bytes.Buffer
	file.Write(init)
	for _, f := range frags {
		file.Write(f)
	}
	path := filepath.Join(t.TempDir(), "part.mp4")
	if err := os.WriteFile(path, file.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(testtool.Require(t, "ffmpeg"), "-v", "warning", "-i", path, "-f", "null", "-").CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("ffmpeg decoding %d fragments: %v %s", len(frags), err, out)
	}
	probe := testtool.FFprobe(t, "-count_frames", "-show_entries", "stream=width,height,nb_read_frames", path)
	if len(probe.Streams) != 1 {
		t.Fatalf("ffprobe: %s", probe.Out)
	}
	s := probe.Streams[0]
	n, _ := strconv.Atoi(s.ReadFrames)
	return n, s.Width, s.Height
}

// waitMSE waits until cond holds for what the viewer received.
func waitMSE(t *testing.T, run *mseRun, what string, cond func([]mseInit) bool) []mseInit {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		parts := splitMSE(t, run.conn.snapshot())
		if cond(parts) {
			return parts
		}
		select {
		case <-run.conn.got:
		case <-deadline:
			t.Fatalf("%s: not within 30 s (%d initialisation segments)", what, len(parts))
		}
	}
}

// waitPlaylist waits until the HLS muxer's playlist matches re.
func waitPlaylist(t *testing.T, h *HLS, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		h.mu.Lock()
		changed := h.changed
		var pl string
		if len(h.segs) > 0 {
			pl = string(h.playlistLocked(""))
		}
		h.mu.Unlock()
		if re.MatchString(pl) {
			return pl
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no playlist matching %s within 30 s; last:\n%s", re, pl)
		}
	}
}

func countFrames(parts []mseInit, t *testing.T) int {
	n := 0
	for _, p := range parts {
		n += len(p.samples(t))
	}
	return n
}

// faultRig starts one simulated camera with its main stream held, its HLS
// playlist and an MSE viewer, and waits until the viewer has 30 pictures:
// the start of the tests that then set a fault. No goroutine or descriptor
// may be left when the test ends.
func faultRig(t *testing.T, what string) (*rig, *HLS, *mseRun) {
	t.Helper()
	noLeaks(t)
	r := startRig(t, 1, camsim.FaultNone, pull.Config{})
	hub := r.hold(t, 1, Main)
	h, err := r.m.HLS(context.Background(), 1, Main)
	if err != nil {
		t.Fatal(err)
	}
	run := serveMSE(t, hub, r.m, Key{1, Main})
	waitMSE(t, run, what, func(p []mseInit) bool { return countFrames(p, t) >= 30 })
	return r, h, run
}

// A camera that changes its picture size mid-stream (new SPS and PPS at
// an IDR): an MSE viewer gets a new initialisation segment of the new size
// and goes on getting pictures that decode, on the same rising timeline;
// the HLS playlist marks a discontinuity at the change with the new
// initialisation segment.
func TestResizeMidStream(t *testing.T) {
	r, h, run := faultRig(t, "pictures before the change")
	waitPlaylist(t, h, regexp.MustCompile(`seg-\d+\.m4s\n(.|\n)*seg-\d+\.m4s`))

	r.sim.SetFault(1, camsim.FaultResize)
	changed := time.Now()
	parts := waitMSE(t, run, "50 pictures after a new initialisation segment", func(p []mseInit) bool {
		return len(p) >= 2 && len(p[1].samples(t)) >= 50
	})
	t.Logf("RELIABILITY: resize: MSE viewer's new init segment and 50 pictures %v after the fault was set", time.Since(changed).Round(time.Millisecond))
	if err := run.stop(); err != nil {
		t.Fatalf("ServeMSE: %v", err)
	}
	parts = splitMSE(t, run.conn.snapshot())
	if len(parts) != 2 {
		t.Fatalf("%d initialisation segments, want 2", len(parts))
	}
	for i, want := range [][2]int{{640, 360}, {320, 180}} {
		p := parts[i]
		if p.codec.Width != want[0] || p.codec.Height != want[1] || !strings.HasPrefix(p.codec.Mime, `video/mp4; codecs="avc1.`) {
			t.Errorf("codec message %d: %+v, want %dx%d", i, p.codec, want[0], want[1])
		}
		samples := p.samples(t)
		if !samples[0].sync {
			t.Errorf("part %d starts with a picture that is not a keyframe", i)
		}
		frames, w, hgt := probeDecode(t, p.init, p.frags)
		if w != want[0] || hgt != want[1] || frames < len(samples)-1 {
			t.Errorf("part %d: ffprobe reads %d pictures of %dx%d, want %d of %dx%d", i, frames, w, hgt, len(samples), want[0], want[1])
		}
	}
	// One timeline across the change.
	before, after := parts[0].samples(t), parts[1].samples(t)
	all := append(before, after...)
	for i := 1; i < len(all); i++ {
		if d := int64(all[i].dts) - int64(all[i-1].dts); d <= 0 || d > 2*3600 {
			t.Fatalf("sample %d: %d ticks after the one before", i, d)
		}
	}

	pl := waitPlaylist(t, h, regexp.MustCompile(`#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="init-(\d+)\.mp4"\n#EXTINF`))
	m := regexp.MustCompile(`#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="init-(\d+)\.mp4"\n#EXTINF:[0-9.]+,\nseg-(\d+)\.m4s`).FindStringSubmatch(pl)
	if m == nil {
		t.Fatalf("playlist:\n%s", pl)
	}
	id, _ := strconv.Atoi(m[1])
	seq, _ := strconv.Atoi(m[2])
	init, err := h.Init(id)
	if err != nil {
		t.Fatal(err)
	}
	seg, err := h.Segment(seq)
	if err != nil {
		t.Fatal(err)
	}
	if frames, w, hgt := probeDecode(t, init, [][]byte{seg}); w != 320 || hgt != 180 || frames == 0 {
		t.Errorf("HLS after the discontinuity: %d pictures of %dx%d, want 320x180", frames, w, hgt)
	}
	if n := strings.Count(pl, "#EXT-X-DISCONTINUITY"); n != 1 {
		t.Errorf("%d discontinuities, want 1:\n%s", n, pl)
	}
	if st, _ := r.m.State(1, Main); st.Width != 320 || st.Height != 180 {
		t.Errorf("state %dx%d after the change, want 320x180", st.Width, st.Height)
	}
}

// A camera whose RTP clock jumps forward by minutes, back by seconds and
// through the 32-bit wrap: an MSE viewer's timeline rises a picture at a
// time throughout (no hole for the player to stall at, no step back) and
// decodes; HLS segments stay about as long as the GOP.
func TestTimestampJumps(t *testing.T) {
	r, h, run := faultRig(t, "pictures before the jumps")
	want := 30
	for _, f := range []camsim.Fault{camsim.FaultTSJump, camsim.FaultTSBack, camsim.FaultTSWrap} {
		r.sim.SetFault(1, f)
		want += 60
		waitMSE(t, run, fmt.Sprintf("pictures after %s", f), func(p []mseInit) bool { return countFrames(p, t) >= want })
	}
	if err := run.stop(); err != nil {
		t.Fatalf("ServeMSE: %v", err)
	}
	parts := splitMSE(t, run.conn.snapshot())
	if len(parts) != 1 {
		t.Fatalf("%d initialisation segments, want 1", len(parts))
	}
	samples := parts[0].samples(t)
	for i := 1; i < len(samples); i++ {
		// At most a picture was lost at a jump, never seconds of them.
		if d := int64(samples[i].dts) - int64(samples[i-1].dts); d <= 0 || d > 2*3600 {
			t.Fatalf("sample %d: %d ticks after the one before", i, d)
		}
	}
	if frames, _, _ := probeDecode(t, parts[0].init, parts[0].frags); frames < len(samples)-1 {
		t.Errorf("ffprobe reads %d pictures, want %d", frames, len(samples))
	}
	pl := waitPlaylist(t, h, regexp.MustCompile(`#EXTINF`))
	for _, m := range regexp.MustCompile(`#EXTINF:([0-9.]+),`).FindAllStringSubmatch(pl, -1) {
		if d, _ := strconv.ParseFloat(m[1], 64); d <= 0 || d > 4 {
			t.Errorf("HLS segment of %s s:\n%s", m[1], pl)
		}
	}
	if strings.Contains(pl, "#EXT-X-DISCONTINUITY") {
		t.Errorf("a discontinuity without a change of format:\n%s", pl)
	}
}
