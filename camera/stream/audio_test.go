package stream_test

import (
	"bytes"
	"os/exec"
	"testing"
	"time"

	g711pkg "github.com/bluenviron/mediacommon/v2/pkg/codecs/g711"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	"gridwatch/camera/camsim"
	"gridwatch/camera/stream"
	"gridwatch/internal/testtool"
)

func testAAC(t testing.TB) *stream.Audio {
	t.Helper()
	a, err := stream.NewAudio(stream.AAC, 0, 0, &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 16000, ChannelCount: 1})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// frame is audio frame i of a: 1024 samples each.
func frame(a *stream.Audio, i int) *stream.AccessUnit {
	return &stream.AccessUnit{Audio: a, Payload: []byte{0x21, 0x10, byte(i)}, DTS: int64(i) * 1024, PTS: int64(i) * 1024, Duration: 1024, Received: time.Now()}
}

func TestNewAudio(t *testing.T) {
	a := testAAC(t)
	if a.MIME != "mp4a.40.2" || a.ClockRate() != 16000 || a.String() != "AAC 16 kHz mono" {
		t.Errorf("AAC: %+v %q", a, a.String())
	}
	g, err := stream.NewAudio(stream.PCMA, 8000, 1, nil)
	if err != nil || g.MIME != "flac" || g.String() != "G.711 A-law 8 kHz mono" {
		t.Errorf("G.711: %+v %v", g, err)
	}
	o, err := stream.NewAudio(stream.Opus, 0, 2, nil)
	if err != nil || o.ClockRate() != 48000 || o.MIME != "opus" || o.String() != "Opus 48 kHz stereo" {
		t.Errorf("Opus: %+v %v", o, err)
	}
	for _, bad := range []struct {
		c        stream.AudioCodec
		rate, ch int
	}{{stream.AAC, 16000, 1}, {stream.PCMU, 0, 1}, {stream.PCMU, 8000, 0}, {stream.PCMU, 8000, 9}, {99, 8000, 1}} {
		if _, err := stream.NewAudio(bad.c, bad.rate, bad.ch, nil); err == nil {
			t.Errorf("NewAudio(%v, %d, %d) took it", bad.c, bad.rate, bad.ch)
		}
	}
	if !a.Equal(testAAC(t)) || a.Equal(g) || a.Equal(nil) {
		t.Error("Equal")
	}
}

// A viewer of pictures never sees audio; a viewer of both gets them in
// the order they came, starting at the cached keyframe with the audio
// heard since.
func TestHubAudio(t *testing.T) {
	p := testParams(t)
	a := testAAC(t)
	h := stream.NewHub(stream.HubOptions{})
	h.SetAudio(a)
	if h.Audio() != a {
		t.Fatal("Audio")
	}
	h.SetAudio(testAAC(t))
	if h.Audio() != a {
		t.Error("an equal track replaced the pointer consumers compare")
	}
	h.Publish(frame(a, 0)) // before any picture: nobody starts with it
	h.Publish(pic(p, 0, 25))
	h.Publish(frame(a, 1))
	h.Publish(pic(p, 1, 25))
	h.Publish(frame(a, 2))

	video := h.Subscribe()
	defer video.Close()
	av := h.SubscribeAV()
	defer av.Close()
	if got := next(t, video); len(got) != 2 || got[0].IsAudio() || got[1].IsAudio() {
		t.Fatalf("video viewer: %d units", len(got))
	}
	got := next(t, av)
	want := []string{"v0", "a1", "v1", "a2"}
	if len(got) != len(want) {
		t.Fatalf("AV viewer: %d units, want %d", len(got), len(want))
	}
	for i, au := range got {
		kind := "v"
		if au.IsAudio() {
			kind = "a"
		}
		if kind != want[i][:1] {
			t.Errorf("unit %d is %s, want %s", i, kind, want[i])
		}
	}
	h.Publish(frame(a, 3))
	if got := next(t, av); len(got) != 1 || !got[0].IsAudio() || got[0].Payload[2] != 3 {
		t.Errorf("live audio frame: %+v", got)
	}
	if st := h.Stats(); st.AudioFrames != 4 || st.Frames != 2 || st.GOP != 2 {
		t.Errorf("stats %+v", st)
	}
}

