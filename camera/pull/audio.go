package pull

import (
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpfragmented"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/pion/rtp"

	"gridwatch/camera/stream"
)

// AudioSession is a Session that also plays the camera's audio. A Source
// whose sessions do not implement it (or announce no audio) gives a stream
// without sound.
type AudioSession interface {
	// AudioFormat is the audio as announced, nil when the session plays
	// none.
	AudioFormat() format.Format
	// AudioPackets are the audio's RTP packets in arrival order.
	AudioPackets() <-chan *rtp.Packet
}

// findAudio picks the audio a session plays along with its video: the
// first medium in a coding every output can carry somewhere (AAC over
// MPEG4-GENERIC or LATM, G.711, Opus). A camera with other audio (G.726,
// say) is played without sound; the reason is returned for the log.
func findAudio(desc *description.Session) (*description.Media, format.Format, string) {
	var other string
	for _, m := range desc.Medias {
		if m.Type != description.MediaTypeAudio {
			continue
		}
		for _, f := range m.Formats {
			if _, err := newAudioDepacketizer(f); err == nil {
				return m, f, ""
			} else if other == "" {
				other = err.Error()
			}
		}
	}
	return nil, nil, other
}

// audioDepacketizer turns one codec's RTP packets into audio frames.
type audioDepacketizer struct {
	audio  *stream.Audio
	format format.Format
	// decode returns the packet's frames and each frame's length in
	// samples.
	decode func(pkt *rtp.Packet) (frames [][]byte, samples []int64, err error)
}

// newAudioDepacketizer prepares the depacketizer of an announced audio
// format, or says why it cannot be played.
func newAudioDepacketizer(f format.Format) (*audioDepacketizer, error) {
	switch f := f.(type) {
	case *format.MPEG4Audio:
		if f.Config == nil || f.SizeLength == 0 {
			return nil, errors.New("the camera's AAC is announced without its configuration")
		}
		a, err := stream.NewAudio(stream.AAC, 0, 0, f.Config)
		if err != nil {
			return nil, err
		}
		d, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		n := aacFrameSamples(f.Config)
		return &audioDepacketizer{audio: a, decode: func(pkt *rtp.Packet) ([][]byte, []int64, error) {
			aus, err := d.Decode(pkt)
			return aus, repeat(n, len(aus)), err
		}}, nil
	case *format.MPEG4AudioLATM:
		if f.CPresent || f.StreamMuxConfig == nil || len(f.StreamMuxConfig.Programs) == 0 ||
			len(f.StreamMuxConfig.Programs[0].Layers) == 0 || f.StreamMuxConfig.Programs[0].Layers[0].AudioSpecificConfig == nil {
			return nil, errors.New("the camera's AAC over LATM carries its configuration in band, which is not supported")
		}
		conf := f.StreamMuxConfig.Programs[0].Layers[0].AudioSpecificConfig
		a, err := stream.NewAudio(stream.AAC, 0, 0, conf)
		if err != nil {
			return nil, err
		}
		d, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		n := aacFrameSamples(conf)
		smc := f.StreamMuxConfig
		return &audioDepacketizer{audio: a, decode: func(pkt *rtp.Packet) ([][]byte, []int64, error) {
			el, err := d.Decode(pkt)
			if err != nil || el == nil {
				return nil, nil, err
			}
			ame := mpeg4audio.AudioMuxElement{MuxConfigPresent: false, StreamMuxConfig: smc}
			if err := ame.Unmarshal(el); err != nil {
				return nil, nil, err
			}
			var aus [][]byte
			for _, sub := range ame.Payloads {
				if len(sub) > 0 && len(sub[0]) > 0 {
					aus = append(aus, sub[0][0])
				}
			}
			return aus, repeat(n, len(aus)), nil
		}}, nil
	case *format.G711:
		codec := stream.PCMA
		if f.MULaw {
			codec = stream.PCMU
		}
		a, err := stream.NewAudio(codec, f.SampleRate, f.ChannelCount, nil)
		if err != nil {
			return nil, err
		}
		d, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		ch := f.ChannelCount
		return &audioDepacketizer{audio: a, decode: func(pkt *rtp.Packet) ([][]byte, []int64, error) {
			samples, err := d.Decode(pkt)
			// Whole samples of every channel only: a camera may send a
			// stray byte.
			samples = samples[:len(samples)/ch*ch]
			if err != nil || len(samples) == 0 {
				return nil, nil, err
			}
			return [][]byte{samples}, []int64{int64(len(samples) / ch)}, nil
		}}, nil
	case *format.Opus:
		a, err := stream.NewAudio(stream.Opus, 48000, max(f.ChannelCount, 1), nil)
		if err != nil {
			return nil, err
		}
		d, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		return &audioDepacketizer{audio: a, decode: func(pkt *rtp.Packet) ([][]byte, []int64, error) {
			p, err := d.Decode(pkt)
			if err != nil || len(p) == 0 {
				return nil, nil, err
			}
			return [][]byte{p}, []int64{opus.PacketDuration2(p)}, nil
		}}, nil
	}
	return nil, fmt.Errorf("the camera's audio is %s, which is not carried (AAC, G.711 and Opus are)", f.Codec())
}

