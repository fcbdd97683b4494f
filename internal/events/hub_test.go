package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"gridwatch/internal/database"
	"gridwatch/internal/testdb"
	"gridwatch/internal/testtool"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

// wait bounds every wait for an event.
const wait = 15 * time.Second

// startHub runs a hub on pool until the test ends, and waits until it listens.
func startHub(t *testing.T, pool *pgxpool.Pool, opts HubOptions) *Hub {
	t.Helper()
	h := NewHub(pool, opts)
	// A hub that ends before listening fails the test at cleanup, with
	// Run's error.
	t.Cleanup(testtool.Run(t, wait, h.Run))
	select {
	case <-h.Ready():
	case <-time.After(wait):
		t.Fatal("hub is not listening")
	}
	return h
}

// publish commits one event and returns its id.
func publish(t *testing.T, pool *pgxpool.Pool, typ string, grid *int64, data map[string]any) int64 {
	t.Helper()
	var id int64
	err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		return publishTx(tx, typ, grid, data, &id)
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// publishOpen publishes an event in a transaction it leaves open (rolled
// back when the test ends, unless committed): the transaction and the id.
func publishOpen(t *testing.T, pool *pgxpool.Pool) (pgx.Tx, int64) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	var id int64
	if err := publishTx(tx, IncidentCreated, nil, nil, &id); err != nil {
		t.Fatal(err)
	}
	return tx, id
}

func publishTx(tx pgx.Tx, typ string, grid *int64, data map[string]any, id *int64) error {
	ctx := context.Background()
	if err := Publish(ctx, tx, typ, grid, data); err != nil {
		return err
	}
	return tx.QueryRow(ctx, "SELECT currval(pg_get_serial_sequence('events', 'id'))").Scan(id)
}

func subscribe(t *testing.T, h *Hub, filter func(Event) bool, last int64) *Subscription {
	t.Helper()
	return subscribeFrom(t, h, filter, Position{Last: last})
}

func subscribeFrom(t *testing.T, h *Hub, filter func(Event) bool, from Position) *Subscription {
	t.Helper()
	sub, err := h.Subscribe(context.Background(), filter, from)
	if err != nil {
		t.Fatalf("subscribe from %s: %v", from, err)
	}
	t.Cleanup(sub.Close)
	return sub
}

// next returns the subscription's next event, failing after a deadline.
func next(t *testing.T, sub *Subscription) Event {
	t.Helper()
	select {
	case ev, ok := <-sub.Events():
		if !ok {
			t.Fatalf("subscription ended: %v", sub.Err())
		}
		return ev
	case <-time.After(wait):
		t.Fatal("no event within the deadline")
	}
	return Event{}
}

// ids reads n events and returns their ids.
func ids(t *testing.T, sub *Subscription, n int) []int64 {
	t.Helper()
	out := make([]int64, n)
	for i := range out {
		out[i] = next(t, sub).ID
	}
	return out
}

// until reads events until the one with id, failing after a deadline.
func until(t *testing.T, sub *Subscription, id int64) {
	t.Helper()
	for next(t, sub).ID != id {
	}
}

func ptr(v int64) *int64 { return &v }

