// 我的任务 My tasks: the cases assigned to me (GET /api/v1/incidents?
// assignee=me), overdue ones first, then by deadline; each opens a card with
// what, where, until when, the photos, and the steps a handler takes —
// accept (接单), return with a reason (退回), report handled with a note and
// photos (反馈). A step goes through the outbox: queued with its key and the
// case's version, sent when it can be; while queued it shows on the task,
// and a step the case has moved past (409) stays on it until retried or
// dismissed.

import { el, formatTime } from '../dom.js';
import { can } from '../api.js';
import { dueText, overdueNow, permissionFor, statusLabel, STATUS_COLOR } from '../status.js';
import { getFresh } from './net.js';
import { addGrids, makeMap } from './mapview.js';
import { PhotoPicker, uploadDrafts } from './photopicker.js';
import { hhmm, toast } from './ui.js';

/** TASK_STATUSES are the statuses of a task on my list: to accept, to do, done and awaiting the check. */
export const TASK_STATUSES = ['dispatched', 'in_progress', 'handled'];
// The list is put in order here (byUrgency); the server's sort=deadline
// (contract) is to be added to this query once the API takes it.
const TASKS_PATH = `/api/v1/incidents?assignee=me&status=${TASK_STATUSES.join(',')}&limit=200`;
// A list answered from the cache while online is read again after this long.
const STALE_RETRY_MS = 15000;

// The steps a handler takes, by target status.
const STEPS = {
  in_progress: { label: '接单 Accept', kind: 'btn-primary', needs: '' },
  handled: { label: '反馈 Report handled', kind: 'btn-ok', needs: 'note' },
  returned: { label: '退回 Return', kind: 'btn-danger', needs: 'reason' },
};

/** byUrgency orders tasks: overdue first, then by deadline; those awaiting the check last. */
export function byUrgency(a, b) {
  const waitA = a.status === 'handled' ? 1 : 0;
  const waitB = b.status === 'handled' ? 1 : 0;
  if (waitA !== waitB) return waitA - waitB;
  const oa = overdueNow(a) ? 0 : 1;
  const ob = overdueNow(b) ? 0 : 1;
  if (oa !== ob) return oa - ob;
  return (Date.parse(a.deadline) || Infinity) - (Date.parse(b.deadline) || Infinity);
}

/**
 * Tasks is the task list and the task card. deps: outbox, go(route) (to
 * change screens), grids (MyGrids, drawn on the card's map).
 */
export class Tasks {
  constructor({ outbox, go, grids }) {
    this.outbox = outbox;
    this.go = go;
    this.grids = grids;
    this.list = [];
    this.byId = new Map();
    this.loaded = false;
    this.known = null; // ids seen on the previous load: a new one is a new task
    this.loading = null;
    this.again = false;
    this.openId = 0;
    this.card = null; // the open case's full record
    this.mapBox = null; // its map's box, and the map once drawn
    this.mapDone = null;
    this.stepForm = null;
    this.stepPicker = null; // the open step's photos
    this.queuing = new Set(); // cases whose step is being queued: a second tap queues nothing
    this.staleTimer = 0;
    this.ul = document.querySelector('#task-list');
    this.note = document.querySelector('#tasks-note');
    this.empty = document.querySelector('#tasks-empty');
    this.count = document.querySelector('#tasks-count');
    this.cardBox = document.querySelector('#task-card');
    setInterval(() => this.tick(), 30000);
    outbox.addEventListener('change', () => {
      this.render();
      if (this.openId) this.renderQueued();
    });
    outbox.addEventListener('sent', (ev) => {
      const { item, result } = ev.detail;
      if (item.kind === 'transition') {
        toast(`已发送 · Sent: ${item.label}`, { kind: 'ok' });
        if (result?.id) this.merge(result);
        this.refresh();
      }
    });
  }

  /** refresh reads the list again (one read at a time; a call during one runs after it). */
  refresh(prefetched = null) {
    if (this.loading) {
      this.again = true;
      return this.loading;
    }
    this.loading = this.load(prefetched).finally(() => {
      this.loading = null;
      if (this.again) {
        this.again = false;
        this.refresh();
      }
    });
    return this.loading;
  }

  /** prefetch starts reading the list (at start-up, beside "who am I"); refresh(prefetch) uses it. */
  static prefetch() {
    const p = getFresh(TASKS_PATH, { auth: false });
    p.catch(() => {}); // read by refresh, or dropped when nobody is signed in
    return p;
  }

