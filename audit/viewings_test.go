package audit

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

// runViewLog runs l until the returned stop is called; stop waits for Run's
// final write, so what was queued is in the table when it returns.
func runViewLog(t *testing.T, l *ViewLog) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := l.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// fakeClock is a settable clock for the idle gap.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func listViewings(t *testing.T, pool *pgxpool.Pool, f ViewingFilter) []Viewing {
	t.Helper()
	vs, _, err := NewStore(pool).Viewings(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func TestViewLogSessions(t *testing.T) {
	pool := testdb.New(t)
	l := NewViewLog(pool, ViewLogOptions{IdleGap: 30 * time.Second, FlushEvery: time.Hour})
	t0 := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	l.now = clock.now
	stop := runViewLog(t, l)

	alice := Actor{Kind: "user", ID: 7, Name: "alice", IP: "10.0.0.5"}
	wall := Actor{Kind: "token", ID: 3, Name: "wall display", IP: "10.0.0.9"}
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	tp := func(d time.Duration) *time.Time { x := at(d); return &x }

	// A WebSocket viewer: one session from start to end, with its bytes.
	mse := l.Start(Viewing{Actor: alice, Kind: Live, Protocol: ProtoMSE, Camera: 1, Stream: "main", IP: "10.0.0.5:51000"})
	mse.Add(1000)
	mse.Add(500)
	clock.set(at(90 * time.Second))
	mse.End()
	mse.End() // once only

	// Live HLS: requests within the gap are one session; a request after
	// the gap starts another, and the first ended at its last request.
	hls := Viewing{Actor: wall, Kind: Live, Protocol: ProtoHLS, Camera: 2, Stream: "sub", IP: "10.0.0.9"}
	clock.set(at(0))
	l.Touch(hls, 100)
	clock.set(at(20 * time.Second))
	l.Touch(hls, 200)
	clock.set(at(45 * time.Second))
	l.Touch(hls, 300)
	clock.set(at(80 * time.Second)) // 35 s later: a new session
	l.Touch(hls, 400)

	// Playback: the playlist's range stands; its files' do not widen it.
	// Files fetched alone make a session whose range covers them.
	pl := Viewing{Actor: alice, Kind: Playback, Protocol: ProtoHLS, Camera: 1, IP: "10.0.0.5", From: tp(-time.Hour), To: tp(-50 * time.Minute)}
	clock.set(at(100 * time.Second))
	l.Touch(pl, 50)
	l.Touch(Viewing{Actor: alice, Kind: Playback, Protocol: ProtoFile, Camera: 1, IP: "10.0.0.5", From: tp(-61 * time.Minute), To: tp(-60 * time.Minute)}, 5000)
	file := Viewing{Actor: wall, Kind: Playback, Protocol: ProtoFile, Camera: 1, IP: "10.0.0.9"}
	file.From, file.To = tp(-2*time.Hour), tp(-119*time.Minute)
	l.Touch(file, 10)
	file.From, file.To = tp(-119*time.Minute), tp(-118*time.Minute)
	l.Touch(file, 20)

	clock.set(at(200 * time.Second))
	stop() // ends the open HTTP sessions at their last request and writes everything

	type want struct {
		actor, kind, proto string
		camera             int64
		stream             string
		start, end         time.Duration
		bytes              int64
		from, to           *time.Time
	}
	for _, tc := range []struct {
		name   string
		filter ViewingFilter
		want   []want // newest first
	}{
		{"alice", ViewingFilter{Actor: "alice"}, []want{
			{"alice", Playback, ProtoHLS, 1, "", 100 * time.Second, 100 * time.Second, 5050, tp(-time.Hour), tp(-50 * time.Minute)},
			{"alice", Live, ProtoMSE, 1, "main", 0, 90 * time.Second, 1500, nil, nil},
		}},
		{"wall display", ViewingFilter{Actor: "wall display"}, []want{
			{"wall display", Playback, ProtoFile, 1, "", 100 * time.Second, 100 * time.Second, 30, tp(-2 * time.Hour), tp(-118 * time.Minute)},
			{"wall display", Live, ProtoHLS, 2, "sub", 80 * time.Second, 80 * time.Second, 400, nil, nil},
			{"wall display", Live, ProtoHLS, 2, "sub", 0, 45 * time.Second, 600, nil, nil},
		}},
		{"camera 2", ViewingFilter{Camera: "2"}, []want{
			{"wall display", Live, ProtoHLS, 2, "sub", 80 * time.Second, 80 * time.Second, 400, nil, nil},
			{"wall display", Live, ProtoHLS, 2, "sub", 0, 45 * time.Second, 600, nil, nil},
		}},
		{"watching between 50 s and 85 s", ViewingFilter{From: at(50 * time.Second), To: at(85 * time.Second)}, []want{
			{"wall display", Live, ProtoHLS, 2, "sub", 80 * time.Second, 80 * time.Second, 400, nil, nil},
			{"alice", Live, ProtoMSE, 1, "main", 0, 90 * time.Second, 1500, nil, nil},
		}},
		{"playback only", ViewingFilter{Kind: Playback, Camera: "1", Limit: 1}, []want{
			{"wall display", Playback, ProtoFile, 1, "", 100 * time.Second, 100 * time.Second, 30, tp(-2 * time.Hour), tp(-118 * time.Minute)},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := listViewings(t, pool, tc.filter)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d sessions %+v, want %d", len(got), got, len(tc.want))
			}
			for i, w := range tc.want {
				g := got[i]
				if g.Actor.Name != w.actor || g.Kind != w.kind || g.Protocol != w.proto || g.Camera != w.camera || g.Stream != w.stream {
					t.Errorf("session %d: got %s %s %s camera %d %q, want %s %s %s camera %d %q", i,
						g.Actor.Name, g.Kind, g.Protocol, g.Camera, g.Stream, w.actor, w.kind, w.proto, w.camera, w.stream)
				}
				if !g.StartedAt.Equal(at(w.start)) || g.EndedAt == nil || !g.EndedAt.Equal(at(w.end)) {
					t.Errorf("session %d: got %v to %v, want %v to %v", i, g.StartedAt, g.EndedAt, at(w.start), at(w.end))
				}
				if g.Bytes != w.bytes {
					t.Errorf("session %d: got %d bytes, want %d", i, g.Bytes, w.bytes)
				}
				if !sameTime(g.From, w.from) || !sameTime(g.To, w.to) {
					t.Errorf("session %d: got range %v–%v, want %v–%v", i, g.From, g.To, w.from, w.to)
				}
				if g.IP != "10.0.0.5" && g.IP != "10.0.0.9" {
					t.Errorf("session %d: ip %q, want the host without port", i, g.IP)
				}
			}
		})
	}
	if d := l.Dropped(); d != 0 {
		t.Errorf("%d rows dropped, want none", d)
	}
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// TestViewingsAreEndOnly: an open session gets its end once; nothing else
// in the table changes, and nothing is deleted.
func TestViewingsAreEndOnly(t *testing.T) {
	pool := testdb.New(t)
	ctx := context.Background()
	l := NewViewLog(pool, ViewLogOptions{})
	open := l.begin(Viewing{Actor: Actor{Kind: "user", ID: 1, Name: "alice"}, Kind: Live, Protocol: ProtoMSE, Camera: 1, Stream: "main"}, time.Now())
	closed := l.begin(Viewing{Actor: Actor{Kind: "user", ID: 1, Name: "alice"}, Kind: Live, Protocol: ProtoRTSP, Camera: 2, Stream: "main"}, time.Now())
	end := time.Now().Add(time.Minute)
	c := closed.v
	c.EndedAt = &end
	if err := l.write(ctx, []Viewing{open.v, closed.v, c}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, sql string
		args      []any
		ok        bool
	}{
		{"rewrite who", `UPDATE viewing_sessions SET actor_name = 'mallory', ended_at = now() + interval '1 hour' WHERE session = $1::uuid`, []any{open.v.Session}, false},
		{"reopen", `UPDATE viewing_sessions SET bytes = 0 WHERE session = $1::uuid AND ended_at IS NULL`, []any{open.v.Session}, false},
		{"change an ended session", `UPDATE viewing_sessions SET ended_at = ended_at + interval '1 hour' WHERE session = $1::uuid`, []any{c.Session}, false},
		{"delete", `DELETE FROM viewing_sessions WHERE session = $1::uuid`, []any{c.Session}, false},
		{"truncate", `TRUNCATE viewing_sessions`, nil, false},
		{"end the open one", `UPDATE viewing_sessions SET ended_at = now() + interval '1 hour', bytes = 10 WHERE session = $1::uuid`, []any{open.v.Session}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pool.Exec(ctx, tc.sql, tc.args...)
			if tc.ok && err != nil {
				t.Errorf("got %v, want it allowed", err)
			}
			if !tc.ok && err == nil {
				t.Error("got it allowed, want it refused")
			}
		})
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM viewing_sessions`).Scan(&n); err != nil || n != 2 {
		t.Errorf("got %d rows (%v), want 2", n, err)
	}
}

// TestViewLogNeverWaitsForTheDatabase holds a lock on the table, so every
// write waits: starting and ending sessions still return at once, rows
// beyond the queue are counted as dropped, and once the database answers
// again every row kept is written (written + dropped = all).
func TestViewLogNeverWaitsForTheDatabase(t *testing.T) {
	pool := testdb.New(t)
	ctx := context.Background()
	l := NewViewLog(pool, ViewLogOptions{Queue: 8, Batch: 4, FlushEvery: 5 * time.Millisecond})
	stop := runViewLog(t, l)

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `LOCK TABLE viewing_sessions IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	const sessions = 100
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range sessions {
			s := l.Start(Viewing{Actor: Actor{Kind: "user", ID: 1, Name: "alice"}, Kind: Live, Protocol: ProtoMSE, Camera: int64(i + 1), Stream: "main"})
			s.Add(100)
			s.End()
		}
	}()
	// The lock is held until this returns: a viewer waiting on the database
	// would never get here.
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("starting and ending sessions waited for the database")
	}
	if l.Dropped() == 0 {
		t.Errorf("got no rows dropped with the table locked and a queue of 8, want some")
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	stop()
	if got, want := l.Written()+l.Dropped(), uint64(2*sessions); got != want {
		t.Errorf("written %d + dropped %d = %d, want %d", l.Written(), l.Dropped(), got, want)
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM viewing_sessions`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows == 0 || rows > sessions {
		t.Errorf("got %d rows, want between 1 and %d", rows, sessions)
	}
	t.Logf("%d rows written, %d dropped, %d sessions in the table", l.Written(), l.Dropped(), rows)
}

// BenchmarkViewLogStartEnd is what a viewer pays on the video path to be
// on record: a session's start and end are two non-blocking queue sends
// (here nothing writes, so once the queue is full they are drops), and an
// HLS request's touch is a map lookup under a mutex.
func BenchmarkViewLogStartEnd(b *testing.B) {
	l := NewViewLog(nil, ViewLogOptions{Queue: 1024})
	v := Viewing{Actor: Actor{Kind: "user", ID: 1, Name: "alice", IP: "10.0.0.5"}, Kind: Live, Protocol: ProtoMSE, Camera: 1, Stream: "main"}
	b.Run("start-end", func(b *testing.B) {
		for b.Loop() {
			s := l.Start(v)
			s.Add(1000)
			s.End()
		}
	})
	v.Protocol = ProtoHLS
	b.Run("touch", func(b *testing.B) {
		for b.Loop() {
			l.Touch(v, 1000)
		}
	})
}
