// The right-hand side panel: a grid's details and the result of a locate.
// Everything is written with textContent; server data is never parsed as HTML.

import { formatTime } from './dom.js';
import { LEVEL_CN, LEVEL_EN } from './layers.js';
import { CAMERA_STATUS_LABEL } from './camera-layer.js';
import { STATUS_COLOR, overdueNow, statusLabel } from './status.js';
import { formatBitrate, formatFps, formatUptime, offlineText, recordingErrorText } from './video-format.js';
import { VideoWall } from './video-wall.js';
import { serverNow } from './clock.js';
import { Heard, withStatus } from './freshness.js';

const numberFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const kmFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2, minimumFractionDigits: 2 });
const TEAM_KEYS = new Set(['leader', 'volunteers', 'staff']);

/** formatArea shows an area in m² and km², the larger unit first once it reads better. */
export function formatArea(m2) {
  if (typeof m2 !== 'number' || !Number.isFinite(m2)) return '—';
  const km2 = m2 / 1e6;
  const kmText = km2 < 0.01 ? `${km2.toFixed(4)} km²` : `${kmFmt.format(km2)} km²`;
  return m2 >= 1e6 ? `${kmText} · ${numberFmt.format(m2)} m²` : `${numberFmt.format(m2)} m² · ${kmText}`;
}

/** levelLabel is e.g. "网格 Grid"; unknown levels are shown as they are. */
export function levelLabel(level) {
  return LEVEL_CN[level] ? `${LEVEL_CN[level]} ${LEVEL_EN[level]}` : String(level ?? '');
}

// A team member may be a plain name or an object such as {"name","role","phone"}.
function person(v) {
  if (v === null || v === undefined) return { name: '', extra: '' };
  if (typeof v !== 'object') return { name: String(v), extra: '' };
  const name = v.name ?? v.full_name ?? v.id ?? '';
  const extra = [v.role ?? v.title ?? v.dept ?? v.department ?? v.org ?? v.unit, v.phone ?? v.tel]
    .filter((x) => x !== undefined && x !== null && x !== '')
    .join(' · ');
  return { name: String(name || JSON.stringify(v)), extra };
}

function scalarText(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'boolean') return v ? 'yes 是' : 'no 否';
  if (typeof v === 'object') {
    const s = JSON.stringify(v);
    return s.length > 160 ? `${s.slice(0, 157)}…` : s;
  }
  return String(v);
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

/**
 * Panel drives #panel. onPick(id, {fit}) is called when a chain or locate
 * entry is clicked, onIncident(id) when a case in the grid's list is,
 * onCamera(id) when a camera in the list is, onPlay(camera, opener) when a
 * tile of the video wall or the camera card's Play (opener) is,
 * onFootage(camera, opener) when the camera card's Playback is.
 */
// CLOCK_WARN_S is how far off a camera's clock may be (seconds) before the
// dashboard warns: footage is indexed by time.
export const CLOCK_WARN_S = 5;

