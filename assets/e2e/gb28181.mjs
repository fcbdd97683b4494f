// Browser test of GB/T 28181 devices, through the real service and the demo's
// simulated NVR (real SIP on loopback: 32010600001180000001 "演示 NVR", five
// channels, four with a position — cameras, the first a PTZ dome — and one
// without, 32010600001310000005).
//
//   node e2e/gb28181.mjs <baseURL> <artifactDir>
//
// 1. As demo-admin: Admin → 国标设备 GB/T 28181 lists the NVR online, its
//    keepalive seconds or minutes ago, 5 channels / 4 cameras / 1 unplaced /
//    0 gone (gb-devices.png).
// 2. Its detail: five channels, the dome's PTZ type, four camera links and
//    the fifth marked unplaced with Place. 同步目录 Sync catalog shows the
//    counts the device answered (5 channels, 1 unplaced); 查询状态 Query
//    status shows its answer (ONLINE, OK). Its password set again (the one it
//    registers with, so it stays registered): has_password shows, the API
//    never returns the password, the audit log holds the change.
// 3. Place: Pick on map steps the admin view aside; a click on the map fills
//    the position in and the view comes back. Coordinates typed over it (an
//    interior point of another grid of the demo city) place the channel: the
//    card of the new camera shows on the map (its code the channel's ID, in
//    that grid, "国标通道 GB/T 28181 channel" naming the NVR) (gb-placed.png);
//    the admin view opened again shows the channel as that camera, and the
//    list 5 / 5 / 0.
// 4. Provision device: a new ID with a password and GCJ-02 is listed, never
//    registered, with its own password; asking it for its catalog or status
//    shows the server's refusal (409 or 503) and its message; its detail
//    shows its datum; "use the platform's password" clears has_password and
//    leaves the datum alone.
// 5. The dome's camera link shows its card; the card's device link opens the
//    admin view on the NVR. Play: the live player plays the channel
//    (currentTime advances a second and more, pictures decoded); the PTZ pad
//    offers numbered presets and no Home; preset 3 is saved
//    (gb-player.png).
// 6. Playback: the footage view has the "设备录像 On device" lane, drawing
//    what the demo NVR holds (the last day in hourly files, and the one it is
//    still recording), each hourly file as the API lists it (gb-footage.png).
// 7. Play from device: a click a quarter into the recording of 3 h ago
//    selects from there to its end; "Play from device" plays it in the
//    player area (gridwatch's own player out of sight): the <video>'s
//    currentTime advances and the device time shown is the range's start
//    (gb-device-playback.png). Pause: the picture and the device's stream
//    stand still (no fragment for 2 s), the state says paused; resume: it
//    plays on from there. The slider half-way: the device time shown jumps
//    there. 2×: the state says scale 2 and the device time runs about twice
//    the clock's. Close: the server was told (GET …/device-playbacks/{id} is
//    404 through the page's session) and gridwatch's player is back.
// 8. Fetch: 20 s of that recording typed into the range's times and fetched
//    (as the admin: cameras.write); the progress ends done; the fetch's
//    state through the API, gridwatch's recordings through the API and
//    gridwatch's lane in the view all cover those 20 s (gb-fetch.png).
// 9. The video wall: a fixed channel's grid opened on the map, its tile
//    plays (currentTime advances, pictures decoded) like any camera's
//    (gb-wall.png).
// Any page error, console error, error banner or unexpected HTTP error
// fails the run. Prints one JSON line and exits 0, else "e2e: FAIL: …" and 1.
// Environment: CHROMIUM, E2E_TIMEOUT_MS, GW_ADMIN_TOKEN (default
// test-admin-token-0123456789, what the Go test starts gridwatch with).

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { bearerFetch, clickAt, gridCandidates, gridFeatures, launch, main, openGrid, openPage, passed, plays, pointAt, scriptArgs, signIn, tileInfo, timeoutMs, waitFor, waitGrids } from './common.mjs';

const { base, args: [artifactDir], started } = scriptArgs('gb28181.mjs', '<artifactDir>', timeoutMs * 24 + 60000);
const adminToken = process.env.GW_ADMIN_TOKEN || 'test-admin-token-0123456789';
// The demo's simulated NVR (cmd/gridwatch/gb28181.go).
const NVR = '32010600001180000001';
const NVR_PASSWORD = 'demo-nvr';
const UNPLACED = '32010600001310000005';
const DOME = '32010600001310000001';
const PROVISIONED = '32010600001180000099';

let browser;

async function api(method, p, body) {
  const res = await bearerFetch(base, adminToken, method, p, body);
  return { status: res.status, body: res.text ? JSON.parse(res.text) : null, text: res.text };
}

async function apiOK(method, p, body) {
  const r = await api(method, p, body);
  if (r.status < 200 || r.status > 299) throw new Error(`${method} ${p}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
  return r.body;
}

/** deviceRows is what the devices table shows, one entry a row. */
function deviceRows(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('#gb-devices-table tbody tr[data-device-id]')].map((tr) => ({ ...tr.dataset, cells: [...tr.cells].map((td) => td.textContent.trim()) })),
  );
}

/** channelRows is what the device's channel table shows. */
function channelRows(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('#gb-channels-table tbody tr[data-channel-id]')].map((tr) => ({
      ...tr.dataset,
      cells: [...tr.cells].map((td) => td.textContent.trim()),
      place: !!tr.querySelector('[data-action="place"]'),
      link: !!tr.querySelector('[data-action="camera"]'),
    })),
  );
}

function gbState(page) {
  return page.evaluate(() => {
    const d = document.querySelector('#gb-device');
    const r = d?.querySelector('.gb-result');
    return {
      tab: document.querySelector('#admin-dialog')?.dataset.tab,
      open: document.querySelector('#admin-dialog')?.open,
      status: document.querySelector('#admin-gb .tab-status')?.textContent,
      detail: d && !d.hidden ? { ...d.dataset } : null,
      result: r && !r.hidden ? { ...r.dataset, text: r.textContent } : null,
      errors: [...document.querySelectorAll('#admin-gb .form-error:not([hidden])')].map((e) => e.textContent),
    };
  });
}

/** waitRow waits for the devices table to show device id as want(row dataset) says. */
async function waitRow(page, id, want, what) {
  await waitFor(
    page,
    ([id, want]) => {
      if (document.querySelector('#admin-gb')?.hidden) return false;
      const tr = document.querySelector(`#gb-devices-table tr[data-device-id="${id}"]`);
      return !!tr && Object.entries(want).every(([k, v]) => tr.dataset[k] === v);
    },
    [id, want],
    async () => `${what} (rows: ${JSON.stringify(await deviceRows(page))}; ${JSON.stringify(await gbState(page))})`,
  );
}

