// The incidents the dashboard knows about: every open case the user may see,
// plus cases closed in the last days within the map view. Kept up to date by
// the live feed (SSE events, each fetched by id) or, without it, by polling.
// Listeners hear of every change: the map layer, the grid panel's case list,
// the incident view and the header counts.

import { ApiError, getJSON } from './api.js';
import { CLOSED_STATUSES, OPEN_STATUSES, isOpen, overdueNow } from './status.js';
import { serverNow } from './clock.js';

const PAGE = 1000;
const MAX_PAGES = 20; // at most 20,000 open cases on the map
const RECENT_CLOSED_MS = 7 * 24 * 3600 * 1000;

function newer(a, b) {
  // a replaces b unless b is a later version of the same case.
  if (!b) return true;
  if (Number(a.version) !== Number(b.version)) return Number(a.version) > Number(b.version);
  return String(a.updated_at ?? '') >= String(b.updated_at ?? '');
}

/** recentlyClosed: closed or rejected within the window (by closed_at, else updated_at). */
export function recentlyClosed(inc, now = serverNow()) {
  if (isOpen(inc.status)) return false;
  const t = Date.parse(inc.closed_at ?? inc.updated_at ?? '');
  return Number.isFinite(t) && now - t <= RECENT_CLOSED_MS;
}

export class IncidentStore {
  /** onError(err, context) shows a failure; bounds() is the map view [w, s, e, n] or null. */
  constructor({ onError, bounds }) {
    this.onError = onError;
    this.bounds = bounds;
    this.byId = new Map();
    this.listeners = new Set();
    this.loaded = false;
    this.truncated = false;
    this.maxId = 0;
    this.closedSeq = 0;
    this.pending = new Set();
    this.pendingTimer = 0;
    this.refreshing = null;
    // stored numbers each change stored; a refresh removes only cases not
    // stored since it began (one an event brought meanwhile is not in the
    // list it read, and is not gone).
    this.stored = 0;
    this.storedAt = new Map(); // id → stored when last changed
  }

  /** subscribe(fn): fn({kind: "reset"|"upsert"|"remove", incident, announce}) on every change. */
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(change) {
    for (const fn of this.listeners) {
      try {
        fn(change);
      } catch (err) {
        console.error(err);
      }
    }
  }

  has(id) {
    return this.byId.has(Number(id));
  }

  get(id) {
    return this.byId.get(Number(id)) ?? null;
  }

  all() {
    return [...this.byId.values()];
  }

  counts(now = serverNow()) {
    let open = 0;
    let overdue = 0;
    let unassigned = 0;
    for (const inc of this.byId.values()) {
      if (!isOpen(inc.status)) continue;
      open++;
      if (overdueNow(inc, now)) overdue++;
      if (!inc.grid) unassigned++;
    }
    return { open, overdue, unassigned };
  }

  async fetchPages(params) {
    const list = [];
    let cursor = null;
    for (let i = 0; i < MAX_PAGES; i++) {
      const q = new URLSearchParams(params);
      q.set('limit', String(PAGE));
      if (cursor) q.set('cursor', cursor);
      const res = await getJSON(`/api/v1/incidents?${q}`);
      list.push(...(Array.isArray(res?.incidents) ? res.incidents : []));
      if (!res?.next) return { list, complete: true };
      cursor = res.next;
    }
    return { list, complete: false };
  }

  /** load fetches every open case and replaces what is known (loadClosedInView adds the recently closed). */
  async load() {
    const { list, complete } = await this.fetchPages({ status: OPEN_STATUSES.join(',') });
    const listMax = list.reduce((m, i) => Math.max(m, Number(i.id) || 0), 0);
    const fresh = new Map(list.map((i) => [Number(i.id), i]));
    // Live events may have brought newer versions, or newer cases, while the list was read.
    for (const [id, old] of this.byId) {
      const n = fresh.get(id);
      if (n ? newer(old, n) : id > listMax) fresh.set(id, old);
    }
    this.byId = fresh;
    for (const id of this.storedAt.keys()) if (!fresh.has(id)) this.storedAt.delete(id);
    this.truncated = !complete;
    this.maxId = Math.max(this.maxId, listMax);
    this.loaded = true;
    this.emit({ kind: 'reset' });
  }

