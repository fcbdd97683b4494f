// "巡查 Patrols" on the map (patrols.read): every member on an active patrol
// as a marker at their last fix, coloured by its freshness (< 2 min fresh,
// < 10 min stale, older lost) and labelled with their name; and, for the
// card, one member's tracks of a day as lines coloured by time.
//
// The members come from GET /api/v1/patrols?active=true, read again now and
// then (REFRESH_MS) and on the live feed's patrol.started / patrol.ended;
// patrol.position moves a marker as it arrives. Markers are DOM buttons
// (a few dozen members at most): a click, a tap or Enter opens the card.
//
// Test hooks: document.body.dataset.patrolsLoaded (members after the first
// load), .patrol-marker[data-patrol-id][data-user-id][data-freshness]
// [data-lon][data-lat], window.gridwatchPatrols (see main.js), and the
// layer's reads: how many times the list was read, by cause (first, timer,
// event, shown, poll, api).

import * as maplibregl from 'maplibre-gl';
import { ApiError, getJSON } from './api.js';
import { TRACK_RAMP, freshness, latest, listOf, mergePatrol, readPatrol, readPoint, trackSegments } from './patrol-data.js';

/** REFRESH_MS is how often the active patrols are read again, events or not. */
export const REFRESH_MS = 30000;
/** RECOLOUR_MS is how often the markers' freshness is looked at again. */
const RECOLOUR_MS = 10000;
/** ENDED_KEPT is how many patrols that left the map are remembered (the card of one stays open). */
const ENDED_KEPT = 50;

export const TRACK_SOURCE = 'gw-patrol-tracks';
// Layer ids do not start with "gw-": a grid reload (removeGridLayers) leaves them alone.
const TRACK_LAYERS = ['patrol-track-casing', 'patrol-track-line', 'patrol-track-ends'];

/** browserZone is the page's IANA time zone: days and months are cut there. */
export function browserZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || '';
}

/** fetchPatrols follows the pages of GET /api/v1/patrols?params (an object) and returns the raw patrols. */
export async function fetchPatrols(params) {
  const all = [];
  let cursor = null;
  for (let page = 0; page < 20; page++) {
    const q = new URLSearchParams({ ...params, limit: '1000' });
    if (cursor) q.set('cursor', cursor);
    const res = await getJSON(`/api/v1/patrols?${q}`);
    all.push(...listOf(res));
    cursor = res?.next ?? null;
    if (!cursor) break;
  }
  return all;
}

/** rampColor is the MapLibre expression of TRACK_RAMP over the property t. */
function rampColor() {
  const e = ['interpolate', ['linear'], ['get', 't']];
  for (const [t, c] of TRACK_RAMP) e.push(t, c);
  return e;
}

function initial(name) {
  const s = String(name ?? '').trim();
  return s ? [...s][0].toUpperCase() : '?';
}

export class PatrolLayer {
  /** onOpen(patrolId) is called when a member's marker is chosen; onError(err, context). */
  constructor(map, { onOpen = () => {}, onError = () => {} } = {}) {
    Object.assign(this, { map, onOpen, onError });
    this.members = new Map(); // patrol id → {patrol, marker, node}
    this.visible = true;
    this.started = false;
    this.selectedId = null;
    this.loadSeq = 0;
    this.refreshTimer = 0;
    this.recolourTimer = 0;
    this.soonTimer = 0;
    this.timersOn = false; // the re-reads run (paused while the layer is hidden)
    this.reads = {}; // cause → how many times the list was read
    this.gone = new Map(); // patrol id → the patrol as it left the map (with its end, when an event told it)
    this.listeners = new Set();
    this.tracksShown = false;
    this.skew = 0; // ms the page's clock runs ahead of the server's (see refresh)
  }

  /** now is the time by the server's clock, as well as the page can tell: freshness is the server's word. */
  now() {
    return Date.now() - this.skew;
  }

