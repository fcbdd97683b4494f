package stream_test

import (
	"bytes"
	"regexp"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	"gridwatch/camera/camsim"
	"gridwatch/camera/stream"
)

// An H.265 stream's parameters: the sets, the size, the RFC 6381 string a
// browser's isTypeSupported takes, keyframes by NAL type and an init
// segment whose sample entry is hvc1 with the three sets.
func TestH265Params(t *testing.T) {
	aus, err := camsim.ClipAccessUnits(camsim.ClipH265)
	if err != nil {
		t.Fatal(err)
	}
	key := aus[0]
	p, err := stream.NewH265Params(key[0], key[1], key[2])
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind != stream.H265 || p.Width != 640 || p.Height != 360 {
		t.Errorf("params %v %dx%d", p.Kind, p.Width, p.Height)
	}
	// x265's Main profile: profile 1, compatible with Main and Main 10
	// (flags 1 and 2: 0x6), main tier, level 3 (90) or so, progressive
	// and frame-only (constraint byte 0x90 or 0xB0).
	if !regexp.MustCompile(`^hvc1\.1\.6\.L\d+\.[0-9A-F]{2}$`).MatchString(p.Codec) {
		t.Errorf("codec string %q", p.Codec)
	}
	if !stream.H265.IsKey(key) || stream.H265.IsKey(aus[1]) || stream.H264.IsKey(key) {
		t.Error("H.265 keyframes are not told by NAL type")
	}
	if got := p.Sets(); len(got) != 3 || !bytes.Equal(got[0], key[0]) {
		t.Errorf("sets %d", len(got))
	}
	init, err := stream.InitSegment(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(init)); err != nil {
		t.Fatal(err)
	}
	if c, ok := in.Tracks[0].Codec.(*fmp4.CodecH265); !ok || !bytes.Equal(c.VPS, key[0]) || !bytes.Equal(c.PPS, key[2]) {
		t.Fatalf("init codec %T", in.Tracks[0].Codec)
	}
	if _, err := stream.NewH265Params(key[1], key[0], key[2]); err == nil {
		t.Error("sets in the wrong order were taken")
	}
	h4, _ := camsim.ClipAccessUnits(camsim.ClipMain)
	q, err := stream.NewParams(h4[0][0], h4[0][1])
	if err != nil {
		t.Fatal(err)
	}
	if p.Equal(q) || !p.Equal(p) || q.Kind != stream.H264 {
		t.Error("Equal does not tell the codings apart")
	}
}
