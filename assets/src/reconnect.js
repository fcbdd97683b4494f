// Reconnecting with backoff, for the page's long-lived connections: the live
// event stream (live.js) and each live video player's WebSocket or HLS
// playlist (video.js). Each counts its failed attempts and keeps one pending
// retry; how long to wait is backoffMs of the attempt.

/**
 * backoffMs is the wait before retry number attempt (1, 2, …): first, doubled
 * for each attempt after the first (at most doublings times), never above max.
 */
export function backoffMs(attempt, first, max, doublings = Infinity) {
  return Math.min(max, first * 2 ** Math.min(Math.max(attempt - 1, 0), doublings));
}

/**
 * Reconnect holds a connection's retry: attempts counts the attempts since
 * the last success (the owner resets it), after(ms) calls connect() once in
 * ms, replacing a retry already waiting, and cancel() drops that retry.
 */
export class Reconnect {
  constructor(connect) {
    this.connect = connect;
    this.attempts = 0;
    this.timer = 0;
  }

  /** after calls connect() in ms, instead of any retry already waiting. */
  after(ms) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = 0;
      this.connect();
    }, ms);
  }

  /** cancel drops the retry waiting, if any. */
  cancel() {
    clearTimeout(this.timer);
    this.timer = 0;
  }
}
