// Incidents on the map: one clustered GeoJSON source. At low zoom clusters
// show their counts (red when any case inside is overdue); up close each case
// is a point coloured by status, grey once closed, with a red ring and a
// pulsing halo when overdue, and hollow with a "?" when no grid covers it.
// The halo is a CSS-animated marker over each overdue point drawn (at most
// MAX_PULSES), so the pulse costs the map no repaints.
// Grids can be shaded by their open or overdue count (feature-state on the
// grid source, counted here from the loaded cases): a street or a community
// counts the cases of every area below it, and the level shaded follows the
// zoom (streets at city scale, then communities, then grids).
//
// Layer ids do not start with "gw-" so that removeGridLayers (a grid reload)
// leaves them alone; the choropleth layer is drawn from the grid source, so
// it does, and afterGridsRedrawn adds it again.

import * as maplibregl from 'maplibre-gl';
import { GRID_SOURCE, SHADED_LEVELS, shadeZoomRanges } from './layers.js';
import { OVERDUE_COLOR, STATUS_COLOR, STATUSES, isOpen, overdueNow } from './status.js';
import { serverNow } from './clock.js';

export const INCIDENT_SOURCE = 'incidents';
const LAYERS = ['inc-cluster', 'inc-cluster-count', 'inc-point', 'inc-unassigned', 'inc-selected'];
const MAX_PULSES = 150;
const CLICKABLE = ['inc-cluster', 'inc-point'];
const CHORO = 'gw-choropleth';
const choroLayer = (level) => (level === 'grid' ? CHORO : `${CHORO}-${level}`);
const CHORO_RAMP = {
  open: ['#b45309', '#f59e0b', '#fde68a'],
  overdue: ['#b91c1c', '#ef4444', '#fca5a5'],
};
const CHORO_BASE = '#0a1322'; // grids with no case: the tints fade back so the shading reads

function statusColor() {
  const m = ['match', ['get', 'status']];
  for (const s of STATUSES) m.push(s, STATUS_COLOR[s]);
  m.push('#94a3b8');
  return m;
}

const isCluster = ['has', 'point_count'];

export class IncidentLayer {
  constructor(map, store) {
    this.map = map;
    this.store = store;
    this.added = false;
    this.renderTimer = 0;
    this.selectedId = null;
    this.mode = 'none';
    this.counts = new Map(); // grid id → {open, overdue}, its descendants' cases included
    this.parents = new Map(); // grid id → parent id
    this.levels = new Map(); // grid id → level
    this.shadeRanges = { grid: [0, 24] };
    this.stateIds = new Set();
    this.pulses = new Map(); // incident id → Marker
    try {
      const saved = localStorage.getItem('gw.choropleth');
      if (saved === 'open' || saved === 'overdue') this.mode = saved;
    } catch {
      // storage may be unavailable
    }
    store.subscribe(() => this.render());
    // Cases turn overdue as time passes, without any event.
    setInterval(() => this.render(), 60000);
    // Once drawn (after a move or new data), the halos follow what is shown.
    map.on('idle', () => this.syncPulses());
  }

