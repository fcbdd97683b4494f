// Package ps reads and writes the MPEG-2 program stream (ISO/IEC 13818-1
// section 2.5) in which GB/T 28181 devices send video and audio over RTP:
// one pack a frame, split over RTP packets, the marker bit on the last.
// The Demuxer takes the RTP payloads in order and hands on access units
// and audio frames; the Muxer (for the camera simulator) writes the packs
// and Packetize cuts them to RTP payload size.
package ps

import "fmt"

// StreamType is the stream_type of a program stream map entry
// (ISO/IEC 13818-1 table 2-34; 0x80 and up as GB/T 28181 assigns them).
type StreamType uint8

// The stream types the Muxer writes.
const (
	H264  StreamType = 0x1B
	H265  StreamType = 0x24
	AAC   StreamType = 0x0F // ADTS
	G711A StreamType = 0x90
	G711U StreamType = 0x91
)

// Stream types the Demuxer reports (from the PSM, or guessed for MPEG
// audio) but nothing here multiplexes.
const (
	MPEG1Audio StreamType = 0x03
	MPEG2Audio StreamType = 0x04
	MPEG4Video StreamType = 0x10
	SVAC       StreamType = 0x80
	G7221      StreamType = 0x92
	G7231      StreamType = 0x93
	G729       StreamType = 0x99
)

func (t StreamType) String() string {
	switch t {
	case 0:
		return "none"
	case H264:
		return "H.264"
	case H265:
		return "H.265"
	case AAC:
		return "AAC"
	case G711A:
		return "G.711 A-law"
	case G711U:
		return "G.711 µ-law"
	case MPEG1Audio:
		return "MPEG-1 audio"
	case MPEG2Audio:
		return "MPEG-2 audio"
	case MPEG4Video:
		return "MPEG-4 video"
	case SVAC:
		return "SVAC"
	case G7221:
		return "G.722.1"
	case G7231:
		return "G.723.1"
	case G729:
		return "G.729"
	}
	return fmt.Sprintf("stream type 0x%02X", uint8(t))
}

// Frame is one elementary-stream frame taken out of a program stream.
type Frame struct {
	// Type is what the PSM says of the stream; when no PSM was seen (or it
	// says H.264 of data that is clearly H.265, or the other way round),
	// what the data looks like.
	Type  StreamType
	Video bool // stream_id 0xE0-0xEF; else audio, 0xC0-0xDF
	// Key: the access unit holds an IDR (H.264) or IRAP (H.265) picture.
	// Always false for other codecs.
	Key bool
	// PTS and DTS in 90 kHz units, 33 bits as carried (not unwrapped);
	// valid when HasPTS. DTS equals PTS when the stream carries none. A
	// video frame has no PTS when its PES carried none, or when a PES
	// began more than one access unit (a muxer packing PES of fixed size,
	// as ffmpeg's does): the PTS belongs to the first.
	PTS, DTS int64
	HasPTS   bool
	// Data is, for video, the access unit in Annex-B form as carried (start
	// codes included); for audio, the PES payload: ADTS frames for AAC,
	// samples for G.711. The receiver owns it.
	Data []byte
}

// Stats counts what a Demuxer handed on and dropped.
type Stats struct {
	Video, Audio int // frames handed on
	Errors       int // malformed input found (Write returns the first of each call)
	Oversize     int // video frames dropped for exceeding MaxFrame
}
