// The admin view's GB/T 28181 tab (cameras.write): the cameras, NVRs and lower
// platforms that register with gridwatch over SIP (GET
// /api/v1/gb28181/devices), online or not and why, and for one device its
// channels (GET /api/v1/gb28181/devices/{id}): each a camera on the map, or
// "unplaced" (it reported no position) until someone places it (POST
// /api/v1/gb28181/channels/{id}/place, a point clicked on the map or typed).
// A device's catalog can be read again and its status asked now (refused
// while it is offline or registered with another node: the server's message
// is shown); its own password
// (never shown, never prefilled: has_password says whether it has one) and
// the datum of the positions it reports are set with PUT, which also
// provisions a device before it first registers.
//
// The list is read again on the gb.device.online/offline events while the tab
// shows (onEvent), and every REFRESH_MS besides (the keepalive ages).
// A server without GB/T 28181 answers 503: the tab says so. One without the
// route (404: an older server) has no such tab: onAbsent() hides it.
//
// Test hooks:
//   #gb-devices-table tr[data-device-id][data-online][data-channels][data-cameras][data-unplaced][data-gone][data-has-password][data-crs]
//   #admin-gb .gb-unavailable (the 503 note), #gb-provision (button), #gb-provision-form
//   #gb-device[data-device-id][data-online][data-has-password][data-crs] with #gb-back,
//     [data-action=sync|status], .gb-result[data-kind=sync|status][data-state=busy|ok|partial|error]
//     (a sync's counts as data-channels, data-added, …), #gb-device-form,
//     #gb-channels-table tr[data-channel-id][data-unplaced][data-gone][data-camera-id]
//     with [data-action=camera|place], #gb-place-form (lon, lat, crs, [data-action=pick])

import { ApiError, describe, getJSON, sendJSON } from './api.js';
import { el, field, formError, formatTime } from './dom.js';
import { adminForm, fillRows, flash, table } from './admin-parts.js';
import { agoText } from './admin-nodes.js';
import { serverNow } from './clock.js';

const REFRESH_MS = 10000;
const DEVICES = '/api/v1/gb28181/devices';
const ID_RE = /^\d{20}$/;

/** CRS_CHOICES are the datums a device may report positions in. */
export const CRS_CHOICES = [
  ['wgs84', 'WGS-84 (GPS)'],
  ['gcj02', 'GCJ-02 (高德 / 腾讯 Amap, Tencent)'],
  ['bd09', 'BD-09 (百度 Baidu)'],
];
const CRS_LABEL = Object.fromEntries(CRS_CHOICES);

const PTZ_TYPES = { 1: '球机 dome', 2: '半球 half dome', 3: '固定枪机 fixed', 4: '遥控枪机 remote fixed' };
const CHANNEL_STATUS = { ON: '在线 on', OFF: '离线 off', VLOST: '视频丢失 video lost', DEFECT: '故障 defect' };

function crsSelect(name, value = 'wgs84') {
  return el('select', { name }, ...CRS_CHOICES.map(([v, label]) => el('option', { value: v, selected: v === value }, label)));
}

/** deviceState is online, offline (it was registered) or never (provisioned, not yet registered). */
function deviceState(d) {
  if (d.online) return 'online';
  return d.registered_at ? 'offline' : 'never';
}

const STATE_TEXT = { online: '在线 online', offline: '离线 offline', never: '未注册 never registered' };

function stateBadge(d) {
  const s = deviceState(d);
  return el('span', { className: 'state gb-state', dataset: { state: s } }, STATE_TEXT[s]);
}

function makerText(d) {
  return [d.manufacturer, d.model, d.firmware ? `fw ${d.firmware}` : ''].filter(Boolean).join(' · ') || '—';
}

function addressText(d) {
  return d.address ? `${d.address} · ${String(d.transport || '').toUpperCase() || '—'}` : '—';
}

function passwordText(has) {
  return has ? '设备独立密码 · has its own password' : '使用平台密码 · uses the platform’s password';
}

