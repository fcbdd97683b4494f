package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"gridwatch/internal/peerbench"
)

// The resource limits (issue 14): a child gridwatch runs out of file
// descriptors, or PostgreSQL out of connections, under load. It answers
// what it can with 503 and Retry-After, never crashes, and recovers by
// itself once the load drops. Each test logs "RELIABILITY:" lines: the
// requests refused and how, the recovery times, and the crashes (none).

// fdHeadroom is how many descriptors the child may open beyond those it
// holds once serving: enough to serve the test's own requests, viewers
// and event streams, so that the idle connections exhaust it.
const fdHeadroom = 64

// openFDs counts the descriptors process pid holds.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("descriptors of %d: %v", pid, err)
	}
	return len(ents)
}

// alive fails the test if node n has exited.
func alive(t *testing.T, n *gwNode, when string) {
	t.Helper()
	select {
	case <-n.done:
		t.Fatalf("%s: gridwatch exited (%v): %s", when, n.cmd.ProcessState, tail(n.logs.String(), 40))
	default:
	}
}

// noPanic fails the test if gridwatch's log shows a panic or a fatal error.
func noPanic(t *testing.T, n *gwNode) {
	t.Helper()
	for line := range strings.Lines(n.logs.String()) {
		if strings.Contains(line, "panic") || strings.HasPrefix(line, "fatal error") {
			t.Errorf("gridwatch panicked: %s", line)
		}
	}
}

// report posts one incident as the admin; it returns the status, the
// Retry-After header, the new incident's id and the transport's error.
func report(ctx context.Context, client *http.Client, url, title string) (int, string, int64, error) {
	body := fmt.Sprintf(`{"source":"hotline","category":"0101","title":%q,"location":{"type":"Point","coordinates":[113.68,34.79]}}`, title)
	req, err := http.NewRequestWithContext(ctx, "POST", url+"/api/v1/incidents", strings.NewReader(body))
	if err != nil {
		return 0, "", 0, err
	}
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return 0, "", 0, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, "", 0, err
	}
	var in struct {
		ID int64 `json:"id"`
	}
	_ = json.Unmarshal(b, &in)
	return res.StatusCode, res.Header.Get("Retry-After"), in.ID, nil
}

// get sends a GET as the admin and reads the answer; it returns the
// status, the Retry-After header and the transport's error.
func get(ctx context.Context, client *http.Client, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	res, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	_, err = io.Copy(io.Discard, res.Body)
	return res.StatusCode, res.Header.Get("Retry-After"), err
}

// attachPhoto reports an incident through n with a photo attached and
// returns the photo's path.
func attachPhoto(t *testing.T, n *gwNode) string {
	t.Helper()
	var in struct {
		ID int64 `json:"id"`
	}
	body := []byte(`{"source":"hotline","category":"0101","title":"limits","location":{"type":"Point","coordinates":[113.68,34.79]}}`)
	if st := post(t, http.DefaultClient, n.url+"/api/v1/incidents", body, &in); st != http.StatusCreated {
		t.Fatalf("report: %d", st)
	}
	var photo bytes.Buffer
	if err := png.Encode(&photo, image.NewRGBA(image.Rect(0, 0, 8, 8))); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/api/v1/incidents/%d/attachments?filename=scene.png", n.url, in.ID), &photo)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	req.Header.Set("Content-Type", "image/png")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var a struct {
		URL string `json:"url"`
	}
	if err := json.NewDecoder(res.Body).Decode(&a); err != nil || res.StatusCode != http.StatusCreated || a.URL == "" {
		t.Fatalf("attach a photo: %d %v %+v", res.StatusCode, err, a)
	}
	return a.URL
}

// sipOptions sends a SIP OPTIONS over a new TCP connection to addr, as a
// GB/T 28181 device checking its platform would, and returns the status
// line of the answer.
func sipOptions(addr string, seq int, within time.Duration) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, within)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(within))
	local := conn.LocalAddr().String()
	fmt.Fprintf(conn, "OPTIONS sip:34020000002000000001@%s SIP/2.0\r\n"+
		"Via: SIP/2.0/TCP %s;branch=z9hG4bK-limits-%d\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:34020000001320000001@%s>;tag=limits-%d\r\n"+
		"To: <sip:34020000002000000001@%s>\r\n"+
		"Call-ID: limits-%d@%s\r\n"+
		"CSeq: 1 OPTIONS\r\n"+
		"Content-Length: 0\r\n\r\n", addr, local, seq, local, seq, addr, seq, local)
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("OPTIONS over TCP: %w", err)
	}
	if !strings.HasPrefix(line, "SIP/2.0 200") {
		return "", fmt.Errorf("OPTIONS over TCP: %q", line)
	}
	return strings.TrimSpace(line), nil
}

