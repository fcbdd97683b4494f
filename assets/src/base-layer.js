// Buildings and city components on the map (base.read), from the vector
// tiles /tiles/buildings and /tiles/components (their TileJSON gives the
// URL and zooms; the server narrows them to the user's grids): footprints
// filled lightly, buildings without one as small squares of a point, and
// components as dots coloured by state — damaged and lost larger, with a
// halo. Both show from zoom MIN_ZOOM, each switched on and off in the legend
// ("基础数据 Base data"). A parcel chosen in the grid panel is outlined here
// too (a GeoJSON source of that one parcel).
//
// Layer ids start with "base-", not "gw-": a grid reload (removeGridLayers)
// leaves them alone; raise() puts them back above the redrawn grids, and
// add() slips them in under the cameras, cases and patrols.
//
// Test hooks: document.body.dataset.baseLayers ("buildings components" as
// added, "none" when the server has neither), and the legend's
// #base-toggle-buildings / #base-toggle-components [aria-pressed].

import { ApiError, getJSON } from './api.js';
import { COMPONENT_STATE_COLOR } from './base-data.js';
import { el } from './dom.js';

export const BUILDING_SOURCE = 'base-buildings';
export const COMPONENT_SOURCE = 'base-components';
export const PARCEL_SOURCE = 'base-parcel';
/** MIN_ZOOM is the zoom from which buildings and components are drawn. */
export const MIN_ZOOM = 14;

const LAYERS = {
  buildings: ['base-bld-fill', 'base-bld-line', 'base-bld-point', 'base-bld-selected'],
  components: ['base-cmp-halo', 'base-cmp-point', 'base-cmp-selected'],
  parcel: ['base-parcel-fill', 'base-parcel-line'],
};
const BUILDING_COLOR = '#cbd5e1';
const SELECTED_COLOR = '#fbbf24';
const PARCEL_COLOR = '#facc15';

const isPolygon = ['match', ['geometry-type'], ['Polygon', 'MultiPolygon'], true, false];
const isPoint = ['match', ['geometry-type'], ['Point', 'MultiPoint'], true, false];
// A feature's id: the tile's feature id, or an id property.
const featureId = ['coalesce', ['id'], ['get', 'id'], -1];
const alerting = ['match', ['get', 'state'], ['damaged', 'lost'], true, false];

function stateColor() {
  const m = ['match', ['get', 'state']];
  for (const [s, c] of Object.entries(COMPONENT_STATE_COLOR)) m.push(s, c);
  m.push(COMPONENT_STATE_COLOR.intact);
  return m;
}

/** tileSource is the MapLibre source of a layer's TileJSON (GET /tiles/{layer}.json). */
function tileSource(tj, name) {
  const url = tj?.tiles?.[0];
  if (typeof url !== 'string' || !url.includes('{z}')) throw new Error(`/tiles/${name}.json has no tiles URL`);
  const src = { type: 'vector', tiles: [url], minzoom: Number.isFinite(tj.minzoom) ? tj.minzoom : 0, maxzoom: Number.isFinite(tj.maxzoom) ? tj.maxzoom : 16 };
  if (Array.isArray(tj.bounds) && tj.bounds.length === 4 && tj.bounds.every(Number.isFinite)) src.bounds = tj.bounds;
  return src;
}

/** sourceLayer is the layer inside the tiles: the TileJSON's first vector layer, else the layer's name. */
function sourceLayer(tj, name) {
  return tj?.vector_layers?.find((l) => l.id === name)?.id ?? tj?.vector_layers?.[0]?.id ?? name;
}

export class BaseLayer {
  /** onError(err, context) reports a failure to load a layer. */
  constructor(map, { onError = () => {} } = {}) {
    Object.assign(this, { map, onError });
    this.added = { buildings: false, components: false };
    this.visible = { buildings: true, components: true };
    this.selected = { building: null, component: null };
    this.sourceLayers = { buildings: 'buildings', components: 'components' };
    this.parcelShown = false;
    this.legend = null;
  }

  /**
   * add loads both layers' TileJSON and draws them. A server without one
   * (404: not built in) leaves that layer out quietly.
   */
  async add() {
    const [bld, cmp] = await Promise.allSettled([getJSON('/tiles/buildings.json'), getJSON('/tiles/components.json')]);
    for (const [kind, res] of [['buildings', bld], ['components', cmp]]) {
      if (res.status === 'rejected') {
        if (!(res.reason instanceof ApiError && [404, 501].includes(res.reason.status))) this.onError(res.reason, `Loading ${kind}`);
        continue;
      }
      try {
        if (kind === 'buildings') this.addBuildings(res.value);
        else this.addComponents(res.value);
      } catch (err) {
        this.onError(err, `Drawing ${kind}`);
      }
    }
    const shown = Object.keys(this.added).filter((k) => this.added[k]);
    document.body.dataset.baseLayers = shown.length ? shown.join(' ') : 'none';
    this.syncLegend();
  }

