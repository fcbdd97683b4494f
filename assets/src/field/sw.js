// The field app's service worker (scope /field/): the app opens and works on
// a poor signal or none.
//
// - The app shell (self.__SHELL__, written in by the build: {version, files}
//   with URLs relative to this file) is precached in a cache named by its
//   version; older shell caches are deleted on activate. A new version takes
//   over at once (skipWaiting + clients.claim); the page then offers a reload.
// - API reads the app needs offline — who I am, my tasks and cases, my grids,
//   the categories, the server's meta — go to the network first and fall
//   back to the last answer cached after NETWORK_WAIT_MS (marked with the
//   X-Gridwatch-Cached header: when it was stored). A 401 drops the cached
//   "who am I".
// - Grid GeoJSON, vector tiles, case photos and static files outside the
//   shell (the map library's chunk and worker) are served from the cache
//   and refreshed behind it.
// - A camera's snapshot: the network, else the last one of that camera.
// - Never cached: anything but GET, the event stream, live video, locate,
//   uploads, the patrol and statistics reads.

const SHELL = self.__SHELL__ || { version: 'dev', files: [] };
const PREFIX = 'gw-field-';
const SHELL_CACHE = `${PREFIX}shell-${SHELL.version}`;
const API_CACHE = `${PREFIX}api-v1`;
const MAP_CACHE = `${PREFIX}map-v1`;
const SNAP_CACHE = `${PREFIX}snap-v1`;
const KEEP = new Set([SHELL_CACHE, API_CACHE, MAP_CACHE, SNAP_CACHE]);
const NETWORK_WAIT_MS = 3000;
const CACHED_HEADER = 'X-Gridwatch-Cached';
const HASHED = /-[A-Z2-7]{8}\.(m?js|css)$/; // content-hashed names, the server's rule (assets.Hashed): immutable

const scopeURL = new URL('./', self.location.href);
const shellURLs = new Set(SHELL.files.map((f) => new URL(f, self.location.href).href));
const indexURL = new URL('index.html', scopeURL).href;

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(SHELL_CACHE);
      // A content-hashed file may come from the HTTP cache (the page just
      // loaded it); the others from the server ('reload'), this version's.
      await cache.addAll([...shellURLs].map((u) => new Request(u, { cache: HASHED.test(new URL(u).pathname) ? 'default' : 'reload', credentials: 'same-origin' })));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith(PREFIX) && !KEEP.has(name)) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

self.addEventListener('message', (event) => {
  if (event.data?.type === 'version') event.source?.postMessage({ type: 'version', version: SHELL.version });
});

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
    if (how === 'network-first') event.respondWith(networkFirst(event, req));
    else if (how === 'cache-first') event.respondWith(cacheFirstRefresh(event, req, MAP_CACHE));
    else if (how === 'immutable') event.respondWith(cacheFirstRefresh(event, req, MAP_CACHE, false));
    else if (how === 'snapshot') event.respondWith(lastSnapshot(event, req, url));
    return;
  }
  if (path.startsWith('/tiles/')) {
    event.respondWith(cacheFirstRefresh(event, req, MAP_CACHE));
    return;
  }
  if (path.startsWith('/ogc/') || path.startsWith('/metrics')) return;
  // Static files outside the shell: the map library's chunk and its worker.
  // A content-hashed name never changes: no refresh behind it.
  if (/\.(m?js|css|png|svg|json|webmanifest)$/.test(path)) event.respondWith(cacheFirstRefresh(event, req, MAP_CACHE, !HASHED.test(path)));
});

