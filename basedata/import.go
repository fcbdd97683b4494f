package basedata

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/twpayne/go-geom"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/geo"
	"gridwatch/internal/database"
)

// Imports of buildings, parcels and components: GeoJSON or CSV, all or
// nothing. Every row is read and checked (in Go: structure, fields,
// coordinates; in PostGIS: polygon validity, component classes) and every
// bad row is reported at once, by row and field (EInvalidRows); nothing is
// stored unless all are good. Good rows are staged with COPY into a
// temporary table and written by one set-based upsert (by code) that places
// each row in its grid in the same statement.

// EInvalidRows is the error code of an import with bad rows (422): its
// details are {"rows":[{"row","field","message"}],"count"}.
const EInvalidRows = gridwatch.EInvalidRows

// MaxListedRows caps the bad rows an error lists; its count is whole.
const MaxListedRows = 100

// maxText is the longest a text field (name, address, …) may be, and
// maxCode a code.
const (
	maxText = 500
	maxCode = 64
)

// ImportFormat is the format of an import or an export.
type ImportFormat string

// The formats.
const (
	FormatGeoJSON ImportFormat = "geojson"
	FormatCSV     ImportFormat = "csv"
)

// ParseFormat reads a format name; "" is GeoJSON.
func ParseFormat(s string) (ImportFormat, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "geojson", "json":
		return FormatGeoJSON, nil
	case "csv":
		return FormatCSV, nil
	}
	return "", gridwatch.Errorf(gridwatch.EInvalid, "unknown format %q: use geojson or csv", s).
		WithDetails(map[string]any{"param": "format", "value": s, "allowed": []string{string(FormatGeoJSON), string(FormatCSV)}})
}

// ImportOptions say how to read an import.
type ImportOptions struct {
	Format ImportFormat
	// CRS of the coordinates; converted to WGS-84 before storing.
	CRS geo.CRS
	// Viewer is who imports (the scope of residents' imports).
	Viewer Viewer
	// SyntheticIDs lets a residents import take ID numbers whose check
	// digit is wrong: the demo's made-up people, whose numbers must not
	// be anyone's — and phones beginning 100, which no one is given. Real
	// imports refuse both (a mistyped digit).
	SyntheticIDs bool
}

// ImportResult is what an import did.
type ImportResult struct {
	Created int `json:"created"`
	Updated int `json:"updated"`
	// Grids is how many distinct grids the imported rows lie in;
	// Unassigned how many rows lie in none (kept, without a grid).
	Grids      int `json:"grids"`
	Unassigned int `json:"unassigned"`
}