export class Panel {
  constructor(root, { onPick, onClose, onIncident = () => {}, onCamera = () => {}, onPlay = () => {}, onFootage = () => {} }) {
    Object.assign(this, { root, onPick, onClose, onIncident, onCamera, onPlay });
    this.shownCamera = null; // the camera the card shows
    // What events said of cameras' status and recording problems, and when:
    // a load of the grid's cameras or of the card read before them keeps it.
    this.heardStatus = new Heard();
    this.heardRecording = new Heard();
    this.wall = new VideoWall(root.querySelector('[data-field="wall-section"]'), { onOpen: (cam, opener) => this.onPlay(cam, opener) });
    const play = this.field('cam-play');
    play.addEventListener('click', () => {
      if (this.shownCamera) this.onPlay(this.shownCamera, play);
    });
    const footage = this.field('cam-footage');
    footage.addEventListener('click', () => {
      if (this.shownCamera) onFootage(this.shownCamera, footage);
    });
    this.camera = root.querySelector('#camera-card');
    this.detail = root.querySelector('#detail');
    this.locate = root.querySelector('#locate-result');
    this.loading = root.querySelector('#panel-loading');
    root.querySelector('#panel-close').addEventListener('click', () => this.onClose());
    root.addEventListener('click', (ev) => {
      const c = ev.target.closest('[data-incident-id]');
      if (c && root.contains(c)) {
        this.onIncident(Number(c.dataset.incidentId));
        return;
      }
      const cam = ev.target.closest('[data-camera-id]');
      if (cam && root.contains(cam)) {
        this.onCamera(Number(cam.dataset.cameraId));
        return;
      }
      const b = ev.target.closest('[data-grid-id]');
      // (#panel itself carries data-grid-id: a click on its background is no link.)
      if (b && b !== root && root.contains(b)) this.onPick(Number(b.dataset.gridId), { fit: true, fromLocate: b.closest('#locate-result') !== null });
    });
  }

  field(name) {
    return this.root.querySelector(`[data-field="${name}"]`);
  }

  get isOpen() {
    return !this.root.hidden;
  }

  open() {
    this.root.hidden = false;
    document.body.classList.add('panel-open');
  }

  close() {
    this.wall.clear();
    this.shownCamera = null;
    this.root.hidden = true;
    this.detail.hidden = true;
    this.locate.hidden = true;
    this.loading.hidden = true;
    this.camera.hidden = true;
    document.body.classList.remove('panel-open');
  }

  showLoading(keepLocate) {
    this.wall.clear();
    this.open();
    if (!keepLocate) this.locate.hidden = true;
    this.detail.hidden = true;
    this.camera.hidden = true;
    this.loading.hidden = false;
  }

  hideLoading() {
    this.loading.hidden = true;
  }

  /**
   * updateGridFacts shows what a change of grid g's boundary changed (its
   * area, version, last update) when the panel shows g: someone else's
   * change, heard as an event, leaves the rest of the panel as it is.
   */
  updateGridFacts(g) {
    if (this.root.dataset.gridId !== String(g?.id) || this.detail.hidden) return;
    this.showFacts(g);
  }

  /** showFacts fills in what a change of the boundary changes: area, version, last update. */
  showFacts(g) {
    this.field('area').textContent = formatArea(g.area_m2);
    this.field('version').textContent = g.version !== undefined && g.version !== null ? `v${g.version}` : '—';
    this.field('updated').textContent = formatTime(g.updated_at ?? g.created_at);
  }

  /** showGrid renders GET /api/v1/grids/{id}; below counts its sub-areas by level, if known. */
  showGrid(g, below) {
    this.open();
    this.loading.hidden = true;
    this.camera.hidden = true;
    this.detail.hidden = false;
    this.root.dataset.gridId = String(g.id);

    const level = this.field('level');
    level.textContent = levelLabel(g.level);
    level.dataset.level = g.level ?? '';
    this.field('name').textContent = g.name ?? '';
    this.field('code').textContent = g.code ?? '';
    this.showFacts(g);
    this.field('id').textContent = String(g.id);
    const parts = below ? ['street', 'community', 'grid'].filter((l) => below[l] > 0).map((l) => `${below[l]} ${LEVEL_CN[l]}`) : [];
    this.field('contains-row').hidden = parts.length === 0;
    this.field('contains').textContent = parts.join(' · ');

    // chain is the grid itself first, then its parents: show it district → grid.
    const chain = this.field('chain');
    chain.replaceChildren();
    const items = Array.isArray(g.chain) && g.chain.length > 0 ? [...g.chain].reverse() : [g];
    for (const c of items) {
      const li = el('li', 'chain-item');
      const current = Number(c.id) === Number(g.id);
      const b = el('button', 'chain-link');
      b.type = 'button';
      b.dataset.gridId = String(c.id);
      b.dataset.level = c.level ?? '';
      b.title = `${levelLabel(c.level)} · ${c.code ?? ''}`;
      if (current) b.setAttribute('aria-current', 'page');
      b.append(el('span', 'chain-level', LEVEL_CN[c.level] ?? c.level ?? ''), el('span', 'chain-name', c.name ?? ''));
      li.append(b);
      chain.append(li);
    }

    this.renderTeam(g.properties ?? {});
    this.renderProps(g.properties ?? {});
    this.field('cases-section').hidden = true;
    this.field('cams-section').hidden = true;
  }

