package ps

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// DefaultMaxFrame bounds a frame when Demuxer.MaxFrame is 0.
const DefaultMaxFrame = 4 << 20

// Where the parser is: what the next input byte is.
const (
	stSync    = iota // anything: it hunts for a pack start code (00 00 01 BA)
	stPacket         // the start of a packet, its first bytes maybe held in hdr
	stPayload        // inside a packet, after its header
)

// Where a packet's payload goes.
const (
	toNone = iota
	toVideo
	toAudio
)

var (
	startCode = []byte{0, 0, 1}
	packStart = []byte{0, 0, 1, 0xBA}

	// errZero: a zero byte before a start code (00 00 00 01), skipped.
	errZero = errors.New("ps: zero byte before a start code")
)

// Demuxer takes a program stream in pieces (RTP payloads in order) and
// calls OnFrame for each frame in it.
//
// Video is split into access units by its NAL units (for H.264 and
// H.265), not by packs or PES packets: a frame ends where the next access
// unit begins, at Flush, or at Reset (dropped). So a stream of one pack a
// frame (GB/T 28181) and one of fixed-size packs that split frames anywhere
// (ffmpeg's) both come out as access units. For other video codecs a frame
// ends at a new pack header or at a video PES with another PTS. A PES's
// PTS goes to the first access unit beginning in it. Audio is a frame a
// PES.
//
// One video and one audio stream are followed: the first met, unless the
// PSM lists another and not it. A Demuxer is not safe for concurrent use,
// and OnFrame must not call it.
type Demuxer struct {
	OnFrame func(Frame)
	// MaxFrame bounds one frame's size (default DefaultMaxFrame); a bigger
	// one is dropped with an error counted.
	MaxFrame int

	state int
	hdr   []byte // a packet's start held across writes (while hunting: a pack start code's)
	left  int    // the current packet's bytes still to come; -1: a video PES without a length
	to    int    // where they go
	held  [3]byte
	nheld int // a PES without a length: its last bytes, which may begin the start code ending it

	err   error // the first error of this Write
	stats Stats

	psmTypes           [0x30]StreamType // what the PSM says of stream ids 0xC0-0xEF
	psmVideo, psmAudio StreamType       // its first video and audio entries
	vid, aid           byte             // the stream ids followed (0 until met)
	vguess, aguess     StreamType       // what the data looks like
	vchecked           bool             // vguess is set
	vtype, atype       StreamType       // what Streams reports

	// The video frame being gathered.
	vbuf       []byte
	vscan      int // vbuf is searched for start codes from here on
	vpts, vdts int64
	vhas       bool
	vpic       bool // vbuf holds a slice: the next access unit start ends the frame
	vpicAt     int  // where the first slice begins
	vkey       bool
	valigned   bool // vbuf starts an access unit; until then video is dropped
	// New PTS whose access units have not begun yet, oldest first. Two:
	// a PES may begin inside an access unit's first bytes, before the
	// unit can be told, and the next PES bring the next PTS.
	pend  [2]pendingTS
	npend int

	abuf []byte
	apts int64
	ahas bool
}

type pendingTS struct {
	pts, dts int64
	off      int // where in vbuf the PES that carried them began
}

// Stats reports what the Demuxer handed on and dropped so far.
func (d *Demuxer) Stats() Stats { return d.stats }

// Streams returns what the PSM (or, without one, the data) says the video
// and audio are; 0 when not known yet.
func (d *Demuxer) Streams() (video, audio StreamType) { return d.vtype, d.atype }

func (d *Demuxer) maxFrame() int {
	if d.MaxFrame > 0 {
		return d.MaxFrame
	}
	return DefaultMaxFrame
}

// Write takes the next piece of the stream; it may call OnFrame. An error
// describes malformed input: the frames it touches are dropped and the
// Demuxer resynchronises on the next pack start code, within this call
// and the next ones.
func (d *Demuxer) Write(p []byte) error {
	d.err = nil
	for len(p) > 0 {
		switch d.state {
		case stSync:
			p = d.sync(p)
		case stPacket:
			p = d.packet(p)
		default:
			p = d.payload(p)
		}
	}
	return d.err
}

