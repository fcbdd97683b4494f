// Photos and voice notes taken on the phone. A photo is made smaller on the
// phone before it is queued (longest side MAX_SIDE px, JPEG at QUALITY): a
// 12-megapixel camera picture of several MB becomes a few hundred KB, which
// a poor signal can carry. A voice note is recorded with MediaRecorder as
// WebM audio where the browser can.

/** MAX_SIDE is the longest side of a photo as sent, in pixels. */
export const MAX_SIDE = 1600;
/** QUALITY is the JPEG quality of a photo as sent. */
export const QUALITY = 0.8;

/**
 * shrinkPhoto returns {blob, width, height, originalBytes, resized} for an
 * image file: re-encoded as JPEG with its longest side at most MAX_SIDE
 * (its EXIF orientation applied), or the file itself when the browser
 * cannot decode it (the server then judges it) or when re-encoding would
 * not make it smaller.
 */
export async function shrinkPhoto(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
  } catch {
    return { blob: file, width: 0, height: 0, originalBytes: file.size, resized: false };
  }
  const { width: w0, height: h0 } = bitmap;
  const scale = Math.min(1, MAX_SIDE / Math.max(w0, h0));
  const width = Math.max(1, Math.round(w0 * scale));
  const height = Math.max(1, Math.round(h0 * scale));
  let blob;
  try {
    blob = await encode(bitmap, width, height);
  } finally {
    bitmap.close?.();
  }
  if (!blob || (scale === 1 && file.type === 'image/jpeg' && blob.size >= file.size)) {
    return { blob: file, width: w0, height: h0, originalBytes: file.size, resized: false };
  }
  return { blob, width, height, originalBytes: file.size, resized: true };
}

async function encode(bitmap, width, height) {
  if (typeof OffscreenCanvas === 'function') {
    const c = new OffscreenCanvas(width, height);
    const ctx = c.getContext('2d');
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(bitmap, 0, 0, width, height);
    return c.convertToBlob({ type: 'image/jpeg', quality: QUALITY });
  }
  const c = document.createElement('canvas');
  c.width = width;
  c.height = height;
  const ctx = c.getContext('2d');
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bitmap, 0, 0, width, height);
  return new Promise((resolve) => c.toBlob(resolve, 'image/jpeg', QUALITY));
}

/** voiceType is the recording type this browser supports ('' for none: no voice button). */
export function voiceType() {
  if (typeof MediaRecorder !== 'function' || !navigator.mediaDevices?.getUserMedia) return '';
  for (const t of ['audio/webm;codecs=opus', 'audio/webm', 'audio/ogg;codecs=opus', 'audio/mp4']) {
    if (MediaRecorder.isTypeSupported?.(t)) return t;
  }
  return '';
}

/** MAX_VOICE_MS caps a voice note (it is for a few words). */
export const MAX_VOICE_MS = 2 * 60 * 1000;

/**
 * VoiceRecorder records one voice note: start() asks for the microphone,
 * stop() resolves the Blob. onTick(ms) reports the length while recording;
 * onCap() is called when it reaches MAX_VOICE_MS (the caller stops it and
 * keeps the note, as if the person had tapped Stop).
 */
export class VoiceRecorder {
  constructor(type, onTick = () => {}, onCap = null) {
    this.type = type;
    this.onTick = onTick;
    this.onCap = onCap;
    this.rec = null;
    this.stream = null;
    this.chunks = [];
    this.timer = 0;
    this.startedAt = 0;
  }

  get recording() {
    return this.rec?.state === 'recording';
  }

  async start() {
    this.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    this.chunks = [];
    try {
      this.rec = new MediaRecorder(this.stream, { mimeType: this.type, audioBitsPerSecond: 32000 });
    } catch (err) {
      // The microphone is not left on for a recorder that never started.
      for (const t of this.stream.getTracks()) t.stop();
      this.stream = null;
      throw err;
    }
    this.rec.ondataavailable = (ev) => {
      if (ev.data?.size) this.chunks.push(ev.data);
    };
    this.done = new Promise((resolve) => {
      this.rec.onstop = () => resolve(new Blob(this.chunks, { type: this.type.split(';')[0] }));
    });
    this.rec.start(1000);
    this.startedAt = Date.now();
    this.timer = setInterval(() => {
      const ms = Date.now() - this.startedAt;
      this.onTick(ms);
      if (ms >= MAX_VOICE_MS) {
        clearInterval(this.timer);
        if (this.onCap) this.onCap();
        else this.stop();
      }
    }, 250);
  }

  /** stop ends the recording (and the microphone) and resolves its Blob. */
  async stop() {
    clearInterval(this.timer);
    if (this.rec && this.rec.state !== 'inactive') this.rec.stop();
    for (const t of this.stream?.getTracks() ?? []) t.stop();
    this.stream = null;
    return this.done;
  }
}

/** extensionOf is a file extension for a voice note's type. */
export function extensionOf(type) {
  if (type.includes('webm')) return 'webm';
  if (type.includes('ogg')) return 'ogg';
  if (type.includes('mp4')) return 'm4a';
  return 'bin';
}
