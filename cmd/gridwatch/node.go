package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch/cluster"
	"gridwatch/internal/database"
	"gridwatch/internal/objstore"
)

// NodePoolName is the application_name of the cluster node's own
// connections (pg_stat_activity tells them from the requests').
const NodePoolName = "gridwatch-node"

// newNode makes this process's cluster node (its loop starts in startNode,
// once the listeners are up and it can say how to reach it). Its changes of
// owner go to the video manager.
func (m *Main) newNode(ctx context.Context) error {
	cfg := m.Config
	id := cfg.NodeID
	if id == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return fmt.Errorf("node id: no --node-id and no host name (%v)", err)
		}
		id = h
	}
	// The node's beats and leases have connections of their own: when a
	// locked table holds every connection of the requests' pool, the node
	// still renews its cameras (one LISTENs, one beats, one to spare).
	np, err := database.Open(ctx, m.dsn, database.Options{MaxConns: 3, StatementTimeout: cfg.DBStatementTimeout,
		ApplicationName: NodePoolName, Logger: m.Logger})
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	m.nodePool = np
	n, err := cluster.New(ctx, np, cluster.Config{
		ID: id, Version: version, Lease: cfg.Lease, MaxCameras: cfg.MaxCameras, Secret: cfg.ClusterSecret,
		Logger: m.Logger.With("component", "cluster"), Stats: m.nodeStats,
		OnChange: func() {
			if m.video != nil {
				m.video.Reroute(m.bg)
			}
		},
	})
	if err != nil {
		return err
	}
	m.node = n
	return nil
}

// openObjects connects to the object store when --footage-store names one.
func (m *Main) openObjects(ctx context.Context) error {
	cfg := m.Config
	if cfg.FootageStore == "" || cfg.FootageStore == "local" {
		return nil
	}
	s, err := objstore.Open(ctx, objstore.Config{URL: cfg.FootageStore, Endpoint: cfg.S3Endpoint, Region: cfg.S3Region, PathStyle: cfg.S3PathStyle})
	if err != nil {
		return err
	}
	m.objects = s
	m.Logger.Info("footage goes to the object store", "store", s.String())
	return nil
}

// peers is how the recorder reaches another node's files: its HTTP base
// from the nodes table, and the cluster's peer token.
type peers struct {
	pool *pgxpool.Pool
	node *cluster.Node
}

func (p peers) Peer(ctx context.Context, id string) (string, string, bool) {
	var url string
	var alive bool
	err := p.pool.QueryRow(ctx, `SELECT url, last_beat + lease_ms * interval '1 millisecond' > now() FROM nodes WHERE id = $1`, id).Scan(&url, &alive)
	if err != nil {
		return "", "", false
	}
	return url, p.node.PeerToken(), alive
}

// startNode says how to reach this node and starts its beats: from then on
// it claims cameras, and the video follows.
func (m *Main) startNode() error {
	httpURL, rtspURL, err := m.advertised()
	if err != nil {
		return err
	}
	m.node.SetURLs(httpURL, rtspURL)
	m.background.Go(func() {
		if err := m.node.Run(m.bg); err != nil {
			m.Logger.Error("cluster node stopped", "err", err)
		}
	})
	m.Logger.Info("cluster node", "id", m.node.ID(), "url", httpURL, "rtsp", rtspURL, "lease", m.node.Lease())
	return nil
}

// advertised is how other nodes reach this one: --advertise-url, or the
// listen address (the host name in place of an unspecified host); the RTSP
// re-serve on the same host at its own port.
func (m *Main) advertised() (httpURL, rtspURL string, err error) {
	host := ""
	if a := m.Config.AdvertiseURL; a != "" {
		u, err := url.Parse(a)
		if err != nil {
			return "", "", fmt.Errorf("advertise-url: %w", err)
		}
		httpURL, host = strings.TrimSuffix(a, "/"), u.Hostname()
	} else {
		h, port, _ := net.SplitHostPort(m.ln.Addr().String())
		host = advertisedHost(h)
		scheme := "http"
		if m.Config.TLSCert != "" {
			scheme = "https"
		}
		httpURL = scheme + "://" + net.JoinHostPort(host, port)
	}
	if m.rtsp != nil {
		_, port, _ := net.SplitHostPort(m.rtsp.Addr())
		rtspURL = "rtsp://" + net.JoinHostPort(host, port)
	}
	return httpURL, rtspURL, nil
}

// advertisedHost is h, or the host name when h is unspecified.
func advertisedHost(h string) string {
	if ip := net.ParseIP(h); h == "" || (ip != nil && ip.IsUnspecified()) {
		if name, err := os.Hostname(); err == nil && name != "" {
			return name
		}
	}
	return h
}

// nodeStats is what this node's row shows: its viewers (the viewing
// sessions open through it, live or recorded, every protocol; not its
// recorders nor other nodes' relays) and its load (the host's 1-minute
// load average per core).
func (m *Main) nodeStats() (int, float64) {
	return m.viewings.Watching(), loadPerCore()
}

func loadPerCore() float64 {
	f, err := os.Open("/proc/loadavg")
	if err != nil {
		return 0
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString(' ')
	l, err := strconv.ParseFloat(strings.TrimSpace(line), 64)
	if err != nil {
		return 0
	}
	return l / float64(runtime.NumCPU())
}
