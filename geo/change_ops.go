package geo

import (
	"context"
	"encoding/json"
	"fmt"
	"gridwatch"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/twpayne/go-geom"
)

// The boundary changes themselves: each checks its input, changes the
// grids in the transaction change opens and says what it removed or
// created; change does the rest.

// ParseGeometry reads a bare GeoJSON Polygon or MultiPolygon (a grid's new
// boundary), converted to WGS-84 and checked like an import's.
func ParseGeometry(data []byte, opts ParseOptions) (*geom.MultiPolygon, error) {
	var probs Problems
	g, ok := parseGeometry(0, "", "geometry", data, opts, &probs)
	if !ok || len(probs) > 0 {
		return nil, probs.Err(problemsCode(probs))
	}
	return g, nil
}

// ParseLine reads a GeoJSON LineString (a new edge or a cut), converted to
// WGS-84; field names it in errors.
func ParseLine(data []byte, field string, opts ParseOptions) (*geom.LineString, error) {
	bad := func(format string, args ...any) error {
		return gridwatch.Errorf(gridwatch.EInvalidGeoJSON, "%s: %s", field, fmt.Sprintf(format, args...)).WithDetails(map[string]any{"field": field})
	}
	if len(data) == 0 || string(data) == "null" {
		return nil, bad(`is required: {"type":"LineString","coordinates":[[lon,lat],…]}`)
	}
	var g struct {
		Type        string      `json:"type"`
		Coordinates [][]float64 `json:"coordinates"`
	}
	if err := json.Unmarshal(data, &g); err != nil {
		return nil, bad(`must be a GeoJSON LineString: {"type":"LineString","coordinates":[[lon,lat],…]}`)
	}
	if g.Type != "LineString" {
		return nil, bad("must be a LineString, not %s", article(g.Type))
	}
	if len(g.Coordinates) < 2 {
		return nil, bad("needs at least 2 positions, has %d", len(g.Coordinates))
	}
	if opts.MaxVertices <= 0 {
		opts.MaxVertices = DefaultMaxVertices
	}
	if len(g.Coordinates) > opts.MaxVertices {
		return nil, bad("has %d positions; at most %d", len(g.Coordinates), opts.MaxVertices)
	}
	flat := make([]float64, 0, 2*len(g.Coordinates))
	for i, p := range g.Coordinates {
		if len(p) < 2 {
			return nil, bad("position %d has %d numbers; want [lon, lat]", i, len(p))
		}
		if msg := rangeProblem(p[0], p[1]); msg != "" {
			return nil, bad("position %d %s", i, msg)
		}
		lon, lat := opts.CRS.ToWGS84(p[0], p[1])
		if i > 0 && lon == flat[len(flat)-2] && lat == flat[len(flat)-1] {
			continue // a repeated position adds nothing
		}
		flat = append(flat, lon, lat)
	}
	if len(flat) < 4 {
		return nil, bad("all its positions are the same point")
	}
	return geom.NewLineStringFlat(geom.XY, flat).SetSRID(4326), nil
}

