package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/jackc/pgx/v5/pgconn"

	"gridwatch"
)

// TestDatabaseFaultAnswers: a database away or too slow is a 503 with
// Retry-After and a message that says which; its own text stays in the
// log; any other fault of ours is a 500 without Retry-After.
func TestDatabaseFaultAnswers(t *testing.T) {
	gin.SetMode(gin.TestMode)
	cases := []struct {
		name       string
		err        error
		status     int
		retryAfter string
		reason     any
		gone       bool // the client closed the request
	}{
		{"restarting", fmt.Errorf("store: %w", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}), 503, "2", nil, false},
		{"starting up", fmt.Errorf("store: %w", &pgconn.PgError{Code: "57P03"}), 503, "2", nil, false},
		{"too many connections", fmt.Errorf("store: %w", &pgconn.PgError{Code: "53300"}), 503, "2", nil, false},
		{"statement timeout", fmt.Errorf("store: %w", &pgconn.PgError{Code: "57014", Message: "canceling statement due to statement timeout"}), 503, "2", "timeout", false},
		{"lock timeout", fmt.Errorf("store: %w", &pgconn.PgError{Code: "55P03"}), 503, "2", "timeout", false},
		{"a fault of ours", errors.New("nil map"), 500, "", nil, false},
		{"a wait of ours ran out", fmt.Errorf("incidents: %w", context.DeadlineExceeded), 503, "2", "timeout", false},
		{"the client went away", fmt.Errorf("incidents: %w", context.Canceled), 499, "", nil, true},
		{"cancelled, the client still there", fmt.Errorf("incidents: %w", context.Canceled), 500, "", nil, false},
		{"not found", gridwatch.Errorf(gridwatch.ENotFound, "grid 7 not found"), 404, "", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			ctx, _ := gin.CreateTestContext(w)
			ctx.Request = httptest.NewRequest("GET", "/api/v1/incidents", nil)
			if c.gone {
				rctx, cancel := context.WithCancel(ctx.Request.Context())
				cancel()
				ctx.Request = ctx.Request.WithContext(rctx)
			}
			WriteError(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), c.err)
			if w.Code != c.status {
				t.Fatalf("status %d, want %d", w.Code, c.status)
			}
			if got := w.Header().Get("Retry-After"); got != c.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, c.retryAfter)
			}
			var body struct {
				Error struct {
					Code    string         `json:"code"`
					Message string         `json:"message"`
					Details map[string]any `json:"details"`
				} `json:"error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if c.status == http.StatusServiceUnavailable {
				if body.Error.Code != gridwatch.EUnavailable || body.Error.Details["reason"] != c.reason {
					t.Errorf("answer %+v, want code unavailable, reason %v", body.Error, c.reason)
				}
			}
			if pe := (*pgconn.PgError)(nil); errors.As(c.err, &pe) && pe.Message != "" && strings.Contains(w.Body.String(), pe.Message) {
				t.Errorf("the database's own text reached the client: %s", w.Body)
			}
		})
	}
}
