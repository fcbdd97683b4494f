// "基础数据 Base data" in the grid panel (base.read): the grid's summary
// (GET /api/v1/grids/{id}/summary, over the grid and everything below it) —
// buildings, households, residents, each care flag, components by state,
// parcels with their area — and, from each count, its list in the panel,
// a page at a time ("加载更多 Load more" follows the cursor). A row opens its
// card (base-card.js). A count whose list the role may not read is shown as
// a plain figure: households, residents and care flags need
// residents.read (an operator sees the counts only); residents are masked
// in every list.
//
// Test hooks: #panel [data-field=base-section][data-state=loading|ok|error]
// [data-base-grid]; its counts [data-base-count=buildings|households|
// residents|parcels|care:<flag>|components:<state>][data-n] (a <button>
// when it drills into a list); [data-field=base-list][data-kind][data-filter]
// with li > button[data-base-kind][data-base-id]; [data-field=base-more],
// [data-field=base-back].

import { can, describe, getJSON } from './api.js';
import { COMPONENT_STATES, COMPONENT_STATE_LABEL, LIST_KINDS, careCounts, careFlags, careLabel, count, fetchPage, genderLabel, unitRoom } from './base-data.js';
import { el } from './dom.js';
import { formatArea } from './panel.js';

export class BasePanel {
  /**
   * panelRoot is #panel; onOpen(kind, id, {opener, item}) opens a row's card;
   * current(seq) says whether selection seq is still the one on show.
   */
  constructor(panelRoot, { onOpen, current }) {
    Object.assign(this, { onOpen, current });
    this.gridId = null;
    this.summary = null;
    this.list = null; // {kind, params, label, next, seq} while a list shows
    this.seq = 0;
    this.build(panelRoot);
  }

  build(panelRoot) {
    const f = (tag, props, ...kids) => el(tag, props, ...kids);
    this.title = f('div', 'section-title', '基础数据 Base data ', f('span', { className: 'team-n', dataset: { field: 'base-grid' } }));
    this.counts = f('div', { className: 'base-counts', dataset: { field: 'base-counts' } });
    this.note = f('div', { className: 'cases-note', dataset: { field: 'base-note' }, role: 'status', hidden: true });
    this.back = f('button', { type: 'button', className: 'btn btn-small base-back', dataset: { field: 'base-back' } }, '‹ 返回 · Back');
    this.listTitle = f('span', { className: 'base-list-title', dataset: { field: 'base-list-title' } });
    this.listN = f('span', { className: 'team-n', dataset: { field: 'base-list-n' } });
    this.ol = f('ol', { className: 'base-list', dataset: { field: 'base-list' }, 'aria-label': '列表 List' });
    this.listNote = f('div', { className: 'cases-note', dataset: { field: 'base-list-note' }, role: 'status', hidden: true });
    this.more = f('button', { type: 'button', className: 'btn btn-small base-more', dataset: { field: 'base-more' }, hidden: true }, '加载更多 · Load more');
    this.listView = f('div', { className: 'base-list-view', dataset: { field: 'base-list-view' }, hidden: true }, f('div', 'base-list-head', this.back, this.listTitle, this.listN), this.ol, this.listNote, this.more);
    this.root = f('section', { className: 'base', dataset: { field: 'base-section' }, hidden: true, 'aria-label': '基础数据 Base data' }, this.title, this.note, this.counts, this.listView);
    // After the cases and cameras, before the grid's facts.
    const detail = panelRoot.querySelector('#detail');
    detail.insertBefore(this.root, detail.querySelector(':scope > dl.facts'));

    this.counts.addEventListener('click', (ev) => {
      const b = ev.target.closest('button[data-base-count]');
      if (b) this.drill(b.dataset.baseCount, b.dataset.label ?? '', Number(b.dataset.n));
    });
    this.back.addEventListener('click', () => this.showCounts({ focus: true }));
    this.more.addEventListener('click', () => this.loadMore());
    this.ol.addEventListener('click', (ev) => {
      const b = ev.target.closest('button[data-base-id]');
      if (!b) return;
      const item = this.items.get(`${b.dataset.baseKind}:${b.dataset.baseId}`);
      this.onOpen(b.dataset.baseKind, Number(b.dataset.baseId), { opener: b, item });
    });
    this.items = new Map(); // "kind:id" → the list's item (a parcel's geometry, for its card)
  }

  /** load shows grid gridId's summary (selection seq); the section stays hidden without base.read. */
  async load(gridId, seq) {
    if (!can('base.read')) {
      this.root.hidden = true;
      return;
    }
    const mySeq = ++this.seq;
    this.gridId = Number(gridId);
    this.summary = null;
    this.list = null;
    this.root.hidden = false;
    this.root.dataset.baseGrid = String(gridId); // not data-grid-id: the panel takes that for a link to the grid
    this.root.dataset.state = 'loading';
    this.showCounts();
    this.counts.replaceChildren();
    this.note.hidden = false;
    this.note.textContent = 'Loading… 加载中';
    try {
      const [summary, flags] = await Promise.all([getJSON(`/api/v1/grids/${encodeURIComponent(gridId)}/summary`), careFlags()]);
      if (mySeq !== this.seq || !this.current(seq)) return;
      this.summary = summary;
      this.flags = flags;
      this.renderCounts();
      this.root.dataset.state = 'ok';
      this.note.hidden = true;
    } catch (err) {
      if (mySeq !== this.seq || !this.current(seq)) return;
      this.root.dataset.state = 'error';
      this.note.textContent = `无法加载基础数据 · Cannot load the base data — ${describe(err)}`;
    }
  }

