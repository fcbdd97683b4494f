package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"gridwatch/cluster"
	"gridwatch/internal/testdb"
)

// BenchmarkBeat1000Cameras5Nodes is the database's work for a cluster of 5
// nodes sharing 1,000 recording cameras: "claim" is the cold start (every
// camera claimed from nothing, by the nodes' beats until all are owned,
// reported per camera), "beat" one steady node's beat (its node row, its
// ~200 leases renewed in one statement, its demand, the claim and hand-over
// queries that find nothing to do) — the time a beat holds the database.
func BenchmarkBeat1000Cameras5Nodes(b *testing.B) {
	pool := testdb.New(b)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO cameras (code, name, location, heading, fov, range_m, cone, main_url, record)
		SELECT 'B' || g, 'bench ' || g, ST_SetSRID(ST_MakePoint(118.7 + g * 0.0001, 32.0), 4326), 0, 60, 50,
			ST_Buffer(ST_SetSRID(ST_MakePoint(118.7 + g * 0.0001, 32.0), 4326), 0.0003), 'rtsp://camera.invalid/x', true
		FROM generate_series(1, 1000) g`); err != nil {
		b.Fatal(err)
	}
	var nodes []*cluster.Node
	for i := range 5 {
		n, err := cluster.New(ctx, pool, cluster.Config{ID: fmt.Sprintf("bench-%d", i), URL: "http://x", Lease: 10 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	// The baseline: one round trip to the database, nothing done.
	b.Run("roundtrip", func(b *testing.B) {
		for b.Loop() {
			if _, err := pool.Exec(ctx, `SELECT 1`); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("claim", func(b *testing.B) {
		for b.Loop() {
			if _, err := pool.Exec(ctx, `DELETE FROM camera_leases`); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			for owned := 0; owned < 1000; {
				for _, n := range nodes {
					if err := n.Beat(ctx); err != nil {
						b.Fatal(err)
					}
				}
				if err := pool.QueryRow(ctx, `SELECT count(*) FROM camera_owners`).Scan(&owned); err != nil {
					b.Fatal(err)
				}
				if time.Since(start) > time.Minute {
					b.Fatalf("only %d of 1000 cameras owned after a minute", owned)
				}
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "µs/camera")
		}
	})
	b.Run("beat", func(b *testing.B) {
		// Steady: every node beats until nothing moves.
		for range 4 {
			for _, n := range nodes {
				if err := n.Beat(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		total := 0
		for _, n := range nodes {
			total += n.Owned()
		}
		if total != 1000 {
			b.Fatalf("%d cameras owned", total)
		}
		i := 0
		for b.Loop() {
			if err := nodes[i%len(nodes)].Beat(ctx); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(nodes[0].Owned()), "leases/node")
	})
}
