package geo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/twpayne/go-geom"

	"gridwatch"
)

// DefaultMaxVertices is the per-feature vertex limit when none is configured.
const DefaultMaxVertices = 100_000

// maxProblems caps the problems reported for one request.
const maxProblems = 100

// ParseOptions control how grid GeoJSON is read.
type ParseOptions struct {
	// CRS of the input coordinates; they are converted to WGS-84.
	CRS CRS
	// MaxVertices per feature; DefaultMaxVertices when 0.
	MaxVertices int
}

// ImportFeature is one grid read from GeoJSON: checked for structure,
// properties and coordinates, converted to WGS-84, not yet checked against
// other grids (that takes PostGIS; see Store.Import).
type ImportFeature struct {
	Index      int
	Code       string
	Name       string
	Level      Level
	ParentCode string
	Geometry   *geom.MultiPolygon
	// Properties are the feature's other properties, kept as given.
	Properties map[string]any
}

// Problem is one thing wrong with one feature, precise enough for a GIS
// officer to find and fix it.
type Problem struct {
	Feature int    `json:"feature"`
	Code    string `json:"code,omitempty"`
	// Reason is a stable keyword: not_closed, too_few_points, out_of_range, …
	Reason  string `json:"reason"`
	Message string `json:"message"`
	// Polygon, Ring and Position locate the fault inside the geometry (0-based).
	Polygon  *int      `json:"polygon,omitempty"`
	Ring     *int      `json:"ring,omitempty"`
	Position *int      `json:"position,omitempty"`
	Location []float64 `json:"location,omitempty"`
	// AreaM2 is the area involved, for overlaps and parts outside a parent.
	AreaM2 *float64 `json:"area_m2,omitempty"`
	// Other names the other grid involved, for overlaps and duplicates.
	Other string `json:"other,omitempty"`
	// Property names the property at fault, for a free property too deep
	// or too large.
	Property string `json:"property,omitempty"`
}

// MaxPropertyDepth is how deeply a grid's free properties may nest (a
// scalar is 0, {"a":1} is 1), and MaxPropertiesBytes how large they may be
// together, encoded as JSON. They are stored as given and served in every
// grid list: 9,000 levels of nesting stored fine but broke the clients that
// read the lists (Python's json, jq), and unbounded text bloats every page.
const (
	MaxPropertyDepth   = 16
	MaxPropertiesBytes = 64 << 10
)

// Problems is a list of problems that becomes one *gridwatch.Error.
type Problems []Problem

func (ps *Problems) add(p Problem) {
	if len(*ps) < maxProblems {
		*ps = append(*ps, p)
	}
}

// Err returns nil for no problems, else an error with the given code whose
// message tells the count and the first problem, and whose details list them.
func (ps Problems) Err(code string) error {
	if len(ps) == 0 {
		return nil
	}
	msg := ps[0].Message
	if len(ps) > 1 {
		msg = fmt.Sprintf("%d problems; the first: %s", len(ps), msg)
		if len(ps) == maxProblems {
			msg = fmt.Sprintf("%d or more problems (only the first %d are listed); the first: %s", maxProblems, maxProblems, ps[0].Message)
		}
	}
	return gridwatch.Errorf(code, "%s", msg).WithDetails(map[string]any{"problems": []Problem(ps)})
}

type rawFeatureCollection struct {
	Type     string            `json:"type"`
	Features []json.RawMessage `json:"features"`
}

type rawFeature struct {
	Type       string          `json:"type"`
	Geometry   json.RawMessage `json:"geometry"`
	Properties json.RawMessage `json:"properties"`
}

type rawGeometry struct {
	Type        string          `json:"type"`
	Coordinates json.RawMessage `json:"coordinates"`
}

// ParseFeatureCollection reads a GeoJSON FeatureCollection of grids. Every
// feature is checked; all problems found are returned in one error, so a file
// is fixed in one pass, not one fault per upload.
func ParseFeatureCollection(data []byte, opts ParseOptions) ([]ImportFeature, error) {
	var fc rawFeatureCollection
	if err := decodeJSON(data, &fc); err != nil {
		return nil, err
	}
	if fc.Type != "FeatureCollection" {
		return nil, gridwatch.Errorf(gridwatch.EInvalidGeoJSON, "want a GeoJSON FeatureCollection, got type %q", fc.Type).
			WithDetails(map[string]any{"type": fc.Type})
	}
	if len(fc.Features) == 0 {
		return nil, gridwatch.Errorf(gridwatch.EInvalidGeoJSON, "the FeatureCollection has no features")
	}
	var probs Problems
	out := make([]ImportFeature, 0, len(fc.Features))
	for i, raw := range fc.Features {
		f, ok := parseFeature(i, raw, opts, &probs)
		if ok {
			out = append(out, f)
		}
	}
	checkDuplicates(out, &probs)
	if err := probs.Err(problemsCode(probs)); err != nil {
		return nil, err
	}
	return out, nil
}

