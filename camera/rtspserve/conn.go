package rtspserve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
)

// Connection limits.
const (
	// readTimeout bounds the wait for a client's next request until it
	// plays; a playing client over TCP need not send anything (its
	// connection is its liveness) and is bounded by its writes instead.
	readTimeout = 30 * time.Second
	// sessionTimeout is announced in SETUP's Session header. Playing over
	// TCP, a session lives as long as its connection, whatever the client
	// sends; the figure tells clients how often keepalives would be due.
	sessionTimeout = 60
	// readBufferSize is a connection's read buffer: requests are a few
	// hundred bytes, and the RTCP a client sends is discarded as it comes.
	readBufferSize = 4 << 10
)

// conn is one client connection: its goroutine reads and answers requests,
// and once the client plays, the session's writer writes media to it. Only
// interleaved TCP is offered, so a session lives on the connection that
// set it up.
//
// Why not gortsplib's server: it gives every connection and session five
// goroutines (reader, connection, session, its write queue, RTCP sender)
// and queues of its own, which at 50 viewers a camera was most of the
// relay's memory and a good part of its CPU, while the protocol a viewer
// needs is five requests. The messages are still gortsplib's (pkg/base,
// pkg/headers, pkg/description).
type conn struct {
	s      *Server
	nc     net.Conn
	remote string
	br     *bufio.Reader

	// wmu makes a response and a batch of media never interleave.
	wmu sync.Mutex
	// deadline is the write deadline last set; guarded by wmu.
	deadline time.Time
	// partial is set while the socket holds part of a frame whose rest
	// the session's writer has yet to write (see writeRest); other writes
	// wait on restDone meanwhile. Guarded by wmu.
	partial  bool
	restDone *sync.Cond
	// raw is the socket, for writes that must not block (tryWrite); nil
	// when the connection has none. tw is tryWrite's call, made once:
	// a closure a write was a megabyte of garbage a second at 500 viewers.
	raw syscall.RawConn
	tw  rawWrite

	// pending is the acquisition of the connection's last successful
	// DESCRIBE, until a SETUP takes it over. One at most, so a client
	// cannot pile up cameras on a connection. Only the connection's
	// goroutine touches pending and sess.
	pending *lease
	sess    *session
}

// session is what SETUP made: the lease, the media set up, and from PLAY on
// the writer.
type session struct {
	id    string
	lease *lease
	// channel is the interleaved channel of the video's RTP (RTCP is
	// channel+1); audioChannel the audio's. -1: that medium is not set up.
	channel, audioChannel int
	w                     *writer
	// end is what Config.Watch returned for this session's PLAY.
	end func(bytes int64)
}

// write writes b with a deadline writeTimeout ahead. The deadline is set
// again only once half of it has passed: setting it costs a timer update,
// and once a picture per viewer that was a tenth of the relay's CPU.
func (c *conn) write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for c.partial {
		c.restDone.Wait()
	}
	return c.writeLocked(b)
}

func (c *conn) writeLocked(b []byte) (int, error) {
	if err := c.freshDeadline(); err != nil {
		return 0, err
	}
	return c.nc.Write(b)
}

// freshDeadline keeps the write deadline at least half of writeTimeout
// ahead. A write that does not wait (tryWrite) needs it too: the socket
// refuses any write once its deadline has passed.
func (c *conn) freshDeadline() error {
	now := time.Now()
	if c.deadline.Sub(now) < c.s.writeTimeout/2 {
		c.deadline = now.Add(c.s.writeTimeout)
		return c.nc.SetWriteDeadline(c.deadline)
	}
	return nil
}

// writeRest writes the rest of a frame tryWrite began (or any bytes), and
// then lets other writes go on.
func (c *conn) writeRest(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	n, err := c.writeLocked(b)
	if c.partial {
		c.partial = false
		c.restDone.Broadcast()
	}
	return n, err
}

// abandonPartial gives up on the rest of a frame: the connection is closed,
// since nothing written after a part of a frame would make sense.
func (c *conn) abandonPartial() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.partial {
		c.partial = false
		c.restDone.Broadcast()
	}
	_ = c.nc.Close()
}

