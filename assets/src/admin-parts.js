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

/**
 * adminForm is an admin tab's form, hidden until asked for: its title, the
 * fields in a grid, the error line and the actions (Cancel, save). The
 * browser's own validation is off (the server's message is shown instead);
 * a submit calls onSubmit.
 */
export function adminForm(id, title, fields, actions, onSubmit) {
  const form = el(
    'form',
    { className: 'admin-form', id, noValidate: true, hidden: true },
    title,
    el('div', 'form-grid', ...fields),
    el('p', { className: 'form-error', role: 'alert', hidden: true }),
    el('div', 'form-actions', ...actions),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    onSubmit();
  });
  return form;
}

export function emptyRow(cols, text) {
  return el('tr', 'empty-row', el('td', { colSpan: cols }, text));
}

/**
 * fillRows shows list in tbody (a table() body), one row(item) each, or one
 * row saying empty across the whole table when there is none.
 */
export function fillRows(tbody, list, empty, row) {
  tbody.replaceChildren();
  if (list.length === 0) tbody.append(emptyRow(tbody.parentElement.tHead.rows[0].cells.length, empty));
  for (const item of list) tbody.append(row(item));
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
