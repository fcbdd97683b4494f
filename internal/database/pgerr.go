package database

import (
	"errors"
	"net"

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

// IsUnavailable reports a failure to reach PostgreSQL (connecting, or the
// connection failing under a query), as opposed to a statement it refused.
func IsUnavailable(err error) bool {
	var ce *pgconn.ConnectError
	var ne *net.OpError
	return errors.As(err, &ce) || errors.As(err, &ne)
}
