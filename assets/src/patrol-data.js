// Patrols (巡查) as the dashboard reads them: the answers of the patrol API
// (GET /api/v1/patrols, …/track) and the live feed's patrol.* events turned
// into one small shape, and the arithmetic the map and the card need
// (freshness, durations, distances). Nothing here touches the page.
//
// The readers are lenient on purpose: a position may come as {lon, lat},
// as a GeoJSON Point or Feature, or as [lon, lat]; a time as RFC 3339 or
// epoch seconds/milliseconds. What they return is always the same.

import { distanceM } from './geometry.js';

/** FRESH_MS and STALE_MS bound a member's freshness: a last fix younger than FRESH_MS is fresh, than STALE_MS stale, else lost. */
export const FRESH_MS = 2 * 60 * 1000;
export const STALE_MS = 10 * 60 * 1000;

/** freshness is "fresh", "stale" or "lost" for a last fix at atMs (epoch ms) seen at nowMs; "lost" without one. */
export function freshness(atMs, nowMs = Date.now()) {
  if (!Number.isFinite(atMs)) return 'lost';
  const age = nowMs - atMs;
  if (age < FRESH_MS) return 'fresh'; // a phone's clock a little ahead counts as fresh
  if (age < STALE_MS) return 'stale';
  return 'lost';
}

/** timeMs reads a time (RFC 3339 text, epoch seconds or milliseconds, a Date) as epoch ms, or NaN. */
export function timeMs(v) {
  if (v === null || v === undefined || v === '') return NaN;
  if (v instanceof Date) return v.getTime();
  if (typeof v === 'number') return v > 1e11 ? v : v * 1000;
  if (typeof v === 'string' && /^\d+(\.\d+)?$/.test(v)) return timeMs(Number(v));
  const t = Date.parse(String(v));
  return Number.isNaN(t) ? NaN : t;
}

const first = (...vs) => vs.find((v) => v !== undefined && v !== null);
const num = (v) => (v === null || v === undefined || v === '' ? NaN : Number(v));

/**
 * readPoint reads one position: {lon, lat, at, accuracy} (at in epoch ms,
 * accuracy in metres, NaN when not given), or null when v holds no
 * coordinates. defaults fills at and accuracy from around it.
 */
export function readPoint(v, defaults = {}) {
  if (v === null || v === undefined) return null;
  let lon;
  let lat;
  let props = {};
  if (Array.isArray(v)) {
    [lon, lat] = v;
  } else if (typeof v === 'object') {
    if (v.type === 'Feature') {
      props = v.properties ?? {};
      const c = v.geometry?.type === 'Point' ? v.geometry.coordinates : null;
      if (!c) return null;
      [lon, lat] = c;
    } else if (v.type === 'Point' && Array.isArray(v.coordinates)) {
      [lon, lat] = v.coordinates;
    } else if (v.location && typeof v.location === 'object') {
      return readPoint(v.location, { at: first(v.at, v.t, v.time, v.recorded_at, v.timestamp, defaults.at), accuracy: first(v.accuracy_m, v.accuracy, defaults.accuracy) });
    } else {
      lon = first(v.lon, v.lng, v.longitude);
      lat = first(v.lat, v.latitude);
    }
    props = { ...v, ...props };
  } else {
    return null;
  }
  lon = num(lon);
  lat = num(lat);
  if (!Number.isFinite(lon) || !Number.isFinite(lat)) return null;
  const at = timeMs(first(props.at, props.t, props.time, props.recorded_at, props.timestamp, props.ts, props.fix_at, defaults.at));
  const accuracy = num(first(props.accuracy_m, props.accuracy, props.acc, defaults.accuracy));
  return { lon, lat, at, accuracy };
}

/** gridCount reads "grids covered": a count, or a list of grids. */
function gridCount(p) {
  const v = first(p.grids_covered, p.grids, p.grid_ids, p.grid_codes);
  if (Array.isArray(v)) return v.length;
  const n = num(v);
  return Number.isFinite(n) ? n : NaN;
}

function gridNames(p) {
  const v = first(p.grids, p.grid_codes, Array.isArray(p.grids_covered) ? p.grids_covered : undefined);
  if (!Array.isArray(v)) return [];
  return v.map((g) => (g && typeof g === 'object' ? String(first(g.name, g.code, g.id, '')) : String(g))).filter(Boolean);
}

/**
 * readPatrol reads one patrol of the API (or of an event) as {id, userId,
 * name, username, startedAt, endedAt, distanceM, grids, gridNames, points,
 * last}: times in epoch ms, last the latest position ({lon, lat, at,
 * accuracy}) or null. A field the source leaves out is NaN, '' or null.
 */
