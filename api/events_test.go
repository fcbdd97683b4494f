package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"gridwatch/api"
	"gridwatch/audit"
	"gridwatch/auth"
	"gridwatch/geo"
	"gridwatch/incident"
	"gridwatch/internal/events"
	"gridwatch/internal/testdb"
)

// eventWait bounds every wait for something on a stream.
const eventWait = 15 * time.Second

// newEventsEnv is a server over the demo city with a running events hub.
// A hub option given replaces the default ones.
func newEventsEnv(t *testing.T, opts ...events.HubOptions) *authEnv {
	t.Helper()
	var hub *events.Hub
	ae := &authEnv{}
	e := newEnv(t, func(d *api.Deps) {
		var loc *geo.Locator
		loc, hub = ae.wireWithHub(t, d, opts...)
		d.Incidents = incident.NewService(ae.pool, incident.Options{Locator: loc})
	})
	ae.env = e
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	awaitHub(t, hub)
	ae.importDemo()
	return ae
}

// wireWithHub points d's grids, locator, accounts and audit at stores over
// a fresh database (ae.pool), as the events and video tests have them, and
// gives d an events hub over it, rechecked every 100 ms. It returns the
// locator, for the incident service the caller builds, and the hub, which
// the caller runs and awaits (awaitHub).
func (ae *authEnv) wireWithHub(t *testing.T, d *api.Deps, opts ...events.HubOptions) (*geo.Locator, *events.Hub) {
	ae.pool = testdb.New(t)
	store := geo.NewStore(ae.pool, geo.StoreOptions{})
	loc := geo.NewLocator(store)
	d.Grids, d.Locator = store, loc
	d.Auth = auth.NewService(ae.pool, auth.Options{BootstrapToken: adminToken, Hash: cheapHash})
	d.Audit = audit.NewStore(ae.pool)
	opt := events.HubOptions{Heartbeat: 100 * time.Millisecond}
	if len(opts) > 0 {
		opt = opts[0]
	}
	hub := events.NewHub(ae.pool, opt)
	d.Events, d.EventsRecheck = hub, 100*time.Millisecond
	return loc, hub
}

// awaitHub fails the test unless the running hub listens within eventWait.
func awaitHub(t *testing.T, hub *events.Hub) {
	t.Helper()
	select {
	case <-hub.Ready():
	case <-time.After(eventWait):
		t.Fatal("the events hub is not listening")
	}
}

// sseEvent is one dispatched Server-Sent Event, or a comment.
type sseEvent struct {
	id, event, data string
	hasID           bool
	comment         string
}

// stream is an open GET /api/v1/events.
type stream struct {
	t      *testing.T
	res    *http.Response
	events chan sseEvent
}

// openStream opens the event stream as token and waits until it is
// subscribed (its first comment); lastID, when not empty, is sent as
// Last-Event-ID.
func (e *authEnv) openStream(token, lastID string) *stream {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/api/v1/events", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	s := &stream{t: e.t, res: res, events: make(chan sseEvent, 1000)}
	e.t.Cleanup(func() { cancel(); res.Body.Close() })
	if res.StatusCode != 200 {
		e.t.Fatalf("GET /api/v1/events: %d", res.StatusCode)
	}
	go s.read()
	if c := s.next(); c.comment != "connected" {
		e.t.Fatalf("first thing on the stream: %+v, want the connected comment", c)
	}
	return s
}

func (s *stream) read() {
	defer close(s.events)
	sc := bufio.NewScanner(s.res.Body)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "":
			if line == "" {
				if ev.event != "" || ev.data != "" || ev.hasID {
					s.events <- ev
				}
				ev = sseEvent{}
			} else {
				s.events <- sseEvent{comment: value}
			}
		case "id":
			ev.id, ev.hasID = value, true
		case "event":
			ev.event = value
		case "data":
			ev.data = value
		}
	}
}

