// Gridwatch 网格员: the field app for grid members, at /field/. Phone first,
// installable (manifest.webmanifest, sw.js), and usable on a poor signal or
// none: reads fall back to the service worker's cache, and every change goes
// through the outbox (IndexedDB) with its idempotency key.
//
// Screens (the URL's hash): #tasks (the first screen, with the big report
// button), #task-<id>, #report, #grid, #patrol, #queue (what is still to be
// sent), #account (sign out). The bottom tab bar reaches the four main ones.
//
// For tests and debugging: window.gridwatchField = {outbox, tasks, patrol, grids};
// body data attributes: auth (pending | login | ok), tab, online,
// tasks-loaded (how many) and tasks-from (network | cache | error), queue
// (items queued), sw (controlled once the service worker runs the page).

import 'maplibre-gl/dist/maplibre-gl.css';
import './style.css';

import { ApiError, currentSession, describe, logout, onUnauthenticated, session } from '../api.js';
import { el, formatTime, gridsText, roleLabel } from '../dom.js';
import { LiveFeed } from '../live.js';
import { GridView } from './grid.js';
import { MyGrids } from './grids.js';
import { clearAll } from './idb.js';
import { Outbox } from './outbox.js';
import { Patrol } from './patrol.js';
import { Report } from './report.js';
import { SIGNED_IN_KEY, SignIn } from './signin.js';
import { getFresh } from './net.js';
import { Tasks } from './tasks.js';
import { bytes, toast } from './ui.js';

const MAIN_TABS = ['tasks', 'report', 'grid', 'patrol'];

const outbox = new Outbox();
const grids = new MyGrids();
const signIn = new SignIn();
onUnauthenticated((opts) => signIn.prompt(opts));

let current = '';
const go = (route) => {
  if (location.hash === `#${route}`) show(route);
  else location.hash = route;
};
const tasks = new Tasks({ outbox, go, grids });
const report = new Report({ outbox, grids, go });
const gridView = new GridView({ grids, go });
const patrol = new Patrol({ outbox });
window.gridwatchField = { outbox, tasks, patrol, grids };

// ---- screens -----------------------------------------------------------------------------

function show(route) {
  if (document.body.dataset.auth !== 'ok') return; // boot shows the route once signed in
  const [name, arg] = route.split('-');
  const view = document.querySelector(`#view-${name}`) ? name : 'tasks';
  if (current === 'report' && view !== 'report') report.leave();
  if (current === 'grid' && view !== 'grid') gridView.leave();
  if (current === 'task' && view !== 'task') tasks.closeCard();
  for (const v of document.querySelectorAll('.view')) v.hidden = v.dataset.view !== view;
  const tab = MAIN_TABS.includes(view) ? view : view === 'task' ? 'tasks' : '';
  for (const b of document.querySelectorAll('.tab')) {
    if (b.dataset.tab === tab) b.setAttribute('aria-current', 'page');
    else b.removeAttribute('aria-current');
  }
  document.body.dataset.tab = view;
  current = view;
  window.scrollTo(0, 0);
  if (view === 'report') report.enter();
  else if (view === 'grid') gridView.enter();
  else if (view === 'task') tasks.openCard(Number(arg));
  else if (view === 'queue') renderQueue();
  else if (view === 'account') {
    renderAccount();
    navigator.serviceWorker?.controller?.postMessage({ type: 'version' });
  }
}

for (const b of document.querySelectorAll('.tab')) b.addEventListener('click', () => go(b.dataset.tab));
for (const b of document.querySelectorAll('[data-go]')) b.addEventListener('click', () => go(b.dataset.go));
document.querySelector('#report-big').addEventListener('click', () => go('report'));
document.querySelector('#queue-btn').addEventListener('click', () => go('queue'));
document.querySelector('#me-btn').addEventListener('click', () => go('account'));
window.addEventListener('hashchange', () => show(location.hash.slice(1) || 'tasks'));

// ---- network state, the queue counter ----------------------------------------------------

function netState() {
  const online = navigator.onLine;
  document.body.dataset.online = String(online);
  document.querySelector('#net').textContent = online ? '在线 online' : '离线 offline';
}
window.addEventListener('online', () => {
  netState();
  tasks.refresh();
});
window.addEventListener('offline', netState);
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && document.body.dataset.auth === 'ok') tasks.refresh();
});

