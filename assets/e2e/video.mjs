// Browser test of live video, through the real service, in real time.
//
//   node e2e/video.mjs <baseURL> <artifactDir>
//
// The demo's six simulated cameras are pulled all the time (they record), so
// a viewer gets a picture from the server's cached group of pictures at once.
// 0. The page may play video: its Content-Security-Policy lets a <video> load
//    the blob: URL of a MediaSource (media-src, or default-src, with blob:),
//    and Chromium decodes H.264 in MSE (MediaSource.isTypeSupported). Either
//    missing fails the run with a message saying which.
// 1. As demo-operator (video.live): find a camera that is online through the
//    API (GET /api/v1/cameras), click its grid on the map; the panel's video
//    wall has its tile, and the tile's <video> plays: currentTime advances and
//    getVideoPlaybackQuality().totalVideoFrames grows over 2 s of real time,
//    320 pixels wide (sub stream), less than a second behind the live edge.
//    The time from the click to the first picture is printed (first_frame_ms).
// 2. Clicking the tile opens the larger player on the main stream (videoWidth
//    640), which plays (screenshot video-player.png); Esc closes it, focus is
//    back on the tile and the wall is still playing.
// 3. The camera card (from the grid's camera list) shows frame rate, bitrate
//    and uptime; its Play opens the same player; its close button closes it.
// 4. A camera registered in the same grid (admin token, from this process)
//    with an unreachable URL: the grid opened again shows its tile offline
//    with the reason, next to the camera that plays. Screenshot video-wall.png.
//    Pointed at a simulated camera it comes online: the camera.online event
//    (live stream) turns its point on the map green and its tile plays; pointed
//    back at nothing, camera.offline turns the point grey and the tile offline.
//    Closing the panel closes every video socket; the camera is then deleted.
// 5. demo-gis (no video.live, no cameras.read) opens the same grid: no wall,
//    no video socket.
// 6. The demo's H.265 dome (JS-H265-07, no sub stream) plays in its grid's
//    wall: where this Chromium cannot decode its hvc1 codec in MSE, the tile
//    falls back to the server's H.264 transcode (data-playing="h264", a badge
//    saying so); where it can, the camera's own stream.
// Any page error, console error, CSP violation, error banner or unexpected
// HTTP error fails the run. Prints one JSON line and exits 0, else prints
// "e2e: FAIL: …" and exits 1.
// Environment: CHROMIUM (default /usr/bin/chromium), E2E_TIMEOUT_MS (default
// 20000), GW_ADMIN_TOKEN (default test-admin-token-0123456789, what the Go
// test starts gridwatch with), GW_CAMSIM_USERINFO (default demo:demo-camera).
// GW_E2E_CSP_PATCH=1 is a diagnostic only: on a server whose policy does not
// allow blob: media yet, the browser ignores the page's CSP (bypassCSP), to
// check the player itself; the JSON line then says csp_bypassed: true.

import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { gridCandidates, gridFeatures, launch, signIn, timeoutMs, waitFor, waitGrids, main, scriptArgs, openPage, bearerFetch, openGrid, plays, tileInfo, holdAnswer } from './common.mjs';

const { base, args: [artifactDir], started } = scriptArgs('video.mjs', '<artifactDir>', timeoutMs * 10 + 30000);
const adminToken = process.env.GW_ADMIN_TOKEN || 'test-admin-token-0123456789';
const patchCSP = process.env.GW_E2E_CSP_PATCH === '1';
// The demo's simulated cameras ask for these credentials (cmd/gridwatch/serve.go).
const camsimUser = process.env.GW_CAMSIM_USERINFO || 'demo:demo-camera';

let browser;
let serverCSPOK = true;

