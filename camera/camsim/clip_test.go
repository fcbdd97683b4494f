package camsim

import (
	"slices"
	"testing"

	"gridwatch/camera/stream"
)

func TestClips(t *testing.T) {
	specs := clipSpecs()
	tests := []struct {
		name       string
		spec       clipSpec
		wantW      int
		wantH      int
		wantSlices int
	}{
		{"main", specs[0], 640, 360, 1},
		{"sub", specs[1], 320, 180, 1},
		{"slices", specs[2], 640, 360, 4},
		{"slices32", specs[3], 640, 360, 32},
		{"h265", specs[4], 640, 360, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := clipFiles.ReadFile(tt.spec.file)
			if err != nil {
				t.Fatal(err)
			}
			if len(data) >= 300<<10 {
				t.Errorf("clip is %d bytes, want < 300 KiB", len(data))
			}
			c, err := parseClip(tt.spec.file, data)
			if err != nil {
				t.Fatalf("parseClip: %v", err)
			}
			if c.width != tt.wantW || c.height != tt.wantH {
				t.Errorf("size = %dx%d, want %dx%d", c.width, c.height, tt.wantW, tt.wantH)
			}
			if len(c.aus) != 100 {
				t.Fatalf("access units = %d, want 100", len(c.aus))
			}
			var idrs []int
			for i, au := range c.aus {
				slicesN := 0
				role := h264Units
				if c.kind == stream.H265 {
					role = h265Units
				}
				for _, n := range au {
					switch role(n) {
					case roleSlice, roleNewSlice:
						slicesN++
					case roleDelim:
						t.Errorf("access unit %d keeps an AUD", i)
					}
				}
				if c.kind.IsKey(au) && !slices.Contains(idrs, i) {
					idrs = append(idrs, i)
				}
				if slicesN != tt.wantSlices {
					t.Errorf("access unit %d: %d slices, want %d", i, slicesN, tt.wantSlices)
				}
			}
			if want := []int{0, 25, 50, 75}; !slices.Equal(idrs, want) {
				t.Errorf("IDRs at %v, want %v", idrs, want)
			}
			want := []string{"sps", "pps"}
			if c.kind == stream.H265 {
				want = []string{"vps", "sps", "pps"}
			}
			for _, i := range idrs {
				var got []string
				for _, n := range c.aus[i][:len(want)] {
					got = append(got, c.kind.ParamSet(n))
				}
				if !slices.Equal(got, want) {
					t.Errorf("access unit %d starts with %v, want %v", i, got, want)
				}
			}
			if err := c.check(tt.spec); err != nil {
				t.Errorf("check: %v", err)
			}
		})
	}
}

func TestSplitAccessUnits(t *testing.T) {
	// NAL units by type; byte 1 has bit 7 set for first_mb_in_slice = 0.
	var (
		aud    = []byte{0x09, 0xf0}
		sps    = []byte{0x67, 0x42}
		pps    = []byte{0x68, 0xce}
		sei    = []byte{0x06, 0x05}
		idr0   = []byte{0x65, 0x88} // IDR, first_mb 0
		idrN   = []byte{0x65, 0x40} // IDR, first_mb != 0
		p0     = []byte{0x41, 0x9a} // non-IDR, first_mb 0
		pN     = []byte{0x41, 0x20} // non-IDR, first_mb != 0
		filler = []byte{0x0c, 0xff}
	)
	tests := []struct {
		name  string
		in    [][]byte
		sizes []int // NAL units per access unit
	}{
		{"aud delimited", [][]byte{aud, sps, pps, idr0, aud, p0, aud, p0}, []int{3, 1, 1}},
		{"no aud, one slice", [][]byte{sps, pps, idr0, p0, p0, sps, pps, idr0}, []int{3, 1, 1, 3}},
		{"no aud, multi slice", [][]byte{sps, pps, idr0, idrN, idrN, p0, pN, pN}, []int{5, 3}},
		{"sei starts an au", [][]byte{idr0, sei, p0, p0}, []int{1, 2, 1}},
		{"filler dropped", [][]byte{idr0, filler, p0}, []int{1, 1}},
		{"empty", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := splitAccessUnits(tt.in, h264Units)
			var sizes []int
			for _, au := range got {
				sizes = append(sizes, len(au))
			}
			if !slices.Equal(sizes, tt.sizes) {
				t.Errorf("access unit sizes = %v, want %v", sizes, tt.sizes)
			}
		})
	}
}
