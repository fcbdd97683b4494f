package camsim

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/g711"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/pion/rtp"

	"gridwatch/camera/internal/rtsptest"
	"gridwatch/camera/stream"
	"gridwatch/internal/testtool"
)

// audioCase is a stream with audio and what a client must find in it.
type audioCase struct {
	stream       string
	video        stream.Kind
	payloadType  uint8
	rtpmap       string            // as the SDP spells it
	fmtp         map[string]string // as the client's parsed format gives it back
	rate         int               // RTP clock rate = sample rate
	frameSamples int               // samples an audio frame
	ffprobe      string            // ffprobe's codec_name (LATM is unwrapped to plain AAC)
}

func audioCases() []audioCase {
	aacFMTP := map[string]string{
		"streamtype": "5", "mode": "AAC-hbr", "profile-level-id": "1",
		"sizelength": "13", "indexlength": "3", "indexdeltalength": "3",
		"config": "1408", // AAC-LC (2), 16 kHz (index 8), mono
	}
	return []audioCase{
		{StreamMainAAC, stream.H264, 97, "mpeg4-generic/16000/1", aacFMTP, 16000, 1024, "aac"},
		{StreamMainLATM, stream.H264, 97, "MP4A-LATM/16000/1", map[string]string{
			"profile-level-id": "30", "cpresent": "0", "object": "2",
			// StreamMuxConfig: version 0, same time framing, one subframe,
			// program and layer, the AAC-LC 16 kHz mono config, frame
			// length type 0, buffer fullness 0xff, no other data, no CRC.
			"config": "400028103fc0",
		}, 16000, 1024, "aac"},
		{StreamMainPCMA, stream.H264, 8, "PCMA/8000", nil, 8000, 160, "pcm_alaw"},
		{StreamMainPCMU, stream.H264, 0, "PCMU/8000", nil, 8000, 160, "pcm_mulaw"},
		{StreamMainOpus, stream.H264, 97, "opus/48000/2", map[string]string{"sprop-stereo": "0"}, 48000, 960, "opus"},
		{StreamH265AAC, stream.H265, 97, "mpeg4-generic/16000/1", aacFMTP, 16000, 1024, "aac"},
		{StreamSubAAC, stream.H264, 97, "mpeg4-generic/16000/1", aacFMTP, 16000, 1024, "aac"},
		{StreamSubPCMA, stream.H264, 8, "PCMA/8000", nil, 8000, 160, "pcm_alaw"},
	}
}

// playAll plays every stream with audio of camera 1 at once, each from
// its first frame (each stream has a pacer of its own), so that the checks
// that follow, one stream after the other, wait for them all only once.
func playAll(t *testing.T, cfg Config) (*Sim, map[string]*avPlayer) {
	t.Helper()
	cfg.Audio = true
	s := startSim(t, cfg)
	players := make(map[string]*avPlayer)
	for _, tc := range audioCases() {
		players[tc.stream] = playAV(t, s.URL(1, tc.stream))
	}
	return s, players
}

// TestAudioStreams plays each stream with audio from its first frame and
// checks the SDP, that audio RTP time advances by exactly the samples of
// each frame from StartTimestamp on, that audio keeps step with the video
// (when video frame i arrives, the audio received ends less than a frame
// after i*40ms), and, decoding the audio, that it beeps in the first
// 100 ms after each video keyframe and is silent for most of the rest.
// Then, on the same sessions, it checks what a client that aligns the media
// by RTCP sees (see checkSenderReports).
func TestAudioStreams(t *testing.T) {
	t.Parallel()
	testtool.Require(t, "ffmpeg") // decodes the AAC and the Opus
	// Opus's 48 kHz RTP time wraps after 2.8 s of it, within the test.
	const start = uint32(1<<32 - 135000)
	s, players := playAll(t, Config{StartTimestamp: start})
	for _, tc := range audioCases() {
		t.Run(tc.stream, func(t *testing.T) { checkAudioStream(t, s, players[tc.stream], tc, start) })
	}
	for _, tc := range audioCases() {
		t.Run("rtcp/"+tc.stream, func(t *testing.T) { checkSenderReports(t, players[tc.stream], tc, start) })
	}
}

