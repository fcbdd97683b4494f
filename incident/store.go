package incident

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/geo"
	"gridwatch/internal/database"
	"gridwatch/internal/events"
)

// Options configure the service.
type Options struct {
	// Locator assigns points to grids in process; nil assigns in PostGIS.
	Locator *geo.Locator
	Now     func() time.Time
	Logger  *slog.Logger
	// AttachmentDir holds the incidents' photos.
	AttachmentDir string
	// OnCreated, when set, is called with the ids of new incidents once
	// they are committed (not for repeated reports): after each filed
	// report, and after each batch of a bulk upload. The footage index
	// links the cameras that saw the spots. Its failure does not undo the
	// reports.
	OnCreated func(ctx context.Context, ids []int64)
}

// Service keeps incidents in PostgreSQL. All incident SQL lives in this
// package.
type Service struct {
	pool      *pgxpool.Pool
	loc       *geo.Locator
	now       func() time.Time
	log       *slog.Logger
	dir       string
	onCreated func(context.Context, []int64)
}

// NewService returns the service.
func NewService(pool *pgxpool.Pool, opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{pool: pool, loc: opts.Locator, now: opts.Now, log: opts.Logger, dir: opts.AttachmentDir, onCreated: opts.OnCreated}
}

// Viewer is who reads or changes cases: their grid scope and, for an
// integration token, the token whose own reports alone it may see.
type Viewer struct {
	// Grids limits to these grids and their descendants; nil: all.
	Grids []int64
	// OwnToken, when not 0, limits to incidents reported with this token.
	OwnToken int64
}

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

const incidentColumns = `i.id, i.source, i.external_id, i.category, c.name, i.title, i.description,
	ST_X(i.location), ST_Y(i.location), i.address, i.reported_at, i.received_at, i.priority,
	g.id, g.code, g.name, g.level,
	s.id, s.grid_id, s.role, s.name, s.phone, s.organisation, s.user_id, s.created_at,
	i.deadline, i.status, i.version, i.registered_at, i.closed_at, i.created_by, i.updated_at`

const incidentFrom = ` FROM incidents i
	JOIN incident_categories c ON c.code = i.category
	LEFT JOIN grids g ON g.id = i.grid_id
	LEFT JOIN grid_staff s ON s.id = i.assignee_id`

