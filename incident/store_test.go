package incident

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"gridwatch"
	"gridwatch/geo"
	"gridwatch/geo/geotest"
	"gridwatch/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

// city is a store over the demo city with an in-process locator, each
// grid-level cell's interior point, and a clock the test moves.
type city struct {
	svc      *Service
	grids    *geo.Store
	loc      *geo.Locator
	inside   map[string][2]float64 // grid code → a point inside it
	features []geo.ImportFeature   // the city's, as imported
	byCode   map[string]geo.Grid
	now      time.Time
	mu       sync.Mutex
}

func (c *city) clock() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *city) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newCity(t testing.TB) *city {
	t.Helper()
	demo := geotest.Demo(t)
	loc := geotest.Locator(t, demo.Grids)
	c := &city{grids: demo.Grids, features: demo.Features, loc: loc, inside: map[string][2]float64{}, byCode: map[string]geo.Grid{}, now: time.Now()}
	c.svc = NewService(demo.Pool, Options{Locator: loc, Now: c.clock})
	list, _, err := demo.Grids.List(context.Background(), geo.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range list {
		c.byCode[g.Code] = g
	}
	for _, f := range geotest.Cells(demo.Features) {
		c.inside[f.Code] = geotest.Middle(f) // the demo cells are convex
	}
	return c
}

func (c *city) report(t testing.TB, code string, mutate ...func(*NewIncident)) *Incident {
	t.Helper()
	p := c.inside[code]
	n := NewIncident{Source: "hotline", Category: "0101", Title: "暴露垃圾", Lon: p[0], Lat: p[1], ReportedAt: c.clock(), Priority: "normal"}
	for _, m := range mutate {
		m(&n)
	}
	in, created, err := c.svc.Create(context.Background(), n, Reporter{Name: "tester"}, Viewer{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if !created {
		t.Fatalf("create: got an existing incident %d", in.ID)
	}
	return in
}

// anyGridCode is the lowest grid-level code: the same grid every call.
func anyGridCode(c *city) string {
	best := ""
	for code := range c.inside {
		if best == "" || code < best {
			best = code
		}
	}
	return best
}

func TestAssignment(t *testing.T) {
	c := newCity(t)
	code := anyGridCode(c)
	in := c.report(t, code)
	if in.Grid == nil || in.Grid.Code != code || in.Unassigned {
		t.Errorf("inside %s: grid %+v, want %s", code, in.Grid, code)
	}
	if in.Status != Reported || in.Version != 1 || in.Deadline.Sub(in.ReportedAt) != 24*time.Hour {
		t.Errorf("new incident %+v: want reported, version 1, deadline 24 h (0101)", in)
	}
	// Outside every grid: stored, flagged, never dropped.
	out, _, err := c.svc.Create(context.Background(), NewIncident{Source: "patrol", Category: "0502", Title: "占道经营", Lon: 120, Lat: 30, ReportedAt: c.clock(), Priority: "high"}, Reporter{Name: "tester"}, Viewer{})
	if err != nil || out.Grid != nil || !out.Unassigned {
		t.Fatalf("outside: %+v, %v; want stored and unassigned", out, err)
	}
	list, _, err := c.svc.List(context.Background(), Filter{Unassigned: true}, Viewer{})
	if err != nil || len(list) != 1 || list[0].ID != out.ID {
		t.Errorf("unassigned filter: %v, %v", list, err)
	}
	// On a vertex shared by several grids: the lowest code, as locate says.
	vertex := geotest.SharedVertex(c.features)
	on, _, err := c.svc.Create(context.Background(), NewIncident{Source: "sensor", Category: "0404", Title: "积水", Lon: vertex[0], Lat: vertex[1], ReportedAt: c.clock(), Priority: "urgent"}, Reporter{Name: "tester"}, Viewer{})
	want, _ := c.loc.Assign(vertex[0], vertex[1])
	if err != nil || on.Grid == nil || on.Grid.ID != want.ID {
		t.Errorf("on a shared vertex: %+v, %v; want %s", on.Grid, err, want.Code)
	}
	chain := c.loc.Locate(vertex[0], vertex[1])
	if len(chain) == 0 || chain[0].Code != want.Code {
		t.Errorf("locate disagrees: %v", chain)
	}
}

// TestAssignmentWithoutIndex: with no in-process index (or a stale one)
// PostGIS assigns, with the same answer.
func TestAssignmentWithoutIndex(t *testing.T) {
	c := newCity(t)
	sqlOnly := NewService(c.svc.pool, Options{Now: c.clock})
	for code, p := range c.inside {
		in, _, err := sqlOnly.Create(context.Background(), NewIncident{Source: "patrol", Category: "0101", Title: "x", Lon: p[0], Lat: p[1], ReportedAt: c.clock(), Priority: "low"}, Reporter{Name: "t"}, Viewer{})
		if err != nil || in.Grid == nil || in.Grid.Code != code {
			t.Fatalf("%s: %+v, %v", code, in, err)
		}
		break
	}
}

func TestIdempotentRetry(t *testing.T) {
	c := newCity(t)
	code := anyGridCode(c)
	first := c.report(t, code, func(n *NewIncident) { n.ExternalID = "12345-0001" })
	again, created, err := c.svc.Create(context.Background(), NewIncident{Source: "hotline", ExternalID: "12345-0001", Category: "0101", Title: "retry", Lon: 0, Lat: 0, ReportedAt: c.clock(), Priority: "normal"}, Reporter{Name: "tester"}, Viewer{})
	if err != nil || created || again.ID != first.ID || again.Title != first.Title {
		t.Errorf("retry by external id: %+v created=%v %v; want incident %d unchanged", again, created, err, first.ID)
	}
	// The same external id from another source is another incident.
	other := c.report(t, code, func(n *NewIncident) { n.ExternalID = "12345-0001"; n.Source = "citizen" })
	if other.ID == first.ID {
		t.Error("another source's external id was taken as a retry")
	}
	p := c.inside[code]
	keyed := NewIncident{Source: "hotline", Category: "0101", Title: "暴露垃圾", Lon: p[0], Lat: p[1], ReportedAt: c.clock(), Priority: "normal", IdempotencyKey: "k-1"}
	byKey, _, err := c.svc.Create(context.Background(), keyed, Reporter{Name: "tester"}, Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	again, created, err = c.svc.Create(context.Background(), keyed, Reporter{Name: "tester"}, Viewer{})
	if err != nil || created || again.ID != byKey.ID {
		t.Errorf("retry by key: %d created=%v %v; want %d", again.ID, created, err, byKey.ID)
	}
	// Concurrent retries: one incident.
	var wg sync.WaitGroup
	ids := make([]int64, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := c.inside[code]
			in, _, err := c.svc.Create(context.Background(), NewIncident{Source: "hotline", ExternalID: "race", Category: "0101", Title: "race", Lon: p[0], Lat: p[1], ReportedAt: c.clock(), Priority: "normal"}, Reporter{Name: "t"}, Viewer{})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = in.ID
		}()
	}
	wg.Wait()
	for _, id := range ids[1:] {
		if id != ids[0] {
			t.Fatalf("concurrent retries made several incidents: %v", ids)
		}
	}
}

func all(Stage) bool { return true }

// TestWorkflow walks each step of the table from every status: allowed
// steps move the case and bump its version; the others are 409s that list
// what is allowed.
func TestWorkflow(t *testing.T) {
	c := newCity(t)
	ctx := context.Background()
	code := anyGridCode(c)
	g := c.byCode[code]
	if _, err := c.svc.AddStaff(ctx, Staff{GridID: g.ID, Role: "leader", Name: "张伟"}); err != nil {
		t.Fatal(err)
	}
	// The happy path, with a return and a failed verification on the way.
	path := []Status{Registered, Dispatched, Returned, Dispatched, InProgress, Handled, InProgress, Handled, Verified, Closed}
	in := c.report(t, code)
	for i, to := range path {
		out, err := c.svc.Transition(ctx, in.ID, TransitionRequest{To: to, Version: in.Version, Note: fmt.Sprint("step ", i)}, Viewer{}, "tester", all)
		if err != nil {
			t.Fatalf("step %d %s → %s: %v", i, in.Status, to, err)
		}
		if out.Status != to || out.Version != in.Version+1 {
			t.Fatalf("step %d: %s v%d, want %s v%d", i, out.Status, out.Version, to, in.Version+1)
		}
		in = out
	}
	if in.ClosedAt == nil || in.RegisteredAt == nil || in.Assignee == nil || in.Assignee.Name != "张伟" {
		t.Errorf("closed case %+v: want registered_at, closed_at and the leader as assignee", in)
	}
	if len(in.History) != len(path)+1 || in.History[1].Note != "step 0" || in.History[1].Actor != "tester" {
		t.Errorf("history has %d entries (%+v), want the report and %d steps", len(in.History), in.History[:2], len(path))
	}
	// Every illegal step from every status is refused with the allowed list.
	for _, from := range Statuses() {
		for _, to := range Statuses() {
			if _, ok := StageOf(from, to); ok {
				continue
			}
			err := checkIllegal(c, t, from, to)
			if gridwatch.ErrorCode(err) != gridwatch.EConflict {
				t.Errorf("%s → %s: %v, want 409", from, to, err)
				continue
			}
			if !strings.Contains(err.Error(), "may become") {
				t.Errorf("%s → %s: message %q does not list the allowed steps", from, to, err)
			}
		}
	}
}

// checkIllegal brings a fresh case to status from and tries to move it to to.
func checkIllegal(c *city, t *testing.T, from, to Status) error {
	t.Helper()
	ctx := context.Background()
	code := anyGridCode(c)
	route := map[Status][]Status{
		Reported: {}, Registered: {Registered}, Dispatched: {Registered, Dispatched}, Returned: {Registered, Dispatched, Returned},
		InProgress: {Registered, Dispatched, InProgress}, Handled: {Registered, Dispatched, InProgress, Handled},
		Verified: {Registered, Dispatched, InProgress, Handled, Verified}, Closed: {Registered, Dispatched, InProgress, Handled, Verified, Closed},
		Rejected: {Rejected},
	}
	in := c.report(t, code)
	for _, st := range route[from] {
		var err error
		if in, err = c.svc.Transition(ctx, in.ID, TransitionRequest{To: st, Version: in.Version}, Viewer{}, "t", all); err != nil {
			t.Fatalf("setting up %s: %v", from, err)
		}
	}
	_, err := c.svc.Transition(ctx, in.ID, TransitionRequest{To: to, Version: in.Version}, Viewer{}, "t", all)
	return err
}

func TestTransitionChecks(t *testing.T) {
	c := newCity(t)
	ctx := context.Background()
	code := anyGridCode(c)
	in := c.report(t, code)
	// Stale version.
	if _, err := c.svc.Transition(ctx, in.ID, TransitionRequest{To: Registered, Version: 7}, Viewer{}, "t", all); gridwatch.ErrorCode(err) != gridwatch.EConflict ||
		gridwatch.ErrorDetails(err)["current_version"] != 1 {
		t.Errorf("stale version: %v", err)
	}
	// A role that may only handle cannot register.
	handleOnly := func(s Stage) bool { return s == StageHandle }
	if _, err := c.svc.Transition(ctx, in.ID, TransitionRequest{To: Registered, Version: 1}, Viewer{}, "t", handleOnly); gridwatch.ErrorCode(err) != gridwatch.EForbidden {
		t.Errorf("handler registering: %v, want forbidden", err)
	}
	in, _ = c.svc.Transition(ctx, in.ID, TransitionRequest{To: Registered, Version: 1}, Viewer{}, "t", all)
	// Dispatch to a grid without a leader: a clear error naming the field.
	if _, err := c.svc.Transition(ctx, in.ID, TransitionRequest{To: Dispatched, Version: in.Version}, Viewer{}, "t", all); gridwatch.ErrorDetails(err)["field"] != "assignee_id" {
		t.Errorf("dispatch without a leader: %v", err)
	}
	// Re-dispatch to another grid moves the case, explicitly.
	var other string
	for code2 := range c.inside {
		if code2 != code {
			other = code2
			break
		}
	}
	og := c.byCode[other]
	st, _ := c.svc.AddStaff(ctx, Staff{GridID: og.ID, Role: "leader", Name: "李娜"})
	out, err := c.svc.Transition(ctx, in.ID, TransitionRequest{To: Dispatched, Version: in.Version, GridID: &og.ID}, Viewer{}, "t", all)
	if err != nil || out.Grid.ID != og.ID || out.Assignee == nil || out.Assignee.ID != st.ID {
		t.Errorf("re-dispatch: %+v, %v", out, err)
	}
	// A grid leader scoped elsewhere does not see it.
	if _, err := c.svc.Get(ctx, in.ID, Viewer{Grids: []int64{c.byCode[code].ID}}); gridwatch.ErrorCode(err) != gridwatch.ENotFound {
		t.Errorf("scoped viewer: %v, want not found", err)
	}
	if _, err := c.svc.Get(ctx, in.ID, Viewer{Grids: []int64{*c.byCode[other].ParentID}}); err != nil {
		t.Errorf("viewer scoped to the community: %v", err)
	}
}

// TestConcurrentTransitions: two dispatchers act on the same version at
// once; one wins, the other gets 409, and the history has one step.
func TestConcurrentTransitions(t *testing.T) {
	c := newCity(t)
	ctx := context.Background()
	in := c.report(t, anyGridCode(c))
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, to := range []Status{Registered, Rejected} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.svc.Transition(ctx, in.ID, TransitionRequest{To: to, Version: in.Version}, Viewer{}, fmt.Sprint("user", i), all)
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
		} else if gridwatch.ErrorCode(err) != gridwatch.EConflict {
			t.Errorf("loser: %v, want 409", err)
		}
	}
	got, _ := c.svc.Get(ctx, in.ID, Viewer{})
	if wins != 1 || got.Version != 2 || len(got.History) != 2 {
		t.Errorf("%d winners, version %d, %d history entries; want 1, 2, 2", wins, got.Version, len(got.History))
	}
}

func TestOverdue(t *testing.T) {
	c := newCity(t)
	ctx := context.Background()
	code := anyGridCode(c)
	fire := c.report(t, code, func(n *NewIncident) { n.Category = "0403" }) // 1 h
	c.report(t, code, func(n *NewIncident) { n.Category = "0601" })         // 72 h
	c.advance(2 * time.Hour)
	list, _, err := c.svc.List(ctx, Filter{Overdue: true}, Viewer{})
	if err != nil || len(list) != 1 || list[0].ID != fire.ID || !list[0].Overdue {
		t.Errorf("overdue: %+v, %v; want the fire only", list, err)
	}
}

func TestListFilters(t *testing.T) {
	c := newCity(t)
	ctx := context.Background()
	code := anyGridCode(c)
	g := c.byCode[code]
	for i := range 5 {
		c.report(t, code, func(n *NewIncident) { n.Category = []string{"0101", "0201", "0301", "0401", "0501"}[i] })
	}
	page1, next, err := c.svc.List(ctx, Filter{Limit: 3}, Viewer{})
	if err != nil || len(page1) != 3 || next == 0 {
		t.Fatalf("page 1: %d, next %d, %v", len(page1), next, err)
	}
	page2, next2, _ := c.svc.List(ctx, Filter{Limit: 3, Before: next}, Viewer{})
	if len(page2) != 2 || next2 != 0 || page2[0].ID >= page1[2].ID {
		t.Errorf("page 2: %d, next %d", len(page2), next2)
	}
	byClass, _, _ := c.svc.List(ctx, Filter{Category: "02"}, Viewer{})
	if len(byClass) != 1 || byClass[0].Category != "0201" {
		t.Errorf("category class filter: %+v", byClass)
	}
	street := c.byCode[code[:9]]
	if l, _, _ := c.svc.List(ctx, Filter{GridID: street.ID}, Viewer{}); len(l) != 5 {
		t.Errorf("grid filter with descendants (street %s): %d, want 5", street.Code, len(l))
	}
	if l, _, _ := c.svc.List(ctx, Filter{Statuses: []Status{Registered}}, Viewer{}); len(l) != 0 {
		t.Errorf("status filter: %d", len(l))
	}
	p := c.inside[code]
	if l, _, _ := c.svc.List(ctx, Filter{BBox: &geo.BBox{MinLon: p[0] - 0.0001, MinLat: p[1] - 0.0001, MaxLon: p[0] + 0.0001, MaxLat: p[1] + 0.0001}}, Viewer{}); len(l) != 5 {
		t.Errorf("bbox: %d", len(l))
	}
	if l, _, _ := c.svc.List(ctx, Filter{}, Viewer{Grids: []int64{g.ID + 100000}}); len(l) != 0 {
		t.Errorf("scope elsewhere: %d", len(l))
	}
}

func TestBulk(t *testing.T) {
	c := newCity(t)
	ctx := context.Background()
	code := anyGridCode(c)
	p := c.inside[code]
	var b strings.Builder
	good := func(ext string) string {
		return fmt.Sprintf(`{"source":"sensor","external_id":%q,"category":"0404","title":"积水","location":{"type":"Point","coordinates":[%v,%v]}}`, ext, p[0], p[1])
	}
	lines := []string{
		good("s-1"),
		`{"source":"sensor","title":"no category","location":{"type":"Point","coordinates":[113.6,34.7]}}`,
		good("s-2"),
		`not json`,
		"",
		good("s-1"), // a repeat of line 1
		`{"source":"sensor","category":"9999","title":"x","location":{"type":"Point","coordinates":[113.6,34.7]}}`,
		`{"source":"sensor","category":"0101","title":"x","location":{"type":"Point","coordinates":[34.7,113.6]}}`,
		`{"source":"sensor","category":"0101","title":"far away","location":{"type":"Point","coordinates":[100,30]}}`,
		`{"source":"sensor","category":"0101","title":"` + strings.Repeat("长", 30000) + `","location":{"type":"Point","coordinates":[100,30]}}`,
		good("s-3"),
	}
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	var results []LineResult
	sum, err := c.svc.Bulk(ctx, strings.NewReader(b.String()), geo.CRSWGS84, Reporter{Name: "bulk"}, func(r LineResult) error {
		results = append(results, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Lines != 10 || sum.Created != 4 || sum.Duplicates != 1 || sum.Errors != 5 {
		t.Errorf("summary %+v, want 10 lines: 4 created, 1 duplicate, 5 errors", sum)
	}
	want := map[int]string{1: "created", 2: "error", 3: "created", 4: "error", 6: "duplicate", 7: "error", 8: "error", 9: "created", 10: "error", 11: "created"}
	for i, r := range results {
		if want[r.Line] != r.Status {
			t.Errorf("line %d: %s, want %s (%+v)", r.Line, r.Status, want[r.Line], r.Error)
		}
		if i > 0 && results[i-1].Line >= r.Line {
			t.Errorf("results out of line order")
		}
		if r.Status == "error" && (r.Error == nil || r.Error.Message == "") {
			t.Errorf("line %d: error without a message", r.Line)
		}
	}
	if results[1].Error.Details["field"] != "category" {
		t.Errorf("line 2 error %+v: want the field named", results[1].Error)
	}
	if results[0].Grid == nil || results[4].ID != results[0].ID {
		t.Errorf("line 1 %+v / line 6 %+v: want a grid, and line 6 pointing at line 1's incident", results[0], results[4])
	}
	l, _, _ := c.svc.List(ctx, Filter{Unassigned: true}, Viewer{})
	if len(l) != 1 || l[0].Title != "far away" {
		t.Errorf("the point in no grid: %+v", l)
	}
}

func TestParseNewBadInput(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	base := `"source":"hotline","category":"0101","title":"t","location":{"type":"Point","coordinates":[113.6,34.7]}`
	tests := []struct{ body, field string }{
		{`{"category":"0101","title":"t","location":{"type":"Point","coordinates":[113.6,34.7]}}`, "source"},
		{`{"source":"fax",` + base[len(`"source":"hotline",`):] + `}`, "source"},
		{`{"source":"hotline","title":"t","location":{"type":"Point","coordinates":[113.6,34.7]}}`, "category"},
		{`{"source":"hotline","category":"0101","location":{"type":"Point","coordinates":[113.6,34.7]}}`, "title"},
		{`{"source":"hotline","category":"0101","title":"t"}`, "location"},
		{`{"source":"hotline","category":"0101","title":"t","location":{"type":"LineString","coordinates":[[1,2],[3,4]]}}`, "location"},
		{`{"source":"hotline","category":"0101","title":"t","location":{"type":"Point","coordinates":[34.7,113.6]}}`, "location"},
		{`{` + base + `,"reported_at":"2027-01-01T00:00:00Z"}`, "reported_at"},
		{`{` + base + `,"reported_at":"yesterday"}`, "reported_at"},
		{`{` + base + `,"priority":"asap"}`, "priority"},
		{`{` + base + `,"title":"` + strings.Repeat("长", 201) + `"}`, "title"},
		{`{` + base + `,"colour":"red"}`, "colour"},
		{`{` + base + `,"title":5}`, "title"},
	}
	for _, tt := range tests {
		_, err := ParseNew([]byte(tt.body), geo.CRSWGS84, now)
		if gridwatch.ErrorCode(err) != gridwatch.EInvalid || gridwatch.ErrorDetails(err)["field"] != tt.field {
			t.Errorf("%s: %v (details %v), want invalid naming %s", tt.body, err, gridwatch.ErrorDetails(err), tt.field)
		}
	}
	if _, err := ParseNew([]byte(`{"source":`), geo.CRSWGS84, now); gridwatch.ErrorCode(err) != gridwatch.EInvalidJSON {
		t.Errorf("bad JSON: %v", err)
	}
	n, err := ParseNew([]byte(`{`+base+`}`), geo.CRSGCJ02, now)
	if err != nil || n.Lon == 113.6 || !n.ReportedAt.IsZero() || n.Priority != "normal" { // Create dates it
		t.Errorf("defaults and GCJ-02: %+v, %v", n, err)
	}
}

// FuzzParseNew: any input is an incident with its required fields, or a
// user error; never a panic or an internal error.
func FuzzParseNew(f *testing.F) {
	f.Add([]byte(`{"source":"hotline","category":"0101","title":"t","location":{"type":"Point","coordinates":[113.6,34.7]},"reported_at":"2026-11-26T08:00:00+08:00"}`))
	f.Add([]byte(`{"location":{"type":"Point","coordinates":[1e400,0]}}`))
	f.Add([]byte(`[]`))
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := ParseNew(data, geo.CRSWGS84, now)
		if err != nil {
			if gridwatch.ErrorCode(err) == gridwatch.EInternal {
				t.Fatalf("internal error: %v", err)
			}
			return
		}
		if n.Source == "" || n.Category == "" || n.Title == "" || n.Lon < -180 || n.Lon > 180 || n.Lat < -90 || n.Lat > 90 {
			t.Fatalf("accepted %+v", n)
		}
	})
}

// TestKeysPerCaller: Idempotency-Keys and external ids are the caller's
// own: another caller using the same key first does not block a report,
// and the same caller sending it again gets the first incident.
func TestKeysPerCaller(t *testing.T) {
	c := newCity(t)
	ctx := context.Background()
	code := anyGridCode(c)
	p := c.inside[code]
	alice, bob, token := Reporter{Name: "alice", UserID: 101}, Reporter{Name: "bob", UserID: 102}, Reporter{Name: "app", TokenID: 7}
	for _, tc := range []struct {
		name string
		set  func(*NewIncident)
	}{
		{"Idempotency-Key", func(n *NewIncident) { n.IdempotencyKey = "shared-key" }},
		{"source and external_id", func(n *NewIncident) { n.ExternalID = "shared-ext" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := NewIncident{Source: "hotline", Category: "0101", Title: "暴露垃圾", Lon: p[0], Lat: p[1], ReportedAt: c.clock(), Priority: "normal"}
			tc.set(&n)
			ids := map[string]int64{}
			for _, by := range []Reporter{alice, bob, token} {
				in, created, err := c.svc.Create(ctx, n, by, Viewer{})
				if err != nil || !created {
					t.Fatalf("%s's report: created=%v err=%v; want a new incident of their own", by.Name, created, err)
				}
				for other, id := range ids {
					if id == in.ID {
						t.Errorf("%s got %s's incident %d; want their own", by.Name, other, id)
					}
				}
				ids[by.Name] = in.ID
			}
			for _, by := range []Reporter{alice, bob, token} {
				in, created, err := c.svc.Create(ctx, n, by, Viewer{})
				if err != nil || created || in.ID != ids[by.Name] {
					t.Errorf("%s again: id %v created=%v err=%v; want their first, %d", by.Name, in, created, err, ids[by.Name])
				}
			}
		})
	}
}

// TestIdempotencyMismatch: the same Idempotency-Key with another request is
// refused, naming the key, and stores nothing; the same request (whatever
// its key order and spacing) answers with the first incident.
func TestIdempotencyMismatch(t *testing.T) {
	c := newCity(t)
	ctx := context.Background()
	p := c.inside[anyGridCode(c)]
	body := fmt.Sprintf(`{"source":"hotline","category":"0101","title":"暴露垃圾","location":{"type":"Point","coordinates":[%v,%v]}}`, p[0], p[1])
	parse := func(t *testing.T, b string) NewIncident {
		t.Helper()
		n, err := ParseNew([]byte(b), geo.CRSWGS84, c.clock())
		if err != nil {
			t.Fatal(err)
		}
		n.IdempotencyKey = "k-42"
		return n
	}
	by := Reporter{Name: "app", TokenID: 3}
	first, created, err := c.svc.Create(ctx, parse(t, body), by, Viewer{})
	if err != nil || !created {
		t.Fatalf("first: created=%v %v", created, err)
	}
	c.advance(time.Minute) // a retry without reported_at is still the same request
	for _, tc := range []struct {
		name     string
		body     string
		crs      geo.CRS
		wantCode string
	}{
		{"same body", body, geo.CRSWGS84, ""},
		{"same body, other key order and spacing", fmt.Sprintf(`{ "title":"暴露垃圾", "location":{"coordinates":[%v, %v],"type":"Point"}, "category":"0101","source":"hotline" }`, p[0], p[1]), geo.CRSWGS84, ""},
		{"another title", strings.Replace(body, "暴露垃圾", "积存垃圾", 1), geo.CRSWGS84, gridwatch.EIdempotencyMismatch},
		{"another category", strings.Replace(body, "0101", "0102", 1), geo.CRSWGS84, gridwatch.EIdempotencyMismatch},
		{"same body in another CRS", body, geo.CRSGCJ02, gridwatch.EIdempotencyMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := ParseNew([]byte(tc.body), tc.crs, c.clock())
			if err != nil {
				t.Fatal(err)
			}
			n.IdempotencyKey = "k-42"
			in, created, err := c.svc.Create(ctx, n, by, Viewer{})
			if got := gridwatch.ErrorCode(err); got != tc.wantCode {
				t.Fatalf("code %q (%v), want %q", got, err, tc.wantCode)
			}
			if tc.wantCode == "" {
				if created || in.ID != first.ID {
					t.Errorf("got incident %d created=%v, want the first, %d", in.ID, created, first.ID)
				}
				return
			}
			if d := gridwatch.ErrorDetails(err); d["key"] != "k-42" || !strings.Contains(gridwatch.ErrorMessage(err), "k-42") {
				t.Errorf("error %v details %v: want the key named", err, d)
			}
		})
	}
	if n, err := c.svc.CountFeatures(ctx, FeatureFilter{}, Viewer{}); err != nil || n != 1 {
		t.Errorf("%d incidents stored (%v), want 1", n, err)
	}
}

// TestConfinedReporter: a reporter confined to a community (a grid leader)
// files reports inside it, and is refused, with where the report lies and
// their grids, outside it or in no grid; one by one and in bulk.
func TestConfinedReporter(t *testing.T) {
	c := newCity(t)
	ctx := context.Background()
	var mine, other string // grid codes in the leader's community and in another
	var community geo.Grid
	for code, g := range c.byCode {
		if g.Level != geo.LevelGrid {
			continue
		}
		if mine == "" || code < mine {
			mine = code
		}
	}
	community = c.byCode[c.byCode[mine].ParentCode]
	for code, g := range c.byCode {
		if g.Level == geo.LevelGrid && g.ParentCode != community.Code && (other == "" || code < other) {
			other = code
		}
	}
	leader := Reporter{Name: "leader", UserID: 9, Confine: []geo.Ref{{ID: community.ID, Code: community.Code, Level: community.Level}}}
	for _, tc := range []struct {
		name     string
		at       [2]float64
		wantCode string
		wantGrid any
	}{
		{"in a grid of their community", c.inside[mine], "", nil},
		{"in another community's grid", c.inside[other], gridwatch.EOutsideScope, other},
		{"in no grid", [2]float64{120, 30}, gridwatch.EOutsideScope, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := NewIncident{Source: "patrol", Category: "0101", Title: "x", Lon: tc.at[0], Lat: tc.at[1], ReportedAt: c.clock(), Priority: "normal"}
			_, _, err := c.svc.Create(ctx, n, leader, Viewer{})
			if got := gridwatch.ErrorCode(err); got != tc.wantCode {
				t.Fatalf("code %q (%v), want %q", got, err, tc.wantCode)
			}
			if tc.wantCode == "" {
				return
			}
			d := gridwatch.ErrorDetails(err)
			if d["grid"] != tc.wantGrid || fmt.Sprint(d["your_grids"]) != "["+community.Code+"]" || d["location"] == nil {
				t.Errorf("details %v: want grid %v, your_grids [%s] and the location", d, tc.wantGrid, community.Code)
			}
			if msg := gridwatch.ErrorMessage(err); !strings.Contains(msg, community.Code) {
				t.Errorf("message %q does not name the leader's grids", msg)
			}
		})
	}
	// Unconfined, the same report outside is filed.
	if _, created, err := c.svc.Create(ctx, NewIncident{Source: "patrol", Category: "0101", Title: "x", Lon: c.inside[other][0], Lat: c.inside[other][1], ReportedAt: c.clock(), Priority: "normal"}, Reporter{Name: "leader", UserID: 9}, Viewer{}); err != nil || !created {
		t.Errorf("unconfined: created=%v %v", created, err)
	}
	line := func(at [2]float64) string {
		return fmt.Sprintf(`{"source":"patrol","category":"0101","title":"x","location":{"type":"Point","coordinates":[%v,%v]}}`, at[0], at[1])
	}
	stream := strings.Join([]string{line(c.inside[mine]), line(c.inside[other]), line([2]float64{120, 30}), line(c.inside[mine])}, "\n")
	var results []LineResult
	sum, err := c.svc.Bulk(ctx, strings.NewReader(stream), geo.CRSWGS84, leader, func(r LineResult) error { results = append(results, r); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if sum.Created != 2 || sum.Errors != 2 {
		t.Errorf("bulk summary %+v, want 2 created and 2 refused", sum)
	}
	for i, want := range []string{"created", gridwatch.EOutsideScope, gridwatch.EOutsideScope, "created"} {
		got := results[i].Status
		if results[i].Error != nil {
			got = results[i].Error.Code
		}
		if got != want {
			t.Errorf("bulk line %d: %s, want %s", results[i].Line, got, want)
		}
	}
}