// next returns the next event or comment, failing after a deadline.
func (s *stream) next() sseEvent {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			s.t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(eventWait):
		s.t.Fatal("nothing on the stream within the deadline")
	}
	return sseEvent{}
}

// nextEvent skips comments (heartbeats) and returns the next event.
func (s *stream) nextEvent() sseEvent {
	s.t.Helper()
	for {
		if ev := s.next(); ev.comment == "" {
			return ev
		}
	}
}

// eventData decodes an event's data.
func eventData(t *testing.T, ev sseEvent) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(ev.data), &m); err != nil {
		t.Fatalf("event data %q: %v", ev.data, err)
	}
	return m
}

// report files an incident at lon, lat as the admin and returns its id and
// its grid's code ("" when unassigned).
func (e *authEnv) report(lon, lat float64) (int64, string) {
	e.t.Helper()
	tok := e.token
	e.token = adminToken
	defer func() { e.token = tok }()
	body := fmt.Sprintf(`{"source":"hotline","category":"0101","title":"暴露垃圾","location":{"type":"Point","coordinates":[%v,%v]}}`, lon, lat)
	r := e.do("POST", "/api/v1/incidents", []byte(body))
	if r.status != http.StatusCreated {
		e.t.Fatalf("report: %d %s", r.status, r.body)
	}
	in := r.json(e.t)
	code := ""
	if g, ok := in["grid"].(map[string]any); ok {
		code = g["code"].(string)
	}
	return int64(in["id"].(float64)), code
}

func TestEventsStream(t *testing.T) {
	e := newEventsEnv(t)
	s := e.openStream(adminToken, "")
	for h, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := s.res.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	id, code := e.report(113.6355, 34.833)
	ev := s.nextEvent()
	if ev.event != events.IncidentCreated {
		t.Fatalf("event %+v, want %s", ev, events.IncidentCreated)
	}
	if pos, err := events.ParsePosition(ev.id); err != nil || pos.Last <= 0 {
		t.Errorf("event id %q, want a position in the feed (%v)", ev.id, err)
	}
	data := eventData(t, ev)
	if data["id"] != float64(id) || data["status"] != "reported" || data["grid_id"] == nil {
		t.Errorf("data %s: want id %d, status reported and the grid (%s)", ev.data, id, code)
	}
	// An idle stream sends keep-alive comments.
	for ev := s.next(); ev.comment != "ping"; ev = s.next() {
	}
}

func TestEventsReplayWithLastEventID(t *testing.T) {
	e := newEventsEnv(t)
	s := e.openStream(adminToken, "")
	first, _ := e.report(113.6355, 34.833)
	seen := s.nextEvent()
	if eventData(t, seen)["id"] != float64(first) {
		t.Fatalf("first event %+v, want incident %d", seen, first)
	}
	// Disconnected: two more reports and a transition are missed.
	s.res.Body.Close()
	second, _ := e.report(113.7445, 34.767)
	third, _ := e.report(113.6355, 34.833)
	e.token = adminToken
	if r := e.do("POST", fmt.Sprintf("/api/v1/incidents/%d/transitions", second), []byte(`{"to":"registered","version":1}`)); r.status != 200 {
		t.Fatalf("transition: %d %s", r.status, r.body)
	}
	want := []string{
		fmt.Sprintf("%s %d", events.IncidentCreated, second),
		fmt.Sprintf("%s %d", events.IncidentCreated, third),
		fmt.Sprintf("%s %d", events.IncidentChanged, second),
	}
	got := func(s *stream) []string {
		var out []string
		for range want {
			ev := s.nextEvent()
			out = append(out, fmt.Sprintf("%s %v", ev.event, eventData(t, ev)["id"]))
		}
		return out
	}
	r := e.openStream(adminToken, seen.id)
	if g := got(r); fmt.Sprint(g) != fmt.Sprint(want) {
		t.Errorf("replay after %s: %v, want %v", seen.id, g, want)
	}
	// EventSource polyfills send the id as a query parameter.
	ctx, cancel := context.WithTimeout(context.Background(), eventWait)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/api/v1/events?last_event_id="+seen.id, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	q := &stream{t: t, res: res, events: make(chan sseEvent, 100)}
	t.Cleanup(func() { cancel(); res.Body.Close() })
	go q.read()
	if g := got(q); fmt.Sprint(g) != fmt.Sprint(want) {
		t.Errorf("replay after ?last_event_id=%s: %v, want %v", seen.id, g, want)
	}
	// An id from no stream of ours is refused, naming the header.
	e.token = adminToken
	for _, bad := range []string{"abc", "-1", seen.id + "/" + seen.id, "9/5,3"} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/events", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Last-Event-ID", bad)
		res, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 400 {
			t.Errorf("Last-Event-ID %q: %d, want 400", bad, res.StatusCode)
		}
	}
	// An id older than the replay window (or unknown): reset, then live.
	old := e.openStream(adminToken, "999999")
	if ev := old.nextEvent(); ev.event != events.Reset {
		t.Errorf("unknown Last-Event-ID: %+v, want a reset", ev)
	}
}