  /**
   * start loads the members and keeps them current. A server without
   * patrols (no route, or none configured) leaves the layer out quietly.
   */
  async start() {
    if (this.started) return;
    this.started = true;
    try {
      await this.refresh({ throwErrors: true, cause: 'first' });
    } catch (err) {
      if (err instanceof ApiError && [404, 501, 503].includes(err.status)) {
        console.info('patrols are not available on this server:', err.message);
        this.started = false;
        document.querySelector('#legend-patrols')?.setAttribute('hidden', '');
        return;
      }
      // Any other failure (the network, a 500) may pass: the re-reads and the events go on.
      this.startTimers();
      throw err;
    } finally {
      document.body.dataset.patrolsLoaded = String(this.members.size);
    }
    this.startTimers();
  }

  /** startTimers starts the re-reads (unless the layer is hidden) and the recolouring, once. */
  startTimers() {
    this.timersOn = true;
    if (!this.refreshTimer && this.visible) this.refreshTimer = setInterval(() => this.refresh({ cause: 'timer' }), REFRESH_MS);
    if (!this.recolourTimer) this.recolourTimer = setInterval(() => this.recolour(), RECOLOUR_MS);
  }

  /** subscribe calls fn(patrolId) whenever a member's data changes (the card follows it). */
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  changed(id) {
    for (const fn of this.listeners) fn(id);
  }

  get(id) {
    return this.members.get(Number(id))?.patrol ?? null;
  }

  /** list is every member on the map: their patrols. */
  list() {
    return [...this.members.values()].map((m) => m.patrol);
  }

  /** refresh reads the active patrols again and redraws the markers. */
  async refresh({ throwErrors = false, cause = 'other' } = {}) {
    this.reads[cause] = (this.reads[cause] ?? 0) + 1;
    const seq = ++this.loadSeq;
    let res;
    try {
      res = await fetchPatrols({ active: 'true' });
    } catch (err) {
      if (throwErrors) throw err;
      console.warn('patrols', err);
      return;
    }
    if (seq !== this.loadSeq) return;
    const seen = new Set();
    const skews = [];
    for (const raw of listOf(res)) {
      const p = readPatrol(raw);
      if (!p || !(p.id > 0) || Number.isFinite(p.endedAt)) continue;
      seen.add(p.id);
      if (p.last && Number.isFinite(p.last.at) && Number.isFinite(p.freshSeconds)) skews.push(Date.now() - p.freshSeconds * 1000 - p.last.at);
      this.upsert(p, { replace: true });
    }
    for (const id of [...this.members.keys()]) if (!seen.has(id)) this.remove(id);
    if (skews.length) {
      // The server says how old each fix is in whole seconds: a skew under a few seconds is that rounding, or the trip.
      const s = skews.sort((a, b) => a - b)[Math.floor(skews.length / 2)];
      this.skew = Math.abs(s) < 5000 ? 0 : s;
      this.recolour();
    }
    this.count();
  }

  /** refreshSoon reads the list again shortly, once however many events ask for it. */
  refreshSoon(ms = 400) {
    clearTimeout(this.soonTimer);
    this.soonTimer = setTimeout(() => this.refresh({ cause: 'event' }), ms);
  }

  /**
   * upsert puts patrol p on the map. With replace, p is the whole patrol as
   * the list reads it; otherwise only the fields p has are taken (an event),
   * and a position older than the one shown is ignored.
   */
  upsert(p, { replace = false } = {}) {
    const cur = this.members.get(p.id);
    let next;
    if (!cur) next = p;
    else if (replace) {
      // The list may lag behind a position the live feed brought: keep the newer fix.
      const keep = cur.patrol.last && p.last && cur.patrol.last.at > p.last.at ? cur.patrol.last : p.last ?? cur.patrol.last;
      next = { ...p, last: keep };
    } else next = mergePatrol(cur.patrol, p);
    if (!cur) {
      this.gone.delete(p.id);
      this.members.set(p.id, { patrol: next, marker: null, node: null });
    }
    else cur.patrol = next;
    this.draw(p.id);
    this.changed(p.id);
  }

  /** remove takes patrol id off the map; final is the patrol as it ended (by default as last shown), kept for ended(id). */
  remove(id, final = null) {
    const m = this.members.get(id);
    if (!m) return;
    m.marker?.remove();
    this.members.delete(id);
    this.remember(id, final ?? m.patrol);
    this.changed(id);
  }

