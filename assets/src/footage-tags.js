// The footage dialog's selected range and its tags: the form under the
// timeline (times, label, note; tag, export, link to an incident), editing and
// deleting tags, and the list of the tags in view. tagMethods are
// FootageDialog's own (footage.js mixes them into its prototype).

import { can, describe, request } from './api.js';
import { el, formatTime } from './dom.js';
import { startExport } from './export.js';
import { clock, formatDuration, hhmm, iso, localInput, tagText } from './footage-format.js';
import { OPEN_STATUSES } from './status.js';
import { toast } from './toast.js';
import { serverNow } from './clock.js';

/** armDelete makes a tag's delete button ask for its confirmation (确认删除): the next click deletes. */
function armDelete(t, btn) {
  btn.dataset.confirm = 'true';
  btn.textContent = '确认删除 · Confirm delete';
  btn.setAttribute('aria-label', `确认删除标记 · Confirm: delete the tag “${t.label}”`);
}

/** mine reports whether the signed-in user may edit and delete tag t (its author, or an admin): the server says. */
function mine(t) {
  return t.editable === true;
}

/** tagMethods are the footage dialog's selection form, tag editing and tag list. */
export const tagMethods = {
  buildSelection() {
    this.selRange = el('span', 'sel-range');
    this.selFrom = el('input', { name: 'from', type: 'datetime-local', step: 1, 'aria-label': '开始 From' });
    this.selTo = el('input', { name: 'to', type: 'datetime-local', step: 1, 'aria-label': '结束 To' });
    const fromTo = () => {
      const a = Date.parse(this.selFrom.value);
      const b = Date.parse(this.selTo.value);
      if (Number.isFinite(a) && Number.isFinite(b) && b > a) {
        this.setSelection({ from: a, to: b }, { form: false });
        this.selBox.hidden = false;
      }
    };
    this.selFrom.addEventListener('change', fromTo);
    this.selTo.addEventListener('change', fromTo);
    this.selLabel = el('input', { name: 'label', type: 'text', maxLength: 64, placeholder: '标签 Label', required: true, 'aria-label': '标签 Label' });
    this.selNote = el('input', { name: 'note', type: 'text', maxLength: 2000, placeholder: '备注 Note (optional)', 'aria-label': '备注 Note' });
    const tagBtn = el('button', { type: 'submit', className: 'btn btn-small btn-primary sel-tag' }, '标记 · Tag');
    this.tagBtn = tagBtn;
    this.cancelEdit = el('button', { type: 'button', className: 'btn btn-small sel-cancel-edit', hidden: true }, '取消编辑 · Cancel edit');
    this.cancelEdit.addEventListener('click', () => this.endEdit());
    const exportBtn = el('button', { type: 'button', className: 'btn btn-small sel-export' }, '导出 · Export');
    const linkBtn = el('button', { type: 'button', className: 'btn btn-small sel-link', 'aria-expanded': 'false', title: '把所选时段关联到事件 · Link the selected range to an incident' }, '关联事件 · Link to incident');
    const clear = el('button', { type: 'button', className: 'btn btn-small sel-clear', title: '取消选择 · Clear the selection' }, '取消 · Clear');
    this.selError = el('p', { className: 'form-error', role: 'alert', hidden: true });
    this.selExport = el('div', { className: 'export-status', hidden: true });
    this.selEditing = el('span', { className: 'sel-editing', hidden: true });
    // Link to an incident: an open case of the camera's grid, or any case by its number.
    this.linkPick = el('select', { name: 'incident', 'aria-label': '本网格未结事件 · Open incidents of the camera\'s grid' });
    this.linkId = el('input', { name: 'incident_id', type: 'number', min: 1, step: 1, inputMode: 'numeric', placeholder: '事件编号 Incident #', 'aria-label': '事件编号 Incident number' });
    const linkGo = el('button', { type: 'button', className: 'btn btn-small btn-primary sel-link-go' }, '关联 · Link');
    this.linkStatus = el('span', { className: 'sel-link-status', role: 'status' });
    this.linkRow = el('div', { className: 'sel-row sel-link-row', hidden: true }, el('span', 'sel-title', '关联到 · Link to'), this.linkPick, el('span', 'sel-title', '或 or'), this.linkId, linkGo, this.linkStatus);
    linkBtn.addEventListener('click', () => {
      const show = this.linkRow.hidden;
      this.linkRow.hidden = !show;
      linkBtn.setAttribute('aria-expanded', String(show));
      if (show) this.loadLinkChoices();
    });
    linkGo.addEventListener('click', () => this.linkToIncident(linkGo));
    this.linkId.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') {
        ev.preventDefault();
        this.linkToIncident(linkGo);
      }
    });
    this.selBox = el(
      'form',
      { className: 'footage-sel', hidden: true, noValidate: true },
      el('div', 'sel-row', el('span', 'sel-title', '所选时段 · Selected'), this.selRange, this.selEditing, clear),
      el('div', 'sel-row sel-times', el('label', 'sel-time', el('span', 'sel-title', '从 From'), this.selFrom), el('label', 'sel-time', el('span', 'sel-title', '到 To'), this.selTo)),
      el('div', 'sel-row', this.selLabel, this.selNote, tagBtn, this.cancelEdit, exportBtn, linkBtn),
      this.linkRow,
      this.selError,
      this.selExport,
    );
    this.selBox.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.saveTag(tagBtn);
    });
    exportBtn.addEventListener('click', () => {
      if (!this.sel || !this.cam) return;
      startExport(this.selExport, { cameraId: this.cam.id, from: this.sel.from, to: this.sel.to });
    });
    clear.addEventListener('click', () => this.setSelection(null));
  },

  /** selectNear selects the 30 s before the picture shown (else the end of the latest footage): a range without a drag. */
  selectNear() {
    const shown = this.shownTime();
    const last = this.runs[this.runs.length - 1];
    const end = Number.isFinite(shown) ? shown : last ? last.to : serverNow();
    this.setSelection({ from: Math.round(end - 30e3), to: Math.round(end) });
    this.selFrom.focus({ preventScroll: true });
  },

  /** setSelection shows range sel ({from, to} ms) on the track and its form below (form: false while dragging). */
  setSelection(sel, { form = true } = {}) {
    this.sel = sel;
    if (!this.selBox) return;
    this.drawSel();
    if (!sel) {
      this.selBox.hidden = true;
      delete this.selBox.dataset.from;
      delete this.selBox.dataset.to;
      this.endEdit({ keepSel: true });
      return;
    }
    this.selBox.dataset.from = iso(sel.from);
    this.selBox.dataset.to = iso(sel.to);
    this.selRange.textContent = `${clock(sel.from)} – ${hhmm(sel.to, true)} (${formatDuration(sel.to - sel.from)})`;
    if (document.activeElement !== this.selFrom) this.selFrom.value = localInput(sel.from);
    if (document.activeElement !== this.selTo) this.selTo.value = localInput(sel.to);
    if (form) {
      this.selBox.hidden = false;
      this.selError.hidden = true;
      this.selExport.hidden = true;
      this.selExport.replaceChildren();
      delete this.selExport.dataset.status;
      delete this.selExport.dataset.exportId;
      delete this.selExport.dataset.sha256;
      this.linkStatus.textContent = '';
      delete this.linkStatus.dataset.linkId;
    }
  },

  // ---- editing a tag: its range is the selection, its label and note the form's --------------

  startEdit(t) {
    this.setSelection({ from: t.fromMs, to: t.toMs });
    this.editing = t;
    this.selBox.dataset.mode = 'edit';
    this.selBox.dataset.tagId = String(t.id);
    this.selLabel.value = t.label ?? '';
    this.selNote.value = t.note ?? '';
    this.tagBtn.textContent = '保存修改 · Save';
    this.cancelEdit.hidden = false;
    this.selEditing.hidden = false;
    this.selEditing.textContent = `编辑标记 · Editing “${t.label}” — 拖动时间轴或改时间以改变时段 · drag the timeline or change the times to move it`;
    this.selLabel.focus({ preventScroll: true });
    this.selLabel.select();
  },

  endEdit({ keepSel = false } = {}) {
    if (!this.editing) return;
    this.editing = null;
    delete this.selBox.dataset.mode;
    delete this.selBox.dataset.tagId;
    this.tagBtn.textContent = '标记 · Tag';
    this.cancelEdit.hidden = true;
    this.selEditing.hidden = true;
    this.selLabel.value = '';
    this.selNote.value = '';
    if (!keepSel) this.setSelection(null);
  },

  // ---- linking the selection to an incident ----------------------------------------------------

  /** camGrid is the grid id of the camera on show (fetched when the caller did not pass it). */
  async camGrid() {
    const cam = this.cam;
    if (cam?.grid?.id) return Number(cam.grid.id);
    try {
      const full = await request('GET', `/api/v1/cameras/${encodeURIComponent(cam.id)}`);
      if (this.cam === cam) cam.grid = full?.grid ?? null;
      return full?.grid?.id ? Number(full.grid.id) : null;
    } catch {
      return null;
    }
  },

  async loadLinkChoices() {
    const cam = this.cam;
    const pick = this.linkPick;
    pick.replaceChildren(el('option', { value: '' }, '加载中 Loading…'));
    const gid = await this.camGrid();
    if (this.cam !== cam) return;
    if (!gid || !can('incidents.read')) {
      pick.replaceChildren(el('option', { value: '' }, '— 输入编号 enter a number —'));
      return;
    }
    try {
      const q = new URLSearchParams({ grid: String(gid), status: OPEN_STATUSES.join(','), limit: '50' });
      const res = await request('GET', `/api/v1/incidents?${q}`);
      if (this.cam !== cam) return;
      const list = Array.isArray(res?.incidents) ? res.incidents : [];
      pick.replaceChildren(
        el('option', { value: '' }, list.length ? `— 本网格未结事件 ${list.length} 件 · open incidents of this grid —` : '— 本网格无未结事件 · no open incident here —'),
        ...list.map((inc) => el('option', { value: String(inc.id) }, `#${inc.id} ${inc.title ?? ''} · ${formatTime(inc.reported_at)}`)),
      );
    } catch (err) {
      if (this.cam !== cam) return;
      pick.replaceChildren(el('option', { value: '' }, `— ${describe(err)} —`));
    }
  },

  async linkToIncident(btn) {
    const sel = this.sel;
    const cam = this.cam;
    if (!sel || !cam) return;
    const id = Number(this.linkId.value || this.linkPick.value);
    if (!(id > 0)) {
      this.selError.textContent = '请选择事件或输入编号 · Choose an incident or enter its number';
      this.selError.hidden = false;
      this.linkId.focus();
      return;
    }
    btn.disabled = true;
    this.selError.hidden = true;
    try {
      const l = await request('POST', `/api/v1/incidents/${encodeURIComponent(id)}/footage`, { json: { camera_id: Number(cam.id), from: iso(sel.from), to: iso(sel.to) } });
      this.linkStatus.textContent = `已关联到事件 #${id} · Linked to incident #${id}`;
      this.linkStatus.dataset.linkId = String(l?.id ?? '');
      this.linkStatus.dataset.incidentId = String(id);
      toast(`已关联到事件 #${id} · Footage linked to incident #${id}`, { detail: `${cam.code ?? ''} ${clock(sel.from)} – ${hhmm(sel.to, true)}` });
    } catch (err) {
      this.selError.textContent = `无法关联 · Cannot link — ${describe(err)}`;
      this.selError.hidden = false;
      toast(`无法关联到事件 #${id} · Cannot link to incident #${id}`, { detail: describe(err), kind: 'warn' });
    } finally {
      btn.disabled = false;
    }
  },


  async saveTag(btn) {
    const sel = this.sel;
    const cam = this.cam;
    if (!sel || !cam) return;
    const label = this.selLabel.value.trim();
    this.selError.hidden = true;
    this.selLabel.removeAttribute('aria-invalid');
    if (!label) {
      this.selError.textContent = '请填写标签 · Enter a label';
      this.selError.hidden = false;
      this.selLabel.setAttribute('aria-invalid', 'true');
      this.selLabel.focus();
      return;
    }
    const editing = this.editing;
    btn.disabled = true;
    try {
      const body = { from: iso(sel.from), to: iso(sel.to), label, note: this.selNote.value.trim() };
      const t = editing
        ? await request('PATCH', `/api/v1/tags/${encodeURIComponent(editing.id)}`, { json: body })
        : await request('POST', '/api/v1/tags', { json: { camera_id: Number(cam.id), ...body } });
      if (this.cam !== cam) return;
      this.tags = [...this.tags.filter((x) => x.id !== t.id), { ...t, fromMs: Date.parse(t.from), toMs: Date.parse(t.to) }].sort((a, b) => a.fromMs - b.fromMs);
      if (editing) {
        this.endEdit({ keepSel: true });
        toast(`标记已修改 · Tag saved: ${t.label}`);
      }
      this.selLabel.value = '';
      this.selNote.value = '';
      this.renderTagList();
      this.render();
    } catch (err) {
      const field = err?.details?.field;
      const msg = describe(err);
      this.selError.textContent = field && !msg.includes(field) ? `${field}: ${msg}` : msg;
      this.selError.hidden = false;
      if (editing) toast('无法修改标记 · Cannot change the tag', { detail: msg, kind: 'warn' });
    } finally {
      btn.disabled = false;
    }
  },

  /**
   * deleteTag asks first (the row's 删除 becomes 确认删除 · Confirm), then
   * deletes. The question stays asked until the user answers it or turns
   * away (a click anywhere else, Escape): never on a clock, which a slow
   * phone or a busy machine would beat between the two clicks.
   */
  async deleteTag(t, btn) {
    if (btn.dataset.confirm !== 'true') {
      // The list is drawn again by every refresh (30 s): the question asked stays asked in it.
      this.disarmDelete?.();
      this.confirmDelete = t.id;
      armDelete(t, btn);
      btn.focus();
      const away = (e) => {
        if (e.type === 'keydown' ? e.key !== 'Escape' : e.target.closest?.('.tag-delete')?.dataset.confirm === 'true') return;
        this.disarmDelete();
      };
      this.disarmDelete = () => {
        document.removeEventListener('pointerdown', away, true);
        document.removeEventListener('keydown', away, true);
        this.disarmDelete = null;
        this.confirmDelete = null;
        const cur = [...(this.tagList?.querySelectorAll('li[data-tag-id]') ?? [])].find((li) => li.dataset.tagId === String(t.id))?.querySelector('.tag-delete');
        if (!cur || cur.disabled) return;
        delete cur.dataset.confirm;
        cur.textContent = '删除 · Delete';
        cur.removeAttribute('aria-label');
      };
      document.addEventListener('pointerdown', away, true);
      document.addEventListener('keydown', away, true);
      return;
    }
    this.disarmDelete?.();
    btn.disabled = true;
    try {
      await request('DELETE', `/api/v1/tags/${encodeURIComponent(t.id)}`);
      this.tags = this.tags.filter((x) => x.id !== t.id);
      if (this.editing?.id === t.id) this.endEdit();
      this.renderTagList();
      this.render();
      toast(`标记已删除 · Tag deleted: ${t.label}`);
    } catch (err) {
      btn.disabled = false;
      toast('无法删除标记 · Cannot delete the tag', { detail: describe(err), kind: 'warn' });
    }
  },

  renderTagList() {
    if (!this.tagList) return;
    const items = this.tags.map((t) => {
      const seek = el('button', { type: 'button', className: 'link-btn tag-label', title: `从此处播放 · Play from ${clock(t.fromMs)}` }, t.label ?? '');
      seek.addEventListener('click', () => this.playAt(t.fromMs));
      const li = el(
        'li',
        { dataset: { tagId: String(t.id), author: t.author ?? '' }, title: tagText(t) },
        seek,
        el('span', 'tag-time', `${clock(t.fromMs)} – ${hhmm(t.toMs, true)}`),
        t.note ? el('span', 'tag-note', t.note) : null,
        el('span', 'tag-author', t.author ?? ''),
      );
      if (mine(t)) {
        const edit = el('button', { type: 'button', className: 'btn btn-small tag-edit', title: `编辑标记 · Edit the tag “${t.label}”` }, '编辑 · Edit');
        edit.addEventListener('click', () => this.startEdit(t));
        const del = el('button', { type: 'button', className: 'btn btn-small btn-danger tag-delete', title: `删除标记 · Delete the tag “${t.label}”` }, '删除 · Delete');
        del.addEventListener('click', () => this.deleteTag(t, del));
        if (this.confirmDelete === t.id) {
          const had = document.activeElement?.closest?.('.tag-delete') && this.tagList.contains(document.activeElement);
          armDelete(t, del);
          if (had) queueMicrotask(() => del.focus({ preventScroll: true }));
        }
        li.append(edit, del);
      }
      return li;
    });
    this.tagList.replaceChildren(...items);
    this.tagList.hidden = items.length === 0;
  },
};
