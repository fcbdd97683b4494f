package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"gridwatch/api"
	"gridwatch/auth"
	"gridwatch/geo"
	"gridwatch/incident"
	"gridwatch/internal/domain"
	"gridwatch/internal/events"
	"gridwatch/internal/testdb"
	"gridwatch/patrol"
)

// Two points of the demo city: inside grid leader 410105001001's community,
// and outside it.
var (
	patrolInside  = [2]float64{113.6355, 34.833}
	patrolOutside = [2]float64{113.7445, 34.767}
)

// newPatrolEnv is a server over the demo city whose accounts, cases and
// patrols run on the test's clock (2026-11-26T09:00Z, 17:00 in Zhengzhou).
func newPatrolEnv(t *testing.T) *authEnv {
	t.Helper()
	ck, pool := newClock(), testdb.New(t)
	e := newEnvOn(t, pool, domain.Options{
		Auth:      auth.Options{Now: ck.Now, SessionIdle: 12 * time.Hour, SessionMax: 24 * time.Hour},
		Incidents: incident.Options{Now: ck.Now},
		Patrols:   patrol.Options{Now: ck.Now},
	})
	ae := &authEnv{env: e, clock: ck, pool: pool}
	ae.importDemo()
	return ae
}

// member is a signed-in user with a browser session, as the field app is.
type member struct {
	e    *authEnv
	c    *http.Client
	csrf string
	id   int64
}

// signIn creates a user of role (scoped to codes) and signs them in.
func (e *authEnv) signIn(name string, role auth.Role, codes ...string) *member {
	e.t.Helper()
	saved := e.token
	e.token = adminToken
	e.createUser(name, "correct horse battery", role, codes...)
	e.token = saved
	m := &member{e: e, c: e.browser()}
	r := e.login(m.c, name, "correct horse battery")
	if r.status != http.StatusOK {
		e.t.Fatalf("login %s: %d %s", name, r.status, r.body)
	}
	p := r.json(e.t)
	m.csrf, m.id = p["csrf_token"].(string), int64(p["id"].(float64))
	return m
}

// do sends a request in m's session; hdr are more header pairs.
func (m *member) do(method, path, body string, hdr ...string) response {
	m.e.t.Helper()
	h := map[string]string{"X-CSRF-Token": m.csrf, "Content-Type": "application/json"}
	for i := 0; i+1 < len(hdr); i += 2 {
		h[hdr[i]] = hdr[i+1]
	}
	return m.e.send(m.c, method, path, body, h)
}

