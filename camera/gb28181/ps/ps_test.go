package ps

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// item is one frame to multiplex: a video access unit or an audio frame.
type item struct {
	video    bool
	data     []byte
	pts, dts int64
	key      bool
}

// nalu returns a NAL unit with a 4-byte start code: the header bytes h,
// then n bytes without zeros (so no start code can appear inside).
func nalu(r *rand.Rand, n int, h ...byte) []byte {
	b := append([]byte{0, 0, 0, 1}, h...)
	for range n {
		b = append(b, byte(1+r.IntN(255)))
	}
	return b
}

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// fakeVideo returns access units of the codec t: keyframes with parameter
// sets, pictures of one and of two slices, one with a delimiter, one with
// an SEI, one larger than a PES, one with a DTS before its PTS.
func fakeVideo(r *rand.Rand, t StreamType) []item {
	var key, big, p1, p2, aud, sei, b []byte
	if t == H264 {
		params := join(nalu(r, 20, 0x67, 0x42, 0xC0, 0x1E), nalu(r, 4, 0x68, 0xCE))
		key = join(params, nalu(r, 3000, 0x65, 0x88))
		big = join(params, nalu(r, 150_000, 0x65, 0x88), nalu(r, 20_000, 0x65, 0x40))
		p1 = nalu(r, 900, 0x41, 0x9A)
		p2 = join(nalu(r, 700, 0x41, 0x9A), nalu(r, 600, 0x41, 0x20))
		aud = join(nalu(r, 0, 0x09, 0xF0), nalu(r, 500, 0x41, 0x9A))
		sei = join(nalu(r, 10, 0x06, 0x05), nalu(r, 400, 0x01, 0x9E))
		b = nalu(r, 300, 0x01, 0x9E)
	} else {
		params := join(nalu(r, 20, 0x40, 0x01), nalu(r, 30, 0x42, 0x01), nalu(r, 6, 0x44, 0x01))
		key = join(params, nalu(r, 3000, 0x26, 0x01, 0xAF))
		big = join(params, nalu(r, 150_000, 0x28, 0x01, 0xAF), nalu(r, 20_000, 0x28, 0x01, 0x40))
		p1 = nalu(r, 900, 0x02, 0x01, 0xD0)
		p2 = join(nalu(r, 700, 0x02, 0x01, 0xD0), nalu(r, 600, 0x02, 0x01, 0x20))
		aud = join(nalu(r, 1, 0x46, 0x01, 0x50), nalu(r, 500, 0x02, 0x01, 0xD0))
		sei = join(nalu(r, 10, 0x4E, 0x01, 0x05), nalu(r, 400, 0x00, 0x01, 0xD0))
		b = nalu(r, 300, 0x00, 0x01, 0xC0)
	}
	const base = 1<<33 - 20_000 // the timestamps wrap
	ts := func(i int) int64 { return (base + int64(i)*3600) & (1<<33 - 1) }
	items := []item{
		{data: key, key: true},
		{data: p1}, {data: p2}, {data: aud}, {data: sei},
		{data: big, key: true},
		{data: p1}, {data: b}, {data: p2},
	}
	for i := range items {
		items[i].video = true
		items[i].pts, items[i].dts = ts(i+2), ts(i+2)
	}
	items[7].dts = ts(7) // a picture shown after the next one is decoded
	items[8].dts = ts(8)
	items[8].pts = ts(8)
	return items
}

// fakeAudio returns n frames of coding t.
func fakeAudio(r *rand.Rand, t StreamType, n int) [][]byte {
	var frames [][]byte
	for range n {
		switch t {
		case AAC:
			// ADTS: AAC LC, 16 kHz, mono, no CRC.
			size := 7 + 40 + r.IntN(100)
			f := []byte{0xFF, 0xF1, 0x60, 0x40 | byte(size>>11), byte(size >> 3), byte(size<<5) | 0x1F, 0xFC}
			for len(f) < size {
				f = append(f, byte(r.IntN(256)))
			}
			frames = append(frames, f)
		default:
			f := make([]byte, 160) // 20 ms at 8 kHz
			for i := range f {
				f[i] = byte(1 + r.IntN(254)) // never 0xFF first: not taken for a header
			}
			frames = append(frames, f)
		}
	}
	return frames
}

// interleave puts an audio frame after every video frame.
func interleave(video []item, audio [][]byte) []item {
	var out []item
	for i, v := range video {
		out = append(out, v)
		if i < len(audio) {
			out = append(out, item{data: audio[i], pts: v.pts + 100})
		}
	}
	return out
}

