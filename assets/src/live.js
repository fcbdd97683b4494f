// Live updates: Server-Sent Events from GET /api/v1/events, read with fetch
// rather than EventSource so the page sees the HTTP status — a 401 goes
// through the sign-in overlay like every other call, and a server without the
// stream (501, 404, …) switches the page to polling instead of failing.
//
// The stream is parsed as the SSE spec says (event, data, id, retry; comments
// ignored) and reconnects with the Last-Event-ID header, so the server can
// replay what was missed. While it is not connected, poll() runs every
// pollMs; after each reconnect poll() runs once to reconcile.

import { ensureSignedIn } from './api.js';
import { Reconnect, backoffMs } from './reconnect.js';

const EVENTS_PATH = '/api/v1/events';
const BACKOFF_MAX_MS = 30000; // the longest wait between attempts …
const BACKOFF_DOUBLINGS = 4; // … and how often the server's retry doubles on the way there

/**
 * LiveFeed calls onEvent(type, data, id) for every event, poll() while the
 * stream is down, and onMode(mode) with "connecting", "sse" or "polling".
 */
export class LiveFeed {
  constructor({ onEvent, poll, onMode = () => {}, pollMs = 15000, retryUnavailableMs = 120000 }) {
    Object.assign(this, { onEvent, poll, onMode, pollMs, retryUnavailableMs });
    this.mode = '';
    this.lastId = '';
    this.retryMs = 3000;
    this.retrying = new Reconnect(() => this.connect()); // attempts: failures since the last stream
    this.connects = 0;
    this.pollTimer = 0;
    this.controller = null;
    this.stopped = true;
    this.polling = false;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    this.retrying.cancel();
    this.stopPolling();
    this.controller?.abort();
    this.controller = null;
  }

  setMode(mode) {
    if (mode === this.mode) return;
    this.mode = mode;
    this.onMode(mode);
  }

  startPolling() {
    if (this.pollTimer || this.stopped) return;
    this.pollTimer = setInterval(() => this.pollOnce(), this.pollMs);
  }

  stopPolling() {
    clearInterval(this.pollTimer);
    this.pollTimer = 0;
  }

  async pollOnce() {
    if (this.polling || this.stopped) return;
    this.polling = true;
    try {
      await this.poll();
    } catch {
      // The poller reports its own errors; the next tick tries again.
    } finally {
      this.polling = false;
    }
  }

  /** reconnect schedules the next connection attempt after ms. */
  reconnect(ms) {
    this.retrying.cancel();
    if (this.stopped) return;
    this.retrying.after(ms);
  }

  async connect() {
    if (this.stopped) return;
    if (this.mode !== 'polling') this.setMode('connecting');
    const controller = new AbortController();
    this.controller = controller;
    const headers = { Accept: 'text/event-stream' };
    if (this.lastId) headers['Last-Event-ID'] = this.lastId;
    let res;
    try {
      res = await fetch(EVENTS_PATH, { headers, signal: controller.signal, credentials: 'same-origin', cache: 'no-store' });
    } catch (err) {
      if (controller.signal.aborted) return;
      this.down();
      return;
    }
    if (res.status === 401) {
      await res.text().catch(() => ''); // read, not cancelled: an aborted request looks like a failure
      // The session ended: sign in again (the overlay), then reconnect.
      try {
        await ensureSignedIn();
      } catch {
        // fall through: the retry below asks again
      }
      this.reconnect(500);
      return;
    }
    const type = res.headers.get('Content-Type') ?? '';
    if (!res.ok || !type.includes('text/event-stream') || !res.body) {
      await res.text().catch(() => ''); // an error body: small
      // No stream here (not implemented, or not allowed): poll, and look again later.
      this.setMode('polling');
      this.startPolling();
      this.reconnect(this.retryUnavailableMs);
      return;
    }

    this.retrying.attempts = 0;
    this.connects++;
    this.stopPolling();
    this.setMode('sse');
    // Anything between the last poll (or the first load) and now is reconciled.
    if (this.connects > 1) this.pollOnce();
    try {
      await this.read(res.body, controller.signal);
    } catch {
      // a broken stream: reconnect below
    }
    if (controller.signal.aborted || this.stopped) return;
    this.down();
  }

  // down: the stream failed or ended; poll meanwhile and reconnect with backoff.
  down() {
    this.retrying.attempts++;
    this.setMode('polling');
    this.startPolling();
    this.reconnect(backoffMs(this.retrying.attempts, this.retryMs, BACKOFF_MAX_MS, BACKOFF_DOUBLINGS));
  }

  async read(body, signal) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    signal.addEventListener('abort', () => reader.cancel().catch(() => {}), { once: true });
    let buf = '';
    let event = '';
    let data = [];
    let id = null;
    const dispatch = () => {
      if (id !== null) this.lastId = id;
      if (data.length > 0) {
        const text = data.join('\n');
        let parsed = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // not JSON: hand over the text
        }
        try {
          this.onEvent(event || 'message', parsed, this.lastId);
        } catch (err) {
          console.warn('live event handler failed', err);
        }
      }
      event = '';
      data = [];
      id = null;
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      let nl;
      while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
        if (buf[nl] === '\r' && nl === buf.length - 1) break; // maybe half of \r\n
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + (buf[nl] === '\r' && buf[nl + 1] === '\n' ? 2 : 1));
        if (line === '') {
          dispatch();
          continue;
        }
        if (line.startsWith(':')) continue; // comment / keep-alive
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
        else if (field === 'id' && !value.includes('\0')) id = value;
        else if (field === 'retry' && /^\d+$/.test(value)) this.retryMs = Math.max(500, Number(value));
      }
    }
  }
}
