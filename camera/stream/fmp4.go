package stream

import (
	"bytes"
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

// TrackID is the video track of every fMP4 this package writes;
// AudioTrackID its audio track, when it has one.
const (
	TrackID      = 1
	AudioTrackID = 2
)

// InitSegment is the fMP4 initialisation segment (ftyp+moov) for p, with an
// audio track for a (nil: no audio).
func InitSegment(p *Params, a *Audio) ([]byte, error) {
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
	if a != nil {
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{ID: AudioTrackID, TimeScale: uint32(a.ClockRate()), Codec: mp4Codec(a)})
	}
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		return nil, fmt.Errorf("stream: init segment: %w", err)
	}
	b := buf.Bytes()
	if a != nil && (a.Codec == PCMA || a.Codec == PCMU) {
		return FLACEntry(b, a.SampleRate, a.Channels)
	}
	return b, nil
}

// mp4Codec is mediacommon's codec of an audio track. G.711 is written as
// 16-bit LPCM, whose sample entry FLACEntry then turns into FLAC's.
func mp4Codec(a *Audio) fmp4.Codec {
	switch a.Codec {
	case AAC:
		return &fmp4.CodecMPEG4Audio{Config: *a.Config}
	case PCMA, PCMU:
		return &fmp4.CodecLPCM{BitDepth: 16, SampleRate: a.SampleRate, ChannelCount: a.Channels}
	}
	return &fmp4.CodecOpus{ChannelCount: a.Channels}
}

// ParseInit reads an initialisation segment this package wrote; flac says
// its audio track is G.711 carried as FLAC (mediacommon, which does not
// know FLAC, is handed a copy with the LPCM entry it wrote instead).
func ParseInit(b []byte) (init *fmp4.Init, flac bool, err error) {
	nb, err := swapEntry(b, "fLaC", "ipcm", pcmCBox())
	if err != nil {
		return nil, false, err
	}
	flac = len(nb) != len(b)
	init = &fmp4.Init{}
	if err := init.Unmarshal(bytes.NewReader(nb)); err != nil {
		return nil, false, err
	}
	return init, flac, nil
}

// Fragment writes aus as one fMP4 fragment (moof+mdat) with sequence number
// seq. Each picture lasts until the next one's DTS; the last lasts until
// endDTS, or its own Duration estimate when endDTS is not after it.
// Audio frames among aus go to the audio track (each lasts until the next
// one, the last its own Duration; G.711 as FLAC frames).
func Fragment(seq uint32, aus []*AccessUnit, endDTS int64) ([]byte, error) {
	var video, audio []*AccessUnit
	for _, au := range aus {
		if au.Audio == nil {
			video = append(video, au)
		} else {
			audio = append(audio, au)
		}
	}
	if len(video) == 0 && len(audio) == 0 {
		return nil, errors.New("stream: empty fragment")
	}
	part := fmp4.Part{SequenceNumber: seq}
	if len(video) > 0 {
		vt, err := videoTrack(video, endDTS)
		if err != nil {
			return nil, err
		}
		part.Tracks = append(part.Tracks, vt)
	}
	if len(audio) > 0 {
		part.Tracks = append(part.Tracks, audioTrack(audio))
	}
	var buf seekablebuffer.Buffer
	if err := part.Marshal(&buf); err != nil {
		return nil, fmt.Errorf("stream: fragment: %w", err)
	}
	return buf.Bytes(), nil
}

// audioTrack is the audio frames' part of a fragment.
func audioTrack(aus []*AccessUnit) *fmp4.PartTrack {
	samples := make([]*fmp4.Sample, len(aus))
	for i, au := range aus {
		d := au.Duration
		if i+1 < len(aus) {
			if next := aus[i+1].DTS - au.DTS; next > 0 && next < int64(au.Audio.ClockRate()) {
				d = next
			}
		}
		payload := au.Payload
		if c := au.Audio.Codec; c == PCMA || c == PCMU {
			payload = flacFrame(c, au.Audio.Channels, au.Payload, au.DTS)
		}
		samples[i] = &fmp4.Sample{Duration: uint32(max(d, 1)), Payload: payload}
	}
	return &fmp4.PartTrack{ID: AudioTrackID, BaseTime: uint64(aus[0].DTS), Samples: samples}
}

// videoTrack is the pictures' part of a fragment.
func videoTrack(aus []*AccessUnit, endDTS int64) (*fmp4.PartTrack, error) {
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
	return &fmp4.PartTrack{ID: TrackID, BaseTime: uint64(aus[0].DTS), Samples: samples}, nil
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
// An audio frame makes a fragment of the audio track.
func (au *AccessUnit) Fragment() ([]byte, error) {
	au.frag.once.Do(func() {
		end := au.DTS + au.Duration
		seq := uint32(au.DTS/defaultDuration) + 1
		if au.Audio != nil {
			seq = uint32(au.DTS*25/int64(au.Audio.ClockRate())) + 1
		}
		au.frag.data, au.frag.err = Fragment(seq, []*AccessUnit{au}, end)
	})
	return au.frag.data, au.frag.err
}