// checkAudioStream reads 4 s of p, a session of tc that began with the
// stream's first frame, and checks it (see TestAudioStreams).
func checkAudioStream(t *testing.T, s *Sim, p *avPlayer, tc audioCase, start uint32) {
	checkSDP(t, p, tc)

	unframe := audioUnframer(t, p.audioFormat())
	videoDec := newVideoDecoder(t, p.videoFormat())
	var (
		frames    [][]byte
		audioEnd  uint32 // samples received, from start
		keyframes []uint32
		lastVideo uint32 // timestamp of the last video packet, from start
		first     = true
	)
	for audioEnd < 4*uint32(tc.rate) {
		pk := p.next(t)
		ts := pk.pkt.Timestamp - start
		if !pk.audio {
			if first && ts != 0 {
				t.Fatalf("first video timestamp = %d, want StartTimestamp %d", pk.pkt.Timestamp, start)
			}
			if first || ts != lastVideo {
				// The first packet of video frame i: the audio sent
				// before it is every frame that starts before i*40ms.
				i := ts / ticksPerFrame
				if d := int64(audioEnd) - int64(i)*int64(tc.rate)/frameRate; d < 0 || d >= int64(tc.frameSamples) {
					t.Fatalf("video frame %d: audio received ends %d samples after it, want 0..%d", i, d, tc.frameSamples-1)
				}
			}
			first, lastVideo = false, ts
			if au := videoDec(pk.pkt); au != nil && tc.video.IsKey(au) {
				keyframes = append(keyframes, ts)
			}
			continue
		}
		if ts != audioEnd {
			t.Fatalf("audio timestamp %d samples after StartTimestamp, want %d (the samples received before it)", ts, audioEnd)
		}
		got, err := unframe(pk.pkt)
		if err != nil {
			t.Fatalf("audio packet at %d: %v", ts, err)
		}
		for _, fr := range got {
			n := frameSamplesOf(p.audioFormat(), fr)
			if n != tc.frameSamples {
				t.Fatalf("audio frame at %d: %d samples, want %d", ts, n, tc.frameSamples)
			}
			audioEnd += uint32(n)
			frames = append(frames, fr)
		}
	}
	if n := s.AudioFrames(1, tc.stream); n < int64(len(frames)) {
		t.Errorf("AudioFrames = %d, want >= %d received", n, len(frames))
	}
	if n := s.Frames(1, tc.stream); n < 100 {
		t.Errorf("Frames = %d, want >= 100 (4 s)", n)
	}

	pcm := decodePCM(t, p.audioFormat(), frames)
	if len(pcm) != int(audioEnd) {
		t.Fatalf("decoded %d samples, want %d", len(pcm), audioEnd)
	}
	checked := 0
	for _, kf := range keyframes {
		if kf%clockRate != 0 {
			t.Errorf("keyframe %d ticks after the start, not on a second", kf)
			continue
		}
		// The keyframe's time in audio samples.
		m := int(kf / clockRate * uint32(tc.rate))
		if checkBeep(t, pcm, m, tc.rate, fmt.Sprintf("keyframe at %d s", kf/clockRate)) {
			checked++
		}
	}
	if checked < 3 {
		t.Errorf("checked the beep at %d keyframes (of %d), want >= 3", checked, len(keyframes))
	}
}

// checkBeep checks that the second of pcm (at rate) that starts at sample
// m beeps for its first 100 ms and is silent for the rest, looking 5 ms
// inside each part: a beep 5 ms off puts enough of it into the silence to
// fail. It reports false when pcm does not hold that second.
func checkBeep(t *testing.T, pcm []int16, m, rate int, what string) bool {
	t.Helper()
	at := func(ms int) int { return m + rate*ms/1000 }
	if at(995) > len(pcm) {
		return false
	}
	beep, quiet := rms(pcm[at(5):at(95)]), rms(pcm[at(105):at(995)])
	if beep < 8000 || quiet > 300 {
		t.Errorf("%s: RMS %.0f from 5 to 95 ms, %.0f from 105 to 995 ms, want a beep (>8000) then silence (<300)", what, beep, quiet)
	}
	return true
}

