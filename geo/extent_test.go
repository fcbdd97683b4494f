package geo

import (
	"context"
	"testing"
	"time"
)

func TestCountExtentAndFeatureFilters(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	if e, err := s.ExtentOf(ctx, Filter{}); err != nil || e.BBox != nil || e.From != nil {
		t.Fatalf("empty extent: %+v %v", e, err)
	}
	if _, err := s.Import(ctx, mustParse(t, DemoCity()), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	all, _, err := s.List(ctx, Filter{Geometry: true})
	if err != nil || len(all) != 76 {
		t.Fatalf("list: %d %v", len(all), err)
	}
	minX, minY, maxX, maxY := 180.0, 90.0, -180.0, -90.0
	for _, g := range all {
		if g.Geometry == nil {
			t.Fatalf("grid %s listed without geometry", g.Code)
		}
		b := g.Geometry.Bounds()
		minX, minY = min(minX, b.Min(0)), min(minY, b.Min(1))
		maxX, maxY = max(maxX, b.Max(0)), max(maxY, b.Max(1))
	}
	if plain, _, _ := s.List(ctx, Filter{Limit: 1}); plain[0].Geometry != nil {
		t.Error("List without Geometry returned one")
	}
	e, err := s.ExtentOf(ctx, Filter{})
	if err != nil || e.BBox == nil || e.From == nil || e.To == nil {
		t.Fatalf("extent: %+v %v", e, err)
	}
	if d := abs(e.BBox.MinLon-minX) + abs(e.BBox.MinLat-minY) + abs(e.BBox.MaxLon-maxX) + abs(e.BBox.MaxLat-maxY); d > 1e-9 {
		t.Errorf("extent %+v, want %v %v %v %v", *e.BBox, minX, minY, maxX, maxY)
	}
	for _, c := range []struct {
		f    Filter
		want int64
	}{
		{Filter{}, 76},
		{Filter{After: all[10].ID, Limit: 5}, 76}, // the cursor and limit do not count
		{Filter{Level: LevelGrid}, 66},
		{Filter{Code: all[3].Code}, 1},
		{Filter{Code: "nope"}, 0},
		{Filter{UpdatedFrom: e.From.Add(-time.Second)}, 76},
		{Filter{UpdatedUntil: e.From.Add(-time.Microsecond)}, 0},
		{Filter{UpdatedFrom: *e.To, UpdatedUntil: *e.To}, countAt(all, *e.To)},
		{Filter{Scope: []int64{all[1].ID}}, 1 + countBelow(all, all[1].ID)},
	} {
		n, err := s.Count(ctx, c.f)
		if err != nil || n != c.want {
			t.Errorf("count %+v: %d %v, want %d", c.f, n, err, c.want)
		}
	}
	scoped, err := s.ExtentOf(ctx, Filter{Scope: []int64{all[len(all)-1].ID}})
	if b := all[len(all)-1].Geometry.Bounds(); err != nil || scoped.BBox == nil || abs(scoped.BBox.MinLon-b.Min(0)) > 1e-9 || abs(scoped.BBox.MaxLat-b.Max(1)) > 1e-9 {
		t.Errorf("scoped extent %+v %v, want the one grid's box", scoped, err)
	}
}

func countAt(gs []Grid, at time.Time) int64 {
	var n int64
	for _, g := range gs {
		if g.UpdatedAt.Equal(at) {
			n++
		}
	}
	return n
}

// countBelow counts the descendants of grid id.
func countBelow(gs []Grid, id int64) int64 {
	var n int64
	for _, g := range gs {
		if g.ParentID != nil && *g.ParentID == id {
			n += 1 + countBelow(gs, g.ID)
		}
	}
	return n
}
