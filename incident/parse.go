package incident

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"gridwatch"
	"gridwatch/geo"
	"gridwatch/internal/jsoncheck"
)

// NewIncident is a report as it arrives, checked and converted to WGS-84.
type NewIncident struct {
	Source      Source
	ExternalID  string
	Category    string
	Title       string
	Description string
	Lon, Lat    float64
	Address     string
	ReportedAt  time.Time
	Priority    string
	// Via is "field" for a report from the field app ("" otherwise), and
	// AccuracyM the phone's accuracy of its position, in metres.
	Via       string
	AccuracyM *float64
	// ComponentID names the city component a component case is about
	// (nil: none); Create checks that it exists.
	ComponentID *int64
	// IdempotencyKey makes a retry return the first incident.
	IdempotencyKey string
	// RequestHash is the SHA-256 of the canonical request (its JSON with
	// keys sorted and whitespace dropped, and its CRS): a retry with the
	// same Idempotency-Key must carry the same request. ParseNew sets it;
	// empty, Create derives it from the fields.
	RequestHash string
}

// maxFuture is how far ahead of the server's clock a report may be dated
// (phones' clocks drift).
const maxFuture = 5 * time.Minute

// CheckReportedAt refuses a report dated more than maxFuture after now or
// more than 5 years before it. The deadline is the report's time plus the
// category's hours, so a clock far ahead would put it out of reach and
// make the handling time negative.
func CheckReportedAt(t, now time.Time) error {
	if t.After(now.Add(maxFuture)) {
		return FieldError("reported_at", "%s is in the future (the server's time is %s; up to %s ahead is accepted)",
			t.Format(time.RFC3339), now.Format(time.RFC3339), maxFuture)
	}
	if t.Before(now.AddDate(-5, 0, 0)) {
		return FieldError("reported_at", "%s is more than 5 years ago", t.Format(time.RFC3339))
	}
	return nil
}

type rawIncident struct {
	Source      *string         `json:"source"`
	ExternalID  *string         `json:"external_id"`
	Category    *string         `json:"category"`
	Title       *string         `json:"title"`
	Description *string         `json:"description"`
	Location    json.RawMessage `json:"location"`
	Address     *string         `json:"address"`
	ReportedAt  *string         `json:"reported_at"`
	Priority    *string         `json:"priority"`
	Via         *string         `json:"via"`
	AccuracyM   *float64        `json:"accuracy_m"`
	ComponentID *int64          `json:"component_id"`
}

// FieldError is a bad field of a report: it names the field.
func FieldError(field, format string, args ...any) error {
	return gridwatch.Errorf(gridwatch.EInvalid, "%s: %s", field, fmt.Sprintf(format, args...)).
		WithDetails(map[string]any{"field": field})
}

