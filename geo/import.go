package geo

import (
	"context"
	"fmt"
	"gridwatch"
	"gridwatch/audit"
	"gridwatch/internal/database"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Import: new grids from GeoJSON, all or nothing, with the repairs asked
// for and the topology checks against the stored grids; the participants
// then follow the new grids like any boundary change.

// ImportOptions control an import.
type ImportOptions struct {
	// Repair makes invalid geometry valid (keeping polygonal parts) instead of
	// refusing it, and reports each change.
	Repair bool
}

// ImportResult tells what an import stored.
type ImportResult struct {
	Created int      `json:"created"`
	Grids   []Ref    `json:"grids"`
	Repairs []Repair `json:"repairs"`
}

// Repair reports what repair=true changed in one feature.
type Repair struct {
	Feature      int       `json:"feature"`
	Code         string    `json:"code"`
	Reason       string    `json:"reason"`
	Location     []float64 `json:"location,omitempty"`
	AreaBeforeM2 float64   `json:"area_before_m2"`
	AreaAfterM2  float64   `json:"area_after_m2"`
	PartsBefore  int       `json:"parts_before"`
	PartsAfter   int       `json:"parts_after"`
	// Other is the parent a grid was clipped to, or the grids whose
	// overlap was cut away (comma-separated codes).
	Other string `json:"other,omitempty"`
}

// Import stores features as new grids, all or nothing: every geometry must be
// valid (or repaired), codes new, parents known and one level up, each grid
// inside its parent and not overlapping another grid of its level. All
// problems are reported together; on any, nothing is stored.
func (s *Store) Import(ctx context.Context, fs []ImportFeature, opts ImportOptions) (*ImportResult, error) {
	var res *ImportResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Batch work: bounded by its context, not by a request's statement timeout.
		if err := database.Long(ctx, tx); err != nil {
			return err
		}
		var err error
		res, err = s.importTx(ctx, tx, fs, opts)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.changed(ctx)
	return res, nil
}

func (s *Store) importTx(ctx context.Context, tx pgx.Tx, fs []ImportFeature, opts ImportOptions) (*ImportResult, error) {
	// The history records who imported the grids.
	if _, err := tx.Exec(ctx, `SELECT set_config('gridwatch.actor', $1, true), set_config('gridwatch.change', 'import', true)`,
		audit.ActorFrom(ctx).Name); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE import_grids (
		idx int PRIMARY KEY, code text NOT NULL, name text NOT NULL, level text NOT NULL,
		level_rank int NOT NULL, parent_code text NOT NULL, geom geometry NOT NULL, properties jsonb NOT NULL
	) ON COMMIT DROP`); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	// Serialise imports: the overlap and nesting checks read other grids.
	if _, err := tx.Exec(ctx, "LOCK TABLE grids IN SHARE ROW EXCLUSIVE MODE"); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"import_grids"},
		[]string{"idx", "code", "name", "level", "level_rank", "parent_code", "geom", "properties"},
		pgx.CopyFromSlice(len(fs), func(i int) ([]any, error) {
			f := fs[i]
			props := f.Properties
			if props == nil {
				props = map[string]any{}
			}
			return []any{f.Index, f.Code, f.Name, string(f.Level), f.Level.Rank(), f.ParentCode, f.Geometry, props}, nil
		}))
	if err != nil {
		return nil, fmt.Errorf("import: copy: %w", err)
	}
	// Index before any UPDATE: an index built after HOT updates in the same
	// transaction is unusable to it (indcheckxmin), and the overlap check
	// then degrades to comparing every pair.
	if _, err := tx.Exec(ctx, `CREATE INDEX ON import_grids USING gist (geom); CREATE INDEX ON import_grids (code)`); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	res := &ImportResult{Repairs: []Repair{}, Grids: []Ref{}}
	var probs Problems
	if opts.Repair {
		if res.Repairs, err = s.repairInvalid(ctx, tx, &probs); err != nil {
			return nil, err
		}
	} else if err := s.findInvalid(ctx, tx, &probs); err != nil {
		return nil, err
	}
	if len(probs) > 0 {
		return nil, probs.Err(gridwatch.EInvalidGeometry)
	}
	if _, err := tx.Exec(ctx, `UPDATE import_grids SET geom = ST_ForcePolygonCCW(ST_Multi(geom)) WHERE NOT ST_IsPolygonCCW(geom) OR GeometryType(geom) <> 'MULTIPOLYGON';
		ANALYZE import_grids`); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if err := s.checkCodesAndParents(ctx, tx, &probs); err != nil {
		return nil, err
	}
	if len(probs) > 0 {
		return nil, probs.Err(codeFor(probs))
	}
	if opts.Repair {
		reps, err := s.repairTopology(ctx, tx, &probs)
		if err != nil {
			return nil, err
		}
		res.Repairs = append(res.Repairs, reps...)
		if len(probs) > 0 {
			return nil, probs.Err(gridwatch.ETopology)
		}
	}
	if err := s.checkTopology(ctx, tx, &probs); err != nil {
		return nil, err
	}
	if len(probs) > 0 {
		return nil, probs.Err(gridwatch.ETopology)
	}
	for rank := 1; rank <= 4; rank++ {
		rows, err := tx.Query(ctx, `INSERT INTO grids (code, name, level, parent_id, geom, area_m2, properties)
			SELECT i.code, i.name, i.level, p.id, i.geom, ST_Area(i.geom::geography), i.properties
			FROM import_grids i LEFT JOIN grids p ON p.code = NULLIF(i.parent_code, '')
			WHERE i.level_rank = $1 ORDER BY i.idx
			RETURNING id, code, name, level`, rank)
		if err != nil {
			return nil, fmt.Errorf("import: insert: %w", err)
		}
		refs, err := pgx.CollectRows(rows, scanRef)
		if err != nil {
			return nil, fmt.Errorf("import: insert: %w", err)
		}
		res.Grids = append(res.Grids, refs...)
	}
	res.Created = len(res.Grids)
	if err := s.importFollow(ctx, tx, res.Grids); err != nil {
		return nil, err
	}
	if err := bumpRevision(ctx, tx); err != nil {
		return nil, err
	}
	codes := make([]string, 0, min(len(res.Grids), 50))
	for _, g := range res.Grids[:min(len(res.Grids), 50)] {
		codes = append(codes, g.Code)
	}
	target := ""
	if len(res.Grids) == 1 {
		target = strconv.FormatInt(res.Grids[0].ID, 10)
	}
	if err := audit.Record(ctx, tx, "grid.import", "grid", target, map[string]any{
		"after": map[string]any{"created": res.Created, "codes": codes}, "repairs": len(res.Repairs)}); err != nil {
		return nil, err
	}
	return res, nil
}

// findInvalid reports each invalid geometry with PostGIS's reason and location.
func (s *Store) findInvalid(ctx context.Context, tx pgx.Tx, probs *Problems) error {
	rows, err := tx.Query(ctx, `SELECT i.idx, i.code, d.reason, ST_X(d.location), ST_Y(d.location)
		FROM import_grids i CROSS JOIN LATERAL ST_IsValidDetail(i.geom) d
		WHERE NOT d.valid ORDER BY i.idx`)
	if err != nil {
		return fmt.Errorf("import: validity: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var idx int
		var code, reason string
		var x, y *float64
		if err := rows.Scan(&idx, &code, &reason, &x, &y); err != nil {
			return fmt.Errorf("import: validity: %w", err)
		}
		p := Problem{Feature: idx, Code: code, Reason: reasonKey(reason)}
		p.Message = fmt.Sprintf("%s: invalid geometry: %s", featureLabel(idx, code), reason)
		if x != nil && y != nil {
			p.Location = []float64{*x, *y}
			p.Message += fmt.Sprintf(" at [%s, %s]", formatFloat(round7(*x)), formatFloat(round7(*y)))
		}
		p.Message += " (fix it, or import with repair=true)"
		probs.add(p)
	}
	return rows.Err()
}

// repairInvalid makes invalid geometries valid, keeping polygonal parts, and
// reports what changed. A geometry with nothing polygonal left is a problem.
func (s *Store) repairInvalid(ctx context.Context, tx pgx.Tx, probs *Problems) ([]Repair, error) {
	rows, err := tx.Query(ctx, `WITH bad AS (
			SELECT i.idx, d.reason, ST_X(d.location) AS x, ST_Y(d.location) AS y,
			       ST_Area(i.geom::geography) AS area_before, ST_NumGeometries(i.geom) AS parts_before
			FROM import_grids i CROSS JOIN LATERAL ST_IsValidDetail(i.geom) d WHERE NOT d.valid
		), fixed AS (
			UPDATE import_grids i SET geom = ST_Multi(ST_CollectionExtract(ST_MakeValid(i.geom, 'method=structure'), 3))
			FROM bad WHERE bad.idx = i.idx
			RETURNING i.idx, i.code, i.geom
		)
		SELECT f.idx, f.code, b.reason, b.x, b.y, b.area_before, b.parts_before,
		       COALESCE(ST_Area(f.geom::geography), 0), ST_NumGeometries(f.geom), ST_IsEmpty(f.geom)
		FROM fixed f JOIN bad b USING (idx) ORDER BY f.idx`)
	if err != nil {
		return nil, fmt.Errorf("import: repair: %w", err)
	}
	defer rows.Close()
	reps := []Repair{}
	for rows.Next() {
		var r Repair
		var x, y *float64
		var empty bool
		if err := rows.Scan(&r.Feature, &r.Code, &r.Reason, &x, &y, &r.AreaBeforeM2, &r.PartsBefore, &r.AreaAfterM2, &r.PartsAfter, &empty); err != nil {
			return nil, fmt.Errorf("import: repair: %w", err)
		}
		if x != nil && y != nil {
			r.Location = []float64{*x, *y}
		}
		if empty || r.PartsAfter == 0 {
			probs.add(Problem{Feature: r.Feature, Code: r.Code, Reason: "unrepairable", Location: r.Location,
				Message: fmt.Sprintf("%s: invalid geometry (%s) has no area left once made valid", featureLabel(r.Feature, r.Code), r.Reason)})
			continue
		}
		reps = append(reps, r)
	}
	return reps, rows.Err()
}

// repairTopology makes published boundaries whose shared edges do not
// match usable, level by level from the district down: a grid sticking out
// of its parent is clipped to it, and where two grids of a level overlap,
// the overlap stays with the stored grid, or between two imported ones with
// the lower code (the tie rule of locate). Each change is reported.
func (s *Store) repairTopology(ctx context.Context, tx pgx.Tx, probs *Problems) ([]Repair, error) {
	clip := `WITH parents AS (
			SELECT code, geom FROM import_grids UNION ALL SELECT code, geom FROM grids
		), bad AS (
			SELECT i.idx, p.code AS other, p.geom AS cut, ST_Area(i.geom::geography) AS area_before, ST_NumGeometries(i.geom) AS parts_before
			FROM import_grids i JOIN parents p ON p.code = i.parent_code
			WHERE i.level_rank = $1 AND NOT ST_CoveredBy(i.geom, p.geom)
			  AND ST_Area(ST_Difference(i.geom, p.geom)::geography) > $2
		)` + repairTail("ST_Intersection", "clipped_to_parent")
	trim := `WITH others AS (
			SELECT code, level_rank, geom, true AS imported FROM import_grids
			UNION ALL SELECT code, level_rank, geom, false FROM grids
		), bad AS (
			SELECT a.idx, string_agg(o.code, ',' ORDER BY o.code) AS other, ST_Union(o.geom) AS cut,
			       ST_Area(a.geom::geography) AS area_before, ST_NumGeometries(a.geom) AS parts_before
			FROM import_grids a JOIN others o
			  ON o.level_rank = a.level_rank AND o.code <> a.code AND a.geom && o.geom
			 AND (NOT o.imported OR o.code < a.code)
			WHERE a.level_rank = $1 AND ST_Relate(a.geom, o.geom, '2********')
			  AND ST_Area(ST_Intersection(a.geom, o.geom)::geography) > $2
			GROUP BY a.idx, a.geom
		)` + repairTail("ST_Difference", "overlap_trimmed")
	var reps []Repair
	for rank := 1; rank <= 4; rank++ {
		steps := []struct {
			sql string
			tol float64
		}{{clip, s.opts.OutsideToleranceM2}, {trim, s.opts.OverlapToleranceM2}}
		if rank == 1 {
			steps = steps[1:] // districts have no parent
		}
		for _, step := range steps {
			rows, err := tx.Query(ctx, step.sql, rank, step.tol)
			if err != nil {
				return nil, fmt.Errorf("import: repair topology: %w", err)
			}
			for rows.Next() {
				var r Repair
				var empty bool
				if err := rows.Scan(&r.Feature, &r.Code, &r.Reason, &r.Other, &r.AreaBeforeM2, &r.PartsBefore, &r.AreaAfterM2, &r.PartsAfter, &empty); err != nil {
					rows.Close()
					return nil, fmt.Errorf("import: repair topology: %w", err)
				}
				if empty || r.PartsAfter == 0 {
					probs.add(Problem{Feature: r.Feature, Code: r.Code, Reason: "unrepairable", Other: r.Other,
						Message: fmt.Sprintf("%s: nothing is left once %s (%s)", featureLabel(r.Feature, r.Code), strings.ReplaceAll(r.Reason, "_", " "), r.Other)})
					continue
				}
				reps = append(reps, r)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, fmt.Errorf("import: repair topology: %w", err)
			}
		}
	}
	return reps, nil
}

// repairTail is the end of a repairTopology step, after its CTE bad
// (idx, other, cut, area_before, parts_before): each bad grid becomes
// op(geom, cut), and the step returns what changed, as reason.
func repairTail(op, reason string) string {
	return `, upd AS (
			UPDATE import_grids i SET geom = ST_Multi(ST_CollectionExtract(` + op + `(i.geom, bad.cut), 3))
			FROM bad WHERE bad.idx = i.idx RETURNING i.idx, i.code, i.geom
		)
		SELECT u.idx, u.code, '` + reason + `', b.other, b.area_before, b.parts_before,
		       COALESCE(ST_Area(u.geom::geography), 0), ST_NumGeometries(u.geom), ST_IsEmpty(u.geom)
		FROM upd u JOIN bad b USING (idx) ORDER BY u.idx`
}

// checkCodesAndParents finds codes already stored and parents that are
// unknown or not one level up.
func (s *Store) checkCodesAndParents(ctx context.Context, tx pgx.Tx, probs *Problems) error {
	rows, err := tx.Query(ctx, `SELECT i.idx, i.code, 'duplicate_code', g.code, NULL::text
		FROM import_grids i JOIN grids g ON g.code = i.code
		UNION ALL
		SELECT i.idx, i.code,
		       CASE WHEN COALESCE(pi.level_rank, pg.level_rank) IS NULL THEN 'unknown_parent' ELSE 'bad_parent' END,
		       i.parent_code, COALESCE(pi.level, pg.level)
		FROM import_grids i
		LEFT JOIN import_grids pi ON pi.code = i.parent_code
		LEFT JOIN grids pg ON pg.code = i.parent_code
		WHERE i.parent_code <> '' AND COALESCE(pi.level_rank, pg.level_rank, -1) <> i.level_rank - 1
		ORDER BY 1`)
	if err != nil {
		return fmt.Errorf("import: parents: %w", err)
	}
	var otherLevel *string
	err = problemRows(rows, probs, []any{&otherLevel}, func(p *Problem) {
		label := featureLabel(p.Feature, p.Code)
		switch p.Reason {
		case "duplicate_code":
			p.Message = fmt.Sprintf("%s: a grid with code %s already exists", label, p.Code)
		case "unknown_parent":
			p.Message = fmt.Sprintf("%s: parent %s is neither stored nor in this import", label, p.Other)
		default:
			p.Message = fmt.Sprintf("%s: parent %s is a %s; a grid's parent must be one level up", label, p.Other, deref(otherLevel))
		}
	})
	if err != nil {
		return fmt.Errorf("import: parents: %w", err)
	}
	return nil
}

// problemRows adds a problem to probs for each row of a database check:
// its first columns are the feature's index, its code, the reason and the
// other grid involved; the rest are scanned into more, which finish reads
// to complete the problem (its message, area, location).
func problemRows(rows pgx.Rows, probs *Problems, more []any, finish func(p *Problem)) error {
	var row Problem
	scans := append([]any{&row.Feature, &row.Code, &row.Reason, &row.Other}, more...)
	_, err := pgx.ForEachRow(rows, scans, func() error {
		p := Problem{Feature: row.Feature, Code: row.Code, Reason: row.Reason, Other: row.Other}
		finish(&p)
		probs.add(p)
		return nil
	})
	return err
}

// checkTopology finds grids outside their parent and grids overlapping
// another grid of their level, each above its tolerance, with the area in m²
// and a point inside the offending part.
func (s *Store) checkTopology(ctx context.Context, tx pgx.Tx, probs *Problems) error {
	rows, err := tx.Query(ctx, `WITH parents AS (
			SELECT code, geom FROM import_grids
			UNION ALL SELECT code, geom FROM grids
		), outside AS (
			SELECT i.idx, i.code, i.parent_code AS other, ST_Difference(i.geom, p.geom) AS part
			FROM import_grids i JOIN parents p ON p.code = i.parent_code
			WHERE NOT ST_CoveredBy(i.geom, p.geom)
		), others AS (
			SELECT code, level_rank, geom, true AS imported FROM import_grids
			UNION ALL SELECT code, level_rank, geom, false FROM grids
		), overlap AS (
			SELECT a.idx, a.code, o.code AS other, ST_Intersection(a.geom, o.geom) AS part
			FROM import_grids a JOIN others o
			  ON o.level_rank = a.level_rank AND o.code <> a.code AND a.geom && o.geom
			 AND (NOT o.imported OR a.code < o.code)
			WHERE ST_Relate(a.geom, o.geom, '2********')
		)
		SELECT idx, code, 'outside_parent', other, ST_Area(part::geography), ST_X(ST_PointOnSurface(part)), ST_Y(ST_PointOnSurface(part))
		FROM outside WHERE ST_Area(part::geography) > $1
		UNION ALL
		SELECT idx, code, 'overlap', other, ST_Area(part::geography), ST_X(ST_PointOnSurface(part)), ST_Y(ST_PointOnSurface(part))
		FROM overlap WHERE ST_Area(part::geography) > $2
		ORDER BY 1, 3, 4`, s.opts.OutsideToleranceM2, s.opts.OverlapToleranceM2)
	if err != nil {
		return fmt.Errorf("import: topology: %w", err)
	}
	var area float64
	var x, y *float64
	err = problemRows(rows, probs, []any{&area, &x, &y}, func(p *Problem) {
		m2 := area // each problem its own: area is scanned again for the next row
		p.AreaM2 = &m2
		where := ""
		if x != nil && y != nil {
			p.Location = []float64{*x, *y}
			where = fmt.Sprintf(" around [%s, %s]", formatFloat(round7(*x)), formatFloat(round7(*y)))
		}
		label := featureLabel(p.Feature, p.Code)
		if p.Reason == "overlap" {
			p.Message = fmt.Sprintf("%s overlaps grid %s by %.1f m²%s", label, p.Other, area, where)
		} else {
			p.Message = fmt.Sprintf("%s lies %.1f m² outside its parent %s%s", label, area, p.Other, where)
		}
	})
	if err != nil {
		return fmt.Errorf("import: topology: %w", err)
	}
	return nil
}

func round7(f float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 7, 64), 64)
	return v
}

// codeFor picks the error code for problems found in the database checks.
func codeFor(ps Problems) string {
	for _, p := range ps {
		if p.Reason == "duplicate_code" {
			return gridwatch.EConflict
		}
	}
	return gridwatch.EInvalid
}

// reasonKey turns PostGIS's "Ring Self-intersection" into "ring_self_intersection".
func reasonKey(reason string) string {
	return strings.ToLower(strings.NewReplacer(" ", "_", "-", "_").Replace(strings.TrimSpace(reason)))
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// importFollow lets the participants follow an import in its transaction:
// cameras and cases in the new grids' extent go to the grid now covering
// them, as after any boundary change (a refusal stops the import).
func (s *Store) importFollow(ctx context.Context, tx pgx.Tx, grids []Ref) error {
	if len(grids) == 0 {
		return nil
	}
	ch := &Change{Kind: ChangeImport, Created: make([]int64, 0, len(grids)), Removed: []int64{}}
	for _, g := range grids {
		ch.Created = append(ch.Created, g.ID)
	}
	if err := tx.QueryRow(ctx, `SELECT ST_Multi(ST_SetSRID(ST_Extent(geom)::geometry, 4326)) FROM import_grids`).Scan(&ch.Area); err != nil {
		return fmt.Errorf("import: extent: %w", err)
	}
	return s.runParticipants(ctx, tx, ch)
}
