package events

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
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

// TestPositionCapped: past maxRanges runs of gaps the closest runs merge
// (ids between them asked for again on a resume: sent twice, none missed);
// past maxGap ids the position falls back to just below the lowest gap.
func TestPositionCapped(t *testing.T) {
	var gaps []int64
	for i := range int64(maxRanges) {
		gaps = append(gaps, 100+3*i) // 32 runs, 2 ids apart
	}
	pos := capped(500, gaps)
	if pos.Last != 500 || !slices.Equal(pos.Gaps, gaps) {
		t.Fatalf("%d runs: %s, want all of them", maxRanges, pos)
	}
	more := append(slices.Clone(gaps), 195, 197) // 193, 195, 197: one id apart, the closest
	pos = capped(500, more)
	if pos.Last != 500 || len(pos.Gaps) != maxRanges+4 || !slices.Contains(pos.Gaps, 194) || !slices.Contains(pos.Gaps, 196) {
		t.Fatalf("%d runs: %s, want the closest merged (194 and 196 filled in)", maxRanges+2, pos)
	}
	if _, err := ParsePosition(pos.String()); err != nil {
		t.Fatalf("%s does not parse: %v", pos, err)
	}
	var many []int64
	for i := range int64(maxGap) {
		many = append(many, 2000+i)
	}
	if pos := capped(5000, many); pos.Last != 1999 || len(pos.Gaps) != 0 {
		t.Fatalf("%d gaps: %s, want 1999 (below the lowest gap)", maxGap, pos)
	}
}

// FuzzCapped: whatever gaps a hub holds, the id it sends parses back to
// the same position, and names every gap (or falls back below them all).
func FuzzCapped(f *testing.F) {
	f.Add(int64(500), []byte{1, 2, 3, 7, 9, 200})
	f.Add(int64(5000), bytes.Repeat([]byte{2}, 600))
	f.Fuzz(func(t *testing.T, last int64, steps []byte) {
		if last < 2 || last > 1<<40 {
			return
		}
		var gaps []int64
		for id := int64(1); len(steps) > 0; steps = steps[1:] {
			id += int64(steps[0]) + 1
			if id >= last {
				break
			}
			gaps = append(gaps, id)
		}
		pos := capped(last, gaps)
		back, err := ParsePosition(pos.String())
		if err != nil || back.Last != pos.Last || !slices.Equal(back.Gaps, pos.Gaps) {
			t.Fatalf("%s → %q → %v %v", pos, pos.String(), back, err)
		}
		if len(pos.Gaps) == 0 && len(gaps) > 0 {
			if pos.Last >= gaps[0] {
				t.Fatalf("fallback %s not below the lowest gap %d", pos, gaps[0])
			}
			return
		}
		for _, g := range gaps {
			if !slices.Contains(pos.Gaps, g) {
				t.Fatalf("%s lost gap %d", pos, g)
			}
		}
	})
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
