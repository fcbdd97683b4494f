// Map style and the grid layers drawn on top of it. Nothing here needs the
// network: the base style is a plain background (no tiles, no sprite, no
// glyphs URL, so MapLibre draws label glyphs locally from system fonts).

import { bboxOf, interiorPoint } from './geometry.js';

/** LEVELS lists grid levels from the most general to the most specific. */
export const LEVELS = ['district', 'street', 'community', 'grid'];

/** LEVEL_RANK orders levels; a higher rank is more specific. */
export const LEVEL_RANK = Object.fromEntries(LEVELS.map((l, i) => [l, i]));

/** LEVEL_CN and LEVEL_EN are the display names of levels. */
export const LEVEL_CN = { district: '区', street: '街道', community: '社区', grid: '网格' };
export const LEVEL_EN = { district: 'District', street: 'Street', community: 'Community', grid: 'Grid' };

/**
 * GRID_TILES is the vector tile source the grids are drawn from
 * (/tiles/grids/{z}/{x}/{y}.mvt?v=<revision>); its features' ids are the
 * grid ids, so feature-state (hover, selection) is keyed by grid id. Its
 * layer inside the tiles is GRID_SOURCE_LAYER.
 */
export const GRID_TILES = 'gw-grid-tiles';
export const GRID_SOURCE_LAYER = 'grids';
/**
 * GRID_SOURCE holds the street, community and grid features as GeoJSON,
 * drawn by nothing here: the incident choropleth shades it by feature-state
 * (each area counting the cases of all the areas below it).
 */
export const GRID_SOURCE = 'gw-grids';
export const LABEL_SOURCE = 'gw-labels';

/** gridFeature names grid id in the tile source, for map.setFeatureState. */
export const gridFeature = (id) => ({ source: GRID_TILES, sourceLayer: GRID_SOURCE_LAYER, id });

/**
 * gridTilesURL is the tile URL template of the grids' TileJSON (from GET
 * /tiles/grids.json): it carries the grid revision as ?v=, so a redraw
 * gives new URLs and the browser may keep each tile for good.
 */
export function gridTilesURL(tileJSON) {
  const url = tileJSON?.tiles?.[0];
  if (typeof url !== 'string' || !url.includes('{z}')) throw new Error('/tiles/grids.json has no tiles URL');
  return url;
}
export const FILL_LAYERS = LEVELS.map((l) => `gw-fill-${l}`);

const COLORS = {
  background: '#060c17',
  graticule: '#0f1d33',
  district: '#38bdf8',
  street: '#818cf8',
  community: '#2dd4bf',
  grid: '#94a3b8',
  hover: '#f1f5f9',
  selected: '#fbbf24',
};

// Subtle per-grid tints, picked by grid id so neighbours usually differ.
const GRID_TINTS = ['#0ea5e9', '#8b5cf6', '#10b981', '#6366f1', '#ec4899', '#3b82f6', '#14b8a6', '#a855f7'];

const LABEL_FONT = {
  district: ['Noto Sans Bold'],
  street: ['Noto Sans Medium'],
  community: ['Noto Sans Regular'],
  grid: ['Noto Sans Regular'],
};

/** baseStyle is the offline dark style used when no basemap_style_url is configured. */
export function baseStyle() {
  return {
    version: 8,
    name: 'Gridwatch dark',
    sources: {},
    layers: [{ id: 'gw-background', type: 'background', paint: { 'background-color': COLORS.background } }],
  };
}

const hovered = ['boolean', ['feature-state', 'hover'], false];
const selected = ['boolean', ['feature-state', 'selected'], false];
const isLevel = (level) => ['==', ['get', 'level'], level];

/**
 * prepareGrids indexes a FeatureCollection: features by id, per-level counts,
 * the overall bbox, and a point collection for labels (one interior point per
 * grid, so a label is drawn once instead of once per tile).
 */
