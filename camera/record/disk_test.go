package record

import (
	"context"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"gridwatch/camera"
	"gridwatch/camera/camsim"
	"gridwatch/camera/internal/cliptest"
	"gridwatch/camera/stream"
	"gridwatch/geo"
	"gridwatch/internal/testdb"
)

// clipFeed hands out the simulator's clip as access units on a 25 fps
// timeline starting at t0.
type clipFeed struct {
	aus    [][][]byte
	params *stream.Params
	t0     time.Time
	n      int
}

func newClipFeed(t *testing.T, t0 time.Time) *clipFeed {
	t.Helper()
	aus, params := cliptest.Clip(t, camsim.ClipMain)
	return &clipFeed{aus: aus, params: params, t0: t0}
}

// next is the next picture, and whether it is a keyframe.
func (c *clipFeed) next() *stream.AccessUnit {
	au := c.aus[c.n%len(c.aus)]
	dts := int64(c.n) * 3600
	c.n++
	return &stream.AccessUnit{DTS: dts, PTS: dts, Duration: 3600, NALUs: au, Key: c.params.Kind.IsKey(au), Params: c.params,
		Received: c.t0.Add(stream.Duration(dts))}
}

// diskCamera is a fresh database with one recording camera in it.
func diskCamera(t *testing.T) (*pgxpool.Pool, *camera.Camera) {
	t.Helper()
	pool := testdb.New(t)
	sp := camera.Spec{Code: "DISK-1", Name: "disk", Location: &camera.Point{Type: "Point", Coordinates: [2]float64{113.68, 34.79}},
		MainURL: "rtsp://127.0.0.1:1/x", Record: true}
	if err := sp.Check(geo.CRSWGS84); err != nil {
		t.Fatal(err)
	}
	cam, err := camera.NewStore(pool).Create(context.Background(), sp)
	if err != nil {
		t.Fatal(err)
	}
	return pool, cam
}

// diskRig is a recording camera whose recorder sees the free space the
// test sets, with a floor of 1 GiB and one-second fragments unless cfg
// says otherwise, and the writer of the camera's files.
type diskRig struct {
	pool *pgxpool.Pool
	cam  *camera.Camera
	free atomic.Uint64
	r    *Recorder
	w    *fileWriter
}

func newDiskRig(t *testing.T, free uint64, cfg Config) *diskRig {
	t.Helper()
	d := &diskRig{}
	d.pool, d.cam = diskCamera(t)
	d.free.Store(free)
	cfg.Dir = t.TempDir()
	if cfg.FragmentDuration == 0 {
		cfg.FragmentDuration = time.Second
	}
	if cfg.MinFreeBytes == 0 {
		cfg.MinFreeBytes = 1 << 30
	}
	cfg.FreeSpace = func(string) (uint64, error) { return d.free.Load(), nil }
	d.r = NewRecorder(cfg, NewStore(d.pool))
	d.w = &fileWriter{r: d.r, camera: d.cam.ID, log: d.r.cfg.Logger, hub: stream.NewHub(stream.HubOptions{})}
	return d
}

