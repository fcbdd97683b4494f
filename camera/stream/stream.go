// Package stream is a camera's video in memory: H.264 or H.265 access units on one
// continuous 90 kHz timeline, the codec parameters they need, and the Hub
// that fans them out from one upstream session to any number of viewers.
//
// Everything downstream (MSE over WebSocket, HLS, the RTSP re-serve, the
// recorder) reads from a Hub; nothing downstream ever talks to a camera.
package stream

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
)

// ClockRate is the clock of every timestamp in this package: 90 kHz, as RTP
// carries H.264 and H.265.
const ClockRate = 90000

// Ticks converts a duration to 90 kHz ticks.
func Ticks(d time.Duration) int64 { return int64(d) * ClockRate / int64(time.Second) }

// Duration converts 90 kHz ticks to a duration.
func Duration(ticks int64) time.Duration {
	return time.Duration(ticks * int64(time.Second) / ClockRate)
}

// Kind is a stream's video coding. Everything downstream of the puller
// (the hub, MSE, HLS, the RTSP re-serve, recordings and exports) carries
// both; only parameter sets, keyframe detection, the RTP packetisation and
// the fMP4 sample entry differ.
type Kind uint8

// The video codings a camera may send.
const (
	H264 Kind = iota + 1 // ITU-T H.264 / AVC
	H265                 // ITU-T H.265 / HEVC
)

