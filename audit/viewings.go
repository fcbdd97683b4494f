package audit

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"gridwatch/internal/database"
)

// Viewing kinds: live video or recorded footage.
const (
	Live     = "live"
	Playback = "playback"
)

// Viewing protocols as recorded. The column is an open string, so a new
// output (WebRTC) needs no migration.
const (
	ProtoMSE  = "mse"    // fMP4 over a WebSocket
	ProtoHLS  = "hls"    // live HLS, or the playback playlist and its byte ranges
	ProtoRTSP = "rtsp"   // the RTSP re-serve
	ProtoFile = "mp4"    // a recorded file fetched on its own
	ProtoRTC  = "webrtc" // WebRTC (WHEP)
	ProtoJPEG = "jpeg"   // a snapshot: the latest keyframe as a still
)

// Viewing is one session of watching a camera: who, how, which camera and
// stream (or, for footage, which range), from where, from when to when.
// EndedAt is nil while the session is open.
type Viewing struct {
	ID         int64      `json:"id"`
	Session    string     `json:"session"`
	Actor      Actor      `json:"actor"`
	Kind       string     `json:"kind"`
	Protocol   string     `json:"protocol"`
	Camera     int64      `json:"camera_id"`
	CameraCode string     `json:"camera_code,omitempty"`
	Stream     string     `json:"stream,omitempty"`
	From       *time.Time `json:"from,omitempty"`
	To         *time.Time `json:"to,omitempty"`
	IP         string     `json:"ip"`
	StartedAt  time.Time  `json:"started_at"`
	EndedAt    *time.Time `json:"ended_at"`
	Bytes      int64      `json:"bytes"`
}

// ViewLogOptions tune a ViewLog; zero fields take the defaults.
type ViewLogOptions struct {
	// Queue bounds the rows waiting to be written (default 4096). When it
	// is full a row is dropped and counted, never waited for.
	Queue int
	// Batch is how many rows are written at once (default 256): a full
	// batch is written at once, a partial one every FlushEvery.
	Batch int
	// FlushEvery is the longest a row waits (default 1 s).
	FlushEvery time.Duration
	// IdleGap ends an HTTP session (HLS, playback) that has had no request
	// for this long (default 30 s).
	IdleGap time.Duration
	Logger  *slog.Logger
}

// ViewLog records viewing sessions without slowing the video: starting,
// touching and ending a session only put a row on a bounded in-memory
// queue (or drop and count it when full); Run writes the queue in batches.
// A nil *ViewLog records nothing.
type ViewLog struct {
	pool *pgxpool.Pool
	opt  ViewLogOptions
	log  *slog.Logger
	now  func() time.Time

	// queue holds pointers: a full buffer of rows themselves, made at
	// start, was a megabyte of heap on every node.
	queue   chan *Viewing
	stopped atomic.Bool

	mu   sync.Mutex
	http map[httpKey]*ViewSession

	open                     atomic.Int64
	written, dropped, failed atomic.Uint64
	descs                    [5]*prometheus.Desc
}

// httpKey groups HTTP requests into one session: one principal, from one
// address, watching one camera stream, live or recorded.
type httpKey struct {
	actorKind, actorName, ip string
	actorID                  int64
	camera                   int64
	stream, kind             string
}

// NewViewLog returns a view log writing to pool; call Run to write.
func NewViewLog(pool *pgxpool.Pool, opt ViewLogOptions) *ViewLog {
	if opt.Queue <= 0 {
		opt.Queue = 4096
	}
	if opt.Batch <= 0 {
		opt.Batch = 256
	}
	if opt.FlushEvery <= 0 {
		opt.FlushEvery = time.Second
	}
	if opt.IdleGap <= 0 {
		opt.IdleGap = 30 * time.Second
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("gridwatch_viewings_"+name, help, nil, nil)
	}
	return &ViewLog{pool: pool, opt: opt, log: log, now: time.Now,
		queue: make(chan *Viewing, opt.Queue), http: map[httpKey]*ViewSession{},
		descs: [5]*prometheus.Desc{
			d("open", "viewing sessions open now"),
			d("queued", "viewing-session rows waiting to be written"),
			d("written_total", "viewing-session rows written"),
			d("dropped_total", "viewing-session rows dropped because the queue was full or the database failed"),
			d("write_errors_total", "failed writes of viewing-session rows (retried until the queue overflows)"),
		}}
}

