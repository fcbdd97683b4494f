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
// editor's back → the grid.changed event makes the editor warn at once
// (before any save); save anyway → the server's 412 message; the warning's
// Reload starts again from the new version and its ETag.
// Two quick changes through the API: the map's reload of the grids after the
// first, held back in the browser until the reload after the second has
// drawn, does not put the older boundary and version back.
// Move edge: a pair of sibling grids sharing an edge (found through the
// API); the second is picked with a click, the new edge drawn with mouse
// clicks from one end of the shared edge to the other, bent ~30 m into the
// neighbour; the preview lists both grids (one grows, the other shrinks by
// as much), and after Save both versions went up, the areas the other way.
// Finally a commander (no grids.write) sees History but no edit action, and
// never downloads the editor's code.
// Any page error, console error or unexpected HTTP error fails the run.
// Prints one JSON line; exits 0 on success, 1 on failure.

import path from 'node:path';
import { pointInGeometry, polygonsOf } from '../src/geometry.js';
import { clickGrid, gridCandidates, gridFeatures, launch, panelShows, place, signIn, timeoutMs, waitFor, waitGrids, scriptArgs, openPage, bearerFetch, reportProblems, holdAnswer } from './common.mjs';

const { base, args: [artifacts, adminToken], started } = scriptArgs('editor.mjs', '<artifactsDir> <adminToken>', timeoutMs * 10 + 30000);

/** api calls the API as the bootstrap admin (behind the editor's back). */
async function api(method, p, body, headers = {}) {
  const { status, etag, text } = await bearerFetch(base, adminToken, method, p, body, headers);
  return { status, etag, body: text ? JSON.parse(text) : null };
}

let browser;
const result = {};
const traffic = [];

