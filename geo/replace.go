package geo

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/twpayne/go-geom"
)

// Kinds of change beside those of change.go: a rename, and a replacement
// that changed nothing.
const (
	ChangeRename = "rename"
	ChangeNone   = "none"
)

// Replace gives grid id a new boundary g and a new name in one change, so
// one new version holds both (OGC API Features' PUT and PATCH replace a
// whole feature). A nil g keeps the boundary and an empty name keeps the
// name: with a boundary it is a redraw, without one a rename, which runs
// through the same version check, history, audit, tile revision and
// grid.changed event as every change. When neither changes, only the
// version is checked and the report says so (kind none).
func (s *Store) Replace(ctx context.Context, id int64, g *geom.MultiPolygon, name string, opts ChangeOptions) (*ChangeReport, error) {
	name = strings.TrimSpace(name)
	if g == nil && name == "" {
		return s.unchanged(ctx, id, opts)
	}
	kind := ChangeRedraw
	if g == nil {
		kind = ChangeRename
	}
	// A nil geometry goes to SQL as NULL: the boundary is kept.
	var newGeom any
	if g != nil {
		newGeom = g
	}
	return s.change(ctx, kind, opts, []int64{id}, map[int64]int{id: opts.IfMatch}, func(ctx context.Context, tx pgx.Tx, ch *Change, rep *ChangeReport) error {
		if g != nil {
			if ok, err := s.checkNew(ctx, tx, rep, s.codeOf(ctx, tx, id), g); err != nil || !ok {
				return err
			}
		}
		// One UPDATE, so that the triggers open one version for both.
		_, err := tx.Exec(ctx, `UPDATE grids SET
				geom = CASE WHEN $2::geometry IS NULL THEN geom ELSE ST_ForcePolygonCCW(ST_Multi($2::geometry)) END,
				area_m2 = CASE WHEN $2::geometry IS NULL THEN area_m2 ELSE ST_Area($2::geography) END,
				name = coalesce(nullif($3, ''), name)
			WHERE id = $1`, id, newGeom, name)
		return err
	})
}

// unchanged checks that the caller edited grid id's current version and
// reports a change of nothing.
func (s *Store) unchanged(ctx context.Context, id int64, opts ChangeOptions) (*ChangeReport, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("grid %d: %w", id, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read only
	if err := s.checkVersions(ctx, tx, []int64{id}, map[int64]int{id: opts.IfMatch}); err != nil {
		return nil, err
	}
	var g GridChange
	if err := tx.QueryRow(ctx, `SELECT id, code, name, version, area_m2 FROM grids WHERE id = $1`, id).
		Scan(&g.ID, &g.Code, &g.Name, &g.VersionBefore, &g.AreaBeforeM2); err != nil {
		return nil, fmt.Errorf("grid %d: %w", id, err)
	}
	g.VersionAfter, g.AreaAfterM2 = g.VersionBefore, g.AreaBeforeM2
	return &ChangeReport{Kind: ChangeNone, DryRun: opts.DryRun, Committed: !opts.DryRun, Grids: []GridChange{g}, Findings: []Finding{}}, nil
}
