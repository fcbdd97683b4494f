package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"gridwatch"
	"gridwatch/api"
	"gridwatch/assets"
	"gridwatch/audit"
	"gridwatch/auth"
	"gridwatch/basedata"
	"gridwatch/camera"
	"gridwatch/camera/camsim"
	"gridwatch/camera/gb28181"
	"gridwatch/camera/live"
	"gridwatch/camera/onvif"
	"gridwatch/camera/onvifcam"
	"gridwatch/camera/pull"
	"gridwatch/camera/record"
	"gridwatch/camera/rtspserve"
	"gridwatch/camera/video"
	"gridwatch/camera/whep"
	"gridwatch/cluster"
	"gridwatch/geo"
	"gridwatch/incident"
	"gridwatch/internal/database"
	"gridwatch/internal/domain"
	"gridwatch/internal/events"
	"gridwatch/internal/objstore"
	"gridwatch/internal/pgcluster"
	"gridwatch/internal/pii"
	"gridwatch/migrations"
)

// Main is the running service: its configuration and the parts it started.
// Run starts them, Close stops them in reverse order. Tests drive it with
// Addr "127.0.0.1:0" to run the real wiring.
type Main struct {
	Config *Config
	Logger *slog.Logger
	// MigrateOnly stops after migrations (and seeding).
	MigrateOnly bool
	// SeedDemo imports the demo city when it is not there yet.
	SeedDemo bool
	// Camsim serves simulated cameras in process and points the demo
	// cameras at them, so the demo has live video.
	Camsim bool
	// DemoNVR also runs the GB/T 28181 platform on a free loopback port
	// (unless --gb28181-addr says where) and registers a simulated NVR
	// with it, whose channels become cameras in the demo city (with Camsim).
	DemoNVR bool
	// DemoTasks dispatches a few cases to the demo grid leader (the field
	// app's first screen), once.
	DemoTasks bool
	// DemoYear seeds the demo with a year of cases (the statistics, the
	// map's shading, overdue lists), and DemoBase with its base data
	// (buildings, parcels, components, synthetic residents), once.
	DemoYear, DemoBase bool
	// PasswordHash sets the cost of hashing passwords (zero: argon2id at
	// OWASP's minimum). Tests that start the service many times, on a
	// loaded machine and under the race detector, set a cheap one: each demo
	// user and each sign-in otherwise costs a hash of 19 MiB, twice.
	PasswordHash auth.HashParams

	cluster *pgcluster.Cluster
	pool    *pgxpool.Pool
	// keys seal residents' personal data (pii.go); nil for migrate alone.
	keys     *pii.Keyring
	domain   *domain.Domain
	viewings *audit.ViewLog
	events   *events.Hub
	video    *live.Manager
	recorder *record.Recorder
	exporter *record.Exporter
	rtsp     *rtspserve.Server
	sim      *camsim.Sim
	// gb is the GB/T 28181 signalling, gbStore its devices (nil: off).
	gb          *gb28181.Server
	gbStore     *gb28181.Store
	gbPlaybacks *gb28181.Playbacks
	gbFetches   *gb28181.Fetches
	// AdminPassword is the generated password of the first admin, set on
	// the first start of an empty database, to be shown once.
	AdminPassword string
	server        *http.Server
	ln            net.Listener
	served        chan error
	// stopBackground ends the background loops; background waits for them.
	stopBackground context.CancelFunc
	background     sync.WaitGroup
	// bg is the context of the background loops; stopBackground ends it.
	bg context.Context
	// stopViewings ends the view log after the viewers: it writes what is
	// queued, then viewings waits for it.
	stopViewings context.CancelFunc
	viewingsDone chan struct{}
	// stopVideo ends the camera streams (and so the video viewers) when
	// shutdown starts; hijacked WebSockets are not waited for by Shutdown.
	stopVideo context.CancelFunc
	// whep answers WebRTC offers (nil before the video starts).
	whep *whep.Server
	// node is this process in the cluster of nodes sharing the database
	// (one node alone is a cluster of one); its loop starts once the
	// listeners are up (startNode).
	node *cluster.Node
	// objects is the object store footage goes to (nil: the local disk).
	objects *objstore.Store
	// clock is the cases' clock (incident.Clock).
	clock *incident.Clock
	// dsn is the database's connection string; nodePool the cluster
	// node's own few connections (requests held up by a slow or locked
	// database must not keep the node from renewing its leases).
	dsn      string
	nodePool *pgxpool.Pool
}

