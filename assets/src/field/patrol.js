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
/** LOCK_NAME is the Web Lock the window recording the patrol holds: one recorder, however many windows. */
export const LOCK_NAME = 'gw-field-patrol';
const CHANNEL = 'gw-field-patrol';

/**
 * Patrol is the patrol screen and the running patrol. deps: outbox (whose
 * owner is the member signed in). Its operations (start, a position kept,
 * a batch queued, stop) run one after another: stop waits for a batch being
 * queued, and a position that comes after the stop is not kept. The state
 * and the items a step queues are written in one transaction.
 */
export class Patrol {
  constructor({ outbox }) {
    this.outbox = outbox;
    this.state = null; // {local, owner, startedAt, distance, kept, last, buffer, lastFlush}
    this.stopWatch = null;
    this.ticker = 0;
    this.ops = Promise.resolve();
    this.release = null; // lets go of the recorder's lock
    this.remote = false; // another window of the app records this patrol
    this.toggle = document.querySelector('#patrol-toggle');
    this.error = document.querySelector('#patrol-error');
    this.posLine = document.querySelector('#patrol-pos');
    this.toggle.addEventListener('click', async () => {
      if (this.remote) return;
      this.toggle.disabled = true; // one start or stop at a time
      try {
        await this.enqueue(() => (this.state ? this.stop() : this.start()));
      } catch (err) {
        this.showError(`无法保存 · Cannot save on this phone: ${err.message}`);
      } finally {
        this.toggle.disabled = this.remote;
      }
    });
    outbox.addEventListener('change', () => this.render());
    // The member dropped this patrol's refused start: the patrol ends here too.
    outbox.addEventListener('dismissed', (ev) => {
      const it = ev.detail.item;
      if (it?.kind === 'patrol-start' && this.state?.local === it.local) this.enqueue(() => this.abandon()).catch((err) => console.warn('patrol:', err));
    });
    this.channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel(CHANNEL) : null;
    // Another window started, stopped or dropped the patrol.
    this.channel?.addEventListener('message', () => this.enqueue(() => this.elsewhere()).catch(() => {}));
  }

  // enqueue runs fn after every operation queued before it.
  enqueue(fn) {
    const p = this.ops.then(fn);
    this.ops = p.catch(() => {});
    return p;
  }

  notify() {
    try {
      this.channel?.postMessage({ type: 'changed' });
    } catch {
      // nobody to tell
    }
  }

  /** resume carries on with a patrol this phone was running (after a reload) — the signed-in member's only. */
  resume() {
    return this.enqueue(async () => {
      await this.reread();
      if (this.state && !this.release) await this.takeOver();
    });
  }

  // elsewhere: another window changed the saved patrol. The recorder stops
  // if its patrol is gone (dropped there); the others show what is saved.
  async elsewhere() {
    if (!this.release || !this.state) return this.reread();
    const saved = await kvGet(STATE_KEY);
    if (saved?.local === this.state.local) return;
    this.halt();
    this.state = null;
    this.letGo();
    this.render();
  }

  // reread reads the saved patrol: a patrol of someone else's is not this member's to record.
  async reread() {
    const s = (await kvGet(STATE_KEY)) ?? null;
    this.state = s && s.owner === this.outbox.owner?.id ? s : null;
    if (!this.state) this.remote = false;
    this.render();
  }

  // takeOver records the saved patrol here, unless another window does: then
  // this one shows it and waits for that window to close.
  async takeOver() {
    if (await this.hold(false)) {
      this.remote = false;
      this.run();
      this.render();
      return;
    }
    this.remote = true;
    this.render();
    this.hold(true).then(() =>
      this.enqueue(async () => {
        await this.reread();
        if (this.state) {
          this.remote = false;
          this.run();
        } else this.letGo();
        this.render();
      }),
    );
  }

