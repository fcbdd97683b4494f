package gbsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Media timing: the clips are 25 fps, a keyframe every 25 pictures; audio
// goes in 20 ms frames, two a picture.
const (
	frameDur      = 40 * time.Millisecond
	frameTicks    = 3600 // 90 kHz
	gop           = 25
	audioPerFrame = 2
	audioTicks    = 1800 // 20 ms at 90 kHz
	// mediaTimeout bounds a TCP media connection's set-up and each write.
	mediaTimeout = 10 * time.Second
)

// session is one INVITE's media: a live or playback stream of a channel.
type session struct {
	d      *Device
	callID string
	ch     Channel
	offer  offer
	ssrc   uint32
	dlg    *sipgo.DialogServerSession

	udp net.PacketConn // UDP: the socket the media leaves from
	ln  net.Listener   // TCP, the platform connecting: the device's listener

	ctx    context.Context // ends at BYE, Close or a media failure
	cancel context.CancelFunc
	unhook func() bool   // stops the dialog's end cancelling ctx
	ctl    chan mansrtsp // playback control from INFO
	byed   sync.Once
}

// onInvite answers an INVITE for a channel's live video or a recording
// with an SDP answer, and starts streaming once the ACK comes.
func (d *Device) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	ch, ok := d.channel(req.Recipient.User)
	if !ok {
		d.respond(req, tx, sip.StatusNotFound, "Not Found")
		return
	}
	o, err := parseOffer(req.Body())
	if err != nil {
		d.log.Info("gbsim: INVITE refused", "channel", ch.ID, "err", err)
		d.respond(req, tx, sip.StatusNotAcceptableHere, "Not Acceptable Here")
		return
	}
	if o.ssrc == "" {
		if h := req.GetHeader("Subject"); h != nil {
			o.ssrc = subjectSSRC(h.Value())
		}
	}
	ssrc, ok := parseSSRC(o.ssrc)
	if !ok {
		// No usable SSRC offered: make one up, as devices do (0 live, 1
		// playback, then 9 digits), and answer with it.
		ssrc = rand.Uint32N(1e9)
		if o.playback() {
			ssrc += 1e9
		}
		o.ssrc = fmt.Sprintf("%010d", ssrc)
	}
	callID := ""
	if h := req.CallID(); h != nil {
		callID = h.Value()
	}
	s := &session{d: d, callID: callID, ch: ch, offer: o, ssrc: ssrc, ctl: make(chan mansrtsp, 8)}
	port, err := s.bind()
	if err != nil {
		d.log.Warn("gbsim: media socket", "err", err)
		d.respond(req, tx, sip.StatusInternalServerError, "Server Internal Error")
		return
	}
	dlg, err := d.dialogs.ReadInvite(req, tx)
	if err != nil {
		s.closeSockets()
		d.respond(req, tx, sip.StatusBadRequest, "Bad Request")
		return
	}
	s.dlg = dlg
	s.ctx, s.cancel = context.WithCancel(d.ctx)
	s.unhook = context.AfterFunc(dlg.Context(), s.cancel)

	d.mu.Lock()
	if d.closed || d.sessions[callID] != nil {
		d.mu.Unlock()
		s.end()
		dlg.Respond(sip.StatusServiceUnavailable, "Service Unavailable", nil) //nolint:errcheck // nothing to do about it
		return
	}
	d.sessions[callID] = s
	d.mu.Unlock()

	res := sip.NewSDPResponseFromRequest(dlg.InviteRequest, answerSDP(o, ch.ID, d.cfg.LocalIP, port, o.ssrc))
	contact := d.contact(ch.ID)
	res.AppendHeader(&contact)
	// Returns once the ACK came (or after 64*T1 without it).
	if err := dlg.WriteResponse(res); err != nil {
		d.log.Info("gbsim: INVITE answer", "channel", ch.ID, "err", err)
		s.end()
		return
	}
	if !d.goTracked(s.run) {
		s.end()
	}
}

