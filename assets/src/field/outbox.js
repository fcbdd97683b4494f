// The outbox: every change the phone makes (a report and its photos and
// voice note, a step of a task, a patrol's start, points and end) is written
// to IndexedDB with its idempotency key first, then sent. Nothing is lost to
// a poor signal and nothing arrives twice: a send that fails for want of a
// network, or because the server is busy (5xx, 429), stays and is tried
// again with backoff, on the `online` event and when the app comes back to
// the front; the server replays a request whose key it has seen.
//
// Order: items of one group (one case, one patrol) go one at a time in the
// order they were queued, so a report is filed before its photos, and a
// patrol's points after its start. A report queued offline has a local id
// ("L:…"); what follows it names that id, mapped to the server's once the
// report has been filed (the ids store).
//
// What the server refuses for good (4xx other than 409 and 429) is kept,
// marked failed with the server's message, until the person retries or
// dismisses it; a step whose case moved on meanwhile (409 conflict) is kept
// the same way, marked conflict, with who moved it. Items queued after a
// kept one in the same group wait behind it.
//
// Photos wait as Blobs in the blobs store until uploaded, through the
// resumable upload (PUT …/attachments/uploads/:key, 256 KiB chunks with
// Content-Range); a resumed upload asks the server for its offset first.

import { ApiError, request } from '../api.js';
import { get, getAll, put, run } from './idb.js';
import { retryAfterMs, transient, newKey } from './net.js';

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

/**
 * Outbox queues and sends. Events (it is an EventTarget):
 *   change    the list changed (read outbox.items)
 *   progress  detail {seq, sent, total}: an upload moved on
 *   sent      detail {item, result}: an item arrived (result: the server's answer)
 *   problem   detail {item}: an item was refused (failed) or conflicts
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
  }

  /** start reads the queue and sends what it can; online and visibility changes send again. */
  async start() {
    window.addEventListener('online', () => this.wake());
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') this.wake();
    });
    await this.reload();
    this.kick();
  }

  /** wake: the network may be back, try everything now. */
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
   * belongs to (a photo of a report), dismissed with it.
   */
  async add(drafts, blobs = []) {
    const now = Date.now();
    await run(['outbox', 'blobs'], 'readwrite', (s) => {
      for (const b of blobs) s.blobs.put(b);
      // Parents first, so children can name their seq.
      const seqs = [];
      drafts.forEach((d, i) => {
        const item = { key: newKey(), state: 'pending', attempts: 0, nextAt: 0, error: null, created: now, ...d };
        delete item.parent;
        const req = s.outbox.add(item);
        req.onsuccess = () => {
          seqs[i] = req.result;
          // Named by the parent's seq, known by now: it was added first.
          if (d.parent !== undefined) s.outbox.put({ ...item, seq: req.result, parent: seqs[d.parent] });
        };
      });
    });
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
      for (;;) {
        this.again = false;
        await this.reload();
        const { next, wakeAt } = this.pick(Date.now());
        if (!next) {
          clearTimeout(this.timer);
          this.timer = wakeAt ? setTimeout(() => this.kick(), Math.max(50, wakeAt - Date.now())) : 0;
          break;
        }
        await this.send(next);
      }
    } catch (err) {
      console.warn('outbox: pump', err);
    } finally {
      this.running = false;
      this.sending = 0;
    }
    if (this.again) this.pump();
  }

  // pick finds the first item that may be sent now: the head of its group,
  // pending, its backoff over. wakeAt: when one will be.
  pick(now) {
    if (this.pausedUntil > now) return { next: null, wakeAt: this.pausedUntil };
    const seen = new Set();
    let wakeAt = 0;
    for (const item of this.items) {
      if (seen.has(item.group)) continue;
      seen.add(item.group);
      if (item.state !== 'pending') continue;
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
    const fresh = await get('outbox', item.seq); // an upload saved its progress meanwhile
    if (!fresh) return; // dismissed while it was being sent
    const error = err instanceof ApiError ? { message: err.message, status: err.status, code: err.code, details: err.details } : { message: String(err?.message ?? err), status: 0, code: '', details: null };
    if (err instanceof Blocked) {
      await put('outbox', { ...fresh, state: 'failed', error: { ...error, code: 'orphan' } });
    } else if (err instanceof ApiError && err.status === 409 && fresh.kind === 'transition') {
      await put('outbox', { ...fresh, state: 'conflict', error });
    } else if (transient(err)) {
      const attempts = (fresh.attempts ?? 0) + 1;
      const wait = Math.max(backoff(attempts), retryAfterMs(err));
      const network = err instanceof ApiError && (err.code === 'network' || err.status === 0);
      if (network) this.pausedUntil = Date.now() + wait;
      await put('outbox', { ...fresh, attempts, nextAt: Date.now() + wait, error });
      return;
    } else {
      await put('outbox', { ...fresh, state: 'failed', error });
    }
    await this.reload();
    this.dispatchEvent(new CustomEvent('problem', { detail: { item: await get('outbox', item.seq) } }));
  }

  async done(item, result) {
    await run(['outbox', 'blobs', 'ids'], 'readwrite', (s) => {
      s.outbox.delete(item.seq);
      if (item.kind === 'upload' && item.blob) s.blobs.delete(item.blob);
      if (item.kind === 'report' && result?.id) s.ids.put({ local: item.local, id: result.id });
      if (item.kind === 'patrol-start' && result?.id) s.ids.put({ local: item.local, id: result.id });
    });
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
    } else {
      await put('outbox', { ...item, started: true });
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
   * where the case stands now (its current version), if that step is still
   * allowed from there.
   */
  async retry(seq) {
    const item = await get('outbox', seq);
    if (!item) return;
    if (item.state === 'conflict' && item.kind === 'transition') {
      const id = await this.resolve(item.incident);
      const now = await request('GET', `/api/v1/incidents/${id}`);
      if (!Array.isArray(now?.allowed_transitions) || !now.allowed_transitions.includes(item.to)) {
        await put('outbox', { ...item, error: { ...item.error, message: `无法重试：现为 ${now?.status} · cannot retry, the case is now ${now?.status}`, details: { ...item.error?.details, status: now?.status, last_actor: item.error?.details?.last_actor } } });
        await this.reload();
        return;
      }
      // A new step from the current version: a new key (the old one was refused).
      await put('outbox', { ...item, version: now.version, key: newKey(), state: 'pending', attempts: 0, nextAt: 0, error: null });
    } else {
      await put('outbox', { ...item, state: 'pending', attempts: 0, nextAt: 0, error: null });
    }
    this.pausedUntil = 0;
    await this.reload();
    this.kick();
  }

  /** dismiss drops an item, the items that belong to it (its photos) and their blobs. */
  async dismiss(seq) {
    const all = await getAll('outbox');
    const drop = new Set([seq]);
    for (const it of all) if (drop.has(it.parent)) drop.add(it.seq);
    await run(['outbox', 'blobs'], 'readwrite', (s) => {
      for (const it of all) {
        if (!drop.has(it.seq)) continue;
        s.outbox.delete(it.seq);
        if (it.blob) s.blobs.delete(it.blob);
      }
    });
    await this.reload();
    this.kick();
  }

  /** forIncident lists the queued items about a case (its server id or local id). */
  forIncident(ref) {
    return this.items.filter((it) => it.incident === ref || it.group === `inc:${ref}`);
  }
}
