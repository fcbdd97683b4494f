// 走访 Visits: the households of the member's grids, and the home visits
// the member records there (issue 19). For members with visits.record only
// (grid leaders, admins); the screens are #visits (the households — those
// with someone on the care list, the longest unvisited, first — searchable
// by building, unit, room or code, with their care flags and last visit),
// #household-<id> (the household, its residents masked, its visits, and
// "Record a visit") and #myvisits (the visits I recorded, and those still to
// be sent).
//
// Offline: the lists are kept by the page in IndexedDB (idb.js cache), each
// record naming its member, and shown at once from there; the network's
// answer replaces them when it comes. They are not the service worker's to
// keep: what is kept is cut down here first (keepHousehold, keepResident) —
// residents' masked names, relation, age and care flags, and never an ID
// number, phone or birth date, even masked: the app shows none and asks for
// no unmasking. Another member signing in on the phone, or signing out,
// drops them (main.js).
//
// A visit goes through the outbox (kind "visit", one group per household)
// with its client-made Idempotency-Key, and shows on the household at once
// as queued; once the server has it (201, or 200 for a replay after a lost
// answer: still one visit) it shows as sent.

import { can, session } from '../api.js';
import { el, formatTime } from '../dom.js';
import { cacheGet, cachePut, cacheUpdate } from './idb.js';
import { getFresh } from './net.js';
import { hhmm, toast } from './ui.js';

/** VISIT_SCREENS are the routes of this part of the app. */
export const VISIT_SCREENS = ['visits', 'household', 'myvisits'];
/** PERMISSION is what a member needs to see them. */
export const PERMISSION = 'visits.record';

// The households of one read, at most (a page of the API is 1000 at most).
const PAGE = 1000;
const MAX_HOUSEHOLDS = 5000;
// A list kept more recently than this is not read again at start-up.
const PRELOAD_FRESH_MS = 10 * 60 * 1000;
// Rows drawn at once: a search narrows the rest.
const MAX_ROWS = 200;
// A visit dated later than now by more than this is refused here (a slip of the finger).
const FUTURE_SLACK_MS = 5 * 60 * 1000;
const NOTE_MAX = 2000;

const LIST_KEY = 'households';
const FLAGS_KEY = 'care-flags';
const MINE_KEY = 'visits:mine';
const detailKey = (id) => `household:${id}`;

// The built-in care flags: their names until GET /api/v1/care-flags has
// answered once (the server's list is configurable: it names them after
// that), and in English for the filter.
const FLAG_NAMES = {
  elderly_alone: ['独居老人', 'Elderly alone'],
  disabled: ['残疾人', 'Disabled'],
  low_income: ['低保户', 'Low income'],
  left_behind_minor: ['留守儿童', 'Left-behind minor'],
  community_correction: ['社区矫正人员', 'Community correction'],
  veteran: ['退役军人', 'Veteran'],
  key_youth: ['重点青少年', 'Youth at risk'],
};

const GENDER = { male: '男 M', female: '女 F' };

const STATE_TEXT = { pending: '待发送 queued', sending: '发送中 sending', failed: '被拒绝 refused', sent: '已发送 sent' };

// ---- what the phone keeps ------------------------------------------------------------------

const ref = (o, ...keys) => (o && typeof o === 'object' ? Object.fromEntries(keys.map((k) => [k, o[k] ?? null])) : null);

/** dueRank orders households for a visit: [0 with a care flag else 1, the last visit's time (0: never)]. */
function dueRank(h) {
  const cared = Object.values(h.care ?? {}).some((n) => Number(n) > 0);
  return [cared ? 0 : 1, cared && h.last_visit_at ? Date.parse(h.last_visit_at) : 0];
}

/** keepHousehold is what the phone keeps of a household: where it is, how many live there, their care flags' counts. */
export function keepHousehold(h) {
  return {
    id: Number(h.id),
    code: String(h.code ?? ''),
    building: ref(h.building, 'id', 'code', 'name', 'address'),
    unit: h.unit ?? '',
    room: h.room ?? '',
    grid: ref(h.grid, 'id', 'code', 'name'),
    residents: Number(h.residents) || 0,
    care: h.care && typeof h.care === 'object' ? h.care : {},
    last_visit_at: h.last_visit_at ?? null,
    // Whether a null last_visit_at means "never" (known), or only "not
    // since" (the visits read did not reach back that far; see fetchList).
    last_known: 'last_visit_at' in h,
    since: null,
  };
}