  async load(prefetched) {
    let res;
    try {
      res = await (prefetched ?? getFresh(TASKS_PATH));
    } catch (err) {
      this.showNote(`无法读取任务 · Cannot read tasks: ${err.message}`);
      if (!this.loaded) this.markLoaded('error');
      return;
    }
    const list = (res.body?.incidents ?? []).filter((i) => TASK_STATUSES.includes(i.status));
    list.sort(byUrgency);
    const fresh = !this.known ? [] : list.filter((i) => !this.known.has(i.id) && i.status === 'dispatched');
    this.known = new Set(list.map((i) => i.id));
    this.list = list;
    this.byId = new Map(list.map((i) => [i.id, i]));
    this.showNote(res.cachedAt ? `离线：显示 ${hhmm(res.cachedAt)} 保存的任务 · Offline: your tasks as saved at ${hhmm(res.cachedAt)}` : '');
    // A saved list while the phone says it is online (a slow network): read again soon.
    clearTimeout(this.staleTimer);
    if (res.cachedAt && navigator.onLine !== false) this.staleTimer = setTimeout(() => this.refresh(), STALE_RETRY_MS);
    this.render();
    this.markLoaded(res.cachedAt ? 'cache' : 'network');
    for (const inc of fresh.slice(0, 3)) {
      toast(`新任务 New task: ${inc.title}`, { kind: 'new', data: { incidentId: String(inc.id) }, action: { label: '查看 Open', run: () => this.go(`task-${inc.id}`) } });
    }
    if (this.openId && this.byId.has(this.openId) && !this.stepForm) this.openCard(this.openId, { quiet: true });
  }

  markLoaded(from) {
    if (!this.loaded) performance.mark('field-tasks-rendered'); // "usable": the first screen shows the tasks
    this.loaded = true;
    document.body.dataset.tasksLoaded = String(this.list.length);
    document.body.dataset.tasksFrom = from;
  }

  showNote(text) {
    this.note.textContent = text;
    this.note.hidden = !text;
  }

  // merge puts a case as the server answered it into the list.
  merge(inc) {
    if (!this.byId.has(inc.id)) return;
    Object.assign(this.byId.get(inc.id), inc);
    if (this.card?.id === inc.id) Object.assign(this.card, inc);
  }

  tick() {
    for (const li of this.ul.querySelectorAll('.task')) {
      const inc = this.byId.get(Number(li.dataset.incidentId));
      const due = li.querySelector('.due');
      if (inc && due) {
        due.textContent = dueText(inc) || '—';
        due.dataset.overdue = String(overdueNow(inc));
        li.dataset.overdue = String(overdueNow(inc));
      }
    }
    if (this.openId) {
      const inc = this.card ?? this.byId.get(this.openId);
      const due = this.cardBox.querySelector('[data-field="due"]');
      if (inc && due) due.textContent = dueText(inc) || '—';
    }
  }

  /** queuedFor lists the outbox items of case id. */
  queuedFor(id) {
    return this.outbox.items.filter((it) => it.incident === id);
  }

  render() {
    this.count.textContent = this.loaded ? `${this.list.length}` : '';
    this.empty.hidden = !this.loaded || this.list.length > 0;
    this.ul.replaceChildren(...this.list.map((inc) => this.row(inc)));
  }

  row(inc) {
    const overdue = overdueNow(inc);
    const queued = this.queuedFor(inc.id);
    const step = queued.find((it) => it.kind === 'transition');
    const badges = [];
    if (overdue) badges.push(el('span', 'badge badge-overdue', '超期 Overdue'));
    if (step?.state === 'conflict') badges.push(el('span', 'badge badge-conflict', '已被他人处理 · moved on'));
    else if (step?.state === 'failed') badges.push(el('span', 'badge badge-failed', '发送失败 · refused'));
    else if (queued.length) badges.push(el('span', 'badge badge-queued', `待发送 ${queued.length} queued`));
    const b = el(
      'button',
      { type: 'button', className: 'task', dataset: { incidentId: String(inc.id), status: inc.status, overdue: String(overdue) } },
      el('span', 'task-title', inc.title),
      el(
        'span',
        'task-meta',
        el('span', 'status', statusLabel(inc.status)),
        el('span', null, inc.category_name || inc.category),
        inc.grid ? el('span', null, inc.grid.name) : null,
        el('span', { className: 'due', dataset: { overdue: String(overdue) } }, dueText(inc) || '—'),
        ...badges,
      ),
    );
    b.querySelector('.status').style.color = STATUS_COLOR[inc.status] ?? '';
    b.addEventListener('click', () => this.go(`task-${inc.id}`));
    return el('li', null, b);
  }

