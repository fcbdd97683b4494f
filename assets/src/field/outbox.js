// The outbox: every change the phone makes (a report and its photos and
// voice note, a step of a task, a patrol's start, points and end, a home
// visit recorded at a household) is written
// to IndexedDB with its idempotency key first, then sent. Nothing is lost to
// a poor signal and nothing arrives twice: a send that fails for want of a
// network, because the server is busy or slow (5xx, 429, 408), because the
// answer was not the API's (a captive portal's page) or the CSRF token had
// gone stale, stays and is tried again with backoff: at once on the `online`
// event, and when the app comes back to the front if its wait is over; the
// server replays a request whose key it has seen.
//
// Order: items of one group (one case, one patrol) go one at a time in the
// order they were queued, so a report is filed before its photos, and a
// patrol's points after its start. A report queued offline has a local id
// ("L:…"); what follows it names that id, mapped to the server's once the
// report has been filed (the ids store).
//
// What the server refuses for good (other 4xx) is kept, marked failed
// with the server's message, until the person retries or dismisses it; a
// step whose case moved on meanwhile (409 conflict) is kept the same way,
// marked conflict, with who moved it, and retried from where the case
// stands (the steps after it follow). Items queued after a kept one in the
// same group wait behind it. Two refusals are not failures: a report the
// server takes only from a device session waits for the member to sign in
// on the phone, and patrol points dated after their patrol ended are
// dropped (they would hold up the next patrol for ever).
//
// Photos wait as Blobs in the blobs store until uploaded, through the
// resumable upload (PUT …/attachments/uploads/:key, 256 KiB chunks with
// Content-Range); a resumed upload asks the server for its offset first.
//
// Whose: every item records the member who queued it (owner: the user id,
// ownerName). Only the owner's items are sent, and only while the session
// is the owner's: after someone else signs in on the phone, nothing of the
// last person's queue goes under the new name (main.js asks what to do).
//
// One sender: with two windows of the app open, the items are sent by one
// at a time (the Web Locks API, lock LOCK_NAME); the other windows learn of
// every change through a BroadcastChannel and re-read the queue.

import { ApiError, request, session } from '../api.js';
import { get, getAll, run, update } from './idb.js';
import { getFresh, needsDevice, newKey, retryAfterMs, transient } from './net.js';

/** LOCK_NAME is the Web Lock held while sending: one window sends at a time. */
export const LOCK_NAME = 'gw-field-outbox';
const CHANNEL = 'gw-field-outbox';

/** withLock runs fn holding the Web Lock name (waiting for it), or at once where the browser has no locks. */
export function withLock(name, fn) {
  return navigator.locks?.request ? navigator.locks.request(name, fn) : fn();
}

/** CHUNK is the size of one upload request. */
export const CHUNK = 256 * 1024;

const BACKOFF_FIRST_MS = 2000;
const BACKOFF_MAX_MS = 5 * 60 * 1000;

/** backoff is the wait before attempt n+1 after n failures: doubling from 2 s to 5 min, ±20%. */
export function backoff(attempts) {
  const ms = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.max(0, attempts - 1));
  return Math.round(ms * (0.8 + Math.random() * 0.4));
}

// Blocked: an item names a case or patrol whose local id has no server id
// (the report it belongs to was dismissed).
class Blocked extends Error {}

// Held: an item not sent, and not failed either: not this session's, or
// dismissed while it was about to go.
class Held extends Error {}

/**
 * Outbox queues and sends. Events (it is an EventTarget):
 *   change        the list changed (read outbox.items)
 *   progress      detail {seq, sent, total}: an upload moved on
 *   sent          detail {item, result}: an item arrived (result: the server's answer)
 *   problem       detail {item}: an item was refused (failed) or conflicts
 *   needs-device  detail {item}: the server takes it only from a phone's own
 *                 (device) session: sending waits until the member signs in here
 *   dismissed     detail {item, items}: items dropped by the member (a patrol's start drops the patrol)
 *   dropped       detail {item, count, reason}: points the server will never take (after their patrol ended)
 */