export function readPatrol(src) {
  if (!src || typeof src !== 'object') return null;
  // A GeoJSON Feature of a member: the properties are the patrol, the point its last fix.
  const p = src.type === 'Feature' ? { ...(src.properties ?? {}), last_point: src.geometry?.type === 'Point' ? src : undefined, id: first(src.properties?.id, src.id) } : src;
  const user = p.user && typeof p.user === 'object' ? p.user : {};
  const id = num(first(p.patrol_id, p.id));
  const lastAt = first(p.last_at, p.last_fix_at, p.last_seen_at, p.updated_at_fix);
  const lastAcc = first(p.last_accuracy_m, p.accuracy_m);
  let last = readPoint(first(p.last_point, p.last_position, p.last_fix, p.last, p.position, p.point), { at: lastAt, accuracy: lastAcc });
  if (!last && p.last_lon !== undefined) last = readPoint({ lon: p.last_lon, lat: p.last_lat }, { at: lastAt, accuracy: lastAcc });
  if (!last && Array.isArray(p.points) && p.points.length) {
    const pts = p.points.map((x) => readPoint(x)).filter(Boolean);
    last = latest(pts);
  }
  const username = String(first(p.username, user.username, p.user_name, '') ?? '');
  return {
    id,
    userId: num(first(p.user_id, user.id)),
    name: String(first(p.display_name, user.display_name, p.user_display_name, p.name, username, '') ?? ''),
    username,
    startedAt: timeMs(p.started_at),
    endedAt: timeMs(p.ended_at),
    distanceM: num(first(p.distance_m, p.distance)),
    grids: gridCount(p),
    gridNames: gridNames(p),
    points: num(first(p.point_count, p.points_count, Array.isArray(p.points) ? p.points.length : p.points)),
    last,
    // How old the last fix is by the server's clock (whole seconds): the page's clock may be off.
    freshSeconds: num(p.fresh_seconds),
  };
}

/**
 * mergePatrol is patrol cur with the fields p (an event's, or another read's)
 * has: empty ones (NaN, '', null, []) leave cur's; grid names stay cur's (an
 * event names grids by id only); a last fix older than cur's is ignored.
 */
export function mergePatrol(cur, p) {
  if (!cur) return p;
  const next = { ...cur };
  for (const [k, v] of Object.entries(p)) {
    if (k === 'last' || k === 'gridNames' || v === null || v === undefined || v === '' || (typeof v === 'number' && Number.isNaN(v))) continue;
    if (Array.isArray(v) && v.length === 0) continue;
    next[k] = v;
  }
  if (p.last && !(cur.last && p.last.at < cur.last.at)) next.last = p.last;
  return next;
}

/** latest is the point of pts with the latest time (the last one when none has a time). */
export function latest(pts) {
  let best = null;
  for (const pt of pts) {
    if (!pt) continue;
    if (!best || !(pt.at < best.at)) best = pt;
  }
  return best;
}

/** listOf finds the list in an API answer: an array, {patrols}, {items}, {rows} or a FeatureCollection. */
export function listOf(res) {
  if (Array.isArray(res)) return res;
  if (!res || typeof res !== 'object') return [];
  for (const k of ['patrols', 'items', 'rows', 'members', 'data', 'features']) if (Array.isArray(res[k])) return res[k];
  return [];
}

/**
 * trackPoints reads a patrol's track (GET /api/v1/patrols/:id/track, GeoJSON)
 * as its positions in time order: [{lon, lat, at}]. It takes a LineString
 * or MultiLineString (times in properties.times, coordTimes or timestamps,
 * or epoch times as a coordinate's 3rd/4th value), Point features with a
 * time each, or a FeatureCollection of these.
 */
export function trackPoints(gj) {
  const out = [];
  const lineTimes = (props, i, j) => {
    const ts = first(props?.times, props?.coordTimes, props?.timestamps, props?.coordinateProperties?.times, props?.at);
    if (!Array.isArray(ts)) return undefined;
    return j === undefined ? ts[i] : Array.isArray(ts[j]) ? ts[j][i] : undefined;
  };
  const fromCoord = (c, t) => {
    const extra = c.slice(2).find((x) => typeof x === 'number' && x > 1e9);
    const pt = readPoint(c, { at: first(t, extra) });
    if (pt) out.push(pt);
  };
  const visit = (node) => {
    if (!node || typeof node !== 'object') return;
    if (Array.isArray(node)) {
      for (const x of node) visit(x);
      return;
    }
    if (node.type === 'FeatureCollection') {
      for (const f of node.features ?? []) visit(f);
      return;
    }
    const geom = node.type === 'Feature' ? node.geometry : node;
    const props = node.type === 'Feature' ? node.properties ?? {} : {};
    if (!geom) return;
    if (geom.type === 'LineString') (geom.coordinates ?? []).forEach((c, i) => fromCoord(c, lineTimes(props, i)));
    else if (geom.type === 'MultiLineString') (geom.coordinates ?? []).forEach((line, j) => line.forEach((c, i) => fromCoord(c, lineTimes(props, i, j))));
    else if (geom.type === 'Point') {
      const pt = readPoint(node.type === 'Feature' ? node : { type: 'Point', coordinates: geom.coordinates }, { at: lineTimes(props, 0) });
      if (pt) out.push(pt);
    } else if (Array.isArray(node.points)) {
      for (const x of node.points) {
        const pt = readPoint(x);
        if (pt) out.push(pt);
      }
    }
  };
  if (gj && !gj.type && Array.isArray(gj.points)) {
    for (const x of gj.points) {
      const pt = readPoint(x);
      if (pt) out.push(pt);
    }
  } else visit(gj);
  if (out.every((p) => Number.isFinite(p.at))) out.sort((a, b) => a.at - b.at);
  return out;
}

