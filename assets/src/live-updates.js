// What the dashboard does with the live feed's events (and, without the event
// stream, with polling): cases added and changed, camera status, grids
// redrawn, bulk filings, GB/T 28181 devices coming and going (for the admin
// view), and the toasts that announce new cases.

import { LiveFeed } from './live.js';
import { statusLabel } from './status.js';
import { toast } from './toast.js';

/**
 * LiveUpdates applies the live feed to the dashboard. deps: store (the
 * IncidentStore), recording (RecordingStatus), camLayer, panel, player,
 * incidentsOn, camerasOn; showError(err, context); reloadGrids();
 * gridChanged(data) (the editor's); refreshCard(id) (the camera card, if it
 * shows camera id); gbEvent(type, data) (gb.device.online/offline);
 * openIncident(id, {fly}); gridLabel(id).
 */
export class LiveUpdates {
  constructor(deps) {
    this.deps = deps;
    this.announceQueue = [];
    this.announceTimer = 0;
    this.camerasTimer = 0;
    this.feed = new LiveFeed({
      onEvent: (type, data) => this.onEvent(type, data),
      poll: () => this.pollAll(),
      onMode: (mode) => {
        document.body.dataset.live = mode;
        const m = document.querySelector('#live-mode');
        m.dataset.mode = mode;
        m.textContent = mode === 'sse' ? '实时 live' : mode === 'polling' ? '轮询 polling 15 s' : '连接中 connecting';
        m.title = mode === 'polling' ? 'The live event stream is unavailable: the map is refreshed every 15 s' : '';
      },
    });
  }

  start() {
    this.feed.start();
  }

  onEvent(type, data) {
    const { store, recording, showError } = this.deps;
    const id = data && typeof data === 'object' ? data.id : undefined;
    if (recording.onEvent(type, data)) return;
    if (type === 'camera.online' || type === 'camera.offline') this.cameraEvent(data);
    else if (type === 'camera.recording') this.deps.panel.cameraRecording(Number(data?.camera_id ?? data?.id), data);
    else if (type === 'gb.device.online' || type === 'gb.device.offline') this.deps.gbEvent?.(type, data); // the admin view's GB/T 28181 tab
    else if (type === 'incident.created') store.queue(id, { announce: true });
    else if (type === 'incident.changed') store.queue(id);
    else if (type === 'grid.changed') {
      this.deps.reloadGrids().catch((err) => showError(err, 'Reloading grids'));
      this.deps.gridChanged(data); // someone else's change to the grid being edited
    } else if (type === 'reset') this.pollAll(); // missed more than the server can replay
    else if (type === 'incident.bulk') {
      const n = Number(data?.created);
      if (n > 0) toast(`批量上报 ${n} 件 · ${n} incidents filed in bulk`, { kind: 'new' });
      // The event names the new cases in view (up to 100): add those; only
      // past that ("more") is the whole list read again.
      if (data?.more || !Array.isArray(data?.ids)) store.refresh().catch((err) => showError(err, 'Incidents'));
      else store.addByIds(data.ids).catch((err) => showError(err, 'Incidents'));
    }
  }

  /** cameraEvent applies camera.online/offline: the map's colour, the panel, the player. */
  cameraEvent(data) {
    const { camerasOn, camLayer, panel, player } = this.deps;
    const id = Number(data?.camera_id ?? data?.id);
    if (!(id > 0) || typeof data.status !== 'string') return;
    const st = { status: data.status, reason: data.reason ?? '', since: data.since ?? null };
    // A camera the map does not hold yet was registered since it loaded: load them again.
    if (camerasOn && !camLayer.setStatus(id, st)) this.reloadCamerasSoon();
    panel.cameraStatus(id, st);
    player.setStatus(id, st);
    if (panel.shownCamera && Number(panel.shownCamera.id) === id) this.deps.refreshCard(id);
  }

  /** pollAll is the live feed's fallback (and its catch-up after a reconnect). */
  pollAll() {
    const { incidentsOn, camerasOn, store, recording, showError } = this.deps;
    const jobs = [recording.load()];
    if (incidentsOn) jobs.push(store.refresh().catch((err) => showError(err, 'Incidents')));
    if (camerasOn) jobs.push(this.reloadCameras());
    return Promise.all(jobs);
  }

  reloadCamerasSoon() {
    if (!this.camerasTimer) {
      this.camerasTimer = setTimeout(() => {
        this.camerasTimer = 0;
        this.reloadCameras();
      }, 1000);
    }
  }

  // Without the event stream, camera colours follow a reload of the list.
  async reloadCameras() {
    try {
      await this.deps.camLayer.load();
    } catch (err) {
      console.warn('cameras', err);
    }
  }

  /** announce toasts a new case. They arrive in bursts (a bulk import): up to three toasts, then one summary. */
  announce(inc) {
    this.announceQueue.push(inc);
    if (!this.announceTimer) this.announceTimer = setTimeout(() => this.flushAnnouncements(), 300);
  }

  flushAnnouncements() {
    const { gridLabel, openIncident } = this.deps;
    this.announceTimer = 0;
    const list = this.announceQueue;
    this.announceQueue = [];
    const shown = list.length > 3 ? list.slice(0, 1) : list;
    for (const inc of shown) {
      const where = inc.grid ? gridLabel(inc.grid.id) || inc.grid.name : '无网格 unassigned';
      toast(`新事件 New incident: ${inc.title}`, {
        detail: [inc.category_name, where, statusLabel(inc.status)].filter(Boolean).join(' · '),
        kind: 'new',
        data: { incidentId: String(inc.id) },
        onClick: () => openIncident(inc.id, { fly: true }),
      });
    }
    if (list.length > shown.length) toast(`另有 ${list.length - shown.length} 件新事件 · ${list.length - shown.length} more new incidents`, { kind: 'new' });
  }
}
