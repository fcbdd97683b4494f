// A recording a GB/T 28181 device holds, played through gridwatch (the
// footage dialog's "▶ 设备回放 Play from device", footage-device-play.js).
//
//   POST   /api/v1/cameras/{id}/device-playback {from, to}  → the playback's state ({id, from, to, paused, scale, ended, stream})
//   GET    /api/v1/device-playbacks/{pb}/live               WebSocket: fMP4 for MSE, the same protocol as a
//                                                           camera's live one (video.js), played by MediaFeed (video-mse.js)
//   POST   /api/v1/device-playbacks/{pb}/control {op, at?, scale?}  pause, resume, seek (s from the range's
//                                                           start), speed (0.25–8): done by the device
//   DELETE /api/v1/device-playbacks/{pb}                    ends it (so does 30 s with nobody watching)
// At the end of the range the state says ended and the socket closes
// normally; a socket that closes otherwise is opened again (with backoff).
//
// Where in the range the picture is: the fragments carry the device's own
// times, smoothed over a seek, so the media time advances as the device's
// does at any speed (the device sends faster, not longer). The position is a
// known one (the start: 0, a seek: its at) pinned to the media time that
// shows it, plus the media time played since.

import { ApiError, describe, request } from './api.js';
import { iso } from './footage-format.js';
import { Reconnect, backoffMs } from './reconnect.js';
import { MediaFeed } from './video-mse.js';

const WATCH_MS = 250;
const MAX_RETRIES = 5; // sockets lost in a row before giving up
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 5000;

/** SPEEDS are the speeds offered (the device takes 0.25 to 8). */
export const SPEEDS = [0.5, 1, 2, 4];

