// Package gb28181 makes gridwatch the upper platform of GB/T 28181-2016
// devices: cameras, NVRs and lower platforms register with it over SIP
// (REGISTER with digest authentication, keepalives), their catalogs'
// video channels become cameras placed in their grids by their reported
// positions, and their video arrives as an MPEG-2 program stream over RTP
// (UDP, TCP passive or TCP active) into the same hub as an RTSP camera's,
// so every output, the recorder and the footage index work unchanged.
//
// The SIP parsing and transactions are sipgo's; the MANSCDP bodies are
// package manscdp's and the program stream package ps's. This package
// keeps the devices (gb_devices, gb_channels: store.go), speaks the
// platform's side of the dialogues (this file), receives the media
// (media.go) and gives the video layer a pull.Source per channel
// (source.go).
package gb28181

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"gridwatch"
	"gridwatch/camera/gb28181/manscdp"
)

// Config configures a Server.
type Config struct {
	// Addr is where the SIP server listens, UDP and TCP (host:port; port 0
	// picks one, see Server.Addr).
	Addr string
	// ID is the platform's 20-digit SIP ID; Realm its domain (default the
	// ID's first 10 digits, as the standard writes it).
	ID, Realm string
	// Password is the devices' password unless a device has its own.
	Password string
	// MediaIP is the address the devices send media to (default: Addr's
	// host, or the local address that reaches the device when Addr's is
	// unspecified).
	MediaIP string
	// MediaTransport is how live channels send their media: UDP (the
	// default), TCPPassive or TCPActive.
	MediaTransport string
	// Keepalive is the interval devices keep alive at (default 60 s);
	// MissedKeepalives how many may be missed before a device is offline
	// (default 3).
	Keepalive        time.Duration
	MissedKeepalives int
	// Timeout bounds a query's answer (default 10 s).
	Timeout time.Duration
	// Location is the time zone of the devices' clocks: MANSCDP times
	// carry none (default the server's).
	Location *time.Location
	Store    *Store
	Logger   *slog.Logger
	Now      func() time.Time
	// OnAlarm receives every alarm a device raises (it makes incidents),
	// before the device is answered: a device sends its next alarm after
	// the answer, so alarms are paced and keep their order.
	OnAlarm func(context.Context, Alarm)
	// OnDevice, when set, is told of each device that came online or went
	// offline (once it is written), and OnCatalog of each catalog or catalog
	// change applied: tests wait on them.
	OnDevice  func(id string, online bool)
	OnCatalog func(id string)
}

func (c *Config) defaults() error {
	if !manscdp.ValidID(c.ID) {
		return fmt.Errorf("gb28181: the platform ID %q is not 20 digits", c.ID)
	}
	if c.Realm == "" {
		c.Realm = c.ID[:10]
	}
	if c.Keepalive <= 0 {
		c.Keepalive = 60 * time.Second
	}
	if c.MissedKeepalives <= 0 {
		c.MissedKeepalives = 3
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Location == nil {
		c.Location = time.Local
	}
	return nil
}

// Server is the platform's SIP side.
type Server struct {
	cfg      Config
	log      *slog.Logger
	ua       *sipgo.UserAgent
	srv      *sipgo.Server
	cli      *sipgo.Client
	dialogs  *sipgo.DialogClientCache
	nonceKey [32]byte
	sn       atomic.Int64
	udp      net.PacketConn
	tcp      net.Listener
	mediaIP  string
	bindHost string // the listen host: media sockets bind it too

	mu       sync.Mutex
	devices  map[string]*device
	pending  map[pendingKey]*pending
	sessions map[string]*session // by Call-ID
	ctx      context.Context     // Run's
	wg       sync.WaitGroup
}

// device is a device registered with this node.
type device struct {
	id        string
	transport string // "udp" or "tcp"
	source    string // host:port its requests come from
	local     string // our address it reached (host:port)
	expires   time.Time
	alive     time.Time // last keepalive or registration
	flushed   time.Time // alive as last written to the database
}

type pendingKey struct {
	cmd string
	sn  int
}

// pending is a query waiting for its answer: one message, or for a
// catalog or a record list as many as it takes to bring SumNum items.
type pending struct {
	device string
	seen   map[string]bool
	count  int // items received, duplicates included
	msg    *manscdp.Message
	items  []manscdp.Item
	recs   []manscdp.RecordItem
	done   chan struct{}
	once   sync.Once
}

func (p *pending) finish() { p.once.Do(func() { close(p.done) }) }

// New prepares a server; Listen binds it and Run serves.
func New(cfg Config) (*Server, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	sipLog := quiet(cfg.Logger)
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(cfg.ID), sipgo.WithUserAgentHostname(cfg.Realm),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerReadFilter(sipOnly), sip.WithTransportLayerLogger(sipLog)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(sipLog)))
	if err != nil {
		return nil, fmt.Errorf("gb28181: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(sipLog))
	if err != nil {
		return nil, fmt.Errorf("gb28181: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "gb28181"), ua: ua, srv: srv,
		devices: map[string]*device{}, pending: map[pendingKey]*pending{}, sessions: map[string]*session{}}
	if _, err := rand.Read(s.nonceKey[:]); err != nil {
		return nil, err
	}
	s.sn.Store(int64(time.Now().UnixNano()%100000) + 1)
	srv.OnRegister(s.onRegister)
	srv.OnMessage(s.onMessage)
	srv.OnNotify(s.onNotify)
	srv.OnBye(s.onBye)
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	})
	return s, nil
}