  // ---- the card ------------------------------------------------------------------

  /** openCard shows case id: at once from the list, then the full record (photos, history). */
  async openCard(id, { quiet = false } = {}) {
    const changed = this.openId !== id;
    this.openId = id;
    if (changed) {
      this.card = null;
      this.closeStep();
    }
    const known = this.byId.get(id);
    if (known && (changed || !this.card)) this.renderCard(known);
    else if (!known && changed) this.cardBox.replaceChildren(el('p', 'note', '读取中 · Loading…'));
    try {
      const { body, cachedAt } = await getFresh(`/api/v1/incidents/${id}`);
      if (this.openId !== id) return;
      // Two reads of the card overlap (opened, then a list refresh): an answer
      // older than what shows (or a saved copy) came late and is dropped.
      if (this.card && Number(body?.version) < Number(this.card.version)) return;
      // Unchanged (a refresh of the list): keep what is on screen, its map included.
      const same = this.card && this.card.version === body.version && (this.card.attachments?.length ?? 0) === (body.attachments?.length ?? 0);
      this.card = body;
      if (same && !changed) this.renderQueued();
      else if (!this.stepForm) this.renderCard(body, cachedAt);
    } catch (err) {
      if (this.openId !== id) return;
      if (!known) this.cardBox.replaceChildren(el('p', 'form-error', `无法读取 · Cannot read case ${id}: ${err.message}`));
      else if (!quiet) toast(`离线，显示列表中的信息 · Offline: showing what the list knows`, { kind: 'warn' });
    }
  }

  closeCard() {
    this.openId = 0;
    this.card = null;
    this.closeStep();
    this.mapDone?.map?.remove();
    this.mapDone = null;
    this.mapBox = null;
  }

  // expected is where the case will stand once its queued steps arrive.
  expected(inc) {
    let status = inc.status;
    let version = inc.version;
    let allowed = inc.allowed_transitions ?? [];
    for (const it of this.queuedFor(inc.id)) {
      if (it.kind !== 'transition') continue;
      status = it.to;
      version = it.version + 1;
      allowed = status === 'in_progress' ? ['handled', 'returned'] : [];
    }
    return { status, version, allowed };
  }

  renderCard(inc, cachedAt = null) {
    const [lon, lat] = inc.location?.coordinates ?? [];
    // The same case at the same place keeps its map (drawn once per card).
    const keep = this.mapBox && this.mapBox.dataset.incidentId === String(inc.id) && this.mapBox.dataset.at === `${lon},${lat}` ? this.mapBox : null;
    if (!keep) {
      this.mapDone?.map?.remove();
      this.mapDone = null;
    }
    const overdue = overdueNow(inc);
    const place = inc.address || (Number.isFinite(lon) ? `${lat.toFixed(5)}, ${lon.toFixed(5)}` : '—');
    const facts = el(
      'dl',
      'facts',
      el('dt', null, '状态 Status'),
      el('dd', { dataset: { field: 'status' } }, statusLabel(inc.status)),
      el('dt', null, '类别 Category'),
      el('dd', null, inc.category_name || inc.category || '—'),
      el('dt', null, '网格 Grid'),
      el('dd', null, inc.grid?.name ?? '无 none'),
      el('dt', null, '地点 Place'),
      el('dd', null, place),
      el('dt', null, '期限 Deadline'),
      el('dd', null, formatTime(inc.deadline), ' · ', el('b', { className: 'due', dataset: { field: 'due', overdue: String(overdue) } }, dueText(inc) || '—')),
      el('dt', null, '上报 Reported'),
      el('dd', null, formatTime(inc.reported_at)),
    );
    const mapBox = keep ?? el('div', { className: 'map-box map-small', id: 'task-map', dataset: { incidentId: String(inc.id), at: `${lon},${lat}` } });
    this.mapBox = mapBox;
    const photos = (inc.attachments ?? []).filter((a) => a.kind !== 'voice');
    const voices = (inc.attachments ?? []).filter((a) => a.kind === 'voice');
    const url = (a) => a.url || `/api/v1/incidents/${inc.id}/attachments/${a.id}`;
    const parts = [
      el('h2', { dataset: { field: 'title' } }, inc.title),
      overdue ? el('span', 'badge badge-overdue', '超期 Overdue') : null,
      cachedAt ? el('p', 'note', `离线：${hhmm(cachedAt)} 保存的信息 · Offline: as saved at ${hhmm(cachedAt)}`) : null,
      facts,
      // What to do comes before the details below: within reach without scrolling.
      el('div', { className: 'queued-box', id: 'task-queued' }),
      el('div', { className: 'actions', id: 'task-actions' }),
      inc.description ? el('p', 'desc', inc.description) : null,
      photos.length ? el('ul', 'photos', ...photos.map((a) => el('li', null, el('a', { href: url(a), target: '_blank', rel: 'noopener' }, el('img', { src: url(a), alt: a.filename, loading: 'lazy' }))))) : null,
      ...voices.map((a) => el('audio', { controls: true, preload: 'none', src: url(a) })),
      mapBox,
    ];
    this.cardBox.replaceChildren(...parts.filter(Boolean));
    this.cardBox.dataset.incidentId = String(inc.id);
    this.cardBox.dataset.status = inc.status;
    this.cardBox.dataset.version = String(inc.version);
    this.renderQueued();
    if (keep) {
      this.mapDone?.map.resize();
    } else if (Number.isFinite(lon)) {
      makeMap(mapBox, { center: [lon, lat], zoom: 16, interactive: false }).then((m) => {
        if (!m || !mapBox.isConnected) {
          m?.map.remove();
          return;
        }
        this.mapDone = m;
        this.grids
          .load()
          .then(() => mapBox.isConnected && addGrids(m.map, this.grids.fc, Number(inc.grid?.id) || 0))
          .catch(() => {});
        const pin = el('div', 'pin');
        new m.ml.Marker({ element: pin, anchor: 'bottom-left', offset: [-4, 4] }).setLngLat([lon, lat]).addTo(m.map);
      });
    } else {
      mapBox.hidden = true;
    }
  }

