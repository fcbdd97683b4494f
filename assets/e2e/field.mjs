// Browser test of the field app (/field/) on a phone, through the real service.
//
//   node e2e/field.mjs <baseURL> <artifactDir>
//
// A phone context: 390×844, isMobile, hasTouch, geolocation allowed at a
// point inside a grid of demo-leader (the grid leader of 410105001001, found
// through the API: an interior point of one of its grids' geometry).
// 1. Sign in as demo-leader with a device name: the session is a device
//    session (GET /api/v1/me names the device). The task list is there,
//    overdue tasks first and marked; a task dispatched to demo-leader by
//    demo-commander while the app is open arrives live with a "新任务 New
//    task" toast.
// 2. Report with a photo (a 4000×3000 JPEG drawn in the browser), a voice
//    note (Chromium's fake microphone) and the fake position: the grid is
//    named before sending; the API has the case once, via field, with the
//    accuracy, in that grid, its photo smaller than the original (resized on
//    the phone) and its voice note.
//    A report from outside demo-leader's grids: "outside your grids" before
//    sending; the server's refusal stays in the queue, with its message,
//    until dismissed (with its photo); nothing is filed.
// 3. Accept a task online (接单): the API has it in progress.
// 4. The service worker runs the page and has the shell; offline
//    (context.setOffline): a report with a photo, a task reported handled
//    with a note and a photo, and an accept of a task that someone else
//    accepts meanwhile (through the API) — the queue counter shows them.
//    Back online, with the first answers to the report, the handed-in step
//    and an upload chunk lost on the way (the request reaches the server,
//    its answer does not): the report arrives once (one case with that
//    title, its photo once), the handed-in task moved once (one "handled"
//    event), and the conflicting accept stays on the task, "已被他人处理 ·
//    moved on by demo-leader", until dismissed.
//    (Back online, only the three dropped answers may fail; offline, only
//    what a missing network causes.)
// 4b. Offline, three taps on Accept at once queue one step; reported handled
//    with a photo behind it (the photo queued before the step). The command
//    centre takes the case back and dispatches it again meanwhile: online,
//    the accept conflicts; Retry rebases it and the step after it, and both
//    land in order (one accept, one handled, by demo-leader).
// 5. Installability: CDP Page.getInstallabilityErrors has none; the manifest
//    parses without errors; the service worker is activated and controls the
//    page. Reloaded offline, the app shell and the saved task list show.
// 6. At 390 and 360 px wide, no screen scrolls sideways, every control is at
//    least 44 px, and every action is on the first screen or one tap away.
//    My grid: a camera of the grid plays live on a tap (its sub stream).
//    Without WebGL the maps say so, and the lists and the report still work.
// 6c. A dashboard session's cookie (no device): /field/ shows its own
//    sign-in, demo-leader filled in. One phone, two leaders: demo-leader
//    queues a step and a report offline, an admin revokes the phone's
//    session, and back online a second leader (created with another grid of
//    the community) signs in: nothing of demo-leader's goes as theirs (API),
//    the app offers "sign in as demo-leader" or "discard"; signed in as
//    demo-leader, it all arrives as demo-leader's. Signing out offline is
//    refused; signed out, then the second leader: demo-leader's grids and
//    photo come from no cache, online or offline.
// 7. Patrol: start, then the fake position walks (context.setGeolocation):
//    the points are uploaded (GET /api/v1/patrols?active=true has the patrol
//    with ≥ 2 points); stop: GET /api/v1/stats/patrols?month= counts its
//    distance for demo-leader.
// 8. FIELD-BENCH lines for BENCHMARKS.md: first load throttled with CDP
//    Network.emulateNetworkConditions (1.6 Mbit/s down, 750 kbit/s up, 150 ms
//    RTT) — time to usable (the task list rendered) cold and from the
//    service worker's cache, the shell's transferred bytes — and the photo
//    report's upload size after resizing.
// Screenshots field-*.png go to artifactDir. Any page error, console error,
// CSP violation or unexpected HTTP error fails the run (network failures
// while the context is offline, and the answers dropped on purpose, are
// expected). Prints one JSON line and exits 0, else "e2e: FAIL: …" and 1.
// Environment: CHROMIUM, E2E_TIMEOUT_MS (default 20000).

import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { apiSession, forgive, gridCandidates, launch, main, must, OFFLINE, scriptArgs, timeoutMs, until, waitFor, watch } from './common.mjs';

const { base, args: [artifactDir], started } = scriptArgs('field.mjs', '<artifactDir>', timeoutMs * 20 + 60000);
const FIELD = new URL('/field/', base).href;
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
const DEVICE = 'e2e phone · Chromium';
const tag = randomBytes(3).toString('hex');

let browser;

// ---- the API, from this process ------------------------------------------------------------

/** dispatchTask files a case at [lon, lat] as the commander, registers and dispatches it to the grid's leader. */
async function dispatchTask(cmd, title, [lon, lat]) {
  let inc = await must(cmd, 'POST', '/api/v1/incidents', { source: 'hotline', category: '0101', title, location: { type: 'Point', coordinates: [lon, lat] } });
  inc = await must(cmd, 'POST', `/api/v1/incidents/${inc.id}/transitions`, { to: 'registered', version: inc.version, note: 'e2e' });
  inc = await must(cmd, 'POST', `/api/v1/incidents/${inc.id}/transitions`, { to: 'dispatched', version: inc.version, note: 'e2e' });
  return inc;
}

/** byTitle lists the cases demo-leader sees with this title. */
async function byTitle(leader, title) {
  const list = await must(leader, 'GET', '/api/v1/incidents?limit=1000');
  return (list.incidents ?? []).filter((i) => i.title === title);
}

// ---- the page ------------------------------------------------------------------------------

