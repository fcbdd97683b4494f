// Package patrol owns patrols (巡查, issue 18): a grid member starts a patrol
// on the phone, walks, and stops it; the phone samples its position
// sparingly and sends the points in batches, late when it was offline. The
// command centre sees the patrols on the map, live, and counts them in the
// monthly statistics (hours, distance, grids covered).
//
// Each point is placed in the grid covering it by the one placement rule of
// cases and cameras (geo.GridAt: the finest grid, the lowest code on a shared
// edge) in the statement that stores the batch. A replayed batch is a no-op:
// a track has one point per instant. The distance is PostGIS's geography
// length of the track in time order, without the points the phone was not
// sure of (accuracy over MaxAccuracyM) and without GPS jumps (a point that
// would mean moving faster than MaxSpeed from the last point counted); it is
// walked on from where the last batch left it, and again from the start
// when a late batch reaches back before that.
//
// The Service is cut by concern: patrol.go (types, the service, who sees
// what), parse.go (a batch of points as the phone sends it), store.go
// (start, end, read, list, track), points.go (storing a batch, the distance
// walk) and stats.go (the monthly figures per member).
package patrol

import (
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch"
	"gridwatch/geo"
	"gridwatch/internal/database"
)

// Limits and rules of a track.
const (
	// MaxBatch is the most points one batch may carry.
	MaxBatch = 1000
	// MaxPoints is the most points one patrol keeps (a point every 5 s
	// for more than five days): beyond it a batch is refused.
	MaxPoints = 100_000
	// MaxAccuracyM is the worst accuracy a point may have to count in the
	// distance; worse points are kept (and shown) but not counted.
	MaxAccuracyM = 100
	// MaxSpeed (m/s) is the fastest a member is taken to move: a point
	// further from the last counted one than this speed allows is a GPS
	// jump and not counted.
	MaxSpeed = 50
	// EarlySlack is how long before the patrol's start a point may be
	// dated (the phone takes its first fix as the member taps Start).
	EarlySlack = time.Minute
	// FutureSlack is how far ahead of the server's clock a time may be
	// (phones' clocks drift).
	FutureSlack = 5 * time.Minute
	// MaxBackdate is how long ago a patrol may be said to have started (a
	// start queued on a phone offline).
	MaxBackdate = 7 * 24 * time.Hour
	// LostAfter is how long after its last point (or its start, without
	// one) an open patrol is taken to have been walked: past it the
	// dashboard shows the member lost, and the monthly hours stop counting
	// it (see Stats).
	LostAfter = 10 * time.Minute
)

// Event types (kind "patrol"), published in the transaction of the change.
// Their data carry the patrol's id, user_id and the grids they concern
// ("grids": ids), and their grid is the patrol's last point's.
const (
	EventStarted  = "patrol.started"
	EventPosition = "patrol.position"
	EventEnded    = "patrol.ended"
)

// User is a patrol's member.
type User struct {
	ID          int64  `json:"id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
}

// Position is a point of a track as the map shows it.
type Position struct {
	Lon       float64   `json:"lon"`
	Lat       float64   `json:"lat"`
	At        time.Time `json:"at"`
	AccuracyM *float64  `json:"accuracy_m"`
	// GridID is the grid the point lies in (nil: none).
	GridID *int64 `json:"grid_id"`
}

// Patrol is one patrol as the API shows it.
type Patrol struct {
	ID        int64      `json:"id"`
	User      User       `json:"user"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at"`
	Active    bool       `json:"active"`
	DistanceM float64    `json:"distance_m"`
	Points    int        `json:"points"`
	// Grids are the grids its points lie in, by code.
	Grids []geo.Ref `json:"grids"`
	// Last is its latest point by time (nil: none yet).
	Last *Position `json:"last"`
	// FreshSeconds is how old Last is, in whole seconds (nil: no point).
	FreshSeconds *int64    `json:"fresh_seconds"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	// ClosedPatrolID, in the answer of the start that opened this patrol
	// only, names the member's earlier patrol the start closed (one left
	// open, or ended after this one's start): see Service.Start.
	ClosedPatrolID int64 `json:"closed_patrol_id,omitempty"`
}

// Options configure the service.
type Options struct {
	Now    func() time.Time
	Logger *slog.Logger
}

// Service keeps patrols in PostgreSQL. All patrol SQL lives in this package.
type Service struct {
	pool *pgxpool.Pool
	now  func() time.Time
	log  *slog.Logger
}

// NewService returns the service.
func NewService(pool *pgxpool.Pool, opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{pool: pool, now: opts.Now, log: opts.Logger}
}

// Viewer is who reads patrols.
type Viewer struct {
	// UserID is the caller as a user (0: an API token, which owns none);
	// a member always sees their own patrols.
	UserID int64
	// All lets the caller see others' patrols (patrols.read).
	All bool
	// Grids, with All, limits the others' patrols to those that touched
	// these grids or their descendants; nil: all.
	Grids []int64
}

// where adds v's limits on patrols p to a query's conditions.
func (v Viewer) where(w *database.Where) {
	switch {
	case !v.All:
		w.Add("p.user_id = ?", v.UserID)
	case v.Grids != nil:
		w.Add(`(p.user_id = ? OR EXISTS (SELECT 1 FROM patrol_grids pg
			WHERE pg.patrol_id = p.id AND pg.grid_id IN (SELECT * FROM grid_subtree(?))))`, v.UserID, v.Grids)
	}
}

// FieldError is a bad field of a request: it names the field, and more
// details when given (a point's index).
func FieldError(field string, more map[string]any, format string, args ...any) error {
	d := map[string]any{"field": field}
	for k, v := range more {
		d[k] = v
	}
	return gridwatch.Errorf(gridwatch.EInvalid, field+": "+format, args...).WithDetails(d)
}

func notFound(id int64) error {
	return gridwatch.Errorf(gridwatch.ENotFound, "patrol %d not found", id)
}
