// Package rtspserve re-serves camera streams over RTSP, so that VLC, ffmpeg
// and other video systems pull live video through gridwatch instead of from
// the cameras: rtsp://HOST:PORT/cameras/{id} is a camera's main stream and
// rtsp://HOST:PORT/cameras/{id}/sub its sub stream. Clients authenticate
// with an API token, in the URL (?token=…) or as the password of Basic
// credentials.
//
// The server speaks the little of RTSP (RFC 2326) a viewer needs: OPTIONS,
// DESCRIBE, SETUP, PLAY, TEARDOWN and keepalives, over interleaved TCP; the
// messages themselves are parsed and written by gortsplib's pkg/base and
// pkg/headers, the SDP by pkg/description. gortsplib's own server is not
// used: it gives every viewer five goroutines and queues of its own, which
// at 50 viewers a camera were most of the relay's memory and a good part of
// its CPU (see conn). Here a connection has one goroutine, which reads and
// answers requests, and a playing session one more, its writer.
//
// DESCRIBE authorises the client first (Config.Access), then acquires the
// camera's stream.Hub (Config.Acquire), waits for its codec parameters and
// answers an SDP with the video medium (and the audio, when the camera has
// sound). Each acquisition is released exactly once: when the session that
// took it over ends, or with the connection when no SETUP followed.
//
// # Per-session writes
//
// Every playing session has its own hub viewer (stream.Hub.Subscribe), so a
// new client starts at once from the hub's cached group of pictures instead
// of waiting for the next keyframe, and a slow client is skipped ahead or
// dropped by the hub without delaying anybody else. Its writer writes its
// pictures to that session only, with its own SSRC (the one SETUP
// announced), its own sequence numbers and its own timestamp base (RTP
// timestamp = random base + PTS), and an RTCP sender report every few
// seconds.
//
// The H.264 packetisation itself (rtph264.Encoder: single NAL unit, STAP-A,
// FU-A) does not depend on the session, so it is done once per picture per
// hub and shared by the hub's sessions, which only write their own 12-byte
// header in front of each payload (see packetCache). Encoding per session
// cost about a third of the server's CPU at 50 viewers.
//
// # Batching
//
// A writer frames its RTP packets as RTSP interleaved frames ('$', channel,
// length) into a buffer from a pool shared by all sessions and hands
// everything that viewer.Next returned (one picture when the client keeps
// up, a backlog or the cached GOP when it does not) to the socket in a
// single write: one system call per picture per viewer. The writer starts
// only once the PLAY response is out, and a connection's responses and
// media are written under one lock, so keepalive answers never land inside
// a frame. A client that stops reading blocks only its own writer, until
// the write deadline closes its connection; the hub skips or drops its
// viewer meanwhile.
//
// Only the TCP (interleaved) transport is offered. UDP needs a fixed, even
// RTP port and the next one for RTCP, which ":0" cannot give; a client
// asking for UDP gets 461 Unsupported Transport and falls back to TCP
// (ffmpeg and VLC do).
//
// Tokens never reach the logs: requests are logged by path, camera and
// stream, never by URL (its query holds the token) or headers.
package rtspserve

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"gridwatch"
	"gridwatch/camera/stream"
	"gridwatch/internal/database"
)

// Stream names, as Acquire receives them.
const (
	StreamMain = "main" // rtsp://HOST:PORT/cameras/{id}
	StreamSub  = "sub"  // rtsp://HOST:PORT/cameras/{id}/sub
)

// DefaultReadyTimeout is how long DESCRIBE waits for a camera's first
// picture when Config.ReadyTimeout is zero.
const DefaultReadyTimeout = 10 * time.Second

// defaultWriteTimeout bounds one write to a client. A client that accepts
// nothing for that long is closed. Until then it holds up only its own
// writer: the hub skips or drops its viewer, never waits for it.
const defaultWriteTimeout = 10 * time.Second

// Access authorises an RTSP client for one camera. token is the API token
// the client presented: from the URL query ?token=… or as the password of
// Basic credentials (any user name); it is "" when none was presented. It
// returns nil when allowed, or an error that gridwatch.ErrorCode maps to
// gridwatch.EUnauthenticated (RTSP 401 with a WWW-Authenticate Basic
// challenge), gridwatch.EForbidden (403) or gridwatch.ENotFound (404).
type Access func(ctx context.Context, token string, cameraID int64) error

// Acquire returns the hub of a camera stream (StreamMain or StreamSub),
// started on demand, and a release func that the server calls exactly once
// when the client is gone. ctx bounds the call, not the stream: the stream
// lives until release. On error nothing was acquired and release is not
// called. Errors map like Access's (ENotFound → 404, EUnavailable → 503).
type Acquire func(ctx context.Context, cameraID int64, stream string) (*stream.Hub, func(), error)

// Play describes a session that has started playing, for Watch: the token
// that admitted it, the camera stream and the client's address.
type Play struct {
	Token  string
	Camera int64
	Stream string
	Remote string
}

