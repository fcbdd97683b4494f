// The incident view's linked footage (关联录像): the list of camera windows
// linked to the case with Play inline, Timeline, Export and Unlink; the
// exports made of them; and the form that links footage by hand.
// footageMethods are IncidentView's own (incident-view.js mixes them into its
// prototype).

import { ApiError, can, describe, getJSON, sendJSON } from './api.js';
import { el, formError, formatTime } from './dom.js';
import { followExport, isFinal, startExport } from './export.js';
import { localInput } from './footage-format.js';
import { InlineFootage } from './footage-inline.js';
import { cameraNames } from './footage-search.js';
import { toast } from './toast.js';

// sessionExports: incident id → the exports made on this page ({id, cameraCode, from, to, box}), newest first.
const sessionExports = new Map();

/** footageMethods show and link an incident's footage in the incident view. */
export const footageMethods = {
  async loadFootage(seq = this.seq) {
    const id = this.id;
    if (can('cameras.read') && !this.camNames) {
      cameraNames()
        .then((m) => {
          this.camNames = m;
          if (seq === this.seq) this.renderFootage();
        })
        .catch(() => {});
    }
    // Only the load asked last is shown: one asked before a link or an
    // unlink may answer after the one asked since.
    const n = (this.footageAsked = (this.footageAsked ?? 0) + 1);
    try {
      const res = await getJSON(`/api/v1/incidents/${encodeURIComponent(id)}/footage`);
      if (seq !== this.seq || n !== this.footageAsked) return;
      this.footage = Array.isArray(res?.footage) ? res.footage : [];
      if (Array.isArray(res?.exports)) this.mergeExports(id, res.exports);
      this.renderFootage();
    } catch (err) {
      if (seq !== this.seq || n !== this.footageAsked) return;
      this.footage = { error: describe(err) };
      this.renderFootage();
    } finally {
      this.footageAnswers = (this.footageAnswers ?? 0) + 1;
      this.root.dataset.footageAnswered = String(this.footageAnswers); // a hook: reads of the footage answered (shown or dropped)
    }
  },

  /** stopInline stops the inline player, if one plays. */
  stopInline() {
    this.inline?.player.stop();
    this.inline?.player.element.remove();
    this.inline = null;
  },

  camName(cameraId) {
    return this.camNames?.get(Number(cameraId))?.name ?? '';
  },

  renderFootage() {
    const box = this.footageBox;
    if (!box) return;
    const title = el('div', 'section-title', '关联录像 · Linked footage');
    const list = this.footage;
    if (list === null) {
      delete box.dataset.count;
      box.replaceChildren(title, el('div', 'dim', 'Loading… 加载中'));
      return;
    }
    if (!Array.isArray(list)) {
      box.replaceChildren(title, el('p', 'form-error', `无法加载关联录像 · Cannot load the linked footage — ${list.error}`));
      return;
    }
    box.dataset.count = String(list.length);
    const playback = can('video.playback');
    const ul = el('ul', 'inc-footage-list');
    if (this.inline && !list.some((f) => Number(f.id) === this.inline.linkId)) this.stopInline();
    for (const f of list) {
      const from = Date.parse(f.from);
      const to = Date.parse(f.to);
      const secs = Number(f.recorded_seconds);
      const auto = f.source === 'auto';
      // The link carries its camera's name; the camera list (loaded
      // beside it) is only a fallback for an older server.
      const name = f.camera_name || this.camName(f.camera_id);
      const li = el(
        'li',
        { className: 'inc-footage-item', dataset: { linkId: String(f.id), camera: String(f.camera_id), source: f.source ?? '' } },
        el(
          'div',
          'inc-footage-row',
          el('span', 'inc-footage-cam', f.camera_code || `#${f.camera_id}`),
          name ? el('span', 'inc-footage-name', name) : null,
          el('span', { className: 'inc-footage-source', dataset: { source: f.source ?? '' }, title: auto ? '上报时自动关联 · Linked when the case was filed' : `${f.created_by ?? ''}` }, auto ? '自动 auto' : '手动 manual'),
        ),
        el(
          'div',
          'inc-footage-row',
          el('span', 'inc-footage-time', `${formatTime(f.from, { seconds: true })} – ${formatTime(f.to, { seconds: true }).slice(11)}`),
          el('span', { className: 'inc-footage-secs', title: '已录制 · Recorded', dataset: { seconds: String(Number.isFinite(secs) ? secs : '') } }, Number.isFinite(secs) ? `录像 ${Math.round(secs)} s / ${Math.round((to - from) / 1000)} s recorded` : ''),
        ),
      );
      if (playback) {
        const cam = { id: Number(f.camera_id), code: f.camera_code ?? '', name };
        const none = Number.isFinite(secs) && !(secs > 0);
        const inline = el('button', { type: 'button', className: 'btn btn-small btn-primary inc-footage-inline', disabled: none, title: '在此播放这段录像 · Play this window here' }, '▶ 播放 · Play inline');
        inline.addEventListener('click', () => this.playInline(f, cam, li));
        const play = el('button', { type: 'button', className: 'btn btn-small inc-footage-play', disabled: none, title: '在回放时间轴中打开此时段 · Open this window in the footage view' }, '时间轴 · Timeline');
        play.addEventListener('click', () => this.onFootage?.(cam, { from, to }, play));
        const exp = el('button', { type: 'button', className: 'btn btn-small inc-footage-export', disabled: none }, '导出 · Export');
        exp.addEventListener('click', () => this.exportLink(f));
        const unlink = el('button', { type: 'button', className: 'btn btn-small btn-danger inc-footage-unlink', 'aria-expanded': String(this.confirmUnlink === f.id) }, '取消关联 · Unlink');
        unlink.addEventListener('click', () => {
          this.confirmUnlink = this.confirmUnlink === f.id ? null : f.id;
          this.renderFootage();
          this.footageBox.querySelector(`li[data-link-id="${f.id}"] .inc-footage-unlink-yes`)?.focus();
        });
        li.append(el('div', 'inc-footage-row', inline, play, exp, unlink));
        if (this.confirmUnlink === f.id) {
          const yes = el('button', { type: 'button', className: 'btn btn-small btn-danger inc-footage-unlink-yes' }, '确认取消关联 · Confirm unlink');
          const no = el('button', { type: 'button', className: 'btn btn-small' }, '取消 · Cancel');
          yes.addEventListener('click', () => this.unlink(f, yes));
          no.addEventListener('click', () => {
            this.confirmUnlink = null;
            this.renderFootage();
          });
          li.append(
            el(
              'div',
              { className: 'inc-footage-row inc-footage-confirm', role: 'group', 'aria-label': '确认取消关联 · Confirm unlink' },
              el('span', 'field-help', `取消 ${f.camera_code || ''} 此时段与事件的关联（录像保全随之解除）？ · Unlink this footage (its evidence hold goes too)?`),
              yes,
              no,
            ),
          );
        }
        if (this.inline?.linkId === Number(f.id)) li.append(this.inline.player.element);
      }
      ul.append(li);
    }
    const parts = [title, list.length ? ul : el('div', 'dim', '— 无 none')];
    if (playback) {
      const add = el('button', { type: 'button', className: 'btn btn-small inc-footage-add', 'aria-expanded': String(!!this.linkForm) }, '＋ 手动关联录像 · Link footage by hand');
      add.addEventListener('click', () => {
        if (this.linkForm) this.linkForm = null;
        else this.linkForm = this.buildLinkForm();
        this.renderFootage();
        this.linkForm?.elements.namedItem('camera_id')?.focus();
      });
      parts.push(el('div', 'inc-footage-row', add));
      if (this.linkForm) parts.push(this.linkForm);
      parts.push(this.renderExports());
    }
    box.replaceChildren(...parts);
  },

  playInline(f, cam, li) {
    if (!this.inline) {
      const player = new InlineFootage({ onClose: () => (this.inline = null) });
      this.inline = { player, linkId: null };
    }
    this.inline.linkId = Number(f.id);
    li.append(this.inline.player.element);
    this.inline.player.play(cam, Date.parse(f.from), Date.parse(f.to));
    this.inline.player.element.scrollIntoView({ block: 'nearest' });
  },

  async unlink(f, btn) {
    const id = this.id;
    const seq = this.seq;
    btn.disabled = true;
    try {
      await sendJSON('DELETE', `/api/v1/incidents/${encodeURIComponent(id)}/footage/${encodeURIComponent(f.id)}`);
      if (seq !== this.seq) return;
      this.confirmUnlink = null;
      if (this.inline?.linkId === Number(f.id)) this.stopInline();
      this.footage = Array.isArray(this.footage) ? this.footage.filter((x) => x.id !== f.id) : this.footage;
      this.renderFootage();
      toast(`已取消关联 · Footage unlinked: ${f.camera_code ?? ''}`);
      this.loadFootage(seq);
    } catch (err) {
      btn.disabled = false;
      toast('无法取消关联 · Cannot unlink the footage', { detail: describe(err), kind: 'warn' });
    }
  },

  // ---- exports of the linked footage ------------------------------------------------------------

  exportLink(f) {
    const incId = this.id;
    const list = sessionExports.get(incId) ?? [];
    sessionExports.set(incId, list);
    const entry = { id: null, cameraCode: f.camera_code ?? `#${f.camera_id}`, from: f.from, to: f.to, box: this.exportBox(incId) };
    list.unshift(entry);
    this.renderFootage();
    startExport(entry.box, { cameraId: f.camera_id, from: f.from, to: f.to, incidentId: incId }, {
      onJob: (job) => {
        entry.id = job.id;
        entry.box.closest('li')?.setAttribute('data-export-id', String(job.id));
      },
    });
  },

  /** exportBox is the status box of one of incident incId's exports; deleting it takes it off the list. */
  exportBox(incId) {
    const box = el('div', { className: 'export-status' });
    box.addEventListener('export-deleted', (ev) => {
      const list = sessionExports.get(incId) ?? [];
      const i = list.findIndex((e) => e.id === ev.detail.id);
      if (i >= 0) list.splice(i, 1);
      box.closest('li.inc-export')?.remove();
      const wrap = this.body?.querySelector('.inc-exports');
      if (wrap && this.id === incId) wrap.dataset.count = String(list.length);
    });
    return box;
  },

  /** mergeExports adds the incident's exports the server lists to the ones this page made. */
  mergeExports(incId, exports) {
    const list = sessionExports.get(incId) ?? [];
    sessionExports.set(incId, list);
    const known = new Set(list.map((e) => e.id));
    for (const x of exports) {
      if (known.has(x.id)) continue;
      const code = this.camNames?.get?.(x.camera_id)?.code ?? `#${x.camera_id}`;
      const box = this.exportBox(incId);
      // A finished export shows at once (with its hold state), without a poll.
      if (isFinal(x.status)) queueMicrotask(() => followExport(box, x));
      list.push({ id: x.id, cameraCode: code, from: x.from, to: x.to, box });
    }
    list.sort((a, b) => (b.id ?? Infinity) - (a.id ?? Infinity));
  },

  renderExports() {
    const list = sessionExports.get(this.id) ?? [];
    const ul = el('ul', 'inc-exports-list');
    for (const e of list) {
      ul.append(
        el(
          'li',
          { className: 'inc-export', dataset: { exportId: e.id === null ? '' : String(e.id) } },
          el('div', 'inc-footage-row', el('span', 'inc-footage-cam', e.cameraCode), el('span', 'inc-footage-time', `${formatTime(e.from, { seconds: true })} – ${formatTime(e.to, { seconds: true }).slice(11)}`), e.id ? el('span', 'dim', `#${e.id}`) : null),
          e.box,
        ),
      );
      // A poll stopped while the case was not on show picks up again.
      if (e.id !== null && !isFinal(e.box.dataset.status)) queueMicrotask(() => e.box.isConnected && followExport(e.box, { id: e.id }));
    }
    return el(
      'div',
      { className: 'inc-exports', dataset: { count: String(list.length) } },
      el('div', 'section-title', '导出 · Exports'),
      list.length ? ul : el('div', 'dim', '— 尚无导出 · no exports yet'),
    );
  },

  // ---- linking footage by hand -------------------------------------------------------------------

  buildLinkForm() {
    const inc = this.inc;
    const at = Date.parse(inc?.reported_at ?? '') || Date.now();
    const camSel = el('select', { name: 'camera_id', id: 'inc-link-camera', required: true }, el('option', { value: '' }, '加载中 Loading…'));
    const from = el('input', { name: 'from', id: 'inc-link-from', type: 'datetime-local', step: 1, required: true, value: localInput(at - 2 * 60e3) });
    const to = el('input', { name: 'to', id: 'inc-link-to', type: 'datetime-local', step: 1, required: true, value: localInput(at + 5 * 60e3) });
    const error = el('p', { className: 'form-error', role: 'alert', hidden: true });
    const submit = el('button', { type: 'submit', className: 'btn btn-small btn-primary inc-link-submit' }, '关联 · Link');
    const cancel = el('button', { type: 'button', className: 'btn btn-small' }, '取消 · Cancel');
    const form = el(
      'form',
      { className: 'inc-link-form', noValidate: true },
      el('label', { className: 'field', for: 'inc-link-camera' }, el('span', 'field-label', '摄像机 Camera'), camSel),
      el('div', 'inc-link-times', el('label', { className: 'field', for: 'inc-link-from' }, el('span', 'field-label', '从 From'), from), el('label', { className: 'field', for: 'inc-link-to' }, el('span', 'field-label', '到 To'), to)),
      el('span', 'field-help', '默认：上报前 2 分钟至后 5 分钟 · Default: 2 min before to 5 min after the reported time'),
      error,
      el('div', 'form-actions', cancel, submit),
    );
    cancel.addEventListener('click', () => {
      this.linkForm = null;
      this.renderFootage();
      this.footageBox.querySelector('.inc-footage-add')?.focus();
    });
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.submitLink(form, submit);
    });
    this.fillCameras(camSel, inc);
    return form;
  },

  /** fillCameras offers the cameras of the case's grid first, then every other camera the user sees. */
  async fillCameras(sel, inc) {
    const gid = inc?.grid?.id;
    let local = [];
    let all = new Map();
    try {
      [local, all] = await Promise.all([
        gid ? getJSON(`/api/v1/grids/${encodeURIComponent(gid)}/cameras?limit=200`).then((r) => (Array.isArray(r?.cameras) ? r.cameras : [])) : [],
        cameraNames(),
      ]);
    } catch (err) {
      sel.replaceChildren(el('option', { value: '' }, `— ${describe(err)} —`));
      return;
    }
    const label = (c) => `${c.code ?? ''} ${c.name ?? ''}`.trim();
    const here = new Set(local.map((c) => Number(c.id)));
    const others = [...all.values()].filter((c) => !here.has(Number(c.id))).sort((a, b) => String(a.code).localeCompare(String(b.code)));
    const opts = [el('option', { value: '' }, '— 选择摄像机 choose a camera —')];
    if (local.length) opts.push(el('optgroup', { label: `本网格 This grid (${inc.grid.name ?? inc.grid.code ?? ''})` }, ...local.map((c) => el('option', { value: String(c.id) }, label(c)))));
    if (others.length) opts.push(el('optgroup', { label: local.length ? '其他摄像机 Other cameras' : '全部摄像机 All cameras' }, ...others.map((c) => el('option', { value: String(c.id) }, label(c)))));
    const keep = sel.value;
    sel.replaceChildren(...opts);
    if (keep) sel.value = keep;
    else if (local.length === 1) sel.value = String(local[0].id);
    sel.dataset.loaded = String(local.length + others.length);
  },

  async submitLink(form, submit) {
    const id = this.id;
    const seq = this.seq;
    const cam = Number(form.elements.namedItem('camera_id').value);
    const from = Date.parse(form.elements.namedItem('from').value);
    const to = Date.parse(form.elements.namedItem('to').value);
    const bad = (field, msg) => formError(form, new ApiError(msg, { details: { field } }));
    if (!(cam > 0)) return bad('camera_id', '请选择摄像机 · Choose a camera');
    if (!Number.isFinite(from)) return bad('from', '请填写开始时间 · Enter when it starts');
    if (!(to > from)) return bad('to', '结束须晚于开始 · The end must come after the start');
    formError(form, null);
    submit.disabled = true;
    try {
      const l = await sendJSON('POST', `/api/v1/incidents/${encodeURIComponent(id)}/footage`, { camera_id: cam, from: new Date(from).toISOString(), to: new Date(to).toISOString() });
      if (seq !== this.seq) return;
      this.linkForm = null;
      if (Array.isArray(this.footage) && l?.id) this.footage = [...this.footage.filter((x) => x.id !== l.id), l];
      this.renderFootage();
      toast(`已关联录像 · Footage linked: ${l?.camera_code ?? ''}`, { detail: `${formatTime(l?.from, { seconds: true })} – ${formatTime(l?.to, { seconds: true }).slice(11)}` });
      this.loadFootage(seq);
    } catch (err) {
      if (seq !== this.seq) return;
      submit.disabled = false;
      formError(form, err);
      toast('无法关联录像 · Cannot link the footage', { detail: describe(err), kind: 'warn' });
    }
  },
};
