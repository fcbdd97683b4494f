package peerbench

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Player is one RTSP viewer over TCP (interleaved): the same few lines of
// protocol for every server, so that no server is favoured by its own
// client. It plays the first video medium only.
type Player struct {
	nc net.Conn
	br *bufio.Reader

	// Counters, read by other goroutines while Run runs.
	Pictures  atomic.Int64 // access units completed (RTP marker bit)
	Keyframes atomic.Int64 // of which had an IDR picture
	Bytes     atomic.Int64 // interleaved payload bytes received

	firstKey chan struct{} // closed at the end of the first keyframe
	idr      bool          // the picture being received holds an IDR
	channel  byte          // the video's RTP channel
}

// Dial opens an RTSP session on rawURL and plays it: DESCRIBE, SETUP of the
// first video medium (TCP, interleaved 0-1), PLAY. user and password, when
// set, go as Basic credentials (gridwatch takes its API token as the
// password). ctx bounds the handshake.
func Dial(ctx context.Context, rawURL, user, password string) (*Player, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	p := &Player{nc: nc, br: bufio.NewReaderSize(nc, 64<<10), firstKey: make(chan struct{})}
	auth := ""
	if user != "" || password != "" {
		auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	}
	if err := p.handshake(rawURL, auth); err != nil {
		nc.Close()
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	return p, nil
}

// response is an RTSP response: status, headers (canonical names) and body.
type response struct {
	status int
	header map[string]string
	body   []byte
}

func (p *Player) request(method, target, auth string, cseq int, extra ...string) (*response, error) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s RTSP/1.0\r\nCSeq: %d\r\nUser-Agent: gridwatch-peerbench\r\n", method, target, cseq)
	if auth != "" {
		fmt.Fprintf(&sb, "Authorization: %s\r\n", auth)
	}
	for _, h := range extra {
		sb.WriteString(h + "\r\n")
	}
	sb.WriteString("\r\n")
	if _, err := io.WriteString(p.nc, sb.String()); err != nil {
		return nil, err
	}
	for {
		res, err := readMessage(p.br)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", method, err)
		}
		if res == nil { // an interleaved frame before the answer: skip
			continue
		}
		if res.status != 200 {
			return nil, fmt.Errorf("%s %s: status %d", method, target, res.status)
		}
		return res, nil
	}
}

func (p *Player) handshake(rawURL, auth string) error {
	res, err := p.request("DESCRIBE", rawURL, auth, 1, "Accept: application/sdp")
	if err != nil {
		return err
	}
	base := res.header["Content-Base"]
	if base == "" {
		base = res.header["Content-Location"]
	}
	if base == "" {
		base = rawURL
	}
	control, err := videoControl(string(res.body))
	if err != nil {
		return err
	}
	track := ResolveControl(base, control)
	res, err = p.request("SETUP", track, auth, 2, "Transport: RTP/AVP/TCP;unicast;interleaved=0-1")
	if err != nil {
		return err
	}
	session, _, _ := strings.Cut(res.header["Session"], ";")
	if session == "" {
		return errors.New("SETUP: no Session header")
	}
	if tr := res.header["Transport"]; strings.Contains(tr, "interleaved=") {
		v := tr[strings.Index(tr, "interleaved=")+len("interleaved="):]
		v, _, _ = strings.Cut(v, "-")
		v, _, _ = strings.Cut(v, ";")
		if n, err := strconv.Atoi(v); err == nil && n >= 0 && n < 256 {
			p.channel = byte(n)
		}
	}
	playURL := base
	if playURL == "" {
		playURL = rawURL
	}
	_, err = p.request("PLAY", playURL, auth, 3, "Session: "+session, "Range: npt=0.000-")
	return err
}

// videoControl returns the control attribute of the SDP's first video
// medium ("" when it has none).
func videoControl(sdp string) (string, error) {
	inVideo, found := false, false
	for line := range strings.SplitSeq(sdp, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.HasPrefix(line, "m=") {
			if found {
				break
			}
			inVideo = strings.HasPrefix(line, "m=video ")
			found = inVideo
			continue
		}
		if inVideo && strings.HasPrefix(line, "a=control:") {
			return strings.TrimPrefix(line, "a=control:"), nil
		}
	}
	if !found {
		return "", errors.New("DESCRIBE: the SDP has no video medium")
	}
	return "", nil
}