func checkSDP(t *testing.T, p *avPlayer, tc audioCase) {
	t.Helper()
	sdp := string(p.sdp)
	mv, ma := strings.Index(sdp, "m=video "), strings.Index(sdp, "m=audio ")
	if mv < 0 || ma < mv {
		t.Errorf("SDP has video at %d, audio at %d, want video then audio:\n%s", mv, ma, sdp)
	}
	for _, want := range []string{
		fmt.Sprintf("m=audio 0 RTP/AVP %d\r\n", tc.payloadType),
		fmt.Sprintf("a=rtpmap:%d %s\r\n", tc.payloadType, tc.rtpmap),
	} {
		if !strings.Contains(sdp, want) {
			t.Errorf("SDP lacks %q:\n%s", want, sdp)
		}
	}
	f := p.audioFormat()
	if f.PayloadType() != tc.payloadType || f.ClockRate() != tc.rate || f.RTPMap() != tc.rtpmap {
		t.Errorf("audio format = PT %d, clock %d, %q, want %d, %d, %q", f.PayloadType(), f.ClockRate(), f.RTPMap(), tc.payloadType, tc.rate, tc.rtpmap)
	}
	if got := f.FMTP(); !mapsEqual(got, tc.fmtp) {
		t.Errorf("audio fmtp = %v, want %v", got, tc.fmtp)
	}
	switch f := f.(type) {
	case *format.MPEG4Audio:
		if c := f.Config; c.Type != mpeg4audio.ObjectTypeAACLC || c.SampleRate != 16000 || c.ChannelCount != 1 {
			t.Errorf("AAC config = %+v, want AAC-LC 16 kHz mono", c)
		}
	case *format.MPEG4AudioLATM:
		if f.CPresent {
			t.Error("LATM cpresent = 1, want 0 (config in the SDP)")
		}
	case *format.G711:
		if f.SampleRate != 8000 || f.ChannelCount != 1 || f.MULaw != (tc.payloadType == 0) {
			t.Errorf("G.711 = %+v, want 8 kHz mono, µ-law %v", f, tc.payloadType == 0)
		}
	case *format.Opus:
		if f.ChannelCount != 1 {
			t.Errorf("Opus channels = %d, want 1", f.ChannelCount)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// checkSenderReports checks what a client that aligns the media by RTCP
// sees on p, a session of tc: once sender reports have come (gortsplib
// sends them every 10 s), the NTP time of every audio and video packet is
// the same epoch plus the packet's RTP time from start, within a
// millisecond, so the beeps play with the keyframes.
func checkSenderReports(t *testing.T, p *avPlayer, tc audioCase, start uint32) {
	// The first report comes 10 s after Run started; the wait is
	// for it, bounded generously for a busy machine.
	deadline := time.Now().Add(3 * waitLong)
	var haveAudio, haveVideo bool
	for !haveAudio || !haveVideo {
		if time.Now().After(deadline) {
			t.Fatalf("no sender report for audio (%v) or video (%v) by the deadline", haveAudio, haveVideo)
		}
		pk := p.next(t)
		if !pk.ntp.IsZero() {
			haveAudio = haveAudio || pk.audio
			haveVideo = haveVideo || !pk.audio
		}
	}
	var lo, hi time.Time
	var nAudio, nVideo int
	for nAudio < 50 || nVideo < 50 {
		pk := p.next(t)
		if pk.ntp.IsZero() {
			continue
		}
		rate := clockRate
		if pk.audio {
			rate = tc.rate
			nAudio++
		} else {
			nVideo++
		}
		ticks := int64(pk.pkt.Timestamp - start)
		epoch := pk.ntp.Add(-time.Duration(ticks) * time.Second / time.Duration(rate))
		if lo.IsZero() || epoch.Before(lo) {
			lo = epoch
		}
		if hi.IsZero() || epoch.After(hi) {
			hi = epoch
		}
	}
	if d := hi.Sub(lo); d > time.Millisecond {
		t.Errorf("NTP time less RTP time spreads over %v, want <= 1ms: the media do not share a clock", d)
	}
}

func TestFFprobeAudio(t *testing.T) {
	t.Parallel()
	testtool.Require(t, "ffprobe")
	for _, tc := range audioCases() {
		t.Run(tc.stream, func(t *testing.T) {
			t.Parallel()
			s := startSim(t, Config{Audio: true})
			got := testtool.FFprobe(t, "-rtsp_transport", "tcp",
				"-show_entries", "stream=codec_type,codec_name,sample_rate,channels", s.URL(1, tc.stream))
			var probe struct {
				Streams []struct {
					CodecType  string `json:"codec_type"`
					CodecName  string `json:"codec_name"`
					SampleRate string `json:"sample_rate"`
					Channels   int    `json:"channels"`
				} `json:"streams"`
			}
			if err := json.Unmarshal(got.Out, &probe); err != nil {
				t.Fatal(err)
			}
			if len(probe.Streams) != 2 {
				t.Fatalf("ffprobe streams = %d, want 2: %s", len(probe.Streams), got.Out)
			}
			v, a := probe.Streams[0], probe.Streams[1]
			wantVideo := map[stream.Kind]string{stream.H264: "h264", stream.H265: "hevc"}[tc.video]
			if v.CodecType != "video" || v.CodecName != wantVideo {
				t.Errorf("ffprobe stream 0 = %s %s, want video %s", v.CodecType, v.CodecName, wantVideo)
			}
			// Opus is announced as opus/48000/2 whatever it holds (RFC
			// 7587), and ffmpeg decodes it to stereo; sprop-stereo=0 says
			// the camera sends mono.
			wantChannels := 1
			if tc.ffprobe == "opus" {
				wantChannels = 2
			}
			if a.CodecType != "audio" || a.CodecName != tc.ffprobe || a.SampleRate != strconv.Itoa(tc.rate) || a.Channels != wantChannels {
				t.Errorf("ffprobe stream 1 = %s %s %s Hz %d channels, want audio %s %d Hz, %d channels",
					a.CodecType, a.CodecName, a.SampleRate, a.Channels, tc.ffprobe, tc.rate, wantChannels)
			}
		})
	}
}

// TestAudioOff checks that without Config.Audio the streams with audio do
// not exist, and that with it the streams without audio stay video only.
func TestAudioOff(t *testing.T) {
	t.Parallel()
	off := startSim(t, Config{})
	for _, tc := range audioCases() {
		if got := rtsptest.StatusOf(rtsptest.Describe(t, off.URL(1, tc.stream))); got != base.StatusNotFound {
			t.Errorf("DESCRIBE %s without Audio: status %d, want 404", tc.stream, got)
		}
		if n := off.AudioFrames(1, tc.stream); n != 0 {
			t.Errorf("AudioFrames(%s) = %d without Audio", tc.stream, n)
		}
	}
	on := startSim(t, Config{Audio: true})
	for _, st := range []string{StreamMain, StreamSub, StreamH265} {
		u, err := base.ParseURL(on.URL(1, st))
		if err != nil {
			t.Fatal(err)
		}
		tcp := gortsplib.TransportTCP
		c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tcp, ReadTimeout: waitLong}
		if err := c.Start2(); err != nil {
			t.Fatal(err)
		}
		desc, _, err := c.Describe(u)
		c.Close()
		if err != nil {
			t.Fatalf("DESCRIBE %s: %v", st, err)
		}
		if len(desc.Medias) != 1 || desc.Medias[0].Type != description.MediaTypeVideo {
			t.Errorf("%s with Audio: %d media, want video only", st, len(desc.Medias))
		}
	}
	if n := on.AudioFrames(1, StreamMain); n != 0 {
		t.Errorf("AudioFrames(main) = %d, want 0", n)
	}
}

// TestAudioFaults checks that the faults act on audio as on video.
func TestAudioFaults(t *testing.T) {
	t.Parallel()
	t.Run("stall", func(t *testing.T) {
		t.Parallel()
		s := startSim(t, Config{Audio: true, Fault: FaultStall})
		p := playAV(t, s.URL(1, StreamMainPCMU))
		select {
		case pk := <-p.pkts:
			t.Fatalf("packet (audio %v) during a stall", pk.audio)
		case <-time.After(20 * frameDuration): // a window in which a pacer would have sent
		}
		if n := s.AudioFrames(1, StreamMainPCMU); n != 0 {
			t.Errorf("AudioFrames = %d during a stall", n)
		}
		s.SetFault(1, FaultNone)
		for !p.next(t).audio {
		}
	})
	t.Run("disconnect", func(t *testing.T) {
		t.Parallel()
		s := startSim(t, Config{Audio: true})
		p := playAV(t, s.URL(1, StreamMainOpus))
		for !p.next(t).audio {
		}
		s.SetFault(1, FaultDisconnect)
		select {
		case <-p.done:
		case <-time.After(waitLong):
			t.Fatal("session still open after FaultDisconnect")
		}
	})
	t.Run("loss", func(t *testing.T) {
		t.Parallel()
		s := startSim(t, Config{Audio: true, Fault: FaultLoss})
		p := playAV(t, s.URL(1, StreamMainPCMU))
		var received, lost int
		var prev uint16
		for received+lost < 150 {
			pk := p.next(t)
			if !pk.audio {
				continue
			}
			if received > 0 {
				lost += int(pk.pkt.SequenceNumber - prev - 1)
			}
			prev = pk.pkt.SequenceNumber
			received++
		}
		if ratio := float64(lost) / float64(received+lost); lost == 0 || ratio > 0.08 {
			t.Errorf("lost %d of %d audio packets (%.1f%%), want some, about 3%%", lost, received+lost, 100*ratio)
		}
	})
}

func TestAudioClips(t *testing.T) {
	clips, err := loadAudioClips()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		clip           *audioClip
		rate, frames   int
		frameSamples   int
		loopSeconds    int
		maxFrameLength int
	}{
		{clips.aac, 16000, 125, 1024, 8, 1000},
		{clips.latm, 16000, 125, 1024, 8, 1000},
		{clips.opus, 48000, 200, 960, 4, 400},
		{clips.pcma, 8000, 200, 160, 4, 160},
		{clips.pcmu, 8000, 200, 160, 4, 160},
	}
	for _, tt := range tests {
		c := tt.clip
		if c.rate != tt.rate || len(c.frames) != tt.frames || c.frameSamples != tt.frameSamples {
			t.Errorf("%s: %d Hz, %d frames of %d, want %d, %d of %d", c.name, c.rate, len(c.frames), c.frameSamples, tt.rate, tt.frames, tt.frameSamples)
		}
		if got := len(c.frames) * c.frameSamples / c.rate; got != tt.loopSeconds {
			t.Errorf("%s: loops every %d s, want %d", c.name, got, tt.loopSeconds)
		}
		for i, f := range c.frames {
			if len(f) == 0 || len(f) > tt.maxFrameLength {
				t.Errorf("%s: frame %d is %d bytes", c.name, i, len(f))
			}
		}
	}
	// The LATM frames carry the AAC ones.
	for i, el := range clips.latm.frames {
		e := mpeg4audio.AudioMuxElement{StreamMuxConfig: clips.latmMux}
		if err := e.Unmarshal(el); err != nil || !bytes.Equal(e.Payloads[0][0][0], clips.aac.frames[i]) {
			t.Fatalf("LATM frame %d does not hold AAC frame %d (%v)", i, i, err)
		}
	}
	// G.711: the beep at the start of each second, then digital silence.
	var pcm g711.Mulaw
	pcm.Unmarshal(bytes.Join(clips.pcmu.frames, nil))
	samples := bigEndianPCM(pcm)
	for sec := range 4 {
		m := sec * 8000
		if b, q := rms(samples[m:m+800]), rms(samples[m+800:m+8000]); b < 10000 || q != 0 {
			t.Errorf("G.711 second %d: RMS %.0f then %.0f, want a beep then silence", sec, b, q)
		}
	}
}

// TestAudioClipLoops decodes each clip played twice over, as a reader that
// stays longer than a loop hears it: a beep at the start of every second,
// at the seam between the loops too, and silence in between.
func TestAudioClipLoops(t *testing.T) {
	t.Parallel()
	testtool.Require(t, "ffmpeg") // decodes the AAC and the Opus
	clips, err := loadAudioClips()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		clip  *audioClip
		forma format.Format // what decodePCM decodes it as
	}{
		{clips.aac, &format.MPEG4Audio{}},
		{clips.opus, &format.Opus{}},
		{clips.pcma, &format.G711{}},
		{clips.pcmu, &format.G711{MULaw: true}},
	}
	for _, tt := range tests {
		t.Run(tt.clip.name, func(t *testing.T) {
			c := tt.clip
			pcm := decodePCM(t, tt.forma, append(slices.Clone(c.frames), c.frames...))
			if want := 2 * len(c.frames) * c.frameSamples; len(pcm) != want {
				t.Fatalf("decoded %d samples, want %d", len(pcm), want)
			}
			seconds := 0
			for m := 0; checkBeep(t, pcm, m, c.rate, fmt.Sprintf("second %d", m/c.rate)); m += c.rate {
				seconds++
			}
			if want := 2 * len(c.frames) * c.frameSamples / c.rate; seconds != want {
				t.Errorf("checked %d seconds, want %d", seconds, want)
			}
		})
	}
}

