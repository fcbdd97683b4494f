// The footage player (video.playback): one camera's recorded video with a
// timeline of the last 24 hours, in a modal dialog.
//
// The recorded ranges come from GET /api/v1/cameras/{id}/recordings (again
// every 30 s while open); a click on a recorded part plays an HLS VOD playlist
// (GET /api/v1/cameras/{id}/playback.m3u8?from&to) from that moment to the end
// of that recorded run (or to now for the latest run). Where MSE exists the
// playlist plays through hls.js, loaded on first use (a separate chunk, see
// build.mjs) so the map's first load does not carry it; a browser without MSE
// but with native HLS (iPhone Safari) gets the playlist as the <video>'s src.
//
// Keys: Esc closes, ← / → move 10 s back / forward.
//
// Test hooks:
//   #footage-dialog[open][data-camera=ID][data-state=idle|loading|playing|buffering|paused|ended|empty|error][data-engine=hls.js|native]
//   #footage-dialog .footage-clock[data-time=ISO of the picture shown]
//   #footage-dialog .footage-message[data-kind=hint|empty|error|ended] (the text over the video)
//   #footage-dialog .tl-track[data-view-from][data-view-to] (ms since the epoch)[data-held while a
//     press on it holds the view still] with
//     .tl-rec[data-from][data-to] (recorded runs, ISO), .tl-gap[data-reason] (title: the reason), .tl-playhead
//   #footage-dialog .tl-zoom[data-span=ms][aria-pressed]
//   #footage-dialog .tl-tag[data-id][data-label] (tags, title: note · author), .tl-sel (the range dragged)
//   #footage-dialog .footage-sel[data-from][data-to] (ISO) with input[name=label], input[name=note],
//     .sel-tag, .sel-export, .sel-clear, .form-error, .export-status (see export.js)
//   #footage-dialog .footage-tags li[data-tag-id] with .tag-delete (the author's own, or an admin's)
//
// Tags: GET /api/v1/tags?camera&from&to with the recordings; a drag across the
// timeline selects a range, to tag (POST /api/v1/tags) or export (export.js).

import { ApiError, can, describe, request } from './api.js';
import { el, formatTime } from './dom.js';
import { startExport } from './export.js';
import { OPEN_STATUSES } from './status.js';
import { toast } from './toast.js';

const DAY = 24 * 3600 * 1000;
const REFRESH_MS = 30000;
const TICK_MS = 250;
const JOIN_MS = 2000; // recordings this close together form one run
const STEP_S = 10; // ← / →
const SPANS = [
  { ms: DAY, label: '24 h' },
  { ms: 3600 * 1000, label: '1 h' },
  { ms: 5 * 60 * 1000, label: '5 min' },
];
// Tick steps (ms) the timeline picks from: the smallest with room for it.
const STEPS = [10e3, 30e3, 60e3, 5 * 60e3, 10 * 60e3, 15 * 60e3, 30 * 60e3, 3600e3, 2 * 3600e3, 3 * 3600e3, 6 * 3600e3];

let hlsModule = null;
/** loadHls imports hls.js (its light build: no subtitles, alternate audio or DRM) once, on first use. */
function loadHls() {
  hlsModule ??= import('hls.js/light').then((m) => m.default);
  return hlsModule;
}

function hasMSE() {
  return typeof window.MediaSource === 'function' || typeof window.ManagedMediaSource === 'function';
}

const iso = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
const clock = (ms) => formatTime(new Date(ms).toISOString(), { seconds: true });
const pad = (n) => String(n).padStart(2, '0');
const DRAG_PX = 4; // a press moved this far is a drag (a range), not a click

/** armDelete makes a tag's delete button ask for its confirmation (确认删除): the next click deletes. */
function armDelete(t, btn) {
  btn.dataset.confirm = 'true';
  btn.textContent = '确认删除 · Confirm delete';
  btn.setAttribute('aria-label', `确认删除标记 · Confirm: delete the tag “${t.label}”`);
}

/** mine reports whether the signed-in user may edit and delete tag t (its author, or an admin): the server says. */
function mine(t) {
  return t.editable === true;
}

