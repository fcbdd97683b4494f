// "Add camera" (cameras.write): a camera added by its ONVIF address and
// account. Search the network (WS-Discovery) lists the devices not yet
// registered; Probe reads what the device at the address is — maker, model,
// firmware, its clock (a warning when off), its profiles — and which ones
// the camera will pull (main, sub); the camera is then placed (the map's
// centre by default) and named, and registered with POST /api/v1/cameras.
// The password goes to the server and nowhere else.
//
// Test hooks: #camera-add-dialog, [data-field=discover|discovered|probe|
// device|clock|submit|status], the inputs by their API field names
// (onvif.url, onvif.username, onvif.password, onvif.main_profile,
// onvif.sub_profile, code, name, lon, lat, heading, record).

import { describe, getJSON, sendJSON } from './api.js';
import { el, field, formError, wireModal } from './dom.js';
import { CLOCK_WARN_S } from './panel.js';
import { toast } from './toast.js';

/** CameraAddDialog is built on first open. deps: centre() [lon, lat] of the map; onAdded(cam). */
export class CameraAddDialog {
  constructor({ centre, onAdded }) {
    this.centre = centre;
    this.onAdded = onAdded;
    this.dialog = null;
    this.opener = null;
    this.probed = null; // the probe of the address and account now in the form
    this.seq = 0;
  }

  open() {
    if (!this.dialog) this.build();
    this.opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    const [lon, lat] = this.centre();
    if (!this.input('lon').value) this.input('lon').value = lon.toFixed(6);
    if (!this.input('lat').value) this.input('lat').value = lat.toFixed(6);
    if (!this.dialog.open) this.dialog.showModal();
    this.input('onvif.url').focus();
  }

  input(name) {
    return this.form.elements.namedItem(name);
  }

