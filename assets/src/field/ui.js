// Small pieces of the field app's screen: toasts, number formats, the
// device's name for its session.

import { el } from '../dom.js';

const MAX_TOASTS = 3;

/**
 * toast shows a short notice above the tab bar; kind: info, new, ok, warn.
 * action {label, run} adds a button; ms 0 keeps it until tapped.
 */
export function toast(text, { kind = 'info', action = null, ms = 6000, data = {} } = {}) {
  const box = document.querySelector('#toasts');
  const t = el('div', { className: 'toast', role: 'status', dataset: { kind, ...data } }, el('span', 'grow', text));
  if (action) {
    const b = el('button', { type: 'button', className: 'btn btn-small btn-primary' }, action.label);
    b.addEventListener('click', () => {
      t.remove();
      action.run();
    });
    t.append(b);
  }
  box.append(t);
  while (box.children.length > MAX_TOASTS) box.firstElementChild.remove();
  if (ms > 0) {
    setTimeout(() => {
      t.classList.add('toast-out');
      setTimeout(() => t.remove(), 350);
    }, ms);
  }
  return t;
}

/** bytes is e.g. "240 KB" or "3.1 MB". */
export function bytes(n) {
  if (!(n >= 0)) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${Math.round(n / 1024)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** metres is e.g. "850 m" or "3.24 km". */
export function metres(m) {
  if (!(m >= 0)) return '—';
  return m < 1000 ? `${Math.round(m)} m` : `${(m / 1000).toFixed(2)} km`;
}

/** clock is an elapsed time as "m:ss" or "h:mm:ss". */
export function clock(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const p = (n) => String(n).padStart(2, '0');
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}:${p(m)}:${p(s % 60)}` : `${m}:${p(s % 60)}`;
}

/** hhmm is a time of day, "08:30". */
export function hhmm(d) {
  const t = d instanceof Date ? d : new Date(d);
  return `${String(t.getHours()).padStart(2, '0')}:${String(t.getMinutes()).padStart(2, '0')}`;
}

/**
 * deviceName is a default name for this phone's session from its user
 * agent, e.g. "Android · Chrome" or "iPhone · Safari"; the person may change it.
 */
export function deviceName(ua = navigator.userAgent) {
  const model = ua.match(/Android [\d.]+; ([^;)]+?)(?: Build|\))/)?.[1]?.trim();
  const os = /iPhone/.test(ua) ? 'iPhone' : /iPad/.test(ua) ? 'iPad' : /Android/.test(ua) ? 'Android' : /Windows/.test(ua) ? 'Windows' : /Mac OS X/.test(ua) ? 'Mac' : /Linux/.test(ua) ? 'Linux' : 'Phone';
  const browser = /EdgA?\//.test(ua) ? 'Edge' : /MicroMessenger/.test(ua) ? 'WeChat' : /HeadlessChrome/.test(ua) ? 'Headless Chrome' : /Chrome\//.test(ua) ? 'Chrome' : /Firefox\//.test(ua) ? 'Firefox' : /Safari\//.test(ua) ? 'Safari' : 'Browser';
  const who = model && model !== 'K' ? `${os} ${model}` : os;
  return `${who} · ${browser}`.slice(0, 100);
}
