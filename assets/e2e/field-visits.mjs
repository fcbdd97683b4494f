// Browser test of home visits (走访) in the field app (/field/), on a phone,
// through the real service.
//
//   node e2e/field-visits.mjs <baseURL> <artifactDir> <adminToken>
//
// 0. With the admin token, a small district of its own is imported through
//    the API: two buildings at the interior point of one of demo-leader's
//    grids, one in another grid of their community, one outside it, and five
//    households with residents whose full ID numbers, phones and names this
//    script knows (so it can look for them where they must never be).
// 1. A phone (390×844, touch): demo-leader signs in with a device name. The
//    走访 Visits tab is there (demo-leader records visits). The community's
//    households — the demo's base data (some 2,400) and this run's — are all
//    read and kept, as many as the summaries of the leader's grids count; the
//    screen draws the first 200 and asks for a search, which over them all
//    is drawn at once (< 1 s, measured); the care filter "elderly alone"
//    lists only such households. Searched by this run's tag: its households
//    with their care flags as chips and "never visited"; the one outside the
//    community is not listed; a search by room finds one, the care filter
//    another.
//    Layout at 390 and 360 px: nothing scrolls sideways, controls ≥ 44 px.
//    (The rest works on this run's households, found by its tag among the
//    demo's: their residents' full values are known to look for.)
// 2. A household opened online: its residents with masked names.
// 3. Offline (context.setOffline): a visit recorded there (the note, the
//    time), and one at a household never opened: each shows at once as
//    queued; nothing reaches the server.
// 4. Reloaded offline (every request to the service cut): the household,
//    its pending visit and the list of households come back from the phone.
//    No full ID number, phone or full name is in the page, in IndexedDB or
//    in the service worker's caches.
// 5. Online, the first answer to one visit lost on the way (the request
//    reaches the server, its answer does not): each visit arrives once (the
//    API, as the admin and as demo-leader's ?mine=1), the replay is answered
//    200 Idempotent-Replayed; the household shows the visit as sent, and My
//    visits lists both.
// 6. One phone, two leaders: an admin ends demo-leader's session; a second
//    grid leader (of the other grid) signs in on the phone: none of
//    demo-leader's households is in IndexedDB or on the screen, theirs are.
//    Signed out, nothing of anyone's households is left. demo-commander
//    (no visits.record) signs in: no Visits tab, and #visits shows the tasks.
// Screenshots visits-*.png (visits-community.png: the demo's households) go to artifactDir. Any page error, console error
// or unexpected HTTP error fails the run (what being offline causes, and the
// answer dropped on purpose, are expected). Prints one JSON line and exits 0,
// else "e2e: FAIL: …" and 1. Environment: CHROMIUM, E2E_TIMEOUT_MS.

import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { apiSession, bearerFetch, forgive, gridCandidates, launch, main, must, OFFLINE, scriptArgs, timeoutMs, until, waitFor, watch } from './common.mjs';

const { base, args: [artifactDir, adminToken], started } = scriptArgs('field-visits.mjs', '<artifactDir> <adminToken>', timeoutMs * 12 + 60000);
const FIELD = new URL('/field/', base).href;
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: 'zh-CN' };
const DEVICE = 'e2e visits phone · Chromium';
const tag = randomBytes(3).toString('hex');

let browser;

// ---- the API, from this process ------------------------------------------------------------

