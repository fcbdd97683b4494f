// The footage dialog's second lane, for a GB/T 28181 channel: the recordings
// the device itself holds (GET /api/v1/cameras/{id}/device-recordings, which
// asks the device over SIP), drawn under gridwatch's own, in their own colour,
// labelled "设备录像 On device". They are asked for the last 24 hours — the
// widest view the timeline shows; a zoomed view draws its part of them —
// when the dialog opens and every DEVICE_REFRESH_MS while it is open. A
// device that cannot answer (offline, slow) gives a small note in the lane,
// never an error over the player: gridwatch's footage plays on regardless.
//
// A click in the lane selects a range of the device's: from the time clicked
// (a recording's start when clicked near it) to the end of the recording
// there (a time outside them: the 10 minutes from it), up to now; its form
// under the timeline (times to change) offers
//   ▶ 设备回放 Play from device — the range played by the device, in the
//     player area (footage-device-play.js);
//   ⇩ 取回 Fetch into gridwatch — (cameras.write) POST …/device-fetch for the
//     range's first FETCH_MAX_MS at most: what the device holds of it and
//     gridwatch does not is recorded into gridwatch's footage. Its progress
//     (done_until, from GET …/device-fetch every FETCH_POLL_MS) shows until it
//     ends; then gridwatch's recordings are listed again, and the fetched
//     footage is in their lane, to play and export like any.
// deviceMethods are FootageDialog's own (footage.js mixes them in).
//
// Test hooks: #footage-dialog .tl-device[data-state=loading|ok|empty|error]
// [data-count] with .tl-dev[data-from][data-to] (ISO), .tl-devsel (the range
// selected), .tl-dev-playhead and .tl-device-note;
// #footage-dialog .footage-devsel[data-from][data-to] (ISO) with
// input[name=from], input[name=to] (datetime-local), .devsel-play,
// .devsel-fetch (hidden without cameras.write), .devsel-clear, .form-error
// and .devsel-status[data-state=starting|running|done|empty|error]
// [data-done-until][data-from][data-to] (ISO: the range fetched).

import { ApiError, can, describe, request } from './api.js';
import { el } from './dom.js';
import { DAY, clock, formatDuration, hhmm, iso, localInput } from './footage-format.js';
import { isGBCamera } from './gb-url.js';
import { serverNow } from './clock.js';

const DEVICE_REFRESH_MS = 60000;
const FETCH_MAX_MS = 10 * 60e3; // a fetch takes at most this much of the range selected
const FETCH_POLL_MS = 500;
const POINT_MS = 10 * 60e3; // a click outside the device's recordings: this long from it
const SNAP_PX = 6; // a click this close to a recording's start selects it from its start

function sizeText(n) {
  if (!Number.isFinite(n) || n <= 0) return '';
  const mb = n / (1024 * 1024);
  return mb >= 1024 ? `${(mb / 1024).toFixed(1)} GB` : `${mb.toFixed(1)} MB`;
}

const seconds = (ms) => Math.floor(ms / 1000) * 1000;

/** fetchProgress is how much of a fetch's ranges is done: 0 to 1. */
function fetchProgress(f) {
  const done = Date.parse(f.done_until);
  let total = 0;
  let got = 0;
  for (const [a, b] of f.ranges ?? []) {
    const from = Date.parse(a);
    const to = Date.parse(b);
    total += to - from;
    if (Number.isFinite(done)) got += Math.min(Math.max(done - from, 0), to - from);
  }
  return total > 0 ? got / total : 0;
}

