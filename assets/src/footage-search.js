// Searching tags by label across cameras, in the footage dialog.
// searchMethods are FootageDialog's own (footage.js mixes them into its
// prototype).

import { describe, request } from './api.js';
import { el, formatTime } from './dom.js';
import { hhmm } from './footage-format.js';

let camerasP = null;
/** cameraNames is every camera the user sees, by id ({id, code, name, grid}), fetched once a page. */
export function cameraNames() {
  camerasP ??= request('GET', '/api/v1/cameras?limit=1000').then((r) => new Map((Array.isArray(r?.cameras) ? r.cameras : []).map((c) => [Number(c.id), c])));
  camerasP.catch(() => {
    camerasP = null;
  });
  return camerasP;
}

/** searchMethods are the footage dialog's tag search. */
export const searchMethods = {
  // ---- searching tags by label, across cameras ---------------------------------------------------

  buildSearch() {
    this.searchInput = el('input', { name: 'q', type: 'search', maxLength: 64, placeholder: '按标签搜索 · Search tags by label', 'aria-label': '按标签搜索标记 · Search tags by label' });
    this.searchScope = el(
      'select',
      { name: 'scope', 'aria-label': '搜索范围 · Where to search' },
      el('option', { value: 'camera' }, '本摄像机 · This camera'),
      el('option', { value: 'grid' }, '本网格 · This grid'),
      el('option', { value: 'all', selected: true }, '全部摄像机 · All cameras'),
    );
    const go = el('button', { type: 'submit', className: 'btn btn-small tag-search-go' }, '搜索 · Search');
    this.searchResults = el('ul', { className: 'tag-results', 'aria-label': '搜索结果 · Search results', hidden: true });
    this.searchNote = el('span', { className: 'tag-search-note', role: 'status' });
    this.searchBox = el('form', { className: 'tag-search', role: 'search', noValidate: true }, el('div', 'sel-row', this.searchInput, this.searchScope, go, this.searchNote), this.searchResults);
    this.searchBox.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.searchTags();
    });
  },

  /**
   * searchTags finds tags whose label is, or contains, the words typed: the
   * API filters by exact label; the newest 200 tags in scope are matched by
   * substring here (case-insensitive).
   */
  async searchTags() {
    const q = this.searchInput.value.trim();
    const box = this.searchBox;
    const cam = this.cam;
    if (!q) {
      this.searchResults.hidden = true;
      this.searchNote.textContent = '';
      delete box.dataset.count;
      return;
    }
    const scope = this.searchScope.value;
    const base = new URLSearchParams();
    if (scope === 'camera') base.set('camera', String(cam.id));
    if (scope === 'grid') {
      const gid = await this.camGrid();
      if (gid) base.set('grid', String(gid));
      else base.set('camera', String(cam.id));
    }
    const seq = (this.searchSeq = (this.searchSeq ?? 0) + 1);
    this.searchNote.textContent = '搜索中 Searching…';
    delete box.dataset.count;
    try {
      const exact = new URLSearchParams(base);
      exact.set('label', q);
      const [a, b] = await Promise.all([request('GET', `/api/v1/tags?${exact}`), request('GET', `/api/v1/tags?${base}`)]);
      if (seq !== this.searchSeq) return;
      const needle = q.toLowerCase();
      const seen = new Set();
      const found = [];
      for (const t of [...(a?.tags ?? []), ...(b?.tags ?? []).filter((t) => String(t.label ?? '').toLowerCase().includes(needle))]) {
        if (seen.has(t.id)) continue;
        seen.add(t.id);
        found.push(t);
      }
      found.sort((x, y) => Date.parse(y.from) - Date.parse(x.from));
      const names = await cameraNames().catch(() => new Map());
      if (seq !== this.searchSeq) return;
      const items = found.slice(0, 50).map((t) => {
        const from = Date.parse(t.from);
        const to = Date.parse(t.to);
        const name = t.camera_name || names.get(Number(t.camera_id))?.name || '';
        const b = el(
          'button',
          { type: 'button', className: 'tag-result', dataset: { tagId: String(t.id), camera: String(t.camera_id) }, title: `${t.note || ''} · ${t.author || '—'}` },
          el('span', 'tag-label', t.label ?? ''),
          el('span', 'tag-cam', `${t.camera_code ?? `#${t.camera_id}`} ${name}`.trim()),
          el('span', 'tag-time', `${formatTime(t.from, { seconds: true })} – ${hhmm(to, true)}`),
        );
        b.addEventListener('click', () => this.open({ id: Number(t.camera_id), code: t.camera_code ?? '', name, grid: names.get(Number(t.camera_id))?.grid ?? null }, { opener: this.opener, range: { from, to } }));
        return el('li', null, b);
      });
      this.searchResults.replaceChildren(...items);
      this.searchResults.hidden = items.length === 0;
      box.dataset.count = String(items.length);
      this.searchNote.textContent = items.length ? `${items.length} 条 · ${items.length} found${found.length > items.length ? ' (newest 50)' : ''}` : '无结果 · No tag found';
    } catch (err) {
      if (seq !== this.searchSeq) return;
      this.searchNote.textContent = `无法搜索 · Cannot search — ${describe(err)}`;
      box.dataset.count = '0';
    }
  },
};