// NewMain returns a Main for cfg.
func NewMain(cfg *Config, log *slog.Logger) *Main {
	return &Main{Config: cfg, Logger: log}
}

// Run opens the database (starting the private cluster when no URL is
// given), migrates, builds the domain, optionally seeds, and unless
// MigrateOnly starts the background parts and serving. It returns once the
// service is up.
func (m *Main) Run(ctx context.Context) error {
	if err := m.openDatabase(ctx); err != nil {
		return err
	}
	if err := m.openObjects(ctx); err != nil {
		return err
	}
	if !m.MigrateOnly || m.SeedDemo {
		if err := m.loadKeys(); err != nil {
			return err
		}
	}
	// Cases are dated, and judged overdue, by the database's clock carried
	// on by this process's monotonic one: every node alike, and a step of
	// this machine's wall clock moves neither.
	clock, err := incident.NewClock(ctx, m.pool)
	if err != nil {
		return err
	}
	m.clock = clock
	m.buildDomain()
	m.bg, m.stopBackground = context.WithCancel(context.Background())
	if err := m.seed(ctx); err != nil {
		return err
	}
	if m.MigrateOnly {
		return nil
	}
	if err := m.startBackground(ctx); err != nil {
		return err
	}
	if err := m.serve(); err != nil {
		return err
	}
	return m.startNode()
}

// openDatabase connects to the configured database, or starts the private
// cluster when none is given, and applies the pending migrations.
func (m *Main) openDatabase(ctx context.Context) error {
	cfg, log := m.Config, m.Logger
	dsn := cfg.DatabaseURL
	if dsn == "" {
		c, err := pgcluster.Start(ctx, pgcluster.Options{
			Dir: filepath.Join(cfg.DataDir, "pg"), BinDir: cfg.PGBinDir, Logger: log,
		})
		if err != nil {
			return fmt.Errorf("private database: %w", err)
		}
		m.cluster = c
		if err := c.EnsureDatabase(ctx, "gridwatch"); err != nil {
			return err
		}
		dsn = c.DSN("gridwatch")
	}
	pool, err := database.Open(ctx, dsn, database.Options{Logger: log, StatementTimeout: cfg.DBStatementTimeout, MaxConns: int32(cfg.DBMaxConns)})
	if err != nil {
		return err
	}
	m.pool, m.dsn = pool, dsn
	applied, err := database.Migrate(ctx, pool, migrations.FS())
	if err != nil {
		return err
	}
	if len(applied) > 0 {
		log.Info("migrations applied", "versions", applied)
	}
	return nil
}

// buildDomain builds the stores and services over the pool (see package
// domain for how they are wired to each other) and the live event hub.
func (m *Main) buildDomain() {
	cfg, log := m.Config, m.Logger
	m.events = events.NewHub(m.pool, events.HubOptions{Logger: log})
	m.domain = domain.New(m.pool, domain.Options{
		Logger: log,
		Grids:  geo.StoreOptions{OverlapToleranceM2: cfg.OverlapToleranceM2, OutsideToleranceM2: cfg.OverlapToleranceM2},
		Auth: auth.Options{SessionIdle: cfg.SessionIdle, SessionMax: cfg.SessionMax, DeviceSessionIdle: cfg.DeviceSessionIdle, DeviceSessionMax: cfg.DeviceSessionMax, BootstrapToken: cfg.AdminToken,
			Hash: m.PasswordHash},
		Incidents: incident.Options{AttachmentDir: filepath.Join(cfg.DataDir, "attachments"), Blobs: m.blobs(), Now: m.clock.Now},
		Base:      basedata.Options{Keys: m.keys, Export: cfg.PIIExport},
	})
}

