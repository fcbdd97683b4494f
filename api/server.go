// Package api is gridwatch's HTTP transport: the one routing table,
// middleware (authorisation, input checks, request origin) and the
// /api/v1 handlers. It calls the domain packages and never writes SQL.
//
// Shape: every handler is an httpapi.Handler that returns its error, and
// httpapi.Handle (the one adapter) writes it through httpapi.WriteError,
// the one place errors become HTTP statuses. OGC API Features (api/ogc),
// Open311 (api/open311) and the vector tiles (api/tiles) are packages of
// their own that export their route entries and query rules; Routes
// gathers them, so the route × role test and the query rules walk every
// route. What they all share lives in api/httpapi, which imports none of
// them.
package api

import (
	"context"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"gridwatch/api/httpapi"
	"gridwatch/api/ogc"
	"gridwatch/api/open311"
	"gridwatch/api/tiles"
	"gridwatch/audit"
	"gridwatch/auth"
	"gridwatch/basedata"
	"gridwatch/camera"
	"gridwatch/camera/gb28181"
	"gridwatch/camera/live"
	"gridwatch/camera/onvifcam"
	"gridwatch/camera/record"
	"gridwatch/camera/whep"
	"gridwatch/cluster"
	"gridwatch/geo"
	"gridwatch/incident"
	"gridwatch/internal/events"
	"gridwatch/patrol"
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
	Metrics Registry
	// Assets is the built dashboard; AssetsBuilt false serves a hint instead.
	Assets      fs.FS
	AssetsBuilt bool
	// BasemapStyleURL is an optional MapLibre style for the dashboard's base map.
	BasemapStyleURL string
	// RTSPPort is the RTSP re-serve's port (0: off), which the dashboard
	// offers when a browser cannot play a camera itself.
	RTSPPort     int
	MaxBodyBytes int64
	MaxVertices  int
	// EventsRecheck is how often an open event stream checks that its
	// session or token is still valid (default 30 s).
	EventsRecheck time.Duration
	// Cameras is the camera registry.
	Cameras *camera.Store
	// Incidents is the case service.
	Incidents *incident.Service
	// Patrols records the members' patrols; nil answers 503 on their routes.
	Patrols *patrol.Service
	// Base keeps buildings, households, residents, parcels and components;
	// nil answers 503 on their routes.
	Base *basedata.Service
	// MaxBulkBytes caps a bulk NDJSON upload (default 1 GiB).
	MaxBulkBytes int64
	// Auth answers who a request is; Audit serves the trail.
	Auth  *auth.Service
	Audit *audit.Store
	// TLS marks cookies Secure and sends HSTS.
	TLS bool
	// TrustedProxies may set X-Forwarded-For; none by default.
	TrustedProxies []string
	// Video runs the camera streams; nil answers 503 on the video routes.
	Video *live.Manager
	// ONVIF probes, discovers and steers cameras over ONVIF; nil answers
	// 503 on its routes (and to a camera given an onvif address).
	ONVIF *onvifcam.Service
	// GB is the GB/T 28181 signalling (catalog, status, device
	// recordings), GBStore its devices; nil answers 503 on their routes.
	GB          *gb28181.Server
	GBStore     *gb28181.Store
	GBPlaybacks *gb28181.Playbacks
	GBFetches   *gb28181.Fetches
	// WHEP answers WebRTC offers for the camera streams; nil answers 503.
	WHEP *whep.Server
	// Recordings is the footage index, RecordingsDir where its files are.
	Recordings    *record.Store
	RecordingsDir string
	// Recorder says whether recording runs (a full disk stops it).
	Recorder *record.Recorder
	// Exports makes evidence exports; nil answers 503 on their routes.
	Exports *record.Exporter
	// Viewings records who watched which camera, live or recorded; nil
	// records nothing.
	Viewings *audit.ViewLog
	// Events feeds GET /api/v1/events; nil answers 503 there.
	Events *events.Hub
	// OGCRequireIfMatch refuses OGC API writes without If-Match (428).
	// Off, a write without it (QGIS sends none) applies to the current
	// version: the last writer wins, still under every topology rule.
	OGCRequireIfMatch bool
	// LeaderReportOutside lets a grid leader report incidents located
	// outside their grids (they land in another community's queue); off,
	// such a report is refused (403 outside_scope).
	LeaderReportOutside bool
	// Nodes lists the cluster's nodes for GET /api/v1/nodes, and Node is
	// this node's id (nil, "": one node, answered as such).
	Nodes func(context.Context) ([]cluster.Info, error)
	Node  string
	// IsPeer reports whether a bearer token is the cluster's peer token:
	// it admits another node to /internal/v1 (and nothing else).
	IsPeer func(token string) bool
}

