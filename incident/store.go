package incident

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch"
	"gridwatch/geo"
	"gridwatch/internal/database"
)

// Options configure the service.
type Options struct {
	// Locator assigns points to grids in process; nil assigns in PostGIS.
	Locator *geo.Locator
	Now     func() time.Time
	Logger  *slog.Logger
	// AttachmentDir holds the incidents' photos; Blobs, when set, holds
	// them instead (the object store every node shares).
	AttachmentDir string
	Blobs         Blobs
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
	blobs     Blobs
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
	return &Service{pool: pool, loc: opts.Locator, now: opts.Now, log: opts.Logger, dir: opts.AttachmentDir, blobs: opts.Blobs, onCreated: opts.OnCreated}
}

// Now is the service's clock: the one that dates reports, steps and
// deadlines and says what is overdue. Whoever checks a report's times
// before Create (ParseNew's now) should read this clock, not another.
func (s *Service) Now() time.Time { return s.now() }

// Viewer is who reads or changes cases: their grid scope and, for an
// integration token, the token whose own reports alone it may see.
type Viewer struct {
	// Grids limits to these grids and their descendants; nil: all.
	Grids []int64
	// OwnToken, when not 0, limits to incidents reported with this token.
	OwnToken int64
}

const incidentColumns = `i.id, i.source, i.external_id, i.category, c.name, i.title, i.description,
	ST_X(i.location), ST_Y(i.location), i.address, i.reported_at, i.received_at, i.priority,
	g.id, g.code, g.name, g.level,
	s.id, s.grid_id, s.role, s.name, s.phone, s.organisation, s.user_id, s.created_at,
	i.deadline, i.status, i.version, i.registered_at, i.closed_at, i.created_by, i.updated_at, i.via, i.accuracy_m,
	i.component_id`

const incidentFrom = ` FROM incidents i
	JOIN incident_categories c ON c.code = i.category
	LEFT JOIN grids g ON g.id = i.grid_id
	LEFT JOIN grid_staff s ON s.id = i.assignee_id`

// scanIncident reads one case; now is the clock's reading its overdue flag
// is judged by (a list's, the same its filter used).
func (s *Service) scanIncident(row pgx.Row, now time.Time) (*Incident, error) {
	var in Incident
	var (
		gid                        *int64
		gcode, gname, glevel       *string
		sid, sgrid, suser          *int64
		srole, sname, sphone, sorg *string
		screated                   *time.Time
		accuracy                   *float32
	)
	err := row.Scan(&in.ID, &in.Source, &in.ExternalID, &in.Category, &in.CategoryName, &in.Title, &in.Description,
		&in.Location.Coordinates[0], &in.Location.Coordinates[1], &in.Address, &in.ReportedAt, &in.ReceivedAt, &in.Priority,
		&gid, &gcode, &gname, &glevel,
		&sid, &sgrid, &srole, &sname, &sphone, &sorg, &suser, &screated,
		&in.Deadline, &in.Status, &in.Version, &in.RegisteredAt, &in.ClosedAt, &in.CreatedBy, &in.UpdatedAt, &in.Via, &accuracy,
		&in.ComponentID)
	if err != nil {
		return nil, err
	}
	in.Location.Type = "Point"
	if accuracy != nil {
		a := math.Round(float64(*accuracy)*10) / 10
		in.AccuracyM = &a
	}
	if gid != nil {
		in.Grid = &geo.Ref{ID: *gid, Code: *gcode, Name: *gname, Level: geo.Level(*glevel)}
	}
	in.Unassigned = in.Grid == nil
	if sid != nil {
		in.Assignee = &Staff{ID: *sid, GridID: *sgrid, Role: *srole, Name: *sname, Phone: *sphone, Organisation: *sorg, UserID: suser, CreatedAt: *screated}
	}
	in.Overdue = in.Status.Open() && now.After(in.Deadline)
	in.Allowed = Allowed(in.Status)
	if in.Allowed == nil {
		in.Allowed = []Status{}
	}
	return &in, nil
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
	report := map[string]any{"source": in.Source, "reported_at": in.ReportedAt}
	if in.Via != "" {
		// Reported from the field app: where the phone put it, how sure it was.
		report["via"], report["location"] = in.Via, in.Location.Coordinates
		if in.AccuracyM != nil {
			report["accuracy_m"] = *in.AccuracyM
		}
	}
	in.History = append([]Event{{At: in.ReceivedAt, Actor: in.CreatedBy, Action: "report", To: Reported, Details: report}}, steps...)
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
	in, err := s.scanIncident(q.QueryRow(ctx, `SELECT `+incidentColumns+incidentFrom+w.SQL(), w.Args()...), s.now())
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
	// AssigneeUser keeps the cases assigned to the staff member who is this
	// user (a grid member's "my tasks").
	AssigneeUser int64
	// IDs keeps these incidents only (the new cases a live event names).
	IDs []int64
	// ComponentID keeps the cases about this city component.
	ComponentID int64
	// Before is the cursor: only ids below it (lists run newest first).
	Before int64
	Limit  int
}

// List returns a page of incidents, newest first, and the next cursor (0: none).
func (s *Service) List(ctx context.Context, f Filter, v Viewer) ([]Incident, int64, error) {
	return s.Features(ctx, FeatureFilter{Filter: f}, v)
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
