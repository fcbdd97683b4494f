// Base data (人、房、地、物, issue 19) for the dashboard: names of the
// states and care flags, reading the API's lists, and small formatters the
// grid panel (base-panel.js), the cards (base-card.js) and the map layers
// (base-layer.js) share.
//
// Residents' personal fields arrive masked from every list and card; the
// full values of one resident come only from the unmask call (base-card.js)
// and are never kept here.

import { getJSON } from './api.js';

/** COMPONENT_STATES are a component's states, in the order the panel lists them. */
export const COMPONENT_STATES = ['intact', 'damaged', 'lost', 'removed'];
export const COMPONENT_STATE_LABEL = { intact: '完好 Intact', damaged: '损坏 Damaged', lost: '丢失 Lost', removed: '已拆除 Removed' };
/** COMPONENT_STATE_COLOR: damaged and lost stand out; intact and removed stay quiet. */
export const COMPONENT_STATE_COLOR = { intact: '#94a3b8', damaged: '#f97316', lost: '#ef4444', removed: '#475569' };

/** CARE_EN are the English names of the built-in care flags (the server names them in Chinese). */
const CARE_EN = {
  elderly_alone: 'Elderly living alone',
  disabled: 'Disabled',
  low_income: 'Low income',
  left_behind_minor: 'Left-behind child',
  community_correction: 'Community correction',
  veteran: 'Veteran',
  key_youth: 'Youth at risk',
};

let careFlagsP = null;

/** careFlags returns GET /api/v1/care-flags as [{code, name}] in the server's order (fetched once; [] on failure). */
export function careFlags() {
  if (!careFlagsP) {
    careFlagsP = getJSON('/api/v1/care-flags')
      .then((res) => firstArray(res, ['care_flags', 'flags', 'items']).map((f) => ({ code: String(f.code), name: String(f.name ?? f.code), position: Number(f.position) || 0 })))
      .catch((err) => {
        console.warn('care flags', err);
        careFlagsP = null;
        return [];
      });
  }
  return careFlagsP;
}

/** careLabel names a care flag: "独居老人 Elderly living alone", from the server's list when it has it. */
export function careLabel(code, flags = []) {
  const cn = flags.find((f) => f.code === code)?.name ?? '';
  const en = CARE_EN[code] ?? '';
  return [cn, en].filter(Boolean).join(' ') || String(code);
}

/** firstArray is the list in an API answer: the first of keys present as an array, else its first array value. */
export function firstArray(res, keys = []) {
  if (Array.isArray(res)) return res;
  if (!res || typeof res !== 'object') return [];
  for (const k of keys) if (Array.isArray(res[k])) return res[k];
  return Object.values(res).find(Array.isArray) ?? [];
}

/** LIST_KINDS are the lists the grid panel drills into: their API path and the permission they need. */
export const LIST_KINDS = {
  buildings: { path: '/api/v1/buildings', perm: 'base.read', title: '建筑 Buildings' },
  households: { path: '/api/v1/households', perm: 'residents.read', title: '住户 Households' },
  residents: { path: '/api/v1/residents', perm: 'residents.read', title: '居民 Residents' },
  components: { path: '/api/v1/components', perm: 'base.read', title: '部件 Components' },
  parcels: { path: '/api/v1/parcels', perm: 'base.read', title: '地块 Parcels' },
};

/** PAGE_SIZE is how many rows a list asks for at a time. */
export const PAGE_SIZE = 50;

/**
 * fetchPage reads one page of list kind with the filter params (grid, state,
 * care, …) from cursor (null: the first): {items, next}.
 */
export async function fetchPage(kind, params, cursor = null) {
  const q = new URLSearchParams({ ...params, limit: String(PAGE_SIZE) });
  if (cursor) q.set('cursor', String(cursor));
  const res = await getJSON(`${LIST_KINDS[kind].path}?${q}`);
  const next = res?.next ?? res?.next_cursor ?? null;
  return { items: firstArray(res, [kind, 'items']), next: next === null || next === undefined || next === '' ? null : String(next) };
}

const intFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** count shows a number with thousands separators; '—' for none. */
export function count(n) {
  return typeof n === 'number' && Number.isFinite(n) ? intFmt.format(n) : '—';
}

/** unitRoom is a household's place in its building: "2 单元 301 室". */
export function unitRoom(h) {
  return [h?.unit ? `${h.unit} 单元` : '', h?.room ? `${h.room} 室` : ''].filter(Boolean).join(' ');
}

/** genderLabel shows a resident's gender as the import gave it (男/女, M/F), in both languages when known. */
export function genderLabel(g) {
  const s = String(g ?? '').trim();
  if (/^(男|m|male)$/i.test(s)) return '男 M';
  if (/^(女|f|female)$/i.test(s)) return '女 F';
  return s || '—';
}

/**
 * reportCategory picks the 07 部件问题 subclass for a component by its class
 * name: manhole covers 0701, street lamps 0702, hydrants 0703, bins 0704,
 * anything else 0705.
 */
export function reportCategory(component) {
  const name = `${component?.class?.name ?? ''} ${component?.name ?? ''}`;
  if (/井盖|井/.test(name)) return '0701';
  if (/路灯|灯杆|照明/.test(name)) return '0702';
  if (/消防栓|消火栓/.test(name)) return '0703';
  if (/垃圾/.test(name)) return '0704';
  return '0705';
}

/** careCounts lists a {flag: n} map's non-zero flags as [code, n], in the care flags' order. */
export function careCounts(care, flags = []) {
  if (!care || typeof care !== 'object') return [];
  const order = new Map(flags.map((f, i) => [f.code, i]));
  return Object.entries(care)
    .filter(([, n]) => Number(n) > 0)
    .sort((a, b) => (order.get(a[0]) ?? 99) - (order.get(b[0]) ?? 99) || a[0].localeCompare(b[0]));
}
