// Gridwatch one-map dashboard: sign-in, grids on a dark map, a detail panel,
// locate, and — by permission — grid import and administration.
//
// Test hooks (used by e2e/*.mjs; no inline scripts needed):
//   document.body.dataset.auth         "login" while the login overlay shows, "ok" once signed in
//   document.body.dataset.user, .role  the signed-in username and role
//   document.body.dataset.gridsLoaded  feature count, set at the first idle after the grids are drawn
//   window.gridwatchMap                the maplibregl.Map
//   #panel [data-field=name|code|level|area|chain]

import 'maplibre-gl/dist/maplibre-gl.css';
import './style.css';
import * as maplibregl from 'maplibre-gl';
import { AdminDialog } from './admin.js';
import { applyPermissions, currentSession, describe, getJSON, onUnauthenticated } from './api.js';
import { LoginDialog, showUser } from './auth.js';
import { isModalOpen } from './dom.js';
import { bboxOf } from './geometry.js';
import { ImportDialog } from './importer.js';
import { FILL_LAYERS, GRID_SOURCE, LEVEL_CN, LEVEL_RANK, addGridLayers, baseStyle, prepareGrids, removeGridLayers } from './layers.js';
import { Panel, levelLabel } from './panel.js';

// MapLibre 6 runs its worker from a separate module file, shipped next to app.js.
maplibregl.setWorkerUrl(new URL('maplibre-gl-worker.mjs', import.meta.url).href);

const $ = (sel) => document.querySelector(sel);
const numberFmt = new Intl.NumberFormat('en-US');

// ---- header: banner, status, clock -------------------------------------------------

const banner = $('#banner');
function showError(err, context) {
  const msg = describe(err);
  $('#banner-text').textContent = context ? `${context}: ${msg}` : msg;
  banner.hidden = false;
  setStatus('error', 'API error');
}
function hideBanner() {
  banner.hidden = true;
  if (grids) setStatus('ok', '在线 Online');
}
$('#banner-close').addEventListener('click', hideBanner);

function setStatus(kind, text) {
  $('#status').dataset.state = kind;
  $('#status-text').textContent = text;
}

