package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"gridwatch"
)

// Reset is the type of the event a subscriber gets instead of a replay it
// cannot have (the event it last saw is older than the replay window, or
// unknown): the client should reload its state. Its ID is the newest event
// at that moment, so a later reconnect resumes from there.
const Reset = "reset"

// Channel is the PostgreSQL notification channel the events trigger uses.
const Channel = "gridwatch_events"

// Errors a subscription ends with (Subscription.Err).
var (
	// ErrClosed: the hub stopped (the server is shutting down).
	ErrClosed = gridwatch.Errorf(gridwatch.EUnavailable, "live events are stopping: the server is shutting down")
	// ErrSlow: the subscriber did not keep up and was dropped; it should
	// reconnect with the last id it saw.
	ErrSlow = gridwatch.Errorf(gridwatch.EUnavailable, "too many events queued for this subscriber: reconnect with Last-Event-ID")
)

const (
	// listenerName is the application_name of the listening connection.
	listenerName = "gridwatch-events"
	// fetchBatch caps the rows one read of the feed takes.
	fetchBatch = 1000
	// maxReplay caps a replay; a client further behind gets a Reset.
	maxReplay = 10000
	// gapWait is how long an id skipped in the feed is looked for again: ids
	// are taken at insert but become visible at commit, so a transaction that
	// took id 10 may commit after the one that took 11.
	gapWait = 2 * time.Minute
	// maxGap bounds the ids remembered for one jump (a restored sequence, or
	// a table emptied by retention, must not fill memory).
	maxGap = 1000
)

// Event is one row of the change feed as subscribers see it. Data is compact
// JSON: what the publisher gave, with "grid_id" added.
type Event struct {
	ID     int64           `json:"id"`
	At     time.Time       `json:"at"`
	Type   string          `json:"type"`
	GridID *int64          `json:"grid_id"`
	Data   json.RawMessage `json:"data"`
	// Pos is the subscriber's position once it has this event: what the
	// event's SSE id carries, and what a reconnect resumes from.
	Pos Position `json:"-"`
}

// HubOptions tune a Hub; zero values take the defaults.
type HubOptions struct {
	// Window is how far back a reconnecting subscriber can replay, and how
	// long events are kept (default 1 hour).
	Window time.Duration
	// RetainEvery is how often events older than Window are deleted
	// (default 10 minutes).
	RetainEvery time.Duration
	// Buffer is each subscriber's queue; one that overflows is dropped
	// (default 256).
	Buffer int
	// Heartbeat is how often an idle stream sends a keep-alive (default 15 s).
	Heartbeat time.Duration
	// MinBackoff and MaxBackoff bound the wait between reconnects of the
	// listening connection (default 250 ms and 2 s: one connection
	// attempt every 2 s costs a database that is away nothing, and the
	// streams hear again within 2 s of its return).
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
}

