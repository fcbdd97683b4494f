package geo

import (
	"context"
	"fmt"
	"gridwatch/geo/internal/citygen"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/paulmach/orb"
)

// The benchmarks here hold the in-process Index (through the Locator, as the
// server uses it) against PostGIS on the same grids, imported with
// Store.Import, and TestBenchmarkPointsAgree checks that both give the same
// answer on the points they are timed on. BENCHMARKS.md has the figures.

// Seeds of the point sets, so every run times the same points.
const (
	locateSeed = 2026_0066
	bulkSeed   = 2026_1000
)

// bulkPoints is the size of the bulk assignment batch; perPointBatch is the
// part of it the slow per-point PostGIS query is timed on (its cost is
// linear in the points; the whole batch would add minutes to make bench).
const (
	bulkPoints    = 1_000_000
	perPointBatch = 100_000
)

// pgCity is a generated city imported into a fresh PostGIS database, with a
// Locator loaded from it and the extent of its grids.
type pgCity struct {
	store  *Store
	loc    *Locator
	bound  orb.Bound
	vertex []orb.Point // every vertex of every grid-level feature, as imported
}

// importCity parses data and imports it with Store.Import into a new
// database, then loads a Locator from the store.
func importCity(tb testing.TB, data []byte) *pgCity {
	tb.Helper()
	ctx := context.Background()
	fs := mustParse(tb, data)
	s := newTestStore(tb)
	if _, err := s.Import(ctx, fs, ImportOptions{}); err != nil {
		tb.Fatalf("import: %v", err)
	}
	// What a PostGIS user does after a bulk load, so the planner sees the rows.
	if _, err := s.pool.Exec(ctx, "VACUUM ANALYZE grids"); err != nil {
		tb.Fatalf("analyze: %v", err)
	}
	loc := NewLocator(s)
	if err := loc.Refresh(ctx); err != nil {
		tb.Fatalf("load the locator: %v", err)
	}
	c := &pgCity{store: s, loc: loc}
	first := true
	for _, f := range fs {
		b := f.Geometry.Bounds()
		fb := orb.Bound{Min: orb.Point{b.Min(0), b.Min(1)}, Max: orb.Point{b.Max(0), b.Max(1)}}
		if first {
			c.bound, first = fb, false
		} else {
			c.bound = c.bound.Union(fb)
		}
		if f.Level != LevelGrid {
			continue
		}
		flat, stride := f.Geometry.FlatCoords(), f.Geometry.Stride()
		for k := 0; k+1 < len(flat); k += stride {
			c.vertex = append(c.vertex, orb.Point{flat[k], flat[k+1]})
		}
	}
	return c
}

// cityPoints returns n points from a fixed seed: nine in ten uniform over
// bound, the rest in a frame a tenth of its size wide around it, outside
// every grid. The first k points are the same for every n ≥ k.
func cityPoints(bound orb.Bound, n int, seed uint64) []orb.Point {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	outer := bound.Pad(max(bound.Max[0]-bound.Min[0], bound.Max[1]-bound.Min[1]) / 10)
	pts := make([]orb.Point, n)
	uniform := func(b orb.Bound) orb.Point {
		return orb.Point{b.Min[0] + rng.Float64()*(b.Max[0]-b.Min[0]), b.Min[1] + rng.Float64()*(b.Max[1]-b.Min[1])}
	}
	for i := range pts {
		if rng.IntN(10) > 0 {
			pts[i] = uniform(bound)
			continue
		}
		for {
			p := uniform(outer)
			if !bound.Contains(p) {
				pts[i] = p
				break
			}
		}
	}
	return pts
}

