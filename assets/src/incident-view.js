// The incident view: a drawer on the left of the map with every field of a
// case, its deadline, the history timeline and the workflow steps the
// signed-in role may take (each with a note; dispatch picks the assignee from
// the grid's team — the leader by default — and optionally another grid).
// Transitions carry the version the page showed: if someone else moved the
// case first the server answers 409, and the view says so and reloads.
//
// 关联录像 · Linked footage (GET /api/v1/incidents/{id}/footage): the
// camera windows linked to the case (auto when filed, or by hand), each with
// its camera, window, how much of it is recorded and how it was linked; and,
// for video.playback: Play inline (the footage player's engine, in the
// drawer), Timeline (the footage view at that range), Export (progress, then
// the download and its SHA-256) and Unlink (after a confirm). 手动关联 · Link
// footage by hand: a camera (the case's grid's first, then the others) and a
// window (default 2 min before to 5 min after the reported time).
// The incident's exports (the server's list, and those made on this page
// while the list was loading) are shown under the footage.
// API refusals (e.g. 409 already linked) are shown in a toast.
// The linked footage, its exports and the link form are incident-footage.js's
// (their methods are the view's own, mixed into its prototype below).
// Test hooks: #incident-view[data-footage-answered] (reads of the linked
// footage answered, shown or dropped), [data-field=footage][data-count] with
//   li.inc-footage-item[data-link-id][data-camera][data-source] (.inc-footage-inline, .inc-footage-play,
//   .inc-footage-export, .inc-footage-unlink, .inc-footage-confirm .inc-footage-unlink-yes, .inline-footage (see footage-inline.js)),
//   .inc-footage-add, form.inc-link-form (select[name=camera_id], input[name=from|to], .form-error),
//   .inc-exports[data-count] li.inc-export[data-export-id] .export-status (see export.js)

import { ApiError, can, describe, getJSON, sendJSON } from './api.js';
import { el, formatTime } from './dom.js';
import './incident-media.css';
import { footageMethods } from './incident-footage.js';
import { LEVEL_CN } from './layers.js';
import {
  PRIORITY_LABEL,
  SOURCE_LABEL,
  STAFF_ROLE_LABEL,
  STATUS_COLOR,
  actionLabel,
  dueText,
  isOpen,
  overdueNow,
  permissionFor,
  statusLabel,
} from './status.js';

/** statusBadge is a coloured status pill. */
export function statusBadge(status, extra = '') {
  return el('span', { className: `status-badge ${extra}`.trim(), dataset: { status: status ?? '' } }, statusLabel(status));
}

/** overdueBadge is the red "超期 overdue" pill. */
export function overdueBadge() {
  return el('span', 'overdue-badge', '超期 overdue');
}

const staffCache = new Map(); // grid id → Promise<staff[]>

/** gridStaff returns a grid's team (cached for the page's life; reload: true fetches again). */
export function gridStaff(gridId, { reload = false } = {}) {
  const id = Number(gridId);
  if (reload || !staffCache.has(id)) {
    const p = getJSON(`/api/v1/grids/${encodeURIComponent(id)}/staff`).then((r) => (Array.isArray(r?.staff) ? r.staff : []));
    p.catch(() => staffCache.delete(id));
    staffCache.set(id, p);
  }
  return staffCache.get(id);
}

function staffLabel(s) {
  const role = STAFF_ROLE_LABEL[s.role] ?? s.role ?? '';
  return [s.name, role, s.organisation].filter(Boolean).join(' · ');
}

function gridText(g) {
  if (!g) return '';
  return `${LEVEL_CN[g.level] ?? g.level ?? ''} ${g.name ?? ''}`.trim();
}

const ACTION_CN = { report: '上报 reported', transition: '' };

