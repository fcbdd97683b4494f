// Package cluster spreads the cameras over several gridwatch nodes that share
// one PostgreSQL, with no other broker and no consensus of its own: the
// database's row locks and clock decide.
//
// Every node beats into the nodes table. Each camera that must be pulled (it
// records, or some node has a viewer for it) has one owner node, held as a
// lease in camera_leases: owner, expiry and a fencing epoch that grows with
// every change of owner. Nodes claim the cameras nobody holds by rendezvous
// hashing over the live nodes (each camera goes to the node that scores
// highest for it among those with room), renew all their leases in one
// statement per beat (a lease is held while its node beats), and hand a camera over when a node that scores higher
// for it joins. A node that misses its lease loses its cameras; the others
// claim them on their next beat. Only the owner pulls a camera from the
// camera; the other nodes relay it from the owner's RTSP re-serve (see
// Owner), and only the owner's writes are stored (see package fence).
//
// One node alone is a cluster of one: it owns every camera it wants, and
// nothing else changes.
package cluster

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch/internal/fence"
)

// Channel is the LISTEN/NOTIFY channel on which nodes tell each other that
// leases changed (a claim, a hand-over, a drain) or that cameras changed.
const Channel = "gridwatch_leases"

// DefaultLease is how long a lease lasts without renewal.
const DefaultLease = 10 * time.Second

// Config configures a Node.
type Config struct {
	// ID names the node; it must be unique among the running nodes (the
	// host name is a good default). A node restarted with the same ID takes
	// its leases back at once.
	ID string
	// URL is how other nodes reach this one's HTTP; RTSPURL its RTSP
	// re-serve ("rtsp://host:port"; "" when it serves none, and then other
	// nodes cannot relay its cameras).
	URL, RTSPURL string
	Version      string
	// Lease is how long a lease lasts unrenewed (default DefaultLease);
	// nodes beat every third of it.
	Lease time.Duration
	// MaxCameras bounds the cameras this node owns (0: no bound).
	MaxCameras int
	// Secret authenticates intra-cluster requests; "" uses the one kept in
	// the database (made by the first node).
	Secret string
	Logger *slog.Logger
	// Stats is what the node row shows of its work: viewers served and
	// load (nil: zeros).
	Stats func() (viewers int, load float64)
	// OnChange is called, from the node's goroutine, after cameras were
	// gained or lost or their owners changed, and before a camera this node
	// hands over is released: when it returns, the node must have stopped
	// pulling and recording every camera it no longer owns (Owner says which).
	OnChange func()
}

// Owner is who pulls a camera: this node (Self), another (its RTSP
// re-serve to relay from), or nobody yet (the zero Owner).
type Owner struct {
	Node    string
	RTSPURL string
	Epoch   int64
	Self    bool
}

// Node is this process's membership of the cluster.
type Node struct {
	cfg      Config
	pool     *pgxpool.Pool
	log      *slog.Logger
	instance string
	secret   string
	peer     string // the token other nodes present (derived from secret)

	wake chan struct{}
	// pass serialises the beats, claims, hand-overs and the drain.
	pass sync.Mutex

	mu       sync.Mutex
	owned    map[int64]int64 // camera → epoch
	deadline time.Time       // owned leases last until then (this process's monotonic clock)
	others   map[int64]Owner // owners of the cameras of interest that are not this node
	interest map[int64]int   // cameras with streams running here (a count per camera)
	seen     map[string]int  // live nodes other than this one → beats seen alive in a row
	fresh    map[int64]bool  // cameras wanted here since the last pass with no known owner
	draining bool
	beats    int64
}

