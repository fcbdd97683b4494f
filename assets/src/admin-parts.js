// What the admin view's tabs share: their tables, status line and loading,
// and how a role, a person or a list of grids is shown.

import { describe, getJSON } from './api.js';
import { el, roleLabel } from './dom.js';

export function roleBadge(role) {
  return el('span', { className: 'role-badge', dataset: { role: role ?? '' } }, roleLabel(role));
}

export function codesOf(grids) {
  return Array.isArray(grids) ? grids.map((g) => (typeof g === 'object' ? String(g.code ?? g.id) : String(g))) : [];
}

export function sameList(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export function nameOf(v) {
  if (v === null || v === undefined || v === '') return '—';
  if (typeof v === 'object') return String(v.name ?? v.username ?? v.id ?? JSON.stringify(v));
  return String(v);
}

export function table(id, headers) {
  const tbody = el('tbody');
  const wrap = el('div', 'table-wrap', el('table', { className: 'table', id }, el('thead', '', el('tr', '', ...headers.map((h) => el('th', '', h)))), tbody));
  return { wrap, tbody };
}

export function emptyRow(cols, text) {
  return el('tr', 'empty-row', el('td', { colSpan: cols }, text));
}

export function flash(node, text, state = 'ok') {
  node.textContent = text;
  node.dataset.state = state;
}

/**
 * loadTable reads the list under key of GET path into show(list) and counts
 * it in the status line (label: what the rows are); an error is shown there.
 */
export async function loadTable(status, path, key, label, show) {
  flash(status, '加载中 Loading…', '');
  try {
    const res = await getJSON(path);
    const list = Array.isArray(res[key]) ? res[key] : [];
    show(list);
    flash(status, `${list.length} ${label}`, '');
  } catch (err) {
    flash(status, describe(err), 'error');
  }
}
