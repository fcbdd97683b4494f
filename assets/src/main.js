// Gridwatch one-map dashboard: sign-in, grids on a dark map, a detail panel,
// locate, and — by permission — grid import and administration.
//
// Test hooks (used by e2e/*.mjs; no inline scripts needed):
//   document.body.dataset.auth         "login" while the login overlay shows, "ok" once signed in
//   document.body.dataset.user, .role  the signed-in username and role
//   document.body.dataset.gridsLoaded  feature count, set at the first idle after the grids are drawn
//   document.body.dataset.gridTiles    the grids' tile URL template, ?v= the grid revision drawn
//   window.gridwatchMap                the maplibregl.Map
//   #panel [data-field=name|code|level|area|chain|cases]
//   document.body.dataset.incidentsLoaded  open cases loaded (incidents.read), after the first load
//   document.body.dataset.live         "sse" (live stream), "polling" (fallback) or "connecting"
//   window.gridwatchIncidents          {has(id), get(id), open(id), counts()}
//   document.body.dataset.camerasLoaded  camera count, once the camera layer (source gw-cameras) is added
//   #panel [data-field=cams] [data-camera-id], #camera-card[data-camera]
//   #panel li.vtile[data-video-camera][data-state], #player-dialog (see video-wall.js)
//   #camera-card [data-field=cam-footage], #footage-dialog (see footage.js)
//   #incident-view[data-incident-id][data-status][data-version], #incident-history > li
//   #panel [data-field=edit-btn|history-btn], #editor (see editor.js), history (see history.js)

import 'maplibre-gl/dist/maplibre-gl.css';
import './style.css';
import * as maplibregl from 'maplibre-gl';
import { AdminDialog } from './admin.js';
import { CameraLayer } from './camera-layer.js';
import { applyPermissions, can, currentSession, describe, getJSON, onUnauthenticated } from './api.js';
import { LoginDialog, showUser } from './auth.js';
import { isModalOpen } from './dom.js';
import { bboxOf } from './geometry.js';
import { ImportDialog } from './importer.js';
import { FILL_LAYERS, LEVEL_CN, LEVEL_RANK, addGridLayers, baseStyle, gridFeature, gridTilesURL, prepareGrids, removeGridLayers } from './layers.js';
import { Panel, levelLabel } from './panel.js';
import { IncidentForm } from './incident-form.js';
import { IncidentLayer } from './incident-layer.js';
import { IncidentView } from './incident-view.js';
import { IncidentStore } from './incidents.js';
import { LiveFeed } from './live.js';
import { OPEN_STATUSES, statusLabel } from './status.js';
import { StatsDialog } from './stats.js';
import { toast } from './toast.js';
import { PlayerDialog } from './video-wall.js';
import { FootageDialog } from './footage.js';
import { GridHistory } from './history.js';
import { RecordingStatus } from './recording-status.js';

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
// The grids are drawn from vector tiles (their URL, with the grid revision,
// comes from the TileJSON); the GeoJSON is the index behind names, labels,
// counts and the panel.
const gridsP = Promise.all([getJSON('/api/v1/grids.geojson'), getJSON('/tiles/grids.json')]);

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

// ---- incidents: the store, the map layer, live updates ---------------------------------

const incidentsOn = can('incidents.read');
const store = new IncidentStore({
  onError: (err, context) => showError(err, context),
  bounds: () => {
    const b = map.getBounds();
    return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()];
  },
});
const incLayer = new IncidentLayer(map, store);
window.gridwatchIncidents = {
  has: (id) => store.has(id),
  get: (id) => store.get(id),
  open: (id) => openIncident(id),
  counts: () => store.counts(),
};

// ---- cameras (cameras.read): points and view cones, loaded while the grids load ----------

const camerasOn = can('cameras.read');
const camLayer = new CameraLayer(map);
const camerasLoad = camerasOn
  ? camLayer.load().catch((err) => {
      showError(err, 'Loading cameras');
    })
  : null;

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