// BenchmarkLocate times point → grid chain lookups in process (Locator) and
// in PostGIS (Store.LocateDB, one round trip per lookup, as a caller would
// have it), one goroutine and in parallel, on the demo city (66 grids) and
// a synthetic one of 10,000.
func BenchmarkLocate(b *testing.B) {
	for _, city := range []struct {
		grids int
		data  func() []byte
	}{{66, DemoCity}, {10000, func() []byte { return citygen.Synthetic(10000) }}} {
		// A benchmark with sub-benchmarks runs once, so the city is imported
		// once for all four.
		b.Run(fmt.Sprintf("grids=%d", city.grids), func(b *testing.B) {
			c := importCity(b, city.data())
			pts := cityPoints(c.bound, 1<<14, locateSeed)
			ctx := context.Background()

			b.Run("impl=index", func(b *testing.B) {
				b.ReportAllocs()
				ps := pointCycle{pts: pts}
				for b.Loop() {
					p := ps.next()
					c.loc.Locate(p[0], p[1])
				}
				reportRate(b, 1, "lookups/s")
			})
			b.Run("impl=index-parallel", func(b *testing.B) {
				parallelCycles(b, pts, func(pb *testing.PB, ps *pointCycle) {
					for pb.Next() {
						p := ps.next()
						c.loc.Locate(p[0], p[1])
					}
				})
			})
			b.Run("impl=postgis", func(b *testing.B) {
				b.ReportAllocs()
				ps := pointCycle{pts: pts}
				for b.Loop() {
					p := ps.next()
					if _, err := c.store.LocateDB(ctx, p[0], p[1]); err != nil {
						b.Fatal(err)
					}
				}
				reportRate(b, 1, "lookups/s")
			})
			b.Run("impl=postgis-parallel", func(b *testing.B) {
				// One goroutine per pooled connection (4 on 2 cores), so the
				// server is never idle waiting for a client.
				conns := int(c.store.pool.Config().MaxConns)
				b.SetParallelism(max(1, conns/runtime.GOMAXPROCS(0)))
				parallelCycles(b, pts, func(pb *testing.PB, ps *pointCycle) {
					for pb.Next() {
						p := ps.next()
						if _, err := c.store.LocateDB(ctx, p[0], p[1]); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		})
	}
}

// pointCycle hands out a benchmark's points in turn, round and round, from
// a start of its own (len(pts) is a power of two). next is small enough to
// be inlined (go test -gcflags=-m: "inlining call to (*pointCycle).next"),
// so a timed loop pays no call for it.
type pointCycle struct {
	pts []orb.Point
	i   int
}

func (c *pointCycle) next() orb.Point {
	p := c.pts[c.i&(len(c.pts)-1)]
	c.i++
	return p
}

// parallelCycles times body on b.RunParallel's goroutines and reports the
// lookups per second. Each goroutine gets its own pointCycle over pts,
// starting 4099 points after the one before, so they do not look up the
// same points in step; body runs once per goroutine and loops itself, so
// the timed loop pays no call for it.
func parallelCycles(b *testing.B, pts []orb.Point, body func(pb *testing.PB, ps *pointCycle)) {
	b.ReportAllocs()
	var start atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ps := pointCycle{pts: pts, i: int(start.Add(4099))}
		body(pb, &ps)
	})
	reportRate(b, 1, "lookups/s")
}

// reportRate reports perOp·b.N per second of the timed run.
func reportRate(b *testing.B, perOp int, unit string) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(perOp)*float64(b.N)/s, unit)
	}
}

// pointsTable is where the bulk benchmarks load their points into PostGIS.
const pointsTable = "bench_points"

