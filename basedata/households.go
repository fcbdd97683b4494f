package basedata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/geo"
	"gridwatch/internal/database"
)

// People (人): households in buildings and their residents. A household's
// (and its residents') grid is its building's, kept on the rows for counts
// and scope, and carried along by followBuildings when buildings move.

// BuildingRef names the building a household is in.
type BuildingRef struct {
	ID      int64  `json:"id"`
	Code    string `json:"code"`
	Name    string `json:"name"`
	Address string `json:"address"`
}

// Household is a household as the API shows it. Residents and Care (how
// many residents, and per care flag) are there only for viewers who see
// residents (residents.read); others see where the household is.
type Household struct {
	ID        int64            `json:"id"`
	Code      string           `json:"code"`
	Building  BuildingRef      `json:"building"`
	Unit      string           `json:"unit"`
	Room      string           `json:"room"`
	Grid      *GridRef         `json:"grid"`
	Residents *int64           `json:"residents,omitempty"`
	Care      map[string]int64 `json:"care,omitempty"`
	// LastVisitAt is when the household was last visited (走访), null
	// when never, or for viewers who do not see residents: the field app
	// sorts the households due a visit by it.
	LastVisitAt *time.Time `json:"last_visit_at"`
}

// HouseholdDetail is a household with its residents (masked) and its
// latest visits.
type HouseholdDetail struct {
	Household
	ResidentList []Resident `json:"resident_list"`
	Visits       []Visit    `json:"visits"`
}

// HouseholdRef names a household.
type HouseholdRef struct {
	ID   int64  `json:"id"`
	Code string `json:"code"`
}

// latestVisits is how many visits a household's or a resident's page
// shows; the visits list has them all.
const latestVisits = 20

const householdColumns = `h.id, h.code, b.id, b.code, b.name, b.address, h.unit, h.room, g.id, g.code, g.name`

// householdCounts are the residents of household h, their care flags and
// its latest visit (home_visits_household answers it from the index).
const householdCounts = `, (SELECT count(*) FROM residents r WHERE r.household_id = h.id),
	(SELECT jsonb_object_agg(f, n) FROM (SELECT unnest(r.care) AS f, count(*) AS n FROM residents r
		WHERE r.household_id = h.id GROUP BY 1) c),
	(SELECT max(v.visited_at) FROM home_visits v WHERE v.household_id = h.id)`

const householdFrom = ` FROM households h JOIN buildings b ON b.id = h.building_id LEFT JOIN grids g ON g.id = h.grid_id`

func scanHousehold(row pgx.Row, counts bool) (Household, error) {
	var (
		h            Household
		gid          *int64
		gcode, gname *string
		n            int64
		care         []byte
	)
	dest := []any{&h.ID, &h.Code, &h.Building.ID, &h.Building.Code, &h.Building.Name, &h.Building.Address, &h.Unit, &h.Room, &gid, &gcode, &gname}
	if counts {
		dest = append(dest, &n, &care, &h.LastVisitAt)
	}
	if err := row.Scan(dest...); err != nil {
		return h, err
	}
	h.Grid = gridRef(gid, gcode, gname)
	if counts {
		h.Residents, h.Care = &n, map[string]int64{}
		if care != nil {
			if err := json.Unmarshal(care, &h.Care); err != nil {
				return h, err
			}
		}
	}
	return h, nil
}

func (s *Service) householdQuery(v Viewer) string {
	if v.Residents {
		return `SELECT ` + householdColumns + householdCounts + householdFrom
	}
	return `SELECT ` + householdColumns + householdFrom
}

// householdWhere is the conditions of f and v on households h.
func householdWhere(f Filter, v Viewer) (database.Where, error) {
	var w database.Where
	v.where(&w, "h")
	if f.GridID != 0 {
		w.Add("h.grid_id IN (SELECT * FROM grid_subtree(?))", []int64{f.GridID})
	}
	if f.BuildingID != 0 {
		w.Add("h.building_id = ?", f.BuildingID)
	}
	if f.HouseholdID != 0 {
		w.Add("h.id = ?", f.HouseholdID)
	}
	if q := strings.TrimSpace(f.Q); q != "" {
		p := likePattern(q)
		w.Add("(h.code ILIKE ? OR b.code ILIKE ? OR b.address ILIKE ?)", p, p, p)
	}
	if len(f.Care) > 0 {
		if !v.Residents {
			return w, gridwatch.Errorf(gridwatch.EForbidden, "households by care flag need the permission to see residents")
		}
		w.Add("EXISTS (SELECT 1 FROM residents r WHERE r.household_id = h.id AND r.care <> '{}' AND r.care @> ?)", f.Care)
	}
	return w, nil
}

