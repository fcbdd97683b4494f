package ps

import (
	"encoding/binary"
	"slices"
)

const (
	videoID = 0xE0
	audioID = 0xC0

	// maxPES bounds a PES packet, all of it (the PES_packet_length field
	// counts 6 bytes less).
	maxPES = 65535

	// muxRate is program_mux_rate and rate_bound, in 50 bytes/s: 20 Mbit/s,
	// above any camera's stream (decoders do not hold a stream to it).
	muxRate = 50_000

	packHeaderLen = 14
)

// Muxer writes a program stream the way GB/T 28181 devices do: one pack a
// frame; on keyframes (and on the first pack, and when the stream types
// change) a system header and a PSM after the pack header. Timestamps are
// in 90 kHz units and written modulo 2^33.
type Muxer struct {
	Video StreamType // H264 or H265
	Audio StreamType // AAC, G711A or G711U; 0: no audio

	wrote      bool       // a PSM was written
	psmV, psmA StreamType // the types it gave
	version    byte       // its program_stream_map_version
}

// WriteVideo appends to dst one pack carrying the Annex-B access unit au:
// the pack header (its SCR is dts); on keyframes also a system header and
// a PSM; then PES packets (stream_id 0xE0) of at most 65,535 bytes, the
// first carrying PTS and DTS (PTS only when equal).
func (m *Muxer) WriteVideo(dst, au []byte, pts, dts int64, key bool) []byte {
	hl := 5
	if pts != dts {
		hl = 10
	}
	dst = slices.Grow(dst, m.size(len(au), hl, key))
	dst = m.start(dst, dts, key)
	return pes(dst, videoID, au, pts, dts, hl)
}

// WriteAudio appends to dst one pack carrying the audio frame: the pack
// header (its SCR is pts) and a PES (stream_id 0xC0) with the PTS; several
// PES should the frame not fit one.
func (m *Muxer) WriteAudio(dst, frame []byte, pts int64) []byte {
	dst = slices.Grow(dst, m.size(len(frame), 5, false))
	dst = m.start(dst, pts, false)
	return pes(dst, audioID, frame, pts, pts, 5)
}

// size returns how many bytes a pack of n payload bytes takes.
func (m *Muxer) size(n, hl int, key bool) int {
	s := packHeaderLen
	if m.needPSM(key) {
		s += 2 * (12 + 8 + 8) // either header, with room to spare
	}
	per := maxPES - 9
	return s + n + (n/(per-hl)+1)*(9+hl)
}

func (m *Muxer) needPSM(key bool) bool {
	return key || !m.wrote || m.psmV != m.Video || m.psmA != m.Audio
}

// start appends the pack header and, when due, the system header and PSM.
func (m *Muxer) start(dst []byte, scr int64, key bool) []byte {
	dst = packHeader(dst, scr)
	if !m.needPSM(key) {
		return dst
	}
	if m.wrote && (m.psmV != m.Video || m.psmA != m.Audio) {
		m.version = (m.version + 1) & 0x1F
	}
	m.wrote, m.psmV, m.psmA = true, m.Video, m.Audio
	dst = m.systemHeader(dst)
	return m.psm(dst)
}

// packHeader appends an MPEG-2 pack header without stuffing.
func packHeader(dst []byte, scr int64) []byte {
	s := uint64(scr) & (1<<33 - 1)
	return append(dst, 0, 0, 1, 0xBA,
		0x44|byte(s>>27)&0x38|byte(s>>28)&0x03, // '01', SCR[32..30], marker, SCR[29..28]
		byte(s>>20),
		0x04|byte(s>>12)&0xF8|byte(s>>13)&0x03, // SCR[19..15], marker, SCR[14..13]
		byte(s>>5),
		0x04|byte(s<<3)&0xF8, // SCR[4..0], marker, SCR_extension[8..7] 0
		0x01,                 // SCR_extension[6..0] 0, marker
		byte(muxRate>>14), byte(muxRate>>6&0xFF), byte(muxRate<<2&0xFF|0x03),
		0xF8) // reserved, pack_stuffing_length 0
}

