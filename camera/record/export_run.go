package record

import (
	"context"
	"errors"
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
			_, _ = x.store.pool.Exec(ctx, `UPDATE exports SET status = 'failed', error = $2, finished_at = now()
				WHERE id = $1 AND status = 'running' AND node_id IS NOT DISTINCT FROM nullif($3, '')`, e.ID, msg, x.rec.cfg.Node)
		}
	}
}