// bind opens the media socket the answer names: a UDP socket, a TCP
// listener (the platform connects: its offer says setup:active), or none
// (the device connects: port 9, as RFC 4145 has the active side write).
func (s *session) bind() (int, error) {
	local := net.JoinHostPort(s.d.cfg.LocalIP, "0")
	switch {
	case !s.offer.tcp:
		pc, err := net.ListenPacket("udp", local)
		if err != nil {
			return 0, err
		}
		s.udp = pc
		return pc.LocalAddr().(*net.UDPAddr).Port, nil
	case s.offer.setup == "active":
		ln, err := net.Listen("tcp", local)
		if err != nil {
			return 0, err
		}
		s.ln = ln
		return ln.Addr().(*net.TCPAddr).Port, nil
	}
	return 9, nil
}

func (s *session) closeSockets() {
	if s.udp != nil {
		s.udp.Close()
	}
	if s.ln != nil {
		s.ln.Close()
	}
}

// end forgets the session and frees its sockets.
func (s *session) end() {
	s.cancel()
	s.unhook()
	s.closeSockets()
	s.d.mu.Lock()
	if s.d.sessions[s.callID] == s {
		delete(s.d.sessions, s.callID)
	}
	s.d.mu.Unlock()
}

// bye ends the dialog from the device's side.
func (s *session) bye() {
	s.byed.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		if err := s.dlg.Bye(ctx); err != nil {
			s.d.log.Debug("gbsim: BYE", "channel", s.ch.ID, "err", err)
		}
		s.cancel()
	})
}

// control hands a MANSRTSP command to the stream.
func (s *session) control(c mansrtsp) {
	if c.method == "TEARDOWN" {
		s.d.goTracked(s.bye)
		return
	}
	select {
	case s.ctl <- c:
	case <-s.ctx.Done():
	}
}

// run streams until the dialog ends. A playback stream that reaches its
// end sends MediaStatus 121 and waits for the platform's BYE.
func (s *session) run() {
	d := s.d
	d.streams.Add(1)
	defer d.streams.Add(-1)
	defer s.end()
	out, gone, err := s.connect()
	if err != nil {
		d.log.Info("gbsim: media connection", "channel", s.ch.ID, "err", err)
		if s.ctx.Err() == nil {
			s.bye()
		}
		return
	}
	defer out.Close()
	ended, err := s.stream(out, gone)
	switch {
	case s.ctx.Err() != nil:
		return
	case err != nil:
		d.log.Info("gbsim: media", "channel", s.ch.ID, "err", err)
		s.bye()
		return
	case ended:
		if err := d.mediaStatus(s.ctx, s.ch.ID, s.callID); err != nil {
			d.log.Info("gbsim: MediaStatus", "channel", s.ch.ID, "err", err)
		}
		<-s.ctx.Done()
	}
}

// connect makes the media connection: the UDP socket aimed at the
// platform, or a TCP connection either way. gone is closed when the
// platform closes a TCP connection.
func (s *session) connect() (packetWriter, <-chan struct{}, error) {
	d := s.d
	remote := net.JoinHostPort(s.offer.ip, strconv.Itoa(s.offer.port))
	if !s.offer.tcp {
		addr, err := net.ResolveUDPAddr("udp", remote)
		if err != nil {
			return nil, nil, err
		}
		return &udpWriter{conn: s.udp, addr: addr, d: d}, nil, nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, mediaTimeout)
	defer cancel()
	var conn net.Conn
	if s.ln != nil {
		stop := context.AfterFunc(ctx, func() { s.ln.Close() })
		c, err := s.ln.Accept()
		stop()
		s.ln.Close()
		if err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("no connection from the platform: %w", ctx.Err())
			}
			return nil, nil, err
		}
		conn = c
	} else {
		dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(d.cfg.LocalIP)}}
		c, err := dialer.DialContext(ctx, "tcp", remote)
		if err != nil {
			return nil, nil, err
		}
		conn = c
	}
	gone := make(chan struct{})
	if !d.goTracked(func() {
		// Whatever the platform sends (RTCP, if anything) is dropped; EOF
		// means it hung up.
		io.Copy(io.Discard, conn) //nolint:errcheck // any end is the end
		close(gone)
	}) {
		conn.Close()
		return nil, nil, errors.New("device closing")
	}
	return &tcpWriter{conn: conn}, gone, nil
}