  /** add creates the source and layers on top of everything drawn so far. */
  add() {
    const map = this.map;
    if (this.added) return;
    map.addSource(INCIDENT_SOURCE, {
      type: 'geojson',
      data: this.collection(),
      cluster: true,
      clusterRadius: 44,
      clusterMaxZoom: 14,
      clusterProperties: {
        overdue: ['+', ['case', ['get', 'overdue'], 1, 0]],
        open: ['+', ['case', ['get', 'open'], 1, 0]],
      },
    });
    map.addLayer({
      id: 'inc-cluster',
      type: 'circle',
      source: INCIDENT_SOURCE,
      filter: isCluster,
      paint: {
        'circle-color': ['case', ['>', ['get', 'overdue'], 0], '#b91c1c', ['>', ['get', 'open'], 0], '#0369a1', '#334155'],
        'circle-radius': ['step', ['get', 'point_count'], 13, 10, 16, 50, 20, 200, 25, 1000, 30],
        'circle-opacity': 0.88,
        'circle-stroke-color': ['case', ['>', ['get', 'overdue'], 0], '#fca5a5', '#7dd3fc'],
        'circle-stroke-width': 2,
        'circle-stroke-opacity': 0.85,
      },
    });
    map.addLayer({
      id: 'inc-cluster-count',
      type: 'symbol',
      source: INCIDENT_SOURCE,
      filter: isCluster,
      layout: {
        'text-field': ['get', 'point_count_abbreviated'],
        'text-font': ['Noto Sans Bold'],
        'text-size': 12,
        'text-allow-overlap': true,
        'text-ignore-placement': true,
      },
      paint: { 'text-color': '#f8fafc' },
    });
    map.addLayer({
      id: 'inc-point',
      type: 'circle',
      source: INCIDENT_SOURCE,
      filter: ['!', isCluster],
      paint: {
        'circle-radius': [
          'interpolate', ['linear'], ['zoom'],
          10, ['case', ['get', 'open'], ['case', ['get', 'urgent'], 5.5, 4.5], 3],
          16, ['case', ['get', 'open'], ['case', ['get', 'urgent'], 9.5, 8], 5.5],
        ],
        'circle-color': statusColor(),
        'circle-opacity': ['case', ['get', 'unassigned'], 0.12, ['get', 'open'], 0.95, 0.6],
        'circle-stroke-color': ['case', ['get', 'overdue'], OVERDUE_COLOR, ['get', 'unassigned'], statusColor(), '#0b1220'],
        'circle-stroke-width': ['case', ['get', 'overdue'], 2.5, ['get', 'unassigned'], 2.5, 1.2],
      },
    });
    map.addLayer({
      id: 'inc-unassigned',
      type: 'symbol',
      source: INCIDENT_SOURCE,
      filter: ['all', ['!', isCluster], ['==', ['get', 'unassigned'], true]],
      minzoom: 12,
      layout: {
        'text-field': '?',
        'text-font': ['Noto Sans Bold'],
        'text-size': 11,
        'text-allow-overlap': true,
        'text-ignore-placement': true,
      },
      paint: { 'text-color': '#f8fafc' },
    });
    map.addLayer({
      id: 'inc-selected',
      type: 'circle',
      source: INCIDENT_SOURCE,
      filter: ['all', ['!', isCluster], ['==', ['get', 'id'], -1]],
      paint: {
        'circle-radius': 14,
        'circle-color': 'rgba(0, 0, 0, 0)',
        'circle-stroke-color': '#fbbf24',
        'circle-stroke-width': 3,
      },
    });
    this.added = true;
    this.addChoropleth();
    this.select(this.selectedId);
    this.render();
  }

  /** setGrids takes the grid index (prepareGrids): the hierarchy the counts roll up and the zooms of each level's shading. */
  setGrids(grids) {
    this.parents = new Map();
    this.levels = new Map();
    for (const [id, f] of grids.byId) {
      const parent = f.properties?.parent_id;
      if (parent !== null && parent !== undefined) this.parents.set(id, Number(parent));
      this.levels.set(id, f.properties?.level);
    }
    this.shadeRanges = shadeZoomRanges(grids);
    for (const l of SHADED_LEVELS) if (this.map.getLayer(choroLayer(l))) this.map.removeLayer(choroLayer(l));
    this.collection();
  }

  /** afterGridsRedrawn keeps the incidents above the redrawn grids and shades them again. */
  afterGridsRedrawn() {
    if (!this.added) return;
    for (const id of LAYERS) if (this.map.getLayer(id)) this.map.moveLayer(id);
    this.stateIds.clear(); // the grid source is new: its feature-state is gone
    this.addChoropleth();
    this.applyCounts();
  }

