package incident

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Clock is a clock for the service (Options.Now) that every node shares:
// PostgreSQL's time, read now and then, carried forward by this process's
// monotonic clock. A step of this machine's wall clock (NTP, a wrong
// setting) then moves neither the times cases are given nor what is
// overdue, and a node whose clock is off judges deadlines as the others
// do. It never goes back: a reading behind the last time given holds the
// clock there until it catches up.
type Clock struct {
	pool *pgxpool.Pool
	mu   sync.Mutex
	base time.Time // the database's time at the last reading
	at   time.Time // this process's time then, with its monotonic reading
	last time.Time // the latest time Now gave
}

// NewClock reads the database's time and returns the clock.
func NewClock(ctx context.Context, pool *pgxpool.Pool) (*Clock, error) {
	c := &Clock{pool: pool}
	if err := c.Sync(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Sync reads the database's time again, taken as the middle of the round
// trip.
func (c *Clock) Sync(ctx context.Context) error {
	start := time.Now()
	var db time.Time
	if err := c.pool.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&db); err != nil {
		return fmt.Errorf("database clock: %w", err)
	}
	at := start.Add(time.Since(start) / 2)
	c.mu.Lock()
	c.base, c.at = db, at
	c.mu.Unlock()
	return nil
}

// Now is the database's time at the last reading plus the time since on
// this process's monotonic clock, and never before a time it gave before.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.base.Add(time.Since(c.at))
	if t.Before(c.last) {
		t = c.last
	}
	c.last = t
	return t
}

// Run reads the database's time every interval until ctx ends; a failed
// reading is logged and the clock runs on from the last one.
func (c *Clock) Run(ctx context.Context, every time.Duration, log *slog.Logger) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := c.Sync(ctx); err != nil && ctx.Err() == nil {
				log.Warn("database clock: reading failed; running on from the last one", "err", err)
			}
		}
	}
}