/** openAdminGB opens the admin view (on the GB/T 28181 tab, clicking it if need be). */
async function openAdminGB(page) {
  await page.click('#admin-btn');
  await waitFor(page, () => document.querySelector('#admin-dialog')?.matches(':modal'), null, 'the admin view');
  if ((await page.evaluate(() => document.querySelector('#admin-dialog').dataset.tab)) !== 'gb') await page.click('#admin-tab-gb');
  await waitFor(page, () => !document.querySelector('#admin-gb').hidden, null, 'the GB/T 28181 tab');
}

async function closeAdmin(page) {
  await page.click('#admin-dialog .dialog-close');
  await waitFor(page, () => !document.querySelector('#admin-dialog').open, null, 'the admin view closed');
}

/** result waits for the detail's result line of kind to settle (ok or error) and returns it. */
async function result(page, kind) {
  await waitFor(
    page,
    (kind) => {
      const r = document.querySelector('#gb-device .gb-result');
      return r && !r.hidden && r.dataset.kind === kind && ['ok', 'partial', 'error'].includes(r.dataset.state);
    },
    kind,
    async () => `the answer to ${kind} (${JSON.stringify(await gbState(page))})`,
  );
  return page.evaluate(() => {
    const r = document.querySelector('#gb-device .gb-result');
    return { ...r.dataset, text: r.textContent };
  });
}

/** waitCard waits for the camera card of camera id, with its GB/T 28181 line naming device. */
async function waitCard(page, id, device) {
  await waitFor(
    page,
    ([id, device]) => {
      const card = document.querySelector('#camera-card');
      const line = card?.querySelector('[data-field="cam-gb"]');
      return card && !card.hidden && card.dataset.camera === String(id) && line && !line.hidden && line.dataset.device === device;
    },
    [id, device],
    async () => `the card of camera ${id} as a channel of ${device} (card: ${await page.evaluate(() => document.querySelector('#camera-card')?.textContent.trim().replace(/\s+/g, ' ').slice(0, 300))})`,
  );
  return page.evaluate(() => {
    const t = (f) => document.querySelector(`#camera-card [data-field="${f}"]`)?.textContent.trim();
    const line = document.querySelector('#camera-card [data-field="cam-gb"]');
    return { code: t('cam-code'), name: t('cam-name'), grid: t('cam-grid'), gb: line.textContent.trim(), channel: line.dataset.channel, linked: line.querySelector('[data-field="cam-gb-device"]')?.tagName === 'BUTTON' };
  });
}

function videoInfo(page) {
  return page.evaluate(() => {
    const d = document.querySelector('#player-dialog');
    const v = d?.querySelector('video');
    return v ? { ...d.dataset, t: v.currentTime, frames: v.getVideoPlaybackQuality().totalVideoFrames, width: v.videoWidth, height: v.videoHeight, overlay: d.querySelector('.player-overlay')?.textContent ?? '' } : null;
  });
}

/** isoS is ms as the API writes times: ISO without milliseconds. */
const isoS = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** covers reports whether ranges ([from, to] ms, recordings less than 2 s apart joined) cover [a, b]. */
function covers(ranges, a, b) {
  let at = a;
  for (const [from, to] of ranges.sort((x, y) => x[0] - y[0])) {
    if (from > at + 2000) break;
    at = Math.max(at, to);
  }
  return at >= b;
}

/** laneInfo is what the footage view's device lane shows. */
function laneInfo(page) {
  return page.evaluate(() => {
    const l = document.querySelector('#footage-dialog .tl-device');
    if (!l) return null;
    return {
      ...l.dataset,
      hidden: l.hidden,
      label: l.querySelector('.tl-device-label')?.textContent,
      note: l.querySelector('.tl-device-note')?.textContent,
      ranges: [...l.querySelectorAll('.tl-dev')].map((s) => ({ from: s.dataset.from, to: s.dataset.to })),
      message: document.querySelector('#footage-dialog .footage-message')?.dataset.kind,
    };
  });
}

/** devSel is the range selected on the device lane, as its form shows it. */
function devSel(page) {
  return page.evaluate(() => {
    const b = document.querySelector('#footage-dialog .footage-devsel');
    return { ...b.dataset, hidden: b.hidden, text: b.querySelector('.sel-range')?.textContent, fetchHidden: b.querySelector('.devsel-fetch').hidden, error: b.querySelector('.form-error:not([hidden])')?.textContent };
  });
}

/** devPlayInfo is the device playback as the footage view shows it. */
function devPlayInfo(page) {
  return page.evaluate(() => {
    const d = document.querySelector('#footage-dialog');
    const bar = d?.querySelector('.devplay');
    const v = d?.querySelector('video.devplay-video');
    if (!bar || !v) return null;
    return {
      ...bar.dataset,
      mode: d.dataset.mode,
      time: bar.querySelector('.devplay-time')?.dataset.time,
      shown: bar.querySelector('.devplay-time')?.textContent,
      max: bar.querySelector('.devplay-seek')?.max,
      note: bar.querySelector('.devplay-note')?.textContent,
      message: d.querySelector('.devplay-message:not([hidden])')?.textContent,
      t: v.currentTime,
      rate: v.playbackRate,
      frames: v.getVideoPlaybackQuality().totalVideoFrames,
      width: v.videoWidth,
      height: v.videoHeight,
    };
  });
}