// TestEventsStreamResumesAfterABurst: a burst larger than a subscriber's
// queue (the feed catching up after the database came back) does not end
// the stream: it goes on from the table, on the same response, and every
// event of the burst arrives once, in order.
func TestEventsStreamResumesAfterABurst(t *testing.T) {
	e := newEventsEnv(t, events.HubOptions{Heartbeat: time.Minute, Buffer: 4})
	s := e.openStream(adminToken, "")
	first, _ := e.report(113.6355, 34.833)
	if ev := s.nextEvent(); eventData(t, ev)["id"] != float64(first) {
		t.Fatalf("first event %+v, want incident %d", ev, first)
	}
	// One transaction, one notification, 200 events: far more than the
	// queue of 4 takes while the stream writes.
	const burst = 200
	if _, err := e.pool.Exec(context.Background(), `INSERT INTO events (type, data)
		SELECT 'incident.changed', jsonb_build_object('n', n) FROM generate_series(1, $1) n`, burst); err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= burst; n++ {
		ev := s.next()
		if ev.comment != "" {
			t.Fatalf("event %d of the burst: comment %q (the stream started again?)", n, ev.comment)
		}
		if got := eventData(t, ev)["n"]; ev.event != events.IncidentChanged || got != float64(n) {
			t.Fatalf("event %d of the burst: %s %v", n, ev.event, got)
		}
	}
	if next, _ := e.report(113.6355, 34.833); eventData(t, s.nextEvent())["id"] != float64(next) {
		t.Errorf("after the burst: want incident %d live", next)
	}
}

// TestEventsScope: a grid leader's token scoped to one community hears only
// of incidents in that community's grids; the admin hears of all.
func TestEventsScope(t *testing.T) {
	e := newEventsEnv(t)
	leader := e.tokenFor(auth.RoleGridLeader, "410105001001")
	ls := e.openStream(leader, "")
	as := e.openStream(adminToken, "")

	outside, outCode := e.report(113.7445, 34.767)
	if strings.HasPrefix(outCode, "410105001001") {
		t.Fatalf("the outside point fell in grid %s, inside the leader's community", outCode)
	}
	// An event bound to no grid (bulk ingest) is for unscoped viewers only.
	e.token = adminToken
	if r := e.do("POST", "/api/v1/incidents/bulk", []byte(`{"source":"sensor","category":"0101","title":"暴露垃圾","location":{"type":"Point","coordinates":[113.7445,34.767]}}`+"\n")); r.status != 200 {
		t.Fatalf("bulk: %d %s", r.status, r.body)
	}
	inside, inCode := e.report(113.6355, 34.833)
	if !strings.HasPrefix(inCode, "410105001001") {
		t.Fatalf("the inside point fell in grid %q, not in the leader's community", inCode)
	}

	if ev := ls.nextEvent(); ev.event != events.IncidentCreated || eventData(t, ev)["id"] != float64(inside) {
		t.Errorf("leader's first event: %+v, want the creation of incident %d (not %d, nor the bulk)", ev, inside, outside)
	}
	// A bulk upload that touches one of the leader's grids reaches them,
	// without naming the other grids it touched.
	e.token = adminToken
	if r := e.do("POST", "/api/v1/incidents/bulk", []byte(`{"source":"sensor","category":"0101","title":"暴露垃圾","location":{"type":"Point","coordinates":[113.6355,34.833]}}`+"\n")); r.status != 200 {
		t.Fatalf("bulk inside: %d %s", r.status, r.body)
	}
	if ev := ls.nextEvent(); ev.event != events.IncidentsBulk || !strings.Contains(ev.data, `"in_scope":true`) || strings.Contains(ev.data, "grids") {
		t.Errorf("leader's bulk event: %+v, want incident.bulk in_scope naming no grids", ev)
	}
	var got []string
	for range 3 {
		ev := as.nextEvent()
		got = append(got, fmt.Sprintf("%s %v", ev.event, eventData(t, ev)["id"]))
	}
	want := []string{fmt.Sprintf("incident.created %d", outside), "incident.bulk <nil>", fmt.Sprintf("incident.created %d", inside)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("admin's events: %v, want %v", got, want)
	}
}

