// The inline footage player: an incident's linked clip played in place, with
// the footage dialog's engine (footage-player.js).

import { el } from './dom.js';
import { clock, hhmm } from './footage-format.js';
import { FootagePlayer, pictureTime, playbackURL, stopVideo } from './footage-player.js';
import { serverNow } from './clock.js';

/**
 * InlineFootage plays one window of a camera's footage in place — an
 * incident's linked clip — with the footage view's engine (attachPlaylist:
 * hls.js over the HLS VOD playlist, or native HLS). The <video> has the
 * browser's controls (keyboard usable); the bar shows the wall-clock time of
 * the picture, and Close.
 *
 * Test hooks: .inline-footage[data-camera][data-from][data-to][data-state=loading|playing|buffering|paused|ended|empty|error][data-engine]
 *   with video, .footage-clock[data-time], .footage-message[data-kind], .inline-close
 */
export class InlineFootage extends FootagePlayer {
  /** onClose() runs when its Close is pressed (after it stopped). */
  constructor({ onClose = () => {} } = {}) {
    super();
    this.onClose = onClose;
    this.seq = 0;
    this.eng = null;
    this.base = null;
    this.timer = 0;
    this.video = el('video', { className: 'inline-video', muted: true, playsInline: true, controls: true, 'aria-label': '录像片段 · Footage clip' });
    this.message = el('div', { className: 'footage-message', role: 'status', hidden: true });
    this.clockEl = el('time', { className: 'footage-clock', title: '画面时间 · Time of the picture shown' }, '—');
    this.rangeEl = el('span', 'inline-range');
    const close = el('button', { type: 'button', className: 'btn btn-small inline-close' }, '关闭播放 · Close player');
    close.addEventListener('click', () => {
      this.stop();
      this.element.remove();
      this.onClose();
    });
    this.element = el(
      'div',
      { className: 'inline-footage', role: 'region', 'aria-label': '录像片段播放器 · Footage player' },
      el('div', 'inline-stage', this.video, this.message),
      el('div', 'inline-bar', this.clockEl, this.rangeEl, close),
    );
    const v = this.video;
    this.watchVideo();
    v.addEventListener('ended', () => {
      if (!this.base) return;
      this.setState('ended');
      this.say('ended', '片段已播放完 · End of the clip');
    });
    v.addEventListener('error', () => {
      if (this.eng?.engine === 'native' && this.base) this.fail(`播放错误 · Media error ${v.error?.code ?? ''}`.trim());
    });
  }

  /** stateEl carries data-state: the player itself. */
  get stateEl() {
    return this.element;
  }

  /** play plays camera cam ({id, code}) from..to (ms): from the first footage in the window to its end, or now. */
  async play(cam, from, to) {
    this.stop();
    const seq = ++this.seq;
    const now = serverNow();
    const end = Math.min(to, now - 500);
    const d = this.element.dataset;
    d.camera = String(cam.id);
    d.from = new Date(from).toISOString();
    d.to = new Date(to).toISOString();
    this.rangeEl.textContent = `${cam.code ?? ''} ${clock(from)} – ${hhmm(to, true)}`.trim();
    this.setState('loading');
    this.say('hint', '加载录像… · Loading the footage…');
    if (!(end > from)) {
      this.setState('empty');
      this.say('empty', '此时段尚未开始 · This window has not started yet');
      return;
    }
    const url = playbackURL(cam.id, from, end);
    const list = await this.loadPlaylist(url, seq, '此时段无录像 · No footage in this window');
    if (!list) return;
    this.base = { at: from, pdt: Number.isFinite(list.pdt) ? list.pdt : from };
    const eng = await this.attach(url, Math.max(0, (from - this.base.pdt) / 1000), seq);
    if (!eng) return;
    this.eng = eng;
    d.engine = eng.engine;
    this.timer = setInterval(() => this.tick(), 250);
  }

  tick() {
    if (!this.base) return;
    const t = pictureTime(this.video, this.eng, this.base);
    if (Number.isFinite(t)) this.showClock(t);
  }

  /** stop ends playback and frees the engine (the element stays where it is). */
  stop() {
    this.seq++;
    clearInterval(this.timer);
    this.timer = 0;
    this.eng?.destroy();
    this.eng = null;
    this.base = null;
    stopVideo(this.video);
    delete this.element.dataset.engine;
    delete this.element.dataset.state;
    this.clearClock();
  }
}
