// Package stream is a camera's video in memory: H.264 access units on one
// continuous 90 kHz timeline, the codec parameters they need, and the Hub
// that fans them out from one upstream session to any number of viewers.
//
// Everything downstream (MSE over WebSocket, HLS, the RTSP re-serve, the
// recorder) reads from a Hub; nothing downstream ever talks to a camera.
package stream

import (
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// ClockRate is the clock of every timestamp in this package: 90 kHz, as RTP
// carries H.264.
const ClockRate = 90000

// Ticks converts a duration to 90 kHz ticks.
func Ticks(d time.Duration) int64 { return int64(d) * ClockRate / int64(time.Second) }

// Duration converts 90 kHz ticks to a duration.
func Duration(ticks int64) time.Duration {
	return time.Duration(ticks * int64(time.Second) / ClockRate)
}

// Params are the codec parameters of a stream. A Params value is immutable
// once built: a change of SPS or PPS makes a new one, and consumers compare
// pointers to notice it (an MSE viewer then needs a new init segment).
type Params struct {
	SPS, PPS []byte
	Width    int
	Height   int
	// Codec is the RFC 6381 codec string, e.g. "avc1.64001f", for MSE's
	// isTypeSupported and HLS's CODECS attribute.
	Codec string
}

// NewParams parses an SPS and keeps it with its PPS.
func NewParams(sps, pps []byte) (*Params, error) {
	if len(sps) < 4 || len(pps) == 0 {
		return nil, errors.New("stream: SPS and PPS are required")
	}
	if h264.NALUType(sps[0]&0x1f) != h264.NALUTypeSPS || h264.NALUType(pps[0]&0x1f) != h264.NALUTypePPS {
		return nil, errors.New("stream: not an SPS and a PPS")
	}
	var s h264.SPS
	if err := s.Unmarshal(sps); err != nil {
		return nil, fmt.Errorf("stream: SPS: %w", err)
	}
	return &Params{
		SPS:    append([]byte(nil), sps...),
		PPS:    append([]byte(nil), pps...),
		Width:  s.Width(),
		Height: s.Height(),
		// profile_idc, constraint flags and level_idc are SPS bytes 1..3.
		Codec: fmt.Sprintf("avc1.%02x%02x%02x", sps[1], sps[2], sps[3]),
	}, nil
}

// Same reports whether p and q carry the same SPS and PPS.
func (p *Params) Same(sps, pps []byte) bool {
	return p != nil && string(p.SPS) == string(sps) && string(p.PPS) == string(pps)
}

// AccessUnit is one coded picture: its NAL units (without start codes or
// length prefixes) and its times on the stream's continuous timeline.
// An AccessUnit is shared by every viewer and must not be modified once it
// has been published.
type AccessUnit struct {
	// DTS and PTS are 90 kHz ticks on the stream's timeline, which starts
	// at 0 and never goes back, across reconnects and RTP timestamp wraps.
	DTS, PTS int64
	// Duration is how long the picture is expected to show, in ticks: the
	// last interval between pictures, since the next one has not arrived.
	Duration int64
	// NALUs are the picture's NAL units. A keyframe carries SPS and PPS in
	// front of its IDR slices.
	NALUs [][]byte
	// Key is true for an IDR picture: decoding can start here.
	Key bool
	// Params are the codec parameters this picture is decoded with.
	Params *Params
	// Received is the wall-clock time the last packet of the picture arrived.
	Received time.Time

	frag fragCache
}

// Size is the number of bytes of the picture's NAL units.
func (au *AccessUnit) Size() int {
	n := 0
	for _, nalu := range au.NALUs {
		n += len(nalu)
	}
	return n
}

// IsKey reports whether the NAL units contain an IDR slice. It reads NAL
// types, not a flag a puller might have set wrongly.
func IsKey(nalus [][]byte) bool {
	for _, nalu := range nalus {
		if len(nalu) > 0 && h264.NALUType(nalu[0]&0x1f) == h264.NALUTypeIDR {
			return true
		}
	}
	return false
}
