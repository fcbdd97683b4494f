package camera

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"gridwatch/geo"
)

// FollowGrids moves the cameras a boundary change (or an import) affects,
// in its transaction: each camera in the changed area, or in a removed
// grid, goes to the grid now covering it (geo's one routine and rule), and
// the cameras whose view cones reach the area are linked again to the
// grids they see.
func (s *Store) FollowGrids(ctx context.Context, tx pgx.Tx, ch *geo.Change) error {
	if err := ch.Relocate(ctx, tx, geo.Relocation{What: geo.MovedCamera, Table: "cameras", Label: "code"}); err != nil {
		return err
	}
	if err := linkSees(ctx, tx, `c.cone && $1::geometry AND ST_Intersects(c.cone, $1::geometry)`, ch.Area, ch.Removed); err != nil {
		return fmt.Errorf("camera view cones follow the grids: %w", err)
	}
	return nil
}

// linkSees links the cameras cond selects (an SQL condition on cameras c,
// with $1 the argument arg) to the grids their view cones see: the grids
// of the finest level whose area the cone overlaps, none of removed.
func linkSees(ctx context.Context, tx pgx.Tx, cond string, arg any, removed []int64) error {
	if _, err := tx.Exec(ctx, `DELETE FROM camera_grids cg USING cameras c WHERE cg.camera_id = c.id AND `+cond, arg); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO camera_grids (camera_id, grid_id)
		SELECT c.id, g.id FROM cameras c
		JOIN grids g ON g.level = 'grid' AND g.geom && c.cone AND ST_Relate(g.geom, c.cone, '2********') AND NOT g.id = ANY($2)
		WHERE `+cond+` ON CONFLICT DO NOTHING`, arg, removed)
	return err
}
