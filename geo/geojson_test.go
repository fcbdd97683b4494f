package geo

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"gridwatch"
)

// fc wraps feature JSON texts into a FeatureCollection.
func fc(features ...string) []byte {
	return []byte(`{"type":"FeatureCollection","features":[` + strings.Join(features, ",") + `]}`)
}

// feat builds a feature with the given properties JSON and geometry JSON.
func feat(props, geometry string) string {
	return `{"type":"Feature","properties":` + props + `,"geometry":` + geometry + `}`
}

const (
	districtProps = `{"code":"410105","name":"金水区","level":"district"}`
	streetProps   = `{"code":"410105001","name":"经八路街道","level":"street","parent_code":"410105","note":"kept"}`
	squareGeom    = `{"type":"Polygon","coordinates":[[[113.6,34.7],[113.7,34.7],[113.7,34.8],[113.6,34.8],[113.6,34.7]]]}`
)

func TestParseFeatureCollectionValid(t *testing.T) {
	fs, err := ParseFeatureCollection(fc(feat(districtProps, squareGeom), feat(streetProps, squareGeom)), ParseOptions{})
	if err != nil {
		t.Fatalf("err = %v", err)
	}
	if len(fs) != 2 {
		t.Fatalf("got %d features, want 2", len(fs))
	}
	s := fs[1]
	if s.Code != "410105001" || s.Level != LevelStreet || s.ParentCode != "410105" || s.Name != "经八路街道" {
		t.Errorf("street = %+v", s)
	}
	if s.Properties["note"] != "kept" || s.Properties["code"] != nil {
		t.Errorf("properties = %v, want only the kept note", s.Properties)
	}
	if s.Geometry.NumPolygons() != 1 || s.Geometry.SRID() != 4326 {
		t.Errorf("geometry: %d polygons, srid %d", s.Geometry.NumPolygons(), s.Geometry.SRID())
	}
}

func TestParseFeatureCollectionCRS(t *testing.T) {
	fs, err := ParseFeatureCollection(fc(feat(districtProps, squareGeom)), ParseOptions{CRS: CRSGCJ02})
	if err != nil {
		t.Fatal(err)
	}
	c := fs[0].Geometry.Polygon(0).Coords()[0][0]
	wantLon, wantLat := GCJ02ToWGS84(113.6, 34.7)
	if c[0] != wantLon || c[1] != wantLat {
		t.Errorf("first vertex = %v, want %v, %v (converted from GCJ-02)", c, wantLon, wantLat)
	}
	if c[0] == 113.6 {
		t.Error("vertex not converted")
	}
}

