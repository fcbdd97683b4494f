package patrol

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"gridwatch"
	"gridwatch/geo"
)

func TestPatrolParsePoints(t *testing.T) {
	good := `{"at":"2026-11-26T09:30:00.1234567+08:00","lon":113.65,"lat":34.76,"accuracy_m":12.5}`
	pts, err := ParsePoints([]byte(`{"points":[`+good+`,{"at":"2026-11-26T01:31:00Z","lon":-180,"lat":90,"accuracy_m":null}]}`), geo.CRSWGS84)
	if err != nil || len(pts) != 2 {
		t.Fatalf("%v %v", pts, err)
	}
	if want := time.Date(2026, 11, 26, 1, 30, 0, 123456000, time.UTC); !pts[0].At.Equal(want) || pts[0].Lon != 113.65 || *pts[0].AccuracyM != 12.5 {
		t.Errorf("point 0: %+v, want at %v (to the microsecond)", pts[0], want)
	}
	if pts[1].AccuracyM != nil || pts[1].Lon != -180 || pts[1].Lat != 90 {
		t.Errorf("point 1: %+v", pts[1])
	}
	// GCJ-02 (phone SDKs) is converted: the offset is some hundreds of metres.
	gcj, err := ParsePoints([]byte(`{"points":[`+good+`]}`), geo.CRSGCJ02)
	if err != nil || gcj[0].Lon == 113.65 || math.Abs(gcj[0].Lon-113.65) > 0.01 {
		t.Errorf("gcj02: %+v %v", gcj, err)
	}

	many := `{"points":[` + strings.Repeat(good+",", MaxBatch) + good + `]}`
	for _, tc := range []struct {
		name, body, code, field string
		index                   int // -1: none
	}{
		{"not JSON", `{"points":[`, gridwatch.EInvalidJSON, "", -1},
		{"two documents", `{"points":[` + good + `]} {}`, gridwatch.EInvalidJSON, "", -1},
		{"an array", `[]`, gridwatch.EInvalid, "body", -1},
		{"no points", `{}`, gridwatch.EInvalid, "points", -1},
		{"empty", `{"points":[]}`, gridwatch.EInvalid, "points", -1},
		{"too many", many, gridwatch.ETooLarge, "points", -1},
		{"unknown field", `{"points":[],"speed":1}`, gridwatch.EInvalid, "speed", -1},
		{"points not a list", `{"points":{}}`, gridwatch.EInvalid, "points", -1},
		{"a point not an object", `{"points":[` + good + `,3]}`, gridwatch.EInvalid, "points[1]", 1},
		{"a point's unknown field", `{"points":[` + good + `,{"at":"2026-11-26T09:30:00Z","lon":1,"lat":1,"heading":3}]}`, gridwatch.EInvalid, "points[1].heading", 1},
		{"no at", `{"points":[{"lon":1,"lat":2}]}`, gridwatch.EInvalid, "points[0].at", 0},
		{"bad at", `{"points":[` + good + `,` + good + `,{"at":"yesterday","lon":1,"lat":2}]}`, gridwatch.EInvalid, "points[2].at", 2},
		{"at without zone", `{"points":[{"at":"2026-11-26T09:30:00","lon":1,"lat":2}]}`, gridwatch.EInvalid, "points[0].at", 0},
		{"at a number", `{"points":[{"at":5,"lon":1,"lat":2}]}`, gridwatch.EInvalid, "points[0].at", 0},
		{"year 1", `{"points":[{"at":"0001-01-01T00:00:00Z","lon":1,"lat":2}]}`, gridwatch.EInvalid, "points[0].at", 0},
		{"no lon", `{"points":[{"at":"2026-11-26T09:30:00Z","lat":2}]}`, gridwatch.EInvalid, "points[0].lon", 0},
		{"lon a string", `{"points":[{"at":"2026-11-26T09:30:00Z","lon":"1","lat":2}]}`, gridwatch.EInvalid, "points[0].lon", 0},
		{"lon out of range", `{"points":[` + good + `,{"at":"2026-11-26T09:30:00Z","lon":180.5,"lat":2}]}`, gridwatch.EInvalid, "points[1].lon", 1},
		{"lon overflows", `{"points":[{"at":"2026-11-26T09:30:00Z","lon":1e999,"lat":2}]}`, gridwatch.EInvalid, "points[0].lon", 0},
		{"lat out of range", `{"points":[{"at":"2026-11-26T09:30:00Z","lon":1,"lat":-90.01}]}`, gridwatch.EInvalid, "points[0].lat", 0},
		{"lat null", `{"points":[{"at":"2026-11-26T09:30:00Z","lon":1,"lat":null}]}`, gridwatch.EInvalid, "points[0].lat", 0},
		{"negative accuracy", `{"points":[{"at":"2026-11-26T09:30:00Z","lon":1,"lat":2,"accuracy_m":-1}]}`, gridwatch.EInvalid, "points[0].accuracy_m", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePoints([]byte(tc.body), geo.CRSWGS84)
			d := gridwatch.ErrorDetails(err)
			if gridwatch.ErrorCode(err) != tc.code {
				t.Fatalf("%v, want code %s", err, tc.code)
			}
			if tc.field != "" && d["field"] != tc.field {
				t.Errorf("details %v, want field %s", d, tc.field)
			}
			if idx, ok := d["index"]; (tc.index >= 0) != ok || (ok && idx != tc.index) {
				t.Errorf("details %v, want index %d", d, tc.index)
			}
			if msg := gridwatch.ErrorMessage(err); tc.field != "" && tc.field != "body" && !strings.Contains(msg, tc.field) {
				t.Errorf("message %q does not name %s", msg, tc.field)
			}
		})
	}
}

