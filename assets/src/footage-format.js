// Times as the footage views show them: the timeline's labels, the clock over
// the picture, a selection's length, the datetime-local inputs' values. Shared
// by the footage dialog (footage.js and its parts), the inline player
// (footage-inline.js) and the incident view.

import { formatTime } from './dom.js';

/** DAY is the footage dialog's longest view, and how far back it lists recordings: 24 h in ms. */
export const DAY = 24 * 3600 * 1000;

/** iso is ms as an ISO time without milliseconds, as the API takes it. */
export const iso = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
/** clock is ms as a local date and time with seconds. */
export const clock = (ms) => formatTime(new Date(ms).toISOString(), { seconds: true });
const pad = (n) => String(n).padStart(2, '0');

/** localInput is ms as a datetime-local input's value (local time, with seconds). */
export function localInput(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** hhmm shows a local time of day as "HH:MM" (with seconds when asked). */
export function hhmm(ms, seconds = false) {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}${seconds ? `:${pad(d.getSeconds())}` : ''}`;
}

/** formatDuration is a length of time (ms) in seconds, minutes or hours. */
export function formatDuration(ms) {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** tagText is a tag's hover text: label, note, author, time. */
export function tagText(t) {
  return `🏷 ${t.label ?? ''}${t.note ? ` — ${t.note}` : ''} · ${t.author || '—'} · ${clock(t.fromMs)} – ${hhmm(t.toMs, true)}`;
}