// aacFrameSamples is the length of an AAC frame: 1024 samples, or 960
// with the frame length flag.
func aacFrameSamples(c *mpeg4audio.AudioSpecificConfig) int64 {
	if c.FrameLengthFlag {
		return 960
	}
	return 1024
}

func repeat(n int64, count int) []int64 {
	out := make([]int64, count)
	for i := range out {
		out[i] = n
	}
	return out
}

// audioTrack places a session's audio frames on the stream's timeline.
//
// RTP gives audio and video unrelated timestamps; the camera's clock
// relation between them would come from RTCP sender reports, which many
// cameras send late or wrong. The audio is placed instead by arrival: its
// first packet after the session's first picture is taken to be heard when
// it arrived, measured from that picture; from there on its own RTP clock
// (the camera's sample clock) advances it, so it neither drifts nor jitters.
// Across sessions its time never goes back.
type audioTrack struct {
	dp   *audioDepacketizer
	rate int64

	started bool
	first   uint32 // RTP timestamp of the session's first packet
	ext     int64  // unwrapped RTP time of last, from first
	last    uint32
	anchor  int64 // timeline ticks (audio clock) of first
	end     int64 // end of the last frame handed out; -1 before any

	lost, resets int64
}

func newAudioTrack(dp *audioDepacketizer) *audioTrack {
	return &audioTrack{dp: dp, rate: int64(dp.audio.ClockRate()), end: -1}
}

// newSession forgets the RTP clock of the previous session.
func (t *audioTrack) newSession() { t.started = false }

// packet returns the frames of one RTP packet. video is the session's
// latest picture (nil before the first: audio is dropped until then).
func (t *audioTrack) packet(pkt *rtp.Packet, video *stream.AccessUnit, now time.Time) []*stream.AccessUnit {
	if video == nil {
		return nil
	}
	frames, samples, err := t.dp.decode(pkt)
	if err != nil {
		if !errors.Is(err, rtpmpeg4audio.ErrMorePacketsNeeded) && !errors.Is(err, rtpfragmented.ErrMorePacketsNeeded) {
			t.lost++
		}
		return nil
	}
	if len(frames) == 0 {
		return nil
	}
	// Where arrival puts it: the picture's time plus what has passed since
	// it arrived, in the audio's clock.
	est := (video.PTS + stream.Ticks(now.Sub(video.Received))) * t.rate / stream.ClockRate
	if !t.started {
		t.started = true
		t.first, t.last, t.ext = pkt.Timestamp, pkt.Timestamp, 0
		t.anchor = max(est, t.end)
	} else {
		t.ext += int64(int32(pkt.Timestamp - t.last))
		t.last = pkt.Timestamp
	}
	pts := t.anchor + t.ext
	if d := pts - est; d > t.rate || d < -t.rate {
		// More than a second from where arrival puts it: the camera's
		// audio clock jumped (its encoder restarted, say). Start again
		// from the pictures.
		t.anchor += max(est, t.end) - pts
		t.resets++
		pts = t.anchor + t.ext
	}
	if pts < t.end {
		// A little overlap (a camera stamping its sound with jitter): this
		// frame starts where the last ended; the anchor stays, so the
		// sound does not drift later frame by frame.
		pts = t.end
	}
	out := make([]*stream.AccessUnit, len(frames))
	for i, f := range frames {
		out[i] = &stream.AccessUnit{Audio: t.dp.audio, Payload: f, DTS: pts, PTS: pts, Duration: samples[i], Received: now}
		pts += samples[i]
	}
	t.end = pts
	return out
}
