// Package record keeps what the cameras see: continuous fragmented MP4 on
// local disk, indexed in PostgreSQL by camera and time range, so any moment
// plays back at once without scanning files.
//
// A recording camera's main stream is written to
// <dir>/<camera>/<YYYY-MM-DD>/<start unix ms>.mp4: an initialisation segment,
// then fragments (moof+mdat) of about FragmentDuration, each starting on a
// keyframe and written in one write followed by a sync, grouped into files
// of about FileDuration. A file is indexed from its first fragment on, and
// its row grows with each fragment, so playback reaches the last seconds;
// a crash loses at most the fragment being written, because Reconcile
// checks at start what the files hold (and cuts a torn last fragment). Where the camera
// recorded nothing (offline, stopped) a gap is recorded.
//
// Evidence exports are cut by concern: export.go (the request and the
// export rows: get, hold, delete, verify), export_limits.go (what an export
// may cost), export_run.go (the background job runner) and export_clip.go
// (the pictures a range holds and the MP4 written from them, not
// re-encoded); their expiry and orphaned files sit with the recordings'
// retention in retention.go.
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
	"gridwatch/internal/fence"
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
	// MinFreeBytes is the free space recording leaves on the disk
	// (default DefaultMinFreeBytes): under it, recording stops cleanly
	// until a quarter more is free again. FreeSpace measures it (default:
	// statfs of Dir); OnDisk hears when recording stops and resumes.
	MinFreeBytes uint64
	FreeSpace    func(dir string) (uint64, error)
	OnDisk       func(DiskState)
	// Several nodes: Node is this node's id (its files' rows say so),
	// Objects the object store closed files go to (nil: they stay on the
	// local disk), Peers how to read a file another node holds.
	Node    string
	Objects Objects
	Peers   Peers
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
	if c.MinFreeBytes == 0 {
		c.MinFreeBytes = DefaultMinFreeBytes
	}
	if c.FreeSpace == nil {
		c.FreeSpace = statfsFree
	}
}

// closeTimeout bounds the last index update of a recorder that stops.
const closeTimeout = 10 * time.Second

// indexTimeout bounds the index update after each fragment.
const indexTimeout = 2 * time.Second

// Recorder writes camera streams to disk and their index to the Store.
type Recorder struct {
	cfg   Config
	store *Store
	disk  disk
	// closed is signalled when a file closes (the uploader wakes).
	closed chan struct{}
}

// NewRecorder returns a recorder writing under cfg.Dir and indexing into store.
func NewRecorder(cfg Config, store *Store) *Recorder {
	cfg.defaults()
	r := &Recorder{cfg: cfg, store: store, closed: make(chan struct{}, 1)}
	r.disk.state = DiskState{State: DiskOK, Since: time.Now(), MinFreeBytes: cfg.MinFreeBytes}
	return r
}

// Record writes camera's stream from hub until ctx ends or the stream
// does, closing (and indexing) its last file on the way out.
func (r *Recorder) Record(ctx context.Context, camera int64, hub *stream.Hub) error {
	log := r.cfg.Logger.With("camera", camera)
	v := hub.SubscribeAV()
	defer v.Close()
	w := &fileWriter{r: r, camera: camera, log: log, hub: hub}
	// Where the camera's footage last ended: the time between then and
	// this recorder's first file is a gap (its node stopped or died and
	// this one took the camera over), when it is recent.
	if end, err := r.store.LastEnd(ctx, camera); err == nil && time.Since(end) < resumeWindow {
		w.resume = end
	}
	// Closing the last file must reach the index even when ctx has ended
	// (bounded: a database that does not answer must not hold a hand-over).
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		w.close(cctx)
	}()
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
			err := w.add(ctx, au)
			if w.stale {
				// Another node owns the camera now: this one stops,
				// keeping only what the index holds.
				w.discardUnindexed()
				return fence.ErrStale
			}
			if err != nil {
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
	hub    *stream.Hub

	f        *os.File
	rel      string // path relative to the recordings directory
	start    time.Time
	firstDTS int64
	params   *stream.Params
	audio    *stream.Audio // the file's audio track (AAC, Opus), nil for none
	size     int64
	initSize int
	frags    []Fragment
	pending  []*stream.AccessUnit
	// pendingAudio are the audio frames of the pending fragment.
	pendingAudio []*stream.AccessUnit
	lastEnd      time.Time // wall-clock end of what was last written or closed
	seq          uint32
	// stopped is when a full disk stopped this camera's recording; the
	// next file records the gap since.
	stopped time.Time
	// indexed is how much of the file the index holds (0: none yet);
	// stale is set once the index refused a write for a stale fence.
	indexed int64
	stale   bool
	// resume is where the camera's footage ended before this recorder
	// (zero: long ago, or never).
	resume time.Time
}

