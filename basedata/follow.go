package basedata

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"gridwatch/geo"
)

// FollowGrids carries buildings (and their households and residents),
// components and parcels along a boundary change or an import, in its
// transaction. Buildings and components in the changed area, or in a
// removed grid, go to the grid the placement rule now gives them (a
// footprint the area only touches is looked at again too: most of its
// area may have changed hands), and are reported as moved; the parcels
// the area meets, or that overlapped a removed grid, have their grids
// and areas recomputed. Households and residents then follow their
// buildings.
func (s *Service) FollowGrids(ctx context.Context, tx pgx.Tx, ch *geo.Change) error {
	if err := ch.Relocate(ctx, tx, geo.Relocation{What: geo.MovedBuilding, Table: "buildings", Label: "code",
		In: "ST_Covers($1::geometry, t.location) OR ST_Intersects($1::geometry, t.footprint)",
		At: buildingGrid("t", "$2"), Set: "updated_at = now()"}); err != nil {
		return err
	}
	if err := ch.Relocate(ctx, tx, geo.Relocation{What: geo.MovedComponent, Table: "components", Label: "code",
		Set: "updated_at = now()"}); err != nil {
		return err
	}
	// The parcels to place again, by id: those the area meets (through
	// the geometry index) and those in a removed grid (through the grid
	// index).
	var ids []int64
	rows, err := tx.Query(ctx, `SELECT p.id FROM parcels p WHERE ST_Intersects($1::geometry, p.geom)
		UNION SELECT parcel_id FROM parcel_grids WHERE grid_id = ANY($2)`, ch.Area, ch.Removed)
	if err == nil {
		ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	}
	if err != nil {
		return fmt.Errorf("parcels follow the grids: %w", err)
	}
	if len(ids) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM parcel_grids WHERE parcel_id = ANY($1)`, ids); err != nil {
			return fmt.Errorf("parcels follow the grids: %w", err)
		}
		if err := placeParcels(ctx, tx, "p.id = ANY(?)", ch.Removed, ids); err != nil {
			return fmt.Errorf("parcels follow the grids: %w", err)
		}
	}
	return s.followBuildings(ctx, tx, ch)
}

// followImported gives the households, and their residents, of the
// buildings an import just wrote (import_rows, by code) their building's
// grid: followBuildings' statement narrowed to those buildings, so an
// import of a few buildings does not compare every household.
func (s *Service) followImported(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `WITH moved AS (
			UPDATE households h SET grid_id = b.grid_id, updated_at = now()
			FROM buildings b JOIN import_rows t ON t.code = b.code
			WHERE b.id = h.building_id AND h.grid_id IS DISTINCT FROM b.grid_id
			RETURNING h.id, h.grid_id)
		UPDATE residents r SET grid_id = m.grid_id, updated_at = now()
		FROM moved m WHERE r.household_id = m.id AND r.grid_id IS DISTINCT FROM m.grid_id`)
	if err != nil {
		return fmt.Errorf("households follow their buildings: %w", err)
	}
	return nil
}
