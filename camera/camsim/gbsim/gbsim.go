// Package gbsim simulates a GB/T 28181-2016 device, an NVR with camera
// channels, so that the platform side can be tested without one on the
// desk. The device registers with a platform over SIP (UDP or TCP, digest
// authentication), sends keepalives, answers the MANSCDP queries (Catalog,
// DeviceInfo, DeviceStatus, RecordInfo), takes PTZ commands and catalog
// subscriptions, sends alarms, and streams an embedded clip as MPEG-PS over
// RTP (UDP, or TCP in either direction, RFC 4571 framing) for live INVITEs
// and playback INVITEs with MANSRTSP control.
//
// Every socket binds Config.LocalIP on port 0: the device never uses a
// fixed port.
//
// What a platform can rely on:
//   - Over UDP every SIP request leaves from the listener, the Contact
//     port; requests may come to it from any port. Over TCP the device
//     dials the platform and takes requests on that connection (send them
//     to the REGISTER's source address; sipgo reuses the connection) as
//     well as on its listener, the Contact port (Contact has
//     transport=tcp).
//   - A keepalive the platform refuses (any final answer but 200), or
//     three unanswered, make the device register again at once.
//   - Catalog and RecordInfo responses come one MESSAGE after another,
//     each once the last was answered. Catalog items carry DeviceID, Name,
//     Manufacturer, Model, CivilCode, ParentID, Status, the position and
//     Info/PTZType, so that two fit in a UDP MESSAGE; one that would not
//     fit goes in smaller pages.
//   - Media: PTS (and the RTP timestamp) start at 0 and grow 3600 a
//     picture; a playback's 0 is its t= start and a seek moves the clock
//     to the keyframe at the position. With audio each picture's pack is
//     followed by two 20 ms G.711 packs at PTS and PTS+1800.
//   - MediaStatus 121 is a MESSAGE from the device (From its ID) carrying
//     the Call-ID of the playback's INVITE.
package gbsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"gridwatch/camera/camsim"
	"gridwatch/camera/gb28181/manscdp"
)

// Channel is a camera channel of the device.
type Channel struct {
	ID         string  // 20 digits, type 131 (camera) or 132 (IP camera)
	Name       string  // catalog name
	Lon, Lat   float64 // WGS-84 position
	NoPosition bool    // the catalog and alarms carry no position
	PTZ        bool    // a PTZ dome (PTZType 1), else a fixed camera (3)
	H265       bool    // streams H.265 instead of H.264
}

// Record is a recording the device reports in RecordInfo.
type Record struct {
	Channel    string
	Start, End time.Time
	Type       string // "time", "alarm" or "manual"
}

// Config configures a Device. ServerID, Server, DeviceID are required.
type Config struct {
	Server    string // platform SIP address host:port
	ServerID  string // platform's 20-digit ID
	Realm     string // digest realm and SIP domain; default: the first 10 digits of ServerID
	Transport string // "udp" (default) or "tcp" for SIP
	DeviceID  string // 20 digits, type 118 (NVR)
	Password  string

	Name, Manufacturer, Model, Firmware string // DeviceInfo; defaults say gbsim

	Channels []Channel
	Records  []Record

	Expires   time.Duration // REGISTER expiry (default 1 h); re-registers at 2/3 of what the platform granted
	Keepalive time.Duration // keepalive interval (default 60 s)
	Charset   string        // "GB2312" (default) or "UTF-8": the encoding of every MANSCDP body sent
	// CatalogPerMessage is how many items a Catalog or RecordInfo response
	// MESSAGE carries (default 2: several messages are the norm). Over UDP a
	// message must stay under 1300 bytes (sipgo refuses larger ones), which
	// a handful of items already reach.
	CatalogPerMessage int
	LocalIP           string // every socket binds it, on port 0 (default 127.0.0.1)
	Logger            *slog.Logger
	Audio             bool // add G.711 A-law audio to the PS stream
	// GCJ02 makes the device report positions in GCJ-02, converted from
	// the channels' WGS-84 ones, as many devices sold in China do.
	GCJ02 bool
}

// Defaults.
const (
	defaultExpires   = time.Hour
	defaultKeepalive = 60 * time.Second
	defaultCharset   = "GB2312"
	defaultPerMsg    = 2
	defaultLocalIP   = "127.0.0.1"

	// requestTimeout bounds one SIP transaction the device starts.
	requestTimeout = 10 * time.Second
	// keepaliveMisses unanswered keepalives make the device register again
	// (GB/T 28181-2016 9.6: 3 by default).
	keepaliveMisses = 3
)