// footageObjects is the object store for the recordings (nil: the local
// disk; a nil *objstore.Store in the interface would not be nil).
func (m *Main) footageObjects() record.Objects {
	if m.objects == nil {
		return nil
	}
	return m.objects
}

// blobs is the object store for the incidents' photos (nil: the data dir).
func (m *Main) blobs() incident.Blobs {
	if m.objects == nil {
		return nil
	}
	return m.objects
}

// seed seeds the demo when asked (with the simulated cameras, started here
// so that the demo cameras can point at them) and creates the first admin
// of an empty database unless an admin token is configured.
func (m *Main) seed(ctx context.Context) error {
	var simURL func(cam int, stream string) string
	var onvifURL func(cam int) string
	if m.Camsim && !m.MigrateOnly {
		sim, err := camsim.New(camsim.Config{N: domain.DemoCameras, Addr: "127.0.0.1:0", Logger: m.Logger.With("component", "camsim"),
			Username: "demo", Password: "demo-camera", Audio: true})
		if err != nil {
			return fmt.Errorf("simulated cameras: %w", err)
		}
		m.sim, simURL = sim, sim.URL
		m.background.Go(func() {
			if err := sim.Run(m.bg); err != nil {
				m.Logger.Error("simulated cameras stopped", "err", err)
			}
		})
		if onvifURL, err = m.serveSimONVIF(sim); err != nil {
			return err
		}
	}
	if m.SeedDemo {
		if err := m.domain.SeedDemo(ctx, domain.DemoOptions{SimURL: simURL, ONVIFURL: onvifURL, Tasks: m.DemoTasks,
			Year: m.DemoYear, Base: m.DemoBase}); err != nil {
			return err
		}
	}
	if m.Config.AdminToken == "" {
		var err error
		if m.AdminPassword, err = m.domain.Auth.EnsureAdmin(ctx); err != nil {
			return err
		}
	}
	return nil
}

// serveSimONVIF serves the simulated cameras' ONVIF devices on a loopback
// port, and their WS-Discovery answers on another; unless discovery was
// pointed elsewhere, this node's probes go to the simulator. It returns
// the device service URL of a simulated camera.
func (m *Main) serveSimONVIF(sim *camsim.Sim) (func(cam int) string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("simulated ONVIF devices: %w", err)
	}
	hs := &http.Server{Handler: sim.ONVIFHandler(), ReadHeaderTimeout: 10 * time.Second}
	base := "http://" + ln.Addr().String()
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("simulated ONVIF discovery: %w", err)
	}
	m.background.Go(func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Logger.Error("simulated ONVIF devices stopped", "err", err)
		}
	})
	m.background.Go(func() {
		<-m.bg.Done()
		_ = hs.Close()
	})
	m.background.Go(func() {
		if err := sim.ServeDiscovery(m.bg, udp, base); err != nil {
			m.Logger.Error("simulated ONVIF discovery stopped", "err", err)
		}
	})
	if m.Config.ONVIFDiscoveryAddr == onvif.DiscoveryAddr {
		m.Config.ONVIFDiscoveryAddr = udp.LocalAddr().String()
	}
	m.Logger.Info("simulated ONVIF devices", "addr", base, "discovery", udp.LocalAddr().String())
	return func(cam int) string { return fmt.Sprintf("%s/onvif/%d/device_service", base, cam) }, nil
}

