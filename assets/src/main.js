// Gridwatch one-map dashboard: sign-in, grids on a dark map, a detail panel,
// locate, and — by permission — grid import and administration.
//
// Test hooks (used by e2e/*.mjs; no inline scripts needed):
//   document.body.dataset.auth         "login" while the login overlay shows, "ok" once signed in
//   document.body.dataset.user, .role  the signed-in username and role
//   document.body.dataset.gridsLoaded  feature count, set at the first idle after the grids are drawn
//   document.body.dataset.gridTiles    the grids' tile URL template, ?v= the grid revision drawn
//   document.body.dataset.gridReloads  reloads of the grids answered (drawn, or dropped as older)
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
//   #camera-card [data-field=cam-gb] (a GB/T 28181 channel, see camera-card.js), #admin-gb (admin-gb28181.js)
//   document.body.dataset.mapPick while the map waits for a click for the admin view (map-pick.js)
//   #menu-btn[aria-expanded] and #topbar-menu (topbar-menu.js), #legend[data-collapsed] (legend.js),
//   #field-banner (header.js)
//   document.body.dataset.patrolsLoaded, .patrol-marker[data-patrol-id], #patrol-card (patrol-layer.js,
//   patrol-card.js), window.gridwatchPatrols {members(), open(id), refresh(), reads()}
//   #panel [data-field=base-section] (base-panel.js), #base-card, #base-reveal (base-card.js),
//   document.body.dataset.baseLayers (base-layer.js), window.gridwatchBase {open(kind, id), hit(x, y)}
//
// This file wires the parts together and keeps the selection (grid, camera,
// case, locate); the parts live in their own modules: header.js (banner,
// status, clock), map-setup.js (the map, its errors, framing), map-tip.js
// (hover), live-updates.js (the live feed's events), grid-extras.js (the grid
// panel's cases, cameras and staff), camera-card.js, editor-loader.js (the
// boundary editor, loaded on first use), locate.js, incident-panels.js (the
// case drawers), counts.js (figures and shading), topbar-menu.js and
// legend.js (the bar and the legend on a narrow screen), patrol-layer.js and
// patrol-card.js (members on patrol), base-layer.js, base-panel.js and
// base-card.js (buildings, households, residents, components, parcels).

import 'maplibre-gl/dist/maplibre-gl.css';
import './style.css';
import * as maplibregl from 'maplibre-gl';
import { AdminDialog } from './admin.js';
import { CameraAddDialog } from './camera-add.js';
import { CameraLayer } from './camera-layer.js';
import { applyPermissions, can, currentSession, getJSON, onUnauthenticated } from './api.js';
import { LoginDialog, showUser } from './auth.js';
import { isModalOpen } from './dom.js';
import { bboxOf } from './geometry.js';
import { ImportDialog } from './importer.js';
import { addGridLayers, gridFeature, gridLabel as labelOf, gridOptions, gridTilesURL, pickGrid, prepareGrids, removeGridLayers, withinGrid } from './layers.js';
import { Panel, levelLabel } from './panel.js';
import { IncidentLayer } from './incident-layer.js';
import { IncidentPanels } from './incident-panels.js';
import { IncidentStore } from './incidents.js';
import { StatsDialog } from './stats.js';
import { setRTSPPort } from './video.js';
import { PlayerDialog } from './video-wall.js';
import { FootageDialog } from './footage.js';
import { GridHistory } from './history.js';
import { RecordingStatus } from './recording-status.js';
import { IncidentCounts, showGridCounts } from './counts.js';
import { GridExtras } from './grid-extras.js';
import { Header } from './header.js';
import { LiveUpdates } from './live-updates.js';
import { ProblemMarker, createMap, fitBox, fitGrids, watchMapErrors } from './map-setup.js';
import { Locator } from './locate.js';
import { CameraCard } from './camera-card.js';
import { EditorLoader } from './editor-loader.js';
import { MapTip } from './map-tip.js';
import { MapPicker } from './map-pick.js';
import { TopbarMenu } from './topbar-menu.js';
import { Legend } from './legend.js';
import { PatrolLayer } from './patrol-layer.js';
import { PatrolCard } from './patrol-card.js';
import { BaseLayer } from './base-layer.js';
import { BasePanel } from './base-panel.js';
import { BaseCard } from './base-card.js';
import { Loads } from './freshness.js';

