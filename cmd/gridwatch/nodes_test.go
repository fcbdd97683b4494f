package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"mime/multipart"
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

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"

	"gridwatch/camera/camsim"
	"gridwatch/geo"
	"gridwatch/internal/objstore"
	"gridwatch/internal/objstore/objtest"
	"gridwatch/internal/pgcluster"
	"gridwatch/internal/testtool"
)

// The several-node tests run real processes on loopback: one PostgreSQL,
// the simulated cameras, and gridwatch nodes that are this test binary run
// as main (GRIDWATCH_BE_MAIN), each with its own data directory.

// nodeLease is the nodes' camera lease: short, so that a dead node's cameras
// move within a test; the bounds below are stated against it.
const nodeLease = 2 * time.Second

type gwNode struct {
	id   string
	cmd  *exec.Cmd
	url  string // its HTTP base, read from its row in nodes
	rtsp string
	logs *lockedBuffer
	done chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// nodeCluster is the database and the nodes of one test.
type nodeCluster struct {
	t     testing.TB
	pg    *pgcluster.Cluster
	dsn   string
	db    *pgx.Conn
	nodes map[string]*gwNode
	// dirs are the nodes' data directories, kept across restarts; store
	// the object store they share (zero: footage stays on their disks).
	dirs  map[string]string
	store objstore.Config
	// lease is the nodes' --lease (default nodeLease); extra more flags.
	lease time.Duration
	extra string
}

func newNodeCluster(t testing.TB) *nodeCluster { return newNodeClusterWith(t, true) }

// newNodeClusterWith is newNodeCluster on a database that is fast (no
// fsync, commits acknowledged before their WAL is written) or durable: a
// database stopped as in a crash loses no acknowledged commit only when
// durable.
func newNodeClusterWith(t testing.TB, fast bool) *nodeCluster {
	t.Helper()
	dir := dataDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(dir, "pg"), Fast: fast})
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	t.Cleanup(func() { pg.Close() })
	if err := pg.EnsureDatabase(ctx, "gridwatch"); err != nil {
		t.Fatal(err)
	}
	nc := &nodeCluster{t: t, pg: pg, dsn: pg.DSN("gridwatch"), nodes: map[string]*gwNode{}, dirs: map[string]string{}}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range nc.nodes {
				select {
				case <-n.done:
				default:
					t.Logf("node %s still running at the failure", n.id)
				}
			}
		}
		for _, n := range nc.nodes {
			n.kill()
		}
		if t.Failed() {
			for id, n := range nc.nodes {
				t.Logf("--- node %s (%v) log (tail) ---\n%s", id, n.cmd.ProcessState, tail(n.logs.String(), 60))
			}
		}
	})
	return nc
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// start starts node id; it is up once its row says how to reach it.
func (nc *nodeCluster) start(id string) *gwNode {
	nc.t.Helper()
	n := nc.spawn(id)
	nc.waitUp(n)
	return n
}

// spawn starts node id's process.
func (nc *nodeCluster) spawn(id string) *gwNode {
	nc.t.Helper()
	dir := nc.dirs[id]
	if dir == "" {
		dir = dataDir(nc.t)
		nc.dirs[id] = dir
	}
	args := "serve --addr 127.0.0.1:0 --rtsp-addr 127.0.0.1:0 --data-dir " + dir + " --node-id " + id +
		" --admin-token " + testAdminToken + " --lease " + cmp.Or(nc.lease, nodeLease).String() + " --log-format text --recording-fragment 1s --recording-file 4s" + nc.extra
	env := []string{"GRIDWATCH_BE_MAIN=1", "DATABASE_URL=" + nc.dsn}
	if st := nc.store; st.URL != "" {
		args += " --footage-store " + st.URL + " --s3-endpoint " + st.Endpoint + " --s3-region " + st.Region + " --s3-path-style true"
		env = append(env, "AWS_ACCESS_KEY_ID="+st.AccessKey, "AWS_SECRET_ACCESS_KEY="+st.SecretKey)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), env...), "GRIDWATCH_ARGS="+args)
	n := &gwNode{id: id, cmd: cmd, logs: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = n.logs, n.logs
	if err := cmd.Start(); err != nil {
		nc.t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(n.done) }()
	nc.nodes[id] = n
	return n
}

func (n *gwNode) kill() {
	if n.cmd.Process != nil {
		_ = n.cmd.Process.Signal(syscall.SIGCONT)
		_ = n.cmd.Process.Kill()
		<-n.done
	}
}

