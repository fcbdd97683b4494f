// Browser test of cameras over ONVIF, through the real service and the
// demo's simulated ONVIF devices (real SOAP, real WS-Discovery on loopback).
//
//   node e2e/ptz.mjs <baseURL> <artifactDir>
//
// 1. As demo-operator: Add camera → Search the network lists the simulated
//    devices, the unregistered ones first with Use and the demo's dome
//    (JS-H265-07) last, marked registered. Use fills the address; Probe with a
//    wrong password marks the password field with the server's message;
//    with the right one the device shows (maker, serial) and its profiles
//    fill the main/sub choices. Add registers the camera: the toast, the
//    camera card with the ONVIF device row; through the API the camera has
//    the device's streams and its password nowhere.
// 2. The card's Play opens the player with the PTZ pad: holding → moves
//    the simulated head right (the pad's position follows), letting go stops
//    it (dragging on the picture to the left, later, turns it back left); the pad says the operator steers; someone else (the admin token,
//    from this process) is refused with a 409 naming demo-operator; a preset
//    saved by name is listed; Home goes back to 0, the preset returns.
//    Screenshot ptz-player.png.
// 3. Closing the player lets go: the API shows nobody steering. The camera
//    is deleted. The audit log holds the operator's commands.
// Any page error, console error, error banner or unexpected HTTP error fails
// the run. Prints one JSON line and exits 0, else "e2e: FAIL: …" and 1.

import path from 'node:path';
import { launch, main, openPage, passed, scriptArgs, signIn, timeoutMs, waitFor, waitGrids, bearerFetch } from './common.mjs';

const { base, args: [artifactDir], started } = scriptArgs('ptz.mjs', '<artifactDir>', timeoutMs * 12 + 30000);
const adminToken = process.env.GW_ADMIN_TOKEN || 'test-admin-token-0123456789';
// The demo's simulated ONVIF devices' account (internal/domain DemoONVIFAccount).
const deviceUser = 'demo';
const devicePassword = 'demo-camera';

let browser;

async function api(method, p, body) {
  const res = await bearerFetch(base, adminToken, method, p, body);
  return { status: res.status, body: res.text ? JSON.parse(res.text) : null, text: res.text };
}

const pad = (page) =>
  page.evaluate(() => {
    const p = document.querySelector('#player-dialog .ptz');
    const pos = p?.querySelector('[data-field="ptz-position"]');
    return {
      shown: !!p && !p.hidden,
      state: p?.dataset.state,
      controller: p?.dataset.controller,
      who: p?.querySelector('[data-field="ptz-who"]')?.textContent,
      pan: Number(pos?.dataset.pan ?? NaN),
      moving: pos?.dataset.moving === 'true',
      presets: [...(p?.querySelectorAll('.ptz-preset') ?? [])].map((b) => b.textContent),
      message: p?.querySelector('[data-field="ptz-message"]')?.textContent,
    };
  });

