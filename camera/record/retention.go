package record

import (
	"context"
	"errors"
	"fmt"
	"gridwatch/audit"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Retention bounds what the recordings keep: nothing older than MaxAge
// (or a camera's own retention days), and no more than MaxBytes in all. The oldest footage goes first; footage
// linked to an incident (evidence hold) never goes.
type Retention struct {
	MaxAge   time.Duration
	MaxBytes int64
}

// RetainReport says what one Retain pass removed.
type RetainReport struct {
	Files int
	Bytes int64
}

// unheld is true of a recording no incident's linked footage overlaps:
// footage under evidence hold is never removed. reachable is true of the
// recordings this node can remove the file of: those in the object store
// and those on its own disk (the node's id is parameter $node); another
// node's local files are removed once uploaded.
func unheld(node int) string {
	return `NOT EXISTS (SELECT 1 FROM incident_footage l WHERE l.camera_id = recordings.camera_id AND l.span && recordings.span)
	AND (recordings.object_key IS NOT NULL OR ` + mine(node) + `)`
}

// mine is true of the recordings whose files are on this node's disk (the
// node's id is parameter $node; "" with one node and no cluster, whose
// rows have no node).
func mine(node int) string {
	return `(recordings.object_key IS NULL AND recordings.node_id IS NOT DISTINCT FROM nullif($` + strconv.Itoa(node) + `, ''))`
}

// retentionLock is the advisory lock that makes one node at a time apply
// retention: several nodes on one database remove footage once.
const retentionLock = 0x67726972 // "grir"

// Retain removes recordings older than their camera's retention days or
// else MaxAge (once in the cluster: the node that holds the lock removes
// them, from the object store or its disk), then the oldest files on this
// node's disk until the rest fit in MaxBytes (the fewest files that do): the
// quota is each node's disk's. Rows go first, then their files: a crash in
// between leaves an orphan file, which Reconcile indexes again and the next
// pass removes.
func (r *Recorder) Retain(ctx context.Context, ret Retention, now time.Time) (RetainReport, error) {
	var rep RetainReport
	if err := r.retainAge(ctx, &rep, ret, now); err != nil {
		return rep, err
	}
	if ret.MaxBytes > 0 {
		var total int64
		if err := r.store.pool.QueryRow(ctx, `SELECT coalesce(sum(bytes), 0) FROM recordings WHERE status = 'ok' AND `+mine(1), r.cfg.Node).Scan(&total); err != nil {
			return rep, fmt.Errorf("record: retain: %w", err)
		}
		if excess := total - ret.MaxBytes; excess > 0 {
			// The oldest files whose sizes add up to the excess.
			if err := r.remove(ctx, &rep, `DELETE FROM recordings WHERE id IN (
					SELECT id FROM (SELECT id, bytes, sum(bytes) OVER (ORDER BY lower(span), id) AS upto
						FROM recordings WHERE status = 'ok' AND NOT open AND `+mine(2)+` AND `+unheld(2)+`) oldest
					WHERE upto - bytes < $1)
				RETURNING path, bytes, coalesce(object_key, '')`, excess, r.cfg.Node); err != nil {
				return rep, err
			}
		}
	}
	return rep, nil
}

// retainAge removes what is older than its retention, once in the cluster.
func (r *Recorder) retainAge(ctx context.Context, rep *RetainReport, ret Retention, now time.Time) error {
	conn, err := r.store.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("record: retain: %w", err)
	}
	defer conn.Release()
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, retentionLock).Scan(&got); err != nil {
		return fmt.Errorf("record: retain: %w", err)
	}
	if !got {
		return nil // another node is applying it now
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, retentionLock) //nolint:errcheck
	// A camera's own retention days win over MaxAge; with neither, its
	// footage is kept (NULL compares false).
	var maxAge *time.Duration
	if ret.MaxAge > 0 {
		maxAge = &ret.MaxAge
	}
	if err := r.remove(ctx, rep, `DELETE FROM recordings USING cameras c
		WHERE c.id = recordings.camera_id AND recordings.status = 'ok' AND NOT recordings.open
			AND upper(recordings.span) < $1::timestamptz - coalesce(make_interval(days => c.retention_days), $2::interval)
			AND `+unheld(3)+` RETURNING recordings.path, recordings.bytes, coalesce(recordings.object_key, '')`, now, maxAge, r.cfg.Node); err != nil {
		return err
	}
	if _, err := r.store.pool.Exec(ctx, `DELETE FROM recording_gaps USING cameras c WHERE c.id = recording_gaps.camera_id
			AND upper(recording_gaps.span) < $1::timestamptz - coalesce(make_interval(days => c.retention_days), $2::interval)`, now, maxAge); err != nil {
		return fmt.Errorf("record: retain: %w", err)
	}
	return nil
}

func (r *Recorder) remove(ctx context.Context, rep *RetainReport, sql string, args ...any) error {
	rows, err := r.store.pool.Query(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("record: retain: %w", err)
	}
	var paths, keys []string
	var p, key string
	var b int64
	if _, err := pgx.ForEachRow(rows, []any{&p, &b, &key}, func() error {
		if key != "" {
			keys = append(keys, key)
		} else {
			paths = append(paths, p)
		}
		rep.Files++
		rep.Bytes += b
		return nil
	}); err != nil {
		return fmt.Errorf("record: retain: %w", err)
	}
	for _, p := range paths {
		if err := os.Remove(filepath.Join(r.cfg.Dir, filepath.Clean("/"+p))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			r.cfg.Logger.Warn("recordings: remove", "err", err)
		}
	}
	for _, k := range keys {
		if r.cfg.Objects == nil {
			r.cfg.Logger.Warn("recordings: an object to remove, and no object store configured", "key", k)
			continue
		}
		if err := r.cfg.Objects.Remove(ctx, k); err != nil {
			r.cfg.Logger.Warn("recordings: remove from the object store", "key", k, "err", err)
		}
	}
	return nil
}

// RunRetention applies ret every interval until ctx ends.
func (r *Recorder) RunRetention(ctx context.Context, ret Retention, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if rep, err := r.Retain(ctx, ret, time.Now()); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Error("recordings: retention", "err", err)
		} else if rep.Files > 0 {
			r.cfg.Logger.Info("recordings: retention removed the oldest footage", "files", rep.Files, "bytes", rep.Bytes)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// removeFile removes export id's file here, and its object (key object,
// "" for none) from the store.
func (x *Exporter) removeFile(id int64, object string) {
	if err := os.Remove(x.Path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		x.rec.cfg.Logger.Warn("export: remove file", "export", id, "err", err)
	}
	if o := x.rec.cfg.Objects; o != nil && object != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := o.Remove(ctx, object); err != nil {
			x.rec.cfg.Logger.Warn("export: remove from the object store", "export", id, "err", err)
		}
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
	objects := map[int64]string{}
	err := pgx.BeginFunc(ctx, x.store.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `DELETE FROM exports WHERE created_at < $1 AND `+expirable+` RETURNING id, camera_id, sha256, coalesce(object_key, '')`, now.Add(-x.limits.MaxAge))
		if err != nil {
			return fmt.Errorf("record: expire exports: %w", err)
		}
		type gone struct {
			id, camera int64
			sha        *string
			object     string
		}
		var gs []gone
		var g gone
		if _, err := pgx.ForEachRow(rows, []any{&g.id, &g.camera, &g.sha, &g.object}, func() error {
			gs = append(gs, g)
			objects[g.id] = g.object
			return nil
		}); err != nil {
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
		x.removeFile(id, objects[id])
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
			x.removeFile(id, "")
		}
	}
}