export class IncidentView {
  /**
   * root is the drawer element. Callbacks: onClose(), onShowGrid(id),
   * onFly(incident), gridName(id) → text, gridOptions() → [{id, code, name}],
   * onError(err, context).
   */
  constructor(root, { store, onClose, onShowGrid, onFly, gridName, gridOptions, onError, onFootage }) {
    this.onFootage = onFootage; // (cam {id, code, name}, {from, to} ms, opener) → opens the footage view
    Object.assign(this, { root, store, onClose, onShowGrid, onFly, gridName, gridOptions, onError });
    this.body = root.querySelector('[data-part="body"]');
    this.inc = null;
    this.id = null;
    this.seq = 0;
    this.busy = false;
    this.staff = new Map(); // staff id → member, for names in the history
    this.notice = '';
    this.form = null;
    this.footage = null; // the linked footage of the case on show, null until loaded
    this.inline = null; // {player: InlineFootage, linkId}: the clip playing in the drawer
    this.confirmUnlink = null; // the link id whose Unlink waits for a confirm
    this.linkForm = null; // the "link footage by hand" form, while open
    this.camNames = null; // camera id → camera, for names
    root.querySelector('[data-part="close"]').addEventListener('click', () => this.onClose());
    store.subscribe((change) => this.storeChanged(change));
    // The countdown to the deadline moves on.
    setInterval(() => {
      if (this.inc && this.isOpen) this.renderDue();
    }, 30000);
  }

  get isOpen() {
    return !this.root.hidden;
  }

  close() {
    this.seq++;
    this.stopInline();
    this.confirmUnlink = null;
    this.linkForm = null;
    this.root.hidden = true;
    this.inc = null;
    this.id = null;
    this.form = null;
    delete this.root.dataset.incidentId;
    delete this.root.dataset.status;
    delete this.root.dataset.version;
    document.body.classList.remove('incident-open');
  }

  /** open shows case id (fetched with its history). */
  async open(id) {
    const seq = ++this.seq;
    this.id = Number(id);
    this.notice = '';
    this.form = null;
    this.root.hidden = false;
    document.body.classList.add('incident-open');
    this.root.dataset.incidentId = String(this.id);
    delete this.root.dataset.status;
    if (Number(this.inc?.id) !== this.id) {
      this.stopInline();
      this.confirmUnlink = null;
      this.linkForm = null;
      this.footage = null;
    }
    const known = this.store.get(id);
    if (known && (!this.inc || Number(this.inc.id) !== this.id)) {
      this.inc = known;
      this.render();
    } else if (!known) {
      this.body.replaceChildren(el('div', 'panel-loading', 'Loading… 加载中'));
    }
    await this.reload(seq);
  }

  async reload(seq = this.seq) {
    const id = this.id;
    this.answered ??= 0;
    try {
      const inc = await getJSON(`/api/v1/incidents/${encodeURIComponent(id)}`);
      if (seq !== this.seq) return;
      // Two loads of the case overlap (opened, then changed by an event): an
      // answer older than what shows came late and is dropped.
      if (Number(this.inc?.id) === Number(inc.id) && Number(inc.version) < Number(this.inc.version)) return;
      this.inc = inc;
      this.store.upsert(inc);
      this.render();
      this.loadStaffNames(inc);
      this.loadFootage(seq);
    } catch (err) {
      if (seq !== this.seq) return;
      if (err instanceof ApiError && err.status === 404) {
        this.store.remove(id);
        this.body.replaceChildren(el('p', 'form-error', `事件 ${id} 不存在或无权查看 · Incident ${id} not found`));
        return;
      }
      this.onError(err, `Incident ${id}`);
    } finally {
      this.root.dataset.answered = String(++this.answered); // a hook: loads answered (taken or dropped)
    }
  }

  // storeChanged: a live event or a poll changed the case on show.
  storeChanged(change) {
    if (!this.isOpen || this.busy || !this.inc || change.kind !== 'upsert') return;
    if (Number(change.incident.id) !== this.id) return;
    if (Number(change.incident.version) === Number(this.inc.version)) return;
    if (this.form) this.notice = '此事件已被他人更新 — 已重新加载 · Someone else changed it — reloaded';
    this.form = null;
    this.reload();
  }