func TestHubDeliversAtCommit(t *testing.T) {
	pool := testdb.New(t)
	h := startHub(t, pool, HubOptions{})
	sub := subscribe(t, h, nil, 0)
	ctx := context.Background()

	// tx1 takes an id and stays open; tx2 takes the next one and commits.
	tx1, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx1.Rollback(ctx)
	var early int64
	if err := publishTx(tx1, IncidentCreated, ptr(7), map[string]any{"id": 1, "status": "reported"}, &early); err != nil {
		t.Fatal(err)
	}
	late := publish(t, pool, IncidentChanged, ptr(7), map[string]any{"id": 2, "status": "registered"})
	ev := next(t, sub)
	if ev.ID != late {
		t.Fatalf("first event %d, want %d (the committed one; %d is not committed)", ev.ID, late, early)
	}
	if ev.Type != IncidentChanged || ev.GridID == nil || *ev.GridID != 7 {
		t.Errorf("event %+v: want type %s, grid 7", ev, IncidentChanged)
	}
	var data map[string]any
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		t.Fatal(err)
	}
	if data["grid_id"] != float64(7) || data["status"] != "registered" || data["id"] != float64(2) {
		t.Errorf("data %s: want the published fields and grid_id 7", ev.Data)
	}
	// tx1 commits after tx2: its lower id is still delivered.
	if err := tx1.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, sub); ev.ID != early {
		t.Fatalf("after the late commit: event %d, want %d", ev.ID, early)
	}

	// A rolled-back event is never delivered: the next one is the one after.
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := Publish(ctx, tx, IncidentCreated, nil, nil); err != nil {
			return err
		}
		return errors.New("roll back")
	})
	if err == nil {
		t.Fatal("want the transaction rolled back")
	}
	after := publish(t, pool, IncidentsBulk, nil, map[string]any{"created": 3})
	if ev := next(t, sub); ev.ID != after || string(ev.Data) != `{"created":3,"grid_id":null}` {
		t.Fatalf("after a rollback: event %d %s, want %d {\"created\":3,\"grid_id\":null}", ev.ID, ev.Data, after)
	}
}

func TestHubFilter(t *testing.T) {
	pool := testdb.New(t)
	h := startHub(t, pool, HubOptions{})
	mine := subscribe(t, h, func(ev Event) bool { return ev.GridID != nil && *ev.GridID == 1 }, 0)
	publish(t, pool, IncidentCreated, ptr(2), nil)
	publish(t, pool, IncidentCreated, nil, nil)
	want := publish(t, pool, IncidentCreated, ptr(1), nil)
	if ev := next(t, mine); ev.ID != want {
		t.Errorf("filtered subscriber got %d, want %d", ev.ID, want)
	}
}

func TestHubReplay(t *testing.T) {
	pool := testdb.New(t)
	h := startHub(t, pool, HubOptions{})
	first := publish(t, pool, IncidentCreated, ptr(1), nil)
	second := publish(t, pool, IncidentCreated, ptr(2), nil)
	third := publish(t, pool, IncidentChanged, ptr(1), nil)
	var old int64
	if err := pool.QueryRow(context.Background(),
		"INSERT INTO events (at, type, data) VALUES (now() - interval '2 hours', 'incident.changed', '{}') RETURNING id").Scan(&old); err != nil {
		t.Fatal(err)
	}

	t.Run("after an id", func(t *testing.T) {
		sub := subscribe(t, h, nil, first)
		got := ids(t, sub, 3)
		live := publish(t, pool, IncidentChanged, ptr(2), nil)
		if ev := next(t, sub); ev.ID != live {
			t.Errorf("live after replay: %d, want %d", ev.ID, live)
		}
		// The out-of-window row follows third in the table: a replay
		// after a recent id sends what is there.
		if want := []int64{second, third, old}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("replay after %d: %v, want %v", first, got, want)
		}
	})
	t.Run("filtered", func(t *testing.T) {
		sub := subscribe(t, h, func(ev Event) bool { return ev.GridID != nil && *ev.GridID == 1 }, first)
		if ev := next(t, sub); ev.ID != third {
			t.Errorf("filtered replay: %d, want %d", ev.ID, third)
		}
	})
	for _, tc := range []struct {
		name string
		last int64
	}{
		{"older than the window", old},
		{"unknown id", old + 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var newest int64
			if err := pool.QueryRow(context.Background(), "SELECT max(id) FROM events").Scan(&newest); err != nil {
				t.Fatal(err)
			}
			sub := subscribe(t, h, nil, tc.last)
			ev := next(t, sub)
			if ev.Type != Reset || ev.ID != newest {
				t.Errorf("got %s %d %s, want %s with id %d", ev.Type, ev.ID, ev.Data, Reset, newest)
			}
			// Live events follow the reset.
			until(t, sub, publish(t, pool, IncidentCreated, nil, nil))
		})
	}
}