  // renderQueued shows the case's queued steps (and what went wrong) and the steps still open.
  renderQueued() {
    const inc = this.card ?? this.byId.get(this.openId);
    const box = this.cardBox.querySelector('#task-queued');
    const actions = this.cardBox.querySelector('#task-actions');
    if (!inc || !box) return;
    const items = this.queuedFor(inc.id);
    box.replaceChildren(...items.filter((it) => it.kind === 'transition' || it.state !== 'pending').map((it) => this.queuedNotice(it)));
    const photosQueued = items.filter((it) => it.kind === 'upload' && it.state === 'pending').length;
    if (photosQueued) box.append(el('div', { className: 'notice', dataset: { kind: 'queued' } }, `待上传照片 ${photosQueued} · ${photosQueued} photo(s) waiting to upload`));
    if (this.stepForm) return;
    const blocked = items.some((it) => it.kind === 'transition' && it.state !== 'pending');
    const { status, allowed } = this.expected(inc);
    // A handler's steps only (a handled case sent back for rework is the command centre's).
    const steps = blocked ? [] : allowed.filter((to) => STEPS[to] && can(permissionFor(status, to)));
    actions.replaceChildren(
      ...steps.map((to) => {
        const b = el('button', { type: 'button', className: `btn btn-block ${STEPS[to].kind}`, dataset: { step: to }, disabled: this.queuing.has(inc.id) }, STEPS[to].label);
        b.addEventListener('click', () => {
          if (b.disabled || this.queuing.has(inc.id)) return;
          if (!STEPS[to].needs) b.disabled = true; // at once: a double tap queues one step
          this.startStep(inc, to);
        });
        return b;
      }),
    );
    if (!steps.length && inc.status === 'handled' && !items.length) actions.append(el('p', 'note', '已反馈，等待核查 · Reported handled: awaiting the check'));
  }

  queuedNotice(it) {
    const n = el('div', { className: 'notice', dataset: { kind: it.state === 'pending' ? 'queued' : it.state, seq: String(it.seq) } });
    if (it.state === 'conflict') {
      const d = it.error?.details ?? {};
      const who = d.last_actor ? ` · moved on by ${d.last_actor}` : '';
      n.append(el('b', null, `已被他人处理${who}`), el('div', null, `${it.label} 未执行：现为 ${statusLabel(d.status)} · not applied, the case is now ${d.status ?? '?'}${d.updated_at ? ` (${formatTime(d.updated_at)})` : ''}`));
    } else if (it.state === 'failed') {
      n.append(el('b', null, `发送失败 · Refused: ${it.label}`), el('div', null, it.error?.message ?? ''));
    } else {
      const wait = it.error ? ` — 将重试 · will retry (${it.error.message})` : '';
      n.append(el('span', null, `待发送 · Queued: ${it.label}${wait}`));
      return n;
    }
    const retry = el('button', { type: 'button', className: 'btn btn-small', dataset: { act: 'retry' } }, '重试 Retry');
    const dismiss = el('button', { type: 'button', className: 'btn btn-small btn-danger', dataset: { act: 'dismiss' } }, '放弃 Dismiss');
    retry.addEventListener('click', () => this.outbox.retry(it.seq).catch((err) => toast(`无法重试 · Cannot retry: ${err.message}`, { kind: 'warn' })));
    dismiss.addEventListener('click', () => this.outbox.dismiss(it.seq).then(() => this.refresh()));
    n.append(el('div', 'row', retry, dismiss));
    return n;
  }

