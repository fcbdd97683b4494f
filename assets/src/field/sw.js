// The field app's service worker (scope /field/): the app opens and works on
// a poor signal or none.
//
// - The app shell (self.__SHELL__, written in by the build: {version, files}
//   with URLs relative to this file) is precached in a cache named by its
//   version. A new version installs beside the running one and waits: it
//   takes over only when the page asks (the "Update available" button posts
//   skipWaiting, then reloads) or once no page runs the old one; older shell
//   caches are deleted on activate. The first version takes the page over at
//   once (clients.claim): there is no older one to break.
// - The member's own data lives in caches named by their user id
//   (gw-field-u<id>-data-…, -media-…): who I am, my tasks and cases, my
//   grids and their GeoJSON, the categories, the server's meta, case photos
//   and camera snapshots. The page names the member (message "user"); an
//   answer of /api/v1/me from the network does too. Another member's caches
//   are deleted on a change, and every member's on sign-out (message
//   "logout"); a read still under way then is not saved (a generation count
//   is checked before and after each write).
// - Reads go to the network first. Lists fall back to the last answer after
//   NETWORK_WAIT_MS (marked with the X-Gridwatch-Cached header: when it was
//   stored), and the page is told ("updated") when the network's answer
//   comes after all; "who am I" and photos wait for the network and fall
//   back to the cache only when there is none (an error, not slowness).
//   A read with the X-Gridwatch-Fresh header is the network's alone.
// - Only an answer that is the API's is saved: a 2xx, not redirected, of
//   the expected type (JSON or GeoJSON; an image or audio for media) — not a
//   captive portal's login page.
// - Vector tiles and static files outside the shell (the map library's chunk
//   and worker), nobody's own, are served from a shared cache and refreshed
//   behind it.
// - Never cached: anything but GET, the event stream, live video, locate,
//   uploads, the patrol and statistics reads, and households, residents and
//   visits: the page keeps what it needs of those itself (visits.js), cut
//   down to what it shows, in IndexedDB under the member's id.

const SHELL = self.__SHELL__ || { version: 'dev', files: [] };
const PREFIX = 'gw-field-';
const SHELL_CACHE = `${PREFIX}shell-${SHELL.version}`;
const STATIC_CACHE = `${PREFIX}static-v2`;
const META_CACHE = `${PREFIX}meta`;
const USER_VERSION = 'v2';
const USER_CACHE = /^gw-field-u([^-]+)-(data|media)-(v\d+)$/;
const NETWORK_WAIT_MS = 3000;
const CACHED_HEADER = 'X-Gridwatch-Cached';
const FRESH_HEADER = 'X-Gridwatch-Fresh';
const HASHED = /-[A-Z2-7]{8}\.(m?js|css)$/; // content-hashed names, the server's rule (assets.Hashed): immutable
const JSON_TYPE = /^application\/([\w.+-]+\+)?json\b/i;
const MEDIA_TYPE = /^(image|audio)\//i;

const scopeURL = new URL('./', self.location.href);
const shellURLs = new Set(SHELL.files.map((f) => new URL(f, self.location.href).href));
const indexURL = new URL('index.html', scopeURL).href;
const USER_URL = new URL('__gw-field-user', scopeURL).href; // META_CACHE's one entry: {"id": …}

// ---- whose data ---------------------------------------------------------------------------

let user; // the member whose caches are used: their id as a string, '' for nobody, undefined until read
let userLoad = null;
let gen = 0; // counts changes of member: a write started before one is not kept

function currentUser() {
  if (user !== undefined) return Promise.resolve(user);
  userLoad ??= caches
    .open(META_CACHE)
    .then((c) => c.match(USER_URL))
    .then((r) => (r ? r.json() : null))
    .then(
      (j) => {
        if (user === undefined) user = j?.id ? String(j.id) : '';
        return user;
      },
      () => {
        if (user === undefined) user = '';
        return user;
      },
    );
  return userLoad;
}

