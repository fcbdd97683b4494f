// Browser test of several nodes: a camera pulled by one node plays in the
// dashboard of another (relayed), and the admin view lists the nodes.
//
//   node e2e/nodes.mjs <baseURL> <artifactDir> <adminToken> <cameraId> <ownerNode> <nodes> <deadNodes>
//
// baseURL is a node that does not pull camera <cameraId>; <ownerNode> is the
// node that does; <nodes> is every live node's id, comma separated,
// baseURL's first; <deadNodes> the ids of nodes killed (their beats lapsed).
// 1. An admin account is made with the bootstrap token (from this process);
//    signed in through the login overlay, the dashboard loads the cameras.
// 2. Admin → Nodes (节点) lists every live node alive, baseURL's marked
//    "this node" and no other, their last beats seconds ago; and each dead
//    node dead — a red badge "离线 dead", after the live ones
//    (nodes-admin.png).
// 3. The camera's card (clicked on the map) says it is pulled by <ownerNode>
//    (nodes-card.png); its Play opens the player on the main stream, whose
//    <video> plays: its currentTime advances a second and more, and pictures
//    are decoded, 640 wide (nodes-player.png). The picture comes from the
//    owner, through this node's relay.
// Any page error, console error, CSP violation, error banner or unexpected
// HTTP error fails the run. Prints one JSON line and exits 0, else prints
// "e2e: FAIL: …" and exits 1.
// Environment: CHROMIUM (default /usr/bin/chromium), E2E_TIMEOUT_MS (default 20000).

import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { bearerFetch, clickAt, launch, main, openPage, passed, pointAt, scriptArgs, signIn, timeoutMs, waitFor } from './common.mjs';

const usage = '<artifactDir> <adminToken> <cameraId> <ownerNode> <nodes> <deadNodes>';
const { base, args: [artifactDir, adminToken, cameraArg, owner, nodesArg, deadArg], started } = scriptArgs('nodes.mjs', usage, timeoutMs * 8 + 30000);
const cameraId = Number(cameraArg);
const nodeIds = nodesArg.split(',');
const deadIds = deadArg.split(',');
const self = nodeIds[0];

let browser;

/** api calls the service from this process with the bootstrap admin token. */
async function api(method, p, body) {
  const res = await bearerFetch(base, adminToken, method, p, body);
  if (!res.ok) throw new Error(`${method} ${p}: HTTP ${res.status} ${res.text.slice(0, 300)}`);
  return res.text ? JSON.parse(res.text) : null;
}

/** nodeRows is what the Nodes tab shows, one entry a row. */
function nodeRows(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('#nodes-table tbody tr[data-node-id]')].map((tr) => ({
      ...tr.dataset,
      self_mark: tr.querySelector('.kind[data-kind="self"]')?.textContent ?? '',
      badge: tr.cells[1].textContent.trim(),
      // The badge's dot: red (--danger) for a dead node.
      dot: getComputedStyle(tr.querySelector('.state'), '::before').backgroundColor,
      beat: tr.cells[6].textContent.trim(),
    })),
  );
}

/** videoInfo reads the player's <video>: its clock, decoded pictures and size. */
function videoInfo(page) {
  return page.evaluate(() => {
    const d = document.querySelector('#player-dialog');
    const v = d?.querySelector('video');
    return v ? { ...d.dataset, t: v.currentTime, frames: v.getVideoPlaybackQuality().totalVideoFrames, width: v.videoWidth, paused: v.paused, overlay: d.querySelector('.player-overlay')?.textContent ?? '' } : null;
  });
}

