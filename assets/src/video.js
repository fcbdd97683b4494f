// Live video of one camera in a <video>: Media Source Extensions fed by the
// camera's WebSocket (fMP4), or the camera's HLS playlist where MSE is missing
// (Safari on iOS). Nothing here runs until a player is started: the map's
// first load does not wait for video.
//
// The WebSocket GET /api/v1/cameras/{id}/live?stream=main|sub sends
//   text   {"type":"status","state":{status,reason,since,fps,bitrate,…}}  at the start and on each change
//   text   {"type":"codec","mime":"video/mp4; codecs=\"avc1.…\"","width","height"}
//   binary the initialisation segment (ftyp+moov), right after each codec message
//   binary one or more fragments (moof+mdat), one picture each; the first is the
//          cached group of pictures from the latest keyframe.
// Each codec message starts a fresh MediaSource and SourceBuffer (MediaFeed,
// video-mse.js, which also keeps the playhead near the live edge). The socket
// closes when the stream stops; the player reconnects with backoff
// (reconnect.js) until it is stopped. How the stream's numbers read is in
// video-format.js.

import { getJSON } from './api.js';
import { MediaFeed } from './video-mse.js';
import { Reconnect, backoffMs } from './reconnect.js';
import { RTCFeed, noteRTCBlocked, rtcBlocked, webrtcSupported } from './video-webrtc.js';

const STALL_MS = 3000; // no new picture for this long while online: "buffering"
const RESTART_STALLED_MS = 10000; // … and for this long: reconnect
const SILENT_MS = 15000; // an open socket that has said nothing this long, before any picture: reconnect
const BACKOFF_FIRST_MS = 500; // the first retry's wait, doubled for each one after …
const BACKOFF_MAX_MS = 15000; // … up to this
const RTC_FIRST_PICTURE_MS = 6000; // a WebRTC session without a picture by then falls back to MSE

// noWebRTC: WebRTC switched off for this browser (localStorage gridwatch.webrtc = "off"), to compare or to work around a network.
function noWebRTC() {
  try {
    return localStorage.getItem('gridwatch.webrtc') === 'off';
  } catch {
    return false;
  }
}

/** STREAM_LABEL names the streams of a camera (h264: the main stream transcoded by the server). */
export const STREAM_LABEL = { main: '主码流 main', sub: '子码流 sub', h264: '转码 H.264 transcoded' };

// FALLBACK: when this browser cannot decode a stream's codec (an H.265
// camera, and no H.265 decoder), the stream to try next: the sub stream
// (often H.264), then the main stream transcoded to H.264 by the server.
const FALLBACK = { main: 'sub', sub: 'h264' };

// rtspPort is the server's RTSP re-serve port (from /api/v1/meta), offered
// when nothing here can play a camera.
let rtspPort = 0;

/** setRTSPPort tells the players the RTSP re-serve's port (0: none). */
export function setRTSPPort(port) {
  rtspPort = Number(port) || 0;
}

/** rtspLink is a camera's RTSP re-serve URL on this host, or '' when there is none. */
export function rtspLink(id) {
  return rtspPort ? `rtsp://${location.hostname}:${rtspPort}/cameras/${encodeURIComponent(id)}` : '';
}

/** mseSupported: this browser has Media Source Extensions. */
export function mseSupported() {
  return typeof window.MediaSource === 'function';
}

/** hlsPlayable: no MSE, but the <video> plays HLS itself (Safari, iOS). */
export function hlsPlayable(video) {
  return !mseSupported() && video.canPlayType('application/vnd.apple.mpegurl') !== '';
}

/** SOUND_EVENT tells the page's players that one of them is now heard. */
const SOUND_EVENT = 'gridwatch-sound';

