// Network helpers of the field app: idempotency keys, reads that say when
// they came from the service worker's cache (poor signal), and the one rule
// for what a failed send means (try again later, or tell the person).

import { ApiError, ensureSignedIn } from '../api.js';
import { noteServerDate } from '../clock.js';

/** CACHED_HEADER is set by sw.js on an API answer served from its cache: when it was stored (ms since the epoch). */
export const CACHED_HEADER = 'X-Gridwatch-Cached';
/** FRESH_HEADER on a read tells sw.js to answer from the network only, never from its cache. */
export const FRESH_HEADER = 'X-Gridwatch-Fresh';

// While someone is signing in (or choosing whose data this phone keeps),
// reads wait: an answer read with the next person's cookie must not show,
// or be saved, under the last person's screen.
let gate = null;
let openGate = null;
let holds = 0;

/** holdReads makes getFresh wait (auth reads only) until as many releaseReads. */
export function holdReads() {
  holds++;
  if (!gate) gate = new Promise((resolve) => (openGate = resolve));
}

/** releaseReads lets the reads held by holdReads go, once every hold is released. */
export function releaseReads() {
  holds = Math.max(0, holds - 1);
  if (holds > 0) return;
  const open = openGate;
  gate = null;
  openGate = null;
  open?.();
}

/**
 * newKey makes an Idempotency-Key: 22 characters of [A-Za-z0-9_-] (128
 * random bits), from crypto.getRandomValues, which works outside a secure
 * context too (randomUUID does not).
 */
export function newKey() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...b)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * getFresh reads a JSON API path through the service worker: network first,
 * its cache after a short wait. It resolves {body, cachedAt} where cachedAt
 * is when a cached answer was stored (null for a fresh one). A 401 asks the
 * person to sign in (api.js) and reads again (unless auth is false); any
 * other failure throws ApiError. fresh: the network only (the service
 * worker does not answer from its cache), for a read a decision rests on.
 */
export async function getFresh(path, { signal, auth = true, fresh = false } = {}) {
  for (let attempt = 0; ; attempt++) {
    while (auth && gate) await gate;
    let res;
    const headers = { Accept: 'application/json' };
    if (fresh) headers[FRESH_HEADER] = '1';
    const sentAt = Date.now();
    try {
      res = await fetch(path, { headers, credentials: 'same-origin', signal, cache: fresh ? 'no-store' : 'default' });
    } catch (err) {
      if (err?.name === 'AbortError') throw err;
      throw new ApiError(`无网络 · Cannot reach the server (${path})`, { code: 'network', path });
    }
    // The server's time, for the tasks' deadlines (an answer from the cache has the time it was stored).
    if (!res.headers.has(CACHED_HEADER)) noteServerDate(res.headers.get('Date'), sentAt, Date.now());
    const text = await res.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = undefined;
    }
    if (res.status === 401 && attempt === 0 && auth) {
      await ensureSignedIn();
      continue;
    }
    if (!res.ok) {
      const e = body?.error;
      throw new ApiError(e?.message || `${res.status} ${res.statusText}`, { status: res.status, code: e?.code ?? '', details: e?.details ?? null, path });
    }
    if (body === undefined) throw new ApiError(`The server sent an invalid response for ${path}`, { status: res.status, code: 'bad_response', path });
    const stored = Number(res.headers.get(CACHED_HEADER));
    return { body, cachedAt: stored > 0 ? new Date(stored) : null };
  }
}

/**
 * transient reports whether a failed send should simply be tried again
 * later: no network, the server unavailable (5xx), busy (429) or too slow
 * (408), an answer that is not the API's (a captive portal's page:
 * bad_response), or a CSRF token gone stale (api.js has read /me again; the
 * next try carries the new one).
 */
export function transient(err) {
  if (!(err instanceof ApiError)) return err?.name !== 'AbortError';
  if (err.code === 'network' || err.code === 'bad_response' || err.status === 0) return true;
  if (err.status === 403 && err.code === 'csrf') return true;
  return err.status >= 500 || err.status === 429 || err.status === 408;
}

/** needsDevice reports whether the server refused a field report because this is not a device (phone) session. */
export function needsDevice(err) {
  const f = err?.details?.field;
  return err instanceof ApiError && err.status >= 400 && err.status < 500 && (f === 'via' || f === 'accuracy_m');
}

/** retryAfterMs is the wait a 429 or 503 asked for (details.retry_after_seconds), or 0. */
export function retryAfterMs(err) {
  const s = Number(err?.details?.retry_after_seconds);
  return s > 0 ? s * 1000 : 0;
}