  async loadStaffNames(inc) {
    const gid = inc.grid?.id ?? inc.assignee?.grid_id;
    if (inc.assignee) this.staff.set(Number(inc.assignee.id), inc.assignee);
    if (!gid) return;
    try {
      const list = await gridStaff(gid);
      let added = false;
      for (const s of list) {
        if (!this.staff.has(Number(s.id))) added = true;
        this.staff.set(Number(s.id), s);
      }
      if (added && this.inc === inc) this.renderHistory();
    } catch {
      // names are a nicety; ids are shown instead
    }
  }

  render() {
    const inc = this.inc;
    if (!inc) return;
    const r = this.root;
    r.dataset.incidentId = String(inc.id);
    r.dataset.status = inc.status ?? '';
    r.dataset.version = String(inc.version ?? '');
    r.style.setProperty('--status-color', STATUS_COLOR[inc.status] ?? '#94a3b8');
    const late = overdueNow(inc);

    const head = el(
      'div',
      'inc-head',
      el('span', { className: 'status-badge', dataset: { field: 'status', status: inc.status ?? '' } }, statusLabel(inc.status)),
      late ? overdueBadge() : null,
      inc.unassigned || !inc.grid ? el('span', 'unassigned-badge', '无网格 unassigned') : null,
      el('span', { className: 'priority-badge', dataset: { priority: inc.priority ?? '' } }, PRIORITY_LABEL[inc.priority] ?? inc.priority ?? ''),
      el('span', 'inc-id', `#${inc.id}`),
    );
    const title = el('h2', { className: 'inc-title', id: 'incident-title', dataset: { field: 'title' } }, inc.title ?? '');
    const cat = el(
      'div',
      'inc-cat',
      el('span', 'inc-cat-name', inc.category_name || inc.category || ''),
      el('span', 'inc-cat-code', inc.category ?? ''),
      el('span', 'inc-source', SOURCE_LABEL[inc.source] ?? inc.source ?? ''),
    );

    const due = el('div', { className: 'inc-due', dataset: { field: 'deadline', overdue: String(late) } });
    this.dueBox = due;

    const notice = el('p', { className: 'inc-notice', dataset: { field: 'notice' }, role: 'status', hidden: !this.notice }, this.notice);

    let gridBtn = el('span', 'dim', '— 不在任何网格内 · in no grid');
    if (inc.grid) {
      gridBtn = el('button', { type: 'button', className: 'link-btn', dataset: { gridId: String(inc.grid.id) }, title: inc.grid.code ?? '' }, gridText(inc.grid));
      gridBtn.addEventListener('click', () => this.onShowGrid(Number(inc.grid.id)));
    }
    const [lon, lat] = inc.location?.coordinates ?? [];
    const locBtn = el('button', { type: 'button', className: 'link-btn mono', title: 'Show on the map 在地图上显示' }, Number.isFinite(lon) ? `${lon.toFixed(6)}, ${lat.toFixed(6)}` : '—');
    locBtn.addEventListener('click', () => this.onFly(inc));

    const facts = el('dl', 'inc-facts');
    const fact = (label, value, name) => {
      const dd = el('dd', { dataset: { field: name } });
      if (value instanceof Node) dd.append(value);
      else dd.textContent = value === null || value === undefined || value === '' ? '—' : String(value);
      facts.append(el('div', 'inc-fact', el('dt', '', label), dd));
    };
    fact('网格 Grid', gridBtn, 'grid');
    fact('处置人 Assignee', inc.assignee ? staffLabel(inc.assignee) : '', 'assignee');
    fact('地址 Address', inc.address, 'address');
    fact('位置 Location', locBtn, 'location');
    fact('上报 Reported', formatTime(inc.reported_at), 'reported_at');
    fact('接收 Received', formatTime(inc.received_at), 'received_at');
    fact('立案 Registered', formatTime(inc.registered_at), 'registered_at');
    fact('结案 Closed', formatTime(inc.closed_at), 'closed_at');
    fact('来源编号 External ID', inc.external_id, 'external_id');
    fact('录入 Filed by', inc.created_by, 'created_by');
    fact('版本 Version', inc.version !== undefined ? `v${inc.version}` : '', 'version');
    fact('更新 Updated', formatTime(inc.updated_at), 'updated_at');

    const desc = inc.description ? el('div', 'inc-desc', el('div', 'section-title', '描述 Description'), el('p', { dataset: { field: 'description' } }, inc.description)) : null;

    const actions = this.renderActions(inc);

    const history = el('section', 'inc-history-section', el('div', 'section-title', '流程 History'), el('ol', { className: 'timeline', id: 'incident-history' }));

    this.footageBox = el('section', { className: 'inc-footage', dataset: { field: 'footage' } });
    const media = this.renderMedia(inc);
    const parts = [head, title, cat, due, notice, actions ?? '', facts, desc ?? '', media ?? '', this.footageBox, history];
    if (media && media.parentNode === this.body) {
      // The same photos and voice notes: their box stays in the page (a voice note playing is not cut off).
      const i = parts.indexOf(media);
      for (const n of [...this.body.childNodes]) if (n !== media) n.remove();
      media.before(...parts.slice(0, i));
      media.after(...parts.slice(i + 1));
    } else this.body.replaceChildren(...parts);
    this.renderFootage();
    this.renderDue();
    this.renderHistory();
  }

