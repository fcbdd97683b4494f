package geo

import (
	"context"
	"errors"
	"fmt"
	"gridwatch"
	"gridwatch/audit"
	"gridwatch/internal/events"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twpayne/go-geom"
)

// The engine every boundary change runs through: lock, versions, the
// change itself, topology checks, handovers and participants, report,
// audit, event, commit.

// change runs one boundary change: lock, check the versions, apply op,
// check the topology, let the participants follow, then commit — or roll
// back for a dry run or an error finding.
func (s *Store) change(ctx context.Context, kind string, opts ChangeOptions, ids []int64, versions map[int64]int,
	op func(context.Context, pgx.Tx, *Change, *ChangeReport) error) (*ChangeReport, error) {
	rep := &ChangeReport{Kind: kind, DryRun: opts.DryRun, Findings: []Finding{}, Grids: []GridChange{}}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("grid %s: %w", kind, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after commit
	// One change at a time, and none beside an import: the checks read
	// the neighbours.
	actor := audit.ActorFrom(ctx).Name
	if _, err := tx.Exec(ctx, `LOCK TABLE grids IN SHARE ROW EXCLUSIVE MODE;
		CREATE TEMP TABLE grid_change (grid_id bigint PRIMARY KEY, old_geom geometry, new_geom geometry, version_before int, area_before float8) ON COMMIT DROP`); err != nil {
		return nil, fmt.Errorf("grid %s: %w", kind, err)
	}
	// jit off: the geography functions' costs make small checks look
	// huge, and compiling them took longer than running them.
	if _, err := tx.Exec(ctx, `SELECT set_config('gridwatch.actor', $1, true), set_config('gridwatch.change', $2, true), set_config('jit', 'off', true)`, actor, kind); err != nil {
		return nil, fmt.Errorf("grid %s: %w", kind, err)
	}
	if err := s.checkVersions(ctx, tx, ids, versions); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO grid_change (grid_id, old_geom, version_before, area_before)
		SELECT id, geom, version, area_m2 FROM grids WHERE id = ANY($1)`, ids); err != nil {
		return nil, fmt.Errorf("grid %s: %w", kind, err)
	}
	ch := &Change{Kind: kind, Created: []int64{}, Removed: []int64{}}
	if err := op(ctx, tx, ch, rep); err != nil {
		return nil, err
	}
	if rep.Errors == 0 {
		if err := s.follow(ctx, tx, ch, rep); err != nil {
			return nil, err
		}
	}
	if err := s.describe(ctx, tx, ch, rep); err != nil {
		return nil, err
	}
	if rep.Errors > 0 && !opts.DryRun {
		return rep, gridwatch.Errorf(gridwatch.ETopology, "%s", rep.Findings[firstError(rep.Findings)].Message).
			WithDetails(map[string]any{"report": rep})
	}
	if opts.DryRun || rep.Errors > 0 {
		return rep, nil
	}
	if err := bumpRevision(ctx, tx); err != nil {
		return nil, err
	}
	if err := tx.QueryRow(ctx, "SELECT revision FROM grid_revision").Scan(&rep.Revision); err != nil {
		return nil, err
	}
	codes := make([]string, 0, len(rep.Grids))
	gridIDs := make([]int64, 0, len(rep.Grids))
	for _, g := range rep.Grids {
		codes, gridIDs = append(codes, g.Code), append(gridIDs, g.ID)
	}
	summary := map[string]any{"grids": codes, "cameras_moved": rep.Cameras.Count, "incidents_moved": rep.Incidents.Count,
		"flagged": rep.Flagged.Count, "buildings_moved": rep.Buildings.Count, "components_moved": rep.Components.Count, "warnings": rep.Warnings}
	if err := audit.Record(ctx, tx, "grid."+kind, "grid", strconv.FormatInt(ids[0], 10), summary); err != nil {
		return nil, err
	}
	if err := events.Publish(ctx, tx, events.GridChanged, &ids[0], map[string]any{
		"id": strconv.FormatInt(ids[0], 10), "kind": kind, "grids": gridIDs, "codes": codes, "revision": rep.Revision,
		"cameras_moved": rep.Cameras.Count, "incidents_moved": rep.Incidents.Count, "flagged": rep.Flagged.Count,
		"buildings_moved": rep.Buildings.Count, "components_moved": rep.Components.Count,
	}); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("grid %s: commit: %w", kind, err)
	}
	rep.Committed = true
	s.changed(ctx)
	return rep, nil
}

// checkVersions locks the grids and compares their versions with what the
// caller edited; a stale one says who changed the grid and when.
func (s *Store) checkVersions(ctx context.Context, tx pgx.Tx, ids []int64, versions map[int64]int) error {
	for _, id := range ids {
		var code string
		var version int
		var by string
		var at time.Time
		err := tx.QueryRow(ctx, `SELECT g.code, g.version, coalesce(v.changed_by, ''), coalesce(v.valid_from, g.updated_at)
			FROM grids g LEFT JOIN grid_versions v ON v.grid_id = g.id AND v.valid_to IS NULL WHERE g.id = $1 FOR NO KEY UPDATE OF g`, id).Scan(&code, &version, &by, &at)
		if errors.Is(err, pgx.ErrNoRows) {
			return gridwatch.Errorf(gridwatch.ENotFound, "grid %d not found", id)
		}
		if err != nil {
			return fmt.Errorf("grid %d: %w", id, err)
		}
		want := versions[id]
		if want < 0 {
			continue
		}
		if want == 0 && id != ids[0] {
			continue // a neighbour's version is checked only when given
		}
		if want == 0 {
			return gridwatch.Errorf(gridwatch.ENeedsVersion, "grid %s: say which version you edited (If-Match: %s, the grid's ETag)", code, ETag(id, version)).
				WithDetails(map[string]any{"grid": code, "current_version": version, "etag": ETag(id, version)})
		}
		if want != version {
			who := by
			if who == "" {
				who = "an import"
			}
			return gridwatch.Errorf(gridwatch.EStale, "grid %s changed since you loaded it: version %d by %s at %s (you edited version %d); reload it and redo your edit",
				code, version, who, at.Format(time.RFC3339), want).
				WithDetails(map[string]any{"grid": code, "current_version": version, "your_version": want, "changed_by": by, "changed_at": at, "etag": ETag(id, version)})
		}
	}
	return nil
}

// follow records the new boundaries in grid_change, checks the topology,
// tells the participants what changed hands and lets them follow.
func (s *Store) follow(ctx context.Context, tx pgx.Tx, ch *Change, rep *ChangeReport) error {
	if _, err := tx.Exec(ctx, `INSERT INTO grid_change (grid_id, old_geom, version_before, area_before)
		SELECT id, NULL, NULL, 0 FROM grids WHERE id = ANY($1)`, ch.Created); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE grid_change c SET new_geom = CASE WHEN c.grid_id = ANY($1) THEN NULL ELSE g.geom END FROM grids g WHERE g.id = c.grid_id`, ch.Removed); err != nil {
		return err
	}
	if err := s.checkChange(ctx, tx, ch, rep); err != nil {
		return err
	}
	if rep.Errors > 0 {
		return nil
	}
	// What participants are told: the area where boundaries moved (the
	// union of old and new) and the handovers within it.
	if err := tx.QueryRow(ctx, `SELECT ST_Multi(ST_UnaryUnion(ST_Collect(g))) FROM
		(SELECT old_geom AS g FROM grid_change UNION ALL SELECT new_geom FROM grid_change) x WHERE g IS NOT NULL`).Scan(&ch.Area); err != nil {
		return fmt.Errorf("grid %s: changed area: %w", ch.Kind, err)
	}
	if err := handovers(ctx, tx, ch); err != nil {
		return err
	}
	if err := s.runParticipants(ctx, tx, ch); err != nil {
		return err
	}
	for _, gone := range ch.Removed {
		if _, err := tx.Exec(ctx, `DELETE FROM grids WHERE id = $1`, gone); err != nil {
			return fmt.Errorf("grid merge: remove %d: %w", gone, err)
		}
	}
	return nil
}