/** metres is the great-circle distance between two {lon, lat} points. */
export const metres = distanceM;

/** formatDistance shows metres as "850 m" or "3.21 km"; "—" for none. */
export function formatDistance(m) {
  if (!Number.isFinite(m)) return '—';
  return m < 1000 ? `${Math.round(m)} m` : `${(m / 1000).toFixed(2)} km`;
}

/** formatDuration shows a span of ms as "2 h 05 min", "12 min 40 s" or "35 s". */
export function formatDuration(ms) {
  if (!Number.isFinite(ms) || ms < 0) return '—';
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h} h ${String(m).padStart(2, '0')} min`;
  if (m > 0) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
  return `${s} s`;
}

/** formatAge shows how long ago atMs was: "刚刚 just now", "40 s 前 ago", "3 min 前 ago", "2 h 前 ago". */
export function formatAge(atMs, nowMs = Date.now()) {
  if (!Number.isFinite(atMs)) return '—';
  const s = Math.max(0, Math.round((nowMs - atMs) / 1000));
  if (s < 5) return '刚刚 just now';
  if (s < 90) return `${s} s 前 ago`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min 前 ago`;
  return `${(s / 3600).toFixed(1)} h 前 ago`;
}

/** clockTime shows epoch ms as local "HH:MM". */
export function clockTime(ms) {
  if (!Number.isFinite(ms)) return '—';
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

/** dayValue is a Date's local day as YYYY-MM-DD (the patrol API's day=). */
export function dayValue(d = new Date()) {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/**
 * TRACK_RAMP colours a track by time, from the day's first fix (0) to its
 * last (1); style.css draws the same ramp under the card's times.
 */
export const TRACK_RAMP = [
  [0, '#2563eb'],
  [0.25, '#06b6d4'],
  [0.5, '#22c55e'],
  [0.75, '#facc15'],
  [1, '#f97316'],
];

/**
 * trackSegments turns tracks ([[{lon, lat, at}]], one per patrol) into a
 * FeatureCollection of two-point LineStrings, each with t in 0..1: where its
 * start falls between the first and the last fix of them all (by position
 * along its own track when times are missing). It returns {fc, from, to}
 * (the times of the ramp's ends, epoch ms or NaN) and bbox.
 */
export function trackSegments(tracks) {
  let from = Infinity;
  let to = -Infinity;
  for (const tr of tracks) {
    for (const p of tr) {
      if (Number.isFinite(p.at)) {
        from = Math.min(from, p.at);
        to = Math.max(to, p.at);
      }
    }
  }
  const timed = Number.isFinite(from) && to > from;
  const features = [];
  const bbox = [Infinity, Infinity, -Infinity, -Infinity];
  tracks.forEach((tr, k) => {
    tr.forEach((p, i) => {
      bbox[0] = Math.min(bbox[0], p.lon);
      bbox[1] = Math.min(bbox[1], p.lat);
      bbox[2] = Math.max(bbox[2], p.lon);
      bbox[3] = Math.max(bbox[3], p.lat);
      if (i === 0) return;
      const a = tr[i - 1];
      const t = timed && Number.isFinite(a.at) ? (a.at - from) / (to - from) : (k + (i - 1) / Math.max(1, tr.length - 1)) / tracks.length;
      features.push({ type: 'Feature', properties: { t: Math.min(1, Math.max(0, t)), track: k }, geometry: { type: 'LineString', coordinates: [[a.lon, a.lat], [p.lon, p.lat]] } });
    });
    if (tr.length) {
      const s = tr[0];
      const e = tr[tr.length - 1];
      features.push({ type: 'Feature', properties: { end: 'start', track: k }, geometry: { type: 'Point', coordinates: [s.lon, s.lat] } });
      features.push({ type: 'Feature', properties: { end: 'end', track: k }, geometry: { type: 'Point', coordinates: [e.lon, e.lat] } });
    }
  });
  return {
    fc: { type: 'FeatureCollection', features },
    from: Number.isFinite(from) ? from : NaN,
    to: Number.isFinite(to) ? to : NaN,
    bbox: Number.isFinite(bbox[0]) ? bbox : null,
  };
}