function numCell(n, { warn = false } = {}) {
  return el('td', { className: `num${warn && n > 0 ? ' gb-warn' : ''}` }, String(n ?? 0));
}

/**
 * syncText says what a catalog read changed: with the channels it listed
 * that are another device's (refused), and why only part of it came
 * (partial: what came was applied).
 */
function syncText(r) {
  const counts = `${r.channels ?? 0} 通道 channels · ${r.added ?? 0} 新增 added · ${r.updated ?? 0} 更新 updated · ${r.unplaced ?? 0} 未放置 unplaced · ${r.gone ?? 0} 移除 gone`;
  const refused = r.refused > 0 ? ` · ${r.refused} 属于其他设备，未采用 another device's, not taken` : '';
  return r.partial ? `目录只读到一部分 Catalog read in part: ${counts}${refused} — ${r.partial}` : `目录已同步 Catalog read: ${counts}${refused}`;
}

/** statusText is a device's DeviceStatus answer. */
function statusText(s) {
  const parts = [
    ['在线', 'Online', s.online],
    ['状态', 'Status', s.status],
    ['编码', 'Encoding', s.encode],
    ['录像', 'Recording', s.record],
    ['设备时间', 'Device time', s.device_time],
    ['结果', 'Result', s.result],
  ].filter(([, , v]) => v !== undefined && v !== null && v !== '');
  return `设备状态 Device status: ${parts.map(([cn, en, v]) => `${cn} ${en} ${v}`).join(' · ') || '—'}`;
}

/**
 * GBTab lists the GB/T 28181 devices and shows one. deps: showCamera(id)
 * (closes the admin view and shows camera id on the map), pick(hint) (the
 * admin view steps aside for a click on the map: a promise of {lng, lat} or
 * null), onAbsent() (the server has no such route: hide the tab).
 */
export class GBTab {
  constructor(deps) {
    this.deps = deps;
    this.timer = 0;
    this.seq = 0; // bumped by stop(): answers still on their way are not shown
    this.listSeq = 0;
    this.devSeq = 0;
    this.devices = [];
    this.deviceId = null; // the device whose detail shows, else the list shows
    this.device = null;
    this.channels = [];
    this.placing = null; // the channel being placed
    this.crsFor = null; // the device whose datum the settings form shows

    this.status = el('p', { className: 'tab-status', role: 'status' });
    const refresh = el('button', { type: 'button', className: 'btn' }, '刷新 Refresh');
    refresh.addEventListener('click', () => this.load());
    this.provisionBtn = el('button', { type: 'button', className: 'btn btn-primary', id: 'gb-provision' }, '＋ 预置设备 Provision device');
    this.provisionBtn.addEventListener('click', () => this.showProvision());
    this.unavailable = el('p', { className: 'gb-unavailable', role: 'note', hidden: true });

    // ---- provisioning a device before it registers
    const pf = {
      id: el('input', { name: 'id', autocomplete: 'off', spellcheck: false, inputMode: 'numeric', maxLength: 20, placeholder: '32010600001180000001' }),
      password: el('input', { name: 'password', type: 'password', autocomplete: 'new-password' }),
      crs: crsSelect('crs'),
    };
    this.pf = pf;
    const pCancel = el('button', { type: 'button', className: 'btn' }, '取消 Cancel');
    pCancel.addEventListener('click', () => {
      this.provisionForm.hidden = true;
    });
    this.provisionSave = el('button', { type: 'submit', className: 'btn btn-primary' }, '预置 Provision');
    this.provisionForm = adminForm(
      'gb-provision-form',
      el('h3', 'admin-form-title', '预置设备 Provision a device · 在它首次注册之前设置其密码 · give it its password before it first registers'),
      [
        field('设备编号 Device ID (20 位 digits)', pf.id),
        field('设备密码 Password', pf.password, '留空 = 使用平台密码 · empty: the platform’s'),
        el('div', 'field-wide', field('坐标系 Datum of its positions', pf.crs)),
      ],
      [pCancel, this.provisionSave],
      () => this.provision(),
    );

    const { wrap, tbody } = table('gb-devices-table', ['设备 Device', '状态 State', '厂商 型号 Maker · model', '地址 Address', '节点 Node', '心跳 Keepalive', '通道 Ch.', '摄像机 Cams', '未放置 Unplaced', '已移除 Gone']);
    this.tbody = tbody;
    this.listWrap = wrap;
    tbody.addEventListener('click', (ev) => {
      const tr = ev.target.closest('tr[data-device-id]');
      if (tr) this.showDevice(tr.dataset.deviceId);
    });
    this.listView = el('div', 'gb-list', this.provisionForm, wrap);

    this.buildDetail();
    this.root = el('section', 'admin-tab admin-gb', el('div', 'admin-toolbar', refresh, this.provisionBtn, this.status), this.unavailable, this.listView, this.detail);
  }

