package patrol

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/geo"
	"gridwatch/internal/events"
)

// Added is what a batch did: the points stored, those already there (a
// replay) or repeated in the batch, and the patrol after it.
type Added struct {
	Accepted   int     `json:"accepted"`
	Duplicates int     `json:"duplicates"`
	Patrol     *Patrol `json:"patrol"`
}

// insertPoints stores a batch in one statement: each point placed in its
// grid (geo.GridAt), a point already stored at the same time skipped, the
// grids touched noted. It answers how many were stored and the earliest
// of them. $1 the patrol, $2..$5 the batch's
// times, longitudes, latitudes and accuracies.
var insertPoints = `WITH ins AS (
		INSERT INTO patrol_points (patrol_id, at, geom, accuracy_m, grid_id)
		SELECT $1, b.at, b.pt, b.acc, ` + geo.GridAt("b.pt", "") + `
		FROM (SELECT u.at, ST_SetSRID(ST_MakePoint(u.lon, u.lat), 4326) AS pt, u.acc
			FROM unnest($2::timestamptz[], $3::float8[], $4::float8[], $5::float8[]) AS u (at, lon, lat, acc)) b
		ON CONFLICT (patrol_id, at) DO NOTHING
		RETURNING at, grid_id
	), touched AS (
		INSERT INTO patrol_grids (patrol_id, grid_id)
		SELECT DISTINCT $1::bigint, grid_id FROM ins WHERE grid_id IS NOT NULL
		ON CONFLICT DO NOTHING
	)
	SELECT count(*)::int, min(at) FROM ins`

// walkTrack walks the track on from a point counted ($2 its time, $3 and
// $4 where, $5 the distance so far; all NULL and 0 to walk from the
// start) over the accurate points after it ($6 the worst accuracy) in time
// order. A point is counted when the way from the last counted point would
// not mean moving faster than $7 m/s; otherwise it is a GPS jump, skipped,
// and the next point is measured from the same counted point. Each point
// walked gets its segment_m (0 when skipped); the patrol gets the distance,
// where the walk stands, $8 more points, and its latest point. The ways
// are PostGIS geography distances (on the spheroid), so the distance is the
// geography length of the counted points' line.
//
// The points are handed to the walk as arrays of fixed-width values (time,
// lon, lat): the recursive step reads the next by its index.
const walkTrack = `WITH RECURSIVE src AS MATERIALIZED (
		SELECT array_agg(at ORDER BY at) AS ats, array_agg(ST_X(geom) ORDER BY at) AS xs, array_agg(ST_Y(geom) ORDER BY at) AS ys
		FROM patrol_points
		WHERE patrol_id = $1 AND at > coalesce($2::timestamptz, '-infinity') AND (accuracy_m IS NULL OR accuracy_m <= $6::float8)
	), walk (i, at, x, y, d, pat, seg) AS (
		SELECT 0, $2::timestamptz, $3::float8, $4::float8, $5::float8, NULL::timestamptz, 0::float8
		UNION ALL
		SELECT w.i + 1,
			CASE WHEN k.ok THEN n.at ELSE w.at END,
			CASE WHEN k.ok THEN n.x ELSE w.x END,
			CASE WHEN k.ok THEN n.y ELSE w.y END,
			w.d + CASE WHEN k.ok THEN m.len ELSE 0 END,
			n.at,
			CASE WHEN k.ok THEN m.len ELSE 0 END
		FROM walk w CROSS JOIN src
		CROSS JOIN LATERAL (SELECT src.ats[w.i + 1] AS at, src.xs[w.i + 1] AS x, src.ys[w.i + 1] AS y) n
		CROSS JOIN LATERAL (SELECT CASE WHEN w.x IS NULL THEN 0::float8
			ELSE ST_Distance(ST_MakePoint(w.x, w.y)::geography, ST_MakePoint(n.x, n.y)::geography) END AS len) m
		CROSS JOIN LATERAL (SELECT w.x IS NULL OR m.len <= $7::float8 * extract(epoch FROM n.at - w.at)::float8 AS ok) k
		WHERE w.i < cardinality(src.ats)
	), segs AS (
		UPDATE patrol_points pp SET segment_m = w.seg
		FROM walk w
		WHERE w.i > 0 AND pp.patrol_id = $1 AND pp.at > coalesce($2::timestamptz, '-infinity') AND pp.at = w.pat
			AND pp.segment_m IS DISTINCT FROM w.seg
	), fin AS (
		SELECT at, x, y, d FROM walk ORDER BY i DESC LIMIT 1
	)
	UPDATE patrols p SET distance_m = fin.d, walk_at = fin.at,
		walk_point = CASE WHEN fin.x IS NULL THEN NULL ELSE ST_SetSRID(ST_MakePoint(fin.x, fin.y), 4326) END,
		points = p.points + $8,
		(last_point, last_at, last_accuracy_m, last_grid_id) = (SELECT geom, at, accuracy_m, grid_id
			FROM patrol_points WHERE patrol_id = $1 ORDER BY at DESC LIMIT 1),
		updated_at = $9
	FROM fin WHERE p.id = $1`

