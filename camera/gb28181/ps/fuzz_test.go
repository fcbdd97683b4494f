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
		d := Demuxer{MaxFrame: maxFrame}
		d.OnFrame = func(fr Frame) {
			if len(fr.Data) == 0 || len(fr.Data) > maxFrame {
				t.Fatalf("a frame of %d bytes", len(fr.Data))
			}
		}
		for i := 0; len(data) > 0; i++ {
			n, op := len(data), byte(0)
			if i < len(cuts) {
				n, op = min(n, int(cuts[i]>>2)+1), cuts[i]&3
			}
			d.Write(data[:n])
			data = data[n:]
			switch op {
			case 1:
				d.Flush()
			case 2:
				d.Reset()
			}
			if len(d.vbuf) > maxFrame+64 || len(d.hdr) > 6+0xFFFF || len(d.abuf) > 0xFFFF {
				t.Fatalf("buffers of %d, %d and %d bytes", len(d.vbuf), len(d.hdr), len(d.abuf))
			}
		}
		d.Flush()
	})
}
