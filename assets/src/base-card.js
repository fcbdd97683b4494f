// The base-data cards (#base-card, on the right over the grid panel; a
// sheet from the bottom on a phone): a building, a household, a resident, a
// city component or a parcel. A card opened from another (a building's
// household, a household's resident) stacks on it: "‹ 返回 Back" goes down
// the stack, × closes them all and gives the focus back to where the first
// was opened from.
//
//   building   GET /api/v1/buildings/{id}: code, address, floors, units,
//              grid; its households (masked; residents and care counts with
//              residents.read) and its cases (links to the incident view).
//   household  GET /api/v1/households/{id}: building, unit and room, care
//              flags, residents (masked) and home visits.
//   resident   GET /api/v1/residents/{id}: masked ID number, phone and birth
//              date, care flags, moves, visits. With residents.unmask,
//              "查看完整信息 Reveal" asks for a purpose (a dialog) and POSTs
//              /api/v1/residents/{id}/unmask (audited): the full values show
//              in the card until it closes or shows something else. They
//              live in this card's DOM only — never in storage, never in
//              the stack, never in a list.
//   component  GET /api/v1/components/{id}: class, code, department, state
//              (with base.write a select: PATCH), its cases, and
//              "上报部件问题 Report a problem": the new-incident form
//              prefilled with its place, component_id and a 07xx category.
//   parcel     GET /api/v1/parcels/{id}: use, holder, area, outlined on the
//              map, and its grids with the area in each.
//
// Test hooks: #base-card[data-kind][data-id][data-state=loading|ok|error]
// [data-stale] (a case about it changed while it was read: it reads again)
// [data-revealed], its [data-field=…] (title, code, id-number, phone,
// birth-date, state, state-select, reveal-btn, hide-btn, report-btn,
// households, residents, visits, moves, cases, parcel-grids, back, error),
// rows button[data-base-kind][data-base-id], case links [data-incident-id],
// grid links [data-grid-id]; the dialog #base-reveal (textarea[name=purpose]).

import { can, describe, getJSON, sendJSON } from './api.js';
import { COMPONENT_STATES, COMPONENT_STATE_LABEL, careCounts, careFlags, careLabel, count, genderLabel, reportCategory, unitRoom } from './base-data.js';
import './base.css';
import { el, formError, formatTime, wireModal } from './dom.js';
import { bboxOf } from './geometry.js';
import { formatArea } from './panel.js';
import { STATUS_COLOR, statusLabel } from './status.js';

const KIND_LABEL = { building: '建筑 Building', household: '住户 Household', resident: '居民 Resident', component: '部件 Component', parcel: '地块 Parcel' };
const PATH = { building: 'buildings', household: 'households', resident: 'residents', component: 'components', parcel: 'parcels' };
const MOVE_LABEL = { in: '迁入 Moved in', out: '迁出 Moved out' };

const dash = (v) => (v === null || v === undefined || v === '' ? '—' : String(v));

export class BaseCard {
  /**
   * deps: map, layer (BaseLayer), onIncident(id), onGrid(id), onReport(component),
   * onChanged() (a component's state changed), onOpen() (the card opens: the patrol card steps aside).
   */
  constructor(deps) {
    this.deps = deps;
    this.stack = []; // [{kind, id, item}] — ids only: nothing personal is kept here
    this.seq = 0;
    this.opener = null;
    this.shown = null; // the object the card shows
    this.build();
    this.buildReveal();
  }

  build() {
    this.closeBtn = el('button', { type: 'button', className: 'panel-close', 'aria-label': '关闭 Close' }, '×');
    this.backBtn = el('button', { type: 'button', className: 'btn btn-small base-card-back', dataset: { field: 'back' }, hidden: true }, '‹ 返回 · Back');
    this.badge = el('span', { className: 'base-kind', dataset: { field: 'kind' } });
    this.code = el('span', { className: 'code', dataset: { field: 'code' } });
    this.title = el('h2', { className: 'detail-name', id: 'base-card-name', tabIndex: -1, dataset: { field: 'title' } });
    this.body = el('div', { className: 'base-card-body', dataset: { field: 'body' } });
    this.root = el(
      'aside',
      { id: 'base-card', className: 'panel base-card', hidden: true, 'aria-labelledby': 'base-card-name' },
      this.closeBtn,
      el('div', 'detail-head', this.backBtn, this.badge, this.code),
      this.title,
      this.body,
    );
    document.querySelector('.stage').append(this.root);
    this.closeBtn.addEventListener('click', () => this.close());
    this.backBtn.addEventListener('click', () => this.back());
    this.root.addEventListener('click', (ev) => {
      const row = ev.target.closest('button[data-base-id]');
      if (row && this.root.contains(row)) {
        this.open(row.dataset.baseKind, Number(row.dataset.baseId), { push: true });
        return;
      }
      const inc = ev.target.closest('button[data-incident-id]');
      if (inc && this.root.contains(inc)) {
        this.deps.onIncident(Number(inc.dataset.incidentId));
        return;
      }
      const grid = ev.target.closest('button[data-grid-id]');
      if (grid && this.root.contains(grid)) this.deps.onGrid(Number(grid.dataset.gridId));
    });
  }

