package basedata

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/internal/database"
	"gridwatch/internal/pii"
)

// Residents are always shown masked: the stored masks of the ID number and
// phone, the birth year, the name's first (and last) character. The full
// values are sealed (internal/pii) and opened only by Unmask, for a stated
// purpose, audited, and by the bulk export, off unless the server allows it.

// Error codes of people's personal data.
const (
	// EPurpose: an unmasking without a purpose of 4 to 200 characters (422).
	EPurpose = gridwatch.EPurposeRequired
	// EExportDisabled: a bulk export of personal data on a server that
	// does not allow it (--pii-export; 403).
	EExportDisabled = gridwatch.EExportDisabled
)

// Resident is a resident as every list and card shows them: masked.
type Resident struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	Gender   string `json:"gender"`
	Relation string `json:"relation"`
	// Age is the age reached this year (from the birth year: the exact
	// date is sealed), null when unknown.
	Age       *int          `json:"age"`
	IDNumber  string        `json:"id_number"`
	Phone     string        `json:"phone"`
	BirthDate string        `json:"birth_date"`
	Care      []string      `json:"care"`
	Household *HouseholdRef `json:"household"`
	Grid      *GridRef      `json:"grid"`
}

// ResidentDetail is a resident with their moves and their household's
// latest visits.
type ResidentDetail struct {
	Resident
	Moves  []MoveRecord `json:"moves"`
	Visits []Visit      `json:"visits"`
}

// MoveRecord is one move in a resident's history.
type MoveRecord struct {
	Kind      string        `json:"kind"`
	At        time.Time     `json:"at"`
	Household *HouseholdRef `json:"household"`
	Note      string        `json:"note"`
}

// Unmasked is a resident's personal data in full.
type Unmasked struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	IDNumber  string `json:"id_number"`
	Phone     string `json:"phone"`
	BirthDate string `json:"birth_date"`
}

const residentColumns = `r.id, r.name, r.gender, r.relation, r.birth_year, r.id_masked, r.phone_masked, r.care,
	h.id, h.code, g.id, g.code, g.name`

const residentFrom = ` FROM residents r LEFT JOIN households h ON h.id = r.household_id LEFT JOIN grids g ON g.id = r.grid_id`

func (s *Service) scanResident(row pgx.Row) (Resident, error) {
	var (
		r            Resident
		year         *int32
		hid          *int64
		hcode        *string
		gid          *int64
		gcode, gname *string
	)
	if err := row.Scan(&r.ID, &r.Name, &r.Gender, &r.Relation, &year, &r.IDNumber, &r.Phone, &r.Care,
		&hid, &hcode, &gid, &gcode, &gname); err != nil {
		return r, err
	}
	r.Name = pii.MaskName(r.Name)
	if year != nil {
		age := s.now().Year() - int(*year)
		r.Age = &age
		r.BirthDate = fmt.Sprintf("%04d-**-**", *year)
	}
	if r.Care == nil {
		r.Care = []string{}
	}
	if hid != nil {
		r.Household = &HouseholdRef{ID: *hid, Code: *hcode}
	}
	r.Grid = gridRef(gid, gcode, gname)
	return r, nil
}

// residentWhere is the conditions of f and v on residents r (households h).
func (s *Service) residentWhere(f Filter, v Viewer) (database.Where, error) {
	var w database.Where
	v.where(&w, "r")
	if f.GridID != 0 {
		w.Add("r.grid_id IN (SELECT * FROM grid_subtree(?))", []int64{f.GridID})
	}
	if f.HouseholdID != 0 {
		w.Add("r.household_id = ?", f.HouseholdID)
	}
	if f.BuildingID != 0 {
		w.Add("h.building_id = ?", f.BuildingID)
	}
	if len(f.Care) > 0 {
		// care <> '{}' lets the planner use the partial index of flagged
		// residents.
		w.Add("r.care <> '{}' AND r.care @> ?", f.Care)
	}
	if q := strings.TrimSpace(f.Q); q != "" {
		p := likePattern(q)
		w.Add("(r.name ILIKE ? OR h.code ILIKE ?)", p, p)
	}
	if f.IDNumber != "" {
		if s.keys == nil {
			return w, noKeys()
		}
		// Searching does not insist on the check digit: it stores nothing,
		// and finds the demo's synthetic people too.
		id, err := pii.NormaliseIDUnchecked(f.IDNumber)
		if err != nil {
			return w, fieldError("id_number", "%s", err)
		}
		w.Add("r.id_hash = ANY(?)", s.keys.Find(pii.FieldID, id.Number))
	}
	return w, nil
}