// startBackground loads the locator and starts what runs beside the
// requests: the locator's reloads, the tile warm-up, the view log, the live
// event feed, the camera streams and the RTSP re-serve. Each loop ends with
// m.bg (or its own stop) and is waited for by Close.
func (m *Main) startBackground(ctx context.Context) error {
	grids, locator := m.domain.Grids, m.domain.Locator
	if err := locator.Refresh(ctx); err != nil {
		return err
	}
	m.background.Go(func() { locator.Run(m.bg, 2*time.Second) })
	m.background.Go(func() { m.clock.Run(m.bg, time.Minute, m.Logger) })
	// The grid tiles of the city's first views are drawn ahead, at start
	// and after every change, so the map never waits on PostGIS for them.
	warm := make(chan struct{}, 1)
	warm <- struct{}{}
	grids.AfterChange(func(context.Context) {
		select {
		case warm <- struct{}{}:
		default:
		}
	})
	// The cache is this node's memory: every node warms its own, also
	// after a change made through another node (seen by the revision).
	m.background.Go(func() {
		check := time.NewTicker(5 * time.Second)
		defer check.Stop()
		warmed := int64(-1)
		for {
			select {
			case <-m.bg.Done():
				return
			case <-warm:
			case <-check.C:
				if rev, err := grids.Revision(m.bg); err != nil || rev == warmed {
					continue
				}
			}
			rev, _ := grids.Revision(m.bg)
			if n, err := grids.WarmTiles(m.bg, warmTileZoom); err != nil && m.bg.Err() == nil {
				m.Logger.Warn("grid tiles: warm-up", "tiles", n, "err", err)
			} else if err == nil {
				warmed = rev
			}
		}
	})
	m.startViewings()
	if err := m.newNode(ctx); err != nil {
		return err
	}
	m.background.Go(func() {
		if err := m.events.Run(m.bg); err != nil {
			m.Logger.Error("live events stopped", "err", err)
		}
	})
	// The feed listens before the cameras start: a camera's first
	// camera.online is then on it for every subscriber once Run returns,
	// rather than lost to a hub that began after it (it starts at the
	// newest event).
	select {
	case <-m.events.Ready():
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(30 * time.Second):
		m.Logger.Warn("live events: not listening after 30 s; starting the cameras anyway")
	}
	if err := m.newGB(); err != nil {
		return err
	}
	m.startVideo()
	if err := m.startWHEP(); err != nil {
		return err
	}
	if err := m.startRTSP(); err != nil {
		return err
	}
	return m.runGB()
}

// startWHEP answers WebRTC (WHEP) offers for the camera streams.
func (m *Main) startWHEP() error {
	srv, err := whep.New(whep.Config{Acquire: m.video.Acquire, Logger: m.Logger.With("component", "webrtc"),
		PublicIPs: m.Config.WebRTCIPs(), ICEServers: commaList(m.Config.WebRTCICEServers),
		TURNUsername: m.Config.WebRTCTURNUsername, TURNCredential: m.Config.WebRTCTURNCredential})
	if err != nil {
		return fmt.Errorf("webrtc: %w", err)
	}
	m.whep = srv
	prev := m.stopVideo
	m.stopVideo = func() { srv.Close(); prev() }
	return nil
}

// startViewings starts the view log: who watched which camera, live or
// recorded. It runs until Close, after the viewers have gone, so the last
// sessions' ends are written before the pool closes.
func (m *Main) startViewings() {
	m.viewings = audit.NewViewLog(m.pool, audit.ViewLogOptions{Logger: m.Logger.With("component", "viewings")})
	ctx, stop := context.WithCancel(context.Background())
	m.stopViewings, m.viewingsDone = stop, make(chan struct{})
	go func() {
		defer close(m.viewingsDone)
		_ = m.viewings.Run(ctx)
	}()
}

// warmTileZoom is the deepest zoom whose grid tiles are drawn ahead: a
// city's extent at zoom 13 is a few dozen tiles.
const warmTileZoom = 13

