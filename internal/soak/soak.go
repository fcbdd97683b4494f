// Package soak runs gridwatch under a steady, mixed load for a long time and
// checks that nothing grows that should not (`make soak`).
//
// The service is the real binary (`gridwatch demo`: the demo city, its
// private PostgreSQL cluster under a data directory of its own) with as
// many recording cameras as Config.Cameras: the demo's own simulated
// cameras, and the rest from a `gridwatch camsim` process, registered
// through the API. Everything goes over loopback sockets, on ports the
// system picks:
//
//   - live viewers (Config.Viewers) join and leave all the time, each
//     watching 10–60 s: half over MSE (fMP4 over a WebSocket), half over
//     the RTSP re-serve, one in five on a sub stream (pulled on demand and
//     let go when idle); the clients are package peerbench's;
//   - reports come in at Config.ReportsPerSecond from the 12345 hotline's
//     token, each with an Idempotency-Key, every 25th sent twice;
//   - an event stream client (as the dashboard) times each report from its
//     acknowledgement to its incident.created event;
//   - a GIS editor previews a redraw (?dry_run=true), an operator exports
//     30 s of footage and downloads it, and edits footage tags.
//
// Every Config.Interval a Sample is taken: from /proc/PID the resident set,
// threads and open descriptors; from /metrics the Go heap and goroutines
// (Prometheus' Go collector); from PostgreSQL over the cluster's socket
// the service's connections and the sizes of the tables the load writes;
// from disk the footage's bytes; the interval's event latencies and load.
// The samples go to samples.csv, a chart of each metric to samples.svg,
// and the checks (Check, DefaultLimits) to summary.md.
//
// The bounds. A leak grows with time, noise does not, so each level metric
// is fitted with a least-squares line after the warm-up and its rise over
// the run is held to a fixed allowance (what a run of a few minutes cannot
// tell from settling: the heap finding its size, sub streams pulled and let
// go, viewers coming and going) plus a drift per hour that a long run must
// stay under. RSS may drift 32 MiB/h and the heap in use 16 MiB/h: a leak of
// a few kilobytes per viewer join (about 10,000 joins an hour) or per report
// (18,000 an hour) crosses that within the hour. Goroutines may drift 30/h
// and descriptors 10/h: a goroutine or a socket left behind by one join in
// a few hundred crosses it. PostgreSQL connections are the pool's and the
// event listener's: 1/h. The events table keeps an hour of events, so
// within the first hour it grows with the reports (16 MiB/h allowed), and
// then levels off.
//
// Tables and footage grow by design, so they are held to what was written:
// the incident tables per report (a row and its history: about 1 kB; bound
// 8 kB, so a row rewritten on every later report, or an index bloating,
// fails), the whole database per report (with the footage index, viewings,
// audit: bound 24 kB), footage written at a steady rate (the second half of
// the run within 25% of the first), every camera writing at every sample,
// and the index agreeing with the disk (within 16 MiB and 5%).
//
// Event latency: each interval's p95 under 1 s after the acknowledgement
// and 1.5 s after sending, the median interval's p50 under 250 and 300 ms.
// On an idle loopback both are milliseconds (the event usually arrives
// before the answer); a loaded 2-core machine stalls for tenths of a
// second, not for seconds. Failures of each kind of request stay under 1%
// (with at least one done), and no acknowledged report's event may go
// missing.
package soak

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"gridwatch/internal/domain"
)

// Config says how long and how hard to soak, and where things go.
type Config struct {
	// Gridwatch is the binary under test (bin/gridwatch).
	Gridwatch string
	// Duration of the load, after the service is up; Warmup is the part of
	// it the growth checks leave out; Interval is the sampling period.
	Duration, Warmup, Interval time.Duration
	// Out is where samples.csv, samples.svg, summary.md and the processes'
	// logs go.
	Out string
	// DataDir is gridwatch's data directory (empty: a new one under the
	// system's temporary directory, removed afterwards unless Keep).
	DataDir string
	Keep    bool
	// The load.
	Cameras, Viewers int
	ReportsPerSecond float64
	PreviewEvery     time.Duration
	ExportEvery      time.Duration
	TagEvery         time.Duration
	// Log receives progress lines.
	Log io.Writer
}

