package incident

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/geo"
	"gridwatch/internal/database"
	"gridwatch/internal/events"
)

// HistoricCase is a case worked before it is stored here: the report and
// every workflow step it went through, with their times. SeedHistory
// writes it as the report and the transitions would have, so statistics,
// the map and the case views read it as any other case. The demo's year
// of cases is stored this way; so could a migration from an older system.
type HistoricCase struct {
	Source Source
	// ExternalID is required: with the reporter it makes a second
	// seeding of the same case find it, not store it twice.
	ExternalID  string
	Category    string // a subclass code
	Title       string
	Description string
	Address     string
	Lon, Lat    float64 // WGS-84
	// Priority is low, normal, high or urgent; empty is normal.
	Priority   string
	ReportedAt time.Time
	// ReceivedAt is when the centre received it; zero: ReportedAt.
	ReceivedAt time.Time
	// CreatedBy names the reporter in the case's history ("report").
	CreatedBy string
	// ComponentID links a component case (部件类) to its component.
	ComponentID *int64
	// Steps are the transitions taken, in order; none leaves it reported.
	Steps []HistoricStep
	// Photos were attached with the report.
	Photos []HistoricPhoto
}

// HistoricStep is one transition of a HistoricCase.
type HistoricStep struct {
	To    Status
	At    time.Time
	Actor string
	Note  string
	// AssigneeID, on dispatch, is the staff member it went to (a member of
	// the team of the grid the case is in); nil: the grid's leader, as a
	// dispatch without a name does.
	AssigneeID *int64
}

// HistoricPhoto is a photo of a HistoricCase; its type is sniffed from the
// bytes as an upload's is.
type HistoricPhoto struct {
	Filename string
	Data     []byte
}

// historyLock serialises seedings (pg_advisory_xact_lock): two at once
// would both find a case missing and the second would fail on its key.
const historyLock = 0x1910_4953_5400 // "history"

