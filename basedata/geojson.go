package basedata

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"gridwatch"
	"gridwatch/geo"
)

// GeoJSON imports: a FeatureCollection whose features carry the fields as
// properties (other properties are ignored: GIS exports carry many) and
// a Point (buildings, components) or a Polygon or MultiPolygon (buildings'
// footprints, parcels). Rows are the features, counted from 1.

type rawCollection struct {
	Type     string            `json:"type"`
	Features []json.RawMessage `json:"features"`
}

type rawFeature struct {
	Type       string          `json:"type"`
	Geometry   json.RawMessage `json:"geometry"`
	Properties json.RawMessage `json:"properties"`
}

func (k kind) parseGeoJSON(data []byte, crs geo.CRS, errs *rowErrors) ([]record, error) {
	var fc rawCollection
	if err := json.Unmarshal(data, &fc); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line := bytes.Count(data[:min(int(se.Offset), len(data))], []byte("\n")) + 1
			return nil, gridwatch.Errorf(gridwatch.EInvalidJSON, "the body is not valid JSON: %s at line %d", se.Error(), line).
				WithDetails(map[string]any{"offset": se.Offset, "line": line})
		}
		return nil, gridwatch.Errorf(gridwatch.EInvalidGeoJSON, "not a GeoJSON FeatureCollection: %v", err)
	}
	if fc.Type != "FeatureCollection" {
		return nil, gridwatch.Errorf(gridwatch.EInvalidGeoJSON, "want a GeoJSON FeatureCollection, got type %q", fc.Type).
			WithDetails(map[string]any{"type": fc.Type})
	}
	recs := make([]record, 0, len(fc.Features))
	for i, raw := range fc.Features {
		r := record{Row: i + 1}
		before := errs.count
		k.feature(&r, raw, crs, errs)
		if errs.count == before {
			recs = append(recs, r)
		}
	}
	return recs, nil
}

// feature reads one feature into r.
func (k kind) feature(r *record, raw json.RawMessage, crs geo.CRS, errs *rowErrors) {
	var f rawFeature
	if err := json.Unmarshal(raw, &f); err != nil || f.Type != "Feature" {
		errs.add(r.Row, "feature", "is not a GeoJSON Feature object")
		return
	}
	if len(f.Properties) > 0 && string(f.Properties) != "null" {
		dec := json.NewDecoder(bytes.NewReader(f.Properties))
		dec.UseNumber()
		var props map[string]any
		if err := dec.Decode(&props); err != nil {
			errs.add(r.Row, "properties", "must be a JSON object")
			return
		}
		k.properties(r, props, errs)
	}
	k.geometry(r, f.Geometry, crs, errs)
	k.finish(r, errs)
}

// properties reads the fields of k from a feature's properties; a field
// must be text or a number.
func (k kind) properties(r *record, props map[string]any, errs *rowErrors) {
	fields := append(append([]string{}, k.text...), intFields(k)...)
	for _, field := range fields {
		v, ok := props[field]
		if !ok && field == "class" {
			v, ok = props["class_code"]
		}
		if !ok || v == nil {
			continue
		}
		switch x := v.(type) {
		case string:
			k.set(r, field, x, errs)
		case json.Number:
			k.set(r, field, x.String(), errs)
		default:
			errs.add(r.Row, field, "must be text or a number, not %s", jsonKind(v))
		}
	}
}

func intFields(k kind) []string {
	var out []string
	for _, f := range []string{"floors", "units"} {
		if _, ok := k.ints[f]; ok {
			out = append(out, f)
		}
	}
	return out
}

func jsonKind(v any) string {
	switch v.(type) {
	case bool:
		return "true or false"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// geometry reads a feature's geometry into r.Point or r.Shape, as k takes.
func (k kind) geometry(r *record, raw json.RawMessage, crs geo.CRS, errs *rowErrors) {
	want := k.geometryTypes()
	if len(raw) == 0 || string(raw) == "null" {
		errs.add(r.Row, "geometry", "is missing: want %s", want)
		return
	}
	var g struct {
		Type        string          `json:"type"`
		Coordinates json.RawMessage `json:"coordinates"`
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		errs.add(r.Row, "geometry", "must be a GeoJSON geometry object: %s", want)
		return
	}
	switch {
	case g.Type == "Point" && k.point:
		var c []float64
		if err := json.Unmarshal(g.Coordinates, &c); err != nil || len(c) < 2 || len(c) > 3 {
			errs.add(r.Row, "geometry", "a Point's coordinates must be [lon, lat]")
			return
		}
		r.Point = point(r.Row, "geometry", c[0], c[1], crs, errs)
	case (g.Type == "Polygon" || g.Type == "MultiPolygon") && k.shape:
		mp, err := geo.ParseGeometry(raw, geo.ParseOptions{CRS: crs})
		if err != nil {
			// geo names where a polygon is wrong: which polygon, ring and
			// position.
			probs, _ := gridwatch.ErrorDetails(err)["problems"].([]geo.Problem)
			for _, p := range probs {
				errs.add(r.Row, "geometry", "%s", strings.TrimPrefix(p.Message, "geometry: "))
			}
			if len(probs) == 0 {
				errs.add(r.Row, "geometry", "%s", gridwatch.ErrorMessage(err))
			}
			return
		}
		r.Shape = mp
	default:
		errs.add(r.Row, "geometry", "is a %s; %s take %s", g.Type, k.name, want)
	}
}

func (k kind) geometryTypes() string {
	switch {
	case k.point && k.shape:
		return "a Point, Polygon or MultiPolygon"
	case k.point:
		return "a Point"
	}
	return "a Polygon or MultiPolygon"
}
