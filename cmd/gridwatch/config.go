package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch/camera/onvif"
	"gridwatch/camera/record"
	"gridwatch/camera/whep"
	"gridwatch/internal/database"
	"gridwatch/internal/objstore"
	"gridwatch/internal/pii"
)

// Config is gridwatch's whole configuration. Load fills it from, in order:
// defaults, a JSON file (--config or GRIDWATCH_CONFIG), the environment
// (GRIDWATCH_<NAME>, and DATABASE_URL) and flags; then Validate checks it.
type Config struct {
	Addr              string
	DataDir           string
	RTSPAddr          string
	VideoIdle         time.Duration
	KeyTimeout        time.Duration
	TranscodeMax      int
	RTSPClient        string
	RecordingMaxAge   time.Duration
	RecordingFragment time.Duration
	RecordingFile     time.Duration
	RecordingMaxBytes int64
	RecordingMinFree  int64
	ExportMaxRange    time.Duration
	ExportMaxAge      time.Duration
	ExportMaxPending  int
	ExportMinFree     int64
	OGCRequireIfMatch bool
	// LeaderReportOutside is "allow" or "refuse" (default): whether a grid
	// leader may report incidents located outside their grids.
	LeaderReportOutside string
	DatabaseURL         string
	LogLevel            string
	LogFormat           string
	BasemapStyleURL     string
	MaxBodyBytes        int64
	MaxVertices         int
	OverlapToleranceM2  float64
	PGBinDir            string
	ShutdownTimeout     time.Duration
	SessionIdle         time.Duration
	SessionMax          time.Duration
	DeviceSessionIdle   time.Duration
	DeviceSessionMax    time.Duration
	AdminToken          string
	TLSCert             string
	TLSKey              string
	TrustedProxies      string
	// WebRTCPublicIPs are the addresses WebRTC announces instead of the
	// host's (a server behind 1:1 NAT), comma-separated.
	WebRTCPublicIPs string
	// WebRTCICEServers are STUN/TURN URLs (comma-separated), with the
	// TURN servers' username and credential.
	WebRTCICEServers     string
	WebRTCTURNUsername   string
	WebRTCTURNCredential string
	// ONVIFDiscoveryAddr is where WS-Discovery probes go (the multicast
	// group by default); ONVIFInterface the interface they leave by.
	ONVIFDiscoveryAddr string
	ONVIFInterface     string
	// PTZHold is how long control of a PTZ camera stays with an operator
	// after their last command.
	PTZHold time.Duration
	// Several nodes (package cluster): this node's ID ("" : the host
	// name), how other nodes reach it ("" : its listen address), the
	// secret intra-cluster requests carry ("" : the database's), the
	// camera lease and the most cameras it pulls (0: no bound).
	NodeID        string
	AdvertiseURL  string
	ClusterSecret string
	Lease         time.Duration
	MaxCameras    int
	// DBStatementTimeout bounds each statement a request waits on (lock
	// waits included); batch work lifts it for itself.
	DBStatementTimeout time.Duration
	// DBMaxConns caps the database pool of requests, streams and
	// recording (0: pgx's default, the larger of 4 and the CPU count).
	DBMaxConns int
	// FootageStore is "local" (closed files stay on this node's disk) or
	// s3://bucket/prefix; S3Endpoint, S3Region and S3PathStyle say how to
	// reach it (keys from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).
	FootageStore string
	S3Endpoint   string
	S3Region     string
	S3PathStyle  bool
	// GB/T 28181: where the SIP server listens ("": off), the platform's
	// ID, realm and default device password, the address media is sent to,
	// the media transport of live channels, the keepalive interval devices
	// use and how many may be missed, and the category alarms become.
	GB28181Addr             string
	GB28181ID               string
	GB28181Realm            string
	GB28181Password         string
	GB28181MediaIP          string
	GB28181Transport        string
	GB28181Keepalive        time.Duration
	GB28181MissedKeepalives int
	GB28181AlarmCategory    string
	// GB28181TimeZone is the devices' clocks' zone (IANA name; "Local":
	// this server's): MANSCDP times carry none.
	GB28181TimeZone string
	// PIIKeyFile holds the keys residents' personal data are sealed with
	// ("": <data-dir>/pii.keys), made with one fresh key when missing;
	// PIIKeys, when set, are the keys themselves instead (entries
	// "<id> <base64>" separated by ";"). PIIExport allows the bulk export
	// of personal data (admins, audited).
	PIIKeyFile string
	PIIKeys    string
	PIIExport  bool
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Addr:                    "127.0.0.1:8080",
		DataDir:                 "./data",
		RTSPAddr:                "127.0.0.1:8554",
		VideoIdle:               30 * time.Second,
		KeyTimeout:              15 * time.Second,
		TranscodeMax:            2,
		RTSPClient:              "gortsplib",
		RecordingMaxAge:         30 * 24 * time.Hour,
		RecordingFragment:       2 * time.Second,
		RecordingFile:           time.Minute,
		RecordingMaxBytes:       10 << 30,
		RecordingMinFree:        record.DefaultMinFreeBytes,
		ExportMaxRange:          record.DefaultExportMaxRange,
		ExportMaxAge:            record.DefaultExportMaxAge,
		ExportMaxPending:        record.DefaultExportMaxPending,
		ExportMinFree:           record.DefaultExportMinFree,
		LogLevel:                "info",
		LeaderReportOutside:     "refuse",
		LogFormat:               "auto",
		MaxBodyBytes:            32 << 20,
		MaxVertices:             100_000,
		OverlapToleranceM2:      1,
		ShutdownTimeout:         15 * time.Second,
		SessionIdle:             2 * time.Hour,
		SessionMax:              12 * time.Hour,
		DeviceSessionIdle:       30 * 24 * time.Hour,
		DeviceSessionMax:        180 * 24 * time.Hour,
		ONVIFDiscoveryAddr:      onvif.DiscoveryAddr,
		PTZHold:                 30 * time.Second,
		Lease:                   10 * time.Second,
		DBStatementTimeout:      database.DefaultStatementTimeout,
		FootageStore:            "local",
		GB28181ID:               "34020000002000000001",
		GB28181Transport:        "udp",
		GB28181Keepalive:        60 * time.Second,
		GB28181MissedKeepalives: 3,
		GB28181AlarmCategory:    "0601",
		GB28181TimeZone:         "Local",
	}
}

