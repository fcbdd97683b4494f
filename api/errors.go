package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/jackc/pgx/v5/pgconn"

	"gridwatch"
)

// httpError is an error of the transport itself (bad route, bad method)
// with its own status.
type httpError struct {
	status  int
	code    string
	message string
}

func (e *httpError) Error() string { return e.message }

func errorf(status int, code, format string, args ...any) error {
	return &httpError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// statusOf maps an error code to its HTTP status.
func statusOf(code string) int {
	switch code {
	case gridwatch.EInvalid, gridwatch.EInvalidJSON, gridwatch.EInvalidGeoJSON:
		return http.StatusBadRequest
	case gridwatch.EInvalidGeometry, gridwatch.ETopology, gridwatch.EIdempotencyMismatch:
		return http.StatusUnprocessableEntity
	case gridwatch.EUnauthenticated, gridwatch.ECredentials:
		return http.StatusUnauthorized
	case gridwatch.EForbidden, gridwatch.ECSRF, gridwatch.EOutsideScope:
		return http.StatusForbidden
	case gridwatch.EThrottled:
		return http.StatusTooManyRequests
	case gridwatch.ENotFound:
		return http.StatusNotFound
	case gridwatch.EConflict:
		return http.StatusConflict
	case gridwatch.EStale:
		return http.StatusPreconditionFailed
	case gridwatch.ENeedsVersion:
		return http.StatusPreconditionRequired
	case gridwatch.ETooLarge:
		return http.StatusRequestEntityTooLarge
	case gridwatch.EUnavailable:
		return http.StatusServiceUnavailable
	case gridwatch.ENoSpace:
		return http.StatusInsufficientStorage
	}
	return http.StatusInternalServerError
}

// isDatabaseDown reports a failure to reach PostgreSQL (as opposed to a
// query it refused).
func isDatabaseDown(err error) bool {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var ne *net.OpError
	return errors.As(err, &ne) && gridwatch.ErrorCode(err) == gridwatch.EInternal
}

// writeError is the one place an error becomes a response:
// {"error":{"code","message","details"}}. Internal errors are logged with the
// request id and shown as a plain message, never their text.
func writeError(c *gin.Context, log *slog.Logger, err error) {
	var he *httpError
	var mbe *http.MaxBytesError
	body := gin.H{}
	status := 0
	switch {
	case errors.As(err, &he):
		status = he.status
		body["code"], body["message"] = he.code, he.message
	case errors.As(err, &mbe):
		status = http.StatusRequestEntityTooLarge
		body["code"] = gridwatch.ETooLarge
		body["message"] = fmt.Sprintf("the request body is larger than the limit of %d bytes", mbe.Limit)
		body["details"] = gin.H{"limit_bytes": mbe.Limit}
	case isDatabaseDown(err):
		status = http.StatusServiceUnavailable
		body["code"], body["message"] = gridwatch.EUnavailable, "the database is unavailable; try again shortly"
		body["details"] = gin.H{"request_id": c.GetString("request_id")}
		log.Error("database unavailable", "err", err, "route", c.FullPath(), "request_id", c.GetString("request_id"))
	default:
		code := gridwatch.ErrorCode(err)
		status = statusOf(code)
		body["code"], body["message"] = code, gridwatch.ErrorMessage(err)
		if d := gridwatch.ErrorDetails(err); d != nil {
			body["details"] = d
		}
		if code == gridwatch.EInternal {
			log.Error("internal error", "err", err, "route", c.FullPath(), "request_id", c.GetString("request_id"))
			body["details"] = gin.H{"request_id": c.GetString("request_id")}
		}
	}
	out, err := json.Marshal(gin.H{"error": body})
	if err != nil {
		// Details that cannot be encoded (a NaN, say) must not cost the answer.
		log.Warn("error details not encodable", "err", err, "request_id", c.GetString("request_id"))
		delete(body, "details")
		out, _ = json.Marshal(gin.H{"error": body})
	}
	c.Abort()
	c.Data(status, "application/json; charset=utf-8", out)
}
