// The boundary editor (grids.write): terra-draw on the MapLibre map, loaded
// with import() the first time someone presses "编辑边界 · Edit boundary", so
// viewers never download terra-draw.
//
// Tools, one kind of change at a time (the API's four changes):
//   顶点 Vertices  the grid's polygon(s) in terra-draw's select mode: drag a
//                  vertex, drag a midpoint to add one, right-click a vertex to
//                  delete it; "重画 Draw anew" draws the boundary from scratch.
//                  → PUT /api/v1/grids/{id}/geometry
//   分割 Split     draw a line across the grid, name the new grid → POST …/split
//   合并 Merge     click a neighbour → POST …/merge
//   移动共边 Edge   click a neighbour, draw the new shared edge → POST …/edge
// Every vertex and line snaps to the vertices and edges of the neighbours
// (and the grid's own other parts). Each change is previewed with
// ?dry_run=true (debounced) in the same preview panel: area before → after,
// topology findings (click one to fly there), the cameras and cases that
// change grid, the cases flagged for re-dispatch. Save sends the same request
// with If-Match: the ETag of the grid as it was when editing started.
//
// Test hooks:
//   #editor[data-tool][data-preview=idle|pending|loading|ok|error][data-errors][data-warnings][data-save=idle|saving|stale|error|saved]
//   #editor[data-changed-elsewhere]  set when a grid.changed event showed that the grid (or the
//                                  picked neighbour) changed since editing started
//   #editor [data-field=area-change|findings|cameras|incidents|flagged|save|message|reload|stale-warning|stale-reload]
//   document.body.dataset.editing  the grid id being edited (absent when not editing)
//   window.gridwatchEditor         {state(), vertices(), setGeometry(geometry)} — state().line is
//                                  the drawn line's coordinates; setGeometry
//                                  feeds terra-draw a changed polygon, as a drag would.
//
// Someone else's change: main.js passes every grid.changed event to
// gridChanged(data). When it names the grid being edited (or the neighbour
// picked for a merge or an edge move), the editor asks for that grid's
// version and, if it is not the one editing started from, warns at once —
// before the save would fail with 412 — and offers Reload (the edit starts
// again from the new version and its ETag).

import { TerraDraw, TerraDrawLineStringMode, TerraDrawPolygonMode, TerraDrawRenderMode, TerraDrawSelectMode } from 'terra-draw';
import { TerraDrawMapLibreGLAdapter } from 'terra-draw-maplibre-gl-adapter';
import { ApiError, describe, getJSON, request } from './api.js';
import { el } from './dom.js';
import { bboxOf, polygonsOf } from './geometry.js';
import { formatArea } from './panel.js';
import { toast } from './toast.js';

const PREVIEW_DELAY_MS = 400;

const TOOLS = [
  { id: 'vertices', cn: '顶点', en: 'Vertices', hint: '拖动顶点移动；拖动中点添加顶点；右键顶点删除。吸附到相邻网格的顶点和边。· Drag a vertex to move it, a midpoint to add one; right-click a vertex to delete it. Vertices snap to the neighbours’ vertices and edges.' },
  { id: 'split', cn: '分割', en: 'Split', hint: '画一条穿过网格的线（单击加点，单击最后一点结束），再填写新网格的编码和名称。· Draw a line across the grid (click to add points, click the last point to finish), then give the new grid a code and a name.' },
  { id: 'merge', cn: '合并', en: 'Merge', hint: '在地图上单击要并入本网格的相邻网格。· Click the neighbour to merge into this grid.' },
  { id: 'edge', cn: '移动共边', en: 'Move edge', hint: '单击相邻网格，再从共边的一端到另一端画出新的边（两端落在两网格的外边界上）。· Click a neighbour, then draw the new shared edge from one end to the other (its ends on the two grids’ outer boundary).' },
];

const FINDING_LABEL = {
  invalid: '无效 invalid',
  empty: '为空 empty',
  overlap: '重叠 overlap',
  outside_parent: '超出上级 outside parent',
  child_outside: '下级超出 child outside',
  gap: '空隙 gap',
  sliver: '碎片 sliver',
};

const KIND_LABEL = { redraw: '重画 Redraw', move_edge: '移动共边 Move edge', split: '分割 Split', merge: '合并 Merge' };

const numberFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

// Styling: amber for the grid being edited, pink for lines, slate for neighbours.
const AMBER = '#fbbf24';
const PINK = '#f472b6';
const SKY = '#38bdf8';

/** pointInRing is the even-odd test of [x, y] against a ring. */
function pointInRing([x, y], ring) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function pointInGeometry(pt, geometry) {
  return polygonsOf(geometry).some((poly) => pointInRing(pt, poly[0]) && !poly.slice(1).some((hole) => pointInRing(pt, hole)));
}

const signed = (n) => `${n > 0 ? '+' : n < 0 ? '−' : '±'}${numberFmt.format(Math.abs(n))}`;

/**
 * Editor edits one grid at a time. deps: map; onClose(); onSaved(report, gridId)
 * after a commit; showProblemAt(lngLat, label) and clearProblemMarker() (the
 * map's problem marker).
 */
