// Browser test of the viewing audit: an admin finds who watched, in the dashboard.
//
//   node e2e/viewings.mjs <baseURL> <artifactDir>
//
// 1. As demo-operator, signed in through the login overlay: find a camera that
//    is online (GET /api/v1/cameras); watch its sub stream over the live
//    WebSocket from the page (the MSE protocol, with the session cookie) until
//    two binary messages (init segment, fragments) arrive, then close it; and
//    ask for its live HLS playlist (an HTTP session, open until its gap).
// 2. As demo-admin: Admin → Viewings (观看记录), filter by the camera's code and
//    by demo-operator: the operator's MSE session is listed as ended and its
//    HLS session too (still open, or ended 30 s after its request on a slow
//    machine), both on that camera, and no other person's or camera's is.
//    Screenshot admin-viewings.png.
// 3. The same camera filtered by demo-commander (who watched nothing) lists
//    no session of demo-operator.
// No timing is asserted: the view log writes every second, so the tab is
// filtered again until the sessions are there (within E2E_TIMEOUT_MS).
// Any page error, console error, CSP violation, error banner or unexpected
// HTTP error fails the run. Prints one JSON line and exits 0, else prints
// "e2e: FAIL: …" and exits 1.
// Environment: CHROMIUM (default /usr/bin/chromium), E2E_TIMEOUT_MS (default 20000).

import path from 'node:path';
import { launch, signIn, timeoutMs, waitFor, waitGrids, main, scriptArgs, openPage } from './common.mjs';

const { base, args: [artifactDir], started } = scriptArgs('viewings.mjs', '<artifactDir>', timeoutMs * 6 + 30000);

let browser;

/** signedIn opens a fresh context on the dashboard, signed in as username. */
async function signedIn(username, password) {
  const { context, page, watcher } = await openPage(browser, base);
  const resp = await page.goto(base.href, { waitUntil: 'domcontentloaded', timeout: timeoutMs });
  if (!resp || !resp.ok()) throw new Error(`GET ${base.href}: HTTP ${resp?.status()}`);
  await signIn(page, username, password);
  await waitGrids(page, watcher.problems);
  return { context, page, watcher };
}

/** filterViewings sets the Viewings tab's filters and applies them; it returns the rows listed. */
async function filterViewings(page, camera, actor) {
  await page.fill('#viewings-filters input[name="camera"]', camera);
  await page.fill('#viewings-filters input[name="actor"]', actor);
  await page.click('#viewings-filters button[type="submit"]');
  // The status says "Loading…" until the answer is in the table.
  await waitFor(
    page,
    () => {
      const st = document.querySelector('#admin-viewings .tab-status');
      return st && st.dataset.state !== 'error' && /viewings/.test(st.textContent ?? '');
    },
    null,
    async () => `viewings listed (status: ${await page.textContent('#admin-viewings .tab-status').catch(() => '?')})`,
  );
  return page.evaluate(() => [...document.querySelectorAll('#viewings-table tbody tr[data-viewing-id]')].map((tr) => ({ ...tr.dataset, text: tr.textContent })));
}

async function run() {
  browser = await launch();

  // 1. The operator watches.
  const op = await signedIn('demo-operator', 'gridwatch-operator');
  const listRes = await op.context.request.get(new URL('/api/v1/cameras?limit=1000', base).href);
  if (!listRes.ok()) throw new Error(`GET /api/v1/cameras as demo-operator: HTTP ${listRes.status()}`);
  const cameras = (await listRes.json()).cameras ?? [];
  const cam = cameras.find((c) => c.status === 'online');
  if (!cam) throw new Error(`no online camera among ${cameras.length}: ${JSON.stringify(cameras.map((c) => [c.code, c.status]))}`);
  const watched = await op.page.evaluate(
    ({ id, ms }) =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(`${location.origin.replace(/^http/, 'ws')}/api/v1/cameras/${id}/live?stream=sub`);
        ws.binaryType = 'arraybuffer';
        let binary = 0;
        let bytes = 0;
        const timer = setTimeout(() => reject(new Error(`live socket: ${binary} binary messages in ${ms} ms`)), ms);
        ws.onmessage = (ev) => {
          if (typeof ev.data === 'string') return;
          binary++;
          bytes += ev.data.byteLength;
          if (binary === 2) {
            clearTimeout(timer);
            ws.close(1000);
            resolve({ binary, bytes });
          }
        };
        ws.onerror = () => reject(new Error('live socket error'));
      }),
    { id: cam.id, ms: timeoutMs },
  );
  const hls = await op.context.request.get(new URL(`/api/v1/cameras/${cam.id}/hls/index.m3u8?stream=main`, base).href, { timeout: timeoutMs });
  if (!hls.ok()) throw new Error(`live HLS playlist as demo-operator: HTTP ${hls.status()}`);
  await op.watcher.check('demo-operator watching');
  await op.context.close();

  // 2. The admin finds it: Admin → Viewings, by camera and person.
  const adm = await signedIn('demo-admin', 'gridwatch-admin');
  const { page } = adm;
  await page.click('#admin-btn');
  await waitFor(page, () => document.querySelector('#admin-dialog')?.matches(':modal'), null, 'the admin view');
  await page.click('#admin-tab-viewings');
  await waitFor(page, () => !document.querySelector('#admin-viewings').hidden, null, 'the Viewings tab');
  let listed = [];
  const until = Date.now() + timeoutMs;
  for (;;) {
    listed = await filterViewings(page, cam.code, 'demo-operator');
    const mse = listed.find((r) => r.protocol === 'mse' && r.kind === 'live' && r.ended === 'true');
    const hlsRow = listed.find((r) => r.protocol === 'hls' && r.kind === 'live');
    if (mse && hlsRow) break;
    if (Date.now() > until) throw new Error(`Admin → Viewings for ${cam.code} and demo-operator: want an ended MSE and an HLS session, got ${JSON.stringify(listed)}`);
    await page.waitForTimeout(500); // the view log writes every second
  }
  const strangers = listed.filter((r) => r.actor !== 'demo-operator' || r.camera !== cam.code);
  if (strangers.length) throw new Error(`Viewings filtered by ${cam.code} and demo-operator lists others: ${JSON.stringify(strangers)}`);
  const shot = path.join(artifactDir, 'admin-viewings.png');
  await page.screenshot({ path: shot });

  // 3. Another person's filter does not list the operator.
  const other = await filterViewings(page, cam.code, 'demo-commander');
  if (other.some((r) => r.actor === 'demo-operator')) throw new Error(`filtered by demo-commander, the operator's sessions are listed: ${JSON.stringify(other)}`);
  await adm.watcher.check('demo-admin viewings');
  await adm.context.close();

  return {
    ok: true,
    url: base.href,
    camera: { id: cam.id, code: cam.code },
    watched,
    listed: listed.map((r) => ({ protocol: r.protocol, kind: r.kind, ended: r.ended === 'true' })),
    screenshot: shot,
    total_ms: Date.now() - started,
  };
}

await main(run, () => browser);
