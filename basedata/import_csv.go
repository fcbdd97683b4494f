package basedata

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"strconv"
	"strings"

	"gridwatch"
	"gridwatch/geo"
)

// CSV imports: a header row naming the columns (in any order, any case),
// then one row per building or component with its point as lon and lat.
// Columns of the exports that an import does not read (id, the grid, the
// class's name) are allowed, so an export can be edited and imported
// again; any other column is refused, for a misspelt one would be lost.

// csvAliases are other names of the point's columns.
var csvAliases = map[string]string{"lng": "lon", "longitude": "lon", "latitude": "lat", "class_code": "class"}

// csvIgnored are export columns an import does not read.
var csvIgnored = []string{"id", "grid_id", "grid_code", "grid_name", "class_name", "households", "updated_at", "area_m2"}

func (k kind) parseCSV(data []byte, crs geo.CRS, errs *rowErrors) ([]record, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a BOM, as spreadsheets write
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, gridwatch.Errorf(gridwatch.EInvalid, "the CSV header cannot be read: %v", err)
	}
	cols := make(map[string]int, len(header))
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(h))
		if a, ok := csvAliases[name]; ok {
			name = a
		}
		if !k.column(name) {
			return nil, gridwatch.Errorf(gridwatch.EInvalid, "the CSV header has an unknown column %q (column %d): %s take %s",
				h, i+1, k.name, strings.Join(k.columns(), ", ")).WithDetails(map[string]any{"column": h})
		}
		if _, dup := cols[name]; dup {
			return nil, gridwatch.Errorf(gridwatch.EInvalid, "the CSV header names column %q twice", h).WithDetails(map[string]any{"column": h})
		}
		cols[name] = i
	}
	for _, need := range k.required() {
		if _, ok := cols[need]; !ok {
			return nil, gridwatch.Errorf(gridwatch.EInvalid, "the CSV header has no %s column: %s take %s",
				need, k.name, strings.Join(k.columns(), ", ")).WithDetails(map[string]any{"column": need})
		}
	}
	var recs []record
	for n := 1; ; n++ {
		fields, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) && !errors.Is(pe.Err, csv.ErrFieldCount) {
			// The reader cannot tell where the next row starts after a
			// broken quote.
			errs.add(n, "row", "cannot be read (line %d, column %d): %v", pe.Line, pe.Column, pe.Err)
			break
		}
		if err != nil && !errors.As(err, &pe) {
			return nil, err
		}
		if len(fields) != len(header) {
			errs.add(n, "row", "has %d fields; the header has %d", len(fields), len(header))
			continue
		}
		if len(fields) == 1 && strings.TrimSpace(fields[0]) == "" {
			continue // a blank line
		}
		r := record{Row: n}
		before := errs.count
		k.csvRow(&r, fields, cols, crs, errs)
		if errs.count == before {
			recs = append(recs, r)
		}
	}
	return recs, nil
}

// csvRow reads one CSV row into r.
func (k kind) csvRow(r *record, fields []string, cols map[string]int, crs geo.CRS, errs *rowErrors) {
	for _, name := range k.columns() {
		if i, ok := cols[name]; ok && name != "lon" && name != "lat" {
			k.set(r, name, fields[i], errs)
		}
	}
	var lonlat [2]float64
	ok := true
	for j, name := range []string{"lon", "lat"} {
		v := strings.TrimSpace(fields[cols[name]])
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			if v == "" {
				errs.add(r.Row, name, "is required")
			} else {
				errs.add(r.Row, name, "%q is not a number", v)
			}
			ok = false
			continue
		}
		lonlat[j] = f
	}
	if ok {
		field := "lon"
		if lat := lonlat[1]; !(lat >= -90 && lat <= 90) {
			field = "lat"
		}
		r.Point = point(r.Row, field, lonlat[0], lonlat[1], crs, errs)
	}
	k.finish(r, errs)
}

// field reports whether k reads the field name.
func (k kind) field(name string) bool {
	_, isInt := k.ints[name]
	return isInt || contains(k.text, name)
}

// column reports whether a CSV of k may have the column name.
func (k kind) column(name string) bool {
	return k.field(name) || name == "lon" || name == "lat" || contains(csvIgnored, name)
}

// columns lists the columns a CSV of k reads.
func (k kind) columns() []string {
	return append(append(append([]string{}, k.text...), intFields(k)...), "lon", "lat")
}

// required lists the columns a CSV of k must have.
func (k kind) required() []string {
	if k.name == componentKind.name {
		return []string{"code", "class", "lon", "lat"}
	}
	return []string{"code", "lon", "lat"}
}
