package patrol

import (
	"context"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"gridwatch/geo/geotest"
)

// BenchmarkPatrolPoints: batches of 50 points into 1000 open patrols, sent
// from concurrent goroutines as a city's phones would; each batch is
// placed in grids, deduplicated, walked for its distance and published in
// one transaction. Reports points/s.
func BenchmarkPatrolPoints(b *testing.B) { benchPoints(b, false) }

// BenchmarkPatrolPointsRawInsert is the baseline in the same run: the same
// batches, from the same goroutines, inserted into patrol_points by one
// plain INSERT … unnest each (no grid, no distance, no lock, no event): what
// PostgreSQL itself costs per point.
func BenchmarkPatrolPointsRawInsert(b *testing.B) { benchPoints(b, true) }

func benchPoints(b *testing.B, raw bool) {
	const patrols, batch = 1000, 50
	now := time.Now()
	started := now.Add(-6 * 24 * time.Hour)
	c := newCity(b, now)
	ctx := context.Background()
	rows, err := c.pool.Query(ctx, `WITH u AS (
			INSERT INTO users (username, role, password_hash)
			SELECT 'bench' || i, 'grid_leader', 'x' FROM generate_series(1, $1::int) i RETURNING id
		) INSERT INTO patrols (user_id, started_at) SELECT id, $2 FROM u ORDER BY id RETURNING id, user_id`, patrols, started)
	if err != nil {
		b.Fatal(err)
	}
	var ids, users []int64
	for rows.Next() {
		var id, user int64
		if err := rows.Scan(&id, &user); err != nil {
			b.Fatal(err)
		}
		ids, users = append(ids, id), append(users, user)
	}
	if rows.Err() != nil || len(ids) != patrols {
		b.Fatalf("%d patrols: %v", len(ids), rows.Err())
	}
	var next atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		pts := make([]Point, batch)
		accuracy := 8.0
		for pb.Next() {
			n := next.Add(1) - 1
			p, round := n%patrols, int(n/patrols)
			// Each member circles the middle of a cell, a fix every 5 s
			// (about 2 m apart).
			mid := geotest.Middle(c.cells[int(p)%len(c.cells)])
			for k := range pts {
				i := round*batch + k
				a := float64(i) * 0.05
				pts[k] = Point{At: started.Add(time.Duration(i) * 5 * time.Second),
					Lon: mid[0] + 0.0005*math.Cos(a), Lat: mid[1] + 0.0005*math.Sin(a), AccuracyM: &accuracy}
			}
			if raw {
				ats, lons, lats := make([]time.Time, batch), make([]float64, batch), make([]float64, batch)
				for k, pt := range pts {
					ats[k], lons[k], lats[k] = pt.At, pt.Lon, pt.Lat
				}
				if _, err := c.pool.Exec(ctx, `INSERT INTO patrol_points (patrol_id, at, geom, accuracy_m)
					SELECT $1, a, ST_SetSRID(ST_MakePoint(x, y), 4326), $5 FROM unnest($2::timestamptz[], $3::float8[], $4::float8[]) AS t(a, x, y)
					ON CONFLICT DO NOTHING`, ids[p], ats, lons, lats, accuracy); err != nil {
					b.Error(err)
					return
				}
				continue
			}
			if _, err := c.svc.AddPoints(ctx, ids[p], Viewer{UserID: users[p]}, pts); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "points/s")
}
