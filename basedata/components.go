package basedata

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/internal/database"
)

// City components (物/部件, GB/T 30428.2): manhole covers, street lamps,
// hydrants, bins… Each is a point with its class, the department that keeps
// it and its state, placed by GridAt. A component case (an incident with
// component_id) is listed on its component by the api, from package
// incident.

// Component states.
const (
	StateIntact  = "intact"
	StateDamaged = "damaged"
	StateLost    = "lost"
	StateRemoved = "removed"
)

// States lists the component states.
func States() []string { return []string{StateIntact, StateDamaged, StateLost, StateRemoved} }

// Class is a component class: a major class (2 digits) or a subclass (4).
type Class struct {
	Code       string  `json:"code"`
	Name       string  `json:"name"`
	ParentCode *string `json:"parent_code,omitempty"`
}

// Component is a component as the API shows it.
type Component struct {
	ID         int64     `json:"id"`
	Code       string    `json:"code"`
	Class      Class     `json:"class"`
	Name       string    `json:"name"`
	Department string    `json:"department"`
	State      string    `json:"state"`
	Lon        float64   `json:"lon"`
	Lat        float64   `json:"lat"`
	Address    string    `json:"address"`
	Grid       *GridRef  `json:"grid"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// ComponentPatch is a change to a component; nil fields stay.
type ComponentPatch struct {
	State      *string `json:"state"`
	Name       *string `json:"name"`
	Department *string `json:"department"`
}

const componentColumns = `k.id, k.code, c.code, c.name, k.name, k.department, k.state, ST_X(k.location), ST_Y(k.location),
	k.address, g.id, g.code, g.name, k.updated_at`

const componentFrom = ` FROM components k JOIN component_classes c ON c.code = k.class_code LEFT JOIN grids g ON g.id = k.grid_id`

func scanComponent(row pgx.Row) (Component, error) {
	var (
		k            Component
		gid          *int64
		gcode, gname *string
	)
	err := row.Scan(&k.ID, &k.Code, &k.Class.Code, &k.Class.Name, &k.Name, &k.Department, &k.State, &k.Lon, &k.Lat,
		&k.Address, &gid, &gcode, &gname, &k.UpdatedAt)
	k.Grid = gridRef(gid, gcode, gname)
	return k, err
}

// componentWhere is the conditions of f and v on components k.
func componentWhere(f Filter, v Viewer) database.Where {
	var w database.Where
	v.where(&w, "k")
	if f.GridID != 0 {
		w.Add("k.grid_id IN (SELECT * FROM grid_subtree(?))", []int64{f.GridID})
	}
	f.BBox.Where(&w, "k.location")
	if q := strings.TrimSpace(f.Q); q != "" {
		p := likePattern(q)
		w.Add("(k.code ILIKE ? OR k.name ILIKE ? OR k.address ILIKE ?)", p, p, p)
	}
	if f.Class != "" {
		w.Add("starts_with(k.class_code, ?)", f.Class)
	}
	w.Eq("k.state", f.State)
	return w
}

// CheckFilter refuses a component state or class that cannot match.
func CheckFilter(f Filter) error {
	if f.State != "" && !slices.Contains(States(), f.State) {
		return gridwatch.Errorf(gridwatch.EInvalid, "state %q is not one of %s", f.State, strings.Join(States(), ", ")).
			WithDetails(map[string]any{"param": "state", "value": f.State})
	}
	if f.Class != "" && !classPattern(f.Class) {
		return gridwatch.Errorf(gridwatch.EInvalid, "class %q is not a class code (2 or 4 digits, such as 01 or 0101)", f.Class).
			WithDetails(map[string]any{"param": "class", "value": f.Class})
	}
	return nil
}

func classPattern(c string) bool {
	if len(c) != 2 && len(c) != 4 {
		return false
	}
	for _, r := range c {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// Components returns a page of the components v may see, newest first,
// and the next cursor (0: none).
func (s *Service) Components(ctx context.Context, f Filter, v Viewer) ([]Component, int64, error) {
	if err := CheckFilter(f); err != nil {
		return nil, 0, err
	}
	list, next, err := database.QueryPage(ctx, s.pool, `SELECT `+componentColumns+componentFrom, componentWhere(f, v),
		database.Keyset{Key: "k.id", Desc: true, Cursor: f.Before, Limit: f.Limit},
		func(r pgx.CollectableRow) (Component, error) { return scanComponent(r) },
		func(k Component) int64 { return k.ID })
	if err != nil {
		return nil, 0, fmt.Errorf("list components: %w", err)
	}
	return list, next, nil
}

// Component returns component id, if v may see it.
func (s *Service) Component(ctx context.Context, id int64, v Viewer) (*Component, error) {
	return s.component(ctx, s.pool, id, v, false)
}

func (s *Service) component(ctx context.Context, q database.Querier, id int64, v Viewer, lock bool) (*Component, error) {
	var w database.Where
	w.Add("k.id = ?", id)
	v.where(&w, "k")
	sql := `SELECT ` + componentColumns + componentFrom + w.SQL()
	if lock {
		sql += " FOR NO KEY UPDATE OF k"
	}
	k, err := scanComponent(q.QueryRow(ctx, sql, w.Args()...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gridwatch.Errorf(gridwatch.ENotFound, "component %d not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("component %d: %w", id, err)
	}
	return &k, nil
}

// patchField checks a patched text field: at most max characters, no NUL.
func patchField(field string, v *string, max int) error {
	if v == nil {
		return nil
	}
	*v = strings.TrimSpace(*v)
	switch {
	case strings.ContainsRune(*v, 0):
		return fieldError(field, "holds a NUL character")
	case utf8.RuneCountInString(*v) > max:
		return fieldError(field, "is longer than %d characters", max)
	}
	return nil
}

func fieldError(field, format string, args ...any) error {
	return gridwatch.Errorf(gridwatch.EInvalid, "%s: %s", field, fmt.Sprintf(format, args...)).
		WithDetails(map[string]any{"field": field})
}

// UpdateComponent changes a component's state, name or department, if v
// may see it; audited as component.update with what changed.
func (s *Service) UpdateComponent(ctx context.Context, id int64, p ComponentPatch, v Viewer) (*Component, error) {
	if p.State != nil && !slices.Contains(States(), *p.State) {
		return nil, fieldError("state", "%q is not one of %s", *p.State, strings.Join(States(), ", "))
	}
	if err := patchField("name", p.Name, maxText); err != nil {
		return nil, err
	}
	if err := patchField("department", p.Department, maxText); err != nil {
		return nil, err
	}
	if p.State == nil && p.Name == nil && p.Department == nil {
		return nil, gridwatch.Errorf(gridwatch.EInvalid, "nothing to change: send state, name or department")
	}
	var out *Component
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		before, err := s.component(ctx, tx, id, v, true)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE components SET state = coalesce($2, state), name = coalesce($3, name),
				department = coalesce($4, department), updated_at = now() WHERE id = $1`, id, p.State, p.Name, p.Department); err != nil {
			return fmt.Errorf("update component %d: %w", id, err)
		}
		if out, err = s.component(ctx, tx, id, Viewer{}, false); err != nil {
			return err
		}
		changed := map[string]any{}
		for field, pair := range map[string][2]string{"state": {before.State, out.State}, "name": {before.Name, out.Name},
			"department": {before.Department, out.Department}} {
			if pair[0] != pair[1] {
				changed[field] = map[string]string{"before": pair[0], "after": pair[1]}
			}
		}
		return audit.Record(ctx, tx, "component.update", "component", strconv.FormatInt(id, 10),
			map[string]any{"code": out.Code, "changes": changed})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Classes lists the component classes, by code.
func (s *Service) Classes(ctx context.Context) ([]Class, error) {
	rows, err := s.pool.Query(ctx, `SELECT code, name, parent_code FROM component_classes ORDER BY code`)
	if err != nil {
		return nil, fmt.Errorf("component classes: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Class, error) {
		var c Class
		err := r.Scan(&c.Code, &c.Name, &c.ParentCode)
		return c, err
	})
}