// startVideo starts the camera streams manager: streams start when watched
// or recorded, and their status goes to the registry (and so to the map and
// the event stream).
func (m *Main) startVideo() {
	log := m.Logger
	m.recorder = record.NewRecorder(record.Config{Dir: m.recordingsDir(), Logger: log.With("component", "recorder"),
		FragmentDuration: m.Config.RecordingFragment, FileDuration: m.Config.RecordingFile,
		MinFreeBytes: uint64(m.Config.RecordingMinFree),
		Node:         m.node.ID(), Objects: m.footageObjects(), Peers: peers{m.pool, m.node},
		Problem: m.domain.Cameras.SetRecordingError}, m.domain.Footage)
	// Disk and index agree before anything is recorded: what a crash left
	// unindexed is indexed, torn fragments are cut, vanished files marked.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	if rep, err := m.recorder.Reconcile(ctx); err != nil {
		log.Error("recordings: reconcile", "err", err)
	} else if rep != (record.ReconcileReport{}) {
		log.Info("recordings: reconciled", "indexed", rep.Indexed, "truncated", rep.Truncated, "removed", rep.Removed, "missing", rep.Missing,
			"finished", rep.Finished, "uploaded_copies_removed", rep.Uploaded)
	}
	cancel()
	m.video = video.NewManager(m.domain.Cameras, live.Config{
		Record: m.recorder.Record, Logger: log.With("component", "video"), Idle: m.Config.VideoIdle,
		Pull:   pull.Config{Client: pull.Client(m.Config.RTSPClient), KeyTimeout: m.Config.KeyTimeout},
		FFmpeg: findFFmpeg(log), MaxTranscodes: m.Config.TranscodeMax,
		Router: video.Router{Node: m.node}, Openers: m.gbSources,
	}, func(k live.Key, err error) { log.Error("camera status", "camera", k.Camera, "err", err) })
	m.domain.Cameras.AfterChange(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		// Every node looks again: a camera that now records is claimed
		// by the node it falls to, a disabled one released.
		m.node.Notify(ctx)
		if err := m.video.Refresh(ctx); err != nil {
			log.Error("video: follow the camera registry", "err", err)
		}
	})
	vctx, stop := context.WithCancel(context.Background())
	m.stopVideo = stop
	m.background.Go(func() { _ = m.video.Run(vctx) })
	m.exporter = record.NewExporter(m.domain.Footage, m.recorder, filepath.Join(m.Config.DataDir, "exports")).WithLimits(record.ExportLimits{
		MaxRange: m.Config.ExportMaxRange, MaxAge: m.Config.ExportMaxAge, MaxPending: m.Config.ExportMaxPending, MinFreeBytes: uint64(m.Config.ExportMinFree)})
	m.background.Go(func() { m.exporter.Run(vctx) })
	m.background.Go(func() {
		m.recorder.RunRetention(vctx, record.Retention{MaxAge: m.Config.RecordingMaxAge, MaxBytes: m.Config.RecordingMaxBytes}, time.Minute)
	})
	m.background.Go(func() { m.recorder.RunDiskWatch(vctx, 10*time.Second) })
	if m.objects != nil {
		m.background.Go(func() { m.recorder.RunUploads(vctx, 10*time.Second) })
	}
}

func (m *Main) recordingsDir() string { return filepath.Join(m.Config.DataDir, "recordings") }

// startRTSP re-serves the camera streams over RTSP, behind the same
// tokens and grid scopes as the API.
func (m *Main) startRTSP() error {
	if m.Config.RTSPAddr == "" {
		return nil
	}
	srv, err := rtspserve.New(rtspserve.Config{
		Addr: m.Config.RTSPAddr, Logger: m.Logger.With("component", "rtsp"),
		Access: m.rtspAccess, Acquire: m.video.Acquire, Watch: m.rtspWatch,
	})
	if err != nil {
		return fmt.Errorf("rtsp re-serve on %s: %w", m.Config.RTSPAddr, err)
	}
	m.rtsp = srv
	ctx, stop := context.WithCancel(context.Background())
	prev := m.stopVideo
	m.stopVideo = func() { stop(); prev() }
	m.background.Go(func() {
		if err := srv.Run(ctx); err != nil {
			m.Logger.Error("rtsp re-serve stopped", "err", err)
		}
	})
	m.Logger.Info("re-serving cameras over RTSP", "url", "rtsp://"+srv.Addr()+"/cameras/{id}")
	return nil
}