// TestEventsRoles: an integration token is refused (it reads its own
// reports through the incidents API); a GIS editor, who may not read
// incidents, streams but hears of none.
func TestEventsRoles(t *testing.T) {
	e := newEventsEnv(t)
	e.token = e.tokenFor(auth.RoleIntegration)
	if r := e.do("GET", "/api/v1/events", nil); r.status != 403 || errCode(r) != "forbidden" {
		t.Errorf("integration: %d %s, want 403 forbidden", r.status, r.body)
	}
	e.token = adminToken
	gis := e.openStream(e.tokenFor(auth.RoleGISEditor), "")
	admin := e.openStream(adminToken, "")
	e.report(113.6355, 34.833)
	// Once the admin has it, the hub has handed it to every subscriber; a
	// stream writes what it has queued before a second keep-alive.
	admin.nextEvent()
	for n := 0; n < 2; {
		ev := gis.next()
		if ev.comment == "" {
			t.Fatalf("GIS editor received %+v", ev)
		}
		if ev.comment == "ping" {
			n++
		}
	}
}

// TestEventsStreamEndsWithItsToken: revoking the token ends an open stream.
func TestEventsStreamEndsWithItsToken(t *testing.T) {
	e := newEventsEnv(t)
	body, _ := json.Marshal(map[string]any{"name": "wall display", "role": "commander"})
	created := e.do("POST", "/api/v1/tokens", body).json(t)
	secret := created["secret"].(string)
	id := int64(created["token"].(map[string]any)["id"].(float64))
	s := e.openStream(secret, "")
	if r := e.do("DELETE", fmt.Sprintf("/api/v1/tokens/%d", id), nil); r.status != 204 {
		t.Fatalf("revoke: %d", r.status)
	}
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatal("the stream ended without saying why")
			}
			if ev.event == "unauthenticated" {
				if _, more := <-s.events; more {
					t.Error("the stream went on after unauthenticated")
				}
				return
			}
		case <-time.After(eventWait):
			t.Fatal("the stream outlived its revoked token")
		}
	}
}

// bulkLines posts NDJSON lines as the admin and returns the new cases' ids
// in line order.
func (e *authEnv) bulkLines(lines []string) []int64 {
	e.t.Helper()
	tok := e.token
	e.token = adminToken
	defer func() { e.token = tok }()
	r := e.do("POST", "/api/v1/incidents/bulk", []byte(strings.Join(lines, "\n")+"\n"))
	if r.status != 200 {
		e.t.Fatalf("bulk: %d %s", r.status, r.body)
	}
	var ids []int64
	for _, l := range strings.Split(strings.TrimSpace(string(r.body)), "\n") {
		var res struct {
			Status string `json:"status"`
			ID     int64  `json:"id"`
		}
		if err := json.Unmarshal([]byte(l), &res); err != nil {
			e.t.Fatalf("bulk answer line %q: %v", l, err)
		}
		if res.Status == "created" {
			ids = append(ids, res.ID)
		}
	}
	return ids
}

