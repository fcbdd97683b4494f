// The grid panel's lists that load after the grid itself: its open cases,
// its cameras (and their video wall) and its staff.

import { describe, getJSON } from './api.js';
import { Loads, withStatus } from './freshness.js';
import { OPEN_STATUSES, isOpen } from './status.js';

/**
 * GridExtras loads a grid's cases, cameras and staff into the panel. deps:
 * panel; current(seq) (whether selection seq is still the one on show);
 * incidentsOn, camerasOn; videoOn() (the wall); latestCase(inc) (the page's
 * latest version of a case, or inc).
 */
export class GridExtras {
  constructor(deps) {
    this.deps = deps;
    // Two loads of a list overlap (a grid picked, then a case in it
    // changed): an answer after a later one's is dropped.
    this.caseLoads = new Loads();
    this.cameraLoads = new Loads();
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
    const t = this.caseLoads.ask();
    try {
      const q = new URLSearchParams({ grid: String(gridId), status: OPEN_STATUSES.join(','), limit: '50' });
      const res = await getJSON(`/api/v1/incidents?${q}`);
      if (!current(seq) || !this.caseLoads.take(t)) return;
      // A case the page knows a later version of (an event since the list
      // was read) shows as that version; one closed since leaves the list.
      const list = (Array.isArray(res?.incidents) ? res.incidents : []).map((inc) => this.deps.latestCase?.(inc) ?? inc).filter((inc) => isOpen(inc.status));
      panel.showCases(gridId, { list, more: !!res?.next });
    } catch (err) {
      if (!current(seq) || !this.caseLoads.take(t)) return;
      panel.showCases(gridId, { error: describe(err) });
    } finally {
      panel.root.dataset.casesAnswered = String(t.n); // a hook: load n of a grid's cases shown or dropped
    }
  }

  async loadCameras(gridId, seq) {
    const { panel, current } = this.deps;
    if (!this.deps.camerasOn) return;
    panel.showCameras(gridId, { loading: true });
    const t = this.cameraLoads.ask();
    try {
      const res = await getJSON(`/api/v1/grids/${encodeURIComponent(gridId)}/cameras?limit=200`);
      if (!current(seq) || !this.cameraLoads.take(t)) return;
      // Statuses events brought while it was read stand over it.
      const list = (Array.isArray(res?.cameras) ? res.cameras : []).map((c) => withStatus(c, panel.heardStatus.since(c.id, t.sent)));
      panel.showCameras(gridId, { list, more: !!res?.next });
      if (this.deps.videoOn()) panel.showWall(gridId, list);
    } catch (err) {
      if (!current(seq) || !this.cameraLoads.take(t)) return;
      panel.showCameras(gridId, { error: describe(err) });
    }
  }
}