// Redraw replaces grid id's boundary.
func (s *Store) Redraw(ctx context.Context, id int64, g *geom.MultiPolygon, opts ChangeOptions) (*ChangeReport, error) {
	return s.change(ctx, ChangeRedraw, opts, []int64{id}, map[int64]int{id: opts.IfMatch}, func(ctx context.Context, tx pgx.Tx, ch *Change, rep *ChangeReport) error {
		if ok, err := s.checkNew(ctx, tx, rep, s.codeOf(ctx, tx, id), g); err != nil || !ok {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE grids SET geom = ST_ForcePolygonCCW(ST_Multi($2::geometry)), area_m2 = ST_Area($2::geography) WHERE id = $1`, id, g)
		return err
	})
}

// MoveEdge moves the edge grids a and b share to line: the two grids
// together are cut along line, and each keeps the pieces mostly its own.
// line runs from one end of the new edge to the other, its ends on the
// outer boundary of the two grids (within a few centimetres).
func (s *Store) MoveEdge(ctx context.Context, a, b int64, line *geom.LineString, opts ChangeOptions, bVersion int) (*ChangeReport, error) {
	if a == b {
		return nil, gridwatch.Errorf(gridwatch.EInvalid, "neighbour: a grid has no edge with itself")
	}
	return s.change(ctx, ChangeMoveEdge, opts, []int64{a, b}, map[int64]int{a: opts.IfMatch, b: bVersion}, func(ctx context.Context, tx pgx.Tx, ch *Change, rep *ChangeReport) error {
		var shared float64
		var sameLevel bool
		if err := tx.QueryRow(ctx, `SELECT ST_Length(ST_Intersection(ST_Boundary(a.geom), ST_Boundary(b.geom))::geography), a.level = b.level
			FROM grids a, grids b WHERE a.id = $1 AND b.id = $2`, a, b).Scan(&shared, &sameLevel); err != nil {
			return err
		}
		if !sameLevel || shared < 0.01 {
			return gridwatch.Errorf(gridwatch.EInvalid, "grids %s and %s share no edge", s.codeOf(ctx, tx, a), s.codeOf(ctx, tx, b))
		}
		// Pieces of a∪b cut by the line (its ends pushed out 2 cm so they
		// cross the boundary cleanly), each given to the grid it overlaps
		// most.
		rows, err := tx.Query(ctx, `WITH r AS (SELECT ST_UnaryUnion(ST_Collect(geom)) AS geom FROM grids WHERE id IN ($1, $2)),
			pieces AS (SELECT (ST_Dump(ST_Split(r.geom, `+extendedLine+`))).geom AS geom FROM r)
			SELECT CASE WHEN ST_Area(ST_Intersection(p.geom, a.geom)) >= ST_Area(ST_Intersection(p.geom, b.geom)) THEN $1 ELSE $2 END AS owner,
				ST_Multi(ST_Union(p.geom)) FROM pieces p, grids a, grids b WHERE a.id = $1 AND b.id = $2 GROUP BY 1`, a, b, line)
		if err != nil {
			return err
		}
		parts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (struct {
			owner int64
			g     *geom.MultiPolygon
		}, error) {
			var p struct {
				owner int64
				g     *geom.MultiPolygon
			}
			err := r.Scan(&p.owner, &p.g)
			return p, err
		})
		if err != nil {
			return err
		}
		if len(parts) != 2 {
			return gridwatch.Errorf(gridwatch.EInvalid, "line: the new edge does not cut the two grids in two: draw it from one end of the shared edge to the other, its ends on their outer boundary").
				WithDetails(map[string]any{"field": "line"})
		}
		for _, p := range parts {
			if ok, err := s.checkNew(ctx, tx, rep, s.codeOf(ctx, tx, p.owner), p.g); err != nil || !ok {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE grids SET geom = ST_ForcePolygonCCW($2::geometry), area_m2 = ST_Area($2::geography) WHERE id = $1`, p.owner, p.g); err != nil {
				return err
			}
		}
		return nil
	})
}

// extendedLine is SQL for parameter $3 (a LineString) with both ends
// pushed out by 2e-7 degrees (about 2 cm) along their segments.
const extendedLine = `(SELECT ST_SetSRID(ST_AddPoint(ST_AddPoint(l,
		ST_Translate(ST_StartPoint(l), (ST_X(ST_StartPoint(l)) - ST_X(ST_PointN(l, 2))) * k0, (ST_Y(ST_StartPoint(l)) - ST_Y(ST_PointN(l, 2))) * k0), 0),
		ST_Translate(ST_EndPoint(l), (ST_X(ST_EndPoint(l)) - ST_X(ST_PointN(l, -2))) * k1, (ST_Y(ST_EndPoint(l)) - ST_Y(ST_PointN(l, -2))) * k1)), 4326)
	FROM (SELECT $3::geometry AS l) x,
		LATERAL (SELECT 2e-7 / greatest(ST_Distance(ST_StartPoint(l), ST_PointN(l, 2)), 1e-12) AS k0,
			2e-7 / greatest(ST_Distance(ST_EndPoint(l), ST_PointN(l, -2)), 1e-12) AS k1) k)`