// Watch is told when a session starts playing, so that who watched is on
// record; it returns the func the server calls once when the session ends
// (teardown, disconnect, revoked token, shutdown) with the bytes written to
// the client. It runs on the PLAY request: it must not wait for long.
type Watch func(ctx context.Context, p Play) (end func(bytes int64))

// Config configures a Server.
type Config struct {
	// Addr is the TCP address to listen on, e.g. "127.0.0.1:0"; ":0" works.
	Addr string
	// Access authorises a client; required.
	Access Access
	// Acquire provides a camera stream's hub; required.
	Acquire Acquire
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// ReadyTimeout is how long DESCRIBE waits for the camera's first
	// picture before answering 503 (default DefaultReadyTimeout). It bounds
	// the whole admission: Access, Acquire and the wait.
	ReadyTimeout time.Duration
	// Watch, when set, hears of every session from PLAY to its end.
	Watch Watch
	// Recheck is how often a playing session's token is checked again with
	// Access (default 30 s): a revoked token, a disabled account or a
	// narrowed grid scope ends the session.
	Recheck time.Duration
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Addr == "":
		return errors.New("rtspserve: Addr is empty")
	case c.Access == nil:
		return errors.New("rtspserve: Access is nil")
	case c.Acquire == nil:
		return errors.New("rtspserve: Acquire is nil")
	case c.ReadyTimeout < 0:
		return fmt.Errorf("rtspserve: ReadyTimeout %v is negative", c.ReadyTimeout)
	}
	return nil
}

// Stats are a server's counters.
type Stats struct {
	// Sessions is the number of sessions playing now.
	Sessions int
	// Packets and Bytes count the RTP packets and RTCP reports written to
	// clients and their bytes on the wire (interleaved framing included).
	Packets, Bytes int64
	// Writes counts the system calls that wrote them: Packets/Writes is
	// how well writes are batched.
	Writes int64
}

// Server re-serves camera streams over RTSP. Make it with New and serve
// with Run; Addr and Stats are safe for concurrent use.
type Server struct {
	cfg  Config
	log  *slog.Logger
	ln   net.Listener
	addr string
	ran  atomic.Bool

	// writeTimeout bounds each write to a client (tests shorten it).
	writeTimeout time.Duration
	// pumpRound, when set (by tests, before any client), is called after
	// each round of a pump.
	pumpRound func()
	// ownChecked, when set (by tests, before any client), is called by a
	// lagging session's own goroutine once it has written a batch and
	// looked whether more is pending, with the batch's last decode time.
	ownChecked func(dts int64)

	// ctx ends when Run is stopping: admissions waiting for a camera
	// give up, writers end. Set by Run before the first connection.
	ctx context.Context

	writers sync.WaitGroup // session writers; Run waits for them
	conns   sync.WaitGroup // connections' goroutines; likewise

	mu      sync.Mutex
	leases  map[*lease]struct{}          // acquired and not yet released
	caches  map[*stream.Hub]*packetCache // by hub, while a lease holds it
	open    map[*conn]struct{}           // connections being served
	closing bool                         // Run is stopping: no new connections

	sessions                atomic.Int64
	packets, bytes, writesN atomic.Int64
}

// New validates cfg and binds the listener. Serving starts with Run;
// connections made before that wait in the listen backlog.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	if cfg.Recheck <= 0 {
		cfg.Recheck = 30 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("rtspserve: listen: %w", err)
	}
	return &Server{
		cfg:          cfg,
		log:          log,
		ln:           &gateListener{Listener: ln},
		addr:         ln.Addr().String(),
		writeTimeout: defaultWriteTimeout,
		leases:       make(map[*lease]struct{}),
		caches:       make(map[*stream.Hub]*packetCache),
		open:         make(map[*conn]struct{}),
	}, nil
}

// Addr returns the address the listener is bound to, as host:port.
func (s *Server) Addr() string { return s.addr }

// Stats reads the counters.
func (s *Server) Stats() Stats {
	return Stats{
		Sessions: int(s.sessions.Load()),
		Packets:  s.packets.Load(),
		Bytes:    s.bytes.Load(),
		Writes:   s.writesN.Load(),
	}
}

// Run serves RTSP until ctx ends, then closes every session and connection,
// releases every acquisition and returns; every goroutine it started has
// ended by then. It returns nil after ctx ends, or the error that stopped
// the server. Run may be called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("rtspserve: Run called twice")
	}
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.ctx = hctx
	s.log.Info("rtspserve: serving", "addr", s.addr)
	accepted := make(chan error, 1)
	go func() { accepted <- s.accept(hctx) }()

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-accepted:
		runErr = fmt.Errorf("rtspserve: server stopped: %w", err)
	}
	// Admissions waiting for a camera return first; then every
	// connection closes, and its goroutine ends its session, which stops
	// the writer and releases what it holds.
	cancel()
	_ = s.ln.Close()
	if runErr == nil {
		<-accepted
	}
	s.mu.Lock()
	s.closing = true
	for c := range s.open {
		_ = c.nc.Close()
	}
	s.mu.Unlock()
	s.conns.Wait()
	// Every session has ended with its connection; a lease left over
	// would keep its hub's pump running.
	if n := s.releaseAll(); n > 0 {
		s.log.Warn("rtspserve: released acquisitions left after close", "count", n)
	}
	s.writers.Wait()
	s.log.Info("rtspserve: stopped", "addr", s.addr)
	return runErr
}

