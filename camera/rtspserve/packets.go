package rtspserve

import (
	"sync"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/pion/rtp"

	"gridwatch/camera/internal/rtpaudio"
	"gridwatch/camera/stream"
)

// Bounds of a hub's packet cache. The sessions that keep up all write each
// new picture within one pump round, so they need only the latest few; a
// new viewer's GOP burst and a lagging session's backlog are mostly
// packetised again by the session that needs them. Packetising costs about
// a microsecond a packet, once per join, while every picture cached holds a
// copy of its bytes: a few kept are worth more than a GOP's worth (at 100
// cameras a GOP each was 6 MB of heap).
const (
	cachePictures = 8
	cacheEntries  = 3 // entries a picture, audio included: 25 pictures and 50 G.711 packets a second
	cacheBytes    = 2 << 20
)

// packetCache packetises a hub's pictures once for all the sessions that
// play it. rtph264.Encoder (RFC 6184: single NAL unit, STAP-A, FU-A) or
// rtph265.Encoder (RFC 7798: single NAL unit, AP, FU) does the
// packetisation, by the picture's coding; each session then writes the packets with its own
// header (its own SSRC, sequence numbers and timestamp base), so sessions
// stay independent while the per-picture work and its garbage are paid
// once per hub, not once per viewer. The packets are shared: read-only.
type packetCache struct {
	refs int // leases using it; guarded by Server.mu
	// pump writes for the hub's sessions that keep up.
	pump *pump

	mu     sync.Mutex
	enc    rtph264.Encoder
	enc265 rtph265.Encoder
	// audio is the track aenc packetises, made for the first frame of it.
	audio   *stream.Audio
	aenc    func(au *stream.AccessUnit) ([]*rtp.Packet, error)
	entries map[*stream.AccessUnit][]*rtp.Packet
	fifo    []*stream.AccessUnit // insertion order, oldest at head
	head    int
	bytes   int
	// pictures counts the pictures among the entries.
	pictures int
}

func newPacketCache() (*packetCache, error) {
	c := &packetCache{
		enc:     rtph264.Encoder{PayloadType: payloadType, PacketizationMode: 1},
		enc265:  rtph265.Encoder{PayloadType: payloadType},
		entries: make(map[*stream.AccessUnit][]*rtp.Packet),
	}
	if err := c.enc.Init(); err != nil {
		return nil, err
	}
	if err := c.enc265.Init(); err != nil {
		return nil, err
	}
	return c, nil
}

// packets returns au's RTP packets. Their header's sequence number, SSRC
// and timestamp mean nothing; the payload type and marker bit are right.
func (c *packetCache) packets(au *stream.AccessUnit) ([]*rtp.Packet, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pkts, ok := c.entries[au]; ok {
		return pkts, nil
	}
	var pkts []*rtp.Packet
	var err error
	switch {
	case au.Audio != nil:
		if au.Audio != c.audio {
			if c.aenc, err = rtpaudio.Encoder(au.Audio); err != nil {
				return nil, err
			}
			c.audio = au.Audio
		}
		pkts, err = c.aenc(au)
	case au.Params != nil && au.Params.Kind == stream.H265:
		pkts, err = c.enc265.Encode(au.NALUs)
	default:
		pkts, err = c.enc.Encode(au.NALUs)
	}
	if err != nil {
		return nil, err
	}
	c.entries[au] = pkts
	c.fifo = append(c.fifo, au)
	c.bytes += au.Size()
	if au.Audio == nil {
		c.pictures++
	}
	// Pictures are bounded as ever; the audio frames between them come
	// along (up to cacheEntries entries a picture), so that a camera's
	// sound does not push its pictures out.
	for c.pictures > cachePictures || len(c.fifo)-c.head > cachePictures*cacheEntries || c.bytes > cacheBytes {
		old := c.fifo[c.head]
		c.fifo[c.head] = nil
		c.head++
		delete(c.entries, old)
		c.bytes -= old.Size()
		if old.Audio == nil {
			c.pictures--
		}
	}
	if c.head > len(c.fifo)/2 {
		c.fifo = append(c.fifo[:0], c.fifo[c.head:]...)
		clear(c.fifo[len(c.fifo):cap(c.fifo)])
		c.head = 0
	}
	return pkts, nil
}

// packetCache returns the cache of hub, made on first use; every call is
// matched by a dropPacketCache.
func (s *Server) packetCache(hub *stream.Hub) (*packetCache, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.caches[hub]
	if !ok {
		var err error
		if c, err = newPacketCache(); err != nil {
			return nil, err
		}
		c.pump = newPump()
		c.pump.round = s.pumpRound
		s.writers.Add(1)
		go func() { defer s.writers.Done(); c.pump.run() }()
		s.caches[hub] = c
	}
	c.refs++
	return c, nil
}

// dropPacketCache forgets hub's cache when nobody uses it any more.
func (s *Server) dropPacketCache(hub *stream.Hub) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.caches[hub]; ok {
		if c.refs--; c.refs <= 0 {
			delete(s.caches, hub)
			close(c.pump.quit)
		}
	}
}

// pump writes for a hub's sessions whose clients keep up: one goroutine a
// hub, woken once when the hub publishes, instead of one a session. Each
// session's viewer signals the pump's notify; the pump then has every
// member write what it has, without blocking (writer.pumped). A member
// whose socket is full leaves for a goroutine of its own and comes back
// when it has caught up.
type pump struct {
	notify chan struct{} // capacity 1, shared by the members' viewers
	quit   chan struct{} // closed when the hub's last lease goes

	// round, when set, is called after each round (tests).
	round func()

	mu      sync.Mutex
	members map[*writer]struct{}
	batch   []*writer // the pump goroutine's scratch list
}

func newPump() *pump {
	return &pump{notify: make(chan struct{}, 1), quit: make(chan struct{}), members: map[*writer]struct{}{}}
}

// add makes w a member and wakes the pump, so that what w's viewer holds
// already (the GOP burst, or its end) is seen to.
func (p *pump) add(w *writer) {
	p.mu.Lock()
	p.members[w] = struct{}{}
	p.mu.Unlock()
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

func (p *pump) remove(w *writer) {
	p.mu.Lock()
	delete(p.members, w)
	p.mu.Unlock()
}

func (p *pump) run() {
	for {
		select {
		case <-p.notify:
		case <-p.quit:
			return
		}
		p.mu.Lock()
		for w := range p.members {
			p.batch = append(p.batch, w)
		}
		p.mu.Unlock()
		for _, w := range p.batch {
			w.pumped()
		}
		clear(p.batch)
		p.batch = p.batch[:0]
		if p.round != nil {
			p.round()
		}
	}
}