  /**
   * listSection shows the section of list name (its [data-field]s name-section,
   * name and name-note) in state ({loading: true}, {error} or {list, more}) for
   * grid gridId: {ol, note}, or null when the panel shows another grid.
   */
  listSection(gridId, name, state) {
    if (String(gridId) !== this.root.dataset.gridId) return null;
    const section = this.field(`${name}-section`);
    section.hidden = false;
    section.dataset.state = state.loading ? 'loading' : state.error ? 'error' : 'ok';
    return { ol: this.field(name), note: this.field(`${name}-note`) };
  }

  /**
   * showCameras lists the cameras in a grid or seeing into it: state is
   * {loading: true}, {error}, or {list, more}.
   */
  showCameras(gridId, state) {
    const part = this.listSection(gridId, 'cams', state);
    if (!part) return;
    const { ol, note } = part;
    if (state.loading) {
      ol.replaceChildren();
      this.field('cams-n').textContent = '';
      note.hidden = false;
      note.textContent = 'Loading… 加载中';
      return;
    }
    if (state.error) {
      showListError(ol, note, `无法加载摄像机 · Cannot load the cameras — ${state.error}`);
      return;
    }
    this.field('cams-n').textContent = `(${state.list.length}${state.more ? '+' : ''})`;
    ol.replaceChildren();
    for (const c of state.list) {
      const b = el('button', 'cam-item');
      b.type = 'button';
      b.dataset.cameraId = String(c.id);
      b.title = CAMERA_STATUS_LABEL[c.status] ?? c.status ?? '';
      const dot = el('span', 'dot dot-cam');
      dot.dataset.status = c.status ?? '';
      b.append(dot, el('span', 'cam-name', c.name ?? ''), el('span', 'cam-code', c.code ?? ''));
      const li = el('li');
      li.append(b);
      ol.append(li);
    }
    note.hidden = state.list.length > 0;
    note.textContent = state.list.length === 0 ? '无摄像机 · No cameras' : '';
  }

  /**
   * showWall plays the grid's cameras in the video wall (sub streams), if the
   * panel still shows that grid.
   */
  showWall(gridId, list) {
    if (String(gridId) !== this.root.dataset.gridId || this.detail.hidden) return;
    this.wall.show(gridId, list);
  }

  /** cameraStatus applies a camera.online/offline event to the wall, the list and the card. */
  cameraStatus(id, st) {
    this.heardStatus.note(id, st);
    this.wall.setStatus(id, st);
    for (const dot of this.root.querySelectorAll(`[data-field="cams"] [data-camera-id="${Number(id)}"] .dot-cam`)) {
      dot.dataset.status = st.status ?? '';
      dot.parentElement.title = CAMERA_STATUS_LABEL[st.status] ?? st.status ?? '';
    }
    if (this.shownCamera && Number(this.shownCamera.id) === Number(id) && !this.camera.hidden) {
      // The stream figures are stale now: the camera's own URL brings new ones (main.js).
      this.showCamera({ ...withStatus(this.shownCamera, st), streams: undefined });
    }
  }

