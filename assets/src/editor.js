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
//   #editor [data-field=area-change|findings|cameras|incidents|flagged|buildings|components|save|message|reload|stale-warning|stale-reload]
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
//
// Split by concern: this file starts and stops editing, runs terra-draw and
// its tools and picks the neighbour; editor-preview.js builds the change
// request, previews it (dry run), saves it and watches for changes made
// elsewhere; editor-panel.js builds the side panel and shows the report.
// Their methods are the Editor's own (mixed into its prototype below).

import { TerraDraw, TerraDrawLineStringMode, TerraDrawPolygonMode, TerraDrawRenderMode, TerraDrawSelectMode } from 'terra-draw';
import { TerraDrawMapLibreGLAdapter } from 'terra-draw-maplibre-gl-adapter';
import { describe, getJSON, request } from './api.js';
import { panelMethods, TOOLS } from './editor-panel.js';
import { previewMethods } from './editor-preview.js';
import { bboxOf, pointInGeometry, polygonsOf } from './geometry.js';

// Styling: amber for the grid being edited, pink for lines, slate for neighbours.
const AMBER = '#fbbf24';
const PINK = '#f472b6';
const SKY = '#38bdf8';

/**
 * Editor edits one grid at a time. deps: map; onClose(); onSaved(report, gridId)
 * after a commit; showProblemAt(lngLat, label) and clearProblemMarker() (the
 * map's problem marker).
 */
export class Editor {
  constructor({ map, onClose = () => {}, onSaved = () => {}, showProblemAt = () => {}, clearProblemMarker = () => {} }) {
    Object.assign(this, { map, onClose, onSaved, showProblemAt, clearProblemMarker });
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

}

Object.assign(Editor.prototype, previewMethods, panelMethods);