// Recordings, MSE and HLS carry AAC as a second track; G.711 stays out.
func TestFragmentsWithAudio(t *testing.T) {
	p := testParams(t)
	a := testAAC(t)
	init, err := stream.InitSegment(p, a)
	if err != nil {
		t.Fatal(err)
	}
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(init)); err != nil {
		t.Fatal(err)
	}
	if len(in.Tracks) != 2 || in.Tracks[1].ID != stream.AudioTrackID || in.Tracks[1].TimeScale != 16000 {
		t.Fatalf("init tracks %+v", in.Tracks)
	}
	if c, ok := in.Tracks[1].Codec.(*fmp4.CodecMPEG4Audio); !ok || c.Config.SampleRate != 16000 {
		t.Fatalf("audio codec %#v", in.Tracks[1].Codec)
	}
	// G.711 goes in as FLAC, which ParseInit reads back as the LPCM
	// mediacommon knows (see flac.go; ffmpeg's view is in TestG711AsFLAC).
	g, _ := stream.NewAudio(stream.PCMU, 8000, 1, nil)
	ginit, err := stream.InitSegment(p, g)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(ginit, []byte("fLaC")) || !bytes.Contains(ginit, []byte("dfLa")) || bytes.Contains(ginit, []byte("ipcm")) {
		t.Error("the G.711 entry is not FLAC's")
	}
	gin, flac, err := stream.ParseInit(ginit)
	if err != nil || !flac || len(gin.Tracks) != 2 || gin.Tracks[1].TimeScale != 8000 {
		t.Fatalf("G.711 init read back: %v, flac %v, %+v", err, flac, gin)
	}
	if c, ok := gin.Tracks[1].Codec.(*fmp4.CodecLPCM); !ok || c.BitDepth != 16 || c.SampleRate != 8000 {
		t.Errorf("G.711 codec read back %#v", gin.Tracks[1].Codec)
	}
	if _, flac, err := stream.ParseInit(init); err != nil || flac {
		t.Errorf("AAC init read back: flac %v, %v", flac, err)
	}

	aus := []*stream.AccessUnit{pic(p, 25, 25), frame(a, 16), pic(p, 26, 25), frame(a, 17), frame(a, 18)}
	frag, err := stream.Fragment(3, aus, 27*3600)
	if err != nil {
		t.Fatal(err)
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(frag); err != nil {
		t.Fatal(err)
	}
	if len(parts) != 1 || len(parts[0].Tracks) != 2 {
		t.Fatalf("parts %+v", parts)
	}
	v, au := parts[0].Tracks[0], parts[0].Tracks[1]
	if v.ID != stream.TrackID || len(v.Samples) != 2 || v.BaseTime != 25*3600 {
		t.Errorf("video track %+v", v)
	}
	if au.ID != stream.AudioTrackID || len(au.Samples) != 3 || au.BaseTime != 16*1024 {
		t.Errorf("audio track: id %d, %d samples, base %d", au.ID, len(au.Samples), au.BaseTime)
	}
	for i, s := range au.Samples {
		if s.Duration != 1024 || s.Payload[2] != byte(16+i) {
			t.Errorf("audio sample %d: %d ticks, payload %x", i, s.Duration, s.Payload)
		}
	}
	// An audio frame alone makes a fragment of the audio track.
	one, err := frame(a, 5).Fragment()
	if err != nil {
		t.Fatal(err)
	}
	var oneParts fmp4.Parts
	if err := oneParts.Unmarshal(one); err != nil || len(oneParts) != 1 || len(oneParts[0].Tracks) != 1 || oneParts[0].Tracks[0].ID != stream.AudioTrackID {
		t.Errorf("audio frame's fragment: %v %+v", err, oneParts)
	}
}

// FuzzParseInit: whatever the bytes, reading them as an initialisation
// segment (and swapping its sample entry) returns an error or a result,
// never a panic.
func FuzzParseInit(f *testing.F) {
	p := testParams(f)
	for _, c := range []stream.AudioCodec{stream.PCMA, stream.PCMU, stream.AAC} {
		var a *stream.Audio
		if c == stream.AAC {
			a = testAAC(f)
		} else {
			a, _ = stream.NewAudio(c, 8000, 1, nil)
		}
		b, err := stream.InitSegment(p, a)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in, flac, err := stream.ParseInit(b)
		if err == nil && flac && len(in.Tracks) == 0 {
			t.Error("FLAC without tracks")
		}
		if out, err := stream.FLACEntry(append([]byte(nil), b...), 8000, 1); err == nil && len(out) != len(b) && !bytes.Contains(out, []byte("fLaC")) {
			t.Error("an entry changed size but is not FLAC's")
		}
	})
}

