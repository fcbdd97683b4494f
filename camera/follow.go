package camera

import (
	"context"
	"fmt"

	"gridwatch/geo"
)

// FollowGrids moves the cameras a boundary change affects, in its
// transaction: each camera in the changed area (or in a removed grid) goes
// to the grid now covering it, and the cameras whose view cones reach the
// area are linked again to the grids they see.
func (s *Store) FollowGrids(ctx context.Context, ch *geo.Change) error {
	// Two index scans, not one OR; the moves are then written by id.
	rows, err := ch.Tx.Query(ctx, `WITH found AS (
			SELECT c.id FROM cameras c, grid_change_area a WHERE ST_Covers(a.geom, c.location)
			UNION SELECT c.id FROM cameras c WHERE c.grid_id = ANY($1)
		) SELECT id, code, old, new FROM (
			SELECT c.id, c.code, c.grid_id AS old, `+geo.BestGrid("c.location", 1)+` AS new
			FROM found JOIN cameras c ON c.id = found.id
		) m WHERE new IS DISTINCT FROM old ORDER BY id`, ch.Removed)
	if err != nil {
		return fmt.Errorf("cameras follow the grids: %w", err)
	}
	var ids []int64
	var grids []*int64
	for rows.Next() {
		var id int64
		var code string
		var from, to *int64
		if err := rows.Scan(&id, &code, &from, &to); err != nil {
			rows.Close()
			return fmt.Errorf("cameras follow the grids: %w", err)
		}
		ids, grids = append(ids, id), append(grids, to)
		ch.Moved(geo.MovedCamera, id, code, from, to)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cameras follow the grids: %w", err)
	}
	if len(ids) > 0 {
		if _, err := ch.Tx.Exec(ctx, `UPDATE cameras c SET grid_id = m.grid FROM unnest($1::bigint[], $2::bigint[]) AS m(id, grid) WHERE c.id = m.id`, ids, grids); err != nil {
			return fmt.Errorf("cameras follow the grids: %w", err)
		}
	}
	if _, err := ch.Tx.Exec(ctx, `DELETE FROM camera_grids cg USING cameras c, grid_change_area a
		WHERE cg.camera_id = c.id AND c.cone && a.geom AND ST_Intersects(c.cone, a.geom)`); err != nil {
		return fmt.Errorf("camera view cones follow the grids: %w", err)
	}
	if _, err := ch.Tx.Exec(ctx, `INSERT INTO camera_grids (camera_id, grid_id)
		SELECT c.id, g.id FROM cameras c JOIN grid_change_area a ON c.cone && a.geom AND ST_Intersects(c.cone, a.geom)
		JOIN grids g ON g.level = 'grid' AND g.geom && c.cone AND ST_Relate(g.geom, c.cone, '2********') AND NOT g.id = ANY($1)
		ON CONFLICT DO NOTHING`, ch.Removed); err != nil {
		return fmt.Errorf("camera view cones follow the grids: %w", err)
	}
	return nil
}
