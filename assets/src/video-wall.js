// The grid panel's video wall (every camera of the open grid, sub stream, at
// once) and the larger player (one camera's main stream in a modal dialog).
//
// Test hooks:
//   #panel li.vtile[data-video-camera=ID][data-state=connecting|playing|stalled|reconnecting|offline|error|idle]
//     [data-status=online|connecting|offline][data-first-frame-at=performance.now() of its first picture]
//     with a <video> and .vtile-overlay (the text over a tile that is not playing)
//   #player-dialog[open][data-camera=ID][data-stream=main][data-state=…] with a <video>,
//     and .player-footage (回放 · Playback: the camera's recorded footage, video.playback)

import { CAMERA_STATUS_LABEL } from './camera-layer.js';
import { el, wireModal } from './dom.js';
import { LivePlayer, STREAM_LABEL } from './video.js';
import { PTZPad } from './ptz.js';

// ENGINE_LABEL names how a player plays, shown on its tile and in its figures.
const ENGINE_LABEL = { webrtc: 'WebRTC', mse: 'MSE', hls: 'HLS' };
import { formatBitrate, formatFps, offlineText } from './video-format.js';

const MAX_TILES = 24; // more cameras are listed, not played at once
const OFFSCREEN_STOP_MS = 3000; // a tile scrolled out of sight stops after this
const HIDDEN_STOP_MS = 10000; // … and all of them, this long after the page is hidden

/** tileText is the overlay text for a player's state ('' while it plays). */
function overlayText(phase, player, cam) {
  const st = player?.status;
  switch (phase) {
    case 'playing':
      return '';
    case 'offline':
      return offlineText(st?.since ?? cam.status_since, st?.reason ?? cam.status_reason);
    case 'error':
      return player?.error || '错误 · Error';
    case 'stalled':
      return '缓冲中 · Buffering…';
    case 'reconnecting':
      return `重新连接 · Reconnecting…${player?.message ? ` — ${player.message}` : ''}`;
    case 'idle':
      return '已暂停 · Paused';
    default:
      return '连接中 · Connecting…';
  }
}

/** effectivePhase treats a camera the server lists as offline as offline until its stream says otherwise. */
function effectivePhase(player, cam) {
  const phase = player?.phase ?? 'idle';
  if ((phase === 'connecting' || phase === 'reconnecting' || phase === 'idle') && !player?.status && cam.status === 'offline') return 'offline';
  return phase;
}

function statusOf(player, cam) {
  return player?.status?.status ?? cam.status ?? 'offline';
}

function badge(status, className) {
  return el('span', { className: `cam-status ${className}`, dataset: { status } }, CAMERA_STATUS_LABEL[status] ?? status);
}

/**
 * VideoWall fills the panel's wall section with one tile per camera;
 * onOpen(camera) is called when a tile is activated (click, Enter, Space).
 */
export class VideoWall {
  constructor(section, { onOpen = () => {} } = {}) {
    this.section = section;
    this.list = section.querySelector('[data-field="wall"]');
    this.count = section.querySelector('[data-field="wall-n"]');
    this.note = section.querySelector('[data-field="wall-note"]');
    this.onOpen = onOpen;
    this.tiles = new Map(); // camera id → {cam, li, video, overlay, badge, player, visible, offTimer}
    this.gridId = null;
    this.hiddenTimer = 0;
    this.observer = typeof IntersectionObserver === 'function' ? new IntersectionObserver((entries) => this.onIntersect(entries), { threshold: 0 }) : null;
    document.addEventListener('visibilitychange', () => this.onVisibility());
  }

  /** show plays the cameras of a grid; the cameras of the last grid stop first. */
  show(gridId, cameras) {
    this.clear();
    this.gridId = String(gridId);
    const list = cameras.slice(0, MAX_TILES);
    this.section.hidden = cameras.length === 0;
    this.section.dataset.wallGrid = this.gridId; // not data-grid-id: that marks grid links
    this.count.textContent = cameras.length ? `(${cameras.length})` : '';
    this.list.dataset.count = String(list.length);
    this.note.hidden = cameras.length <= MAX_TILES;
    this.note.textContent = cameras.length > MAX_TILES ? `仅播放前 ${MAX_TILES} 路 · Playing the first ${MAX_TILES} cameras` : '';
    for (const cam of list) {
      const t = this.tile(cam);
      this.tiles.set(Number(cam.id), t);
      this.list.append(t.li);
    }
    // The tiles in sight start now (an observer reports only at the next
    // rendering step, late on a busy page); the observer takes over from there.
    const view = this.viewport();
    for (const t of this.tiles.values()) {
      const r = t.li.getBoundingClientRect();
      if (r.bottom > view.top && r.top < view.bottom && r.right > view.left && r.left < view.right) this.setVisible(t, true);
      if (this.observer) this.observer.observe(t.li);
      else this.setVisible(t, true);
    }
  }

