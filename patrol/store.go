package patrol

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/geo"
	"gridwatch/internal/database"
	"gridwatch/internal/events"
)

// keyPattern is what an Idempotency-Key may be.
var keyPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{8,64}$`)

// CheckKey checks an Idempotency-Key ("" is none).
func CheckKey(key string) error {
	if key != "" && !keyPattern.MatchString(key) {
		return gridwatch.Errorf(gridwatch.EInvalid, "the Idempotency-Key header must be 8 to 64 characters A-Z, a-z, 0-9, _ or -").
			WithDetails(map[string]any{"header": "Idempotency-Key"})
	}
	return nil
}

const patrolColumns = `p.id, u.id, u.username, u.display_name, p.started_at, p.ended_at, p.distance_m, p.points,
	ST_X(p.last_point), ST_Y(p.last_point), p.last_at, p.last_accuracy_m, p.last_grid_id, p.created_at, p.updated_at,
	(SELECT coalesce(json_agg(json_build_object('id', g.id, 'code', g.code, 'name', g.name, 'level', g.level) ORDER BY g.code), '[]')
		FROM patrol_grids pg JOIN grids g ON g.id = pg.grid_id WHERE pg.patrol_id = p.id)`

const patrolFrom = ` FROM patrols p JOIN users u ON u.id = p.user_id`

func (s *Service) scanPatrol(row pgx.Row) (Patrol, error) {
	var (
		p        Patrol
		lon, lat *float64
		lastAt   *time.Time
		acc      *float64
		grid     *int64
	)
	err := row.Scan(&p.ID, &p.User.ID, &p.User.Username, &p.User.DisplayName, &p.StartedAt, &p.EndedAt, &p.DistanceM, &p.Points,
		&lon, &lat, &lastAt, &acc, &grid, &p.CreatedAt, &p.UpdatedAt, &p.Grids)
	if err != nil {
		return p, err
	}
	p.Active = p.EndedAt == nil
	p.DistanceM = roundTo(p.DistanceM, 1)
	if p.Grids == nil {
		p.Grids = []geo.Ref{}
	}
	if lon != nil && lat != nil && lastAt != nil {
		p.Last = &Position{Lon: *lon, Lat: *lat, At: *lastAt, AccuracyM: acc, GridID: grid}
		fresh := max(int64(s.now().Sub(*lastAt)/time.Second), 0)
		p.FreshSeconds = &fresh
	}
	return p, nil
}

// Get returns patrol id, if v may see it.
func (s *Service) Get(ctx context.Context, id int64, v Viewer) (*Patrol, error) {
	return s.get(ctx, s.pool, id, v)
}

func (s *Service) get(ctx context.Context, q database.Querier, id int64, v Viewer) (*Patrol, error) {
	var w database.Where
	w.Add("p.id = ?", id)
	v.where(&w)
	p, err := s.scanPatrol(q.QueryRow(ctx, `SELECT `+patrolColumns+patrolFrom+w.SQL(), w.Args()...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("patrol %d: %w", id, err)
	}
	return &p, nil
}

// Filter selects patrols for a list.
type Filter struct {
	// Active keeps the open patrols.
	Active bool
	// UserID keeps one member's patrols.
	UserID int64
	// From and To keep the patrols whose time overlaps [From, To) (a day);
	// a zero time leaves that end open.
	From, To time.Time
	// GridID keeps the patrols that touched this grid or its descendants.
	GridID int64
	// Before is the cursor (lists run newest first); Limit the page size.
	Before int64
	Limit  int
}

// List returns a page of the patrols v may see, newest first, and the
// next cursor (0: none).
func (s *Service) List(ctx context.Context, f Filter, v Viewer) ([]Patrol, int64, error) {
	var w database.Where
	if f.Active {
		w.Add("p.ended_at IS NULL")
	}
	if f.UserID != 0 {
		w.Add("p.user_id = ?", f.UserID)
	}
	if !f.From.IsZero() || !f.To.IsZero() {
		var from, to *time.Time
		if !f.From.IsZero() {
			from = &f.From
		}
		if !f.To.IsZero() {
			to = &f.To
		}
		// The expression of the patrols_span index.
		w.Add("tstzrange(p.started_at, p.ended_at, '[]') && tstzrange(?::timestamptz, ?::timestamptz, '[)')", from, to)
	}
	if f.GridID != 0 {
		w.Add(`EXISTS (SELECT 1 FROM patrol_grids pg WHERE pg.patrol_id = p.id
			AND pg.grid_id IN (SELECT * FROM grid_subtree(?)))`, []int64{f.GridID})
	}
	v.where(&w)
	list, next, err := database.QueryPage(ctx, s.pool, `SELECT `+patrolColumns+patrolFrom, w,
		database.Keyset{Key: "p.id", Desc: true, Cursor: f.Before, Limit: f.Limit},
		func(row pgx.CollectableRow) (Patrol, error) { return s.scanPatrol(row) },
		func(p Patrol) int64 { return p.ID })
	if err != nil {
		return nil, 0, fmt.Errorf("list patrols: %w", err)
	}
	return list, next, nil
}

// visible reports whether v may see patrol id.
func visible(ctx context.Context, q database.Querier, id int64, v Viewer) (bool, error) {
	var w database.Where
	w.Add("p.id = ?", id)
	v.where(&w)
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM patrols p`+w.SQL()+`)`, w.Args()...).Scan(&ok)
	return ok, err
}