// resumeWindow is how recent the end of a camera's footage must be for a
// recorder that starts on it to record the time since as a gap: a camera
// taken over from a stopped or dead node, or a node restarted. Older ends
// are recording that was turned off, not lost.
const resumeWindow = 10 * time.Minute

// resumeGapMin is the least time between the end of a camera's footage and
// a new recorder's first file that is listed as a gap: two recorders never
// abut exactly, and a hand-over loses at least the wait for a keyframe.
const resumeGapMin = 500 * time.Millisecond

// put indexes rec, noting how much of the file the index now covers, or
// that it was refused because this node no longer owns the camera.
func (w *fileWriter) put(ctx context.Context, rec Recording) error {
	err := w.r.store.Put(ctx, rec)
	switch {
	case err == nil:
		w.indexed = rec.Bytes
	case fence.IsStale(err):
		w.stale = true
	}
	return err
}

// discardUnindexed ends the file at what the index holds (removing it when
// it holds none of it), after a fenced write was refused: what this node
// wrote after losing the camera must not be indexed later by Reconcile,
// beside the new owner's footage.
func (w *fileWriter) discardUnindexed() {
	if w.f != nil {
		_ = w.f.Close()
		w.f = nil
	}
	if w.rel == "" {
		return
	}
	abs := filepath.Join(w.r.cfg.Dir, w.rel)
	if w.indexed == 0 {
		_ = os.Remove(abs)
	} else if err := os.Truncate(abs, w.indexed); err != nil {
		w.log.Error("recording: cut what the index does not hold", "file", w.rel, "err", err)
	}
	clear(w.pending)
	w.pending, w.frags = w.pending[:0], nil
	clear(w.pendingAudio)
	w.pendingAudio = w.pendingAudio[:0]
	// The row (what the index holds) is finished: nothing grows it now.
	ctx, cancel := context.WithTimeout(context.Background(), indexTimeout)
	defer cancel()
	if err := w.r.store.finish(ctx, w.rel); err != nil {
		w.log.Warn("recording: finish the row of a cut file", "file", w.rel, "err", err)
	}
	w.log.Info("recording stopped: this node no longer owns the camera", "file", w.rel)
	w.rel = ""
}