function tick() {
  const d = new Date();
  const p = (n) => String(n).padStart(2, '0');
  $('#clock').textContent = `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  $('#clock').dateTime = d.toISOString();
}
tick();
setInterval(tick, 1000);

// ---- sign in first: every API call but the login needs a session ---------------------

const loginDialog = new LoginDialog($('#login'));

function applyUser(me) {
  showUser(me);
  applyPermissions();
}

// A 401 on any later call (idle or absolute expiry) lands here: the overlay opens
// over the page as it is, and the failed call is retried after sign-in.
onUnauthenticated(async ({ previous }) => {
  const me = await loginDialog.prompt({ expired: true, previous });
  if (previous && (me.id !== previous.id || me.kind !== previous.kind)) {
    // Someone else signed in: start afresh with their grids and permissions.
    location.reload();
    return new Promise(() => {});
  }
  applyUser(me);
  return me;
});

setStatus('', '未登录 Signed out');
let me = null;
try {
  me = await currentSession();
} catch (err) {
  showError(err, 'Session');
}
if (me) document.body.dataset.auth = 'ok';
else me = await loginDialog.prompt();
applyUser(me);
setStatus('', 'Connecting…');

// ---- then meta and grids in parallel, then the map ----------------------------------

const metaP = getJSON('/api/v1/meta').catch((err) => {
  showError(err, 'Server info');
  return {};
});
const gridsP = getJSON('/api/v1/grids.geojson');

const meta = await metaP;
if (meta.version) {
  const v = String(meta.version);
  $('#version').textContent = /^\d/.test(v) ? `v${v}` : v;
}
const basemap = typeof meta.basemap_style_url === 'string' && meta.basemap_style_url.trim() !== '' ? meta.basemap_style_url.trim() : '';

const map = new maplibregl.Map({
  container: 'map',
  style: basemap || baseStyle(),
  center: [113.65, 34.78],
  zoom: 10,
  attributionControl: { compact: true },
  dragRotate: false,
  pitchWithRotate: false,
  touchPitch: false,
  maxPitch: 0,
  localIdeographFontFamily: "'Noto Sans CJK SC', 'Noto Sans SC', 'Source Han Sans SC', 'PingFang SC', 'Microsoft YaHei', sans-serif",
});
map.touchZoomRotate.disableRotation();
map.keyboard.disableRotation();
map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-left');
map.addControl(new maplibregl.ScaleControl({ unit: 'metric', maxWidth: 140 }), 'bottom-right');
window.gridwatchMap = map;

let grids = null; // prepareGrids() result once the grids are drawn
let gridsDrawn; // resolves once the first grids are on the map
const gridsReady = new Promise((resolve) => {
  gridsDrawn = resolve;
});

// A listener replaces MapLibre's default console.error, so map errors go to the banner.
// If the configured basemap cannot be loaded at all, fall back to the offline style.
let offlineStyle = !basemap;
map.on('error', (ev) => {
  if (!offlineStyle && !grids && !map.isStyleLoaded()) {
    offlineStyle = true;
    map.setStyle(baseStyle(), { diff: false });
    showError(ev.error ?? 'cannot load style', `Basemap ${basemap} (using the offline style)`);
    return;
  }
  showError(ev.error ?? 'map error', 'Map');
});

const panel = new Panel($('#panel'), { onPick: (id, opts) => selectGrid(id, opts), onClose: closePanel });

map.on('load', async () => {
  performance.mark('gw-map-load');
  let fc;
  try {
    fc = await gridsP;
  } catch (err) {
    showError(err, 'Loading grids');
    document.body.dataset.gridsLoaded = '0';
    return;
  }
  drawGrids(fc);
  performance.mark('gw-layers-added');
  if (grids.bbox) fitAll(false);
  map.once('idle', () => {
    // Milliseconds from navigation start to grids drawn: the first-load budget.
    document.body.dataset.gridsLoadedMs = String(Math.round(performance.now()));
    document.body.dataset.gridsLoaded = String(grids.total);
  });
  if (banner.hidden) setStatus('ok', '在线 Online');
  gridsDrawn();
});

function drawGrids(fc) {
  if (grids) removeGridLayers(map);
  hoverId = null;
  grids = prepareGrids(fc);
  addGridLayers(map, grids, { withGraticule: offlineStyle });
  showCounts(grids);
}

/** reloadGrids fetches the grids again (after an import) and redraws them, keeping the selection. */
async function reloadGrids() {
  await gridsReady;
  const fc = await getJSON('/api/v1/grids.geojson');
  const keep = selectedId;
  drawGrids(fc);
  selectedId = null;
  if (keep !== null && grids.byId.has(keep)) setSelected(keep);
  else if (keep !== null) closePanel();
  map.once('idle', () => {
    document.body.dataset.gridsLoaded = String(grids.total);
  });
  return grids;
}

function showCounts(g) {
  $('#grid-count').textContent = numberFmt.format(g.counts.grid);
  $('#stats').title = `${numberFmt.format(g.total)} areas in all`;
  for (const node of document.querySelectorAll('[data-count]')) {
    node.textContent = numberFmt.format(g.counts[node.dataset.count] ?? 0);
  }
}

function panelPadding() {
  const open = !$('#panel').hidden;
  const w = open ? $('#panel').getBoundingClientRect().width + 24 : 0;
  const docked = document.querySelector('dialog.docked[open]');
  const left = docked ? docked.getBoundingClientRect().right + 24 : 56;
  return { top: 56, bottom: 56, left, right: 56 + w };
}

function fitAll(animate = true) {
  if (!grids?.bbox) return;
  const [a, b, c, d] = grids.bbox;
  map.fitBounds([[a, b], [c, d]], { padding: panelPadding(), animate, duration: 700 });
}
$('#fit-btn').addEventListener('click', () => fitAll(true));

function fitToGrid(id) {
  const f = grids?.byId.get(id);
  const b = f && bboxOf(f.geometry);
  if (!b) return;
  map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: panelPadding(), maxZoom: 18, duration: 700 });
}

// ---- hover and click -----------------------------------------------------------------

/** pick returns the most specific grid under a screen point (grid > community > street > district). */
function pick(point) {
  if (!grids) return null;
  let best = null;
  for (const f of map.queryRenderedFeatures(point, { layers: FILL_LAYERS })) {
    if (f.id === undefined) continue;
    if (!best || (LEVEL_RANK[f.properties.level] ?? -1) > (LEVEL_RANK[best.properties.level] ?? -1)) best = f;
  }
  return best;
}

const tip = $('#map').appendChild(document.createElement('div'));
tip.className = 'hover-tip';
tip.hidden = true;

let hoverId = null;
function setHover(id) {
  if (id === hoverId) return;
  if (hoverId !== null) map.setFeatureState({ source: GRID_SOURCE, id: hoverId }, { hover: false });
  hoverId = id;
  if (id !== null) map.setFeatureState({ source: GRID_SOURCE, id }, { hover: true });
}

let pendingMove = null;
map.on('mousemove', (ev) => {
  if (pendingMove === null) requestAnimationFrame(() => hoverAt(pendingMove));
  pendingMove = ev;
});
function hoverAt(ev) {
  pendingMove = null;
  const f = pick(ev.point);
  setHover(f ? f.id : null);
  map.getCanvas().style.cursor = locating ? 'crosshair' : f ? 'pointer' : '';
  if (!f) {
    tip.hidden = true;
    return;
  }
  tip.replaceChildren();
  const lv = tip.appendChild(document.createElement('span'));
  lv.className = 'tip-level';
  lv.dataset.level = f.properties.level;
  lv.textContent = LEVEL_CN[f.properties.level] ?? f.properties.level;
  tip.append(` ${f.properties.name ?? ''}`);
  const code = tip.appendChild(document.createElement('span'));
  code.className = 'tip-code';
  code.textContent = f.properties.code ?? '';
  tip.style.transform = `translate(${Math.round(ev.point.x + 14)}px, ${Math.round(ev.point.y + 16)}px)`;
  tip.hidden = false;
}
map.getCanvasContainer().addEventListener('mouseleave', () => {
  setHover(null);
  tip.hidden = true;
});

map.on('click', (ev) => {
  if (locating || ev.originalEvent.altKey) {
    locateAt(ev.lngLat);
    return;
  }
  const f = pick(ev.point);
  if (f) selectGrid(f.id, { fit: false });
  else closePanel();
});

// ---- selection and the panel ---------------------------------------------------------

let selectedId = null;
let selectSeq = 0;

function setSelected(id) {
  if (selectedId !== null) map.setFeatureState({ source: GRID_SOURCE, id: selectedId }, { selected: false });
  selectedId = id;
  if (id !== null) map.setFeatureState({ source: GRID_SOURCE, id }, { selected: true });
}

async function selectGrid(id, { fit = false, fromLocate = false } = {}) {
  const seq = ++selectSeq;
  if (!fromLocate) clearLocateMarker();
  setSelected(id);
  panel.showLoading(fromLocate);
  if (fit) fitToGrid(id);
  try {
    const g = await getJSON(`/api/v1/grids/${encodeURIComponent(id)}`);
    if (seq !== selectSeq) return;
    panel.showGrid(g, grids?.descendants(Number(g.id)));
    document.title = `${g.name} · ${levelLabel(g.level)} — Gridwatch`;
  } catch (err) {
    if (seq !== selectSeq) return;
    panel.hideLoading();
    if (!fromLocate) closePanel();
    showError(err, `Grid ${id}`);
  }
}

function closePanel() {
  selectSeq++;
  setSelected(null);
  clearLocateMarker();
  panel.close();
  document.title = 'Gridwatch 网格治理';
}

// ---- locate --------------------------------------------------------------------------

let locating = false;
let marker = null;

function setLocating(on) {
  locating = on;
  $('#locate-btn').setAttribute('aria-pressed', String(on));
  $('#locate-hint').hidden = !on;
  document.body.classList.toggle('locating', on);
  map.getCanvas().style.cursor = on ? 'crosshair' : '';
}
$('#locate-btn').addEventListener('click', () => setLocating(!locating));

function clearLocateMarker() {
  marker?.remove();
  marker = null;
}

async function locateAt(lngLat) {
  setLocating(false);
  const seq = ++selectSeq;
  clearLocateMarker();
  const dot = document.createElement('div');
  dot.className = 'locate-marker';
  marker = new maplibregl.Marker({ element: dot }).setLngLat(lngLat).addTo(map);
  setSelected(null);
  panel.showLocate(lngLat, null);
  try {
    const q = new URLSearchParams({ lon: lngLat.lng.toFixed(7), lat: lngLat.lat.toFixed(7) });
    const res = await getJSON(`/api/v1/locate?${q}`);
    if (seq !== selectSeq) return;
    const list = Array.isArray(res.grids) ? res.grids : [];
    panel.showLocate(lngLat, list);
    if (list.length > 0) selectGrid(Number(list[0].id), { fromLocate: true });
  } catch (err) {
    if (seq !== selectSeq) return;
    panel.showLocate(lngLat, []);
    showError(err, 'Locate');
  }
}

document.addEventListener('keydown', (ev) => {
  // Esc in a modal dialog (login, import, admin) is the dialog's, not the map's.
  if (ev.key !== 'Escape' || ev.defaultPrevented || isModalOpen()) return;
  if (locating) setLocating(false);
  else if (panel.isOpen) closePanel();
  else hideBanner();
});

// ---- import (grids.write) and admin (users/tokens/audit) -------------------------------

let problemMarker = null;

function clearProblemMarker() {
  problemMarker?.remove();
  problemMarker = null;
}

/** showProblemAt flies to a point an import reported and marks it. */
function showProblemAt(lngLat, label) {
  clearProblemMarker();
  const node = document.createElement('div');
  node.className = 'problem-marker';
  node.append(Object.assign(document.createElement('span'), { className: 'problem-dot' }));
  if (label) node.append(Object.assign(document.createElement('span'), { className: 'problem-label', textContent: label }));
  problemMarker = new maplibregl.Marker({ element: node, anchor: 'left', offset: [-11, 0] }).setLngLat(lngLat).addTo(map);
  map.flyTo({ center: lngLat, zoom: Math.max(map.getZoom(), 16), padding: panelPadding(), duration: 900 });
}

/** showGridsOnMap fits the map to the given grid refs (just imported). */
function showGridsOnMap(refs) {
  const b = [Infinity, Infinity, -Infinity, -Infinity];
  for (const r of refs) {
    const f = grids?.byId.get(Number(r.id));
    if (f) bboxOf(f.geometry, b);
  }
  if (!Number.isFinite(b[0])) return;
  map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: panelPadding(), maxZoom: 17, duration: 800 });
}

const importer = new ImportDialog({
  reloadGrids,
  showProblemAt,
  clearProblemMarker,
  showGridsOnMap,
  onError: showError,
});
$('#import-btn').addEventListener('click', () => importer.open());

const admin = new AdminDialog({ onError: showError });
$('#admin-btn').addEventListener('click', () => admin.open());