export function prepareGrids(fc) {
  const features = Array.isArray(fc?.features) ? fc.features : [];
  const byId = new Map();
  const counts = { district: 0, street: 0, community: 0, grid: 0 };
  const areas = { district: [], street: [], community: [], grid: [] };
  const bbox = [Infinity, Infinity, -Infinity, -Infinity];
  const labels = [];
  for (const f of features) {
    const p = f.properties ?? {};
    const id = f.id ?? p.id;
    if (id === undefined || id === null) continue;
    byId.set(Number(id), f);
    if (p.level in counts) {
      counts[p.level]++;
      if (p.area_m2 > 0) areas[p.level].push(p.area_m2);
    }
    bboxOf(f.geometry, bbox);
    const at = interiorPoint(f.geometry);
    if (at) {
      labels.push({
        type: 'Feature',
        id: Number(id),
        geometry: { type: 'Point', coordinates: at },
        properties: { id: Number(id), name: p.name ?? '', code: p.code ?? '', level: p.level ?? '' },
      });
    }
  }
  const children = new Map();
  for (const [id, f] of byId) {
    const parent = f.properties?.parent_id;
    if (parent === null || parent === undefined) continue;
    if (!children.has(Number(parent))) children.set(Number(parent), []);
    children.get(Number(parent)).push(id);
  }
  // descendants counts, by level, the areas below a grid in the hierarchy.
  const descendants = (id) => {
    const n = { street: 0, community: 0, grid: 0 };
    const stack = [...(children.get(id) ?? [])];
    const seen = new Set([id]);
    while (stack.length) {
      const c = stack.pop();
      if (seen.has(c)) continue;
      seen.add(c);
      const level = byId.get(c)?.properties?.level;
      if (level in n) n[level]++;
      stack.push(...(children.get(c) ?? []));
    }
    return n;
  };
  return {
    descendants,
    fc: { type: 'FeatureCollection', features },
    labels: { type: 'FeatureCollection', features: labels },
    byId,
    counts,
    total: byId.size,
    bbox: Number.isFinite(bbox[0]) ? bbox : null,
    medianArea: Object.fromEntries(LEVELS.map((l) => [l, median(areas[l])])),
  };
}

function median(xs) {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** zoomForSize is the web-mercator zoom at which `meters` spans `pixels` at latitude `lat`. */
function zoomForSize(meters, pixels, lat) {
  const mPerPxAtZ0 = (40075016.686 * Math.cos((lat * Math.PI) / 180)) / 512;
  return Math.log2((mPerPxAtZ0 * pixels) / meters);
}

/**
 * labelZoomRanges decides when each level's labels show: from the zoom where a
 * typical area of that level is ~110 px wide, until a little after the next
 * level's labels arrive, so the map shows one or two levels of names at a time.
 */
function levelZooms(grids, pixels) {
  const lat = grids.bbox ? (grids.bbox[1] + grids.bbox[3]) / 2 : 0;
  const start = {};
  for (const l of LEVELS) {
    const a = grids.medianArea[l];
    start[l] = a ? Math.max(0, Math.min(22, zoomForSize(Math.sqrt(a), pixels, lat))) : null;
  }
  return start;
}

/** SHADED_LEVELS are the levels the incident choropleth shades, coarsest first. */
export const SHADED_LEVELS = ['street', 'community', 'grid'];

/**
 * shadeZoomRanges gives each shaded level the zooms at which it is the one
 * shaded: a level until the next finer one is readable (its areas ~40 px
 * wide), so one level is shaded at a time and the city view shows streets.
 */
export function shadeZoomRanges(grids) {
  const start = levelZooms(grids, 40);
  const present = SHADED_LEVELS.filter((l) => grids.counts[l] > 0);
  const ranges = {};
  present.forEach((l, i) => {
    const min = i === 0 ? 0 : start[l] ?? 0;
    const next = present[i + 1];
    const max = next ? Math.max(min + 0.5, start[next] ?? 24) : 24;
    ranges[l] = [min, Math.min(24, max)];
  });
  return ranges;
}

function labelZoomRanges(grids) {
  const start = levelZooms(grids, 110);
  const ranges = {};
  for (let i = 0; i < LEVELS.length; i++) {
    const l = LEVELS[i];
    if (start[l] === null) continue;
    const next = LEVELS.slice(i + 1).find((n) => start[n] !== null);
    const min = i === 0 ? 0 : start[l];
    const max = next ? Math.max(min + 1, start[next] + 1.5) : 24;
    ranges[l] = [min, Math.min(24, max)];
  }
  return ranges;
}

/** graticule makes faint lon/lat lines around the data, the "plotting table" backdrop. */
function graticule(bbox) {
  const span = Math.max(bbox[2] - bbox[0], bbox[3] - bbox[1], 1e-3);
  const raw = span / 10;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw);
  const pad = span * 2;
  const x0 = Math.floor((bbox[0] - pad) / step) * step;
  const x1 = Math.ceil((bbox[2] + pad) / step) * step;
  const y0 = Math.max(-85, Math.floor((bbox[1] - pad) / step) * step);
  const y1 = Math.min(85, Math.ceil((bbox[3] + pad) / step) * step);
  const lines = [];
  for (let x = x0; x <= x1 + step / 2; x += step) lines.push([[x, y0], [x, y1]]);
  for (let y = y0; y <= y1 + step / 2; y += step) lines.push([[x0, y], [x1, y]]);
  return { type: 'Feature', properties: {}, geometry: { type: 'MultiLineString', coordinates: lines } };
}