func noKeys() error {
	return gridwatch.Errorf(gridwatch.EUnavailable, "personal data cannot be sealed or opened: this server has no personal-data keys")
}

func residentNotFound(id int64) error {
	return gridwatch.Errorf(gridwatch.ENotFound, "resident %d not found", id)
}

// Residents returns a page of the residents v may see (masked), newest
// first, and the next cursor (0: none). f.IDNumber finds one by exact ID
// number, through its keyed hash under every key.
func (s *Service) Residents(ctx context.Context, f Filter, v Viewer) ([]Resident, int64, error) {
	if !v.Residents {
		return nil, 0, gridwatch.Errorf(gridwatch.EForbidden, "residents are listed only for those who may see them")
	}
	return s.residents(ctx, s.pool, f, v)
}

func (s *Service) residents(ctx context.Context, q database.Querier, f Filter, v Viewer) ([]Resident, int64, error) {
	w, err := s.residentWhere(f, v)
	if err != nil {
		return nil, 0, err
	}
	list, next, err := database.QueryPage(ctx, q, `SELECT `+residentColumns+residentFrom, w,
		database.Keyset{Key: "r.id", Desc: true, Cursor: f.Before, Limit: f.Limit},
		func(r pgx.CollectableRow) (Resident, error) { return s.scanResident(r) },
		func(r Resident) int64 { return r.ID })
	if err != nil {
		return nil, 0, fmt.Errorf("list residents: %w", err)
	}
	return list, next, nil
}

// Resident returns resident id (masked) with their moves and their
// household's latest visits, if v may see them.
func (s *Service) Resident(ctx context.Context, id int64, v Viewer) (*ResidentDetail, error) {
	if !v.Residents {
		return nil, gridwatch.Errorf(gridwatch.EForbidden, "residents are shown only to those who may see them")
	}
	return s.resident(ctx, s.pool, id, v)
}

