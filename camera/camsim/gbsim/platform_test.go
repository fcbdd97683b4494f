package gbsim

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/pion/rtp"

	"gridwatch/camera/gb28181/manscdp"
)

// The IDs of the tests: a platform (type 200), an NVR (118), cameras (131).
const (
	testServerID = "34020000002000000001"
	testDeviceID = "34020000001180000001"
	testPassword = "secret12"
	testRealm    = "3402000000"
)

// waitLong bounds every wait for something that should happen within a
// few frames or one SIP exchange.
const waitLong = 10 * time.Second

// waitFor polls cond every few milliseconds until it holds, failing the
// test after waitLong.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitLong)
		}
		<-time.After(5 * time.Millisecond) // polling a state nothing announces (a count, a row)
	}
}

// recv takes the next value from ch, failing the test after waitLong.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLong):
		t.Fatalf("no %s within %v", what, waitLong)
		var zero T
		return zero
	}
}

// registration is a REGISTER the test platform accepted.
type registration struct {
	expires   int
	source    string
	transport string
	contact   string
}

// platform is a minimal GB/T 28181 platform: it challenges REGISTER with
// digest and checks the answer, answers MESSAGEs and NOTIFYs, and sends
// requests to the device where its REGISTER came from (over TCP: on the
// device's connection).
type platform struct {
	t     testing.TB
	qop   bool
	ua    *sipgo.UserAgent
	srv   *sipgo.Server
	cli   *sipgo.Client
	dlg   *sipgo.DialogUA
	udp   net.PacketConn
	tcp   net.Listener
	nonce string
	wg    sync.WaitGroup

	regs       chan registration
	keepalives chan *manscdp.Message
	msgs       chan *manscdp.Message // other MESSAGEs: responses, alarms, media status
	notifies   chan *sip.Request
	ended      chan *sip.Request // MediaStatus MESSAGEs
	byes       chan string       // Call-IDs

	mu              sync.Mutex
	password        string
	source, network string // the device's, from its last REGISTER
	refuseKeepalive bool
	sn              int
}

func newPlatform(t testing.TB, qop bool) *platform {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(testServerID),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(log)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log)))
	if err != nil {
		t.Fatal(err)
	}
	p := &platform{t: t, qop: qop, ua: ua, nonce: newToken(8), password: testPassword,
		regs: make(chan registration, 64), keepalives: make(chan *manscdp.Message, 256),
		msgs: make(chan *manscdp.Message, 256), notifies: make(chan *sip.Request, 64), ended: make(chan *sip.Request, 64), byes: make(chan string, 64)}
	if p.srv, err = sipgo.NewServer(ua, sipgo.WithServerLogger(log)); err != nil {
		t.Fatal(err)
	}
	if p.cli, err = sipgo.NewClient(ua, sipgo.WithClientLogger(log)); err != nil {
		t.Fatal(err)
	}
	p.srv.OnRegister(p.onRegister)
	p.srv.OnMessage(p.onMessage)
	p.srv.OnNotify(p.onNotify)
	p.srv.OnBye(p.onBye)
	p.srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	if p.udp, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if p.tcp, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	p.wg.Add(2)
	go func() { defer p.wg.Done(); p.srv.ServeUDP(p.udp) }()
	go func() { defer p.wg.Done(); p.srv.ServeTCP(p.tcp) }()
	p.dlg = &sipgo.DialogUA{Client: p.cli, RewriteContact: true,
		ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: testServerID, Host: "127.0.0.1", Port: p.udp.LocalAddr().(*net.UDPAddr).Port}}}
	t.Cleanup(func() {
		p.udp.Close()
		p.tcp.Close()
		p.ua.Close()
		p.wg.Wait()
	})
	return p
}

// addr is the platform's SIP address for a transport.
func (p *platform) addr(transport string) string {
	if transport == "tcp" {
		return p.tcp.Addr().String()
	}
	return p.udp.LocalAddr().String()
}

func (p *platform) setPassword(pw string) {
	p.mu.Lock()
	p.password = pw
	p.mu.Unlock()
}

func respond(req *sip.Request, tx sip.ServerTransaction, status int, reason string, headers ...sip.Header) {
	res := sip.NewResponseFromRequest(req, status, reason, nil)
	for _, h := range headers {
		res.AppendHeader(h)
	}
	tx.Respond(res)
}

