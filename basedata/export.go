package basedata

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/internal/database"
)

// Exports of buildings, parcels and components as v sees them, filtered
// as their lists are, whole (no paging), in id order: a GeoJSON
// FeatureCollection (the geometry, the fields as properties) or a CSV with
// a header row (points as lon and lat; a parcel by a point on its surface).
// A CSV of buildings or components imports again as it is. Text cells a
// spreadsheet would run as a formula are quoted with an apostrophe.

// exportSpec is how one kind is exported: its query (the columns, then
// the GeoJSON geometry, lon and lat last) and its column names.
type exportSpec struct {
	from    string
	where   func(Filter, Viewer) database.Where
	columns string
	names   []string
	// numeric marks the columns written as JSON numbers.
	numeric map[string]bool
}

var exports = map[string]exportSpec{
	"buildings": {
		from: " FROM buildings b LEFT JOIN grids g ON g.id = b.grid_id", where: buildingWhere,
		columns: `b.id, b.code, b.name, b.address, b.floors::text, b.units::text, b.use, g.code,
			ST_AsGeoJSON(coalesce(b.footprint, b.location), 7), ST_X(b.location), ST_Y(b.location)`,
		names:   []string{"id", "code", "name", "address", "floors", "units", "use", "grid_code"},
		numeric: map[string]bool{"floors": true, "units": true},
	},
	"components": {
		from: " FROM components k JOIN component_classes c ON c.code = k.class_code LEFT JOIN grids g ON g.id = k.grid_id", where: componentWhere,
		columns: `k.id, k.code, k.class_code, c.name, k.name, k.department, k.state, k.address, g.code,
			ST_AsGeoJSON(k.location, 7), ST_X(k.location), ST_Y(k.location)`,
		names: []string{"id", "code", "class", "class_name", "name", "department", "state", "address", "grid_code"},
	},
	"parcels": {
		from: " FROM parcels p CROSS JOIN LATERAL (SELECT ST_PointOnSurface(p.geom) AS at) s", where: parcelWhere,
		columns: `p.id, p.code, p.name, p.use, p.holder, round(p.area_m2::numeric, 1)::text,
			ST_AsGeoJSON(p.geom, 7), ST_X(s.at), ST_Y(s.at)`,
		names:   []string{"id", "code", "name", "use", "holder", "area_m2"},
		numeric: map[string]bool{"area_m2": true},
	},
}

// Export writes the kind (buildings, parcels or components) of base data
// v sees, filtered by f, to out in format.
func (s *Service) Export(ctx context.Context, kind string, format ImportFormat, f Filter, v Viewer, out io.Writer) error {
	spec, ok := exports[kind]
	if !ok {
		return gridwatch.Errorf(gridwatch.EInvalid, "cannot export %q: buildings, parcels or components", kind)
	}
	if kind == "components" {
		if err := CheckFilter(f); err != nil {
			return err
		}
	}
	if format != FormatCSV && format != FormatGeoJSON {
		_, err := ParseFormat(string(format))
		return err
	}
	w := spec.where(f, v)
	return database.Stream(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+spec.columns+spec.from+w.SQL()+` ORDER BY 1`, w.Args()...)
		if err != nil {
			return fmt.Errorf("export %s: %w", kind, err)
		}
		defer rows.Close()
		bw := bufio.NewWriterSize(out, 64<<10)
		if format == FormatCSV {
			err = exportCSV(rows, spec, bw)
		} else {
			err = exportGeoJSON(rows, spec, bw)
		}
		if err != nil {
			return fmt.Errorf("export %s: %w", kind, err)
		}
		return bw.Flush()
	})
}

// exportRow reads a row of spec's query: the id, the text columns (nil
// for NULL), the geometry and the point.
func exportRow(rows pgx.Rows, spec exportSpec) (int64, []*string, string, float64, float64, error) {
	var (
		id       int64
		geometry string
		lon, lat float64
	)
	cells := make([]*string, len(spec.names)-1)
	dest := []any{&id}
	for i := range cells {
		dest = append(dest, &cells[i])
	}
	dest = append(dest, &geometry, &lon, &lat)
	err := rows.Scan(dest...)
	return id, cells, geometry, lon, lat, err
}

func exportCSV(rows pgx.Rows, spec exportSpec, out io.Writer) error {
	cw := csv.NewWriter(out)
	if err := cw.Write(append(append([]string{}, spec.names...), "lon", "lat")); err != nil {
		return err
	}
	for rows.Next() {
		id, cells, _, lon, lat, err := exportRow(rows, spec)
		if err != nil {
			return err
		}
		rec := []string{strconv.FormatInt(id, 10)}
		for _, c := range cells {
			v := ""
			if c != nil {
				v = csvText(*c)
			}
			rec = append(rec, v)
		}
		rec = append(rec, strconv.FormatFloat(lon, 'f', 7, 64), strconv.FormatFloat(lat, 'f', 7, 64))
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

func exportGeoJSON(rows pgx.Rows, spec exportSpec, out io.Writer) error {
	if _, err := io.WriteString(out, `{"type":"FeatureCollection","features":[`); err != nil {
		return err
	}
	first := true
	for rows.Next() {
		id, cells, geometry, _, _, err := exportRow(rows, spec)
		if err != nil {
			return err
		}
		props := make(map[string]any, len(cells))
		for i, c := range cells {
			name := spec.names[i+1]
			switch {
			case c == nil:
				props[name] = nil
			case spec.numeric[name]:
				props[name] = json.Number(*c)
			default:
				props[name] = *c
			}
		}
		feature, err := json.Marshal(map[string]any{"type": "Feature", "id": id, "geometry": json.RawMessage(geometry), "properties": props})
		if err != nil {
			return err
		}
		if !first {
			feature = append([]byte{','}, feature...)
		}
		first = false
		if _, err := out.Write(feature); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	_, err := io.WriteString(out, "]}\n")
	return err
}

// csvText is a text cell a spreadsheet will not run as a formula.
func csvText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
