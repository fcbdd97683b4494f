package stream

import (
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// AudioCodec is a camera's audio coding.
type AudioCodec uint8

// The audio codings a camera may send. AAC arrives over RTP as
// MPEG4-GENERIC (RFC 3640) or LATM (RFC 6416); both become plain AAC access
// units here.
const (
	AAC  AudioCodec = iota + 1 // MPEG-4 AAC
	PCMA                       // G.711 A-law
	PCMU                       // G.711 µ-law
	Opus                       // Opus (RFC 7587)
)

// String names the coding as users know it.
func (c AudioCodec) String() string {
	switch c {
	case AAC:
		return "AAC"
	case PCMA:
		return "G.711 A-law"
	case PCMU:
		return "G.711 µ-law"
	case Opus:
		return "Opus"
	}
	return fmt.Sprintf("AudioCodec(%d)", uint8(c))
}

// Audio are the parameters of a camera's audio track. Like Params, an Audio
// value is immutable once built; consumers compare pointers to notice a
// change.
//
// An audio frame's times (AccessUnit.DTS, PTS and Duration) are in ticks of
// ClockRate, the track's sample rate, on the same timeline as the video:
// tick 0 of both is the same instant, so PTS/ClockRate and video
// PTS/90000 compare directly.
type Audio struct {
	Codec      AudioCodec
	SampleRate int
	Channels   int
	// Config is the AAC AudioSpecificConfig (nil for the others).
	Config *mpeg4audio.AudioSpecificConfig
	// MIME is the RFC 6381 codec string of the track in MP4, as a browser
	// is asked about it: "mp4a.40.2" (AAC LC), "opus", "flac" (G.711).
	MIME string
}

// NewAudio checks an audio track's parameters.
func NewAudio(codec AudioCodec, sampleRate, channels int, config *mpeg4audio.AudioSpecificConfig) (*Audio, error) {
	a := &Audio{Codec: codec, SampleRate: sampleRate, Channels: channels}
	switch codec {
	case AAC:
		if config == nil {
			return nil, errors.New("stream: AAC without an AudioSpecificConfig")
		}
		cp := *config
		a.Config, a.SampleRate, a.Channels = &cp, config.SampleRate, config.ChannelCount
		a.MIME = fmt.Sprintf("mp4a.40.%d", config.Type)
	case PCMA, PCMU:
		// Carried in MP4 as FLAC (see flac.go).
		a.MIME = "flac"
	case Opus:
		// Opus runs at 48 kHz on the wire whatever it was captured at.
		a.SampleRate = 48000
		a.MIME = "opus"
	default:
		return nil, fmt.Errorf("stream: unknown audio coding %d", codec)
	}
	if a.SampleRate < 8000 || a.SampleRate > 96000 {
		return nil, fmt.Errorf("stream: %s at %d Hz: want 8000..96000", codec, a.SampleRate)
	}
	if a.Channels < 1 || a.Channels > 8 {
		return nil, fmt.Errorf("stream: %s with %d channels: want 1..8", codec, a.Channels)
	}
	return a, nil
}

// ClockRate is the clock of the track's times: its sample rate.
func (a *Audio) ClockRate() int { return a.SampleRate }

// Equal reports whether a and b describe the same track.
func (a *Audio) Equal(b *Audio) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Codec != b.Codec || a.SampleRate != b.SampleRate || a.Channels != b.Channels {
		return false
	}
	if a.Config == nil || b.Config == nil {
		return a.Config == b.Config
	}
	return *a.Config == *b.Config
}

// String says what the track is, as the camera card shows it:
// "AAC 16 kHz mono".
func (a *Audio) String() string {
	ch := "mono"
	switch a.Channels {
	case 1:
	case 2:
		ch = "stereo"
	default:
		ch = fmt.Sprintf("%d channels", a.Channels)
	}
	rate := fmt.Sprintf("%d kHz", a.SampleRate/1000)
	if a.SampleRate%1000 != 0 {
		rate = fmt.Sprintf("%.1f kHz", float64(a.SampleRate)/1000)
	}
	return fmt.Sprintf("%s %s %s", a.Codec, rate, ch)
}

// IsAudio reports whether the access unit is an audio frame.
func (au *AccessUnit) IsAudio() bool { return au.Audio != nil }
