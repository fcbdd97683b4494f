// Package events is the change feed behind live updates. A domain package
// calls Publish inside the transaction of its change; the row's trigger
// notifies every gridwatch process (LISTEN/NOTIFY) at commit, and each
// process fans the event out to its Server-Sent Events subscribers. Events
// are kept for a replay window so a client reconnecting with Last-Event-ID
// misses nothing.
package events

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Event types.
const (
	IncidentCreated = "incident.created"
	IncidentChanged = "incident.changed"
	IncidentsBulk   = "incident.bulk"
	GridChanged     = "grid.changed"
)

// Publish records an event of type typ about grid gridID (nil: not bound to
// a grid) with data, in tx; subscribers hear of it when tx commits.
func Publish(ctx context.Context, tx pgx.Tx, typ string, gridID *int64, data map[string]any) error {
	if data == nil {
		data = map[string]any{}
	}
	if _, err := tx.Exec(ctx, "INSERT INTO events (type, grid_id, data) VALUES ($1, $2, $3)", typ, gridID, data); err != nil {
		return fmt.Errorf("publish %s: %w", typ, err)
	}
	return nil
}
