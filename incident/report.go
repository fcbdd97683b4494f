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
	"gridwatch/geo"
	"gridwatch/internal/events"
)

// Reporter is who files a report.
type Reporter struct {
	Name    string
	TokenID int64 // the integration token, 0 for a user
	UserID  int64 // the user, 0 for a token
	// Confine, when not nil, is where the reporter may report: a report
	// located outside these grids (and their descendants), or in no grid,
	// is refused with EOutsideScope (a grid leader reports in their own
	// grids; another community's queue is not theirs to fill).
	Confine []geo.Ref
}

// key names the caller whose duplicate-detection keys (Idempotency-Key,
// source and external_id) a report's are: one caller's keys never match
// another's reports.
func (r Reporter) key() string {
	switch {
	case r.TokenID != 0:
		return "token:" + strconv.FormatInt(r.TokenID, 10)
	case r.UserID != 0:
		return "user:" + strconv.FormatInt(r.UserID, 10)
	}
	return "name:" + r.Name
}

// confineIDs returns the ids of r.Confine.
func (r Reporter) confineIDs() []int64 {
	ids := make([]int64, len(r.Confine))
	for i, g := range r.Confine {
		ids[i] = g.ID
	}
	return ids
}

// confineCodes returns the codes of r.Confine, for messages.
func (r Reporter) confineCodes() []string {
	codes := make([]string, len(r.Confine))
	for i, g := range r.Confine {
		codes[i] = g.Code
	}
	return codes
}

// outsideError is the refusal of a report by a confined reporter at lon,
// lat, which lies in grid code ("" for none).
func outsideError(by Reporter, lon, lat float64, code string) error {
	where := "in no grid"
	if code != "" {
		where = "in grid " + code
	}
	var grid any
	if code != "" {
		grid = code
	}
	return gridwatch.Errorf(gridwatch.EOutsideScope,
		"the location %.6f,%.6f lies %s, outside your grids (%s): report it to the command centre, which routes it to its grid",
		lon, lat, where, strings.Join(by.confineCodes(), ", ")).
		WithDetails(map[string]any{"field": "location", "location": []float64{lon, lat}, "grid": grid, "your_grids": by.confineCodes()})
}

// checkConfined refuses a report by a confined reporter whose grid (nil:
// none) lies outside the grids it may report in.
func checkConfined(ctx context.Context, tx pgx.Tx, by Reporter, gridID *int64, lon, lat float64) error {
	if by.Confine == nil {
		return nil
	}
	if gridID != nil {
		var ok bool
		if err := tx.QueryRow(ctx, `SELECT $1 IN (SELECT * FROM grid_subtree($2))`, *gridID, by.confineIDs()).Scan(&ok); err != nil {
			return fmt.Errorf("report scope: %w", err)
		}
		if ok {
			return nil
		}
	}
	code := ""
	if gridID != nil {
		if err := tx.QueryRow(ctx, "SELECT code FROM grids WHERE id = $1", *gridID).Scan(&code); err != nil {
			return fmt.Errorf("report scope: %w", err)
		}
	}
	return outsideError(by, lon, lat, code)
}

// assign returns the id of the most specific grid covering the point (nil
// when none), inside tx. The in-process index answers when it is as new as
// the grids this transaction sees; otherwise PostGIS does.
func (s *Service) assign(ctx context.Context, tx pgx.Tx, lon, lat float64) (*int64, error) {
	if s.loc != nil {
		var rev int64
		if err := tx.QueryRow(ctx, "SELECT revision FROM grid_revision").Scan(&rev); err != nil {
			return nil, err
		}
		if rev == s.loc.Revision() {
			if ref, ok := s.loc.Assign(lon, lat); ok {
				return &ref.ID, nil
			}
			return nil, nil
		}
	}
	var id *int64
	err := tx.QueryRow(ctx, `SELECT id FROM grids WHERE ST_Covers(geom, ST_SetSRID(ST_MakePoint($1, $2), 4326))
		ORDER BY level_rank DESC, code LIMIT 1`, lon, lat).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return id, err
}

