// Package geo owns the city's grids: their model and validation, the PostGIS
// store, point-in-polygon lookup (in PostGIS and in process), the Chinese
// coordinate systems (GCJ-02, BD-09) and GeoJSON in and out.
//
// Boundary changes (change.go the engine, change_ops.go the redraw, edge
// move, split, merge and delete, change_report.go what they report) and
// imports (import.go) run in one transaction each. Other packages follow
// them as participants (participant.go): geo tells each, in typed values,
// the area that changed hands and which grid handed it to which; the
// participant moves its own rows in the same transaction, with the one
// placement rule (GridAt) and the one "move to the grid now covering it"
// routine (Change.Relocate), and may veto the change.
//
// Coordinates are WGS-84 (EPSG:4326) in lon/lat order, as in RFC 7946.
// A point on a shared edge belongs to the grid with the lowest code.
package geo

import (
	"time"

	"github.com/twpayne/go-geom"
)

// Level is a grid's place in the hierarchy district → street → community → grid.
type Level string

// The four levels, from the widest to the most specific.
const (
	LevelDistrict  Level = "district"
	LevelStreet    Level = "street"
	LevelCommunity Level = "community"
	LevelGrid      Level = "grid"
)

// Rank orders levels: district 1 … grid 4; 0 for an unknown level.
func (l Level) Rank() int {
	switch l {
	case LevelDistrict:
		return 1
	case LevelStreet:
		return 2
	case LevelCommunity:
		return 3
	case LevelGrid:
		return 4
	}
	return 0
}

// Valid reports whether l is one of the four levels.
func (l Level) Valid() bool { return l.Rank() > 0 }

// Grid is one unit of the hierarchy with its current boundary.
type Grid struct {
	ID         int64              `json:"id"`
	Code       string             `json:"code"`
	Name       string             `json:"name"`
	Level      Level              `json:"level"`
	ParentID   *int64             `json:"parent_id"`
	ParentCode string             `json:"parent_code,omitempty"`
	Geometry   *geom.MultiPolygon `json:"-"`
	Properties map[string]any     `json:"properties"`
	AreaM2     float64            `json:"area_m2"`
	Version    int                `json:"version"`
	CreatedAt  time.Time          `json:"created_at"`
	UpdatedAt  time.Time          `json:"updated_at"`
}

// Ref is the short form of a grid used in lists and lookups.
type Ref struct {
	ID    int64  `json:"id"`
	Code  string `json:"code"`
	Name  string `json:"name"`
	Level Level  `json:"level"`
}