// waitUp waits for n's row to be alive and reads its addresses.
func (nc *nodeCluster) waitUp(n *gwNode) {
	nc.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-n.done:
			nc.t.Fatalf("node %s exited: %s", n.id, tail(n.logs.String(), 30))
		default:
		}
		// Until the first node has made the tables, there is no row to read.
		row, _ := nc.tryQuery(`SELECT url, rtsp_url FROM nodes WHERE id = $1 AND last_beat + lease_ms * interval '1 millisecond' > now() AND NOT draining`, n.id)
		if len(row) == 1 {
			n.url, n.rtsp = row[0][0].(string), row[0][1].(string)
			var st int
			if st = getJSON(nc.t, n.url+"/readyz", nil); st == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			nc.t.Fatalf("node %s not up after 90 s: %s", n.id, tail(n.logs.String(), 30))
		}
		time.Sleep(50 * time.Millisecond) // polling its row as an operator would
	}
}

// query runs sql on a connection of the test's own and returns the rows.
func (nc *nodeCluster) query(sql string, args ...any) [][]any {
	nc.t.Helper()
	out, err := nc.tryQuery(sql, args...)
	if err != nil {
		nc.t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func (nc *nodeCluster) tryQuery(sql string, args ...any) ([][]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if nc.db == nil {
		c, err := pgx.Connect(ctx, nc.dsn)
		if err != nil {
			return nil, err
		}
		nc.db = c
		nc.t.Cleanup(func() { c.Close(context.Background()) })
	}
	rows, err := nc.db.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
}

// ownedBy lists the cameras node id owns now.
func (nc *nodeCluster) ownedBy(id string) []int64 {
	var out []int64
	for c, o := range nc.owners() {
		if o == id {
			out = append(out, c)
		}
	}
	return out
}

// owners is camera → owner node (valid leases).
func (nc *nodeCluster) owners() map[int64]string {
	out := map[int64]string{}
	for _, r := range nc.query(`SELECT camera_id, node_id FROM camera_owners`) {
		out[r[0].(int64)] = r[1].(string)
	}
	return out
}

type nodeCamera struct {
	ID      int64   `json:"id"`
	Code    string  `json:"code"`
	Node    *string `json:"node"`
	Status  string  `json:"status"`
	Streams map[string]struct {
		Status string  `json:"status"`
		FPS    float64 `json:"fps"`
	} `json:"streams"`
}

// pulled reports whether camera id is pulled (its main stream online) on
// the node the database names its owner, and which node that is.
func (nc *nodeCluster) pulled(id int64) (string, bool) {
	owner := nc.owners()[id]
	n := nc.nodes[owner]
	if n == nil {
		return owner, false
	}
	select {
	case <-n.done:
		return owner, false // its lease has not lapsed yet
	default:
	}
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v1/cameras/%d", n.url, id), nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	res, err := quickClient.Do(req)
	if err != nil {
		return owner, false // stopped (SIGSTOP) or stopping
	}
	defer res.Body.Close()
	var cam nodeCamera
	if res.StatusCode != 200 || json.NewDecoder(res.Body).Decode(&cam) != nil {
		return owner, false
	}
	return owner, cam.Node != nil && *cam.Node == owner && cam.Streams["main"].Status == "online"
}

// waitIdle waits until node n runs no stream of camera (its viewers gone
// and --video-idle passed).
func (nc *nodeCluster) waitIdle(n *gwNode, camera int64, within time.Duration) {
	nc.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var cam nodeCamera
		if getJSON(nc.t, fmt.Sprintf("%s/api/v1/cameras/%d", n.url, camera), &cam) == 200 && len(cam.Streams) == 0 {
			return
		}
		if time.Now().After(deadline) {
			nc.t.Fatalf("%s still runs camera %d's streams after %v", n.id, camera, within)
		}
		time.Sleep(50 * time.Millisecond) // polled as a dashboard would
	}
}

// quickClient gives up on a node that does not answer (SIGSTOP).
var quickClient = &http.Client{Timeout: 2 * time.Second}

// waitPulled waits until every camera in ids is pulled by a node other
// than those in not, and returns how long that took.
func (nc *nodeCluster) waitPulled(ids []int64, within time.Duration, not ...string) time.Duration {
	nc.t.Helper()
	start := time.Now()
	for {
		var missing []string
		for _, id := range ids {
			owner, ok := nc.pulled(id)
			if !ok || slices.Contains(not, owner) {
				missing = append(missing, fmt.Sprintf("%d (owner %q)", id, owner))
			}
		}
		if len(missing) == 0 {
			return time.Since(start)
		}
		if time.Since(start) > within {
			nc.t.Fatalf("after %v, not pulled again: %v", within, missing)
		}
		time.Sleep(50 * time.Millisecond) // polled as a dashboard would
	}
}

// mseViewer watches a camera's live MSE stream on a node and notes when
// each media segment arrives; ended is closed if the stream ends.
type mseViewer struct {
	mu     sync.Mutex
	frames []time.Time
	ended  chan struct{}
	err    error
	stop   context.CancelFunc
}

func watchMSE(t testing.TB, ctx context.Context, n *gwNode, camera int64) *mseViewer {
	t.Helper()
	ws, _, err := websocket.Dial(ctx, fmt.Sprintf("ws%s/api/v1/cameras/%d/live?stream=main&token=%s", strings.TrimPrefix(n.url, "http"), camera, testAdminToken), nil)
	if err != nil {
		t.Fatalf("live on %s: %v", n.id, err)
	}
	ws.SetReadLimit(16 << 20)
	v := &mseViewer{ended: make(chan struct{})}
	ctx, v.stop = context.WithCancel(ctx)
	go func() {
		defer close(v.ended)
		defer ws.CloseNow()
		for {
			typ, _, err := ws.Read(ctx)
			if err != nil {
				v.mu.Lock()
				v.err = err
				v.mu.Unlock()
				return
			}
			if typ == websocket.MessageBinary {
				v.mu.Lock()
				v.frames = append(v.frames, time.Now())
				v.mu.Unlock()
			}
		}
	}()
	return v
}

// firstAt is when the n-th segment arrived (zero: not yet).
func (v *mseViewer) firstAt(n int) time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.frames) < n {
		return time.Time{}
	}
	return v.frames[n-1]
}

