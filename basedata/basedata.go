// Package basedata owns the base data a grid team keeps (issue 19, 人、房、
// 地、物): buildings, households and residents, land parcels and city
// components (部件, GB/T 30428.2), each placed in the grids by the one
// placement rule of cases and cameras (geo.GridAt) and carried along when
// boundaries are redrawn (FollowGrids, the participants' contract of
// package geo).
//
// Residents' personal data are protected by design: ID numbers, phones and
// exact birth dates are sealed with a key that is not in the database
// (internal/pii), found by exact ID through a keyed hash, shown masked, and
// revealed only for a stated purpose, audited.
//
// The Service is cut by concern: buildings.go, parcels.go, components.go
// and summary.go (places, land and things), households.go, residents.go,
// visits.go and rotate.go (people), import*.go (GeoJSON and CSV, all or
// nothing) and tiles.go (the map layers).
package basedata

import (
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch/internal/database"
	"gridwatch/internal/pii"
)

// Options configure the service.
type Options struct {
	Now    func() time.Time
	Logger *slog.Logger
	// Keys seal and open residents' personal data; nil refuses every
	// operation that needs them (imports of residents, unmasking) with
	// 503, and lists still answer (masks are stored).
	Keys *pii.Keyring
	// Export allows the bulk export of personal data (--pii-export), off
	// by default.
	Export bool
}

// Service keeps the base data in PostgreSQL. All base-data SQL lives in this
// package.
type Service struct {
	pool   *pgxpool.Pool
	now    func() time.Time
	log    *slog.Logger
	keys   *pii.Keyring
	export bool
}

// NewService returns the service.
func NewService(pool *pgxpool.Pool, opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{pool: pool, now: opts.Now, log: opts.Logger, keys: opts.Keys, export: opts.Export}
}

// Viewer is who reads or writes base data.
type Viewer struct {
	// UserID is the caller as a user (0: an API token).
	UserID int64
	// Grids limits what the caller sees and changes to these grids and
	// their descendants; nil: all.
	Grids []int64
	// Residents lets the caller see residents one by one (masked) and
	// per-person care flags (residents.read); without it only counts.
	Residents bool
}

// where adds v's grid scope on a table aliased alias (with a grid_id
// column) to a query's conditions.
func (v Viewer) where(w *database.Where, alias string) {
	if v.Grids != nil {
		w.Add(alias+".grid_id IN (SELECT * FROM grid_subtree(?))", v.Grids)
	}
}
