package geo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twpayne/go-geom"

	"gridwatch"
	"gridwatch/audit"
)

// StoreOptions set the topology tolerances.
type StoreOptions struct {
	// OverlapToleranceM2 is the largest overlap between two grids of the same
	// level that is ignored (digitising noise); 0 is exact. gridwatch's
	// configuration defaults it to 1 m².
	OverlapToleranceM2 float64
	// OutsideToleranceM2 is the largest part of a grid outside its parent that
	// is ignored; 0 is exact.
	OutsideToleranceM2 float64
	Logger             *slog.Logger
}

// Store keeps grids in PostGIS. All grid SQL lives in this package.
type Store struct {
	pool *pgxpool.Pool
	opts StoreOptions
	log  *slog.Logger

	mu           sync.Mutex
	hooks        []func(context.Context)
	participants []Participant
	tiles        tileCache
}

// NewStore returns a store over pool.
func NewStore(pool *pgxpool.Pool, opts StoreOptions) *Store {
	// Zero tolerances are exact; negative ones make no sense and count as zero.
	opts.OverlapToleranceM2 = max(opts.OverlapToleranceM2, 0)
	opts.OutsideToleranceM2 = max(opts.OutsideToleranceM2, 0)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{pool: pool, opts: opts, log: log}
}

// AfterChange registers fn to run after every committed change to grids,
// before the changing call returns (so a lookup after an import sees it).
func (s *Store) AfterChange(fn func(context.Context)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = append(s.hooks, fn)
}

func (s *Store) changed(ctx context.Context) {
	s.mu.Lock()
	hooks := append([]func(context.Context){}, s.hooks...)
	s.mu.Unlock()
	for _, fn := range hooks {
		fn(ctx)
	}
}

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
	const clip = `WITH parents AS (
			SELECT code, geom FROM import_grids UNION ALL SELECT code, geom FROM grids
		), bad AS (
			SELECT i.idx, p.code AS other, p.geom AS cut, ST_Area(i.geom::geography) AS area_before, ST_NumGeometries(i.geom) AS parts_before
			FROM import_grids i JOIN parents p ON p.code = i.parent_code
			WHERE i.level_rank = $1 AND NOT ST_CoveredBy(i.geom, p.geom)
			  AND ST_Area(ST_Difference(i.geom, p.geom)::geography) > $2
		), upd AS (
			UPDATE import_grids i SET geom = ST_Multi(ST_CollectionExtract(ST_Intersection(i.geom, bad.cut), 3))
			FROM bad WHERE bad.idx = i.idx RETURNING i.idx, i.code, i.geom
		)
		SELECT u.idx, u.code, 'clipped_to_parent', b.other, b.area_before, b.parts_before,
		       COALESCE(ST_Area(u.geom::geography), 0), ST_NumGeometries(u.geom), ST_IsEmpty(u.geom)
		FROM upd u JOIN bad b USING (idx) ORDER BY u.idx`
	const trim = `WITH others AS (
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
		), upd AS (
			UPDATE import_grids i SET geom = ST_Multi(ST_CollectionExtract(ST_Difference(i.geom, bad.cut), 3))
			FROM bad WHERE bad.idx = i.idx RETURNING i.idx, i.code, i.geom
		)
		SELECT u.idx, u.code, 'overlap_trimmed', b.other, b.area_before, b.parts_before,
		       COALESCE(ST_Area(u.geom::geography), 0), ST_NumGeometries(u.geom), ST_IsEmpty(u.geom)
		FROM upd u JOIN bad b USING (idx) ORDER BY u.idx`
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
	defer rows.Close()
	for rows.Next() {
		var idx int
		var code, reason, other string
		var otherLevel *string
		if err := rows.Scan(&idx, &code, &reason, &other, &otherLevel); err != nil {
			return fmt.Errorf("import: parents: %w", err)
		}
		p := Problem{Feature: idx, Code: code, Reason: reason, Other: other}
		switch reason {
		case "duplicate_code":
			p.Message = fmt.Sprintf("%s: a grid with code %s already exists", featureLabel(idx, code), code)
		case "unknown_parent":
			p.Message = fmt.Sprintf("%s: parent %s is neither stored nor in this import", featureLabel(idx, code), other)
		default:
			p.Message = fmt.Sprintf("%s: parent %s is a %s; a grid's parent must be one level up", featureLabel(idx, code), other, deref(otherLevel))
		}
		probs.add(p)
	}
	return rows.Err()
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
	defer rows.Close()
	for rows.Next() {
		var idx int
		var code, reason, other string
		var area float64
		var x, y *float64
		if err := rows.Scan(&idx, &code, &reason, &other, &area, &x, &y); err != nil {
			return fmt.Errorf("import: topology: %w", err)
		}
		p := Problem{Feature: idx, Code: code, Reason: reason, Other: other, AreaM2: &area}
		where := ""
		if x != nil && y != nil {
			p.Location = []float64{*x, *y}
			where = fmt.Sprintf(" around [%s, %s]", formatFloat(round7(*x)), formatFloat(round7(*y)))
		}
		if reason == "overlap" {
			p.Message = fmt.Sprintf("%s overlaps grid %s by %.1f m²%s", featureLabel(idx, code), other, area, where)
		} else {
			p.Message = fmt.Sprintf("%s lies %.1f m² outside its parent %s%s", featureLabel(idx, code), area, other, where)
		}
		probs.add(p)
	}
	return rows.Err()
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

