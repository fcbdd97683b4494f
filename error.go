// Package gridwatch holds what every part of the service shares: the error
// type that carries a machine-readable code from the domain packages to the
// HTTP layer. The domain lives in geo, incident and camera; the transport in api.
package gridwatch

import (
	"errors"
	"fmt"
)

// Error codes. Each is a stable string clients may switch on; api maps each to
// an HTTP status.
const (
	EInvalid         = "invalid"               // a request is malformed or a value is out of range
	EInvalidJSON     = "invalid_json"          // the body is not JSON
	EInvalidGeoJSON  = "invalid_geojson"       // JSON, but not the GeoJSON the endpoint takes
	EInvalidGeometry = "invalid_geometry"      // geometry that cannot be stored as it is
	ETopology        = "topology"              // geometry valid alone but not with its neighbours
	EUnauthenticated = "unauthenticated"       // no valid session or token
	ECredentials     = "invalid_credentials"   // login refused; never says which part was wrong
	EForbidden       = "forbidden"             // authenticated, but the role may not do this
	ECSRF            = "csrf"                  // a cookie-authenticated change without its CSRF token
	EThrottled       = "throttled"             // too many attempts; retry later
	ENotFound        = "not_found"             // the target does not exist
	EConflict        = "conflict"              // the target exists or is in use
	EStale           = "stale"                 // If-Match names a version that is no longer current
	ENeedsVersion    = "precondition_required" // a change that must say which version it changes (If-Match)
	ETooLarge        = "too_large"             // a body or a geometry exceeds a limit
	EUnavailable     = "unavailable"           // a dependency is down
	ENoSpace         = "insufficient_storage"  // not enough free disk space for what was asked
	EInternal        = "internal"              // a fault of ours; details are logged, not shown
)

// Error codes of reports (incidents).
const (
	// EOutsideScope: a report located outside the grids its reporter may
	// report in (a grid leader's own).
	EOutsideScope = "outside_scope"
	// EIdempotencyMismatch: an Idempotency-Key sent again with another request.
	EIdempotencyMismatch = "idempotency_mismatch"
)

// Error codes of base data (buildings, parcels, components, residents).
const (
	// EInvalidRows: an import with bad rows, each listed in the details
	// ({"rows":[{"row","field","message"}],"count"}); nothing was stored.
	EInvalidRows = "invalid_rows"
	// EPurposeRequired: revealing personal data needs a stated purpose.
	EPurposeRequired = "purpose_required"
	// EExportDisabled: the bulk export of personal data is off on this
	// server (--pii-export).
	EExportDisabled = "pii_export_disabled"
)

// Error is an error a user can act on: a code, a plain message and optional
// structured details (for a geometry: which feature, which ring, where).
type Error struct {
	Code    string
	Message string
	Details map[string]any
}

// Error implements the error interface.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// WithDetails returns e with details set, for chaining after Errorf.
func (e *Error) WithDetails(d map[string]any) *Error {
	e.Details = d
	return e
}

// ErrorCode returns the code of the first *Error in err's chain, EInternal for
// any other non-nil error and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the user-facing message of err: the message of its
// *Error, or a generic text for internal errors, whose text is never shown.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// ErrorDetails returns the details of the first *Error in err's chain.
func ErrorDetails(err error) map[string]any {
	var e *Error
	if errors.As(err, &e) {
		return e.Details
	}
	return nil
}
