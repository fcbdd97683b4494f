// Browser test of incidents on the map, through the real service.
//
//   node e2e/incidents.mjs <baseURL> <artifactDir>
//
// 1. Signs in as demo-commander (env GW_USER / GW_PASSWORD) and waits for the
//    grids and the first load of incidents.
// 2. From this process (not the page) posts an incident through the API with
//    the demo integration token (env GW_TOKEN), at a point inside a grid-level
//    feature of /api/v1/grids.geojson, and checks the server put it in that grid.
// 3. Waits — without reloading — until the page knows the case and shows the
//    "新事件 New incident" toast for it: through the live event stream, or the
//    15 s polling fallback when the stream is not available.
// 4. Zooms the map to the case and clicks its point: the incident view opens
//    on it, status 上报 reported.
// 5. Registers it (立案) and dispatches it (派遣) to the default assignee, the
//    grid's leader, from the view's action buttons; the view shows 派遣
//    dispatched, an assignee, and a history of 3 entries; the API agrees
//    (status dispatched, version 3).
// 6. The grid link opens the grid panel, whose case list holds the case; the
//    "open" shading gives that grid a count of at least 1. Screenshot
//    incidents.png.
// 7. Someone else (a second session, from this process) moves the case while
//    the page has a step's form open: the view says "Someone else changed it —
//    reloaded" and shows the new status (through the live event, or the 409
//    the server answers the page's stale version).
// 8. 统计 Stats: this month's table per grid has the grid's row with the case
//    registered; the CSV download is a CSV with the same row.
// 9. Bulk: two cases posted as NDJSON appear on the page; over the live
//    stream they are read by id (?ids=), with no reload of the whole list.
// 10. A browser whose clock is 3 h fast (its Date shifted, in a second
//    context) signs in and opens the same case: its deadline countdown is the
//    server's, the same as the first page's, not 3 h shorter (the page reads
//    the server's time off every API answer: body[data-clock-skew] ≈ −3 h).
// Step 6 also checks the grid's community and street count its case.
// Any page error, console error, CSP violation, error banner or unexpected
// HTTP error fails the run. Prints one JSON line and exits 0, else prints
// "e2e: FAIL: …" and exits 1.
// Environment: CHROMIUM (default /usr/bin/chromium), E2E_TIMEOUT_MS (default
// 20000; keep it above the 15 s polling interval), GW_E2E_LIVE=polling (the
// page's event stream is answered 501, to test the polling fallback).

import { randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { gridCandidates, gridFeatures, launch, openPage, panelShows, signIn, timeoutMs, waitFor, waitGrids, watch, main, passed, demoToken, scriptArgs, clickAt, pointAt, bearerFetch, holdAnswer } from './common.mjs';

const { base, args: [artifactDir], started } = scriptArgs('incidents.mjs', '<artifactDir>', timeoutMs * 9 + 20000);
const user = process.env.GW_USER || 'demo-commander';
const password = process.env.GW_PASSWORD || 'gridwatch-commander';
const token = demoToken;
const forcePolling = process.env.GW_E2E_LIVE === 'polling';

let browser;

/** api calls the service from this process with the integration token. */
async function api(method, p, body) {
  const res = await bearerFetch(base, token, method, p, body);
  const { text } = res;
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // reported below with the status
  }
  if (!res.ok) throw new Error(`${method} ${p}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return json;
}

/** session signs in from this process and returns a call function with its cookie and CSRF token. */
async function session(username, password) {
  const res = await fetch(new URL('/api/v1/auth/login', base), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  if (!res.ok) throw new Error(`sign-in of ${username} from the test: HTTP ${res.status}`);
  const me = await res.json();
  const cookie = res.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  return async (method, p, body) => {
    const r = await fetch(new URL(p, base), {
      method,
      headers: { Cookie: cookie, 'X-CSRF-Token': me.csrf_token, Accept: 'application/json', 'Content-Type': 'application/json' },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${p} as ${username}: HTTP ${r.status} ${text.slice(0, 300)}`);
    return JSON.parse(text);
  };
}