/** makePhoto draws a camera-like w×h JPEG in a blank page and returns its bytes. */
async function makePhoto(w, h, seed) {
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  const b64 = await p.evaluate(
    async ([w, h, seed]) => {
      const c = new OffscreenCanvas(w, h);
      const g = c.getContext('2d');
      const grad = g.createLinearGradient(0, 0, w, h);
      grad.addColorStop(0, '#3a6ea5');
      grad.addColorStop(0.5, '#c9b37e');
      grad.addColorStop(1, '#4f6d3a');
      g.fillStyle = grad;
      g.fillRect(0, 0, w, h);
      let s = seed;
      const rnd = () => ((s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
      for (let i = 0; i < 400; i++) {
        g.fillStyle = `hsl(${rnd() * 360} ${30 + rnd() * 50}% ${20 + rnd() * 60}%)`;
        g.fillRect(rnd() * w, rnd() * h, rnd() * w * 0.2, rnd() * h * 0.2);
      }
      // Sensor noise: what makes a real photo heavy.
      const img = g.getImageData(0, 0, w, h);
      for (let i = 0; i < img.data.length; i += 4) {
        const n = (rnd() - 0.5) * 40;
        img.data[i] += n;
        img.data[i + 1] += n;
        img.data[i + 2] += n;
      }
      g.putImageData(img, 0, 0);
      const blob = await c.convertToBlob({ type: 'image/jpeg', quality: 0.92 });
      const bytes = new Uint8Array(await blob.arrayBuffer());
      let bin = '';
      for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return btoa(bin);
    },
    [w, h, seed],
  );
  await ctx.close();
  return Buffer.from(b64, 'base64');
}

/** state reads what the app shows. */
function state(page) {
  return page.evaluate(() => ({
    auth: document.body.dataset.auth,
    tab: document.body.dataset.tab,
    online: document.body.dataset.online,
    queue: Number(document.body.dataset.queue ?? -1),
    tasksLoaded: document.body.dataset.tasksLoaded,
    tasksFrom: document.body.dataset.tasksFrom,
    sw: document.body.dataset.sw,
    outbox: (window.gridwatchField?.outbox.items ?? []).map((it) => ({ kind: it.kind, state: it.state, label: it.label, attempts: it.attempts, error: it.error?.message })),
    toasts: [...document.querySelectorAll('.toast')].map((t) => t.textContent.trim()),
    errors: [...document.querySelectorAll('.form-error:not([hidden])')].map((e) => e.textContent.trim()),
  }));
}

async function shot(page, name, fullPage = false) {
  const p = path.join(artifactDir, `field-${name}.png`);
  await page.screenshot({ path: p, fullPage });
  return p;
}

/** tab taps a tab of the bottom bar and waits for its screen. */
async function tab(page, name) {
  await page.tap(`.tab[data-tab="${name}"]`);
  await waitFor(page, (n) => document.body.dataset.tab === n, name, `the ${name} screen`);
}

/** openTask taps a task of the list (or opens it by its route) and waits for its card. */
async function openTask(page, id) {
  if ((await page.$(`#task-list .task[data-incident-id="${id}"]`)) && (await page.evaluate(() => document.body.dataset.tab)) === 'tasks') {
    await page.tap(`#task-list .task[data-incident-id="${id}"]`);
  } else {
    await page.evaluate((id) => {
      location.hash = `task-${id}`;
    }, id);
  }
  await waitFor(page, (id) => document.body.dataset.tab === 'task' && document.querySelector('#task-card')?.dataset.incidentId === String(id), id, `the card of task ${id}`);
}

/** report fills and sends the report form with the photo, at the fake position. */
async function report(page, { title, photo, gridId, voice = false }) {
  await page.tap('#report-big');
  await waitFor(page, () => document.body.dataset.tab === 'report' && document.querySelector('#report-form').dataset.lon, null, 'the report screen with a position', timeoutMs);
  await waitFor(
    page,
    (id) => {
      const g = document.querySelector('#pos-grid');
      return id ? g.dataset.inside === 'true' && g.dataset.gridId === String(id) : g.dataset.inside === 'false';
    },
    gridId,
    async () => `${gridId ? `grid ${gridId}` : '"outside your grids"'} shown before sending (got ${await page.textContent('#pos-grid')})`,
  );
  const acc = await page.textContent('#pos-acc');
  if (!/±\s*12\s*m/.test(acc)) throw new Error(`accuracy shown as ${JSON.stringify(acc)}, want ±12 m`);
  await waitFor(page, () => document.querySelectorAll('#cat-main option').length > 1, null, 'the categories');
  await page.selectOption('#cat-main', '01');
  await page.selectOption('#cat-sub', '0101');
  await page.fill('#report-title', title);
  await page.fill('#report-desc', `e2e ${tag}: a few words`);
  await page.setInputFiles('#report-photos', { name: 'camera.jpg', mimeType: 'image/jpeg', buffer: photo });
  await waitFor(page, () => document.querySelectorAll('#report-thumbs li').length === 1 && !document.querySelector('#report-thumbs').dataset.busy, null, 'the photo thumbnail');
  const thumb = await page.evaluate(() => {
    const li = document.querySelector('#report-thumbs li');
    return { bytes: Number(li.dataset.bytes), original: Number(li.dataset.originalBytes), text: li.textContent };
  });
  if (!(thumb.bytes < thumb.original)) throw new Error(`the photo was not made smaller on the phone: ${JSON.stringify(thumb)}`);
  if (voice) {
    // A voice note from the fake microphone: a second of it, by the recorder's own clock.
    if (!(await onScreen(page, '#voice-btn'))) await page.locator('#voice-btn').scrollIntoViewIfNeeded();
    await page.tap('#voice-btn');
    await waitFor(page, () => /0:0[1-9]/.test(document.querySelector('#voice-label').textContent), null, async () => `a second of voice recorded (${await page.textContent('#voice-label')}; ${JSON.stringify((await state(page)).errors)})`);
    await page.tap('#voice-btn');
    await waitFor(page, () => !document.querySelector('#voice-note').hidden && Number(document.querySelector('#voice-note').dataset.bytes) > 0, null, 'the voice note kept');
  }
  await page.tap('#report-submit');
  await waitFor(page, () => document.body.dataset.tab === 'tasks', null, async () => `back to the tasks after sending (${JSON.stringify(await state(page))})`);
  return thumb;
}

// forgiveLost drops, from problems since from, what each answer dropped on
// purpose causes: its failed request (lost: {what: count}, patterns: {what:
// RegExp}) and the console's line about it — and nothing more.
function forgiveLost(problems, from, lost, patterns) {
  let all = 0;
  for (const [what, re] of Object.entries(patterns)) {
    const n = forgive(problems, from, re, { max: lost[what] });
    if (n !== lost[what]) throw new Error(`${lost[what]} dropped answer(s) to ${what}, ${n} failure(s) seen: ${problems.slice(from).join('; ')}`);
    all += n;
  }
  forgive(problems, from, /^console error: Failed to load resource: net::ERR_FAILED$/, { max: all });
}

/** overflow reports how far the page scrolls sideways, and controls under 44 px, on the current screen. */
function layoutProblems(page) {
  return page.evaluate(() => {
    const de = document.documentElement;
    const small = [];
    for (const n of document.querySelectorAll('button, a[href], input:not(.visually-hidden), select, textarea, label.btn')) {
      const r = n.getBoundingClientRect();
      if (r.width === 0 || r.height === 0 || n.closest('[hidden]')) continue;
      if (r.height < 44 || r.width < 44) small.push(`${n.tagName.toLowerCase()}${n.id ? `#${n.id}` : ''}.${[...n.classList].join('.')} ${Math.round(r.width)}×${Math.round(r.height)} "${n.textContent.trim().slice(0, 20)}"`);
    }
    const wide = [...document.querySelectorAll('body *')].filter((n) => {
      const r = n.getBoundingClientRect();
      return r.width > 0 && r.right > de.clientWidth + 1 && !n.closest('.maplibregl-map') && !n.closest('[hidden]');
    }).slice(0, 5).map((n) => `${n.tagName.toLowerCase()}${n.id ? `#${n.id}` : ''}.${[...n.classList].join('.')} right=${Math.round(n.getBoundingClientRect().right)}`);
    return { scrollWidth: de.scrollWidth, clientWidth: de.clientWidth, small, wide };
  });
}

/** onScreen reports whether selector is visible within the viewport and not covered. */
function onScreen(page, selector) {
  return page.evaluate((sel) => {
    const n = document.querySelector(sel);
    if (!n) return false;
    const r = n.getBoundingClientRect();
    if (r.width === 0 || r.bottom > innerHeight || r.top < 0 || r.right > innerWidth) return false;
    const at = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    return !!at && (at === n || n.contains(at));
  }, selector);
}

// ---- the run -------------------------------------------------------------------------------

async function run() {
  await mkdir(artifactDir, { recursive: true });
  browser = await launch({ args: ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'] });
  const leader = await apiSession(base, 'demo-leader', 'gridwatch-leader');
  const cmd = await apiSession(base, 'demo-commander', 'gridwatch-commander');

  // A point inside one of demo-leader's grids.
  const fc = await must(leader, 'GET', '/api/v1/grids.geojson');
  const cands = gridCandidates(fc.features ?? []);
  if (!cands.length) throw new Error('demo-leader sees no grid-level grid');
  const grid = cands[0];
  const located = await must(leader, 'GET', `/api/v1/locate?lon=${grid.lon}&lat=${grid.lat}`);
  if (Number(located.grids?.[0]?.id) !== grid.id) throw new Error(`the interior point of grid ${grid.code} locates to ${JSON.stringify(located.grids?.[0])}`);
  const at = (dx, dy) => [+(grid.lon + dx).toFixed(7), +(grid.lat + dy).toFixed(7)];

  // A task for demo-leader before the app opens.
  const t1 = await dispatchTask(cmd, `e2e 任务一 ${tag}`, at(0.0001, 0));
  if (!t1.assignee) throw new Error(`task ${t1.id} was dispatched to nobody: ${JSON.stringify(t1)}`);

  // ---- 1. sign in on the phone ----
  const context = await browser.newContext({ ...PHONE, permissions: ['geolocation', 'microphone'], geolocation: { latitude: grid.lat, longitude: grid.lon, accuracy: 12 }, locale: 'zh-CN' });
  const page = await context.newPage();
  const watcher = watch(page, base);
  const { problems, check } = watcher;
  watcher.expect('GET', /^\/api\/v1\/me$/, 401); // who am I, before signing in
  watcher.expect('POST', /^\/api\/v1\/incidents$/, 403); // the report outside the grids
  watcher.expect('POST', /^\/api\/v1\/incidents\/\d+\/transitions$/, 409); // the accept someone else beat
  watcher.expect('GET', /^\/api\/v1\/incidents\/\d+\/attachments\/uploads\/[\w-]+$/, 404); // an upload's answer lost before it began
  const resp = await page.goto(FIELD, { waitUntil: 'domcontentloaded', timeout: timeoutMs });
  if (!resp?.ok()) throw new Error(`GET ${FIELD}: HTTP ${resp?.status()}`);
  await waitFor(page, () => document.body.dataset.auth === 'login' && !document.querySelector('#login').hidden, null, 'the sign-in screen');
  const prefilled = await page.inputValue('#login-device');
  if (!/·/.test(prefilled)) throw new Error(`the device name is not prefilled from the browser: ${JSON.stringify(prefilled)}`);
  await page.fill('#login-username', 'demo-leader');
  await page.fill('#login-password', 'gridwatch-leader');
  await page.fill('#login-device', DEVICE);
  await page.tap('#login-submit');
  await waitFor(page, () => document.body.dataset.auth === 'ok' && document.body.dataset.tasksLoaded !== undefined, null, async () => `signed in with the tasks listed (${JSON.stringify(await state(page))})`);
  const me = await page.evaluate(async () => (await fetch('/api/v1/me', { cache: 'no-store' })).json());
  if (me.session?.device !== DEVICE) throw new Error(`GET /api/v1/me: session ${JSON.stringify(me.session)}, want a device session named ${DEVICE}`);
  await waitFor(page, (id) => !!document.querySelector(`#task-list .task[data-incident-id="${id}"]`), t1.id, `task ${t1.id} on the list`);
  const order = await page.evaluate(() => [...document.querySelectorAll('#task-list .task')].map((t) => ({ id: t.dataset.incidentId, overdue: t.dataset.overdue, status: t.dataset.status, marked: !!t.querySelector('.badge-overdue') })));
  const firstOnTime = order.findIndex((t) => t.overdue !== 'true');
  if (order.some((t, i) => t.overdue === 'true' && (i > firstOnTime && firstOnTime >= 0))) throw new Error(`overdue tasks are not first: ${JSON.stringify(order)}`);
  if (order.some((t) => t.overdue === 'true' && !t.marked)) throw new Error(`an overdue task is not marked: ${JSON.stringify(order)}`);
  const overdueTasks = order.filter((t) => t.overdue === 'true').length;
  if (overdueTasks < 1) throw new Error(`no overdue task on the list (the demo seeds one): ${JSON.stringify(order)}`);

  // A task dispatched while the app is open arrives by itself, with a toast.
  const t2 = await dispatchTask(cmd, `e2e 任务二 ${tag}`, at(-0.0001, 0));
  await waitFor(page, (id) => !!document.querySelector(`#task-list .task[data-incident-id="${id}"]`) && !!document.querySelector(`.toast[data-incident-id="${id}"]`), t2.id, async () => `the new task ${t2.id} listed live with a toast (${JSON.stringify(await state(page))})`);
  await shot(page, 'tasks');
  await check('signed in');

  // ---- 2. a report with a photo, online ----
  const big = await makePhoto(4000, 3000, 7);
  const title1 = `e2e 上报 ${tag} online`;
  const thumb1 = await report(page, { title: title1, photo: big, gridId: grid.id, voice: true });
  const [case1] = await until(async () => {
    const found = await byTitle(leader, title1);
    if (found.length > 1) throw new Error(`the report arrived ${found.length} times`);
    if (!found.length) return null;
    const full = await must(leader, 'GET', `/api/v1/incidents/${found[0].id}`);
    return full.attachments?.length >= 2 ? [full] : null;
  }, async () => `the report with its photo and voice note on the server (${JSON.stringify(await state(page))})`);
  if (case1.via !== 'field' || case1.source !== 'patrol') throw new Error(`report ${case1.id}: via ${case1.via}, source ${case1.source}; want field, patrol`);
  if (Math.round(case1.accuracy_m) !== 12) throw new Error(`report ${case1.id}: accuracy_m ${case1.accuracy_m}, want 12`);
  if (Number(case1.grid?.id) !== grid.id) throw new Error(`report ${case1.id} is in grid ${JSON.stringify(case1.grid)}, want ${grid.code}`);
  const photo1 = case1.attachments.find((a) => a.kind !== 'voice');
  const voice1 = case1.attachments.find((a) => a.kind === 'voice');
  if (case1.attachments.length !== 2 || !photo1 || !(photo1.bytes < big.length) || photo1.content_type !== 'image/jpeg') throw new Error(`report ${case1.id} attachments ${JSON.stringify(case1.attachments)}; want one JPEG smaller than the ${big.length} B original, and a voice note`);
  if (!voice1 || !/^audio\//.test(voice1.content_type) || !(voice1.bytes > 0)) throw new Error(`report ${case1.id}: voice note ${JSON.stringify(voice1)}`);
  console.log(`FIELD-BENCH ${JSON.stringify({ what: 'photo report upload', original: '4000x3000 JPEG q0.92', original_bytes: big.length, uploaded_bytes: photo1.bytes, resized_on_phone_bytes: thumb1.bytes, ratio: +(photo1.bytes / big.length).toFixed(3) })}`);
  await waitFor(page, () => Number(document.body.dataset.queue) === 0, null, async () => `the queue empty after the report (${JSON.stringify(await state(page))})`);

  // A report outside demo-leader's grids: the app says so before sending,
  // the server refuses it, and the refusal stays in the queue with the
  // server's message until dismissed.
  const all = gridCandidates((await must(cmd, 'GET', '/api/v1/grids.geojson')).features ?? []);
  const leaders = new Set(cands.map((c) => c.id));
  const elsewhere = all.find((c) => !leaders.has(c.id));
  if (!elsewhere) throw new Error('no grid outside demo-leader\'s to report from');
  await context.setGeolocation({ latitude: elsewhere.lat, longitude: elsewhere.lon, accuracy: 12 });
  const titleOut = `e2e 上报 ${tag} outside`;
  await report(page, { title: titleOut, photo: await makePhoto(800, 600, 3), gridId: 0 });
  await waitFor(page, () => window.gridwatchField.outbox.items.some((it) => it.kind === 'report' && it.state === 'failed'), null, async () => `the outside report refused (${JSON.stringify(await state(page))})`);
  await page.tap('#queue-btn');
  await waitFor(page, () => /outside your grids/.test(document.querySelector('#queue-list li[data-kind="report"][data-state="failed"]')?.textContent ?? ''), null, async () => `the server's refusal in the queue (${await page.textContent('#queue-list')})`);
  await shot(page, 'refused');
  await page.tap('#queue-list li[data-kind="report"][data-state="failed"] [data-act="dismiss"]');
  await waitFor(page, () => Number(document.body.dataset.queue) === 0, null, 'the refused report and its photo dismissed');
  if ((await byTitle(cmd, titleOut)).length) throw new Error('a report outside the grids was filed');
  await context.setGeolocation({ latitude: grid.lat, longitude: grid.lon, accuracy: 12 });
  await page.evaluate(() => {
    location.hash = 'tasks';
  });

  // ---- 3. accept a task online ----
  await openTask(page, t1.id);
  await page.tap('#task-actions [data-step="in_progress"]');
  await until(async () => (await must(leader, 'GET', `/api/v1/incidents/${t1.id}`)).status === 'in_progress', `task ${t1.id} accepted on the server`);
  await waitFor(page, () => document.querySelector('#task-actions [data-step="handled"]'), null, 'the report-handled step offered after accepting');
  await shot(page, 'task');

  // ---- 4. offline ----
  await waitFor(page, async () => {
    const reg = await navigator.serviceWorker.getRegistration();
    return reg?.active?.state === 'activated' && !!navigator.serviceWorker.controller && document.body.dataset.sw === 'warm';
  }, null, async () => `the service worker running the page with its cache warm (${JSON.stringify(await state(page))})`);
  const offlineFrom = problems.length;
  await context.setOffline(true);
  await waitFor(page, () => document.body.dataset.online === 'false', null, 'the app to say it is offline');
  await page.evaluate(() => {
    location.hash = 'tasks';
  });
  const small = await makePhoto(2400, 1800, 11);
  const title2 = `e2e 上报 ${tag} offline`;
  await report(page, { title: title2, photo: small, gridId: grid.id });
  // Hand in task 1: reported handled, with a note and a photo.
  await openTask(page, t1.id);
  await page.tap('#task-actions [data-step="handled"]');
  await page.fill('#step-note', `e2e ${tag}: cleared`);
  await page.setInputFiles('#step-photos', { name: 'after.jpg', mimeType: 'image/jpeg', buffer: small });
  await waitFor(page, () => document.querySelectorAll('#step-form .thumbs li').length === 1 && !document.querySelector('#step-submit').disabled, null, 'the handed-in photo');
  await page.tap('#step-submit');
  await waitFor(page, () => document.querySelector('#task-queued .notice[data-kind="queued"]'), null, 'the queued step shown on the task');
  // Accept task 2 offline …
  await openTask(page, t2.id);
  await page.tap('#task-actions [data-step="in_progress"]');
  await waitFor(page, () => document.querySelector('#task-queued .notice[data-kind="queued"]'), null, 'the queued accept shown on the task');
  await waitFor(page, () => Number(document.querySelector('#queue-count').textContent) >= 2, null, 'the queue counter at 2 or more');
  const queued = await page.evaluate(() => Number(document.querySelector('#queue-count').textContent));
  await page.tap('#queue-btn');
  await waitFor(page, () => document.body.dataset.tab === 'queue' && document.querySelectorAll('#queue-list li').length >= 2, null, 'the queue listed');
  await shot(page, 'offline-queue');
  // … while someone else accepts it on the server.
  const t2now = await must(leader, 'GET', `/api/v1/incidents/${t2.id}`);
  await must(leader, 'POST', `/api/v1/incidents/${t2.id}/transitions`, { to: 'in_progress', version: t2now.version, note: 'accepted elsewhere' });
  // Nothing left the phone meanwhile.
  if ((await byTitle(leader, title2)).length !== 0) throw new Error('the offline report reached the server while offline');

  // Lose the first answer to the report, to the handed-in step and to an upload chunk.
  const lost = { report: 0, step: 0, chunk: 0 };
  await context.route('**/api/v1/incidents', async (route) => {
    if (route.request().method() === 'POST' && lost.report === 0 && route.request().postData()?.includes(title2)) {
      lost.report++;
      await route.fetch();
      await route.abort('failed');
      return;
    }
    await route.fallback();
  });
  await context.route(`**/api/v1/incidents/${t1.id}/transitions`, async (route) => {
    if (lost.step === 0) {
      lost.step++;
      await route.fetch();
      await route.abort('failed');
      return;
    }
    await route.fallback();
  });
  await context.route('**/attachments/uploads/**', async (route) => {
    if (route.request().method() === 'PUT' && lost.chunk === 0 && /^bytes 262144-/.test(route.request().headers()['content-range'] ?? '')) {
      lost.chunk++;
      await route.fetch();
      await route.abort('failed');
      return;
    }
    await route.fallback();
  });

  // ---- back online ----
  const onlineAt = problems.length;
  await context.setOffline(false);
  await waitFor(
    page,
    () => {
      const items = window.gridwatchField.outbox.items;
      return items.length === 1 && items[0].state === 'conflict';
    },
    null,
    async () => `everything sent but the conflicting accept (${JSON.stringify(await state(page))}; lost: ${JSON.stringify(lost)})`,
    timeoutMs * 2,
  );
  if (lost.report !== 1 || lost.step !== 1 || lost.chunk !== 1) throw new Error(`the answers to drop were not all seen: ${JSON.stringify(lost)}`);
  const arrived = await byTitle(leader, title2);
  if (arrived.length !== 1) throw new Error(`the offline report arrived ${arrived.length} times, want once`);
  const case2 = await must(leader, 'GET', `/api/v1/incidents/${arrived[0].id}`);
  if (case2.via !== 'field' || (case2.attachments ?? []).length !== 1) throw new Error(`offline report ${case2.id}: via ${case2.via}, ${case2.attachments?.length} attachments; want field and 1`);
  const t1after = await must(leader, 'GET', `/api/v1/incidents/${t1.id}`);
  const handledEvents = (t1after.history ?? []).filter((e) => e.to === 'handled');
  if (t1after.status !== 'handled' || handledEvents.length !== 1) throw new Error(`task ${t1.id}: status ${t1after.status}, ${handledEvents.length} "handled" events; want handled, once (${JSON.stringify(t1after.history)})`);
  if ((t1after.attachments ?? []).length !== 1) throw new Error(`task ${t1.id}: ${t1after.attachments?.length} photos, want the one handed in`);
  // Handed in, it awaits the command centre's check: no step is offered any more.
  await openTask(page, t1.id);
  await waitFor(page, () => document.querySelector('#task-card').dataset.status === 'handled' && /awaiting the check/.test(document.querySelector('#task-actions').textContent), null, async () => `task ${t1.id} shown handled, awaiting the check (${await page.textContent('#task-actions').catch(() => '')})`);
  if (await page.$('#task-actions [data-step]')) throw new Error(`task ${t1.id} is handled but still offers a step`);
  const t2after = await must(leader, 'GET', `/api/v1/incidents/${t2.id}`);
  const accepts = (t2after.history ?? []).filter((e) => e.to === 'in_progress');
  if (t2after.status !== 'in_progress' || accepts.length !== 1) throw new Error(`task ${t2.id}: ${accepts.length} accepts, want only the one made elsewhere`);
  // The conflict is on the task, not lost; dismissing it empties the queue.
  await openTask(page, t2.id);
  await waitFor(page, () => /moved on by demo-leader/.test(document.querySelector('#task-queued .notice[data-kind="conflict"]')?.textContent ?? ''), null, async () => `the conflict shown on task ${t2.id} (${await page.textContent('#task-queued').catch(() => '')})`);
  await shot(page, 'conflict');
  await page.tap('#task-queued .notice[data-kind="conflict"] [data-act="dismiss"]');
  await waitFor(page, () => Number(document.body.dataset.queue) === 0, null, 'the queue empty after dismissing the conflict');
  await context.unrouteAll({ behavior: 'ignoreErrors' });
  // Back online, only the answers dropped on purpose failed (one each);
  // what failed before is what being offline causes.
  forgiveLost(problems, onlineAt, lost, {
    report: /^request failed: POST \S+\/api\/v1\/incidents \(net::ERR_FAILED\)$/,
    step: new RegExp(`^request failed: POST \\S+/api/v1/incidents/${t1.id}/transitions \\(net::ERR_FAILED\\)$`),
    chunk: /^request failed: PUT \S+\/api\/v1\/incidents\/\d+\/attachments\/uploads\/[\w-]+\?filename=\S+ \(net::ERR_FAILED\)$/,
  });
  forgive(problems, offlineFrom, OFFLINE, { to: onlineAt });
  await check('offline and back');

  // ---- 4b. a double tap queues one step; two steps after a conflict land in order ----
  const t3 = await dispatchTask(cmd, `e2e 任务三 ${tag}`, at(0.0002, 0));
  await waitFor(page, (id) => !!document.querySelector(`#task-list .task[data-incident-id="${id}"]`), t3.id, `task ${t3.id} listed`);
  const offline2From = problems.length;
  await context.setOffline(true);
  await waitFor(page, () => document.body.dataset.online === 'false', null, 'offline again');
  await openTask(page, t3.id);
  await waitFor(page, () => document.querySelector('#task-actions [data-step="in_progress"]'), null, 'the accept offered');
  // Three taps in one go, before the first is saved: one step.
  await page.evaluate(() => {
    const b = document.querySelector('#task-actions [data-step="in_progress"]');
    b.click();
    b.click();
    b.dispatchEvent(new MouseEvent('click', { bubbles: true }));
  });
  await waitFor(page, () => document.querySelector('#task-actions [data-step="handled"]'), null, 'the report-handled step offered after the queued accept');
  const accepts3 = await page.evaluate((id) => window.gridwatchField.outbox.items.filter((it) => it.incident === id && it.kind === 'transition').length, t3.id);
  if (accepts3 !== 1) throw new Error(`a double tap on Accept queued ${accepts3} steps, want 1`);
  // Reported handled, with a photo, behind the accept.
  await page.tap('#task-actions [data-step="handled"]');
  await page.fill('#step-note', `e2e ${tag}: done after a conflict`);
  await page.setInputFiles('#step-photos', { name: 'after.jpg', mimeType: 'image/jpeg', buffer: small });
  await waitFor(page, () => document.querySelectorAll('#step-form .thumbs li').length === 1 && !document.querySelector('#step-submit').disabled, null, 'the photo of the handed-in task');
  await page.tap('#step-submit');
  await waitFor(page, (id) => window.gridwatchField.outbox.items.filter((it) => it.incident === id).length === 3, t3.id, 'the accept, the photo and the handed-in step queued');
  const order3 = await page.evaluate((id) => window.gridwatchField.outbox.items.filter((it) => it.incident === id).map((it) => `${it.kind}${it.to ? `:${it.to}` : ''}@${it.version ?? ''}`), t3.id);
  if (!/^transition:in_progress@\d+,upload@,transition:handled@\d+$/.test(order3.join(','))) throw new Error(`queued for task ${t3.id}: ${order3}; want the accept, the photo, then the handed-in step`);
  // Meanwhile the command centre takes the case back and dispatches it again (version + 2).
  let t3now = await must(cmd, 'GET', `/api/v1/incidents/${t3.id}`);
  t3now = await must(cmd, 'POST', `/api/v1/incidents/${t3.id}/transitions`, { to: 'returned', version: t3now.version, note: 'e2e: back to the command centre' });
  await must(cmd, 'POST', `/api/v1/incidents/${t3.id}/transitions`, { to: 'dispatched', version: t3now.version, note: 'e2e: dispatched again' });
  const online2At = problems.length;
  await context.setOffline(false);
  await waitFor(page, (id) => window.gridwatchField.outbox.items.find((it) => it.incident === id)?.state === 'conflict', t3.id, async () => `the accept of task ${t3.id} in conflict (${JSON.stringify(await state(page))})`);
  await page.tap('#task-queued .notice[data-kind="conflict"] [data-act="retry"]');
  await waitFor(page, (id) => !window.gridwatchField.outbox.items.some((it) => it.incident === id), t3.id, async () => `task ${t3.id}'s steps sent after the retry (${JSON.stringify(await state(page))})`);
  const t3after = await must(leader, 'GET', `/api/v1/incidents/${t3.id}`);
  const moves = (t3after.history ?? []).filter((e) => e.to).map((e) => `${e.to}:${e.actor}`);
  const mine3 = moves.filter((m) => /:demo-leader$/.test(m));
  if (t3after.status !== 'handled' || mine3.join(',') !== 'in_progress:demo-leader,handled:demo-leader' || !/returned:[^,]+,dispatched:[^,]+,in_progress:demo-leader,handled:demo-leader$/.test(moves.join(','))) {
    throw new Error(`task ${t3.id} after the retry: ${t3after.status}, moves ${moves.join(' → ')}; want one accept then one handled, after the command centre's`);
  }
  if ((t3after.attachments ?? []).length !== 1) throw new Error(`task ${t3.id}: ${t3after.attachments?.length} photos, want the one handed in`);
  forgive(problems, offline2From, OFFLINE, { to: online2At });
  await check('a double tap, and a retry after a conflict');

  // ---- 5. installable; reload offline ----
  const sw = await page.evaluate(async () => {
    const reg = await navigator.serviceWorker.getRegistration();
    return { state: reg?.active?.state, scope: reg?.scope, controlled: !!navigator.serviceWorker.controller };
  });
  if (sw.state !== 'activated' || !sw.controlled || !sw.scope?.endsWith('/field/')) throw new Error(`service worker ${JSON.stringify(sw)}`);
  const install = await installable();
  const reloadFrom = problems.length;
  await context.setOffline(true);
  // Playwright's offline mode does not hold for the service worker across a
  // navigation (its requests reach the network again): a route cuts every
  // request to the service as well, the page's and the service worker's.
  await context.route((u) => u.origin === base.origin, (route) => route.abort('internetdisconnected'));
  await page.evaluate(() => {
    location.hash = 'tasks';
  });
  await page.reload({ waitUntil: 'domcontentloaded' });
  await waitFor(page, (id) => document.body.dataset.auth === 'ok' && document.body.dataset.tasksFrom === 'cache' && !!document.querySelector(`#task-list .task[data-incident-id="${id}"]`), t1.id, async () => `the app shell and the saved task list, offline (${JSON.stringify(await state(page).catch((e) => e.message))})`);
  const offlineNote = await page.textContent('#tasks-note');
  if (!/Offline/.test(offlineNote)) throw new Error(`offline, the list does not say it is saved: ${JSON.stringify(offlineNote)}`);
  await shot(page, 'offline-reload');
  await context.unrouteAll({ behavior: 'ignoreErrors' });
  await context.setOffline(false);
  await waitFor(page, () => document.body.dataset.online === 'true', null, 'online again');
  await page.reload({ waitUntil: 'domcontentloaded' });
  await waitFor(page, () => document.body.dataset.tasksFrom === 'network', null, 'the task list read from the network again');
  forgive(problems, reloadFrom);
  await check('reloaded offline');

  // ---- 6. layout: 390 and 360 px, first screen, one tap away ----
  const screens = ['tasks', `task-${t1.id}`, 'report', 'grid', 'patrol', 'queue', 'account'];
  const layout = {};
  for (const width of [390, 360]) {
    await page.setViewportSize({ width, height: width === 390 ? 844 : 740 });
    for (const s of screens) {
      await page.evaluate((s) => {
        location.hash = s;
      }, s);
      await waitFor(page, (s) => document.body.dataset.tab === s.split('-')[0], s, `screen ${s}`);
      if (s === 'grid') await waitFor(page, () => ['ready', 'failed'].includes(document.querySelector('#grid-map').dataset.state) && document.querySelector('#grid-cams li'), null, 'the grid screen loaded');
      if (s === 'report') await waitFor(page, () => document.querySelector('#report-form').dataset.lon, null, 'a position on the report screen');
      const lp = await layoutProblems(page);
      if (lp.scrollWidth > lp.clientWidth || lp.wide.length) throw new Error(`${s} at ${width} px scrolls sideways: ${JSON.stringify(lp)}`);
      if (lp.small.length) throw new Error(`${s} at ${width} px has controls under 44 px: ${lp.small.join('; ')}`);
      layout[`${s.split('-')[0]}@${width}`] = `${lp.scrollWidth}/${lp.clientWidth}`;
      if (width === 360) await shot(page, `360-${s.split('-')[0]}`);
    }
    // First screen: report, the tabs, the queue and the account, without scrolling.
    await page.evaluate(() => {
      location.hash = 'tasks';
    });
    await waitFor(page, () => document.body.dataset.tab === 'tasks', null, 'the first screen');
    for (const sel of ['#report-big', '#queue-btn', '#me-btn', '.tab[data-tab="tasks"]', '.tab[data-tab="report"]', '.tab[data-tab="grid"]', '.tab[data-tab="patrol"]', `#task-list .task`]) {
      if (!(await onScreen(page, sel))) throw new Error(`${sel} is not on the first screen at ${width} px (screenshot ${await shot(page, 'not-on-screen')})`);
    }
    // One tap away: each screen's own action shows without scrolling.
    for (const [tapOn, want] of [['.tab[data-tab="patrol"]', '#patrol-toggle'], ['#me-btn', '#logout-btn'], ['#queue-btn', '#queue-empty'], ['.tab[data-tab="grid"]', '#where-btn'], ['#task-list .task', '#task-actions .btn']]) {
      await page.evaluate(() => {
        location.hash = 'tasks';
      });
      await waitFor(page, () => document.body.dataset.tab === 'tasks' && document.querySelector('#task-list .task'), null, 'the first screen');
      await page.tap(tapOn);
      await waitFor(page, (w) => (document.querySelector(w)?.getBoundingClientRect().width ?? 0) > 0, want, `${want} shown after tapping ${tapOn}`);
      if (!(await onScreen(page, want))) {
        const where = await page.evaluate((w) => JSON.stringify(document.querySelector(w)?.getBoundingClientRect()), want);
        throw new Error(`${want} is not on screen one tap (${tapOn}) from the first screen at ${width} px (at ${where}; screenshot ${await shot(page, 'not-on-screen')})`);
      }
    }
  }
  await page.setViewportSize(PHONE.viewport);
  await check('layout');

  // ---- 6b. my grid: a camera's live view (the sub stream), and no WebGL ----
  await page.evaluate(() => {
    location.hash = 'grid';
  });
  await waitFor(page, () => document.body.dataset.tab === 'grid' && document.querySelector('#grid-cams .cam[data-status="online"]'), null, 'an online camera in my grid');
  await page.tap('#grid-cams .cam[data-status="online"]');
  await waitFor(page, () => document.querySelector('#player')?.dataset.phase === 'playing' && document.querySelector('#player-video').videoWidth > 0, null, async () => `the camera playing live (${await page.textContent('#player-state')})`, timeoutMs * 2);
  const live = await page.evaluate(() => ({ engine: document.querySelector('#player').dataset.engine, width: document.querySelector('#player-video').videoWidth }));
  await shot(page, 'live');
  await page.tap('#player-close');
  await waitFor(page, () => document.querySelector('#player').hidden, null, 'the player closed');
  const noMap = await withoutWebGL();
  await check('my grid');

  // ---- 6c. a dashboard session; another member on the same phone ----
  const dashboard = await dashboardSession(leader);
  const members = await twoMembers({ leader, cmd, grid, other: cands[1], at, photoURL: photo1.url || `/api/v1/incidents/${case1.id}/attachments/${photo1.id}`, photo: small });

  // ---- 7. patrol ----
  await page.evaluate(() => {
    location.hash = 'patrol';
  });
  await waitFor(page, () => document.body.dataset.tab === 'patrol', null, 'the patrol screen');
  let pos = { latitude: grid.lat, longitude: grid.lon, accuracy: 8 };
  await context.setGeolocation(pos);
  await page.tap('#patrol-toggle');
  await waitFor(page, () => document.querySelector('#view-patrol').dataset.kept === '1', null, async () => `the first patrol point (${JSON.stringify(await state(page))})`);
  const steps = 21; // the first point goes at once; 20 more make a batch
  for (let i = 1; i <= steps; i++) {
    // A brisk walk, not a jump: the service counts no segment faster than
    // 50 m/s (a GPS jump), so each ~35 m step waits until the last point
    // kept is a second old on the page's clock.
    await waitFor(page, () => Date.now() - Number(document.querySelector('#view-patrol').dataset.lastAt) >= 1000, null, 'a second since the last point');
    pos = { ...pos, latitude: pos.latitude + 0.0003, longitude: pos.longitude + (i % 2 ? 0.0001 : -0.0001) }; // ≈ 35 m each
    await context.setGeolocation(pos);
    await waitFor(page, (n) => Number(document.querySelector('#view-patrol').dataset.kept) >= n, i + 1, async () => `patrol point ${i + 1} kept (${await page.evaluate(() => document.querySelector('#view-patrol').dataset.kept)})`);
  }
  const active = await until(async () => {
    const list = await must(leader, 'GET', '/api/v1/patrols?active=true');
    const p = (list.patrols ?? []).find((x) => x.user?.username === 'demo-leader' && x.active);
    return p && p.points >= 2 ? p : null;
  }, async () => `an active patrol of demo-leader with points (${JSON.stringify(await state(page))})`);
  await shot(page, 'patrol');
  await page.tap('#patrol-toggle');
  await waitFor(page, () => Number(document.body.dataset.queue) === 0 && document.querySelector('#view-patrol').dataset.active === 'false', null, 'the patrol ended and sent');
  const ended = await until(async () => {
    const p = await must(leader, 'GET', `/api/v1/patrols/${active.id}`);
    return p.active === false ? p : null;
  }, `patrol ${active.id} ended on the server`);
  if (ended.points !== steps + 1 || !(ended.distance_m > 500)) throw new Error(`patrol ${active.id}: ${ended.points} points, ${ended.distance_m} m; want ${steps + 1} points over more than 500 m`);
  const month = new Date(Date.parse(ended.started_at) + 8 * 3600e3).toISOString().slice(0, 7); // the statistics' zone: Asia/Shanghai
  const stats = await must(leader, 'GET', `/api/v1/stats/patrols?month=${month}`);
  const mine = (stats.members ?? []).find((m) => m.user?.username === 'demo-leader');
  if (!mine || !(mine.distance_m >= ended.distance_m - 1) || !(mine.patrols >= 1)) throw new Error(`stats of ${month}: ${JSON.stringify(mine)}; want demo-leader's patrol counted (${ended.distance_m} m)`);
  await check('patrol');

  // ---- 8. first load, throttled ----
  const bench = await firstLoad();
  await context.close();
  return {
    ok: true,
    url: FIELD,
    grid: grid.code,
    tasks: { listed: order.length, overdue: overdueTasks, live: t2.id },
    reports: { online: case1.id, offline: case2.id, photo_bytes: [big.length, photo1.bytes], voice_bytes: voice1.bytes },
    queued_offline: queued,
    lost_answers: lost,
    patrol: { id: ended.id, points: ended.points, distance_m: Math.round(ended.distance_m), month_distance_m: Math.round(mine.distance_m) },
    install,
    layout,
    live,
    no_webgl: noMap,
    dashboard_session: dashboard,
    members,
    bench,
    seconds: Math.round((Date.now() - started) / 1000),
  };
}

// installable opens the app in a browser profile on disk (Chromium offers no
// install in an incognito-like context, which every other context here is),
// signed in, and asks CDP whether it could be installed: no installability
// errors, a manifest without errors, the service worker activated and in
// control.
async function installable() {
  const phone = await apiSession(base, 'demo-leader', 'gridwatch-leader', 'e2e install phone');
  const dir = await mkdtemp(path.join(tmpdir(), 'gridwatch-field-e2e-'));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    ...PHONE,
  });
  try {
    await context.addCookies(cookiesOf(phone));
    const page = context.pages()[0] ?? (await context.newPage());
    const watcher = watch(page, base);
    await page.goto(FIELD, { waitUntil: 'domcontentloaded', timeout: timeoutMs });
    await waitFor(page, () => document.body.dataset.sw === 'warm' && !!navigator.serviceWorker.controller, null, 'the service worker in control (installable profile)', timeoutMs * 2);
    const cdp = await context.newCDPSession(page);
    const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
    if (installabilityErrors?.length) throw new Error(`installability errors: ${JSON.stringify(installabilityErrors)}`);
    const manifest = await cdp.send('Page.getAppManifest');
    if (manifest.errors?.length || !manifest.url?.endsWith('/field/manifest.webmanifest')) throw new Error(`manifest ${manifest.url}: ${JSON.stringify(manifest.errors)}`);
    const parsed = JSON.parse(manifest.data);
    const icons = (parsed.icons ?? []).map((i) => `${i.sizes}${i.purpose === 'maskable' ? ' maskable' : ''}`);
    await watcher.check('installable');
    return { installability_errors: 0, manifest: manifest.url, name: parsed.name, display: parsed.display, icons };
  } finally {
    await context.close();
    await rm(dir, { recursive: true, force: true });
  }
}

// dashboardSession opens the app with the cookie of a dashboard session
// (signed in without a device name, as the command centre's page does):
// that is not this phone's sign-in, and field reports need one, so the app
// shows its own sign-in, the member's name filled in.
async function dashboardSession(leader) {
  const context = await browser.newContext({ ...PHONE });
  await context.addCookies(cookiesOf(leader));
  const page = await context.newPage();
  const watcher = watch(page, base);
  await page.goto(FIELD, { waitUntil: 'domcontentloaded' });
  await waitFor(page, () => document.body.dataset.auth === 'login' && !document.querySelector('#login').hidden, null, async () => `the field sign-in over a dashboard session (${JSON.stringify(await state(page))})`);
  const shown = await page.evaluate(() => ({ username: document.querySelector('#login-username').value, note: document.querySelector('#login-expired').hidden ? '' : document.querySelector('#login-expired').textContent }));
  if (shown.username !== 'demo-leader' || !/dashboard/.test(shown.note)) throw new Error(`over a dashboard session the field sign-in shows ${JSON.stringify(shown)}; want demo-leader filled in and a word on why`);
  await shot(page, 'dashboard-session');
  await watcher.check('a dashboard session');
  await context.close();
  return { field_sign_in: true };
}

/** cacheHolding lists, in the page, the caches holding url (and every cache's name). */
function cacheHolding(page, url) {
  return page.evaluate(async (u) => {
    const names = await caches.keys();
    const holding = [];
    for (const n of names) if (await (await caches.open(n)).match(u)) holding.push(n);
    return { names, holding };
  }, url);
}

// twoMembers: one phone, two grid leaders of the same community.
// (a) demo-leader queues a step and a report offline; their session is
// revoked meanwhile (an admin signs the phone out); back online the app
// asks to sign in, and the second leader does: nothing of demo-leader's
// queue goes under the second leader's name — the app offers to sign in as
// demo-leader to send it, or to discard it. Signed in as demo-leader again,
// it all arrives as theirs.
// Signing out offline is refused (the server must end the session).
// (e) demo-leader signs out; the second leader signs in: demo-leader's
// grids and their case's photo are not served from a cache, online or off.
async function twoMembers({ leader, cmd, grid, other, at, photoURL, photo }) {
  if (!other) throw new Error('demo-leader has one grid: a second leader needs another grid of the community');
  const admin = await apiSession(base, 'demo-admin', 'gridwatch-admin');
  const second = { username: `e2e-leader2-${tag}`, password: 'e2e-second-leader-password' };
  await must(admin, 'POST', '/api/v1/users', { username: second.username, display_name: 'e2e 第二网格员', role: 'grid_leader', password: second.password, grid_codes: [other.code] });
  const secondAPI = await apiSession(base, second.username, second.password);
  const secondGrids = (await must(secondAPI, 'GET', '/api/v1/grids.geojson')).features.length;
  const leaderGrids = (await must(leader, 'GET', '/api/v1/grids.geojson')).features.length;
  if (secondGrids === leaderGrids) throw new Error(`both leaders see ${secondGrids} grids: the cache check cannot tell them apart`);
  const device = `e2e shared phone ${tag}`;
  const context = await browser.newContext({ ...PHONE, permissions: ['geolocation'], geolocation: { latitude: grid.lat, longitude: grid.lon, accuracy: 12 } });
  const page = await context.newPage();
  const watcher = watch(page, base);
  watcher.expect('GET', /^\/api\/v1\/.*/, 401); // the revoked session's reads
  watcher.expect('POST', /^\/api\/v1\/.*/, 401); // … and its sends
  watcher.expect('GET', /^\/api\/v1\/incidents\/\d+\/attachments\/\d+$/, 403, 404, 503); // demo-leader's photo, asked for by the second leader (offline: nothing saved)
  const signInAs = async (username, password, { filled = '' } = {}) => {
    await waitFor(page, () => document.body.dataset.auth === 'login' && !document.querySelector('#login').hidden, null, async () => `the sign-in screen for ${username} (${JSON.stringify(await state(page))})`);
    const value = await page.inputValue('#login-username');
    if (value !== filled) throw new Error(`the sign-in screen has ${JSON.stringify(value)} filled in, want ${JSON.stringify(filled)}`);
    await page.fill('#login-username', username);
    await page.fill('#login-password', password);
    await page.fill('#login-device', device);
    await page.tap('#login-submit');
  };
  await page.goto(FIELD, { waitUntil: 'domcontentloaded' });
  await signInAs('demo-leader', 'gridwatch-leader');
  await waitFor(page, () => document.body.dataset.auth === 'ok' && document.body.dataset.sw === 'warm', null, async () => `demo-leader signed in, the service worker warm (${JSON.stringify(await state(page))})`);
  // demo-leader's photo, read on this phone, is kept in demo-leader's cache.
  const got = await page.evaluate(async (u) => (await fetch(u)).status, photoURL);
  if (got !== 200) throw new Error(`demo-leader's photo ${photoURL}: HTTP ${got}`);
  const leaderId = leader.me.id;
  const gridsURL = new URL('/api/v1/grids.geojson', base).href;
  const before = { photo: await cacheHolding(page, new URL(photoURL, base).href), grids: await cacheHolding(page, gridsURL) };
  const mine = new RegExp(`^gw-field-u${leaderId}-`);
  if (!before.photo.holding.some((n) => mine.test(n)) || !before.grids.holding.every((n) => mine.test(n)) || !before.grids.holding.length) {
    throw new Error(`demo-leader's photo and grids are not kept in demo-leader's own caches: ${JSON.stringify(before)}`);
  }

  // (a) queued offline …
  const t4 = await dispatchTask(cmd, `e2e 任务四 ${tag}`, at(-0.0002, 0));
  await waitFor(page, (id) => !!document.querySelector(`#task-list .task[data-incident-id="${id}"]`), t4.id, `task ${t4.id} listed`);
  const offlineFrom = watcher.problems.length;
  await context.setOffline(true);
  await waitFor(page, () => document.body.dataset.online === 'false', null, 'offline');
  await openTask(page, t4.id);
  await page.tap('#task-actions [data-step="in_progress"]');
  await waitFor(page, () => document.querySelector('#task-queued .notice[data-kind="queued"]'), null, 'the accept queued');
  await page.evaluate(() => {
    location.hash = 'tasks';
  });
  const titleA = `e2e 上报 ${tag} before the switch`;
  await report(page, { title: titleA, photo, gridId: grid.id });
  await waitFor(page, () => Number(document.body.dataset.queue) === 3, null, async () => `the accept, the report and its photo queued (${JSON.stringify(await state(page))})`);
  // … and the phone signed out by an admin meanwhile.
  const { sessions } = await must(admin, 'GET', `/api/v1/users/${leaderId}/sessions`);
  const sid = sessions.find((x) => x.device === device)?.id;
  if (!sid) throw new Error(`no session of demo-leader named ${device}: ${JSON.stringify(sessions)}`);
  const revoked = await admin('DELETE', `/api/v1/sessions/${sid}`);
  if (revoked.status !== 204) throw new Error(`DELETE /api/v1/sessions/${sid}: HTTP ${revoked.status} ${revoked.text}`);
  const onlineAt = watcher.problems.length;
  await context.setOffline(false);
  // The first send finds the session ended: the second leader signs in.
  await signInAs(second.username, second.password, { filled: 'demo-leader' });
  await waitFor(page, () => document.body.dataset.auth === 'switch' && !document.querySelector('#switch').hidden, null, async () => `the choice: sign in as demo-leader, or discard (${JSON.stringify(await state(page))})`);
  const offer = await page.evaluate(() => ({ text: document.querySelector('#switch-text').textContent, owner: document.querySelector('#switch-owner').textContent, discard: document.querySelector('#switch-discard').textContent }));
  if (!/demo-leader/.test(offer.text) || !/3 item/.test(offer.text) || !/Sign in as demo-leader/.test(offer.owner) || !new RegExp(`continue as ${second.username}`).test(offer.discard)) {
    throw new Error(`the choice offered: ${JSON.stringify(offer)}`);
  }
  await shot(page, 'switch');
  // Nothing of demo-leader's queue went as the second leader.
  const t4mid = await must(cmd, 'GET', `/api/v1/incidents/${t4.id}`);
  if (t4mid.status !== 'dispatched') throw new Error(`task ${t4.id} became ${t4mid.status} while the second leader was signed in`);
  if ((await byTitle(cmd, titleA)).length) throw new Error('demo-leader\'s report was filed while the second leader was signed in');
  // Sign in as demo-leader: the queue goes, as theirs.
  await page.tap('#switch-owner');
  await signInAs('demo-leader', 'gridwatch-leader', { filled: 'demo-leader' });
  await waitFor(page, () => document.body.dataset.auth === 'ok' && Number(document.body.dataset.queue) === 0, null, async () => `demo-leader's queue sent (${JSON.stringify(await state(page))})`);
  const t4after = await must(cmd, 'GET', `/api/v1/incidents/${t4.id}`);
  const accepts = (t4after.history ?? []).filter((e) => e.to === 'in_progress');
  if (t4after.status !== 'in_progress' || accepts.length !== 1 || accepts[0].actor !== 'demo-leader') throw new Error(`task ${t4.id}: ${t4after.status}, accepts ${JSON.stringify(accepts)}; want one, by demo-leader`);
  const filed = await byTitle(cmd, titleA);
  if (filed.length !== 1 || filed[0].created_by !== 'demo-leader') throw new Error(`demo-leader's report: ${JSON.stringify(filed.map((i) => ({ id: i.id, created_by: i.created_by })))}; want one, by demo-leader`);
  forgive(watcher.problems, offlineFrom, OFFLINE, { to: onlineAt });
  await watcher.check('another member signing in on the phone');

  // (e) demo-leader signs out; the second leader signs in.
  await page.evaluate(() => {
    location.hash = 'account';
  });
  await waitFor(page, () => document.body.dataset.tab === 'account', null, 'the account screen');
  // Offline, signing out is refused, with the reason: the server has to end the session.
  const offline3From = watcher.problems.length;
  await context.setOffline(true);
  await waitFor(page, () => document.body.dataset.online === 'false', null, 'offline on the account screen');
  await page.tap('#logout-btn');
  await waitFor(page, () => /Cannot sign out offline/.test(document.querySelector('.toast[data-sign-out="offline"]')?.textContent ?? ''), null, 'signing out refused offline, with the reason');
  if ((await page.evaluate(() => document.body.dataset.auth)) !== 'ok') throw new Error('signing out offline left the app signed out on the phone only');
  await context.setOffline(false);
  await waitFor(page, () => document.body.dataset.online === 'true', null, 'online on the account screen');
  forgive(watcher.problems, offline3From);
  const stillIn = (await must(admin, 'GET', `/api/v1/users/${leaderId}/sessions`)).sessions.filter((x) => x.device === device);
  if (stillIn.length !== 1) throw new Error(`demo-leader's sessions on this phone after the refused sign-out: ${JSON.stringify(stillIn)}`);
  const signOutAt = watcher.problems.length;
  await page.tap('#logout-btn');
  await until(async () => !(await must(admin, 'GET', `/api/v1/users/${leaderId}/sessions`)).sessions.some((x) => x.device === device), 'the phone\'s session ended on the server by signing out');
  await signInAs(second.username, second.password); // nothing of demo-leader's filled in
  await waitFor(page, () => document.body.dataset.auth === 'ok' && document.body.dataset.tasksLoaded !== undefined, null, async () => `the second leader signed in (${JSON.stringify(await state(page))})`);
  const read = () =>
    page.evaluate(
      async ([grids, photo]) => {
        const g = await fetch(grids, { headers: { Accept: 'application/json' } });
        const p = await fetch(photo);
        return { grids: g.ok ? (await g.json()).features.length : -g.status, photo: p.status, photoCached: p.headers.get('X-Gridwatch-Cached') };
      },
      [gridsURL, photoURL],
    );
  const online = await read();
  if (online.grids !== secondGrids || online.photo === 200) throw new Error(`the second leader reads ${JSON.stringify(online)}; want their ${secondGrids} grids and not demo-leader's photo`);
  const after = { photo: await cacheHolding(page, new URL(photoURL, base).href), grids: await cacheHolding(page, gridsURL) };
  if (after.photo.holding.length || after.grids.names.some((n) => mine.test(n))) throw new Error(`demo-leader's data is still cached after signing out: ${JSON.stringify(after)}`);
  // Offline, too: their own grids, and no photo of demo-leader's.
  const offline2From = watcher.problems.length;
  await context.setOffline(true);
  await context.route((u) => u.origin === base.origin, (route) => route.abort('internetdisconnected'));
  const offline = await read();
  await context.unrouteAll({ behavior: 'ignoreErrors' });
  await context.setOffline(false);
  if (offline.grids !== secondGrids || offline.photo === 200) throw new Error(`offline the second leader reads ${JSON.stringify(offline)}; want their ${secondGrids} grids and not demo-leader's photo`);
  forgive(watcher.problems, offline2From);
  // A reload cuts what the page had in flight: the event stream and the
  // map's worker script when the map was starting (after signing out), and
  // the manifest's icon when the browser was fetching it.
  forgive(watcher.problems, signOutAt, /GET \S+\/(api\/v1\/events|maplibre-gl-worker-\w+\.mjs) \(net::ERR_ABORTED\)/);
  forgive(watcher.problems, 0, /GET \S+\/field\/icon-\d+\.png \(net::ERR_ABORTED\)/); // any of this step's reloads
  await shot(page, 'second-member');
  await watcher.check('signed out, then another member');
  await context.close();
  return { second: second.username, queued_as_first: 3, sent_as: 'demo-leader', grids: [leaderGrids, secondGrids], photo_after_sign_out: [online.photo, offline.photo] };
}

// withoutWebGL opens the app where WebGL is missing (getContext answers
// null for it): the maps say they are unavailable, and the lists, the
// position and the report form still work.
async function withoutWebGL() {
  const phone = await apiSession(base, 'demo-leader', 'gridwatch-leader', 'e2e phone without WebGL');
  const fc = await must(phone, 'GET', '/api/v1/grids.geojson');
  const [g] = gridCandidates(fc.features ?? []);
  const context = await browser.newContext({ ...PHONE, permissions: ['geolocation'], geolocation: { latitude: g.lat, longitude: g.lon, accuracy: 20 } });
  await context.addInitScript(() => {
    const get = HTMLCanvasElement.prototype.getContext;
    HTMLCanvasElement.prototype.getContext = function (kind, ...rest) {
      return /webgl/.test(kind) ? null : get.call(this, kind, ...rest);
    };
  });
  await context.addCookies(cookiesOf(phone));
  const page = await context.newPage();
  const watcher = watch(page, base);
  await page.goto(`${FIELD}#grid`, { waitUntil: 'domcontentloaded' });
  await waitFor(page, () => document.querySelector('#grid-map').dataset.state === 'failed' && document.querySelector('#grid-cases li') && document.querySelector('#grid-cams li'), null, async () => `the grid screen without a map (${await page.textContent('#grid-map')})`);
  const text = await page.textContent('#grid-map');
  if (!/Map unavailable/.test(text)) throw new Error(`without WebGL the map box says ${JSON.stringify(text)}`);
  await page.tap('.tab[data-tab="report"]');
  await waitFor(page, () => document.querySelector('#report-map').dataset.state === 'failed' && document.querySelector('#report-form').dataset.lon && document.querySelector('#pos-grid').dataset.inside === 'true', null, 'the report screen with a position and a grid, without a map');
  await shot(page, 'no-webgl');
  await watcher.check('without WebGL');
  await context.close();
  return { grid_map: 'unavailable', lists: true, report_position: true };
}

/** cookiesOf turns a session's cookies into Playwright's, for the service's origin. */
function cookiesOf(call) {
  return call.cookies.map((c) => {
    const [name, ...v] = c.split('=');
    return { name, value: v.join('='), url: base.origin };
  });
}

// The throttled network of the first-load figures.
const NETWORK = { label: '1.6 Mbit/s down, 750 kbit/s up, 150 ms RTT', rttMs: 150, downBps: 1.6e6 / 8, upBps: 750e3 / 8 };

// firstLoad opens the app in a fresh phone, signed in (its device session's
// cookie), on a throttled network, and logs FIELD-BENCH lines: time to
// usable (the task list rendered, a performance mark the app sets) and the
// bytes transferred. Two ways:
//  - CDP Network.emulateNetworkConditions on the page: the cold load, every
//    request the page's own. (Chromium does not apply it to the service
//    worker's requests, so it cannot time a load from the worker's cache.)
//  - a throttling proxy (throttleProxy) in front of the service for a
//    browser of its own: every request, the page's and the service
//    worker's, pays the round trip and shares the bandwidth — cold, then
//    from the service worker's cache (the shell from the cache, "who am I"
//    and the tasks from the network, as a phone with a signal does).
async function firstLoad() {
  const cdpCold = await loadOnce(browser, 'cdp');
  const proxy = await throttleProxy(NETWORK);
  const proxied = await launch({ args: [`--proxy-server=http://127.0.0.1:${proxy.port}`, '--proxy-bypass-list=<-loopback>'] });
  try {
    const proxyRuns = await loadOnce(proxied, 'proxy', proxy);
    if (!(proxy.requests > 0)) throw new Error('the throttling proxy saw no request');
    return { cdp_cold: cdpCold.cold, proxy_cold: proxyRuns.cold, proxy_warm: proxyRuns.warm };
  } finally {
    await proxied.close().catch(() => {});
    proxy.close();
  }
}

// loadOnce loads the app cold in a new context of b (throttled by CDP or by
// the proxy b goes through) and, through the proxy, again once its service
// worker holds the shell.
async function loadOnce(b, how, proxy = null) {
  const phone = await apiSession(base, 'demo-leader', 'gridwatch-leader', `e2e bench phone (${how})`);
  const context = await b.newContext({ ...PHONE });
  await context.addCookies(cookiesOf(phone));
  const page = await context.newPage();
  const watcher = watch(page, base);
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  if (how === 'cdp') {
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: NETWORK.rttMs, downloadThroughput: Math.round(NETWORK.downBps), uploadThroughput: Math.round(NETWORK.upBps) });
  }
  const sizes = new Map(); // requestId → encoded bytes received
  const urls = new Map();
  cdp.on('Network.requestWillBeSent', (ev) => urls.set(ev.requestId, ev.request.url));
  cdp.on('Network.loadingFinished', (ev) => sizes.set(ev.requestId, ev.encodedDataLength));
  const measure = async (label) => {
    sizes.clear();
    urls.clear();
    await page.goto(FIELD, { waitUntil: 'commit', timeout: timeoutMs * 2 });
    await waitFor(page, () => performance.getEntriesByName('field-tasks-rendered').length > 0, null, `${label}: the task list rendered`, timeoutMs * 2);
    const usable = await page.evaluate(() => performance.getEntriesByName('field-tasks-rendered')[0].startTime);
    let shell = 0;
    let api = 0;
    for (const [id, n] of sizes) {
      if (new URL(urls.get(id) ?? base.href).pathname.startsWith('/api/')) api += n;
      else shell += n;
    }
    return { usable_ms: Math.round(usable), page_shell_bytes: shell, page_api_bytes: api };
  };
  const out = { cold: await measure(`${how} cold`) };
  console.log(`FIELD-BENCH ${JSON.stringify({ what: 'first load, cold', throttled_by: how === 'cdp' ? 'CDP Network.emulateNetworkConditions' : 'proxy', network: NETWORK.label, ...out.cold })}`);
  if (how === 'proxy') {
    // The service worker installs (precaching the shell: the map library
    // too, which the first screen does not load) and takes the page over.
    const before = proxy.bytesDown;
    await waitFor(page, () => document.body.dataset.sw === 'warm', null, 'the service worker warm', timeoutMs * 3);
    out.cold.after_usable_precache_bytes = proxy.bytesDown - before;
    console.log(`FIELD-BENCH ${JSON.stringify({ what: 'service worker install after the first load (shell precache, map library included, and the offline reads)', throttled_by: 'proxy', network: NETWORK.label, bytes: out.cold.after_usable_precache_bytes })}`);
    out.warm = await measure(`${how} from the cache`);
    console.log(`FIELD-BENCH ${JSON.stringify({ what: 'first load, from the service worker cache', throttled_by: 'proxy', network: NETWORK.label, ...out.warm })}`);
  }
  forgive(watcher.problems, 0); // a navigation cuts the event stream of the one before
  await watcher.check(`first load (${how})`);
  await context.close();
  return out;
}

/**
 * throttleProxy is a plain HTTP proxy on a free loopback port that makes a
 * slow network: each request waits half the round trip before it is sent on
 * and its answer the other half before it starts, and every body goes
 * through one shared budget of bytes per second per direction.
 */
function throttleProxy({ rttMs, downBps, upBps }) {
  const budget = (bps) => {
    let free = 0; // when the link is next free (ms)
    return (n) => {
      const now = performance.now();
      free = Math.max(free, now) + (n * 1000) / bps;
      return free - now;
    };
  };
  const downLink = budget(downBps);
  const down = (n) => {
    state.bytesDown += n;
    return downLink(n);
  };
  const up = budget(upBps);
  // pipe copies src to dst at the budget's pace.
  const pipe = (src, dst, take) => {
    let pending = 0;
    let ended = false;
    src.on('data', (chunk) => {
      src.pause();
      pending++;
      setTimeout(() => {
        dst.write(chunk);
        pending--;
        src.resume();
        if (ended && pending === 0) dst.end();
      }, take(chunk.length));
    });
    src.on('end', () => {
      ended = true;
      if (pending === 0) dst.end();
    });
    src.on('error', () => dst.destroy());
  };
  const state = { requests: 0, bytesDown: 0, port: 0, close: () => server.close() };
  const server = http.createServer((req, res) => {
    state.requests++;
    const target = new URL(req.url);
    const headers = { ...req.headers };
    delete headers['proxy-connection'];
    setTimeout(() => {
      const upstream = http.request({ host: target.hostname, port: target.port, path: target.pathname + target.search, method: req.method, headers }, (answer) => {
        setTimeout(() => {
          res.writeHead(answer.statusCode, answer.headers);
          pipe(answer, res, down);
        }, rttMs / 2);
      });
      upstream.on('error', () => res.destroy());
      res.on('close', () => upstream.destroy());
      pipe(req, upstream, up);
    }, rttMs / 2);
  });
  server.keepAliveTimeout = 60000;
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      state.port = server.address().port;
      resolve(state);
    });
  });
}

