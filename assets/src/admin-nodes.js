// The admin view's Nodes tab (metrics.read): the gridwatch nodes that share
// the database (GET /api/v1/nodes), alive, draining or dead, with the
// cameras each pulls, its viewers and load, and which of them answered.
// While the tab shows, the list is read again every few seconds: a node
// whose heartbeat lapses turns dead in place.

import { describe, getJSON } from './api.js';
import { el, formatTime } from './dom.js';
import { fillRows, flash, table } from './admin-parts.js';
import { serverNow } from './clock.js';

const REFRESH_MS = 3000;

const STATES = {
  alive: '在线 alive',
  draining: '移交中 draining',
  dead: '离线 dead',
};

/** agoText is how long before now (ms) time s was: "2 s ago", "5 min ago"; '—' for none. */
export function agoText(s, now) {
  const t = new Date(s).getTime();
  if (!s || !Number.isFinite(t)) return '—';
  const secs = Math.max(0, Math.round((now - t) / 1000));
  if (secs < 60) return `${secs} s ago`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min ago`;
  if (secs < 86400) return `${Math.floor(secs / 3600)} h ago`;
  return `${Math.floor(secs / 86400)} d ago`;
}

function nodeState(n) {
  if (!n.alive) return 'dead';
  return n.draining ? 'draining' : 'alive';
}

/** NodesTab lists the cluster's nodes, refreshed while it shows (load starts, stop ends). */
export class NodesTab {
  constructor() {
    this.timer = 0;
    this.seq = 0;
    this.busy = false;
    this.status = el('p', { className: 'tab-status', role: 'status' });
    const refresh = el('button', { type: 'button', className: 'btn' }, '刷新 Refresh');
    refresh.addEventListener('click', () => this.fetch());
    const { wrap, tbody } = table('nodes-table', ['节点 Node', '状态 State', '摄像机 Cameras', '观看 Viewers', '负载 Load', '版本 Version', '心跳 Last beat', '启动 Started']);
    this.tbody = tbody;
    this.root = el('section', 'admin-tab', el('div', 'admin-toolbar', refresh, this.status), wrap);
  }

  /** load reads the list now and keeps reading it every REFRESH_MS until stop(). */
  load() {
    flash(this.status, '加载中 Loading…', '');
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      // Belt and braces: the dialog closed or another tab shows.
      if (this.root.hidden || !this.root.closest('dialog')?.open) this.stop();
      else if (!this.busy) this.fetch();
    }, REFRESH_MS);
    return this.fetch();
  }

  stop() {
    clearInterval(this.timer);
    this.timer = 0;
    this.seq++; // an answer still on its way is not shown
  }

  async fetch() {
    const seq = ++this.seq;
    this.busy = true;
    try {
      const res = await getJSON('/api/v1/nodes');
      if (seq !== this.seq) return;
      const list = Array.isArray(res?.nodes) ? res.nodes : [];
      const now = serverNow();
      fillRows(this.tbody, list, '没有节点 No nodes', (n) => this.row(n, res.self, now));
      const alive = list.filter((n) => n.alive).length;
      flash(this.status, `${list.length} 个节点 nodes · ${alive} 在线 alive${list.length > alive ? ` · ${list.length - alive} 离线 dead` : ''}`, '');
    } catch (err) {
      if (seq === this.seq) flash(this.status, describe(err), 'error');
    } finally {
      if (seq === this.seq) this.busy = false;
    }
  }

  row(n, self, now) {
    const state = nodeState(n);
    const isSelf = n.id === self;
    const cameras = n.max_cameras > 0 ? `${n.cameras ?? 0} / ${n.max_cameras}` : String(n.cameras ?? 0);
    return el(
      'tr',
      { dataset: { nodeId: n.id ?? '', state, self: String(isSelf) }, className: state === 'dead' ? 'is-dead' : '' },
      el(
        'td',
        '',
        el('span', 'mono strong', n.id ?? ''),
        isSelf ? el('span', { className: 'kind', dataset: { kind: 'self' }, title: '回答此请求的节点 · the node that answered' }, '本节点 this node') : null,
        el('div', 'node-url mono dim', [n.url, n.rtsp_url].filter(Boolean).join(' · ')),
      ),
      el('td', '', el('span', { className: 'state', dataset: { state } }, STATES[state])),
      el('td', 'num', cameras),
      // A dead node's viewers and load are not known (the API says 0).
      el('td', 'num', state === 'dead' ? '—' : String(n.viewers ?? 0)),
      el('td', { className: 'num', title: '1 分钟平均负载/核 · 1-min load average per core' }, state !== 'dead' && Number.isFinite(n.load) ? n.load.toFixed(2) : '—'),
      el('td', 'mono', n.version ?? ''),
      el('td', { className: 'time', title: formatTime(n.last_beat, { seconds: true }) }, agoText(n.last_beat, now)),
      el('td', 'time', formatTime(n.started_at, { seconds: true })),
    );
  }
}