  /** before is the first overlay already on the map (cameras, cases, patrols): base layers go under it. */
  before() {
    return this.map.getStyle().layers.find((l) => /^(cam-|inc-|patrol-)/.test(l.id))?.id;
  }

  addBuildings(tj) {
    const map = this.map;
    map.addSource(BUILDING_SOURCE, tileSource(tj, 'buildings'));
    const sl = sourceLayer(tj, 'buildings');
    this.sourceLayers.buildings = sl;
    const tiled = { source: BUILDING_SOURCE, 'source-layer': sl, minzoom: MIN_ZOOM };
    const before = this.before();
    map.addLayer({ id: 'base-bld-fill', type: 'fill', ...tiled, filter: isPolygon, paint: { 'fill-color': BUILDING_COLOR, 'fill-opacity': ['interpolate', ['linear'], ['zoom'], MIN_ZOOM, 0.06, 17, 0.16] } }, before);
    map.addLayer({ id: 'base-bld-line', type: 'line', ...tiled, filter: isPolygon, paint: { 'line-color': BUILDING_COLOR, 'line-opacity': 0.55, 'line-width': ['interpolate', ['linear'], ['zoom'], MIN_ZOOM, 0.4, 18, 1.2] } }, before);
    map.addLayer(
      {
        id: 'base-bld-point',
        type: 'circle',
        ...tiled,
        filter: isPoint,
        paint: {
          'circle-radius': ['interpolate', ['linear'], ['zoom'], MIN_ZOOM, 2, 18, 5],
          'circle-color': BUILDING_COLOR,
          'circle-opacity': 0.55,
          'circle-stroke-color': '#0b1424',
          'circle-stroke-width': 1,
        },
      },
      before,
    );
    map.addLayer({ id: 'base-bld-selected', type: 'line', ...tiled, filter: ['==', featureId, -2], paint: { 'line-color': SELECTED_COLOR, 'line-width': 2.5 } }, before);
    this.added.buildings = true;
    this.applyVisibility('buildings');
    this.select('building', this.selected.building);
  }

  addComponents(tj) {
    const map = this.map;
    map.addSource(COMPONENT_SOURCE, tileSource(tj, 'components'));
    const sl = sourceLayer(tj, 'components');
    this.sourceLayers.components = sl;
    const tiled = { source: COMPONENT_SOURCE, 'source-layer': sl, minzoom: MIN_ZOOM };
    const before = this.before();
    map.addLayer(
      {
        id: 'base-cmp-halo',
        type: 'circle',
        ...tiled,
        filter: alerting,
        paint: { 'circle-radius': ['interpolate', ['linear'], ['zoom'], MIN_ZOOM, 6, 18, 13], 'circle-color': stateColor(), 'circle-opacity': 0.25, 'circle-blur': 0.4 },
      },
      before,
    );
    map.addLayer(
      {
        id: 'base-cmp-point',
        type: 'circle',
        ...tiled,
        paint: {
          // (A zoom curve must be the outermost expression: the state is chosen at each stop.)
          'circle-radius': ['interpolate', ['linear'], ['zoom'], MIN_ZOOM, ['case', alerting, 3.5, 2], 18, ['case', alerting, 7, 4.5]],
          'circle-color': stateColor(),
          'circle-stroke-color': ['case', alerting, '#fef3c7', '#0b1424'],
          'circle-stroke-width': ['case', alerting, 1.5, 1],
        },
      },
      before,
    );
    map.addLayer(
      {
        id: 'base-cmp-selected',
        type: 'circle',
        ...tiled,
        filter: ['==', featureId, -2],
        paint: { 'circle-radius': 11, 'circle-color': 'rgba(0,0,0,0)', 'circle-stroke-color': SELECTED_COLOR, 'circle-stroke-width': 2.5 },
      },
      before,
    );
    this.added.components = true;
    this.applyVisibility('components');
    this.select('component', this.selected.component);
  }

  /** raise keeps the layers above the grids after these are redrawn (the overlays raise themselves after). */
  raise() {
    for (const ids of Object.values(LAYERS)) for (const id of ids) if (this.map.getLayer(id)) this.map.moveLayer(id);
  }

  /** setVisible shows or hides kind ("buildings" or "components"). */
  setVisible(kind, on) {
    this.visible[kind] = on;
    this.applyVisibility(kind);
    this.syncLegend();
  }

  applyVisibility(kind) {
    for (const id of LAYERS[kind]) if (this.map.getLayer(id)) this.map.setLayoutProperty(id, 'visibility', this.visible[kind] ? 'visible' : 'none');
  }

  /** select marks building or component id (null: none) on the map. */
  select(kind, id) {
    this.selected[kind] = id === null || id === undefined ? null : Number(id);
    const layer = kind === 'building' ? 'base-bld-selected' : 'base-cmp-selected';
    if (this.map.getLayer(layer)) this.map.setFilter(layer, ['==', featureId, this.selected[kind] ?? -2]);
  }

