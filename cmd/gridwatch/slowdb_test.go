package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch/geo"
	"gridwatch/internal/peerbench"
)

// slowTimeout is the child's --db-statement-timeout in TestSlowDatabase;
// slowClients how many clients send requests while the tables are locked.
const (
	slowTimeout = 2 * time.Second
	slowClients = 16
)

// A slow or locked database (issue 14): the tables requests need
// (incidents, grids, recordings) are held under ACCESS EXCLUSIVE locks, as
// a long migration or VACUUM FULL holds them, for five statement timeouts,
// while four times as many clients as gridwatch has pool connections send
// requests. Every request that needs a locked table is answered with 503
// "unavailable", reason "timeout" and Retry-After, within the statement
// timeout and a margin (at most one timeout waiting for a pool connection,
// one on the lock), never held for the lock's duration nor for a queue of
// others' timeouts; /healthz answers, and a request that needs no locked
// table answers or is refused as quickly; the live MSE and RTSP viewers get
// pictures at the rate they got them before, without a gap; the recorders
// neither skip pictures nor stop, and their files grow on disk while the
// index cannot be written. Once the locks go, the same requests succeed
// and the index catches up: every file on disk has its row, whole.
func TestSlowDatabase(t *testing.T) {
	nc := newNodeClusterWith(t, true)
	nc.extra = fmt.Sprintf(" --db-statement-timeout %v --recording-fragment 1s --recording-file 3s", slowTimeout)
	n := nc.start("a")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rig := &dbRig{t: t, url: n.url, dsn: nc.dsn, recordings: filepath.Join(nc.dirs["a"], "recordings"), logs: n.logs.String}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}, Timeout: time.Minute}
	defer client.CloseIdleConnections()

	if st, b := send(t, client, "POST", n.url+"/api/v1/grids/import", geo.DemoCity()); st != http.StatusCreated {
		t.Fatalf("import the demo city: %d %s", st, b)
	}
	cams := createCameras(t, n, runSim(t, 2), 2)
	// A grid to preview a redraw of (its own boundary, as a dry run).
	gridID, preview, etag := rig.previewOf(ctx, t, client)

	// The requests of the test: those that need a locked table, and those
	// that need none.
	type call struct {
		name, method, path string
		body               []byte
		h                  map[string]string
	}
	var reportN int
	var reportMu sync.Mutex
	report := func() call {
		reportMu.Lock()
		reportN++
		key := fmt.Sprintf("slow-%d", reportN)
		reportMu.Unlock()
		return call{"report", "POST", "/api/v1/incidents",
			fmt.Appendf(nil, `{"source":"hotline","category":"0101","title":%q,"location":{"type":"Point","coordinates":[113.68,34.79]}}`, key),
			map[string]string{"Idempotency-Key": key}}
	}
	locked := []func() call{
		report,
		func() call { return call{"list incidents", "GET", "/api/v1/incidents?limit=20", nil, nil} },
		func() call {
			return call{"grid preview", "PUT", fmt.Sprintf("/api/v1/grids/%d/geometry?dry_run=true", gridID), preview, map[string]string{"If-Match": etag}}
		},
	}
	free := []call{
		{"healthz", "GET", "/healthz", nil, nil},
		{"camera", "GET", fmt.Sprintf("/api/v1/cameras/%d", cams[0]), nil, nil},
	}
	for _, c := range append([]call{locked[0](), locked[1](), locked[2]()}, free...) {
		if res, b, err := rig.request(ctx, client, c.method, c.path, c.body, c.h); err != nil || res.StatusCode >= 300 {
			t.Fatalf("%s before the lock: %v %v %s", c.name, err, res, b)
		}
	}

	// Live viewers (MSE of one camera, RTSP of the other), and the
	// recorders' first files closed and indexed.
	mse := watchMSE(t, ctx, n, cams[0])
	defer mse.close()
	dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
	rtsp, err := peerbench.Dial(dctx, fmt.Sprintf("%s/cameras/%d?token=%s", n.rtsp, cams[1], testAdminToken), "", "")
	dcancel()
	if err != nil {
		t.Fatalf("RTSP: %v", err)
	}
	rtspDone := make(chan struct{})
	go func() { defer close(rtspDone); _ = rtsp.Run() }()
	defer func() { rtsp.Close(); <-rtspDone }()
	select {
	case <-rtsp.FirstKeyframe():
	case <-rtspDone:
		t.Fatal("RTSP: the session ended before a keyframe")
	case <-time.After(30 * time.Second):
		t.Fatal("RTSP: no keyframe in 30 s")
	}
	// The rates before the lock are measured from here: past the burst of
	// the GOP cache a new viewer gets first, over two seconds at least.
	watchStart := time.Now()
	if !mse.waitSegments(25, watchStart, time.Minute) {
		t.Fatalf("MSE: %d segments in a minute", mse.after(watchStart))
	}
	watchFrom, rtspPics0 := time.Now(), rtsp.Count()
	if !mse.waitSegments(50, watchFrom, time.Minute) {
		t.Fatalf("MSE: %d segments in a minute", mse.after(watchFrom))
	}
	closedFiles := func() int64 {
		return nc.query(`SELECT coalesce(min(n), 0) FROM (SELECT count(*) FILTER (WHERE NOT open) AS n FROM recordings
			WHERE camera_id = ANY($1) GROUP BY camera_id HAVING count(*) = $2) c`, cams, len(cams))[0][0].(int64)
	}
	waitUntil(t, "each camera's first file closed and indexed", 2*time.Minute, func() bool {
		return closedFiles() >= 1 && nc.query(`SELECT count(DISTINCT camera_id) FROM recordings`)[0][0].(int64) == int64(len(cams))
	})
	skips0 := hubSkips(t, n.url, cams)

	// The locks, from a connection of the test's own.
	lockConn, err := pgx.Connect(ctx, nc.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer lockConn.Close(context.Background())
	tx, err := lockConn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE incidents, grids, recordings IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatalf("lock: %v", err)
	}
	locked0 := time.Now()
	rtspPics1 := rtsp.Count()
	disk0 := diskBytes(t, rig.recordings)
	hold := time.NewTimer(5 * slowTimeout) // the fault: the locks are held this long

	// Clients: four times the pool's connections (4 on two cores), each
	// sending the locked requests in turn until the locks go. Without a
	// bound on the wait for a connection, the last in the queue would wait
	// for four rounds of statement timeouts.
	type answer struct {
		name       string
		sent, took time.Duration // since the locks were taken
		status     int
		code       string
		reason     string
		retryAfter string
		err        error
	}
	var mu sync.Mutex
	var answers []answer
	lockEnded := make(chan struct{})
	var wg sync.WaitGroup
	ask := func(c call) answer {
		start := time.Now()
		res, b, err := rig.request(ctx, client, c.method, c.path, c.body, c.h)
		a := answer{name: c.name, sent: start.Sub(locked0), took: time.Since(start), err: err}
		if err == nil {
			a.status, a.retryAfter = res.StatusCode, res.Header.Get("Retry-After")
			var e struct {
				Error struct {
					Code    string `json:"code"`
					Details struct {
						Reason string `json:"reason"`
					} `json:"details"`
				} `json:"error"`
			}
			_ = json.Unmarshal(b, &e)
			a.code, a.reason = e.Error.Code, e.Error.Details.Reason
		}
		return a
	}
	for w := range slowClients {
		wg.Go(func() {
			for i := w; ; i++ {
				select {
				case <-lockEnded:
					return
				default:
				}
				a := ask(locked[i%len(locked)]())
				mu.Lock()
				answers = append(answers, a)
				mu.Unlock()
			}
		})
	}
	// And the requests that need no locked table, one at a time.
	var freeAnswers []answer
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-lockEnded:
				return
			case <-time.After(200 * time.Millisecond): // a dashboard's poll
			}
			a := ask(free[i%len(free)])
			mu.Lock()
			freeAnswers = append(freeAnswers, a)
			mu.Unlock()
		}
	})
	<-hold.C
	close(lockEnded)
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	unlocked := time.Now()
	rtspPics2 := rtsp.Count()
	lockedFor := unlocked.Sub(locked0)
	disk1 := diskBytes(t, rig.recordings)
	skips1 := hubSkips(t, n.url, cams)
	wg.Wait()

	// Every request was answered, and not held for the lock: within the
	// statement timeout and a margin for the load (a queue for a pool
	// connection included).
	bound := slowTimeout + 5*time.Second
	var waits []time.Duration
	refused := map[string]int{}
	for _, a := range answers {
		switch {
		case a.err != nil:
			t.Errorf("%s sent at +%v: %v", a.name, a.sent.Round(time.Millisecond), a.err)
			continue
		case a.took > bound:
			t.Errorf("%s sent at +%v: answered after %v, want within %v", a.name, a.sent.Round(time.Millisecond), a.took.Round(time.Millisecond), bound)
		}
		switch {
		case a.status == http.StatusServiceUnavailable && a.code == "unavailable" && a.reason == "timeout" && a.retryAfter != "":
			refused[a.name]++
			waits = append(waits, a.took)
		case a.status < 300 && a.sent+a.took > lockedFor-time.Second:
			// Answered as the locks went: a success is right.
		default:
			t.Errorf("%s sent at +%v: %d code %q reason %q Retry-After %q after %v; want 503 unavailable, reason timeout, with Retry-After",
				a.name, a.sent.Round(time.Millisecond), a.status, a.code, a.reason, a.retryAfter, a.took.Round(time.Millisecond))
		}
	}
	for _, c := range locked {
		if name := c().name; refused[name] == 0 {
			t.Errorf("no %s was refused for the lock", name)
		}
	}
	// /healthz needs no database; a camera needs a pool connection, which
	// the locked requests may all hold: it answers, or is refused as they
	// are once the wait for a connection reaches its bound.
	var freeWorst time.Duration
	freeOK := 0
	for _, a := range freeAnswers {
		switch {
		case a.err == nil && a.status == 200:
			freeOK++
		case a.err == nil && a.name == "camera" && a.status == http.StatusServiceUnavailable && a.reason == "timeout" && a.retryAfter != "":
		default:
			t.Errorf("%s (no locked table) sent at +%v: %d %q %v", a.name, a.sent.Round(time.Millisecond), a.status, a.code, a.err)
		}
		freeWorst = max(freeWorst, a.took)
	}
	if freeWorst > bound {
		t.Errorf("a request that needs no locked table took %v, want within %v", freeWorst, bound)
	}
	if len(freeAnswers) == 0 {
		t.Error("no request that needs no locked table was answered during the lock")
	}

	// Live video did not stall: the segments came as fast as before, with
	// no gap of more than 2 s.
	before := mse.rate(watchFrom, locked0)
	during := mse.rate(locked0, unlocked)
	gapBefore := mse.longestGap(watchFrom, locked0)
	gapDuring := mse.longestGap(locked0, unlocked)
	if during < 0.8*before {
		t.Errorf("MSE: %.1f segments/s during the lock, %.1f before", during, before)
	}
	if gapDuring > 2*time.Second {
		t.Errorf("MSE: a gap of %v between segments during the lock", gapDuring)
	}
	rtspBefore := float64(rtspPics1-rtspPics0) / locked0.Sub(watchFrom).Seconds()
	rtspDuring := float64(rtspPics2-rtspPics1) / lockedFor.Seconds()
	if rtspDuring < 0.8*rtspBefore {
		t.Errorf("RTSP: %.1f pictures/s during the lock, %.1f before", rtspDuring, rtspBefore)
	}
	// Recording went on: the files grew on disk, and no recorder skipped
	// pictures or was dropped for being slow.
	if disk1 <= disk0 {
		t.Errorf("recordings on disk: %d bytes when the lock was taken, %d when it went: nothing written", disk0, disk1)
	}
	for c, s := range skips1 {
		if s != skips0[c] {
			t.Errorf("camera %s: the hub skipped or dropped a slow viewer %v times during the lock (before: %v)", c, s-skips0[c], skips0[c])
		}
	}

	// After the locks: the same requests succeed, and the index catches up.
	for _, c := range append([]call{locked[0](), locked[1](), locked[2]()}, free...) {
		start := time.Now()
		for {
			a := ask(c)
			if a.err == nil && a.status < 300 {
				break
			}
			if time.Since(start) > 30*time.Second {
				t.Fatalf("%s after the lock: %d %v, still after 30 s", c.name, a.status, a.err)
			}
			<-time.After(retryPause) // a client's pause before it tries again
		}
	}
	recovered := time.Since(unlocked)
	db, err := pgxpool.New(ctx, nc.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var caughtUp time.Duration
	waitUntil(t, "every closed file on disk indexed, whole", time.Minute, func() bool {
		if behind := indexBehind(ctx, t, db, rig.recordings); len(behind) > 0 {
			return false
		}
		caughtUp = time.Since(unlocked)
		return true
	})
	// Footage without a hole: each camera's files follow one another.
	hole := time.Duration(nc.query(`SELECT coalesce(max(extract(epoch FROM lower(span) - prev)), 0)::float8 FROM (
		SELECT span, lag(upper(span)) OVER (PARTITION BY camera_id ORDER BY lower(span)) AS prev FROM recordings WHERE camera_id = ANY($1)) r`,
		cams)[0][0].(float64) * float64(time.Second))
	if hole > 500*time.Millisecond {
		t.Errorf("recording: a hole of %v between two files of a camera", hole)
	}
	gaps := nc.query(`SELECT count(*) FROM recording_gaps WHERE camera_id = ANY($1)`, cams)[0][0].(int64)
	if gaps > 0 {
		t.Errorf("recording: %d gaps recorded", gaps)
	}

	// Stop gridwatch (its last files close and are indexed) and compare
	// the disk with the index.
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	<-n.done
	rig.checkRecordings(ctx, t, db, cams)
	for line := range strings.Lines(n.logs.String()) {
		if strings.Contains(line, "panic") {
			t.Errorf("gridwatch panicked: %s", line)
		}
	}

	slices.Sort(waits)
	pct := func(p float64) time.Duration {
		if len(waits) == 0 {
			return 0
		}
		return waits[min(len(waits)-1, int(p*float64(len(waits))))].Round(time.Millisecond)
	}
	t.Logf("RELIABILITY: slow database: tables locked %v (statement timeout %v), %d requests by %d clients, %d refused (503 timeout): waited p50 %v, p95 %v, max %v; requests needing no locked table: %d of %d answered 200, worst %v",
		lockedFor.Round(time.Millisecond), slowTimeout, len(answers), slowClients, len(waits), pct(0.5), pct(0.95), pct(1), freeOK, len(freeAnswers), freeWorst.Round(time.Millisecond))
	t.Logf("RELIABILITY: slow database: MSE %.1f segments/s before, %.1f during the lock; longest gap %v before, %v during; RTSP %.1f pictures/s before, %.1f during",
		before, during, gapBefore.Round(time.Millisecond), gapDuring.Round(time.Millisecond), rtspBefore, rtspDuring)
	t.Logf("RELIABILITY: slow database: recording wrote %d bytes during the lock, hub skips %v -> %v, longest hole between files %v, %d gaps; requests succeed again %v after unlock, index caught up %v after unlock; %d lease beats failed",
		disk1-disk0, skips0, skips1, hole.Round(time.Millisecond), gaps, recovered.Round(time.Millisecond), caughtUp.Round(time.Millisecond),
		strings.Count(n.logs.String(), "cluster: beat"))
}