  get isOpen() {
    return !this.root.hidden;
  }

  get kind() {
    return this.stack.at(-1)?.kind ?? null;
  }

  /**
   * open shows the card of kind id: afresh (the stack starts over), or with
   * push on top of the card on show. item is what a list already knows of it
   * (a parcel's geometry), drawn while the card loads.
   */
  open(kind, id, { opener = null, item = null, push = false } = {}) {
    if (!PATH[kind] || !(Number(id) > 0)) return;
    const was = this.isOpen;
    if (!push || !was) {
      this.stack = [];
      const from = opener ?? document.activeElement;
      this.opener = from instanceof HTMLElement && from !== document.body && !this.root.contains(from) ? from : null;
    }
    const top = this.stack.at(-1);
    if (!(top && top.kind === kind && top.id === Number(id))) this.stack.push({ kind, id: Number(id), item });
    this.deps.onOpen?.();
    this.root.hidden = false;
    document.body.classList.add('base-card-open');
    this.show();
    if (!was) this.closeBtn.focus({ preventScroll: true });
    else if (push) this.title.focus({ preventScroll: true });
  }

  back() {
    if (this.stack.length < 2) return;
    this.stack.pop();
    this.show();
    if (this.backBtn.hidden) this.closeBtn.focus({ preventScroll: true });
    else this.backBtn.focus({ preventScroll: true });
  }

  close() {
    if (!this.isOpen) return;
    this.seq++;
    const focused = this.root.contains(document.activeElement);
    this.forget();
    this.root.hidden = true;
    document.body.classList.remove('base-card-open');
    this.stack = [];
    delete this.root.dataset.kind;
    delete this.root.dataset.id;
    delete this.root.dataset.state;
    const back = this.opener;
    this.opener = null;
    if (back?.isConnected && focused && !back.closest('[hidden]')) back.focus({ preventScroll: true });
  }

  /** caseChanged reads the component on show again when a case about it (inc.component_id) was filed or moved. */
  caseChanged(inc) {
    const top = this.stack.at(-1);
    if (!this.isOpen || top?.kind !== 'component' || top.id !== Number(inc?.component_id)) return;
    clearTimeout(this.caseTimer);
    // A burst of events (the case filed, then registered) reads it once; a
    // read still on its way may have begun before the change: it reads
    // once more when it ends.
    this.caseTimer = setTimeout(() => {
      const now = this.stack.at(-1);
      if (!this.isOpen || now?.kind !== 'component' || now.id !== top.id) return;
      if (this.root.dataset.state === 'loading') {
        this.stale = true;
        this.root.dataset.stale = 'true';
      } else this.show();
    }, 400);
  }

  /** forget drops what the card shows — revealed values first — and its marks on the map. */
  forget() {
    if (this.reveal.open) this.reveal.close();
    delete this.root.dataset.revealed;
    this.title.textContent = '';
    this.code.textContent = '';
    this.body.replaceChildren();
    // The nodes that held revealed values go with the card, not kept here.
    this.personal = null;
    this.shown = null;
    this.deps.layer.select('building', null);
    this.deps.layer.select('component', null);
    if (this.deps.layer.parcelShown) this.deps.layer.showParcel(null);
  }