// RowError is one thing wrong with one row of an import: the row (1-based:
// the data row of a CSV after its header, the feature of a GeoJSON file),
// the field and what is wrong.
type RowError struct {
	Row     int    `json:"row"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

// rowErrors collects an import's bad rows: the first MaxListedRows, and
// how many in all.
type rowErrors struct {
	list  []RowError
	count int
}

func (e *rowErrors) add(row int, field, format string, args ...any) {
	e.count++
	if len(e.list) < MaxListedRows {
		e.list = append(e.list, RowError{Row: row, Field: field, Message: fmt.Sprintf(format, args...)})
	}
}

// err is the EInvalidRows error of the collected rows, or nil.
func (e *rowErrors) err(what string) error {
	if e.count == 0 {
		return nil
	}
	first := e.list[0]
	msg := fmt.Sprintf("row %d: %s: %s", first.Row, first.Field, first.Message)
	if e.count > 1 {
		msg = fmt.Sprintf("%d problems in the %s; nothing was imported; the first: %s", e.count, what, msg)
	} else {
		msg = fmt.Sprintf("the %s: nothing was imported: %s", what, msg)
	}
	return gridwatch.Errorf(EInvalidRows, "%s", msg).WithDetails(map[string]any{"rows": e.list, "count": e.count})
}

// record is one row of an import, read and converted to WGS-84.
type record struct {
	Row                              int
	Code, Name, Address, Use, Holder string
	Class, Department, State         string
	Floors, Units                    *int32
	Point                            *geom.Point
	Shape                            *geom.MultiPolygon
}

// kind is what an import holds: its name, the fields a row may carry and
// which geometries it takes.
type kind struct {
	name string // buildings, parcels, components
	// text are the text fields, ints the integer fields with their
	// ranges.
	text []string
	ints map[string][2]int
	// point and shape say whether a row may have a point, a polygon.
	point, shape bool
}

var (
	buildingKind = kind{name: "buildings", text: []string{"code", "name", "address", "use"},
		ints: map[string][2]int{"floors": {0, 300}, "units": {0, 10000}}, point: true, shape: true}
	parcelKind    = kind{name: "parcels", text: []string{"code", "name", "use", "holder"}, shape: true}
	componentKind = kind{name: "components", text: []string{"code", "class", "name", "department", "state", "address"}, point: true}
)

// set stores field's value in r, checking it; a problem goes to errs.
func (k kind) set(r *record, field, value string, errs *rowErrors) {
	value = strings.TrimSpace(value)
	if lim, ok := k.ints[field]; ok {
		if value == "" {
			return
		}
		n, ok := wholeNumber(value)
		if !ok {
			errs.add(r.Row, field, "%q is not a whole number", value)
			return
		}
		if n < lim[0] || n > lim[1] {
			errs.add(r.Row, field, "%d is out of range: from %d to %d", n, lim[0], lim[1])
			return
		}
		v := int32(n)
		if field == "floors" {
			r.Floors = &v
		} else {
			r.Units = &v
		}
		return
	}
	if strings.ContainsRune(value, 0) {
		errs.add(r.Row, field, "holds a NUL character")
		return
	}
	max := maxText
	if field == "code" {
		max = maxCode
	}
	if n := len([]rune(value)); n > max {
		errs.add(r.Row, field, "is %d characters long; at most %d", n, max)
		return
	}
	switch field {
	case "code":
		r.Code = value
	case "name":
		r.Name = value
	case "address":
		r.Address = value
	case "use":
		r.Use = value
	case "holder":
		r.Holder = value
	case "class":
		r.Class = value
	case "department":
		r.Department = value
	case "state":
		r.State = value
	}
}

// finish checks what a row needs whatever its format: a code, a class and
// a known state for a component, and a geometry.
func (k kind) finish(r *record, errs *rowErrors) {
	if r.Code == "" {
		errs.add(r.Row, "code", "is required")
	}
	if k.name == componentKind.name {
		if r.Class == "" {
			errs.add(r.Row, "class", "is required: a GB/T 30428.2 class code such as 0101 (GET /api/v1/component-classes)")
		} else if !classPattern(r.Class) {
			errs.add(r.Row, "class", "%q is not a class code: 2 or 4 digits, such as 0101", r.Class)
		}
		switch {
		case r.State == "":
			r.State = StateIntact
		case !contains(States(), r.State):
			errs.add(r.Row, "state", "%q is not one of %s", r.State, strings.Join(States(), ", "))
		}
	}
}

// wholeNumber reads an integer, written as one or as a number with no
// fraction (GIS tools write 12.0).
func wholeNumber(s string) (int, bool) {
	if n, err := strconv.Atoi(s); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) || math.Abs(f) > 1e9 {
		return 0, false
	}
	return int(f), true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// point reads a point's coordinates as given, checks them and converts
// them to WGS-84; field names them in errors.
func point(row int, field string, lon, lat float64, crs geo.CRS, errs *rowErrors) *geom.Point {
	if err := geo.CheckLonLat(lon, lat); err != nil {
		errs.add(row, field, "%s", strings.TrimPrefix(gridwatch.ErrorMessage(err), "point "))
		return nil
	}
	lon, lat = crs.ToWGS84(lon, lat)
	return geom.NewPointFlat(geom.XY, []float64{lon, lat}).SetSRID(4326)
}

// checkCodes reports the codes given twice in one import.
func checkCodes(recs []record, errs *rowErrors) {
	first := make(map[string]int, len(recs))
	for _, r := range recs {
		if r.Code == "" {
			continue
		}
		if at, dup := first[r.Code]; dup {
			errs.add(r.Row, "code", "%q is given again (first in row %d)", r.Code, at)
			continue
		}
		first[r.Code] = r.Row
	}
}

// parse reads an import of kind k in o's format.
func (k kind) parse(r io.Reader, o ImportOptions) ([]record, *rowErrors, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil, gridwatch.Errorf(gridwatch.EInvalid, "the import is empty: send a GeoJSON FeatureCollection or a CSV with a header row")
	}
	var recs []record
	errs := &rowErrors{}
	switch o.Format {
	case FormatCSV:
		recs, err = k.parseCSV(data, o.CRS, errs)
	case FormatGeoJSON, "":
		recs, err = k.parseGeoJSON(data, o.CRS, errs)
	default:
		_, err = ParseFormat(string(o.Format))
	}
	if err != nil {
		return nil, nil, err
	}
	checkCodes(recs, errs)
	return recs, errs, nil
}

// stage creates the temporary table import_rows in tx and copies recs in.
func stage(ctx context.Context, tx pgx.Tx, recs []record) error {
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE import_rows (row int, code text, name text, address text, use text, holder text,
		class_code text, department text, state text, floors int, units int, location geometry, shape geometry) ON COMMIT DROP`); err != nil {
		return err
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"import_rows"},
		[]string{"row", "code", "name", "address", "use", "holder", "class_code", "department", "state", "floors", "units", "location", "shape"},
		pgx.CopyFromSlice(len(recs), func(i int) ([]any, error) {
			r := &recs[i]
			var pt, shape geom.T
			if r.Point != nil {
				pt = r.Point
			}
			if r.Shape != nil {
				shape = r.Shape
			}
			return []any{int32(r.Row), r.Code, r.Name, r.Address, r.Use, r.Holder, r.Class, r.Department, r.State,
				r.Floors, r.Units, pt, shape}, nil
		}))
	return err
}

