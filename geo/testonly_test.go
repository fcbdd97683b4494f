package geo

// What only the tests use: the PostGIS baselines the in-process index and
// the tile cache are checked and measured against, the unscoped tile, and
// the locator's reload signal. Kept out of the production files so that
// the package exports only what the service calls.

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// LocateDB answers Locate with PostGIS: the most specific grid covering the
// point (lowest code on ties) and its ancestors. It is the baseline the
// in-process Index is measured and checked against.
func (s *Store) LocateDB(ctx context.Context, lon, lat float64) ([]Ref, error) {
	rows, err := s.pool.Query(ctx, `WITH RECURSIVE hit AS (
			SELECT id FROM grids WHERE ST_Covers(geom, ST_SetSRID(ST_MakePoint($1, $2), 4326))
			ORDER BY level_rank DESC, code LIMIT 1
		), chain AS (
			SELECT g.id, g.code, g.name, g.level, g.parent_id, 0 AS depth FROM grids g JOIN hit USING (id)
			UNION ALL
			SELECT g.id, g.code, g.name, g.level, g.parent_id, c.depth + 1 FROM grids g JOIN chain c ON g.id = c.parent_id
		) SELECT id, code, name, level FROM chain ORDER BY depth`, lon, lat)
	if err != nil {
		return nil, fmt.Errorf("locate: %w", err)
	}
	refs, err := pgx.CollectRows(rows, scanRef)
	if err != nil {
		return nil, fmt.Errorf("locate: %w", err)
	}
	if refs == nil {
		refs = []Ref{}
	}
	return refs, nil
}

// rawGridTileQuery is the tile query as the PostGIS manual writes it, every
// property on every feature and no scope: the baseline GridTile is
// measured against.
func rawGridTileQuery() string {
	env, filter := TileEnvelopeSQL(1)
	return `SELECT ST_AsMVT(t, '` + GridLayer + `', ` + strconv.Itoa(TileExtent) + `, 'geom', 'id')
		FROM (SELECT g.id, g.code, g.name, g.level, g.parent_id,
				ST_AsMVTGeom(ST_Transform(g.geom, 3857), ` + env + `, ` + strconv.Itoa(TileExtent) + `, ` + strconv.Itoa(TileBuffer) + `, true) AS geom
			FROM grids g WHERE g.geom && ` + filter + `) t`
}

// GridTile returns the grids' tile z/x/y with every grid: the layer "grids",
// each feature's id the grid id and its properties level, parent_id (absent
// for a district) and, for a grid whose area reaches labelArea, code and
// name. A tile with no grid is empty (no bytes).
func (s *Store) GridTile(ctx context.Context, z, x, y int) ([]byte, error) {
	b, _, err := s.GridTileFor(ctx, Tile{Z: z, X: x, Y: y}, nil)
	return b, err
}

// Reloaded returns a channel closed at the next reload of the index.
func (l *Locator) Reloaded() <-chan struct{} { return *l.reloaded.Load() }