  /** showCamera renders one camera (GET /api/v1/cameras item, or the camera itself with its streams) as a card. */
  showCamera(c) {
    this.wall.clear();
    this.shownCamera = c;
    this.open();
    this.detail.hidden = true;
    this.locate.hidden = true;
    this.loading.hidden = true;
    this.camera.hidden = false;
    delete this.root.dataset.gridId;
    this.camera.dataset.camera = String(c.id); // not data-camera-id: that marks clickable camera links
    const status = this.field('cam-status');
    status.dataset.status = c.status ?? '';
    status.textContent = CAMERA_STATUS_LABEL[c.status] ?? c.status ?? '—';
    this.field('cam-code').textContent = c.code ?? '';
    this.field('cam-name').textContent = c.name ?? '';
    const gridLink = (g) => {
      const b = el('button', 'cam-grid-link', g.name ?? g.code ?? String(g.id));
      b.type = 'button';
      b.dataset.gridId = String(g.id);
      b.title = `${levelLabel(g.level)} · ${g.code ?? ''}`;
      return b;
    };
    this.field('cam-grid').replaceChildren(c.grid ? gridLink(c.grid) : '无网格 none');
    const num = (v, unit) => (typeof v === 'number' && Number.isFinite(v) ? `${numberFmt.format(v)}${unit}` : '—');
    this.field('cam-heading').textContent = num(c.heading, '°');
    this.field('cam-fov').textContent = num(c.fov, '°');
    this.field('cam-range').textContent = num(c.range, ' m');
    const sees = this.field('cam-sees');
    sees.className = 'cam-sees';
    const list = Array.isArray(c.sees) ? c.sees : [];
    sees.replaceChildren(...(list.length ? list.map(gridLink) : ['—']));
    this.field('cam-url').textContent = c.main_url || '—';
    this.renderDevice(c);
    this.renderStream(c);
  }

  // A camera managed over ONVIF: what the device is, and a warning when its
  // clock is off (footage is indexed by time).
  renderDevice(c) {
    const o = c.onvif;
    const d = o?.device;
    this.field('cam-device-row').hidden = !o;
    this.field('cam-clock-row').hidden = !d;
    if (!o) return;
    const what = d ? [d.manufacturer, d.model, d.firmware ? `fw ${d.firmware}` : '', d.serial ? `SN ${d.serial}` : '', d.ptz ? '云台 PTZ' : ''].filter(Boolean).join(' · ') : '尚未读取 · not read yet';
    this.field('cam-device').textContent = `${what} — ${o.url}`;
    if (!d) return;
    const off = Number(d.clock_offset_ms) / 1000;
    const clock = this.field('cam-clock');
    const bad = Math.abs(off) > CLOCK_WARN_S;
    clock.dataset.warn = String(bad);
    clock.textContent = bad
      ? `⚠ 摄像机时钟偏差 ${off.toFixed(1)} 秒，录像时间可能不准 · The camera's clock is off by ${off.toFixed(1)} s: set it (NTP)`
      : `偏差 ${off.toFixed(1)} 秒 · off by ${off.toFixed(1)} s`;
  }

  // The camera's live stream: frame rate, bitrate, uptime while online; since when and why offline.
  renderStream(c) {
    const play = this.field('cam-play');
    play.disabled = c.enabled === false;
    play.title = c.enabled === false ? '摄像机已停用 · The camera is disabled' : '在主码流播放器中打开 · Open the main stream in the player';
    const st = c.streams?.main ?? c.streams?.sub ?? null;
    const box = this.field('cam-stream');
    const off = this.field('cam-offline');
    const online = c.status === 'online' || st?.status === 'online';
    box.hidden = !online || !st;
    if (!box.hidden) {
      this.field('cam-fps').textContent = formatFps(st.fps);
      this.field('cam-bitrate').textContent = formatBitrate(st.bitrate);
      this.field('cam-uptime').textContent = formatUptime(st.uptime);
      const which = c.streams?.main ? '主码流 main' : '子码流 sub';
      const parts = [which, st.width && st.height ? `${st.width}×${st.height}` : '', st.codec ?? '', st.audio ? `声音 audio ${st.audio}` : '', Number.isFinite(st.reconnects) ? `重连 reconnects ${st.reconnects}` : ''];
      this.field('cam-video').textContent = parts.filter(Boolean).join(' · ');
    }
    off.hidden = c.status !== 'offline' && st?.status !== 'offline';
    if (!off.hidden) {
      const reason = c.status_reason || st?.reason || '';
      off.textContent = offlineText(c.status_since ?? st?.since, reason || (c.enabled === false ? '已停用 disabled' : ''));
    }
    off.dataset.status = c.status ?? '';
    // A camera that should record and cannot (its recorder's files fail): said until it records again.
    const rec = this.field('cam-rec-error');
    rec.hidden = !c.recording_error;
    rec.textContent = c.recording_error ? recordingErrorText(c.recording_error_since, c.recording_error) : '';
  }

