package gbsim

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/g711"
)

// RTP: PS on payload type 96, payloads of at most maxPayload bytes.
const (
	payloadType  = 96
	maxPayload   = 1400
	rtpHeaderLen = 12
	// reorderEvery: with SetReorder, one packet in reorderEvery goes out
	// after the one that follows it.
	reorderEvery = 10
)

// packetWriter sends RTP packets; it does not keep pkt.
type packetWriter interface {
	writePacket(pkt []byte) error
	Close() error
}

// rtpWriter packetizes PS packs into RTP: continuous sequence numbers, the
// pack's timestamp, the marker on a pack's last packet.
type rtpWriter struct {
	seq  uint16
	ssrc uint32
	out  packetWriter
	pkt  []byte
}

func newRTPWriter(ssrc uint32, out packetWriter) *rtpWriter {
	return &rtpWriter{seq: uint16(rand.Uint32()), ssrc: ssrc, out: out, pkt: make([]byte, 0, rtpHeaderLen+maxPayload)}
}

// writePack sends one PS pack as RTP packets.
func (w *rtpWriter) writePack(pack []byte, ts uint32) error {
	var err error
	packetize(pack, maxPayload, func(piece []byte, last bool) {
		if err != nil {
			return
		}
		b := w.pkt[:rtpHeaderLen]
		b[0] = 0x80 // version 2
		b[1] = payloadType
		if last {
			b[1] |= 0x80
		}
		binary.BigEndian.PutUint16(b[2:], w.seq)
		binary.BigEndian.PutUint32(b[4:], ts)
		binary.BigEndian.PutUint32(b[8:], w.ssrc)
		b = append(b, piece...)
		w.seq++
		err = w.out.writePacket(b)
	})
	return err
}

// udpWriter sends RTP over UDP, dropping and swapping packets as the
// device's SetLoss and SetReorder ask.
type udpWriter struct {
	conn net.PacketConn
	addr net.Addr
	d    *Device
	n    uint64
	held []byte // a packet waiting to go after the next one
}

func (u *udpWriter) writePacket(pkt []byte) error {
	u.n++
	if every := u.d.loss.Load(); every > 0 && u.n%uint64(every) == 0 {
		return nil
	}
	if u.d.reorder.Load() && u.held == nil && u.n%reorderEvery == 0 {
		u.held = append(u.held[:0:0], pkt...)
		return nil
	}
	u.send(pkt)
	if u.held != nil {
		u.send(u.held)
		u.held = nil
	}
	return nil
}

// send writes a datagram. Errors are not the stream's end: an ICMP
// unreachable only says nobody listens yet, as happens over UDP.
func (u *udpWriter) send(pkt []byte) {
	if _, err := u.conn.WriteTo(pkt, u.addr); err != nil {
		u.d.log.Debug("gbsim: RTP over UDP", "err", err)
	}
}

func (u *udpWriter) Close() error { return nil } // the session closes the socket

// tcpWriter sends RTP over TCP, each packet after its 2-byte big-endian
// length (RFC 4571).
type tcpWriter struct {
	conn net.Conn
	buf  []byte
}

func (t *tcpWriter) writePacket(pkt []byte) error {
	t.buf = binary.BigEndian.AppendUint16(t.buf[:0], uint16(len(pkt)))
	t.buf = append(t.buf, pkt...)
	if err := t.conn.SetWriteDeadline(time.Now().Add(mediaTimeout)); err != nil {
		return err
	}
	if _, err := t.conn.Write(t.buf); err != nil {
		return fmt.Errorf("RTP over TCP: %w", err)
	}
	return nil
}

func (t *tcpWriter) Close() error { return t.conn.Close() }

// The tone: 1 kHz at half scale for the first 100 ms of every second, as
// camsim's cameras beep, in 20 ms G.711 A-law frames.
const (
	toneRate    = 8000
	toneFrame   = toneRate / 50 // 160 samples, 20 ms
	toneCount   = 50            // one second
	toneHz      = 1000
	toneOn      = 100 * time.Millisecond
	toneLevel   = 0.5
	toneSamples = toneFrame * toneCount
)

// toneFrames makes one second of the tone.
func toneFrames() [][]byte {
	pcm := make([]byte, 2*toneSamples) // 16-bit big-endian, mediacommon's input
	on := int(toneRate * toneOn / time.Second)
	for i := range on {
		v := toneLevel * math.MaxInt16 * math.Sin(2*math.Pi*toneHz*float64(i)/toneRate)
		binary.BigEndian.PutUint16(pcm[2*i:], uint16(int16(math.Round(v))))
	}
	coded, err := g711.Alaw(pcm).Marshal()
	if err != nil {
		panic(err) // the length is even
	}
	frames := make([][]byte, toneCount)
	for i := range frames {
		frames[i] = coded[i*toneFrame : (i+1)*toneFrame]
	}
	return frames
}
