package geo

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"

	"gridwatch"
	"gridwatch/internal/database"
)

// Mapbox Vector Tiles (MVT) of the grids, drawn by PostGIS: ST_AsMVTGeom
// projects, clips and snaps each geometry to the tile's integer grid and
// ST_AsMVT encodes the layer. Tiles are addressed in the XYZ scheme of web
// maps (EPSG:3857, y counted from the north).

// MaxTileZoom is the deepest zoom a tile may be asked for.
const MaxTileZoom = 22

// TileExtent is the size of a tile's integer grid, and TileBuffer the
// margin (in the same units) drawn around it so lines and labels cross tile
// borders without seams.
const (
	TileExtent = 4096
	TileBuffer = 64
)

// GridLayer is the name of the grids' layer inside their tiles.
const GridLayer = "grids"

// Tile is one XYZ tile.
type Tile struct{ Z, X, Y int }

// String is the tile as z/x/y.
func (t Tile) String() string { return fmt.Sprintf("%d/%d/%d", t.Z, t.X, t.Y) }

// tileError is the error for a bad tile coordinate, naming it and its value.
func tileError(name, value, why string) error {
	return gridwatch.Errorf(gridwatch.EInvalid, "tile %s=%s: %s", name, value, why).
		WithDetails(map[string]any{"param": name, "value": value})
}

// Check reports a tile outside the XYZ pyramid: z from 0 to MaxTileZoom,
// x and y from 0 to 2^z−1.
func (t Tile) Check() error {
	if t.Z < 0 || t.Z > MaxTileZoom {
		return tileError("z", strconv.Itoa(t.Z), fmt.Sprintf("want a zoom from 0 to %d", MaxTileZoom))
	}
	n := 1 << t.Z
	if t.X < 0 || t.X >= n {
		return tileError("x", strconv.Itoa(t.X), fmt.Sprintf("want a column from 0 to %d at zoom %d", n-1, t.Z))
	}
	if t.Y < 0 || t.Y >= n {
		return tileError("y", strconv.Itoa(t.Y), fmt.Sprintf("want a row from 0 to %d at zoom %d", n-1, t.Z))
	}
	return nil
}

// ParseTile reads a tile's z, x and y from the text of a URL and checks it.
func ParseTile(z, x, y string) (Tile, error) {
	var t Tile
	for _, p := range []struct {
		name, text string
		dst        *int
	}{{"z", z, &t.Z}, {"x", x, &t.X}, {"y", y, &t.Y}} {
		v, err := strconv.Atoi(p.text)
		if err != nil || len(p.text) > 9 {
			return Tile{}, tileError(p.name, strconv.Quote(p.text), "not an integer")
		}
		*p.dst = v
	}
	return t, t.Check()
}

// Bound is the tile's extent in longitude and latitude (WGS-84).
func (t Tile) Bound() BBox {
	n := math.Exp2(float64(t.Z))
	lon := func(x int) float64 { return float64(x)/n*360 - 180 }
	lat := func(y int) float64 { return math.Atan(math.Sinh(math.Pi*(1-2*float64(y)/n))) * 180 / math.Pi }
	return BBox{MinLon: lon(t.X), MinLat: lat(t.Y + 1), MaxLon: lon(t.X + 1), MaxLat: lat(t.Y)}
}

// TileAt returns the tile at zoom z holding the point lon, lat.
func TileAt(z int, lon, lat float64) Tile {
	n := math.Exp2(float64(z))
	x := int(math.Floor((lon + 180) / 360 * n))
	r := lat * math.Pi / 180
	y := int(math.Floor((1 - math.Log(math.Tan(r)+1/math.Cos(r))/math.Pi) / 2 * n))
	clamp := func(v int) int { return max(0, min(int(n)-1, v)) }
	return Tile{Z: z, X: clamp(x), Y: clamp(y)}
}

// The tile queries take z, x and y as parameters (after the scope's, which
// come first). The envelope is found in 3857, where tiles are square, and
// the rows are chosen with && against it transformed to 4326, where the
// geometries and their GiST index are: Web Mercator maps a lon/lat
// rectangle to a rectangle, so the transformed envelope is exact, and the
// margin takes in what falls in the tile's buffer.
const (
	tileEnvelopeSQL = `ST_TileEnvelope(%[1]s, %[2]s, %[3]s)`
	tileFilterSQL   = `ST_Transform(ST_TileEnvelope(%[1]s, %[2]s, %[3]s, margin => %[4]s), 4326)`
)

// TileEnvelopeSQL returns the SQL of the envelope (in 3857) of the tile
// whose z, x and y are the parameters $first to $first+2, and of the box
// (in 4326, with the buffer) to choose its rows with. The incident and
// camera tiles use it too.
func TileEnvelopeSQL(first int) (envelope, filter string) {
	p := func(i int) string { return "$" + strconv.Itoa(first+i) + "::int" }
	margin := strconv.FormatFloat(float64(TileBuffer)/TileExtent, 'f', -1, 64)
	return fmt.Sprintf(tileEnvelopeSQL, p(0), p(1), p(2)), fmt.Sprintf(tileFilterSQL, p(0), p(1), p(2), margin)
}

