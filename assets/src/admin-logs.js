// The admin view's log tabs: the audit trail and the viewing sessions, each
// a filtered, paged log (LogTab).

import { describe, getJSON } from './api.js';
import { el, field, formatTime } from './dom.js';
import { emptyRow, flash, table } from './admin-parts.js';

// ---- audit log ---------------------------------------------------------------------

const PAGE = 50;

function summaryText(s) {
  if (s === null || s === undefined) return '';
  if (typeof s !== 'object') return String(s);
  const short = (v) => {
    if (Array.isArray(v) && v.every((x) => x && typeof x === 'object' && 'code' in x)) v = v.map((x) => x.code).join(', ') || '[]';
    const t = typeof v === 'string' ? v : JSON.stringify(v);
    return t === undefined ? '—' : t.length > 60 ? `${t.slice(0, 57)}…` : t;
  };
  if (s.before && s.after && typeof s.before === 'object' && typeof s.after === 'object') {
    const keys = [...new Set([...Object.keys(s.before), ...Object.keys(s.after)])];
    const changed = keys.filter((k) => JSON.stringify(s.before[k]) !== JSON.stringify(s.after[k]));
    const rest = Object.keys(s).filter((k) => k !== 'before' && k !== 'after');
    return [...changed.map((k) => `${k}: ${short(s.before[k])} → ${short(s.after[k])}`), ...rest.map((k) => `${k}: ${short(s[k])}`)].join(' · ') || 'no change';
  }
  return Object.entries(s)
    .map(([k, v]) => `${k}: ${short(v)}`)
    .join(' · ');
}

/** periodFields are a log filter's time window: from and to, local times. */
function periodFields() {
  return { from: el('input', { name: 'from', type: 'datetime-local' }), to: el('input', { name: 'to', type: 'datetime-local' }) };
}

const PERIOD_LABELS = [
  ['from', '从 From'],
  ['to', '到 To'],
];

/**
 * LogTab is a filtered, paged log read from the API: a filter form (text
 * fields sent trimmed, datetime fields as ISO times), a table, and "More"
 * for the next cursor page. spec names the element ids, the fields, the
 * endpoint, the list's key in the answer, the headers and the texts.
 */
class LogTab {
  constructor(spec) {
    this.spec = spec;
    this.next = null;
    this.count = 0;
    this.seq = 0;
    this.f = spec.fields;
    const apply = el('button', { type: 'submit', className: 'btn btn-primary' }, '筛选 Filter');
    const clear = el('button', { type: 'button', className: 'btn' }, '清除 Clear');
    clear.addEventListener('click', () => {
      this.filters.reset();
      this.load();
    });
    this.filters = el(
      'form',
      { className: 'audit-filters', id: `${spec.id}-filters`, noValidate: true },
      ...spec.labels.map(([k, label]) => field(label, this.f[k])),
      el('div', 'filter-actions', apply, clear),
    );
    this.filters.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.load();
    });
    this.status = el('p', { className: 'tab-status', role: 'status' });
    this.more = el('button', { type: 'button', className: 'btn', id: `${spec.id}-more`, hidden: true }, '更多 More');
    this.more.addEventListener('click', () => this.page(false));
    const { wrap, tbody } = table(`${spec.id}-table`, spec.headers);
    this.tbody = tbody;
    this.root = el('section', 'admin-tab', this.filters, el('div', 'admin-toolbar', this.status), wrap, el('div', 'more-row', this.more));
  }

  query(cursor) {
    const q = new URLSearchParams();
    for (const [k, input] of Object.entries(this.f)) {
      const v = input.value.trim();
      if (!v) continue;
      if (input.type === 'datetime-local') {
        const d = new Date(v);
        if (!Number.isNaN(d.getTime())) q.set(k, d.toISOString());
      } else {
        q.set(k, v);
      }
    }
    q.set('limit', String(PAGE));
    if (cursor) q.set('cursor', cursor);
    return q;
  }

  load() {
    return this.page(true);
  }

  async page(reset) {
    const { endpoint, list, empty, counted } = this.spec;
    const seq = ++this.seq;
    const q = this.query(reset ? null : this.next);
    this.more.disabled = true;
    flash(this.status, '加载中 Loading…', '');
    let res;
    try {
      res = await getJSON(`${endpoint}?${q}`);
    } catch (err) {
      if (seq !== this.seq) return;
      this.more.disabled = false;
      flash(this.status, describe(err), 'error');
      return;
    }
    if (seq !== this.seq) return;
    const rows = Array.isArray(res[list]) ? res[list] : [];
    if (reset) {
      this.tbody.replaceChildren();
      this.count = 0;
    }
    for (const r of rows) this.tbody.append(this.row(r));
    this.count += rows.length;
    if (this.count === 0) this.tbody.append(emptyRow(this.spec.headers.length, empty));
    this.next = res.next ?? null;
    this.more.hidden = !this.next;
    this.more.disabled = false;
    flash(this.status, `${this.count} ${counted}${this.next ? ' · 还有更多 more available' : ''}`, '');
  }
}