// Split cuts grid id along line: the grid keeps its largest piece, and a
// new grid of the same level and parent, named by n, takes the rest.
func (s *Store) Split(ctx context.Context, id int64, line *geom.LineString, n NewGrid, opts ChangeOptions) (*ChangeReport, error) {
	n.Code, n.Name = strings.TrimSpace(n.Code), strings.TrimSpace(n.Name)
	if n.Code == "" || n.Name == "" {
		return nil, gridwatch.Errorf(gridwatch.EInvalid, "new: the new grid needs a code and a name").WithDetails(map[string]any{"field": "new"})
	}
	return s.change(ctx, ChangeSplit, opts, []int64{id}, map[int64]int{id: opts.IfMatch}, func(ctx context.Context, tx pgx.Tx, ch *Change, rep *ChangeReport) error {
		rows, err := tx.Query(ctx, `WITH r AS (SELECT geom FROM grids WHERE id = $1),
			pieces AS (SELECT (ST_Dump(ST_Split(r.geom, `+strings.ReplaceAll(extendedLine, "$3", "$2")+`))).geom AS geom FROM r)
			SELECT ST_Multi(geom) FROM pieces ORDER BY ST_Area(geom::geography) DESC`, id, line)
		if err != nil {
			return err
		}
		pieces, err := pgx.CollectRows(rows, pgx.RowTo[*geom.MultiPolygon])
		if err != nil {
			return err
		}
		if len(pieces) < 2 {
			return gridwatch.Errorf(gridwatch.EInvalid, "line: it does not cut grid %s in two: draw it across the grid, from boundary to boundary", s.codeOf(ctx, tx, id)).
				WithDetails(map[string]any{"field": "line"})
		}
		rest := pieces[1]
		for _, p := range pieces[2:] {
			for i := range p.NumPolygons() {
				if err := rest.Push(p.Polygon(i)); err != nil {
					return err
				}
			}
		}
		code := s.codeOf(ctx, tx, id)
		var parent *string
		if err := tx.QueryRow(ctx, `SELECT p.code FROM grids g LEFT JOIN grids p ON p.id = g.parent_id WHERE g.id = $1`, id).Scan(&parent); err != nil {
			return err
		}
		if parent != nil && (!strings.HasPrefix(n.Code, *parent) || len(n.Code) != len(code)) {
			return gridwatch.Errorf(gridwatch.EInvalid, "new.code: %s is not a code of this level under %s: %s and %d digits in all, like %s",
				n.Code, *parent, *parent, len(code), code).WithDetails(map[string]any{"field": "new.code"})
		}
		for _, p := range []struct {
			code string
			g    *geom.MultiPolygon
		}{{code, pieces[0]}, {n.Code, rest}} {
			if ok, err := s.checkNew(ctx, tx, rep, p.code, p.g); err != nil || !ok {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE grids SET geom = ST_ForcePolygonCCW($2::geometry), area_m2 = ST_Area($2::geography) WHERE id = $1`, id, pieces[0]); err != nil {
			return err
		}
		var newID int64
		err = tx.QueryRow(ctx, `INSERT INTO grids (code, name, level, parent_id, geom, area_m2)
			SELECT $2, $3, level, parent_id, ST_ForcePolygonCCW(ST_Multi($4::geometry)), ST_Area($4::geography) FROM grids WHERE id = $1 RETURNING id`,
			id, n.Code, n.Name, rest).Scan(&newID)
		if err != nil {
			return codeError(err, n.Code)
		}
		ch.Created = append(ch.Created, newID)
		return nil
	})
}

// Merge joins grid other into grid id: id takes other's area (its cameras,
// cases and staff follow); other is removed, its history kept. The two
// must be neighbours of one level under one parent, and other must have no
// child grids (their codes carry its code).
func (s *Store) Merge(ctx context.Context, id, other int64, opts ChangeOptions, otherVersion int) (*ChangeReport, error) {
	if id == other {
		return nil, gridwatch.Errorf(gridwatch.EInvalid, "with: a grid cannot merge with itself")
	}
	return s.change(ctx, ChangeMerge, opts, []int64{id, other}, map[int64]int{id: opts.IfMatch, other: otherVersion}, func(ctx context.Context, tx pgx.Tx, ch *Change, rep *ChangeReport) error {
		var shared float64
		var sameLevel, sameParent bool
		var union *geom.MultiPolygon
		if err := tx.QueryRow(ctx, `SELECT ST_Length(ST_Intersection(ST_Boundary(a.geom), ST_Boundary(b.geom))::geography),
				a.level = b.level, a.parent_id IS NOT DISTINCT FROM b.parent_id, ST_Multi(ST_UnaryUnion(ST_Collect(a.geom, b.geom)))
			FROM grids a, grids b WHERE a.id = $1 AND b.id = $2`, id, other).Scan(&shared, &sameLevel, &sameParent, &union); err != nil {
			return err
		}
		var children int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM grids WHERE parent_id = $1`, other).Scan(&children); err != nil {
			return err
		}
		switch {
		case !sameLevel || !sameParent:
			return gridwatch.Errorf(gridwatch.EInvalid, "with: grids %s and %s are not of one level under one parent", s.codeOf(ctx, tx, id), s.codeOf(ctx, tx, other))
		case children > 0:
			// Their codes carry the merged grid's; they would not fit under this one.
			return gridwatch.Errorf(gridwatch.EConflict, "with: grid %s has %d child grids; merge or move them first", s.codeOf(ctx, tx, other), children).
				WithDetails(map[string]any{"children": children})
		case shared < 0.01:
			return gridwatch.Errorf(gridwatch.EInvalid, "with: grids %s and %s share no edge", s.codeOf(ctx, tx, id), s.codeOf(ctx, tx, other))
		}
		if ok, err := s.checkNew(ctx, tx, rep, s.codeOf(ctx, tx, id), union); err != nil || !ok {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE grids SET geom = ST_ForcePolygonCCW($2::geometry), area_m2 = ST_Area($2::geography) WHERE id = $1`, id, union); err != nil {
			return err
		}
		ch.Removed = append(ch.Removed, other)
		return nil
	})
}

// codeError turns a failed insert of a new grid into the user's error.
func codeError(err error, code string) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "grids_code_key"):
		return gridwatch.Errorf(gridwatch.EConflict, "new.code: a grid with code %s already exists", code).WithDetails(map[string]any{"field": "new.code"})
	case strings.Contains(msg, "grids_code_pattern"):
		return gridwatch.Errorf(gridwatch.EInvalid, "new.code: %s does not follow the pattern of this level (the parent's code and 3 digits)", code).WithDetails(map[string]any{"field": "new.code"})
	}
	return err
}

// Delete removes grid id; a grid with children is refused.
func (s *Store) Delete(ctx context.Context, id int64) error {
	return s.DeleteVersion(ctx, id, -1)
}

// DeleteVersion removes grid id if version is its current version (as
// ChangeOptions.IfMatch: 0 asks for a version, negative skips the check);
// a grid with children is refused.
func (s *Store) DeleteVersion(ctx context.Context, id int64, version int) error {
	// A delete is a boundary change like the others: the cameras and cases
	// of the grid go to the grid now covering them, an account scoped to
	// it or staff on it stop it, history and the event follow.
	_, err := s.change(ctx, ChangeDelete, ChangeOptions{IfMatch: version}, []int64{id}, map[int64]int{id: version},
		func(ctx context.Context, tx pgx.Tx, ch *Change, rep *ChangeReport) error {
			var code string
			var children int
			if err := tx.QueryRow(ctx, `SELECT code, (SELECT count(*) FROM grids c WHERE c.parent_id = g.id) FROM grids g WHERE id = $1`, id).
				Scan(&code, &children); err != nil {
				return fmt.Errorf("delete grid %d: %w", id, err)
			}
			if children > 0 {
				return gridwatch.Errorf(gridwatch.EConflict, "grid %s has %d child grids; delete or move them first", code, children).
					WithDetails(map[string]any{"children": children})
			}
			ch.Removed = append(ch.Removed, id)
			return nil
		})
	return err
}
