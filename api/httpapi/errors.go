package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"

	"gridwatch"
	"gridwatch/internal/database"
)

// Error is an error of the transport itself (bad route, bad method, a
// format not served) with its own status and code.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with a formatted message.
func Errorf(status int, code, format string, args ...any) error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// statuses are the HTTP statuses of the error codes; any other code
// (internal) is a 500.
var statuses = map[string]int{
	gridwatch.EInvalid:             http.StatusBadRequest,
	gridwatch.EInvalidJSON:         http.StatusBadRequest,
	gridwatch.EInvalidGeoJSON:      http.StatusBadRequest,
	gridwatch.EInvalidGeometry:     http.StatusUnprocessableEntity,
	gridwatch.ETopology:            http.StatusUnprocessableEntity,
	gridwatch.EIdempotencyMismatch: http.StatusUnprocessableEntity,
	gridwatch.EInvalidRows:         http.StatusUnprocessableEntity,
	gridwatch.EPurposeRequired:     http.StatusUnprocessableEntity,
	gridwatch.EExportDisabled:      http.StatusForbidden,
	gridwatch.EUnauthenticated:     http.StatusUnauthorized,
	gridwatch.ECredentials:         http.StatusUnauthorized,
	gridwatch.EForbidden:           http.StatusForbidden,
	gridwatch.ECSRF:                http.StatusForbidden,
	gridwatch.EOutsideScope:        http.StatusForbidden,
	gridwatch.EThrottled:           http.StatusTooManyRequests,
	gridwatch.ENotFound:            http.StatusNotFound,
	gridwatch.EConflict:            http.StatusConflict,
	gridwatch.EStale:               http.StatusPreconditionFailed,
	gridwatch.ENeedsVersion:        http.StatusPreconditionRequired,
	gridwatch.ETooLarge:            http.StatusRequestEntityTooLarge,
	gridwatch.EUnavailable:         http.StatusServiceUnavailable,
	gridwatch.ENoSpace:             http.StatusInsufficientStorage,
}

// StatusOf maps an error code to its HTTP status.
func StatusOf(code string) int {
	if st, ok := statuses[code]; ok {
		return st
	}
	return http.StatusInternalServerError
}

// Problem is what an error says to the client: its status, code, message
// and details. Internal marks a fault of ours, whose text is logged and
// never shown.
type Problem struct {
	Status   int
	Code     string
	Message  string
	Details  map[string]any
	Internal bool
	// RetryAfter, when set, is sent as Retry-After (whole seconds): the
	// fault passes and the same request may be sent again.
	RetryAfter time.Duration
}

// dbRetryAfter is when a client may try again after the database was out
// of reach or too slow: a restart of PostgreSQL takes a few seconds.
const dbRetryAfter = 2 * time.Second

// statusClientClosed is the status logged for a request its client closed
// before the answer (nginx's 499; nobody receives it).
const statusClientClosed = 499

// fdRetryAfter is when a client may try again after this process ran out
// of file descriptors: they free as soon as connections close.
const fdRetryAfter = time.Second