// setUser makes id (a user id, or '' for nobody) the member whose data is
// kept, and deletes every other member's caches.
async function setUser(id) {
  const next = id ? String(id) : '';
  await currentUser();
  if (next !== user) {
    user = next;
    gen++;
  }
  await (await caches.open(META_CACHE)).put(USER_URL, new Response(JSON.stringify({ id: next }), { headers: { 'Content-Type': 'application/json' } }));
  await dropUserCaches(next);
}

// dropUserCaches deletes the per-member caches but keep's of this version.
async function dropUserCaches(keep) {
  for (const name of await caches.keys()) {
    const m = USER_CACHE.exec(name);
    if (m && !(keep && m[1] === keep && m[3] === USER_VERSION)) await caches.delete(name);
  }
}

function userCache(u, kind) {
  return `${PREFIX}u${u}-${kind}-${USER_VERSION}`;
}

// scope is the member a read is for, at the time it started.
async function scope() {
  const u = await currentUser();
  return { u, g: gen };
}

function still(s) {
  return !!s.u && user === s.u && gen === s.g;
}

// putFor saves an answer in the member's cache, unless the member changed
// (or signed out) since the read began — checked again after the write, so a
// sign-out during it does not leave the cache re-created.
async function putFor(s, kind, key, res) {
  if (!still(s)) return;
  const name = userCache(s.u, kind);
  await (await caches.open(name)).put(key, res);
  if (!still(s)) await caches.delete(name);
  else trimSoon(name);
}

async function matchFor(s, kind, key) {
  if (!s.u) return undefined;
  return caches.match(key, { cacheName: userCache(s.u, kind) });
}

// ---- lifecycle ------------------------------------------------------------------------------

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(SHELL_CACHE);
      // A content-hashed file may come from the HTTP cache (the page just
      // loaded it); the others from the server ('reload'), this version's.
      await cache.addAll([...shellURLs].map((u) => new Request(u, { cache: HASHED.test(new URL(u).pathname) ? 'default' : 'reload', credentials: 'same-origin' })));
      // No skipWaiting here: a page running the old version keeps it until it reloads.
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      const u = await currentUser();
      for (const name of await caches.keys()) {
        if (!name.startsWith(PREFIX) || name === SHELL_CACHE || name === STATIC_CACHE || name === META_CACHE || USER_CACHE.test(name)) continue;
        await caches.delete(name); // older shells, and the shared caches of earlier versions
      }
      await dropUserCaches(u);
      await self.clients.claim();
    })(),
  );
});

self.addEventListener('message', (event) => {
  const d = event.data ?? {};
  const reply = (msg) => (event.ports?.[0] ?? event.source)?.postMessage(msg);
  if (d.type === 'version') event.source?.postMessage({ type: 'version', version: SHELL.version });
  else if (d.type === 'user') event.waitUntil(setUser(d.id).then(() => reply({ type: 'user', id: user })));
  else if (d.type === 'logout') event.waitUntil(setUser('').then(() => reply({ type: 'logout' })));
  else if (d.type === 'skipWaiting') event.waitUntil(self.skipWaiting());
});

// ---- reads --------------------------------------------------------------------------------------

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  const path = url.pathname;

  if (req.mode === 'navigate') {
    if (url.href.startsWith(scopeURL.href)) event.respondWith(shellFirst(indexURL, req));
    return;
  }
  if (shellURLs.has(url.href)) {
    event.respondWith(shellFirst(url.href, req));
    return;
  }
  if (path.startsWith('/api/')) {
    const how = apiRule(path);
    if (!how || req.headers.has(FRESH_HEADER)) return; // the network's alone
    if (how === 'me') event.respondWith(networkFirst(event, req, { wait: 0, me: true }));
    else if (how === 'list') event.respondWith(networkFirst(event, req, { wait: NETWORK_WAIT_MS }));
    else if (how === 'media') event.respondWith(networkFirst(event, req, { wait: 0, kind: 'media', type: MEDIA_TYPE }));
    else if (how === 'snapshot') event.respondWith(lastSnapshot(event, req, url));
    return;
  }
  if (path.startsWith('/tiles/')) {
    event.respondWith(cacheFirstRefresh(event, req));
    return;
  }
  if (path.startsWith('/ogc/') || path.startsWith('/metrics')) return;
  // Static files outside the shell: the map library's chunk and its worker.
  // A content-hashed name never changes: no refresh behind it.
  if (/\.(m?js|css|png|svg|json|webmanifest)$/.test(path)) event.respondWith(cacheFirstRefresh(event, req, !HASHED.test(path)));
});