// SeedHistory stores cases with their whole history, in one transaction,
// and returns how many it stored. A case by the same reporter with the same
// source and external id is stored already and is skipped, so seeding
// again adds nothing. Each case is placed in its grid by the rule every
// report follows (in process when the locator is current, else in
// PostGIS), gets its category's deadline from its report time, and its
// steps are written as incident_events rows as Transition writes them
// (a dispatch names its assignee in the details), with registered_at,
// closed_at, the assignee, the version and updated_at following from
// them. A case that breaks the workflow (a step it cannot take from where
// it stands, a time out of order or in the future, an assignee from
// another grid's team) is refused with an error naming the case and the
// field; nothing is stored then.
//
// Rows go in with COPY; no event per case is published, one incident.bulk
// event tells live dashboards to reload, and the audit trail gets one
// entry. Photos are stored as uploads are (the object store or the data
// dir) and listed with the case; the footage index is not asked to link
// cases this old.
func (s *Service) SeedHistory(ctx context.Context, by Reporter, cases []HistoricCase) (int, error) {
	if len(cases) == 0 {
		return 0, nil
	}
	now := s.now()
	hours, err := s.subclassHours(ctx)
	if err != nil {
		return 0, err
	}
	for i := range cases {
		if err := checkHistoric(&cases[i], hours, now); err != nil {
			return 0, historicError(i, &cases[i], err)
		}
	}
	stored := 0
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Batch work: bounded by its context, not by a request's statement timeout.
		if err := database.Long(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(historyLock)); err != nil {
			return fmt.Errorf("history: %w", err)
		}
		fresh, err := s.missingHistory(ctx, tx, by, cases)
		if err != nil || len(fresh) == 0 {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT nextval(pg_get_serial_sequence('incidents', 'id')) FROM generate_series(1, $1)", len(fresh))
		if err != nil {
			return fmt.Errorf("history: %w", err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return fmt.Errorf("history: %w", err)
		}
		grids, err := s.placeHistory(ctx, tx, cases, fresh)
		if err != nil {
			return err
		}
		staff, leaders, err := teams(ctx, tx)
		if err != nil {
			return err
		}
		// Each case's assignees, step by step (a dispatch without a name
		// goes to the leader of its grid, as Transition's does).
		assignees := make([][]*int64, len(fresh))
		withComponent := false
		for k, i := range fresh {
			c := &cases[i]
			withComponent = withComponent || c.ComponentID != nil
			assignees[k] = make([]*int64, len(c.Steps))
			for j, st := range c.Steps {
				if st.To != Dispatched {
					continue
				}
				field := "steps[" + strconv.Itoa(j) + "].assignee_id"
				if grids[k] == nil {
					return historicError(i, c, FieldError(field, "the case is in no grid: it cannot be dispatched"))
				}
				a := st.AssigneeID
				if a == nil {
					l, ok := leaders[*grids[k]]
					if !ok {
						return historicError(i, c, FieldError(field, "grid %d has no leader on its team: name the staff member", *grids[k]))
					}
					a = &l
				} else if g, ok := staff[*a]; !ok || g != *grids[k] {
					return historicError(i, c, FieldError(field, "staff member %d is not on the team of grid %d", *a, *grids[k]))
				}
				assignees[k][j] = a
			}
		}
		if err := s.copyHistory(ctx, tx, by, cases, fresh, ids, grids, assignees, hours, withComponent); err != nil {
			return err
		}
		var created map[int64]*int64
		rows, err = tx.Query(ctx, `INSERT INTO incidents (id, source, external_id, category, title, description, location, address,
				reported_at, received_at, priority, grid_id, assignee_id, deadline, status, version, registered_at, closed_at,
				created_by, updated_at, reporter_key`+componentColumn(withComponent)+`)
			OVERRIDING SYSTEM VALUE
			SELECT id, source, external_id, category, title, description, ST_SetSRID(ST_MakePoint(lon, lat), 4326), address,
				reported_at, received_at, priority, grid_id, assignee_id, deadline, status, version, registered_at, closed_at,
				created_by, updated_at, $1`+componentColumn(withComponent)+`
			FROM history_incidents ORDER BY id
			-- A case filed meanwhile by the ordinary path with the same key
			-- stays as it is.
			ON CONFLICT DO NOTHING RETURNING id, grid_id`, by.key())
		if err != nil {
			return fmt.Errorf("history: %w", err)
		}
		if created, err = scanCreated(rows); err != nil {
			return fmt.Errorf("history: %w", err)
		}
		steps, err := copySteps(ctx, tx, cases, fresh, ids, assignees, created)
		if err != nil {
			return err
		}
		photos, err := s.storeHistoricPhotos(ctx, tx, cases, fresh, ids, created)
		if err != nil {
			return err
		}
		stored = len(created)
		if err := events.Publish(ctx, tx, events.IncidentsBulk, nil, bulkEventData(created)); err != nil {
			return err
		}
		return audit.Record(ctx, tx, "incident.history", "incident", "",
			map[string]any{"created": stored, "skipped": len(cases) - stored, "steps": steps, "photos": photos})
	})
	if err != nil {
		return 0, err
	}
	return stored, nil
}

// historicError names the case (its index and external id) in err.
func historicError(i int, c *HistoricCase, err error) error {
	details := gridwatch.ErrorDetails(err)
	if details == nil {
		details = map[string]any{}
	}
	details["case"], details["external_id"] = i, c.ExternalID
	return gridwatch.Errorf(gridwatch.ErrorCode(err), "case %d (%s): %s", i, c.ExternalID, gridwatch.ErrorMessage(err)).WithDetails(details)
}

