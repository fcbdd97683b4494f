// Patrols (巡查) on the command centre's dashboard, in headless Chromium.
//
//   node e2e/patrols.mjs <baseURL> <artifactDir>
//
// demo-leader (the grid leader of community 410105001001) starts a patrol
// through the API (POST /api/v1/patrols, started 15 minutes ago) and sends
// points inside one of their grids (found through the grids API), the last
// one 12 minutes old. Then, as demo-commander on the dashboard:
//   - the "巡查 Patrols" layer shows the leader as a marker at that point,
//     labelled with their name and coloured "lost" (no fix for ≥ 10 min);
//   - a point 5 minutes old, then one of now, posted through the API move
//     the marker live (the event stream; the list is not read again
//     meanwhile, but for the layer's own 30 s re-read) and turn it
//     "stale", then "fresh";
//   - a click on the marker opens the card (the grid panel shut): the name,
//     the distance the API counts, the grids covered, the last fix's age
//     and accuracy;
//   - "今日轨迹 Today's tracks" draws the track, a segment per step,
//     coloured by time; yesterday (the date picker) has none, and leaves
//     nothing drawn; today again, asked for twice in a row, is drawn again;
//   - the layer's legend switch hides and shows the marker;
//   - Stats → "网格员 Members" has the leader's row (patrols, distance,
//     grids) and sorts by a column; its CSV downloads with the row, and a
//     member whose display name starts with "=" (created through the API,
//     with a patrol of their own) has it as text there ('=…), no formula;
//   - ending the patrol (API) takes the marker off the map, live; its open
//     card shows the end, and a duration to it that no longer runs.
// As the grid leader the dashboard has no patrol layer (no patrols.read): it
// asks nothing of /api/v1/patrols.
// Screenshots patrols-map.png and patrols-stats.png in artifactDir.
// Prints one JSON line; exits 0 on success, 1 on failure (with the reason).

import fs from 'node:fs';
import path from 'node:path';
import { request as apiRequest } from 'playwright-core';
import { pointInGeometry, interiorPoint } from '../src/geometry.js';
import { launch, main, openPage, passed, scriptArgs, signIn, timeoutMs, waitFor, waitGrids } from './common.mjs';

const { base, args: [artifactDir], started } = scriptArgs('patrols.mjs', '<artifactDir>', timeoutMs * 14 + 30000);

const LEADER = { username: 'demo-leader', password: 'gridwatch-leader', community: '410105001001' };
const COMMANDER = { username: 'demo-commander', password: 'gridwatch-commander' };

let browser;

/** apiAs signs a user in through the API; call(method, path, body, headers) answers {status, body}. */
async function apiAs({ username, password }) {
  const ctx = await apiRequest.newContext({ baseURL: base.href });
  const login = await ctx.post('/api/v1/auth/login', { data: { username, password } });
  if (!login.ok()) throw new Error(`sign-in as ${username}: HTTP ${login.status()} ${await login.text()}`);
  const me = await login.json();
  const call = async (method, p, body, headers = {}) => {
    const res = await ctx.fetch(p, { method, headers: { Accept: 'application/json', 'X-CSRF-Token': me.csrf_token, ...headers }, data: body });
    const text = await res.text();
    let parsed = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = text;
    }
    return { status: res.status(), body: parsed };
  };
  return { ctx, me, call };
}

/** seconds reads a duration as the card shows it ("2 h 05 min", "12 min 40 s", "35 s") in seconds, or NaN. */
function seconds(text) {
  const m = /^(?:(\d+) h )?(?:(\d+) min)? ?(?:(\d+) s)?$/.exec(String(text ?? '').trim());
  if (!m || (!m[1] && !m[2] && !m[3])) return NaN;
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
}