// close ends the viewer and waits for its reader.
func (v *mseViewer) close() {
	v.stop()
	<-v.ended
}

// after is how many segments arrived after t.
func (v *mseViewer) after(t time.Time) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, f := range v.frames {
		if f.After(t) {
			n++
		}
	}
	return n
}

// waitSegments waits for n segments after since (false: the stream ended
// or within passed).
func (v *mseViewer) waitSegments(n int, since time.Time, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if v.after(since) >= n {
			return true
		}
		select {
		case <-v.ended:
			return v.after(since) >= n
		case <-time.After(50 * time.Millisecond):
		}
	}
	return false
}

// createCameras registers n recording cameras of sim through node.
func createCameras(t testing.TB, node *gwNode, sim *camsim.Sim, n int) []int64 {
	t.Helper()
	var ids []int64
	for i := 1; i <= n; i++ {
		body, _ := json.Marshal(map[string]any{
			"code": fmt.Sprintf("NODE-CAM-%02d", i), "name": fmt.Sprintf("Camera %d", i),
			"location": map[string]any{"type": "Point", "coordinates": []float64{118.78 + float64(i)*0.001, 32.04}},
			"heading":  90, "fov": 60, "range": 50, "main_url": sim.URL(i, "main"), "record": true,
		})
		var cam nodeCamera
		if st := post(t, http.DefaultClient, node.url+"/api/v1/cameras", body, &cam); st != 201 {
			t.Fatalf("create camera %d: %d", i, st)
		}
		ids = append(ids, cam.ID)
	}
	return ids
}

// overlaps counts the pairs of one camera's index rows whose times overlap
// by more than the milliseconds two files of one recorder may share (a
// file's end is its start plus the camera's clock; the next one's start is
// this node's clock).
func (nc *nodeCluster) overlaps() int64 {
	return nc.query(`SELECT count(*) FROM recordings a JOIN recordings b ON a.camera_id = b.camera_id AND a.id < b.id AND a.span && b.span
		AND upper(a.span * b.span) - lower(a.span * b.span) > interval '250 milliseconds'`)[0][0].(int64)
}

