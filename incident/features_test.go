package incident

import (
	"context"
	"slices"
	"testing"
	"time"

	"gridwatch/geo"
)

func TestFeaturesCountAndExtent(t *testing.T) {
	c := newCity(t)
	ctx := context.Background()
	code := anyGridCode(c)
	var other string
	for k := range c.inside {
		if k != code && (other == "" || k < other) {
			other = k
		}
	}
	t0 := c.clock().Add(-48 * time.Hour).Truncate(time.Second)
	a := c.report(t, code, func(n *NewIncident) { n.ReportedAt, n.Priority = t0, "high" })
	b := c.report(t, code, func(n *NewIncident) { n.ReportedAt = t0.Add(time.Hour) })
	d := c.report(t, other, func(n *NewIncident) { n.ReportedAt, n.Priority = t0.Add(2*time.Hour), "high" })
	grid := c.byCode[code].ID
	ids := func(list []Incident) []int64 {
		var out []int64
		for _, in := range list {
			out = append(out, in.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    FeatureFilter
		v    Viewer
		want []int64
	}{
		{"all", FeatureFilter{}, Viewer{}, []int64{d.ID, b.ID, a.ID}},
		{"priority", FeatureFilter{Priority: "high"}, Viewer{}, []int64{d.ID, a.ID}},
		{"exact grid", FeatureFilter{InGrid: grid}, Viewer{}, []int64{b.ID, a.ID}},
		{"parent is not exact", FeatureFilter{InGrid: *c.byCode[code].ParentID}, Viewer{}, nil},
		{"until is inclusive", FeatureFilter{Filter: Filter{From: t0}, Until: t0.Add(time.Hour)}, Viewer{}, []int64{b.ID, a.ID}},
		{"instant", FeatureFilter{Filter: Filter{From: t0.Add(time.Hour)}, Until: t0.Add(time.Hour)}, Viewer{}, []int64{b.ID}},
		{"scope", FeatureFilter{}, Viewer{Grids: []int64{c.byCode[other].ID}}, []int64{d.ID}},
		{"bbox", FeatureFilter{Filter: Filter{BBox: &geo.BBox{MinLon: c.inside[other][0] - 1e-6, MinLat: c.inside[other][1] - 1e-6,
			MaxLon: c.inside[other][0] + 1e-6, MaxLat: c.inside[other][1] + 1e-6}}}, Viewer{}, []int64{d.ID}},
	} {
		got, next, err := c.svc.Features(ctx, tc.f, tc.v)
		if err != nil || !slices.Equal(ids(got), tc.want) || next != 0 {
			t.Errorf("%s: %v next %d %v, want %v", tc.name, ids(got), next, err, tc.want)
		}
		n, err := c.svc.CountFeatures(ctx, tc.f, tc.v)
		if err != nil || n != int64(len(tc.want)) {
			t.Errorf("%s: count %d %v, want %d", tc.name, n, err, len(tc.want))
		}
	}
	// Paging newest first by cursor, and the count ignores the cursor.
	page, next, err := c.svc.Features(ctx, FeatureFilter{Filter: Filter{Limit: 2}}, Viewer{})
	if err != nil || !slices.Equal(ids(page), []int64{d.ID, b.ID}) || next != b.ID {
		t.Fatalf("page 1: %v next %d %v", ids(page), next, err)
	}
	page, next, _ = c.svc.Features(ctx, FeatureFilter{Filter: Filter{Limit: 2, Before: next}}, Viewer{})
	if !slices.Equal(ids(page), []int64{a.ID}) || next != 0 {
		t.Errorf("page 2: %v next %d", ids(page), next)
	}
	if n, _ := c.svc.CountFeatures(ctx, FeatureFilter{Filter: Filter{Limit: 2, Before: b.ID}}, Viewer{}); n != 3 {
		t.Errorf("count with a cursor: %d, want 3", n)
	}
	e, err := c.svc.ExtentOf(ctx, Viewer{Grids: []int64{grid}})
	p := c.inside[code]
	if err != nil || e.BBox == nil || e.BBox.MinLon != p[0] || e.BBox.MaxLat != p[1] || !e.From.Equal(t0) || !e.To.Equal(t0.Add(time.Hour)) {
		t.Errorf("scoped extent %+v %v, want the point %v from %v to %v", e, err, p, t0, t0.Add(time.Hour))
	}
	if e, err := c.svc.ExtentOf(ctx, Viewer{OwnToken: 12345}); err != nil || e.BBox != nil || e.From != nil {
		t.Errorf("extent of nothing: %+v %v", e, err)
	}
}