// withDefaults fills the defaults in and checks cfg.
func (c Config) withDefaults() (Config, error) {
	if !manscdp.ValidID(c.ServerID) {
		return c, fmt.Errorf("gbsim: ServerID %q is not 20 digits", c.ServerID)
	}
	if !manscdp.ValidID(c.DeviceID) {
		return c, fmt.Errorf("gbsim: DeviceID %q is not 20 digits", c.DeviceID)
	}
	if _, _, err := net.SplitHostPort(c.Server); err != nil {
		return c, fmt.Errorf("gbsim: Server %q: %w", c.Server, err)
	}
	if c.Realm == "" {
		c.Realm = c.ServerID[:10]
	}
	switch strings.ToLower(c.Transport) {
	case "", "udp":
		c.Transport = "UDP"
	case "tcp":
		c.Transport = "TCP"
	default:
		return c, fmt.Errorf("gbsim: Transport %q, want udp or tcp", c.Transport)
	}
	if c.Name == "" {
		c.Name = "gbsim NVR"
	}
	if c.Manufacturer == "" {
		c.Manufacturer = "gbsim"
	}
	if c.Model == "" {
		c.Model = "SIM-NVR"
	}
	if c.Firmware == "" {
		c.Firmware = "V1.0"
	}
	if c.Expires <= 0 {
		c.Expires = defaultExpires
	}
	if c.Expires < time.Second {
		c.Expires = time.Second
	}
	if c.Keepalive <= 0 {
		c.Keepalive = defaultKeepalive
	}
	switch strings.ToUpper(c.Charset) {
	case "", "GB2312":
		c.Charset = "GB2312"
	case "UTF-8", "UTF8":
		c.Charset = "UTF-8"
	default:
		return c, fmt.Errorf("gbsim: Charset %q, want GB2312 or UTF-8", c.Charset)
	}
	if c.CatalogPerMessage <= 0 {
		c.CatalogPerMessage = defaultPerMsg
	}
	if c.LocalIP == "" {
		c.LocalIP = defaultLocalIP
	}
	if net.ParseIP(c.LocalIP) == nil {
		return c, fmt.Errorf("gbsim: LocalIP %q is not an IP address", c.LocalIP)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	seen := make(map[string]bool)
	for _, ch := range c.Channels {
		if err := checkChannel(ch); err != nil {
			return c, err
		}
		if seen[ch.ID] {
			return c, fmt.Errorf("gbsim: channel %s twice", ch.ID)
		}
		seen[ch.ID] = true
	}
	c.Channels = append([]Channel(nil), c.Channels...)
	c.Records = append([]Record(nil), c.Records...)
	return c, nil
}

func checkChannel(ch Channel) error {
	if !manscdp.ValidID(ch.ID) {
		return fmt.Errorf("gbsim: channel ID %q is not 20 digits", ch.ID)
	}
	return nil
}

// Device is a running simulated device. Its methods are safe for
// concurrent use.
type Device struct {
	cfg     Config
	log     *slog.Logger
	ua      *sipgo.UserAgent
	srv     *sipgo.Server
	client  *sipgo.Client
	dialogs sipgo.DialogUA
	port    int // SIP listen port
	// msgOverhead is a MESSAGE's size without its body, with room for
	// the headers sipgo adds when sending (Via, Call-ID, CSeq,
	// Max-Forwards).
	msgOverhead int
	ln          io.Closer

	ctx    context.Context // until Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the device started

	h264, h265 [][][]byte // access units of the clips
	tone       [][]byte   // G.711 A-law frames, 20 ms each

	sn        atomic.Uint32 // MANSCDP SN
	streams   atomic.Int32
	loss      atomic.Int32
	reorder   atomic.Bool
	paused    atomic.Bool
	noRefresh atomic.Bool   // registration refresh paused (tests: let it expire)
	resume    chan struct{} // wakes the keepalive loop
	regKick   chan struct{} // wakes the register loop
	closeOnce sync.Once
	closeErr  error

	regMu      sync.Mutex // one REGISTER exchange at a time; guards the reg fields
	regCallID  string
	regFromTag string
	regCSeq    uint32

	mu       sync.Mutex
	closed   bool
	password string
	channels []Channel
	ptz      map[string]ptzRecord
	subs     map[string]*subscription // catalog subscriptions, by Call-ID
	sessions map[string]*session      // media sessions, by Call-ID
	regAt    time.Time                // last successful REGISTER
	regFor   time.Duration            // the expiry it was granted
	needReg  bool                     // keepalives failed: register again now
}

// ptzRecord is what DeviceControl asked of a channel.
type ptzRecord struct {
	last  manscdp.PTZ
	count int
}

// Start binds the device's SIP listener on LocalIP:0, registers with the
// platform (answering its digest challenge) and returns once registered.
// ctx bounds the registration only; the device runs until Close. A refused
// registration (wrong password: 401 again or 403) is an error naming the
// status.
func Start(ctx context.Context, cfg Config) (*Device, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	h264, err := camsim.ClipAccessUnits(camsim.ClipMain)
	if err != nil {
		return nil, fmt.Errorf("gbsim: %w", err)
	}
	h265, err := camsim.ClipAccessUnits(camsim.ClipH265)
	if err != nil {
		return nil, fmt.Errorf("gbsim: %w", err)
	}
	d := &Device{
		cfg:        cfg,
		log:        cfg.Logger.With("device", cfg.DeviceID),
		h264:       h264,
		h265:       h265,
		resume:     make(chan struct{}, 1),
		regKick:    make(chan struct{}, 1),
		password:   cfg.Password,
		channels:   cfg.Channels,
		ptz:        make(map[string]ptzRecord),
		subs:       make(map[string]*subscription),
		sessions:   make(map[string]*session),
		regCallID:  newToken(16),
		regFromTag: newToken(8),
	}
	if cfg.Audio {
		d.tone = toneFrames()
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	if err := d.listen(); err != nil {
		d.cancel()
		return nil, err
	}
	if err := d.register(ctx, cfg.Expires); err != nil {
		d.stop()
		return nil, err
	}
	d.wg.Add(2)
	go d.registerLoop()
	go d.keepaliveLoop()
	d.log.Info("gbsim: registered", "server", cfg.Server, "transport", cfg.Transport, "port", d.port)
	return d, nil
}

// listen makes the user agent (one transport layer for the device as
// client and as server), binds the listener and waits until sipgo serves
// it.
func (d *Device) listen() error {
	log := slog.New(minLevel{d.log.Handler(), slog.LevelWarn}).With("component", "sipgo")
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent("gbsim"),
		sipgo.WithUserAgentHostname(d.cfg.Realm),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(log)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log)),
	)
	if err != nil {
		return fmt.Errorf("gbsim: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(log))
	if err != nil {
		ua.Close()
		return fmt.Errorf("gbsim: %w", err)
	}
	d.ua, d.srv = ua, srv
	srv.OnRegister(d.onUnexpected)
	srv.OnMessage(d.onMessage)
	srv.OnSubscribe(d.onSubscribe)
	srv.OnInvite(d.onInvite)
	srv.OnAck(d.onAck)
	srv.OnBye(d.onBye)
	srv.OnInfo(d.onInfo)
	srv.OnOptions(d.onOptions)
	srv.OnCancel(d.onCancel)

	local := net.JoinHostPort(d.cfg.LocalIP, "0")
	var opts []sipgo.ClientOption
	ready := make(chan struct{})
	if d.cfg.Transport == "UDP" {
		pc, err := net.ListenPacket("udp", local)
		if err != nil {
			ua.Close()
			return fmt.Errorf("gbsim: listen: %w", err)
		}
		d.ln = pc
		d.port = pc.LocalAddr().(*net.UDPAddr).Port
		rc := &readyConn{PacketConn: pc, ready: ready}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			srv.ServeUDP(rc) //nolint:errcheck // ends when Close closes pc
		}()
		// Requests leave from the listener, so that the platform's
		// answers and requests come back to the Contact port.
		opts = append(opts, sipgo.WithClientConnectionAddr(pc.LocalAddr().String()))
	} else {
		ln, err := net.Listen("tcp", local)
		if err != nil {
			ua.Close()
			return fmt.Errorf("gbsim: listen: %w", err)
		}
		d.ln = ln
		d.port = ln.Addr().(*net.TCPAddr).Port
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			srv.ServeTCP(ln) //nolint:errcheck // ends when Close closes ln
		}()
		close(ready)
	}
	opts = append(opts,
		sipgo.WithClientLogger(log),
		sipgo.WithClientHostname(d.cfg.LocalIP),
		sipgo.WithClientPort(d.port))
	fail := func(err error) error {
		d.ln.Close()
		d.wg.Wait()
		ua.Close()
		return err
	}
	client, err := sipgo.NewClient(ua, opts...)
	if err != nil {
		return fail(fmt.Errorf("gbsim: %w", err))
	}
	d.client = client
	d.dialogs = sipgo.DialogUA{
		Client:     client,
		ContactHDR: d.contact(d.cfg.DeviceID),
		// Over TCP, in-dialog requests (BYE) go back on the connection
		// the INVITE came on.
		RewriteContact: d.cfg.Transport == "TCP",
	}
	// Via with LocalIP and a branch, Call-ID, CSeq, Max-Forwards, and the
	// Content-Length's digits: 160 bytes and the address.
	d.msgOverhead = len(d.newMessage(nil).String()) + 160 + len(d.cfg.LocalIP)
	select {
	case <-ready:
	case <-time.After(requestTimeout):
		return fail(errors.New("gbsim: SIP listener did not start"))
	}
	return nil
}