  renderDue() {
    const inc = this.inc;
    const box = this.dueBox;
    if (!inc || !box) return;
    const late = overdueNow(inc);
    box.dataset.overdue = String(late);
    const text = dueText(inc);
    box.replaceChildren(
      el('span', 'inc-due-label', '期限 Deadline'),
      el('span', 'inc-due-time', formatTime(inc.deadline)),
      text ? el('span', late ? 'overdue-badge' : 'due-left', text) : el('span', 'dim', isOpen(inc.status) ? '' : statusLabel(inc.status)),
    );
  }

  renderHistory() {
    const ol = this.root.querySelector('#incident-history');
    if (!ol) return;
    const list = Array.isArray(this.inc?.history) ? this.inc.history : null;
    ol.replaceChildren();
    if (!list) {
      ol.append(el('li', 'timeline-empty', 'Loading… 加载中'));
      return;
    }
    for (const ev of list) {
      const li = el('li', { className: 'timeline-item', dataset: { to: ev.to ?? '', action: ev.action ?? '' } });
      li.style.setProperty('--status-color', STATUS_COLOR[ev.to] ?? '#94a3b8');
      const step = ev.from ? `${statusLabel(ev.from)} → ${statusLabel(ev.to)}` : ACTION_CN[ev.action] || statusLabel(ev.to);
      li.append(
        el('div', 'timeline-head', el('span', 'timeline-step', step), el('time', { className: 'timeline-time', dateTime: ev.at ?? '' }, formatTime(ev.at, { seconds: true }))),
        el('div', 'timeline-actor', ev.actor || '—'),
      );
      const extra = this.detailText(ev.details);
      if (extra) li.append(el('div', 'timeline-details', extra));
      if (ev.note) li.append(el('div', 'timeline-note', ev.note));
      ol.append(li);
    }
    if (list.length === 0) ol.append(el('li', 'timeline-empty', '—'));
  }