// ParseFeature reads one GeoJSON Feature describing a grid.
func ParseFeature(data []byte, opts ParseOptions) (ImportFeature, error) {
	var probe struct {
		Type string `json:"type"`
	}
	if err := decodeJSON(data, &probe); err != nil {
		return ImportFeature{}, err
	}
	var probs Problems
	f, ok := parseFeature(0, data, opts, &probs)
	if !ok || len(probs) > 0 {
		return ImportFeature{}, probs.Err(problemsCode(probs))
	}
	return f, nil
}

// problemsCode is invalid_geometry when any problem is with a geometry,
// invalid_geojson for structure, else invalid (properties).
func problemsCode(ps Problems) string {
	code := gridwatch.EInvalid
	for _, p := range ps {
		switch p.Reason {
		case "not_geojson", "not_feature":
			code = gridwatch.EInvalidGeoJSON
		case "duplicate_code":
			if code == gridwatch.EInvalid {
				code = gridwatch.EConflict
			}
		case "missing_property", "bad_property", "bad_code", "bad_parent", "property_too_deep", "properties_too_large":
		default:
			return gridwatch.EInvalidGeometry
		}
	}
	return code
}

// decodeJSON unmarshals data, reporting a syntax error with line and column.
func decodeJSON(data []byte, v any) error {
	err := json.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := lineCol(data, se.Offset)
		return gridwatch.Errorf(gridwatch.EInvalidJSON, "the body is not valid JSON: %s at line %d, column %d", se.Error(), line, col).
			WithDetails(map[string]any{"offset": se.Offset, "line": line, "column": col})
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return gridwatch.Errorf(gridwatch.EInvalidGeoJSON, "not GeoJSON: want a JSON object, got %s", article(te.Value)).
				WithDetails(map[string]any{"offset": te.Offset})
		}
		return gridwatch.Errorf(gridwatch.EInvalidGeoJSON, "not GeoJSON: field %q should not be %s", te.Field, article(te.Value)).
			WithDetails(map[string]any{"field": te.Field, "offset": te.Offset})
	}
	return gridwatch.Errorf(gridwatch.EInvalidJSON, "the body is not valid JSON: %v", err)
}

// article names a JSON value kind for messages: "an array", "a string".
func article(kind string) string {
	switch kind {
	case "array", "object":
		return "an " + kind
	case "number", "string", "bool":
		return "a " + kind
	}
	return kind
}

func lineCol(data []byte, offset int64) (int, int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(offset) - bytes.LastIndexByte(before, '\n')
	return line, col
}

func parseFeature(i int, raw json.RawMessage, opts ParseOptions, probs *Problems) (ImportFeature, bool) {
	var rf rawFeature
	if err := json.Unmarshal(raw, &rf); err != nil {
		probs.add(Problem{Feature: i, Reason: "not_feature", Message: fmt.Sprintf("feature %d is not a GeoJSON Feature object", i)})
		return ImportFeature{}, false
	}
	if rf.Type != "Feature" {
		probs.add(Problem{Feature: i, Reason: "not_feature", Message: fmt.Sprintf("feature %d has type %q; want \"Feature\"", i, rf.Type)})
		return ImportFeature{}, false
	}
	f := ImportFeature{Index: i}
	propsOK := parseProperties(&f, rf.Properties, probs)
	label := featureLabel(i, f.Code)
	mp, geomOK := parseGeometry(i, f.Code, label, rf.Geometry, opts, probs)
	f.Geometry = mp
	return f, propsOK && geomOK
}

func featureLabel(i int, code string) string {
	if code == "" {
		return fmt.Sprintf("feature %d", i)
	}
	return fmt.Sprintf("feature %d (code %s)", i, code)
}

