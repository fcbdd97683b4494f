package whep

import (
	"fmt"
	"strings"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"gridwatch/camera/stream"
)

// The audio codecs a session may send, registered in the MediaEngine and
// given to the audio track. Opus is described as WebRTC describes it
// (48 kHz, two channels, whatever the camera captured: RFC 7587 says so),
// with the parameters browsers offer, so that pion matches it to the
// offer. G.711 has WebRTC's static payload types.
var (
	opusCodec = webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus,
		ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111}
	pcmuCodec = webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU,
		ClockRate: 8000}, PayloadType: 0}
	pcmaCodec = webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMA,
		ClockRate: 8000}, PayloadType: 8}
)

// webrtcAudio is the codec WebRTC carries a camera's audio track in, and
// false when browsers cannot play it over WebRTC: AAC is not a WebRTC
// codec at all, and G.711 is only at 8 kHz mono there (payload types 0
// and 8 fix it).
func webrtcAudio(a *stream.Audio) (webrtc.RTPCodecCapability, bool) {
	switch {
	case a == nil:
	case a.Codec == stream.Opus:
		return opusCodec.RTPCodecCapability, true
	case a.Codec == stream.PCMU && a.SampleRate == 8000 && a.Channels == 1:
		return pcmuCodec.RTPCodecCapability, true
	case a.Codec == stream.PCMA && a.SampleRate == 8000 && a.Channels == 1:
		return pcmaCodec.RTPCodecCapability, true
	}
	return webrtc.RTPCodecCapability{}, false
}

// audioPlan is what a session does with its camera's audio: the codec it
// sends it in, or why it sends none.
type audioPlan struct {
	// codec is the audio track's codec; a zero MimeType: no audio track.
	codec webrtc.RTPCodecCapability
	// sent describes the camera's track when it is sent ("G.711 A-law
	// 8 kHz mono"); note says why it is not, when the camera has audio.
	sent, note string
}

// planAudio decides whether a session sends the camera's audio track a
// (nil: the camera has none) to the viewer whose SDP offer is offer.
func planAudio(a *stream.Audio, offer string) audioPlan {
	if a == nil {
		return audioPlan{}
	}
	codec, ok := webrtcAudio(a)
	switch {
	case !ok && a.Codec == stream.AAC:
		return audioPlan{note: fmt.Sprintf("the camera's audio (%s) is not playable over WebRTC: MSE/HLS carry it", a)}
	case !ok:
		return audioPlan{note: fmt.Sprintf("the camera's audio (%s) is not playable over WebRTC, which takes G.711 at 8 kHz mono only", a)}
	case !offersAudio(offer, codec.MimeType):
		return audioPlan{note: fmt.Sprintf("the camera's audio (%s) is not sent: the offer does not receive %s", a, a.Codec)}
	}
	return audioPlan{codec: codec, sent: a.String()}
}

// offersAudio reports whether an SDP offer receives audio in a codec
// (webrtc.MimeTypeOpus, MimeTypePCMU or MimeTypePCMA): whether one of its
// audio media, neither refused (port 0) nor send-only or inactive, lists
// it. G.711 may be listed by its static payload type alone (RFC 3551).
func offersAudio(offer, mime string) bool {
	name := strings.TrimPrefix(mime, "audio/")
	static := map[string]string{webrtc.MimeTypePCMU: "0", webrtc.MimeTypePCMA: "8"}[mime]
	rate := "8000"
	if mime == webrtc.MimeTypeOpus {
		rate = "48000"
	}
	var audio, receives, listed, refused bool
	done := func() bool { return audio && receives && listed && !refused }
	for _, line := range strings.Split(offer, "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "m="); ok {
			if done() {
				return true
			}
			f := strings.Fields(rest)
			audio = len(f) >= 4 && f[0] == "audio"
			receives, listed = true, false
			// A bundled medium may have port 0 (a=bundle-only says so):
			// only without that is port 0 a refusal.
			refused = audio && f[1] == "0"
			if audio && static != "" {
				for _, pt := range f[3:] {
					listed = listed || pt == static
				}
			}
			continue
		}
		if !audio {
			continue
		}
		switch {
		case line == "a=sendonly" || line == "a=inactive":
			receives = false
		case line == "a=bundle-only":
			refused = false
		case strings.HasPrefix(line, "a=rtpmap:"):
			_, enc, _ := strings.Cut(strings.TrimPrefix(line, "a=rtpmap:"), " ")
			parts := strings.Split(enc, "/")
			if len(parts) >= 2 && strings.EqualFold(parts[0], name) && parts[1] == rate {
				listed = true
			}
		}
	}
	return done()
}