  /**
   * renderMedia: the case's photos and voice notes, each with who sent it and
   * when. The view re-renders on every change of the case (incident.changed):
   * when the attachments are the same, the box shown is returned as it is
   * (render keeps it in the page), so a voice note playing goes on playing;
   * otherwise an attachment shown before keeps its node (matched by id, and
   * by what it shows) and only new ones are built.
   */
  renderMedia(inc) {
    const list = Array.isArray(inc.attachments) ? inc.attachments : [];
    const before = this.mediaNodes instanceof Map ? this.mediaNodes : new Map();
    const keyOf = (a) => JSON.stringify([inc.id, a.id, a.kind, a.url, a.created_by, a.created_at, a.filename, a.bytes]);
    const listKey = JSON.stringify(list.map(keyOf));
    if (list.length > 0 && this.mediaBox?.isConnected && this.mediaKey === listKey) return this.mediaBox;
    this.mediaNodes = new Map();
    this.mediaBox = null;
    this.mediaKey = listKey;
    if (list.length === 0) return null;
    const box = el('section', { className: 'inc-media', dataset: { field: 'attachments' } },
      el('div', 'section-title', `照片与语音 Photos & voice (${list.length})`));
    const grid = el('ol', 'inc-media-list');
    for (const a of list) {
      const key = keyOf(a);
      const old = before.get(String(a.id));
      let item = old?.key === key ? old.node : null;
      if (!item) {
        const caption = el('div', 'inc-media-caption', `${a.created_by || '—'} · ${formatTime(a.created_at)}`);
        if (a.kind === 'voice') {
          const audio = el('audio', { controls: true, preload: 'none', src: a.url });
          item = el('li', { className: 'inc-media-item inc-media-voice', dataset: { kind: 'voice', attachment: String(a.id) } }, el('span', 'inc-media-label', '语音 Voice note'), audio, caption);
        } else {
          const img = el('img', { src: a.url, alt: a.filename || 'photo', loading: 'lazy', decoding: 'async' });
          const link = el('a', { href: a.url, target: '_blank', rel: 'noopener', title: `${a.filename} · ${Math.round((a.bytes ?? 0) / 1024)} KiB` }, img);
          item = el('li', { className: 'inc-media-item', dataset: { kind: 'photo', attachment: String(a.id) } }, link, caption);
        }
      }
      this.mediaNodes.set(String(a.id), { key, node: item });
      grid.append(item);
    }
    box.append(grid);
    this.mediaBox = box;
    return box;
  }

