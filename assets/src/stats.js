// "统计 Stats" (incidents.read): the monthly report (月通报) — one table per
// grid, per category or per month for a chosen period, from
// GET /api/v1/stats/incidents?from&to&group, with the totals, and the same
// table as CSV (Accept: text/csv) to download. Whatever numeric fields the
// server sends are shown; the known ones get their Chinese names first.
//
// "网格员 Members" (patrols.read): each grid member's month — patrols,
// hours, distance, grids covered, open and overdue tasks — from GET
// /api/v1/stats/patrols?month=YYYY-MM, sortable by any column, and the
// table as shown as CSV.

import { ApiError, can, describe, getJSON, request } from './api.js';
import { el } from './dom.js';

const GROUPS = [
  { id: 'grid', label: '按网格 By grid' },
  { id: 'category', label: '按类别 By category' },
  { id: 'month', label: '按月 By month' },
  { id: 'members', label: '网格员 Members', perm: 'patrols.read' },
];

// The members' columns: key, heading, how a row gives its value (a number, or text for the name).
const MEMBER_COLUMNS = [
  { key: 'name', label: '网格员 Member', text: true, value: (r) => String(userOf(r).display_name || r.name || userOf(r).username || (userOf(r).id ? `#${userOf(r).id}` : '')) },
  { key: 'patrols', label: '巡查 Patrols', value: (r) => num(r.patrols ?? r.patrol_count) },
  { key: 'hours', label: '时长 Hours', value: (r) => num(r.hours ?? (r.duration_s !== undefined ? Number(r.duration_s) / 3600 : r.seconds !== undefined ? Number(r.seconds) / 3600 : undefined)), digits: 1 },
  { key: 'distance_km', label: '距离 km', value: (r) => num(r.distance_m !== undefined && r.distance_m !== null ? Number(r.distance_m) / 1000 : r.distance_km), digits: 2 },
  { key: 'grids_covered', label: '网格 Grids covered', value: (r) => num(Array.isArray(r.grids_covered) ? r.grids_covered.length : r.grids_covered) },
  { key: 'open_tasks', label: '在办 Open tasks', value: (r) => num(r.open_tasks) },
  { key: 'overdue_tasks', label: '超期 Overdue tasks', value: (r) => num(r.overdue_tasks) },
];

/** userOf is a member row's user: {id, username, display_name} (nested as user, or flat). */
function userOf(r) {
  const u = r?.user && typeof r.user === 'object' ? r.user : {};
  return { id: u.id ?? r?.user_id ?? '', username: u.username ?? r?.username ?? '', display_name: u.display_name ?? r?.display_name ?? '' };
}

