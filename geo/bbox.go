package geo

import (
	"strconv"
	"strings"

	"gridwatch"
	"gridwatch/internal/database"
)

// BBox is a lon/lat bounding box in WGS-84.
type BBox struct {
	MinLon, MinLat, MaxLon, MaxLat float64
}

// Where keeps, in w, the rows whose geometry col (in 4326) meets b's box,
// through col's spatial index; a nil b adds nothing.
func (b *BBox) Where(w *database.Where, col string) {
	if b != nil {
		w.Add(col+" && ST_MakeEnvelope(?, ?, ?, ?, 4326)", b.MinLon, b.MinLat, b.MaxLon, b.MaxLat)
	}
}

// ParseBBox reads "minLon,minLat,maxLon,maxLat" (as in GeoJSON and OGC API
// Features; a six-number box with heights is accepted and its heights
// ignored). Errors name the parameter and what is wrong.
func ParseBBox(s string) (BBox, error) {
	bad := func(format string, args ...any) (BBox, error) {
		return BBox{}, gridwatch.Errorf(gridwatch.EInvalid, "bbox: "+format, args...).
			WithDetails(map[string]any{"param": "bbox", "value": s})
	}
	parts := strings.Split(s, ",")
	if len(parts) != 4 && len(parts) != 6 {
		return bad("want 4 numbers minLon,minLat,maxLon,maxLat; got %d values", len(parts))
	}
	v := make([]float64, len(parts))
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || f != f {
			return bad("value %d (%q) is not a number", i+1, p)
		}
		v[i] = f
	}
	b := BBox{v[0], v[1], v[2], v[3]}
	if len(v) == 6 {
		b = BBox{v[0], v[1], v[3], v[4]}
	}
	for _, c := range [][2]float64{{b.MinLon, b.MinLat}, {b.MaxLon, b.MaxLat}} {
		if msg := rangeProblem(c[0], c[1]); msg != "" {
			return bad("corner %s", msg)
		}
	}
	if b.MinLat > b.MaxLat {
		return bad("minLat %v is greater than maxLat %v", b.MinLat, b.MaxLat)
	}
	if b.MinLon > b.MaxLon {
		return bad("minLon %v is greater than maxLon %v (boxes across the antimeridian are not supported)", b.MinLon, b.MaxLon)
	}
	return b, nil
}

// CheckLonLat returns an error naming what is wrong with a WGS-84 (or
// GCJ-02/BD-09) point, or nil.
func CheckLonLat(lon, lat float64) error {
	if msg := rangeProblem(lon, lat); msg != "" {
		return gridwatch.Errorf(gridwatch.EInvalid, "point %s", msg).
			WithDetails(map[string]any{"lon": lon, "lat": lat})
	}
	return nil
}