// Flush ends the frame being gathered (an RTP marker): the video frame is
// handed on now rather than when the next access unit begins. A frame of
// parameter sets alone (some devices send them in a pack of their own)
// is kept for the picture that follows.
func (d *Demuxer) Flush() {
	if d.state == stPayload && d.left < 0 && d.nheld > 0 {
		// Zero bytes held back at the end of a PES without a length: at a
		// marker they are this frame's, not the next pack's start code.
		d.deliver(d.held[:d.nheld])
		d.nheld = 0
	}
	if !d.valigned || d.known() && !d.vpic {
		return
	}
	for d.npend > 0 {
		d.settle()
	}
	d.flushVideo()
}

// Reset drops anything partial (packets were lost) and resynchronises on
// the next pack start code.
func (d *Demuxer) Reset() {
	d.state, d.hdr, d.left, d.nheld = stSync, d.hdr[:0], 0, 0
	d.dropVideo()
	d.abuf = d.abuf[:0]
}

// report counts a malformed input; Write returns the first of a call.
func (d *Demuxer) report(err error) {
	d.stats.Errors++
	if d.err == nil {
		d.err = err
	}
}

// fail reports a broken packet structure: what was partial is dropped and
// the parser hunts for the next pack. The caller sets hdr.
func (d *Demuxer) fail(err error) {
	d.report(err)
	d.state, d.left, d.nheld = stSync, 0, 0
	d.dropVideo()
	d.abuf = d.abuf[:0]
}

// sync hunts for a pack start code; hdr holds up to 3 bytes of the last
// piece that may begin one.
func (d *Demuxer) sync(p []byte) []byte {
	if n := len(d.hdr); n > 0 {
		var w [6]byte
		copy(w[:], d.hdr)
		m := copy(w[n:], p)
		k := bytes.Index(w[:n+m], packStart)
		switch {
		case k >= 0 && k < n:
			d.hdr = append(d.hdr[:0], packStart...)
			d.state = stPacket
			return p[k+4-n:]
		case k < 0 && m == len(p):
			d.hdr = append(d.hdr[:0], w[n+m-partial(w[:n+m], packStart):n+m]...)
			return nil
		}
		d.hdr = d.hdr[:0]
	}
	if k := bytes.Index(p, packStart); k >= 0 {
		d.state = stPacket
		return p[k:]
	}
	d.hdr = append(d.hdr[:0], p[len(p)-partial(p, packStart):]...)
	return nil
}

// partial returns the length of the longest end of b that begins code.
func partial(b, code []byte) int {
	for s := min(len(code)-1, len(b)); s > 0; s-- {
		if bytes.Equal(b[len(b)-s:], code[:s]) {
			return s
		}
	}
	return 0
}

// packet reads a packet's header: from p directly when it is whole there,
// else gathered in hdr.
func (d *Demuxer) packet(p []byte) []byte {
	if len(d.hdr) == 0 {
		n, err := headerLen(p)
		switch {
		case err == errZero:
			return p[1:]
		case err != nil:
			d.fail(err)
			return p[1:]
		case n > len(p):
			d.hdr = append(d.hdr, p...)
			return nil
		}
		if err := d.header(p[:n]); err != nil {
			d.fail(err)
			return p[1:]
		}
		return p[n:]
	}
	for {
		n, err := headerLen(d.hdr)
		if err == errZero {
			d.hdr = d.hdr[:copy(d.hdr, d.hdr[1:])]
			continue
		}
		if err != nil {
			return d.failHeld(err, p)
		}
		if n <= len(d.hdr) {
			break
		}
		if len(p) == 0 {
			return nil
		}
		k := min(n-len(d.hdr), len(p))
		d.hdr = append(d.hdr, p[:k]...)
		p = p[k:]
	}
	if err := d.header(d.hdr); err != nil {
		return d.failHeld(err, p)
	}
	d.hdr = d.hdr[:0]
	return p
}

