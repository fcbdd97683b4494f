package geo

import (
	"context"
	"math"
	"slices"
	"testing"

	"gridwatch"
	"gridwatch/internal/testtool"
)

func TestTileCheck(t *testing.T) {
	for _, tt := range []struct {
		z, x, y      string
		param, value string
	}{
		{"23", "0", "0", "z", "23"},
		{"-1", "0", "0", "z", "-1"},
		{"3", "8", "0", "x", "8"},
		{"3", "-1", "0", "x", "-1"},
		{"3", "0", "8", "y", "8"},
		{"a", "0", "0", "z", `"a"`},
		{"3", "1.5", "0", "x", `"1.5"`},
		{"3", "0", "", "y", `""`},
		{"3", "0", "99999999999999999999", "y", `"99999999999999999999"`},
	} {
		_, err := ParseTile(tt.z, tt.x, tt.y)
		d := gridwatch.ErrorDetails(err)
		if gridwatch.ErrorCode(err) != gridwatch.EInvalid || d["param"] != tt.param || d["value"] != tt.value {
			t.Errorf("ParseTile(%q, %q, %q) = %v %v; want invalid naming %s=%s", tt.z, tt.x, tt.y, err, d, tt.param, tt.value)
		}
	}
	for _, ok := range []Tile{{0, 0, 0}, {22, 1<<22 - 1, 1<<22 - 1}, {13, 6683, 3250}} {
		if err := ok.Check(); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
}

func TestTileAtAndBound(t *testing.T) {
	for _, p := range [][2]float64{{113.65, 34.75}, {-0.1, 51.5}, {179.9, -85}, {-180, 85}} {
		for _, z := range []int{0, 5, 13, 22} {
			tl := TileAt(z, p[0], p[1])
			if err := tl.Check(); err != nil {
				t.Fatalf("TileAt(%d, %v) = %v: %v", z, p, tl, err)
			}
			b := tl.Bound()
			if p[0] < b.MinLon || p[0] > b.MaxLon || p[1] < b.MinLat-1e-9 || p[1] > b.MaxLat+1e-9 {
				t.Errorf("TileAt(%d, %v) = %v, whose bound %+v does not hold the point", z, p, tl, b)
			}
		}
	}
	if b := (Tile{0, 0, 0}).Bound(); math.Abs(b.MaxLat-85.0511287798) > 1e-9 || b.MinLon != -180 {
		t.Errorf("world tile bound %+v", b)
	}
}

// tilePoint projects lon, lat into tile t's integer grid (y down).
func tilePoint(t Tile, lon, lat float64) (float64, float64) {
	n := math.Exp2(float64(t.Z))
	r := lat * math.Pi / 180
	x := ((lon+180)/360*n - float64(t.X)) * TileExtent
	y := ((1-math.Log(math.Tan(r)+1/math.Cos(r))/math.Pi)/2*n - float64(t.Y)) * TileExtent
	return x, y
}

// mvtInt is an integer property of a tile, whichever of the integer types
// it was encoded as; -1 when it is none of them.
func mvtInt(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case uint64:
		return int64(n)
	}
	return -1
}

// inRing reports whether x, y lies inside ring (even-odd rule).
func inRing(ring [][2]int64, x, y float64) bool {
	in := false
	for i, j := 0, len(ring)-1; i < len(ring); j, i = i, i+1 {
		xi, yi, xj, yj := float64(ring[i][0]), float64(ring[i][1]), float64(ring[j][0]), float64(ring[j][1])
		if (yi > y) != (yj > y) && x < (xj-xi)*(y-yi)/(yj-yi)+xi {
			in = !in
		}
	}
	return in
}

func decodeGrids(t *testing.T, b []byte) map[uint64]testtool.MVTFeature {
	t.Helper()
	layers, err := testtool.DecodeMVT(b)
	if err != nil {
		t.Fatalf("decode tile: %v", err)
	}
	if len(layers) != 1 || layers[GridLayer] == nil || layers[GridLayer].Extent != TileExtent {
		t.Fatalf("layers %v: want one, %q, extent %d", layers, GridLayer, TileExtent)
	}
	out := map[uint64]testtool.MVTFeature{}
	for _, f := range layers[GridLayer].Features {
		if !f.HasID {
			t.Fatalf("feature without an id: %+v", f)
		}
		if _, dup := out[f.ID]; dup {
			t.Fatalf("feature %d twice", f.ID)
		}
		out[f.ID] = f
	}
	return out
}