// TestParseFeatureCollectionBadInput is the table of bad inputs: each gives
// its error code, a reason keyword and a message naming the place.
func TestParseFeatureCollectionBadInput(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantCode   string
		wantReason string
		wantInMsg  string
	}{
		{"not json", `{"type":`, gridwatch.EInvalidJSON, "", "line 1"},
		{"not json garbage", "hello", gridwatch.EInvalidJSON, "", "not valid JSON"},
		{"not a collection", `{"type":"Feature"}`, gridwatch.EInvalidGeoJSON, "", "FeatureCollection"},
		{"features not array", `{"type":"FeatureCollection","features":{}}`, gridwatch.EInvalidGeoJSON, "", "features"},
		{"empty collection", `{"type":"FeatureCollection","features":[]}`, gridwatch.EInvalidGeoJSON, "", "no features"},
		{"not a feature", string(fc(`{"type":"Point"}`)), gridwatch.EInvalidGeoJSON, "not_feature", "feature 0"},
		{"wrong geometry type", string(fc(feat(districtProps, `{"type":"LineString","coordinates":[[1,2],[3,4]]}`))),
			gridwatch.EInvalidGeometry, "wrong_type", "LineString"},
		{"missing geometry", string(fc(feat(districtProps, `null`))), gridwatch.EInvalidGeometry, "missing_geometry", "missing"},
		{"bad nesting", string(fc(feat(districtProps, `{"type":"Polygon","coordinates":[[113.6,34.7]]}`))),
			gridwatch.EInvalidGeometry, "bad_coordinates", "array of rings"},
		{"lat lon swapped", string(fc(feat(districtProps, `{"type":"Polygon","coordinates":[[[34.7,113.6],[34.7,113.7],[34.8,113.7],[34.7,113.6]]]}`))),
			gridwatch.EInvalidGeometry, "out_of_range", "looks like [lat, lon]"},
		{"projected metres", string(fc(feat(districtProps, `{"type":"Polygon","coordinates":[[[12650000,4120000],[12660000,4120000],[12660000,4130000],[12650000,4120000]]]}`))),
			gridwatch.EInvalidGeometry, "out_of_range", "projected metres"},
		{"unclosed ring", string(fc(feat(districtProps, `{"type":"Polygon","coordinates":[[[113.6,34.7],[113.7,34.7],[113.7,34.8],[113.6,34.8]]]}`))),
			gridwatch.EInvalidGeometry, "not_closed", "not closed"},
		{"too short ring", string(fc(feat(districtProps, `{"type":"Polygon","coordinates":[[[113.6,34.7],[113.7,34.7],[113.6,34.7]]]}`))),
			gridwatch.EInvalidGeometry, "too_few_points", "3 positions"},
		{"short position", string(fc(feat(districtProps, `{"type":"Polygon","coordinates":[[[113.6],[113.7,34.7],[113.7,34.8],[113.6,34.7]]]}`))),
			gridwatch.EInvalidGeometry, "bad_position", "position 0"},
		{"hole too short", string(fc(feat(districtProps, `{"type":"Polygon","coordinates":[[[113.6,34.7],[113.7,34.7],[113.7,34.8],[113.6,34.7]],[[113.65,34.75],[113.66,34.75],[113.65,34.75]]]}`))),
			gridwatch.EInvalidGeometry, "too_few_points", "hole 1"},
		{"empty multipolygon", string(fc(feat(districtProps, `{"type":"MultiPolygon","coordinates":[]}`))),
			gridwatch.EInvalidGeometry, "empty", "no polygons"},
		{"missing code", string(fc(feat(`{"name":"x","level":"district"}`, squareGeom))), gridwatch.EInvalid, "missing_property", "code is missing"},
		{"code not digits", string(fc(feat(`{"code":"41A105","name":"x","level":"district"}`, squareGeom))), gridwatch.EInvalid, "bad_code", "not all digits"},
		{"code wrong length", string(fc(feat(`{"code":"4101050","name":"x","level":"district"}`, squareGeom))), gridwatch.EInvalid, "bad_code", "6 digits"},
		{"missing name", string(fc(feat(`{"code":"410105","level":"district"}`, squareGeom))), gridwatch.EInvalid, "missing_property", "name"},
		{"bad level", string(fc(feat(`{"code":"410105","name":"x","level":"county"}`, squareGeom))), gridwatch.EInvalid, "bad_property", "county"},
		{"no properties", string(fc(feat(`null`, squareGeom))), gridwatch.EInvalid, "missing_property", "properties are missing"},
		{"street without parent", string(fc(feat(`{"code":"410105001","name":"x","level":"street"}`, squareGeom))), gridwatch.EInvalid, "bad_parent", "parent_code is missing"},
		{"parent prefix", string(fc(feat(`{"code":"410105001","name":"x","level":"street","parent_code":"410106"}`, squareGeom))), gridwatch.EInvalid, "bad_parent", "does not start"},
		{"district with parent", string(fc(feat(`{"code":"410105","name":"x","level":"district","parent_code":"410100"}`, squareGeom))), gridwatch.EInvalid, "bad_parent", "no parent"},
		{"duplicate code", string(fc(feat(districtProps, squareGeom), feat(districtProps, squareGeom))), gridwatch.EConflict, "duplicate_code", "also used by feature 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFeatureCollection([]byte(tt.body), ParseOptions{})
			if err == nil {
				t.Fatal("err = nil, want an error")
			}
			if got := gridwatch.ErrorCode(err); got != tt.wantCode {
				t.Errorf("code = %q, want %q (%v)", got, tt.wantCode, err)
			}
			if !strings.Contains(err.Error(), tt.wantInMsg) {
				t.Errorf("message %q does not mention %q", err.Error(), tt.wantInMsg)
			}
			if tt.wantReason != "" {
				probs, _ := gridwatch.ErrorDetails(err)["problems"].([]Problem)
				if len(probs) == 0 || probs[0].Reason != tt.wantReason {
					t.Errorf("problems = %+v, want first reason %q", probs, tt.wantReason)
				}
			}
		})
	}
}

func TestParseReportsEveryProblemWithItsPlace(t *testing.T) {
	bad := `{"type":"MultiPolygon","coordinates":[[[[113.6,34.7],[113.7,34.7],[113.7,34.8],[113.6,34.7]]],[[[113.6,34.7],[113.7,34.7],[113.7,34.8],[113.6,34.9]]]]}`
	_, err := ParseFeatureCollection(fc(feat(districtProps, squareGeom), feat(streetProps, bad), feat(`{"code":"x"}`, squareGeom)), ParseOptions{})
	if err == nil {
		t.Fatal("want an error")
	}
	probs := gridwatch.ErrorDetails(err)["problems"].([]Problem)
	if len(probs) < 3 {
		t.Fatalf("got %d problems, want all of them (≥3): %+v", len(probs), probs)
	}
	p := probs[0]
	if p.Feature != 1 || p.Code != "410105001" || p.Reason != "not_closed" || p.Polygon == nil || *p.Polygon != 1 || p.Ring == nil || *p.Ring != 0 {
		t.Errorf("first problem = %+v, want feature 1 polygon 1 ring 0 not_closed", p)
	}
	if !strings.Contains(err.Error(), "problems; the first: feature 1") {
		t.Errorf("message %q should count the problems", err)
	}
	// Details survive JSON encoding as the API sends them.
	if _, err := json.Marshal(gridwatch.ErrorDetails(err)); err != nil {
		t.Error(err)
	}
}

func TestParseVertexLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"type":"Polygon","coordinates":[[`)
	n := 50
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "[%v,%v],", 113.6+float64(i)*0.001, 34.7+float64(i%2)*0.001)
	}
	b.WriteString(`[113.6,34.7]]]}`)
	_, err := ParseFeatureCollection(fc(feat(districtProps, b.String())), ParseOptions{MaxVertices: 20})
	if err == nil || !strings.Contains(err.Error(), "51 vertices; the limit is 20") {
		t.Fatalf("err = %v, want the vertex limit named", err)
	}
}

func TestParseFeature(t *testing.T) {
	f, err := ParseFeature([]byte(feat(`{"code":410105,"name":"金水区","level":"district"}`, squareGeom)), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Code != "410105" {
		t.Errorf("numeric code = %q, want 410105", f.Code)
	}
	if _, err := ParseFeature([]byte(`[1,2`), ParseOptions{}); gridwatch.ErrorCode(err) != gridwatch.EInvalidJSON {
		t.Errorf("bad JSON: %v", err)
	}
}

func TestParseBBox(t *testing.T) {
	tests := []struct {
		in      string
		want    BBox
		wantErr string
	}{
		{"113.6,34.7,113.8,34.9", BBox{113.6, 34.7, 113.8, 34.9}, ""},
		{" 113.6, 34.7 ,113.8,34.9", BBox{113.6, 34.7, 113.8, 34.9}, ""},
		{"113.6,34.7,0,113.8,34.9,100", BBox{113.6, 34.7, 113.8, 34.9}, ""},
		{"113.6,34.7,113.8", BBox{}, "got 3 values"},
		{"", BBox{}, "got 1 values"},
		{"a,34.7,113.8,34.9", BBox{}, `value 1 ("a")`},
		{"113.6,NaN,113.8,34.9", BBox{}, "value 2"},
		{"34.7,113.6,34.9,113.8", BBox{}, "[lat, lon]"},
		{"113.6,34.9,113.8,34.7", BBox{}, "minLat"},
		{"113.8,34.7,113.6,34.9", BBox{}, "antimeridian"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseBBox(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || gridwatch.ErrorCode(err) != gridwatch.EInvalid {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// FuzzParseFeatureCollection: any input either parses into features whose
// geometry is closed and in range, or fails with a user error, never a panic
// or an internal error.
func FuzzParseFeatureCollection(f *testing.F) {
	f.Add(fc(feat(districtProps, squareGeom), feat(streetProps, squareGeom)))
	f.Add(fc(feat(districtProps, `{"type":"MultiPolygon","coordinates":[[[[1,2],[3,4],[5,6],[1,2]]]]}`)))
	f.Add([]byte(`{"type":"FeatureCollection","features":[{"type":"Feature"}]}`))
	f.Add([]byte(`{"type":"FeatureCollection","features":[null]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fs, err := ParseFeatureCollection(data, ParseOptions{MaxVertices: 1000})
		if err != nil {
			if code := gridwatch.ErrorCode(err); code == gridwatch.EInternal {
				t.Fatalf("internal error for user input: %v", err)
			}
			return
		}
		for _, feature := range fs {
			if !feature.Level.Valid() || feature.Code == "" || feature.Name == "" {
				t.Fatalf("accepted a feature without code, name or level: %+v", feature)
			}
			for _, ring := range feature.Geometry.Polygon(0).Coords() {
				if len(ring) < 4 || ring[0][0] != ring[len(ring)-1][0] || ring[0][1] != ring[len(ring)-1][1] {
					t.Fatalf("accepted an unclosed ring %v", ring)
				}
			}
		}
	})
}

// FuzzParseBBox: a parsed box is ordered and in range.
func FuzzParseBBox(f *testing.F) {
	for _, s := range []string{"113.6,34.7,113.8,34.9", "1,2,3", "-180,-90,180,90", "0,0,0,0,0,0", "a,b,c,d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBBox(s)
		if err != nil {
			if gridwatch.ErrorCode(err) != gridwatch.EInvalid {
				t.Fatalf("code %q for %q", gridwatch.ErrorCode(err), s)
			}
			return
		}
		if b.MinLon > b.MaxLon || b.MinLat > b.MaxLat || b.MinLon < -180 || b.MaxLon > 180 || b.MinLat < -90 || b.MaxLat > 90 {
			t.Fatalf("accepted %q as %+v", s, b)
		}
	})
}

