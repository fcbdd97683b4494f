package pgcluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gwpg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func query(t *testing.T, c *Cluster) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var addrs string
	if err := conn.QueryRow(ctx, "SHOW listen_addresses").Scan(&addrs); err != nil {
		t.Fatal(err)
	}
	return addrs
}

func TestStartStopRestart(t *testing.T) {
	dir := filepath.Join(tempDir(t), "pg")
	ctx := context.Background()
	c, err := Start(ctx, Options{Dir: dir, Fast: true})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if got := query(t, c); got != "" {
		t.Errorf("listen_addresses = %q, want none (socket only)", got)
	}
	// A second owner of the same directory is refused, clearly.
	_, err = Start(ctx, Options{Dir: dir, Fast: true})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), dir) {
		t.Errorf("second start: %v, want ErrInUse naming the dir", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("postmaster.pid still there after Close: %v", err)
	}
	// Started again on the same directory: no initdb, same data.
	c, err = Start(ctx, Options{Dir: dir, Fast: true})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	query(t, c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRecoversFromKilledOwner: an owner that dies leaves its postmaster
// running and the pid file behind; the next Start stops it and carries on.
func TestRecoversFromKilledOwner(t *testing.T) {
	dir := filepath.Join(tempDir(t), "pg")
	ctx := context.Background()
	c, err := Start(ctx, Options{Dir: dir, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	c.releaseLock() // what the kernel does when the owner is killed
	c2, err := Start(ctx, Options{Dir: dir, Fast: true})
	if err != nil {
		t.Fatalf("start after a killed owner: %v", err)
	}
	query(t, c2)
	if err := c2.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestSocketPathTooLong(t *testing.T) {
	_, err := Start(context.Background(), Options{Dir: "/tmp/" + strings.Repeat("x", 120)})
	if err == nil || !strings.Contains(err.Error(), "shorter --data-dir") {
		t.Errorf("err = %v, want advice about the path length", err)
	}
}

func TestBadBinDir(t *testing.T) {
	_, err := Start(context.Background(), Options{Dir: filepath.Join(tempDir(t), "pg"), BinDir: "/nonexistent"})
	if err == nil || !strings.Contains(err.Error(), "initdb") {
		t.Errorf("err = %v, want initdb named", err)
	}
}

// TestPathWithSpace: pg_ctl hands options to a shell; a space in the data
// dir must survive it.
func TestPathWithSpace(t *testing.T) {
	dir := filepath.Join(tempDir(t), "city data", "pg")
	c, err := Start(context.Background(), Options{Dir: dir, Fast: true})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	query(t, c)
	if err := c.EnsureDatabase(context.Background(), "gridwatch"); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureDatabase(context.Background(), "gridwatch"); err != nil {
		t.Fatalf("second EnsureDatabase: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}