// systemHeader appends a system header naming the streams.
func (m *Muxer) systemHeader(dst []byte) []byte {
	audio := byte(0)
	if m.Audio != 0 {
		audio = 1
	}
	n := 6 + 3 + 3*int(audio)
	dst = append(dst, 0, 0, 1, 0xBB, byte(n>>8), byte(n),
		0x80|byte(muxRate>>15), byte(muxRate>>7&0xFF), byte(muxRate<<1&0xFF|0x01), // marker, rate_bound, marker
		audio<<2,            // audio_bound; fixed_flag, CSPS_flag 0
		0xE1,                // audio and video locked, marker, video_bound 1
		0x7F,                // packet_rate_restriction_flag 0, reserved
		videoID, 0xE4, 0x00) // P-STD buffer bound 1024 × 1024 bytes
	if audio != 0 {
		dst = append(dst, audioID, 0xC0, 0x20) // 32 × 128 bytes
	}
	return dst
}

// psm appends a program stream map with one entry a stream and no
// descriptors.
func (m *Muxer) psm(dst []byte) []byte {
	start := len(dst)
	entries := 4
	if m.Audio != 0 {
		entries = 8
	}
	n := 10 + entries // program_stream_map_length
	dst = append(dst, 0, 0, 1, 0xBC, byte(n>>8), byte(n),
		0xE0|m.version, // current_next_indicator, reserved, version
		0xFF,           // reserved, marker
		0, 0,           // program_stream_info_length
		0, byte(entries),
		byte(m.Video), videoID, 0, 0)
	if m.Audio != 0 {
		dst = append(dst, byte(m.Audio), audioID, 0, 0)
	}
	return binary.BigEndian.AppendUint32(dst, crc32MPEG(dst[start:]))
}

// pes appends PES packets of stream id carrying data; the first has the
// timestamps (hl 5: PTS, 10: PTS and DTS).
func pes(dst []byte, id byte, data []byte, pts, dts int64, hl int) []byte {
	for first := true; first || len(data) > 0; first = false {
		if !first {
			hl = 0
		}
		flags := byte(0) // PTS_DTS_flags
		switch hl {
		case 5:
			flags = 0x80
		case 10:
			flags = 0xC0
		}
		n := min(len(data), maxPES-9-hl)
		l := 3 + hl + n
		dst = append(dst, 0, 0, 1, id, byte(l>>8), byte(l),
			0x80, // '10', not scrambled, no priority or alignment flags
			flags, byte(hl))
		switch hl {
		case 5:
			dst = putTS(dst, 0x2, pts)
		case 10:
			dst = putTS(dst, 0x3, pts)
			dst = putTS(dst, 0x1, dts)
		}
		dst = append(dst, data[:n]...)
		data = data[n:]
	}
	return dst
}

// putTS appends a 33-bit timestamp with its 4-bit prefix and marker bits.
func putTS(dst []byte, prefix byte, ts int64) []byte {
	t := uint64(ts) & (1<<33 - 1)
	return append(dst,
		prefix<<4|byte(t>>29)&0x0E|1,
		byte(t>>22),
		byte(t>>14)|1,
		byte(t>>7),
		byte(t<<1)|1)
}

// Packetize splits a pack into RTP payload-sized pieces of at most size
// bytes (no limit when size < 1), calling fn for each; last is true for
// the final piece, the one to send with the marker bit.
func Packetize(pack []byte, size int, fn func(piece []byte, last bool)) {
	if size < 1 {
		size = len(pack)
	}
	for len(pack) > size {
		fn(pack[:size], false)
		pack = pack[size:]
	}
	if len(pack) > 0 {
		fn(pack, true)
	}
}

// crcTable is the CRC-32 of ISO/IEC 13818-1 annex A: polynomial
// 0x04C11DB7, most significant bit first, no final inversion.
var crcTable = func() (t [256]uint32) {
	for i := range t {
		c := uint32(i) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04C11DB7
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

func crc32MPEG(b []byte) uint32 {
	c := ^uint32(0)
	for _, x := range b {
		c = c<<8 ^ crcTable[byte(c>>24)^x]
	}
	return c
}