// Slivers: a part of a new boundary under SliverAreaM2, or thinner than
// SliverThinness (4π·area/perimeter²: 1 for a disc, near 0 for a strip),
// is shown as a warning.
const (
	SliverAreaM2   = 10.0
	SliverThinness = 0.02
)

// checkQuery finds what is wrong with the new boundaries among their
// neighbours: overlaps with grids of their level, parts outside the
// parent, children left outside, gaps opened inside the parent, slivers.
// $1 removed grids, $2 overlap tolerance, $3 outside tolerance, $4 and $5
// the sliver limits.
const checkQuery = `WITH changed AS (
		SELECT g.id, g.code, g.level_rank, g.parent_id, g.geom FROM grid_change c JOIN grids g ON g.id = c.grid_id WHERE c.new_geom IS NOT NULL
	), overlap AS (
		SELECT a.code, o.code AS other, ST_Intersection(a.geom, o.geom) AS part
		FROM changed a JOIN grids o ON o.level_rank = a.level_rank AND o.id <> a.id AND o.geom && a.geom AND NOT o.id = ANY($1)
		WHERE ST_Relate(a.geom, o.geom, '2********') AND (a.id < o.id OR o.id NOT IN (SELECT id FROM changed))
	), outside AS (
		SELECT a.code, p.code AS other, ST_Difference(a.geom, p.geom) AS part
		FROM changed a JOIN grids p ON p.id = a.parent_id WHERE NOT ST_CoveredBy(a.geom, p.geom)
	), child AS (
		SELECT a.code, k.code AS other, ST_Difference(k.geom, a.geom) AS part
		FROM changed a JOIN grids k ON k.parent_id = a.id AND NOT k.id = ANY($1) WHERE NOT ST_CoveredBy(k.geom, a.geom)
	), released AS (
		-- What the changed grids gave up under each parent that no grid
		-- of the parent covers now.
		SELECT p.code, ST_Difference(ST_UnaryUnion(ST_Collect(c.old_geom)),
			coalesce((SELECT ST_UnaryUnion(ST_Collect(s.geom)) FROM grids s WHERE s.parent_id = p.id AND NOT s.id = ANY($1)
				AND s.geom && (SELECT ST_SetSRID(ST_Extent(c2.old_geom)::geometry, 4326) FROM grid_change c2)), ST_SetSRID('POLYGON EMPTY'::geometry, 4326))) AS part
		FROM grid_change c JOIN grid_versions v ON v.grid_id = c.grid_id AND v.version = c.version_before JOIN grids p ON p.id = v.parent_id
		WHERE c.old_geom IS NOT NULL GROUP BY p.id, p.code
	), slivers AS (
		SELECT a.code, d.geom AS part, ST_Area(d.geom::geography) AS area, ST_Perimeter(d.geom::geography) AS perim
		FROM changed a, ST_Dump(a.geom) d
	)
	SELECT 'overlap' AS kind, code, other, part FROM overlap WHERE ST_Area(part::geography) > $2
	UNION ALL SELECT 'outside_parent', code, other, part FROM outside WHERE ST_Area(part::geography) > $3
	UNION ALL SELECT 'child_outside', code, other, part FROM child WHERE ST_Area(part::geography) > $3
	UNION ALL SELECT 'gap', code, '', part FROM released WHERE NOT ST_IsEmpty(part) AND ST_Area(part::geography) > $2
	UNION ALL SELECT 'sliver', code, '', part FROM slivers WHERE area < $4 OR 4 * pi() * area / (perim * perim) < $5`