/** pageGet is GET p through the page's own session: {status, body}. */
function pageGet(page, p) {
  return page.evaluate(async (p) => {
    const res = await fetch(p, { headers: { Accept: 'application/json' } });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }, p);
}

async function run() {
  await mkdir(artifactDir, { recursive: true });
  browser = await launch({ args: ['--autoplay-policy=no-user-gesture-required'] });
  const out = {};
  const { page, watcher } = await openPage(browser, base);
  const resp = await page.goto(base.href, { waitUntil: 'domcontentloaded', timeout: timeoutMs });
  if (!resp?.ok()) throw new Error(`GET ${base.href}: HTTP ${resp?.status()}`);
  await signIn(page, 'demo-admin', 'gridwatch-admin');
  await waitGrids(page, watcher.problems);
  await waitFor(page, () => Number(document.body.dataset.camerasLoaded) > 0, null, 'the camera layer');
  await watcher.check('after sign-in');

  // ---- 1. The devices ---------------------------------------------------------------
  await openAdminGB(page);
  await waitRow(page, NVR, { online: 'true', channels: '5', cameras: '4', unplaced: '1', gone: '0' }, 'the demo NVR online with 5 channels, 4 cameras, 1 unplaced');
  const nvrRow = (await deviceRows(page)).find((r) => r.deviceId === NVR);
  const [nameCell, stateCell, , addressCell, , keepaliveCell] = nvrRow.cells;
  if (!nameCell.includes('演示 NVR') || !stateCell.includes('在线 online') || !/UDP|TCP/.test(addressCell) || !/^\d+ (s|min) ago$/.test(keepaliveCell)) {
    throw new Error(`the NVR's row reads ${JSON.stringify(nvrRow)}`);
  }
  out.device_row = nvrRow.cells.slice(0, 10);
  await page.screenshot({ path: path.join(artifactDir, 'gb-devices.png') });

  // ---- 2. Its detail: channels, catalog, status, password --------------------------------
  await page.click(`#gb-devices-table tr[data-device-id="${NVR}"] [data-action="open"]`);
  await waitFor(
    page,
    (id) => {
      const d = document.querySelector('#gb-device');
      return d && !d.hidden && d.dataset.deviceId === id && d.dataset.online === 'true' && document.querySelectorAll('#gb-channels-table tr[data-channel-id]').length === 5;
    },
    NVR,
    async () => `the NVR's detail with 5 channels (${JSON.stringify(await gbState(page))}; ${JSON.stringify(await channelRows(page))})`,
  );
  const chans = await channelRows(page);
  const unplaced = chans.find((c) => c.channelId === UNPLACED);
  if (!unplaced || unplaced.unplaced !== 'true' || !unplaced.place || unplaced.cameraId) throw new Error(`channel ${UNPLACED}: ${JSON.stringify(unplaced)}`);
  const cams = chans.filter((c) => c.cameraId);
  if (cams.length !== 4 || cams.some((c) => !c.link || c.unplaced !== 'false' || c.place)) throw new Error(`the channels that are cameras: ${JSON.stringify(chans)}`);
  const dome = chans.find((c) => c.channelId === DOME);
  if (!dome?.cells[3].includes('dome')) throw new Error(`the dome's PTZ type: ${JSON.stringify(dome)}`);

  await page.click('#gb-device [data-action="sync"]');
  const sync = await result(page, 'sync');
  if (sync.state !== 'ok' || sync.channels !== '5' || sync.unplaced !== '1' || !/Catalog read/.test(sync.text)) throw new Error(`sync catalog: ${JSON.stringify(sync)}`);
  out.sync = sync.text;
  await page.click('#gb-device [data-action="status"]');
  const st = await result(page, 'status');
  if (st.state !== 'ok' || st.online !== 'ONLINE' || st.result !== 'OK' || !/ONLINE/.test(st.text)) throw new Error(`query status: ${JSON.stringify(st)}`);
  out.status = st.text;
  await page.screenshot({ path: path.join(artifactDir, 'gb-device.png') });

  await page.fill('#gb-device-form [name="password"]', NVR_PASSWORD);
  await page.click('#gb-device-form button[type="submit"]');
  await waitFor(page, () => /已保存 Saved/.test(document.querySelector('#admin-gb .tab-status')?.textContent ?? ''), null, async () => `the password saved (${JSON.stringify(await gbState(page))})`);
  const pw = await page.evaluate(() => ({ field: document.querySelector('#gb-device-form [name="password"]').value, has: document.querySelector('#gb-device').dataset.hasPassword, help: document.querySelector('#gb-device .gb-has-password')?.textContent }));
  if (pw.field !== '' || pw.has !== 'true' || !/has its own password/.test(pw.help)) throw new Error(`after setting the password: ${JSON.stringify(pw)}`);
  const dev = await api('GET', `/api/v1/gb28181/devices/${NVR}`);
  if (!dev.body?.device?.has_password || dev.text.includes(NVR_PASSWORD)) throw new Error(`the NVR through the API: ${dev.text.slice(0, 400)}`);
  const trail = await apiOK('GET', `/api/v1/audit?action=gb28181.device.configure&limit=20`);
  if (!(trail.entries ?? []).some((e) => e.target_id === NVR && e.actor?.name === 'demo-admin' && e.summary?.password_changed === true)) throw new Error(`the audit log lacks the password change: ${JSON.stringify(trail.entries)}`);
  await watcher.check('the device detail');

  // ---- 3. Place the unplaced channel ----------------------------------------------------
  const grids = gridCandidates(await gridFeatures(page, base));
  if (grids.length < 2) throw new Error(`only ${grids.length} grids to place in`);
  const [picked, typed] = [grids[0], grids[grids.length - 1]];
  await page.click(`#gb-channels-table tr[data-channel-id="${UNPLACED}"] [data-action="place"]`);
  await waitFor(page, (id) => !document.querySelector('#gb-place-form').hidden && document.querySelector('#gb-place-form').dataset.channelId === id, UNPLACED, 'the place form');
  // Pick on map: the view steps aside, a click on the map comes back as the position.
  await page.click('#gb-place-form [data-action="pick"]');
  await waitFor(page, () => !document.querySelector('#admin-dialog').open && document.body.dataset.mapPick === 'true' && !!document.querySelector('.map-pick-hint'), null, 'the map waiting for a click');
  const at = await pointAt(page, [picked.lon, picked.lat]);
  if (!at.onCanvas) throw new Error(`the map is not where the point is: ${JSON.stringify(at)}`);
  await clickAt(page, at, 10);
  await waitFor(
    page,
    () => document.querySelector('#admin-dialog').open && !document.querySelector('#gb-place-form').hidden && document.querySelector('#gb-place-form [name="lon"]').value !== '' && document.body.dataset.mapPick === undefined,
    null,
    async () => `the admin view back with the picked position (${JSON.stringify(await gbState(page))})`,
  );
  const filled = await page.evaluate(() => ({ lon: Number(document.querySelector('#gb-place-form [name="lon"]').value), lat: Number(document.querySelector('#gb-place-form [name="lat"]').value), crs: document.querySelector('#gb-place-form [name="crs"]').value }));
  if (Math.abs(filled.lon - picked.lon) > 1e-4 || Math.abs(filled.lat - picked.lat) > 1e-4 || filled.crs !== 'wgs84') throw new Error(`picked ${JSON.stringify(filled)}, clicked at ${picked.lon}, ${picked.lat}`);
  out.picked = filled;
  // Typed over: another grid's interior point.
  await page.fill('#gb-place-form [name="lon"]', typed.lon.toFixed(6));
  await page.fill('#gb-place-form [name="lat"]', typed.lat.toFixed(6));
  await page.click('#gb-place-form button[type="submit"]');
  await waitFor(page, () => !document.querySelector('#admin-dialog').open, null, async () => `the admin view closed after placing (${JSON.stringify(await gbState(page))})`);
  const placedCh = (await apiOK('GET', `/api/v1/gb28181/devices/${NVR}`)).channels.find((c) => c.id === UNPLACED);
  if (!placedCh?.camera_id || placedCh.unplaced) throw new Error(`channel ${UNPLACED} after placing: ${JSON.stringify(placedCh)}`);
  const placedCard = await waitCard(page, placedCh.camera_id, NVR);
  if (placedCard.code !== UNPLACED || placedCard.channel !== UNPLACED || !placedCard.grid.includes(typed.name) || !/GB\/T 28181 channel/.test(placedCard.gb) || !placedCard.gb.includes(NVR)) {
    throw new Error(`the placed camera's card: ${JSON.stringify(placedCard)} (want grid ${typed.name})`);
  }
  const placedCam = await apiOK('GET', `/api/v1/cameras/${placedCh.camera_id}`);
  if (placedCam.main_url !== `gb28181://${NVR}/${UNPLACED}` || placedCam.grid?.code !== typed.code) throw new Error(`the placed camera: ${JSON.stringify({ main_url: placedCam.main_url, grid: placedCam.grid })}`);
  out.placed = { camera: placedCh.camera_id, grid: typed.code, card: placedCard.gb };
  await page.screenshot({ path: path.join(artifactDir, 'gb-placed.png') });

  // The admin view opened again: the channel is that camera; the list counts it.
  await openAdminGB(page);
  await waitFor(
    page,
    ([ch, cam]) => {
      const tr = document.querySelector(`#gb-channels-table tr[data-channel-id="${ch}"]`);
      return !document.querySelector('#gb-device').hidden && tr?.dataset.unplaced === 'false' && tr.dataset.cameraId === String(cam) && !tr.querySelector('[data-action="place"]') && !!tr.querySelector('[data-action="camera"]');
    },
    [UNPLACED, placedCh.camera_id],
    async () => `the channel shown as camera ${placedCh.camera_id} (${JSON.stringify(await channelRows(page))})`,
  );
  await page.click('#gb-back');
  await waitRow(page, NVR, { online: 'true', channels: '5', cameras: '5', unplaced: '0', gone: '0' }, 'the NVR with 5 cameras, none unplaced');
  await watcher.check('placing');

  // ---- 4. Provision a device that has not registered -------------------------------------
  await page.click('#gb-provision');
  await page.fill('#gb-provision-form [name="id"]', PROVISIONED);
  await page.fill('#gb-provision-form [name="password"]', 'provisioned-secret');
  await page.selectOption('#gb-provision-form [name="crs"]', 'gcj02');
  await page.click('#gb-provision-form button[type="submit"]');
  await waitRow(page, PROVISIONED, { online: 'false', hasPassword: 'true', crs: 'gcj02', channels: '0' }, 'the provisioned device listed');
  const provRow = (await deviceRows(page)).find((r) => r.deviceId === PROVISIONED);
  if (!provRow.cells[1].includes('未注册 never registered')) throw new Error(`the provisioned device's state: ${JSON.stringify(provRow)}`);
  const rows = await deviceRows(page);
  if (rows[0].deviceId !== NVR) throw new Error(`online devices first: ${JSON.stringify(rows.map((r) => r.deviceId))}`);
  // Asking a device that is not registered: refused (409, or 503 as the
  // first API had it), the server's message shown.
  const refusedSync = await api('POST', `/api/v1/gb28181/devices/${PROVISIONED}/catalog`, {});
  const refusedStatus = await api('GET', `/api/v1/gb28181/devices/${PROVISIONED}/status`);
  const refusal = (r) => [409, 503].includes(r.status) && typeof r.body?.error?.message === 'string';
  if (!refusal(refusedSync) || !refusal(refusedStatus)) throw new Error(`an unregistered device asked: catalog ${refusedSync.status} ${refusedSync.text}, status ${refusedStatus.status} ${refusedStatus.text}`);
  watcher.expect('POST', new RegExp(`^/api/v1/gb28181/devices/${PROVISIONED}/catalog$`), refusedSync.status);
  watcher.expect('GET', new RegExp(`^/api/v1/gb28181/devices/${PROVISIONED}/status$`), refusedStatus.status);
  await page.click(`#gb-devices-table tr[data-device-id="${PROVISIONED}"] [data-action="open"]`);
  await waitFor(page, (id) => document.querySelector('#gb-device')?.dataset.deviceId === id && !document.querySelector('#gb-device').hidden && document.querySelector('#gb-channels-table tbody tr.empty-row'), PROVISIONED, 'the provisioned device\'s detail, without channels');
  await page.click('#gb-device [data-action="sync"]');
  const syncErr = await result(page, 'sync');
  if (syncErr.state !== 'error' || !syncErr.text.includes(refusedSync.body.error.message)) throw new Error(`sync of an unregistered device shows ${JSON.stringify(syncErr)}, want the server's "${refusedSync.body.error.message}"`);
  await page.click('#gb-device [data-action="status"]');
  const stErr = await result(page, 'status');
  if (stErr.state !== 'error' || !stErr.text.includes(refusedStatus.body.error.message)) throw new Error(`status of an unregistered device shows ${JSON.stringify(stErr)}`);
  out.refused = syncErr.text;
  const crsShown = await page.inputValue('#gb-device-form [name="crs"]');
  if (crsShown !== 'gcj02') throw new Error(`the provisioned device's datum shows as ${crsShown}, want gcj02`);
  await page.check('#gb-device-form [name="platform"]');
  await page.click('#gb-device-form button[type="submit"]');
  await waitFor(page, () => document.querySelector('#gb-device').dataset.hasPassword === 'false', null, async () => `has_password cleared (${JSON.stringify(await gbState(page))})`);
  const cleared = (await apiOK('GET', `/api/v1/gb28181/devices/${PROVISIONED}`)).device;
  if (cleared.has_password || cleared.crs !== 'gcj02') throw new Error(`the provisioned device after "use the platform's password": ${JSON.stringify(cleared)}`);
  await page.click('#gb-back');
  await waitRow(page, PROVISIONED, { hasPassword: 'false' }, 'the provisioned device without its own password');
  await watcher.check('provisioning');

  // ---- 5. The dome: card ↔ device, live video, PTZ ----------------------------------------
  await page.click(`#gb-devices-table tr[data-device-id="${NVR}"] [data-action="open"]`);
  await waitFor(page, (ch) => !!document.querySelector(`#gb-channels-table tr[data-channel-id="${ch}"] [data-action="camera"]`), DOME, 'the dome\'s camera link');
  const domeCam = Number(await page.getAttribute(`#gb-channels-table tr[data-channel-id="${DOME}"]`, 'data-camera-id'));
  await page.click(`#gb-channels-table tr[data-channel-id="${DOME}"] [data-action="camera"]`);
  await waitFor(page, () => !document.querySelector('#admin-dialog').open, null, 'the admin view closed for the camera');
  const domeCard = await waitCard(page, domeCam, NVR);
  if (domeCard.code !== DOME || !domeCard.linked) throw new Error(`the dome's card: ${JSON.stringify(domeCard)}`);
  await page.click('#camera-card [data-field="cam-gb-device"]');
  await waitFor(page, (id) => document.querySelector('#admin-dialog')?.open && document.querySelector('#admin-dialog').dataset.tab === 'gb' && document.querySelector('#gb-device')?.dataset.deviceId === id && !document.querySelector('#gb-device').hidden && document.querySelectorAll('#gb-channels-table tr[data-channel-id]').length === 5, NVR, async () => `the card's device link opening the NVR (${JSON.stringify(await gbState(page))})`);
  await closeAdmin(page);

  await page.click('#camera-card [data-field="cam-play"]');
  await waitFor(
    page,
    (id) => {
      const d = document.querySelector('#player-dialog');
      const v = d?.querySelector('video');
      return d?.open && d.dataset.camera === String(id) && v && v.currentTime > 0 && v.getVideoPlaybackQuality().totalVideoFrames > 0;
    },
    domeCam,
    async () => `the player on the dome showing a picture (${JSON.stringify(await videoInfo(page))})`,
  );
  const first = await videoInfo(page);
  await waitFor(
    page,
    (a) => {
      const v = document.querySelector('#player-dialog video');
      return v.currentTime >= a.t + 1.5 && v.getVideoPlaybackQuality().totalVideoFrames >= a.frames + 20;
    },
    first,
    async () => `the dome playing on (first ${JSON.stringify(first)}, now ${JSON.stringify(await videoInfo(page))})`,
  );
  const later = await videoInfo(page);
  if (!(later.width > 0)) throw new Error(`the player decodes no picture: ${JSON.stringify(later)}`);
  out.played = { engine: later.engine, from: first.t, to: later.t, frames: later.frames - first.frames, size: `${later.width}×${later.height}` };
  await waitFor(page, () => {
    const p = document.querySelector('#player-dialog .ptz');
    return p && !p.hidden && p.dataset.presets === 'numbered' && p.dataset.state === 'ready';
  }, null, async () => `the PTZ pad for the dome (${await page.evaluate(() => JSON.stringify({ ...document.querySelector('#player-dialog .ptz')?.dataset }))})`);
  if (await page.isVisible('#player-dialog [data-field="ptz-home"]')) throw new Error('the GB/T 28181 dome is offered Home');
  await page.fill('#player-dialog [data-field="ptz-name"]', '3');
  await page.click('#player-dialog [data-field="ptz-save"]');
  await waitFor(page, () => /Preset saved: 3/.test(document.querySelector('#player-dialog [data-field="ptz-message"]')?.textContent ?? ''), null, async () => `preset 3 saved (${await page.textContent('#player-dialog [data-field="ptz-message"]')})`);
  await page.screenshot({ path: path.join(artifactDir, 'gb-player.png') });
  await page.click('#player-dialog .dialog-close');
  await waitFor(page, () => !document.querySelector('#player-dialog').open, null, 'the player closed');
  await watcher.check('live video');

  // ---- 6. Its footage: the device's own recordings in their lane -----------------------------
  await page.click('#camera-card [data-field="cam-footage"]');
  await waitFor(
    page,
    (id) => {
      const d = document.querySelector('#footage-dialog');
      const lane = d?.querySelector('.tl-device');
      return d?.open && d.dataset.camera === String(id) && lane && !lane.hidden && ['ok', 'empty', 'error'].includes(lane.dataset.state);
    },
    domeCam,
    async () => `the footage view with the device's lane (${JSON.stringify(await laneInfo(page))})`,
  );
  const lane = await laneInfo(page);
  const now = Date.now();
  const held = (await apiOK('GET', `/api/v1/cameras/${domeCam}/device-recordings?from=${new Date(now - 86400e3).toISOString()}&to=${new Date(now).toISOString()}`)).recordings ?? [];
  // The demo NVR holds the last day in hourly files and one it is still recording.
  const hourly = held.filter((r) => Date.parse(r.to) - Date.parse(r.from) === 3600e3 && Date.parse(r.to) <= now);
  if (lane.label !== '设备录像 On device' || lane.state !== 'ok' || hourly.length < 20) throw new Error(`the device lane: ${JSON.stringify(lane)} (the device holds ${held.length}, ${hourly.length} hourly)`);
  const drawnSet = new Set(lane.ranges.map((r) => `${r.from}/${r.to}`));
  const undrawn = hourly.filter((r) => Date.parse(r.from) > now - 86000e3 && !drawnSet.has(`${isoS(Date.parse(r.from))}/${isoS(Date.parse(r.to))}`));
  if (undrawn.length) throw new Error(`the lane does not draw ${JSON.stringify(undrawn.slice(0, 3))} (drawn: ${JSON.stringify(lane.ranges.slice(0, 5))}…)`);
  if (lane.message === 'error') throw new Error(`the footage view shows an error: ${await page.textContent('#footage-dialog .footage-message')}`);
  out.device_lane = { state: lane.state, count: lane.count, drawn: lane.ranges.length, note: lane.note };
  await page.screenshot({ path: path.join(artifactDir, 'gb-footage.png') });
  await watcher.check('the device lane');

  // ---- 7. Play from device: pause, resume, seek, speed, close --------------------------------
  // A recording of three hours ago, clicked a quarter into it: from there to its end.
  const rec = hourly.find((r) => Date.parse(r.from) <= now - 3 * 3600e3 && Date.parse(r.to) > now - 3 * 3600e3);
  if (!rec) throw new Error(`no recording of 3 h ago among ${JSON.stringify(hourly.map((r) => r.from))}`);
  const recFrom = Date.parse(rec.from);
  const recTo = Date.parse(rec.to);
  const seg = await page.evaluate((from) => {
    const s = document.querySelector(`#footage-dialog .tl-dev[data-from="${from}"]`);
    const r = s?.getBoundingClientRect();
    return r ? { x: r.left + r.width * 0.25, y: r.top + r.height / 2, width: r.width } : null;
  }, isoS(recFrom));
  if (!seg || seg.width < 20) throw new Error(`the recording ${rec.from} on the lane: ${JSON.stringify(seg)}`);
  await page.mouse.click(seg.x, seg.y);
  await waitFor(page, () => !document.querySelector('#footage-dialog .footage-devsel').hidden, null, 'the range selected on the device');
  const sel = await devSel(page);
  // A quarter in (a pixel is 90 s of the 24-hour view): 15 min after its start, to its end.
  if (sel.to !== isoS(recTo) || Math.abs(Date.parse(sel.from) - (recFrom + 900e3)) > 180e3 || sel.fetchHidden) throw new Error(`the range selected: ${JSON.stringify(sel)} (the recording ${rec.from} – ${rec.to})`);
  out.device_selected = [sel.from, sel.to];

  await page.click('#footage-dialog .devsel-play');
  await waitFor(
    page,
    () => {
      const d = document.querySelector('#footage-dialog');
      const bar = d.querySelector('.devplay');
      const v = d.querySelector('video.devplay-video');
      return d.dataset.mode === 'device' && bar.dataset.state === 'playing' && !!bar.dataset.playback && v.currentTime > 0 && v.getVideoPlaybackQuality().totalVideoFrames > 0;
    },
    null,
    async () => `the device playing (${JSON.stringify(await devPlayInfo(page))})`,
  );
  const pbId = (await devPlayInfo(page)).playback;
  // The player area is the device's: gridwatch's own player is out of sight, idle.
  const area = await page.evaluate(() => {
    const d = document.querySelector('#footage-dialog');
    return { main: getComputedStyle(d.querySelector('video:not(.devplay-video)')).display, device: getComputedStyle(d.querySelector('video.devplay-video')).display, state: d.dataset.state };
  });
  if (area.main !== 'none' || area.device === 'none' || area.state !== 'idle') throw new Error(`the player area while the device plays: ${JSON.stringify(area)}`);
  const p0 = await devPlayInfo(page);
  await waitFor(page, (a) => document.querySelector('#footage-dialog video.devplay-video').currentTime >= a.t + 1.5, p0, async () => `the device playback playing on (first ${JSON.stringify(p0)}, now ${JSON.stringify(await devPlayInfo(page))})`);
  const p1 = await devPlayInfo(page);
  const selFrom = Date.parse(sel.from);
  if (!(Date.parse(p1.time) >= selFrom && Date.parse(p1.time) < selFrom + 120e3) || p1.from !== sel.from || p1.to !== sel.to) throw new Error(`the device time shown: ${JSON.stringify(p1)} (the range ${sel.from} – ${sel.to})`);
  out.device_played = { playback: pbId, from: p0.t, to: p1.t, time: p1.time, size: `${p1.width}×${p1.height}` };
  await page.screenshot({ path: path.join(artifactDir, 'gb-device-playback.png') });

  // Pause: the picture stands still and the device stops sending.
  await page.click('#footage-dialog .devplay-pause[data-action="pause"]');
  await waitFor(page, () => {
    const bar = document.querySelector('#footage-dialog .devplay');
    return bar.dataset.state === 'paused' && bar.dataset.paused === 'true';
  }, null, async () => `paused (${JSON.stringify(await devPlayInfo(page))})`);
  await page.evaluate(() => {
    window.__still = null;
  });
  await waitFor(
    page,
    () => {
      const v = document.querySelector('#footage-dialog video.devplay-video');
      const n = document.querySelector('#footage-dialog .devplay').dataset.fragments;
      const now = performance.now();
      const w = window.__still;
      if (!w || w.t !== v.currentTime || w.n !== n) {
        window.__still = { t: v.currentTime, n, at: now };
        return false;
      }
      return now - w.at >= 2000;
    },
    null,
    async () => `the picture and the device still while paused (${JSON.stringify(await devPlayInfo(page))})`,
  );
  const paused = await devPlayInfo(page);
  const pausedState = await pageGet(page, `/api/v1/device-playbacks/${pbId}`);
  if (pausedState.status !== 200 || pausedState.body.paused !== true) throw new Error(`the playback while paused: ${JSON.stringify(pausedState)}`);

  // Resume: it plays on from there (the device did not run on meanwhile).
  await page.click('#footage-dialog .devplay-pause[data-action="resume"]');
  await waitFor(
    page,
    (a) => {
      const bar = document.querySelector('#footage-dialog .devplay');
      return bar.dataset.paused === 'false' && bar.dataset.state === 'playing' && document.querySelector('#footage-dialog video.devplay-video').currentTime >= a.t + 1;
    },
    paused,
    async () => `playing on after resume (paused ${JSON.stringify(paused)}, now ${JSON.stringify(await devPlayInfo(page))})`,
  );
  const resumed = await devPlayInfo(page);
  if (Date.parse(resumed.time) - Date.parse(paused.time) > 10e3) throw new Error(`after resume the device time ran on from ${paused.time} to ${resumed.time}`);

  // Seek half-way: the device time shown jumps there, and plays on.
  const seekAt = Math.round(Number(resumed.max) / 2);
  await page.fill('#footage-dialog .devplay-seek', String(seekAt));
  const target = selFrom + seekAt * 1000;
  await waitFor(
    page,
    ([target, t]) => {
      const time = Date.parse(document.querySelector('#footage-dialog .devplay-time').dataset.time);
      return Math.abs(time - target) < 20e3 && document.querySelector('#footage-dialog video.devplay-video').currentTime > t + 1;
    },
    [target, resumed.t],
    async () => `the device time at ${new Date(target).toISOString()} after the seek to ${seekAt} s (${JSON.stringify(await devPlayInfo(page))})`,
  );
  const sought = await devPlayInfo(page);
  out.device_seek = { at: seekAt, time: sought.time, want: new Date(target).toISOString() };

  // 2×: the device says scale 2, and its time runs twice as fast as the clock.
  await page.click('#footage-dialog .devplay-speed[data-scale="2"]');
  await waitFor(page, () => {
    const bar = document.querySelector('#footage-dialog .devplay');
    return bar.dataset.scale === '2' && bar.querySelector('.devplay-speed[data-scale="2"]').getAttribute('aria-pressed') === 'true';
  }, null, async () => `speed 2× (${JSON.stringify(await devPlayInfo(page))})`);
  const fast = await pageGet(page, `/api/v1/device-playbacks/${pbId}`);
  if (fast.status !== 200 || fast.body.scale !== 2 || fast.body.paused) throw new Error(`the playback at 2×: ${JSON.stringify(fast)}`);
  const f0 = { ...(await devPlayInfo(page)), wall: Date.now() };
  await waitFor(page, (a) => Date.parse(document.querySelector('#footage-dialog .devplay-time').dataset.time) >= Date.parse(a.time) + 6000, f0, async () => `the device time running on at 2× (from ${JSON.stringify(f0)}, now ${JSON.stringify(await devPlayInfo(page))})`);
  const f1 = { ...(await devPlayInfo(page)), wall: Date.now() };
  const rate = (Date.parse(f1.time) - Date.parse(f0.time)) / (f1.wall - f0.wall);
  if (rate < 1.3) throw new Error(`at 2× the device time ran ${rate.toFixed(2)}× the clock (${JSON.stringify([f0, f1])})`);
  out.device_speed = { scale: fast.body.scale, rate: Number(rate.toFixed(2)) };

  // Close: the playback is gone on the server, gridwatch's player is back.
  watcher.expect('GET', /^\/api\/v1\/device-playbacks\/[0-9a-f]+$/, 404);
  await page.click('#footage-dialog .devplay-close');
  await waitFor(page, (id) => {
    const d = document.querySelector('#footage-dialog');
    return d.dataset.devicePlaybackClosed === id && d.dataset.mode === undefined && d.querySelector('.devplay').hidden;
  }, pbId, async () => `the device playback closed (${JSON.stringify(await devPlayInfo(page))})`);
  const gone = await pageGet(page, `/api/v1/device-playbacks/${pbId}`);
  if (gone.status !== 404) throw new Error(`the playback after close: ${JSON.stringify(gone)}`);
  const back = await page.evaluate(() => getComputedStyle(document.querySelector('#footage-dialog video:not(.devplay-video)')).display);
  if (back === 'none') throw new Error("gridwatch's footage player did not come back");
  await watcher.check('playing from the device');

  // ---- 8. Fetch 20 s of it into gridwatch's footage (an admin: cameras.write) -------------------
  const fFrom = recFrom + 600e3;
  const fTo = fFrom + 20e3;
  const [fromInput, toInput] = await page.evaluate(([a, b]) => {
    const p = (n) => String(n).padStart(2, '0');
    const local = (ms) => {
      const d = new Date(ms);
      return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
    };
    return [local(a), local(b)];
  }, [fFrom, fTo]);
  await page.fill('#footage-dialog .footage-devsel input[name="from"]', fromInput);
  await page.fill('#footage-dialog .footage-devsel input[name="to"]', toInput);
  await waitFor(page, ([a, b]) => {
    const box = document.querySelector('#footage-dialog .footage-devsel');
    return box.dataset.from === a && box.dataset.to === b;
  }, [isoS(fFrom), isoS(fTo)], async () => `the 20 s range typed (${JSON.stringify(await devSel(page))})`);
  const have = await apiOK('GET', `/api/v1/cameras/${domeCam}/recordings?from=${isoS(fFrom)}&to=${isoS(fTo)}`);
  if ((have.recordings ?? []).length) throw new Error(`gridwatch holds footage of ${isoS(fFrom)} already: ${JSON.stringify(have.recordings)}`);
  await page.click('#footage-dialog .devsel-fetch');
  await waitFor(
    page,
    () => ['done', 'empty', 'error'].includes(document.querySelector('#footage-dialog .devsel-status')?.dataset.state),
    null,
    async () => `the fetch done (${await page.evaluate(() => JSON.stringify({ ...document.querySelector('#footage-dialog .devsel-status')?.dataset, text: document.querySelector('#footage-dialog .devsel-status')?.textContent }))})`,
    timeoutMs * 2,
  );
  const fetched = await page.evaluate(() => {
    const s = document.querySelector('#footage-dialog .devsel-status');
    return { ...s.dataset, text: s.textContent };
  });
  if (fetched.state !== 'done' || fetched.from !== isoS(fFrom) || fetched.to !== isoS(fTo) || !/Fetched into gridwatch/.test(fetched.text)) throw new Error(`the fetch: ${JSON.stringify(fetched)}`);
  const fetch = await apiOK('GET', `/api/v1/cameras/${domeCam}/device-fetch`);
  if (fetch.running || fetch.error || (fetch.ranges ?? []).length !== 1) throw new Error(`the fetch through the API: ${JSON.stringify(fetch)}`);
  // gridwatch's footage covers the range now: through the API …
  const recs = ((await apiOK('GET', `/api/v1/cameras/${domeCam}/recordings?from=${isoS(fFrom - 5e3)}&to=${isoS(fTo + 5e3)}`)).recordings ?? []).filter((r) => r.status === 'ok');
  const covered = covers(recs.map((r) => [Date.parse(r.from), Date.parse(r.to)]), fFrom + 1500, fTo - 1500);
  if (!covered) throw new Error(`gridwatch's recordings after the fetch of ${isoS(fFrom)} – ${isoS(fTo)}: ${JSON.stringify(recs.map((r) => [r.from, r.to]))} (the fetch: ${JSON.stringify(fetch)})`);
  // … and in its lane.
  await waitFor(
    page,
    ([a, b]) => [...document.querySelectorAll('#footage-dialog .tl-rec')].some((r) => Date.parse(r.dataset.from) <= a && Date.parse(r.dataset.to) >= b),
    [fFrom + 1500, fTo - 1500],
    async () => `gridwatch's lane covering ${isoS(fFrom)} – ${isoS(fTo)} (${await page.evaluate(() => JSON.stringify([...document.querySelectorAll('#footage-dialog .tl-rec')].map((r) => [r.dataset.from, r.dataset.to])))})`,
  );
  out.fetched = { range: [isoS(fFrom), isoS(fTo)], recordings: recs.map((r) => [r.from, r.to]), text: fetched.text };
  await page.screenshot({ path: path.join(artifactDir, 'gb-fetch.png') });
  await page.keyboard.press('Escape');
  await waitFor(page, () => !document.querySelector('#footage-dialog').open, null, 'the footage view closed');

  // ---- 9. The video wall of a channel's grid ----------------------------------------------
  // A fixed channel (not the dome the player had): its grid's wall has its
  // tile, and the tile plays, as every other camera's does.
  const allCams = (await apiOK('GET', '/api/v1/cameras?limit=1000')).cameras ?? [];
  const wallCam = allCams.find((c) => c.main_url?.startsWith('gb28181://') && c.id !== domeCam && c.grid?.level === 'grid');
  if (!wallCam) throw new Error(`no GB/T 28181 camera in a grid besides the dome: ${JSON.stringify(allCams.map((c) => [c.code, c.main_url, c.grid?.code]))}`);
  const wallGrid = gridCandidates(await gridFeatures(page, base)).find((g) => g.id === Number(wallCam.grid.id));
  if (!wallGrid) throw new Error(`camera ${wallCam.code}'s grid ${wallCam.grid.code} is not among the grid-level features`);
  await openGrid(page, wallGrid);
  const tileSel = `#panel li.vtile[data-video-camera="${wallCam.id}"]`;
  await waitFor(
    page,
    (sel) => document.querySelector(sel)?.dataset.firstFrameAt !== undefined,
    tileSel,
    async () => `a first picture in the wall's tile of ${wallCam.code} (tile: ${JSON.stringify(await tileInfo(page, wallCam.id))})`,
    timeoutMs * 2,
  );
  const wall = await plays(page, `${tileSel} video`, `the wall's tile of GB/T 28181 camera ${wallCam.code}`);
  out.wall = { camera: wallCam.code, grid: wallGrid.code, engine: wall.b.engine, fps: wall.fps, size: `${wall.b.width}×${wall.b.height}` };
  await page.screenshot({ path: path.join(artifactDir, 'gb-wall.png') });

  return passed(watcher.check, 'at the end', base, { ms: Date.now() - started, ...out, screenshots: ['gb-devices.png', 'gb-device.png', 'gb-placed.png', 'gb-player.png', 'gb-footage.png', 'gb-device-playback.png', 'gb-fetch.png', 'gb-wall.png'].map((n) => path.join(artifactDir, n)) });
}

await main(run, () => browser);