func bumpRevision(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, "UPDATE grid_revision SET revision = revision + 1"); err != nil {
		return fmt.Errorf("grid revision: %w", err)
	}
	return nil
}

func scanRef(row pgx.CollectableRow) (Ref, error) {
	var r Ref
	err := row.Scan(&r.ID, &r.Code, &r.Name, &r.Level)
	return r, err
}

const gridColumns = `g.id, g.code, g.name, g.level, g.parent_id, COALESCE(p.code, ''), g.area_m2, g.properties, g.version, g.created_at, g.updated_at`

func scanGrid(row pgx.Row, g *Grid, extra ...any) error {
	dest := append([]any{&g.ID, &g.Code, &g.Name, &g.Level, &g.ParentID, &g.ParentCode, &g.AreaM2, &g.Properties, &g.Version, &g.CreatedAt, &g.UpdatedAt}, extra...)
	return row.Scan(dest...)
}

// Get returns grid id with its geometry.
func (s *Store) Get(ctx context.Context, id int64) (*Grid, error) {
	var g Grid
	err := scanGrid(s.pool.QueryRow(ctx, `SELECT `+gridColumns+`, g.geom
		FROM grids g LEFT JOIN grids p ON p.id = g.parent_id WHERE g.id = $1`, id), &g, &g.Geometry)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gridwatch.Errorf(gridwatch.ENotFound, "grid %d not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("grid %d: %w", id, err)
	}
	return &g, nil
}

// Chain returns grid id and its ancestors, the grid first.
func (s *Store) Chain(ctx context.Context, id int64) ([]Ref, error) {
	rows, err := s.pool.Query(ctx, `WITH RECURSIVE chain AS (
			SELECT id, code, name, level, parent_id, 0 AS depth FROM grids WHERE id = $1
			UNION ALL
			SELECT g.id, g.code, g.name, g.level, g.parent_id, c.depth + 1
			FROM grids g JOIN chain c ON g.id = c.parent_id
		) SELECT id, code, name, level FROM chain ORDER BY depth`, id)
	if err != nil {
		return nil, fmt.Errorf("grid %d chain: %w", id, err)
	}
	refs, err := pgx.CollectRows(rows, scanRef)
	if err != nil {
		return nil, fmt.Errorf("grid %d chain: %w", id, err)
	}
	if len(refs) == 0 {
		return nil, gridwatch.Errorf(gridwatch.ENotFound, "grid %d not found", id)
	}
	return refs, nil
}

// Filter selects grids for lists and GeoJSON.
type Filter struct {
	Level    Level
	ParentID int64
	BBox     *BBox
	// After is the cursor: only ids greater than it.
	After int64
	// Limit caps a list page (0: no cap, for GeoJSON).
	Limit int
	// Scope, when not nil, keeps only these grids and their descendants.
	Scope []int64
	// Code keeps the grid with exactly this code.
	Code string
	// UpdatedFrom and UpdatedUntil keep grids whose current version was
	// written in [UpdatedFrom, UpdatedUntil]; a zero time leaves that end open.
	UpdatedFrom, UpdatedUntil time.Time
	// Geometry makes List return each grid's boundary too.
	Geometry bool
}

