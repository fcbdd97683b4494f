package geo

import (
	"errors"
	"math"
	"reflect"
	"testing"

	"gridwatch"
)

// near reports whether two points agree to within tol degrees on each axis.
func near(lon1, lat1, lon2, lat2, tol float64) bool {
	return math.Abs(lon1-lon2) <= tol && math.Abs(lat1-lat2) <= tol
}

// TestCRSForwardReference checks the forward transforms against values
// published by independent implementations of the same formulas.
func TestCRSForwardReference(t *testing.T) {
	tests := []struct {
		name     string
		fn       func(lon, lat float64) (float64, float64)
		lon, lat float64
		wantLon  float64
		wantLat  float64
		tol      float64
	}{
		// wandergis/coordtransform, test/app.js ("//result" block) and its
		// README; the same numbers are asserted in dromara/hutool
		// CoordinateUtilTest.wgs84ToGcj02Test / gcj02ToBd09Test.
		{"beijing wgs84 to gcj02 (coordtransform)", WGS84ToGCJ02, 116.404, 39.915, 116.41024449916938, 39.91640428150164, 1e-12},
		{"beijing gcj02 to bd09 (coordtransform)", GCJ02ToBD09, 116.404, 39.915, 116.41036949371029, 39.92133699351022, 1e-12},
		// googollee/eviltransform, go/transform_test.go (compared there to
		// five decimals; they print the full values).
		{"shanghai wgs84 to gcj02 (eviltransform)", WGS84ToGCJ02, 121.5272106, 31.1774276, 121.531541859215, 31.17530398364597, 1e-12},
		{"shenzhen wgs84 to gcj02 (eviltransform)", WGS84ToGCJ02, 113.912316, 22.543847, 113.9171764808363, 22.540796131694766, 1e-12},
		{"beijing wgs84 to gcj02 (eviltransform)", WGS84ToGCJ02, 116.377817, 39.911954, 116.38404722455657, 39.91334545536069, 1e-12},
		// Tiananmen: devkitlab.com/en/tools/coordinate-converter default
		// example (WGS84 116.397428, 39.90923; shown to 8 decimals).
		{"tiananmen wgs84 to gcj02 (devkitlab)", WGS84ToGCJ02, 116.397428, 39.90923, 116.40367163, 39.91063351, 6e-9},
		{"tiananmen wgs84 to bd09 (devkitlab)", WGS84ToBD09, 116.397428, 39.90923, 116.4100441, 39.91697286, 6e-8},
		// dromara/hutool CoordinateUtilTest, current version: wgs84toBd09Test
		// and wgs84toBd09Test2 (Jilin).
		{"beijing wgs84 to bd09 (hutool)", WGS84ToBD09, 116.404, 39.915, 116.41662724378733, 39.922699552216216, 1e-12},
		{"jilin wgs84 to bd09 (hutool)", WGS84ToBD09, 122.99395597, 44.99804071, 123.00636516028885, 45.00636909189589, 1e-12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotLon, gotLat := tt.fn(tt.lon, tt.lat)
			if !near(gotLon, gotLat, tt.wantLon, tt.wantLat, tt.tol) {
				t.Errorf("got (%.15f, %.15f), want (%.15f, %.15f) within %g", gotLon, gotLat, tt.wantLon, tt.wantLat, tt.tol)
			}
		})
	}
}

// TestCRSInverseReference checks the inverses against the published one-step
// approximations they improve on: the exact inverse and the approximation
// differ by centimetres, and the exact one maps back onto its input.
func TestCRSInverseReference(t *testing.T) {
	tests := []struct {
		name     string
		inv, fwd func(lon, lat float64) (float64, float64)
		lon, lat float64
		approxLo float64
		approxLa float64
	}{
		// wandergis/coordtransform test/app.js "//result" block.
		{"beijing gcj02 to wgs84 (coordtransform)", GCJ02ToWGS84, WGS84ToGCJ02, 116.404, 39.915, 116.39775550083061, 39.91359571849836},
		{"beijing bd09 to gcj02 (coordtransform)", BD09ToGCJ02, GCJ02ToBD09, 116.404, 39.915, 116.39762729119315, 39.90865673957631},
		// dromara/hutool CoordinateUtilTest.bd09toWgs84Test, current version
		// (the 2020 version carried a longitude bug, since fixed).
		{"beijing bd09 to wgs84 (hutool)", BD09ToWGS84, WGS84ToBD09, 116.404, 39.915, 116.3913836995125, 39.907253214522164},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotLon, gotLat := tt.inv(tt.lon, tt.lat)
			if !near(gotLon, gotLat, tt.approxLo, tt.approxLa, 2e-5) {
				t.Errorf("got (%.15f, %.15f), want near the published (%.15f, %.15f)", gotLon, gotLat, tt.approxLo, tt.approxLa)
			}
			backLon, backLat := tt.fwd(gotLon, gotLat)
			if !near(backLon, backLat, tt.lon, tt.lat, 1e-9) {
				t.Errorf("forward of inverse: got (%.15f, %.15f), want (%.15f, %.15f)", backLon, backLat, tt.lon, tt.lat)
			}
		})
	}
}

