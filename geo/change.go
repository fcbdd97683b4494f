package geo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twpayne/go-geom"

	"gridwatch"
	"gridwatch/audit"
	"gridwatch/internal/events"
)

// Boundary changes: a redraw, the move of an edge two grids share, a split
// and a merge. Each runs in one transaction that changes the grids, checks
// the topology, lets every participant (cameras, incidents, scopes) follow
// the new boundaries and report what moved, writes the audit entry, bumps
// the tile version and publishes grid.changed. A dry run does all of it
// and rolls back, so the preview is exactly what the commit would do.

// Kinds of change.
const (
	ChangeRedraw   = "redraw"
	ChangeMoveEdge = "move_edge"
	ChangeSplit    = "split"
	ChangeMerge    = "merge"
	ChangeDelete   = "delete"
)

// Finding severities: errors block a commit, warnings are shown.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
)

// Finding is one topology finding of a change.
type Finding struct {
	Severity string `json:"severity"`
	// Kind: invalid, empty, overlap, outside_parent, child_outside, gap, sliver.
	Kind     string    `json:"kind"`
	Grid     string    `json:"grid"`
	Other    string    `json:"other,omitempty"`
	AreaM2   *float64  `json:"area_m2,omitempty"`
	Location []float64 `json:"location,omitempty"`
	Message  string    `json:"message"`
}

// GridChange is what a change does to one grid.
type GridChange struct {
	ID            int64   `json:"id"`
	Code          string  `json:"code"`
	Name          string  `json:"name"`
	VersionBefore int     `json:"version_before,omitempty"`
	VersionAfter  int     `json:"version_after,omitempty"`
	AreaBeforeM2  float64 `json:"area_before_m2"`
	AreaAfterM2   float64 `json:"area_after_m2"`
	// Created by a split; Removed by a merge.
	Created bool `json:"created,omitempty"`
	Removed bool `json:"removed,omitempty"`
}

// Move is a camera or an incident whose grid a change moves (or, for a
// flagged case, the grid it now lies in while it keeps its own).
type Move struct {
	ID    int64  `json:"id"`
	Label string `json:"label"`
	From  *Ref   `json:"from"`
	To    *Ref   `json:"to"`
}

// MaxListedMoves caps each list of a report; Count is always whole.
const MaxListedMoves = 1000

// MoveList is a count and the first MaxListedMoves items.
type MoveList struct {
	Count int    `json:"count"`
	Items []Move `json:"items"`
}

// ChangeReport is the preview of a change, or the account of a committed one.
type ChangeReport struct {
	Kind      string       `json:"kind"`
	DryRun    bool         `json:"dry_run"`
	Committed bool         `json:"committed"`
	Grids     []GridChange `json:"grids"`
	Findings  []Finding    `json:"findings"`
	Errors    int          `json:"errors"`
	Warnings  int          `json:"warnings"`
	// Cameras and Incidents change grid; Flagged are open registered cases
	// that keep their grid but now lie outside it (to be re-dispatched).
	Cameras   MoveList `json:"cameras"`
	Incidents MoveList `json:"incidents"`
	Flagged   MoveList `json:"flagged"`
	// Revision is the grid (and tile) version after the commit.
	Revision int64 `json:"revision,omitempty"`
}

// Move lists.
const (
	MovedCamera   = "camera"
	MovedIncident = "incident"
	FlaggedCase   = "flagged"
)

// Change is a boundary change in progress, inside its transaction, as
// participants see it. The temporary table grid_change_area holds one row,
// geom: the union of the old and new boundaries of every grid changed, so
// participants look only there.
type Change struct {
	Tx   pgx.Tx
	Kind string
	// Removed grids are deleted at the end of the change (merged into
	// MergedInto's grid): nothing may be assigned to them.
	Removed    []int64
	MergedInto map[int64]int64

	// SplitFrom maps each grid the change made (a split's new grid) to
	// the grid it was cut from.
	SplitFrom map[int64]int64

	moves map[string][]rawMove
}

