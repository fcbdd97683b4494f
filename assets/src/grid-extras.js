// The grid panel's lists that load after the grid itself: its open cases,
// its cameras (and their video wall) and its staff.

import { describe, getJSON } from './api.js';
import { OPEN_STATUSES } from './status.js';

/**
 * GridExtras loads a grid's cases, cameras and staff into the panel. deps:
 * panel; current(seq) (whether selection seq is still the one on show);
 * incidentsOn, camerasOn; videoOn() (the wall).
 */
export class GridExtras {
  constructor(deps) {
    this.deps = deps;
  }

  /**
   * load fills the panel for grid gridId (selection seq): one list after the
   * other, after the grid itself, so that a sign-in prompted by the grid
   * call is over before these run.
   */
  async load(gridId, seq) {
    const { panel, current } = this.deps;
    this.loadCases(gridId, seq);
    this.loadCameras(gridId, seq);
    try {
      const res = await getJSON(`/api/v1/grids/${encodeURIComponent(gridId)}/staff`);
      if (!current(seq)) return;
      panel.showStaff(gridId, Array.isArray(res?.staff) ? res.staff : []);
    } catch (err) {
      if (current(seq)) console.warn('grid staff', err);
    }
  }

  async loadCases(gridId, seq) {
    const { panel, current } = this.deps;
    if (!this.deps.incidentsOn) return;
    panel.showCases(gridId, { loading: true });
    try {
      const q = new URLSearchParams({ grid: String(gridId), status: OPEN_STATUSES.join(','), limit: '50' });
      const res = await getJSON(`/api/v1/incidents?${q}`);
      if (!current(seq)) return;
      panel.showCases(gridId, { list: Array.isArray(res?.incidents) ? res.incidents : [], more: !!res?.next });
    } catch (err) {
      if (!current(seq)) return;
      panel.showCases(gridId, { error: describe(err) });
    }
  }

  async loadCameras(gridId, seq) {
    const { panel, current } = this.deps;
    if (!this.deps.camerasOn) return;
    panel.showCameras(gridId, { loading: true });
    try {
      const res = await getJSON(`/api/v1/grids/${encodeURIComponent(gridId)}/cameras?limit=200`);
      if (!current(seq)) return;
      const list = Array.isArray(res?.cameras) ? res.cameras : [];
      panel.showCameras(gridId, { list, more: !!res?.next });
      if (this.deps.videoOn()) panel.showWall(gridId, list);
    } catch (err) {
      if (!current(seq)) return;
      panel.showCameras(gridId, { error: describe(err) });
    }
  }
}