function renderCounter() {
  const n = outbox.count;
  const btn = document.querySelector('#queue-btn');
  btn.dataset.count = String(n);
  btn.dataset.problem = String(outbox.items.some((it) => it.state !== 'pending'));
  document.querySelector('#queue-count').textContent = String(n);
  btn.setAttribute('aria-label', `待发送 ${n} queued`);
  document.body.dataset.queue = String(n);
  if (current === 'queue') renderQueue();
}
outbox.addEventListener('change', renderCounter);
outbox.addEventListener('progress', (ev) => {
  const bar = document.querySelector(`#queue-list [data-seq="${ev.detail.seq}"] .progress > i`);
  if (bar) bar.style.width = `${Math.round((100 * ev.detail.sent) / ev.detail.total)}%`;
});

const STATE_TEXT = { pending: '待发送 queued', sending: '发送中 sending', failed: '被拒绝 refused', conflict: '已被他人处理 moved on' };

function renderQueue() {
  const ul = document.querySelector('#queue-list');
  document.querySelector('#queue-empty').hidden = outbox.count > 0;
  const held = new Set(); // groups with a refused or conflicting item: what follows it waits
  ul.replaceChildren(
    ...outbox.items.map((it) => {
      const state = outbox.sending === it.seq ? 'sending' : it.state;
      const p = outbox.progress.get(it.seq);
      const info = [state === 'pending' && held.has(it.group) ? '等待上一项 · waiting for the item above' : STATE_TEXT[state] ?? state];
      if (it.state !== 'pending') held.add(it.group);
      if (it.kind === 'upload') info.push(bytes(it.total));
      if (state === 'pending' && it.attempts > 0) info.push(`第 ${it.attempts + 1} 次 · attempt ${it.attempts + 1}`);
      const row = el(
        'li',
        { className: 'row-item', dataset: { seq: String(it.seq), state, kind: it.kind } },
        el(
          'span',
          'grow',
          it.label,
          el('small', null, info.join(' · ')),
          it.error && state !== 'sending' ? el('small', 'err', it.state === 'conflict' && it.error.details?.last_actor ? `moved on by ${it.error.details.last_actor} · ${it.error.message}` : it.error.message) : null,
          it.kind === 'upload' ? el('span', 'progress', el('i')) : null,
        ),
      );
      if (p) row.querySelector('.progress > i').style.width = `${Math.round((100 * p.sent) / p.total)}%`;
      if (it.state === 'failed' || it.state === 'conflict') {
        const retry = el('button', { type: 'button', className: 'btn btn-small', dataset: { act: 'retry' } }, '重试 Retry');
        const dismiss = el('button', { type: 'button', className: 'btn btn-small btn-danger', dataset: { act: 'dismiss' } }, '放弃 Dismiss');
        retry.addEventListener('click', () => outbox.retry(it.seq).catch((err) => toast(`无法重试 · ${describe(err)}`, { kind: 'warn' })));
        dismiss.addEventListener('click', () => outbox.dismiss(it.seq).then(() => tasks.refresh()));
        row.append(el('span', 'row-actions', retry, dismiss));
      }
      return row;
    }),
  );
}

outbox.addEventListener('sent', (ev) => {
  const { item, result } = ev.detail;
  if (item?.kind === 'patrol-start' && result?.closed_patrol_id) {
    toast(`上次未结束的巡查已结束 · Your patrol left open (#${result.closed_patrol_id}) was closed at its last point`, { kind: 'ok', ms: 8000 });
  }
});

outbox.addEventListener('problem', (ev) => {
  const it = ev.detail.item;
  if (it?.kind === 'transition') {
    const d = it.error?.details ?? {};
    toast(it.state === 'conflict' ? `已被他人处理 · moved on${d.last_actor ? ` by ${d.last_actor}` : ''}: ${it.label}` : `被拒绝 · Refused: ${it.label} — ${it.error?.message ?? ''}`, {
      kind: 'warn',
      ms: 12000,
      action: { label: '查看 View', run: () => go(`task-${it.incident}`) },
    });
  } else if (it && it.kind !== 'report') {
    toast(`被拒绝 · Refused: ${it.label} — ${it.error?.message ?? ''}`, { kind: 'warn', ms: 12000, action: { label: '查看 View', run: () => go('queue') } });
  }
});

// ---- account -------------------------------------------------------------------------------

function renderAccount() {
  const me = session.user;
  const dl = document.querySelector('#account-info');
  if (!me) return;
  const row = (k, v) => [el('dt', null, k), el('dd', null, v)];
  dl.replaceChildren(
    ...row('用户 User', `${me.display_name || me.username} (${me.username})`),
    ...row('角色 Role', roleLabel(me.role)),
    ...row('网格 Grids', Array.isArray(me.grids) ? me.grids.map((g) => g.name).join('、') || '—' : gridsText(me.grids)),
    ...row('本机 Device', me.session?.device || '—'),
    ...row('登录有效至 Signed in until', me.session?.expires_at ? formatTime(me.session.expires_at) : '—'),
    ...row('待发送 Queued', String(outbox.count)),
    ...row('版本 App version', appVersion || '—'),
  );
}