// sipOnly drops, before it is parsed or its sender remembered, what does
// not begin as a SIP message does (a request line's method, or a status
// line): noise on the port costs nothing. It never fails (an error would
// stop the listener).
func sipOnly(_ sip.TransportReadProps, data []byte) ([]byte, error) {
	if bytes.HasPrefix(data, []byte("SIP/2.0 ")) {
		return data, nil
	}
	for i, c := range data {
		switch {
		case c >= 'A' && c <= 'Z':
			continue
		case c == ' ' && i > 1:
			return data, nil
		}
		break
	}
	return nil, nil
}

// quiet is sipgo's logger: its debug chatter off, its warnings kept.
func quiet(l *slog.Logger) *slog.Logger {
	return slog.New(levelHandler{l.Handler(), slog.LevelWarn}).With("component", "sip")
}

type levelHandler struct {
	slog.Handler
	min slog.Level
}

func (h levelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

// Listen binds the SIP address, UDP and TCP on the same port.
func (s *Server) Listen() error {
	host, port, err := net.SplitHostPort(s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("gb28181: address %q: %w", s.cfg.Addr, err)
	}
	// UDP first: with port 0, TCP takes the port UDP got (retrying when
	// another process holds it for TCP).
	for try := 0; ; try++ {
		udp, err := net.ListenPacket("udp", net.JoinHostPort(host, port))
		if err != nil {
			return fmt.Errorf("gb28181: listen udp %s: %w", s.cfg.Addr, err)
		}
		p := strconv.Itoa(udp.LocalAddr().(*net.UDPAddr).Port)
		tcp, err := net.Listen("tcp", net.JoinHostPort(host, p))
		if err != nil {
			udp.Close()
			if port == "0" && try < 20 {
				continue
			}
			return fmt.Errorf("gb28181: listen tcp %s: %w", s.cfg.Addr, err)
		}
		// A thousand devices keeping alive at once must not overflow it.
		_ = udp.(*net.UDPConn).SetReadBuffer(4 << 20)
		s.udp, s.tcp = udp, newPatientListener(tcp, s.log)
		break
	}
	s.bindHost = host
	s.mediaIP = s.cfg.MediaIP
	if s.mediaIP == "" {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			s.mediaIP = host
		}
	}
	ap := s.udp.LocalAddr().(*net.UDPAddr)
	cli, err := sipgo.NewClient(s.ua, sipgo.WithClientHostname(hostOr(host, "127.0.0.1")), sipgo.WithClientPort(ap.Port))
	if err != nil {
		return fmt.Errorf("gb28181: %w", err)
	}
	s.cli = cli
	s.dialogs = sipgo.NewDialogClientCache(cli, sip.ContactHeader{Address: sip.Uri{User: s.cfg.ID, Host: hostOr(host, "127.0.0.1"), Port: ap.Port}})
	return nil
}

func hostOr(h, def string) string {
	if ip := net.ParseIP(h); h == "" || ip != nil && ip.IsUnspecified() {
		return def
	}
	return h
}

// Addr is the address the server listens at (after Listen).
func (s *Server) Addr() string { return s.udp.LocalAddr().String() }

