package basedata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"gridwatch"
	"gridwatch/geo"
	"gridwatch/internal/database"
)

// Buildings (房): a point and, when known, a footprint, placed in the grid
// covering the point or, for a footprint, in the finest grid holding most
// of its area (buildingGrid).

// Filter selects base data for a list. Each list reads the fields that
// apply to it.
type Filter struct {
	// GridID keeps what lies in this grid or its descendants.
	GridID int64
	// BBox keeps what lies in the box.
	BBox *geo.BBox
	// Q keeps what has it in its code, name or address.
	Q string
	// Class keeps components of a class (a major class takes its
	// subclasses); State components in a state; Use buildings or parcels
	// of a use.
	Class, State, Use string
	// Care, HouseholdID, BuildingID and IDNumber narrow households and
	// residents.
	Care        []string
	HouseholdID int64
	BuildingID  int64
	IDNumber    string
	// Before is the cursor of the next page (lists run newest first);
	// Limit the page size.
	Before int64
	Limit  int
}

// GridRef names the grid a thing lies in.
type GridRef struct {
	ID   int64  `json:"id"`
	Code string `json:"code"`
	Name string `json:"name"`
}

// Building is a building as the API shows it.
type Building struct {
	ID      int64   `json:"id"`
	Code    string  `json:"code"`
	Name    string  `json:"name"`
	Address string  `json:"address"`
	Floors  *int    `json:"floors"`
	Units   *int    `json:"units"`
	Use     string  `json:"use"`
	Lon     float64 `json:"lon"`
	Lat     float64 `json:"lat"`
	// Footprint is a GeoJSON MultiPolygon, null when only the point is known.
	Footprint json.RawMessage `json:"footprint"`
	Grid      *GridRef        `json:"grid"`
	// Households is how many households live in it.
	Households int64     `json:"households"`
	UpdatedAt  time.Time `json:"updated_at"`
	// Box is the building's extent (its footprint's, or its point), for
	// finding what was reported at it.
	Box geo.BBox `json:"-"`
}

// BuildingDetail is a building with its households.
type BuildingDetail struct {
	Building
	HouseholdList []Household `json:"household_list"`
}

// Around returns b's box grown by m metres on every side.
func (b *Building) Around(m float64) geo.BBox {
	dLat := m / 111_320
	dLon := m / (111_320 * math.Max(math.Cos((b.Box.MinLat+b.Box.MaxLat)/2*math.Pi/180), 0.01))
	return geo.BBox{MinLon: b.Box.MinLon - dLon, MinLat: b.Box.MinLat - dLat, MaxLon: b.Box.MaxLon + dLon, MaxLat: b.Box.MaxLat + dLat}
}

const buildingColumns = `b.id, b.code, b.name, b.address, b.floors, b.units, b.use, ST_X(b.location), ST_Y(b.location),
	ST_AsGeoJSON(b.footprint, 7), g.id, g.code, g.name,
	(SELECT count(*) FROM households h WHERE h.building_id = b.id), b.updated_at,
	ST_XMin(e.box), ST_YMin(e.box), ST_XMax(e.box), ST_YMax(e.box)`

const buildingFrom = ` FROM buildings b LEFT JOIN grids g ON g.id = b.grid_id
	CROSS JOIN LATERAL (SELECT coalesce(b.footprint::box2d, b.location::box2d) AS box) e`

func scanBuilding(row pgx.Row) (Building, error) {
	var (
		b             Building
		floors, units *int32
		footprint     *string
		gid           *int64
		gcode, gname  *string
	)
	err := row.Scan(&b.ID, &b.Code, &b.Name, &b.Address, &floors, &units, &b.Use, &b.Lon, &b.Lat,
		&footprint, &gid, &gcode, &gname, &b.Households, &b.UpdatedAt,
		&b.Box.MinLon, &b.Box.MinLat, &b.Box.MaxLon, &b.Box.MaxLat)
	if err != nil {
		return b, err
	}
	b.Floors, b.Units = intPtr(floors), intPtr(units)
	if footprint != nil {
		b.Footprint = json.RawMessage(*footprint)
	} else {
		b.Footprint = json.RawMessage("null")
	}
	b.Grid = gridRef(gid, gcode, gname)
	return b, nil
}