  // viewport is the part of the page the wall can be seen in: the window, clipped by the scrolling panel.
  viewport() {
    const v = { top: 0, left: 0, bottom: innerHeight, right: innerWidth };
    for (let e = this.list.parentElement; e && e !== document.body; e = e.parentElement) {
      const o = getComputedStyle(e).overflowY;
      if (o === 'auto' || o === 'scroll' || o === 'hidden') {
        const r = e.getBoundingClientRect();
        v.top = Math.max(v.top, r.top);
        v.bottom = Math.min(v.bottom, r.bottom);
        v.left = Math.max(v.left, r.left);
        v.right = Math.min(v.right, r.right);
      }
    }
    return v;
  }

  /** clear stops every tile's player and empties the wall. */
  clear() {
    for (const t of this.tiles.values()) {
      clearTimeout(t.offTimer);
      this.observer?.unobserve(t.li);
      t.player.destroy();
    }
    this.tiles.clear();
    this.list.replaceChildren();
    this.section.hidden = true;
    this.gridId = null;
    delete this.section.dataset.wallGrid;
    clearTimeout(this.hiddenTimer);
  }

  /** setStatus applies a camera's new status (a camera.online/offline event). */
  setStatus(cameraId, { status, reason, since }) {
    const t = this.tiles.get(Number(cameraId));
    if (!t) return;
    t.cam = { ...t.cam, status, status_reason: reason, status_since: since };
    if (status === 'online') t.player.kick();
    this.render(t);
  }

  tile(cam) {
    const video = el('video', { className: 'vtile-video', muted: true, playsInline: true, 'aria-hidden': 'true' });
    // The camera's latest picture (a snapshot of its sub stream) until the
    // live picture comes: an online camera's tile is never blank.
    if (cam.status === 'online') video.poster = `/api/v1/cameras/${encodeURIComponent(cam.id)}/snapshot.jpg?stream=sub`;
    const overlay = el('span', 'vtile-overlay');
    const b = badge(cam.status ?? 'offline', 'vtile-badge');
    const label = `${cam.code ?? ''} ${cam.name ?? ''}`.trim();
    const btn = el(
      'button',
      { type: 'button', className: 'vtile-btn', title: `${label} — 打开主码流 · Open the main stream`, 'aria-label': `${label}: 打开主码流 · Open the main stream` },
      video,
      overlay,
      b,
      el('span', 'vtile-bar', el('span', 'vtile-code', cam.code ?? ''), el('span', 'vtile-name', cam.name ?? '')),
    );
    // The wall is silent; a tile with sound offers it (one heard at a time).
    const sound = soundButton();
    const li = el('li', { className: 'vtile', dataset: { videoCamera: String(cam.id), state: 'idle', status: cam.status ?? '' } }, btn, sound);
    const via = el('span', { className: 'vtile-via', hidden: true });
    const engineEl = el('span', { className: 'vtile-engine', title: '播放方式 · How this tile plays' });
    btn.append(via);
    btn.querySelector('.vtile-bar')?.append(engineEl);
    const t = { cam, li, video, overlay, badge: b, via, engineEl, sound, player: null, visible: false, offTimer: 0 };
    t.player = new LivePlayer(video, { cameraId: cam.id, stream: 'sub', onChange: () => this.render(t) });
    btn.addEventListener('click', () => this.onOpen(t.cam, btn));
    sound.addEventListener('click', () => {
      // Unmuting one player mutes the others (LivePlayer's sound event).
      if (t.player.muted || t.player.soundElsewhere) t.player.playWithSound();
      else t.player.setMuted(true);
    });
    this.render(t);
    return t;
  }

  render(t) {
    const p = t.player;
    const phase = effectivePhase(p, t.cam);
    const status = statusOf(p, t.cam);
    t.li.dataset.state = phase;
    t.li.dataset.status = status;
    // Which stream plays: the sub stream, or its fallback when this browser
    // cannot decode it (an H.265 camera): the tile says so.
    if (p) t.li.dataset.playing = p.stream;
    if (p?.engine) t.li.dataset.engine = p.engine;
    t.engineEl.textContent = p?.engine && p.phase === 'playing' ? ENGINE_LABEL[p.engine] ?? p.engine : '';
    t.via.hidden = !p || p.stream === p.asked;
    t.via.textContent = p ? (STREAM_LABEL[p.stream] ?? p.stream) : '';
    renderSound(t.sound, p);
    if (p?.firstFrameAt) t.li.dataset.firstFrameAt = String(Math.round(p.firstFrameAt));
    if (p?.startedAt) t.li.dataset.startedAt = String(Math.round(p.startedAt));
    const text = overlayText(phase, p, t.cam);
    t.overlay.textContent = text;
    t.overlay.hidden = text === '';
    t.badge.dataset.status = status;
    t.badge.textContent = CAMERA_STATUS_LABEL[status] ?? status;
  }

