package geo

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Extent is where and when a set of features lies: the lon/lat box around
// them and the first and last of their times. BBox is nil when the set is
// empty; From and To are nil when it has no times.
type Extent struct {
	BBox     *BBox
	From, To *time.Time
}

// Count returns how many grids match f, whatever its cursor and limit.
func (s *Store) Count(ctx context.Context, f Filter) (int64, error) {
	f.After, f.Limit = 0, 0
	where, args := f.where()
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM grids g`+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count grids: %w", err)
	}
	return n, nil
}

// ExtentOf returns the box around the grids matching f and the span of their
// updated_at times.
func (s *Store) ExtentOf(ctx context.Context, f Filter) (*Extent, error) {
	f.After, f.Limit = 0, 0
	where, args := f.where()
	e, err := QueryExtent(ctx, s.pool, "g.geom", "g.updated_at", "grids g"+where, args...)
	if err != nil {
		return nil, fmt.Errorf("grid extent: %w", err)
	}
	return e, nil
}

// QueryRower runs a query that returns one row: a pool or a transaction.
type QueryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// QueryExtent reads the Extent of a set of features, for the packages that
// serve them as OGC collections: the box around the geometries geom and
// the span of the times at, over from (what follows FROM: the table, its
// alias and its conditions, whose values are args).
func QueryExtent(ctx context.Context, db QueryRower, geom, at, from string, args ...any) (*Extent, error) {
	var e Extent
	var minX, minY, maxX, maxY *float64
	err := db.QueryRow(ctx, `SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b), t0, t1 FROM (
		SELECT ST_Extent(`+geom+`)::box2d AS b, min(`+at+`) AS t0, max(`+at+`) AS t1 FROM `+from+`) x`, args...).
		Scan(&minX, &minY, &maxX, &maxY, &e.From, &e.To)
	if err != nil {
		return nil, err
	}
	if minX != nil {
		e.BBox = &BBox{MinLon: *minX, MinLat: *minY, MaxLon: *maxX, MaxLat: *maxY}
	}
	return &e, nil
}