// logHas reports whether a line of log holds every one of parts.
func logHas(log string, parts ...string) bool {
	for line := range strings.Lines(log) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

// tally counts the answers of one kind of request under a fault.
type tally struct {
	ok, refused, unanswered int
	wrong                   []string
}

// note files one answer: ok (a success), a 503 with Retry-After, no
// answer at all (err), or anything else, which is wrong.
func (ty *tally) note(what string, status int, retryAfter string, err error, ok bool) {
	switch {
	case err != nil:
		ty.unanswered++
	case ok:
		ty.ok++
	case status == http.StatusServiceUnavailable && retryAfter != "":
		ty.refused++
	default:
		ty.wrong = append(ty.wrong, fmt.Sprintf("%s: %d (Retry-After %q)", what, status, retryAfter))
	}
}

func (ty *tally) String() string {
	return fmt.Sprintf("%d ok, %d refused with 503 and Retry-After, %d unanswered, %d wrong", ty.ok, ty.refused, ty.unanswered, len(ty.wrong))
}

// playRTSP opens an RTSP re-serve viewer of camera and waits for its
// first keyframe (false: none within).
func playRTSP(ctx context.Context, n *gwNode, camera int64, within time.Duration) (*peerbench.Player, chan struct{}, error) {
	dctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	p, err := peerbench.Dial(dctx, fmt.Sprintf("%s/cameras/%d?token=%s", n.rtsp, camera, testAdminToken), "", "")
	if err != nil {
		return nil, nil, err
	}
	ended := make(chan struct{})
	go func() { defer close(ended); _ = p.Run() }()
	select {
	case <-p.FirstKeyframe():
		return p, ended, nil
	case <-ended:
		return nil, nil, errors.New("the session ended before a keyframe")
	case <-dctx.Done():
		p.Close()
		<-ended
		return nil, nil, fmt.Errorf("no keyframe within %v", within)
	}
}

// terminateNode ends the node's database sessions, as a restart of the
// database or a connection's lifetime would: its pool must connect again.
// conn is a session of the test's own (application_name testApp);
// sessions named in keep (application_name) are left.
func terminateNode(ctx context.Context, conn *pgx.Conn, keep ...string) (int, error) {
	var n int
	err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE backend_type = 'client backend' AND application_name <> $1 AND application_name <> ALL($2) AND pid <> pg_backend_pid()`,
		strings.TrimPrefix(testApp, "application_name="), append([]string{}, keep...)).Scan(&n)
	return n, err
}

// TestOutOfFileDescriptors runs gridwatch with a low RLIMIT_NOFILE (set
// with prlimit once it serves: its own descriptors and fdHeadroom more)
// and exhausts it with event streams, RTSP viewers and idle HTTP
// keep-alive connections, more than it can accept (the rest wait in the
// listen queue and take every descriptor that frees). While out of
// descriptors, on a connection it had accepted before: a photo, a file it
// must open, is refused with 503 and Retry-After; then its database
// sessions end, and reports, which need a new one, answer 503 with
// Retry-After (or succeed, when the pool wins a freed descriptor), never
// 500. A recording file that cannot be opened is logged. An RTSP viewer
// and a GB/T 28181 device (SIP over TCP) that dial then are accepted once
// descriptors free: the accept loops back off, they do not stop. The
// process never exits. After the load drops, with no help: /healthz
// answers on new connections, reports succeed and are announced on the
// event stream, a new RTSP viewer plays, SIP over TCP answers, and each
// camera writes and indexes files again.
func TestOutOfFileDescriptors(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Fatalf("prlimit (util-linux) is needed to lower the child's descriptor limit: %v", err)
	}
	nc := newNodeCluster(t)
	nc.extra = " --recording-fragment 500ms --recording-file 2s --gb28181-addr 127.0.0.1:0"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sim := runSim(t, 2)
	n := nc.start("a")
	_, sipAddr, _ := strings.Cut(n.logs.String(), `msg="GB/T 28181 platform listening" addr=`)
	sipAddr, _, _ = strings.Cut(sipAddr, " ")
	if _, err := sipOptions(sipAddr, 0, 10*time.Second); err != nil {
		t.Fatalf("SIP over TCP: %v", err)
	}
	cams := createCameras(t, n, sim, 2)
	filesSince := func(since time.Time) int64 {
		return one[int64](nc, `SELECT coalesce(min(c), 0) FROM (SELECT count(r.id) AS c FROM unnest($1::bigint[]) AS cam
			LEFT JOIN recordings r ON r.camera_id = cam AND lower(r.span) >= $2 GROUP BY cam) x`, cams, since)
	}
	waitFor(t, time.Minute, "each camera recording", func() bool { return filesSince(time.Time{}) >= 1 })
	// The test's own session, named as such: it ends the node's.
	nc.db.Close(ctx)
	nc.db, nc.dsn = nil, nc.dsn+" "+testApp
	nc.query("SELECT 1")
	nc.dsn = strings.TrimSuffix(nc.dsn, " "+testApp)
	// Files the node opens for a request: a photo of a report, and a
	// closed recording.
	photo := attachPhoto(t, n)
	var recording int64
	waitFor(t, time.Minute, "a closed recording", func() bool {
		rows := nc.query(`SELECT id FROM recordings WHERE NOT open ORDER BY id LIMIT 1`)
		if len(rows) == 1 {
			recording = rows[0][0].(int64)
		}
		return recording != 0
	})

	pid := n.cmd.Process.Pid
	base := openFDs(t, pid)
	limit := base + fdHeadroom
	if out, err := exec.Command("prlimit", "--pid", strconv.Itoa(pid), fmt.Sprintf("--nofile=%d:%d", limit, limit)).CombinedOutput(); err != nil {
		t.Fatalf("prlimit: %v: %s", err, out)
	}
	t.Logf("gridwatch holds %d descriptors serving 2 recording cameras; its limit is now %d", base, limit)

	// probe's connection is accepted before each flood and kept: the
	// requests sent on it while out of descriptors can be answered.
	probe := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1, IdleConnTimeout: 5 * time.Minute}, Timeout: 30 * time.Second}
	defer probe.CloseIdleConnections()
	// fresh opens a connection for each request: as a new client would.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	streams := &http.Client{Transport: &http.Transport{}}
	defer streams.CloseIdleConnections()

	// Under the limit, it serves normally.
	if st, _, _, err := report(ctx, fresh, n.url, "limits-before"); err != nil || st != http.StatusCreated {
		t.Fatalf("a report under the lowered limit: %d %v", st, err)
	}
	if p, ended, err := playRTSP(ctx, n, cams[0], 30*time.Second); err != nil {
		t.Fatalf("an RTSP viewer under the lowered limit: %v", err)
	} else {
		p.Close()
		<-ended
	}

	const cycles = 3
	var reports, photos, recFiles tally
	var recFiles404 int
	var lateRefused, latePlayed int
	var recErrors, acceptRetries, sipAcceptRetries, httpAcceptErrors, dbFDErrors int
	type recovery struct{ healthz, report, event, viewer, files time.Duration }
	var recs []recovery
	for c := range cycles {
		alive(t, n, fmt.Sprintf("cycle %d", c))
		// The probe's connection, accepted while there is room.
		if res, err := probe.Get(n.url + "/healthz"); err != nil {
			t.Fatalf("cycle %d: probe: %v", c, err)
		} else {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		logBefore := len(n.logs.String())
		// The load: 16 event streams, 8 RTSP viewers, then idle
		// keep-alive connections until the process is out of
		// descriptors, and 32 more waiting to be accepted.
		sctx, closeStreams := context.WithCancel(ctx)
		var sses []<-chan sseLine
		for range 16 {
			sses = append(sses, openEvents(t, sctx, streams, n.url))
		}
		type viewer struct {
			p     *peerbench.Player
			ended chan struct{}
		}
		var viewers []viewer
		for i := range 8 {
			p, ended, err := playRTSP(ctx, n, cams[i%2], 30*time.Second)
			if err != nil {
				t.Fatalf("cycle %d: RTSP viewer %d: %v", c, i, err)
			}
			viewers = append(viewers, viewer{p, ended})
		}
		var idle []net.Conn
		for range max(0, limit-openFDs(t, pid)) + 32 {
			conn, err := net.Dial("tcp", strings.TrimPrefix(n.url, "http://"))
			if err != nil {
				t.Fatalf("cycle %d: idle connection %d: %v", c, len(idle), err)
			}
			// One request, then idle: the answer waits in the socket.
			fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: gridwatch\r\n\r\n")
			idle = append(idle, conn)
		}
		waitFor(t, time.Minute, "gridwatch to be out of descriptors", func() bool { return openFDs(t, pid) >= limit })
		exhausted := time.Now()

		// An RTSP viewer dials now: its connection waits in the queue, and
		// its accept fails at first.
		type dialed struct {
			p     *peerbench.Player
			ended chan struct{}
			err   error
		}
		late := make(chan dialed, 1)
		go func() {
			p, ended, err := playRTSP(ctx, n, cams[1], 90*time.Second)
			late <- dialed{p, ended, err}
		}()
		// So does a GB/T 28181 device over SIP/TCP.
		lateSIP := make(chan error, 1)
		go func() {
			_, err := sipOptions(sipAddr, c+1, 90*time.Second)
			lateSIP <- err
		}()

		// Files cannot be opened: the photo is refused with 503 (its
		// database session is still there).
		for {
			if time.Since(exhausted) > time.Minute {
				t.Fatalf("cycle %d: no photo refused in a minute out of descriptors (%v)", c, &photos)
			}
			st, ra, err := get(ctx, probe, n.url+photo)
			photos.note("photo", st, ra, err, st == http.StatusOK)
			// A recorded file: a player's request for its bytes.
			st, ra, err = get(ctx, probe, fmt.Sprintf("%s/api/v1/recordings/%d/file.mp4", n.url, recording))
			if st == http.StatusNotFound {
				// The file is there: out of descriptors is not "missing".
				recFiles404++
				t.Errorf("cycle %d: a recorded file on disk answered 404 out of descriptors", c)
			} else {
				recFiles.note("recording file", st, ra, err, st == http.StatusOK)
			}
			if photos.refused > 0 {
				break
			}
			if len(photos.wrong) > 0 {
				t.Fatalf("cycle %d: a photo out of descriptors: %s, want 503 with Retry-After", c, photos.wrong[0])
			}
			alive(t, n, fmt.Sprintf("cycle %d, out of descriptors", c))
			time.Sleep(retryPause) // a client's pause before it tries again
		}

		// Its database sessions end: the pool's next connection needs a
		// descriptor. Each freed one goes to the listen queue or the pool.
		// The cluster node's own few connections are left: ended, they
		// would free descriptors the requests' pool could take at once.
		if _, err := terminateNode(ctx, nc.db, NodePoolName); err != nil {
			t.Fatalf("cycle %d: end the node's sessions: %v", c, err)
		}
		// Reports on the probe's connection, as a client sends them,
		// until the load drops.
		var mu sync.Mutex
		var refusedAt time.Time
		answered := 0 // this cycle's reports answered as they should be
		stopReports, reportsDone := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(reportsDone)
			for i := 0; ; i++ {
				st, ra, _, err := report(ctx, probe, n.url, fmt.Sprintf("limits-%d-%d", c, i))
				mu.Lock()
				reports.note("report", st, ra, err, st == http.StatusCreated)
				if err == nil && (st == http.StatusCreated || st == http.StatusServiceUnavailable && ra != "") {
					answered++
				}
				if err == nil && st == http.StatusServiceUnavailable && ra != "" && refusedAt.IsZero() {
					refusedAt = time.Now()
				}
				mu.Unlock()
				select {
				case <-stopReports:
					return
				case <-ctx.Done():
					return
				case <-time.After(retryPause): // a client's pause before the next
				}
			}
		}()
		// Reports on the probe's connection need one of the pool's, and
		// each connection needs a descriptor. Whether a report finds one
		// is a race gridwatch does not decide: each freed descriptor goes
		// to the first to ask, the listen queue's accept (retried with
		// back-off), the recorder's index writes (a file every 2 s) or the
		// report. So each report must succeed or be refused with 503 and
		// Retry-After (checked below), until one is refused or for 10 s.
		// (TestOutOfDBConnections refuses the pool every connection: there
		// every report is refused.) gridwatch may also end the shortage
		// itself: event streams whose queue the feed's catch-up overflows
		// are dropped, and their descriptors freed.
		reportsFrom := time.Now()
		waitFor(t, time.Minute, "a report refused, or 10 s of reports answered", func() bool {
			alive(t, n, fmt.Sprintf("cycle %d, out of descriptors", c))
			mu.Lock()
			defer mu.Unlock()
			return !refusedAt.IsZero() || time.Since(reportsFrom) >= 10*time.Second && answered > 0
		})
		// While the descriptors stay short, a recording file that could
		// not be opened (the recorder starts one every 2 s) is said so in
		// the log; the files not opened are counted below.
		recordFault := time.After(10 * time.Second)
	wait:
		for !logHas(n.logs.String()[logBefore:], "msg=recording", "too many open files") {
			alive(t, n, fmt.Sprintf("cycle %d, out of descriptors", c))
			select {
			case <-recordFault:
				break wait
			case <-time.After(100 * time.Millisecond): // polling the log
			}
		}
		close(stopReports)
		<-reportsDone

		// The load drops.
		dropped := time.Now()
		for _, conn := range idle {
			conn.Close()
		}
		closeStreams()
		for _, lines := range sses {
			for range lines { // until its reader has ended
			}
		}
		for _, v := range viewers {
			v.p.Close()
			<-v.ended
		}
		probe.CloseIdleConnections()
		var rec recovery
		waitFor(t, time.Minute, "/healthz on a new connection", func() bool {
			res, err := fresh.Get(n.url + "/healthz")
			if err != nil {
				return false
			}
			res.Body.Close()
			rec.healthz = time.Since(dropped)
			return res.StatusCode == http.StatusOK
		})
		// A dashboard's stream, resumed with Last-Event-ID if it ends: the
		// events missed while the feed's listener was away come at once
		// when it is back, and a subscriber they overflow is dropped to
		// reconnect (events.ErrSlow), as EventSource does by itself.
		ectx, closeEvents := context.WithCancel(ctx)
		followed := &dbLoad{seen: map[int64]bool{}, changed: make(chan struct{}), cut: make(chan struct{}, 1)}
		followDone := make(chan struct{})
		go func() { defer close(followDone); (&dbRig{url: n.url}).followEvents(ectx, followed) }()
		followed.waitFor(t, "the event stream open", time.Minute, func() bool { return followed.connected > 0 })
		var id int64
		for i := 0; id == 0; i++ {
			if time.Since(dropped) > time.Minute {
				t.Fatalf("cycle %d: no report acknowledged in a minute after the load dropped (%v)", c, &reports)
			}
			st, ra, got, err := report(ctx, fresh, n.url, fmt.Sprintf("limits-after-%d-%d", c, i))
			if err == nil && st == http.StatusCreated {
				id, rec.report = got, time.Since(dropped)
				break
			}
			reports.note("report after the drop", st, ra, err, false)
			time.Sleep(retryPause) // a client's pause before it tries again
		}
		followed.waitFor(t, fmt.Sprintf("cycle %d: report %d announced", c, id), time.Minute, func() bool { return followed.seen[id] })
		rec.event = time.Since(dropped)
		closeEvents()
		<-followDone
		// The viewer that dialed while out of descriptors was accepted:
		// it plays, or was refused with 503 when its access check could
		// not reach the database.
		switch l := <-late; {
		case l.err == nil:
			latePlayed++
			l.p.Close()
			<-l.ended
		case strings.HasSuffix(l.err.Error(), "status 503"):
			lateRefused++
		default:
			t.Fatalf("cycle %d: the RTSP viewer that dialed out of descriptors: %v", c, l.err)
		}
		if err := <-lateSIP; err != nil {
			t.Fatalf("cycle %d: the SIP request sent over TCP out of descriptors: %v", c, err)
		}
		if _, err := sipOptions(sipAddr, 100+c, 30*time.Second); err != nil {
			t.Fatalf("cycle %d: SIP over TCP after the load dropped: %v (GB/T 28181 stopped: %v)", c, err, logHas(n.logs.String(), "GB/T 28181 stopped"))
		}
		p, ended, err := playRTSP(ctx, n, cams[0], time.Minute)
		if err != nil {
			t.Fatalf("cycle %d: a new RTSP viewer after the load dropped: %v", c, err)
		}
		rec.viewer = time.Since(dropped)
		p.Close()
		<-ended
		waitEvery(t, time.Minute, 100*time.Millisecond, "each camera to index a new file", func() bool { return filesSince(dropped) >= 1 })
		rec.files = time.Since(dropped)
		logged := n.logs.String()[logBefore:]
		for line := range strings.Lines(logged) {
			switch {
			case strings.Contains(line, "msg=recording") && strings.Contains(line, "too many open files"):
				recErrors++
			case strings.Contains(line, "rtspserve: accept failed; retrying"):
				acceptRetries++
			case strings.Contains(line, "gb28181: accept failed; retrying"):
				sipAcceptRetries++
			case strings.Contains(line, "Accept error") && strings.Contains(line, "too many open files"):
				httpAcceptErrors++
			case strings.Contains(line, "database unavailable") && strings.Contains(line, "too many open files"):
				dbFDErrors++
			}
		}
		recs = append(recs, rec)
		refusal := "none refused"
		if !refusedAt.IsZero() {
			refusal = fmt.Sprintf("first report refused after %v", refusedAt.Sub(exhausted).Round(time.Millisecond))
		}
		t.Logf("cycle %d: out of descriptors for %v (%s); after the load dropped: /healthz %v, report %v, announced %v, new RTSP viewer %v, new file per camera %v",
			c, dropped.Sub(exhausted).Round(time.Millisecond), refusal,
			rec.healthz.Round(time.Millisecond), rec.report.Round(time.Millisecond), rec.event.Round(time.Millisecond),
			rec.viewer.Round(time.Millisecond), rec.files.Round(time.Millisecond))
	}
	alive(t, n, "the end")
	noPanic(t, n)
	if logHas(n.logs.String(), "GB/T 28181 stopped") {
		t.Error("the GB/T 28181 server stopped")
	}
	for _, w := range slices.Concat(reports.wrong, photos.wrong, recFiles.wrong) {
		t.Errorf("not a 503 with Retry-After: %s", w)
	}
	pick := func(f func(recovery) time.Duration) (time.Duration, time.Duration) {
		var ds []time.Duration
		for _, r := range recs {
			ds = append(ds, f(r))
		}
		return percentile(ds, 0.5).Round(time.Millisecond), percentile(ds, 0.95).Round(time.Millisecond)
	}
	h50, h95 := pick(func(r recovery) time.Duration { return r.healthz })
	r50, r95 := pick(func(r recovery) time.Duration { return r.report })
	e50, e95 := pick(func(r recovery) time.Duration { return r.event })
	v50, v95 := pick(func(r recovery) time.Duration { return r.viewer })
	f50, f95 := pick(func(r recovery) time.Duration { return r.files })
	t.Logf("RELIABILITY: fault=out-of-fds cycles=%d limit=%d (serving: %d) reports: %v (refused for a database connection out of descriptors, logged: %d); photos: %v; RTSP viewers dialed out of descriptors: %d refused with 503, %d played once accepted; recording files that could not be opened (logged): %d; accept retries logged: RTSP %d, SIP/TCP %d, HTTP %d; crashes: 0",
		cycles, limit, base, &reports, dbFDErrors, &photos, lateRefused, latePlayed, recErrors, acceptRetries, sipAcceptRetries, httpAcceptErrors)
	t.Logf("RELIABILITY: fault=out-of-fds a recorded file requested out of descriptors: %v (404s: %d)", &recFiles, recFiles404)
	t.Logf("RELIABILITY: fault=out-of-fds recovery after the load dropped: healthz p50=%v p95=%v report p50=%v p95=%v event p50=%v p95=%v rtsp_viewer p50=%v p95=%v new_file_per_camera p50=%v p95=%v",
		h50, h95, r50, r95, e50, e95, v50, v95, f50, f95)
}

// dbSlots is the max_connections of the test's PostgreSQL for
// TestOutOfDBConnections: few, for the test to take them all.
const dbSlots = 20

// dbOutage is how long the test holds every connection at least: longer
// than the node's camera lease (nodeLease), which it cannot renew then.
const dbOutage = 3 * nodeLease

// TestOutOfDBConnections runs gridwatch on a PostgreSQL with few
// connections (max_connections 20), whose every slot another client (the
// test) takes while gridwatch's sessions end, so that its pool cannot
// connect again. Meanwhile: reports answer 503 with Retry-After, each
// within a few seconds (the refusal is immediate; no request waits for a
// connection that will not come); /readyz says not ready — the node
// cannot serve what needs the database, and a load balancer should send
// that elsewhere; and a live MSE viewer of a recording camera keeps
// playing, past the camera's lease. Once the test lets its connections
// go, with no help: /readyz is ready again, reports succeed and are
// announced on an event stream opened before the fault (its LISTEN
// connection came back), and the camera's new files are indexed.
func TestOutOfDBConnections(t *testing.T) {
	nc := newNodeCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The test's own session is named as such: it is not the node's.
	node := nc.dsn
	nc.dsn = node + " " + testApp
	defer func() { nc.dsn = node }()
	nc.query(fmt.Sprintf("ALTER SYSTEM SET max_connections = %d", dbSlots))
	nc.db.Close(ctx)
	nc.db = nil
	if err := nc.pg.Stop(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	if err := nc.pg.StartAgain(ctx); err != nil {
		t.Fatal(err)
	}
	if got := one[string](nc, "SHOW max_connections"); got != strconv.Itoa(dbSlots) {
		t.Fatalf("max_connections %s, want %d", got, dbSlots)
	}

	sim := runSim(t, 1)
	nc.dsn = node // the node's own, as DATABASE_URL
	n := nc.spawn("a")
	nc.dsn = node + " " + testApp
	nc.waitUp(n)
	cam := createCameras(t, n, sim, 1)[0]
	viewer := watchMSE(t, ctx, n, cam)
	defer viewer.close()
	if !viewer.waitSegments(3, time.Time{}, time.Minute) {
		t.Fatalf("the live viewer: %d segments, %v", viewer.after(time.Time{}), viewer.err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: time.Minute}
	defer client.CloseIdleConnections()
	ready := func() bool {
		res, err := client.Get(n.url + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}
	streamCtx, closeStream := context.WithCancel(ctx)
	defer closeStream()
	events := openEvents(t, streamCtx, &http.Client{Transport: &http.Transport{}}, n.url)
	filesSince := func(since time.Time) int64 {
		return one[int64](nc, `SELECT count(*) FROM recordings WHERE camera_id = $1 AND lower(span) >= $2`, cam, since)
	}

	// takeAll connects as another client until every slot is the test's
	// (PostgreSQL refuses with 53300: too many connections), ending
	// gridwatch's sessions as it goes. An ended session's slot frees when
	// its backend exits: the test counts its own sessions, not only the
	// others.
	var held []*pgx.Conn
	release := func() {
		for _, c := range held {
			c.Close(context.Background())
		}
		held = nil
	}
	defer release()
	takeAll := func() {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			c, err := pgx.Connect(ctx, node+" "+testApp)
			var pe *pgconn.PgError
			switch {
			case err == nil:
				held = append(held, c)
				continue
			case !errors.As(err, &pe) || pe.Code != "53300":
				t.Fatalf("connect as another client: %v", err)
			case len(held) == 0:
				t.Fatal("every slot taken before the test took one")
			}
			var ours, others int
			if err := held[0].QueryRow(ctx, `SELECT count(*) FILTER (WHERE application_name = $1), count(*) FILTER (WHERE application_name <> $1)
				FROM pg_stat_activity WHERE backend_type = 'client backend'`,
				strings.TrimPrefix(testApp, "application_name=")).Scan(&ours, &others); err != nil {
				t.Fatal(err)
			}
			if ours >= dbSlots {
				return
			}
			if others > 0 {
				if _, err := terminateNode(ctx, held[0]); err != nil {
					t.Fatal(err)
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("after a minute, %d of %d slots are the test's, %d another's", ours, dbSlots, others)
			}
		}
	}

	const cycles = 3
	var reports tally
	var latencies []time.Duration
	type recovery struct{ ready, report, event, file time.Duration }
	var recs []recovery
	var notReady, readyDuring int
	for c := range cycles {
		if st, _, _, err := report(ctx, client, n.url, fmt.Sprintf("conns-before-%d", c)); err != nil || st != http.StatusCreated {
			t.Fatalf("cycle %d: a report before the fault: %d %v", c, st, err)
		}
		takeAll()
		full := time.Now()
		// Reports, refused at once, while the live viewer plays on past
		// the lease the node cannot renew: video needs no connection.
		for i := 0; i < 5 || viewer.after(full.Add(dbOutage)) == 0; i++ {
			began := time.Now()
			st, ra, _, err := report(ctx, client, n.url, fmt.Sprintf("conns-%d-%d", c, i))
			took := time.Since(began)
			latencies = append(latencies, took)
			reports.note("report", st, ra, err, false)
			if took > 10*time.Second {
				t.Errorf("cycle %d: a report out of connections took %v to answer", c, took)
			}
			if ready() {
				readyDuring++
				t.Errorf("cycle %d: /readyz ready while the pool cannot connect", c)
			} else {
				notReady++
			}
			alive(t, n, fmt.Sprintf("cycle %d", c))
			select {
			case <-viewer.ended:
				t.Fatalf("cycle %d: the live viewer stopped out of connections: %v", c, viewer.err)
			default:
			}
			if time.Since(full) > time.Minute {
				t.Fatalf("cycle %d: the live viewer got nothing %v after the fault began (%d segments since)", c, dbOutage, viewer.after(full))
			}
			time.Sleep(retryPause) // a client's pause before it tries again
		}
		released := time.Now()
		release()
		var rec recovery
		waitFor(t, time.Minute, "/readyz ready after the connections were released", func() bool {
			ok := ready()
			rec.ready = time.Since(released)
			return ok
		})
		var id int64
		for i := 0; id == 0; i++ {
			st, ra, got, err := report(ctx, client, n.url, fmt.Sprintf("conns-after-%d-%d", c, i))
			if err == nil && st == http.StatusCreated {
				id, rec.report = got, time.Since(released)
				break
			}
			reports.note("report after the release", st, ra, err, false)
			if time.Since(released) > time.Minute {
				t.Fatalf("cycle %d: no report acknowledged in a minute after the release", c)
			}
			time.Sleep(retryPause) // a client's pause before it tries again
		}
		for {
			ev := nextEvent(t, events, "incident.created")
			if got, _ := ev["id"].(float64); int64(got) == id {
				break
			}
		}
		rec.event = time.Since(released)
		waitEvery(t, time.Minute, 100*time.Millisecond, "a new file of the camera indexed", func() bool { return filesSince(released) >= 1 })
		rec.file = time.Since(released)
		recs = append(recs, rec)
		t.Logf("cycle %d: out of connections for %v; after the release: ready %v, report %v, announced %v, new file indexed %v",
			c, released.Sub(full).Round(time.Millisecond), rec.ready.Round(time.Millisecond), rec.report.Round(time.Millisecond),
			rec.event.Round(time.Millisecond), rec.file.Round(time.Millisecond))
	}
	if !viewer.waitSegments(3, time.Now(), 30*time.Second) {
		t.Fatalf("the live viewer stopped: %v", viewer.err)
	}
	alive(t, n, "the end")
	noPanic(t, n)
	for _, w := range reports.wrong {
		t.Errorf("not a 503 with Retry-After: %s", w)
	}
	if reports.unanswered > 0 {
		t.Errorf("%d reports had no answer", reports.unanswered)
	}
	pick := func(f func(recovery) time.Duration) string {
		var ds []time.Duration
		for _, r := range recs {
			ds = append(ds, f(r))
		}
		return fmt.Sprintf("p50=%v p95=%v", percentile(ds, 0.5).Round(time.Millisecond), percentile(ds, 0.95).Round(time.Millisecond))
	}
	t.Logf("RELIABILITY: fault=out-of-db-connections cycles=%d max_connections=%d reports: %v; refusal latency p50=%v p95=%v max=%v; readyz not ready %d/%d; live viewer played through every cycle; crashes: 0",
		cycles, dbSlots, &reports, percentile(latencies, 0.5).Round(time.Millisecond), percentile(latencies, 0.95).Round(time.Millisecond),
		percentile(latencies, 1).Round(time.Millisecond), notReady, notReady+readyDuring)
	t.Logf("RELIABILITY: fault=out-of-db-connections recovery after the release: ready %s report %s event %s new_file %s",
		pick(func(r recovery) time.Duration { return r.ready }), pick(func(r recovery) time.Duration { return r.report }),
		pick(func(r recovery) time.Duration { return r.event }), pick(func(r recovery) time.Duration { return r.file }))
}
