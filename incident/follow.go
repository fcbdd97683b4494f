package incident

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"gridwatch/geo"
)

// FollowGrids follows a boundary change in its transaction. Cases not yet
// registered in the changed area go to the grid now covering them, and so
// do all cases of a removed (merged) grid. Open registered cases keep their
// grid — statistics count a case where it was registered — and are flagged
// for re-dispatch while their grid no longer covers them. The staff of a
// removed grid join the grid it merged into (its leader as staff if that
// grid has one).
func (s *Service) FollowGrids(ctx context.Context, ch *geo.Change) error {
	tx := ch.Tx
	rows, err := tx.Query(ctx, `WITH cand AS (
			SELECT i.id, i.title, i.grid_id AS old, `+geo.BestGrid("i.location", 1)+` AS new
			FROM incidents i WHERE i.grid_id = ANY($1)
				OR (i.status = 'reported' AND EXISTS (SELECT 1 FROM grid_change_area a WHERE ST_Covers(a.geom, i.location)))
		), moved AS (
			UPDATE incidents i SET grid_id = cand.new, needs_redispatch = false, version = i.version + 1, updated_at = now()
			FROM cand WHERE i.id = cand.id AND cand.new IS DISTINCT FROM cand.old
			RETURNING i.id, cand.title, cand.old, cand.new
		) SELECT id, title, old, new FROM moved ORDER BY id`, ch.Removed)
	if err != nil {
		return fmt.Errorf("incidents follow the grids: %w", err)
	}
	if err := collectMoves(ch, geo.MovedIncident, rows); err != nil {
		return err
	}
	rows, err = tx.Query(ctx, `WITH cand AS (
			SELECT i.id, i.title, i.grid_id, i.needs_redispatch AS was,
				NOT EXISTS (SELECT 1 FROM grids g WHERE g.id = i.grid_id AND ST_Covers(g.geom, i.location)) AS outside,
				`+geo.BestGrid("i.location", 1)+` AS now_in
			FROM incidents i, grid_change_area a
			WHERE ST_Covers(a.geom, i.location) AND i.grid_id IS NOT NULL AND NOT i.grid_id = ANY($1)
				AND i.status NOT IN ('reported', 'closed', 'rejected')
		), flag AS (
			UPDATE incidents i SET needs_redispatch = cand.outside FROM cand WHERE i.id = cand.id AND cand.was <> cand.outside
		) SELECT id, title, grid_id, now_in FROM cand WHERE outside ORDER BY id`, ch.Removed)
	if err != nil {
		return fmt.Errorf("incidents follow the grids: %w", err)
	}
	if err := collectMoves(ch, geo.FlaggedCase, rows); err != nil {
		return err
	}
	for gone, into := range ch.MergedInto {
		if _, err := tx.Exec(ctx, `UPDATE grid_staff SET grid_id = $2,
				role = CASE WHEN role = 'leader' AND EXISTS (SELECT 1 FROM grid_staff WHERE grid_id = $2 AND role = 'leader') THEN 'staff' ELSE role END
			WHERE grid_id = $1`, gone, into); err != nil {
			return fmt.Errorf("staff follow the grids: %w", err)
		}
	}
	return nil
}

func collectMoves(ch *geo.Change, what string, rows pgx.Rows) error {
	defer rows.Close()
	for rows.Next() {
		var id int64
		var title string
		var from, to *int64
		if err := rows.Scan(&id, &title, &from, &to); err != nil {
			return fmt.Errorf("incidents follow the grids: %w", err)
		}
		ch.Moved(what, id, title, from, to)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("incidents follow the grids: %w", err)
	}
	return nil
}