  build() {
    const text = (name, props = {}) => el('input', { type: 'text', name, autocomplete: 'off', ...props });
    this.discoverBtn = el('button', { type: 'button', className: 'btn btn-small', dataset: { field: 'discover' } }, '搜索网络 · Search the network');
    this.discovered = el('ol', { className: 'cam-add-found', dataset: { field: 'discovered' }, 'aria-live': 'polite' });
    this.discoverBtn.addEventListener('click', () => this.discover());
    this.probeBtn = el('button', { type: 'button', className: 'btn', dataset: { field: 'probe' } }, '探测 · Probe');
    this.probeBtn.addEventListener('click', () => this.probe());
    this.device = el('div', { className: 'cam-add-device', dataset: { field: 'device' }, hidden: true });
    this.clock = el('p', { className: 'cam-add-clock', dataset: { field: 'clock' }, hidden: true });
    this.mainSel = el('select', { name: 'onvif.main_profile' });
    this.subSel = el('select', { name: 'onvif.sub_profile' });
    this.status = el('p', { className: 'form-status', dataset: { field: 'status' }, role: 'status' });
    this.submit = el('button', { type: 'submit', className: 'btn btn-primary', dataset: { field: 'submit' }, disabled: true }, '添加摄像机 · Add camera');
    this.profiles = el(
      'div',
      { className: 'field-row cam-add-profiles', hidden: true },
      field('主码流 Main stream', this.mainSel),
      field('子码流 Sub stream', this.subSel, '视频墙用子码流 · the video wall plays the sub stream'),
    );
    this.form = el(
      'form',
      { className: 'cam-add-form', noValidate: true },
      el('div', 'field-row', field('ONVIF 地址 Device address', text('onvif.url', { placeholder: 'http://10.0.0.9/onvif/device_service', required: true }))),
      el(
        'div',
        'field-row',
        field('用户名 User name', text('onvif.username', { value: 'admin' })),
        field('密码 Password', el('input', { type: 'password', name: 'onvif.password', autocomplete: 'new-password' })),
      ),
      el('div', 'form-actions cam-add-probe', this.probeBtn),
      this.device,
      this.clock,
      this.profiles,
      el('div', 'field-row', field('编号 Code', text('code', { maxLength: 64, required: true })), field('名称 Name', text('name', { maxLength: 200, required: true }))),
      el(
        'div',
        'field-row',
        field('经度 Longitude', text('lon', { inputMode: 'decimal' }), '默认为地图中心 · the map centre'),
        field('纬度 Latitude', text('lat', { inputMode: 'decimal' })),
        field('朝向 Heading °', text('heading', { inputMode: 'decimal', value: '0' })),
      ),
      el('label', { className: 'check' }, el('input', { type: 'checkbox', name: 'record', checked: true }), el('span', '', '录像 Record')),
      el('p', { className: 'form-error', hidden: true, role: 'alert' }),
      this.status,
      el('div', 'form-actions', this.submit),
    );
    // A new address or account needs a new probe before the camera is added.
    for (const n of ['onvif.url', 'onvif.username', 'onvif.password']) {
      this.input(n).addEventListener('input', () => {
        if (this.probed) this.resetProbe();
      });
    }
    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.add();
    });
    const close = el('button', { type: 'button', className: 'dialog-close', 'aria-label': '关闭 Close' }, '×');
    close.addEventListener('click', () => this.dialog.close());
    this.dialog = el(
      'dialog',
      { className: 'dialog dialog-cam-add', id: 'camera-add-dialog', 'aria-labelledby': 'camera-add-title' },
      el('div', 'dialog-head', el('h2', { className: 'dialog-title', id: 'camera-add-title' }, '添加摄像机 (ONVIF) · Add a camera'), close),
      el('div', 'dialog-body', el('section', 'cam-add-discover', el('div', 'section-title', '发现 Discovery'), this.discoverBtn, this.discovered), this.form),
    );
    wireModal(this.dialog, this);
    document.body.append(this.dialog);
  }

  teardown() {
    this.seq++;
  }

  say(text, kind = '') {
    this.status.textContent = text;
    this.status.dataset.state = kind;
  }

  async discover() {
    const seq = ++this.seq;
    this.discoverBtn.disabled = true;
    this.discovered.replaceChildren(el('li', 'cam-add-none', '搜索中… Searching'));
    try {
      const res = await getJSON('/api/v1/onvif/discover');
      if (seq !== this.seq) return;
      const list = Array.isArray(res?.devices) ? res.devices : [];
      this.discovered.replaceChildren(
        ...(list.length
          ? list.map((d) => {
              const what = [d.name, d.hardware].filter(Boolean).join(' · ') || d.endpoint;
              const li = el('li', { className: 'cam-add-item', dataset: { url: d.url, registered: String(!!d.registered) } }, el('span', 'cam-add-what', what), el('span', 'mono cam-add-url', d.url));
              if (d.registered) li.append(el('span', 'cam-add-reg', `已登记 registered: ${d.registered.code}`));
              else {
                const use = el('button', { type: 'button', className: 'btn btn-small', dataset: { use: d.url } }, '使用 Use');
                use.addEventListener('click', () => {
                  this.input('onvif.url').value = d.url;
                  this.resetProbe();
                  if (!this.input('name').value && d.name) this.input('name').value = d.name;
                  this.input('onvif.password').focus();
                });
                li.append(use);
              }
              return li;
            })
          : [el('li', 'cam-add-none', '未发现设备 · No ONVIF device answered')]),
      );
    } catch (err) {
      if (seq === this.seq) this.discovered.replaceChildren(el('li', 'cam-add-none', describe(err)));
    } finally {
      if (seq === this.seq) this.discoverBtn.disabled = false;
    }
  }

  resetProbe() {
    this.probed = null;
    this.device.hidden = true;
    this.clock.hidden = true;
    this.profiles.hidden = true;
    this.submit.disabled = true;
  }

  account() {
    return { url: this.input('onvif.url').value.trim(), username: this.input('onvif.username').value.trim(), password: this.input('onvif.password').value };
  }

  async probe() {
    const seq = ++this.seq;
    formError(this.form, null);
    this.resetProbe();
    this.probeBtn.disabled = true;
    this.say('探测中… Probing the device');
    try {
      const p = await sendJSON('POST', '/api/v1/onvif/probe', this.account());
      if (seq !== this.seq) return;
      this.probed = p;
      const d = p.device ?? {};
      this.device.textContent = [d.manufacturer, d.model, d.firmware ? `fw ${d.firmware}` : '', d.serial ? `SN ${d.serial}` : '', d.ptz ? '云台 PTZ' : ''].filter(Boolean).join(' · ');
      this.device.hidden = false;
      const off = Number(d.clock_offset_ms) / 1000;
      this.clock.hidden = !(Math.abs(off) > CLOCK_WARN_S);
      this.clock.textContent = `⚠ 摄像机时钟偏差 ${off.toFixed(1)} 秒 · The camera's clock is off by ${off.toFixed(1)} s: recordings are indexed by time, set it (NTP)`;
      const option = (s) => el('option', { value: s.token }, `${s.name || s.token} · ${s.encoding} ${s.width}×${s.height}`);
      const streams = Array.isArray(p.streams) ? p.streams : [];
      this.mainSel.replaceChildren(...streams.map(option));
      this.mainSel.value = p.main_profile;
      this.subSel.replaceChildren(el('option', { value: 'none' }, '无 none'), ...streams.map(option));
      this.subSel.value = p.sub_profile || 'none';
      this.profiles.hidden = false;
      if (p.registered) this.say(`此设备已登记为 ${p.registered.code} · This device is already registered as ${p.registered.code}`, 'error');
      else this.say('设备已响应 · The device answered: name the camera and add it', 'ok');
      if (!this.input('code').value && d.serial) this.input('code').value = String(d.serial).replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64);
      if (!this.input('name').value) this.input('name').value = [d.manufacturer, d.model].filter(Boolean).join(' ');
      this.submit.disabled = false;
    } catch (err) {
      if (seq !== this.seq) return;
      this.say('');
      formError(this.form, err);
    } finally {
      if (seq === this.seq) this.probeBtn.disabled = false;
    }
  }

  async add() {
    if (!this.probed) return;
    const seq = ++this.seq;
    formError(this.form, null);
    const num = (n) => Number(String(this.input(n).value).trim());
    const body = {
      code: this.input('code').value.trim(),
      name: this.input('name').value.trim(),
      location: { type: 'Point', coordinates: [num('lon'), num('lat')] },
      heading: num('heading') || 0,
      record: this.input('record').checked,
      onvif: { ...this.account(), main_profile: this.mainSel.value, sub_profile: this.subSel.value },
    };
    this.submit.disabled = true;
    this.say('添加中… Adding');
    try {
      const cam = await sendJSON('POST', '/api/v1/cameras', body);
      if (seq !== this.seq) return;
      toast(`已添加摄像机 · Camera added: ${cam.code}`, { detail: cam.name, data: { cameraAdded: String(cam.id) } });
      this.form.reset();
      this.input('onvif.username').value = 'admin';
      this.resetProbe();
      this.say('');
      this.dialog.close();
      this.onAdded(cam);
    } catch (err) {
      if (seq !== this.seq) return;
      this.say('');
      // The server names location for either coordinate.
      formError(this.form, err?.details?.field === 'location' ? Object.assign(err, { details: { ...err.details, field: 'lon' } }) : err);
      this.submit.disabled = false;
    }
  }
}