// TestDiskFull: a write that fails for want of space (the kernel's own
// ENOSPC, from /dev/full) stops recording cleanly — the file keeps its
// whole fragments and is indexed, the state, the event and the metric say
// so — and recording resumes with a new file, after a gap, once free space
// is back over the floor.
func TestDiskFull(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var told []string
	d := newDiskRig(t, 10<<30, Config{FileDuration: time.Minute,
		OnDisk: func(st DiskState) {
			mu.Lock()
			defer mu.Unlock()
			told = append(told, st.State)
		}})
	pool, cam, r, w := d.pool, d.cam, d.r, d.w
	feed := newClipFeed(t, time.Now().Add(-time.Minute).Truncate(time.Millisecond))
	// Three seconds: a file with two fragments written and indexed (open).
	for range 75 {
		if err := w.add(ctx, feed.next()); err != nil {
			t.Fatal(err)
		}
	}
	store := NewStore(pool)
	recs, _, err := store.List(ctx, cam.ID, feed.t0.Add(-time.Minute), feed.t0.Add(time.Hour))
	if err != nil || len(recs) != 1 || !recs[0].Open || len(recs[0].Fragments) != 2 {
		t.Fatalf("while writing: %+v, %v; want one open file of 2 fragments", recs, err)
	}
	// The disk fills up: the next fragment's write fails.
	real := w.f
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.f = full
	var werr error
	for werr == nil && feed.n < 200 {
		werr = w.add(ctx, feed.next())
	}
	if werr == nil || !strings.Contains(werr.Error(), "no space left") {
		t.Fatalf("write to a full disk: %v", werr)
	}
	w.close(ctx)
	real.Close()
	if st := r.DiskState(); st.State != DiskFull || !strings.Contains(st.Message, "no space left") || strings.Contains(st.Message, "/") {
		t.Errorf("state %+v, want disk_full with the reason", st)
	}
	stoppedAt := feed.next().Received
	// Pictures while the disk is full are dropped: no file opens.
	for range 50 {
		if err := w.add(ctx, feed.next()); err != nil {
			t.Fatal(err)
		}
	}
	if w.f != nil {
		t.Error("a file opened while the disk is full")
	}
	recs, _, _ = store.List(ctx, cam.ID, feed.t0.Add(-time.Minute), feed.t0.Add(time.Hour))
	if len(recs) != 1 || recs[0].Open || len(recs[0].Fragments) != 2 {
		t.Errorf("after the failed write: %+v; want the file closed with its 2 whole fragments", recs)
	}
	// Free space over the floor but not by a quarter more: still stopped.
	d.free.Store(1<<30 + 100<<20)
	if st := r.CheckDisk(ctx); st.State != DiskFull {
		t.Errorf("just over the floor: %s, want still disk_full", st.State)
	}
	d.free.Store(2 << 30)
	if st := r.CheckDisk(ctx); st.State != DiskOK || st.FreeBytes != 2<<30 {
		t.Errorf("space back: %+v", st)
	}
	for range 50 {
		if err := w.add(ctx, feed.next()); err != nil {
			t.Fatal(err)
		}
	}
	w.close(ctx)
	recs, gaps, _ := store.List(ctx, cam.ID, feed.t0.Add(-time.Minute), feed.t0.Add(time.Hour))
	if len(recs) != 2 || len(gaps) != 1 || !strings.Contains(gaps[0].Reason, "disk full") || gaps[0].From.After(stoppedAt) {
		t.Errorf("after resuming: %d files, gaps %+v; want a second file after a disk-full gap", len(recs), gaps)
	}
	mu.Lock()
	if strings.Join(told, ",") != "disk_full,ok" {
		t.Errorf("OnDisk heard %v", told)
	}
	mu.Unlock()
	var evs []string
	rows, _ := pool.Query(ctx, `SELECT type FROM events WHERE type LIKE 'recording.%' ORDER BY id`)
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		evs = append(evs, s)
	}
	rows.Close()
	if strings.Join(evs, ",") != EventDiskFull+","+EventResumed {
		t.Errorf("events %v", evs)
	}
}

// TestDiskFloor: free space under the floor stops recording before any
// write fails; the open file is closed and indexed.
func TestDiskFloor(t *testing.T) {
	ctx := context.Background()
	d := newDiskRig(t, 10<<30, Config{})
	pool, cam, r, w := d.pool, d.cam, d.r, d.w
	feed := newClipFeed(t, time.Now().Add(-time.Minute).Truncate(time.Millisecond))
	for range 60 {
		if err := w.add(ctx, feed.next()); err != nil {
			t.Fatal(err)
		}
	}
	d.free.Store(100 << 20)
	if st := r.CheckDisk(ctx); st.State != DiskFull || st.FreeBytes != 100<<20 || !strings.Contains(st.Message, "100 MiB free") {
		t.Fatalf("under the floor: %+v", st)
	}
	if err := w.add(ctx, feed.next()); err != nil || w.f != nil {
		t.Fatalf("recording goes on under the floor: %v", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(r)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		got[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
	}
	if got["gridwatch_recording_disk_full"] != 1 || got["gridwatch_recording_disk_free_bytes"] != 100<<20 {
		t.Errorf("metrics %v", got)
	}
	recs, _, _ := NewStore(pool).List(ctx, cam.ID, feed.t0.Add(-time.Minute), feed.t0.Add(time.Hour))
	if len(recs) != 1 || recs[0].Open {
		t.Errorf("%+v: want the file closed and indexed", recs)
	}
}

// TestDiskFullBeforeAFile: a camera whose file was not open yet when the
// disk filled records the gap from its first dropped picture.
func TestDiskFullBeforeAFile(t *testing.T) {
	ctx := context.Background()
	d := newDiskRig(t, 100<<20, Config{})
	pool, cam, r, w := d.pool, d.cam, d.r, d.w
	if st := r.CheckDisk(ctx); st.State != DiskFull {
		t.Fatalf("state %+v", st)
	}
	feed := newClipFeed(t, time.Now().Add(-time.Minute).Truncate(time.Millisecond))
	first := feed.next()
	for au := first; feed.n < 40; au = feed.next() {
		if err := w.add(ctx, au); err != nil || w.f != nil {
			t.Fatalf("picture %d while full: %v (file open %v)", feed.n, err, w.f != nil)
		}
	}
	d.free.Store(2 << 30)
	r.CheckDisk(ctx)
	for range 60 {
		if err := w.add(ctx, feed.next()); err != nil {
			t.Fatal(err)
		}
	}
	w.close(ctx)
	recs, gaps, _ := NewStore(pool).List(ctx, cam.ID, feed.t0.Add(-time.Minute), feed.t0.Add(time.Hour))
	if len(recs) != 1 || len(gaps) != 1 || !gaps[0].From.Equal(first.Received) || !strings.Contains(gaps[0].Reason, "disk full") {
		t.Errorf("%d files, gaps %+v: want one file after a disk-full gap from %v", len(recs), gaps, first.Received)
	}
}
