package geo

import (
	"fmt"
	"gridwatch/geo/internal/citygen"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/planar"
	"github.com/twpayne/go-geom"
)

// codesOf lists the codes of a chain, for compact got/want messages.
func codesOf(refs []Ref) string {
	codes := make([]string, len(refs))
	for i, r := range refs {
		codes[i] = r.Code
	}
	return strings.Join(codes, ">")
}

// rect returns a closed counter-clockwise rectangle ring.
func rect(x0, y0, x1, y1 float64) orb.Ring {
	return orb.Ring{{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}, {x0, y0}}
}

// TestIndexOrbBoundary checks what orb's planar.MultiPolygonContains does on
// boundaries, the behaviour the index's own test is held against: exterior
// vertices and edges count as inside, as documented, but a hole's boundary
// counts as outside, which is not ST_Covers. The index covers both.
func TestIndexOrbBoundary(t *testing.T) {
	mp := orb.MultiPolygon{{
		rect(0, 0, 4, 4),
		{{1, 1}, {1, 2}, {2, 2}, {2, 1}, {1, 1}}, // hole, clockwise
	}, {
		{{10, 0}, {13, 0}, {10, 7}, {10, 0}}, // slanted hypotenuse
	}}
	ix := NewIndex([]IndexedGrid{{Ref: Ref{ID: 1, Code: "g", Level: LevelGrid}, Geometry: mp}})
	tests := []struct {
		name      string
		pt        orb.Point
		orb, want bool
	}{
		{"exterior vertex", orb.Point{0, 0}, true, true},
		{"exterior vertex opposite", orb.Point{4, 4}, true, true},
		{"bottom edge", orb.Point{2.5, 0}, true, true},
		{"right edge", orb.Point{4, 3}, true, true},
		{"top edge", orb.Point{0.5, 4}, true, true},
		{"left edge", orb.Point{0, 3.5}, true, true},
		{"interior", orb.Point{3, 3}, true, true},
		{"hole vertex", orb.Point{1, 1}, false, true},
		{"hole edge", orb.Point{1.5, 2}, false, true},
		{"hole interior", orb.Point{1.5, 1.5}, false, false},
		{"just outside", orb.Point{4.000001, 2}, false, false},
		{"slanted edge", orb.Point{11.5, 3.5}, true, true},
		{"slanted edge quarter", orb.Point{12.25, 1.75}, true, true},
		{"just off the slanted edge", orb.Point{math.Nextafter(11.5, 20), 3.5}, false, false},
		{"just inside the slanted edge", orb.Point{math.Nextafter(11.5, 0), 3.5}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := planar.MultiPolygonContains(mp, tt.pt); got != tt.orb {
				t.Errorf("orb: got %v, want %v", got, tt.orb)
			}
			_, got := ix.Assign(tt.pt[0], tt.pt[1])
			if got != tt.want {
				t.Errorf("index: got %v, want %v", got, tt.want)
			}
		})
	}
}

// nested is a small hierarchy: district D of 4×4, streets S1 (west) and S2
// (east), one community per street, and four grids in a 2×2 block per
// community, codes increasing west to east and south to north. Grid
// 101001001002 has a hole at (1.2–1.6, 0.2–0.6) that no grid fills.
func nested() []IndexedGrid {
	const d, s1, s2, c1, c2 = "410105", "410105001", "410105002", "410105001001", "410105002001"
	g := func(id, parent int64, code string, lvl Level, rings ...orb.Ring) IndexedGrid {
		return IndexedGrid{
			Ref:      Ref{ID: id, Code: code, Name: "n" + code, Level: lvl},
			ParentID: parent,
			Geometry: orb.MultiPolygon{orb.Polygon(rings)},
		}
	}
	hole := orb.Ring{{1.2, 0.2}, {1.2, 0.6}, {1.6, 0.6}, {1.6, 0.2}, {1.2, 0.2}}
	// Given out of order on purpose: the index must not depend on it.
	return []IndexedGrid{
		g(12, 5, c2+"004", LevelGrid, rect(3, 1, 4, 2)),
		g(1, 0, d, LevelDistrict, rect(0, 0, 4, 4)),
		g(2, 1, s1, LevelStreet, rect(0, 0, 2, 4)),
		g(3, 1, s2, LevelStreet, rect(2, 0, 4, 4)),
		g(4, 2, c1, LevelCommunity, rect(0, 0, 2, 2)),
		g(5, 3, c2, LevelCommunity, rect(2, 0, 4, 2)),
		g(6, 4, c1+"001", LevelGrid, rect(0, 0, 1, 1)),
		g(7, 4, c1+"002", LevelGrid, rect(1, 0, 2, 1), hole),
		g(8, 4, c1+"003", LevelGrid, rect(0, 1, 1, 2)),
		g(9, 4, c1+"004", LevelGrid, rect(1, 1, 2, 2)),
		g(10, 5, c2+"001", LevelGrid, rect(2, 0, 3, 1)),
		g(11, 5, c2+"002", LevelGrid, rect(3, 0, 4, 1)),
		g(13, 5, c2+"003", LevelGrid, rect(2, 1, 3, 2)),
	}
}