// ResolveControl is a medium's SETUP URL: its control attribute resolved
// against the session's base URL (RFC 2326 C.1.1), with a relative control
// appended to the base's path, before its query, as servers expect.
func ResolveControl(base, control string) string {
	if control == "" || control == "*" {
		return base
	}
	if strings.HasPrefix(control, "rtsp://") || strings.HasPrefix(control, "rtsps://") {
		return control
	}
	u, err := url.Parse(base)
	if err != nil {
		return base + "/" + control
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	u.Path += control
	u.RawPath = ""
	return u.String()
}

// readMessage reads an RTSP message; it returns nil, nil for an interleaved
// frame, which it skips.
func readMessage(br *bufio.Reader) (*response, error) {
	b, err := br.Peek(1)
	if err != nil {
		return nil, err
	}
	if b[0] == '$' {
		h, err := br.Peek(4)
		if err != nil {
			return nil, err
		}
		// The length in parentheses: + and | bind alike in Go.
		_, err = br.Discard(4 + (int(h[2])<<8 | int(h[3])))
		return nil, err
	}
	status, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	f := strings.Fields(status)
	if len(f) < 2 || !strings.HasPrefix(f[0], "RTSP/") {
		return nil, fmt.Errorf("not an RTSP response: %q", status)
	}
	res := &response{header: map[string]string{}}
	// The status is three digits (RFC 2326 7.1.1).
	if res.status, err = strconv.Atoi(f[1]); err != nil || len(f[1]) != 3 || res.status < 100 {
		return nil, fmt.Errorf("bad status line %q", status)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		res.header[canonical(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	if cl := res.header["Content-Length"]; cl != "" {
		n, err := strconv.Atoi(cl)
		if err != nil || n < 0 || n > 1<<20 {
			return nil, fmt.Errorf("bad Content-Length %q", cl)
		}
		res.body = make([]byte, n)
		if _, err := io.ReadFull(br, res.body); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func canonical(k string) string {
	switch strings.ToLower(k) {
	case "content-base":
		return "Content-Base"
	case "content-location":
		return "Content-Location"
	case "content-length":
		return "Content-Length"
	case "session":
		return "Session"
	case "transport":
		return "Transport"
	}
	return k
}

// Run reads the stream until the connection fails or is closed, counting
// pictures and keyframes. It returns the error that ended it.
func (p *Player) Run() error {
	for {
		h, err := p.br.Peek(4)
		if err != nil {
			return err
		}
		if h[0] != '$' {
			if _, err := readMessage(p.br); err != nil { // a server request or stray answer
				return err
			}
			continue
		}
		ch, n := h[1], int(h[2])<<8|int(h[3])
		if _, err := p.br.Discard(4); err != nil {
			return err
		}
		pkt, err := p.br.Peek(n)
		if err != nil {
			return err
		}
		if ch == p.channel {
			p.packet(pkt)
		}
		p.Bytes.Add(int64(n))
		if _, err := p.br.Discard(n); err != nil {
			return err
		}
	}
}

// packet looks at one H.264 RTP packet (RFC 6184): whether it carries an
// IDR slice, and whether it ends its picture.
func (p *Player) packet(pkt []byte) {
	if len(pkt) < 12 || pkt[0]>>6 != 2 {
		return
	}
	hl := 12 + 4*int(pkt[0]&0x0f)
	if pkt[0]&0x10 != 0 && len(pkt) >= hl+4 {
		hl += 4 + 4*(int(pkt[hl+2])<<8|int(pkt[hl+3]))
	}
	if len(pkt) <= hl {
		return
	}
	if IsIDR(pkt[hl:]) {
		p.idr = true
	}
	if pkt[1]&0x80 == 0 {
		return
	}
	p.Pictures.Add(1)
	if p.idr {
		if p.Keyframes.Add(1) == 1 {
			close(p.firstKey)
		}
	}
	p.idr = false
}

// IsIDR reports whether an H.264 RTP payload holds (the start of) an IDR
// slice: a single NAL unit, a STAP-A aggregate or an FU-A's first fragment.
func IsIDR(pl []byte) bool {
	if len(pl) == 0 {
		return false
	}
	switch t := pl[0] & 0x1f; t {
	case 5:
		return true
	case 24: // STAP-A: 16-bit sizes, then the units
		for b := pl[1:]; len(b) > 2; {
			n := int(b[0])<<8 | int(b[1])
			if n == 0 || len(b) < 2+n {
				return false
			}
			if b[2]&0x1f == 5 {
				return true
			}
			b = b[2+n:]
		}
	case 28: // FU-A
		return len(pl) > 1 && pl[1]&0x80 != 0 && pl[1]&0x1f == 5
	}
	return false
}

// Count is the pictures received so far.
func (p *Player) Count() int64 { return p.Pictures.Load() }

// FirstKeyframe is closed when the first complete keyframe has arrived.
func (p *Player) FirstKeyframe() <-chan struct{} { return p.firstKey }

// Close ends the session (the server sees the connection close).
func (p *Player) Close() error { return p.nc.Close() }