// checkHistoric checks one case as a report and its steps as the
// workflow would take them, and fills the defaults.
func checkHistoric(c *HistoricCase, hours map[string]int, now time.Time) error {
	switch {
	case !slices.Contains(Sources(), c.Source):
		return FieldError("source", "%q is not one of %s", c.Source, joinSources())
	case c.ExternalID == "" || utf8.RuneCountInString(c.ExternalID) > 100:
		return FieldError("external_id", "is required (up to 100 characters): it keeps a second seeding from storing the case again")
	case strings.TrimSpace(c.Title) == "" || utf8.RuneCountInString(c.Title) > 200:
		return FieldError("title", "is required (up to 200 characters)")
	case utf8.RuneCountInString(c.Description) > 5000:
		return FieldError("description", "is longer than 5000 characters")
	case utf8.RuneCountInString(c.Address) > 500:
		return FieldError("address", "is longer than 500 characters")
	case c.ReportedAt.IsZero() || c.ReportedAt.After(now):
		return FieldError("reported_at", "%s is not a time in the past", c.ReportedAt.Format(time.RFC3339))
	case !c.ReceivedAt.IsZero() && (c.ReceivedAt.Before(c.ReportedAt) || c.ReceivedAt.After(now)):
		return FieldError("received_at", "%s is not between the report (%s) and now", c.ReceivedAt.Format(time.RFC3339), c.ReportedAt.Format(time.RFC3339))
	}
	if _, ok := hours[c.Category]; !ok {
		return FieldError("category", "%q is not a known subclass code (such as 0101)", c.Category)
	}
	if c.Priority == "" {
		c.Priority = "normal"
	}
	if !slices.Contains(Priorities(), c.Priority) {
		return FieldError("priority", "%q is not one of %s", c.Priority, strings.Join(Priorities(), ", "))
	}
	if err := geo.CheckLonLat(c.Lon, c.Lat); err != nil {
		return FieldError("location", "%s", strings.TrimPrefix(gridwatch.ErrorMessage(err), "point "))
	}
	if c.ReceivedAt.IsZero() {
		c.ReceivedAt = c.ReportedAt
	}
	if c.CreatedBy == "" {
		c.CreatedBy = "history"
	}
	from, last := Reported, c.ReceivedAt
	for j, st := range c.Steps {
		field := "steps[" + strconv.Itoa(j) + "]"
		if _, ok := StageOf(from, st.To); !ok {
			return FieldError(field+".to", "a case %s cannot become %s; from %s it may become: %s", from, st.To, from, joinStatuses(Allowed(from)))
		}
		if st.At.Before(last) || st.At.After(now) {
			return FieldError(field+".at", "%s is before the step it follows (%s) or in the future", st.At.Format(time.RFC3339), last.Format(time.RFC3339))
		}
		if st.AssigneeID != nil && st.To != Dispatched {
			return FieldError(field+".assignee_id", "is given only when dispatching")
		}
		if st.Actor == "" || len(st.Note) > 2000 {
			return FieldError(field+".actor", "the actor is required and the note at most 2000 characters")
		}
		from, last = st.To, st.At
	}
	for j, p := range c.Photos {
		if len(p.Data) == 0 || len(p.Data) > MaxAttachmentBytes {
			return FieldError("photos["+strconv.Itoa(j)+"]", "is empty or larger than %d MiB", MaxAttachmentBytes>>20)
		}
	}
	return nil
}

// HistoryStored returns how many of cases by is known to have stored
// already (by source and external id): a caller with costly cases to make
// in full (photos) finds out first whether there is anything to do.
func (s *Service) HistoryStored(ctx context.Context, by Reporter, cases []HistoricCase) (int, error) {
	fresh, err := s.missingHistory(ctx, s.pool, by, cases)
	return len(cases) - len(fresh), err
}