  // hold takes the recorder's lock, kept until letGo; with wait false it
  // resolves false at once when another window has it.
  hold(wait) {
    if (!navigator.locks?.request) {
      this.release = () => {};
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      navigator.locks
        .request(LOCK_NAME, wait ? {} : { ifAvailable: true }, (lock) => {
          if (!lock) {
            resolve(false);
            return undefined;
          }
          return new Promise((let_go) => {
            this.release = let_go;
            resolve(true);
          });
        })
        .catch(() => resolve(false));
    });
  }

  letGo() {
    const r = this.release;
    this.release = null;
    r?.();
  }

  async start() {
    this.showError('');
    const owner = this.outbox.owner;
    if (!owner) return;
    if (!this.release && !(await this.hold(false))) {
      this.showError('另一个窗口正在记录巡查 · A patrol is being recorded in another window of the app');
      return;
    }
    const local = `P:${newKey()}`;
    const now = Date.now();
    const state = { local, owner: owner.id, startedAt: now, distance: 0, kept: 0, last: null, buffer: [], lastFlush: 0 };
    try {
      await this.outbox.add([{ kind: 'patrol-start', group: PATROL_GROUP, local, body: { started_at: new Date(now).toISOString() }, label: '巡查开始 · Patrol started' }], [], { kv: [{ k: STATE_KEY, v: state }] });
    } catch (err) {
      this.letGo();
      this.showError(`无法开始 · Cannot start: ${err.message}`);
      return;
    }
    this.state = state;
    this.notify();
    this.run();
    this.render();
  }

  run() {
    document.body.dataset.patrol = 'on';
    this.stopWatch?.();
    this.stopWatch = watchPosition(
      (p) => this.enqueue(() => this.keep(p)).catch((err) => this.showError(`无法保存 · Cannot save on this phone: ${err.message}`)),
      (msg) => this.showError(msg),
    );
    clearInterval(this.ticker);
    this.ticker = setInterval(() => {
      this.render();
      if (this.state?.buffer.length && Date.now() - this.state.lastFlush >= FLUSH_EVERY_MS) this.enqueue(() => this.flush()).catch(() => {});
    }, 1000);
  }

  // halt stops watching the position.
  halt() {
    this.stopWatch?.();
    this.stopWatch = null;
    clearInterval(this.ticker);
    this.ticker = 0;
    delete document.body.dataset.patrol;
    this.posLine.textContent = '';
  }

  // keep decides whether a fix is a point of the track.
  async keep(p) {
    const s = this.state;
    if (!s || !this.release || this.remote) return;
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

  // flush queues the kept points not queued yet as one batch, and the state without them, in one transaction.
  async flush() {
    const s = this.state;
    if (!s || !s.buffer.length) return;
    const next = { ...s, buffer: [], lastFlush: Date.now() };
    await this.outbox.add([pointsDraft(s)], [], { kv: [{ k: STATE_KEY, v: next }] });
    this.state = next;
  }

  async stop() {
    const s = this.state;
    if (!s) return;
    this.halt();
    const ended = Date.now();
    const drafts = s.buffer.length ? [pointsDraft(s)] : [];
    drafts.push({ kind: 'patrol-end', group: PATROL_GROUP, patrol: s.local, body: { ended_at: new Date(ended).toISOString() }, label: `巡查结束 · Patrol ended (${metres(s.distance)})` });
    try {
      // The last points, the end and the state's removal: all or nothing.
      await this.outbox.add(drafts, [], { kv: [{ k: STATE_KEY, v: undefined }] });
    } catch (err) {
      this.run(); // still recording: the stop can be tried again
      throw err;
    }
    this.state = null;
    this.letGo();
    this.notify();
    toast(`巡查结束 · Patrol ended: ${clock(ended - s.startedAt)}, ${metres(s.distance)}`, { kind: 'ok' });
    this.render();
  }

  // abandon ends the patrol on this phone without sending an end: its start was refused and dropped.
  async abandon() {
    const s = this.state;
    if (!s) return;
    this.halt();
    await kvSet(STATE_KEY, undefined);
    await this.outbox.dropPatrol(s.local); // a batch queued since
    this.state = null;
    this.letGo();
    this.notify();
    toast('巡查已放弃 · The patrol was dropped with its refused start', { kind: 'warn' });
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
    this.toggle.textContent = this.remote ? '另一窗口记录中 · Recording in another window' : s ? '结束巡查 Stop patrol' : '开始巡查 Start patrol';
    this.toggle.dataset.state = s ? 'on' : 'off';
    if (this.remote) this.toggle.disabled = true;
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

function pointsDraft(s) {
  return { kind: 'patrol-points', group: PATROL_GROUP, patrol: s.local, points: s.buffer, label: `巡查轨迹 · Patrol track, ${s.buffer.length} point(s)` };
}

function round7(x) {
  return Math.round(x * 1e7) / 1e7;
}