  /** cameraRecording applies a camera.recording event (data.error: why it does not record, '' once it does) to the card. */
  cameraRecording(id, data) {
    const rec = { recording_error: data?.error ?? '', recording_error_since: data?.error ? (data.since ?? null) : null };
    this.heardRecording.note(id, rec);
    const c = this.shownCamera;
    if (!c || Number(c.id) !== Number(id) || this.camera.hidden) return;
    this.shownCamera = { ...c, ...rec };
    this.renderStream(this.shownCamera);
  }

  /**
   * fresher returns camera c, loaded by a request sent at sent
   * (performance.now()), with what events said of it since it was sent
   * (its status, its recording problem) over what it read: an answer read
   * before a change must not undo it.
   */
  fresher(c, sent) {
    if (!c) return c;
    const st = this.heardStatus.since(c.id, sent);
    const rec = this.heardRecording.since(c.id, sent);
    return { ...withStatus(c, st), ...(st ? { streams: undefined } : {}), ...rec };
  }

  /**
   * showStaff replaces the team drawn from the grid's properties with its
   * 1+X+Y staff from GET /api/v1/grids/{id}/staff (when it has any).
   */
  showStaff(gridId, list) {
    if (String(gridId) !== this.root.dataset.gridId || !Array.isArray(list) || list.length === 0) return;
    const member = (s) => ({ name: s.name, org: s.organisation || undefined, phone: s.phone || undefined });
    const leader = list.find((s) => s.role === 'leader');
    this.renderTeam({
      leader: leader ? member(leader) : undefined,
      volunteers: list.filter((s) => s.role === 'volunteer').map(member),
      staff: list.filter((s) => s.role !== 'leader' && s.role !== 'volunteer').map(member),
    });
    this.field('team').dataset.source = 'staff';
  }

  /**
   * showCases lists a grid's open cases: state is {loading: true}, {error},
   * or {list, more} (more: the server has further pages).
   */
  showCases(gridId, state) {
    const part = this.listSection(gridId, 'cases', state);
    if (!part) return;
    const { ol, note } = part;
    if (state.loading) {
      if (ol.children.length === 0) {
        note.hidden = false;
        note.textContent = 'Loading… 加载中';
      }
      return;
    }
    if (state.error) {
      showListError(ol, note, `无法加载事件 · Cannot load the cases — ${state.error}`);
      this.field('cases-n').textContent = '';
      return;
    }
    const now = serverNow();
    const list = [...state.list].sort((a, b) => Number(overdueNow(b, now)) - Number(overdueNow(a, now)) || Number(b.id) - Number(a.id));
    this.field('cases-n').textContent = `(${list.length}${state.more ? '+' : ''})`;
    ol.replaceChildren();
    for (const inc of list) {
      const late = overdueNow(inc, now);
      const b = el('button', 'case-item');
      b.type = 'button';
      b.dataset.incidentId = String(inc.id);
      b.dataset.status = inc.status ?? '';
      b.style.setProperty('--status-color', STATUS_COLOR[inc.status] ?? '#94a3b8');
      const badge = el('span', 'status-badge', statusLabel(inc.status));
      badge.dataset.status = inc.status ?? '';
      const meta = el('span', 'case-meta', [inc.category_name, formatTime(inc.reported_at)].filter(Boolean).join(' · '));
      const top = el('span', 'case-top');
      top.append(badge);
      if (late) top.append(el('span', 'overdue-badge', '超期 overdue'));
      top.append(el('span', 'case-id', `#${inc.id}`));
      b.append(top, el('span', 'case-title', inc.title ?? ''), meta);
      const li = el('li');
      li.append(b);
      ol.append(li);
    }
    note.hidden = list.length > 0 && !state.more;
    note.textContent = list.length === 0 ? '无未结事件 · No open cases' : state.more ? '仅显示最新 · Showing the newest only' : '';
  }

