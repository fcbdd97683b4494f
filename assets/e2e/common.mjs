// Helpers shared by the browser tests (every e2e/*.mjs): reading the command
// line (scriptArgs), opening a watched page (openPage), launching
// Debian's Chromium through playwright-core, collecting every page error,
// console error, CSP violation and failed same-origin request, signing in
// through the login overlay, and finding grids that can be clicked on the map.

import { chromium } from 'playwright-core';
import { interiorPoint } from '../src/geometry.js';

/** launch starts headless Chromium (env CHROMIUM, default /usr/bin/chromium), with extra command-line args if given. */
export function launch({ args = [] } = {}) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic', ...args],
  });
}

/** timeoutMs is the wait for any one thing (env E2E_TIMEOUT_MS, default 20000). */
export const timeoutMs = Number(process.env.E2E_TIMEOUT_MS) || 20000;

/** deadline exits the process with a failure if the whole run takes too long. */
export function deadline(started, ms) {
  const t = setTimeout(() => {
    console.error(`e2e: FAIL: gave up after ${Math.round((Date.now() - started) / 1000)} s`);
    process.exit(1);
  }, ms);
  t.unref();
}

/**
 * scriptArgs reads a script's command line, `node e2e/<script> <baseURL>
 * <usage>`: a missing argument (each <…> of usage is required) exits with the
 * usage. It starts the run's hard deadline of budgetMs (never hang a test run)
 * and returns {base (the URL), args (the arguments after it), started (ms)}.
 */
export function scriptArgs(script, usage, budgetMs) {
  const [baseArg, ...args] = process.argv.slice(2);
  const required = (usage.match(/</g) ?? []).length;
  if (!baseArg || args.slice(0, required).filter(Boolean).length < required) {
    console.error(`usage: node e2e/${script} <baseURL> ${usage}`);
    process.exit(2);
  }
  const started = Date.now();
  deadline(started, budgetMs);
  return { base: baseURL(baseArg), args, started };
}

/**
 * bearerFetch calls the service at base from this process (behind the page's
 * back) with a bearer token: method, path p, body sent as JSON if given, extra
 * headers. It returns {status, ok, etag, text} of the answer.
 */