// New prepares a node; Run makes it beat.
func New(ctx context.Context, pool *pgxpool.Pool, cfg Config) (*Node, error) {
	if cfg.ID == "" {
		return nil, errors.New("cluster: the node has no ID")
	}
	if len(cfg.ID) > 200 {
		return nil, fmt.Errorf("cluster: node ID %.20q… is longer than 200 bytes", cfg.ID)
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Lease < 300*time.Millisecond {
		return nil, fmt.Errorf("cluster: a lease of %v is too short (at least 300 ms)", cfg.Lease)
	}
	if cfg.MaxCameras < 0 {
		return nil, fmt.Errorf("cluster: max cameras %d is negative", cfg.MaxCameras)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Stats == nil {
		cfg.Stats = func() (int, float64) { return 0, 0 }
	}
	if cfg.OnChange == nil {
		cfg.OnChange = func() {}
	}
	n := &Node{cfg: cfg, pool: pool, log: cfg.Logger, instance: randomText(12), wake: make(chan struct{}, 1),
		owned: map[int64]int64{}, others: map[int64]Owner{}, interest: map[int64]int{}, seen: map[string]int{}, fresh: map[int64]bool{}}
	secret := cfg.Secret
	if secret == "" {
		if _, err := pool.Exec(ctx, `INSERT INTO cluster_settings (secret) VALUES ($1) ON CONFLICT DO NOTHING`, randomText(32)); err != nil {
			return nil, fmt.Errorf("cluster: secret: %w", err)
		}
		if err := pool.QueryRow(ctx, `SELECT secret FROM cluster_settings`).Scan(&secret); err != nil {
			return nil, fmt.Errorf("cluster: secret: %w", err)
		}
	}
	n.secret = secret
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("gridwatch node relay"))
	n.peer = "gwn_" + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	// A restarted node (same ID, new process) holds none of the old
	// process's leases (they are the old instance's): it claims its
	// cameras again, with new epochs, so that nothing the old process
	// still writes is stored. Its old demand goes.
	if _, err := pool.Exec(ctx, `DELETE FROM camera_demand WHERE node_id = $1`, cfg.ID); err != nil {
		return nil, fmt.Errorf("cluster: start node %s: %w", cfg.ID, err)
	}
	return n, nil
}

func randomText(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ID is the node's ID.
func (n *Node) ID() string { return n.cfg.ID }

// SetURLs sets how other nodes reach this one (see Config), before Run
// when they are known only once its listeners are up.
func (n *Node) SetURLs(url, rtspURL string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cfg.URL, n.cfg.RTSPURL = url, rtspURL
}

// Draining reports whether Drain has begun.
func (n *Node) Draining() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.draining
}

// Lease is the lease length.
func (n *Node) Lease() time.Duration { return n.cfg.Lease }

// PeerToken is the token this node presents to other nodes (as the RTSP
// password when it relays a camera).
func (n *Node) PeerToken() string { return n.peer }

// IsPeer reports whether token is the cluster's peer token.
func (n *Node) IsPeer(token string) bool {
	return len(token) == len(n.peer) && subtle.ConstantTimeCompare([]byte(token), []byte(n.peer)) == 1
}

// Owner is who pulls camera, as this node knows it: this node for the
// cameras it holds a lease on, the owner of a camera of interest, or
// nobody (false) while no node has claimed it.
func (n *Node) Owner(camera int64) (Owner, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ep, ok := n.owned[camera]; ok {
		return Owner{Node: n.cfg.ID, RTSPURL: n.cfg.RTSPURL, Epoch: ep, Self: true}, true
	}
	o, ok := n.others[camera]
	return o, ok
}

// Owns reports whether this node holds camera's lease.
func (n *Node) Owns(camera int64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.owned[camera]
	return ok
}

// Fence is the fence of this node's lease on camera (false: it holds none).
func (n *Node) Fence(camera int64) (fence.Fence, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ep, ok := n.owned[camera]
	if !ok {
		return fence.Fence{}, false
	}
	return fence.Fence{Node: n.cfg.ID, Epoch: ep}, true
}

// Owned is how many cameras this node owns.
func (n *Node) Owned() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.owned)
}

