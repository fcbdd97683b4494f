package incident

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"gridwatch/internal/database"
)

// Workload is one member's cases: those assigned to a grid staff row
// linked to their account (grid_staff.user_id) and still open (not closed
// or rejected), and how many of those are past their deadline.
type Workload struct {
	UserID  int64 `json:"user_id"`
	Open    int64 `json:"open"`
	Overdue int64 `json:"overdue"`
}

// Workload counts, per user, the open cases v may see that are assigned to
// them, and the overdue ones among them, now. users, when not nil, limits
// the count to these users. Users without open cases have no row; rows
// come by user id. A member on several grids' teams has their cases
// counted together.
func (s *Service) Workload(ctx context.Context, v Viewer, users []int64) ([]Workload, error) {
	var w database.Where
	now := w.Arg(s.now())
	w.Add("st.user_id IS NOT NULL")
	w.Add("i.status NOT IN ('closed', 'rejected')")
	if users != nil {
		w.Add("st.user_id = ANY(?)", users)
	}
	v.where(&w)
	rows, err := s.pool.Query(ctx, `SELECT st.user_id, count(*), count(*) FILTER (WHERE i.deadline < `+now+`)
		FROM incidents i JOIN grid_staff st ON st.id = i.assignee_id`+w.SQL()+`
		GROUP BY st.user_id ORDER BY st.user_id`, w.Args()...)
	if err != nil {
		return nil, fmt.Errorf("workload: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Workload, error) {
		var wl Workload
		err := row.Scan(&wl.UserID, &wl.Open, &wl.Overdue)
		return wl, err
	})
	if err != nil {
		return nil, fmt.Errorf("workload: %w", err)
	}
	if out == nil {
		out = []Workload{}
	}
	return out, nil
}
