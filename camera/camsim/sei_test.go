package camsim

import (
	"bytes"
	"testing"
	"time"

	"gridwatch/camera/stream"
)

// A stamp reads back as it was written, for both codings, including times
// whose bytes need emulation prevention (00 00 0x).
func TestSEIStamp(t *testing.T) {
	for _, kind := range []stream.Kind{stream.H264, stream.H265} {
		for _, at := range []time.Time{time.Unix(1765000000, 123456789), time.Unix(0, 0x0000000300000001), time.Unix(0, 0)} {
			n := stampSEI(kind, at)
			if bytes.Contains(n, []byte{0, 0, 0}) || bytes.Contains(n, []byte{0, 0, 1}) || bytes.Contains(n, []byte{0, 0, 2}) {
				t.Fatalf("%v %v: a start-code pattern in the NAL unit % x", kind, at, n)
			}
			au := withSEI(kind, [][]byte{{0x67}, {0x68}, {0x65, 1}}, at)
			got, ok := SEITime(kind, au)
			if !ok || !got.Equal(at) {
				t.Errorf("%v: stamped %v, read %v (%v)", kind, at, got, ok)
			}
		}
		if _, ok := SEITime(kind, [][]byte{{0x65, 1, 2}}); ok {
			t.Errorf("%v: a time read from a picture without the stamp", kind)
		}
	}
}
