package events

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Position is a subscriber's place in the feed, and what the id of each
// event it is sent says: it has had every event up to Last (that its filter
// takes) except Gaps, ids taken by transactions that had not committed yet.
// Ids are taken at insert and seen at commit, so a transaction that took id
// 10 may commit after the one that took 11 was sent; a client that
// reconnects after 11 must still be sent 10 when it commits. A gap that
// never commits (the transaction rolled back) costs one lookup on resume.
//
// Its text form is Last alone, or Last, a slash, and the gaps as ascending
// ids and ranges: "1052/1000-1031,1049".
type Position struct {
	Last int64
	Gaps []int64 // ascending, each below Last
}

// maxRanges caps the runs of gaps an id carries. Past it the position falls
// back to just below its lowest gap: a client that resumes from there is
// sent a few events again rather than miss one.
const maxRanges = 32

// positionOf is the position after last with the gaps in set (any order),
// within maxRanges.
func positionOf(last int64, set map[int64]time.Time) Position {
	if len(set) == 0 {
		return Position{Last: last}
	}
	gaps := make([]int64, 0, len(set))
	for id := range set {
		gaps = append(gaps, id)
	}
	return capped(last, gaps)
}

// capped sorts gaps and bounds them to maxRanges runs.
func capped(last int64, gaps []int64) Position {
	slices.Sort(gaps)
	gaps = slices.Compact(gaps)
	runs := 0
	for i, id := range gaps {
		if i == 0 || id != gaps[i-1]+1 {
			runs++
		}
	}
	if runs > maxRanges {
		return Position{Last: gaps[0] - 1}
	}
	return Position{Last: last, Gaps: gaps}
}

// String is the position's text form, the SSE id.
func (p Position) String() string {
	s := strconv.FormatInt(p.Last, 10)
	if len(p.Gaps) == 0 {
		return s
	}
	var b strings.Builder
	b.WriteString(s)
	b.WriteByte('/')
	for i := 0; i < len(p.Gaps); {
		j := i
		for j+1 < len(p.Gaps) && p.Gaps[j+1] == p.Gaps[j]+1 {
			j++
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(p.Gaps[i], 10))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.FormatInt(p.Gaps[j], 10))
		}
		i = j + 1
	}
	return b.String()
}

// maxGapText bounds the text ParsePosition reads: a header, not a payload.
const maxGapText = 4096

// ParsePosition reads a position's text form (a Last-Event-ID). A bare id,
// the form older servers sent, is a position with no gaps.
func ParsePosition(s string) (Position, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxGapText {
		return Position{}, errors.New("too long")
	}
	head, tail, hasGaps := strings.Cut(s, "/")
	last, err := strconv.ParseInt(head, 10, 64)
	if err != nil || last < 0 {
		return Position{}, errors.New("want an event id")
	}
	p := Position{Last: last}
	if !hasGaps {
		return p, nil
	}
	runs := strings.Split(tail, ",")
	if len(runs) > maxRanges {
		return Position{}, errors.New("too many gaps")
	}
	prev := int64(-1)
	for _, run := range runs {
		lo, hi, isRange := strings.Cut(run, "-")
		a, err := strconv.ParseInt(lo, 10, 64)
		if err != nil || a <= prev {
			return Position{}, errors.New("gaps: want ascending ids and ranges below the id")
		}
		b := a
		if isRange {
			if b, err = strconv.ParseInt(hi, 10, 64); err != nil || b <= a {
				return Position{}, errors.New("gaps: want ascending ids and ranges below the id")
			}
		}
		if b >= last || b-a >= maxGap || len(p.Gaps)+int(b-a) >= maxGap {
			return Position{}, errors.New("gaps: want ascending ids and ranges below the id")
		}
		for id := a; id <= b; id++ {
			p.Gaps = append(p.Gaps, id)
		}
		prev = b
	}
	return p, nil
}