func TestSeveralNodesEndToEnd(t *testing.T) {
	nc := newNodeCluster(t)
	nc.store = objtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	sim, err := camsim.New(camsim.Config{N: 6, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = sim.Run(ctx) }()

	// Three nodes start at once on an empty database: the migrations are
	// made once (the others wait on its lock) and all three come up.
	ids := []string{"node-a", "node-b", "node-c"}
	for _, id := range ids {
		nc.spawn(id)
	}
	for _, id := range ids {
		nc.waitUp(nc.nodes[id])
	}
	var list struct {
		Nodes []struct {
			ID      string `json:"id"`
			Alive   bool   `json:"alive"`
			Cameras int    `json:"cameras"`
		} `json:"nodes"`
		Self string `json:"self"`
	}
	getJSON(t, nc.nodes["node-b"].url+"/api/v1/nodes", &list)
	if len(list.Nodes) != 3 || list.Self != "node-b" || !list.Nodes[0].Alive || !list.Nodes[2].Alive {
		t.Fatalf("GET /api/v1/nodes: %+v", list)
	}

	// Six recording cameras spread over the three nodes: each pulled by
	// exactly one, as the rendezvous hash says.
	cams := createCameras(t, nc.nodes["node-a"], sim, 6)
	nc.waitPulled(cams, 60*time.Second)
	owners := nc.owners()
	per := map[string][]int64{}
	for _, c := range cams {
		per[owners[c]] = append(per[owners[c]], c)
	}
	t.Logf("cameras per node: %v", per)
	if len(per) < 2 {
		t.Fatalf("six cameras all on one node: %v", per)
	}

	// A viewer on each node watches a camera another node owns: relayed.
	viewers := map[string]*mseViewer{}
	watched := map[string]int64{}
	for _, id := range ids {
		for _, c := range cams {
			if owners[c] != id {
				watched[id] = c
				viewers[id] = watchMSE(t, ctx, nc.nodes[id], c)
				break
			}
		}
	}
	for id, v := range viewers {
		if !v.waitSegments(3, time.Time{}, 30*time.Second) {
			t.Fatalf("viewer on %s of camera %d (owner %s): %d segments, %v", id, watched[id], owners[watched[id]], v.after(time.Time{}), v.err)
		}
	}
	// Every camera has footage in the object store before a node dies.
	for deadline := time.Now().Add(60 * time.Second); ; {
		n := nc.query(`SELECT count(DISTINCT camera_id) FROM recordings WHERE object_key IS NOT NULL`)[0][0].(int64)
		if n == int64(len(cams)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s, %d of %d cameras have footage in the object store", n, len(cams))
		}
		time.Sleep(100 * time.Millisecond) // a file closes every 4 s, then uploads
	}
	// kill -9 the node that owns the camera node-a's viewer watches, while
	// it writes a file (indexed, not yet uploaded).
	victim := owners[watched["node-a"]]
	if victim == "node-a" {
		t.Fatal("node-a watches its own camera")
	}
	lost := per[victim]
	for deadline := time.Now().Add(30 * time.Second); ; {
		n := nc.query(`SELECT count(*) FROM recordings WHERE node_id = $1 AND object_key IS NULL AND open AND bytes > 0`, victim)[0][0].(int64)
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no growing file", victim)
		}
		time.Sleep(20 * time.Millisecond) // the next file is indexed on its first fragment
	}
	var survivors []string
	for _, id := range ids {
		if id != victim {
			survivors = append(survivors, id)
		}
	}
	killed := time.Now()
	if err := nc.nodes[victim].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-nc.nodes[victim].done
	took := nc.waitPulled(lost, nodeLease+5*time.Second+10*time.Second, victim)
	t.Logf("kill -9 %s: its %d cameras pulled again elsewhere after %v (lease %v)", victim, len(lost), took, nodeLease)
	if took > nodeLease+5*time.Second {
		t.Errorf("failover took %v, over lease + 5 s", took)
	}
	// The viewers on the surviving nodes keep (or regain) their pictures
	// without reconnecting.
	for _, id := range survivors {
		v := viewers[id]
		if !v.waitSegments(3, killed.Add(took), 20*time.Second) {
			t.Errorf("viewer on %s (camera %d): %d segments after the failover, ended: %v", id, watched[id], v.after(killed.Add(took)), v.err)
		}
	}
	// The footage of the dead node's cameras: the time nobody recorded is
	// listed as a gap no longer than the failover, and no two index rows
	// of one camera overlap.
	for _, c := range lost {
		deadline := time.Now().Add(20 * time.Second)
		for {
			gaps := nc.query(`SELECT extract(epoch FROM upper(span) - lower(span))::float8 FROM recording_gaps WHERE camera_id = $1 AND upper(span) > $2 ORDER BY lower(span)`, c, killed)
			if len(gaps) > 0 {
				if d := gaps[0][0].(float64); d > (nodeLease + 5*time.Second).Seconds() {
					t.Errorf("camera %d: a gap of %.1f s across the failover, over lease + 5 s", c, d)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("camera %d: no gap recorded for the failover", c)
			}
			time.Sleep(100 * time.Millisecond) // the new owner's first file starts on a keyframe
		}
	}
	if n := nc.overlaps(); n != 0 {
		t.Errorf("%d pairs of overlapping index rows", n)
	}
	// The minutes the dead node had not uploaded are listed as on it,
	// unreachable — not silently missing; the rest is in the object store.
	var listing struct {
		Recordings []struct {
			ID    int64     `json:"id"`
			From  time.Time `json:"from"`
			To    time.Time `json:"to"`
			Where string    `json:"where"`
		} `json:"recordings"`
	}
	cam := lost[0]
	getJSON(t, fmt.Sprintf("%s/api/v1/cameras/%d/recordings?from=%s&to=%s", nc.nodes[survivors[0]].url, cam,
		time.Now().Add(-10*time.Minute).UTC().Format(time.RFC3339), time.Now().Add(time.Minute).UTC().Format(time.RFC3339)), &listing)
	unreachable, stored := 0, 0
	var uploaded []time.Time
	for _, r := range listing.Recordings {
		switch r.Where {
		case "node " + victim + ", unreachable":
			unreachable++
		case "object store":
			stored++
			if r.To.Before(killed) && r.To.Sub(r.From) > 2*time.Second {
				uploaded = []time.Time{r.From, r.To}
			}
		}
	}
	if unreachable == 0 || stored == 0 || uploaded == nil {
		t.Fatalf("camera %d's footage on %s: %d rows listed on the dead %s, %d in the object store: %+v", cam, survivors[0], unreachable, victim, stored, listing.Recordings)
	}
	// An export, requested on one surviving node, of footage the dead node
	// recorded: made from the object store, served by another node, it
	// plays and its SHA-256 is the one stored.
	checkExport(t, ctx, nc.nodes[survivors[1]], nc.nodes[survivors[0]], cam, uploaded[0], uploaded[0].Add(2*time.Second))
	// A photo attached to an incident through one node is served by another
	// (the object store holds it).
	checkPhoto(t, nc.nodes[survivors[0]], nc.nodes[survivors[1]])
	// A file still growing on a live node plays from any other node: the
	// node asked fetches it from the one that writes it.
	var growing [][]any
	for deadline := time.Now().Add(20 * time.Second); len(growing) == 0; {
		growing = nc.query(`SELECT id, node_id, bytes FROM recordings WHERE open AND object_key IS NULL AND node_id = $1 AND bytes > 0 LIMIT 1`, survivors[0])
		if time.Now().After(deadline) {
			t.Fatalf("%s writes no file", survivors[0])
		}
		time.Sleep(20 * time.Millisecond) // a new file is indexed on its first fragment
	}
	st, b := send(t, http.DefaultClient, "GET", fmt.Sprintf("%s/api/v1/recordings/%d/file.mp4", nc.nodes[survivors[1]].url, growing[0][0].(int64)), nil)
	if st != 200 || int64(len(b)) < growing[0][2].(int64) || !bytes.Contains(b[:min(len(b), 16)], []byte("ftyp")) {
		t.Fatalf("a growing file of %s through %s: %d, %d bytes (indexed %d)", survivors[0], survivors[1], st, len(b), growing[0][2])
	}

	// The dead node comes back (same id, same disk): it closes the file it
	// was writing and uploads it; it takes its share of cameras again.
	nc.start(victim)
	for deadline := time.Now().Add(60 * time.Second); ; {
		n := nc.query(`SELECT count(*) FROM recordings WHERE node_id = $1 AND object_key IS NULL AND NOT open AND status = 'ok' AND lower(span) < $2`, victim, killed)[0][0].(int64)
		left := nc.query(`SELECT count(*) FROM recordings WHERE node_id = $1 AND open AND lower(span) < $2`, victim, killed)[0][0].(int64)
		if n == 0 && left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s back: %d of its files from before its death not uploaded, %d still open", victim, n, left)
		}
		time.Sleep(100 * time.Millisecond) // it uploads at start
	}
	if n := nc.overlaps(); n != 0 {
		t.Errorf("after %s came back: %d pairs of overlapping index rows", victim, n)
	}
	nc.waitPulled(cams, 30*time.Second)

	// SIGSTOP a node past its lease: its cameras move; woken, it writes
	// nothing for them and rejoins.
	var paused string
	var pausedCams []int64
	for _, id := range ids {
		if mine := nc.ownedBy(id); len(mine) > 0 {
			paused, pausedCams = id, mine
			break
		}
	}
	p := nc.nodes[paused]
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	moved := nc.waitPulled(pausedCams, nodeLease+15*time.Second, paused)
	t.Logf("SIGSTOP %s: its cameras pulled elsewhere after %v", paused, moved)
	// What the paused node had indexed when it lost the cameras.
	before := map[int64]string{}
	for _, c := range pausedCams {
		before[c] = fmt.Sprint(nc.query(`SELECT path, upper(span) FROM recordings WHERE camera_id = $1 AND node_id = $2 ORDER BY path`, c, paused))
	}
	woken := time.Now()
	mark := len(p.logs.String())
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// Woken, it finds its leases gone and beats again: either its
	// recorders' next writes are refused, and they stop, or its beat
	// learns of the loss first, and it stops them. Which comes first is a
	// race between two timers that both fired while it slept.
	stopped := func() bool {
		l := p.logs.String()[mark:]
		return strings.Contains(l, "recording stopped: this node no longer owns the camera") || strings.Contains(l, "cluster: lease lost")
	}
	for deadline := time.Now().Add(30 * time.Second); !stopped(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not stop recording the cameras it lost", paused)
		}
		time.Sleep(50 * time.Millisecond) // reading its log
	}
	nc.waitUp(p)
	for _, c := range pausedCams {
		// Rows it may write later belong to a lease it takes again (new
		// epoch, after it woke); the rows it had are as they were.
		after := fmt.Sprint(nc.query(`SELECT path, upper(span) FROM recordings WHERE camera_id = $1 AND node_id = $2 AND lower(span) < $3 ORDER BY path`, c, paused, woken))
		if after != before[c] {
			t.Errorf("camera %d: the paused %s's index rows changed after it lost the camera:\n before %s\n after  %s", c, paused, before[c], after)
		}
	}
	if n := nc.overlaps(); n != 0 {
		t.Errorf("after SIGCONT: %d pairs of overlapping index rows", n)
	}
	nc.waitPulled(cams, 30*time.Second)

	// SIGTERM drains: the node hands its cameras over and exits; they are
	// owned elsewhere in under 2 s.
	var drained string
	var drainCams []int64
	for _, id := range ids {
		if mine := nc.ownedBy(id); id != paused && len(mine) > 0 {
			drained, drainCams = id, mine
			break
		}
	}
	if drained == "" {
		t.Fatalf("no node but %s owns a camera: %v", paused, nc.owners())
	}
	term := time.Now()
	if err := nc.nodes[drained].cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var handedIn time.Duration
	for {
		own := nc.owners()
		done := true
		for _, c := range drainCams {
			if o := own[c]; o == "" || o == drained {
				done = false
			}
		}
		if done {
			handedIn = time.Since(term)
			break
		}
		if time.Since(term) > 30*time.Second {
			t.Fatalf("drain: cameras %v still not owned elsewhere after 30 s", drainCams)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("SIGTERM %s: its %d cameras owned elsewhere after %v", drained, len(drainCams), handedIn)
	if handedIn > 2*time.Second {
		t.Errorf("drain took %v to hand the cameras over, want < 2 s", handedIn)
	}
	nc.waitPulled(drainCams, 20*time.Second, drained)
	select {
	case <-nc.nodes[drained].done:
	case <-time.After(60 * time.Second):
		t.Fatal("the drained node did not exit")
	}
	if code := nc.nodes[drained].cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("drained node exit code %d", code)
	}
	// The drained cameras lost no more than a GOP (2 s in the simulator)
	// and the reconnect: the drained node closed its files as it let go.
	for _, c := range drainCams {
		var gap []any
		for deadline := time.Now().Add(20 * time.Second); ; {
			rows := nc.query(`SELECT extract(epoch FROM upper(span) - lower(span))::float8 FROM recording_gaps WHERE camera_id = $1 AND upper(span) > $2 ORDER BY lower(span)`, c, term)
			if len(rows) > 0 {
				gap = rows[0]
				break
			}
			if time.Now().After(deadline) {
				break // no gap at all: the new owner's first file abuts the last
			}
			time.Sleep(100 * time.Millisecond) // the new owner's first file starts on a keyframe
		}
		if gap != nil && gap[0].(float64) > 4 {
			t.Errorf("camera %d: %.1f s not recorded across the drain, over a GOP and a reconnect", c, gap[0].(float64))
		}
	}
	if n := nc.overlaps(); n != 0 {
		t.Errorf("after the drain: %d pairs of overlapping index rows", n)
	}
}

