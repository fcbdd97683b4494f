package geo

import "gridwatch/geo/internal/citygen"

// DemoCity returns a demo grid hierarchy as a GeoJSON FeatureCollection in the
// form the import endpoint takes: Zhengzhou's Jinshui district (金水区,
// 410105), 3 streets, 6 communities and 66 grids, the number of grids of
// Zhengzhou's pilot. Parents come before children. The grids tessellate the
// district exactly: they are cells of one lattice whose vertices are jittered
// (deterministically) so that neighbours share vertices exactly, and each
// street and community is the outline of its cells traced over the same
// vertices, so every parent is exactly the union of its children.
//
// Each grid carries its 1+X+Y team (leader 网格长, volunteers, staff) and a
// population. The geography is plausible, not surveyed; the output is the
// same on every call. The generator is geo/internal/citygen's, which also
// makes the synthetic cities of tests and benchmarks.
func DemoCity() []byte { return citygen.Demo() }