export class Outbox extends EventTarget {
  constructor() {
    super();
    /** items is the queue as last read, in order. */
    this.items = [];
    this.running = false;
    this.again = false;
    this.timer = 0;
    this.pausedUntil = 0; // the network is down: nothing is tried before this
    this.sending = 0; // seq of the item being sent, 0 for none
    this.progress = new Map(); // seq → {sent, total} of uploads under way
    this.owner = null; // {id, username}: whose items are queued and sent (main.js sets it once settled)
    this.held = ''; // 'device': the server wants a device session; nothing is sent until resume()
    this.started = false;
    this.channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel(CHANNEL) : null;
    this.channel?.addEventListener('message', () => {
      // Another window changed the queue.
      this.reload().then(() => this.started && this.kick(), () => {});
    });
  }

  /** setOwner names the member whose items are queued and sent ({id, username}). */
  setOwner(owner) {
    this.owner = owner ? { id: owner.id, username: owner.username } : null;
  }

  /** start reads the queue and sends what it can; back online it tries at once, back in front what is due. */
  async start() {
    if (!this.started) {
      this.started = true;
      window.addEventListener('online', () => this.wake());
      document.addEventListener('visibilitychange', () => {
        if (document.visibilityState === 'visible') this.kick();
      });
    }
    await this.reload();
    this.kick();
  }

  /** resume sends again after a hold (the member signed in on this phone). */
  resume() {
    this.held = '';
    this.pausedUntil = 0;
    if (this.started) this.kick();
  }

  // notify tells the other windows the queue changed.
  notify() {
    try {
      this.channel?.postMessage({ type: 'changed' });
    } catch {
      // a closed channel: nobody to tell
    }
  }

  /** wake: the network is back, try everything now. */
  wake() {
    this.pausedUntil = 0;
    run('outbox', 'readwrite', (s) => {
      const req = s.outbox.openCursor();
      req.onsuccess = () => {
        const c = req.result;
        if (!c) return;
        if (c.value.state === 'pending' && c.value.nextAt > 0) c.update({ ...c.value, nextAt: 0 });
        c.continue();
      };
    })
      .catch((err) => console.warn('outbox: wake', err))
      .finally(() => this.kick());
  }

  async reload() {
    this.items = await getAll('outbox');
    this.dispatchEvent(new Event('change'));
  }

  /** count is how many items are still to be sent (failed and conflicting ones included). */
  get count() {
    return this.items.length;
  }

  /**
   * add queues items (drafts: {kind, group, label, …}) and blobs ({id, blob})
   * in one transaction, then sends. A draft's key (the Idempotency-Key)
   * defaults to a new one; parent: the index in this batch of the item it
   * belongs to (a photo of a report), dismissed with it. kv: saved values
   * ({k, v}; v undefined removes) written in the same transaction (the
   * patrol's state beside its points). Each item records its owner.
   */
  async add(drafts, blobs = [], { kv = [] } = {}) {
    if (!this.owner) throw new Error('无人登录 · nobody is signed in on this phone');
    const now = Date.now();
    const owner = { owner: this.owner.id, ownerName: this.owner.username };
    await run(['outbox', 'blobs', 'kv'], 'readwrite', (s) => {
      for (const b of blobs) s.blobs.put(b);
      for (const { k, v } of kv) {
        if (v === undefined) s.kv.delete(k);
        else s.kv.put({ k, v });
      }
      // Parents first, so children can name their seq.
      const seqs = [];
      drafts.forEach((d, i) => {
        const item = { key: newKey(), state: 'pending', attempts: 0, nextAt: 0, error: null, created: now, ...d, ...owner };
        delete item.parent;
        const req = s.outbox.add(item);
        req.onsuccess = () => {
          seqs[i] = req.result;
          // Named by the parent's seq, known by now: it was added first.
          if (d.parent !== undefined) s.outbox.put({ ...item, seq: req.result, parent: seqs[d.parent] });
        };
      });
    });
    this.notify();
    await this.reload();
    this.kick();
  }

  /** kick sends now (or as soon as the current send ends). */
  kick() {
    clearTimeout(this.timer);
    this.timer = 0;
    this.pump();
  }