func (s *Service) scanIncident(row pgx.Row) (*Incident, error) {
	var in Incident
	var (
		gid                        *int64
		gcode, gname, glevel       *string
		sid, sgrid, suser          *int64
		srole, sname, sphone, sorg *string
		screated                   *time.Time
	)
	err := row.Scan(&in.ID, &in.Source, &in.ExternalID, &in.Category, &in.CategoryName, &in.Title, &in.Description,
		&in.Location.Coordinates[0], &in.Location.Coordinates[1], &in.Address, &in.ReportedAt, &in.ReceivedAt, &in.Priority,
		&gid, &gcode, &gname, &glevel,
		&sid, &sgrid, &srole, &sname, &sphone, &sorg, &suser, &screated,
		&in.Deadline, &in.Status, &in.Version, &in.RegisteredAt, &in.ClosedAt, &in.CreatedBy, &in.UpdatedAt)
	if err != nil {
		return nil, err
	}
	in.Location.Type = "Point"
	if gid != nil {
		in.Grid = &geo.Ref{ID: *gid, Code: *gcode, Name: *gname, Level: geo.Level(*glevel)}
	}
	in.Unassigned = in.Grid == nil
	if sid != nil {
		in.Assignee = &Staff{ID: *sid, GridID: *sgrid, Role: *srole, Name: *sname, Phone: *sphone, Organisation: *sorg, UserID: suser, CreatedAt: *screated}
	}
	in.Overdue = in.Status.Open() && s.now().After(in.Deadline)
	in.Allowed = Allowed(in.Status)
	if in.Allowed == nil {
		in.Allowed = []Status{}
	}
	return &in, nil
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
// transaction. A retry — the same Idempotency-Key, or the same source and
// external id — returns the incident first filed, with created false, if v
// may see it; otherwise it is a conflict that shows nothing of it.
func (s *Service) Create(ctx context.Context, n NewIncident, by Reporter, v Viewer) (*Incident, bool, error) {
	var id int64
	created := false
	key := by.key()
	if n.IdempotencyKey != "" && n.RequestHash == "" {
		n.RequestHash = n.fieldsHash()
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if existing, err := s.findDuplicate(ctx, tx, n, key); err != nil || existing != 0 {
			id = existing
			return err
		}
		if err := checkCategory(ctx, tx, n.Category); err != nil {
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
				reporter_key, request_hash)
			SELECT $1, NULLIF($2, ''), NULLIF($3, ''), $4, $5, $6, ST_SetSRID(ST_MakePoint($7, $8), 4326),
				$9, $10::timestamptz, $11, $12, $13, $10::timestamptz + c.deadline_hours * interval '1 hour', $14, NULLIF($15, 0), $11,
				$16, NULLIF($17, '')
			FROM incident_categories c WHERE c.code = $4
			ON CONFLICT DO NOTHING RETURNING id`,
			n.Source, n.ExternalID, n.IdempotencyKey, n.Category, n.Title, n.Description, n.Lon, n.Lat,
			n.Address, n.ReportedAt, s.now(), n.Priority, gridID, by.Name, by.TokenID, key, hash).Scan(&id)
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

// Get returns incident id with its history, if v may see it.
func (s *Service) Get(ctx context.Context, id int64, v Viewer) (*Incident, error) {
	in, err := s.get(ctx, s.pool, id, v)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT id, at, actor, action, from_status, to_status, note, details
		FROM incident_events WHERE incident_id = $1 ORDER BY id`, id)
	if err != nil {
		return nil, fmt.Errorf("incident %d history: %w", id, err)
	}
	steps, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
		var e Event
		err := row.Scan(&e.ID, &e.At, &e.Actor, &e.Action, &e.From, &e.To, &e.Note, &e.Details)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("incident %d history: %w", id, err)
	}
	// The report itself is the incident row; it is not written twice (bulk
	// ingest would pay for it on every line).
	in.History = append([]Event{{At: in.ReceivedAt, Actor: in.CreatedBy, Action: "report", To: Reported,
		Details: map[string]any{"source": in.Source, "reported_at": in.ReportedAt}}}, steps...)
	if in.Attachments, err = s.Attachments(ctx, id); err != nil {
		return nil, err
	}
	return in, nil
}