// points is a batch body: fixes at the given times (offsets from at) on a
// line eastwards from p (2 m a minute), 10 m accurate.
func points(p [2]float64, at time.Time, offsets ...time.Duration) string {
	var b strings.Builder
	b.WriteString(`{"points":[`)
	for i, d := range offsets {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"at":%q,"lon":%.7f,"lat":%.7f,"accuracy_m":10}`, at.Add(d).Format(time.RFC3339), p[0]+d.Minutes()*0.00002, p[1])
	}
	b.WriteString(`]}`)
	return b.String()
}

// want fails unless r has status and, for an error, code (and the details
// named in detail pairs).
func want(t *testing.T, what string, r response, status int, code string, detail ...any) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: %d %s, want %d", what, r.status, r.body, status)
	}
	if code == "" {
		return r.json(t)
	}
	er := r.errorOf(t)
	if er["code"] != code {
		t.Errorf("%s: %s, want code %s", what, r.body, code)
	}
	d, _ := er["details"].(map[string]any)
	for i := 0; i+1 < len(detail); i += 2 {
		if fmt.Sprint(d[detail[i].(string)]) != fmt.Sprint(detail[i+1]) {
			t.Errorf("%s: details %v, want %s=%v", what, d, detail[i], detail[i+1])
		}
	}
	return nil
}

func TestPatrolsOverHTTP(t *testing.T) {
	e := newPatrolEnv(t)
	now := e.clock.Now()
	leader := e.signIn("wangfang", auth.RoleGridLeader, "410105001001")

	// Start, a replay, a second start.
	r := leader.do("POST", "/api/v1/patrols", `{}`, "Idempotency-Key", "field-start-0001")
	p := want(t, "start", r, http.StatusCreated, "")
	id := int64(p["id"].(float64))
	if p["active"] != true || p["user"].(map[string]any)["username"] != "wangfang" || p["last"] != nil || r.header.Get("Location") != fmt.Sprintf("/api/v1/patrols/%d", id) {
		t.Errorf("start: %s %v", r.body, r.header)
	}
	r = leader.do("POST", "/api/v1/patrols", `{}`, "Idempotency-Key", "field-start-0001")
	if again := want(t, "replay", r, http.StatusOK, ""); int64(again["id"].(float64)) != id || r.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: %s %v", r.body, r.header)
	}
	want(t, "second start", leader.do("POST", "/api/v1/patrols", ``, "Idempotency-Key", "field-start-0002"), http.StatusConflict, "conflict", "open_patrol_id", id)
	want(t, "bad key", leader.do("POST", "/api/v1/patrols", `{}`, "Idempotency-Key", "x"), http.StatusBadRequest, "invalid", "header", "Idempotency-Key")
	want(t, "bad started_at", leader.do("POST", "/api/v1/patrols", `{"started_at":"soon"}`), http.StatusBadRequest, "invalid", "field", "started_at")
	want(t, "unknown field", leader.do("POST", "/api/v1/patrols", `{"start":"2026-11-26T09:00:00Z"}`), http.StatusBadRequest, "invalid", "field", "start")

	// Points: a duplicate counted, a bad point named, a GCJ-02 batch.
	path := fmt.Sprintf("/api/v1/patrols/%d", id)
	r = leader.do("POST", path+"/points", points(patrolInside, now, 0, time.Minute, time.Minute))
	added := want(t, "points", r, http.StatusOK, "")
	pt := added["patrol"].(map[string]any)
	if added["accepted"] != 2.0 || added["duplicates"] != 1.0 || pt["points"] != 2.0 || pt["last"].(map[string]any)["accuracy_m"] != 10.0 {
		t.Errorf("points: %s", r.body)
	}
	grids := pt["grids"].([]any)
	if len(grids) != 1 || !strings.HasPrefix(grids[0].(map[string]any)["code"].(string), "410105001001") {
		t.Errorf("grids %v, want one grid of the leader's community", grids)
	}
	bad := `{"points":[{"at":"2026-11-26T09:02:00Z","lon":113.6355,"lat":34.833},{"at":"2026-11-26T09:02:30Z","lon":113.6355,"lat":95}]}`
	want(t, "bad latitude", leader.do("POST", path+"/points", bad), http.StatusBadRequest, "invalid", "field", "points[1].lat", "index", 1)
	want(t, "point in the future", leader.do("POST", path+"/points", points(patrolInside, now, 2*time.Minute, time.Hour)), http.StatusBadRequest, "invalid",
		"field", "points[1].at", "index", 1)
	want(t, "unknown parameter", leader.do("POST", path+"/points?srs=gcj02", points(patrolInside, now, 2*time.Minute)), http.StatusBadRequest, "invalid", "param", "srs")
	want(t, "gcj02", leader.do("POST", path+"/points?crs=gcj02", points(patrolInside, now, 2*time.Minute)), http.StatusOK, "")

	// Reading: the member, commanders in and out of scope, others.
	commander := e.tokenFor(auth.RoleCommander) // a scoped one: TestPatrolScopeOverHTTP
	other := e.signIn("lisi", auth.RoleGridLeader, "410105001002")
	for _, tc := range []struct {
		name string
		get  func(path string) response
		sees bool
	}{
		{"the member", func(p string) response { return leader.do("GET", p, "") }, true},
		{"another grid leader", func(p string) response { return other.do("GET", p, "") }, false},
		{"a commander", bearer(e, commander), true},
		{"the admin", bearer(e, adminToken), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list := want(t, "list", tc.get("/api/v1/patrols"), http.StatusOK, "")["patrols"].([]any)
			if (len(list) == 1) != tc.sees {
				t.Errorf("list: %v, want seen %v", list, tc.sees)
			}
			get := tc.get(path)
			track := tc.get(path + "/track")
			if !tc.sees {
				want(t, "get", get, http.StatusNotFound, "not_found")
				want(t, "track", track, http.StatusNotFound, "not_found")
				return
			}
			want(t, "get", get, http.StatusOK, "")
			tr := want(t, "track", track, http.StatusOK, "")
			geom := tr["geometry"].(map[string]any)
			props := tr["properties"].(map[string]any)
			if !strings.HasPrefix(track.header.Get("Content-Type"), "application/geo+json") || tr["type"] != "Feature" ||
				geom["type"] != "LineString" || len(geom["coordinates"].([]any)) != 3 || len(props["times"].([]any)) != 3 || len(props["accuracy"].([]any)) != 3 {
				t.Errorf("track: %s %s", track.header.Get("Content-Type"), track.body)
			}
		})
	}
	// Only the member records; another member's patrol is not found.
	want(t, "other's points", other.do("POST", path+"/points", points(patrolInside, now, 3*time.Minute)), http.StatusNotFound, "not_found")
	e.token = commander
	want(t, "commander's points", e.do("POST", path+"/points", []byte(points(patrolInside, now, 3*time.Minute))), http.StatusForbidden, "forbidden")
	want(t, "commander ends it", e.do("POST", path+"/end", nil), http.StatusForbidden, "forbidden")
	want(t, "a token starts one", e.do("POST", "/api/v1/patrols", nil), http.StatusForbidden, "forbidden")
	for _, role := range []auth.Role{auth.RoleIntegration, auth.RoleOperator, auth.RoleGISEditor} {
		e.token = adminToken
		e.token = e.tokenFor(role)
		want(t, string(role)+" lists", e.do("GET", "/api/v1/patrols", nil), http.StatusForbidden, "forbidden", "permission", auth.PatrolsRecord)
		want(t, string(role)+" stats", e.do("GET", "/api/v1/stats/patrols", nil), http.StatusForbidden, "forbidden", "permission", auth.PatrolsRecord)
	}
	e.token = adminToken

	// Filters.
	for _, tc := range []struct {
		query string
		n     int
	}{
		{"active=true", 1},
		{fmt.Sprintf("user_id=%d", leader.id), 1},
		{fmt.Sprintf("user_id=%d", other.id), 0},
		{"day=2026-11-26", 1},
		{"day=2026-11-25", 0},
		{"day=2026-11-25&tz=Pacific/Honolulu", 1}, // 09:00Z is 23:00 on the 25th there
		{"day=2026-11-24&tz=Pacific/Honolulu", 0},
		{"grid=" + fmt.Sprint(int64(grids[0].(map[string]any)["id"].(float64))), 1},
		{"limit=1", 1},
	} {
		r := e.do("GET", "/api/v1/patrols?"+tc.query, nil)
		if n := len(want(t, tc.query, r, http.StatusOK, "")["patrols"].([]any)); n != tc.n {
			t.Errorf("?%s: %d patrols, want %d", tc.query, n, tc.n)
		}
	}
	checkBadQueries(t, func(p string) response { return e.do("GET", p, nil) }, []badQuery{
		{"/api/v1/patrols?day=26.11.2026", "day", "date", 400},
		{"/api/v1/patrols?day=2026-11-26&tz=Mars/Olympus", "tz", "time zone", 400},
		{"/api/v1/patrols?tz=UTC", "tz", "day", 400},
		{"/api/v1/patrols?active=yes", "active", "true or false", 400},
		{"/api/v1/patrols?user_id=me", "user_id", "user", 400},
		{"/api/v1/stats/patrols?month=2026-13", "month", "month", 400},
		{"/api/v1/stats/patrols?month=2026-11&tz=Local", "tz", "time zone", 400},
	})

	// End, idempotently; a late batch is taken if it fits the patrol's time.
	e.clock.Add(30 * time.Minute)
	r = leader.do("POST", path+"/end", `{"ended_at":"`+now.Add(20*time.Minute).Format(time.RFC3339)+`"}`)
	if ended := want(t, "end", r, http.StatusOK, ""); ended["active"] != false || ended["ended_at"] == nil {
		t.Errorf("end: %s", r.body)
	}
	r = leader.do("POST", path+"/end", ``)
	if want(t, "end again", r, http.StatusOK, ""); r.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("end again: %v", r.header)
	}
	r = leader.do("POST", path+"/points", points(patrolInside, now, 10*time.Minute, 20*time.Minute))
	if late := want(t, "late batch", r, http.StatusOK, ""); late["accepted"] != 2.0 || late["patrol"].(map[string]any)["points"] != 5.0 {
		t.Errorf("late batch: %s", r.body)
	}
	want(t, "after the end", leader.do("POST", path+"/points", points(patrolInside, now, 21*time.Minute)), http.StatusBadRequest, "invalid", "index", 0)
	if n := len(want(t, "active", e.do("GET", "/api/v1/patrols?active=true", nil), http.StatusOK, "")["patrols"].([]any)); n != 0 {
		t.Errorf("active after the end: %d", n)
	}
	want(t, "not a patrol", leader.do("POST", "/api/v1/patrols/999999/points", points(patrolInside, now, 0)), http.StatusNotFound, "not_found")

	// The start and the end are in the audit trail, by the member.
	var trail []string
	for _, x := range want(t, "audit", e.do("GET", "/api/v1/audit?target_type=patrol", nil), http.StatusOK, "")["entries"].([]any) {
		x := x.(map[string]any)
		trail = append(trail, fmt.Sprint(x["action"], " ", x["actor"].(map[string]any)["name"], " ", x["target_id"]))
	}
	if wantTrail := []string{fmt.Sprintf("patrol.end wangfang %d", id), fmt.Sprintf("patrol.start wangfang %d", id)}; fmt.Sprint(trail) != fmt.Sprint(wantTrail) {
		t.Errorf("audit trail %v, want %v", trail, wantTrail)
	}
}

// bearer is a GET with a bearer token.
func bearer(e *authEnv, token string) func(path string) response {
	return func(path string) response {
		return e.send(e.srv.Client(), "GET", path, "", map[string]string{"Authorization": "Bearer " + token})
	}
}

// TestPatrolScopeOverHTTP: a commander scoped to a community sees the
// patrols that touched it, and their own.
func TestPatrolScopeOverHTTP(t *testing.T) {
	e := newPatrolEnv(t)
	now := e.clock.Now()
	in := e.signIn("wangfang", auth.RoleGridLeader, "410105001001")
	out := e.signIn("zhaolei", auth.RoleGridLeader, "410105002001")
	scoped := e.signIn("zhihui", auth.RoleCommander, "410105001001")
	for _, m := range []*member{in, out, scoped} {
		want(t, "start", m.do("POST", "/api/v1/patrols", `{}`), http.StatusCreated, "")
	}
	list := func(m *member) []int64 {
		var ids []int64
		for _, p := range want(t, "list", m.do("GET", "/api/v1/patrols", ""), http.StatusOK, "")["patrols"].([]any) {
			ids = append(ids, int64(p.(map[string]any)["user"].(map[string]any)["id"].(float64)))
		}
		return ids
	}
	// No points yet: the scoped commander sees their own only.
	if got := list(scoped); fmt.Sprint(got) != fmt.Sprint([]int64{scoped.id}) {
		t.Errorf("before any point: %v, want the commander's own", got)
	}
	idOf := func(m *member) int64 {
		return int64(want(t, "own", m.do("GET", "/api/v1/patrols?active=true", ""), http.StatusOK, "")["patrols"].([]any)[0].(map[string]any)["id"].(float64))
	}
	want(t, "in", in.do("POST", fmt.Sprintf("/api/v1/patrols/%d/points", idOf(in)), points(patrolInside, now, 0)), http.StatusOK, "")
	want(t, "out", out.do("POST", fmt.Sprintf("/api/v1/patrols/%d/points", idOf(out)), points(patrolOutside, now, 0)), http.StatusOK, "")
	if got := list(scoped); fmt.Sprint(got) != fmt.Sprint([]int64{scoped.id, in.id}) {
		t.Errorf("after the points: %v, want %v", got, []int64{scoped.id, in.id})
	}
	// Stats: the scoped commander's rows are the patrols it sees.
	st := want(t, "stats", scoped.do("GET", "/api/v1/stats/patrols?month=2026-11", ""), http.StatusOK, "")
	var names []string
	for _, m := range st["members"].([]any) {
		names = append(names, m.(map[string]any)["user"].(map[string]any)["username"].(string))
	}
	if fmt.Sprint(names) != "[wangfang zhihui]" {
		t.Errorf("scoped stats members %v", names)
	}
}

// TestPatrolEventsOverHTTP: the live feed tells the command centre of
// patrols, a scoped commander of those in its grids, and a member of their
// own; a grid leader hears of no one else's.
func TestPatrolEventsOverHTTP(t *testing.T) {
	ae := &authEnv{}
	var hub *events.Hub
	e := newEnv(t, func(d *api.Deps) {
		var loc *geo.Locator
		loc, hub = ae.wireWithHub(t, d)
		d.Incidents = incident.NewService(ae.pool, incident.Options{Locator: loc})
		d.Patrols = patrol.NewService(ae.pool, patrol.Options{})
	})
	ae.env, ae.clock = e, newClock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	awaitHub(t, hub)
	ae.importDemo()

	leader := ae.signIn("wangfang", auth.RoleGridLeader, "410105001001")
	bystander := ae.signIn("lisi", auth.RoleGridLeader, "410105001001")
	admin := ae.openStream(adminToken, "")
	scoped := ae.openStream(ae.tokenFor(auth.RoleCommander, "410105001001"), "")
	elsewhere := ae.openStream(ae.tokenFor(auth.RoleCommander, "410105002001"), "")
	own := leader.stream()
	other := bystander.stream()

	now := time.Now().Add(-10 * time.Minute)
	r := leader.do("POST", "/api/v1/patrols", `{"started_at":"`+now.Format(time.RFC3339Nano)+`"}`)
	id := want(t, "start", r, http.StatusCreated, "")["id"].(float64)
	path := fmt.Sprintf("/api/v1/patrols/%v", id)
	want(t, "inside", leader.do("POST", path+"/points", points(patrolInside, now, 0)), http.StatusOK, "")
	want(t, "outside", leader.do("POST", path+"/points", points(patrolOutside, now, time.Minute)), http.StatusOK, "")
	want(t, "end", leader.do("POST", path+"/end", `{}`), http.StatusOK, "")

	all := []string{"patrol.started", "patrol.position", "patrol.position", "patrol.ended"}
	for _, tc := range []struct {
		name string
		s    *stream
		want []string
	}{
		{"admin", admin, all},
		{"the member", own, all},
		// The scoped commander hears from the first point in its grids on,
		// the patrol's moves outside them too (it sees the patrol).
		{"scoped commander", scoped, all[1:]},
	} {
		var got []string
		for range tc.want {
			ev := tc.s.nextEvent()
			if d := eventData(t, ev); d["id"] != id {
				t.Errorf("%s: %s about %v, want patrol %v", tc.name, ev.event, d["id"], id)
			}
			got = append(got, ev.event)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s heard %v, want %v", tc.name, got, tc.want)
		}
	}
	// The others hear nothing: the hub has handed the events to every
	// subscriber, and a stream writes what it has queued before a second
	// keep-alive.
	for name, s := range map[string]*stream{"commander elsewhere": elsewhere, "another grid leader": other} {
		for n := 0; n < 2; {
			ev := s.next()
			if ev.comment == "" {
				t.Fatalf("%s heard %s %s", name, ev.event, ev.data)
			}
			if ev.comment == "ping" {
				n++
			}
		}
	}
}

// stream opens the event stream in m's session.
func (m *member) stream() *stream {
	t := m.e.t
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", m.e.srv.URL+"/api/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.c.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &stream{t: t, res: res, events: make(chan sseEvent, 1000)}
	t.Cleanup(func() { cancel(); res.Body.Close() })
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/events: %d", res.StatusCode)
	}
	go s.read()
	if c := s.next(); c.comment != "connected" {
		t.Fatalf("first thing on the stream: %+v", c)
	}
	return s
}

// TestPatrolStatsOverHTTP: the month's figures per member with their open
// and overdue cases: members with cases and no patrol, with a patrol and no
// cases; a grid leader gets their own row.
func TestPatrolStatsOverHTTP(t *testing.T) {
	e := newPatrolEnv(t)
	now := e.clock.Now()
	wang := e.signIn("wangfang", auth.RoleGridLeader, "410105001001")
	li := e.signIn("lisi", auth.RoleGridLeader, "410105001001")
	zhao := e.signIn("zhaolei", auth.RoleGridLeader, "410105002001")

	// wang and li are on the team of the grid at patrolInside; cases are
	// dispatched to them: wang one due in an hour (0403), li two.
	chain := want(t, "locate", e.do("GET", fmt.Sprintf("/api/v1/locate?lon=%v&lat=%v", patrolInside[0], patrolInside[1]), nil), http.StatusOK, "")["grids"].([]any)
	grid := int64(chain[0].(map[string]any)["id"].(float64))
	staff := map[*member]float64{}
	for i, m := range []*member{wang, li} {
		role := []string{"leader", "volunteer"}[i]
		r := e.do("POST", fmt.Sprintf("/api/v1/grids/%d/staff", grid), []byte(fmt.Sprintf(`{"role":%q,"name":"n%d","user_id":%d}`, role, i, m.id)))
		staff[m] = want(t, "staff", r, http.StatusCreated, "")["id"].(float64)
	}
	dispatch := func(m *member, category string) {
		t.Helper()
		r := e.do("POST", "/api/v1/incidents", []byte(fmt.Sprintf(`{"source":"patrol","category":%q,"title":"巡查发现",
			"location":{"type":"Point","coordinates":[%v,%v]},"reported_at":%q}`, category, patrolInside[0], patrolInside[1], now.Format(time.RFC3339))))
		id := want(t, "report", r, http.StatusCreated, "")["id"].(float64)
		for i, body := range []string{`{"to":"registered","version":1}`, fmt.Sprintf(`{"to":"dispatched","version":2,"assignee_id":%v}`, staff[m])} {
			want(t, fmt.Sprint("step ", i), e.do("POST", fmt.Sprintf("/api/v1/incidents/%v/transitions", id), []byte(body)), http.StatusOK, "")
		}
	}
	dispatch(wang, "0403")
	dispatch(li, "0601")
	dispatch(li, "0601")

	// wang patrols 16:00 to 17:00 in Zhengzhou, zhao too, outside.
	for _, m := range []*member{wang, zhao} {
		spot := map[*member][2]float64{wang: patrolInside, zhao: patrolOutside}[m]
		start := now.Add(-time.Hour)
		id := want(t, "start", m.do("POST", "/api/v1/patrols", `{"started_at":"`+start.Format(time.RFC3339)+`"}`), http.StatusCreated, "")["id"].(float64)
		want(t, "points", m.do("POST", fmt.Sprintf("/api/v1/patrols/%v/points", id), points(spot, start, 0, 20*time.Minute, 40*time.Minute, time.Hour)), http.StatusOK, "")
		want(t, "end", m.do("POST", fmt.Sprintf("/api/v1/patrols/%v/end", id), `{}`), http.StatusOK, "")
	}
	e.clock.Add(2 * time.Hour) // wang's case is overdue

	rows := func(r response) []string {
		t.Helper()
		var out []string
		for _, m := range want(t, "stats", r, http.StatusOK, "")["members"].([]any) {
			m := m.(map[string]any)
			out = append(out, fmt.Sprintf("%s patrols=%v hours=%v grids=%v open=%v overdue=%v distance>0=%v", m["user"].(map[string]any)["username"],
				m["patrols"], m["hours"], m["grids_covered"], m["open_tasks"], m["overdue_tasks"], m["distance_m"].(float64) > 0))
		}
		return out
	}
	wangRow := "wangfang patrols=1 hours=1 grids=1 open=1 overdue=1 distance>0=true"
	got := rows(e.do("GET", "/api/v1/stats/patrols?month=2026-11&tz=Asia/Shanghai", nil))
	wantRows := []string{
		"lisi patrols=0 hours=0 grids=0 open=2 overdue=0 distance>0=false",
		wangRow,
		"zhaolei patrols=1 hours=1 grids=1 open=0 overdue=0 distance>0=true",
	}
	if strings.Join(got, "\n") != strings.Join(wantRows, "\n") {
		t.Errorf("admin's rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantRows, "\n"))
	}
	if got := rows(wang.do("GET", "/api/v1/stats/patrols?month=2026-11", "")); fmt.Sprint(got) != fmt.Sprint([]string{wangRow}) {
		t.Errorf("wang's rows: %v, want their own", got)
	}
	st := want(t, "october", e.do("GET", "/api/v1/stats/patrols?month=2026-10", nil), http.StatusOK, "")
	if st["month"] != "2026-10" || st["tz"] != "Asia/Shanghai" || st["from"] != "2026-10-01T00:00:00+08:00" || len(st["members"].([]any)) != 2 {
		t.Errorf("October: %v (the cases are now's: two members with cases, no patrols)", st)
	}
	if st := want(t, "default month", e.do("GET", "/api/v1/stats/patrols", nil), http.StatusOK, ""); st["month"] != "2026-11" {
		t.Errorf("default month %v", st["month"])
	}
}

// fieldStart is the field app's start over HTTP (assets/src/field/outbox.js,
// startPatrol): POST the start; on a 409 naming an open patrol, end that
// one with {} and POST the same start again. It returns the last answer
// and the steps ("start 409", "end 200", …).
func (m *member) fieldStart(key string, startedAt time.Time) (response, []string) {
	m.e.t.Helper()
	body := `{"started_at":"` + startedAt.Format(time.RFC3339Nano) + `"}`
	r := m.do("POST", "/api/v1/patrols", body, "Idempotency-Key", key)
	steps := []string{fmt.Sprint("start ", r.status)}
	if r.status != http.StatusConflict {
		return r, steps
	}
	d, _ := r.errorOf(m.e.t)["details"].(map[string]any)
	open, _ := d["open_patrol_id"].(float64)
	if open <= 0 {
		return r, steps
	}
	end := m.do("POST", fmt.Sprintf("/api/v1/patrols/%v/end", open), `{}`)
	steps = append(steps, fmt.Sprint("end ", end.status))
	r = m.do("POST", "/api/v1/patrols", body, "Idempotency-Key", key)
	return r, append(steps, fmt.Sprint("start ", r.status))
}

// timeOf reads an RFC 3339 time of an answer.
func timeOf(t *testing.T, v any) time.Time {
	t.Helper()
	s, _ := v.(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time %v: %v", v, err)
	}
	return at
}

// TestPatrolFieldRecoveryOverHTTP: a phone starting a patrol while one of
// the member's is left open gets its patrol started: the start closes the
// old one (closed_patrol_id); the phones the old server had answered 409
// (and that ended the old patrol with {}) get theirs on their next try;
// a patrol begun after the tap stays a conflict naming it. {} ends a
// patrol at its last point when the phone's clock put that ahead.
func TestPatrolFieldRecoveryOverHTTP(t *testing.T) {
	e := newPatrolEnv(t)
	t0 := e.clock.Now()
	wang := e.signIn("wangfang", auth.RoleGridLeader, "410105001001")
	li := e.signIn("lisi", auth.RoleGridLeader, "410105001001")
	zhao := e.signIn("zhaolei", auth.RoleGridLeader, "410105002001")
	startAt := func(m *member, at time.Time) float64 {
		t.Helper()
		r := m.do("POST", "/api/v1/patrols", `{"started_at":"`+at.Format(time.RFC3339)+`"}`)
		return want(t, "start", r, http.StatusCreated, "")["id"].(float64)
	}
	old := map[*member]float64{}
	for _, m := range []*member{wang, li} {
		old[m] = startAt(m, t0)
		want(t, "points", m.do("POST", fmt.Sprintf("/api/v1/patrols/%v/points", old[m]), points(patrolInside, t0, 0, time.Minute)), http.StatusOK, "")
	}
	e.clock.Add(10 * time.Hour) // the phone was lost; another, hours later (within the sessions' 12 h)
	tap := e.clock.Now().Add(-3 * time.Second)

	// This server: one request.
	r, steps := wang.fieldStart("phone-b-start-0001", tap)
	p := want(t, "start", r, http.StatusCreated, "")
	if p["closed_patrol_id"] != old[wang] || !timeOf(t, p["started_at"]).Equal(tap) || fmt.Sprint(steps) != "[start 201]" {
		t.Errorf("start: %v %s", steps, r.body)
	}
	got := want(t, "old", wang.do("GET", fmt.Sprintf("/api/v1/patrols/%v", old[wang]), ""), http.StatusOK, "")
	if got["active"] != false || !timeOf(t, got["ended_at"]).Equal(t0.Add(time.Minute)) {
		t.Errorf("the old patrol: %v, want it ended at its last point", got)
	}
	if _, ok := got["closed_patrol_id"]; ok {
		t.Errorf("a patrol read has closed_patrol_id: %v", got)
	}
	r = wang.do("POST", "/api/v1/patrols", `{"started_at":"`+tap.Format(time.RFC3339Nano)+`"}`, "Idempotency-Key", "phone-b-start-0001")
	if want(t, "replay", r, http.StatusOK, "")["id"] != p["id"] || r.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: %s", r.body)
	}

	// A phone the old server answered 409 ended the old patrol with {}
	// (now, after its tap); its next try of the start succeeds.
	want(t, "end {}", li.do("POST", fmt.Sprintf("/api/v1/patrols/%v/end", old[li]), `{}`), http.StatusOK, "")
	r, steps = li.fieldStart("phone-b-start-0002", tap)
	if p := want(t, "start after end {}", r, http.StatusCreated, ""); p["closed_patrol_id"] != old[li] || fmt.Sprint(steps) != "[start 201]" {
		t.Errorf("start after end {}: %v %s", steps, r.body)
	}
	got = want(t, "old", li.do("GET", fmt.Sprintf("/api/v1/patrols/%v", old[li]), ""), http.StatusOK, "")
	if !timeOf(t, got["ended_at"]).Equal(t0.Add(time.Minute)) {
		t.Errorf("li's old patrol: %v, want it ended at its last point", got)
	}

	// A patrol begun after the tap (a phone whose clock is behind): 409
	// naming it open; the app ends it and tries again: 409 naming it.
	now := e.clock.Now()
	begun := startAt(zhao, now.Add(-time.Minute))
	r, steps = zhao.fieldStart("phone-c-start-0001", now.Add(-2*time.Minute))
	want(t, "start before an ended patrol", r, http.StatusConflict, "conflict", "patrol_id", begun, "open_patrol_id", nil)
	if fmt.Sprint(steps) != "[start 409 end 200 start 409]" {
		t.Errorf("steps %v", steps)
	}

	// {} with the last point 2 minutes ahead of the server's clock.
	id := p["id"].(float64)
	path := fmt.Sprintf("/api/v1/patrols/%v", id)
	want(t, "points ahead", wang.do("POST", path+"/points", points(patrolInside, now, 0, 2*time.Minute)), http.StatusOK, "")
	ended := want(t, "end {}", wang.do("POST", path+"/end", `{}`), http.StatusOK, "")
	if ended["active"] != false || !timeOf(t, ended["ended_at"]).Equal(now.Add(2*time.Minute)) {
		t.Errorf("end {}: %v, want it ended at its last point", ended)
	}

	// The audit trail: the old patrol closed by the member's start.
	var trail []string
	for _, x := range want(t, "audit", e.do("GET", fmt.Sprintf("/api/v1/audit?target_type=patrol&target_id=%v", old[wang]), nil), http.StatusOK, "")["entries"].([]any) {
		x := x.(map[string]any)
		trail = append(trail, fmt.Sprint(x["action"], " ", x["actor"].(map[string]any)["name"], " ", x["summary"].(map[string]any)["closed_by_patrol_id"]))
	}
	if wantTrail := []string{fmt.Sprintf("patrol.end wangfang %v", id), "patrol.start wangfang <nil>"}; fmt.Sprint(trail) != fmt.Sprint(wantTrail) {
		t.Errorf("audit trail %v, want %v", trail, wantTrail)
	}
}
