// End-to-end check of the dashboard in headless Chromium.
//
//   node e2e/dashboard.mjs <baseURL> <screenshotPath>
//
// Loads <baseURL>/, waits for the grids to be drawn, clicks inside one
// grid-level feature, checks the side panel shows that grid (name, code and a
// parent chain of at least 2 entries) and saves a screenshot. Any page error,
// console error, CSP violation or failed same-origin request fails the run.
// Prints one JSON line; exits 0 on success, 1 on failure (with the reason).
// Environment: CHROMIUM (default /usr/bin/chromium), E2E_TIMEOUT_MS (default 20000).

import { chromium } from 'playwright-core';
import { interiorPoint } from '../src/geometry.js';

const [baseArg, shotPath] = process.argv.slice(2);
if (!baseArg || !shotPath) {
  console.error('usage: node e2e/dashboard.mjs <baseURL> <screenshotPath>');
  process.exit(2);
}
const base = new URL(baseArg.endsWith('/') ? baseArg : `${baseArg}/`);
const timeout = Number(process.env.E2E_TIMEOUT_MS) || 20000;
const started = Date.now();

// Never hang a test run: the whole script has a hard deadline.
const deadline = setTimeout(() => {
  console.error(`e2e: FAIL: gave up after ${Math.round((Date.now() - started) / 1000)} s`);
  process.exit(1);
}, timeout * 3 + 10000);
deadline.unref();

const problems = [];
let browser;

async function run() {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  const page = await browser.newPage({ viewport: { width: 1600, height: 900 }, deviceScaleFactor: 1 });

  const sameOrigin = (u) => {
    try {
      return new URL(u).origin === base.origin;
    } catch {
      return false;
    }
  };
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
  });
  page.on('requestfailed', (req) => {
    if (sameOrigin(req.url())) problems.push(`request failed: ${req.method()} ${req.url()} (${req.failure()?.errorText})`);
  });
  page.on('response', (res) => {
    if (sameOrigin(res.url()) && res.status() >= 400) problems.push(`HTTP ${res.status()} for ${res.request().method()} ${res.url()}`);
  });
  // The page reports API and map errors in #banner, not only on the console.
  const check = async (step) => {
    const banner = await page.evaluate(() => {
      const b = document.querySelector('#banner');
      return b && !b.hidden ? b.textContent.trim() : '';
    });
    if (banner) problems.push(`error banner: ${banner}`);
    if (problems.length) throw new Error(`${step}: ${problems.join('; ')}`);
  };

  const resp = await page.goto(base.href, { waitUntil: 'domcontentloaded', timeout });
  if (!resp || !resp.ok()) throw new Error(`GET ${base.href}: HTTP ${resp?.status()}`);

  // Grids drawn: the page sets data-grids-loaded at the first idle after adding them.
  await page
    .waitForFunction(() => Number(document.body.dataset.gridsLoaded) > 0, null, { timeout, polling: 100 })
    .catch(async (err) => {
      const v = await page.evaluate(() => document.body.dataset.gridsLoaded).catch(() => undefined);
      throw new Error(`grids not loaded within ${timeout} ms (data-grids-loaded=${v}; ${problems.join('; ') || err.message})`);
    });
  const loadedMs = Date.now() - started;
  const { gridsLoaded, pageMs } = await page.evaluate(() => ({
    gridsLoaded: Number(document.body.dataset.gridsLoaded),
    pageMs: Number(document.body.dataset.gridsLoadedMs),
  }));
  await check('after load');

  // Candidates: every grid-level feature from the API, with a point strictly inside it.
  const gj = await fetch(new URL('/api/v1/grids.geojson', base));
  if (!gj.ok) throw new Error(`GET /api/v1/grids.geojson: HTTP ${gj.status}`);
  const fc = await gj.json();
  const candidates = [];
  for (const f of fc.features ?? []) {
    if (f.properties?.level !== 'grid') continue;
    const p = interiorPoint(f.geometry);
    if (p) candidates.push({ id: Number(f.id ?? f.properties.id), lon: p[0], lat: p[1] });
  }
  if (candidates.length === 0) throw new Error('no grid-level feature in /api/v1/grids.geojson');
  candidates.sort((a, b) => a.id - b.id);

  // Click the candidate drawn nearest the middle of the map whose point is not
  // under an overlay (legend, controls); if none is clear, centre on the first.
  const place = (list, recentre) =>
    page.evaluate(
      ([list, recentre]) =>
        new Promise((resolve) => {
          const map = window.gridwatchMap;
          const choose = () => {
            const r = map.getContainer().getBoundingClientRect();
            let best = null;
            for (const c of list) {
              const p = map.project([c.lon, c.lat]);
              const x = r.left + p.x;
              const y = r.top + p.y;
              if (x < 0 || y < 0 || x >= innerWidth || y >= innerHeight) continue;
              if (document.elementFromPoint(x, y)?.tagName !== 'CANVAS') continue;
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
  const at = (await place(candidates, false)) ?? (await place(candidates.slice(0, 1), true));
  if (!at) throw new Error(`grid ${candidates[0].id} cannot be clicked: its point is covered even when centred`);
  const target = fc.features.find((f) => Number(f.id ?? f.properties.id) === at.id);
  const { lon, lat } = at;
  await page.mouse.move(at.x - 20, at.y - 20);
  await page.mouse.move(at.x, at.y, { steps: 4 });
  await page.mouse.click(at.x, at.y);

  const want = { name: String(target.properties.name), code: String(target.properties.code) };
  await page
    .waitForFunction(
      (w) => {
        const panel = document.querySelector('#panel');
        if (!panel || panel.hidden || panel.getBoundingClientRect().width === 0) return false;
        const text = (f) => panel.querySelector(`[data-field="${f}"]`)?.textContent.trim();
        return text('name') === w.name && text('code') === w.code;
      },
      want,
      { timeout, polling: 100 },
    )
    .catch(async () => {
      const got = await page.evaluate(() => {
        const panel = document.querySelector('#panel');
        const text = (f) => panel?.querySelector(`[data-field="${f}"]`)?.textContent.trim();
        return { hidden: panel?.hidden, name: text('name'), code: text('code') };
      });
      throw new Error(`panel did not show grid ${target.id} ${JSON.stringify(want)}; got ${JSON.stringify(got)}; ${problems.join('; ')}`);
    });

  const panel = await page.evaluate(() => {
    const p = document.querySelector('#panel');
    const text = (f) => p.querySelector(`[data-field="${f}"]`)?.textContent.trim();
    return { level: text('level'), area: text('area'), chain: p.querySelectorAll('[data-field="chain"] li').length };
  });
  if (panel.chain < 2) throw new Error(`panel chain has ${panel.chain} entries, want >= 2`);
  if (!panel.area || panel.area === '—') throw new Error(`panel area is empty (${JSON.stringify(panel.area)})`);
  if (!panel.level) throw new Error('panel level is empty');

  await page.screenshot({ path: shotPath, fullPage: true });
  await check('after click');

  return {
    ok: true,
    url: base.href,
    grids_loaded: gridsLoaded,
    loaded_ms: loadedMs,
    page_loaded_ms: pageMs,
    clicked: { id: target.id, code: want.code, name: want.name, lon: +lon.toFixed(6), lat: +lat.toFixed(6) },
    panel,
    screenshot: shotPath,
    total_ms: Date.now() - started,
  };
}

let code = 0;
try {
  console.log(JSON.stringify(await run()));
} catch (err) {
  console.error(`e2e: FAIL: ${err?.message ?? err}`);
  code = 1;
} finally {
  await browser?.close().catch(() => {});
}
process.exit(code);
