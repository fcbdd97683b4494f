package camsim

import (
	"bytes"
	"slices"
	"testing"
)

func TestOggPackets(t *testing.T) {
	packets := [][]byte{
		[]byte("first"),
		{},                                  // empty: a single 0 lacing value
		bytes.Repeat([]byte{1}, 255),        // exactly 255: 255 then 0
		bytes.Repeat([]byte{2}, 255*255+10), // over one page's 255 segments: continued
		[]byte("last"),
	}
	stream := oggStream(packets, []int64{0, 1, 2, 3, 4})
	got, err := oggPackets(stream)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got, packets, bytes.Equal) {
		t.Fatalf("round trip gave %d packets, want %d, or their bytes differ", len(got), len(packets))
	}

	corrupt := func(at int, b byte) []byte {
		s := bytes.Clone(stream)
		s[at] ^= b
		return s
	}
	firstPage := oggPageHeader + 1 + len("first")
	tests := []struct {
		name string
		data []byte
	}{
		{"bad CRC", corrupt(oggPageHeader+1, 1)}, // a byte of the first packet
		{"bad capture", corrupt(0, 1)},
		{"bad version", corrupt(4, 1)},
		{"cut short", stream[:len(stream)-1]},
		{"header cut short", stream[:firstPage+10]},
		{"page missing", append(bytes.Clone(stream[:firstPage]), stream[firstPage+oggPageHeader+1:]...)},
		{"other serial", corrupt(firstPage+14, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := oggPackets(tt.data); err == nil {
				t.Error("oggPackets = nil error, want one")
			}
		})
	}
}

func TestOggCRC(t *testing.T) {
	// Ogg's CRC is CRC-32/POSIX (cksum) without its final XOR, whose check
	// value over "123456789" is 0x765e7680.
	if got, want := oggCRC([]byte("123456789")), uint32(0x765e7680^0xffffffff); got != want {
		t.Errorf("oggCRC(123456789) = %08x, want %08x", got, want)
	}
}

func FuzzOggPackets(f *testing.F) {
	f.Add(oggStream([][]byte{[]byte("a"), bytes.Repeat([]byte{7}, 600)}, []int64{0, 1}))
	if data, err := audioFiles.ReadFile("clips/beep.opus"); err == nil {
		f.Add(data[:min(len(data), 4096)])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		packets, err := oggPackets(data)
		if err != nil {
			return
		}
		// What parses writes back to the same packets.
		granules := make([]int64, len(packets))
		again, err := oggPackets(oggStream(packets, granules))
		if err != nil || !slices.EqualFunc(again, packets, bytes.Equal) {
			t.Fatalf("packets do not survive a round trip: %v", err)
		}
	})
}
