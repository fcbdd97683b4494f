package incident

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"gridwatch/geo"
	"gridwatch/internal/database"
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
func (f FeatureFilter) where(now time.Time, v Viewer) database.Where {
	var w database.Where
	v.where(&w)
	if f.GridID != 0 {
		w.Add("i.grid_id IN (SELECT * FROM grid_subtree(?))", []int64{f.GridID})
	}
	if len(f.IDs) > 0 {
		w.Add("i.id = ANY(?)", f.IDs)
	}
	if f.ComponentID != 0 {
		w.Add("i.component_id = ?", f.ComponentID)
	}
	if f.InGrid != 0 {
		w.Add("i.grid_id = ?", f.InGrid)
	}
	if len(f.Statuses) > 0 {
		w.Add("i.status = ANY(?)", statusStrings(f.Statuses))
	}
	if f.Category != "" {
		w.Add("starts_with(i.category, ?)", f.Category)
	}
	w.Eq("i.priority", f.Priority)
	w.Within("i.reported_at", f.From, f.Until)
	w.AddTime("i.reported_at < ?", f.To)
	f.BBox.Where(&w, "i.location")
	if f.Overdue {
		w.Add("i.status NOT IN ('closed', 'rejected') AND i.deadline < ?", now)
	}
	if f.Unassigned {
		w.Add("i.grid_id IS NULL")
	}
	if f.AssigneeUser != 0 {
		w.Add("i.assignee_id IN (SELECT id FROM grid_staff WHERE user_id = ?)", f.AssigneeUser)
	}
	return w
}

// statusStrings is ss as text, for a status = ANY($n) parameter.
func statusStrings(ss []Status) []string {
	out := make([]string, len(ss))
	for i, st := range ss {
		out[i] = string(st)
	}
	return out
}

// Features returns a page of the incidents matching f that v may see,
// newest first, and the cursor of the next page (0: none). f.Before is the
// cursor; f.Limit defaults to 100.
func (s *Service) Features(ctx context.Context, f FeatureFilter, v Viewer) ([]Incident, int64, error) {
	// One reading of the clock: a case the overdue filter keeps is flagged
	// overdue, whatever the clock does meanwhile.
	now := s.now()
	out, next, err := database.QueryPage(ctx, s.pool, `SELECT `+incidentColumns+incidentFrom, f.where(now, v),
		database.Keyset{Key: "i.id", Desc: true, Cursor: f.Before, Limit: f.Limit},
		func(r pgx.CollectableRow) (Incident, error) {
			in, err := s.scanIncident(r, now)
			if err != nil {
				return Incident{}, err
			}
			return *in, nil
		}, func(in Incident) int64 { return in.ID })
	if err != nil {
		return nil, 0, fmt.Errorf("incident features: %w", err)
	}
	return out, next, nil
}

// CountFeatures returns how many incidents match f and v may see, whatever
// the cursor and the limit.
func (s *Service) CountFeatures(ctx context.Context, f FeatureFilter, v Viewer) (int64, error) {
	n, err := database.Count(ctx, s.pool, "incidents i", f.where(s.now(), v))
	if err != nil {
		return 0, fmt.Errorf("count incidents: %w", err)
	}
	return n, nil
}

// ExtentOf returns the box around the incidents v may see and the span of
// their reported_at times.
func (s *Service) ExtentOf(ctx context.Context, v Viewer) (*geo.Extent, error) {
	e, err := geo.QueryExtent(ctx, s.pool, "incidents i", "i.location", "i.reported_at", FeatureFilter{}.where(s.now(), v))
	if err != nil {
		return nil, fmt.Errorf("incident extent: %w", err)
	}
	return e, nil
}
