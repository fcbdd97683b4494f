package record

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"gridwatch"
)

// exportHold is how long a node holds the export it makes without renewing.
const exportHold = 30 * time.Second

// holdExport renews this node's hold on export id until ctx ends.
func (x *Exporter) holdExport(ctx context.Context, id int64) {
	t := time.NewTicker(exportHold / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = x.store.pool.Exec(ctx, `UPDATE exports SET claimed_until = now() + $3 * interval '1 millisecond'
				WHERE id = $1 AND node_id IS NOT DISTINCT FROM nullif($2, '') AND status = 'running'`, id, x.rec.cfg.Node, exportHold.Milliseconds())
		}
	}
}

// expireEvery is how often Run applies retention to exports.
const expireEvery = time.Hour

// Run makes queued exports until ctx ends (one left running by a crash is
// made again) and removes expired ones every hour.
func (x *Exporter) Run(ctx context.Context) {
	log := x.rec.cfg.Logger
	x.sweep(ctx)
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
		// One node makes each export: it holds the export while it works
		// (claimed_until, renewed); one whose node died (its hold lapsed),
		// or that this node was making when it stopped, is made again.
		e, err := scanExport(x.store.pool.QueryRow(ctx, `UPDATE exports SET status = 'running', progress = 0, node_id = nullif($1, ''),
				claimed_until = now() + $2 * interval '1 millisecond'
			WHERE id = (SELECT id FROM exports WHERE status = 'queued'
					OR (status = 'running' AND (claimed_until IS NULL OR claimed_until < now() OR node_id IS NOT DISTINCT FROM nullif($1, '')))
				ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
			RETURNING `+exportColumns, x.rec.cfg.Node, exportHold.Milliseconds()))
		if errors.Is(err, pgx.ErrNoRows) || ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Error("export: next", "err", err)
			return
		}
		hold, stop := context.WithCancel(ctx)
		go x.holdExport(hold, e.ID)
		err = x.make(ctx, e)
		stop()
		if err != nil && ctx.Err() == nil {
			log.Warn("export failed", "export", e.ID, "err", err)
			msg := err.Error()
			if gridwatch.ErrorCode(err) == gridwatch.EInternal {
				msg = "the export could not be made; see the server log"
			}
			tag, err := x.store.pool.Exec(ctx, `UPDATE exports SET status = 'failed', error = $2, finished_at = now()
				WHERE id = $1 AND status = 'running' AND node_id IS NOT DISTINCT FROM nullif($3, '')`, e.ID, msg, x.rec.cfg.Node)
			if err == nil && tag.RowsAffected() == 1 {
				// A failed export has no file: not the one a crash
				// renamed into place before this try, nor what this try
				// left on its way out.
				x.discard(e.ID)
			}
		}
	}
}

// discard removes what export id has on this node's disk: its file, its
// temporary file and its copies of footage.
func (x *Exporter) discard(id int64) {
	for _, p := range []string{x.Path(id), x.Path(id) + ".part"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			x.rec.cfg.Logger.Warn("export: remove", "file", p, "err", err)
		}
	}
	if err := os.RemoveAll(filepath.Join(x.dir, strconv.FormatInt(id, 10)+".files")); err != nil {
		x.rec.cfg.Logger.Warn("export: remove copies of footage", "export", id, "err", err)
	}
}

// sweep removes what a crash (kill -9, power loss) left in the exports
// directory before this node makes any export: the temporary files
// (.part) and copies of footage (.files) of exports that were being made,
// and the files of exports that are not done on this node — failed, or
// made again elsewhere — once their rows say so. An export left running
// here is made again by Drain, from the start.
func (x *Exporter) sweep(ctx context.Context) {
	ents, err := os.ReadDir(x.dir)
	if err != nil {
		return
	}
	log := x.rec.cfg.Logger
	for _, ent := range ents {
		name := ent.Name()
		if strings.HasSuffix(name, ".part") || strings.HasSuffix(name, ".files") {
			log.Info("export: removed what a stopped export left", "file", name)
			_ = os.RemoveAll(filepath.Join(x.dir, name))
			continue
		}
		id, err := strconv.ParseInt(strings.TrimSuffix(name, ".mp4"), 10, 64)
		if filepath.Ext(name) != ".mp4" || err != nil {
			continue
		}
		var keep bool
		if err := x.store.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM exports WHERE id = $1 AND node_id IS NOT DISTINCT FROM nullif($2, '')
				AND (status = 'running' OR (status = 'done' AND object_key IS NULL)))`, id, x.rec.cfg.Node).Scan(&keep); err != nil {
			log.Warn("export: check a file against its row", "file", name, "err", err)
			continue
		}
		if !keep {
			log.Info("export: removed a file no finished export of this node names", "file", name)
			_ = os.Remove(filepath.Join(x.dir, name))
		}
	}
}