// accept serves each connection in its own goroutine until the listener
// closes (nil once ctx has ended) or fails.
func (s *Server) accept(ctx context.Context) error {
	var backoff time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of descriptors, say: wait a little, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("rtspserve: accept failed; retrying", "err", err, "in", backoff)
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
					return nil
				}
				continue
			}
			return err
		}
		backoff = 0
		c := &conn{s: s, nc: nc, remote: nc.RemoteAddr().String(), br: bufio.NewReaderSize(nc, readBufferSize)}
		c.restDone = sync.NewCond(&c.wmu)
		if sc, ok := nc.(syscall.Conn); ok {
			c.raw, _ = sc.SyscallConn()
			c.tw.write = c.tw.do
		}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			_ = nc.Close()
			return nil
		}
		s.open[c] = struct{}{}
		s.conns.Add(1)
		s.mu.Unlock()
		s.log.Debug("rtspserve: conn open", "remote", c.remote)
		go c.serve()
	}
}

// untrackConn forgets a connection that has closed.
func (s *Server) untrackConn(c *conn) {
	s.mu.Lock()
	delete(s.open, c)
	s.mu.Unlock()
}

// track records an acquisition, so that Run can release any left over.
func (s *Server) track(l *lease) {
	s.mu.Lock()
	s.leases[l] = struct{}{}
	s.mu.Unlock()
}

func (s *Server) untrack(l *lease) {
	s.mu.Lock()
	delete(s.leases, l)
	s.mu.Unlock()
}

// releaseAll releases the acquisitions still held and returns their number.
// Once every connection has closed there should be none.
func (s *Server) releaseAll() int {
	s.mu.Lock()
	left := make([]*lease, 0, len(s.leases))
	for l := range s.leases {
		left = append(left, l)
	}
	s.mu.Unlock()
	for _, l := range left {
		l.close()
	}
	return len(left)
}

// parsePath maps "/cameras/{id}" and "/cameras/{id}/sub" to a camera id and
// a stream name. An id is a positive decimal number without a sign or
// leading zeros, so that every camera has exactly one path.
func parsePath(p string) (id int64, name string, ok bool) {
	rest, ok := strings.CutPrefix(p, "/cameras/")
	if !ok {
		return 0, "", false
	}
	name = StreamMain
	if r, sub := strings.CutSuffix(rest, "/sub"); sub {
		rest, name = r, StreamSub
	}
	if rest == "" || rest[0] < '1' || rest[0] > '9' {
		return 0, "", false
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	if err != nil {
		return 0, "", false
	}
	return id, name, true
}

// requestToken returns the token a request presents: the query's token, or
// else the password of Basic credentials, or "".
func requestToken(req *base.Request, query string) string {
	// ParseQuery keeps what it could parse when a later pair is malformed.
	if q, _ := url.ParseQuery(query); q.Get("token") != "" {
		return q.Get("token")
	}
	// Basic is decoded here: gortsplib's parser refuses a password with a
	// ':' in it, which RFC 7617 allows (only the user name cannot have one).
	h := req.Header["Authorization"]
	if len(h) != 1 {
		return ""
	}
	scheme, cred, ok := strings.Cut(strings.TrimSpace(h[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return ""
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return ""
	}
	_, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return ""
	}
	return pass
}

// statusOf maps an error of Access, Acquire or the wait for a picture to
// an RTSP status. A fault that passes — the database out of reach or out
// of connections, this process out of file descriptors — is 503, as the
// HTTP API answers it: the client may try again.
func statusOf(err error) base.StatusCode {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return base.StatusServiceUnavailable
	}
	if gridwatch.ErrorCode(err) == gridwatch.EInternal &&
		(database.IsUnavailable(err) || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)) {
		return base.StatusServiceUnavailable
	}
	switch gridwatch.ErrorCode(err) {
	case gridwatch.EUnauthenticated, gridwatch.ECredentials:
		return base.StatusUnauthorized
	case gridwatch.EForbidden:
		return base.StatusForbidden
	case gridwatch.ENotFound:
		return base.StatusNotFound
	case gridwatch.EUnavailable, gridwatch.EThrottled:
		return base.StatusServiceUnavailable
	case gridwatch.EInvalid:
		return base.StatusBadRequest
	}
	return base.StatusInternalServerError
}

// redact hides the value of any token=… in s. Errors from gortsplib name
// paths, not URLs, but a log line is no place to find out otherwise.
func redact(s string) string {
	const key = "token="
	var b strings.Builder
	for {
		i := strings.Index(s, key)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i+len(key)])
		b.WriteString("REDACTED")
		s = s[i+len(key):]
		if j := strings.IndexAny(s, "&/ \t\r\n\"'"); j >= 0 {
			s = s[j:]
		} else {
			s = ""
		}
	}
}

// errText is err's text for a log line, with any token hidden.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return redact(err.Error())
}
