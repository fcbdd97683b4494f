package patrol

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/geo"
	"gridwatch/internal/database"
	"gridwatch/internal/events"
)

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
// created false; the same key with another start time is refused.
//
// A member walks one patrol at a time. A start makes room for itself in
// the same transaction (makeRoom): a patrol of theirs that began before
// startedAt and is still open, or ended after startedAt, is closed at its
// last point, or at startedAt when that comes first — the phone left it
// open (lost, reinstalled) or the server ended it on the phone's behalf
// ({} at the server's time). The new patrol's ClosedPatrolID names it. A
// patrol of theirs that began at or after startedAt cannot make room: the
// start is a conflict naming it (details.patrol_id, and
// details.open_patrol_id when it is open).
func (s *Service) Start(ctx context.Context, v Viewer, key string, startedAt *time.Time) (*Patrol, bool, error) {
	if v.UserID == 0 {
		return nil, false, gridwatch.Errorf(gridwatch.EForbidden, "patrols are recorded by a signed-in member, not by an API token")
	}
	if err := gridwatch.CheckIdempotencyKey(key); err != nil {
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
	var (
		id     int64
		closed []closing
	)
	created := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		replay, err := findKey(ctx, tx, v.UserID, key, startedAt, at)
		if err != nil || replay != 0 {
			id = replay
			return err
		}
		if closed, err = makeRoom(ctx, tx, v.UserID, at, now); err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `INSERT INTO patrols (user_id, idempotency_key, started_at, created_at, updated_at)
			VALUES ($1, NULLIF($2, ''), $3, $4, $4) ON CONFLICT DO NOTHING RETURNING id`, v.UserID, key, at, now).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			// A concurrent start won: the same request's retry, or another.
			if id, err = findKey(ctx, tx, v.UserID, key, startedAt, at); err != nil || id != 0 {
				return err
			}
			var open int64
			var started time.Time
			if err := tx.QueryRow(ctx, "SELECT id, started_at FROM patrols WHERE user_id = $1 AND ended_at IS NULL", v.UserID).
				Scan(&open, &started); err == nil {
				return gridwatch.Errorf(gridwatch.EConflict, "patrol %d was started at the same moment (at %s); reload and try again",
					open, started.Format(time.RFC3339)).WithDetails(map[string]any{"open_patrol_id": open, "patrol_id": open, "started_at": started})
			}
			return gridwatch.Errorf(gridwatch.EConflict, "another patrol was started at the same moment; reload and try again")
		}
		if err != nil {
			return fmt.Errorf("start patrol: %w", err)
		}
		created = true
		for _, c := range closed {
			if err := c.record(ctx, tx, map[string]any{"closed_by_patrol_id": id}); err != nil {
				return err
			}
		}
		var username string
		if err := tx.QueryRow(ctx, "SELECT username FROM users WHERE id = $1", v.UserID).Scan(&username); err != nil {
			return fmt.Errorf("start patrol: %w", err)
		}
		data := map[string]any{"id": id, "user_id": v.UserID, "username": username, "started_at": at, "grids": []int64{}}
		after := map[string]any{"started_at": at}
		if len(closed) > 0 {
			data["closed_patrol_id"] = closed[len(closed)-1].id
			after["closed_patrol_id"] = closed[len(closed)-1].id
		}
		if err := events.Publish(ctx, tx, EventStarted, nil, data); err != nil {
			return err
		}
		return audit.Record(ctx, tx, "patrol.start", "patrol", strconv.FormatInt(id, 10), map[string]any{"after": after})
	})
	if err != nil {
		return nil, false, err
	}
	p, err := s.get(ctx, s.pool, id, Viewer{UserID: v.UserID})
	if err == nil && created && len(closed) > 0 {
		p.ClosedPatrolID = closed[len(closed)-1].id
	}
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

// locked is a patrol row locked for a change of its end.
type locked struct {
	id, owner int64
	started   time.Time
	ended     *time.Time
	lastAt    *time.Time
	lastGrid  *int64
	distance  float64
	points    int
	grids     []int64
}

// lockColumns are what scanLocked reads, of patrols p.
const lockColumns = `p.id, p.user_id, p.started_at, p.ended_at, p.last_at, p.last_grid_id, p.distance_m, p.points,
	ARRAY(SELECT grid_id FROM patrol_grids WHERE patrol_id = p.id ORDER BY grid_id)`

func scanLocked(row pgx.Row) (locked, error) {
	var l locked
	err := row.Scan(&l.id, &l.owner, &l.started, &l.ended, &l.lastAt, &l.lastGrid, &l.distance, &l.points, &l.grids)
	if l.grids == nil {
		l.grids = []int64{}
	}
	return l, err
}

// activeUntil is the last moment patrol l is known to have been walked:
// its last point, or its start when it has none (or only fixes taken
// before it).
func (l locked) activeUntil() time.Time {
	if l.lastAt != nil && l.lastAt.After(l.started) {
		return *l.lastAt
	}
	return l.started
}

// closing is a patrol makeRoom closed (or whose end it brought forward),
// to be recorded once the new patrol has its id.
type closing struct {
	locked
	at time.Time
}

