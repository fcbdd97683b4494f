package incident

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"gridwatch/internal/database"
)

// StatsGroup is what statistics are broken down by.
type StatsGroup string

// The groupings of the monthly report (月通报).
const (
	// ByGrid groups by the grid a case is in (unassigned cases together).
	ByGrid StatsGroup = "grid"
	// ByCategory groups by subclass, with its class.
	ByCategory StatsGroup = "category"
	// ByMonth groups by the calendar month of the report, in the query's zone.
	ByMonth StatsGroup = "month"
)

// StatsGroups lists the groupings.
func StatsGroups() []StatsGroup { return []StatsGroup{ByGrid, ByCategory, ByMonth} }

// Valid reports whether g is a known grouping.
func (g StatsGroup) Valid() bool { return slices.Contains(StatsGroups(), g) }

// DefaultStatsWindow is the range counted when a query gives no From: the
// 30 days before To.
const DefaultStatsWindow = 30 * 24 * time.Hour

// DefaultStatsZone is the time zone months are cut in when a query names
// none: the seed city's (China has one zone and no daylight saving).
const DefaultStatsZone = "Asia/Shanghai"

// maxStatsRange bounds a query's range (about ten years).
const maxStatsRange = 3660 * 24 * time.Hour

// StatsQuery selects the cases counted: those reported in [From, To).
type StatsQuery struct {
	// From and To bound reported_at; a zero To is now (and counts the
	// cases reported since From, any dated ahead of the clock too), a zero
	// From is DefaultStatsWindow before To.
	From, To time.Time
	// Group is the breakdown; empty means ByGrid.
	Group StatsGroup
	// Zone is an IANA time zone name: months are cut in it and From and To
	// are given back in it. Empty means DefaultStatsZone.
	Zone string
}

// StatsRow is the figures of one group (or of all: the totals).
type StatsRow struct {
	// Key is the grid code ("unassigned" for cases in no grid), the
	// subclass code, or the month as 2026-11; "total" for the totals.
	Key  string `json:"key"`
	Name string `json:"name"`
	// GridID is the grid's id (grid grouping; the key is its code).
	GridID *int64 `json:"id,omitempty"`
	// ClassCode and ClassName are the subclass's class (category grouping).
	ClassCode string `json:"class_code,omitempty"`
	ClassName string `json:"class_name,omitempty"`
	// Reported counts the cases reported in the range.
	Reported int64 `json:"reported"`
	// Registered (立案数) counts those registered, whatever became of them.
	Registered int64 `json:"registered"`
	// Closed (结案数) counts those closed.
	Closed int64 `json:"closed"`
	// CloseRate (结案率) is Closed / Registered; null when none registered.
	CloseRate *float64 `json:"close_rate"`
	// ClosedOnTime counts the cases closed by their deadline.
	ClosedOnTime int64 `json:"closed_on_time"`
	// OnTimeRate (按期结案率) is ClosedOnTime / Closed; null when none closed.
	OnTimeRate *float64 `json:"on_time_rate"`
	// MedianHours is the median of closed_at − reported_at over the closed
	// cases, in hours (0 for a case closed before its reported_at); null
	// when none closed.
	MedianHours *float64 `json:"median_handling_hours"`
	// Open counts the cases not closed or rejected at the report's end
	// (min(To, now)); Overdue those of them past their deadline then.
	Open    int64 `json:"open"`
	Overdue int64 `json:"overdue"`
}

// Stats is the monthly report (月通报): the figures per group and in all.
type Stats struct {
	From   time.Time  `json:"from"`
	To     time.Time  `json:"to"`
	Group  StatsGroup `json:"group"`
	Zone   string     `json:"tz"`
	Rows   []StatsRow `json:"rows"`
	Totals StatsRow   `json:"totals"`
}