/** openGrid clicks a grid-level feature on the map and waits for the panel; returns the candidate. */
async function openGrid(page, only = null) {
  let candidates = gridCandidates(await gridFeatures(page, base));
  if (only !== null) candidates = candidates.filter((c) => c.id === only);
  if (candidates.length === 0) throw new Error(`no grid-level feature${only !== null ? ` ${only}` : ''}`);
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

const M_PER_DEG = 111320;
const vkey = (v) => `${v[0].toFixed(7)},${v[1].toFixed(7)}`;


/**
 * edgePairs lists pairs of grid-level siblings (not grid `not`) that share
 * an edge: a run of consecutive vertices of a's outer ring that are
 * consecutive in b's too. Each pair has the run's two ends and the point
 * `bend` metres off the middle of the run, inside b; the pairs whose edge
 * fits the screen at the largest zoom come first.
 */
function edgePairs(features, not, bend) {
  const grids = features.filter((f) => f.properties?.level === 'grid' && Number(f.id ?? f.properties.id) !== not);
  const segments = (g) => {
    const set = new Set();
    for (const poly of polygonsOf(g)) {
      const ring = poly[0];
      for (let i = 0; i + 1 < ring.length; i++) {
        set.add(`${vkey(ring[i])}|${vkey(ring[i + 1])}`);
        set.add(`${vkey(ring[i + 1])}|${vkey(ring[i])}`);
      }
    }
    return set;
  };
  const out = [];
  for (const a of grids) {
    for (const b of grids) {
      if (a === b || a.properties.parent_id !== b.properties.parent_id) continue;
      const bs = segments(b.geometry);
      for (const poly of polygonsOf(a.geometry)) {
        const ring = poly[0].slice(0, -1);
        const n = ring.length;
        const shared = ring.map((v, i) => bs.has(`${vkey(v)}|${vkey(ring[(i + 1) % n])}`));
        if (!shared.some(Boolean) || shared.every(Boolean)) continue;
        // The longest run of shared segments, around the ring.
        let best = null;
        for (let i = 0; i < n; i++) {
          if (!shared[i] || shared[(i - 1 + n) % n]) continue;
          let k = i;
          const run = [ring[i]];
          while (shared[k % n] && run.length <= n) run.push(ring[++k % n]);
          if (!best || run.length > best.length) best = run;
        }
        const [p, q] = [best[0], best[best.length - 1]];
        const mid = best.length > 2 ? best[Math.floor(best.length / 2)] : [(p[0] + q[0]) / 2, (p[1] + q[1]) / 2];
        const cos = Math.cos((mid[1] * Math.PI) / 180);
        const dx = (q[0] - p[0]) * cos * M_PER_DEG;
        const dy = (q[1] - p[1]) * M_PER_DEG;
        const len = Math.hypot(dx, dy);
        if (len < 100) continue;
        let bent = null;
        for (const sgn of [1, -1]) {
          const nx = (-dy / len) * sgn;
          const ny = (dx / len) * sgn;
          const at = (m) => [mid[0] + (nx * m) / (cos * M_PER_DEG), mid[1] + (ny * m) / M_PER_DEG];
          if (pointInGeometry(at(bend), b.geometry) && !pointInGeometry(at(bend), a.geometry)) bent = { at, nx, ny };
        }
        if (!bent) continue;
        // Metres per pixel that show the whole edge on a 1100 × 700 px stretch of the map.
        const mpp = Math.max(Math.abs(dx) / 1100, Math.abs(dy) / 700);
        out.push({ a: Number(a.id ?? a.properties.id), b: Number(b.id ?? b.properties.id), aCode: a.properties.code, bCode: b.properties.code, ends: [p, q], mid, run: best.length, len, mpp, bent });
      }
    }
  }
  return out.sort((x, y) => x.mpp - y.mpp);
}

/** editorState reads the editor's test hook. */
// editorSnapshot describes the editor's preview and save for a failure's message.
const editorSnapshot = (page) =>
  page.evaluate(() => {
    const ed = document.querySelector('#editor');
    if (!ed) return 'no editor';
    const save = ed.querySelector('[data-field="save"]');
    return JSON.stringify({
      tool: ed.dataset.tool,
      preview: ed.dataset.preview,
      note: ed.querySelector('[data-field="preview-note"]')?.textContent,
      save: ed.dataset.save,
      saveDisabled: save?.disabled,
      saveTitle: save?.title,
      message: ed.querySelector('[data-field="message"]')?.textContent,
      errors: ed.dataset.errors,
    });
  });
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
  // terra-draw may apply the last move a frame later: wait until the vertex
  // is where the mouse let go, so the preview awaited next is of the final drag.
  await waitFor(
    page,
    (px) => {
      const map = window.gridwatchMap;
      const r = map.getContainer().getBoundingClientRect();
      const v = window.gridwatchEditor.vertices()[px.i];
      if (!v) return false;
      const p = map.project(v);
      return Math.hypot(r.left + p.x - px.tx, r.top + p.y - px.ty) < 3;
    },
    px,
    'the dragged vertex where the mouse let go',
  );
  return px;
}

async function waitPreview(page) {
  // A preview is settled when it shows the latest change: Save is offered
  // (or the report has errors). terra-draw may still apply a last move after
  // the vertex reached the mouse, and the editor then holds Save back until
  // that change's preview is in; the snapshot is taken in the same
  // evaluation as the check, so it cannot catch that window.
  for (let round = 0; ; round++) {
    if (round === 20) throw new Error('the preview kept changing: 20 previews went stale as they were read');
    await waitFor(
      page,
      () => {
        const ed = document.querySelector('#editor');
        if (!ed || ed.dataset.preview !== 'ok') return false;
        const diff = ed.querySelector('[data-field="area-change"] .ed-diff');
        const findings = ed.querySelectorAll('[data-field="findings"] .ed-finding').length;
        const moves = ['cameras', 'incidents', 'flagged'].some((f) => Number(ed.querySelector(`[data-field="${f}"]`)?.dataset.count) > 0);
        const settled = !ed.querySelector('[data-field="save"]').disabled || Number(ed.dataset.errors) > 0;
        return diff && diff.dataset.sign !== '0' && (findings > 0 || moves) && settled;
      },
      null,
      async () => `a settled preview with an area change and a finding or a count, Save offered unless it has errors (${await page.evaluate(() => {
        const ed = document.querySelector('#editor');
        return JSON.stringify({ preview: ed?.dataset.preview, save: !ed?.querySelector('[data-field="save"]')?.disabled, note: ed?.querySelector('[data-field="preview-note"]')?.textContent, report: window.gridwatchEditor?.state().report });
      })})`,
    );
    const shown = await page.evaluate(() => {
      const ed = document.querySelector('#editor');
      return {
        state: ed.dataset.preview,
        area: ed.querySelector('[data-field="area-change"] .ed-area').textContent,
        diff: ed.querySelector('[data-field="area-change"] .ed-diff').textContent,
        findings: [...ed.querySelectorAll('[data-field="findings"] .ed-finding')].map((b) => `${b.dataset.severity}:${b.dataset.kind}`),
        errors: Number(ed.dataset.errors),
        saveEnabled: !ed.querySelector('[data-field="save"]').disabled,
      };
    });
    if (shown.state !== 'ok') continue; // a later change came in between: wait for its preview
    delete shown.state;
    return shown;
  }
}

