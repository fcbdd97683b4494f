package database_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/twpayne/go-geom"

	"gridwatch/internal/database"
	"gridwatch/internal/testdb"
	"gridwatch/migrations"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

func square(x, y, d float64) *geom.MultiPolygon {
	mp := geom.NewMultiPolygon(geom.XY).SetSRID(4326)
	p := geom.NewPolygon(geom.XY).MustSetCoords([][]geom.Coord{{{x, y}, {x + d, y}, {x + d, y + d}, {x, y + d}, {x, y}}})
	if err := mp.Push(p); err != nil {
		panic(err)
	}
	return mp
}

// TestGeometryRoundTrip sends geometries as go-geom values and as EWKB bytes,
// and reads them back in the binary (extended protocol) and text (simple
// protocol) result formats.
func TestGeometryRoundTrip(t *testing.T) {
	pool := testdb.New(t)
	ctx := context.Background()
	want := square(113.6, 34.7, 0.01)
	modes := []struct {
		name string
		mode pgx.QueryExecMode
	}{
		{"binary", pgx.QueryExecModeCacheStatement},
		{"text", pgx.QueryExecModeSimpleProtocol},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			var area float64
			var got *geom.MultiPolygon
			var raw database.EWKB
			var any geom.T
			err := pool.QueryRow(ctx, "SELECT ST_Area($1::geometry), $1::geometry, $1::geometry, $1::geometry", m.mode, want).Scan(&area, &got, &raw, &any)
			if err != nil {
				t.Fatalf("query: %v", err)
			}
			if area < 0.99e-4 || area > 1.01e-4 {
				t.Errorf("area = %g, want 1e-4", area)
			}
			if got.SRID() != 4326 || got.NumPolygons() != 1 || got.Polygon(0).Coords()[0][2][0] != 113.61 {
				t.Errorf("got %v srid %d, want the square back", got.FlatCoords(), got.SRID())
			}
			if len(raw) == 0 || raw[0] != 1 {
				t.Errorf("raw EWKB = %x, want little-endian EWKB", raw)
			}
			if _, ok := any.(*geom.MultiPolygon); !ok {
				t.Errorf("geom.T target got %T", any)
			}
			// EWKB bytes as a parameter, and a NULL.
			var srid int
			var null *geom.MultiPolygon = square(0, 0, 1)
			if err := pool.QueryRow(ctx, "SELECT ST_SRID($1::geometry), NULL::geometry", m.mode, raw).Scan(&srid, &null); err != nil {
				t.Fatalf("bytes param: %v", err)
			}
			if srid != 4326 || null != nil {
				t.Errorf("srid = %d, null = %v; want 4326 and nil", srid, null)
			}
		})
	}
}

func TestGeometryWrongTarget(t *testing.T) {
	pool := testdb.New(t)
	var p *geom.Point
	err := pool.QueryRow(context.Background(), "SELECT $1::geometry", square(0, 0, 1)).Scan(&p)
	if err == nil {
		t.Fatal("scanning a polygon into a point succeeded, want an error")
	}
}

func TestMigrateIdempotentAndPending(t *testing.T) {
	pool := testdb.New(t)
	ctx := context.Background()
	applied, err := database.Migrate(ctx, pool, migrations.FS())
	if err != nil || len(applied) != 0 {
		t.Fatalf("re-migrate applied %v, err %v; want nothing", applied, err)
	}
	extra := fstest.MapFS{
		"0001_grids.sql":  {Data: []byte("SELECT 1")},
		"0900_extra.sql":  {Data: []byte("CREATE TABLE extra (id int)")},
		"0901_broken.sql": {Data: []byte("CREATE TABLE extra2 (id int); SELECT nonsense_column FROM extra")},
	}
	n, err := database.Pending(ctx, pool, extra)
	if err != nil || n != 2 {
		t.Fatalf("pending = %d, %v; want 2", n, err)
	}
	applied, err = database.Migrate(ctx, pool, extra)
	if err == nil || len(applied) != 1 || applied[0] != 900 {
		t.Fatalf("applied %v err %v; want [900] and an error from 0901", applied, err)
	}
	// The broken migration ran in a transaction: its first statement is undone.
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('extra2') IS NOT NULL").Scan(&exists); err != nil || exists {
		t.Errorf("extra2 exists = %v (%v); want the failed migration rolled back", exists, err)
	}
}

func TestLoadMigrationsRejectsBadNames(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"no number": {"grids.sql": {}},
		"duplicate": {"0001_a.sql": {}, "1_b.sql": {}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := database.LoadMigrations(fsys); err == nil {
				t.Error("got nil error")
			}
		})
	}
}

// TestOpenWithoutPostGIS: a database without the extension, reached by a
// user who may not create it, is a clear ErrNoPostGIS at start.
func TestOpenWithoutPostGIS(t *testing.T) {
	ctx := context.Background()
	admin := testdb.New(t)
	name := fmt.Sprintf("nopostgis_%d", os.Getpid())
	for _, sql := range []string{
		"DROP ROLE IF EXISTS gw_plain",
		"CREATE ROLE gw_plain LOGIN",
		"CREATE DATABASE " + name + " TEMPLATE template0 OWNER gw_plain",
	} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		admin.Exec(context.Background(), "DROP ROLE IF EXISTS gw_plain")
	})
	cfg := admin.Config().ConnConfig
	dsn := fmt.Sprintf("host=%s port=%d user=gw_plain dbname=%s sslmode=disable", cfg.Host, cfg.Port, name)
	_, err := database.Open(ctx, dsn, database.Options{})
	if !errors.Is(err, database.ErrNoPostGIS) || !strings.Contains(err.Error(), "CREATE EXTENSION postgis") {
		t.Fatalf("err = %v, want ErrNoPostGIS explaining CREATE EXTENSION", err)
	}
}

func TestOpenBadURLHidesPassword(t *testing.T) {
	_, err := database.Open(context.Background(), "postgres://u:s3cret@/db?host=%zz", database.Options{})
	if err == nil {
		t.Fatal("want an error")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %q leaks the password", err)
	}
}
