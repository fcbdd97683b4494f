// The boundary editor's change request, its preview (?dry_run=true,
// debounced), saving it with If-Match, and changes made elsewhere meanwhile.
// previewMethods are the Editor's own (editor.js mixes them into its prototype).

import { ApiError, describe, getJSON, request } from './api.js';
import { KIND_LABEL } from './editor-panel.js';
import { formatArea } from './panel.js';
import { toast } from './toast.js';

const PREVIEW_DELAY_MS = 400;
// A preview that failed on the way is asked again this often, after this long.
const PREVIEW_RETRIES = 3;
const PREVIEW_RETRY_MS = 1500;

/** previewMethods build, preview and save the editor's change. */
export const previewMethods = {
  // ---- the change request and its preview ---------------------------------------------

  /** changeRequest is the request of the current tool's change, or {wait: reason}. */
  changeRequest() {
    const base = `/api/v1/grids/${encodeURIComponent(this.grid.id)}`;
    const line = this.features('linestring')[0]?.geometry ?? null;
    this.line = line;
    const neighbourVersion = (f) => {
      const v = Number(f?.properties?.version);
      return Number.isInteger(v) && v > 0 ? v : undefined;
    };
    switch (this.tool) {
      case 'vertices': {
        const g = this.editedGeometry();
        return g ? { method: 'PUT', path: `${base}/geometry`, json: g } : { wait: '画出新的边界 · Draw the new boundary.' };
      }
      case 'split': {
        if (!line) return { wait: '画一条穿过网格的线 · Draw a line across the grid.' };
        const code = this.root.querySelector('input[name="new.code"]').value.trim();
        const name = this.root.querySelector('input[name="new.name"]').value.trim();
        if (!code || !name) return { wait: '填写新网格的编码和名称 · Give the new grid a code and a name.' };
        return { method: 'POST', path: `${base}/split`, json: { line, new: { code, name } } };
      }
      case 'merge':
        if (!this.pick) return { wait: '单击要合并的相邻网格 · Click the neighbour to merge.' };
        return { method: 'POST', path: `${base}/merge`, json: { with: Number(this.pick.id ?? this.pick.properties.id), with_version: neighbourVersion(this.pick) } };
      case 'edge':
        if (!this.pick) return { wait: '单击共边另一侧的相邻网格 · Click the neighbour across the edge.' };
        if (!line) return { wait: '画出新的共边 · Draw the new edge.' };
        return { method: 'POST', path: `${base}/edge`, json: { neighbour: Number(this.pick.id ?? this.pick.properties.id), neighbour_version: neighbourVersion(this.pick), line } };
      default:
        return { wait: '' };
    }
  },

  schedulePreview(delay = PREVIEW_DELAY_MS) {
    if (!this.root || !this.grid) return;
    // A change the preview does not show yet holds Save back until it does.
    const req = this.changeRequest();
    if (req.wait !== undefined || JSON.stringify(req) !== this.lastKey) {
      if (this.root.dataset.preview === 'ok') this.setPreviewState('pending');
      this.updateSave();
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.preview(), delay);
  },

  resetPreview(wait = '') {
    clearTimeout(this.timer);
    this.previewSeq = (this.previewSeq ?? 0) + 1;
    this.report = null;
    this.lastKey = '';
    this.lastReq = null;
    this.renderReport(null);
    this.setPreviewState('idle', wait);
    this.setSave('idle');
  },

  async preview() {
    if (!this.active || !this.draw) return;
    const req = this.changeRequest();
    if (req.wait !== undefined) {
      this.previewSeq++;
      this.report = null;
      this.lastKey = '';
      this.renderReport(null);
      this.setPreviewState('idle', req.wait);
      this.updateSave();
      return;
    }
    const key = JSON.stringify(req);
    if (key === this.lastKey) {
      if (this.report && this.root.dataset.preview === 'pending') this.setPreviewState('ok');
      this.updateSave();
      return;
    }
    if (key !== this.retryKey) {
      this.retryKey = key;
      this.previewRetries = 0;
    }
    this.lastKey = key;
    const seq = ++this.previewSeq;
    this.setPreviewState('loading');
    this.updateSave();
    let rep;
    try {
      rep = await request(req.method, `${req.path}?dry_run=true`, { json: req.json });
    } catch (err) {
      if (seq !== this.previewSeq || !this.root) return;
      this.report = null;
      this.lastReq = null;
      const rep = err instanceof ApiError ? err.details?.report : null;
      this.renderReport(rep ?? null);
      // A refused change stays refused until it changes; a preview that
      // failed on the way (the network, a busy server) is asked again.
      const transient = !(err instanceof ApiError) || err.status === 0 || err.status === 429 || err.status >= 500;
      if (transient) this.lastKey = '';
      if (transient && this.previewRetries < PREVIEW_RETRIES) {
        this.previewRetries++;
        this.setPreviewState('error', `预览失败，稍后重试 · The preview failed (${describe(err)}); trying again…`);
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.preview(), PREVIEW_RETRY_MS);
      } else {
        this.setPreviewState('error', describe(err));
      }
      this.updateSave();
      return;
    }
    // Only the request's failures are the preview's: a fault in showing
    // the report is a bug, thrown as such (not a preview error that would
    // hold Save back without saying why).
    if (seq !== this.previewSeq || !this.root) return;
    this.report = rep;
    this.lastReq = req;
    this.previewRetries = 0;
    this.renderReport(rep);
    this.setPreviewState('ok');
    this.updateSave();
  },

  setPreviewState(state, text = '') {
    if (!this.root) return;
    this.root.dataset.preview = state;
    const note = this.field('preview-note');
    const t = state === 'loading' ? '检查中 Checking…' : text;
    note.textContent = t;
    note.hidden = !t;
    note.dataset.kind = state === 'error' ? 'error' : '';
  },

  /** renderReport fills the preview panel from a ChangeReport (null empties it). */

  // ---- saving ------------------------------------------------------------------------

  updateSave() {
    const save = this.field('save');
    const ok = this.root.dataset.preview === 'ok' && this.report && Number(this.report.errors) === 0 && this.lastReq;
    save.disabled = !ok || this.root.dataset.save === 'saving';
    save.title = ok ? '保存此更改 · Save this change' : this.report && Number(this.report.errors) > 0 ? '有错误，不能保存 · Fix the errors first' : '等待预览 · Waiting for the preview';
  },

  setSave(state, text = '') {
    this.root.dataset.save = state;
    this.field('reload').hidden = state !== 'stale';
    this.setMessage(text, state === 'stale' || state === 'error' ? 'error' : '');
    this.updateSave();
  },

  async save() {
    const req = this.lastReq;
    if (!req || !this.report || Number(this.report.errors) > 0) return;
    const gridId = this.grid.id;
    const seq = this.seq;
    this.setSave('saving', '保存中 Saving…');
    try {
      const { body: rep, etag } = await request(req.method, req.path, { json: req.json, headers: { 'If-Match': this.etag }, withETag: true });
      if (seq !== this.seq) return;
      this.etag = etag || this.etag;
      const g = (rep?.grids ?? []).find((x) => Number(x.id) === Number(gridId));
      toast(`已保存 Saved: ${KIND_LABEL[rep?.kind] ?? rep?.kind ?? ''} ${g?.code ?? ''}`, {
        detail: g ? `v${g.version_before} → v${g.version_after} · ${formatArea(g.area_after_m2)}` : '',
        data: { saved: String(gridId) },
      });
      this.close({ quiet: true });
      this.onSaved(rep, gridId);
    } catch (err) {
      if (seq !== this.seq) return;
      if (err instanceof ApiError && (err.status === 412 || err.code === 'stale')) {
        this.setSave('stale', `${describe(err)}`);
      } else if (err instanceof ApiError && err.status === 428) {
        this.setSave('error', describe(err));
      } else {
        const rep = err instanceof ApiError ? err.details?.report : null;
        if (rep) {
          this.report = rep;
          this.renderReport(rep);
        }
        this.setSave('error', `无法保存 · Cannot save — ${describe(err)}`);
      }
    }
  },

  /** reload starts again from the grid as it is now (after a 412, or a change elsewhere), with the same tool. */
  async reload() {
    const id = this.grid?.id;
    const tool = this.tool;
    if (id === undefined) return;
    await this.open(id);
    if (this.active && tool && tool !== this.tool && this.draw) this.setTool(tool);
  },

  // ---- changes made elsewhere --------------------------------------------------------

  /**
   * gridChanged takes the data of a grid.changed event ({grids: ids, kind,
   * revision}). If it names the grid being edited or the picked neighbour,
   * their versions are read again: one that is not what editing started
   * from is shown at once (the save would fail with 412).
   */
  gridChanged(data) {
    if (!this.active || !this.root || !this.grid) return;
    // Our own save announces itself too; the editor closes when it succeeds.
    if (this.root.dataset.save === 'saving') return;
    const ids = new Set((Array.isArray(data?.grids) ? data.grids : []).map(Number));
    const watched = [{ id: Number(this.grid.id), version: Number(this.grid.version), self: true }];
    if (this.pick) watched.push({ id: Number(this.pick.id ?? this.pick.properties?.id), version: Number(this.pick.properties?.version), code: this.pick.properties?.code, self: false });
    const hit = watched.filter((w) => ids.has(w.id));
    if (hit.length) this.checkChanged(hit);
  },

  async checkChanged(list) {
    const seq = this.seq;
    const changed = [];
    for (const w of list) {
      try {
        const g = await getJSON(`/api/v1/grids/${encodeURIComponent(w.id)}`);
        if (Number(g?.version) !== w.version) changed.push({ ...w, code: g?.code ?? w.code, now: Number(g?.version) });
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) changed.push({ ...w, removed: true });
        else console.warn('editor: checking a changed grid', err);
      }
    }
    if (seq !== this.seq || !this.root || !changed.length) return;
    this.showChangedElsewhere(changed);
  },

  showChangedElsewhere(changed) {
    const what = (c) => (c.removed ? `${c.code ?? c.id} removed` : `${c.code ?? c.id} v${c.version} → v${c.now}`);
    const self = changed.some((c) => c.self);
    const text = self
      ? '此网格已被他人修改 · This grid was changed by someone else since you started — reload before saving'
      : '相邻网格已被他人修改 · The neighbour was changed by someone else since you started — reload before saving';
    this.root.dataset.changedElsewhere = 'true';
    this.field('stale-text').textContent = text;
    this.field('stale-detail').textContent = changed.map(what).join(' · ');
    this.field('stale-warning').hidden = false;
  },
};
