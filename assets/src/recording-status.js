// The recorder's disk-full warning (video.playback): a banner under the top
// bar while recording is stopped because the disk is full — "Recording
// stopped: disk full since HH:MM — N MB free" — until it resumes.
//
// GET /api/v1/recording/status at start ({"state":"ok"|"disk_full","since",
// "free_bytes","min_free_bytes","message"}); then the live events
// recording.disk_full / recording.resumed (the same payload as data), and the
// status again after each reconnect or poll. A server without the endpoint
// (404) shows nothing.
//
// Test hooks: #recording-banner[data-state=disk_full][data-since] (hidden when ok).

import { ApiError, can, getJSON } from './api.js';
import { el } from './dom.js';
import { Loads } from './freshness.js';

const pad = (n) => String(n).padStart(2, '0');

function mb(bytes) {
  const n = Number(bytes);
  if (!Number.isFinite(n)) return '';
  return `${(n / (1024 * 1024)).toFixed(n < 10 * 1024 * 1024 ? 1 : 0)} MB`;
}

export class RecordingStatus {
  constructor() {
    this.banner = null;
    this.missing = false; // the server has no status endpoint
    // Loads overlap events (at start, after a reconnect, each poll): an
    // answer is dropped when a later load's came first or an event was
    // heard after it was sent (events are newer, and missed ones replay).
    this.loads = new Loads();
    this.heardAt = -Infinity;
  }

  get enabled() {
    return can('video.playback');
  }

  build() {
    this.text = el('span', 'banner-text rec-banner-text');
    this.banner = el(
      'div',
      { className: 'banner banner-warn', id: 'recording-banner', role: 'alert', hidden: true },
      el('span', { className: 'banner-icon', 'aria-hidden': 'true' }, '!'),
      this.text,
    );
    const after = document.querySelector('#banner') ?? document.querySelector('.topbar');
    if (after) after.after(this.banner);
    else document.body.prepend(this.banner);
  }

  /** load asks the server for the recorder's state (404: the server has none; nothing shows). */
  async load() {
    if (!this.enabled || this.missing) return;
    const t = this.loads.ask();
    try {
      const st = await getJSON('/api/v1/recording/status');
      if (this.heardAt > t.sent || !this.loads.take(t)) return;
      this.apply(st);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) this.missing = true;
      else console.warn('recording status', err);
    }
  }

  /** onEvent applies a live event; it reports whether the event was one of the recorder's. */
  onEvent(type, data) {
    if (type !== 'recording.disk_full' && type !== 'recording.resumed') return false;
    if (!this.enabled) return true;
    this.heardAt = performance.now();
    this.apply({ ...(data && typeof data === 'object' ? data : {}), state: type === 'recording.disk_full' ? 'disk_full' : 'ok' });
    return true;
  }

  /** apply shows or clears the banner for a status payload. */
  apply(st) {
    if (!this.enabled || !st || typeof st !== 'object') return;
    if (!this.banner) this.build();
    if (st.state !== 'disk_full') {
      this.banner.hidden = true;
      delete this.banner.dataset.state;
      delete this.banner.dataset.since;
      return;
    }
    const since = Date.parse(st.since ?? '');
    const at = Number.isFinite(since) ? new Date(since) : null;
    const when = at ? `${pad(at.getHours())}:${pad(at.getMinutes())}` : '—';
    const free = mb(st.free_bytes);
    const min = mb(st.min_free_bytes);
    this.text.textContent = `录像已停止：磁盘已满，自 ${when} 起${free ? `，剩余 ${free}` : ''} · Recording stopped: disk full since ${when}${free ? ` — ${free} free` : ''}${min ? ` (needs ${min})` : ''}`;
    this.banner.title = st.message ?? '';
    this.banner.dataset.state = 'disk_full';
    this.banner.dataset.since = at ? at.toISOString() : '';
    this.banner.hidden = false;
  }
}