// setting binds a Config field of type T to its text form: set parses v
// into the field (written even when parse fails, as the flag package does),
// get formats it.
func setting[T any](field func(*Config) *T, parse func(string) (T, error), format func(T) string) (func(*Config, string) error, func(*Config) string) {
	return func(c *Config, v string) error {
			x, err := parse(v)
			*field(c) = x
			return err
		}, func(c *Config) string {
			return format(*field(c))
		}
}

func parseInt64(v string) (int64, error)   { return strconv.ParseInt(v, 10, 64) }
func formatInt64(n int64) string           { return strconv.FormatInt(n, 10) }
func parseFloat(v string) (float64, error) { return strconv.ParseFloat(v, 64) }
func formatFloat(f float64) string         { return strconv.FormatFloat(f, 'g', -1, 64) }

// option binds one setting to its flag, environment variable and file key.
type option struct {
	name   string // flag name; the file key is it with _ for -, the env var GRIDWATCH_ + upper
	usage  string
	secret bool
	// bare lets the flag be given without a value, meaning true
	// (--pii-export); its value then goes after "=".
	bare bool
	set  func(c *Config, v string) error
	get  func(c *Config) string
}

// bareBool is the text of a flag that may be given bare, as a bool flag.
type bareBool struct{ p *string }

func (b bareBool) String() string {
	if b.p == nil {
		return ""
	}
	return *b.p
}
func (b bareBool) Set(v string) error { *b.p = v; return nil }
func (b bareBool) IsBoolFlag() bool   { return true }