// mux writes items as packs.
func mux(m *Muxer, items []item) [][]byte {
	var packs [][]byte
	for _, it := range items {
		if it.video {
			packs = append(packs, m.WriteVideo(nil, it.data, it.pts, it.dts, it.key))
		} else {
			packs = append(packs, m.WriteAudio(nil, it.data, it.pts))
		}
	}
	return packs
}

// feed demultiplexes packs split into pieces of size bytes, calling Flush
// at each pack's end when flush is set (and at the very end anyway).
func feed(t testing.TB, d *Demuxer, packs [][]byte, size int, flush bool) []Frame {
	t.Helper()
	var got []Frame
	d.OnFrame = func(f Frame) { got = append(got, f) }
	for _, pack := range packs {
		Packetize(pack, size, func(piece []byte, last bool) {
			if err := d.Write(piece); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if last && flush {
				d.Flush()
			}
		})
	}
	d.Flush()
	return got
}

// check compares demultiplexed frames with the items multiplexed.
func check(t *testing.T, got []Frame, want []item, vt, at StreamType) {
	t.Helper()
	var gv, ga []Frame
	for _, f := range got {
		if f.Video {
			gv = append(gv, f)
		} else {
			ga = append(ga, f)
		}
	}
	var wv, wa []item
	for _, it := range want {
		if it.video {
			wv = append(wv, it)
		} else {
			wa = append(wa, it)
		}
	}
	if len(gv) != len(wv) || len(ga) != len(wa) {
		t.Fatalf("%d video and %d audio frames, want %d and %d", len(gv), len(ga), len(wv), len(wa))
	}
	for i, f := range gv {
		w := wv[i]
		if f.Type != vt || f.Key != w.key || !f.HasPTS || f.PTS != w.pts || f.DTS != w.dts {
			t.Errorf("video frame %d: %v key %v PTS %v/%d DTS %d, want %v key %v PTS %d DTS %d",
				i, f.Type, f.Key, f.HasPTS, f.PTS, f.DTS, vt, w.key, w.pts, w.dts)
		}
		if !bytes.Equal(f.Data, w.data) {
			t.Errorf("video frame %d: %d bytes differ from the %d sent", i, len(f.Data), len(w.data))
		}
	}
	for i, f := range ga {
		w := wa[i]
		if f.Type != at || !f.HasPTS || f.PTS != w.pts || f.DTS != w.pts || !bytes.Equal(f.Data, w.data) {
			t.Errorf("audio frame %d: %v PTS %v/%d, %d bytes; want %v PTS %d, %d bytes",
				i, f.Type, f.HasPTS, f.PTS, len(f.Data), at, w.pts, len(w.data))
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, c := range []struct{ video, audio StreamType }{
		{H264, G711A}, {H264, AAC}, {H265, G711U}, {H265, AAC}, {H264, 0},
	} {
		r := rand.New(rand.NewPCG(1, uint64(c.video)<<8|uint64(c.audio)))
		video := fakeVideo(r, c.video)
		var items []item
		if c.audio == 0 {
			items = video
		} else {
			items = interleave(video, fakeAudio(r, c.audio, len(video)))
		}
		m := &Muxer{Video: c.video, Audio: c.audio}
		packs := mux(m, items)
		for _, size := range []int{1400, 1, 7, 188, 0} {
			for _, flush := range []bool{true, false} {
				t.Run(fmt.Sprintf("%v+%v/%d/flush=%v", c.video, c.audio, size, flush), func(t *testing.T) {
					var d Demuxer
					got := feed(t, &d, packs, size, flush)
					check(t, got, items, c.video, c.audio)
					if v, a := d.Streams(); v != c.video || a != c.audio {
						t.Errorf("Streams() = %v, %v", v, a)
					}
					if s := d.Stats(); s.Errors != 0 || s.Oversize != 0 {
						t.Errorf("stats %+v", s)
					}
				})
			}
		}
	}
}

// walk calls fn for each packet of a well-formed program stream.
func walk(t testing.TB, ps []byte, fn func(pkt []byte)) {
	for len(ps) > 0 {
		n := 0
		switch {
		case len(ps) < 4 || !bytes.Equal(ps[:3], startCode):
			t.Fatalf("walk: % X", ps[:min(len(ps), 8)])
		case ps[3] == 0xBA && ps[4]>>6 == 1:
			n = 14 + int(ps[13]&7)
		case ps[3] == 0xBA:
			n = 12
		default:
			n = 6 + int(binary.BigEndian.Uint16(ps[4:]))
		}
		fn(ps[:n])
		ps = ps[n:]
	}
}

// rewrite applies fn to every packet of every pack.
func rewrite(t testing.TB, packs [][]byte, fn func(pkt []byte) []byte) [][]byte {
	var out [][]byte
	for _, p := range packs {
		var q []byte
		walk(t, p, func(pkt []byte) { q = append(q, fn(pkt)...) })
		out = append(out, q)
	}
	return out
}

// Without a PSM (ffmpeg writes none) the codecs are told from the data.
func TestGuess(t *testing.T) {
	for _, c := range []struct{ video, audio StreamType }{{H264, G711A}, {H265, AAC}, {H264, AAC}, {H265, G711A}} {
		r := rand.New(rand.NewPCG(2, uint64(c.video)))
		items := interleave(fakeVideo(r, c.video), fakeAudio(r, c.audio, 20))
		packs := rewrite(t, mux(&Muxer{Video: c.video, Audio: c.audio}, items), func(pkt []byte) []byte {
			if pkt[3] == 0xBC {
				return nil
			}
			return pkt
		})
		for _, size := range []int{1400, 5} {
			var d Demuxer
			if v, a := d.Streams(); v != 0 || a != 0 {
				t.Fatalf("Streams() before any data: %v, %v", v, a)
			}
			got := feed(t, &d, packs, size, true)
			check(t, got, items, c.video, c.audio)
			if v, a := d.Streams(); v != c.video || a != c.audio {
				t.Errorf("%v+%v: Streams() = %v, %v", c.video, c.audio, v, a)
			}
		}
	}
}

// Some devices send video PES without a length (0): the PES runs to the
// next start code of the program stream.
func TestUnboundedVideoPES(t *testing.T) {
	for _, vt := range []StreamType{H264, H265} {
		r := rand.New(rand.NewPCG(3, uint64(vt)))
		items := interleave(fakeVideo(r, vt), fakeAudio(r, G711A, 20))
		// Start codes at the very end of a piece, and 00 00 00 runs.
		items[2].data = append(items[2].data, 0, 0)
		packs := rewrite(t, mux(&Muxer{Video: vt, Audio: G711A}, items), func(pkt []byte) []byte {
			if pkt[3] == 0xE0 {
				pkt = bytes.Clone(pkt)
				pkt[4], pkt[5] = 0, 0
			}
			return pkt
		})
		for _, size := range []int{1400, 1, 2, 3, 5, 0} {
			for _, flush := range []bool{true, false} {
				var d Demuxer
				got := feed(t, &d, packs, size, flush)
				want := items
				if !flush {
					// The two zeros may begin a start code: without a marker they
					// are taken as the next frame's leading zero bytes.
					want = append([]item(nil), items...)
					want[2].data = items[2].data[:len(items[2].data)-2]
					want[4].data = append([]byte{0, 0}, items[4].data...)
				}
				check(t, got, want, vt, G711A)
			}
		}
	}
}

// pesPacket returns one MPEG-2 PES packet (timestamps when pts >= 0).
func pesPacket(id byte, data []byte, pts int64) []byte {
	hl := 0
	if pts >= 0 {
		hl = 5
	}
	return pes(nil, id, data, pts, pts, hl)
}

// splitNALUs splits an Annex-B access unit with 4-byte start codes.
func splitNALUs(au []byte) [][]byte {
	var out [][]byte
	for len(au) > 0 {
		j := bytes.Index(au[4:], []byte{0, 0, 0, 1})
		if j < 0 {
			return append(out, au)
		}
		out = append(out, au[:4+j])
		au = au[4+j:]
	}
	return out
}

// Some devices put every NAL unit in a PES of its own, each with the PTS,
// and the parameter sets in a pack of their own, ended by a marker.
func TestPESPerNALUnit(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	items := fakeVideo(r, H264)
	var packs [][]byte
	m := &Muxer{Video: H264}
	for _, it := range items {
		nalus := splitNALUs(it.data)
		if it.key {
			// SPS and PPS alone, then the rest.
			p := m.WriteVideo(nil, join(nalus[:2]...), it.pts, it.pts, true)
			packs = append(packs, p)
			nalus = nalus[2:]
		}
		hl := 10
		if it.pts == it.dts {
			hl = 5
		}
		p := packHeader(nil, it.dts)
		for _, n := range nalus {
			p = pes(p, videoID, n, it.pts, it.dts, hl)
		}
		packs = append(packs, p)
	}
	for _, size := range []int{1400, 3} {
		var d Demuxer
		check(t, feed(t, &d, packs, size, true), items, H264, 0)
	}
}

// fixedPES packs an elementary stream the way ffmpeg's muxer does: in PES
// packets of a fixed size, one a pack, regardless of where access units
// begin; a PES carries the PTS of the first access unit beginning in it.
// MPEG-1 packs and PES headers when mpeg1.
func fixedPES(items []item, chunk int, mpeg1 bool) []byte {
	var es []byte
	var starts []int
	for _, it := range items {
		starts = append(starts, len(es))
		es = append(es, it.data...)
	}
	var out []byte
	k := 0
	for off := 0; off < len(es); off += chunk {
		end := min(off+chunk, len(es))
		pts := int64(-1)
		for k < len(starts) && starts[k] < off {
			k++
		}
		if k < len(starts) && starts[k] < end {
			pts = items[k].pts
		}
		if mpeg1 {
			// MPEG-1 pack header, then a PES with stuffing, a P-STD buffer
			// size and the PTS.
			out = append(out, 0, 0, 1, 0xBA, 0x21, 0, 1, 0, 1, 0x80, 0x1B, 0x91)
			h := []byte{0xFF, 0xFF, 0x40 | 0x20, 0x00}
			if pts >= 0 {
				h = putTS(h, 0x2, pts)
			} else {
				h = append(h, 0x0F)
			}
			l := len(h) + end - off
			out = append(out, 0, 0, 1, 0xE0, byte(l>>8), byte(l))
			out = append(out, h...)
			out = append(out, es[off:end]...)
			continue
		}
		out = packHeader(out, 0)
		out = append(out, pesPacket(0xE0, es[off:end], pts)...)
	}
	return out
}

func TestFixedSizePES(t *testing.T) {
	for _, vt := range []StreamType{H264, H265} {
		r := rand.New(rand.NewPCG(5, uint64(vt)))
		items := fakeVideo(r, vt)
		// ffmpeg's PS has no B-frame-like DTS here: a PES carries the PTS alone.
		for i := range items {
			items[i].dts = items[i].pts
		}
		for _, chunk := range []int{2048, 1000, 333, 7} {
			for _, mpeg1 := range []bool{false, true} {
				ps := fixedPES(items, chunk, mpeg1)
				var got []Frame
				d := Demuxer{OnFrame: func(f Frame) { got = append(got, f) }}
				for p := range slices.Chunk(ps, 1400) {
					if err := d.Write(p); err != nil {
						t.Fatal(err)
					}
				}
				d.Flush()
				if len(got) != len(items) {
					t.Fatalf("%v chunk %d: %d frames, want %d", vt, chunk, len(got), len(items))
				}
				// A frame has the PTS when it is the first to begin in a PES.
				off, prev := 0, -1
				for i, f := range got {
					w := items[i]
					first := off/chunk != prev
					prev = off / chunk
					if !bytes.Equal(f.Data, w.data) || f.Key != w.key || f.Type != vt {
						t.Errorf("%v chunk %d frame %d: %d bytes key %v, want %d key %v", vt, chunk, i, len(f.Data), f.Key, len(w.data), w.key)
					}
					if f.HasPTS != first || f.HasPTS && f.PTS != w.pts {
						t.Errorf("%v chunk %d mpeg1 %v frame %d: PTS %v %d, want %v %d", vt, chunk, mpeg1, i, f.HasPTS, f.PTS, first, w.pts)
					}
					off += len(w.data)
				}
			}
		}
	}
}

// After a loss and a Reset, the demuxer drops the damaged frames and
// picks up at the next pack: every frame it hands on is whole, and only
// the frames that lost a piece are missing. Without the Reset (the loss
// unnoticed) it finds its way back by itself.
func TestLoss(t *testing.T) {
	for _, vt := range []StreamType{H264, H265} {
		r := rand.New(rand.NewPCG(6, uint64(vt)))
		var video []item
		for range 5 {
			video = append(video, fakeVideo(r, vt)...)
		}
		for i := range video {
			video[i].pts = int64(i) * 3600
			video[i].dts = video[i].pts
		}
		items := interleave(video, fakeAudio(r, AAC, len(video)))
		packs := mux(&Muxer{Video: vt, Audio: AAC}, items)
		byPTS := map[[2]int64]item{}
		key := func(video bool, pts int64) [2]int64 {
			if video {
				return [2]int64{1, pts}
			}
			return [2]int64{0, pts}
		}
		for _, it := range items {
			byPTS[key(it.video, it.pts)] = it
		}
		for _, reset := range []bool{true, false} {
			var got []Frame
			d := Demuxer{OnFrame: func(f Frame) { got = append(got, f) }}
			n, lost := 0, map[[2]int64]bool{}
			for i, pack := range packs {
				Packetize(pack, 1000, func(piece []byte, last bool) {
					if n++; n%37 == 0 && i < len(packs)-20 {
						lost[key(items[i].video, items[i].pts)] = true
						if reset {
							d.Reset()
						}
						return
					}
					err := d.Write(piece)
					if err != nil && reset {
						t.Errorf("Write after Reset: %v", err)
					}
					if last {
						d.Flush()
					}
				})
			}
			d.Flush()
			if len(lost) < 5 {
				t.Fatalf("only %d frames lost", len(lost))
			}
			intact := 0
			for _, f := range got {
				w, ok := byPTS[key(f.Video, f.PTS)]
				switch {
				case ok && f.HasPTS && bytes.Equal(w.data, f.Data):
					intact++
				case reset:
					t.Fatalf("%v: a damaged frame came through (PTS %d, %d bytes)", vt, f.PTS, len(f.Data))
				}
				if reset && lost[key(f.Video, f.PTS)] {
					t.Errorf("%v: a frame with a lost piece came through (PTS %d)", vt, f.PTS)
				}
			}
			switch {
			case reset && len(got) != len(items)-len(lost):
				t.Errorf("%v reset: %d frames of %d, %d lost", vt, len(got), len(items), len(lost))
			case !reset && intact < len(items)-4*len(lost):
				t.Errorf("%v: %d intact frames of %d, %d lost", vt, intact, len(items), len(lost))
			}
			// The last frames, after the losses, all come through.
			for i, it := range items[len(items)-15:] {
				f := got[len(got)-15+i]
				if f.Video != it.video || f.PTS != it.pts || !bytes.Equal(f.Data, it.data) {
					t.Errorf("%v reset %v: frame %d from the end is not the one sent", vt, reset, 15-i)
				}
			}
		}
	}
}

func TestMalformed(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	items := interleave(fakeVideo(r, H264), fakeAudio(r, G711A, 20))
	good := bytes.Join(mux(&Muxer{Video: H264, Audio: G711A}, items), nil)
	pack := packHeader(nil, 0)
	psm := func(body ...byte) []byte {
		return append([]byte{0, 0, 1, 0xBC, byte((len(body) + 4) >> 8), byte(len(body) + 4)}, append(body, 0, 0, 0, 0)...)
	}
	for _, c := range []struct {
		name, in, err string
		lost          int // frames lost: the one being gathered at the fault, and what the fault swallows
	}{
		{"garbage", "\x47\x40\x11\x10" + string(pack), "47", 1},
		{"not a PS start code", "\x00\x00\x01\x09\xf0" + string(pack), "00 00 01 09 is no program stream packet", 1},
		{"pack header", "\x00\x00\x01\xba\x00\x00", "neither MPEG-1 nor MPEG-2", 1},
		{"PES header past its length", "\x00\x00\x01\xe0\x00\x0c\x80\x80\xc8" + strings.Repeat("\x01", 12), "PES header length 200 exceeds packet length 12", 1},
		{"PES shorter than its header", "\x00\x00\x01\xe0\x00\x02\x80\x80", "PES packet length 2 shorter than its header", 1},
		{"PTS without room", "\x00\x00\x01\xe0\x00\x05\x80\x80\x02\x21\x01", "PES header length 2 too short for a PTS", 1},
		{"PTS and DTS without room", "\x00\x00\x01\xe0\x00\x08\x80\xc0\x05\x31\x01\x01\x01\x01", "too short for a PTS and DTS", 1},
		{"audio without length", "\x00\x00\x01\xc0\x00\x00\x80\x80\x05", "audio PES C0 without a length", 1},
		{"MPEG-1 stuffing", "\x00\x00\x01\xe0\x00\x20" + strings.Repeat("\xff", 20), "more than 16 stuffing bytes", 1},
		{"MPEG-1 flags", "\x00\x00\x01\xe0\x00\x20\x11", "MPEG-1 PES header byte 11", 1},
		{"MPEG-1 past its length", "\x00\x00\x01\xe0\x00\x03\x31\x00\x00", "exceeds packet length 3", 1},
		{"truncated pack", "\x00\x00\x01\xba\x44\x00\x04", "where a start code was expected", 2},
		{"PSM too short", string(psm()), "PSM of 10 bytes is too short", 0},
		{"PSM info length", string(psm(0x80, 0xff, 0x01, 0x00, 0, 0)), "program_stream_info_length 256 exceeds", 0},
		{"PSM map length", string(psm(0x80, 0xff, 0, 0, 0x00, 0x40, 0x1b, 0xe0, 0, 0)), "elementary_stream_map_length 64 exceeds", 0},
		{"PSM entry", string(psm(0x80, 0xff, 0, 0, 0x00, 0x04, 0x1b, 0xe0, 0, 9)), "elementary_stream_info_length 9 exceeds the map", 0},
		{"PSM short entry", string(psm(0x80, 0xff, 0, 0, 0x00, 0x02, 0x1b, 0xe0)), "PSM entry of 2 bytes", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, size := range []int{1, 4, 1000} {
				var got []Frame
				d := Demuxer{OnFrame: func(f Frame) { got = append(got, f) }}
				// The fault between two good streams, at a packet boundary.
				in := join(good, []byte(c.in), good)
				var first error
				for p := range slices.Chunk(in, size) {
					if err := d.Write(p); err != nil && first == nil {
						first = err
					}
				}
				d.Flush()
				if first == nil || !strings.Contains(first.Error(), c.err) || c.name == "garbage" && !strings.Contains(first.Error(), "where a start code was expected") {
					t.Fatalf("size %d: error %v, want one with %q", size, first, c.err)
				}
				if !strings.HasPrefix(first.Error(), "ps: ") {
					t.Errorf("error %q does not say where it comes from", first)
				}
				// All frames come through whole but for those lost to the fault.
				intact := 0
				for _, f := range got {
					if slices.ContainsFunc(items, func(w item) bool {
						return w.video == f.Video && w.pts == f.PTS && bytes.Equal(w.data, f.Data)
					}) {
						intact++
					}
				}
				if intact != len(got) || len(got) != 2*len(items)-c.lost {
					t.Errorf("size %d: %d frames of %d, %d intact; stats %+v", size, len(got), 2*len(items), intact, d.Stats())
				}
			}
		})
	}
}

// A video PES without a length that never ends, and frames over MaxFrame,
// are dropped: memory stays bounded.
func TestOversize(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	items := fakeVideo(r, H264)
	packs := mux(&Muxer{Video: H264}, items)
	const max = 100_000
	for _, endless := range []bool{false, true} {
		var got []Frame
		d := Demuxer{MaxFrame: max, OnFrame: func(f Frame) { got = append(got, f) }}
		var errs int
		for _, p := range packs {
			if err := d.Write(p); err != nil {
				errs++
			}
			d.Flush()
		}
		if endless {
			d.Write(packHeader(nil, 0))
			d.Write([]byte{0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1})
			d.Write(nalu(r, 0, 0x65, 0x88))
			junk := nalu(r, 10_000)[4:]
			for range 1000 {
				if err := d.Write(junk); err != nil {
					errs++
				}
				if cap(d.vbuf) > 3*max {
					t.Fatalf("buffer grew to %d", cap(d.vbuf))
				}
			}
		}
		if endless {
			// All at once: the buffer stays bounded all the same.
			junk := join(packHeader(nil, 0), []byte{0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1},
				nalu(r, 0, 0x65, 0x88), bytes.Repeat(nalu(r, 10_000)[4:], 100))
			if err := d.Write(junk); err == nil {
				t.Error("no error for a megabyte of video without a frame start")
			}
			if cap(d.vbuf) > 3*max {
				t.Fatalf("buffer grew to %d", cap(d.vbuf))
			}
		}
		for _, f := range got {
			if len(f.Data) > max {
				t.Fatalf("a frame of %d bytes", len(f.Data))
			}
		}
		if len(got) != len(items)-1 || d.Stats().Oversize == 0 || errs == 0 {
			t.Errorf("endless %v: %d frames of %d; stats %+v, %d errors", endless, len(got), len(items), d.Stats(), errs)
		}
		// The frames after the big one come through.
		if got[len(got)-1].PTS != items[len(items)-1].pts {
			t.Errorf("the last frame is missing")
		}
	}
}

func TestPacketize(t *testing.T) {
	pack := make([]byte, 3001)
	for _, c := range []struct{ size, pieces int }{{1000, 4}, {3001, 1}, {5000, 1}, {1, 3001}, {0, 1}} {
		var out []byte
		n := 0
		Packetize(pack, c.size, func(piece []byte, last bool) {
			n++
			if last != (len(out)+len(piece) == len(pack)) || c.size > 0 && len(piece) > c.size {
				t.Errorf("size %d: piece %d of %d bytes, last %v", c.size, n, len(piece), last)
			}
			out = append(out, piece...)
		})
		if n != c.pieces || len(out) != len(pack) {
			t.Errorf("size %d: %d pieces, %d bytes", c.size, n, len(out))
		}
	}
	Packetize(nil, 10, func([]byte, bool) { t.Error("a piece of nothing") })
}

// The muxer's headers: marker bits, lengths, the PSM's CRC.
func TestMuxerHeaders(t *testing.T) {
	m := &Muxer{Video: H265, Audio: AAC}
	pack := m.WriteVideo(nil, nalu(rand.New(rand.NewPCG(9, 9)), 100, 0x26, 0x01, 0xAF), 0x1_2345_6789, 0x1_2345_6000, true)
	var ids []byte
	walk(t, pack, func(pkt []byte) {
		ids = append(ids, pkt[3])
		switch pkt[3] {
		case 0xBA:
			if pkt[4]&0xC4 != 0x44 || pkt[6]&0x04 == 0 || pkt[8]&0x04 == 0 || pkt[9]&1 == 0 || pkt[12]&3 != 3 {
				t.Errorf("pack header marker bits: % X", pkt)
			}
			scr := int64(pkt[4]>>3&7)<<30 | int64(pkt[4]&3)<<28 | int64(pkt[5])<<20 | int64(pkt[6]>>3)<<15 | int64(pkt[6]&3)<<13 | int64(pkt[7])<<5 | int64(pkt[8]>>3)
			if scr != 0x1_2345_6000 {
				t.Errorf("SCR %X", scr)
			}
		case 0xBC:
			if crc32MPEG(pkt) != 0 {
				t.Errorf("PSM CRC: % X", pkt)
			}
			if !bytes.Contains(pkt, []byte{byte(H265), 0xE0, 0, 0, byte(AAC), 0xC0, 0, 0}) {
				t.Errorf("PSM entries: % X", pkt)
			}
		case 0xE0:
			if pkt[7] != 0xC0 || pkt[8] != 10 || readTS(pkt[9:]) != 0x1_2345_6789 || readTS(pkt[14:]) != 0x1_2345_6000 || pkt[9]>>4 != 3 || pkt[14]>>4 != 1 {
				t.Errorf("PES header: % X", pkt[:19])
			}
		}
	})
	if !bytes.Equal(ids, []byte{0xBA, 0xBB, 0xBC, 0xE0}) {
		t.Errorf("packets % X", ids)
	}
	// Later pictures: no PSM, but when the codec changes (a new version).
	if p := m.WriteVideo(nil, []byte{0, 0, 0, 1, 2, 1, 0xD0}, 0, 0, false); bytes.Contains(p, []byte{0, 0, 1, 0xBC}) {
		t.Error("a PSM on a picture that is no keyframe")
	}
	m.Video = H264
	if p := m.WriteAudio(nil, []byte{0xFF, 0xF1}, 0); !bytes.Contains(p, []byte{0, 0, 1, 0xBC, 0, 18, 0xE1}) {
		t.Errorf("no PSM of version 1 when the codec changed: % X", p)
	}
	// An empty access unit still makes a pack with a PES.
	if p := m.WriteVideo(nil, nil, 0, 0, false); len(p) != 14+14 {
		t.Errorf("empty access unit: % X", p)
	}
}

func TestStreamTypeString(t *testing.T) {
	for st, want := range map[StreamType]string{H264: "H.264", H265: "H.265", AAC: "AAC", G711A: "G.711 A-law",
		G711U: "G.711 µ-law", SVAC: "SVAC", MPEG4Video: "MPEG-4 video", G7221: "G.722.1", G7231: "G.723.1",
		G729: "G.729", 0: "none", 0x42: "stream type 0x42"} {
		if st.String() != want {
			t.Errorf("%#x: %q, want %q", uint8(st), st.String(), want)
		}
	}
}

func TestGuessVideo(t *testing.T) {
	for _, c := range []struct {
		h    []byte
		want StreamType
	}{
		{[]byte{0x67, 0x42}, H264}, {[]byte{0x68, 0xCE}, H264}, {[]byte{0x65, 0x88}, H264}, {[]byte{0x41, 0x9A}, H264},
		{[]byte{0x09, 0xF0}, H264}, {[]byte{0x06, 0x05}, H264}, {[]byte{0x01, 0x9E}, H264},
		{[]byte{0x40, 0x01}, H265}, {[]byte{0x42, 0x01}, H265}, {[]byte{0x44, 0x01}, H265}, {[]byte{0x46, 0x01}, H265},
		{[]byte{0x26, 0x01}, H265}, {[]byte{0x28, 0x01}, H265}, {[]byte{0x2A, 0x01}, H265}, {[]byte{0x02, 0x01}, H265},
		{[]byte{0x4E, 0x01}, H265},
		{[]byte{0x08, 0x01}, 0}, // H.265 STSA_N, or an H.264 PPS with nal_ref_idc 0 (not allowed)
		{[]byte{0x00, 0x01}, 0}, {[]byte{0xBA, 0x44}, 0}, {[]byte{0x0C, 0x10}, 0},
	} {
		if got := guessVideo(c.h[0], c.h[1]); got != c.want {
			t.Errorf("% X: %v, want %v", c.h, got, c.want)
		}
	}
	for _, c := range []struct {
		b    []byte
		want StreamType
	}{
		{[]byte{0xFF, 0xF1, 0x60}, AAC}, {[]byte{0xFF, 0xF9, 0x60}, AAC}, {[]byte{0xFF, 0xFD, 0x94}, MPEG1Audio},
		{[]byte{0xFF, 0xF5, 0x84}, MPEG2Audio}, {[]byte{0xFF, 0xFF, 0xFF}, G711A}, {[]byte{0xD5, 0x55}, G711A}, {nil, G711A},
	} {
		if got := guessAudio(c.b); got != c.want {
			t.Errorf("% X: %v, want %v", c.b, got, c.want)
		}
	}
}

// A PSM that says H.264 of H.265 data (or the other way round) is
// overruled by the data.
func TestPSMWrongCodec(t *testing.T) {
	for _, c := range []struct{ says, is StreamType }{{H264, H265}, {H265, H264}} {
		r := rand.New(rand.NewPCG(13, uint64(c.is)))
		items := fakeVideo(r, c.is)
		packs := mux(&Muxer{Video: c.says}, items)
		for _, flush := range []bool{true, false} {
			var d Demuxer
			check(t, feed(t, &d, packs, 1400, flush), items, c.is, 0)
			if v, _ := d.Streams(); v != c.is {
				t.Errorf("PSM %v, data %v: Streams() = %v", c.says, c.is, v)
			}
		}
	}
}

// Video of another codec (SVAC, MPEG-4) is not split by NAL units: a
// frame ends at a new pack, a new PTS, or Flush.
func TestOtherVideoCodec(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 14))
	var items []item
	for i := range 6 {
		f := make([]byte, 500+r.IntN(100_000))
		for k := range f {
			f[k] = byte(1 + r.IntN(255))
		}
		items = append(items, item{video: true, data: f, pts: int64(i) * 3600, dts: int64(i) * 3600})
	}
	items = interleave(items, fakeAudio(r, G711U, 6))
	packs := mux(&Muxer{Video: SVAC, Audio: G711U}, items)
	for _, flush := range []bool{true, false} {
		var d Demuxer
		check(t, feed(t, &d, packs, 1400, flush), items, SVAC, G711U)
	}
	// Several packs of one frame, the later PES without a PTS: a pack
	// ends it all the same (as the devices that send such codecs do).
	var d Demuxer
	p := packHeader(nil, 0)
	p = append(p, pesPacket(0xE0, []byte{1, 2, 3}, 3600)...)
	p = append(p, pesPacket(0xE0, []byte{4, 5}, -1)...)
	p = append(p, packHeader(nil, 0)...)
	p = append(p, pesPacket(0xE0, []byte{6}, -1)...)
	got := feed(t, &d, [][]byte{p}, 0, false)
	if len(got) != 2 || !bytes.Equal(got[0].Data, []byte{1, 2, 3, 4, 5}) || !got[0].HasPTS || got[1].HasPTS {
		t.Errorf("frames %+v", got)
	}
}

