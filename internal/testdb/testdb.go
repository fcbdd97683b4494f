// Package testdb gives tests a real PostgreSQL + PostGIS: one private cluster
// per test binary (started by Main from TestMain) and a fresh database per
// test, cloned from a migrated template. A missing PostgreSQL or PostGIS is a
// test failure, never a skip.
package testdb

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch/internal/database"
	"gridwatch/internal/pgcluster"
	"gridwatch/migrations"
)

const templateDB = "gridwatch_template"

// state is the test binary's cluster; Main sets it before any test runs.
var state struct {
	cluster *pgcluster.Cluster
	err     error
	counter atomic.Int64
	mu      sync.Mutex
}

// Main starts the cluster, builds the template database, runs the tests and
// stops the cluster. Call it from TestMain: os.Exit(testdb.Main(m)).
func Main(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gwtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testdb:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	_ = os.Chmod(dir, 0o755) // the postgres user must reach it when tests run as root
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	state.cluster, state.err = pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Fast: true})
	if state.err == nil {
		state.err = buildTemplate(ctx, state.cluster)
	}
	cancel()
	code := m.Run()
	if state.cluster != nil {
		if err := state.cluster.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "testdb:", err)
		}
	}
	return code
}

func buildTemplate(ctx context.Context, c *pgcluster.Cluster) error {
	admin, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+templateDB); err != nil {
		return err
	}
	pool, err := database.Open(ctx, c.DSN(templateDB), database.Options{})
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := database.Migrate(ctx, pool, migrations.FS()); err != nil {
		return fmt.Errorf("migrate template: %w", err)
	}
	return nil
}

// DSN returns a connection string for a new, migrated, empty database that is
// dropped when t ends.
func DSN(t testing.TB) string {
	t.Helper()
	name := create(t, "t")
	t.Cleanup(func() {
		if err := exec(context.Background(), fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)); err != nil {
			t.Errorf("testdb: drop database: %v", err)
		}
	})
	return state.cluster.DSN(name)
}

// DSNKept is DSN for a database that outlives t: for data shared by the
// benchmarks of one binary (incident's 10,000-grid city). The cluster, and
// so the database, ends with the binary.
func DSNKept(t testing.TB) string {
	t.Helper()
	return state.cluster.DSN(create(t, "k"))
}

// create clones the template into a new database named with prefix and
// returns its name.
func create(t testing.TB, prefix string) string {
	t.Helper()
	if state.cluster == nil {
		if state.err != nil {
			t.Fatalf("testdb: no database (PostgreSQL with PostGIS is required; `make test` installs it): %v", state.err)
		}
		t.Fatal("testdb: Main was not called from TestMain")
	}
	name := fmt.Sprintf("%s%d_%d", prefix, os.Getpid(), state.counter.Add(1))
	state.mu.Lock() // CREATE DATABASE … TEMPLATE needs the template to itself
	err := exec(context.Background(), fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s STRATEGY FILE_COPY", name, templateDB))
	state.mu.Unlock()
	if err != nil {
		t.Fatalf("testdb: create database: %v", err)
	}
	return name
}

// New returns a pool on a fresh database (see DSN), closed when t ends.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := database.Open(context.Background(), DSN(t), database.Options{})
	if err != nil {
		t.Fatalf("testdb: open: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, state.cluster.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}
