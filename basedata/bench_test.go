package basedata

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch/geo"
	"gridwatch/geo/geotest"
	"gridwatch/internal/pii"
)

// The people benchmarks run over one city, built once per benchmark binary
// in its own database: the 10,000-grid synthetic city, 100,000 buildings
// (ten per grid, placed with set-based SQL), and the CSV of 1,000,000
// residents in 200,000 households (two per building, five people each)
// that BenchmarkResidentImport imports. The import leaves its last run's
// residents in place for BenchmarkGridSummary.

const (
	benchBuildings  = 100_000
	benchHouseholds = 200_000
	benchResidents  = 1_000_000
)

type peopleCity struct {
	pool *pgxpool.Pool
	svc  *Service
	// grid, community and district are a grid of each level to summarise.
	grid, community, district int64
	// buildingGrid is each building's grid (building i: code BLD%06d).
	buildingGrid []int64
	// csv is the import: one row per resident.
	csv []byte
}

var (
	peopleOnce sync.Once
	peopleData *peopleCity
)

func loadPeopleCity(b *testing.B) *peopleCity {
	b.Helper()
	peopleOnce.Do(func() {
		ctx := context.Background()
		pool := geotest.KeptPool(b) // shared by the binary's benchmarks
		geotest.Import(b, geo.NewStore(pool, geo.StoreOptions{}), geotest.Synthetic(10000))
		keys, err := pii.Generate(nil)
		if err != nil {
			b.Fatal(err)
		}
		// GRIDWATCH_BENCH_STEPS=1 logs how long each step of an import took.
		log := slog.New(slog.DiscardHandler)
		if os.Getenv("GRIDWATCH_BENCH_STEPS") != "" {
			log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
		c := &peopleCity{pool: pool, svc: NewService(pool, Options{Keys: keys, Logger: log})}
		// Building i in the (i mod grids)-th grid, at a point of it.
		if _, err := pool.Exec(ctx, `WITH leaves AS (
				SELECT id, ST_PointOnSurface(geom) AS pt, row_number() OVER (ORDER BY code) - 1 AS k, count(*) OVER () AS n
				FROM grids WHERE level = 'grid')
			INSERT INTO buildings (code, name, address, floors, location, grid_id)
			SELECT 'BLD' || lpad(i::text, 6, '0'), i || '号楼', '合成路 ' || i || ' 号', 6, l.pt, l.id
			FROM generate_series(0, $1 - 1) i JOIN leaves l ON l.k = i % l.n`, benchBuildings); err != nil {
			b.Fatal(err)
		}
		rows, err := pool.Query(ctx, `SELECT grid_id FROM buildings ORDER BY code`)
		if err != nil {
			b.Fatal(err)
		}
		if c.buildingGrid, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil || len(c.buildingGrid) != benchBuildings {
			b.Fatalf("buildings: %d, %v", len(c.buildingGrid), err)
		}
		if err := pool.QueryRow(ctx, `SELECT
				(SELECT id FROM grids WHERE level = 'grid' ORDER BY code LIMIT 1),
				(SELECT id FROM grids WHERE level = 'community' ORDER BY code LIMIT 1),
				(SELECT id FROM grids WHERE level = 'district' ORDER BY code LIMIT 1)`).Scan(&c.grid, &c.community, &c.district); err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		buf.Grow(benchResidents * 110)
		buf.WriteString("household_code,building_code,unit,room,name,gender,relation,id_number,phone,birth_date,care\n")
		for i := range benchResidents {
			p := benchPerson(i)
			fmt.Fprintf(&buf, "%s,%s,%s,%s,%s,,%s,%s,%s,,%s\n", p.household, p.building, p.unit, p.room, p.name, p.relation, p.id, p.phone, p.care)
		}
		c.csv = buf.Bytes()
		peopleData = c
	})
	if peopleData == nil {
		b.Fatal("the people city failed to build")
	}
	return peopleData
}

// benchPerson is resident i of the bench city: household i/5, in building
// i/10; a unique ID number with the right check digit (born on day i mod
// 32,000 from 1930, sequence i / 32,000); every tenth elderly and alone.
type benchRow struct {
	household, building, unit, room, name, relation, id, phone, care string
	hh, bld                                                          int
	birth                                                            time.Time
}

var (
	benchSurnames = []string{"张", "王", "李", "赵", "刘", "陈", "杨", "黄", "周", "吴"}
	benchGiven    = []string{"伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋"}
	benchRelation = []string{"户主", "配偶", "子女", "子女", "父母"}
	benchEpoch    = time.Date(1930, 1, 1, 0, 0, 0, 0, time.UTC)
)

func benchPerson(i int) benchRow {
	hh := i / 5
	bld := hh / 2
	birth := benchEpoch.AddDate(0, 0, i%32000)
	d := "410105" + birth.Format("20060102") + fmt.Sprintf("%03d", i/32000)
	care := ""
	switch {
	case i%101 == 0:
		care = "veteran"
	case i%37 == 0:
		care = "low_income;disabled"
	case i%10 == 0:
		care = "elderly_alone"
	}
	return benchRow{
		household: fmt.Sprintf("H%07d", hh), building: fmt.Sprintf("BLD%06d", bld), unit: fmt.Sprint(hh%2 + 1), room: fmt.Sprint(101 + hh%2),
		name:     benchSurnames[i%10] + benchGiven[(i/10)%10] + benchGiven[(i/100)%10],
		relation: benchRelation[i%5], id: d + string(pii.CheckDigit(d)), phone: fmt.Sprintf("13%09d", i), care: care,
		hh: hh, bld: bld, birth: birth,
	}
}

// truncatePeople empties the people's tables (and their counts).
func (c *peopleCity) truncatePeople(b *testing.B) {
	b.Helper()
	if _, err := c.pool.Exec(context.Background(), `TRUNCATE home_visits, resident_moves, residents, households, people_counts RESTART IDENTITY`); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkResidentImport imports the 1,000,000 residents of 200,000
// households (CSV, 100 MB) into the empty city: read, check, seal (ID
// number, phone, birth date) in Go, COPY, households and residents
// written set-based, counts per grid by trigger. rows/s is residents.
func BenchmarkResidentImport(b *testing.B) {
	c := loadPeopleCity(b)
	ctx := context.Background()
	var total int
	for b.Loop() {
		b.StopTimer()
		c.truncatePeople(b)
		b.StartTimer()
		res, err := c.svc.ImportResidents(ctx, bytes.NewReader(c.csv), ImportOptions{Format: FormatCSV, Viewer: Viewer{Residents: true}})
		if err != nil || res.Created != benchResidents {
			b.Fatalf("import: %+v %v", res, err)
		}
		total += res.Created
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkResidentCopy is the floor the import is measured against: a
// plain COPY of the same residents, not sealed (the values as they are,
// an unkeyed hash for the unique column), households already resolved,
// into a table shaped as residents with its indexes.
func BenchmarkResidentCopy(b *testing.B) {
	c := loadPeopleCity(b)
	ctx := context.Background()
	if _, err := c.pool.Exec(ctx, `DROP TABLE IF EXISTS residents_copy;
		CREATE TABLE residents_copy (LIKE residents INCLUDING DEFAULTS INCLUDING INDEXES)`); err != nil {
		b.Fatal(err)
	}
	cols := []string{"id", "household_id", "grid_id", "name", "gender", "relation", "birth_year", "id_sealed", "id_hash", "id_masked",
		"phone_sealed", "phone_hash", "phone_masked", "birth_sealed", "key_id", "care"}
	type copyRow struct {
		hh, grid                   int64
		name, relation, id, phone  string
		idHash, phoneHash          []byte
		idMasked, phoneMasked, bth string
		year                       int32
		care                       []string
	}
	rows := make([]copyRow, benchResidents)
	for i := range rows {
		p := benchPerson(i)
		ih, ph := sha256.Sum256([]byte(p.id)), sha256.Sum256([]byte(p.phone))
		care := []string{}
		if p.care != "" {
			care = strings.Split(p.care, ";")
		}
		rows[i] = copyRow{hh: int64(p.hh + 1), grid: c.buildingGrid[p.bld], name: p.name, relation: p.relation, id: p.id, phone: p.phone,
			idHash: ih[:], phoneHash: ph[:], idMasked: pii.MaskID(p.id), phoneMasked: pii.MaskPhone(p.phone),
			bth: p.birth.Format("2006-01-02"), year: int32(p.birth.Year()), care: care}
	}
	var total int
	for b.Loop() {
		b.StopTimer()
		if _, err := c.pool.Exec(ctx, `TRUNCATE residents_copy`); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
			n, err := tx.CopyFrom(ctx, pgx.Identifier{"residents_copy"}, cols, pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
				r := &rows[i]
				return []any{int64(i + 1), r.hh, r.grid, r.name, "", r.relation, r.year, []byte(r.id), r.idHash, r.idMasked,
					[]byte(r.phone), r.phoneHash, r.phoneMasked, []byte(r.bth), int32(1), r.care}, nil
			}))
			total += int(n)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkGridSummary answers a grid's summary (buildings, households,
// residents, care flags, components, parcels) over the city with its
// million residents, at each level: a grid (100 residents), a community,
// the district (all of them).
func BenchmarkGridSummary(b *testing.B) {
	c := loadPeopleCity(b)
	ctx := context.Background()
	var n int
	if err := c.pool.QueryRow(ctx, `SELECT count(*) FROM residents`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	if n != benchResidents {
		c.truncatePeople(b)
		if _, err := c.svc.ImportResidents(ctx, bytes.NewReader(c.csv), ImportOptions{Format: FormatCSV, Viewer: Viewer{Residents: true}}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := c.pool.Exec(ctx, `VACUUM ANALYZE buildings, households, residents, people_counts, components, parcel_grids`); err != nil {
		b.Fatal(err)
	}
	for _, lv := range []struct {
		name string
		id   int64
		want int64
	}{{"grid", c.grid, -1}, {"community", c.community, -1}, {"district", c.district, benchResidents}} {
		b.Run("level="+lv.name, func(b *testing.B) {
			for b.Loop() {
				s, err := c.svc.Summary(ctx, lv.id, Viewer{})
				if err != nil || s.Residents == 0 || lv.want > 0 && s.Residents != lv.want {
					b.Fatalf("summary: %+v %v", s, err)
				}
			}
		})
		// The people's share: households, residents and care flags over
		// the subtree, as Summary asks for them.
		var grids []int64
		if err := c.pool.QueryRow(ctx, `SELECT array_agg(x) FROM grid_subtree(ARRAY[$1::bigint]) x`, lv.id).Scan(&grids); err != nil {
			b.Fatal(err)
		}
		b.Run("level="+lv.name+"/people", func(b *testing.B) {
			for b.Loop() {
				if _, r, _, err := c.svc.residentSummary(ctx, c.pool, grids); err != nil || r == 0 {
					b.Fatalf("people summary: %d %v", r, err)
				}
			}
		})
	}
}