export class Editor {
  constructor({ map, onClose = () => {}, onSaved = () => {}, showProblemAt = () => {}, clearProblemMarker = () => {} }) {
    this.map = map;
    this.onClose = onClose;
    this.onSaved = onSaved;
    this.showProblemAt = showProblemAt;
    this.clearProblemMarker = clearProblemMarker;
    this.draw = null;
    this.root = null;
    this.grid = null;
    this.etag = '';
    this.seq = 0;
    this.onMapClick = (ev) => this.mapClick(ev);
    window.gridwatchEditor = {
      state: () => this.state(),
      vertices: () => this.vertices(),
      setGeometry: (g) => this.setGeometry(g),
    };
  }

  get active() {
    return this.grid !== null;
  }

  state() {
    return {
      active: this.active,
      gridId: this.grid?.id ?? null,
      etag: this.etag,
      tool: this.tool ?? null,
      preview: this.root?.dataset.preview ?? null,
      report: this.report ?? null,
      mode: this.draw?.getMode() ?? null,
      line: this.features('linestring')[0]?.geometry.coordinates ?? null,
    };
  }

  // ---- start and stop ---------------------------------------------------------------

  /** open starts editing grid id: its current boundary, ETag and neighbours. */
  async open(id) {
    if (this.active) this.close({ quiet: true });
    const seq = ++this.seq;
    this.buildPanel();
    this.setMessage('加载中 Loading…');
    document.body.classList.add('editing');
    document.body.dataset.editing = String(id);
    let grid, etag, fc;
    try {
      ({ body: grid, etag } = await request('GET', `/api/v1/grids/${encodeURIComponent(id)}`, { withETag: true }));
      const b = bboxOf(grid.geometry);
      const padX = Math.max((b[2] - b[0]) * 0.6, 0.002);
      const padY = Math.max((b[3] - b[1]) * 0.6, 0.002);
      const bbox = [b[0] - padX, b[1] - padY, b[2] + padX, b[3] + padY].map((v) => v.toFixed(6)).join(',');
      fc = await getJSON(`/api/v1/grids.geojson?bbox=${bbox}`);
    } catch (err) {
      if (seq !== this.seq) return;
      this.setMessage(`无法开始编辑 · Cannot start editing — ${describe(err)}`, 'error');
      return;
    }
    if (seq !== this.seq) return;
    this.grid = grid;
    this.etag = etag || `"grid-${grid.id}-v${grid.version}"`;
    this.neighbours = (fc?.features ?? []).filter((f) => Number(f.id ?? f.properties?.id) !== Number(grid.id));
    this.fillHeader();
    this.setMessage('');
    try {
      await this.startDraw();
    } catch (err) {
      if (seq !== this.seq) return;
      this.setMessage(`无法开始编辑 · Cannot start editing — ${describe(err)}`, 'error');
      return;
    }
    if (seq !== this.seq) return;
    this.map.on('click', this.onMapClick);
    this.setTool('vertices');
    this.fit();
    this.root.dataset.ready = 'true';
  }

  /** close ends editing without saving. */
  close({ quiet = false } = {}) {
    this.seq++;
    clearTimeout(this.timer);
    this.map.off('click', this.onMapClick);
    if (this.draw) {
      try {
        this.draw.stop();
      } catch (err) {
        console.warn('terra-draw stop', err);
      }
    }
    this.draw = null;
    this.clearProblemMarker();
    this.root?.remove();
    this.root = null;
    this.grid = null;
    this.report = null;
    this.tool = null;
    document.body.classList.remove('editing');
    delete document.body.dataset.editing;
    if (!quiet) this.onClose();
  }

