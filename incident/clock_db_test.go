package incident

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"gridwatch/internal/testdb"
)

// TestClockFollowsTheDatabase: the shared clock reads PostgreSQL's time
// (within half the round trip of its reading), never goes back when a
// reading is behind the last time it gave, and its Run ends with its
// context.
func TestClockFollowsTheDatabase(t *testing.T) {
	ctx := context.Background()
	pool := testdb.New(t)
	c, err := NewClock(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	dbNow := func() time.Time {
		t.Helper()
		var at time.Time
		if err := pool.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	start := time.Now()
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	slack := time.Since(start) // the reading is off by at most half of it
	before := dbNow()
	got := c.Now()
	after := dbNow()
	if got.Before(before.Add(-slack)) || got.After(after.Add(slack)) {
		t.Errorf("clock %s, database %s to %s (slack %s)", got.Format(time.RFC3339Nano), before.Format(time.RFC3339Nano), after.Format(time.RFC3339Nano), slack)
	}

	// A reading an hour behind (the database's host stepped back): the
	// clock holds, then runs on from there.
	c.mu.Lock()
	c.base = c.base.Add(-time.Hour)
	c.mu.Unlock()
	held := c.Now()
	if held.Before(got) {
		t.Errorf("after a reading an hour behind: %s, before the %s given earlier", held.Format(time.RFC3339Nano), got.Format(time.RFC3339Nano))
	}
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if again := c.Now(); again.Before(held) || again.Before(after) {
		t.Errorf("after a fresh reading: %s, want at least %s and %s", again.Format(time.RFC3339Nano), held.Format(time.RFC3339Nano), after.Format(time.RFC3339Nano))
	}

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { c.Run(runCtx, time.Millisecond, slog.New(slog.DiscardHandler)); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end with its context")
	}
	t.Logf("RELIABILITY: shared clock: within %s of PostgreSQL's; a reading 1 h behind did not move it back", slack)
}