func (o *HubOptions) defaults() {
	if o.Window <= 0 {
		o.Window = time.Hour
	}
	if o.RetainEvery <= 0 {
		o.RetainEvery = 10 * time.Minute
	}
	if o.Buffer <= 0 {
		o.Buffer = 256
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 250 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(2*time.Second, o.MinBackoff)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Hub is one process's end of the change feed: a single connection LISTENs
// for new events, reads them from the events table and fans them out to this
// process's subscribers. Every process has its own hub, so every process
// sees every change, whichever process made it.
type Hub struct {
	pool *pgxpool.Pool
	opts HubOptions
	log  *slog.Logger

	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool

	ready     chan struct{} // closed once the hub first listens
	readyOnce sync.Once

	// The hub's position in the feed. Only Run's goroutine writes them,
	// holding mu for last and gaps, which Subscribe reads.
	started bool
	last    int64               // the highest id read
	gaps    map[int64]time.Time // ids below last not yet seen, since when
	gapIDs  gapList             // the same ids, in order
}

// NewHub returns a hub reading the events of pool's database. Start it with Run.
func NewHub(pool *pgxpool.Pool, opts HubOptions) *Hub {
	opts.defaults()
	return &Hub{pool: pool, opts: opts, log: opts.Logger, subs: map[*Subscription]struct{}{}, gaps: map[int64]time.Time{},
		ready: make(chan struct{})}
}

// Ready is closed once Run first listens: events committed from then on
// reach every subscriber. (Until then, a subscriber with no Last-Event-ID
// may miss an event; one with it replays from the table.)
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// Heartbeat is how often a stream should send a keep-alive when idle.
func (h *Hub) Heartbeat() time.Duration { return h.opts.Heartbeat }

// Run listens for events until ctx ends, reconnecting with backoff when the
// connection drops (and catching up from the last id it read), and deletes
// events older than the window every RetainEvery. When it returns every
// goroutine it started has ended and every subscription is closed.
func (h *Hub) Run(ctx context.Context) error {
	if h.pool == nil {
		return errors.New("events hub: no database pool")
	}
	defer h.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { h.retain(ctx) })

	backoff := h.opts.MinBackoff
	for {
		connected, err := h.listen(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if connected {
			backoff = h.opts.MinBackoff
		}
		h.log.Warn("events: listening connection lost; reconnecting", "err", err, "in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, h.opts.MaxBackoff)
	}
}

// listen holds one connection: LISTEN, catch up, then read the feed on each
// notification. connected reports whether it got as far as listening.
func (h *Hub) listen(ctx context.Context) (connected bool, err error) {
	cfg := h.pool.Config().ConnConfig // a copy
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = listenerName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer closeConn(conn)
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	if !h.started {
		// Start at the newest event: older ones are for replays.
		var newest int64
		if err := conn.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM events").Scan(&newest); err != nil {
			return false, fmt.Errorf("read the newest event: %w", err)
		}
		// Ids just below it that are not in the table may be transactions
		// still open (another process's): look for them as for any gap.
		missing, err := missingBelow(ctx, conn, newest)
		if err != nil {
			return false, err
		}
		h.mu.Lock()
		h.last = newest
		for _, id := range missing {
			h.addGapLocked(id, time.Now())
		}
		h.mu.Unlock()
		h.started = true
		h.readyOnce.Do(func() { close(h.ready) })
		h.log.Debug("events: listening", "after", newest)
	} else if err := h.fetch(ctx, conn); err != nil { // what was missed while away
		return false, err
	}
	// A context that is already done makes WaitForNotification hand back
	// the notifications it has queued without waiting for more.
	drained, cancel := context.WithCancel(context.Background())
	cancel()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, fmt.Errorf("wait for notification: %w", err)
		}
		need := h.isNew(n.Payload)
		for {
			n, err := conn.WaitForNotification(drained)
			if err != nil {
				break
			}
			need = need || h.isNew(n.Payload)
		}
		if need {
			if err := h.fetch(ctx, conn); err != nil {
				return true, err
			}
		}
	}
}

// closeConn closes the listening connection and waits until pgx has
// released everything it holds (a broken connection is closed in the
// background, bounded by pgx's own deadline).
func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
	<-conn.PgConn().CleanupDone()
}

// isNew reports whether a notified id may not have been read yet. A payload
// that is not an id is treated as new.
func (h *Hub) isNew(payload string) bool {
	id, err := strconv.ParseInt(payload, 10, 64)
	if err != nil {
		return true
	}
	_, gap := h.gaps[id]
	return id > h.last || gap
}

// addGapLocked marks id as a gap, seen missing at at.
func (h *Hub) addGapLocked(id int64, at time.Time) {
	if _, ok := h.gaps[id]; !ok {
		h.gaps[id] = at
		h.gapIDs.add(id)
	}
}

// dropGapLocked unmarks id; it reports whether it was a gap.
func (h *Hub) dropGapLocked(id int64) bool {
	if _, ok := h.gaps[id]; !ok {
		return false
	}
	delete(h.gaps, id)
	h.gapIDs.remove(id)
	return true
}

// lookBack is how far below the newest event a hub that starts, or a
// subscriber that is reset, looks for ids not committed yet.
const lookBack = 64