  /** fit shows the whole grid, clear of the editor panel. */
  fit() {
    const b = bboxOf(this.grid.geometry);
    if (!b) return;
    const w = this.root ? this.root.getBoundingClientRect().width + 24 : 0;
    this.map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: { top: 70, bottom: 70, left: 70, right: 70 + w }, maxZoom: 18, duration: 500 });
  }

  /** raise keeps terra-draw's layers above the grids after these are drawn again. */
  raise() {
    if (!this.draw) return;
    for (const layer of this.map.getStyle().layers) if (layer.id.startsWith('td-')) this.map.moveLayer(layer.id);
  }

  startDraw() {
    const snapping = {
      toFeature: {
        filter: (f) => ['neighbours', 'current', 'polygon'].includes(f.properties?.mode),
        toLine: true,
        toCoordinate: true,
      },
    };
    const picked = (f) => f.properties?.picked === true;
    let nextId = 0;
    this.draw = new TerraDraw({
      adapter: new TerraDrawMapLibreGLAdapter({ map: this.map, prefixId: 'td' }),
      // Numeric ids: crypto.randomUUID (the default) needs a secure context.
      idStrategy: { isValidId: (id) => Number.isInteger(id), getId: () => ++nextId },
      modes: [
        new TerraDrawRenderMode({
          modeName: 'neighbours',
          styles: {
            polygonFillColor: (f) => (picked(f) ? SKY : '#0f172a'),
            polygonFillOpacity: (f) => (picked(f) ? 0.3 : 0.01),
            polygonOutlineColor: (f) => (picked(f) ? SKY : f.properties?.sameLevel ? '#94a3b8' : '#475569'),
            polygonOutlineWidth: (f) => (picked(f) ? 3 : f.properties?.sameLevel ? 1.5 : 1),
            zIndex: 0,
          },
        }),
        new TerraDrawRenderMode({
          modeName: 'current',
          styles: { polygonFillColor: AMBER, polygonFillOpacity: 0.12, polygonOutlineColor: AMBER, polygonOutlineWidth: 2, zIndex: 1 },
        }),
        new TerraDrawPolygonMode({
          snapping,
          styles: {
            fillColor: AMBER,
            fillOpacity: 0.15,
            outlineColor: AMBER,
            outlineWidth: 2,
            closingPointColor: AMBER,
            closingPointOutlineColor: '#0b1220',
            snappingPointColor: SKY,
            snappingPointOutlineColor: '#0b1220',
          },
        }),
        new TerraDrawLineStringMode({
          snapping,
          styles: { lineStringColor: PINK, lineStringWidth: 3, closingPointColor: PINK, closingPointOutlineColor: '#0b1220', snappingPointColor: SKY, snappingPointOutlineColor: '#0b1220' },
        }),
        new TerraDrawSelectMode({
          allowManualDeselection: false,
          keyEvents: { deselect: null, delete: null, rotate: null, scale: null },
          flags: {
            polygon: { feature: { draggable: false, coordinates: { draggable: true, midpoints: true, deletable: true, snappable: snapping } } },
            linestring: { feature: { draggable: false, coordinates: { draggable: true, midpoints: true, deletable: true, snappable: snapping } } },
          },
          styles: {
            selectedPolygonColor: AMBER,
            selectedPolygonFillOpacity: 0.18,
            selectedPolygonOutlineColor: AMBER,
            selectedPolygonOutlineWidth: 2.5,
            selectedLineStringColor: PINK,
            selectedLineStringWidth: 3,
            selectionPointColor: AMBER,
            selectionPointOutlineColor: '#0b1220',
            selectionPointWidth: 5,
            selectionPointOutlineWidth: 2,
            midPointColor: SKY,
            midPointOutlineColor: '#0b1220',
            midPointWidth: 3.5,
          },
        }),
      ],
    });
    const ready = new Promise((resolve) => this.draw.on('ready', resolve));
    this.draw.start();
    this.draw.on('change', (ids, type) => this.drawChanged(ids, type));
    this.draw.on('finish', (id, ctx) => this.drawFinished(id, ctx));
    return ready.then(() => {
      const level = this.grid.level;
      const feats = [];
      for (const f of this.neighbours) {
        const gid = Number(f.id ?? f.properties?.id);
        for (const coords of polygonsOf(f.geometry)) {
          feats.push({
            type: 'Feature',
            geometry: { type: 'Polygon', coordinates: coords },
            properties: { mode: 'neighbours', gridId: gid, sameLevel: f.properties?.level === level },
          });
        }
      }
      const bad = this.draw.addFeatures(feats).filter((v) => !v.valid);
      if (bad.length) console.warn('editor: neighbour parts not drawn', bad.map((v) => v.reason));
      this.raise();
    });
  }

  // ---- the grid's own polygons -------------------------------------------------------

  /** features lists the store's features of a terra-draw mode. */
  features(mode) {
    return this.draw ? this.draw.getSnapshot().filter((f) => f.properties?.mode === mode) : [];
  }

  /** putGrid replaces the grid's polygons with geometry's parts, editable (mode polygon) or not (current). */
  putGrid(geometry, mode) {
    const old = [...this.features('polygon'), ...this.features('current')].map((f) => f.id);
    if (old.length) this.draw.removeFeatures(old);
    const feats = polygonsOf(geometry).map((coords) => ({ type: 'Feature', geometry: { type: 'Polygon', coordinates: coords }, properties: { mode } }));
    const res = this.draw.addFeatures(feats);
    const bad = res.filter((v) => !v.valid);
    if (bad.length) throw new Error(`terra-draw refused the boundary: ${bad.map((v) => v.reason).join('; ')}`);
    return res.map((v) => v.id);
  }

  /** editedGeometry is the grid's polygons as a MultiPolygon, or null if none. */
  editedGeometry() {
    const parts = this.features('polygon').map((f) => f.geometry.coordinates);
    return parts.length ? { type: 'MultiPolygon', coordinates: parts } : null;
  }

  vertices() {
    const f = this.features('polygon')[0];
    return f ? f.geometry.coordinates[0] : [];
  }

  /** setGeometry (test hook) replaces the first editable polygon's geometry, as a drag does. */
  setGeometry(geometry) {
    const f = this.features('polygon')[0];
    if (!f) throw new Error('no editable polygon');
    this.draw.updateFeatureGeometry(f.id, geometry);
    this.schedulePreview();
  }

  removeLines() {
    const ids = this.features('linestring').map((f) => f.id);
    if (ids.length) this.draw.removeFeatures(ids);
    this.line = null;
  }

  // ---- tools ---------------------------------------------------------------------

  setTool(tool) {
    this.tool = tool;
    this.root.dataset.tool = tool;
    for (const b of this.root.querySelectorAll('[data-tool-btn]')) b.setAttribute('aria-pressed', String(b.dataset.toolBtn === tool));
    this.field('hint').textContent = TOOLS.find((t) => t.id === tool)?.hint ?? '';
    this.removeLines();
    this.setPick(null);
    this.clearProblemMarker();
    this.resetPreview();
    this.field('split-form').hidden = tool !== 'split';
    this.field('pick-row').hidden = tool !== 'merge' && tool !== 'edge';
    this.field('vertex-actions').hidden = tool !== 'vertices';
    this.draw.setMode('select');
    if (tool === 'vertices') {
      const ids = this.putGrid(this.grid.geometry, 'polygon');
      this.draw.selectFeature(ids[0]);
    } else {
      this.putGrid(this.grid.geometry, 'current');
      if (tool === 'split') {
        this.draw.setMode('linestring');
        this.prefillCode();
      }
    }
    this.showPick();
  }

  /** drawAnew clears the grid's polygons and lets the person draw the boundary again. */
  drawAnew() {
    const ids = this.features('polygon').map((f) => f.id);
    this.draw.setMode('select');
    if (ids.length) this.draw.removeFeatures(ids);
    this.resetPreview('画出新的边界，单击第一个点闭合 · Draw the new boundary; click the first point to close it.');
    this.draw.setMode('polygon');
  }

  /** restore puts the grid's saved boundary back. */
  restore() {
    this.setTool(this.tool);
  }

  drawChanged(ids, type) {
    if (!this.draw || type === 'styling') return;
    // Changes of the grid's polygons or of the drawn line ask for a new preview
    // (selection and midpoint guides change too: schedulePreview compares the request).
    if (this.tool === 'vertices' && this.draw.getMode() === 'polygon') return; // drawing anew: wait for the finish
    if (this.tool !== 'vertices' && this.draw.getMode() === 'linestring') return;
    this.schedulePreview();
  }

  drawFinished(id, ctx) {
    if (!this.draw) return;
    if (ctx?.mode === 'polygon') {
      this.draw.setMode('select');
      this.draw.selectFeature(id);
      this.schedulePreview(0);
    } else if (ctx?.mode === 'linestring') {
      // One line at a time: the newest replaces any other.
      const others = this.features('linestring').filter((f) => f.id !== id).map((f) => f.id);
      if (others.length) this.draw.removeFeatures(others);
      this.draw.setMode('select');
      this.draw.selectFeature(id);
      this.field('line-state').textContent = '已画线，可拖动端点调整 · Line drawn; drag its points to adjust.';
      this.schedulePreview(0);
    }
  }

  redrawLine() {
    this.removeLines();
    this.resetPreview();
    this.draw.setMode('linestring');
    this.showPick();
  }

  // ---- picking a neighbour (merge, edge) -----------------------------------------------

  mapClick(ev) {
    if (!this.active || (this.tool !== 'merge' && this.tool !== 'edge')) return;
    if (this.tool === 'edge' && this.pick && this.draw.getMode() !== 'select') return; // drawing the line
    if (this.tool === 'edge' && this.pick && this.line) return;
    const pt = [ev.lngLat.lng, ev.lngLat.lat];
    const hit = this.neighbours.find((f) => f.properties?.level === this.grid.level && pointInGeometry(pt, f.geometry));
    if (!hit) return;
    this.setPick(hit);
    this.showPick();
    if (this.tool === 'merge') this.schedulePreview(0);
    else setTimeout(() => this.draw?.setMode('linestring'), 0);
  }

  setPick(feature) {
    this.pick = feature;
    if (!this.draw) return;
    const gid = feature ? Number(feature.id ?? feature.properties?.id) : null;
    for (const f of this.features('neighbours')) {
      const on = gid !== null && f.properties.gridId === gid;
      if (!!f.properties.picked !== on) this.draw.updateFeatureProperties(f.id, { picked: on });
    }
  }

  showPick() {
    const row = this.field('pick');
    const p = this.pick?.properties;
    row.textContent = p ? `${p.name ?? ''} · ${p.code ?? ''}` : '— 在地图上单击相邻网格 · click a neighbour on the map';
    row.dataset.picked = String(!!p);
    const lineState = this.field('line-state');
    lineState.hidden = !(this.tool === 'split' || (this.tool === 'edge' && this.pick));
    if (!this.line && !this.features('linestring').length) lineState.textContent = '在地图上画线 · Draw the line on the map.';
    this.field('redraw-line').hidden = lineState.hidden;
  }

  async prefillCode() {
    const code = this.root.querySelector('input[name="new.code"]');
    if (code.value) return;
    const prefix = String(this.grid.code ?? '').slice(0, -3);
    const parent = this.grid.parent_id ?? (Array.isArray(this.grid.chain) ? this.grid.chain[1]?.id : null);
    if (!prefix || !parent) return;
    try {
      const res = await getJSON(`/api/v1/grids?parent=${encodeURIComponent(parent)}&limit=1000`);
      let max = 0;
      for (const g of res?.grids ?? []) {
        const c = String(g.code ?? '');
        if (c.startsWith(prefix) && /^\d{3}$/.test(c.slice(prefix.length))) max = Math.max(max, Number(c.slice(prefix.length)));
      }
      if (max < 999 && !code.value) {
        code.value = prefix + String(max + 1).padStart(3, '0');
        this.schedulePreview();
      }
    } catch (err) {
      console.warn('editor: next code', err);
    }
  }

  // ---- the change request and its preview ---------------------------------------------

  /** changeRequest is the request of the current tool's change, or {wait: reason}. */
  changeRequest() {
    const base = `/api/v1/grids/${encodeURIComponent(this.grid.id)}`;
    const line = this.features('linestring')[0]?.geometry ?? null;
    this.line = line;
    const neighbourVersion = (f) => {
      const v = Number(f?.properties?.version);
      return Number.isInteger(v) && v > 0 ? v : undefined;
    };
    switch (this.tool) {
      case 'vertices': {
        const g = this.editedGeometry();
        return g ? { method: 'PUT', path: `${base}/geometry`, json: g } : { wait: '画出新的边界 · Draw the new boundary.' };
      }
      case 'split': {
        if (!line) return { wait: '画一条穿过网格的线 · Draw a line across the grid.' };
        const code = this.root.querySelector('input[name="new.code"]').value.trim();
        const name = this.root.querySelector('input[name="new.name"]').value.trim();
        if (!code || !name) return { wait: '填写新网格的编码和名称 · Give the new grid a code and a name.' };
        return { method: 'POST', path: `${base}/split`, json: { line, new: { code, name } } };
      }
      case 'merge':
        if (!this.pick) return { wait: '单击要合并的相邻网格 · Click the neighbour to merge.' };
        return { method: 'POST', path: `${base}/merge`, json: { with: Number(this.pick.id ?? this.pick.properties.id), with_version: neighbourVersion(this.pick) } };
      case 'edge':
        if (!this.pick) return { wait: '单击共边另一侧的相邻网格 · Click the neighbour across the edge.' };
        if (!line) return { wait: '画出新的共边 · Draw the new edge.' };
        return { method: 'POST', path: `${base}/edge`, json: { neighbour: Number(this.pick.id ?? this.pick.properties.id), neighbour_version: neighbourVersion(this.pick), line } };
      default:
        return { wait: '' };
    }
  }

  schedulePreview(delay = PREVIEW_DELAY_MS) {
    if (!this.root || !this.grid) return;
    // A change the preview does not show yet holds Save back until it does.
    const req = this.changeRequest();
    if (req.wait !== undefined || JSON.stringify(req) !== this.lastKey) {
      if (this.root.dataset.preview === 'ok') this.setPreviewState('pending');
      this.updateSave();
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.preview(), delay);
  }

  resetPreview(wait = '') {
    clearTimeout(this.timer);
    this.previewSeq = (this.previewSeq ?? 0) + 1;
    this.report = null;
    this.lastKey = '';
    this.lastReq = null;
    this.renderReport(null);
    this.setPreviewState('idle', wait);
    this.setSave('idle');
  }

  async preview() {
    if (!this.active || !this.draw) return;
    const req = this.changeRequest();
    if (req.wait !== undefined) {
      this.previewSeq++;
      this.report = null;
      this.lastKey = '';
      this.renderReport(null);
      this.setPreviewState('idle', req.wait);
      this.updateSave();
      return;
    }
    const key = JSON.stringify(req);
    if (key === this.lastKey) {
      if (this.report && this.root.dataset.preview === 'pending') this.setPreviewState('ok');
      this.updateSave();
      return;
    }
    this.lastKey = key;
    const seq = ++this.previewSeq;
    this.setPreviewState('loading');
    this.updateSave();
    try {
      const rep = await request(req.method, `${req.path}?dry_run=true`, { json: req.json });
      if (seq !== this.previewSeq || !this.root) return;
      this.report = rep;
      this.lastReq = req;
      this.renderReport(rep);
      this.setPreviewState('ok');
    } catch (err) {
      if (seq !== this.previewSeq || !this.root) return;
      this.report = null;
      this.lastReq = null;
      const rep = err instanceof ApiError ? err.details?.report : null;
      this.renderReport(rep ?? null);
      this.setPreviewState('error', describe(err));
    }
    this.updateSave();
  }

  setPreviewState(state, text = '') {
    if (!this.root) return;
    this.root.dataset.preview = state;
    const note = this.field('preview-note');
    const t = state === 'loading' ? '检查中 Checking…' : text;
    note.textContent = t;
    note.hidden = !t;
    note.dataset.kind = state === 'error' ? 'error' : '';
  }

  /** renderReport fills the preview panel from a ChangeReport (null empties it). */
  renderReport(rep) {
    const box = this.field('report');
    box.hidden = !rep;
    this.root.dataset.errors = String(rep?.errors ?? 0);
    this.root.dataset.warnings = String(rep?.warnings ?? 0);
    if (!rep) return;
    this.field('report-kind').textContent = KIND_LABEL[rep.kind] ?? rep.kind ?? '';
    // Grids: area before → after.
    const grids = Array.isArray(rep.grids) ? rep.grids : [];
    this.field('area-change').replaceChildren(
      ...grids.map((g) => {
        const diff = (g.area_after_m2 ?? 0) - (g.area_before_m2 ?? 0);
        const tag = g.created ? '新建 new' : g.removed ? '撤销 removed' : '';
        return el(
          'li',
          { className: 'ed-grid', dataset: { gridId: String(g.id), created: String(!!g.created), removed: String(!!g.removed) } },
          el('span', 'ed-grid-name', el('span', 'code', g.code ?? ''), ` ${g.name ?? ''}`, tag ? el('span', 'ed-tag', tag) : null),
          el('span', 'ed-area', `${g.created ? '—' : formatArea(g.area_before_m2)} → ${g.removed ? '—' : formatArea(g.area_after_m2)}`),
          el('span', { className: 'ed-diff', dataset: { sign: String(Math.sign(diff)) } }, `${signed(diff)} m²`),
        );
      }),
    );
    // Findings: errors first, each clickable to fly to it.
    const findings = (Array.isArray(rep.findings) ? rep.findings : []).slice().sort((a, b) => (a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1));
    const fl = this.field('findings');
    fl.replaceChildren(
      ...findings.map((f, i) => {
        const b = el(
          'button',
          { type: 'button', className: 'ed-finding', dataset: { severity: f.severity, kind: f.kind, index: String(i) }, disabled: !Array.isArray(f.location) },
          el('span', 'ed-finding-kind', `${f.severity === 'error' ? '错误' : '警告'} · ${FINDING_LABEL[f.kind] ?? f.kind}`),
          el('span', 'ed-finding-msg', f.message ?? ''),
        );
        if (Array.isArray(f.location)) {
          b.title = '飞到此处并标记 · Fly there and mark it';
          b.addEventListener('click', () => this.showProblemAt({ lng: f.location[0], lat: f.location[1] }, FINDING_LABEL[f.kind] ?? f.kind));
        }
        return el('li', null, b);
      }),
    );
    this.field('findings-n').textContent = `${rep.errors ?? 0} 错误 errors · ${rep.warnings ?? 0} 警告 warnings`;
    this.field('findings-none').hidden = findings.length > 0;
    this.renderMoves('cameras', rep.cameras);
    this.renderMoves('incidents', rep.incidents);
    this.renderMoves('flagged', rep.flagged);
  }

  renderMoves(name, list) {
    const n = Number(list?.count ?? 0);
    const items = Array.isArray(list?.items) ? list.items : [];
    const box = this.field(name);
    box.dataset.count = String(n);
    box.querySelector('.ed-moves-n').textContent = numberFmt.format(n);
    box.open = false;
    const ol = box.querySelector('ol');
    const ref = (r) => (r ? `${r.code ?? r.id}${r.name ? ` ${r.name}` : ''}` : '无网格 none');
    ol.replaceChildren(
      ...items.map((m) => el('li', { className: 'ed-move', dataset: { id: String(m.id) } }, el('span', 'ed-move-label', m.label || `#${m.id}`), el('span', 'ed-move-path', `${ref(m.from)} → ${ref(m.to)}`))),
    );
    if (n > items.length) ol.append(el('li', 'ed-move ed-more', `… ${numberFmt.format(n - items.length)} more`));
    box.classList.toggle('ed-moves-empty', n === 0);
  }

  // ---- saving ------------------------------------------------------------------------

  updateSave() {
    const save = this.field('save');
    const ok = this.root.dataset.preview === 'ok' && this.report && Number(this.report.errors) === 0 && this.lastReq;
    save.disabled = !ok || this.root.dataset.save === 'saving';
    save.title = ok ? '保存此更改 · Save this change' : this.report && Number(this.report.errors) > 0 ? '有错误，不能保存 · Fix the errors first' : '等待预览 · Waiting for the preview';
  }

  setSave(state, text = '') {
    this.root.dataset.save = state;
    this.field('reload').hidden = state !== 'stale';
    this.setMessage(text, state === 'stale' || state === 'error' ? 'error' : '');
    this.updateSave();
  }

  async save() {
    const req = this.lastReq;
    if (!req || !this.report || Number(this.report.errors) > 0) return;
    const gridId = this.grid.id;
    const seq = this.seq;
    this.setSave('saving', '保存中 Saving…');
    try {
      const { body: rep, etag } = await request(req.method, req.path, { json: req.json, headers: { 'If-Match': this.etag }, withETag: true });
      if (seq !== this.seq) return;
      this.etag = etag || this.etag;
      const g = (rep?.grids ?? []).find((x) => Number(x.id) === Number(gridId));
      toast(`已保存 Saved: ${KIND_LABEL[rep?.kind] ?? rep?.kind ?? ''} ${g?.code ?? ''}`, {
        detail: g ? `v${g.version_before} → v${g.version_after} · ${formatArea(g.area_after_m2)}` : '',
        data: { saved: String(gridId) },
      });
      this.close({ quiet: true });
      this.onSaved(rep, gridId);
    } catch (err) {
      if (seq !== this.seq) return;
      if (err instanceof ApiError && (err.status === 412 || err.code === 'stale')) {
        this.setSave('stale', `${describe(err)}`);
      } else if (err instanceof ApiError && err.status === 428) {
        this.setSave('error', describe(err));
      } else {
        const rep = err instanceof ApiError ? err.details?.report : null;
        if (rep) {
          this.report = rep;
          this.renderReport(rep);
        }
        this.setSave('error', `无法保存 · Cannot save — ${describe(err)}`);
      }
    }
  }

  /** reload starts again from the grid as it is now (after a 412, or a change elsewhere), with the same tool. */
  async reload() {
    const id = this.grid?.id;
    const tool = this.tool;
    if (id === undefined) return;
    await this.open(id);
    if (this.active && tool && tool !== this.tool && this.draw) this.setTool(tool);
  }

  // ---- changes made elsewhere --------------------------------------------------------

  /**
   * gridChanged takes the data of a grid.changed event ({grids: ids, kind,
   * revision}). If it names the grid being edited or the picked neighbour,
   * their versions are read again: one that is not what editing started
   * from is shown at once (the save would fail with 412).
   */
  gridChanged(data) {
    if (!this.active || !this.root || !this.grid) return;
    // Our own save announces itself too; the editor closes when it succeeds.
    if (this.root.dataset.save === 'saving') return;
    const ids = new Set((Array.isArray(data?.grids) ? data.grids : []).map(Number));
    const watched = [{ id: Number(this.grid.id), version: Number(this.grid.version), self: true }];
    if (this.pick) watched.push({ id: Number(this.pick.id ?? this.pick.properties?.id), version: Number(this.pick.properties?.version), code: this.pick.properties?.code, self: false });
    const hit = watched.filter((w) => ids.has(w.id));
    if (hit.length) this.checkChanged(hit);
  }

  async checkChanged(list) {
    const seq = this.seq;
    const changed = [];
    for (const w of list) {
      try {
        const g = await getJSON(`/api/v1/grids/${encodeURIComponent(w.id)}`);
        if (Number(g?.version) !== w.version) changed.push({ ...w, code: g?.code ?? w.code, now: Number(g?.version) });
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) changed.push({ ...w, removed: true });
        else console.warn('editor: checking a changed grid', err);
      }
    }
    if (seq !== this.seq || !this.root || !changed.length) return;
    this.showChangedElsewhere(changed);
  }

  showChangedElsewhere(changed) {
    const what = (c) => (c.removed ? `${c.code ?? c.id} removed` : `${c.code ?? c.id} v${c.version} → v${c.now}`);
    const self = changed.some((c) => c.self);
    const text = self
      ? '此网格已被他人修改 · This grid was changed by someone else since you started — reload before saving'
      : '相邻网格已被他人修改 · The neighbour was changed by someone else since you started — reload before saving';
    this.root.dataset.changedElsewhere = 'true';
    this.field('stale-text').textContent = text;
    this.field('stale-detail').textContent = changed.map(what).join(' · ');
    this.field('stale-warning').hidden = false;
  }

  // ---- the panel ---------------------------------------------------------------------

  field(name) {
    return this.root.querySelector(`[data-field="${name}"]`);
  }

  setMessage(text, kind = '') {
    const m = this.field('message');
    m.textContent = text;
    m.hidden = !text;
    m.dataset.kind = kind;
  }

  fillHeader() {
    this.field('grid-name').textContent = this.grid.name ?? '';
    this.field('grid-code').textContent = this.grid.code ?? '';
    this.field('grid-version').textContent = `v${this.grid.version}`;
    this.field('grid-version').title = `If-Match ${this.etag}`;
  }

  buildPanel() {
    this.root?.remove();
    const moves = (name, cn, en) =>
      el('details', { className: 'ed-moves', dataset: { field: name } }, el('summary', null, el('span', 'ed-moves-n', '0'), ` ${cn} · ${en}`), el('ol', 'ed-move-list'));
    const tools = el(
      'div',
      { className: 'ed-tools', role: 'group', 'aria-label': '编辑工具 Tools' },
      ...TOOLS.map((t) => el('button', { type: 'button', className: 'btn btn-small', dataset: { toolBtn: t.id }, 'aria-pressed': 'false' }, `${t.cn} · ${t.en}`)),
    );
    const codeInput = el('input', { name: 'new.code', inputMode: 'numeric', autocomplete: 'off', spellcheck: false, placeholder: '上级编码 + 3 位 · parent code + 3 digits' });
    const nameInput = el('input', { name: 'new.name', autocomplete: 'off', placeholder: '新网格名称 · New grid name' });
    this.root = el(
      'aside',
      { id: 'editor', className: 'panel editor', 'aria-label': '编辑边界 Edit boundary', dataset: { preview: 'idle', save: 'idle', errors: '0', warnings: '0' } },
      el('button', { type: 'button', className: 'panel-close', dataset: { field: 'close' }, 'aria-label': '退出编辑 Close the editor' }, '×'),
      el('div', 'section-title ed-title', '编辑边界 · Edit boundary'),
      el('div', 'detail-head', el('span', { className: 'code', dataset: { field: 'grid-code' } }), el('span', { className: 'ed-version', dataset: { field: 'grid-version' } })),
      el('h2', { className: 'detail-name', dataset: { field: 'grid-name' } }),
      el(
        'div',
        { className: 'ed-stale', dataset: { field: 'stale-warning' }, role: 'alert', hidden: true },
        el('p', { className: 'ed-stale-text', dataset: { field: 'stale-text' } }),
        el('p', { className: 'ed-stale-detail', dataset: { field: 'stale-detail' } }),
        el('button', { type: 'button', className: 'btn btn-small', dataset: { field: 'stale-reload' } }, '重新加载 · Reload'),
      ),
      tools,
      el('p', { className: 'ed-hint', dataset: { field: 'hint' } }),
      el(
        'div',
        { className: 'ed-row', dataset: { field: 'vertex-actions' } },
        el('button', { type: 'button', className: 'btn btn-small', dataset: { field: 'draw-anew' } }, '重画 · Draw anew'),
        el('button', { type: 'button', className: 'btn btn-small', dataset: { field: 'restore' } }, '还原 · Restore'),
      ),
      el('div', { className: 'ed-pick', dataset: { field: 'pick-row' }, hidden: true }, el('span', 'ed-label', '相邻网格 Neighbour'), el('span', { className: 'ed-pick-name', dataset: { field: 'pick' } })),
      el(
        'div',
        { className: 'ed-split', dataset: { field: 'split-form' }, hidden: true },
        el('label', 'field', el('span', 'field-label', '新网格编码 New grid code'), codeInput),
        el('label', 'field', el('span', 'field-label', '新网格名称 New grid name'), nameInput),
      ),
      el(
        'div',
        'ed-row',
        el('span', { className: 'ed-line-state', dataset: { field: 'line-state' }, hidden: true }),
        el('button', { type: 'button', className: 'btn btn-small', dataset: { field: 'redraw-line' }, hidden: true }, '重画线 · Redraw line'),
      ),
      el(
        'section',
        { className: 'ed-preview', 'aria-label': '预览 Preview' },
        el('div', 'section-title', '预览 Preview ', el('span', { className: 'team-n', dataset: { field: 'report-kind' } })),
        el('p', { className: 'ed-note', dataset: { field: 'preview-note' }, hidden: true }),
        el(
          'div',
          { className: 'ed-report', dataset: { field: 'report' }, hidden: true },
          el('div', 'ed-sub', '面积 Area'),
          el('ol', { className: 'ed-grids', dataset: { field: 'area-change' } }),
          el('div', 'ed-sub', '检查 Findings ', el('span', { className: 'team-n', dataset: { field: 'findings-n' } })),
          el('ol', { className: 'ed-findings', dataset: { field: 'findings' } }),
          el('p', { className: 'ed-ok', dataset: { field: 'findings-none' } }, '✓ 无问题 · No findings'),
          moves('cameras', '个摄像机改变网格', 'cameras change grid'),
          moves('incidents', '件事件改变网格', 'cases change grid'),
          moves('flagged', '件已立案事件需改派', 'registered cases to re-dispatch'),
        ),
      ),
      el('p', { className: 'ed-message', dataset: { field: 'message' }, role: 'alert', hidden: true }),
      el(
        'div',
        'ed-actions',
        el('button', { type: 'button', className: 'btn btn-primary', dataset: { field: 'save' }, disabled: true }, '保存 · Save'),
        el('button', { type: 'button', className: 'btn', dataset: { field: 'reload' }, hidden: true }, '重新加载 · Reload'),
        el('button', { type: 'button', className: 'btn', dataset: { field: 'cancel' } }, '取消 · Cancel'),
      ),
    );
    this.root.addEventListener('click', (ev) => {
      const t = ev.target.closest('button');
      if (!t || !this.root.contains(t)) return;
      if (t.dataset.toolBtn && this.draw && this.grid) this.setTool(t.dataset.toolBtn);
      else if (t.dataset.field === 'close' || t.dataset.field === 'cancel') this.close();
      else if (t.dataset.field === 'save') this.save();
      else if (t.dataset.field === 'reload' || t.dataset.field === 'stale-reload') this.reload();
      else if (t.dataset.field === 'draw-anew' && this.draw) this.drawAnew();
      else if (t.dataset.field === 'restore' && this.draw) this.restore();
      else if (t.dataset.field === 'redraw-line' && this.draw) this.redrawLine();
    });
    for (const input of [codeInput, nameInput]) input.addEventListener('input', () => this.schedulePreview());
    document.querySelector('#map').parentElement.append(this.root);
  }
}