  /** show loads and draws the card on top of the stack. */
  async show() {
    const { kind, id, item } = this.stack.at(-1);
    const seq = ++this.seq;
    this.stale = false;
    delete this.root.dataset.stale;
    this.forget();
    this.root.dataset.kind = kind;
    this.root.dataset.id = String(id);
    this.root.dataset.state = 'loading';
    this.backBtn.hidden = this.stack.length < 2;
    this.badge.textContent = KIND_LABEL[kind];
    this.badge.dataset.kind = kind;
    if (item) this.title.textContent = item.name || item.code || '';
    this.body.replaceChildren(el('div', 'panel-loading', 'Loading… 加载中'));
    if (kind === 'building') this.deps.layer.select('building', id);
    if (kind === 'component') this.deps.layer.select('component', id);
    if (kind === 'parcel' && item?.geometry) this.deps.layer.showParcel(item.geometry);
    try {
      const [obj, flags] = await Promise.all([getJSON(`/api/v1/${PATH[kind]}/${encodeURIComponent(id)}`), careFlags()]);
      if (seq !== this.seq) return;
      this.flags = flags;
      this.shown = obj;
      this.body.replaceChildren();
      this[kind](obj);
      this.root.dataset.state = 'ok';
    } catch (err) {
      if (seq !== this.seq) return;
      this.root.dataset.state = 'error';
      this.body.replaceChildren(el('p', { className: 'form-error', dataset: { field: 'error' } }, `无法加载 · Cannot load — ${describe(err)}`));
    }
    // A case about it changed while it was read: read it again.
    if (this.stale && seq === this.seq && this.isOpen) this.show();
  }

  // ---- pieces --------------------------------------------------------------------------

  /** put appends the card's parts, skipping those left out (null). */
  put(...parts) {
    this.body.append(...parts.filter(Boolean));
  }

  fact(label, value, { wide = false, name = '', node = null } = {}) {
    return el('div', wide ? 'fact fact-wide' : 'fact', el('dt', '', label), el('dd', { dataset: name ? { field: name } : {} }, node ?? dash(value)));
  }

  gridLink(g) {
    if (!g) return '无网格 none';
    return el('button', { type: 'button', className: 'cam-grid-link', dataset: { gridId: String(g.id) }, title: g.code ?? '' }, g.name || g.code || String(g.id));
  }

  section(title, name, items, empty) {
    const ol = el('ol', { className: 'base-list', dataset: { field: name, count: String(items.length) } }, ...items);
    return el('section', 'base-card-section', el('div', 'section-title', title, el('span', 'team-n', ` (${items.length})`)), items.length ? ol : el('div', { className: 'cases-note', dataset: { field: name, count: '0' } }, empty));
  }

  careChips(codes, name = 'care') {
    const list = Array.isArray(codes) ? codes : [];
    return el('div', { className: 'base-chips', dataset: { field: name } }, ...(list.length ? list.map((c) => el('span', { className: 'care-chip', dataset: { care: c } }, careLabel(c, this.flags))) : [el('span', 'dim', '—')]));
  }

  careCountChips(care) {
    return careCounts(care, this.flags).map(([c, n]) => el('span', { className: 'care-chip', dataset: { care: c } }, `${careLabel(c, this.flags).split(' ')[0]} ${n}`));
  }

  /** row is a list entry that opens another card (a button) when the role may read it, else plain. */
  row(kind, id, clickable, ...lines) {
    const body = lines.map((parts) => el('span', 'base-row-line', ...parts));
    return el('li', '', clickable ? el('button', { type: 'button', className: 'base-row', dataset: { baseKind: kind, baseId: String(id) } }, ...body) : el('div', 'base-row base-row-static', ...body));
  }

  caseItems(cases) {
    const link = can('incidents.read');
    return (Array.isArray(cases) ? cases : []).map((c) => {
      const badge = el('span', { className: 'status-badge', dataset: { status: c.status ?? '' } }, statusLabel(c.status));
      const parts = [el('span', 'case-top', badge, el('span', 'case-id', `#${c.id}`)), el('span', 'case-title', c.title ?? ''), el('span', 'case-meta', [c.category_name ?? c.category, formatTime(c.reported_at)].filter(Boolean).join(' · '))];
      const props = { className: 'case-item', dataset: { status: c.status ?? '' }, style: `--status-color: ${STATUS_COLOR[c.status] ?? '#94a3b8'}` };
      return el('li', '', link ? el('button', { ...props, type: 'button', dataset: { ...props.dataset, incidentId: String(c.id) } }, ...parts) : el('div', props, ...parts));
    });
  }

