// Base data (人、房、地、物, issue 19) on the command centre's dashboard, in
// headless Chromium.
//
//   node e2e/base.mjs <baseURL> <artifactDir> <adminToken>
//
// Through the API with the admin token it imports, into a grid of
// demo-leader's (community 410105001001), clear of cameras: a building with
// a footprint and one without, two households of three residents (CSV: ID
// numbers, phones, birth dates, care flags), a damaged street lamp and an
// intact hydrant, and a parcel over a corner of the grid, beside the demo's
// own base data (the figures count both). Then:
//   - as demo-commander: the grid's panel shows "基础数据 Base data" with the
//     figures the API's summary gives (buildings, households, residents, each
//     care flag, components by state, parcels); by keyboard, the buildings
//     figure opens its list, the building's row its card (address, floors,
//     households masked), Esc closes it and gives the focus back to the
//     row; a household's card lists its residents, Back returns; the
//     residents list and a resident's card show the masked values only — no
//     imported ID number, phone or birth date anywhere in the page or its
//     storage — and no Reveal (no residents.unmask); a click on the
//     building's footprint on the map opens its card; the damaged lamp's
//     card has no state select (no base.write), and "上报部件问题 Report a
//     problem" opens the new-incident form prefilled (its place, category
//     0702, the component named): filed, the case is the lamp's (the API's
//     component_id) and in its card's case history; a read of the card
//     sent before another case about the lamp and answered after it (held
//     back in the browser) is read again: both cases show; the parcel's row
//     outlines it on the map and lists its grids as the API does; at zoom
//     14, 15 and 16 the map draws the demo's buildings and components; the
//     community's link in the panel's chain shows the community's figures
//     as its summary has them (more than the grid's), and its households
//     list pages on ("load more", "50 / 2,416") without repeating a row;
//   - as demo-operator (base.read, no residents.read): the figures only —
//     households, residents and care flags are no links, and the page asks
//     nothing of /api/v1/residents or /api/v1/households;
//   - as demo-leader: Reveal on the resident asks for a purpose (too short is
//     refused before any call), then shows the full ID number and phone; the
//     audit log (as admin) holds resident.unmask with that purpose; closing
//     the card takes them out of the page, and the card opened again is
//     masked; the lamp's state select (base.write) sets it to lost, the API
//     agrees and the panel's "lost" figure follows;
//   - on a phone (390×844), the leader's building card is a sheet the width
//     of the screen at the bottom.
// Screenshots base-commander.png, base-z14/15/16.png, base-community.png,
// base-leader-reveal.png, base-phone.png in
// artifactDir. Prints one JSON line; exits 0 on success, 1 on failure.

import path from 'node:path';
import { bboxOf, distanceM, interiorPoint, pointInGeometry } from '../src/geometry.js';
import { gridCandidates, holdAnswer, launch, main, openGrid, openPage, passed, scriptArgs, signIn, timeoutMs, waitFor, waitGrids } from './common.mjs';

const { base, args: [artifactDir, adminToken], started } = scriptArgs('base.mjs', '<artifactDir> <adminToken>', timeoutMs * 30 + 60000);

const COMMANDER = { username: 'demo-commander', password: 'gridwatch-commander' };
const OPERATOR = { username: 'demo-operator', password: 'gridwatch-operator' };
const LEADER = { username: 'demo-leader', password: 'gridwatch-leader', community: '410105001001' };

let browser;