// Run serves until ctx ends: SIP over UDP and TCP, and the keepalive
// watch that takes silent devices offline.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	// Devices this node had registered before it stopped are offline
	// until they register again (they will: their registration expires or
	// their keepalives are refused) — written before serving, so a device
	// registering at once is not marked offline after it.
	if err := s.cfg.Store.nodeRestarted(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("gb28181: mark devices offline", "err", err)
	}
	errc := make(chan error, 2)
	go func() { errc <- s.srv.ServeUDP(s.udp) }()
	go func() { errc <- s.srv.ServeTCP(s.tcp) }()
	tick := time.NewTicker(s.sweepEvery())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			s.shutdown()
			return nil
		case err := <-errc:
			if ctx.Err() == nil && err != nil && !errors.Is(err, net.ErrClosed) {
				s.shutdown()
				return fmt.Errorf("gb28181: serve: %w", err)
			}
		case <-tick.C:
			s.sweep(ctx)
		}
	}
}

func (s *Server) sweepEvery() time.Duration {
	return min(max(s.cfg.Keepalive/4, 100*time.Millisecond), 5*time.Second)
}

func (s *Server) shutdown() {
	s.mu.Lock()
	// Handlers start no more work from here on (see background).
	s.ctx = nil
	sessions := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()
	// Their BYEs go out at once, not one after another.
	var wg sync.WaitGroup
	for _, ss := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ss.Close()
		}()
	}
	wg.Wait()
	s.wg.Wait()
	s.srv.Close()
	s.udp.Close()
	s.tcp.Close()
	s.cli.Close()
	s.ua.Close()
	// The database may be gone with ctx: a short one of its own.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = s.cfg.Store.nodeRestarted(ctx)
}

// background runs f in a goroutine with Run's context, unless Run is not
// running (or is stopping): then it returns false and f does not run.
func (s *Server) background(f func(ctx context.Context)) bool {
	s.mu.Lock()
	ctx := s.ctx
	if ctx == nil {
		s.mu.Unlock()
		return false
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		f(ctx)
	}()
	return true
}

// runContext is Run's context, nil when it is not running.
func (s *Server) runContext() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ctx
}

// sweep takes offline the devices whose keepalives stopped or whose
// registration expired, and writes the keepalives seen since the last
// sweep in one statement.
func (s *Server) sweep(ctx context.Context) {
	now := s.cfg.Now()
	limit := s.cfg.Keepalive * time.Duration(s.cfg.MissedKeepalives)
	type off struct{ id, reason string }
	var gone []off
	var ids []string
	var times []time.Time
	s.mu.Lock()
	for id, d := range s.devices {
		switch {
		case now.After(d.expires):
			gone = append(gone, off{id, "its registration expired"})
			delete(s.devices, id)
		case now.Sub(d.alive) > limit:
			gone = append(gone, off{id, fmt.Sprintf("no keepalive for %s (%d missed)", now.Sub(d.alive).Round(time.Second), s.cfg.MissedKeepalives)})
			delete(s.devices, id)
		case d.alive.Sub(d.flushed) >= keepaliveWrite:
			ids, times = append(ids, id), append(times, d.alive)
			d.flushed = d.alive
		}
	}
	s.mu.Unlock()
	if len(ids) > 0 {
		if err := s.cfg.Store.keepalives(ctx, ids, times); err != nil && ctx.Err() == nil {
			s.log.Warn("gb28181: keepalives", "err", err)
		}
	}
	for _, g := range gone {
		if _, back := s.registered(g.id); back {
			continue // it registered again meanwhile
		}
		s.log.Info("gb28181: device offline", "device", g.id, "reason", g.reason)
		if err := s.cfg.Store.offline(ctx, g.id, g.reason); err != nil && ctx.Err() == nil {
			s.log.Warn("gb28181: device offline", "device", g.id, "err", err)
		}
		s.endDevice(g.id, "the device went offline: "+g.reason)
		s.noteDevice(g.id, false)
	}
}

// keepaliveWrite is how stale a device's last keepalive may be in the
// database (what the devices page shows): keepalives are counted in
// memory, where offline is decided, and written at most this often.
const keepaliveWrite = 30 * time.Second

// endDevice ends the media sessions of a device that left.
func (s *Server) endDevice(id, why string) {
	s.mu.Lock()
	var ended []*session
	for _, ss := range s.sessions {
		if ss.device == id {
			ended = append(ended, ss)
		}
	}
	s.mu.Unlock()
	for _, ss := range ended {
		ss.fail(errors.New(why))
	}
}

// nonce makes a digest nonce that proves itself: the time it was made and
// an HMAC of it and of the address asking, so no nonce is kept per device
// and one captured is no use from another address.
func (s *Server) nonce(now time.Time, host string) string {
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	copy(b[8:], s.nonceMAC(b[:8], host))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *Server) nonceMAC(stamp []byte, host string) []byte {
	m := hmac.New(sha256.New, s.nonceKey[:])
	m.Write(stamp)
	m.Write([]byte(host))
	return m.Sum(nil)[:16]
}