// checkOwner refuses a change to patrol id (of member owner) by anyone but
// its member: forbidden to those who may see it, not found to the others.
func checkOwner(ctx context.Context, q database.Querier, id, owner int64, v Viewer) error {
	if v.UserID != 0 && v.UserID == owner {
		return nil
	}
	ok, err := visible(ctx, q, id, v)
	if err != nil {
		return fmt.Errorf("patrol %d: %w", id, err)
	}
	if !ok {
		return notFound(id)
	}
	return gridwatch.Errorf(gridwatch.EForbidden, "patrol %d is another member's: only its member records it", id)
}

// checkTime refuses a patrol's start or end time the server's clock says
// is in the future.
func (s *Service) checkTime(field string, t, now time.Time) error {
	if t.After(now.Add(FutureSlack)) {
		return FieldError(field, nil, "%s is in the future (the server's time is %s): check the phone's clock",
			t.Format(time.RFC3339), now.Format(time.RFC3339))
	}
	return nil
}

// Start opens a patrol for member v.UserID, at startedAt (nil: now). A
// retry with the same Idempotency-Key returns the patrol it opened, with
// created false; the same key with another start time is refused. A member
// has one open patrol: another start is a conflict naming it
// (details.open_patrol_id), as is a start before the end of their last one.
func (s *Service) Start(ctx context.Context, v Viewer, key string, startedAt *time.Time) (*Patrol, bool, error) {
	if v.UserID == 0 {
		return nil, false, gridwatch.Errorf(gridwatch.EForbidden, "patrols are recorded by a signed-in member, not by an API token")
	}
	if err := CheckKey(key); err != nil {
		return nil, false, err
	}
	now := s.now()
	at := now.Truncate(time.Microsecond)
	if startedAt != nil {
		at = startedAt.Truncate(time.Microsecond)
		if err := s.checkTime("started_at", at, now); err != nil {
			return nil, false, err
		}
		if at.Before(now.Add(-MaxBackdate)) {
			return nil, false, FieldError("started_at", nil, "%s is more than %d days ago", at.Format(time.RFC3339), int(MaxBackdate/(24*time.Hour)))
		}
	}
	var id int64
	created := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		replay, err := findKey(ctx, tx, v.UserID, key, startedAt, at)
		if err != nil || replay != 0 {
			id = replay
			return err
		}
		if err := checkFree(ctx, tx, v.UserID, at); err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `INSERT INTO patrols (user_id, idempotency_key, started_at, created_at, updated_at)
			VALUES ($1, NULLIF($2, ''), $3, $4, $4) ON CONFLICT DO NOTHING RETURNING id`, v.UserID, key, at, now).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			// A concurrent start won: the same request's retry, or another.
			if id, err = findKey(ctx, tx, v.UserID, key, startedAt, at); err != nil || id != 0 {
				return err
			}
			if err := checkFree(ctx, tx, v.UserID, at); err != nil {
				return err
			}
			return gridwatch.Errorf(gridwatch.EConflict, "another patrol was started at the same moment; reload and try again")
		}
		if err != nil {
			return fmt.Errorf("start patrol: %w", err)
		}
		created = true
		var username string
		if err := tx.QueryRow(ctx, "SELECT username FROM users WHERE id = $1", v.UserID).Scan(&username); err != nil {
			return fmt.Errorf("start patrol: %w", err)
		}
		if err := events.Publish(ctx, tx, EventStarted, nil, map[string]any{"id": id, "user_id": v.UserID, "username": username,
			"started_at": at, "grids": []int64{}}); err != nil {
			return err
		}
		return audit.Record(ctx, tx, "patrol.start", "patrol", strconv.FormatInt(id, 10), map[string]any{"after": map[string]any{"started_at": at}})
	})
	if err != nil {
		return nil, false, err
	}
	p, err := s.get(ctx, s.pool, id, Viewer{UserID: v.UserID})
	return p, created, err
}

