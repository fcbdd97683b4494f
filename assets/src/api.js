// Thin client for the gridwatch JSON API. Every failure becomes an ApiError
// whose message is fit to show a person: the server's error.message when it
// sent the standard {"error":{"code","message","details"}} body.
//
// Authentication is a session cookie (HttpOnly, so invisible here). This module
// keeps the signed-in user and its CSRF token, and handles for every caller:
//   - X-CSRF-Token on every mutating request; a 403 "csrf" refreshes the token
//     from /api/v1/me and retries once;
//   - a 401 on any request asks the registered sign-in handler (the login
//     overlay) for a new session, then retries the same request, so the page
//     keeps its state across a session expiry.

import { noteServerDate } from './clock.js';

/** ApiError is a failed API call; message is the text to show. */
export class ApiError extends Error {
  constructor(message, { status = 0, code = '', details = null, path = '' } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
    this.path = path;
  }
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** session is the signed-in principal (GET /api/v1/me) or null. */
export const session = { user: null, csrf: '' };

/** can reports whether the signed-in user holds a permission, e.g. can('grids.write'). */
export function can(permission) {
  const perms = session.user?.permissions;
  return Array.isArray(perms) && perms.includes(permission);
}

/**
 * applyPermissions shows each element with data-perm="a b" only when the user
 * holds at least one of the listed permissions; everything else stays hidden.
 */
export function applyPermissions(root = document) {
  for (const node of root.querySelectorAll('[data-perm]')) {
    node.hidden = !node.dataset.perm.split(/[\s|]+/).filter(Boolean).some(can);
  }
}

function setSession(me) {
  session.user = me;
  session.csrf = me?.csrf_token ?? '';
}

// signIn is the page's "please sign in again" handler: ({expired, user}) → Promise<me>.
let signIn = null;
let pendingSignIn = null;

/** onUnauthenticated registers the function that shows the login overlay and resolves with the new /me. */
export function onUnauthenticated(fn) {
  signIn = fn;
}

// reauthenticate runs one sign-in however many requests failed with 401 at once.
function reauthenticate() {
  if (!signIn) return Promise.reject(new ApiError('Your session has ended; reload the page to sign in.', { status: 401, code: 'unauthenticated' }));
  if (!pendingSignIn) {
    const previous = session.user;
    setSession(null);
    pendingSignIn = Promise.resolve(signIn({ expired: true, previous }))
      .then((me) => {
        setSession(me);
        return me;
      })
      .finally(() => {
        pendingSignIn = null;
      });
  }
  return pendingSignIn;
}

function parse(text) {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return undefined; // not JSON: reported with the HTTP status for context
  }
}

function failure(status, statusText, body, path) {
  const e = body?.error;
  const message = e?.message || `${status} ${statusText || 'error'}`;
  return new ApiError(message, { status, code: e?.code ?? '', details: e?.details ?? null, path });
}

// fetchOnce sends one request with fetch; it resolves {status, statusText, body}.
async function fetchOnce(method, path, { body, contentType, signal, accept, headers: extra }) {
  const headers = { ...extra, Accept: accept || 'application/json' };
  if (body !== undefined && contentType) headers['Content-Type'] = contentType;
  if (MUTATING.has(method) && session.csrf) headers['X-CSRF-Token'] = session.csrf;
  let res;
  const sentAt = Date.now();
  try {
    res = await fetch(path, { method, headers, body, signal, credentials: 'same-origin', cache: 'no-store' });
  } catch (err) {
    if (err?.name === 'AbortError') throw err;
    throw new ApiError(`Cannot reach the server (${path})`, { code: 'network', path });
  }
  // The field app's service worker may answer from its cache, with the Date of then: not a sample.
  if (!res.headers.has('X-Gridwatch-Cached')) noteServerDate(res.headers.get('Date'), sentAt, Date.now());
  const text = await res.text();
  return { status: res.status, statusText: res.statusText, body: parse(text), empty: text === '', text, contentType: res.headers.get('Content-Type') ?? '', etag: res.headers.get('ETag') ?? '' };
}