// TestHubReplayDuringTraffic subscribes with a replay while events are
// being published: every event after the id arrives exactly once.
func TestHubReplayDuringTraffic(t *testing.T) {
	pool := testdb.New(t)
	h := startHub(t, pool, HubOptions{Buffer: 1000})
	start := publish(t, pool, IncidentCreated, nil, nil)
	for range 20 {
		publish(t, pool, IncidentCreated, nil, nil)
	}
	const more = 100
	published := make(chan int64, more)
	go func() {
		defer close(published)
		for range more {
			var id int64
			err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
				return publishTx(tx, IncidentCreated, nil, nil, &id)
			})
			if err != nil {
				return
			}
			published <- id
		}
	}()
	sub := subscribe(t, h, nil, start)
	var last int64
	for id := range published {
		last = id
	}
	if last == 0 {
		t.Fatal("the publisher failed")
	}
	seen := map[int64]bool{}
	for {
		ev := next(t, sub)
		if seen[ev.ID] {
			t.Fatalf("event %d delivered twice", ev.ID)
		}
		seen[ev.ID] = true
		if ev.ID == last {
			break
		}
	}
	for id := start + 1; id <= last; id++ {
		if !seen[id] {
			t.Errorf("event %d missing", id)
		}
	}
}

func TestHubDropsSlowSubscriber(t *testing.T) {
	pool := testdb.New(t)
	h := startHub(t, pool, HubOptions{Buffer: 4})
	slow := subscribe(t, h, nil, 0)
	fast := subscribe(t, h, nil, 0)
	for i := range 10 {
		id := publish(t, pool, IncidentCreated, nil, map[string]any{"n": i})
		if ev := next(t, fast); ev.ID != id {
			t.Fatalf("fast subscriber: %d, want %d", ev.ID, id)
		}
	}
	n := 0
	for range slow.Events() {
		n++
	}
	if n != 4 || !errors.Is(slow.Err(), ErrSlow) {
		t.Errorf("slow subscriber: %d events then %v; want 4 then ErrSlow", n, slow.Err())
	}
	if fast.Err() != nil {
		t.Errorf("fast subscriber: %v", fast.Err())
	}
}