// TestAudioAdvance checks the pacing arithmetic of audio frames against
// video frames without a clock: frames are sent in the tick of the video
// frame they start in, and their NTP offsets are exact.
func TestAudioAdvance(t *testing.T) {
	clips, err := loadAudioClips()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*audioClip{clips.aac, clips.opus, clips.pcma} {
		a := &audioTrack{clip: c, start: 1<<32 - 10}
		for i := int64(0); i < 3*frameRate*100; i++ {
			k := a.firstAt(i)
			// Frame k starts at or after video frame i, frame k-1 before.
			if a.offset(k) < time.Duration(i)*frameDuration || (k > 0 && a.offset(k-1) >= time.Duration(i)*frameDuration) {
				t.Fatalf("%s: firstAt(%d) = %d, which starts at %v", c.name, i, k, a.offset(k))
			}
		}
		// A loop of the clip takes whole seconds of RTP and NTP time.
		n := int64(len(c.frames))
		if got, want := a.timestamp(n)-a.timestamp(0), uint32(int(n)*c.frameSamples); got != want {
			t.Errorf("%s: a loop spans %d RTP ticks, want %d", c.name, got, want)
		}
		if d := a.offset(n); d%time.Second != 0 {
			t.Errorf("%s: a loop lasts %v, not whole seconds", c.name, d)
		}
		if got := a.offset(1000 * n); got != 1000*a.offset(n) {
			t.Errorf("%s: 1000 loops last %v, want %v", c.name, got, 1000*a.offset(n))
		}
	}
}

