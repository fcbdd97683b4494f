package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch/camera/camsim"
	"gridwatch/geo"
	"gridwatch/internal/pgcluster"
	"gridwatch/internal/testtool"
)

// The database restarted under load (issue 14): PostgreSQL is stopped as a
// crash would stop it (`pg_ctl stop -m immediate`) and started again, a few
// times, while reports, bulk reports, boundary previews, recording and an
// event stream go on. Each acknowledged report is stored exactly once; every
// answer that was not an acknowledgement was a 503 with Retry-After; /readyz
// said so while the database was away; the pool and LISTEN came back by
// themselves; the event stream, resumed with Last-Event-ID when it broke,
// announced every report; and every recording on disk is in the index.
//
// Two databases: one of the test's own (DATABASE_URL, as an operator's), and
// gridwatch's private cluster, restarted under it with pg_ctl.
func TestDatabaseRestartUnderLoad(t *testing.T) {
	t.Run("external", func(t *testing.T) {
		nc := newNodeClusterWith(t, false)
		nc.extra = " --recording-fragment 1s --recording-file 3s"
		n := nc.start("a")
		rig := &dbRig{
			t: t, url: n.url, dsn: nc.dsn, recordings: filepath.Join(nc.dirs["a"], "recordings"),
			stop:  func(ctx context.Context) error { return nc.pg.Stop(ctx, "immediate") },
			start: func(ctx context.Context) error { return nc.pg.StartAgain(ctx) },
			term:  func() { _ = n.cmd.Process.Signal(syscall.SIGTERM); <-n.done },
			logs:  n.logs.String, pgLog: nc.pg.LogFile(),
		}
		runDBRestarts(t, rig, 3)
	})
	t.Run("private", func(t *testing.T) {
		dir := dataDir(t)
		cmd := childCmd(t, "serve", dir, " --admin-token "+testAdminToken+" --recording-fragment 1s --recording-file 3s")
		logs := &lockedBuffer{}
		cmd.Stderr = logs
		up := serveURL(t, cmd, logs)
		pgdir := filepath.Join(dir, "pg")
		rig := &dbRig{
			t: t, url: up.url, dsn: fmt.Sprintf("host='%s' port=5432 user=postgres dbname='gridwatch' sslmode=disable", filepath.Join(pgdir, "run")),
			recordings: filepath.Join(dir, "recordings"),
			stop: func(ctx context.Context) error {
				return pgcluster.Ctl(ctx, pgdir, "stop", "-m", "immediate", "-w", "-t", "55")
			},
			// restart starts a stopped server with the options it last had.
			start: func(ctx context.Context) error { return pgcluster.Ctl(ctx, pgdir, "restart", "-w", "-t", "55") },
			// gridwatch stops its database as it stops: the test starts
			// it again to read the index.
			term: func() {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				<-up.done
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				pg, err := pgcluster.Start(ctx, pgcluster.Options{Dir: pgdir})
				if err != nil {
					t.Fatalf("start the database gridwatch left: %v", err)
				}
				t.Cleanup(func() { pg.Close() })
			},
			logs: logs.String, pgLog: filepath.Join(pgdir, "postgres.log"),
		}
		runDBRestarts(t, rig, 2)
	})
}

// childServe is a child gridwatch's address, and a channel closed when it
// has exited.
type childServe struct {
	url  string
	done chan struct{}
}

// serveURL starts cmd and waits for it to say where it serves; what it
// writes goes on into logs.
func serveURL(t *testing.T, cmd *exec.Cmd, logs io.Writer) childServe {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	up, done := make(chan string, 1), make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if _, url, ok := strings.Cut(sc.Text(), " is up: "); ok {
				up <- strings.TrimSpace(url)
			}
			fmt.Fprintln(logs, sc.Text())
		}
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case url := <-up:
		return childServe{url: url, done: done}
	case <-done:
		t.Fatal("gridwatch exited before serving")
	case <-time.After(3 * time.Minute):
		t.Fatal("gridwatch did not come up in 3 min")
	}
	return childServe{}
}