// checkExport requests an export of camera's [from, to) on node at, waits
// for it, downloads it from node from, checks its SHA-256 against the one
// stored and plays it with ffprobe.
func checkExport(t *testing.T, ctx context.Context, at, from *gwNode, camera int64, start, end time.Time) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"camera_id": camera, "from": start, "to": end})
	var e struct {
		ID     int64   `json:"id"`
		Status string  `json:"status"`
		SHA256 *string `json:"sha256"`
		Error  *string `json:"error"`
	}
	if st := post(t, http.DefaultClient, at.url+"/api/v1/exports", body, &e); st != 202 && st != 200 && st != 201 {
		t.Fatalf("export on %s: %d", at.id, st)
	}
	for deadline := time.Now().Add(60 * time.Second); e.Status != "done"; {
		if e.Status == "failed" || time.Now().After(deadline) {
			t.Fatalf("export %d on %s: %s (%v)", e.ID, at.id, e.Status, e.Error)
		}
		time.Sleep(100 * time.Millisecond) // polled as the dashboard does
		getJSON(t, fmt.Sprintf("%s/api/v1/exports/%d", at.url, e.ID), &e)
	}
	st, b := send(t, http.DefaultClient, "GET", fmt.Sprintf("%s/api/v1/exports/%d/file", from.url, e.ID), nil)
	sum := sha256.Sum256(b)
	if st != 200 || e.SHA256 == nil || hex.EncodeToString(sum[:]) != *e.SHA256 {
		t.Fatalf("export %d from %s: %d, %d bytes, sha256 %x, stored %v", e.ID, from.id, st, len(b), sum, e.SHA256)
	}
	path := filepath.Join(t.TempDir(), "export.mp4")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	probe := testtool.FFprobe(t, "-show_entries", "format=duration:stream=codec_name,width", path)
	if len(probe.Streams) == 0 || probe.Streams[0].CodecName != "h264" || probe.Seconds() < 1 {
		t.Fatalf("export %d: ffprobe %+v", e.ID, probe)
	}
}

