package record

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"gridwatch/audit"
)

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
		var g gone
		if _, err := pgx.ForEachRow(rows, []any{&g.id, &g.camera, &g.sha}, func() error {
			gs = append(gs, g)
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
