package geo

import (
	"math"
	"strings"

	"gridwatch"
)

// CRS names the coordinate reference system of incoming coordinates. Grids,
// incidents and cameras are stored in WGS-84; the others are converted on the
// way in.
type CRS string

// The coordinate systems gridwatch accepts.
const (
	// CRSWGS84 is WGS-84 (EPSG:4326): GPS, OpenStreetMap, everything stored.
	CRSWGS84 CRS = "wgs84"
	// CRSGCJ02 is GCJ-02, the "Mars coordinates" of Amap (高德), Tencent and
	// most Chinese phone SDKs.
	CRSGCJ02 CRS = "gcj02"
	// CRSBD09 is BD-09, Baidu's further offset of GCJ-02.
	CRSBD09 CRS = "bd09"
)

// ParseCRS reads a crs parameter. The empty string means WGS-84; names are
// case-insensitive and the usual aliases ("epsg:4326", "wgs-84", "crs84",
// "gcj-02", "bd-09", "bd09ll") are accepted. Anything else is an EInvalid
// error whose details name the parameter and the allowed values.
func ParseCRS(s string) (CRS, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "wgs84", "wgs-84", "epsg:4326", "crs84", "ogc:crs84",
		"http://www.opengis.net/def/crs/ogc/1.3/crs84":
		return CRSWGS84, nil
	case "gcj02", "gcj-02":
		return CRSGCJ02, nil
	case "bd09", "bd-09", "bd09ll":
		return CRSBD09, nil
	}
	return "", gridwatch.Errorf(gridwatch.EInvalid, "unknown coordinate system %q: use wgs84, gcj02 or bd09", s).
		WithDetails(map[string]any{
			"param":   "crs",
			"value":   s,
			"allowed": []string{string(CRSWGS84), string(CRSGCJ02), string(CRSBD09)},
		})
}

// ToWGS84 converts a point given in c to WGS-84. WGS-84 and any value that is
// not one of the constants (ParseCRS never returns one) pass unchanged.
func (c CRS) ToWGS84(lon, lat float64) (float64, float64) {
	switch c {
	case CRSGCJ02:
		return GCJ02ToWGS84(lon, lat)
	case CRSBD09:
		return BD09ToWGS84(lon, lat)
	}
	return lon, lat
}

// Parameters of the GCJ-02 offset: the Krasovsky 1940 ellipsoid (semi-major
// axis and first eccentricity squared) and the bounding rectangle outside
// which GCJ-02 equals WGS-84.
const (
	gcjA  = 6378245.0
	gcjEE = 0.00669342162296594323

	chinaMinLon = 72.004
	chinaMaxLon = 137.8347
	chinaMinLat = 0.8293
	chinaMaxLat = 55.8271
)

// bdXPi is the angular factor of the BD-09 transform.
const bdXPi = math.Pi * 3000.0 / 180.0

// inChina reports whether GCJ-02 offsets the point: the customary rectangle
// test every published implementation uses (it also offsets a few
// neighbouring countries; that is part of the definition).
func inChina(lon, lat float64) bool {
	return lon >= chinaMinLon && lon <= chinaMaxLon && lat >= chinaMinLat && lat <= chinaMaxLat
}

// gcjOffset returns the GCJ-02 offset in degrees at a WGS-84 point.
func gcjOffset(lon, lat float64) (dlon, dlat float64) {
	x, y := lon-105.0, lat-35.0
	ty := -100.0 + 2.0*x + 3.0*y + 0.2*y*y + 0.1*x*y + 0.2*math.Sqrt(math.Abs(x))
	ty += (20.0*math.Sin(6.0*x*math.Pi) + 20.0*math.Sin(2.0*x*math.Pi)) * 2.0 / 3.0
	ty += (20.0*math.Sin(y*math.Pi) + 40.0*math.Sin(y/3.0*math.Pi)) * 2.0 / 3.0
	ty += (160.0*math.Sin(y/12.0*math.Pi) + 320*math.Sin(y*math.Pi/30.0)) * 2.0 / 3.0

	tx := 300.0 + x + 2.0*y + 0.1*x*x + 0.1*x*y + 0.1*math.Sqrt(math.Abs(x))
	tx += (20.0*math.Sin(6.0*x*math.Pi) + 20.0*math.Sin(2.0*x*math.Pi)) * 2.0 / 3.0
	tx += (20.0*math.Sin(x*math.Pi) + 40.0*math.Sin(x/3.0*math.Pi)) * 2.0 / 3.0
	tx += (150.0*math.Sin(x/12.0*math.Pi) + 300.0*math.Sin(x/30.0*math.Pi)) * 2.0 / 3.0

	radLat := lat / 180.0 * math.Pi
	magic := math.Sin(radLat)
	magic = 1 - gcjEE*magic*magic
	sqrtMagic := math.Sqrt(magic)
	dlat = (ty * 180.0) / ((gcjA * (1 - gcjEE)) / (magic * sqrtMagic) * math.Pi)
	dlon = (tx * 180.0) / (gcjA / sqrtMagic * math.Cos(radLat) * math.Pi)
	return dlon, dlat
}