func (p *platform) onRegister(req *sip.Request, tx sip.ServerTransaction) {
	chal := digest.Challenge{Realm: testRealm, Nonce: p.nonce, Algorithm: "MD5"}
	if p.qop {
		chal.QOP = []string{"auth"}
	}
	h := req.GetHeader("Authorization")
	if h == nil {
		respond(req, tx, sip.StatusUnauthorized, "Unauthorized", sip.NewHeader("WWW-Authenticate", chal.String()))
		return
	}
	p.mu.Lock()
	password := p.password
	p.mu.Unlock()
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil {
		respond(req, tx, sip.StatusBadRequest, "Bad Request")
		return
	}
	want, err := digest.Digest(&chal, digest.Options{Method: "REGISTER", URI: cred.URI, Username: testDeviceID,
		Password: password, Cnonce: cred.Cnonce, Count: cred.Nc})
	if err != nil || cred.Username != testDeviceID || cred.Realm != testRealm || cred.Nonce != p.nonce ||
		cred.URI != "sip:"+testServerID+"@"+testRealm || cred.Response != want.Response ||
		req.Recipient.String() != cred.URI || req.From().Address.User != testDeviceID {
		respond(req, tx, sip.StatusForbidden, "Forbidden")
		return
	}
	expires := 3600
	if e := req.GetHeader("Expires"); e != nil {
		expires, _ = strconv.Atoi(e.Value())
	}
	p.mu.Lock()
	p.source, p.network = req.Source(), req.Transport()
	p.mu.Unlock()
	respond(req, tx, sip.StatusOK, "OK", sip.NewHeader("Expires", strconv.Itoa(expires)),
		sip.NewHeader("Date", time.Now().Format("2006-01-02T15:04:05.000")))
	r := registration{expires: expires, source: req.Source(), transport: req.Transport()}
	if c := req.Contact(); c != nil {
		r.contact = c.Address.String()
	}
	p.regs <- r
}

func (p *platform) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	if ct := req.ContentType(); ct == nil || !strings.EqualFold(ct.Value(), contentTypeMANSCDP) {
		respond(req, tx, sip.StatusUnsupportedMediaType, "Unsupported Media Type")
		return
	}
	m, err := manscdp.Decode(req.Body())
	if err != nil {
		p.t.Errorf("platform: bad MESSAGE body: %v\n%s", err, req.Body())
		respond(req, tx, sip.StatusBadRequest, "Bad Request")
		return
	}
	if m.CmdType == manscdp.CmdKeepalive {
		p.mu.Lock()
		refuse := p.refuseKeepalive
		p.mu.Unlock()
		if refuse {
			respond(req, tx, sip.StatusForbidden, "Not registered")
			return
		}
		p.keepalives <- m
		respond(req, tx, sip.StatusOK, "OK")
		return
	}
	if m.CmdType == manscdp.CmdMediaStatus {
		p.ended <- req
		respond(req, tx, sip.StatusOK, "OK")
		return
	}
	// Queued before the answer: the device sends the next message of a
	// paged response once this one is answered, and sipgo handles each
	// request in a goroutine of its own.
	p.msgs <- m
	respond(req, tx, sip.StatusOK, "OK")
}

func (p *platform) onNotify(req *sip.Request, tx sip.ServerTransaction) {
	p.notifies <- req
	respond(req, tx, sip.StatusOK, "OK")
}

func (p *platform) onBye(req *sip.Request, tx sip.ServerTransaction) {
	p.byes <- req.CallID().Value()
	respond(req, tx, sip.StatusOK, "OK")
}

// newRequest is a request to target (the device or a channel), sent
// where the device registered from.
func (p *platform) newRequest(method sip.RequestMethod, target string, contentType string, body []byte) *sip.Request {
	p.mu.Lock()
	source, network := p.source, p.network
	p.mu.Unlock()
	host, port, _ := net.SplitHostPort(source)
	n, _ := strconv.Atoi(port)
	req := sip.NewRequest(method, sip.Uri{Scheme: "sip", User: target, Host: host, Port: n})
	req.SetDestination(source)
	req.SetTransport(network)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: testServerID, Host: testRealm}, Params: sip.NewParams()}
	from.Params.Add("tag", newToken(6))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: target, Host: testRealm}})
	if body != nil {
		req.AppendHeader(sip.NewHeader("Content-Type", contentType))
		req.SetBody(body)
	}
	return req
}

// do sends a request and wants 200.
func (p *platform) do(req *sip.Request) *sip.Response {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	res, err := p.cli.Do(ctx, req)
	if err != nil {
		p.t.Fatalf("%s: %v", req.Method, err)
	}
	if res.StatusCode != sip.StatusOK {
		p.t.Fatalf("%s: %d %s", req.Method, res.StatusCode, res.Reason)
	}
	return res
}

// send sends a MANSCDP message in a MESSAGE and wants 200.
func (p *platform) send(m *manscdp.Message) {
	p.t.Helper()
	body, err := manscdp.Encode(m, "GB2312")
	if err != nil {
		p.t.Fatal(err)
	}
	p.do(p.newRequest(sip.MESSAGE, m.DeviceID, contentTypeMANSCDP, body))
}

