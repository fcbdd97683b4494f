package basedata

import (
	"context"
	"fmt"
	"strconv"

	"gridwatch/geo"
	"gridwatch/internal/database"
)

// The map layers of base data, as Mapbox Vector Tiles drawn by PostGIS,
// scoped like the lists. Neither carries anything personal.

// Layer names inside the tiles.
const (
	BuildingLayer  = "buildings"
	ComponentLayer = "components"
)

// BuildingTile returns the buildings' tile t as v may see them: the layer
// "buildings", a building's footprint where it has one and its point
// otherwise, its feature id the building's id and its properties code,
// name, floors and grid_id (absent when unassigned). A tile without any is
// empty (no bytes).
func (s *Service) BuildingTile(ctx context.Context, t geo.Tile, v Viewer) ([]byte, error) {
	if err := t.Check(); err != nil {
		return nil, err
	}
	var w database.Where
	v.where(&w, "b")
	env, filter := geo.TileEnvelopeSQL(len(w.Args()) + 1)
	w.Arg(t.Z)
	w.Arg(t.X)
	w.Arg(t.Y)
	// Either index finds a building: its point's, or its footprint's
	// when only the footprint reaches into the tile.
	w.Add("(b.location && " + filter + " OR b.footprint && " + filter + ")")
	ext, buf := strconv.Itoa(geo.TileExtent), strconv.Itoa(geo.TileBuffer)
	var tile []byte
	err := s.pool.QueryRow(ctx, `SELECT ST_AsMVT(m, '`+BuildingLayer+`', `+ext+`, 'geom', 'id')
		FROM (SELECT b.id, b.code, b.name, b.floors, b.grid_id,
				ST_AsMVTGeom(ST_Transform(coalesce(b.footprint, b.location), 3857), `+env+`, `+ext+`, `+buf+`, true) AS geom
			FROM buildings b`+w.SQL()+`) m WHERE m.geom IS NOT NULL`, w.Args()...).Scan(&tile)
	if err != nil {
		return nil, fmt.Errorf("building tile %s: %w", t, err)
	}
	return tile, nil
}

// ComponentTile returns the components' tile t as v may see them, narrowed
// by f's class and state: the layer "components", one point each, its
// feature id the component's id and its properties code, class, state and
// grid_id.
func (s *Service) ComponentTile(ctx context.Context, t geo.Tile, f Filter, v Viewer) ([]byte, error) {
	if err := t.Check(); err != nil {
		return nil, err
	}
	if err := CheckFilter(f); err != nil {
		return nil, err
	}
	w := componentWhere(Filter{Class: f.Class, State: f.State}, v)
	tile, err := geo.QueryPointTile(ctx, s.pool, t, ComponentLayer, "k.id, k.code, k.class_code AS class, k.state, k.grid_id",
		"k.location", "components k", w)
	if err != nil {
		return nil, fmt.Errorf("component tile %s: %w", t, err)
	}
	return tile, nil
}
