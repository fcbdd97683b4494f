package events

import (
	"errors"
	"slices"
	"strconv"
	"strings"
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

// maxRanges caps the runs of gaps an id carries, and maxGap (hub.go) the
// ids in them: ParsePosition takes no more. Past maxRanges the closest
// runs are merged (the ids between them are sent again on a resume, if
// asked for); past maxGap ids the position falls back to just below its
// lowest gap: a client that resumes from there is sent events again
// rather than miss one.
const maxRanges = 32

// capped is the position after last with gaps (ascending, distinct, each
// below last), within maxRanges runs and maxGap ids. Its Gaps never alias
// gaps.
func capped(last int64, gaps []int64) Position {
	if len(gaps) == 0 {
		return Position{Last: last}
	}
	type run struct{ lo, hi int64 }
	runs := make([]run, 0, 8)
	for _, id := range gaps {
		if n := len(runs); n > 0 && runs[n-1].hi+1 == id {
			runs[n-1].hi = id
			continue
		}
		runs = append(runs, run{id, id})
	}
	if len(runs) > maxRanges {
		// Merge across the smallest spaces between runs: keep the
		// maxRanges-1 widest spaces, fill in the others.
		spaces := make([]int64, len(runs)-1)
		for i := range spaces {
			spaces[i] = runs[i+1].lo - runs[i].hi
		}
		widest := slices.Clone(spaces)
		slices.Sort(widest)
		cut := widest[len(widest)-(maxRanges-1)] // spaces at least this wide stay (ties: the first ones)
		keep := maxRanges - 1
		for _, sp := range spaces {
			if sp > cut {
				keep--
			}
		}
		merged := runs[:1]
		for i, sp := range spaces {
			switch {
			case sp > cut:
			case sp == cut && keep > 0:
				keep--
			default:
				merged[len(merged)-1].hi = runs[i+1].hi
				continue
			}
			merged = append(merged, runs[i+1])
		}
		runs = merged
	}
	var n int64
	for _, r := range runs {
		n += r.hi - r.lo + 1
	}
	if n >= maxGap {
		return Position{Last: gaps[0] - 1}
	}
	out := make([]int64, 0, n)
	for _, r := range runs {
		for id := r.lo; id <= r.hi; id++ {
			out = append(out, id)
		}
	}
	return Position{Last: last, Gaps: out}
}

// gapList is a sorted set of ids: the gaps of a position being followed.
type gapList []int64

// add puts id in, keeping the order (ids past the end are appended).
func (g *gapList) add(id int64) {
	l := *g
	if n := len(l); n == 0 || l[n-1] < id {
		*g = append(l, id)
		return
	}
	if i, found := slices.BinarySearch(l, id); !found {
		*g = slices.Insert(l, i, id)
	}
}

// remove takes id out; it reports whether it was in.
func (g *gapList) remove(id int64) bool {
	i, found := slices.BinarySearch(*g, id)
	if found {
		*g = slices.Delete(*g, i, i+1)
	}
	return found
}

// has reports whether id is in.
func (g gapList) has(id int64) bool {
	_, found := slices.BinarySearch(g, id)
	return found
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