// QueryPointTile draws tile t's point layer named layer: one feature per
// row of from (a FROM list, e.g. "cameras c") that matches w and whose
// point column at lies in the tile, with the properties cols (which must
// include the id, the feature id). It is the one query of the incident and
// camera layers; w's arguments come first, so cols may use them.
func QueryPointTile(ctx context.Context, q database.Querier, t Tile, layer, cols, at, from string, w database.Where) ([]byte, error) {
	w.Clip()
	env, filter := TileEnvelopeSQL(len(w.Args()) + 1)
	w.Arg(t.Z)
	w.Arg(t.X)
	w.Arg(t.Y)
	w.Add(at + " && " + filter)
	sql := `SELECT ST_AsMVT(m, '` + layer + `', ` + strconv.Itoa(TileExtent) + `, 'geom', 'id')
		FROM (SELECT ` + cols + `,
				ST_AsMVTGeom(ST_Transform(` + at + `, 3857), ` + env + `, ` + strconv.Itoa(TileExtent) + `, ` + strconv.Itoa(TileBuffer) + `, true) AS geom
			FROM ` + from + w.SQL() + `) m`
	var tile []byte
	err := q.QueryRow(ctx, sql, w.Args()...).Scan(&tile)
	return tile, err
}

// labelPixels is the side, in tile units (64 are 8 pixels of a 512-pixel
// tile), of the square a grid's area must reach for the grid to carry its
// code and name: smaller, it is too small to label or read at that zoom. Unique strings are the dearest values
// ST_AsMVT encodes (on the whole 10,000-grid city, code and name cost about
// as much as all the geometry work), so a zoomed-out tile sends them only
// for the grids big enough to show them; every feature keeps its id, level
// and parent_id, and so can still be told apart, styled and clicked.
const labelPixels = 64

// labelArea is the area in m² of a labelPixels square at the middle of
// tile t: a tile unit is the tile's width on the ground (the Earth's
// circumference shrunk by the cosine of the latitude) over TileExtent.
func labelArea(t Tile) float64 {
	b := t.Bound()
	lat := (b.MinLat + b.MaxLat) / 2 * math.Pi / 180
	side := 40075016.686 * math.Cos(lat) / math.Exp2(float64(t.Z)) / TileExtent * labelPixels
	return side * side
}

// gridTileQuery is the grid tile query with the scope's condition (whose
// parameters come before the tile's) in where; the tile's z, x and y are
// the parameters from first on, its labelArea the next.
//
// Measured on the 10,000-grid city (BenchmarkGridTile): simplifying with
// ST_Simplify before ST_AsMVTGeom made the tile slower (the grids have
// few vertices; ST_AsMVTGeom's snapping already drops what a pixel cannot
// show), and a parallel plan did not pay on two cores, so neither is used.
func gridTileQuery(where string, first int) string {
	env, filter := TileEnvelopeSQL(first)
	cond := "g.geom && " + filter
	if where != "" {
		cond = strings.TrimPrefix(where, " WHERE ") + " AND " + cond
	}
	// The stored area decides, not the geometry: no more work per grid
	// than reading a column.
	big := fmt.Sprintf("g.area_m2 >= $%d::float8", first+3)
	return `SELECT ST_AsMVT(t, '` + GridLayer + `', ` + strconv.Itoa(TileExtent) + `, 'geom', 'id')
		FROM (SELECT g.id, g.level, g.parent_id,
				CASE WHEN ` + big + ` THEN g.code END AS code, CASE WHEN ` + big + ` THEN g.name END AS name,
				ST_AsMVTGeom(ST_Transform(g.geom, 3857), ` + env + `, ` + strconv.Itoa(TileExtent) + `, ` + strconv.Itoa(TileBuffer) + `, true) AS geom
			FROM grids g WHERE ` + cond + `) t`
}

// GridTileFor returns tile t as a caller with scope sees it (nil: every
// grid; else these grids and their descendants) and the grid revision it
// was drawn at, read in the same snapshot.
func (s *Store) GridTileFor(ctx context.Context, t Tile, scope []int64) ([]byte, int64, error) {
	if err := t.Check(); err != nil {
		return nil, 0, err
	}
	key := tileKey{scopeString(scope), t}
	rev, err := s.Revision(ctx)
	if err != nil {
		return nil, 0, err
	}
	if tile, ok := s.tiles.get(rev, key); ok {
		return tile, rev, nil
	}
	tile, rev, err := s.drawGridTile(ctx, t, scope)
	if err != nil {
		return nil, 0, err
	}
	s.tiles.put(rev, key, tile)
	return tile, rev, nil
}

// drawGridTile has PostGIS draw tile t, and says at which revision.
func (s *Store) drawGridTile(ctx context.Context, t Tile, scope []int64) ([]byte, int64, error) {
	w := Filter{Scope: scope}.where()
	q := `SELECT (SELECT revision FROM grid_revision), (` + gridTileQuery(w.SQL(), len(w.Args())+1) + `)`
	var tile []byte
	var rev int64
	if err := s.pool.QueryRow(ctx, q, append(w.Args(), t.Z, t.X, t.Y, labelArea(t))...).Scan(&rev, &tile); err != nil {
		return nil, 0, fmt.Errorf("grid tile %s: %w", t, err)
	}
	if tile == nil {
		tile = []byte{}
	}
	return tile, rev, nil
}

// Bounds returns the box around the grids scope sees (nil: all) and
// whether there is any.
func (s *Store) Bounds(ctx context.Context, scope []int64) (BBox, bool, error) {
	w := Filter{Scope: scope}.where()
	var minLon, minLat, maxLon, maxLat *float64
	err := s.pool.QueryRow(ctx, `SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)
		FROM (SELECT ST_Extent(g.geom) AS e FROM grids g`+w.SQL()+`) x`, w.Args()...).Scan(&minLon, &minLat, &maxLon, &maxLat)
	if err != nil {
		return BBox{}, false, fmt.Errorf("grid extent: %w", err)
	}
	if minLon == nil {
		return BBox{}, false, nil
	}
	return BBox{MinLon: *minLon, MinLat: *minLat, MaxLon: *maxLon, MaxLat: *maxLat}, true, nil
}
