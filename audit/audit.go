// Package audit keeps the append-only trail of every change: who, when, what,
// the target, a before/after summary and the request it came from. Domain
// stores call Record inside the transaction of the change they make, so an
// entry exists exactly when the change does. The table refuses updates,
// deletes and truncation.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch/internal/database"
)

// Actor is who a change is made for, carried in the request context.
type Actor struct {
	Kind      string `json:"kind"` // user, token or system
	ID        int64  `json:"id,omitempty"`
	Name      string `json:"name"`
	RequestID string `json:"-"`
	IP        string `json:"-"`
}

type actorKey struct{}

// WithActor returns ctx carrying a.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor in ctx; without one the change is the system's.
func ActorFrom(ctx context.Context) Actor {
	if a, ok := ctx.Value(actorKey{}).(Actor); ok {
		return a
	}
	return Actor{Kind: "system", Name: "gridwatch"}
}

// Entry is one audited change.
type Entry struct {
	ID         int64          `json:"id"`
	At         time.Time      `json:"at"`
	Actor      Actor          `json:"actor"`
	Action     string         `json:"action"`
	TargetType string         `json:"target_type"`
	TargetID   string         `json:"target_id"`
	Summary    map[string]any `json:"summary"`
	RequestID  string         `json:"request_id"`
	IP         string         `json:"ip"`
}

// Record appends an entry for the actor in ctx, in tx.
func Record(ctx context.Context, tx pgx.Tx, action, targetType, targetID string, summary map[string]any) error {
	a := ActorFrom(ctx)
	if summary == nil {
		summary = map[string]any{}
	}
	var actorID *int64
	if a.ID != 0 {
		actorID = &a.ID
	}
	_, err := tx.Exec(ctx, `INSERT INTO audit_log (actor_kind, actor_id, actor_name, action, target_type, target_id, summary, request_id, ip)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		a.Kind, actorID, a.Name, action, targetType, targetID, summary, a.RequestID, a.IP)
	if err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// Filter selects entries; zero fields match everything.
type Filter struct {
	Actor      string // actor name
	Action     string // exact, or a prefix ending in '.' ("grid.")
	TargetType string
	TargetID   string
	From, To   time.Time
	Before     int64 // cursor: entries with a smaller id
	Limit      int
}

// Store reads the trail.
type Store struct{ pool *pgxpool.Pool }

// NewStore returns a store over pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// List returns entries newest first and the cursor of the next page (0: none).
func (s *Store) List(ctx context.Context, f Filter) ([]Entry, int64, error) {
	var w database.Where
	w.Eq("actor_name", f.Actor)
	if f.Action != "" {
		if strings.HasSuffix(f.Action, ".") {
			w.Add("starts_with(action, ?)", f.Action)
		} else {
			w.Add("action = ?", f.Action)
		}
	}
	w.Eq("target_type", f.TargetType)
	w.Eq("target_id", f.TargetID)
	w.AddTime("at >= ?", f.From)
	w.AddTime("at < ?", f.To)
	out, next, err := database.QueryPage(ctx, s.pool,
		`SELECT id, at, actor_kind, COALESCE(actor_id, 0), actor_name, action, target_type, target_id, summary, request_id, ip FROM audit_log`,
		w, database.Keyset{Key: "id", Desc: true, Cursor: f.Before, Limit: f.Limit},
		func(r pgx.CollectableRow) (Entry, error) {
			var e Entry
			var summary []byte
			if err := r.Scan(&e.ID, &e.At, &e.Actor.Kind, &e.Actor.ID, &e.Actor.Name, &e.Action, &e.TargetType, &e.TargetID, &summary, &e.RequestID, &e.IP); err != nil {
				return e, err
			}
			return e, json.Unmarshal(summary, &e.Summary)
		}, func(e Entry) int64 { return e.ID })
	if err != nil {
		return nil, 0, fmt.Errorf("audit list: %w", err)
	}
	return out, next, nil
}
