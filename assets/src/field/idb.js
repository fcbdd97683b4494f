// A tiny promise wrapper over IndexedDB for the field app's own database:
// the outbox (what is still to be sent, in order), the photos and voice
// notes waiting to be uploaded (as Blobs), the local ids of reports mapped to
// the server's once known, a few saved values (the patrol running), and the
// answers the page keeps itself for use offline (cache: the households of
// the member's grids and their visits, each record naming its member).
//
// Each call is one transaction; run() gives the callback the object stores
// and resolves once the transaction has committed, so "queued" means written.

const DB_NAME = 'gridwatch-field';
const DB_VERSION = 2;

/** STORES names the object stores: outbox (autoincrement seq), blobs (id), ids (local), kv (k), cache (k). */
export const STORES = ['outbox', 'blobs', 'ids', 'kv', 'cache'];

let opening = null;

/** openDB opens (once) the field app's database, creating its stores on first use. */
export function openDB() {
  if (!opening) {
    opening = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, DB_VERSION);
      req.onupgradeneeded = () => {
        const db = req.result;
        if (!db.objectStoreNames.contains('outbox')) db.createObjectStore('outbox', { keyPath: 'seq', autoIncrement: true });
        if (!db.objectStoreNames.contains('blobs')) db.createObjectStore('blobs', { keyPath: 'id' });
        if (!db.objectStoreNames.contains('ids')) db.createObjectStore('ids', { keyPath: 'local' });
        if (!db.objectStoreNames.contains('kv')) db.createObjectStore('kv', { keyPath: 'k' });
        // Version 2: answers kept by the page (visits.js), {k, owner, at, body}.
        if (!db.objectStoreNames.contains('cache')) db.createObjectStore('cache', { keyPath: 'k' });
      };
      req.onsuccess = () => {
        const db = req.result;
        // Another tab upgrading the schema: let it, this one reopens on next use.
        db.onversionchange = () => {
          db.close();
          opening = null;
        };
        resolve(db);
      };
      req.onerror = () => {
        opening = null;
        reject(req.error ?? new Error('IndexedDB cannot be opened'));
      };
      req.onblocked = () => console.warn('field: IndexedDB upgrade blocked by another tab');
    });
  }
  return opening;
}

/**
 * run opens one transaction over stores (a name or a list) in mode
 * ("readonly" or "readwrite") and calls fn with an object of the stores by
 * name. fn may return an IDBRequest (or an array / object of them): run
 * resolves with their results once the transaction has completed, and
 * rejects if it aborts.
 */
export async function run(stores, mode, fn) {
  const names = Array.isArray(stores) ? stores : [stores];
  const db = await openDB();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(names, mode);
    const byName = Object.fromEntries(names.map((n) => [n, tx.objectStore(n)]));
    let out;
    try {
      out = fn(byName);
    } catch (err) {
      tx.abort();
      reject(err);
      return;
    }
    tx.oncomplete = () => resolve(results(out));
    tx.onerror = () => reject(tx.error ?? new Error('IndexedDB transaction failed'));
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
  });
}

function results(out) {
  if (out instanceof IDBRequest) return out.result;
  if (Array.isArray(out)) return out.map(results);
  if (out && typeof out === 'object' && Object.getPrototypeOf(out) === Object.prototype) {
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, results(v)]));
  }
  return out;
}

/** get reads one record by key (undefined when absent). */
export function get(store, key) {
  return run(store, 'readonly', (s) => s[store].get(key));
}

/** getAll reads every record of a store, in key order. */
export function getAll(store) {
  return run(store, 'readonly', (s) => s[store].getAll());
}

/** put writes one record; it resolves with its key. */
export function put(store, value) {
  return run(store, 'readwrite', (s) => s[store].put(value));
}

/**
 * update rewrites one record in a single transaction: fn(current) returns
 * the new record (or undefined to leave it). A record removed meanwhile
 * (an item dismissed) stays removed: update resolves false and writes
 * nothing, so a stale copy is never written back.
 */
export async function update(store, key, fn) {
  const out = await run(store, 'readwrite', (s) => {
    const r = { found: false };
    const req = s[store].get(key);
    req.onsuccess = () => {
      if (req.result === undefined) return;
      r.found = true;
      const next = fn(req.result);
      if (next !== undefined) s[store].put(next);
    };
    return r;
  });
  return out.found;
}

/** del removes one record by key. */
export function del(store, key) {
  return run(store, 'readwrite', (s) => {
    s[store].delete(key);
  });
}

/** kvGet reads a saved value by name (undefined when absent). */
export async function kvGet(k) {
  return (await get('kv', k))?.v;
}

/** kvSet saves a value by name; undefined removes it. */
export function kvSet(k, v) {
  return v === undefined ? del('kv', k) : put('kv', { k, v });
}

/** clearAll empties every store (sign-out: nothing of one user stays for the next). */
export function clearAll() {
  return run(STORES, 'readwrite', (s) => {
    for (const n of STORES) s[n].clear();
  });
}

/** OWNER_KEY (kv) names the member whose data this phone keeps: {id, username} (main.js settles it at sign-in). */
export const OWNER_KEY = 'owner';

/**
 * cacheGet reads a kept answer ({k, owner, at, body}) if it is owner's (a
 * user id); another member's, or none, is undefined.
 */
export async function cacheGet(k, owner) {
  const rec = await get('cache', k);
  return rec && owner && rec.owner === owner ? rec : undefined;
}

/**
 * cachePut keeps body under k for owner, in one transaction with a look at
 * whose data the phone keeps now: a read that began before another member
 * signed in (or before a sign-out) is not written, so nothing of one member
 * lands in the next one's phone. It resolves whether it was written.
 */
export async function cachePut(k, owner, body) {
  const out = await run(['cache', 'kv'], 'readwrite', (s) => {
    const r = { written: false };
    const req = s.kv.get(OWNER_KEY);
    req.onsuccess = () => {
      if (!owner || req.result?.v?.id !== owner) return;
      s.cache.put({ k, owner, at: Date.now(), body });
      r.written = true;
    };
    return r;
  });
  return out.written;
}

/**
 * cacheUpdate rewrites owner's kept answer k in one transaction: fn(body)
 * returns the new body (undefined: left as it is). Nothing kept, or another
 * member's: nothing is written.
 */
export function cacheUpdate(k, owner, fn) {
  return run(['cache', 'kv'], 'readwrite', (s) => {
    const who = s.kv.get(OWNER_KEY);
    const req = s.cache.get(k);
    req.onsuccess = () => {
      const rec = req.result;
      // Requests of one transaction complete in order: who has its answer.
      if (!rec || rec.owner !== owner || who.result?.v?.id !== owner) return;
      const next = fn(rec.body);
      if (next !== undefined) s.cache.put({ ...rec, body: next });
    };
  });
}
