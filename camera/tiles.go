package camera

import (
	"context"
	"fmt"

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
	v.where(&w)
	tile, err := geo.QueryPointTile(ctx, s.pool, t, CameraLayer, "c.id, c.code, c.name, c.status, c.enabled, c.heading, c.grid_id",
		"c.location", "cameras c", w)
	if err != nil {
		return nil, fmt.Errorf("camera tile %s: %w", t, err)
	}
	return tile, nil
}
