// "新事件 New incident" (incidents.create): a form docked on the left of the
// map — category (grouped by event class), title, description, priority,
// source, address — with the location picked by clicking the map (the marker
// can be dragged; the grid it falls in is shown). It posts with an
// Idempotency-Key, so a retried submit never files the case twice.
// prefill opens it for a known thing (a city component's "report a
// problem"): its place, a category, and fields sent along (component_id).

import * as maplibregl from 'maplibre-gl';
import { describe, getJSON, request } from './api.js';
import { el, formError } from './dom.js';
import { LEVEL_CN } from './layers.js';
import { PRIORITIES, PRIORITY_LABEL, SOURCES, SOURCE_LABEL } from './status.js';

let categoriesP = null;

/** categories returns GET /api/v1/categories (fetched once). */
export function categories() {
  if (!categoriesP) {
    categoriesP = getJSON('/api/v1/categories').then((r) => (Array.isArray(r?.categories) ? r.categories : []));
    categoriesP.catch(() => {
      categoriesP = null;
    });
  }
  return categoriesP;
}

function idempotencyKey() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return `web-${[...b].map((x) => x.toString(16).padStart(2, '0')).join('')}`;
}

/** fillCategories fills a <select> with event classes as groups and their subclasses as options. */
export function fillCategories(select, cats, { withAll = false } = {}) {
  select.replaceChildren();
  if (withAll) select.append(el('option', { value: '' }, '全部类别 All categories'));
  else select.append(el('option', { value: '', disabled: true, selected: true }, '— 选择类别 choose a category —'));
  const classes = cats.filter((c) => !c.parent_code);
  for (const cls of classes) {
    const subs = cats.filter((c) => c.parent_code === cls.code);
    const group = el('optgroup', { label: `${cls.code} ${cls.name}` });
    if (withAll || subs.length === 0) group.append(el('option', { value: cls.code }, `${cls.name}${withAll ? '（全部 all）' : ''}`));
    for (const s of subs) group.append(el('option', { value: s.code }, `${s.code} ${s.name} · ${s.deadline_hours} h`));
    select.append(group);
  }
  const orphans = cats.filter((c) => c.parent_code && !classes.some((k) => k.code === c.parent_code));
  for (const s of orphans) select.append(el('option', { value: s.code }, `${s.code} ${s.name}`));
}

export class IncidentForm {
  /** root is the drawer; callbacks: onCreated(incident), onClose(), onPicking(on). */
  constructor(root, map, { onCreated, onClose, onPicking }) {
    Object.assign(this, { root, map, onCreated, onClose, onPicking });
    this.body = root.querySelector('[data-part="body"]');
    this.picking = false;
    this.marker = null;
    this.lngLat = null;
    this.key = idempotencyKey();
    this.locateSeq = 0;
    this.built = false;
    this.extra = null; // fields sent with the case as they are (prefill's extra)
    this.pendingCategory = ''; // the category prefill asked for, set once the list is filled
    root.querySelector('[data-part="close"]').addEventListener('click', () => this.onClose());
  }

  get isOpen() {
    return !this.root.hidden;
  }

  async open() {
    if (!this.built) this.build();
    this.root.hidden = false;
    document.body.classList.add('incident-new-open');
    this.setPicking(!this.lngLat);
    this.form.elements.namedItem('title').focus({ preventScroll: true });
    try {
      const cats = await categories();
      if (this.catSelect.options.length <= 1) fillCategories(this.catSelect, cats);
      if (this.pendingCategory) {
        this.catSelect.value = this.pendingCategory;
        this.pendingCategory = '';
      }
    } catch (err) {
      formError(this.form, err);
    }
  }

  close() {
    this.setPicking(false);
    this.root.hidden = true;
    document.body.classList.remove('incident-new-open');
    this.marker?.remove();
    this.marker = null;
    this.lngLat = null;
    this.extra = null;
    this.pendingCategory = '';
    if (this.built) {
      this.linked.hidden = true;
      this.form.reset();
      formError(this.form, null);
      this.showLocation();
    }
  }