// loadPoints replaces the points table with pts as (id int = position in
// pts, pt geometry(Point, 4326)): the coordinates copied in as doubles and
// made points in SQL, then a GiST index and ANALYZE, as a PostGIS user
// prepares a bulk job.
func loadPoints(ctx context.Context, pool *pgxpool.Pool, pts []orb.Point) error {
	const table = pointsTable
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DROP TABLE IF EXISTS `+table+`;
			CREATE TEMP TABLE points_in (id int, lon float8, lat float8) ON COMMIT DROP`); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"points_in"}, []string{"id", "lon", "lat"},
			pgx.CopyFromSlice(len(pts), func(i int) ([]any, error) {
				return []any{int32(i), pts[i][0], pts[i][1]}, nil
			}))
		if err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		_, err = tx.Exec(ctx, `CREATE TABLE `+table+` AS
				SELECT id, ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geometry(Point, 4326) AS pt FROM points_in;
			CREATE INDEX ON `+table+` USING gist (pt);
			ANALYZE `+table)
		return err
	})
}

// Two set-based assignments in PostGIS: every point of the points table gets
// the most specific grid covering it, the lowest code on ties, as the Index
// does. Both return (point id, grid id); the first leaves out points in no
// grid, the second gives them grid 0 and takes the points with id < $1.
const (
	// assignByGridSQL is driven from the grids: one GiST probe of the points
	// per grid, each grid's polygon prepared once for all its points, then a
	// sort to keep the best grid per point. It is the fastest form found;
	// OFFSET 0 keeps the planner from turning it into the per-point plan.
	assignByGridSQL = `SELECT DISTINCT ON (p.id) p.id, g.id
		FROM grids g CROSS JOIN LATERAL (SELECT id FROM ` + pointsTable + ` p WHERE ST_Covers(g.geom, p.pt) OFFSET 0) p
		ORDER BY p.id, g.level_rank DESC, g.code`
	// assignByPointSQL is the query as one first writes it: a GiST probe of
	// the grids per point.
	assignByPointSQL = `SELECT p.id, COALESCE((SELECT g.id FROM grids g WHERE ST_Covers(g.geom, p.pt)
		ORDER BY g.level_rank DESC, g.code LIMIT 1), 0) FROM ` + pointsTable + ` p WHERE p.id < $1`
)

// assignSQL runs one of the assignment queries over the loaded points and
// stores each point's grid id (0 for none) in out, indexed by point id.
func assignSQL(ctx context.Context, pool *pgxpool.Pool, out []int64, query string, args ...any) error {
	clear(out)
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// Room to sort the (point, grid) pairs in memory: a bulk job's setting.
		if _, err := tx.Exec(ctx, "SET LOCAL work_mem = '256MB'"); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		var id int32
		var grid int64
		for rows.Next() {
			if err := rows.Scan(&id, &grid); err != nil {
				return err
			}
			out[id] = grid
		}
		return rows.Err()
	})
}

// assignIndex stores the grid id of each point (0 for none) in out, on one
// goroutine.
func assignIndex(loc *Locator, pts []orb.Point, out []int64) {
	for i, p := range pts {
		ref, _ := loc.Assign(p[0], p[1])
		out[i] = ref.ID
	}
}

// assignIndexParallel does what assignIndex does on workers goroutines,
// each taking the next chunk of points until none are left.
func assignIndexParallel(loc *Locator, pts []orb.Point, out []int64, workers int) {
	const chunk = 8192
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				hi := int(next.Add(chunk))
				lo := hi - chunk
				if lo >= len(pts) {
					return
				}
				hi = min(hi, len(pts))
				assignIndex(loc, pts[lo:hi], out[lo:hi])
			}
		})
	}
	wg.Wait()
}

// BenchmarkBulkAssign assigns a batch of a million points to the 10,000-grid
// city: in process on one goroutine and on GOMAXPROCS, and in PostGIS as a
// set-based join over the points loaded into a table. One iteration is the
// whole batch (perPointBatch for impl=postgis-per-point), so b.N stays small
// (1 for PostGIS at -benchtime 2s); the PostGIS load is timed on its own
// (impl=postgis-load) and not in the joins.
func BenchmarkBulkAssign(b *testing.B) {
	c := importCity(b, citygen.Synthetic(10000))
	pts := cityPoints(c.bound, bulkPoints, bulkSeed)
	out := make([]int64, len(pts))
	ctx := context.Background()
	pool := c.store.pool

	b.Run("impl=index", func(b *testing.B) {
		for b.Loop() {
			assignIndex(c.loc, pts, out)
		}
		reportRate(b, len(pts), "points/s")
	})
	b.Run("impl=index-parallel", func(b *testing.B) {
		workers := runtime.GOMAXPROCS(0)
		for b.Loop() {
			assignIndexParallel(c.loc, pts, out, workers)
		}
		reportRate(b, len(pts), "points/s")
	})
	loaded := false
	load := func(b *testing.B) {
		if err := loadPoints(ctx, pool, pts); err != nil {
			b.Fatalf("load points: %v", err)
		}
		loaded = true
	}
	b.Run("impl=postgis-load", func(b *testing.B) {
		for b.Loop() {
			load(b)
		}
		reportRate(b, len(pts), "points/s")
	})
	for _, q := range []struct {
		name, sql string
		args      []any
		n         int
	}{
		{"impl=postgis", assignByGridSQL, nil, len(pts)},
		{"impl=postgis-per-point", assignByPointSQL, []any{perPointBatch}, perPointBatch},
	} {
		b.Run(q.name, func(b *testing.B) {
			if !loaded {
				load(b)
			}
			for b.Loop() {
				if err := assignSQL(ctx, pool, out, q.sql, q.args...); err != nil {
					b.Fatalf("assign: %v", err)
				}
			}
			reportRate(b, q.n, "points/s")
		})
	}
}

// BenchmarkImport parses the 10,000-grid synthetic city and imports it with
// every check into a fresh database (whose creation is not timed).
func BenchmarkImport(b *testing.B) {
	data := citygen.Synthetic(10000)
	ctx := context.Background()
	n := 0
	for b.Loop() {
		b.StopTimer()
		s := newTestStore(b)
		b.StartTimer()
		fs, err := ParseFeatureCollection(data, ParseOptions{})
		if err != nil {
			b.Fatalf("parse: %v", err)
		}
		if _, err := s.Import(ctx, fs, ImportOptions{}); err != nil {
			b.Fatalf("import: %v", err)
		}
		n = len(fs)
	}
	reportRate(b, n, "grids/s")
}

// TestBenchmarkPointsAgree checks that the index and PostGIS give the same
// answer on the benchmark points over the 10,000-grid city: the whole chain
// for the first 3,000 Locate points and for grid vertices (where the
// lowest-code rule decides), and the assigned grid for the first 20,000 bulk
// points with both assignment queries.
func TestBenchmarkPointsAgree(t *testing.T) {
	c := importCity(t, citygen.Synthetic(10000))
	ctx := context.Background()

	t.Run("locate", func(t *testing.T) {
		pts := cityPoints(c.bound, 3000, locateSeed)
		rng := rand.New(rand.NewPCG(locateSeed, 1))
		for range 500 {
			pts = append(pts, c.vertex[rng.IntN(len(c.vertex))])
		}
		found := 0
		for _, p := range pts {
			want, err := c.store.LocateDB(ctx, p[0], p[1])
			if err != nil {
				t.Fatalf("LocateDB(%v): %v", p, err)
			}
			got := c.loc.Locate(p[0], p[1])
			if !slices.Equal(got, want) {
				t.Errorf("%v: index gives %s, PostGIS %s", p, codesOf(got), codesOf(want))
			}
			if len(want) > 0 {
				found++
			}
		}
		if found < len(pts)/2 {
			t.Errorf("only %d of %d points are in a grid, want most", found, len(pts))
		}
		t.Logf("%d points, %d in a grid", len(pts), found)
	})

	t.Run("assign", func(t *testing.T) {
		pts := cityPoints(c.bound, 20000, bulkSeed)
		if err := loadPoints(ctx, c.store.pool, pts); err != nil {
			t.Fatalf("load points: %v", err)
		}
		want := make([]int64, len(pts))
		assignIndex(c.loc, pts, want)
		par := make([]int64, len(pts))
		assignIndexParallel(c.loc, pts, par, 3)
		if i := firstDiff(par, want); i >= 0 {
			t.Errorf("point %d %v: parallel gives grid %d, one goroutine %d", i, pts[i], par[i], want[i])
		}
		for _, q := range []struct {
			name, sql string
			args      []any
		}{
			{"by grid", assignByGridSQL, nil},
			{"by point", assignByPointSQL, []any{len(pts)}},
		} {
			got := make([]int64, len(pts))
			if err := assignSQL(ctx, c.store.pool, got, q.sql, q.args...); err != nil {
				t.Fatalf("%s: %v", q.name, err)
			}
			bad := 0
			for i := range got {
				if got[i] != want[i] {
					if bad++; bad <= 10 {
						t.Errorf("%s, point %d %v: PostGIS gives grid %d, index %d", q.name, i, pts[i], got[i], want[i])
					}
				}
			}
			if bad > 0 {
				t.Errorf("%s: %d of %d points differ", q.name, bad, len(pts))
			}
		}
	})
}

// firstDiff returns the first position where a and b differ, or -1.
func firstDiff(a, b []int64) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// BenchmarkGridTile times the grid tile over the 10,000-grid city at zoom 8
// (one tile holds nearly the whole city: 9,917 of its 10,117 areas, the
// rest lie over the tile's eastern edge) and 12 (the dashboard a little
// zoomed in, some 500 grids a tile), through Store.GridTile and, as the
// baseline, the
// plain ST_AsMVT query of the PostGIS manual run directly
// (impl=postgis-raw). impl=gridwatch reports its time over the baseline's
// as x-raw, and each the tile's size in bytes.
func BenchmarkGridTile(b *testing.B) {
	c := importCity(b, citygen.Synthetic(10000))
	ctx := context.Background()
	center := c.bound.Center()
	for _, z := range []int{8, 12} {
		t := TileAt(z, center[0], center[1])
		b.Run(fmt.Sprintf("z=%d", z), func(b *testing.B) {
			var raw float64
			b.Run("impl=postgis-raw", func(b *testing.B) {
				q := rawGridTileQuery()
				var tile []byte
				for b.Loop() {
					if err := c.store.pool.QueryRow(ctx, q, t.Z, t.X, t.Y).Scan(&tile); err != nil {
						b.Fatal(err)
					}
				}
				raw = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				b.ReportMetric(float64(len(tile)), "bytes")
			})
			b.Run("impl=gridwatch", func(b *testing.B) {
				// Drawn every time: the cold tile, as after a change.
				var tile []byte
				var err error
				for b.Loop() {
					if tile, _, err = c.store.drawGridTile(ctx, t, nil); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(tile)), "bytes")
				if ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N); raw > 0 {
					b.ReportMetric(ns/raw, "x-raw")
				}
			})
			b.Run("impl=gridwatch-kept", func(b *testing.B) {
				// As served: kept until the grids change (the revision is
				// still read each time).
				var tile []byte
				var err error
				for b.Loop() {
					if tile, err = c.store.GridTile(ctx, t.Z, t.X, t.Y); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(tile)), "bytes")
				if ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N); raw > 0 {
					b.ReportMetric(ns/raw, "x-raw")
				}
			})
		})
	}
}