// ProblemOf classifies err: a transport *Error, a body over its limit, the
// database out of reach, the process out of file descriptors, or a domain
// error by its code. Internal problems
// are logged here, once, with the route and request id; their message is
// plain and their details hold only the request id.
func ProblemOf(c *gin.Context, log *slog.Logger, err error) Problem {
	var he *Error
	var mbe *http.MaxBytesError
	rid := c.GetString("request_id")
	switch {
	case errors.As(err, &he):
		return Problem{Status: he.Status, Code: he.Code, Message: he.Message}
	case errors.As(err, &mbe):
		return Problem{Status: http.StatusRequestEntityTooLarge, Code: gridwatch.ETooLarge,
			Message: fmt.Sprintf("the request body is larger than the limit of %d bytes", mbe.Limit),
			Details: map[string]any{"limit_bytes": mbe.Limit}}
	case gridwatch.ErrorCode(err) == gridwatch.EInternal && database.IsUnavailable(err):
		log.Error("database unavailable", "err", err, "route", c.FullPath(), "request_id", rid)
		return Problem{Status: http.StatusServiceUnavailable, Code: gridwatch.EUnavailable,
			Message: "the database is unavailable; try again shortly",
			Details: map[string]any{"request_id": rid}, Internal: true, RetryAfter: dbRetryAfter}
	case gridwatch.ErrorCode(err) == gridwatch.EInternal && outOfDescriptors(err):
		log.Error("out of file descriptors", "err", err, "route", c.FullPath(), "request_id", rid)
		return Problem{Status: http.StatusServiceUnavailable, Code: gridwatch.EUnavailable,
			Message: "the server is out of resources for the moment; try again shortly",
			Details: map[string]any{"request_id": rid, "reason": "resources"}, Internal: true, RetryAfter: fdRetryAfter}
	case gridwatch.ErrorCode(err) == gridwatch.EInternal && database.IsTimeout(err):
		log.Error("database too slow", "err", err, "route", c.FullPath(), "request_id", rid)
		return Problem{Status: http.StatusServiceUnavailable, Code: gridwatch.EUnavailable,
			Message: "the database did not answer in time (it is slow or a table is locked); try again shortly",
			Details: map[string]any{"request_id": rid, "reason": "timeout"}, Internal: true, RetryAfter: dbRetryAfter}
	case errors.Is(err, context.Canceled) && c.Request.Context().Err() != nil:
		// The client went away: nobody reads the answer, and it is not
		// a fault of ours (nginx's 499 in the access log).
		log.Info("request cancelled by the client", "route", c.FullPath(), "request_id", rid)
		return Problem{Status: statusClientClosed, Code: "cancelled", Message: "the client closed the request"}
	case errors.Is(err, context.DeadlineExceeded) && c.Request.Context().Err() == nil:
		// A wait of ours ran out: one of the database pool's connections
		// (every one held by statements as slow), or a device's answer.
		log.Error("timed out", "err", err, "route", c.FullPath(), "request_id", rid)
		return Problem{Status: http.StatusServiceUnavailable, Code: gridwatch.EUnavailable,
			Message: "this request ran out of time waiting (for a database connection, or a device); try again shortly",
			Details: map[string]any{"request_id": rid, "reason": "timeout"}, Internal: true, RetryAfter: dbRetryAfter}
	}
	code := gridwatch.ErrorCode(err)
	p := Problem{Status: StatusOf(code), Code: code, Message: gridwatch.ErrorMessage(err), Details: gridwatch.ErrorDetails(err)}
	if code == gridwatch.EInternal {
		log.Error("internal error", "err", err, "route", c.FullPath(), "request_id", rid)
		p.Details, p.Internal = map[string]any{"request_id": rid}, true
	}
	return p
}

// outOfDescriptors reports a file or socket this process could not open
// because it (EMFILE) or the system (ENFILE) has no descriptor left: a
// load that passes, not a fault of the request's.
func outOfDescriptors(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// WriteError is the one place an error becomes gridwatch's JSON answer:
// {"error":{"code","message","details"}} with the status of its code.
func WriteError(c *gin.Context, log *slog.Logger, err error) {
	p := ProblemOf(c, log, err)
	body := gin.H{"code": p.Code, "message": p.Message}
	if p.Details != nil {
		body["details"] = p.Details
	}
	out, err := json.Marshal(gin.H{"error": body})
	if err != nil {
		// Details that cannot be encoded (a NaN, say) must not cost the answer.
		log.Warn("error details not encodable", "err", err, "request_id", c.GetString("request_id"))
		delete(body, "details")
		out, _ = json.Marshal(gin.H{"error": body})
	}
	c.Abort()
	if p.RetryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(int(p.RetryAfter.Round(time.Second)/time.Second)))
	}
	c.Data(p.Status, "application/json; charset=utf-8", out)
}