// nonceFresh checks a nonce this server made for host within the last 5
// minutes.
func (s *Server) nonceFresh(n, host string, now time.Time) bool {
	b, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil || len(b) != 24 {
		return false
	}
	if !hmac.Equal(s.nonceMAC(b[:8], host), b[8:]) {
		return false
	}
	age := now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(b[:8]))))
	return age >= -time.Minute && age < 5*time.Minute
}

// sourceHost is the address a request came from, without its port.
func sourceHost(req *sip.Request) string {
	h, _ := splitHostPort(req.Source())
	return h
}

func (s *Server) challenge(req *sip.Request, tx sip.ServerTransaction, stale bool) {
	ch := digest.Challenge{Realm: s.cfg.Realm, Nonce: s.nonce(s.cfg.Now(), sourceHost(req)), Algorithm: "MD5", Stale: stale}
	res := sip.NewResponseFromRequest(req, sip.StatusUnauthorized, "Unauthorized", nil)
	res.AppendHeader(sip.NewHeader("WWW-Authenticate", ch.String()))
	_ = tx.Respond(res)
}

func respond(req *sip.Request, tx sip.ServerTransaction, code int, reason string) {
	_ = tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
}

// fromID is the device ID in a request's From header, "" when it is not
// 20 digits.
func fromID(req *sip.Request) string {
	f := req.From()
	if f == nil || !manscdp.ValidID(f.Address.User) {
		return ""
	}
	return f.Address.User
}

func (s *Server) onRegister(req *sip.Request, tx sip.ServerTransaction) {
	id := fromID(req)
	if id == "" {
		respond(req, tx, sip.StatusBadRequest, "From must carry a 20-digit device ID")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	h := req.GetHeader("Authorization")
	if h == nil {
		s.challenge(req, tx, false)
		return
	}
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil || cred.Username != id || cred.Realm != s.cfg.Realm {
		s.log.Info("gb28181: registration refused", "device", id, "source", req.Source(), "reason", "bad credentials header")
		respond(req, tx, sip.StatusForbidden, "Forbidden")
		return
	}
	if !s.nonceFresh(cred.Nonce, sourceHost(req), s.cfg.Now()) {
		s.challenge(req, tx, true)
		return
	}
	password, err := s.cfg.Store.password(ctx, id)
	if err != nil {
		s.log.Warn("gb28181: registration", "device", id, "err", err)
		respond(req, tx, sip.StatusServiceUnavailable, "Service Unavailable")
		return
	}
	if password == "" {
		password = s.cfg.Password
	}
	if password == "" {
		// No password, no entry: the digest of an empty one proves nothing.
		s.log.Warn("gb28181: registration refused: no password is set for this device nor for the platform (--gb28181-password)", "device", id, "source", req.Source())
		respond(req, tx, sip.StatusForbidden, "Forbidden")
		return
	}
	ch := digest.Challenge{Realm: s.cfg.Realm, Nonce: cred.Nonce, Algorithm: cred.Algorithm, Opaque: cred.Opaque}
	if cred.QOP != "" {
		ch.QOP = []string{cred.QOP}
	}
	want, err := digest.Digest(&ch, digest.Options{Method: "REGISTER", URI: cred.URI, Username: id, Password: password, Cnonce: cred.Cnonce, Count: cred.Nc})
	if err != nil || subtle.ConstantTimeCompare([]byte(want.Response), []byte(strings.ToLower(cred.Response))) != 1 {
		s.log.Info("gb28181: registration refused", "device", id, "source", req.Source(), "reason", "wrong password")
		respond(req, tx, sip.StatusForbidden, "Forbidden")
		return
	}
	expires := registerExpiry(req)
	now := s.cfg.Now()
	if expires == 0 {
		s.mu.Lock()
		delete(s.devices, id)
		s.mu.Unlock()
		if err := s.cfg.Store.offline(ctx, id, "it unregistered"); err != nil {
			s.log.Warn("gb28181: unregister", "device", id, "err", err)
		}
		s.endDevice(id, "the device unregistered")
		s.ok(req, tx, 0)
		s.log.Info("gb28181: device unregistered", "device", id)
		s.noteDevice(id, false)
		return
	}
	transport := strings.ToLower(req.Transport())
	d := &device{id: id, transport: transport, source: req.Source(), expires: now.Add(expires), alive: now}
	d.local = localAddr(req, s)
	d.flushed = now
	fresh, err := s.cfg.Store.registered(ctx, d, now)
	if err != nil {
		s.log.Warn("gb28181: registration", "device", id, "err", err)
		respond(req, tx, sip.StatusServiceUnavailable, "Service Unavailable")
		return
	}
	s.mu.Lock()
	prev := s.devices[id]
	s.devices[id] = d
	s.mu.Unlock()
	s.ok(req, tx, expires)
	if prev == nil || fresh {
		s.log.Info("gb28181: device registered", "device", id, "transport", transport, "source", d.source)
		s.noteDevice(id, true)
		s.background(func(ctx context.Context) { s.afterRegister(ctx, id) })
		return
	}
	// A refresh: the catalog subscription, which lasts as long as the
	// registration, is renewed with it.
	s.background(func(ctx context.Context) {
		if err := s.subscribeCatalog(ctx, id); err != nil && ctx.Err() == nil {
			s.log.Info("gb28181: catalog subscription", "device", id, "err", err)
		}
	})
}

// localAddr is the address of ours a request reached.
func localAddr(req *sip.Request, s *Server) string {
	if strings.EqualFold(req.Transport(), "tcp") {
		return s.tcp.Addr().String()
	}
	return s.udp.LocalAddr().String()
}

// registerExpiry is the expiry a REGISTER asks for (default 3600 s).
func registerExpiry(req *sip.Request) time.Duration {
	if h := req.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n >= 0 {
			return time.Duration(n) * time.Second
		}
	}
	if c := req.Contact(); c != nil {
		if v, ok := c.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				return time.Duration(n) * time.Second
			}
		}
	}
	return time.Hour
}