func (s *Service) resident(ctx context.Context, q database.Querier, id int64, v Viewer) (*ResidentDetail, error) {
	var w database.Where
	w.Add("r.id = ?", id)
	v.where(&w, "r")
	r, err := s.scanResident(q.QueryRow(ctx, `SELECT `+residentColumns+residentFrom+w.SQL(), w.Args()...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, residentNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("resident %d: %w", id, err)
	}
	d := &ResidentDetail{Resident: r, Visits: []Visit{}}
	rows, err := q.Query(ctx, `SELECT m.kind, m.at, h.id, h.code, m.note FROM resident_moves m
		LEFT JOIN households h ON h.id = m.household_id WHERE m.resident_id = $1 ORDER BY m.at, m.id`, id)
	if err != nil {
		return nil, fmt.Errorf("resident %d moves: %w", id, err)
	}
	d.Moves, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (MoveRecord, error) {
		var m MoveRecord
		var hid *int64
		var hcode *string
		if err := row.Scan(&m.Kind, &m.At, &hid, &hcode, &m.Note); err != nil {
			return m, err
		}
		if hid != nil {
			m.Household = &HouseholdRef{ID: *hid, Code: *hcode}
		}
		return m, nil
	})
	if err != nil {
		return nil, fmt.Errorf("resident %d moves: %w", id, err)
	}
	if d.Moves == nil {
		d.Moves = []MoveRecord{}
	}
	if r.Household != nil {
		// The household's visits, whoever made them: the resident is in
		// v's scope, and so is their household.
		if d.Visits, _, err = s.visits(ctx, q, VisitFilter{HouseholdID: r.Household.ID, Limit: latestVisits}, Viewer{Residents: true}); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// MinPurpose and MaxPurpose bound an unmasking's stated purpose, in
// characters.
const (
	MinPurpose = 4
	MaxPurpose = 200
)

// Unmask returns resident id's personal data in full, if v may see them,
// for purpose (4 to 200 characters, trimmed), and records who saw whom,
// when and why in the audit trail (resident.unmask) in the same
// transaction: no entry, no answer.
func (s *Service) Unmask(ctx context.Context, id int64, purpose string, v Viewer) (*Unmasked, error) {
	purpose = strings.TrimSpace(purpose)
	if n := utf8.RuneCountInString(purpose); n < MinPurpose || n > MaxPurpose || strings.ContainsRune(purpose, 0) {
		return nil, gridwatch.Errorf(EPurpose, "purpose: say why you need this resident's personal data, in %d to %d characters (it is recorded)", MinPurpose, MaxPurpose).
			WithDetails(map[string]any{"field": "purpose", "min": MinPurpose, "max": MaxPurpose})
	}
	if s.keys == nil {
		return nil, noKeys()
	}
	var out *Unmasked
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var w database.Where
		w.Add("r.id = ?", id)
		v.where(&w, "r")
		var idSealed, phoneSealed, birthSealed []byte
		u := &Unmasked{ID: id}
		err := tx.QueryRow(ctx, `SELECT r.name, r.id_sealed, r.phone_sealed, r.birth_sealed FROM residents r`+w.SQL(), w.Args()...).
			Scan(&u.Name, &idSealed, &phoneSealed, &birthSealed)
		if errors.Is(err, pgx.ErrNoRows) {
			return residentNotFound(id)
		}
		if err != nil {
			return err
		}
		fields := []string{"name", "id_number"}
		if u.IDNumber, err = s.open(pii.FieldID, idSealed); err != nil {
			return err
		}
		if phoneSealed != nil {
			if u.Phone, err = s.open(pii.FieldPhone, phoneSealed); err != nil {
				return err
			}
			fields = append(fields, "phone")
		}
		if birthSealed != nil {
			if u.BirthDate, err = s.open(pii.FieldBirth, birthSealed); err != nil {
				return err
			}
			fields = append(fields, "birth_date")
		}
		out = u
		return audit.Record(ctx, tx, "resident.unmask", "resident", strconv.FormatInt(id, 10),
			map[string]any{"purpose": purpose, "fields": fields})
	})
	if err != nil {
		if gridwatch.ErrorCode(err) != gridwatch.EInternal {
			return nil, err
		}
		return nil, fmt.Errorf("unmask resident %d: %w", id, err)
	}
	return out, nil
}

