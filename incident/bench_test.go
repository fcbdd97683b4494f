package incident

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch/geo"
	"gridwatch/geo/geotest"
)

// benchCity is the 10,000-grid synthetic city, imported once per benchmark
// binary into its own database.
type benchCity struct {
	pool *pgxpool.Pool
	svc  *Service
	box  geo.BBox
}

var (
	benchOnce sync.Once
	benchData *benchCity
)

func loadBenchCity(b *testing.B) *benchCity { return loadBenchCityT(b) }

func loadBenchCityT(b testing.TB) *benchCity {
	b.Helper()
	benchOnce.Do(func() {
		pool := geotest.KeptPool(b) // shared by the binary's benchmarks
		grids := geo.NewStore(pool, geo.StoreOptions{})
		fs := geotest.Import(b, grids, geotest.Synthetic(10000))
		bb := fs[0].Geometry.Bounds()
		benchData = &benchCity{pool: pool, svc: NewService(pool, Options{Locator: geotest.Locator(b, grids)}),
			box: geo.BBox{MinLon: bb.Min(0), MinLat: bb.Min(1), MaxLon: bb.Max(0), MaxLat: bb.Max(1)}}
	})
	if benchData == nil {
		b.Fatal("bench city failed to load")
	}
	return benchData
}

// ndjson makes n reports at fixed-seed random points of the city.
func (c *benchCity) ndjson(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	cats := []string{"0101", "0201", "0302", "0404", "0502", "0601"}
	var b bytes.Buffer
	for i := range n {
		lon := c.box.MinLon + r.Float64()*(c.box.MaxLon-c.box.MinLon)
		lat := c.box.MinLat + r.Float64()*(c.box.MaxLat-c.box.MinLat)
		fmt.Fprintf(&b, `{"source":"sensor","external_id":"s%d-%d","category":%q,"title":"传感器告警 %d","location":{"type":"Point","coordinates":[%.7f,%.7f]}}`+"\n",
			seed, i, cats[i%len(cats)], i, lon, lat)
	}
	return b.Bytes()
}

const benchBatch = 100_000

// BenchmarkBulkIngest files 100,000 NDJSON reports into the 10,000-grid
// city: parse, assign (in process), COPY, insert with history. The
// baseline in the same run is raw PostGIS: COPY the same rows, then one
// INSERT … SELECT assigning each by a spatial join.
func BenchmarkBulkIngest(b *testing.B) {
	c := loadBenchCity(b)
	ctx := context.Background()
	b.Run("impl=gridwatch", func(b *testing.B) {
		// Warm the caches first: under make bench's 2 s a single cold
		// iteration would be the whole measurement.
		if _, err := c.svc.Bulk(ctx, bytes.NewReader(c.ndjson(benchBatch/10, 999)), geo.CRSWGS84, Reporter{Name: "warm"}, func(LineResult) error { return nil }); err != nil {
			b.Fatal(err)
		}
		var total int
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			data := c.ndjson(benchBatch, uint64(1000+i))
			b.StartTimer()
			sum, err := c.svc.Bulk(ctx, bytes.NewReader(data), geo.CRSWGS84, Reporter{Name: "bench"}, func(LineResult) error { return nil })
			if err != nil || sum.Created != benchBatch {
				b.Fatalf("bulk: %+v %v", sum, err)
			}
			total += sum.Created
		}
		b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "incidents/s")
	})
	b.Run("impl=postgis-copy-join", func(b *testing.B) {
		// Warm the same way: the spatial join over a tenth of a batch.
		if _, err := c.pool.Exec(ctx, `SELECT count(*) FROM (SELECT (SELECT g.id FROM grids g WHERE ST_Covers(g.geom, ST_SetSRID(ST_MakePoint($1::float8 + random() * ($2::float8 - $1::float8), $3::float8 + random() * ($4::float8 - $3::float8)), 4326))
			ORDER BY g.level_rank DESC, g.code LIMIT 1) FROM generate_series(1, 10000)) w`, c.box.MinLon, c.box.MaxLon, c.box.MinLat, c.box.MaxLat); err != nil {
			b.Fatal(err)
		}
		var total int
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			r := rand.New(rand.NewPCG(uint64(5000+i), 7))
			rows := make([][]any, benchBatch)
			for k := range rows {
				lon := c.box.MinLon + r.Float64()*(c.box.MaxLon-c.box.MinLon)
				lat := c.box.MinLat + r.Float64()*(c.box.MaxLat-c.box.MinLat)
				rows[k] = []any{fmt.Sprintf("raw%d-%d", i, k), "0101", "告警", lon, lat}
			}
			b.StartTimer()
			err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `CREATE TEMP TABLE raw (ext text, category text, title text, lon float8, lat float8) ON COMMIT DROP`); err != nil {
					return err
				}
				if _, err := tx.CopyFrom(ctx, pgx.Identifier{"raw"}, []string{"ext", "category", "title", "lon", "lat"}, pgx.CopyFromRows(rows)); err != nil {
					return err
				}
				tag, err := tx.Exec(ctx, `INSERT INTO incidents (source, external_id, category, title, location, reported_at, grid_id, deadline)
					SELECT 'sensor', r.ext, r.category, r.title, p.pt, now(),
					       (SELECT g.id FROM grids g WHERE ST_Covers(g.geom, p.pt) ORDER BY g.level_rank DESC, g.code LIMIT 1),
					       now() + interval '24 hours'
					FROM raw r CROSS JOIN LATERAL (SELECT ST_SetSRID(ST_MakePoint(r.lon, r.lat), 4326) AS pt) p`)
				if err == nil && tag.RowsAffected() != benchBatch {
					err = fmt.Errorf("inserted %d", tag.RowsAffected())
				}
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			total += benchBatch
		}
		b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "incidents/s")
	})
}

// BenchmarkCreateOne is one report at a time through the service (what a
// single POST costs below HTTP), with its p50 and p99.
func BenchmarkCreateOne(b *testing.B) {
	c := loadBenchCity(b)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(9, 9))
	var lat []time.Duration
	for b.Loop() {
		n := NewIncident{Source: "hotline", Category: "0101", Title: "单条", Priority: "normal", ReportedAt: time.Now(),
			Lon: c.box.MinLon + r.Float64()*(c.box.MaxLon-c.box.MinLon), Lat: c.box.MinLat + r.Float64()*(c.box.MaxLat-c.box.MinLat)}
		t0 := time.Now()
		if _, _, err := c.svc.Create(ctx, n, Reporter{Name: "bench"}, Viewer{}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	reportPercentiles(b, lat)
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sorted := append([]time.Duration(nil), lat...)
	for i := 1; i < len(sorted); i++ { // insertion sort: small n
		for j := i; j > 0 && sorted[j] < sorted[j-1]; j-- {
			sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
		}
	}
	p := func(q float64) float64 { return float64(sorted[int(q*float64(len(sorted)-1))].Microseconds()) / 1000 }
	b.ReportMetric(p(0.50), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
}