/** liveSocketURL is the camera's MSE WebSocket on this origin; audio asks for the camera's sound in the fragments. */
export function liveSocketURL(id, stream, audio = false) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/api/v1/cameras/${encodeURIComponent(id)}/live?stream=${encodeURIComponent(stream)}${audio ? '&audio=1' : ''}`;
}

/** hlsURL is the camera's live HLS playlist on this origin. */
export function hlsURL(id, stream) {
  return `/api/v1/cameras/${encodeURIComponent(id)}/hls/index.m3u8?stream=${encodeURIComponent(stream)}`;
}

// A media-src violation means the page's Content-Security-Policy refuses the
// blob: URL a MediaSource is played from: no retry can help, so say so.
let cspBlocksMedia = false;
document.addEventListener('securitypolicyviolation', (ev) => {
  if (/^(media-src|default-src)/.test(ev.effectiveDirective || ev.violatedDirective) && String(ev.blockedURI).startsWith('blob')) cspBlocksMedia = true;
});
const CSP_MESSAGE = "页面安全策略阻止了视频 · The page's Content-Security-Policy blocks video (media-src needs blob:)";

/**
 * LivePlayer plays one stream of one camera in a <video>. onChange(player) is
 * called whenever phase, status or size change; read:
 *   phase     'idle' | 'connecting' | 'playing' | 'stalled' | 'reconnecting' | 'offline' | 'error'
 *   status    the last server status ({status, reason, since, fps, bitrate, …}) or null
 *   message   what went wrong, for 'error' (and the close reason while reconnecting)
 *   width, height, mime   from the last codec message
 *   stream    the stream playing: the one asked for, or its fallback (FALLBACK) when
 *             this browser cannot decode that one's codec; asked: the one asked for
 *   engine    how it plays: 'webrtc' (tried first, WHEP), 'mse' (fMP4 over a WebSocket) or 'hls'
 *   firstFrameAt          performance.now() of the first picture shown (0 until then)
 *   startedAt             performance.now() of start()
 */
export class LivePlayer {
  constructor(video, { cameraId, stream = 'sub', onChange = () => {} }) {
    this.video = video;
    this.cameraId = cameraId;
    this.asked = stream;
    this.stream = stream;
    this.onChange = onChange;
    this.phase = 'idle';
    this.status = null;
    this.message = '';
    this.width = 0;
    this.height = 0;
    this.mime = '';
    // audio names the sound playing with the picture ('' for none);
    // audioNote says why the camera's sound is not here (G.711 over MSE).
    // noAudio: this browser's MediaSource refused the picture with its
    // sound, so MSE asks for the picture alone.
    this.audio = '';
    this.audioNote = '';
    this.noAudio = false;
    this.mode = mseSupported() ? 'mse' : hlsPlayable(video) ? 'hls' : 'none';
    // WebRTC first where the browser has it; a failure falls back to this
    // mode until the player is started again.
    this.rtcAllowed = webrtcSupported() && !noWebRTC();
    this.rtcFailed = false;
    this.rtc = null;
    this.engine = '';
    this.startedAt = 0;
    this.firstFrameAt = 0;
    this.bytesIn = 0;

    this.active = false;
    this.ws = null;
    this.feed = new MediaFeed(video, { fail: (message) => this.fail(message), restart: (why) => this.restart(why) });
    this.retrying = new Reconnect(() => this.connect());
    this.playing = false; // a picture of the current source has been shown
    this.stalled = false;
    this.error = '';
    this.failedOpens = 0;
    this.watchTimer = 0;
    this.lastFrames = 0;
    this.lastProgress = 0;
    this.lastMessage = 0;

    video.muted = true;
    video.defaultMuted = true;
    video.playsInline = true;
    video.autoplay = true;
    video.disablePictureInPicture = true;
    video.setAttribute('playsinline', '');
    video.setAttribute('muted', '');
    this.onVideoError = () => this.videoFailed();
    video.addEventListener('error', this.onVideoError);
    this.onOtherSound = (ev) => {
      if (ev.detail !== this && !this.video.muted) this.setMuted(true);
    };
    window.addEventListener(SOUND_EVENT, this.onOtherSound);
  }

  /** start connects (again); a started player reconnects on its own until stop(). */
  start() {
    if (this.active) return;
    this.active = true;
    this.error = '';
    this.noAudio = false;
    this.audioNote = '';
    this.stream = this.asked;
    this.rtcFailed = rtcBlocked();
    this.status = null; // a state an earlier MSE session reported is no longer news
    this.retrying.attempts = 0;
    this.startedAt = performance.now();
    this.firstFrameAt = 0;
    if (this.mode === 'none' && !this.rtcAllowed) {
      this.fail('此浏览器无法播放实时视频 · This browser cannot play live video (no WebRTC, no MSE, no HLS)');
      return;
    }
    this.watchTimer = setInterval(() => this.watch(), 500);
    this.connect();
  }

  /** stop closes the socket and empties the video; start() may follow. */
  stop() {
    if (!this.active && this.phase === 'idle') return;
    this.active = false;
    this.retrying.cancel();
    clearInterval(this.watchTimer);
    this.watchTimer = 0;
    this.closeSocket();
    this.feed.close();
    this.detachVideo();
    this.phase = 'idle';
    this.playing = false;
    this.stalled = false;
  }

  /** destroy stops for good and lets go of the <video>. */
  destroy() {
    this.stop();
    this.video.removeEventListener('error', this.onVideoError);
    window.removeEventListener(SOUND_EVENT, this.onOtherSound);
    this.onChange = () => {};
  }

  /** muted: the player starts silent (a wall of cameras must not all speak); setMuted(false) lets one be heard. */
  get muted() {
    return this.video.muted;
  }

  setMuted(on) {
    this.video.muted = on;
    if (!on) {
      this.video.play().catch(() => {});
      // One player heard at a time, on the whole page (the wall's tiles and the player).
      window.dispatchEvent(new CustomEvent(SOUND_EVENT, { detail: this }));
    }
    this.onChange(this);
  }

  /**
   * soundElsewhere: the camera has sound the way this player plays does not
   * carry (AAC over WebRTC; G.711 over MSE), and the other way may: asking
   * for the sound (playWithSound) switches to it.
   */
  get soundElsewhere() {
    if (this.audio || !this.audioNote || !this.active) return false;
    if (this.engine === 'webrtc') return this.mode === 'mse';
    return this.engine === 'mse' && this.rtcAllowed;
  }

  /** playWithSound unmutes, moving to the way that carries the camera's sound when this one does not. */
  playWithSound() {
    if (!this.soundElsewhere) {
      this.setMuted(false);
      return;
    }
    this.video.muted = false;
    window.dispatchEvent(new CustomEvent(SOUND_EVENT, { detail: this }));
    this.rtcFailed = this.engine === 'webrtc'; // WebRTC → MSE, MSE → WebRTC
    this.message = this.rtcFailed ? '声音经 MSE 播放 · sound plays over MSE' : '声音经 WebRTC 播放 · sound plays over WebRTC';
    this.audio = '';
    this.audioNote = '';
    this.retrying.cancel();
    this.closeSocket();
    this.feed.close();
    this.playing = false;
    this.connect();
    this.update();
  }

  /** latency is how far behind the buffered live edge the playhead is, in seconds (NaN before any video). */
  get latency() {
    const b = this.video.buffered;
    return b.length ? b.end(b.length - 1) - this.video.currentTime : NaN;
  }

  // ---- state --------------------------------------------------------------------------

  update() {
    let phase;
    if (!this.active) phase = 'idle';
    else if (this.error) phase = 'error';
    else if (this.status?.status === 'offline') phase = 'offline';
    else if (this.playing) phase = this.stalled ? 'stalled' : 'playing';
    else if (this.retrying.attempts > 0 && !this.ws) phase = 'reconnecting';
    else phase = 'connecting';
    this.phase = phase;
    this.onChange(this);
  }

  fail(message) {
    this.error = message;
    this.closeSocket();
    this.retrying.cancel();
    this.update();
  }

  // ---- connection ---------------------------------------------------------------------

  connect() {
    if (!this.active) return;
    this.stalled = false;
    this.lastProgress = performance.now();
    if (this.rtcAllowed && !this.rtcFailed) {
      this.startWebRTC();
      return;
    }
    if (this.mode === 'none') {
      this.fail('此浏览器无法播放实时视频 · This browser cannot play live video (WebRTC failed; no MSE, no HLS)');
      return;
    }
    if (this.mode === 'hls') {
      this.startHLS();
      return;
    }
    let ws;
    try {
      ws = new WebSocket(liveSocketURL(this.cameraId, this.stream, !this.noAudio));
    } catch (err) {
      this.fail(`无法连接 · Cannot connect: ${err.message}`);
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.engine = 'mse';
    this.feed.haveCodec = false; // a new socket starts with a codec message
    this.lastMessage = performance.now();
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.failedOpens = 0;
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.lastMessage = performance.now();
      if (typeof ev.data === 'string') this.onText(ev.data);
      else this.onBinary(ev.data);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (!opened) this.failedOpens++;
      this.message = ev.reason || (opened ? '' : '连接被拒绝 · connection refused');
      if (this.stream === 'h264' && /ffmpeg/.test(ev.reason)) {
        // The last fallback cannot run here at all: no retry will help.
        const link = rtspLink(this.cameraId);
        this.fail(`此浏览器无法解码此摄像机的 H.265，服务器也无法转码 · This browser cannot decode the camera's H.265 and the server cannot transcode (${ev.reason})${link ? ` — 请用 VLC 打开 · open in VLC: ${link}` : ''}`);
        return;
      }
      this.retry();
    };
    this.update();
  }

  closeSocket() {
    if (this.rtc) {
      clearTimeout(this.rtcTimer);
      this.rtc.close();
      this.rtc = null;
    }
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

  /** retry reconnects after a backoff; after refused handshakes it asks the API why. */
  async retry() {
    if (!this.active || this.error) return;
    this.retrying.attempts++;
    this.update();
    if (this.failedOpens >= 2) {
      // The handshake's HTTP status is invisible to a WebSocket: the camera's
      // own URL tells a lost session (sign in again), no permission or no camera.
      try {
        await getJSON(`/api/v1/cameras/${encodeURIComponent(this.cameraId)}`);
      } catch (err) {
        if (err?.status === 403 || err?.status === 404) {
          this.fail(`${err.status === 403 ? '无权限 · Not allowed' : '无此摄像机 · No such camera'} — ${err.message}`);
          return;
        }
      }
      if (!this.active) return;
    }
    const base = backoffMs(this.retrying.attempts, BACKOFF_FIRST_MS, BACKOFF_MAX_MS);
    this.retrying.after(base * (0.8 + Math.random() * 0.4));
  }

  /**
   * kick connects again now, unless a picture is showing: the camera is known
   * to be back (a camera.online event), so neither wait for the backoff nor
   * trust a socket that has not brought video.
   */
  kick() {
    if (!this.active || this.error || this.playing) return;
    this.retrying.cancel();
    this.closeSocket();
    this.retrying.attempts = 0;
    this.connect();
  }

  /** restart drops the connection and its MediaSource and connects again (after a backoff). */
  restart(why) {
    if (!this.active) return;
    this.message = why;
    this.closeSocket();
    this.feed.close();
    this.playing = false;
    this.retry();
  }

  onText(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg?.type === 'status' && msg.state && typeof msg.state === 'object') {
      // A new attempt on a camera known to be offline: still offline until it is online.
      if (msg.state.status === 'connecting' && this.status?.status === 'offline') return;
      this.status = msg.state;
      if (msg.state.width > 0 && !this.width) {
        this.width = msg.state.width;
        this.height = msg.state.height;
      }
      this.update();
    } else if (msg?.type === 'codec' && typeof msg.mime === 'string') {
      this.mime = msg.mime;
      this.width = Number(msg.width) || this.width;
      this.height = Number(msg.height) || this.height;
      this.audio = typeof msg.audio === 'string' ? msg.audio : '';
      if (!this.noAudio) this.audioNote = '';
      const videoOnly = msg.mime.replace(/,[^,"]+"$/, '"');
      if (!MediaSource.isTypeSupported(msg.mime)) {
        // The picture may play without its sound (a browser that refuses
        // the sound, not the picture): ask for the picture alone.
        if (this.audio && !this.noAudio && videoOnly !== msg.mime && MediaSource.isTypeSupported(videoOnly)) {
          // The picture may play without its sound: ask for it alone.
          this.noAudio = true;
          this.audioNote = `此浏览器无法播放 ${this.audio} · This browser cannot play ${this.audio}`;
          this.audio = '';
          this.closeSocket();
          this.feed.close();
          this.playing = false;
          this.retrying.cancel();
          this.connect();
          return;
        }
        this.unsupported(msg.mime);
        return;
      }
      const ms = this.feed.open(msg.mime);
      this.playing = false;
      this.watchFrames(ms);
      this.update();
    }
  }

  // ---- WebRTC (WHEP) ---------------------------------------------------------------------

  /** startWebRTC opens a WHEP session; any failure before a picture falls back to MSE (or HLS). */
  async startWebRTC() {
    const feed = new RTCFeed(this.video, { onEnd: (why) => this.rtcEnded(feed, why) });
    this.rtc = feed;
    this.engine = 'webrtc';
    this.update();
    let info;
    try {
      info = await feed.open(this.cameraId, this.stream);
    } catch (err) {
      if (this.rtc !== feed) return;
      if (err.status === 401 || (err.status === 403 && err.code !== 'csrf') || err.status === 404) {
        this.fail(`${err.status === 404 ? '无此摄像机 · No such camera' : '无权限 · Not allowed'} — ${err.message}`);
        return;
      }
      this.rtcEnded(feed, err.message);
      return;
    }
    if (this.rtc !== feed) return;
    // Answered: no picture soon means this network does not carry WebRTC
    // (UDP blocked), remembered for the page's other players.
    this.rtcTimer = setTimeout(() => {
      noteRTCBlocked();
      this.rtcEnded(feed, '无画面 · no picture');
    }, RTC_FIRST_PICTURE_MS);
    if (info.stream !== this.stream) this.stream = info.stream;
    this.mime = info.codec ? `video/${info.codec}` : '';
    this.audio = info.audio;
    this.audioNote = info.audioNote;
    const v = this.video;
    const shown = () => {
      if (this.rtc !== feed || !this.active) return;
      clearTimeout(this.rtcTimer);
      if (!this.playing) {
        this.playing = true;
        this.retrying.attempts = 0;
        this.message = '';
        if (!this.firstFrameAt) this.firstFrameAt = performance.now();
        this.update();
      }
    };
    if (typeof v.requestVideoFrameCallback === 'function') v.requestVideoFrameCallback(shown);
    else v.addEventListener('playing', shown, { once: true });
    this.update();
  }

  /** rtcEnded: a WebRTC session that failed before its first picture falls back; one that played reconnects. */
  rtcEnded(feed, why) {
    if (this.rtc !== feed || !this.active) return;
    clearTimeout(this.rtcTimer);
    feed.close();
    this.rtc = null;
    const played = this.playing;
    this.playing = false;
    if (!played) {
      if (/failed/.test(why)) noteRTCBlocked(); // ICE failed: this network does not carry it
      this.rtcFailed = true;
      this.engine = this.mode;
      this.message = `WebRTC: ${why} — ${this.mode.toUpperCase()}`;
      this.connect();
      return;
    }
    this.message = why;
    this.retry();
  }

  /** unsupported moves to the next stream this browser might decode, or says nothing here can play the camera. */
  unsupported(mime) {
    const codec = mime.replace(/^video\/mp4;\s*codecs="?([^"]+)"?$/, '$1');
    const next = FALLBACK[this.stream];
    if (next) {
      this.stream = next;
      this.mime = '';
      this.noAudio = false; // the next stream's sound may well play
      this.closeSocket();
      this.feed.close();
      this.playing = false;
      this.retrying.cancel();
      this.retrying.attempts = 0;
      this.failedOpens = 0;
      this.message = `此浏览器无法解码 ${codec}，改用${STREAM_LABEL[next]} · This browser cannot decode ${codec}: trying ${STREAM_LABEL[next]}`;
      this.connect();
      return;
    }
    const link = rtspLink(this.cameraId);
    this.fail(`此浏览器无法解码 ${codec} · This browser cannot decode ${codec}${link ? ` — 请用 VLC 打开 · open in VLC: ${link}` : ''}`);
  }

  onBinary(buf) {
    this.bytesIn += buf.byteLength;
    this.feed.push(buf);
  }

  // ---- the video ----------------------------------------------------------------------

  detachVideo() {
    const v = this.video;
    v.pause();
    if (v.srcObject) v.srcObject = null;
    if (v.hasAttribute('src') || v.currentSrc) {
      v.removeAttribute('src');
      v.load(); // releases the decoder and the MediaSource
    }
  }

  // The first picture of source ms marks it playing.
  watchFrames(ms) {
    const v = this.video;
    const shown = () => {
      if (this.feed.ms !== ms || !this.active) return;
      if (!this.playing) {
        this.playing = true;
        this.retrying.attempts = 0;
        this.failedOpens = 0;
        this.message = '';
        if (!this.firstFrameAt) this.firstFrameAt = performance.now();
        this.update();
      }
    };
    if (typeof v.requestVideoFrameCallback === 'function') v.requestVideoFrameCallback(shown);
    else v.addEventListener('playing', shown, { once: true });
  }

  /** watch runs twice a second: the live edge, stalls. */
  watch() {
    if (!this.active || document.hidden) return;
    const v = this.video;
    const frames = typeof v.getVideoPlaybackQuality === 'function' ? v.getVideoPlaybackQuality().totalVideoFrames : Number(v.webkitDecodedFrameCount) || 0;
    const now = performance.now();
    if (frames !== this.lastFrames) {
      this.lastProgress = now;
      this.lastFrames = frames;
      if (this.stalled) {
        this.stalled = false;
        this.update();
      }
    }
    if (this.engine === 'mse') this.feed.keepLive();
    if (this.engine === 'webrtc' && this.rtc?.pc) {
      // WebRTC's bytes, for the bitrate shown: the receiver's counter.
      const rtc = this.rtc;
      rtc.pc
        .getStats()
        .then((st) =>
          st.forEach((r) => {
            if (this.rtc === rtc && r.type === 'inbound-rtp' && r.kind === 'video') this.bytesIn = r.bytesReceived;
          }),
        )
        .catch(() => {});
    }
    const online = this.status?.status !== 'offline';
    const quiet = now - this.lastProgress;
    if (this.playing && online && quiet > STALL_MS && !this.stalled) {
      this.stalled = true;
      this.update();
    }
    if (this.playing && online && quiet > RESTART_STALLED_MS) {
      this.lastProgress = now;
      if (this.mode === 'hls') this.restartHLS();
      else this.restart('无新画面 · no new pictures');
    }
    // A socket that stays silent may be half-open, or held by a stream that
    // has stopped: a camera that is offline says so again on a new one.
    if (this.mode === 'mse' && this.ws && !this.playing && now - this.lastMessage > SILENT_MS) this.restart('');
  }

  videoFailed() {
    if (!this.active) return;
    const err = this.video.error;
    if (!err) return;
    if (cspBlocksMedia || /safety check/i.test(err.message ?? '')) {
      this.fail(CSP_MESSAGE);
      return;
    }
    const why = `播放错误 · media error ${err.code}${err.message ? `: ${err.message}` : ''}`;
    if (this.mode === 'hls') this.restartHLS(why);
    else this.restart(why);
  }

  // ---- HLS (no MSE) -------------------------------------------------------------------

  startHLS() {
    this.engine = 'hls';
    const v = this.video;
    const shown = () => {
      if (!this.active) return;
      if (!this.playing) {
        this.playing = true;
        this.retrying.attempts = 0;
        if (!this.firstFrameAt) this.firstFrameAt = performance.now();
        this.update();
      }
    };
    v.addEventListener('playing', shown, { once: true });
    v.src = hlsURL(this.cameraId, this.stream);
    v.play().catch(() => {});
    this.update();
  }

  restartHLS(why = '') {
    if (!this.active) return;
    this.message = why;
    this.playing = false;
    this.detachVideo();
    this.retrying.attempts++;
    this.update();
    this.retrying.after(backoffMs(this.retrying.attempts, BACKOFF_FIRST_MS, BACKOFF_MAX_MS));
  }
}