  // ---- the device's detail ---------------------------------------------------------------

  buildDetail() {
    const back = el('button', { type: 'button', className: 'btn btn-small', id: 'gb-back' }, '← 全部设备 All devices');
    back.addEventListener('click', () => this.showList());
    this.dName = el('h3', 'gb-detail-name');
    this.dId = el('span', 'mono dim');
    this.dState = el('span');
    this.dReason = el('span', 'gb-reason');
    this.facts = el('dl', 'gb-facts');

    this.syncBtn = el('button', { type: 'button', className: 'btn', dataset: { action: 'sync' }, title: '立即重新读取设备目录 · Read the device’s catalog again now' }, '同步目录 Sync catalog');
    this.syncBtn.addEventListener('click', () => this.sync());
    this.statusBtn = el('button', { type: 'button', className: 'btn', dataset: { action: 'status' }, title: '立即询问设备状态 · Ask the device for its status now' }, '查询状态 Query status');
    this.statusBtn.addEventListener('click', () => this.queryStatus());
    this.result = el('p', { className: 'gb-result', role: 'status', hidden: true });

    // ---- the device's own password and datum
    const sf = {
      password: el('input', { name: 'password', type: 'password', autocomplete: 'new-password', placeholder: '留空 = 不更改 · empty: unchanged' }),
      platform: el('input', { name: 'platform', type: 'checkbox' }),
      crs: crsSelect('crs'),
    };
    this.sf = sf;
    sf.platform.addEventListener('change', () => {
      sf.password.disabled = sf.platform.checked;
      if (sf.platform.checked) sf.password.value = '';
    });
    this.hasPw = el('span', { className: 'field-help gb-has-password', dataset: { field: 'has-password' } });
    this.settingsSave = el('button', { type: 'submit', className: 'btn btn-primary' }, '保存 Save');
    this.settingsForm = adminForm(
      'gb-device-form',
      el('h3', 'admin-form-title', '设备设置 Device settings'),
      [
        el('label', { className: 'field', dataset: { fieldFor: 'password' } }, el('span', 'field-label', '设备密码 Device password'), sf.password, this.hasPw),
        el('div', 'field gb-check-field', el('label', 'check', sf.platform, el('span', '', '改用平台密码 Use the platform’s password'))),
        field('坐标系 Datum of its positions', sf.crs, '目录中的位置按此换算 · the catalog’s positions are read in it'),
      ],
      [this.settingsSave],
      () => this.saveSettings(),
    );
    this.settingsForm.hidden = false;

    const { wrap, tbody } = table('gb-channels-table', ['通道 Channel', '编号 ID', '状态 Status', '云台 PTZ', '位置 Position', '摄像机 Camera', '']);
    this.chBody = tbody;
    tbody.addEventListener('click', (ev) => {
      const b = ev.target.closest('button[data-action]');
      const ch = b && this.channels.find((c) => c.id === b.closest('tr')?.dataset.channelId);
      if (!ch) return;
      if (b.dataset.action === 'camera' && ch.camera_id) this.deps.showCamera(ch.camera_id);
      else if (b.dataset.action === 'place') this.showPlace(ch);
    });

    // ---- placing an unplaced channel
    const lf = {
      lon: el('input', { name: 'lon', autocomplete: 'off', inputMode: 'decimal', placeholder: '113.65' }),
      lat: el('input', { name: 'lat', autocomplete: 'off', inputMode: 'decimal', placeholder: '34.76' }),
      crs: crsSelect('crs'),
    };
    this.lf = lf;
    this.placeTitle = el('h3', 'admin-form-title');
    const pick = el('button', { type: 'button', className: 'btn', dataset: { action: 'pick' }, title: '关闭此窗口，在地图上点击通道所在位置 · Close this view and click where the channel is on the map' }, '在地图上点选 Pick on map');
    pick.addEventListener('click', () => this.pickOnMap());
    const cancel = el('button', { type: 'button', className: 'btn' }, '取消 Cancel');
    cancel.addEventListener('click', () => this.hidePlace());
    this.placeSave = el('button', { type: 'submit', className: 'btn btn-primary' }, '放置 Place');
    this.placeForm = adminForm(
      'gb-place-form',
      this.placeTitle,
      [field('经度 Longitude', lf.lon), field('纬度 Latitude', lf.lat), el('div', 'field-wide', field('坐标系 Datum', lf.crs, '在地图上点选的位置为 WGS-84 · a point picked on the map is WGS-84'))],
      [pick, cancel, this.placeSave],
      () => this.place(),
    );

    this.detail = el(
      'section',
      { className: 'gb-detail', id: 'gb-device', hidden: true },
      el('div', 'gb-detail-head', back, this.dName, this.dId, this.dState, this.dReason),
      this.facts,
      el('div', 'admin-toolbar', this.syncBtn, this.statusBtn, this.result),
      this.settingsForm,
      el('div', 'section-title', '通道 Channels'),
      this.placeForm,
      wrap,
    );
  }

