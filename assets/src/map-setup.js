// The MapLibre map: created with the dashboard's controls, its errors sent to
// the banner (with the offline style as the fallback for a basemap that
// cannot load), and framing — fitting and flying so that what is shown is not
// under the panel or a docked dialog.

import * as maplibregl from 'maplibre-gl';
import { bboxOf } from './geometry.js';
import { baseStyle } from './layers.js';

/** createMap makes the map in #map over basemap (a style URL), or the offline style when it is ''. */
export function createMap(basemap) {
  const map = new maplibregl.Map({
    container: 'map',
    style: basemap || baseStyle(),
    center: [113.65, 34.78],
    zoom: 10,
    attributionControl: { compact: true },
    dragRotate: false,
    pitchWithRotate: false,
    touchPitch: false,
    maxPitch: 0,
    localIdeographFontFamily: "'Noto Sans CJK SC', 'Noto Sans SC', 'Source Han Sans SC', 'PingFang SC', 'Microsoft YaHei', sans-serif",
  });
  map.touchZoomRotate.disableRotation();
  map.keyboard.disableRotation();
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-left');
  map.addControl(new maplibregl.ScaleControl({ unit: 'metric', maxWidth: 140 }), 'bottom-right');
  return map;
}

/**
 * watchMapErrors sends the map's errors to showError(err, context) (a
 * listener replaces MapLibre's default console.error). If the configured
 * basemap cannot be loaded at all (before drawn() is true), the map falls
 * back to the offline style. It returns offline(): whether the offline style
 * is in use.
 */
export function watchMapErrors(map, basemap, { drawn, showError }) {
  let offlineStyle = !basemap;
  map.on('error', (ev) => {
    if (!offlineStyle && !drawn() && !map.isStyleLoaded()) {
      offlineStyle = true;
      map.setStyle(baseStyle(), { diff: false });
      showError(ev.error ?? 'cannot load style', `Basemap ${basemap} (using the offline style)`);
      return;
    }
    showError(ev.error ?? 'map error', 'Map');
  });
  return () => offlineStyle;
}

// SHEET_SHARE is the most of the map a sheet covers on a phone (style.css: .panel, .drawer max-height).
const SHEET_SHARE = 0.62;

/** panelPadding is the map padding that keeps clear of the open panel and a docked dialog or drawer. */
export function panelPadding() {
  const panel = document.querySelector('#panel');
  const docked = document.querySelector('dialog.docked[open]') ?? document.querySelector('.drawer:not([hidden])');
  // On a phone the panel and the drawers are sheets the width of the screen, rising from
  // the bottom (style.css): keep clear above them instead of beside them — above as
  // tall as they may grow (a grid's panel is fitted to while it still says "Loading…").
  const container = document.querySelector('#map').getBoundingClientRect();
  const sheetTop = Math.min(...[panel.hidden ? null : panel, docked].filter(Boolean).map((e) => e.getBoundingClientRect()).filter((r) => r.width >= container.width * 0.9).map((r) => r.top));
  if (Number.isFinite(sheetTop)) {
    const sheet = Math.max(container.bottom - sheetTop, container.height * SHEET_SHARE);
    return { top: 24, left: 24, right: 24, bottom: Math.min(sheet + 16, container.height * 0.8) };
  }
  const w = panel.hidden ? 0 : panel.getBoundingClientRect().width + 24;
  const left = docked ? docked.getBoundingClientRect().right + 24 : 56;
  return { top: 56, bottom: 56, left, right: 56 + w };
}

/** fitBox fits the map to box b ([minLon, minLat, maxLon, maxLat]) clear of the panel; opts as fitBounds'. */
export function fitBox(map, b, opts) {
  map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: panelPadding(), ...opts });
}

/** flyNear flies to center, zoomed in to at least zoom, clear of the panel. */
export function flyNear(map, center, zoom, duration) {
  map.flyTo({ center, zoom: Math.max(map.getZoom(), zoom), padding: panelPadding(), duration });
}

/** ProblemMarker marks one point at a time (a problem an import or the editor reported) and flies there. */
export class ProblemMarker {
  constructor(map) {
    this.map = map;
    this.marker = null;
  }

  clear() {
    this.marker?.remove();
    this.marker = null;
  }

  /** show flies to lngLat and marks it, with label beside the dot when given. */
  show(lngLat, label) {
    this.clear();
    const node = document.createElement('div');
    node.className = 'problem-marker';
    node.append(Object.assign(document.createElement('span'), { className: 'problem-dot' }));
    if (label) node.append(Object.assign(document.createElement('span'), { className: 'problem-label', textContent: label }));
    this.marker = new maplibregl.Marker({ element: node, anchor: 'left', offset: [-11, 0] }).setLngLat(lngLat).addTo(this.map);
    flyNear(this.map, lngLat, 16, 900);
  }
}

/** fitGrids fits the map to the grids refs ({id}) name, found in the index grids (prepareGrids'). */
export function fitGrids(map, grids, refs) {
  const b = [Infinity, Infinity, -Infinity, -Infinity];
  for (const r of refs) {
    const f = grids?.byId.get(Number(r.id));
    if (f) bboxOf(f.geometry, b);
  }
  if (!Number.isFinite(b[0])) return;
  fitBox(map, b, { maxZoom: 17, duration: 800 });
}