// rtspAccess admits an RTSP client presenting an API token: it needs
// video.live and the camera in its grid scope (outside it the camera does
// not exist for it). Another node relaying a camera presents the cluster's
// peer token instead, and is served only the cameras this node owns (a
// relay of a relay would outlive a change of owner).
func (m *Main) rtspAccess(ctx context.Context, token string, id int64) error {
	if m.node.IsPeer(token) {
		if !m.node.Owns(id) {
			return gridwatch.Errorf(gridwatch.EUnavailable, "camera %d is not pulled by node %s", id, m.node.ID())
		}
		return nil
	}
	if token == "" {
		return gridwatch.Errorf(gridwatch.EUnauthenticated, "an API token is required: ?token= or the Basic password")
	}
	p, err := m.domain.Auth.AuthenticateToken(ctx, token)
	if err != nil {
		return err
	}
	if !p.Can(auth.VideoLive) {
		return gridwatch.Errorf(gridwatch.EForbidden, "this token may not watch video")
	}
	_, err = m.domain.Cameras.Get(ctx, id, camera.Viewer{Grids: p.ScopeIDs()})
	return err
}

// rtspWatch records an RTSP session from PLAY to its end, for the token
// that admitted it.
func (m *Main) rtspWatch(ctx context.Context, p rtspserve.Play) func(int64) {
	if m.node.IsPeer(p.Token) {
		// Another node's relay: its viewers are on record there.
		return func(int64) {}
	}
	a := audit.Actor{Kind: "token", Name: "(token no longer valid)"}
	if pr, err := m.domain.Auth.AuthenticateToken(ctx, p.Token); err == nil {
		a = audit.Actor{Kind: pr.Kind, ID: pr.ID, Name: pr.Username}
	}
	view := m.viewings.Start(audit.Viewing{Actor: a, Kind: audit.Live, Protocol: audit.ProtoRTSP,
		Camera: p.Camera, Stream: p.Stream, IP: p.Remote})
	return func(n int64) {
		view.Add(n)
		view.End()
	}
}

// RTSPAddr is the address the RTSP re-serve listens on ("" when off).
func (m *Main) RTSPAddr() string {
	if m.rtsp == nil {
		return ""
	}
	return m.rtsp.Addr()
}

func (m *Main) serve() error {
	cfg := m.Config
	// Every metric carries the node's id: several nodes scraped into one
	// Prometheus stay apart even behind one Service.
	inner := prometheus.NewRegistry()
	reg := labelledRegistry{prometheus.WrapRegistererWith(prometheus.Labels{"node": m.node.ID()}, inner), inner}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		database.NewPoolCollector(m.pool), live.NewCollector(m.video), m.recorder, m.viewings,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gridwatch_webrtc_sessions", Help: "WebRTC (WHEP) viewing sessions now"},
			func() float64 {
				if m.whep == nil {
					return 0
				}
				return float64(m.whep.Sessions())
			}))
	deps := m.domain.APIDeps()
	deps.Logger = m.Logger
	deps.Version = version
	deps.Ready = m.ready
	deps.Metrics = reg
	deps.Assets, deps.AssetsBuilt = assets.FS(), assets.Built()
	deps.BasemapStyleURL = cfg.BasemapStyleURL
	deps.MaxBodyBytes, deps.MaxVertices = cfg.MaxBodyBytes, cfg.MaxVertices
	deps.TLS = cfg.TLSCert != ""
	deps.TrustedProxies = cfg.Proxies()
	deps.Events = m.events
	deps.Video = m.video
	deps.WHEP = m.whep
	deps.ONVIF = onvifcam.New(m.pool, m.domain.Cameras, onvifcam.Options{
		Hold:      cfg.PTZHold,
		Discovery: onvif.DiscoverOptions{Addr: cfg.ONVIFDiscoveryAddr, Interface: cfg.ONVIFInterface},
		Logger:    m.Logger.With("component", "onvif"),
		Driver:    m.ptzDriver(),
	})
	deps.GB, deps.GBStore, deps.GBPlaybacks, deps.GBFetches = m.gb, m.gbStore, m.gbPlaybacks, m.gbFetches
	if m.rtsp != nil {
		if _, port, err := net.SplitHostPort(m.rtsp.Addr()); err == nil {
			deps.RTSPPort, _ = strconv.Atoi(port)
		}
	}
	deps.Recordings, deps.Recorder, deps.RecordingsDir = m.domain.Footage, m.recorder, m.recordingsDir()
	deps.Exports = m.exporter
	deps.Viewings = m.viewings
	deps.OGCRequireIfMatch = cfg.OGCRequireIfMatch
	deps.LeaderReportOutside = cfg.LeaderReportOutside == "allow"
	deps.Nodes = func(ctx context.Context) ([]cluster.Info, error) { return cluster.List(ctx, m.pool) }
	deps.Node = m.node.ID()
	deps.IsPeer = m.node.IsPeer
	srv := api.New(deps)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	m.ln = ln
	m.server = &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute, // imports of large boundary files
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
	}
	// Event streams never go idle: end them when shutdown starts.
	m.server.RegisterOnShutdown(m.events.Close)
	m.server.RegisterOnShutdown(m.stopVideo)
	m.served = make(chan error, 1)
	if cfg.TLSCert != "" {
		go func() { m.served <- m.server.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey) }()
	} else {
		go func() { m.served <- m.server.Serve(ln) }()
	}
	m.Logger.Info("serving", "url", m.URL(), "version", version)
	return nil
}