/**
 * moveEdge moves the edge of two sibling grids (neither grid `not`) with the
 * editor's Move edge tool: pick the neighbour with a click, draw the new
 * edge with clicks on the map canvas, check the preview, save, check the API.
 */
async function moveEdge(page, not) {
  const BEND_M = 30;
  const fc = await api('GET', '/api/v1/grids.geojson?level=grid');
  if (fc.status !== 200) throw new Error(`GET grids.geojson: ${fc.status}`);
  const pairs = edgePairs(fc.body.features, not, BEND_M);
  if (!pairs.length) throw new Error('no two sibling grids share an edge');
  const pair = pairs[0];
  const [ga, gb] = await Promise.all([api('GET', `/api/v1/grids/${pair.a}`), api('GET', `/api/v1/grids/${pair.b}`)]);
  const out = { a: pair.aCode, b: pair.bCode, edgeM: Math.round(pair.len), run: pair.run };

  await openGrid(page, pair.a);
  await page.click('#panel [data-field="edit-btn"]');
  await waitEditorReady(page, ga.body.version);
  await page.click('#editor [data-tool-btn="edge"]');
  await waitFor(page, () => document.querySelector('#editor')?.dataset.tool === 'edge', null, 'the Move edge tool');
  // Zoom to the shared edge (a person zooms in to draw it), clear of the editor panel.
  await page.evaluate((ends) => {
    const map = window.gridwatchMap;
    const w = document.querySelector('#editor').getBoundingClientRect().width;
    const xs = ends.map((e) => e[0]);
    const ys = ends.map((e) => e[1]);
    map.fitBounds([[Math.min(...xs), Math.min(...ys)], [Math.max(...xs), Math.max(...ys)]], { padding: { top: 90, bottom: 90, left: 90, right: w + 110 }, maxZoom: 18, duration: 0 });
  }, pair.ends);
  await waitFor(page, () => !window.gridwatchMap.isMoving() && window.gridwatchMap.loaded(), null, 'the map zoomed to the edge');

  // Pixels: the edge's ends, the bent middle, and a point well inside the neighbour to pick it.
  const px = await page.evaluate(
    ([ends, bentM, pickPts]) => {
      const map = window.gridwatchMap;
      const r = map.getContainer().getBoundingClientRect();
      const ed = document.querySelector('#editor').getBoundingClientRect();
      const toPx = (ll) => {
        const p = map.project(ll);
        return { x: r.left + p.x, y: r.top + p.y };
      };
      const clear = (p) => document.elementFromPoint(p.x, p.y)?.tagName === 'CANVAS' && p.x < ed.left - 4 && p.x > r.left + 4 && p.y > r.top + 4 && p.y < r.bottom - 4;
      const m0 = toPx(ends[0]);
      const mid = toPx(bentM);
      const pick = pickPts.map(toPx).find(clear) ?? null;
      const mpp = (() => {
        const c = map.getCenter();
        const a = map.project([c.lng, c.lat]);
        const b = map.project([c.lng, c.lat + 0.001]);
        return 111.32 / Math.hypot(a.x - b.x, a.y - b.y);
      })();
      return { p: m0, q: toPx(ends[1]), bend: mid, pick, ok: [m0, toPx(ends[1]), mid].every(clear), mpp };
    },
    [pair.ends, pair.bent.at(BEND_M), [150, 250, 100, 350, 60].map((m) => pair.bent.at(m))],
  );
  out.bendPx = Math.round(Math.hypot(px.bend.x - (px.p.x + px.q.x) / 2, px.bend.y - (px.p.y + px.q.y) / 2));
  out.mPerPx = Number(px.mpp.toFixed(2));
  if (!px.ok || !px.pick) throw new Error(`the edge cannot be drawn on the canvas: ${JSON.stringify(px)}`);

  // Pick the neighbour: the editor then draws a line.
  await page.mouse.move(px.pick.x - 10, px.pick.y - 10);
  await page.mouse.click(px.pick.x, px.pick.y);
  await waitFor(
    page,
    () => document.querySelector('#editor [data-field="pick"]')?.dataset.picked === 'true' && window.gridwatchEditor.state().mode === 'linestring',
    null,
    async () => `the neighbour picked (${await page.evaluate(() => JSON.stringify({ pick: document.querySelector('#editor [data-field="pick"]')?.textContent, st: window.gridwatchEditor.state() }))})`,
  );
  const picked = await page.textContent('#editor [data-field="pick"]');
  if (!picked.includes(pair.bCode)) throw new Error(`picked ${picked}, want ${pair.bCode}`);

  // The new edge: one end, the bend, the other end, and the other end again to finish.
  for (const [i, p] of [px.p, px.bend, px.q].entries()) {
    await page.mouse.move(p.x - 6, p.y + 6, { steps: 2 });
    await page.mouse.move(p.x, p.y, { steps: 3 });
    await page.mouse.click(p.x, p.y);
    if (i === 0) await waitFor(page, () => window.gridwatchEditor.state().mode === 'linestring', null, 'drawing the line');
  }
  await page.mouse.move(px.q.x + 3, px.q.y - 3, { steps: 2 });
  await page.mouse.click(px.q.x, px.q.y);
  await waitFor(
    page,
    () => window.gridwatchEditor.state().mode === 'select' && document.querySelector('#editor')?.dataset.preview === 'ok',
    null,
    async () => `the edge preview (${await page.evaluate(() => JSON.stringify({ note: document.querySelector('#editor [data-field="preview-note"]')?.textContent, st: window.gridwatchEditor.state() }))})`,
  );
  const shown = await page.evaluate(() => {
    const ed = document.querySelector('#editor');
    return {
      kind: ed.querySelector('[data-field="report-kind"]').textContent,
      grids: [...ed.querySelectorAll('[data-field="area-change"] .ed-grid')].map((li) => ({
        id: Number(li.dataset.gridId),
        area: li.querySelector('.ed-area').textContent,
        diff: li.querySelector('.ed-diff').textContent,
        sign: Number(li.querySelector('.ed-diff').dataset.sign),
      })),
      report: window.gridwatchEditor.state().report,
      errors: Number(ed.dataset.errors),
      saveEnabled: !ed.querySelector('[data-field="save"]').disabled,
    };
  });
  out.line = await page.evaluate(() => window.gridwatchEditor.state().line);
  out.preview = shown.grids.map(({ id, area, diff }) => ({ id, area, diff }));
  const byId = new Map(shown.grids.map((g) => [g.id, g]));
  if (shown.grids.length !== 2 || !byId.has(pair.a) || !byId.has(pair.b)) throw new Error(`preview lists ${JSON.stringify(shown.grids)}, want grids ${pair.a} and ${pair.b}`);
  if (byId.get(pair.a).sign !== 1 || byId.get(pair.b).sign !== -1) throw new Error(`preview: ${pair.aCode} should grow and ${pair.bCode} shrink: ${JSON.stringify(shown.grids)}`);
  const rg = new Map(shown.report.grids.map((g) => [Number(g.id), g]));
  const da = rg.get(pair.a).area_after_m2 - rg.get(pair.a).area_before_m2;
  const db = rg.get(pair.b).area_after_m2 - rg.get(pair.b).area_before_m2;
  // The bend is a triangle: half the edge times the bend's height, taken from one grid, given to the other.
  const expected = (pair.len * BEND_M) / 2;
  if (Math.abs(da + db) > 0.01 * Math.abs(da) || da < expected * 0.5 || da > expected * 1.5) {
    throw new Error(`preview areas: ${pair.aCode} ${da.toFixed(0)} m², ${pair.bCode} ${db.toFixed(0)} m², want ±${expected.toFixed(0)}`);
  }
  if (shown.errors !== 0 || !shown.saveEnabled) throw new Error(`cannot save the edge move: ${JSON.stringify(shown.report.findings)}`);
  await page.screenshot({ path: path.join(artifacts, 'editor-edge.png') });

  await page.click('#editor [data-field="save"]');
  await waitFor(page, () => !document.querySelector('#editor') && document.querySelector('.toast[data-saved]') !== null, null, async () => `edge saved (${await page.evaluate(() => JSON.stringify({ save: document.querySelector('#editor')?.dataset.save, msg: document.querySelector('#editor [data-field="message"]')?.textContent }))})`);
  const [aa, ab] = await Promise.all([api('GET', `/api/v1/grids/${pair.a}`), api('GET', `/api/v1/grids/${pair.b}`)]);
  if (aa.body.version !== ga.body.version + 1 || ab.body.version !== gb.body.version + 1) {
    throw new Error(`versions after the edge move: ${aa.body.version}, ${ab.body.version}; want ${ga.body.version + 1}, ${gb.body.version + 1}`);
  }
  const areaOf = (g) => Number(g.area_m2 ?? g.properties?.area_m2);
  const ca = areaOf(aa.body) - areaOf(ga.body);
  const cb = areaOf(ab.body) - areaOf(gb.body);
  if (!(ca > 0 && cb < 0)) throw new Error(`areas after the edge move: ${pair.aCode} ${ca.toFixed(0)} m², ${pair.bCode} ${cb.toFixed(0)} m²: want one up, one down`);
  out.saved = { versions: [aa.body.version, ab.body.version], areaChange: [Math.round(ca), Math.round(cb)] };
  return out;
}