  // ---- loading -------------------------------------------------------------------------

  /** load reads the list (and the device shown) now, and the list again every REFRESH_MS until stop(). */
  load() {
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      if (!this.showing()) this.stop();
      else this.fetchList({ quiet: true });
    }, REFRESH_MS);
    const jobs = [this.fetchList()];
    if (this.deviceId) jobs.push(this.fetchDevice());
    return Promise.all(jobs);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = 0;
    this.seq++;
  }

  /** showing reports whether the tab is on show (its dialog open). */
  showing() {
    return !this.root.hidden && !!this.root.closest('dialog')?.open;
  }

  /** onEvent takes gb.device.online/offline: the list (and the device, if it is the one shown) is read again. */
  onEvent(type, data) {
    if (!this.showing() || !type.startsWith('gb.device.')) return;
    this.fetchList({ quiet: true });
    if (this.deviceId && data?.id === this.deviceId) this.fetchDevice({ quiet: true });
  }

  async fetchList({ quiet = false } = {}) {
    const seq = this.seq;
    const mine = ++this.listSeq;
    if (!quiet) flash(this.status, '加载中 Loading…', '');
    let res;
    try {
      res = await getJSON(DEVICES);
    } catch (err) {
      if (seq !== this.seq || mine !== this.listSeq) return;
      if (err instanceof ApiError && err.status === 404) {
        // The list is never "not found": no such route, a server from before GB/T 28181.
        this.deps.onAbsent?.();
        return;
      }
      if (err instanceof ApiError && err.status === 503) {
        this.showUnavailable(err);
        return;
      }
      flash(this.status, describe(err), 'error');
      return;
    }
    if (seq !== this.seq || mine !== this.listSeq) return;
    this.unavailable.hidden = true;
    this.provisionBtn.hidden = !!this.deviceId;
    this.listWrap.hidden = false;
    this.devices = Array.isArray(res?.devices) ? res.devices : [];
    const now = serverNow();
    fillRows(this.tbody, this.devices, '没有国标设备 No GB/T 28181 devices', (d) => this.row(d, now));
    const online = this.devices.filter((d) => d.online).length;
    // A quiet read (the timer's, or after an action) leaves the line to what the action said.
    if (!quiet && !this.deviceId) flash(this.status, `${this.devices.length} 台设备 devices · ${online} 在线 online`, '');
    const shown = this.deviceId && this.devices.find((d) => d.id === this.deviceId);
    if (shown) this.showFacts(shown, now);
  }

  showUnavailable(err) {
    const msg = err.message;
    this.unavailable.textContent = `国标平台未在此服务器运行 · ${/not running/i.test(msg) ? msg : `GB/T 28181 is not running on this server — ${msg}`}`;
    this.unavailable.hidden = false;
    this.provisionBtn.hidden = true;
    this.provisionForm.hidden = true;
    this.listWrap.hidden = true;
    this.detail.hidden = true;
    this.listView.hidden = false;
    this.deviceId = null;
    flash(this.status, '', '');
  }

  row(d, now) {
    const state = deviceState(d);
    return el(
      'tr',
      {
        className: `gb-row${state === 'online' ? '' : ' is-disabled'}`,
        dataset: { deviceId: d.id, online: String(!!d.online), channels: String(d.channels ?? 0), cameras: String(d.cameras ?? 0), unplaced: String(d.unplaced ?? 0), gone: String(d.gone ?? 0), hasPassword: String(!!d.has_password), crs: d.crs ?? '' },
      },
      el('td', '', el('button', { type: 'button', className: 'link-btn', dataset: { action: 'open' }, title: '打开此设备 · Open this device' }, d.name || '未命名 Unnamed'), el('div', 'mono dim', d.id)),
      el('td', '', stateBadge(d), d.offline_reason && !d.online ? el('div', 'gb-reason', d.offline_reason) : null),
      el('td', '', makerText(d)),
      el('td', 'mono', addressText(d)),
      el('td', 'mono', d.node ?? '—'),
      el('td', { className: 'time', title: formatTime(d.last_keepalive, { seconds: true }) }, agoText(d.last_keepalive, now)),
      numCell(d.channels),
      numCell(d.cameras),
      numCell(d.unplaced, { warn: true }),
      numCell(d.gone),
    );
  }

  // ---- provisioning -------------------------------------------------------------------------

  showProvision() {
    const f = this.pf;
    formError(this.provisionForm, null);
    f.id.value = '';
    f.password.value = '';
    f.crs.value = 'wgs84';
    this.provisionForm.hidden = false;
    f.id.focus();
  }

  async provision() {
    const f = this.pf;
    const id = f.id.value.trim();
    if (!ID_RE.test(id)) {
      formError(this.provisionForm, { message: '设备编号为 20 位数字 · A device ID is 20 digits.', details: { field: 'id' } });
      return;
    }
    const body = { password: f.password.value || null, crs: f.crs.value };
    this.provisionSave.disabled = true;
    try {
      const d = await sendJSON('PUT', `${DEVICES}/${id}`, body);
      this.provisionForm.hidden = true;
      f.password.value = '';
      await this.fetchList({ quiet: true });
      flash(this.status, `已预置 Provisioned ${d?.id ?? id}${d?.has_password ? ' · 设备独立密码 with its own password' : ''}`);
    } catch (err) {
      formError(this.provisionForm, err);
    } finally {
      this.provisionSave.disabled = false;
    }
  }

  // ---- one device -------------------------------------------------------------------------

  /** showDevice shows device id's detail (the admin view open on this tab). */
  showDevice(id) {
    if (this.deviceId !== id) {
      this.device = null;
      this.channels = [];
      this.hidePlace();
      this.result.hidden = true;
      this.chBody.replaceChildren();
      this.facts.replaceChildren();
      this.dName.textContent = '';
      this.dId.textContent = id;
      this.dState.replaceChildren();
      this.dReason.textContent = '';
      formError(this.settingsForm, null);
      this.sf.password.value = '';
      this.sf.platform.checked = false;
      this.sf.password.disabled = false;
      this.crsFor = null;
    }
    this.deviceId = id;
    this.detail.dataset.deviceId = id;
    this.listView.hidden = true;
    this.detail.hidden = false;
    this.provisionBtn.hidden = true;
    return this.fetchDevice();
  }

  showList() {
    this.deviceId = null;
    this.device = null;
    this.hidePlace();
    this.detail.hidden = true;
    this.listView.hidden = false;
    this.provisionBtn.hidden = false;
    return this.fetchList();
  }

  async fetchDevice({ quiet = false } = {}) {
    const id = this.deviceId;
    if (!id) return;
    const seq = this.seq;
    const mine = ++this.devSeq;
    let res;
    try {
      res = await getJSON(`${DEVICES}/${id}`);
    } catch (err) {
      if (seq !== this.seq || mine !== this.devSeq || id !== this.deviceId) return;
      if (err instanceof ApiError && err.status === 503) {
        this.showUnavailable(err);
        return;
      }
      flash(this.status, describe(err), 'error');
      return;
    }
    if (seq !== this.seq || mine !== this.devSeq || id !== this.deviceId) return;
    this.showFacts(res.device ?? {}, serverNow());
    if (this.crsFor !== id) {
      // The form shows the device's datum; later reads leave a choice being made alone.
      this.sf.crs.value = res.device?.crs || 'wgs84';
      this.crsFor = id;
    }
    this.channels = Array.isArray(res.channels) ? res.channels : [];
    fillRows(this.chBody, this.channels, '设备未报告通道 · The device has reported no channels', (c) => this.channelRow(c));
    if (!quiet) flash(this.status, `${this.channels.length} 个通道 channels`, '');
  }

  /** showFacts shows device d (GET …/devices/{id}'s device, or its row of the list) in the detail's head. */
  showFacts(d, now) {
    this.device = d;
    const state = deviceState(d);
    Object.assign(this.detail.dataset, { online: String(!!d.online), hasPassword: String(!!d.has_password), crs: d.crs ?? '', state });
    this.dName.textContent = d.name || '未命名设备 Unnamed device';
    this.dId.textContent = d.id ?? '';
    this.dState.replaceChildren(stateBadge(d));
    this.dReason.textContent = !d.online && d.offline_reason ? d.offline_reason : '';
    const fact = (dt, dd, key) => el('div', { className: 'fact', dataset: { fact: key } }, el('dt', '', dt), el('dd', '', dd));
    const ago = (t) => (t ? `${formatTime(t, { seconds: true })} (${agoText(t, now)})` : '—');
    this.facts.replaceChildren(
      fact('厂商 型号 Maker · model', makerText(d), 'maker'),
      fact('地址 Address', addressText(d), 'address'),
      fact('节点 Node', d.node ?? '—', 'node'),
      fact('注册 Registered', formatTime(d.registered_at, { seconds: true }), 'registered'),
      fact('到期 Expires', formatTime(d.expires_at, { seconds: true }), 'expires'),
      fact('心跳 Last keepalive', ago(d.last_keepalive), 'keepalive'),
      fact('目录 Catalog read', ago(d.catalog_at), 'catalog'),
      fact('通道 Channels', `${d.channels ?? 0} · ${d.cameras ?? 0} 摄像机 cameras · ${d.unplaced ?? 0} 未放置 unplaced · ${d.gone ?? 0} 已移除 gone`, 'counts'),
      fact('密码 Password', passwordText(d.has_password), 'password'),
      fact('坐标系 Datum', CRS_LABEL[d.crs] ?? d.crs ?? '—', 'crs'),
    );
    this.hasPw.textContent = `${passwordText(d.has_password)} · 从不显示 never shown`;
    this.hasPw.dataset.has = String(!!d.has_password);
  }

  channelRow(c) {
    const cam = c.camera_id ? el('button', { type: 'button', className: 'link-btn mono', dataset: { action: 'camera' }, title: '在地图上显示此摄像机 · Show this camera on the map' }, `#${c.camera_id} 在地图上 on the map`) : el('span', 'dim', '—');
    const place = c.unplaced && !c.gone ? el('button', { type: 'button', className: 'btn btn-small btn-primary', dataset: { action: 'place' } }, '放置 Place') : null;
    const marks = [
      c.gone ? el('span', { className: 'kind gb-mark', dataset: { kind: 'gone' }, title: '设备目录中已不再列出 · No longer in the device’s catalog' }, '已移除 gone') : null,
      c.unplaced ? el('span', { className: 'kind gb-mark', dataset: { kind: 'unplaced' }, title: '未报告位置，尚未放到地图上 · Reported no position: not on the map yet' }, '未放置 unplaced') : null,
    ];
    const pos = Number.isFinite(c.lon) && Number.isFinite(c.lat) ? `${c.lon.toFixed(6)}, ${c.lat.toFixed(6)}` : '—';
    return el(
      'tr',
      { className: c.gone ? 'is-disabled' : '', dataset: { channelId: c.id, unplaced: String(!!c.unplaced), gone: String(!!c.gone), cameraId: c.camera_id ? String(c.camera_id) : '' } },
      el('td', 'strong', c.name || '—', ...marks.filter(Boolean).map((m) => [' ', m]).flat()),
      el('td', 'mono', c.id),
      el('td', '', CHANNEL_STATUS[String(c.status).toUpperCase()] ?? (c.status || '—')),
      el('td', '', PTZ_TYPES[c.ptz_type] ?? '—'),
      el('td', 'mono', pos),
      el('td', '', cam),
      el('td', 'actions', place),
    );
  }

  // ---- asking the device -------------------------------------------------------------------

  say(kind, state, text, data = {}) {
    const r = this.result;
    for (const k of Object.keys(r.dataset)) delete r.dataset[k];
    Object.assign(r.dataset, { kind, state }, data);
    r.textContent = text;
    r.hidden = false;
  }

  async sync() {
    const id = this.deviceId;
    if (!id) return;
    this.syncBtn.disabled = true;
    this.say('sync', 'busy', '正在读取目录… · Reading the catalog…');
    try {
      const r = await sendJSON('POST', `${DEVICES}/${id}/catalog`, {});
      if (id !== this.deviceId) return;
      const counts = Object.fromEntries(['channels', 'added', 'updated', 'unplaced', 'gone', 'refused'].map((k) => [k, String(r?.[k] ?? 0)]));
      this.say('sync', r?.partial ? 'partial' : 'ok', syncText(r ?? {}), counts);
      await Promise.all([this.fetchDevice({ quiet: true }), this.fetchList({ quiet: true })]);
    } catch (err) {
      if (id === this.deviceId) this.say('sync', 'error', `无法同步目录 · Cannot read the catalog — ${describe(err)}`);
    } finally {
      this.syncBtn.disabled = false;
    }
  }

  async queryStatus() {
    const id = this.deviceId;
    if (!id) return;
    this.statusBtn.disabled = true;
    this.say('status', 'busy', '正在询问设备… · Asking the device…');
    try {
      const s = await getJSON(`${DEVICES}/${id}/status`);
      if (id !== this.deviceId) return;
      this.say('status', 'ok', statusText(s ?? {}), { online: String(s?.online ?? ''), result: String(s?.result ?? '') });
    } catch (err) {
      if (id === this.deviceId) this.say('status', 'error', `无法查询状态 · Cannot ask for the status — ${describe(err)}`);
    } finally {
      this.statusBtn.disabled = false;
    }
  }

  // ---- the device's password and datum -------------------------------------------------------

  async saveSettings() {
    const id = this.deviceId;
    const d = this.device;
    if (!id || !d) return;
    const f = this.sf;
    formError(this.settingsForm, null);
    const body = {};
    if (f.platform.checked) body.password = '';
    else if (f.password.value) body.password = f.password.value;
    if (f.crs.value !== d.crs) body.crs = f.crs.value;
    if (Object.keys(body).length === 0) {
      flash(this.status, '没有更改 Nothing changed', '');
      return;
    }
    this.settingsSave.disabled = true;
    try {
      const res = await sendJSON('PUT', `${DEVICES}/${id}`, body);
      f.password.value = '';
      f.platform.checked = false;
      f.password.disabled = false;
      if (id !== this.deviceId) return;
      this.showFacts({ ...d, ...res }, serverNow());
      this.fetchList({ quiet: true });
      const what = [body.password !== undefined ? (body.password ? '密码已设置 password set' : '改用平台密码 platform password') : '', body.crs ? `坐标系 datum ${body.crs}` : ''].filter(Boolean).join(' · ');
      flash(this.status, `已保存 Saved: ${what}`);
    } catch (err) {
      formError(this.settingsForm, err);
    } finally {
      this.settingsSave.disabled = false;
    }
  }

  // ---- placing an unplaced channel ----------------------------------------------------------

  showPlace(ch) {
    const f = this.lf;
    if (this.placing?.id !== ch.id) {
      f.lon.value = '';
      f.lat.value = '';
      f.crs.value = 'wgs84';
    }
    this.placing = ch;
    formError(this.placeForm, null);
    this.placeForm.dataset.channelId = ch.id;
    this.placeTitle.textContent = `放置通道 Place channel · ${ch.name || ''} ${ch.id}`;
    this.placeForm.hidden = false;
    f.lon.focus();
  }

  hidePlace() {
    this.placing = null;
    this.placeForm.hidden = true;
    delete this.placeForm.dataset.channelId;
  }

  /** pickOnMap lets the admin view step aside for a click on the map, then fills the position in. */
  async pickOnMap() {
    const ch = this.placing;
    if (!ch || !this.deps.pick) return;
    const p = await this.deps.pick(`点击地图上通道“${ch.name || ch.id}”所在位置 · Click the map where channel ${ch.id} is`);
    if (!p || this.placing !== ch) return;
    this.lf.lon.value = p.lng.toFixed(7);
    this.lf.lat.value = p.lat.toFixed(7);
    this.lf.crs.value = 'wgs84';
    this.placeForm.hidden = false;
    this.placeSave.focus();
  }

  async place() {
    const ch = this.placing;
    if (!ch) return;
    const f = this.lf;
    formError(this.placeForm, null);
    const lon = Number(f.lon.value.trim());
    const lat = Number(f.lat.value.trim());
    if (f.lon.value.trim() === '' || !Number.isFinite(lon) || lon < -180 || lon > 180) {
      formError(this.placeForm, { message: '经度为 -180 至 180 的数 · The longitude is a number from -180 to 180.', details: { field: 'lon' } });
      return;
    }
    if (f.lat.value.trim() === '' || !Number.isFinite(lat) || lat < -90 || lat > 90) {
      formError(this.placeForm, { message: '纬度为 -90 至 90 的数 · The latitude is a number from -90 to 90.', details: { field: 'lat' } });
      return;
    }
    this.placeSave.disabled = true;
    try {
      const cam = await sendJSON('POST', `/api/v1/gb28181/channels/${ch.id}/place`, { location: { type: 'Point', coordinates: [lon, lat] }, crs: f.crs.value });
      this.hidePlace();
      flash(this.status, `已放置 Placed ${ch.id} → 摄像机 camera #${cam?.id}${cam?.grid ? ` · ${cam.grid.name}` : ' · 无网格 in no grid'}`);
      await Promise.all([this.fetchDevice({ quiet: true }), this.fetchList({ quiet: true })]);
      if (cam?.id) this.deps.showCamera(cam.id);
    } catch (err) {
      formError(this.placeForm, err);
    } finally {
      this.placeSave.disabled = false;
    }
  }
}
