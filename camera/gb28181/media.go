package gb28181

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/emiago/sipgo"
	"github.com/pion/rtp"

	"gridwatch/camera/gb28181/ps"
	"gridwatch/camera/pull"
)

// session is one INVITE's media: it receives the program stream over RTP
// and gives the supervisor pictures (pull.UnitSession) and sound
// (pull.AudioSession).
type session struct {
	srv             *Server
	device, channel string
	callID          string
	dialog          *sipgo.DialogClientSession
	playback        bool
	// onEnd, when set, is called when the device says a playback reached
	// the end of its recording.
	onEnd func()
	raw   bool // a fetch's playback: times as sent

	units chan pull.Unit
	audio chan *rtp.Packet
	ready chan struct{} // closed at the first picture
	done  chan struct{}

	mu        sync.Mutex
	err       error
	closers   []io.Closer
	readyOnce sync.Once
	doneOnce  sync.Once
	closeOnce sync.Once
	wg        sync.WaitGroup

	// Receiving state (the reader goroutine's alone).
	demux   ps.Demuxer
	reorder reorder
	lost    bool
	lastSeq uint16
	seqSeen bool
	video   format.Format
	aformat format.Format
	aenc    func(frame []byte, pts int64) []*rtp.Packet
	aType   ps.StreamType
	aReady  bool
	vType   ps.StreamType
	// Frames that came before the first picture's audio was known.
	held         []ps.Frame
	firstPicture time.Time
	// The last picture's time and the step between pictures (90 kHz).
	lastPTS, lastStep int64
	havePTS           bool
	jump              int64 // added to a playback's times after a seek
}

func newSession(srv *Server, device, channel string, playback bool) *session {
	s := &session{srv: srv, device: device, channel: channel, playback: playback,
		units: make(chan pull.Unit, 64), audio: make(chan *rtp.Packet, 128),
		ready: make(chan struct{}), done: make(chan struct{})}
	s.demux.OnFrame = s.frame
	return s
}

// pull.Session
func (s *session) Format() format.Format       { return s.video }
func (s *session) Packets() <-chan *rtp.Packet { return nil }
func (s *session) Done() <-chan struct{}       { return s.done }
func (s *session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// pull.UnitSession, pull.AudioSession
func (s *session) Units() <-chan pull.Unit          { return s.units }
func (s *session) AudioFormat() format.Format       { return s.aformat }
func (s *session) AudioPackets() <-chan *rtp.Packet { return s.audio }

// fail ends the session by itself, with why.
func (s *session) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.doneOnce.Do(func() { close(s.done) })
}

func (s *session) addCloser(c io.Closer) {
	s.mu.Lock()
	s.closers = append(s.closers, c)
	s.mu.Unlock()
}

// Close ends the session: BYE to the device, sockets closed, readers gone.
func (s *session) Close() {
	s.closeOnce.Do(func() {
		s.doneOnce.Do(func() { close(s.done) })
		if s.dialog != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = s.dialog.Bye(ctx)
			cancel()
			_ = s.dialog.Close()
		}
		s.mu.Lock()
		cl := s.closers
		s.closers = nil
		s.mu.Unlock()
		for _, c := range cl {
			_ = c.Close()
		}
		s.wg.Wait()
		s.srv.mu.Lock()
		if s.srv.sessions[s.callID] == s {
			delete(s.srv.sessions, s.callID)
		}
		s.srv.mu.Unlock()
	})
}

// readUDP reads RTP datagrams, putting them back in order.
func (s *session) readUDP(c net.PacketConn) {
	defer s.wg.Done()
	buf := make([]byte, 65536)
	var from net.Addr
	for {
		n, addr, err := c.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.fail(fmt.Errorf("media: %w", err))
			}
			return
		}
		// The first sender is the stream's: packets from any other
		// address are not mixed in.
		if from == nil {
			from = addr
		} else if addr.String() != from.String() {
			continue
		}
		var p rtp.Packet
		if err := p.Unmarshal(buf[:n]); err != nil {
			continue
		}
		// The packet outlives buf in the reorder window.
		p.Payload = append([]byte(nil), p.Payload...)
		s.reorder.push(&p, time.Now(), s.packet)
		if s.stopped() {
			return
		}
	}
}

// readTCP reads RTP packets framed by a 2-byte length (RFC 4571).
func (s *session) readTCP(c net.Conn) {
	defer s.wg.Done()
	r := bufio.NewReaderSize(c, 64<<10)
	buf := make([]byte, 65536)
	for {
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			s.ended(err)
			return
		}
		n := int(binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			s.ended(err)
			return
		}
		var p rtp.Packet
		if err := p.Unmarshal(buf[:n]); err != nil {
			continue
		}
		lost := s.seqSeen && p.SequenceNumber != s.lastSeq+1
		s.packet(&p, lost)
		if s.stopped() {
			return
		}
	}
}

func (s *session) ended(err error) {
	if errors.Is(err, net.ErrClosed) {
		return
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		s.fail(errors.New("the device closed the media connection"))
		return
	}
	s.fail(fmt.Errorf("media: %w", err))
}

func (s *session) stopped() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// packet takes one RTP packet of the program stream, in order.
func (s *session) packet(p *rtp.Packet, lost bool) {
	s.seqSeen, s.lastSeq = true, p.SequenceNumber
	if lost {
		s.demux.Reset()
		s.lost = true
	}
	if err := s.demux.Write(p.Payload); err != nil {
		s.lost = true
	}
	if p.Marker {
		s.demux.Flush()
	}
}