/** api calls the service from this process with the bootstrap admin token. */
async function api(method, p, body) {
  const res = await bearerFetch(base, adminToken, method, p, body);
  const { text } = res;
  if (!res.ok) throw new Error(`${method} ${p}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : null;
}

/** directives parses a Content-Security-Policy header into {name: [sources]}. */
function directives(csp) {
  const out = {};
  for (const part of String(csp ?? '').split(';')) {
    const [name, ...sources] = part.trim().split(/\s+/);
    if (name) out[name.toLowerCase()] = sources;
  }
  return out;
}

/** cspAllowsBlobMedia reports whether a policy lets a <video> load a blob: URL. */
function cspAllowsBlobMedia(csp) {
  if (!csp) return true;
  const d = directives(csp);
  const media = d['media-src'] ?? d['default-src'];
  return !media || media.includes('blob:') || media.includes('*');
}

/** newPage opens a fresh context on the dashboard, watching for problems and video sockets. */
async function newPage() {
  // (A document answered by page.route would lose its loopback address and
  // Chromium's local-network checks would then refuse its WebSockets: the
  // diagnostic bypasses the policy instead of rewriting it.)
  const { context, page, watcher } = await openPage(browser, base, { bypassCSP: patchCSP && !serverCSPOK });
  // Every WebSocket to a camera's live stream, and whether it has closed.
  const sockets = [];
  page.on('websocket', (ws) => {
    if (!/\/api\/v1\/cameras\/\d+\/live/.test(ws.url())) return;
    const s = { url: ws.url(), closed: false };
    sockets.push(s);
    ws.on('close', () => {
      s.closed = true;
    });
  });
  const resp = await page.goto(base.href, { waitUntil: 'domcontentloaded', timeout: timeoutMs });
  if (!resp || !resp.ok()) throw new Error(`GET ${base.href}: HTTP ${resp?.status()}`);
  return { context, page, watcher, sockets };
}

async function waitSocketsClosed(sockets, what) {
  const until = Date.now() + timeoutMs;
  while (sockets.some((s) => !s.closed)) {
    if (Date.now() > until) throw new Error(`${what}: video sockets still open: ${sockets.filter((s) => !s.closed).map((s) => s.url).join(', ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function run() {
  await mkdir(artifactDir, { recursive: true });

  // 0. Can this page play video at all?
  const home = await fetch(base);
  const csp = home.headers.get('content-security-policy') ?? '';
  await home.arrayBuffer();
  const cspOK = cspAllowsBlobMedia(csp);
  serverCSPOK = cspOK;
  if (!cspOK && !patchCSP) {
    throw new Error(
      `the server's Content-Security-Policy does not let a <video> play a MediaSource (its blob: URL): "${csp}". ` +
        "MSE needs media-src 'self' blob: (api/server.go, contentSecurityPolicy). Chromium refuses the blob: URL even for a MediaSourceHandle (srcObject).",
    );
  }

  browser = await launch({ args: ['--autoplay-policy=no-user-gesture-required'] });
  const { context, page, watcher, sockets } = await newPage();
  const { problems, check } = watcher;
  // A camera that sends nothing (step 4's unreachable one) answers WebRTC
  // offers 503 at once; its tile falls back to MSE, which reports its state.
  watcher.expect('POST', /^\/api\/v1\/cameras\/\d+\/whep$/, 503);
  await signIn(page, 'demo-operator', 'gridwatch-operator');
  const gridsLoaded = await waitGrids(page, problems);

  // A camera that is online, and its grid.
  const listRes = await context.request.get(new URL('/api/v1/cameras?limit=1000', base).href);
  if (!listRes.ok()) throw new Error(`GET /api/v1/cameras as demo-operator: HTTP ${listRes.status()}`);
  const cameras = (await listRes.json()).cameras ?? [];
  const cam = cameras.find((c) => c.status === 'online' && c.grid?.level === 'grid');
  if (!cam) throw new Error(`no online camera in a grid among ${cameras.length}: ${JSON.stringify(cameras.map((c) => [c.code, c.status, c.grid?.code]))}`);
  const detailRes = await context.request.get(new URL(`/api/v1/cameras/${cam.id}`, base).href);
  const detail = await detailRes.json();
  const codecs = ['avc1.42c01e', 'avc1.4d401e', ...Object.values(detail.streams ?? {}).map((s) => s.codec).filter(Boolean)];
  const support = await page.evaluate((codecs) => (typeof MediaSource === 'function' ? Object.fromEntries(codecs.map((c) => [c, MediaSource.isTypeSupported(`video/mp4; codecs="${c}"`)])) : null), codecs);
  if (!support) throw new Error('this Chromium has no MediaSource (MSE): it cannot play the live streams');
  const unsupported = Object.entries(support).filter(([, ok]) => !ok).map(([c]) => c);
  if (unsupported.length) throw new Error(`this Chromium cannot decode H.264 in MSE (MediaSource.isTypeSupported false for ${unsupported.join(', ')}): a build without proprietary codecs?`);

  const features = await gridFeatures(page, base);
  const grid = gridCandidates(features).find((g) => g.id === Number(cam.grid.id));
  if (!grid) throw new Error(`camera ${cam.code}'s grid ${cam.grid.code} is not among the grid-level features`);
  await check('after load');

  // 1. The wall plays the camera: a picture soon, then 25 a second.
  const clickAt = await openGrid(page, grid);
  const tileSel = `#panel li.vtile[data-video-camera="${cam.id}"]`;
  await waitFor(
    page,
    (sel) => document.querySelector(sel)?.dataset.firstFrameAt !== undefined,
    tileSel,
    async () => `a first picture in the wall's tile of ${cam.code} (tile: ${JSON.stringify(await tileInfo(page, cam.id))}; ${problems.join('; ')})`,
  );
  const tile = await tileInfo(page, cam.id);
  const firstFrameMs = Math.round(tile.firstFrameAt - clickAt);
  const tileFirstFrameMs = Math.round(tile.firstFrameAt - tile.startedAt);
  const wallSize = await page.evaluate(() => document.querySelectorAll('#panel li.vtile').length);
  const wall = await plays(page, `${tileSel} video`, `the wall's tile of ${cam.code}`);
  if (wall.b.width !== 320) throw new Error(`the wall's tile plays ${wall.b.width}×${wall.b.height}, want the 320×180 sub stream`);
  if (!(wall.b.lag < 1.2)) throw new Error(`the wall's tile is ${wall.b.lag?.toFixed(2)} s behind its live edge, want < 1.2 s`);
  // Chromium has WebRTC: the tile plays over it (MSE is the fallback).
  if (wall.b.engine !== 'webrtc' || (await tileInfo(page, cam.id)).engine !== 'webrtc') throw new Error(`the wall's tile plays over ${wall.b.engine} (tile says ${(await tileInfo(page, cam.id)).engine}), want WebRTC`);
  const afterWall = await tileInfo(page, cam.id);
  if (afterWall.state !== 'playing' || afterWall.overlay) throw new Error(`the playing tile shows ${JSON.stringify(afterWall)}`);
  await check('the wall');

  // 2. Click the tile: the main stream in the larger player; Esc returns to the wall.
  await page.click(`${tileSel} .vtile-btn`);
  const dlg = '#player-dialog';
  await waitFor(
    page,
    ([sel, id]) => {
      const d = document.querySelector(sel);
      const v = d?.querySelector('video');
      return d?.open && d.dataset.camera === String(id) && d.dataset.stream === 'main' && v?.videoWidth === 640 && v.getVideoPlaybackQuality().totalVideoFrames > 0;
    },
    [dlg, cam.id],
    async () => `the player on ${cam.code}'s main stream (${await page.evaluate((sel) => {
      const d = document.querySelector(sel);
      return JSON.stringify({ open: d?.open, ...d?.dataset, width: d?.querySelector('video')?.videoWidth, overlay: d?.querySelector('.player-overlay')?.textContent });
    }, dlg)})`,
  );
  const mainPlay = await plays(page, `${dlg} video`, `the player on ${cam.code}`, 1500);
  const stats = await page.textContent(`${dlg} .player-stats`);
  const playerShot = path.join(artifactDir, 'video-player.png');
  await page.screenshot({ path: playerShot });
  if (!/640×360/.test(stats ?? '')) throw new Error(`the player's figures read ${JSON.stringify(stats)}`);
  await page.keyboard.press('Escape');
  await waitFor(page, (sel) => !document.querySelector(sel)?.open, dlg, 'the player closed by Esc');
  // The dialog's close event (which puts the focus back) comes a task after it closes.
  await waitFor(page, (id) => document.activeElement?.closest('li.vtile')?.dataset.videoCamera === String(id), cam.id, async () => `focus back on the tile after the player closed (it is on ${await page.evaluate(() => document.activeElement?.outerHTML.slice(0, 120))})`, 3000);
  if (await page.evaluate(() => document.querySelector('#panel').hidden)) throw new Error('Esc in the player closed the grid panel too');
  await plays(page, `${tileSel} video`, `the wall after the player closed`, 1000);

  // 3. The camera card: live figures, and Play.
  await page.click(`#panel [data-field="cams"] [data-camera-id="${cam.id}"]`);
  await waitFor(
    page,
    (id) => {
      const card = document.querySelector('#camera-card');
      const fps = card?.querySelector('[data-field="cam-fps"]')?.textContent ?? '';
      return card && !card.hidden && card.dataset.camera === String(id) && !card.querySelector('[data-field="cam-stream"]').hidden && /fps/.test(fps);
    },
    cam.id,
    async () => `the camera card of ${cam.code} with its frame rate (${await page.textContent('#camera-card').catch(() => '?')})`,
  );
  const card = await page.evaluate(() => {
    const t = (f) => document.querySelector(`#camera-card [data-field="${f}"]`)?.textContent.trim();
    return { fps: t('cam-fps'), bitrate: t('cam-bitrate'), uptime: t('cam-uptime'), video: t('cam-video'), wallTiles: document.querySelectorAll('#panel li.vtile').length };
  });
  if (!/bit\/s/.test(card.bitrate) || !/\d/.test(card.uptime)) throw new Error(`the camera card's figures: ${JSON.stringify(card)}`);
  if (card.wallTiles !== 0) throw new Error(`the wall still has ${card.wallTiles} tiles behind the camera card`);
  await page.click('#camera-card [data-field="cam-play"]');
  await waitFor(
    page,
    ([sel, id]) => {
      const d = document.querySelector(sel);
      return d?.open && d.dataset.camera === String(id) && d.querySelector('video')?.videoWidth === 640;
    },
    [dlg, cam.id],
    'the player opened by the card’s Play',
  );
  await page.click(`${dlg} .dialog-close`);
  await waitFor(page, (sel) => !document.querySelector(sel)?.open, dlg, 'the player closed by its close button');
  await waitSocketsClosed(sockets, 'after the card and its player');
  await check('the camera card');

  // 4. An unreachable camera in the same grid: its tile says offline, and why.
  const code = `E2E-OFF-${randomBytes(3).toString('hex')}`;
  const bad = await api('POST', '/api/v1/cameras', {
    code,
    name: 'e2e 离线摄像机 unreachable',
    location: { type: 'Point', coordinates: cam.location.coordinates },
    main_url: 'rtsp://127.0.0.1:9/none',
  });
  let deleted = false;
  try {
    if (Number(bad.grid?.id) !== grid.id) throw new Error(`camera ${code} was put in grid ${JSON.stringify(bad.grid)}, want ${grid.id}`);
    await page.keyboard.press('Escape'); // the card
    await waitFor(page, () => document.querySelector('#panel').hidden, null, 'the panel closed by Esc');
    await openGrid(page, grid);
    const badSel = `#panel li.vtile[data-video-camera="${bad.id}"]`;
    await waitFor(
      page,
      (sel) => {
        const li = document.querySelector(sel);
        const o = li?.querySelector('.vtile-overlay');
        return li?.dataset.state === 'offline' && o && !o.hidden && /Offline.* — \S/.test(o.textContent);
      },
      badSel,
      async () => `the tile of ${code} offline with a reason (tile: ${JSON.stringify(await tileInfo(page, bad.id))})`,
    );
    await waitFor(page, (sel) => document.querySelector(sel)?.dataset.state === 'playing', tileSel, async () => `${cam.code} playing again (tile: ${JSON.stringify(await tileInfo(page, cam.id))})`);
    await plays(page, `${tileSel} video`, `${cam.code} next to the offline camera`, 1000);
    const offline = await tileInfo(page, bad.id);
    await page.evaluate(() => new Promise((r) => window.gridwatchMap.once('idle', r) && window.gridwatchMap.triggerRepaint()));
    const shot = path.join(artifactDir, 'video-wall.png');
    await page.screenshot({ path: shot });
    await check('the offline tile');

    // The camera comes back: pointed at a simulated camera (the demo's camsim,
    // with its demo credentials) and recording, so that the server pulls it
    // whoever watches, it goes online; the camera.online event turns its point
    // on the map green (a camera the map did not hold yet: the map loads the
    // cameras again), and its tile plays.
    await page.evaluate(() => {
      // The status of a camera's point as the map has it (its GeoJSON source).
      window.__e2eMapStatus = (id) => {
        const f = window.gridwatchMap.querySourceFeatures('gw-cameras').find((f) => Number(f.properties.id) === id && f.properties.cone === false);
        return f ? f.properties.status : null;
      };
    });
    const good = new URL(detail.main_url ?? cam.main_url);
    [good.username, good.password] = camsimUser.split(':');
    // The map's load of the list after that event is read at once but held
    // back; meanwhile the camera fails again, and its camera.offline event
    // (a camera the map still does not hold) brings a second load, which
    // shows it grey. The held answer, read while it was online, comes last:
    // the map must not take it over the newer one.
    // Its URL changes under its tile below, more than once: the server ends
    // the tile's WebRTC session with the stream, and the tile's DELETE of it
    // may find it gone (404, as WHEP has it).
    watcher.expect('DELETE', new RegExp(`^/api/v1/cameras/${bad.id}/whep/[0-9a-f]+$`), 404);
    const list = await holdAnswer(page, /\/api\/v1\/cameras\?/, `the map's load of the cameras after ${code}'s camera.online`);
    let lateList;
    try {
      await api('PATCH', `/api/v1/cameras/${bad.id}`, { main_url: good.href, record: true });
      const { res } = await list.read();
      const seen = ((await res.json()).cameras ?? []).find((c) => c.id === bad.id);
      if (seen?.status !== 'online') throw new Error(`the held list has ${code} as ${JSON.stringify(seen?.status)}, want online`);
      await api('PATCH', `/api/v1/cameras/${bad.id}`, { main_url: 'rtsp://127.0.0.1:9/none' });
      await waitFor(
        page,
        (id) => window.__e2eMapStatus(id) === 'offline',
        bad.id,
        async () => `${code}'s point offline on the map, from the load after its camera.offline event (map: ${await page.evaluate((id) => window.__e2eMapStatus(id), bad.id)})`,
      );
      const answered = await page.evaluate(() => document.body.dataset.camerasAnswered);
      list.release();
      await waitFor(page, (n) => document.body.dataset.camerasAnswered !== n, answered, 'the map taking the held load of the cameras');
      // What the map's source was last given (the drawn features follow it a frame later).
      lateList = await page.evaluate(async (id) => {
        const data = await window.gridwatchMap.getSource('gw-cameras').getData();
        return data.features.find((f) => Number(f.properties.id) === id && f.properties.cone === false)?.properties.status ?? null;
      }, bad.id);
      if (lateList !== 'offline') throw new Error(`a load of the cameras read while ${code} was online, answered after a later load, turned its point ${lateList}`);
    } finally {
      await list.stop();
    }
    // Back online while the grid, opened again, reads its cameras: the
    // answer, read while the camera was offline, comes after its
    // camera.online event; the grid's list shows it online all the same.
    // And the point the map now holds turns green in place.
    await page.keyboard.press('Escape');
    await waitFor(page, () => document.querySelector('#panel').hidden, null, 'the panel closed by Esc');
    const gridCams = await holdAnswer(page, new RegExp(`/api/v1/grids/${grid.id}/cameras\\?`), `grid ${grid.code}'s list of cameras`);
    let t1;
    let lateDot;
    try {
      await openGrid(page, grid);
      const { res } = await gridCams.read();
      const seen = ((await res.json()).cameras ?? []).find((c) => c.id === bad.id);
      if (!seen || seen.status === 'online') throw new Error(`the held list of grid ${grid.code} has ${code} as ${JSON.stringify(seen?.status)}, want it listed, not online`);
      t1 = Date.now();
      await api('PATCH', `/api/v1/cameras/${bad.id}`, { main_url: good.href });
      await waitFor(
        page,
        (id) => window.__e2eMapStatus(id) === 'online',
        bad.id,
        async () => `${code}'s point online on the map after its camera.online event (map: ${await page.evaluate((id) => window.__e2eMapStatus(id), bad.id)}, live: ${await page.evaluate(() => document.body.dataset.live)}, tile: ${JSON.stringify(await tileInfo(page, bad.id))})`,
      );
      gridCams.release();
      const DOT = `#panel [data-field="cams"] [data-camera-id="${bad.id}"] .dot-cam`;
      await waitFor(page, (sel) => !!document.querySelector(sel), DOT, `${code} in grid ${grid.code}'s list of cameras`);
      lateDot = await page.evaluate((sel) => document.querySelector(sel).dataset.status, DOT);
      if (lateDot !== 'online') throw new Error(`grid ${grid.code}'s list of cameras, read while ${code} was offline and answered after its camera.online event, shows it ${lateDot}`);
    } finally {
      await gridCams.stop();
    }
    await waitFor(page, (sel) => document.querySelector(sel)?.dataset.state === 'playing', badSel, async () => `${code}'s tile playing once online (tile: ${JSON.stringify(await tileInfo(page, bad.id))})`);
    const backOnlineMs = Date.now() - t1;
    // … and goes again: the camera.offline event turns the point it now holds grey, in place.
    const t2 = Date.now();
    await api('PATCH', `/api/v1/cameras/${bad.id}`, { main_url: 'rtsp://127.0.0.1:9/none' });
    await waitFor(
      page,
      (id) => window.__e2eMapStatus(id) === 'offline',
      bad.id,
      async () => `${code}'s point offline on the map after its camera.offline event (map: ${await page.evaluate((id) => window.__e2eMapStatus(id), bad.id)}, tile: ${JSON.stringify(await tileInfo(page, bad.id))})`,
    );
    await waitFor(page, (sel) => document.querySelector(sel)?.dataset.state === 'offline', badSel, async () => `${code}'s tile offline again (tile: ${JSON.stringify(await tileInfo(page, bad.id))})`);
    const offlineAgainMs = Date.now() - t2;
    await check('camera events');

    // Closing the panel stops every tile; then the camera goes.
    await page.keyboard.press('Escape');
    await waitFor(page, () => document.querySelector('#panel').hidden, null, 'the panel closed by Esc');
    await waitSocketsClosed(sockets, 'after the panel closed');
    await api('DELETE', `/api/v1/cameras/${bad.id}`);
    deleted = true;
    await check('after the panel closed');
    await context.close();

    // 5. GIS staff have no video.live: no wall, no socket.
    const gis = await newPage();
    await signIn(gis.page, 'demo-gis', 'gridwatch-gis');
    await waitGrids(gis.page, gis.watcher.problems);
    await openGrid(gis.page, grid);
    await gis.page.waitForTimeout(1500); // time for a wall to appear, were there one
    const gisView = await gis.page.evaluate(() => ({
      wallHidden: document.querySelector('#panel [data-field="wall-section"]').hidden,
      tiles: document.querySelectorAll('#panel li.vtile').length,
      perms: document.body.dataset.role,
    }));
    if (!gisView.wallHidden || gisView.tiles !== 0 || gis.sockets.length !== 0) throw new Error(`demo-gis sees a video wall: ${JSON.stringify({ ...gisView, sockets: gis.sockets.length })}`);
    await gis.watcher.check('demo-gis');
    await gis.context.close();

    // 6. The H.265 dome (no sub stream): its tile plays. Where this Chromium
    //    cannot decode hvc1 in MSE the tile falls back to the server's H.264
    //    transcode and a badge says so; where it can, it plays the camera.
    const h5cam = cameras.find((c) => c.code === 'JS-H265-07');
    if (!h5cam?.grid) throw new Error(`no placed H.265 demo camera among ${JSON.stringify(cameras.map((c) => c.code))}`);
    const op2 = await newPage();
    await signIn(op2.page, 'demo-operator', 'gridwatch-operator');
    await waitGrids(op2.page, op2.watcher.problems);
    const h5detail = await (await op2.context.request.get(new URL(`/api/v1/cameras/${h5cam.id}`, base).href)).json();
    const hvc = h5detail.streams?.main?.codec ?? '';
    if (!/^hvc1\./.test(hvc)) throw new Error(`the H.265 camera's main stream reports codec ${JSON.stringify(hvc)}, want hvc1.…`);
    const canHEVC = await op2.page.evaluate((c) => MediaSource.isTypeSupported(`video/mp4; codecs="${c}"`), hvc);
    const h5grid = gridCandidates(features).find((g) => g.id === Number(h5cam.grid.id));
    await openGrid(op2.page, h5grid);
    const h5tile = `#panel li.vtile[data-video-camera="${h5cam.id}"]`;
    await waitFor(
      op2.page,
      (sel) => document.querySelector(sel)?.dataset.firstFrameAt !== undefined,
      h5tile,
      async () => `a first picture in the H.265 camera's tile (${JSON.stringify(await op2.page.evaluate((sel) => ({ ...document.querySelector(sel)?.dataset, overlay: document.querySelector(`${sel} .vtile-overlay`)?.textContent }), h5tile))})`,
      timeoutMs * 2,
    );
    const h5play = await plays(op2.page, `${h5tile} video`, "the H.265 camera's tile");
    const h5shown = await op2.page.evaluate((sel) => {
      const li = document.querySelector(sel);
      const via = li.querySelector('.vtile-via');
      return { playing: li.dataset.playing, via: via && !via.hidden ? via.textContent : '' };
    }, h5tile);
    if (canHEVC ? h5shown.playing !== 'sub' : h5shown.playing !== 'h264' || !/H\.264/.test(h5shown.via)) {
      throw new Error(`the H.265 camera's tile plays ${JSON.stringify(h5shown)} where this Chromium ${canHEVC ? 'decodes' : 'cannot decode'} ${hvc}`);
    }
    await op2.watcher.check('the H.265 camera');
    await op2.context.close();

    // 7. Sound. The wall is silent; a tile with sound offers it. The G.711
    //    camera's sound comes over WebRTC with its pictures: one click and it
    //    is heard (audio RTP arriving, the <video> unmuted). The AAC camera's
    //    sound cannot go over WebRTC: its tile offers it over MSE, and one
    //    click moves the tile there and plays it (audio decoded).
    const snd = await newPage();
    await signIn(snd.page, 'demo-operator', 'gridwatch-operator');
    await waitGrids(snd.page, snd.watcher.problems);
    const sound = {};
    for (const [code, how] of [['JS-CAM-02', 'webrtc'], ['JS-CAM-01', 'mse']]) {
      const c = cameras.find((x) => x.code === code);
      if (!c?.grid) throw new Error(`no placed demo camera ${code}`);
      await openGrid(snd.page, gridCandidates(features).find((g) => g.id === Number(c.grid.id)));
      const sel = `#panel li.vtile[data-video-camera="${c.id}"]`;
      const btn = `${sel} .vsound`;
      await waitFor(
        snd.page,
        (b) => {
          const e = document.querySelector(b);
          return e && !e.hidden;
        },
        btn,
        async () => `the sound switch on ${code}'s tile (${JSON.stringify(await snd.page.evaluate((s) => ({ ...document.querySelector(s)?.dataset, sound: document.querySelector(`${s} .vsound`)?.outerHTML }), sel))})`,
        timeoutMs * 2,
      );
      const before = await snd.page.evaluate((s) => ({ muted: document.querySelector(`${s} video`).muted, label: document.querySelector(`${s} .vsound`).getAttribute('aria-label'), elsewhere: document.querySelector(`${s} .vsound`).dataset.elsewhere }), sel);
      if (!before.muted) throw new Error(`${code}'s tile was not muted before its sound was asked for`);
      if ((before.elsewhere === 'true') !== (how === 'mse')) throw new Error(`${code}'s sound switch: ${JSON.stringify(before)}, want its sound ${how === 'mse' ? 'offered over MSE' : 'playing over WebRTC'}`);
      await snd.page.click(btn);
      // Heard: WebRTC counts the audio packets it receives; MSE the audio bytes it decodes.
      const heard = (s) =>
        snd.page.evaluate(async (s) => {
          const v = document.querySelector(`${s} video`);
          let rtp = 0;
          if (v.srcObject && v.rtcPeer) (await v.rtcPeer.getStats()).forEach((r) => r.type === 'inbound-rtp' && r.kind === 'audio' && (rtp = r.packetsReceived));
          return { muted: v.muted, engine: document.querySelector(s).dataset.engine, rtp, decoded: v.webkitAudioDecodedByteCount ?? 0, switchMuted: document.querySelector(`${s} .vsound`).dataset.muted };
        }, s);
      let first = null;
      const until = Date.now() + timeoutMs * 2;
      for (;;) {
        const h = await heard(sel);
        const n = how === 'webrtc' ? h.rtp : h.decoded;
        if (!h.muted && h.engine === how && h.switchMuted === 'false' && n > 0) {
          if (!first) first = { ...h, n };
          else if (n > first.n) {
            sound[code] = { engine: h.engine, [how === 'webrtc' ? 'audio_packets' : 'audio_bytes_decoded']: n };
            break;
          }
        }
        if (Date.now() > until) throw new Error(`${code}'s sound after its switch was clicked: ${JSON.stringify(h)}, want it heard over ${how}`);
        await snd.page.waitForTimeout(200); // polled: the counters have no event
      }
    }
    await snd.watcher.check('sound');
    await snd.context.close();

    return {
      ok: true,
      url: base.href,
      csp_allows_blob_media: cspOK,
      csp_bypassed: patchCSP && !cspOK,
      grids_loaded: gridsLoaded,
      camera: { id: cam.id, code: cam.code, grid: grid.code },
      wall_tiles: wallSize,
      first_frame_ms: firstFrameMs,
      tile_start_ms: Math.round(tile.startedAt - clickAt),
      tile_first_frame_ms: tileFirstFrameMs,
      wall: { engine: wall.b.engine, fps: wall.fps, advanced_s: wall.advanced_s, lag_s: +wall.b.lag.toFixed(3), size: `${wall.b.width}x${wall.b.height}`, dropped: wall.b.dropped },
      player: { engine: mainPlay.b.engine, fps: mainPlay.fps, advanced_s: mainPlay.advanced_s, lag_s: +(mainPlay.b.lag ?? NaN).toFixed(3), size: `${mainPlay.b.width}x${mainPlay.b.height}`, stats },
      card,
      offline_tile: offline.overlay,
      events: { back_online_ms: backOnlineMs, offline_again_ms: offlineAgainMs },
      sockets: sockets.length,
      h265: { codec: hvc, browser_decodes: canHEVC, tile: h5shown, fps: h5play.fps, size: `${h5play.b.width}x${h5play.b.height}` },
      sound,
      screenshot: shot,
      player_screenshot: playerShot,
      total_ms: Date.now() - started,
    };
  } finally {
    if (!deleted) await api('DELETE', `/api/v1/cameras/${bad.id}`).catch(() => {});
  }
}

await main(run, () => browser);
