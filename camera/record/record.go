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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"gridwatch/camera/stream"
	"gridwatch/internal/database"
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
	// Now, when set, is the wall clock recordings are labelled by: a
	// picture is labelled with the time it came on this clock. Unset,
	// the label is the wall reading of its Received (the puller's clock,
	// time.Now). Either may step (NTP, an operator): see fileWriter.wall
	// for what the index keeps whatever it does.
	Now func() time.Time
	// Problem, when set, hears why a camera's recording fails (a file that
	// could not be opened or written: problem, since when) and, with an
	// empty problem, that it records again; the camera registry shows it
	// (camera.Store.SetRecordingError). It is called from the camera's
	// indexer, in order, and a call that fails for the database is tried
	// again like an index row; ctx carries the recorder's fence.
	Problem func(ctx context.Context, camera int64, problem string, since time.Time) error
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

// indexTimeout bounds each index write (a row, a gap): one that takes
// longer is tried again, and gives its pool connection back meanwhile.
const indexTimeout = 2 * time.Second

// Recorder writes camera streams to disk and their index to the Store.
type Recorder struct {
	cfg   Config
	store *Store
	disk  disk
	// closed is signalled when a file closes (the uploader wakes).
	closed chan struct{}
	// failing counts the cameras whose recording fails now (a file not
	// opened or written since the last fragment written).
	failing atomic.Int64
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
	w := &fileWriter{r: r, camera: camera, log: log, hub: hub, ix: newIndexer(r, camera, log)}
	// Where the camera's footage last ended: the time between then and
	// this recorder's first file is a gap (its node stopped or died and
	// this one took the camera over), when it is recent. Asked before
	// the pictures come, and bounded: a slow database delays the first
	// file by at most that.
	lctx, cancel := context.WithTimeout(ctx, indexTimeout)
	end, err := r.store.LastEnd(lctx, camera)
	cancel()
	if err == nil {
		if time.Since(end) < resumeWindow {
			w.resume = end
		}
		// Nothing of this recorder starts before what is indexed already,
		// even when the wall clock stepped back since.
		w.lastEnd = end
	} else if ctx.Err() == nil {
		log.Warn("recording: where the footage last ended is not known", "err", err)
	}
	v := hub.SubscribeAV()
	defer v.Close()
	w.ix.start(ctx)
	// Closing the last file must reach the index even when ctx has ended
	// (bounded: a database that does not answer must not hold a hand-over).
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		w.close(cctx)
		if w.problem != "" {
			r.failing.Add(-1) // no longer this recorder's to count
		}
		w.ix.stop(cctx)
		if w.ix.stale.Load() {
			w.discardUnindexed()
		}
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
			if w.isStale() {
				// Another node owns the camera now: this one stops,
				// keeping only what the index holds.
				w.discardUnindexed()
				return fence.ErrStale
			}
			if err != nil {
				log.Error("recording", "err", err)
				w.fail(ctx, err)
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

	f     *os.File
	rel   string    // path relative to the recordings directory
	start time.Time // wall-clock start, as indexed
	// arrived is when the file's first picture came (au.Received, with
	// its monotonic reading): lateness is measured from it, not from the
	// wall clock, which may step.
	arrived  time.Time
	firstDTS int64
	params   *stream.Params
	audio    *stream.Audio // the file's audio track (AAC, Opus), nil for none
	size     int64
	initSize int
	frags    []Fragment
	pending  []*stream.AccessUnit
	// pendingAudio are the audio frames of the pending fragment.
	pendingAudio []*stream.AccessUnit
	lastEnd      time.Time // wall-clock end of what was last closed (or indexed before this recorder)
	seq          uint32
	// stopped is when a full disk stopped this camera's recording; the
	// next file records the gap since.
	stopped time.Time
	// resume is where the camera's footage ended before this recorder
	// (zero: long ago, or never).
	resume time.Time
	// ix writes the file's rows and the camera's gaps to the index (nil:
	// one that writes each when it is handed over, made on first use).
	ix *indexer
	// problem is the recording problem last handed to Config.Problem;
	// told whether one was handed over yet (a new recorder clears what
	// an earlier one may have left, once it has written a fragment).
	problem string
	told    bool
}

// fail reports err as the camera's recording problem (Config.Problem),
// when it is a new one.
func (w *fileWriter) fail(ctx context.Context, err error) {
	w.tell(ctx, err.Error())
}

// tell counts the camera as failing or not (gridwatch_recording_failing_cameras)
// and hands problem to the indexer, to be written in order with the rows,
// unless it is the one last handed over.
func (w *fileWriter) tell(ctx context.Context, problem string) {
	if w.told && problem == w.problem {
		return
	}
	switch {
	case w.problem == "" && problem != "":
		w.r.failing.Add(1)
	case w.problem != "" && problem == "":
		w.r.failing.Add(-1)
	}
	w.problem, w.told = problem, true
	if w.r.cfg.Problem != nil {
		w.indexer().add(ctx, indexItem{problem: &problemItem{text: problem, since: time.Now()}})
	}
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

// index hands rec to the indexer; rows of a file that closed while the
// database was away (or too slow) are written once it answers again, so
// the index holds everything on disk without waiting for a restart's
// Reconcile.
func (w *fileWriter) index(ctx context.Context, rec Recording) {
	w.indexer().add(ctx, indexItem{rec: &rec})
}

func (w *fileWriter) indexer() *indexer {
	if w.ix == nil {
		w.ix = newIndexer(w.r, w.camera, w.log)
	}
	return w.ix
}

// isStale reports that the index refused a write for a stale fence:
// another node owns the camera now.
func (w *fileWriter) isStale() bool { return w.ix != nil && w.ix.stale.Load() }

// maxUnindexed bounds the rows and gaps a writer keeps to write: a
// database away for longer than that many files is caught up with by
// Reconcile at the next start.
const maxUnindexed = 1000

// discardUnindexed ends the files at what the index holds (removing each
// it holds none of), after a fenced write was refused: the file being
// written, and those closed whose last rows were not written yet. What
// this node wrote after losing the camera must not be indexed later by
// Reconcile, beside the new owner's footage.
func (w *fileWriter) discardUnindexed() {
	x := w.indexer()
	cut := x.unwritten()
	if w.f != nil {
		_ = w.f.Close()
		w.f = nil
		if _, ok := cut[w.rel]; !ok {
			cut[w.rel] = x.held(w.rel)
		}
	}
	clear(w.pending)
	w.pending, w.frags = w.pending[:0], nil
	clear(w.pendingAudio)
	w.pendingAudio = w.pendingAudio[:0]
	w.rel = ""
	for rel, held := range cut {
		abs := filepath.Join(w.r.cfg.Dir, rel)
		if held == 0 {
			_ = os.Remove(abs)
		} else if err := os.Truncate(abs, held); err != nil {
			w.log.Error("recording: cut what the index does not hold", "file", rel, "err", err)
		}
		// The row (what the index holds) is finished: nothing grows it now.
		ctx, cancel := context.WithTimeout(context.Background(), indexTimeout)
		if err := w.r.store.finish(ctx, rel); err != nil {
			w.log.Warn("recording: finish the row of a cut file", "file", rel, "err", err)
		}
		cancel()
		w.log.Info("recording stopped: this node no longer owns the camera", "file", rel)
	}
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
			w.stopped = w.wall(au) // nothing was open: the gap starts now
		}
		return nil
	}
	if w.f != nil {
		expected := w.arrived.Add(stream.Duration(au.DTS - w.firstDTS))
		late := au.Received.Sub(expected)
		switch {
		case late > w.r.cfg.GapTolerance || late < -w.r.cfg.GapTolerance:
			// Pictures stopped for a while (the camera went away) or the
			// clocks drifted apart: what follows starts a new file. The
			// gap is as long as the pictures were late (measured on
			// arrival, immune to steps of the wall clock), from the end of
			// the file.
			end := w.end()
			mediaEnd := w.arrived.Add(end.Sub(w.start))
			w.close(ctx)
			if missed := au.Received.Sub(mediaEnd); missed > w.r.cfg.GapTolerance {
				// Measured on arrival: a step of the wall clock meanwhile
				// neither lengthens the gap nor makes it overlap the next
				// file, which starts after it.
				to := end.Add(missed)
				w.gap(ctx, end, to, "no pictures from the camera")
				if to.After(w.lastEnd) {
					w.lastEnd = to
				}
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

// wall is the wall-clock time to label what starts at picture au with:
// when it came (on Config.Now, or au.Received's wall reading), but never
// before the end of what was last closed or indexed.
//
// The wall clock may step (NTP, an operator) while a camera records.
// Received carries a monotonic reading too (time.Now's), which durations
// use: lateness and gaps are measured on it, so a step is never taken for
// pictures missing; only labels are read off the wall clock. A file's end
// is its start plus the length of its pictures (their timestamps, which
// only rise), so a step never makes a file end before it starts nor grow
// by the step. A step forward leaves a hole in the index between two
// files (not a gap row: nothing was missed); a step back starts the next
// file where the last ended, so recordings never overlap (the labels run
// ahead of the clock until the camera's recording breaks for longer than
// the step). Files that follow one another without a step never overlap
// either: a keyframe may come a few milliseconds before the end its
// file's predecessor was given.
func (w *fileWriter) wall(au *stream.AccessUnit) time.Time {
	t := au.Received
	if now := w.r.cfg.Now; now != nil {
		t = now().Add(-time.Since(au.Received))
	}
	t = t.Round(0) // the wall reading: labels are compared as wall times
	if t.Before(w.lastEnd) {
		return w.lastEnd
	}
	return t
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
	start := w.wall(au)
	if !w.stopped.IsZero() {
		w.gap(ctx, w.stopped, start, "recording stopped: disk full")
		w.stopped = time.Time{}
	}
	if !w.resume.IsZero() {
		if start.Sub(w.resume) > resumeGapMin {
			w.gap(ctx, w.resume, start, "not recorded: the camera's recorder stopped (node stopped, died or handed it over) until another took it")
		}
		w.resume = time.Time{}
	}
	audio := w.hub.LiveAudio()
	init, err := stream.InitSegment(au.Params, audio)
	if err != nil {
		return err
	}
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
		w.stopped = start
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
			w.stopped = start
			return nil
		}
		return fmt.Errorf("record: %w", err)
	}
	w.f, w.start, w.arrived, w.firstDTS, w.params, w.audio = f, start, au.Received, au.DTS, au.Params, audio
	w.size, w.initSize, w.frags, w.pending = int64(len(init)), len(init), nil, w.pending[:0]
	return nil
}

// flush writes the pending pictures as one fragment ending at endDTS, in
// one write, syncs it and hands its row to the indexer: once flush
// returns, a crash keeps it, and playback finds it as soon as the database
// takes the row. A write that fails is cut off the file, which stays whole
// up to the fragment before.
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
	// A slow database must not hold the camera's pictures up: the row is
	// written by the indexer, and one it cannot write yet is replaced by
	// the next (and made good by Reconcile after a crash).
	w.index(ctx, w.recording(true))
	if w.isStale() {
		return fence.ErrStale
	}
	w.tell(ctx, "") // a fragment is on disk: the camera records
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
			if w.isStale() {
				w.discardUnindexed()
				return
			}
			w.log.Error("recording: last fragment", "err", err)
			w.fail(ctx, err)
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
		w.fail(ctx, fmt.Errorf("record: close %s: %w", w.rel, err))
	}
	w.f = nil
	if len(w.frags) == 0 {
		os.Remove(abs)
		return
	}
	rec := w.recording(false)
	w.lastEnd = rec.End
	// The file stays whatever the database does: its row is written once
	// the database takes it (and by Reconcile at the next start, if it
	// never does).
	w.index(ctx, rec)
	if w.isStale() {
		w.discardUnindexed()
	}
}

