package patrol

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"gridwatch"
)

// fieldStart is the field app's start (assets/src/field/outbox.js,
// startPatrol): start; on a 409 naming an open patrol, end that one with
// {} and start again, the same request. It returns the answer and the
// steps it took.
func fieldStart(ctx context.Context, svc *Service, v Viewer, key string, at time.Time) (*Patrol, []string, error) {
	var steps []string
	p, created, err := svc.Start(ctx, v, key, &at)
	steps = append(steps, "start "+outcome(created, err))
	open, _ := gridwatch.ErrorDetails(err)["open_patrol_id"].(int64)
	if errCode(err) != gridwatch.EConflict || open == 0 {
		return p, steps, err
	}
	_, _, err = svc.End(ctx, open, v, nil)
	steps = append(steps, fmt.Sprintf("end %d {} %s", open, outcome(false, err)))
	if err != nil {
		return nil, steps, err
	}
	p, created, err = svc.Start(ctx, v, key, &at)
	steps = append(steps, "start "+outcome(created, err))
	return p, steps, err
}

func outcome(created bool, err error) string {
	switch {
	case err != nil:
		return errCode(err)
	case created:
		return "created"
	}
	return "ok"
}

// patrolEvents are the patrol events of patrol id, as "type key=value"
// for the keys named.
func (c *city) patrolEvents(id int64, keys ...string) []string {
	c.t.Helper()
	rows, err := c.pool.Query(context.Background(), `SELECT type, data FROM events
		WHERE type LIKE 'patrol.%' AND (data->>'id')::bigint = $1 ORDER BY id`, id)
	if err != nil {
		c.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var typ string
		var data map[string]any
		if err := rows.Scan(&typ, &data); err != nil {
			c.t.Fatal(err)
		}
		line := typ
		for _, k := range keys {
			if v, ok := data[k]; ok {
				line += fmt.Sprintf(" %s=%v", k, v)
			}
		}
		out = append(out, line)
	}
	return out
}

// audits are the audit entries of patrol id, oldest first, as "action
// summary".
func (c *city) audits(id int64) []string {
	c.t.Helper()
	rows, err := c.pool.Query(context.Background(), `SELECT action, summary::text FROM audit_log
		WHERE target_type = 'patrol' AND target_id = $1 ORDER BY id`, fmt.Sprint(id))
	if err != nil {
		c.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var action, summary string
		if err := rows.Scan(&action, &summary); err != nil {
			c.t.Fatal(err)
		}
		out = append(out, action+" "+summary)
	}
	return out
}