  addChoropleth() {
    const map = this.map;
    if (!map.getSource(GRID_SOURCE)) return;
    const before = map.getLayer('gw-line-grid') ? 'gw-line-grid' : undefined;
    for (const level of SHADED_LEVELS) {
      const range = this.shadeRanges[level];
      if (!range || map.getLayer(choroLayer(level))) continue;
      map.addLayer(
        { id: choroLayer(level), type: 'fill', source: GRID_SOURCE, minzoom: range[0], maxzoom: range[1], filter: ['==', ['get', 'level'], level], paint: { 'fill-opacity': 0 } },
        before,
      );
    }
    this.paintChoropleth();
  }

  /** setChoropleth shades grids by "open" or "overdue" count, or not at all ("none"). */
  setChoropleth(mode) {
    this.mode = mode === 'open' || mode === 'overdue' ? mode : 'none';
    try {
      localStorage.setItem('gw.choropleth', this.mode);
    } catch {
      // storage may be unavailable
    }
    this.paintChoropleth();
  }

  /** maxCount is the highest count of the current mode over the areas of a level (all levels when none is given). */
  maxCount(level) {
    let max = 0;
    if (this.mode === 'none') return 0;
    for (const [id, c] of this.counts) {
      if (level && (this.levels.get(id) ?? 'grid') !== level) continue;
      max = Math.max(max, c[this.mode]);
    }
    return max;
  }

  paintChoropleth() {
    const map = this.map;
    for (const level of SHADED_LEVELS) {
      const layer = choroLayer(level);
      if (!map.getLayer(layer)) continue;
      if (this.mode === 'none') {
        map.setPaintProperty(layer, 'fill-opacity', 0);
        continue;
      }
      // Each level has its own scale: a street's total would wash out its grids'.
      const n = ['coalesce', ['feature-state', this.mode], 0];
      const max = Math.max(1, this.maxCount(level));
      const [lo, mid, hi] = CHORO_RAMP[this.mode];
      const ramp = max <= 1 ? mid : ['interpolate', ['linear'], n, 1, lo, (1 + max) / 2, mid, max, hi];
      map.setPaintProperty(layer, 'fill-color', ['case', ['>', n, 0], ramp, CHORO_BASE]);
      // Strong at city scale, lighter up close where the points and labels matter.
      const opacity = (hot, cold) => ['case', ['>', n, 0], hot, cold];
      map.setPaintProperty(layer, 'fill-opacity', ['interpolate', ['linear'], ['zoom'], 13, opacity(0.78, 0.7), 17, opacity(0.4, 0.35)]);
    }
  }

  /** applyCounts writes each grid's open/overdue counts into the grid source's feature-state. */
  applyCounts() {
    const map = this.map;
    if (!map.getSource(GRID_SOURCE)) return;
    const next = new Set();
    for (const [id, c] of this.counts) {
      map.setFeatureState({ source: GRID_SOURCE, id }, { open: c.open, overdue: c.overdue });
      next.add(id);
    }
    for (const id of this.stateIds) {
      if (!next.has(id)) map.setFeatureState({ source: GRID_SOURCE, id }, { open: 0, overdue: 0 });
    }
    this.stateIds = next;
    this.paintChoropleth();
  }

  collection() {
    const now = serverNow();
    const features = [];
    const counts = new Map();
    let overdue = 0;
    for (const inc of this.store.all()) {
      const c = inc.location?.coordinates;
      if (!Array.isArray(c) || !Number.isFinite(c[0]) || !Number.isFinite(c[1])) continue;
      const open = isOpen(inc.status);
      const late = overdueNow(inc, now);
      if (late) overdue++;
      features.push({
        type: 'Feature',
        id: Number(inc.id),
        geometry: { type: 'Point', coordinates: [c[0], c[1]] },
        properties: {
          id: Number(inc.id),
          status: inc.status,
          open,
          overdue: late,
          unassigned: !inc.grid,
          urgent: inc.priority === 'urgent' || inc.priority === 'high',
        },
      });
      if (open && inc.grid) {
        // The case counts in its grid and in every area above it.
        const seen = new Set();
        for (let g = Number(inc.grid.id); g !== undefined && !seen.has(g); g = this.parents.get(g)) {
          seen.add(g);
          if (this.levels.size > 0 && !SHADED_LEVELS.includes(this.levels.get(g))) continue;
          const k = counts.get(g) ?? { open: 0, overdue: 0 };
          k.open++;
          if (late) k.overdue++;
          counts.set(g, k);
        }
      }
    }
    this.counts = counts;
    this.overdueShown = overdue;
    return { type: 'FeatureCollection', features };
  }

