// Small MapLibre maps of the field app (the report's position, my grid),
// loaded only when one is first shown: the task list, the first screen,
// does not wait for the map library. Without WebGL (or the library) the
// box says so and every list keeps working.

import { getFresh } from './net.js';

// The map library's worker is the dashboard's file, at the site's root.
const WORKER_URL = new URL('../maplibre-gl-worker.mjs', document.baseURI).href;

let library = null;
let basemap = null;

/** webglAvailable: this browser can draw a MapLibre map. */
export function webglAvailable() {
  try {
    const c = document.createElement('canvas');
    return !!(c.getContext('webgl2') || c.getContext('webgl'));
  } catch {
    return false;
  }
}

/** loadLibrary imports MapLibre once (its own chunk). */
export function loadLibrary() {
  if (!library) {
    library = import('maplibre-gl').then((m) => {
      const ml = m.default ?? m;
      ml.setWorkerUrl(WORKER_URL);
      return ml;
    });
    library.catch(() => {
      library = null; // offline before it was ever cached: try again later
    });
  }
  return library;
}

function offlineStyle() {
  return { version: 8, name: 'Gridwatch field', sources: {}, layers: [{ id: 'bg', type: 'background', paint: { 'background-color': '#0b1526' } }] };
}

// basemapURL is the server's configured basemap style ('' for none), read once.
async function basemapURL() {
  if (basemap === null) {
    try {
      basemap = (await getFresh('/api/v1/meta')).body?.basemap_style_url || '';
    } catch {
      return '';
    }
  }
  return basemap;
}

/**
 * makeMap draws a map in box, framed on bounds ([w, s, e, n]) or at center
 * and zoom. It resolves {map, ml} once the style has loaded, or null (and
 * the box says why) when there can be no map here.
 */
export async function makeMap(box, { bounds = null, center = [113.65, 34.78], zoom = 14, interactive = true } = {}) {
  const fail = (why) => {
    box.dataset.state = 'failed';
    box.textContent = `地图不可用 · Map unavailable (${why}) — 列表仍可使用 · the lists still work`;
    return null;
  };
  if (!webglAvailable()) return fail('WebGL');
  let ml;
  try {
    ml = await loadLibrary();
  } catch {
    return fail('offline');
  }
  const style = await basemapURL();
  let map;
  try {
    map = new ml.Map({
      container: box,
      style: style || offlineStyle(),
      center,
      zoom,
      bounds: bounds ? [[bounds[0], bounds[1]], [bounds[2], bounds[3]]] : undefined,
      fitBoundsOptions: { padding: 24, maxZoom: 17 },
      interactive,
      attributionControl: style ? { compact: true } : false, // the offline style has nothing to attribute
      dragRotate: false,
      pitchWithRotate: false,
      touchPitch: false,
      maxPitch: 0,
      cooperativeGestures: false,
    });
  } catch (err) {
    return fail(err?.message?.includes('WebGL') ? 'WebGL' : 'error');
  }
  box.dataset.state = 'loading';
  if (interactive) map.touchZoomRotate.disableRotation();
  // A basemap that cannot load (offline): the plain dark style instead.
  let fellBack = !style;
  map.on('error', (ev) => {
    if (!fellBack && !map.isStyleLoaded()) {
      fellBack = true;
      map.setStyle(offlineStyle(), { diff: false });
      return;
    }
    console.warn('map:', ev?.error?.message ?? ev);
  });
  await new Promise((resolve) => {
    if (map.isStyleLoaded()) resolve();
    else map.once('load', resolve);
  });
  box.dataset.state = 'ready';
  return { map, ml };
}

/** addGrids draws grid boundaries (a FeatureCollection); the selected grid id brighter. */
export function addGrids(map, fc, selected = 0) {
  const data = fc ?? { type: 'FeatureCollection', features: [] };
  if (map.getSource('grids')) {
    map.getSource('grids').setData(data);
  } else {
    map.addSource('grids', { type: 'geojson', data });
    map.addLayer({ id: 'grid-fill', type: 'fill', source: 'grids', paint: { 'fill-color': '#38bdf8', 'fill-opacity': ['case', ['==', ['get', 'id'], selected], 0.12, 0.04] } });
    map.addLayer({ id: 'grid-line', type: 'line', source: 'grids', paint: { 'line-color': ['case', ['==', ['get', 'id'], selected], '#38bdf8', '#27395a'], 'line-width': ['case', ['==', ['get', 'id'], selected], 2.5, 1.2] } });
  }
  selectGrid(map, selected);
}

/** selectGrid brightens one grid's boundary. */
export function selectGrid(map, selected) {
  if (!map.getLayer('grid-fill')) return;
  map.setPaintProperty('grid-fill', 'fill-opacity', ['case', ['==', ['get', 'id'], selected], 0.12, 0.04]);
  map.setPaintProperty('grid-line', 'line-color', ['case', ['==', ['get', 'id'], selected], '#38bdf8', '#27395a']);
  map.setPaintProperty('grid-line', 'line-width', ['case', ['==', ['get', 'id'], selected], 2.5, 1.2]);
}

/** setDots draws points (features with properties.color) as dots. */
export function setDots(map, id, features) {
  const data = { type: 'FeatureCollection', features };
  if (map.getSource(id)) {
    map.getSource(id).setData(data);
    return;
  }
  map.addSource(id, { type: 'geojson', data });
  map.addLayer({ id, type: 'circle', source: id, paint: { 'circle-radius': 6, 'circle-color': ['coalesce', ['get', 'color'], '#818cf8'], 'circle-stroke-color': '#060c17', 'circle-stroke-width': 2 } });
}
