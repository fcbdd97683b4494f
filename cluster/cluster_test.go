package cluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch/cluster"
	"gridwatch/internal/fence"
	"gridwatch/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

// lease is short so that lapses happen within a test; the beats are driven
// by hand (Beat), so nothing depends on the timing of a loop.
const lease = 1500 * time.Millisecond

type testNode struct {
	*cluster.Node
	changes atomic.Int64
}

func newNode(t *testing.T, pool *pgxpool.Pool, id string, max int) *testNode {
	t.Helper()
	tn := &testNode{}
	n, err := cluster.New(context.Background(), pool, cluster.Config{
		ID: id, URL: "http://" + id, RTSPURL: "rtsp://" + id + ":8554", Lease: lease, MaxCameras: max, Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
		OnChange: func() { tn.changes.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	tn.Node = n
	return tn
}

// addCameras inserts n cameras (recording or not) and returns their ids.
func addCameras(t *testing.T, pool *pgxpool.Pool, n int, record bool) []int64 {
	t.Helper()
	var ids []int64
	for i := range n {
		var id int64
		err := pool.QueryRow(context.Background(), `INSERT INTO cameras (code, name, location, heading, fov, range_m, cone, main_url, record)
			VALUES ($1, $1, ST_SetSRID(ST_MakePoint(118.78, 32.04), 4326), 0, 60, 50,
				ST_Buffer(ST_SetSRID(ST_MakePoint(118.78, 32.04), 4326), 0.0005), 'rtsp://camera.invalid/x', $2)
			RETURNING id`, fmt.Sprintf("C%d-%d-%d", time.Now().UnixNano()%1e6, i, n), record).Scan(&id)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func beat(t *testing.T, nodes ...*testNode) {
	t.Helper()
	for _, n := range nodes {
		if err := n.Beat(context.Background()); err != nil {
			t.Fatalf("beat %s: %v", n.ID(), err)
		}
	}
}

// owners is camera → owner node from the database (valid leases only).
func owners(t *testing.T, pool *pgxpool.Pool) map[int64]string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT camera_id, node_id FROM camera_owners`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var c int64
		var n string
		if err := rows.Scan(&c, &n); err != nil {
			t.Fatal(err)
		}
		out[c] = n
	}
	return out
}

// waitLapse waits until the database's clock is past every lease node holds.
func waitLapse(t *testing.T, pool *pgxpool.Pool, node string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var left bool
		if err := pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM camera_owners WHERE node_id = $1)`, node).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if !left {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leases of %s never lapsed", node)
		}
		time.Sleep(20 * time.Millisecond) // polling the database's clock, not waiting for an event
	}
}

func TestClaimSpreadAndFailover(t *testing.T) {
	pool := testdb.New(t)
	cams := addCameras(t, pool, 60, true)
	a, b, c := newNode(t, pool, "node-a", 0), newNode(t, pool, "node-b", 0), newNode(t, pool, "node-c", 0)
	// The first beats make the nodes known to each other; the cameras
	// are claimed as they fall (a node alone at first takes what falls to
	// it among the live ones, then hands over to nodes that joined).
	for range 12 {
		beat(t, a, b, c)
	}
	own := owners(t, pool)
	if len(own) != len(cams) {
		t.Fatalf("%d of %d cameras owned", len(own), len(cams))
	}
	count := map[string]int{}
	for _, cam := range cams {
		count[own[cam]]++
		want := []string{"node-a", "node-b", "node-c"}
		best := want[0]
		for _, n := range want[1:] {
			if cluster.Score(n, cam) > cluster.Score(best, cam) {
				best = n
			}
		}
		if own[cam] != best {
			t.Errorf("camera %d owned by %s; rendezvous says %s", cam, own[cam], best)
		}
	}
	for _, n := range []*testNode{a, b, c} {
		if count[n.ID()] < 10 || count[n.ID()] != n.Owned() {
			t.Errorf("%s owns %d (it says %d): uneven", n.ID(), count[n.ID()], n.Owned())
		}
	}
	// Every camera is seen from node-a as owned by exactly one node.
	for _, cam := range cams {
		a.Want(cam, true)
	}
	beat(t, a)
	for _, cam := range cams {
		o, ok := a.Owner(cam)
		if !ok || o.Node != own[cam] || o.Self != (own[cam] == "node-a") {
			t.Fatalf("node-a sees camera %d owned by %+v (%v); the database says %s", cam, o, ok, own[cam])
		}
		if !o.Self && o.RTSPURL != "rtsp://"+o.Node+":8554" {
			t.Fatalf("owner of %d: RTSP URL %q", cam, o.RTSPURL)
		}
	}

	// node-c stops beating (killed): its leases lapse and the others
	// take its cameras, with a new epoch each.
	lost := []int64{}
	epochs := map[int64]int64{}
	for _, cam := range cams {
		if own[cam] == "node-c" {
			lost = append(lost, cam)
			f, ok := c.Fence(cam)
			if !ok {
				t.Fatalf("node-c has no fence for its camera %d", cam)
			}
			epochs[cam] = f.Epoch
		}
	}
	waitLapse(t, pool, "node-c")
	// The nodes still see node-c alive until its own beat lapses too
	// (the same length): until then its cameras are "stale" orphans.
	for range 3 {
		beat(t, a, b)
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(owners(t, pool)) < len(cams) && time.Now().Before(deadline) {
		beat(t, a, b)
		time.Sleep(50 * time.Millisecond)
	}
	own2 := owners(t, pool)
	for _, cam := range lost {
		if own2[cam] != "node-a" && own2[cam] != "node-b" {
			t.Fatalf("camera %d of the dead node-c: owner %q", cam, own2[cam])
		}
	}
	for _, cam := range cams {
		if own[cam] != "node-c" && own2[cam] != own[cam] {
			t.Errorf("camera %d moved from %s to %s though its node lived", cam, own[cam], own2[cam])
		}
	}
	// node-c wakes up believing it owns its cameras: its writes are refused.
	for _, cam := range lost[:3] {
		_, err := pool.Exec(context.Background(), `SELECT gridwatch_fence($1, $2, $3)`, cam, "node-c", epochs[cam])
		if !fence.IsStale(err) {
			t.Fatalf("stale fence of node-c on camera %d: %v", cam, err)
		}
		f, _ := a.Fence(cam)
		if !f.Valid() {
			f, _ = b.Fence(cam)
		}
		if f.Epoch <= epochs[cam] {
			t.Fatalf("camera %d: new epoch %d not above the old %d", cam, f.Epoch, epochs[cam])
		}
		if _, err := pool.Exec(context.Background(), `SELECT gridwatch_fence($1, $2, $3)`, cam, f.Node, f.Epoch); err != nil {
			t.Fatalf("the new owner's fence on camera %d: %v", cam, err)
		}
	}
	// ...and its next beat drops them (renewal refused) before it claims
	// anything again.
	before := c.changes.Load()
	beat(t, c)
	if c.changes.Load() == before {
		t.Fatal("node-c's beat after its lapse changed nothing")
	}
	for _, cam := range lost {
		if o, _ := c.Owner(cam); o.Self && owners(t, pool)[cam] != "node-c" {
			t.Fatalf("node-c still believes it owns camera %d", cam)
		}
	}
}

func TestDrainHandsOver(t *testing.T) {
	pool := testdb.New(t)
	cams := addCameras(t, pool, 20, true)
	a, b := newNode(t, pool, "drain-a", 0), newNode(t, pool, "drain-b", 0)
	for range 8 {
		beat(t, a, b)
	}
	if a.Owned() == 0 || b.Owned() == 0 {
		t.Fatalf("owned: a %d, b %d", a.Owned(), b.Owned())
	}
	before := a.changes.Load()
	if err := a.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a.Owned() != 0 || a.changes.Load() == before {
		t.Fatalf("drained node owns %d, OnChange called %d times", a.Owned(), a.changes.Load()-before)
	}
	// The released cameras are claimed on the other node's next pass, not
	// after a lease.
	beat(t, b)
	if got := len(owners(t, pool)); got != len(cams) || b.Owned() != len(cams) {
		t.Fatalf("after the drain and one beat of b: %d owned, b owns %d", got, b.Owned())
	}
	beat(t, a) // a drained node's beats do nothing
	if a.Owned() != 0 {
		t.Fatal("a drained node claimed again")
	}
	infos, err := cluster.List(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range infos {
		if i.ID == "drain-a" && (!i.Draining || i.Cameras != 0) {
			t.Fatalf("drained node listed as %+v", i)
		}
		if i.ID == "drain-b" && (!i.Alive || i.Cameras != len(cams)) {
			t.Fatalf("live node listed as %+v", i)
		}
	}
}

func TestDemandAndMaxCameras(t *testing.T) {
	pool := testdb.New(t)
	cams := addCameras(t, pool, 6, false)
	a, b := newNode(t, pool, "want-a", 2), newNode(t, pool, "want-b", 0)
	beat(t, a, b, a, b)
	if n := len(owners(t, pool)); n != 0 {
		t.Fatalf("%d cameras that nobody watches or records are pulled", n)
	}
	// A viewer on a: the camera is claimed by the node it falls to, and a
	// knows the owner (itself or b).
	a.Want(cams[0], true)
	beat(t, a, b, a)
	o, ok := a.Owner(cams[0])
	if !ok || owners(t, pool)[cams[0]] != o.Node {
		t.Fatalf("a's viewer: owner %+v %v; database %v", o, ok, owners(t, pool))
	}
	// Every camera watched: a takes at most its two.
	for _, c := range cams[1:] {
		a.Want(c, true)
	}
	for range 4 {
		beat(t, a, b)
	}
	if a.Owned() > 2 {
		t.Fatalf("a owns %d, over its max of 2", a.Owned())
	}
	if got := len(owners(t, pool)); got != len(cams) {
		t.Fatalf("%d of %d watched cameras pulled: %v (a owns %d, b %d)", got, len(cams), owners(t, pool), a.Owned(), b.Owned())
	}
	// Nobody watches any more: the leases are released.
	for _, c := range cams {
		a.Want(c, false)
	}
	beat(t, a, b, a, b)
	if got := owners(t, pool); len(got) != 0 {
		t.Fatalf("unwatched cameras still pulled: %v", got)
	}
}

func TestRestartTakesLeasesBack(t *testing.T) {
	pool := testdb.New(t)
	cams := addCameras(t, pool, 5, true)
	a := newNode(t, pool, "restart-a", 0)
	beat(t, a)
	f, ok := a.Fence(cams[0])
	if !ok {
		t.Fatal("no lease")
	}
	// Same ID, new process: claims at once with new epochs; the old
	// process's writes are refused.
	a2 := newNode(t, pool, "restart-a", 0)
	beat(t, a2)
	if a2.Owned() != len(cams) {
		t.Fatalf("restarted node owns %d of %d", a2.Owned(), len(cams))
	}
	f2, _ := a2.Fence(cams[0])
	if f2.Epoch <= f.Epoch {
		t.Fatalf("epoch %d after restart, %d before", f2.Epoch, f.Epoch)
	}
	if _, err := pool.Exec(context.Background(), `SELECT gridwatch_fence($1, $2, $3)`, cams[0], f.Node, f.Epoch); !fence.IsStale(err) {
		t.Fatalf("the old process's fence: %v", err)
	}
}

func TestPeerToken(t *testing.T) {
	pool := testdb.New(t)
	a, b := newNode(t, pool, "tok-a", 0), newNode(t, pool, "tok-b", 0)
	if a.PeerToken() == "" || a.PeerToken() != b.PeerToken() || !b.IsPeer(a.PeerToken()) {
		t.Fatal("nodes on one database do not share a peer token")
	}
	if b.IsPeer("") || b.IsPeer(a.PeerToken()+"x") || b.IsPeer("gw_"+a.PeerToken()[4:]) {
		t.Fatal("IsPeer accepts a wrong token")
	}
	other, err := cluster.New(context.Background(), pool, cluster.Config{ID: "tok-c", URL: "x", Secret: "configured elsewhere"})
	if err != nil {
		t.Fatal(err)
	}
	if other.IsPeer(a.PeerToken()) {
		t.Fatal("a node with another secret accepts the token")
	}
}

// TestPinnedCameras: a camera only one node can pull (a GB/T 28181
// channel whose device registered with it) goes to that node whatever the
// hashing says, and moves when the device registers elsewhere; a
// registration with a node that is not alive pins nothing.
func TestPinnedCameras(t *testing.T) {
	pool := testdb.New(t)
	ctx := context.Background()
	cams := addCameras(t, pool, 8, true)
	a, b := newNode(t, pool, "pin-a", 0), newNode(t, pool, "pin-b", 0)
	pin := func(node string) {
		t.Helper()
		if _, err := pool.Exec(ctx, `INSERT INTO gb_devices (id, node_id, online, expires_at) VALUES ('32010600001180000001', $1, true, now() + interval '1 hour')
			ON CONFLICT (id) DO UPDATE SET node_id = $1, online = true`, node); err != nil {
			t.Fatal(err)
		}
		for i, c := range cams {
			if _, err := pool.Exec(ctx, `INSERT INTO gb_channels (id, device_id, camera_id) VALUES ($1, '32010600001180000001', $2) ON CONFLICT (id) DO NOTHING`,
				fmt.Sprintf("320106000013100000%02d", i+1), c); err != nil {
				t.Fatal(err)
			}
		}
	}
	pin("pin-a")
	for range 6 {
		beat(t, a, b)
	}
	for _, c := range cams {
		if o := owners(t, pool)[c]; o != "pin-a" {
			t.Fatalf("camera %d pinned to pin-a is pulled by %q", c, o)
		}
	}
	// The device registers with b: a hands its cameras over.
	pin("pin-b")
	for range 6 {
		beat(t, a, b)
	}
	for _, c := range cams {
		if o := owners(t, pool)[c]; o != "pin-b" {
			t.Fatalf("camera %d pinned to pin-b is pulled by %q", c, o)
		}
	}
	// Registered with a node that is not alive (or a registration that
	// expired): no pin; the cameras fall to the nodes as any others.
	pin("pin-gone")
	for range 6 {
		beat(t, a, b)
	}
	for _, c := range cams {
		if o := owners(t, pool)[c]; o != "pin-a" && o != "pin-b" {
			t.Fatalf("camera %d of a device registered with a dead node: owner %q", c, o)
		}
	}
}