// TestPatrolStartClosesLeftOpen: a start meeting the member's patrol left
// open from before it closes that one at its last point (or at the new
// start, when it has points after it), audited and announced, and says so;
// one that began at or after the new start is a conflict naming it.
func TestPatrolStartClosesLeftOpen(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, shanghai)
	c := newCity(t, t0)
	ctx := context.Background()
	_, mid := c.cell(0)
	pt := func(at time.Time) Point { return Point{At: at, Lon: mid[0], Lat: mid[1], AccuracyM: acc(5)} }

	t.Run("left open with points", func(t *testing.T) {
		wang := c.member("wang")
		c.set(t0.Add(10 * time.Minute))
		old := c.start(wang, t0)
		c.add(old.ID, wang, pt(t0.Add(time.Minute)), pt(t0.Add(5*time.Minute)))
		// Two hours later, on another phone: the tap was 3 s before the
		// request reaches the server.
		c.set(t0.Add(2 * time.Hour))
		tap := c.clock().Add(-3 * time.Second)
		p, created, err := c.svc.Start(ctx, wang, "phone-b-start-01", &tap)
		if err != nil || !created || !p.Active || !p.StartedAt.Equal(tap) || p.ClosedPatrolID != old.ID {
			t.Fatalf("start: %+v %v %v, want a new patrol closing %d", p, created, err, old.ID)
		}
		got, err := c.svc.Get(ctx, old.ID, wang)
		if err != nil || got.Active || !got.EndedAt.Equal(t0.Add(5*time.Minute)) {
			t.Fatalf("the old patrol: %+v %v, want it ended at its last point (09:05)", got, err)
		}
		if ev := c.patrolEvents(old.ID, "closed_by_patrol_id"); fmt.Sprint(ev) != fmt.Sprintf("[patrol.started patrol.position patrol.ended closed_by_patrol_id=%d]", p.ID) {
			t.Errorf("the old patrol's events: %v", ev)
		}
		if ev := c.patrolEvents(p.ID, "closed_patrol_id"); fmt.Sprint(ev) != fmt.Sprintf("[patrol.started closed_patrol_id=%d]", old.ID) {
			t.Errorf("the new patrol's events: %v", ev)
		}
		if a := c.audits(old.ID); len(a) != 2 || !strings.HasPrefix(a[1], "patrol.end ") || !strings.Contains(a[1], fmt.Sprintf(`"closed_by_patrol_id": %d`, p.ID)) {
			t.Errorf("the old patrol's audit: %v", a)
		}
		if a := c.audits(p.ID); len(a) != 1 || !strings.Contains(a[0], fmt.Sprintf(`"closed_patrol_id": %d`, old.ID)) {
			t.Errorf("the new patrol's audit: %v", a)
		}
		// A replay answers the same patrol, changing nothing.
		again, created, err := c.svc.Start(ctx, wang, "phone-b-start-01", &tap)
		if err != nil || created || again.ID != p.ID || !again.Active {
			t.Errorf("replay: %+v %v %v", again, created, err)
		}
		// The phone's queued end of the old patrol (its own time, after the
		// close) answers it as it is.
		late := t0.Add(30 * time.Minute)
		if got, changed, err := c.svc.End(ctx, old.ID, wang, &late); err != nil || changed || !got.EndedAt.Equal(t0.Add(5*time.Minute)) {
			t.Errorf("the old patrol's queued end: %+v %v %v, want it as it is", got, changed, err)
		}
	})

	t.Run("points after the new start", func(t *testing.T) {
		li := c.member("li")
		c.set(t0.Add(40 * time.Minute))
		old := c.start(li, t0)
		c.add(old.ID, li, pt(t0.Add(30*time.Minute)))
		at := t0.Add(20 * time.Minute) // a start queued offline, sent late
		p, created, err := c.svc.Start(ctx, li, "", &at)
		if err != nil || !created || p.ClosedPatrolID != old.ID {
			t.Fatalf("start: %+v %v %v", p, created, err)
		}
		if got, _ := c.svc.Get(ctx, old.ID, li); !got.EndedAt.Equal(at) {
			t.Errorf("the old patrol ended at %v, want at the new start %v", got.EndedAt, at)
		}
	})

	t.Run("no points", func(t *testing.T) {
		zhao := c.member("zhao")
		c.set(t0.Add(3 * time.Hour))
		old := c.start(zhao, t0)
		p := c.start(zhao, t0.Add(3*time.Hour))
		if got, _ := c.svc.Get(ctx, old.ID, zhao); p.ClosedPatrolID != old.ID || !got.EndedAt.Equal(t0) {
			t.Errorf("the old patrol: %+v, want it ended at its start", got)
		}
	})

	t.Run("began after the new start", func(t *testing.T) {
		sun := c.member("sun")
		c.set(t0.Add(10 * time.Minute))
		open := c.start(sun, t0.Add(5*time.Minute))
		c.add(open.ID, sun, pt(t0.Add(6*time.Minute)))
		early := t0.Add(2 * time.Minute) // a phone whose clock is behind
		_, _, err := c.svc.Start(ctx, sun, "phone-c-start-01", &early)
		d := gridwatch.ErrorDetails(err)
		if errCode(err) != gridwatch.EConflict || d["open_patrol_id"] != open.ID || d["patrol_id"] != open.ID {
			t.Fatalf("start before the open patrol: %v %v, want a conflict naming it", err, d)
		}
		if got, _ := c.svc.Get(ctx, open.ID, sun); !got.Active {
			t.Errorf("the open patrol was changed: %+v", got)
		}
		// The field app ends it and starts again: still a conflict (the
		// new patrol would contain it), naming it, not as open.
		p, steps, err := fieldStart(ctx, c.svc, sun, "phone-c-start-01", early)
		d = gridwatch.ErrorDetails(err)
		if p != nil || errCode(err) != gridwatch.EConflict || d["patrol_id"] != open.ID || d["open_patrol_id"] != nil || d["ended_at"] == nil {
			t.Errorf("the field app's recovery: %+v %v %v, want a conflict naming ended patrol %d", p, err, d, open.ID)
		}
		if want := fmt.Sprintf("[start conflict end %d {} ok start conflict]", open.ID); fmt.Sprint(steps) != want {
			t.Errorf("steps %v, want %s", steps, want)
		}
	})
}

