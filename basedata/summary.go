package basedata

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/geo"
)

// Summary is what a grid holds, with its descendants: the grid panel's
// counts. Care flags are counts only, whoever asks.
type Summary struct {
	Grid       geo.Ref          `json:"grid"`
	Buildings  int64            `json:"buildings"`
	Households int64            `json:"households"`
	Residents  int64            `json:"residents"`
	Care       map[string]int64 `json:"care"`
	// Components counts by state, every state listed.
	Components map[string]int64 `json:"components"`
	// Parcels is how many parcels overlap the grid's finest grids, and
	// ParcelAreaM2 the area they cover within them.
	Parcels      int64   `json:"parcels"`
	ParcelAreaM2 float64 `json:"parcel_area_m2"`
}

// Summary counts what grid id and its descendants hold, if v may see it.
// Every count reads the grid_id indexes of the grids' subtree, read once,
// in one snapshot.
func (s *Service) Summary(ctx context.Context, id int64, v Viewer) (*Summary, error) {
	sum := &Summary{Care: map[string]int64{}, Components: map[string]int64{}}
	for _, st := range States() {
		sum.Components[st] = 0
	}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var grids []int64
		err := tx.QueryRow(ctx, `SELECT g.code, g.name, g.level,
				(SELECT array_agg(x) FROM grid_subtree(ARRAY[g.id]) x)
			FROM grids g WHERE g.id = $1 AND ($2::bigint[] IS NULL OR g.id IN (SELECT * FROM grid_subtree($2)))`, id, v.Grids).
			Scan(&sum.Grid.Code, &sum.Grid.Name, &sum.Grid.Level, &grids)
		if errors.Is(err, pgx.ErrNoRows) {
			return gridwatch.Errorf(gridwatch.ENotFound, "grid %d not found", id)
		}
		if err != nil {
			return err
		}
		sum.Grid.ID = id
		if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM buildings WHERE grid_id = ANY($1)),
				(SELECT count(DISTINCT parcel_id) FROM parcel_grids WHERE grid_id = ANY($1)),
				(SELECT coalesce(round(sum(area_m2)::numeric, 1), 0)::float8 FROM parcel_grids WHERE grid_id = ANY($1))`, grids).
			Scan(&sum.Buildings, &sum.Parcels, &sum.ParcelAreaM2); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT state, count(*) FROM components WHERE grid_id = ANY($1) GROUP BY state`, grids)
		if err != nil {
			return err
		}
		var (
			state string
			n     int64
		)
		if _, err := pgx.ForEachRow(rows, []any{&state, &n}, func() error { sum.Components[state] = n; return nil }); err != nil {
			return err
		}
		sum.Households, sum.Residents, sum.Care, err = s.residentSummary(ctx, tx, grids)
		return err
	})
	if err != nil {
		if gridwatch.ErrorCode(err) != gridwatch.EInternal {
			return nil, err
		}
		return nil, fmt.Errorf("grid %d summary: %w", id, err)
	}
	return sum, nil
}