// checkChange adds the topology findings of the change to rep.
func (s *Store) checkChange(ctx context.Context, tx pgx.Tx, ch *Change, rep *ChangeReport) error {
	rows, err := tx.Query(ctx, `SELECT kind, code, other, ST_Area(part::geography), ST_X(ST_PointOnSurface(part)), ST_Y(ST_PointOnSurface(part)) FROM (`+
		checkQuery+`) f ORDER BY 1, 2, 3`, ch.Removed, s.opts.OverlapToleranceM2, s.opts.OutsideToleranceM2, SliverAreaM2, SliverThinness)
	if err != nil {
		return fmt.Errorf("grid %s: topology: %w", ch.Kind, err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind, code, other string
		var area float64
		var x, y *float64
		if err := rows.Scan(&kind, &code, &other, &area, &x, &y); err != nil {
			return fmt.Errorf("grid %s: topology: %w", ch.Kind, err)
		}
		f := Finding{Severity: SeverityError, Kind: kind, Grid: code, Other: other, AreaM2: &area}
		where := ""
		if x != nil && y != nil {
			f.Location = []float64{*x, *y}
			where = fmt.Sprintf(" around [%s, %s]", formatFloat(round7(*x)), formatFloat(round7(*y)))
		}
		switch kind {
		case "overlap":
			f.Message = fmt.Sprintf("grid %s would overlap grid %s by %.1f m²%s", code, other, area, where)
		case "outside_parent":
			f.Message = fmt.Sprintf("grid %s would lie %.1f m² outside its parent %s%s", code, area, other, where)
		case "child_outside":
			f.Message = fmt.Sprintf("grid %s's child %s would lie %.1f m² outside it%s", code, other, area, where)
		case "gap":
			f.Severity = SeverityWarning
			f.Message = fmt.Sprintf("a gap of %.1f m² would open inside %s, covered by none of its grids%s", area, code, where)
		case "sliver":
			f.Severity = SeverityWarning
			f.Message = fmt.Sprintf("grid %s would have a sliver of %.1f m²%s", code, area, where)
		}
		rep.add(f)
	}
	return rows.Err()
}

func (s *Store) codeOf(ctx context.Context, tx pgx.Tx, id int64) string {
	var code string
	if err := tx.QueryRow(ctx, `SELECT code FROM grids WHERE id = $1`, id).Scan(&code); err != nil {
		return strconv.FormatInt(id, 10)
	}
	return code
}

// checkNew reports a new boundary that cannot be stored: invalid (with
// PostGIS's reason and where) or empty. It returns whether g is storable.
func (s *Store) checkNew(ctx context.Context, tx pgx.Tx, rep *ChangeReport, code string, g *geom.MultiPolygon) (bool, error) {
	var valid bool
	var reason *string
	var x, y *float64
	var area float64
	err := tx.QueryRow(ctx, `SELECT d.valid, d.reason, ST_X(d.location), ST_Y(d.location), CASE WHEN d.valid THEN ST_Area($1::geography) ELSE 0 END
		FROM ST_IsValidDetail($1::geometry) d`, g).Scan(&valid, &reason, &x, &y, &area)
	if err != nil {
		return false, fmt.Errorf("grid %s: check the new boundary: %w", code, err)
	}
	if !valid {
		f := Finding{Severity: SeverityError, Kind: "invalid", Grid: code, Message: fmt.Sprintf("grid %s: the new boundary is invalid: %s", code, deref(reason))}
		if x != nil && y != nil {
			f.Location = []float64{*x, *y}
			f.Message += fmt.Sprintf(" at [%s, %s]", formatFloat(round7(*x)), formatFloat(round7(*y)))
		}
		rep.add(f)
		return false, nil
	}
	if area < 1 {
		rep.add(Finding{Severity: SeverityError, Kind: "empty", Grid: code, AreaM2: &area, Message: fmt.Sprintf("grid %s: the new boundary encloses %.2f m²", code, area)})
		return false, nil
	}
	return true, nil
}