// xhrOnce is fetchOnce with upload progress, which fetch cannot report.
function xhrOnce(method, path, { body, contentType, signal, onProgress }) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, path);
    xhr.setRequestHeader('Accept', 'application/json');
    if (contentType) xhr.setRequestHeader('Content-Type', contentType);
    if (MUTATING.has(method) && session.csrf) xhr.setRequestHeader('X-CSRF-Token', session.csrf);
    xhr.upload.onprogress = (ev) => onProgress({ phase: 'upload', loaded: ev.loaded, total: ev.lengthComputable ? ev.total : 0 });
    xhr.upload.onload = () => onProgress({ phase: 'server', loaded: 0, total: 0 });
    xhr.onload = () => resolve({ status: xhr.status, statusText: xhr.statusText, body: parse(xhr.responseText), empty: xhr.responseText === '' });
    xhr.onerror = () => reject(new ApiError(`Cannot reach the server (${path})`, { code: 'network', path }));
    xhr.onabort = () => reject(new DOMException('aborted', 'AbortError'));
    signal?.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(body ?? null);
  });
}

/**
 * request sends one API call and returns its parsed JSON body (null for an
 * empty 2xx such as 204), or throws ApiError. Options: body (a string, Blob or
 * File), json (an object sent as JSON), contentType, signal, onProgress (use
 * XMLHttpRequest and report {phase, loaded, total}), auth: false (no sign-in
 * retry on 401: the login call itself), accept (the Accept header; with raw:
 * true the 2xx body is returned as {text, contentType}, e.g. a CSV download),
 * headers (more request headers, e.g. Idempotency-Key or If-Match; fetch only),
 * withETag (return {body, etag}: the parsed body and the ETag response header).
 */
export async function request(method, path, { json, body, contentType, signal, onProgress, auth = true, accept, raw = false, headers, withETag = false } = {}) {
  if (json !== undefined) {
    body = JSON.stringify(json);
    contentType = 'application/json';
  }
  const send = onProgress ? xhrOnce : fetchOnce;
  let csrfRetried = false;
  for (let signIns = 0; ; ) {
    const res = await send(method, path, { body, contentType, signal, onProgress, accept, headers });
    if (res.status === 401 && auth && signIns < 3) {
      signIns++;
      await reauthenticate();
      continue;
    }
    if (res.status === 403 && res.body?.error?.code === 'csrf' && !csrfRetried) {
      csrfRetried = true;
      await refreshSession();
      continue;
    }
    if (res.status < 200 || res.status > 299) throw failure(res.status, res.statusText, res.body, path);
    if (raw) return { text: res.text ?? '', contentType: res.contentType ?? '' };
    if (res.empty) return withETag ? { body: null, etag: res.etag ?? '' } : null;
    if (res.body === undefined) {
      throw new ApiError(`The server sent an invalid response for ${path}`, { status: res.status, code: 'bad_response', path });
    }
    return withETag ? { body: res.body, etag: res.etag ?? '' } : res.body;
  }
}

/** getJSON fetches path and returns its parsed JSON body, or throws ApiError. */
export function getJSON(path, { signal } = {}) {
  return request('GET', path, { signal });
}

/** sendJSON sends obj as JSON with method (POST, PATCH, …) and returns the parsed response. */
export function sendJSON(method, path, obj, opts = {}) {
  return request(method, path, { ...opts, json: obj });
}

/** currentSession asks who is signed in: the /me body, or null when nobody is (401). */
export async function currentSession() {
  try {
    setSession(await request('GET', '/api/v1/me', { auth: false }));
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      setSession(null);
      return null;
    }
    throw err;
  }
  return session.user;
}

// refreshSession fetches /me for a fresh CSRF token; a 401 there goes through sign-in.
async function refreshSession() {
  setSession(await request('GET', '/api/v1/me'));
}

/** ensureSignedIn re-reads /me; if the session has ended it asks the person to sign in again first. */
export async function ensureSignedIn() {
  await refreshSession();
  return session.user;
}

/** login signs in; it throws ApiError (401 invalid_credentials, 429 throttled, …) on refusal. */
export async function login(username, password) {
  const me = await request('POST', '/api/v1/auth/login', { json: { username, password }, auth: false });
  setSession(me);
  return me;
}

/** logout ends the session; the caller reloads the page. */
export async function logout() {
  try {
    await request('POST', '/api/v1/auth/logout', { auth: false });
  } finally {
    setSession(null);
  }
}

/** describe is the text to show a person for a failed call, with a clearer word for "not allowed". */
export function describe(err) {
  const msg = err instanceof Error ? err.message : String(err);
  if (err instanceof ApiError && err.status === 403 && err.code !== 'csrf') return `无权限 Not allowed for your role — ${msg}`;
  return msg;
}
