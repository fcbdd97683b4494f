// The footage dialog's second lane, for a GB/T 28181 channel: the recordings
// the device itself holds (GET /api/v1/cameras/{id}/device-recordings, which
// asks the device over SIP), drawn under gridwatch's own, in their own colour,
// labelled "设备录像 On device". They are asked for the last 24 hours — the
// widest view the timeline shows; a zoomed view draws its part of them —
// when the dialog opens and every DEVICE_REFRESH_MS while it is open. A
// device that cannot answer (offline, slow) gives a small note in the lane,
// never an error over the player: gridwatch's footage plays on regardless.
// deviceMethods are FootageDialog's own (footage.js mixes them in).
//
// Test hooks: #footage-dialog .tl-device[data-state=loading|ok|empty|error]
// [data-count] with .tl-dev[data-from][data-to] (ISO) and .tl-device-note.

import { describe, request } from './api.js';
import { el } from './dom.js';
import { DAY, clock, hhmm, iso } from './footage-format.js';
import { isGBCamera } from './gb-url.js';

const DEVICE_REFRESH_MS = 60000;

function sizeText(n) {
  if (!Number.isFinite(n) || n <= 0) return '';
  const mb = n / (1024 * 1024);
  return mb >= 1024 ? `${(mb / 1024).toFixed(1)} GB` : `${mb.toFixed(1)} MB`;
}

/** deviceMethods fetch and draw the device-held recordings of a GB/T 28181 channel. */
export const deviceMethods = {
  /** buildDevice makes the lane (hidden until a GB/T 28181 channel opens). */
  buildDevice() {
    this.devTrack = el('div', { className: 'tl-dev-track', 'aria-hidden': 'true' });
    this.devNote = el('span', { className: 'tl-device-note', role: 'status' });
    this.devLane = el(
      'div',
      { className: 'tl-device', hidden: true, dataset: { state: 'none' }, title: '设备自身保存的录像（此处不能回放）· Recordings the device itself holds (not played here)' },
      this.devTrack,
      el('span', 'tl-device-label', '设备录像 On device'),
      this.devNote,
    );
    this.devRecs = [];
    this.devAt = 0;
    this.devSeq = 0;
    this.devTimer = 0;
    return this.devLane;
  },

  /** openDevice starts the lane for camera cam: shown and read for a GB/T 28181 channel, else hidden. */
  openDevice(cam) {
    this.stopDevice();
    this.devRecs = [];
    this.devAt = 0;
    const gb = isGBCamera(cam);
    this.devLane.hidden = !gb;
    this.dialog.dataset.deviceLane = String(gb);
    if (!gb) {
      this.setDeviceState('none', '');
      return;
    }
    this.refreshDevice();
    this.devTimer = setInterval(() => this.refreshDevice(), DEVICE_REFRESH_MS);
  },

  /** stopDevice stops reading; an answer still on its way is dropped (not aborted: the device is asked either way). */
  stopDevice() {
    clearInterval(this.devTimer);
    this.devTimer = 0;
    this.devSeq++;
    this.devBusy = false;
  },

  setDeviceState(state, note, count) {
    this.devLane.dataset.state = state;
    if (count === undefined) delete this.devLane.dataset.count;
    else this.devLane.dataset.count = String(count);
    this.devNote.textContent = note;
    this.devNote.title = note;
  },

  async refreshDevice() {
    const cam = this.cam;
    if (!cam || this.devBusy) return; // one question to the device at a time
    const seq = ++this.devSeq;
    const now = Date.now();
    this.devBusy = true;
    if (!this.devAt) this.setDeviceState('loading', '正在询问设备… · Asking the device…');
    try {
      const q = new URLSearchParams({ from: iso(now - DAY), to: iso(now + 60e3) });
      const res = await request('GET', `/api/v1/cameras/${cam.id}/device-recordings?${q}`);
      if (seq !== this.devSeq || this.cam !== cam) return;
      this.devRecs = (Array.isArray(res?.recordings) ? res.recordings : [])
        .map((r) => ({ ...r, fromMs: Date.parse(r.from), toMs: Date.parse(r.to) }))
        .filter((r) => r.toMs > r.fromMs);
      const n = this.devRecs.length;
      if (n) this.setDeviceState('ok', `设备录像 ${n} 段 · ${n} recording${n === 1 ? '' : 's'} on the device`, n);
      else this.setDeviceState('empty', '设备最近 24 小时没有录像 · The device holds no recordings in the last 24 h', 0);
    } catch (err) {
      if (seq !== this.devSeq || this.cam !== cam) return;
      // What the device held last time stays drawn; the note says why it is not fresh.
      this.setDeviceState('error', `无法读取设备录像 · Cannot read the device’s recordings — ${describe(err)}`);
    } finally {
      if (seq === this.devSeq) this.devBusy = false;
    }
    this.devAt = Date.now(); // in the timeline's key: the lane is drawn again
    this.render();
  },

  /** drawDevice draws the device-held recordings in view [from, to]; seg(cls, a, b, props) makes a part. */
  drawDevice(from, to, seg) {
    if (this.devLane.hidden) return;
    const parts = [];
    for (const r of this.devRecs) {
      if (r.toMs <= from || r.fromMs >= to) continue;
      const what = [r.type, r.name, sizeText(r.size)].filter(Boolean).join(' · ');
      parts.push(seg('tl-dev', r.fromMs, r.toMs, { title: `设备录像 On device ${clock(r.fromMs)} – ${hhmm(r.toMs, true)}${what ? ` · ${what}` : ''}`, dataset: { from: iso(r.fromMs), to: iso(r.toMs) } }));
    }
    this.devTrack.replaceChildren(...parts);
  },
};