// failHeld fails on a header gathered in hdr: the hunt for the next pack
// starts within it, after its first byte.
func (d *Demuxer) failHeld(err error, p []byte) []byte {
	d.fail(err)
	b := d.hdr[1:]
	if k := bytes.Index(b, packStart); k >= 0 {
		d.hdr = d.hdr[:copy(d.hdr, b[k:])]
		d.state = stPacket
		return p
	}
	d.hdr = d.hdr[:copy(d.hdr, b[len(b)-partial(b, packStart):])]
	return p
}

// headerLen returns how many bytes of the packet starting at b make the
// header to read (the start code, the pack header, the PSM, or a PES
// header; other packets are skipped by their length after 6 bytes). When
// b is too short to tell, the result is more than len(b).
func headerLen(b []byte) (int, error) {
	switch {
	case len(b) > 0 && b[0] != 0, len(b) > 1 && b[1] != 0, len(b) > 2 && b[2] > 1:
		return 0, fmt.Errorf("ps: % X where a start code was expected", b[:min(len(b), 4)])
	case len(b) > 2 && b[2] == 0:
		return 0, errZero
	case len(b) < 4:
		return 4, nil
	}
	id := b[3]
	switch {
	case id < 0xB9:
		return 0, fmt.Errorf("ps: start code 00 00 01 %02X is no program stream packet (a wrong PES length?)", id)
	case id == 0xB9: // program end
		return 4, nil
	case id == 0xBA:
		switch {
		case len(b) < 5:
			return 5, nil
		case b[4]>>6 == 1: // MPEG-2
			if len(b) < 14 {
				return 14, nil
			}
			return 14 + int(b[13]&7), nil
		case b[4]>>4 == 2: // MPEG-1
			return 12, nil
		}
		return 0, fmt.Errorf("ps: pack header byte %02X is neither MPEG-1 nor MPEG-2", b[4])
	case len(b) < 6:
		return 6, nil
	}
	size := 6 + int(binary.BigEndian.Uint16(b[4:]))
	switch {
	case id == 0xBC:
		return size, nil
	case id < 0xC0 || id > 0xEF:
		return 6, nil
	}
	return pesHeaderLen(b, size)
}

// pesHeaderLen is headerLen for an audio or video PES of size bytes in all
// (6: no length given).
func pesHeaderLen(b []byte, size int) (int, error) {
	bounded := size > 6
	if !bounded && b[3] < 0xE0 {
		return 0, fmt.Errorf("ps: audio PES %02X without a length", b[3])
	}
	if len(b) < 7 {
		return 7, nil
	}
	n := 0
	if b[6]>>6 == 2 { // MPEG-2
		if bounded && size < 9 {
			return 0, fmt.Errorf("ps: PES packet length %d shorter than its header", size-6)
		}
		if len(b) < 9 {
			return 9, nil
		}
		n = 9 + int(b[8])
		if bounded && n > size {
			return 0, fmt.Errorf("ps: PES header length %d exceeds packet length %d", b[8], size-6)
		}
		return n, nil
	}
	// MPEG-1: up to 16 stuffing bytes, the P-STD buffer size, timestamps.
	i := 6
	for ; i < len(b) && b[i] == 0xFF; i++ {
		if i >= 6+16 {
			return 0, errors.New("ps: more than 16 stuffing bytes in an MPEG-1 PES header")
		}
	}
	if i == len(b) {
		return i + 1, nil
	}
	if b[i]>>6 == 1 {
		if i += 2; i >= len(b) {
			return i + 1, nil
		}
	}
	switch {
	case b[i]>>4 == 2:
		n = i + 5
	case b[i]>>4 == 3:
		n = i + 10
	case b[i] == 0x0F:
		n = i + 1
	default:
		return 0, fmt.Errorf("ps: MPEG-1 PES header byte %02X is no timestamp flag", b[i])
	}
	if bounded && n > size {
		return 0, fmt.Errorf("ps: MPEG-1 PES header of %d bytes exceeds packet length %d", n-6, size-6)
	}
	return n, nil
}

