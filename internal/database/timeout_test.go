package database_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"gridwatch/internal/database"
	"gridwatch/internal/testdb"
)

// TestStatementTimeout: every connection of the pool has the statement
// timeout it was opened with, a statement over it fails as a timeout (a
// lock wait too), Long lifts it for its own transaction only, and Stream
// reads without it.
func TestStatementTimeout(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.DSN(t)
	pool, err := database.Open(ctx, dsn, database.Options{StatementTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var st string
	if err := pool.QueryRow(ctx, "SHOW statement_timeout").Scan(&st); err != nil || st != "300ms" {
		t.Fatalf("statement_timeout = %q, %v; want 300ms", st, err)
	}
	_, err = pool.Exec(ctx, "SELECT pg_sleep(2)")
	if !database.IsTimeout(err) || database.IsUnavailable(err) {
		t.Fatalf("a statement over the timeout: %v; want a timeout", err)
	}
	// A lock held elsewhere: the wait counts.
	if _, err := pool.Exec(ctx, "CREATE TABLE locked (x int)"); err != nil {
		t.Fatal(err)
	}
	holder, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE locked IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = pool.Exec(ctx, "SELECT count(*) FROM locked")
	if !database.IsTimeout(err) {
		t.Fatalf("a read of a locked table: %v; want a timeout", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the locked read took %v to fail", d)
	}
	_ = tx.Rollback(ctx)
	// Long: the transaction's statements may take longer, and the next
	// user of the connection has the timeout again.
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := database.Long(ctx, tx); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "SELECT pg_sleep(0.5)")
		return err
	})
	if err != nil {
		t.Fatalf("a long statement after Long: %v", err)
	}
	err = database.Stream(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SELECT pg_sleep(0.5)")
		return err
	})
	if err != nil {
		t.Fatalf("a long statement in Stream: %v", err)
	}
	for range 4 { // every connection the pool may hand out
		if err := pool.QueryRow(ctx, "SHOW statement_timeout").Scan(&st); err != nil || st != "300ms" {
			t.Fatalf("statement_timeout after Long = %q, %v; want 300ms", st, err)
		}
	}
	// A timeout in the connection string is the operator's and stays.
	own, err := database.Open(ctx, dsn+" options='-c statement_timeout=7s'", database.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	if err := own.QueryRow(ctx, "SHOW statement_timeout").Scan(&st); err != nil || st != "7s" {
		t.Errorf("statement_timeout from the connection string = %q, %v; want 7s", st, err)
	}
}

// TestErrorClasses: which errors mean the database is away (try again),
// which that it was too slow, and which neither.
func TestErrorClasses(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("query: %w", &pgconn.PgError{Code: code}) }
	cases := []struct {
		name              string
		err               error
		unavailable, slow bool
	}{
		{"admin shutdown", pg("57P01"), true, false},
		{"crash shutdown", pg("57P02"), true, false},
		{"starting up", pg("57P03"), true, false},
		{"connection failure", pg("08006"), true, false},
		{"too many connections", pg("53300"), true, false},
		{"out of memory", pg("53200"), true, false},
		{"statement timeout", pg("57014"), false, true},
		{"lock timeout", pg("55P03"), false, true},
		{"unique violation", pg("23505"), false, false},
		{"syntax", pg("42601"), false, false},
		{"connection reset", fmt.Errorf("read: %w", &net.OpError{Op: "read", Err: syscall.ECONNRESET}), true, false},
		{"unexpected EOF", fmt.Errorf("bulk insert: %w", io.ErrUnexpectedEOF), true, false},
		{"closed connection", errors.New("conn closed"), true, false},
		{"plain", errors.New("no such grid"), false, false},
		{"nil", nil, false, false},
	}
	for _, c := range cases {
		if got := database.IsUnavailable(c.err); got != c.unavailable {
			t.Errorf("%s: IsUnavailable = %v, want %v", c.name, got, c.unavailable)
		}
		if got := database.IsTimeout(c.err); got != c.slow {
			t.Errorf("%s: IsTimeout = %v, want %v", c.name, got, c.slow)
		}
	}
}
