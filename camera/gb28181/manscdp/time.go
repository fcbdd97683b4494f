package manscdp

import (
	"fmt"
	"strings"
	"time"
)

// TimeLayout is how the standard writes times: local time, no zone.
const TimeLayout = "2006-01-02T15:04:05"

// ParseTime reads a MANSCDP time: TimeLayout in loc (time.Local when
// nil), with optional fractional seconds and, as some devices send it, a
// space for the T; or RFC 3339 with its own offset.
func ParseTime(s string, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if loc == nil {
		loc = time.Local
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(TimeLayout, s, loc); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02 15:04:05", s, loc); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("manscdp: time %q is not %s or RFC 3339", s, TimeLayout)
}

// FormatTime writes t as the standard does: TimeLayout in loc
// (time.Local when nil), whole seconds.
func FormatTime(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.Local
	}
	return t.In(loc).Format(TimeLayout)
}