// header acts on a whole header b as headerLen measured it.
func (d *Demuxer) header(b []byte) error {
	d.state = stPacket
	id := b[3]
	switch id {
	case 0xB9:
		d.Flush()
		return nil
	case 0xBA:
		if !d.known() {
			d.flushVideo() // a pack is a frame
		}
		return nil
	case 0xBC:
		d.readPSM(b)
		return nil
	}
	size := 6 + int(binary.BigEndian.Uint16(b[4:]))
	if id < 0xC0 || id > 0xEF {
		d.payloadOf(toNone, size-6) // system header, private, padding, ...
		return nil
	}
	var pts, dts int64
	has := false
	if b[6]>>6 == 2 {
		switch hl := b[8]; b[7] >> 6 {
		case 2:
			if hl < 5 {
				return fmt.Errorf("ps: PES header length %d too short for a PTS", hl)
			}
			pts, has = readTS(b[9:]), true
			dts = pts
		case 3:
			if hl < 10 {
				return fmt.Errorf("ps: PES header length %d too short for a PTS and DTS", hl)
			}
			pts, dts, has = readTS(b[9:]), readTS(b[14:]), true
		}
	} else {
		i := 6
		for b[i] == 0xFF {
			i++
		}
		if b[i]>>6 == 1 {
			i += 2
		}
		switch b[i] >> 4 {
		case 2:
			pts, has = readTS(b[i:]), true
			dts = pts
		case 3:
			pts, dts, has = readTS(b[i:]), readTS(b[i+5:]), true
		}
	}
	left := -1
	if size > 6 {
		left = size - len(b)
	}
	if id >= 0xE0 {
		if !d.follow(&d.vid, id) {
			d.payloadOf(toNone, left)
			return nil
		}
		d.videoPES(pts, dts, has)
		d.payloadOf(toVideo, left)
		return nil
	}
	if !d.follow(&d.aid, id) {
		d.payloadOf(toNone, left)
		return nil
	}
	d.apts, d.ahas = pts, has
	d.abuf = d.abuf[:0]
	d.payloadOf(toAudio, left)
	return nil
}

// follow reports whether the PES of stream id is the one followed (*cur):
// the first met, but one the PSM lists over one it does not (a device may
// name another id in its PSM than in its PES).
func (d *Demuxer) follow(cur *byte, id byte) bool {
	switch c := *cur; {
	case c == id:
		return true
	case c != 0 && (d.psmTypes[id-0xC0] == 0 || d.psmTypes[c-0xC0] != 0):
		return false
	case c != 0 && id >= 0xE0:
		d.dropVideo()
	}
	*cur = id
	d.setTypes()
	return true
}

// readTS reads a 33-bit timestamp with its marker bits.
func readTS(b []byte) int64 {
	return int64(b[0]>>1&7)<<30 | int64(b[1])<<22 | int64(b[2]>>1)<<15 | int64(b[3])<<7 | int64(b[4]>>1)
}

// payloadOf sets where the next n bytes (-1: up to the next system start
// code) go.
func (d *Demuxer) payloadOf(to, n int) {
	d.to, d.left = to, n
	if n == 0 {
		d.endPES()
		return
	}
	d.state = stPayload
}

func (d *Demuxer) endPES() {
	d.state = stPacket
	if d.to == toAudio {
		d.emitAudio(d.abuf)
		d.abuf = d.abuf[:0]
	}
}

func (d *Demuxer) payload(p []byte) []byte {
	if d.left < 0 {
		return d.unbounded(p)
	}
	n := min(d.left, len(p))
	if d.to == toAudio && len(d.abuf) == 0 && n == d.left {
		// The whole payload is here: no need to gather it.
		d.state = stPacket
		d.emitAudio(p[:n])
		return p[n:]
	}
	d.deliver(p[:n])
	if d.left -= n; d.left == 0 {
		d.endPES()
	}
	return p[n:]
}

func (d *Demuxer) deliver(b []byte) {
	switch d.to {
	case toVideo:
		d.videoData(b)
	case toAudio:
		d.abuf = append(d.abuf, b...)
	}
}

