package record

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"gridwatch"
)

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