func TestCRSRoundTrip(t *testing.T) {
	points := []struct {
		name     string
		lon, lat float64
	}{
		{"zhengzhou jinshui", 113.6866, 34.7986},
		{"zhengzhou erqi tower", 113.6628, 34.7538},
		{"beijing tiananmen", 116.397428, 39.90923},
		{"shanghai", 121.4737, 31.2304},
		{"urumqi", 87.6168, 43.8256},
		{"harbin", 126.5350, 45.8038},
		{"sanya", 109.5119, 18.2528},
		{"lhasa", 91.1409, 29.6456},
	}
	for _, p := range points {
		t.Run(p.name, func(t *testing.T) {
			glon, glat := WGS84ToGCJ02(p.lon, p.lat)
			if near(glon, glat, p.lon, p.lat, 1e-4) {
				t.Errorf("WGS84ToGCJ02 offset only (%g, %g): want a shift of hundreds of metres", glon-p.lon, glat-p.lat)
			}
			if lon, lat := GCJ02ToWGS84(glon, glat); !near(lon, lat, p.lon, p.lat, 1e-7) {
				t.Errorf("WGS→GCJ→WGS: got (%.12f, %.12f), want (%.12f, %.12f)", lon, lat, p.lon, p.lat)
			}
			blon, blat := WGS84ToBD09(p.lon, p.lat)
			if lon, lat := BD09ToWGS84(blon, blat); !near(lon, lat, p.lon, p.lat, 1e-6) {
				t.Errorf("WGS→BD→WGS: got (%.12f, %.12f), want (%.12f, %.12f)", lon, lat, p.lon, p.lat)
			}
			if lon, lat := BD09ToGCJ02(GCJ02ToBD09(glon, glat)); !near(lon, lat, glon, glat, 1e-9) {
				t.Errorf("GCJ→BD→GCJ: got (%.12f, %.12f), want (%.12f, %.12f)", lon, lat, glon, glat)
			}
			if lon, lat := CRSGCJ02.ToWGS84(glon, glat); !near(lon, lat, p.lon, p.lat, 1e-7) {
				t.Errorf("CRSGCJ02.ToWGS84: got (%.12f, %.12f), want (%.12f, %.12f)", lon, lat, p.lon, p.lat)
			}
			if lon, lat := CRSBD09.ToWGS84(blon, blat); !near(lon, lat, p.lon, p.lat, 1e-6) {
				t.Errorf("CRSBD09.ToWGS84: got (%.12f, %.12f), want (%.12f, %.12f)", lon, lat, p.lon, p.lat)
			}
			if lon, lat := CRSWGS84.ToWGS84(p.lon, p.lat); lon != p.lon || lat != p.lat {
				t.Errorf("CRSWGS84.ToWGS84: got (%v, %v), want the input", lon, lat)
			}
		})
	}
}

func TestCRSOutsideChina(t *testing.T) {
	points := []struct {
		name     string
		lon, lat float64
	}{
		{"london", -0.1276, 51.5072},
		{"new york", -74.0060, 40.7128},
		{"tokyo east of the box", 139.6917, 35.6895},
		{"singapore south of the box", 103.8198, 0.5},
		{"moscow", 37.6173, 55.7558},
		{"north of the box", 120.0, 56.0},
		{"sydney", 151.2093, -33.8688},
	}
	for _, p := range points {
		t.Run(p.name, func(t *testing.T) {
			if lon, lat := WGS84ToGCJ02(p.lon, p.lat); lon != p.lon || lat != p.lat {
				t.Errorf("WGS84ToGCJ02: got (%v, %v), want (%v, %v)", lon, lat, p.lon, p.lat)
			}
			if lon, lat := GCJ02ToWGS84(p.lon, p.lat); lon != p.lon || lat != p.lat {
				t.Errorf("GCJ02ToWGS84: got (%v, %v), want (%v, %v)", lon, lat, p.lon, p.lat)
			}
			if lon, lat := CRSGCJ02.ToWGS84(p.lon, p.lat); lon != p.lon || lat != p.lat {
				t.Errorf("CRSGCJ02.ToWGS84: got (%v, %v), want (%v, %v)", lon, lat, p.lon, p.lat)
			}
			// BD-09 shifts everywhere; its round trip still holds.
			blon, blat := WGS84ToBD09(p.lon, p.lat)
			if lon, lat := BD09ToWGS84(blon, blat); !near(lon, lat, p.lon, p.lat, 1e-9) {
				t.Errorf("WGS→BD→WGS: got (%v, %v), want (%v, %v)", lon, lat, p.lon, p.lat)
			}
		})
	}
}

