// Package api is gridwatch's HTTP transport: routing, middleware, request and
// response mapping and the one place errors become HTTP statuses. It calls the
// domain packages and never writes SQL.
package api

import (
	"context"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"gridwatch/geo"
)

// DefaultMaxBodyBytes caps request bodies when Deps.MaxBodyBytes is 0.
const DefaultMaxBodyBytes = 32 << 20

// Deps are what the HTTP layer needs from the rest of the service.
type Deps struct {
	Logger  *slog.Logger
	Version string
	Grids   *geo.Store
	Locator *geo.Locator
	// Ready reports whether the service can take traffic (database up,
	// migrations current).
	Ready func(context.Context) error
	// Metrics is the registry /metrics serves; HTTP metrics are added to it.
	Metrics *prometheus.Registry
	// Assets is the built dashboard; AssetsBuilt false serves a hint instead.
	Assets      fs.FS
	AssetsBuilt bool
	// BasemapStyleURL is an optional MapLibre style for the dashboard's base map.
	BasemapStyleURL string
	MaxBodyBytes    int64
	MaxVertices     int
}

// Server is the HTTP API and dashboard.
type Server struct {
	deps    Deps
	log     *slog.Logger
	engine  *gin.Engine
	metrics *httpMetrics
	csp     string
}

// New builds the server and its routes.
func New(deps Deps) *Server {
	gin.SetMode(gin.ReleaseMode) // gin's debug mode prints every route at start
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.MaxBodyBytes <= 0 {
		deps.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if deps.Metrics == nil {
		deps.Metrics = prometheus.NewRegistry()
	}
	if deps.Ready == nil {
		deps.Ready = func(context.Context) error { return nil }
	}
	s := &Server{deps: deps, log: deps.Logger, engine: gin.New()}
	s.metrics = newHTTPMetrics(deps.Metrics)
	s.csp = contentSecurityPolicy(deps.BasemapStyleURL)
	s.routes()
	return s
}

// Handler returns the http.Handler serving everything.
func (s *Server) Handler() http.Handler { return s.engine }

// routes registers every route; this is the one place to read them all.
func (s *Server) routes() {
	e := s.engine
	e.HandleMethodNotAllowed = true
	e.Use(s.recoverer(), s.requestID(), s.observe(), s.securityHeaders(), s.limitBody())
	e.NoRoute(s.noRoute)
	e.NoMethod(func(c *gin.Context) {
		writeError(c, s.log, errorf(http.StatusMethodNotAllowed, "method_not_allowed", "%s is not allowed on %s", c.Request.Method, c.Request.URL.Path))
	})

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(s.deps.Metrics, promhttp.HandlerOpts{})))

	v1 := e.Group("/api/v1")
	v1.GET("/meta", s.meta)
	v1.GET("/grids", s.listGrids)
	v1.GET("/grids.geojson", s.gridsGeoJSON)
	v1.POST("/grids", s.createGrid)
	v1.POST("/grids/import", s.importGrids)
	v1.GET("/grids/:id", s.getGrid)
	v1.DELETE("/grids/:id", s.deleteGrid)
	v1.GET("/locate", s.locate)
}

// contentSecurityPolicy allows only our own scripts and styles (the
// dashboard has no inline script), MapLibre's blob: workers, and the origin
// of a configured base map.
func contentSecurityPolicy(basemap string) string {
	extra := ""
	if u, err := url.Parse(basemap); err == nil && u.Scheme != "" && u.Host != "" {
		extra = " " + u.Scheme + "://" + u.Host
	}
	return strings.Join([]string{
		"default-src 'self'",
		"script-src 'self'",
		"style-src 'self'",
		"worker-src 'self' blob:",
		"img-src 'self' data: blob:" + extra,
		"connect-src 'self'" + extra,
		"font-src 'self'" + extra,
		"object-src 'none'",
		"base-uri 'none'",
		"frame-ancestors 'none'",
	}, "; ")
}

func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok", "version": s.deps.Version})
}

func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
	defer cancel()
	if err := s.deps.Ready(ctx); err != nil {
		s.log.Warn("not ready", "err", err)
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "reason": err.Error()})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

func (s *Server) meta(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"version": s.deps.Version, "basemap_style_url": s.deps.BasemapStyleURL})
}