func bulkLine(lon, lat float64) string {
	return fmt.Sprintf(`{"source":"sensor","category":"0101","title":"暴露垃圾","location":{"type":"Point","coordinates":[%v,%v]}}`, lon, lat)
}

// TestBulkEventNamesNewCases: an incident.bulk event names the new cases
// each subscriber may see (ids, at most 100, with "more" past that), and
// nothing of the others.
func TestBulkEventNamesNewCases(t *testing.T) {
	e := newEventsEnv(t)
	leader := e.tokenFor(auth.RoleGridLeader, "410105001001")
	ls := e.openStream(leader, "")
	as := e.openStream(adminToken, "")
	in, out, nowhere := [2]float64{113.6355, 34.833}, [2]float64{113.7445, 34.767}, [2]float64{120, 30}
	type want struct {
		created int
		ids     []int64
		more    bool
	}
	check := func(t *testing.T, who string, s *stream, w want) {
		t.Helper()
		ev := s.nextEvent()
		if ev.event != events.IncidentsBulk {
			t.Fatalf("%s: event %+v, want incident.bulk", who, ev)
		}
		var got struct {
			Created int     `json:"created"`
			IDs     []int64 `json:"ids"`
			More    bool    `json:"more"`
		}
		if err := json.Unmarshal([]byte(ev.data), &got); err != nil {
			t.Fatal(err)
		}
		if got.Created != w.created || fmt.Sprint(got.IDs) != fmt.Sprint(w.ids) || got.More != w.more {
			t.Errorf("%s: created %d ids %v more %v; want created %d ids %v more %v (%s)", who, got.Created, got.IDs, got.More, w.created, w.ids, w.more, ev.data)
		}
	}
	t.Run("a few cases", func(t *testing.T) {
		ids := e.bulkLines([]string{bulkLine(in[0], in[1]), bulkLine(out[0], out[1]), bulkLine(nowhere[0], nowhere[1]), bulkLine(in[0], in[1])})
		if len(ids) != 4 {
			t.Fatalf("created %v, want 4", ids)
		}
		check(t, "leader", ls, want{2, []int64{ids[0], ids[3]}, false})
		check(t, "admin", as, want{4, ids, false})
	})
	t.Run("more than 100", func(t *testing.T) {
		lines := []string{}
		for range 105 {
			lines = append(lines, bulkLine(in[0], in[1]))
		}
		lines = append(lines, bulkLine(out[0], out[1]))
		ids := e.bulkLines(lines)
		check(t, "leader", ls, want{105, ids[:100], true})
		check(t, "admin", as, want{106, ids[:100], true})
	})
}

// TestEventsGBDevices: a GB/T 28181 device's online and offline events
// reach those who manage cameras (an admin, an operator), not a
// commander.
func TestEventsGBDevices(t *testing.T) {
	e := newEventsEnv(t)
	commander := e.openStream(e.tokenFor(auth.RoleCommander), "")
	operator := e.openStream(e.tokenFor(auth.RoleOperator), "")
	admin := e.openStream(adminToken, "")
	ctx := context.Background()
	if err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		return events.Publish(ctx, tx, "gb.device.offline", nil, map[string]any{"id": "32010600001180000001", "reason": "test"})
	}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*stream{admin, operator} {
		if ev := s.nextEvent(); ev.event != "gb.device.offline" {
			t.Errorf("got %+v, want gb.device.offline", ev)
		}
	}
	for n := 0; n < 2; {
		ev := commander.next()
		if ev.comment == "" {
			t.Fatalf("a commander received %+v", ev)
		}
		if ev.comment == "ping" {
			n++
		}
	}
}