  detailText(d) {
    if (!d || typeof d !== 'object') return '';
    const parts = [];
    if (d.via === 'field') {
      const [lon, lat] = Array.isArray(d.location) ? d.location : [];
      const where = Number.isFinite(lon) ? ` ${lon.toFixed(6)}, ${lat.toFixed(6)}` : '';
      const acc = Number.isFinite(d.accuracy_m) ? ` ±${Math.round(d.accuracy_m)} m` : '';
      parts.push(`网格员现场上报 from the field app ·${where}${acc}`);
    }
    if (d.assignee_id !== undefined && d.assignee_id !== null) {
      const s = this.staff.get(Number(d.assignee_id));
      parts.push(`处置人 assignee: ${s ? staffLabel(s) : `#${d.assignee_id}`}`);
    }
    if (d.to_grid_id !== undefined) parts.push(`改派 moved: ${this.gridName(d.from_grid_id) || '—'} → ${this.gridName(d.to_grid_id) || `#${d.to_grid_id}`}`);
    else if (d.grid_id !== undefined) parts.push(`网格 grid: ${d.grid_id === null ? '— 无 none' : this.gridName(d.grid_id) || `#${d.grid_id}`}`);
    return parts.join(' · ');
  }

  /** renderActions: the steps the workflow allows now and the role may take. */
  renderActions(inc) {
    const allowed = Array.isArray(inc.allowed_transitions) ? inc.allowed_transitions : [];
    const mine = can('incidents.transition') ? allowed.filter((to) => can(permissionFor(inc.status, to))) : [];
    if (mine.length === 0) return null;
    const box = el('section', { className: 'inc-actions', dataset: { field: 'actions' } }, el('div', 'section-title', '处理 Actions'));
    const row = el('div', 'inc-action-row');
    for (const to of mine) {
      const danger = to === 'rejected' || to === 'returned';
      const b = el(
        'button',
        { type: 'button', className: `btn ${danger ? 'btn-danger' : 'btn-primary'}`, dataset: { transition: to }, 'aria-pressed': String(this.form?.to === to) },
        actionLabel(inc.status, to),
      );
      b.addEventListener('click', () => this.showForm(to));
      row.append(b);
    }
    box.append(row);
    this.formBox = el('div', 'inc-form-box');
    box.append(this.formBox);
    return box;
  }

  showForm(to) {
    const inc = this.inc;
    if (!inc || !this.formBox) return;
    this.form = { to };
    for (const b of this.root.querySelectorAll('[data-transition]')) b.setAttribute('aria-pressed', String(b.dataset.transition === to));
    const note = el('textarea', { name: 'note', id: 'transition-note', rows: 3, maxLength: 2000, placeholder: '处理意见 Note (optional)' });
    const error = el('p', { className: 'form-error', role: 'alert', hidden: true });
    const submit = el('button', { type: 'submit', className: 'btn btn-primary', id: 'transition-submit' }, `确认 Confirm: ${actionLabel(inc.status, to)}`);
    const cancel = el('button', { type: 'button', className: 'btn' }, '取消 Cancel');
    const form = el('form', { className: 'transition-form', id: 'transition-form', dataset: { to }, noValidate: true });
    form.append(el('div', 'transition-title', `${statusLabel(inc.status)} → ${statusLabel(to)}`));

    let dispatch = null;
    if (to === 'dispatched') dispatch = this.dispatchFields(inc, form, error, submit);

    form.append(el('label', 'field', el('span', 'field-label', '意见 Note'), note), error, el('div', 'form-actions', cancel, submit));
    cancel.addEventListener('click', () => {
      this.form = null;
      this.formBox.replaceChildren();
      for (const b of this.root.querySelectorAll('[data-transition]')) b.setAttribute('aria-pressed', 'false');
    });
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.submit(to, { note: note.value.trim(), dispatch, error, submit });
    });
    this.formBox.replaceChildren(form);
    (dispatch?.first ?? note).focus({ preventScroll: true });
    form.scrollIntoView({ block: 'nearest' });
  }

  /** dispatchFields adds the grid and assignee selects to the dispatch form. */
  dispatchFields(inc, form, error, submit) {
    const current = inc.grid ? Number(inc.grid.id) : null;
    const gridSel = el('select', { name: 'grid_id', id: 'dispatch-grid' });
    gridSel.append(el('option', { value: current ?? '', selected: true }, current ? `${gridText(inc.grid)}（当前 current）` : '— 选择网格 choose a grid —'));
    for (const g of this.gridOptions()) {
      if (g.id === current) continue;
      gridSel.append(el('option', { value: String(g.id) }, `${g.name} · ${g.code}`));
    }
    const who = el('select', { name: 'assignee_id', id: 'dispatch-assignee' });
    const hint = el('span', 'field-help');
    const state = { first: gridSel, grid: () => (gridSel.value ? Number(gridSel.value) : null), current, leaderId: null, staffOk: false };
    state.assignee = () => (who.value ? Number(who.value) : null);

    const load = async () => {
      const gid = state.grid();
      who.replaceChildren();
      state.leaderId = null;
      state.staffOk = false;
      submit.disabled = true;
      error.hidden = true;
      if (!gid) {
        who.append(el('option', { value: '' }, '— 先选网格 choose a grid first —'));
        hint.textContent = '此事件不在任何网格内：请指定派往的网格 · The case is in no grid: choose where to send it.';
        return;
      }
      who.append(el('option', { value: '' }, 'Loading… 加载中'));
      let list;
      try {
        list = await gridStaff(gid);
      } catch (err) {
        if (state.grid() !== gid) return;
        who.replaceChildren(el('option', { value: '' }, '—'));
        error.textContent = `无法加载网格团队 · Cannot load the grid's team — ${describe(err)}`;
        error.hidden = false;
        return;
      }
      if (state.grid() !== gid) return;
      for (const s of list) this.staff.set(Number(s.id), s);
      who.replaceChildren();
      const leader = list.find((s) => s.role === 'leader');
      if (list.length === 0) {
        who.append(el('option', { value: '' }, '— 无团队成员 no staff —'));
        error.textContent = '该网格没有团队成员，无法派遣：请先添加网格长 · This grid has no team to dispatch to: add a grid leader first.';
        error.hidden = false;
        return;
      }
      if (!leader) who.append(el('option', { value: '', selected: true }, '— 选择处置人 choose who handles it —'));
      for (const s of list) who.append(el('option', { value: String(s.id), selected: leader ? s.id === leader.id : false }, staffLabel(s)));
      state.leaderId = leader ? Number(leader.id) : null;
      state.staffOk = true;
      hint.textContent = leader ? '默认派给网格长 · Defaults to the grid leader.' : '该网格没有网格长：请选择处置人 · This grid has no leader: choose who handles it.';
      if (!leader) {
        error.textContent = '该网格没有网格长 · This grid has no leader — choose a team member to dispatch to.';
        error.hidden = false;
      }
      submit.disabled = false;
    };
    gridSel.addEventListener('change', load);
    who.addEventListener('change', () => {
      if (who.value) error.hidden = true;
    });
    form.append(
      el('label', 'field', el('span', 'field-label', '派往网格 Grid'), gridSel),
      el('label', 'field', el('span', 'field-label', '处置人 Assignee'), who, hint),
    );
    load();
    return state;
  }

  async submit(to, { note, dispatch, error, submit }) {
    const inc = this.inc;
    if (!inc || this.busy) return;
    const body = { to, version: inc.version, note };
    if (dispatch) {
      const gid = dispatch.grid();
      if (!gid) {
        error.textContent = '请选择派往的网格 · Choose the grid to dispatch to.';
        error.hidden = false;
        return;
      }
      if (gid !== dispatch.current) body.grid_id = gid;
      const who = dispatch.assignee();
      if (!who) {
        error.textContent = dispatch.staffOk ? '请选择处置人 · Choose who handles it.' : '该网格没有可派遣的人员 · No one on this grid to dispatch to.';
        error.hidden = false;
        return;
      }
      // The leader is the server's default; name anyone else.
      if (who !== dispatch.leaderId || body.grid_id !== undefined) body.assignee_id = who;
    }
    this.busy = true;
    submit.disabled = true;
    submit.dataset.busy = 'true';
    error.hidden = true;
    const seq = this.seq;
    try {
      let out = await sendJSON('POST', `/api/v1/incidents/${encodeURIComponent(inc.id)}/transitions`, body);
      if (!Array.isArray(out?.history)) out = await getJSON(`/api/v1/incidents/${encodeURIComponent(inc.id)}`);
      if (seq !== this.seq) return;
      this.form = null;
      this.notice = '';
      this.inc = out;
      this.store.upsert(out);
      this.render();
      this.loadStaffNames(out);
    } catch (err) {
      if (seq !== this.seq) return;
      submit.disabled = false;
      delete submit.dataset.busy;
      if (err instanceof ApiError && err.status === 409) {
        const d = err.details ?? {};
        this.form = null;
        if (d.current_version !== undefined) {
          this.notice = `有人已更改此事件 — 已重新加载 · Someone else changed it — reloaded${d.last_actor ? ` (${d.last_actor})` : ''}`;
        } else {
          const allowed = Array.isArray(d.allowed) ? d.allowed.map(statusLabel).join(', ') : '';
          this.notice = `此步骤已不可用 — 已重新加载 · That step is no longer allowed${allowed ? ` (now: ${allowed})` : ''} — reloaded`;
        }
        this.busy = false;
        await this.reload(seq);
        return;
      }
      const field = err?.details?.field;
      error.textContent = field && !describe(err).includes(field) ? `${field}: ${describe(err)}` : describe(err);
      error.hidden = false;
    } finally {
      this.busy = false;
    }
  }
}

Object.assign(IncidentView.prototype, footageMethods);