// Defaults fills the zero fields of c with the load: 20 recording
// cameras, 100 viewers, 5 reports a second, a preview every 15 s, an
// export every 30 s and a tag edit every 5 s, sampled every 10 s.
func (c *Config) Defaults() {
	if c.Duration <= 0 {
		c.Duration = time.Hour
	}
	if c.Interval <= 0 {
		c.Interval = 10 * time.Second
	}
	if c.Warmup <= 0 {
		// A quarter of the run, between 45 s and 5 minutes: long enough
		// for the heap and the pool to find their size, short enough to
		// leave most of a short run to the checks.
		c.Warmup = min(max(c.Duration/4, 45*time.Second), 5*time.Minute)
	}
	if c.Out == "" {
		c.Out = "test-artifacts/soak"
	}
	if c.Cameras <= 0 {
		c.Cameras = 20
	}
	if c.Viewers <= 0 {
		c.Viewers = 100
	}
	if c.ReportsPerSecond <= 0 {
		c.ReportsPerSecond = 5
	}
	if c.PreviewEvery <= 0 {
		c.PreviewEvery = 15 * time.Second
	}
	if c.ExportEvery <= 0 {
		c.ExportEvery = 30 * time.Second
	}
	if c.TagEvery <= 0 {
		c.TagEvery = 5 * time.Second
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
}

// ErrFailed is returned by Run when a check failed; summary.md says which.
var ErrFailed = errors.New("soak: a check failed")

// Run soaks the service as c says, writes the samples, the chart and the
// summary into c.Out, and returns ErrFailed when a check failed (or
// another error when the soak could not run).
func Run(ctx context.Context, c Config) error {
	c.Defaults()
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return err
	}
	logMu := sync.Mutex{}
	logf := func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(c.Log, "%s %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	dataDir := c.DataDir
	if dataDir == "" {
		d, err := os.MkdirTemp("", "gridwatch-soak-")
		if err != nil {
			return err
		}
		dataDir = d
		if !c.Keep {
			defer os.RemoveAll(d)
		}
	}
	s, err := start(ctx, c, dataDir, logf)
	if s != nil {
		defer s.close(logf)
	}
	if err != nil {
		return err
	}
	samples, runErr := s.soak(ctx, c, logf)
	if err := s.close(logf); err != nil && runErr == nil {
		runErr = err
	}
	results := Check(samples, c.Warmup, DefaultLimits(int64(c.Cameras)))
	if err := writeOutputs(c, samples, results, s.totals()); err != nil {
		return err
	}
	for _, r := range results {
		mark := "ok  "
		if !r.OK {
			mark = "FAIL"
		}
		logf("%s %-28s %s", mark, r.Name, r.Detail)
	}
	logf("samples, chart and summary in %s", c.Out)
	if runErr != nil {
		return runErr
	}
	if Failed(results) {
		return ErrFailed
	}
	return nil
}

// service is the running soak: gridwatch, the extra cameras, the load.
type service struct {
	gw, sim *process
	d       *driver
	dataDir string
	pg      *pgx.Conn
	closed  bool
	closeMu sync.Mutex
}

// start runs gridwatch's demo and the extra simulated cameras, registers
// those, and waits until every recording camera is online.
func start(ctx context.Context, c Config, dataDir string, logf func(string, ...any)) (*service, error) {
	token := randomHex(16)
	s := &service{dataDir: dataDir}
	// Seeding the demo (a year of cases, base data) takes a while on a
	// loaded machine.
	upCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	logPath := filepath.Join(c.Out, "gridwatch.log")
	var lines []string
	var rtspPort int
	for attempt := 1; ; attempt++ {
		var err error
		if rtspPort, err = freePort(); err != nil {
			return nil, err
		}
		logf("starting %s demo in %s", c.Gridwatch, dataDir)
		s.gw, err = startProcess("gridwatch", logPath, []string{c.Gridwatch, "demo",
			"--addr", "127.0.0.1:0", "--rtsp-addr", fmt.Sprintf("127.0.0.1:%d", rtspPort), "--data-dir", dataDir,
			"--log-level", "warn", "--log-format", "json"},
			// The token in the environment, not in ps's view of the arguments.
			[]string{"GRIDWATCH_ADMIN_TOKEN=" + token})
		if err != nil {
			return nil, err
		}
		lines, err = s.gw.waitLines(upCtx, 1, func(l string) bool { return strings.Contains(l, " is up: ") })
		if err == nil {
			break
		}
		if !s.gw.exited() {
			return s, err
		}
		// The RTSP port was free when picked, but another process may
		// have taken it since: pick another.
		<-s.gw.done
		s.gw.log.Close()
		out, _ := os.ReadFile(logPath)
		if attempt == 3 || !strings.Contains(string(out), "address already in use") {
			s.gw = nil
			return s, fmt.Errorf("%w: %s", err, lastLines(string(out), 5))
		}
		logf("RTSP port %d was taken meanwhile: again", rtspPort)
	}
	_, base, _ := strings.Cut(lines[0], " is up: ")
	s.d = &driver{
		base: strings.TrimSpace(base), rtsp: fmt.Sprintf("rtsp://127.0.0.1:%d", rtspPort),
		admin: token, integration: domain.DemoIntegrationToken,
		client:  &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		pending: map[int64]*pendingEvent{}, runID: randomHex(4), logf: logf,
	}
	logf("gridwatch %d is up at %s", s.gw.pid(), s.d.base)
	var err error
	if s.pg, err = pgx.Connect(upCtx, fmt.Sprintf("host='%s' port=5432 user=postgres dbname=gridwatch sslmode=disable",
		filepath.Join(dataDir, "pg", "run"))); err != nil {
		return s, fmt.Errorf("the private cluster's socket: %w", err)
	}
	if err := s.setup(upCtx, c, logf); err != nil {
		return s, err
	}
	return s, nil
}

// lastLines returns the last n lines of text.
func lastLines(text string, n int) string {
	l := strings.Split(strings.TrimRight(text, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

type apiCamera struct {
	ID     int64  `json:"id"`
	Code   string `json:"code"`
	SubURL string `json:"sub_url"`
	Record bool   `json:"record"`
	Status string `json:"status"`
}

func (s *service) cameras(ctx context.Context) ([]apiCamera, error) {
	var out struct {
		Cameras []apiCamera `json:"cameras"`
	}
	_, _, err := s.d.call(ctx, http.MethodGet, "/api/v1/cameras?limit=1000", s.d.admin, nil, nil, &out)
	return out.Cameras, err
}

// setup reads the city's grids and categories, adds recording cameras up
// to c.Cameras (from a camsim process), and waits until all are online.
func (s *service) setup(ctx context.Context, c Config, logf func(string, ...any)) error {
	d := s.d
	var fc struct {
		Features []struct {
			ID       int64 `json:"id"`
			Geometry struct {
				Type        string          `json:"type"`
				Coordinates json.RawMessage `json:"coordinates"`
			} `json:"geometry"`
		} `json:"features"`
	}
	if _, _, err := d.call(ctx, http.MethodGet, "/api/v1/grids.geojson?level=grid", d.admin, nil, nil, &fc); err != nil {
		return err
	}
	for _, f := range fc.Features {
		var ring [][2]float64
		switch f.Geometry.Type {
		case "Polygon":
			var p [][][2]float64
			if json.Unmarshal(f.Geometry.Coordinates, &p) == nil && len(p) > 0 {
				ring = p[0]
			}
		case "MultiPolygon":
			var mp [][][][2]float64
			if json.Unmarshal(f.Geometry.Coordinates, &mp) == nil && len(mp) > 0 && len(mp[0]) > 0 {
				ring = mp[0][0]
			}
		}
		if len(ring) < 4 {
			continue
		}
		var x, y float64
		for _, p := range ring[:len(ring)-1] {
			x += p[0]
			y += p[1]
		}
		n := float64(len(ring) - 1)
		d.places = append(d.places, place{grid: f.ID, lon: x / n, lat: y / n})
	}
	if len(d.places) == 0 {
		return errors.New("the demo city has no grids")
	}
	var cats struct {
		Categories []struct {
			Code   string  `json:"code"`
			Parent *string `json:"parent_code"`
		} `json:"categories"`
	}
	if _, _, err := d.call(ctx, http.MethodGet, "/api/v1/categories", d.admin, nil, nil, &cats); err != nil {
		return err
	}
	for _, cat := range cats.Categories {
		if cat.Parent != nil {
			d.categories = append(d.categories, cat.Code)
		}
	}
	if len(d.categories) == 0 {
		return errors.New("no incident categories")
	}
	cams, err := s.cameras(ctx)
	if err != nil {
		return err
	}
	have := 0
	for _, cam := range cams {
		if cam.Record {
			have++
		}
	}
	need := c.Cameras - have
	logf("the demo records %d cameras; adding %d from camsim", have, need)
	if need > 0 {
		s.sim, err = startProcess("camsim", filepath.Join(c.Out, "camsim.log"), []string{c.Gridwatch, "camsim",
			"--n", fmt.Sprint(need), "--addr", "127.0.0.1:0", "--log-level", "warn"}, nil)
		if err != nil {
			return err
		}
		urls, err := s.sim.waitLines(ctx, need, func(l string) bool { return strings.HasPrefix(l, "rtsp://") })
		if err != nil {
			return err
		}
		for i, u := range urls {
			p := d.places[(i*7+3)%len(d.places)]
			body := map[string]any{
				"code": fmt.Sprintf("SOAK-%02d", i+1), "name": fmt.Sprintf("浸泡测试摄像机 %d", i+1),
				"location": map[string]any{"type": "Point", "coordinates": []float64{p.lon, p.lat}},
				"heading":  (i * 53) % 360, "fov": 70, "range": 120,
				"main_url": u, "sub_url": strings.TrimSuffix(u, "/main") + "/sub", "record": true,
			}
			if _, _, err := d.call(ctx, http.MethodPost, "/api/v1/cameras", d.admin, body, nil, nil); err != nil {
				return err
			}
		}
	}
	// Every recording camera online, pulled and recording, before the load.
	for {
		cams, err := s.cameras(ctx)
		if err != nil {
			return err
		}
		d.cams = d.cams[:0]
		online := 0
		for _, cam := range cams {
			if !cam.Record {
				continue
			}
			if cam.Status == "online" {
				online++
			}
			d.cams = append(d.cams, camera{id: cam.ID, code: cam.Code, h264: cam.Code != domain.DemoH265Camera, sub: cam.SubURL != ""})
		}
		if online >= c.Cameras {
			logf("%d recording cameras online", online)
			return nil
		}
		if !wait(ctx, time.Second) {
			return fmt.Errorf("%d of %d recording cameras online: %w", online, c.Cameras, ctx.Err())
		}
	}
}

// soak runs the load for c.Duration and samples every c.Interval.
func (s *service) soak(ctx context.Context, c Config, logf func(string, ...any)) ([]Sample, error) {
	d := s.d
	loadCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stop()
		wg.Wait()
	}()
	ready := make(chan struct{})
	wg.Go(func() { d.runEvents(loadCtx, ready) })
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		return nil, errors.New("the event stream did not connect within 30 s")
	}
	start := time.Now()
	for i := range c.Viewers {
		wg.Go(func() {
			// Joins spread over the first 10 s, as a wall of browsers opens.
			if wait(loadCtx, time.Duration(i)*10*time.Second/time.Duration(c.Viewers)) {
				d.runViewer(loadCtx, i)
			}
		})
	}
	wg.Go(func() { d.runReports(loadCtx, c.ReportsPerSecond) })
	wg.Go(func() { every(loadCtx, c.PreviewEvery, d.preview) })
	wg.Go(func() { every(loadCtx, c.ExportEvery, d.export) })
	wg.Go(func() {
		n := 0
		every(loadCtx, c.TagEvery, func(ctx context.Context) { n++; d.tag(ctx, n) })
	})

	var samples []Sample
	var prev totals
	tick := time.NewTicker(c.Interval)
	defer tick.Stop()
	for {
		smp, now, err := s.sample(ctx, start, &prev)
		if err != nil {
			return samples, err
		}
		samples = append(samples, smp)
		logf("t=%-6s rss %4.0f MiB heap %4.0f MiB goroutines %4d fds %4d pg %2d db %5.0f MiB footage %6.0f MiB viewers %3d events p95 %4dms reports %d/%d",
			smp.Elapsed.Round(time.Second), float64(smp.RSS)/mib, float64(smp.HeapInuse)/mib, smp.Goroutines, smp.FDs, smp.PGConns,
			float64(smp.DBBytes)/mib, float64(smp.RecordingBytes)/mib, smp.Viewers, smp.EventP95.Milliseconds(), smp.Reports, smp.ReportErrors)
		if now.Sub(start) >= c.Duration {
			return samples, nil
		}
		select {
		case <-ctx.Done():
			logf("interrupted: %v", ctx.Err())
			return samples, nil
		case <-tick.C:
		}
	}
}

// totals are the load's running totals at a sample.
type totals struct {
	reports, reportErrors, joins, joinErrors, pictures                  int64
	previews, previewErrors, exports, exportErrors, tagEdits, tagErrors int64
	missed, reconnects                                                  int64
}

func (s *service) totals() totals {
	c := &s.d.c
	return totals{c.reports.Load(), c.reportErrors.Load(), c.joins.Load(), c.joinErrors.Load(), c.pictures.Load(),
		c.previews.Load(), c.previewErrors.Load(), c.exports.Load(), c.exportErrors.Load(), c.tagEdits.Load(), c.tagErrors.Load(),
		c.missed.Load(), c.reconnects.Load()}
}

// sample takes one Sample; prev holds the totals of the previous one.
func (s *service) sample(ctx context.Context, start time.Time, prev *totals) (Sample, time.Time, error) {
	now := time.Now()
	smp := Sample{At: now, Elapsed: now.Sub(start)}
	if s.gw.exited() {
		return smp, now, fmt.Errorf("gridwatch exited during the soak: %v (see its log)", s.gw.cmd.ProcessState)
	}
	lat, fromSend := s.d.takeLatencies(now, 30*time.Second)
	smp.EventN, smp.EventP50, smp.EventP95 = int64(len(lat)), quantile(lat, 0.5), quantile(lat, 0.95)
	smp.SentP50, smp.SentP95 = quantile(fromSend, 0.5), quantile(fromSend, 0.95)
	st, err := readProc(s.gw.pid())
	if err != nil {
		return smp, now, err
	}
	smp.RSS, smp.Threads, smp.FDs = st.rss, st.threads, st.fds
	qctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	m, err := scrapeMetrics(qctx, s.d.client, s.d.base+"/metrics", s.d.admin,
		"go_goroutines", "go_memstats_heap_alloc_bytes", "go_memstats_heap_inuse_bytes")
	if err != nil {
		return smp, now, err
	}
	smp.Goroutines = int64(m["go_goroutines"])
	smp.HeapAlloc, smp.HeapInuse = int64(m["go_memstats_heap_alloc_bytes"]), int64(m["go_memstats_heap_inuse_bytes"])
	size := func(t string) string { return fmt.Sprintf("coalesce(pg_total_relation_size(to_regclass('%s')), 0)", t) }
	err = s.pg.QueryRow(qctx, `SELECT
		(SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()),
		pg_database_size(current_database()), `+
		strings.Join([]string{size("incidents"), size("incident_events"), size("events"), size("recordings"),
			size("audit_log"), size("viewing_sessions"), size("footage_tags"), size("exports")}, ", ")+`,
		(SELECT coalesce(sum(bytes), 0) FROM recordings WHERE status = 'ok'),
		(SELECT count(DISTINCT camera_id) FROM recordings WHERE upper(span) > now() - interval '30 seconds')`).Scan(
		&smp.PGConns, &smp.DBBytes, &smp.Incidents, &smp.IncidentEvents, &smp.Events, &smp.Recordings,
		&smp.Audit, &smp.Viewings, &smp.Tags, &smp.Exports, &smp.IndexedBytes, &smp.RecordingCameras)
	if err != nil {
		return smp, now, fmt.Errorf("sample PostgreSQL: %w", err)
	}
	if smp.RecordingBytes, err = dirBytes(filepath.Join(s.dataDir, "recordings")); err != nil {
		return smp, now, err
	}
	t := s.totals()
	smp.Reports, smp.ReportErrors = t.reports-prev.reports, t.reportErrors-prev.reportErrors
	smp.Joins, smp.JoinErrors, smp.Pictures = t.joins-prev.joins, t.joinErrors-prev.joinErrors, t.pictures-prev.pictures
	smp.Previews, smp.PreviewErrors = t.previews-prev.previews, t.previewErrors-prev.previewErrors
	smp.ExportsDone, smp.ExportErrors = t.exports-prev.exports, t.exportErrors-prev.exportErrors
	smp.TagEdits, smp.TagErrors = t.tagEdits-prev.tagEdits, t.tagErrors-prev.tagErrors
	smp.EventsMissed, smp.Reconnects = t.missed-prev.missed, t.reconnects-prev.reconnects
	smp.Viewers = s.d.c.viewers.Load()
	*prev = t
	return smp, now, nil
}

// close stops the load's processes: gridwatch must stop cleanly on
// SIGTERM (its cluster with it).
func (s *service) close(logf func(string, ...any)) error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.pg != nil {
		_ = s.pg.Close(context.Background())
	}
	if s.gw != nil {
		errs = append(errs, s.gw.stop(90*time.Second))
	}
	if s.sim != nil {
		errs = append(errs, s.sim.stop(10*time.Second))
	}
	if s.d != nil {
		s.d.client.CloseIdleConnections()
	}
	logf("stopped gridwatch and camsim")
	return errors.Join(errs...)
}
