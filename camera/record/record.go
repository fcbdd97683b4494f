// Package record keeps what the cameras see: continuous fragmented MP4 on
// local disk, indexed in PostgreSQL by camera and time range, so any moment
// plays back at once without scanning files.
//
// A recording camera's main stream is written to
// <dir>/<camera>/<YYYY-MM-DD>/<start unix ms>.mp4: an initialisation segment,
// then fragments (moof+mdat) of about FragmentDuration, each starting on a
// keyframe and written in one write followed by a sync, grouped into files
// of about FileDuration. A file is indexed when it is closed; a crash loses
// at most the fragment being written, because Reconcile indexes at start
// what the files hold (and cuts a torn last fragment). Where the camera
// recorded nothing (offline, stopped) a gap is recorded.
package record

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"gridwatch/camera/stream"
)

// Config configures a Recorder. Zero durations take the defaults.
type Config struct {
	// Dir is the recordings directory, <data-dir>/recordings.
	Dir string
	// FragmentDuration is the least length of a fragment (default 2 s):
	// a fragment ends at the first keyframe after it. FileDuration is the
	// least length of a file (default 60 s).
	FragmentDuration, FileDuration time.Duration
	// GapTolerance: pictures arriving this much later than their
	// timestamps say end the file and record a gap (default 2 s).
	GapTolerance time.Duration
	Logger       *slog.Logger
}

func (c *Config) defaults() {
	if c.FragmentDuration <= 0 {
		c.FragmentDuration = 2 * time.Second
	}
	if c.FileDuration <= 0 {
		c.FileDuration = time.Minute
	}
	if c.GapTolerance <= 0 {
		c.GapTolerance = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Recorder writes camera streams to disk and their index to the Store.
type Recorder struct {
	cfg   Config
	store *Store
}

// NewRecorder returns a recorder writing under cfg.Dir and indexing into store.
func NewRecorder(cfg Config, store *Store) *Recorder {
	cfg.defaults()
	return &Recorder{cfg: cfg, store: store}
}

// Record writes camera's stream from hub until ctx ends or the stream
// does, closing (and indexing) its last file on the way out.
func (r *Recorder) Record(ctx context.Context, camera int64, hub *stream.Hub) error {
	log := r.cfg.Logger.With("camera", camera)
	v := hub.Subscribe()
	defer v.Close()
	w := &fileWriter{r: r, camera: camera, log: log}
	// Closing the last file must reach the index even when ctx has ended.
	defer w.close(context.WithoutCancel(ctx))
	var batch []*stream.AccessUnit
	for {
		var err error
		batch, err = v.Next(ctx, batch)
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, stream.ErrClosed) {
				return nil
			}
			return err
		}
		for _, au := range batch {
			if err := w.add(ctx, au); err != nil {
				log.Error("recording", "err", err)
				w.close(ctx)
			}
		}
		clear(batch)
	}
}

// fileWriter is the file being written for one camera.
type fileWriter struct {
	r      *Recorder
	camera int64
	log    *slog.Logger

	f        *os.File
	rel      string // path relative to the recordings directory
	start    time.Time
	firstDTS int64
	params   *stream.Params
	size     int64
	initSize int
	frags    []Fragment
	pending  []*stream.AccessUnit
	lastEnd  time.Time // wall-clock end of what was last written or closed
	seq      uint32
}

// add takes one picture.
func (w *fileWriter) add(ctx context.Context, au *stream.AccessUnit) error {
	if w.f != nil {
		expected := w.start.Add(stream.Duration(au.DTS - w.firstDTS))
		late := au.Received.Sub(expected)
		switch {
		case late > w.r.cfg.GapTolerance || late < -w.r.cfg.GapTolerance:
			// Pictures stopped for a while (the camera went away) or the
			// clocks drifted apart: what follows starts a new file.
			end := w.end()
			w.close(ctx)
			if au.Received.Sub(end) > w.r.cfg.GapTolerance {
				w.gap(ctx, end, au.Received, "no pictures from the camera")
			}
		case au.Params != w.params && !w.params.Same(au.Params.SPS, au.Params.PPS):
			// A new format needs a new initialisation segment: a new file.
			w.close(ctx)
		}
	}
	if w.f == nil {
		if !au.Key {
			return nil // a file starts on a keyframe
		}
		if err := w.open(au); err != nil {
			return err
		}
	}
	if au.Key && len(w.pending) > 0 && stream.Duration(au.DTS-w.pending[0].DTS) >= w.r.cfg.FragmentDuration {
		if err := w.flush(au.DTS); err != nil {
			return err
		}
		if stream.Duration(au.DTS-w.firstDTS) >= w.r.cfg.FileDuration {
			w.close(ctx)
			if err := w.open(au); err != nil {
				return err
			}
		}
	}
	w.pending = append(w.pending, au)
	return nil
}

