package geo

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/twpayne/go-geom"
)

// The participants' contract. A boundary change (and an import) tells each
// participant — scopes, cameras, cases — in typed values what changed
// hands: the area where boundaries moved, which grid handed area to which,
// which grids the change creates and removes. A participant acts on its
// own tables in the change's transaction (so a preview rolls its moves back
// with the rest, and an error vetoes the change) and reports what moved
// with Moved or Relocate. Geo's own working tables stay geo's.

// ChangeImport is the kind a Change has when an import runs the participants.
const ChangeImport = "import"

// Handover says that area passed from grid From to grid To: a split hands
// the new grid's part of From to it; a merge hands all of the removed grid
// From to To; a move of an edge hands strips between the two grids. To is
// 0 where the area goes to whatever grid now covers it (a delete, or a
// redraw that gives area up); From is 0 where it came from whatever
// covered it before (a redraw that takes area in).
type Handover struct {
	From, To int64
	// Area is the area handed over.
	Area *geom.MultiPolygon
}

// Change is a boundary change (or an import) in progress, as participants
// see it.
type Change struct {
	// Kind is one of the Change… kinds, or ChangeImport.
	Kind string
	// Area bounds everything that changed hands: the union of the old and
	// new boundaries of every grid changed (for an import, the extent of
	// the grids it adds). Nothing outside it changes grid.
	Area *geom.MultiPolygon
	// Handovers list the grid-to-grid handovers of a boundary change (none
	// for an import: its area comes from no stored grid's record).
	Handovers []Handover
	// Created are the grids the change adds (a split's new grid, an
	// import's grids); Removed the grids it deletes at its end: nothing may
	// be assigned to them.
	Created, Removed []int64

	moves map[string][]rawMove
}

type rawMove struct {
	id       int64
	label    string
	from, to *int64
}

// IsCreated tells whether the change adds grid id.
func (ch *Change) IsCreated(id int64) bool { return slices.Contains(ch.Created, id) }

// IsRemoved tells whether the change removes grid id.
func (ch *Change) IsRemoved(id int64) bool { return slices.Contains(ch.Removed, id) }

// Moved records that what (MovedCamera, MovedIncident, FlaggedCase) id moves
// from grid from to grid to.
func (ch *Change) Moved(what string, id int64, label string, from, to *int64) {
	if ch.moves == nil {
		ch.moves = map[string][]rawMove{}
	}
	ch.moves[what] = append(ch.moves[what], rawMove{id, label, from, to})
}

// GridAt is SQL for the grid a point belongs to: the finest grid covering
// it, the lowest code on a shared edge, never one of the grids in removed.
// It is the one placement rule of cameras and cases; point is an SQL
// expression of a geometry, removed one of a bigint[] ("" for none).
func GridAt(point, removed string) string {
	not := ""
	if removed != "" {
		not = fmt.Sprintf(" AND NOT g.id = ANY(%s::bigint[])", removed)
	}
	return fmt.Sprintf(`(SELECT g.id FROM grids g WHERE ST_Covers(g.geom, %s)%s ORDER BY g.level_rank DESC, g.code LIMIT 1)`, point, not)
}

// Relocation names a participant's table of located things (cameras,
// cases) for Relocate. The table has the columns id, grid_id and location
// (a point in WGS-84); the SQL that moves them is written once, here, so
// cameras and cases follow a change by one rule.
type Relocation struct {
	// What is the list the moves are reported in (MovedCamera, MovedIncident).
	What string
	// Table is the participant's table; Label the column of it shown in
	// the report.
	Table, Label string
	// Only, when not empty, is an SQL condition on the table's rows (as t)
	// that the rows in the changed area must meet to move; rows assigned
	// to a removed grid move regardless.
	Only string
	// Set, when not empty, are more assignments made to a moved row (as t).
	Set string
	// In, when not empty, is the SQL condition on a row (as t) that puts it
	// in the changed area ($1); empty, its location is covered by the area.
	// Things with a footprint use it to take in those the area only
	// touches.
	In string
	// At, when not empty, is the SQL of a row's new grid (t, with $2 the
	// removed grids); empty, GridAt its location.
	At string
}