// TestPatrolFieldRecovery: the field app's sequence for a patrol left open
// ends with its patrol started, on this server (one request) and from
// where the phones the old server refused stand (the old patrol ended {}
// at the server's time, after the tap).
func TestPatrolFieldRecovery(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, shanghai)
	c := newCity(t, t0)
	ctx := context.Background()
	_, mid := c.cell(0)

	t.Run("left open", func(t *testing.T) {
		wang := c.member("wang")
		c.set(t0.Add(time.Minute))
		old := c.start(wang, t0)
		c.add(old.ID, wang, Point{At: t0.Add(time.Minute), Lon: mid[0], Lat: mid[1]})
		c.set(t0.Add(26 * time.Hour))
		tap := c.clock().Add(-2 * time.Second)
		p, steps, err := fieldStart(ctx, c.svc, wang, "field-start-0001", tap)
		if err != nil || p.ClosedPatrolID != old.ID || !p.StartedAt.Equal(tap) || fmt.Sprint(steps) != "[start created]" {
			t.Fatalf("start: %+v %v %v", p, steps, err)
		}
	})

	// start → 409 open → end {} → start with the tap's time, earlier than
	// that end → 201: the last step is where the old server refused.
	t.Run("ended at the server's time", func(t *testing.T) {
		li := c.member("li")
		c.set(t0.Add(time.Minute))
		old := c.start(li, t0)
		c.add(old.ID, li, Point{At: t0.Add(time.Minute), Lon: mid[0], Lat: mid[1]})
		c.set(t0.Add(26 * time.Hour))
		tap := c.clock().Add(-2 * time.Second)
		// What the old server answered the first start (409, naming the open
		// patrol) made the phone end it with {}.
		ended, changed, err := c.svc.End(ctx, old.ID, li, nil)
		if err != nil || !changed || !ended.EndedAt.Equal(c.clock()) || !ended.EndedAt.After(tap) {
			t.Fatalf("end {}: %+v %v %v, want it ended now, after the tap", ended, changed, err)
		}
		p, created, err := c.svc.Start(ctx, li, "field-start-0002", &tap)
		if err != nil || !created || !p.StartedAt.Equal(tap) || p.ClosedPatrolID != old.ID {
			t.Fatalf("start with the tap's time: %+v %v %v, want it created", p, created, err)
		}
		// The old patrol's end comes back to its last point, as if the start
		// had closed it; audited with the end it had.
		got, _ := c.svc.Get(ctx, old.ID, li)
		if !got.EndedAt.Equal(t0.Add(time.Minute)) {
			t.Errorf("the old patrol ends at %v, want its last point", got.EndedAt)
		}
		if a := c.audits(old.ID); len(a) != 3 || !strings.Contains(a[2], `"before": {"ended_at"`) {
			t.Errorf("audit %v", a)
		}
		// The phone's next attempt (the answer was lost) is a replay.
		if again, created, err := c.svc.Start(ctx, li, "field-start-0002", &tap); err != nil || created || again.ID != p.ID {
			t.Errorf("replay: %+v %v %v", again, created, err)
		}
	})
}

// TestPatrolEndClockAhead: {} ends a patrol at its last point when the
// phone's clock put that after the server's now.
func TestPatrolEndClockAhead(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, shanghai)
	now := t0.Add(30 * time.Minute)
	c := newCity(t, now)
	ctx := context.Background()
	wang := c.member("wang")
	_, mid := c.cell(0)
	p := c.start(wang, t0)
	ahead := now.Add(2 * time.Minute)
	c.add(p.ID, wang, Point{At: now, Lon: mid[0], Lat: mid[1]}, Point{At: ahead, Lon: mid[0], Lat: mid[1]})
	ended, changed, err := c.svc.End(ctx, p.ID, wang, nil)
	if err != nil || !changed || !ended.EndedAt.Equal(ahead) {
		t.Fatalf("end {}: %+v %v %v, want it ended at its last point %v", ended, changed, err, ahead)
	}
	// The next patrol, started by the same phone after that point, is free.
	c.set(now.Add(time.Minute))
	next := ahead.Add(10 * time.Second)
	q, created, err := c.svc.Start(ctx, wang, "", &next)
	if err != nil || !created || q.ClosedPatrolID != 0 {
		t.Fatalf("next start: %+v %v %v", q, created, err)
	}
	// An explicit end before the last point is still refused.
	c.add(q.ID, wang, Point{At: next.Add(time.Minute), Lon: mid[0], Lat: mid[1]})
	early := next.Add(30 * time.Second)
	if _, _, err := c.svc.End(ctx, q.ID, wang, &early); errCode(err) != gridwatch.EInvalid || gridwatch.ErrorDetails(err)["field"] != "ended_at" {
		t.Errorf("end before the last point: %v, want invalid ended_at", err)
	}
}