// avPacket is an RTP packet an avPlayer received, of which medium, and its
// NTP time by the sender reports (zero until one came).
type avPacket struct {
	audio bool
	pkt   *rtp.Packet
	ntp   time.Time
}

// avPlayer is a gortsplib client playing both media of a stream with audio
// over TCP. Packets of both media come through one channel in the order
// they arrived, which over one interleaved connection is the order the
// server sent them.
type avPlayer struct {
	c            *gortsplib.Client
	sdp          []byte
	video, audio *description.Media
	pkts         chan avPacket
	done, stop   chan struct{}
	err          error
	once         sync.Once
}

// playAV DESCRIBEs rawURL, SETUPs its two media and PLAYs; it fails the
// test on error and closes the player at cleanup.
func playAV(t testing.TB, rawURL string) *avPlayer {
	t.Helper()
	u, err := base.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	tcp := gortsplib.TransportTCP
	p := &avPlayer{
		c: &gortsplib.Client{
			Scheme: u.Scheme, Host: u.Host, Transport: &tcp, ReadTimeout: waitLong,
			OnPacketsLost: func(uint64) {}, // FaultLoss loses them on purpose; the tests count gaps
		},
		pkts: make(chan avPacket, 16384),
		done: make(chan struct{}),
		stop: make(chan struct{}),
	}
	if err := p.c.Start2(); err != nil {
		t.Fatal(err)
	}
	desc, res, err := p.c.Describe(u)
	if err != nil {
		p.c.Close()
		t.Fatalf("DESCRIBE %s: %v", rawURL, err)
	}
	p.sdp = res.Body
	if len(desc.Medias) != 2 || desc.Medias[0].Type != description.MediaTypeVideo || desc.Medias[1].Type != description.MediaTypeAudio {
		p.c.Close()
		t.Fatalf("SDP has %d media, want video then audio:\n%s", len(desc.Medias), p.sdp)
	}
	p.video, p.audio = desc.Medias[0], desc.Medias[1]
	for _, m := range desc.Medias {
		if _, err := p.c.Setup(desc.BaseURL, m, 0, 0); err != nil {
			p.c.Close()
			t.Fatalf("SETUP: %v", err)
		}
	}
	p.c.OnPacketRTPAny(func(m *description.Media, _ format.Format, pkt *rtp.Packet) {
		ntp, _ := p.c.PacketNTP(m, pkt)
		select {
		case p.pkts <- avPacket{audio: m == p.audio, pkt: pkt.Clone(), ntp: ntp}:
		case <-p.stop:
		}
	})
	if _, err := p.c.Play(nil); err != nil {
		p.c.Close()
		t.Fatalf("PLAY: %v", err)
	}
	go func() {
		p.err = p.c.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.once.Do(func() {
			close(p.stop)
			p.c.Close()
			<-p.done
		})
	})
	return p
}

