package live

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"gridwatch"
	"gridwatch/camera/stream"
)

// Snapshots. A still of a camera is its latest keyframe, decoded to JPEG by
// ffmpeg (one short process a picture, at most snapshotWorkers at once) and
// kept for SnapshotTTL, so a video wall's posters and the map's popups cost
// one decode per camera every few seconds however many ask.

// SnapshotTTL is how long a camera's snapshot is reused.
const SnapshotTTL = 5 * time.Second

const snapshotWorkers = 2

// Snapshot is one still of a camera.
type Snapshot struct {
	JPEG []byte
	// At is when the keyframe it shows arrived.
	At time.Time
	// Width and Height are the picture's size.
	Width, Height int
}

type snapshotCache struct {
	mu      sync.Mutex
	entries map[Key]*snapshotEntry
	slots   chan struct{}
	decodes int64 // ffmpeg runs, for tests and /metrics
}

type snapshotEntry struct {
	done chan struct{} // closed once snap/err are set
	snap *Snapshot
	err  error
	at   time.Time
}

// Snapshot returns a still of a camera stream ("main" or "sub"), from the
// cache when it is fresh: the stream is pulled (and kept for the idle
// delay) if it was not already.
func (m *Manager) Snapshot(ctx context.Context, id int64, name string) (*Snapshot, error) {
	if m.cfg.FFmpeg == "" {
		return nil, gridwatch.Errorf(gridwatch.EUnavailable, "snapshots need ffmpeg, which is not installed on this node")
	}
	key := Key{id, name}
	c := &m.snapshots
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[Key]*snapshotEntry{}
		c.slots = make(chan struct{}, snapshotWorkers)
	}
	e := c.entries[key]
	if e != nil && (time.Since(e.at) < SnapshotTTL || !isDone(e.done)) {
		c.mu.Unlock()
		select {
		case <-e.done:
			return e.snap, e.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	e = &snapshotEntry{done: make(chan struct{}), at: time.Now()}
	c.entries[key] = e
	c.mu.Unlock()
	// The picture is taken for every caller waiting on it: not under this
	// caller's context, which ends when its request does.
	go func() {
		e.snap, e.err = m.takeSnapshot(context.WithoutCancel(ctx), id, name)
		if e.err != nil {
			// A failure is not kept: the next caller tries again.
			c.mu.Lock()
			if c.entries[key] == e {
				delete(c.entries, key)
			}
			c.mu.Unlock()
		}
		close(e.done)
	}()
	select {
	case <-e.done:
		return e.snap, e.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func isDone(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (m *Manager) takeSnapshot(ctx context.Context, id int64, name string) (*Snapshot, error) {
	hub, release, err := m.Acquire(ctx, id, name)
	if err != nil {
		return nil, err
	}
	defer release()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := hub.Ready(rctx); err != nil {
		return nil, gridwatch.Errorf(gridwatch.EUnavailable, "camera %d has sent no picture yet", id)
	}
	key := hub.Keyframe()
	for key == nil {
		// Pictures flow but the last break cleared the keyframe: wait
		// for the next one.
		v := hub.Subscribe()
		batch, err := v.Next(rctx, nil)
		v.Close()
		if err != nil {
			return nil, gridwatch.Errorf(gridwatch.EUnavailable, "camera %d sent no keyframe in time", id)
		}
		for _, au := range batch {
			if au.Key {
				key = au
				break
			}
		}
	}
	c := &m.snapshots
	select {
	case c.slots <- struct{}{}:
		defer func() { <-c.slots }()
	case <-rctx.Done():
		return nil, gridwatch.Errorf(gridwatch.EUnavailable, "too many snapshots being taken; try again")
	}
	jpeg, err := decodeStill(rctx, m.cfg.FFmpeg, key)
	c.mu.Lock()
	c.decodes++
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return &Snapshot{JPEG: jpeg, At: key.Received, Width: key.Params.Width, Height: key.Params.Height}, nil
}

// decodeStill decodes one keyframe to a JPEG with ffmpeg.
func decodeStill(ctx context.Context, ffmpeg string, key *stream.AccessUnit) ([]byte, error) {
	in, err := h264.AnnexB(key.NALUs).Marshal() // the byte-stream format is H.265's too
	if err != nil {
		return nil, err
	}
	format := "h264"
	if key.Params.Kind == stream.H265 {
		format = "hevc"
	}
	cmd := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
		"-f", format, "-i", "pipe:0", "-frames:v", "1", "-q:v", "4", "-f", "image2", "-c:v", "mjpeg", "pipe:1")
	cmd.Stdin = bytes.NewReader(in)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &limitedWriter{w: &stderr, n: 1024}
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("snapshot: ffmpeg: %w %s", err, strings.TrimSpace(stderr.String()))
	}
	if out.Len() < 4 || !bytes.HasPrefix(out.Bytes(), []byte{0xff, 0xd8}) {
		return nil, errors.New("snapshot: ffmpeg produced no JPEG")
	}
	return out.Bytes(), nil
}