func options() []option {
	str := func(p func(*Config) *string) (func(*Config, string) error, func(*Config) string) {
		return func(c *Config, v string) error { *p(c) = v; return nil }, func(c *Config) string { return *p(c) }
	}
	opt := func(name, usage string, set func(*Config, string) error, get func(*Config) string) option {
		return option{name: name, usage: usage, set: set, get: get}
	}
	addrSet, addrGet := str(func(c *Config) *string { return &c.Addr })
	dataSet, dataGet := str(func(c *Config) *string { return &c.DataDir })
	rtspSet, rtspGet := str(func(c *Config) *string { return &c.RTSPAddr })
	dbSet, dbGet := str(func(c *Config) *string { return &c.DatabaseURL })
	llSet, llGet := str(func(c *Config) *string { return &c.LogLevel })
	lfSet, lfGet := str(func(c *Config) *string { return &c.LogFormat })
	bmSet, bmGet := str(func(c *Config) *string { return &c.BasemapStyleURL })
	pgSet, pgGet := str(func(c *Config) *string { return &c.PGBinDir })
	dur := func(p func(*Config) *time.Duration) (func(*Config, string) error, func(*Config) string) {
		return setting(p, time.ParseDuration, time.Duration.String)
	}
	idleSet, idleGet := dur(func(c *Config) *time.Duration { return &c.SessionIdle })
	vidleSet, vidleGet := dur(func(c *Config) *time.Duration { return &c.VideoIdle })
	ktSet, ktGet := dur(func(c *Config) *time.Duration { return &c.KeyTimeout })
	tcSet, tcGet := setting(func(c *Config) *int { return &c.TranscodeMax }, strconv.Atoi, strconv.Itoa)
	rcSet, rcGet := str(func(c *Config) *string { return &c.RTSPClient })
	rageSet, rageGet := dur(func(c *Config) *time.Duration { return &c.RecordingMaxAge })
	rfragSet, rfragGet := dur(func(c *Config) *time.Duration { return &c.RecordingFragment })
	rfileSet, rfileGet := dur(func(c *Config) *time.Duration { return &c.RecordingFile })
	maxSet, maxGet := dur(func(c *Config) *time.Duration { return &c.SessionMax })
	didleSet, didleGet := dur(func(c *Config) *time.Duration { return &c.DeviceSessionIdle })
	dmaxSet, dmaxGet := dur(func(c *Config) *time.Duration { return &c.DeviceSessionMax })
	xrangeSet, xrangeGet := dur(func(c *Config) *time.Duration { return &c.ExportMaxRange })
	xageSet, xageGet := dur(func(c *Config) *time.Duration { return &c.ExportMaxAge })
	tokSet, tokGet := str(func(c *Config) *string { return &c.AdminToken })
	certSet, certGet := str(func(c *Config) *string { return &c.TLSCert })
	keySet, keyGet := str(func(c *Config) *string { return &c.TLSKey })
	proxSet, proxGet := str(func(c *Config) *string { return &c.TrustedProxies })
	rtcSet, rtcGet := str(func(c *Config) *string { return &c.WebRTCPublicIPs })
	iceSet, iceGet := str(func(c *Config) *string { return &c.WebRTCICEServers })
	turnUSet, turnUGet := str(func(c *Config) *string { return &c.WebRTCTURNUsername })
	turnCSet, turnCGet := str(func(c *Config) *string { return &c.WebRTCTURNCredential })
	odaSet, odaGet := str(func(c *Config) *string { return &c.ONVIFDiscoveryAddr })
	oifSet, oifGet := str(func(c *Config) *string { return &c.ONVIFInterface })
	holdSet, holdGet := dur(func(c *Config) *time.Duration { return &c.PTZHold })
	recordingMaxBytesSet, recordingMaxBytesGet := setting(func(c *Config) *int64 { return &c.RecordingMaxBytes }, parseInt64, formatInt64)
	recordingMinFreeSet, recordingMinFreeGet := setting(func(c *Config) *int64 { return &c.RecordingMinFree }, parseInt64, formatInt64)
	exportMaxPendingSet, exportMaxPendingGet := setting(func(c *Config) *int { return &c.ExportMaxPending }, strconv.Atoi, strconv.Itoa)
	exportMinFreeSet, exportMinFreeGet := setting(func(c *Config) *int64 { return &c.ExportMinFree }, parseInt64, formatInt64)
	ogcRequireIfMatchSet, ogcRequireIfMatchGet := setting(func(c *Config) *bool { return &c.OGCRequireIfMatch }, strconv.ParseBool, strconv.FormatBool)
	maxBodyBytesSet, maxBodyBytesGet := setting(func(c *Config) *int64 { return &c.MaxBodyBytes }, parseInt64, formatInt64)
	maxVerticesSet, maxVerticesGet := setting(func(c *Config) *int { return &c.MaxVertices }, strconv.Atoi, strconv.Itoa)
	overlapToleranceM2Set, overlapToleranceM2Get := setting(func(c *Config) *float64 { return &c.OverlapToleranceM2 }, parseFloat, formatFloat)
	tok := opt("admin-token", "a value accepted as an admin API token, for automation (at least 16 characters)", tokSet, tokGet)
	tok.secret = true
	db := opt("database-url", "PostgreSQL+PostGIS URL (env DATABASE_URL); empty runs a private cluster under <data-dir>/pg", dbSet, dbGet)
	db.secret = true
	turnCred := opt("webrtc-turn-credential", "the TURN servers' credential", turnCSet, turnCGet)
	turnCred.secret = true
	nodeSet, nodeGet := str(func(c *Config) *string { return &c.NodeID })
	advSet, advGet := str(func(c *Config) *string { return &c.AdvertiseURL })
	csSet, csGet := str(func(c *Config) *string { return &c.ClusterSecret })
	leaseSet, leaseGet := dur(func(c *Config) *time.Duration { return &c.Lease })
	mcSet, mcGet := setting(func(c *Config) *int { return &c.MaxCameras }, strconv.Atoi, strconv.Itoa)
	dbstSet, dbstGet := dur(func(c *Config) *time.Duration { return &c.DBStatementTimeout })
	dbmcSet, dbmcGet := setting(func(c *Config) *int { return &c.DBMaxConns }, strconv.Atoi, strconv.Itoa)
	clusterSecret := opt("cluster-secret", "the secret nodes authenticate each other's requests with (default: one kept in the database, made by the first node)", csSet, csGet)
	clusterSecret.secret = true
	fsSet, fsGet := str(func(c *Config) *string { return &c.FootageStore })
	s3eSet, s3eGet := str(func(c *Config) *string { return &c.S3Endpoint })
	s3rSet, s3rGet := str(func(c *Config) *string { return &c.S3Region })
	s3pSet, s3pGet := setting(func(c *Config) *bool { return &c.S3PathStyle }, strconv.ParseBool, strconv.FormatBool)
	gbaSet, gbaGet := str(func(c *Config) *string { return &c.GB28181Addr })
	gbiSet, gbiGet := str(func(c *Config) *string { return &c.GB28181ID })
	gbrSet, gbrGet := str(func(c *Config) *string { return &c.GB28181Realm })
	gbpSet, gbpGet := str(func(c *Config) *string { return &c.GB28181Password })
	gbmSet, gbmGet := str(func(c *Config) *string { return &c.GB28181MediaIP })
	gbtSet, gbtGet := str(func(c *Config) *string { return &c.GB28181Transport })
	gbkSet, gbkGet := dur(func(c *Config) *time.Duration { return &c.GB28181Keepalive })
	gbnSet, gbnGet := setting(func(c *Config) *int { return &c.GB28181MissedKeepalives }, strconv.Atoi, strconv.Itoa)
	gbcSet, gbcGet := str(func(c *Config) *string { return &c.GB28181AlarmCategory })
	gbzSet, gbzGet := str(func(c *Config) *string { return &c.GB28181TimeZone })
	gbPassword := opt("gb28181-password", "the password GB/T 28181 devices register with, unless a device is given its own (PUT /api/v1/gb28181/devices/{id})", gbpSet, gbpGet)
	gbPassword.secret = true
	piiFileSet, piiFileGet := str(func(c *Config) *string { return &c.PIIKeyFile })
	piiKeysSet, piiKeysGet := str(func(c *Config) *string { return &c.PIIKeys })
	piiKeys := opt("pii-keys", "the personal-data keys themselves instead of a key file: entries \"<id> <base64 of 32 bytes>\" separated by ;", piiKeysSet, piiKeysGet)
	piiKeys.secret = true
	piiExportSet, piiExportGet := setting(func(c *Config) *bool { return &c.PIIExport }, strconv.ParseBool, strconv.FormatBool)
	piiExport := opt("pii-export", "allow admins the bulk export of residents' personal data (GET /api/v1/residents/export, audited); off by default", piiExportSet, piiExportGet)
	piiExport.bare = true
	return []option{
		opt("addr", "HTTP listen address (host:port; port 0 picks a free one)", addrSet, addrGet),
		opt("data-dir", "directory for the private database and, later, recordings", dataSet, dataGet),
		opt("rtsp-addr", "RTSP re-serve listen address: rtsp://ADDR/cameras/{id}[/sub] (empty: off)", rtspSet, rtspGet),
		opt("rtsp-client", "RTSP client that pulls the cameras: gortsplib, or vdk (deepch/vdk) for cameras that need it", rcSet, rcGet),
		opt("recording-fragment", "recorded fragments last at least this (each starts on a keyframe): a crash loses at most one", rfragSet, rfragGet),
		opt("recording-file", "recorded files last at least this; a file is indexed fragment by fragment as it grows", rfileSet, rfileGet),
		opt("recording-max-age", "recorded footage older than this is removed (e.g. 720h for 30 days)", rageSet, rageGet),
		opt("recording-max-bytes", "the recordings' disk quota: beyond it the oldest footage is removed", recordingMaxBytesSet, recordingMaxBytesGet),
		opt("recording-min-free", "free bytes recording leaves on its disk: under it recording stops (status, metric, event) until a quarter more is free", recordingMinFreeSet, recordingMinFreeGet),
		opt("export-max-range", "the longest range one evidence export covers (at most 24h)", xrangeSet, xrangeGet),
		opt("export-max-age", "evidence exports older than this are removed, file and row, unless held by an admin or their incident is still open (e.g. 2160h for 90 days)", xageSet, xageGet),
		opt("export-max-pending", "how many exports one user may have queued or running at once (more: 429 with Retry-After)", exportMaxPendingSet, exportMaxPendingGet),
		opt("export-min-free", "free bytes an export leaves on the exports' disk beyond its estimated size (else 507)", exportMinFreeSet, exportMinFreeGet),
		opt("ogc-require-if-match", "refuse OGC API Features writes without If-Match (QGIS sends none: by default they apply to the current version)", ogcRequireIfMatchSet, ogcRequireIfMatchGet),
		opt("leader-report-outside", "refuse (default) or allow a grid leader's reports located outside their grids", func(c *Config, v string) error {
			if v != "allow" && v != "refuse" {
				return fmt.Errorf("want allow or refuse, got %q", v)
			}
			c.LeaderReportOutside = v
			return nil
		}, func(c *Config) string { return c.LeaderReportOutside }),
		opt("video-idle", "how long a camera stream nobody watches (and that does not record) stays pulled", vidleSet, vidleGet),
		opt("transcode-max", "cameras this node transcodes from H.265 to H.264 at once for browsers that cannot decode H.265 (one ffmpeg each)", tcSet, tcGet),
		opt("key-timeout", "the least a camera stream waits for a keyframe before it reconnects; a camera with a longer GOP (H.264+/H.265+ smart modes) gets twice its GOP, learnt", ktSet, ktGet),
		db,
		opt("db-statement-timeout", "the longest a request waits on one database statement, lock waits included, before it fails with 503 and Retry-After (imports, bulk ingest and downloads are bounded by their request instead)", dbstSet, dbstGet),
		opt("db-max-conns", "the most database connections this node's requests, streams and recording hold at once (0: the larger of 4 and the CPU count); the cluster node and the event feed have their own 3 and 1", dbmcSet, dbmcGet),
		opt("log-level", "debug, info, warn or error", llSet, llGet),
		opt("log-format", "auto (JSON unless stderr is a terminal), json or text", lfSet, lfGet),
		opt("basemap-style-url", "optional MapLibre style URL for the dashboard's base map (none: offline dark base)", bmSet, bmGet),
		opt("pg-bindir", "PostgreSQL server binaries for the private cluster (default: newest /usr/lib/postgresql/*/bin)", pgSet, pgGet),
		opt("max-body-bytes", "largest request body accepted", maxBodyBytesSet, maxBodyBytesGet),
		opt("max-vertices", "most vertices accepted in one grid boundary", maxVerticesSet, maxVerticesGet),
		opt("overlap-tolerance-m2", "largest overlap between grids of one level (and part outside a parent) ignored, in m²", overlapToleranceM2Set, overlapToleranceM2Get),
		opt("session-idle", "a session unused this long ends", idleSet, idleGet),
		opt("session-max", "any session ends this long after sign-in", maxSet, maxGet),
		opt("device-session-idle", "a field app's device session unused this long ends", didleSet, didleGet),
		opt("device-session-max", "a field app's device session ends this long after sign-in (an admin revokes one sooner)", dmaxSet, dmaxGet),
		tok,
		opt("tls-cert", "TLS certificate file (PEM); with --tls-key, serve HTTPS", certSet, certGet),
		opt("tls-key", "TLS private key file (PEM)", keySet, keyGet),
		opt("trusted-proxies", "comma-separated proxy addresses/CIDRs allowed to set X-Forwarded-For (default none)", proxSet, proxGet),
		opt("webrtc-ice-servers", "comma-separated STUN/TURN URLs (stun:host:3478, turn:host:3478?transport=udp) WebRTC gathers through and the browsers are given", iceSet, iceGet),
		opt("webrtc-turn-username", "the TURN servers' username", turnUSet, turnUGet),
		turnCred,
		opt("webrtc-public-ips", "comma-separated addresses WebRTC announces instead of this host's (behind 1:1 NAT); default the host's own", rtcSet, rtcGet),
		opt("onvif-discovery-addr", "where WS-Discovery probes for ONVIF cameras go: the multicast group, or a host:port that answers them", odaSet, odaGet),
		opt("onvif-interface", "the network interface ONVIF discovery probes leave by (default: the system's route to the group)", oifSet, oifGet),
		opt("ptz-hold", "how long control of a PTZ camera stays with an operator after their last command (others see who)", holdSet, holdGet),
		opt("node-id", "this node's ID among several on one database (default: the host name)", nodeSet, nodeGet),
		opt("advertise-url", "how other nodes reach this one: http(s)://host:port of its HTTP; its RTSP re-serve is on the same host at the --rtsp-addr port (default: the listen addresses, the host name for an unspecified host)", advSet, advGet),
		clusterSecret,
		opt("lease", "how long a node holds a camera without renewing (it renews every third): a dead node's cameras move after it", leaseSet, leaseGet),
		opt("max-cameras", "the most cameras this node pulls (0: no bound); the others go to nodes with room", mcSet, mcGet),
		opt("footage-store", "where closed recordings and exports go: local (this node's disk) or s3://bucket/prefix, an S3-compatible store every node shares (keys from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)", fsSet, fsGet),
		opt("s3-endpoint", "the object store's S3 API, http(s)://host:port (default Amazon S3)", s3eSet, s3eGet),
		opt("s3-region", "the object store's region", s3rSet, s3rGet),
		opt("s3-path-style", "address the bucket in the path (MinIO, SeaweedFS), not the host name", s3pSet, s3pGet),
		opt("gb28181-addr", "where the GB/T 28181 SIP server listens for devices, UDP and TCP (host:port, usually :5060; empty: off; the demo picks a free loopback port)", gbaSet, gbaGet),
		opt("gb28181-id", "this platform's 20-digit GB/T 28181 ID (SIP user)", gbiSet, gbiGet),
		opt("gb28181-realm", "the platform's SIP realm (default: the first 10 digits of its ID)", gbrSet, gbrGet),
		gbPassword,
		opt("gb28181-media-ip", "the address devices send media to (default: the SIP listen address, or this host's route to the device)", gbmSet, gbmGet),
		opt("gb28181-transport", "how live GB/T 28181 channels send media: udp, tcp-passive (they connect to us) or tcp-active (we connect to them)", gbtSet, gbtGet),
		opt("gb28181-keepalive", "the keepalive interval GB/T 28181 devices use", gbkSet, gbkGet),
		opt("gb28181-missed-keepalives", "keepalives a device may miss before it is offline", gbnSet, gbnGet),
		opt("gb28181-alarm-category", "the incident category a device's alarm becomes", gbcSet, gbcGet),
		opt("gb28181-time-zone", "the time zone of the devices' clocks (IANA name such as Asia/Shanghai; Local: this server's): GB/T 28181 times carry none", gbzSet, gbzGet),
		opt("pii-key-file", "the file of the keys residents' ID numbers, phones and birth dates are sealed with, made (mode 0600, one fresh key) when missing; keep it out of database backups (default <data-dir>/pii.keys)", piiFileSet, piiFileGet),
		piiKeys,
		piiExport,
		opt("shutdown-timeout", "how long a graceful shutdown waits for requests to finish", func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			c.ShutdownTimeout = d
			return err
		}, func(c *Config) string { return c.ShutdownTimeout.String() }),
	}
}