  visitItems(visits) {
    return (Array.isArray(visits) ? visits : []).map((v) =>
      el('li', { className: 'base-visit', dataset: { visitId: String(v.id) } }, el('span', 'mono', formatTime(v.visited_at)), el('span', '', v.user?.display_name || v.user?.username || ''), v.note ? el('span', 'base-visit-note', v.note) : null),
    );
  }

  locateBtn(lon, lat) {
    if (!Number.isFinite(lon) || !Number.isFinite(lat)) return null;
    const b = el('button', { type: 'button', className: 'btn btn-small', dataset: { field: 'locate-btn' }, title: '在地图上居中 · Centre the map on it' }, '定位 · Show on map');
    b.addEventListener('click', () => {
      const map = this.deps.map;
      map.flyTo({ center: [lon, lat], zoom: Math.max(map.getZoom(), 17), padding: this.padding(), duration: 700 });
    });
    return b;
  }

  /** padding is the map padding that keeps clear of the card: beside it, or above it when it is a sheet. */
  padding() {
    const r = this.root.getBoundingClientRect();
    const m = this.deps.map.getContainer().getBoundingClientRect();
    const sheet = r.width > m.width * 0.8;
    return { top: 48, left: 56, right: sheet ? 40 : Math.min(m.width / 2, r.width + 36), bottom: sheet ? Math.min(m.height / 2, m.bottom - r.top + 24) : 48 };
  }

  // ---- the cards -----------------------------------------------------------------------

  building(b) {
    this.title.textContent = b.name || b.address || b.code || '';
    this.code.textContent = b.code ?? '';
    const households = Array.isArray(b.household_list) ? b.household_list : [];
    const people = can('residents.read');
    this.put(
      el(
        'dl',
        'facts',
        this.fact('地址 Address', b.address, { wide: true, name: 'address' }),
        this.fact('层数 Floors', b.floors, { name: 'floors' }),
        this.fact('单元 Units', b.units, { name: 'units' }),
        this.fact('住户 Households', count(b.households ?? households.length), { name: 'households-n' }),
        this.fact('用途 Use', b.use, { name: 'use' }),
        this.fact('网格 Grid', null, { wide: true, name: 'grid', node: this.gridLink(b.grid) }),
      ),
      el('div', 'grid-actions', this.locateBtn(b.lon, b.lat)),
      this.section(
        '住户 Households',
        'households',
        households.map((h) =>
          this.row('household', h.id, people, [el('span', 'base-row-code', h.code ?? ''), el('span', 'base-row-name', unitRoom(h))], [
            Number.isFinite(h.residents) ? el('span', 'base-row-dim', `${h.residents} 人 residents`) : null,
            ...this.careCountChips(h.care),
          ]),
        ),
        '无住户 · No households',
      ),
      // Cases only for those who may read them (the API leaves them out otherwise).
      Array.isArray(b.cases) ? this.section('事件 Cases', 'cases', this.caseItems(b.cases), '附近无事件 · No cases here') : null,
    );
  }

  household(h) {
    this.title.textContent = [h.building?.name || h.building?.address || h.building?.code, unitRoom(h)].filter(Boolean).join(' · ') || h.code || '';
    this.code.textContent = h.code ?? '';
    const residents = Array.isArray(h.resident_list) ? h.resident_list : [];
    const bld = h.building ? el('button', { type: 'button', className: 'cam-grid-link', dataset: { baseKind: 'building', baseId: String(h.building.id) } }, h.building.name || h.building.address || h.building.code || `#${h.building.id}`) : null;
    this.put(
      el(
        'dl',
        'facts',
        this.fact('居民 Residents', count(h.residents ?? residents.length), { name: 'residents-n' }),
        this.fact('单元 Unit', h.unit, { name: 'unit' }),
        this.fact('室 Room', h.room, { name: 'room' }),
        this.fact('建筑 Building', null, { wide: true, name: 'building', node: bld ?? '—' }),
        this.fact('网格 Grid', null, { wide: true, name: 'grid', node: this.gridLink(h.grid) }),
      ),
      el('section', 'base-card-section', el('div', 'section-title', '关爱对象 Care'), el('div', { className: 'base-chips', dataset: { field: 'care' } }, ...this.careCountChips(h.care))),
      this.section(
        '居民 Residents',
        'residents',
        residents.map((r) => this.residentRow(r)),
        '无居民 · No residents',
      ),
      this.section('走访 Home visits', 'visits', this.visitItems(h.visits), '无走访记录 · No visits yet'),
    );
  }