  build() {
    this.built = true;
    const input = (name, props = {}) => el('input', { name, id: `new-${name}`, ...props });
    this.catSelect = el('select', { name: 'category', id: 'new-category', required: true });
    this.catSelect.append(el('option', { value: '' }, 'Loading… 加载中'));
    const priority = el('select', { name: 'priority', id: 'new-priority' }, ...PRIORITIES.map((p) => el('option', { value: p, selected: p === 'normal' }, PRIORITY_LABEL[p])));
    const source = el('select', { name: 'source', id: 'new-source' }, ...SOURCES.map((s) => el('option', { value: s, selected: s === 'patrol' }, SOURCE_LABEL[s])));
    this.where = el('div', { className: 'pick-where', dataset: { field: 'location' } });
    this.pickBtn = el('button', { type: 'button', className: 'btn btn-small', id: 'new-pick' }, '在地图上点选 Pick on map');
    this.pickBtn.addEventListener('click', () => this.setPicking(!this.picking));
    this.submit = el('button', { type: 'submit', className: 'btn btn-primary', id: 'incident-submit' }, '上报 Report');
    const cancel = el('button', { type: 'button', className: 'btn' }, '取消 Cancel');
    cancel.addEventListener('click', () => this.onClose());
    this.status = el('p', { className: 'form-status', role: 'status' });
    this.linked = el('p', { className: 'form-linked', hidden: true, dataset: { field: 'linked' } });
    const label = (text, control, help) => el('label', 'field', el('span', 'field-label', text), control, help ? el('span', 'field-help', help) : null);
    this.form = el(
      'form',
      { className: 'new-form', id: 'incident-new-form', noValidate: true },
      this.linked,
      label('类别 Category', this.catSelect),
      label('标题 Title', input('title', { required: true, maxLength: 200, autocomplete: 'off' })),
      label('描述 Description', el('textarea', { name: 'description', id: 'new-description', rows: 3, maxLength: 5000 })),
      el('div', 'field-pair', label('优先级 Priority', priority), label('来源 Source', source)),
      label('地址 Address', input('address', { maxLength: 500, autocomplete: 'off' })),
      el('div', { className: 'field', dataset: { fieldFor: 'location' } }, el('span', 'field-label', '位置 Location'), this.where, el('div', 'pick-row', this.pickBtn)),
      el('input', { type: 'hidden', name: 'location' }),
      el('p', { className: 'form-error', role: 'alert', hidden: true }),
      this.status,
      el('div', 'form-actions', cancel, this.submit),
    );
    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.send();
    });
    this.body.replaceChildren(this.form);
    this.showLocation();
  }

  /**
   * prefill fills the form before open(): the place (lngLat), category (a
   * code, chosen once the list is there), title and address, a line saying
   * what the case is about (label), and extra, sent with the case as it is
   * (e.g. {component_id}).
   */
  prefill({ lngLat, category = '', title = '', address = '', label = '', extra = null }) {
    if (!this.built) this.build();
    this.extra = extra;
    this.pendingCategory = category;
    if (category && this.catSelect.options.length > 1) {
      this.catSelect.value = category;
      this.pendingCategory = '';
    }
    this.form.elements.namedItem('title').value = title;
    this.form.elements.namedItem('address').value = address;
    this.linked.textContent = label;
    this.linked.hidden = !label;
    if (lngLat) this.place(lngLat);
  }

  setPicking(on) {
    this.picking = on;
    if (this.pickBtn) this.pickBtn.setAttribute('aria-pressed', String(on));
    this.onPicking(on);
  }

  /** pickAt places the case at a map position (a click while picking). */
  pickAt(lngLat) {
    this.setPicking(false);
    this.place(lngLat);
  }

  place(lngLat) {
    this.lngLat = { lng: lngLat.lng, lat: lngLat.lat };
    if (!this.marker) {
      const dot = el('div', 'new-marker');
      this.marker = new maplibregl.Marker({ element: dot, draggable: true }).setLngLat(lngLat).addTo(this.map);
      this.marker.on('dragend', () => this.place(this.marker.getLngLat()));
    } else {
      this.marker.setLngLat(lngLat);
    }
    const loc = this.form.elements.namedItem('location');
    loc.removeAttribute('aria-invalid');
    this.showLocation(null);
    this.locate();
  }

  showLocation(grid) {
    const w = this.where;
    w.replaceChildren();
    if (!this.lngLat) {
      w.append(el('span', 'dim', this.picking ? '点击地图放置事件 · Click the map to place the case' : '— 未选择 not set'));
      return;
    }
    w.append(el('span', 'mono', `${this.lngLat.lng.toFixed(6)}, ${this.lngLat.lat.toFixed(6)}`));
    if (grid === null) w.append(el('span', 'dim', ' · 定位中 locating…'));
    else if (grid === false) w.append(el('span', 'warn-text', ' · 不在任何网格内，将标记为无网格 · in no grid: filed as unassigned'));
    else if (grid) w.append(el('span', 'pick-grid', ` · ${LEVEL_CN[grid.level] ?? ''} ${grid.name ?? ''}`));
  }

  async locate() {
    const seq = ++this.locateSeq;
    const { lng, lat } = this.lngLat;
    try {
      const res = await getJSON(`/api/v1/locate?${new URLSearchParams({ lon: lng.toFixed(7), lat: lat.toFixed(7) })}`);
      if (seq !== this.locateSeq) return;
      const list = Array.isArray(res?.grids) ? res.grids : [];
      this.showLocation(list[0] ?? false);
    } catch {
      if (seq === this.locateSeq) this.showLocation(undefined);
    }
  }

  async send() {
    const f = this.form;
    const v = (name) => String(f.elements.namedItem(name)?.value ?? '').trim();
    formError(f, null);
    this.status.textContent = '';
    const missing = (field, message) => {
      const err = new Error(message);
      err.details = { field };
      formError(f, err);
      if (field === 'location') this.setPicking(true);
    };
    if (!v('category')) return missing('category', '请选择类别 · Choose a category.');
    if (!v('title')) return missing('title', '请填写标题 · Give the case a title.');
    if (!this.lngLat) return missing('location', '请在地图上点选位置 · Click the map where it is.');
    const body = {
      source: v('source'),
      category: v('category'),
      title: v('title'),
      description: v('description'),
      priority: v('priority'),
      address: v('address'),
      location: { type: 'Point', coordinates: [Number(this.lngLat.lng.toFixed(7)), Number(this.lngLat.lat.toFixed(7))] },
      ...this.extra,
    };
    this.submit.disabled = true;
    this.submit.dataset.busy = 'true';
    this.status.textContent = '提交中 Sending…';
    try {
      const inc = await request('POST', '/api/v1/incidents', { json: body, headers: { 'Idempotency-Key': this.key } });
      this.key = idempotencyKey();
      this.status.textContent = '';
      this.onCreated(inc);
    } catch (err) {
      this.status.textContent = '';
      formError(f, err);
      if (!f.querySelector('.form-error').textContent) f.querySelector('.form-error').textContent = describe(err);
    } finally {
      this.submit.disabled = false;
      delete this.submit.dataset.busy;
    }
  }
}
