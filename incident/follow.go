package incident

import (
	"context"
	"fmt"

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
func (s *Service) FollowGrids(ctx context.Context, ch *geo.Change) error {
	tx := ch.Tx
	// Two index scans, not one OR: the area's through the location
	// index, the removed grids' through the grid index. The moves are
	// then written by id.
	rows, err := tx.Query(ctx, `WITH found AS (
			SELECT i.id FROM incidents i, grid_change_area a WHERE ST_Covers(a.geom, i.location) AND i.status = 'reported'
			UNION SELECT i.id FROM incidents i WHERE i.grid_id = ANY($1)
		) SELECT id, title, old, new FROM (
			SELECT i.id, i.title, i.grid_id AS old, `+geo.BestGrid("i.location", 1)+` AS new
			FROM found JOIN incidents i ON i.id = found.id
		) c WHERE new IS DISTINCT FROM old ORDER BY id`, ch.Removed)
	if err != nil {
		return fmt.Errorf("incidents follow the grids: %w", err)
	}
	var ids []int64
	var grids []*int64
	for rows.Next() {
		var id int64
		var title string
		var from, to *int64
		if err := rows.Scan(&id, &title, &from, &to); err != nil {
			rows.Close()
			return fmt.Errorf("incidents follow the grids: %w", err)
		}
		ids, grids = append(ids, id), append(grids, to)
		ch.Moved(geo.MovedIncident, id, title, from, to)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("incidents follow the grids: %w", err)
	}
	if len(ids) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE incidents i SET grid_id = m.grid, needs_redispatch = false, version = i.version + 1, updated_at = now()
			FROM unnest($1::bigint[], $2::bigint[]) AS m(id, grid) WHERE i.id = m.id`, ids, grids); err != nil {
			return fmt.Errorf("incidents follow the grids: %w", err)
		}
	}
	// The open registered cases in the area: read first, then the few
	// whose flag changes are updated by id (an UPDATE joined to the
	// candidates made the planner scan every case).
	rows, err = tx.Query(ctx, `SELECT i.id, i.title, i.grid_id, i.needs_redispatch,
			NOT EXISTS (SELECT 1 FROM grids g WHERE g.id = i.grid_id AND ST_Covers(g.geom, i.location)),
			`+geo.BestGrid("i.location", 1)+`
		FROM incidents i, grid_change_area a
		WHERE ST_Covers(a.geom, i.location) AND i.grid_id IS NOT NULL AND NOT i.grid_id = ANY($1)
			AND i.status NOT IN ('reported', 'closed', 'rejected')
		ORDER BY i.id`, ch.Removed)
	if err != nil {
		return fmt.Errorf("incidents follow the grids: %w", err)
	}
	var toggle []int64
	for rows.Next() {
		var id int64
		var title string
		var grid, now *int64
		var was, outside bool
		if err := rows.Scan(&id, &title, &grid, &was, &outside, &now); err != nil {
			rows.Close()
			return fmt.Errorf("incidents follow the grids: %w", err)
		}
		if was != outside {
			toggle = append(toggle, id)
		}
		if outside {
			ch.Moved(geo.FlaggedCase, id, title, grid, now)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("incidents follow the grids: %w", err)
	}
	if len(toggle) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE incidents SET needs_redispatch = NOT needs_redispatch WHERE id = ANY($1)`, toggle); err != nil {
			return fmt.Errorf("incidents follow the grids: %w", err)
		}
	}
	for _, gone := range ch.Removed {
		if _, merged := ch.MergedInto[gone]; merged {
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
	for gone, into := range ch.MergedInto {
		if _, err := tx.Exec(ctx, `UPDATE grid_staff SET grid_id = $2,
				role = CASE WHEN role = 'leader' AND EXISTS (SELECT 1 FROM grid_staff WHERE grid_id = $2 AND role = 'leader') THEN 'staff' ELSE role END
			WHERE grid_id = $1`, gone, into); err != nil {
			return fmt.Errorf("staff follow the grids: %w", err)
		}
	}
	return nil
}