// audioTrack sends the camera's audio frames to one viewer.
type audioTrack struct {
	track *webrtc.TrackLocalStaticSample
	mime  string
	// last and lastOK remember the latest frame's parameters and whether
	// the track carries them: they change only when the camera does.
	last   *stream.Audio
	lastOK bool
}

// carries reports whether the track can send frames of a: the camera may
// have changed its audio coding since the offer was answered, and the
// negotiated track cannot switch codec.
func (t *audioTrack) carries(a *stream.Audio) bool {
	if a != t.last {
		codec, ok := webrtcAudio(a)
		t.last, t.lastOK = a, ok && codec.MimeType == t.mime
	}
	return t.lastOK
}

// maxG711Run bounds the G.711 one RTP packet carries: 60 ms at 8 kHz.
// pion's payloader splits a longer run at the MTU but gives every piece the
// run's timestamp, which a receiver takes for repeats; write writes such a
// run in pieces, each with its own time.
const maxG711Run = 480

// write sends one audio frame; it returns the bytes sent.
func (t *audioTrack) write(au *stream.AccessUnit) (int, error) {
	ticks := au.Duration
	if ticks <= 0 {
		// A frame whose duration the puller did not know lasts what it
		// holds: a G.711 byte is a sample (mono), an Opus packet says.
		if au.Audio.Codec == stream.Opus {
			ticks = opus.PacketDuration2(au.Payload)
		} else {
			ticks = int64(len(au.Payload))
		}
	}
	clock := int64(au.Audio.ClockRate())
	n := len(au.Payload)
	pieces := 1
	if au.Audio.Codec != stream.Opus && n > maxG711Run {
		pieces = (n + maxG711Run - 1) / maxG711Run
	}
	for k := range pieces {
		lo, hi := n*k/pieces, n*(k+1)/pieces
		// Each piece's share of the frame's ticks, taken so that the shares
		// add up to the whole.
		d := ticks*int64(hi)/int64(n) - ticks*int64(lo)/int64(n)
		if err := t.track.WriteSample(media.Sample{Data: au.Payload[lo:hi], Duration: time.Duration(d) * time.Second / time.Duration(clock)}); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// audioBurst is how far behind the newest audio frame of a batch an older
// one may be and still be sent: about what a browser's jitter buffer holds
// anyway. A viewer starts with the cached group of pictures, up to seconds
// of audio with it; sent at once, that audio would play late for as long,
// and the browser, which lines up audio and video by their sender reports,
// would hold the video back to match.
const audioBurst = 200 * time.Millisecond

// staleAudio marks the audio frames of a batch that are more than
// audioBurst older than the batch's newest frame of the same track, in
// skip (reused, appended to skip[:0]). Frames are compared with frames of
// their own track only: a camera's audio and video timestamps may be
// offset, and dropping audio by the video's clock would cut it at random.
func staleAudio(skip []bool, batch []*stream.AccessUnit) []bool {
	skip = skip[:0]
	var newest *stream.AccessUnit
	for _, au := range batch {
		skip = append(skip, false)
		if au.Audio != nil && (newest == nil || au.Audio != newest.Audio || au.DTS > newest.DTS) {
			newest = au
		}
	}
	if newest == nil {
		return skip
	}
	limit := newest.DTS - int64(audioBurst)*int64(newest.Audio.ClockRate())/int64(time.Second)
	for i, au := range batch {
		if au.Audio == newest.Audio && au.DTS+au.Duration < limit {
			skip[i] = true
		}
	}
	return skip
}