/** viewState is what the incident view shows. */
function viewState(page) {
  return page.evaluate(() => {
    const v = document.querySelector('#incident-view');
    const text = (f) => v?.querySelector(`[data-field="${f}"]`)?.textContent.trim() ?? null;
    return {
      open: !!v && !v.hidden,
      id: v?.dataset.incidentId ?? null,
      status: v?.dataset.status ?? null,
      version: v?.dataset.version ?? null,
      statusText: text('status'),
      title: text('title'),
      assignee: text('assignee'),
      history: v?.querySelectorAll('#incident-history > li.timeline-item').length ?? 0,
      actions: [...(v?.querySelectorAll('[data-transition]') ?? [])].map((b) => b.dataset.transition),
      notice: text('notice'),
      formError: [...(v?.querySelectorAll('.transition-form .form-error') ?? [])].filter((e) => !e.hidden).map((e) => e.textContent.trim()).join('; '),
    };
  });
}

async function waitStatus(page, id, status, what) {
  await waitFor(
    page,
    ([id, status]) => {
      const v = document.querySelector('#incident-view');
      return v && !v.hidden && v.dataset.incidentId === String(id) && v.dataset.status === status && !document.querySelector('#transition-submit[data-busy]');
    },
    [id, status],
    async () => `${what} (view: ${JSON.stringify(await viewState(page))})`,
  );
}

/** transition clicks the step's button, waits for its form, and confirms. */
async function transition(page, id, to, note) {
  await page.click(`#incident-view [data-transition="${to}"]`);
  await waitFor(page, (to) => document.querySelector('#transition-form')?.dataset.to === to, to, `the ${to} form`);
  await page.fill('#transition-note', note);
  if (to === 'dispatched') {
    // The assignee list loads from the grid's team, defaulting to its leader.
    await waitFor(
      page,
      () => {
        const s = document.querySelector('#dispatch-assignee');
        return s && s.value !== '' && !document.querySelector('#transition-submit').disabled;
      },
      null,
      async () => `the default assignee (view: ${JSON.stringify(await viewState(page))})`,
    );
  }
  const assignee = to === 'dispatched' ? await page.evaluate(() => document.querySelector('#dispatch-assignee').selectedOptions[0]?.textContent.trim()) : null;
  await page.click('#transition-submit');
  await waitStatus(page, id, to, `status ${to} after the ${to} step`);
  return assignee;
}