/**
 * addGridLayers adds the grid sources and all their layers on top of the
 * current style: boundaries and fills from the vector tiles at tilesURL,
 * labels from the index's label points.
 */
export function addGridLayers(map, grids, { withGraticule, tilesURL }) {
  if (withGraticule && grids.bbox) {
    map.addSource('gw-graticule', { type: 'geojson', data: graticule(grids.bbox) });
    map.addLayer({
      id: 'gw-graticule',
      type: 'line',
      source: 'gw-graticule',
      paint: { 'line-color': COLORS.graticule, 'line-width': 1 },
    });
  }

  const source = { type: 'vector', tiles: [tilesURL], minzoom: 0, maxzoom: 16 };
  if (grids.bbox) source.bounds = grids.bbox; // no requests for tiles with no grid
  map.addSource(GRID_TILES, source);
  const fineGrids = grids.fc.features.filter((f) => SHADED_LEVELS.includes(f.properties?.level));
  map.addSource(GRID_SOURCE, { type: 'geojson', data: { type: 'FeatureCollection', features: fineGrids }, tolerance: 0.25 });
  map.addSource(LABEL_SOURCE, { type: 'geojson', data: grids.labels });
  const tiled = { source: GRID_TILES, 'source-layer': GRID_SOURCE_LAYER };

  const tint = ['match', ['%', ['to-number', ['id'], 0], GRID_TINTS.length]];
  GRID_TINTS.forEach((c, i) => tint.push(i, c));
  tint.push(GRID_TINTS[0]);

  // Fine levels fade in as they grow to a readable size (typical area ~6 → 16 px
  // wide), so thousands of grids don't turn the city view into a mesh.
  const tiny = levelZooms(grids, 6);
  const readable = levelZooms(grids, 16);
  // fade(level, lo, hi) is `lo` while a level's areas are tiny and `hi` once readable.
  const fade = (level, lo, hi) =>
    (level === 'grid' || level === 'community') && tiny[level] > 0
      ? ['interpolate', ['linear'], ['zoom'], tiny[level], lo, readable[level], hi]
      : hi;

  // Fills, general to specific, so a grid's fill sits over its community's.
  for (const level of LEVELS) {
    const fine = level === 'grid';
    map.addLayer({
      id: `gw-fill-${level}`,
      type: 'fill',
      ...tiled,
      filter: isLevel(level),
      paint: {
        'fill-color': fine ? tint : COLORS[level],
        'fill-opacity': fade(
          level,
          ['case', selected, fine ? 0.55 : 0.22, hovered, fine ? 0.42 : 0.14, 0],
          ['case', selected, fine ? 0.55 : 0.22, hovered, fine ? 0.42 : 0.14, fine ? 0.2 : 0.025],
        ),
      },
    });
  }

  // Outlines, specific to general, so district borders stay on top.
  const outline = {
    grid: { color: COLORS.grid, opacity: 0.5, width: ['interpolate', ['linear'], ['zoom'], 11, 0.3, 16, 1.2] },
    community: { color: COLORS.community, opacity: 0.85, width: ['interpolate', ['linear'], ['zoom'], 10, 0.5, 16, 1.8] },
    street: { color: COLORS.street, opacity: 0.95, width: ['interpolate', ['linear'], ['zoom'], 9, 0.8, 16, 2.6] },
    district: { color: COLORS.district, opacity: 1, width: ['interpolate', ['linear'], ['zoom'], 8, 1.6, 16, 4] },
  };
  map.addLayer({
    id: 'gw-glow-district',
    type: 'line',
    ...tiled,
    filter: isLevel('district'),
    layout: { 'line-join': 'round' },
    paint: { 'line-color': COLORS.district, 'line-opacity': 0.28, 'line-blur': 5, 'line-width': ['interpolate', ['linear'], ['zoom'], 8, 6, 16, 14] },
  });
  for (const level of [...LEVELS].reverse()) {
    const o = outline[level];
    map.addLayer({
      id: `gw-line-${level}`,
      type: 'line',
      ...tiled,
      filter: isLevel(level),
      layout: { 'line-join': 'round' },
      paint: { 'line-color': o.color, 'line-opacity': fade(level, 0, o.opacity), 'line-width': o.width },
    });
  }

  // The hovered grid's outline, the selected grid's glow and line: all there, shown by feature state.
  const marks = [
    ['gw-hover-line', COLORS.hover, { 'line-width': 2, 'line-opacity': ['case', hovered, 0.95, 0] }],
    ['gw-selected-glow', COLORS.selected, { 'line-width': 10, 'line-blur': 6, 'line-opacity': ['case', selected, 0.55, 0] }],
    ['gw-selected-line', COLORS.selected, { 'line-width': 2.5, 'line-opacity': ['case', selected, 1, 0] }],
  ];
  for (const [id, color, paint] of marks) {
    map.addLayer({ id, type: 'line', ...tiled, layout: { 'line-join': 'round' }, paint: { 'line-color': color, ...paint } });
  }

  // Labels: finest first so the general names above them win label collisions.
  const ranges = labelZoomRanges(grids);
  const labelStyle = {
    grid: { size: 11.5, color: '#e2e8f0', spacing: 0 },
    community: { size: 12.5, color: '#99f6e4', spacing: 0.02 },
    street: { size: 14, color: '#c7d2fe', spacing: 0.06 },
    district: { size: 17, color: '#e0f2fe', spacing: 0.15 },
  };
  for (const level of [...LEVELS].reverse()) {
    if (!ranges[level]) continue;
    const s = labelStyle[level];
    map.addLayer({
      id: `gw-label-${level}`,
      type: 'symbol',
      source: LABEL_SOURCE,
      filter: isLevel(level),
      minzoom: ranges[level][0],
      maxzoom: ranges[level][1],
      layout: {
        'text-field': ['get', 'name'],
        'text-font': LABEL_FONT[level],
        'text-size': s.size,
        'text-letter-spacing': s.spacing,
        'text-max-width': 8,
        'text-padding': 3,
        'text-allow-overlap': false,
      },
      paint: {
        'text-color': s.color,
        'text-halo-color': 'rgba(3, 7, 16, 0.92)',
        'text-halo-width': 1.6,
        'text-halo-blur': 0.4,
      },
    });
  }
}