// Want says this node has (on) or no longer has a stream of camera running:
// a camera wanted anywhere is claimed by one node. Calls are counted: each
// Want(c, true) is undone by one Want(c, false). A camera newly wanted with
// no known owner wakes the node, which claims it or makes it known.
func (n *Node) Want(camera int64, on bool) {
	n.mu.Lock()
	if on {
		n.interest[camera]++
	} else if n.interest[camera]--; n.interest[camera] <= 0 {
		delete(n.interest, camera)
	}
	_, owned := n.owned[camera]
	_, known := n.others[camera]
	if on && !owned && !known {
		n.fresh[camera] = true
	}
	n.mu.Unlock()
	if on && !owned && !known {
		n.Wake()
	}
}

// Wake asks for a pass now (claims, routes) instead of at the next beat.
func (n *Node) Wake() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Notify wakes every node (this one included): cameras changed.
func (n *Node) Notify(ctx context.Context) {
	if _, err := n.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, n.cfg.ID); err != nil && ctx.Err() == nil {
		n.log.Warn("cluster: notify", "err", err)
	}
	n.Wake()
}

// Run beats until ctx ends: every third of the lease, and at once when
// woken (a camera wanted here, a notification from another node). It
// listens on Channel on a connection of its own.
func (n *Node) Run(ctx context.Context) error {
	lctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { n.listen(lctx) })
	defer func() { stop(); wg.Wait() }()
	interval := n.cfg.Lease / 3
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-n.wake:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		}
		if err := n.Beat(ctx); err != nil && ctx.Err() == nil {
			n.log.Warn("cluster: beat", "node", n.cfg.ID, "err", err)
		}
		t.Reset(interval)
	}
}

