package stream

import (
	"encoding/binary"
	"errors"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/g711"
)

// G.711 in MP4. ISO BMFF has no G.711 sample entry a browser plays (nor
// one mediacommon writes), and MSE plays no PCM. G.711 is therefore carried
// in MP4 (recordings, exports, MSE, HLS) as FLAC (RFC 9639; FLAC in ISO
// BMFF: the 'fLaC' sample entry and its 'dfLa' box): each G.711 frame is
// decoded (a table lookup) to the 16-bit samples it stands for, and those
// go, unchanged, into one FLAC frame of VERBATIM subframes. Nothing is lost
// — G.711 encodes those samples back to the very bytes the camera sent —
// and browsers play it from MSE (codecs "flac": Chromium, tested; Firefox), as do ffmpeg and VLC.
// The cost is twice G.711's bytes (16 kB/s for 8 kHz mono), small beside
// the pictures.
//
// mediacommon writes 16-bit LPCM ('ipcm' with a 'pcmC' box); flacEntry
// swaps that entry for 'fLaC' with a 'dfLa' box, and ParseInit swaps it
// back for mediacommon to read.

// flacFrame is one FLAC frame of the G.711 samples in payload (channels
// interleaved), starting at sample number first: variable block sizes (a
// camera's G.711 packets are not all the same length), so the header codes
// the sample number.
func flacFrame(codec AudioCodec, channels int, payload []byte, first int64) []byte {
	var pcm []byte
	if codec == PCMU {
		pcm = g711.DecodeMulaw(payload)
	} else {
		pcm = g711.DecodeAlaw(payload)
	}
	n := len(payload) / channels
	if n == 0 || n > 65536 {
		return nil
	}
	b := make([]byte, 0, 16+channels*(1+2*n)+2)
	b = append(b, 0xFF, 0xF9) // sync code, variable block size
	// Block size: 16 bits at the end of the header; sample rate: from the
	// stream's STREAMINFO.
	b = append(b, 0x70)
	chanBits := byte(0) // mono
	if channels > 1 {
		chanBits = byte(channels - 1) // independent channels
	}
	b = append(b, chanBits<<4|0x4<<1) // 16 bits a sample
	// The number runs modulo 2^31: ffmpeg refuses larger ones (74 hours of
	// a stream at 8 kHz), and in MP4 the times come from the boxes anyway.
	b = appendFLACNumber(b, uint64(first)&flacNumberMask)
	b = binary.BigEndian.AppendUint16(b, uint16(n-1))
	b = append(b, crc8(b))
	for ch := 0; ch < channels; ch++ {
		b = append(b, 0x02) // a VERBATIM subframe, no wasted bits
		if channels == 1 {
			b = append(b, pcm...)
			continue
		}
		for i := 0; i < n; i++ {
			off := 2 * (i*channels + ch)
			b = append(b, pcm[off], pcm[off+1])
		}
	}
	return binary.BigEndian.AppendUint16(b, crc16(b))
}

// flacNumberMask bounds the sample numbers written.
const flacNumberMask = 1<<31 - 1

// appendFLACNumber codes a sample number as FLAC's frame headers do: like
// UTF-8, extended to 36 bits (larger values are cut to 36 bits).
func appendFLACNumber(b []byte, v uint64) []byte {
	v &= 1<<36 - 1
	if v < 0x80 {
		return append(b, byte(v))
	}
	// n continuation bytes carry 6 bits each; the first byte the rest.
	n := 1
	for v>>(6*n) >= 1<<(6-n) {
		n++
	}
	b = append(b, byte(0xFF<<(7-n))|byte(v>>(6*n)))
	for i := n - 1; i >= 0; i-- {
		b = append(b, 0x80|byte(v>>(6*i))&0x3F)
	}
	return b
}

// crc8 is FLAC's header CRC: polynomial x^8+x^2+x+1, initial 0.
func crc8(b []byte) byte {
	var c byte
	for _, x := range b {
		c ^= x
		for range 8 {
			if c&0x80 != 0 {
				c = c<<1 ^ 0x07
			} else {
				c <<= 1
			}
		}
	}
	return c
}

// crc16 is FLAC's frame CRC: polynomial x^16+x^15+x^2+1, initial 0.
func crc16(b []byte) uint16 {
	var c uint16
	for _, x := range b {
		c ^= uint16(x) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x8005
			} else {
				c <<= 1
			}
		}
	}
	return c
}

