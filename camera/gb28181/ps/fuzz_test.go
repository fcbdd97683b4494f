package ps

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// tinyVideo returns a few small access units of codec t.
func tinyVideo(r *rand.Rand, t StreamType) []item {
	var aus [][]byte
	if t == H264 {
		aus = [][]byte{
			join(nalu(r, 8, 0x67, 0x42), nalu(r, 2, 0x68, 0xCE), nalu(r, 60, 0x65, 0x88)),
			nalu(r, 30, 0x41, 0x9A),
			join(nalu(r, 0, 0x09, 0xF0), nalu(r, 20, 0x41, 0x9A), nalu(r, 20, 0x41, 0x20)),
		}
	} else {
		aus = [][]byte{
			join(nalu(r, 8, 0x40, 0x01), nalu(r, 8, 0x42, 0x01), nalu(r, 2, 0x44, 0x01), nalu(r, 60, 0x26, 0x01, 0xAF)),
			nalu(r, 30, 0x02, 0x01, 0xD0),
			join(nalu(r, 1, 0x46, 0x01, 0x50), nalu(r, 20, 0x02, 0x01, 0xD0)),
		}
	}
	var items []item
	for i, au := range aus {
		items = append(items, item{video: true, data: au, pts: int64(i) * 3600, dts: int64(i) * 3600, key: i == 0})
	}
	return items
}

// FuzzDemux feeds arbitrary bytes in pieces the fuzzer chooses, with
// Flush and Reset between them: no panic, no frame over MaxFrame, no
// buffer beyond its bound.
func FuzzDemux(f *testing.F) {
	r := rand.New(rand.NewPCG(11, 11))
	for _, c := range []struct{ video, audio StreamType }{{H264, G711A}, {H265, AAC}} {
		items := interleave(tinyVideo(r, c.video), fakeAudio(r, c.audio, 2))
		packs := mux(&Muxer{Video: c.video, Audio: c.audio}, items)
		f.Add(bytes.Join(packs, nil), []byte{0x10, 0xFF, 0x21, 0x7, 0x32})
		// Video PES without lengths.
		unbounded := rewrite(f, packs, func(pkt []byte) []byte {
			if pkt[3] == 0xE0 {
				pkt = bytes.Clone(pkt)
				pkt[4], pkt[5] = 0, 0
			}
			return pkt
		})
		f.Add(bytes.Join(unbounded, nil), []byte{0x5, 0x9})
		// ffmpeg-like: fixed-size PES, MPEG-1 headers.
		f.Add(fixedPES(tinyVideo(r, c.video), 50, true), []byte{})
	}
	const maxFrame = 300
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		// Whole, and in the fuzzer's pieces: the same frames.
		whole := demuxPieces(t, data, nil, maxFrame, false)
		split := demuxPieces(t, data, cuts, maxFrame, false)
		if len(whole.frames) != len(split.frames) || whole.stats != split.stats {
			t.Fatalf("whole: %d frames, %+v; in pieces: %d frames, %+v", len(whole.frames), whole.stats, len(split.frames), split.stats)
		}
		for i, f := range whole.frames {
			g := split.frames[i]
			if f.Type != g.Type || f.Video != g.Video || f.Key != g.Key || f.HasPTS != g.HasPTS ||
				f.PTS != g.PTS || f.DTS != g.DTS || !bytes.Equal(f.Data, g.Data) {
				t.Fatalf("frame %d: whole %+v, in pieces %+v", i, f, g)
			}
		}
		// With Flush and Reset between the pieces.
		demuxPieces(t, data, cuts, maxFrame, true)
	})
}

type demuxed struct {
	frames []Frame
	stats  Stats
}

// demuxPieces demultiplexes data cut where cuts say (each byte: a piece
// of 1 to 64 bytes, and with ops a Flush or Reset after it), checking
// the frames' and buffers' bounds.
func demuxPieces(t *testing.T, data, cuts []byte, maxFrame int, ops bool) demuxed {
	var out demuxed
	d := Demuxer{MaxFrame: maxFrame}
	d.OnFrame = func(fr Frame) {
		if len(fr.Data) == 0 || len(fr.Data) > maxFrame {
			t.Fatalf("a frame of %d bytes", len(fr.Data))
		}
		out.frames = append(out.frames, fr)
	}
	for i := 0; len(data) > 0; i++ {
		n, op := len(data), byte(0)
		if i < len(cuts) {
			n, op = min(n, int(cuts[i]>>2)+1), cuts[i]&3
		}
		d.Write(data[:n])
		data = data[n:]
		switch {
		case !ops:
		case op == 1:
			d.Flush()
		case op == 2:
			d.Reset()
		}
		if len(d.vbuf) > maxFrame+n || len(d.hdr) > 6+0xFFFF || len(d.abuf) > 0xFFFF {
			t.Fatalf("buffers of %d, %d and %d bytes", len(d.vbuf), len(d.hdr), len(d.abuf))
		}
	}
	d.Flush()
	out.stats = d.Stats()
	return out
}
