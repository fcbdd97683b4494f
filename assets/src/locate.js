// Locate: a click on the map (in locate mode, or with Alt) asks which grids
// hold that point, marks it and opens the most specific one.

import * as maplibregl from 'maplibre-gl';
import { getJSON } from './api.js';

const $ = (sel) => document.querySelector(sel);

/**
 * Locator is the locate mode and its marker. deps: map, panel,
 * showError(err, context); begin() starts a new selection (no grid selected)
 * and returns its seq; current(seq) reports whether it is still the one on
 * show; onFound(id) opens the grid found.
 */
export class Locator {
  constructor(deps) {
    this.deps = deps;
    this.active = false;
    this.marker = null;
    $('#locate-btn').addEventListener('click', () => this.set(!this.active));
  }

  /** set turns locate mode on or off. */
  set(on) {
    this.active = on;
    $('#locate-btn').setAttribute('aria-pressed', String(on));
    $('#locate-hint').hidden = !on;
    document.body.classList.toggle('locating', on);
    this.deps.map.getCanvas().style.cursor = on ? 'crosshair' : '';
  }

  clearMarker() {
    this.marker?.remove();
    this.marker = null;
  }

  /** at locates lngLat: marks it, lists the grids holding it in the panel and opens the first. */
  async at(lngLat) {
    const { map, panel, current } = this.deps;
    this.set(false);
    const seq = this.deps.begin();
    this.clearMarker();
    const dot = document.createElement('div');
    dot.className = 'locate-marker';
    this.marker = new maplibregl.Marker({ element: dot }).setLngLat(lngLat).addTo(map);
    panel.showLocate(lngLat, null);
    try {
      const q = new URLSearchParams({ lon: lngLat.lng.toFixed(7), lat: lngLat.lat.toFixed(7) });
      const res = await getJSON(`/api/v1/locate?${q}`);
      if (!current(seq)) return;
      const list = Array.isArray(res.grids) ? res.grids : [];
      panel.showLocate(lngLat, list);
      if (list.length > 0) this.deps.onFound(Number(list[0].id));
    } catch (err) {
      if (!current(seq)) return;
      panel.showLocate(lngLat, []);
      this.deps.showError(err, 'Locate');
    }
  }
}
