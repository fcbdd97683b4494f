// Package rtsptest holds what the camera packages' tests use to read RTSP
// streams: a player (gortsplib's client over TCP) that hands out the RTP
// packets or the decoded pictures of one stream, and the RTSP status of a
// client error. camsim's tests read the simulated cameras with it and
// rtspserve's the re-served streams, the same way.
package rtsptest

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtp"

	"gridwatch/camera/stream"
)

// WaitLong bounds every wait for something that should happen within a few
// pictures; generous so that -race on a busy machine does not flake.
const WaitLong = 10 * time.Second

// packetQueue is how many packets a player holds for the test (over a
// minute of the test clips); when it is full the client's reader waits,
// as a slow viewer's would.
const packetQueue = 16384

// received is an RTP packet and when it arrived.
type received struct {
	pkt *rtp.Packet
	at  time.Time
}

// Player is a gortsplib client playing one H.264 stream over TCP.
type Player struct {
	c     *gortsplib.Client
	Desc  *description.Session
	Media *description.Media
	Forma *format.H264
	pkts  chan received
	done  chan struct{}
	err   error
	stop  chan struct{}
	once  sync.Once
	dec   *rtph264.Decoder
	// DecodeErrors counts the packets read that did not decode (other
	// than those that wait for more of their picture).
	DecodeErrors atomic.Int64
}

// AU is a picture a player received: its NAL units, RTP timestamp and
// SSRC, and when its last packet arrived.
type AU struct {
	TS    uint32
	SSRC  uint32
	NALUs [][]byte
	At    time.Time
}

// Play DESCRIBEs, SETUPs and PLAYs rawURL; it fails the test on error and
// closes the player at cleanup.
func Play(t testing.TB, rawURL string) *Player {
	t.Helper()
	p, err := TryPlay(rawURL)
	if err != nil {
		t.Fatalf("play %s: %v", rawURL, err)
	}
	t.Cleanup(p.Close)
	return p
}

// TryPlay DESCRIBEs, SETUPs and PLAYs rawURL; the caller closes the player.
func TryPlay(rawURL string) (*Player, error) {
	u, err := base.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	tcp := gortsplib.TransportTCP
	p := &Player{
		c:    &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tcp, ReadTimeout: WaitLong},
		pkts: make(chan received, packetQueue),
		done: make(chan struct{}),
		stop: make(chan struct{}),
	}
	if err := p.c.Start2(); err != nil {
		return nil, err
	}
	fail := func(err error) (*Player, error) {
		p.c.Close()
		return nil, err
	}
	desc, _, err := p.c.Describe(u)
	if err != nil {
		return fail(err)
	}
	p.Desc = desc
	p.Media = desc.FindFormat(&p.Forma)
	if p.Media == nil {
		return fail(errors.New("no H.264 media in the SDP"))
	}
	if _, err := p.c.Setup(desc.BaseURL, p.Media, 0, 0); err != nil {
		return fail(err)
	}
	if p.dec, err = p.Forma.CreateDecoder(); err != nil {
		return fail(err)
	}
	p.c.OnPacketRTP(p.Media, p.Forma, func(pkt *rtp.Packet) {
		select {
		case p.pkts <- received{pkt.Clone(), time.Now()}:
		case <-p.stop:
		}
	})
	if _, err := p.c.Play(nil); err != nil {
		return fail(err)
	}
	go func() {
		p.err = p.c.Wait()
		close(p.done)
	}()
	return p, nil
}

// Close ends the session and waits for the client to stop; it may be
// called more than once.
func (p *Player) Close() {
	p.once.Do(func() {
		close(p.stop)
		p.c.Close()
		<-p.done
	})
}

// Done is closed when the session has ended; Err then says why.
func (p *Player) Done() <-chan struct{} { return p.done }

// Err is why the session ended, once Done is closed.
func (p *Player) Err() error { return p.err }

// Drain throws away the packets received so far.
func (p *Player) Drain() {
	for len(p.pkts) > 0 {
		<-p.pkts
	}
}

func (p *Player) nextReceived(t testing.TB) received {
	t.Helper()
	select {
	case r := <-p.pkts:
		return r
	case <-p.done:
		t.Fatalf("session ended while waiting for a packet: %v", p.err)
	case <-time.After(WaitLong):
		t.Fatalf("no packet within %v", WaitLong)
	}
	return received{}
}

// NextPacket returns the next RTP packet, failing the test after WaitLong.
func (p *Player) NextPacket(t testing.TB) *rtp.Packet {
	t.Helper()
	return p.nextReceived(t).pkt
}

// Next returns the next whole picture, failing the test after WaitLong.
func (p *Player) Next(t testing.TB) AU {
	t.Helper()
	for {
		r := p.nextReceived(t)
		nalus, err := p.dec.Decode(r.pkt)
		if err != nil {
			if !errors.Is(err, rtph264.ErrMorePacketsNeeded) {
				p.DecodeErrors.Add(1)
			}
			continue
		}
		cp := make([][]byte, len(nalus))
		for i, n := range nalus {
			cp[i] = bytes.Clone(n)
		}
		return AU{TS: r.pkt.Timestamp, SSRC: r.pkt.SSRC, NALUs: cp, At: r.at}
	}
}

// AccessUnits returns the next n pictures, starting at the first
// keyframe.
func (p *Player) AccessUnits(t testing.TB, n int) []AU {
	t.Helper()
	var out []AU
	for len(out) < n {
		au := p.Next(t)
		if len(out) == 0 && !stream.H264.IsKey(au.NALUs) {
			continue
		}
		out = append(out, au)
	}
	return out
}

// Quiet waits until no packet has arrived for gap, and fails the test if
// packets keep coming for WaitLong.
func (p *Player) Quiet(t testing.TB, gap time.Duration) {
	t.Helper()
	deadline := time.After(WaitLong)
	for {
		select {
		case <-p.pkts:
		case <-time.After(gap):
			return
		case <-deadline:
			t.Fatalf("packets kept coming for %v", WaitLong)
		}
	}
}

// NoPacketFor fails the test if a packet arrives or the session ends
// within d.
func (p *Player) NoPacketFor(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case r := <-p.pkts:
		t.Fatalf("packet (ts %d) within %v", r.pkt.Timestamp, d)
	case <-p.done:
		t.Fatalf("session ended within %v: %v", d, p.err)
	case <-time.After(d):
	}
}

// Describe connects and DESCRIBEs rawURL, and returns the error, if any.
func Describe(t testing.TB, rawURL string) error {
	t.Helper()
	u, err := base.ParseURL(rawURL)
	if err != nil {
		t.Fatalf("ParseURL: %v", err)
	}
	tcp := gortsplib.TransportTCP
	c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tcp, ReadTimeout: WaitLong}
	if err := c.Start2(); err != nil {
		t.Fatalf("client start: %v", err)
	}
	defer c.Close()
	_, _, err = c.Describe(u)
	return err
}

// StatusOf returns the RTSP status code in a gortsplib client error, or 0.
func StatusOf(err error) base.StatusCode {
	var bad liberrors.ErrClientBadStatusCode
	if errors.As(err, &bad) {
		return bad.Code
	}
	return 0
}
