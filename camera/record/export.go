package record

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/pmp4"
	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/camera/stream"
)

// Export is an evidence export: its request, its state and, when done,
// the SHA-256 of its file and its manifest. HeldBy and HeldAt are set while
// an admin holds it against retention.
type Export struct {
	ID          int64          `json:"id"`
	CameraID    int64          `json:"camera_id"`
	From        time.Time      `json:"from"`
	To          time.Time      `json:"to"`
	IncidentID  *int64         `json:"incident_id"`
	Status      string         `json:"status"`
	Progress    float64        `json:"progress"`
	SHA256      *string        `json:"sha256"`
	Bytes       *int64         `json:"bytes"`
	Error       *string        `json:"error,omitempty"`
	Manifest    map[string]any `json:"manifest,omitempty"`
	RequestedBy string         `json:"requested_by"`
	CreatedAt   time.Time      `json:"created_at"`
	FinishedAt  *time.Time     `json:"finished_at"`
	Held        bool           `json:"held"`
	HeldBy      *string        `json:"held_by"`
	HeldAt      *time.Time     `json:"held_at"`
	// Existing is true when the request was answered with an identical
	// export made or queued before.
	Existing bool `json:"existing,omitempty"`
}

const exportColumns = `id, camera_id, lower(span), upper(span), incident_id, status, progress, sha256, bytes, error, manifest, requested_by, created_at, finished_at, held_by, held_at`

func scanExport(r pgx.Row) (Export, error) {
	var e Export
	err := r.Scan(&e.ID, &e.CameraID, &e.From, &e.To, &e.IncidentID, &e.Status, &e.Progress, &e.SHA256, &e.Bytes, &e.Error, &e.Manifest, &e.RequestedBy, &e.CreatedAt, &e.FinishedAt, &e.HeldBy, &e.HeldAt)
	e.Held = e.HeldAt != nil
	return e, err
}

// ExportLimits bound what exports may cost. Zero values take the defaults.
type ExportLimits struct {
	// MaxRange is the longest range one export covers (default 1 h).
	MaxRange time.Duration
	// MaxPending is how many exports one user may have queued or running
	// at once (default 2); more are refused with a retry hint.
	MaxPending int
	// MaxAge: a finished or failed export older than this is removed, file
	// and row (default 90 days), unless held (see Expire).
	MaxAge time.Duration
	// MinFreeBytes is the margin an export leaves free on the exports' disk
	// beyond its estimated size and those of the exports already queued
	// (default 256 MiB). FreeSpace measures free space (default: statfs).
	MinFreeBytes uint64
	FreeSpace    func(dir string) (uint64, error)
}

// Default export limits.
const (
	DefaultExportMaxRange   = time.Hour
	DefaultExportMaxPending = 2
	DefaultExportMaxAge     = 90 * 24 * time.Hour
	DefaultExportMinFree    = 256 << 20
)

func (l *ExportLimits) defaults() {
	if l.MaxRange <= 0 {
		l.MaxRange = DefaultExportMaxRange
	}
	if l.MaxPending <= 0 {
		l.MaxPending = DefaultExportMaxPending
	}
	if l.MaxAge <= 0 {
		l.MaxAge = DefaultExportMaxAge
	}
	if l.MinFreeBytes == 0 {
		l.MinFreeBytes = DefaultExportMinFree
	}
	if l.FreeSpace == nil {
		l.FreeSpace = statfsFree
	}
}

// Exporter makes exports in the background, one at a time.
type Exporter struct {
	store  *Store
	rec    *Recorder
	dir    string
	wake   chan struct{}
	limits ExportLimits
}

// NewExporter returns an exporter writing to dir (<data-dir>/exports) from
// the recorder's files, with the default limits.
func NewExporter(store *Store, rec *Recorder, dir string) *Exporter {
	x := &Exporter{store: store, rec: rec, dir: dir, wake: make(chan struct{}, 1)}
	x.limits.defaults()
	return x
}

// WithLimits sets the exporter's limits (zero values: the defaults) and
// returns it; call it before Run.
func (x *Exporter) WithLimits(l ExportLimits) *Exporter {
	l.defaults()
	x.limits = l
	return x
}

// Limits returns the limits in force.
func (x *Exporter) Limits() ExportLimits { return x.limits }

