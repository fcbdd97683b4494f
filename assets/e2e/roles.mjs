// Browser test of sign-in and the role-driven dashboard, in headless Chromium.
//
//   node e2e/roles.mjs <baseURL> <artifactDir>
//
// Each step runs in a fresh browser context (no cookies) against the demo
// accounts that `gridwatch demo` seeds:
//   a. "/" shows the login overlay and draws no grids; a wrong password shows an error
//   b. demo-gis: grids drawn, Import visible, Admin absent (roles-gis.png); importing
//      an invalid boundary is refused with a problems list, and a problem's
//      "show" docks the dialog, flies the map there and drops a marker
//      (roles-gis-import.png); nothing is stored
//   c. demo-commander: grids drawn, neither Import nor Admin (roles-commander.png)
//   d. demo-leader: fewer grids than the commander, more than none
//   e. demo-admin: Admin opens on Users, which lists demo-gis (roles-admin.png);
//      the Tokens and Audit tabs load, the GB/T 28181 tab is offered; the
//      Nodes tab lists this node (the id GET /api/v1/nodes answers as "self")
//      alive and marked "this node", with its last beat a few seconds ago,
//      and reads the list again while it shows (roles-admin-nodes.png); once
//      the dialog is closed it asks no more; a camera's card says "pulled by"
//      this node
//   f. session expiry: as demo-commander open a grid, drop the cookies, click
//      another grid → the login overlay; sign in again → the overlay closes, the
//      retried request shows the second grid, the map has not moved
//   g. demo-operator (cameras.write, no admin permission): Admin shows one tab,
//      国标设备 GB/T 28181, listing the devices the API lists — or, on a server
//      without GB/T 28181 (its 503), saying it is not running (roles-operator.png)
// Any page error, console error, CSP violation, error banner or unexpected HTTP
// error fails the step. Prints one JSON line and exits 0, else prints
// "e2e: FAIL: …" and exits 1.
// Environment: CHROMIUM (default /usr/bin/chromium), E2E_TIMEOUT_MS (default 20000).

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { interiorPoint } from '../src/geometry.js';
import { clickAt, clickGrid, gridCandidates, gridFeatures, launch, loginOverlayShown, panelShows, place, pointAt, signIn, timeoutMs, waitFor, waitGrids, main, scriptArgs, openPage } from './common.mjs';

const { base, args: [artifactDir], started } = scriptArgs('roles.mjs', '<artifactDir>', timeoutMs * 15 + 30000);

const ACCOUNTS = {
  admin: ['demo-admin', 'gridwatch-admin'],
  commander: ['demo-commander', 'gridwatch-commander'],
  gis: ['demo-gis', 'gridwatch-gis'],
  leader: ['demo-leader', 'gridwatch-leader'],
  operator: ['demo-operator', 'gridwatch-operator'],
};

let browser;
const summary = { ok: true, url: base.href, steps: {} };

/** step runs fn(page, watcher) in a fresh context and records how long it took. */
async function step(name, fn) {
  const t0 = Date.now();
  const { context, page, watcher } = await openPage(browser, base);
  try {
    const resp = await page.goto(base.href, { waitUntil: 'domcontentloaded', timeout: timeoutMs });
    if (!resp || !resp.ok()) throw new Error(`GET ${base.href}: HTTP ${resp?.status()}`);
    const out = await fn(page, watcher, context);
    await watcher.check('at the end');
    summary.steps[name] = { ...out, ms: Date.now() - t0 };
  } catch (err) {
    throw new Error(`step ${name}: ${err.message}`);
  } finally {
    await context.close().catch(() => {});
  }
}

async function visible(page, selector) {
  return page.evaluate((s) => {
    const e = document.querySelector(s);
    if (!e || e.hidden) return false;
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden';
  }, selector);
}

async function headerCounts(page) {
  return page.evaluate(() => ({
    grid: document.querySelector('#grid-count').textContent.trim(),
    role: document.querySelector('#user-role').textContent.trim(),
    name: document.querySelector('#user-name').textContent.trim(),
  }));
}

/**
 * adminNodes opens Admin → Nodes (the admin view open): this node (self of
 * GET /api/v1/nodes) is listed alive, marked as the one that answered, its
 * last beat seconds ago; the table is read again while it shows. Closing the
 * dialog stops that: it returns {self, row, closed()} — closed() tells
 * whether the page asked for the nodes again since.
 */