// dbRig is a gridwatch on a database the test can take away.
type dbRig struct {
	t          *testing.T
	url, dsn   string
	recordings string
	stop       func(context.Context) error // the database goes, as in a crash
	start      func(context.Context) error // and comes back
	term       func()                      // SIGTERM gridwatch and wait for it
	logs       func() string
	pgLog      string // the postmaster's log
}

// dbLoad is what the clients did and saw, kept under mu.
type dbLoad struct {
	mu sync.Mutex
	// acked: each report's title (its Idempotency-Key) and the id it got;
	// bulkAcked the same for the bulk lines' external_ids.
	acked     map[string]int64
	bulkAcked map[string]int64
	// lastAck is when the latest acknowledgement came; refused counts the
	// 503s (with Retry-After) and wrong lists any other answer.
	lastAck  time.Time
	refused  int
	wrong    []string
	ready    bool      // the latest /readyz answer
	notReady time.Time // when /readyz last said not ready
	seen     map[int64]bool
	lastSeen time.Time // when the stream last announced a new report
	resumes  int       // reconnections of the event stream with Last-Event-ID
	lastID   string    // the last id the stream sent
	// connected counts the streams the server said were subscribed.
	connected int
	changed   chan struct{}
	// cut ends the event stream's connection (a network blip), taken by
	// the stream's reader.
	cut chan struct{}
}

// note records something and wakes whoever waits on a condition.
func (l *dbLoad) note(f func()) {
	l.mu.Lock()
	f()
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

// waitFor waits until cond (called under mu) holds, or fails the test.
func (l *dbLoad) waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.After(within)
	for {
		l.mu.Lock()
		ok, ch := cond(), l.changed
		l.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%s: not within %v", what, within)
		}
	}
}

// reason503 checks that a refusal is a 503 with Retry-After, and records it.
func (l *dbLoad) answer(what string, res *http.Response, body []byte, err error) (acked bool) {
	switch {
	case err != nil:
		l.note(func() { l.wrong = append(l.wrong, fmt.Sprintf("%s: %v", what, err)) })
	case res.StatusCode == http.StatusServiceUnavailable && res.Header.Get("Retry-After") != "":
		l.note(func() { l.refused++ })
	case res.StatusCode >= 300:
		l.note(func() {
			l.wrong = append(l.wrong, fmt.Sprintf("%s: %d Retry-After %q %s", what, res.StatusCode, res.Header.Get("Retry-After"), body))
		})
	default:
		return true
	}
	return false
}

// request sends body (nil: none) as the admin with headers h.
func (r *dbRig) request(ctx context.Context, client *http.Client, method, path string, body []byte, h map[string]string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, r.url+path, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range h {
		req.Header.Set(k, v)
	}
	res, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, b, err
}

