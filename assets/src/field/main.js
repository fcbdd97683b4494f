// Gridwatch 网格员: the field app for grid members, at /field/. Phone first,
// installable (manifest.webmanifest, sw.js), and usable on a poor signal or
// none: reads fall back to the service worker's cache, and every change goes
// through the outbox (IndexedDB) with its idempotency key.
//
// Screens (the URL's hash): #tasks (the first screen, with the big report
// button), #task-<id>, #report, #grid, #patrol, #visits (households of my
// grids, for members who record home visits), #household-<id>, #myvisits,
// #queue (what is still to be sent), #account (sign out). The bottom tab bar
// reaches the main ones.
//
// Whose data: the phone keeps one member's queue (outbox items and the
// patrol record their user id). After any sign-in the member is compared
// with the queue's: someone else is offered to sign in as that member to
// send it, or to discard it (IndexedDB and that member's caches) and carry
// on. Only a device session (signed in here, with this phone's name) is
// used: a dashboard session in the same browser asks to sign in here. The
// households and visits the page keeps (IndexedDB's cache) name their member
// too, and go with a change of member or a sign-out.
//
// For tests and debugging: window.gridwatchField = {outbox, tasks, patrol, grids, visits};
// body data attributes: auth (pending | login | checking | switch | ok), tab, online,
// tasks-loaded (how many) and tasks-from (network | cache | error), queue
// (items queued), sw (controlled once the service worker runs the page).

import 'maplibre-gl/dist/maplibre-gl.css';
import './style.css';

import { ApiError, currentSession, describe, logout, onUnauthenticated, session } from '../api.js';
import { el, formatTime, gridsText, roleLabel } from '../dom.js';
import { LiveFeed } from '../live.js';
import { GridView } from './grid.js';
import { MyGrids } from './grids.js';
import { clearAll, getAll, kvGet, OWNER_KEY, run } from './idb.js';
import { Outbox } from './outbox.js';
import { Patrol } from './patrol.js';
import { Report } from './report.js';
import { SIGNED_IN_KEY, SignIn } from './signin.js';
import { getFresh, holdReads, releaseReads } from './net.js';
import { Tasks } from './tasks.js';
import { bytes, toast } from './ui.js';
import { VISIT_SCREENS, Visits } from './visits.js';

const MAIN_TABS = ['tasks', 'report', 'grid', 'patrol', 'visits'];
const PATROL_KEY = 'patrol';

const outbox = new Outbox();
const grids = new MyGrids();
const signIn = new SignIn();
// A session that ended mid-way: sign in again; the request that found it
// ended goes again only once the member is the queue's own (signInHere).
onUnauthenticated((opts) => signInHere({ expired: !!opts?.expired, previous: opts?.previous ?? null, midRun: true }));

let current = '';
const go = (route) => {
  if (location.hash === `#${route}`) show(route);
  else location.hash = route;
};
const tasks = new Tasks({ outbox, go, grids });
const report = new Report({ outbox, grids, go });
const gridView = new GridView({ grids, go });
const patrol = new Patrol({ outbox });
const visits = new Visits({ outbox, go });
window.gridwatchField = { outbox, tasks, patrol, grids, visits };

// ---- screens -----------------------------------------------------------------------------