func (o option) envName() string {
	return "GRIDWATCH_" + strings.ToUpper(strings.ReplaceAll(o.name, "-", "_"))
}

func (o option) fileKey() string { return strings.ReplaceAll(o.name, "-", "_") }

// LoadConfig builds the configuration for a subcommand from args and getenv,
// then validates it. Usage goes to out on -h.
func LoadConfig(cmd string, args []string, getenv func(string) string, out io.Writer) (*Config, error) {
	opts := options()
	fs := flag.NewFlagSet("gridwatch "+cmd, flag.ContinueOnError)
	fs.SetOutput(out)
	configPath := fs.String("config", getenv("GRIDWATCH_CONFIG"), "JSON config file (keys as the flags, with _ for -)")
	def := DefaultConfig()
	given := map[string]*string{}
	for _, o := range opts {
		if o.bare {
			v := o.get(&def)
			given[o.name] = &v
			fs.Var(bareBool{&v}, o.name, o.usage+" (env "+o.envName()+")")
			continue
		}
		given[o.name] = fs.String(o.name, o.get(&def), o.usage+" (env "+o.envName()+")")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg := def
	byName := map[string]option{}
	for _, o := range opts {
		byName[o.name] = o
	}
	if *configPath != "" {
		if err := applyFile(&cfg, *configPath, opts); err != nil {
			return nil, err
		}
	}
	for _, o := range opts {
		v := getenv(o.envName())
		if o.name == "database-url" && v == "" {
			v = getenv("DATABASE_URL")
		}
		if v == "" {
			continue
		}
		if err := o.set(&cfg, v); err != nil {
			return nil, fmt.Errorf("%s=%q: %w", o.envName(), shown(o, v), err)
		}
	}
	var ferr error
	fs.Visit(func(f *flag.Flag) {
		o, ok := byName[f.Name]
		if !ok || ferr != nil {
			return
		}
		if err := o.set(&cfg, *given[f.Name]); err != nil {
			ferr = fmt.Errorf("--%s=%q: %w", f.Name, shown(o, *given[f.Name]), err)
		}
	})
	if ferr != nil {
		return nil, ferr
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func shown(o option, v string) string {
	if o.secret {
		return "(hidden)"
	}
	return v
}

func applyFile(cfg *Config, path string, opts []option) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("config file %s: not a JSON object: %w", path, err)
	}
	known := map[string]option{}
	for _, o := range opts {
		known[o.fileKey()] = o
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		o, ok := known[k]
		if !ok {
			return fmt.Errorf("config file %s: unknown key %q", path, k)
		}
		v := fmt.Sprint(m[k])
		if f, isNum := m[k].(float64); isNum {
			v = strconv.FormatFloat(f, 'f', -1, 64)
		}
		if err := o.set(cfg, v); err != nil {
			return fmt.Errorf("config file %s: %s: %w", path, k, err)
		}
	}
	return nil
}

// Validate checks every value and says which is wrong and why.
func (c *Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{name}, args...)...))
	}
	if c.Lease < 300*time.Millisecond || c.Lease > 10*time.Minute {
		bad("lease", "%v is not from 300ms to 10m", c.Lease)
	}
	if c.DBStatementTimeout < 100*time.Millisecond || c.DBStatementTimeout > time.Hour {
		bad("db-statement-timeout", "%v is not from 100ms to 1h", c.DBStatementTimeout)
	}
	if c.DBMaxConns != 0 && (c.DBMaxConns < 2 || c.DBMaxConns > 1000) {
		bad("db-max-conns", "%d is not 0 (the default) or from 2 to 1000", c.DBMaxConns)
	}
	if c.MaxCameras < 0 {
		bad("max-cameras", "%d is negative", c.MaxCameras)
	}
	if c.PIIKeys != "" {
		// The keys' text is never repeated: pii's errors name entries by
		// their place.
		if _, err := pii.ParseEntries(c.PIIKeys); err != nil {
			bad("pii-keys", "%v", err)
		}
	}
	if len(c.NodeID) > 200 || strings.ContainsAny(c.NodeID, " \t\n/") {
		bad("node-id", "%q is longer than 200 bytes or has a space or slash", c.NodeID)
	}
	if c.FootageStore != "local" {
		if _, _, err := objstore.ParseURL(c.FootageStore); err != nil {
			bad("footage-store", "%q is not local or s3://bucket[/prefix]", c.FootageStore)
		}
	}
	if c.AdvertiseURL != "" {
		if u, err := url.Parse(c.AdvertiseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			bad("advertise-url", "%q is not http(s)://host[:port]", c.AdvertiseURL)
		}
	}
	for name, addr := range map[string]string{"addr": c.Addr, "rtsp-addr": c.RTSPAddr} {
		if name == "rtsp-addr" && addr == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(addr); err != nil {
			bad(name, "%q is not host:port (%v)", addr, err)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			bad(name, "port %q is not a number from 0 to 65535", port)
		}
	}
	if strings.TrimSpace(c.DataDir) == "" {
		bad("data-dir", "must not be empty")
	}
	if c.DatabaseURL != "" {
		if _, err := pgxpool.ParseConfig(c.DatabaseURL); err != nil {
			bad("database-url", "cannot be parsed (value hidden: it may hold a password)")
		}
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		bad("log-level", "%v", err)
	}
	switch c.LogFormat {
	case "auto", "json", "text":
	default:
		bad("log-format", "%q: want auto, json or text", c.LogFormat)
	}
	if c.BasemapStyleURL != "" {
		u, err := url.Parse(c.BasemapStyleURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("basemap-style-url", "%q: want an absolute http(s) URL", c.BasemapStyleURL)
		}
	}
	if c.MaxBodyBytes < 1024 {
		bad("max-body-bytes", "%d: want at least 1024", c.MaxBodyBytes)
	}
	if c.MaxVertices < 4 {
		bad("max-vertices", "%d: want at least 4", c.MaxVertices)
	}
	if c.OverlapToleranceM2 < 0 {
		bad("overlap-tolerance-m2", "%v: want 0 or more", c.OverlapToleranceM2)
	}
	if c.SessionIdle < time.Minute || c.SessionMax < c.SessionIdle {
		bad("session-idle/session-max", "%v/%v: want idle of at least 1m and max no shorter than idle", c.SessionIdle, c.SessionMax)
	}
	if c.DeviceSessionIdle < time.Minute || c.DeviceSessionMax < c.DeviceSessionIdle {
		bad("device-session-idle/device-session-max", "%v/%v: want idle of at least 1m and max no shorter than idle", c.DeviceSessionIdle, c.DeviceSessionMax)
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		bad("admin-token", "is %d characters; want at least 16 (value hidden)", len(c.AdminToken))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("tls-cert/tls-key", "give both or neither")
	}
	for name, f := range map[string]string{"tls-cert": c.TLSCert, "tls-key": c.TLSKey} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			bad(name, "%v", err)
		}
	}
	for _, p := range c.Proxies() {
		if net.ParseIP(p) == nil {
			if _, _, err := net.ParseCIDR(p); err != nil {
				bad("trusted-proxies", "%q is neither an IP address nor a CIDR", p)
			}
		}
	}
	if c.RTSPClient != "gortsplib" && c.RTSPClient != "vdk" {
		bad("rtsp-client", "%q: want gortsplib or vdk", c.RTSPClient)
	}
	if c.RecordingFragment <= 0 || c.RecordingFile < c.RecordingFragment {
		bad("recording-fragment", "%v (file %v): want a positive fragment no longer than a file", c.RecordingFragment, c.RecordingFile)
	}
	if c.RecordingMaxAge <= 0 {
		bad("recording-max-age", "%v: want a positive duration", c.RecordingMaxAge)
	}
	if c.RecordingMaxBytes < 1<<20 {
		bad("recording-max-bytes", "%d: want at least 1048576 (1 MiB)", c.RecordingMaxBytes)
	}
	if c.RecordingMinFree < 1 {
		bad("recording-min-free", "%d: want a positive number of bytes", c.RecordingMinFree)
	}
	if c.ExportMaxRange <= 0 || c.ExportMaxRange > 24*time.Hour {
		bad("export-max-range", "%v: want a positive duration of at most 24h", c.ExportMaxRange)
	}
	if c.ExportMaxAge <= 0 {
		bad("export-max-age", "%v: want a positive duration", c.ExportMaxAge)
	}
	for _, u := range commaList(c.WebRTCICEServers) {
		if err := whep.CheckICEServer(u); err != nil {
			bad("webrtc-ice-servers", "%v", err)
		}
	}
	for _, ip := range c.WebRTCIPs() {
		if net.ParseIP(ip) == nil {
			bad("webrtc-public-ips", "%q is not an IP address", ip)
		}
	}
	if c.TranscodeMax < 1 {
		bad("transcode-max", "%d: want at least 1", c.TranscodeMax)
	}
	if c.ExportMaxPending < 1 {
		bad("export-max-pending", "%d: want at least 1", c.ExportMaxPending)
	}
	if c.ExportMinFree < 1 {
		bad("export-min-free", "%d: want a positive number of bytes", c.ExportMinFree)
	}
	if c.KeyTimeout < time.Second || c.KeyTimeout > 10*time.Minute {
		bad("key-timeout", "%v: want 1s to 10m", c.KeyTimeout)
	}
	if _, err := net.ResolveUDPAddr("udp4", c.ONVIFDiscoveryAddr); err != nil || c.ONVIFDiscoveryAddr == "" {
		bad("onvif-discovery-addr", "%q is not a host:port", c.ONVIFDiscoveryAddr)
	}
	if c.PTZHold < time.Second || c.PTZHold > time.Hour {
		bad("ptz-hold", "%v: want 1s to 1h", c.PTZHold)
	}
	if c.GB28181Addr != "" {
		if _, _, err := net.SplitHostPort(c.GB28181Addr); err != nil {
			bad("gb28181-addr", "%q is not a host:port", c.GB28181Addr)
		}
	}
	if len(c.GB28181ID) != 20 || strings.Trim(c.GB28181ID, "0123456789") != "" {
		bad("gb28181-id", "%q: want a 20-digit GB/T 28181 ID", c.GB28181ID)
	}
	if c.GB28181MediaIP != "" && net.ParseIP(c.GB28181MediaIP) == nil {
		bad("gb28181-media-ip", "%q is not an IP address", c.GB28181MediaIP)
	}
	if c.GB28181Transport != "udp" && c.GB28181Transport != "tcp-passive" && c.GB28181Transport != "tcp-active" {
		bad("gb28181-transport", "%q: want udp, tcp-passive or tcp-active", c.GB28181Transport)
	}
	if c.GB28181Keepalive < 100*time.Millisecond || c.GB28181Keepalive > time.Hour {
		bad("gb28181-keepalive", "%v: want 100ms to 1h", c.GB28181Keepalive)
	}
	if _, err := time.LoadLocation(c.GB28181TimeZone); err != nil || c.GB28181TimeZone == "" {
		bad("gb28181-time-zone", "%q is not a time zone (an IANA name such as Asia/Shanghai, or Local)", c.GB28181TimeZone)
	}
	if c.GB28181MissedKeepalives < 1 || c.GB28181MissedKeepalives > 100 {
		bad("gb28181-missed-keepalives", "%d: want 1 to 100", c.GB28181MissedKeepalives)
	}
	if c.VideoIdle <= 0 {
		bad("video-idle", "%v: want a positive duration", c.VideoIdle)
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown-timeout", "%v: want a positive duration", c.ShutdownTimeout)
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid configuration: %w", errors.Join(errs...))
	}
	return nil
}

// WebRTCIPs returns the addresses WebRTC announces, as a list.
func (c *Config) WebRTCIPs() []string { return commaList(c.WebRTCPublicIPs) }

// Proxies returns the trusted proxies as a list.
func (c *Config) Proxies() []string { return commaList(c.TrustedProxies) }

// commaList splits a comma-separated setting, dropping empty items.
func commaList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	if err != nil {
		return l, fmt.Errorf("%q: want debug, info, warn or error", s)
	}
	return l, nil
}

// NewLogger returns the slog logger the config asks for, writing to w: JSON
// unless w is a terminal (or the format says otherwise).
func NewLogger(c *Config, w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	format := c.LogFormat
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
