package ogc

// Features: the geometries of the items, in the requested CRS's axis order.

import (
	"strconv"

	"github.com/twpayne/go-geom"

	"gridwatch/api/httpapi"
)

func pointGeometry(crs ogcCRS, lon, lat float64) *ogcGeometry {
	x, y := crs.out(lon, lat)
	return &ogcGeometry{Type: "Point", Coordinates: [2]float64{x, y}}
}

func multiPolygonGeometry(crs ogcCRS, mp *geom.MultiPolygon) *ogcGeometry {
	if mp == nil {
		return nil
	}
	polys := make([][][][2]float64, mp.NumPolygons())
	for i := range polys {
		p := mp.Polygon(i)
		rings := make([][][2]float64, p.NumLinearRings())
		for j := range rings {
			lr := p.LinearRing(j)
			pts := make([][2]float64, lr.NumCoords())
			for k := range pts {
				co := lr.Coord(k)
				pts[k][0], pts[k][1] = crs.out(co.X(), co.Y())
			}
			rings[j] = pts
		}
		polys[i] = rings
	}
	return &ogcGeometry{Type: "MultiPolygon", Coordinates: polys}
}

// Grids.

// pageOf is one page of items: matched is how many match in all, list and
// next the page a store returned, feature what makes an item of each.
func pageOf[T any](matched int64, list []T, next int64, crs ogcCRS, feature func(*T, ogcCRS) ogcFeature) ogcPage {
	page := ogcPage{matched: matched, next: next, features: make([]ogcFeature, len(list))}
	for i := range list {
		page.features[i] = feature(&list[i], crs)
	}
	return page
}

// gridIDProp reads the grid_id queryable (incidents, cameras): 0 when
// absent.
func gridIDProp(q ogcQuery) (int64, error) {
	g := q.props["grid_id"]
	if g == "" {
		return 0, nil
	}
	id, err := strconv.ParseInt(g, 10, 64)
	if err != nil || id <= 0 {
		return 0, httpapi.ParamError("grid_id", g, "want a grid id")
	}
	return id, nil
}