// labelledRegistry registers with a label added and gathers from the
// registry underneath.
type labelledRegistry struct {
	prometheus.Registerer
	prometheus.Gatherer
}

// URL is the base URL the service answers on.
func (m *Main) URL() string {
	if m.ln == nil {
		return ""
	}
	if m.Config.TLSCert != "" {
		return "https://" + m.ln.Addr().String()
	}
	return "http://" + m.ln.Addr().String()
}

// ready is /readyz: the database answers, no migration is pending and the
// node is not draining.
func (m *Main) ready(ctx context.Context) error {
	if m.node != nil && m.node.Draining() {
		return errors.New("draining: this node is handing its cameras over and stopping")
	}
	if err := m.pool.Ping(ctx); err != nil {
		return errors.New("database unreachable")
	}
	n, err := database.Pending(ctx, m.pool, migrations.FS())
	if err != nil {
		return errors.New("cannot read the migration state")
	}
	if n > 0 {
		return fmt.Errorf("%d migrations pending", n)
	}
	return nil
}

// Close shuts down gracefully: stop taking requests, let those in flight
// finish (up to the shutdown timeout), close the pool, stop the cluster.
func (m *Main) Close() error {
	var errs []error
	if m.node != nil && m.server != nil {
		// Cameras first: the other nodes pull them again while this one
		// finishes its requests.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := m.node.Drain(ctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	if m.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
		if err := m.server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
		cancel()
		if err := <-m.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
		m.server = nil
	}
	if m.stopVideo != nil {
		m.stopVideo()
	}
	if m.stopBackground != nil {
		m.stopBackground()
		m.background.Wait()
		m.stopBackground = nil
	}
	if m.objects != nil && m.recorder != nil && m.pool != nil {
		// The files the recorders just closed go to the store before the
		// node leaves: a node scaled down leaves nothing only on its disk.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if _, err := m.recorder.Upload(ctx); err != nil {
			m.Logger.Warn("recordings: the last uploads", "err", err)
		}
		cancel()
	}
	if m.stopViewings != nil {
		m.stopViewings()
		<-m.viewingsDone
		m.stopViewings = nil
	}
	if m.node != nil && m.pool != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := m.node.Leave(ctx); err != nil {
			errs = append(errs, fmt.Errorf("cluster: leave: %w", err))
		}
		cancel()
		m.node = nil
	}
	if m.nodePool != nil {
		m.nodePool.Close()
		m.nodePool = nil
	}
	if m.pool != nil {
		m.pool.Close()
		m.pool = nil
	}
	if m.cluster != nil {
		if err := m.cluster.Close(); err != nil {
			errs = append(errs, err)
		}
		m.cluster = nil
	}
	return errors.Join(errs...)
}

// findFFmpeg is the ffmpeg that transcodes H.265 cameras for browsers
// without an H.265 decoder, or "" (said in the log) when there is none.
func findFFmpeg(log *slog.Logger) string {
	p, err := exec.LookPath("ffmpeg")
	if err != nil {
		log.Info("ffmpeg not found: H.265 cameras play only in browsers that decode H.265 (or from their H.264 sub stream)")
		return ""
	}
	return p
}
