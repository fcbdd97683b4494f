package ps

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"gridwatch/internal/testtool"
)

// The clips camsim serves: 100 frames at 25 fps, an IDR every 25, no
// B-frames; beep.aac is 125 ADTS frames of AAC-LC 16 kHz.
const (
	clipDir    = "../../camsim/clips"
	clipFrames = 100
	clipKeys   = 4
)

func readClip(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(clipDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// accessUnits splits an Annex-B clip into access units, the test's own
// way: a picture begins at a slice that is the first of its picture, or
// at the parameter sets, SEI or delimiter before such a slice; key tells
// whether each holds an IDR/IRAP slice.
func accessUnits(es []byte, h265 bool) (aus [][]byte, key []bool) {
	var starts []int // where each NAL unit's start code begins
	for i := 0; ; {
		j := bytes.Index(es[i:], []byte{0, 0, 1})
		if j < 0 {
			break
		}
		s := i + j
		if s > 0 && es[s-1] == 0 {
			s--
		}
		starts = append(starts, s)
		i += j + 3
	}
	auStart, prefix, pic, isKey := 0, -1, false, false
	for _, s := range starts {
		h := es[s:]
		for h[0] == 0 {
			h = h[1:]
		}
		h = h[1:] // the NAL unit header
		var vcl, first, pre, idr bool
		if h265 {
			t := h[0] >> 1
			vcl, first, idr = t < 32, h[2]&0x80 != 0, t >= 16 && t <= 23
			pre = t >= 32 && t <= 35 || t == 39
		} else {
			t := h[0] & 0x1f
			vcl, first, idr = t == 1 || t == 5, h[1]&0x80 != 0, t == 5
			pre = t >= 6 && t <= 9
		}
		switch {
		case pre && pic && prefix < 0:
			prefix = s
		case vcl && first && pic:
			cut := s
			if prefix >= 0 {
				cut = prefix
			}
			aus, key = append(aus, es[auStart:cut]), append(key, isKey)
			auStart, prefix, pic, isKey = cut, -1, false, false
		}
		if vcl {
			pic, isKey, prefix = true, isKey || idr, -1
		}
	}
	return append(aus, es[auStart:]), append(key, isKey)
}

// adtsFrames splits an ADTS stream into its frames.
func adtsFrames(t *testing.T, b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 7 || b[0] != 0xFF || b[1]&0xF6 != 0xF0 {
			t.Fatalf("not ADTS: % X", b[:min(len(b), 7)])
		}
		n := int(b[3]&3)<<11 | int(b[4])<<3 | int(b[5]>>5)
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

func TestClipSplit(t *testing.T) {
	for _, c := range []struct {
		name string
		h265 bool
	}{{"main.h264", false}, {"main.h265", true}} {
		es := readClip(t, c.name)
		aus, key := accessUnits(es, c.h265)
		keys := 0
		for _, k := range key {
			if k {
				keys++
			}
		}
		if len(aus) != clipFrames || keys != clipKeys || !bytes.Equal(bytes.Join(aus, nil), es) {
			t.Fatalf("%s: %d access units, %d keyframes", c.name, len(aus), keys)
		}
	}
}

// ffmpeg's program stream muxer (-f mpeg, vob, dvd) as an independent
// source: fixed-size packs that split frames anywhere, several access
// units in a PES, no PSM (the codecs are guessed), stream id 0xE2 for
// H.264, MPEG-1 pack and PES headers for -f mpeg, DVD navigation packets
// (private stream 2) and padding for vob and dvd. It takes no AAC or
// G.711 (only MPEG audio, AC-3, DTS and PCM): the audio is MP2.
func TestDemuxFFmpeg(t *testing.T) {
	ffmpeg := testtool.Require(t, "ffmpeg")
	dir := t.TempDir()
	mp2 := filepath.Join(dir, "beep.mp2")
	if out, err := exec.Command(ffmpeg, "-v", "error", "-i", filepath.Join(clipDir, "beep.aac"),
		"-c:a", "mp2", "-b:a", "64k", "-f", "mp2", mp2).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	audio, err := os.ReadFile(mp2)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		clip, format string
		h265, audio  bool
	}{
		{"main.h264", "mpeg", false, true},
		{"main.h264", "vob", false, true},
		{"main.h264", "dvd", false, false},
		{"main.h265", "mpeg", true, false},
		{"main.h265", "vob", true, true},
	} {
		t.Run(c.clip+"/"+c.format, func(t *testing.T) {
			out := filepath.Join(dir, c.clip+"."+c.format)
			args := []string{"-v", "error", "-framerate", "25", "-i", filepath.Join(clipDir, c.clip)}
			if c.audio {
				args = append(args, "-i", mp2)
			}
			args = append(args, "-c", "copy", "-f", c.format, "-y", out)
			if b, err := exec.Command(ffmpeg, args...).CombinedOutput(); err != nil {
				t.Fatalf("ffmpeg %v: %v\n%s", args, err, b)
			}
			ps, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(ps, []byte{0, 0, 1, 0xBC}) {
				t.Log("ffmpeg wrote a PSM") // it did not in 5.1
			}
			var video, sound []Frame
			d := Demuxer{OnFrame: func(f Frame) {
				if f.Video {
					video = append(video, f)
				} else {
					sound = append(sound, f)
				}
			}}
			for p := range slices.Chunk(ps, 1400) {
				if err := d.Write(p); err != nil {
					t.Fatal(err)
				}
			}
			d.Flush()

			es := readClip(t, c.clip)
			aus, key := accessUnits(es, c.h265)
			want := H264
			if c.h265 {
				want = H265
			}
			if len(video) != len(aus) {
				t.Fatalf("%d video frames, want %d", len(video), len(aus))
			}
			keys, withPTS := 0, 0
			var first int64 = -1
			for i, f := range video {
				if !bytes.Equal(f.Data, aus[i]) || f.Key != key[i] || f.Type != want {
					t.Errorf("frame %d: %v, %d bytes, key %v; want %d bytes, key %v", i, f.Type, len(f.Data), f.Key, len(aus[i]), key[i])
				}
				if f.Key {
					keys++
				}
				if !f.HasPTS {
					continue
				}
				// Constant frame rate, no B-frames: PTS = first + 3600 i.
				withPTS++
				if first < 0 {
					first = f.PTS - int64(i)*3600
				}
				if f.PTS != first+int64(i)*3600 || f.DTS > f.PTS {
					t.Errorf("frame %d: PTS %d DTS %d, want PTS %d", i, f.PTS, f.DTS, first+int64(i)*3600)
				}
			}
			if keys != clipKeys || withPTS < len(aus)*9/10 {
				t.Errorf("%d keyframes (want %d), %d frames with a PTS", keys, clipKeys, withPTS)
			}
			t.Logf("%d frames, %d with a PTS (ffmpeg puts several in a PES)", len(video), withPTS)
			if v, a := d.Streams(); v != want || c.audio && a != MPEG2Audio {
				t.Errorf("Streams() = %v, %v", v, a)
			}
			if !c.audio {
				return
			}
			var got []byte
			for _, f := range sound {
				if f.Type != MPEG2Audio || !f.HasPTS {
					t.Fatalf("audio frame %v, PTS %v", f.Type, f.HasPTS)
				}
				got = append(got, f.Data...)
			}
			if !bytes.Equal(got, audio) {
				t.Errorf("%d bytes of audio in %d frames, want the %d of the MP2 file", len(got), len(sound), len(audio))
			}
		})
	}
}

// The Muxer's program stream read by an independent client: ffprobe
// finds the codecs and every frame (decoding them), and so does the
// Demuxer.
func TestMuxFFprobe(t *testing.T) {
	ffprobe := testtool.Require(t, "ffprobe")
	aac := adtsFrames(t, readClip(t, "beep.aac"))
	for _, c := range []struct {
		clip  string
		video StreamType
		codec string
	}{{"main.h264", H264, "h264"}, {"main.h265", H265, "hevc"}} {
		t.Run(c.clip, func(t *testing.T) {
			aus, key := accessUnits(readClip(t, c.clip), c.video == H265)
			var items []item
			m := &Muxer{Video: c.video, Audio: AAC}
			var ps []byte
			k := 0
			for i, au := range aus {
				pts := int64(90000 + i*3600)
				// The audio up to this picture: 1024 samples at 16 kHz a frame.
				for ; k < len(aac) && int64(90000+k*5760) <= pts; k++ {
					apts := int64(90000 + k*5760)
					ps = m.WriteAudio(ps, aac[k], apts)
					items = append(items, item{data: aac[k], pts: apts})
				}
				ps = m.WriteVideo(ps, au, pts, pts, key[i])
				items = append(items, item{video: true, data: au, pts: pts, dts: pts, key: key[i]})
			}
			path := filepath.Join(t.TempDir(), "out.ps")
			if err := os.WriteFile(path, ps, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(ffprobe, "-v", "error", "-count_frames",
				"-show_entries", "stream=codec_name,nb_read_frames", "-of", "json", path).Output()
			if err != nil {
				t.Fatalf("ffprobe: %v", err)
			}
			var probe struct {
				Streams []struct {
					CodecName    string `json:"codec_name"`
					NbReadFrames string `json:"nb_read_frames"`
				} `json:"streams"`
			}
			if err := json.Unmarshal(out, &probe); err != nil || len(probe.Streams) != 2 {
				t.Fatalf("ffprobe: %v %s", err, out)
			}
			found := map[string]int{}
			for _, s := range probe.Streams {
				found[s.CodecName], _ = strconv.Atoi(s.NbReadFrames)
			}
			if found[c.codec] != len(aus) || found["aac"] != k {
				t.Errorf("ffprobe read %v, want %d %s and %d aac frames", found, len(aus), c.codec, k)
			}

			var d Demuxer
			var pieces [][]byte
			for p := range slices.Chunk(ps, 1400) {
				pieces = append(pieces, p)
			}
			check(t, feed(t, &d, pieces, 0, false), items, c.video, AAC)
		})
	}
}
