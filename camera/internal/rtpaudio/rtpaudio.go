// Package rtpaudio is a camera's audio as RTP: the format a track is
// announced in and the packetiser of its frames, for the RTSP re-serve and
// for the transcoder, which hands the camera's sound on beside its new
// pictures.
package rtpaudio

import (
	"fmt"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"

	"gridwatch/camera/stream"
)

// PayloadType is the dynamic RTP payload type of AAC and Opus; G.711
// keeps its static one (0 µ-law, 8 A-law), which every client knows.
const PayloadType = 97

// Format is how an audio track goes over RTP: AAC as
// MPEG4-GENERIC (RFC 3640, AAC-hbr), whatever it came in (LATM is
// unpacked by the puller), G.711 and Opus as they are.
func Format(a *stream.Audio) (format.Format, error) {
	switch a.Codec {
	case stream.AAC:
		return &format.MPEG4Audio{PayloadTyp: PayloadType, Config: a.Config, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3}, nil
	case stream.PCMA, stream.PCMU:
		pt := uint8(8)
		if a.Codec == stream.PCMU {
			pt = 0
		}
		return &format.G711{PayloadTyp: pt, MULaw: a.Codec == stream.PCMU, SampleRate: a.SampleRate, ChannelCount: a.Channels}, nil
	case stream.Opus:
		return &format.Opus{PayloadTyp: PayloadType, ChannelCount: a.Channels}, nil
	}
	return nil, fmt.Errorf("rtpaudio: no RTP format for %s", a.Codec)
}

// Encoder packetises the frames of track a. A packet's timestamp is
// its offset from the frame's start (G.711 split over several packets).
func Encoder(a *stream.Audio) (func(*stream.AccessUnit) ([]*rtp.Packet, error), error) {
	f, err := Format(a)
	if err != nil {
		return nil, err
	}
	switch f := f.(type) {
	case *format.MPEG4Audio:
		e, err := f.CreateEncoder()
		if err != nil {
			return nil, err
		}
		return func(au *stream.AccessUnit) ([]*rtp.Packet, error) { return e.Encode([][]byte{au.Payload}) }, nil
	case *format.G711:
		e, err := f.CreateEncoder()
		if err != nil {
			return nil, err
		}
		return func(au *stream.AccessUnit) ([]*rtp.Packet, error) { return e.Encode(au.Payload) }, nil
	case *format.Opus:
		e, err := f.CreateEncoder()
		if err != nil {
			return nil, err
		}
		return func(au *stream.AccessUnit) ([]*rtp.Packet, error) {
			p, err := e.Encode(au.Payload)
			if err != nil {
				return nil, err
			}
			return []*rtp.Packet{p}, nil
		}, nil
	}
	return nil, fmt.Errorf("rtpaudio: no encoder for %s", a.Codec)
}
