// Plain GeoJSON helpers with no browser dependency, so the e2e script can
// import them too (it picks the point to click with interiorPoint).

/** polygonsOf returns the polygons (arrays of rings) of a Polygon or MultiPolygon. */
export function polygonsOf(geometry) {
  if (!geometry) return [];
  if (geometry.type === 'Polygon') return [geometry.coordinates];
  if (geometry.type === 'MultiPolygon') return geometry.coordinates;
  return [];
}

/** pointInRing is the even-odd test of [x, y] against a ring. */
export function pointInRing([x, y], ring) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** pointInGeometry reports whether [x, y] lies inside a Polygon or MultiPolygon (holes respected). */
export function pointInGeometry(pt, geometry) {
  return polygonsOf(geometry).some((poly) => pointInRing(pt, poly[0]) && !poly.slice(1).some((hole) => pointInRing(pt, hole)));
}

/** ringArea is the planar (degree²) area of a ring, always positive. */
export function ringArea(ring) {
  let sum = 0;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    sum += (ring[j][0] - ring[i][0]) * (ring[j][1] + ring[i][1]);
  }
  return Math.abs(sum / 2);
}

/** bboxOf returns [minLon, minLat, maxLon, maxLat] of a geometry, or null if it has no coordinates. */
export function bboxOf(geometry, into = null) {
  const b = into ?? [Infinity, Infinity, -Infinity, -Infinity];
  for (const poly of polygonsOf(geometry)) {
    for (const [x, y] of poly[0] ?? []) {
      if (x < b[0]) b[0] = x;
      if (y < b[1]) b[1] = y;
      if (x > b[2]) b[2] = x;
      if (y > b[3]) b[3] = y;
    }
  }
  return into || Number.isFinite(b[0]) ? b : null;
}

/**
 * interiorPoint returns a [lon, lat] strictly inside the largest polygon of a
 * geometry (holes respected), where a label or a click lands on that grid and
 * not on a neighbour: unlike the centroid, it stays inside L- and C-shapes.
 * It scans a few horizontal lines and takes the middle of the widest inside run.
 */
export function interiorPoint(geometry) {
  const polys = polygonsOf(geometry).filter((p) => p[0]?.length >= 4);
  if (polys.length === 0) return null;
  let poly = polys[0];
  for (const p of polys) if (ringArea(p[0]) > ringArea(poly[0])) poly = p;

  const [minX, minY, maxX, maxY] = bboxOf({ type: 'Polygon', coordinates: poly });
  let best = null;
  let bestScore = -1;
  for (const f of [0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8]) {
    const y = minY + f * (maxY - minY);
    const xs = [];
    for (const ring of poly) {
      for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
        const [x1, y1] = ring[j];
        const [x2, y2] = ring[i];
        if (y1 > y !== y2 > y) xs.push(x1 + ((y - y1) * (x2 - x1)) / (y2 - y1));
      }
    }
    xs.sort((a, b) => a - b);
    for (let k = 0; k + 1 < xs.length; k += 2) {
      // Prefer wide runs near the vertical middle of the shape.
      const score = (xs[k + 1] - xs[k]) * (1 - Math.abs(f - 0.5));
      if (score > bestScore) {
        bestScore = score;
        best = [(xs[k] + xs[k + 1]) / 2, y];
      }
    }
  }
  return best ?? [(minX + maxX) / 2, (minY + maxY) / 2];
}

/** distanceM is the great-circle distance in metres between {lon, lat} points (mean Earth radius). */
export function distanceM(a, b) {
  const R = 6371008.8;
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * R * Math.asin(Math.min(1, Math.sqrt(h)));
}