// normalise fills a query's defaults and checks it; errors name the field.
func (q StatsQuery) normalise(now time.Time) (StatsQuery, *time.Location, error) {
	if q.Group == "" {
		q.Group = ByGrid
	}
	if !q.Group.Valid() {
		return q, nil, FieldError("group", "%q is not one of grid, category, month", q.Group)
	}
	if q.Zone == "" {
		q.Zone = DefaultStatsZone
	}
	loc, err := time.LoadLocation(q.Zone)
	if err != nil || q.Zone == "Local" {
		return q, nil, FieldError("tz", "%q is not an IANA time zone such as Asia/Shanghai", q.Zone)
	}
	if q.To.IsZero() {
		q.To = now
	}
	if q.From.IsZero() {
		q.From = q.To.Add(-DefaultStatsWindow)
	}
	if !q.From.Before(q.To) {
		return q, nil, FieldError("from", "%s is not before to (%s)", q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))
	}
	if q.To.Sub(q.From) > maxStatsRange {
		return q, nil, FieldError("from", "the range from %s to %s is longer than 10 years", q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))
	}
	q.From, q.To = q.From.In(loc), q.To.In(loc)
	return q, loc, nil
}

// Stats counts the cases v may see that were reported in the query's
// range, per group and in all: 立案数, 结案数, 结案率, 按期结案率, the median
// handling time, and how many are open and overdue. Every figure is as of
// the range's end, min(To, now): a case closed after To was open at To, one
// whose deadline passed after To was not overdue, so a past month's report
// reads the same whenever it is run. Rows come in key
// order (unassigned last); grouped by month, every month of the range has a
// row, empty months too.
func (s *Service) Stats(ctx context.Context, q StatsQuery, v Viewer) (*Stats, error) {
	now := s.now()
	toNow := q.To.IsZero()
	q, loc, err := q.normalise(now)
	if err != nil {
		return nil, err
	}
	// until bounds reported_at; nil leaves it open: a report up to now
	// counts every case reported since From, those too that bear a time
	// ahead of the clock (reported by a clock ahead, or before this clock
	// stepped back).
	until := &q.To
	if toNow {
		until = nil
	}
	asOf := q.To
	// cut is the time the cases' states are read as of; nil reads them as
	// they stand. A report reaching now counts every step taken: after the
	// clock stepped back, a step may bear a time later than now (see
	// Transition), and a case closed is not open again.
	var cut *time.Time
	if now.After(asOf) {
		cut = &asOf
	} else {
		asOf = now
	}
	// $1 and $2 are the period (NULL $2: open), $3 the time deadlines are
	// compared with, $4 the time the states are read as of (NULL: as they
	// stand).
	var w database.Where
	w.Arg(q.From)
	w.Arg(until)
	w.Arg(asOf)
	w.Arg(cut)
	var cols, joins string
	switch q.Group {
	case ByGrid:
		cols = "g.id, g.code, g.name, NULL::text, NULL::text"
		joins = " LEFT JOIN grids g ON g.id = i.grid_id"
	case ByCategory:
		cols = "NULL::bigint, c.code, c.name, p.code, p.name"
		joins = " JOIN incident_categories c ON c.code = i.category LEFT JOIN incident_categories p ON p.code = c.parent_code"
	case ByMonth:
		cols = "NULL::bigint, to_char(i.reported_at AT TIME ZONE " + w.Arg(q.Zone) + ", 'YYYY-MM'), NULL::text, NULL::text, NULL::text"
	}
	w.Add("i.reported_at >= $1 AND ($2::timestamptz IS NULL OR i.reported_at < $2)")
	v.where(&w)
	// One pass: the groups and, from the empty grouping set, the totals
	// (whose median is over all closed cases, not a median of medians).
	sql := `WITH base AS (
			SELECT ` + cols + `,
				-- The status at $4: the current one unless the case changed
				-- since, else the last step taken by then.
				CASE WHEN $4::timestamptz IS NULL OR i.updated_at <= $4 THEN i.status ELSE coalesce((SELECT e.to_status FROM incident_events e
					WHERE e.incident_id = i.id AND e.at <= $4 ORDER BY e.id DESC LIMIT 1), 'reported') END,
				CASE WHEN $4::timestamptz IS NULL OR i.registered_at <= $4 THEN i.registered_at END,
				CASE WHEN $4::timestamptz IS NULL OR i.closed_at <= $4 THEN i.closed_at END,
				i.reported_at, i.deadline
			FROM incidents i` + joins + w.SQL() + `
		) SELECT GROUPING(gid, k, n, ck, cn) <> 0 AS total, gid, k, n, ck, cn,
			count(*),
			count(*) FILTER (WHERE registered_at IS NOT NULL AND status <> 'rejected'),
			count(*) FILTER (WHERE status = 'closed'),
			count(*) FILTER (WHERE status = 'closed' AND closed_at <= deadline),
			-- Never below 0: a case closed before Transition kept its steps
			-- at or after its report (a clock stepped back) may bear a
			-- closed_at before its reported_at.
			percentile_cont(0.5) WITHIN GROUP (ORDER BY greatest(extract(epoch FROM closed_at - reported_at)::float8, 0) / 3600)
				FILTER (WHERE status = 'closed'),
			count(*) FILTER (WHERE status NOT IN ('closed', 'rejected')),
			count(*) FILTER (WHERE status NOT IN ('closed', 'rejected') AND deadline < $3)
		FROM base AS b (gid, k, n, ck, cn, status, registered_at, closed_at, reported_at, deadline)
		GROUP BY GROUPING SETS ((gid, k, n, ck, cn), ())
		ORDER BY total, k NULLS LAST`
	rows, err := s.pool.Query(ctx, sql, w.Args()...)
	if err != nil {
		return nil, fmt.Errorf("incident stats: %w", err)
	}
	defer rows.Close()
	out := &Stats{From: q.From, To: q.To, Group: q.Group, Zone: q.Zone, Rows: []StatsRow{},
		Totals: StatsRow{Key: "total", Name: "合计"}}
	for rows.Next() {
		var (
			total          bool
			r              StatsRow
			key, name      *string
			ccode, cname   *string
			median         *float64
			reg, closed, o int64
		)
		if err := rows.Scan(&total, &r.GridID, &key, &name, &ccode, &cname,
			&r.Reported, &reg, &closed, &o, &median, &r.Open, &r.Overdue); err != nil {
			return nil, fmt.Errorf("incident stats: %w", err)
		}
		r.Registered, r.Closed, r.ClosedOnTime = reg, closed, o
		r.CloseRate, r.OnTimeRate = ratio(closed, reg), ratio(o, closed)
		if median != nil {
			m := math.Round(*median*100) / 100
			r.MedianHours = &m
		}
		if total {
			r.Key, r.Name, r.GridID = "total", "合计", nil
			out.Totals = r
			continue
		}
		r.Key, r.Name = deref(key), deref(name)
		r.ClassCode, r.ClassName = deref(ccode), deref(cname)
		switch {
		case q.Group == ByGrid && key == nil:
			r.Key, r.Name = "unassigned", "未分配网格"
		case q.Group == ByMonth:
			r.Name = monthName(r.Key)
		}
		out.Rows = append(out.Rows, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("incident stats: %w", err)
	}
	if q.Group == ByMonth {
		out.Rows = fillMonths(out.Rows, q.From, q.To, loc)
	}
	return out, nil
}

// ratio is a/b rounded to 4 places, or nil when b is 0.
func ratio(a, b int64) *float64 {
	if b == 0 {
		return nil
	}
	r := math.Round(float64(a)/float64(b)*1e4) / 1e4
	return &r
}

func monthName(key string) string {
	t, err := time.Parse("2006-01", key)
	if err != nil {
		return key
	}
	return t.Format("2006年1月")
}

// fillMonths gives every month of [from, to) a row, in order, keeping the
// counted ones.
func fillMonths(counted []StatsRow, from, to time.Time, loc *time.Location) []StatsRow {
	byKey := make(map[string]StatsRow, len(counted))
	for _, r := range counted {
		byKey[r.Key] = r
	}
	f := from.In(loc)
	out := []StatsRow{}
	for m := time.Date(f.Year(), f.Month(), 1, 0, 0, 0, 0, loc); m.Before(to); m = m.AddDate(0, 1, 0) {
		key := m.Format("2006-01")
		r, ok := byKey[key]
		if !ok {
			r = StatsRow{Key: key, Name: monthName(key)}
		}
		out = append(out, r)
	}
	return out
}