  /** reload reads the summary (and an open list) again: something in the grid changed. */
  async reload() {
    if (this.gridId === null || this.root.hidden || this.root.dataset.state !== 'ok') return;
    const mySeq = ++this.seq;
    const gridId = this.gridId;
    try {
      const summary = await getJSON(`/api/v1/grids/${encodeURIComponent(gridId)}/summary`);
      if (mySeq !== this.seq || gridId !== this.gridId) return;
      this.summary = summary;
      this.renderCounts();
    } catch (err) {
      console.warn('base summary', err);
    }
    if (this.list) {
      const { kind, params, label, filter } = this.list;
      const n = this.counts.querySelector(`[data-base-count="${kind === 'residents' && params.care ? `care:${params.care}` : filter ? `${kind}:${filter}` : kind}"]`)?.dataset.n;
      this.startList(kind, params, label, filter, Number(n));
    }
  }

  hide() {
    this.seq++;
    this.root.hidden = true;
    this.gridId = null;
  }

  /** countItem is one figure: a button that opens its list when the role may read it, else a plain box. */
  countItem(key, label, n, { drill = false, extra = '', state = '' } = {}) {
    const props = { className: 'base-count', dataset: { baseCount: key, n: String(Number(n) || 0), label } };
    if (state) props.dataset.state = state;
    const body = [el('span', 'base-count-n', count(Number(n) || 0)), el('span', 'base-count-label', label), extra ? el('span', 'base-count-extra', extra) : null];
    if (!drill) return el('div', { ...props, title: '仅统计 · Counts only' }, ...body);
    return el('button', { ...props, type: 'button', title: `列出 · List: ${label}` }, ...body);
  }

  renderCounts() {
    const s = this.summary ?? {};
    const people = can('residents.read');
    const g = s.grid;
    this.title.querySelector('[data-field="base-grid"]').textContent = g?.name ? `· ${g.name}` : '';
    const main = el(
      'div',
      'base-main',
      this.countItem('buildings', '建筑 Buildings', s.buildings, { drill: true }),
      this.countItem('households', '住户 Households', s.households, { drill: people }),
      this.countItem('residents', '居民 Residents', s.residents, { drill: people }),
      this.countItem('parcels', '地块 Parcels', s.parcels, { drill: true, extra: Number(s.parcel_area_m2) > 0 ? formatArea(Number(s.parcel_area_m2)) : '' }),
    );
    const care = s.care && typeof s.care === 'object' ? s.care : {};
    // Every flag the server names, zeros included, in its order; then any it counted but did not list.
    const codes = [...(this.flags ?? []).map((f) => f.code), ...Object.keys(care).filter((c) => !(this.flags ?? []).some((f) => f.code === c))];
    const careBox = el(
      'div',
      { className: 'base-care', dataset: { field: 'base-care' } },
      el('div', 'base-sub', '关爱对象 Care'),
      el('div', 'base-chips', ...codes.map((c) => this.countItem(`care:${c}`, careLabel(c, this.flags), care[c] ?? 0, { drill: people && Number(care[c]) > 0 }))),
    );
    const comps = s.components && typeof s.components === 'object' ? s.components : {};
    const compBox = el(
      'div',
      { className: 'base-comps', dataset: { field: 'base-components' } },
      el('div', 'base-sub', `部件 Components · ${count(COMPONENT_STATES.reduce((t, st) => t + (Number(comps[st]) || 0), 0))}`),
      el('div', 'base-chips', ...COMPONENT_STATES.map((st) => this.countItem(`components:${st}`, COMPONENT_STATE_LABEL[st], comps[st] ?? 0, { drill: Number(comps[st]) > 0, state: st }))),
    );
    this.counts.replaceChildren(main, careBox, compBox);
  }

  /** showCounts goes back from a list to the figures. */
  showCounts({ focus = false } = {}) {
    this.list = null;
    this.listView.hidden = true;
    this.counts.hidden = false;
    this.ol.replaceChildren();
    this.items.clear();
    if (focus) this.counts.querySelector('button')?.focus({ preventScroll: true });
  }

  /** drill opens the list behind count key (buildings, care:elderly_alone, components:damaged, …). */
  drill(key, label, total = NaN) {
    const [what, filter = ''] = key.split(':');
    const params = { grid: String(this.gridId) };
    let kind = what;
    if (what === 'care') {
      kind = 'residents';
      params.care = filter;
    } else if (what === 'components' && filter) params.state = filter;
    if (!LIST_KINDS[kind] || !can(LIST_KINDS[kind].perm)) return;
    this.startList(kind, params, label, filter, total);
    this.back.focus({ preventScroll: true });
  }

