package gb28181

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"gridwatch/camera/pull"
)

// Source is a channel's live video (or, with From set, the device's
// recording from From to To) as a pull.Source: each Open is an INVITE.
type Source struct {
	Server          *Server
	Device, Channel string
	// Transport is the media transport (default UDP).
	Transport string
	From, To  time.Time
	// onEnd is told when a playback reaches the end of its recording.
	onEnd func()
	// raw keeps a playback's times as the device sends them (a fetch).
	raw bool
}

// Open invites the channel's stream and returns once its first picture
// has come.
func (src Source) Open(ctx context.Context) (pull.Session, error) {
	return src.Server.invite(ctx, src)
}

// Source returns the live source of a camera URL made by URL, false when
// the URL is not one.
func (s *Server) Source(url string) (pull.Source, bool) {
	dev, ch, ok := ParseURL(url)
	if !ok {
		return nil, false
	}
	return Source{Server: s, Device: dev, Channel: ch, Transport: s.cfg.MediaTransport}, true
}

// ssrc makes a stream's SSRC as GB/T 28181-2016 Annex G writes it: ten
// digits, the first 0 for live and 1 for playback, then digits 4 to 8 of
// the platform's ID (its domain), then a serial.
func (s *Server) ssrc(playback bool) string {
	first := "0"
	if playback {
		first = "1"
	}
	return first + s.cfg.ID[3:8] + fmt.Sprintf("%04d", s.sn.Add(1)%10000)
}

func (s *Server) invite(ctx context.Context, src Source) (pull.Session, error) {
	d, ok := s.registered(src.Device)
	if !ok {
		node, _ := s.cfg.Store.DeviceNode(ctx, src.Device)
		if node != "" && node != s.cfg.Store.node {
			return nil, fmt.Errorf("device %s is registered with node %s, not this one", src.Device, node)
		}
		return nil, fmt.Errorf("device %s is offline", src.Device)
	}
	transport := src.Transport
	if transport == "" {
		transport = UDP
	}
	if err := CheckTransport(transport); err != nil {
		return nil, err
	}
	playback := !src.From.IsZero()
	ss := newSession(s, src.Device, src.Channel, playback)
	ss.onEnd = src.onEnd
	ss.raw = src.raw
	ok = false
	defer func() {
		if !ok {
			ss.Close()
		}
	}()
	ip := s.advertisedHost(d)
	o := offer{platform: s.cfg.ID, channel: src.Channel, ip: ip, transport: transport, ssrc: s.ssrc(playback), from: src.From, to: src.To}
	var tcpLn net.Listener
	switch transport {
	case UDP:
		c, err := net.ListenPacket("udp", net.JoinHostPort(s.bindHost, "0"))
		if err != nil {
			return nil, fmt.Errorf("media: %w", err)
		}
		_ = c.(*net.UDPConn).SetReadBuffer(4 << 20)
		ss.addCloser(c)
		o.port = c.LocalAddr().(*net.UDPAddr).Port
		ss.wg.Add(1)
		go ss.readUDP(c)
	case TCPPassive:
		ln, err := net.Listen("tcp", net.JoinHostPort(s.bindHost, "0"))
		if err != nil {
			return nil, fmt.Errorf("media: %w", err)
		}
		ss.addCloser(ln)
		tcpLn = ln
		o.port = ln.Addr().(*net.TCPAddr).Port
	case TCPActive:
		o.port = 9 // the discard port: the device's answer says where to connect
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req := s.newRequest(d, sip.INVITE, src.Channel, nil,
		sip.NewHeader("Subject", fmt.Sprintf("%s:%s,%s:0", src.Channel, o.ssrc, s.cfg.ID)), s.contact(d))
	req.AppendHeader(sip.NewHeader("Content-Type", "APPLICATION/SDP"))
	req.SetBody([]byte(o.String()))
	dlg, err := s.dialogs.WriteInvite(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("INVITE to channel %s: %w", src.Channel, err)
	}
	ss.dialog = dlg
	ss.callID = req.CallID().Value()
	s.mu.Lock()
	s.sessions[ss.callID] = ss
	s.mu.Unlock()
	if err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		var de *sipgo.ErrDialogResponse
		if errors.As(err, &de) {
			return nil, fmt.Errorf("channel %s refused the stream: %d %s", src.Channel, de.Res.StatusCode, de.Res.Reason)
		}
		return nil, fmt.Errorf("INVITE to channel %s: %w", src.Channel, err)
	}
	if err := dlg.Ack(ctx); err != nil {
		return nil, fmt.Errorf("ACK to channel %s: %w", src.Channel, err)
	}
	ans, err := parseAnswer(dlg.InviteResponse.Body())
	if err != nil {
		return nil, fmt.Errorf("channel %s: %w", src.Channel, err)
	}
	switch transport {
	case TCPPassive:
		ss.wg.Add(1)
		go func() {
			defer ss.wg.Done()
			c, err := tcpLn.Accept()
			tcpLn.Close()
			if err != nil {
				ss.ended(err)
				return
			}
			ss.addCloser(c)
			if ss.stopped() {
				c.Close()
				return
			}
			ss.wg.Add(1)
			go ss.readTCP(c)
		}()
	case TCPActive:
		if ans.port == 0 || ans.port == 9 {
			return nil, fmt.Errorf("channel %s answered TCP active without a port to connect to", src.Channel)
		}
		// To the device's own address, whatever its answer's c= line
		// says: the platform connects to no one else.
		host, _ := splitHostPort(d.source)
		var dl net.Dialer
		c, err := dl.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(ans.port)))
		if err != nil {
			return nil, fmt.Errorf("media connection to channel %s: %w", src.Channel, err)
		}
		ss.addCloser(c)
		ss.wg.Add(1)
		go ss.readTCP(c)
	}
	select {
	case <-ss.ready:
	case <-ss.done:
		if err := ss.Err(); err != nil {
			return nil, fmt.Errorf("channel %s: %w", src.Channel, err)
		}
		return nil, fmt.Errorf("channel %s: the stream ended before its first picture", src.Channel)
	case <-ctx.Done():
		return nil, fmt.Errorf("channel %s sent no picture within %s", src.Channel, s.cfg.Timeout)
	}
	ok = true
	return ss, nil
}

