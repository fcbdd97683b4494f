// Cameras on the map: one GeoJSON source (CAMERA_SOURCE) holding each camera's
// point and, drawn from zoom 15, its view cone. Points are coloured by status.
//
// Layer ids do not start with "gw-" so that removeGridLayers (a grid reload)
// leaves them alone; the source id does, but is not one that function removes.

import { getJSON } from './api.js';
import { Heard, Loads, withStatus } from './freshness.js';

export const CAMERA_SOURCE = 'gw-cameras';
export const CAMERA_STATUS_COLOR = { online: '#22c55e', connecting: '#f59e0b', offline: '#64748b' };
export const CAMERA_STATUS_LABEL = { online: '在线 online', connecting: '连接中 connecting', offline: '离线 offline' };
const LAYERS = ['cam-cone-fill', 'cam-cone-line', 'cam-point', 'cam-selected'];
const CONE_MINZOOM = 15;

function statusColor() {
  const m = ['match', ['get', 'status']];
  for (const [s, c] of Object.entries(CAMERA_STATUS_COLOR)) m.push(s, c);
  m.push(CAMERA_STATUS_COLOR.offline);
  return m;
}

/** fetchAllCameras follows the pages of GET /api/v1/cameras. */
async function fetchAllCameras() {
  const all = [];
  let cursor = null;
  for (let page = 0; page < 50; page++) {
    const q = new URLSearchParams({ limit: '1000' });
    if (cursor) q.set('cursor', cursor);
    const res = await getJSON(`/api/v1/cameras?${q}`);
    if (Array.isArray(res?.cameras)) all.push(...res.cameras);
    cursor = res?.next ?? null;
    if (!cursor) break;
  }
  return all;
}

export class CameraLayer {
  constructor(map) {
    this.map = map;
    this.byId = new Map();
    this.added = false;
    this.selectedId = null;
    this.redraw = 0;
    // Loads overlap (the first, a camera.online of a camera not held yet, a
    // reconnect): an answer after a later one's is dropped, and statuses
    // events brought while a list was read stand over it.
    this.loads = new Loads();
    this.heard = new Heard();
  }

  /**
   * load fetches every camera the user may see; it returns how many, or
   * null when a later load was drawn first (this one is dropped).
   */
  async load() {
    const t = this.loads.ask();
    try {
      const list = await fetchAllCameras();
      if (!this.loads.take(t)) return null;
      this.heard.forget(t.sent); // the list was read after these
      this.byId = new Map(list.map((c) => [Number(c.id), withStatus(c, this.heard.since(c.id, t.sent))]));
      if (this.added) this.map.getSource(CAMERA_SOURCE)?.setData(this.collection());
      return list.length;
    } finally {
      document.body.dataset.camerasAnswered = String(t.n); // a hook: load n was drawn or dropped
    }
  }

  get(id) {
    return this.byId.get(Number(id));
  }

  /**
   * setStatus applies a camera's new status (a camera.online/offline event):
   * its point and cone take the status colour at the next frame. It returns
   * false for a camera this layer does not hold.
   */
  setStatus(id, { status, reason, since }) {
    if (typeof status !== 'string') return false;
    // A load on its way may have read the list before this: it keeps this status.
    if (this.loads.pending) this.heard.note(id, { status, reason, since });
    const c = this.byId.get(Number(id));
    if (!c) return false;
    this.byId.set(Number(id), withStatus(c, { status, reason, since }));
    if (this.added && !this.redraw) {
      // A burst of events (a switch going down) redraws once.
      this.redraw = requestAnimationFrame(() => {
        this.redraw = 0;
        this.map.getSource(CAMERA_SOURCE)?.setData(this.collection());
      });
    }
    return true;
  }

  collection() {
    const features = [];
    for (const c of this.byId.values()) {
      const props = { id: Number(c.id), code: c.code ?? '', name: c.name ?? '', status: c.status ?? 'offline' };
      if (c.view_cone?.type === 'Polygon' && Array.isArray(c.view_cone.coordinates)) {
        features.push({ type: 'Feature', geometry: c.view_cone, properties: { ...props, cone: true } });
      }
      if (Array.isArray(c.location?.coordinates)) {
        features.push({ type: 'Feature', geometry: c.location, properties: { ...props, cone: false } });
      }
    }
    return { type: 'FeatureCollection', features };
  }

  /** add creates the source and layers on top of everything drawn so far. */
  add() {
    if (this.added) return;
    const map = this.map;
    map.addSource(CAMERA_SOURCE, { type: 'geojson', data: this.collection() });
    const isCone = ['==', ['get', 'cone'], true];
    const isPoint = ['==', ['get', 'cone'], false];
    map.addLayer({
      id: 'cam-cone-fill',
      type: 'fill',
      source: CAMERA_SOURCE,
      minzoom: CONE_MINZOOM,
      filter: isCone,
      paint: { 'fill-color': statusColor(), 'fill-opacity': 0.16 },
    });
    map.addLayer({
      id: 'cam-cone-line',
      type: 'line',
      source: CAMERA_SOURCE,
      minzoom: CONE_MINZOOM,
      filter: isCone,
      layout: { 'line-join': 'round' },
      paint: { 'line-color': statusColor(), 'line-opacity': 0.75, 'line-width': 1.2 },
    });
    map.addLayer({
      id: 'cam-point',
      type: 'circle',
      source: CAMERA_SOURCE,
      filter: isPoint,
      paint: {
        'circle-radius': ['interpolate', ['linear'], ['zoom'], 10, 3.5, 16, 7],
        'circle-color': statusColor(),
        'circle-stroke-color': '#e2e8f0',
        'circle-stroke-width': ['interpolate', ['linear'], ['zoom'], 10, 1, 16, 2],
      },
    });
    map.addLayer({
      id: 'cam-selected',
      type: 'circle',
      source: CAMERA_SOURCE,
      filter: ['all', isPoint, ['==', ['get', 'id'], -1]],
      paint: { 'circle-radius': 13, 'circle-color': 'rgba(0,0,0,0)', 'circle-stroke-color': '#fbbf24', 'circle-stroke-width': 2.5 },
    });
    this.added = true;
    this.select(this.selectedId);
  }

  /** raise keeps the cameras above the grids after these are redrawn. */
  raise() {
    if (!this.added) return;
    for (const id of LAYERS) if (this.map.getLayer(id)) this.map.moveLayer(id);
  }

  select(id) {
    this.selectedId = id === null || id === undefined ? null : Number(id);
    if (!this.added) return;
    this.map.setFilter('cam-selected', ['all', ['==', ['get', 'cone'], false], ['==', ['get', 'id'], this.selectedId ?? -1]]);
  }

  /** hit returns the camera point nearest a screen point, or null. */
  hit(point) {
    if (!this.added) return null;
    const box = [
      [point.x - 6, point.y - 6],
      [point.x + 6, point.y + 6],
    ];
    let best = null;
    let bestD = Infinity;
    for (const f of this.map.queryRenderedFeatures(box, { layers: ['cam-point'] })) {
      const p = this.map.project(f.geometry.coordinates);
      const d = Math.hypot(p.x - point.x, p.y - point.y);
      if (d < bestD) {
        bestD = d;
        best = f;
      }
    }
    return best ? { id: Number(best.properties.id), code: best.properties.code, name: best.properties.name, status: best.properties.status } : null;
  }
}
