// The grid panel's "历史 · History": a grid's boundary versions, newest
// first (GET /api/v1/grids/{id}/versions); clicking one draws that old
// boundary as a dashed outline over the current map (GET …/versions/{n}).
//
// Test hooks: #panel [data-field=history-list] > li > button[data-version],
// document.body.dataset.historyShown (the version drawn, absent when none),
// the map layer HISTORY_LAYER while an old boundary is drawn.

import { describe, getJSON } from './api.js';
import { el, formatTime } from './dom.js';
import { formatArea } from './panel.js';

export const HISTORY_SOURCE = 'hist-overlay';
export const HISTORY_LAYER = 'hist-line';
const HISTORY_FILL = 'hist-fill';

/** CHANGE_LABEL names the kinds of change a version records. */
export const CHANGE_LABEL = {
  create: '创建 created',
  import: '导入 imported',
  redraw: '重画 redrawn',
  move_edge: '移动共边 edge moved',
  split: '分割 split',
  merge: '合并 merged',
  update: '更新 updated',
};

export function changeLabel(kind) {
  return CHANGE_LABEL[kind] ?? String(kind ?? '—');
}

/** GridHistory drives the panel's history section for one grid at a time. */
export class GridHistory {
  constructor(panelRoot, map, { onError = () => {}, onShow = () => {} } = {}) {
    this.map = map;
    this.onError = onError;
    this.onShow = onShow; // (geometry): the map shows the old boundary
    const f = (name) => panelRoot.querySelector(`[data-field="${name}"]`);
    this.button = f('history-btn');
    this.section = f('history-section');
    this.list = f('history-list');
    this.note = f('history-note');
    this.count = f('history-n');
    this.clearBtn = f('history-clear');
    this.gridId = null;
    this.seq = 0;
    this.shown = null; // {gridId, version}
    this.button.addEventListener('click', () => this.toggle());
    this.clearBtn.addEventListener('click', () => this.clearOverlay());
    this.list.addEventListener('click', (ev) => {
      const b = ev.target.closest('button[data-version]');
      if (b) this.showVersion(Number(b.dataset.version));
    });
  }

  /** reset is called when the panel shows another grid (or closes): the list folds, the overlay goes. */
  reset(gridId = null) {
    this.seq++;
    this.gridId = gridId;
    this.section.hidden = true;
    this.button.setAttribute('aria-expanded', 'false');
    this.list.replaceChildren();
    this.clearOverlay();
  }

  toggle() {
    if (!this.section.hidden) {
      this.section.hidden = true;
      this.button.setAttribute('aria-expanded', 'false');
      return;
    }
    this.open();
  }

  /** open shows the list of the current grid's versions. */
  async open() {
    const id = Number(document.querySelector('#panel')?.dataset.gridId);
    if (!(id > 0)) return;
    this.gridId = id;
    const seq = ++this.seq;
    this.section.hidden = false;
    this.button.setAttribute('aria-expanded', 'true');
    this.list.replaceChildren();
    this.count.textContent = '';
    this.note.hidden = false;
    this.note.textContent = 'Loading… 加载中';
    try {
      const res = await getJSON(`/api/v1/grids/${id}/versions`);
      if (seq !== this.seq) return;
      this.render(Array.isArray(res?.versions) ? res.versions : []);
    } catch (err) {
      if (seq !== this.seq) return;
      this.note.textContent = `无法加载历史 · Cannot load the history — ${describe(err)}`;
    }
  }

  render(versions) {
    this.count.textContent = `(${versions.length})`;
    this.note.hidden = versions.length > 0;
    this.note.textContent = versions.length ? '' : '无历史 · No history';
    this.list.replaceChildren(
      ...versions.map((v) => {
        const b = el(
          'button',
          { type: 'button', className: 'history-item', dataset: { version: String(v.version), current: String(!!v.current) } },
          el('span', 'history-top', el('span', 'history-v', `v${v.version}`), el('span', 'history-kind', changeLabel(v.change)), v.current ? el('span', 'history-current', '当前 current') : null),
          el('span', 'history-meta', [formatTime(v.valid_from), v.changed_by || '—', formatArea(v.area_m2)].join(' · ')),
        );
        b.title = v.current ? '当前边界 · The current boundary' : '在地图上以虚线显示此版本 · Draw this version as a dashed outline';
        return el('li', null, b);
      }),
    );
    this.mark();
  }

  mark() {
    for (const b of this.list.querySelectorAll('button[data-version]')) {
      b.setAttribute('aria-pressed', String(this.shown !== null && Number(b.dataset.version) === this.shown.version));
    }
  }

  /** showVersion draws version n of the grid as a dashed outline. */
  async showVersion(n) {
    const id = this.gridId;
    const seq = this.seq;
    try {
      const v = await getJSON(`/api/v1/grids/${id}/versions/${n}`);
      if (seq !== this.seq || !v?.geometry) return;
      this.draw(v.geometry);
      this.onShow(v.geometry);
      this.shown = { gridId: id, version: n };
      document.body.dataset.historyShown = String(n);
      this.clearBtn.hidden = false;
      this.mark();
    } catch (err) {
      if (seq === this.seq) this.onError(err, `Grid ${id} version ${n}`);
    }
  }

  draw(geometry) {
    const data = { type: 'Feature', properties: {}, geometry };
    const src = this.map.getSource(HISTORY_SOURCE);
    if (src) src.setData(data);
    else {
      this.map.addSource(HISTORY_SOURCE, { type: 'geojson', data });
      this.map.addLayer({ id: HISTORY_FILL, type: 'fill', source: HISTORY_SOURCE, paint: { 'fill-color': '#f472b6', 'fill-opacity': 0.08 } });
      this.map.addLayer({
        id: HISTORY_LAYER,
        type: 'line',
        source: HISTORY_SOURCE,
        layout: { 'line-join': 'round' },
        paint: { 'line-color': '#f472b6', 'line-width': 2.5, 'line-dasharray': [2, 1.5] },
      });
    }
  }

  /** raise keeps the overlay above the grids after they are drawn again. */
  raise() {
    for (const id of [HISTORY_FILL, HISTORY_LAYER]) if (this.map.getLayer(id)) this.map.moveLayer(id);
  }

  clearOverlay() {
    this.shown = null;
    delete document.body.dataset.historyShown;
    this.clearBtn.hidden = true;
    for (const id of [HISTORY_LAYER, HISTORY_FILL]) if (this.map.getLayer(id)) this.map.removeLayer(id);
    if (this.map.getSource(HISTORY_SOURCE)) this.map.removeSource(HISTORY_SOURCE);
    this.mark();
  }
}