// pacer places frames on the wall clock: frame pos is due at
// base + (pos-basePos)*frameDur/scale.
type pacer struct {
	base    time.Time
	basePos int64
	scale   float64
}

func (p pacer) due(pos int64) time.Time {
	return p.base.Add(time.Duration(float64(pos-p.basePos) * float64(frameDur) / p.scale))
}

// stream sends the clip, looping, one access unit a frame, until the
// context ends, the platform hangs up (gone) or a playback reaches its end
// (ended). Frame pos is at pos*frameTicks on the stream's 90 kHz clock; a
// playback's clock starts at 0 at the recording's start, and a seek moves
// it (to the keyframe at or before the position).
func (s *session) stream(out packetWriter, gone <-chan struct{}) (ended bool, err error) {
	d := s.d
	clip := d.h264
	if s.ch.H265 {
		clip = d.h265
	}
	mux := newMuxer(s.ch.H265, len(d.tone) > 0)
	w := newRTPWriter(s.ssrc, out)

	end := int64(-1) // frames; -1 live
	scale := 1.0
	if s.offer.playback() {
		from, to := s.offer.span()
		end = int64((to.Sub(from) + frameDur - 1) / frameDur)
		if s.offer.name == "Download" && s.offer.speed > 0 {
			scale = s.offer.speed
		}
	}
	var pos int64
	p := pacer{base: time.Now(), scale: scale}
	paused := false
	timer := time.NewTimer(0)
	defer timer.Stop()
	var buf []byte
	for {
		if end >= 0 && pos >= end {
			return true, nil
		}
		var tick <-chan time.Time
		if !paused {
			due := p.due(pos)
			if time.Since(due) > time.Second {
				// Far behind (a stalled machine): go on from now rather
				// than burst.
				p = pacer{base: time.Now(), basePos: pos, scale: p.scale}
				due = p.base
			}
			timer.Reset(time.Until(due))
			tick = timer.C
		}
		select {
		case <-s.ctx.Done():
			return false, nil
		case <-gone:
			return false, errors.New("the platform closed the media connection")
		case c := <-s.ctl:
			switch c.method {
			case "PAUSE":
				paused = true
			case "PLAY":
				if c.seek >= 0 && s.offer.playback() {
					pos = int64(c.seek * float64(time.Second/frameDur))
					pos -= pos % gop
					if end >= 0 && pos > end {
						pos = end
					}
				}
				if c.scale > 0 {
					p.scale = c.scale
				}
				paused = false
				p = pacer{base: time.Now(), basePos: pos, scale: p.scale}
			}
			continue
		case <-tick:
		}
		au := clip[pos%int64(len(clip))]
		pts := uint64(pos) * frameTicks
		buf = mux.video(buf[:0], au, pts, isKey(au, s.ch.H265))
		if err := w.writePack(buf, uint32(pts)); err != nil {
			return false, err
		}
		for k := range audioPerFrame {
			if len(d.tone) == 0 {
				break
			}
			apts := pts + uint64(k)*audioTicks
			frame := d.tone[(pos*audioPerFrame+int64(k))%int64(len(d.tone))]
			buf = mux.audio(buf[:0], frame, apts)
			if err := w.writePack(buf, uint32(apts)); err != nil {
				return false, err
			}
		}
		pos++
	}
}

// isKey reports whether an access unit holds an IDR (H.264) or IRAP
// (H.265) picture.
func isKey(au [][]byte, h265 bool) bool {
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		if h265 {
			if t := (n[0] >> 1) & 0x3f; t >= 16 && t <= 23 {
				return true
			}
		} else if n[0]&0x1f == 5 {
			return true
		}
	}
	return false
}