// tryWrite writes what the socket takes of b now, without waiting: n <
// len(b) when it is full (n may be 0), or when a response is being written
// (n = 0). A part of a frame written leaves the connection partial until
// writeRest writes the rest. wrote says whether write(2) was called, for
// the server's count of writes.
func (c *conn) tryWrite(b []byte) (n int, wrote bool, err error) {
	if c.raw == nil || !c.wmu.TryLock() {
		return 0, false, nil
	}
	defer c.wmu.Unlock()
	if c.partial {
		return 0, false, nil
	}
	if err := c.freshDeadline(); err != nil {
		return 0, false, err
	}
	c.tw.b = b
	if err := c.raw.Write(c.tw.write); err != nil {
		return 0, false, err
	}
	n, werr := c.tw.n, c.tw.err
	c.tw = rawWrite{write: c.tw.write}
	switch {
	case werr == syscall.EAGAIN:
		return 0, true, nil
	case werr != nil:
		return 0, true, werr
	}
	if n > 0 && n < len(b) {
		c.partial = true
	}
	return n, true, nil
}

// rawWrite is one write(2) of b on a socket, as RawConn.Write calls it:
// done, or would block, it never waits. Guarded by the connection's wmu.
type rawWrite struct {
	b     []byte
	n     int
	err   error
	write func(fd uintptr) bool // rw.do, bound once
}

func (rw *rawWrite) do(fd uintptr) bool {
	for {
		rw.n, rw.err = syscall.Write(int(fd), rw.b)
		if rw.err != syscall.EINTR {
			rw.n = max(rw.n, 0)
			return true
		}
	}
}

// serve reads and answers requests until the connection fails, the client
// leaves or the server stops; then it ends the session and releases what
// the connection holds.
func (c *conn) serve() {
	if c.serveRequests() {
		return // handed over to idle
	}
	c.close()
	c.s.conns.Done()
}

// idle waits for a playing client's next bytes on a goroutine of its own,
// which needs little more than the least stack Go gives one, and serves its
// requests again when they come: the goroutine that answered DESCRIBE grew
// its stack in admission and keeps it, 8 KiB or more a viewer.
func (c *conn) idle() {
	if err := c.awaitByte(); err != nil {
		c.s.log.Debug("rtspserve: conn closed", "remote", c.remote, "reason", errText(err))
		c.close()
		c.s.conns.Done()
		return
	}
	c.serve()
}

// serveRequests answers requests until the connection ends (false), or
// until a playing client has sent nothing more for now (true): then it has
// started idle to wait, and the connection is idle's.
func (c *conn) serveRequests() bool {
	s := c.s
	reading := true // a read deadline may be set
	for {
		playing := c.sess != nil && c.sess.w != nil
		switch {
		case !playing:
			_ = c.nc.SetReadDeadline(time.Now().Add(readTimeout))
			reading = true
		case reading:
			_ = c.nc.SetReadDeadline(time.Time{})
			reading = false
		}
		if playing && c.br.Buffered() == 0 {
			// Wait for the client's next request (if it ever sends one)
			// without a read buffer and on a small stack: most playing
			// clients send nothing, or a keepalive a minute.
			go c.idle()
			return true
		}
		b, err := c.br.Peek(1)
		if err != nil {
			s.log.Debug("rtspserve: conn closed", "remote", c.remote, "reason", errText(err))
			return false
		}
		if b[0] == base.InterleavedFrameMagicByte {
			// RTCP receiver reports: nothing here needs them.
			if err := c.skipFrame(); err != nil {
				return false
			}
			continue
		}
		var req base.Request
		if err := req.Unmarshal(c.br); err != nil {
			s.log.Debug("rtspserve: bad request", "remote", c.remote, "err", errText(err))
			_ = c.respond(&base.Response{StatusCode: base.StatusBadRequest}, nil)
			return false
		}
		res, then := c.handle(&req)
		if err := c.respond(res, req.Header["CSeq"]); err != nil {
			s.log.Debug("rtspserve: conn closed", "remote", c.remote, "reason", errText(err))
			return false
		}
		if then != nil {
			then()
		}
	}
}

// awaitByte blocks until the client sends something and then gives the
// connection a read buffer again, starting with what came. The buffer it had
// is left to the collector meanwhile: at 50 viewers a camera, idle read
// buffers were a tenth of the relay's heap.
func (c *conn) awaitByte() error {
	c.br = nil
	var one [1]byte
	n, err := c.nc.Read(one[:])
	if n == 0 {
		if err == nil {
			err = io.ErrNoProgress
		}
		return err
	}
	c.br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(one[:n]), c.nc), readBufferSize)
	_, err = c.br.Peek(n) // buffered now, from the first reader alone: no wait
	return err
}

// skipFrame discards one interleaved frame.
func (c *conn) skipFrame() error {
	h, err := c.br.Peek(4)
	if err != nil {
		return err
	}
	n := int(h[2])<<8 | int(h[3])
	_, err = c.br.Discard(4 + n)
	return err
}