async function adminNodes(page) {
  const res = await page.context().request.get(new URL('/api/v1/nodes', base).href);
  if (!res.ok()) throw new Error(`GET /api/v1/nodes as demo-admin: HTTP ${res.status()}`);
  const { self, nodes } = await res.json();
  if (!self || !nodes.some((n) => n.id === self && n.alive)) throw new Error(`GET /api/v1/nodes does not list self ${JSON.stringify(self)} alive: ${JSON.stringify(nodes)}`);
  if (!(await visible(page, '#admin-tab-nodes'))) throw new Error('Nodes tab not visible for admin');
  await page.click('#admin-tab-nodes');
  const sel = `#nodes-table tbody tr[data-node-id="${self}"]`;
  await waitFor(
    page,
    (s) => {
      const tr = document.querySelector(s);
      return !document.querySelector('#admin-nodes').hidden && tr?.dataset.state === 'alive' && tr.dataset.self === 'true';
    },
    sel,
    async () => `Nodes tab listing ${self} alive as this node (status: ${await page.textContent('#admin-nodes .tab-status').catch(() => '?')}; rows: ${await page.evaluate(() => JSON.stringify([...document.querySelectorAll('#nodes-table tbody tr')].map((tr) => ({ ...tr.dataset, text: tr.textContent }))))})`,
  );
  const row = await page.evaluate((s) => {
    const cells = [...document.querySelector(s).cells].map((td) => td.textContent.trim());
    return { id: cells[0], state: cells[1], cameras: cells[2], version: cells[5], beat: cells[6], rows: document.querySelectorAll('#nodes-table tbody tr[data-node-id]').length, self: document.querySelector(`${s} .kind[data-kind="self"]`)?.textContent ?? '' };
  }, sel);
  if (!row.id.startsWith(self) || !/this node/.test(row.self)) throw new Error(`this node's row does not say so: ${JSON.stringify(row)}`);
  if (!/alive/.test(row.state)) throw new Error(`this node's state reads ${JSON.stringify(row.state)}`);
  if (!/^\d+ s ago$/.test(row.beat)) throw new Error(`this node's last beat reads ${JSON.stringify(row.beat)}, want "N s ago"`);
  if (row.rows !== nodes.length) throw new Error(`the Nodes tab lists ${row.rows} nodes, the API ${nodes.length}`);
  await page.screenshot({ path: path.join(artifactDir, 'roles-admin-nodes.png') });
  // While the tab shows, the list is read again: the row is drawn anew.
  await page.evaluate((s) => {
    document.querySelector(s).dataset.seen = 'yes';
  }, sel);
  await waitFor(page, (s) => document.querySelector(s) && document.querySelector(s).dataset.seen !== 'yes', sel, 'the Nodes tab read again while it shows');
  // Closed, it asks no more: the requests for the nodes started after the
  // dialog closed (one on its way then does not count).
  await page.evaluate(() => {
    window.__e2eNodesAsked = 0;
    document.querySelector('#admin-dialog').addEventListener(
      'close',
      () => {
        const closedAt = performance.now();
        new PerformanceObserver((list) => {
          for (const e of list.getEntries()) if (new URL(e.name).pathname === '/api/v1/nodes' && e.startTime > closedAt) window.__e2eNodesAsked++;
        }).observe({ type: 'resource' });
      },
      { once: true },
    );
  });
  await page.click('#admin-dialog .dialog-close');
  await waitFor(page, () => !document.querySelector('#admin-dialog').open, null, 'the admin view closed');
  return { self, row, closed: () => page.evaluate(() => window.__e2eNodesAsked) };
}

/**
 * cameraCardNode opens the card of a demo camera pulled by node self (on the
 * map) and waits for it to say "pulled by" self.
 */