  /**
   * hit returns the component (within 6 px) or else the building under a
   * screen point, as {kind: 'component'|'building', id}, or null.
   */
  hit(point) {
    const map = this.map;
    const near = (layers, px) => {
      const have = layers.filter((l) => map.getLayer(l) && map.getLayoutProperty(l, 'visibility') !== 'none');
      if (!have.length) return [];
      return map.queryRenderedFeatures(px > 0 ? [[point.x - px, point.y - px], [point.x + px, point.y + px]] : [point.x, point.y], { layers: have });
    };
    const idOf = (f) => Number(f.id ?? f.properties?.id);
    let best = null;
    let bestD = Infinity;
    for (const f of near(['base-cmp-point'], 6)) {
      const c = f.geometry?.coordinates;
      if (!Array.isArray(c) || typeof c[0] !== 'number') continue;
      const p = map.project(c);
      const d = Math.hypot(p.x - point.x, p.y - point.y);
      if (d < bestD) {
        bestD = d;
        best = f;
      }
    }
    if (best && idOf(best) > 0) return { kind: 'component', id: idOf(best) };
    const bld = near(['base-bld-point'], 5)[0] ?? near(['base-bld-fill'], 0)[0];
    if (bld && idOf(bld) > 0) return { kind: 'building', id: idOf(bld) };
    return null;
  }

  /** refresh reads the tiles of kind again (a component's state changed: its colour follows). */
  refresh(kind) {
    const src = this.map.getSource(kind === 'buildings' ? BUILDING_SOURCE : COMPONENT_SOURCE);
    // The same URLs: the tiles are served no-cache with an ETag, so the browser asks again.
    if (src?.setTiles) src.setTiles([...src.tiles]);
  }

  /** showParcel outlines one parcel (a GeoJSON geometry) on the map; null clears it. */
  showParcel(geometry) {
    const map = this.map;
    const data = { type: 'FeatureCollection', features: geometry ? [{ type: 'Feature', geometry, properties: {} }] : [] };
    if (map.getSource(PARCEL_SOURCE)) map.getSource(PARCEL_SOURCE).setData(data);
    else {
      map.addSource(PARCEL_SOURCE, { type: 'geojson', data });
      const before = this.before();
      map.addLayer({ id: 'base-parcel-fill', type: 'fill', source: PARCEL_SOURCE, paint: { 'fill-color': PARCEL_COLOR, 'fill-opacity': 0.18 } }, before);
      map.addLayer({ id: 'base-parcel-line', type: 'line', source: PARCEL_SOURCE, layout: { 'line-join': 'round' }, paint: { 'line-color': PARCEL_COLOR, 'line-width': 2.5, 'line-dasharray': [2, 1] } }, before);
    }
    this.parcelShown = !!geometry;
    document.body.dataset.baseParcel = geometry ? 'shown' : '';
  }

  /**
   * legendSection builds the legend's "基础数据 Base data" part (hidden
   * without base.read): the keys and a switch per layer.
   */
  legendSection(visible) {
    const toggle = (kind, text, title) => {
      const b = el('button', { type: 'button', className: 'choro-btn base-toggle', id: `base-toggle-${kind}`, 'aria-pressed': 'true', title }, text);
      b.addEventListener('click', () => this.setVisible(kind, b.getAttribute('aria-pressed') !== 'true'));
      return b;
    };
    const dot = (state) => el('span', { className: 'dot dot-cmp', dataset: { state } });
    this.legend = el(
      'div',
      { className: 'legend-inc', id: 'legend-base', hidden: !visible, dataset: { perm: 'base.read' } },
      el('div', 'legend-title legend-sub', `基础数据 Base data`, el('span', 'legend-note', ` (z ≥ ${MIN_ZOOM})`)),
      el('div', 'legend-row', el('span', 'swatch swatch-building'), '建筑 Buildings'),
      el('div', 'legend-row', '部件 Components'),
      el('div', 'legend-row base-key', el('span', '', dot('intact'), '完好 intact'), el('span', '', dot('damaged'), '损坏 damaged'), el('span', '', dot('lost'), '丢失 lost'), el('span', '', dot('removed'), '拆除 removed')),
      el(
        'div',
        'base-toggles',
        toggle('buildings', '建筑 · Buildings', '在地图上显示建筑 · Show the buildings on the map'),
        toggle('components', '部件 · Components', '在地图上显示城市部件 · Show the city components on the map'),
      ),
    );
    this.syncLegend();
    return this.legend;
  }

  syncLegend() {
    if (!this.legend) return;
    for (const kind of ['buildings', 'components']) {
      const b = this.legend.querySelector(`#base-toggle-${kind}`);
      b.setAttribute('aria-pressed', String(this.visible[kind]));
      // A layer the server does not have cannot be switched on.
      b.hidden = document.body.dataset.baseLayers !== undefined && !this.added[kind];
    }
  }
}