// TestPatrolEndEarlier: an end earlier than the patrol's end (the member's
// own, arriving after the server ended it for them) brings it forward
// when it fits; otherwise, and on a replay, the patrol is answered as it
// is. Never an error.
func TestPatrolEndEarlier(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, shanghai)
	c := newCity(t, t0.Add(time.Hour))
	ctx := context.Background()
	wang := c.member("wang")
	_, mid := c.cell(0)
	p := c.start(wang, t0)
	c.add(p.ID, wang, Point{At: t0.Add(10 * time.Minute), Lon: mid[0], Lat: mid[1]})
	if _, _, err := c.svc.End(ctx, p.ID, wang, nil); err != nil {
		t.Fatal(err)
	}
	at := func(m int) *time.Time { x := t0.Add(time.Duration(m) * time.Minute); return &x }
	for _, tc := range []struct {
		name    string
		at      *time.Time
		changed bool
		ended   time.Time
	}{
		{"the member's end", at(20), true, *at(20)},
		{"its replay", at(20), false, *at(20)},
		{"later", at(40), false, *at(20)},
		{"before the last point", at(5), false, *at(20)},
		{"before the start", at(-5), false, *at(20)},
		{"{}", nil, false, *at(20)},
		{"earlier still", at(15), true, *at(15)},
	} {
		got, changed, err := c.svc.End(ctx, p.ID, wang, tc.at)
		if err != nil || changed != tc.changed || !got.EndedAt.Equal(tc.ended) {
			t.Errorf("%s: %v %v %v, want changed %v, ended at %v", tc.name, got.EndedAt, changed, err, tc.changed, tc.ended)
		}
	}
	if ev := c.patrolEvents(p.ID); fmt.Sprint(ev) != "[patrol.started patrol.position patrol.ended patrol.ended patrol.ended]" {
		t.Errorf("events %v", ev)
	}
	if a := c.audits(p.ID); len(a) != 4 || !strings.Contains(a[3], `"before": {"ended_at"`) {
		t.Errorf("audit %v", a)
	}
}

// TestPatrolStatsLeftOpen: a patrol left open for days (a lost phone)
// counts until LostAfter past its last point, not until now, and not in
// the months after; the live list still shows it, long silent.
func TestPatrolStatsLeftOpen(t *testing.T) {
	now := time.Date(2026, 11, 5, 12, 0, 0, 0, shanghai)
	c := newCity(t, now)
	ctx := context.Background()
	wang, li, zhao, sun := c.member("wang"), c.member("li"), c.member("zhao"), c.member("sun")
	_, mid := c.cell(0)
	pt := func(at time.Time) Point { return Point{At: at, Lon: mid[0], Lat: mid[1]} }

	// wang: open since 2 Nov 09:00, one point at 09:05: 09:00 to 09:15.
	lost := time.Date(2026, 11, 2, 9, 0, 0, 0, shanghai)
	p := c.start(wang, lost)
	c.add(p.ID, wang, pt(lost.Add(5*time.Minute)))
	// li: open since 30 Oct 10:00, points to 10:50: October's, 10:00 to
	// 11:00; nothing in November.
	oct := time.Date(2026, 10, 30, 10, 0, 0, 0, shanghai)
	q := c.start(li, oct)
	c.add(q.ID, li, pt(oct.Add(20*time.Minute)), pt(oct.Add(50*time.Minute)))
	// zhao: open since 2 Nov 09:00 without a point: 10 minutes.
	c.start(zhao, lost)
	// sun: started 6 min ago, no point yet: until now.
	c.start(sun, now.Add(-6*time.Minute))

	for _, tc := range []struct {
		month string
		rows  []string
	}{
		{"2026-11", []string{"sun patrols=1 hours=0.10", "wang patrols=1 hours=0.25", "zhao patrols=1 hours=0.17"}},
		{"2026-10", []string{"li patrols=1 hours=1.00"}},
	} {
		sq, err := c.svc.MonthQuery(tc.month, "Asia/Shanghai")
		if err != nil {
			t.Fatal(err)
		}
		st, err := c.svc.Stats(ctx, sq, Viewer{All: true})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range st.Members {
			got = append(got, fmt.Sprintf("%s patrols=%d hours=%.2f", m.User.Username, m.Patrols, m.Hours))
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.rows) {
			t.Errorf("%s: %v, want %v", tc.month, got, tc.rows)
		}
	}

	// The live list still has wang's patrol, silent for three days and more.
	list, _, err := c.svc.List(ctx, Filter{Active: true, UserID: wang.UserID}, Viewer{All: true})
	if err != nil || len(list) != 1 || list[0].ID != p.ID || list[0].FreshSeconds == nil ||
		*list[0].FreshSeconds != int64(now.Sub(lost.Add(5*time.Minute))/time.Second) {
		t.Errorf("active list: %+v %v, want wang's patrol with its last point's age", list, err)
	}
}