// findKey returns the patrol member user opened with key (0: none, or no
// key). A start time given now that differs from the first is a mismatch.
func findKey(ctx context.Context, tx pgx.Tx, user int64, key string, given *time.Time, at time.Time) (int64, error) {
	if key == "" {
		return 0, nil
	}
	var id int64
	var started time.Time
	err := tx.QueryRow(ctx, "SELECT id, started_at FROM patrols WHERE user_id = $1 AND idempotency_key = $2", user, key).Scan(&id, &started)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("find patrol start: %w", err)
	case given != nil && !started.Equal(at):
		return 0, gridwatch.Errorf(gridwatch.EIdempotencyMismatch,
			"the Idempotency-Key %q started patrol %d at %s, not at %s: send the same request to retry it, or a new key for a new patrol",
			key, id, started.Format(time.RFC3339), at.Format(time.RFC3339)).
			WithDetails(map[string]any{"header": "Idempotency-Key", "patrol_id": id})
	}
	return id, nil
}

// checkFree refuses a start for member user at: they have an open patrol,
// or their last one ended after at.
func checkFree(ctx context.Context, tx pgx.Tx, user int64, at time.Time) error {
	var id int64
	var started time.Time
	err := tx.QueryRow(ctx, "SELECT id, started_at FROM patrols WHERE user_id = $1 AND ended_at IS NULL", user).Scan(&id, &started)
	if err == nil {
		return gridwatch.Errorf(gridwatch.EConflict, "you have an open patrol (%d, started %s): end it before starting another",
			id, started.Format(time.RFC3339)).WithDetails(map[string]any{"open_patrol_id": id, "started_at": started})
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("start patrol: %w", err)
	}
	var ended time.Time
	err = tx.QueryRow(ctx, `SELECT id, ended_at FROM patrols WHERE user_id = $1 AND ended_at > $2
		ORDER BY ended_at DESC LIMIT 1`, user, at).Scan(&id, &ended)
	if err == nil {
		return gridwatch.Errorf(gridwatch.EConflict, "started_at %s is before the end of your patrol %d (%s): patrols do not overlap",
			at.Format(time.RFC3339), id, ended.Format(time.RFC3339)).
			WithDetails(map[string]any{"field": "started_at", "patrol_id": id, "ended_at": ended})
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("start patrol: %w", err)
	}
	return nil
}

