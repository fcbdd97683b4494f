// The footage dialog's device playback: "▶ 设备回放 Play from device" on a
// range of the device lane (footage-device.js) plays it from the GB/T 28181
// device itself, through gridwatch (DevicePlayback, device-playback.js), in
// the player area: a <video> of its own takes the place of gridwatch's
// footage player (hidden by the dialog's data-mode=device), which stops, and
// comes back when this closes (× in the bar, a click on gridwatch's
// timeline, the dialog closed). Closing ends the playback on the server
// (DELETE).
//
// Its bar: pause / resume, a seek slider over the range, the speeds SPEEDS,
// the device's time of the picture (the range's start + the position), sound
// and close. ← / → move it 10 s. The controls are the device's: they wait
// for its answer, and say so when it refuses.
// devicePlayMethods are FootageDialog's own (footage.js mixes them in).
//
// Test hooks:
//   #footage-dialog[data-mode=device] while it is open; [data-device-playback-closed=ID] once the
//     server has been told it is closed
//   #footage-dialog .devplay[data-state=starting|connecting|playing|paused|ended|error][data-playback=ID]
//     [data-from][data-to] (ISO)[data-paused][data-scale][data-fragments] (binary messages received) with
//     .devplay-time[data-time=ISO] (the device's time of the picture), input.devplay-seek[max=s],
//     .devplay-pause[data-action=pause|resume], .devplay-speed[data-scale][aria-pressed],
//     .devplay-sound[aria-pressed], .devplay-close, .devplay-note[data-kind=error|hint]
//   #footage-dialog video.devplay-video; .devplay-message[data-kind] (over the picture until it plays, at the end)

import { describe } from './api.js';
import { DevicePlayback, SPEEDS } from './device-playback.js';
import { el } from './dom.js';
import { clock, formatDuration, hhmm, iso } from './footage-format.js';

const speedText = (s) => `${s}×`;