  residentRow(r) {
    return this.row(
      'resident',
      r.id,
      can('residents.read'),
      [el('span', 'base-row-name', r.name ?? ''), el('span', 'base-row-dim', [genderLabel(r.gender), Number.isFinite(r.age) ? `${r.age} 岁` : '', r.relation ?? ''].filter((x) => x && x !== '—').join(' · '))],
      [el('span', { className: 'base-row-code', dataset: { field: 'id-number' } }, r.id_number ?? ''), ...(Array.isArray(r.care) ? r.care : []).map((c) => el('span', { className: 'care-chip', dataset: { care: c } }, careLabel(c, this.flags).split(' ')[0]))],
    );
  }

  resident(r) {
    this.title.textContent = r.name ?? '';
    this.code.textContent = '';
    const hh = r.household ? el('button', { type: 'button', className: 'cam-grid-link', dataset: { baseKind: 'household', baseId: String(r.household.id) } }, r.household.code || `#${r.household.id}`) : null;
    const moves = (Array.isArray(r.moves) ? r.moves : []).map((m) =>
      el('li', { className: 'base-visit', dataset: { kind: m.kind ?? '' } }, el('span', 'mono', formatTime(m.at)), el('span', '', MOVE_LABEL[m.kind] ?? m.kind ?? ''), el('span', 'base-row-dim', m.household?.code ?? ''), m.note ? el('span', 'base-visit-note', m.note) : null),
    );
    this.personal = {
      id_number: el('span', { className: 'mono pii', dataset: { field: 'id-number' } }, dash(r.id_number)),
      phone: el('span', { className: 'mono pii', dataset: { field: 'phone' } }, dash(r.phone)),
      birth_date: el('span', { className: 'mono pii', dataset: { field: 'birth-date' } }, dash(r.birth_date)),
    };
    const actions = el('div', 'grid-actions');
    this.revealNote = el('p', { className: 'base-reveal-note', dataset: { field: 'reveal-note' }, role: 'status', hidden: true });
    if (can('residents.unmask')) {
      this.revealBtn = el('button', { type: 'button', className: 'btn btn-small btn-primary', dataset: { field: 'reveal-btn' }, title: '需说明用途，操作将记入审计 · A purpose is asked for; the reveal is audited' }, '查看完整信息 · Reveal');
      this.revealBtn.addEventListener('click', () => this.askReveal(r));
      this.hideBtn = el('button', { type: 'button', className: 'btn btn-small', dataset: { field: 'hide-btn' }, hidden: true }, '隐藏 · Hide');
      this.hideBtn.addEventListener('click', () => this.unreveal(r));
      actions.append(this.revealBtn, this.hideBtn);
    }
    this.put(
      el(
        'dl',
        'facts',
        this.fact('身份证号 ID number', null, { wide: true, node: this.personal.id_number }),
        this.fact('性别 Gender', genderLabel(r.gender), { name: 'gender' }),
        this.fact('年龄 Age', Number.isFinite(r.age) ? r.age : null, { name: 'age' }),
        this.fact('关系 Relation', r.relation, { name: 'relation' }),
        this.fact('电话 Phone', null, { node: this.personal.phone }),
        this.fact('出生日期 Birth date', null, { node: this.personal.birth_date }),
        this.fact('住户 Household', null, { name: 'household', node: hh ?? '—' }),
        this.fact('网格 Grid', null, { wide: true, name: 'grid', node: this.gridLink(r.grid) }),
      ),
      actions,
      this.revealNote,
      el('section', 'base-card-section', el('div', 'section-title', '关爱对象 Care'), this.careChips(r.care)),
      this.section('迁入迁出 Moves', 'moves', moves, '无记录 · None'),
      this.section('走访 Home visits', 'visits', this.visitItems(r.visits), '无走访记录 · No visits yet'),
    );
  }