async function run() {
  browser = await launch();
  const out = {};
  const { page, watcher } = await openPage(browser, base);
  const resp = await page.goto(base.href, { waitUntil: 'domcontentloaded', timeout: timeoutMs });
  if (!resp?.ok()) throw new Error(`GET ${base.href}: HTTP ${resp?.status()}`);
  await signIn(page, 'demo-operator', 'gridwatch-operator');
  await waitGrids(page, watcher.problems);

  // ---- 1. Add a camera found on the network ----------------------------------------
  await page.click('#camera-add-btn');
  await waitFor(page, () => document.querySelector('#camera-add-dialog')?.open, null, 'the Add camera dialog');
  await page.click('#camera-add-dialog [data-field="discover"]');
  await waitFor(page, () => document.querySelectorAll('#camera-add-dialog .cam-add-item').length >= 2, null, async () => `discovered devices (${await page.textContent('#camera-add-dialog [data-field="discovered"]')})`);
  const found = await page.$$eval('#camera-add-dialog .cam-add-item', (li) => li.map((x) => ({ url: x.dataset.url, registered: x.dataset.registered === 'true', text: x.textContent })));
  const registered = found.filter((f) => f.registered);
  if (registered.length !== 1 || !found[found.length - 1].registered || !/JS-H265-07/.test(registered[0].text)) throw new Error(`discovered: ${JSON.stringify(found)}`);
  out.discovered = found.length;
  const use = found.find((f) => !f.registered).url;
  await page.click(`#camera-add-dialog [data-use="${use}"]`);
  if ((await page.inputValue('#camera-add-dialog [name="onvif.url"]')) !== use) throw new Error('Use did not fill the address');

  watcher.expect('POST', /^\/api\/v1\/onvif\/probe$/, 400);
  await page.fill('#camera-add-dialog [name="onvif.username"]', deviceUser);
  await page.fill('#camera-add-dialog [name="onvif.password"]', 'wrong-password');
  await page.click('#camera-add-dialog [data-field="probe"]');
  await waitFor(page, () => document.querySelector('#camera-add-dialog [name="onvif.password"]')?.getAttribute('aria-invalid') === 'true', null, 'the password marked wrong');
  const refused = await page.textContent('#camera-add-dialog .form-error');
  if (!/refused the user name or password/.test(refused)) throw new Error(`wrong password: ${refused}`);
  if (!(await page.isDisabled('#camera-add-dialog [data-field="submit"]'))) throw new Error('Add is offered without a probe');

  await page.fill('#camera-add-dialog [name="onvif.password"]', devicePassword);
  await page.click('#camera-add-dialog [data-field="probe"]');
  await waitFor(page, () => !document.querySelector('#camera-add-dialog [data-field="device"]').hidden, null, async () => `the probed device (${await page.textContent('#camera-add-dialog .form-error')})`);
  const device = await page.textContent('#camera-add-dialog [data-field="device"]');
  if (!/Gridwatch/.test(device) || !/CAMSIM-/.test(device) || !/PTZ/.test(device)) throw new Error(`device: ${device}`);
  const chosen = { main: await page.inputValue('#camera-add-dialog [name="onvif.main_profile"]'), sub: await page.inputValue('#camera-add-dialog [name="onvif.sub_profile"]') };
  if (chosen.main !== 'main' || chosen.sub !== 'sub') throw new Error(`profiles chosen: ${JSON.stringify(chosen)}`);
  const code = `ONVIF-E2E-${Date.now() % 100000}`;
  await page.fill('#camera-add-dialog [name="code"]', code);
  await page.fill('#camera-add-dialog [name="name"]', '东门球机 e2e');
  await page.click('#camera-add-dialog [data-field="submit"]');
  await waitFor(page, () => document.querySelector('.toast[data-camera-added]') && !document.querySelector('#camera-add-dialog').open, null, async () => `the camera added (${await page.textContent('#camera-add-dialog .form-error')})`);
  const list = await api('GET', '/api/v1/cameras?limit=1000');
  const camId = Number((list.body?.cameras ?? []).find((c) => c.code === code)?.id);
  if (!(camId > 0)) throw new Error(`the camera ${code} is not registered: ${list.text.slice(0, 300)}`);
  await waitFor(page, (id) => document.querySelector('#camera-card')?.dataset.camera === String(id) && !document.querySelector('#camera-card').hidden && !document.querySelector('#camera-card [data-field="cam-device-row"]').hidden, camId, 'the new camera\'s card with its device');
  out.card_device = await page.textContent('#camera-card [data-field="cam-device"]');
  if (!/CAMSIM-/.test(out.card_device)) throw new Error(`card device: ${out.card_device}`);
  const cam = await api('GET', `/api/v1/cameras/${camId}`);
  if (cam.status !== 200 || cam.body.onvif?.url !== use || !cam.body.has_credentials || !/\/cam\/\d+\/main$/.test(cam.body.main_url) || cam.text.includes(devicePassword)) {
    throw new Error(`the camera through the API: ${cam.text}`);
  }

  // The map's hover over the new camera shows its latest picture once it is online.
  const at = cam.body.location.coordinates;
  for (let i = 0, deadline = Date.now() + timeoutMs; ; i++) {
    const pt = await page.evaluate((at) => {
      const map = window.gridwatchMap;
      const r = map.getContainer().getBoundingClientRect();
      const p = map.project(at);
      return { x: r.left + p.x, y: r.top + p.y };
    }, at);
    await page.mouse.move(pt.x + (i % 2), pt.y);
    const tip = await page.evaluate(() => {
      const t = document.querySelector('.hover-tip');
      const img = t?.querySelector('img.tip-snap');
      return { code: t && !t.hidden ? t.querySelector('.tip-code')?.textContent : '', loaded: !!img && img.complete && img.naturalWidth > 0, width: img?.naturalWidth ?? 0 };
    });
    if (tip.code === code && tip.loaded) {
      out.tip_snapshot_width = tip.width;
      break;
    }
    if (Date.now() > deadline) throw new Error(`the hover over the camera: ${JSON.stringify(tip)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  await page.mouse.move(5, 300);

  // ---- 2. Steer it -------------------------------------------------------------------
  await page.click('#camera-card [data-field="cam-play"]');
  await waitFor(page, () => document.querySelector('#player-dialog')?.open, null, 'the player');
  await waitFor(page, () => {
    const p = document.querySelector('#player-dialog .ptz');
    return p && !p.hidden && p.dataset.state === 'ready' && p.querySelector('[data-field="ptz-position"]')?.dataset.pan !== undefined;
  }, null, async () => `the PTZ pad (${JSON.stringify(await pad(page))})`);
  const right = await page.$('#player-dialog .ptz [data-dir="right"]');
  const box = await right.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await waitFor(page, () => Number(document.querySelector('#player-dialog [data-field="ptz-position"]')?.dataset.pan) > 0.05, null, async () => `the head moving right while held (${JSON.stringify(await pad(page))})`);
  await page.mouse.up();
  await waitFor(page, () => document.querySelector('#player-dialog [data-field="ptz-position"]')?.dataset.moving === 'false' && document.querySelector('#player-dialog .ptz')?.dataset.controller === 'you', null, async () => `stopped on letting go (${JSON.stringify(await pad(page))})`);
  const held = await pad(page);
  if (!/You are steering/.test(held.who)) throw new Error(`who: ${held.who}`);
  out.pan_after_hold = held.pan;

  // Someone else is refused while the operator steers, and told who.
  const other = await api('POST', `/api/v1/cameras/${camId}/ptz`, { op: 'move', pan: -1 });
  if (other.status !== 409 || !/demo-operator/.test(other.text)) throw new Error(`another actor: ${other.status} ${other.text}`);

  await page.fill('#player-dialog [data-field="ptz-name"]', '东门 gate');
  await page.click('#player-dialog [data-field="ptz-save"]');
  await waitFor(page, () => [...document.querySelectorAll('#player-dialog .ptz-preset')].some((b) => b.textContent === '东门 gate'), null, async () => `the preset listed (${JSON.stringify(await pad(page))})`);
  await page.click('#player-dialog [data-field="ptz-home"]');
  await waitFor(page, () => Number(document.querySelector('#player-dialog [data-field="ptz-position"]')?.dataset.pan) === 0, null, async () => `home (${JSON.stringify(await pad(page))})`);
  await page.click('#player-dialog .ptz-preset');
  await waitFor(page, (pan) => Number(document.querySelector('#player-dialog [data-field="ptz-position"]')?.dataset.pan) === pan, held.pan, async () => `back at the preset (${JSON.stringify(await pad(page))})`);
  await page.screenshot({ path: path.join(artifactDir, 'ptz-player.png') });
  // Dragging on the picture steers too: left of where it was pressed turns the head left.
  const stage = await (await page.$('#player-dialog .player-stage')).boundingBox();
  const cx = stage.x + stage.width / 2;
  const cy = stage.y + stage.height / 2;
  await page.mouse.move(cx, cy);
  await page.mouse.down();
  await page.mouse.move(cx - stage.width / 4, cy, { steps: 5 });
  await waitFor(page, (pan) => Number(document.querySelector('#player-dialog [data-field="ptz-position"]')?.dataset.pan) < pan - 0.05, held.pan, async () => `the head turning left while dragged (${JSON.stringify(await pad(page))})`);
  await page.mouse.up();
  await waitFor(page, () => document.querySelector('#player-dialog [data-field="ptz-position"]')?.dataset.moving === 'false', null, async () => `stopped after the drag (${JSON.stringify(await pad(page))})`);

  // ---- 3. Closing lets go -----------------------------------------------------------
  await page.keyboard.press('Escape');
  await waitFor(page, () => !document.querySelector('#player-dialog')?.open, null, 'the player closed');
  for (const deadline = Date.now() + timeoutMs; ; ) {
    const st = await api('GET', `/api/v1/cameras/${camId}/ptz`);
    if (st.status === 200 && st.body.controller === null) break;
    if (Date.now() > deadline) throw new Error(`still held after the player closed: ${st.text}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const trail = await api('GET', `/api/v1/audit?action=camera.ptz&target_id=${camId}&limit=100`);
  const ops = (trail.body?.entries ?? []).filter((e) => e.actor?.name === 'demo-operator').map((e) => e.summary?.command?.op).reverse();
  for (const want of ['move', 'stop', 'set_preset', 'home', 'goto', 'release']) {
    if (!ops.includes(want)) throw new Error(`audit lacks ${want}: ${ops}`);
  }
  out.audited = ops.length;
  const del = await api('DELETE', `/api/v1/cameras/${camId}`);
  if (del.status !== 204) throw new Error(`delete: ${del.status} ${del.text}`);
  return passed(watcher.check, 'ptz', base, { ms: Date.now() - started, ...out });
}

main(run, () => browser);