// minLevel passes on records of at least min: sipgo's debug chatter stays
// out of the device's log.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

// readyConn tells when sipgo first reads the UDP listener: by then it has
// put the listener in its connection pool, where requests sent from the
// listener's address look for it.
type readyConn struct {
	net.PacketConn
	once  sync.Once
	ready chan struct{}
}

func (c *readyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.once.Do(func() { close(c.ready) })
	return c.PacketConn.ReadFrom(b)
}

// contact is the device's (or a channel's) Contact header.
func (d *Device) contact(user string) sip.ContactHeader {
	h := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: d.cfg.LocalIP, Port: d.port}}
	if d.cfg.Transport == "TCP" {
		h.Address.UriParams = sip.NewParams()
		h.Address.UriParams.Add("transport", "tcp")
	}
	return h
}

// Close unregisters (Expires: 0), ends the streams with BYE and stops the
// device. It returns the unregistration's error, if any; the device stops
// all the same. Calling it again returns the same.
func (d *Device) Close() error {
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.closed = true
		sessions := make([]*session, 0, len(d.sessions))
		for _, s := range d.sessions {
			sessions = append(sessions, s)
		}
		d.mu.Unlock()
		var wg sync.WaitGroup
		for _, s := range sessions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.bye()
			}()
		}
		wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		d.closeErr = d.register(ctx, 0)
		cancel()
		d.stop()
	})
	return d.closeErr
}