// apiRule says how an API read is served: 'me', 'list', 'media', 'snapshot'
// or '' (straight to the network, never cached).
function apiRule(path) {
  if (path === '/api/v1/events' || path === '/api/v1/locate') return '';
  if (/^\/api\/v1\/(households|residents|visits)(\/|$)/.test(path)) return ''; // personal: visits.js keeps its own, cut down
  if (/\/(live|whep|hls|playback\.m3u8)(\/|$)/.test(path)) return '';
  if (/^\/api\/v1\/cameras\/\d+\/snapshot\.jpg$/.test(path)) return 'snapshot';
  if (/^\/api\/v1\/incidents\/\d+\/attachments\/uploads\//.test(path)) return '';
  if (/^\/api\/v1\/incidents\/\d+\/attachments\/\d+$/.test(path)) return 'media'; // private, no-cache: kept for this member, offline only
  if (path === '/api/v1/me') return 'me';
  if (path === '/api/v1/grids.geojson' || path === '/api/v1/meta' || path === '/api/v1/categories') return 'list';
  if (path === '/api/v1/incidents' || /^\/api\/v1\/incidents\/\d+$/.test(path)) return 'list';
  if (/^\/api\/v1\/grids(\/\d+(\/cameras)?)?$/.test(path)) return 'list';
  return '';
}

// shellFirst answers from the shell's cache (the page under either of its
// names), else the network.
async function shellFirst(key, req) {
  const cache = await caches.open(SHELL_CACHE);
  const hit = (await cache.match(key)) ?? (key === indexURL ? await cache.match(scopeURL.href) : undefined);
  return hit ?? fetch(req);
}

// stamped copies a response with the time it is stored, for the page to say "saved at".
async function stamped(res) {
  const headers = new Headers(res.headers);
  headers.set(CACHED_HEADER, String(Date.now()));
  return new Response(await res.blob(), { status: res.status, statusText: res.statusText, headers });
}

// usable: an answer of the API itself, fit to keep.
function usable(res, type) {
  return res.ok && !res.redirected && type.test(res.headers.get('Content-Type') ?? '');
}

// networkFirst reads from the network. The member's cached answer is used
// when there is no network, when the answer is not the API's (a captive
// portal), or — with wait > 0 — when the network has not answered within
// wait ms; the page is then told when the network's answer arrives.
// me: the answer names the member whose caches are used.
function networkFirst(event, req, { wait, kind = 'data', type = JSON_TYPE, me = false }) {
  const work = (async () => {
    let s = await scope();
    let res;
    try {
      res = await fetch(req);
    } catch {
      return { res: null, s };
    }
    if (usable(res, type)) {
      if (me) {
        const id = await res
          .clone()
          .json()
          .then((b) => (b?.kind === 'user' && b.id ? String(b.id) : ''), () => '');
        if (id && id !== s.u) {
          await setUser(id);
          s = await scope();
        }
      }
      await putFor(s, kind, req, await stamped(res.clone())).catch(() => {});
      return { res, s, fresh: true };
    }
    if (me && (res.status === 401 || res.status === 403) && s.u) {
      // The session has ended: "who am I" is no longer this member, even offline.
      await caches.open(userCache(s.u, kind)).then((c) => c.delete(req)).catch(() => {});
    }
    return { res, s, fresh: false };
  })();
  event.waitUntil(work.catch(() => null));
  return (async () => {
    let timer;
    let answered = 'network';
    const late = wait > 0 ? new Promise((resolve) => (timer = setTimeout(() => resolve(null), wait))) : null;
    let first = late ? await Promise.race([work, late]) : await work;
    clearTimeout(timer);
    if (!first) {
      // Slow: the saved answer now, the network's when it comes.
      const hit = await matchFor(await scope(), kind, req);
      if (hit) {
        answered = 'cache';
        event.waitUntil(
          work.then(async (w) => {
            if (w?.fresh && event.clientId) (await self.clients.get(event.clientId))?.postMessage({ type: 'updated', path: new URL(req.url).pathname });
          }),
        );
        return hit;
      }
      first = await work;
    }
    if (answered === 'network' && first.res && (first.fresh || !first.res.ok)) return first.res;
    // No network, or an answer that is not the API's: the saved one, if any.
    return (await matchFor(first.s, kind, req)) ?? first.res ?? offlineAnswer();
  })();
}

// cacheFirstRefresh answers from the shared cache and refreshes it behind;
// the network when nothing is cached. For what is nobody's own: tiles and
// the map library.
function cacheFirstRefresh(event, req, refreshing = true) {
  const keep = (res) => res.status === 200 && !res.redirected && !/^text\/html/i.test(res.headers.get('Content-Type') ?? '');
  if (!refreshing) {
    return (async () => {
      const hit = await caches.match(req, { cacheName: STATIC_CACHE });
      if (hit) return hit;
      const res = await fetch(req).catch(() => null);
      if (res && keep(res)) {
        const copy = res.clone();
        event.waitUntil(
          caches
            .open(STATIC_CACHE)
            .then((c) => c.put(req, copy))
            .then(() => trimSoon(STATIC_CACHE))
            .catch(() => {}),
        );
      }
      return res ?? offlineAnswer();
    })();
  }
  const refresh = fetch(req).then(
    async (res) => {
      if (keep(res)) {
        await (await caches.open(STATIC_CACHE)).put(req, res.clone());
        trimSoon(STATIC_CACHE);
      }
      return res;
    },
    () => null,
  );
  event.waitUntil(refresh.catch(() => null));
  return (async () => (await caches.match(req, { cacheName: STATIC_CACHE })) ?? (await refresh) ?? offlineAnswer())();
}

// lastSnapshot: a camera's picture from the network, kept (the member's) as
// its only cached one; that one offline.
function lastSnapshot(event, req, url) {
  const key = url.origin + url.pathname; // one per camera, whatever the cache-busting query
  const work = (async () => {
    const s = await scope();
    const res = await fetch(req).catch(() => null);
    if (res && usable(res, MEDIA_TYPE)) await putFor(s, 'media', key, res.clone()).catch(() => {});
    return { res, s };
  })();
  event.waitUntil(work.catch(() => null));
  return (async () => {
    const { res, s } = await work;
    return res ?? (await matchFor(s, 'media', key)) ?? offlineAnswer();
  })();
}

// trimSoon keeps a runtime cache to its newest MAX_ENTRIES (tiles, photos),
// at most once a TRIM_EVERY_MS per cache: listing a cache's keys costs more
// than a write.
const MAX_ENTRIES = 400;
const TRIM_EVERY_MS = 60 * 1000;
const trimmed = new Map();
function trimSoon(name) {
  const now = Date.now();
  if (now - (trimmed.get(name) ?? 0) < TRIM_EVERY_MS) return;
  trimmed.set(name, now);
  trim(name).catch(() => {});
}

async function trim(name) {
  const cache = await caches.open(name);
  const keys = await cache.keys();
  for (const k of keys.slice(0, Math.max(0, keys.length - MAX_ENTRIES))) await cache.delete(k);
}

function offlineAnswer() {
  const body = JSON.stringify({ error: { code: 'network', message: '离线，且无缓存 · offline, and nothing saved for this' } });
  return new Response(body, { status: 503, headers: { 'Content-Type': 'application/json', 'Retry-After': '5' } });
}