// unbounded passes on the payload of a video PES without a length, which
// runs to the next system start code: 00 00 01 and a byte of 0xB9 or more,
// which no H.264 or H.265 NAL unit header is (its top bit is forbidden).
// A piece's last bytes that may begin such a start code are held back.
func (d *Demuxer) unbounded(p []byte) []byte {
	for d.nheld > 0 && len(p) > 0 {
		c := p[0]
		switch {
		case c == 0 && d.nheld < 2:
			d.held[d.nheld] = 0
			d.nheld++
		case c == 0 && d.nheld == 2:
			d.deliver(d.held[:1]) // 00 00 00: the first is data
		case c == 1 && d.nheld == 2:
			d.held[2] = 1
			d.nheld = 3
		case c >= 0xB9 && d.nheld == 3:
			d.nheld = 0
			d.endPES()
			d.hdr = append(d.hdr[:0], startCode...)
			return p
		default:
			d.deliver(d.held[:d.nheld])
			d.nheld = 0
			continue // c is looked at below
		}
		p = p[1:]
	}
	if len(p) == 0 {
		return nil
	}
	for off := 0; ; {
		j := bytes.Index(p[off:], startCode)
		if j < 0 || off+j+3 >= len(p) {
			break
		}
		if j += off; p[j+3] >= 0xB9 {
			d.deliver(p[:j])
			d.endPES()
			return p[j:]
		}
		off = j + 3
	}
	k := partial(p, startCode)
	if k == 0 && p[len(p)-1] == 1 && len(p) >= 3 && p[len(p)-3] == 0 && p[len(p)-2] == 0 {
		k = 3
	}
	d.deliver(p[:len(p)-k])
	d.nheld = copy(d.held[:], p[len(p)-k:])
	return nil
}

// readPSM reads the elementary stream map of a program stream map (b is
// all of it). A malformed map is reported but does not break the packet
// structure (its length is known), so nothing is dropped; its entries up
// to the fault are used.
func (d *Demuxer) readPSM(b []byte) {
	if len(b) < 16 {
		d.report(fmt.Errorf("ps: PSM of %d bytes is too short", len(b)))
		return
	}
	// current_next_indicator is not looked at: a map sent ahead of its
	// time is unheard of, one with the bit wrong is not, and without the
	// map G.711 µ-law would be taken for A-law.
	end := len(b) - 4 // CRC_32 (not checked: devices get it wrong)
	info := int(binary.BigEndian.Uint16(b[8:]))
	p := 10 + info
	if p+2 > end {
		d.report(fmt.Errorf("ps: PSM program_stream_info_length %d exceeds its length %d", info, len(b)-6))
		return
	}
	n := int(binary.BigEndian.Uint16(b[p:]))
	p += 2
	if p+n > end {
		d.report(fmt.Errorf("ps: PSM elementary_stream_map_length %d exceeds its length %d", n, len(b)-6))
		n = end - p
	}
	var types [0x30]StreamType
	var video, audio StreamType
	entries := 0
	for q, e := p, p+n; q < e; {
		if q+4 > e {
			d.report(fmt.Errorf("ps: PSM entry of %d bytes", e-q))
			break
		}
		t, id, il := StreamType(b[q]), b[q+1], int(binary.BigEndian.Uint16(b[q+2:]))
		if q += 4 + il; q > e {
			d.report(fmt.Errorf("ps: PSM entry for stream %02X: elementary_stream_info_length %d exceeds the map", id, il))
			break
		}
		entries++
		switch {
		case id >= 0xE0 && id <= 0xEF:
			if video == 0 {
				video = t
			}
		case id >= 0xC0 && id <= 0xDF:
			if audio == 0 {
				audio = t
			}
		default:
			continue
		}
		types[id-0xC0] = t
	}
	if entries == 0 {
		return
	}
	oldVideo := d.psmType(d.vid, d.psmVideo)
	d.psmTypes, d.psmVideo, d.psmAudio = types, video, audio
	if d.psmType(d.vid, d.psmVideo) != oldVideo {
		// A new video coding (or the first word on it): look at the data again.
		d.vguess, d.vchecked = 0, false
	}
	d.setTypes()
}

// psmType returns what the PSM says of stream id, or first when it does
// not list it (or id is 0).
func (d *Demuxer) psmType(id byte, first StreamType) StreamType {
	if id >= 0xC0 && id <= 0xEF {
		if t := d.psmTypes[id-0xC0]; t != 0 {
			return t
		}
	}
	return first
}