// listen wakes the node on every notification on Channel, reconnecting
// after a lost connection.
func (n *Node) listen(ctx context.Context) {
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		err := func() error {
			conn, err := n.pool.Acquire(ctx)
			if err != nil {
				return err
			}
			defer func() {
				// The connection may be inside LISTEN: it goes, not back to the pool.
				_ = conn.Conn().Close(context.Background())
				conn.Release()
			}()
			if _, err := conn.Exec(ctx, `LISTEN `+Channel); err != nil {
				return err
			}
			backoff = 200 * time.Millisecond
			n.Wake() // whatever was said while not listening
			for {
				if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
					return err
				}
				n.Wake()
			}
		}()
		if ctx.Err() != nil {
			return
		}
		n.log.Warn("cluster: listen", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// Beat is one pass: the node's row (which renews all its leases at once),
// the leases it still holds read back and its demand stated, in one round
// trip; then the cameras nobody holds claimed, the
// ones to hand over handed over, and the owners of the cameras of interest
// read. Cameras whose lease could not be renewed in time are dropped.
func (n *Node) Beat(ctx context.Context) error {
	n.pass.Lock()
	defer n.pass.Unlock()
	// A beat that hangs (a cut network) must not outlast the leases it
	// renews by much: past the deadline, this node drops them (below).
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Lease)
	defer cancel()
	changed := false
	defer func() {
		if changed {
			n.cfg.OnChange()
		}
	}()
	n.mu.Lock()
	if n.draining {
		n.mu.Unlock()
		return nil
	}
	cams, epochs := make([]int64, 0, len(n.owned)), make([]int64, 0, len(n.owned))
	for c, e := range n.owned {
		cams, epochs = append(cams, c), append(epochs, e)
	}
	interest := make([]int64, 0, len(n.interest)) // not nil: NULL would match nothing below
	for c := range n.interest {
		interest = append(interest, c)
	}
	n.beats++
	url, rtspURL := n.cfg.URL, n.cfg.RTSPURL
	n.mu.Unlock()
	viewers, load := n.cfg.Stats()
	lease := n.cfg.Lease.Milliseconds()

	sent := time.Now()
	var b pgx.Batch
	b.Queue(`INSERT INTO nodes (id, url, rtsp_url, version, instance, started_at, last_beat, lease_ms, max_cameras, cameras, viewers, load)
		VALUES ($1, $2, $3, $4, $5, now(), now(), $6, $7, $8, $9, $10)
		ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, rtsp_url = EXCLUDED.rtsp_url, version = EXCLUDED.version,
			started_at = CASE WHEN nodes.instance = EXCLUDED.instance THEN nodes.started_at ELSE now() END,
			instance = EXCLUDED.instance, last_beat = now(), lease_ms = EXCLUDED.lease_ms, draining = false,
			max_cameras = EXCLUDED.max_cameras, cameras = EXCLUDED.cameras, viewers = EXCLUDED.viewers, load = EXCLUDED.load`,
		n.cfg.ID, url, rtspURL, n.cfg.Version, n.instance, lease, n.cfg.MaxCameras, len(cams), viewers, load)
	// The row just written renews every lease this process holds; which
	// it still holds (none taken by another node while this one was
	// thought dead) is read back.
	held := map[int64]int64{}
	b.Queue(`SELECT camera_id, epoch FROM camera_leases WHERE node_id = $1 AND instance = $2`, n.cfg.ID, n.instance).Query(func(rows pgx.Rows) error {
		var c, e int64
		_, err := pgx.ForEachRow(rows, []any{&c, &e}, func() error {
			held[c] = e
			return nil
		})
		return err
	})
	b.Queue(`INSERT INTO camera_demand (camera_id, node_id, until)
		SELECT c, $1, now() + $2 * interval '1 millisecond' FROM unnest($3::bigint[]) AS c
		WHERE EXISTS (SELECT 1 FROM cameras WHERE id = c)
		ON CONFLICT (camera_id, node_id) DO UPDATE SET until = EXCLUDED.until`, n.cfg.ID, lease, interest)
	b.Queue(`DELETE FROM camera_demand WHERE node_id = $1 AND camera_id <> ALL($2::bigint[])`, n.cfg.ID, interest)
	// Nodes gone for a week leave the list (a node that comes back is
	// listed again at its first beat).
	b.Queue(`DELETE FROM nodes WHERE last_beat < now() - interval '7 days'`)
	err := n.pool.SendBatch(ctx, &b).Close()
	n.mu.Lock()
	if err != nil {
		// Without a renewal the leases last until the deadline of the
		// last one that succeeded; past it, another node may claim them,
		// so this one pulls nothing — unless it was alone, when nobody can.
		if len(n.owned) > 0 && time.Now().After(n.deadline) && len(n.seen) > 0 {
			n.log.Error("cluster: leases lapsed (no renewal): this node stops pulling its cameras", "cameras", len(n.owned))
			clear(n.owned)
			changed = true
		}
		n.mu.Unlock()
		return err
	}
	asked := make(map[int64]int64, len(cams))
	for i, c := range cams {
		asked[c] = epochs[i]
	}
	for c, e := range n.owned {
		if ep, ok := asked[c]; ok && ep == e && held[c] != e {
			delete(n.owned, c)
			changed = true
			n.log.Warn("cluster: lease lost", "camera", c, "epoch", e)
		}
	}
	// Leases this process still holds that it had dropped (its beat could
	// not be renewed for a while, and nobody claimed them meanwhile): they
	// are its again, same epochs.
	for c, e := range held {
		if _, ok := n.owned[c]; !ok {
			n.owned[c] = e
			changed = true
			n.log.Info("cluster: lease kept through a lapse", "camera", c, "epoch", e)
		}
	}
	n.deadline = sent.Add(n.cfg.Lease)
	n.mu.Unlock()

	moved, err := n.place(ctx)
	if moved {
		changed = true
	}
	if err != nil {
		return err
	}
	if n.readOwners(ctx) {
		changed = true
	}
	return nil
}

// liveNode is a node as the claims see it.
type liveNode struct {
	id      string
	cameras int
	max     int
	stable  bool
}

func (l liveNode) room() bool { return l.max == 0 || l.cameras < l.max }

