package incident

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/geo"
)

// FollowGrids follows a boundary change in its transaction. A grid with
// staff is not deleted (they would go with it). Cases not yet
// registered in the changed area go to the grid now covering them, and so
// do all cases of a removed (merged) grid. Open registered cases keep their
// grid — statistics count a case where it was registered — and are flagged
// for re-dispatch while their grid no longer covers them. The staff of a
// removed grid join the grid it merged into (its leader as staff if that
// grid has one).
func (s *Service) FollowGrids(ctx context.Context, tx pgx.Tx, ch *geo.Change) error {
	if err := ch.Relocate(ctx, tx, geo.Relocation{What: geo.MovedIncident, Table: "incidents", Label: "title",
		Only: "t.status = 'reported'", Set: "needs_redispatch = false, version = t.version + 1, updated_at = now()"}); err != nil {
		return err
	}
	// The open registered cases in the area: read first, then the few
	// whose flag changes are updated by id (an UPDATE joined to the
	// candidates made the planner scan every case).
	rows, err := tx.Query(ctx, `SELECT i.id, i.title, i.grid_id, i.needs_redispatch,
			NOT EXISTS (SELECT 1 FROM grids g WHERE g.id = i.grid_id AND ST_Covers(g.geom, i.location)),
			`+geo.GridAt("i.location", "$2")+`
		FROM incidents i
		WHERE ST_Covers($1::geometry, i.location) AND i.grid_id IS NOT NULL AND NOT i.grid_id = ANY($2)
			AND i.status NOT IN ('reported', 'closed', 'rejected')
		ORDER BY i.id`, ch.Area, ch.Removed)
	if err != nil {
		return fmt.Errorf("incidents follow the grids: %w", err)
	}
	var toggle []int64
	var (
		id           int64
		title        string
		grid, now    *int64
		was, outside bool
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &title, &grid, &was, &outside, &now}, func() error {
		if was != outside {
			toggle = append(toggle, id)
		}
		if outside {
			ch.Moved(geo.FlaggedCase, id, title, grid, now)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("incidents follow the grids: %w", err)
	}
	if len(toggle) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE incidents SET needs_redispatch = NOT needs_redispatch WHERE id = ANY($1)`, toggle); err != nil {
			return fmt.Errorf("incidents follow the grids: %w", err)
		}
	}
	// A removed grid handed to another (a merge) passes its staff on; one
	// handed to no grid (a delete) must have none.
	into := map[int64]int64{}
	for _, h := range ch.Handovers {
		if h.To != 0 && ch.IsRemoved(h.From) {
			into[h.From] = h.To
		}
	}
	for _, gone := range ch.Removed {
		if _, merged := into[gone]; merged {
			continue
		}
		var staff int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM grid_staff WHERE grid_id = $1`, gone).Scan(&staff); err != nil {
			return fmt.Errorf("staff follow the grids: %w", err)
		}
		if staff > 0 {
			return gridwatch.Errorf(gridwatch.EConflict, "the grid has %d staff; move or remove them first", staff).
				WithDetails(map[string]any{"staff": staff})
		}
	}
	for gone, to := range into {
		if _, err := tx.Exec(ctx, `UPDATE grid_staff SET grid_id = $2,
				role = CASE WHEN role = 'leader' AND EXISTS (SELECT 1 FROM grid_staff WHERE grid_id = $2 AND role = 'leader') THEN 'staff' ELSE role END
			WHERE grid_id = $1`, gone, to); err != nil {
			return fmt.Errorf("staff follow the grids: %w", err)
		}
	}
	return nil
}