// ViewSession is an open viewing session. Its methods are safe on nil.
type ViewSession struct {
	l     *ViewLog
	bytes atomic.Int64
	once  sync.Once

	// Guarded by l.mu for HTTP sessions; fixed for the others.
	v    Viewing
	last time.Time
}

// Start opens a session for v (Actor, Kind, Protocol, Camera, Stream, From
// and To, IP) now and queues its start row. End it with End.
func (l *ViewLog) Start(v Viewing) *ViewSession {
	if l == nil {
		return nil
	}
	s := l.begin(v, l.now())
	l.enqueue(s.v)
	return s
}

func (l *ViewLog) begin(v Viewing, at time.Time) *ViewSession {
	v.ID, v.EndedAt, v.Bytes, v.CameraCode = 0, nil, 0, ""
	v.Session = newSessionID()
	v.StartedAt = at
	v.IP = hostOf(v.IP)
	l.open.Add(1)
	return &ViewSession{l: l, v: v, last: at}
}

// Add counts n bytes sent to the viewer.
func (s *ViewSession) Add(n int64) {
	if s != nil && n > 0 {
		s.bytes.Add(n)
	}
}

// End closes the session now and queues its end row; later calls do nothing.
func (s *ViewSession) End() {
	if s == nil {
		return
	}
	s.endAt(s.l.now())
}

func (s *ViewSession) endAt(at time.Time) {
	s.once.Do(func() {
		v := s.v
		if at.Before(v.StartedAt) {
			at = v.StartedAt
		}
		v.EndedAt = &at
		v.Bytes = s.bytes.Load()
		s.l.open.Add(-1)
		s.l.enqueue(v)
	})
}

// Touch records one HTTP request of a viewing that is a series of them
// (HLS playlists and segments, a playback playlist and its byte ranges):
// requests of one principal, from one address, for one camera, stream and
// kind, each within IdleGap of the last, are one session, which ends at its
// last request once the gap has passed. n is the bytes the request sent.
// A footage range widens the session's range, except that the ranges of
// files fetched under a playlist do not (the playlist says what was asked).
func (l *ViewLog) Touch(v Viewing, n int64) {
	if l == nil {
		return
	}
	now := l.now()
	k := httpKey{actorKind: v.Actor.Kind, actorName: v.Actor.Name, actorID: v.Actor.ID, ip: hostOf(v.IP),
		camera: v.Camera, stream: v.Stream, kind: v.Kind}
	l.mu.Lock()
	s := l.http[k]
	if s != nil && now.Sub(s.last) > l.opt.IdleGap {
		// The gap passed before the reaper saw it: that session is over.
		delete(l.http, k)
		s.endAt(s.last)
		s = nil
	}
	if s == nil {
		s = l.begin(v, now)
		l.http[k] = s
		s.Add(n)
		start := s.v
		l.mu.Unlock()
		l.enqueue(start)
		return
	}
	s.last = now
	if v.From != nil && v.To != nil && (v.Protocol != ProtoFile || s.v.Protocol == ProtoFile) {
		if s.v.From == nil || v.From.Before(*s.v.From) {
			f := *v.From
			s.v.From = &f
		}
		if s.v.To == nil || v.To.After(*s.v.To) {
			t := *v.To
			s.v.To = &t
		}
	}
	s.Add(n)
	l.mu.Unlock()
}