// setTypes works out vtype and atype: the PSM's word, or the guess where it
// has none, or where it names H.264 for data that is clearly H.265 or the
// other way round.
func (d *Demuxer) setTypes() {
	v := d.psmType(d.vid, d.psmVideo)
	if v == 0 || (v == H264 || v == H265) && d.vguess != 0 {
		v = d.vguess
	}
	a := d.psmType(d.aid, d.psmAudio)
	if a == 0 {
		a = d.aguess
	}
	d.vtype, d.atype = v, a
}

// known reports whether the video is split into access units by its NAL
// units.
func (d *Demuxer) known() bool { return d.vtype == H264 || d.vtype == H265 }

// videoPES takes the timestamps of a video PES about to be gathered.
func (d *Demuxer) videoPES(pts, dts int64, has bool) {
	if !has {
		return
	}
	if !d.known() {
		if d.valigned && d.vhas && pts == d.vpts && dts == d.vdts {
			return
		}
		// A new PTS begins a frame.
		if d.valigned {
			d.flushVideo()
		} else {
			d.vbuf, d.vscan, d.valigned = d.vbuf[:0], 0, true
		}
		d.vpts, d.vdts, d.vhas = pts, dts, true
		return
	}
	last := pendingTS{pts: d.vpts, dts: d.vdts}
	if d.npend > 0 {
		last = d.pend[d.npend-1]
	}
	switch {
	case !d.valigned || len(d.vbuf) == 0 || !d.vpic && !d.vhas:
		// Nothing of a picture yet: the PTS is this frame's.
		d.vpts, d.vdts, d.vhas = pts, dts, true
		d.npend = 0
	case (d.vhas || d.npend > 0) && pts == last.pts && dts == last.dts:
		// Another PES of the same access unit.
	default:
		if d.npend == len(d.pend) {
			d.settle()
		}
		d.pend[d.npend] = pendingTS{pts, dts, len(d.vbuf)}
		d.npend++
	}
}

// videoData gathers video payload, 64 KiB at a time at most, so that
// vbuf stays within MaxFrame and that however big the pieces written.
func (d *Demuxer) videoData(b []byte) {
	for len(b) > 0 {
		n := min(len(b), 64<<10)
		d.vbuf = append(d.vbuf, b[:n]...)
		b = b[n:]
		d.scan()
		// Up to vscan the bytes are this frame's; after it are at most the
		// few of a start code not told yet, maybe the next frame's.
		if d.vscan > d.maxFrame() {
			d.oversize()
		}
	}
}

func (d *Demuxer) oversize() {
	d.stats.Oversize++
	d.report(fmt.Errorf("ps: video frame larger than %d bytes dropped", d.maxFrame()))
	d.dropVideo()
}

// scan looks at the NAL units added to vbuf: it guesses the codec, and
// cuts off finished access units.
func (d *Demuxer) scan() {
	for {
		j := bytes.Index(d.vbuf[d.vscan:], startCode)
		if j < 0 {
			d.vscan = max(d.vscan, len(d.vbuf)-2)
			break
		}
		i := d.vscan + j
		if i+6 > len(d.vbuf) {
			d.vscan = i // the header is not all here yet
			break
		}
		d.vscan = i + 3
		d.nal(i)
	}
	if !d.valigned {
		// Nothing before an access unit start is kept, but for the zero
		// byte of a 4-byte start code.
		k := max(d.vscan-1, 0)
		d.vbuf = d.vbuf[:copy(d.vbuf, d.vbuf[k:])]
		d.vscan -= k
	}
}

// nal looks at the NAL unit whose start code is at vbuf[i].
func (d *Demuxer) nal(i int) {
	h := d.vbuf[i+3 : i+6]
	if !d.vchecked {
		if g := guessVideo(h[0], h[1]); g != 0 {
			d.vguess, d.vchecked = g, true
			d.setTypes()
		}
	}
	var start, vcl, key bool
	switch d.vtype {
	case H264:
		start, vcl, key = h264NAL(h)
	case H265:
		start, vcl, key = h265NAL(h)
	default:
		return
	}
	if start && (d.vpic || !d.valigned) {
		i = d.cut(i)
	}
	if vcl && d.valigned {
		if !d.vpic {
			d.vpic, d.vpicAt = true, i
		}
		d.vkey = d.vkey || key
	}
}

