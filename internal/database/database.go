// Package database opens gridwatch's PostgreSQL pool, makes sure PostGIS is
// there, registers the geometry codec on every connection and applies the
// embedded migrations.
//
// It also holds the query pieces every domain store shares, so each list is
// written once: Where builds a filter's WHERE clause from "?" conditions
// numbered $1, $2, …; Keyset and QueryPage read one keyset page of a list
// and its next cursor; Count counts a filter's rows. The SQL itself stays
// in the domain packages (incident, camera, geo, audit, camera/record);
// the grid scope they all use is the SQL function grid_subtree (migration
// 0020).
package database

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twpayne/go-geom"
)

// ErrNoPostGIS is returned when the server cannot provide the postgis extension.
var ErrNoPostGIS = errors.New("PostGIS is not available on this PostgreSQL server")

// Options tune the pool.
type Options struct {
	// MaxConns caps the pool; 0 keeps pgx's default (the larger of 4 and the CPU count).
	MaxConns int32
	// StatementTimeout bounds every statement a request waits on, lock
	// waits included (PostgreSQL's statement_timeout on each connection):
	// a slow or locked database fails the request with a clear error
	// instead of holding it. 0 keeps DefaultStatementTimeout; negative
	// sets none. Batch work (imports, ingest, migrations) lifts it for its
	// own transaction with Long.
	StatementTimeout time.Duration
	// AcquireTimeout bounds the wait for one of the pool's connections:
	// when every one is held by a statement waiting on a lock, a request
	// queued behind them fails after it (with an error IsTimeout reports)
	// instead of after a queue of others' statement timeouts. 0 keeps
	// the statement timeout (or none, if that is none); negative sets none.
	AcquireTimeout time.Duration
	// ApplicationName names the pool's sessions in pg_stat_activity
	// (empty: the connection string's, if any).
	ApplicationName string
	Logger          *slog.Logger
}

// DefaultStatementTimeout is the statement timeout of a pool opened
// without one: far above any interactive query's budget, short enough that
// a request on a locked table fails while its user still waits.
const DefaultStatementTimeout = 10 * time.Second

// idleInTransactionTimeout ends a session left idle inside a transaction
// (a client that went away holding locks).
const idleInTransactionTimeout = time.Minute

// Open connects to dsn, creates the postgis extension if it is available but
// missing, and returns a pool whose connections all know the geometry type.
func Open(ctx context.Context, dsn string, opts Options) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", redact(err))
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	st := opts.StatementTimeout
	if st == 0 {
		st = DefaultStatementTimeout
	}
	// A setting the connection string makes itself (statement_timeout=,
	// or -c in options=) is the operator's and stays.
	params := cfg.ConnConfig.RuntimeParams
	setByURL := func(name string) bool {
		_, set := params[name]
		return set || strings.Contains(params["options"], name)
	}
	if !setByURL("statement_timeout") && st > 0 {
		params["statement_timeout"] = strconv.FormatInt(st.Milliseconds(), 10)
	}
	if opts.ApplicationName != "" {
		params["application_name"] = opts.ApplicationName
	}
	if !setByURL("idle_in_transaction_session_timeout") {
		params["idle_in_transaction_session_timeout"] = strconv.FormatInt(idleInTransactionTimeout.Milliseconds(), 10)
	}
	if err := EnsurePostGIS(ctx, cfg.ConnConfig); err != nil {
		return nil, err
	}
	at := opts.AcquireTimeout
	if at == 0 {
		at = st
	}
	if at > 0 && cfg.ConnConfig.Tracer == nil {
		cfg.ConnConfig.Tracer = acquireBound{at}
	}
	cfg.AfterConnect = RegisterTypes
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("database: %w", err)
	}
	return pool, nil
}

// acquireBound is the pool's tracer of acquisitions: it gives each wait
// for a connection a deadline (pgxpool runs the acquisition under the
// context TraceAcquireStart returns), lifted once a connection is had.
// The pool has no such bound of its own: a request queued behind requests
// that hold every connection, each on a locked table, would wait for
// their timeouts one round after another.
type acquireBound struct{ wait time.Duration }

type acquireCancel struct{}