  /** render redraws the source from the store (debounced: a burst of changes is one redraw). */
  render() {
    if (this.renderTimer) return;
    this.renderTimer = setTimeout(() => {
      this.renderTimer = 0;
      if (!this.added) return;
      this.map.getSource(INCIDENT_SOURCE)?.setData(this.collection());
      this.applyCounts();
    }, 60);
  }

  /** syncPulses puts a pulsing halo on each overdue point drawn now, and removes the others. */
  syncPulses() {
    if (!this.added) return;
    const want = new Map();
    if (this.overdueShown > 0) {
      for (const f of this.map.queryRenderedFeatures({ layers: ['inc-point'] })) {
        if (!f.properties.overdue) continue;
        want.set(Number(f.properties.id), f.geometry.coordinates);
        if (want.size >= MAX_PULSES) break;
      }
    }
    for (const [id, m] of this.pulses) {
      if (!want.has(id)) {
        m.remove();
        this.pulses.delete(id);
      }
    }
    for (const [id, at] of want) {
      const m = this.pulses.get(id);
      if (m) {
        m.setLngLat(at);
        continue;
      }
      // The marker element is positioned with a transform; the ring inside it is animated.
      const holder = document.createElement('div');
      holder.className = 'pulse';
      holder.setAttribute('aria-hidden', 'true');
      holder.append(Object.assign(document.createElement('span'), { className: 'pulse-ring' }));
      this.pulses.set(id, new maplibregl.Marker({ element: holder }).setLngLat(at).addTo(this.map));
    }
  }

  /** select rings one case on the map (null: none). */
  select(id) {
    this.selectedId = id === null || id === undefined ? null : Number(id);
    if (!this.map.getLayer('inc-selected')) return;
    this.map.setFilter('inc-selected', ['all', ['!', isCluster], ['==', ['get', 'id'], this.selectedId ?? -1]]);
  }

  /**
   * hit returns what is under a screen point: {cluster: feature} or
   * {id: incident id} (the nearest point; the newest when they coincide), or null.
   */
  hit(point) {
    if (!this.added) return null;
    const box = [
      [point.x - 5, point.y - 5],
      [point.x + 5, point.y + 5],
    ];
    const found = this.map.queryRenderedFeatures(box, { layers: CLICKABLE.filter((l) => this.map.getLayer(l)) });
    if (found.length === 0) return null;
    let best = null;
    let bestD = Infinity;
    for (const f of found) {
      const p = this.map.project(f.geometry.coordinates);
      const d = Math.hypot(p.x - point.x, p.y - point.y);
      const better = d < bestD - 0.5 || (Math.abs(d - bestD) <= 0.5 && !f.properties.cluster && Number(f.properties.id) > Number(best?.properties.id ?? -1));
      if (better) {
        best = f;
        bestD = d;
      }
    }
    if (best.properties.cluster) return { cluster: best };
    return { id: Number(best.properties.id) };
  }

  /** expand zooms into a cluster until it comes apart. */
  async expand(feature) {
    const src = this.map.getSource(INCIDENT_SOURCE);
    let zoom = this.map.getZoom() + 2;
    try {
      zoom = await src.getClusterExpansionZoom(feature.properties.cluster_id);
    } catch {
      // the cluster is gone (data changed): zoom in a little
    }
    this.map.easeTo({ center: feature.geometry.coordinates, zoom: Math.min(zoom + 0.2, 18), duration: 600 });
  }
}