// ParseNew reads one report (JSON) and checks every field; the first bad
// field is named in the error. Coordinates in crs are converted to WGS-84.
// Whether the category exists is checked by the store. A report without
// reported_at keeps it zero: Create and the bulk upload date it by the
// service's clock, the one received_at and the deadlines are taken from
// (now, the caller's, only bounds a reported_at given).
func ParseNew(data []byte, crs geo.CRS, now time.Time) (NewIncident, error) {
	// A bulk line is decoded here only, so the text check (NUL, UTF-8, a
	// second document on the line) is here too; it names the field.
	if err := jsoncheck.Check(data); err != nil {
		return NewIncident{}, err
	}
	var raw rawIncident
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return NewIncident{}, gridwatch.Errorf(gridwatch.EInvalidJSON, "not valid JSON: %v", err)
		case errors.As(err, &te):
			if te.Field == "" {
				return NewIncident{}, gridwatch.Errorf(gridwatch.EInvalid, "an incident is a JSON object, not %s", te.Value)
			}
			return NewIncident{}, FieldError(te.Field, "want a JSON %s, got %s", te.Type, te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return NewIncident{}, FieldError(f, "unknown field")
		}
		return NewIncident{}, gridwatch.Errorf(gridwatch.EInvalidJSON, "not valid JSON: %v", err)
	}
	var n NewIncident
	n.RequestHash = canonicalHash(data, crs)
	src := deref(raw.Source)
	if src == "" {
		return n, FieldError("source", "is required: one of %s", joinSources())
	}
	if !slices.Contains(Sources(), Source(src)) {
		return n, FieldError("source", "%q is not one of %s", src, joinSources())
	}
	n.Source = Source(src)
	if n.ExternalID = strings.TrimSpace(deref(raw.ExternalID)); utf8.RuneCountInString(n.ExternalID) > 100 {
		return n, FieldError("external_id", "is longer than 100 characters")
	}
	if n.Category = strings.TrimSpace(deref(raw.Category)); n.Category == "" {
		return n, FieldError("category", "is required: a subclass code such as 0101 (GET /api/v1/categories)")
	}
	if n.Title = strings.TrimSpace(deref(raw.Title)); n.Title == "" {
		return n, FieldError("title", "is required")
	}
	if utf8.RuneCountInString(n.Title) > 200 {
		return n, FieldError("title", "is longer than 200 characters")
	}
	if n.Description = strings.TrimSpace(deref(raw.Description)); utf8.RuneCountInString(n.Description) > 5000 {
		return n, FieldError("description", "is longer than 5000 characters")
	}
	if n.Address = strings.TrimSpace(deref(raw.Address)); utf8.RuneCountInString(n.Address) > 500 {
		return n, FieldError("address", "is longer than 500 characters")
	}
	for field, v := range map[string]string{"title": n.Title, "description": n.Description, "address": n.Address, "external_id": n.ExternalID} {
		if strings.ContainsRune(v, 0) {
			return n, FieldError(field, "holds a NUL character")
		}
	}
	var err error
	if n.Lon, n.Lat, err = parsePoint(raw.Location, crs); err != nil {
		return n, err
	}
	if raw.ReportedAt != nil {
		t, err := time.Parse(time.RFC3339, *raw.ReportedAt)
		if err != nil {
			return n, FieldError("reported_at", "%q is not an RFC 3339 time with offset, such as 2026-11-26T08:30:00+08:00", *raw.ReportedAt)
		}
		if err := CheckReportedAt(t, now); err != nil {
			return n, err
		}
		n.ReportedAt = t
	}
	n.Priority = "normal"
	if raw.Priority != nil {
		if !slices.Contains(Priorities(), *raw.Priority) {
			return n, FieldError("priority", "%q is not one of %s", *raw.Priority, strings.Join(Priorities(), ", "))
		}
		n.Priority = *raw.Priority
	}
	if n.Via = deref(raw.Via); n.Via != "" && n.Via != "field" {
		return n, FieldError("via", "%q is not known: \"field\" (the field app) or leave it out", n.Via)
	}
	if raw.AccuracyM != nil {
		if a := *raw.AccuracyM; math.IsNaN(a) || a < 0 || a > 100000 {
			return n, FieldError("accuracy_m", "%v is not an accuracy in metres (0 to 100000)", a)
		}
		n.AccuracyM = raw.AccuracyM
	}
	if raw.ComponentID != nil {
		if *raw.ComponentID <= 0 {
			return n, FieldError("component_id", "%d is not a component id", *raw.ComponentID)
		}
		n.ComponentID = raw.ComponentID
	}
	return n, nil
}

// canonicalHash hashes a request as the IETF idempotency-key draft compares
// them: the same JSON whatever its key order and spacing (re-encoded, which
// sorts object keys), in the same CRS, is the same request.
func canonicalHash(data []byte, crs geo.CRS) string {
	var v any
	canon := data
	if err := json.Unmarshal(data, &v); err == nil {
		if b, err := json.Marshal(v); err == nil {
			canon = b
		}
	}
	h := sha256.New()
	h.Write([]byte(crs))
	h.Write([]byte{0})
	h.Write(canon)
	return hex.EncodeToString(h.Sum(nil))
}

// fieldsHash is the request hash of a report built in code rather than
// parsed from a body: its fields, in a fixed order.
func (n NewIncident) fieldsHash() string {
	fields := []any{n.Source, n.ExternalID, n.Category, n.Title, n.Description, n.Lon, n.Lat,
		n.Address, n.ReportedAt.UTC().Format(time.RFC3339Nano), n.Priority}
	if n.ComponentID != nil {
		// Only when set: the hashes of reports without one stay as they were.
		fields = append(fields, *n.ComponentID)
	}
	b, _ := json.Marshal(fields)
	return canonicalHash(b, geo.CRSWGS84)
}

// parsePoint reads a GeoJSON Point and converts it from crs to WGS-84.
func parsePoint(raw json.RawMessage, crs geo.CRS) (float64, float64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, 0, FieldError("location", `is required: {"type":"Point","coordinates":[lon,lat]}`)
	}
	var p struct {
		Type        string    `json:"type"`
		Coordinates []float64 `json:"coordinates"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return 0, 0, FieldError("location", `must be a GeoJSON Point {"type":"Point","coordinates":[lon,lat]}`)
	}
	if p.Type != "Point" {
		return 0, 0, FieldError("location", "type is %q; want Point", p.Type)
	}
	if len(p.Coordinates) < 2 || len(p.Coordinates) > 3 {
		return 0, 0, FieldError("location", "coordinates has %d numbers; want [lon, lat]", len(p.Coordinates))
	}
	lon, lat := p.Coordinates[0], p.Coordinates[1]
	if math.IsNaN(lon) || math.IsNaN(lat) {
		return 0, 0, FieldError("location", "coordinates are not numbers")
	}
	if err := geo.CheckLonLat(lon, lat); err != nil {
		return 0, 0, FieldError("location", "%s", strings.TrimPrefix(gridwatch.ErrorMessage(err), "point "))
	}
	lon, lat = crs.ToWGS84(lon, lat)
	return lon, lat, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func joinSources() string {
	var b strings.Builder
	for i, s := range Sources() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(s))
	}
	return b.String()
}