// String names the coding as users know it.
func (k Kind) String() string {
	switch k {
	case H264:
		return "H.264"
	case H265:
		return "H.265"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// IsKey reports whether the NAL units contain a picture decoding can start
// at: an IDR slice for H.264; an IRAP slice (BLA, IDR or CRA) for H.265.
// It reads NAL types, not a flag a puller might have set wrongly.
func (k Kind) IsKey(nalus [][]byte) bool {
	for _, nalu := range nalus {
		if len(nalu) == 0 {
			continue
		}
		switch k {
		case H264:
			if h264.NALUType(nalu[0]&0x1f) == h264.NALUTypeIDR {
				return true
			}
		case H265:
			if t := h265.NALUType((nalu[0] >> 1) & 0x3f); t >= h265.NALUType_BLA_W_LP && t <= h265.NALUType_CRA_NUT {
				return true
			}
		}
	}
	return false
}

// ParamSet says which parameter set a NAL unit is, if any: "vps", "sps",
// "pps" or "".
func (k Kind) ParamSet(nalu []byte) string {
	if len(nalu) == 0 {
		return ""
	}
	switch k {
	case H264:
		switch h264.NALUType(nalu[0] & 0x1f) {
		case h264.NALUTypeSPS:
			return "sps"
		case h264.NALUTypePPS:
			return "pps"
		}
	case H265:
		switch h265.NALUType((nalu[0] >> 1) & 0x3f) {
		case h265.NALUType_VPS_NUT:
			return "vps"
		case h265.NALUType_SPS_NUT:
			return "sps"
		case h265.NALUType_PPS_NUT:
			return "pps"
		}
	}
	return ""
}

// Params are the codec parameters of a stream. A Params value is immutable
// once built: a change of parameter sets makes a new one, and consumers
// compare pointers to notice it (an MSE viewer then needs a new init
// segment).
type Params struct {
	Kind Kind
	// VPS is H.265's video parameter set (nil for H.264).
	VPS, SPS, PPS []byte
	Width         int
	Height        int
	// Profile is the coding's profile: H.264 profile_idc (66 Baseline,
	// 77 Main, 100 High), H.265 general_profile_idc (1 Main, 2 Main 10).
	Profile int
	// Codec is the RFC 6381 codec string, e.g. "avc1.64001f" or
	// "hvc1.1.6.L93.B0", for MSE's isTypeSupported and HLS's CODECS.
	Codec string
}

// NewParams parses an H.264 SPS and keeps it with its PPS.
func NewParams(sps, pps []byte) (*Params, error) {
	if len(sps) < 4 || len(pps) == 0 {
		return nil, errors.New("stream: SPS and PPS are required")
	}
	if H264.ParamSet(sps) != "sps" || H264.ParamSet(pps) != "pps" {
		return nil, errors.New("stream: not an SPS and a PPS")
	}
	var s h264.SPS
	if err := s.Unmarshal(sps); err != nil {
		return nil, fmt.Errorf("stream: SPS: %w", err)
	}
	return &Params{
		Kind:    H264,
		SPS:     append([]byte(nil), sps...),
		PPS:     append([]byte(nil), pps...),
		Width:   s.Width(),
		Height:  s.Height(),
		Profile: int(sps[1]),
		// profile_idc, constraint flags and level_idc are SPS bytes 1..3.
		Codec: fmt.Sprintf("avc1.%02x%02x%02x", sps[1], sps[2], sps[3]),
	}, nil
}

// NewH265Params parses an H.265 SPS and keeps it with its VPS and PPS.
func NewH265Params(vps, sps, pps []byte) (*Params, error) {
	if len(vps) < 3 || len(sps) < 3 || len(pps) < 3 {
		return nil, errors.New("stream: VPS, SPS and PPS are required")
	}
	if H265.ParamSet(vps) != "vps" || H265.ParamSet(sps) != "sps" || H265.ParamSet(pps) != "pps" {
		return nil, errors.New("stream: not a VPS, an SPS and a PPS")
	}
	var s h265.SPS
	if err := s.Unmarshal(sps); err != nil {
		return nil, fmt.Errorf("stream: SPS: %w", err)
	}
	return &Params{
		Kind:    H265,
		VPS:     append([]byte(nil), vps...),
		SPS:     append([]byte(nil), sps...),
		PPS:     append([]byte(nil), pps...),
		Width:   s.Width(),
		Height:  s.Height(),
		Profile: int(s.ProfileTierLevel.GeneralProfileIdc),
		Codec:   hevcCodec(&s.ProfileTierLevel),
	}, nil
}

// hevcCodec is the RFC 6381 string of an H.265 stream (ISO/IEC 14496-15
// annex E): hvc1.<space><profile>.<compatibility, bit-reversed, hex>.
// <tier><level>.<constraint bytes, trailing zero bytes left out>.
func hevcCodec(p *h265.SPS_ProfileTierLevel) string {
	var b strings.Builder
	b.WriteString("hvc1.")
	if p.GeneralProfileSpace > 0 && p.GeneralProfileSpace <= 3 {
		b.WriteByte("ABC"[p.GeneralProfileSpace-1])
	}
	fmt.Fprintf(&b, "%d.", p.GeneralProfileIdc)
	// Flag j is bit 31-j of the 32 bits as coded; reversed, flag j is bit j.
	var compat uint32
	for j, set := range p.GeneralProfileCompatibilityFlag {
		if set {
			compat |= 1 << j
		}
	}
	fmt.Fprintf(&b, "%X.", compat)
	if p.GeneralTierFlag != 0 {
		b.WriteByte('H')
	} else {
		b.WriteByte('L')
	}
	fmt.Fprintf(&b, "%d", p.GeneralLevelIdc)
	// The constraint flags, 48 bits from general_progressive_source_flag,
	// as bytes; trailing zero bytes are left out.
	flags := []bool{p.GeneralProgressiveSourceFlag, p.GeneralInterlacedSourceFlag,
		p.GeneralNonPackedConstraintFlag, p.GeneralFrameOnlyConstraintFlag,
		// The range-extension profiles' flags (zero for Main, Main 10).
		p.GeneralMax12bitConstraintFlag, p.GeneralMax10bitConstraintFlag,
		p.GeneralMax8bitConstraintFlag, p.GeneralMax422ChromeConstraintFlag,
		p.GeneralMax420ChromaConstraintFlag, p.GeneralMaxMonochromeConstraintFlag,
		p.GeneralIntraConstraintFlag, p.GeneralOnePictureOnlyConstraintFlag,
		p.GeneralLowerBitRateConstraintFlag, p.GeneralMax14BitConstraintFlag}
	var cons [6]byte
	for i, set := range flags {
		if set {
			cons[i/8] |= 0x80 >> (i % 8)
		}
	}
	n := len(cons)
	for n > 0 && cons[n-1] == 0 {
		n--
	}
	for _, c := range cons[:n] {
		fmt.Fprintf(&b, ".%X", c)
	}
	return b.String()
}

// Same reports whether p carries the H.264 SPS and PPS given.
func (p *Params) Same(sps, pps []byte) bool {
	return p != nil && p.Kind == H264 && string(p.SPS) == string(sps) && string(p.PPS) == string(pps)
}

// Equal reports whether p and q carry the same coding and parameter sets.
func (p *Params) Equal(q *Params) bool {
	if p == nil || q == nil {
		return p == q
	}
	return p.Kind == q.Kind && string(p.VPS) == string(q.VPS) && string(p.SPS) == string(q.SPS) && string(p.PPS) == string(q.PPS)
}

// Sets returns the parameter sets in decoding order (VPS, SPS, PPS), as a
// keyframe carries them in front of its slices.
func (p *Params) Sets() [][]byte {
	if p.Kind == H265 {
		return [][]byte{p.VPS, p.SPS, p.PPS}
	}
	return [][]byte{p.SPS, p.PPS}
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
	// NALUs are the picture's NAL units. A keyframe carries its parameter
	// sets (Params.Sets) in front of its slices.
	NALUs [][]byte
	// Key is true for an IDR (H.265: IRAP) picture: decoding can start here.
	Key bool
	// Params are the codec parameters this picture is decoded with.
	Params *Params
	// Received is the wall-clock time the last packet of the picture arrived.
	Received time.Time

	// Audio is set on an audio frame, nil on a picture. An audio frame has
	// Payload instead of NALUs and Params, is never Key, and its DTS, PTS
	// and Duration are in ticks of Audio.ClockRate (see Audio).
	Audio *Audio
	// Payload is an audio frame's coded data: one AAC access unit, one Opus
	// packet, or a run of G.711 samples.
	Payload []byte

	frag fragCache
}

// Size is the number of bytes of the picture's NAL units.
func (au *AccessUnit) Size() int {
	if au.Audio != nil {
		return len(au.Payload)
	}
	n := 0
	for _, nalu := range au.NALUs {
		n += len(nalu)
	}
	return n
}