// TraceAcquireStart implements pgxpool.AcquireTracer.
func (b acquireBound) TraceAcquireStart(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireStartData) context.Context {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= b.wait {
		return ctx // bounded closer already
	}
	ctx, cancel := context.WithTimeout(ctx, b.wait)
	return context.WithValue(ctx, acquireCancel{}, cancel)
}

// TraceAcquireEnd implements pgxpool.AcquireTracer.
func (acquireBound) TraceAcquireEnd(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireEndData) {
	if cancel, ok := ctx.Value(acquireCancel{}).(context.CancelFunc); ok {
		cancel()
	}
}

// TraceQueryStart implements pgx.QueryTracer (the pool finds its
// acquisition tracer on the connections' tracer): queries are not traced.
func (acquireBound) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

// TraceQueryEnd implements pgx.QueryTracer.
func (acquireBound) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Long lifts the statement timeout for the rest of tx: batch work (an
// import, a bulk ingest, a migration, a key rotation) may run longer than
// any request should wait, and is bounded by its own context instead.
func Long(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = 0"); err != nil {
		return fmt.Errorf("lift the statement timeout: %w", err)
	}
	return nil
}

// Stream runs fn in a read-only transaction without the statement
// timeout: a download streamed as its rows arrive lasts as long as its
// client takes to read it, and ends with the client's request.
func Stream(ctx context.Context, db interface {
	BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error)
}, fn func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, db, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := Long(ctx, tx); err != nil {
			return err
		}
		return fn(tx)
	})
}

// RegisterTypes teaches conn the geometry type (its OID differs per database),
// so geometry values cross as EWKB. It is the pool's AfterConnect hook.
func RegisterTypes(ctx context.Context, conn *pgx.Conn) error {
	var oid uint32
	if err := conn.QueryRow(ctx, "SELECT 'geometry'::regtype::oid").Scan(&oid); err != nil {
		return fmt.Errorf("look up the geometry type: %w", err)
	}
	m := conn.TypeMap()
	m.RegisterType(&pgtype.Type{Name: "geometry", OID: oid, Codec: GeometryCodec{}})
	// The simple protocol sends parameters without types: map go-geom values
	// to geometry by their Go type so they still encode as EWKB.
	m.RegisterDefaultPgType(&geom.MultiPolygon{}, "geometry")
	m.RegisterDefaultPgType(&geom.Polygon{}, "geometry")
	m.RegisterDefaultPgType(&geom.Point{}, "geometry")
	m.RegisterDefaultPgType(EWKB(nil), "geometry")
	return nil
}

// EnsurePostGIS connects once with cfg and creates the postgis extension when
// the server has it but the database does not. A server without PostGIS
// installed, or a user not allowed to create it, is a clear error.
func EnsurePostGIS(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to the database: %w", redact(err))
	}
	defer conn.Close(context.Background())
	var installed, available bool
	err = conn.QueryRow(ctx, `SELECT
		EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'postgis'),
		EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'postgis')`).Scan(&installed, &available)
	if err != nil {
		return fmt.Errorf("check for postgis: %w", err)
	}
	if installed {
		return nil
	}
	if !available {
		return fmt.Errorf("%w: install postgresql-NN-postgis-3 on the database server (Debian/Ubuntu) and retry", ErrNoPostGIS)
	}
	// Nodes starting at once would race on CREATE EXTENSION (IF NOT EXISTS
	// does not hold against a concurrent create): they take the migrations'
	// lock, and the connection's end lets it go.
	// Another node's migrations may hold the lock for longer than a
	// statement may take: this connection is its own and waits.
	if _, err := conn.Exec(ctx, "SET statement_timeout = 0"); err != nil {
		return fmt.Errorf("check for postgis: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
		return fmt.Errorf("check for postgis: lock: %w", err)
	}
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS postgis"); err != nil {
		return fmt.Errorf("%w: CREATE EXTENSION postgis failed (%v); ask the database owner to run it once", ErrNoPostGIS, err)
	}
	return nil
}

// redact keeps a password in a connection string out of error texts: pgconn's
// parse errors may quote the string.
func redact(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return errors.New("cannot parse the connection string (its text is not shown: it may hold a password)")
	}
	return err
}
