package pull

import (
	"encoding/binary"
	"errors"
	"fmt"

	"gridwatch/camera/stream"
)

// The depacketiser is written here rather than taken from gortsplib's
// rtph264/rtph265 decoders: those refuse a picture of more than 25 (H.264)
// or 21 (H.265) NAL units, mediacommon's caps, and a camera encoding with
// many slices (some Hikvision and Dahua main streams send one slice per
// macroblock row) would then never yield a picture. Here the bound is
// maxNALUs, far above what any encoder emits, and the size bound is the
// same 8 MiB.
const (
	maxNALUs  = 1024
	maxAUSize = 8 << 20
)

// maxScratch is the largest fragment buffer the depacketiser keeps for the
// next fragmented NAL unit: one huge keyframe slice must not pin its size
// for the life of the session.
const maxScratch = 1 << 20

// errDepack is a malformed or unsupported packet: the picture it belongs to
// is lost, and the assembler waits for the next keyframe.
var errDepack = errors.New("malformed RTP payload")

// depacketizer turns the RTP payloads of one H.264 (RFC 6184, packetization
// mode 0 or 1: single NAL unit, STAP-A, FU-A) or H.265 (RFC 7798 without
// DONL: single NAL unit, aggregation packet, fragmentation unit) stream
// into access units. A picture is complete at its marker bit or, for a
// camera that never sets it, when a packet with another timestamp arrives.
type depacketizer struct {
	kind stream.Kind

	nalus [][]byte // the picture being gathered
	size  int
	ts    uint32
	open  bool // nalus belong to the picture at ts

	// scratch gathers a fragmented NAL unit while fragging. Its buffer is
	// reused from one such unit to the next; the unit handed on is an
	// exactly sized copy, because it is kept (in the hub's cached group of
	// pictures) and grown by append its capacity would be up to twice its
	// length.
	scratch  []byte
	fragging bool

	// skipping: the picture at skipTS is damaged (a packet of it was lost
	// or malformed); its remaining packets are dropped.
	skipping bool
	skipTS   uint32
}

// unit is a finished access unit with its RTP timestamp.
type unit struct {
	ts    uint32
	nalus [][]byte
}

// reset drops whatever was being gathered.
func (d *depacketizer) reset() {
	d.nalus, d.size, d.open = nil, 0, false
	d.dropFragment()
}

// dropFragment ends the fragmented NAL unit being gathered, keeping its
// buffer for the next one unless it grew beyond maxScratch.
func (d *depacketizer) dropFragment() {
	d.fragging = false
	if cap(d.scratch) > maxScratch {
		d.scratch = nil
	}
	d.scratch = d.scratch[:0]
}

// skip drops the rest of the picture at ts: a packet of it was lost.
func (d *depacketizer) skip(ts uint32) {
	d.reset()
	d.skipping, d.skipTS = true, ts
}

// push reads one packet's payload. Finished pictures are appended to out
// (up to two: the previous picture, closed by this packet's new timestamp,
// and this one, closed by its marker). On error the partial picture is
// dropped, and so are its packets still to come, so that no truncated
// picture (a keyframe missing slices) is ever handed on; pictures finished
// before the error are still returned.
func (d *depacketizer) push(out []unit, ts uint32, marker bool, payload []byte) ([]unit, error) {
	if d.skipping {
		if ts == d.skipTS {
			return out, nil
		}
		d.skipping = false
	}
	var prev error
	if d.open && ts != d.ts {
		// A new picture began without the last one's marker.
		if d.fragging {
			// Its last fragment was lost: that picture is damaged; this
			// packet starts the next one.
			d.reset()
			prev = fmt.Errorf("%w: fragmented NAL unit without its end", errDepack)
		} else {
			out = d.finish(out)
		}
	}
	if !d.open {
		d.open, d.ts = true, ts
	}
	var err error
	if d.kind == stream.H265 {
		err = d.h265(payload)
	} else {
		err = d.h264(payload)
	}
	if err != nil {
		d.skip(ts)
		return out, err
	}
	if marker {
		if d.fragging {
			d.reset()
			return out, fmt.Errorf("%w: marker bit inside a fragmented NAL unit", errDepack)
		}
		out = d.finish(out)
	}
	return out, prev
}

// startsPicture reports whether an RTP payload begins a picture: its
// first NAL unit is a parameter set, delimiter or SEI, or a slice that is
// the first of its picture (H.264 first_mb_in_slice 0, H.265
// first_slice_segment_in_pic_flag), whole or as a start fragment. After a
// loss, a packet that does not is the middle of a damaged picture.
func startsPicture(kind stream.Kind, p []byte) bool {
	if kind == stream.H265 {
		if len(p) < 3 {
			return false
		}
		t, first := (p[0]>>1)&0x3f, p[2]
		switch t {
		case h265AP:
			if len(p) < 7 {
				return false
			}
			t, first = (p[4]>>1)&0x3f, p[6]
		case h265FU:
			if len(p) < 4 || p[2]&0x80 == 0 {
				return false
			}
			t, first = p[2]&0x3f, p[3]
		}
		if t < 32 {
			return first&0x80 != 0
		}
		return t >= 32 && t <= 40 // VPS, SPS, PPS, AUD, EOS, EOB, FD, SEI
	}
	if len(p) < 2 {
		return false
	}
	t, first := p[0]&0x1f, p[1]
	switch t {
	case h264STAPA:
		if len(p) < 5 {
			return false
		}
		t, first = p[3]&0x1f, p[4]
	case h264FUA:
		if len(p) < 3 || p[1]&0x80 == 0 {
			return false
		}
		t, first = p[1]&0x1f, p[2]
	}
	switch {
	case t == 1 || t == 2 || t == 5:
		return first&0x80 != 0
	case t >= 6 && t <= 9: // SEI, SPS, PPS, AUD
		return true
	}
	return false
}