/** removeGridLayers removes what addGridLayers added, so the grids can be drawn afresh. */
export function removeGridLayers(map) {
  for (const layer of map.getStyle().layers) {
    if (layer.id.startsWith('gw-') && layer.id !== 'gw-background') map.removeLayer(layer.id);
  }
  for (const id of [GRID_TILES, GRID_SOURCE, LABEL_SOURCE, 'gw-graticule']) {
    if (map.getSource(id)) map.removeSource(id);
  }
}

/**
 * pickGrid returns the most specific grid under a screen point (grid >
 * community > street > district) as { id, properties }, the properties from
 * the index grids (prepareGrids'): a zoomed-out tile leaves out small grids'
 * names.
 */
export function pickGrid(map, grids, point) {
  if (!grids) return null;
  let best = null;
  for (const f of map.queryRenderedFeatures(point, { layers: FILL_LAYERS })) {
    if (f.id === undefined) continue;
    if (!best || (LEVEL_RANK[f.properties.level] ?? -1) > (LEVEL_RANK[best.properties.level] ?? -1)) best = f;
  }
  if (!best) return null;
  const id = Number(best.id);
  return { id, properties: grids.byId.get(id)?.properties ?? best.properties };
}

/** gridLabel names grid id by its level and name ("网格 …") from the index grids, or ''. */
export function gridLabel(grids, id) {
  if (id === null || id === undefined) return '';
  const f = grids?.byId.get(Number(id));
  return f ? `${LEVEL_CN[f.properties.level] ?? ''} ${f.properties.name ?? ''}`.trim() : '';
}

/** withinGrid reports whether grid id lies in ancestor's subtree (or is it), by the index grids. */
export function withinGrid(grids, id, ancestor) {
  let cur = grids?.byId.get(Number(id));
  for (let hops = 0; cur && hops < 16; hops++) {
    if (Number(cur.id ?? cur.properties.id) === Number(ancestor)) return true;
    const parent = cur.properties?.parent_id;
    cur = parent === null || parent === undefined ? null : grids.byId.get(Number(parent));
  }
  return false;
}

/** gridOptions lists the grid-level areas of the index grids as {id, code, name}, by code. */
export function gridOptions(grids) {
  if (!grids) return [];
  return [...grids.byId.values()]
    .filter((f) => f.properties?.level === 'grid')
    .map((f) => ({ id: Number(f.id ?? f.properties.id), code: String(f.properties.code ?? ''), name: String(f.properties.name ?? '') }))
    .sort((a, b) => a.code.localeCompare(b.code));
}
