// WebRTC playback of a camera stream through the server's WHEP endpoint
// (POST /api/v1/cameras/{id}/whep with an SDP offer; DELETE its Location to
// leave). The server answers with its host candidates (no trickle ICE), so
// one request sets the session up; the first picture is the cached group of
// pictures decoded through at once, a few tens of milliseconds after the
// offer on a LAN. LivePlayer (video.js) tries this first and falls back to
// MSE when it fails.

import { session } from './api.js';

const GATHER_MS = 1500; // the browser's own candidates: host ones come at once

/** webrtcSupported: this browser has RTCPeerConnection. */
export function webrtcSupported() {
  return typeof window.RTCPeerConnection === 'function';
}

/** WHEPError is a failed WHEP request: status 0 for a network or WebRTC failure. */
export class WHEPError extends Error {
  constructor(message, status = 0, code = '') {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// A network that does not carry WebRTC (UDP blocked) is remembered for a
// while, so every tile that starts again does not wait for it to fail.
const BLOCKED_MS = 5 * 60 * 1000;
let blockedUntil = 0;

/** rtcBlocked: WebRTC failed on this page lately for want of a connection. */
export function rtcBlocked() {
  return performance.now() < blockedUntil;
}

/** noteRTCBlocked remembers that WebRTC could not connect. */
export function noteRTCBlocked() {
  blockedUntil = performance.now() + BLOCKED_MS;
}

/**
 * RTCFeed is one WHEP session playing into a <video>. open() resolves
 * {stream, codec, audio, audioNote} (what the server sends: the stream asked
 * for, or h264 when an H.265 camera is transcoded for this browser; the
 * sound sent, or why none) or throws WHEPError;
 * onEnd(reason) is called once if the connection fails or closes afterwards.
 */
export class RTCFeed {
  constructor(video, { onEnd = () => {} } = {}) {
    this.video = video;
    this.onEnd = onEnd;
    this.pc = null;
    this.location = '';
    this.closed = false;
  }

  async open(cameraId, stream) {
    // STUN/TURN from the server (GET /api/v1/me: ice_servers; none on a LAN).
    const iceServers = Array.isArray(session.user?.ice_servers) ? session.user.ice_servers : [];
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', iceServers });
    this.pc = pc;
    pc.addTransceiver('video', { direction: 'recvonly' });
    // The camera's sound where it is G.711 or Opus (AAC is not sent over WebRTC).
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const media = new MediaStream();
    pc.ontrack = (ev) => {
      if (this.closed) return;
      // For diagnostics (its getStats: jitter-buffer delay, frames).
      this.video.rtcPeer = pc;
      media.addTrack(ev.track);
      if (this.video.srcObject !== media) this.video.srcObject = media;
      this.video.play().catch(() => {});
    };
    pc.onconnectionstatechange = () => {
      if (this.closed) return;
      if (pc.connectionState === 'failed' || pc.connectionState === 'closed') this.end(`WebRTC ${pc.connectionState}`);
    };
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await gathered(pc, GATHER_MS);
    if (this.closed) throw new WHEPError('closed');
    const headers = { 'Content-Type': 'application/sdp', Accept: 'application/sdp' };
    if (session.csrf) headers['X-CSRF-Token'] = session.csrf;
    let res;
    try {
      res = await fetch(`/api/v1/cameras/${encodeURIComponent(cameraId)}/whep?stream=${encodeURIComponent(stream)}`, {
        method: 'POST',
        headers,
        body: pc.localDescription.sdp,
        credentials: 'same-origin',
        cache: 'no-store',
      });
    } catch {
      throw new WHEPError('无法连接 · cannot reach the server');
    }
    const text = await res.text();
    if (res.status !== 201) {
      let message = `HTTP ${res.status}`;
      let code = '';
      try {
        const e = JSON.parse(text)?.error;
        message = e?.message || message;
        code = e?.code ?? '';
      } catch {
        // not JSON
      }
      throw new WHEPError(message, res.status, code);
    }
    this.location = res.headers.get('Location') ?? '';
    if (this.closed) {
      this.leave();
      throw new WHEPError('closed');
    }
    await pc.setRemoteDescription({ type: 'answer', sdp: text });
    return {
      stream: res.headers.get('X-Gridwatch-Stream') || stream,
      codec: res.headers.get('X-Gridwatch-Codec') || '',
      audio: decodeHeader(res.headers.get('X-Gridwatch-Audio')),
      audioNote: decodeHeader(res.headers.get('X-Gridwatch-Audio-Note')),
    };
  }

  end(reason) {
    if (this.closed) return;
    this.close();
    this.onEnd(reason);
  }

  /**
   * close ends the session: the server's first (DELETE), then the peer
   * connection once the server has answered, so that the DELETE finds the
   * session it ends rather than one the closed connection ended already.
   */
  close() {
    if (this.closed) return;
    this.closed = true;
    if (this.video.srcObject) this.video.srcObject = null;
    const pc = this.pc;
    this.leave().finally(() => pc?.close());
  }

  leave() {
    if (!this.location) return Promise.resolve();
    const headers = session.csrf ? { 'X-CSRF-Token': session.csrf } : {};
    const url = this.location;
    this.location = '';
    return fetch(url, { method: 'DELETE', headers, credentials: 'same-origin', keepalive: true }).catch(() => {});
  }
}

// decodeHeader reads a header the server percent-encodes (it may hold µ).
function decodeHeader(v) {
  if (!v) return '';
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

// gathered resolves once the browser's candidates are in its description, or after ms.
function gathered(pc, ms) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === 'complete') done();
    }
    pc.addEventListener('icegatheringstatechange', check);
  });
}