// reap ends the HTTP sessions idle for longer than the gap at now (all of
// them when now is zero), each at its last request.
func (l *ViewLog) reap(now time.Time) {
	l.mu.Lock()
	var ended []*ViewSession
	for k, s := range l.http {
		if now.IsZero() || now.Sub(s.last) > l.opt.IdleGap {
			delete(l.http, k)
			ended = append(ended, s)
		}
	}
	// endAt reads v, which Touch changes under mu: end while holding it.
	for _, s := range ended {
		s.endAt(s.last)
	}
	l.mu.Unlock()
}

// enqueue puts a row on the queue, or drops and counts it: the video path
// never waits for the database.
func (l *ViewLog) enqueue(v Viewing) {
	if l.stopped.Load() {
		l.dropped.Add(1)
		return
	}
	select {
	case l.queue <- &v:
	default:
		l.dropped.Add(1)
	}
}

// Watching is how many viewing sessions are open now: the people
// watching through this node, live or recorded (not the recorders, nor
// another node's relay).
func (l *ViewLog) Watching() int {
	if l == nil {
		return 0
	}
	return int(l.open.Load())
}

// Dropped is the number of rows dropped so far.
func (l *ViewLog) Dropped() uint64 { return l.dropped.Load() }

// Written is the number of rows written so far.
func (l *ViewLog) Written() uint64 { return l.written.Load() }

// Run writes queued rows until ctx ends: a batch when Batch rows are
// waiting, else every FlushEvery, and ends HTTP sessions whose gap has
// passed. When ctx ends it ends the open HTTP sessions, writes what is
// queued (within 10 s) and returns; rows queued later are dropped.
func (l *ViewLog) Run(ctx context.Context) error {
	tick := time.NewTicker(l.opt.FlushEvery)
	defer tick.Stop()
	pending := make([]Viewing, 0, l.opt.Batch)
	for {
		select {
		case <-ctx.Done():
			l.reap(time.Time{})
			l.stopped.Store(true)
			pending = l.drain(pending)
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if len(pending) > 0 {
				if err := l.write(fctx, pending); err != nil {
					l.dropped.Add(uint64(len(pending)))
					l.log.Error("viewing sessions: final write failed", "rows", len(pending), "err", err)
				}
			}
			return nil
		case v := <-l.queue:
			pending = append(pending, *v)
			if len(pending) >= l.opt.Batch {
				pending = l.flush(ctx, pending)
			}
		case <-tick.C:
			l.reap(l.now())
			pending = l.flush(ctx, l.drain(pending))
		}
	}
}

// drain moves what is queued now onto pending.
func (l *ViewLog) drain(pending []Viewing) []Viewing {
	for {
		select {
		case v := <-l.queue:
			pending = append(pending, *v)
		default:
			return pending
		}
	}
}

// flush writes pending and returns what is left to retry: nothing, or on
// failure the newest rows up to the queue's bound (older ones are dropped
// and counted).
func (l *ViewLog) flush(ctx context.Context, pending []Viewing) []Viewing {
	for len(pending) > 0 {
		n := min(len(pending), l.opt.Batch)
		if err := l.write(ctx, pending[:n]); err != nil {
			l.failed.Add(1)
			if ctx.Err() == nil {
				l.log.Warn("viewing sessions: write failed, will retry", "rows", len(pending), "err", err)
			}
			if over := len(pending) - l.opt.Queue; over > 0 {
				l.dropped.Add(uint64(over))
				pending = append(pending[:0], pending[over:]...)
			}
			return pending
		}
		pending = append(pending[:0], pending[n:]...)
	}
	return pending
}

// upsertViewing writes a start row (ended_at NULL) or completes an open one;
// an end whose start never arrived inserts the whole row. Written again, a
// row changes nothing, so a retried batch is harmless.
const upsertViewing = `INSERT INTO viewing_sessions AS v (session, actor_kind, actor_id, actor_name, kind, protocol,
	camera_id, stream, range_from, range_to, ip, started_at, ended_at, bytes)
	VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
	ON CONFLICT (session) DO UPDATE SET ended_at = EXCLUDED.ended_at, bytes = EXCLUDED.bytes,
		range_from = EXCLUDED.range_from, range_to = EXCLUDED.range_to
	WHERE v.ended_at IS NULL AND EXCLUDED.ended_at IS NOT NULL`