func TestGridTile(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, mustParse(t, DemoCity()), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	all, _, err := s.List(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	box, found, err := s.Bounds(ctx, nil)
	if err != nil || !found {
		t.Fatalf("bounds: %v %v", found, err)
	}
	// The deepest zoom at which one tile holds the whole city.
	z := MaxTileZoom
	for ; z > 0 && TileAt(z, box.MinLon, box.MinLat) != TileAt(z, box.MaxLon, box.MaxLat); z-- {
	}
	whole := TileAt(z, box.MinLon, box.MinLat)
	tile, err := s.GridTile(ctx, whole.Z, whole.X, whole.Y)
	if err != nil {
		t.Fatal(err)
	}
	features := decodeGrids(t, tile)
	if len(features) != len(all) || len(all) != 76 {
		t.Fatalf("tile %v holding the city has %d features, want all %d grids", whole, len(features), len(all))
	}
	for _, g := range all {
		f, ok := features[uint64(g.ID)]
		if !ok {
			t.Fatalf("grid %d (%s) is not in the tile", g.ID, g.Code)
		}
		if f.Type != 3 || f.Properties["level"] != string(g.Level) {
			t.Errorf("grid %s: type %d, properties %v", g.Code, f.Type, f.Properties)
		}
		if (g.ParentID == nil) != (f.Properties["parent_id"] == nil) || (g.ParentID != nil && mvtInt(f.Properties["parent_id"]) != *g.ParentID) {
			t.Errorf("grid %s: parent_id %v, want %v", g.Code, f.Properties["parent_id"], g.ParentID)
		}
		if _, ok := f.Properties["id"]; ok {
			t.Errorf("grid %s: the id is a property too", g.Code)
		}
		// Code and name come with every area wide enough to show them;
		// the district is.
		if g.Level == LevelDistrict && (f.Properties["code"] != g.Code || f.Properties["name"] != g.Name) {
			t.Errorf("district %s: properties %v", g.Code, f.Properties)
		}
	}

	// A grid at street level: every grid touching the tile is in it, with
	// its code and name, and drawn where it is.
	grids, _, err := s.List(ctx, Filter{Level: LevelGrid, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	g, err := s.Get(ctx, grids[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	flat := g.Geometry.Polygon(0).LinearRing(0).FlatCoords()
	var lon, lat float64
	for i := 0; i+2 < len(flat); i += 2 { // the closing vertex left out
		lon, lat = lon+flat[i], lat+flat[i+1]
	}
	lon, lat = lon/float64(len(flat)/2-1), lat/float64(len(flat)/2-1)
	street := TileAt(16, lon, lat)
	tile, err = s.GridTile(ctx, street.Z, street.X, street.Y)
	if err != nil {
		t.Fatal(err)
	}
	features = decodeGrids(t, tile)
	f, ok := features[uint64(g.ID)]
	if !ok || f.Properties["code"] != g.Code || f.Properties["name"] != g.Name {
		t.Fatalf("tile %v: grid %d %s missing or without code and name: %+v", street, g.ID, g.Code, f)
	}
	px, py := tilePoint(street, lon, lat)
	if !inRing(f.Parts[0], px, py) {
		t.Errorf("the grid's inner point %v,%v (tile %.0f,%.0f) is outside its tile polygon %v", lon, lat, px, py, f.Parts[0])
	}
	inner := street.Bound()
	touching, _, err := s.List(ctx, Filter{BBox: &inner})
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range touching {
		if _, ok := features[uint64(tg.ID)]; !ok {
			t.Errorf("grid %s touches tile %v but is not in it", tg.Code, street)
		}
	}
	if len(features) < len(touching) || len(features) > len(touching)+8 {
		t.Errorf("tile %v: %d features, %d grids touch it", street, len(features), len(touching))
	}

	// Nothing there: an empty tile.
	if tile, err := s.GridTile(ctx, 5, 0, 0); err != nil || len(tile) != 0 {
		t.Errorf("tile 5/0/0: %d bytes, %v; want none", len(tile), err)
	}
	if _, err := s.GridTile(ctx, 3, 9, 0); gridwatch.ErrorCode(err) != gridwatch.EInvalid {
		t.Errorf("tile 3/9/0: %v, want invalid", err)
	}

	// A scope: the community of the grid and what is below it.
	community := *g.ParentID
	tile, rev, err := s.GridTileFor(ctx, whole, []int64{community})
	if err != nil {
		t.Fatal(err)
	}
	var want []uint64
	for _, a := range all {
		if a.ID == community || (a.ParentID != nil && *a.ParentID == community) {
			want = append(want, uint64(a.ID))
		}
	}
	var got []uint64
	for id := range decodeGrids(t, tile) {
		got = append(got, id)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) || len(want) < 2 {
		t.Errorf("scoped to community %d: features %v, want %v", community, got, want)
	}

	// The revision a tile is drawn at moves with every change.
	if err := s.Delete(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	tile, rev2, err := s.GridTileFor(ctx, whole, nil)
	if err != nil {
		t.Fatal(err)
	}
	if now, _ := s.Revision(ctx); rev2 <= rev || rev2 != now {
		t.Errorf("revision after a delete: tile %d, store %d; before %d", rev2, now, rev)
	}
	if _, ok := decodeGrids(t, tile)[uint64(g.ID)]; ok {
		t.Errorf("deleted grid %d is still in the tile", g.ID)
	}
}

// TestGridTilesKept: a tile is drawn once per revision and kept; a change
// to the grids draws it again; WarmTiles draws the city's first views
// ahead, so asking for them is a hit.
func TestGridTilesKept(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	res, err := s.Import(ctx, mustParse(t, DemoCity()), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	box, _, _ := s.Bounds(ctx, nil)
	z := 12
	tile := TileAt(z, (box.MinLon+box.MaxLon)/2, (box.MinLat+box.MaxLat)/2)
	hits := func() int64 { s.tiles.mu.Lock(); defer s.tiles.mu.Unlock(); return s.tiles.hits }
	first, _, err := s.GridTileFor(ctx, tile, nil)
	if err != nil || len(first) == 0 {
		t.Fatalf("tile: %d bytes, %v", len(first), err)
	}
	again, _, _ := s.GridTileFor(ctx, tile, nil)
	if hits() != 1 || string(again) != string(first) {
		t.Fatalf("second request: %d hits, same bytes %v", hits(), string(again) == string(first))
	}
	// Another scope is another tile.
	if _, _, err := s.GridTileFor(ctx, tile, []int64{res.Grids[len(res.Grids)-1].ID}); err != nil || hits() != 1 {
		t.Fatalf("a scoped tile was served from the unscoped one: %d hits, %v", hits(), err)
	}
	// A change: the tile is drawn again, without the deleted grid.
	leaf := res.Grids[len(res.Grids)-1]
	if err := s.Delete(ctx, leaf.ID); err != nil {
		t.Fatal(err)
	}
	zw := MaxTileZoom
	for ; zw > 0 && TileAt(zw, box.MinLon, box.MinLat) != TileAt(zw, box.MaxLon, box.MaxLat); zw-- {
	}
	whole := TileAt(zw, box.MinLon, box.MinLat)
	after, _, _ := s.GridTileFor(ctx, whole, nil)
	if n := len(decodeGrids(t, after)); n != 75 || hits() != 1 {
		t.Errorf("after a delete: %d grids in the world tile (%d hits), want 75 drawn afresh", n, hits())
	}
	n, err := s.WarmTiles(ctx, 13)
	if err != nil || n < 14 {
		t.Fatalf("warm-up drew %d tiles, %v", n, err)
	}
	before := hits()
	if _, _, err := s.GridTileFor(ctx, tile, nil); err != nil || hits() != before+1 {
		t.Errorf("a warmed tile was drawn again (%d → %d hits), %v", before, hits(), err)
	}
}