// appVersion is the shell version the service worker runs (it says so when asked).
let appVersion = '';
navigator.serviceWorker?.addEventListener('message', (ev) => {
  if (ev.data?.type === 'version') {
    appVersion = String(ev.data.version);
    if (current === 'account') renderAccount();
  }
});

document.querySelector('#logout-btn').addEventListener('click', async (ev) => {
  const n = outbox.count;
  if (n > 0 && !confirm(`还有 ${n} 项未发送，退出将删除它们。· ${n} item(s) have not been sent and will be deleted. Sign out?`)) return;
  ev.currentTarget.disabled = true;
  try {
    await logout();
  } catch {
    // signed out or not, this phone forgets the session's data below
  }
  await forgetData();
  try {
    localStorage.removeItem(SIGNED_IN_KEY);
  } catch {
    // nothing to forget
  }
  location.hash = '';
  location.reload();
});

// forgetData drops what this phone kept of the signed-in member: the queue, the saved answers.
async function forgetData() {
  await clearAll().catch(() => {});
  if ('caches' in window) {
    for (const name of await caches.keys()) if (name.startsWith('gw-field-api') || name.startsWith('gw-field-snap')) await caches.delete(name);
  }
}

// ---- live updates --------------------------------------------------------------------------

let refreshTimer = 0;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => tasks.refresh(), 300);
}

const live = new LiveFeed({
  onEvent: (type) => {
    if (type.startsWith('incident.') || type === 'reset') refreshSoon();
  },
  poll: () => tasks.refresh(),
  onMode: (mode) => {
    document.body.dataset.live = mode;
  },
  pollMs: 30000,
});

// ---- the service worker --------------------------------------------------------------------

function registerWorker() {
  if (!('serviceWorker' in navigator)) return;
  const hadController = !!navigator.serviceWorker.controller;
  if (hadController) document.body.dataset.sw = 'controlled';
  navigator.serviceWorker.addEventListener('controllerchange', () => {
    document.body.dataset.sw = 'controlled';
    // A new version took over a page that an older one was running.
    if (hadController) toast('有新版本 · Update available', { kind: 'new', ms: 0, action: { label: '重新加载 Reload', run: () => location.reload() } });
    else warmCache();
  });
  navigator.serviceWorker.register('sw.js', { scope: './' }).catch((err) => console.warn('service worker:', err));
}

// wasSignedIn: this phone had a session when the app last ran (signin.js notes it).
function wasSignedIn() {
  try {
    return localStorage.getItem(SIGNED_IN_KEY) === '1';
  } catch {
    return false;
  }
}

// warmCache reads, once the service worker runs the page, what the app needs
// offline, so that its cache holds it: who I am, my tasks, my grids, the
// categories and the server's meta.
async function warmCache() {
  const reads = ['/api/v1/me', '/api/v1/meta', '/api/v1/categories'].map((p) => getFresh(p).catch(() => null));
  reads.push(tasks.refresh(), grids.load({ force: true }).catch(() => null));
  await Promise.all(reads);
  document.body.dataset.sw = 'warm';
}

// ---- start -----------------------------------------------------------------------------------

async function boot() {
  netState();
  // On a phone signed in before, the task list is read beside "who am I":
  // one round trip less before the first screen is usable on a slow network.
  let prefetched = wasSignedIn() ? Tasks.prefetch() : null;
  let me = null;
  try {
    me = await currentSession();
  } catch (err) {
    // No network and nothing saved: signing in needs the server once.
    if (!(err instanceof ApiError)) throw err;
  }
  if (!me) {
    prefetched = null; // read without a session: a 401
    me = await signIn.prompt({});
  }
  document.body.dataset.auth = 'ok';
  document.body.dataset.user = me.username;
  outbox.start().catch((err) => toast(`无法打开手机存储 · Cannot open this phone's storage: ${err.message}`, { kind: 'warn', ms: 0 }));
  show(location.hash.slice(1) || 'tasks');
  await tasks.refresh(prefetched);
  patrol.resume().catch((err) => console.warn('patrol:', err));
  live.start();
  registerWorker();
}

boot().catch((err) => {
  document.body.dataset.auth = 'error';
  toast(`启动失败 · Cannot start: ${describe(err)}`, { kind: 'warn', ms: 0 });
});
