package ps

import (
	"math/rand/v2"
	"testing"
)

// benchStream is 2 s of a 4 Mbit/s-like camera: 25 fps H.264, a 60 KB
// keyframe a second and 17 KB pictures, G.711 in 20 ms frames.
func benchStream() []item {
	r := rand.New(rand.NewPCG(12, 12))
	key := join(nalu(r, 20, 0x67, 0x42), nalu(r, 4, 0x68, 0xCE), nalu(r, 60_000, 0x65, 0x88))
	pic := nalu(r, 17_000, 0x41, 0x9A)
	audio := fakeAudio(r, G711A, 1)[0]
	var items []item
	for i := range 50 {
		pts := int64(i) * 3600
		au := pic
		if i%25 == 0 {
			au = key
		}
		items = append(items,
			item{video: true, data: au, pts: pts, dts: pts, key: i%25 == 0},
			item{data: audio, pts: pts},
			item{data: audio, pts: pts + 1800})
	}
	return items
}

func BenchmarkDemux(b *testing.B) {
	items := benchStream()
	type piece struct {
		b    []byte
		last bool
	}
	var pieces []piece
	size := 0
	for _, pack := range mux(&Muxer{Video: H264, Audio: G711A}, items) {
		Packetize(pack, 1400, func(p []byte, last bool) { pieces = append(pieces, piece{p, last}) })
		size += len(pack)
	}
	frames := 0
	d := Demuxer{OnFrame: func(Frame) { frames++ }}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		for _, p := range pieces {
			if err := d.Write(p.b); err != nil {
				b.Fatal(err)
			}
			if p.last {
				d.Flush()
			}
		}
	}
	if frames < len(items) {
		b.Fatalf("%d frames", frames)
	}
}

func BenchmarkMux(b *testing.B) {
	items := benchStream()
	size := 0
	for _, it := range items {
		size += len(it.data)
	}
	m := &Muxer{Video: H264, Audio: G711A}
	var dst []byte
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		for _, it := range items {
			if it.video {
				dst = m.WriteVideo(dst[:0], it.data, it.pts, it.dts, it.key)
			} else {
				dst = m.WriteAudio(dst[:0], it.data, it.pts)
			}
		}
	}
}