func (p *platform) nextSN() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sn++
	return p.sn
}

// query sends a Query and collects its Response messages until they
// bring SumNum items (catalog, record list) or one came (others).
func (p *platform) query(q *manscdp.Message) []*manscdp.Message {
	p.t.Helper()
	p.send(q)
	var got []*manscdp.Message
	items := 0
	for {
		m := recv(p.t, p.msgs, q.CmdType+" response")
		if m.Root() != manscdp.RootResponse || m.CmdType != q.CmdType || m.SN != q.SN {
			p.t.Fatalf("waiting for %s response %d, got %s %s %d", q.CmdType, q.SN, m.Root(), m.CmdType, m.SN)
		}
		got = append(got, m)
		switch {
		case m.DeviceList != nil:
			items += len(m.DeviceList.Items)
		case m.RecordList != nil:
			items += len(m.RecordList.Items)
		default:
			return got
		}
		if items >= m.SumNum {
			return got
		}
	}
}

// startDevice starts a device registered with p for the test; cleanup
// closes it.
func startDevice(t testing.TB, p *platform, cfg Config) *Device {
	t.Helper()
	if cfg.Server == "" {
		cfg.Server = p.addr(cfg.Transport)
	}
	cfg.ServerID = testServerID
	if cfg.DeviceID == "" {
		cfg.DeviceID = testDeviceID
	}
	if cfg.Password == "" {
		cfg.Password = testPassword
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	d, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	r := recv(t, p.regs, "REGISTER")
	if r.expires <= 0 {
		t.Fatalf("REGISTER with Expires %d", r.expires)
	}
	return d
}

// channelID is the test's nth camera channel.
func channelID(n int) string { return fmt.Sprintf("3402000000131%07d", n) }

// offerSDP is a platform's SDP offer as GB/T 28181-2016 writes it.
func offerSDP(name, channel string, port int, transport, ssrc string, start, end int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=%s 0 0 IN IP4 127.0.0.1\r\ns=%s\r\n", testServerID, name)
	if name != "Play" {
		fmt.Fprintf(&b, "u=%s:0\r\n", channel)
	}
	fmt.Fprintf(&b, "c=IN IP4 127.0.0.1\r\nt=%d %d\r\n", start, end)
	proto := "RTP/AVP"
	if transport != "udp" {
		proto = "TCP/RTP/AVP"
	}
	fmt.Fprintf(&b, "m=video %d %s 96 97 98\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\na=rtpmap:97 MPEG4/90000\r\na=rtpmap:98 H264/90000\r\n", port, proto)
	switch transport {
	case "tcp-passive":
		b.WriteString("a=setup:passive\r\na=connection:new\r\n")
	case "tcp-active":
		b.WriteString("a=setup:active\r\na=connection:new\r\n")
	}
	fmt.Fprintf(&b, "y=%s\r\n", ssrc)
	return b.String()
}

// call is a platform's INVITE session and its media.
type call struct {
	t      testing.TB
	p      *platform
	sess   *sipgo.DialogClientSession
	answer string
	ssrc   uint32
	next   func() *rtp.Packet
	close  func()
}

// invite plays channel over transport (udp, tcp-passive: the platform
// listens, tcp-active: the device listens) and returns once the answer
// was ACKed and the media connection made.
func (p *platform) invite(channel, name, transport, ssrc string, start, end int64) *call {
	t := p.t
	t.Helper()
	c := &call{t: t, p: p}
	n, _ := strconv.ParseUint(ssrc, 10, 32)
	c.ssrc = uint32(n)
	port := 0
	var udp net.PacketConn
	var ln net.Listener
	var err error
	switch transport {
	case "udp":
		if udp, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		port = udp.LocalAddr().(*net.UDPAddr).Port
	case "tcp-passive":
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
	default:
		port = 9
	}
	req := p.newRequest(sip.INVITE, channel, "application/sdp", []byte(offerSDP(name, channel, port, transport, ssrc, start, end)))
	req.AppendHeader(sip.NewHeader("Subject", fmt.Sprintf("%s:%s,%s:0", channel, ssrc, testServerID)))
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	sess, err := p.dlg.WriteInvite(ctx, req)
	if err != nil {
		t.Fatalf("INVITE: %v", err)
	}
	if err := sess.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		t.Fatalf("INVITE answer: %v", err)
	}
	c.sess = sess
	c.answer = string(sess.InviteResponse.Body())
	if err := sess.Ack(ctx); err != nil {
		t.Fatalf("ACK: %v", err)
	}
	switch transport {
	case "udp":
		buf := make([]byte, 2048)
		c.next = func() *rtp.Packet {
			udp.SetReadDeadline(time.Now().Add(waitLong))
			n, _, err := udp.ReadFrom(buf)
			if err != nil {
				t.Fatalf("RTP over UDP: %v", err)
			}
			var pkt rtp.Packet
			if err := pkt.Unmarshal(append([]byte(nil), buf[:n]...)); err != nil {
				t.Fatalf("RTP: %v", err)
			}
			return &pkt
		}
		c.close = func() { udp.Close() }
	default:
		var conn net.Conn
		if ln != nil {
			ln.(*net.TCPListener).SetDeadline(time.Now().Add(waitLong))
			conn, err = ln.Accept()
			ln.Close()
		} else {
			conn, err = net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(answerPort(t, c.answer))), waitLong)
		}
		if err != nil {
			t.Fatalf("media connection: %v", err)
		}
		c.next = func() *rtp.Packet {
			conn.SetReadDeadline(time.Now().Add(waitLong))
			var l [2]byte
			if _, err := io.ReadFull(conn, l[:]); err != nil {
				t.Fatalf("RTP over TCP: %v", err)
			}
			b := make([]byte, binary.BigEndian.Uint16(l[:]))
			if _, err := io.ReadFull(conn, b); err != nil {
				t.Fatalf("RTP over TCP: %v", err)
			}
			var pkt rtp.Packet
			if err := pkt.Unmarshal(b); err != nil {
				t.Fatalf("RTP: %v", err)
			}
			return &pkt
		}
		c.close = func() { conn.Close() }
	}
	t.Cleanup(c.close)
	return c
}

