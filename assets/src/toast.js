// Small notices at the bottom of the map ("新事件 New incident: …"). A toast
// with onClick is a button; each one goes away by itself after a while.

import { el } from './dom.js';

const MAX = 4;

function container() {
  let box = document.querySelector('#toasts');
  if (!box) {
    box = el('div', { id: 'toasts', className: 'toasts', 'aria-live': 'polite' });
    document.body.append(box);
  }
  return box;
}

/** toast shows text (and an optional detail line); kind is "info", "new" or "warn". */
export function toast(text, { detail = '', kind = 'info', onClick = null, ms = 7000, data = {} } = {}) {
  const box = container();
  const t = el(onClick ? 'button' : 'div', { className: 'toast', dataset: { kind, ...data } }, el('span', 'toast-text', text), detail ? el('span', 'toast-detail', detail) : null);
  if (onClick) {
    t.type = 'button';
    t.addEventListener('click', () => {
      t.remove();
      onClick();
    });
  }
  box.append(t);
  while (box.children.length > MAX) box.firstElementChild.remove();
  setTimeout(() => {
    t.classList.add('toast-out');
    setTimeout(() => t.remove(), 400);
  }, ms);
  return t;
}