async function run() {
  await mkdir(artifactDir, { recursive: true });
  browser = await launch({ args: ['--autoplay-policy=no-user-gesture-required'] });

  // 1. An admin signs in on this node.
  const username = `e2e-admin-${randomBytes(3).toString('hex')}`;
  const password = `pw-${randomBytes(12).toString('hex')}`;
  await api('POST', '/api/v1/users', { username, display_name: 'e2e admin', role: 'admin', password, grid_codes: [] });
  const { page, watcher } = await openPage(browser, base);
  const resp = await page.goto(base.href, { waitUntil: 'domcontentloaded', timeout: timeoutMs });
  if (!resp || !resp.ok()) throw new Error(`GET ${base.href}: HTTP ${resp?.status()}`);
  await signIn(page, username, password);
  // No grids in this city: the map is drawn empty, then the cameras go on it.
  await waitFor(page, () => document.body.dataset.gridsLoaded !== undefined && Number(document.body.dataset.camerasLoaded) > 0, null, async () => `the camera layer (${JSON.stringify(await page.evaluate(() => ({ ...document.body.dataset })))})`);
  await watcher.check('after sign-in');

  // 2. Admin → Nodes: every node alive, this one marked.
  await page.click('#admin-btn');
  await waitFor(page, () => document.querySelector('#admin-dialog')?.matches(':modal'), null, 'the admin view');
  await page.click('#admin-tab-nodes');
  await waitFor(
    page,
    ([ids, deads, me]) => {
      if (document.querySelector('#admin-nodes').hidden) return false;
      const rows = [...document.querySelectorAll('#nodes-table tbody tr[data-node-id]')];
      const has = (id, state) => rows.some((tr) => tr.dataset.nodeId === id && tr.dataset.state === state && tr.dataset.self === String(id === me));
      return rows.length === ids.length + deads.length && ids.every((id) => has(id, 'alive')) && deads.every((id) => has(id, 'dead'));
    },
    [nodeIds, deadIds, self],
    async () => `the Nodes tab listing ${nodeIds.join(', ')} alive, ${self} as this node, ${deadIds.join(', ')} dead (status: ${await page.textContent('#admin-nodes .tab-status').catch(() => '?')}; rows: ${JSON.stringify(await nodeRows(page))})`,
  );
  const rows = await nodeRows(page);
  const marked = rows.filter((r) => r.self_mark).map((r) => r.nodeId);
  if (marked.length !== 1 || marked[0] !== self) throw new Error(`"this node" marks ${JSON.stringify(marked)}, want only ${self}`);
  const live = rows.filter((r) => r.state === 'alive');
  const stale = live.filter((r) => !/^\d+ s ago$/.test(r.beat));
  if (stale.length) throw new Error(`live nodes whose last beat does not read "N s ago": ${JSON.stringify(stale)}`);
  if (rows.findIndex((r) => r.state === 'dead') < live.length) throw new Error(`a dead node is listed before a live one: ${JSON.stringify(rows.map((r) => [r.nodeId, r.state]))}`);
  for (const r of rows.filter((r) => r.state === 'dead')) {
    if (r.badge !== '离线 dead' || r.dot !== 'rgb(248, 113, 113)' || r.self_mark) throw new Error(`dead node ${r.nodeId} is not marked so (red dot, "离线 dead"): ${JSON.stringify(r)}`);
  }
  if (live.some((r) => r.dot === 'rgb(248, 113, 113)')) throw new Error(`a live node has the dead node's red dot: ${JSON.stringify(live)}`);
  const nodesShot = path.join(artifactDir, 'nodes-admin.png');
  await page.screenshot({ path: nodesShot });
  await page.click('#admin-dialog .dialog-close');
  await waitFor(page, () => !document.querySelector('#admin-dialog').open, null, 'the admin view closed');
  await watcher.check('the Nodes tab');

  // 3. The camera another node pulls: its card names that node, and it plays here.
  const cam = await api('GET', `/api/v1/cameras/${cameraId}`);
  if (cam.node !== owner) throw new Error(`camera ${cam.code} is pulled by ${JSON.stringify(cam.node)} as ${self} sees it, want ${owner}`);
  const at = await pointAt(page, cam.location.coordinates, { cam: { layers: ['cam-point'], px: 4 } });
  if (!at.onCanvas || !at.near.cam) throw new Error(`camera ${cam.code} is not drawn where it is on the map: ${JSON.stringify(at)}`);
  await clickAt(page, at, 20);
  await waitFor(
    page,
    ([id, node]) => {
      const card = document.querySelector('#camera-card');
      const line = card?.querySelector('[data-field="cam-node"]');
      return card && !card.hidden && card.dataset.camera === String(id) && line && !line.hidden && line.dataset.node === node && line.textContent.includes(`pulled by ${node}`);
    },
    [cam.id, owner],
    async () => `the card of ${cam.code} saying it is pulled by ${owner} (card: ${await page.evaluate(() => document.querySelector('#camera-card')?.textContent.trim().replace(/\s+/g, ' ').slice(0, 300))})`,
  );
  const cardLine = (await page.textContent('#camera-card [data-field="cam-node"]')).trim();
  const cardShot = path.join(artifactDir, 'nodes-card.png');
  await page.screenshot({ path: cardShot });
  await page.click('#camera-card [data-field="cam-play"]');
  await waitFor(
    page,
    (id) => {
      const d = document.querySelector('#player-dialog');
      const v = d?.querySelector('video');
      return d?.open && d.dataset.camera === String(id) && v && v.currentTime > 0 && v.getVideoPlaybackQuality().totalVideoFrames > 0;
    },
    cam.id,
    async () => `the player on ${cam.code} showing a picture (${JSON.stringify(await videoInfo(page))})`,
  );
  const first = await videoInfo(page);
  // It goes on playing: a second and more of the camera's time, and its pictures.
  await waitFor(
    page,
    (a) => {
      const v = document.querySelector('#player-dialog video');
      return v.currentTime >= a.t + 1.5 && v.getVideoPlaybackQuality().totalVideoFrames >= a.frames + 20;
    },
    first,
    async () => `the player on ${cam.code} playing on (first ${JSON.stringify(first)}, now ${JSON.stringify(await videoInfo(page))})`,
  );
  const later = await videoInfo(page);
  if (later.width !== 640) throw new Error(`the player shows ${later.width} pixels wide, want the main stream's 640`);
  const playerShot = path.join(artifactDir, 'nodes-player.png');
  await page.screenshot({ path: playerShot });
  await page.click('#player-dialog .dialog-close');
  await waitFor(page, () => !document.querySelector('#player-dialog').open, null, 'the player closed');

  return passed(watcher.check, 'at the end', base, {
    self,
    nodes: rows.map((r) => ({ id: r.nodeId, state: r.state, badge: r.badge, self: r.self === 'true', beat: r.beat })),
    camera: { id: cam.id, code: cam.code, node: cam.node, card: cardLine },
    played: { engine: later.engine, from: first.t, to: later.t, frames: later.frames - first.frames, width: later.width },
    screenshots: [nodesShot, cardShot, playerShot],
    total_ms: Date.now() - started,
  });
}

await main(run, () => browser);
