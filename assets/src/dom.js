// Small DOM and formatting helpers shared by the dialogs. Everything is
// written with textContent: server data is never parsed as HTML.

import { describe } from './api.js';

/**
 * el makes an element. props: a class string, or an object whose keys are
 * properties (className, type, value, hidden, …), "dataset" (an object) or
 * attributes (any key containing a dash, e.g. "aria-label"). Children may be
 * nodes, strings or null (skipped).
 */
export function el(tag, props, ...children) {
  const e = document.createElement(tag);
  if (typeof props === 'string') e.className = props;
  else if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null) continue;
      if (k === 'dataset') Object.assign(e.dataset, v);
      else if (k.includes('-') || k === 'for' || k === 'role') e.setAttribute(k, v);
      else e[k] = v;
    }
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

/** formatTime shows a timestamp as local "YYYY-MM-DD HH:MM" (with seconds if asked); '—' for none. */
export function formatTime(s, { seconds = false } = {}) {
  if (!s) return '—';
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return String(s);
  const p = (n) => String(n).padStart(2, '0');
  const t = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
  return seconds ? `${t}:${p(d.getSeconds())}` : t;
}

/** ROLES lists the roles with their display names, in the order a form offers them. */
export const ROLES = [
  { id: 'admin', cn: '管理员', en: 'Admin' },
  { id: 'commander', cn: '指挥中心', en: 'Commander' },
  { id: 'operator', cn: '视频操作员', en: 'Operator' },
  { id: 'gis_editor', cn: '地理信息编辑', en: 'GIS editor' },
  { id: 'grid_leader', cn: '网格长', en: 'Grid leader' },
  { id: 'integration', cn: '接口', en: 'Integration' },
];
const ROLE_BY_ID = new Map(ROLES.map((r) => [r.id, r]));

/** roleLabel is e.g. "网格长 Grid leader"; an unknown role is shown as it is. */
export function roleLabel(role) {
  const r = ROLE_BY_ID.get(role);
  return r ? `${r.cn} ${r.en}` : String(role ?? '');
}

/** roleOptions fills a <select> with the roles, selecting `value`. */
export function roleOptions(select, value = '') {
  select.replaceChildren(...ROLES.map((r) => el('option', { value: r.id, selected: r.id === value }, `${r.cn} ${r.en}`)));
}

/** gridsText shows a grid scope: null is all grids, else the codes. */
export function gridsText(grids) {
  if (grids === null || grids === undefined) return '全部 All';
  if (!Array.isArray(grids) || grids.length === 0) return '— none';
  return grids.map((g) => (typeof g === 'object' ? g.code ?? g.id : g)).join(', ');
}

/** parseCodes turns "a, b  c" into ["a","b","c"]. */
export function parseCodes(text) {
  return String(text ?? '')
    .split(/[\s,，;；]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** isModalOpen reports whether a modal <dialog> is showing (keys then belong to it, not the map). */
export function isModalOpen() {
  return document.querySelector('dialog:modal') !== null;
}

/**
 * formError shows err in a form's .form-error box and marks the field the
 * server named in details.field (matched by the input's name); null clears it.
 */
export function formError(form, err) {
  const box = form.querySelector('.form-error');
  for (const f of form.querySelectorAll('[aria-invalid]')) f.removeAttribute('aria-invalid');
  if (!err) {
    box.hidden = true;
    box.textContent = '';
    return;
  }
  const field = err.details?.field;
  const msg = describe(err);
  box.textContent = field && !msg.toLowerCase().includes(String(field).toLowerCase()) ? `${field}: ${msg}` : msg;
  box.hidden = false;
  const input = field ? form.elements.namedItem(field) : null;
  if (input instanceof HTMLElement) {
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  }
}

/** field wraps a control in a labelled .field block; name is the server's field name. */
export function field(label, control, help) {
  return el('label', { className: 'field', dataset: { fieldFor: control.name ?? '' } }, el('span', 'field-label', label), control, help ? el('span', 'field-help', help) : null);
}

/**
 * wireModal makes a modal dialog close on a click on its backdrop (outside
 * its box) and, once it has closed, calls owner.teardown() and gives the
 * focus back to owner.opener (the element that opened it; then cleared) if
 * that is still on show.
 */
export function wireModal(dialog, owner) {
  dialog.addEventListener('close', () => {
    owner.teardown();
    const back = owner.opener;
    owner.opener = null;
    if (back?.isConnected && !back.closest('[hidden]')) back.focus({ preventScroll: true });
  });
  dialog.addEventListener('click', (ev) => {
    if (ev.target !== dialog || !dialog.open) return;
    const r = dialog.getBoundingClientRect();
    if (ev.clientX < r.left || ev.clientX > r.right || ev.clientY < r.top || ev.clientY > r.bottom) dialog.close();
  });
}