// G.711 is carried in MP4 as FLAC: ffmpeg, an independent reader, decodes
// it to exactly the samples G.711 stands for, frame sizes varying as a
// camera's packets do.
func TestG711AsFLAC(t *testing.T) {
	ffmpeg := testtool.Require(t, "ffmpeg")
	p := testParams(t)
	for _, codec := range []stream.AudioCodec{stream.PCMA, stream.PCMU} {
		a, _ := stream.NewAudio(codec, 8000, 1, nil)
		init, err := stream.InitSegment(p, a)
		if err != nil {
			t.Fatal(err)
		}
		file := bytes.NewBuffer(init)
		clip, err := camsim.ClipAccessUnits(camsim.ClipSub)
		if err != nil {
			t.Fatal(err)
		}
		var g711 []byte
		dts := int64(0)
		for i := range 50 {
			au := &stream.AccessUnit{DTS: int64(i) * 3600, PTS: int64(i) * 3600, Duration: 3600, NALUs: clip[i], Key: i%25 == 0, Params: p, Received: time.Now()}
			// 160 samples a frame, now and then 80 or 240.
			n := []int{160, 160, 80, 240}[i%4]
			payload := make([]byte, n)
			for j := range payload {
				payload[j] = byte(i*31 + j*7)
			}
			g711 = append(g711, payload...)
			frag, err := stream.Fragment(uint32(i+1), []*stream.AccessUnit{au,
				{Audio: a, Payload: payload, DTS: dts, PTS: dts, Duration: int64(n), Received: time.Now()}}, au.DTS+3600)
			if err != nil {
				t.Fatal(err)
			}
			file.Write(frag)
			dts += int64(n)
		}
		cmd := exec.Command(ffmpeg, "-v", "error", "-f", "mp4", "-i", "-", "-map", "0:a", "-f", "s16be", "-")
		cmd.Stdin = file
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil || errOut.Len() > 0 {
			t.Fatalf("%s: ffmpeg: %v %s", codec, err, errOut.String())
		}
		var want []byte
		if codec == stream.PCMA {
			want = g711pkg.DecodeAlaw(g711)
		} else {
			want = g711pkg.DecodeMulaw(g711)
		}
		if !bytes.Equal(out.Bytes(), want) {
			t.Errorf("%s: ffmpeg decoded %d bytes, want the %d of the G.711 samples", codec, out.Len(), len(want))
		}
	}
}

// A G.711 stream hours old (its sample numbers past 2^31, where ffmpeg
// stops decoding FLAC, and past 2^36, where FLAC's numbers end) still
// decodes.
func TestG711AsFLACLate(t *testing.T) {
	ffmpeg := testtool.Require(t, "ffmpeg")
	p := testParams(t)
	clip, err := camsim.ClipAccessUnits(camsim.ClipSub)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := stream.NewAudio(stream.PCMA, 8000, 1, nil)
	for _, start := range []int64{1<<31 - 2000, 1 << 32, 1<<36 - 800} {
		init, err := stream.InitSegment(p, a)
		if err != nil {
			t.Fatal(err)
		}
		file := bytes.NewBuffer(init)
		var g711 []byte
		for i := range 25 {
			payload := bytes.Repeat([]byte{byte(0x55 + i)}, 160)
			g711 = append(g711, payload...)
			dts := start + int64(i)*160
			vdts := int64(i) * 3600
			frag, err := stream.Fragment(uint32(i+1), []*stream.AccessUnit{
				{DTS: vdts, PTS: vdts, Duration: 3600, NALUs: clip[i], Key: i == 0, Params: p, Received: time.Now()},
				{Audio: a, Payload: payload, DTS: dts, PTS: dts, Duration: 160, Received: time.Now()}}, vdts+3600)
			if err != nil {
				t.Fatal(err)
			}
			file.Write(frag)
		}
		cmd := exec.Command(ffmpeg, "-v", "error", "-f", "mp4", "-i", "-", "-map", "0:a", "-f", "s16be", "-")
		cmd.Stdin = file
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil || errOut.Len() > 0 || !bytes.Equal(out.Bytes(), g711pkg.DecodeAlaw(g711)) {
			t.Errorf("from sample %d: ffmpeg: %v %s; %d bytes decoded, want %d", start, err, errOut.String(), out.Len(), 2*len(g711))
		}
	}
}

// A viewer that takes sound is held to the same backlog of pictures as one
// that does not (a camera without sound behaves as before), and its audio
// entries are bounded too.
func TestAVViewerBacklog(t *testing.T) {
	p := testParams(t)
	for _, withAudio := range []bool{false, true} {
		h := stream.NewHub(stream.HubOptions{Queue: 10, MaxSkips: 100})
		a := testAAC(t)
		if withAudio {
			h.SetAudio(a)
		}
		video, av := h.Subscribe(), h.SubscribeAV()
		for i := range 45 {
			h.Publish(pic(p, i, 200))
			if withAudio {
				for k := range 5 {
					h.Publish(frame(a, 5*i+k))
				}
			}
		}
		st := h.Stats()
		// 10 pictures fit; the 11th skips to the next keyframe, which does
		// not come: one skip each, whether the viewer takes sound or not.
		if st.Skips != 2 {
			t.Errorf("audio %v: %d skips, want one for each viewer", withAudio, st.Skips)
		}
		video.Close()
		av.Close()
	}
	// A cache overflowing its pictures is emptied, and says so.
	h := stream.NewHub(stream.HubOptions{MaxGOP: 5})
	for i := range 7 {
		h.Publish(pic(p, i, 100))
	}
	if st := h.Stats(); st.GOP != 0 {
		t.Errorf("GOP %d after the cache overflowed, want 0", st.GOP)
	}
}
