// The "Import grids 导入网格" dialog (permission grids.write): a GeoJSON file,
// its coordinate system and the repair switch go to POST /api/v1/grids/import.
// The answer is a summary (created, repairs) or, when the server refuses the
// file, every problem it found. A problem or repair with a location has a
// "show" button: the dialog docks to the side (no longer modal) so the map can
// fly there, and expands back to the list on demand.

import { ApiError, describe, request } from './api.js';
import { el } from './dom.js';
import { levelLabel } from './panel.js';

const areaFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

// validLocation is a [lon, lat] the map can fly to (an out-of-range coordinate
// is itself a problem the server may report, with that coordinate).
function validLocation(loc) {
  return Array.isArray(loc) && loc.length >= 2 && Number.isFinite(loc[0]) && Number.isFinite(loc[1]) && Math.abs(loc[0]) <= 180 && Math.abs(loc[1]) <= 85;
}

function m2(v) {
  return typeof v === 'number' && Number.isFinite(v) ? `${areaFmt.format(v)} m²` : '—';
}

function sizeText(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** ImportDialog is built on first open; callbacks come from the map page. */
export class ImportDialog {
  constructor({ reloadGrids, showProblemAt, clearProblemMarker, showGridsOnMap, onError }) {
    Object.assign(this, { reloadGrids, showProblemAt, clearProblemMarker, showGridsOnMap, onError });
    this.dialog = null;
    this.busy = false;
  }

  open() {
    if (!this.dialog) this.build();
    if (this.dialog.open && !this.docked) return;
    this.expand();
    if (!this.busy && this.result.hidden) this.file.focus();
  }

  get docked() {
    return this.dialog.classList.contains('docked');
  }

  /** dock turns the dialog into a non-modal card at the side, so the map is usable. */
  dock() {
    if (this.dialog.open) this.dialog.close();
    this.dialog.classList.add('docked');
    this.dialog.show();
    this.expandBtn.hidden = false;
  }

  /** expand makes the dialog modal again, over the map. */
  expand() {
    if (this.dialog.open) this.dialog.close();
    this.dialog.classList.remove('docked');
    this.dialog.showModal();
    this.expandBtn.hidden = true;
  }

  build() {
    this.file = el('input', { type: 'file', id: 'import-file', name: 'file', accept: '.geojson,.json,application/geo+json,application/json', required: true });
    this.crs = el(
      'select',
      { id: 'import-crs', name: 'crs' },
      el('option', { value: 'wgs84' }, 'WGS-84 · GPS / 天地图 Tianditu'),
      el('option', { value: 'gcj02' }, 'GCJ-02 · 高德 / 腾讯 Amap, Tencent'),
      el('option', { value: 'bd09' }, 'BD-09 · 百度 Baidu'),
    );
    this.repair = el('input', { type: 'checkbox', id: 'import-repair', name: 'repair' });
    this.progress = el('progress', { className: 'progress', id: 'import-progress', max: 100, hidden: true });
    this.status = el('p', { className: 'form-status', id: 'import-status', role: 'status' });
    this.submit = el('button', { type: 'submit', className: 'btn btn-primary', id: 'import-submit' }, '导入 Import');
    this.fileInfo = el('span', 'field-help', '一个 GeoJSON FeatureCollection；属性 code, name, level, parent_code');
    this.file.addEventListener('change', () => {
      const f = this.file.files?.[0];
      this.fileInfo.textContent = f ? `${f.name} · ${sizeText(f.size)}` : '';
    });

    this.form = el(
      'form',
      { className: 'import-form', id: 'import-form', noValidate: true },
      el('label', { className: 'field', for: 'import-file' }, el('span', 'field-label', '文件 File (.geojson, .json)'), this.file, this.fileInfo),
      el(
        'div',
        'field-row',
        el('label', { className: 'field', for: 'import-crs' }, el('span', 'field-label', '坐标系 Coordinate system'), this.crs),
        el('label', { className: 'check', for: 'import-repair' }, this.repair, el('span', '', '修复无效边界 Repair invalid boundaries')),
      ),
      el('p', 'field-help', '全部成功或全部不导入 · All or nothing: every feature is stored, or none is.'),
      this.progress,
      this.status,
      el('div', 'form-actions', this.submit),
    );
    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.send();
    });

    this.result = el('section', { className: 'import-result', id: 'import-result', hidden: true, 'aria-live': 'polite' });
    this.expandBtn = el('button', { type: 'button', className: 'btn btn-small', id: 'import-expand', hidden: true, title: 'Back to the full dialog' }, '展开 Expand');
    this.expandBtn.addEventListener('click', () => this.expand());
    const close = el('button', { type: 'button', className: 'dialog-close', 'aria-label': 'Close' }, '×');
    close.addEventListener('click', () => this.dialog.close());

    this.dialog = el(
      'dialog',
      { className: 'dialog dialog-import', id: 'import-dialog', 'aria-labelledby': 'import-title' },
      el('div', 'dialog-head', el('h2', { className: 'dialog-title', id: 'import-title' }, '导入网格 Import grids'), this.expandBtn, close),
      el('div', 'dialog-body', this.form, this.result),
    );
    // Closed for good (not docked or expanded): take the problem marker off the map.
    this.dialog.addEventListener('close', () => {
      queueMicrotask(() => {
        if (!this.dialog.open) {
          this.dialog.classList.remove('docked');
          this.clearProblemMarker();
        }
      });
    });
    this.result.addEventListener('click', (ev) => {
      const b = ev.target.closest('button[data-lon]');
      if (!b) return;
      this.dock();
      this.showProblemAt([Number(b.dataset.lon), Number(b.dataset.lat)], b.dataset.label);
    });
    document.body.append(this.dialog);
  }

  setBusy(on) {
    this.busy = on;
    for (const c of [this.file, this.crs, this.repair, this.submit]) c.disabled = on;
    this.submit.textContent = on ? '导入中… Importing' : '导入 Import';
    this.progress.hidden = !on;
  }

  async send() {
    if (this.busy) return;
    const file = this.file.files?.[0];
    if (!file) {
      this.status.textContent = '请选择文件 · Choose a GeoJSON file first.';
      this.status.dataset.state = 'error';
      this.file.focus();
      return;
    }
    this.result.hidden = true;
    this.result.replaceChildren();
    this.clearProblemMarker();
    this.setBusy(true);
    this.progress.value = 0;
    this.status.dataset.state = '';
    this.status.textContent = `上传中 Uploading ${file.name}…`;
    const q = new URLSearchParams({ crs: this.crs.value, repair: String(this.repair.checked) });
    let res;
    try {
      res = await request('POST', `/api/v1/grids/import?${q}`, {
        body: file,
        contentType: 'application/geo+json',
        onProgress: ({ phase, loaded, total }) => {
          if (phase === 'upload' && total > 0) {
            this.progress.value = Math.round((loaded / total) * 100);
            this.status.textContent = `上传中 Uploading ${Math.round((loaded / total) * 100)}%`;
          } else if (phase === 'server') {
            this.progress.removeAttribute('value'); // indeterminate while the server checks
            this.status.textContent = '服务器校验中 Checking and storing on the server…';
          }
        },
      });
    } catch (err) {
      this.setBusy(false);
      this.refused(err);
      return;
    }
    this.setBusy(false);
    this.succeeded(res ?? {});
  }

  async succeeded(res) {
    const created = Number(res.created ?? (Array.isArray(res.grids) ? res.grids.length : 0));
    const refs = Array.isArray(res.grids) ? res.grids : [];
    const repairs = Array.isArray(res.repairs) ? res.repairs : [];
    this.status.dataset.state = 'ok';
    this.status.textContent = '正在刷新地图 Reloading the map…';
    this.file.value = '';
    this.fileInfo.textContent = '';

    const head = el('div', { className: 'result-head', dataset: { state: 'ok' } }, el('span', 'result-icon', '✓'), el('span', { className: 'result-title', id: 'import-created' }, `已导入 ${created} 个网格 · Imported ${created} grid${created === 1 ? '' : 's'}`));
    const showAll = el('button', { type: 'button', className: 'btn btn-small' }, '在地图上查看 Show on map');
    showAll.addEventListener('click', () => {
      this.dock();
      this.showGridsOnMap(refs);
    });
    if (refs.length) head.append(showAll);
    this.result.append(head);

    if (refs.length) {
      const list = el('ul', 'ref-list');
      for (const g of refs.slice(0, 200)) list.append(el('li', '', el('span', 'ref-level', levelLabel(g.level)), el('span', 'ref-name', g.name ?? ''), el('span', 'ref-code', g.code ?? '')));
      if (refs.length > 200) list.append(el('li', 'ref-more', `… ${refs.length - 200} more`));
      this.result.append(list);
    }
    if (repairs.length) {
      this.result.append(el('h3', 'result-sub', `已修复 ${repairs.length} 处 · Repaired ${repairs.length} feature${repairs.length === 1 ? '' : 's'}`));
      const rows = repairs.map((r) =>
        el(
          'tr',
          '',
          el('td', 'num', `#${r.feature}`),
          el('td', 'mono', r.code ?? ''),
          el('td', 'mono', r.reason ?? ''),
          el('td', 'num extra', `${m2(r.area_before_m2)} → ${m2(r.area_after_m2)}`),
          el('td', 'num extra', `${r.parts_before ?? '—'} → ${r.parts_after ?? '—'}`),
          el('td', '', this.showButton(r.location, `#${r.feature} ${r.reason ?? ''}`)),
        ),
      );
      this.result.append(table(['#', '编码 Code', '原因 Reason', '面积 Area before → after', '部分 Parts', ''], rows, 'repairs-table'));
    }
    this.result.hidden = false;
    try {
      await this.reloadGrids();
      this.status.textContent = '地图已更新 The map shows the new grids.';
    } catch (err) {
      this.status.textContent = '';
      this.onError(err, 'Reloading grids');
    }
  }

  refused(err) {
    this.status.dataset.state = 'error';
    const problems = err instanceof ApiError && Array.isArray(err.details?.problems) ? err.details.problems : [];
    this.status.textContent = '';
    const head = el('div', { className: 'result-head', dataset: { state: 'error' } }, el('span', 'result-icon', '!'), el('span', 'result-title', problems.length ? `导入被拒绝，未保存任何内容 · Refused — nothing was stored (${problems.length} problem${problems.length === 1 ? '' : 's'})` : '导入失败 · Import failed'));
    this.result.append(head, el('p', 'result-message', describe(err)));
    if (problems.length) {
      const rows = problems.map((p) => {
        const where = [
          p.polygon !== undefined && p.polygon !== null ? `polygon ${p.polygon}` : '',
          p.ring !== undefined && p.ring !== null ? `ring ${p.ring}` : '',
          p.position !== undefined && p.position !== null ? `position ${p.position}` : '',
          p.area_m2 !== undefined && p.area_m2 !== null ? m2(p.area_m2) : '',
          p.other ? `↔ ${p.other}` : '',
          validLocation(p.location) ? `${p.location[0].toFixed(6)}, ${p.location[1].toFixed(6)}` : '',
        ].filter(Boolean);
        return el(
          'tr',
          { dataset: { reason: p.reason ?? '' } },
          el('td', 'num', Number.isInteger(p.feature) ? `#${p.feature}` : '—'),
          el('td', 'mono', p.code ?? ''),
          el('td', 'mono reason', p.reason ?? ''),
          el('td', 'msg', el('div', '', p.message ?? ''), where.length ? el('div', 'where', where.join(' · ')) : null),
          el('td', '', this.showButton(p.location, `#${p.feature ?? ''} ${p.reason ?? ''}`)),
        );
      });
      this.result.append(table(['要素 Feature', '编码 Code', '原因 Reason', '说明 Message', ''], rows, 'problems-table'));
    }
    this.result.hidden = false;
  }

  showButton(loc, label) {
    if (!validLocation(loc)) return null;
    return el('button', { type: 'button', className: 'btn btn-small btn-show', dataset: { lon: String(loc[0]), lat: String(loc[1]), label }, title: `${loc[0]}, ${loc[1]}` }, '定位 Show');
  }
}

function table(headers, rows, id) {
  return el('div', 'table-wrap', el('table', { className: 'table', id }, el('thead', '', el('tr', '', ...headers.map((h) => el('th', '', h)))), el('tbody', '', ...rows)));
}