  // ---- a step ----------------------------------------------------------------------

  startStep(inc, to) {
    if (!STEPS[to].needs) {
      this.queueStep(inc, to, '', []);
      return;
    }
    const actions = this.cardBox.querySelector('#task-actions');
    const isReturn = to === 'returned';
    const note = el('textarea', { id: 'step-note', rows: 3, maxLength: 2000, required: isReturn, placeholder: isReturn ? '退回原因（必填）· reason (required)' : '处理情况 · what was done' });
    const err = el('p', { className: 'form-error', hidden: true, role: 'alert' });
    const input = el('input', { type: 'file', id: 'step-photos', className: 'visually-hidden', accept: 'image/*', capture: 'environment', multiple: true });
    const thumbs = el('ul', 'thumbs');
    const picker = isReturn ? null : new PhotoPicker(input, thumbs, { onChange: () => (submit.disabled = picker.busy || this.queuing.has(inc.id)) });
    const submit = el('button', { type: 'submit', className: `btn btn-block ${STEPS[to].kind}`, id: 'step-submit' }, STEPS[to].label);
    const cancel = el('button', { type: 'button', className: 'btn btn-block' }, '取消 Cancel');
    const form = el(
      'form',
      { className: 'step-form', id: 'step-form', dataset: { to }, noValidate: true },
      el('label', 'field', el('span', 'field-label', isReturn ? '退回原因 Reason' : '说明 Note'), note),
      isReturn ? null : el('div', 'attach', el('label', { className: 'btn attach-btn', for: 'step-photos' }, '拍照 Photo'), input),
      isReturn ? null : thumbs,
      err,
      submit,
      cancel,
    );
    cancel.addEventListener('click', () => {
      this.closeStep();
      this.renderQueued();
    });
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const text = note.value.trim();
      if (isReturn && !text) {
        err.textContent = '请填写退回原因 · A reason is required to return a task';
        err.hidden = false;
        note.setAttribute('aria-invalid', 'true');
        note.focus();
        return;
      }
      if (picker?.busy || submit.disabled || this.queuing.has(inc.id)) return;
      submit.disabled = true; // at once: a double tap queues one step
      this.queueStep(inc, to, text, picker?.photos ?? []).finally(() => {
        if (form.isConnected) submit.disabled = picker?.busy ?? false;
      });
    });
    this.stepForm = form;
    this.stepPicker = picker;
    actions.replaceChildren(form);
    note.focus();
  }

  // closeStep closes the step form; its photos' previews are let go (queued ones are in the outbox).
  closeStep() {
    this.stepPicker?.clear();
    this.stepPicker = null;
    this.stepForm = null;
  }

  /**
   * queueStep queues a step of case inc to status to, with a note and
   * photos. The photos go first (an upload does not change the case's
   * version, and the step reported handled arrives with its photos there);
   * they are not part of the step: dismissing the step keeps them. One step
   * of a case at a time is queued (queuing): a second tap does nothing.
   */
  async queueStep(inc, to, note, photos) {
    if (this.queuing.has(inc.id)) return;
    this.queuing.add(inc.id);
    try {
      const { version } = this.expected(inc);
      const label = `${STEPS[to].label} · ${inc.title}`;
      const group = `inc:${inc.id}`;
      const step = { kind: 'transition', group, incident: inc.id, to, from: inc.status, version, note, label };
      const up = uploadDrafts({ photos, ref: inc.id, group, label: inc.title });
      try {
        await this.outbox.add([...up.drafts, step], up.blobs);
      } catch (err) {
        toast(`无法保存 · Cannot save on this phone: ${err.message}`, { kind: 'warn' });
        return;
      }
      this.stepPicker?.clear();
      this.queued(label);
    } finally {
      this.queuing.delete(inc.id);
      if (this.openId === inc.id && !this.stepForm) this.renderQueued();
    }
  }

  queued(label) {
    this.closeStep();
    this.renderQueued();
    this.render();
    toast(navigator.onLine ? `发送中 · Sending: ${label}` : `已保存，联网后发送 · Saved, sent when online: ${label}`, { kind: navigator.onLine ? 'info' : 'new' });
  }
}