// runSim serves n simulated cameras until the test ends.
func runSim(t *testing.T, n int) *camsim.Sim {
	t.Helper()
	sim, err := camsim.New(camsim.Config{N: n, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(testtool.Run(t, 15*time.Second, sim.Run))
	return sim
}

// previewOf picks a grid to preview redraws of: its id, its own boundary
// as the body of a dry run, and its ETag.
func (r *dbRig) previewOf(ctx context.Context, t *testing.T, client *http.Client) (id int64, body []byte, etag string) {
	t.Helper()
	var grids struct {
		Grids []struct {
			ID int64 `json:"id"`
		} `json:"grids"`
	}
	if st := getJSON(t, r.url+"/api/v1/grids?level=grid&limit=1", &grids); st != 200 || len(grids.Grids) == 0 {
		t.Fatalf("no grid to preview: %d", st)
	}
	id = grids.Grids[0].ID
	var grid struct {
		Geometry json.RawMessage `json:"geometry"`
	}
	res, b, err := r.request(ctx, client, "GET", fmt.Sprintf("/api/v1/grids/%d", id), nil, nil)
	if err != nil || res.StatusCode != 200 || json.Unmarshal(b, &grid) != nil {
		t.Fatalf("grid %d: %v %v %s", id, err, res, b)
	}
	body, _ = json.Marshal(map[string]any{"type": "Feature", "geometry": grid.Geometry})
	return id, body, res.Header.Get("ETag")
}

// retryPause is how long a client of the test waits before sending a
// refused request again: less than the Retry-After it was given, to see
// the service come back as soon as it does.
const retryPause = 100 * time.Millisecond

// outage is how long the database stays away once: longer than a
// recording file (--recording-file 3s), so that files close meanwhile.
const outage = 5 * time.Second

func runDBRestarts(t *testing.T, r *dbRig, cycles int) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	defer r.failed(t)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: time.Minute}
	defer client.CloseIdleConnections()
	if st, b := send(t, client, "POST", r.url+"/api/v1/grids/import", geo.DemoCity()); st != http.StatusCreated {
		t.Fatalf("import the demo city: %d %s", st, b)
	}
	// Two recording cameras, and a grid to preview redraws of.
	cams := createCameras(t, &gwNode{url: r.url}, runSim(t, 2), 2)
	gridID, preview, etag := r.previewOf(ctx, t, client)

	l := &dbLoad{acked: map[string]int64{}, bulkAcked: map[string]int64{}, seen: map[int64]bool{},
		changed: make(chan struct{}), cut: make(chan struct{}, 1)}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// Reporters: each report is sent until acknowledged, with the same key.
	for w := range 3 {
		wg.Go(func() {
			for n := 0; loadCtx.Err() == nil; n++ {
				key := fmt.Sprintf("fault-%d-%d", w, n)
				body := fmt.Appendf(nil, `{"source":"hotline","category":"0101","title":%q,"location":{"type":"Point","coordinates":[113.68,34.79]}}`, key)
				for {
					res, b, err := r.request(ctx, client, "POST", "/api/v1/incidents", body, map[string]string{"Idempotency-Key": key})
					if ctx.Err() != nil {
						return
					}
					if l.answer("report "+key, res, b, err) {
						var in struct {
							ID int64 `json:"id"`
						}
						if json.Unmarshal(b, &in) != nil || in.ID == 0 {
							l.note(func() { l.wrong = append(l.wrong, fmt.Sprintf("report %s: %d %s", key, res.StatusCode, b)) })
						}
						l.note(func() { l.acked[key], l.lastAck = in.ID, time.Now() })
						break
					}
					time.Sleep(retryPause) // a client's pause before it tries again
				}
			}
		})
	}
	// Bulk: batches of 20 lines, the lines not acknowledged sent again.
	wg.Go(func() {
		for b := 0; loadCtx.Err() == nil; b++ {
			var ids []string
			for i := range 20 {
				ids = append(ids, fmt.Sprintf("bulk-%d-%d", b, i))
			}
			for len(ids) > 0 {
				var nd bytes.Buffer
				for _, id := range ids {
					fmt.Fprintf(&nd, `{"source":"sensor","external_id":%q,"category":"0101","title":"bulk","location":{"type":"Point","coordinates":[113.68,34.79]}}`+"\n", id)
				}
				res, out, err := r.request(ctx, client, "POST", "/api/v1/incidents/bulk", nd.Bytes(), map[string]string{"Content-Type": "application/x-ndjson"})
				if ctx.Err() != nil {
					return
				}
				if l.answer("bulk", res, out, err) {
					var rest []string
					done := map[int]int64{}
					sc := bufio.NewScanner(bytes.NewReader(out))
					for sc.Scan() {
						var lr struct {
							Line   int    `json:"line"`
							Status string `json:"status"`
							ID     int64  `json:"id"`
							Error  *struct {
								Code string `json:"code"`
							} `json:"error"`
						}
						if json.Unmarshal(sc.Bytes(), &lr) != nil {
							continue
						}
						switch {
						case lr.Status == "created" || lr.Status == "duplicate":
							done[lr.Line] = lr.ID
						case lr.Error != nil && lr.Error.Code != "unavailable":
							// Not to be sent again: a fault of the test's.
							done[lr.Line] = 0
							l.note(func() { l.wrong = append(l.wrong, "bulk line: "+sc.Text()) })
						}
					}
					for i, id := range ids {
						if n, ok := done[i+1]; ok {
							if n != 0 {
								l.note(func() { l.bulkAcked[id], l.lastAck = n, time.Now() })
							}
						} else {
							rest = append(rest, id)
						}
					}
					ids = rest
				}
				if len(ids) > 0 {
					time.Sleep(retryPause)
				}
			}
		}
	})
	// Redraw previews of one grid.
	wg.Go(func() {
		for loadCtx.Err() == nil {
			res, b, err := r.request(loadCtx, client, "PUT", fmt.Sprintf("/api/v1/grids/%d/geometry?dry_run=true", gridID), preview, map[string]string{"If-Match": etag})
			if loadCtx.Err() != nil {
				return
			}
			l.answer("preview", res, b, err)
			time.Sleep(retryPause)
		}
	})
	// /readyz, as a load balancer polls it.
	wg.Go(func() {
		for loadCtx.Err() == nil {
			res, _, err := r.request(loadCtx, client, "GET", "/readyz", nil, nil)
			if loadCtx.Err() != nil {
				return
			}
			ok := err == nil && res.StatusCode == 200
			l.note(func() {
				if l.ready = ok; !ok {
					l.notReady = time.Now()
				}
			})
			time.Sleep(50 * time.Millisecond) // the poll interval
		}
	})
	// The event stream, resumed with Last-Event-ID whenever it breaks.
	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	streamDone := make(chan struct{})
	go func() { defer close(streamDone); r.followEvents(streamCtx, l) }()

	// Warm up: reports stored and announced, and each camera's first file
	// closed, before the first fault.
	db, err := pgxpool.New(ctx, r.dsn) // a pool: it outlives the restarts
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	closedFiles := func() int64 {
		var n int64
		if err := db.QueryRow(ctx, `SELECT coalesce(min(n), 0) FROM (SELECT count(*) FILTER (WHERE NOT open) AS n FROM recordings
			WHERE camera_id = ANY($1) GROUP BY camera_id HAVING count(*) > 0) c`, cams).Scan(&n); err != nil {
			t.Fatalf("count recordings: %v", err)
		}
		return n
	}
	l.waitFor(t, "reports before the first restart", time.Minute, func() bool { return len(l.acked) >= 10 && len(l.seen) >= 10 })
	waitUntil(t, "each camera's first file closed and indexed", 2*time.Minute, func() bool { return closedFiles() >= 1 })
	type recovery struct{ ready, report, event time.Duration }
	var recs []recovery
	for c := range cycles {
		refused := func() int { l.mu.Lock(); defer l.mu.Unlock(); return l.refused }()
		down := time.Now()
		if err := r.stop(ctx); err != nil {
			t.Fatalf("cycle %d: stop the database: %v", c, err)
		}
		l.waitFor(t, "/readyz not ready and a request refused while the database is down", time.Minute, func() bool {
			return l.notReady.After(down) && l.refused > refused
		})
		// The event stream's connection breaks while the database is away:
		// it resumes with Last-Event-ID, which needs the database.
		select {
		case l.cut <- struct{}{}:
		default: // one is pending already
		}
		if c == 0 {
			// Once, the database stays away for longer than a recording
			// file lasts: files close meanwhile, unindexed.
			<-time.After(outage)
		}
		if err := r.start(ctx); err != nil {
			t.Fatalf("cycle %d: start the database: %v", c, err)
		}
		back := time.Now()
		var rec recovery
		l.waitFor(t, "ready, a report acknowledged and announced after the database came back", 2*time.Minute, func() bool {
			if rec.ready == 0 && l.ready {
				rec.ready = time.Since(back)
			}
			if rec.report == 0 && l.lastAck.After(back) {
				rec.report = l.lastAck.Sub(back)
			}
			if rec.event == 0 && l.lastSeen.After(back) {
				rec.event = l.lastSeen.Sub(back)
			}
			return rec.ready > 0 && rec.report > 0 && rec.event > 0
		})
		recs = append(recs, rec)
		t.Logf("cycle %d: down %v; after the database was back: ready in %v, a report acknowledged in %v, announced in %v",
			c, back.Sub(down).Round(time.Millisecond), rec.ready.Round(time.Millisecond), rec.report.Round(time.Millisecond), rec.event.Round(time.Millisecond))
		// Some work under a healthy database before the next fault.
		n := func() int { l.mu.Lock(); defer l.mu.Unlock(); return len(l.acked) }()
		l.waitFor(t, "reports after recovery", time.Minute, func() bool { return len(l.acked) >= n+10 })
	}
	// Files closed since the long outage, all caught up with in the index
	// (checked below, against the disk).
	waitUntil(t, "more files closed after the restarts", 2*time.Minute, func() bool { return closedFiles() >= 3 })
	stopLoad()
	wg.Wait()

	// Every acknowledged report announced on the stream, resumed or not.
	var unseen []string
	defer func() {
		if t.Failed() && len(unseen) > 0 {
			t.Logf("acknowledged, never announced: %v; the stream's last id: %s", unseen, l.lastID)
		}
	}()
	l.waitFor(t, "every acknowledged report announced", time.Minute, func() bool {
		unseen = unseen[:0]
		for key, id := range mapsJoin(l.acked, l.bulkAcked) {
			if !l.seen[id] {
				unseen = append(unseen, fmt.Sprintf("%s=%d", key, id))
			}
		}
		return len(unseen) == 0
	})
	stopStream()
	<-streamDone
	for _, w := range l.wrong {
		t.Errorf("not a 503 with Retry-After: %s", w)
	}
	if l.refused == 0 {
		t.Error("no request was refused while the database was down")
	}

	for line := range strings.Lines(r.logs()) {
		if strings.Contains(line, "panic") {
			t.Errorf("gridwatch panicked: %s", strings.ReplaceAll(line, `\n`, "\n"))
		}
	}

	// Each acknowledged report stored once, with the id it was given.
	stored := map[string][]int64{}
	rows, _ := db.Query(ctx, `SELECT title, id FROM incidents WHERE title LIKE 'fault-%' UNION ALL
		SELECT external_id, id FROM incidents WHERE source = 'sensor' AND external_id LIKE 'bulk-%'`)
	for rows.Next() {
		var key string
		var id int64
		if err := rows.Scan(&key, &id); err != nil {
			t.Fatal(err)
		}
		stored[key] = append(stored[key], id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for key, id := range mapsJoin(l.acked, l.bulkAcked) {
		if got := stored[key]; len(got) != 1 || got[0] != id {
			t.Errorf("report %s acknowledged as %d, stored as %v", key, id, got)
		}
	}
	for key, ids := range stored {
		if len(ids) > 1 {
			t.Errorf("report %s stored %d times: %v", key, len(ids), ids)
		}
	}
	t.Logf("%d reports and %d bulk lines acknowledged, %d requests refused with 503 and Retry-After, the event stream reconnected %d times with Last-Event-ID",
		len(l.acked), len(l.bulkAcked), l.refused, l.resumes)

	// Recording went on: stop gridwatch (its last files close and are
	// indexed) and compare the disk with the index.
	r.term()
	r.checkRecordings(ctx, t, db, cams)
	for _, rec := range recs {
		t.Logf("RELIABILITY: database restart (%s): ready %v, report %v, event %v", t.Name(),
			rec.ready.Round(time.Millisecond), rec.report.Round(time.Millisecond), rec.event.Round(time.Millisecond))
	}
}

// failed logs the tails of gridwatch's and PostgreSQL's logs.
func (r *dbRig) failed(t *testing.T) {
	if !t.Failed() {
		return
	}
	t.Logf("gridwatch's log (tail):\n%s", tail(r.logs(), 40))
	b, _ := os.ReadFile(r.pgLog)
	t.Logf("postgres's log (tail):\n%s", tail(string(b), 30))
}

func mapsJoin(a, b map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// followEvents reads the event stream until ctx ends, noting the reports
// it announces; when the stream breaks it opens it again from the last id
// it saw, as a browser's EventSource does.
func (r *dbRig) followEvents(ctx context.Context, l *dbLoad) {
	var last string
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, "GET", r.url+"/api/v1/events", nil)
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		if last != "" {
			req.Header.Set("Last-Event-ID", last)
			l.note(func() { l.resumes++ })
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != 200 {
			if res != nil {
				res.Body.Close()
			}
			time.Sleep(retryPause) // EventSource's retry
			continue
		}
		var event string
		cut := make(chan struct{})
		go func() {
			select {
			case <-l.cut:
				res.Body.Close()
			case <-cut:
			}
		}()
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				last = strings.TrimPrefix(line, "id: ")
				l.note(func() { l.lastID = last })
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				var d struct {
					ID  int64   `json:"id"`
					IDs []int64 `json:"ids"`
				}
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &d)
				var ids []int64
				switch event {
				case "incident.created":
					ids = []int64{d.ID}
				case "incident.bulk":
					ids = d.IDs
				}
				if len(ids) > 0 {
					l.note(func() {
						for _, id := range ids {
							l.seen[id] = true
						}
						l.lastSeen = time.Now()
					})
				}
			case line == ": connected":
				l.note(func() { l.connected++ })
			case line == "":
				event = ""
			}
		}
		close(cut)
		res.Body.Close()
	}
}

