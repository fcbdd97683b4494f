package patrol

import (
	"context"
	"fmt"
	"slices"
	"time"

	"gridwatch/internal/database"
)

// Tasks are a member's open cases and how many of them are overdue (from
// the incident service's workload).
type Tasks struct {
	Open, Overdue int64
}

// StatsQuery selects a month's figures.
type StatsQuery struct {
	// Month names the period ("2026-11"); From and To are its bounds, cut
	// in Zone (an IANA name, given back as is).
	Month    string
	Zone     string
	From, To time.Time
	// Tasks are members' open and overdue cases, by user id: each of them
	// has a row, patrols or not.
	Tasks map[int64]Tasks
	// Members, when not nil, limits the rows to these users and gives each
	// a row, empty or not (a grid leader's own row).
	Members []int64
}

// MemberStats are one member's figures of the month.
type MemberStats struct {
	User User `json:"user"`
	// Patrols counts the patrols overlapping the month.
	Patrols int64 `json:"patrols"`
	// Hours is their time within the month. An open patrol counts up to
	// LostAfter (10 min) past its last point (its start, without one), or
	// up to now when that is sooner: a phone lost or left with a patrol
	// open does not add hours it did not walk. Points sent late add their
	// time when they arrive.
	Hours float64 `json:"hours"`
	// DistanceM is the distance walked within the month (by the points'
	// times).
	DistanceM float64 `json:"distance_m"`
	// GridsCovered counts the distinct grids (grid level) with a point of
	// theirs in the month.
	GridsCovered int64 `json:"grids_covered"`
	// OpenTasks and OverdueTasks are their open cases now, and those past
	// their deadline.
	OpenTasks    int64 `json:"open_tasks"`
	OverdueTasks int64 `json:"overdue_tasks"`
}

// Stats are the month's figures per member.
type Stats struct {
	Month   string        `json:"month"`
	Zone    string        `json:"tz"`
	From    time.Time     `json:"from"`
	To      time.Time     `json:"to"`
	Members []MemberStats `json:"members"`
}

// Stats counts, per member, the patrols v may see that overlap [q.From,
// q.To): how many, their hours and distance within the period and the
// grids covered, with each member's open and overdue cases from q.Tasks.
// Members with cases and no patrols have a row, as do those with patrols
// and no cases. Rows come by username. An open patrol counts until
// LostAfter past its last point (or start), or now if sooner: it is in the
// month when that time is (MemberStats.Hours).
func (s *Service) Stats(ctx context.Context, q StatsQuery, v Viewer) (*Stats, error) {
	if !q.From.Before(q.To) {
		return nil, FieldError("month", nil, "the period %s to %s is empty", q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))
	}
	extra := slices.Clone(q.Members)
	for id := range q.Tasks {
		if q.Members == nil || slices.Contains(q.Members, id) {
			extra = append(extra, id)
		}
	}
	if extra == nil {
		extra = []int64{}
	}
	var w database.Where
	w.Arg(q.From)
	w.Arg(q.To)
	w.Arg(s.now())
	w.Arg(extra)
	w.Arg(LostAfter.Seconds())
	// The patrols_span index's expression: an open patrol's range is
	// unbounded above.
	w.Add("tstzrange(p.started_at, p.ended_at, '[]') && tstzrange($1::timestamptz, $2::timestamptz, '[)')")
	// An open patrol counts until it was last seen walking (its last point,
	// or its start) plus LostAfter, or until now when that is sooner — not
	// into the months ahead, nor for the days a lost phone kept it open.
	w.Add("coalesce(p.ended_at, least($3::timestamptz, greatest(p.started_at, p.last_at) + $5::float8 * interval '1 second')) >= $1::timestamptz")
	if q.Members != nil {
		w.Add("p.user_id = ANY(?)", q.Members)
	}
	v.where(&w)
	sql := `WITH vis AS (
			SELECT p.id, p.user_id, p.started_at,
				coalesce(p.ended_at, least($3::timestamptz, greatest(p.started_at, p.last_at) + $5::float8 * interval '1 second')) AS until
			FROM patrols p` + w.SQL() + `
		), per AS (
			SELECT user_id, count(*) AS n,
				sum(greatest(extract(epoch FROM least(until, $2::timestamptz) - greatest(started_at, $1::timestamptz))::float8, 0)) AS secs
			FROM vis GROUP BY user_id
		), walked AS (
			SELECT v.user_id, sum(pp.segment_m) AS dist, count(DISTINCT pp.grid_id) FILTER (WHERE g.level = 'grid') AS grids
			FROM vis v JOIN patrol_points pp ON pp.patrol_id = v.id AND pp.at >= $1::timestamptz AND pp.at < $2::timestamptz
			LEFT JOIN grids g ON g.id = pp.grid_id
			GROUP BY v.user_id
		), members AS (
			SELECT user_id FROM per UNION SELECT unnest($4::bigint[])
		)
		SELECT u.id, u.username, u.display_name, coalesce(per.n, 0), coalesce(per.secs, 0), coalesce(walked.dist, 0), coalesce(walked.grids, 0)
		FROM members m JOIN users u ON u.id = m.user_id
		LEFT JOIN per ON per.user_id = m.user_id
		LEFT JOIN walked ON walked.user_id = m.user_id
		ORDER BY u.username`
	rows, err := s.pool.Query(ctx, sql, w.Args()...)
	if err != nil {
		return nil, fmt.Errorf("patrol stats: %w", err)
	}
	defer rows.Close()
	out := &Stats{Month: q.Month, Zone: q.Zone, From: q.From, To: q.To, Members: []MemberStats{}}
	for rows.Next() {
		var m MemberStats
		var secs float64
		if err := rows.Scan(&m.User.ID, &m.User.Username, &m.User.DisplayName, &m.Patrols, &secs, &m.DistanceM, &m.GridsCovered); err != nil {
			return nil, fmt.Errorf("patrol stats: %w", err)
		}
		m.Hours, m.DistanceM = roundTo(secs/3600, 2), roundTo(m.DistanceM, 1)
		t := q.Tasks[m.User.ID]
		m.OpenTasks, m.OverdueTasks = t.Open, t.Overdue
		out.Members = append(out.Members, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("patrol stats: %w", err)
	}
	return out, nil
}