/** admin calls the API as the admin (bearer token): body a string (with contentType) or an object (JSON). */
async function admin(method, p, body, contentType) {
  const headers = { Authorization: `Bearer ${adminToken}`, Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = contentType ?? 'application/json';
  const res = await fetch(new URL(p, base), { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = text;
  }
  if (!res.ok) throw new Error(`${method} ${p}: HTTP ${res.status} ${text.slice(0, 500)}`);
  return parsed;
}

/** listOf is a list answer's items ({"buildings":[…],"next"} and the like). */
function listOf(res, key) {
  if (Array.isArray(res?.[key])) return res[key];
  if (Array.isArray(res?.items)) return res.items;
  return Object.values(res ?? {}).find(Array.isArray) ?? [];
}

/** idNumber completes 17 digits with their check digit (GB 11643, ISO 7064 MOD 11-2). */
function idNumber(first17) {
  const w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  const sum = [...first17].reduce((s, d, i) => s + Number(d) * w[i], 0);
  return first17 + '10X98765432'[sum % 11];
}

/** offset moves [lon, lat] by dx metres east and dy north. */
function offset([lon, lat], dx, dy) {
  return [lon + dx / (111320 * Math.cos((lat * Math.PI) / 180)), lat + dy / 111320];
}

/** rect is a closed ring of a w×h metre rectangle centred on c. */
function rect(c, w, h) {
  const ring = [offset(c, -w / 2, -h / 2), offset(c, w / 2, -h / 2), offset(c, w / 2, h / 2), offset(c, -w / 2, h / 2)];
  return [...ring, ring[0]];
}

/** seed imports the test's base data into grid g; it returns what the checks need. */
async function seed(g) {
  const run = String(Date.now()).slice(-6);
  const cams = listOf(await admin('GET', '/api/v1/cameras?limit=1000'), 'cameras')
    .map((c) => c.location?.coordinates)
    .filter(Array.isArray);
  const clear = (p, m) => cams.every((c) => distanceM({ lon: p[0], lat: p[1] }, { lon: c[0], lat: c[1] }) > m);
  const inside = (p) => pointInGeometry(p, g.geometry);
  // The building's centre: on rings around the grid's interior point, where its
  // footprint, the point building and both components lie in the grid, clear of cameras.
  // Clear of the buildings already there (the demo's) too, so that a click on its footprint is its own.
  const noBuildings = async (c) => {
    const box = bboxOf({ type: 'Polygon', coordinates: [rect(c, 180, 140)] });
    return listOf(await admin('GET', `/api/v1/buildings?bbox=${box.map((x) => x.toFixed(7)).join(',')}&limit=1`), 'buildings').length === 0;
  };
  const p0 = interiorPoint(g.geometry);
  let centre = null;
  for (let ring = 0; ring <= 12 && !centre; ring++) {
    const n = ring === 0 ? 1 : ring * 8;
    for (let i = 0; i < n && !centre; i++) {
      const a = (2 * Math.PI * i) / n;
      const c = offset(p0, Math.cos(a) * ring * 25, Math.sin(a) * ring * 25);
      const spots = [...rect(c, 40, 30), offset(c, 70, 0), offset(c, 0, 45), offset(c, -55, -40)];
      if (spots.every(inside) && clear(c, 90) && (await noBuildings(c))) centre = c;
    }
  }
  if (!centre) throw new Error(`no room in grid ${g.code} for the test building clear of cameras and buildings`);

  const bld = { code: `E2E-B-${run}`, name: `测试楼 ${run}`, address: `经八路 ${run} 号`, floors: 6, units: 2, use: '住宅' };
  const bld2 = { code: `E2E-P-${run}`, name: `测试平房 ${run}`, address: `经八路 ${run} 号附`, floors: 1, units: 1, use: '住宅' };
  const footprint = rect(centre, 40, 30);
  const point2 = offset(centre, 70, 0);
  const r1 = await admin('POST', '/api/v1/buildings/import', JSON.stringify({
    type: 'FeatureCollection',
    features: [
      { type: 'Feature', geometry: { type: 'Polygon', coordinates: [footprint] }, properties: bld },
      { type: 'Feature', geometry: { type: 'Point', coordinates: point2 }, properties: bld2 },
    ],
  }), 'application/geo+json');
  if (r1?.created !== 2) throw new Error(`buildings import: ${JSON.stringify(r1)}`);

  const lamp = { code: `4101050120${run}`, class: '0120', name: '路灯', department: '市政路灯所', state: 'damaged', address: `经八路 ${run} 号北` };
  const hydrant = { code: `4101050116${run}`, class: '0116', name: '消防栓', department: '消防支队', state: 'intact', address: `经八路 ${run} 号西南` };
  const lampAt = offset(centre, 0, 45);
  const r2 = await admin('POST', '/api/v1/components/import', JSON.stringify({
    type: 'FeatureCollection',
    features: [
      { type: 'Feature', geometry: { type: 'Point', coordinates: lampAt }, properties: lamp },
      { type: 'Feature', geometry: { type: 'Point', coordinates: offset(centre, -55, -40) }, properties: hydrant },
    ],
  }), 'application/geo+json');
  if (r2?.created !== 2) throw new Error(`components import: ${JSON.stringify(r2)}`);

  // A parcel over a corner of the grid: it may reach into the grids around.
  const corner = g.geometry.type === 'Polygon' ? g.geometry.coordinates[0][0] : g.geometry.coordinates[0][0][0];
  const parcel = { code: `E2E-L-${run}`, name: `测试地块 ${run}`, use: '城镇住宅用地', holder: '测试置业有限公司' };
  const r3 = await admin('POST', '/api/v1/parcels/import', JSON.stringify({
    type: 'FeatureCollection',
    features: [{ type: 'Feature', geometry: { type: 'Polygon', coordinates: [rect(corner, 160, 120)] }, properties: parcel }],
  }), 'application/geo+json');
  if (r3?.created !== 1) throw new Error(`parcels import: ${JSON.stringify(r3)}`);

  const people = [
    { household: `E2E-H1-${run}`, unit: '1', room: '101', name: '张三丰', gender: '男', relation: '户主', id: idNumber(`41010519480312${run.slice(-2)}1`), phone: `1380013${run.slice(-4)}`, birth: '1948-03-12', care: 'elderly_alone' },
    { household: `E2E-H1-${run}`, unit: '1', room: '101', name: '李四', gender: '女', relation: '配偶', id: idNumber(`41010519520718${run.slice(-2)}2`), phone: `1390013${run.slice(-4)}`, birth: '1952-07-18', care: 'disabled;low_income' },
    { household: `E2E-H2-${run}`, unit: '2', room: '202', name: '王小明', gender: '男', relation: '孙子', id: idNumber(`41010520150601${run.slice(-2)}3`), phone: `1370013${run.slice(-4)}`, birth: '2015-06-01', care: 'left_behind_minor' },
  ];
  const csv = ['household_code,building_code,unit,room,name,gender,relation,id_number,phone,birth_date,care', ...people.map((p) => [p.household, bld.code, p.unit, p.room, p.name, p.gender, p.relation, p.id, p.phone, p.birth, p.care].join(','))].join('\n') + '\n';
  const r4 = await admin('POST', '/api/v1/residents/import', csv, 'text/csv');
  if (r4?.created !== 3) throw new Error(`residents import: ${JSON.stringify(r4)}`);

  // Their ids, as the API gives them.
  const find = async (kind, q, code) => {
    const list = listOf(await admin('GET', `/api/v1/${kind}?${new URLSearchParams(q)}`), kind);
    const hit = list.find((x) => x.code === code);
    if (!hit) throw new Error(`${kind} ${code} not found by ${JSON.stringify(q)}: ${JSON.stringify(list).slice(0, 300)}`);
    return hit;
  };
  const b1 = await find('buildings', { grid: String(g.id), q: bld.code, limit: '100' }, bld.code);
  const b2 = await find('buildings', { grid: String(g.id), q: bld2.code, limit: '100' }, bld2.code);
  const lampObj = await find('components', { grid: String(g.id), q: lamp.code, limit: '100' }, lamp.code);
  const parcelObj = await find('parcels', { q: parcel.code, limit: '100' }, parcel.code);
  const households = listOf(await admin('GET', `/api/v1/households?building=${b1.id}&limit=100`), 'households');
  const h1 = households.find((h) => h.code === people[0].household);
  const h2 = households.find((h) => h.code === people[2].household);
  if (!h1 || !h2) throw new Error(`households of ${bld.code}: ${JSON.stringify(households).slice(0, 300)}`);
  const residents = listOf(await admin('GET', `/api/v1/residents?building=${b1.id}&limit=100`), 'residents');
  for (const p of people) {
    const r = residents.find((x) => x.household?.code === p.household && x.id_number?.slice(-4) === p.id.slice(-4));
    if (!r) throw new Error(`resident ${p.name} not listed: ${JSON.stringify(residents).slice(0, 400)}`);
    p.resident = r;
  }
  return { run, centre, footprint, bld, bld2, b1, b2, lamp, lampObj, lampAt, parcel: parcelObj, h1, h2, people };
}

// ---- page helpers -------------------------------------------------------------------------

/** apiInPage GETs path as the page's signed-in user. */
function apiInPage(page, p) {
  return page.evaluate(async (p) => {
    const res = await fetch(p, { headers: { Accept: 'application/json' } });
    return { status: res.status, body: await res.json().catch(() => null) };
  }, p);
}

/** figures reads the base section's counts: {key: {n, link}}. */
function figures(page) {
  return page.evaluate(() => {
    const out = {};
    for (const e of document.querySelectorAll('#panel [data-field="base-section"] [data-base-count]')) out[e.dataset.baseCount] = { n: Number(e.dataset.n), link: e.tagName === 'BUTTON' };
    return out;
  });
}

/** waitSection waits for the base section of grid id to have loaded. */
function waitSection(page, id) {
  return waitFor(
    page,
    (id) => {
      const s = document.querySelector('#panel [data-field="base-section"]');
      return s && !s.hidden && s.dataset.baseGrid === String(id) && s.dataset.state === 'ok';
    },
    id,
    async () => `the base-data section of grid ${id} (${await page.evaluate(() => JSON.stringify({ ...document.querySelector('#panel [data-field="base-section"]')?.dataset, text: document.querySelector('#panel [data-field="base-section"]')?.textContent.slice(0, 200) }))})`,
  );
}

/** checkFigures compares the section's counts with the API's summary of grid id, as the page's user. */
async function checkFigures(page, id) {
  const { status, body: s } = await apiInPage(page, `/api/v1/grids/${id}/summary`);
  if (status !== 200) throw new Error(`summary of grid ${id}: HTTP ${status}`);
  const got = await figures(page);
  const want = { buildings: s.buildings, households: s.households, residents: s.residents, parcels: s.parcels };
  for (const [flag, n] of Object.entries(s.care ?? {})) want[`care:${flag}`] = n;
  for (const [st, n] of Object.entries(s.components ?? {})) want[`components:${st}`] = n;
  for (const [k, n] of Object.entries(want)) {
    if (got[k]?.n !== n) throw new Error(`figure ${k}: the panel shows ${got[k]?.n}, the API's summary ${n} (${JSON.stringify(got)} vs ${JSON.stringify(s)})`);
  }
  return { summary: s, figures: got };
}

/** openList opens the list behind figure key (clicking it) and waits for its first page. */
async function openList(page, key) {
  const back = await page.$('#panel [data-field="base-back"]');
  if (back && (await back.isVisible())) await back.click();
  await page.click(`#panel [data-base-count="${key}"]`);
  await waitFor(page, () => document.querySelector('#panel [data-field="base-list"]')?.dataset.state === 'ok', null, `the list of ${key}`);
}

/** findRow pages through the open list until the row of kind id shows; it returns its selector. */
async function findRow(page, kind, id) {
  const sel = `#panel [data-field="base-list"] button[data-base-kind="${kind}"][data-base-id="${id}"]`;
  for (let i = 0; i < 200; i++) {
    if (await page.$(sel)) return sel;
    const more = await page.$('#panel [data-field="base-more"]:not([hidden])');
    if (!more) {
      const seen = await page.evaluate(() => ({ rows: document.querySelector('#panel [data-field="base-list"]')?.children.length, note: document.querySelector('#panel [data-field="base-list-note"]')?.textContent }));
      throw new Error(`no row for ${kind} ${id} in the list (${JSON.stringify(seen)})`);
    }
    const n = await page.evaluate(() => document.querySelector('#panel [data-field="base-list"]').children.length);
    await more.click();
    await waitFor(page, (n) => {
      const ol = document.querySelector('#panel [data-field="base-list"]');
      return ol.dataset.state === 'ok' && ol.children.length > n;
    }, n, 'the next page of the list');
  }
  throw new Error(`no row for ${kind} ${id} after 200 pages`);
}

/** waitCard waits for #base-card to show kind id, loaded. */
function waitCard(page, kind, id) {
  return waitFor(
    page,
    ([kind, id]) => {
      const c = document.querySelector('#base-card');
      return c && !c.hidden && c.dataset.kind === kind && c.dataset.id === String(id) && c.dataset.state === 'ok';
    },
    [kind, id],
    async () => `the ${kind} card of ${id} (${await page.evaluate(() => JSON.stringify({ ...document.querySelector('#base-card')?.dataset, hidden: document.querySelector('#base-card')?.hidden, text: document.querySelector('#base-card')?.textContent.slice(0, 300) }))})`,
  );
}

const cardText = (page, field) => page.evaluate((f) => document.querySelector(`#base-card [data-field="${f}"]`)?.textContent.trim() ?? null, field);

/** noPersonal checks that none of the imported full values is in the page (DOM and storage). */
async function noPersonal(page, people, step) {
  const leaks = await page.evaluate((secrets) => {
    const html = document.documentElement.outerHTML;
    const stores = JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage });
    return secrets.filter((s) => html.includes(s) || stores.includes(s));
  }, people.flatMap((p) => [p.id, p.phone, p.birth]));
  if (leaks.length) throw new Error(`${step}: the page holds full personal values: ${leaks.join(', ')}`);
}