// MapLibre 6 runs its worker from a separate module file, shipped next to app.js.
maplibregl.setWorkerUrl(new URL('maplibre-gl-worker.mjs', import.meta.url).href);

const $ = (sel) => document.querySelector(sel);

// ---- header: banner, status, clock -------------------------------------------------

const header = new Header({ online: () => grids !== null });
// Below 1100 px the bar's tools fold into a ☰ menu and the legend into its title.
new TopbarMenu();
new Legend();
const showError = (err, context) => header.showError(err, context);
const setStatus = (kind, text) => header.setStatus(kind, text);

// ---- sign in first: every API call but the login needs a session ---------------------

const loginDialog = new LoginDialog($('#login'));

function applyUser(me) {
  showUser(me);
  applyPermissions();
}

/** sameAccess says whether two /me answers grant the same: permissions and grid scope (the page is built on them). */
function sameAccess(a, b) {
  const perms = (u) => JSON.stringify([...new Set(Array.isArray(u?.permissions) ? u.permissions : [])].sort());
  const scope = (u) => (Array.isArray(u?.grids) ? JSON.stringify(u.grids.map((g) => Number(g?.id ?? g)).sort((x, y) => x - y)) : 'all');
  return perms(a) === perms(b) && scope(a) === scope(b);
}

// A 401 on any later call (idle or absolute expiry) lands here: the overlay opens
// over the page as it is, and the failed call is retried after sign-in.
onUnauthenticated(async ({ previous }) => {
  const me = await loginDialog.prompt({ expired: true, previous });
  if (previous && (me.id !== previous.id || me.kind !== previous.kind || !sameAccess(me, previous))) {
    // Someone else signed in, or the same person with other permissions or grids (the
    // layers, tools and live feed were chosen by them): start afresh with theirs.
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
header.suggestFieldApp(me);
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
setRTSPPort(meta.rtsp_port);
if (meta.version) {
  const v = String(meta.version);
  $('#version').textContent = /^\d/.test(v) ? `v${v}` : v;
}
const basemap = typeof meta.basemap_style_url === 'string' && meta.basemap_style_url.trim() !== '' ? meta.basemap_style_url.trim() : '';

const map = createMap(basemap);
window.gridwatchMap = map;
// A point on the map for the admin view (placing a GB/T 28181 channel): the view steps aside meanwhile.
const picker = new MapPicker(map);

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

// ---- patrols (patrols.read): members on patrol, their card and tracks ---------------------

const patrolsOn = can('patrols.read');
const patrols = new PatrolLayer(map, { onOpen: (id) => patrolCard.open(id), onError: showError });
const patrolCard = new PatrolCard({
  map,
  layer: patrols,
  onOpen: () => {
    if (panel.isOpen) closePanel();
    baseCard.close();
  },
});
// The grid panel (a grid, a camera, a locate) and the patrol card share the right-hand side.
new MutationObserver(() => {
  if (!$('#panel').hidden) patrolCard.close();
}).observe($('#panel'), { attributes: true, attributeFilter: ['hidden'] });
$('#patrol-toggle').addEventListener('click', (ev) => {
  const on = ev.currentTarget.getAttribute('aria-pressed') !== 'true';
  ev.currentTarget.setAttribute('aria-pressed', String(on));
  patrols.setVisible(on);
  if (!on) patrolCard.close();
});
window.gridwatchPatrols = {
  members: () => patrols.list().map((p) => ({ id: p.id, userId: p.userId, name: p.name, lon: p.last?.lon, lat: p.last?.lat, at: p.last?.at, distanceM: p.distanceM })),
  open: (id) => patrolCard.open(id),
  refresh: () => patrols.refresh({ throwErrors: true, cause: 'api' }),
  // How many times the list was read, by cause (see patrol-layer.js).
  reads: () => ({ ...patrols.reads }),
};

// ---- base data (base.read): buildings and components on the map, the grid panel's figures, the cards ----

const baseOn = can('base.read');
const baseLayer = new BaseLayer(map, { onError: (err, context) => showError(err, context) });
$('#legend-body').insertBefore(baseLayer.legendSection(baseOn), $('#legend-body .legend-foot'));
const baseCard = new BaseCard({
  map,
  layer: baseLayer,
  onIncident: (id) => openIncident(id),
  onGrid: (id) => selectGrid(id, { fit: true }),
  onReport: (c) => reportComponent(c),
  onChanged: () => basePanel.reload(),
  onOpen: () => patrolCard.close(),
});
const basePanel = new BasePanel($('#panel'), {
  onOpen: (kind, id, opts) => baseCard.open(kind, id, opts),
  current: (seq) => seq === selectSeq,
});
window.gridwatchBase = {
  open: (kind, id) => baseCard.open(kind, id),
  // What a click at page point x, y would open: {kind, id} or null.
  hit: (x, y) => {
    const r = map.getContainer().getBoundingClientRect();
    return baseOn ? baseLayer.hit({ x: x - r.left, y: y - r.top }) : null;
  },
};

/** reportComponent opens the new-incident form for a component's problem: its place, component_id, a 07xx category. */
function reportComponent(c) {
  if (view.isOpen) closeIncident();
  const cls = c.class?.name || c.name || '部件';
  newForm.prefill({
    lngLat: Number.isFinite(c.lon) && Number.isFinite(c.lat) ? { lng: c.lon, lat: c.lat } : null,
    category: c.category,
    title: `${cls} ${c.code ?? ''}`.trim(),
    address: c.address ?? '',
    label: `部件 Component ${c.code ?? ''} · ${cls}`,
    extra: { component_id: Number(c.id) },
  });
  newForm.open();
}

let grids = null; // prepareGrids() result once the grids are drawn
let gridsDrawn; // resolves once the first grids are on the map
const gridsReady = new Promise((resolve) => {
  gridsDrawn = resolve;
});

const offlineStyle = watchMapErrors(map, basemap, { drawn: () => grids !== null, showError });

// Live video (video.live): the grid panel's wall and the larger player. Nothing
// connects until a grid is open or Play is pressed.
const videoOn = () => can('video.live');
// Recorded footage (video.playback): the footage dialog, hls.js loaded on first use.
const footageOn = () => can('video.playback');
const footage = new FootageDialog();
// The footage view tells a GB/T 28181 channel by its URL: a camera handed over without it
// (an incident's linked footage) takes it from the map's list.
const withURL = (cam) => (cam && cam.main_url === undefined ? { ...cam, main_url: camLayer.get(cam.id)?.main_url } : cam);
const openFootage = (cam, opener) => {
  if (footageOn()) footage.open(withURL(cam), { opener });
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
    // Buildings and components, cameras, then incidents, go on top once the grids are drawn: the grids come first.
    if (baseOn) baseLayer.add().catch((err) => showError(err, 'Base data layers'));
    if (camerasOn) addCameras();
    if (incidentsOn) showIncidents();
    if (patrolsOn) patrols.start().catch((err) => showError(err, 'Loading patrols'));
  });
  if (!header.bannerShown) setStatus('ok', '在线 Online');
  gridsDrawn();
});

