package api

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gridwatch/api/httpapi"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"gridwatch"
)

const requestIDHeader = "X-Request-ID"

type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gridwatch_http_requests_total",
			Help: "HTTP requests by method, route and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gridwatch_http_request_duration_seconds",
			Help:    "HTTP request latency by method and route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"method", "route"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

// requestID takes a sane X-Request-ID from the client or makes one, and
// echoes it; logs and errors carry it.
func (s *Server) requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(requestIDHeader)
		if !saneRequestID(id) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Set("request_id", id)
		c.Header(requestIDHeader, id)
		c.Next()
	}
}

func saneRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// observe records metrics by route pattern (never by raw path, which would
// explode the label set) and logs each request.
func (s *Server) observe() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		status := c.Writer.Status()
		d := time.Since(start)
		s.metrics.requests.WithLabelValues(c.Request.Method, route, strconv.Itoa(status)).Inc()
		s.metrics.latency.WithLabelValues(c.Request.Method, route).Observe(d.Seconds())
		level := s.log.Debug
		if status >= 500 {
			level = s.log.Warn
		} else if c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead {
			level = s.log.Info
		}
		level("http", "method", c.Request.Method, "route", route, "status", status,
			"duration_ms", float64(d.Microseconds())/1000, "bytes", c.Writer.Size(), "request_id", c.GetString("request_id"))
	}
}

func (s *Server) securityHeaders() gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", s.csp)
		if s.deps.TLS {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		c.Next()
	}
}

// checkText refuses query parameters and the headers gridwatch reads that
// are not valid UTF-8 or hold a NUL: PostgreSQL would refuse them later
// with an internal error.
func (s *Server) checkText() gin.HandlerFunc {
	return func(c *gin.Context) {
		for name, vals := range c.Request.URL.Query() {
			for _, v := range append(vals, name) {
				if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
					httpapi.WriteError(c, s.log, gridwatch.Errorf(gridwatch.EInvalid, "query parameter %q is not valid UTF-8 text", strings.ToValidUTF8(name, "?")).
						WithDetails(map[string]any{"param": strings.ToValidUTF8(name, "?")}))
					return
				}
			}
		}
		for _, h := range []string{"Idempotency-Key", "Last-Event-ID"} {
			if v := c.GetHeader(h); !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
				httpapi.WriteError(c, s.log, gridwatch.Errorf(gridwatch.EInvalid, "header %s is not valid UTF-8 text", h).WithDetails(map[string]any{"header": h}))
				return
			}
		}
		c.Next()
	}
}

// limitBody caps a route's request body; reading past the cap fails with
// *http.MaxBytesError, which writeError maps to 413.
func limitBody(limit int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.Body != nil {
			c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
		}
		c.Next()
	}
}

// recoverer turns a panic into a logged 500 with a plain JSON body.
func (s *Server) recoverer() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				httpapi.WriteError(c, s.log, fmt.Errorf("panic: %v", r))
			}
		}()
		c.Next()
	}
}