// Path is where export id's file is.
func (x *Exporter) Path(id int64) string {
	return filepath.Join(x.dir, strconv.FormatInt(id, 10)+".mp4")
}

// exportLock serialises export requests (pg_advisory_xact_lock), so that
// two identical requests find one export and a user's pending count is
// exact. Requests are rare; one lock is enough.
const exportLock = 0x67776578 // "gwex"

// Request queues an export of camera's footage from from to to, for
// incident when not nil. The same camera, range and incident asked again
// (while the first is queued, running or done) gets the first export, with
// Existing set. Refused: a range without footage (not found), longer than
// MaxRange (invalid), a user with MaxPending exports waiting (throttled,
// with retry_after_s), and a disk without room for the estimated size plus
// the margin (insufficient storage).
func (x *Exporter) Request(ctx context.Context, camera int64, from, to time.Time, incident *int64, by string) (Export, error) {
	if err := CheckRange(from, to); err != nil {
		return Export{}, err
	}
	if d := to.Sub(from); d > x.limits.MaxRange {
		return Export{}, gridwatch.Errorf(gridwatch.EInvalid, "the range is %s long; an export covers at most %s (--export-max-range)", d, x.limits.MaxRange).
			WithDetails(map[string]any{"range_s": d.Seconds(), "max_range_s": x.limits.MaxRange.Seconds(), "limit": "export-max-range"})
	}
	recs, _, err := x.store.List(ctx, camera, from, to)
	if err != nil {
		return Export{}, err
	}
	recs = okRecordings(recs)
	if len(recs) == 0 {
		return Export{}, gridwatch.Errorf(gridwatch.ENotFound, "camera %d has no footage between %s and %s", camera, from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	estimate := estimateBytes(recs, from, to)
	if estimate > maxExportBytes {
		return Export{}, gridwatch.Errorf(gridwatch.ETooLarge, "the range holds about %d bytes of video; one export holds at most %d: export a shorter range", estimate, int64(maxExportBytes)).
			WithDetails(map[string]any{"estimated_bytes": estimate, "max_bytes": int64(maxExportBytes)})
	}
	var e Export
	err = pgx.BeginFunc(ctx, x.store.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(exportLock)); err != nil {
			return fmt.Errorf("record: export: %w", err)
		}
		var err error
		e, err = scanExport(tx.QueryRow(ctx, `SELECT `+exportColumns+` FROM exports
			WHERE camera_id = $1 AND span = $2 AND incident_id IS NOT DISTINCT FROM $3 AND status IN ('queued', 'running', 'done')
			ORDER BY id LIMIT 1`, camera, span(from, to), incident))
		if err == nil {
			e.Existing = true
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("record: export: %w", err)
		}
		var pending int
		var promised int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE requested_by = $1), coalesce(sum(estimated_bytes), 0)
			FROM exports WHERE status IN ('queued', 'running')`, by).Scan(&pending, &promised); err != nil {
			return fmt.Errorf("record: export: %w", err)
		}
		if pending >= x.limits.MaxPending {
			return gridwatch.Errorf(gridwatch.EThrottled, "%s has %d exports queued or running; at most %d at a time (--export-max-pending): try again when one is done", by, pending, x.limits.MaxPending).
				WithDetails(map[string]any{"pending": pending, "max_pending": x.limits.MaxPending, "limit": "export-max-pending", "retry_after_s": 30})
		}
		if err := x.checkRoom(estimate + promised); err != nil {
			return err
		}
		e, err = scanExport(tx.QueryRow(ctx, `INSERT INTO exports (camera_id, span, incident_id, requested_by, estimated_bytes) VALUES ($1, $2, $3, $4, $5)
			RETURNING `+exportColumns, camera, span(from, to), incident, by, estimate))
		if err != nil {
			return fmt.Errorf("record: export: %w", err)
		}
		return audit.Record(ctx, tx, "export.request", "camera", strconv.FormatInt(camera, 10),
			map[string]any{"after": map[string]any{"export_id": e.ID, "from": from, "to": to, "incident_id": incident}})
	})
	if err != nil || e.Existing {
		return e, err
	}
	select {
	case x.wake <- struct{}{}:
	default:
	}
	return e, nil
}

// estimateBytes is the size of the recorded fragments overlapping the
// range: what an export of it writes, give or take a GOP and the moov.
func estimateBytes(recs []Recording, from, to time.Time) int64 {
	var n int64
	for _, r := range recs {
		for _, fr := range r.Fragments {
			fs := r.Start.Add(time.Duration(fr.Start) * time.Millisecond)
			if fs.Add(time.Duration(fr.Duration)*time.Millisecond).After(from) && fs.Before(to) {
				n += fr.Size
			}
		}
	}
	return n
}

// checkRoom refuses an export when the exports' disk has less free space
// than need plus the margin.
func (x *Exporter) checkRoom(need int64) error {
	if err := os.MkdirAll(x.dir, 0o750); err != nil {
		return fmt.Errorf("record: export: %w", err)
	}
	free, err := x.limits.FreeSpace(x.dir)
	if err != nil {
		return fmt.Errorf("record: export: free space: %w", err)
	}
	if want := uint64(need) + x.limits.MinFreeBytes; free < want {
		return gridwatch.Errorf(gridwatch.ENoSpace, "not enough free disk space for this export: it needs about %d bytes (with those queued) plus a margin of %d, and %d are free", need, x.limits.MinFreeBytes, free).
			WithDetails(map[string]any{"needed_bytes": need, "margin_bytes": x.limits.MinFreeBytes, "free_bytes": free})
	}
	return nil
}

func okRecordings(recs []Recording) []Recording {
	out := recs[:0:0]
	for _, r := range recs {
		if r.Status == "ok" {
			out = append(out, r)
		}
	}
	return out
}

// ForIncident lists the exports made for incident, newest first.
func (x *Exporter) ForIncident(ctx context.Context, incident int64) ([]Export, error) {
	rows, err := x.store.pool.Query(ctx, `SELECT `+exportColumns+` FROM exports WHERE incident_id = $1 ORDER BY id DESC`, incident)
	if err != nil {
		return nil, fmt.Errorf("record: exports of incident %d: %w", incident, err)
	}
	es, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Export, error) { return scanExport(r) })
	if err != nil {
		return nil, fmt.Errorf("record: exports of incident %d: %w", incident, err)
	}
	return es, nil
}

// Get returns export id.
func (x *Exporter) Get(ctx context.Context, id int64) (Export, error) {
	e, err := scanExport(x.store.pool.QueryRow(ctx, `SELECT `+exportColumns+` FROM exports WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, gridwatch.Errorf(gridwatch.ENotFound, "export %d not found", id)
	}
	return e, err
}