// End closes patrol id at endedAt (nil: now); only its member may. Ending
// an ended patrol returns it as it is, with changed false.
func (s *Service) End(ctx context.Context, id int64, v Viewer, endedAt *time.Time) (*Patrol, bool, error) {
	now := s.now()
	changed := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var (
			owner      int64
			started    time.Time
			ended      *time.Time
			lastAt     *time.Time
			lastGrid   *int64
			distance   float64
			points     int
			gridsTouch []int64
		)
		err := tx.QueryRow(ctx, `SELECT user_id, started_at, ended_at, last_at, last_grid_id, distance_m, points,
				ARRAY(SELECT grid_id FROM patrol_grids WHERE patrol_id = p.id ORDER BY grid_id)
			FROM patrols p WHERE id = $1 FOR UPDATE`, id).
			Scan(&owner, &started, &ended, &lastAt, &lastGrid, &distance, &points, &gridsTouch)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound(id)
		}
		if err != nil {
			return fmt.Errorf("end patrol %d: %w", id, err)
		}
		if err := checkOwner(ctx, tx, id, owner, v); err != nil {
			return err
		}
		if ended != nil {
			return nil
		}
		at := now.Truncate(time.Microsecond)
		if endedAt != nil {
			at = endedAt.Truncate(time.Microsecond)
			if err := s.checkTime("ended_at", at, now); err != nil {
				return err
			}
		}
		switch {
		case at.Before(started):
			return FieldError("ended_at", map[string]any{"started_at": started}, "%s is before the patrol started (%s)",
				at.Format(time.RFC3339), started.Format(time.RFC3339))
		case lastAt != nil && at.Before(*lastAt):
			return FieldError("ended_at", map[string]any{"last_at": *lastAt}, "%s is before the patrol's last point (%s)",
				at.Format(time.RFC3339Nano), lastAt.Format(time.RFC3339Nano))
		}
		if _, err := tx.Exec(ctx, "UPDATE patrols SET ended_at = $2, updated_at = $3 WHERE id = $1", id, at, now); err != nil {
			return fmt.Errorf("end patrol %d: %w", id, err)
		}
		changed = true
		if gridsTouch == nil {
			gridsTouch = []int64{}
		}
		if err := events.Publish(ctx, tx, EventEnded, lastGrid, map[string]any{"id": id, "user_id": owner, "ended_at": at,
			"distance_m": roundTo(distance, 1), "points": points, "grids": gridsTouch}); err != nil {
			return err
		}
		return audit.Record(ctx, tx, "patrol.end", "patrol", strconv.FormatInt(id, 10),
			map[string]any{"after": map[string]any{"ended_at": at, "distance_m": roundTo(distance, 1), "points": points}})
	})
	if err != nil {
		return nil, false, err
	}
	p, err := s.get(ctx, s.pool, id, v)
	return p, changed, err
}

// Track is a patrol's track as a GeoJSON Feature: a LineString of its
// points in time order (a Point when it has one, null when none), their
// times and accuracies alongside.
type Track struct {
	Type       string          `json:"type"`
	ID         int64           `json:"id"`
	Geometry   *TrackGeometry  `json:"geometry"`
	Properties TrackProperties `json:"properties"`
}

// TrackGeometry is a track's geometry.
type TrackGeometry struct {
	Type        string `json:"type"`
	Coordinates any    `json:"coordinates"`
}

// TrackProperties are a track's properties: Times[i] and Accuracy[i]
// (metres, null when unknown) belong to the i-th position.
type TrackProperties struct {
	ID        int64       `json:"id"`
	User      User        `json:"user"`
	StartedAt time.Time   `json:"started_at"`
	EndedAt   *time.Time  `json:"ended_at"`
	DistanceM float64     `json:"distance_m"`
	Times     []time.Time `json:"times"`
	Accuracy  []*float64  `json:"accuracy"`
}

// Track returns patrol id's track, if v may see it.
func (s *Service) Track(ctx context.Context, id int64, v Viewer) (*Track, error) {
	var (
		p      *Patrol
		coords [][2]float64
		tr     = &Track{Type: "Feature", ID: id}
	)
	// One snapshot: the points and the header agree.
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		if p, err = s.get(ctx, tx, id, v); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT ST_X(geom), ST_Y(geom), at, accuracy_m FROM patrol_points WHERE patrol_id = $1 ORDER BY at", id)
		if err != nil {
			return fmt.Errorf("patrol %d track: %w", id, err)
		}
		defer rows.Close()
		for rows.Next() {
			var c [2]float64
			var at time.Time
			var acc *float64
			if err := rows.Scan(&c[0], &c[1], &at, &acc); err != nil {
				return fmt.Errorf("patrol %d track: %w", id, err)
			}
			coords = append(coords, c)
			tr.Properties.Times = append(tr.Properties.Times, at)
			tr.Properties.Accuracy = append(tr.Properties.Accuracy, acc)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	tr.Properties.ID, tr.Properties.User, tr.Properties.StartedAt, tr.Properties.EndedAt, tr.Properties.DistanceM =
		p.ID, p.User, p.StartedAt, p.EndedAt, p.DistanceM
	switch len(coords) {
	case 0:
		tr.Properties.Times, tr.Properties.Accuracy = []time.Time{}, []*float64{}
	case 1:
		tr.Geometry = &TrackGeometry{Type: "Point", Coordinates: coords[0]}
	default:
		tr.Geometry = &TrackGeometry{Type: "LineString", Coordinates: coords}
	}
	return tr, nil
}
