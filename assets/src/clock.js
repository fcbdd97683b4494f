// The server's clock, as the dashboard reads it. Deadlines, "since" times,
// keepalive ages and the footage timeline are the server's times: they are
// compared with the server's now, not the browser's, so that a command-centre
// PC whose clock is off does not show a case overdue that is not (or the
// live edge of the footage hours away).
//
// Every API answer carries the server's time (HTTP Date, whole seconds):
// api.js hands it here with when the request went and the answer came. The
// skew is the median of the last few samples taken within a second, and is
// applied only once it is clearly more than the Date header's second and
// the network's delay could make it.
//
// Test hook: document.body.dataset.clockSkew (ms, server minus browser).

const SAMPLES = 9;
const MIN_SKEW_MS = 2000;
const MAX_WAIT_MS = 1000;
const samples = [];
let skew = 0;

/** serverNow is the server's time now (ms since the epoch), as well as the browser can tell. */
export function serverNow() {
  return Date.now() + skew;
}

/**
 * noteServerDate takes an answer's Date header (its server's time, to the
 * second) and the browser's clock when the request went (sentAt) and the
 * answer came (receivedAt).
 */
export function noteServerDate(header, sentAt, receivedAt) {
  const server = Date.parse(header ?? '');
  // No header, or an answer too slow to tell by: with at most 1 s between request and answer a sample
  // is within 1 s of the truth (half the wait, half the header's second), under the 2 s applied.
  if (!Number.isFinite(server) || !(receivedAt >= sentAt) || receivedAt - sentAt > MAX_WAIT_MS) return;
  // The header cuts to the second: the server's time was within it, at the request's middle.
  samples.push(server + 500 - (sentAt + receivedAt) / 2);
  if (samples.length > SAMPLES) samples.shift();
  const sorted = [...samples].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  skew = Math.abs(median) >= MIN_SKEW_MS ? Math.round(median) : 0;
  if (typeof document !== 'undefined' && document.body) document.body.dataset.clockSkew = String(skew);
}
