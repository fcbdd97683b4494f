package pull

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/rtplossdetector"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/pion/rtp"

	"gridwatch/camera/stream"
)

// dtsExtractor is mediacommon's H.264 or H.265 DTS extractor.
type dtsExtractor interface {
	Extract(au [][]byte, pts int64) (int64, error)
}

// assembler turns RTP packets into access units for the hub.
type assembler struct {
	log  *slog.Logger
	kind stream.Kind
	dp   depacketizer
	loss *rtplossdetector.LossDetector
	dtsx dtsExtractor
	tl   *timeline
	// The latest parameter sets seen, in the SDP or in band.
	vps, sps, pps []byte
	params        *stream.Params
	waitKey       bool
	now           func() time.Time
	units         []unit               // reused by packet
	out           []*stream.AccessUnit // reused by packet

	lost, dropped int64
	// pictures counts the whole pictures assembled, handed on or dropped
	// (waiting for a keyframe): the camera is sending, whatever comes of it.
	pictures int64
}

// videoFormat reads what the assembler needs of an announced format: the
// coding and the parameter sets the SDP carries.
func videoFormat(f format.Format) (kind stream.Kind, vps, sps, pps []byte, err error) {
	switch f := f.(type) {
	case *format.H264:
		if f.PacketizationMode > 1 {
			return 0, nil, nil, nil, errors.New("the camera's H.264 uses packetization mode 2 (interleaved), which is not supported")
		}
		sps, pps = f.SafeParams()
		return stream.H264, nil, sps, pps, nil
	case *format.H265:
		if f.MaxDONDiff != 0 {
			return 0, nil, nil, nil, errors.New("the camera's H.265 uses decoding order numbers (sprop-max-don-diff), which are not supported")
		}
		vps, sps, pps = f.SafeParams()
		return stream.H265, vps, sps, pps, nil
	case nil:
		return 0, nil, nil, nil, errors.New("the camera offers no video")
	}
	return 0, nil, nil, nil, fmt.Errorf("the camera's video is %s, not H.264 or H.265", f.Codec())
}

func newAssembler(f format.Format, tl *timeline, log *slog.Logger, now func() time.Time) (*assembler, error) {
	kind, vps, sps, pps, err := videoFormat(f)
	if err != nil {
		return nil, err
	}
	a := &assembler{log: log, kind: kind, tl: tl, now: now, vps: vps, sps: sps, pps: pps}
	a.params = a.newParams()
	a.reset()
	return a, nil
}

// newParams builds parameters from the latest sets, or nil when some are
// missing or the SPS does not parse.
func (a *assembler) newParams() *stream.Params {
	var p *stream.Params
	var err error
	switch {
	case len(a.sps) == 0 || len(a.pps) == 0:
		return nil
	case a.kind == stream.H265 && len(a.vps) == 0:
		return nil
	case a.kind == stream.H265:
		p, err = stream.NewH265Params(a.vps, a.sps, a.pps)
	default:
		p, err = stream.NewParams(a.sps, a.pps)
	}
	if err != nil {
		a.log.Warn("camera sent bad parameter sets", "err", err)
		return nil
	}
	return p
}

// reset throws away a partial picture; pictures are dropped until the next
// keyframe, the first one that decodes without what was lost.
func (a *assembler) reset() {
	// The fragment buffer outlives the loss: a new one for every loss would
	// be garbage for nothing.
	a.dp = depacketizer{kind: a.kind, scratch: a.dp.scratch}
	a.dp.dropFragment()
	a.loss = rtplossdetector.New()
	a.resetDTS()
	a.waitKey = true
}

func (a *assembler) resetDTS() {
	if a.kind == stream.H265 {
		x := &h265.DTSExtractor{}
		x.Initialize()
		a.dtsx = x
	} else {
		x := &h264.DTSExtractor{}
		x.Initialize()
		a.dtsx = x
	}
}