// Hold sets (held true) or clears an admin's hold on export id: a held
// export is never removed by retention nor deleted. The change is audited.
func (x *Exporter) Hold(ctx context.Context, id int64, held bool, by string) (Export, error) {
	var e Export
	err := pgx.BeginFunc(ctx, x.store.pool, func(tx pgx.Tx) error {
		var err error
		if held {
			e, err = scanExport(tx.QueryRow(ctx, `UPDATE exports SET held_by = coalesce(held_by, $2), held_at = coalesce(held_at, now())
				WHERE id = $1 RETURNING `+exportColumns, id, by))
		} else {
			e, err = scanExport(tx.QueryRow(ctx, `UPDATE exports SET held_by = NULL, held_at = NULL WHERE id = $1 RETURNING `+exportColumns, id))
		}
		if errors.Is(err, pgx.ErrNoRows) {
			return gridwatch.Errorf(gridwatch.ENotFound, "export %d not found", id)
		}
		if err != nil {
			return fmt.Errorf("record: hold export %d: %w", id, err)
		}
		action := "export.hold"
		if !held {
			action = "export.release"
		}
		return audit.Record(ctx, tx, action, "export", strconv.FormatInt(id, 10), map[string]any{"after": map[string]any{"held": held}})
	})
	return e, err
}