/** drawnTracks waits for the map to go idle (sources updated, frame drawn), then reads the tracks on it. */
function drawnTracks(page) {
  return page.evaluate(
    () =>
      new Promise((resolve) => {
        const map = window.gridwatchMap;
        map.once('idle', () => {
          const fs = map.getLayer('patrol-track-line') ? map.queryRenderedFeatures({ layers: ['patrol-track-line'] }) : [];
          const ts = [...new Set(fs.map((f) => +f.properties.t.toFixed(3)))].sort((a, b) => a - b);
          resolve({ segments: Number(document.body.dataset.patrolTracks), rendered: fs.length, ts, color: map.getLayer('patrol-track-line') ? map.getPaintProperty('patrol-track-line', 'line-color') : null, rows: document.querySelectorAll('#patrol-card [data-field="tracks-list"] li').length });
        });
        map.triggerRepaint();
      }),
  );
}

/** must checks an API answer's status and returns its body. */
function must(res, what, ...ok) {
  if (!ok.includes(res.status)) throw new Error(`${what}: HTTP ${res.status} ${JSON.stringify(res.body).slice(0, 400)}`);
  return res.body;
}

/** walk gives n points inside geometry g, ~stepM metres apart, starting at its interior point. */
function walk(g, n, stepM) {
  const [lon0, lat0] = interiorPoint(g);
  const dLat = stepM / 111320;
  const dLon = stepM / (111320 * Math.cos((lat0 * Math.PI) / 180));
  const dirs = [[1, 0], [0, 1], [-1, 0], [0, -1], [1, 1], [-1, 1], [1, -1], [-1, -1]];
  for (const [dx, dy] of dirs) {
    const pts = [];
    for (let i = 0; i < n; i++) pts.push([lon0 + dx * dLon * i, lat0 + dy * dLat * i]);
    if (pts.every((p) => pointInGeometry(p, g))) return pts;
  }
  throw new Error(`no straight walk of ${n} points ${stepM} m apart inside the grid`);
}

const iso = (ms) => new Date(ms).toISOString();

/** marker reads the patrol's marker on the page: its data and whether it sits where the map puts its point. */
function marker(page, id) {
  return page.evaluate((id) => {
    const m = document.querySelector(`.patrol-marker[data-patrol-id="${id}"]`);
    if (!m) return null;
    const map = window.gridwatchMap;
    const lon = Number(m.dataset.lon);
    const lat = Number(m.dataset.lat);
    const pin = m.querySelector('.patrol-pin').getBoundingClientRect();
    const c = map.getContainer().getBoundingClientRect();
    const p = map.project([lon, lat]);
    return {
      lon,
      lat,
      freshness: m.dataset.freshness,
      name: m.querySelector('.patrol-name').textContent,
      userId: m.dataset.userId,
      // The pin's middle is the point (anchor left, offset half the pin).
      off: Math.hypot(pin.left + pin.width / 2 - (c.left + p.x), pin.top + pin.height / 2 - (c.top + p.y)),
      shown: m.isConnected && m.getClientRects().length > 0,
    };
  }, id);
}