func (d *depacketizer) finish(out []unit) []unit {
	if len(d.nalus) > 0 {
		out = append(out, unit{ts: d.ts, nalus: d.nalus})
	}
	d.nalus, d.size, d.open = nil, 0, false
	return out
}

// add keeps one whole NAL unit of the current picture. The payload buffer
// is the caller's copy (the RTSP session copies every packet), so NAL
// units may point into it.
func (d *depacketizer) add(nalu []byte) error {
	if len(nalu) == 0 {
		return fmt.Errorf("%w: empty NAL unit", errDepack)
	}
	if len(d.nalus) >= maxNALUs {
		return fmt.Errorf("%w: more than %d NAL units in a picture", errDepack, maxNALUs)
	}
	if d.size+len(nalu) > maxAUSize {
		return fmt.Errorf("%w: picture larger than %d bytes", errDepack, maxAUSize)
	}
	d.nalus = append(d.nalus, nalu)
	d.size += len(nalu)
	return nil
}

// aggregated splits an aggregation packet's units (16-bit size, unit),
// starting at offset off.
func (d *depacketizer) aggregated(payload []byte, off int) error {
	n := 0
	for off < len(payload) {
		if off+2 > len(payload) {
			return fmt.Errorf("%w: truncated aggregation packet", errDepack)
		}
		size := int(binary.BigEndian.Uint16(payload[off:]))
		off += 2
		if size == 0 || off+size > len(payload) {
			return fmt.Errorf("%w: aggregation unit of %d bytes in %d", errDepack, size, len(payload)-off)
		}
		if err := d.add(payload[off : off+size]); err != nil {
			return err
		}
		off += size
		n++
	}
	if n == 0 {
		return fmt.Errorf("%w: empty aggregation packet", errDepack)
	}
	return nil
}

// fragment gathers one fragmentation unit: header is the NAL unit header
// rebuilt from the FU's indicator and header, used on the start fragment.
func (d *depacketizer) fragment(start, end bool, header []byte, data []byte) error {
	switch {
	case start:
		if d.fragging {
			return fmt.Errorf("%w: a fragmented NAL unit restarted before its end", errDepack)
		}
		d.scratch = append(append(d.scratch[:0], header...), data...)
		d.fragging = true
	case !d.fragging:
		// Its start was lost (or came before this session): skip to the
		// next NAL unit; the loss detector has already noticed the gap.
		return fmt.Errorf("%w: fragment without its start", errDepack)
	default:
		if d.size+len(d.scratch)+len(data) > maxAUSize {
			return fmt.Errorf("%w: picture larger than %d bytes", errDepack, maxAUSize)
		}
		d.scratch = append(d.scratch, data...)
	}
	if end {
		// A copy: the NAL unit outlives this buffer, which the next
		// fragmented unit overwrites.
		nalu := make([]byte, len(d.scratch))
		copy(nalu, d.scratch)
		d.dropFragment()
		return d.add(nalu)
	}
	return nil
}

// H.264 payload types (RFC 6184 section 5.4).
const (
	h264STAPA = 24
	h264FUA   = 28
)

func (d *depacketizer) h264(p []byte) error {
	if len(p) < 1 {
		return fmt.Errorf("%w: empty payload", errDepack)
	}
	switch t := p[0] & 0x1f; {
	case t >= 1 && t <= 23:
		if d.fragging {
			return fmt.Errorf("%w: NAL unit inside a fragmented one", errDepack)
		}
		return d.add(p)
	case t == h264STAPA:
		if d.fragging {
			return fmt.Errorf("%w: aggregation inside a fragmented NAL unit", errDepack)
		}
		return d.aggregated(p, 1)
	case t == 0 || t >= 30:
		// Unspecified types: nothing a decoder needs.
		return nil
	case t == h264FUA:
		if len(p) < 3 {
			return fmt.Errorf("%w: truncated FU-A", errDepack)
		}
		fu := p[1]
		header := []byte{p[0]&0xe0 | fu&0x1f}
		return d.fragment(fu&0x80 != 0, fu&0x40 != 0, header, p[2:])
	default:
		return fmt.Errorf("%w: H.264 payload type %d is not supported (packetization mode 2?)", errDepack, t)
	}
}

// H.265 payload types (RFC 7798 section 4.4).
const (
	h265AP   = 48
	h265FU   = 49
	h265PACI = 50
)

func (d *depacketizer) h265(p []byte) error {
	if len(p) < 2 {
		return fmt.Errorf("%w: payload shorter than a NAL unit header", errDepack)
	}
	switch t := (p[0] >> 1) & 0x3f; t {
	case h265AP:
		if d.fragging {
			return fmt.Errorf("%w: aggregation inside a fragmented NAL unit", errDepack)
		}
		return d.aggregated(p, 2)
	case h265FU:
		if len(p) < 4 {
			return fmt.Errorf("%w: truncated FU", errDepack)
		}
		fu := p[2]
		header := []byte{p[0]&0x81 | (fu&0x3f)<<1, p[1]}
		return d.fragment(fu&0x80 != 0, fu&0x40 != 0, header, p[3:])
	case h265PACI:
		return fmt.Errorf("%w: H.265 PACI packets are not supported", errDepack)
	default:
		if t > h265PACI {
			// Unspecified types: nothing a decoder needs.
			return nil
		}
		if d.fragging {
			return fmt.Errorf("%w: NAL unit inside a fragmented one", errDepack)
		}
		return d.add(p)
	}
}