/** localInput is ms as a datetime-local input's value (local time, with seconds). */
export function localInput(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

let camerasP = null;
/** cameraNames is every camera the user sees, by id ({id, code, name, grid}), fetched once a page. */
export function cameraNames() {
  camerasP ??= request('GET', '/api/v1/cameras?limit=1000').then((r) => new Map((Array.isArray(r?.cameras) ? r.cameras : []).map((c) => [Number(c.id), c])));
  camerasP.catch(() => {
    camerasP = null;
  });
  return camerasP;
}

/** hhmm shows a local time of day as "HH:MM" (with seconds when asked). */
function hhmm(ms, seconds = false) {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}${seconds ? `:${pad(d.getSeconds())}` : ''}`;
}

/** runsOf merges a camera's recordings (status ok) into continuous runs [{from, to}] in ms. */
export function runsOf(recordings) {
  const recs = recordings
    .filter((r) => r.status === 'ok')
    .map((r) => ({ from: Date.parse(r.from), to: Date.parse(r.to) }))
    .filter((r) => r.to > r.from)
    .sort((a, b) => a.from - b.from);
  const out = [];
  for (const r of recs) {
    const last = out[out.length - 1];
    if (last && r.from - last.to <= JOIN_MS) last.to = Math.max(last.to, r.to);
    else out.push({ ...r });
  }
  return out;
}

/** firstProgramDate is the first EXT-X-PROGRAM-DATE-TIME of a playlist, in ms, or NaN. */
function firstProgramDate(text) {
  const m = /^#EXT-X-PROGRAM-DATE-TIME:(\S+)/m.exec(text);
  return m ? Date.parse(m[1]) : NaN;
}

const HLS_MIME = 'application/vnd.apple.mpegurl';

/** playbackURL is camera cameraId's HLS VOD playlist from..to (ms). */
export function playbackURL(cameraId, from, to) {
  return `/api/v1/cameras/${encodeURIComponent(cameraId)}/playback.m3u8?${new URLSearchParams({ from: new Date(from).toISOString(), to: new Date(to).toISOString() })}`;
}

/**
 * fetchPlaylist reads the playlist at url: {text, pdt} (pdt: its first
 * PROGRAM-DATE-TIME in ms, or NaN). It throws ApiError (404: no footage then).
 */
export async function fetchPlaylist(url) {
  const { text } = await request('GET', url, { raw: true, accept: HLS_MIME });
  return { text, pdt: firstProgramDate(text) };
}

/**
 * attachPlaylist plays the HLS playlist at url in video from start seconds:
 * through hls.js where MSE exists (loaded on first use), else natively. It
 * resolves {engine: 'hls.js'|'native', hls, destroy()}, or null when current()
 * turned false meanwhile; it throws an Error with a message to show when the
 * browser cannot play it. onFatal(text) reports a fatal playback error later.
 */
export async function attachPlaylist(video, url, start, { current = () => true, onFatal = () => {} } = {}) {
  const v = video;
  let Hls = null;
  if (hasMSE() || !v.canPlayType(HLS_MIME)) {
    try {
      Hls = await loadHls();
    } catch (err) {
      hlsModule = null;
      if (!v.canPlayType(HLS_MIME)) throw new Error(`无法加载播放器 · Cannot load the player (hls.js) — ${err?.message ?? err}`);
    }
    if (!current()) return null;
    if (Hls && !Hls.isSupported()) Hls = null;
  }
  if (Hls) {
    const hls = new Hls({ enableWorker: false, startPosition: start, backBufferLength: 30, maxBufferLength: 20 });
    let live = true;
    hls.on(Hls.Events.ERROR, (_e, data) => {
      if (!data?.fatal || !live) return;
      const status = data.response?.code;
      onFatal(`回放出错 · Playback error — ${data.type}: ${data.details}${status ? ` (HTTP ${status})` : ''}`);
    });
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      if (live) v.play().catch(() => {});
    });
    hls.attachMedia(v);
    hls.loadSource(url);
    return {
      engine: 'hls.js',
      hls,
      destroy() {
        live = false;
        hls.destroy();
      },
    };
  }
  if (v.canPlayType(HLS_MIME)) {
    let live = true;
    v.addEventListener(
      'loadedmetadata',
      () => {
        if (!live) return;
        if (start > 0) v.currentTime = start;
        v.play().catch(() => {});
      },
      { once: true },
    );
    v.src = url;
    return {
      engine: 'native',
      hls: null,
      destroy() {
        live = false;
      },
    };
  }
  throw new Error('此浏览器无法播放 HLS 回放 · This browser cannot play HLS footage (no MediaSource, no native HLS)');
}

/** stopVideo empties a <video> an engine played into. */
export function stopVideo(v) {
  if (v.getAttribute('src') !== null || v.srcObject) {
    v.pause();
    v.removeAttribute('src');
    v.load();
  }
}

/**
 * pictureTime is the wall-clock time (ms) of the picture video shows, played
 * by eng (attachPlaylist's) from base {at: the time asked, pdt: the playlist's start}.
 */
export function pictureTime(v, eng, base) {
  const d = eng?.hls?.playingDate;
  if (d instanceof Date && Number.isFinite(d.getTime()) && v.readyState > 0) return d.getTime();
  if (eng?.engine === 'native' && typeof v.getStartDate === 'function') {
    const s = v.getStartDate().getTime();
    if (Number.isFinite(s)) return s + v.currentTime * 1000;
  }
  if (v.readyState === 0) return base.at;
  return base.pdt + v.currentTime * 1000;
}

/**
 * FootageDialog plays one camera's recorded footage; open(cam, {opener})
 * shows it, and focus goes back to opener when it closes.
 */
export class FootageDialog {
  constructor() {
    this.dialog = null;
    this.cam = null;
    this.opener = null;
    this.span = DAY;
    this.focusAt = null; // the middle of a zoomed view (ms), else the view ends now
    this.runs = [];
    this.gaps = [];
    this.missing = [];
    this.listAt = 0;
    this.seq = 0; // bumped by every start/stop: late answers of older ones are dropped
    this.hls = null;
    this.engine = '';
    this.base = null; // {at: clicked ms, pdt: first PROGRAM-DATE-TIME ms, to: playlist end ms}
    this.refreshTimer = 0;
    this.tickTimer = 0;
    this.listAbort = null;
    this.tags = [];
    this.sel = null; // {from, to} ms: the range dragged
    this.drag = null;
    this.held = null; // [from, to] ms: the view held still while a pointer is down on the track
    this.clickAt = NaN; // the time under a press released without a drag: what the click that follows plays
    this.suppressClick = false;
    this.confirmDelete = null; // the tag whose delete waits for its confirmation (5 s)
    this.confirmTimer = 0;
    this.editing = null; // the tag being edited: the selection is its range
  }

  get isOpen() {
    return !!this.dialog?.open;
  }

  build() {
    this.title = el('h2', { className: 'dialog-title player-title', id: 'footage-title' });
    const close = el('button', { type: 'button', className: 'dialog-close', 'aria-label': '关闭 Close', title: '关闭 Close (Esc)' }, '×');
    close.addEventListener('click', () => this.close());
    this.video = el('video', { className: 'player-video', muted: true, playsInline: true, controls: false });
    this.message = el('div', { className: 'footage-message', role: 'status' });
    this.clockEl = el('time', { className: 'footage-clock', title: '画面时间 · Time of the picture shown' }, '—');
    this.summary = el('span', 'footage-summary');
    this.zooms = SPANS.map((s) => {
      const b = el('button', { type: 'button', className: 'btn btn-small tl-zoom', dataset: { span: String(s.ms) }, 'aria-pressed': String(s.ms === this.span), title: `显示 ${s.label} · Show ${s.label}` }, s.label);
      b.addEventListener('click', () => this.zoom(s.ms));
      return b;
    });
    this.track = el('div', {
      className: 'tl-track',
      tabIndex: 0,
      role: 'slider',
      'aria-label': '时间轴 Timeline — 点击录像段回放 · click a recorded part to play it',
      'aria-valuetext': '—',
    });
    this.hover = el('span', { className: 'tl-hover', 'aria-hidden': 'true', hidden: true });
    this.ticks = el('div', { className: 'tl-ticks', 'aria-hidden': 'true' });
    this.track.addEventListener('click', (ev) => this.onTrackClick(ev));
    this.track.addEventListener('pointerdown', (ev) => this.onPointerDown(ev));
    this.track.addEventListener('pointermove', (ev) => this.onPointerMove(ev));
    this.track.addEventListener('pointerup', (ev) => this.onPointerUp(ev));
    this.track.addEventListener('pointercancel', () => this.endPress());
    // Capture lost without a pointerup (the dialog closed, the window lost the pointer): the press is over.
    this.track.addEventListener('lostpointercapture', () => this.drag && this.endPress());
    this.selEl = el('span', { className: 'tl-sel', 'aria-hidden': 'true', hidden: true });
    this.buildSelection();
    this.tagList = el('ul', { className: 'footage-tags', 'aria-label': '标记 Tags' });
    this.buildSearch();
    const selectBtn = el('button', { type: 'button', className: 'btn btn-small tl-select', title: '选择画面前 30 秒 · Select the 30 s before the picture (then change the times)' }, '选择时段 · Select a range');
    selectBtn.addEventListener('click', () => this.selectNear());
    this.track.addEventListener('mousemove', (ev) => this.onTrackHover(ev));
    this.track.addEventListener('mouseleave', () => {
      this.hover.hidden = true;
    });
    this.dialog = el(
      'dialog',
      { className: 'dialog dialog-player dialog-footage', id: 'footage-dialog', 'aria-labelledby': 'footage-title' },
      el('div', 'dialog-head', this.title, el('span', 'player-stream', '回放 · Playback'), close),
      el(
        'div',
        'player-body',
        el('div', 'player-stage', this.video, this.message),
        el('div', 'footage-bar', this.clockEl, this.summary, selectBtn, el('span', { className: 'tl-zooms', role: 'group', 'aria-label': '时间范围 Span' }, ...this.zooms)),
        el('div', 'tl', this.track, this.hover, this.ticks),
        this.selBox,
        this.tagList,
        this.searchBox,
        el('div', 'footage-keys', '点击绿色录像段回放 · Click a green (recorded) part to play · 拖动选择时段 · drag to select a range · ', el('kbd', null, '←'), ' ', el('kbd', null, '→'), ' ±10 s · ', el('kbd', null, 'Esc'), ' 关闭 close'),
      ),
    );
    this.dialog.addEventListener('close', () => {
      this.teardown();
      const back = this.opener;
      this.opener = null;
      if (back?.isConnected && !back.closest('[hidden]')) back.focus({ preventScroll: true });
    });
    this.dialog.addEventListener('click', (ev) => {
      if (ev.target !== this.dialog) return;
      const r = this.dialog.getBoundingClientRect();
      if (ev.clientX < r.left || ev.clientX > r.right || ev.clientY < r.top || ev.clientY > r.bottom) this.close();
    });
    this.dialog.addEventListener('keydown', (ev) => {
      if (ev.key !== 'ArrowLeft' && ev.key !== 'ArrowRight') return;
      if (ev.target instanceof HTMLElement && ev.target.closest('input, select, textarea')) return;
      ev.preventDefault();
      this.seekBy(ev.key === 'ArrowLeft' ? -STEP_S : STEP_S);
    });
    const v = this.video;
    v.addEventListener('playing', () => this.setState('playing'));
    v.addEventListener('waiting', () => this.state === 'playing' && this.setState('buffering'));
    v.addEventListener('pause', () => this.state === 'playing' && !v.ended && this.setState('paused'));
    v.addEventListener('ended', () => this.onEnded());
    v.addEventListener('error', () => {
      if (this.eng?.engine === 'native' && this.base) this.fail(`播放错误 · Media error ${v.error?.code ?? ''} ${v.error?.message ?? ''}`.trim());
    });
    document.body.append(this.dialog);
  }

  /**
   * open shows camera cam ({id, code, name}); focus goes back to opener (else
   * to what had it) on close. range ({from, to} in ms) selects that range and
   * plays it.
   */
  open(cam, { opener = null, range = null } = {}) {
    if (!this.dialog) this.build();
    this.teardown();
    if (!this.dialog.open) this.opener = opener ?? (document.activeElement instanceof HTMLElement ? document.activeElement : null);
    this.cam = cam;
    this.runs = [];
    this.gaps = [];
    this.missing = [];
    this.listAt = 0;
    this.focusAt = null;
    this.tags = [];
    this.setSelection(null);
    this.linkRow.hidden = true;
    this.title.replaceChildren(el('span', 'player-code', cam.code ?? ''), ` ${cam.name ?? ''}`);
    this.dialog.dataset.camera = String(cam.id);
    this.say('hint', '加载录像… · Loading the recordings…');
    this.setState('idle');
    if (!this.dialog.open) this.dialog.showModal();
    this.track.focus({ preventScroll: true });
    const loaded = this.refresh();
    if (range && Number.isFinite(range.from) && Number.isFinite(range.to)) {
      const len = range.to - range.from;
      this.span = SPANS.slice().reverse().find((s) => s.ms >= len * 1.5)?.ms ?? DAY;
      for (const b of this.zooms) b.setAttribute('aria-pressed', String(Number(b.dataset.span) === this.span));
      this.focusAt = range.from + len / 2;
      this.setSelection({ from: range.from, to: range.to });
      const seq = this.seq;
      loaded.then(() => {
        if (seq !== this.seq || this.cam !== cam) return;
        // From the first footage in the range (an incident's window starts before the camera may have recorded).
        const r = this.runs.find((x) => x.to > range.from && x.from < range.to);
        this.playAt(r ? Math.max(range.from, r.from) : range.from);
      });
    }
    this.refreshTimer = setInterval(() => this.refresh(), REFRESH_MS);
    this.tickTimer = setInterval(() => this.tick(), TICK_MS);
    this.render();
  }

  close() {
    if (this.dialog?.open) this.dialog.close(); // 'close' tears down
  }

  teardown() {
    clearInterval(this.refreshTimer);
    clearInterval(this.tickTimer);
    this.refreshTimer = 0;
    this.tickTimer = 0;
    this.listAbort?.abort();
    this.listAbort = null;
    this.endPress();
    this.stopEngine();
    this.seq++;
    if (this.dialog) delete this.dialog.dataset.state;
  }

  // ---- the recorded ranges ------------------------------------------------------------

  async refresh() {
    const cam = this.cam;
    if (!cam) return;
    this.listAbort?.abort();
    const ctl = new AbortController();
    this.listAbort = ctl;
    const now = Date.now();
    const q = new URLSearchParams({ from: iso(now - DAY), to: iso(now + 60e3) });
    try {
      const tq = new URLSearchParams({ camera: String(cam.id), from: iso(now - DAY), to: iso(now + 60e3) });
      const [res, tags] = await Promise.all([
        request('GET', `/api/v1/cameras/${cam.id}/recordings?${q}`, { signal: ctl.signal }),
        request('GET', `/api/v1/tags?${tq}`, { signal: ctl.signal }),
      ]);
      if (ctl.signal.aborted || this.cam !== cam) return;
      this.tags = (Array.isArray(tags?.tags) ? tags.tags : []).map((t) => ({ ...t, fromMs: Date.parse(t.from), toMs: Date.parse(t.to) }));
      this.renderTagList();
      const recs = Array.isArray(res?.recordings) ? res.recordings : [];
      this.runs = runsOf(recs);
      this.missing = recs.filter((r) => r.status === 'missing').map((r) => ({ from: Date.parse(r.from), to: Date.parse(r.to) }));
      this.gaps = (Array.isArray(res?.gaps) ? res.gaps : []).map((g) => ({ from: Date.parse(g.from), to: Date.parse(g.to), reason: g.reason ?? '' }));
      this.listAt = Date.now();
      this.listError = '';
      if (!this.base && this.state === 'idle') {
        this.say(
          this.runs.length ? 'hint' : 'empty',
          this.runs.length ? '点击时间轴上的绿色录像段开始回放 · Click a green (recorded) part of the timeline to play it' : '最近 24 小时没有录像 · No footage in the last 24 hours',
        );
      }
    } catch (err) {
      if (err?.name === 'AbortError' || this.cam !== cam) return;
      this.listError = describe(err);
      if (!this.base) this.fail(`无法加载录像列表 · Cannot load the recordings — ${this.listError}`);
    } finally {
      if (this.listAbort === ctl) this.listAbort = null;
    }
    this.render();
  }

  // ---- the timeline ---------------------------------------------------------------------

  /**
   * view is the time window the track shows: [from, to] in ms. It follows
   * the clock (and a zoomed view the picture), except while a pointer is
   * down on the track: then it holds still, so a press or drag selects the
   * times that were under the pointer, not times the view scrolled to since.
   */
  view(now = Date.now()) {
    if (this.held) return [this.held[0], this.held[1]];
    const dayStart = now - DAY;
    if (this.span >= DAY) return [dayStart, now];
    const mid = this.focusAt ?? now - this.span / 2;
    let to = Math.min(now, mid + this.span / 2);
    let from = to - this.span;
    if (from < dayStart) {
      from = dayStart;
      to = from + this.span;
    }
    return [from, to];
  }

  zoom(span) {
    this.span = span;
    for (const b of this.zooms) b.setAttribute('aria-pressed', String(Number(b.dataset.span) === span));
    // Zoom in on the picture shown, else on the latest footage.
    const shown = this.shownTime();
    const last = this.runs[this.runs.length - 1];
    this.focusAt = Number.isFinite(shown) ? shown : last ? last.to - Math.min(span / 4, (last.to - last.from) / 2) : null;
    this.render();
  }

  timeAt(clientX) {
    const r = this.track.getBoundingClientRect();
    const [from, to] = this.view();
    const f = Math.min(1, Math.max(0, (clientX - r.left) / r.width));
    return from + f * (to - from);
  }

  onTrackHover(ev) {
    const t = this.timeAt(ev.clientX);
    const r = this.track.getBoundingClientRect();
    const box = this.track.parentElement.getBoundingClientRect();
    const gap = this.gaps.find((g) => t >= g.from && t < g.to);
    const run = this.runs.find((x) => t >= x.from && t < x.to);
    this.hover.hidden = false;
    const tag = this.tags.find((x) => t >= x.fromMs && t < x.toMs);
    this.hover.textContent = `${hhmm(t, this.span < DAY)}${run ? ' · 录像 recorded' : gap ? ` · 无录像 gap: ${gap.reason || '—'}` : ''}${tag ? ` · ${tagText(tag)}` : ''}`;
    const half = this.hover.offsetWidth / 2 + 2;
    this.hover.style.left = `${Math.round(Math.min(Math.max(ev.clientX - box.left, half), box.width - half))}px`;
    this.hover.style.top = `${Math.round(r.top - box.top - 4)}px`;
  }

  onTrackClick(ev) {
    if (this.suppressClick) {
      this.suppressClick = false;
      return;
    }
    // The time under the press when it was released (the view held still till then), else (a click
    // without a press on the track, e.g. from a script) the time under the pointer now.
    const t = Number.isFinite(this.clickAt) ? this.clickAt : this.timeAt(ev.clientX);
    this.clickAt = NaN;
    this.playAt(t);
  }

  // ---- selecting a range: a drag across the track ----------------------------------------

  onPointerDown(ev) {
    if (ev.button !== 0) return;
    this.suppressClick = false;
    this.clickAt = NaN;
    // Hold the view drawn until the press ends: the times under the pointer stay where they are drawn.
    this.held = this.drawnView ?? this.view();
    this.track.dataset.held = '';
    this.drag = { x: ev.clientX, t: this.timeAt(ev.clientX), moved: false };
    this.track.setPointerCapture?.(ev.pointerId);
  }

  /** endPress ends a press on the track without a selection (cancelled, or the view closed): the view follows again. */
  endPress() {
    this.drag = null;
    this.release();
  }

  /** release lets the view follow the clock (and the picture) again after a press held it. */
  release() {
    if (!this.held) return;
    this.held = null;
    if (this.track) delete this.track.dataset.held;
    // No redraw here: a click follows this pointerup only if the part pressed is still there.
    // The next tick (or the click's playback) draws the view following again.
  }

  onPointerMove(ev) {
    const d = this.drag;
    if (!d) return;
    if (!d.moved && Math.abs(ev.clientX - d.x) < DRAG_PX) return;
    d.moved = true;
    const t = this.timeAt(ev.clientX);
    this.setSelection({ from: Math.min(d.t, t), to: Math.max(d.t, t) }, { form: false });
  }

  onPointerUp(ev) {
    const d = this.drag;
    this.drag = null;
    // The time under the pointer in the view held since the press, before the view follows again.
    const t = this.timeAt(ev.clientX);
    this.release();
    if (!d) return;
    if (!d.moved) {
      this.clickAt = t;
      // A click follows the pointerup only when both hit the same element: forget it if none comes.
      setTimeout(() => {
        this.clickAt = NaN;
      }, 0);
      return;
    }
    this.suppressClick = true;
    setTimeout(() => {
      this.suppressClick = false;
    }, 0);
    this.setSelection({ from: Math.round(Math.min(d.t, t)), to: Math.round(Math.max(d.t, t)) });
    this.selLabel.focus({ preventScroll: true });
  }

  buildSelection() {
    this.selRange = el('span', 'sel-range');
    this.selFrom = el('input', { name: 'from', type: 'datetime-local', step: 1, 'aria-label': '开始 From' });
    this.selTo = el('input', { name: 'to', type: 'datetime-local', step: 1, 'aria-label': '结束 To' });
    const fromTo = () => {
      const a = Date.parse(this.selFrom.value);
      const b = Date.parse(this.selTo.value);
      if (Number.isFinite(a) && Number.isFinite(b) && b > a) {
        this.setSelection({ from: a, to: b }, { form: false });
        this.selBox.hidden = false;
      }
    };
    this.selFrom.addEventListener('change', fromTo);
    this.selTo.addEventListener('change', fromTo);
    this.selLabel = el('input', { name: 'label', type: 'text', maxLength: 64, placeholder: '标签 Label', required: true, 'aria-label': '标签 Label' });
    this.selNote = el('input', { name: 'note', type: 'text', maxLength: 2000, placeholder: '备注 Note (optional)', 'aria-label': '备注 Note' });
    const tagBtn = el('button', { type: 'submit', className: 'btn btn-small btn-primary sel-tag' }, '标记 · Tag');
    this.tagBtn = tagBtn;
    this.cancelEdit = el('button', { type: 'button', className: 'btn btn-small sel-cancel-edit', hidden: true }, '取消编辑 · Cancel edit');
    this.cancelEdit.addEventListener('click', () => this.endEdit());
    const exportBtn = el('button', { type: 'button', className: 'btn btn-small sel-export' }, '导出 · Export');
    const linkBtn = el('button', { type: 'button', className: 'btn btn-small sel-link', 'aria-expanded': 'false', title: '把所选时段关联到事件 · Link the selected range to an incident' }, '关联事件 · Link to incident');
    const clear = el('button', { type: 'button', className: 'btn btn-small sel-clear', title: '取消选择 · Clear the selection' }, '取消 · Clear');
    this.selError = el('p', { className: 'form-error', role: 'alert', hidden: true });
    this.selExport = el('div', { className: 'export-status', hidden: true });
    this.selEditing = el('span', { className: 'sel-editing', hidden: true });
    // Link to an incident: an open case of the camera's grid, or any case by its number.
    this.linkPick = el('select', { name: 'incident', 'aria-label': '本网格未结事件 · Open incidents of the camera\'s grid' });
    this.linkId = el('input', { name: 'incident_id', type: 'number', min: 1, step: 1, inputMode: 'numeric', placeholder: '事件编号 Incident #', 'aria-label': '事件编号 Incident number' });
    const linkGo = el('button', { type: 'button', className: 'btn btn-small btn-primary sel-link-go' }, '关联 · Link');
    this.linkStatus = el('span', { className: 'sel-link-status', role: 'status' });
    this.linkRow = el('div', { className: 'sel-row sel-link-row', hidden: true }, el('span', 'sel-title', '关联到 · Link to'), this.linkPick, el('span', 'sel-title', '或 or'), this.linkId, linkGo, this.linkStatus);
    linkBtn.addEventListener('click', () => {
      const show = this.linkRow.hidden;
      this.linkRow.hidden = !show;
      linkBtn.setAttribute('aria-expanded', String(show));
      if (show) this.loadLinkChoices();
    });
    linkGo.addEventListener('click', () => this.linkToIncident(linkGo));
    this.linkId.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') {
        ev.preventDefault();
        this.linkToIncident(linkGo);
      }
    });
    this.selBox = el(
      'form',
      { className: 'footage-sel', hidden: true, noValidate: true },
      el('div', 'sel-row', el('span', 'sel-title', '所选时段 · Selected'), this.selRange, this.selEditing, clear),
      el('div', 'sel-row sel-times', el('label', 'sel-time', el('span', 'sel-title', '从 From'), this.selFrom), el('label', 'sel-time', el('span', 'sel-title', '到 To'), this.selTo)),
      el('div', 'sel-row', this.selLabel, this.selNote, tagBtn, this.cancelEdit, exportBtn, linkBtn),
      this.linkRow,
      this.selError,
      this.selExport,
    );
    this.selBox.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.saveTag(tagBtn);
    });
    exportBtn.addEventListener('click', () => {
      if (!this.sel || !this.cam) return;
      startExport(this.selExport, { cameraId: this.cam.id, from: this.sel.from, to: this.sel.to });
    });
    clear.addEventListener('click', () => this.setSelection(null));
  }

  /** selectNear selects the 30 s before the picture shown (else the end of the latest footage): a range without a drag. */
  selectNear() {
    const shown = this.shownTime();
    const last = this.runs[this.runs.length - 1];
    const end = Number.isFinite(shown) ? shown : last ? last.to : Date.now();
    this.setSelection({ from: Math.round(end - 30e3), to: Math.round(end) });
    this.selFrom.focus({ preventScroll: true });
  }

  /** setSelection shows range sel ({from, to} ms) on the track and its form below (form: false while dragging). */
  setSelection(sel, { form = true } = {}) {
    this.sel = sel;
    if (!this.selBox) return;
    this.drawSel();
    if (!sel) {
      this.selBox.hidden = true;
      delete this.selBox.dataset.from;
      delete this.selBox.dataset.to;
      this.endEdit({ keepSel: true });
      return;
    }
    this.selBox.dataset.from = iso(sel.from);
    this.selBox.dataset.to = iso(sel.to);
    this.selRange.textContent = `${clock(sel.from)} – ${hhmm(sel.to, true)} (${formatDuration(sel.to - sel.from)})`;
    if (document.activeElement !== this.selFrom) this.selFrom.value = localInput(sel.from);
    if (document.activeElement !== this.selTo) this.selTo.value = localInput(sel.to);
    if (form) {
      this.selBox.hidden = false;
      this.selError.hidden = true;
      this.selExport.hidden = true;
      this.selExport.replaceChildren();
      delete this.selExport.dataset.status;
      delete this.selExport.dataset.exportId;
      delete this.selExport.dataset.sha256;
      this.linkStatus.textContent = '';
      delete this.linkStatus.dataset.linkId;
    }
  }

  // ---- editing a tag: its range is the selection, its label and note the form's --------------

  startEdit(t) {
    this.setSelection({ from: t.fromMs, to: t.toMs });
    this.editing = t;
    this.selBox.dataset.mode = 'edit';
    this.selBox.dataset.tagId = String(t.id);
    this.selLabel.value = t.label ?? '';
    this.selNote.value = t.note ?? '';
    this.tagBtn.textContent = '保存修改 · Save';
    this.cancelEdit.hidden = false;
    this.selEditing.hidden = false;
    this.selEditing.textContent = `编辑标记 · Editing “${t.label}” — 拖动时间轴或改时间以改变时段 · drag the timeline or change the times to move it`;
    this.selLabel.focus({ preventScroll: true });
    this.selLabel.select();
  }

  endEdit({ keepSel = false } = {}) {
    if (!this.editing) return;
    this.editing = null;
    delete this.selBox.dataset.mode;
    delete this.selBox.dataset.tagId;
    this.tagBtn.textContent = '标记 · Tag';
    this.cancelEdit.hidden = true;
    this.selEditing.hidden = true;
    this.selLabel.value = '';
    this.selNote.value = '';
    if (!keepSel) this.setSelection(null);
  }

  // ---- linking the selection to an incident ----------------------------------------------------

  /** camGrid is the grid id of the camera on show (fetched when the caller did not pass it). */
  async camGrid() {
    const cam = this.cam;
    if (cam?.grid?.id) return Number(cam.grid.id);
    try {
      const full = await request('GET', `/api/v1/cameras/${encodeURIComponent(cam.id)}`);
      if (this.cam === cam) cam.grid = full?.grid ?? null;
      return full?.grid?.id ? Number(full.grid.id) : null;
    } catch {
      return null;
    }
  }

  async loadLinkChoices() {
    const cam = this.cam;
    const pick = this.linkPick;
    pick.replaceChildren(el('option', { value: '' }, '加载中 Loading…'));
    const gid = await this.camGrid();
    if (this.cam !== cam) return;
    if (!gid || !can('incidents.read')) {
      pick.replaceChildren(el('option', { value: '' }, '— 输入编号 enter a number —'));
      return;
    }
    try {
      const q = new URLSearchParams({ grid: String(gid), status: OPEN_STATUSES.join(','), limit: '50' });
      const res = await request('GET', `/api/v1/incidents?${q}`);
      if (this.cam !== cam) return;
      const list = Array.isArray(res?.incidents) ? res.incidents : [];
      pick.replaceChildren(
        el('option', { value: '' }, list.length ? `— 本网格未结事件 ${list.length} 件 · open incidents of this grid —` : '— 本网格无未结事件 · no open incident here —'),
        ...list.map((inc) => el('option', { value: String(inc.id) }, `#${inc.id} ${inc.title ?? ''} · ${formatTime(inc.reported_at)}`)),
      );
    } catch (err) {
      if (this.cam !== cam) return;
      pick.replaceChildren(el('option', { value: '' }, `— ${describe(err)} —`));
    }
  }

  async linkToIncident(btn) {
    const sel = this.sel;
    const cam = this.cam;
    if (!sel || !cam) return;
    const id = Number(this.linkId.value || this.linkPick.value);
    if (!(id > 0)) {
      this.selError.textContent = '请选择事件或输入编号 · Choose an incident or enter its number';
      this.selError.hidden = false;
      this.linkId.focus();
      return;
    }
    btn.disabled = true;
    this.selError.hidden = true;
    try {
      const l = await request('POST', `/api/v1/incidents/${encodeURIComponent(id)}/footage`, { json: { camera_id: Number(cam.id), from: iso(sel.from), to: iso(sel.to) } });
      this.linkStatus.textContent = `已关联到事件 #${id} · Linked to incident #${id}`;
      this.linkStatus.dataset.linkId = String(l?.id ?? '');
      this.linkStatus.dataset.incidentId = String(id);
      toast(`已关联到事件 #${id} · Footage linked to incident #${id}`, { detail: `${cam.code ?? ''} ${clock(sel.from)} – ${hhmm(sel.to, true)}` });
    } catch (err) {
      this.selError.textContent = `无法关联 · Cannot link — ${describe(err)}`;
      this.selError.hidden = false;
      toast(`无法关联到事件 #${id} · Cannot link to incident #${id}`, { detail: describe(err), kind: 'warn' });
    } finally {
      btn.disabled = false;
    }
  }

  drawSel() {
    const s = this.sel;
    if (!s || !this.selEl) {
      if (this.selEl) this.selEl.hidden = true;
      return;
    }
    const [from, to] = this.view();
    const f = (t) => (Math.min(Math.max(t, from), to) - from) / (to - from);
    this.selEl.hidden = s.to <= from || s.from >= to;
    this.selEl.style.left = `${(f(s.from) * 100).toFixed(4)}%`;
    this.selEl.style.width = `${((f(s.to) - f(s.from)) * 100).toFixed(4)}%`;
  }

  async saveTag(btn) {
    const sel = this.sel;
    const cam = this.cam;
    if (!sel || !cam) return;
    const label = this.selLabel.value.trim();
    this.selError.hidden = true;
    this.selLabel.removeAttribute('aria-invalid');
    if (!label) {
      this.selError.textContent = '请填写标签 · Enter a label';
      this.selError.hidden = false;
      this.selLabel.setAttribute('aria-invalid', 'true');
      this.selLabel.focus();
      return;
    }
    const editing = this.editing;
    btn.disabled = true;
    try {
      const body = { from: iso(sel.from), to: iso(sel.to), label, note: this.selNote.value.trim() };
      const t = editing
        ? await request('PATCH', `/api/v1/tags/${encodeURIComponent(editing.id)}`, { json: body })
        : await request('POST', '/api/v1/tags', { json: { camera_id: Number(cam.id), ...body } });
      if (this.cam !== cam) return;
      this.tags = [...this.tags.filter((x) => x.id !== t.id), { ...t, fromMs: Date.parse(t.from), toMs: Date.parse(t.to) }].sort((a, b) => a.fromMs - b.fromMs);
      if (editing) {
        this.endEdit({ keepSel: true });
        toast(`标记已修改 · Tag saved: ${t.label}`);
      }
      this.selLabel.value = '';
      this.selNote.value = '';
      this.renderTagList();
      this.render();
    } catch (err) {
      const field = err?.details?.field;
      const msg = describe(err);
      this.selError.textContent = field && !msg.includes(field) ? `${field}: ${msg}` : msg;
      this.selError.hidden = false;
      if (editing) toast('无法修改标记 · Cannot change the tag', { detail: msg, kind: 'warn' });
    } finally {
      btn.disabled = false;
    }
  }

  /** deleteTag asks first (the row's 删除 becomes 确认删除 · Confirm), then deletes. */
  async deleteTag(t, btn) {
    if (btn.dataset.confirm !== 'true') {
      // The list is drawn again by every refresh (30 s): the question asked stays asked in it.
      this.confirmDelete = t.id;
      armDelete(t, btn);
      btn.focus();
      clearTimeout(this.confirmTimer);
      this.confirmTimer = setTimeout(() => {
        this.confirmDelete = null;
        const cur = [...(this.tagList?.querySelectorAll('li[data-tag-id]') ?? [])].find((li) => li.dataset.tagId === String(t.id))?.querySelector('.tag-delete');
        if (!cur || cur.disabled) return;
        delete cur.dataset.confirm;
        cur.textContent = '删除 · Delete';
        cur.removeAttribute('aria-label');
      }, 5000);
      return;
    }
    btn.disabled = true;
    try {
      await request('DELETE', `/api/v1/tags/${encodeURIComponent(t.id)}`);
      this.tags = this.tags.filter((x) => x.id !== t.id);
      if (this.editing?.id === t.id) this.endEdit();
      this.renderTagList();
      this.render();
      toast(`标记已删除 · Tag deleted: ${t.label}`);
    } catch (err) {
      btn.disabled = false;
      toast('无法删除标记 · Cannot delete the tag', { detail: describe(err), kind: 'warn' });
    }
  }

  renderTagList() {
    if (!this.tagList) return;
    const items = this.tags.map((t) => {
      const seek = el('button', { type: 'button', className: 'link-btn tag-label', title: `从此处播放 · Play from ${clock(t.fromMs)}` }, t.label ?? '');
      seek.addEventListener('click', () => this.playAt(t.fromMs));
      const li = el(
        'li',
        { dataset: { tagId: String(t.id), author: t.author ?? '' }, title: tagText(t) },
        seek,
        el('span', 'tag-time', `${clock(t.fromMs)} – ${hhmm(t.toMs, true)}`),
        t.note ? el('span', 'tag-note', t.note) : null,
        el('span', 'tag-author', t.author ?? ''),
      );
      if (mine(t)) {
        const edit = el('button', { type: 'button', className: 'btn btn-small tag-edit', title: `编辑标记 · Edit the tag “${t.label}”` }, '编辑 · Edit');
        edit.addEventListener('click', () => this.startEdit(t));
        const del = el('button', { type: 'button', className: 'btn btn-small btn-danger tag-delete', title: `删除标记 · Delete the tag “${t.label}”` }, '删除 · Delete');
        del.addEventListener('click', () => this.deleteTag(t, del));
        if (this.confirmDelete === t.id) {
          const had = document.activeElement?.closest?.('.tag-delete') && this.tagList.contains(document.activeElement);
          armDelete(t, del);
          if (had) queueMicrotask(() => del.focus({ preventScroll: true }));
        }
        li.append(edit, del);
      }
      return li;
    });
    this.tagList.replaceChildren(...items);
    this.tagList.hidden = items.length === 0;
  }

  // ---- searching tags by label, across cameras ---------------------------------------------------

  buildSearch() {
    this.searchInput = el('input', { name: 'q', type: 'search', maxLength: 64, placeholder: '按标签搜索 · Search tags by label', 'aria-label': '按标签搜索标记 · Search tags by label' });
    this.searchScope = el(
      'select',
      { name: 'scope', 'aria-label': '搜索范围 · Where to search' },
      el('option', { value: 'camera' }, '本摄像机 · This camera'),
      el('option', { value: 'grid' }, '本网格 · This grid'),
      el('option', { value: 'all', selected: true }, '全部摄像机 · All cameras'),
    );
    const go = el('button', { type: 'submit', className: 'btn btn-small tag-search-go' }, '搜索 · Search');
    this.searchResults = el('ul', { className: 'tag-results', 'aria-label': '搜索结果 · Search results', hidden: true });
    this.searchNote = el('span', { className: 'tag-search-note', role: 'status' });
    this.searchBox = el('form', { className: 'tag-search', role: 'search', noValidate: true }, el('div', 'sel-row', this.searchInput, this.searchScope, go, this.searchNote), this.searchResults);
    this.searchBox.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.searchTags();
    });
  }

  /**
   * searchTags finds tags whose label is, or contains, the words typed: the
   * API filters by exact label; the newest 200 tags in scope are matched by
   * substring here (case-insensitive).
   */
  async searchTags() {
    const q = this.searchInput.value.trim();
    const box = this.searchBox;
    const cam = this.cam;
    if (!q) {
      this.searchResults.hidden = true;
      this.searchNote.textContent = '';
      delete box.dataset.count;
      return;
    }
    const scope = this.searchScope.value;
    const base = new URLSearchParams();
    if (scope === 'camera') base.set('camera', String(cam.id));
    if (scope === 'grid') {
      const gid = await this.camGrid();
      if (gid) base.set('grid', String(gid));
      else base.set('camera', String(cam.id));
    }
    const seq = (this.searchSeq = (this.searchSeq ?? 0) + 1);
    this.searchNote.textContent = '搜索中 Searching…';
    delete box.dataset.count;
    try {
      const exact = new URLSearchParams(base);
      exact.set('label', q);
      const [a, b] = await Promise.all([request('GET', `/api/v1/tags?${exact}`), request('GET', `/api/v1/tags?${base}`)]);
      if (seq !== this.searchSeq) return;
      const needle = q.toLowerCase();
      const seen = new Set();
      const found = [];
      for (const t of [...(a?.tags ?? []), ...(b?.tags ?? []).filter((t) => String(t.label ?? '').toLowerCase().includes(needle))]) {
        if (seen.has(t.id)) continue;
        seen.add(t.id);
        found.push(t);
      }
      found.sort((x, y) => Date.parse(y.from) - Date.parse(x.from));
      const names = await cameraNames().catch(() => new Map());
      if (seq !== this.searchSeq) return;
      const items = found.slice(0, 50).map((t) => {
        const from = Date.parse(t.from);
        const to = Date.parse(t.to);
        const name = names.get(Number(t.camera_id))?.name ?? '';
        const b = el(
          'button',
          { type: 'button', className: 'tag-result', dataset: { tagId: String(t.id), camera: String(t.camera_id) }, title: `${t.note || ''} · ${t.author || '—'}` },
          el('span', 'tag-label', t.label ?? ''),
          el('span', 'tag-cam', `${t.camera_code ?? `#${t.camera_id}`} ${name}`.trim()),
          el('span', 'tag-time', `${formatTime(t.from, { seconds: true })} – ${hhmm(to, true)}`),
        );
        b.addEventListener('click', () => this.open({ id: Number(t.camera_id), code: t.camera_code ?? '', name, grid: names.get(Number(t.camera_id))?.grid ?? null }, { opener: this.opener, range: { from, to } }));
        return el('li', null, b);
      });
      this.searchResults.replaceChildren(...items);
      this.searchResults.hidden = items.length === 0;
      box.dataset.count = String(items.length);
      this.searchNote.textContent = items.length ? `${items.length} 条 · ${items.length} found${found.length > items.length ? ' (newest 50)' : ''}` : '无结果 · No tag found';
    } catch (err) {
      if (seq !== this.searchSeq) return;
      this.searchNote.textContent = `无法搜索 · Cannot search — ${describe(err)}`;
      box.dataset.count = '0';
    }
  }

  render() {
    if (!this.dialog) return;
    const now = Date.now();
    const [from, to] = this.view(now);
    const span = to - from;
    const pct = (t) => `${(((Math.min(Math.max(t, from), to) - from) / span) * 100).toFixed(4)}%`;
    const seg = (cls, a, b, props) => {
      const s = el('span', { className: cls, ...props });
      s.style.left = pct(a);
      s.style.width = `calc(${pct(b)} - ${pct(a)})`;
      return s;
    };
    const width = this.track.clientWidth || 800;
    const msPerPx = span / width;
    const shown = this.shownTime();
    this.playhead ??= el('span', { className: 'tl-playhead', 'aria-hidden': 'true' });
    this.playhead.hidden = !(Number.isFinite(shown) && shown >= from && shown <= to);
    if (!this.playhead.hidden) this.playhead.style.left = pct(shown);
    this.track.setAttribute('aria-valuetext', Number.isFinite(shown) ? clock(shown) : '—');
    // The segments are drawn again only when the data or the view (by a pixel) changed:
    // a segment under the pointer keeps its tooltip.
    this.drawSel();
    // The view's window is always the one just computed: a press holds it (and a test reads it).
    this.drawnView = [from, to];
    this.track.dataset.viewFrom = String(Math.round(from));
    this.track.dataset.viewTo = String(Math.round(to));
    const key = `${this.listAt}/${span}/${Math.round(from / msPerPx)}/${width}/${this.tags.map((t) => t.id).join(',')}`;
    if (key === this.drawn && this.playhead.isConnected) return;
    // Under a press the parts stay (new recordings are drawn after it): were the part pressed
    // replaced, no click would follow the press.
    if (this.drag) return;
    this.drawn = key;
    const parts = [];
    for (const g of this.gaps) {
      if (g.to <= from || g.from >= to) continue;
      const reason = g.reason || '—';
      parts.push(seg('tl-gap', g.from, g.to, { title: `无录像 Gap ${clock(g.from)} – ${hhmm(g.to, true)}: ${reason}`, dataset: { reason, from: iso(g.from), to: iso(g.to) } }));
    }
    for (const m of this.missing) {
      if (m.to <= from || m.from >= to) continue;
      parts.push(seg('tl-gap tl-missing', m.from, m.to, { title: `文件缺失 · File missing ${clock(m.from)} – ${hhmm(m.to, true)}`, dataset: { reason: 'missing' } }));
    }
    for (const x of this.runs) {
      if (x.to <= from || x.from >= to) continue;
      parts.push(seg('tl-rec', x.from, x.to, { title: `录像 Recorded ${clock(x.from)} – ${hhmm(x.to, true)}`, dataset: { from: new Date(x.from).toISOString(), to: new Date(x.to).toISOString() } }));
    }
    for (const t of this.tags) {
      if (t.toMs <= from || t.fromMs >= to) continue;
      parts.push(seg('tl-tag', t.fromMs, t.toMs, { title: tagText(t), dataset: { id: String(t.id), label: t.label ?? '' } }));
      parts[parts.length - 1].append(el('span', 'tl-tag-label', t.label ?? ''));
    }
    this.track.replaceChildren(...parts, this.selEl, this.playhead);

    // Ticks in local time: the smallest step that leaves ~40 px between ticks, labels ~90 px apart.
    const step = STEPS.find((s) => s / msPerPx >= 40) ?? STEPS[STEPS.length - 1];
    const labelStep = STEPS.find((s) => s >= step && s / msPerPx >= 90 && s % step === 0) ?? step;
    const tz = (t) => new Date(t).getTimezoneOffset() * 60e3;
    const ticks = [];
    for (let t = Math.ceil((from - tz(from)) / step) * step + tz(from); t <= to; t += step) {
      const local = t - tz(t);
      const px = (t - from) / msPerPx;
      const labelled = local % labelStep === 0 && px > 28 && px < width - 28; // no label cut by the edges
      const tick = el('span', labelled ? 'tl-tick tl-tick-major' : 'tl-tick', labelled ? el('span', 'tl-label', hhmm(t, labelStep < 60e3)) : null);
      tick.style.left = pct(t);
      ticks.push(tick);
    }
    this.ticks.replaceChildren(...ticks);

    const total = this.runs.reduce((s, x) => s + Math.max(0, Math.min(x.to, now) - Math.max(x.from, now - DAY)), 0);
    this.summary.textContent = this.listAt ? `最近 24 小时录像 ${this.runs.length} 段 · ${this.runs.length} recorded run${this.runs.length === 1 ? '' : 's'}, ${formatDuration(total)} in 24 h` : '';
  }

  tick() {
    const shown = this.shownTime();
    if (Number.isFinite(shown)) {
      this.clockEl.textContent = clock(shown);
      this.clockEl.dateTime = new Date(shown).toISOString();
      this.clockEl.dataset.time = new Date(shown).toISOString();
      // A zoomed view follows the picture (not under a press: the view holds still then).
      if (this.span < DAY && !this.held) {
        const [from, to] = this.view();
        if (shown < from || shown > to - this.span * 0.05) this.focusAt = shown + this.span * 0.3;
      }
    }
    this.render();
  }

  // ---- playback ---------------------------------------------------------------------------

  /** shownTime is the wall-clock time of the picture shown (ms), or NaN. */
  shownTime() {
    if (!this.base || !this.video) return NaN;
    return pictureTime(this.video, this.eng, this.base);
  }

  /**
   * playAt plays the footage from time t (ms): to the end of the recorded run
   * that holds t (or to now for the latest run). The server decides what there
   * is: a time it has no footage for gets a message, never a blank player.
   */
  async playAt(t) {
    if (!this.cam) return;
    const cam = this.cam;
    const now = Date.now();
    t = Math.min(t, now - 1000);
    const seq = ++this.seq;
    this.stopEngine();
    const run = this.runs.find((x) => t >= x.from - 500 && t < x.to);
    const last = this.runs[this.runs.length - 1];
    const next = this.runs.find((x) => x.from > t);
    // Within a run: to its end (the latest run: to now, for what was indexed since). Elsewhere: ask up to the next run.
    const to = run ? (run === last ? now : run.to) : next ? next.from : now;
    if (run && t < run.from) t = run.from;
    this.base = { at: t, pdt: t, to };
    this.focusAt = this.span < DAY ? t : this.focusAt;
    this.setState('loading');
    this.say('hint', `加载 ${clock(t)} 的录像… · Loading the footage of ${clock(t)}…`);
    this.render();
    const url = playbackURL(cam.id, t, to);
    let pdt;
    try {
      ({ pdt } = await fetchPlaylist(url));
    } catch (err) {
      if (seq !== this.seq) return;
      this.base = null;
      if (err instanceof ApiError && err.status === 404) {
        this.setState('empty');
        this.say('empty', `${clock(t)} 起无录像 · No footage from ${clock(t)} — 请点击绿色录像段 · click a green (recorded) part of the timeline`);
      } else this.fail(`无法加载回放 · Cannot load the footage — ${describe(err)}`);
      this.render();
      return;
    }
    if (seq !== this.seq) return;
    if (Number.isFinite(pdt)) this.base.pdt = pdt;
    const start = Math.max(0, (t - this.base.pdt) / 1000);
    let eng;
    try {
      eng = await attachPlaylist(this.video, url, start, {
        current: () => seq === this.seq,
        onFatal: (text) => this.fail(text),
      });
    } catch (err) {
      if (seq === this.seq) this.fail(err?.message ?? String(err));
      return;
    }
    if (!eng || seq !== this.seq) {
      eng?.destroy();
      return;
    }
    this.hls = eng.hls;
    this.eng = eng;
    this.engine = eng.engine;
    this.dialog.dataset.engine = this.engine;
  }

  /** seekBy moves the picture by s seconds: within the loaded playlist if it can, else from a new one. */
  seekBy(s) {
    const shown = this.shownTime();
    if (!Number.isFinite(shown)) return;
    const v = this.video;
    const target = v.currentTime + s;
    const end = Number.isFinite(v.duration) ? v.duration : 0;
    if (this.base && v.readyState > 0 && target >= 0 && target < end - 0.5) {
      v.currentTime = target;
      if (v.paused) v.play().catch(() => {});
      return;
    }
    this.playAt(shown + s * 1000);
  }

  /** onEnded goes on with footage indexed since, if there is any, else says it has reached the end. */
  async onEnded() {
    if (!this.base || !['playing', 'buffering', 'paused'].includes(this.state)) return;
    const at = this.shownTime();
    const seq = this.seq;
    if (!Number.isFinite(at)) return;
    await this.refresh();
    if (seq !== this.seq) return;
    const next = this.runs.find((x) => x.to > at + 1000 && x.from <= at + 5000);
    if (next) {
      this.playAt(Math.max(at, next.from));
      return;
    }
    this.setState('ended');
    this.say('ended', `已播放到 ${clock(at)}，其后暂无录像 · End of the footage at ${clock(at)}`);
  }

  stopEngine() {
    this.eng?.destroy();
    this.eng = null;
    this.hls = null;
    this.engine = '';
    this.base = null;
    if (this.dialog) delete this.dialog.dataset.engine;
    if (this.video) stopVideo(this.video);
    if (this.clockEl) {
      this.clockEl.textContent = '—';
      delete this.clockEl.dataset.time;
    }
  }

  fail(text) {
    this.stopEngine();
    this.setState('error');
    this.say('error', text);
  }

  setState(state) {
    this.state = state;
    if (this.dialog) this.dialog.dataset.state = state;
    if (state === 'playing') this.say('', '');
    else if (state === 'buffering') this.say('hint', '缓冲中 · Buffering…');
  }

  say(kind, text) {
    this.message.dataset.kind = kind;
    this.message.textContent = text;
    this.message.hidden = text === '';
  }
}