// frame takes one frame out of the program stream.
func (s *session) frame(f ps.Frame) {
	if f.Video {
		s.picture(f)
		return
	}
	if !s.aReady {
		if len(s.held) < 64 {
			s.held = append(s.held, f)
		}
		if s.video != nil {
			s.openAudio(f.Type, f.Data)
			s.flushHeld()
			s.readyOnce.Do(func() { close(s.ready) })
		}
		return
	}
	s.sound(f)
}

func (s *session) picture(f ps.Frame) {
	if s.video == nil {
		switch f.Type {
		case ps.H264:
			s.video = &format.H264{PayloadTyp: 96, PacketizationMode: 1}
		case ps.H265:
			s.video = &format.H265{PayloadTyp: 96}
		default:
			s.fail(fmt.Errorf("the channel's video is %s, not H.264 or H.265", f.Type))
			return
		}
		s.vType = f.Type
		_, at := s.demux.Streams()
		if at != 0 {
			var first []byte
			for _, h := range s.held {
				first = h.Data
				break
			}
			if first != nil || at != ps.AAC {
				s.openAudio(at, first)
			}
		} else {
			s.aReady = true // no audio announced
		}
		s.flushHeld()
	}
	var au h264.AnnexB
	if err := au.Unmarshal(f.Data); err != nil || len(au) == 0 {
		s.lost = true
		return
	}
	pts := f.PTS
	if !f.HasPTS {
		// A picture without a time: one frame after the last.
		pts = s.lastPTS + max(s.lastStep, 1)
	} else if s.havePTS && pts > s.lastPTS && pts-s.lastPTS < 90000 {
		s.lastStep = pts - s.lastPTS
	}
	if s.playback && !s.raw && s.havePTS && f.HasPTS {
		// A playback moved (seek) jumps in time: its pictures go on one
		// interval after the last, so a player keeps playing.
		if d := pts + s.jump - s.lastPTS; d <= 0 || d > 2*90000 {
			s.jump = s.lastPTS + max(s.lastStep, 1) - pts
		}
		pts += s.jump
	}
	s.lastPTS, s.havePTS = pts, true
	u := pull.Unit{NALUs: au, TS: uint32(pts), Loss: s.lost}
	s.lost = false
	if !s.aReady {
		// AAC is announced but none has come yet: its configuration is
		// in its first frame. The session opens when it comes, or
		// without sound a second after the first picture — or before the
		// pictures waiting for it would fill the queue (nobody reads it
		// until the session opens).
		if s.firstPicture.IsZero() {
			s.firstPicture = time.Now()
		}
		if time.Since(s.firstPicture) >= time.Second || len(s.units) >= cap(s.units)-1 {
			s.srv.log.Info("gb28181: channel audio not played", "channel", s.channel, "reason", "its AAC was announced but none came")
			s.aReady = true
		}
	}
	if s.aReady {
		s.readyOnce.Do(func() { close(s.ready) })
	}
	select {
	case s.units <- u:
	case <-s.done:
	}
}

// openAudio prepares the audio of the stream once its coding is known
// (for AAC, from its first frame).
func (s *session) openAudio(t ps.StreamType, first []byte) {
	s.aReady = true
	s.aType = t
	switch t {
	case ps.G711A, ps.G711U:
		mu := t == ps.G711U
		pt := uint8(8)
		if mu {
			pt = 0
		}
		s.aformat = &format.G711{PayloadTyp: pt, MULaw: mu, SampleRate: 8000, ChannelCount: 1}
		var seq uint16
		s.aenc = func(frame []byte, pts int64) []*rtp.Packet {
			seq++
			return []*rtp.Packet{{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: uint32(pts * 8000 / 90000), Marker: true},
				Payload: frame}}
		}
	case ps.AAC:
		var pk mpeg4audio.ADTSPackets
		if first == nil || pk.Unmarshal(first) != nil || len(pk) == 0 {
			s.srv.log.Info("gb28181: channel audio not played", "channel", s.channel, "reason", "its AAC does not start with an ADTS header")
			return
		}
		conf := &mpeg4audio.AudioSpecificConfig{Type: pk[0].Type, SampleRate: pk[0].SampleRate, ChannelCount: pk[0].ChannelCount}
		f := &format.MPEG4Audio{PayloadTyp: 97, Config: conf, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3}
		enc, err := f.CreateEncoder()
		if err != nil {
			return
		}
		s.aformat = f
		rate := int64(conf.SampleRate)
		s.aenc = func(frame []byte, pts int64) []*rtp.Packet {
			var pk mpeg4audio.ADTSPackets
			if pk.Unmarshal(frame) != nil {
				return nil
			}
			var out []*rtp.Packet
			for i, p := range pk {
				pkts, err := enc.Encode([][]byte{p.AU})
				if err != nil {
					continue
				}
				ts := uint32(pts*rate/90000 + int64(i)*1024)
				for _, q := range pkts {
					q.Timestamp = ts
				}
				out = append(out, pkts...)
			}
			return out
		}
	default:
		s.srv.log.Info("gb28181: channel audio not played", "channel", s.channel, "reason", fmt.Sprintf("its audio is %s", t))
	}
}

func (s *session) flushHeld() {
	held := s.held
	s.held = nil
	for _, f := range held {
		if !f.Video {
			s.sound(f)
		}
	}
}

func (s *session) sound(f ps.Frame) {
	if s.aenc == nil || f.Type != s.aType {
		return
	}
	pts := f.PTS
	if s.playback && !s.raw {
		pts += s.jump // moved with the pictures after a seek
	}
	for _, p := range s.aenc(f.Data, pts) {
		select {
		case s.audio <- p:
		case <-s.done:
			return
		}
	}
}
