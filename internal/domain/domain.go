// Package domain builds Gridwatch's domain over one database pool: the grid
// store and its in-process locator, accounts and access, the audit trail,
// incidents, the camera registry and the footage index, wired to each other
// the one way the service runs them. `gridwatch serve` and the tests that
// need the real wiring (api, geo) call New, so the order in which boundary
// changes carry scopes, cameras and cases along is written once.
//
// It also seeds the demo city (demo.go): grids, cameras, grid staff, demo
// accounts and the demo integration token, through the stores' public API.
//
// The package sits beside cmd/gridwatch in the import graph: it imports
// api (for APIDeps) and the domain packages, and only the command and tests
// import it, so no domain package depends on it.
package domain

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch/api"
	"gridwatch/audit"
	"gridwatch/auth"
	"gridwatch/basedata"
	"gridwatch/camera"
	"gridwatch/camera/record"
	"gridwatch/geo"
	"gridwatch/incident"
	"gridwatch/patrol"
)

// Options configure the parts New builds. Each part's own options are
// passed through; New fills in what the wiring decides (the incidents'
// locator and their link to footage) and the logger where a part has none.
type Options struct {
	Logger    *slog.Logger
	Grids     geo.StoreOptions
	Auth      auth.Options
	Incidents incident.Options
	Patrols   patrol.Options
	Base      basedata.Options
}

// Domain is the stores and services of one database, wired.
type Domain struct {
	Grids     *geo.Store
	Locator   *geo.Locator
	Auth      *auth.Service
	Audit     *audit.Store
	Incidents *incident.Service
	Cameras   *camera.Store
	Footage   *record.Store
	Patrols   *patrol.Service
	Base      *basedata.Service

	log *slog.Logger
}

// New builds the domain over pool. The locator is empty until Refresh (or
// its Run loop) loads it; until then incidents are placed in PostGIS.
func New(pool *pgxpool.Pool, opts Options) *Domain {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Grids.Logger == nil {
		opts.Grids.Logger = log
	}
	if opts.Auth.Logger == nil {
		opts.Auth.Logger = log
	}
	if opts.Incidents.Logger == nil {
		opts.Incidents.Logger = log
	}
	d := &Domain{log: log}
	d.Grids = geo.NewStore(pool, opts.Grids)
	d.Locator = geo.NewLocator(d.Grids)
	d.Auth = auth.NewService(pool, opts.Auth)
	d.Audit = audit.NewStore(pool)
	d.Cameras = camera.NewStore(pool)
	d.Footage = record.NewStore(pool)
	opts.Incidents.Locator = d.Locator
	opts.Incidents.OnCreated = d.linkFootage
	d.Incidents = incident.NewService(pool, opts.Incidents)
	if opts.Patrols.Logger == nil {
		opts.Patrols.Logger = log
	}
	d.Patrols = patrol.NewService(pool, opts.Patrols)
	if opts.Base.Logger == nil {
		opts.Base.Logger = log
	}
	d.Base = basedata.NewService(pool, opts.Base)

	// A boundary change or an import carries scopes, cameras and cases
	// along in its transaction, from what geo tells them changed hands (no
	// re-placement of the whole city follows). Scopes go first: they may
	// veto a merge, and nothing else should be moved for a change that is
	// refused.
	d.Grids.Participate(d.Auth.FollowGrids)
	d.Grids.Participate(d.Cameras.FollowGrids)
	d.Grids.Participate(d.Incidents.FollowGrids)
	d.Grids.Participate(d.Base.FollowGrids)

	return d
}

// linkFootage links new incidents to the footage of the cameras that saw
// their spots around their reported times (evidence hold included).
func (d *Domain) linkFootage(ctx context.Context, ids []int64) {
	if _, err := d.Footage.LinkIncidents(ctx, ids, record.DefaultLinkWindow()); err != nil {
		d.log.Error("link footage to new incidents", "incidents", len(ids), "err", err)
	}
}

// APIDeps returns the API's dependencies on the domain: grids, locator,
// accounts, audit, incidents, cameras and patrols. The caller adds the rest (video,
// recordings, events, settings), which the service starts separately.
func (d *Domain) APIDeps() api.Deps {
	return api.Deps{
		Grids:     d.Grids,
		Locator:   d.Locator,
		Auth:      d.Auth,
		Audit:     d.Audit,
		Incidents: d.Incidents,
		Cameras:   d.Cameras,
		Patrols:   d.Patrols,
		Base:      d.Base,
	}
}