  component(c) {
    this.title.textContent = [c.class?.name, c.name].filter(Boolean).join(' · ') || c.code || '';
    this.code.textContent = c.code ?? '';
    let state;
    if (can('base.write')) {
      state = el('select', { className: 'base-state-select', dataset: { field: 'state-select' }, 'aria-label': '状态 State' }, ...COMPONENT_STATES.map((s) => el('option', { value: s, selected: s === c.state }, COMPONENT_STATE_LABEL[s])));
      state.addEventListener('change', () => this.setState(c, state));
    } else {
      state = el('span', { className: 'cmp-state', dataset: { state: c.state ?? '', field: 'state' } }, COMPONENT_STATE_LABEL[c.state] ?? dash(c.state));
    }
    this.stateNote = el('p', { className: 'form-error', dataset: { field: 'state-error' }, role: 'alert', hidden: true });
    const actions = el('div', 'grid-actions', this.locateBtn(c.lon, c.lat));
    if (can('incidents.create')) {
      const report = el('button', { type: 'button', className: 'btn btn-small btn-primary', dataset: { field: 'report-btn' }, title: '以此部件的位置和类别新建事件 · A new case at this component, in its category' }, '上报部件问题 · Report a problem');
      report.addEventListener('click', () => this.deps.onReport({ ...c, category: reportCategory(c) }));
      actions.append(report);
    }
    this.put(
      el(
        'dl',
        'facts',
        this.fact('状态 State', null, { wide: true, node: state }),
        this.fact('类别 Class', [c.class?.code, c.class?.name].filter(Boolean).join(' '), { wide: true, name: 'class' }),
        this.fact('权属单位 Department', c.department, { wide: true, name: 'department' }),
        this.fact('地址 Address', c.address, { wide: true, name: 'address' }),
        this.fact('网格 Grid', null, { wide: true, name: 'grid', node: this.gridLink(c.grid) }),
        this.fact('更新 Updated', formatTime(c.updated_at), { wide: true, name: 'updated' }),
      ),
      this.stateNote,
      actions,
      Array.isArray(c.cases) ? this.section('事件 Cases', 'cases', this.caseItems(c.cases), '无部件事件 · No cases about it') : null,
    );
  }

  /** setState PATCHes a component's state from the card's select; a refusal puts the select back. */
  async setState(c, select) {
    const want = select.value;
    const seq = this.seq;
    select.disabled = true;
    this.stateNote.hidden = true;
    try {
      const updated = await sendJSON('PATCH', `/api/v1/components/${encodeURIComponent(c.id)}`, { state: want });
      if (seq !== this.seq) return;
      const next = { ...c, ...(updated && typeof updated === 'object' ? updated : { state: want }) };
      if (!Array.isArray(next.cases)) next.cases = c.cases;
      this.shown = next;
      this.body.replaceChildren();
      this.component(next);
      this.root.dataset.state = 'ok';
      this.body.querySelector('[data-field="state-select"]')?.focus({ preventScroll: true });
      this.deps.layer.refresh('components');
      this.deps.onChanged?.();
    } catch (err) {
      if (seq !== this.seq) return;
      select.value = c.state;
      this.stateNote.textContent = `状态未更改 · State not changed — ${describe(err)}`;
      this.stateNote.hidden = false;
    } finally {
      select.disabled = false;
    }
  }