// dfLaBox is the FLACSpecificBox of a stream: its STREAMINFO, the last
// metadata block. Block sizes vary (16 to 65535 samples); frame sizes, the
// length and the MD5 are unknown.
func dfLaBox(rate, channels int) []byte {
	b := make([]byte, 0, 50)
	b = binary.BigEndian.AppendUint32(b, 50)
	b = append(b, "dfLa"...)
	b = append(b, 0, 0, 0, 0)     // version, flags
	b = append(b, 0x80, 0, 0, 34) // last block, STREAMINFO, 34 bytes
	b = binary.BigEndian.AppendUint16(b, 16)
	b = binary.BigEndian.AppendUint16(b, 65535)
	b = append(b, 0, 0, 0, 0, 0, 0) // frame sizes unknown
	// Sample rate (20 bits), channels - 1 (3), bits per sample - 1 (5),
	// total samples (36: unknown, 0).
	v := uint64(rate)<<44 | uint64(channels-1)<<41 | uint64(15)<<36
	b = binary.BigEndian.AppendUint64(b, v)
	return append(b, make([]byte, 16)...) // MD5 unknown
}

// pcmCBox is the box mediacommon writes (and expects) in a 16-bit LPCM
// entry: big-endian, 16 bits.
func pcmCBox() []byte {
	return []byte{0, 0, 0, 14, 'p', 'c', 'm', 'C', 0, 0, 0, 0, 0, 16}
}

// swapEntry replaces, in the moov of b, the sample entry of type from
// (and the box it holds) by one of type to holding child: the sizes of the
// entry and of every box around it are mended, and so are the chunk
// offsets of a progressive MP4 whose media follow the moov. It returns b
// unchanged when there is no such entry.
func swapEntry(b []byte, from, to string, child []byte) ([]byte, error) {
	var path []int // offsets of the boxes around the entry, moov first
	entry := -1
	var walk func(start, end int) bool
	walk = func(start, end int) bool {
		for off := start; off+8 <= end; {
			size := int(binary.BigEndian.Uint32(b[off:]))
			if size < 8 || off+size > end {
				return false
			}
			switch string(b[off+4 : off+8]) {
			case "moov", "trak", "mdia", "minf", "stbl":
				path = append(path, off)
				if walk(off+8, off+size) {
					return true
				}
				path = path[:len(path)-1]
			case "stsd":
				path = append(path, off)
				// Version, flags and the entry count, then the entries.
				for e := off + 16; e+8 <= off+size; {
					es := int(binary.BigEndian.Uint32(b[e:]))
					if es < 8 || e+es > off+size {
						break
					}
					if string(b[e+4:e+8]) == from {
						entry = e
						return true
					}
					e += es
				}
				path = path[:len(path)-1]
			}
			off += size
		}
		return false
	}
	if !walk(0, len(b)) {
		return b, nil
	}
	size := int(binary.BigEndian.Uint32(b[entry:]))
	// An AudioSampleEntry is 36 bytes before its boxes; the one box it
	// holds is replaced.
	const audioEntry = 36
	if size < audioEntry {
		return nil, errors.New("stream: a sample entry too short")
	}
	head := append([]byte(nil), b[entry:entry+audioEntry]...)
	copy(head[4:8], to)
	binary.BigEndian.PutUint32(head, uint32(audioEntry+len(child)))
	delta := audioEntry + len(child) - size
	out := make([]byte, 0, len(b)+delta)
	out = append(out, b[:entry]...)
	out = append(out, head...)
	out = append(out, child...)
	out = append(out, b[entry+size:]...)
	for _, off := range path {
		binary.BigEndian.PutUint32(out[off:], uint32(int(binary.BigEndian.Uint32(out[off:]))+delta))
	}
	if delta != 0 && len(path) > 0 {
		shiftChunkOffsets(out, path[0], delta)
	}
	return out, nil
}

// shiftChunkOffsets adds delta to the chunk offsets (stco) of the moov at
// moov: the media after it moved when it changed size. Offsets before the
// moov (media written first) do not move.
func shiftChunkOffsets(b []byte, moov, delta int) {
	moovEnd := moov + int(binary.BigEndian.Uint32(b[moov:]))
	var walk func(start, end int)
	walk = func(start, end int) {
		for off := start; off+8 <= end; {
			size := int(binary.BigEndian.Uint32(b[off:]))
			if size < 8 || off+size > end {
				return
			}
			switch string(b[off+4 : off+8]) {
			case "trak", "mdia", "minf", "stbl":
				walk(off+8, off+size)
			case "stco":
				n := int(binary.BigEndian.Uint32(b[off+12:]))
				for i := 0; i < n && off+16+4*i+4 <= off+size; i++ {
					p := off + 16 + 4*i
					if v := int(binary.BigEndian.Uint32(b[p:])); v > moov {
						binary.BigEndian.PutUint32(b[p:], uint32(v+delta))
					}
				}
			}
			off += size
		}
	}
	walk(moov+8, moovEnd)
}

// FLACEntry turns the 16-bit LPCM entry mediacommon wrote for a G.711 track
// (rate Hz, channels) into FLAC's, in an init segment or a whole MP4 whose
// moov is in b.
func FLACEntry(b []byte, rate, channels int) ([]byte, error) {
	return swapEntry(b, "ipcm", "fLaC", dfLaBox(rate, channels))
}
