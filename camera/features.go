package camera

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"gridwatch/geo"
	"gridwatch/internal/database"
)

// FeatureFilter is a Filter with what OGC API Features queries add: a code,
// an exact grid and a range of updated_at.
type FeatureFilter struct {
	Filter
	// Code keeps the camera with exactly this code.
	Code string
	// InGrid keeps the cameras placed in exactly this grid (Filter.GridID
	// also takes its descendants and the cameras looking into them).
	InGrid int64
	// UpdatedFrom and UpdatedUntil keep cameras last changed in
	// [UpdatedFrom, UpdatedUntil]; a zero time leaves that end open.
	UpdatedFrom, UpdatedUntil time.Time
}

// where returns the conditions of f and v, with their arguments; the
// cursor and the limit are left to the caller.
func (f FeatureFilter) where(v Viewer) database.Where {
	var w database.Where
	if f.GridID != 0 {
		sub := []int64{f.GridID}
		add := "(c.grid_id IN (SELECT * FROM grid_subtree(?))" +
			" OR c.id IN (SELECT camera_id FROM camera_grids WHERE grid_id IN (SELECT * FROM grid_subtree(?))))"
		w.Add(add, sub, sub)
	}
	if f.InGrid != 0 {
		w.Add("c.grid_id = ?", f.InGrid)
	}
	w.Eq("c.code", f.Code)
	f.BBox.Where(&w, "c.location")
	w.Eq("c.status", f.Status)
	w.Within("c.updated_at", f.UpdatedFrom, f.UpdatedUntil)
	v.where(&w)
	return w
}

// Features returns a page of the cameras matching f that v may see, in id
// order, and the cursor of the next page (0: none). f.After is the cursor;
// f.Limit defaults to 100. Stream URLs come without credentials, as from
// List.
func (s *Store) Features(ctx context.Context, f FeatureFilter, v Viewer) ([]Camera, int64, error) {
	out, next, err := database.QueryPage(ctx, s.pool, `SELECT `+cameraColumns+cameraFrom, f.where(v),
		database.Keyset{Key: "c.id", Cursor: f.After, Limit: f.Limit},
		func(r pgx.CollectableRow) (Camera, error) {
			c, err := scanCamera(r)
			if err != nil {
				return Camera{}, err
			}
			return *c, nil
		}, func(c Camera) int64 { return c.ID })
	if err != nil {
		return nil, 0, fmt.Errorf("camera features: %w", err)
	}
	return out, next, nil
}

// CountFeatures returns how many cameras match f and v may see, whatever
// the cursor and the limit.
func (s *Store) CountFeatures(ctx context.Context, f FeatureFilter, v Viewer) (int64, error) {
	n, err := database.Count(ctx, s.pool, "cameras c", f.where(v))
	if err != nil {
		return 0, fmt.Errorf("count cameras: %w", err)
	}
	return n, nil
}

// ExtentOf returns the box around the cameras v may see and the span of
// their updated_at times.
func (s *Store) ExtentOf(ctx context.Context, v Viewer) (*geo.Extent, error) {
	e, err := geo.QueryExtent(ctx, s.pool, "cameras c", "c.location", "c.updated_at", FeatureFilter{}.where(v))
	if err != nil {
		return nil, fmt.Errorf("camera extent: %w", err)
	}
	return e, nil
}