// WGS84ToGCJ02 converts a WGS-84 point to GCJ-02. Points outside China's
// rectangle are returned unchanged.
func WGS84ToGCJ02(lon, lat float64) (float64, float64) {
	if !inChina(lon, lat) {
		return lon, lat
	}
	dlon, dlat := gcjOffset(lon, lat)
	return lon + dlon, lat + dlat
}

// inverseTolerance is the residual, in degrees, at which the iterative
// inverses stop: far below the 1e-9° (0.1 mm) they promise and a few ulps
// above float64 resolution at these magnitudes.
const inverseTolerance = 1e-12

// maxInverseSteps bounds the iterations of the inverses. Both forward
// transforms are the identity plus an offset that changes by less than 1% per
// degree, so the fixed-point iteration gains two or more digits a step and
// converges in four or five.
const maxInverseSteps = 30

// GCJ02ToWGS84 converts a GCJ-02 point to WGS-84: the point whose
// WGS84ToGCJ02 is the input, to within 1e-9° (in practice 1e-12°), found by
// fixed-point iteration rather than the common one-step approximation, which
// is off by up to a metre or two. Points outside China's rectangle are
// returned unchanged.
func GCJ02ToWGS84(lon, lat float64) (float64, float64) {
	if !inChina(lon, lat) {
		return lon, lat
	}
	wlon, wlat := lon, lat
	for range maxInverseSteps {
		glon, glat := WGS84ToGCJ02(wlon, wlat)
		elon, elat := glon-lon, glat-lat
		wlon -= elon
		wlat -= elat
		if math.Abs(elon) < inverseTolerance && math.Abs(elat) < inverseTolerance {
			break
		}
	}
	return wlon, wlat
}

// GCJ02ToBD09 converts a GCJ-02 point to BD-09 with Baidu's published
// transform.
func GCJ02ToBD09(lon, lat float64) (float64, float64) {
	z := math.Sqrt(lon*lon+lat*lat) + 0.00002*math.Sin(lat*bdXPi)
	theta := math.Atan2(lat, lon) + 0.000003*math.Cos(lon*bdXPi)
	return z*math.Cos(theta) + 0.0065, z*math.Sin(theta) + 0.006
}

// BD09ToGCJ02 converts a BD-09 point to GCJ-02. It starts from the customary
// closed-form approximation and refines it until GCJ02ToBD09 of the result
// matches the input to within 1e-12°, so BD-09 → GCJ-02 → BD-09 is exact to
// float precision.
func BD09ToGCJ02(lon, lat float64) (float64, float64) {
	x, y := lon-0.0065, lat-0.006
	z := math.Sqrt(x*x+y*y) - 0.00002*math.Sin(y*bdXPi)
	theta := math.Atan2(y, x) - 0.000003*math.Cos(x*bdXPi)
	glon, glat := z*math.Cos(theta), z*math.Sin(theta)
	for range maxInverseSteps {
		blon, blat := GCJ02ToBD09(glon, glat)
		elon, elat := blon-lon, blat-lat
		if math.Abs(elon) < inverseTolerance && math.Abs(elat) < inverseTolerance {
			break
		}
		glon -= elon
		glat -= elat
	}
	return glon, glat
}

// BD09ToWGS84 converts a BD-09 point to WGS-84 (via GCJ-02).
func BD09ToWGS84(lon, lat float64) (float64, float64) {
	return GCJ02ToWGS84(BD09ToGCJ02(lon, lat))
}

// WGS84ToBD09 converts a WGS-84 point to BD-09 (via GCJ-02). Outside China
// the GCJ-02 step is the identity but Baidu's own shift still applies, as it
// does in Baidu's API.
func WGS84ToBD09(lon, lat float64) (float64, float64) {
	return GCJ02ToBD09(WGS84ToGCJ02(lon, lat))
}