// Create files a report: assigns its grid and deadline in the same
// transaction. The deadline is reported_at plus the category's hours, fixed
// here and never computed again; a report without reported_at is dated by
// the service's clock, and one dated more than 5 minutes ahead of it is
// refused, naming reported_at. A retry — the same Idempotency-Key, or the
// same source and external id — returns the incident first filed, with
// created false, if v may see it; otherwise it is a conflict that shows
// nothing of it.
func (s *Service) Create(ctx context.Context, n NewIncident, by Reporter, v Viewer) (*Incident, bool, error) {
	var id int64
	created := false
	key := by.key()
	if n.IdempotencyKey != "" && n.RequestHash == "" {
		n.RequestHash = n.fieldsHash()
	}
	// The service's clock dates the report and bounds its reported_at: a
	// caller may have parsed it by another clock, or built it from a
	// device's (a camera's alarm time).
	now := s.now()
	if n.ReportedAt.IsZero() {
		n.ReportedAt = now
	} else if err := CheckReportedAt(n.ReportedAt, now); err != nil {
		return nil, false, err
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if existing, err := s.findDuplicate(ctx, tx, n, key); err != nil || existing != 0 {
			id = existing
			return err
		}
		if err := checkCategory(ctx, tx, n.Category); err != nil {
			return err
		}
		if err := checkComponent(ctx, tx, n.ComponentID, v.Grids); err != nil {
			return err
		}
		gridID, err := s.assign(ctx, tx, n.Lon, n.Lat)
		if err != nil {
			return fmt.Errorf("assign grid: %w", err)
		}
		if err := checkConfined(ctx, tx, by, gridID, n.Lon, n.Lat); err != nil {
			return err
		}
		hash := ""
		if n.IdempotencyKey != "" {
			hash = n.RequestHash
		}
		err = tx.QueryRow(ctx, `INSERT INTO incidents (source, external_id, idempotency_key, category, title, description, location,
				address, reported_at, received_at, priority, grid_id, deadline, created_by, created_by_token, updated_at,
				reporter_key, request_hash, via, accuracy_m, component_id)
			SELECT $1, NULLIF($2, ''), NULLIF($3, ''), $4, $5, $6, ST_SetSRID(ST_MakePoint($7, $8), 4326),
				$9, $10::timestamptz, $11, $12, $13, $10::timestamptz + c.deadline_hours * interval '1 hour', $14, NULLIF($15, 0), $11,
				$16, NULLIF($17, ''), $18, $19, $20
			FROM incident_categories c WHERE c.code = $4
			ON CONFLICT DO NOTHING RETURNING id`,
			n.Source, n.ExternalID, n.IdempotencyKey, n.Category, n.Title, n.Description, n.Lon, n.Lat,
			n.Address, n.ReportedAt, now, n.Priority, gridID, by.Name, by.TokenID, key, hash, n.Via, n.AccuracyM, n.ComponentID).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			// A concurrent retry won the race: answer with its incident.
			id, err = s.findDuplicate(ctx, tx, n, key)
			return err
		}
		if err != nil {
			return fmt.Errorf("create incident: %w", err)
		}
		created = true
		if err := events.Publish(ctx, tx, events.IncidentCreated, gridID, map[string]any{"id": id, "status": Reported, "category": n.Category}); err != nil {
			return err
		}
		return audit.Record(ctx, tx, "incident.create", "incident", strconv.FormatInt(id, 10),
			map[string]any{"after": map[string]any{"source": n.Source, "category": n.Category, "grid_id": gridID}})
	})
	if err != nil {
		return nil, false, err
	}
	view := v
	if created {
		view = Viewer{}
	}
	in, err := s.get(ctx, s.pool, id, view)
	if !created && gridwatch.ErrorCode(err) == gridwatch.ENotFound {
		return nil, false, gridwatch.Errorf(gridwatch.EConflict, "a report with this Idempotency-Key or source and external_id already exists")
	}
	if created && err == nil && s.onCreated != nil {
		s.onCreated(ctx, []int64{in.ID})
	}
	return in, created, err
}

// findDuplicate returns the id of an incident this report repeats, or 0:
// one the same caller (key) filed with the same Idempotency-Key, or from the
// same source with the same external id. The same Idempotency-Key with
// another request is refused (EIdempotencyMismatch), as the IETF
// idempotency-key draft says: answering with the first case would tell the
// caller a different report was filed.
func (s *Service) findDuplicate(ctx context.Context, q pgx.Tx, n NewIncident, key string) (int64, error) {
	var id int64
	if n.IdempotencyKey != "" {
		var hash *string
		err := q.QueryRow(ctx, `SELECT id, request_hash FROM incidents WHERE reporter_key = $1 AND idempotency_key = $2`,
			key, n.IdempotencyKey).Scan(&id, &hash)
		switch {
		case err == nil && hash != nil && *hash != n.RequestHash:
			return 0, gridwatch.Errorf(gridwatch.EIdempotencyMismatch,
				"the Idempotency-Key %q was first sent with another request: send the same request to retry it, or a new key for a new report", n.IdempotencyKey).
				WithDetails(map[string]any{"header": "Idempotency-Key", "key": n.IdempotencyKey})
		case err == nil:
			return id, nil
		case !errors.Is(err, pgx.ErrNoRows):
			return 0, fmt.Errorf("find retry: %w", err)
		}
	}
	if n.ExternalID == "" {
		return 0, nil
	}
	err := q.QueryRow(ctx, `SELECT id FROM incidents WHERE source = $1 AND reporter_key = $2 AND external_id = $3`,
		n.Source, key, n.ExternalID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("find retry: %w", err)
	}
	return id, nil
}

func checkCategory(ctx context.Context, tx pgx.Tx, code string) error {
	var ok bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM incident_categories WHERE code = $1 AND parent_code IS NOT NULL)", code).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return FieldError("category", "%q is not a known subclass code (such as 0101; GET /api/v1/categories lists them)", code)
	}
	return nil
}

// checkComponent refuses a component case naming a component that does
// not exist, or that a caller confined to grids (nil: all) may not see —
// told alike, so a report reveals nothing of another grid's components.
// nil names none.
func checkComponent(ctx context.Context, tx pgx.Tx, id *int64, grids []int64) error {
	if id == nil {
		return nil
	}
	var ok bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM components WHERE id = $1
			AND ($2::bigint[] IS NULL OR grid_id IN (SELECT * FROM grid_subtree($2))))`, *id, grids).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return FieldError("component_id", "component %d does not exist (GET /api/v1/components lists them)", *id)
	}
	return nil
}