// missingBelow returns the ids in the lookBack ids below newest that are not
// in the table.
func missingBelow(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, newest int64) ([]int64, error) {
	rows, err := q.Query(ctx, `SELECT g FROM generate_series(greatest($1::bigint - $2, 1), $1::bigint - 1) g
		WHERE NOT EXISTS (SELECT 1 FROM events WHERE id = g) ORDER BY g`, newest, lookBack)
	if err != nil {
		return nil, fmt.Errorf("read the ids missing below %d: %w", newest, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("read the ids missing below %d: %w", newest, err)
	}
	return ids, nil
}

const selectEvents = `SELECT id, at, type, grid_id, data || jsonb_build_object('grid_id', grid_id) FROM events`

func scanEvent(row pgx.CollectableRow) (Event, error) {
	var ev Event
	var data []byte
	if err := row.Scan(&ev.ID, &ev.At, &ev.Type, &ev.GridID, &data); err != nil {
		return ev, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		return ev, fmt.Errorf("event %d: data: %w", ev.ID, err)
	}
	ev.Data = buf.Bytes()
	return ev, nil
}

// fetch reads every event after the last one read, and any skipped id that
// has since committed, and fans them out.
func (h *Hub) fetch(ctx context.Context, conn *pgx.Conn) error {
	for {
		now := time.Now()
		h.mu.Lock()
		for id, since := range h.gaps {
			if now.Sub(since) > gapWait {
				h.dropGapLocked(id) // rolled back, most likely
			}
		}
		gaps := slices.Clone(h.gapIDs)
		h.mu.Unlock()
		rows, err := conn.Query(ctx, selectEvents+` WHERE id > $1 OR id = ANY($2) ORDER BY id LIMIT $3`, h.last, gaps, fetchBatch)
		if err != nil {
			return fmt.Errorf("read events: %w", err)
		}
		evs, err := pgx.CollectRows(rows, scanEvent)
		if err != nil {
			return fmt.Errorf("read events: %w", err)
		}
		h.mu.Lock()
		pos, dirty, fallback := Position{}, true, false
		for i := range evs {
			ev := &evs[i]
			if ev.ID <= h.last {
				if h.dropGapLocked(ev.ID) {
					dirty = true
				}
			} else {
				if ev.ID-h.last <= maxGap {
					for id := h.last + 1; id < ev.ID && len(h.gaps) < maxGap; id++ {
						h.addGapLocked(id, now)
						dirty = true
					}
				}
				h.last = ev.ID
			}
			if dirty {
				pos, dirty = capped(h.last, h.gapIDs), false
				// Too many gaps: the position stays below the lowest.
				fallback = len(h.gaps) > 0 && len(pos.Gaps) == 0
			}
			if ev.Pos = pos; !fallback {
				ev.Pos.Last = h.last // the gaps are shared until they change
			}
		}
		h.deliverLocked(evs)
		h.mu.Unlock()
		if len(evs) < fetchBatch {
			return nil
		}
	}
}

// retain deletes events older than the window, now and every RetainEvery.
func (h *Hub) retain(ctx context.Context) {
	t := time.NewTicker(h.opts.RetainEvery)
	defer t.Stop()
	for {
		if err := h.prune(ctx); err != nil && ctx.Err() == nil {
			h.log.Warn("events: retention", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// prune deletes the events older than the window.
func (h *Hub) prune(ctx context.Context) error {
	tag, err := h.pool.Exec(ctx, "DELETE FROM events WHERE at < now() - make_interval(secs => $1)", h.opts.Window.Seconds())
	if err != nil {
		return fmt.Errorf("delete old events: %w", err)
	}
	if n := tag.RowsAffected(); n > 0 {
		h.log.Debug("events: deleted old events", "count", n)
	}
	return nil
}

// deliverLocked hands evs to every subscriber whose filter takes them; a
// subscriber whose queue is full is dropped, never waited for. The hub's
// position (last, gaps) is already updated: that and the delivery happen
// under one lock, so Subscribe sees them together.
func (h *Hub) deliverLocked(evs []Event) {
	if len(evs) == 0 {
		return
	}
	for sub := range h.subs {
		for _, ev := range evs {
			if c := sub.catchUp; c != nil && c.skip(ev.ID) {
				continue
			}
			if sub.filter != nil && !sub.filter(ev) {
				continue
			}
			if sub.holding {
				if len(sub.held) >= h.opts.Buffer {
					h.dropLocked(sub, ErrSlow)
					break
				}
				sub.held = append(sub.held, ev)
				continue
			}
			select {
			case sub.ch <- ev:
				continue
			default:
			}
			h.dropLocked(sub, ErrSlow)
			break
		}
		if c := sub.catchUp; c != nil && !sub.holding && len(c.replayed) == 0 && h.last >= c.since {
			sub.catchUp = nil // caught up: nothing more to skip
		}
	}
}

// catchUp is what a subscriber that replayed must not be sent again while
// the hub catches up with the table.
type catchUp struct {
	// since is the subscriber's Last-Event-ID; floor the hub's last id when
	// it subscribed. An id between them that the hub reads later is one the
	// client saw elsewhere before reconnecting.
	since, floor int64
	// gaps are the ids below since the client has not had (its position's
	// gaps): the hub sends them when it reads them.
	gaps map[int64]bool
	// replayed holds replayed ids the hub had not read yet.
	replayed map[int64]bool
}

func (c *catchUp) skip(id int64) bool {
	if c.replayed[id] {
		delete(c.replayed, id)
		return true
	}
	return id > c.floor && id <= c.since && !c.gaps[id]
}

// Close ends every subscription (with ErrClosed) and refuses new ones. The
// HTTP server calls it when it starts shutting down, so that open streams
// end instead of holding the shutdown up; Run calls it when it returns.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for sub := range h.subs {
		h.dropLocked(sub, ErrClosed)
	}
}

func (h *Hub) dropLocked(sub *Subscription, reason error) {
	if sub.done {
		return
	}
	sub.done, sub.err = true, reason
	delete(h.subs, sub)
	if sub.ch != nil {
		close(sub.ch)
	}
	if reason == ErrSlow {
		h.log.Info("events: dropped a slow subscriber")
	}
}

// Subscription is one subscriber's queue of events.
type Subscription struct {
	hub    *Hub
	filter func(Event) bool
	ch     chan Event

	// Guarded by hub.mu.
	holding bool    // a replay is being read: live events wait in held
	held    []Event // live events that arrived during the replay
	catchUp *catchUp
	done    bool
	err     error
}

// Events is the subscription's queue, in the order the hub read them. It is
// closed when the subscription ends; Err then says why.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Err is why the queue was closed: ErrSlow, ErrClosed, or nil when the
// subscriber closed it (or it is still open).
func (s *Subscription) Err() error {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	return s.err
}

// Close ends the subscription. It is safe to call more than once.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	s.hub.dropLocked(s, nil)
}

// Subscribe returns a subscription to the events filter takes (nil: all).
// filter is called with the hub's lock held, for every event: it must be
// quick and must not block. From a position (a reconnecting client's
// Last-Event-ID; the zero Position: none) what the client has not had is
// replayed first, from the table, within the window: the events after
// from.Last, and those of its gaps that have committed since. When that
// cannot be done (from.Last is older than the window or unknown, or too many
// events followed it), the first event is a Reset instead. Live events
// follow without a gap or a repeat; a gap that commits later is sent then.
func (h *Hub) Subscribe(ctx context.Context, filter func(Event) bool, from Position) (*Subscription, error) {
	sub := &Subscription{hub: h, filter: filter, holding: from.Last > 0}
	if !sub.holding {
		sub.ch = make(chan Event, h.opts.Buffer)
	} else if err := h.awaitReady(ctx); err != nil {
		return nil, err
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	h.subs[sub] = struct{}{}
	if sub.holding {
		// Until the hub has read past from.Last, what it reads above its
		// current position the client has had, but for its gaps.
		gaps := make(map[int64]bool, len(from.Gaps))
		for _, id := range from.Gaps {
			gaps[id] = true
		}
		sub.catchUp = &catchUp{since: from.Last, floor: h.last, gaps: gaps, replayed: map[int64]bool{}}
	}
	h.mu.Unlock()
	if !sub.holding {
		return sub, nil
	}
	// Registered before the replay is read: an event committed after the
	// read began is held as it arrives; one committed before is in the
	// replay, and if the hub reads it later it is skipped then.
	replay, err := h.replay(ctx, from)
	if err != nil {
		sub.Close()
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if sub.done {
		return nil, sub.err
	}
	var out []Event
	if len(replay) == 1 && replay[0].Type == Reset {
		// The client reloads: nothing to skip on its account.
		sub.catchUp = nil
		out = append(replay, sub.held...)
	} else {
		out = h.resumeLocked(sub, from, replay)
	}
	sub.ch = make(chan Event, len(out)+h.opts.Buffer)
	for _, ev := range out {
		sub.ch <- ev
	}
	sub.holding, sub.held = false, nil
	if c := sub.catchUp; c != nil && len(c.replayed) == 0 && h.last >= c.since {
		sub.catchUp = nil
	}
	return sub, nil
}

// readyWait bounds how long a resuming subscriber waits for a hub that is
// not listening yet.
const readyWait = 5 * time.Second

// ErrNotReady: a subscriber resuming from a position came before the hub
// first listened (the process is starting, its database away); it should
// try again.
var ErrNotReady = gridwatch.Errorf(gridwatch.EUnavailable, "live events are starting: reconnect with Last-Event-ID in a moment")

// awaitReady waits until the hub listens: only then does it know where it
// starts reading, which a replay's catch-up is measured against.
func (h *Hub) awaitReady(ctx context.Context) error {
	t := time.NewTimer(readyWait)
	defer t.Stop()
	select {
	case <-h.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return ErrNotReady
	}
}

// resumeLocked returns what a resuming subscriber is sent first: the replay
// its filter takes, then the live events held meanwhile that the replay did
// not have, each with the client's position once it has it. Replayed ids the
// hub has yet to read are marked, to be skipped when it does.
func (h *Hub) resumeLocked(sub *Subscription, from Position, replay []Event) []Event {
	c := sub.catchUp
	seen := make(map[int64]bool, len(replay)+len(sub.held))
	for _, ev := range replay {
		seen[ev.ID] = true
		if _, gap := h.gaps[ev.ID]; ev.ID > h.last || gap {
			c.replayed[ev.ID] = true
		}
	}
	var held []Event
	for _, ev := range sub.held {
		if !seen[ev.ID] {
			seen[ev.ID] = true
			held = append(held, ev)
		}
	}
	// A gap of the client's that did not commit yet, below what this hub
	// has read but not among its gaps (this process started after the id
	// was taken, or the client comes from another process), becomes one
	// of the hub's: it is sent when it commits. Client gaps take at most
	// half of the hub's room for gaps, so that a forged header cannot
	// crowd out the real ones.
	now := time.Now()
	for _, id := range from.Gaps {
		if _, gap := h.gaps[id]; !seen[id] && id <= h.last && !gap && len(h.gaps) < maxGap/2 {
			h.addGapLocked(id, now)
		}
	}
	// An id missing from both may still commit unless the hub has read past
	// it without waiting for it (it was read before, or given up on).
	mayCommit := func(id int64) bool {
		_, gap := h.gaps[id]
		return seen[id] || id > h.last || gap
	}
	t := tracker{last: from.Last, mayCommit: mayCommit, dirty: true}
	for _, id := range from.Gaps {
		if mayCommit(id) {
			t.gaps.add(id)
		}
	}
	out := make([]Event, 0, len(replay)+len(held))
	for _, ev := range replay {
		ev.Pos = t.after(ev.ID)
		if sub.filter == nil || sub.filter(ev) {
			out = append(out, ev)
		}
	}
	for _, ev := range held {
		ev.Pos = t.after(ev.ID)
		out = append(out, ev)
	}
	return out
}

// tracker follows a client's position through the events it is sent.
type tracker struct {
	last      int64
	gaps      gapList
	mayCommit func(id int64) bool // whether an id skipped over is a gap
	pos       Position            // the position, as of the last change
	dirty     bool
}

func (t *tracker) after(id int64) Position {
	if id <= t.last {
		if t.gaps.remove(id) {
			t.dirty = true
		}
	} else {
		if id-t.last <= maxGap {
			for g := t.last + 1; g < id && len(t.gaps) < maxGap; g++ {
				if t.mayCommit(g) {
					t.gaps.add(g)
				}
			}
		}
		t.last, t.dirty = id, true
	}
	if t.dirty {
		t.pos, t.dirty = capped(t.last, t.gaps), false
	}
	return t.pos
}

// replay reads the events the client at from has not had, or a Reset when
// they cannot all be had.
func (h *Hub) replay(ctx context.Context, from Position) ([]Event, error) {
	// The event at from.Last, or the one before it (an id that was never
	// committed, as a position below a gap may name), dates the position.
	var inWindow, known bool
	err := h.pool.QueryRow(ctx, `SELECT at >= now() - make_interval(secs => $2), $1 <= (SELECT max(id) FROM events)
		FROM events WHERE id <= $1 ORDER BY id DESC LIMIT 1`,
		from.Last, h.opts.Window.Seconds()).Scan(&inWindow, &known)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("replay after %s: %w", from, err)
	}
	reason := "the last event seen is older than the replay window"
	if !known {
		reason = "the last event seen is unknown or older than the replay window"
	}
	if inWindow && known {
		gaps := from.Gaps
		if gaps == nil {
			gaps = []int64{}
		}
		rows, err := h.pool.Query(ctx, selectEvents+" WHERE id > $1 OR id = ANY($2) ORDER BY id LIMIT $3", from.Last, gaps, maxReplay+1)
		if err != nil {
			return nil, fmt.Errorf("replay after %s: %w", from, err)
		}
		evs, err := pgx.CollectRows(rows, scanEvent)
		if err != nil {
			return nil, fmt.Errorf("replay after %s: %w", from, err)
		}
		if len(evs) <= maxReplay {
			return evs, nil
		}
		reason = "too many events to replay"
	}
	var newest int64
	if err := h.pool.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM events").Scan(&newest); err != nil {
		return nil, fmt.Errorf("replay after %s: %w", from, err)
	}
	// The client reloads what is committed now; what commits later below
	// newest it is sent on resuming from the reset's position.
	missing, err := missingBelow(ctx, h.pool, newest)
	if err != nil {
		return nil, fmt.Errorf("replay after %s: %w", from, err)
	}
	data, _ := json.Marshal(map[string]any{"reason": reason, "last_event_id": from.String()})
	return []Event{{ID: newest, At: time.Now(), Type: Reset, Data: data, Pos: capped(newest, missing)}}, nil
}