func (p *avPlayer) audioFormat() format.Format { return p.audio.Formats[0] }
func (p *avPlayer) videoFormat() format.Format { return p.video.Formats[0] }

// next returns the next packet of either medium, failing the test after
// waitLong.
func (p *avPlayer) next(t testing.TB) avPacket {
	t.Helper()
	select {
	case pk := <-p.pkts:
		return pk
	case <-p.done:
		t.Fatalf("session ended while waiting for a packet: %v", p.err)
	case <-time.After(waitLong):
		t.Fatalf("no packet within %v", waitLong)
	}
	return avPacket{}
}

// newVideoDecoder returns a function that takes the video packets and
// gives each whole access unit, or nil while it needs more.
func newVideoDecoder(t testing.TB, f format.Format) func(*rtp.Packet) [][]byte {
	t.Helper()
	switch f := f.(type) {
	case *format.H264:
		d, err := f.CreateDecoder()
		if err != nil {
			t.Fatal(err)
		}
		return func(pkt *rtp.Packet) [][]byte {
			au, err := d.Decode(pkt)
			if err != nil && !errors.Is(err, rtph264.ErrMorePacketsNeeded) {
				t.Errorf("H.264 packet: %v", err)
			}
			return au
		}
	case *format.H265:
		d, err := f.CreateDecoder()
		if err != nil {
			t.Fatal(err)
		}
		return func(pkt *rtp.Packet) [][]byte {
			au, err := d.Decode(pkt)
			if err != nil && !errors.Is(err, rtph265.ErrMorePacketsNeeded) {
				t.Errorf("H.265 packet: %v", err)
			}
			return au
		}
	}
	t.Fatalf("video format %T", f)
	return nil
}