// end is the wall-clock end of what the file holds, pending pictures included.
func (w *fileWriter) end() time.Time {
	if len(w.pending) == 0 {
		if len(w.frags) == 0 {
			return w.start
		}
		last := w.frags[len(w.frags)-1]
		return w.start.Add(time.Duration(last.Start+last.Duration) * time.Millisecond)
	}
	last := w.pending[len(w.pending)-1]
	return w.start.Add(stream.Duration(last.DTS + last.Duration - w.firstDTS))
}

// open starts a file at keyframe au.
func (w *fileWriter) open(au *stream.AccessUnit) error {
	init, err := stream.InitSegment(au.Params)
	if err != nil {
		return err
	}
	start := au.Received
	w.rel = filepath.Join(strconv.FormatInt(w.camera, 10), start.UTC().Format("2006-01-02"), strconv.FormatInt(start.UnixMilli(), 10)+".mp4")
	abs := filepath.Join(w.r.cfg.Dir, w.rel)
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	f, err := os.OpenFile(abs, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	if _, err := f.Write(init); err != nil {
		f.Close()
		os.Remove(abs)
		return fmt.Errorf("record: %w", err)
	}
	w.f, w.start, w.firstDTS, w.params = f, start, au.DTS, au.Params
	w.size, w.initSize, w.frags, w.pending = int64(len(init)), len(init), nil, w.pending[:0]
	return nil
}

// flush writes the pending pictures as one fragment ending at endDTS, in
// one write, and syncs it: once flush returns, a crash keeps it.
func (w *fileWriter) flush(endDTS int64) error {
	if len(w.pending) == 0 {
		return nil
	}
	w.seq++
	data, err := stream.Fragment(w.seq, w.pending, endDTS)
	if err != nil {
		return err
	}
	if _, err := w.f.Write(data); err != nil {
		return fmt.Errorf("record: write %s: %w", w.rel, err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("record: sync %s: %w", w.rel, err)
	}
	startMS := stream.Duration(w.pending[0].DTS - w.firstDTS).Milliseconds()
	endMS := stream.Duration(endDTS - w.firstDTS).Milliseconds()
	w.frags = append(w.frags, Fragment{Offset: w.size, Size: int64(len(data)), Start: startMS, Duration: endMS - startMS})
	w.size += int64(len(data))
	clear(w.pending)
	w.pending = w.pending[:0]
	return nil
}

// close flushes and closes the file and indexes it; a file without a
// fragment is removed.
func (w *fileWriter) close(ctx context.Context) {
	if w.f == nil {
		return
	}
	if n := len(w.pending); n > 0 {
		last := w.pending[n-1]
		if err := w.flush(last.DTS + last.Duration); err != nil {
			w.log.Error("recording: last fragment", "err", err)
		}
	}
	abs := filepath.Join(w.r.cfg.Dir, w.rel)
	if err := w.f.Close(); err != nil {
		w.log.Error("recording: close", "file", w.rel, "err", err)
	}
	w.f = nil
	if len(w.frags) == 0 {
		os.Remove(abs)
		return
	}
	rec := Recording{
		Camera: w.camera, Path: w.rel, Start: w.start, End: w.end(), Bytes: w.size,
		Codec: w.params.Codec, Width: w.params.Width, Height: w.params.Height,
		InitSize: w.initSize, Fragments: w.frags,
	}
	w.lastEnd = rec.End
	if err := w.r.store.Add(ctx, rec); err != nil {
		// The file stays: Reconcile indexes it at the next start.
		w.log.Error("recording: index", "file", w.rel, "err", err)
	}
}

func (w *fileWriter) gap(ctx context.Context, from, to time.Time, reason string) {
	if err := w.r.store.AddGap(ctx, w.camera, from, to, reason); err != nil {
		w.log.Error("recording: gap", "err", err)
	}
}