func (w *fileWriter) gap(ctx context.Context, from, to time.Time, reason string) {
	if !to.After(from) {
		return
	}
	w.indexer().add(ctx, indexItem{gap: &Gap{From: from, To: to, Reason: reason}})
}

// indexer writes one camera's index rows and gaps. Started (run), it
// writes them from a goroutine of its own, so that a slow or locked
// database never holds the camera's pictures up: the writer hands it the
// latest row of a file, which replaces that file's row not yet written,
// and goes on writing the file. A writer driven by hand (the tests) leaves
// it unstarted: each row is then written when it is handed over.
//
// Rows are written oldest first; a write that fails for the database (a
// timeout, a lock, the database away) stays and is tried again after
// retryIndex or with the next row, whichever comes first; one the index
// refuses for a stale fence stops all writing (see discardUnindexed).
type indexer struct {
	store   *Store
	problem func(ctx context.Context, camera int64, problem string, since time.Time) error
	log     *slog.Logger
	closed  chan struct{} // Recorder.closed: a file closed and indexed
	camera  int64

	mu sync.Mutex
	// queue are the rows and gaps to write, oldest first: one row per
	// file, the latest. seq numbers what is queued.
	queue []indexItem
	seq   uint64
	// indexed is how much of each file written to since its last row was
	// written the index holds (its closed row written: dropped).
	indexed map[string]int64
	stale   atomic.Bool

	// Started only: wake signals a new row; quit asks the goroutine to
	// write what it can and end, cancel ends its writes, done is closed
	// when it has ended.
	wake   chan struct{}
	quit   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// indexItem is a row or a gap to write.
type indexItem struct {
	seq     uint64
	rec     *Recording
	gap     *Gap
	problem *problemItem
	failed  bool // a write of it failed already
}

// problemItem is a camera's recording problem ("": none) to hand to
// Config.Problem.
type problemItem struct {
	text  string
	since time.Time
}

// retryIndex is how long the indexer waits to try a failed write again
// when no new row comes meanwhile.
const retryIndex = time.Second

func newIndexer(r *Recorder, camera int64, log *slog.Logger) *indexer {
	return &indexer{store: r.store, problem: r.cfg.Problem, log: log, closed: r.closed, camera: camera, indexed: map[string]int64{}}
}

// start runs the indexer's goroutine, its writes fenced by ctx's fence
// (ctx's end does not stop it: stop does).
func (x *indexer) start(ctx context.Context) {
	ctx, x.cancel = context.WithCancel(context.WithoutCancel(ctx))
	x.wake, x.quit, x.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go x.run(ctx)
}

func (x *indexer) run(ctx context.Context) {
	defer close(x.done)
	var retry *time.Timer
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		var again <-chan time.Time
		if !x.drain(ctx) {
			if retry == nil {
				retry = time.NewTimer(retryIndex)
			} else {
				retry.Reset(retryIndex)
			}
			again = retry.C
		}
		select {
		case <-x.wake:
		case <-again:
		case <-x.quit:
			x.drain(ctx)
			return
		}
	}
}