  renderTeam(props) {
    const team = this.field('team');
    delete team.dataset.source;
    const leader = props.leader;
    const vols = Array.isArray(props.volunteers) ? props.volunteers : [];
    const staff = Array.isArray(props.staff) ? props.staff : [];

    const leaderRow = this.field('leader-row');
    leaderRow.hidden = leader === undefined || leader === null || leader === '';
    if (!leaderRow.hidden) {
      const p = person(leader);
      const box = this.field('leader');
      box.replaceChildren(el('span', 'person-name', p.name));
      if (p.extra) box.append(el('span', 'person-extra', p.extra));
    }
    this.fillChips('volunteers', vols);
    this.fillChips('staff', staff);
    team.hidden = leaderRow.hidden && vols.length === 0 && staff.length === 0;
  }

  fillChips(name, list) {
    this.field(`${name}-row`).hidden = list.length === 0;
    this.field(`${name}-n`).textContent = list.length ? `(${list.length})` : '';
    const ul = this.field(name);
    ul.replaceChildren();
    for (const v of list) {
      const p = person(v);
      const li = el('li', 'chip', p.name);
      if (p.extra) li.title = p.extra;
      ul.append(li);
    }
  }

  renderProps(props) {
    const dl = this.field('props');
    dl.replaceChildren();
    const keys = Object.keys(props).filter((k) => !TEAM_KEYS.has(k)).sort();
    for (const k of keys) {
      const row = el('div', 'prop');
      row.append(el('dt', '', k), el('dd', '', scalarText(props[k])));
      dl.append(row);
    }
    this.field('props-section').hidden = keys.length === 0;
  }

  /** showLocate renders GET /api/v1/locate; grids is null while the request runs. */
  showLocate(lngLat, grids) {
    if (grids !== null && grids.length === 0) this.wall.clear();
    this.open();
    this.camera.hidden = true;
    this.locate.hidden = false;
    this.field('locate-coord').textContent = `${lngLat.lng.toFixed(6)}, ${lngLat.lat.toFixed(6)}`;
    const list = this.field('locate-list');
    list.replaceChildren();
    const empty = this.field('locate-empty');
    if (grids === null) {
      empty.hidden = true;
      list.append(el('li', 'locate-pending', 'Locating… 定位中'));
      return;
    }
    empty.hidden = grids.length > 0;
    if (grids.length === 0) {
      this.detail.hidden = true;
      this.loading.hidden = true;
    }
    for (const g of grids) {
      const li = el('li');
      const b = el('button', 'locate-item');
      b.type = 'button';
      b.dataset.gridId = String(g.id);
      b.dataset.level = g.level ?? '';
      b.append(el('span', 'chain-level', LEVEL_CN[g.level] ?? g.level ?? ''), el('span', 'locate-name', g.name ?? ''), el('span', 'locate-code', g.code ?? ''));
      li.append(b);
      list.append(li);
    }
  }

  hideLocate() {
    this.locate.hidden = true;
  }
}

/** showListError empties a panel list and says why in its note. */
function showListError(ol, note, text) {
  ol.replaceChildren();
  note.hidden = false;
  note.textContent = text;
}