// Households returns a page of the households v may see, newest first,
// and the next cursor (0: none).
func (s *Service) Households(ctx context.Context, f Filter, v Viewer) ([]Household, int64, error) {
	w, err := householdWhere(f, v)
	if err != nil {
		return nil, 0, err
	}
	list, next, err := database.QueryPage(ctx, s.pool, s.householdQuery(v), w,
		database.Keyset{Key: "h.id", Desc: true, Cursor: f.Before, Limit: f.Limit},
		func(r pgx.CollectableRow) (Household, error) { return scanHousehold(r, v.Residents) },
		func(h Household) int64 { return h.ID })
	if err != nil {
		return nil, 0, fmt.Errorf("list households: %w", err)
	}
	return list, next, nil
}

// Household returns household id with its residents (masked) and latest
// visits, if v may see it.
func (s *Service) Household(ctx context.Context, id int64, v Viewer) (*HouseholdDetail, error) {
	if !v.Residents {
		return nil, gridwatch.Errorf(gridwatch.EForbidden, "a household's residents need the permission to see residents")
	}
	h, err := s.household(ctx, s.pool, id, v)
	if err != nil {
		return nil, err
	}
	d := &HouseholdDetail{Household: *h}
	if d.ResidentList, _, err = s.residents(ctx, s.pool, Filter{HouseholdID: id, Limit: maxHouseholdResidents}, v); err != nil {
		return nil, err
	}
	if d.Visits, _, err = s.visits(ctx, s.pool, VisitFilter{HouseholdID: id, Limit: latestVisits}, v); err != nil {
		return nil, err
	}
	return d, nil
}

// maxHouseholdResidents caps a household's residents on its page.
const maxHouseholdResidents = 200

func (s *Service) household(ctx context.Context, q database.Querier, id int64, v Viewer) (*Household, error) {
	var w database.Where
	w.Add("h.id = ?", id)
	v.where(&w, "h")
	h, err := scanHousehold(q.QueryRow(ctx, s.householdQuery(v)+w.SQL(), w.Args()...), v.Residents)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, householdNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("household %d: %w", id, err)
	}
	return &h, nil
}

func householdNotFound(id int64) error {
	return gridwatch.Errorf(gridwatch.ENotFound, "household %d not found", id)
}

// householdGrid locks household id, if v may see it, and returns its grid.
func householdGrid(ctx context.Context, tx pgx.Tx, id int64, v Viewer) (*int64, error) {
	var w database.Where
	w.Add("h.id = ?", id)
	v.where(&w, "h")
	var grid *int64
	err := tx.QueryRow(ctx, `SELECT h.grid_id FROM households h`+w.SQL()+` FOR SHARE`, w.Args()...).Scan(&grid)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, householdNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("household %d: %w", id, err)
	}
	return grid, nil
}

// followBuildings gives households, and their residents, their building's
// grid after a boundary change moved buildings (FollowGrids), in tx. Only
// the buildings the change could have moved are looked at — those in its
// area (by point or footprint, as Relocate chose them) and those whose
// households are in a removed grid — and only households that differ are
// written; the per-grid counts follow by their triggers.
func (s *Service) followBuildings(ctx context.Context, tx pgx.Tx, ch *geo.Change) error {
	_, err := tx.Exec(ctx, `WITH b AS (
			SELECT id, grid_id FROM buildings WHERE ST_Covers($1::geometry, location) OR ST_Intersects($1::geometry, footprint)
			UNION SELECT b.id, b.grid_id FROM households h JOIN buildings b ON b.id = h.building_id WHERE h.grid_id = ANY($2)
		), moved AS (
			UPDATE households h SET grid_id = b.grid_id, updated_at = now()
			FROM b WHERE b.id = h.building_id AND h.grid_id IS DISTINCT FROM b.grid_id
			RETURNING h.id, h.grid_id)
		UPDATE residents r SET grid_id = m.grid_id, updated_at = now()
		FROM moved m WHERE r.household_id = m.id AND r.grid_id IS DISTINCT FROM m.grid_id`, ch.Area, ch.Removed)
	if err != nil {
		return fmt.Errorf("households follow their buildings: %w", err)
	}
	return nil
}