// place claims the cameras nobody holds that fall to this node, releases
// the ones nobody wants any more and hands over those that a newly joined
// node scores higher for. It reports whether this node's cameras changed.
func (n *Node) place(ctx context.Context) (bool, error) {
	rows, err := n.pool.Query(ctx, `SELECT id, max_cameras,
			(SELECT count(*) FROM camera_leases l WHERE l.node_id = nodes.id AND l.instance = nodes.instance)::int
		FROM nodes WHERE last_beat + lease_ms * interval '1 millisecond' > now() AND NOT draining`)
	if err != nil {
		return false, fmt.Errorf("live nodes: %w", err)
	}
	live, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (liveNode, error) {
		var l liveNode
		err := r.Scan(&l.id, &l.max, &l.cameras)
		return l, err
	})
	if err != nil {
		return false, fmt.Errorf("live nodes: %w", err)
	}
	n.mu.Lock()
	seen := map[string]int{}
	self := -1
	for i := range live {
		if live[i].id == n.cfg.ID {
			self = i
			live[i].cameras = len(n.owned)
			live[i].max = n.cfg.MaxCameras
			live[i].stable = true
			continue
		}
		seen[live[i].id] = n.seen[live[i].id] + 1
		// A node is counted for hand-overs once seen alive on two beats in a
		// row: one that flaps does not pull cameras back and forth.
		live[i].stable = seen[live[i].id] >= 2
	}
	n.seen = seen
	n.mu.Unlock()
	if self < 0 {
		// Not in the list (its row was just written, so only a clock far
		// off or a drain hides it): claim nothing this pass.
		return false, nil
	}

	// The cameras that must be pulled and that nobody holds: those that
	// record and those some node has a viewer for. stale: their lease
	// lapsed (its node's beat) or was released more than two beats ago, so
	// the node they fall to is not taking them; any node with room then does.
	beat := n.cfg.Lease / 3
	// (Wanted for two beats too: a camera opened after a long rest is
	// left to the node it falls to, not taken by the first node awake.)
	rows, err = n.pool.Query(ctx, `SELECT c.id,
			coalesce(coalesce(o.last_beat + o.lease_ms * interval '1 millisecond', l.since) < now() - $1 * interval '1 millisecond', false)
			AND (CASE WHEN c.record THEN c.updated_at
				ELSE (SELECT min(d.since) FROM camera_demand d WHERE d.camera_id = c.id AND d.until > now()) END) < now() - $1 * interval '1 millisecond',
			coalesce((SELECT p.node_id FROM camera_pins p WHERE p.camera_id = c.id), '')
		FROM cameras c LEFT JOIN camera_leases l ON l.camera_id = c.id LEFT JOIN nodes o ON o.id = l.node_id
		WHERE c.enabled AND (c.record OR EXISTS (SELECT 1 FROM camera_demand d WHERE d.camera_id = c.id AND d.until > now()))
		  AND NOT EXISTS (SELECT 1 FROM camera_owners w WHERE w.camera_id = c.id)
		ORDER BY c.id`, (2 * beat).Milliseconds())
	if err != nil {
		return false, fmt.Errorf("cameras to claim: %w", err)
	}
	type orphan struct {
		id    int64
		stale bool
		pin   string // the only node that can pull it ("": any)
	}
	orphans, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (orphan, error) {
		var o orphan
		err := r.Scan(&o.id, &o.stale, &o.pin)
		return o, err
	})
	if err != nil {
		return false, fmt.Errorf("cameras to claim: %w", err)
	}
	var claim []int64
	othersToClaim := false
	n.mu.Lock()
	fresh := n.fresh
	n.fresh = map[int64]bool{}
	n.mu.Unlock()
	for _, o := range orphans {
		if o.pin != "" {
			// Pinned: its node takes it, room or not; while that node
			// is not alive nobody can pull it.
			if o.pin == n.cfg.ID {
				claim = append(claim, o.id)
				live[self].cameras++
			}
			continue
		}
		top := pick(live, o.id)
		if top == self || (o.stale && live[self].room()) {
			if !live[self].room() {
				continue
			}
			claim = append(claim, o.id)
			live[self].cameras++
		} else if top >= 0 {
			live[top].cameras++ // counted as gone there, for the rest of this pass
			othersToClaim = othersToClaim || fresh[o.id]
		}
	}
	changed := false
	if othersToClaim {
		// A camera just wanted here that falls to another node: that node
		// claims it now rather than at its beat (once: a camera is fresh
		// for one pass).
		if _, err := n.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, n.cfg.ID); err != nil {
			return false, fmt.Errorf("notify: %w", err)
		}
	}
	if len(claim) > 0 {
		got, err := n.claim(ctx, claim)
		if err != nil {
			return false, err
		}
		changed = len(got) > 0
	}

	// Cameras this node holds that nobody wants any more (their viewers
	// left everywhere, recording was turned off, the camera was disabled
	// or deleted) are released; so are those a stable node with room scores
	// higher for (a joined node takes its share), a bounded number per beat.
	rows, err = n.pool.Query(ctx, `SELECT l.camera_id,
			NOT coalesce(c.enabled AND (c.record OR EXISTS (SELECT 1 FROM camera_demand d WHERE d.camera_id = l.camera_id AND d.until > now())), false),
			coalesce((SELECT p.node_id FROM camera_pins p WHERE p.camera_id = l.camera_id), '')
		FROM camera_leases l LEFT JOIN cameras c ON c.id = l.camera_id
		WHERE l.node_id = $1 AND l.instance = $2`, n.cfg.ID, n.instance)
	if err != nil {
		return changed, fmt.Errorf("cameras held: %w", err)
	}
	type held struct {
		id     int64
		unwant bool
		pin    string
	}
	holds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (held, error) {
		var h held
		err := r.Scan(&h.id, &h.unwant, &h.pin)
		return h, err
	})
	if err != nil {
		return changed, fmt.Errorf("cameras held: %w", err)
	}
	var release []int64
	handovers, maxHandovers := 0, max(50, len(holds)/4)
	n.mu.Lock()
	for _, h := range holds {
		if _, mine := n.owned[h.id]; !mine {
			continue
		}
		if h.unwant {
			if n.interest[h.id] == 0 {
				release = append(release, h.id)
			}
			continue
		}
		if h.pin != "" {
			// Pinned elsewhere (its device registered with another
			// node): this node cannot pull it; that one does, when alive.
			if h.pin != n.cfg.ID {
				release = append(release, h.id)
			}
			continue
		}
		if handovers >= maxHandovers {
			continue
		}
		if top := pick(stableOnly(live, self), h.id); top >= 0 && top != self && live[top].id != n.cfg.ID {
			release = append(release, h.id)
			live[top].cameras++
			handovers++
		}
	}
	n.mu.Unlock()
	if len(release) > 0 {
		if err := n.release(ctx, release); err != nil {
			return true, err
		}
		changed = true
	}
	if changed {
		if _, err := n.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, n.cfg.ID); err != nil {
			return changed, fmt.Errorf("notify: %w", err)
		}
	}
	return changed, nil
}