// Live video (video.live): the grid panel's wall and the larger player. Nothing
// connects until a grid is open or Play is pressed.
const videoOn = () => can('video.live');
// Recorded footage (video.playback): the footage dialog, hls.js loaded on first use.
const footageOn = () => can('video.playback');
const footage = new FootageDialog();
const openFootage = (cam, opener) => {
  if (footageOn()) footage.open(cam, { opener });
};
const player = new PlayerDialog({ onPlayback: openFootage, canPlayback: footageOn });

const panel = new Panel($('#panel'), {
  onPick: (id, opts) => selectGrid(id, opts),
  onClose: closePanel,
  onIncident: (id) => openIncident(id),
  onCamera: (id) => openCamera(id, { fly: true }),
  onPlay: (cam, opener) => {
    if (videoOn()) player.open(cam, { stream: 'main', opener });
  },
  onFootage: openFootage,
});

map.on('load', async () => {
  performance.mark('gw-map-load');
  let fc, tiles;
  try {
    [fc, tiles] = await gridsP;
  } catch (err) {
    showError(err, 'Loading grids');
    document.body.dataset.gridsLoaded = '0';
    return;
  }
  drawGrids(fc, tiles);
  performance.mark('gw-layers-added');
  if (grids.bbox) fitAll(false);
  map.once('idle', () => {
    // Milliseconds from navigation start to grids drawn: the first-load budget.
    document.body.dataset.gridsLoadedMs = String(Math.round(performance.now()));
    document.body.dataset.gridsLoaded = String(grids.total);
    // Cameras, then incidents, go on top once the grids are drawn: the grids come first.
    if (camerasOn) addCameras();
    if (incidentsOn) showIncidents();
  });
  if (banner.hidden) setStatus('ok', '在线 Online');
  gridsDrawn();
});

function drawGrids(fc, tiles) {
  if (grids) removeGridLayers(map);
  hoverId = null;
  grids = prepareGrids(fc);
  const tilesURL = gridTilesURL(tiles);
  document.body.dataset.gridTiles = tilesURL;
  addGridLayers(map, grids, { withGraticule: offlineStyle, tilesURL });
  camLayer.raise();
  incLayer.setGrids(grids);
  incLayer.afterGridsRedrawn();
  gridHistory.raise();
  editor?.raise();
  showCounts(grids);
}

/**
 * reloadGrids fetches the grids again (after an import or a grid.changed
 * event) and redraws them from the tiles of the new revision, keeping the
 * selection.
 */