// answerPort is the video port of an SDP answer.
func answerPort(t testing.TB, sdp string) int {
	t.Helper()
	for _, l := range strings.Split(sdp, "\r\n") {
		if m, ok := strings.CutPrefix(l, "m=video "); ok {
			port, _ := strconv.Atoi(strings.Fields(m)[0])
			return port
		}
	}
	t.Fatalf("no video medium in the answer:\n%s", sdp)
	return 0
}

// bye ends the call from the platform's side.
func (c *call) bye() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := c.sess.Bye(ctx); err != nil {
		c.t.Fatalf("BYE: %v", err)
	}
}

// info sends a MANSRTSP command in the call's dialog.
func (c *call) info(body string) {
	c.t.Helper()
	req := sip.NewRequest(sip.INFO, c.sess.InviteResponse.Contact().Address)
	req.AppendHeader(sip.NewHeader("Content-Type", contentTypeMANSRTSP))
	req.SetBody([]byte(body))
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	res, err := c.sess.Do(ctx, req)
	if err != nil {
		c.t.Fatalf("INFO: %v", err)
	}
	if res.StatusCode != sip.StatusOK {
		c.t.Fatalf("INFO: %d %s", res.StatusCode, res.Reason)
	}
}

// packs reads n RTP packets and checks them: payload type 96, the SSRC,
// sequence numbers without a gap, a pack's packets sharing its timestamp
// and the marker on its last, and each pack starting with a PS pack
// header (00 00 01 BA). It returns the packs (payloads joined) and their
// timestamps.
func (c *call) packs(n int) (packs [][]byte, stamps []uint32) {
	c.t.Helper()
	var cur []byte
	var seq uint16
	open := false
	for i := 0; i < n || open; i++ {
		pkt := c.next()
		if pkt.PayloadType != payloadType || pkt.SSRC != c.ssrc {
			c.t.Fatalf("packet %d: payload type %d, SSRC %d; want %d, %d", i, pkt.PayloadType, pkt.SSRC, payloadType, c.ssrc)
		}
		if i > 0 && pkt.SequenceNumber != seq+1 {
			c.t.Fatalf("packet %d: sequence %d after %d", i, pkt.SequenceNumber, seq)
		}
		seq = pkt.SequenceNumber
		if !open {
			if len(pkt.Payload) < 4 || string(pkt.Payload[:4]) != "\x00\x00\x01\xba" {
				c.t.Fatalf("packet %d starts a pack with % x, want 00 00 01 ba", i, pkt.Payload[:min(4, len(pkt.Payload))])
			}
			open = true
			cur = nil
			stamps = append(stamps, pkt.Timestamp)
		} else if pkt.Timestamp != stamps[len(stamps)-1] {
			c.t.Fatalf("packet %d: timestamp %d inside the pack at %d", i, pkt.Timestamp, stamps[len(stamps)-1])
		}
		if len(pkt.Payload) > maxPayload {
			c.t.Fatalf("packet %d: payload of %d bytes", i, len(pkt.Payload))
		}
		cur = append(cur, pkt.Payload...)
		if pkt.Marker {
			packs = append(packs, cur)
			open = false
		}
	}
	return packs, stamps
}