// packet feeds one RTP packet; it returns the pictures it finished (most
// often none or one). The slice is reused by the next call.
func (a *assembler) packet(pkt *rtp.Packet) []*stream.AccessUnit {
	a.out = a.out[:0]
	if lost := a.loss.Process(pkt); lost > 0 {
		a.lost += int64(lost)
		// Whatever was gathered misses packets: drop it and wait for a
		// keyframe. This packet goes to a clean depacketiser if it begins a
		// picture; if not, the lost packets were that picture's first ones
		// and the rest of it is dropped too.
		loss := a.loss
		a.reset()
		a.loss = loss
		if !startsPicture(a.kind, pkt.Payload) {
			a.dp.skip(pkt.Timestamp)
		}
	}
	units, err := a.dp.push(a.units[:0], pkt.Timestamp, pkt.Marker, pkt.Payload)
	a.units = units
	if err != nil {
		a.lost++
		a.waitKey = true
		a.log.Debug("RTP", "err", err)
	}
	for _, u := range units {
		// Timestamps are read before anything is dropped, so the
		// unwrapping sees every picture.
		ext := a.tl.unwrap(u.ts)
		if au := a.picture(u.nalus, ext); au != nil {
			a.out = append(a.out, au)
		}
	}
	clear(a.units)
	return a.out
}

// unit takes a whole picture from a UnitSession.
func (a *assembler) unit(u Unit) *stream.AccessUnit {
	if u.Loss {
		a.lost++
		a.waitKey = true
	}
	return a.picture(u.NALUs, a.tl.unwrap(u.TS))
}

// paramsLead is the room picture leaves in front of a picture's NAL units
// for the parameter sets (VPS, SPS, PPS) a keyframe gets.
const paramsLead = 3

func (a *assembler) picture(nalus [][]byte, pts int64) *stream.AccessUnit {
	a.pictures++
	// One array for the picture's units, with the sets of a keyframe put
	// in front in place: the slice stays with the picture (in the hub's
	// cached group of pictures), and prepending by append would allocate
	// a second one, larger than needed.
	buf := make([][]byte, paramsLead, paramsLead+len(nalus))
	for _, n := range nalus {
		switch a.kind.ParamSet(n) {
		case "vps":
			a.vps = n
		case "sps":
			a.sps = n
		case "pps":
			a.pps = n
		default:
			if !a.dropUnit(n) {
				buf = append(buf, n)
			}
		}
	}
	out := buf[paramsLead:]
	key := a.kind.IsKey(out)
	// New parameters take effect at a keyframe only: a camera that repeats
	// or flips them between pictures must not make every viewer start
	// over (a new init segment each time).
	if (key || a.params == nil) && a.setsChanged() {
		if p := a.newParams(); p != nil {
			a.params = p
		}
	}
	if a.waitKey && !key || a.params == nil || len(out) == 0 {
		a.dropped++
		return nil
	}
	if key {
		// Every keyframe carries its parameter sets, so a recording or a
		// re-served stream can start at any keyframe.
		sets := a.params.Sets()
		out = buf[paramsLead-len(sets):]
		copy(out, sets)
	}
	dts, err := a.dtsx.Extract(out, pts)
	if err != nil {
		a.log.Debug("DTS", "err", err)
		a.dropped++
		a.resetDTS()
		a.waitKey = true
		return nil
	}
	a.waitKey = false
	dts, pts, dur := a.tl.place(dts, pts)
	return &stream.AccessUnit{DTS: dts, PTS: pts, Duration: dur, NALUs: out, Key: key, Params: a.params, Received: a.now()}
}

// setsChanged reports whether the latest parameter sets differ from the
// current parameters'.
func (a *assembler) setsChanged() bool {
	p := a.params
	return p == nil || string(p.SPS) != string(a.sps) || string(p.PPS) != string(a.pps) ||
		a.kind == stream.H265 && string(p.VPS) != string(a.vps)
}

// dropUnit reports whether a NAL unit carries nothing a decoder needs:
// access unit delimiters, filler data and end-of-sequence markers (MSE
// players dislike stray ones; the hub's consumers add what they need).
func (a *assembler) dropUnit(n []byte) bool {
	if a.kind == stream.H265 {
		switch h265.NALUType((n[0] >> 1) & 0x3f) {
		case h265.NALUType_AUD_NUT, h265.NALUType_FD_NUT, h265.NALUType_EOS_NUT, h265.NALUType_EOB_NUT:
			return true
		}
		return false
	}
	switch h264.NALUType(n[0] & 0x1f) {
	case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeFillerData:
		return true
	}
	return false
}
