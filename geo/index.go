package geo

import (
	"cmp"
	"math"
	"slices"

	"github.com/paulmach/orb"
	"github.com/tidwall/rtree"
	"github.com/twpayne/go-geom"
)

// IndexedGrid is one grid as NewIndex takes it: its reference, its parent's
// ID (0 for none) and its boundary in WGS-84 lon/lat.
type IndexedGrid struct {
	Ref      Ref
	ParentID int64 // 0 = none
	Geometry orb.MultiPolygon
}

// Index answers "which grid is this point in" in process, without a
// database round trip. It is built once from the current boundaries and
// never changes; a redraw builds a new one. All methods are safe for
// concurrent use.
//
// A point belongs to the grids that cover it: their interior or their
// boundary, hole boundaries included (PostGIS ST_Covers). Of those, the most
// specific level wins and, within a level, the lowest code, so a point on an
// edge shared by two grids always goes to the same one. Containment is
// decided with exact orientation tests, so "on the edge" means exactly on it
// and two grids sharing an edge never both miss a point near it.
type Index struct {
	grids []indexGrid
	// The prepared geometry lives in flat arrays, so a lookup touches a few
	// contiguous records instead of chasing a pointer per polygon and ring;
	// with 10,000 grids, cache misses are most of the cost.
	polys []indexPolygon
	holes []indexRing
	pts   []orb.Point
	bands []int32
	// One tree of polygons (indexes into polys) per Level.Rank(), 0 for an
	// unknown level, searched from the most specific level down, so the
	// broad parents are tested only for points outside every grid.
	trees [5]rtree.RTreeG[int32]
}

// indexGrid is what a lookup returns for a grid.
type indexGrid struct {
	ref   Ref
	chain []Ref // the grid, then its ancestors present in the index
}

// indexPolygon is one polygon of a grid (multi-part grids have several):
// its bounding box, its exterior ring and the range of its holes.
type indexPolygon struct {
	minX, minY, maxX, maxY float64
	grid                   int32
	order                  int32 // the grid's rank by (code, input position)
	ext                    indexRing
	holeStart, holeEnd     int32 // holes[holeStart:holeEnd]
}

// indexRing is a closed ring, pts[start:end]. Rings with many edges get a
// band index: the ring's y-range cut into nb equal bands, each listing the
// edges that reach into it, so a test reads only the edges near the point's
// latitude. Band b's edges are bands[base+nb+1+bands[base+b] :
// base+nb+1+bands[base+b+1]], edge i running from pts[start+i] to
// pts[start+i+1].
type indexRing struct {
	start, end int32
	base, nb   int32
	minY       float64
	bandScale  float64 // bands per degree
}

// bandThreshold is the number of edges above which a ring gets a band index;
// below it a straight scan is as fast.
const bandThreshold = 16

// NewIndex builds an index over grids. It copies what it keeps, so the
// caller may reuse or change grids afterwards. A grid's ParentID links it to
// the grid with that Ref.ID (the first, if IDs repeat); parents missing from
// grids end the chain there. Polygons with non-finite coordinates or
// without an exterior ring are left out of the lookup.
func NewIndex(grids []IndexedGrid) *Index {
	ix := &Index{grids: make([]indexGrid, len(grids))}

	// Order within a level: lowest code first, ties by input position.
	byCode := make([]int32, len(grids))
	for i := range byCode {
		byCode[i] = int32(i)
	}
	slices.SortStableFunc(byCode, func(a, b int32) int {
		return cmp.Compare(grids[a].Ref.Code, grids[b].Ref.Code)
	})
	order := make([]int32, len(grids))
	for pos, i := range byCode {
		order[i] = int32(pos)
	}

	byID := make(map[int64]int32, len(grids))
	npts := 0
	for i, g := range grids {
		if _, dup := byID[g.Ref.ID]; !dup {
			byID[g.Ref.ID] = int32(i)
		}
		for _, p := range g.Geometry {
			for _, r := range p {
				npts += len(r) + 1
			}
		}
	}
	ix.pts = make([]orb.Point, 0, npts)
	for i, g := range grids {
		ix.grids[i] = indexGrid{ref: g.Ref, chain: ancestry(grids, byID, i)}
		rank := g.Ref.Level.Rank()
		for _, p := range g.Geometry {
			pi, ok := ix.addPolygon(p, int32(i), order[i])
			if !ok {
				continue
			}
			ip := &ix.polys[pi]
			ix.trees[rank].Insert([2]float64{ip.minX, ip.minY}, [2]float64{ip.maxX, ip.maxY}, pi)
		}
	}
	return ix
}