  /** remember keeps p as patrol id left the map (the last ENDED_KEPT of them). */
  remember(id, p) {
    this.gone.delete(id);
    this.gone.set(id, p);
    while (this.gone.size > ENDED_KEPT) this.gone.delete(this.gone.keys().next().value);
  }

  /** ended is patrol id as it left the map (null if it is on it, or unknown): its end and figures when the live feed told them. */
  ended(id) {
    const n = Number(id);
    return this.members.has(n) ? null : this.gone.get(n) ?? null;
  }

  /** draw places (or moves) the marker of patrol id. */
  draw(id) {
    const m = this.members.get(id);
    if (!m) return;
    const p = m.patrol;
    if (!p.last) {
      m.marker?.remove();
      m.marker = null;
      return;
    }
    if (!m.node) {
      const node = document.createElement('button');
      node.type = 'button';
      node.className = 'patrol-marker';
      const pin = document.createElement('span');
      pin.className = 'patrol-pin';
      pin.setAttribute('aria-hidden', 'true');
      const name = document.createElement('span');
      name.className = 'patrol-name';
      node.append(pin, name);
      node.addEventListener('click', (ev) => {
        ev.stopPropagation(); // not a click on the map under it
        this.onOpen(id);
      });
      m.node = node;
    }
    const node = m.node;
    const fresh = freshness(p.last.at, this.now());
    node.dataset.patrolId = String(p.id);
    node.dataset.userId = Number.isFinite(p.userId) ? String(p.userId) : '';
    node.dataset.freshness = fresh;
    node.dataset.lon = String(p.last.lon);
    node.dataset.lat = String(p.last.lat);
    node.dataset.at = Number.isFinite(p.last.at) ? new Date(p.last.at).toISOString() : '';
    node.setAttribute('aria-pressed', String(this.selectedId === id));
    node.setAttribute('aria-label', `巡查 Patrol: ${p.name || p.username || `#${p.id}`}`);
    node.querySelector('.patrol-pin').textContent = initial(p.name || p.username);
    node.querySelector('.patrol-name').textContent = p.name || p.username || `#${p.id}`;
    if (!m.marker) {
      m.marker = new maplibregl.Marker({ element: node, anchor: 'left', offset: [-11, 0] }).setLngLat([p.last.lon, p.last.lat]);
      if (this.visible) m.marker.addTo(this.map);
    } else m.marker.setLngLat([p.last.lon, p.last.lat]);
  }

  /** recolour brings every marker's freshness up to date (time passes without events). */
  recolour() {
    for (const m of this.members.values()) {
      if (m.node && m.patrol.last) m.node.dataset.freshness = freshness(m.patrol.last.at, this.now());
    }
  }

  count() {
    const c = document.querySelector('#patrol-count');
    if (!c) return;
    c.textContent = String(this.members.size);
    c.dataset.n = String(this.members.size);
  }

  /** select marks the member whose card is open (null: none). */
  select(id) {
    this.selectedId = id === null || id === undefined ? null : Number(id);
    for (const [pid, m] of this.members) m.node?.setAttribute('aria-pressed', String(pid === this.selectedId));
  }

  /** setVisible shows or hides the layer: the markers and any tracks drawn. */
  setVisible(on) {
    const was = this.visible;
    this.visible = !!on;
    // No re-reads for a hidden layer (the events still keep it current); shown again, it is read once.
    if (!this.visible) {
      clearInterval(this.refreshTimer);
      this.refreshTimer = 0;
    } else if (!was && this.timersOn) {
      this.refresh({ cause: 'shown' });
      this.startTimers();
    }
    for (const m of this.members.values()) {
      if (!m.marker) continue;
      if (this.visible) m.marker.addTo(this.map);
      else m.marker.remove();
    }
    if (this.map.getLayer(TRACK_LAYERS[0])) {
      for (const id of TRACK_LAYERS) this.map.setLayoutProperty(id, 'visibility', this.visible ? 'visible' : 'none');
    }
  }

  /**
   * onEvent applies patrol.started / patrol.position / patrol.ended. A
   * position names its patrol and carries the fix (or a batch of fixes: the
   * latest counts); a patrol the map does not hold yet, and a start or an
   * end, make the list be read again.
   */
  onEvent(type, data) {
    if (!this.started || !data || typeof data !== 'object') return;
    const nested = data.patrol && typeof data.patrol === 'object' ? data.patrol : null;
    const p = readPatrol(nested ? { ...nested, ...data, patrol: undefined, id: first(data.patrol_id, nested.id, data.id) } : data);
    if (type === 'patrol.ended') {
      if (p?.id > 0) {
        // The event carries the end and the final figures: the card of the patrol shows them.
        const cur = this.members.get(p.id)?.patrol ?? this.gone.get(p.id);
        const final = mergePatrol(cur, p);
        if (this.members.has(p.id)) this.remove(p.id, final);
        else if (cur) {
          this.remember(p.id, final);
          this.changed(p.id);
        }
      }
      this.count();
      this.refreshSoon();
      return;
    }
    if (type === 'patrol.position' && p?.id > 0 && this.members.has(p.id)) {
      let fix = p.last ?? readPoint(data);
      if (Array.isArray(data.points)) fix = latest(data.points.map((x) => readPoint(x))) ?? fix;
      if (!fix) {
        this.refreshSoon();
        return;
      }
      this.upsert({ ...p, last: fix });
      return;
    }
    if (type === 'patrol.started' || type === 'patrol.position') this.refreshSoon(type === 'patrol.started' ? 200 : 400);
  }

  // ---- tracks -----------------------------------------------------------------------

  /**
   * showTracks draws tracks ([[{lon, lat, at}]]) coloured by time, at once
   * (the card opens after the map's load; map.isStyleLoaded() is no guard:
   * it is false while tiles load or a source is being updated); it returns
   * trackSegments' {from, to, bbox}, or throws when the map cannot take them.
   */
  showTracks(tracks) {
    const seg = trackSegments(tracks);
    const src = this.map.getSource(TRACK_SOURCE);
    if (src) src.setData(seg.fc);
    else {
      this.map.addSource(TRACK_SOURCE, { type: 'geojson', data: seg.fc });
      const lines = ['==', ['geometry-type'], 'LineString'];
      this.map.addLayer({ id: 'patrol-track-casing', type: 'line', source: TRACK_SOURCE, filter: lines, layout: { 'line-join': 'round', 'line-cap': 'round' }, paint: { 'line-color': '#020617', 'line-width': 7, 'line-opacity': 0.75 } });
      this.map.addLayer({ id: 'patrol-track-line', type: 'line', source: TRACK_SOURCE, filter: lines, layout: { 'line-join': 'round', 'line-cap': 'round' }, paint: { 'line-color': rampColor(), 'line-width': 4 } });
      this.map.addLayer({
        id: 'patrol-track-ends',
        type: 'circle',
        source: TRACK_SOURCE,
        filter: ['==', ['geometry-type'], 'Point'],
        paint: { 'circle-radius': 5, 'circle-color': ['match', ['get', 'end'], 'start', TRACK_RAMP[0][1], TRACK_RAMP[TRACK_RAMP.length - 1][1]], 'circle-stroke-color': '#f8fafc', 'circle-stroke-width': 2 },
      });
    }
    for (const id of TRACK_LAYERS) this.map.setLayoutProperty(id, 'visibility', this.visible ? 'visible' : 'none');
    this.tracksShown = seg.fc.features.length > 0;
    document.body.dataset.patrolTracks = String(seg.fc.features.filter((f) => f.geometry.type === 'LineString').length);
    return seg;
  }

  clearTracks() {
    this.map.getSource(TRACK_SOURCE)?.setData({ type: 'FeatureCollection', features: [] });
    this.tracksShown = false;
    delete document.body.dataset.patrolTracks;
  }

  /** raise keeps the tracks above the grids after these are redrawn. */
  raise() {
    for (const id of TRACK_LAYERS) if (this.map.getLayer(id)) this.map.moveLayer(id);
  }
}

function first(...vs) {
  return vs.find((v) => v !== undefined && v !== null);
}