// rate is the segments per second the viewer got from from to to.
func (v *mseViewer) rate(from, to time.Time) float64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, f := range v.frames {
		if f.After(from) && !f.After(to) {
			n++
		}
	}
	return float64(n) / to.Sub(from).Seconds()
}

// longestGap is the longest time from from to to without a segment.
func (v *mseViewer) longestGap(from, to time.Time) time.Duration {
	v.mu.Lock()
	defer v.mu.Unlock()
	last, gap := from, time.Duration(0)
	for _, f := range v.frames {
		if f.After(from) && !f.After(to) {
			gap = max(gap, f.Sub(last))
			last = f
		}
	}
	return max(gap, to.Sub(last))
}

// hubSkips reads, per camera stream, the times its hub skipped a slow
// viewer ahead and dropped one (gridwatch's /metrics).
func hubSkips(t *testing.T, url string, cams []int64) map[string]float64 {
	t.Helper()
	st, b := send(t, http.DefaultClient, "GET", url+"/metrics", nil)
	if st != 200 {
		t.Fatalf("/metrics: %d", st)
	}
	out := map[string]float64{}
	for _, c := range cams {
		out[strconv.FormatInt(c, 10)] = 0
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "gridwatch_camera_viewer_skips_total{") && !strings.HasPrefix(line, "gridwatch_camera_viewer_drops_total{") {
			continue
		}
		_, rest, _ := strings.Cut(line, `camera="`)
		cam, _, _ := strings.Cut(rest, `"`)
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		if _, ok := out[cam]; ok {
			out[cam] += v
		}
	}
	return out
}

// diskBytes is the size of the recordings under dir.
func diskBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".mp4") {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// indexBehind lists the files under dir the index does not hold whole,
// leaving out each camera's newest (being written).
func indexBehind(ctx context.Context, t *testing.T, db *pgxpool.Pool, dir string) []string {
	t.Helper()
	sizes := map[string]int64{}
	newest := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".mp4") {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		rel, _ := filepath.Rel(dir, p)
		sizes[rel] = info.Size()
		cam, _, _ := strings.Cut(rel, string(filepath.Separator))
		// Names are the start in unix ms, all of one length.
		if base := filepath.Base(rel); base > filepath.Base(newest[cam]) {
			newest[cam] = rel
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := db.Query(ctx, "SELECT path, bytes FROM recordings")
	indexed := map[string]int64{}
	for rows.Next() {
		var p string
		var n int64
		if err := rows.Scan(&p, &n); err != nil {
			t.Fatal(err)
		}
		indexed[p] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var behind []string
	for p, size := range sizes {
		if slices.Contains(slices.Collect(maps.Values(newest)), p) {
			continue
		}
		if indexed[p] != size {
			behind = append(behind, p)
		}
	}
	return behind
}