/**
 * InlineFootage plays one window of a camera's footage in place — an
 * incident's linked clip — with the footage view's engine (attachPlaylist:
 * hls.js over the HLS VOD playlist, or native HLS). The <video> has the
 * browser's controls (keyboard usable); the bar shows the wall-clock time of
 * the picture, and Close.
 *
 * Test hooks: .inline-footage[data-camera][data-from][data-to][data-state=loading|playing|buffering|paused|ended|empty|error][data-engine]
 *   with video, .footage-clock[data-time], .footage-message[data-kind], .inline-close
 */
export class InlineFootage {
  /** onClose() runs when its Close is pressed (after it stopped). */
  constructor({ onClose = () => {} } = {}) {
    this.onClose = onClose;
    this.seq = 0;
    this.eng = null;
    this.base = null;
    this.timer = 0;
    this.video = el('video', { className: 'inline-video', muted: true, playsInline: true, controls: true, 'aria-label': '录像片段 · Footage clip' });
    this.message = el('div', { className: 'footage-message', role: 'status', hidden: true });
    this.clockEl = el('time', { className: 'footage-clock', title: '画面时间 · Time of the picture shown' }, '—');
    this.rangeEl = el('span', 'inline-range');
    const close = el('button', { type: 'button', className: 'btn btn-small inline-close' }, '关闭播放 · Close player');
    close.addEventListener('click', () => {
      this.stop();
      this.element.remove();
      this.onClose();
    });
    this.element = el(
      'div',
      { className: 'inline-footage', role: 'region', 'aria-label': '录像片段播放器 · Footage player' },
      el('div', 'inline-stage', this.video, this.message),
      el('div', 'inline-bar', this.clockEl, this.rangeEl, close),
    );
    const v = this.video;
    v.addEventListener('playing', () => this.setState('playing'));
    v.addEventListener('waiting', () => this.state === 'playing' && this.setState('buffering'));
    v.addEventListener('pause', () => this.state === 'playing' && !v.ended && this.setState('paused'));
    v.addEventListener('ended', () => {
      if (!this.base) return;
      this.setState('ended');
      this.say('ended', '片段已播放完 · End of the clip');
    });
    v.addEventListener('error', () => {
      if (this.eng?.engine === 'native' && this.base) this.fail(`播放错误 · Media error ${v.error?.code ?? ''}`.trim());
    });
  }

