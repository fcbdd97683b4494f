package geo

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Locator answers point → grid lookups in process from an Index loaded from
// the Store, and reloads it after every change the Store commits.
type Locator struct {
	store *Store
	mu    sync.Mutex // serialises reloads
	ix    atomic.Pointer[Index]
	rev   atomic.Int64
	// reloaded is closed and replaced at each reload (a broadcast the
	// tests wait on: Reloaded, in testonly_test.go).
	reloaded atomic.Pointer[chan struct{}]
}

// NewLocator returns a locator over store, registered to reload after every
// change. Call Refresh once before use.
func NewLocator(store *Store) *Locator {
	l := &Locator{store: store}
	l.ix.Store(NewIndex(nil))
	ch := make(chan struct{})
	l.reloaded.Store(&ch)
	store.AfterChange(func(ctx context.Context) {
		// The change is committed: reload even if the request that made it
		// has gone away. A failure leaves the revision stale, so Run retries.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := l.Refresh(ctx); err != nil {
			l.rev.Store(0)
			store.log.Error("reload the grid index", "err", err)
		}
	})
	return l
}

// Run keeps the index current with changes made outside this process
// (another gridwatch on the same database, psql): every interval it reads
// the grid revision and reloads when it moved. It returns when ctx ends.
func (l *Locator) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rev, err := l.store.Revision(ctx)
			if err != nil || rev == l.rev.Load() {
				continue
			}
			if err := l.Refresh(ctx); err != nil && ctx.Err() == nil {
				l.store.log.Error("reload the grid index", "err", err)
			}
		}
	}
}

// Refresh reloads the index from the store.
func (l *Locator) Refresh(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	grids, rev, err := l.store.IndexGrids(ctx)
	if err != nil {
		return err
	}
	l.ix.Store(NewIndex(grids))
	l.rev.Store(rev)
	next := make(chan struct{})
	close(*l.reloaded.Swap(&next))
	return nil
}

// Locate returns the chain of grids covering the point, most specific first.
func (l *Locator) Locate(lon, lat float64) []Ref { return l.ix.Load().Locate(lon, lat) }

// Assign returns the most specific grid covering the point.
func (l *Locator) Assign(lon, lat float64) (Ref, bool) { return l.ix.Load().Assign(lon, lat) }

// Revision is the grid revision the index was loaded at.
func (l *Locator) Revision() int64 { return l.rev.Load() }
