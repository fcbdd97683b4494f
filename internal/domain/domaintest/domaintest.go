// Package domaintest builds, for tests and benchmarks, the whole domain as
// gridwatch serve wires it (internal/domain) over a fresh database with a
// city already imported. It is for tests only: production code never
// imports it.
//
// It is apart from geo/geotest because it imports every domain package:
// camera's and incident's in-package tests use geotest, which must not
// import them back.
package domaintest

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch/geo"
	"gridwatch/geo/geotest"
	"gridwatch/internal/domain"
	"gridwatch/internal/testdb"
)

// City is a domain over a fresh database (dropped when the test ends) with a
// city imported.
type City struct {
	*domain.Domain
	// Pool is the database the domain is built over, for the test's own
	// queries.
	Pool *pgxpool.Pool
	// Features is the city as parsed, in GeoJSON order.
	Features []geo.ImportFeature
}

// New builds the domain from opts over a fresh database and imports the
// FeatureCollection city through its grid store, so every participant runs
// as in production. The locator stays empty, as domain.New leaves it:
// Refresh it where the test wants cases placed in process.
func New(tb testing.TB, opts domain.Options, city []byte) *City {
	tb.Helper()
	pool := testdb.New(tb)
	d := domain.New(pool, opts)
	return &City{Domain: d, Pool: pool, Features: geotest.Import(tb, d.Grids, city)}
}