// respond writes res, with the request's CSeq.
func (c *conn) respond(res *base.Response, cseq base.HeaderValue) error {
	if res.Header == nil {
		res.Header = base.Header{}
	}
	if cseq != nil {
		res.Header["CSeq"] = cseq
	}
	res.Header["Server"] = base.HeaderValue{"gridwatch"}
	b, err := res.Marshal()
	if err != nil {
		return err
	}
	_, err = c.write(b)
	return err
}

// close ends the session and releases the pending acquisition. The
// connection is closed first, so that a writer blocked on it returns.
func (c *conn) close() {
	_ = c.nc.Close()
	c.endSession()
	if c.pending != nil {
		c.pending.close()
		c.pending = nil
	}
	c.s.untrackConn(c)
}

// endSession stops the session's writer, tells Watch how many bytes the
// client got and releases the session's acquisition.
func (c *conn) endSession() {
	ss := c.sess
	if ss == nil {
		return
	}
	c.sess = nil
	if ss.w != nil {
		ss.w.stop()
		// The count is final once the writer has returned (its write has
		// a deadline, so this wait is bounded): under load a client can
		// read a picture and leave before the Write that sent it returned.
		<-ss.w.done
		if ss.end != nil {
			ss.end(ss.w.sent.Load())
		}
	}
	ss.lease.close()
	c.s.log.Info("rtspserve: session closed", "camera", ss.lease.key.camera, "stream", ss.lease.key.stream, "remote", c.remote)
}

// handle answers a request. then, when not nil, runs once the response is
// written: PLAY starts the writer there, so no RTP precedes its answer.
func (c *conn) handle(req *base.Request) (res *base.Response, then func()) {
	if req.URL == nil {
		return status(base.StatusBadRequest), nil
	}
	switch req.Method {
	case base.Options:
		return &base.Response{StatusCode: base.StatusOK, Header: base.Header{
			"Public": base.HeaderValue{"OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN"},
		}}, nil
	case base.Describe:
		return c.describe(req), nil
	case base.Setup:
		return c.setup(req), nil
	case base.Play:
		return c.play(req)
	case base.Teardown:
		if res := c.checkSession(req); res != nil {
			return res, nil
		}
		c.endSession()
		return status(base.StatusOK), nil
	case base.GetParameter, base.SetParameter:
		// Keepalives. SET_PARAMETER sets nothing here.
		return status(base.StatusOK), nil
	}
	return status(base.StatusNotImplemented), nil
}

// checkSession answers 454 when the request names a session that is not
// this connection's, or none while it needs one.
func (c *conn) checkSession(req *base.Request) *base.Response {
	if c.sess == nil {
		return status(base.StatusSessionNotFound)
	}
	if v := req.Header["Session"]; len(v) == 1 {
		id, _, _ := strings.Cut(v[0], ";")
		if strings.TrimSpace(id) != c.sess.id {
			return status(base.StatusSessionNotFound)
		}
	}
	return nil
}

// streamPath is a request's path and query without what clients add to the
// URL they were given: a trailing slash (the Content-Base) on PLAY and the
// like, and a medium's control ("/trackID=N", after the query when the URL
// has one, as ffmpeg and gortsplib put it, else after the path) on SETUP.
// track is the medium's index, 0 when none is named.
func streamPath(u *base.URL) (path, query string, track int) {
	path, query = u.Path, u.RawQuery
	if i := strings.LastIndex(query, "/trackID="); i >= 0 {
		track, _ = strconv.Atoi(query[i+len("/trackID="):])
		return path, query[:i], track
	}
	if i := strings.LastIndex(path, "/trackID="); i >= 0 {
		track, _ = strconv.Atoi(path[i+len("/trackID="):])
		return path[:i], query, track
	}
	if q, ok := strings.CutSuffix(query, "/"); ok {
		return path, q, 0
	}
	if len(path) > 1 && strings.HasSuffix(path, "/") {
		return path[:len(path)-1], query, 0
	}
	return path, query, 0
}

func (c *conn) describe(req *base.Request) *base.Response {
	path, query, _ := streamPath(req.URL)
	l := (*lease)(nil)
	if id, name, ok := parsePath(path); ok && c.pending != nil && c.pending.key == (key{id, name}) {
		// A client describing the same stream again on this connection
		// was let in already: answer from what it holds.
		l = c.pending
	} else {
		var res *base.Response
		if l, res = c.s.admit(req, path, query, c.remote); l == nil {
			return res
		}
		if c.pending != nil {
			c.pending.close()
		}
		c.pending = l
		c.s.log.Debug("rtspserve: described", "camera", l.key.camera, "stream", l.key.stream, "remote", c.remote)
	}
	contentBase := req.URL.String()
	if !strings.HasSuffix(contentBase, "/") {
		contentBase += "/"
	}
	return &base.Response{
		StatusCode: base.StatusOK,
		Header: base.Header{
			"Content-Base": base.HeaderValue{contentBase},
			"Content-Type": base.HeaderValue{"application/sdp"},
		},
		Body: l.sdp,
	}
}

