// 巡查 Patrol: start, walk, stop. While a patrol runs (and only then) the
// phone's position is watched; a fix is kept only if it is at least
// KEEP_EVERY_MS after the last kept one or KEEP_MOVED_M away from it, and
// the kept points are sent in batches (every FLUSH_EVERY_MS or FLUSH_POINTS
// points; the first one at once, so the command centre sees where the
// patrol began). Start, points and end all go through the outbox, in order,
// so a patrol walked without a signal arrives whole when it returns. The
// patrol's state is saved on the phone: a reload carries on with it.

import { kvGet, kvSet } from './idb.js';
import { newKey } from './net.js';
import { distanceM, watchPosition } from './position.js';
import { clock, metres, toast } from './ui.js';

// All patrols' items go in one group, strictly in order: a new patrol's
// start never overtakes the last one's points and end (the server closes
// a patrol left open when the next starts, at the last point it has).
const PATROL_GROUP = 'patrols';

/** KEEP_EVERY_MS: a point is kept at least this long after the last one … */
export const KEEP_EVERY_MS = 30 * 1000;
/** KEEP_MOVED_M: … or once the phone has moved this far from it. */
export const KEEP_MOVED_M = 25;
/** FLUSH_EVERY_MS and FLUSH_POINTS: the kept points are sent this often, or in batches this big. */
export const FLUSH_EVERY_MS = 60 * 1000;
export const FLUSH_POINTS = 20;
// A fix less sure than this is not a point of the track.
const WORST_ACCURACY_M = 150;

const STATE_KEY = 'patrol';

/** Patrol is the patrol screen and the running patrol. deps: outbox. */
export class Patrol {
  constructor({ outbox }) {
    this.outbox = outbox;
    this.state = null; // {local, startedAt, distance, kept, last, buffer, lastFlush}
    this.stopWatch = null;
    this.ticker = 0;
    this.toggle = document.querySelector('#patrol-toggle');
    this.error = document.querySelector('#patrol-error');
    this.posLine = document.querySelector('#patrol-pos');
    this.toggle.addEventListener('click', async () => {
      this.toggle.disabled = true; // one start or stop at a time
      try {
        await (this.state ? this.stop() : this.start());
      } catch (err) {
        this.showError(`无法保存 · Cannot save on this phone: ${err.message}`);
      } finally {
        this.toggle.disabled = false;
      }
    });
    outbox.addEventListener('change', () => this.render());
  }

  /** resume carries on with a patrol this phone was running (after a reload). */
  async resume() {
    this.state = (await kvGet(STATE_KEY)) ?? null;
    if (this.state) this.run();
    this.render();
  }

  async start() {
    this.showError('');
    const local = `P:${newKey()}`;
    const now = Date.now();
    this.state = { local, startedAt: now, distance: 0, kept: 0, last: null, buffer: [], lastFlush: 0 };
    try {
      await kvSet(STATE_KEY, this.state);
      await this.outbox.add([{ kind: 'patrol-start', group: PATROL_GROUP, local, body: { started_at: new Date(now).toISOString() }, label: '巡查开始 · Patrol started' }]);
    } catch (err) {
      this.state = null;
      this.showError(`无法开始 · Cannot start: ${err.message}`);
      return;
    }
    this.run();
    this.render();
  }

  run() {
    document.body.dataset.patrol = 'on';
    this.stopWatch?.();
    this.stopWatch = watchPosition(
      (p) => this.onFix(p),
      (msg) => this.showError(msg),
    );
    clearInterval(this.ticker);
    this.ticker = setInterval(() => {
      this.render();
      if (this.state?.buffer.length && Date.now() - this.state.lastFlush >= FLUSH_EVERY_MS) this.flush();
    }, 1000);
  }

  async onFix(p) {
    const s = this.state;
    if (!s) return;
    this.showError('');
    this.posLine.textContent = `${p.lat.toFixed(5)}, ${p.lon.toFixed(5)} · ±${Math.round(p.accuracy)} m`;
    if (p.accuracy > WORST_ACCURACY_M) return;
    const at = Date.now();
    const moved = s.last ? distanceM(s.last, p) : Infinity;
    if (s.last && at - s.last.at < KEEP_EVERY_MS && moved < KEEP_MOVED_M) return;
    if (s.last) s.distance += moved;
    s.last = { lon: p.lon, lat: p.lat, at };
    s.kept++;
    s.buffer.push({ lon: round7(p.lon), lat: round7(p.lat), at: new Date(at).toISOString(), accuracy_m: Math.round(p.accuracy * 10) / 10 });
    if (s.kept === 1 || s.buffer.length >= FLUSH_POINTS || at - s.lastFlush >= FLUSH_EVERY_MS) await this.flush();
    else await kvSet(STATE_KEY, s);
    this.render();
  }

  // flush queues the kept points not queued yet as one batch.
  async flush() {
    const s = this.state;
    if (!s || !s.buffer.length) return;
    const points = s.buffer;
    s.buffer = [];
    s.lastFlush = Date.now();
    await kvSet(STATE_KEY, s);
    await this.outbox.add([{ kind: 'patrol-points', group: PATROL_GROUP, patrol: s.local, points, label: `巡查轨迹 · Patrol track, ${points.length} point(s)` }]);
  }

  async stop() {
    const s = this.state;
    if (!s) return;
    this.stopWatch?.();
    this.stopWatch = null;
    clearInterval(this.ticker);
    await this.flush();
    const ended = Date.now();
    await this.outbox.add([{ kind: 'patrol-end', group: PATROL_GROUP, patrol: s.local, body: { ended_at: new Date(ended).toISOString() }, label: `巡查结束 · Patrol ended (${metres(s.distance)})` }]);
    this.state = null;
    await kvSet(STATE_KEY, undefined);
    delete document.body.dataset.patrol;
    this.posLine.textContent = '';
    toast(`巡查结束 · Patrol ended: ${clock(ended - s.startedAt)}, ${metres(s.distance)}`, { kind: 'ok' });
    this.render();
  }

  /** queued counts the points not yet sent: still gathering, and in the outbox. */
  get queued() {
    const inOutbox = this.outbox.items.filter((it) => it.kind === 'patrol-points').reduce((n, it) => n + (it.points?.length ?? 0), 0);
    return inOutbox + (this.state?.buffer.length ?? 0);
  }

  render() {
    const s = this.state;
    document.querySelector('#patrol-elapsed').textContent = s ? clock(Date.now() - s.startedAt) : '0:00';
    document.querySelector('#patrol-distance').textContent = metres(s?.distance ?? 0);
    document.querySelector('#patrol-points').textContent = String(s?.kept ?? 0);
    const q = document.querySelector('#patrol-queued');
    q.textContent = String(this.queued);
    q.dataset.count = String(this.queued);
    this.toggle.textContent = s ? '结束巡查 Stop patrol' : '开始巡查 Start patrol';
    this.toggle.dataset.state = s ? 'on' : 'off';
    const view = document.querySelector('#view-patrol');
    view.dataset.kept = String(s?.kept ?? 0);
    view.dataset.lastAt = String(s?.last?.at ?? 0);
    view.dataset.active = String(!!s);
  }

  showError(text) {
    this.error.textContent = text;
    this.error.hidden = !text;
  }
}

function round7(x) {
  return Math.round(x * 1e7) / 1e7;
}