/** deviceMethods fetch and draw the device-held recordings of a GB/T 28181 channel, and select a range of them. */
export const deviceMethods = {
  /** buildDevice makes the lane (hidden until a GB/T 28181 channel opens). */
  buildDevice() {
    this.devTrack = el('div', { className: 'tl-dev-track', 'aria-hidden': 'true' });
    this.devNote = el('span', { className: 'tl-device-note', role: 'status' });
    this.devSelMark = el('span', { className: 'tl-devsel', 'aria-hidden': 'true', hidden: true });
    this.devHead = el('span', { className: 'tl-dev-playhead', 'aria-hidden': 'true', hidden: true });
    this.devLane = el(
      'div',
      {
        className: 'tl-device',
        hidden: true,
        tabIndex: 0,
        role: 'button',
        dataset: { state: 'none' },
        title: '设备自身保存的录像：点击选择时段，从设备回放或取回到 gridwatch · Recordings the device itself holds: click to select a range, play it from the device or fetch it into gridwatch',
        'aria-label': '设备录像 On device — 选择时段 · select a range',
      },
      this.devTrack,
      this.devSelMark,
      this.devHead,
      el('span', 'tl-device-label', '设备录像 On device'),
      this.devNote,
    );
    this.devLane.addEventListener('click', (ev) => this.selectDevice(this.laneTime(ev.clientX)));
    this.devLane.addEventListener('keydown', (ev) => {
      if (ev.key !== 'Enter' && ev.key !== ' ') return;
      ev.preventDefault();
      // The picture shown, else the device's latest recording.
      const shown = this.devPlay?.active ? this.devPlay.deviceTime() : this.shownTime();
      const last = this.devRecs[this.devRecs.length - 1];
      const t = Number.isFinite(shown) ? shown : last ? last.fromMs : NaN;
      if (Number.isFinite(t)) this.selectDevice(t);
    });
    this.devRecs = [];
    this.devAt = 0;
    this.devSeq = 0;
    this.devTimer = 0;
    this.devSel = null;
    this.fetchSeq = 0;
    this.fetchTimer = 0;
    return this.devLane;
  },

  /** buildDeviceSel makes the form of the range selected in the lane. */
  buildDeviceSel() {
    this.devSelRange = el('span', 'sel-range');
    this.devSelFrom = el('input', { name: 'from', type: 'datetime-local', step: 1, 'aria-label': '设备录像 从 From' });
    this.devSelTo = el('input', { name: 'to', type: 'datetime-local', step: 1, 'aria-label': '设备录像 到 To' });
    const fromTo = () => {
      const a = Date.parse(this.devSelFrom.value);
      const b = Date.parse(this.devSelTo.value);
      if (Number.isFinite(a) && Number.isFinite(b) && b > a) this.setDeviceSel({ from: seconds(a), to: seconds(b) }, { inputs: false });
    };
    this.devSelFrom.addEventListener('change', fromTo);
    this.devSelTo.addEventListener('change', fromTo);
    const play = el('button', { type: 'button', className: 'btn btn-small btn-primary devsel-play', title: '由设备回放所选时段 · The device plays the range selected' }, '▶ 设备回放 Play from device');
    play.addEventListener('click', () => {
      if (this.devSel) this.playFromDevice(this.devSel.from, this.devSel.to);
    });
    this.devFetchBtn = el(
      'button',
      { type: 'button', className: 'btn btn-small devsel-fetch', title: '把设备上的这段录像存入 gridwatch 的录像（gridwatch 已有的部分不取）· Record what the device holds of the range, and gridwatch does not, into gridwatch\'s footage' },
      '⇩ 取回 Fetch into gridwatch',
    );
    this.devFetchBtn.addEventListener('click', () => this.fetchFromDevice());
    this.devFetchSpan = el('span', 'devsel-fetch-span');
    const clear = el('button', { type: 'button', className: 'btn btn-small devsel-clear', title: '取消选择 · Clear the selection' }, '取消 · Clear');
    clear.addEventListener('click', () => this.setDeviceSel(null));
    this.devSelError = el('p', { className: 'form-error', role: 'alert', hidden: true });
    this.devFetchStatus = el('div', { className: 'devsel-status', role: 'status', hidden: true });
    this.devSelBox = el(
      'div',
      { className: 'footage-devsel', hidden: true, role: 'group', 'aria-label': '设备录像时段 · Range on the device' },
      el('div', 'sel-row', el('span', 'sel-title devsel-title', '设备录像 · On device'), this.devSelRange, clear),
      el('div', 'sel-row sel-times', el('label', 'sel-time', el('span', 'sel-title', '从 From'), this.devSelFrom), el('label', 'sel-time', el('span', 'sel-title', '到 To'), this.devSelTo)),
      el('div', 'sel-row', play, this.devFetchBtn, this.devFetchSpan),
      this.devSelError,
      this.devFetchStatus,
    );
    return this.devSelBox;
  },

  /** openDevice starts the lane for camera cam: shown and read for a GB/T 28181 channel, else hidden. */
  openDevice(cam) {
    this.stopDevice();
    this.devRecs = [];
    this.devAt = 0;
    const gb = isGBCamera(cam);
    this.devLane.hidden = !gb;
    this.dialog.dataset.deviceLane = String(gb);
    this.devFetchBtn.hidden = !can('cameras.write');
    this.setDeviceSel(null);
    this.showFetch(null);
    if (!gb) {
      this.setDeviceState('none', '');
      return;
    }
    this.refreshDevice();
    this.devTimer = setInterval(() => this.refreshDevice(), DEVICE_REFRESH_MS);
  },

  /**
   * stopDevice stops reading, following a fetch (it goes on on the server)
   * and playing from the device; an answer still on its way is dropped (not
   * aborted: the device is asked either way).
   */
  stopDevice() {
    clearInterval(this.devTimer);
    this.devTimer = 0;
    this.devSeq++;
    this.devBusy = false;
    this.fetchSeq++;
    clearTimeout(this.fetchTimer);
    this.fetchTimer = 0;
    this.closeDevicePlay();
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
    const now = serverNow();
    this.devBusy = true;
    if (!this.devAt) this.setDeviceState('loading', '正在询问设备… · Asking the device…');
    try {
      const q = new URLSearchParams({ from: iso(now - DAY), to: iso(now + 60e3) });
      const res = await request('GET', `/api/v1/cameras/${cam.id}/device-recordings?${q}`);
      if (seq !== this.devSeq || this.cam !== cam) return;
      this.devRecs = (Array.isArray(res?.recordings) ? res.recordings : [])
        .map((r) => ({ ...r, fromMs: Date.parse(r.from), toMs: Date.parse(r.to) }))
        .filter((r) => r.toMs > r.fromMs)
        .sort((a, b) => a.fromMs - b.fromMs);
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
      parts.push(seg('tl-dev', r.fromMs, r.toMs, { title: `设备录像 On device ${clock(r.fromMs)} – ${hhmm(r.toMs, true)}${what ? ` · ${what}` : ''} — 点击选择 · click to select`, dataset: { from: iso(r.fromMs), to: iso(r.toMs) } }));
    }
    this.devTrack.replaceChildren(...parts);
  },

  /** drawDeviceMarks places the range selected and the device playback's picture on the lane, for view [from, to]. */
  drawDeviceMarks(from, to) {
    if (this.devLane.hidden) return;
    const f = (t) => (Math.min(Math.max(t, from), to) - from) / (to - from);
    const s = this.devSel;
    this.devSelMark.hidden = !s || s.to <= from || s.from >= to;
    if (!this.devSelMark.hidden) {
      this.devSelMark.style.left = `${(f(s.from) * 100).toFixed(4)}%`;
      this.devSelMark.style.width = `${((f(s.to) - f(s.from)) * 100).toFixed(4)}%`;
    }
    const t = this.devPlay?.phase && this.devPlay.phase !== 'idle' && this.devPlay.phase !== 'closed' ? this.devPlay.deviceTime() : NaN;
    this.devHead.hidden = !(Number.isFinite(t) && t >= from && t <= to);
    if (!this.devHead.hidden) this.devHead.style.left = `${(f(t) * 100).toFixed(4)}%`;
  },

  /** laneTime is the time under clientX on the lane, in the view drawn. */
  laneTime(clientX) {
    const r = this.devLane.getBoundingClientRect();
    const [from, to] = this.drawnView ?? this.view();
    const f = Math.min(1, Math.max(0, (clientX - r.left) / r.width));
    return from + f * (to - from);
  },

  // ---- the range selected on the device -----------------------------------------------------

  /**
   * selectDevice selects the device's range at time t: from t (the start of
   * the recording there, when t is near it) to that recording's end, else the
   * POINT_MS from t; never past now.
   */
  selectDevice(t) {
    const [vf, vt] = this.drawnView ?? this.view();
    const msPerPx = (vt - vf) / (this.devLane.clientWidth || 800);
    const now = serverNow();
    const r = this.devRecs.find((x) => t >= x.fromMs - 2 * msPerPx && t < x.toMs);
    let from = t;
    let to = t + POINT_MS;
    if (r) {
      from = t - r.fromMs <= SNAP_PX * msPerPx ? r.fromMs : t;
      to = r.toMs;
    }
    to = Math.min(to, now);
    if (to - from < 5e3) from = to - 60e3; // at the very end (of the recording, or of now): the minute before
    this.setDeviceSel({ from: seconds(from), to: seconds(to) });
  },

  /** setDeviceSel shows range sel ({from, to} ms) on the lane and its form (inputs: false keeps what is typed). */
  setDeviceSel(sel, { inputs = true } = {}) {
    this.devSel = sel;
    const box = this.devSelBox;
    this.devSelError.hidden = true;
    if (!sel) {
      box.hidden = true;
      delete box.dataset.from;
      delete box.dataset.to;
      this.render();
      return;
    }
    box.hidden = false;
    box.dataset.from = iso(sel.from);
    box.dataset.to = iso(sel.to);
    this.devSelRange.textContent = `${clock(sel.from)} – ${hhmm(sel.to, true)} (${formatDuration(sel.to - sel.from)})`;
    if (inputs || document.activeElement !== this.devSelFrom) this.devSelFrom.value = localInput(sel.from);
    if (inputs || document.activeElement !== this.devSelTo) this.devSelTo.value = localInput(sel.to);
    const [a, b] = this.fetchSpan(sel);
    this.devFetchSpan.textContent = b > a ? (b - a < sel.to - sel.from ? `取回 ${hhmm(a, true)} – ${hhmm(b, true)}（至多 10 分钟）· fetches ${formatDuration(b - a)} at most` : '') : '';
    this.render();
  },

  /** fetchSpan is the part of sel a fetch takes: its first FETCH_MAX_MS, up to a second ago. */
  fetchSpan(sel) {
    return [sel.from, Math.min(sel.to, sel.from + FETCH_MAX_MS, seconds(serverNow() - 1000))];
  },

  // ---- fetching into gridwatch --------------------------------------------------------------

  async fetchFromDevice() {
    const cam = this.cam;
    if (!this.devSel || !cam) return;
    const [from, to] = this.fetchSpan(this.devSel);
    this.devSelError.hidden = true;
    if (!(to > from)) {
      this.devSelFailed('所选时段尚未录制 · The range selected has not been recorded yet');
      return;
    }
    const seq = ++this.fetchSeq;
    clearTimeout(this.fetchTimer);
    this.devFetchBtn.disabled = true;
    this.showFetch({ state: 'starting', text: `正在请设备取回 ${hhmm(from, true)} – ${hhmm(to, true)}… · Asking the device…`, from, to });
    let f;
    try {
      f = await request('POST', `/api/v1/cameras/${cam.id}/device-fetch`, { json: { from: iso(from), to: iso(to) } });
    } catch (err) {
      if (seq !== this.fetchSeq) return;
      this.devFetchBtn.disabled = false;
      this.devSelFailed(`无法取回 · Cannot fetch — ${describe(err)}`);
      // One of this camera's runs already: show how that one goes.
      if (err instanceof ApiError && err.status === 409) this.pollFetch(seq);
      else this.showFetch(null);
      return;
    }
    if (seq !== this.fetchSeq || this.cam !== cam) return;
    this.followFetch(f, seq);
  },

  devSelFailed(text) {
    this.devSelError.textContent = text;
    this.devSelError.hidden = false;
  },

  async pollFetch(seq) {
    const cam = this.cam;
    let f;
    try {
      f = await request('GET', `/api/v1/cameras/${cam.id}/device-fetch`);
    } catch (err) {
      if (seq !== this.fetchSeq || this.cam !== cam) return;
      this.devFetchBtn.disabled = false;
      this.showFetch({ state: 'error', text: `无法读取取回进度 · Cannot read the fetch's progress — ${describe(err)}` });
      return;
    }
    if (seq !== this.fetchSeq || this.cam !== cam) return;
    this.followFetch(f, seq);
  },

  /** followFetch shows fetch f ({ranges, done_until, running, error, from, to}), polling it while it runs. */
  followFetch(f, seq) {
    const from = Date.parse(f.from);
    const to = Date.parse(f.to);
    const done = Date.parse(f.done_until);
    const ranges = Array.isArray(f.ranges) ? f.ranges : [];
    const total = ranges.reduce((s, [a, b]) => s + (Date.parse(b) - Date.parse(a)), 0);
    if (f.running) {
      const pct = Math.floor(fetchProgress(f) * 100);
      this.showFetch({
        state: 'running',
        text: `取回中 ${pct}% · Fetching ${pct}% of ${formatDuration(total)} — 设备时间至 ${Number.isFinite(done) ? hhmm(done, true) : '—'} · device time up to ${Number.isFinite(done) ? hhmm(done, true) : '—'}`,
        from,
        to,
        done,
        pct,
      });
      this.fetchTimer = setTimeout(() => this.pollFetch(seq), FETCH_POLL_MS);
      return;
    }
    this.devFetchBtn.disabled = false;
    if (f.error) this.showFetch({ state: 'error', text: `取回失败 · The fetch failed — ${f.error}`, from, to, done });
    else if (!ranges.length) this.showFetch({ state: 'empty', text: `无需取回 · Nothing to fetch: gridwatch holds ${hhmm(from, true)} – ${hhmm(to, true)} already, or the device holds none of it`, from, to });
    else {
      const parts = ranges.map(([a, b]) => `${hhmm(Date.parse(a), true)} – ${hhmm(Date.parse(b), true)}`).join(', ');
      this.showFetch({ state: 'done', text: `已取回到 gridwatch · Fetched into gridwatch's footage: ${parts} (${formatDuration(total)})`, from, to, done });
    }
    // What was fetched is gridwatch's footage now: in its lane, to play and export.
    this.refresh();
  },

  /** showFetch shows a fetch's state ({state, text, from, to, done, pct}), or nothing (null). */
  showFetch(s) {
    const box = this.devFetchStatus;
    if (!box) return;
    for (const k of ['state', 'from', 'to', 'doneUntil']) delete box.dataset[k];
    if (!s) {
      box.hidden = true;
      box.replaceChildren();
      return;
    }
    box.hidden = false;
    box.dataset.state = s.state;
    if (Number.isFinite(s.from)) box.dataset.from = iso(s.from);
    if (Number.isFinite(s.to)) box.dataset.to = iso(s.to);
    if (Number.isFinite(s.done)) box.dataset.doneUntil = iso(s.done);
    const bar = s.state === 'running' ? el('progress', { className: 'devsel-progress', max: 100, value: s.pct ?? 0 }) : null;
    box.replaceChildren(...[bar, el('span', s.state === 'error' ? 'form-error' : 'devsel-status-text', s.text)].filter(Boolean));
  },
};
