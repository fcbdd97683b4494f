package api

import "testing"

// The audio descriptions a WHEP answer's headers carry: ASCII as it is,
// the rest (and '%') percent-encoded, as decodeURIComponent reads it.
func TestHeaderText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"G.711 A-law 8 kHz mono", "G.711 A-law 8 kHz mono"},
		{"G.711 µ-law 8 kHz mono", "G.711 %C2%B5-law 8 kHz mono"},
		{"100% AAC\r\n", "100%25 AAC%0D%0A"},
	} {
		if got := headerText(tc.in); got != tc.want {
			t.Errorf("headerText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
