package database

import (
	"database/sql/driver"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/twpayne/go-geom"
	"github.com/twpayne/go-geom/encoding/ewkb"
)

// GeometryCodec carries PostGIS geometry values as EWKB. It is registered for
// the geometry type on every pooled connection, so that geometry parameters
// and results travel as bytes in the binary format and as hex EWKB in the text
// format (the simple protocol).
//
// Values it encodes: EWKB (or []byte holding EWKB), and go-geom geometries
// (geom.T). Targets it scans into: *EWKB, *geom.T, **geom.MultiPolygon,
// **geom.Polygon and **geom.Point; *[]byte too in the binary format only (pgx
// hands text-format results to *[]byte as they come, as hex). NULL scans to nil.
type GeometryCodec struct{}

// EWKB is a geometry as PostGIS extended well-known binary. Use it rather than
// []byte for parameters and targets: it is bound to the geometry type even
// where the protocol sends no parameter types.
type EWKB []byte

// FormatSupported reports that both formats are supported.
func (GeometryCodec) FormatSupported(format int16) bool {
	return format == pgtype.BinaryFormatCode || format == pgtype.TextFormatCode
}

// PreferredFormat is binary: raw EWKB, no hex round trip.
func (GeometryCodec) PreferredFormat() int16 { return pgtype.BinaryFormatCode }

// PlanEncode returns a plan for []byte and geom.T values.
func (GeometryCodec) PlanEncode(_ *pgtype.Map, _ uint32, format int16, value any) pgtype.EncodePlan {
	switch value.(type) {
	case EWKB, []byte, geom.T:
		return geometryEncodePlan{text: format == pgtype.TextFormatCode}
	}
	return nil
}

type geometryEncodePlan struct{ text bool }

func (p geometryEncodePlan) Encode(value any, buf []byte) ([]byte, error) {
	var raw []byte
	switch v := value.(type) {
	case EWKB:
		if v == nil {
			return nil, nil
		}
		raw = v
	case []byte:
		if v == nil {
			return nil, nil
		}
		raw = v
	case geom.T:
		if isNilGeom(v) {
			return nil, nil
		}
		var err error
		if raw, err = ewkb.Marshal(v, binary.LittleEndian); err != nil {
			return nil, fmt.Errorf("encode geometry: %w", err)
		}
	default:
		return nil, fmt.Errorf("encode geometry: unsupported type %T", value)
	}
	if p.text {
		return hex.AppendEncode(buf, raw), nil
	}
	return append(buf, raw...), nil
}

// isNilGeom reports a typed nil pointer inside a geom.T.
func isNilGeom(g geom.T) bool {
	switch v := g.(type) {
	case *geom.Point:
		return v == nil
	case *geom.Polygon:
		return v == nil
	case *geom.MultiPolygon:
		return v == nil
	case *geom.LineString:
		return v == nil
	case *geom.MultiPoint:
		return v == nil
	case *geom.MultiLineString:
		return v == nil
	case *geom.GeometryCollection:
		return v == nil
	}
	return g == nil
}

// PlanScan returns a plan for the targets listed on GeometryCodec.
func (GeometryCodec) PlanScan(_ *pgtype.Map, _ uint32, format int16, target any) pgtype.ScanPlan {
	switch target.(type) {
	case *EWKB, *[]byte, *geom.T, **geom.MultiPolygon, **geom.Polygon, **geom.Point:
		return geometryScanPlan{text: format == pgtype.TextFormatCode}
	}
	return nil
}

type geometryScanPlan struct{ text bool }

func (p geometryScanPlan) Scan(src []byte, target any) error {
	if src == nil {
		switch t := target.(type) {
		case *EWKB:
			*t = nil
		case *[]byte:
			*t = nil
		case *geom.T:
			*t = nil
		case **geom.MultiPolygon:
			*t = nil
		case **geom.Polygon:
			*t = nil
		case **geom.Point:
			*t = nil
		}
		return nil
	}
	raw, err := rawEWKB(src, p.text)
	if err != nil {
		return err
	}
	switch t := target.(type) {
	case *EWKB:
		*t = raw
		return nil
	case *[]byte:
		*t = raw
		return nil
	}
	g, err := ewkb.Unmarshal(raw)
	if err != nil {
		return fmt.Errorf("decode geometry: %w", err)
	}
	switch t := target.(type) {
	case *geom.T:
		*t = g
	case **geom.MultiPolygon:
		return assignAs(g, t)
	case **geom.Polygon:
		return assignAs(g, t)
	case **geom.Point:
		return assignAs(g, t)
	}
	return nil
}

func assignAs[T geom.T](g geom.T, dst *T) error {
	v, ok := g.(T)
	if !ok {
		return fmt.Errorf("decode geometry: got %T, want %T", g, *dst)
	}
	*dst = v
	return nil
}

// rawEWKB returns a copy of the EWKB in src (src is only valid during Scan).
func rawEWKB(src []byte, text bool) ([]byte, error) {
	if !text {
		return append([]byte(nil), src...), nil
	}
	raw := make([]byte, hex.DecodedLen(len(src)))
	if _, err := hex.Decode(raw, src); err != nil {
		return nil, fmt.Errorf("decode geometry text: %w", err)
	}
	return raw, nil
}

// DecodeDatabaseSQLValue returns the EWKB bytes.
func (GeometryCodec) DecodeDatabaseSQLValue(_ *pgtype.Map, _ uint32, format int16, src []byte) (driver.Value, error) {
	if src == nil {
		return nil, nil
	}
	return rawEWKB(src, format == pgtype.TextFormatCode)
}

// DecodeValue returns the geometry as a geom.T.
func (GeometryCodec) DecodeValue(_ *pgtype.Map, _ uint32, format int16, src []byte) (any, error) {
	if src == nil {
		return nil, nil
	}
	raw, err := rawEWKB(src, format == pgtype.TextFormatCode)
	if err != nil {
		return nil, err
	}
	return ewkb.Unmarshal(raw)
}