/** closeCard closes the card with its ×. */
async function closeCard(page) {
  await page.click('#base-card .panel-close');
  await waitFor(page, () => document.querySelector('#base-card').hidden, null, 'the card to close');
}

/** signedIn opens a page (viewport options), signs user in and waits for the grids and the base layers. */
async function signedIn(user, options = {}) {
  const { context, page, watcher } = await openPage(browser, base, options);
  await page.goto(base.href);
  await signIn(page, user.username, user.password);
  await waitGrids(page, watcher.problems);
  await waitFor(page, () => document.body.dataset.baseLayers !== undefined, null, 'the base-data layers');
  return { context, page, watcher };
}

/** buildingPoint finds a page point on the building's footprint (zoom 17.5) where a click opens it: nothing else on top. */
function buildingPoint(page, centre, footprint, id) {
  return page.evaluate(
    ([centre, ring, id]) =>
      new Promise((resolve) => {
        const map = window.gridwatchMap;
        map.once('idle', () => {
          const r = map.getContainer().getBoundingClientRect();
          // What takes a click before a building (main.js): a case, a camera's point (not its view cone), a component.
          const blockers = ['cam-point', 'inc-point', 'inc-cluster', 'base-cmp-point'].filter((l) => map.getLayer(l));
          const [a, b, c] = [ring[0], ring[1], ring[3]];
          for (let i = 1; i < 10; i++) {
            for (let j = 1; j < 10; j++) {
              const lon = a[0] + ((b[0] - a[0]) * i) / 10;
              const lat = a[1] + ((c[1] - a[1]) * j) / 10;
              const p = map.project([lon, lat]);
              const x = r.left + p.x;
              const y = r.top + p.y;
              if (document.elementFromPoint(x, y)?.tagName !== 'CANVAS') continue;
              if (blockers.length && map.queryRenderedFeatures([[p.x - 16, p.y - 16], [p.x + 16, p.y + 16]], { layers: blockers }).length) continue;
              const hit = window.gridwatchBase.hit(x, y);
              if (hit?.kind === 'building' && hit.id === id) {
                resolve({ x, y });
                return;
              }
            }
          }
          resolve(null);
        });
        map.jumpTo({ center: centre, zoom: 17.5 });
        map.triggerRepaint();
      }),
    [centre, footprint, id],
  );
}