async function cameraCardNode(page, self) {
  await waitFor(page, () => Number(document.body.dataset.camerasLoaded) > 0, null, 'the camera layer');
  // The demo's cameras record: their node pulls them all the time, once it has claimed them.
  let cams = [];
  for (const until = Date.now() + timeoutMs; ; ) {
    const res = await page.context().request.get(new URL('/api/v1/cameras?limit=1000', base).href);
    if (!res.ok()) throw new Error(`GET /api/v1/cameras as demo-admin: HTTP ${res.status()}`);
    const all = (await res.json()).cameras ?? [];
    if (all.some((c) => !('node' in c))) throw new Error(`a camera without its "node": ${JSON.stringify(all[0])}`);
    cams = all.filter((c) => c.node === self);
    if (cams.length) break;
    if (Date.now() > until) throw new Error(`no camera pulled by ${self}: ${JSON.stringify(all.map((c) => [c.code, c.node]))}`);
    await page.waitForTimeout(250); // the node claims its cameras on its next beat
  }
  let cam = null;
  for (const c of cams) {
    const at = await pointAt(page, c.location.coordinates, { blockers: { layers: ['inc-point', 'inc-cluster'], px: 14 }, cam: { layers: ['cam-point'], px: 4 } });
    if (!at.onCanvas || at.near.blockers || !at.near.cam) continue;
    await clickAt(page, at, 20);
    cam = c;
    break;
  }
  if (!cam) throw new Error(`none of the ${cams.length} cameras pulled by ${self} can be clicked on the map`);
  await waitFor(
    page,
    ([id, node]) => {
      const card = document.querySelector('#camera-card');
      const line = card?.querySelector('[data-field="cam-node"]');
      return card && !card.hidden && card.dataset.camera === String(id) && line && !line.hidden && line.dataset.node === node && line.textContent.includes(`pulled by ${node}`);
    },
    [cam.id, self],
    async () => `the card of ${cam.code} saying it is pulled by ${self} (card: ${await page.evaluate(() => document.querySelector('#camera-card')?.textContent.trim().slice(0, 300))})`,
  );
  const line = await page.textContent('#camera-card [data-field="cam-node"]');
  return { camera: cam.code, line };
}

async function signedInWithGrids(page, watcher, account) {
  await signIn(page, ...account);
  const loaded = await waitGrids(page, watcher.problems);
  await watcher.check('after sign-in');
  return loaded;
}