func (s *Server) ok(req *sip.Request, tx sip.ServerTransaction, expires time.Duration) {
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	// Devices set their clocks from it (GB/T 28181-2016 §9.10.2).
	res.AppendHeader(sip.NewHeader("Date", s.cfg.Now().In(s.cfg.Location).Format("2006-01-02T15:04:05.000")))
	res.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	_ = tx.Respond(res)
}

// afterRegister learns what a newly registered device is and has: its
// DeviceInfo, its catalog, and a subscription to the catalog's changes.
func (s *Server) afterRegister(ctx context.Context, id string) {
	if err := s.RefreshInfo(ctx, id); err != nil && ctx.Err() == nil {
		s.log.Info("gb28181: device info", "device", id, "err", err)
	}
	if _, err := s.SyncCatalog(ctx, id); err != nil && ctx.Err() == nil {
		s.log.Info("gb28181: catalog", "device", id, "err", err)
	}
	if err := s.subscribeCatalog(ctx, id); err != nil && ctx.Err() == nil {
		s.log.Info("gb28181: catalog subscription", "device", id, "err", err)
	}
}

// registered is the device if it is registered with this node now.
func (s *Server) registered(id string) (*device, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[id]
	if !ok {
		return nil, false
	}
	c := *d
	return &c, true
}

// Online lists the devices registered with this node now.
func (s *Server) Online() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.devices))
	for id := range s.devices {
		out = append(out, id)
	}
	return out
}

// keepaliveBody is what every keepalive body holds: the one message a
// device sends every minute is recognised without decoding it.
var keepaliveBody = []byte("<CmdType>Keepalive</CmdType>")

func (s *Server) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	id := fromID(req)
	if body := req.Body(); len(body) < 1024 && bytes.Contains(body, keepaliveBody) {
		s.mu.Lock()
		d := s.devices[id]
		known := d != nil && d.source == req.Source()
		if known {
			d.alive = s.cfg.Now()
		}
		s.mu.Unlock()
		if known {
			respond(req, tx, sip.StatusOK, "OK")
		} else {
			respond(req, tx, sip.StatusForbidden, "Not registered")
		}
		return
	}
	m, err := manscdp.Decode(req.Body())
	if err != nil {
		s.log.Info("gb28181: bad message", "device", id, "source", req.Source(), "err", err)
		respond(req, tx, sip.StatusBadRequest, "Bad Request")
		return
	}
	s.mu.Lock()
	d := s.devices[id]
	known := d != nil && d.source == req.Source()
	if known && m.CmdType == "Keepalive" {
		d.alive = s.cfg.Now()
	}
	s.mu.Unlock()
	if !known {
		// A device that thinks it is registered with us while we do not
		// know it, or a message in a registered device's name from
		// another address than it registered from (a device that moves
		// registers again, authenticated): the refusal makes a real
		// device register again.
		respond(req, tx, sip.StatusForbidden, "Not registered")
		return
	}
	switch {
	case m.CmdType == "Keepalive":
	case m.XMLName.Local == "Response":
		s.answer(id, m)
	case m.XMLName.Local == "Notify" && m.CmdType == "Alarm":
		// Handled before the answer: a device waits for it before its
		// next one, so a flood is paced and alarms keep their order.
		s.alarm(id, m)
	case m.XMLName.Local == "Notify" && m.CmdType == "MediaStatus":
		s.mediaStatus(req, id, m.DeviceID, m.NotifyType)
	case m.XMLName.Local == "Notify" && m.CmdType == "Catalog":
		s.catalogNotify(id, m)
	}
	respond(req, tx, sip.StatusOK, "OK")
}