/** admin calls the API with the admin token; raw bodies (CSV, GeoJSON) with their type. */
async function admin(method, p, { json, raw, type } = {}) {
  const headers = { Authorization: `Bearer ${adminToken}`, Accept: 'application/json' };
  let body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (raw !== undefined) {
    headers['Content-Type'] = type;
    body = raw;
  }
  const r = await fetch(new URL(p, base), { method, headers, body });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${p} (admin): HTTP ${r.status} ${text.slice(0, 400)}`);
  return text ? JSON.parse(text) : null;
}

/** list reads a list answer: {<key>: [...]} (the API's pages) or {items: [...]}. */
const list = (body, key) => (Array.isArray(body) ? body : body?.[key] ?? body?.items ?? []);

// ---- the district of this run ------------------------------------------------------------------

/** idNumber makes an 18-digit resident ID number with a valid check digit (GB 11643). */
function idNumber(region, birth, seq) {
  const body = `${region}${birth.replaceAll('-', '')}${String(seq).padStart(3, '0')}`;
  const w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  const sum = [...body].reduce((s, d, i) => s + Number(d) * w[i], 0);
  return body + '10X98765432'[sum % 11];
}

/** district imports two buildings in grid, one in other, one elsewhere, and five households with residents. */
async function district(grid, other, elsewhere) {
  const n = Number.parseInt(tag, 16) % 900;
  const b = (i) => `E2E-${tag}-B${i}`;
  const feature = (i, [lon, lat], name) => ({ type: 'Feature', geometry: { type: 'Point', coordinates: [lon, lat] }, properties: { code: b(i), name, address: `e2e 路 ${i} 号 ${tag}`, floors: 6, units: 2, use: 'residential' } });
  const fc = {
    type: 'FeatureCollection',
    features: [
      feature(1, [grid.lon, grid.lat], `e2e ${tag} 1号楼`),
      feature(2, [+(grid.lon + 0.00003).toFixed(7), +(grid.lat + 0.00002).toFixed(7)], `e2e ${tag} 2号楼`),
      feature(3, [other.lon, other.lat], `e2e ${tag} 3号楼`),
      feature(4, [elsewhere.lon, elsewhere.lat], `e2e ${tag} 4号楼`),
    ],
  };
  const built = await admin('POST', '/api/v1/buildings/import', { raw: JSON.stringify(fc), type: 'application/geo+json' });
  if (built?.created !== 4) throw new Error(`buildings import: ${JSON.stringify(built)}; want 4 created`);
  const people = [
    // household, building, unit, room, name, gender, relation, birth, care
    ['H1', 1, '1', '101', '欧阳振华', '男', '户主', '1941-03-12', 'elderly_alone'],
    ['H2', 1, '1', '102', '李秀英', '女', '户主', '1975-06-01', 'low_income'],
    ['H2', 1, '1', '102', '王小明', '男', '子女', '2012-09-30', 'left_behind_minor'],
    ['H3', 2, '2', '301', '赵建国', '男', '户主', '1968-11-20', ''],
    ['H4', 3, '1', '201', '孙丽', '女', '户主', '1990-01-15', 'disabled'],
    ['H5', 4, '3', '502', '周志强', '男', '户主', '1955-07-07', 'veteran'],
  ].map(([h, bi, unit, room, name, gender, relation, birth, care], i) => ({
    household: `E2E-${tag}-${h}`,
    building: b(bi),
    unit,
    room,
    name,
    gender,
    relation,
    birth,
    care,
    id: idNumber('410105', birth, 100 + n + i),
    phone: `139${String(10000000 + n * 1000 + i * 7).slice(-8)}`,
  }));
  const csv = ['household_code,building_code,unit,room,name,gender,relation,id_number,phone,birth_date,care', ...people.map((p) => [p.household, p.building, p.unit, p.room, p.name, p.gender, p.relation, p.id, p.phone, p.birth, p.care].join(','))].join('\n');
  const imported = await admin('POST', '/api/v1/residents/import', { raw: `${csv}\n`, type: 'text/csv' });
  if (imported?.created !== people.length) throw new Error(`residents import: ${JSON.stringify(imported)}; want ${people.length} created`);
  return { people, codes: Object.fromEntries(['H1', 'H2', 'H3', 'H4', 'H5'].map((h) => [h, `E2E-${tag}-${h}`])) };
}

// ---- the page ------------------------------------------------------------------------------

function state(page) {
  return page.evaluate(() => ({
    auth: document.body.dataset.auth,
    tab: document.body.dataset.tab,
    online: document.body.dataset.online,
    queue: Number(document.body.dataset.queue ?? -1),
    households: document.body.dataset.householdsLoaded,
    from: document.body.dataset.householdsFrom,
    outbox: (window.gridwatchField?.outbox.items ?? []).map((it) => ({ kind: it.kind, state: it.state, attempts: it.attempts, error: it.error?.message })),
    toasts: [...document.querySelectorAll('.toast')].map((t) => t.textContent.trim()),
    errors: [...document.querySelectorAll('.form-error:not([hidden])')].map((e) => e.textContent.trim()),
  }));
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(artifactDir, `visits-${name}.png`) });
}

/** go sets the route and waits for its screen. */
async function go(page, route) {
  await page.evaluate((r) => {
    location.hash = r;
  }, route);
  await waitFor(page, (r) => document.body.dataset.tab === r.split('-')[0], route, `the ${route} screen`);
}

/** openHousehold taps a household on the list and waits for its card (from the network, or as kept: from). */
async function openHousehold(page, id, from) {
  await go(page, 'visits');
  // Among the demo's households of the community, this run's by their tag.
  await search(page, tag);
  await page.tap(`#hh-list [data-household-id="${id}"]`);
  await waitFor(page, ([id, from]) => document.body.dataset.tab === 'household' && document.querySelector('#hh-card').dataset.householdId === String(id) && from.includes(document.querySelector('#hh-card').dataset.from), [id, from], async () => `household ${id}'s card from ${from} (${await page.evaluate(() => JSON.stringify(document.querySelector('#hh-card').dataset))})`);
}