func intPtr(v *int32) *int {
	if v == nil {
		return nil
	}
	n := int(*v)
	return &n
}

func gridRef(id *int64, code, name *string) *GridRef {
	if id == nil {
		return nil
	}
	return &GridRef{ID: *id, Code: *code, Name: *name}
}

// likePattern is q as an ILIKE pattern matching it anywhere, its own % and
// _ taken literally.
func likePattern(q string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(q) + "%"
}

// buildingWhere is the conditions of f and v on buildings b.
func buildingWhere(f Filter, v Viewer) database.Where {
	var w database.Where
	v.where(&w, "b")
	if f.GridID != 0 {
		w.Add("b.grid_id IN (SELECT * FROM grid_subtree(?))", []int64{f.GridID})
	}
	f.BBox.Where(&w, "b.location")
	if q := strings.TrimSpace(f.Q); q != "" {
		p := likePattern(q)
		w.Add("(b.code ILIKE ? OR b.name ILIKE ? OR b.address ILIKE ?)", p, p, p)
	}
	w.Eq("b.use", f.Use)
	return w
}

// Buildings returns a page of the buildings v may see, newest first, and
// the next cursor (0: none).
func (s *Service) Buildings(ctx context.Context, f Filter, v Viewer) ([]Building, int64, error) {
	list, next, err := database.QueryPage(ctx, s.pool, `SELECT `+buildingColumns+buildingFrom, buildingWhere(f, v),
		database.Keyset{Key: "b.id", Desc: true, Cursor: f.Before, Limit: f.Limit},
		func(r pgx.CollectableRow) (Building, error) { return scanBuilding(r) },
		func(b Building) int64 { return b.ID })
	if err != nil {
		return nil, 0, fmt.Errorf("list buildings: %w", err)
	}
	return list, next, nil
}

// Building returns building id with its households, if v may see it.
func (s *Service) Building(ctx context.Context, id int64, v Viewer) (*BuildingDetail, error) {
	var w database.Where
	w.Add("b.id = ?", id)
	v.where(&w, "b")
	b, err := scanBuilding(s.pool.QueryRow(ctx, `SELECT `+buildingColumns+buildingFrom+w.SQL(), w.Args()...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, gridwatch.Errorf(gridwatch.ENotFound, "building %d not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("building %d: %w", id, err)
	}
	d := &BuildingDetail{Building: b}
	if d.HouseholdList, _, err = s.Households(ctx, Filter{BuildingID: id, Limit: maxBuildingHouseholds}, v); err != nil {
		return nil, err
	}
	return d, nil
}

// maxBuildingHouseholds caps the households a building's page lists (a
// tower block's); the list of households, filtered by building, has them
// all.
const maxBuildingHouseholds = 1000

// buildingGrid is SQL for the grid of a building row t (its location and
// footprint): for a point, GridAt it; for a footprint, the finest grid
// sharing area with it, the one holding most of its area, the lowest code
// on a tie, and GridAt its point when no grid shares area with it. Never
// one of removed (SQL of a bigint[], "" for none).
func buildingGrid(t, removed string) string {
	not := ""
	if removed != "" {
		not = " AND NOT g.id = ANY(" + removed + "::bigint[])"
	}
	at := geo.GridAt(t+".location", removed)
	// Planar area decides between grids: within one footprint the
	// proportions are those of the ground.
	return `CASE WHEN ` + t + `.footprint IS NULL THEN ` + at + ` ELSE coalesce(
		(SELECT g.id FROM grids g WHERE g.geom && ` + t + `.footprint AND ST_Relate(g.geom, ` + t + `.footprint, '2********')` + not + `
		 ORDER BY g.level_rank DESC, ST_Area(ST_Intersection(g.geom, ` + t + `.footprint)) DESC, g.code LIMIT 1), ` + at + `) END`
}