// stop ends every goroutine and closes the sockets.
func (d *Device) stop() {
	d.cancel()
	d.ln.Close()
	d.mu.Lock()
	for _, s := range d.sessions {
		s.cancel()
	}
	d.mu.Unlock()
	d.wg.Wait()
	d.ua.Close()
}

// goTracked runs f in a goroutine that Close waits for, unless the device
// is stopping (then it reports false).
func (d *Device) goTracked(f func()) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx.Err() != nil {
		return false
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		f()
	}()
	return true
}

// PauseKeepalive stops (true) or resumes (false) the keepalives, so that a
// test sees the platform mark the device offline and online again. Resuming
// sends one at once.
func (d *Device) PauseKeepalive(paused bool) {
	if d.paused.Swap(paused) && !paused {
		kick(d.resume)
	}
}

// PauseRegistration stops (or resumes) refreshing the registration, so the
// platform sees it expire; resuming registers at once.
func (d *Device) PauseRegistration(paused bool) {
	d.noRefresh.Store(paused)
	if !paused {
		d.mu.Lock()
		d.needReg = true
		d.mu.Unlock()
		kick(d.regKick)
	}
}

// SetPassword sets the password the next REGISTER uses.
func (d *Device) SetPassword(p string) {
	d.mu.Lock()
	d.password = p
	d.mu.Unlock()
}

// Reregister registers again now.
func (d *Device) Reregister(ctx context.Context) error {
	err := d.register(ctx, d.cfg.Expires)
	kick(d.regKick)
	return err
}

// Streams is the number of live and playback sessions: from the ACK of the
// INVITE until BYE (either way) or Close.
func (d *Device) Streams() int { return int(d.streams.Load()) }

// SetLoss makes UDP media drop every nth RTP packet (0: none).
func (d *Device) SetLoss(every int) { d.loss.Store(int32(max(every, 0))) }