// TestSeveralNodesIngestAndEvents: a bulk ingest through all three nodes
// while one is killed: the batches the killed node did not acknowledge are
// sent again to another node (the same external ids), every acknowledged
// incident is stored exactly once, and the event streams of the surviving
// nodes each announce every new incident (LISTEN/NOTIFY between nodes).
func TestSeveralNodesIngestAndEvents(t *testing.T) {
	nc := newNodeCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ids := []string{"ingest-a", "ingest-b", "ingest-c"}
	for _, id := range ids {
		nc.spawn(id)
	}
	for _, id := range ids {
		nc.waitUp(nc.nodes[id])
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	if code := post(t, client, nc.nodes["ingest-a"].url+"/api/v1/grids/import", geo.DemoCity(), nil); code != http.StatusCreated {
		t.Fatalf("import the demo city: %d", code)
	}
	streamCtx, stopStreams := context.WithCancel(ctx)
	defer stopStreams()
	streams := map[string]<-chan sseLine{}
	for _, id := range ids[:2] {
		streams[id] = openEvents(t, streamCtx, client, nc.nodes[id].url)
	}

	// Three writers, one per node, 8 batches of 40 each; the third node is
	// killed while its writer is at it, which then sends its batches to the
	// first node.
	const batches, perBatch = 8, 40
	batch := func(w, b int) []byte {
		var buf bytes.Buffer
		for i := range perBatch {
			fmt.Fprintf(&buf, `{"source":"sensor","external_id":"w%d-b%d-%d","category":"0101","title":"传感器告警","location":{"type":"Point","coordinates":[%.5f,%.5f]}}`+"\n",
				w, b, i, 113.66+float64(i%20)*0.002, 34.77+float64(b)*0.003)
		}
		return buf.Bytes()
	}
	send := func(url string, body []byte) (map[string]int64, error) {
		req, _ := http.NewRequestWithContext(ctx, "POST", url+"/api/v1/incidents/bulk", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		req.Header.Set("Content-Type", "application/x-ndjson")
		res, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer res.Body.Close()
		if res.StatusCode != 200 {
			return nil, fmt.Errorf("status %d", res.StatusCode)
		}
		acked := map[string]int64{}
		dec := json.NewDecoder(res.Body)
		lines := strings.Split(strings.TrimSpace(string(body)), "\n")
		summary := false
		for {
			var r struct {
				Line    int             `json:"line"`
				Status  string          `json:"status"`
				ID      int64           `json:"id"`
				Summary json.RawMessage `json:"summary"`
			}
			if err := dec.Decode(&r); err != nil {
				break
			}
			if r.Summary != nil {
				summary = true
				continue
			}
			if r.Status == "created" || r.Status == "duplicate" {
				var l struct {
					ExternalID string `json:"external_id"`
				}
				_ = json.Unmarshal([]byte(lines[r.Line-1]), &l)
				acked[l.ExternalID] = r.ID
			}
		}
		if !summary {
			return nil, fmt.Errorf("the stream broke before its summary")
		}
		return acked, nil
	}
	var mu sync.Mutex
	acked := map[string]int64{}
	resent := 0
	var wg sync.WaitGroup
	killAfter := make(chan struct{})
	for w, id := range ids {
		wg.Go(func() {
			for b := range batches {
				if w == 2 && b == 3 {
					close(killAfter)
				}
				body := batch(w, b)
				got, err := send(nc.nodes[id].url, body)
				if err != nil {
					// Not acknowledged: the same lines again, to a live node.
					mu.Lock()
					resent++
					mu.Unlock()
					if got, err = send(nc.nodes[ids[0]].url, body); err != nil {
						t.Errorf("writer %d batch %d, sent again to %s: %v", w, b, ids[0], err)
						return
					}
				}
				mu.Lock()
				for k, v := range got {
					if prev, ok := acked[k]; ok && prev != v {
						t.Errorf("%s acknowledged as %d and as %d", k, prev, v)
					}
					acked[k] = v
				}
				mu.Unlock()
			}
		})
	}
	<-killAfter
	nc.nodes["ingest-c"].kill()
	wg.Wait()
	if t.Failed() {
		return
	}
	if len(acked) != 3*batches*perBatch {
		t.Fatalf("%d lines acknowledged, want %d", len(acked), 3*batches*perBatch)
	}
	if resent == 0 {
		t.Fatal("no batch was sent again: the killed node acknowledged them all")
	}
	t.Logf("%d batches sent again after the kill", resent)
	// Stored exactly once each.
	rows := nc.query(`SELECT external_id, count(*), min(id) FROM incidents WHERE source = 'sensor' GROUP BY external_id`)
	if len(rows) != len(acked) {
		t.Errorf("%d external ids stored, %d acknowledged", len(rows), len(acked))
	}
	for _, r := range rows {
		if r[1].(int64) != 1 || acked[r[0].(string)] != r[2].(int64) {
			t.Errorf("%s stored %d times (id %d, acknowledged %d)", r[0], r[1], r[2], acked[r[0].(string)])
		}
	}
	// Each surviving node's stream announced every new incident.
	want := map[int64]bool{}
	for _, id := range acked {
		want[id] = true
	}
	for node, lines := range streams {
		seen := map[int64]bool{}
		for len(seen) < len(want) {
			data := nextEvent(t, lines, "incident.bulk")
			for _, v := range data["ids"].([]any) {
				seen[int64(v.(float64))] = true
			}
		}
		for id := range want {
			if !seen[id] {
				t.Errorf("%s's event stream never announced incident %d", node, id)
			}
		}
	}
}

// checkPhoto reports an incident through node at, attaches a photo to it
// there, and reads the photo back through node from.
func checkPhoto(t *testing.T, at, from *gwNode) {
	t.Helper()
	var in struct {
		ID int64 `json:"id"`
	}
	body := []byte(`{"source":"hotline","category":"0101","title":"暴露垃圾","location":{"type":"Point","coordinates":[118.781,32.04]}}`)
	if st := post(t, http.DefaultClient, at.url+"/api/v1/incidents", body, &in); st != http.StatusCreated {
		t.Fatalf("report through %s: %d", at.id, st)
	}
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	var photo bytes.Buffer
	if err := png.Encode(&photo, img); err != nil {
		t.Fatal(err)
	}
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, _ := mw.CreateFormFile("file", "scene.png")
	fw.Write(photo.Bytes())
	mw.Close()
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/api/v1/incidents/%d/attachments", at.url, in.ID), &form)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var a struct {
		URL string `json:"url"`
	}
	err = json.NewDecoder(res.Body).Decode(&a)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated || err != nil || a.URL == "" {
		t.Fatalf("attach through %s: %d %v %+v", at.id, res.StatusCode, err, a)
	}
	st, got := send(t, http.DefaultClient, "GET", from.url+a.URL, nil)
	if st != 200 || !bytes.Equal(got, photo.Bytes()) {
		t.Fatalf("the photo through %s: %d, %d bytes (want %d)", from.id, st, len(got), photo.Len())
	}
}