// ancestry returns grid i's Ref followed by those of its ancestors, following
// ParentID while the parent is in the index and stopping at a cycle.
func ancestry(grids []IndexedGrid, byID map[int64]int32, i int) []Ref {
	chain := []Ref{grids[i].Ref}
	seen := []int{i}
	for p := grids[i].ParentID; p != 0; {
		j, ok := byID[p]
		if !ok || slices.Contains(seen, int(j)) {
			break
		}
		chain = append(chain, grids[j].Ref)
		seen = append(seen, int(j))
		p = grids[j].ParentID
	}
	return slices.Clip(chain)
}

// addPolygon copies a polygon into the index, closing its rings, and
// returns its position in polys. It reports false, adding nothing, for a
// polygon that cannot contain anything: no exterior ring, or a coordinate
// that is not finite.
func (ix *Index) addPolygon(p orb.Polygon, grid, order int32) (int32, bool) {
	if len(p) == 0 || len(p[0]) == 0 {
		return 0, false
	}
	for _, r := range p {
		for _, pt := range r {
			if math.IsNaN(pt[0]) || math.IsInf(pt[0], 0) || math.IsNaN(pt[1]) || math.IsInf(pt[1], 0) {
				return 0, false
			}
		}
	}
	ip := indexPolygon{
		minX: math.Inf(1), minY: math.Inf(1), maxX: math.Inf(-1), maxY: math.Inf(-1),
		grid: grid, order: order,
	}
	for _, pt := range p[0] {
		ip.minX, ip.maxX = min(ip.minX, pt[0]), max(ip.maxX, pt[0])
		ip.minY, ip.maxY = min(ip.minY, pt[1]), max(ip.maxY, pt[1])
	}
	ip.ext = ix.addRing(p[0])
	ip.holeStart = int32(len(ix.holes))
	for _, r := range p[1:] {
		if len(r) > 0 {
			ix.holes = append(ix.holes, ix.addRing(r))
		}
	}
	ip.holeEnd = int32(len(ix.holes))
	ix.polys = append(ix.polys, ip)
	return int32(len(ix.polys) - 1), true
}

// addRing copies a non-empty ring into pts, closed, and bands it if it has
// many edges.
func (ix *Index) addRing(r orb.Ring) indexRing {
	ring := indexRing{start: int32(len(ix.pts))}
	ix.pts = append(ix.pts, r...)
	if r[0] != r[len(r)-1] {
		ix.pts = append(ix.pts, r[0])
	}
	ring.end = int32(len(ix.pts))
	pts := ix.pts[ring.start:ring.end]
	edges := len(pts) - 1
	if edges <= bandThreshold {
		return ring
	}
	minY, maxY := pts[0][1], pts[0][1]
	for _, pt := range pts {
		minY, maxY = min(minY, pt[1]), max(maxY, pt[1])
	}
	if maxY <= minY {
		return ring
	}
	nb := edges / 4 // a handful of edges per band on a typical outline
	ring.nb = int32(nb)
	ring.minY = minY
	ring.bandScale = float64(nb) / (maxY - minY)
	ring.base = int32(len(ix.bands))

	starts := make([]int32, nb+1)
	for i := range edges {
		lo, hi := ring.bandsOf(pts[i][1], pts[i+1][1])
		for b := lo; b <= hi; b++ {
			starts[b+1]++
		}
	}
	for b := 1; b <= nb; b++ {
		starts[b] += starts[b-1]
	}
	edgeList := make([]int32, starts[nb])
	fill := slices.Clone(starts[:nb])
	for i := range edges {
		lo, hi := ring.bandsOf(pts[i][1], pts[i+1][1])
		for b := lo; b <= hi; b++ {
			edgeList[fill[b]] = int32(i)
			fill[b]++
		}
	}
	ix.bands = append(ix.bands, starts...)
	ix.bands = append(ix.bands, edgeList...)
	return ring
}

// band returns the band of latitude y, clamped to the ring's bands. It is
// monotonic in y, so an edge spanning y1…y2 is listed in every band a point
// between them can fall in.
func (r *indexRing) band(y float64) int {
	// Compared as floats first: converting an out-of-range float to int is
	// implementation-defined.
	f := (y - r.minY) * r.bandScale
	if !(f > 0) {
		return 0
	}
	if f >= float64(r.nb-1) {
		return int(r.nb - 1)
	}
	return int(f)
}

// bandsOf returns the first and last band an edge between latitudes y1 and
// y2 reaches.
func (r *indexRing) bandsOf(y1, y2 float64) (int, int) {
	return r.band(min(y1, y2)), r.band(max(y1, y2))
}

