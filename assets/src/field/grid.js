// 网格 My grid: the member's grids (the scope of GET /api/v1/me) — the
// boundary on a map, the open cases (a list and dots), the cameras with a
// snapshot each and their live view on a tap (the sub stream: WebRTC where
// it connects, else MSE, as the dashboard's player does), and "which grid am
// I in" from one position fix, asked for by the person.

import { el } from '../dom.js';
import { can, session } from '../api.js';
import { OPEN_STATUSES, STATUS_COLOR, dueText, overdueNow, statusLabel } from '../status.js';
import { LivePlayer } from '../video.js';
import { getFresh } from './net.js';
import { locate } from './grids.js';
import { addGrids, makeMap, selectGrid, setDots } from './mapview.js';
import { currentPosition } from './position.js';
import { toast } from './ui.js';

const PHASE_TEXT = {
  idle: '—',
  connecting: '连接中 · connecting…',
  playing: '实时 · live',
  stalled: '缓冲中 · buffering…',
  reconnecting: '重新连接 · reconnecting…',
  offline: '摄像机离线 · camera offline',
  error: '无法播放 · cannot play',
};

// streamOf is the stream a phone asks for: the sub stream where the camera
// has one (less to carry over a poor signal), else the main one.
function streamOf(cam) {
  return cam.sub_url ? 'sub' : 'main';
}

/** GridView is the My grid screen. deps: grids (MyGrids), go(route). */
export class GridView {
  constructor({ grids, go }) {
    this.grids = grids;
    this.go = go;
    this.pick = document.querySelector('#grid-pick');
    this.mapBox = document.querySelector('#grid-map');
    this.casesUl = document.querySelector('#grid-cases');
    this.casesCount = document.querySelector('#grid-cases-count');
    this.camsUl = document.querySelector('#grid-cams');
    this.camsCount = document.querySelector('#grid-cams-count');
    this.whereText = document.querySelector('#where-text');
    this.selected = 0;
    this.map = null;
    this.ml = null;
    this.mapping = null;
    this.me = null;
    this.player = null;
    this.seq = 0;
    this.pick.addEventListener('change', () => this.show(Number(this.pick.value)));
    document.querySelector('#where-btn').addEventListener('click', () => this.whereAmI());
    document.querySelector('#player-close').addEventListener('click', () => this.closePlayer());
  }

  async enter() {
    try {
      await this.grids.load();
    } catch (err) {
      this.mapBox.dataset.state = 'failed';
      this.mapBox.textContent = `无法读取网格 · Cannot read your grids: ${err.message}`;
      return;
    }
    this.fillPick();
    if (!this.selected) this.selected = Number(this.pick.value) || 0;
    this.show(this.selected);
  }

  leave() {
    this.closePlayer();
  }

  // fillPick lists the scope's grids: each root of the scope, then the grids under it.
  fillPick() {
    if (this.pick.options.length) return;
    const roots = Array.isArray(session.user?.grids) ? session.user.grids : (this.grids.fc?.features ?? []).filter((f) => !f.properties?.parent_id || !this.grids.byId.has(Number(f.properties.parent_id))).map((f) => ({ id: Number(f.id ?? f.properties.id), name: f.properties.name }));
    const opts = [];
    for (const r of roots) {
      opts.push(el('option', { value: String(r.id) }, r.name));
      for (const f of this.grids.within(r.id).slice(1)) {
        if (f.properties?.level === 'grid') opts.push(el('option', { value: String(f.id ?? f.properties.id) }, `· ${f.properties.name}`));
      }
    }
    this.pick.replaceChildren(...opts);
    this.pick.hidden = opts.length <= 1;
  }

  async show(id) {
    if (!id) return;
    this.selected = id;
    this.pick.value = String(id);
    const seq = ++this.seq;
    this.drawMap(id);
    await Promise.all([this.loadCases(id, seq), this.loadCameras(id, seq)]);
  }