function drawGrids(fc, tiles) {
  if (grids) removeGridLayers(map);
  tip.forget();
  grids = prepareGrids(fc);
  const tilesURL = gridTilesURL(tiles);
  document.body.dataset.gridTiles = tilesURL;
  addGridLayers(map, grids, { withGraticule: offlineStyle(), tilesURL });
  baseLayer.raise();
  camLayer.raise();
  patrols.raise();
  incLayer.setGrids(grids);
  incLayer.afterGridsRedrawn();
  gridHistory.raise();
  editors.editor?.raise();
  showGridCounts(grids);
}

/**
 * reloadGrids fetches the grids again (after an import or a grid.changed
 * event) and redraws them from the tiles of the new revision, keeping the
 * selection.
 */
const gridLoads = new Loads(); // two quick changes: the older reload's answer may come last
let gridReloadsAnswered = 0;
async function reloadGrids() {
  await gridsReady;
  const t = gridLoads.ask();
  try {
    const [fc, tiles] = await Promise.all([getJSON('/api/v1/grids.geojson'), getJSON('/tiles/grids.json')]);
    if (!gridLoads.take(t)) return grids;
    const keep = selectedId;
    drawGrids(fc, tiles);
    selectedId = null;
    if (keep !== null && grids.byId.has(keep)) setSelected(keep);
    else if (keep !== null) closePanel();
    map.once('idle', () => {
      document.body.dataset.gridsLoaded = String(grids.total);
    });
    return grids;
  } finally {
    document.body.dataset.gridReloads = String(++gridReloadsAnswered);
  }
}