// SetReorder makes UDP media swap adjacent RTP packets now and then (one
// pair in every reorderEvery packets).
func (d *Device) SetReorder(on bool) { d.reorder.Store(on) }

// LastPTZ returns the last PTZ command DeviceControl sent to channel, and
// how many it has sent.
func (d *Device) LastPTZ(channel string) (manscdp.PTZ, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.ptz[channel]
	return r.last, r.count
}

// kick wakes a loop waiting on ch (buffered, one slot).
func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// register sends REGISTER with expires (0 unregisters), answers a digest
// challenge, and records the expiry granted.
func (d *Device) register(ctx context.Context, expires time.Duration) error {
	d.regMu.Lock()
	defer d.regMu.Unlock()
	d.mu.Lock()
	password, closed := d.password, d.closed
	d.mu.Unlock()
	if closed && expires > 0 {
		return errors.New("gbsim: device closed")
	}

	secs := int(expires / time.Second)
	uri := sip.Uri{Scheme: "sip", User: d.cfg.DeviceID, Host: d.cfg.Realm}
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", User: d.cfg.ServerID, Host: d.cfg.Realm})
	from := &sip.FromHeader{Address: uri, Params: sip.NewParams()}
	from.Params.Add("tag", d.regFromTag)
	callID := sip.CallIDHeader(d.regCallID)
	d.regCSeq++
	contact := d.contact(d.cfg.DeviceID)
	exp := sip.ExpiresHeader(secs)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: uri})
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: d.regCSeq, MethodName: sip.REGISTER})
	req.AppendHeader(&contact)
	req.AppendHeader(sip.NewHeader("User-Agent", "gbsim"))
	req.AppendHeader(&exp)
	d.addressServer(req)

	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	res, err := d.client.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("gbsim: REGISTER: %w", err)
	}
	if res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired {
		res, err = d.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: d.cfg.DeviceID, Password: password})
		d.regCSeq = req.CSeq().SeqNo
		if err != nil {
			return fmt.Errorf("gbsim: REGISTER with credentials: %w", err)
		}
	}
	if res.StatusCode != sip.StatusOK {
		return fmt.Errorf("gbsim: REGISTER refused: %d %s", res.StatusCode, res.Reason)
	}
	granted := expires
	if h := res.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil {
			granted = time.Duration(n) * time.Second
		}
	}
	if secs > 0 {
		d.mu.Lock()
		d.regAt, d.regFor, d.needReg = time.Now(), granted, false
		d.mu.Unlock()
		d.log.Debug("gbsim: REGISTER ok", "expires", granted)
	}
	return nil
}

// addressServer sends req to the platform over the device's transport.
func (d *Device) addressServer(req *sip.Request) {
	req.SetDestination(d.cfg.Server)
	req.SetTransport(d.cfg.Transport)
}

// registerLoop registers again at 2/3 of the granted expiry, at once when
// keepalives fail, and retries a failed attempt every few seconds.
func (d *Device) registerLoop() {
	defer d.wg.Done()
	retry := min(d.cfg.Keepalive, 5*time.Second)
	for {
		d.mu.Lock()
		wait := time.Until(d.regAt.Add(d.regFor * 2 / 3))
		if d.needReg {
			wait = 0
		}
		d.mu.Unlock()
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-d.ctx.Done():
				t.Stop()
				return
			case <-d.regKick:
				t.Stop()
				continue
			case <-t.C:
			}
		}
		if d.noRefresh.Load() {
			// Paused: the registration is left to expire until resumed.
			select {
			case <-d.ctx.Done():
				return
			case <-d.regKick:
			}
			continue
		}
		if err := d.register(d.ctx, d.cfg.Expires); err != nil {
			d.mu.Lock()
			closed := d.closed
			d.mu.Unlock()
			if closed || d.ctx.Err() != nil {
				return
			}
			d.log.Warn("gbsim: register again", "err", err)
			select {
			case <-d.ctx.Done():
				return
			case <-d.regKick:
			case <-time.After(retry):
			}
		}
	}
}