async function reloadGrids() {
  await gridsReady;
  const [fc, tiles] = await Promise.all([getJSON('/api/v1/grids.geojson'), getJSON('/tiles/grids.json')]);
  const keep = selectedId;
  drawGrids(fc, tiles);
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
  const docked = document.querySelector('dialog.docked[open]') ?? document.querySelector('.drawer:not([hidden])');
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

/**
 * pick returns the most specific grid under a screen point (grid > community
 * > street > district) as { id, properties }, the properties from the index
 * (a zoomed-out tile leaves out small grids' names).
 */
function pick(point) {
  if (!grids) return null;
  let best = null;
  for (const f of map.queryRenderedFeatures(point, { layers: FILL_LAYERS })) {
    if (f.id === undefined) continue;
    if (!best || (LEVEL_RANK[f.properties.level] ?? -1) > (LEVEL_RANK[best.properties.level] ?? -1)) best = f;
  }
  if (!best) return null;
  const id = Number(best.id);
  return { id, properties: grids.byId.get(id)?.properties ?? best.properties };
}

const tip = $('#map').appendChild(document.createElement('div'));
tip.className = 'hover-tip';
tip.hidden = true;

let hoverId = null;
function setHover(id) {
  if (id === hoverId) return;
  if (hoverId !== null) map.setFeatureState(gridFeature(hoverId), { hover: false });
  hoverId = id;
  if (id !== null) map.setFeatureState(gridFeature(id), { hover: true });
}

let pendingMove = null;
map.on('mousemove', (ev) => {
  if (pendingMove === null) requestAnimationFrame(() => hoverAt(pendingMove));
  pendingMove = ev;
});
function hoverAt(ev) {
  pendingMove = null;
  if (editing()) {
    // The editor (terra-draw) owns the cursor and the clicks.
    setHover(null);
    tip.hidden = true;
    return;
  }
  if (hoverIncident(ev)) return;
  if (hoverCamera(ev)) return;
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
  if (editing()) return; // the editor's own click handler picks neighbours
  if (newForm.picking) {
    newForm.pickAt(ev.lngLat);
    return;
  }
  if (locating || ev.originalEvent.altKey) {
    locateAt(ev.lngLat);
    return;
  }
  const hit = incidentsOn ? incLayer.hit(ev.point) : null;
  if (hit?.cluster) {
    incLayer.expand(hit.cluster);
    return;
  }
  if (hit) {
    openIncident(hit.id);
    return;
  }
  const cam = camerasOn ? camLayer.hit(ev.point) : null;
  if (cam) {
    openCamera(cam.id);
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
  if (selectedId !== null) map.setFeatureState(gridFeature(selectedId), { selected: false });
  selectedId = id;
  if (id !== null) map.setFeatureState(gridFeature(id), { selected: true });
}

async function selectGrid(id, { fit = false, fromLocate = false } = {}) {
  const seq = ++selectSeq;
  camLayer.select(null);
  if (!fromLocate) clearLocateMarker();
  setSelected(id);
  gridHistory.reset(id);
  panel.showLoading(fromLocate);
  if (fit) fitToGrid(id);
  try {
    const g = await getJSON(`/api/v1/grids/${encodeURIComponent(id)}`);
    if (seq !== selectSeq) return;
    panel.showGrid(g, grids?.descendants(Number(g.id)));
    document.title = `${g.name} · ${levelLabel(g.level)} — Gridwatch`;
    loadGridExtras(Number(g.id), seq);
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
  camLayer.select(null);
  clearLocateMarker();
  gridHistory.reset();
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
  if (ev.key !== 'Escape' || ev.defaultPrevented || isModalOpen() || editing()) return;
  if (ev.target instanceof HTMLElement && ev.target.closest('.drawer form') && !newForm.picking) return; // typing in a form
  if (newForm.picking) newForm.setPicking(false);
  else if (locating) setLocating(false);
  else if (view.isOpen) closeIncident();
  else if (newForm.isOpen) closeNewForm();
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

// ---- boundary editing (grids.write) and history (grids.read) ------------------------------

const gridHistory = new GridHistory($('#panel'), map, {
  onError: showError,
  // Show the old boundary together with the current one.
  onShow: (geometry) => {
    const b = bboxOf(geometry);
    if (!b) return;
    const cur = selectedId !== null ? grids?.byId.get(selectedId) : null;
    if (cur) bboxOf(cur.geometry, b);
    map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: panelPadding(), maxZoom: 18, duration: 600 });
  },
});

// The editor and terra-draw are loaded on first use: viewers never fetch them.
let editor = null;
let editorLoad = null;
function editing() {
  return document.body.classList.contains('editing');
}
async function startEditing(id) {
  if (!can('grids.write')) return;
  const btn = $('#panel [data-field="edit-btn"]');
  btn.disabled = true;
  try {
    editorLoad ??= import('./editor.js').then(
      ({ Editor }) =>
        new Editor({
          map,
          showProblemAt,
          clearProblemMarker,
          onClose: () => {
            if (selectedId !== null) setSelected(selectedId);
          },
          onSaved: async (report, gridId) => {
            try {
              await reloadGrids();
            } catch (err) {
              showError(err, 'Reloading grids');
            }
            if (grids?.byId.has(Number(gridId))) selectGrid(Number(gridId));
          },
        }),
    );
    editor = await editorLoad;
    gridHistory.reset(id);
    await editor.open(id);
  } catch (err) {
    editorLoad = null;
    showError(err, 'Editor');
  } finally {
    btn.disabled = false;
  }
}
$('#panel [data-field="edit-btn"]').addEventListener('click', () => {
  const id = Number($('#panel').dataset.gridId);
  if (id > 0) startEditing(id);
});

const admin = new AdminDialog({ onError: showError });
$('#admin-btn').addEventListener('click', () => admin.open());

// ---- incidents: loading, live updates, the views -----------------------------------------

const numberOrDash = (n) => (Number.isFinite(n) ? numberFmt.format(n) : '—');

function gridLabel(id) {
  if (id === null || id === undefined) return '';
  const f = grids?.byId.get(Number(id));
  return f ? `${LEVEL_CN[f.properties.level] ?? ''} ${f.properties.name ?? ''}`.trim() : '';
}

/** within reports whether grid id lies in ancestor's subtree (or is it). */
function within(id, ancestor) {
  let cur = grids?.byId.get(Number(id));
  for (let hops = 0; cur && hops < 16; hops++) {
    if (Number(cur.id ?? cur.properties.id) === Number(ancestor)) return true;
    const parent = cur.properties?.parent_id;
    cur = parent === null || parent === undefined ? null : grids.byId.get(Number(parent));
  }
  return false;
}

let countsFrame = 0;
function showIncidentCounts() {
  if (countsFrame) return;
  countsFrame = requestAnimationFrame(() => {
    countsFrame = 0;
    const c = store.counts();
    $('#open-count').textContent = numberOrDash(c.open);
    $('#overdue-count').textContent = numberOrDash(c.overdue);
    $('#overdue-count').closest('.stat').dataset.hot = String(c.overdue > 0);
    $('#open-count').closest('.stat').title = `${c.unassigned} 件无网格 unassigned${store.truncated ? ' · only the newest are loaded' : ''}`;
    showRamp();
  });
}
setInterval(showIncidentCounts, 60000); // deadlines pass

// Announcements arrive in bursts (a bulk import): up to three toasts, then one summary.
let announceQueue = [];
let announceTimer = 0;
function announce(inc) {
  announceQueue.push(inc);
  if (!announceTimer) announceTimer = setTimeout(flushAnnouncements, 300);
}
function flushAnnouncements() {
  announceTimer = 0;
  const list = announceQueue;
  announceQueue = [];
  const shown = list.length > 3 ? list.slice(0, 1) : list;
  for (const inc of shown) {
    const where = inc.grid ? gridLabel(inc.grid.id) || inc.grid.name : '无网格 unassigned';
    toast(`新事件 New incident: ${inc.title}`, {
      detail: [inc.category_name, where, statusLabel(inc.status)].filter(Boolean).join(' · '),
      kind: 'new',
      data: { incidentId: String(inc.id) },
      onClick: () => openIncident(inc.id, { fly: true }),
    });
  }
  if (list.length > shown.length) toast(`另有 ${list.length - shown.length} 件新事件 · ${list.length - shown.length} more new incidents`, { kind: 'new' });
}

// The selected grid's case list follows the changes of its cases.
let casesTimer = 0;
store.subscribe((change) => {
  showIncidentCounts();
  if (change.kind === 'upsert' && change.announce) announce(change.incident);
  if (selectedId === null || !panel.isOpen) return;
  const touched = (inc) => inc?.grid && within(inc.grid.id, selectedId);
  if (change.kind === 'reset' || touched(change.incident) || touched(change.previous)) {
    clearTimeout(casesTimer);
    casesTimer = setTimeout(() => loadCases(selectedId, selectSeq), 600);
  }
});

/** cameraEvent applies camera.online/offline: the map's colour, the panel, the player. */
function cameraEvent(data) {
  const id = Number(data?.camera_id ?? data?.id);
  if (!(id > 0) || typeof data.status !== 'string') return;
  const st = { status: data.status, reason: data.reason ?? '', since: data.since ?? null };
  // A camera the map does not hold yet was registered since it loaded: load them again.
  if (camerasOn && !camLayer.setStatus(id, st)) reloadCamerasSoon();
  panel.cameraStatus(id, st);
  player.setStatus(id, st);
  if (panel.shownCamera && Number(panel.shownCamera.id) === id) refreshCameraCard(id, selectSeq);
}

// The recorder's disk-full banner (video.playback).
const recording = new RecordingStatus();
recording.load();

/** poll is the live feed's fallback (and its catch-up after a reconnect). */
function pollAll() {
  const jobs = [recording.load()];
  if (incidentsOn) jobs.push(store.refresh().catch((err) => showError(err, 'Incidents')));
  if (camerasOn) jobs.push(reloadCameras());
  return Promise.all(jobs);
}

let camerasTimer = 0;
function reloadCamerasSoon() {
  if (!camerasTimer) {
    camerasTimer = setTimeout(() => {
      camerasTimer = 0;
      reloadCameras();
    }, 1000);
  }
}

// Without the event stream, camera colours follow a reload of the list.
async function reloadCameras() {
  try {
    await camLayer.load();
  } catch (err) {
    console.warn('cameras', err);
  }
}

const live = new LiveFeed({
  onEvent: (type, data) => {
    const id = data && typeof data === 'object' ? data.id : undefined;
    if (recording.onEvent(type, data)) return;
    if (type === 'camera.online' || type === 'camera.offline') cameraEvent(data);
    else if (type === 'incident.created') store.queue(id, { announce: true });
    else if (type === 'incident.changed') store.queue(id);
    else if (type === 'grid.changed') {
      reloadGrids().catch((err) => showError(err, 'Reloading grids'));
      editor?.gridChanged(data); // someone else's change to the grid being edited
    }
    else if (type === 'reset') pollAll(); // missed more than the server can replay
    else if (type === 'incident.bulk') {
      const n = Number(data?.created);
      if (n > 0) toast(`批量上报 ${n} 件 · ${n} incidents filed in bulk`, { kind: 'new' });
      // The event names the new cases in view (up to 100): add those; only
      // past that ("more") is the whole list read again.
      if (data?.more || !Array.isArray(data?.ids)) store.refresh().catch((err) => showError(err, 'Incidents'));
      else store.addByIds(data.ids).catch((err) => showError(err, 'Incidents'));
    }
  },
  poll: pollAll,
  onMode: (mode) => {
    document.body.dataset.live = mode;
    const m = $('#live-mode');
    m.dataset.mode = mode;
    m.textContent = mode === 'sse' ? '实时 live' : mode === 'polling' ? '轮询 polling 15 s' : '连接中 connecting';
    m.title = mode === 'polling' ? 'The live event stream is unavailable: the map is refreshed every 15 s' : '';
  },
});

// The open cases load, and the live feed starts, while the map and the grids
// load; the layer is added once the grids are drawn.
const incidentsLoad = incidentsOn
  ? store.load().catch((err) => {
      showError(err, 'Loading incidents');
    })
  : null;
// A GIS editor (no incidents or cameras) listens too: for grid.changed.
if (incidentsOn || camerasOn || can('grids.write')) live.start();

async function showIncidents() {
  incLayer.add();
  await incidentsLoad;
  document.body.dataset.incidentsLoaded = String(store.counts().open);
  store.loadClosedInView().catch((err) => console.warn('closed incidents', err));
}

let closedTimer = 0;
map.on('moveend', () => {
  if (!incidentsOn || !store.loaded) return;
  clearTimeout(closedTimer);
  closedTimer = setTimeout(() => store.loadClosedInView().catch((err) => console.warn('closed incidents', err)), 700);
});

// ---- the grid panel's cases and team ----------------------------------------------------

async function loadCases(gridId, seq) {
  if (!incidentsOn) return;
  panel.showCases(gridId, { loading: true });
  try {
    const q = new URLSearchParams({ grid: String(gridId), status: OPEN_STATUSES.join(','), limit: '50' });
    const res = await getJSON(`/api/v1/incidents?${q}`);
    if (seq !== selectSeq) return;
    panel.showCases(gridId, { list: Array.isArray(res?.incidents) ? res.incidents : [], more: !!res?.next });
  } catch (err) {
    if (seq !== selectSeq) return;
    panel.showCases(gridId, { error: describe(err) });
  }
}

async function loadGridExtras(gridId, seq) {
  // One after the other, after the grid itself: a sign-in prompted by the grid
  // call is over before these run.
  loadCases(gridId, seq);
  loadGridCameras(gridId, seq);
  try {
    const res = await getJSON(`/api/v1/grids/${encodeURIComponent(gridId)}/staff`);
    if (seq !== selectSeq) return;
    panel.showStaff(gridId, Array.isArray(res?.staff) ? res.staff : []);
  } catch (err) {
    if (seq === selectSeq) console.warn('grid staff', err);
  }
}

async function loadGridCameras(gridId, seq) {
  if (!camerasOn) return;
  panel.showCameras(gridId, { loading: true });
  try {
    const res = await getJSON(`/api/v1/grids/${encodeURIComponent(gridId)}/cameras?limit=200`);
    if (seq !== selectSeq) return;
    const list = Array.isArray(res?.cameras) ? res.cameras : [];
    panel.showCameras(gridId, { list, more: !!res?.next });
    if (videoOn()) panel.showWall(gridId, list);
  } catch (err) {
    if (seq !== selectSeq) return;
    panel.showCameras(gridId, { error: describe(err) });
  }
}

// ---- cameras: the card, hover, flying to one ------------------------------------------------

async function addCameras() {
  await camerasLoad;
  camLayer.add();
  document.body.dataset.camerasLoaded = String(camLayer.byId.size);
}

async function openCamera(id, { fly = false } = {}) {
  const seq = ++selectSeq;
  setSelected(null);
  clearLocateMarker();
  let cam = camLayer.get(id);
  const cached = !!cam;
  if (!cam) {
    try {
      cam = await getJSON(`/api/v1/cameras/${encodeURIComponent(id)}`);
    } catch (err) {
      if (seq === selectSeq) showError(err, `Camera ${id}`);
      return;
    }
    if (seq !== selectSeq) return;
  }
  camLayer.select(cam.id);
  panel.showCamera(cam);
  document.title = `${cam.code ?? ''} ${cam.name ?? ''} — Gridwatch`;
  const c = cam.location?.coordinates;
  if (fly && Array.isArray(c)) map.flyTo({ center: [c[0], c[1]], zoom: Math.max(map.getZoom(), 16.5), padding: panelPadding(), duration: 800 });
  // The list has no live figures: the camera itself has them (streams), refreshed while the card shows.
  if (cached) refreshCameraCard(cam.id, seq);
  clearInterval(cardTimer);
  cardTimer = setInterval(() => {
    if (seq !== selectSeq || !panel.isOpen) clearInterval(cardTimer);
    else refreshCameraCard(cam.id, seq);
  }, 10000);
}

let cardTimer = 0;

/** refreshCameraCard reloads GET /api/v1/cameras/{id} into the card if it still shows that camera. */
async function refreshCameraCard(id, seq) {
  try {
    const cam = await getJSON(`/api/v1/cameras/${encodeURIComponent(id)}`);
    if (seq !== selectSeq || Number(panel.shownCamera?.id) !== Number(id)) return;
    panel.showCamera(cam);
  } catch (err) {
    if (seq === selectSeq) console.warn('camera', err);
  }
}

function hoverCamera(ev) {
  if (!camerasOn || newForm.picking || locating) return false;
  const hit = camLayer.hit(ev.point);
  if (!hit) return false;
  setHover(null);
  map.getCanvas().style.cursor = 'pointer';
  tip.replaceChildren();
  const code = tip.appendChild(document.createElement('span'));
  code.className = 'tip-code';
  code.textContent = hit.code ?? '';
  tip.append(` ${hit.name ?? ''}`);
  tip.style.transform = `translate(${Math.round(ev.point.x + 14)}px, ${Math.round(ev.point.y + 16)}px)`;
  tip.hidden = false;
  return true;
}

// ---- the incident view, the new-incident form, statistics -------------------------------

const view = new IncidentView($('#incident-view'), {
  store,
  onClose: closeIncident,
  onShowGrid: (id) => selectGrid(id, { fit: true }),
  onFly: (inc) => flyToIncident(inc),
  gridName: gridLabel,
  gridOptions: () =>
    grids
      ? [...grids.byId.values()]
          .filter((f) => f.properties?.level === 'grid')
          .map((f) => ({ id: Number(f.id ?? f.properties.id), code: String(f.properties.code ?? ''), name: String(f.properties.name ?? '') }))
          .sort((a, b) => a.code.localeCompare(b.code))
      : [],
  onError: showError,
  onFootage: (cam, range, opener) => {
    if (footageOn()) footage.open(cam, { opener, range });
  },
});

function flyToIncident(inc) {
  const c = inc?.location?.coordinates;
  if (!Array.isArray(c)) return;
  map.flyTo({ center: [c[0], c[1]], zoom: Math.max(map.getZoom(), 16), padding: panelPadding(), duration: 800 });
}

function openIncident(id, { fly = false } = {}) {
  if (newForm.isOpen) closeNewForm();
  incLayer.select(id);
  view.open(id);
  if (fly) {
    const known = store.get(id);
    if (known) flyToIncident(known);
  }
}

function closeIncident() {
  view.close();
  incLayer.select(null);
}

function setPicking(on) {
  $('#pick-hint').hidden = !on;
  document.body.classList.toggle('locating', on);
  map.getCanvas().style.cursor = on ? 'crosshair' : '';
  if (on && locating) setLocating(false);
}

const newForm = new IncidentForm($('#incident-new'), map, {
  onPicking: setPicking,
  onClose: closeNewForm,
  onCreated: (inc) => {
    store.upsert(inc);
    closeNewForm();
    openIncident(inc.id);
    toast(`已上报 Reported: ${inc.title}`, { detail: inc.grid ? gridLabel(inc.grid.id) || inc.grid.name : '无网格 unassigned' });
  },
});

function closeNewForm() {
  newForm.close();
}

$('#new-incident-btn').addEventListener('click', () => {
  if (view.isOpen) closeIncident();
  if (newForm.isOpen) newForm.setPicking(true);
  else newForm.open();
});

const stats = new StatsDialog({ onError: showError, onPickGrid: (id) => selectGrid(id, { fit: true }) });
$('#stats-btn').addEventListener('click', () => stats.open());

// Hovering a case shows its status and title.
function hoverIncident(ev) {
  if (!incidentsOn || newForm.picking || locating) return false;
  const hit = incLayer.hit(ev.point);
  if (!hit) return false;
  setHover(null);
  map.getCanvas().style.cursor = 'pointer';
  tip.replaceChildren();
  if (hit.cluster) {
    const p = hit.cluster.properties;
    tip.append(`${p.point_count} 件事件 incidents`);
    if (p.overdue > 0) tip.append(Object.assign(document.createElement('span'), { className: 'tip-overdue', textContent: `${p.overdue} 超期 overdue` }));
  } else {
    const inc = store.get(hit.id);
    if (!inc) return false;
    const badge = tip.appendChild(document.createElement('span'));
    badge.className = 'status-badge';
    badge.dataset.status = inc.status;
    badge.textContent = statusLabel(inc.status);
    tip.append(` ${inc.title}`);
  }
  tip.style.transform = `translate(${Math.round(ev.point.x + 14)}px, ${Math.round(ev.point.y + 16)}px)`;
  tip.hidden = false;
  return true;
}

// Grid shading by open or overdue count.
function setChoropleth(mode) {
  incLayer.setChoropleth(mode);
  for (const b of document.querySelectorAll('[data-choropleth]')) b.setAttribute('aria-pressed', String(b.dataset.choropleth === incLayer.mode));
  showRamp();
}
function showRamp() {
  const ramp = $('#choro-ramp');
  ramp.hidden = incLayer.mode === 'none';
  ramp.dataset.mode = incLayer.mode;
  $('#ramp-max').textContent = String(incLayer.maxCount() || 0);
}
for (const b of document.querySelectorAll('[data-choropleth]')) b.addEventListener('click', () => setChoropleth(b.dataset.choropleth));
setChoropleth(incLayer.mode);