// open opens a sealed value; a value under a key the ring lacks is the
// operator's to fix (a key pruned too early), said as such.
func (s *Service) open(field string, sealed []byte) (string, error) {
	b, err := s.keys.Open(field, sealed)
	if errors.Is(err, pii.ErrNoKey) {
		return "", gridwatch.Errorf(gridwatch.EUnavailable, "this resident's %s is sealed under a key the server no longer holds: restore it to the key file", field)
	}
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// Move is a move of a resident: Kind "in" to HouseholdID (out of their
// household, if any), or "out" of their household (gone from the grids).
type Move struct {
	Kind        string
	HouseholdID int64
	// At is when it happened (zero: now); Note says why or from where.
	At   time.Time
	Note string
}

// maxNote is the longest a move's note may be.
const maxNote = 500

// Move records resident id's move, if v may see them and (moving in) the
// household, and returns the resident as they now are. A change of
// household is an "out" and an "in" in their history. Audited as
// resident.move.
func (s *Service) Move(ctx context.Context, id int64, m Move, v Viewer) (*ResidentDetail, error) {
	m.Note = strings.TrimSpace(m.Note)
	now := s.now()
	switch {
	case m.Kind != "in" && m.Kind != "out":
		return nil, fieldError("kind", "%q is not in or out", m.Kind)
	case m.Kind == "in" && m.HouseholdID <= 0:
		return nil, fieldError("household_id", "moving in names the household")
	case m.Kind == "out" && m.HouseholdID != 0:
		return nil, fieldError("household_id", "moving out names no household: the resident leaves theirs")
	case utf8.RuneCountInString(m.Note) > maxNote || strings.ContainsRune(m.Note, 0):
		return nil, fieldError("note", "is longer than %d characters", maxNote)
	case m.At.After(now.Add(5 * time.Minute)):
		return nil, fieldError("at", "%s is in the future", m.At.Format(time.RFC3339))
	}
	if m.At.IsZero() {
		m.At = now
	}
	var out *ResidentDetail
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var w database.Where
		w.Add("r.id = ?", id)
		v.where(&w, "r")
		var from *int64
		if err := tx.QueryRow(ctx, `SELECT r.household_id FROM residents r`+w.SQL()+` FOR UPDATE`, w.Args()...).Scan(&from); errors.Is(err, pgx.ErrNoRows) {
			return residentNotFound(id)
		} else if err != nil {
			return err
		}
		var to, grid *int64
		if m.Kind == "in" {
			g, err := householdGrid(ctx, tx, m.HouseholdID, v)
			if err != nil {
				return err
			}
			if from != nil && *from == m.HouseholdID {
				return gridwatch.Errorf(gridwatch.EConflict, "resident %d already lives in household %d", id, m.HouseholdID)
			}
			to, grid = &m.HouseholdID, g
		} else if from == nil {
			return gridwatch.Errorf(gridwatch.EConflict, "resident %d has already moved out: they are in no household", id)
		}
		var user *int64
		if v.UserID != 0 {
			user = &v.UserID
		}
		if from != nil {
			if _, err := tx.Exec(ctx, `INSERT INTO resident_moves (resident_id, household_id, kind, at, note, user_id)
				VALUES ($1, $2, 'out', $3, $4, $5)`, id, *from, m.At, m.Note, user); err != nil {
				return err
			}
		}
		if to != nil {
			if _, err := tx.Exec(ctx, `INSERT INTO resident_moves (resident_id, household_id, kind, at, note, user_id)
				VALUES ($1, $2, 'in', $3, $4, $5)`, id, *to, m.At, m.Note, user); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE residents SET household_id = $2, grid_id = $3, updated_at = $4 WHERE id = $1`,
			id, to, grid, now); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, "resident.move", "resident", strconv.FormatInt(id, 10), map[string]any{
			"kind": m.Kind, "before": map[string]any{"household_id": from}, "after": map[string]any{"household_id": to}, "at": m.At,
		}); err != nil {
			return err
		}
		// Read back whatever v's scope: one who moved a resident out of
		// their grids sees the result of what they did.
		var err error
		out, err = s.resident(ctx, tx, id, Viewer{Residents: true})
		return err
	})
	if err != nil {
		if gridwatch.ErrorCode(err) != gridwatch.EInternal {
			return nil, err
		}
		return nil, fmt.Errorf("move resident %d: %w", id, err)
	}
	return out, nil
}

// exportColumns are the columns of an export: an import's, so an export
// imports again as it is.
var exportColumns = []string{"household_code", "building_code", "unit", "room", "name", "gender", "relation",
	"id_number", "phone", "birth_date", "care"}

// ExportResidents writes the residents v may see that match f as CSV
// (the import's columns), personal data in full, if the server allows
// bulk exports of personal data (--pii-export; 403 pii_export_disabled
// otherwise). It streams, and records residents.export with the rows sent
// in the audit trail, also when the export breaks off.
func (s *Service) ExportResidents(ctx context.Context, f Filter, v Viewer, w io.Writer) error {
	if !s.export {
		return gridwatch.Errorf(EExportDisabled, "bulk export of personal data is off on this server (start it with --pii-export to allow it)")
	}
	if !v.Residents {
		return gridwatch.Errorf(gridwatch.EForbidden, "residents are exported only by those who may see them")
	}
	if s.keys == nil {
		return noKeys()
	}
	where, err := s.residentWhere(f, v)
	if err != nil {
		return err
	}
	n, werr := s.writeResidents(ctx, where, w)
	// Recorded whatever happened, in a transaction of its own that a
	// client gone mid-way does not cancel: personal data that left are
	// accounted for.
	summary := map[string]any{"rows": n, "complete": werr == nil}
	if f.GridID != 0 {
		summary["grid"] = f.GridID
	}
	if len(f.Care) > 0 {
		summary["care"] = f.Care
	}
	actx := context.WithoutCancel(ctx)
	if err := pgx.BeginFunc(actx, s.pool, func(tx pgx.Tx) error {
		return audit.Record(actx, tx, "residents.export", "residents", "", summary)
	}); err != nil {
		s.log.Error("residents export not audited", "rows", n, "err", err)
		return fmt.Errorf("export residents: audit: %w", err)
	}
	return werr
}

func (s *Service) writeResidents(ctx context.Context, where database.Where, w io.Writer) (n int, err error) {
	err = database.Stream(ctx, s.pool, func(tx pgx.Tx) error {
		n, err = s.writeResidentsTx(ctx, tx, where, w)
		return err
	})
	return n, err
}

func (s *Service) writeResidentsTx(ctx context.Context, tx pgx.Tx, where database.Where, w io.Writer) (int, error) {
	rows, err := tx.Query(ctx, `SELECT h.code, b.code, h.unit, h.room, r.name, r.gender, r.relation,
		r.id_sealed, r.phone_sealed, r.birth_sealed, r.care
		FROM residents r LEFT JOIN households h ON h.id = r.household_id LEFT JOIN buildings b ON b.id = h.building_id`+
		where.SQL()+` ORDER BY r.id`, where.Args()...)
	if err != nil {
		return 0, fmt.Errorf("export residents: %w", err)
	}
	defer rows.Close()
	cw := csv.NewWriter(w)
	if err := cw.Write(exportColumns); err != nil {
		return 0, err
	}
	n := 0
	rec := make([]string, len(exportColumns))
	for rows.Next() {
		var hcode, bcode, unit, room *string
		var idS, phoneS, birthS []byte
		var care []string
		if err := rows.Scan(&hcode, &bcode, &unit, &room, &rec[4], &rec[5], &rec[6], &idS, &phoneS, &birthS, &care); err != nil {
			return n, fmt.Errorf("export residents: %w", err)
		}
		rec[0], rec[1], rec[2], rec[3] = deref(hcode), deref(bcode), deref(unit), deref(room)
		if rec[7], err = s.open(pii.FieldID, idS); err != nil {
			return n, err
		}
		rec[8], rec[9] = "", ""
		if phoneS != nil {
			if rec[8], err = s.open(pii.FieldPhone, phoneS); err != nil {
				return n, err
			}
		}
		if birthS != nil {
			if rec[9], err = s.open(pii.FieldBirth, birthS); err != nil {
				return n, err
			}
		}
		rec[10] = strings.Join(care, ";")
		if err := cw.Write(rec); err != nil {
			return n, err
		}
		n++
		if n%1000 == 0 {
			if cw.Flush(); cw.Error() != nil {
				return n, cw.Error()
			}
		}
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("export residents: %w", err)
	}
	cw.Flush()
	return n, cw.Error()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