/** keepResident is what the phone keeps of a resident: the masked name, no ID number, phone or birth date. */
export function keepResident(r) {
  return { id: Number(r.id), name: String(r.name ?? ''), gender: r.gender ?? '', relation: r.relation ?? '', age: Number.isFinite(r.age) ? r.age : null, care: Array.isArray(r.care) ? r.care : [] };
}

/** keepVisit is a visit as the phone keeps it. */
export function keepVisit(v) {
  return { id: Number(v.id), household_id: Number(v.household_id), user: ref(v.user, 'id', 'username', 'display_name'), visited_at: v.visited_at, note: String(v.note ?? ''), created_at: v.created_at ?? null };
}

function keepDetail(d) {
  return { ...keepHousehold(d), resident_list: (d.resident_list ?? []).map(keepResident), visits: (d.visits ?? []).map(keepVisit) };
}

// items reads a list answer: {<key>: [...], next} (the API's pages), or an array.
function items(body, key) {
  if (Array.isArray(body)) return body;
  return body?.[key] ?? body?.items ?? [];
}

const nextOf = (body) => body?.next ?? body?.next_cursor ?? null;

const byPlace = new Intl.Collator('zh-CN', { numeric: true });

const later = (a, b) => (!a ? b : !b ? a : Date.parse(a) >= Date.parse(b) ? a : b);

/** place is a household's address on the phone: "1号楼 · 2-301". */
export function place(h) {
  const b = h.building?.name || h.building?.code || '';
  const ur = [h.unit, h.room].filter((x) => x !== '' && x !== null && x !== undefined).join('-');
  return [b, ur].filter(Boolean).join(' · ') || h.code;
}

