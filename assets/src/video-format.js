// How the live video's numbers read: the camera's stream rate and uptime,
// and when it went offline. Shared by the player's dialog and wall tiles
// (video-wall.js) and the camera card (panel.js).

const p2 = (n) => String(n).padStart(2, '0');

/** clockTime shows a timestamp as "HH:MM" today, else "MM-DD HH:MM"; '' for none. */
export function clockTime(s) {
  if (!s) return '';
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return '';
  const now = new Date();
  const hm = `${p2(d.getHours())}:${p2(d.getMinutes())}`;
  return d.toDateString() === now.toDateString() ? hm : `${p2(d.getMonth() + 1)}-${p2(d.getDate())} ${hm}`;
}

/** offlineText is "离线 · Offline since HH:MM — reason" (the parts known). */
export function offlineText(since, reason) {
  const t = clockTime(since);
  const head = t ? `离线 · Offline since ${t}` : '离线 · Offline';
  return reason ? `${head} — ${reason}` : head;
}

/** recordingErrorText is the camera card's warning for a camera whose recording fails. */
export function recordingErrorText(since, reason) {
  const t = clockTime(since);
  const head = t ? `未在录像 · Not recording since ${t}` : '未在录像 · Not recording';
  return reason ? `${head} — ${reason}` : head;
}

/** formatBitrate shows bits per second as kbit/s or Mbit/s. */
export function formatBitrate(bps) {
  if (typeof bps !== 'number' || !Number.isFinite(bps) || bps <= 0) return '—';
  return bps >= 1e6 ? `${(bps / 1e6).toFixed(2)} Mbit/s` : `${Math.round(bps / 1e3)} kbit/s`;
}

/** formatFps shows frames per second with one decimal. */
export function formatFps(fps) {
  return typeof fps === 'number' && Number.isFinite(fps) && fps > 0 ? `${fps.toFixed(1)} fps` : '—';
}

/** formatUptime shows seconds as "42 s", "12 min 5 s", "3 h 04 min" or "2 d 3 h". */
export function formatUptime(s) {
  if (typeof s !== 'number' || !Number.isFinite(s) || s < 0) return '—';
  const t = Math.floor(s);
  if (t < 60) return `${t} s`;
  if (t < 3600) return `${Math.floor(t / 60)} min ${t % 60} s`;
  if (t < 86400) return `${Math.floor(t / 3600)} h ${p2(Math.floor((t % 3600) / 60))} min`;
  return `${Math.floor(t / 86400)} d ${Math.floor((t % 86400) / 3600)} h`;
}
