package incident

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gridwatch/geo"
)

// FeatureFilter is a Filter with what OGC API Features queries add: an
// exact grid, a priority and a closed upper end of the reported_at range.
type FeatureFilter struct {
	Filter
	// InGrid keeps the incidents assigned to exactly this grid (Filter.GridID
	// also takes its descendants).
	InGrid int64
	// Priority keeps one priority.
	Priority string
	// Until keeps incidents reported at or before it (Filter.To is exclusive).
	Until time.Time
}

// where returns the conditions of f and v, with their arguments; the
// cursor and the limit are left to the caller.
func (f FeatureFilter) where(now time.Time, v Viewer) ([]string, []any) {
	conds, args := v.where(nil, nil)
	add := func(cond string, vals ...any) {
		for _, val := range vals {
			args = append(args, val)
			cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(args)), 1)
		}
		conds = append(conds, cond)
	}
	if f.GridID != 0 {
		add(`i.grid_id IN (WITH RECURSIVE sub AS (SELECT id FROM grids WHERE id = ?
			UNION SELECT c.id FROM grids c JOIN sub ON c.parent_id = sub.id) SELECT id FROM sub)`, f.GridID)
	}
	if len(f.IDs) > 0 {
		add("i.id = ANY(?)", f.IDs)
	}
	if f.InGrid != 0 {
		add("i.grid_id = ?", f.InGrid)
	}
	if len(f.Statuses) > 0 {
		ss := make([]string, len(f.Statuses))
		for i, st := range f.Statuses {
			ss[i] = string(st)
		}
		add("i.status = ANY(?)", ss)
	}
	if f.Category != "" {
		add("starts_with(i.category, ?)", f.Category)
	}
	if f.Priority != "" {
		add("i.priority = ?", f.Priority)
	}
	if !f.From.IsZero() {
		add("i.reported_at >= ?", f.From)
	}
	if !f.To.IsZero() {
		add("i.reported_at < ?", f.To)
	}
	if !f.Until.IsZero() {
		add("i.reported_at <= ?", f.Until)
	}
	if f.BBox != nil {
		add("i.location && ST_MakeEnvelope(?, ?, ?, ?, 4326)", f.BBox.MinLon, f.BBox.MinLat, f.BBox.MaxLon, f.BBox.MaxLat)
	}
	if f.Overdue {
		add("i.status NOT IN ('closed', 'rejected') AND i.deadline < ?", now)
	}
	if f.Unassigned {
		conds = append(conds, "i.grid_id IS NULL")
	}
	return conds, args
}

func whereClause(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// Features returns a page of the incidents matching f that v may see,
// newest first, and the cursor of the next page (0: none). f.Before is the
// cursor; f.Limit defaults to 100.
func (s *Service) Features(ctx context.Context, f FeatureFilter, v Viewer) ([]Incident, int64, error) {
	conds, args := f.where(s.now(), v)
	if f.Before > 0 {
		args = append(args, f.Before)
		conds = append(conds, "i.id < $"+strconv.Itoa(len(args)))
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	return s.page(ctx, conds, args, f.Limit, "incident features")
}

// CountFeatures returns how many incidents match f and v may see, whatever
// the cursor and the limit.
func (s *Service) CountFeatures(ctx context.Context, f FeatureFilter, v Viewer) (int64, error) {
	conds, args := f.where(s.now(), v)
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM incidents i`+whereClause(conds), args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count incidents: %w", err)
	}
	return n, nil
}

// ExtentOf returns the box around the incidents v may see and the span of
// their reported_at times.
func (s *Service) ExtentOf(ctx context.Context, v Viewer) (*geo.Extent, error) {
	conds, args := FeatureFilter{}.where(s.now(), v)
	e, err := geo.QueryExtent(ctx, s.pool, "i.location", "i.reported_at", "incidents i"+whereClause(conds), args...)
	if err != nil {
		return nil, fmt.Errorf("incident extent: %w", err)
	}
	return e, nil
}