/**
 * refreshGridFacts reads the open panel's grid again when a grid.changed
 * event names it (someone else changed its boundary): its area, version
 * and last update follow; what else the panel shows stays. Reads overlap
 * when changes come quickly: only the newest answer is shown.
 */
const gridFactLoads = new Loads();
async function refreshGridFacts(data) {
  const id = selectedId;
  const ids = (Array.isArray(data?.grids) ? data.grids : []).map(Number);
  if (id === null || !panel.isOpen || !ids.includes(Number(id))) return;
  const t = gridFactLoads.ask();
  try {
    const g = await getJSON(`/api/v1/grids/${encodeURIComponent(id)}`);
    if (gridFactLoads.take(t) && selectedId === id) panel.updateGridFacts(g);
  } catch (err) {
    console.warn('grid', id, err); // the next change, or opening it again, reads it
  }
}

function fitAll(animate = true) {
  if (!grids?.bbox) return;
  fitBox(map, grids.bbox, { animate, duration: 700 });
}
$('#fit-btn').addEventListener('click', () => fitAll(true));

function fitToGrid(id) {
  const f = grids?.byId.get(id);
  const b = f && bboxOf(f.geometry);
  if (!b) return;
  fitBox(map, b, { maxZoom: 18, duration: 700 });
}

// ---- hover and click -----------------------------------------------------------------

const tip = new MapTip(map);
const pick = (point) => pickGrid(map, grids, point);

let pendingMove = null;
map.on('mousemove', (ev) => {
  if (pendingMove === null) requestAnimationFrame(() => hoverAt(pendingMove));
  pendingMove = ev;
});
function hoverAt(ev) {
  pendingMove = null;
  if (picker.active) {
    tip.clear();
    map.getCanvas().style.cursor = 'crosshair';
    return;
  }
  if (editing()) {
    // The editor (terra-draw) owns the cursor and the clicks.
    tip.clear();
    return;
  }
  if (hoverIncident(ev)) return;
  if (hoverCamera(ev)) return;
  if (baseOn && !locator.active && !newForm.picking && baseLayer.hit(ev.point)) {
    tip.hide();
    map.getCanvas().style.cursor = 'pointer';
    return;
  }
  const f = pick(ev.point);
  tip.setHover(f ? f.id : null);
  map.getCanvas().style.cursor = locator.active ? 'crosshair' : f ? 'pointer' : '';
  if (f) tip.showGrid(ev.point, f);
  else tip.hide();
}
map.getCanvasContainer().addEventListener('mouseleave', () => tip.clear());