  /** play plays camera cam ({id, code}) from..to (ms): from the first footage in the window to its end, or now. */
  async play(cam, from, to) {
    this.stop();
    const seq = ++this.seq;
    const now = Date.now();
    const end = Math.min(to, now - 500);
    const d = this.element.dataset;
    d.camera = String(cam.id);
    d.from = new Date(from).toISOString();
    d.to = new Date(to).toISOString();
    this.rangeEl.textContent = `${cam.code ?? ''} ${clock(from)} – ${hhmm(to, true)}`.trim();
    this.setState('loading');
    this.say('hint', '加载录像… · Loading the footage…');
    if (!(end > from)) {
      this.setState('empty');
      this.say('empty', '此时段尚未开始 · This window has not started yet');
      return;
    }
    const url = playbackURL(cam.id, from, end);
    let pdt;
    try {
      ({ pdt } = await fetchPlaylist(url));
    } catch (err) {
      if (seq !== this.seq) return;
      if (err instanceof ApiError && err.status === 404) {
        this.setState('empty');
        this.say('empty', '此时段无录像 · No footage in this window');
      } else this.fail(`无法加载回放 · Cannot load the footage — ${describe(err)}`);
      return;
    }
    if (seq !== this.seq) return;
    this.base = { at: from, pdt: Number.isFinite(pdt) ? pdt : from };
    const start = Math.max(0, (from - this.base.pdt) / 1000);
    let eng;
    try {
      eng = await attachPlaylist(this.video, url, start, { current: () => seq === this.seq, onFatal: (text) => this.fail(text) });
    } catch (err) {
      if (seq === this.seq) this.fail(err?.message ?? String(err));
      return;
    }
    if (!eng) return;
    this.eng = eng;
    d.engine = eng.engine;
    this.timer = setInterval(() => this.tick(), 250);
  }

