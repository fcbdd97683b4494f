package geo

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
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
	// Buildings and Components (base data) change grid.
	Buildings  MoveList `json:"buildings"`
	Components MoveList `json:"components"`
	// Revision is the grid (and tile) version after the commit.
	Revision int64 `json:"revision,omitempty"`
}

// Move lists.
const (
	MovedCamera    = "camera"
	MovedIncident  = "incident"
	FlaggedCase    = "flagged"
	MovedBuilding  = "building"
	MovedComponent = "component"
)

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

func (rep *ChangeReport) add(f Finding) {
	rep.Findings = append(rep.Findings, f)
	if f.Severity == SeverityError {
		rep.Errors++
	} else {
		rep.Warnings++
	}
}

func firstError(fs []Finding) int {
	for i, f := range fs {
		if f.Severity == SeverityError {
			return i
		}
	}
	return 0
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
	for what, list := range map[string]*MoveList{MovedCamera: &rep.Cameras, MovedIncident: &rep.Incidents, FlaggedCase: &rep.Flagged,
		MovedBuilding: &rep.Buildings, MovedComponent: &rep.Components} {
		ms := ch.moves[what]
		list.Count, list.Items = len(ms), make([]Move, 0, min(len(ms), MaxListedMoves))
		for _, m := range ms[:min(len(ms), MaxListedMoves)] {
			list.Items = append(list.Items, Move{ID: m.id, Label: m.label, From: ref(m.from), To: ref(m.to)})
		}
	}
	return nil
}