  /**
   * refresh re-reads the open cases and applies the difference: new ones are
   * announced, changed ones replaced, ones no longer open fetched again (they
   * were closed or moved out of scope). The polling fallback. One runs at
   * a time; one asked for meanwhile (an event since its list was read)
   * runs once more after it, and the promise returned covers that too.
   */
  refresh() {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      try {
        do {
          this.again = false;
          await this.doRefresh();
        } while (this.again);
      } finally {
        this.refreshing = null;
        this.again = false;
      }
    })();
    return this.refreshing;
  }

  async doRefresh() {
    const began = this.stored;
    const { list, complete } = await this.fetchPages({ status: OPEN_STATUSES.join(',') });
    const seen = new Set();
    const maxBefore = this.loaded ? this.maxId : Infinity; // nothing is "new" before a first load
    for (const inc of list) {
      seen.add(Number(inc.id));
      this.upsert(inc, { announce: Number(inc.id) > maxBefore });
    }
    this.truncated = !complete;
    if (!this.loaded) {
      this.loaded = true;
      this.emit({ kind: 'reset' });
    }
    if (complete) {
      const gone = [...this.byId.values()].filter((i) => isOpen(i.status) && !seen.has(Number(i.id)) && !((this.storedAt.get(Number(i.id)) ?? 0) > began));
      if (gone.length > 30) {
        for (const i of gone) this.remove(i.id);
      } else {
        for (const i of gone) await this.fetchOne(i.id);
      }
    }
    await this.loadClosedInView();
  }

  /** loadClosedInView adds the cases closed recently within the map view. */
  async loadClosedInView() {
    const b = this.bounds?.();
    if (!b) return;
    const seq = ++this.closedSeq;
    const clamp = (v, lim) => Math.max(-lim, Math.min(lim, v));
    const bbox = [clamp(b[0], 180), clamp(b[1], 90), clamp(b[2], 180), clamp(b[3], 90)].map((v) => v.toFixed(6)).join(',');
    const res = await getJSON(`/api/v1/incidents?${new URLSearchParams({ status: CLOSED_STATUSES.join(','), bbox, limit: '500' })}`);
    if (seq !== this.closedSeq) return;
    const now = serverNow();
    for (const inc of res?.incidents ?? []) {
      if (recentlyClosed(inc, now)) this.upsert(inc);
    }
  }

  /**
   * fetchOne reads one case and applies it; a case the user may not (or no
   * longer) see is dropped. announce marks a new case for a toast.
   */
  async fetchOne(id, { announce = false } = {}) {
    try {
      const inc = await getJSON(`/api/v1/incidents/${encodeURIComponent(id)}`);
      this.upsert(inc, { announce: announce && !this.has(inc.id) });
      return inc;
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        this.remove(id);
        return null;
      }
      throw err;
    }
  }

  /**
   * addByIds reads the cases a bulk upload's event names (at most a few
   * hundred) in one list request and applies them: the cases already known
   * stay, nothing is reloaded.
   */
  async addByIds(ids) {
    const want = [...new Set(ids.map(Number).filter((n) => Number.isFinite(n) && n > 0))];
    if (want.length === 0) return;
    const q = new URLSearchParams({ ids: want.join(','), limit: String(want.length) });
    const res = await getJSON(`/api/v1/incidents?${q}`);
    for (const inc of res?.incidents ?? []) this.upsert(inc);
  }

  /**
   * queue fetches the cases named by live events in small batches; a burst
   * (a bulk import) becomes one refresh instead of hundreds of requests.
   */
  queue(id, { announce = false } = {}) {
    const n = Number(id);
    if (!Number.isFinite(n) || n <= 0) return;
    this.pending.add(announce ? n : -n);
    clearTimeout(this.pendingTimer);
    this.pendingTimer = setTimeout(() => this.flush(), 150);
  }

  async flush() {
    const ids = [...this.pending];
    this.pending.clear();
    if (ids.length > 40) {
      await this.refresh().catch((err) => this.onError(err, 'Incidents'));
      return;
    }
    const announce = new Set(ids.filter((x) => x > 0));
    const unique = [...new Set(ids.map(Math.abs))];
    await Promise.all(
      unique.map((id) => this.fetchOne(id, { announce: announce.has(id) }).catch((err) => this.onError(err, `Incident ${id}`))),
    );
  }

  /** upsert stores a case (unless an older version) and tells the listeners. */
  upsert(inc, { announce = false } = {}) {
    if (!inc || inc.id === undefined) return;
    const id = Number(inc.id);
    const old = this.byId.get(id);
    if (!newer(inc, old)) return;
    const keep = isOpen(inc.status) || recentlyClosed(inc) || old !== undefined;
    if (!keep) return;
    const { history, ...row } = inc; // the store keeps list rows; the view fetches the history
    this.byId.set(id, row);
    this.storedAt.set(id, ++this.stored);
    if (id > this.maxId) this.maxId = id;
    this.emit({ kind: 'upsert', incident: row, previous: old ?? null, announce: announce && !old });
  }

  remove(id) {
    const n = Number(id);
    const old = this.byId.get(n);
    if (!old) return;
    this.byId.delete(n);
    this.storedAt.delete(n);
    this.emit({ kind: 'remove', incident: old });
  }
}