// CareFlag is one flag of the configurable care list (重点人群).
type CareFlag struct {
	Code     string `json:"code"`
	Name     string `json:"name"`
	Position int    `json:"position"`
	Builtin  bool   `json:"builtin"`
}

// CareFlags returns the care flags in their order.
func (s *Service) CareFlags(ctx context.Context) ([]CareFlag, error) {
	return careFlags(ctx, s.pool)
}

func careFlags(ctx context.Context, q database.Querier) ([]CareFlag, error) {
	rows, err := q.Query(ctx, `SELECT code, name, position, builtin FROM care_flags ORDER BY position, code`)
	if err != nil {
		return nil, fmt.Errorf("care flags: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (CareFlag, error) {
		var f CareFlag
		return f, r.Scan(&f.Code, &f.Name, &f.Position, &f.Builtin)
	})
	if err != nil {
		return nil, fmt.Errorf("care flags: %w", err)
	}
	return list, nil
}

// MaxCareFlags is how many care flags there may be (the slots of the
// per-grid counts).
const MaxCareFlags = 32

// SetCareFlag adds care flag code, or renames or reorders it; audited as
// care_flag.set. A code is lower-case letters, digits and _ (up to 40,
// starting with a letter); a name 1 to 40 characters.
func (s *Service) SetCareFlag(ctx context.Context, code, name string, position int) (*CareFlag, error) {
	name = strings.TrimSpace(name)
	if !careCode(code) {
		return nil, fieldError("code", "%q is not a flag code: lower-case letters, digits and _, starting with a letter, up to 40", code)
	}
	if name == "" || utf8.RuneCountInString(name) > 40 || strings.ContainsRune(name, 0) {
		return nil, fieldError("name", "is 1 to 40 characters")
	}
	var f CareFlag
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// One change of the list at a time: a new flag takes the lowest
		// free slot of the per-grid counts.
		if _, err := tx.Exec(ctx, `LOCK TABLE care_flags IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		var before *CareFlag
		var old CareFlag
		switch err := tx.QueryRow(ctx, `SELECT code, name, position, builtin FROM care_flags WHERE code = $1`, code).
			Scan(&old.Code, &old.Name, &old.Position, &old.Builtin); {
		case err == nil:
			before = &old
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if before == nil {
			var free *int16
			if err := tx.QueryRow(ctx, `SELECT min(s) FROM generate_series(1, $1::int) s
				WHERE s NOT IN (SELECT slot FROM care_flags)`, MaxCareFlags).Scan(&free); err != nil {
				return err
			}
			if free == nil {
				return gridwatch.Errorf(gridwatch.EConflict, "there are %d care flags already, the most there may be: rename one instead", MaxCareFlags)
			}
			if err := tx.QueryRow(ctx, `INSERT INTO care_flags (code, name, position, slot) VALUES ($1, $2, $3, $4)
				RETURNING code, name, position, builtin`, code, name, position, *free).Scan(&f.Code, &f.Name, &f.Position, &f.Builtin); err != nil {
				return err
			}
		} else if err := tx.QueryRow(ctx, `UPDATE care_flags SET name = $2, position = $3 WHERE code = $1
			RETURNING code, name, position, builtin`, code, name, position).Scan(&f.Code, &f.Name, &f.Position, &f.Builtin); err != nil {
			return err
		}
		summary := map[string]any{"after": map[string]any{"name": f.Name, "position": f.Position}}
		if before != nil {
			summary["before"] = map[string]any{"name": before.Name, "position": before.Position}
		}
		return audit.Record(ctx, tx, "care_flag.set", "care_flag", code, summary)
	})
	if err != nil {
		if gridwatch.ErrorCode(err) != gridwatch.EInternal {
			return nil, err
		}
		return nil, fmt.Errorf("set care flag %s: %w", code, err)
	}
	return &f, nil
}

func careCode(s string) bool {
	if len(s) == 0 || len(s) > 40 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
