package camera

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gridwatch/geo"
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

// where returns the conditions of f and v (always at least one), with
// their arguments; the cursor and the limit are left to the caller.
func (f FeatureFilter) where(v Viewer) (string, []any) {
	where := " WHERE true"
	var args []any
	add := func(cond string, vals ...any) {
		for _, val := range vals {
			args = append(args, val)
			cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(args)), 1)
		}
		where += " AND " + cond
	}
	if f.GridID != 0 {
		add(`(c.grid_id IN (WITH RECURSIVE sub AS (SELECT id FROM grids WHERE id = ?
			UNION SELECT g2.id FROM grids g2 JOIN sub ON g2.parent_id = sub.id) SELECT id FROM sub)
			OR c.id IN (SELECT camera_id FROM camera_grids WHERE grid_id IN (WITH RECURSIVE sub AS (SELECT id FROM grids WHERE id = ?
			UNION SELECT g2.id FROM grids g2 JOIN sub ON g2.parent_id = sub.id) SELECT id FROM sub)))`, f.GridID, f.GridID)
	}
	if f.InGrid != 0 {
		add("c.grid_id = ?", f.InGrid)
	}
	if f.Code != "" {
		add("c.code = ?", f.Code)
	}
	if f.BBox != nil {
		add("c.location && ST_MakeEnvelope(?, ?, ?, ?, 4326)", f.BBox.MinLon, f.BBox.MinLat, f.BBox.MaxLon, f.BBox.MaxLat)
	}
	if f.Status != "" {
		add("c.status = ?", f.Status)
	}
	if !f.UpdatedFrom.IsZero() {
		add("c.updated_at >= ?", f.UpdatedFrom)
	}
	if !f.UpdatedUntil.IsZero() {
		add("c.updated_at <= ?", f.UpdatedUntil)
	}
	cond, args := scopeCond(v, args)
	return where + cond, args
}

// Features returns a page of the cameras matching f that v may see, in id
// order, and the cursor of the next page (0: none). f.After is the cursor;
// f.Limit defaults to 100. Stream URLs come without credentials, as from
// List.
func (s *Store) Features(ctx context.Context, f FeatureFilter, v Viewer) ([]Camera, int64, error) {
	where, args := f.where(v)
	if f.After > 0 {
		args = append(args, f.After)
		where += " AND c.id > $" + strconv.Itoa(len(args))
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	return s.page(ctx, where, args, f.Limit, "camera features")
}

// CountFeatures returns how many cameras match f and v may see, whatever
// the cursor and the limit.
func (s *Store) CountFeatures(ctx context.Context, f FeatureFilter, v Viewer) (int64, error) {
	where, args := f.where(v)
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM cameras c`+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count cameras: %w", err)
	}
	return n, nil
}

// ExtentOf returns the box around the cameras v may see and the span of
// their updated_at times.
func (s *Store) ExtentOf(ctx context.Context, v Viewer) (*geo.Extent, error) {
	where, args := FeatureFilter{}.where(v)
	e, err := geo.QueryExtent(ctx, s.pool, "c.location", "c.updated_at", "cameras c"+where, args...)
	if err != nil {
		return nil, fmt.Errorf("camera extent: %w", err)
	}
	return e, nil
}
