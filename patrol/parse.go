package patrol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"gridwatch"
	"gridwatch/geo"
)

// Point is one sampled position of a track, in WGS-84.
type Point struct {
	At        time.Time
	Lon, Lat  float64
	AccuracyM *float64
}

// rawPoint is a point as the phone sends it.
type rawPoint struct {
	At        *string  `json:"at"`
	Lon       *float64 `json:"lon"`
	Lat       *float64 `json:"lat"`
	AccuracyM *float64 `json:"accuracy_m"`
}

// ParsePoints reads a batch, {"points":[{"at","lon","lat","accuracy_m"}]}:
// 1 to MaxBatch points, each with an RFC 3339 time (kept to the
// microsecond, as stored), a longitude and latitude in range (in crs,
// converted to WGS-84) and an optional accuracy in metres, not negative.
// The first bad point is named in the error: details field
// ("points[3].lat") and index. Whether the times fit the patrol is the
// store's to check.
func ParsePoints(data []byte, crs geo.CRS) ([]Point, error) {
	var body struct {
		Points []json.RawMessage `json:"points"`
	}
	if err := decodeStrict(data, &body, ""); err != nil {
		return nil, err
	}
	switch {
	case body.Points == nil:
		return nil, FieldError("points", nil, "is required: a list of {\"at\",\"lon\",\"lat\",\"accuracy_m\"}")
	case len(body.Points) == 0:
		return nil, FieldError("points", nil, "is empty: send 1 to %d points", MaxBatch)
	case len(body.Points) > MaxBatch:
		return nil, gridwatch.Errorf(gridwatch.ETooLarge, "points: %d in one batch, at most %d: send the rest in another", len(body.Points), MaxBatch).
			WithDetails(map[string]any{"field": "points", "max": MaxBatch})
	}
	out := make([]Point, len(body.Points))
	for i, raw := range body.Points {
		p, err := parsePoint(raw, i, crs)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

func parsePoint(raw json.RawMessage, i int, crs geo.CRS) (Point, error) {
	prefix := "points[" + strconv.Itoa(i) + "]"
	at := map[string]any{"index": i}
	bad := func(field, format string, args ...any) error {
		return FieldError(prefix+"."+field, at, format, args...)
	}
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return Point{}, FieldError(prefix, at, "want an object {\"at\",\"lon\",\"lat\",\"accuracy_m\"}")
	}
	var r rawPoint
	if err := decodeStrict(raw, &r, prefix); err != nil {
		var e *gridwatch.Error
		if errors.As(err, &e) && e.Details != nil {
			e.Details["index"] = i
		}
		return Point{}, err
	}
	var p Point
	switch {
	case r.At == nil:
		return p, bad("at", "is required: the time of the fix, RFC 3339 such as 2026-11-26T09:30:00+08:00")
	case r.Lon == nil:
		return p, bad("lon", "is required")
	case r.Lat == nil:
		return p, bad("lat", "is required")
	}
	t, err := time.Parse(time.RFC3339Nano, *r.At)
	if err != nil {
		return p, bad("at", "%q is not an RFC 3339 time such as 2026-11-26T09:30:00+08:00", *r.At)
	}
	if t.Year() < 2000 || t.Year() > 9000 {
		return p, bad("at", "%q: want a year from 2000 to 9000", *r.At)
	}
	p.At = t.Truncate(time.Microsecond)
	lon, lat := *r.Lon, *r.Lat
	switch {
	case math.IsNaN(lon) || math.IsInf(lon, 0) || lon < -180 || lon > 180:
		return p, bad("lon", "%v is not a longitude from -180 to 180", lon)
	case math.IsNaN(lat) || math.IsInf(lat, 0) || lat < -90 || lat > 90:
		return p, bad("lat", "%v is not a latitude from -90 to 90", lat)
	}
	p.Lon, p.Lat = crs.ToWGS84(lon, lat)
	if r.AccuracyM != nil {
		a := *r.AccuracyM
		if math.IsNaN(a) || math.IsInf(a, 0) || a < 0 || a > 1e6 {
			return p, bad("accuracy_m", "%v is not an accuracy in metres (0 to 1000000)", a)
		}
		p.AccuracyM = &a
	}
	return p, nil
}

// decodeStrict decodes one JSON value into v, refusing unknown fields and
// anything after it; errors name the field under prefix.
func decodeStrict(data []byte, v any, prefix string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, err := dec.Token(); err != io.EOF {
			return gridwatch.Errorf(gridwatch.EInvalidJSON, "the body holds more than one JSON value")
		}
		return nil
	}
	name := func(f string) string {
		switch {
		case prefix == "" && f == "":
			return "body"
		case prefix == "":
			return f
		case f == "":
			return prefix
		}
		return prefix + "." + f
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return gridwatch.Errorf(gridwatch.EInvalidJSON, "the body is not valid JSON: %v", err)
	case errors.As(err, &te):
		f := name(te.Field)
		return gridwatch.Errorf(gridwatch.EInvalid, "%s: want a JSON %s, got %s", f, jsonType(te.Type.Kind().String()), te.Value).
			WithDetails(map[string]any{"field": f})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := name(strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`))
		return gridwatch.Errorf(gridwatch.EInvalid, "unknown field %q", f).WithDetails(map[string]any{"field": f})
	}
	// A number out of float64's range, say.
	return gridwatch.Errorf(gridwatch.EInvalid, "%s", fmt.Sprintf("the body is not valid: %v", err)).
		WithDetails(map[string]any{"field": name("")})
}

// jsonType names a Go kind as JSON would.
func jsonType(kind string) string {
	switch kind {
	case "float64", "float32", "int", "int64":
		return "number"
	case "ptr", "string":
		return "string"
	case "slice":
		return "array"
	case "struct", "map":
		return "object"
	}
	return kind
}