// Registry is where metrics are registered and gathered from: a
// *prometheus.Registry, or one whose metrics carry a label (the node's).
type Registry interface {
	prometheus.Registerer
	prometheus.Gatherer
}

// Server is the HTTP API and dashboard.
type Server struct {
	deps    Deps
	log     *slog.Logger
	engine  *gin.Engine
	metrics *httpMetrics
	csp     string
	tiles   *tiles.Service
	open311 *open311.Service
	ogc     *ogc.Service
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
	if deps.MaxBulkBytes <= 0 {
		deps.MaxBulkBytes = 1 << 30
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
	s.open311 = open311.New(open311.Deps{Incidents: deps.Incidents, LeaderReportOutside: deps.LeaderReportOutside})
	s.ogc = ogc.New(ogc.Deps{Logger: deps.Logger, Version: deps.Version, Grids: deps.Grids, Incidents: deps.Incidents,
		Cameras: deps.Cameras, MaxVertices: deps.MaxVertices, OGCRequireIfMatch: deps.OGCRequireIfMatch})
	s.tiles = tiles.New(tiles.Deps{Grids: deps.Grids, Incidents: deps.Incidents, Cameras: deps.Cameras, Base: deps.Base, TLS: deps.TLS})
	s.routes()
	return s
}

// Handler returns the http.Handler serving everything.
func (s *Server) Handler() http.Handler { return s.engine }

// Route is one entry of the routing table (httpapi.Route).
type Route = httpapi.Route

// bulkBody gives r the bulk upload limit.
func (s *Server) bulkBody(r Route) Route { r.MaxBody = s.deps.MaxBulkBytes; return r }

// Routes is the routing table.
func (s *Server) Routes() []Route {
	metrics := httpapi.Wrap(gin.WrapH(promhttp.HandlerFor(s.deps.Metrics, promhttp.HandlerOpts{})))
	table := []Route{
		httpapi.R("GET", "/healthz", auth.Public, s.healthz),
		httpapi.R("GET", "/readyz", auth.Public, s.readyz),
		httpapi.R("GET", "/metrics", auth.MetricsRead, metrics),
		httpapi.R("GET", "/api/v1/meta", auth.Public, s.meta),
		httpapi.R("GET", "/api/v1/nodes", auth.MetricsRead, s.listNodes),
		httpapi.R("GET", "/internal/v1/recordings/:id/file", auth.ClusterPeer, s.peerRecordingFile),

		httpapi.R("POST", "/api/v1/auth/login", auth.Public, s.login),
		httpapi.R("POST", "/api/v1/auth/logout", auth.Authenticated, s.logout),
		httpapi.R("GET", "/api/v1/me", auth.Authenticated, s.me),
		httpapi.R("POST", "/api/v1/me/password", auth.Authenticated, s.changePassword),

		httpapi.R("GET", "/api/v1/users", auth.UsersManage, s.listUsers),
		httpapi.R("POST", "/api/v1/users", auth.UsersManage, httpapi.Bind(s.createUser)),
		httpapi.R("GET", "/api/v1/users/:id", auth.UsersManage, httpapi.ByID(s.getUser)),
		httpapi.R("PATCH", "/api/v1/users/:id", auth.UsersManage, httpapi.BindByID(s.updateUser)),
		httpapi.R("GET", "/api/v1/users/:id/sessions", auth.UsersManage, httpapi.ByID(s.listSessions)),
		httpapi.R("DELETE", "/api/v1/sessions/:id", auth.UsersManage, httpapi.ByID(s.revokeSession)),
		httpapi.R("GET", "/api/v1/tokens", auth.TokensManage, s.listTokens),
		httpapi.R("POST", "/api/v1/tokens", auth.TokensManage, httpapi.Bind(s.createToken)),
		httpapi.R("DELETE", "/api/v1/tokens/:id", auth.TokensManage, httpapi.ByID(s.revokeToken)),
		httpapi.R("GET", "/api/v1/audit", auth.AuditRead, s.listAudit),
		httpapi.R("GET", "/api/v1/audit/viewings", auth.AuditRead, s.listViewings),

		httpapi.R("GET", "/api/v1/grids", auth.GridsRead, s.listGrids),
		httpapi.R("GET", "/api/v1/grids.geojson", auth.GridsRead, s.gridsGeoJSON),
		httpapi.R("POST", "/api/v1/grids", auth.GridsWrite, s.createGrid),
		httpapi.R("POST", "/api/v1/grids/import", auth.GridsWrite, s.importGrids),
		httpapi.R("GET", "/api/v1/grids/:id", auth.GridsRead, httpapi.ByID(s.getGrid)),
		httpapi.R("DELETE", "/api/v1/grids/:id", auth.GridsWrite, httpapi.ByID(s.deleteGrid)),
		httpapi.R("PUT", "/api/v1/grids/:id/geometry", auth.GridsWrite, s.changeHandler(s.putGridGeometry)),
		httpapi.R("POST", "/api/v1/grids/:id/edge", auth.GridsWrite, s.changeHandler(s.moveGridEdge)),
		httpapi.R("POST", "/api/v1/grids/:id/split", auth.GridsWrite, s.changeHandler(s.splitGrid)),
		httpapi.R("POST", "/api/v1/grids/:id/merge", auth.GridsWrite, s.changeHandler(s.mergeGrids)),
		httpapi.R("GET", "/api/v1/grids/:id/versions", auth.GridsRead, httpapi.ByID(s.gridVersions)),
		httpapi.R("GET", "/api/v1/grids/:id/versions/:version", auth.GridsRead, httpapi.ByID(s.gridVersion)),
		httpapi.R("GET", "/api/v1/locate", auth.Locate, s.locate),
		httpapi.R("GET", "/api/v1/grids/:id/staff", auth.GridsRead, s.inGrid(s.listStaff)),
		httpapi.R("POST", "/api/v1/grids/:id/staff", auth.StaffManage, s.inGrid(s.addStaff)),
		httpapi.R("DELETE", "/api/v1/staff/:id", auth.StaffManage, httpapi.ByID(s.removeStaff)),

		httpapi.R("GET", "/api/v1/categories", auth.Authenticated, s.listCategories),
		httpapi.R("POST", "/api/v1/incidents", auth.IncidentsCreate, s.createIncident),
		s.bulkBody(Route{Method: "POST", Path: "/api/v1/incidents/bulk", Perm: auth.IncidentsCreate, Handle: s.bulkIncidents}),
		httpapi.R("GET", "/api/v1/incidents", auth.IncidentsRead, s.listIncidents),
		httpapi.R("GET", "/api/v1/incidents/:id", auth.IncidentsRead, httpapi.ByID(s.getIncident)),
		httpapi.R("POST", "/api/v1/incidents/:id/transitions", auth.IncidentsTransition, httpapi.ByID(s.transitionIncident)),
		httpapi.R("POST", "/api/v1/incidents/:id/attachments", auth.IncidentsCreate, httpapi.ByID(s.attachPhoto)),
		httpapi.R("GET", "/api/v1/incidents/:id/attachments/:aid", auth.IncidentsRead, httpapi.ByID(s.getPhoto)),
		httpapi.R("PUT", "/api/v1/incidents/:id/attachments/uploads/:key", auth.IncidentsCreate, httpapi.ByID(s.putUploadChunk)),
		httpapi.R("GET", "/api/v1/incidents/:id/attachments/uploads/:key", auth.IncidentsCreate, httpapi.ByID(s.getUpload)),
		httpapi.R("GET", "/api/v1/stats/incidents", auth.IncidentsRead, s.incidentStats),

		// Patrols (patrols.go): a member records their own; reading narrows
		// to what the caller may see (patrols.read: others' in scope).
		httpapi.R("POST", "/api/v1/patrols", auth.PatrolsRecord, s.startPatrol),
		httpapi.R("GET", "/api/v1/patrols", auth.PatrolsRecord, s.listPatrols),
		httpapi.R("GET", "/api/v1/patrols/:id", auth.PatrolsRecord, httpapi.ByID(s.getPatrol)),
		httpapi.R("POST", "/api/v1/patrols/:id/points", auth.PatrolsRecord, httpapi.ByID(s.patrolPoints)),
		httpapi.R("POST", "/api/v1/patrols/:id/end", auth.PatrolsRecord, httpapi.ByID(s.endPatrol)),
		httpapi.R("GET", "/api/v1/patrols/:id/track", auth.PatrolsRecord, httpapi.ByID(s.patrolTrack)),
		httpapi.R("GET", "/api/v1/stats/patrols", auth.PatrolsRecord, s.patrolStats),

		httpapi.R("GET", "/api/v1/cameras", auth.CamerasRead, s.listCameras),
		httpapi.R("POST", "/api/v1/cameras", auth.CamerasWrite, s.createCamera),
		httpapi.R("GET", "/api/v1/cameras/:id", auth.CamerasRead, httpapi.ByID(s.getCamera)),
		httpapi.R("PATCH", "/api/v1/cameras/:id", auth.CamerasWrite, httpapi.ByID(s.updateCamera)),
		httpapi.R("DELETE", "/api/v1/cameras/:id", auth.CamerasWrite, httpapi.ByID(s.deleteCamera)),
		httpapi.R("GET", "/api/v1/grids/:id/cameras", auth.CamerasRead, s.inGrid(s.gridCameras)),
		httpapi.R("POST", "/api/v1/onvif/probe", auth.CamerasWrite, s.probeONVIF),
		httpapi.R("GET", "/api/v1/onvif/discover", auth.CamerasWrite, s.discoverONVIF),
		httpapi.R("GET", "/api/v1/gb28181/devices", auth.CamerasWrite, s.listGBDevices),
		httpapi.R("GET", "/api/v1/gb28181/devices/:id", auth.CamerasWrite, s.getGBDevice),
		httpapi.R("PUT", "/api/v1/gb28181/devices/:id", auth.CamerasWrite, s.putGBDevice),
		httpapi.R("POST", "/api/v1/gb28181/devices/:id/catalog", auth.CamerasWrite, s.syncGBCatalog),
		httpapi.R("GET", "/api/v1/gb28181/devices/:id/status", auth.CamerasWrite, s.gbDeviceStatus),
		httpapi.R("POST", "/api/v1/gb28181/channels/:id/place", auth.CamerasWrite, s.placeGBChannel),
		httpapi.R("GET", "/api/v1/cameras/:id/device-recordings", auth.VideoPlayback, s.deviceRecordings),
		httpapi.R("POST", "/api/v1/cameras/:id/device-playback", auth.VideoPlayback, s.startDevicePlayback),
		httpapi.R("POST", "/api/v1/cameras/:id/device-fetch", auth.CamerasWrite, s.startDeviceFetch),
		httpapi.R("GET", "/api/v1/cameras/:id/device-fetch", auth.VideoPlayback, s.getDeviceFetch),
		httpapi.R("GET", "/api/v1/device-playbacks/:pb", auth.VideoPlayback, s.getDevicePlayback),
		httpapi.R("POST", "/api/v1/device-playbacks/:pb/control", auth.VideoPlayback, s.controlDevicePlayback),
		httpapi.R("DELETE", "/api/v1/device-playbacks/:pb", auth.VideoPlayback, s.stopDevicePlayback),
		httpapi.KeyParam(httpapi.R("GET", "/api/v1/device-playbacks/:pb/live", auth.VideoPlayback, s.devicePlaybackMSE)),
		httpapi.R("GET", "/api/v1/cameras/:id/ptz", auth.CamerasPTZ, httpapi.ByID(s.ptzStatus)),
		httpapi.R("POST", "/api/v1/cameras/:id/ptz", auth.CamerasPTZ, httpapi.ByID(s.ptzCommand)),
		httpapi.KeyParam(httpapi.R("GET", "/api/v1/cameras/:id/live", auth.VideoLive, s.liveMSE)),
		httpapi.KeyParam(httpapi.R("GET", "/api/v1/cameras/:id/hls/:file", auth.VideoLive, s.liveHLS)),
		httpapi.KeyParam(httpapi.R("POST", "/api/v1/cameras/:id/whep", auth.VideoLive, s.whepOffer)),
		httpapi.KeyParam(httpapi.R("GET", "/api/v1/cameras/:id/snapshot.jpg", auth.VideoLive, s.snapshot)),
		httpapi.KeyParam(httpapi.R("DELETE", "/api/v1/cameras/:id/whep/:session", auth.VideoLive, s.whepDelete)),
		httpapi.R("GET", "/api/v1/cameras/:id/recordings", auth.VideoPlayback, s.listRecordings),
		httpapi.R("GET", "/api/v1/recording/status", auth.VideoPlayback, s.recordingStatus),
		httpapi.KeyParam(httpapi.R("GET", "/api/v1/cameras/:id/playback.m3u8", auth.VideoPlayback, s.playback)),
		httpapi.KeyParam(httpapi.R("GET", "/api/v1/recordings/:id/file.mp4", auth.VideoPlayback, s.recordingFile)),
		httpapi.R("POST", "/api/v1/exports", auth.VideoPlayback, s.requestExport),
		httpapi.R("GET", "/api/v1/exports/:id", auth.VideoPlayback, s.getExport),
		httpapi.KeyParam(httpapi.R("GET", "/api/v1/exports/:id/file", auth.VideoPlayback, s.exportFile)),
		httpapi.R("GET", "/api/v1/exports/:id/verify", auth.VideoPlayback, s.verifyExport),
		httpapi.R("DELETE", "/api/v1/exports/:id", auth.ExportsManage, s.deleteExport),
		httpapi.R("PUT", "/api/v1/exports/:id/hold", auth.ExportsManage, s.holdExport),
		httpapi.R("GET", "/api/v1/tags", auth.VideoPlayback, s.listTags),
		httpapi.R("POST", "/api/v1/tags", auth.VideoPlayback, httpapi.Bind(s.createTag)),
		httpapi.R("PATCH", "/api/v1/tags/:id", auth.VideoPlayback, s.tagEdit(s.updateTag)),
		httpapi.R("DELETE", "/api/v1/tags/:id", auth.VideoPlayback, s.tagEdit(s.deleteTag)),
		// Footage names cameras: for those who may see cameras, not for
		// integrations that read their incidents.
		httpapi.R("GET", "/api/v1/incidents/:id/footage", auth.CamerasRead, s.incidentFootage),
		httpapi.R("POST", "/api/v1/incidents/:id/footage", auth.VideoPlayback, s.linkFootage),
		httpapi.R("DELETE", "/api/v1/incidents/:id/footage/:link", auth.VideoPlayback, s.unlinkFootage),
		httpapi.R("GET", "/api/v1/events", auth.Authenticated, s.streamEvents),
	}
	// Open311 (open311.go), vector tiles (tiles.go) and OGC API Features
	// (ogc.go) keep their tables beside their handlers.
	// Base data (basedata.go, residents.go) likewise.
	return slices.Concat(table, s.baseRoutes(), s.peopleRoutes(), s.open311.Routes(), s.tiles.Routes(), s.ogc.Routes())
}

// routes registers the table behind the middleware; the dashboard's files
// (public: the login screen is one of them) are served for other GETs.
func (s *Server) routes() {
	e := s.engine
	e.HandleMethodNotAllowed = true
	// Client addresses (throttling, audit) come from the connection, never
	// from X-Forwarded-For, unless proxies are configured.
	_ = e.SetTrustedProxies(s.deps.TrustedProxies)
	e.Use(s.recoverer(), s.requestID(), s.observe(), s.securityHeaders(), s.checkText(), httpapi.OriginFrom(s.deps.TrustedProxies))
	e.NoRoute(httpapi.Handle(s.log, s.noRoute(), nil))
	e.NoMethod(func(c *gin.Context) {
		httpapi.WriteError(c, s.log, httpapi.Errorf(http.StatusMethodNotAllowed, "method_not_allowed", "%s is not allowed on %s", c.Request.Method, c.Request.URL.Path))
	})
	rules := s.queryRules()
	for _, r := range s.Routes() {
		limit := r.MaxBody
		if limit == 0 {
			limit = s.deps.MaxBodyBytes
		}
		e.Handle(r.Method, r.Path, limitBody(limit), s.authorize(r.Perm, r.APIKey, r.Basic), s.checkInput(r, rules), httpapi.Handle(s.log, r.Handle, r.Errors))
	}
}

// contentSecurityPolicy allows only our own scripts and styles (the
// dashboard has no inline script), MapLibre's blob: workers, MSE video's
// blob: media, and the origin
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
		// Live video plays from a MediaSource's blob: URL (HLS is same-origin).
		"media-src 'self' blob:",
		"img-src 'self' data: blob:" + extra,
		"connect-src 'self'" + extra,
		"font-src 'self'" + extra,
		"object-src 'none'",
		"base-uri 'none'",
		"frame-ancestors 'none'",
	}, "; ")
}

