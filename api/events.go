package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"gridwatch"
	"gridwatch/api/httpapi"
	"gridwatch/auth"
	"gridwatch/geo"
	"gridwatch/incident"
	"gridwatch/internal/events"
)

const (
	// sseWriteTimeout bounds each write of a stream: the server's
	// WriteTimeout would cut a long-lived stream, none at all would let a
	// client that stopped reading hold the handler forever.
	sseWriteTimeout = 30 * time.Second
	// sseRetryMillis is the reconnection delay EventSource is told to use.
	sseRetryMillis = 3000
)

// streamEvents is GET /api/v1/events: Server-Sent Events of the changes the
// principal may see. Last-Event-ID (or ?last_event_id=, for EventSource
// polyfills) replays what was missed within the hub's window. A scoped
// principal gets only the events of grids in its scope (the scope's grids
// are read once, at subscribe time); events bound to no grid go to unscoped
// principals only. Integration tokens are refused: they read the status of
// their own reports through the incidents API.
func (s *Server) streamEvents(c *gin.Context) error {
	p := httpapi.Principal(c)
	if p.Role == auth.RoleIntegration {
		return gridwatch.Errorf(gridwatch.EForbidden,
			"integration tokens do not receive live events; read your reports with GET /api/v1/incidents")
	}
	hub := s.deps.Events
	if hub == nil {
		return gridwatch.Errorf(gridwatch.EUnavailable, "live events are not available on this server")
	}
	last, err := lastEventID(c)
	if err != nil {
		return err
	}
	ctx := c.Request.Context()
	filter, scope, err := s.eventFilter(ctx, p)
	if err != nil {
		return err
	}
	sub, err := hub.Subscribe(ctx, filter, last)
	if err != nil {
		return err
	}
	defer func() { sub.Close() }()
	pos := last           // the client's position: what the last event sent said
	var resumed time.Time // when the stream last resumed itself

	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
	rc := http.NewResponseController(c.Writer)
	write := func(b []byte) error {
		if err := rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		if _, err := c.Writer.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	// The first bytes tell the client the subscription is in place.
	if write([]byte("retry: "+strconv.Itoa(sseRetryMillis)+"\n: connected\n\n")) != nil {
		return nil
	}
	heartbeat := time.NewTicker(hub.Heartbeat())
	defer heartbeat.Stop()
	// The stream ends when its session or token does (logout, expiry,
	// a disabled account, a revoked token): recheck it now and then.
	every := s.deps.EventsRecheck
	if every <= 0 {
		every = 30 * time.Second
	}
	recheck := time.NewTicker(every)
	defer recheck.Stop()
	var buf bytes.Buffer
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-sub.Events():
			if !ok {
				if next := s.resumeSlow(ctx, sub, filter, pos, &resumed); next != nil {
					sub = next
					continue
				}
				// The server is stopping, or the client cannot keep up: it
				// reconnects with the last id it saw.
				s.log.Debug("event stream ended", "reason", sub.Err(), "request_id", c.GetString("request_id"))
				return nil
			}
			if pos = ev.Pos; pos.Last == 0 && len(pos.Gaps) == 0 {
				pos.Last = ev.ID
			}
			buf.Reset()
			if ev.Type == events.IncidentsBulk {
				ev.Data = bulkEventFor(ev.Data, scope)
			}
			writeEvent(&buf, ev)
			if write(buf.Bytes()) != nil {
				return nil
			}
			heartbeat.Reset(hub.Heartbeat())
		case <-heartbeat.C:
			if write([]byte(": ping\n\n")) != nil {
				return nil
			}
		case <-recheck.C:
			if _, err := s.authenticate(c, false); err != nil {
				_ = write([]byte("event: unauthenticated\ndata: {}\n\n"))
				return nil
			}
		}
	}
}

// slowResumeEvery is how often a stream may resume itself after falling
// behind; one that falls behind again sooner ends, and its client reconnects.
const slowResumeEvery = 10 * time.Second

// resumeSlow takes a stream that fell behind the feed (a burst, such as the
// feed catching up after the database came back, overflowed its queue) on
// from the table, from the client's position, without the client's
// reconnection and retry delay. It waits a moment first, up to half a
// second at random, so that streams dropped by one burst do not all read
// the table at once. It returns nil when the stream should end instead.
func (s *Server) resumeSlow(ctx context.Context, sub *events.Subscription, filter func(events.Event) bool,
	pos events.Position, resumed *time.Time) *events.Subscription {
	if !errors.Is(sub.Err(), events.ErrSlow) || pos.Last == 0 || time.Since(*resumed) < slowResumeEvery {
		return nil
	}
	pause := time.NewTimer(rand.N(500 * time.Millisecond))
	defer pause.Stop()
	select {
	case <-ctx.Done():
		return nil
	case <-pause.C:
	}
	next, err := s.deps.Events.Subscribe(ctx, filter, pos)
	if err != nil {
		s.log.Debug("event stream could not resume", "err", err)
		return nil
	}
	*resumed = time.Now()
	return next
}

// writeEvent formats ev as one Server-Sent Event. Its id is the client's
// position once it has ev (events.Position). A Reset with no event to resume
// from sends an empty id, which clears the client's stale one.
func writeEvent(buf *bytes.Buffer, ev events.Event) {
	buf.WriteString("id:")
	pos := ev.Pos
	if pos.Last == 0 && len(pos.Gaps) == 0 {
		pos.Last = ev.ID
	}
	if pos.Last > 0 {
		buf.WriteByte(' ')
		buf.WriteString(pos.String())
	}
	buf.WriteString("\nevent: ")
	buf.WriteString(ev.Type)
	buf.WriteString("\ndata: ")
	buf.Write(ev.Data) // compact JSON: one line
	buf.WriteString("\n\n")
}