  /** startList shows list kind (params: its filter); total is the figure it drills from (the summary's count), if known. */
  startList(kind, params, label, filter = '', total = NaN) {
    this.list = { kind, params, label, filter, total, next: null, seq: ++this.seq, shown: 0 };
    this.counts.hidden = true;
    this.listView.hidden = false;
    this.ol.replaceChildren();
    this.items.clear();
    this.ol.dataset.kind = kind;
    this.ol.dataset.filter = filter;
    this.listTitle.textContent = label || LIST_KINDS[kind].title;
    this.listN.textContent = '';
    this.loadMore();
  }

  async loadMore() {
    const l = this.list;
    if (!l) return;
    const seq = l.seq;
    this.more.disabled = true;
    this.listNote.hidden = false;
    this.listNote.textContent = 'Loading… 加载中';
    this.ol.dataset.state = 'loading';
    try {
      const page = await fetchPage(l.kind, l.params, l.next);
      if (this.list !== l || seq !== l.seq) return;
      l.next = page.next;
      l.shown += page.items.length;
      for (const item of page.items) this.ol.append(this.row(l.kind, item));
      // "(50 / 2,416)": how far the pages have come of the summary's figure.
      this.listN.textContent = l.next && Number.isFinite(l.total) && l.total > l.shown ? `(${count(l.shown)} / ${count(l.total)})` : `(${count(l.shown)}${l.next ? '+' : ''})`;
      this.more.hidden = !l.next;
      this.listNote.hidden = l.shown > 0;
      this.listNote.textContent = l.shown === 0 ? '无 · None' : '';
      this.ol.dataset.state = 'ok';
    } catch (err) {
      if (this.list !== l) return;
      this.listNote.hidden = false;
      this.listNote.textContent = `无法加载 · Cannot load the list — ${describe(err)}`;
      this.ol.dataset.state = 'error';
    } finally {
      this.more.disabled = false;
    }
  }

  /** row draws one list item as a button that opens its card. */
  row(kind, item) {
    const card = kind === 'buildings' ? 'building' : kind === 'households' ? 'household' : kind === 'residents' ? 'resident' : kind === 'components' ? 'component' : 'parcel';
    this.items.set(`${card}:${item.id}`, item);
    const b = el('button', { type: 'button', className: 'base-row', dataset: { baseKind: card, baseId: String(item.id) } });
    const line = (...parts) => el('span', 'base-row-line', ...parts);
    const dim = (t) => el('span', 'base-row-dim', t);
    switch (kind) {
      case 'buildings':
        b.append(
          line(el('span', 'base-row-code', item.code ?? ''), el('span', 'base-row-name', item.name || item.address || '')),
          line(dim([item.address && item.name ? item.address : '', Number.isFinite(item.floors) ? `${item.floors} 层 floors` : '', Number.isFinite(item.households) ? `${item.households} 户 households` : ''].filter(Boolean).join(' · '))),
        );
        break;
      case 'households':
        b.append(
          line(el('span', 'base-row-code', item.code ?? ''), el('span', 'base-row-name', [item.building?.name || item.building?.address || item.building?.code, unitRoom(item)].filter(Boolean).join(' · '))),
          line(dim(`${count(item.residents)} 人 residents`), ...careCounts(item.care, this.flags).map(([c, n]) => el('span', { className: 'care-chip', dataset: { care: c } }, `${careLabel(c, this.flags).split(' ')[0]} ${n}`))),
        );
        break;
      case 'residents':
        b.append(
          line(el('span', 'base-row-name', item.name ?? ''), dim([genderLabel(item.gender), Number.isFinite(item.age) ? `${item.age} 岁` : '', item.relation ?? ''].filter((x) => x && x !== '—').join(' · '))),
          line(el('span', { className: 'base-row-code', dataset: { field: 'id-number' } }, item.id_number ?? ''), ...(Array.isArray(item.care) ? item.care : []).map((c) => el('span', { className: 'care-chip', dataset: { care: c } }, careLabel(c, this.flags).split(' ')[0]))),
        );
        break;
      case 'components': {
        const badge = el('span', { className: 'cmp-state', dataset: { state: item.state ?? '' } }, COMPONENT_STATE_LABEL[item.state] ?? item.state ?? '');
        b.append(line(badge, el('span', 'base-row-name', item.class?.name || item.name || '')), line(el('span', 'base-row-code', item.code ?? ''), dim(item.address || item.department || '')));
        break;
      }
      default:
        b.append(
          line(el('span', 'base-row-code', item.code ?? ''), el('span', 'base-row-name', item.name ?? '')),
          line(dim([item.use, Number(item.area_m2) > 0 ? formatArea(Number(item.area_m2)) : ''].filter(Boolean).join(' · '))),
        );
    }
    return el('li', '', b);
  }
}
