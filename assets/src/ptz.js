// The PTZ pad of the player: for a camera managed over ONVIF with a PTZ head,
// or a GB/T 28181 channel whose head the server can steer, and a user with
// cameras.ptz. Press and hold an arrow (or the zoom buttons) to move: the
// move is sent again while held, each with the device's own timeout, so a
// dome stops by itself if this page goes away; letting go stops it.
// Presets: go to one, or save the position under a name. One operator
// steers a camera at a time: the pad says who does, until when (GET
// /api/v1/cameras/{id}/ptz, read every 2 s while it shows), and lets go when
// the player closes. A GB/T 28181 dome's presets are numbers (1–255),
// called or saved by number, and it has no home command: the pad offers a
// number and Go instead of Home (data-presets=numbered).
//
// Test hooks: .ptz[data-state=idle|ready|busy|error|none],
// [data-controller=you|other|none], .ptz [data-dir] buttons (up, down, left,
// right, up-left, …, in, out), [data-field=ptz-home|ptz-presets|ptz-name|
// ptz-save|ptz-go|ptz-who|ptz-position|ptz-message], .ptz[data-presets=named|numbered].

import { ApiError, can, describe, getJSON, sendJSON } from './api.js';
import { el } from './dom.js';
import { isGBCamera } from './gb-url.js';

const POLL_MS = 2000;

// Direction → speed components (pan right +, tilt up +, zoom in +).
const DIRS = {
  'up-left': [-1, 1, 0, '↖'],
  up: [0, 1, 0, '↑'],
  'up-right': [1, 1, 0, '↗'],
  left: [-1, 0, 0, '←'],
  right: [1, 0, 0, '→'],
  'down-left': [-1, -1, 0, '↙'],
  down: [0, -1, 0, '↓'],
  'down-right': [1, -1, 0, '↘'],
  in: [0, 0, 1, '+'],
  out: [0, 0, -1, '−'],
};
const DIR_LABEL = {
  up: '上 Up', down: '下 Down', left: '左 Left', right: '右 Right', 'up-left': '左上 Up left', 'up-right': '右上 Up right',
  'down-left': '左下 Down left', 'down-right': '右下 Down right', in: '放大 Zoom in', out: '缩小 Zoom out',
};

/** PTZPad steers one camera from the player dialog; mount() once, show(cam) per camera, hide() on close. */
export class PTZPad {
  constructor() {
    this.root = null;
    this.cam = null;
    this.timer = 0;
    this.repeat = 0;
    this.held = null; // the direction held, while a move repeats
    this.status = null;
    this.seq = 0;
    this.queue = Promise.resolve(); // the commands in flight, in order
    this.pending = 0;
    this.sent = false; // a command went to the camera on show (so closing lets go)
    this.polling = false;
    this.numbered = false; // a GB/T 28181 channel: presets by number, no home
  }