// localInput is a time as a datetime-local input's value, to the minute.
function localInput(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function dayText(s) {
  return s ? formatTime(s).slice(0, 10) : '';
}

/**
 * Visits is the three screens and what they keep. deps: outbox (visits are
 * queued there), go(route).
 */
export class Visits {
  constructor({ outbox, go }) {
    this.outbox = outbox;
    this.go = go;
    this.list = []; // households of my grids (kept form)
    this.byId = new Map();
    this.flags = new Map(); // care flag code → name
    this.listFrom = ''; // network | cache | error
    this.listAt = null; // when the shown list was kept (from the cache)
    this.loading = null;
    this.listError = null;
    this.openId = 0;
    this.detail = null; // the open household (kept form)
    this.detailAt = null;
    this.mine = null; // my visits (kept form), newest first
    this.mineAt = null;
    this.mineFrom = '';
    this.mineError = null;
    this.screen = '';
    this.form = null;
    this.queuing = false;
    this.sent = new Map(); // outbox key → the visit the server made of it (this session)
    this.latest = new Map(); // household id → the latest visit time seen here

    this.tab = document.querySelector('.tab[data-tab="visits"]');
    this.q = document.querySelector('#hh-q');
    this.care = document.querySelector('#hh-care');
    this.ul = document.querySelector('#hh-list');
    this.note = document.querySelector('#hh-note');
    this.empty = document.querySelector('#hh-empty');
    this.count = document.querySelector('#hh-count');
    this.card = document.querySelector('#hh-card');
    this.mineUl = document.querySelector('#myvisits-list');
    this.mineNote = document.querySelector('#myvisits-note');
    this.mineEmpty = document.querySelector('#myvisits-empty');
    document.querySelector('#myvisits-btn').addEventListener('click', () => this.go('myvisits'));
    this.q.addEventListener('input', () => this.renderList());
    this.care.addEventListener('change', () => this.renderList());

    outbox.addEventListener('change', () => this.rerender());
    outbox.addEventListener('sent', (ev) => {
      const { item, result } = ev.detail;
      if (item?.kind !== 'visit') return;
      this.onSent(item, result).catch((err) => console.warn('visits: sent', err));
    });
  }

  /** allowed: the member records visits (GET /api/v1/auth/me's permissions). */
  allowed() {
    return can(PERMISSION);
  }

  /** applyRole shows the tab to members who record visits, and only to them. */
  applyRole() {
    const on = this.allowed();
    if (this.tab) this.tab.hidden = !on;
    document.body.dataset.visits = on ? 'on' : 'off';
  }

  owner() {
    return session.user?.id ?? null;
  }

  /** queued lists the visits still in the outbox (of household id, or all), oldest first, less those the server has. */
  queued(id = 0) {
    return this.outbox.items.filter((it) => it.kind === 'visit' && (!id || it.household === id) && !this.sent.has(it.key));
  }

  // ---- screens ---------------------------------------------------------------------

  /** enter shows screen (one of VISIT_SCREENS), with arg (a household id). */
  enter(screen, arg) {
    this.screen = screen;
    if (screen === 'visits') {
      this.renderList();
      this.loadList().catch((err) => console.warn('visits: households', err));
    } else if (screen === 'household') {
      if (Number(arg) > 0) this.openHousehold(Number(arg));
      else this.go('visits');
    } else if (screen === 'myvisits') {
      this.renderMine();
      this.loadMine();
      if (!this.list.length) this.loadList().catch((err) => console.warn('visits: households', err));
    }
  }

  leave(screen) {
    if (screen === 'household') {
      this.openId = 0;
      this.detail = null;
      this.form = null;
    }
    if (this.screen === screen) this.screen = '';
  }

  /**
   * preload reads the households (and keeps them) in the background at
   * start-up, so that they are there offline later; a list kept less than
   * PRELOAD_FRESH_MS ago is not read again (opening the screen does).
   */
  preload() {
    if (this.allowed()) this.loadList({ maxAge: PRELOAD_FRESH_MS }).catch(() => {});
  }

  /** refresh reads the open screen's data again (the network is back). */
  refresh() {
    if (!this.allowed()) return;
    this.loadList().catch(() => {});
    if (this.screen === 'household' && this.openId) this.openHousehold(this.openId, { quiet: true });
    if (this.screen === 'myvisits') this.loadMine();
  }

  // rerender draws the open screen again (the outbox changed).
  rerender() {
    if (this.screen === 'visits') this.renderList();
    else if (this.screen === 'household') this.renderVisits();
    else if (this.screen === 'myvisits') this.renderMine();
  }

  // ---- the households ------------------------------------------------------------------

  /**
   * loadList shows the kept list at once, then reads it from the network
   * (one read at a time) unless the kept one is younger than maxAge ms.
   */
  loadList({ maxAge = 0 } = {}) {
    this.loading ??= this.readList(maxAge).finally(() => {
      this.loading = null;
    });
    return this.loading;
  }

  async readList(maxAge) {
    const owner = this.owner();
    if (!owner) return;
    if (!this.list.length) {
      const [kept, flags] = await Promise.all([cacheGet(LIST_KEY, owner), cacheGet(FLAGS_KEY, owner)]);
      if (flags) this.setFlags(flags.body);
      if (kept && this.owner() === owner) {
        this.setList(kept.body);
        this.listFrom = 'cache';
        this.listAt = new Date(kept.at);
        this.markList();
        if (maxAge > 0 && Date.now() - kept.at < maxAge) return;
      }
    }
    try {
      const [list, flags] = await Promise.all([this.fetchList(), getFresh('/api/v1/care-flags').then((r) => r.body, () => null)]);
      if (this.owner() !== owner) return; // someone else signed in meanwhile: not theirs
      if (flags) {
        const kept = items(flags, 'care_flags').map((f) => ({ code: String(f.code), name: String(f.name ?? f.code) }));
        this.setFlags(kept);
        await cachePut(FLAGS_KEY, owner, kept);
      }
      // What this phone has seen of the last visits stays (the server's list may not carry them).
      for (const h of list) h.last_visit_at = later(h.last_visit_at, this.byId.get(h.id)?.last_visit_at ?? null);
      this.setList(list);
      this.listFrom = 'network';
      this.listAt = null;
      this.listError = null;
      await cachePut(LIST_KEY, owner, list);
    } catch (err) {
      if (!this.listFrom || this.listFrom === 'error') this.listFrom = this.list.length ? 'cache' : 'error';
      this.listError = err;
    }
    this.markList();
  }

  // fetchList reads the households of each of my grids (all of them, page by page), or, for a
  // member of every grid (scope null: an admin), the first pages; then their last visits.
  async fetchList() {
    const grids = session.user?.grids;
    const scopes = Array.isArray(grids) ? [...new Set(grids.map((g) => Number(typeof g === 'object' ? g.id : g)).filter((id) => id > 0))] : [0];
    const seen = new Map();
    for (const grid of scopes) {
      let cursor = null;
      do {
        const q = new URLSearchParams({ limit: String(PAGE) });
        if (grid) q.set('grid', String(grid));
        if (cursor) q.set('cursor', String(cursor));
        const { body } = await getFresh(`/api/v1/households?${q}`);
        for (const h of items(body, 'households')) seen.set(Number(h.id), { ...keepHousehold(h), scopeGrid: grid });
        cursor = nextOf(body);
      } while (cursor && seen.size < MAX_HOUSEHOLDS);
    }
    const list = [...seen.values()];
    if (list.some((h) => !h.last_known)) await this.lastVisits(scopes, seen);
    // Those to look in on first: households with someone on the care list,
    // the longest since a visit (never visited before any) at the top; then
    // every other household by place. One collator for the sort:
    // localeCompare with a locale builds one per comparison, slow on a
    // phone over the ~thousands of households of a community.
    const keyed = list.map((h) => [place(h), h, dueRank(h)]);
    keyed.sort(([pa, a, da], [pb, b, db]) => da[0] - db[0] || da[1] - db[1] || byPlace.compare(pa, pb) || byPlace.compare(a.code, b.code));
    return keyed.map(([, h]) => h);
  }

  // lastVisits gives the households (byId) their last visit from the
  // newest visits made in my grids (GET /api/v1/visits?grid=, one page,
  // newest first): the households' list does not carry it. Read to the
  // end, a household not in it was never visited; else it was not visited
  // since the oldest visit read (since).
  async lastVisits(scopes, byId) {
    for (const grid of scopes) {
      const q = new URLSearchParams({ limit: String(PAGE) });
      if (grid) q.set('grid', String(grid));
      const { body } = await getFresh(`/api/v1/visits?${q}`);
      const visits = items(body, 'visits');
      const complete = !nextOf(body);
      let oldest = null;
      for (const v of visits) {
        const h = byId.get(Number(v.household_id));
        if (h) h.last_visit_at = later(h.last_visit_at, v.visited_at);
        if (!oldest || Date.parse(v.visited_at) < Date.parse(oldest)) oldest = v.visited_at;
      }
      // The households read for this grid (scopeGrid: the ?grid= they were read with).
      for (const h of byId.values()) {
        if (h.last_known || (grid && h.scopeGrid !== grid)) continue;
        h.last_known = complete;
        h.since = complete ? null : oldest;
      }
    }
  }

  setList(list) {
    for (const h of list) {
      const seen = this.latest.get(h.id);
      if (seen) h.last_visit_at = later(h.last_visit_at, seen);
    }
    this.list = list;
    this.byId = new Map(list.map((h) => [h.id, h]));
    if (this.screen === 'visits') this.renderList();
    if (this.screen === 'myvisits') this.renderMine();
  }

  setFlags(list) {
    this.flags = new Map((list ?? []).map((f) => [f.code, f.name]));
    const cur = this.care.value;
    const codes = this.flags.size ? [...this.flags.keys()] : Object.keys(FLAG_NAMES);
    this.care.replaceChildren(
      el('option', { value: '' }, '全部住户 All households'),
      el('option', { value: 'any' }, '需关注 Any care flag'),
      ...codes.map((c) => el('option', { value: c }, [this.flagName(c), FLAG_NAMES[c]?.[1]].filter(Boolean).join(' '))),
    );
    this.care.value = [...this.care.options].some((o) => o.value === cur) ? cur : '';
  }

  flagName(code) {
    return this.flags.get(code) ?? FLAG_NAMES[code]?.[0] ?? code;
  }

  markList() {
    document.body.dataset.householdsLoaded = String(this.list.length);
    document.body.dataset.householdsFrom = this.listFrom;
    if (this.screen === 'visits') this.renderList();
  }

  // noteVisit: household id was visited at (a visit queued, sent or read): its last visit moves on.
  noteVisit(id, at) {
    if (!at) return;
    this.latest.set(id, later(this.latest.get(id), at));
    const h = this.byId.get(id);
    if (h) h.last_visit_at = later(h.last_visit_at, at);
    const owner = this.owner();
    if (!owner || !h) return;
    cacheUpdate(LIST_KEY, owner, (list) => {
      const k = list.find((x) => x.id === id);
      if (!k || k.last_visit_at === later(k.last_visit_at, at)) return undefined;
      k.last_visit_at = later(k.last_visit_at, at);
      return list;
    }).catch(() => {});
  }

  // lastVisit of household h: the latest of the server's and of what is queued here.
  lastVisit(h) {
    let at = h.last_visit_at;
    for (const it of this.queued(h.id)) at = later(at, it.body?.visited_at);
    return at;
  }

  // lastText says when household h was last visited: a date, never, or not since a date (unknown before it).
  lastText(h, last) {
    const never = !last && h.last_known !== false;
    let text = '未走访 never visited';
    if (last) text = `上次走访 last visit ${dayText(last)}`;
    else if (h.since) text = `${dayText(h.since)} 以来未走访 · not visited since ${dayText(h.since)}`;
    else if (h.last_known === false) text = '近期未走访 · no recent visit';
    return el('span', { className: 'last-visit', dataset: { at: last ?? '', never: String(never) } }, text);
  }

  matches(h, words, care) {
    if (care === 'any' && !Object.values(h.care).some((n) => n > 0)) return false;
    if (care && care !== 'any' && !(h.care[care] > 0)) return false;
    if (!words.length) return true;
    const hay = [h.code, h.building?.code, h.building?.name, h.building?.address, h.unit, h.room, `${h.unit}-${h.room}`, h.grid?.name].join(' ').toLowerCase();
    return words.every((w) => hay.includes(w));
  }

  renderList() {
    const words = this.q.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    const care = this.care.value;
    const found = this.list.filter((h) => this.matches(h, words, care));
    this.count.textContent = this.list.length ? (found.length === this.list.length ? `${found.length}` : `${found.length}/${this.list.length}`) : '';
    const shown = found.slice(0, MAX_ROWS);
    this.ul.replaceChildren(...shown.map((h) => this.row(h)));
    if (found.length > shown.length) this.ul.append(el('li', 'note', `仅显示前 ${MAX_ROWS} 户，请搜索 · The first ${MAX_ROWS} of ${found.length}: search to narrow`));
    let note = '';
    if (this.listFrom === 'cache' && this.listAt && this.listError) note = `离线：显示 ${hhmm(this.listAt)} 保存的住户 · Offline: the households as saved at ${hhmm(this.listAt)}`;
    else if (this.listFrom === 'error') note = `无法读取住户 · Cannot read the households: ${this.listError?.message ?? ''}`;
    this.note.textContent = note;
    this.note.hidden = !note;
    this.empty.hidden = !this.listFrom || this.listFrom === 'error' || found.length > 0;
    this.empty.textContent = this.list.length ? '没有符合的住户 · No household matches' : '网格内暂无住户 · No households in your grids';
  }

  chips(care) {
    const flags = Object.entries(care ?? {}).filter(([, n]) => n > 0);
    if (!flags.length) return null;
    return el('span', 'chips', ...flags.map(([c, n]) => el('span', { className: 'chip', dataset: { care: c } }, n > 1 ? `${this.flagName(c)} ×${n}` : this.flagName(c))));
  }

  row(h) {
    const queued = this.queued(h.id);
    const last = this.lastVisit(h);
    const failed = queued.some((it) => it.state !== 'pending');
    const b = el(
      'button',
      { type: 'button', className: 'row-item hh', dataset: { householdId: String(h.id), care: String(Object.values(h.care).some((n) => n > 0)) } },
      el(
        'span',
        'grow',
        el('b', 'hh-place', place(h)),
        el('small', null, `户号 ${h.code} · ${h.residents} 人 residents · `, this.lastText(h, last)),
        this.chips(h.care),
      ),
      queued.length ? el('span', `badge ${failed ? 'badge-failed' : 'badge-queued'}`, failed ? '被拒绝 refused' : `待发送 ${queued.length} queued`) : null,
    );
    b.addEventListener('click', () => this.go(`household-${h.id}`));
    return el('li', null, b);
  }

  // ---- one household --------------------------------------------------------------------

  /** openHousehold shows household id: at once from what is kept (or the list), then as the server has it. */
  async openHousehold(id, { quiet = false } = {}) {
    const owner = this.owner();
    const changed = this.openId !== id;
    this.openId = id;
    if (changed) {
      if (!this.flags.size) {
        const flags = await cacheGet(FLAGS_KEY, owner).catch(() => undefined);
        if (flags) this.setFlags(flags.body);
      }
      this.detail = null;
      this.form = null;
      this.card.replaceChildren(el('p', 'note', '读取中 · Loading…'));
      this.card.dataset.householdId = String(id);
      this.card.dataset.from = '';
      const kept = await cacheGet(detailKey(id), owner).catch(() => undefined);
      if (this.openId !== id) return;
      if (kept) {
        this.detail = kept.body;
        this.detailAt = new Date(kept.at);
        this.renderCard('cache');
      } else {
        if (!this.byId.size) await this.loadList().catch(() => {});
        if (this.openId !== id) return;
        const h = this.byId.get(id);
        if (h) {
          this.detail = { ...h, resident_list: null, visits: null };
          this.detailAt = null;
          this.renderCard('list');
        }
      }
    }
    try {
      const { body } = await getFresh(`/api/v1/households/${id}`);
      if (this.openId !== id || this.owner() !== owner) return;
      const d = keepDetail(body);
      for (const v of d.visits) this.noteVisit(id, v.visited_at);
      d.last_visit_at = later(d.last_visit_at, d.visits[0]?.visited_at ?? null);
      await cachePut(detailKey(id), owner, d);
      this.detail = d;
      this.detailAt = null;
      if (!this.form) this.renderCard('network');
      else this.renderVisits();
    } catch (err) {
      if (this.openId !== id) return;
      if (!this.detail) {
        this.card.dataset.from = 'error';
        this.card.replaceChildren(el('p', 'form-error', `无法读取 · Cannot read household ${id}: ${err.message}`));
      } else if (!quiet && this.card.dataset.from !== 'cache') {
        toast('离线，显示手机上保存的信息 · Offline: showing what this phone kept', { kind: 'warn' });
      }
    }
  }

  renderCard(from) {
    const h = this.detail;
    if (!h) return;
    this.card.dataset.from = from;
    const facts = el(
      'dl',
      'facts',
      el('dt', null, '户号 Code'),
      el('dd', { dataset: { field: 'code' } }, h.code),
      el('dt', null, '楼栋 Building'),
      el('dd', null, [h.building?.name, h.building?.code].filter(Boolean).join(' · ') || '—'),
      h.building?.address ? el('dt', null, '地址 Address') : null,
      h.building?.address ? el('dd', null, h.building.address) : null,
      el('dt', null, '单元 Unit'),
      el('dd', null, h.unit || '—'),
      el('dt', null, '房号 Room'),
      el('dd', null, h.room || '—'),
      el('dt', null, '网格 Grid'),
      el('dd', null, h.grid?.name ?? '无 none'),
      el('dt', null, '住户 Residents'),
      el('dd', null, String(h.resident_list?.length ?? h.residents ?? 0)),
    );
    const parts = [
      el('h2', { dataset: { field: 'place' } }, place(h)),
      from === 'cache' && this.detailAt ? el('p', 'note', `离线：${hhmm(this.detailAt)} 保存的信息 · Offline: as saved at ${hhmm(this.detailAt)}`) : null,
      this.chips(h.care),
      facts,
      el('div', { className: 'actions', id: 'visit-actions' }, this.recordButton()),
      el('h3', null, '走访记录 ', el('span', 'en', 'Visits')),
      el('ul', { className: 'rows visits', id: 'hh-visits' }),
      el('h3', null, '住户 ', el('span', 'en', 'Residents')),
      this.residents(h),
    ];
    this.card.replaceChildren(...parts.filter(Boolean));
    this.form = null;
    this.renderVisits();
  }

  residents(h) {
    if (!h.resident_list) return el('p', 'note', '住户名单未保存在手机上，联网后打开一次即可 · The residents are not kept on this phone yet: open the household once with a network');
    if (!h.resident_list.length) return el('p', 'empty', '暂无登记住户 · No residents registered');
    return el(
      'ul',
      { className: 'rows', id: 'hh-residents' },
      ...h.resident_list.map((r) =>
        el(
          'li',
          { className: 'row-item', dataset: { residentId: String(r.id) } },
          el(
            'span',
            'grow',
            el('b', null, r.name || '—'),
            el('small', null, [r.relation, GENDER[r.gender] ?? r.gender, r.age !== null ? `${r.age} 岁 y` : ''].filter(Boolean).join(' · ') || '—'),
            this.chips(Object.fromEntries(r.care.map((c) => [c, 1]))),
          ),
        ),
      ),
    );
  }

  // renderVisits lists the open household's visits: those still to be sent first, then the server's.
  renderVisits() {
    const ul = this.card.querySelector('#hh-visits');
    const h = this.detail;
    if (!ul || !h) return;
    const rows = this.queued(h.id)
      .slice()
      .reverse()
      .map((it) => this.queuedRow(it));
    const seen = new Set();
    const sent = [...this.sent.values()].filter((v) => v.household_id === h.id);
    for (const v of [...sent, ...(h.visits ?? [])].sort((a, b) => Date.parse(b.visited_at) - Date.parse(a.visited_at) || b.id - a.id)) {
      if (seen.has(v.id)) continue;
      seen.add(v.id);
      rows.push(this.visitRow(v, sent.some((s) => s.id === v.id)));
    }
    if (!rows.length) rows.push(el('li', 'empty', h.visits === null ? '走访记录未保存在手机上 · The visits are not kept on this phone yet' : '尚无走访 · No visits yet'));
    ul.replaceChildren(...rows);
  }

  visitRow(v, justSent = false) {
    const who = v.user ? v.user.display_name || v.user.username : '';
    return el(
      'li',
      { className: 'row-item visit', dataset: { state: 'sent', visitId: String(v.id), justSent: String(justSent) } },
      el('span', 'grow', el('b', null, formatTime(v.visited_at)), el('span', 'visit-note', v.note), el('small', null, [who, justSent ? STATE_TEXT.sent : ''].filter(Boolean).join(' · '))),
    );
  }

  queuedRow(it) {
    const state = this.outbox.sending === it.seq ? 'sending' : it.state;
    const row = el(
      'li',
      { className: 'row-item visit', dataset: { state, seq: String(it.seq) } },
      el(
        'span',
        'grow',
        el('b', null, formatTime(it.body?.visited_at)),
        el('span', 'visit-note', it.body?.note ?? ''),
        el('small', null, STATE_TEXT[state] ?? state, it.error && state === 'pending' ? ` — 将重试 · will retry (${it.error.message})` : ''),
        it.state !== 'pending' && it.error ? el('small', 'err', it.error.message) : null,
      ),
    );
    if (it.state !== 'pending') {
      const retry = el('button', { type: 'button', className: 'btn btn-small', dataset: { act: 'retry' } }, '重试 Retry');
      const dismiss = el('button', { type: 'button', className: 'btn btn-small btn-danger', dataset: { act: 'dismiss' } }, '放弃 Dismiss');
      retry.addEventListener('click', () => this.outbox.retry(it.seq).catch((err) => toast(`无法重试 · Cannot retry: ${err.message}`, { kind: 'warn' })));
      dismiss.addEventListener('click', () => this.outbox.dismiss(it.seq));
      row.append(el('span', 'row-actions', retry, dismiss));
    }
    return row;
  }

  // ---- recording a visit -----------------------------------------------------------------

  openForm() {
    const h = this.detail;
    const actions = this.card.querySelector('#visit-actions');
    if (!h || !actions) return;
    const at = el('input', { type: 'datetime-local', id: 'visit-at', required: true, value: localInput(new Date()), max: localInput(new Date(Date.now() + FUTURE_SLACK_MS)) });
    const note = el('textarea', { id: 'visit-note', rows: 4, maxLength: NOTE_MAX, required: true, placeholder: '走访情况 · what you found, what was asked for' });
    const err = el('p', { className: 'form-error', hidden: true, role: 'alert' });
    const submit = el('button', { type: 'submit', className: 'btn btn-block btn-primary', id: 'visit-submit' }, '保存走访 Save the visit');
    const cancel = el('button', { type: 'button', className: 'btn btn-block' }, '取消 Cancel');
    const form = el(
      'form',
      { className: 'step-form', id: 'visit-form', noValidate: true },
      el('label', 'field', el('span', 'field-label', '走访时间 When'), at),
      el('label', 'field', el('span', 'field-label', '记录 Note'), note),
      el('p', 'note', '请勿填写身份证号、电话等个人信息 · Do not write ID numbers or phone numbers here'),
      err,
      submit,
      cancel,
    );
    const fail = (input, text) => {
      err.textContent = text;
      err.hidden = false;
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    };
    cancel.addEventListener('click', () => {
      this.form = null;
      actions.replaceChildren(this.recordButton());
    });
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (this.queuing) return;
      at.removeAttribute('aria-invalid');
      note.removeAttribute('aria-invalid');
      const when = new Date(at.value);
      const text = note.value.trim();
      if (!at.value || Number.isNaN(when.getTime())) return fail(at, '请填写走访时间 · When was the visit?');
      if (when.getTime() > Date.now() + FUTURE_SLACK_MS) return fail(at, '走访时间不能晚于现在 · A visit cannot be later than now');
      if (!text) return fail(note, '请填写走访记录 · A note of the visit is required');
      submit.disabled = true; // at once: a double tap queues one visit
      this.record(h, when, text).finally(() => {
        if (form.isConnected) submit.disabled = false;
      });
    });
    this.form = form;
    actions.replaceChildren(form);
    note.focus();
  }

  recordButton() {
    const b = el('button', { type: 'button', className: 'btn btn-primary btn-block', id: 'visit-record' }, '记录走访 Record a visit');
    b.addEventListener('click', () => this.openForm());
    return b;
  }

  /** record queues a visit to household h at when with note text (the outbox makes its key). */
  async record(h, when, text) {
    if (this.queuing) return;
    this.queuing = true;
    const label = `走访 Visit · ${place(h)}`;
    try {
      await this.outbox.add([{ kind: 'visit', group: `hh:${h.id}`, household: h.id, body: { visited_at: when.toISOString(), note: text }, label }]);
    } catch (err) {
      toast(`无法保存 · Cannot save on this phone: ${err.message}`, { kind: 'warn' });
      return;
    } finally {
      this.queuing = false;
    }
    this.form = null;
    const actions = this.card.querySelector('#visit-actions');
    if (actions && this.openId === h.id) actions.replaceChildren(this.recordButton());
    this.renderVisits();
    toast(navigator.onLine ? `发送中 · Sending: ${label}` : `已保存，联网后发送 · Saved, sent when online: ${label}`, { kind: navigator.onLine ? 'info' : 'new' });
  }

  // onSent: the server has a visit (new, or a replay): it is shown as sent and kept.
  async onSent(item, result) {
    if (!result?.id) return;
    const v = keepVisit({ household_id: item.household, ...result });
    this.sent.set(item.key, v);
    this.noteVisit(v.household_id, v.visited_at);
    const owner = this.owner();
    if (owner) {
      const add = (list) => (list.some((x) => x.id === v.id) ? undefined : [v, ...list]);
      await cacheUpdate(detailKey(v.household_id), owner, (d) => {
        const visits = add(d.visits ?? []);
        return visits ? { ...d, visits, last_visit_at: later(d.last_visit_at, v.visited_at) } : undefined;
      }).catch(() => {});
      await cacheUpdate(MINE_KEY, owner, add).catch(() => {});
    }
    if (this.detail?.id === v.household_id && Array.isArray(this.detail.visits) && !this.detail.visits.some((x) => x.id === v.id)) this.detail.visits = [v, ...this.detail.visits];
    if (this.mine && !this.mine.some((x) => x.id === v.id)) this.mine = [v, ...this.mine];
    toast(`已发送 · Sent: ${item.label}`, { kind: 'ok', data: { visitSent: String(v.id) } });
    this.rerender();
  }

  // ---- my visits ---------------------------------------------------------------------------

  async loadMine() {
    const owner = this.owner();
    if (!owner) return;
    if (!this.mine) {
      const kept = await cacheGet(MINE_KEY, owner).catch(() => undefined);
      if (kept && !this.mine && this.owner() === owner) {
        this.mine = kept.body;
        this.mineAt = new Date(kept.at);
        this.mineFrom = 'cache';
        this.renderMine();
      }
    }
    try {
      const { body } = await getFresh('/api/v1/visits?mine=1&limit=200');
      if (this.owner() !== owner) return;
      const list = items(body, 'visits').map(keepVisit);
      await cachePut(MINE_KEY, owner, list);
      this.mine = list;
      this.mineAt = null;
      this.mineFrom = 'network';
      for (const v of list) this.noteVisit(v.household_id, v.visited_at);
    } catch (err) {
      this.mineError = err;
      if (!this.mine) this.mineFrom = 'error';
    }
    this.renderMine();
  }

  renderMine() {
    if (this.screen !== 'myvisits') return;
    document.body.dataset.myvisitsFrom = this.mineFrom ?? '';
    const where = (id) => {
      const h = this.byId.get(id);
      return h ? place(h) : `户 household ${id}`;
    };
    const go = (id) => () => this.go(`household-${id}`);
    const rows = this.queued()
      .slice()
      .reverse()
      .map((it) => {
        const state = this.outbox.sending === it.seq ? 'sending' : it.state;
        const b = el(
          'button',
          { type: 'button', className: 'row-item visit', dataset: { state, seq: String(it.seq), householdId: String(it.household) } },
          el('span', 'grow', el('b', null, where(it.household)), el('span', 'visit-note', it.body?.note ?? ''), el('small', null, `${formatTime(it.body?.visited_at)} · ${STATE_TEXT[state] ?? state}`)),
        );
        b.addEventListener('click', go(it.household));
        return el('li', null, b);
      });
    const seen = new Set();
    const sent = [...this.sent.values()];
    for (const v of [...sent, ...(this.mine ?? [])].sort((a, b) => Date.parse(b.visited_at) - Date.parse(a.visited_at) || b.id - a.id)) {
      if (seen.has(v.id)) continue;
      seen.add(v.id);
      const b = el(
        'button',
        { type: 'button', className: 'row-item visit', dataset: { state: 'sent', visitId: String(v.id), householdId: String(v.household_id) } },
        el('span', 'grow', el('b', null, where(v.household_id)), el('span', 'visit-note', v.note), el('small', null, formatTime(v.visited_at))),
      );
      b.addEventListener('click', go(v.household_id));
      rows.push(el('li', null, b));
    }
    this.mineUl.replaceChildren(...rows);
    let note = '';
    if (this.mineFrom === 'cache' && this.mineAt) note = `离线：显示 ${hhmm(this.mineAt)} 保存的走访 · Offline: your visits as saved at ${hhmm(this.mineAt)}`;
    else if (this.mineFrom === 'error') note = `无法读取走访 · Cannot read your visits: ${this.mineError?.message ?? ''}`;
    this.mineNote.textContent = note;
    this.mineNote.hidden = !note;
    this.mineEmpty.hidden = rows.length > 0 || !this.mineFrom || this.mineFrom === 'error';
  }
}