// Packets that are not followed are skipped by their length: private
// streams, padding, a second video and audio stream, the program end. A
// stream the PSM does not list is dropped for one it lists (here the
// second video stream comes first).
func TestOtherPackets(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 15))
	items := interleave(fakeVideo(r, H264), fakeAudio(r, AAC, 20))
	other := func(id byte, n int) []byte {
		b := []byte{0, 0, 1, id, byte(n >> 8), byte(n)}
		for k := range n {
			// 00 00 01: start codes must not be looked for in them.
			b = append(b, byte(k%3/2))
		}
		return b
	}
	packs := rewrite(t, mux(&Muxer{Video: H264, Audio: AAC}, items), func(pkt []byte) []byte {
		switch pkt[3] {
		case 0xE0:
			return join(other(0xBD, 40), pesPacket(0xE1, nalu(r, 100, 0x65, 0x88), 1), pkt, other(0xBE, 300))
		case 0xC0:
			return join(pkt, pesPacket(0xC1, []byte{0xFF, 0xF1, 1, 2}, 5), other(0xBF, 0), other(0xF0, 3))
		}
		return pkt
	})
	packs = append(packs, []byte{0, 0, 1, 0xB9})
	var d Demuxer
	var got []Frame
	d.OnFrame = func(f Frame) { got = append(got, f) }
	for _, p := range packs {
		for piece := range slices.Chunk(p, 100) {
			if err := d.Write(piece); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The end code handed on the last picture.
	check(t, got, items, H264, AAC)
}

// The PSM is read before any PES: Streams knows the codecs at once.
func TestStreamsFromPSM(t *testing.T) {
	m := &Muxer{Video: H265, Audio: G711U}
	pack := m.WriteVideo(nil, []byte{0, 0, 0, 1, 0x26, 0x01, 0xAF, 1}, 0, 0, true)
	var d Demuxer
	d.Write(pack[:60]) // the pack header, system header and PSM
	if v, a := d.Streams(); v != H265 || a != G711U {
		t.Errorf("Streams() = %v, %v", v, a)
	}
}