async function run() {
  await mkdir(artifactDir, { recursive: true });
  browser = await launch();

  // a. Signed out: the overlay, no grids; a wrong password is refused in place.
  await step('a_login', async (page, watcher) => {
    await waitFor(page, () => document.querySelector('#login')?.open && document.body.dataset.auth === 'login', null, 'login overlay on first load');
    if (!(await loginOverlayShown(page))) throw new Error('login overlay is not modal');
    const focus = await page.evaluate(() => document.activeElement?.id);
    if (focus !== 'login-username') throw new Error(`focus on load is #${focus}, want #login-username`);
    watcher.expect('POST', /^\/api\/v1\/auth\/login$/, 401);
    await signIn(page, ACCOUNTS.commander[0], 'not-the-password', { expectOk: false });
    await waitFor(page, () => !document.querySelector('#login-error').hidden && document.querySelector('#login-error').textContent.trim() !== '', null, 'login error text after a wrong password');
    const after = await page.evaluate(() => ({
      error: document.querySelector('#login-error').textContent.trim(),
      open: document.querySelector('#login').open,
      focus: document.activeElement?.id,
      grids: document.body.dataset.gridsLoaded ?? null,
      canvas: document.querySelectorAll('#map canvas').length,
      count: document.querySelector('#grid-count').textContent.trim(),
    }));
    if (!after.open) throw new Error('login overlay closed after a wrong password');
    if (after.focus !== 'login-password') throw new Error(`focus after a wrong password is #${after.focus}, want #login-password`);
    if (after.grids !== null || after.canvas !== 0 || after.count !== '—') throw new Error(`grids shown while signed out: ${JSON.stringify(after)}`);
    // Everything the page fetched since it loaded: no grid request before signing in.
    const gridCalls = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name).filter((u) => u.includes('/api/v1/grids')));
    if (gridCalls.length) throw new Error(`grids requested while signed out: ${gridCalls.join(', ')}`);
    return { error: after.error };
  });

  // b. GIS editor: grids, Import, no Admin; an invalid file is refused with its problems.
  await step('b_gis', async (page, watcher) => {
    const loaded = await signedInWithGrids(page, watcher, ACCOUNTS.gis);
    if (!(await visible(page, '#import-btn'))) throw new Error('Import button not visible for gis_editor');
    if (await visible(page, '#admin-btn')) throw new Error('Admin button visible for gis_editor');
    const header = await headerCounts(page);
    if (!header.role.includes('地理信息编辑')) throw new Error(`header role is ${JSON.stringify(header.role)}`);
    await page.screenshot({ path: path.join(artifactDir, 'roles-gis.png') });

    // A bow-tie (self-intersecting) boundary inside a community: refused, never stored.
    const features = await gridFeatures(page, base);
    const community = features.find((f) => f.properties?.level === 'community');
    if (!community) throw new Error('no community to import into');
    const [cx, cy] = interiorPoint(community.geometry);
    const d = 0.0008;
    const bowtie = {
      type: 'FeatureCollection',
      features: [
        {
          type: 'Feature',
          properties: { code: `${community.properties.code}987`, name: 'e2e 自相交 bow-tie', level: 'grid', parent_code: community.properties.code },
          geometry: { type: 'Polygon', coordinates: [[[cx - d, cy - d], [cx + d, cy + d], [cx + d, cy - d], [cx - d, cy + d], [cx - d, cy - d]]] },
        },
      ],
    };
    watcher.expect('POST', /^\/api\/v1\/grids\/import$/, 400, 409, 422);
    await page.click('#import-btn');
    await waitFor(page, () => document.querySelector('#import-dialog')?.matches(':modal'), null, 'import dialog open');
    await page.setInputFiles('#import-file', { name: 'bowtie.geojson', mimeType: 'application/geo+json', buffer: Buffer.from(JSON.stringify(bowtie)) });
    await page.click('#import-submit');
    await waitFor(page, () => document.querySelectorAll('#problems-table tbody tr').length > 0, null, async () => `problems list (result: ${JSON.stringify(await page.textContent('#import-result').catch(() => ''))})`);
    const problems = await page.evaluate(() => [...document.querySelectorAll('#problems-table tbody tr')].map((tr) => ({ reason: tr.dataset.reason, text: tr.textContent.trim().slice(0, 120), show: !!tr.querySelector('.btn-show') })));
    const showable = problems.findIndex((p) => p.show);
    if (showable < 0) throw new Error(`no problem has a location to show: ${JSON.stringify(problems)}`);
    const loc = await page.evaluate((i) => {
      const b = document.querySelectorAll('#problems-table tbody tr')[i].querySelector('.btn-show');
      return [Number(b.dataset.lon), Number(b.dataset.lat)];
    }, showable);
    await page.locator('#problems-table tbody tr').nth(showable).locator('.btn-show').click();
    await waitFor(
      page,
      (l) => {
        const dlg = document.querySelector('#import-dialog');
        const m = window.gridwatchMap;
        const c = m.getCenter();
        return dlg.open && dlg.classList.contains('docked') && !dlg.matches(':modal') && document.querySelector('.problem-marker') && !m.isMoving() && Math.abs(c.lng - l[0]) + Math.abs(c.lat - l[1]) < 0.05;
      },
      loc,
      'dialog docked, map at the problem, marker shown',
    );
    await page.screenshot({ path: path.join(artifactDir, 'roles-gis-import.png') });
    await page.click('#import-dialog .dialog-close');
    await waitFor(page, () => !document.querySelector('#import-dialog').open && !document.querySelector('.problem-marker'), null, 'dialog closed and marker removed');
    const after = await gridFeatures(page, base);
    if (after.some((f) => f.properties?.code === `${community.properties.code}987`)) throw new Error('the refused grid was stored');
    return { grids_loaded: loaded, import_problems: problems.map((p) => p.reason) };
  });

  // c. Commander: grids, no Import, no Admin.
  let commanderGrids = 0;
  await step('c_commander', async (page, watcher) => {
    commanderGrids = await signedInWithGrids(page, watcher, ACCOUNTS.commander);
    if (await visible(page, '#import-btn')) throw new Error('Import button visible for commander');
    if (await visible(page, '#admin-btn')) throw new Error('Admin button visible for commander');
    const header = await headerCounts(page);
    if (!header.role.includes('指挥中心')) throw new Error(`header role is ${JSON.stringify(header.role)}`);
    await page.screenshot({ path: path.join(artifactDir, 'roles-commander.png') });
    return { grids_loaded: commanderGrids, header };
  });

  // d. Grid leader: only their community and its grids.
  await step('d_leader', async (page, watcher) => {
    const loaded = await signedInWithGrids(page, watcher, ACCOUNTS.leader);
    if (!(loaded > 0 && loaded < commanderGrids)) throw new Error(`grid leader has ${loaded} grids loaded, want 0 < n < ${commanderGrids} (commander)`);
    if ((await visible(page, '#import-btn')) || (await visible(page, '#admin-btn'))) throw new Error('Import or Admin button visible for grid_leader');
    const header = await headerCounts(page);
    const features = await gridFeatures(page, base);
    const gridLevel = features.filter((f) => f.properties?.level === 'grid').length;
    if (header.grid !== String(gridLevel)) throw new Error(`header grid count ${header.grid}, want ${gridLevel} (what was loaded)`);
    return { grids_loaded: loaded, header };
  });

  // e. Admin: the admin view, users listing demo-gis; tokens and audit load.
  await step('e_admin', async (page, watcher) => {
    const loaded = await signedInWithGrids(page, watcher, ACCOUNTS.admin);
    if (!(await visible(page, '#admin-btn'))) throw new Error('Admin button not visible for admin');
    await page.click('#admin-btn');
    await waitFor(page, () => document.querySelector('#admin-dialog')?.matches(':modal') && document.querySelector('#admin-dialog').dataset.tab === 'users', null, 'admin view on the Users tab');
    await waitFor(page, () => !!document.querySelector('#users-table tbody tr[data-username="demo-gis"]'), null, async () => `users table listing demo-gis (status: ${await page.textContent('#admin-users .tab-status').catch(() => '?')})`);
    const users = await page.evaluate(() => [...document.querySelectorAll('#users-table tbody tr[data-username]')].map((tr) => tr.dataset.username));
    await page.screenshot({ path: path.join(artifactDir, 'roles-admin.png') });
    await page.click('#admin-tab-tokens');
    await waitFor(page, () => !document.querySelector('#admin-tokens').hidden && document.querySelector('#tokens-table tbody tr') !== null, null, 'tokens table');
    await page.click('#admin-tab-audit');
    await waitFor(page, () => !document.querySelector('#admin-audit').hidden && document.querySelector('#audit-table tbody tr') !== null, null, 'audit table');
    const status = await page.evaluate(() => [...document.querySelectorAll('#admin-dialog .tab-status[data-state="error"]')].map((e) => e.textContent.trim()));
    if (status.length) throw new Error(`admin view errors: ${status.join('; ')}`);
    if (!(await visible(page, '#admin-tab-gb'))) throw new Error('the GB/T 28181 tab is not offered to an admin');
    const nodes = await adminNodes(page);
    const card = await cameraCardNode(page, nodes.self);
    const asked = await nodes.closed();
    if (asked) throw new Error(`the closed admin view asked for the nodes ${asked} times while the camera card opened`);
    return { grids_loaded: loaded, users, nodes: { self: nodes.self, row: nodes.row }, card };
  });

  // f. Session expiry keeps the page: panel, map position, and the retried request.
  await step('f_expiry', async (page, watcher, context) => {
    await signedInWithGrids(page, watcher, ACCOUNTS.commander);
    const candidates = gridCandidates(await gridFeatures(page, base));
    const first = (await place(page, candidates)) ?? (await place(page, candidates.slice(0, 1), true));
    if (!first) throw new Error('no grid can be clicked');
    await clickGrid(page, first);
    await panelShows(page, { name: first.name, code: first.code });
    const second = await place(page, candidates.filter((c) => c.id !== first.id));
    if (!second) throw new Error('no second grid can be clicked with the panel open');
    const view = () => page.evaluate(() => ({ center: window.gridwatchMap.getCenter().toArray(), zoom: window.gridwatchMap.getZoom() }));
    const before = await view();

    await context.clearCookies();
    watcher.expect('GET', /^\/api\/v1\/grids\/\d+$/, 401);
    // Whatever else the page asks meanwhile (the grid's cases and team, a poll
    // for incidents, the event stream) is answered 401 too, and retried after.
    watcher.expect('GET', /^\/api\/v1\/(incidents|events|me|grids\/\d+\/staff)$/, 401);
    await clickGrid(page, second);
    await waitFor(page, () => document.querySelector('#login')?.open && document.body.dataset.auth === 'login', null, 'login overlay after the session was dropped');
    const during = await page.evaluate(() => ({
      expired: !document.querySelector('#login-expired').hidden,
      username: document.querySelector('#login-username').value,
      panelOpen: !document.querySelector('#panel').hidden,
    }));
    if (!during.expired) throw new Error('the overlay does not say the session ended');
    if (!during.panelOpen) throw new Error('the panel closed when the session ended');
    await signIn(page, ...ACCOUNTS.commander);
    await panelShows(page, { name: second.name, code: second.code });
    const after = await view();
    const moved = Math.abs(after.center[0] - before.center[0]) + Math.abs(after.center[1] - before.center[1]) > 1e-9 || Math.abs(after.zoom - before.zoom) > 1e-9;
    if (moved) throw new Error(`the map moved across sign-in: ${JSON.stringify(before)} → ${JSON.stringify(after)}`);
    const loaded = await page.evaluate(() => Number(document.body.dataset.gridsLoaded));
    if (!(loaded > 0)) throw new Error(`grids gone after sign-in (data-grids-loaded=${loaded})`);
    return { first: first.code, second: second.code, prefilled_username: during.username };
  });

  // g. Operator: the admin view has only the GB/T 28181 devices.
  await step('g_operator', async (page, watcher, context) => {
    const loaded = await signedInWithGrids(page, watcher, ACCOUNTS.operator);
    if (!(await visible(page, '#admin-btn'))) throw new Error('Admin button not visible for operator (cameras.write: the GB/T 28181 devices)');
    const res = await context.request.get(new URL('/api/v1/gb28181/devices', base).href);
    const running = res.status() === 200;
    if (!running && res.status() !== 503) throw new Error(`GET /api/v1/gb28181/devices as demo-operator: HTTP ${res.status()}`);
    if (!running) watcher.expect('GET', /^\/api\/v1\/gb28181\/devices$/, 503);
    const ids = running ? ((await res.json()).devices ?? []).map((d) => d.id) : [];
    await page.click('#admin-btn');
    await waitFor(page, () => document.querySelector('#admin-dialog')?.matches(':modal') && document.querySelector('#admin-dialog').dataset.tab === 'gb', null, 'admin view on the GB/T 28181 tab');
    const tabs = await page.evaluate(() => [...document.querySelectorAll('#admin-dialog .tab')].filter((b) => !b.hidden).map((b) => b.dataset.tab));
    if (tabs.join() !== 'gb') throw new Error(`the operator's admin tabs: ${JSON.stringify(tabs)}, want only gb`);
    if (running) {
      await waitFor(
        page,
        (ids) => {
          const rows = [...document.querySelectorAll('#gb-devices-table tbody tr')];
          const listed = rows.filter((tr) => tr.dataset.deviceId).map((tr) => tr.dataset.deviceId);
          return ids.length ? listed.join() === ids.join() : rows.length === 1 && rows[0].classList.contains('empty-row');
        },
        ids,
        async () => `the GB/T 28181 tab listing ${JSON.stringify(ids)} (status: ${await page.textContent('#admin-gb .tab-status').catch(() => '?')})`,
      );
    } else {
      await waitFor(page, () => /GB\/T 28181 is not running on this server/.test(document.querySelector('#admin-gb .gb-unavailable:not([hidden])')?.textContent ?? ''), null, 'the GB/T 28181 tab saying it is not running');
    }
    await page.screenshot({ path: path.join(artifactDir, 'roles-operator.png') });
    await page.click('#admin-dialog .dialog-close');
    await waitFor(page, () => !document.querySelector('#admin-dialog').open, null, 'the admin view closed');
    return { grids_loaded: loaded, tabs, gb: running ? { devices: ids } : 'not running' };
  });

  summary.total_ms = Date.now() - started;
  summary.artifacts = ['roles-gis.png', 'roles-gis-import.png', 'roles-commander.png', 'roles-admin.png', 'roles-admin-nodes.png', 'roles-operator.png'].map((n) => path.join(artifactDir, n));
  return summary;
}

await main(run, () => browser);