/** search types text into the households' search (what a leader does among a community's thousands) and waits for the rows. */
async function search(page, text) {
  await page.fill('#hh-q', text);
  await waitFor(page, (t) => document.querySelector('#hh-q').value === t && (document.querySelector('#hh-list').children.length > 0 || !document.querySelector('#hh-empty').hidden), text, `the households searched for ${text}`);
}

/** recordVisit records a visit with note on the open household. */
async function recordVisit(page, note) {
  await page.tap('#visit-record');
  await waitFor(page, () => document.querySelector('#visit-form #visit-at')?.value, null, 'the visit form with the time filled in');
  const at = await page.inputValue('#visit-at');
  const skew = Math.abs(Date.parse(at) - Date.now());
  if (!(skew < 2 * 60 * 1000)) throw new Error(`the visit's time defaults to ${at}, not now`);
  await page.fill('#visit-note', note);
  await page.tap('#visit-submit');
  await waitFor(page, (note) => [...document.querySelectorAll('#hh-visits li[data-state="pending"], #hh-visits li[data-state="sending"]')].some((li) => li.textContent.includes(note)), note, async () => `the visit shown at once as queued (${JSON.stringify(await state(page))})`);
}

/** dump reads, in the page, everything the field app keeps: IndexedDB's stores and the caches' bodies, as text. */
function dump(page) {
  return page.evaluate(async () => {
    const out = { idb: {}, caches: {} };
    const db = await new Promise((resolve, reject) => {
      const r = indexedDB.open('gridwatch-field');
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
    for (const name of db.objectStoreNames) {
      if (name === 'blobs') continue;
      out.idb[name] = await new Promise((resolve, reject) => {
        const r = db.transaction(name).objectStore(name).getAll();
        r.onsuccess = () => resolve(JSON.stringify(r.result));
        r.onerror = () => reject(r.error);
      });
    }
    db.close();
    for (const name of await caches.keys()) {
      const c = await caches.open(name);
      const texts = [];
      for (const req of await c.keys()) {
        const res = await c.match(req);
        if (/json|text/.test(res.headers.get('Content-Type') ?? '')) texts.push(`${req.url} ${await res.text()}`);
      }
      out.caches[name] = texts.join('\n');
    }
    out.page = `${document.documentElement.outerHTML}\n${[...document.querySelectorAll('input, textarea')].map((i) => i.value).join('\n')}`;
    return out;
  });
}

/** leaks lists where any of secrets (strings) is found in a dump. */
function leaks(d, secrets) {
  const found = [];
  const look = (where, text) => {
    for (const s of secrets) if (text.includes(s)) found.push(`${s} in ${where}`);
  };
  for (const [k, v] of Object.entries(d.idb)) look(`IndexedDB ${k}`, v);
  for (const [k, v] of Object.entries(d.caches)) look(`cache ${k}`, v);
  look('the page', d.page);
  return found;
}

// CUT is a read a reload cuts short (signing out reloads too).
const CUT = /^request failed: GET \S+ \(net::ERR_ABORTED\)$/;

function layoutProblems(page) {
  return page.evaluate(() => {
    const de = document.documentElement;
    const small = [];
    for (const n of document.querySelectorAll('button, a[href], input:not(.visually-hidden), select, textarea, label.btn')) {
      const r = n.getBoundingClientRect();
      if (r.width === 0 || r.height === 0 || n.closest('[hidden]')) continue;
      if (r.height < 44 || r.width < 44) small.push(`${n.tagName.toLowerCase()}${n.id ? `#${n.id}` : ''}.${[...n.classList].join('.')} ${Math.round(r.width)}×${Math.round(r.height)}`);
    }
    const wide = [...document.querySelectorAll('body *')]
      .filter((n) => {
        const r = n.getBoundingClientRect();
        return r.width > 0 && r.right > de.clientWidth + 1 && !n.closest('.maplibregl-map') && !n.closest('[hidden]');
      })
      .slice(0, 5)
      .map((n) => `${n.tagName.toLowerCase()}${n.id ? `#${n.id}` : ''}.${[...n.classList].join('.')}`);
    return { scrollWidth: de.scrollWidth, clientWidth: de.clientWidth, small, wide };
  });
}

async function signInAs(page, username, password) {
  await waitFor(page, () => document.body.dataset.auth === 'login' && !document.querySelector('#login').hidden, null, async () => `the sign-in screen for ${username} (${JSON.stringify(await state(page))})`);
  await page.fill('#login-username', username);
  await page.fill('#login-password', password);
  await page.fill('#login-device', DEVICE);
  await page.tap('#login-submit');
  await waitFor(page, () => document.body.dataset.auth === 'ok', null, async () => `${username} signed in (${JSON.stringify(await state(page))})`);
}

// ---- the run -------------------------------------------------------------------------------

async function run() {
  await mkdir(artifactDir, { recursive: true });
  browser = await launch();
  const leader = await apiSession(base, 'demo-leader', 'gridwatch-leader');
  const cands = gridCandidates((await must(leader, 'GET', '/api/v1/grids.geojson')).features ?? []);
  if (cands.length < 2) throw new Error(`demo-leader sees ${cands.length} grid-level grids; want two (one for the households, another for the second leader)`);
  // Two grids of demo-leader's community, and one outside it.
  const [grid, other] = cands;
  const mineIds = new Set(cands.map((c) => c.id));
  const elsewhere = gridCandidates((await admin('GET', '/api/v1/grids.geojson')).features ?? []).find((c) => !mineIds.has(c.id));
  if (!elsewhere) throw new Error('no grid outside demo-leader\'s community');
  const { people, codes } = await district(grid, other, elsewhere);
  // The households as the API has them (ids), placed in their grids.
  const inGrids = [];
  for (const g of [grid, other, elsewhere]) inGrids.push(...list(await admin('GET', `/api/v1/households?grid=${g.id}&limit=1000`), 'households'));
  const hh = {};
  for (const [k, code] of Object.entries(codes)) {
    const found = inGrids.find((h) => h.code === code);
    if (!found) throw new Error(`household ${code} not found in grids ${grid.code}, ${other.code}, ${elsewhere.code} after the import`);
    hh[k] = found;
  }
  const want = { H1: grid, H2: grid, H3: grid, H4: other, H5: elsewhere };
  for (const [k, g] of Object.entries(want)) if (Number(hh[k].grid?.id) !== g.id) throw new Error(`household ${k} is in grid ${JSON.stringify(hh[k].grid)}, want ${g.code}`);
  // What must never be on the phone: full ID numbers, phones, names (all of them are at least two characters, masked on the server).
  const secrets = people.flatMap((p) => [p.id, p.phone, p.name, p.birth]);

  // ---- 1. sign in; the households of my grid ----
  const context = await browser.newContext(PHONE);
  const page = await context.newPage();
  const watcher = watch(page, base);
  const { problems, check } = watcher;
  watcher.expect('GET', /^\/api\/v1\/me$/, 401);
  await page.goto(FIELD, { waitUntil: 'domcontentloaded', timeout: timeoutMs });
  await signInAs(page, 'demo-leader', 'gridwatch-leader');
  await waitFor(page, () => !document.querySelector('.tab[data-tab="visits"]').hidden, null, 'the Visits tab shown to a grid leader');
  await page.tap('.tab[data-tab="visits"]');
  await waitFor(page, () => document.body.dataset.tab === 'visits' && document.body.dataset.householdsFrom === 'network' && document.querySelector('#hh-list').children.length > 0, null, async () => `the households listed from the network (${JSON.stringify(await state(page))})`);
  // The demo's households of the community (hundreds to thousands): all of them read and kept,
  // as many as the grids' summaries count; the screen draws the first ones and asks for a search.
  let inScope = 0;
  for (const c of cands) inScope += Number((await must(leader, 'GET', `/api/v1/grids/${c.id}/summary`)).households) || 0;
  const listed = await page.evaluate(() => ({ n: Number(document.body.dataset.householdsLoaded), rows: document.querySelectorAll('#hh-list [data-household-id]').length, count: document.querySelector('#hh-count').textContent, note: document.querySelector('#hh-list li.note')?.textContent ?? '' }));
  if (inScope < 100 || listed.n !== inScope || listed.count !== String(inScope)) throw new Error(`demo-leader's phone lists ${JSON.stringify(listed)}, the summaries of their grids count ${inScope} households (the demo's and this run's; want hundreds)`);
  if (listed.rows > 200 || (listed.n > listed.rows && !/search/.test(listed.note))) throw new Error(`the list of ${listed.n} households draws ${listed.rows} rows without asking for a search: ${JSON.stringify(listed)}`);
  // A search over them all is drawn at once (one input event, measured in the page).
  const searchMs = await page.evaluate(() => {
    const q = document.querySelector('#hh-q');
    const t0 = performance.now();
    q.value = '1';
    q.dispatchEvent(new Event('input'));
    return Math.round(performance.now() - t0);
  });
  if (searchMs > 1000) throw new Error(`a search over ${listed.n} households took ${searchMs} ms`);
  // A real question of the day: the households with someone elderly living alone.
  await page.fill('#hh-q', '');
  await page.selectOption('#hh-care', 'elderly_alone');
  const alone = await page.evaluate(() => ({ count: document.querySelector('#hh-count').textContent, chips: [...document.querySelectorAll('#hh-list [data-household-id]')].map((b) => [...b.querySelectorAll('.chip')].map((c) => c.dataset.care)) }));
  if (!alone.chips.length || alone.chips.some((c) => !c.includes('elderly_alone')) || !/^\d+\/\d+$/.test(alone.count)) throw new Error(`the care filter "elderly alone" over the demo's households: ${JSON.stringify(alone).slice(0, 400)}`);
  await page.selectOption('#hh-care', '');
  // Those due a visit come first: the top of the whole list is households
  // with someone on the care list, never visited before visited, the
  // longest unvisited first.
  const top = await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('#hh-list [data-household-id]')].slice(0, 40);
    if (rows.length < 40) return null;
    return rows.map((b) => ({ chips: b.querySelectorAll('.chip').length, at: b.querySelector('.last-visit')?.dataset.at ?? '' }));
  }, null, { timeout: 10000 }).then((h) => h.jsonValue());
  const topAt = top.map((r) => r.at).filter(Boolean);
  if (top.some((r) => r.chips === 0) || topAt.some((at, i) => i > 0 && Date.parse(at) < Date.parse(topAt[i - 1])) || (top.some((r) => r.at) && top.findIndex((r) => r.at) < top.findLastIndex((r) => !r.at)))
    throw new Error(`the top of the households list is not those due a visit: ${JSON.stringify(top)}`);
  await shot(page, 'community');
  await search(page, tag);
  const rows = await page.evaluate((ids) => ids.map((id) => {
    const b = document.querySelector(`#hh-list [data-household-id="${id}"]`);
    return b ? { chips: [...b.querySelectorAll('.chip')].map((c) => c.dataset.care), last: b.querySelector('.last-visit')?.dataset.at, text: b.textContent } : null;
  }), [hh.H1.id, hh.H2.id, hh.H3.id, hh.H4.id, hh.H5.id]);
  if (!rows[0] || !rows[1] || !rows[2] || !rows[3]) throw new Error(`the households of demo-leader's grids are not all listed: ${JSON.stringify(rows)}`);
  if (rows[4]) throw new Error(`a household outside demo-leader's grids (${elsewhere.code}) is listed: ${JSON.stringify(rows[4])}`);
  if (rows[0].chips.join() !== 'elderly_alone' || rows[1].chips.sort().join() !== 'left_behind_minor,low_income' || rows[2].chips.length) throw new Error(`care chips: ${JSON.stringify(rows.map((r) => r?.chips))}`);
  if (rows.slice(0, 3).some((r) => r.last !== '' || !/never visited/.test(r.text))) throw new Error(`households with no visit are not shown as never visited: ${JSON.stringify(rows)}`);
  // Search by room: one household.
  await page.fill('#hh-q', `${tag} 102`);
  await waitFor(page, (id) => {
    const shown = [...document.querySelectorAll('#hh-list [data-household-id]')].map((b) => b.dataset.householdId);
    return shown.length === 1 && shown[0] === String(id);
  }, hh.H2.id, async () => `the search for room 102 finding only household H2 (${await page.textContent('#hh-list')})`);
  // The care filter: households with a care flag only.
  await page.fill('#hh-q', tag);
  await page.selectOption('#hh-care', 'elderly_alone');
  await waitFor(page, (id) => [...document.querySelectorAll('#hh-list [data-household-id]')].map((b) => b.dataset.householdId).join() === String(id), hh.H1.id, 'the care filter finding H1 only');
  await page.selectOption('#hh-care', '');
  await shot(page, 'list');

  // Layout at 390 and 360 px on the three screens.
  const layout = {};
  for (const width of [390, 360]) {
    await page.setViewportSize({ width, height: width === 390 ? 844 : 740 });
    for (const s of ['visits', `household-${hh.H1.id}`, 'myvisits']) {
      await go(page, s);
      if (s.startsWith('household')) await waitFor(page, () => document.querySelector('#hh-card #visit-record'), null, 'the household card');
      const lp = await layoutProblems(page);
      if (lp.scrollWidth > lp.clientWidth || lp.wide.length) throw new Error(`${s} at ${width} px scrolls sideways: ${JSON.stringify(lp)}`);
      if (lp.small.length) throw new Error(`${s} at ${width} px has controls under 44 px: ${lp.small.join('; ')}`);
      layout[`${s.split('-')[0]}@${width}`] = `${lp.scrollWidth}/${lp.clientWidth}`;
    }
    const tabs = await page.evaluate(() => [...document.querySelectorAll('.tab')].map((t) => Math.round(t.getBoundingClientRect().width)));
    if (tabs.length !== 5 || tabs.some((w) => w < 44)) throw new Error(`the tab bar at ${width} px: ${tabs}`);
  }
  await page.setViewportSize(PHONE.viewport);
  await check('the households listed');

  // ---- 2. a household online: residents masked ----
  await openHousehold(page, hh.H2.id, ['network']);
  const residents = await page.evaluate(() => [...document.querySelectorAll('#hh-residents [data-resident-id] b')].map((b) => b.textContent));
  if (residents.length !== 2 || !residents.every((n) => n.includes('*'))) throw new Error(`household H2's residents: ${JSON.stringify(residents)}; want two masked names`);
  await shot(page, 'household');
  await openHousehold(page, hh.H1.id, ['network']);

  // ---- 3. offline: two visits ----
  await waitFor(page, () => document.body.dataset.sw === 'warm' || document.body.dataset.sw === 'controlled', null, 'the service worker running the page');
  const offlineFrom = problems.length;
  await context.setOffline(true);
  await waitFor(page, () => document.body.dataset.online === 'false', null, 'the app to say it is offline');
  const note1 = `e2e 走访 ${tag}: 老人身体尚好，需要帮助买菜`;
  await recordVisit(page, note1);
  await shot(page, 'queued');
  // A household never opened before: from the list.
  await openHousehold(page, hh.H3.id, ['list', 'cache']);
  const note3 = `e2e 走访 ${tag}: 未发现问题`;
  await recordVisit(page, note3);
  await waitFor(page, () => Number(document.body.dataset.queue) === 2, null, async () => `two visits queued (${JSON.stringify(await state(page))})`);
  const early = await admin('GET', `/api/v1/households/${hh.H1.id}`);
  if ((early.visits ?? []).length) throw new Error(`a visit reached the server while offline: ${JSON.stringify(early.visits)}`);

  // ---- 4. reloaded offline ----
  // Playwright's offline mode does not hold for the service worker across a
  // navigation: a route cuts every request to the service as well.
  await context.route((u) => u.origin === base.origin, (route) => route.abort('internetdisconnected'));
  await go(page, `household-${hh.H1.id}`);
  await page.reload({ waitUntil: 'domcontentloaded' });
  await waitFor(page, ([id, note]) => document.body.dataset.auth === 'ok' && document.querySelector('#hh-card')?.dataset.householdId === String(id) && document.querySelector('#hh-card').dataset.from === 'cache' && [...document.querySelectorAll('#hh-visits li[data-state="pending"]')].some((li) => li.textContent.includes(note)), [hh.H1.id, note1], async () => `household H1 and its pending visit, reloaded offline (${JSON.stringify(await state(page).catch((e) => e.message))})`);
  await shot(page, 'offline-reload');
  await go(page, 'visits');
  await page.fill('#hh-q', tag);
  await waitFor(page, (ids) => document.body.dataset.householdsFrom === 'cache' && ids.every((id) => document.querySelector(`#hh-list [data-household-id="${id}"]`)), [hh.H1.id, hh.H2.id, hh.H3.id], async () => `the households listed from the phone, offline (${JSON.stringify(await state(page))})`);
  await waitFor(page, () => /Offline/.test(document.querySelector('#hh-note').textContent) && !document.querySelector('#hh-note').hidden, null, async () => `offline, the list saying it is as saved (${await page.textContent('#hh-note')})`);
  const pendingBadge = await page.evaluate((id) => document.querySelector(`#hh-list [data-household-id="${id}"] .badge-queued`)?.textContent ?? '', hh.H1.id);
  if (!/queued/.test(pendingBadge)) throw new Error(`household H1 on the list does not say a visit is queued: ${JSON.stringify(pendingBadge)}`);
  const kept = await dump(page);
  if (!/E2E-/.test(kept.idb.cache ?? '')) throw new Error('the households are not kept in IndexedDB');
  const leaked = leaks(kept, secrets);
  if (leaked.length) throw new Error(`personal data on the phone: ${leaked.join('; ')}`);
  const reloadAt = problems.length;

  // ---- 5. online; one answer lost ----
  const lost = { visit: 0 };
  const replays = [];
  page.on('response', (res) => {
    if (res.request().method() === 'POST' && /\/api\/v1\/households\/\d+\/visits$/.test(res.url())) replays.push({ status: res.status(), replayed: res.headers()['idempotent-replayed'] ?? '' });
  });
  await context.unrouteAll({ behavior: 'ignoreErrors' });
  await context.route(`**/api/v1/households/${hh.H1.id}/visits`, async (route) => {
    if (route.request().method() === 'POST' && lost.visit === 0) {
      lost.visit++;
      await route.fetch();
      await route.abort('failed');
      return;
    }
    await route.fallback();
  });
  forgive(problems, offlineFrom, OFFLINE, { to: reloadAt });
  // The reload cuts the household's read it finds under way (if the route had not failed it yet).
  forgive(problems, offlineFrom, CUT, { to: reloadAt, max: 1 });
  const onlineAt = problems.length;
  await context.setOffline(false);
  await waitFor(page, () => Number(document.body.dataset.queue) === 0, null, async () => `both visits sent (${JSON.stringify(await state(page))}; lost ${JSON.stringify(lost)})`, timeoutMs * 2);
  if (lost.visit !== 1) throw new Error(`the answer to drop was not seen: ${JSON.stringify(lost)}`);
  if (!replays.some((r) => r.status === 200 && r.replayed === 'true')) throw new Error(`the visit sent again after its lost answer was not answered as a replay: ${JSON.stringify(replays)}`);
  const mineNotes = (v) => v.filter((x) => x.note === note1 || x.note === note3).map((x) => x.note);
  for (const [k, note] of [['H1', note1], ['H3', note3]]) {
    const d = await admin('GET', `/api/v1/households/${hh[k].id}`);
    const same = (d.visits ?? []).filter((v) => v.note === note);
    if (same.length !== 1) throw new Error(`household ${k} has ${same.length} visits with the note, want 1: ${JSON.stringify(d.visits)}`);
    if (same[0].user?.username !== 'demo-leader') throw new Error(`household ${k}'s visit was recorded by ${JSON.stringify(same[0].user)}, want demo-leader`);
  }
  const mine = mineNotes(list(await must(leader, 'GET', '/api/v1/visits?mine=1&limit=1000'), 'visits'));
  if (mine.length !== 2) throw new Error(`demo-leader's visits (?mine=1) hold ${mine.length} of the two, want each once: ${JSON.stringify(mine)}`);
  // The household shows it as sent.
  await openHousehold(page, hh.H1.id, ['network', 'cache']);
  await waitFor(page, (note) => [...document.querySelectorAll('#hh-visits li[data-state="sent"]')].filter((li) => li.textContent.includes(note)).length === 1 && !document.querySelector('#hh-visits li[data-state="pending"]'), note1, async () => `household H1 showing its visit once, as sent (${await page.textContent('#hh-visits')})`);
  await shot(page, 'sent');
  await go(page, 'visits');
  await waitFor(page, (id) => (document.querySelector(`#hh-list [data-household-id="${id}"] .last-visit`)?.dataset.at ?? '') !== '', hh.H1.id, 'household H1 with its last visit on the list');
  await go(page, 'myvisits');
  await waitFor(page, ([a, b]) => {
    const texts = [...document.querySelectorAll('#myvisits-list [data-state="sent"]')].map((li) => li.textContent);
    return texts.filter((t) => t.includes(a)).length === 1 && texts.filter((t) => t.includes(b)).length === 1 && !document.querySelector('#myvisits-list [data-state="pending"]');
  }, [note1, note3], async () => `my visits listing both, once each (${await page.textContent('#myvisits-list')})`);
  await shot(page, 'mine');
  await context.unrouteAll({ behavior: 'ignoreErrors' });
  // Back online, only the answer dropped on purpose failed (and the console's line about it).
  if (forgive(problems, onlineAt, /^request failed: POST \S+\/api\/v1\/households\/\d+\/visits \(net::ERR_FAILED\)$/, { max: 1 }) !== 1) throw new Error(`the lost answer's failure was not seen: ${problems.slice(onlineAt).join('; ')}`);
  forgive(problems, onlineAt, /^console error: Failed to load resource: net::ERR_FAILED$/, { max: 1 });
  await check('offline and back');

  // ---- 6. one phone, two leaders; signed out; a role without visits ----
  const adminS = await apiSession(base, 'demo-admin', 'gridwatch-admin');
  const second = { username: `e2e-visits2-${tag}`, password: 'e2e-second-leader-password' };
  await must(adminS, 'POST', '/api/v1/users', { username: second.username, display_name: 'e2e 第二网格员', role: 'grid_leader', password: second.password, grid_codes: [other.code] });
  const before = await dump(page);
  if (!before.idb.cache?.includes(codes.H1)) throw new Error('demo-leader\'s households are not in IndexedDB before the switch: the check below could not fail');
  const { sessions } = await must(adminS, 'GET', `/api/v1/users/${leader.me.id}/sessions`);
  const sid = sessions.find((x) => x.device === DEVICE)?.id;
  if (!sid) throw new Error(`no session of demo-leader named ${DEVICE}: ${JSON.stringify(sessions)}`);
  const revoked = await adminS('DELETE', `/api/v1/sessions/${sid}`);
  if (revoked.status !== 204) throw new Error(`DELETE /api/v1/sessions/${sid}: HTTP ${revoked.status}`);
  watcher.expect('GET', /^\/api\/v1\/.*/, 401); // the ended session's reads
  await go(page, 'visits');
  const reloadFrom = problems.length;
  await page.reload({ waitUntil: 'domcontentloaded' });
  // A visit to H4 by demo-leader, from elsewhere: the second leader's phone has never seen it.
  const visitedAt = new Date(Date.now() - 3 * 86400e3);
  const h4visit = await leader('POST', `/api/v1/households/${hh.H4.id}/visits`, { visited_at: visitedAt.toISOString(), note: `e2e ${tag}: from elsewhere` }, { 'Idempotency-Key': `e2e-${tag}-h4-visit` });
  if (h4visit.status !== 201) throw new Error(`POST a visit to H4 as demo-leader: HTTP ${h4visit.status} ${h4visit.text}`);
  await signInAs(page, second.username, second.password);
  forgive(problems, reloadFrom, CUT);
  await go(page, 'visits');
  await page.fill('#hh-q', tag);
  await waitFor(page, (id) => document.body.dataset.householdsFrom === 'network' && !!document.querySelector(`#hh-list [data-household-id="${id}"]`), hh.H4.id, async () => `the second leader's household listed (${JSON.stringify(await state(page))})`);
  const h4last = await page.evaluate((id) => document.querySelector(`#hh-list [data-household-id="${id}"] .last-visit`)?.dataset.at, hh.H4.id);
  if (!h4last || Math.abs(Date.parse(h4last) - visitedAt.getTime()) > 1000) throw new Error(`household H4's last visit on the second leader's phone: ${h4last}, want ${visitedAt.toISOString()} (from the server)`);
  const after = await dump(page);
  const theirs = [codes.H1, codes.H2, codes.H3].filter((c) => after.idb.cache?.includes(c) || after.page.includes(c));
  if (theirs.length) throw new Error(`demo-leader's households ${theirs} are on the phone after the second leader signed in`);
  if (new RegExp(`"owner":${leader.me.id}\\b`).test(after.idb.cache ?? '')) throw new Error('IndexedDB still keeps answers of demo-leader');
  await go(page, 'account');
  const signOutFrom = problems.length;
  await page.tap('#logout-btn');
  await waitFor(page, () => document.body.dataset.auth === 'login', null, 'signed out');
  forgive(problems, signOutFrom, CUT);
  const out = await dump(page);
  if (out.idb.cache !== '[]' || /E2E-/.test(Object.values(out.caches).join('\n'))) throw new Error(`signed out, the phone still keeps households: ${out.idb.cache.slice(0, 300)}`);
  await signInAs(page, 'demo-commander', 'gridwatch-commander');
  const commander = await page.evaluate(() => ({ tab: document.querySelector('.tab[data-tab="visits"]').hidden, visits: document.body.dataset.visits }));
  if (!commander.tab || commander.visits !== 'off') throw new Error(`demo-commander (no visits.record) is offered visits: ${JSON.stringify(commander)}`);
  await page.evaluate(() => {
    location.hash = 'visits';
  });
  await waitFor(page, () => document.body.dataset.tab === 'tasks', null, 'demo-commander sent to the tasks from #visits');
  await check('two members, and a role without visits');
  await context.close();
  return {
    ok: true,
    url: FIELD,
    grid: grid.code,
    households: Object.fromEntries(Object.entries(hh).map(([k, h]) => [k, h.id])),
    community: { households: listed.n, searchMs },
    replays,
    lost,
    layout,
    seconds: Math.round((Date.now() - started) / 1000),
  };
}

await main(run, () => browser);