async function run() {
  await mkdir(artifactDir, { recursive: true });
  browser = await launch();
  const page = await browser.newPage({ viewport: { width: 1600, height: 900 }, deviceScaleFactor: 1 });
  const watcher = watch(page, base);
  const { problems, check } = watcher;
  watcher.expect('GET', /^\/api\/v1\/me$/, 401); // "who am I?" before signing in

  if (forcePolling) {
    await page.route(/\/api\/v1\/events(\?|$)/, (route) =>
      route.fulfill({ status: 501, contentType: 'application/json', body: '{"error":{"code":"not_implemented","message":"live events are not implemented"}}' }),
    );
  }

  const resp = await page.goto(base.href, { waitUntil: 'domcontentloaded', timeout: timeoutMs });
  if (!resp || !resp.ok()) throw new Error(`GET ${base.href}: HTTP ${resp?.status()}`);
  await signIn(page, user, password);
  const gridsLoaded = await waitGrids(page, problems);
  await waitFor(page, () => document.body.dataset.incidentsLoaded !== undefined, null, async () => `first load of incidents (${problems.join('; ')})`);
  const before = await page.evaluate(() => ({ open: Number(document.body.dataset.incidentsLoaded), live: document.body.dataset.live ?? '' }));
  await check('after load');

  // A point inside a grid-level feature (with a little jitter so repeated runs do not stack).
  const features = await gridFeatures(page, base);
  const candidates = gridCandidates(features);
  if (candidates.length === 0) throw new Error('no grid-level feature in /api/v1/grids.geojson');
  const grid = candidates[randomBytes(1)[0] % candidates.length];
  const jitter = () => (randomBytes(1)[0] / 255 - 0.5) * 0.0002;
  const lon = +(grid.lon + jitter()).toFixed(7);
  const lat = +(grid.lat + jitter()).toFixed(7);
  const title = `e2e 暴露垃圾 ${randomBytes(4).toString('hex')}`;

  // Filed by an integration, from outside the page.
  const postedAt = Date.now();
  const created = await api('POST', '/api/v1/incidents', { source: 'hotline', category: '0101', title, location: { type: 'Point', coordinates: [lon, lat] } });
  const id = Number(created?.id);
  if (!(id > 0)) throw new Error(`POST /api/v1/incidents answered no id: ${JSON.stringify(created)}`);
  if (created.status !== 'reported') throw new Error(`new incident has status ${created.status}, want reported`);
  if (Number(created.grid?.id) !== grid.id) throw new Error(`incident at ${lon},${lat} was put in grid ${JSON.stringify(created.grid)}, want ${grid.id} (${grid.code})`);

  // It appears on the open page, without a reload, with a toast.
  await waitFor(
    page,
    (id) => window.gridwatchIncidents?.has(id) && !!document.querySelector(`.toast[data-incident-id="${id}"]`),
    id,
    async () => `incident ${id} on the page with a toast (live: ${await page.evaluate(() => document.body.dataset.live)}; ${problems.join('; ')})`,
    Math.max(timeoutMs, 18000), // polling, the fallback, comes every 15 s
  );
  const appearedMs = Date.now() - postedAt;
  const live = await page.evaluate(() => document.body.dataset.live ?? '');
  const toastText = await page.evaluate((id) => document.querySelector(`.toast[data-incident-id="${id}"] .toast-text`)?.textContent.trim(), id);
  if (!toastText?.includes(title)) throw new Error(`toast says ${JSON.stringify(toastText)}, want the title ${title}`);

  // Open it from the map: zoom in on it and click its point.
  const at = await pointAt(page, [lon, lat]);
  if (!at.onCanvas) throw new Error(`the incident's point ${JSON.stringify(at)} is covered`);
  await clickAt(page, at, 30);
  await waitStatus(page, id, 'reported', `incident view of ${id} after clicking its point`);
  const opened = await viewState(page);
  if (opened.title !== title) throw new Error(`view shows title ${JSON.stringify(opened.title)}, want ${title}`);
  if (!opened.actions.includes('registered') || !opened.actions.includes('rejected')) throw new Error(`actions offered for a reported case: ${opened.actions.join(', ')}`);

  // Register, then dispatch to the default assignee.
  await transition(page, id, 'registered', 'e2e: 立案');
  const assigneeOption = await transition(page, id, 'dispatched', 'e2e: 派遣给网格长');
  const done = await viewState(page);
  if (!done.statusText?.includes('派遣') || !done.statusText.includes('dispatched')) throw new Error(`status shown is ${JSON.stringify(done.statusText)}, want 派遣 dispatched`);
  if (done.history !== 3) throw new Error(`history has ${done.history} entries, want 3 (reported, registered, dispatched)`);
  if (!done.assignee || done.assignee === '—') throw new Error(`no assignee shown after dispatch (${JSON.stringify(done)})`);
  if (done.notice) throw new Error(`unexpected notice: ${done.notice}`);

  const server = await api('GET', `/api/v1/incidents/${id}`);
  if (server.status !== 'dispatched' || server.version !== 3) throw new Error(`server has status ${server.status} version ${server.version}, want dispatched 3`);
  // The reporting integration sees the status, not who handles it.
  if (server.assignee != null || server.history != null) throw new Error(`the integration sees the handler or the history: ${JSON.stringify(server)}`);
  if (!/网格长|leader/i.test(done.assignee ?? '')) throw new Error(`dispatched to ${JSON.stringify(done.assignee)} (option ${JSON.stringify(assigneeOption)}), want the grid's leader`);
  const onMap = await page.evaluate((id) => window.gridwatchIncidents.get(id)?.status, id);
  if (onMap !== 'dispatched') throw new Error(`the map's copy of ${id} has status ${onMap}`);

  // The grid panel lists the case; the "open" shading counts it.
  await page.click('#incident-view [data-field="grid"] button');
  await panelShows(page, { name: grid.name, code: grid.code });
  await waitFor(page, (id) => !!document.querySelector(`#panel .case-item[data-incident-id="${id}"]`), id, async () => `case ${id} in the grid panel's list (${await page.textContent('#panel [data-field="cases-section"]').catch(() => '?')})`);
  await page.click('[data-choropleth="open"]');
  await waitFor(
    page,
    (gid) => (window.gridwatchMap.getFeatureState({ source: 'gw-grids', id: gid })?.open ?? 0) >= 1,
    grid.id,
    'the open count of the grid in its feature-state',
  );
  // Its community and its street count it too, and at least as many as the grid.
  const byId = new Map(features.map((f) => [Number(f.id ?? f.properties.id), f]));
  const community = Number(byId.get(grid.id)?.properties.parent_id);
  const street = Number(byId.get(community)?.properties.parent_id);
  if (byId.get(community)?.properties.level !== 'community' || byId.get(street)?.properties.level !== 'street') {
    throw new Error(`grid ${grid.code} has no community and street above it in /api/v1/grids.geojson`);
  }
  const shade = await page.evaluate(
    (ids) => ids.map((id) => window.gridwatchMap.getFeatureState({ source: 'gw-grids', id })?.open ?? 0),
    [grid.id, community, street],
  );
  if (!(shade[1] >= shade[0] && shade[2] >= shade[1] && shade[0] >= 1)) {
    throw new Error(`open counts grid ${shade[0]}, community ${shade[1]}, street ${shade[2]}: want the community and the street to count the grid's cases`);
  }
  const cases = await page.evaluate(() => document.querySelectorAll('#panel .case-item').length);
  await page.evaluate(() => new Promise((r) => window.gridwatchMap.once('idle', r) && window.gridwatchMap.triggerRepaint()));

  const shot = path.join(artifactDir, 'incidents.png');
  await page.screenshot({ path: shot });
  await page.click('[data-choropleth="none"]');
  await check('after dispatch');

  // A concurrent change: the page opens the "accept" form, someone else accepts first.
  watcher.expect('POST', new RegExp(`^/api/v1/incidents/${id}/transitions$`), 409);
  await page.click('#incident-view [data-transition="in_progress"]');
  await waitFor(page, () => document.querySelector('#transition-form')?.dataset.to === 'in_progress', null, 'the in_progress form');
  const other = await session('demo-commander', 'gridwatch-commander');
  await other('POST', `/api/v1/incidents/${id}/transitions`, { to: 'in_progress', version: 3, note: 'e2e: someone else' });
  // If the live event has not already reloaded the view, the stale submit gets the 409.
  await page.evaluate(() => document.querySelector('#transition-submit')?.click());
  await waitFor(
    page,
    (id) => {
      const v = document.querySelector('#incident-view');
      const notice = v?.querySelector('[data-field="notice"]');
      return v?.dataset.incidentId === String(id) && v.dataset.status === 'in_progress' && v.dataset.version === '4' && notice && !notice.hidden && notice.textContent.includes('Someone else changed it');
    },
    id,
    async () => `the view reloaded after someone else's change, saying so (view: ${JSON.stringify(await viewState(page))})`,
  );
  const concurrent = await viewState(page);

  // A late answer: the page's load of a case, read before someone else
  // registers it and answered after the reload that change's event brought,
  // must not take the page back to the older version. (Polling, the change
  // comes with the next poll instead: the same reload, up to 15 s later.)
  // So must the grid's list of cases, read again after each of these.
  const panelGrid = await page.evaluate(() => document.querySelector('#panel').dataset.gridId);
  // The list's reload after the change above first (600 ms after it), lest it be the one held.
  await waitFor(page, (id) => document.querySelector(`#panel .case-item[data-incident-id="${id}"]`)?.dataset.status === 'in_progress', id, `case ${id} in_progress in grid ${panelGrid}'s list`);
  const gridCases = await holdAnswer(page, /\/api\/v1\/incidents\?/, `grid ${panelGrid}'s list of cases`, (u) => u.searchParams.get('grid') === panelGrid);
  const lateCase = await api('POST', '/api/v1/incidents', { source: 'hotline', category: '0101', title: `${title} late`, location: { type: 'Point', coordinates: [lon, lat] } });
  await waitFor(page, (id) => window.gridwatchIncidents.has(id), lateCase.id, `case ${lateCase.id} in the page's store`);
  const held = await holdAnswer(page, new RegExp(`/api/v1/incidents/${lateCase.id}$`), `the page's load of case ${lateCase.id}`);
  let lateView;
  let lateItem;
  try {
    const listed = await (await gridCases.read()).res.json();
    if (!(listed.incidents ?? []).some((i) => i.id === lateCase.id)) throw new Error(`the held list of grid ${panelGrid}'s cases has no case ${lateCase.id}`);
    await page.evaluate((id) => window.gridwatchIncidents.open(id), lateCase.id);
    const early = await (await held.read()).res.json();
    if (early.status !== 'reported') throw new Error(`the held load of case ${lateCase.id} says ${early.status}, want reported`);
    await other('POST', `/api/v1/incidents/${lateCase.id}/transitions`, { to: 'registered', version: early.version, note: 'e2e: registered meanwhile' });
    await waitFor(
      page,
      ([id, v]) => {
        const view = document.querySelector('#incident-view');
        return view?.dataset.incidentId === String(id) && view.dataset.status === 'registered' && view.dataset.version === String(v);
      },
      [lateCase.id, early.version + 1],
      async () => `case ${lateCase.id} registered on the page, from the load after the change (view: ${JSON.stringify(await viewState(page))})`,
    );
    const answered = await page.evaluate(() => document.querySelector('#incident-view').dataset.answered);
    held.release();
    await waitFor(page, (n) => document.querySelector('#incident-view').dataset.answered !== n, answered, `the page taking the held load of case ${lateCase.id}`);
    lateView = await viewState(page);
    if (lateView.status !== 'registered' || lateView.version !== String(early.version + 1)) throw new Error(`a load of case ${lateCase.id} read before it was registered, answered after, took the page back: ${JSON.stringify(lateView)}`);
    const ITEM = `#panel .case-item[data-incident-id="${lateCase.id}"]`;
    await waitFor(page, (sel) => document.querySelector(sel)?.dataset.status === 'registered', ITEM, async () => `case ${lateCase.id} registered in grid ${panelGrid}'s list (${await page.evaluate((sel) => document.querySelector(sel)?.outerHTML.slice(0, 200), ITEM)})`);
    const listAnswered = await page.evaluate(() => document.querySelector('#panel').dataset.casesAnswered);
    gridCases.release();
    await waitFor(page, (n) => document.querySelector('#panel').dataset.casesAnswered !== n, listAnswered, `grid ${panelGrid}'s list taking its held load`);
    lateItem = await page.evaluate((sel) => document.querySelector(sel)?.dataset.status ?? null, ITEM);
    if (lateItem !== 'registered') throw new Error(`grid ${panelGrid}'s list of cases, read before case ${lateCase.id} was registered and answered after, shows it ${lateItem}`);
  } finally {
    await held.stop();
    await gridCases.stop();
  }

  // The monthly report lists the grid, and downloads as CSV.
  await page.click('#stats-btn');
  await waitFor(
    page,
    (code) => document.querySelector('#stats-dialog')?.dataset.state === 'ok' && !!document.querySelector(`#stats-table tr[data-key="${code}"]`),
    grid.code,
    async () => `the statistics table with grid ${grid.code} (status: ${await page.textContent('#stats-dialog .tab-status').catch(() => '?')})`,
  );
  const statsRow = await page.evaluate((code) => {
    const table = document.querySelector('#stats-table');
    const heads = [...table.querySelectorAll('thead th')].map((th) => th.textContent.trim());
    const cells = [...table.querySelector(`tr[data-key="${code}"]`).cells].map((td) => td.textContent.trim());
    return Object.fromEntries(heads.map((h, i) => [h, cells[i]]));
  }, grid.code);
  const registeredCol = Object.keys(statsRow).find((h) => h.includes('Registered'));
  if (!registeredCol || !(Number(statsRow[registeredCol]) >= 1)) throw new Error(`stats row of grid ${grid.code}: ${JSON.stringify(statsRow)}, want Registered >= 1`);
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: timeoutMs }), page.click('#stats-csv')]);
  const csvPath = path.join(artifactDir, 'incidents-stats.csv');
  await download.saveAs(csvPath);
  const csv = await readFile(csvPath, 'utf8');
  if (!csv.split(/\r?\n/).some((line) => line.startsWith(`${grid.code},`))) throw new Error(`the CSV download has no row for ${grid.code}: ${csv.slice(0, 300)}`);
  await page.click('#stats-dialog .dialog-close');
  await check('after stats');

  // 9. A bulk upload: the page adds the new cases the event names, without
  //    reading the whole list again (live events only: polling reloads).
  let fullLoads = 0;
  let byIds = 0;
  const countLoads = (req) => {
    const u = new URL(req.url());
    if (u.pathname !== '/api/v1/incidents') return;
    if (u.searchParams.has('ids')) byIds++;
    else if (u.searchParams.has('status')) fullLoads++;
  };
  page.on('request', countLoads);
  const line = (i) => JSON.stringify({ source: 'sensor', category: '0101', title: `${title} bulk ${i}`, location: { type: 'Point', coordinates: [lon, lat] } });
  const bulkRes = await fetch(new URL('/api/v1/incidents/bulk', base), {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/x-ndjson' },
    body: `${line(1)}\n${line(2)}\n`,
  });
  if (!bulkRes.ok) throw new Error(`POST /api/v1/incidents/bulk: HTTP ${bulkRes.status}`);
  const bulkIds = (await bulkRes.text()).trim().split('\n').map((l) => JSON.parse(l)).filter((r) => r.status === 'created').map((r) => r.id);
  if (bulkIds.length !== 2) throw new Error(`bulk created ${JSON.stringify(bulkIds)}, want 2 cases`);
  await waitFor(
    page,
    (ids) => ids.every((id) => window.gridwatchIncidents?.has(id)),
    bulkIds,
    async () => `the bulk cases ${bulkIds} on the page (live: ${await page.evaluate(() => document.body.dataset.live)})`,
    Math.max(timeoutMs, 18000),
  );
  page.off('request', countLoads);
  const liveNow = await page.evaluate(() => document.body.dataset.live ?? '');
  if (liveNow === 'sse' && (fullLoads !== 0 || byIds < 1)) {
    throw new Error(`after a bulk upload of 2 the page read the whole list ${fullLoads} times and by ids ${byIds} times: want 0 and at least 1`);
  }
  await check('after bulk');

  // 10. A browser whose clock is 3 h fast counts down to the same deadline.
  const FAST_MS = 3 * 3600e3;
  const fast = await openPage(browser, base);
  await fast.context.addInitScript((off) => {
    const Real = Date;
    const realNow = Real.now.bind(Real);
    function Shifted(...a) {
      if (!new.target) return new Real(realNow() + off).toString();
      return a.length ? new Real(...a) : new Real(realNow() + off);
    }
    Shifted.prototype = Real.prototype;
    Shifted.now = () => realNow() + off;
    Shifted.parse = Real.parse;
    Shifted.UTC = Real.UTC;
    globalThis.Date = Shifted;
  }, FAST_MS);
  await fast.page.goto(base.href);
  await signIn(fast.page, user, password);
  await waitGrids(fast.page, fast.watcher.problems);
  const dueOf = async (p) => {
    await p.evaluate((id) => window.gridwatchIncidents.open(id), id);
    const shown = (id) => {
      const v = document.querySelector('#incident-view');
      return !!v && !v.hidden && v.dataset.incidentId === String(id) && !!v.querySelector('[data-field="deadline"]')?.textContent.trim();
    };
    await waitFor(p, shown, id, `case ${id}'s page with its deadline`);
    return p.evaluate(() => {
      const d = document.querySelector('#incident-view [data-field="deadline"]');
      return { text: d.textContent.trim(), overdue: d.dataset.overdue, skew: Number(document.body.dataset.clockSkew ?? 0), now: Date.now() };
    });
  };
  let due = null;
  for (let i = 0; i < 5; i++) { // the two pages read a moment apart: a minute may turn between them
    due = { right: await dueOf(page), fast: await dueOf(fast.page) };
    if (due.right?.text && due.right.text === due.fast?.text && due.right.overdue === due.fast.overdue) break;
  }
  if (!due.right?.text || due.right.text !== due.fast?.text || due.right.overdue !== due.fast.overdue) throw new Error(`the deadline of case ${id} in a browser 3 h fast: ${JSON.stringify(due.fast)}; with the right clock: ${JSON.stringify(due.right)}`);
  if (Math.abs(due.fast.now - Date.now() - FAST_MS) > 60e3) throw new Error(`the fast browser's clock is ${due.fast.now - Date.now()} ms ahead, want about ${FAST_MS}`);
  if (Math.abs(due.fast.skew + FAST_MS) > 5000) throw new Error(`the fast browser's page reads a skew of ${due.fast.skew} ms, want about ${-FAST_MS}`);
  await fast.watcher.check('a browser 3 h fast');
  await fast.context.close();

  return passed(check, 'at the end', base, {
    user,
    clock_fast_3h: { deadline: due.fast.text, skew_ms: due.fast.skew },
    grids_loaded: gridsLoaded,
    open_before: before.open,
    incident: { id, title, grid: grid.code, lon, lat },
    live,
    appeared_ms: appearedMs,
    dispatched_to: assigneeOption,
    history: done.history,
    grid_cases: cases,
    concurrent: { status: concurrent.status, version: Number(concurrent.version), notice: concurrent.notice },
    stats_row: statsRow,
    bulk: { ids: bulkIds, full_loads: fullLoads, by_ids: byIds },
    csv: csvPath,
    screenshot: shot,
    total_ms: Date.now() - started,
  });
}

await main(run, () => browser);
