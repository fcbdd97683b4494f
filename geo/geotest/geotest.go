// Package geotest builds the grid fixtures that the tests and benchmarks of
// several packages share: a city's GeoJSON parsed and imported into a grid
// store (the demo city in a fresh database, or any city into a store the
// caller wired), an in-process locator over it, a point inside each grid, the
// synthetic cities of any size, and the database the benchmarks of one binary
// keep. It is for tests only: production code never imports it.
//
// geo's own in-package tests cannot import it (it imports geo); they build
// the same things with geo's unexported helpers.
package geotest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch/geo"
	"gridwatch/geo/internal/citygen"
	"gridwatch/internal/database"
	"gridwatch/internal/testdb"
)

// City is a grid fixture: the pool it lives in, the grid store over it and
// the features it was imported from, in their GeoJSON order.
type City struct {
	Pool     *pgxpool.Pool
	Grids    *geo.Store
	Features []geo.ImportFeature
}

// Demo imports geo.DemoCity into a fresh database (dropped when tb ends),
// through a grid store with default options and no participants.
func Demo(tb testing.TB) *City {
	tb.Helper()
	pool := testdb.New(tb)
	grids := geo.NewStore(pool, geo.StoreOptions{})
	return &City{Pool: pool, Grids: grids, Features: Import(tb, grids, geo.DemoCity())}
}

// Import parses the FeatureCollection data and imports it through grids, so
// the participants registered on grids run; it returns the parsed features.
func Import(tb testing.TB, grids *geo.Store, data []byte) []geo.ImportFeature {
	tb.Helper()
	fs, err := geo.ParseFeatureCollection(data, geo.ParseOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := grids.Import(context.Background(), fs, geo.ImportOptions{}); err != nil {
		tb.Fatal(err)
	}
	return fs
}

// Locator returns an in-process locator over grids, loaded.
func Locator(tb testing.TB, grids *geo.Store) *geo.Locator {
	tb.Helper()
	loc := geo.NewLocator(grids)
	if err := loc.Refresh(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return loc
}

// Cells returns the grid-level features of fs (the leaves, where cameras and
// cases are placed), in their order.
func Cells(fs []geo.ImportFeature) []geo.ImportFeature {
	var out []geo.ImportFeature
	for _, f := range fs {
		if f.Level == geo.LevelGrid {
			out = append(out, f)
		}
	}
	return out
}

// Middle is the mean of the vertices of f's first outer ring: a point inside
// f when the ring is convex, as the demo and synthetic cities' cells are.
func Middle(f geo.ImportFeature) [2]float64 {
	ring := f.Geometry.Polygon(0).Coords()[0]
	ring = ring[:len(ring)-1] // closed: the last vertex is the first again
	var sum [2]float64
	for _, p := range ring {
		sum[0], sum[1] = sum[0]+p[0], sum[1]+p[1]
	}
	return [2]float64{sum[0] / float64(len(ring)), sum[1] / float64(len(ring))}
}

// KeptPool opens a pool on a fresh database that outlives tb: for a city
// the benchmarks of one binary share (testdb.New's cleanup would drop it
// when the first benchmark ends). The cluster, and so the database, ends
// with the binary.
func KeptPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	pool, err := database.Open(context.Background(), testdb.DSNKept(tb), database.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return pool
}

// SharedVertex is the third vertex of the first grid cell of fs: in the
// demo city a lattice vertex that several grids share, where the placement
// rule (lowest code) decides and a camera there sees into several grids.
func SharedVertex(fs []geo.ImportFeature) [2]float64 {
	v := Cells(fs)[0].Geometry.Polygon(0).Coords()[0][2]
	return [2]float64{v[0], v[1]}
}

// Synthetic returns a synthetic city of at least n grids (clamped to 1 to a
// million), as a GeoJSON FeatureCollection: a district like the demo city's,
// of jittered cells about 400 m across, the same for the same n. It is for
// benchmarks and load tests; geo exports only the demo city.
func Synthetic(n int) []byte { return citygen.Synthetic(n) }
