package geo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twpayne/go-geom"

	"gridwatch"
)

// Version is one version of a grid: its boundary from ValidFrom until
// ValidTo (nil: current), and the change that opened it.
type Version struct {
	GridID    int64              `json:"grid_id"`
	Version   int                `json:"version"`
	Code      string             `json:"code"`
	Name      string             `json:"name"`
	Level     Level              `json:"level"`
	ParentID  *int64             `json:"parent_id"`
	AreaM2    float64            `json:"area_m2"`
	ValidFrom time.Time          `json:"valid_from"`
	ValidTo   *time.Time         `json:"valid_to"`
	Change    string             `json:"change"`
	ChangedBy string             `json:"changed_by"`
	EndedBy   *string            `json:"ended_by,omitempty"`
	EndChange *string            `json:"end_change,omitempty"`
	Geometry  *geom.MultiPolygon `json:"-"`
	ETag      string             `json:"etag,omitempty"`
	IsCurrent bool               `json:"current"`
}

const versionColumns = `grid_id, version, code, name, level, parent_id, area_m2, valid_from, valid_to, change, changed_by, ended_by, end_change`

func scanVersion(row pgx.Row, v *Version, extra ...any) error {
	err := row.Scan(append([]any{&v.GridID, &v.Version, &v.Code, &v.Name, &v.Level, &v.ParentID, &v.AreaM2, &v.ValidFrom, &v.ValidTo,
		&v.Change, &v.ChangedBy, &v.EndedBy, &v.EndChange}, extra...)...)
	v.IsCurrent = v.ValidTo == nil
	if v.IsCurrent {
		v.ETag = ETag(v.GridID, v.Version)
	}
	return err
}

// Versions lists grid id's versions, the newest first (with boundaries
// when withGeometry). A removed grid still has its history.
func (s *Store) Versions(ctx context.Context, id int64, withGeometry bool) ([]Version, error) {
	cols := versionColumns
	if withGeometry {
		cols += ", geom"
	}
	rows, err := s.pool.Query(ctx, `SELECT `+cols+` FROM grid_versions WHERE grid_id = $1 ORDER BY version DESC`, id)
	if err != nil {
		return nil, fmt.Errorf("grid %d versions: %w", id, err)
	}
	vs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Version, error) {
		var v Version
		var extra []any
		if withGeometry {
			extra = append(extra, &v.Geometry)
		}
		err := scanVersion(r, &v, extra...)
		return v, err
	})
	if err != nil {
		return nil, fmt.Errorf("grid %d versions: %w", id, err)
	}
	if len(vs) == 0 {
		return nil, gridwatch.Errorf(gridwatch.ENotFound, "grid %d not found", id)
	}
	return vs, nil
}

// VersionAt returns grid id as it was at time at, with its boundary.
func (s *Store) VersionAt(ctx context.Context, id int64, at time.Time) (*Version, error) {
	var v Version
	err := scanVersion(s.pool.QueryRow(ctx, `SELECT `+versionColumns+`, geom FROM grid_versions
		WHERE grid_id = $1 AND valid_from <= $2 AND (valid_to IS NULL OR valid_to > $2)`, id, at), &v, &v.Geometry)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gridwatch.Errorf(gridwatch.ENotFound, "grid %d did not exist at %s", id, at.Format(time.RFC3339))
	}
	if err != nil {
		return nil, fmt.Errorf("grid %d at %s: %w", id, at, err)
	}
	return &v, nil
}

// Version returns version n of grid id, with its boundary.
func (s *Store) Version(ctx context.Context, id int64, n int) (*Version, error) {
	var v Version
	err := scanVersion(s.pool.QueryRow(ctx, `SELECT `+versionColumns+`, geom FROM grid_versions WHERE grid_id = $1 AND version = $2`, id, n), &v, &v.Geometry)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gridwatch.Errorf(gridwatch.ENotFound, "grid %d has no version %d", id, n)
	}
	if err != nil {
		return nil, fmt.Errorf("grid %d version %d: %w", id, n, err)
	}
	return &v, nil
}
