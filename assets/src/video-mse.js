// The Media Source half of a live player (video.js): a MediaSource on the
// <video>, fed the fMP4 the camera's WebSocket brings, trimmed to the last
// KEEP_SECONDS and held near the live edge.
//
// Keeping latency low: the page plays as soon as the first fragment is
// buffered; whenever the buffer's live edge is more than MAX_LATENCY ahead of
// the playhead (the cached GOP at the start, a stall, a throttled tab) the
// playhead jumps to TARGET_LATENCY before the edge; a smaller lag is made up by
// playing 20% faster. Only the last KEEP_SECONDS stay buffered.
//
// A device playback (device-playback.js) plays through the same feed: its
// pictures come at the speed asked of the device, so rate sets the speed
// the feed plays at (and catches up from), and hold keeps a paused picture
// still however much arrives.

const MAX_LATENCY = 1.0; // s behind the live edge before jumping
const TARGET_LATENCY = 0.15; // s behind the edge after a jump
const CATCH_UP_ABOVE = 0.5; // s: play a little faster above this lag …
const CATCH_UP_BELOW = 0.25; // … until it is below this one
const CATCH_UP_RATE = 1.2;
const KEEP_SECONDS = 10; // s of video kept buffered behind the live edge
const TRIM_EVERY_MS = 2000;
const MAX_QUEUE_BYTES = 8 << 20; // appends waiting for the SourceBuffer: more means it is wedged

/**
 * MediaFeed plays fMP4 segments in a <video> through Media Source Extensions.
 * open(mime) starts a fresh MediaSource (on each codec message), push(buf)
 * queues the initialisation segment and fragments that follow it, close()
 * drops the source. What no retry can help goes to fail(message); a source
 * that has gone wrong, to restart(why): the player connects again.
 */
export class MediaFeed {
  constructor(video, { fail, restart }) {
    this.video = video;
    this.fail = fail;
    this.restart = restart;
    this.jumps = 0; // times the playhead jumped to the live edge
    this.lastTrim = 0;
    this.catchingUp = false;
    this.playPending = false;
    this.objectURL = '';
    this.rate = 1; // the speed played at: a device playback's scale
    this.hold = false; // paused by the viewer: no play(), no jump to the edge
    this.close(); // no source yet: the state close() leaves
  }

  /**
   * open starts a fresh MediaSource for mime on the video and returns it;
   * segments pushed from now on go into it.
   */
  open(mime) {
    this.close();
    this.haveCodec = true;
    const ms = new MediaSource();
    this.ms = ms;
    this.objectURL = URL.createObjectURL(ms);
    ms.addEventListener(
      'sourceopen',
      () => {
        if (this.ms !== ms) return;
        URL.revokeObjectURL(this.objectURL);
        this.objectURL = '';
        let sb;
        try {
          sb = ms.addSourceBuffer(mime);
          sb.mode = 'segments'; // the fragments carry their own decode times
        } catch (err) {
          this.fail(`无法播放 · Cannot play ${mime}: ${err.message}`);
          return;
        }
        this.sb = sb;
        sb.addEventListener('updateend', () => {
          if (this.sb !== sb) return;
          this.keepLive();
          this.pump();
        });
        sb.addEventListener('error', () => {
          if (this.sb === sb) this.restart('视频数据错误 · bad video data');
        });
        this.pump();
      },
      { once: true },
    );
    this.video.src = this.objectURL;
    return ms;
  }

  /** push queues one binary message; before a codec message (open) it is dropped, as the protocol sends that first. */
  push(buf) {
    if (!this.haveCodec) return;
    this.queue.push(buf);
    this.queuedBytes += buf.byteLength;
    if (this.queuedBytes > MAX_QUEUE_BYTES) {
      this.restart('缓冲溢出 · buffer overflow');
      return;
    }
    this.pump();
  }

  /** close ends the MediaSource and empties the queue; the video keeps its last picture until detached. */
  close() {
    const ms = this.ms;
    this.ms = null;
    this.sb = null;
    this.queue = [];
    this.queuedBytes = 0;
    this.haveCodec = false;
    if (ms && ms.readyState === 'open') {
      try {
        ms.endOfStream();
      } catch {
        // a SourceBuffer was updating: the MediaSource is dropped anyway
      }
    }
    if (this.objectURL) {
      URL.revokeObjectURL(this.objectURL);
      this.objectURL = '';
    }
  }

  /** pump appends the next queued segment, or trims the buffer first. */
  pump() {
    const sb = this.sb;
    if (!sb || sb.updating || this.ms?.readyState !== 'open') return;
    const now = performance.now();
    if (now - this.lastTrim > TRIM_EVERY_MS) {
      this.lastTrim = now;
      const b = sb.buffered;
      if (b.length) {
        const start = b.start(0);
        const cut = Math.min(b.end(b.length - 1) - KEEP_SECONDS, this.video.currentTime - 1);
        if (cut - start > 1) {
          sb.remove(start, cut); // updateend pumps again
          return;
        }
      }
    }
    const chunk = this.queue.shift();
    if (!chunk) return;
    this.queuedBytes -= chunk.byteLength;
    try {
      sb.appendBuffer(chunk);
    } catch (err) {
      if (err?.name === 'QuotaExceededError') {
        this.queue.unshift(chunk);
        this.queuedBytes += chunk.byteLength;
        this.evict();
      } else {
        this.restart(`视频数据错误 · ${err?.message ?? err}`);
      }
    }
  }

  // The SourceBuffer is full: drop all but the last half second before the playhead.
  evict() {
    const sb = this.sb;
    const b = sb.buffered;
    const cut = this.video.currentTime - 0.5;
    if (b.length && cut > b.start(0) + 0.05) {
      this.lastTrim = performance.now();
      sb.remove(b.start(0), cut);
    } else {
      this.restart('缓冲区已满 · buffer full');
    }
  }

  /** keepLive starts playback once there is a picture and keeps the playhead near the live edge. */
  keepLive() {
    const v = this.video;
    const b = v.buffered;
    if (!b.length || this.hold) return;
    const start = b.start(b.length - 1);
    const end = b.end(b.length - 1);
    const t = v.currentTime;
    // Lags in the media's seconds: played faster, the same wait holds more of them.
    const k = Math.max(1, this.rate);
    if (t < start || end - t > MAX_LATENCY * k) {
      v.currentTime = Math.max(start, end - TARGET_LATENCY * k);
      this.jumps++;
      this.catchingUp = false;
      if (v.playbackRate !== this.rate) v.playbackRate = this.rate;
    } else {
      const lag = end - t;
      if (!this.catchingUp && lag > CATCH_UP_ABOVE * k) this.catchingUp = true;
      else if (this.catchingUp && lag < CATCH_UP_BELOW * k) this.catchingUp = false;
      const rate = this.catchingUp ? this.rate * CATCH_UP_RATE : this.rate;
      if (v.playbackRate !== rate) v.playbackRate = rate;
    }
    if (v.paused && !this.playPending) {
      this.playPending = true;
      v.play()
        .catch(() => {
          // replaced by a new source, or not allowed: the next append tries again
        })
        .finally(() => {
          this.playPending = false;
        });
    }
  }
}
