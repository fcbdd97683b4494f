package camsim

import (
	"context"
	"errors"
	"gridwatch/internal/testtool"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitLong bounds every wait for something that should happen within a few
// frames; generous so that -race on a busy machine does not flake.
const waitLong = 10 * time.Second

// startSim runs a Sim on 127.0.0.1:0 for the test; cleanup cancels Run and
// fails the test if it does not return, or returns an error.
func startSim(t testing.TB, cfg Config) *Sim {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.N == 0 {
		cfg.N = 1
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitLong):
			t.Errorf("Run did not return %v after cancel", waitLong)
		}
	})
	return s
}

func debugLogger(w *testtool.LogBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// player is a gortsplib client playing one stream over TCP. Its packets
// arrive on pkts (copies, in order); done gets the client's end error.
type player struct {
	c     *gortsplib.Client
	desc  *description.Session
	media *description.Media
	forma *format.H264
	pkts  chan *rtp.Packet
	done  chan error
	stop  chan struct{}
	once  sync.Once
}

// describeErr connects and DESCRIBEs rawURL, and returns the error, if any.
func describeErr(t testing.TB, rawURL string) error {
	t.Helper()
	u, err := base.ParseURL(rawURL)
	if err != nil {
		t.Fatalf("ParseURL: %v", err)
	}
	tcp := gortsplib.TransportTCP
	c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tcp, ReadTimeout: waitLong}
	if err := c.Start2(); err != nil {
		t.Fatalf("client start: %v", err)
	}
	defer c.Close()
	_, _, err = c.Describe(u)
	return err
}

// statusOf returns the RTSP status code in a client error, or 0.
func statusOf(err error) base.StatusCode {
	var bad liberrors.ErrClientBadStatusCode
	if errors.As(err, &bad) {
		return bad.Code
	}
	return 0
}

// play DESCRIBEs, SETUPs and PLAYs rawURL; it fails the test on error.
func play(t testing.TB, rawURL string) *player {
	t.Helper()
	p, err := tryPlay(rawURL)
	if err != nil {
		t.Fatalf("play %s: %v", rawURL, err)
	}
	t.Cleanup(p.close)
	return p
}

func tryPlay(rawURL string) (*player, error) {
	u, err := base.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	tcp := gortsplib.TransportTCP
	p := &player{
		c:    &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tcp, ReadTimeout: waitLong},
		pkts: make(chan *rtp.Packet, 1024),
		done: make(chan error, 1),
		stop: make(chan struct{}),
	}
	if err := p.c.Start2(); err != nil {
		return nil, err
	}
	desc, _, err := p.c.Describe(u)
	if err != nil {
		p.c.Close()
		return nil, err
	}
	p.desc = desc
	p.media = desc.FindFormat(&p.forma)
	if p.media == nil {
		p.c.Close()
		return nil, errors.New("no H.264 media in SDP")
	}
	if _, err := p.c.Setup(desc.BaseURL, p.media, 0, 0); err != nil {
		p.c.Close()
		return nil, err
	}
	p.c.OnPacketRTP(p.media, p.forma, func(pkt *rtp.Packet) {
		select {
		case p.pkts <- pkt.Clone():
		case <-p.stop:
		}
	})
	if _, err := p.c.Play(nil); err != nil {
		p.c.Close()
		return nil, err
	}
	go func() { p.done <- p.c.Wait() }()
	return p, nil
}

func (p *player) close() {
	p.once.Do(func() {
		close(p.stop)
		p.c.Close()
		<-p.done
	})
}

// next returns the next packet, failing the test after waitLong.
func (p *player) next(t testing.TB) *rtp.Packet {
	t.Helper()
	select {
	case pkt := <-p.pkts:
		return pkt
	case err := <-p.done:
		p.done <- err
		t.Fatalf("session ended while waiting for a packet: %v", err)
	case <-time.After(waitLong):
		t.Fatalf("no packet within %v", waitLong)
	}
	return nil
}

// au is a decoded access unit and its RTP timestamp.
type au struct {
	ts    uint32
	nalus [][]byte
}

// accessUnits reads packets until it has decoded n access units, starting
// at the first random-access one.
func (p *player) accessUnits(t testing.TB, n int) []au {
	t.Helper()
	dec, err := p.forma.CreateDecoder()
	if err != nil {
		t.Fatalf("decoder: %v", err)
	}
	var out []au
	for len(out) < n {
		pkt := p.next(t)
		nalus, err := dec.Decode(pkt)
		if err != nil {
			continue // more packets needed
		}
		if len(out) == 0 && !isRandomAccess(nalus) {
			continue
		}
		out = append(out, au{ts: pkt.Timestamp, nalus: nalus})
	}
	return out
}

func isRandomAccess(nalus [][]byte) bool {
	for _, n := range nalus {
		if n[0]&0x1f == 5 {
			return true
		}
	}
	return false
}

// quiet waits until no packet has arrived for gap, and fails after waitLong.
func (p *player) quiet(t testing.TB, gap time.Duration) {
	t.Helper()
	deadline := time.After(waitLong)
	for {
		select {
		case <-p.pkts:
		case <-time.After(gap):
			return
		case <-deadline:
			t.Fatalf("packets kept coming for %v", waitLong)
		}
	}
}