export async function bearerFetch(base, token, method, p, body, headers = {}) {
  const res = await fetch(new URL(p, base), {
    method,
    headers: { Authorization: `Bearer ${token}`, Accept: 'application/json', ...(body ? { 'Content-Type': 'application/json' } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, ok: res.ok, etag: res.headers.get('ETag'), text: await res.text() };
}

/** fileIncident files a hotline case (category 0101) titled title at coordinates [lon, lat] through the API with token; it returns the case. */
export async function fileIncident(base, token, title, coordinates) {
  const r = await bearerFetch(base, token, 'POST', '/api/v1/incidents', { source: 'hotline', category: '0101', title, location: { type: 'Point', coordinates } });
  if (!r.ok) throw new Error(`POST /api/v1/incidents: HTTP ${r.status} ${r.text.slice(0, 300)}`);
  return JSON.parse(r.text);
}

/** demoToken is the demo integration token (env GW_TOKEN): incidents and tags filed by "the system". */
export const demoToken = process.env.GW_TOKEN || 'gw_demo-integration-token-for-local-use-only';

/** baseURL normalises the command-line base URL to end with a slash. */
export function baseURL(arg) {
  return new URL(arg.endsWith('/') ? arg : `${arg}/`);
}

/**
 * pointAt centres the map on [lon, lat] at zoom 17 and, once it has drawn,
 * tells where that point is on the page: {x, y, zoom, onCanvas (the map, not
 * something over it, is there), near}. near counts, for each name of around
 * ({name: {layers, px}}), the features drawn within px of the point on those
 * of its layers the map has.
 */
export function pointAt(page, [lon, lat], around = {}) {
  return page.evaluate(
    ([lon, lat, around]) =>
      new Promise((resolve) => {
        const map = window.gridwatchMap;
        map.once('idle', () => {
          const r = map.getContainer().getBoundingClientRect();
          const p = map.project([lon, lat]);
          const x = r.left + p.x;
          const y = r.top + p.y;
          const near = {};
          for (const [name, { layers, px }] of Object.entries(around)) {
            const have = layers.filter((l) => map.getLayer(l));
            near[name] = have.length ? map.queryRenderedFeatures([[p.x - px, p.y - px], [p.x + px, p.y + px]], { layers: have }).length : 0;
          }
          resolve({ x, y, onCanvas: document.elementFromPoint(x, y)?.tagName === 'CANVAS', zoom: map.getZoom(), near });
        });
        map.jumpTo({ center: [lon, lat], zoom: 17 });
        map.triggerRepaint();
      }),
    [lon, lat, around],
  );
}

/** clickAt moves the mouse to page point at (from off px up and left of it, as a hand would) and clicks. */
export async function clickAt(page, at, off) {
  await page.mouse.move(at.x - off, at.y - off);
  await page.mouse.move(at.x, at.y, { steps: 4 });
  await page.mouse.click(at.x, at.y);
}

/**
 * openPage opens a page in a new browser context the size of a control-room
 * screen (1600×900, with contextOptions added) and watches it (see watch),
 * allowing the 401 of GET /api/v1/me ("who am I?") before sign-in. It
 * returns {context, page, watcher}.
 */
export async function openPage(browser, base, contextOptions = {}) {
  const context = await browser.newContext({ viewport: { width: 1600, height: 900 }, deviceScaleFactor: 1, ...contextOptions });
  const page = await context.newPage();
  const watcher = watch(page, base);
  watcher.expect('GET', /^\/api\/v1\/me$/, 401);
  return { context, page, watcher };
}

/**
 * watch records what goes wrong in a page. Responses of 400 and above are
 * problems unless expect(...) allowed them (or, by default, a 501 from the
 * live event stream): watcher.expect(method, pathRegExp,
 * status) allows that answer (e.g. the 401 of GET /api/v1/me before sign-in).
 * check(step) throws if anything was recorded, or if #banner shows an error.
 */
// watchers holds every watch's problems, for the failure report of main().
const watchers = [];

/** problemsSeen is what every watcher recorded so far, for a failure's report. */
export function problemsSeen() {
  return watchers.flat();
}

export function watch(page, base) {
  const problems = [];
  // The live event stream answers 501 on a server without it; the page then
  // polls instead (src/live.js), which is not a failure.
  // Likewise a server without the recorder's status (GET /api/v1/recording/status)
  // answers 404, and the page shows no disk-full banner (src/recording-status.js).
  const allowed = [
    { method: 'GET', path: /^\/api\/v1\/events$/, status: [501] },
    { method: 'GET', path: /^\/api\/v1\/recording\/status$/, status: [404] },
  ];
  const sameOrigin = (u) => {
    try {
      return new URL(u).origin === base.origin;
    } catch {
      return false;
    }
  };
  page.on('pageerror', (err) => problems.push(`page error: ${err.stack || err.message}`));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    // Chromium logs every 4xx as "Failed to load resource"; the response
    // handler below decides whether that status was expected.
    if (/^Failed to load resource: the server responded with a status of \d+/.test(msg.text()) && sameOrigin(msg.location()?.url ?? '')) return;
    problems.push(`console error: ${msg.text()}`);
  });
  page.on('requestfailed', (req) => {
    if (!sameOrigin(req.url())) return;
    // A player cancels the media segment it was loading when it seeks or
    // closes (hls.js aborts the request), and a <video> its read of a whole
    // file once it has the metadata (an export played): that is not a failure.
    // Likewise the footage view cancels its own reads (recordings, tags)
    // when it closes or moves on, and the map the tiles a move leaves behind.
    if (req.failure()?.errorText === 'net::ERR_ABORTED' && req.method() === 'GET' &&
      /^\/api\/v1\/(recordings\/\d+\/file\.mp4|exports\/\d+\/file|cameras\/\d+\/(hls|playback|recordings)|tags$)|^\/tiles\/\w+\/\d+\/\d+\/\d+\.mvt$/.test(new URL(req.url()).pathname)) return;
    problems.push(`request failed: ${req.method()} ${req.url()} (${req.failure()?.errorText})`);
  });
  page.on('response', (res) => {
    if (!sameOrigin(res.url()) || res.status() < 400) return;
    const method = res.request().method();
    const path = new URL(res.url()).pathname;
    if (allowed.some((a) => a.method === method && a.path.test(path) && a.status.includes(res.status()))) return;
    // The answer's body says why; it is read after the fact, so the entry is
    // completed in place when it arrives.
    const at = problems.push(`HTTP ${res.status()} for ${method} ${res.url()}`) - 1;
    res.text().then((body) => {
      problems[at] += ` → ${body.slice(0, 400)}`;
    }, () => {});
  });
  watchers.push(problems);
  return {
    problems,
    expect(method, path, ...status) {
      allowed.push({ method, path, status });
    },
    async check(step) {
      const banner = await page.evaluate(() => {
        const b = document.querySelector('#banner');
        return b && !b.hidden ? b.textContent.trim() : '';
      });
      if (banner) problems.push(`error banner: ${banner}`);
      if (problems.length) throw new Error(`${step}: ${problems.join('; ')}`);
    },
  };
}

/**
 * passed is a run's last step: check(step) (a watcher's check: nothing went
 * wrong so far), then the run's summary, which every script starts with ok
 * and the page it tested: { ok: true, url, ...fields }.
 */
export async function passed(check, step, base, fields) {
  await check(step);
  return { ok: true, url: base.href, ...fields };
}

/**
 * waitFor waits for fn(arg) to be truthy in the page (for ms, default
 * timeoutMs); on timeout it throws with what(): a description.
 */
export async function waitFor(page, fn, arg, what, ms = timeoutMs) {
  try {
    await page.waitForFunction(fn, arg, { timeout: ms, polling: 100 });
  } catch (err) {
    const detail = typeof what === 'function' ? await what().catch((e) => e.message) : what;
    throw new Error(`${detail ?? 'condition'} not met within ${ms} ms (${err.message.split('\n')[0]})`);
  }
}

/**
 * holdAnswer holds back the answer to the page's next request for url (a
 * RegExp; GET, and only one whose URL passes accept): the server answers
 * it at once, and the page gets that answer only on release(). A late
 * answer, read before a change and shown after it: the page must not take
 * it over what it heard since. read() waits (timeoutMs) for the request and
 * returns the server's answer (a Playwright APIResponse); stop() releases
 * it, waits until the page has it, and removes the route. (Removed first,
 * the route would let the held request go to the server again: the page
 * would get a new answer, not the late one.)
 */
export async function holdAnswer(page, url, what, accept = () => true) {
  let answer = null;
  let release;
  let asked;
  let given;
  const released = new Promise((resolve) => (release = resolve));
  const seen = new Promise((resolve) => (asked = resolve));
  const delivered = new Promise((resolve) => (given = resolve));
  const handler = async (route) => {
    const req = route.request();
    if (answer || req.method() !== 'GET' || !accept(new URL(req.url()))) return route.fallback();
    answer = route.fetch();
    asked(new URL(req.url()).pathname);
    try {
      const res = await answer;
      await released;
      await route.fulfill({ response: res }).catch(() => {});
    } catch {
      // the page went away
    } finally {
      given();
    }
  };
  await page.route(url, handler);
  return {
    async read() {
      let timer;
      const path = await Promise.race([seen, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no request within ${timeoutMs} ms`)), timeoutMs)))]).finally(() => clearTimeout(timer));
      return { path, res: await answer };
    },
    release,
    async stop() {
      release();
      if (answer) await delivered;
      await page.unroute(url, handler);
    },
  };
}

/** loginOverlayShown reports whether the login overlay is open and in front. */
export function loginOverlayShown(page) {
  return page.evaluate(() => {
    const d = document.querySelector('#login');
    return !!d?.open && d.matches(':modal') && document.body.dataset.auth === 'login';
  });
}

/**
 * signIn types credentials into the login overlay and presses Enter; with
 * expectOk it waits until the overlay is gone and the page says it is signed in.
 */
export async function signIn(page, username, password, { expectOk = true } = {}) {
  await waitFor(page, () => document.querySelector('#login')?.open && document.body.dataset.auth === 'login', null, 'login overlay');
  await page.fill('#login-username', username);
  await page.fill('#login-password', password);
  await page.press('#login-password', 'Enter');
  if (!expectOk) return;
  await waitFor(
    page,
    () => !document.querySelector('#login')?.open && document.body.dataset.auth === 'ok',
    null,
    async () => `sign-in as ${username} (login error: ${JSON.stringify(await page.textContent('#login-error'))})`,
  );
}

/** waitGrids waits for data-grids-loaded > 0 and returns it. */
export async function waitGrids(page, problems = []) {
  await waitFor(page, () => Number(document.body.dataset.gridsLoaded) > 0, null, async () => {
    const v = await page.evaluate(() => document.body.dataset.gridsLoaded);
    return `grids drawn (data-grids-loaded=${v}; ${problems.join('; ')})`;
  });
  return page.evaluate(() => Number(document.body.dataset.gridsLoaded));
}

/** gridFeatures fetches the signed-in user's grids.geojson with the page's cookies. */
export async function gridFeatures(page, base) {
  const res = await page.context().request.get(new URL('/api/v1/grids.geojson', base).href);
  if (!res.ok()) throw new Error(`GET /api/v1/grids.geojson: HTTP ${res.status()}`);
  return (await res.json()).features ?? [];
}

/** gridCandidates lists grid-level features with a point strictly inside each, by id. */
export function gridCandidates(features) {
  const out = [];
  for (const f of features) {
    if (f.properties?.level !== 'grid') continue;
    const p = interiorPoint(f.geometry);
    if (p) out.push({ id: Number(f.id ?? f.properties.id), lon: p[0], lat: p[1], name: String(f.properties.name), code: String(f.properties.code) });
  }
  return out.sort((a, b) => a.id - b.id);
}

/**
 * place returns the candidate drawn nearest the map's middle whose point is
 * not under an overlay (legend, controls, panel) nor an incident's point or
 * cluster (nor a building or component), with its page x/y; with
 * recentre, it first centres the map on list[0] and waits for idle.
 */
export function place(page, list, recentre = false) {
  return page.evaluate(
    ([list, recentre]) =>
      new Promise((resolve) => {
        const map = window.gridwatchMap;
        const choose = () => {
          const r = map.getContainer().getBoundingClientRect();
          const incidentLayers = ['inc-cluster', 'inc-point'].filter((l) => map.getLayer(l));
          const baseLayers = ['base-bld-fill', 'base-bld-point', 'base-cmp-point'].filter((l) => map.getLayer(l));
          let best = null;
          for (const c of list) {
            const p = map.project([c.lon, c.lat]);
            const x = r.left + p.x;
            const y = r.top + p.y;
            if (x < 0 || y < 0 || x >= innerWidth || y >= innerHeight) continue;
            if (document.elementFromPoint(x, y)?.tagName !== 'CANVAS') continue;
            // An incident drawn there would take the click (it opens the case, not the grid).
            if (incidentLayers.length && map.queryRenderedFeatures([[p.x - 14, p.y - 14], [p.x + 14, p.y + 14]], { layers: incidentLayers }).length) continue;
            // So would a building or a component (drawn from zoom 14): it opens its card.
            if (baseLayers.length && map.queryRenderedFeatures([[p.x - 6, p.y - 6], [p.x + 6, p.y + 6]], { layers: baseLayers }).length) continue;
            const d = Math.hypot(p.x - r.width / 2, p.y - r.height / 2);
            if (!best || d < best.d) best = { ...c, x, y, d };
          }
          resolve(best);
        };
        if (!recentre) return choose();
        map.once('idle', choose);
        map.jumpTo({ center: [list[0].lon, list[0].lat] });
        map.triggerRepaint();
      }),
    [list, recentre],
  );
}

/** clickGrid clicks a candidate's point on the map (hovering first, like a person). */
export async function clickGrid(page, at) {
  await page.mouse.move(at.x - 20, at.y - 20);
  await page.mouse.move(at.x, at.y, { steps: 4 });
  await page.mouse.click(at.x, at.y);
}

/** panelShows waits until the side panel shows the grid with this name and code. */
export async function panelShows(page, want) {
  await waitFor(
    page,
    (w) => {
      const panel = document.querySelector('#panel');
      if (!panel || panel.hidden || panel.getBoundingClientRect().width === 0) return false;
      const text = (f) => panel.querySelector(`[data-field="${f}"]`)?.textContent.trim();
      return text('name') === w.name && text('code') === w.code && !panel.querySelector('#detail').hidden;
    },
    want,
    async () => {
      const got = await page.evaluate(() => {
        const panel = document.querySelector('#panel');
        const text = (f) => panel?.querySelector(`[data-field="${f}"]`)?.textContent.trim();
        return { hidden: panel?.hidden, name: text('name'), code: text('code') };
      });
      return `panel showing ${JSON.stringify(want)} (got ${JSON.stringify(got)})`;
    },
  );
}

/**
 * main runs a script's run(), prints its result as one JSON line (or the
 * failure), closes the browser getBrowser() returns and exits 0 or 1.
 */
export async function main(run, getBrowser) {
  let code = 0;
  try {
    console.log(JSON.stringify(await run()));
  } catch (err) {
    console.error(`e2e: FAIL: ${err?.message ?? err}`);
    reportProblems();
    code = 1;
  } finally {
    await getBrowser()?.close().catch(() => {});
  }
  process.exit(code);
}

/** reportProblems prints what the watchers recorded (a failure's context). */
export function reportProblems() {
  const seen = problemsSeen();
  if (seen.length) console.error(`e2e: the pages also saw: ${seen.join('; ')}`);
}

// ---- the video wall (video.mjs, gb28181.mjs) ----

/**
 * freeGridPoint centres the map on grid cand (zoom 15.5) and, once it is
 * idle, finds a point on a spiral around cand's interior point (step px
 * apart) where the grid's own fill is on top and no camera, incident,
 * building or component would take a click: its page coordinates, or null.
 */
export function freeGridPoint(page, cand, step = 22) {
  return page.evaluate(
    ([gridId, lon, lat, stepPx]) =>
      new Promise((resolve) => {
        const map = window.gridwatchMap;
        map.once('idle', () => {
          const r = map.getContainer().getBoundingClientRect();
          const fills = ['gw-fill-district', 'gw-fill-street', 'gw-fill-community', 'gw-fill-grid'].filter((l) => map.getLayer(l));
          const blockers = ['cam-point', 'cam-cone-fill', 'inc-point', 'inc-cluster'].filter((l) => map.getLayer(l));
          // A building or a city component (base data, from zoom 14) would open its card instead.
          const baseBlockers = ['base-bld-fill', 'base-bld-point', 'base-cmp-point'].filter((l) => map.getLayer(l));
          const c = map.project([lon, lat]);
          for (let ring = 0; ring <= 10; ring++) {
            const n = ring === 0 ? 1 : ring * 8;
            for (let i = 0; i < n; i++) {
              const a = (2 * Math.PI * i) / n;
              const p = { x: c.x + Math.cos(a) * ring * stepPx, y: c.y + Math.sin(a) * ring * stepPx };
              const x = r.left + p.x;
              const y = r.top + p.y;
              if (x < 0 || y < 0 || x >= innerWidth || y >= innerHeight) continue;
              if (document.elementFromPoint(x, y)?.tagName !== 'CANVAS') continue;
              const hit = map.queryRenderedFeatures([p.x, p.y], { layers: fills }).some((f) => Number(f.id) === gridId && f.properties.level === 'grid');
              if (!hit) continue;
              if (blockers.length && map.queryRenderedFeatures([[p.x - 16, p.y - 16], [p.x + 16, p.y + 16]], { layers: blockers }).length) continue;
              if (baseBlockers.length && map.queryRenderedFeatures([[p.x - 8, p.y - 8], [p.x + 8, p.y + 8]], { layers: baseBlockers }).length) continue;
              resolve({ x, y });
              return;
            }
          }
          resolve(null);
        });
        map.jumpTo({ center: [lon, lat], zoom: 15.5 });
        map.triggerRepaint();
      }),
    [cand.id, cand.lon, cand.lat, step],
  );
}

/**
 * openGrid centres the map on a grid and clicks a point of it where no camera
 * or incident would take the click; it returns performance.now() in the page
 * at the click.
 */
export async function openGrid(page, cand) {
  const at = await freeGridPoint(page, cand);
  if (!at) throw new Error(`no free point of grid ${cand.code} to click on the map`);
  await page.evaluate(() => {
    window.__e2eClickAt = 0;
    document.addEventListener(
      'click',
      () => {
        window.__e2eClickAt = performance.now();
      },
      { capture: true, once: true },
    );
  });
  await page.mouse.move(at.x - 20, at.y - 20);
  await page.mouse.move(at.x, at.y, { steps: 4 });
  await page.mouse.click(at.x, at.y);
  await panelShows(page, { name: cand.name, code: cand.code });
  return page.evaluate(() => window.__e2eClickAt);
}

/** sample reads a <video>'s clock, decoded pictures and size. */
export function sample(page, selector) {
  return page.evaluate(async (sel) => {
    const v = document.querySelector(sel);
    if (!v) return null;
    const b = v.buffered;
    // How far behind live: the MSE buffer's live edge, or for WebRTC the
    // receiver's mean jitter-buffer delay (getStats of the peer connection).
    let lag = b.length ? b.end(b.length - 1) - v.currentTime : null;
    if (v.srcObject && v.rtcPeer) {
      (await v.rtcPeer.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'video' && r.jitterBufferEmittedCount > 0) lag = r.jitterBufferDelay / r.jitterBufferEmittedCount;
      });
    }
    return {
      engine: v.srcObject ? 'webrtc' : 'mse',
      t: v.currentTime,
      frames: v.getVideoPlaybackQuality().totalVideoFrames,
      dropped: v.getVideoPlaybackQuality().droppedVideoFrames,
      width: v.videoWidth,
      height: v.videoHeight,
      paused: v.paused,
      lag,
      now: performance.now(),
    };
  }, selector);
}

/** plays checks in real time that a <video> advances over ms; it returns the two samples. */
export async function plays(page, selector, what, ms = 2000) {
  const a = await sample(page, selector);
  await page.waitForTimeout(ms);
  const b = await sample(page, selector);
  if (!a || !b) throw new Error(`${what}: no <video> at ${selector}`);
  const secs = (b.now - a.now) / 1000;
  if (!(b.t - a.t >= secs * 0.5)) throw new Error(`${what}: currentTime went ${a.t.toFixed(3)} → ${b.t.toFixed(3)} in ${secs.toFixed(1)} s of real time (${JSON.stringify({ a, b })})`);
  if (!(b.frames - a.frames >= secs * 8)) throw new Error(`${what}: ${b.frames - a.frames} pictures decoded in ${secs.toFixed(1)} s, want about 25 per second (${JSON.stringify({ a, b })})`);
  return { a, b, fps: +((b.frames - a.frames) / secs).toFixed(1), advanced_s: +(b.t - a.t).toFixed(3) };
}

/** tileInfo reads a video wall tile's state, engine, overlay and first-picture times. */
export async function tileInfo(page, id) {
  return page.evaluate((id) => {
    const li = document.querySelector(`#panel li.vtile[data-video-camera="${id}"]`);
    if (!li) return null;
    const o = li.querySelector('.vtile-overlay');
    return { state: li.dataset.state, status: li.dataset.status, engine: li.dataset.engine, overlay: o && !o.hidden ? o.textContent.trim() : '', firstFrameAt: Number(li.dataset.firstFrameAt) || 0, startedAt: Number(li.dataset.startedAt) || 0 };
  }, id);
}

/**
 * apiSession signs username in from the test's own process (a device session when device is
 * given) and returns call(method, path, body, headers) → {status, json, text}, sending the
 * session cookie and its CSRF token; call.me is the signed-in user, call.cookies the cookies.
 */
export async function apiSession(base, username, password, device) {
  const res = await fetch(new URL('/api/v1/auth/login', base), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify(device ? { username, password, device } : { username, password }),
  });
  if (!res.ok) throw new Error(`sign-in of ${username} from the test: HTTP ${res.status} ${await res.text()}`);
  const me = await res.json();
  const cookies = res.headers.getSetCookie().map((c) => c.split(';')[0]);
  const call = async (method, p, body, headers = {}) => {
    const r = await fetch(new URL(p, base), {
      method,
      headers: { Cookie: cookies.join('; '), 'X-CSRF-Token': me.csrf_token, Accept: 'application/json', ...(body ? { 'Content-Type': 'application/json' } : {}), ...headers },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await r.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      // not JSON: the text says why
    }
    return { status: r.status, json, text };
  };
  call.cookies = cookies;
  call.me = me;
  return call;
}

/** must is an apiSession call that has to succeed: it returns the JSON. */
export async function must(call, method, p, body) {
  const r = await call(method, p, body);
  if (r.status < 200 || r.status > 299) throw new Error(`${method} ${p}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
  return r.json;
}

/** until polls fn (async) until it returns a truthy value, or throws what (or what()) after ms. */
export async function until(fn, what, ms = timeoutMs) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${typeof what === 'function' ? await what() : what} not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// OFFLINE is what an offline phone causes: a request that found no network
// (or the network changing under it), the service worker's "offline, and
// nothing saved" answer, a fetch that failed for it, the event stream and an
// icon cut off.
export const OFFLINE = /net::ERR_INTERNET_DISCONNECTED|net::ERR_NETWORK_CHANGED|offline, and nothing saved|Failed to fetch|GET \S+\/api\/v1\/events \(net::ERR_ABORTED\)|GET \S+\/field\/icon-\d+\.png \(net::ERR_ABORTED\)/;

// forgive drops, from the watcher's problems at indexes from..to, those
// matching re — at most max of them — and returns how many it dropped.
export function forgive(problems, from, re = OFFLINE, { to = problems.length, max = Infinity } = {}) {
  let n = 0;
  for (let i = Math.min(to, problems.length) - 1; i >= from && n < max; i--) {
    if (re.test(problems[i])) {
      problems.splice(i, 1);
      n++;
    }
  }
  return n;
}
