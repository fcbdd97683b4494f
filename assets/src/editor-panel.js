// The boundary editor's side panel: its tools, the preview report (area
// before → after, findings, what changes grid) and the messages. panelMethods
// are the Editor's own (editor.js mixes them into its prototype).

import { el } from './dom.js';
import { formatArea } from './panel.js';

/** TOOLS are the editor's tools, one kind of change each. */
export const TOOLS = [
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

/** KIND_LABEL names a change report's kind. */
export const KIND_LABEL = { redraw: '重画 Redraw', move_edge: '移动共边 Move edge', split: '分割 Split', merge: '合并 Merge' };
const numberFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

const signed = (n) => `${n > 0 ? '+' : n < 0 ? '−' : '±'}${numberFmt.format(Math.abs(n))}`;

/** panelMethods build the editor's panel and fill it. */
export const panelMethods = {
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
    this.renderMoves('buildings', rep.buildings);
    this.renderMoves('components', rep.components);
  },

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
    if (n > items.length) ol.append(el('li', 'ed-move ed-more', `… 另有 ${numberFmt.format(n - items.length)} 项 · ${numberFmt.format(n - items.length)} more`));
    box.classList.toggle('ed-moves-empty', n === 0);
  },


  // ---- the panel ---------------------------------------------------------------------

  field(name) {
    return this.root.querySelector(`[data-field="${name}"]`);
  },

  setMessage(text, kind = '') {
    const m = this.field('message');
    m.textContent = text;
    m.hidden = !text;
    m.dataset.kind = kind;
  },

  fillHeader() {
    this.field('grid-name').textContent = this.grid.name ?? '';
    this.field('grid-code').textContent = this.grid.code ?? '';
    this.field('grid-version').textContent = `v${this.grid.version}`;
    this.field('grid-version').title = `If-Match ${this.etag}`;
  },

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
          moves('buildings', '栋建筑改变网格', 'buildings change grid (with their households)'),
          moves('components', '个部件改变网格', 'city components change grid'),
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
  },
};