func (s *Server) healthz(c *gin.Context) error {
	c.JSON(http.StatusOK, gin.H{"status": "ok", "version": s.deps.Version})
	return nil
}

func (s *Server) readyz(c *gin.Context) error {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
	defer cancel()
	if err := s.deps.Ready(ctx); err != nil {
		s.log.Warn("not ready", "err", err)
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "reason": err.Error()})
		return nil
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
	return nil
}

// listNodes is GET /api/v1/nodes: every node that shares the database,
// alive or not, with the cameras it pulls and the viewers it serves, and
// which of them answered ("self").
func (s *Server) listNodes(c *gin.Context) error {
	if s.deps.Nodes == nil {
		c.JSON(http.StatusOK, gin.H{"nodes": []cluster.Info{}, "self": s.deps.Node})
		return nil
	}
	nodes, err := s.deps.Nodes(c.Request.Context())
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, gin.H{"nodes": nodes, "self": s.deps.Node})
	return nil
}

func (s *Server) meta(c *gin.Context) error {
	meta := gin.H{"version": s.deps.Version, "basemap_style_url": s.deps.BasemapStyleURL}
	if s.deps.RTSPPort > 0 {
		meta["rtsp_port"] = s.deps.RTSPPort
	}

	c.JSON(http.StatusOK, meta)
	return nil
}