func TestIndexLocate(t *testing.T) {
	ix := NewIndex(nested())
	const d, s1, s2, c1, c2 = "410105", "410105001", "410105002", "410105001001", "410105002001"
	tests := []struct {
		name     string
		lon, lat float64
		want     string // codes, most specific first
	}{
		{"inside a grid", 0.5, 0.5, c1 + "001>" + c1 + ">" + s1 + ">" + d},
		{"inside another grid", 3.5, 1.5, c2 + "004>" + c2 + ">" + s2 + ">" + d},
		{"shared edge of two grids", 1, 0.5, c1 + "001>" + c1 + ">" + s1 + ">" + d},
		{"shared edge, other side order", 0.5, 1, c1 + "001>" + c1 + ">" + s1 + ">" + d},
		{"shared vertex of four grids", 1, 1, c1 + "001>" + c1 + ">" + s1 + ">" + d},
		{"shared vertex of four grids east", 3, 1, c2 + "001>" + c2 + ">" + s2 + ">" + d},
		{"shared edge across streets", 2, 0.5, c1 + "002>" + c1 + ">" + s1 + ">" + d},
		{"shared vertex across streets", 2, 1, c1 + "002>" + c1 + ">" + s1 + ">" + d},
		{"district corner", 4, 4, s2 + ">" + d},
		{"in the hole: falls to the community", 1.4, 0.4, c1 + ">" + s1 + ">" + d},
		{"on the hole's edge: the holed grid covers it", 1.2, 0.4, c1 + "002>" + c1 + ">" + s1 + ">" + d},
		{"on the hole's vertex", 1.6, 0.6, c1 + "002>" + c1 + ">" + s1 + ">" + d},
		{"street without grids", 1, 3, s1 + ">" + d},
		{"street edge without grids", 2, 3, s1 + ">" + d},
		{"outside", 5, 5, ""},
		{"just outside", math.Nextafter(4, 5), 2, ""},
		{"NaN", math.NaN(), 1, ""},
		{"infinite", math.Inf(1), 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ix.Locate(tt.lon, tt.lat)
			if got == nil {
				t.Fatal("got nil, want a non-nil slice")
			}
			if codesOf(got) != tt.want {
				t.Errorf("got %s, want %s", codesOf(got), tt.want)
			}
			ref, ok := ix.Assign(tt.lon, tt.lat)
			if wantOK := tt.want != ""; ok != wantOK || ok && ref != got[0] {
				t.Errorf("Assign: got %v %v, want %v %v", ref, ok, got[0:min(1, len(got))], wantOK)
			}
		})
	}
	if got := ix.Len(); got != 13 {
		t.Errorf("Len: got %d, want 13", got)
	}
}

