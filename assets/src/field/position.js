// The phone's position, taken only while a report or a patrol is under way
// (or when the person asks which grid they are in): each user starts a watch
// and stops it when done, so no watch outlives its screen.

const OPTIONS = { enableHighAccuracy: true, maximumAge: 5000, timeout: 30000 };

/** geoSupported: this browser offers a position at all. */
export function geoSupported() {
  return 'geolocation' in navigator;
}

/**
 * watchPosition calls onPos({lon, lat, accuracy, at}) for every fix and
 * onError(message) on failure; it returns stop().
 */
export function watchPosition(onPos, onError) {
  if (!geoSupported()) {
    onError('此设备无法定位 · This device cannot give a position');
    return () => {};
  }
  const id = navigator.geolocation.watchPosition(
    (p) => onPos(fix(p)),
    (err) => onError(geoMessage(err)),
    OPTIONS,
  );
  return () => navigator.geolocation.clearWatch(id);
}

/** currentPosition resolves one fix, or rejects with an Error whose message is fit to show. */
export function currentPosition() {
  return new Promise((resolve, reject) => {
    if (!geoSupported()) {
      reject(new Error('此设备无法定位 · This device cannot give a position'));
      return;
    }
    navigator.geolocation.getCurrentPosition(
      (p) => resolve(fix(p)),
      (err) => reject(new Error(geoMessage(err))),
      { ...OPTIONS, maximumAge: 0 },
    );
  });
}

function fix(p) {
  return { lon: p.coords.longitude, lat: p.coords.latitude, accuracy: p.coords.accuracy, at: p.timestamp || Date.now() };
}

function geoMessage(err) {
  if (err?.code === 1) return '未允许定位：请在浏览器设置中允许 · Location not allowed: allow it in the browser settings';
  if (err?.code === 3) return '定位超时 · No position yet (timed out)';
  return `无法定位 · Cannot get a position${err?.message ? ` (${err.message})` : ''}`;
}

/** distanceM is the great-circle distance in metres between {lon, lat} points. */
export { distanceM } from '../geometry.js';

/** accuracyText is e.g. "±12 m"; quality "poor" above 50 m. */
export function accuracyText(acc) {
  if (!(acc >= 0)) return { text: '', quality: '' };
  return { text: `精度 ±${Math.round(acc)} m`, quality: acc > 50 ? 'poor' : 'good' };
}