// Relocate is the one "move to the grid now covering it" routine: the
// rows of r.Table in the change's Area (meeting r.Only) or assigned to a
// removed grid go to GridAt their location; those whose grid changes are
// reported as moved and written by id, in one statement.
func (ch *Change) Relocate(ctx context.Context, tx pgx.Tx, r Relocation) error {
	only, set := "", ""
	in, at := "ST_Covers($1::geometry, t.location)", GridAt("t.location", "$2")
	if r.In != "" {
		in = "(" + r.In + ")"
	}
	if r.At != "" {
		at = r.At
	}
	if r.Only != "" {
		only = " AND (" + r.Only + ")"
	}
	if r.Set != "" {
		set = ", " + r.Set
	}
	// Two index scans, not one OR: the area's through the location
	// index, the removed grids' through the grid index (with an OR the
	// planner tested every row).
	rows, err := tx.Query(ctx, `WITH found AS (
			SELECT t.id FROM `+r.Table+` t WHERE `+in+only+`
			UNION SELECT t.id FROM `+r.Table+` t WHERE t.grid_id = ANY($2::bigint[])
		) SELECT id, label, old, new FROM (
			SELECT t.id, t.`+r.Label+` AS label, t.grid_id AS old, `+at+` AS new
			FROM found JOIN `+r.Table+` t ON t.id = found.id
		) m WHERE new IS DISTINCT FROM old ORDER BY id`, ch.Area, ch.Removed)
	if err != nil {
		return fmt.Errorf("%s follows the grids: %w", r.What, err)
	}
	var ids []int64
	var grids []*int64
	for rows.Next() {
		var id int64
		var label string
		var from, to *int64
		if err := rows.Scan(&id, &label, &from, &to); err != nil {
			rows.Close()
			return fmt.Errorf("%s follows the grids: %w", r.What, err)
		}
		ids, grids = append(ids, id), append(grids, to)
		ch.Moved(r.What, id, label, from, to)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s follows the grids: %w", r.What, err)
	}
	if len(ids) == 0 {
		return nil
	}
	// The moves by id: an UPDATE joined to the candidates hash-joined the
	// whole table.
	if _, err := tx.Exec(ctx, `UPDATE `+r.Table+` t SET grid_id = m.grid`+set+`
		FROM unnest($1::bigint[], $2::bigint[]) AS m(id, grid) WHERE t.id = m.id`, ids, grids); err != nil {
		return fmt.Errorf("%s follows the grids: %w", r.What, err)
	}
	return nil
}

// Participant follows a change in its transaction and reports what moved;
// an error vetoes the change (a *gridwatch.Error reaches the user).
type Participant func(ctx context.Context, tx pgx.Tx, ch *Change) error

// Participate adds p to every boundary change and import. Participants run
// in the order they were added.
func (s *Store) Participate(p Participant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.participants = append(s.participants, p)
}

// runParticipants lets every participant follow ch in tx.
func (s *Store) runParticipants(ctx context.Context, tx pgx.Tx, ch *Change) error {
	s.mu.Lock()
	ps := append([]Participant{}, s.participants...)
	s.mu.Unlock()
	for _, p := range ps {
		if err := p(ctx, tx, ch); err != nil {
			return err
		}
	}
	return nil
}

// handoversQuery finds what changed hands in a boundary change, from the
// old and new boundaries in grid_change: what a grid's old boundary shares
// with another's new one, what no new boundary takes (to whatever covers
// it now) and what no old boundary had (from whatever covered it). Slivers
// of noise under a square centimetre are left out.
const handoversQuery = `WITH c AS (SELECT grid_id, old_geom, new_geom FROM grid_change),
	u AS (SELECT ST_UnaryUnion(ST_Collect(old_geom)) AS old, ST_UnaryUnion(ST_Collect(new_geom)) AS new FROM c),
	h AS (
		SELECT a.grid_id AS "from", b.grid_id AS "to", ST_Intersection(a.old_geom, b.new_geom) AS area
		FROM c a JOIN c b ON a.grid_id <> b.grid_id AND a.old_geom && b.new_geom AND ST_Relate(a.old_geom, b.new_geom, '2********')
		UNION ALL SELECT c.grid_id, 0, CASE WHEN u.new IS NULL THEN c.old_geom ELSE ST_Difference(c.old_geom, u.new) END FROM c, u WHERE c.old_geom IS NOT NULL
		UNION ALL SELECT 0, c.grid_id, CASE WHEN u.old IS NULL THEN c.new_geom ELSE ST_Difference(c.new_geom, u.old) END FROM c, u WHERE c.new_geom IS NOT NULL
	)
	SELECT "from", "to", ST_ForcePolygonCCW(ST_Multi(ST_CollectionExtract(area, 3))) FROM h
	WHERE NOT ST_IsEmpty(area) AND ST_Area(area::geography) > 1e-4 ORDER BY 1, 2`

// handovers reads what changed hands into ch.Handovers.
func handovers(ctx context.Context, tx pgx.Tx, ch *Change) error {
	rows, err := tx.Query(ctx, handoversQuery)
	if err != nil {
		return fmt.Errorf("grid %s: handovers: %w", ch.Kind, err)
	}
	ch.Handovers, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Handover, error) {
		var h Handover
		err := r.Scan(&h.From, &h.To, &h.Area)
		return h, err
	})
	if err != nil {
		return fmt.Errorf("grid %s: handovers: %w", ch.Kind, err)
	}
	return nil
}