/** AuditTab is the audit trail (GET /api/v1/audit). */
export class AuditTab extends LogTab {
  constructor() {
    super({
      id: 'audit',
      endpoint: '/api/v1/audit',
      list: 'entries',
      fields: {
        action: el('input', { name: 'action', autocomplete: 'off', spellcheck: false, placeholder: 'user.update' }),
        actor: el('input', { name: 'actor', autocomplete: 'off', spellcheck: false, placeholder: 'demo-admin' }),
        target_type: el('input', { name: 'target_type', autocomplete: 'off', spellcheck: false, placeholder: 'user, grid, token' }),
        ...periodFields(),
      },
      labels: [
        ['action', '操作 Action'],
        ['actor', '操作者 Actor'],
        ['target_type', '对象类型 Target type'],
        ...PERIOD_LABELS,
      ],
      headers: ['时间 Time', '操作者 Actor', '操作 Action', '对象 Target', '摘要 Summary', '请求 Request', '地址 IP'],
      empty: '没有记录 No entries',
      counted: '条记录 entries',
    });
  }

  row(e) {
    const a = e.actor ?? {};
    const summary = summaryText(e.summary);
    const full = e.summary === undefined ? '' : JSON.stringify(e.summary, null, 2);
    return el(
      'tr',
      { dataset: { auditId: String(e.id ?? '') } },
      el('td', 'time', formatTime(e.at, { seconds: true })),
      el('td', '', el('span', { className: 'kind', dataset: { kind: a.kind ?? '' } }, a.kind ?? ''), ` ${a.name ?? a.id ?? '—'}`),
      el('td', 'mono strong', e.action ?? ''),
      el('td', 'mono', [e.target_type, e.target_id].filter((x) => x !== undefined && x !== null && x !== '').join(' #')),
      el('td', { className: 'summary', title: full }, summary),
      el('td', { className: 'mono dim', title: e.request_id ?? '' }, e.request_id ? String(e.request_id).slice(0, 8) : '—'),
      el('td', 'mono dim', e.ip ?? ''),
    );
  }
}

// ---- viewing sessions --------------------------------------------------------------

const PROTOCOLS = { mse: 'MSE', hls: 'HLS', rtsp: 'RTSP', mp4: 'MP4', webrtc: 'WebRTC' };

function bytesText(n) {
  if (!Number.isFinite(n) || n <= 0) return '0 B';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  const i = Math.min(units.length - 1, Math.floor(Math.log(n) / Math.log(1024)));
  return `${(n / 1024 ** i).toFixed(i ? 1 : 0)} ${units[i]}`;
}

function durationText(from, to) {
  const ms = new Date(to) - new Date(from);
  if (!Number.isFinite(ms) || ms < 0) return '';
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}h ${m}m` : m ? `${m}m ${s % 60}s` : `${s}s`;
}

/** ViewingsTab lists viewing sessions (GET /api/v1/audit/viewings), filterable by camera and person. */
export class ViewingsTab extends LogTab {
  constructor() {
    super({
      id: 'viewings',
      endpoint: '/api/v1/audit/viewings',
      list: 'viewings',
      fields: {
        camera: el('input', { name: 'camera', autocomplete: 'off', spellcheck: false, placeholder: 'CAM-… / id' }),
        actor: el('input', { name: 'actor', autocomplete: 'off', spellcheck: false, placeholder: 'demo-operator' }),
        kind: el('select', { name: 'kind' }, el('option', { value: '' }, '全部 All'), el('option', { value: 'live' }, '实时 Live'), el('option', { value: 'playback' }, '回放 Playback')),
        ...periodFields(),
      },
      labels: [
        ['camera', '摄像机 Camera'],
        ['actor', '人员 Person'],
        ['kind', '类型 Kind'],
        ...PERIOD_LABELS,
      ],
      headers: ['开始 Started', '结束 Ended', '人员 Person', '摄像机 Camera', '方式 How', '录像范围 Footage', '流量 Sent', '地址 IP'],
      empty: '没有观看记录 No viewings',
      counted: '次观看 viewings',
    });
  }

  row(v) {
    const a = v.actor ?? {};
    const how = [v.kind === 'playback' ? '回放 Playback' : '实时 Live', PROTOCOLS[v.protocol] ?? v.protocol, v.stream].filter(Boolean).join(' · ');
    const range = v.from && v.to ? `${formatTime(v.from, { seconds: true })} – ${formatTime(v.to, { seconds: true })}` : '—';
    const ended = v.ended_at ? `${formatTime(v.ended_at, { seconds: true })} (${durationText(v.started_at, v.ended_at)})` : '观看中 watching';
    return el(
      'tr',
      { dataset: { viewingId: String(v.id ?? ''), actor: a.name ?? '', camera: v.camera_code || String(v.camera_id ?? ''), kind: v.kind ?? '', protocol: v.protocol ?? '', ended: String(!!v.ended_at) } },
      el('td', 'time', formatTime(v.started_at, { seconds: true })),
      el('td', 'time', ended),
      el('td', '', el('span', { className: 'kind', dataset: { kind: a.kind ?? '' } }, a.kind ?? ''), ` ${a.name ?? a.id ?? '—'}`),
      el('td', { className: 'mono', title: `#${v.camera_id ?? ''}` }, v.camera_code || `#${v.camera_id ?? ''}`),
      el('td', '', how),
      el('td', 'time', range),
      el('td', 'mono dim', bytesText(v.bytes)),
      el('td', 'mono dim', v.ip ?? ''),
    );
  }
}