// stableOnly is live with the unstable nodes (other than self) made
// unpickable, for hand-overs; self has room for what it holds already.
func stableOnly(live []liveNode, self int) []liveNode {
	out := slices.Clone(live)
	out[self].max = 0
	for i := range out {
		if i != self && !out[i].stable {
			out[i].max, out[i].cameras = 1, 1 // no room
		}
	}
	return out
}

// pick is the index of the live node camera falls to: the highest
// rendezvous score among the nodes with room (-1: none has room).
func pick(live []liveNode, camera int64) int {
	best, bestScore := -1, uint64(0)
	for i, l := range live {
		if !l.room() {
			continue
		}
		if s := Score(l.id, camera); best < 0 || s > bestScore || (s == bestScore && l.id < live[best].id) {
			best, bestScore = i, s
		}
	}
	return best
}

// Score is node's rendezvous score for camera: FNV-1a of both, mixed
// (splitmix64's finaliser) so that close IDs spread.
func Score(node string, camera int64) uint64 {
	h := fnv.New64a()
	h.Write([]byte(node))
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(camera))
	h.Write(b[:])
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// claim takes the leases of cameras that nobody holds (a lease another
// node took meanwhile stays its), each with a new epoch, in one statement.
func (n *Node) claim(ctx context.Context, cams []int64) ([]int64, error) {
	// A lease row is taken over when it was released or its holder's beat
	// lapsed (a concurrent claimer waits on the row lock, then finds it
	// held); a camera without one gets one.
	rows, err := n.pool.Query(ctx, `WITH want AS (SELECT unnest($3::bigint[]) AS id),
		taken AS (
			UPDATE camera_leases l SET node_id = $1, instance = $2, epoch = l.epoch + 1, since = now()
			FROM want WHERE l.camera_id = want.id AND (l.node_id IS NULL OR NOT EXISTS (
				SELECT 1 FROM nodes o WHERE o.id = l.node_id AND o.instance = l.instance
					AND o.last_beat + o.lease_ms * interval '1 millisecond' > now()))
			RETURNING l.camera_id, l.epoch),
		made AS (
			INSERT INTO camera_leases (camera_id, node_id, instance, epoch, since)
			SELECT want.id, $1, $2, 1, now() FROM want
			WHERE EXISTS (SELECT 1 FROM cameras WHERE id = want.id) AND NOT EXISTS (SELECT 1 FROM camera_leases WHERE camera_id = want.id)
			ON CONFLICT (camera_id) DO NOTHING
			RETURNING camera_id, epoch)
		SELECT camera_id, epoch FROM taken UNION ALL SELECT camera_id, epoch FROM made`, n.cfg.ID, n.instance, cams)
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	type got struct{ cam, epoch int64 }
	gots, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (got, error) {
		var g got
		err := r.Scan(&g.cam, &g.epoch)
		return g, err
	})
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	// They last as long as this node's beat, like the rest (the deadline).
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]int64, len(gots))
	for i, g := range gots {
		n.owned[g.cam] = g.epoch
		delete(n.others, g.cam)
		out[i] = g.cam
		n.log.Info("cluster: camera claimed", "camera", g.cam, "epoch", g.epoch)
	}
	return out, nil
}