// write sends rows in one batch, in one transaction.
func (l *ViewLog) write(ctx context.Context, rows []Viewing) error {
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, v := range rows {
			var actorID *int64
			if v.Actor.ID != 0 {
				actorID = &v.Actor.ID
			}
			b.Queue(upsertViewing, v.Session, v.Actor.Kind, actorID, v.Actor.Name, v.Kind, v.Protocol,
				v.Camera, v.Stream, v.From, v.To, v.IP, v.StartedAt, v.EndedAt, v.Bytes)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("write %d viewing sessions: %w", len(rows), err)
	}
	l.written.Add(uint64(len(rows)))
	return nil
}

// Describe implements prometheus.Collector.
func (l *ViewLog) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range l.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (l *ViewLog) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(l.descs[0], prometheus.GaugeValue, float64(l.open.Load()))
	ch <- prometheus.MustNewConstMetric(l.descs[1], prometheus.GaugeValue, float64(len(l.queue)))
	ch <- prometheus.MustNewConstMetric(l.descs[2], prometheus.CounterValue, float64(l.written.Load()))
	ch <- prometheus.MustNewConstMetric(l.descs[3], prometheus.CounterValue, float64(l.dropped.Load()))
	ch <- prometheus.MustNewConstMetric(l.descs[4], prometheus.CounterValue, float64(l.failed.Load()))
}

// newSessionID is a random (version 4) UUID.
func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// hostOf is the host of an address that may carry a port.
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// ViewingFilter selects viewing sessions; zero fields match everything.
type ViewingFilter struct {
	// Camera is a camera's id or code.
	Camera string
	// Actor is the user's or token's name.
	Actor string
	Kind  string
	// From and To select sessions open at some time in [From, To).
	From, To time.Time
	Before   int64 // cursor: sessions with a smaller id
	Limit    int
}

// Viewings returns viewing sessions newest first (by start) and the cursor
// of the next page (0: none).
func (s *Store) Viewings(ctx context.Context, f ViewingFilter) ([]Viewing, int64, error) {
	var w database.Where
	if f.Camera != "" {
		if id, err := strconv.ParseInt(f.Camera, 10, 64); err == nil {
			w.Add("(v.camera_id = ? OR c.code = ?)", id, f.Camera)
		} else {
			w.Add("c.code = ?", f.Camera)
		}
	}
	w.Eq("v.actor_name", f.Actor)
	w.Eq("v.kind", f.Kind)
	w.AddTime("(v.ended_at IS NULL OR v.ended_at >= ?)", f.From)
	w.AddTime("v.started_at < ?", f.To)
	q := `SELECT v.id, v.session::text, v.actor_kind, COALESCE(v.actor_id, 0), v.actor_name, v.kind, v.protocol,
		v.camera_id, COALESCE(c.code, ''), v.stream, v.range_from, v.range_to, v.ip, v.started_at, v.ended_at, v.bytes
		FROM viewing_sessions v LEFT JOIN cameras c ON c.id = v.camera_id`
	out, next, err := database.QueryPage(ctx, s.pool, q, w, database.Keyset{Key: "v.id", Desc: true, Cursor: f.Before, Limit: f.Limit},
		func(r pgx.CollectableRow) (Viewing, error) {
			var v Viewing
			err := r.Scan(&v.ID, &v.Session, &v.Actor.Kind, &v.Actor.ID, &v.Actor.Name, &v.Kind, &v.Protocol,
				&v.Camera, &v.CameraCode, &v.Stream, &v.From, &v.To, &v.IP, &v.StartedAt, &v.EndedAt, &v.Bytes)
			return v, err
		}, func(v Viewing) int64 { return v.ID })
	if err != nil {
		return nil, 0, fmt.Errorf("viewings: %w", err)
	}
	return out, next, nil
}