// onNotify takes a catalog subscription's notifications.
func (s *Server) onNotify(req *sip.Request, tx sip.ServerTransaction) {
	id := fromID(req)
	m, err := manscdp.Decode(req.Body())
	if err != nil {
		respond(req, tx, sip.StatusBadRequest, "Bad Request")
		return
	}
	if d, ok := s.registered(id); !ok || d.source != req.Source() {
		respond(req, tx, sip.StatusForbidden, "Not registered")
		return
	}
	if m.CmdType == "Catalog" {
		// Applied before the answer, so changes keep their order.
		s.catalogNotify(id, m)
	}
	respond(req, tx, sip.StatusOK, "OK")
}

// answer hands a Response from device id to the query waiting for it.
func (s *Server) answer(id string, m *manscdp.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pending[pendingKey{m.CmdType, m.SN}]
	if p == nil || p.device != id {
		return
	}
	if p.msg == nil {
		p.msg = m
	}
	// Items are counted as sent toward SumNum (a platform may list a
	// channel under two groups) and kept once.
	switch m.CmdType {
	case "Catalog":
		if m.DeviceList != nil {
			p.count += len(m.DeviceList.Items)
			for _, it := range m.DeviceList.Items {
				if !p.seen[it.DeviceID] {
					p.seen[it.DeviceID] = true
					p.items = append(p.items, it)
				}
			}
		}
		if p.count >= m.SumNum {
			p.finish()
		}
	case "RecordInfo":
		if m.RecordList != nil {
			p.count += len(m.RecordList.Items)
			for _, it := range m.RecordList.Items {
				k := strings.Join([]string{it.DeviceID, it.StartTime, it.EndTime, it.FilePath, it.Type, it.Name, it.Address}, "|")
				if !p.seen[k] {
					p.seen[k] = true
					p.recs = append(p.recs, it)
				}
			}
		}
		if p.count >= m.SumNum {
			p.finish()
		}
	default:
		p.finish()
	}
}

// errNotRegistered says a device is not registered with this node.
func errNotRegistered(id string) error {
	return gridwatch.Errorf(gridwatch.EConflict, "device %s is not registered with this node: it is offline, or registered with another node", id)
}

// request sends a request to a registered device (to target: the device
// or one of its channels) and returns the final response.
func (s *Server) request(ctx context.Context, d *device, method sip.RequestMethod, target string, body []byte, headers ...sip.Header) (*sip.Response, error) {
	req := s.newRequest(d, method, target, body, headers...)
	res, err := s.cli.Do(ctx, req)
	if err != nil {
		s.log.Info("gb28181: request", "method", method, "device", d.id, "err", err)
		return nil, gridwatch.Errorf(gridwatch.EUnavailable, "device %s did not answer %s", d.id, method)
	}
	if res.StatusCode >= 300 {
		return res, gridwatch.Errorf(gridwatch.EUnavailable, "device %s refused %s: %d %s", d.id, method, res.StatusCode, clip(res.Reason, 80))
	}
	return res, nil
}

func (s *Server) newRequest(d *device, method sip.RequestMethod, target string, body []byte, headers ...sip.Header) *sip.Request {
	host, port := splitHostPort(d.source)
	uri := sip.Uri{Scheme: "sip", User: target, Host: host, Port: port}
	req := sip.NewRequest(method, uri)
	req.SetTransport(strings.ToUpper(d.transport))
	req.SetDestination(d.source)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: s.cfg.ID, Host: s.cfg.Realm}}
	from.Params = sip.NewParams()
	from.Params.Add("tag", sip.GenerateTagN(12))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: target, Host: s.cfg.Realm}})
	for _, h := range headers {
		req.AppendHeader(h)
	}
	if body != nil {
		req.AppendHeader(sip.NewHeader("Content-Type", "Application/MANSCDP+xml"))
		req.SetBody(body)
	}
	return req
}