// apiRule says how an API read is served: 'network-first', 'cache-first',
// 'immutable', 'snapshot' or '' (straight to the network, never cached).
function apiRule(path) {
  if (path === '/api/v1/events' || path === '/api/v1/locate') return '';
  if (/\/(live|whep|hls|playback\.m3u8)(\/|$)/.test(path)) return '';
  if (/^\/api\/v1\/cameras\/\d+\/snapshot\.jpg$/.test(path)) return 'snapshot';
  if (/^\/api\/v1\/incidents\/\d+\/attachments\/uploads\//.test(path)) return '';
  if (/^\/api\/v1\/incidents\/\d+\/attachments\/\d+$/.test(path)) return 'immutable'; // a photo never changes
  if (path === '/api/v1/grids.geojson') return 'cache-first';
  if (path === '/api/v1/me' || path === '/api/v1/meta' || path === '/api/v1/categories') return 'network-first';
  if (path === '/api/v1/incidents' || /^\/api\/v1\/incidents\/\d+$/.test(path)) return 'network-first';
  if (/^\/api\/v1\/grids(\/\d+(\/cameras)?)?$/.test(path)) return 'network-first';
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

// networkFirst: the network within NETWORK_WAIT_MS, else the cached answer
// (the network's answer still refreshes the cache when it comes).
function networkFirst(event, req) {
  const network = fetch(req).then(
    async (res) => {
      const cache = await caches.open(API_CACHE);
      if (res.ok) await cache.put(req, await stamped(res.clone()));
      else if (res.status === 401 || res.status === 403) await cache.delete(req);
      return res;
    },
    () => null,
  );
  event.waitUntil(network);
  return (async () => {
    let timer;
    const late = new Promise((resolve) => {
      timer = setTimeout(() => resolve('late'), NETWORK_WAIT_MS);
    });
    const first = await Promise.race([network, late]);
    clearTimeout(timer);
    if (first && first !== 'late') return first;
    const hit = await caches.match(req, { cacheName: API_CACHE });
    if (hit) return hit;
    return (first === 'late' ? await network : null) ?? offlineAnswer();
  })();
}

// cacheFirstRefresh answers from the cache and refreshes it behind; the network when nothing is cached.
function cacheFirstRefresh(event, req, name, refreshing = true) {
  if (!refreshing) {
    return (async () => {
      const hit = await caches.match(req, { cacheName: name });
      if (hit) return hit;
      const res = await fetch(req).catch(() => null);
      if (res?.status === 200) {
        const copy = res.clone();
        event.waitUntil(caches.open(name).then((c) => c.put(req, copy)).then(() => trim(name)).catch(() => {}));
      }
      return res ?? offlineAnswer();
    })();
  }
  const refresh = fetch(req).then(
    async (res) => {
      if (res.status === 200) {
        await (await caches.open(name)).put(req, res.clone());
        await trim(name);
      }
      return res;
    },
    () => null,
  );
  event.waitUntil(refresh.catch(() => null));
  return (async () => (await caches.match(req, { cacheName: name })) ?? (await refresh) ?? offlineAnswer())();
}

// lastSnapshot: a camera's picture from the network, kept as its only cached one; that one offline.
function lastSnapshot(event, req, url) {
  const key = url.origin + url.pathname; // one per camera, whatever the cache-busting query
  const network = fetch(req).then(
    async (res) => {
      if (res.ok) await (await caches.open(SNAP_CACHE)).put(key, res.clone());
      return res;
    },
    () => null,
  );
  event.waitUntil(network);
  return (async () => (await network) ?? (await caches.match(key, { cacheName: SNAP_CACHE })) ?? offlineAnswer())();
}

// trim keeps a runtime cache to its newest MAX_ENTRIES (tiles, photos).
const MAX_ENTRIES = 400;
async function trim(name) {
  const cache = await caches.open(name);
  const keys = await cache.keys();
  for (const k of keys.slice(0, Math.max(0, keys.length - MAX_ENTRIES))) await cache.delete(k);
}

function offlineAnswer() {
  const body = JSON.stringify({ error: { code: 'network', message: '离线，且无缓存 · offline, and nothing saved for this' } });
  return new Response(body, { status: 503, headers: { 'Content-Type': 'application/json', 'Retry-After': '5' } });
}