func parseGeometry(i int, code, label string, raw json.RawMessage, opts ParseOptions, probs *Problems) (*geom.MultiPolygon, bool) {
	bad := func(p Problem) {
		p.Feature, p.Code = i, code
		p.Message = label + ": " + p.Message
		probs.add(p)
	}
	if len(raw) == 0 || string(raw) == "null" {
		bad(Problem{Reason: "missing_geometry", Message: "geometry is missing"})
		return nil, false
	}
	var g rawGeometry
	if err := json.Unmarshal(raw, &g); err != nil {
		bad(Problem{Reason: "bad_geometry", Message: "geometry must be a GeoJSON geometry object"})
		return nil, false
	}
	var polys [][][][]float64
	switch g.Type {
	case "Polygon":
		var p [][][]float64
		if err := json.Unmarshal(g.Coordinates, &p); err != nil {
			bad(coordinatesProblem(err, "Polygon coordinates must be an array of rings, each an array of [lon, lat] positions"))
			return nil, false
		}
		polys = [][][][]float64{p}
	case "MultiPolygon":
		if err := json.Unmarshal(g.Coordinates, &polys); err != nil {
			bad(coordinatesProblem(err, "MultiPolygon coordinates must be an array of polygons, each an array of rings of [lon, lat] positions"))
			return nil, false
		}
	default:
		bad(Problem{Reason: "wrong_type", Message: fmt.Sprintf("geometry type is %q; a grid must be a Polygon or MultiPolygon", g.Type)})
		return nil, false
	}
	limit := opts.MaxVertices
	if limit <= 0 {
		limit = DefaultMaxVertices
	}
	n := 0
	for _, p := range polys {
		for _, r := range p {
			n += len(r)
		}
	}
	if n > limit {
		bad(Problem{Reason: "too_many_vertices", Message: fmt.Sprintf("geometry has %d vertices; the limit is %d (simplify it, or raise --max-vertices)", n, limit)})
		return nil, false
	}
	if len(polys) == 0 {
		bad(Problem{Reason: "empty", Message: "geometry has no polygons"})
		return nil, false
	}
	ok := true
	flat := make([]float64, 0, 2*n)
	endss := make([][]int, 0, len(polys))
	for pi, p := range polys {
		if len(p) == 0 {
			bad(Problem{Reason: "empty", Polygon: ptr(pi), Message: fmt.Sprintf("polygon %d has no rings", pi)})
			ok = false
			continue
		}
		ends := make([]int, 0, len(p))
		for ri, r := range p {
			where := ringName(len(polys), pi, ri)
			if len(r) < 4 {
				bad(Problem{Reason: "too_few_points", Polygon: ptr(pi), Ring: ptr(ri),
					Message: fmt.Sprintf("%s has %d positions; a closed ring needs at least 4 (3 corners and the first repeated)", where, len(r))})
				ok = false
				continue
			}
			ringOK := true
			for k, pos := range r {
				if len(pos) < 2 {
					bad(Problem{Reason: "bad_position", Polygon: ptr(pi), Ring: ptr(ri), Position: ptr(k),
						Message: fmt.Sprintf("%s position %d has %d numbers; want [lon, lat]", where, k, len(pos))})
					ringOK = false
					continue
				}
				if msg := rangeProblem(pos[0], pos[1]); msg != "" {
					bad(Problem{Reason: "out_of_range", Polygon: ptr(pi), Ring: ptr(ri), Position: ptr(k), Location: []float64{pos[0], pos[1]},
						Message: fmt.Sprintf("%s position %d %s", where, k, msg)})
					ringOK = false
				}
			}
			if !ringOK {
				ok = false
				continue
			}
			first, last := r[0], r[len(r)-1]
			if first[0] != last[0] || first[1] != last[1] {
				bad(Problem{Reason: "not_closed", Polygon: ptr(pi), Ring: ptr(ri), Location: []float64{last[0], last[1]},
					Message: fmt.Sprintf("%s is not closed: it starts at [%v, %v] and ends at [%v, %v]; repeat the first position at the end", where, first[0], first[1], last[0], last[1])})
				ok = false
				continue
			}
			for _, pos := range r {
				lon, lat := opts.CRS.ToWGS84(pos[0], pos[1])
				flat = append(flat, lon, lat)
			}
			ends = append(ends, len(flat))
		}
		endss = append(endss, ends)
	}
	if !ok {
		return nil, false
	}
	return geom.NewMultiPolygonFlat(geom.XY, flat, endss).SetSRID(4326), true
}

// coordinatesProblem explains why coordinates did not decode: a number too
// large for a float64 is out of range, anything else is the wrong shape.
func coordinatesProblem(err error, shape string) Problem {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && strings.HasPrefix(te.Value, "number ") {
		return Problem{Reason: "out_of_range", Message: fmt.Sprintf("a coordinate (%s) is not a usable number: longitude must be within ±180 and latitude within ±90", te.Value)}
	}
	return Problem{Reason: "bad_coordinates", Message: shape}
}

func ringName(npolys, pi, ri int) string {
	kind := "exterior ring"
	if ri > 0 {
		kind = fmt.Sprintf("hole %d", ri)
	}
	if npolys > 1 {
		return fmt.Sprintf("polygon %d %s", pi, kind)
	}
	return kind
}

// rangeProblem describes what is wrong with a position, or returns "".
func rangeProblem(lon, lat float64) string {
	if math.IsNaN(lon) || math.IsNaN(lat) || math.IsInf(lon, 0) || math.IsInf(lat, 0) {
		return "is not a finite number"
	}
	if lon >= -180 && lon <= 180 && lat >= -90 && lat <= 90 {
		return ""
	}
	msg := fmt.Sprintf("[%v, %v] is out of range: longitude must be within ±180 and latitude within ±90", lon, lat)
	if lon >= -90 && lon <= 90 && lat >= -180 && lat <= 180 {
		msg += "; it looks like [lat, lon]: GeoJSON wants [lon, lat]"
	}
	if math.Abs(lon) > 1000 || math.Abs(lat) > 1000 {
		msg += "; it looks like projected metres: send degrees (EPSG:4326)"
	}
	return msg
}

func ptr(i int) *int { return &i }

// formatFloat prints a coordinate compactly for messages.
func formatFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