func splitHostPort(a string) (string, int) {
	h, p, err := net.SplitHostPort(a)
	if err != nil {
		return a, 5060
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

// query sends a MANSCDP query to a device and waits for its answer.
func (s *Server) query(ctx context.Context, id, target, cmd string, fill func(*manscdp.Message)) (*pending, error) {
	d, ok := s.registered(id)
	if !ok {
		return nil, errNotRegistered(id)
	}
	sn := int(s.sn.Add(1))
	q := manscdp.Query(cmd, target, sn)
	if fill != nil {
		fill(q)
	}
	body, err := manscdp.Encode(q, "GB2312")
	if err != nil {
		return nil, err
	}
	p := &pending{device: id, seen: map[string]bool{}, done: make(chan struct{})}
	key := pendingKey{cmd, sn}
	s.mu.Lock()
	s.pending[key] = p
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, key)
		s.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if _, err := s.request(ctx, d, sip.MESSAGE, target, body); err != nil {
		return nil, err
	}
	select {
	case <-p.done:
		return p, nil
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		if p.msg != nil && (cmd == "Catalog" || cmd == "RecordInfo") {
			// Part of a long answer: what came is used, and the
			// caller is told it is partial.
			return p, gridwatch.Errorf(gridwatch.EUnavailable, "device %s answered %s in part (%d of %d items) within %s", id, cmd, len(p.items)+len(p.recs), p.msg.SumNum, s.cfg.Timeout)
		}
		return nil, gridwatch.Errorf(gridwatch.EUnavailable, "device %s did not answer %s within %s", id, cmd, s.cfg.Timeout)
	}
}

// RefreshInfo asks a device for its DeviceInfo and keeps it.
func (s *Server) RefreshInfo(ctx context.Context, id string) error {
	p, err := s.query(ctx, id, id, "DeviceInfo", nil)
	if err != nil {
		return err
	}
	m := p.msg
	return s.cfg.Store.setInfo(ctx, id, m.DeviceName, m.Manufacturer, m.Model, m.Firmware)
}

// Status asks a device for its DeviceStatus.
func (s *Server) Status(ctx context.Context, id string) (*manscdp.Message, error) {
	p, err := s.query(ctx, id, id, "DeviceStatus", nil)
	if err != nil {
		return nil, err
	}
	return p.msg, nil
}

// SyncCatalog asks a device for its whole catalog and brings the channels
// and their cameras in line with it; it returns what changed.
func (s *Server) SyncCatalog(ctx context.Context, id string) (CatalogResult, error) {
	p, err := s.query(ctx, id, id, "Catalog", nil)
	if p == nil {
		return CatalogResult{}, err
	}
	// A partial answer adds and updates but marks nothing gone.
	res, serr := s.cfg.Store.syncCatalog(ctx, id, p.items, err == nil)
	if serr != nil {
		return res, serr
	}
	s.noteSynced(id)
	return res, err
}

func (s *Server) noteSynced(id string) {
	if s.cfg.OnCatalog != nil {
		s.cfg.OnCatalog(id)
	}
}

func (s *Server) noteDevice(id string, online bool) {
	if s.cfg.OnDevice != nil {
		s.cfg.OnDevice(id, online)
	}
}

// catalogNotify applies a catalog change a device notified, before it is
// answered (a device sends the next change after the answer).
func (s *Server) catalogNotify(id string, m *manscdp.Message) {
	ctx := s.runContext()
	if m.DeviceList == nil || ctx == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if _, err := s.cfg.Store.applyEvents(ctx, id, m.DeviceList.Items); err != nil && ctx.Err() == nil {
		s.log.Warn("gb28181: catalog notification", "device", id, "err", err)
		return
	}
	s.noteSynced(id)
}

// subscribeCatalog subscribes to a device's catalog changes for as long
// as its registration lasts.
func (s *Server) subscribeCatalog(ctx context.Context, id string) error {
	d, ok := s.registered(id)
	if !ok {
		return errNotRegistered(id)
	}
	q := manscdp.Query("Catalog", id, int(s.sn.Add(1)))
	body, err := manscdp.Encode(q, "GB2312")
	if err != nil {
		return err
	}
	expires := max(int(time.Until(d.expires)/time.Second), 60)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	_, err = s.request(ctx, d, sip.SUBSCRIBE, id, body, sip.NewHeader("Event", "Catalog"),
		sip.NewHeader("Expires", strconv.Itoa(expires)), s.contact(d))
	return err
}

// contact is our Contact header for a device.
func (s *Server) contact(d *device) *sip.ContactHeader {
	host, port := splitHostPort(d.local)
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = s.advertisedHost(d)
	}
	return &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: s.cfg.ID, Host: host, Port: port}}
}