  async drawMap(id) {
    const b = this.grids.bbox(id);
    if (!this.map && !this.mapping) {
      this.mapping = makeMap(this.mapBox, { bounds: b }).then((m) => {
        if (!m) return;
        this.map = m.map;
        this.ml = m.ml;
        addGrids(this.map, this.grids.fc, this.selected);
        this.map.on('click', 'cases', (ev) => {
          const f = ev.features?.[0];
          if (f) this.go(`task-${f.properties.id}`);
        });
        if (this.casesFC) setDots(this.map, 'cases', this.casesFC);
      });
      await this.mapping;
      return;
    }
    await this.mapping;
    if (!this.map) return;
    selectGrid(this.map, id);
    if (b) this.map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 24, maxZoom: 17, duration: 400 });
  }

  async loadCases(id, seq) {
    let res;
    try {
      res = await getFresh(`/api/v1/incidents?grid=${id}&status=${OPEN_STATUSES.join(',')}&limit=200`);
    } catch (err) {
      if (seq === this.seq) this.casesUl.replaceChildren(el('li', 'note', `无法读取案件 · Cannot read the cases: ${err.message}`));
      return;
    }
    if (seq !== this.seq) return;
    const list = res.body?.incidents ?? [];
    this.casesCount.textContent = String(list.length);
    this.casesUl.replaceChildren(
      ...list.map((inc) => {
        const b = el(
          'button',
          { type: 'button', className: 'row-item', dataset: { incidentId: String(inc.id), status: inc.status } },
          el('span', 'dot'),
          el('span', 'grow', inc.title, el('small', null, [statusLabel(inc.status), inc.category_name, dueText(inc)].filter(Boolean).join(' · '))),
        );
        b.querySelector('.dot').style.background = overdueNow(inc) ? '#f87171' : STATUS_COLOR[inc.status] ?? '';
        b.addEventListener('click', () => this.go(`task-${inc.id}`));
        return el('li', null, b);
      }),
    );
    if (!list.length) this.casesUl.append(el('li', 'empty', '没有未结案件 · No open cases'));
    this.casesFC = list
      .filter((i) => Array.isArray(i.location?.coordinates))
      .map((i) => ({ type: 'Feature', geometry: i.location, properties: { id: i.id, color: overdueNow(i) ? '#f87171' : STATUS_COLOR[i.status] ?? '#818cf8' } }));
    if (this.map) setDots(this.map, 'cases', this.casesFC);
  }

  async loadCameras(id, seq) {
    const section = this.camsUl.previousElementSibling;
    if (!can('cameras.read')) {
      section.hidden = true;
      this.camsUl.hidden = true;
      return;
    }
    let res;
    try {
      res = await getFresh(`/api/v1/grids/${id}/cameras`);
    } catch (err) {
      if (seq === this.seq) this.camsUl.replaceChildren(el('li', 'note', `无法读取摄像机 · Cannot read the cameras: ${err.message}`));
      return;
    }
    if (seq !== this.seq) return;
    const cams = res.body?.cameras ?? [];
    this.camsCount.textContent = String(cams.length);
    const live = can('video.live');
    this.camsUl.replaceChildren(
      ...cams.map((cam) => {
        const pic = live && navigator.onLine !== false ? el('img', { src: `/api/v1/cameras/${cam.id}/snapshot.jpg?stream=${streamOf(cam)}`, alt: cam.name, loading: 'lazy' }) : el('span', 'noimg', '无快照 · no snapshot');
        pic.addEventListener?.('error', () => pic.replaceWith(el('span', 'noimg', '无快照 · no snapshot')), { once: true });
        const b = el('button', { type: 'button', className: 'cam', dataset: { cameraId: String(cam.id), status: cam.status ?? '' } }, pic, el('span', null, cam.name));
        b.disabled = !live;
        b.addEventListener('click', () => this.play(cam));
        return el('li', null, b);
      }),
    );
    if (!cams.length) this.camsUl.append(el('li', 'empty', '此网格没有摄像机 · No cameras in this grid'));
  }

  // ---- live view ---------------------------------------------------------------------

  play(cam) {
    this.closePlayer();
    const sheet = document.querySelector('#player');
    const video = document.querySelector('#player-video');
    const state = document.querySelector('#player-state');
    document.querySelector('#player-title').textContent = cam.name;
    sheet.hidden = false;
    sheet.dataset.cameraId = String(cam.id);
    this.player = new LivePlayer(video, {
      cameraId: cam.id,
      stream: streamOf(cam),
      onChange: (p) => {
        sheet.dataset.phase = p.phase;
        sheet.dataset.engine = p.engine;
        const what = p.phase === 'error' || p.phase === 'reconnecting' ? p.message || PHASE_TEXT[p.phase] : PHASE_TEXT[p.phase];
        state.textContent = `${what ?? p.phase}${p.engine ? ` · ${p.engine.toUpperCase()}` : ''}${p.width ? ` · ${p.width}×${p.height}` : ''}`;
      },
    });
    this.player.start();
  }

  closePlayer() {
    this.player?.destroy();
    this.player = null;
    const sheet = document.querySelector('#player');
    sheet.hidden = true;
    delete sheet.dataset.cameraId;
  }

  // ---- which grid am I in -------------------------------------------------------------

  async whereAmI() {
    this.whereText.textContent = '正在定位 · Locating…';
    delete this.whereText.dataset.inside;
    let p;
    try {
      p = await currentPosition();
    } catch (err) {
      this.whereText.textContent = err.message;
      return;
    }
    let g = null;
    try {
      const chain = await locate(p.lon, p.lat);
      g = chain[0] ?? null;
    } catch {
      g = this.grids.at(p.lon, p.lat); // offline: the grids this phone has
    }
    this.whereText.dataset.inside = String(!!g);
    this.whereText.textContent = g ? `您在 ${g.name} · You are in ${g.code} (±${Math.round(p.accuracy)} m)` : `不在您的网格内 · Outside your grids (±${Math.round(p.accuracy)} m)`;
    if (g) this.whereText.dataset.gridId = String(g.id);
    if (this.map) {
      if (!this.me) this.me = new this.ml.Marker({ element: el('div', 'me-dot') });
      this.me.setLngLat([p.lon, p.lat]).addTo(this.map);
      this.map.easeTo({ center: [p.lon, p.lat], zoom: Math.max(this.map.getZoom(), 15), duration: 400 });
    }
    if (g && g.id !== this.selected && this.grids.byId.has(g.id)) toast(`已切换到 ${g.name} · Showing the grid you are in`, { kind: 'info' });
    if (g && this.grids.byId.has(g.id) && g.id !== this.selected) this.show(g.id);
  }
}
