package ogc

import (
	"math"
	"net/url"
	"testing"
)

// FuzzOGCParams feeds the OGC API Features query parsers arbitrary bbox,
// bbox-crs, datetime and limit values: none may panic, and what they
// accept must be usable (a box within the globe and in order, an interval
// in order, a limit in range).
func FuzzOGCParams(f *testing.F) {
	for _, seed := range []struct{ bbox, bboxCRS, datetime, limit string }{
		{"113.6,34.7,113.7,34.8", "", "2026-11-26T08:00:00+08:00", "10"},
		{"34.7,113.6,34.8,113.7", "http://www.opengis.net/def/crs/EPSG/0/4326", "2026-11-20T00:00:00Z/2026-11-24T00:00:00Z", "10000"},
		{"12649732,4141239,12649955,4141511", "EPSG:3857", "../2026-11-24", "1"},
		{"-180,-90,180,90", "[EPSG:4490]", "2026-11-20/..", "100"},
		{"1,2,3,4,5,6", "OGC:CRS84", "/", "0"},
		{"NaN,1,2,3", "EPSG:9999", "a/b/c", "-1"},
		{"1e400,0,0,0", "", "2026-13-01T00:00:00Z", "10001"},
		{",,,", "", "0000-01-01T00:00:00Z/..", "1e3"},
		{"20037508.35,0,20037508.34,1", "EPSG:3857", "2026-11-24T00:00:00Z/2026-11-20T00:00:00Z", " 5"},
	} {
		f.Add(seed.bbox, seed.bboxCRS, seed.datetime, seed.limit)
	}
	f.Fuzz(func(t *testing.T, bbox, bboxCRS, datetime, limit string) {
		q := url.Values{}
		for k, v := range map[string]string{"bbox": bbox, "bbox-crs": bboxCRS, "datetime": datetime, "limit": limit} {
			if v != "" {
				q.Set(k, v)
			}
		}
		got, err := parseOGCQuery(q, []string{"level"})
		if err != nil {
			return
		}
		if got.limit < 1 || got.limit > ogcMaxLimit {
			t.Errorf("limit %q accepted as %d", limit, got.limit)
		}
		if b := got.bbox; b != nil {
			for _, v := range []float64{b.MinLon, b.MinLat, b.MaxLon, b.MaxLat} {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("bbox %q accepted as %+v", bbox, *b)
				}
			}
			if b.MinLon < -180 || b.MaxLon > 180 || b.MinLat < -90 || b.MaxLat > 90 || b.MinLon > b.MaxLon || b.MinLat > b.MaxLat {
				t.Errorf("bbox %q (%s) accepted as %+v", bbox, bboxCRS, *b)
			}
		} else if bbox != "" {
			t.Errorf("bbox %q accepted as none", bbox)
		}
		if !got.from.IsZero() && !got.until.IsZero() && got.from.After(got.until) {
			t.Errorf("datetime %q accepted as %v after %v", datetime, got.from, got.until)
		}
		// The crs of a box is one of those offered.
		if _, err := parseOGCCRS("bbox-crs", bboxCRS); err != nil {
			t.Errorf("bbox-crs %q refused alone but accepted in the query", bboxCRS)
		}
	})
}