// classify reports whether (x, y) is strictly inside ring r or on it, by
// counting crossings of the ray towards +x with the half-open rule, which
// counts a ray through a vertex once.
func (ix *Index) classify(r *indexRing, x, y float64) (inside, on bool) {
	pts := ix.pts[r.start:r.end]
	if r.nb == 0 {
		for i := 0; i+1 < len(pts); i++ {
			cross, onEdge := edgeTest(pts[i], pts[i+1], x, y)
			if onEdge {
				return false, true
			}
			inside = inside != cross
		}
		return inside, false
	}
	b := r.band(y)
	starts := ix.bands[r.base : r.base+r.nb+1]
	edges := ix.bands[r.base+r.nb+1:]
	for _, e := range edges[starts[b]:starts[b+1]] {
		cross, onEdge := edgeTest(pts[e], pts[e+1], x, y)
		if onEdge {
			return false, true
		}
		inside = inside != cross
	}
	return inside, false
}

// edgeTest reports whether the edge a→b crosses the ray from (x, y) towards
// +x (half-open in y: an endpoint counts only as the edge's lower end) and
// whether (x, y) lies on the edge.
func edgeTest(a, b orb.Point, x, y float64) (cross, on bool) {
	ax, ay, bx, by := a[0], a[1], b[0], b[1]
	if (ay > y && by > y) || (ay < y && by < y) {
		return false, false
	}
	if ay == by { // horizontal, at the point's latitude
		return false, (ax <= x && x <= bx) || (bx <= x && x <= ax)
	}
	if (ax == x && ay == y) || (bx == x && by == y) {
		return false, true
	}
	if (ay <= y) == (by <= y) {
		// The point is level with the upper end: no crossing, and not on
		// the edge unless it were that end.
		return false, false
	}
	if x < ax && x < bx {
		return true, false
	}
	if x > ax && x > bx {
		return false, false
	}
	o := orient(ax, ay, bx, by, x, y)
	if o == 0 {
		return false, true
	}
	// Left of an upward edge or right of a downward one: the edge passes
	// to the east of the point.
	return (o > 0) == (by > ay), false
}

// covers reports whether polygon p covers (x, y): inside or on the exterior
// ring and not strictly inside a hole.
func (ix *Index) covers(p *indexPolygon, x, y float64) bool {
	if x < p.minX || x > p.maxX || y < p.minY || y > p.maxY {
		return false
	}
	if in, on := ix.classify(&p.ext, x, y); !in && !on {
		return false
	}
	for h := p.holeStart; h < p.holeEnd; h++ {
		if in, _ := ix.classify(&ix.holes[h], x, y); in {
			return false
		}
	}
	return true
}

// find returns the index of the most specific grid covering (lon, lat), or
// -1. It does not allocate.
func (ix *Index) find(lon, lat float64) int32 {
	if math.IsNaN(lon) || math.IsNaN(lat) || math.IsInf(lon, 0) || math.IsInf(lat, 0) {
		return -1
	}
	pt := [2]float64{lon, lat}
	for rank := len(ix.trees) - 1; rank >= 0; rank-- {
		best, bestOrder := int32(-1), int32(math.MaxInt32)
		ix.trees[rank].Search(pt, pt, func(_, _ [2]float64, pi int32) bool {
			p := &ix.polys[pi]
			// Skip grids a lower code (or another part of the same grid)
			// already beats.
			if p.order < bestOrder && ix.covers(p, lon, lat) {
				best, bestOrder = p.grid, p.order
			}
			return true
		})
		if best >= 0 {
			return best
		}
	}
	return -1
}

// Locate returns the chain of grids covering the point, most specific first:
// the grid Assign picks, then its ancestors as far as the index holds them.
// A point in no grid gives an empty, non-nil slice. The slice is the
// caller's.
func (ix *Index) Locate(lon, lat float64) []Ref {
	i := ix.find(lon, lat)
	if i < 0 {
		return []Ref{}
	}
	return slices.Clone(ix.grids[i].chain)
}

// Assign returns the most specific grid covering the point (ties to the
// lowest code) and whether there is one. It does not allocate, for bulk
// assignment of incidents.
func (ix *Index) Assign(lon, lat float64) (Ref, bool) {
	i := ix.find(lon, lat)
	if i < 0 {
		return Ref{}, false
	}
	return ix.grids[i].ref, true
}

// Len returns the number of grids the index was built from.
func (ix *Index) Len() int { return len(ix.grids) }