// audioUnframer returns a function that takes the audio packets, decoded
// with the format's own decoder, and gives the coded frames each holds:
// AAC access units (from MPEG4-GENERIC or out of LATM's AudioMuxElement),
// G.711 samples, Opus packets.
func audioUnframer(t testing.TB, f format.Format) func(*rtp.Packet) ([][]byte, error) {
	t.Helper()
	switch f := f.(type) {
	case *format.MPEG4Audio:
		d, err := f.CreateDecoder()
		if err != nil {
			t.Fatal(err)
		}
		return d.Decode
	case *format.MPEG4AudioLATM:
		d, err := f.CreateDecoder()
		if err != nil {
			t.Fatal(err)
		}
		return func(pkt *rtp.Packet) ([][]byte, error) {
			el, err := d.Decode(pkt)
			if err != nil {
				return nil, err
			}
			e := mpeg4audio.AudioMuxElement{StreamMuxConfig: f.StreamMuxConfig}
			if err := e.Unmarshal(el); err != nil {
				return nil, err
			}
			return [][]byte{e.Payloads[0][0][0]}, nil
		}
	case *format.G711:
		d, err := f.CreateDecoder()
		if err != nil {
			t.Fatal(err)
		}
		return func(pkt *rtp.Packet) ([][]byte, error) {
			s, err := d.Decode(pkt)
			return [][]byte{s}, err
		}
	case *format.Opus:
		d, err := f.CreateDecoder()
		if err != nil {
			t.Fatal(err)
		}
		return func(pkt *rtp.Packet) ([][]byte, error) {
			fr, err := d.Decode(pkt)
			return [][]byte{fr}, err
		}
	}
	t.Fatalf("audio format %T", f)
	return nil
}

// frameSamplesOf returns the samples in a coded frame of f.
func frameSamplesOf(f format.Format, frame []byte) int {
	switch f.(type) {
	case *format.MPEG4Audio, *format.MPEG4AudioLATM:
		return mpeg4audio.SamplesPerAccessUnit
	case *format.G711:
		return len(frame) // one byte a sample, mono
	case *format.Opus:
		return int(opus.PacketDuration2(frame))
	}
	return 0
}