// advertisedHost is the IP the device reaches us at: MediaIP, or the
// local address of a route to it.
func (s *Server) advertisedHost(d *device) string {
	if s.mediaIP != "" {
		return s.mediaIP
	}
	host, _ := splitHostPort(d.source)
	c, err := net.Dial("udp", net.JoinHostPort(host, "9"))
	if err != nil {
		return "127.0.0.1"
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}

// PTZ sends a PTZ command to a channel of a device (DeviceControl).
func (s *Server) PTZ(ctx context.Context, device, channel string, cmd manscdp.PTZ) error {
	d, ok := s.registered(device)
	if !ok {
		return errNotRegistered(device)
	}
	m := manscdp.Control("DeviceControl", channel, int(s.sn.Add(1)))
	m.PTZCmd = cmd.Cmd()
	body, err := manscdp.Encode(m, "GB2312")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	_, err = s.request(ctx, d, sip.MESSAGE, channel, body)
	return err
}

// RecordInfo asks a device which recordings of a channel it holds in
// [from, to).
func (s *Server) RecordInfo(ctx context.Context, device, channel string, from, to time.Time) ([]manscdp.RecordItem, error) {
	p, err := s.query(ctx, device, channel, "RecordInfo", func(m *manscdp.Message) {
		m.StartTime = manscdp.FormatTime(from, s.cfg.Location)
		m.EndTime = manscdp.FormatTime(to, s.cfg.Location)
		m.Type = "all"
	})
	if p == nil {
		return nil, err
	}
	return p.recs, err
}

// Alarm is an alarm a device raised.
type Alarm struct {
	Device, Channel string
	Time            time.Time
	Priority        int
	Method          int
	Type            int
	Description     string
	// Lon, Lat are the position the alarm carried, when it did.
	Lon, Lat float64
	HasPos   bool
}

func (s *Server) alarm(id string, m *manscdp.Message) {
	a := Alarm{Device: id, Channel: m.DeviceID, Description: m.AlarmDescription}
	a.Priority, _ = strconv.Atoi(strings.TrimSpace(m.AlarmPriority))
	a.Method, _ = strconv.Atoi(strings.TrimSpace(m.AlarmMethod))
	typ := m.AlarmType
	if m.Info != nil && m.Info.AlarmType != "" {
		typ = m.Info.AlarmType
	}
	a.Type, _ = strconv.Atoi(strings.TrimSpace(typ))
	t, err := manscdp.ParseTime(m.AlarmTime, s.cfg.Location)
	if err != nil {
		t = s.cfg.Now()
	}
	a.Time = t
	if lon, lat, ok := m.Position(); ok {
		a.Lon, a.Lat, a.HasPos = lon, lat, true
	}
	ctx := s.runContext()
	if ctx == nil || s.cfg.OnAlarm == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	s.cfg.OnAlarm(ctx, a)
}

// DeviceRecording is a recording a device holds.
type DeviceRecording struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	Type string    `json:"type,omitempty"`
	Name string    `json:"name,omitempty"`
	Size int64     `json:"size,omitempty"`
}

// Records lists the recordings a device holds of a channel that overlap
// [from, to), in order; times the device wrote badly are skipped.
func (s *Server) Records(ctx context.Context, device, channel string, from, to time.Time) ([]DeviceRecording, error) {
	items, err := s.RecordInfo(ctx, device, channel, from, to)
	if items == nil && err != nil {
		return nil, err
	}
	out := make([]DeviceRecording, 0, len(items))
	for _, it := range items {
		a, err1 := manscdp.ParseTime(it.StartTime, s.cfg.Location)
		b, err2 := manscdp.ParseTime(it.EndTime, s.cfg.Location)
		if err1 != nil || err2 != nil || !b.After(a) {
			continue
		}
		out = append(out, DeviceRecording{From: a, To: b, Type: it.Type, Name: it.Name, Size: it.FileSize})
	}
	slices.SortFunc(out, func(x, y DeviceRecording) int { return x.From.Compare(y.From) })
	return out, err
}