/** devicePlayMethods play a range of a GB/T 28181 device's recordings in the footage dialog. */
export const devicePlayMethods = {
  /** buildDevicePlay makes the device playback's <video>, its message and its bar (all hidden until it plays). */
  buildDevicePlay() {
    this.devVideo = el('video', { className: 'devplay-video', muted: true, playsInline: true, controls: false, hidden: true });
    this.devMessage = el('div', { className: 'devplay-message', role: 'status', hidden: true });
    this.devPlay = new DevicePlayback(this.devVideo, { onChange: () => this.onDevicePlay() });
    this.devPauseBtn = el('button', { type: 'button', className: 'btn btn-small devplay-pause', dataset: { action: 'pause' } }, '‖ 暂停 Pause');
    this.devPauseBtn.addEventListener('click', () => this.toggleDevicePause());
    this.devTime = el('time', { className: 'devplay-time', title: '设备时间 · The device\'s time of the picture' }, '—');
    this.devSeek = el('input', { type: 'range', className: 'devplay-seek', min: 0, max: 1, step: 1, value: 0, 'aria-label': '设备回放位置 · Position in the range' });
    // While dragged the slider shows where it would go; let go, the device goes there.
    this.devSeek.addEventListener('input', () => {
      this.devSeeking = true;
      const at = Number(this.devSeek.value);
      this.devTime.textContent = clock(this.devPlay.from + at * 1000);
    });
    this.devSeek.addEventListener('change', () => this.seekDevice(Number(this.devSeek.value)));
    // Let go without a change (back where it was): the slider follows the picture again.
    const letGo = () =>
      setTimeout(() => {
        if (!this.devSeekBusy) this.devSeeking = false;
      }, 0);
    this.devSeek.addEventListener('pointerup', letGo);
    this.devSeek.addEventListener('blur', letGo);
    this.devSpeeds = SPEEDS.map((s) => {
      const b = el('button', { type: 'button', className: 'btn btn-small devplay-speed', dataset: { scale: String(s) }, 'aria-pressed': String(s === 1), title: `${speedText(s)} 速度 · speed` }, speedText(s));
      b.addEventListener('click', () => this.speedDevice(s));
      return b;
    });
    this.devSound = el('button', { type: 'button', className: 'btn btn-small devplay-sound', 'aria-pressed': 'false', title: '声音 · Sound' }, '🔇 声音 Sound');
    this.devSound.addEventListener('click', () => {
      const on = this.devVideo.muted;
      this.devVideo.muted = !on;
      if (on) this.devVideo.play().catch(() => {});
      this.devSound.setAttribute('aria-pressed', String(on));
      this.devSound.textContent = on ? '🔊 声音 Sound' : '🔇 声音 Sound';
    });
    const close = el('button', { type: 'button', className: 'btn btn-small devplay-close', title: '结束设备回放，回到 gridwatch 录像 · End the device playback, back to gridwatch\'s footage' }, '× 关闭 Close');
    close.addEventListener('click', () => this.closeDevicePlay());
    this.devRangeText = el('span', 'devplay-range');
    this.devPlayNote = el('span', { className: 'devplay-note', role: 'status' });
    this.devBar = el(
      'div',
      { className: 'devplay', hidden: true, role: 'group', 'aria-label': '设备回放 · Playing from the device' },
      el('div', 'devplay-row', el('span', 'devplay-badge', '设备回放 · From device'), this.devTime, this.devRangeText, this.devPlayNote, close),
      el('div', 'devplay-row', this.devPauseBtn, this.devSeek, el('span', { className: 'devplay-speeds', role: 'group', 'aria-label': '速度 Speed' }, ...this.devSpeeds), this.devSound),
    );
    this.devSeeking = false; // the slider is being moved: it shows where it would go, not the picture
    this.devSeekBusy = false; // a seek is on its way to the device
    return this.devBar;
  },

  /** playFromDevice plays from..to (ms) from the device, in place of gridwatch's footage. */
  playFromDevice(from, to) {
    if (!this.cam) return;
    this.stop(); // gridwatch's own footage stops: one picture at a time
    this.setState('idle');
    this.seq++; // a playlist of gridwatch's still on its way is dropped
    this.say('', '');
    this.devVideo.hidden = false;
    this.devBar.hidden = false;
    this.dialog.dataset.mode = 'device';
    delete this.dialog.dataset.devicePlaybackClosed;
    this.devSeeking = false;
    this.devSeek.max = String(Math.max(1, Math.round((to - from) / 1000)));
    this.devSeek.value = '0';
    this.devRangeText.textContent = `${clock(from)} – ${hhmm(to, true)} (${formatDuration(to - from)})`;
    this.devPlayNoteSay('', '');
    this.devPlay.start(this.cam.id, from, to);
  },

  /** closeDevicePlay ends the device playback (if any) and gives the player area back to gridwatch's footage. */
  closeDevicePlay() {
    if (!this.devPlay || this.devBar.hidden) return;
    const id = this.devPlay.id;
    this.devBar.hidden = true;
    this.devVideo.hidden = true;
    this.devMessage.hidden = true;
    delete this.dialog.dataset.mode;
    const dialog = this.dialog;
    this.devPlay
      .close()
      .catch(() => {}) // not told: unwatched, it ends by itself within 30 s
      .finally(() => {
        if (id) dialog.dataset.devicePlaybackClosed = id;
      });
    if (this.cam && !this.base && this.state === 'idle') this.say('hint', '点击时间轴上的绿色录像段开始回放 · Click a green (recorded) part of the timeline to play it');
  },

  /** onDevicePlay shows the playback's phase, state and message. */
  onDevicePlay() {
    const pb = this.devPlay;
    const bar = this.devBar;
    if (!bar || bar.hidden) return;
    bar.dataset.state = pb.phase;
    bar.dataset.paused = String(pb.paused);
    bar.dataset.scale = String(pb.scale);
    if (pb.id) bar.dataset.playback = pb.id;
    else delete bar.dataset.playback;
    if (Number.isFinite(pb.from)) {
      bar.dataset.from = iso(pb.from);
      bar.dataset.to = iso(pb.to);
      this.devSeek.max = String(Math.max(1, Math.round(pb.duration)));
    }
    const live = pb.phase === 'playing' || pb.phase === 'paused';
    this.devPauseBtn.disabled = !live;
    this.devSeek.disabled = !live;
    for (const b of this.devSpeeds) {
      b.disabled = !live;
      b.setAttribute('aria-pressed', String(Number(b.dataset.scale) === pb.scale));
    }
    this.devPauseBtn.dataset.action = pb.paused ? 'resume' : 'pause';
    this.devPauseBtn.textContent = pb.paused ? '▶ 继续 Resume' : '‖ 暂停 Pause';
    const m = this.devMessage;
    const over = {
      starting: ['hint', '正在请设备回放… · Asking the device to play…'],
      connecting: ['hint', pb.message || '等待设备的画面… · Waiting for the device\'s pictures…'],
      ended: ['ended', pb.message],
      error: ['error', pb.message],
    }[pb.phase];
    m.hidden = !over;
    if (over) {
      m.dataset.kind = over[0];
      m.textContent = over[1];
    }
    if (pb.phase === 'error') this.devPlayNoteSay('error', pb.message);
    this.tickDevicePlay();
  },

  /** tickDevicePlay shows the device's time of the picture and moves the slider (not while it is dragged). */
  tickDevicePlay() {
    const pb = this.devPlay;
    if (!pb || this.devBar.hidden) return;
    this.devBar.dataset.fragments = String(pb.fragments);
    const t = pb.deviceTime();
    if (Number.isFinite(t)) {
      if (!this.devSeeking) this.devTime.textContent = clock(t);
      this.devTime.dateTime = new Date(t).toISOString();
      this.devTime.dataset.time = new Date(t).toISOString();
      if (!this.devSeeking) this.devSeek.value = String(Math.round(pb.position()));
    } else {
      this.devTime.textContent = '—';
      delete this.devTime.dataset.time;
    }
  },

  devPlayNoteSay(kind, text) {
    this.devPlayNote.dataset.kind = kind;
    this.devPlayNote.textContent = text;
    this.devPlayNote.title = text;
  },

  /** deviceControl runs one of the device's controls (zh, en: its name), saying why when it is refused. */
  async deviceControl(zh, en, fn) {
    try {
      await fn();
      this.devPlayNoteSay('', '');
    } catch (err) {
      this.devPlayNoteSay('error', `${zh}失败 · ${en} refused — ${describe(err)}`);
    }
    this.onDevicePlay();
  },

  toggleDevicePause() {
    const pb = this.devPlay;
    if (pb.paused) this.deviceControl('继续', 'Resume', () => pb.resume());
    else this.deviceControl('暂停', 'Pause', () => pb.pause());
  },

  seekDevice(at) {
    this.devSeekBusy = true;
    this.deviceControl('跳转', 'Seek', () => this.devPlay.seek(at)).finally(() => {
      this.devSeekBusy = false;
      this.devSeeking = false;
    });
  },

  /** seekDeviceBy moves the device playback s seconds. */
  seekDeviceBy(s) {
    const p = this.devPlay.position();
    if (!Number.isFinite(p) || !['playing', 'paused'].includes(this.devPlay.phase)) return;
    this.seekDevice(Math.min(Math.max(0, p + s), this.devPlay.duration));
  },

  speedDevice(scale) {
    this.deviceControl('变速', 'Speed', () => this.devPlay.speed(scale));
  },

  /** devicePlaying reports whether the player area is the device's. */
  devicePlaying() {
    return !!this.devBar && !this.devBar.hidden;
  },
};
