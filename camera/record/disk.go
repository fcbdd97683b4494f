package record

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"gridwatch/internal/events"
)

// Disk states.
const (
	DiskOK   = "ok"
	DiskFull = "disk_full"
)

// Events about the recordings' disk, for everyone who may play footage.
const (
	EventDiskFull = "recording.disk_full"
	EventResumed  = "recording.resumed"
)

// DefaultMinFreeBytes is the free space recording leaves on its file
// system by default: the database and the logs may share it.
const DefaultMinFreeBytes = 256 << 20

// DiskState is whether the recorders are writing, and the free space.
type DiskState struct {
	State        string    `json:"state"`
	Since        time.Time `json:"since"`
	FreeBytes    uint64    `json:"free_bytes"`
	MinFreeBytes uint64    `json:"min_free_bytes"`
	Message      string    `json:"message,omitempty"`
}

// statfsFree is the space an unprivileged writer may still use on the
// file system holding dir.
func statfsFree(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// disk is the recorders' shared view of the file system: when free space
// falls under the floor (or a write fails for want of it), every camera
// closes its file cleanly and drops pictures; when a quarter more than the
// floor is free again, each starts a new file at its next keyframe. The
// time in between is recorded as a gap.
type disk struct {
	mu    sync.Mutex
	state DiskState
	full  bool // read on every picture: under mu like the rest
}

func (r *Recorder) isFull() bool {
	r.disk.mu.Lock()
	defer r.disk.mu.Unlock()
	return r.disk.full
}

// DiskState returns the recorders' disk state as last checked.
func (r *Recorder) DiskState() DiskState {
	r.disk.mu.Lock()
	defer r.disk.mu.Unlock()
	return r.disk.state
}

// CheckDisk measures the free space and stops or resumes recording
// accordingly; a change is published as an event and told to OnDisk.
func (r *Recorder) CheckDisk(ctx context.Context) DiskState {
	free, err := r.cfg.FreeSpace(r.cfg.Dir)
	if err != nil {
		// The directory may not exist before the first recording: the
		// file system above it answers the same.
		if free, err = r.cfg.FreeSpace(existingParent(r.cfg.Dir)); err != nil {
			r.cfg.Logger.Warn("recordings: free space", "err", err)
			return r.DiskState()
		}
	}
	min := r.cfg.MinFreeBytes
	r.disk.mu.Lock()
	st := r.disk.state
	st.FreeBytes, st.MinFreeBytes = free, min
	switch {
	case !r.disk.full && free < min:
		st = DiskState{State: DiskFull, Since: time.Now(), FreeBytes: free, MinFreeBytes: min,
			Message: fmt.Sprintf("%d MiB free, under the %d MiB recording keeps free", free>>20, min>>20)}
	case r.disk.full && free >= min+min/4:
		st = DiskState{State: DiskOK, Since: time.Now(), FreeBytes: free, MinFreeBytes: min}
	}
	return r.setDisk(ctx, st)
}

// noSpace stops recording at once after a write failed for want of space.
func (r *Recorder) noSpace(ctx context.Context, err error) {
	r.disk.mu.Lock()
	if r.disk.full {
		r.disk.mu.Unlock()
		return
	}
	// The event goes to every dashboard: the reason, not the path.
	r.cfg.Logger.Error("recordings: write failed for want of space", "err", err)
	msg := "no space left on the recordings' disk"
	if errors.Is(err, syscall.EDQUOT) {
		msg = "the recordings' disk quota is used up"
	}
	st := DiskState{State: DiskFull, Since: time.Now(), MinFreeBytes: r.cfg.MinFreeBytes, Message: msg}
	r.setDisk(ctx, st)
}

// setDisk takes the new state with r.disk.mu held, and releases it.
func (r *Recorder) setDisk(ctx context.Context, st DiskState) DiskState {
	changed := st.State != r.disk.state.State
	r.disk.state, r.disk.full = st, st.State == DiskFull
	r.disk.mu.Unlock()
	if !changed {
		return st
	}
	if st.State == DiskFull {
		r.cfg.Logger.Error("recordings: disk full, recording stopped", "free_bytes", st.FreeBytes, "reason", st.Message)
	} else {
		r.cfg.Logger.Info("recordings: space again, recording resumes", "free_bytes", st.FreeBytes)
	}
	typ := EventResumed
	if st.State == DiskFull {
		typ = EventDiskFull
	}
	err := pgx.BeginFunc(context.WithoutCancel(ctx), r.store.pool, func(tx pgx.Tx) error {
		return events.Publish(ctx, tx, typ, nil, map[string]any{"state": st.State, "since": st.Since,
			"free_bytes": st.FreeBytes, "min_free_bytes": st.MinFreeBytes, "message": st.Message})
	})
	if err != nil {
		r.cfg.Logger.Error("recordings: disk event", "err", err)
	}
	if r.cfg.OnDisk != nil {
		r.cfg.OnDisk(st)
	}
	return st
}

// RunDiskWatch checks the free space every interval until ctx ends.
func (r *Recorder) RunDiskWatch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		r.CheckDisk(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// existingParent is the nearest directory above dir that exists.
func existingParent(dir string) string {
	for {
		parent := filepath.Dir(dir)
		if _, err := os.Stat(parent); err == nil || parent == dir {
			return parent
		}
		dir = parent
	}
}

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

var (
	diskFullDesc = prometheus.NewDesc("gridwatch_recording_disk_full",
		"1 while recording is stopped because the recordings' disk is full.", nil, nil)
	diskFreeDesc = prometheus.NewDesc("gridwatch_recording_disk_free_bytes",
		"Free bytes on the recordings' file system, as last checked.", nil, nil)
	failingDesc = prometheus.NewDesc("gridwatch_recording_failing_cameras",
		"Cameras this node records whose files cannot be opened or written now (the cameras API's recording_error says why).", nil, nil)
)

// Describe implements prometheus.Collector.
func (r *Recorder) Describe(ch chan<- *prometheus.Desc) {
	ch <- diskFullDesc
	ch <- diskFreeDesc
	ch <- failingDesc
}

// Collect implements prometheus.Collector.
func (r *Recorder) Collect(ch chan<- prometheus.Metric) {
	st := r.DiskState()
	full := 0.0
	if st.State == DiskFull {
		full = 1
	}
	ch <- prometheus.MustNewConstMetric(diskFullDesc, prometheus.GaugeValue, full)
	ch <- prometheus.MustNewConstMetric(diskFreeDesc, prometheus.GaugeValue, float64(st.FreeBytes))
	ch <- prometheus.MustNewConstMetric(failingDesc, prometheus.GaugeValue, float64(r.failing.Load()))
}