// ---- the run -------------------------------------------------------------------------------

async function run() {
  browser = await launch();
  const all = (await admin('GET', '/api/v1/grids.geojson')).features ?? [];
  const mine = all.filter((f) => f.properties?.level === 'grid' && String(f.properties.code).startsWith(LEADER.community)).sort((a, b) => String(a.properties.code).localeCompare(String(b.properties.code)));
  if (mine.length === 0) throw new Error(`no grid under community ${LEADER.community}`);
  const g = { id: Number(mine[0].id ?? mine[0].properties.id), code: String(mine[0].properties.code), geometry: mine[0].geometry };
  const cand = gridCandidates([mine[0]])[0];
  const d = await seed(g);
  const [r1, r2, r3] = d.people.map((p) => p.resident);
  const out = { grid: g.code };

  // ---- demo-commander ----
  {
    const { context, page, watcher } = await signedIn(COMMANDER);
    await openGrid(page, cand);
    await waitSection(page, g.id);
    const { summary, figures: fig } = await checkFigures(page, g.id);
    if (!(summary.buildings >= 2 && summary.residents >= 3 && summary.households >= 2 && summary.care?.elderly_alone >= 1 && summary.components?.damaged >= 1 && summary.parcels >= 1)) {
      throw new Error(`the summary lacks the imported data: ${JSON.stringify(summary)}`);
    }
    for (const k of ['buildings', 'households', 'residents', 'parcels', 'care:elderly_alone', 'components:damaged']) if (!fig[k]?.link) throw new Error(`the commander's figure ${k} opens no list`);
    out.summary = summary;

    // By keyboard: the buildings figure, the building's row, Esc back to the row.
    await page.focus('#panel [data-base-count="buildings"]');
    await page.keyboard.press('Enter');
    await waitFor(page, () => document.querySelector('#panel [data-field="base-list"]')?.dataset.state === 'ok' && document.querySelector('#panel [data-field="base-list"]').dataset.kind === 'buildings', null, 'the buildings list (Enter)');
    const row = await findRow(page, 'building', d.b1.id);
    await page.focus(row);
    await page.keyboard.press('Enter');
    await waitCard(page, 'building', d.b1.id);
    if ((await cardText(page, 'code')) !== d.bld.code) throw new Error(`building card code ${await cardText(page, 'code')}, want ${d.bld.code}`);
    if ((await cardText(page, 'address')) !== d.bld.address) throw new Error(`building card address ${await cardText(page, 'address')}`);
    if ((await cardText(page, 'floors')) !== '6') throw new Error(`building card floors ${await cardText(page, 'floors')}`);
    const hh = await page.$$eval('#base-card [data-field="households"] button[data-base-kind="household"]', (bs) => bs.map((b) => Number(b.dataset.baseId)));
    if (!(hh.includes(d.h1.id) && hh.includes(d.h2.id) && hh.length === 2)) throw new Error(`building card households ${JSON.stringify(hh)}, want ${d.h1.id} and ${d.h2.id}`);
    await noPersonal(page, d.people, 'building card');
    await page.keyboard.press('Escape');
    await waitFor(page, () => document.querySelector('#base-card').hidden, null, 'Esc to close the card');
    const focusBack = await page.evaluate((id) => document.activeElement?.matches(`button[data-base-kind="building"][data-base-id="${id}"]`), d.b1.id);
    if (!focusBack) throw new Error('the focus did not return to the building row after Esc');

    // A household's card lists its residents (masked); Back returns to the building.
    await page.click(row);
    await waitCard(page, 'building', d.b1.id);
    await page.click(`#base-card button[data-base-kind="household"][data-base-id="${d.h1.id}"]`);
    await waitCard(page, 'household', d.h1.id);
    const inHousehold = await page.$$eval('#base-card [data-field="residents"] button[data-base-kind="resident"]', (bs) => bs.map((b) => ({ id: Number(b.dataset.baseId), idn: b.querySelector('[data-field="id-number"]')?.textContent })));
    for (const r of [r1, r2]) {
      const x = inHousehold.find((e) => e.id === r.id);
      if (!x || x.idn !== r.id_number) throw new Error(`household card: resident ${r.id} ${JSON.stringify(x)}, want ${r.id_number}`);
    }
    await page.click('#base-card [data-field="back"]');
    await waitCard(page, 'building', d.b1.id);
    await closeCard(page);

    // The residents list and a resident's card: masked only, no Reveal.
    await openList(page, 'residents');
    const rrow = await findRow(page, 'resident', r1.id);
    const rowIdn = await page.$eval(rrow, (b) => b.querySelector('[data-field="id-number"]')?.textContent);
    if (rowIdn !== r1.id_number || !/^\d{4}\*+[\dX]{4}$/.test(rowIdn)) throw new Error(`resident row shows ID ${rowIdn}, want the mask ${r1.id_number}`);
    await page.click(rrow);
    await waitCard(page, 'resident', r1.id);
    if ((await cardText(page, 'id-number')) !== r1.id_number) throw new Error(`resident card ID ${await cardText(page, 'id-number')}, want ${r1.id_number}`);
    if ((await cardText(page, 'phone')) !== r1.phone) throw new Error(`resident card phone ${await cardText(page, 'phone')}, want ${r1.phone}`);
    if (await page.$('#base-card [data-field="reveal-btn"]')) throw new Error('the commander (no residents.unmask) is offered Reveal');
    const care = await page.$$eval('#base-card [data-field="care"] [data-care]', (cs) => cs.map((c) => c.dataset.care));
    if (!care.includes('elderly_alone')) throw new Error(`resident card care ${JSON.stringify(care)}`);
    await noPersonal(page, d.people, 'residents list and card');
    await closeCard(page);

    // The building from a click on its footprint on the map.
    const at = await buildingPoint(page, d.centre, d.footprint, d.b1.id);
    if (!at) throw new Error('no free point of the test building to click on the map');
    await page.mouse.move(at.x - 15, at.y - 15);
    await page.mouse.move(at.x, at.y, { steps: 4 });
    await page.mouse.click(at.x, at.y);
    await waitCard(page, 'building', d.b1.id);
    const selected = await page.evaluate(() => JSON.stringify(window.gridwatchMap.getFilter('base-bld-selected')));
    if (!selected.includes(String(d.b1.id))) throw new Error(`the building is not marked on the map: ${selected}`);
    await closeCard(page);

    // The damaged lamp: no state select; "Report a problem" files a case linked to it.
    await openGrid(page, cand);
    await waitSection(page, g.id);
    await openList(page, 'components:damaged');
    await page.click(await findRow(page, 'component', d.lampObj.id));
    await waitCard(page, 'component', d.lampObj.id);
    if (await page.$('#base-card [data-field="state-select"]')) throw new Error('the commander (no base.write) has a state select');
    if (!(await cardText(page, 'state'))?.includes('损坏')) throw new Error(`the lamp's state shows ${await cardText(page, 'state')}`);
    await page.click('#base-card [data-field="report-btn"]');
    await waitFor(page, () => !document.querySelector('#incident-new').hidden && document.querySelector('#new-category')?.value === '0702', null, async () => `the prefilled form (category ${await page.evaluate(() => document.querySelector('#new-category')?.value)})`);
    const form = await page.evaluate(() => ({ linked: document.querySelector('#incident-new [data-field="linked"]')?.textContent, where: document.querySelector('#incident-new [data-field="location"]')?.textContent, title: document.querySelector('#new-title')?.value }));
    if (!form.linked?.includes(d.lamp.code) || !/\d+\.\d+, \d+\.\d+/.test(form.where ?? '') || !form.title) throw new Error(`the form is not prefilled for the lamp: ${JSON.stringify(form)}`);
    await page.click('#incident-submit');
    await waitFor(page, () => Number(document.querySelector('#incident-view')?.dataset.incidentId) > 0 && !document.querySelector('#incident-view').hidden, null, 'the filed case in the incident view');
    const caseId = await page.evaluate(() => Number(document.querySelector('#incident-view').dataset.incidentId));
    const filed = await admin('GET', `/api/v1/incidents/${caseId}`);
    if (Number(filed.component_id) !== d.lampObj.id || filed.category !== '0702') throw new Error(`the filed case is not the lamp's: ${JSON.stringify(filed).slice(0, 400)}`);
    // The lamp's case history has it (read again by the card, or when opened again).
    await waitFor(page, (id) => !!document.querySelector(`#base-card:not([hidden]) [data-field="cases"] [data-incident-id="${id}"]`), caseId, 'the case in the lamp card\'s history');
    await page.keyboard.press('Escape'); // the incident view
    // A read of the card sent before a case about the lamp is filed, and
    // answered after: the card heard the case meanwhile and reads again.
    const fileLampCase = (title) => admin('POST', '/api/v1/incidents', { source: 'hotline', category: '0702', title, component_id: d.lampObj.id, location: { type: 'Point', coordinates: d.lampAt } });
    const heldRead = await holdAnswer(page, new RegExp(`/api/v1/components/${d.lampObj.id}$`), "the lamp card's read after a case");
    const before = await fileLampCase(`e2e 路灯 ${d.lamp.code} 读取前`);
    await heldRead.read(); // the card's read for the first case: answered, and held
    const during = await fileLampCase(`e2e 路灯 ${d.lamp.code} 读取中`);
    await waitFor(page, () => document.querySelector('#base-card')?.dataset.stale === 'true', null, 'the card to hear the second case while its read is held');
    await heldRead.stop();
    await waitFor(
      page,
      (ids) => ids.every((id) => !!document.querySelector(`#base-card:not([hidden]) [data-field="cases"] [data-incident-id="${id}"]`)),
      [before.id, during.id],
      async () => `both cases in the lamp card's history after its late read (cases shown: ${await page.evaluate(() => JSON.stringify([...document.querySelectorAll('#base-card [data-field="cases"] [data-incident-id]')].map((b) => b.dataset.incidentId)))})`,
    );
    await closeCard(page);
    out.caseId = caseId;

    // The parcel: outlined on the map, its grids with their areas.
    await openList(page, 'parcels');
    await page.click(await findRow(page, 'parcel', d.parcel.id));
    await waitCard(page, 'parcel', d.parcel.id);
    await waitFor(page, () => document.body.dataset.baseParcel === 'shown' && window.gridwatchMap.getSource('base-parcel')?.serialize().data.features.length === 1, null, 'the parcel outlined on the map');
    const detail = await admin('GET', `/api/v1/parcels/${d.parcel.id}`);
    const shownGrids = await page.$$eval('#base-card [data-field="parcel-grids"] li[data-grid-id]', (ls) => ls.map((l) => ({ id: Number(l.dataset.gridId), area: l.querySelector('[data-field="grid-area"]')?.textContent })));
    const wantGrids = (detail.grids ?? []).map((x) => Number(x.id)).sort();
    if (JSON.stringify(shownGrids.map((x) => x.id).sort()) !== JSON.stringify(wantGrids) || !wantGrids.includes(g.id) || shownGrids.some((x) => !/m²/.test(x.area ?? ''))) {
      throw new Error(`parcel grids shown ${JSON.stringify(shownGrids)}, the API's ${JSON.stringify(detail.grids)}`);
    }
    await page.screenshot({ path: path.join(artifactDir, 'base-commander.png') });
    await closeCard(page);
    if (await page.evaluate(() => document.body.dataset.baseParcel)) throw new Error('the parcel outline stays after its card closed');
    out.parcelGrids = wantGrids.length;

    // The demo's density: buildings and components at zoom 14, 15 and 16 over the grid.
    out.tiles = {};
    for (const z of [14, 15, 16]) {
      const drawn = await page.evaluate(
        ([centre, z]) =>
          new Promise((resolve) => {
            const map = window.gridwatchMap;
            map.once('idle', () => {
              const count = (layers) => map.queryRenderedFeatures({ layers: layers.filter((l) => map.getLayer(l)) }).length;
              resolve({ buildings: count(['base-bld-fill', 'base-bld-point']), components: count(['base-cmp-point']) });
            });
            map.jumpTo({ center: centre, zoom: z });
            map.triggerRepaint();
          }),
        [d.centre, z],
      );
      if (!(drawn.buildings > 0 && drawn.components > 0)) throw new Error(`at zoom ${z} the map draws ${JSON.stringify(drawn)} buildings and components of the demo's`);
      out.tiles[z] = drawn;
      await page.screenshot({ path: path.join(artifactDir, `base-z${z}.png`) });
    }

    // The community above the grid (its link in the panel's chain): its figures are its summary's
    // (the grid's and its neighbours'), and its households list pages through the demo's hundreds.
    await page.click('#panel .chain-link[data-level="community"]');
    const cf = all.find((f) => f.properties?.level === 'community' && String(f.properties.code) === LEADER.community);
    const community = Number(cf?.id ?? cf?.properties?.id);
    if (!(community > 0)) throw new Error(`no community ${LEADER.community} among the grids`);
    await waitSection(page, community);
    const { summary: cs } = await checkFigures(page, community);
    if (!(cs.households > summary.households && cs.buildings > summary.buildings)) throw new Error(`the community's summary ${JSON.stringify(cs)} does not hold more than its grid's ${JSON.stringify(summary)}`);
    await openList(page, 'households');
    const first = await page.evaluate(() => document.querySelector('#panel [data-field="base-list"]').children.length);
    const shownN = await page.textContent('#panel [data-field="base-list-n"]');
    if (shownN.replace(/,/g, '') !== `(${first} / ${cs.households})`) throw new Error(`the community's households list says ${shownN}, want (${first} / ${cs.households})`);
    if (!(first > 0 && first < cs.households) || !(await page.$('#panel [data-field="base-more"]:not([hidden])'))) throw new Error(`the community's households list shows ${first} of ${cs.households} with no "load more"`);
    await page.click('#panel [data-field="base-more"]');
    await waitFor(page, (n) => document.querySelector('#panel [data-field="base-list"]').dataset.state === 'ok' && document.querySelector('#panel [data-field="base-list"]').children.length > n, first, 'the second page of the community\'s households');
    const ids = await page.$$eval('#panel [data-field="base-list"] button[data-base-id]', (bs) => bs.map((b) => b.dataset.baseId));
    if (new Set(ids).size !== ids.length) throw new Error(`the pages of the households list repeat rows: ${ids.length} rows, ${new Set(ids).size} distinct`);
    await page.screenshot({ path: path.join(artifactDir, 'base-community.png') });
    out.community = { id: community, households: cs.households, residents: cs.residents, rows: ids.length };
    await watcher.check('as the commander');
    await context.close();
  }

  // ---- demo-operator: the figures only ----
  {
    const { context, page, watcher } = await signedIn(OPERATOR);
    const asked = [];
    page.on('request', (req) => {
      const p = new URL(req.url()).pathname;
      if (/^\/api\/v1\/(residents|households)\b/.test(p)) asked.push(p);
    });
    await openGrid(page, cand);
    await waitSection(page, g.id);
    const { figures: fig } = await checkFigures(page, g.id);
    for (const [k, v] of Object.entries(fig)) {
      if ((k === 'households' || k === 'residents' || k.startsWith('care:')) && v.link) throw new Error(`the operator's figure ${k} opens a list`);
    }
    if (!fig.residents || fig.residents.n < 3) throw new Error(`the operator sees no residents figure: ${JSON.stringify(fig)}`);
    await openList(page, 'buildings');
    await page.click(await findRow(page, 'building', d.b1.id));
    await waitCard(page, 'building', d.b1.id);
    if (await page.$('#base-card button[data-base-kind="household"]')) throw new Error('the operator can open a household');
    await closeCard(page);
    if (asked.length) throw new Error(`the operator's page asked for people: ${asked.join(', ')}`);
    await noPersonal(page, d.people, 'operator');
    await watcher.check('as the operator');
    await context.close();
  }

  // ---- demo-leader: reveal with a purpose, audited; the lamp's state ----
  {
    const { context, page, watcher } = await signedIn(LEADER);
    const unmasks = [];
    page.on('request', (req) => {
      if (/\/unmask$/.test(new URL(req.url()).pathname)) unmasks.push(req.url());
    });
    await openGrid(page, cand);
    await waitSection(page, g.id);
    await checkFigures(page, g.id);
    await openList(page, 'care:elderly_alone');
    await page.click(await findRow(page, 'resident', r1.id));
    await waitCard(page, 'resident', r1.id);
    await page.click('#base-card [data-field="reveal-btn"]');
    await waitFor(page, () => document.querySelector('#base-reveal')?.open, null, 'the reveal dialog');
    await page.fill('#base-reveal textarea[name="purpose"]', 'ab');
    await page.click('#base-reveal [data-field="reveal-submit"]');
    await waitFor(page, () => !document.querySelector('#base-reveal .form-error').hidden, null, 'the short purpose refused');
    if (unmasks.length) throw new Error('a purpose of 2 characters was sent');
    const purpose = `E2E 核实独居老人信息 ${d.run}`;
    await page.fill('#base-reveal textarea[name="purpose"]', purpose);
    await page.click('#base-reveal [data-field="reveal-submit"]');
    await waitFor(page, () => document.querySelector('#base-card').dataset.revealed === 'true' && !document.querySelector('#base-reveal').open, null, 'the revealed values');
    const full = { id: await cardText(page, 'id-number'), phone: await cardText(page, 'phone'), birth: await cardText(page, 'birth-date') };
    const p1 = d.people[0];
    if (full.id !== p1.id || full.phone !== p1.phone || full.birth !== p1.birth) throw new Error(`revealed ${JSON.stringify(full)}, want ${JSON.stringify({ id: p1.id, phone: p1.phone, birth: p1.birth })}`);
    await page.screenshot({ path: path.join(artifactDir, 'base-leader-reveal.png') });
    const trail = await admin('GET', '/api/v1/audit?action=resident.unmask&limit=50');
    const entry = (trail.entries ?? []).find((e) => String(e.target_id) === String(r1.id) && JSON.stringify(e.summary ?? {}).includes(purpose));
    if (!entry) throw new Error(`the audit log has no resident.unmask of ${r1.id} with the purpose: ${JSON.stringify(trail).slice(0, 600)}`);
    if (!JSON.stringify(entry.actor ?? entry).includes('demo-leader')) throw new Error(`the unmask entry does not name demo-leader: ${JSON.stringify(entry)}`);
    await closeCard(page);
    await noPersonal(page, d.people, 'after the revealed card closed');
    // Opened again, the card is masked.
    await page.click(await findRow(page, 'resident', r1.id));
    await waitCard(page, 'resident', r1.id);
    if ((await cardText(page, 'id-number')) !== r1.id_number || (await page.evaluate(() => document.querySelector('#base-card').dataset.revealed))) throw new Error('the card opened again is not masked');
    await closeCard(page);
    out.audit = entry.id ?? true;

    // The lamp's state, by the select (base.write); the figure follows.
    const before = (await figures(page))['components:lost']?.n ?? 0;
    await openList(page, 'components:damaged');
    await page.click(await findRow(page, 'component', d.lampObj.id));
    await waitCard(page, 'component', d.lampObj.id);
    await page.selectOption('#base-card [data-field="state-select"]', 'lost');
    await waitFor(page, () => document.querySelector('#base-card [data-field="state-select"]')?.value === 'lost' && !document.querySelector('#base-card [data-field="state-select"]').disabled, null, 'the state set');
    const lamp = await admin('GET', `/api/v1/components/${d.lampObj.id}`);
    if (lamp.state !== 'lost') throw new Error(`the API has the lamp ${lamp.state} after the change`);
    await waitFor(page, (n) => Number(document.querySelector('#panel [data-base-count="components:lost"]')?.dataset.n) === n, before + 1, `the panel's lost figure at ${before + 1}`);
    await closeCard(page);
    await watcher.check('as the grid leader');
    await context.close();
  }

  // ---- a phone: the card is a sheet ----
  {
    const { context, page, watcher } = await signedIn(LEADER, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    await openGrid(page, cand);
    await waitSection(page, g.id);
    await openList(page, 'buildings');
    await page.click(await findRow(page, 'building', d.b1.id));
    await waitCard(page, 'building', d.b1.id);
    // Once it has risen (its sheet-in animation).
    await waitFor(page, () => document.querySelector('#base-card').getAnimations().every((a) => a.playState !== 'running'), null, 'the sheet to settle');
    const box = await page.evaluate(() => {
      const r = document.querySelector('#base-card').getBoundingClientRect();
      return { left: r.left, width: r.width, bottom: r.bottom, vw: innerWidth, vh: innerHeight, scroll: document.documentElement.scrollWidth };
    });
    if (box.width < box.vw * 0.95 || Math.abs(box.bottom - box.vh) > 2 || box.scroll > box.vw) throw new Error(`the card on a phone is no bottom sheet: ${JSON.stringify(box)}`);
    await page.screenshot({ path: path.join(artifactDir, 'base-phone.png') });
    await closeCard(page);
    await watcher.check('on a phone');
    await context.close();
  }

  return passed(async () => {}, 'base data', base, { ...out, seconds: Math.round((Date.now() - started) / 1000) });
}

await main(run, () => browser);