// checkStaged adds to errs what PostGIS finds wrong with the staged rows:
// polygons that are not valid (with the reason and where), and, for
// components, classes that do not exist.
func (k kind) checkStaged(ctx context.Context, tx pgx.Tx, errs *rowErrors) error {
	rows, err := tx.Query(ctx, `SELECT row, ST_IsValidReason(shape) FROM import_rows
		WHERE shape IS NOT NULL AND NOT ST_IsValid(shape) ORDER BY row`)
	if err != nil {
		return err
	}
	var (
		row    int32
		reason string
	)
	if _, err := pgx.ForEachRow(rows, []any{&row, &reason}, func() error {
		errs.add(int(row), "geometry", "is not a valid polygon: %s", reason)
		return nil
	}); err != nil {
		return err
	}
	if k.name != componentKind.name {
		return nil
	}
	rows, err = tx.Query(ctx, `SELECT r.row, r.class_code FROM import_rows r
		WHERE NOT EXISTS (SELECT 1 FROM component_classes c WHERE c.code = r.class_code) ORDER BY r.row`)
	if err != nil {
		return err
	}
	var class string
	_, err = pgx.ForEachRow(rows, []any{&row, &class}, func() error {
		errs.add(int(row), "class", "%q is not a known component class (GET /api/v1/component-classes lists them)", class)
		return nil
	})
	return err
}

// checkScope adds to errs the rows a scoped importer (o.Viewer.Grids) may
// not write: a row the placement rule puts in a grid outside the scope,
// or in none (an unassigned row is nobody's to keep), a parcel sharing
// area with a grid outside it, and a code already held by a row outside
// it (the upsert would take it over).
func (k kind) checkScope(ctx context.Context, tx pgx.Tx, o ImportOptions, errs *rowErrors) error {
	field := "geometry"
	if o.Format == FormatCSV {
		field = "lon"
	}
	// Each query gives the rows out of scope with the code of a grid
	// outside it they lie in (NULL: in no grid).
	var placed, held string
	switch k.name {
	case buildingKind.name:
		placed = `SELECT s.row, g.code FROM (SELECT t.row, ` + buildingGrid("t", "") + ` AS grid_id
				FROM (SELECT row, coalesce(location, ST_PointOnSurface(shape)) AS location, ST_Multi(shape) AS footprint FROM import_rows) t) s
			LEFT JOIN grids g ON g.id = s.grid_id
			WHERE s.grid_id IS NULL OR s.grid_id NOT IN (SELECT * FROM grid_subtree($1))`
		held = `SELECT r.row FROM import_rows r JOIN buildings x ON x.code = r.code
			WHERE x.grid_id IS NULL OR x.grid_id NOT IN (SELECT * FROM grid_subtree($1))`
	case componentKind.name:
		placed = `SELECT s.row, g.code FROM (SELECT t.row, ` + geo.GridAt("t.location", "") + ` AS grid_id FROM import_rows t) s
			LEFT JOIN grids g ON g.id = s.grid_id
			WHERE s.grid_id IS NULL OR s.grid_id NOT IN (SELECT * FROM grid_subtree($1))`
		held = `SELECT r.row FROM import_rows r JOIN components x ON x.code = r.code
			WHERE x.grid_id IS NULL OR x.grid_id NOT IN (SELECT * FROM grid_subtree($1))`
	default:
		// A parcel's grids are the finest grids it shares area with
		// (placeParcels): all must be in scope, and at least one.
		shares := `FROM grids g WHERE g.level = 'grid' AND g.geom && t.shape AND ST_Relate(g.geom, t.shape, '2********')
			AND ST_Area(ST_Intersection(g.geom, t.shape)::geography) > $2`
		placed = `SELECT t.row, o.code FROM import_rows t
			LEFT JOIN LATERAL (SELECT g.code ` + shares + ` AND g.id NOT IN (SELECT * FROM grid_subtree($1)) ORDER BY g.code LIMIT 1) o ON true
			WHERE o.code IS NOT NULL OR NOT EXISTS (SELECT 1 ` + shares + ` AND g.id IN (SELECT * FROM grid_subtree($1)))`
		held = `SELECT r.row FROM import_rows r JOIN parcels x ON x.code = r.code
			WHERE NOT EXISTS (SELECT 1 FROM parcel_grids pg WHERE pg.parcel_id = x.id AND pg.grid_id IN (SELECT * FROM grid_subtree($1)))
			OR EXISTS (SELECT 1 FROM parcel_grids pg WHERE pg.parcel_id = x.id AND pg.grid_id NOT IN (SELECT * FROM grid_subtree($1)))`
	}
	args := []any{o.Viewer.Grids}
	if k.name == parcelKind.name {
		args = append(args, MinParcelShareM2)
	}
	rows, err := tx.Query(ctx, placed+` ORDER BY 1`, args...)
	if err != nil {
		return err
	}
	var (
		row  int32
		grid *string
	)
	if _, err := pgx.ForEachRow(rows, []any{&row, &grid}, func() error {
		if grid == nil {
			errs.add(int(row), field, "lies in none of your grids: an importer limited to grids imports only into them")
		} else {
			errs.add(int(row), field, "lies in grid %s, outside your grids", *grid)
		}
		return nil
	}); err != nil {
		return err
	}
	rows, err = tx.Query(ctx, held+` ORDER BY 1`, o.Viewer.Grids)
	if err != nil {
		return err
	}
	_, err = pgx.ForEachRow(rows, []any{&row}, func() error {
		errs.add(int(row), "code", "is the code of one of the %s outside your grids: it cannot be changed here", k.name)
		return nil
	})
	return err
}