// cut ends the frame before the access unit whose start code is at
// vbuf[i] (with the zero bytes before it), or drops what came before when
// the video is not aligned. It returns where the start code is now.
func (d *Demuxer) cut(i int) int {
	c := i
	for c > 0 && d.vbuf[c-1] == 0 {
		c--
	}
	aligned := d.valigned
	if aligned {
		d.emitVideo(d.vbuf[:c])
	}
	d.vbuf = d.vbuf[:copy(d.vbuf, d.vbuf[c:])]
	d.vscan -= c
	d.vpic, d.vkey, d.valigned = false, false, true
	i -= c
	if !aligned {
		return i // the PTS met while unaligned is this access unit's
	}
	d.vhas = false
	for k := range d.npend {
		d.pend[k].off -= c
	}
	if d.npend > 0 && d.pend[0].off <= i+6 {
		// Its PES began before this access unit could be told (by its NAL
		// unit header and the byte after): the first to begin in it.
		p := d.popPend()
		d.vpts, d.vdts, d.vhas = p.pts, p.dts, true
	}
	return i
}

func (d *Demuxer) popPend() pendingTS {
	p := d.pend[0]
	d.pend[0] = d.pend[1]
	d.npend--
	return p
}

// settle decides on the oldest pending PTS, which no access unit start
// took: if its PES began after the frame's first slice, the frame ends
// there (a device that begins frames by PTS alone, or a stream that is
// not the codec its PSM says); else (a PES of the same picture with
// another PTS) it is the frame's.
func (d *Demuxer) settle() {
	p := d.popPend()
	if !d.vpic || p.off <= d.vpicAt {
		d.vpts, d.vdts, d.vhas = p.pts, p.dts, true
		return
	}
	off := min(max(p.off, 0), len(d.vbuf))
	d.emitVideo(d.vbuf[:off])
	d.vbuf = d.vbuf[:copy(d.vbuf, d.vbuf[off:])]
	d.vscan = max(d.vscan-off, 0)
	for k := range d.npend {
		d.pend[k].off -= off
	}
	d.vpts, d.vdts, d.vhas = p.pts, p.dts, true
	d.vpic, d.vpicAt, d.vkey = len(d.vbuf) > 0, 0, false
}

// flushVideo hands on all of vbuf.
func (d *Demuxer) flushVideo() {
	if d.valigned {
		d.emitVideo(d.vbuf)
	}
	d.vbuf, d.vscan = d.vbuf[:0], 0
	d.vpic, d.vkey, d.vhas, d.npend = false, false, false, 0
}

// dropVideo drops the frame being gathered: video is dropped until an
// access unit starts.
func (d *Demuxer) dropVideo() {
	d.vbuf, d.vscan = d.vbuf[:0], 0
	d.vpic, d.vkey, d.vhas, d.valigned, d.npend = false, false, false, false, 0
}

func (d *Demuxer) emitVideo(b []byte) {
	if len(b) == 0 {
		return
	}
	if len(b) > d.maxFrame() {
		d.stats.Oversize++
		d.report(fmt.Errorf("ps: video frame of %d bytes dropped (MaxFrame %d)", len(b), d.maxFrame()))
		return
	}
	d.stats.Video++
	if d.OnFrame == nil {
		return
	}
	d.OnFrame(Frame{
		Type: d.vtype, Video: true, Key: d.vkey,
		PTS: d.vpts, DTS: d.vdts, HasPTS: d.vhas,
		Data: bytes.Clone(b),
	})
}

func (d *Demuxer) emitAudio(b []byte) {
	if len(b) == 0 {
		return
	}
	if d.aguess == 0 {
		d.aguess = guessAudio(b)
		d.setTypes()
	}
	d.stats.Audio++
	if d.OnFrame == nil {
		return
	}
	d.OnFrame(Frame{Type: d.atype, PTS: d.apts, DTS: d.apts, HasPTS: d.ahas, Data: bytes.Clone(b)})
}
