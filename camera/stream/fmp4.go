package stream

import (
	"errors"
	"fmt"
	"sync"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
)

// Fragmented MP4 is written with mediacommon's fmp4 package, not vdk's
// mp4f: mp4f marks every sample as a sync sample (a browser then believes it
// can start anywhere and shows garbage) and cuts a fragment every six
// samples whatever they are. Here a fragment holds whole pictures, only IDR
// pictures are sync samples, and every fragment's decode time comes from the
// stream's continuous timeline.

// TrackID is the one track of every fMP4 this package writes.
const TrackID = 1

// InitSegment is the fMP4 initialisation segment (ftyp+moov) for p.
func InitSegment(p *Params) ([]byte, error) {
	if p == nil {
		return nil, errors.New("stream: no codec parameters yet")
	}
	var codec fmp4.Codec = &fmp4.CodecH264{SPS: p.SPS, PPS: p.PPS}
	if p.Kind == H265 {
		codec = &fmp4.CodecH265{VPS: p.VPS, SPS: p.SPS, PPS: p.PPS}
	}
	init := fmp4.Init{Tracks: []*fmp4.InitTrack{{
		ID:        TrackID,
		TimeScale: ClockRate,
		Codec:     codec,
	}}}
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		return nil, fmt.Errorf("stream: init segment: %w", err)
	}
	return buf.Bytes(), nil
}

// Fragment writes aus as one fMP4 fragment (moof+mdat) with sequence number
// seq. Each sample lasts until the next one's DTS; the last lasts until
// endDTS, or its own Duration estimate when endDTS is not after it.
func Fragment(seq uint32, aus []*AccessUnit, endDTS int64) ([]byte, error) {
	if len(aus) == 0 {
		return nil, errors.New("stream: empty fragment")
	}
	samples := make([]*fmp4.Sample, len(aus))
	for i, au := range aus {
		next := endDTS
		if i+1 < len(aus) {
			next = aus[i+1].DTS
		}
		d := next - au.DTS
		if d <= 0 || d > 10*ClockRate {
			d = defaultDuration
		}
		s := &fmp4.Sample{Duration: uint32(d), PTSOffset: int32(au.PTS - au.DTS)}
		// H.264 and H.265 samples are both length-prefixed NAL units. The
		// sync flag follows the puller's keyframe detection.
		payload, err := h264.AVCC(au.NALUs).Marshal()
		if err != nil {
			return nil, fmt.Errorf("stream: sample: %w", err)
		}
		s.Payload, s.IsNonSyncSample = payload, !au.Key
		samples[i] = s
	}
	part := fmp4.Part{SequenceNumber: seq, Tracks: []*fmp4.PartTrack{{
		ID:       TrackID,
		BaseTime: uint64(aus[0].DTS),
		Samples:  samples,
	}}}
	var buf seekablebuffer.Buffer
	if err := part.Marshal(&buf); err != nil {
		return nil, fmt.Errorf("stream: fragment: %w", err)
	}
	return buf.Bytes(), nil
}

// defaultDuration is one picture at 25 fps, for a sample whose successor is
// not known.
const defaultDuration = ClockRate / 25

// fragCache holds the one-picture fragment of an access unit, built once and
// shared by every MSE viewer: a hundred viewers cost one mux.
type fragCache struct {
	once sync.Once
	data []byte
	err  error
}

// Fragment is the access unit as a one-sample fMP4 fragment, built on first
// use and then shared. Its sequence number is the picture's DTS in
// frames, which increases as MSE expects; its duration is au.Duration.
func (au *AccessUnit) Fragment() ([]byte, error) {
	au.frag.once.Do(func() {
		end := au.DTS + au.Duration
		au.frag.data, au.frag.err = Fragment(uint32(au.DTS/defaultDuration)+1, []*AccessUnit{au}, end)
	})
	return au.frag.data, au.frag.err
}
