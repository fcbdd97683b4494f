// Package fence carries an owner's lease on a camera to the writes that
// belong to the owner (recording rows, gaps, status and its events), so that
// the database refuses them once another node has the camera: a node paused
// past its lease (SIGSTOP, a long GC, a network cut) may wake up believing
// it still owns the camera, and its writes must then be lost, not stored
// beside the new owner's. See migrations/0022_nodes.sql (gridwatch_fence)
// and package cluster, which hands the fences out.
package fence

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// Fence is a node's lease on a camera: the node and the epoch it was given
// when it took the camera. The zero Fence fences nothing (a write made
// outside any cluster, as the tests of one package do).
type Fence struct {
	Node  string
	Epoch int64
}

// Valid reports whether f fences anything.
func (f Fence) Valid() bool { return f.Node != "" && f.Epoch > 0 }

type key struct{}

// With returns ctx carrying f: the writes made with it are fenced.
func With(ctx context.Context, f Fence) context.Context {
	return context.WithValue(ctx, key{}, f)
}

// From is the fence ctx carries (the zero Fence when none).
func From(ctx context.Context) Fence {
	f, _ := ctx.Value(key{}).(Fence)
	return f
}

// Code is the SQLSTATE gridwatch_fence raises for a stale lease.
const Code = "GWF01"

// ErrStale is what a fenced write returns when the lease it carried is no
// longer held: another node owns the camera now, or the lease expired.
var ErrStale = errors.New("fenced: this node no longer holds the camera's lease")

// Check turns a database error raised by gridwatch_fence into ErrStale
// (wrapped with the database's message); other errors pass unchanged.
func Check(err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == Code {
		return errors.Join(ErrStale, errors.New(pg.Message))
	}
	return err
}

// IsStale reports whether err is a refused fenced write.
func IsStale(err error) bool {
	if errors.Is(err, ErrStale) {
		return true
	}
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == Code
}
