package database

import (
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// PostgreSQL's error codes are read here and nowhere else: the stores ask
// Violated which constraint a statement broke and return their own domain
// error (a duplicate code is a conflict, a missing parent is not found),
// and the HTTP layer asks IsUnavailable whether the database could not be
// reached at all. Neither needs to import pgconn.

// Violation is the kind of constraint a statement broke.
type Violation int

// The constraint kinds gridwatch's stores tell apart (SQLSTATE class 23).
const (
	// NoViolation: the error is not a constraint violation (or is nil).
	NoViolation Violation = iota
	// Unique: 23505, a duplicate key.
	Unique
	// ForeignKey: 23503, a row names a parent that does not exist (or
	// is still named by others).
	ForeignKey
	// Check: 23514, a CHECK constraint refused the values.
	Check
	// NotNull: 23502, a required column was left empty.
	NotNull
	// Exclusion: 23P01, an exclusion constraint (overlap) refused the row.
	Exclusion
)

var violations = map[string]Violation{
	"23505": Unique,
	"23503": ForeignKey,
	"23514": Check,
	"23502": NotNull,
	"23P01": Exclusion,
}

// Violated reports which kind of constraint err broke and the
// constraint's name; NoViolation and "" for any other error, nil included.
func Violated(err error) (Violation, string) {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return NoViolation, ""
	}
	return violations[pe.Code], pe.ConstraintName
}

// IsUnavailable reports a failure to reach PostgreSQL, as opposed to a
// statement it refused: connecting failed; the connection broke under a
// query (the server restarted or crashed, or the network went); the server
// is starting up, shutting down or recovering (57P01–57P03, class 08); or it
// has no connection or resource left to give (class 53: too many
// connections, out of memory or disk). Each passes: the client tries again.
func IsUnavailable(err error) bool {
	var ce *pgconn.ConnectError
	var ne *net.OpError
	if errors.As(err, &ce) || errors.As(err, &ne) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03",
			strings.HasPrefix(pe.Code, "08"), strings.HasPrefix(pe.Code, "53"):
			return true
		}
		return false
	}
	// A connection the server closed under a statement: pgx says so with
	// an unexpected EOF, or a closed connection for the next use of it.
	return errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		pgconn.SafeToRetry(err) || isClosedConn(err)
}

// isClosedConn reports pgx's error for a statement sent on a connection it
// already knows is closed (it has no type of its own to match).
func isClosedConn(err error) bool {
	return err != nil && strings.Contains(err.Error(), "conn closed")
}

// IsTimeout reports a statement PostgreSQL cancelled for taking too long
// (statement_timeout: 57014) or for waiting too long on a lock
// (lock_timeout: 55P03): the database is slow or locked, not broken.
// A statement a client cancelled by going away is 57014 too; its answer
// is never read. (A wait for one of the pool's connections past its bound
// ends with the context's deadline instead: see Options.AcquireTimeout.)
func IsTimeout(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "57014" || pe.Code == "55P03")
}