// AddPoints stores a batch of points of patrol id; only its member may. A
// point dated before the patrol's start (less EarlySlack), after its end,
// or ahead of the server's clock (more FutureSlack) refuses the batch,
// naming the point. Points already stored (by time) are counted as
// duplicates, not stored again: a replayed batch changes nothing. The
// distance and the latest point are brought up to date in the same
// transaction, and a patrol.position event tells where the member is.
func (s *Service) AddPoints(ctx context.Context, id int64, v Viewer, pts []Point) (*Added, error) {
	switch {
	case len(pts) == 0:
		return nil, FieldError("points", nil, "is empty: send 1 to %d points", MaxBatch)
	case len(pts) > MaxBatch:
		return nil, gridwatch.Errorf(gridwatch.ETooLarge, "points: %d in one batch, at most %d", len(pts), MaxBatch).
			WithDetails(map[string]any{"field": "points", "max": MaxBatch})
	}
	now := s.now()
	out := &Added{}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var (
			owner    int64
			started  time.Time
			ended    *time.Time
			walkAt   *time.Time
			walkX    *float64
			walkY    *float64
			distance float64
			count    int
		)
		err := tx.QueryRow(ctx, `SELECT user_id, started_at, ended_at, walk_at, ST_X(walk_point), ST_Y(walk_point), distance_m, points
			FROM patrols WHERE id = $1 FOR UPDATE`, id).Scan(&owner, &started, &ended, &walkAt, &walkX, &walkY, &distance, &count)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound(id)
		}
		if err != nil {
			return fmt.Errorf("patrol %d points: %w", id, err)
		}
		if err := checkOwner(ctx, tx, id, owner, v); err != nil {
			return err
		}
		if err := checkTimes(pts, started, ended, now); err != nil {
			return err
		}
		if count+len(pts) > MaxPoints {
			return gridwatch.Errorf(gridwatch.ETooLarge, "patrol %d has %d points, and keeps at most %d: end it and start another", id, count, MaxPoints).
				WithDetails(map[string]any{"field": "points", "max": MaxPoints, "points": count})
		}
		ats := make([]time.Time, len(pts))
		lons, lats := make([]float64, len(pts)), make([]float64, len(pts))
		accs := make([]*float64, len(pts))
		for i, p := range pts {
			ats[i], lons[i], lats[i], accs[i] = p.At, p.Lon, p.Lat, p.AccuracyM
		}
		var (
			inserted int
			earliest *time.Time
		)
		if err := tx.QueryRow(ctx, insertPoints, id, ats, lons, lats, accs).Scan(&inserted, &earliest); err != nil {
			return fmt.Errorf("patrol %d points: %w", id, err)
		}
		out.Accepted, out.Duplicates = inserted, len(pts)-inserted
		if inserted == 0 {
			return nil
		}
		if walkAt == nil || !earliest.After(*walkAt) {
			// A late batch reaches back before the walk: walk it all again.
			walkAt, walkX, walkY, distance = nil, nil, nil, 0
		}
		if _, err := tx.Exec(ctx, walkTrack, id, walkAt, walkX, walkY, distance, MaxAccuracyM, MaxSpeed, inserted, now); err != nil {
			return fmt.Errorf("patrol %d distance: %w", id, err)
		}
		p, err := s.get(ctx, tx, id, Viewer{UserID: owner})
		if err != nil {
			return err
		}
		out.Patrol = p
		// The event names every grid the patrol touched, as its scope: a
		// scoped viewer who sees the patrol follows all of its moves.
		touched := make([]int64, len(p.Grids))
		for i, g := range p.Grids {
			touched[i] = g.ID
		}
		slices.Sort(touched)
		data := map[string]any{"id": id, "user_id": owner, "username": p.User.Username, "display_name": p.User.DisplayName,
			"last": p.Last, "distance_m": p.DistanceM, "points": p.Points, "active": p.Active, "grids": touched}
		var grid *int64
		if p.Last != nil {
			grid = p.Last.GridID
		}
		return events.Publish(ctx, tx, EventPosition, grid, data)
	})
	if err != nil {
		return nil, err
	}
	if out.Patrol == nil {
		if out.Patrol, err = s.get(ctx, s.pool, id, v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkTimes refuses the first point dated outside the patrol's time: before
// its start (less EarlySlack), after its end, or after now (plus
// FutureSlack).
func checkTimes(pts []Point, started time.Time, ended *time.Time, now time.Time) error {
	earliest, future := started.Add(-EarlySlack), now.Add(FutureSlack)
	for i, p := range pts {
		field := fmt.Sprintf("points[%d].at", i)
		switch {
		case p.At.Before(earliest):
			return FieldError(field, map[string]any{"index": i, "started_at": started}, "%s is before the patrol started (%s)",
				p.At.Format(time.RFC3339Nano), started.Format(time.RFC3339Nano))
		case ended != nil && p.At.After(*ended):
			return FieldError(field, map[string]any{"index": i, "ended_at": *ended}, "%s is after the patrol ended (%s)",
				p.At.Format(time.RFC3339Nano), ended.Format(time.RFC3339Nano))
		case p.At.After(future):
			return FieldError(field, map[string]any{"index": i}, "%s is in the future (the server's time is %s): check the phone's clock",
				p.At.Format(time.RFC3339Nano), now.Format(time.RFC3339))
		}
	}
	return nil
}

// roundTo rounds x to n decimal places.
func roundTo(x float64, n int) float64 {
	p := math.Pow(10, float64(n))
	return math.Round(x*p) / p
}
