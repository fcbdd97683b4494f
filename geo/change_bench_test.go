package geo_test

import (
	"context"
	"testing"

	"github.com/twpayne/go-geom"

	"gridwatch/geo"
	"gridwatch/geo/geotest"
	"gridwatch/internal/domain"
	"gridwatch/internal/domain/domaintest"
)

// BenchmarkRedrawPreview times the preview of a grid redraw (the dry run
// of the whole change: lock, topology checks, cameras and cases following,
// roll back) in a city of 10,000 grids and 1,000,000 incidents, beside the
// least PostGIS must do for any preview: count the cases in the changed
// area and find the neighbours the new boundary overlaps.
func BenchmarkRedrawPreview(b *testing.B) {
	ctx := context.Background()
	city := domaintest.New(b, domain.Options{Grids: geo.StoreOptions{OverlapToleranceM2: 1}}, geotest.Synthetic(10000))
	pool, grids := city.Pool, city.Grids
	// 100 cases inside each grid (1,000,000), half of them registered.
	if _, err := pool.Exec(ctx, `INSERT INTO incidents (source, category, title, location, reported_at, deadline, status, grid_id, created_by)
		SELECT 'patrol', '0101', 'bench', p.geom, now(), now() + interval '1 day',
			CASE WHEN p.path[1] % 2 = 0 THEN 'reported' ELSE 'registered' END, g.id, 'bench'
		FROM grids g, ST_Dump(ST_GeneratePoints(g.geom, 100, g.id::int)) p WHERE g.level = 'grid'`); err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{`VACUUM ANALYZE incidents`, `VACUUM ANALYZE grids`} {
		if _, err := pool.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM incidents`).Scan(&n); err != nil || n < 990_000 {
		b.Fatalf("%d incidents, %v", n, err)
	}
	// A grid in the middle of the city, redrawn 5 m smaller all round: the
	// cases in the strip move up to its community, a gap opens.
	var id int64
	var shrunk *geom.MultiPolygon
	if err := pool.QueryRow(ctx, `WITH c AS (SELECT ST_SetSRID(ST_Centroid(ST_Extent(geom)), 4326) AS p FROM grids)
		SELECT g.id, ST_Multi(ST_Buffer(g.geom::geography, -5)::geometry) FROM grids g, c
		WHERE g.level = 'grid' ORDER BY g.geom <-> c.p LIMIT 1`).Scan(&id, &shrunk); err != nil {
		b.Fatal(err)
	}
	shrunk.SetSRID(4326)
	var moved int
	b.Run("preview", func(b *testing.B) {
		for b.Loop() {
			rep, err := grids.Redraw(ctx, id, shrunk, geo.ChangeOptions{IfMatch: -1, DryRun: true})
			if err != nil || rep.Errors > 0 {
				b.Fatalf("preview: %+v, %v", rep, err)
			}
			moved = rep.Incidents.Count + rep.Flagged.Count
		}
		b.ReportMetric(float64(moved), "cases/preview")
	})
	b.Run("postgis-baseline", func(b *testing.B) {
		for b.Loop() {
			var cases, overlaps int
			if err := pool.QueryRow(ctx, `WITH g AS (SELECT geom FROM grids WHERE id = $1),
				area AS (SELECT ST_Difference(g.geom, $2::geometry) AS geom FROM g)
				SELECT (SELECT count(*) FROM incidents i, area WHERE ST_Covers(area.geom, i.location)),
					(SELECT count(*) FROM grids o WHERE o.level = 'grid' AND o.id <> $1 AND o.geom && $2::geometry AND ST_Relate(o.geom, $2::geometry, '2********'))`,
				id, shrunk).Scan(&cases, &overlaps); err != nil {
				b.Fatal(err)
			}
			if cases != moved {
				b.Fatalf("baseline counts %d cases in the strip, the preview moved %d", cases, moved)
			}
		}
	})
}