  async pump() {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      do {
        this.again = false;
        // One window sends at a time; the queue is read again once the lock is held.
        await withLock(LOCK_NAME, () => this.drain());
      } while (this.again);
    } catch (err) {
      console.warn('outbox: pump', err);
    } finally {
      this.running = false;
      this.sending = 0;
    }
  }

  async drain() {
    for (;;) {
      this.again = false;
      await this.reload();
      const { next, wakeAt } = this.pick(Date.now());
      if (!next) {
        clearTimeout(this.timer);
        this.timer = wakeAt ? setTimeout(() => this.kick(), Math.max(50, wakeAt - Date.now())) : 0;
        return;
      }
      await this.send(next);
    }
  }

  // pick finds the first item that may be sent now: the head of its group,
  // pending, its backoff over, and the signed-in member's own. wakeAt: when one will be.
  pick(now) {
    if (this.held || !this.owner || session.user?.id !== this.owner.id) return { next: null, wakeAt: 0 };
    if (this.pausedUntil > now) return { next: null, wakeAt: this.pausedUntil };
    const seen = new Set();
    let wakeAt = 0;
    for (const item of this.items) {
      if (seen.has(item.group)) continue;
      seen.add(item.group);
      if (item.state !== 'pending' || item.owner !== this.owner.id) continue;
      if (item.nextAt > now) {
        if (!wakeAt || item.nextAt < wakeAt) wakeAt = item.nextAt;
        continue;
      }
      return { next: item, wakeAt: 0 };
    }
    return { next: null, wakeAt };
  }

  async send(item) {
    this.sending = item.seq;
    this.dispatchEvent(new Event('change'));
    let result;
    try {
      // The last word before it leaves: the session is the item's owner's.
      if (session.user?.id !== item.owner) throw new Held();
      result = await this.sendOne(item);
    } catch (err) {
      await this.failed(item, err);
      return;
    } finally {
      this.sending = 0;
      this.progress.delete(item.seq);
    }
    await this.done(item, result);
  }

  async failed(item, err) {
    if (err instanceof Held) return; // not this session's: kept as it is
    const error = err instanceof ApiError ? { message: err.message, status: err.status, code: err.code, details: err.details } : { message: String(err?.message ?? err), status: 0, code: '', details: null };
    if (needsDevice(err)) {
      // A session that is not this phone's own (the dashboard's): the
      // report waits, whole, until the member signs in on the phone.
      this.held = 'device';
      await update('outbox', item.seq, (cur) => ({ ...cur, error }));
      this.notify();
      await this.reload();
      this.dispatchEvent(new CustomEvent('needs-device', { detail: { item } }));
      return;
    }
    if (item.kind === 'patrol-points' && err instanceof ApiError && err.details?.ended_at && (await this.dropLate(item, err))) return;
    let kept = false;
    // One transaction: an item dismissed meanwhile stays dismissed; an upload's saved progress is kept.
    const found = await update('outbox', item.seq, (cur) => {
      if (err instanceof Blocked) return { ...cur, state: 'failed', error: { ...error, code: 'orphan' } };
      if (err instanceof ApiError && err.status === 409 && cur.kind === 'transition') return { ...cur, state: 'conflict', error };
      if (transient(err)) {
        kept = true;
        const attempts = (cur.attempts ?? 0) + 1;
        const wait = Math.max(backoff(attempts), retryAfterMs(err));
        if (err instanceof ApiError && (err.code === 'network' || err.status === 0)) this.pausedUntil = Date.now() + wait;
        return { ...cur, attempts, nextAt: Date.now() + wait, error };
      }
      return { ...cur, state: 'failed', error };
    });
    if (!found) return; // dismissed while it was being sent
    this.notify();
    if (kept) return;
    await this.reload();
    this.dispatchEvent(new CustomEvent('problem', { detail: { item: await get('outbox', item.seq) } }));
  }

  // dropLate: the server refused a batch of points dated after their patrol
  // ended (details.ended_at). They will never be taken, and must not hold up
  // the next patrol: the points before the end go again (a new key: a new
  // body), the others are dropped, with a note.
  async dropLate(item, err) {
    const end = Date.parse(err.details.ended_at);
    if (!Number.isFinite(end)) return false;
    const keep = (item.points ?? []).filter((p) => Date.parse(p.at) <= end);
    const count = (item.points?.length ?? 0) - keep.length;
    if (count <= 0) return false;
    if (keep.length) await update('outbox', item.seq, (cur) => ({ ...cur, points: keep, key: newKey(), attempts: 0, nextAt: 0, error: null, label: `巡查轨迹 · Patrol track, ${keep.length} point(s)` }));
    else await run('outbox', 'readwrite', (s) => s.outbox.delete(item.seq));
    this.notify();
    await this.reload();
    this.dispatchEvent(new CustomEvent('dropped', { detail: { item, count, reason: 'after the patrol ended' } }));
    return true;
  }

  async done(item, result) {
    await run(['outbox', 'blobs', 'ids'], 'readwrite', (s) => {
      s.outbox.delete(item.seq);
      if (item.kind === 'upload' && item.blob) s.blobs.delete(item.blob);
      if (item.kind === 'report' && result?.id) s.ids.put({ local: item.local, id: result.id });
      if (item.kind === 'patrol-start' && result?.id) s.ids.put({ local: item.local, id: result.id });
    });
    this.notify();
    this.dispatchEvent(new CustomEvent('sent', { detail: { item, result } }));
  }

  // resolve turns a reference (a server id, or "L:…"/"P:…" local id) into the server's id.
  async resolve(ref) {
    if (typeof ref === 'number') return ref;
    const m = await get('ids', ref);
    if (!m) throw new Blocked('所属的上报未发送 · what this belongs to was never sent');
    return m.id;
  }

  async sendOne(item) {
    const headers = { 'Idempotency-Key': item.key };
    switch (item.kind) {
      case 'report':
        return request('POST', '/api/v1/incidents', { json: item.body, headers });
      case 'transition': {
        const id = await this.resolve(item.incident);
        return request('POST', `/api/v1/incidents/${id}/transitions`, { json: { to: item.to, version: item.version, note: item.note ?? '' }, headers });
      }
      case 'upload':
        return this.upload(item);
      case 'patrol-start':
        return this.startPatrol(item, headers);
      case 'patrol-points': {
        const id = await this.resolve(item.patrol);
        return request('POST', `/api/v1/patrols/${id}/points`, { json: { points: item.points }, headers });
      }
      case 'patrol-end': {
        const id = await this.resolve(item.patrol);
        return request('POST', `/api/v1/patrols/${id}/end`, { json: item.body ?? {}, headers });
      }
      case 'visit':
        // A replay (the answer to the first try was lost) is answered 200
        // with the visit recorded then: one visit, whatever the tries.
        return request('POST', `/api/v1/households/${item.household}/visits`, { json: item.body, headers });
    }
    throw new Error(`unknown outbox item ${item.kind}`);
  }

  // startPatrol opens a patrol. The server closes one of this member's
  // left open before it (another phone, or this one before it lost its
  // data) and names it in closed_patrol_id; a 409 means a patrol that began
  // after this start (a clock behind), shown to the member as refused.
  async startPatrol(item, headers) {
    return request('POST', '/api/v1/patrols', { json: item.body ?? {}, headers });
  }

  // upload sends a photo or voice note in chunks from the server's offset.
  async upload(item) {
    const id = await this.resolve(item.incident);
    const path = `/api/v1/incidents/${id}/attachments/uploads/${encodeURIComponent(item.key)}`;
    const stored = await get('blobs', item.blob);
    if (!stored?.blob) throw new ApiError('照片已不在手机上 · the file is no longer on this phone', { status: 410, code: 'gone' });
    const blob = stored.blob;
    const total = blob.size;
    let offset = 0;
    if (item.started) {
      try {
        const st = await request('GET', path);
        if (st?.attachment) return st;
        offset = Number(st?.offset) || 0;
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 404)) throw err;
      }
    } else if (!(await update('outbox', item.seq, (cur) => ({ ...cur, started: true })))) {
      throw new Held(); // dismissed meanwhile: not written back, not sent
    }
    this.note(item.seq, offset, total);
    for (let moves = 0; ; ) {
      const end = Math.min(offset + CHUNK, total);
      let r;
      try {
        r = await request('PUT', `${path}?filename=${encodeURIComponent(item.filename)}`, {
          body: blob.slice(offset, end),
          contentType: 'application/octet-stream',
          headers: { 'Content-Range': `bytes ${offset}-${end - 1}/${total}` },
        });
      } catch (err) {
        // The server has a different offset (a chunk landed but its answer was lost): go on from there.
        const at = Number(err?.details?.offset);
        if (err instanceof ApiError && err.status === 409 && Number.isFinite(at) && at >= 0 && at <= total && moves++ < 8) {
          offset = at;
          continue;
        }
        throw err;
      }
      if (r?.attachment) return r;
      const next = Number(r?.offset);
      if (!(next > offset)) throw new ApiError(`上传未前进 · the upload did not move on (offset ${r?.offset})`, { status: 500, code: 'bad_response' });
      offset = next;
      this.note(item.seq, offset, total);
    }
  }

  note(seq, sent, total) {
    this.progress.set(seq, { sent, total });
    this.dispatchEvent(new CustomEvent('progress', { detail: { seq, sent, total } }));
  }

  /**
   * retry sends a failed item again; a conflicting step is sent again from
   * where the case stands now (its current version, read from the server,
   * never from a saved answer), if that step is still allowed from there,
   * and the steps queued after it for the same case follow from there
   * (version + 1, + 2, …).
   */
  async retry(seq) {
    const item = await get('outbox', seq);
    if (!item) return;
    if (item.state === 'conflict' && item.kind === 'transition') {
      const id = await this.resolve(item.incident);
      const { body: now, cachedAt } = await getFresh(`/api/v1/incidents/${id}`, { fresh: true });
      if (cachedAt || !Number.isInteger(now?.version)) {
        throw new ApiError('需要网络读取案件现状 · Retrying needs the case as it is now: try again with a network', { code: 'network' });
      }
      if (!Array.isArray(now.allowed_transitions) || !now.allowed_transitions.includes(item.to)) {
        await update('outbox', seq, (cur) => ({ ...cur, error: { ...cur.error, message: `无法重试：现为 ${now.status} · cannot retry, the case is now ${now.status}`, details: { ...cur.error?.details, status: now.status, current_version: now.version } } }));
        this.notify();
        await this.reload();
        return;
      }
      await this.rebase(item, now.version);
    } else {
      await update('outbox', seq, (cur) => ({ ...cur, state: 'pending', attempts: 0, nextAt: 0, error: null }));
    }
    this.pausedUntil = 0;
    this.notify();
    await this.reload();
    this.kick();
  }

  // rebase moves a conflicting step onto version and the case's later steps
  // onto the versions that follow (each a new request: a new key), in one
  // transaction.
  async rebase(item, version) {
    await run('outbox', 'readwrite', (s) => {
      let k = 0;
      const req = s.outbox.openCursor(IDBKeyRange.lowerBound(item.seq));
      req.onsuccess = () => {
        const c = req.result;
        if (!c) return;
        const it = c.value;
        if (it.kind === 'transition' && it.group === item.group && it.incident === item.incident) {
          const next = { ...it, version: version + k, key: newKey() };
          if (it.seq === item.seq) Object.assign(next, { state: 'pending', attempts: 0, nextAt: 0, error: null });
          c.update(next);
          k++;
        }
        c.continue();
      };
    });
  }

  /**
   * dismiss drops an item, the items that belong to it (a report's photos)
   * and their blobs; a patrol's start drops that whole patrol (its points
   * and end cannot go without it).
   */
  async dismiss(seq) {
    const all = await getAll('outbox');
    const target = all.find((it) => it.seq === seq);
    if (!target) return;
    const drop = new Set([seq]);
    if (target.kind === 'patrol-start') for (const it of all) if (it.patrol === target.local) drop.add(it.seq);
    for (const it of all) if (drop.has(it.parent)) drop.add(it.seq);
    const items = all.filter((it) => drop.has(it.seq));
    await run(['outbox', 'blobs'], 'readwrite', (s) => {
      for (const it of items) {
        s.outbox.delete(it.seq);
        if (it.blob) s.blobs.delete(it.blob);
      }
    });
    this.notify();
    await this.reload();
    this.dispatchEvent(new CustomEvent('dismissed', { detail: { item: target, items } }));
    this.kick();
  }

  /** dropPatrol drops every queued item of patrol local (its start was refused and dismissed). */
  async dropPatrol(local) {
    const all = await getAll('outbox');
    const drop = all.filter((it) => it.patrol === local || (it.kind === 'patrol-start' && it.local === local));
    if (!drop.length) return;
    await run('outbox', 'readwrite', (s) => {
      for (const it of drop) s.outbox.delete(it.seq);
    });
    this.notify();
    await this.reload();
  }

  /** forIncident lists the queued items about a case (its server id or local id). */
  forIncident(ref) {
    return this.items.filter((it) => it.incident === ref || it.group === `inc:${ref}`);
  }
}
