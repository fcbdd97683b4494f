package live

import (
	"context"
	"strings"
	"testing"
	"time"

	"gridwatch"
	"gridwatch/camera/camsim"
	"gridwatch/camera/pull"
	"gridwatch/internal/testtool"
)

// A browser that cannot decode H.265 watches the camera's "h264" stream:
// one ffmpeg for the camera however many watch, H.264 pictures that decode
// cleanly on the camera's timing, a limit per node, and the process gone
// soon after the last viewer.
func TestTranscodeH265(t *testing.T) {
	noLeaks(t)
	ffmpeg := testtool.Require(t, "ffmpeg")
	r := newRig(t, camsim.Config{N: 2, Addr: "127.0.0.1:0"},
		Config{Idle: time.Minute, FFmpeg: ffmpeg, MaxTranscodes: 1, TranscodeIdle: 50 * time.Millisecond})
	r.setMain(1, camsim.StreamH265)
	r.setMain(2, camsim.StreamH265)
	ctx := context.Background()

	hub, release, err := r.m.Acquire(ctx, 1, Transcoded)
	if err != nil {
		t.Fatal(err)
	}
	hub2, release2, err := r.m.Acquire(ctx, 1, Transcoded)
	if err != nil || hub2 != hub {
		t.Fatalf("a second viewer: %v, same hub %v", err, hub2 == hub)
	}
	msgs, first := watch(t, hub, r.m, Key{1, Transcoded}, 50)
	mime, init, samples := parseMSE(t, msgs)
	if !strings.HasPrefix(mime, `video/mp4; codecs="avc1.`) {
		t.Errorf("transcoded mime %q, want avc1", mime)
	}
	checkSamples(t, samples, 25)
	if out := decodeErrors(t, init, msgs); out != "" {
		t.Errorf("ffmpeg found corrupt transcoded pictures:\n%s", out)
	}
	t.Logf("first transcoded picture after %v", first)
	// The transcode keeps the camera's timing: 25 pictures a second.
	if span := samples[len(samples)-1].dts - samples[0].dts; span < 40*3600 || span > 60*3600 {
		t.Errorf("50 pictures span %d ticks, want about 49 × 3600", span)
	}
	if n, s := r.m.transcodes.running.Load(), r.m.transcodes.started.Load(); n != 1 || s != 1 {
		t.Errorf("%d transcodes running, %d started, for two viewers of one camera; want 1 and 1", n, s)
	}
	if st, _ := r.m.State(1, Transcoded); st.Status != pull.StatusOnline || !strings.HasPrefix(st.Codec, "avc1.") {
		t.Errorf("transcoded state %+v", st)
	}

	// The node's limit is one camera: a second camera is refused, saying so.
	if _, _, err := r.m.Acquire(ctx, 2, Transcoded); gridwatch.ErrorCode(err) != gridwatch.EUnavailable || !strings.Contains(err.Error(), "--transcode-max") {
		t.Errorf("a transcode over the limit: %v", err)
	}

	// Once both viewers have gone, the transcode stops: no ffmpeg left.
	release()
	release2()
	deadline := time.Now().Add(10 * time.Second)
	for r.m.transcodes.running.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the transcode still runs 10 s after its last viewer left")
		}
		waitBriefly()
	}
	if cpu := r.m.transcodes.cpu(); cpu <= 0 {
		t.Errorf("transcode CPU %v, want it counted", cpu)
	}
	// And the limit is free again.
	_, release3, err := r.m.Acquire(ctx, 2, Transcoded)
	if err != nil {
		t.Fatalf("after the first transcode stopped: %v", err)
	}
	release3()
}

// An H.264 camera has nothing to transcode: asking for it is refused at
// once, saying why, and holds none of the node's transcode slots.
func TestTranscodeRefusesH264(t *testing.T) {
	noLeaks(t)
	ffmpeg := testtool.Require(t, "ffmpeg")
	r := newRig(t, camsim.Config{N: 1, Addr: "127.0.0.1:0"}, Config{Idle: time.Minute, FFmpeg: ffmpeg, MaxTranscodes: 1})
	for range 2 {
		_, _, err := r.m.Acquire(context.Background(), 1, Transcoded)
		if gridwatch.ErrorCode(err) != gridwatch.EConflict || !strings.Contains(err.Error(), "H.264 already") {
			t.Fatalf("the transcode of an H.264 camera: %v", err)
		}
	}
	if _, ok := r.m.State(1, Transcoded); ok {
		t.Error("a refused transcode left a stream running")
	}
	if n := r.m.transcodes.started.Load(); n != 0 {
		t.Errorf("%d ffmpeg started for an H.264 camera", n)
	}
}
