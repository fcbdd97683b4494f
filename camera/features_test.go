package camera

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"gridwatch/geo/geotest"
)

func TestFeaturesCountAndExtent(t *testing.T) {
	ctx := context.Background()
	city := geotest.Demo(t)
	s := NewStore(city.Pool)
	first := geotest.Cells(city.Features)
	cells := [][2]float64{geotest.Middle(first[0]), geotest.Middle(first[1])}
	heading, fov, rng := 0.0, 10.0, 5.0
	var cams []*Camera
	for i, code := range []string{"A-1", "A-2", "B-1"} {
		at := cells[0]
		if i == 2 {
			at = cells[1]
		}
		s.now = func() time.Time { return time.Date(2026, 11, 20+i, 0, 0, 0, 0, time.UTC) }
		cam, err := s.Create(ctx, Spec{Code: code, Name: code, Location: &Point{"Point", at}, Heading: &heading, FOV: &fov, Range: &rng,
			MainURL: "rtsp://admin:S3cret@10.1.1.1:554/main"})
		if err != nil {
			t.Fatal(err)
		}
		cams = append(cams, cam)
	}
	ids := func(list []Camera) []int64 {
		var out []int64
		for _, c := range list {
			if strings.Contains(c.MainURL, "S3cret") {
				t.Errorf("camera %s shows its password", c.Code)
			}
			out = append(out, c.ID)
		}
		return out
	}
	g0, g1 := cams[0].Grid.ID, cams[2].Grid.ID
	day := func(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		name string
		f    FeatureFilter
		v    Viewer
		want []int64
	}{
		{"all", FeatureFilter{}, Viewer{}, []int64{cams[0].ID, cams[1].ID, cams[2].ID}},
		{"code", FeatureFilter{Code: "A-2"}, Viewer{}, []int64{cams[1].ID}},
		{"exact grid", FeatureFilter{InGrid: g1}, Viewer{}, []int64{cams[2].ID}},
		{"updated from", FeatureFilter{UpdatedFrom: day(21)}, Viewer{}, []int64{cams[1].ID, cams[2].ID}},
		{"updated until, inclusive", FeatureFilter{UpdatedUntil: day(21)}, Viewer{}, []int64{cams[0].ID, cams[1].ID}},
		{"status", FeatureFilter{Filter: Filter{Status: "online"}}, Viewer{}, nil},
		{"scope", FeatureFilter{}, Viewer{Grids: []int64{g0}}, []int64{cams[0].ID, cams[1].ID}},
	} {
		got, next, err := s.Features(ctx, tc.f, tc.v)
		if err != nil || !slices.Equal(ids(got), tc.want) || next != 0 {
			t.Errorf("%s: %v next %d %v, want %v", tc.name, ids(got), next, err, tc.want)
		}
		if n, err := s.CountFeatures(ctx, tc.f, tc.v); err != nil || n != int64(len(tc.want)) {
			t.Errorf("%s: count %d %v, want %d", tc.name, n, err, len(tc.want))
		}
	}
	page, next, err := s.Features(ctx, FeatureFilter{Filter: Filter{Limit: 2}}, Viewer{})
	if err != nil || len(page) != 2 || next != cams[1].ID {
		t.Fatalf("page 1: %v next %d %v", ids(page), next, err)
	}
	if page, next, _ = s.Features(ctx, FeatureFilter{Filter: Filter{Limit: 2, After: next}}, Viewer{}); !slices.Equal(ids(page), []int64{cams[2].ID}) || next != 0 {
		t.Errorf("page 2: %v next %d", ids(page), next)
	}
	e, err := s.ExtentOf(ctx, Viewer{Grids: []int64{g1}})
	if err != nil || e.BBox == nil || e.BBox.MinLon != cells[1][0] || e.BBox.MaxLat != cells[1][1] || !e.From.Equal(day(22)) || !e.To.Equal(day(22)) {
		t.Errorf("scoped extent %+v %v", e, err)
	}
}
