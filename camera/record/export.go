package record

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/audit"
)

// Export is an evidence export: its request, its state and, when done,
// the SHA-256 of its file and its manifest.
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
}

const exportColumns = `id, camera_id, lower(span), upper(span), incident_id, status, progress, sha256, bytes, error, manifest, requested_by, created_at, finished_at`

func scanExport(r pgx.Row) (Export, error) {
	var e Export
	err := r.Scan(&e.ID, &e.CameraID, &e.From, &e.To, &e.IncidentID, &e.Status, &e.Progress, &e.SHA256, &e.Bytes, &e.Error, &e.Manifest, &e.RequestedBy, &e.CreatedAt, &e.FinishedAt)
	return e, err
}

// Exporter makes exports in the background, one at a time.
type Exporter struct {
	store *Store
	rec   *Recorder
	dir   string
	wake  chan struct{}
}

// NewExporter returns an exporter writing to dir (<data-dir>/exports) from
// the recorder's files.
func NewExporter(store *Store, rec *Recorder, dir string) *Exporter {
	return &Exporter{store: store, rec: rec, dir: dir, wake: make(chan struct{}, 1)}
}

// Path is where export id's file is.
func (x *Exporter) Path(id int64) string {
	return filepath.Join(x.dir, strconv.FormatInt(id, 10)+".mp4")
}

// Request queues an export of camera's footage from from to to, for
// incident when not nil. A range without footage is refused at once.
func (x *Exporter) Request(ctx context.Context, camera int64, from, to time.Time, incident *int64, by string) (Export, error) {
	if err := CheckRange(from, to); err != nil {
		return Export{}, err
	}
	if to.Sub(from) > 24*time.Hour {
		return Export{}, gridwatch.Errorf(gridwatch.EInvalid, "an export covers at most 24 hours")
	}
	recs, _, err := x.store.List(ctx, camera, from, to)
	if err != nil {
		return Export{}, err
	}
	if len(okRecordings(recs)) == 0 {
		return Export{}, gridwatch.Errorf(gridwatch.ENotFound, "camera %d has no footage between %s and %s", camera, from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	var e Export
	err = pgx.BeginFunc(ctx, x.store.pool, func(tx pgx.Tx) error {
		var err error
		e, err = scanExport(tx.QueryRow(ctx, `INSERT INTO exports (camera_id, span, incident_id, requested_by) VALUES ($1, $2, $3, $4)
			RETURNING `+exportColumns, camera, span(from, to), incident, by))
		if err != nil {
			return fmt.Errorf("record: export: %w", err)
		}
		return audit.Record(ctx, tx, "export.request", "camera", strconv.FormatInt(camera, 10),
			map[string]any{"after": map[string]any{"export_id": e.ID, "from": from, "to": to, "incident_id": incident}})
	})
	if err != nil {
		return e, err
	}
	select {
	case x.wake <- struct{}{}:
	default:
	}
	return e, nil
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

// Run makes queued exports until ctx ends; one left running by a crash is
// made again.
func (x *Exporter) Run(ctx context.Context) {
	log := x.rec.cfg.Logger
	for {
		for {
			e, err := scanExport(x.store.pool.QueryRow(ctx, `UPDATE exports SET status = 'running', progress = 0
				WHERE id = (SELECT id FROM exports WHERE status IN ('queued', 'running') ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
				RETURNING `+exportColumns))
			if errors.Is(err, pgx.ErrNoRows) || ctx.Err() != nil {
				break
			}
			if err != nil {
				log.Error("export: next", "err", err)
				break
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
		select {
		case <-ctx.Done():
			return
		case <-x.wake:
		case <-time.After(time.Minute):
		}
	}
}

// make writes one export: the first file's initialisation segment, then
// every recorded fragment overlapping the range (from the keyframe at or
// before its start), hashing as it writes. The result is an MP4 with its
// moov first (fast start), remuxed from what was recorded, not re-encoded.
func (x *Exporter) make(ctx context.Context, e Export) error {
	recs, _, err := x.store.List(ctx, e.CameraID, e.From, e.To)
	if err != nil {
		return err
	}
	recs = okRecordings(recs)
	if len(recs) == 0 {
		return gridwatch.Errorf(gridwatch.ENotFound, "no footage left in the range (removed since the request)")
	}
	type piece struct {
		path      string
		off, size int64
	}
	var pieces []piece
	var total int64
	var init []byte
	var used []map[string]any
	for _, r := range recs {
		abs := filepath.Join(x.rec.cfg.Dir, filepath.Clean("/"+r.Path))
		f, err := os.Open(abs)
		if err != nil {
			return gridwatch.Errorf(gridwatch.ENotFound, "a recorded file of the range is missing (%s)", r.Start.Format(time.RFC3339))
		}
		head := make([]byte, r.InitSize)
		_, err = io.ReadFull(f, head)
		f.Close()
		if err != nil {
			return fmt.Errorf("record: export: %w", err)
		}
		if init == nil {
			init = head
		} else if !bytes.Equal(init, head) {
			return gridwatch.Errorf(gridwatch.EConflict, "the camera's video format changed at %s: export up to there and from there separately", r.Start.Format(time.RFC3339))
		}
		n := 0
		for _, fr := range r.Fragments {
			fs := r.Start.Add(time.Duration(fr.Start) * time.Millisecond)
			fe := fs.Add(time.Duration(fr.Duration) * time.Millisecond)
			if fe.After(e.From) && fs.Before(e.To) {
				pieces = append(pieces, piece{abs, fr.Offset, fr.Size})
				total += fr.Size
				n++
			}
		}
		if n > 0 {
			used = append(used, map[string]any{"recording_id": r.ID, "from": r.Start, "to": r.End, "fragments": n})
		}
	}
	if len(pieces) == 0 {
		return gridwatch.Errorf(gridwatch.ENotFound, "no footage left in the range")
	}
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
	w := io.MultiWriter(out, h)
	written := int64(len(init))
	if _, err := w.Write(init); err != nil {
		out.Close()
		return fmt.Errorf("record: export: %w", err)
	}
	lastReport := time.Now()
	for _, p := range pieces {
		f, err := os.Open(p.path)
		if err != nil {
			out.Close()
			return gridwatch.Errorf(gridwatch.ENotFound, "a recorded file of the range went missing")
		}
		_, err = io.Copy(w, io.NewSectionReader(f, p.off, p.size))
		f.Close()
		if err != nil {
			out.Close()
			return fmt.Errorf("record: export: %w", err)
		}
		written += p.size
		if time.Since(lastReport) > 250*time.Millisecond {
			lastReport = time.Now()
			_, _ = x.store.pool.Exec(ctx, `UPDATE exports SET progress = $2 WHERE id = $1`, e.ID, float64(written)/float64(total+int64(len(init))))
		}
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
	manifest := map[string]any{
		"export_id": e.ID, "camera_id": e.CameraID, "camera_code": code, "from": e.From, "to": e.To,
		"incident_id": e.IncidentID, "requested_by": e.RequestedBy, "requested_at": e.CreatedAt,
		"made_at": time.Now().UTC(), "sha256": sum, "bytes": written, "format": "MP4 (fragmented, moov first), H.264 as recorded, not re-encoded",
		"recordings": used,
	}
	_, err = x.store.pool.Exec(ctx, `UPDATE exports SET status = 'done', progress = 1, sha256 = $2, bytes = $3, manifest = $4, finished_at = now() WHERE id = $1`,
		e.ID, sum, written, manifest)
	return err
}