async function run() {
  browser = await launch();
  const leader = await apiAs(LEADER);

  // A grid of the leader's community, from the grids API, and a walk inside it.
  const fc = must(await leader.call('GET', '/api/v1/grids.geojson'), 'GET /api/v1/grids.geojson as the leader', 200);
  const grid = (fc.features ?? []).filter((f) => f.properties?.level === 'grid' && String(f.properties.code).startsWith(LEADER.community)).sort((a, b) => String(a.properties.code).localeCompare(String(b.properties.code)))[0];
  if (!grid) throw new Error(`no grid of community ${LEADER.community} in the leader's grids`);
  const pts = walk(grid.geometry, 4, 60);

  // The patrol: started 15 min ago; two fixes 13 and 12 min old (the marker is "lost").
  const now = Date.now();
  let start = await leader.call('POST', '/api/v1/patrols', { started_at: iso(now - 15 * 60000) }, { 'Idempotency-Key': `e2e-patrol-${now}` });
  if (start.status === 409 && start.body?.error?.details?.open_patrol_id) {
    // A patrol left open by an earlier run against the same server: end it first.
    must(await leader.call('POST', `/api/v1/patrols/${start.body.error.details.open_patrol_id}/end`, {}), 'ending an earlier open patrol', 200);
    start = await leader.call('POST', '/api/v1/patrols', { started_at: iso(now - 15 * 60000) }, { 'Idempotency-Key': `e2e-patrol-${now}-2` });
  }
  const patrol = must(start, 'POST /api/v1/patrols', 201);
  const id = patrol.id;
  const send = async (i, ageMs, acc) =>
    must(await leader.call('POST', `/api/v1/patrols/${id}/points`, { points: [{ at: iso(Date.now() - ageMs), lon: pts[i][0], lat: pts[i][1], accuracy_m: acc }] }), `points of patrol ${id}`, 200);
  must(await leader.call('POST', `/api/v1/patrols/${id}/points`, { points: [
    { at: iso(now - 13 * 60000), lon: pts[0][0], lat: pts[0][1], accuracy_m: 9 },
    { at: iso(now - 12 * 60000), lon: pts[1][0], lat: pts[1][1], accuracy_m: 8 },
  ] }), `points of patrol ${id}`, 200);

  // A member whose display name reads like a spreadsheet formula, with a short patrol of
  // their own (started, one point, ended): a row of Stats → Members, and of its CSV.
  const admin = await apiAs({ username: 'demo-admin', password: 'gridwatch-admin' });
  const FORMULA = { username: `e2e-formula-${now.toString(36)}`, password: `pw-formula-${now}`, display_name: `=1+2 e2e ${now.toString(36)}` };
  must(await admin.call('POST', '/api/v1/users', { username: FORMULA.username, display_name: FORMULA.display_name, role: 'grid_leader', password: FORMULA.password, grid_codes: [LEADER.community] }), `creating user ${FORMULA.username}`, 201, 200);
  await admin.ctx.dispose();
  const formula = await apiAs(FORMULA);
  const fp = must(await formula.call('POST', '/api/v1/patrols', { started_at: iso(now - 3 * 60000) }, { 'Idempotency-Key': `e2e-formula-${now}` }), `a patrol of ${FORMULA.username}`, 201);
  must(await formula.call('POST', `/api/v1/patrols/${fp.id}/points`, { points: [{ at: iso(now - 2 * 60000), lon: pts[0][0], lat: pts[0][1], accuracy_m: 10 }] }), `points of patrol ${fp.id}`, 200);
  must(await formula.call('POST', `/api/v1/patrols/${fp.id}/end`, {}), `ending patrol ${fp.id}`, 200);
  await formula.ctx.dispose();

  // The commander's dashboard.
  const { page, watcher } = await openPage(browser, base, { acceptDownloads: true });
  const { problems, check } = watcher;
  const listReads = [];
  page.on('request', (req) => {
    const u = new URL(req.url());
    if (u.pathname === '/api/v1/patrols' && u.searchParams.get('active') === 'true') listReads.push(Date.now());
  });
  await page.goto(base.href, { waitUntil: 'domcontentloaded', timeout: timeoutMs });
  await signIn(page, COMMANDER.username, COMMANDER.password);
  await waitGrids(page, problems);
  await waitFor(page, () => document.body.dataset.patrolsLoaded !== undefined, null, async () => `the patrol layer loaded (${problems.join('; ')})`);
  await waitFor(page, () => document.body.dataset.live === 'sse', null, 'the live event stream connected');
  if (await page.evaluate(() => document.querySelector('#legend-patrols').hidden)) throw new Error('the legend has no "巡查 Patrols" section for the commander');

  await waitFor(page, (id) => !!document.querySelector(`.patrol-marker[data-patrol-id="${id}"]`), id, `the marker of patrol ${id}`);
  await page.evaluate(([lon, lat]) => window.gridwatchMap.jumpTo({ center: [lon, lat], zoom: 16 }), pts[1]);
  let m = await marker(page, id);
  const name = leader.me.display_name || leader.me.username;
  if (Math.abs(m.lon - pts[1][0]) > 1e-6 || Math.abs(m.lat - pts[1][1]) > 1e-6) throw new Error(`marker at ${m.lon},${m.lat}, want the last fix ${pts[1]}`);
  if (m.off > 3) throw new Error(`the marker is drawn ${m.off.toFixed(1)} px from its point`);
  if (m.name !== name) throw new Error(`the marker is labelled ${JSON.stringify(m.name)}, want ${JSON.stringify(name)}`);
  if (m.freshness !== 'lost') throw new Error(`a fix 12 min old shows ${m.freshness}, want lost`);
  if (m.userId !== String(leader.me.id)) throw new Error(`marker user ${m.userId}, want ${leader.me.id}`);
  const count = await page.textContent('#patrol-count');
  if (!(Number(count) >= 1)) throw new Error(`the legend counts ${count} members on patrol`);

  // Live: a point 5 min old moves the marker and makes it stale; one of now makes it fresh.
  const moves = [];
  // The layer reads the list again every 30 s on its own (REFRESH_MS): those reads are
  // counted apart (gridwatchPatrols.reads(), by cause); any other read fails the move.
  const layerReads = () => page.evaluate(() => window.gridwatchPatrols.reads());
  for (const [i, age, want] of [[2, 5 * 60000, 'stale'], [3, 2000, 'fresh']]) {
    const reads = listReads.length;
    const causes0 = await layerReads();
    const t0 = Date.now();
    await send(i, age, 6);
    await waitFor(
      page,
      ([id, lon, lat, want]) => {
        const m = document.querySelector(`.patrol-marker[data-patrol-id="${id}"]`);
        return m && Math.abs(Number(m.dataset.lon) - lon) < 1e-7 && Math.abs(Number(m.dataset.lat) - lat) < 1e-7 && m.dataset.freshness === want;
      },
      [id, pts[i][0], pts[i][1], want],
      async () => `the marker moved live to point ${i} (${want}); it shows ${JSON.stringify(await marker(page, id))}`,
    );
    moves.push(Date.now() - t0);
    const causes1 = await layerReads();
    const delta = Object.fromEntries(Object.keys(causes1).map((k) => [k, causes1[k] - (causes0[k] ?? 0)]).filter(([, n]) => n !== 0));
    const timerReads = delta.timer ?? 0;
    const otherReads = Object.values(delta).reduce((a, b) => a + b, 0) - timerReads;
    if (otherReads !== 0 || listReads.length - reads > timerReads) throw new Error(`the marker moved after the list was read again, not by the event (${listReads.length - reads} reads: ${JSON.stringify(delta)})`);
  }
  await page.evaluate(([lon, lat]) => window.gridwatchMap.jumpTo({ center: [lon, lat], zoom: 16 }), pts[3]);
  m = await marker(page, id);
  if (m.off > 3) throw new Error(`after the move the marker is drawn ${m.off.toFixed(1)} px from its point`);

  // The card.
  const api = await page.evaluate(async (id) => (await fetch(`/api/v1/patrols/${id}`, { credentials: 'same-origin' })).json(), id);
  if (!(api.distance_m > 0)) throw new Error(`the API counts ${api.distance_m} m for patrol ${id}`);
  await page.click(`.patrol-marker[data-patrol-id="${id}"]`);
  await waitFor(page, (id) => {
    const c = document.querySelector('#patrol-card');
    return c && !c.hidden && c.dataset.patrolId === String(id);
  }, id, 'the patrol card');
  const card = await page.evaluate(() => {
    const c = document.querySelector('#patrol-card');
    const f = (n) => c.querySelector(`[data-field="${n}"]`)?.textContent.trim();
    return { name: f('name'), started: f('started'), duration: f('duration'), distance: f('distance'), grids: f('grids'), lastAge: f('last-age'), accuracy: f('accuracy'), freshness: c.dataset.freshness, panelHidden: document.querySelector('#panel').hidden };
  });
  const wantDistance = api.distance_m < 1000 ? `${Math.round(api.distance_m)} m` : `${(api.distance_m / 1000).toFixed(2)} km`;
  if (card.name !== name) throw new Error(`card name ${JSON.stringify(card.name)}, want ${JSON.stringify(name)}`);
  if (card.distance !== wantDistance) throw new Error(`card distance ${JSON.stringify(card.distance)}, want ${wantDistance} (the API's ${api.distance_m} m)`);
  if (card.grids !== String(api.grids.length)) throw new Error(`card grids ${card.grids}, want ${api.grids.length}`);
  if (card.accuracy !== '± 6 m') throw new Error(`card accuracy ${JSON.stringify(card.accuracy)}, want ± 6 m`);
  if (!/just now|s 前 ago/.test(card.lastAge)) throw new Error(`card last fix ${JSON.stringify(card.lastAge)}, want seconds ago`);
  if (!/^1[45] min/.test(card.duration)) throw new Error(`card duration ${JSON.stringify(card.duration)}, want about 15 min`);
  if (card.freshness !== 'fresh' || !card.started || card.started === '—') throw new Error(`card ${JSON.stringify(card)}`);
  if (card.panelHidden !== true) throw new Error(`the grid panel stays open beside the patrol card: ${JSON.stringify(card)}`);

  // Today's tracks: the four points as three segments, coloured by time, on the map.
  await page.click('#patrol-card [data-field="tracks-btn"]');
  await waitFor(page, () => document.querySelector('#patrol-card').dataset.tracks === 'shown', null, async () => `today's tracks drawn (${await page.textContent('#patrol-card [data-field="tracks-note"]')})`);
  const tracks = await drawnTracks(page);
  if (tracks.segments !== 3) throw new Error(`today's track has ${tracks.segments} segments, want 3: ${JSON.stringify(tracks)}`);
  if (tracks.rendered === 0) throw new Error(`the track is not drawn on the map: ${JSON.stringify(tracks)}`);
  if (tracks.ts.length < 2 || tracks.ts[0] !== 0 || !Array.isArray(tracks.color) || tracks.color[0] !== 'interpolate') throw new Error(`the track is not coloured by time: ${JSON.stringify(tracks)}`);
  if (tracks.rows < 1) throw new Error('the card lists no patrol of the day');
  await page.screenshot({ path: path.join(artifactDir, 'patrols-map.png') });

  // Yesterday (the date picker): no patrol, and nothing left drawn once the map has caught up.
  const [today, yesterday] = await page.evaluate(() => {
    const day = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
    return [day(new Date()), day(new Date(Date.now() - 86400000))];
  });
  await page.fill('#patrol-card [data-field="track-day"]', yesterday);
  await waitFor(page, () => document.querySelector('#patrol-card').dataset.tracks === 'none', null, async () => `yesterday's tracks (${await page.textContent('#patrol-card [data-field="tracks-note"]')})`);
  const none = await drawnTracks(page);
  if (none.rendered || none.segments !== 0) throw new Error(`yesterday's (empty) tracks left today's on the map: ${JSON.stringify(none)}`);

  // Today again, at once, then asked for a second time right after (the map still busy
  // with the first): today's track is what is drawn, not yesterday's nothing.
  await page.fill('#patrol-card [data-field="track-day"]', today);
  await page.click('#patrol-card [data-field="tracks-btn"]');
  await waitFor(page, () => document.querySelector('#patrol-card').dataset.tracks === 'shown' && document.body.dataset.patrolTracks === '3', null, async () => `today's tracks drawn again (${await page.textContent('#patrol-card [data-field="tracks-note"]')}; ${await page.evaluate(() => document.body.dataset.patrolTracks)} segments)`);
  const again = await drawnTracks(page);
  if (again.segments !== 3 || again.rendered === 0) throw new Error(`today's tracks, asked for again, are not on the map: ${JSON.stringify(again)}`);

  // The legend's switch hides the layer, and shows it again.
  await page.click('#patrol-toggle');
  await waitFor(page, (id) => !document.querySelector(`.patrol-marker[data-patrol-id="${id}"]`)?.isConnected && document.querySelector('#patrol-card').hidden, id, 'the layer switched off');
  await page.click('#patrol-toggle');
  await waitFor(page, (id) => !!document.querySelector(`.patrol-marker[data-patrol-id="${id}"]`)?.isConnected, id, 'the layer switched on');

  // Stats → 网格员 Members: the leader's row, sortable, and the CSV.
  await page.click('#stats-btn');
  await page.click('#stats-tab-members');
  await waitFor(page, (u) => document.querySelector('#stats-dialog')?.dataset.state === 'ok' && document.querySelector('#stats-dialog').dataset.group === 'members' && !!document.querySelector(`#stats-table tr[data-username="${u}"]`), LEADER.username, async () => `the members' row of ${LEADER.username} (${await page.textContent('#stats-dialog .tab-status')})`);
  const row = await page.evaluate((u) => {
    const tr = document.querySelector(`#stats-table tr[data-username="${u}"]`);
    return Object.fromEntries([...tr.querySelectorAll('td')].map((td) => [td.dataset.key, td.textContent.trim()]));
  }, LEADER.username);
  if (!(Number(row.patrols) >= 1) || !(Number(row.distance_km) > 0) || !(Number(row.grids_covered) >= 1) || !(Number(row.hours) > 0)) throw new Error(`the members' row: ${JSON.stringify(row)}`);
  if (row.open_tasks === undefined || row.overdue_tasks === undefined) throw new Error(`the members' row has no tasks: ${JSON.stringify(row)}`);
  for (const [key, dir] of [['distance_km', 'descending'], ['distance_km', 'ascending'], ['name', 'ascending']]) {
    await page.click(`#stats-table th[data-key="${key}"] .sort-btn`);
    await waitFor(page, ([key, dir]) => document.querySelector(`#stats-table th[data-key="${key}"]`)?.getAttribute('aria-sort') === dir, [key, dir], `sorted by ${key} ${dir}`);
    const order = await page.evaluate((key) => [...document.querySelectorAll('#stats-table tbody tr[data-username]')].map((tr) => tr.querySelector(`td[data-key="${key}"]`).textContent.trim()), key);
    const vals = key === 'name' ? order : order.map((v) => (v === '—' ? null : Number(v)));
    const sign = dir === 'ascending' ? 1 : -1;
    const cmp = (a, b) => (a === null ? (b === null ? 0 : 1) : b === null ? -1 : sign * (key === 'name' ? a.localeCompare(b, 'zh-CN') : a - b));
    if (vals.some((v, i) => i > 0 && cmp(vals[i - 1], v) > 0)) throw new Error(`sorted by ${key} ${dir}: ${JSON.stringify(vals)}`);
  }
  await page.screenshot({ path: path.join(artifactDir, 'patrols-stats.png') });
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: timeoutMs }), page.click('#stats-csv')]);
  const csvPath = path.join(artifactDir, 'patrols-members.csv');
  await download.saveAs(csvPath);
  const csv = fs.readFileSync(csvPath, 'utf8');
  const csvLines = csv.split(/\r?\n/);
  if (!csvLines.some((l) => l.includes(`,${LEADER.username},`))) throw new Error(`the members' CSV has no row of ${LEADER.username}: ${csv.slice(0, 300)}`);
  // The formula-like display name: in the table as it is, in the CSV as text ('=…).
  const formulaShown = await page.evaluate((u) => document.querySelector(`#stats-table tr[data-username="${u}"] td[data-key="name"]`)?.textContent ?? null, FORMULA.username);
  if (!formulaShown?.startsWith(FORMULA.display_name)) throw new Error(`the members' table shows ${JSON.stringify(formulaShown)} for ${FORMULA.username}, want ${JSON.stringify(FORMULA.display_name)}`);
  const formulaLine = csvLines.find((l) => l.includes(`,${FORMULA.username},`));
  if (!formulaLine) throw new Error(`the members' CSV has no row of ${FORMULA.username}: ${csv.slice(0, 400)}`);
  const formulaCell = formulaLine.split(',')[2];
  if (formulaCell !== `'${FORMULA.display_name}`) throw new Error(`the members' CSV has ${JSON.stringify(formulaCell)} for the name ${JSON.stringify(FORMULA.display_name)}, want it as text: ${JSON.stringify(`'${FORMULA.display_name}`)} (row ${JSON.stringify(formulaLine)})`);
  if (!/^\d+$/.test(formulaLine.split(',')[0]) || !/^\d+(\.\d+)?$/.test(formulaLine.split(',')[3])) throw new Error(`the members' CSV figures are not plain numbers: ${JSON.stringify(formulaLine)}`);
  await page.click('#stats-dialog .dialog-close');

  // The card open as the patrol ends: it shows the end, and a duration to it that stops running.
  await page.evaluate((id) => window.gridwatchPatrols.open(id), id);
  await waitFor(page, (id) => {
    const c = document.querySelector('#patrol-card');
    return c && !c.hidden && c.dataset.patrolId === String(id) && c.dataset.freshness !== 'ended';
  }, id, 'the patrol card open again');

  // The end of the patrol takes the marker off, live.
  must(await leader.call('POST', `/api/v1/patrols/${id}/end`, {}), `ending patrol ${id}`, 200);
  await waitFor(page, (id) => !document.querySelector(`.patrol-marker[data-patrol-id="${id}"]`), id, 'the marker gone once the patrol ended');
  const readEnded = () => page.evaluate(() => {
    const c = document.querySelector('#patrol-card');
    const f = (n) => c.querySelector(`[data-field="${n}"]`)?.textContent.trim();
    return { open: !c.hidden, freshness: c.dataset.freshness, ended: f('ended'), endedShown: !c.querySelector('[data-field="ended"]').closest('[hidden]'), duration: f('duration'), distance: f('distance'), badge: f('freshness') };
  });
  await waitFor(page, () => {
    const c = document.querySelector('#patrol-card');
    const ended = c.querySelector('[data-field="ended"]');
    return !c.hidden && c.dataset.freshness === 'ended' && !ended.closest('[hidden]') && ended.textContent.trim() !== '' && ended.textContent.trim() !== '—';
  }, null, async () => `the card showing the patrol's end (${JSON.stringify(await readEnded())})`);
  const endedCard = await readEnded();
  const endedAPI = must(await leader.call('GET', `/api/v1/patrols/${id}`), `GET /api/v1/patrols/${id}`, 200);
  const wantSecs = Math.floor((Date.parse(endedAPI.ended_at) - Date.parse(endedAPI.started_at)) / 1000);
  const gotSecs = seconds(endedCard.duration);
  // The card shows minutes only past an hour: compare at what it shows.
  const unit = wantSecs >= 3600 ? 60 : 1;
  if (!(Math.abs(Math.floor(gotSecs / unit) - Math.floor(wantSecs / unit)) <= 1)) throw new Error(`the ended card's duration is ${JSON.stringify(endedCard.duration)}, want the patrol's ${wantSecs} s (${endedAPI.started_at} to ${endedAPI.ended_at})`);
  await check('commander');

  // The grid leader's dashboard has no patrol layer, and asks nothing of the patrols API.
  const lp = await openPage(browser, base);
  const leaderPatrolCalls = [];
  lp.page.on('request', (req) => {
    const u = new URL(req.url());
    if (u.pathname === '/api/v1/patrols' || u.pathname.startsWith('/api/v1/patrols/')) leaderPatrolCalls.push(`${req.method()} ${u.pathname}${u.search}`);
  });
  await lp.page.goto(base.href, { waitUntil: 'domcontentloaded', timeout: timeoutMs });
  await signIn(lp.page, LEADER.username, LEADER.password);
  await waitGrids(lp.page, lp.watcher.problems);
  // By now the layer would have started (at the grids' first idle, before the cases are shown) and the live feed too.
  await waitFor(lp.page, () => document.body.dataset.incidentsLoaded !== undefined && ['sse', 'polling'].includes(document.body.dataset.live), null, "the grid leader's cases loaded and live feed connected");
  if (!(await lp.page.evaluate(() => document.querySelector('#legend-patrols').hidden))) throw new Error('the grid leader sees the patrol layer');
  if (leaderPatrolCalls.length) throw new Error(`the grid leader's dashboard asked the patrols API: ${leaderPatrolCalls.join(', ')}`);
  await lp.watcher.check('leader');
  await leader.ctx.dispose();

  // Seconds later, the ended card's duration has not moved: its clock stopped.
  const later = await readEnded();
  if (later.duration !== endedCard.duration || later.freshness !== 'ended') throw new Error(`the ended card still runs: ${JSON.stringify(endedCard)} then ${JSON.stringify(later)}`);

  return passed(check, 'end', base, { patrol: id, grid: grid.properties.code, moves_ms: moves, card, ended_card: endedCard, tracks, tracks_again: again, members_row: row, formula_row: formulaLine, total_ms: Date.now() - started });
}

await main(run, () => browser);