// waitUntil polls cond, as an operator watching a table would, until it
// holds or within has passed.
func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(200 * time.Millisecond) // polling the index, which has no event to wait on
	}
}

// checkRecordings compares the recordings on disk with the index: each
// file has its row, whole (the bytes the row says are the file's), and no
// row is without its file.
func (r *dbRig) checkRecordings(ctx context.Context, t *testing.T, db *pgxpool.Pool, cams []int64) {
	t.Helper()
	onDisk := map[string]int64{}
	err := filepath.WalkDir(r.recordings, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".mp4") {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(r.recordings, p)
		onDisk[rel] = info.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := db.Query(ctx, "SELECT path, bytes, camera_id FROM recordings")
	indexed := map[string]int64{}
	perCam := map[int64]int{}
	for rows.Next() {
		var p string
		var n, cam int64
		if err := rows.Scan(&p, &n, &cam); err != nil {
			t.Fatal(err)
		}
		indexed[p] = n
		perCam[cam]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, c := range cams {
		if perCam[c] < 2 {
			t.Errorf("camera %d: %d recordings indexed, want the files of the whole test", c, perCam[c])
		}
	}
	var missing []string
	for p, size := range onDisk {
		n, ok := indexed[p]
		switch {
		case !ok:
			missing = append(missing, p+": no row")
		case n != size:
			missing = append(missing, fmt.Sprintf("%s: row says %d bytes, the file has %d", p, n, size))
		}
	}
	for p := range indexed {
		if _, ok := onDisk[p]; !ok {
			missing = append(missing, p+": a row without its file")
		}
	}
	slices.Sort(missing)
	for _, m := range missing {
		t.Errorf("recording %s", m)
	}
	t.Logf("%d recordings on disk, %d indexed, %d of them caught up with after closing while the database was away",
		len(onDisk), len(indexed), strings.Count(r.logs(), "indexed a file closed while the database was away"))
}