// importRows runs an import of kind k: parse, stage, check, then write
// with upsert (which returns the result) — or nothing, on any bad row.
func (s *Service) importRows(ctx context.Context, k kind, r io.Reader, o ImportOptions,
	upsert func(ctx context.Context, tx pgx.Tx) (*ImportResult, error)) (*ImportResult, error) {
	recs, errs, err := k.parse(r, o)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 && errs.count == 0 {
		return nil, gridwatch.Errorf(gridwatch.EInvalid, "the import has no rows")
	}
	var res *ImportResult
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Batch work: bounded by its context, not by a request's statement timeout.
		if err := database.Long(ctx, tx); err != nil {
			return err
		}
		// No boundary change meanwhile: the rows are placed in the grids
		// as this transaction sees them, and a change running beside it
		// would not see these rows to carry them along.
		if _, err := tx.Exec(ctx, `LOCK TABLE grids IN SHARE MODE`); err != nil {
			return fmt.Errorf("import %s: %w", k.name, err)
		}
		if err := stage(ctx, tx, recs); err != nil {
			return fmt.Errorf("import %s: stage: %w", k.name, err)
		}
		if err := k.checkStaged(ctx, tx, errs); err != nil {
			return fmt.Errorf("import %s: check: %w", k.name, err)
		}
		if o.Viewer.Grids != nil {
			if err := k.checkScope(ctx, tx, o, errs); err != nil {
				return fmt.Errorf("import %s: scope: %w", k.name, err)
			}
		}
		if err := errs.err(k.name); err != nil {
			return err
		}
		if res, err = upsert(ctx, tx); err != nil {
			return fmt.Errorf("import %s: %w", k.name, err)
		}
		return audit.Record(ctx, tx, k.name+".import", k.name, "", map[string]any{"created": res.Created, "updated": res.Updated,
			"grids": res.Grids, "unassigned": res.Unassigned})
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// upsertCounts reads the result of an upsert CTE "up" returning created
// and grid_id.
const upsertCounts = ` SELECT count(*) FILTER (WHERE created), count(*) FILTER (WHERE NOT created),
	count(DISTINCT grid_id), count(*) FILTER (WHERE grid_id IS NULL) FROM up`

func scanResult(row pgx.Row) (*ImportResult, error) {
	var res ImportResult
	err := row.Scan(&res.Created, &res.Updated, &res.Grids, &res.Unassigned)
	return &res, err
}

// ImportBuildings imports buildings (GeoJSON: a Point, or a Polygon or
// MultiPolygon footprint; CSV: code, lon, lat and name, address, floors,
// units, use), creating new codes and updating known ones.
func (s *Service) ImportBuildings(ctx context.Context, r io.Reader, o ImportOptions) (*ImportResult, error) {
	return s.importRows(ctx, buildingKind, r, o, func(ctx context.Context, tx pgx.Tx) (*ImportResult, error) {
		res, err := scanResult(tx.QueryRow(ctx, `WITH src AS (
				SELECT code, name, address, floors, units, use, coalesce(location, ST_PointOnSurface(shape)) AS location,
					ST_Multi(shape) AS footprint FROM import_rows
			), up AS (
				INSERT INTO buildings AS b (code, name, address, floors, units, use, location, footprint, grid_id)
				SELECT t.code, t.name, t.address, t.floors, t.units, t.use, t.location, t.footprint, `+buildingGrid("t", "")+`
				FROM src t
				ON CONFLICT (code) DO UPDATE SET name = excluded.name, address = excluded.address, floors = excluded.floors,
					units = excluded.units, use = excluded.use, location = excluded.location, footprint = excluded.footprint,
					grid_id = excluded.grid_id, updated_at = now()
				RETURNING xmax = 0 AS created, grid_id
			)`+upsertCounts))
		if err != nil {
			return nil, err
		}
		// A building the import moved to another grid takes its
		// households and residents along, in the same transaction.
		return res, s.followImported(ctx, tx)
	})
}

// ImportComponents imports components (GeoJSON Points; CSV: code, class,
// lon, lat and name, department, state, address).
func (s *Service) ImportComponents(ctx context.Context, r io.Reader, o ImportOptions) (*ImportResult, error) {
	return s.importRows(ctx, componentKind, r, o, func(ctx context.Context, tx pgx.Tx) (*ImportResult, error) {
		return scanResult(tx.QueryRow(ctx, `WITH up AS (
				INSERT INTO components AS k (code, class_code, name, department, state, location, address, grid_id)
				SELECT t.code, t.class_code, t.name, t.department, t.state, t.location, t.address, `+geo.GridAt("t.location", "")+`
				FROM import_rows t
				ON CONFLICT (code) DO UPDATE SET class_code = excluded.class_code, name = excluded.name, department = excluded.department,
					state = excluded.state, location = excluded.location, address = excluded.address,
					grid_id = excluded.grid_id, updated_at = now()
				RETURNING xmax = 0 AS created, grid_id
			)`+upsertCounts))
	})
}

// ImportParcels imports parcels (GeoJSON Polygons or MultiPolygons; CSV
// has no polygons and is refused), and lists the grids each overlaps.
func (s *Service) ImportParcels(ctx context.Context, r io.Reader, o ImportOptions) (*ImportResult, error) {
	if o.Format == FormatCSV {
		return nil, gridwatch.Errorf(gridwatch.EInvalid, "parcels are polygons: import them as GeoJSON (a CSV row holds a point only)").
			WithDetails(map[string]any{"param": "format", "value": string(o.Format)})
	}
	return s.importRows(ctx, parcelKind, r, o, func(ctx context.Context, tx pgx.Tx) (*ImportResult, error) {
		var res ImportResult
		if err := tx.QueryRow(ctx, `WITH up AS (
				INSERT INTO parcels AS p (code, name, use, holder, area_m2, geom)
				SELECT t.code, t.name, t.use, t.holder, ST_Area(t.shape::geography), ST_Multi(t.shape) FROM import_rows t
				ON CONFLICT (code) DO UPDATE SET name = excluded.name, use = excluded.use, holder = excluded.holder,
					area_m2 = excluded.area_m2, geom = excluded.geom, updated_at = now()
				RETURNING xmax = 0 AS created
			) SELECT count(*) FILTER (WHERE created), count(*) FILTER (WHERE NOT created) FROM up`).Scan(&res.Created, &res.Updated); err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM parcel_grids WHERE parcel_id IN (SELECT p.id FROM parcels p JOIN import_rows t ON t.code = p.code)`); err != nil {
			return nil, err
		}
		if err := placeParcels(ctx, tx, "p.code IN (SELECT code FROM import_rows)", []int64{}); err != nil {
			return nil, err
		}
		err := tx.QueryRow(ctx, `SELECT (SELECT count(DISTINCT pg.grid_id) FROM parcel_grids pg JOIN parcels p ON p.id = pg.parcel_id JOIN import_rows t ON t.code = p.code),
			(SELECT count(*) FROM parcels p JOIN import_rows t ON t.code = p.code WHERE NOT EXISTS (SELECT 1 FROM parcel_grids pg WHERE pg.parcel_id = p.id))`).
			Scan(&res.Grids, &res.Unassigned)
		return &res, err
	})
}