func (f Filter) where() (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, v ...any) {
		for _, x := range v {
			args = append(args, x)
			cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(args)), 1)
		}
		conds = append(conds, cond)
	}
	if f.Level != "" {
		add("g.level = ?", string(f.Level))
	}
	if f.ParentID != 0 {
		add("g.parent_id = ?", f.ParentID)
	}
	if f.BBox != nil {
		add("g.geom && ST_MakeEnvelope(?, ?, ?, ?, 4326)", f.BBox.MinLon, f.BBox.MinLat, f.BBox.MaxLon, f.BBox.MaxLat)
	}
	if f.After != 0 {
		add("g.id > ?", f.After)
	}
	if f.Code != "" {
		add("g.code = ?", f.Code)
	}
	if !f.UpdatedFrom.IsZero() {
		add("g.updated_at >= ?", f.UpdatedFrom)
	}
	if !f.UpdatedUntil.IsZero() {
		add("g.updated_at <= ?", f.UpdatedUntil)
	}
	if f.Scope != nil {
		add(`g.id IN (WITH RECURSIVE sub AS (
			SELECT id FROM grids WHERE id = ANY(?)
			UNION SELECT c.id FROM grids c JOIN sub ON c.parent_id = sub.id) SELECT id FROM sub)`, f.Scope)
	}
	if len(conds) == 0 {
		return "", args
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// List returns a page of grids (with their geometry only when f.Geometry)
// in id order and the cursor of the next page, 0 when this is the last.
func (s *Store) List(ctx context.Context, f Filter) ([]Grid, int64, error) {
	where, args := f.where()
	cols := gridColumns
	if f.Geometry {
		cols += ", g.geom"
	}
	q := `SELECT ` + cols + ` FROM grids g LEFT JOIN grids p ON p.id = g.parent_id` + where + ` ORDER BY g.id`
	if f.Limit > 0 {
		q += " LIMIT " + strconv.Itoa(f.Limit+1)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("list grids: %w", err)
	}
	defer rows.Close()
	grids := []Grid{}
	for rows.Next() {
		var g Grid
		var extra []any
		if f.Geometry {
			extra = append(extra, &g.Geometry)
		}
		if err := scanGrid(rows, &g, extra...); err != nil {
			return nil, 0, fmt.Errorf("list grids: %w", err)
		}
		grids = append(grids, g)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("list grids: %w", err)
	}
	var next int64
	if f.Limit > 0 && len(grids) > f.Limit {
		grids = grids[:f.Limit]
		next = grids[len(grids)-1].ID
	}
	return grids, next, nil
}

// WriteGeoJSON streams the grids matching f as a GeoJSON FeatureCollection:
// each feature's id is the grid id; its properties are the grid's fields and
// its kept properties (which never override the fields).
func (s *Store) WriteGeoJSON(ctx context.Context, w io.Writer, f Filter) error {
	where, args := f.where()
	rows, err := s.pool.Query(ctx, `SELECT g.id, g.code, g.name, g.level, g.parent_id, p.code, g.area_m2, g.version, g.properties,
		ST_AsGeoJSON(g.geom, 7) FROM grids g LEFT JOIN grids p ON p.id = g.parent_id`+where+` ORDER BY g.level_rank, g.code`, args...)
	if err != nil {
		return fmt.Errorf("grids geojson: %w", err)
	}
	defer rows.Close()
	if _, err := io.WriteString(w, `{"type":"FeatureCollection","features":[`); err != nil {
		return err
	}
	first := true
	for rows.Next() {
		var (
			id, version int64
			parent      *int64
			parentCode  *string
			code, name  string
			level       string
			area        float64
			props       map[string]any
			geometry    string
		)
		if err := rows.Scan(&id, &code, &name, &level, &parent, &parentCode, &area, &version, &props, &geometry); err != nil {
			return fmt.Errorf("grids geojson: %w", err)
		}
		if props == nil {
			props = map[string]any{}
		}
		props["id"], props["code"], props["name"], props["level"] = id, code, name, level
		props["parent_id"], props["area_m2"], props["version"] = parent, area, version
		if parentCode != nil {
			props["parent_code"] = *parentCode
		}
		pj, err := json.Marshal(props)
		if err != nil {
			return fmt.Errorf("grids geojson: %w", err)
		}
		sep := ","
		if first {
			sep, first = "", false
		}
		if _, err := fmt.Fprintf(w, `%s{"type":"Feature","id":%d,"properties":%s,"geometry":%s}`, sep, id, pj, geometry); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("grids geojson: %w", err)
	}
	_, err = io.WriteString(w, "]}")
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

// Revision returns the grid revision, bumped by every change.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	var rev int64
	err := s.pool.QueryRow(ctx, "SELECT revision FROM grid_revision").Scan(&rev)
	return rev, err
}

// IndexGrids loads every grid for the in-process index, with the revision
// read in the same snapshot.
func (s *Store) IndexGrids(ctx context.Context) ([]IndexedGrid, int64, error) {
	var out []IndexedGrid
	var rev int64
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT revision FROM grid_revision").Scan(&rev); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT id, code, name, level, COALESCE(parent_id, 0), geom FROM grids")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var g IndexedGrid
			var mp *geom.MultiPolygon
			if err := rows.Scan(&g.Ref.ID, &g.Ref.Code, &g.Ref.Name, &g.Ref.Level, &g.ParentID, &mp); err != nil {
				return err
			}
			g.Geometry = OrbMultiPolygon(mp)
			out = append(out, g)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, fmt.Errorf("load grids for the index: %w", err)
	}
	return out, rev, nil
}