// benchOnly is the mode of `make bench` (BenchmarkFieldFirstLoad): the
// first-load figures alone, runs times, beside the dashboard's first load
// on the same throttled network (the baseline), and their medians.
async function benchOnly(runs) {
  browser = await launch();
  const all = { field_cold_cdp_ms: [], field_cold_proxy_ms: [], field_warm_proxy_ms: [], field_shell_bytes: [], field_precache_bytes: [], dashboard_cold_proxy_ms: [], dashboard_bytes: [] };
  for (let i = 0; i < runs; i++) {
    const f = await firstLoad();
    all.field_cold_cdp_ms.push(f.cdp_cold.usable_ms);
    all.field_cold_proxy_ms.push(f.proxy_cold.usable_ms);
    all.field_warm_proxy_ms.push(f.proxy_warm.usable_ms);
    all.field_shell_bytes.push(f.proxy_cold.page_shell_bytes);
    all.field_precache_bytes.push(f.proxy_cold.after_usable_precache_bytes);
    const d = await dashboardLoad();
    all.dashboard_cold_proxy_ms.push(d.usable_ms);
    all.dashboard_bytes.push(d.bytes);
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const out = { runs, network: NETWORK.label };
  for (const [k, xs] of Object.entries(all)) out[k] = median(xs);
  console.log(`FIELD-BENCH-SUMMARY ${JSON.stringify(out)}`);
  return out;
}

// dashboardLoad is the baseline: the command centre's dashboard loaded cold
// through the same throttling proxy, signed in, until it shows the number
// of grids (its first data), and the bytes it took.
async function dashboardLoad() {
  const cmd = await apiSession(base, 'demo-commander', 'gridwatch-commander');
  const proxy = await throttleProxy(NETWORK);
  const b = await launch({ args: [`--proxy-server=http://127.0.0.1:${proxy.port}`, '--proxy-bypass-list=<-loopback>'] });
  try {
    const context = await b.newContext({ viewport: { width: 1440, height: 900 } });
    await context.addCookies(cookiesOf(cmd));
    await context.addInitScript(() => {
      const mo = new MutationObserver(() => {
        const e = document.getElementById('grid-count');
        if (e && /\d/.test(e.textContent) && !window.__gridsAt) {
          window.__gridsAt = performance.now();
          mo.disconnect();
        }
      });
      mo.observe(document, { subtree: true, childList: true, characterData: true });
    });
    const page = await context.newPage();
    const before = proxy.bytesDown;
    await page.goto(base.href, { waitUntil: 'commit', timeout: timeoutMs * 2 });
    await waitFor(page, () => !!window.__gridsAt, null, 'the dashboard counting its grids', timeoutMs * 2);
    const ms = await page.evaluate(() => window.__gridsAt);
    await context.close();
    return { usable_ms: Math.round(ms), bytes: proxy.bytesDown - before };
  } finally {
    await b.close().catch(() => {});
    proxy.close();
  }
}

const benchRuns = Number(process.env.FIELD_BENCH_RUNS || 0);
await main(benchRuns > 0 ? () => benchOnly(benchRuns) : run, () => browser);