// OrbMultiPolygon converts a go-geom MultiPolygon to orb, keeping the first
// two ordinates (x = lon, y = lat) of whatever layout it has. Nil gives nil.
func OrbMultiPolygon(mp *geom.MultiPolygon) orb.MultiPolygon {
	if mp == nil {
		return nil
	}
	flat, stride := mp.FlatCoords(), mp.Stride()
	endss := mp.Endss()
	out := make(orb.MultiPolygon, 0, len(endss))
	if stride < 2 {
		return out // no coordinates without a layout
	}
	offset := 0
	for _, ends := range endss {
		poly := make(orb.Polygon, 0, len(ends))
		for _, end := range ends {
			ring := make(orb.Ring, 0, (end-offset)/stride)
			for k := offset; k+1 < end; k += stride {
				ring = append(ring, orb.Point{flat[k], flat[k+1]})
			}
			poly = append(poly, ring)
			offset = end
		}
		out = append(out, poly)
	}
	return out
}

// orient returns the sign of the orientation of the triangle (a, b, c):
// +1 counter-clockwise (c left of a→b), -1 clockwise, 0 collinear. It is
// exact for all finite inputs whose products neither overflow nor
// underflow (any lon/lat): a floating-point filter settles nearly every case
// and the rest are computed exactly (Shewchuk, "Adaptive Precision
// Floating-Point Arithmetic and Fast Robust Geometric Predicates", 1997).
func orient(ax, ay, bx, by, cx, cy float64) int {
	// The explicit conversions keep the compiler from fusing into FMAs,
	// which the error bound below does not account for.
	detLeft := float64((ax - cx) * (by - cy))
	detRight := float64((ay - cy) * (bx - cx))
	det := detLeft - detRight
	var detSum float64
	switch {
	case detLeft > 0:
		if detRight <= 0 {
			return sign(det)
		}
		detSum = detLeft + detRight
	case detLeft < 0:
		if detRight >= 0 {
			return sign(det)
		}
		detSum = -detLeft - detRight
	default:
		return sign(det)
	}
	// ccwerrboundA = (3 + 16ε)ε with ε = 2⁻⁵³.
	const eps = 1.0 / (1 << 53)
	const errBound = (3 + 16*eps) * eps
	if bound := errBound * detSum; det > bound || -det > bound {
		return sign(det)
	}
	return orientExact(ax, ay, bx, by, cx, cy)
}

func sign(x float64) int {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

// orientExact computes the orientation sign exactly: each difference as an
// exact two-term sum, each product of terms as an exact two-term product,
// and the sixteen resulting terms summed into a nonoverlapping expansion
// whose largest component has the sign of the total.
func orientExact(ax, ay, bx, by, cx, cy float64) int {
	acx, acxT := twoDiff(ax, cx)
	bcy, bcyT := twoDiff(by, cy)
	acy, acyT := twoDiff(ay, cy)
	bcx, bcxT := twoDiff(bx, cx)

	var e [16]float64
	n := 0
	add := func(a, b float64, negate bool) {
		p, err := twoProd(a, b)
		if negate {
			p, err = -p, -err
		}
		n = growExpansion(&e, n, err)
		n = growExpansion(&e, n, p)
	}
	add(acx, bcy, false)
	add(acx, bcyT, false)
	add(acxT, bcy, false)
	add(acxT, bcyT, false)
	add(acy, bcx, true)
	add(acy, bcxT, true)
	add(acyT, bcx, true)
	add(acyT, bcxT, true)
	for i := n - 1; i >= 0; i-- {
		if e[i] != 0 {
			return sign(e[i])
		}
	}
	return 0
}

// growExpansion adds b to the nonoverlapping expansion e[:n] (increasing
// magnitude) and drops zero components; it returns the new length.
func growExpansion(e *[16]float64, n int, b float64) int {
	q := b
	m := 0
	for i := range n {
		var h float64
		q, h = twoSum(q, e[i])
		if h != 0 {
			e[m] = h
			m++
		}
	}
	if q != 0 {
		e[m] = q
		m++
	}
	return m
}

// twoSum returns a+b rounded and its exact rounding error (Knuth).
func twoSum(a, b float64) (s, err float64) {
	s = a + b
	bv := s - a
	av := s - bv
	return s, (a - av) + (b - bv)
}

// twoDiff returns a-b rounded and its exact rounding error.
func twoDiff(a, b float64) (d, err float64) {
	return twoSum(a, -b)
}

// twoProd returns a*b rounded and its exact rounding error.
func twoProd(a, b float64) (p, err float64) {
	p = float64(a * b)
	return p, math.FMA(a, b, -p)
}
