package live

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	"gridwatch/camera/camsim"
	"gridwatch/camera/pull"
	"gridwatch/camera/stream"
	"gridwatch/internal/testtool"
)

// avSample is one sample an MSE viewer got: its track, time in seconds
// on the stream's timeline, and for pictures whether it is a keyframe.
type avSample struct {
	track int
	at    float64
	key   bool
}

// parseAV reads what a viewer of pictures and sound received: its codec
// messages, the last init segment's tracks and every sample.
func parseAV(t *testing.T, msgs []msg) (codec MSEMessage, tracks []*fmp4.InitTrack, samples []avSample) {
	t.Helper()
	scale := map[int]float64{}
	for _, m := range msgs {
		if m.text {
			var mm MSEMessage
			if err := json.Unmarshal(m.data, &mm); err != nil {
				t.Fatalf("text message %q: %v", m.data, err)
			}
			if mm.Type == "codec" {
				codec = mm
			}
			continue
		}
		if in, _, err := stream.ParseInit(m.data); err == nil {
			tracks = in.Tracks
			for _, tr := range in.Tracks {
				scale[tr.ID] = float64(tr.TimeScale)
			}
			continue
		}
		var parts fmp4.Parts
		if err := parts.Unmarshal(m.data); err != nil {
			t.Fatalf("fragment: %v", err)
		}
		for _, p := range parts {
			for _, tr := range p.Tracks {
				dts := tr.BaseTime
				for _, s := range tr.Samples {
					samples = append(samples, avSample{track: tr.ID, at: float64(dts) / scale[tr.ID], key: !s.IsNonSyncSample})
					dts += uint64(s.Duration)
				}
			}
		}
	}
	return codec, tracks, samples
}

// watchAV serves an MSE viewer of key's stream that asked for sound until
// it has secs seconds of it.
func watchAV(t *testing.T, hub *stream.Hub, r *rig, key Key, secs float64) []msg {
	t.Helper()
	conn := newRecConn()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ServeMSE(ctx, hub, conn, func() (pull.State, bool) { return r.m.State(key.Camera, key.Stream) }, MSEOptions{Audio: true})
	}()
	deadline := time.After(30 * time.Second)
	for {
		_, _, samples := parseAV(t, conn.snapshot())
		want := stream.AudioTrackID
		first, last := -1.0, 0.0
		for _, s := range samples {
			if s.track == want {
				if first < 0 {
					first = s.at
				}
				last = s.at
			}
		}
		if first >= 0 && last-first >= secs {
			break
		}
		select {
		case <-conn.got:
		case <-deadline:
			cancel()
			t.Fatalf("%.1f s of track %d after 30 s, want %.1f", last-first, want, secs)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("ServeMSE: %v", err)
	}
	return conn.snapshot()
}

// Cameras with sound: each coding is played from the camera, said in the
// stream's state, and carried to an MSE viewer and into HLS (AAC and Opus
// as they come, G.711 as FLAC). The sound keeps time
// with the pictures: the simulator beeps at every keyframe, and the beep is
// heard within lip-sync range of its keyframe.
func TestCameraSound(t *testing.T) {
	noLeaks(t)
	for _, tc := range []struct {
		stream, state, mime string
	}{
		{camsim.StreamMainAAC, "AAC 16 kHz mono", "mp4a.40.2"},
		{camsim.StreamMainLATM, "AAC 16 kHz mono", "mp4a.40.2"},
		{camsim.StreamH265AAC, "AAC 16 kHz mono", "mp4a.40.2"},
		{camsim.StreamMainOpus, "Opus 48 kHz mono", "opus"},
		{camsim.StreamMainPCMA, "G.711 A-law 8 kHz mono", "flac"},
		{camsim.StreamMainPCMU, "G.711 µ-law 8 kHz mono", "flac"},
	} {
		t.Run(tc.stream, func(t *testing.T) {
			r := newRig(t, camsim.Config{N: 1, Addr: "127.0.0.1:0", Audio: true}, Config{Idle: time.Minute})
			r.setMain(1, tc.stream)
			hub := r.hold(t, 1, Main)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := hub.Ready(ctx); err != nil {
				t.Fatal(err)
			}
			if a := hub.Audio(); a == nil || a.String() != tc.state {
				t.Fatalf("hub audio %v, want %s", a, tc.state)
			}
			if st, _ := r.m.State(1, Main); st.Audio != tc.state {
				t.Errorf("state audio %q, want %q", st.Audio, tc.state)
			}
			msgs := watchAV(t, hub, r, Key{1, Main}, 3.5)
			codec, tracks, samples := parseAV(t, msgs)
			if !strings.HasSuffix(codec.Mime, ","+tc.mime+`"`) || codec.Audio != tc.state || len(tracks) != 2 {
				t.Fatalf("codec message %+v, %d tracks", codec, len(tracks))
			}
			// The sound runs without gaps or overlaps.
			var prev *avSample
			for i := range samples {
				s := &samples[i]
				if s.track != stream.AudioTrackID {
					continue
				}
				if prev != nil && s.at <= prev.at {
					t.Fatalf("audio time %.4f after %.4f", s.at, prev.at)
				}
				prev = s
			}
			if !strings.Contains(tc.stream, "h265") {
				checkLipSync(t, msgs, samples)
			}
			// HLS carries the sound too (Safari, iOS, ffmpeg).
			probe := probeHLS(t, r)
			want := map[string]string{"mp4a.40.2": "aac", "opus": "opus", "flac": "flac"}[tc.mime]
			if len(probe.Streams) != 2 || probe.Streams[1].CodecName != want {
				t.Errorf("HLS: %s, want a video and a %s stream", probe.Out, want)
			}
		})
	}
}

