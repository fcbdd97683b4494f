package camera

import (
	"context"
	"fmt"
	"strconv"

	"gridwatch/geo"
	"gridwatch/internal/database"
)

// CameraLayer is the name of the cameras' layer inside their tiles.
const CameraLayer = "cameras"

// Tile returns the cameras' vector tile t as v may see them (the grid
// scope of List): the layer "cameras", one point per camera, its feature id
// the camera id, and its properties code, name, status, enabled, heading
// and grid_id (absent when the camera is in no grid). A tile with none is
// empty (no bytes).
func (s *Store) Tile(ctx context.Context, t geo.Tile, v Viewer) ([]byte, error) {
	if err := t.Check(); err != nil {
		return nil, err
	}
	var w database.Where
	env, filter := geo.TileEnvelopeSQL(1)
	w.Arg(t.Z)
	w.Arg(t.X)
	w.Arg(t.Y)
	w.Add("c.location && " + filter)
	v.where(&w)
	q := `SELECT ST_AsMVT(m, '` + CameraLayer + `', ` + strconv.Itoa(geo.TileExtent) + `, 'geom', 'id')
		FROM (SELECT c.id, c.code, c.name, c.status, c.enabled, c.heading, c.grid_id,
				ST_AsMVTGeom(ST_Transform(c.location, 3857), ` + env + `, ` + strconv.Itoa(geo.TileExtent) + `, ` + strconv.Itoa(geo.TileBuffer) + `, true) AS geom
			FROM cameras c` + w.SQL() + `) m`
	var tile []byte
	if err := s.pool.QueryRow(ctx, q, w.Args()...).Scan(&tile); err != nil {
		return nil, fmt.Errorf("camera tile %s: %w", t, err)
	}
	return tile, nil
}
