package geo

import (
	"context"
	"fmt"
	"time"

	"gridwatch/internal/database"
)

// Extent is where and when a set of features lies: the lon/lat box around
// them and the first and last of their times. BBox is nil when the set is
// empty; From and To are nil when it has no times.
type Extent struct {
	BBox     *BBox
	From, To *time.Time
}

// QueryExtent returns the Extent of the rows of from (a FROM list, e.g.
// "cameras c") that match w: the box around their geometry column geom and
// the span of their time column at. It is the one extent query of the
// OGC collections (grids, cameras, incidents); each caller names its own
// table and columns.
func QueryExtent(ctx context.Context, q database.Querier, from, geom, at string, w database.Where) (*Extent, error) {
	var e Extent
	var minX, minY, maxX, maxY *float64
	err := q.QueryRow(ctx, `SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b), t0, t1 FROM (
		SELECT ST_Extent(`+geom+`)::box2d AS b, min(`+at+`) AS t0, max(`+at+`) AS t1 FROM `+from+w.SQL()+`) x`, w.Args()...).
		Scan(&minX, &minY, &maxX, &maxY, &e.From, &e.To)
	if err != nil {
		return nil, err
	}
	if minX != nil {
		e.BBox = &BBox{MinLon: *minX, MinLat: *minY, MaxLon: *maxX, MaxLat: *maxY}
	}
	return &e, nil
}

// Count returns how many grids match f, whatever its cursor and limit.
func (s *Store) Count(ctx context.Context, f Filter) (int64, error) {
	f.After, f.Limit = 0, 0
	n, err := database.Count(ctx, s.pool, "grids g", f.where())
	if err != nil {
		return 0, fmt.Errorf("count grids: %w", err)
	}
	return n, nil
}

// ExtentOf returns the box around the grids matching f and the span of their
// updated_at times.
func (s *Store) ExtentOf(ctx context.Context, f Filter) (*Extent, error) {
	f.After, f.Limit = 0, 0
	e, err := QueryExtent(ctx, s.pool, "grids g", "g.geom", "g.updated_at", f.where())
	if err != nil {
		return nil, fmt.Errorf("grid extent: %w", err)
	}
	return e, nil
}