  // ---- play only what can be seen ---------------------------------------------------------

  setVisible(t, on) {
    t.visible = on;
    clearTimeout(t.offTimer);
    t.offTimer = 0;
    if (on) {
      if (!document.hidden) t.player.start();
    } else {
      t.offTimer = setTimeout(() => t.player.stop(), OFFSCREEN_STOP_MS);
    }
  }

  onIntersect(entries) {
    for (const e of entries) {
      const t = this.tiles.get(Number(e.target.dataset.videoCamera));
      if (t && t.li === e.target) this.setVisible(t, e.isIntersecting);
    }
  }

  onVisibility() {
    clearTimeout(this.hiddenTimer);
    if (document.hidden) {
      this.hiddenTimer = setTimeout(() => {
        for (const t of this.tiles.values()) t.player.stop();
      }, HIDDEN_STOP_MS);
      return;
    }
    for (const t of this.tiles.values()) if (t.visible) t.player.start();
  }
}

/**
 * PlayerDialog is the larger player: one camera's stream (main by default)
 * in a modal dialog with a close button; Esc closes it too, and focus goes
 * back to what opened it (the wall's tile, the camera card's Play button).
 */
export class PlayerDialog {
  /**
   * onPlayback(cam, opener) opens the camera's footage: the dialog's
   * Playback button shows only while canPlayback() is true.
   */
  constructor({ onPlayback = null, canPlayback = () => false } = {}) {
    this.onPlayback = onPlayback;
    this.canPlayback = canPlayback;
    this.ptz = new PTZPad();
    this.dialog = null;
    this.player = null;
    this.cam = null;
    this.opener = null;
    this.timer = 0;
    this.lastFrames = 0;
    this.lastBytes = 0;
    this.lastAt = 0;
  }

  get isOpen() {
    return !!this.dialog?.open;
  }

  build() {
    this.title = el('h2', { className: 'dialog-title player-title', id: 'player-title' });
    this.badge = badge('connecting', 'player-badge');
    this.streamLabel = el('span', 'player-stream');
    const close = el('button', { type: 'button', className: 'dialog-close', 'aria-label': '关闭 Close', title: '关闭 Close (Esc)' }, '×');
    close.addEventListener('click', () => this.close());
    this.footageBtn = el('button', { type: 'button', className: 'btn btn-small player-footage', title: '录像回放 · Recorded footage of this camera', hidden: true }, '回放 · Playback');
    this.footageBtn.addEventListener('click', () => {
      const cam = this.cam;
      const opener = this.opener;
      this.opener = null; // the footage dialog gives the focus back instead
      this.close();
      if (cam && this.onPlayback) this.onPlayback(cam, opener);
    });
    this.video = el('video', { className: 'player-video', muted: true, playsInline: true });
    this.sound = soundButton();
    this.sound.addEventListener('click', () => {
      const p = this.player;
      if (!p) return;
      if (p.muted || p.soundElsewhere) p.playWithSound();
      else p.setMuted(true);
    });
    this.overlay = el('div', { className: 'player-overlay', role: 'status' });
    this.stats = el('div', { className: 'player-stats', 'aria-live': 'off' });
    this.dialog = el(
      'dialog',
      { className: 'dialog dialog-player', id: 'player-dialog', 'aria-labelledby': 'player-title' },
      el('div', 'dialog-head', this.title, this.badge, this.streamLabel, this.footageBtn, close),
      el('div', 'player-body', el('div', 'player-col', el('div', 'player-stage', this.video, this.overlay, this.sound), this.stats)),
    );
    // A PTZ camera gets its pad beside the picture (cameras.ptz).
    this.ptz.mount(this.dialog.querySelector('.player-body'));
    this.ptz.attachStage(this.dialog.querySelector('.player-stage'));
    // A click on the backdrop closes it; focus goes back to what opened it.
    wireModal(this.dialog, this);
    document.body.append(this.dialog);
  }

  /**
   * open plays camera cam ({id, code, name, status, …}) in the dialog; focus
   * goes back to opener (else to what had it) when the dialog closes.
   */
  open(cam, { stream = 'main', opener = null } = {}) {
    if (!this.dialog) this.build();
    this.teardown();
    if (!this.dialog.open) this.opener = opener ?? (document.activeElement instanceof HTMLElement ? document.activeElement : null);
    this.cam = cam;
    this.title.replaceChildren(el('span', 'player-code', cam.code ?? ''), ` ${cam.name ?? ''}`);
    this.streamLabel.textContent = STREAM_LABEL[stream] ?? stream;
    this.dialog.dataset.camera = String(cam.id);
    this.dialog.dataset.stream = stream;
    this.footageBtn.hidden = !this.onPlayback || !this.canPlayback();
    this.player = new LivePlayer(this.video, { cameraId: cam.id, stream, onChange: () => this.render() });
    this.render();
    if (!this.dialog.open) this.dialog.showModal();
    this.player.start();
    this.lastAt = performance.now();
    this.lastFrames = 0;
    this.lastBytes = 0;
    this.timer = setInterval(() => this.showStats(), 1000);
    this.showStats();
    this.ptz.show(cam);
  }

