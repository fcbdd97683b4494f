// End-to-end check of the boundary editor (src/editor.js) and the grid
// history (src/history.js) in headless Chromium.
//
//   node e2e/editor.mjs <baseURL> <artifactsDir> <adminToken>
//
// As demo-gis: open a grid, press "编辑边界 · Edit boundary", drag one of its
// vertices inward with real pointer events on the map canvas (at the
// vertex's projected pixel, as a person would — terra-draw's select mode
// takes the drag), wait for the dry-run preview to show the area shrinking
// and a finding (the gap that opens inside the parent), save, and check
// through the API that the grid's version went up and its boundary changed.
// Then History lists 2 versions and the old one is drawn as an overlay.
// Stale save: edit again, change the grid through the API behind the
// editor's back, save → the server's 412 message is shown with Reload.
// Finally a commander (no grids.write) sees History but no edit action, and
// never downloads the editor's code.
// Any page error, console error or unexpected HTTP error fails the run.
// Prints one JSON line; exits 0 on success, 1 on failure.

import path from 'node:path';
import { baseURL, clickGrid, deadline, gridCandidates, gridFeatures, launch, panelShows, place, signIn, timeoutMs, waitFor, waitGrids, watch } from './common.mjs';

const [baseArg, artifacts, adminToken] = process.argv.slice(2);
if (!baseArg || !artifacts || !adminToken) {
  console.error('usage: node e2e/editor.mjs <baseURL> <artifactsDir> <adminToken>');
  process.exit(2);
}
const base = baseURL(baseArg);
const started = Date.now();
deadline(started, timeoutMs * 8 + 30000);