type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (s *Service) get(ctx context.Context, q queryRower, id int64, v Viewer) (*Incident, error) {
	var w database.Where
	w.Add("i.id = ?", id)
	v.where(&w)
	in, err := s.scanIncident(q.QueryRow(ctx, `SELECT `+incidentColumns+incidentFrom+w.SQL(), w.Args()...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gridwatch.Errorf(gridwatch.ENotFound, "incident %d not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("incident %d: %w", id, err)
	}
	return in, nil
}

// where adds v's limits to a query's conditions.
func (v Viewer) where(w *database.Where) {
	if v.Grids != nil {
		w.Add("i.grid_id IN (SELECT * FROM grid_subtree(?))", v.Grids)
	}
	if v.OwnToken != 0 {
		w.Add("i.created_by_token = ?", v.OwnToken)
	}
}

// Filter selects incidents for a list.
type Filter struct {
	// GridID keeps the incidents of this grid and its descendants.
	GridID   int64
	Statuses []Status
	// Category is a subclass code, or a class code for all its subclasses.
	Category   string
	From, To   time.Time // reported_at range [From, To)
	BBox       *geo.BBox
	Overdue    bool
	Unassigned bool
	// IDs keeps these incidents only (the new cases a live event names).
	IDs []int64
	// Before is the cursor: only ids below it (lists run newest first).
	Before int64
	Limit  int
}

// List returns a page of incidents, newest first, and the next cursor (0: none).
func (s *Service) List(ctx context.Context, f Filter, v Viewer) ([]Incident, int64, error) {
	return s.Features(ctx, FeatureFilter{Filter: f}, v)
}

// TransitionRequest moves a case one step.
type TransitionRequest struct {
	To      Status `json:"to"`
	Version int    `json:"version"`
	Note    string `json:"note"`
	// AssigneeID, on dispatch, names the staff member; default: the grid's leader.
	AssigneeID *int64 `json:"assignee_id"`
	// GridID, on dispatch, moves the case to another grid (re-dispatch).
	GridID *int64 `json:"grid_id"`
}

// Transition moves case id to req.To if the workflow allows it from where
// it stands, req.Version is current (else 409: someone else moved it first)
// and may(stage) says the caller may take that step.
func (s *Service) Transition(ctx context.Context, id int64, req TransitionRequest, v Viewer, actor string, may func(Stage) bool) (*Incident, error) {
	if !req.To.Valid() {
		return nil, FieldError("to", "%q is not a status", req.To)
	}
	if req.Version <= 0 {
		return nil, FieldError("version", "is required: the version of the case you are moving (from the last GET)")
	}
	if len(req.Note) > 2000 {
		return nil, FieldError("note", "is longer than 2000 characters")
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var w database.Where
		w.Add("i.id = ?", id)
		v.where(&w)
		var (
			from     Status
			version  int
			gridID   *int64
			assignee *int64
			updated  time.Time
		)
		err := tx.QueryRow(ctx, `SELECT i.status, i.version, i.grid_id, i.assignee_id, i.updated_at FROM incidents i`+
			w.SQL()+` FOR UPDATE`, w.Args()...).Scan(&from, &version, &gridID, &assignee, &updated)
		if errors.Is(err, pgx.ErrNoRows) {
			return gridwatch.Errorf(gridwatch.ENotFound, "incident %d not found", id)
		}
		if err != nil {
			return fmt.Errorf("transition: %w", err)
		}
		if req.Version != version {
			var last string
			_ = tx.QueryRow(ctx, "SELECT actor FROM incident_events WHERE incident_id = $1 ORDER BY id DESC LIMIT 1", id).Scan(&last)
			return gridwatch.Errorf(gridwatch.EConflict, "incident %d changed since version %d: it is now version %d (%s), last moved by %s at %s; reload and try again",
				id, req.Version, version, from, last, updated.Format(time.RFC3339)).
				WithDetails(map[string]any{"current_version": version, "status": from, "last_actor": last, "updated_at": updated})
		}
		stage, ok := StageOf(from, req.To)
		if !ok {
			allowed := Allowed(from)
			return gridwatch.Errorf(gridwatch.EConflict, "a case %s cannot become %s; from %s it may become: %s",
				from, req.To, from, joinStatuses(allowed)).
				WithDetails(map[string]any{"status": from, "allowed": nonNil(allowed)})
		}
		if !may(stage) {
			return gridwatch.Errorf(gridwatch.EForbidden, "your role may not move a case from %s to %s", from, req.To)
		}
		now := s.now()
		details := map[string]any{}
		oldGrid := gridID
		if req.To == Dispatched {
			if req.GridID != nil && (gridID == nil || *req.GridID != *gridID) {
				if err := checkGridFor(ctx, tx, *req.GridID, v); err != nil {
					return err
				}
				details["from_grid_id"], details["to_grid_id"] = gridID, *req.GridID
				gridID = req.GridID
			}
			if gridID == nil {
				return FieldError("grid_id", "the case is in no grid: give the grid to dispatch it to")
			}
			if assignee, err = s.pickAssignee(ctx, tx, *gridID, req.AssigneeID); err != nil {
				return err
			}
			details["assignee_id"] = assignee
		} else if req.AssigneeID != nil || req.GridID != nil {
			return FieldError("assignee_id", "assignee_id and grid_id are given only when dispatching")
		}
		_, err = tx.Exec(ctx, `UPDATE incidents SET status = $2, version = version + 1, updated_at = $3, grid_id = $4, assignee_id = $5,
			registered_at = CASE WHEN $2 = 'registered' THEN $3 ELSE registered_at END,
			closed_at = CASE WHEN $2 = 'closed' THEN $3 ELSE closed_at END
			WHERE id = $1`, id, req.To, now, gridID, assignee)
		if v, _ := database.Violated(err); v == database.ForeignKey {
			return gridwatch.Errorf(gridwatch.EConflict, "the grid or the assignee changed meanwhile; reload and try again")
		}
		if err != nil {
			return fmt.Errorf("transition: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO incident_events (incident_id, at, actor, action, from_status, to_status, note, details)
			VALUES ($1, $2, $3, 'transition', $4, $5, $6, $7)`, id, now, actor, from, req.To, strings.TrimSpace(req.Note), details); err != nil {
			return fmt.Errorf("transition: %w", err)
		}
		if err := events.Publish(ctx, tx, events.IncidentChanged, gridID, map[string]any{"id": id, "from": from, "status": req.To, "version": version + 1}); err != nil {
			return err
		}
		if oldGrid != nil && (gridID == nil || *oldGrid != *gridID) {
			// The grid it left hears that it went.
			if err := events.Publish(ctx, tx, events.IncidentChanged, oldGrid, map[string]any{"id": id, "from": from, "status": req.To, "version": version + 1, "moved": true}); err != nil {
				return err
			}
		}
		return audit.Record(ctx, tx, "incident.transition", "incident", strconv.FormatInt(id, 10),
			map[string]any{"before": map[string]any{"status": from, "version": version}, "after": map[string]any{"status": req.To, "version": version + 1}, "note": req.Note})
	})
	if err != nil {
		return nil, err
	}
	return s.Get(ctx, id, Viewer{})
}

// checkGridFor checks that grid id exists and lies in v's scope.
func checkGridFor(ctx context.Context, tx pgx.Tx, id int64, v Viewer) error {
	var ok bool
	var err error
	if v.Grids == nil {
		err = tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM grids WHERE id = $1)", id).Scan(&ok)
	} else {
		err = tx.QueryRow(ctx, `SELECT $1 IN (SELECT * FROM grid_subtree($2))`, id, v.Grids).Scan(&ok)
	}
	if err != nil {
		return err
	}
	if !ok {
		return FieldError("grid_id", "grid %d does not exist or is not one of yours", id)
	}
	return nil
}

// pickAssignee checks a chosen staff member belongs to the grid, or picks
// the grid's leader.
func (s *Service) pickAssignee(ctx context.Context, tx pgx.Tx, gridID int64, chosen *int64) (*int64, error) {
	var id int64
	if chosen != nil {
		err := tx.QueryRow(ctx, "SELECT id FROM grid_staff WHERE id = $1 AND grid_id = $2 FOR KEY SHARE", *chosen, gridID).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, FieldError("assignee_id", "staff member %d is not on the team of grid %d", *chosen, gridID)
		}
		return &id, err
	}
	err := tx.QueryRow(ctx, "SELECT id FROM grid_staff WHERE grid_id = $1 AND role = 'leader' FOR KEY SHARE", gridID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, FieldError("assignee_id", "grid %d has no leader on its team: name the staff member to dispatch to", gridID)
	}
	return &id, err
}

func joinStatuses(ss []Status) string {
	if len(ss) == 0 {
		return "nothing (the case is finished)"
	}
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = string(s)
	}
	return strings.Join(parts, ", ")
}

func nonNil(ss []Status) []Status {
	if ss == nil {
		return []Status{}
	}
	return ss
}

// Categories lists the event classes and subclasses.
func (s *Service) Categories(ctx context.Context) ([]Category, error) {
	rows, err := s.pool.Query(ctx, "SELECT code, name, parent_code, deadline_hours FROM incident_categories ORDER BY code")
	if err != nil {
		return nil, fmt.Errorf("categories: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Category, error) {
		var c Category
		err := row.Scan(&c.Code, &c.Name, &c.ParentCode, &c.DeadlineHours)
		return c, err
	})
}

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