// Delete removes export id, row and file, audited with what it was. A held
// export, or one being made, is refused (conflict).
func (x *Exporter) Delete(ctx context.Context, id int64) error {
	err := pgx.BeginFunc(ctx, x.store.pool, func(tx pgx.Tx) error {
		e, err := scanExport(tx.QueryRow(ctx, `SELECT `+exportColumns+` FROM exports WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return gridwatch.Errorf(gridwatch.ENotFound, "export %d not found", id)
		}
		if err != nil {
			return fmt.Errorf("record: delete export %d: %w", id, err)
		}
		switch {
		case e.Held:
			return gridwatch.Errorf(gridwatch.EConflict, "export %d is held (by %s): clear the hold first", id, deref(e.HeldBy)).
				WithDetails(map[string]any{"held_by": e.HeldBy, "held_at": e.HeldAt})
		case e.Status == "running":
			return gridwatch.Errorf(gridwatch.EConflict, "export %d is being made: delete it when it is done", id)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM exports WHERE id = $1`, id); err != nil {
			return fmt.Errorf("record: delete export %d: %w", id, err)
		}
		return audit.Record(ctx, tx, "export.delete", "export", strconv.FormatInt(id, 10), map[string]any{"before": map[string]any{
			"camera_id": e.CameraID, "from": e.From, "to": e.To, "incident_id": e.IncidentID, "status": e.Status,
			"sha256": e.SHA256, "bytes": e.Bytes, "requested_by": e.RequestedBy, "created_at": e.CreatedAt}})
	})
	if err != nil {
		return err
	}
	// The row is gone first: a crash here leaves a file no row names,
	// which Expire removes.
	x.removeFile(id)
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (x *Exporter) removeFile(id int64) {
	if err := os.Remove(x.Path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		x.rec.cfg.Logger.Warn("export: remove file", "export", id, "err", err)
	}
}

// expirable: an export retention may remove — finished or failed, not
// held by an admin, and not evidence of an incident still open (an
// incident's exports are kept until it is closed or rejected, then age
// like the rest).
const expirable = `status IN ('done', 'failed') AND held_at IS NULL
	AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.id = exports.incident_id AND i.status NOT IN ('closed', 'rejected'))`

// Expire removes the exports created before now minus MaxAge that are
// expirable (see above), rows then files, each audited, and files in the
// exports directory that no export names (left by a crash). It returns how
// many exports it removed.
func (x *Exporter) Expire(ctx context.Context, now time.Time) (int, error) {
	var ids []int64
	err := pgx.BeginFunc(ctx, x.store.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `DELETE FROM exports WHERE created_at < $1 AND `+expirable+` RETURNING id, camera_id, sha256`, now.Add(-x.limits.MaxAge))
		if err != nil {
			return fmt.Errorf("record: expire exports: %w", err)
		}
		type gone struct {
			id, camera int64
			sha        *string
		}
		var gs []gone
		for rows.Next() {
			var g gone
			if err := rows.Scan(&g.id, &g.camera, &g.sha); err != nil {
				rows.Close()
				return fmt.Errorf("record: expire exports: %w", err)
			}
			gs = append(gs, g)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("record: expire exports: %w", err)
		}
		for _, g := range gs {
			ids = append(ids, g.id)
			if err := audit.Record(ctx, tx, "export.expire", "export", strconv.FormatInt(g.id, 10), map[string]any{"before": map[string]any{
				"camera_id": g.camera, "sha256": g.sha, "max_age_s": x.limits.MaxAge.Seconds()}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		x.removeFile(id)
	}
	x.removeOrphans(ctx)
	return len(ids), nil
}

// removeOrphans removes export files no row names: a delete or expiry
// that crashed between its row and its file. Files of exports being made
// (.part) are left alone.
func (x *Exporter) removeOrphans(ctx context.Context) {
	ents, err := os.ReadDir(x.dir)
	if err != nil {
		return
	}
	for _, ent := range ents {
		name := ent.Name()
		if filepath.Ext(name) != ".mp4" {
			continue
		}
		id, err := strconv.ParseInt(strings.TrimSuffix(name, ".mp4"), 10, 64)
		if err != nil {
			continue
		}
		var exists bool
		if err := x.store.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM exports WHERE id = $1)`, id).Scan(&exists); err == nil && !exists {
			x.removeFile(id)
		}
	}
}

// Verify recomputes the SHA-256 of export id's file.
func (x *Exporter) Verify(ctx context.Context, id int64) (stored, now string, err error) {
	e, err := x.Get(ctx, id)
	if err != nil {
		return "", "", err
	}
	if e.Status != "done" || e.SHA256 == nil {
		return "", "", gridwatch.Errorf(gridwatch.EConflict, "export %d is %s, not done", id, e.Status)
	}
	f, err := os.Open(x.Path(id))
	if err != nil {
		return *e.SHA256, "", gridwatch.Errorf(gridwatch.ENotFound, "export %d: its file is missing", id)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return *e.SHA256, "", err
	}
	return *e.SHA256, hex.EncodeToString(h.Sum(nil)), nil
}

// expireEvery is how often Run applies retention to exports.
const expireEvery = time.Hour

// Run makes queued exports until ctx ends (one left running by a crash is
// made again) and removes expired ones every hour.
func (x *Exporter) Run(ctx context.Context) {
	log := x.rec.cfg.Logger
	var lastExpire time.Time
	for {
		x.Drain(ctx)
		if time.Since(lastExpire) >= expireEvery {
			lastExpire = time.Now()
			if n, err := x.Expire(ctx, lastExpire); err != nil && ctx.Err() == nil {
				log.Error("export: retention", "err", err)
			} else if n > 0 {
				log.Info("export: retention removed old exports", "exports", n)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-x.wake:
		case <-time.After(time.Minute):
		}
	}
}

// Drain makes the exports queued (or left running by a crash) one after
// another, and returns when none is left or ctx ends.
func (x *Exporter) Drain(ctx context.Context) {
	log := x.rec.cfg.Logger
	for {
		e, err := scanExport(x.store.pool.QueryRow(ctx, `UPDATE exports SET status = 'running', progress = 0
			WHERE id = (SELECT id FROM exports WHERE status IN ('queued', 'running') ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
			RETURNING `+exportColumns))
		if errors.Is(err, pgx.ErrNoRows) || ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Error("export: next", "err", err)
			return
		}
		if err := x.make(ctx, e); err != nil && ctx.Err() == nil {
			log.Warn("export failed", "export", e.ID, "err", err)
			msg := err.Error()
			if gridwatch.ErrorCode(err) == gridwatch.EInternal {
				msg = "the export could not be made; see the server log"
			}
			_, _ = x.store.pool.Exec(ctx, `UPDATE exports SET status = 'failed', error = $2, finished_at = now() WHERE id = $1`, e.ID, msg)
		}
	}
}

// clipSample is one picture of an export: where its bytes are in a
// recorded file and when it was seen.
type clipSample struct {
	file      int // index into clip.files
	off       int64
	size      uint32
	dur       uint32 // 90 kHz ticks, as recorded
	ptsOffset int32
	key       bool
	wall      time.Time
}

// clip is what an export will hold: its pictures, cut to the request, from
// which files, and the gaps between them.
type clip struct {
	init    []byte
	files   []string
	samples []clipSample
	used    []map[string]any
	gaps    []map[string]any
}

// gapThreshold: a file starting this much later than the previous one ended
// is a gap in the footage, kept in the clip's timeline (the last picture
// before it is held) so that clip time stays wall-clock time.
const gapThreshold = time.Second

// plan finds the pictures of the export: from the keyframe at or before
// its start to the first picture at or after its end, across files. Each
// picture's wall-clock time is its file's start plus its decode time's
// distance from the file's first, as the recorder indexed it.
func (x *Exporter) plan(ctx context.Context, e Export) (*clip, error) {
	recs, _, err := x.store.List(ctx, e.CameraID, e.From, e.To)
	if err != nil {
		return nil, err
	}
	recs = okRecordings(recs)
	if len(recs) == 0 {
		return nil, gridwatch.Errorf(gridwatch.ENotFound, "no footage left in the range (removed since the request)")
	}
	c := &clip{}
	reachedEnd := false
	for _, r := range recs {
		if reachedEnd {
			break
		}
		abs := filepath.Join(x.rec.cfg.Dir, filepath.Clean("/"+r.Path))
		f, err := os.Open(abs)
		if err != nil {
			return nil, gridwatch.Errorf(gridwatch.ENotFound, "a recorded file of the range is missing (%s)", r.Start.Format(time.RFC3339))
		}
		n, err := c.addFile(f, r, e.From, e.To, len(c.files))
		f.Close()
		if err != nil {
			return nil, err
		}
		if n > 0 {
			c.files = append(c.files, abs)
			c.used = append(c.used, map[string]any{"recording_id": r.ID, "from": r.Start, "to": r.End})
		}
		reachedEnd = len(c.samples) > 0 && !c.samples[len(c.samples)-1].wall.Before(e.To)
	}
	// Cut at the keyframe at or before from (or the first picture, when the
	// footage starts later), and after the first picture at or after to.
	first := 0
	for i, s := range c.samples {
		if s.wall.After(e.From) {
			break
		}
		if s.key {
			first = i
		}
	}
	for first < len(c.samples) && !c.samples[first].key {
		first++
	}
	c.samples = c.samples[first:]
	for i, s := range c.samples {
		if !s.wall.Before(e.To) {
			c.samples = c.samples[:i+1]
			break
		}
	}
	if len(c.samples) == 0 {
		return nil, gridwatch.Errorf(gridwatch.ENotFound, "no footage left in the range")
	}
	// Across a gap between files the picture before it is held, so the
	// clip's time stays the wall clock's.
	for i := 0; i+1 < len(c.samples); i++ {
		s, next := &c.samples[i], c.samples[i+1]
		if s.file == next.file {
			continue
		}
		end := s.wall.Add(stream.Duration(int64(s.dur)))
		if next.wall.Sub(end) > gapThreshold {
			s.dur = uint32(stream.Ticks(next.wall.Sub(s.wall)))
			c.gaps = append(c.gaps, map[string]any{"from": end, "to": next.wall})
		}
	}
	return c, nil
}

// addFile adds the pictures of r's fragments that end after from, up to
// the first picture at or after to; it returns how many it added.
func (c *clip) addFile(f *os.File, r Recording, from, to time.Time, file int) (int, error) {
	head := make([]byte, r.InitSize)
	if _, err := io.ReadFull(f, head); err != nil {
		return 0, fmt.Errorf("record: export: %w", err)
	}
	added := 0
	for _, fr := range r.Fragments {
		fs := r.Start.Add(time.Duration(fr.Start) * time.Millisecond)
		fe := fs.Add(time.Duration(fr.Duration) * time.Millisecond)
		if !fe.After(from) {
			continue
		}
		if c.init == nil {
			c.init = head
		} else if !bytes.Equal(c.init, head) {
			return added, gridwatch.Errorf(gridwatch.EConflict, "the camera's video format changed at %s: export up to there and from there separately", r.Start.Format(time.RFC3339))
		}
		data := make([]byte, fr.Size)
		if _, err := f.ReadAt(data, fr.Offset); err != nil {
			return added, fmt.Errorf("record: export: read fragment at %d: %w", fr.Offset, err)
		}
		var parts fmp4.Parts
		if err := parts.Unmarshal(data); err != nil || len(parts) != 1 || len(parts[0].Tracks) != 1 || len(data) < 8 {
			return added, fmt.Errorf("record: export: fragment at %d of %s is not one moof+mdat: %v", fr.Offset, r.Path, err)
		}
		// The recorder writes moof then mdat, the samples in order from the
		// start of mdat's payload; the payloads the parser found must be there.
		pos := int64(binary.BigEndian.Uint32(data)) + 8
		tr := parts[0].Tracks[0]
		dts := int64(tr.BaseTime)
		base := dts
		for _, s := range tr.Samples {
			n := int64(len(s.Payload))
			if pos+n > int64(len(data)) || !bytes.Equal(data[pos:pos+n], s.Payload) {
				return added, fmt.Errorf("record: export: fragment at %d of %s: samples not where expected", fr.Offset, r.Path)
			}
			wall := fs.Add(stream.Duration(dts - base))
			c.samples = append(c.samples, clipSample{file: file, off: fr.Offset + pos, size: uint32(n), dur: s.Duration,
				ptsOffset: s.PTSOffset, key: !s.IsNonSyncSample, wall: wall})
			added++
			pos += n
			dts += int64(s.Duration)
			if !wall.Before(to) {
				return added, nil
			}
		}
	}
	return added, nil
}

// maxExportBytes: an export is one progressive MP4 with 32-bit chunk
// offsets, so its media must stay under 4 GiB.
const maxExportBytes = 4<<30 - 64<<20

// make writes one export: a progressive MP4 (ftyp, moov, mdat: moov first,
// so it plays while downloading) holding the recorded H.264 pictures, not
// re-encoded, on the clip's own timeline from 0: its first picture is the
// keyframe at or before the request's start, its last the first picture at
// or after its end. The manifest records the wall-clock time of both.
func (x *Exporter) make(ctx context.Context, e Export) error {
	c, err := x.plan(ctx, e)
	if err != nil {
		return err
	}
	var init fmp4.Init
	if err := init.Unmarshal(bytes.NewReader(c.init)); err != nil || len(init.Tracks) != 1 {
		return fmt.Errorf("record: export: initialisation segment: %v", err)
	}
	files := make([]*os.File, len(c.files))
	defer func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}()
	for i, p := range c.files {
		if files[i], err = os.Open(p); err != nil {
			return gridwatch.Errorf(gridwatch.ENotFound, "a recorded file of the range went missing")
		}
	}
	var total int64
	var ticks int64
	samples := make([]*pmp4.Sample, len(c.samples))
	written := int64(0)
	lastReport := time.Now()
	for i := range c.samples {
		s := c.samples[i]
		total += int64(s.size)
		ticks += int64(s.dur)
		samples[i] = &pmp4.Sample{Duration: s.dur, PTSOffset: s.ptsOffset, IsNonSyncSample: !s.key, PayloadSize: s.size,
			GetPayload: func() ([]byte, error) {
				b := make([]byte, s.size)
				if _, err := files[s.file].ReadAt(b, s.off); err != nil {
					return nil, fmt.Errorf("record: export: read picture: %w", err)
				}
				written += int64(s.size)
				if time.Since(lastReport) > 250*time.Millisecond {
					lastReport = time.Now()
					_, _ = x.store.pool.Exec(ctx, `UPDATE exports SET progress = $2 WHERE id = $1`, e.ID, float64(written)/float64(total))
				}
				return b, nil
			}}
	}
	if total > maxExportBytes {
		return gridwatch.Errorf(gridwatch.ETooLarge, "the export would hold %d bytes of video; one file holds at most %d: export a shorter range", total, int64(maxExportBytes))
	}
	pres := pmp4.Presentation{Tracks: []*pmp4.Track{{ID: 1, TimeScale: stream.ClockRate, Codec: init.Tracks[0].Codec, Samples: samples}}}
	if err := os.MkdirAll(x.dir, 0o750); err != nil {
		return fmt.Errorf("record: export: %w", err)
	}
	tmp := x.Path(e.ID) + ".part"
	out, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("record: export: %w", err)
	}
	defer os.Remove(tmp)
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(out, h)}
	if err := pres.Marshal(cw); err != nil {
		out.Close()
		return fmt.Errorf("record: export: %w", err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("record: export: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("record: export: %w", err)
	}
	if err := os.Rename(tmp, x.Path(e.ID)); err != nil {
		return fmt.Errorf("record: export: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	var code string
	_ = x.store.pool.QueryRow(ctx, `SELECT code FROM cameras WHERE id = $1`, e.CameraID).Scan(&code)
	gaps := c.gaps
	if gaps == nil {
		gaps = []map[string]any{}
	}
	manifest := map[string]any{
		"export_id": e.ID, "camera_id": e.CameraID, "camera_code": code, "from": e.From, "to": e.To,
		"first_frame_at": c.samples[0].wall, "last_frame_at": c.samples[len(c.samples)-1].wall,
		"frames": len(c.samples), "duration_s": float64(ticks) / stream.ClockRate, "gaps": gaps,
		"incident_id": e.IncidentID, "requested_by": e.RequestedBy, "requested_at": e.CreatedAt,
		"made_at": time.Now().UTC(), "sha256": sum, "bytes": cw.n,
		"format":     "MP4 (moov first), H.264 as recorded, not re-encoded; time 0 is first_frame_at, a gap holds the picture before it",
		"recordings": c.used,
	}
	_, err = x.store.pool.Exec(ctx, `UPDATE exports SET status = 'done', progress = 1, sha256 = $2, bytes = $3, manifest = $4, finished_at = now() WHERE id = $1`,
		e.ID, sum, cw.n, manifest)
	return err
}

// countWriter counts what passes through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