/** api calls the API as the bootstrap admin (behind the editor's back). */
async function api(method, p, body, headers = {}) {
  const res = await fetch(new URL(p, base), {
    method,
    headers: { Authorization: `Bearer ${adminToken}`, Accept: 'application/json', ...(body ? { 'Content-Type': 'application/json' } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, etag: res.headers.get('ETag'), body: text ? JSON.parse(text) : null };
}

let browser;
const result = {};

/** openGrid clicks a grid-level feature on the map and waits for the panel; returns the candidate. */
async function openGrid(page) {
  const candidates = gridCandidates(await gridFeatures(page, base));
  if (candidates.length === 0) throw new Error('no grid-level feature');
  const at = (await place(page, candidates)) ?? (await place(page, candidates.slice(0, 1), true));
  if (!at) throw new Error('no grid can be clicked');
  await clickGrid(page, at);
  await panelShows(page, { name: at.name, code: at.code });
  return at;
}

/** siblings are the grid-level candidates under the same parent as grid id (the ones it may merge with). */
async function siblings(page, id) {
  const features = await gridFeatures(page, base);
  const parentOf = (f) => f.properties?.parent_id;
  const self = features.find((f) => Number(f.id ?? f.properties.id) === id);
  const same = new Set(features.filter((f) => parentOf(f) === parentOf(self)).map((f) => Number(f.id ?? f.properties.id)));
  return gridCandidates(features).filter((c) => same.has(c.id));
}

/** editorState reads the editor's test hook. */
const editorState = (page) => page.evaluate(() => window.gridwatchEditor?.state() ?? null);

async function waitEditorReady(page, version) {
  await waitFor(
    page,
    (v) => {
      const ed = document.querySelector('#editor');
      const st = window.gridwatchEditor?.state();
      return ed?.dataset.ready === 'true' && st?.mode === 'select' && !window.gridwatchMap.isMoving() &&
        ed.querySelector('[data-field="grid-version"]').textContent === `v${v}`;
    },
    version,
    async () => `editor ready on v${version} (${JSON.stringify(await editorState(page))}, message ${JSON.stringify(await page.textContent('#editor [data-field="message"]').catch(() => ''))})`,
  );
}

/**
 * dragVertex drags vertex i of the edited polygon a fraction of the way
 * towards `toward` ([lon, lat]), with the mouse on the map canvas.
 */
async function dragVertex(page, toward, fraction = 0.35) {
  const px = await page.evaluate(
    ([toward, fraction]) => {
      const map = window.gridwatchMap;
      const r = map.getContainer().getBoundingClientRect();
      const ring = window.gridwatchEditor.vertices();
      const target = document.querySelector('#editor').getBoundingClientRect();
      // The first vertex that is drawn on the canvas, clear of the editor panel.
      for (let i = 1; i < ring.length - 1; i++) {
        const p = map.project(ring[i]);
        const x = r.left + p.x;
        const y = r.top + p.y;
        const lon = ring[i][0] + (toward[0] - ring[i][0]) * fraction;
        const lat = ring[i][1] + (toward[1] - ring[i][1]) * fraction;
        const q = map.project([lon, lat]);
        const tx = r.left + q.x;
        const ty = r.top + q.y;
        const clear = (a, b) => document.elementFromPoint(a, b)?.tagName === 'CANVAS' && !(a >= target.left && a <= target.right && b >= target.top && b <= target.bottom);
        if (clear(x, y) && clear(tx, ty) && Math.hypot(tx - x, ty - y) > 25) return { i, x, y, tx, ty, from: ring[i] };
      }
      return null;
    },
    [toward, fraction],
  );
  if (!px) throw new Error('no vertex of the grid can be dragged on the canvas');
  await page.mouse.move(px.x - 8, px.y - 8);
  await page.mouse.move(px.x, px.y, { steps: 3 });
  await page.mouse.down();
  await page.mouse.move((px.x + px.tx) / 2, (px.y + px.ty) / 2, { steps: 6 });
  await page.mouse.move(px.tx, px.ty, { steps: 6 });
  await page.mouse.up();
  return px;
}

async function waitPreview(page) {
  await waitFor(
    page,
    () => {
      const ed = document.querySelector('#editor');
      if (!ed || ed.dataset.preview !== 'ok') return false;
      const diff = ed.querySelector('[data-field="area-change"] .ed-diff');
      const findings = ed.querySelectorAll('[data-field="findings"] .ed-finding').length;
      const moves = ['cameras', 'incidents', 'flagged'].some((f) => Number(ed.querySelector(`[data-field="${f}"]`)?.dataset.count) > 0);
      return diff && diff.dataset.sign !== '0' && (findings > 0 || moves);
    },
    null,
    async () => `preview with an area change and a finding or a count (${await page.evaluate(() => {
      const ed = document.querySelector('#editor');
      return JSON.stringify({ preview: ed?.dataset.preview, note: ed?.querySelector('[data-field="preview-note"]')?.textContent, report: window.gridwatchEditor?.state().report });
    })})`,
  );
  return page.evaluate(() => {
    const ed = document.querySelector('#editor');
    return {
      area: ed.querySelector('[data-field="area-change"] .ed-area').textContent,
      diff: ed.querySelector('[data-field="area-change"] .ed-diff').textContent,
      findings: [...ed.querySelectorAll('[data-field="findings"] .ed-finding')].map((b) => `${b.dataset.severity}:${b.dataset.kind}`),
      errors: Number(ed.dataset.errors),
      saveEnabled: !ed.querySelector('[data-field="save"]').disabled,
    };
  });
}

async function run() {
  browser = await launch();

  // ---- GIS editor: edit, preview, save ---------------------------------------------------
  const ctx = await browser.newContext({ viewport: { width: 1600, height: 900 }, deviceScaleFactor: 1 });
  const page = await ctx.newPage();
  const watcher = watch(page, base);
  watcher.expect('GET', /^\/api\/v1\/me$/, 401);
  const editorChunks = [];
  page.on('request', (req) => {
    if (/\/editor-[\w-]+\.js$/.test(new URL(req.url()).pathname)) editorChunks.push(req.url());
  });
  const resp = await page.goto(base.href, { waitUntil: 'domcontentloaded', timeout: timeoutMs });
  if (!resp?.ok()) throw new Error(`GET ${base.href}: HTTP ${resp?.status()}`);
  await signIn(page, 'demo-gis', 'gridwatch-gis');
  await waitGrids(page, watcher.problems);
  if (editorChunks.length) throw new Error(`the editor was loaded before it was asked for: ${editorChunks}`);
  const at = await openGrid(page);
  result.grid = at.code;
  const before = await api('GET', `/api/v1/grids/${at.id}`);
  if (before.status !== 200) throw new Error(`GET grid ${at.id}: ${before.status}`);
  const v0 = before.body.version;

  const edit = page.locator('#panel [data-field="edit-btn"]');
  if (!(await edit.isVisible())) throw new Error('demo-gis does not see the Edit boundary action');
  await edit.click();
  await waitEditorReady(page, v0);
  if (editorChunks.length === 0) throw new Error('the editor chunk was not loaded on demand');
  await watcher.check('editor open');

  const moved = await dragVertex(page, [at.lon, at.lat]);
  result.dragged = { vertex: moved.i, from: moved.from };
  const shown = await waitPreview(page);
  result.preview = shown;
  if (!shown.saveEnabled) throw new Error(`Save is disabled after a clean preview: ${JSON.stringify(shown)}`);
  await page.screenshot({ path: path.join(artifacts, 'editor-preview.png') });
  // A finding flies the map there and marks it.
  const finding = page.locator('#editor [data-field="findings"] .ed-finding:not([disabled])').first();
  if (await finding.count()) {
    await finding.click();
    await waitFor(page, () => document.querySelector('.problem-marker') !== null, null, 'the finding marked on the map');
  }
  await watcher.check('preview');

  await page.click('#editor [data-field="save"]');
  await waitFor(page, () => !document.querySelector('#editor') && document.querySelector('.toast[data-saved]') !== null, null, async () => `saved (${await page.evaluate(() => JSON.stringify({ save: document.querySelector('#editor')?.dataset.save, msg: document.querySelector('#editor [data-field="message"]')?.textContent }))})`);
  const after = await api('GET', `/api/v1/grids/${at.id}`);
  if (after.body.version !== v0 + 1) throw new Error(`version after save: ${after.body.version}, want ${v0 + 1}`);
  if (JSON.stringify(after.body.geometry) === JSON.stringify(before.body.geometry)) throw new Error('the geometry did not change');
  result.saved = { version: after.body.version, etag: after.etag };
  // The map refreshes its grids (new tile revision) and the panel shows the new version.
  await waitFor(page, (v) => document.querySelector('#panel [data-field="version"]')?.textContent === `v${v}` && !document.querySelector('#panel').hidden, after.body.version, 'the panel showing the new version');
  await watcher.check('save');

  // ---- History: 2 versions, the old one drawn over the map --------------------------------
  await page.click('#panel [data-field="history-btn"]');
  await waitFor(page, () => document.querySelectorAll('#panel [data-field="history-list"] button[data-version]').length >= 2, null, 'history with 2 versions');
  const versions = await page.$$eval('#panel [data-field="history-list"] button[data-version]', (bs) => bs.map((b) => Number(b.dataset.version)));
  if (versions.length !== 2 || versions[0] !== v0 + 1 || versions[1] !== v0) throw new Error(`history lists ${versions}, want [${v0 + 1}, ${v0}]`);
  await page.click(`#panel [data-field="history-list"] button[data-version="${v0}"]`);
  await waitFor(page, (v) => document.body.dataset.historyShown === String(v) && !!window.gridwatchMap.getLayer('hist-line'), v0, 'the old boundary drawn (layer hist-line)');
  await page.screenshot({ path: path.join(artifacts, 'editor-history.png') });
  await page.click('#panel [data-field="history-clear"]');
  await waitFor(page, () => !document.body.dataset.historyShown && !window.gridwatchMap.getLayer('hist-line'), null, 'the overlay cleared');
  result.history = versions;
  await watcher.check('history');

  // ---- Stale save: the grid changes behind the editor's back ------------------------------
  await page.click('#panel [data-field="edit-btn"]');
  await waitEditorReady(page, v0 + 1);
  await dragVertex(page, [at.lon, at.lat], 0.25);
  await waitPreview(page);
  // Someone else puts the first boundary back.
  const other = await api('PUT', `/api/v1/grids/${at.id}/geometry`, before.body.geometry, { 'If-Match': after.etag });
  if (other.status !== 200) throw new Error(`PUT behind the editor's back: ${other.status} ${JSON.stringify(other.body)}`);
  watcher.expect('PUT', new RegExp(`^/api/v1/grids/${at.id}/geometry$`), 412);
  await page.click('#editor [data-field="save"]');
  await waitFor(page, () => document.querySelector('#editor')?.dataset.save === 'stale' && !document.querySelector('#editor [data-field="reload"]').hidden, null, 'the 412 shown with Reload');
  const staleMsg = await page.textContent('#editor [data-field="message"]');
  if (!/changed since/i.test(staleMsg)) throw new Error(`stale message: ${staleMsg}`);
  result.stale = staleMsg;
  await page.click('#editor [data-field="reload"]');
  await waitEditorReady(page, v0 + 2);
  await watcher.check('stale');

  // ---- Split and merge previews (not saved) -----------------------------------------------
  await page.click('#editor [data-tool-btn="split"]');
  const cut = await page.evaluate((at) => {
    const map = window.gridwatchMap;
    const r = map.getContainer().getBoundingClientRect();
    const p = map.project([at.lon, at.lat]);
    return { y: r.top + p.y, x: r.left + p.x };
  }, at);
  // A horizontal line through the grid's inside point, well past its sides.
  const span = await page.evaluate(() => {
    const map = window.gridwatchMap;
    const r = map.getContainer().getBoundingClientRect();
    const ed = document.querySelector('#editor').getBoundingClientRect();
    return { left: r.left + 30, right: ed.left - 30 };
  });
  await page.mouse.click(span.left, cut.y);
  await page.mouse.click((span.left + span.right) / 2, cut.y + 3);
  await page.mouse.click(span.right, cut.y);
  await page.mouse.click(span.right, cut.y); // the last point again finishes the line
  await page.fill('#editor input[name="new.name"]', 'E2E 分割 split');
  await waitFor(
    page,
    () => {
      const ed = document.querySelector('#editor');
      return ed?.dataset.preview === 'ok' && ed.querySelector('[data-field="area-change"] [data-created="true"]') !== null;
    },
    null,
    async () => `split preview (${await page.evaluate(() => JSON.stringify({ preview: document.querySelector('#editor')?.dataset.preview, note: document.querySelector('#editor [data-field="preview-note"]')?.textContent, code: document.querySelector('#editor input[name="new.code"]')?.value, st: window.gridwatchEditor.state() }))})`,
  );
  result.split = await page.$eval('#editor input[name="new.code"]', (i) => i.value);

  await page.click('#editor [data-tool-btn="merge"]');
  const neighbour = await page.evaluate(
    ([at, cands]) => {
      const map = window.gridwatchMap;
      const r = map.getContainer().getBoundingClientRect();
      const ed = document.querySelector('#editor').getBoundingClientRect();
      let best = null;
      for (const c of cands) {
        if (c.id === at.id) continue;
        const p = map.project([c.lon, c.lat]);
        const x = r.left + p.x;
        const y = r.top + p.y;
        if (x < r.left + 10 || y < r.top + 10 || x > ed.left - 10 || y > r.bottom - 10 || document.elementFromPoint(x, y)?.tagName !== 'CANVAS') continue;
        const d = Math.hypot(p.x - map.project([at.lon, at.lat]).x, p.y - map.project([at.lon, at.lat]).y);
        if (!best || d < best.d) best = { ...c, x, y, d };
      }
      return best;
    },
    [at, await siblings(page, at.id)],
  );
  if (!neighbour) throw new Error('no neighbour to click for the merge');
  await page.mouse.click(neighbour.x, neighbour.y);
  await waitFor(
    page,
    () => {
      const ed = document.querySelector('#editor');
      return ed?.dataset.preview === 'ok' && ed.querySelector('[data-field="area-change"] [data-removed="true"]') !== null;
    },
    null,
    async () => `merge preview (${await page.evaluate(() => JSON.stringify({ preview: document.querySelector('#editor')?.dataset.preview, note: document.querySelector('#editor [data-field="preview-note"]')?.textContent, pick: document.querySelector('#editor [data-field="pick"]')?.textContent }))})`,
  );
  result.merge = await page.textContent('#editor [data-field="pick"]');
  await page.screenshot({ path: path.join(artifacts, 'editor-merge.png') });

  await page.click('#editor [data-field="cancel"]');
  await waitFor(page, () => !document.querySelector('#editor') && !document.body.classList.contains('editing'), null, 'editor closed');
  await watcher.check('stale');
  await ctx.close();

  // ---- A viewer without grids.write ------------------------------------------------------
  const vctx = await browser.newContext({ viewport: { width: 1600, height: 900 }, deviceScaleFactor: 1 });
  const vpage = await vctx.newPage();
  const vwatch = watch(vpage, base);
  vwatch.expect('GET', /^\/api\/v1\/me$/, 401);
  const vchunks = [];
  vpage.on('request', (req) => {
    if (/\/editor-[\w-]+\.js$/.test(new URL(req.url()).pathname)) vchunks.push(req.url());
  });
  await vpage.goto(base.href, { waitUntil: 'domcontentloaded', timeout: timeoutMs });
  await signIn(vpage, 'demo-commander', 'gridwatch-commander');
  await waitGrids(vpage, vwatch.problems);
  await openGrid(vpage);
  const seen = await vpage.evaluate(() => ({
    edit: !document.querySelector('#panel [data-field="edit-btn"]').hidden,
    history: !document.querySelector('#panel [data-field="history-btn"]').hidden,
  }));
  if (seen.edit) throw new Error('a commander sees the Edit boundary action');
  if (!seen.history) throw new Error('a commander does not see History');
  if (vchunks.length) throw new Error(`a commander downloaded the editor: ${vchunks}`);
  await vwatch.check('viewer');
  result.viewer = seen;
  await vctx.close();
}

try {
  await run();
  console.log(JSON.stringify({ ok: true, ms: Date.now() - started, ...result }));
  await browser?.close();
  process.exit(0);
} catch (err) {
  console.error(`e2e: FAIL: ${err.message}`);
  console.log(JSON.stringify({ ok: false, ...result }));
  await browser?.close().catch(() => {});
  process.exit(1);
}