// decodePCM decodes coded frames of f into 16-bit mono samples at the
// format's rate: G.711 in Go, AAC and Opus with ffmpeg. Every sample the
// decoder gives is kept, as an RTP receiver plays them (no priming or
// pre-skip is dropped), so sample m is m samples after the first frame's
// RTP timestamp.
func decodePCM(t testing.TB, f format.Format, frames [][]byte) []int16 {
	t.Helper()
	switch f := f.(type) {
	case *format.G711:
		coded := bytes.Join(frames, nil)
		if f.MULaw {
			var pcm g711.Mulaw
			pcm.Unmarshal(coded)
			return bigEndianPCM(pcm)
		}
		var pcm g711.Alaw
		pcm.Unmarshal(coded)
		return bigEndianPCM(pcm)
	case *format.MPEG4Audio, *format.MPEG4AudioLATM:
		var pkts mpeg4audio.ADTSPackets
		for _, au := range frames {
			pkts = append(pkts, &mpeg4audio.ADTSPacket{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 16000, ChannelCount: 1, AU: au})
		}
		adts, err := pkts.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return ffmpegDecode(t, "aac", adts, 16000)
	case *format.Opus:
		return ffmpegDecode(t, "ogg", oggOpus(frames), 48000)
	}
	t.Fatalf("audio format %T", f)
	return nil
}

// ffmpegDecode decodes in (a container ffmpeg reads as inFormat) to 16-bit
// mono PCM at rate.
func ffmpegDecode(t testing.TB, inFormat string, in []byte, rate int) []int16 {
	t.Helper()
	ffmpeg := testtool.Require(t, "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ffmpeg, "-v", "error", "-f", inFormat, "-i", "pipe:0",
		"-f", "s16le", "-ac", "1", "-ar", strconv.Itoa(rate), "pipe:1")
	cmd.Stdin = bytes.NewReader(in)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, stderr.String())
	}
	pcm := make([]int16, len(out)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(out[2*i:]))
	}
	return pcm
}

// oggOpus wraps Opus packets (mono, 48 kHz) in an Ogg Opus stream with a
// pre-skip of 0, so that a decoder drops none of their samples.
func oggOpus(frames [][]byte) []byte {
	head := []byte("OpusHead\x01\x01\x00\x00\x80\xbb\x00\x00\x00\x00\x00") // version 1, mono, pre-skip 0, 48000 Hz, gain 0, family 0
	tags := []byte("OpusTags\x00\x00\x00\x00\x00\x00\x00\x00")             // empty vendor, no comments
	packets := append([][]byte{head, tags}, frames...)
	granules := []int64{0, 0}
	var g int64
	for _, f := range frames {
		g += int64(opus.PacketDuration2(f))
		granules = append(granules, g)
	}
	return oggStream(packets, granules)
}

// oggStream writes packets as an Ogg stream (RFC 3533): one page a packet,
// or as many as a packet over 255 segments needs, each page ending a
// packet carrying that packet's granule position. For tests: it is the
// inverse of oggPackets.
func oggStream(packets [][]byte, granules []int64) []byte {
	var out []byte
	seq := uint32(0)
	for i, pkt := range packets {
		var lacing []byte
		for n := len(pkt); ; n -= 255 {
			if n < 255 {
				lacing = append(lacing, byte(n))
				break
			}
			lacing = append(lacing, 255)
		}
		for first := true; first || len(lacing) > 0; first = false {
			segs := lacing[:min(255, len(lacing))]
			lacing = lacing[len(segs):]
			var flags byte
			if !first {
				flags |= 1 // continued
			}
			if i == 0 && first {
				flags |= 2 // beginning of stream
			}
			if i == len(packets)-1 && len(lacing) == 0 {
				flags |= 4 // end of stream
			}
			granule := int64(-1) // no packet ends on this page
			if len(lacing) == 0 {
				granule = granules[i]
			}
			size := 0
			for _, l := range segs {
				size += int(l)
			}
			page := make([]byte, oggPageHeader, oggPageHeader+len(segs)+size)
			copy(page, "OggS")
			page[5] = flags
			binary.LittleEndian.PutUint64(page[6:], uint64(granule))
			binary.LittleEndian.PutUint32(page[14:], 0x67726964) // serial
			binary.LittleEndian.PutUint32(page[18:], seq)
			page[26] = byte(len(segs))
			page = append(page, segs...)
			page = append(page, pkt[:size]...)
			pkt = pkt[size:]
			binary.LittleEndian.PutUint32(page[22:], oggCRC(page))
			out = append(out, page...)
			seq++
		}
	}
	return out
}

func bigEndianPCM(b []byte) []int16 {
	s := make([]int16, len(b)/2)
	for i := range s {
		s[i] = int16(binary.BigEndian.Uint16(b[2*i:]))
	}
	return s
}

func rms(s []int16) float64 {
	var sum float64
	for _, v := range s {
		sum += float64(v) * float64(v)
	}
	return math.Sqrt(sum / float64(len(s)))
}