/**
 * waitAreaChange waits for the editor's preview of a split or merge (what):
 * previewed ok, with a grid in its area change marked data-<mark>="true"
 * ('created' by a split, 'removed' by a merge). On a timeout it says what the
 * editor showed instead.
 */
async function waitAreaChange(page, what, mark) {
  await waitFor(
    page,
    (attr) => {
      const ed = document.querySelector('#editor');
      return ed?.dataset.preview === 'ok' && ed.querySelector(`[data-field="area-change"] [${attr}="true"]`) !== null;
    },
    `data-${mark}`,
    async () =>
      `${what} preview (${await page.evaluate(() => {
        const ed = document.querySelector('#editor');
        return JSON.stringify({
          preview: ed?.dataset.preview,
          note: ed?.querySelector('[data-field="preview-note"]')?.textContent,
          code: ed?.querySelector('input[name="new.code"]')?.value,
          pick: ed?.querySelector('[data-field="pick"]')?.textContent,
          st: window.gridwatchEditor?.state(),
        });
      })})`,
  );
}

async function run() {
  browser = await launch();

  // ---- GIS editor: edit, preview, save ---------------------------------------------------
  const { context: ctx, page, watcher } = await openPage(browser, base);
  const editorChunks = [];
  page.on('request', (req) => {
    if (/\/editor-[\w-]+\.js$/.test(new URL(req.url()).pathname)) editorChunks.push(req.url());
  });
  // The page's grid writes and previews, in order, for a failure's report.
  page.on('response', (res) => {
    const u = new URL(res.url());
    if (/^\/api\/v1\/grids\/\d+\//.test(u.pathname) && res.request().method() !== 'GET') traffic.push(`${((Date.now() - started) / 1000).toFixed(1)}s ${res.request().method()} ${u.pathname}${u.search} ${res.status()}`);
  });
  const resp = await page.goto(base.href, { waitUntil: 'domcontentloaded', timeout: timeoutMs });
  if (!resp?.ok()) throw new Error(`GET ${base.href}: HTTP ${resp?.status()}`);
  await signIn(page, 'demo-gis', 'gridwatch-gis');
  await waitGrids(page, watcher.problems);
  // A GIS editor listens to the event stream (for grid.changed) too.
  await waitFor(page, () => document.body.dataset.live === 'sse', null, async () => `the live event stream (${await page.evaluate(() => document.body.dataset.live)})`);
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
  if (await page.evaluate(() => document.querySelector('#editor')?.dataset.changedElsewhere)) throw new Error('the change-elsewhere warning shows before any change');
  const other = await api('PUT', `/api/v1/grids/${at.id}/geometry`, before.body.geometry, { 'If-Match': after.etag });
  if (other.status !== 200) throw new Error(`PUT behind the editor's back: ${other.status} ${JSON.stringify(other.body)}`);
  // The grid.changed event reaches the editor: it warns before any save.
  await waitFor(
    page,
    () => {
      const ed = document.querySelector('#editor');
      const w = ed?.querySelector('[data-field="stale-warning"]');
      return ed?.dataset.changedElsewhere === 'true' && w && !w.hidden && w.getBoundingClientRect().height > 0;
    },
    null,
    async () => `the change-elsewhere warning (live ${await page.evaluate(() => document.body.dataset.live)})`,
  );
  const warning = await page.evaluate(() => ({
    text: document.querySelector('#editor [data-field="stale-text"]').textContent,
    detail: document.querySelector('#editor [data-field="stale-detail"]').textContent,
    reload: !document.querySelector('#editor [data-field="stale-reload"]').hidden,
    save: document.querySelector('#editor').dataset.save,
  }));
  if (!/此网格已被他人修改/.test(warning.text) || !/changed by someone else since you started — reload before saving/.test(warning.text)) throw new Error(`warning text: ${warning.text}`);
  if (!warning.detail.includes(`v${v0 + 1} → v${v0 + 2}`)) throw new Error(`warning detail: ${warning.detail}`);
  if (!warning.reload || warning.save !== 'idle') throw new Error(`warning: ${JSON.stringify(warning)}`);
  result.warning = warning;
  await page.screenshot({ path: path.join(artifacts, 'editor-changed-elsewhere.png') });
  // Editing goes on after the warning: the change is previewed against the
  // grid as it is now (a late move of terra-draw's does the same). The
  // editor's test hook moves a vertex a little, as a drag would.
  await page.evaluate(() => {
    const ring = window.gridwatchEditor.vertices().map((p) => [...p]);
    const i = 2;
    const r6 = (v) => Math.round(v * 1e6) / 1e6; // terra-draw refuses more precision than it keeps
    ring[i] = [r6(ring[i][0] + (ring[0][0] - ring[i][0]) * 0.05), r6(ring[i][1] + (ring[0][1] - ring[i][1]) * 0.05)];
    window.gridwatchEditor.setGeometry({ type: 'Polygon', coordinates: [ring] });
  });
  await waitPreview(page);
  // Saving anyway: the server says no (412) and why.
  watcher.expect('PUT', new RegExp(`^/api/v1/grids/${at.id}/geometry$`), 412);
  await waitFor(page, () => !document.querySelector('#editor [data-field="save"]').disabled, null, async () => `Save offered after the warning (${await editorSnapshot(page)})`);
  await page.click('#editor [data-field="save"]');
  await waitFor(page, () => document.querySelector('#editor')?.dataset.save === 'stale' && !document.querySelector('#editor [data-field="reload"]').hidden, null, 'the 412 shown with Reload');
  const staleMsg = await page.textContent('#editor [data-field="message"]');
  if (!/changed since/i.test(staleMsg)) throw new Error(`stale message: ${staleMsg}`);
  result.stale = staleMsg;
  // The warning's Reload: the edit starts again from the new version and its ETag.
  await page.click('#editor [data-field="stale-reload"]');
  await waitEditorReady(page, v0 + 2);
  const reloaded = await page.evaluate(() => ({ etag: window.gridwatchEditor.state().etag, changed: document.querySelector('#editor').dataset.changedElsewhere ?? null, hidden: document.querySelector('#editor [data-field="stale-warning"]').hidden }));
  if (reloaded.etag !== `"grid-${at.id}-v${v0 + 2}"` || reloaded.changed !== null || !reloaded.hidden) throw new Error(`after Reload: ${JSON.stringify(reloaded)}`);
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
  await waitAreaChange(page, 'split', 'created');
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
  await waitAreaChange(page, 'merge', 'removed');
  result.merge = await page.textContent('#editor [data-field="pick"]');
  await page.screenshot({ path: path.join(artifacts, 'editor-merge.png') });

  await page.click('#editor [data-field="cancel"]');
  await waitFor(page, () => !document.querySelector('#editor') && !document.body.classList.contains('editing'), null, 'editor closed');
  await watcher.check('split and merge');

  // ---- Two changes in quick succession: the older reload's answer comes last --------------
  // Someone changes the grid twice; the map's reload of the grids after the
  // first is answered at once but held back in the browser until the reload
  // after the second has drawn: the map and the panel keep the second.
  const cur = await api('GET', `/api/v1/grids/${at.id}`);
  await openGrid(page, at.id);
  await waitFor(page, (v) => document.querySelector('#panel [data-field="version"]')?.textContent === `v${v}` && !document.querySelector('#panel').hidden, cur.body.version, async () => `the panel on grid ${at.id} at v${cur.body.version} (it shows ${await page.evaluate(() => JSON.stringify({ hidden: document.querySelector('#panel').hidden, version: document.querySelector('#panel [data-field="version"]')?.textContent }))})`);
  const heldReload = await holdAnswer(page, /\/api\/v1\/grids\.geojson$/, "the map's reload of the grids after the first change");
  const first = await api('PUT', `/api/v1/grids/${at.id}/geometry`, after.body.geometry, { 'If-Match': cur.etag });
  if (first.status !== 200) throw new Error(`the first change: ${first.status} ${JSON.stringify(first.body)}`);
  await heldReload.read();
  const reloads = await page.evaluate(() => Number(document.body.dataset.gridReloads ?? 0));
  const afterFirst = await api('GET', `/api/v1/grids/${at.id}`);
  const put2 = await api('PUT', `/api/v1/grids/${at.id}/geometry`, before.body.geometry, { 'If-Match': afterFirst.etag });
  if (put2.status !== 200) throw new Error(`the second change: ${put2.status} ${JSON.stringify(put2.body)}`);
  const second = await api('GET', `/api/v1/grids/${at.id}`);
  if (second.body.version !== afterFirst.body.version + 1) throw new Error(`versions v${afterFirst.body.version} then v${second.body.version}`);
  await waitFor(page, (v) => document.querySelector('#panel [data-field="version"]')?.textContent === `v${v}`, second.body.version, async () => `the panel showing the second change, v${second.body.version} (${await page.evaluate(() => JSON.stringify({ hidden: document.querySelector('#panel').hidden, version: document.querySelector('#panel [data-field="version"]')?.textContent, reloads: document.body.dataset.gridReloads, tiles: document.body.dataset.gridTiles, live: document.body.dataset.live }))}; reloads before: ${reloads}; first v${afterFirst.body.version})`);
  await waitFor(page, (n) => Number(document.body.dataset.gridReloads) > n, reloads, "the map's reload after the second change");
  const drawn = await page.evaluate(() => document.body.dataset.gridTiles);
  await heldReload.stop();
  await waitFor(page, (n) => Number(document.body.dataset.gridReloads) > n + 1, reloads, 'the map taking the reload held since the first change');
  const kept = await page.evaluate(() => ({ version: document.querySelector('#panel [data-field="version"]')?.textContent, tiles: document.body.dataset.gridTiles }));
  if (kept.version !== `v${second.body.version}` || kept.tiles !== drawn) throw new Error(`the map's reload after the first change, answered last, put the map back: ${JSON.stringify(kept)}, want v${second.body.version} and tiles ${drawn}`);
  result.lateReload = kept;
  await watcher.check('two quick changes');

  result.edge = await moveEdge(page, at.id);
  await watcher.check('move edge');
  await ctx.close();

  // ---- A viewer without grids.write ------------------------------------------------------
  const { context: vctx, page: vpage, watcher: vwatch } = await openPage(browser, base);
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
  reportProblems();
  if (traffic.length) console.error(`e2e: the editor's grid requests: ${traffic.join(' | ')}`);
  console.log(JSON.stringify({ ok: false, ...result }));
  await browser?.close().catch(() => {});
  process.exit(1);
}