// record publishes closing c's patrol.ended event and audits it, with
// more in the event's data and the audit's summary.
func (c closing) record(ctx context.Context, tx pgx.Tx, more map[string]any) error {
	data := map[string]any{"id": c.id, "user_id": c.owner, "ended_at": c.at,
		"distance_m": roundTo(c.distance, 1), "points": c.points, "grids": c.grids}
	summary := map[string]any{"after": map[string]any{"ended_at": c.at, "distance_m": roundTo(c.distance, 1), "points": c.points}}
	if c.ended != nil {
		summary["before"] = map[string]any{"ended_at": *c.ended}
	}
	for k, v := range more {
		data[k], summary[k] = v, v
	}
	if err := events.Publish(ctx, tx, EventEnded, c.lastGrid, data); err != nil {
		return err
	}
	return audit.Record(ctx, tx, "patrol.end", "patrol", strconv.FormatInt(c.id, 10), summary)
}

// makeRoom makes room for a patrol of member user starting at: their
// patrols that began before at and are open, or ended after at, end at
// their last activity (activeUntil) or at, whichever comes first. It
// returns them, their events and audit still to be recorded. A patrol of
// theirs that is open or ends after at and began at or after at is a
// conflict: the new patrol would contain its start. The error names it
// (details.patrol_id; details.open_patrol_id when it is open).
func makeRoom(ctx context.Context, tx pgx.Tx, user int64, at, now time.Time) ([]closing, error) {
	rows, err := tx.Query(ctx, `SELECT `+lockColumns+` FROM patrols p
		WHERE p.user_id = $1 AND (p.ended_at IS NULL OR p.ended_at > $2) ORDER BY p.started_at FOR UPDATE`, user, at)
	if err != nil {
		return nil, fmt.Errorf("start patrol: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (locked, error) { return scanLocked(row) })
	if err != nil {
		return nil, fmt.Errorf("start patrol: %w", err)
	}
	for _, l := range list {
		if l.started.Before(at) {
			continue
		}
		d := map[string]any{"field": "started_at", "patrol_id": l.id, "started_at": l.started}
		if l.ended == nil {
			d["open_patrol_id"] = l.id
			return nil, gridwatch.Errorf(gridwatch.EConflict,
				"you have an open patrol (%d, started %s), and started_at %s is before it: end it before starting another",
				l.id, l.started.Format(time.RFC3339), at.Format(time.RFC3339)).WithDetails(d)
		}
		d["ended_at"] = *l.ended
		return nil, gridwatch.Errorf(gridwatch.EConflict,
			"started_at %s is before your patrol %d (%s to %s): patrols do not overlap; start at or after %s",
			at.Format(time.RFC3339), l.id, l.started.Format(time.RFC3339), l.ended.Format(time.RFC3339), l.ended.Format(time.RFC3339)).
			WithDetails(d)
	}
	out := make([]closing, 0, len(list))
	for _, l := range list {
		c := closing{locked: l, at: l.activeUntil()}
		if at.Before(c.at) {
			c.at = at
		}
		if _, err := tx.Exec(ctx, "UPDATE patrols SET ended_at = $2, updated_at = $3 WHERE id = $1", l.id, c.at, now); err != nil {
			return nil, fmt.Errorf("close patrol %d: %w", l.id, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// End closes patrol id at endedAt; only its member may. Without endedAt
// it ends now, or at its last point when that is later (a phone's clock
// ahead of the server's). An end before the patrol's start or its last
// point is refused.
//
// Ending an ended patrol never fails: it answers the patrol with changed
// false, unless endedAt comes before its end and fits the patrol (not
// before its start nor its last point) — the member's own end arriving
// after the server ended it for them — which brings the end forward. The
// end a patrol keeps is thus the earliest one given, whatever the order
// the requests come in, and a replay changes nothing.
func (s *Service) End(ctx context.Context, id int64, v Viewer, endedAt *time.Time) (*Patrol, bool, error) {
	now := s.now()
	changed := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		l, err := scanLocked(tx.QueryRow(ctx, `SELECT `+lockColumns+` FROM patrols p WHERE p.id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound(id)
		}
		if err != nil {
			return fmt.Errorf("end patrol %d: %w", id, err)
		}
		if err := checkOwner(ctx, tx, id, l.owner, v); err != nil {
			return err
		}
		var at time.Time
		switch {
		case l.ended != nil:
			if endedAt == nil {
				return nil
			}
			at = endedAt.Truncate(time.Microsecond)
			if !at.Before(*l.ended) || at.Before(l.started) || (l.lastAt != nil && at.Before(*l.lastAt)) {
				return nil
			}
		case endedAt == nil:
			at = now.Truncate(time.Microsecond)
			if l.lastAt != nil && l.lastAt.After(at) {
				at = *l.lastAt
			}
		default:
			at = endedAt.Truncate(time.Microsecond)
			if err := s.checkTime("ended_at", at, now); err != nil {
				return err
			}
			switch {
			case at.Before(l.started):
				return FieldError("ended_at", map[string]any{"started_at": l.started}, "%s is before the patrol started (%s)",
					at.Format(time.RFC3339), l.started.Format(time.RFC3339))
			case l.lastAt != nil && at.Before(*l.lastAt):
				return FieldError("ended_at", map[string]any{"last_at": *l.lastAt}, "%s is before the patrol's last point (%s)",
					at.Format(time.RFC3339Nano), l.lastAt.Format(time.RFC3339Nano))
			}
		}
		if _, err := tx.Exec(ctx, "UPDATE patrols SET ended_at = $2, updated_at = $3 WHERE id = $1", id, at, now); err != nil {
			return fmt.Errorf("end patrol %d: %w", id, err)
		}
		changed = true
		return closing{locked: l, at: at}.record(ctx, tx, nil)
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