// add takes one picture or audio frame.
func (w *fileWriter) add(ctx context.Context, au *stream.AccessUnit) error {
	if au.Audio != nil {
		// Audio goes into the file it began in, with the pictures around
		// it; a track the file was not opened with waits for the next file.
		if w.f != nil && len(w.pending) > 0 && au.Audio == w.audio {
			w.pendingAudio = append(w.pendingAudio, au)
		}
		return nil
	}
	if w.r.isFull() {
		w.close(ctx)
		if w.stopped.IsZero() {
			w.stopped = au.Received // nothing was open: the gap starts now
		}
		return nil
	}
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
		case au.Params != w.params && !w.params.Equal(au.Params), au.Key && w.hub.LiveAudio() != w.audio:
			// A new format needs a new initialisation segment: a new file.
			w.close(ctx)
		}
	}
	if w.f == nil {
		if !au.Key {
			return nil // a file starts on a keyframe
		}
		if err := w.open(ctx, au); err != nil {
			return err
		}
		if w.f == nil {
			return nil // the disk is full
		}
	}
	if au.Key && len(w.pending) > 0 && stream.Duration(au.DTS-w.pending[0].DTS) >= w.r.cfg.FragmentDuration {
		if err := w.flush(ctx, au.DTS); err != nil {
			return err
		}
		if stream.Duration(au.DTS-w.firstDTS) >= w.r.cfg.FileDuration {
			w.close(ctx)
			if err := w.open(ctx, au); err != nil {
				return err
			}
			if w.f == nil {
				return nil // the disk is full
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

// open starts a file at keyframe au, unless the disk is full.
func (w *fileWriter) open(ctx context.Context, au *stream.AccessUnit) error {
	if w.r.CheckDisk(ctx).State == DiskFull {
		return nil
	}
	if !w.stopped.IsZero() {
		w.gap(ctx, w.stopped, au.Received, "recording stopped: disk full")
		w.stopped = time.Time{}
	}
	if !w.resume.IsZero() {
		if au.Received.Sub(w.resume) > resumeGapMin {
			w.gap(ctx, w.resume, au.Received, "not recorded: the camera's recorder stopped (node stopped, died or handed it over) until another took it")
		}
		w.resume = time.Time{}
	}
	audio := w.hub.LiveAudio()
	init, err := stream.InitSegment(au.Params, audio)
	if err != nil {
		return err
	}
	start := au.Received
	w.rel = filepath.Join(strconv.FormatInt(w.camera, 10), start.UTC().Format("2006-01-02"), strconv.FormatInt(start.UnixMilli(), 10)+".mp4")
	abs := filepath.Join(w.r.cfg.Dir, w.rel)
	err = os.MkdirAll(filepath.Dir(abs), 0o750)
	var f *os.File
	if err == nil {
		f, err = os.OpenFile(abs, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	}
	if isNoSpace(err) {
		// No room for a directory or a file (blocks or inodes): as full.
		w.r.noSpace(ctx, err)
		w.stopped = au.Received
		return nil
	}
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	if _, err := f.Write(init); err != nil {
		f.Close()
		os.Remove(abs)
		if isNoSpace(err) {
			w.r.noSpace(ctx, err)
			w.stopped = au.Received
			return nil
		}
		return fmt.Errorf("record: %w", err)
	}
	w.f, w.start, w.firstDTS, w.params, w.audio = f, start, au.DTS, au.Params, audio
	w.size, w.initSize, w.frags, w.pending = int64(len(init)), len(init), nil, w.pending[:0]
	w.indexed = 0
	return nil
}

// flush writes the pending pictures as one fragment ending at endDTS, in
// one write, syncs it and indexes it: once flush returns, a crash keeps
// it and playback finds it. A write that fails is cut off the file, which
// stays whole up to the fragment before.
func (w *fileWriter) flush(ctx context.Context, endDTS int64) error {
	if len(w.pending) == 0 {
		return nil
	}
	w.seq++
	data, err := stream.Fragment(w.seq, append(w.pending, w.pendingAudio...), endDTS)
	clear(w.pendingAudio)
	w.pendingAudio = w.pendingAudio[:0]
	if err != nil {
		return err
	}
	_, err = w.f.Write(data)
	if err == nil {
		err = w.f.Sync()
	}
	if err != nil {
		clear(w.pending)
		w.pending = w.pending[:0]
		if terr := w.f.Truncate(w.size); terr != nil {
			w.log.Error("recording: cut a failed write", "file", w.rel, "err", terr)
		}
		if isNoSpace(err) {
			w.r.noSpace(ctx, err)
		}
		return fmt.Errorf("record: write %s: %w", w.rel, err)
	}
	startMS := stream.Duration(w.pending[0].DTS - w.firstDTS).Milliseconds()
	endMS := stream.Duration(endDTS - w.firstDTS).Milliseconds()
	w.frags = append(w.frags, Fragment{Offset: w.size, Size: int64(len(data)), Start: startMS, Duration: endMS - startMS})
	w.size += int64(len(data))
	clear(w.pending)
	w.pending = w.pending[:0]
	// A slow database must not hold the camera's pictures up for long:
	// an update that misses is made good by the next, or when the file
	// closes (and by Reconcile after a crash).
	pctx, cancel := context.WithTimeout(ctx, indexTimeout)
	err = w.put(pctx, w.recording(true))
	cancel()
	if w.stale {
		return err
	}
	if err != nil {
		w.log.Warn("recording: index the growing file", "file", w.rel, "err", err)
	}
	return nil
}

// recording is the index row of the file as written so far.
func (w *fileWriter) recording(open bool) Recording {
	return Recording{
		Camera: w.camera, Path: w.rel, Start: w.start, End: w.end(), Bytes: w.size,
		Codec: w.params.Codec, Width: w.params.Width, Height: w.params.Height,
		InitSize: w.initSize, Fragments: w.frags, Status: "ok", Open: open,
	}
}

// close flushes and closes the file and indexes it; a file without a
// fragment is removed.
func (w *fileWriter) close(ctx context.Context) {
	if w.f == nil {
		return
	}
	if n := len(w.pending); n > 0 && !w.r.isFull() {
		last := w.pending[n-1]
		if err := w.flush(ctx, last.DTS+last.Duration); err != nil {
			if w.stale {
				w.discardUnindexed()
				return
			}
			w.log.Error("recording: last fragment", "err", err)
		}
	}
	clear(w.pending)
	w.pending = w.pending[:0]
	clear(w.pendingAudio)
	w.pendingAudio = w.pendingAudio[:0]
	if w.r.isFull() {
		w.stopped = w.end()
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
	rec := w.recording(false)
	w.lastEnd = rec.End
	err := w.put(ctx, rec)
	if err == nil {
		select {
		case w.r.closed <- struct{}{}:
		default:
		}
	}
	if err != nil {
		if w.stale {
			w.discardUnindexed()
			return
		}
		// The file stays: Reconcile indexes it at the next start.
		w.log.Error("recording: index", "file", w.rel, "err", err)
	}
}

func (w *fileWriter) gap(ctx context.Context, from, to time.Time, reason string) {
	if err := w.r.store.AddGap(ctx, w.camera, from, to, reason); err != nil {
		w.log.Error("recording: gap", "err", err)
	}
}