  tick() {
    if (!this.base) return;
    const t = pictureTime(this.video, this.eng, this.base);
    if (!Number.isFinite(t)) return;
    this.clockEl.textContent = clock(t);
    this.clockEl.dateTime = new Date(t).toISOString();
    this.clockEl.dataset.time = new Date(t).toISOString();
  }

  /** stop ends playback and frees the engine (the element stays where it is). */
  stop() {
    this.seq++;
    clearInterval(this.timer);
    this.timer = 0;
    this.eng?.destroy();
    this.eng = null;
    this.base = null;
    stopVideo(this.video);
    delete this.element.dataset.engine;
    delete this.element.dataset.state;
    this.clockEl.textContent = '—';
    delete this.clockEl.dataset.time;
  }

  fail(text) {
    this.stop();
    this.setState('error');
    this.say('error', text);
  }

  setState(state) {
    this.state = state;
    this.element.dataset.state = state;
    if (state === 'playing') this.say('', '');
    else if (state === 'buffering') this.say('hint', '缓冲中 · Buffering…');
  }

  say(kind, text) {
    this.message.dataset.kind = kind;
    this.message.textContent = text;
    this.message.hidden = text === '';
  }
}

/** tagText is a tag's hover text: label, note, author, time. */
function tagText(t) {
  return `🏷 ${t.label ?? ''}${t.note ? ` — ${t.note}` : ''} · ${t.author || '—'} · ${clock(t.fromMs)} – ${hhmm(t.toMs, true)}`;
}

function formatDuration(ms) {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