type rawMove struct {
	id       int64
	label    string
	from, to *int64
}

// Moved records that what (MovedCamera, MovedIncident, FlaggedCase) id moves
// from grid from to grid to.
func (ch *Change) Moved(what string, id int64, label string, from, to *int64) {
	if ch.moves == nil {
		ch.moves = map[string][]rawMove{}
	}
	ch.moves[what] = append(ch.moves[what], rawMove{id, label, from, to})
}

// BestGrid is SQL for the grid a point belongs to after the change: the
// most specific grid covering it, the lowest code on a shared edge, never
// a removed grid. point is an SQL expression; removedParam the number of
// the query parameter that holds Removed.
func BestGrid(point string, removedParam int) string {
	return fmt.Sprintf(`(SELECT g.id FROM grids g WHERE ST_Covers(g.geom, %s) AND NOT g.id = ANY($%d::bigint[])
		ORDER BY g.level_rank DESC, g.code LIMIT 1)`, point, removedParam)
}

// Participant follows a change in its transaction and reports what moved;
// an error vetoes the change (a *gridwatch.Error reaches the user).
type Participant func(ctx context.Context, ch *Change) error

// Participate adds p to every boundary change.
func (s *Store) Participate(p Participant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.participants = append(s.participants, p)
}

// ChangeOptions are what every change request says.
type ChangeOptions struct {
	// IfMatch is the version of the grid the caller edited (from its ETag);
	// 0 refuses the change (a version is required); negative skips the
	// check, for previews, which change nothing.
	IfMatch int
	// DryRun previews: everything is done and rolled back.
	DryRun bool
}

// NewGrid names the grid a split creates.
type NewGrid struct {
	Code string `json:"code"`
	Name string `json:"name"`
}

// ETag is a grid version's entity tag.
func ETag(id int64, version int) string { return fmt.Sprintf(`"grid-%d-v%d"`, id, version) }

// ParseETag reads a version from an If-Match value for grid id; 0 if it
// names none of grid id's versions ("*" is not a version).
func ParseETag(id int64, ifMatch string) int {
	for _, tag := range strings.Split(ifMatch, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		rest, ok := strings.CutPrefix(tag, fmt.Sprintf(`"grid-%d-v`, id))
		if !ok {
			continue
		}
		if v, err := strconv.Atoi(strings.TrimSuffix(rest, `"`)); err == nil && strings.HasSuffix(rest, `"`) && v > 0 {
			return v
		}
	}
	return 0
}

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
		ch.SplitFrom = map[int64]int64{newID: id}
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
		ch.MergedInto = map[int64]int64{other: id}
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