// setup sets up a medium of the connection's session, making the session
// (with the lease of this connection's DESCRIBE of the same path, or a new
// admission for a client that skips DESCRIBE) on the first.
func (c *conn) setup(req *base.Request) *base.Response {
	path, query, track := streamPath(req.URL)
	var ths headers.Transports
	if err := ths.Unmarshal(req.Header["Transport"]); err != nil {
		return status(base.StatusBadRequest)
	}
	var th *headers.Transport
	for i := range ths {
		if ths[i].Protocol == headers.TransportProtocolTCP && !ths[i].Secure {
			th = &ths[i]
			break
		}
	}
	if th == nil {
		// UDP needs fixed even ports a listener on ":0" cannot promise;
		// clients fall back to TCP on 461.
		return status(base.StatusUnsupportedTransport)
	}
	id, name, ok := parsePath(path)
	if !ok {
		return status(base.StatusNotFound)
	}
	k := key{id, name}
	ss := c.sess
	if ss != nil {
		if res := c.checkSession(req); res != nil {
			return res
		}
		if ss.lease.key != k {
			return status(base.StatusBadRequest) // one stream a session
		}
		if ss.w != nil {
			return status(base.StatusMethodNotValidInThisState)
		}
	} else {
		l := c.pending
		if l != nil && l.key == k {
			c.pending = nil
		} else {
			var res *base.Response
			if l, res = c.s.admit(req, path, query, c.remote); l == nil {
				return res
			}
		}
		var sid [8]byte
		for i := range sid {
			sid[i] = byte(rand.Uint32())
		}
		ss = &session{id: hex.EncodeToString(sid[:]), lease: l, channel: -1, audioChannel: -1}
		c.sess = ss
	}
	used := 0
	if ss.channel >= 0 {
		used++
	}
	if ss.audioChannel >= 0 {
		used++
	}
	ch := 2 * used
	if th.InterleavedIDs != nil {
		ch = th.InterleavedIDs[0]
	}
	if ch < 0 || ch > 253 {
		return status(base.StatusBadRequest)
	}
	ssrc := ss.lease.ssrc
	if track == 1 && ss.lease.audio != nil {
		ss.audioChannel = ch
		ssrc = ss.lease.audioSSRC
	} else {
		ss.channel = ch
	}
	out := headers.Transport{
		Protocol:       headers.TransportProtocolTCP,
		InterleavedIDs: &[2]int{ch, ch + 1},
		SSRC:           &ssrc,
	}
	if th.Delivery != nil {
		out.Delivery = th.Delivery
	}
	timeout := uint(sessionTimeout)
	return &base.Response{StatusCode: base.StatusOK, Header: base.Header{
		"Transport": out.Marshal(),
		"Session":   headers.Session{Session: ss.id, Timeout: &timeout}.Marshal(),
	}}
}

// play answers PLAY; the writer starts once the answer is out. Watch hears
// of the session first.
func (c *conn) play(req *base.Request) (*base.Response, func()) {
	if res := c.checkSession(req); res != nil {
		return res, nil
	}
	ss := c.sess
	res := &base.Response{StatusCode: base.StatusOK, Header: base.Header{
		"Session": base.HeaderValue{ss.id},
		"Range":   base.HeaderValue{"npt=0.000-"},
	}}
	if ss.w != nil {
		return res, nil // PLAY again while playing
	}
	if ss.channel < 0 && ss.audioChannel < 0 {
		return status(base.StatusMethodNotValidInThisState), nil
	}
	l := ss.lease
	if watch := c.s.cfg.Watch; watch != nil {
		wctx, cancel := context.WithTimeout(c.s.ctx, c.s.cfg.ReadyTimeout)
		ss.end = watch(wctx, Play{Token: l.token, Camera: l.key.camera, Stream: l.key.stream, Remote: c.remote})
		cancel()
	}
	c.s.log.Info("rtspserve: play", "camera", l.key.camera, "stream", l.key.stream, "remote", c.remote)
	// The writer exists from here on, so that the session's end waits
	// for it and Watch's end is called once, even if the answer fails.
	ss.w = c.s.newWriter(writerConfig{lease: l, c: c, channel: ss.channel, audioChannel: ss.audioChannel})
	return res, func() { ss.w.start() }
}