  /** mount builds the pad into parent (hidden until a PTZ camera shows). */
  mount(parent) {
    const pad = el('div', 'ptz-pad');
    for (const d of ['up-left', 'up', 'up-right', 'left', 'home', 'right', 'down-left', 'down', 'down-right']) {
      if (d === 'home') {
        this.homeBtn = el('button', { type: 'button', className: 'ptz-btn ptz-home', dataset: { field: 'ptz-home' }, title: '回到原位 · Home position', 'aria-label': '回到原位 Home' }, '⌂');
        this.homeBtn.addEventListener('click', () => this.command({ op: 'home' }));
        pad.append(this.homeBtn);
      } else pad.append(this.dirButton(d));
    }
    const zoom = el('div', 'ptz-zoom', this.dirButton('out'), el('span', 'ptz-zoom-label', '变倍 Zoom'), this.dirButton('in'));
    this.speed = el('input', { type: 'range', min: '0.1', max: '1', step: '0.1', value: '0.5', className: 'ptz-speed', 'aria-label': '速度 Speed', dataset: { field: 'ptz-speed' } });
    this.who = el('div', { className: 'ptz-who', dataset: { field: 'ptz-who' }, role: 'status' });
    this.position = el('div', { className: 'ptz-position', dataset: { field: 'ptz-position' } });
    this.presets = el('ol', { className: 'ptz-presets', dataset: { field: 'ptz-presets' } });
    this.nameInput = el('input', { type: 'text', maxLength: 64, placeholder: '预置位名称 Preset name', className: 'ptz-name', dataset: { field: 'ptz-name' } });
    this.saveBtn = el('button', { type: 'button', className: 'btn btn-small', dataset: { field: 'ptz-save' } }, '保存 · Save');
    this.saveBtn.title = '把当前位置保存为预置位 · Save the current position as a preset';
    this.saveBtn.addEventListener('click', () => this.savePreset());
    this.goBtn = el('button', { type: 'button', className: 'btn btn-small', dataset: { field: 'ptz-go' }, hidden: true, title: '转到此编号的预置位 · Go to the preset of this number' }, '转到 · Go');
    this.goBtn.addEventListener('click', () => this.gotoNumber());
    this.nameInput.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') this.savePreset();
    });
    this.message = el('p', { className: 'ptz-message', dataset: { field: 'ptz-message' }, hidden: true });
    this.releaseBtn = el('button', { type: 'button', className: 'btn btn-small ptz-release', dataset: { field: 'ptz-release' }, hidden: true, title: '让出控制 · Let others steer' }, '释放控制 · Let go');
    this.releaseBtn.addEventListener('click', () => this.command({ op: 'release' }));
    this.root = el(
      'aside',
      { className: 'ptz', hidden: true, 'aria-label': '云台控制 PTZ control', dataset: { state: 'none' } },
      el('div', 'section-title', '云台 PTZ'),
      this.who,
      pad,
      zoom,
      el('label', 'ptz-speed-row', el('span', null, '速度 Speed'), this.speed),
      this.position,
      this.releaseBtn,
      el('div', 'section-title', '预置位 Presets'),
      this.presets,
      el('div', 'ptz-save-row', this.nameInput, this.goBtn, this.saveBtn),
      this.message,
    );
    parent.append(this.root);
  }

  dirButton(d) {
    const [, , , glyph] = DIRS[d];
    const b = el('button', { type: 'button', className: `ptz-btn ptz-${d}`, dataset: { dir: d }, title: `${DIR_LABEL[d]}（按住移动 · hold to move）`, 'aria-label': DIR_LABEL[d] }, glyph);
    const start = (ev) => {
      ev.preventDefault();
      if (ev.pointerId !== undefined) b.setPointerCapture?.(ev.pointerId);
      this.hold(d);
    };
    const end = () => {
      if (this.held === d) this.letGo();
    };
    b.addEventListener('pointerdown', start);
    b.addEventListener('pointerup', end);
    b.addEventListener('pointercancel', end);
    b.addEventListener('lostpointercapture', end);
    b.addEventListener('keydown', (ev) => {
      if ((ev.key === ' ' || ev.key === 'Enter') && !ev.repeat) start(ev);
    });
    b.addEventListener('keyup', (ev) => {
      if (ev.key === ' ' || ev.key === 'Enter') end();
    });
    b.addEventListener('blur', end);
    return b;
  }

  /** show steers cam (a camera of the API) if it is a PTZ camera the user may steer; else the pad hides. */
  async show(cam) {
    this.hide();
    const seq = ++this.seq;
    if (!this.root || !can('cameras.ptz')) return;
    let c = cam;
    if (c && c.onvif === undefined) {
      try {
        c = await getJSON(`/api/v1/cameras/${encodeURIComponent(cam.id)}`);
      } catch {
        return;
      }
      if (seq !== this.seq) return;
    }
    if (c?.onvif) {
      if (c.onvif.device?.ptz === false) return;
      this.setNumbered(false);
    } else if (isGBCamera(c)) {
      // A GB/T 28181 channel: the server says whether its catalog gives it a head.
      let st;
      try {
        st = await getJSON(this.path(c));
      } catch {
        return;
      }
      if (seq !== this.seq || !st?.ptz) return;
      this.setNumbered(true);
    } else {
      return;
    }
    this.cam = c;
    this.root.hidden = false;
    this.root.dataset.state = 'ready';
    this.root.dataset.camera = String(c.id);
    this.refresh();
    this.timer = setInterval(() => this.refresh(), POLL_MS);
  }

  /** setNumbered switches the presets between named (ONVIF) and numbered 1–255 with no home (GB/T 28181). */
  setNumbered(on) {
    this.numbered = on;
    this.root.dataset.presets = on ? 'numbered' : 'named';
    // Its place on the pad stays (the arrows keep theirs): hidden by the stylesheet, not taken out.
    this.homeBtn.disabled = on;
    this.goBtn.hidden = !on;
    const input = this.nameInput;
    input.value = '';
    input.type = on ? 'number' : 'text';
    if (on) Object.assign(input, { min: '1', max: '255', step: '1' });
    else for (const a of ['min', 'max', 'step']) input.removeAttribute(a);
    input.placeholder = on ? '1–255' : '预置位名称 Preset name';
    input.title = on ? '预置位号 Preset number, 1–255' : '';
    this.saveBtn.title = on ? '把当前位置保存为此编号的预置位 · Save the current position as the preset of this number' : '把当前位置保存为预置位 · Save the current position as a preset';
  }

  /** presetNumber is the number typed for a numbered preset, or null (and says why). */
  presetNumber() {
    const n = Number(this.nameInput.value);
    if (!Number.isInteger(n) || n < 1 || n > 255) {
      this.say('预置位号为 1 至 255 · A preset number is 1 to 255', true);
      this.nameInput.focus();
      return null;
    }
    return String(n);
  }

  async gotoNumber() {
    const n = this.presetNumber();
    if (n) await this.command({ op: 'goto', preset: n });
  }

  /** hide stops any move, lets go of the camera if this user holds it, and hides the pad. */
  hide() {
    this.seq++;
    clearInterval(this.timer);
    this.timer = 0;
    const cam = this.cam;
    if (this.held) this.letGo();
    // Let go of the camera after everything sent before (the stop above
    // included), so a late command cannot take control again.
    if (cam && (this.sent || this.status?.controller?.you)) this.enqueue(() => sendJSON('POST', this.path(cam), { op: 'release' })).catch(() => {});
    this.sent = false;
    this.cam = null;
    this.status = null;
    if (this.root) {
      this.root.hidden = true;
      this.root.dataset.state = 'none';
      delete this.root.dataset.controller;
    }
  }

  path(cam = this.cam) {
    return `/api/v1/cameras/${encodeURIComponent(cam.id)}/ptz`;
  }

  async refresh() {
    const cam = this.cam;
    if (!cam || this.polling) return; // one read at a time (an unreachable dome answers slowly)
    const seq = this.seq;
    this.polling = true;
    try {
      const st = await getJSON(this.path(cam));
      if (seq !== this.seq) return;
      this.render(st);
    } catch (err) {
      if (seq !== this.seq) return;
      this.say(describe(err), true);
    } finally {
      this.polling = false;
    }
  }

  /**
   * enqueue runs send after every command sent before it has been answered:
   * commands reach the server in the order given, so a stop is never
   * overtaken by the move it stops.
   */
  enqueue(send) {
    const run = this.queue.then(send, send);
    this.queue = run.catch(() => {});
    return run;
  }

  render(st) {
    this.status = st;
    const ctl = st.controller;
    this.root.dataset.controller = ctl ? (ctl.you ? 'you' : 'other') : 'none';
    if (st.error) {
      this.root.dataset.state = 'error';
      this.say(st.error, true);
    } else if (ctl && !ctl.you) {
      this.root.dataset.state = 'busy';
    } else if (this.root.dataset.state !== 'ready') {
      this.root.dataset.state = 'ready';
      this.say('');
    }
    const until = ctl ? new Date(ctl.until).toLocaleTimeString() : '';
    this.who.textContent = !ctl ? '无人控制 · Nobody is steering' : ctl.you ? `你正在控制（至 ${until}）· You are steering (until ${until})` : `${ctl.name} 正在控制，至 ${until} · ${ctl.name} is steering until ${until}`;
    this.releaseBtn.hidden = !ctl?.you;
    const busy = this.root.dataset.state === 'busy';
    for (const b of this.root.querySelectorAll('.ptz-btn, [data-field="ptz-save"], [data-field="ptz-go"], .ptz-presets button')) b.disabled = busy;
    const p = st.position;
    this.position.textContent = p ? `P ${p.pan.toFixed(2)} · T ${p.tilt.toFixed(2)} · Z ${p.zoom.toFixed(2)}${st.moving ? ' · 移动中 moving' : ''}` : '';
    if (p) {
      this.position.dataset.pan = String(p.pan);
      this.position.dataset.tilt = String(p.tilt);
      this.position.dataset.zoom = String(p.zoom);
      this.position.dataset.moving = String(!!st.moving);
    }
    const presets = Array.isArray(st.presets) ? st.presets : [];
    const have = [...this.presets.querySelectorAll('button')].map((b) => `${b.dataset.preset}:${b.textContent}`).join('|');
    const want = presets.map((x) => `${x.token}:${x.name || x.token}`).join('|');
    if (have !== want) {
      this.presets.replaceChildren(
        ...presets.map((x) => {
          const b = el('button', { type: 'button', className: 'ptz-preset', dataset: { preset: x.token }, disabled: busy, title: '转到此预置位 · Go to this preset' }, x.name || x.token);
          b.addEventListener('click', () => this.command({ op: 'goto', preset: x.token }));
          return el('li', null, b);
        }),
      );
    }
    if (!presets.length) this.presets.replaceChildren(el('li', 'ptz-none', this.numbered ? '预置位按编号调用 · Presets are called by number (1–255)' : '无预置位 · No presets'));
  }

  say(text, error = false) {
    this.message.textContent = text;
    this.message.hidden = !text;
    this.message.dataset.kind = error ? 'error' : '';
  }

  /** hold starts moving in direction d and repeats the move while it is held. */
  hold(d) {
    if (this.held === d || !this.cam) return;
    const [pan, tilt, zoom] = DIRS[d];
    const s = Number(this.speed.value) || 0.5;
    this.holdMove(d, { op: 'move', pan: pan * s, tilt: tilt * s, zoom: zoom * s });
    this.root.querySelector(`[data-dir="${d}"]`)?.setAttribute('aria-pressed', 'true');
  }

  /** holdMove sends move (held as key) and repeats it until letGo or another move. */
  holdMove(key, move) {
    if (this.held && this.held !== key) this.letGo({ stop: false });
    this.held = key;
    this.command(move);
    // The device stops by itself after its timeout: repeat well within it.
    const every = Math.max(300, Math.floor((this.status?.move_timeout_ms || 2000) / 2));
    clearInterval(this.repeat);
    this.repeat = setInterval(() => {
      // A repeat while the last one is unanswered would only queue up.
      if (this.held === key && this.pending === 0) this.command(move, { quiet: true });
    }, every);
  }

  /** letGo stops the move held (and the head, unless stop is false: another move follows). */
  letGo({ stop = true } = {}) {
    const d = this.held;
    this.held = null;
    clearInterval(this.repeat);
    this.repeat = 0;
    if (d) this.root.querySelector(`[data-dir="${d}"]`)?.removeAttribute('aria-pressed');
    if (this.cam && stop) this.command({ op: 'stop' });
  }

  /**
   * attachStage lets the picture steer too: press on it and drag — the head
   * turns toward the drag, faster the further it goes (a quarter of the
   * picture is full speed); letting go stops it.
   */
  attachStage(stage) {
    let origin = null;
    let last = '';
    const active = () => this.cam && !this.root.hidden && this.root.dataset.state !== 'busy';
    stage.addEventListener('pointerdown', (ev) => {
      // A control on the picture (its sound switch) is not a drag.
      if (ev.button !== 0 || !active() || ev.target.closest?.('button')) return;
      origin = { x: ev.clientX, y: ev.clientY };
      last = '';
      stage.setPointerCapture?.(ev.pointerId);
      stage.dataset.ptzDrag = 'true';
    });
    stage.addEventListener('pointermove', (ev) => {
      if (!origin || !active()) return;
      const r = stage.getBoundingClientRect();
      const q = (v) => Math.max(-1, Math.min(1, Math.round(v * 10) / 10));
      const pan = q((ev.clientX - origin.x) / (r.width / 4));
      const tilt = q(-(ev.clientY - origin.y) / (r.height / 4));
      const key = `drag:${pan}:${tilt}`;
      if (key === last) return;
      last = key;
      if (pan === 0 && tilt === 0) {
        if (this.held?.startsWith('drag:')) this.letGo();
        return;
      }
      this.holdMove(key, { op: 'move', pan, tilt, zoom: 0 });
    });
    const end = () => {
      if (!origin) return;
      origin = null;
      delete stage.dataset.ptzDrag;
      if (this.held?.startsWith('drag:')) this.letGo();
    };
    stage.addEventListener('pointerup', end);
    stage.addEventListener('pointercancel', end);
    stage.addEventListener('lostpointercapture', end);
  }

  async savePreset() {
    if (this.numbered) {
      const n = this.presetNumber();
      if (n && (await this.command({ op: 'set_preset', name: n, preset: n }))) {
        this.nameInput.value = '';
        this.say(`已保存预置位 · Preset saved: ${n}`);
      }
      return;
    }
    const name = this.nameInput.value.trim();
    if (!name) {
      this.say('请输入预置位名称 · Give the preset a name', true);
      this.nameInput.focus();
      return;
    }
    const res = await this.command({ op: 'set_preset', name });
    if (res) {
      this.nameInput.value = '';
      this.say(`已保存预置位 · Preset saved: ${name}`);
    }
  }

  /** command sends one PTZ command; the answer's controller is shown, a refusal said. */
  async command(cmd, { quiet = false } = {}) {
    const cam = this.cam;
    if (!cam) return null;
    const seq = this.seq;
    this.pending++;
    this.sent = true;
    try {
      const res = await this.enqueue(() => sendJSON('POST', this.path(cam), cmd));
      if (seq !== this.seq) return res;
      if (!quiet && cmd.op !== 'set_preset') this.say('');
      if (this.status) this.render({ ...this.status, controller: res?.controller ?? null });
      if (cmd.op !== 'move') this.refresh();
      return res;
    } catch (err) {
      if (seq !== this.seq) return null;
      if (err instanceof ApiError && err.status === 409 && err.details?.controller) {
        // Someone else steers: say who, stop repeating.
        if (this.held) this.letGo({ stop: false });
        this.render({ ...(this.status ?? {}), controller: { ...err.details.controller, you: false } });
      }
      this.say(describe(err), true);
      return null;
    } finally {
      this.pending--;
    }
  }
}
