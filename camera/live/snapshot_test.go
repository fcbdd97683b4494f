package live

import (
	"bytes"
	"context"
	"image/jpeg"
	"testing"
	"time"

	"gridwatch/camera/camsim"
	"gridwatch/internal/testtool"
)

// A snapshot is the camera's latest keyframe as a JPEG of its size, for an
// H.264 and an H.265 camera alike; a second ask within the TTL is served
// from the cache without decoding again.
func TestSnapshot(t *testing.T) {
	noLeaks(t)
	ffmpeg := testtool.Require(t, "ffmpeg")
	r := newRig(t, camsim.Config{N: 2, Addr: "127.0.0.1:0"}, Config{Idle: time.Minute, FFmpeg: ffmpeg})
	r.setMain(2, camsim.StreamH265)
	ctx := context.Background()
	for _, id := range []int64{1, 2} {
		s, err := r.m.Snapshot(ctx, id, Main)
		if err != nil {
			t.Fatalf("camera %d: %v", id, err)
		}
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(s.JPEG))
		if err != nil || cfg.Width != 640 || cfg.Height != 360 || s.Width != 640 || time.Since(s.At) > 10*time.Second {
			t.Errorf("camera %d: a %dx%d JPEG (%v), taken %v ago", id, cfg.Width, cfg.Height, err, time.Since(s.At))
		}
	}
	r.m.snapshots.mu.Lock()
	decodes := r.m.snapshots.decodes
	r.m.snapshots.mu.Unlock()
	again, err := r.m.Snapshot(ctx, 1, Main)
	if err != nil {
		t.Fatal(err)
	}
	r.m.snapshots.mu.Lock()
	after := r.m.snapshots.decodes
	r.m.snapshots.mu.Unlock()
	if after != decodes || again == nil {
		t.Errorf("a second snapshot within %v decoded again (%d → %d)", SnapshotTTL, decodes, after)
	}
	if decodes != 2 {
		t.Errorf("%d decodes for two cameras", decodes)
	}
}
