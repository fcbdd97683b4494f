// Network helpers of the field app: idempotency keys, reads that say when
// they came from the service worker's cache (poor signal), and the one rule
// for what a failed send means (try again later, or tell the person).

import { ApiError, ensureSignedIn } from '../api.js';

/** CACHED_HEADER is set by sw.js on an API answer served from its cache: when it was stored (ms since the epoch). */
export const CACHED_HEADER = 'X-Gridwatch-Cached';

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
 * other failure throws ApiError.
 */
export async function getFresh(path, { signal, auth = true } = {}) {
  for (let attempt = 0; ; attempt++) {
    let res;
    try {
      res = await fetch(path, { headers: { Accept: 'application/json' }, credentials: 'same-origin', signal });
    } catch (err) {
      if (err?.name === 'AbortError') throw err;
      throw new ApiError(`无网络 · Cannot reach the server (${path})`, { code: 'network', path });
    }
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
 * later: no network, the server unavailable (5xx) or busy (429).
 */
export function transient(err) {
  if (!(err instanceof ApiError)) return err?.name !== 'AbortError';
  return err.code === 'network' || err.status === 0 || err.status >= 500 || err.status === 429;
}

/** retryAfterMs is the wait a 429 or 503 asked for (details.retry_after_seconds), or 0. */
export function retryAfterMs(err) {
  const s = Number(err?.details?.retry_after_seconds);
  return s > 0 ? s * 1000 : 0;
}
