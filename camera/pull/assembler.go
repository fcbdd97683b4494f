package pull

import (
	"errors"
	"log/slog"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/rtplossdetector"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"

	"gridwatch/camera/stream"
)

// assembler turns RTP packets into access units for the hub.
type assembler struct {
	log     *slog.Logger
	dec     *rtph264.Decoder
	mode    int
	loss    *rtplossdetector.LossDetector
	dtsx    h264.DTSExtractor
	tl      *timeline
	sps     []byte
	pps     []byte
	params  *stream.Params
	waitKey bool
	now     func() time.Time
	// pending: the decoder holds packets of a picture not finished yet,
	// whose timestamp is pendingTS.
	pending   bool
	pendingTS uint32

	lost, dropped int64
}

func newAssembler(f *format.H264, tl *timeline, log *slog.Logger, now func() time.Time) (*assembler, error) {
	a := &assembler{log: log, mode: f.PacketizationMode, tl: tl, now: now, waitKey: true}
	a.sps, a.pps = f.SafeParams()
	if len(a.sps) > 0 && len(a.pps) > 0 {
		if p, err := stream.NewParams(a.sps, a.pps); err == nil {
			a.params = p
		}
	}
	return a, a.reset()
}

// reset throws away a partial picture; pictures are dropped until the next
// IDR picture, the first one that decodes without what was lost.
func (a *assembler) reset() error {
	a.dec = &rtph264.Decoder{PacketizationMode: a.mode}
	a.loss = rtplossdetector.New()
	a.dtsx = h264.DTSExtractor{}
	a.dtsx.Initialize()
	a.waitKey = true
	a.pending = false
	return a.dec.Init()
}

// packet feeds one RTP packet; it returns a finished picture or nil.
func (a *assembler) packet(pkt *rtp.Packet) *stream.AccessUnit {
	if lost := a.loss.Process(pkt); lost > 0 {
		a.lost += int64(lost)
		a.resetKeepLoss()
		// The loss detector has seen this packet; feed it to a clean decoder.
	}
	nalus, err := a.dec.Decode(pkt)
	ts := pkt.Timestamp
	switch {
	case err == nil:
		// Without marker bits the decoder finishes a picture when the
		// next one's first packet arrives, and keeps that packet: the
		// picture returned is the pending one, with its own timestamp.
		if a.pending && a.pendingTS != pkt.Timestamp {
			ts, a.pendingTS = a.pendingTS, pkt.Timestamp
		} else {
			a.pending = false
		}
	case errors.Is(err, rtph264.ErrMorePacketsNeeded):
		if !a.pending {
			a.pending, a.pendingTS = true, pkt.Timestamp
		}
		return nil
	case errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious):
		return nil
	default:
		// A missing FU-A fragment or a malformed packet: the picture is lost.
		a.lost++
		a.resetKeepLoss()
		return nil
	}
	// Timestamps are read before anything is dropped, so the unwrapping
	// sees every picture.
	ext := a.tl.unwrap(ts)
	return a.picture(nalus, ext)
}

func (a *assembler) resetKeepLoss() {
	loss := a.loss
	_ = a.reset()
	a.loss = loss
}

func (a *assembler) picture(nalus [][]byte, pts int64) *stream.AccessUnit {
	var sps, pps []byte
	out := make([][]byte, 0, len(nalus)+2)
	for _, n := range nalus {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps = n
		case h264.NALUTypePPS:
			pps = n
		case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeFillerData:
			// Carry nothing a decoder needs; MSE players dislike stray AUDs.
		default:
			out = append(out, n)
		}
	}
	key := stream.IsKey(out)
	if sps != nil {
		a.sps = sps
	}
	if pps != nil {
		a.pps = pps
	}
	// New parameters take effect at a keyframe only: a camera that repeats
	// or flips them between pictures must not make every viewer start
	// over (a new init segment each time).
	if (key || a.params == nil) && len(a.sps) > 0 && len(a.pps) > 0 && !a.params.Same(a.sps, a.pps) {
		p, err := stream.NewParams(a.sps, a.pps)
		if err != nil {
			a.log.Warn("camera sent a bad SPS", "err", err)
		} else {
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
		out = append([][]byte{a.params.SPS, a.params.PPS}, out...)
	}
	dts, err := a.dtsx.Extract(out, pts)
	if err != nil {
		a.log.Debug("DTS", "err", err)
		a.dropped++
		_ = a.reset()
		return nil
	}
	a.waitKey = false
	dts, pts, dur := a.tl.place(dts, pts)
	return &stream.AccessUnit{DTS: dts, PTS: pts, Duration: dur, NALUs: out, Key: key, Params: a.params, Received: a.now()}
}
