package geo

import (
	"context"
	"sync"
	"sync/atomic"
)

// Locator answers point → grid lookups in process from an Index loaded from
// the Store, and reloads it after every change the Store commits.
type Locator struct {
	store *Store
	mu    sync.Mutex // serialises reloads
	ix    atomic.Pointer[Index]
	rev   atomic.Int64
}

// NewLocator returns a locator over store, registered to reload after every
// change. Call Refresh once before use.
func NewLocator(store *Store) *Locator {
	l := &Locator{store: store}
	l.ix.Store(NewIndex(nil))
	store.AfterChange(func(ctx context.Context) {
		if err := l.Refresh(ctx); err != nil {
			store.log.Error("reload the grid index", "err", err)
		}
	})
	return l
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
	return nil
}

// Locate returns the chain of grids covering the point, most specific first.
func (l *Locator) Locate(lon, lat float64) []Ref { return l.ix.Load().Locate(lon, lat) }

// Assign returns the most specific grid covering the point.
func (l *Locator) Assign(lon, lat float64) (Ref, bool) { return l.ix.Load().Assign(lon, lat) }

// Revision is the grid revision the index was loaded at.
func (l *Locator) Revision() int64 { return l.rev.Load() }