map.on('click', (ev) => {
  if (picker.active) {
    picker.at(ev.lngLat); // a point asked for by the admin view (placing a GB/T 28181 channel)
    return;
  }
  if (editing()) return; // the editor's own click handler picks neighbours
  if (newForm.picking) {
    newForm.pickAt(ev.lngLat);
    return;
  }
  if (locator.active || ev.originalEvent.altKey) {
    locator.at(ev.lngLat);
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
  const base = baseOn ? baseLayer.hit(ev.point) : null;
  if (base) {
    baseCard.open(base.kind, base.id);
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
  baseCard.close();
  if (!fromLocate) clearLocateMarker();
  setSelected(id);
  gridHistory.reset(id);
  panel.showLoading(fromLocate);
  if (fit) fitToGrid(id);
  try {
    const g = await getJSON(`/api/v1/grids/${encodeURIComponent(id)}`);
    if (seq !== selectSeq) return;
    panel.showGrid(g, grids?.descendants(Number(g.id)));
    if (baseOn) basePanel.load(Number(g.id), seq);
    document.title = `${g.name} · ${levelLabel(g.level)} — Gridwatch`;
    extras.load(Number(g.id), seq);
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
  basePanel.hide();
  baseCard.close();
  panel.close();
  document.title = 'Gridwatch 网格治理';
}

// ---- locate --------------------------------------------------------------------------

const locator = new Locator({
  map,
  panel,
  showError,
  begin: () => {
    const seq = ++selectSeq;
    setSelected(null);
    return seq;
  },
  current: (seq) => seq === selectSeq,
  onFound: (id) => selectGrid(id, { fromLocate: true }),
});
const clearLocateMarker = () => locator.clearMarker();

document.addEventListener('keydown', (ev) => {
  // Esc in a modal dialog (login, import, admin) is the dialog's, not the map's.
  if (ev.key !== 'Escape' || ev.defaultPrevented || isModalOpen() || editing()) return;
  if (ev.target instanceof HTMLElement && ev.target.closest('.drawer form') && !newForm.picking) return; // typing in a form
  if (picker.active) picker.cancel();
  else if (newForm.picking) newForm.setPicking(false);
  else if (locator.active) locator.set(false);
  else if (view.isOpen) closeIncident();
  else if (newForm.isOpen) closeNewForm();
  else if (baseCard.isOpen) baseCard.close();
  else if (patrolCard.isOpen) patrolCard.close();
  else if (panel.isOpen) closePanel();
  else header.hideBanner();
});

// ---- import (grids.write) and admin (users/tokens/audit) -------------------------------

const problem = new ProblemMarker(map);
const showProblemAt = (lngLat, label) => problem.show(lngLat, label);
const clearProblemMarker = () => problem.clear();

const importer = new ImportDialog({
  reloadGrids,
  showProblemAt,
  clearProblemMarker,
  showGridsOnMap: (refs) => fitGrids(map, grids, refs),
  onError: showError,
});
$('#import-btn').addEventListener('click', () => importer.open());

// Adding a camera by its ONVIF address (cameras.write).
const cameraAdd = new CameraAddDialog({
  centre: () => {
    const c = map.getCenter();
    return [c.lng, c.lat];
  },
  onAdded: async (cam) => {
    if (camerasOn) await camLayer.load().catch((err) => showError(err, 'Cameras'));
    openCamera(cam.id, { fly: true });
  },
});
$('#camera-add-btn').addEventListener('click', () => cameraAdd.open());

// ---- boundary editing (grids.write) and history (grids.read) ------------------------------

const gridHistory = new GridHistory($('#panel'), map, {
  onError: showError,
  // Show the old boundary together with the current one.
  onShow: (geometry) => {
    const b = bboxOf(geometry);
    if (!b) return;
    const cur = selectedId !== null ? grids?.byId.get(selectedId) : null;
    if (cur) bboxOf(cur.geometry, b);
    fitBox(map, b, { maxZoom: 18, duration: 600 });
  },
});

// The editor and terra-draw are loaded on first use: viewers never fetch them.
const editors = new EditorLoader({
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
  showError,
  beforeOpen: (id) => gridHistory.reset(id),
});
function editing() {
  return document.body.classList.contains('editing');
}
$('#panel [data-field="edit-btn"]').addEventListener('click', () => {
  const id = Number($('#panel').dataset.gridId);
  if (id > 0) editors.start(id, $('#panel [data-field="edit-btn"]'));
});

const admin = new AdminDialog({
  onError: showError,
  onCamera: (id) => showCameraOnMap(id),
  pickPoint: (hint) => picker.start(hint),
});
$('#admin-btn').addEventListener('click', () => admin.open());

// ---- incidents: loading, live updates, the views -----------------------------------------

const gridLabel = (id) => labelOf(grids, id);

const counts = new IncidentCounts(store, incLayer);

const recording = new RecordingStatus(); // the recorder's disk-full banner (video.playback)
// The live feed's patrol.* events go to the patrol layer; without the stream, its poll reads the patrols too.
class DashboardLive extends LiveUpdates {
  onEvent(type, data) {
    if (typeof type === 'string' && type.startsWith('patrol.')) {
      if (patrolsOn) patrols.onEvent(type, data);
      return;
    }
    super.onEvent(type, data);
  }

  pollAll() {
    return Promise.all([super.pollAll(), patrolsOn && patrols.started ? patrols.refresh({ cause: 'poll' }) : null]);
  }
}
const live = new DashboardLive({
  store,
  recording,
  camLayer,
  panel,
  player,
  incidentsOn,
  camerasOn,
  showError,
  reloadGrids,
  gridChanged: (data) => {
    editors.editor?.gridChanged(data);
    refreshGridFacts(data);
  },
  refreshCard: (id) => card.refresh(id, selectSeq),
  gbEvent: (type, data) => admin.onEvent(type, data),
  openIncident,
  gridLabel,
});
recording.load();

// The selected grid's case list follows the changes of its cases.
let casesTimer = 0;
store.subscribe((change) => {
  counts.show();
  if (change.kind === 'upsert' && change.announce) live.announce(change.incident);
  // A case about the component on show (its "report a problem", or anyone's): its history follows.
  if (change.kind === 'upsert' && change.incident?.component_id) baseCard.caseChanged(change.incident);
  if (selectedId === null || !panel.isOpen) return;
  const touched = (inc) => inc?.grid && withinGrid(grids, inc.grid.id, selectedId);
  if (change.kind === 'reset' || touched(change.incident) || touched(change.previous)) {
    clearTimeout(casesTimer);
    casesTimer = setTimeout(() => extras.loadCases(selectedId, selectSeq), 600);
  }
});

// The open cases load, and the live feed starts, while the map and the grids
// load; the layer is added once the grids are drawn.
const incidentsLoad = incidentsOn
  ? store.load().catch((err) => {
      showError(err, 'Loading incidents');
    })
  : null;
// A GIS editor (no incidents or cameras) listens too: for grid.changed.
if (incidentsOn || camerasOn || patrolsOn || can('grids.write')) live.start();

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

const extras = new GridExtras({
  panel,
  current: (seq) => seq === selectSeq,
  incidentsOn,
  camerasOn,
  videoOn,
  latestCase: (inc) => {
    const known = store.get(inc.id);
    return known && Number(known.version) > Number(inc.version) ? known : inc;
  },
});

// ---- cameras: the card, hover, flying to one ------------------------------------------------

async function addCameras() {
  await camerasLoad;
  camLayer.add();
  document.body.dataset.camerasLoaded = String(camLayer.byId.size);
}

const card = new CameraCard({
  map,
  camLayer,
  panel,
  showError,
  begin: () => {
    const seq = ++selectSeq;
    setSelected(null);
    clearLocateMarker();
    return seq;
  },
  current: (seq) => seq === selectSeq,
  onGBDevice: (id) => admin.openGBDevice(id),
});
function openCamera(id, opts) {
  baseCard.close();
  return card.open(id, opts);
}

/** showCameraOnMap flies to camera id and shows its card; one the map does not hold yet (just placed) is loaded first. */
async function showCameraOnMap(id) {
  if (camerasOn && !camLayer.get(id)) await camLayer.load().catch((err) => showError(err, 'Loading cameras'));
  return openCamera(id, { fly: true });
}

function hoverCamera(ev) {
  if (!camerasOn || newForm.picking || locator.active) return false;
  const hit = camLayer.hit(ev.point);
  if (!hit) return false;
  map.getCanvas().style.cursor = 'pointer';
  tip.showCamera(ev.point, hit);
  return true;
}

// ---- the incident view, the new-incident form, statistics -------------------------------

const cases = new IncidentPanels({
  map,
  store,
  incLayer,
  locator,
  showGrid: (id) => selectGrid(id, { fit: true }),
  gridLabel,
  gridOptions: () => gridOptions(grids),
  showError,
  onFootage: (cam, range, opener) => {
    if (footageOn()) footage.open(withURL(cam), { opener, range });
  },
});
const { view, form: newForm } = cases;
function openIncident(id, opts) {
  cases.open(id, opts);
}
const closeIncident = () => cases.close();
const closeNewForm = () => cases.closeForm();

const stats = new StatsDialog({ onError: showError, onPickGrid: (id) => selectGrid(id, { fit: true }) });
$('#stats-btn').addEventListener('click', () => stats.open());

// Hovering a case shows its status and title.
function hoverIncident(ev) {
  if (!incidentsOn || newForm.picking || locator.active) return false;
  const hit = incLayer.hit(ev.point);
  if (!hit) return false;
  const inc = hit.cluster ? null : store.get(hit.id);
  if (!hit.cluster && !inc) return false;
  map.getCanvas().style.cursor = 'pointer';
  if (hit.cluster) tip.showCluster(ev.point, hit.cluster.properties);
  else tip.showIncident(ev.point, inc);
  return true;
}

// Grid shading by open or overdue count.
counts.setChoropleth(incLayer.mode);
