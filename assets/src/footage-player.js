// The footage players' engine: an HLS VOD playlist of recorded video played
// in a <video>, and the state both players (the footage dialog and the inline
// clip) show while they play it.
//
// Where MSE exists the playlist plays through hls.js, loaded on first use (a
// separate chunk, see build.mjs) so the map's first load does not carry it; a
// browser without MSE but with native HLS (iPhone Safari) gets the playlist
// as the <video>'s src.

import { ApiError, describe, request } from './api.js';
import { clock } from './footage-format.js';

let hlsModule = null;
/** loadHls imports hls.js (its light build: no subtitles, alternate audio or DRM) once, on first use. */
function loadHls() {
  hlsModule ??= import('hls.js/light').then((m) => m.default);
  return hlsModule;
}

function hasMSE() {
  return typeof window.MediaSource === 'function' || typeof window.ManagedMediaSource === 'function';
}

/** firstProgramDate is the first EXT-X-PROGRAM-DATE-TIME of a playlist, in ms, or NaN. */
function firstProgramDate(text) {
  const m = /^#EXT-X-PROGRAM-DATE-TIME:(\S+)/m.exec(text);
  return m ? Date.parse(m[1]) : NaN;
}

const HLS_MIME = 'application/vnd.apple.mpegurl';

/** playbackURL is camera cameraId's HLS VOD playlist from..to (ms). */
export function playbackURL(cameraId, from, to) {
  return `/api/v1/cameras/${encodeURIComponent(cameraId)}/playback.m3u8?${new URLSearchParams({ from: new Date(from).toISOString(), to: new Date(to).toISOString() })}`;
}

/**
 * fetchPlaylist reads the playlist at url: {text, pdt} (pdt: its first
 * PROGRAM-DATE-TIME in ms, or NaN). It throws ApiError (404: no footage then).
 */
export async function fetchPlaylist(url) {
  const { text } = await request('GET', url, { raw: true, accept: HLS_MIME });
  return { text, pdt: firstProgramDate(text) };
}

/**
 * attachPlaylist plays the HLS playlist at url in video from start seconds:
 * through hls.js where MSE exists (loaded on first use), else natively. It
 * resolves {engine: 'hls.js'|'native', hls, destroy()}, or null when current()
 * turned false meanwhile; it throws an Error with a message to show when the
 * browser cannot play it. onFatal(text) reports a fatal playback error later.
 */
export async function attachPlaylist(video, url, start, { current = () => true, onFatal = () => {} } = {}) {
  const v = video;
  let Hls = null;
  if (hasMSE() || !v.canPlayType(HLS_MIME)) {
    try {
      Hls = await loadHls();
    } catch (err) {
      hlsModule = null;
      if (!v.canPlayType(HLS_MIME)) throw new Error(`无法加载播放器 · Cannot load the player (hls.js) — ${err?.message ?? err}`);
    }
    if (!current()) return null;
    if (Hls && !Hls.isSupported()) Hls = null;
  }
  if (Hls) {
    const hls = new Hls({ enableWorker: false, startPosition: start, backBufferLength: 30, maxBufferLength: 20 });
    let live = true;
    hls.on(Hls.Events.ERROR, (_e, data) => {
      if (!data?.fatal || !live) return;
      const status = data.response?.code;
      if (/codec/i.test(String(data.details))) {
        // Footage of an H.265 camera in a browser without an H.265 decoder.
        onFatal(`此浏览器无法解码这段录像的编码（H.265？）· This browser cannot decode this footage's codec (H.265?) — 请导出后用 VLC 播放 · export it and play the MP4 in VLC (${data.details})`);
        return;
      }
      onFatal(`回放出错 · Playback error — ${data.type}: ${data.details}${status ? ` (HTTP ${status})` : ''}`);
    });
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      if (live) v.play().catch(() => {});
    });
    hls.attachMedia(v);
    hls.loadSource(url);
    return {
      engine: 'hls.js',
      hls,
      destroy() {
        live = false;
        hls.destroy();
      },
    };
  }
  if (v.canPlayType(HLS_MIME)) {
    let live = true;
    v.addEventListener(
      'loadedmetadata',
      () => {
        if (!live) return;
        if (start > 0) v.currentTime = start;
        v.play().catch(() => {});
      },
      { once: true },
    );
    v.src = url;
    return {
      engine: 'native',
      hls: null,
      destroy() {
        live = false;
      },
    };
  }
  throw new Error('此浏览器无法播放 HLS 回放 · This browser cannot play HLS footage (no MediaSource, no native HLS)');
}

