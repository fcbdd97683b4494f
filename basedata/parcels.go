package basedata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/internal/database"
)

// Land parcels (地): polygons with a use and a holder. A parcel is not
// placed in one grid: parcel_grids holds the finest-level grids it shares
// area with and the area in each, recomputed when it is imported and when
// boundaries around it change.

// Parcel is a parcel as the API shows it.
type Parcel struct {
	ID     int64   `json:"id"`
	Code   string  `json:"code"`
	Name   string  `json:"name"`
	Use    string  `json:"use"`
	Holder string  `json:"holder"`
	AreaM2 float64 `json:"area_m2"`
	// Geometry is a GeoJSON MultiPolygon.
	Geometry json.RawMessage `json:"geometry"`
	// Grids are the finest-level grids it overlaps, with the area in each.
	Grids     []ParcelGrid `json:"grids"`
	UpdatedAt time.Time    `json:"updated_at"`
}

// ParcelGrid is a grid a parcel overlaps and the area they share.
type ParcelGrid struct {
	ID     int64   `json:"id"`
	Code   string  `json:"code"`
	Name   string  `json:"name"`
	AreaM2 float64 `json:"area_m2"`
}

const parcelColumns = `p.id, p.code, p.name, p.use, p.holder, round(p.area_m2::numeric, 1)::float8, ST_AsGeoJSON(p.geom, 7), p.updated_at,
	(SELECT coalesce(json_agg(json_build_object('id', g.id, 'code', g.code, 'name', g.name, 'area_m2', round(pg.area_m2::numeric, 1)) ORDER BY g.code), '[]')
		FROM parcel_grids pg JOIN grids g ON g.id = pg.grid_id WHERE pg.parcel_id = p.id)`

func scanParcel(row pgx.Row) (Parcel, error) {
	var p Parcel
	var geom string
	err := row.Scan(&p.ID, &p.Code, &p.Name, &p.Use, &p.Holder, &p.AreaM2, &geom, &p.UpdatedAt, &p.Grids)
	p.Geometry = json.RawMessage(geom)
	if p.Grids == nil {
		p.Grids = []ParcelGrid{}
	}
	return p, err
}

// parcelScope is v's scope on parcels p: those overlapping a grid it sees.
func parcelScope(w *database.Where, v Viewer) {
	if v.Grids != nil {
		w.Add(`EXISTS (SELECT 1 FROM parcel_grids pg WHERE pg.parcel_id = p.id AND pg.grid_id IN (SELECT * FROM grid_subtree(?)))`, v.Grids)
	}
}

func parcelWhere(f Filter, v Viewer) database.Where {
	var w database.Where
	parcelScope(&w, v)
	if f.GridID != 0 {
		w.Add(`EXISTS (SELECT 1 FROM parcel_grids pg WHERE pg.parcel_id = p.id AND pg.grid_id IN (SELECT * FROM grid_subtree(?)))`, []int64{f.GridID})
	}
	f.BBox.Where(&w, "p.geom")
	if q := strings.TrimSpace(f.Q); q != "" {
		pat := likePattern(q)
		w.Add("(p.code ILIKE ? OR p.name ILIKE ? OR p.holder ILIKE ?)", pat, pat, pat)
	}
	w.Eq("p.use", f.Use)
	return w
}

// Parcels returns a page of the parcels v may see (those overlapping its
// grids), newest first, and the next cursor (0: none).
func (s *Service) Parcels(ctx context.Context, f Filter, v Viewer) ([]Parcel, int64, error) {
	list, next, err := database.QueryPage(ctx, s.pool, `SELECT `+parcelColumns+` FROM parcels p`, parcelWhere(f, v),
		database.Keyset{Key: "p.id", Desc: true, Cursor: f.Before, Limit: f.Limit},
		func(r pgx.CollectableRow) (Parcel, error) { return scanParcel(r) },
		func(p Parcel) int64 { return p.ID })
	if err != nil {
		return nil, 0, fmt.Errorf("list parcels: %w", err)
	}
	return list, next, nil
}

// Parcel returns parcel id with its grids, if v may see it.
func (s *Service) Parcel(ctx context.Context, id int64, v Viewer) (*Parcel, error) {
	var w database.Where
	w.Add("p.id = ?", id)
	parcelScope(&w, v)
	p, err := scanParcel(s.pool.QueryRow(ctx, `SELECT `+parcelColumns+` FROM parcels p`+w.SQL(), w.Args()...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gridwatch.Errorf(gridwatch.ENotFound, "parcel %d not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("parcel %d: %w", id, err)
	}
	return &p, nil
}

// MinParcelShareM2 is the least area a parcel must share with a grid to be
// listed in it: below it, the two only touch (and noise of the
// intersection).
const MinParcelShareM2 = 1e-4

// placeParcels writes parcel_grids for the parcels p meeting cond (SQL on
// p, its "?" taking args), leaving out the grids in removed: the
// finest-level grids each shares area with, and the area (geography, m²).
// The parcels' old rows are the caller's to delete.
func placeParcels(ctx context.Context, tx pgx.Tx, cond string, removed []int64, args ...any) error {
	var w database.Where
	w.Add(cond, args...)
	not := w.Arg(removed)
	_, err := tx.Exec(ctx, `INSERT INTO parcel_grids (parcel_id, grid_id, area_m2)
		SELECT p.id, g.id, a.m2 FROM parcels p
		JOIN grids g ON g.level = 'grid' AND g.geom && p.geom AND NOT g.id = ANY(`+not+`::bigint[]) AND ST_Relate(g.geom, p.geom, '2********')
		CROSS JOIN LATERAL (SELECT ST_Area(ST_Intersection(g.geom, p.geom)::geography) AS m2) a`+w.SQL()+`
		AND a.m2 > `+fmt.Sprint(MinParcelShareM2), w.Args()...)
	return err
}
