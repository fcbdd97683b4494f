package api

import (
	"fmt"
	"testing"
)

// FuzzContentRange: any header either parses to a range inside its total
// that prints back as itself, or is refused; never a panic.
func FuzzContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-0/1", "bytes 0-262143/1048576", "bytes 5-2/10", "bytes 0-9", "bytes -1-3/4",
		"bytes 00-01/02", "bytes 0-9/999999999999999", "items 0-1/2", "bytes 1-2/3/4", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		start, end, total, err := parseContentRange(h)
		if err != nil {
			return
		}
		if start < 0 || end < start || total <= end {
			t.Fatalf("%q parsed as %d-%d/%d", h, start, end, total)
		}
		var s, e, n int64
		if _, err := fmt.Sscanf(h, "bytes %d-%d/%d", &s, &e, &n); err != nil || s != start || e != end || n != total {
			t.Fatalf("%q parsed as %d-%d/%d, reads as %d-%d/%d", h, start, end, total, s, e, n)
		}
	})
}
