package incident

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/internal/database"
)

// ListStaff returns a grid's team: leader first, then volunteers, then staff.
func (s *Service) ListStaff(ctx context.Context, gridID int64) ([]Staff, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, grid_id, role, name, phone, organisation, user_id, created_at FROM grid_staff
		WHERE grid_id = $1 ORDER BY CASE role WHEN 'leader' THEN 0 WHEN 'volunteer' THEN 1 ELSE 2 END, id`, gridID)
	if err != nil {
		return nil, fmt.Errorf("staff: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanStaff)
	if out == nil {
		out = []Staff{}
	}
	return out, err
}

func scanStaff(row pgx.CollectableRow) (Staff, error) {
	var st Staff
	err := row.Scan(&st.ID, &st.GridID, &st.Role, &st.Name, &st.Phone, &st.Organisation, &st.UserID, &st.CreatedAt)
	return st, err
}

// AddStaff adds a member to a grid's team; a grid has one leader.
func (s *Service) AddStaff(ctx context.Context, st Staff) (*Staff, error) {
	st.Name = strings.TrimSpace(st.Name)
	switch {
	case st.Role != "leader" && st.Role != "volunteer" && st.Role != "staff":
		return nil, FieldError("role", "%q: want leader, volunteer or staff", st.Role)
	case st.Name == "" || len(st.Name) > 100:
		return nil, FieldError("name", "is required (up to 100 characters)")
	case len(st.Phone) > 40 || len(st.Organisation) > 200:
		return nil, FieldError("phone", "phone or organisation too long")
	}
	var out Staff
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO grid_staff (grid_id, role, name, phone, organisation, user_id)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, grid_id, role, name, phone, organisation, user_id, created_at`,
			st.GridID, st.Role, st.Name, st.Phone, st.Organisation, st.UserID).
			Scan(&out.ID, &out.GridID, &out.Role, &out.Name, &out.Phone, &out.Organisation, &out.UserID, &out.CreatedAt)
		switch v, constraint := database.Violated(err); v {
		case database.Unique:
			return gridwatch.Errorf(gridwatch.EConflict, "grid %d already has a leader; remove them first", st.GridID).WithDetails(map[string]any{"field": "role"})
		case database.ForeignKey:
			if strings.Contains(constraint, "user") {
				return FieldError("user_id", "user %d does not exist", *st.UserID)
			}
			return gridwatch.Errorf(gridwatch.ENotFound, "grid %d not found", st.GridID)
		}
		if err != nil {
			return fmt.Errorf("add staff: %w", err)
		}
		return audit.Record(ctx, tx, "staff.add", "grid_staff", strconv.FormatInt(out.ID, 10),
			map[string]any{"after": map[string]any{"grid_id": out.GridID, "role": out.Role, "name": out.Name}})
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// StaffGrid returns the grid of staff member id.
func (s *Service) StaffGrid(ctx context.Context, id int64) (int64, error) {
	var grid int64
	err := s.pool.QueryRow(ctx, "SELECT grid_id FROM grid_staff WHERE id = $1", id).Scan(&grid)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, gridwatch.Errorf(gridwatch.ENotFound, "staff member %d not found", id)
	}
	return grid, err
}

// RemoveStaff removes a member from a team; their open cases keep them
// until re-dispatched (the assignee is cleared).
func (s *Service) RemoveStaff(ctx context.Context, id int64) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var name, role string
		var grid int64
		err := tx.QueryRow(ctx, "DELETE FROM grid_staff WHERE id = $1 RETURNING name, role, grid_id", id).Scan(&name, &role, &grid)
		if errors.Is(err, pgx.ErrNoRows) {
			return gridwatch.Errorf(gridwatch.ENotFound, "staff member %d not found", id)
		}
		if err != nil {
			return fmt.Errorf("remove staff: %w", err)
		}
		return audit.Record(ctx, tx, "staff.remove", "grid_staff", strconv.FormatInt(id, 10),
			map[string]any{"before": map[string]any{"grid_id": grid, "role": role, "name": name}})
	})
}

// LinkStaff makes user userID the first member of grid gridID's team in
// role who has no account yet (a grid leader signing in to the field app
// finds the cases dispatched to that member as theirs). A team that has a
// member of role linked to the user already is left as it is.
func (s *Service) LinkStaff(ctx context.Context, gridID int64, role string, userID int64) error {
	_, err := s.pool.Exec(ctx, `UPDATE grid_staff SET user_id = $3
		WHERE id = (SELECT id FROM grid_staff WHERE grid_id = $1 AND role = $2 AND user_id IS NULL ORDER BY id LIMIT 1)
		AND NOT EXISTS (SELECT 1 FROM grid_staff WHERE grid_id = $1 AND role = $2 AND user_id = $3)`, gridID, role, userID)
	if err != nil {
		return fmt.Errorf("link staff: %w", err)
	}
	return nil
}