  close() {
    if (this.dialog?.open) this.dialog.close(); // 'close' tears down
  }

  /** setStatus applies a camera.online/offline event to the camera shown, if it is. */
  setStatus(cameraId, { status, reason, since }) {
    if (!this.cam || Number(this.cam.id) !== Number(cameraId)) return;
    this.cam = { ...this.cam, status, status_reason: reason, status_since: since };
    if (status === 'online') this.player?.kick();
    this.render();
  }

  teardown() {
    clearInterval(this.timer);
    this.timer = 0;
    this.ptz.hide();
    this.player?.destroy();
    this.player = null;
    if (this.dialog) delete this.dialog.dataset.state;
  }

  render() {
    const p = this.player;
    if (!p || !this.cam) return;
    const phase = effectivePhase(p, this.cam);
    const status = statusOf(p, this.cam);
    this.dialog.dataset.state = phase;
    // The stream playing may be a fallback of the one asked for (an H.265
    // camera in a browser without H.265): say which.
    this.dialog.dataset.playing = p.stream;
    if (p.engine) this.dialog.dataset.engine = p.engine;
    this.streamLabel.textContent = STREAM_LABEL[p.stream] ?? p.stream;
    renderSound(this.sound, p);
    this.badge.dataset.status = status;
    this.badge.textContent = CAMERA_STATUS_LABEL[status] ?? status;
    const text = overlayText(phase, p, this.cam);
    this.overlay.textContent = text;
    this.overlay.hidden = text === '';
  }

  showStats() {
    const p = this.player;
    if (!p) return;
    const v = this.video;
    const now = performance.now();
    const frames = typeof v.getVideoPlaybackQuality === 'function' ? v.getVideoPlaybackQuality().totalVideoFrames : 0;
    const dt = (now - this.lastAt) / 1000;
    const fps = dt > 0 && frames >= this.lastFrames ? (frames - this.lastFrames) / dt : NaN;
    const bps = dt > 0 && p.bytesIn >= this.lastBytes ? ((p.bytesIn - this.lastBytes) * 8) / dt : NaN;
    this.lastAt = now;
    this.lastFrames = frames;
    this.lastBytes = p.bytesIn;
    const parts = [];
    const w = v.videoWidth || p.width;
    const h = v.videoHeight || p.height;
    if (w && h) parts.push(`${w}×${h}`);
    if (p.phase === 'playing') {
      parts.push(formatFps(fps), formatBitrate(bps));
      const lag = p.latency;
      if (Number.isFinite(lag)) parts.push(`缓冲 buffer ${lag.toFixed(2)} s`);
    }
    if (p.mime) parts.push(p.mime.replace(/^video\/mp4;\s*codecs="?([^"]+)"?$/, '$1').replace(/^video\//, ''));
    if (p.engine) parts.push(ENGINE_LABEL[p.engine] ?? p.engine);
    if (p.audio) parts.push(p.audio);
    else if (p.audioNote) parts.push(`无声 · no sound: ${p.audioNote}`);
    this.stats.textContent = parts.join(' · ');
  }
}

/** soundButton is a player's mute switch, shown once its sound plays. */
function soundButton() {
  return el('button', { type: 'button', className: 'vsound', hidden: true, dataset: { muted: 'true' } });
}

/** renderSound shows p's sound and whether it is heard on button b. */
function renderSound(b, p) {
  const elsewhere = Boolean(p?.soundElsewhere);
  const has = (Boolean(p?.audio) || elsewhere) && p.phase === 'playing';
  b.hidden = !has;
  if (!has) return;
  const muted = p.muted || elsewhere;
  b.dataset.muted = String(muted);
  b.dataset.elsewhere = String(elsewhere);
  b.textContent = muted ? '🔇' : '🔊';
  const other = p.engine === 'webrtc' ? 'MSE' : 'WebRTC';
  const label = elsewhere
    ? `打开声音（改用 ${other}）· Unmute (plays over ${other})`
    : muted
      ? `打开声音 · Unmute (${p.audio})`
      : `静音 · Mute (${p.audio})`;
  b.title = label;
  b.setAttribute('aria-label', label);
  b.setAttribute('aria-pressed', String(!muted));
}