function num(v) {
  if (v === null || v === undefined || v === '') return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

/**
 * csvCell quotes a CSV field when it needs it (RFC 4180). A text field
 * (text: a string by default) that starts like a formula (= + - @, a tab or
 * a CR) gets a ' first, so a spreadsheet shows it as text instead of running
 * it (CSV injection); numbers are left as they are.
 */
export function csvCell(v, text = typeof v === 'string') {
  let s = v === null || v === undefined ? '' : String(v);
  if (text && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

// Known measures, in the order the report reads.
const KNOWN = [
  ['reported', '上报 Reported'],
  ['registered', '立案 Registered'],
  ['closed', '结案 Closed'],
  ['close_rate', '结案率 Close %'],
  ['closed_on_time', '按期结案 On time'],
  ['on_time_close_rate', '按期率 On-time %'],
  ['on_time_rate', '按期率 On-time %'],
  ['median_handling_hours', '处置中位 Median h'],
  ['open', '未结 Open'],
  ['overdue', '超期 Overdue'],
];
const KNOWN_LABEL = new Map(KNOWN);
const SKIP = new Set(['key', 'name', 'code', 'id', 'group', 'level', 'parent_code']);

const p2 = (n) => String(n).padStart(2, '0');

/** rfc3339 formats a local time with its UTC offset, e.g. 2026-11-01T00:00:00+08:00. */
export function rfc3339(d) {
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const a = Math.abs(off);
  return `${d.getFullYear()}-${p2(d.getMonth() + 1)}-${p2(d.getDate())}T${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}${sign}${p2(Math.floor(a / 60))}:${p2(a % 60)}`;
}

function dateValue(d) {
  return `${d.getFullYear()}-${p2(d.getMonth() + 1)}-${p2(d.getDate())}`;
}

function parseDate(v) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(v);
  return m ? new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : null;
}

const intFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const decFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

function formatValue(key, v) {
  if (v === null || v === undefined || v === '') return '—';
  if (typeof v !== 'number') return String(v);
  if (/rate|ratio|pct|percent/.test(key)) {
    const pct = v <= 1 ? v * 100 : v;
    return `${decFmt.format(pct)}%`;
  }
  return Number.isInteger(v) ? intFmt.format(v) : decFmt.format(v);
}

function columnsOf(rows, totals) {
  const present = new Set();
  for (const r of [...rows, totals ?? {}]) {
    for (const [k, v] of Object.entries(r ?? {})) {
      if (SKIP.has(k)) continue;
      if (typeof v === 'number' || (v === null && KNOWN_LABEL.has(k))) present.add(k);
    }
  }
  const known = KNOWN.map(([k]) => k).filter((k) => present.has(k));
  const other = [...present].filter((k) => !KNOWN_LABEL.has(k)).sort();
  return [...known, ...other];
}

export class StatsDialog {
  /** onPickGrid(id) shows a grid of the table on the map. */
  constructor({ onError, onPickGrid = () => {} }) {
    this.onError = onError;
    this.onPickGrid = onPickGrid;
    this.dialog = null;
    this.group = 'grid';
    this.seq = 0;
    this.members = []; // the members' rows as last loaded
    this.sort = { key: 'hours', dir: 'descending' };
  }

  open() {
    if (!this.dialog) this.build();
    if (!this.dialog.open) this.dialog.showModal();
    this.load();
  }

  build() {
    const now = new Date();
    this.month = el('input', { type: 'month', id: 'stats-month', value: `${now.getFullYear()}-${p2(now.getMonth() + 1)}` });
    this.from = el('input', { type: 'date', id: 'stats-from' });
    this.to = el('input', { type: 'date', id: 'stats-to' });
    this.setMonth();
    this.month.addEventListener('change', () => {
      this.setMonth();
      this.load();
    });
    for (const i of [this.from, this.to]) i.addEventListener('change', () => this.load());

    const tablist = el('div', { className: 'tabs', role: 'tablist', 'aria-label': 'Group by' });
    for (const g of GROUPS) {
      if (g.perm && !can(g.perm)) continue;
      const b = el('button', { type: 'button', className: 'tab', role: 'tab', id: `stats-tab-${g.id}`, dataset: { group: g.id }, 'aria-selected': String(g.id === this.group) }, g.label);
      b.addEventListener('click', () => {
        this.group = g.id;
        for (const t of tablist.querySelectorAll('.tab')) t.setAttribute('aria-selected', String(t.dataset.group === g.id));
        this.load();
      });
      tablist.append(b);
    }
    // A real link (format=csv) that a click fetches with Accept: text/csv, so
    // an expired session or a server error is shown here, not as a page.
    this.csv = el('a', { className: 'btn', id: 'stats-csv', href: '#' }, '下载 CSV Download');
    this.csv.addEventListener('click', (ev) => {
      ev.preventDefault();
      if (this.dialog.dataset.state === 'ok') this.download();
    });
    const close = el('button', { type: 'button', className: 'dialog-close', 'aria-label': 'Close' }, '×');
    this.status = el('p', { className: 'tab-status', role: 'status' });
    this.tableWrap = el('div', 'table-wrap stats-table-wrap');
    this.dialog = el(
      'dialog',
      { className: 'dialog dialog-stats', id: 'stats-dialog', 'aria-labelledby': 'stats-title' },
      el('div', 'dialog-head', el('h2', { className: 'dialog-title', id: 'stats-title' }, '统计 Statistics · 月通报'), tablist, close),
      el(
        'div',
        'dialog-body stats-body',
        el(
          'div',
          'stats-toolbar',
          el('label', 'field', el('span', 'field-label', '月份 Month'), this.month),
          el('label', 'field stats-range', el('span', 'field-label', '自 From'), this.from),
          el('label', 'field stats-range', el('span', 'field-label', '至 To (不含 exclusive)'), this.to),
          this.csv,
          this.status,
        ),
        this.tableWrap,
      ),
    );
    close.addEventListener('click', () => this.dialog.close());
    document.body.append(this.dialog);
  }

  setMonth() {
    const m = /^(\d{4})-(\d{2})$/.exec(this.month.value);
    if (!m) return;
    const y = Number(m[1]);
    const mo = Number(m[2]) - 1;
    this.from.value = dateValue(new Date(y, mo, 1));
    this.to.value = dateValue(new Date(y, mo + 1, 1));
  }

  query() {
    let from = parseDate(this.from.value);
    let to = parseDate(this.to.value);
    if (this.group === 'month' && from) {
      // Month by month through the chosen month's year.
      from = new Date(from.getFullYear(), 0, 1);
      to = new Date(from.getFullYear() + 1, 0, 1);
    }
    const q = new URLSearchParams({ group: this.group });
    // Months are cut in the browser's zone, like the dates chosen here.
    const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (tz) q.set('tz', tz);
    if (from) q.set('from', rfc3339(from));
    if (to) q.set('to', rfc3339(to));
    return q;
  }

  setStatus(text, state = '') {
    this.status.textContent = text;
    this.status.dataset.state = state;
  }

  /**
   * setState marks the dialog loading, ok or error; Download is offered only
   * for a table that loaded (ok): not while another period loads, nor after
   * a failure, when the rows at hand are not the period shown.
   */
  setState(state) {
    this.dialog.dataset.state = state;
    const ok = state === 'ok';
    if (ok) this.csv.setAttribute('href', this.csvHref || '#');
    else this.csv.removeAttribute('href');
    this.csv.setAttribute('aria-disabled', String(!ok));
    this.csv.style.opacity = ok ? '' : '0.55';
    this.csv.style.cursor = ok ? '' : 'default';
  }

  async load() {
    this.dialog.classList.toggle('stats-dialog-members', this.group === 'members');
    this.dialog.dataset.group = this.group;
    if (this.group === 'members') return this.loadMembers();
    const seq = ++this.seq;
    const q = this.query();
    const csvQ = new URLSearchParams(q);
    csvQ.set('format', 'csv');
    this.csvHref = `/api/v1/stats/incidents?${csvQ}`;
    this.csv.download = this.fileName();
    this.setStatus('Loading… 加载中');
    this.setState('loading');
    try {
      const res = await getJSON(`/api/v1/stats/incidents?${q}`);
      if (seq !== this.seq) return;
      this.render(res);
      const n = Array.isArray(res?.rows) ? res.rows.length : 0;
      this.setStatus(`${n} 行 rows`, 'ok');
      this.setState('ok');
    } catch (err) {
      if (seq !== this.seq) return;
      this.tableWrap.replaceChildren();
      this.setState('error');
      if (err instanceof ApiError && (err.status === 501 || err.status === 404)) {
        this.setStatus('统计接口尚未就绪 · Statistics are not available on this server yet', 'error');
      } else {
        this.setStatus(describe(err), 'error');
      }
    }
  }

  render(res) {
    const rows = Array.isArray(res?.rows) ? res.rows : [];
    const totals = res?.totals && typeof res.totals === 'object' ? res.totals : null;
    const cols = columnsOf(rows, totals);
    const keyHead = { grid: '网格 Grid', category: '类别 Category', month: '月份 Month' }[this.group] ?? 'Key';
    const thead = el('thead', '', el('tr', '', el('th', '', keyHead), el('th', '', '名称 Name'), ...cols.map((c) => el('th', { className: 'num-head' }, KNOWN_LABEL.get(c) ?? c))));
    const tbody = el('tbody');
    for (const r of rows) {
      const name = r.class_name && r.class_name !== r.name ? `${r.class_name} › ${r.name ?? ''}` : String(r.name ?? '');
      const tr = el(
        'tr',
        { dataset: { key: String(r.key ?? '') } },
        el('td', 'mono', String(r.key ?? r.code ?? '')),
        el('td', 'strong nowrap', name),
        ...cols.map((c) => el('td', 'num', formatValue(c, r[c]))),
      );
      if (this.group === 'grid' && Number(r.id) > 0) {
        tr.classList.add('is-link');
        tr.title = '在地图上显示 Show on the map';
        tr.addEventListener('click', () => {
          this.dialog.close();
          this.onPickGrid(Number(r.id));
        });
      }
      tbody.append(tr);
    }
    if (rows.length === 0) tbody.append(el('tr', 'empty-row', el('td', { colSpan: cols.length + 2 }, '本期无事件 · No incidents in this period')));
    const tfoot = totals ? el('tfoot', '', el('tr', '', el('td', '', '合计'), el('td', 'strong', 'Total'), ...cols.map((c) => el('td', 'num', formatValue(c, totals[c]))))) : null;
    this.tableWrap.replaceChildren(el('table', { className: 'table stats-table', id: 'stats-table' }, thead, tbody, tfoot ?? ''));
  }

  fileName() {
    return `gridwatch-stats-${this.group}-${this.from.value || 'all'}.csv`;
  }

  async download() {
    if (this.group === 'members') {
      this.downloadMembers();
      return;
    }
    const q = this.query();
    this.setStatus('CSV…');
    try {
      const res = await request('GET', `/api/v1/stats/incidents?${q}`, { accept: 'text/csv', raw: true });
      const blob = new Blob([res.text], { type: res.contentType || 'text/csv' });
      const url = URL.createObjectURL(blob);
      const a = el('a', { href: url, download: this.fileName() });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      this.setStatus('CSV 已下载 downloaded', 'ok');
    } catch (err) {
      if (err instanceof ApiError && (err.status === 501 || err.status === 404)) this.setStatus('统计接口尚未就绪 · Statistics are not available on this server yet', 'error');
      else this.setStatus(describe(err), 'error');
    }
  }

  // ---- 网格员 Members: the month's patrols and tasks per member ----------------------

  monthValue() {
    return /^\d{4}-\d{2}$/.test(this.month.value) ? this.month.value : '';
  }

  async loadMembers() {
    const seq = ++this.seq;
    const month = this.monthValue();
    const q = new URLSearchParams();
    if (month) q.set('month', month);
    // The month is cut in the browser's zone, like the other tabs' dates.
    const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (tz) q.set('tz', tz);
    this.csvHref = '#';
    this.csv.download = this.membersFileName();
    // The rows at hand are another month's (or another tab's): none until this month's arrive.
    this.members = [];
    this.memberTotals = null;
    this.setStatus('Loading… 加载中');
    this.setState('loading');
    try {
      const res = await getJSON(`/api/v1/stats/patrols?${q}`);
      if (seq !== this.seq) return;
      const rows = Array.isArray(res) ? res : Array.isArray(res?.members) ? res.members : Array.isArray(res?.rows) ? res.rows : [];
      this.members = rows;
      this.memberTotals = res?.totals && typeof res.totals === 'object' ? res.totals : null;
      this.renderMembers();
      this.setStatus(`${rows.length} 人 members`, 'ok');
      this.setState('ok');
    } catch (err) {
      if (seq !== this.seq) return;
      this.members = [];
      this.memberTotals = null;
      this.tableWrap.replaceChildren();
      this.setState('error');
      if (err instanceof ApiError && (err.status === 501 || err.status === 404)) this.setStatus('巡查统计尚未就绪 · Patrol statistics are not available on this server yet', 'error');
      else this.setStatus(describe(err), 'error');
    }
  }

  /** sortedMembers is the members' rows in the chosen order (empty values last either way). */
  sortedMembers() {
    const col = MEMBER_COLUMNS.find((c) => c.key === this.sort.key) ?? MEMBER_COLUMNS[0];
    const sign = this.sort.dir === 'ascending' ? 1 : -1;
    return [...this.members].sort((a, b) => {
      const va = col.value(a);
      const vb = col.value(b);
      if (va === null || va === '') return vb === null || vb === '' ? 0 : 1;
      if (vb === null || vb === '') return -1;
      const d = col.text ? String(va).localeCompare(String(vb), 'zh-CN') : va - vb;
      return d !== 0 ? sign * d : MEMBER_COLUMNS[0].value(a).localeCompare(MEMBER_COLUMNS[0].value(b), 'zh-CN');
    });
  }

  renderMembers() {
    const fmt = (c, v) => (v === null || v === undefined ? '—' : c.text ? String(v) : c.digits ? v.toFixed(c.digits) : intFmt.format(v));
    const head = el(
      'tr',
      '',
      ...MEMBER_COLUMNS.map((c) => {
        const sorted = this.sort.key === c.key;
        const b = el('button', { type: 'button', className: 'sort-btn', dataset: { sort: c.key } }, c.label);
        b.addEventListener('click', () => {
          this.sort = { key: c.key, dir: sorted && this.sort.dir === 'descending' ? 'ascending' : sorted ? 'descending' : c.text ? 'ascending' : 'descending' };
          this.renderMembers();
          this.tableWrap.querySelector(`[data-sort="${c.key}"]`)?.focus();
        });
        return el('th', { className: c.text ? '' : 'num-head', 'aria-sort': sorted ? this.sort.dir : 'none', dataset: { key: c.key } }, b);
      }),
    );
    const tbody = el('tbody');
    for (const r of this.sortedMembers()) {
      const u = userOf(r);
      const tr = el('tr', { dataset: { userId: String(u.id), username: String(u.username) } });
      for (const c of MEMBER_COLUMNS) {
        const v = c.value(r);
        const td = el('td', { className: c.text ? 'strong nowrap' : 'num', dataset: { key: c.key } }, fmt(c, v));
        if (c.text && u.username && u.username !== v) {
          td.append(' ', el('span', 'dim', u.username));
        }
        if (c.key === 'overdue_tasks') {
          td.classList.add('overdue-cell');
          td.dataset.hot = String(v > 0);
        }
        tr.append(td);
      }
      tbody.append(tr);
    }
    if (this.members.length === 0) tbody.append(el('tr', 'empty-row', el('td', { colSpan: MEMBER_COLUMNS.length }, '本月无巡查记录 · No patrols or tasks this month')));
    const totals = this.memberTotals;
    const sum = (c) => {
      if (totals) return c.value(totals);
      if (c.key === 'grids_covered') return null; // a grid two members covered counts once: the server's to say
      const vs = this.members.map((r) => c.value(r)).filter((v) => v !== null);
      return vs.length ? vs.reduce((a, b) => a + b, 0) : null;
    };
    const tfoot = this.members.length
      ? el('tfoot', '', el('tr', '', el('td', 'strong', '合计 Total'), ...MEMBER_COLUMNS.slice(1).map((c) => el('td', 'num', fmt(c, sum(c))))))
      : null;
    this.tableWrap.replaceChildren(el('table', { className: 'table stats-table', id: 'stats-table', dataset: { group: 'members' } }, el('thead', '', head), tbody, tfoot ?? ''));
  }

  membersFileName() {
    return `gridwatch-members-${this.monthValue() || 'month'}.csv`;
  }

  /** downloadMembers saves the members' table, in its current order, as CSV (UTF-8 with a BOM, for Excel). */
  downloadMembers() {
    const lines = [['user_id', 'username', ...MEMBER_COLUMNS.map((c) => c.label)].map((v) => csvCell(v)).join(',')];
    for (const r of this.sortedMembers()) {
      const u = userOf(r);
      // [value, text]: names are text (a formula's start is neutralised), figures are not.
      const cells = [
        [u.id, typeof u.id !== 'number'],
        [u.username, true],
        ...MEMBER_COLUMNS.map((c) => {
          const v = c.value(r);
          if (v === null) return ['', false];
          return c.text ? [String(v), true] : [c.digits ? v.toFixed(c.digits) : v, false];
        }),
      ];
      lines.push(cells.map(([v, text]) => csvCell(v, text)).join(','));
    }
    const blob = new Blob([`\ufeff${lines.join('\r\n')}\r\n`], { type: 'text/csv;charset=utf-8' });
    const url = URL.createObjectURL(blob);
    const a = el('a', { href: url, download: this.membersFileName() });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    this.setStatus('CSV 已下载 downloaded', 'ok');
  }
}
