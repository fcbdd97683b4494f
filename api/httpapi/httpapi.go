// Package httpapi is the kit every part of gridwatch's HTTP layer is built
// from, so that the route packages (api itself, api/ogc, api/open311,
// api/tiles) answer alike without importing one another:
//
//   - a handler is a Handler, func(*gin.Context) error: it binds, makes one
//     domain call and responds, or returns the error;
//   - Handle is the one adapter that turns a Handler into a gin handler and
//     an error into its answer (WriteError, or a route's own ErrorWriter:
//     Open311 answers in GeoReport's form);
//   - a route is a Route: method, path, permission and handler, which
//     package api gathers into its one table and registers behind the
//     authorisation and input checks;
//   - the shapes handlers share (ByID, Bind, BindByID, JSON, NoContent),
//     decoding (BindJSON, IDParam, the query parameters, Span, Page), the
//     caller (Principal and what it may see, ScopedChain), the request's
//     public origin (OriginFrom, Origin) and a boundary change's options
//     and answer (ChangeOptions, ChangeResult) are here once.
//
// It imports the domain packages' types only; api imports it, never the
// other way round.
package httpapi

import (
	"log/slog"

	"github.com/gin-gonic/gin"

	"gridwatch/auth"
)

// Handler serves one route: it answers, or returns the error it met, which
// Handle writes.
type Handler func(c *gin.Context) error

// ErrorWriter answers a request with err; WriteError is the default.
type ErrorWriter func(c *gin.Context, log *slog.Logger, err error)

// Route is one entry of the routing table: what it answers and the
// permission a caller needs. Every route is registered from the table and
// only from it, so none can be added without a rule.
type Route struct {
	Method, Path string
	Perm         auth.Permission
	Handle       Handler
	// MaxBody overrides the body limit (bulk uploads); 0 keeps the server's.
	MaxBody int64
	// APIKey lets the token come in the URL: as the api_key parameter
	// (Open311 clients) or token (media players). Requests are logged by
	// route pattern, so the URL and its token are never logged.
	APIKey bool
	// Basic also takes HTTP Basic and challenges for it (GIS clients).
	Basic bool
	// Errors writes this route's errors, its input checks' included; nil
	// is WriteError.
	Errors ErrorWriter
}

// R is a route with the default body limit and authentication.
func R(method, path string, perm auth.Permission, h Handler) Route {
	return Route{Method: method, Path: path, Perm: perm, Handle: h}
}

// KeyParam lets r's callers send their token as api_key (or token).
func KeyParam(r Route) Route { r.APIKey = true; return r }

// Fail returns the route's error writer.
func (r Route) Fail() ErrorWriter {
	if r.Errors != nil {
		return r.Errors
	}
	return WriteError
}

// Handle adapts h to gin: an error h returns is written by write (nil:
// WriteError) and ends the request.
func Handle(log *slog.Logger, h Handler, write ErrorWriter) gin.HandlerFunc {
	if write == nil {
		write = WriteError
	}
	return func(c *gin.Context) {
		if err := h(c); err != nil {
			write(c, log, err)
		}
	}
}

// Wrap turns a plain gin handler (promhttp's, say) into a Handler that
// never fails.
func Wrap(h gin.HandlerFunc) Handler {
	return func(c *gin.Context) error { h(c); return nil }
}

// Basic lets GIS clients that can only send HTTP Basic (QGIS 3.22) use
// routes.
func Basic(routes []Route) []Route {
	for i := range routes {
		routes[i].Basic = true
	}
	return routes
}