function socketURL(id, audio) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/api/v1/device-playbacks/${encodeURIComponent(id)}/live${audio ? '?audio=1' : ''}`;
}

/**
 * DevicePlayback plays one device recording in a <video>. onChange(pb) is
 * called whenever phase, paused, scale or message change; read:
 *   phase    'idle' | 'starting' | 'connecting' | 'playing' | 'paused' | 'ended' | 'error' | 'closed'
 *   id, from, to (ms)   the playback on the server and its range
 *   paused, scale       as the device was last told
 *   status              the stream's last status ({status, reason, …}) from the socket
 *   message             why it failed ('error'), or why it is not playing yet
 *   fragments           binary messages received (a test can tell the device stopped sending)
 */
export class DevicePlayback {
  constructor(video, { onChange = () => {} } = {}) {
    this.video = video;
    this.onChange = onChange;
    this.seq = 0; // bumped by every start and close: late answers of older ones are dropped
    this.reset();
    this.feed = new MediaFeed(video, { fail: (m) => this.fail(m), restart: (why) => this.restart(why) });
    this.retrying = new Reconnect(() => this.connect());
    this.timer = 0;
    this.ctl = Promise.resolve(); // controls go to the device one after another
    video.muted = true;
    video.playsInline = true;
    video.autoplay = true;
    video.disablePictureInPicture = true;
  }

  reset() {
    this.id = '';
    this.cameraId = 0;
    this.from = NaN;
    this.to = NaN;
    this.phase = 'idle';
    this.message = '';
    this.status = null;
    this.paused = false;
    this.scale = 1;
    this.ended = false;
    this.gone = false; // the server no longer has it: nothing to DELETE
    this.playing = false; // a picture of the current source was shown
    this.fragments = 0;
    this.anchor = null; // {pos: s into the range, mt: the media time showing it}
    this.pin = null; // s into the range: pinned to the next picture (the start, a new source)
    this.noAudio = false;
    this.ws = null;
  }

  /** duration is the range's length in s (NaN before a start). */
  get duration() {
    return (this.to - this.from) / 1000;
  }

  /** active: started, and neither closed, ended nor failed. */
  get active() {
    return ['starting', 'connecting', 'playing', 'paused'].includes(this.phase);
  }

  /** position is how far into the range the picture is, in s (NaN before a start). */
  position() {
    const v = this.video;
    if (!this.anchor) return this.pin ?? NaN;
    const p = this.anchor.pos + (v.currentTime - this.anchor.mt);
    return Math.min(Math.max(p, 0), this.duration);
  }

  /** deviceTime is the device's time of the picture shown (ms), or NaN. */
  deviceTime() {
    const p = this.position();
    return Number.isFinite(p) ? this.from + p * 1000 : NaN;
  }

  emit() {
    this.onChange(this);
  }

  setPhase(phase, message = this.message) {
    this.phase = phase;
    this.message = message;
    this.emit();
  }

  /** start plays camera cameraId's recording on its device from..to (ms), after closing any playback before. */
  async start(cameraId, from, to) {
    await this.close().catch(() => {}); // not told: it ends by itself, unwatched
    const seq = ++this.seq;
    this.reset();
    this.cameraId = cameraId;
    this.from = from;
    this.to = to;
    this.setPhase('starting', '');
    let st;
    try {
      st = await request('POST', `/api/v1/cameras/${encodeURIComponent(cameraId)}/device-playback`, { json: { from: iso(from), to: iso(to) } });
    } catch (err) {
      if (seq === this.seq) this.fail(`无法开始设备回放 · Cannot play from the device — ${describe(err)}`);
      return;
    }
    if (seq !== this.seq) {
      // Closed while it was being asked for: the device need not go on.
      request('DELETE', `/api/v1/device-playbacks/${encodeURIComponent(st.id)}`).catch(() => {});
      return;
    }
    this.id = st.id;
    this.apply(st);
    this.pin = 0;
    this.timer = setInterval(() => this.watch(), WATCH_MS);
    this.setPhase('connecting', '');
    this.connect();
  }

  /** apply takes the server's state of the playback. */
  apply(st) {
    if (!st) return;
    if (st.from) this.from = Date.parse(st.from);
    if (st.to) this.to = Date.parse(st.to);
    this.paused = !!st.paused;
    if (Number(st.scale) > 0) this.scale = Number(st.scale);
    this.feed.rate = this.scale;
    if (st.ended) this.ended = true;
  }

  // ---- the socket -------------------------------------------------------------------------

  connect() {
    if (!this.id || !['connecting', 'playing', 'paused'].includes(this.phase)) return;
    let ws;
    try {
      ws = new WebSocket(socketURL(this.id, !this.noAudio));
    } catch (err) {
      this.fail(`无法连接 · Cannot connect: ${err.message}`);
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.feed.haveCodec = false; // a new socket starts with a codec message
    ws.onopen = () => {
      if (this.ws === ws) this.retrying.attempts = 0;
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      if (typeof ev.data === 'string') this.onText(ev.data);
      else {
        this.fragments++;
        this.feed.push(ev.data);
      }
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.closed(ev.reason);
    };
  }

  closeSocket() {
    const ws = this.ws;
    this.ws = null;
    if (!ws) return;
    ws.onmessage = null;
    ws.onclose = null;
    if (ws.readyState === WebSocket.CONNECTING) {
      // Closing a socket before it opens logs a console error: close it once it does.
      ws.onopen = () => ws.close(1000);
      ws.onerror = null;
    } else if (ws.readyState === WebSocket.OPEN) {
      ws.close(1000);
    }
  }

  /** closed: the socket ended. The end of the range, the playback gone, or a connection lost (opened again). */
  async closed(reason) {
    const seq = this.seq;
    const id = this.id;
    try {
      this.apply(await request('GET', `/api/v1/device-playbacks/${encodeURIComponent(id)}`));
    } catch (err) {
      if (seq !== this.seq) return;
      if (err instanceof ApiError && err.status === 404) {
        this.gone = true;
        this.finish(`设备回放已结束 · The device playback has ended${reason ? ` (${reason})` : ''}`);
        return;
      }
    }
    if (seq !== this.seq) return;
    if (this.ended) {
      this.finish('设备录像已播放到结尾 · The device played the range to its end');
      return;
    }
    this.restart(reason);
  }

  /** restart drops the socket and its source and connects again after a backoff, a few times at most. */
  restart(why) {
    if (!this.id || !this.active) return;
    this.closeSocket();
    this.repin();
    this.feed.close();
    this.playing = false;
    this.retrying.attempts++;
    if (this.retrying.attempts > MAX_RETRIES) {
      this.fail(`与设备回放的连接中断 · The connection to the device playback broke off${why ? ` — ${why}` : ''}`);
      return;
    }
    this.setPhase('connecting', `重新连接… · Reconnecting…${why ? ` (${why})` : ''}`);
    this.retrying.after(backoffMs(this.retrying.attempts, BACKOFF_FIRST_MS, BACKOFF_MAX_MS));
  }

  /** repin keeps the position across a new source: its media times need not go on from the last. */
  repin() {
    if (!this.anchor) return;
    this.pin = this.position();
    this.anchor = null;
  }

  onText(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg?.type === 'status' && msg.state && typeof msg.state === 'object') {
      this.status = msg.state;
      if (!this.playing && msg.state.status === 'offline') this.setPhase(this.phase, `设备 · Device: ${msg.state.reason || 'offline'}`);
      else this.emit();
      return;
    }
    if (msg?.type !== 'codec' || typeof msg.mime !== 'string') return;
    if (!MediaSource.isTypeSupported(msg.mime)) {
      const videoOnly = msg.mime.replace(/,[^,"]+"$/, '"');
      if (!this.noAudio && videoOnly !== msg.mime && MediaSource.isTypeSupported(videoOnly)) {
        // The picture may play without its sound: ask for it alone.
        this.noAudio = true;
        this.closeSocket();
        this.repin();
        this.feed.close();
        this.connect();
        return;
      }
      const codec = msg.mime.replace(/^video\/mp4;\s*codecs="?([^"]+)"?$/, '$1');
      this.fail(`此浏览器无法解码设备录像的编码 ${codec} · This browser cannot decode the recording's ${codec} — 请取回后导出 · fetch it into gridwatch and export it`);
      return;
    }
    this.repin();
    const ms = this.feed.open(msg.mime);
    this.feed.hold = this.paused;
    this.playing = false;
    this.watchFrames(ms);
  }

  // The first picture of source ms marks it playing.
  watchFrames(ms) {
    const v = this.video;
    const shown = () => {
      if (this.feed.ms !== ms || !this.active) return;
      if (!this.playing) {
        this.playing = true;
        this.setPhase(this.paused ? 'paused' : 'playing', '');
      }
    };
    if (typeof v.requestVideoFrameCallback === 'function') v.requestVideoFrameCallback(shown);
    else v.addEventListener('playing', shown, { once: true });
  }

  /** watch runs 4 times a second: the live edge, and the position pinned to the first picture. */
  watch() {
    if (!this.active) return;
    const b = this.video.buffered;
    if (this.pin !== null && b.length) {
      this.anchor = { pos: this.pin, mt: b.start(0) };
      this.pin = null;
    }
    this.feed.keepLive();
  }

  // ---- the device's controls --------------------------------------------------------------

  /**
   * control sends op (pause, resume, seek with at, speed with scale) to the
   * device, after any sent before; it resolves the new state, or throws
   * ApiError (400 naming the field; 409 before the device plays).
   */
  control(op, extra = {}) {
    const run = async () => {
      const seq = this.seq;
      if (!this.id || !this.active) return null;
      const st = await request('POST', `/api/v1/device-playbacks/${encodeURIComponent(this.id)}/control`, { json: { op, ...extra } });
      if (seq !== this.seq) return null;
      this.apply(st);
      return st;
    };
    const p = this.ctl.then(run, run);
    this.ctl = p.catch(() => {});
    return p;
  }

  /** pause holds the picture now and tells the device to stop sending. */
  async pause() {
    this.feed.hold = true;
    this.video.pause();
    try {
      await this.control('pause');
    } catch (err) {
      this.feed.hold = this.paused;
      if (!this.paused) this.video.play().catch(() => {});
      throw err;
    }
    if (this.playing) this.setPhase('paused', '');
  }

  /** resume tells the device to go on; the picture follows what it sends. */
  async resume() {
    await this.control('resume');
    this.feed.hold = false;
    this.video.play().catch(() => {});
    if (this.playing) this.setPhase('playing', '');
  }

  /** seek moves the device to at s into the range; what was buffered before is skipped. */
  async seek(at) {
    at = Math.min(Math.max(0, at), this.duration);
    await this.control('seek', { at });
    const v = this.video;
    const b = v.buffered;
    if (b.length) {
      // What arrives from now on is from there: skip to it.
      const edge = b.end(b.length - 1);
      this.anchor = { pos: at, mt: edge };
      this.pin = null;
      v.currentTime = edge;
    } else {
      this.anchor = null;
      this.pin = at;
    }
    this.feed.hold = false;
    v.play().catch(() => {});
    if (this.playing) this.setPhase('playing', '');
  }

  /** speed asks the device for scale× and plays at that speed. */
  async speed(scale) {
    await this.control('speed', { scale });
    this.video.playbackRate = this.feed.rate;
    this.emit();
  }

  // ---- the end ----------------------------------------------------------------------------

  /** finish: the playback is over; the last picture stays. */
  finish(message) {
    this.ended = true;
    this.stopWatching();
    this.closeSocket();
    this.feed.close(); // its end: what is buffered plays out, then the picture stays
    this.setPhase('ended', message);
  }

  fail(message) {
    this.stopWatching();
    this.closeSocket();
    this.feed.close();
    this.setPhase('error', message);
  }

  stopWatching() {
    clearInterval(this.timer);
    this.timer = 0;
    this.retrying.cancel();
  }

  /**
   * close ends the playback: the socket, the picture and (DELETE) the
   * device's stream. It resolves once the server has been told.
   */
  async close() {
    const id = this.id;
    const told = id && !this.gone;
    this.seq++;
    this.stopWatching();
    this.closeSocket();
    this.feed.close();
    this.feed.hold = false;
    this.feed.rate = 1;
    const v = this.video;
    v.pause();
    if (v.hasAttribute('src')) {
      v.removeAttribute('src');
      v.load();
    }
    const had = this.phase !== 'idle';
    this.reset();
    if (had) this.setPhase('closed', '');
    if (!told) return;
    try {
      await request('DELETE', `/api/v1/device-playbacks/${encodeURIComponent(id)}`);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
    }
  }
}