func TestCRSNonFinite(t *testing.T) {
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if lon, lat := GCJ02ToWGS84(v, 35); !(lon == v || math.IsNaN(lon) && math.IsNaN(v)) || lat != 35 {
			t.Errorf("GCJ02ToWGS84(%v, 35): got (%v, %v), want the input back", v, lon, lat)
		}
	}
}

func TestParseCRS(t *testing.T) {
	tests := []struct {
		in      string
		want    CRS
		wantErr bool
	}{
		{"", CRSWGS84, false},
		{"wgs84", CRSWGS84, false},
		{"WGS84", CRSWGS84, false},
		{"wgs-84", CRSWGS84, false},
		{"WGS-84", CRSWGS84, false},
		{"epsg:4326", CRSWGS84, false},
		{"EPSG:4326", CRSWGS84, false},
		{"CRS84", CRSWGS84, false},
		{"http://www.opengis.net/def/crs/OGC/1.3/CRS84", CRSWGS84, false},
		{" gcj02 ", CRSGCJ02, false},
		{"gcj02", CRSGCJ02, false},
		{"GCJ-02", CRSGCJ02, false},
		{"bd09", CRSBD09, false},
		{"BD09", CRSBD09, false},
		{"bd09ll", CRSBD09, false},
		{"bd09mc", "", true},
		{"epsg:3857", "", true},
		{"4326", "", true},
		{"mars", "", true},
		{"wgs 84", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseCRS(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %q, nil; want an error", got)
				}
				var e *gridwatch.Error
				if !errors.As(err, &e) {
					t.Fatalf("got error %T, want *gridwatch.Error", err)
				}
				if e.Code != gridwatch.EInvalid {
					t.Errorf("got code %q, want %q", e.Code, gridwatch.EInvalid)
				}
				wantDetails := map[string]any{"param": "crs", "value": tt.in, "allowed": []string{"wgs84", "gcj02", "bd09"}}
				if !reflect.DeepEqual(e.Details, wantDetails) {
					t.Errorf("got details %v, want %v", e.Details, wantDetails)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want %q", err, tt.want)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzCRSRoundTrip maps any finite pair into China's rectangle, kept 0.05°
// (several times the largest offset) inside its edges so the GCJ-02 image
// stays in the rectangle too, and checks the round trips and the inverse.
func FuzzCRSRoundTrip(f *testing.F) {
	f.Add(113.6866, 34.7986)
	f.Add(116.397428, 39.90923)
	f.Add(72.1, 0.9)
	f.Add(137.7, 55.7)
	f.Add(0.0, 0.0)
	f.Add(-1e300, 5e-324)
	f.Fuzz(func(t *testing.T, a, b float64) {
		if math.IsNaN(a) || math.IsInf(a, 0) || math.IsNaN(b) || math.IsInf(b, 0) {
			return // not a coordinate anyone can send: nothing to check
		}
		const margin = 0.05
		lon := chinaMinLon + margin + math.Mod(math.Abs(a), chinaMaxLon-chinaMinLon-2*margin)
		lat := chinaMinLat + margin + math.Mod(math.Abs(b), chinaMaxLat-chinaMinLat-2*margin)

		glon, glat := WGS84ToGCJ02(lon, lat)
		wlon, wlat := GCJ02ToWGS84(glon, glat)
		if !near(wlon, wlat, lon, lat, 1e-7) {
			t.Errorf("WGS→GCJ→WGS at (%v, %v): got (%v, %v)", lon, lat, wlon, wlat)
		}
		// The inverse is exact: its forward image is the input.
		ilon, ilat := GCJ02ToWGS84(lon, lat)
		if flon, flat := WGS84ToGCJ02(ilon, ilat); !near(flon, flat, lon, lat, 1e-9) {
			t.Errorf("GCJ02ToWGS84(%v, %v) = (%v, %v) maps forward to (%v, %v)", lon, lat, ilon, ilat, flon, flat)
		}
		blon, blat := WGS84ToBD09(lon, lat)
		if rlon, rlat := BD09ToWGS84(blon, blat); !near(rlon, rlat, lon, lat, 1e-6) {
			t.Errorf("WGS→BD→WGS at (%v, %v): got (%v, %v)", lon, lat, rlon, rlat)
		}
	})
}