// FuzzPatrolPoints: whatever a phone sends, the parser answers a list of
// valid points or an error a client can act on, never a panic.
func FuzzPatrolPoints(f *testing.F) {
	for _, s := range []string{
		`{"points":[{"at":"2026-11-26T09:30:00+08:00","lon":113.65,"lat":34.76,"accuracy_m":12.5}]}`,
		`{"points":[{"at":"2026-11-26T09:30:00.999999999Z","lon":-180,"lat":-90,"accuracy_m":null},{"at":"2026-11-26T09:30:01Z","lon":180,"lat":90}]}`,
		`{"points":[{"at":"2026-11-26T09:30:00Z","lon":1e999,"lat":2}]}`,
		`{"points":[{"at":"2026-11-26T09:30:00Z","lon":1,"lat":2,"x":1}]}`,
		`{"points":[null,[],"",1]}`,
		`{"points":null}`,
		`{"points":[{"at":"2026-13-40T25:61:61Z","lon":-0,"lat":0e0}]}`,
		`{"points":[{"at":"2026-11-26T09:30:00Z","lon":1,"lat":2}]}{"points":[]}`,
		"{\"points\":[{\"at\":\"\u0000\",\"lon\":1,\"lat\":2}]}",
		`[`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, gcj bool) {
		crs := geo.CRSWGS84
		if gcj {
			crs = geo.CRSGCJ02
		}
		pts, err := ParsePoints(body, crs)
		if err != nil {
			code := gridwatch.ErrorCode(err)
			if code != gridwatch.EInvalid && code != gridwatch.EInvalidJSON && code != gridwatch.ETooLarge {
				t.Fatalf("error code %s (%v), want invalid, invalid_json or too_large", code, err)
			}
			if pts != nil {
				t.Fatalf("points %v beside an error", pts)
			}
			if d := gridwatch.ErrorDetails(err); d != nil {
				if idx, ok := d["index"].(int); ok && !strings.HasPrefix(fmt.Sprint(d["field"]), fmt.Sprintf("points[%d]", idx)) {
					t.Fatalf("details %v: the field is not the indexed point's", d)
				}
			}
			return
		}
		if len(pts) == 0 || len(pts) > MaxBatch {
			t.Fatalf("%d points", len(pts))
		}
		for i, p := range pts {
			finite := !math.IsNaN(p.Lon) && !math.IsInf(p.Lon, 0) && !math.IsNaN(p.Lat) && !math.IsInf(p.Lat, 0)
			// GCJ-02 shifts a point by under a kilometre: the range stays
			// within a hundredth of a degree of the WGS-84 bounds.
			if !finite || math.Abs(p.Lon) > 180.01 || math.Abs(p.Lat) > 90.01 {
				t.Fatalf("point %d: %+v out of range", i, p)
			}
			if p.At.Year() < 2000 || p.At.Year() > 9000 || p.At.Nanosecond()%1000 != 0 {
				t.Fatalf("point %d: time %v", i, p.At)
			}
			if a := p.AccuracyM; a != nil && (math.IsNaN(*a) || *a < 0 || *a > 1e6) {
				t.Fatalf("point %d: accuracy %v", i, *a)
			}
		}
	})
}