// probeHLS has ffprobe read the camera's live HLS, its playlist, init
// segment and segments copied to files as a player fetches them.
func probeHLS(t *testing.T, r *rig) testtool.Probe {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h, err := r.m.HLS(ctx, 1, Main)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := h.Playlist(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, line := range strings.Split(string(pl), "\n") {
		var name string
		var data []byte
		switch {
		case strings.HasPrefix(line, "#EXT-X-MAP:URI=\""):
			name = strings.TrimSuffix(strings.TrimPrefix(line, "#EXT-X-MAP:URI=\""), "\"")
			var id int
			fmt.Sscanf(name, "init-%d.mp4", &id)
			data, err = h.Init(id)
		case strings.HasPrefix(line, "seg-"):
			name = line
			var seq int
			fmt.Sscanf(name, "seg-%d.m4s", &seq)
			data, err = h.Segment(seq)
		default:
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "index.m3u8")
	if err := os.WriteFile(path, pl, 0o644); err != nil {
		t.Fatal(err)
	}
	return testtool.FFprobe(t, "-allowed_extensions", "ALL", "-show_entries", "stream=codec_name", path)
}

// checkLipSync decodes the sound a viewer got and checks that each beep
// starts within lipSync of a keyframe.
func checkLipSync(t *testing.T, msgs []msg, samples []avSample) {
	t.Helper()
	testtool.Require(t, "ffmpeg")
	var file bytes.Buffer
	for _, m := range msgs {
		if !m.text {
			file.Write(m.data)
		}
	}
	const rate = 8000
	cmd := exec.Command("ffmpeg", "-v", "error", "-f", "mp4", "-i", "-", "-map", "0:a", "-ac", "1", "-ar", "8000", "-f", "s16le", "-")
	cmd.Stdin = &file
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffmpeg decoding the sound: %v\n%s", err, errOut.String())
	}
	pcm := make([]int16, out.Len()/2)
	if err := binary.Read(&out, binary.LittleEndian, pcm); err != nil {
		t.Fatal(err)
	}
	var firstAudio float64 = -1
	var keys []float64
	lastPicture := 0.0
	for _, s := range samples {
		if s.track == stream.AudioTrackID && firstAudio < 0 {
			firstAudio = s.at
		}
		if s.track == stream.TrackID {
			lastPicture = max(lastPicture, s.at)
			if s.key {
				keys = append(keys, s.at)
			}
		}
	}
	// Beep onsets: a loud 10 ms window after a quiet one.
	const win = rate / 100
	rms := func(i int) float64 {
		var sum float64
		for _, v := range pcm[i : i+win] {
			sum += float64(v) * float64(v)
		}
		return math.Sqrt(sum / win)
	}
	onsets := 0
	worst := 0.0
	quiet := false
	for i := 0; i+win <= len(pcm); i += win / 2 {
		loud := rms(i) > 2000
		at := firstAudio + float64(i)/rate
		if at > lastPicture {
			break // sound whose pictures were not captured
		}
		if loud && quiet {
			near := math.Inf(1)
			for _, k := range keys {
				near = math.Min(near, math.Abs(k-at))
			}
			worst = math.Max(worst, near)
			if near > lipSync.Seconds() {
				t.Errorf("a beep at %.3f s is %.0f ms from the nearest keyframe (keyframes %v)", at, near*1000, keys)
			}
			onsets++
		}
		quiet = !loud
	}
	t.Logf("%d beeps, the farthest %.0f ms from its keyframe", onsets, worst*1000)
	if onsets < 2 {
		t.Errorf("%d beeps heard in %.1f s of sound, want one a second", onsets, float64(len(pcm))/rate)
	}
}

// lipSync is how far a beep may be from its picture: sound is placed by
// arrival against the latest picture (the simulator sends an audio frame
// with the picture before it, and a transcode hands it on after its
// picture: up to a picture's 40 ms either way), plus scheduling under load.
// Runs on a quiet machine find 5–25 ms; ITU-R BT.1359 finds 125 ms of sound
// late undetectable.
const lipSync = 150 * time.Millisecond

// An H.265 camera with sound watched through its H.264 transcode keeps its
// sound, in time with the transcoded pictures however long ffmpeg takes.
func TestTranscodedSound(t *testing.T) {
	noLeaks(t)
	ffmpeg := testtool.Require(t, "ffmpeg")
	r := newRig(t, camsim.Config{N: 1, Addr: "127.0.0.1:0", Audio: true},
		Config{Idle: time.Minute, FFmpeg: ffmpeg, MaxTranscodes: 1, TranscodeIdle: 50 * time.Millisecond})
	r.setMain(1, camsim.StreamH265AAC)
	hub, release, err := r.m.Acquire(context.Background(), 1, Transcoded)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := hub.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if a := hub.Audio(); a == nil || a.String() != "AAC 16 kHz mono" {
		t.Fatalf("the transcode's sound: %v, want the camera's AAC", a)
	}
	msgs := watchAV(t, hub, r, Key{1, Transcoded}, 3.5)
	codec, _, samples := parseAV(t, msgs)
	if !strings.HasPrefix(codec.Mime, `video/mp4; codecs="avc1.`) || !strings.HasSuffix(codec.Mime, `,mp4a.40.2"`) {
		t.Errorf("transcode's mime %q, want H.264 with AAC", codec.Mime)
	}
	checkLipSync(t, msgs, samples)
}

// A camera that announces sound and sends none must not stop a browser's
// pictures (a MediaSource plays what both its tracks hold): past the grace
// for sound to start, the MSE stream goes on without an audio track, at a
// keyframe, and a new viewer is given none.
func TestSilentCamera(t *testing.T) {
	noLeaks(t)
	r := newRig(t, camsim.Config{N: 1, Addr: "127.0.0.1:0", Audio: true, Fault: camsim.FaultMute}, Config{Idle: time.Minute})
	r.setMain(1, camsim.StreamMainAAC)
	hub := r.hold(t, 1, Main)
	conn := newRecConn()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ServeMSE(ctx, hub, conn, func() (pull.State, bool) { return r.m.State(1, Main) }, MSEOptions{Audio: true})
	}()
	// Codec messages in order: one without sound must come, and pictures
	// after it, starting at a keyframe.
	deadline := time.After(30 * time.Second)
	silentAt := -1
	for {
		msgs := conn.snapshot()
		codecs := 0
		for i, m := range msgs {
			var mm MSEMessage
			if m.text && json.Unmarshal(m.data, &mm) == nil && mm.Type == "codec" {
				codecs++
				if mm.Audio == "" && !strings.Contains(mm.Mime, ",") && silentAt < 0 {
					silentAt = i
				}
			}
		}
		if silentAt >= 0 {
			_, _, after := parseAV(t, msgs[silentAt:])
			if len(after) >= 30 {
				if !after[0].key {
					t.Errorf("the stream without sound starts with a picture that is not a keyframe")
				}
				for _, s := range after {
					if s.track != stream.TrackID {
						t.Fatalf("an audio sample after the init without sound")
					}
				}
				break
			}
		}
		select {
		case <-conn.got:
		case <-deadline:
			cancel()
			t.Fatalf("after 30 s: %d codec messages, none without sound", codecs)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if a := hub.LiveAudio(); a != nil {
		t.Errorf("a camera that sends no sound has live sound %v", a)
	}
	// A viewer joining now gets the pictures alone from the start.
	msgs, _ := watch(t, hub, r.m, Key{1, Main}, 5)
	for _, m := range msgs {
		var mm MSEMessage
		if m.text && json.Unmarshal(m.data, &mm) == nil && mm.Type == "codec" && (mm.Audio != "" || strings.Contains(mm.Mime, ",")) {
			t.Errorf("a new viewer of the silent camera is given sound: %+v", mm)
		}
	}
}