/** stopVideo empties a <video> an engine played into. */
export function stopVideo(v) {
  if (v.getAttribute('src') !== null || v.srcObject) {
    v.pause();
    v.removeAttribute('src');
    v.load();
  }
}

/**
 * pictureTime is the wall-clock time (ms) of the picture video shows, played
 * by eng (attachPlaylist's) from base {at: the time asked, pdt: the playlist's start}.
 */
export function pictureTime(v, eng, base) {
  const d = eng?.hls?.playingDate;
  if (d instanceof Date && Number.isFinite(d.getTime()) && v.readyState > 0) return d.getTime();
  if (eng?.engine === 'native' && typeof v.getStartDate === 'function') {
    const s = v.getStartDate().getTime();
    if (Number.isFinite(s)) return s + v.currentTime * 1000;
  }
  if (v.readyState === 0) return base.at;
  return base.pdt + v.currentTime * 1000;
}

/**
 * FootagePlayer is what the footage dialog and the inline clip player share:
 * the state they show (data-state on stateEl), the message over the picture,
 * the clock of the picture shown, and loading a playlist into the engine for
 * one playback (seq: a later start or stop makes an older one's answers
 * late, and they are dropped). A subclass sets video, message and clockEl,
 * has a stateEl, and stop() ends its playback.
 */
export class FootagePlayer {
  /** watchVideo follows the video's playing, waiting and pause into the state shown. */
  watchVideo() {
    const v = this.video;
    v.addEventListener('playing', () => this.setState('playing'));
    v.addEventListener('waiting', () => this.state === 'playing' && this.setState('buffering'));
    v.addEventListener('pause', () => this.state === 'playing' && !v.ended && this.setState('paused'));
  }

  /**
   * loadPlaylist reads the playlist at url for playback seq: {pdt} (its first
   * PROGRAM-DATE-TIME in ms, or NaN), or null when seq is no longer current or
   * there is nothing to play (then the state and message say so: emptyText
   * where the server has no footage).
   */
  async loadPlaylist(url, seq, emptyText) {
    try {
      const { pdt } = await fetchPlaylist(url);
      return seq === this.seq ? { pdt } : null;
    } catch (err) {
      if (seq !== this.seq) return null;
      if (err instanceof ApiError && err.status === 404) {
        this.setState('empty');
        this.say('empty', emptyText);
      } else this.fail(`无法加载回放 · Cannot load the footage — ${describe(err)}`);
      return null;
    }
  }

  /** attach plays url in the video from start seconds for playback seq: the engine (attachPlaylist's), or null. */
  async attach(url, start, seq) {
    let eng;
    try {
      eng = await attachPlaylist(this.video, url, start, { current: () => seq === this.seq, onFatal: (text) => this.fail(text) });
    } catch (err) {
      if (seq === this.seq) this.fail(err?.message ?? String(err));
      return null;
    }
    if (!eng || seq !== this.seq) {
      eng?.destroy();
      return null;
    }
    return eng;
  }

  /** showClock shows the time of the picture (ms). */
  showClock(t) {
    this.clockEl.textContent = clock(t);
    this.clockEl.dateTime = new Date(t).toISOString();
    this.clockEl.dataset.time = new Date(t).toISOString();
  }

  /** clearClock shows no picture time. */
  clearClock() {
    this.clockEl.textContent = '—';
    delete this.clockEl.dataset.time;
  }

  fail(text) {
    this.stop();
    this.setState('error');
    this.say('error', text);
  }

  setState(state) {
    this.state = state;
    if (this.stateEl) this.stateEl.dataset.state = state;
    if (state === 'playing') this.say('', '');
    else if (state === 'buffering') this.say('hint', '缓冲中 · Buffering…');
  }

  say(kind, text) {
    this.message.dataset.kind = kind;
    this.message.textContent = text;
    this.message.hidden = text === '';
  }
}