  parcel(p) {
    this.title.textContent = p.name || p.code || '';
    this.code.textContent = p.code ?? '';
    const grids = (Array.isArray(p.grids) ? p.grids : []).map((g) =>
      el(
        'li',
        { dataset: { gridId: String(g.id) }, className: 'base-parcel-grid' },
        el('button', { type: 'button', className: 'base-row', dataset: { gridId: String(g.id) } }, el('span', 'base-row-line', el('span', 'base-row-name', g.name ?? ''), el('span', 'base-row-code', g.code ?? '')), el('span', { className: 'base-row-line base-row-dim', dataset: { field: 'grid-area' } }, formatArea(Number(g.area_m2)))),
      ),
    );
    this.put(
      el(
        'dl',
        'facts',
        this.fact('面积 Area', formatArea(Number(p.area_m2)), { wide: true, name: 'area' }),
        this.fact('用途 Use', p.use, { name: 'use' }),
        this.fact('权属 Holder', p.holder, { wide: true, name: 'holder' }),
      ),
      this.section('所在网格 Grids (area in each)', 'parcel-grids', grids, '不在任何网格内 · In no grid'),
    );
    if (p.geometry) {
      this.deps.layer.showParcel(p.geometry);
      const b = bboxOf(p.geometry);
      if (b) this.deps.map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: this.padding(), maxZoom: 17, duration: 600 });
    }
  }

  // ---- reveal (residents.unmask) --------------------------------------------------------

  buildReveal() {
    this.purpose = el('textarea', { name: 'purpose', id: 'base-reveal-purpose', rows: 3, maxLength: 200, minLength: 4, required: true, autocomplete: 'off' });
    this.revealSubmit = el('button', { type: 'submit', className: 'btn btn-primary', dataset: { field: 'reveal-submit' } }, '查看 · Reveal');
    const cancel = el('button', { type: 'button', className: 'btn' }, '取消 · Cancel');
    this.revealWho = el('p', { className: 'base-reveal-who', dataset: { field: 'reveal-who' } });
    this.revealForm = el(
      'form',
      { className: 'dialog-body base-reveal-form', noValidate: true },
      this.revealWho,
      el('label', 'field', el('span', 'field-label', '用途 Purpose'), this.purpose, el('span', 'field-help', '说明查看的原因（4–200 字），将与您的姓名和时间一起记入审计 · Why you need the full values (4–200 characters); audited with your name and the time')),
      el('p', { className: 'form-error', role: 'alert', hidden: true }),
      el('div', 'form-actions', cancel, this.revealSubmit),
    );
    const close = el('button', { type: 'button', className: 'dialog-close', 'aria-label': '关闭 Close' }, '×');
    this.reveal = el('dialog', { className: 'dialog dialog-reveal', id: 'base-reveal', 'aria-labelledby': 'base-reveal-title' }, el('div', 'dialog-head', el('h2', { className: 'dialog-title', id: 'base-reveal-title' }, '查看完整信息 · Reveal'), close), this.revealForm);
    document.body.append(this.reveal);
    close.addEventListener('click', () => this.reveal.close());
    cancel.addEventListener('click', () => this.reveal.close());
    // The dialog's own opener and teardown (wireModal's), apart from the card's.
    this.revealOwner = { opener: null, teardown: () => this.teardown() };
    wireModal(this.reveal, this.revealOwner);
    this.revealForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.doReveal();
    });
  }

  /** teardown runs as the reveal dialog closes (wireModal): nothing typed there stays. */
  teardown() {
    this.revealForm.reset();
    formError(this.revealForm, null);
    this.revealWho.textContent = '';
    this.revealFor = null;
  }

  askReveal(r) {
    this.revealFor = r.id;
    this.revealOwner.opener = this.revealBtn;
    this.revealWho.textContent = `${r.name ?? ''} · ${r.id_number ?? ''}`;
    formError(this.revealForm, null);
    this.reveal.showModal();
    this.purpose.focus();
  }

  async doReveal() {
    const id = this.revealFor;
    const purpose = this.purpose.value.trim();
    if (purpose.length < 4) {
      const err = new Error('请说明用途（至少 4 个字）· State the purpose (at least 4 characters).');
      err.details = { field: 'purpose' };
      formError(this.revealForm, err);
      return;
    }
    const seq = this.seq;
    this.revealSubmit.disabled = true;
    try {
      const full = await sendJSON('POST', `/api/v1/residents/${encodeURIComponent(id)}/unmask`, { purpose });
      // The card may have moved on while the call ran: then the answer is dropped.
      if (seq !== this.seq || this.kind !== 'resident' || this.stack.at(-1).id !== Number(id)) {
        this.reveal.close();
        return;
      }
      this.showFull(full);
      this.reveal.close();
      this.hideBtn?.focus({ preventScroll: true });
    } catch (err) {
      formError(this.revealForm, err);
    } finally {
      this.revealSubmit.disabled = false;
    }
  }

  /** showFull puts the unmasked values into the card's fields (only there). */
  showFull(full) {
    if (!full || typeof full !== 'object') return;
    for (const k of ['id_number', 'phone', 'birth_date']) {
      const node = this.personal?.[k];
      if (!node) continue;
      node.textContent = dash(full[k]);
      node.dataset.revealed = 'true';
    }
    if (full.name) this.title.textContent = full.name;
    this.root.dataset.revealed = 'true';
    this.revealBtn.hidden = true;
    this.hideBtn.hidden = false;
    this.revealNote.hidden = false;
    this.revealNote.textContent = '已显示完整信息，已记入审计；关闭卡片后不再显示 · Shown in full and audited; gone when the card closes';
  }

  /** unreveal draws the resident again from its masked values. */
  unreveal(r) {
    this.body.replaceChildren();
    delete this.root.dataset.revealed;
    this.resident(r);
    this.revealBtn?.focus({ preventScroll: true });
  }
}
