// End-to-end check of the dashboard in headless Chromium.
//
//   node e2e/dashboard.mjs <baseURL> <screenshotPath>
//
// Loads <baseURL>/, signs in through the login overlay (as demo-commander, or
// env GW_USER / GW_PASSWORD), waits for the grids to be drawn, clicks inside
// one grid-level feature, checks the side panel shows that grid (name, code
// and a parent chain of at least 2 entries), checks the cameras source is on the
// map when the API lists cameras, and saves a screenshot. The grids must come
// from the vector tiles: /tiles/grids/{z}/{x}/{y}.mvt?v=<revision> answered
// with tiles, and the clicked grid drawn there as a tile feature with its
// id. Any page
// error, console error, CSP violation or failed same-origin request fails the
// run (except the 401 of GET /api/v1/me before signing in).
// Prints one JSON line; exits 0 on success, 1 on failure (with the reason).
// Environment: CHROMIUM (default /usr/bin/chromium), E2E_TIMEOUT_MS (default 20000).

import { clickGrid, gridCandidates, gridFeatures, launch, panelShows, place, signIn, timeoutMs, waitGrids, watch, main, passed, scriptArgs } from './common.mjs';

const { base, args: [shotPath], started } = scriptArgs('dashboard.mjs', '<screenshotPath>', timeoutMs * 3 + 10000);
const timeout = timeoutMs;
const user = process.env.GW_USER || 'demo-commander';
const password = process.env.GW_PASSWORD || 'gridwatch-commander';

let browser;

async function run() {
  browser = await launch();
  const page = await browser.newPage({ viewport: { width: 1600, height: 900 }, deviceScaleFactor: 1 });
  const watcher = watch(page, base);
  const { problems, check } = watcher;
  // Grid tiles the map asked for and what each was answered with.
  const gridTiles = [];
  page.on('response', (res) => {
    const u = new URL(res.url());
    if (u.origin === base.origin && /^\/tiles\/grids\/\d+\/\d+\/\d+\.mvt$/.test(u.pathname)) {
      gridTiles.push({ v: u.searchParams.get('v'), status: res.status(), type: res.headers()['content-type'] ?? '' });
    }
  });
  // Before signing in, "who am I?" is answered 401: that is how the page knows to ask.
  watcher.expect('GET', /^\/api\/v1\/me$/, 401);

  const resp = await page.goto(base.href, { waitUntil: 'domcontentloaded', timeout });
  if (!resp || !resp.ok()) throw new Error(`GET ${base.href}: HTTP ${resp?.status()}`);
  await signIn(page, user, password);
  const signedInMs = Date.now() - started;

  // Grids drawn: the page sets data-grids-loaded at the first idle after adding them.
  await waitGrids(page, problems);
  const loadedMs = Date.now() - started;
  const { gridsLoaded, pageMs } = await page.evaluate(() => ({
    gridsLoaded: Number(document.body.dataset.gridsLoaded),
    pageMs: Number(document.body.dataset.gridsLoadedMs),
  }));
  await check('after load');

  // Candidates: every grid-level feature from the API, with a point strictly inside it.
  const features = await gridFeatures(page, base);
  const candidates = gridCandidates(features);
  if (candidates.length === 0) throw new Error('no grid-level feature in /api/v1/grids.geojson');

  // Click the candidate drawn nearest the middle of the map whose point is not
  // under an overlay (legend, controls); if none is clear, centre on the first.
  const at = (await place(page, candidates)) ?? (await place(page, candidates.slice(0, 1), true));
  if (!at) throw new Error(`grid ${candidates[0].id} cannot be clicked: its point is covered even when centred`);
  const target = features.find((f) => Number(f.id ?? f.properties.id) === at.id);
  const { lon, lat } = at;
  await clickGrid(page, at);

  const want = { name: String(target.properties.name), code: String(target.properties.code) };
  await panelShows(page, want).catch((err) => {
    throw new Error(`grid ${target.id}: ${err.message}; ${problems.join('; ')}`);
  });

  // The grids come from the vector tiles: tiles of the current revision were
  // fetched, and the grid clicked is a tile feature under the click.
  const revision = await page.evaluate(async () => (await (await fetch('/tiles/grids.json', { credentials: 'same-origin' })).json()).revision);
  const drawn = gridTiles.filter((t) => t.status === 200 && t.type === 'application/vnd.mapbox-vector-tile');
  if (drawn.length === 0) throw new Error(`no grid tile drawn: ${JSON.stringify(gridTiles)}`);
  if (gridTiles.some((t) => t.v !== String(revision))) throw new Error(`grid tiles not of revision ${revision}: ${JSON.stringify(gridTiles)}`);
  const tiled = await page.evaluate(([x, y, id]) => {
    const map = window.gridwatchMap;
    const r = map.getContainer().getBoundingClientRect();
    const fs = map.queryRenderedFeatures([x - r.left, y - r.top], { layers: ['gw-fill-grid'] });
    return fs.filter((f) => f.source === 'gw-grid-tiles' && f.sourceLayer === 'grids').map((f) => f.id).includes(id);
  }, [at.x, at.y, at.id]);
  if (!tiled) throw new Error(`grid ${at.id} is not a tile feature under the click`);

  const panel = await page.evaluate(() => {
    const p = document.querySelector('#panel');
    const text = (f) => p.querySelector(`[data-field="${f}"]`)?.textContent.trim();
    return { level: text('level'), area: text('area'), chain: p.querySelectorAll('[data-field="chain"] li').length };
  });
  if (panel.chain < 2) throw new Error(`panel chain has ${panel.chain} entries, want >= 2`);
  if (!panel.area || panel.area === '—') throw new Error(`panel area is empty (${JSON.stringify(panel.area)})`);
  if (!panel.level) throw new Error('panel level is empty');

  // Cameras: when the demo has any, the map has a gw-cameras source.
  const camerasApi = await page.evaluate(async () => {
    const r = await fetch('/api/v1/cameras?limit=1000', { credentials: 'same-origin' });
    return r.ok ? ((await r.json()).cameras ?? []).length : 0;
  });
  if (camerasApi > 0) {
    await page
      .waitForFunction(() => !!window.gridwatchMap.getSource('gw-cameras'), null, { timeout })
      .catch(() => {
        throw new Error(`${camerasApi} cameras from the API, but no gw-cameras source on the map; ${problems.join('; ')}`);
      });
  }

  await page.screenshot({ path: shotPath, fullPage: true });
  return passed(check, 'after click', base, {
    user,
    signed_in_ms: signedInMs,
    grids_loaded: gridsLoaded,
    loaded_ms: loadedMs,
    page_loaded_ms: pageMs,
    clicked: { id: target.id, code: want.code, name: want.name, lon: +lon.toFixed(6), lat: +lat.toFixed(6) },
    panel,
    cameras: camerasApi,
    grid_tiles: { revision, requested: gridTiles.length, drawn: drawn.length },
    screenshot: shotPath,
    total_ms: Date.now() - started,
  });
}

await main(run, () => browser);