// keepaliveLoop sends a keepalive every Keepalive unless paused. After
// keepaliveMisses unanswered ones, or one the platform refuses (it has
// forgotten the device), it has the device register again.
func (d *Device) keepaliveLoop() {
	defer d.wg.Done()
	t := time.NewTicker(d.cfg.Keepalive)
	defer t.Stop()
	misses := 0
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
		case <-d.resume:
		}
		if d.paused.Load() {
			continue
		}
		ctx, cancel := context.WithTimeout(d.ctx, min(d.cfg.Keepalive, requestTimeout))
		res, err := d.send(ctx, d.keepaliveBody())
		cancel()
		switch {
		case d.ctx.Err() != nil:
			return
		case err != nil:
			misses++
			d.log.Debug("gbsim: keepalive", "err", err, "misses", misses)
			if misses < keepaliveMisses {
				continue
			}
		case res.StatusCode != sip.StatusOK:
			d.log.Info("gbsim: keepalive refused", "status", res.StatusCode)
		default:
			misses = 0
			continue
		}
		misses = 0
		d.mu.Lock()
		d.needReg = true
		d.mu.Unlock()
		kick(d.regKick)
	}
}

// newMessage is a MESSAGE to the platform with a MANSCDP body.
func (d *Device) newMessage(body []byte) *sip.Request {
	req := sip.NewRequest(sip.MESSAGE, sip.Uri{Scheme: "sip", User: d.cfg.ServerID, Host: d.cfg.Realm})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: d.cfg.DeviceID, Host: d.cfg.Realm}, Params: sip.NewParams()}
	from.Params.Add("tag", newToken(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: d.cfg.ServerID, Host: d.cfg.Realm}})
	ct := sip.ContentTypeHeader(contentTypeMANSCDP)
	req.AppendHeader(&ct)
	req.SetBody(body)
	d.addressServer(req)
	return req
}

// send sends a MANSCDP MESSAGE to the platform and returns its final
// answer.
func (d *Device) send(ctx context.Context, body []byte) (*sip.Response, error) {
	return d.client.Do(ctx, d.newMessage(body))
}

// sendOK sends a MANSCDP MESSAGE and wants 200.
func (d *Device) sendOK(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	res, err := d.send(ctx, body)
	if err != nil {
		return fmt.Errorf("gbsim: MESSAGE: %w", err)
	}
	if res.StatusCode != sip.StatusOK {
		return fmt.Errorf("gbsim: MESSAGE: %d %s", res.StatusCode, res.Reason)
	}
	return nil
}

// nextSN is the next MANSCDP SN the device uses.
func (d *Device) nextSN() int { return int(d.sn.Add(1)) }

// channel returns the channel id, if the device has it.
func (d *Device) channel(id string) (Channel, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ch := range d.channels {
		if ch.ID == id {
			return ch, true
		}
	}
	return Channel{}, false
}

// AddChannel adds (or replaces) a channel; catalog subscribers get a
// NOTIFY with the item and Event ADD.
func (d *Device) AddChannel(ch Channel) error {
	if err := checkChannel(ch); err != nil {
		return err
	}
	d.mu.Lock()
	replaced := false
	for i, c := range d.channels {
		if c.ID == ch.ID {
			d.channels[i], replaced = ch, true
		}
	}
	if !replaced {
		d.channels = append(d.channels, ch)
	}
	d.mu.Unlock()
	event := "ADD"
	if replaced {
		event = "UPDATE"
	}
	return d.notifyCatalog(ch, event)
}

// RemoveChannel removes a channel; catalog subscribers get a NOTIFY with
// Event DEL. Removing an unknown channel does nothing.
func (d *Device) RemoveChannel(id string) error {
	d.mu.Lock()
	var gone *Channel
	for i, c := range d.channels {
		if c.ID == id {
			gone = &c
			d.channels = append(d.channels[:i:i], d.channels[i+1:]...)
			break
		}
	}
	d.mu.Unlock()
	if gone == nil {
		return nil
	}
	return d.notifyCatalog(*gone, "DEL")
}

// Alarm sends a Notify Alarm for channel (the device itself when channel
// is its own ID) and returns when the platform has answered 200. The
// channel's position goes with it unless it has NoPosition.
func (d *Device) Alarm(channel string, alarmType, method int, at time.Time, desc string) error {
	ch, ok := d.channel(channel)
	if !ok && channel != d.cfg.DeviceID {
		return fmt.Errorf("gbsim: no channel %s", channel)
	}
	if !ok {
		ch = Channel{ID: channel, NoPosition: true}
	}
	body, err := d.alarmBody(ch, alarmType, method, at, desc)
	if err != nil {
		return err
	}
	return d.sendOK(d.ctx, body)
}