func TestParseRefusesUnstorableProperties(t *testing.T) {
	tests := []struct{ props, wantIn string }{
		{`{"code":"410105","name":"x","level":"district","pop":1e400}`, "out of range"},
		{`{"code":"410105","name":"x","level":"district","note":"a\u0000b"}`, "NUL"},
		{`{"code":"410105","name":"x\u0000","level":"district"}`, "NUL"},
		{`{"code":"410105","name":"x","level":"district","deep":{"k":[1,"\u0000"]}}`, "NUL"},
		{`{"code":"410105","name":"x","level":"district","a\u0000":1}`, "NUL"},
	}
	for _, tt := range tests {
		_, err := ParseFeatureCollection(fc(feat(tt.props, squareGeom)), ParseOptions{})
		if gridwatch.ErrorCode(err) != gridwatch.EInvalid || !strings.Contains(err.Error(), tt.wantIn) {
			t.Errorf("%s: %v, want invalid mentioning %q", tt.props, err, tt.wantIn)
		}
	}
}

func TestParseMessagesForOddBodies(t *testing.T) {
	_, err := ParseFeatureCollection([]byte(`[1,2]`), ParseOptions{})
	if gridwatch.ErrorCode(err) != gridwatch.EInvalidGeoJSON || !strings.Contains(err.Error(), "want a JSON object, got an array") {
		t.Errorf("array body: %v", err)
	}
	_, err = ParseFeatureCollection(fc(feat(districtProps, `{"type":"Polygon","coordinates":[[[1e309,34.7],[113.7,34.7],[113.7,34.8],[1e309,34.7]]]}`)), ParseOptions{})
	probs, _ := gridwatch.ErrorDetails(err)["problems"].([]Problem)
	if len(probs) == 0 || probs[0].Reason != "out_of_range" {
		t.Errorf("1e309: %v, want out_of_range", err)
	}
}

// nestedArrays is a JSON value n arrays deep around 1.
func nestedArrays(n int) string { return strings.Repeat("[", n) + "1" + strings.Repeat("]", n) }

func TestParseBoundsFreeProperties(t *testing.T) {
	big := strings.Repeat("x", MaxPropertiesBytes)
	half := strings.Repeat("y", MaxPropertiesBytes/2)
	for _, tc := range []struct {
		name, extra  string // free properties added to a district's
		reason, prop string // "" reason: accepted
	}{
		{"flat", `"note":"kept","pop":12`, "", ""},
		{"at the depth limit", `"deep":` + nestedArrays(MaxPropertyDepth), "", ""},
		{"objects at the limit", `"deep":` + strings.Repeat(`{"a":`, MaxPropertyDepth) + "1" + strings.Repeat("}", MaxPropertyDepth), "", ""},
		{"one level too deep", `"deep":` + nestedArrays(MaxPropertyDepth+1), "property_too_deep", "deep"},
		{"nine thousand levels", `"note":"ok","tree":` + nestedArrays(9000), "property_too_deep", "tree"},
		{"one value too large", `"blob":"` + big + `"`, "properties_too_large", "blob"},
		{"together too large", `"a":"` + half + `","b":"` + half + `"`, "properties_too_large", "b"},
		{"half is fine", `"a":"` + half + `"`, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			props := `{"code":"410106","name":"二七区","level":"district",` + tc.extra + `}`
			body := fc(feat(districtProps, squareGeom), feat(props, squareGeom))
			_, err := ParseFeatureCollection(body, ParseOptions{})
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("got %v, want accepted", err)
				}
				return
			}
			probs, _ := gridwatch.ErrorDetails(err)["problems"].([]Problem)
			if gridwatch.ErrorCode(err) != gridwatch.EInvalid || len(probs) == 0 {
				t.Fatalf("got %v, want invalid with problems", err)
			}
			var found *Problem
			for i := range probs {
				if probs[i].Reason == tc.reason {
					found = &probs[i]
				}
			}
			if found == nil || found.Feature != 1 || found.Property != tc.prop {
				t.Fatalf("problems %+v, want %s at feature 1 property %q", probs, tc.reason, tc.prop)
			}
			// The single create refuses the same.
			_, err = ParseFeature([]byte(feat(props, squareGeom)), ParseOptions{})
			if probs, _ := gridwatch.ErrorDetails(err)["problems"].([]Problem); len(probs) == 0 || probs[0].Property != tc.prop {
				t.Errorf("ParseFeature: %v, want %s naming %q", err, tc.reason, tc.prop)
			}
		})
	}
}