// stop ends the indexer's goroutine once it has written what it can
// (until ctx ends); what it could not write is left to the next start's
// Reconcile. It may be called more than once.
func (x *indexer) stop(ctx context.Context) {
	if x.done == nil {
		return
	}
	select {
	case <-x.quit:
	default:
		close(x.quit)
	}
	select {
	case <-x.done:
	case <-ctx.Done():
		x.cancel()
		<-x.done
	}
	x.cancel()
}

// add queues rec (replacing its file's row not yet written) or gap, and
// writes it (started: wakes the goroutine that does).
func (x *indexer) add(ctx context.Context, it indexItem) {
	x.mu.Lock()
	x.seq++
	it.seq = x.seq
	queued := false
	if it.problem != nil {
		// Only the latest problem matters: it replaces one not handed on yet.
		for i := range x.queue {
			if q := &x.queue[i]; q.problem != nil {
				*q = it
				queued = true
				break
			}
		}
	}
	if it.rec != nil {
		for i := range x.queue {
			if q := &x.queue[i]; q.rec != nil && q.rec.Path == it.rec.Path {
				it.failed = q.failed
				*q = it
				queued = true
				break
			}
		}
	}
	if !queued {
		if len(x.queue) >= maxUnindexed {
			old := x.queue[0]
			x.queue = x.queue[1:]
			x.log.Error("recording: too much not indexed: a row is left to Reconcile", "row", old.String())
		}
		x.queue = append(x.queue, it)
	}
	x.mu.Unlock()
	if x.done == nil {
		x.drain(ctx)
		return
	}
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

// drain writes the queue until it is empty (true) or a write fails for the
// database (false: to try again later), or a fence is stale.
func (x *indexer) drain(ctx context.Context) bool {
	for {
		x.mu.Lock()
		if len(x.queue) == 0 || x.stale.Load() {
			x.mu.Unlock()
			return true
		}
		it := x.queue[0]
		x.mu.Unlock()
		if ctx.Err() != nil {
			return false
		}
		wctx, cancel := context.WithTimeout(ctx, indexTimeout)
		var err error
		switch {
		case it.rec != nil:
			err = x.store.Put(wctx, *it.rec)
		case it.problem != nil:
			err = x.problem(wctx, x.camera, it.problem.text, it.problem.since)
		default:
			err = x.store.AddGap(wctx, x.camera, it.gap.From, it.gap.To, it.gap.Reason)
		}
		cancel()
		x.mu.Lock()
		head := len(x.queue) > 0 && x.queue[0].seq == it.seq
		switch {
		case err == nil:
			if it.rec != nil && it.rec.Bytes > x.indexed[it.rec.Path] {
				x.indexed[it.rec.Path] = it.rec.Bytes
			}
			if head {
				x.queue = x.queue[1:]
			}
		case fence.IsStale(err):
			x.stale.Store(true)
		case !retryable(err):
			// Never taken as it is: Reconcile at the next start
			// indexes the file from what it holds.
			x.log.Error("recording: index", "row", it.String(), "err", err)
			if head {
				x.queue = x.queue[1:]
			}
		default:
			if head {
				x.queue[0].failed = true
			}
		}
		x.mu.Unlock()
		switch {
		case err == nil && it.rec != nil && !it.rec.Open:
			if it.failed {
				x.log.Info("recording: indexed a file closed while the database was away", "file", it.rec.Path)
			}
			x.mu.Lock()
			delete(x.indexed, it.rec.Path)
			x.mu.Unlock()
			select {
			case x.closed <- struct{}{}: // for the object store's upload
			default:
			}
		case err != nil && fence.IsStale(err):
			return true
		case err != nil && retryable(err):
			if !it.failed {
				x.log.Warn("recording: index (tried again)", "row", it.String(), "err", err)
			}
			return false
		}
	}
}

// retryable reports a write that failed for the database's state (slow,
// locked, away, a conflict) rather than for what it wrote.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && strings.HasPrefix(pe.Code, "40") {
		return true // a serialization failure or a deadlock
	}
	return database.IsTimeout(err) || database.IsUnavailable(err) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// unwritten stops the indexer (no write in flight after it) and returns
// the files whose rows were not all written, with how much of each the
// index holds, and empties the queue.
func (x *indexer) unwritten() map[string]int64 {
	ctx, cancel := context.WithTimeout(context.Background(), indexTimeout)
	defer cancel()
	x.stop(ctx)
	x.mu.Lock()
	defer x.mu.Unlock()
	out := map[string]int64{}
	for _, it := range x.queue {
		if it.rec != nil {
			out[it.rec.Path] = x.indexed[it.rec.Path]
		}
	}
	x.queue = nil
	return out
}

// held is how much of the file at path the index holds.
func (x *indexer) held(path string) int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.indexed[path]
}

func (it indexItem) String() string {
	if it.rec != nil {
		return it.rec.Path
	}
	if it.problem != nil {
		return fmt.Sprintf("recording problem %q", it.problem.text)
	}
	return fmt.Sprintf("gap %s to %s", it.gap.From.Format(time.RFC3339), it.gap.To.Format(time.RFC3339))
}