// missingHistory returns the indexes of the cases not stored yet (a case
// listed twice counts once).
func (s *Service) missingHistory(ctx context.Context, tx database.Querier, by Reporter, cases []HistoricCase) ([]int, error) {
	exts := make([]string, len(cases))
	for i, c := range cases {
		exts[i] = c.ExternalID
	}
	rows, err := tx.Query(ctx, `SELECT source, external_id FROM incidents WHERE reporter_key = $1 AND external_id = ANY($2)`, by.key(), exts)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	have := map[[2]string]bool{}
	for rows.Next() {
		var src, ext string
		if err := rows.Scan(&src, &ext); err != nil {
			rows.Close()
			return nil, err
		}
		have[[2]string{src, ext}] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	var fresh []int
	for i, c := range cases {
		key := [2]string{string(c.Source), c.ExternalID}
		if !have[key] {
			fresh = append(fresh, i)
			have[key] = true // a case listed twice is stored once
		}
	}
	return fresh, nil
}

// placeHistory returns the grid of each fresh case: from the locator when
// it is current, else from PostGIS in one query, by the same rule.
func (s *Service) placeHistory(ctx context.Context, tx pgx.Tx, cases []HistoricCase, fresh []int) ([]*int64, error) {
	grids := make([]*int64, len(fresh))
	if s.loc != nil {
		var rev int64
		if err := tx.QueryRow(ctx, "SELECT revision FROM grid_revision").Scan(&rev); err != nil {
			return nil, fmt.Errorf("history: %w", err)
		}
		if rev == s.loc.Revision() {
			for k, i := range fresh {
				if ref, ok := s.loc.Assign(cases[i].Lon, cases[i].Lat); ok {
					id := ref.ID
					grids[k] = &id
				}
			}
			return grids, nil
		}
	}
	lons, lats := make([]float64, len(fresh)), make([]float64, len(fresh))
	for k, i := range fresh {
		lons[k], lats[k] = cases[i].Lon, cases[i].Lat
	}
	rows, err := tx.Query(ctx, `SELECT p.ord, (SELECT g.id FROM grids g WHERE ST_Covers(g.geom, ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326))
			ORDER BY g.level_rank DESC, g.code LIMIT 1)
		FROM unnest($1::float8[], $2::float8[]) WITH ORDINALITY AS p (lon, lat, ord)`, lons, lats)
	if err != nil {
		return nil, fmt.Errorf("history: place: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ord int
		var grid *int64
		if err := rows.Scan(&ord, &grid); err != nil {
			return nil, err
		}
		grids[ord-1] = grid
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history: place: %w", err)
	}
	return grids, nil
}

// teams returns every staff member's grid, and each grid's leader.
func teams(ctx context.Context, tx pgx.Tx) (map[int64]int64, map[int64]int64, error) {
	rows, err := tx.Query(ctx, "SELECT id, grid_id, role FROM grid_staff")
	if err != nil {
		return nil, nil, fmt.Errorf("history: staff: %w", err)
	}
	defer rows.Close()
	staff, leaders := map[int64]int64{}, map[int64]int64{}
	for rows.Next() {
		var id, grid int64
		var role string
		if err := rows.Scan(&id, &grid, &role); err != nil {
			return nil, nil, err
		}
		staff[id] = grid
		if role == "leader" {
			leaders[grid] = id
		}
	}
	return staff, leaders, rows.Err()
}

func componentColumn(with bool) string {
	if with {
		return ", component_id"
	}
	return ""
}

// copyHistory copies the fresh cases, as they stand after their last step,
// into the staging table history_incidents.
func (s *Service) copyHistory(ctx context.Context, tx pgx.Tx, by Reporter, cases []HistoricCase, fresh []int, ids []int64,
	grids []*int64, assignees [][]*int64, hours map[string]int, withComponent bool) error {
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE history_incidents (
			id bigint, source text, external_id text, category text, title text, description text, lon float8, lat float8,
			address text, reported_at timestamptz, received_at timestamptz, priority text, grid_id bigint, assignee_id bigint,
			deadline timestamptz, status text, version int, registered_at timestamptz, closed_at timestamptz,
			created_by text, updated_at timestamptz, component_id bigint
		) ON COMMIT DROP`); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	cols := []string{"id", "source", "external_id", "category", "title", "description", "lon", "lat", "address",
		"reported_at", "received_at", "priority", "grid_id", "assignee_id", "deadline", "status", "version",
		"registered_at", "closed_at", "created_by", "updated_at", "component_id"}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"history_incidents"}, cols, pgx.CopyFromSlice(len(fresh), func(k int) ([]any, error) {
		c := &cases[fresh[k]]
		status, updated := Reported, c.ReceivedAt
		var assignee *int64
		var registered, closed *time.Time
		for j, st := range c.Steps {
			status, updated = st.To, st.At
			switch st.To {
			case Dispatched:
				assignee = assignees[k][j]
			case Registered:
				registered = &c.Steps[j].At
			case Closed:
				closed = &c.Steps[j].At
			}
		}
		due := c.ReportedAt.Add(time.Duration(hours[c.Category]) * time.Hour)
		return []any{ids[k], string(c.Source), c.ExternalID, c.Category, c.Title, c.Description, c.Lon, c.Lat, c.Address,
			c.ReportedAt, c.ReceivedAt, c.Priority, grids[k], assignee, due, string(status), 1 + len(c.Steps),
			registered, closed, c.CreatedBy, updated, c.ComponentID}, nil
	}))
	if err != nil {
		return fmt.Errorf("history: copy: %w", err)
	}
	return nil
}

// copySteps copies the steps of the stored cases into incident_events, in
// order (the statistics read a case's status at a past time from its last
// step by id), as Transition writes them.
func copySteps(ctx context.Context, tx pgx.Tx, cases []HistoricCase, fresh []int, ids []int64, assignees [][]*int64, created map[int64]*int64) (int, error) {
	type row struct{ k, j int }
	var steps []row
	for k, i := range fresh {
		if _, ok := created[ids[k]]; !ok {
			continue
		}
		for j := range cases[i].Steps {
			steps = append(steps, row{k, j})
		}
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"incident_events"},
		[]string{"incident_id", "at", "actor", "action", "from_status", "to_status", "note", "details"},
		pgx.CopyFromSlice(len(steps), func(n int) ([]any, error) {
			r := steps[n]
			c := &cases[fresh[r.k]]
			st := c.Steps[r.j]
			from := Reported
			if r.j > 0 {
				from = c.Steps[r.j-1].To
			}
			details := map[string]any{}
			if st.To == Dispatched {
				details["assignee_id"] = assignees[r.k][r.j]
			}
			return []any{ids[r.k], st.At, st.Actor, "transition", string(from), string(st.To), strings.TrimSpace(st.Note), details}, nil
		}))
	if err != nil {
		return 0, fmt.Errorf("history: copy steps: %w", err)
	}
	return len(steps), nil
}

// storeHistoricPhotos stores the photos of the stored cases as uploads are
// stored (files first, then their rows) and lists them with their cases.
func (s *Service) storeHistoricPhotos(ctx context.Context, tx pgx.Tx, cases []HistoricCase, fresh []int, ids []int64, created map[int64]*int64) (int, error) {
	type stored struct {
		a   *Attachment
		rel string
		at  time.Time
	}
	var out []stored
	for k, i := range fresh {
		c := &cases[i]
		if _, ok := created[ids[k]]; !ok || len(c.Photos) == 0 {
			continue
		}
		if s.dir == "" && s.blobs == nil {
			s.log.Warn("history: no attachment store configured; the photos of the seeded cases are left out")
			return 0, nil
		}
		for j, p := range c.Photos {
			a, rel, err := s.storeFile(ctx, ids[k], p.Filename, p.Data, c.CreatedBy)
			if err != nil {
				return 0, historicError(i, c, FieldError("photos["+strconv.Itoa(j)+"]", "%s", gridwatch.ErrorMessage(err)))
			}
			out = append(out, stored{a, rel, c.ReceivedAt})
		}
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"incident_attachments"},
		[]string{"incident_id", "kind", "filename", "content_type", "bytes", "sha256", "path", "created_by", "created_at"},
		pgx.CopyFromSlice(len(out), func(n int) ([]any, error) {
			a := out[n].a
			return []any{a.IncidentID, a.Kind, a.Filename, a.ContentType, a.Bytes, a.SHA256, out[n].rel, a.CreatedBy, out[n].at}, nil
		}))
	if err != nil {
		return 0, fmt.Errorf("history: copy photos: %w", err)
	}
	return len(out), nil
}