// lastEventID reads the position a reconnecting client last had (the zero
// Position: none).
func lastEventID(c *gin.Context) (events.Position, error) {
	if v := c.GetHeader("Last-Event-ID"); v != "" {
		pos, err := events.ParsePosition(v)
		if err != nil {
			return pos, gridwatch.Errorf(gridwatch.EInvalid, "header Last-Event-ID=%q: %v: want an id this stream sent", v, err).
				WithDetails(map[string]any{"header": "Last-Event-ID", "value": v})
		}
		return pos, nil
	}
	if v := c.Query("last_event_id"); v != "" {
		pos, err := events.ParsePosition(v)
		if err != nil {
			return pos, httpapi.ParamError("last_event_id", v, err.Error()+": want an id this stream sent")
		}
		return pos, nil
	}
	return events.Position{}, nil
}

// eventPermission is the permission events of a kind (the type's prefix
// before the dot) need. A kind not listed reaches no one: a new kind of
// event must be added here with its rule.
func eventPermission(kind string) (auth.Permission, bool) {
	switch kind {
	case "incident":
		return auth.IncidentsRead, true
	case "grid":
		return auth.GridsRead, true
	case "camera":
		return auth.CamerasRead, true
	case "recording":
		return auth.VideoPlayback, true
	case "gb":
		// GB/T 28181 devices: for those who manage cameras.
		return auth.CamerasWrite, true
	case "patrol":
		// Patrols: for the command centre; a member also hears of their
		// own (ownPatrolEvent), and a scoped viewer of the patrols that
		// touched its grids (the event's "grids").
		return auth.PatrolsRead, true
	}
	return "", false
}

// bulkEventFor is what a subscriber with scope (nil: all grids) is told of
// an incident.bulk event: the count and ids of the new cases it may see, and
// "more" when it was not told every id (it reloads its list then); nothing
// of other grids' cases.
func bulkEventFor(data json.RawMessage, scope map[int64]bool) json.RawMessage {
	v, err := incident.ViewBulkEvent(data, func(g int64) bool { return scope == nil || (g != 0 && scope[g]) })
	if err != nil {
		v = incident.BulkEventView{IDs: []int64{}, More: true}
	}
	out := map[string]any{"created": v.Created, "ids": v.IDs, "more": v.More}
	if scope != nil {
		out["in_scope"] = true
	}
	b, _ := json.Marshal(out)
	return b
}

// eventFilter returns the test an event must pass to reach p: the
// permission its kind needs and, for a scoped principal, a grid in p's
// scope; and that scope, every grid of it (nil: unscoped).
func (s *Server) eventFilter(ctx context.Context, p *auth.Principal) (func(events.Event) bool, map[int64]bool, error) {
	var scope map[int64]bool
	if p.Scoped() {
		grids, _, err := s.deps.Grids.List(ctx, geo.Filter{Scope: p.ScopeIDs()})
		if err != nil {
			return nil, nil, err
		}
		scope = make(map[int64]bool, len(grids))
		for _, g := range grids {
			scope[g.ID] = true
		}
	}
	allowed := map[string]bool{}
	return func(ev events.Event) bool {
		kind, _, _ := strings.Cut(ev.Type, ".")
		if kind == "patrol" && ownPatrolEvent(ev, p) {
			return true
		}
		ok, known := allowed[kind]
		if !known {
			perm, listed := eventPermission(kind)
			ok = listed && p.Can(perm)
			allowed[kind] = ok // the hub calls the filter from one goroutine at a time
		}
		if !ok {
			return false
		}
		if scope == nil {
			return true
		}
		if ev.GridID == nil && kind == "recording" {
			return true // the recordings' disk is everyone's
		}
		if ev.Type == events.GridChanged && namesGridIn(ev, scope) {
			// A boundary change names every grid it touched (a move of an
			// edge, a split, a merge): a viewer of any of them hears of it.
			return true
		}
		if kind == "patrol" && namesGridIn(ev, scope) {
			// A patrol's events name every grid it touched: a scoped
			// viewer who may see the patrol follows all of it.
			return true
		}
		if ev.GridID == nil && ev.Type == events.IncidentsBulk {
			// A bulk upload names the grids it touched: a scoped viewer
			// hears of it when one of them is theirs.
			return namesGridIn(ev, scope)
		}
		return ev.GridID != nil && scope[*ev.GridID]
	}, scope, nil
}

// ownPatrolEvent reports whether ev is about a patrol of p's own (data
// {"user_id"}): its member hears of it, patrols.read or not.
func ownPatrolEvent(ev events.Event, p *auth.Principal) bool {
	if p.Kind != "user" {
		return false
	}
	var d struct {
		UserID int64 `json:"user_id"`
	}
	return json.Unmarshal(ev.Data, &d) == nil && d.UserID == p.ID
}

// namesGridIn reports whether an event that lists the grids it touched
// (data {"grids":[…]}) names one in scope.
func namesGridIn(ev events.Event, scope map[int64]bool) bool {
	var d struct {
		Grids []int64 `json:"grids"`
	}
	_ = json.Unmarshal(ev.Data, &d)
	for _, g := range d.Grids {
		if scope[g] {
			return true
		}
	}
	return false
}
