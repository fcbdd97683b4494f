package events

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestPositionText(t *testing.T) {
	for _, tc := range []struct {
		pos  Position
		text string
	}{
		{Position{Last: 7}, "7"},
		{Position{Last: 1052, Gaps: []int64{1000, 1001, 1002, 1049}}, "1052/1000-1002,1049"},
		{Position{Last: 9, Gaps: []int64{3, 5, 6}}, "9/3,5-6"},
	} {
		if got := tc.pos.String(); got != tc.text {
			t.Errorf("%v: %q, want %q", tc.pos, got, tc.text)
		}
		back, err := ParsePosition(tc.text)
		if err != nil || back.Last != tc.pos.Last || !slices.Equal(back.Gaps, tc.pos.Gaps) {
			t.Errorf("parse %q: %v %v, want %v", tc.text, back, err, tc.pos)
		}
	}
	for _, bad := range []string{"", "abc", "-1", "5/", "5/7", "5/5", "5/3,2", "5/2,2", "9/4-3", "9/1-", "9/a", "1/0-0", "99999/1-9000"} {
		if pos, err := ParsePosition(bad); err == nil {
			t.Errorf("parse %q: %v, want an error", bad, pos)
		}
	}
}

// TestPositionCapped: more runs of gaps than an id carries fall back to just
// below the lowest gap (events sent again, none missed).
func TestPositionCapped(t *testing.T) {
	set := map[int64]time.Time{}
	for i := range int64(maxRanges) {
		set[100+2*i] = time.Time{}
	}
	pos := positionOf(500, set)
	if pos.Last != 500 || len(pos.Gaps) != maxRanges {
		t.Fatalf("%d runs: %s, want all of them", maxRanges, pos)
	}
	set[99] = time.Time{} // adjacent to 100: still maxRanges runs
	if pos := positionOf(500, set); len(pos.Gaps) != maxRanges+1 {
		t.Fatalf("adjacent gap: %s, want it in the first run", pos)
	}
	set[50] = time.Time{}
	if pos := positionOf(500, set); pos.Last != 49 || len(pos.Gaps) != 0 {
		t.Fatalf("%d runs: %s, want 49 (below the lowest gap)", maxRanges+1, pos)
	}
}

func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{"7", "1052/1000-1002,1049", "9/3,5-6", "5/7", "1/0-0", fmt.Sprint(int64(1) << 62)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pos, err := ParsePosition(s)
		if err != nil {
			return
		}
		if pos.Last < 0 || len(pos.Gaps) >= maxGap {
			t.Fatalf("%q: %v", s, pos)
		}
		for i, g := range pos.Gaps {
			if g >= pos.Last || (i > 0 && g <= pos.Gaps[i-1]) {
				t.Fatalf("%q: gaps %v not ascending below %d", s, pos.Gaps, pos.Last)
			}
		}
		again, err := ParsePosition(pos.String())
		if err != nil || again.Last != pos.Last || !slices.Equal(again.Gaps, pos.Gaps) {
			t.Fatalf("%q → %q → %v %v", s, pos.String(), again, err)
		}
	})
}
