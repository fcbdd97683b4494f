package camsim

import (
	"encoding/binary"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"gridwatch/camera/stream"
)

// Timestamps in the pictures. With Config.StampSEI every picture a camera
// sends carries, in front of its slices, an SEI message (user data
// unregistered, ITU-T H.264 D.2.7 / H.265 D.2.7) holding the wall-clock
// time it was due to be sent. Every output carries the picture's NAL units
// as they came, so a client of any of them (RTSP, WebRTC, MSE, HLS) reads
// the time back with SEITime and knows how long the picture took to reach
// it: latency measured end to end, not estimated.

// seiUUID marks gridwatch's timestamp among other user data.
var seiUUID = [16]byte{'g', 'r', 'i', 'd', 'w', 'a', 't', 'c', 'h', ' ', 's', 'e', 'n', 't', '@', 't'}

const (
	seiUserDataUnregistered = 5
	seiPayloadSize          = 16 + 8
	h265PrefixSEI           = 39
)

// stampSEI is the SEI NAL unit carrying at, for a stream of kind.
func stampSEI(kind stream.Kind, at time.Time) []byte {
	var rbsp []byte
	rbsp = append(rbsp, seiUserDataUnregistered, seiPayloadSize)
	rbsp = append(rbsp, seiUUID[:]...)
	rbsp = binary.BigEndian.AppendUint64(rbsp, uint64(at.UnixNano()))
	rbsp = append(rbsp, 0x80) // rbsp_trailing_bits
	header := []byte{6}       // H.264 SEI
	if kind == stream.H265 {
		header = []byte{h265PrefixSEI << 1, 1}
	}
	return append(header, preventEmulation(rbsp)...)
}

// preventEmulation inserts emulation-prevention bytes: no 00 00 0x (x ≤ 3)
// may appear in a NAL unit's payload.
func preventEmulation(rbsp []byte) []byte {
	out := make([]byte, 0, len(rbsp)+4)
	zeros := 0
	for _, b := range rbsp {
		if zeros >= 2 && b <= 3 {
			out = append(out, 3)
			zeros = 0
		}
		out = append(out, b)
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}

// SEITime finds the send time a simulated camera stamped in a picture's
// NAL units (Config.StampSEI); ok is false when there is none.
func SEITime(kind stream.Kind, nalus [][]byte) (at time.Time, ok bool) {
	for _, n := range nalus {
		if t, ok := seiNALUTime(kind, n); ok {
			return t, true
		}
	}
	return time.Time{}, false
}

// seiNALUTime reads the send time from one NAL unit, if it is our SEI.
func seiNALUTime(kind stream.Kind, n []byte) (time.Time, bool) {
	hdr := 1
	if kind == stream.H265 {
		if len(n) < 2 || (n[0]>>1)&0x3f != h265PrefixSEI {
			return time.Time{}, false
		}
		hdr = 2
	} else if len(n) < 1 || n[0]&0x1f != 6 {
		return time.Time{}, false
	}
	rbsp := h264.EmulationPreventionRemove(n[hdr:])
	if len(rbsp) < 2+seiPayloadSize || rbsp[0] != seiUserDataUnregistered || rbsp[1] != seiPayloadSize ||
		[16]byte(rbsp[2:18]) != seiUUID {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(rbsp[18:26]))), true
}

// withSEI returns the picture's NAL units with the stamp in front of its
// first slice (after any parameter sets), as an encoder places SEI.
func withSEI(kind stream.Kind, au [][]byte, at time.Time) [][]byte {
	out := make([][]byte, 0, len(au)+1)
	done := false
	for _, n := range au {
		if !done && kind.ParamSet(n) == "" {
			out = append(out, stampSEI(kind, at))
			done = true
		}
		out = append(out, n)
	}
	return out
}
