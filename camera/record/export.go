package record

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/audit"
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
	// object is the export's key in the object store ("": on the disk of
	// node, the node that made it).
	object, node string
}

const exportColumns = `id, camera_id, lower(span), upper(span), incident_id, status, progress, sha256, bytes, error, manifest, requested_by, created_at, finished_at, held_by, held_at, coalesce(object_key, ''), coalesce(node_id, '')`

func scanExport(r pgx.Row) (Export, error) {
	var e Export
	err := r.Scan(&e.ID, &e.CameraID, &e.From, &e.To, &e.IncidentID, &e.Status, &e.Progress, &e.SHA256, &e.Bytes, &e.Error, &e.Manifest, &e.RequestedBy, &e.CreatedAt, &e.FinishedAt, &e.HeldBy, &e.HeldAt,
		&e.object, &e.node)
	e.Held = e.HeldAt != nil
	return e, err
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
	var object string
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
		object = e.object
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
	x.removeFile(id, object)
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Open opens a finished export's file: from the object store when it was
// uploaded there, else from this node's exports directory.
func (x *Exporter) Open(ctx context.Context, e Export) (File, error) {
	if e.object != "" {
		if x.rec.cfg.Objects == nil {
			return nil, gridwatch.Errorf(gridwatch.EUnavailable, "export %d is in the object store, which this node is not configured for (--footage-store)", e.ID)
		}
		obj, _, err := x.rec.cfg.Objects.Open(ctx, e.object)
		if err != nil {
			return nil, gridwatch.Errorf(gridwatch.ENotFound, "export %d: its object: %v", e.ID, err)
		}
		return obj, nil
	}
	f, err := os.Open(x.Path(e.ID))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("export %d: open its file: %w", e.ID, err) // out of descriptors, say: try again
	}
	if err != nil {
		if e.node != "" && e.node != x.rec.cfg.Node {
			return nil, gridwatch.Errorf(gridwatch.EUnavailable, "export %d was made on node %s and is kept there (no object store is configured)", e.ID, e.node)
		}
		return nil, gridwatch.Errorf(gridwatch.ENotFound, "export %d: its file is missing", e.ID)
	}
	return f, nil
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
	f, err := x.Open(ctx, e)
	if err != nil {
		return *e.SHA256, "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return *e.SHA256, "", err
	}
	return *e.SHA256, hex.EncodeToString(h.Sum(nil)), nil
}