// onBye ends the session a device hung up.
func (s *Server) onBye(req *sip.Request, tx sip.ServerTransaction) {
	_ = s.dialogs.ReadBye(req, tx)
	if tx != nil {
		// ReadBye answers dialogs it knows; anything else gets its 200
		// here (a BYE for a session we already ended).
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	}
	id := ""
	if c := req.CallID(); c != nil {
		id = c.Value()
	}
	s.mu.Lock()
	ss := s.sessions[id]
	s.mu.Unlock()
	if ss != nil {
		ss.fail(errors.New("the device ended the stream"))
	}
}

// mediaStatus: a playback reached its end (NotifyType 121). The message
// is matched to its session by its Call-ID (sent in the dialog), else by
// the device and channel (sent outside it) when one playback of it runs.
func (s *Server) mediaStatus(req *sip.Request, device, channel, notifyType string) {
	if strings.TrimSpace(notifyType) != "121" {
		return
	}
	id := ""
	if c := req.CallID(); c != nil {
		id = c.Value()
	}
	s.mu.Lock()
	ss := s.sessions[id]
	if ss == nil || ss.device != device {
		ss = nil
		n := 0
		for _, c := range s.sessions {
			if c.device == device && c.channel == channel && c.playback {
				ss, n = c, n+1
			}
		}
		if n != 1 {
			ss = nil
		}
	}
	s.mu.Unlock()
	if ss == nil {
		return
	}
	if ss.onEnd != nil {
		ss.onEnd()
	}
	// What the device sent before it said so is still on its way: the
	// session ends once its pictures are taken (or after a while).
	go func() {
		deadline := time.Now().Add(2 * time.Second)
		for len(ss.units) > 0 && time.Now().Before(deadline) {
			select {
			case <-ss.done:
				return
			case <-time.After(20 * time.Millisecond): // the supervisor drains them
			}
		}
		ss.fail(errors.New("the recording ended"))
	}()
}
