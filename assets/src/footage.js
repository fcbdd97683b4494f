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
//
// A GB/T 28181 channel has a second lane under the timeline: the recordings
// the device itself holds ("设备录像 On device", footage-device.js; hooks
// #footage-dialog[data-device-lane] .tl-device, .footage-devsel, see there).
// A range of them plays from the device in the player area
// (footage-device-play.js; hooks #footage-dialog[data-mode=device] .devplay)
// or is fetched into gridwatch's footage.
//
// The dialog is split by concern: this file opens it, lists the recordings
// and plays them; footage-timeline.js draws the timeline and takes its
// presses and drags; footage-tags.js is the selected range (tag, export,
// link to an incident) and the tag list; footage-search.js finds tags by
// label; footage-device.js draws a GB/T 28181 device's own recordings and
// fetches them, footage-device-play.js plays them from the device.
// Their methods are the dialog's own (mixed into its prototype below), so
// they share its state as one class. The engine and the state shown are
// footage-player.js's, shared with the inline clip player (footage-inline.js).

import { describe, request } from './api.js';
import { el, wireModal } from './dom.js';
import { DAY, clock, iso } from './footage-format.js';
import { FootagePlayer, pictureTime, playbackURL, stopVideo } from './footage-player.js';
import { searchMethods } from './footage-search.js';
import { tagMethods } from './footage-tags.js';
import { SPANS, timelineMethods } from './footage-timeline.js';
import { deviceMethods } from './footage-device.js';
import { devicePlayMethods } from './footage-device-play.js';
import { serverNow } from './clock.js';

const REFRESH_MS = 30000;
const TICK_MS = 250;
const JOIN_MS = 2000; // recordings this close together form one run
const STEP_S = 10; // ← / →

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

/**
 * FootageDialog plays one camera's recorded footage; open(cam, {opener})
 * shows it, and focus goes back to opener when it closes.
 */
export class FootageDialog extends FootagePlayer {
  constructor() {
    super();
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
    this.confirmDelete = null; // the tag whose delete waits for its confirmation
    this.disarmDelete = null; // takes the question back (a click elsewhere, Escape)
    this.editing = null; // the tag being edited: the selection is its range
  }

  /** stateEl carries data-state: the dialog, once built. */
  get stateEl() {
    return this.dialog;
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
    const devBar = this.buildDevicePlay();
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
        el('div', 'player-stage', this.video, this.message, this.devVideo, this.devMessage),
        devBar,
        el('div', 'footage-bar', this.clockEl, this.summary, selectBtn, el('span', { className: 'tl-zooms', role: 'group', 'aria-label': '时间范围 Span' }, ...this.zooms)),
        el('div', 'tl', this.track, this.buildDevice(), this.hover, this.ticks),
        this.selBox,
        this.buildDeviceSel(),
        this.tagList,
        this.searchBox,
        el('div', 'footage-keys', '点击绿色录像段回放 · Click a green (recorded) part to play · 拖动选择时段 · drag to select a range · ', el('kbd', null, '←'), ' ', el('kbd', null, '→'), ' ±10 s · ', el('kbd', null, 'Esc'), ' 关闭 close'),
      ),
    );
    // A click on the backdrop closes it; focus goes back to what opened it.
    wireModal(this.dialog, this);
    this.dialog.addEventListener('keydown', (ev) => {
      if (ev.key !== 'ArrowLeft' && ev.key !== 'ArrowRight') return;
      if (ev.target instanceof HTMLElement && ev.target.closest('input, select, textarea')) return;
      ev.preventDefault();
      const s = ev.key === 'ArrowLeft' ? -STEP_S : STEP_S;
      if (this.devicePlaying()) this.seekDeviceBy(s);
      else this.seekBy(s);
    });
    const v = this.video;
    this.watchVideo();
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
    this.openDevice(cam);
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
    this.stop();
    this.stopDevice();
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
    const now = serverNow();
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
    this.closeDevicePlay(); // gridwatch's footage takes the player area back
    const cam = this.cam;
    const now = serverNow();
    t = Math.min(t, now - 1000);
    const seq = ++this.seq;
    this.stop();
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
    const list = await this.loadPlaylist(url, seq, `${clock(t)} 起无录像 · No footage from ${clock(t)} — 请点击绿色录像段 · click a green (recorded) part of the timeline`);
    if (!list) {
      if (seq === this.seq) {
        this.base = null;
        this.render();
      }
      return;
    }
    if (Number.isFinite(list.pdt)) this.base.pdt = list.pdt;
    const eng = await this.attach(url, Math.max(0, (t - this.base.pdt) / 1000), seq);
    if (!eng) return;
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

  /** stop ends playback and frees the engine (the dialog stays open). */
  stop() {
    this.eng?.destroy();
    this.eng = null;
    this.hls = null;
    this.engine = '';
    this.base = null;
    if (this.dialog) delete this.dialog.dataset.engine;
    if (this.video) stopVideo(this.video);
    if (this.clockEl) this.clearClock();
  }
}

Object.assign(FootageDialog.prototype, timelineMethods, tagMethods, searchMethods, deviceMethods, devicePlayMethods);