// release hands cameras over: they leave this node's set first and
// OnChange stops their pulls and recorders, then their leases are released
// so that the node they fall to claims them at once.
func (n *Node) release(ctx context.Context, cams []int64) error {
	n.mu.Lock()
	cams = slices.DeleteFunc(slices.Clone(cams), func(c int64) bool { _, ok := n.owned[c]; return !ok })
	epochs := make([]int64, len(cams))
	for i, c := range cams {
		epochs[i] = n.owned[c]
		delete(n.owned, c)
	}
	n.mu.Unlock()
	if len(cams) == 0 {
		return nil
	}
	n.cfg.OnChange()
	_, err := n.pool.Exec(ctx, `UPDATE camera_leases l SET node_id = NULL, instance = NULL, since = now()
		FROM unnest($2::bigint[], $3::bigint[]) AS o(camera, epoch)
		WHERE l.camera_id = o.camera AND l.epoch = o.epoch AND l.node_id = $1`, n.cfg.ID, cams, epochs)
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	n.log.Info("cluster: cameras handed over", "cameras", cams)
	return nil
}

// readOwners reads who owns the cameras of interest that this node does
// not; it reports whether any changed.
func (n *Node) readOwners(ctx context.Context) bool {
	n.mu.Lock()
	var ask []int64
	for c := range n.interest {
		if _, mine := n.owned[c]; !mine {
			ask = append(ask, c)
		}
	}
	n.mu.Unlock()
	found := map[int64]Owner{}
	if len(ask) > 0 {
		rows, err := n.pool.Query(ctx, `SELECT camera_id, node_id, epoch, rtsp_url FROM camera_owners
			WHERE camera_id = ANY($1) AND node_id <> $2`, ask, n.cfg.ID)
		if err != nil {
			n.log.Warn("cluster: read owners", "err", err)
			return false
		}
		for rows.Next() {
			var c int64
			var o Owner
			if err := rows.Scan(&c, &o.Node, &o.Epoch, &o.RTSPURL); err != nil {
				rows.Close()
				n.log.Warn("cluster: read owners", "err", err)
				return false
			}
			found[c] = o
		}
		if rows.Err() != nil {
			n.log.Warn("cluster: read owners", "err", rows.Err())
			return false
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if maps.Equal(found, n.others) {
		return false
	}
	n.others = found
	return true
}

// Drain hands every camera of this node over and stops it taking any: its
// row says draining (so no node picks it), OnChange stops its pulls, its
// leases are released and the other nodes told. Beats do nothing after it.
func (n *Node) Drain(ctx context.Context) error {
	n.pass.Lock()
	defer n.pass.Unlock()
	n.mu.Lock()
	n.draining = true
	had := len(n.owned)
	clear(n.owned)
	clear(n.others)
	n.mu.Unlock()
	start := time.Now()
	if _, err := n.pool.Exec(ctx, `UPDATE nodes SET draining = true, cameras = 0, last_beat = now() WHERE id = $1`, n.cfg.ID); err != nil {
		return fmt.Errorf("cluster: drain: %w", err)
	}
	n.cfg.OnChange()
	err := pgx.BeginFunc(ctx, n.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE camera_leases SET node_id = NULL, instance = NULL, since = now() WHERE node_id = $1 AND instance = $2`, n.cfg.ID, n.instance); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM camera_demand WHERE node_id = $1`, n.cfg.ID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, n.cfg.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster: drain: %w", err)
	}
	n.log.Info("cluster: drained", "node", n.cfg.ID, "cameras", had, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// Leave marks the node gone at once (its row's beat is put in the past):
// after Drain, when the process exits.
func (n *Node) Leave(ctx context.Context) error {
	_, err := n.pool.Exec(ctx, `UPDATE nodes SET last_beat = now() - lease_ms * interval '1 millisecond', cameras = 0, viewers = 0
		WHERE id = $1 AND instance = $2`, n.cfg.ID, n.instance)
	return err
}

// Info is a node as GET /api/v1/nodes shows it.
type Info struct {
	ID         string    `json:"id"`
	URL        string    `json:"url"`
	RTSPURL    string    `json:"rtsp_url,omitempty"`
	Alive      bool      `json:"alive"`
	Draining   bool      `json:"draining"`
	Cameras    int       `json:"cameras"`
	MaxCameras int       `json:"max_cameras"`
	Viewers    int       `json:"viewers"`
	Load       float64   `json:"load"`
	Version    string    `json:"version"`
	StartedAt  time.Time `json:"started_at"`
	LastBeat   time.Time `json:"last_beat"`
}

// List is every node known, live ones first; a node's cameras are the
// leases it holds now (a dead node holds none).
func List(ctx context.Context, pool *pgxpool.Pool) ([]Info, error) {
	rows, err := pool.Query(ctx, `SELECT id, url, rtsp_url, last_beat + lease_ms * interval '1 millisecond' > now(), draining,
			(SELECT count(*) FROM camera_owners o WHERE o.node_id = nodes.id)::int,
			max_cameras, viewers, load, version, started_at, last_beat
		FROM nodes ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("nodes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Info, error) {
		var i Info
		var load float32
		err := r.Scan(&i.ID, &i.URL, &i.RTSPURL, &i.Alive, &i.Draining, &i.Cameras, &i.MaxCameras, &i.Viewers, &load, &i.Version, &i.StartedAt, &i.LastBeat)
		i.Load = math.Round(float64(load)*100) / 100
		if !i.Alive {
			i.Viewers, i.Load = 0, 0
		}
		return i, err
	})
	if err != nil {
		return nil, fmt.Errorf("nodes: %w", err)
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Alive && !out[b].Alive })
	return out, nil
}