function show(route) {
  if (document.body.dataset.auth !== 'ok') return; // boot shows the route once signed in
  const [name, arg] = route.split('-');
  visits.applyRole();
  // The visits' screens are there only for members who record visits.
  const allowed = !VISIT_SCREENS.includes(name) || visits.allowed();
  const view = allowed && document.querySelector(`#view-${name}`) ? name : 'tasks';
  if (current === 'report' && view !== 'report') report.leave();
  if (current === 'grid' && view !== 'grid') gridView.leave();
  if (current === 'task' && view !== 'task') tasks.closeCard();
  if (VISIT_SCREENS.includes(current) && current !== view) visits.leave(current);
  for (const v of document.querySelectorAll('.view')) v.hidden = v.dataset.view !== view;
  const tab = MAIN_TABS.includes(view) ? view : view === 'task' ? 'tasks' : VISIT_SCREENS.includes(view) ? 'visits' : '';
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
  else if (VISIT_SCREENS.includes(view)) visits.enter(view, arg);
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
  if (document.body.dataset.auth === 'ok') {
    tasks.refresh();
    visits.refresh();
  }
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

outbox.addEventListener('dropped', (ev) => {
  const { count } = ev.detail;
  toast(`已丢弃 ${count} 个巡查结束后的轨迹点 · ${count} patrol point(s) dated after their patrol ended were dropped: the server keeps none after the end`, { kind: 'warn', ms: 10000 });
});

outbox.addEventListener('dismissed', () => tasks.refresh());

// The server takes a field report only from a device session (this phone's
// own sign-in): sign in here, then the queue goes on.
let deviceSignIn = null;
outbox.addEventListener('needs-device', () => {
  deviceSignIn ??= signInHere({ previous: session.user, note: DEVICE_NOTE, midRun: true })
    .catch((err) => toast(`无法登录 · ${describe(err)}`, { kind: 'warn' }))
    .finally(() => {
      deviceSignIn = null;
    });
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
    ...row('手机存储 Storage on this phone', storageText()),
    ...row('版本 App version', appVersion || '—'),
  );
}

// storageKept: whether the browser keeps this app's storage (the queue)
// when space runs low (navigator.storage.persist); null until asked.
let storageKept = null;

function storageText() {
  if (storageKept === null) return '—';
  return storageKept ? '已保留 · kept: the browser will not clear the queue' : '未保留 · not guaranteed: the browser may clear it when space runs low';
}

async function askPersist() {
  try {
    storageKept = !!((await navigator.storage?.persisted?.()) || (await navigator.storage?.persist?.()));
  } catch {
    storageKept = false;
  }
  document.body.dataset.storage = storageKept ? 'persistent' : 'best-effort';
  if (current === 'account') renderAccount();
}

// appVersion is the shell version the service worker runs (it says so when asked).
let appVersion = '';
navigator.serviceWorker?.addEventListener('message', (ev) => {
  if (ev.data?.type === 'version') {
    appVersion = String(ev.data.version);
    if (current === 'account') renderAccount();
  } else if (ev.data?.type === 'updated' && document.body.dataset.auth === 'ok') {
    // A list was answered from the cache (a slow network) and the network's answer has arrived since.
    if (String(ev.data.path).startsWith('/api/v1/incidents')) refreshSoon();
  }
});

// Signing out ends the session on the server first: offline it cannot, and
// the phone would stay signed in (the cookie lives on), so it is refused.
const OFFLINE_SIGN_OUT = '离线时无法退出：需要网络让服务器结束本机的登录。· Cannot sign out offline: the server has to end this phone\'s session. Try again with a network.';

document.querySelector('#logout-btn').addEventListener('click', async (ev) => {
  const btn = ev.currentTarget;
  if (navigator.onLine === false) {
    toast(OFFLINE_SIGN_OUT, { kind: 'warn', ms: 10000, data: { signOut: 'offline' } });
    return;
  }
  const n = outbox.count;
  if (n > 0 && !confirm(`还有 ${n} 项未发送，退出将删除它们。· ${n} item(s) have not been sent and will be deleted. Sign out?`)) return;
  btn.disabled = true;
  try {
    await logout();
  } catch (err) {
    // A 401: the session had ended already. Anything else: still signed in.
    if (!(err instanceof ApiError && err.status === 401)) {
      btn.disabled = false;
      toast(err instanceof ApiError && err.code === 'network' ? OFFLINE_SIGN_OUT : `无法退出 · Cannot sign out: ${describe(err)}`, { kind: 'warn', ms: 10000, data: { signOut: 'failed' } });
      return;
    }
  }
  await forgetData();
  signIn.forgetUser();
  try {
    localStorage.removeItem(SIGNED_IN_KEY);
  } catch {
    // nothing to forget
  }
  location.hash = '';
  location.reload();
});

// forgetData drops what this phone kept of the signed-in member: the queue,
// the patrol, and every member's saved answers and photos (the service
// worker purges its caches itself, so a read still under way cannot write
// them back).
async function forgetData() {
  await swSend({ type: 'logout' });
  await clearAll().catch(() => {});
  await dropUserCaches('');
}

// dropUserCaches deletes the per-member caches (of everyone but keep), and
// the shared caches of the first version, which held members' answers.
async function dropUserCaches(keep) {
  if (!('caches' in window)) return;
  for (const name of await caches.keys().catch(() => [])) {
    const m = /^gw-field-u([^-]+)-/.exec(name);
    if ((m && m[1] !== String(keep)) || /^gw-field-(api|map|snap)-v1$/.test(name)) await caches.delete(name).catch(() => {});
  }
}

// swSend posts msg to the service worker running the app and resolves its
// answer (null without one, or after a few seconds).
async function swSend(msg) {
  if (!('serviceWorker' in navigator)) return null;
  const reg = await navigator.serviceWorker.getRegistration().catch(() => null);
  const target = navigator.serviceWorker.controller ?? reg?.active;
  if (!target) return null;
  return new Promise((resolve) => {
    const ch = new MessageChannel();
    const timer = setTimeout(() => resolve(null), 3000);
    ch.port1.onmessage = (ev) => {
      clearTimeout(timer);
      resolve(ev.data);
    };
    target.postMessage(msg, [ch.port2]);
  });
}

// ---- whose data: signing in -----------------------------------------------------------------

const DASHBOARD_NOTE = '请在本机登录：指挥中心的登录不用于外勤应用。· Sign in on this phone: the dashboard\'s sign-in is not used by the field app.';
const DEVICE_NOTE = '上报需要在本机登录后发送。· Reports are sent from this phone\'s own sign-in: sign in here to send them.';

/**
 * signInHere asks the member to sign in (unless me, a session already
 * there, is given) and resolves with /me once the phone's data is theirs.
 * Someone else, while the phone holds another member's queue, is offered to
 * sign in as that member to send it, or to discard it (then the page
 * reloads). midRun: the page was in use; a change of member reloads it.
 * Reads wait meanwhile (net.js), and the outbox sends nothing not the
 * session's own.
 */
async function signInHere({ me = null, midRun = false, ...opts } = {}) {
  holdReads();
  try {
    for (;;) {
      if (!me) me = await signIn.prompt(opts);
      const verdict = await settleOwner(me);
      if (verdict.ok) {
        if (verdict.changed && midRun) return reloadNow();
        document.body.dataset.auth = 'ok';
        document.body.dataset.user = me.username;
        outbox.resume();
        return me;
      }
      const choice = await askSwitch(verdict, me);
      if (choice === 'discard') {
        await discardAll(me);
        return reloadNow();
      }
      // Sign in as the queue's member: this session ends first.
      await logout().catch(() => {});
      const who = verdict.owner.username;
      opts = { previous: who ? { username: who } : null, note: `请以 ${who || '原用户'} 登录以发送本机的 ${verdict.count} 项。· Sign in as ${who || 'the member who queued them'} to send the ${verdict.count} item(s) queued on this phone.` };
      me = null;
    }
  } finally {
    releaseReads();
  }
}

function reloadNow() {
  location.reload();
  return new Promise(() => {}); // the page goes
}

/**
 * settleOwner compares me with the member whose data the phone keeps. The
 * same member (or nothing queued by anyone else): the phone's data becomes
 * theirs — {ok: true, changed} (changed: another member's saved answers were
 * dropped). Otherwise {ok: false, owner: {id, username}, count, patrol}.
 * Rows queued before owners were recorded are the phone's one member's.
 */
async function settleOwner(me) {
  const owner = await kvGet(OWNER_KEY);
  const items = await getAll('outbox');
  const patrolState = await kvGet(PATROL_KEY);
  const fallback = owner?.id ?? me.id;
  const theirs = items.filter((it) => (it.owner ?? fallback) !== me.id);
  const patrolTheirs = !!patrolState && (patrolState.owner ?? fallback) !== me.id;
  if (theirs.length || patrolTheirs) {
    const id = theirs[0]?.owner ?? patrolState?.owner ?? owner?.id;
    const username = theirs.find((it) => it.ownerName)?.ownerName ?? (owner?.id === id ? owner.username : '') ?? '';
    return { ok: false, owner: { id, username }, count: theirs.length, patrol: patrolTheirs };
  }
  const changed = !!owner && owner.id !== me.id;
  await run(['outbox', 'kv', 'ids', 'cache'], 'readwrite', (s) => {
    for (const it of items) if (it.owner === undefined) s.outbox.put({ ...it, owner: me.id, ownerName: me.username });
    if (patrolState && patrolState.owner === undefined) s.kv.put({ k: PATROL_KEY, v: { ...patrolState, owner: me.id } });
    if (changed) {
      s.ids.clear();
      s.cache.clear(); // the last member's households and visits
    }
    s.kv.put({ k: OWNER_KEY, v: { id: me.id, username: me.username } });
  });
  outbox.setOwner(me);
  await swSend({ type: 'user', id: me.id });
  await dropUserCaches(me.id);
  return { ok: true, changed };
}

// askSwitch shows the choice: sign in as the queue's member, or discard
// their items (confirmed) and carry on as me. It resolves 'owner' or 'discard'.
let switching = null;
function askSwitch(verdict, me) {
  switching ??= new Promise((resolve) => {
    const box = document.querySelector('#switch');
    const who = verdict.owner.username || '原用户 the previous member';
    const what = `${verdict.count} 项${verdict.patrol ? '及进行中的巡查' : ''} · ${verdict.count} item(s)${verdict.patrol ? ' and a patrol under way' : ''}`;
    document.querySelector('#switch-text').textContent =
      `本机还有 ${who} 未发送的 ${what}。它们不会以 ${me.username} 的名义发送。· This phone holds ${what} of ${who}, not sent yet. They are not sent as ${me.username}.`;
    const asOwner = document.querySelector('#switch-owner');
    const discard = document.querySelector('#switch-discard');
    asOwner.textContent = `以 ${who} 登录并发送 · Sign in as ${who} to send them`;
    discard.textContent = `放弃并以 ${me.username} 继续 · Discard them and continue as ${me.username}`;
    const done = (choice) => {
      asOwner.onclick = null;
      discard.onclick = null;
      box.hidden = true;
      switching = null;
      resolve(choice);
    };
    asOwner.onclick = () => done('owner');
    discard.onclick = () => {
      if (confirm(`删除 ${who} 未发送的 ${what}？此操作无法撤销。· Delete ${who}'s unsent ${what} for good?`)) done('discard');
    };
    box.hidden = false;
    document.body.dataset.auth = 'switch';
    asOwner.focus();
  });
  return switching;
}

// discardAll drops the previous member's queue, patrol and saved answers:
// the phone becomes me's.
async function discardAll(me) {
  await clearAll();
  await run('kv', 'readwrite', (s) => s.kv.put({ k: OWNER_KEY, v: { id: me.id, username: me.username } }));
  await swSend({ type: 'user', id: me.id });
  await dropUserCaches(me.id);
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

// A new version of the app installs beside the running one and waits (it
// would break a page running the old one): "Update available" lets it take
// over, then reloads the page.
function registerWorker() {
  if (!('serviceWorker' in navigator)) return;
  const sw = navigator.serviceWorker;
  let controlled = !!sw.controller;
  let updating = false;
  if (controlled) document.body.dataset.sw = 'controlled';
  sw.addEventListener('controllerchange', () => {
    document.body.dataset.sw = 'controlled';
    if (updating) {
      location.reload();
    } else if (controlled) {
      // Another window of the app took the update.
      toast('已更新 · The app was updated', { kind: 'new', ms: 0, action: { label: '重新加载 Reload', run: () => location.reload() } });
    } else {
      controlled = true; // the first version: it runs this page from now on
      warmCache();
    }
  });
  const offer = (worker) => {
    toast('有新版本 · Update available', {
      kind: 'new',
      ms: 0,
      data: { update: 'available' },
      action: {
        label: '更新 Update',
        run: () => {
          updating = true;
          worker.postMessage({ type: 'skipWaiting' });
        },
      },
    });
  };
  sw.register('sw.js', { scope: './' })
    .then((reg) => {
      if (reg.waiting && sw.controller) offer(reg.waiting);
      reg.addEventListener('updatefound', () => {
        const w = reg.installing;
        w?.addEventListener('statechange', () => {
          if (w.state === 'installed' && sw.controller) offer(w);
        });
      });
    })
    .catch((err) => console.warn('service worker:', err));
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
  if (session.user) await swSend({ type: 'user', id: session.user.id });
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
  if (me && !me.session?.device) {
    // The dashboard's session (the same browser's cookie), or a token: not
    // this phone's own sign-in, which field reports need. Sign in here.
    prefetched = null;
    me = await signInHere({ previous: me, note: DASHBOARD_NOTE });
  } else if (!me) {
    prefetched = null; // read without a session: a 401
    me = await signInHere({});
  } else {
    const settled = await signInHere({ me });
    if (settled !== me) prefetched = null; // someone else's session was replaced
    me = settled;
  }
  outbox.start().catch((err) => toast(`无法打开手机存储 · Cannot open this phone's storage: ${err.message}`, { kind: 'warn', ms: 0 }));
  show(location.hash.slice(1) || 'tasks');
  askPersist();
  await tasks.refresh(prefetched);
  // The households of my grids are read (and kept) once the tasks are shown, for use offline later.
  visits.preload();
  patrol.resume().catch((err) => console.warn('patrol:', err));
  live.start();
  registerWorker();
}

boot().catch((err) => {
  document.body.dataset.auth = 'error';
  toast(`启动失败 · Cannot start: ${describe(err)}`, { kind: 'warn', ms: 0 });
});