func TestIndexChainEdgeCases(t *testing.T) {
	sq := orb.MultiPolygon{{rect(0, 0, 1, 1)}}
	tests := []struct {
		name  string
		grids []IndexedGrid
		want  string
	}{
		{"parent missing from the index", []IndexedGrid{
			{Ref: Ref{ID: 1, Code: "g", Level: LevelGrid}, ParentID: 99, Geometry: sq},
		}, "g"},
		{"chain stops at a missing grandparent", []IndexedGrid{
			{Ref: Ref{ID: 1, Code: "g", Level: LevelGrid}, ParentID: 2, Geometry: sq},
			{Ref: Ref{ID: 2, Code: "c", Level: LevelCommunity}, ParentID: 77},
		}, "g>c"},
		{"cycle", []IndexedGrid{
			{Ref: Ref{ID: 1, Code: "g", Level: LevelGrid}, ParentID: 2, Geometry: sq},
			{Ref: Ref{ID: 2, Code: "c", Level: LevelCommunity}, ParentID: 3},
			{Ref: Ref{ID: 3, Code: "s", Level: LevelStreet}, ParentID: 2},
		}, "g>c>s"},
		{"self parent", []IndexedGrid{
			{Ref: Ref{ID: 1, Code: "g", Level: LevelGrid}, ParentID: 1, Geometry: sq},
		}, "g"},
		{"same level, lower code wins", []IndexedGrid{
			{Ref: Ref{ID: 1, Code: "b", Level: LevelGrid}, Geometry: sq},
			{Ref: Ref{ID: 2, Code: "a", Level: LevelGrid}, Geometry: sq},
		}, "a"},
		{"higher level wins over lower code", []IndexedGrid{
			{Ref: Ref{ID: 1, Code: "a", Level: LevelCommunity}, Geometry: sq},
			{Ref: Ref{ID: 2, Code: "b", Level: LevelGrid}, Geometry: sq},
		}, "b"},
		{"unknown level ranks last", []IndexedGrid{
			{Ref: Ref{ID: 1, Code: "a", Level: "ward"}, Geometry: sq},
			{Ref: Ref{ID: 2, Code: "b", Level: LevelDistrict}, Geometry: sq},
		}, "b"},
		{"unclosed ring is closed", []IndexedGrid{
			{Ref: Ref{ID: 1, Code: "g", Level: LevelGrid}, Geometry: orb.MultiPolygon{{{{0, 0}, {1, 0}, {1, 1}, {0, 1}}}}},
		}, "g"},
		{"non-finite polygon is skipped", []IndexedGrid{
			{Ref: Ref{ID: 1, Code: "a", Level: LevelGrid}, Geometry: orb.MultiPolygon{{{{0, 0}, {math.NaN(), 0}, {1, 1}, {0, 0}}}}},
			{Ref: Ref{ID: 2, Code: "b", Level: LevelGrid}, Geometry: sq},
		}, "b"},
		{"empty geometry", []IndexedGrid{
			{Ref: Ref{ID: 1, Code: "a", Level: LevelGrid}, Geometry: orb.MultiPolygon{{}}},
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix := NewIndex(tt.grids)
			if got := codesOf(ix.Locate(0.5, 0.5)); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestIndexCopiesInput(t *testing.T) {
	grids := []IndexedGrid{{Ref: Ref{ID: 1, Code: "g", Level: LevelGrid}, Geometry: orb.MultiPolygon{{rect(0, 0, 1, 1)}}}}
	ix := NewIndex(grids)
	grids[0].Geometry[0][0][2] = orb.Point{0.1, 0.1}
	grids[0].Ref.Code = "changed"
	if got := codesOf(ix.Locate(0.9, 0.9)); got != "g" {
		t.Errorf("got %q after changing the input, want g", got)
	}
	chain := ix.Locate(0.5, 0.5)
	chain[0].Code = "mine"
	if got := codesOf(ix.Locate(0.5, 0.5)); got != "g" {
		t.Errorf("got %q after changing a result, want g", got)
	}
}

// cityIndex parses a generated city and indexes all its features, IDs
// numbered in file order and parents linked by code.
func cityIndex(tb testing.TB, data []byte) (*Index, []demoFeature) {
	tb.Helper()
	fs := parseCity(tb, data)
	ids := make(map[string]int64, len(fs))
	grids := make([]IndexedGrid, len(fs))
	for i, f := range fs {
		ids[f.Code] = int64(i + 1)
		grids[i] = IndexedGrid{
			Ref:      Ref{ID: int64(i + 1), Code: f.Code, Name: f.Name, Level: f.Level},
			ParentID: ids[f.ParentCode],
			Geometry: f.Geometry,
		}
	}
	return NewIndex(grids), fs
}

// TestIndexDemoCity locates a point inside every demo grid and checks the
// four-level chain.
func TestIndexDemoCity(t *testing.T) {
	ix, fs := cityIndex(t, DemoCity())
	byCode := map[string]demoFeature{}
	for _, f := range fs {
		byCode[f.Code] = f
	}
	n := 0
	for _, f := range fs {
		if f.Level != LevelGrid {
			continue
		}
		n++
		// Demo cells are convex, so the centroid is inside.
		c, _ := planar.CentroidArea(f.Geometry)
		comm := byCode[f.ParentCode]
		street := byCode[comm.ParentCode]
		want := strings.Join([]string{f.Code, comm.Code, street.Code, street.ParentCode}, ">")
		got := ix.Locate(c[0], c[1])
		if codesOf(got) != want {
			t.Errorf("centroid of %s: got %s, want %s", f.Code, codesOf(got), want)
		}
		if len(got) == 4 && (got[0].Level != LevelGrid || got[1].Level != LevelCommunity ||
			got[2].Level != LevelStreet || got[3].Level != LevelDistrict || got[0].Name != f.Name) {
			t.Errorf("centroid of %s: got refs %+v", f.Code, got)
		}
	}
	if n != 66 {
		t.Errorf("got %d grids, want 66", n)
	}
}

// TestIndexDemoSharedBoundaries checks the tie rule on the demo city: every
// grid vertex goes to the lowest-coded grid that has it, and every point
// exactly on a shared (slanted, jittered) edge to the lower code of the two.
func TestIndexDemoSharedBoundaries(t *testing.T) {
	ix, fs := cityIndex(t, DemoCity())
	owners := map[orb.Point][]string{}
	type edge struct{ a, b orb.Point }
	edgeOwners := map[edge][]string{}
	for _, f := range fs {
		if f.Level != LevelGrid {
			continue
		}
		r := f.Geometry[0][0]
		for i := 0; i+1 < len(r); i++ {
			owners[r[i]] = append(owners[r[i]], f.Code)
			a, b := r[i], r[i+1]
			if b[0] < a[0] || b[0] == a[0] && b[1] < a[1] {
				a, b = b, a
			}
			edgeOwners[edge{a, b}] = append(edgeOwners[edge{a, b}], f.Code)
		}
	}
	for v, codes := range owners {
		got, ok := ix.Assign(v[0], v[1])
		if want := slices.Min(codes); !ok || got.Code != want {
			t.Errorf("vertex %v of %v: got %q, want %q", v, codes, got.Code, want)
		}
	}
	// Points exactly on each shared edge. Demo longitudes lie in [64, 128)
	// and latitudes in [32, 64), where float64 steps are 2⁻⁴⁶ and 2⁻⁴⁷, so
	// the representable points of an edge are its ends plus g−1 evenly
	// spaced ones, g being the gcd of its extents in those steps. Most
	// slanted edges hold none; the rest are tested, and so are the points
	// one step east and west of them, which lie in one grid only.
	const lonStep, latStep = 1.0 / (1 << 46), 1.0 / (1 << 47)
	onEdge := 0
	for e, codes := range edgeOwners {
		if len(codes) != 2 {
			continue
		}
		dx, dy := int64((e.b[0]-e.a[0])/lonStep), int64((e.b[1]-e.a[1])/latStep)
		g := gcd(dx, dy)
		for j := int64(1); j < g && j <= 4; j++ {
			p := orb.Point{e.a[0] + float64(j*dx/g)*lonStep, e.a[1] + float64(j*dy/g)*latStep}
			if ratOrient(e.a, e.b, p) != 0 {
				t.Fatalf("%v: constructed off the edge %v", p, e)
			}
			onEdge++
			got, ok := ix.Assign(p[0], p[1])
			if want := slices.Min(codes); !ok || got.Code != want {
				t.Errorf("%v on the edge of %v: got %q, want %q", p, codes, got.Code, want)
			}
			for _, dir := range []float64{-1, 1} {
				q := orb.Point{math.Nextafter(p[0], dir*math.Inf(1)), p[1]}
				var in []string
				for _, f := range fs {
					if slices.Contains(codes, f.Code) && ratCovers(f.Geometry[0][0], q) {
						in = append(in, f.Code)
					}
				}
				got, ok := ix.Assign(q[0], q[1])
				if len(in) != 1 || !ok || got.Code != in[0] {
					t.Errorf("%v beside the edge of %v: got %q, want the one of %v", q, codes, got.Code, in)
				}
			}
		}
	}
	if onEdge < 20 {
		t.Errorf("got %d points exactly on shared edges, want enough to mean something", onEdge)
	}
	t.Logf("%d vertices, %d points exactly on shared edges", len(owners), onEdge)
}

func gcd(a, b int64) int64 {
	a, b = max(a, -a), max(b, -b)
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// ratCovers is a slow exact reference for a simple convex-or-not ring:
// crossing parity with rational orientation, boundary included.
func ratCovers(r orb.Ring, p orb.Point) bool {
	in := false
	for i := 0; i+1 < len(r); i++ {
		a, b := r[i], r[i+1]
		if ratOrient(a, b, p) == 0 &&
			min(a[0], b[0]) <= p[0] && p[0] <= max(a[0], b[0]) &&
			min(a[1], b[1]) <= p[1] && p[1] <= max(a[1], b[1]) {
			return true
		}
		if (a[1] <= p[1]) != (b[1] <= p[1]) {
			if o := ratOrient(a, b, p); (o > 0) == (b[1] > a[1]) {
				in = !in
			}
		}
	}
	return in
}

// ratOrient is the orientation sign of (a, b, c) in exact rational
// arithmetic, the reference for orient.
func ratOrient(a, b, c orb.Point) int {
	r := func(x float64) *big.Rat { return new(big.Rat).SetFloat64(x) }
	sub := func(x, y float64) *big.Rat { return new(big.Rat).Sub(r(x), r(y)) }
	left := new(big.Rat).Mul(sub(a[0], c[0]), sub(b[1], c[1]))
	right := new(big.Rat).Mul(sub(a[1], c[1]), sub(b[0], c[0]))
	return left.Cmp(right)
}

func TestIndexOrientExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	nearDegenerate := 0
	for i := range 12000 {
		a := orb.Point{113 + rng.Float64(), 34 + rng.Float64()}
		b := orb.Point{113 + rng.Float64(), 34 + rng.Float64()}
		tt := rng.Float64()
		c := orb.Point{a[0] + tt*(b[0]-a[0]), a[1] + tt*(b[1]-a[1])}
		// Nudge c by a few ulps so every sign occurs.
		for range rng.IntN(3) {
			k := rng.IntN(2)
			c[k] = math.Nextafter(c[k], math.Inf(2*rng.IntN(2)-1))
		}
		if i%4 == 0 {
			c = orb.Point{113 + rng.Float64(), 34 + rng.Float64()}
		}
		want := ratOrient(a, b, c)
		got := orient(a[0], a[1], b[0], b[1], c[0], c[1])
		if got != want {
			t.Fatalf("orient(%v, %v, %v): got %d, want %d", a, b, c, got, want)
		}
		if i%4 != 0 {
			nearDegenerate++
		}
	}
	// And the exact path alone, which the filter rarely reaches.
	for range 2000 {
		a := orb.Point{113 + rng.Float64(), 34 + rng.Float64()}
		b := orb.Point{113 + rng.Float64(), 34 + rng.Float64()}
		c := orb.Point{a[0] + 0.5*(b[0]-a[0]), a[1] + 0.5*(b[1]-a[1])}
		if got, want := orientExact(a[0], a[1], b[0], b[1], c[0], c[1]), ratOrient(a, b, c); got != want {
			t.Fatalf("orientExact(%v, %v, %v): got %d, want %d", a, b, c, got, want)
		}
	}
	t.Logf("%d near-degenerate cases", nearDegenerate)
}

// TestIndexMatchesOrb compares Assign with a brute-force search over orb's
// planar.MultiPolygonContains at random points (which never fall on a
// boundary, where the two differ by design).
func TestIndexMatchesOrb(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
	}{{"demo", DemoCity()}, {"synthetic 400", citygen.Synthetic(400)}} {
		t.Run(tc.name, func(t *testing.T) {
			ix, fs := cityIndex(t, tc.data)
			b := fs[0].Geometry.Bound().Pad(0.002)
			rng := rand.New(rand.NewPCG(7, 8))
			bounds := make([]orb.Bound, len(fs))
			for i, f := range fs {
				bounds[i] = f.Geometry.Bound()
			}
			found := 0
			for range 5000 {
				p := orb.Point{b.Min[0] + rng.Float64()*(b.Max[0]-b.Min[0]), b.Min[1] + rng.Float64()*(b.Max[1]-b.Min[1])}
				want, wantRank := "", 0
				for i, f := range fs {
					if !bounds[i].Contains(p) || !planar.MultiPolygonContains(f.Geometry, p) {
						continue
					}
					if r := f.Level.Rank(); want == "" || r > wantRank || r == wantRank && f.Code < want {
						want, wantRank = f.Code, r
					}
				}
				got, ok := ix.Assign(p[0], p[1])
				if got.Code != want || ok != (want != "") {
					t.Fatalf("%v: got %q %v, want %q", p, got.Code, ok, want)
				}
				if ok {
					found++
				}
			}
			if found < 2500 {
				t.Errorf("got %d of 5000 points in a grid, want most", found)
			}
		})
	}
}

// TestIndexBandedRing checks rings long enough for the band index (a
// 1000-gon with a 500-gon hole, and a comb of long vertical edges) against
// orb at random points.
func TestIndexBandedRing(t *testing.T) {
	circle := func(cx, cy, r float64, n int, ccw bool) orb.Ring {
		ring := make(orb.Ring, 0, n+1)
		for i := range n {
			a := 2 * math.Pi * float64(i) / float64(n)
			if !ccw {
				a = -a
			}
			ring = append(ring, orb.Point{cx + r*math.Cos(a), cy + r*math.Sin(a)})
		}
		return append(ring, ring[0])
	}
	comb := orb.Ring{{0, 0}, {10, 0}}
	for i := 10; i > 0; i-- {
		x := float64(i)
		comb = append(comb, orb.Point{x, 10}, orb.Point{x - 0.5, 10}, orb.Point{x - 0.5, 1})
	}
	comb = append(comb, orb.Point{0, 1}, orb.Point{0, 0})
	tests := []struct {
		name string
		mp   orb.MultiPolygon
	}{
		{"circle with hole", orb.MultiPolygon{{circle(113.7, 34.8, 0.1, 1000, true), circle(113.72, 34.79, 0.03, 500, false)}}},
		{"comb", orb.MultiPolygon{{comb}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix := NewIndex([]IndexedGrid{{Ref: Ref{ID: 1, Code: "g", Level: LevelGrid}, Geometry: tt.mp}})
			if ix.polys[0].ext.nb == 0 {
				t.Fatal("got no band index, want one")
			}
			b := tt.mp.Bound().Pad(0.01)
			rng := rand.New(rand.NewPCG(3, 4))
			for range 4000 {
				p := orb.Point{b.Min[0] + rng.Float64()*(b.Max[0]-b.Min[0]), b.Min[1] + rng.Float64()*(b.Max[1]-b.Min[1])}
				want := planar.MultiPolygonContains(tt.mp, p)
				if _, got := ix.Assign(p[0], p[1]); got != want {
					t.Fatalf("%v: got %v, want %v", p, got, want)
				}
			}
			// Every vertex of the exterior is covered.
			for _, v := range tt.mp[0][0] {
				if _, ok := ix.Assign(v[0], v[1]); !ok {
					t.Errorf("vertex %v: got not covered, want covered", v)
				}
			}
		})
	}
}

func TestIndexConcurrent(t *testing.T) {
	ix, fs := cityIndex(t, DemoCity())
	b := fs[0].Geometry.Bound()
	rng := rand.New(rand.NewPCG(5, 6))
	pts := make([]orb.Point, 2000)
	want := make([]string, len(pts))
	for i := range pts {
		pts[i] = orb.Point{b.Min[0] + rng.Float64()*(b.Max[0]-b.Min[0]), b.Min[1] + rng.Float64()*(b.Max[1]-b.Min[1])}
		want[i] = codesOf(ix.Locate(pts[i][0], pts[i][1]))
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := range pts {
				j := (i + w*251) % len(pts)
				if got := codesOf(ix.Locate(pts[j][0], pts[j][1])); got != want[j] {
					errs <- fmt.Sprintf("worker %d, %v: got %s, want %s", w, pts[j], got, want[j])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestIndexAssignAllocs(t *testing.T) {
	ix, _ := cityIndex(t, citygen.Synthetic(400))
	tests := []struct {
		name     string
		lon, lat float64
	}{
		{"in a grid", 113.51, 34.61},
		{"outside", 100, 20},
		{"NaN", math.NaN(), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := testing.AllocsPerRun(1000, func() { ix.Assign(tt.lon, tt.lat) }); got != 0 {
				t.Errorf("got %v allocations per Assign, want 0", got)
			}
		})
	}
	// Locate allocates its result only.
	if got := testing.AllocsPerRun(1000, func() { ix.Locate(113.51, 34.61) }); got != 1 {
		t.Errorf("got %v allocations per Locate, want 1", got)
	}
}

func TestIndexOrbMultiPolygon(t *testing.T) {
	tests := []struct {
		name string
		in   *geom.MultiPolygon
		want orb.MultiPolygon
	}{
		{"nil", nil, nil},
		{"empty", geom.NewMultiPolygon(geom.XY), orb.MultiPolygon{}},
		{"no layout", geom.NewMultiPolygon(geom.NoLayout), orb.MultiPolygon{}},
		{"xy with hole and two parts", geom.NewMultiPolygon(geom.XY).MustSetCoords([][][]geom.Coord{
			{{{0, 0}, {4, 0}, {4, 4}, {0, 4}, {0, 0}}, {{1, 1}, {1, 2}, {2, 2}, {1, 1}}},
			{{{10, 10}, {11, 10}, {11, 11}, {10, 10}}},
		}), orb.MultiPolygon{
			{{{0, 0}, {4, 0}, {4, 4}, {0, 4}, {0, 0}}, {{1, 1}, {1, 2}, {2, 2}, {1, 1}}},
			{{{10, 10}, {11, 10}, {11, 11}, {10, 10}}},
		}},
		{"xyz keeps x and y", geom.NewMultiPolygon(geom.XYZ).MustSetCoords([][][]geom.Coord{
			{{{113.6, 34.7, 100}, {113.7, 34.7, 101}, {113.7, 34.8, 102}, {113.6, 34.7, 100}}},
		}), orb.MultiPolygon{
			{{{113.6, 34.7}, {113.7, 34.7}, {113.7, 34.8}, {113.6, 34.7}}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := OrbMultiPolygon(tt.in)
			if (got == nil) != (tt.want == nil) || !got.Equal(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// benchPoints returns n random points in the bounding box of a city's
// district, from a fixed seed.
func benchPoints(fs []demoFeature, n int) []orb.Point {
	b := fs[0].Geometry.Bound()
	rng := rand.New(rand.NewPCG(2026, 66))
	pts := make([]orb.Point, n)
	for i := range pts {
		pts[i] = orb.Point{b.Min[0] + rng.Float64()*(b.Max[0]-b.Min[0]), b.Min[1] + rng.Float64()*(b.Max[1]-b.Min[1])}
	}
	return pts
}

// indexBench builds a city's index for a benchmark and returns it with the
// points to look up, random in the bounding box of the city's district.
func indexBench(b *testing.B, data []byte) (*Index, pointCycle) {
	ix, fs := cityIndex(b, data)
	b.ReportAllocs()
	return ix, pointCycle{pts: benchPoints(fs, 1<<14)}
}

func benchLocate(b *testing.B, data []byte) {
	ix, ps := indexBench(b, data)
	for b.Loop() {
		p := ps.next()
		ix.Locate(p[0], p[1])
	}
	reportRate(b, 1, "lookups/s")
}

func BenchmarkIndexLocate66(b *testing.B) { benchLocate(b, DemoCity()) }

func BenchmarkIndexLocate10000(b *testing.B) { benchLocate(b, citygen.Synthetic(10000)) }

func BenchmarkIndexAssign10000(b *testing.B) {
	ix, ps := indexBench(b, citygen.Synthetic(10000))
	for b.Loop() {
		p := ps.next()
		ix.Assign(p[0], p[1])
	}
	reportRate(b, 1, "lookups/s")
}

func BenchmarkIndexBuild10000(b *testing.B) {
	fs := parseCity(b, citygen.Synthetic(10000))
	grids := make([]IndexedGrid, len(fs))
	for i, f := range fs {
		grids[i] = IndexedGrid{Ref: Ref{ID: int64(i + 1), Code: f.Code, Level: f.Level}, Geometry: f.Geometry}
	}
	b.ReportAllocs()
	for b.Loop() {
		NewIndex(grids)
	}
}