func (rep *ChangeReport) add(f Finding) {
	rep.Findings = append(rep.Findings, f)
	if f.Severity == SeverityError {
		rep.Errors++
	} else {
		rep.Warnings++
	}
}

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
		CREATE TEMP TABLE grid_change (grid_id bigint PRIMARY KEY, old_geom geometry, new_geom geometry, version_before int, area_before float8) ON COMMIT DROP;
		CREATE TEMP TABLE grid_change_area (geom geometry) ON COMMIT DROP`); err != nil {
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
	ch := &Change{Tx: tx, Kind: kind, Removed: []int64{}}
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
		"flagged": rep.Flagged.Count, "warnings": rep.Warnings}
	if err := audit.Record(ctx, tx, "grid."+kind, "grid", strconv.FormatInt(ids[0], 10), summary); err != nil {
		return nil, err
	}
	if err := events.Publish(ctx, tx, events.GridChanged, &ids[0], map[string]any{
		"id": strconv.FormatInt(ids[0], 10), "kind": kind, "grids": gridIDs, "codes": codes, "revision": rep.Revision,
		"cameras_moved": rep.Cameras.Count, "incidents_moved": rep.Incidents.Count, "flagged": rep.Flagged.Count,
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

func firstError(fs []Finding) int {
	for i, f := range fs {
		if f.Severity == SeverityError {
			return i
		}
	}
	return 0
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

// follow records the new boundaries in grid_change, checks the topology
// and lets the participants follow.
func (s *Store) follow(ctx context.Context, tx pgx.Tx, ch *Change, rep *ChangeReport) error {
	if _, err := tx.Exec(ctx, `INSERT INTO grid_change (grid_id, old_geom, version_before, area_before)
		SELECT id, NULL, NULL, 0 FROM grids WHERE id = ANY($1)`, slices.Collect(maps.Keys(ch.SplitFrom))); err != nil {
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
	if _, err := tx.Exec(ctx, `INSERT INTO grid_change_area
		SELECT ST_UnaryUnion(ST_Collect(g)) FROM (SELECT old_geom AS g FROM grid_change UNION ALL SELECT new_geom FROM grid_change) x WHERE g IS NOT NULL`); err != nil {
		return err
	}
	s.mu.Lock()
	ps := append([]Participant{}, s.participants...)
	s.mu.Unlock()
	for _, p := range ps {
		if err := p(ctx, ch); err != nil {
			return err
		}
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

// describe fills in what the change does to each grid and resolves the
// grids of the moves (a removed grid from its history).
func (s *Store) describe(ctx context.Context, tx pgx.Tx, ch *Change, rep *ChangeReport) error {
	rows, err := tx.Query(ctx, `SELECT c.grid_id, v.code, v.name, coalesce(c.version_before, 0), v.version, c.area_before,
			CASE WHEN g.id IS NULL THEN 0 ELSE g.area_m2 END, c.old_geom IS NULL, g.id IS NULL
		FROM grid_change c
		JOIN LATERAL (SELECT code, name, version FROM grid_versions WHERE grid_id = c.grid_id ORDER BY version DESC LIMIT 1) v ON true
		LEFT JOIN grids g ON g.id = c.grid_id ORDER BY c.grid_id`)
	if err != nil {
		return fmt.Errorf("grid %s: %w", ch.Kind, err)
	}
	rep.Grids, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (GridChange, error) {
		var g GridChange
		err := r.Scan(&g.ID, &g.Code, &g.Name, &g.VersionBefore, &g.VersionAfter, &g.AreaBeforeM2, &g.AreaAfterM2, &g.Created, &g.Removed)
		if g.Removed {
			g.VersionAfter = 0
		}
		return g, err
	})
	if err != nil {
		return fmt.Errorf("grid %s: %w", ch.Kind, err)
	}
	var ids []int64
	for _, ms := range ch.moves {
		for _, m := range ms {
			for _, id := range []*int64{m.from, m.to} {
				if id != nil {
					ids = append(ids, *id)
				}
			}
		}
	}
	refs := map[int64]*Ref{}
	if len(ids) > 0 {
		rows, err := tx.Query(ctx, `SELECT DISTINCT ON (grid_id) grid_id, code, name, level FROM grid_versions
			WHERE grid_id = ANY($1) ORDER BY grid_id, version DESC`, ids)
		if err != nil {
			return fmt.Errorf("grid %s: %w", ch.Kind, err)
		}
		all, err := pgx.CollectRows(rows, scanRef)
		if err != nil {
			return fmt.Errorf("grid %s: %w", ch.Kind, err)
		}
		for i := range all {
			refs[all[i].ID] = &all[i]
		}
	}
	ref := func(id *int64) *Ref {
		if id == nil {
			return nil
		}
		return refs[*id]
	}
	for what, list := range map[string]*MoveList{MovedCamera: &rep.Cameras, MovedIncident: &rep.Incidents, FlaggedCase: &rep.Flagged} {
		ms := ch.moves[what]
		list.Count, list.Items = len(ms), make([]Move, 0, min(len(ms), MaxListedMoves))
		for _, m := range ms[:min(len(ms), MaxListedMoves)] {
			list.Items = append(list.Items, Move{ID: m.id, Label: m.label, From: ref(m.from), To: ref(m.to)})
		}
	}
	return nil
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