// TestHubAcrossProcesses: two hubs on two pools to one database, as two
// gridwatch processes have; an event published through either reaches the
// subscribers of both.
func TestHubAcrossProcesses(t *testing.T) {
	dsn := testdb.DSN(t)
	open := func() *pgxpool.Pool {
		p, err := database.Open(context.Background(), dsn, database.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	poolA, poolB := open(), open()
	hubA, hubB := startHub(t, poolA, HubOptions{}), startHub(t, poolB, HubOptions{})
	subA, subB := subscribe(t, hubA, nil, 0), subscribe(t, hubB, nil, 0)
	fromA := publish(t, poolA, IncidentCreated, ptr(3), map[string]any{"id": 9})
	if ev := next(t, subB); ev.ID != fromA || ev.Type != IncidentCreated {
		t.Errorf("B got %d %s, want %d from A", ev.ID, ev.Type, fromA)
	}
	if ev := next(t, subA); ev.ID != fromA {
		t.Errorf("A got %d, want its own %d", ev.ID, fromA)
	}
	fromB := publish(t, poolB, IncidentChanged, ptr(3), nil)
	if ev := next(t, subA); ev.ID != fromB {
		t.Errorf("A got %d, want %d from B", ev.ID, fromB)
	}
}

func TestHubReconnects(t *testing.T) {
	pool := testdb.New(t)
	h := startHub(t, pool, HubOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	sub := subscribe(t, h, nil, 0)
	for round := range 2 {
		var pid int32
		var killed bool
		err := pool.QueryRow(context.Background(), `SELECT pid FROM pg_stat_activity
			WHERE application_name = $1 AND datname = current_database()`, listenerName).Scan(&pid)
		if err == nil {
			// The timeout makes pg_terminate_backend wait until the backend is gone.
			err = pool.QueryRow(context.Background(), "SELECT pg_terminate_backend($1, 5000)", pid).Scan(&killed)
		}
		if err != nil || !killed {
			t.Fatalf("round %d: terminate the listener: %v %v", round, killed, err)
		}
		// Published while the listener is down (or coming back): caught up.
		id := publish(t, pool, IncidentCreated, nil, nil)
		if ev := next(t, sub); ev.ID != id {
			t.Fatalf("round %d: got %d, want %d", round, ev.ID, id)
		}
	}
}

func TestHubPrune(t *testing.T) {
	pool := testdb.New(t)
	h := NewHub(pool, HubOptions{Window: time.Hour})
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO events (at, type) VALUES (now() - interval '61 minutes', 'a'), (now() - interval '59 minutes', 'b')`); err != nil {
		t.Fatal(err)
	}
	if err := h.prune(ctx); err != nil {
		t.Fatal(err)
	}
	var left []string
	rows, _ := pool.Query(ctx, "SELECT type FROM events ORDER BY id")
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || fmt.Sprint(left) != "[b]" {
		t.Errorf("after prune: %v %v, want [b]", left, err)
	}
}

// TestHubRunEnds: Run returns when its context ends, every goroutine it
// started has ended, open subscriptions end with ErrClosed and new ones are
// refused.
func TestHubRunEnds(t *testing.T) {
	pool := testdb.New(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := NewHub(pool, HubOptions{RetainEvery: time.Millisecond})
	stop := testtool.Run(t, wait, h.Run)
	<-h.Ready()
	sub, err := h.Subscribe(context.Background(), nil, Position{})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, pool, IncidentCreated, nil, nil)
	next(t, sub)
	stop()
	if _, ok := <-sub.Events(); ok || !errors.Is(sub.Err(), ErrClosed) {
		t.Errorf("open subscription after Run: still open or %v, want ErrClosed", sub.Err())
	}
	if _, err := h.Subscribe(context.Background(), nil, Position{}); !errors.Is(err, ErrClosed) {
		t.Errorf("subscribe after Run: %v, want ErrClosed", err)
	}
}

// TestHubResumeAcrossAGap: a transaction takes an id and commits after a
// later one was sent. The id sent with the later event names the open one
// as a gap, so a client that reconnects with it is sent the late event,
// whether it committed while the client was away or after it came back.
func TestHubResumeAcrossAGap(t *testing.T) {
	pool := testdb.New(t)
	h := startHub(t, pool, HubOptions{})
	ctx := context.Background()
	for _, commit := range []string{"while away", "after the resume"} {
		t.Run(commit, func(t *testing.T) {
			sub := subscribe(t, h, nil, 0)
			tx, open := publishOpen(t, pool)
			later := publish(t, pool, IncidentCreated, nil, nil)
			ev := next(t, sub)
			if ev.ID != later || ev.Pos.Last != later || !slices.Contains(ev.Pos.Gaps, open) {
				t.Fatalf("event %d at %s: want %d at a position with gap %d", ev.ID, ev.Pos, later, open)
			}
			sub.Close() // the client goes away
			if commit == "while away" {
				if err := tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}
			}
			back := subscribeFrom(t, h, nil, ev.Pos)
			if commit == "after the resume" {
				if err := tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}
			}
			got := next(t, back)
			if got.ID != open {
				t.Fatalf("resumed from %s: event %d, want the late one %d", ev.Pos, got.ID, open)
			}
			if got.Pos.Last < later || slices.Contains(got.Pos.Gaps, open) {
				t.Errorf("position after the late event: %s, want at least %d without the gap %d", got.Pos, later, open)
			}
			// Nothing twice: the next event is a new one.
			fresh := publish(t, pool, IncidentCreated, nil, nil)
			if ev := next(t, back); ev.ID != fresh {
				t.Errorf("after the late event: %d, want %d", ev.ID, fresh)
			}
		})
	}
}

// TestHubResumeBelowAGap: a position may name an id that never committed
// (a position falls back to just below its lowest gap): the replay goes on
// from there, not a reset.
func TestHubResumeBelowAGap(t *testing.T) {
	pool := testdb.New(t)
	h := startHub(t, pool, HubOptions{})
	ctx := context.Background()
	publish(t, pool, IncidentCreated, nil, nil)
	var rolledBack int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := publishTx(tx, IncidentCreated, nil, nil, &rolledBack); err != nil {
			return err
		}
		return errors.New("roll back")
	})
	if rolledBack == 0 || err == nil {
		t.Fatalf("want an id taken and rolled back: %d %v", rolledBack, err)
	}
	after := publish(t, pool, IncidentCreated, nil, nil)
	sub := subscribeFrom(t, h, nil, Position{Last: rolledBack})
	if ev := next(t, sub); ev.ID != after || ev.Type != IncidentCreated {
		t.Errorf("resumed from a rolled-back id: %s %d, want %s %d", ev.Type, ev.ID, IncidentCreated, after)
	}
}

// TestHubStartsWithOpenIDs: a hub that starts while another process's
// transaction holds an id below the newest event sends that event when it
// commits.
func TestHubStartsWithOpenIDs(t *testing.T) {
	pool := testdb.New(t)
	ctx := context.Background()
	tx, open := publishOpen(t, pool)
	publish(t, pool, IncidentCreated, nil, nil)
	h := startHub(t, pool, HubOptions{})
	sub := subscribe(t, h, nil, 0)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, sub); ev.ID != open {
		t.Errorf("event %d, want %d, committed after the hub started", ev.ID, open)
	}
}

// TestHubResumeOnAnotherHub: a client resumes, with a gap in its position,
// on a hub that started after the gap's id was taken and too long after to
// look back to it (another process, or this one restarted): that hub sends
// the late event when it commits.
func TestHubResumeOnAnotherHub(t *testing.T) {
	pool := testdb.New(t)
	a := startHub(t, pool, HubOptions{Buffer: 2 * lookBack})
	subA := subscribe(t, a, nil, 0)
	tx, open := publishOpen(t, pool)
	var last int64
	for range lookBack + 10 {
		last = publish(t, pool, IncidentCreated, nil, nil)
	}
	var seen Event
	for seen.ID != last {
		seen = next(t, subA)
	}
	if !slices.Contains(seen.Pos.Gaps, open) {
		t.Fatalf("position on the first hub %s: want the open id %d as a gap", seen.Pos, open)
	}
	b := startHub(t, pool, HubOptions{})
	back := subscribeFrom(t, b, nil, seen.Pos)
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, back); ev.ID != open {
		t.Fatalf("on the second hub: event %d at %s, want the late one %d", ev.ID, ev.Pos, open)
	}
}

// TestHubIDsParse: after jumps of the id sequence (transactions rolled back
// or still open by the hundred) the ids the hub sends still parse.
func TestHubIDsParse(t *testing.T) {
	pool := testdb.New(t)
	h := startHub(t, pool, HubOptions{})
	sub := subscribe(t, h, nil, 0)
	for range 3 {
		if _, err := pool.Exec(context.Background(), "SELECT nextval(pg_get_serial_sequence('events', 'id')) FROM generate_series(1, 900)"); err != nil {
			t.Fatal(err)
		}
		id := publish(t, pool, IncidentCreated, nil, nil)
		ev := next(t, sub)
		if ev.ID != id {
			t.Fatalf("event %d, want %d", ev.ID, id)
		}
		if back, err := ParsePosition(ev.Pos.String()); err != nil || back.Last != ev.Pos.Last || len(back.Gaps) != len(ev.Pos.Gaps) {
			t.Fatalf("event %d's id %q (%d gaps) parses to %v %v", ev.ID, ev.Pos.String(), len(ev.Pos.Gaps), back, err)
		}
	}
}
