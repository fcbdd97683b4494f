// The "Admin 管理" view: a large modal dialog with one tab per permission —
// Users (users.manage), API tokens (tokens.manage), Audit log and Viewings
// (audit.read: who watched which camera, live or recorded, how and when),
// Nodes (metrics.read: the gridwatch nodes sharing the database), GB/T
// 28181 devices (cameras.write: the devices registered over SIP, their
// channels, placing the unplaced ones). Built on first open; every call goes through api.js (CSRF, sign-in retry).
// This file has the dialog and the users and tokens tabs; the log tabs are
// admin-logs.js's, the nodes tab admin-nodes.js's, the GB/T 28181 tab
// admin-gb28181.js's, what the tabs share
// admin-parts.js's. A tab with a stop() (one that refreshes itself) is
// stopped when another tab is chosen or the dialog closes.

import { applyPermissions, can, describe, getJSON, request, sendJSON, session } from './api.js';
import { el, field, formError, formatTime, gridsText, parseCodes, roleLabel, roleOptions } from './dom.js';
import { adminForm, codesOf, fillRows, flash, loadTable, nameOf, roleBadge, sameList, table } from './admin-parts.js';
import { AuditTab, ViewingsTab } from './admin-logs.js';
import { NodesTab } from './admin-nodes.js';
import { GBTab } from './admin-gb28181.js';
import { serverNow } from './clock.js';

const TABS = [
  { id: 'users', perm: 'users.manage', label: '用户 Users' },
  { id: 'tokens', perm: 'tokens.manage', label: '令牌 API tokens' },
  { id: 'audit', perm: 'audit.read', label: '审计 Audit log' },
  { id: 'viewings', perm: 'audit.read', label: '观看记录 Viewings' },
  { id: 'nodes', perm: 'metrics.read', label: '节点 Nodes' },
  { id: 'gb', perm: 'cameras.write', label: '国标设备 GB/T 28181' },
];

/**
 * AdminDialog is the admin view; open() shows the first tab the user may use.
 * deps: onError(err, context); onCamera(id) shows camera id on the map (the
 * view closed first); pickPoint(hint) takes one click on the map (a promise
 * of {lng, lat}, or null when cancelled).
 */
export class AdminDialog {
  constructor({ onError, onCamera = () => {}, pickPoint = null }) {
    this.onError = onError;
    this.onCamera = onCamera;
    this.pickPoint = pickPoint;
    this.dialog = null;
    this.tabs = {};
    this.current = '';
    this.absent = new Set(); // tabs the server has no route for
  }

  allowed() {
    return TABS.filter((t) => can(t.perm) && !this.absent.has(t.id));
  }

  open() {
    if (!this.dialog) this.build();
    applyPermissions(this.dialog);
    for (const id of this.absent) this.tablist.querySelector(`[data-tab="${id}"]`).hidden = true;
    if (!this.dialog.open) this.dialog.showModal();
    const allowed = this.allowed();
    if (allowed.length === 0) return;
    this.select(allowed.some((t) => t.id === this.current) ? this.current : allowed[0].id, true);
  }

  /** openGBDevice opens the GB/T 28181 tab on device id (the camera card's link). */
  openGBDevice(id) {
    if (!can('cameras.write') || this.absent.has('gb')) return;
    if (!this.dialog) this.build();
    this.current = 'gb';
    this.open();
    this.tabs.gb.showDevice(id);
  }

  /** onEvent hands the live feed's gb.device.* events to the GB/T 28181 tab (if it shows). */
  onEvent(type, data) {
    this.tabs.gb?.onEvent(type, data);
  }

  /** showCamera closes the view and shows camera id on the map. */
  showCamera(id) {
    this.dialog.close();
    this.onCamera(id);
  }

  /** pick steps the view aside for one click on the map, then opens it again where it was. */
  async pick(hint) {
    if (!this.pickPoint) return null;
    this.dialog.close();
    let p = null;
    try {
      p = await this.pickPoint(hint);
    } finally {
      this.open();
    }
    return p;
  }

  /** tabAbsent hides a tab whose route the server does not have, and shows another. */
  tabAbsent(id) {
    this.absent.add(id);
    this.tablist.querySelector(`[data-tab="${id}"]`).hidden = true;
    if (this.current !== id) return;
    this.tabs[id].stop?.();
    const next = this.allowed()[0];
    if (next) this.select(next.id, true);
    else this.tabs[id].root.hidden = true;
  }

  build() {
    const tablist = el('div', { className: 'tabs', role: 'tablist', 'aria-label': 'Admin sections' });
    const body = el('div', 'dialog-body admin-body');
    for (const t of TABS) {
      const btn = el('button', { type: 'button', className: 'tab', role: 'tab', id: `admin-tab-${t.id}`, dataset: { tab: t.id, perm: t.perm }, 'aria-selected': 'false', 'aria-controls': `admin-${t.id}` }, t.label);
      btn.addEventListener('click', () => this.select(t.id, true));
      tablist.append(btn);
    }
    tablist.addEventListener('keydown', (ev) => {
      if (ev.key !== 'ArrowLeft' && ev.key !== 'ArrowRight') return;
      const shown = [...tablist.querySelectorAll('.tab:not([hidden])')];
      const i = shown.indexOf(document.activeElement);
      if (i < 0) return;
      const next = shown[(i + (ev.key === 'ArrowRight' ? 1 : shown.length - 1)) % shown.length];
      next.focus();
      this.select(next.dataset.tab, true);
    });
    const gb = new GBTab({ showCamera: (id) => this.showCamera(id), pick: (hint) => this.pick(hint), onAbsent: () => this.tabAbsent('gb') });
    if (!this.pickPoint) gb.placeForm.querySelector('[data-action="pick"]').hidden = true;
    this.tabs = { users: new UsersTab(), tokens: new TokensTab(), audit: new AuditTab(), viewings: new ViewingsTab(), nodes: new NodesTab(), gb };
    for (const [id, tab] of Object.entries(this.tabs)) {
      tab.root.id = `admin-${id}`;
      tab.root.setAttribute('role', 'tabpanel');
      tab.root.setAttribute('aria-labelledby', `admin-tab-${id}`);
      tab.root.hidden = true;
      body.append(tab.root);
    }
    const close = el('button', { type: 'button', className: 'dialog-close', 'aria-label': 'Close' }, '×');
    close.addEventListener('click', () => this.dialog.close());
    this.tablist = tablist;
    this.dialog = el(
      'dialog',
      { className: 'dialog dialog-admin', id: 'admin-dialog', 'aria-labelledby': 'admin-title' },
      el('div', 'dialog-head', el('h2', { className: 'dialog-title', id: 'admin-title' }, '管理 Admin'), tablist, close),
      body,
    );
    this.dialog.addEventListener('close', () => {
      for (const tab of Object.values(this.tabs)) tab.stop?.();
    });
    document.body.append(this.dialog);
  }

  select(id, load) {
    this.current = id;
    for (const b of this.tablist.querySelectorAll('.tab')) {
      const on = b.dataset.tab === id;
      b.setAttribute('aria-selected', String(on));
      b.tabIndex = on ? 0 : -1;
    }
    for (const [tid, tab] of Object.entries(this.tabs)) {
      tab.root.hidden = tid !== id;
      if (tid !== id) tab.stop?.();
    }
    this.dialog.dataset.tab = id;
    if (load) this.tabs[id].load();
  }
}

// ---- users -------------------------------------------------------------------------

class UsersTab {
  constructor() {
    this.users = [];
    this.editing = null; // the user being edited, or null when creating
    this.status = el('p', { className: 'tab-status', role: 'status' });
    const add = el('button', { type: 'button', className: 'btn btn-primary', id: 'user-new' }, '＋ 新建用户 New user');
    add.addEventListener('click', () => this.showForm(null));
    const refresh = el('button', { type: 'button', className: 'btn' }, '刷新 Refresh');
    refresh.addEventListener('click', () => this.load());

    const f = {
      username: el('input', { name: 'username', autocomplete: 'off', spellcheck: false, autocapitalize: 'none', required: true }),
      display_name: el('input', { name: 'display_name', autocomplete: 'off' }),
      role: el('select', { name: 'role' }),
      grid_codes: el('input', { name: 'grid_codes', autocomplete: 'off', spellcheck: false, placeholder: '410105001001, 410105001002' }),
      password: el('input', { name: 'password', type: 'password', autocomplete: 'new-password' }),
      disabled: el('input', { name: 'disabled', type: 'checkbox' }),
    };
    roleOptions(f.role, 'commander');
    this.f = f;
    this.formTitle = el('h3', 'admin-form-title');
    this.pwLabel = el('span', 'field-label');
    this.disabledRow = el('label', 'check', f.disabled, el('span', '', '停用此账号 Disable this account (ends its sessions)'));
    const cancel = el('button', { type: 'button', className: 'btn' }, '取消 Cancel');
    cancel.addEventListener('click', () => this.hideForm());
    this.save = el('button', { type: 'submit', className: 'btn btn-primary' }, '保存 Save');
    const fields = [
      field('用户名 Username', f.username),
      field('显示名 Display name', f.display_name),
      field('角色 Role', f.role),
      el('label', { className: 'field' }, this.pwLabel, f.password),
      el('div', 'field-wide', field('网格编码 Grid codes', f.grid_codes, '逗号分隔；留空 = 全部网格 · Comma separated; empty = all grids (a grid leader needs at least one)')),
      el('div', 'field-wide', this.disabledRow),
    ];
    this.form = adminForm('user-form', this.formTitle, fields, [cancel, this.save], () => this.submit());

    const { wrap, tbody } = table('users-table', ['用户名 Username', '显示名 Name', '角色 Role', '网格 Grids', '状态 Status', '创建 Created', '最近登录 Last login', '']);
    this.tbody = tbody;
    tbody.addEventListener('click', (ev) => {
      const b = ev.target.closest('button[data-action]');
      if (!b) return;
      const u = this.users.find((x) => String(x.id) === b.dataset.id);
      if (!u) return;
      if (b.dataset.action === 'edit') this.showForm(u);
      else if (b.dataset.action === 'toggle') this.toggle(u, b);
      else if (b.dataset.action === 'sessions') this.toggleSessions(u, b);
      else if (b.dataset.action === 'revoke-session') this.revokeSession(u, b);
    });
    this.root = el('section', 'admin-tab', el('div', 'admin-toolbar', add, refresh, this.status), this.form, wrap);
  }

  load() {
    return loadTable(this.status, '/api/v1/users', 'users', '个用户 users', (list) => {
      this.users = list;
      fillRows(this.tbody, list, '没有用户 No users', (u) => this.row(u));
    });
  }

  row(u) {
    const id = String(u.id);
    const edit = el('button', { type: 'button', className: 'btn btn-small', dataset: { action: 'edit', id } }, '编辑 Edit');
    const toggle = el('button', { type: 'button', className: `btn btn-small ${u.disabled ? '' : 'btn-danger'}`, dataset: { action: 'toggle', id } }, u.disabled ? '启用 Enable' : '停用 Disable');
    const sessions = el('button', { type: 'button', className: 'btn btn-small', dataset: { action: 'sessions', id }, 'aria-expanded': 'false', title: '登录的设备与会话，可逐个注销 · Signed-in devices and sessions; sign one out' }, '设备 Devices');
    return el(
      'tr',
      { dataset: { username: u.username ?? '', userId: id }, className: u.disabled ? 'is-disabled' : '' },
      el('td', 'mono strong', u.username ?? ''),
      el('td', '', u.display_name ?? ''),
      el('td', '', roleBadge(u.role)),
      el('td', 'mono wrap', gridsText(u.grids)),
      el('td', '', el('span', { className: 'state', dataset: { state: u.disabled ? 'off' : 'on' } }, u.disabled ? '已停用 Disabled' : '正常 Active')),
      el('td', 'time', formatTime(u.created_at)),
      el('td', 'time', formatTime(u.last_login_at)),
      el('td', 'actions', edit, sessions, toggle),
    );
  }

  /** toggleSessions shows or hides the user's open sessions under their row. */
  async toggleSessions(u, button) {
    const row = button.closest('tr');
    const next = row.nextElementSibling;
    if (next?.dataset.sessionsOf === String(u.id)) {
      next.remove();
      button.setAttribute('aria-expanded', 'false');
      return;
    }
    button.setAttribute('aria-expanded', 'true');
    const cell = el('td', { colSpan: 8 }, el('span', 'dim', 'Loading… 加载中'));
    const sub = el('tr', { className: 'sessions-row', dataset: { sessionsOf: String(u.id) } }, cell);
    row.after(sub);
    await this.fillSessions(u, cell);
  }

  async fillSessions(u, cell) {
    try {
      const res = await getJSON(`/api/v1/users/${encodeURIComponent(u.id)}/sessions`);
      const list = res?.sessions ?? [];
      if (list.length === 0) {
        cell.replaceChildren(el('span', 'dim', '没有登录中的会话 · No open sessions'));
        return;
      }
      const ul = el('ul', 'session-list');
      // The admin's own session, the one this page runs on: marked, and not offered to sign out here (the top bar's sign-out is).
      const mine = session.user?.kind === 'user' && session.user.session?.id !== undefined && session.user.session?.id !== null ? String(session.user.session.id) : '';
      for (const sn of list) {
        const kind = sn.device ? `📱 ${sn.device}` : '🖥 仪表盘 Dashboard';
        const current = mine !== '' && String(sn.id) === mine;
        const revoke = current
          ? el('span', { className: 'strong session-current', dataset: { field: 'this-session' } }, '本机 this session')
          : el('button', { type: 'button', className: 'btn btn-small btn-danger', dataset: { action: 'revoke-session', id: String(u.id), session: String(sn.id) } }, '注销 Sign out');
        ul.append(el('li', { className: 'session-item', dataset: { sessionId: String(sn.id), device: sn.device ?? '', current: String(current) } },
          el('span', 'strong', kind),
          el('span', 'dim', ` · 最近 last seen ${formatTime(sn.last_seen_at)} · 到期 ends ${formatTime(sn.idle_until)} · ${sn.ip ?? ''}`),
          ' ', revoke));
      }
      cell.replaceChildren(ul);
    } catch (err) {
      cell.replaceChildren(el('span', 'form-error', describe(err)));
    }
  }

  async revokeSession(u, button) {
    button.disabled = true;
    try {
      await sendJSON('DELETE', `/api/v1/sessions/${encodeURIComponent(button.dataset.session)}`);
      flash(this.status, `已注销 Signed out: ${u.username}`);
      const cell = button.closest('td');
      await this.fillSessions(u, cell);
    } catch (err) {
      button.disabled = false;
      flash(this.status, describe(err), 'error');
    }
  }

  showForm(u) {
    this.editing = u;
    const f = this.f;
    formError(this.form, null);
    this.formTitle.textContent = u ? `编辑用户 Edit user · ${u.username}` : '新建用户 New user';
    f.username.value = u?.username ?? '';
    f.username.disabled = !!u;
    f.display_name.value = u?.display_name ?? '';
    roleOptions(f.role, u?.role ?? 'commander');
    f.grid_codes.value = codesOf(u?.grids).join(', ');
    f.password.value = '';
    f.password.required = !u;
    this.pwLabel.textContent = u ? '重置密码 Reset password (empty: keep)' : '密码 Password';
    f.disabled.checked = !!u?.disabled;
    this.disabledRow.hidden = !u;
    this.save.textContent = u ? '保存 Save' : '创建 Create';
    this.form.hidden = false;
    (u ? f.display_name : f.username).focus();
  }

  hideForm() {
    this.form.hidden = true;
    this.editing = null;
  }

  async submit() {
    const f = this.f;
    const u = this.editing;
    const codes = parseCodes(f.grid_codes.value);
    let body;
    if (u) {
      body = {};
      if (f.display_name.value.trim() !== (u.display_name ?? '')) body.display_name = f.display_name.value.trim();
      if (f.role.value !== u.role) body.role = f.role.value;
      if (!sameList(codes, codesOf(u.grids))) body.grid_codes = codes;
      if (f.password.value) body.password = f.password.value;
      if (f.disabled.checked !== !!u.disabled) body.disabled = f.disabled.checked;
      if (Object.keys(body).length === 0) {
        this.hideForm();
        flash(this.status, '没有更改 Nothing changed', '');
        return;
      }
    } else {
      body = { username: f.username.value.trim(), display_name: f.display_name.value.trim(), role: f.role.value, password: f.password.value, grid_codes: codes };
      if (!body.username || !body.password) {
        formError(this.form, { message: '请填写用户名和密码 · Username and password are required.', details: { field: body.username ? 'password' : 'username' } });
        return;
      }
    }
    this.save.disabled = true;
    try {
      const res = u ? await sendJSON('PATCH', `/api/v1/users/${encodeURIComponent(u.id)}`, body) : await sendJSON('POST', '/api/v1/users', body);
      this.hideForm();
      await this.load();
      flash(this.status, `${u ? '已保存 Saved' : '已创建 Created'} ${res?.user?.username ?? body.username ?? u?.username}`);
    } catch (err) {
      formError(this.form, err);
    } finally {
      this.save.disabled = false;
    }
  }

  async toggle(u, button) {
    button.disabled = true;
    try {
      await sendJSON('PATCH', `/api/v1/users/${encodeURIComponent(u.id)}`, { disabled: !u.disabled });
      await this.load();
      flash(this.status, `${u.disabled ? '已启用 Enabled' : '已停用 Disabled'} ${u.username}`);
    } catch (err) {
      button.disabled = false;
      flash(this.status, describe(err), 'error');
    }
  }
}

// ---- API tokens --------------------------------------------------------------------

class TokensTab {
  constructor() {
    this.tokens = [];
    this.status = el('p', { className: 'tab-status', role: 'status' });
    const add = el('button', { type: 'button', className: 'btn btn-primary', id: 'token-new' }, '＋ 新建令牌 New token');
    add.addEventListener('click', () => this.showForm());
    const refresh = el('button', { type: 'button', className: 'btn' }, '刷新 Refresh');
    refresh.addEventListener('click', () => this.load());

    const f = {
      name: el('input', { name: 'name', autocomplete: 'off', placeholder: '12345 hotline', required: true }),
      role: el('select', { name: 'role' }),
      grid_codes: el('input', { name: 'grid_codes', autocomplete: 'off', spellcheck: false, placeholder: '410105001001' }),
      expires_at: el('input', { name: 'expires_at', type: 'datetime-local' }),
    };
    this.f = f;
    const cancel = el('button', { type: 'button', className: 'btn' }, '取消 Cancel');
    cancel.addEventListener('click', () => {
      this.form.hidden = true;
    });
    this.save = el('button', { type: 'submit', className: 'btn btn-primary' }, '创建 Create');
    const fields = [
      field('名称 Name', f.name),
      field('角色 Role', f.role),
      field('过期 Expires (optional)', f.expires_at),
      el('div', 'field-wide', field('网格编码 Grid codes', f.grid_codes, '逗号分隔；留空 = 全部网格 · Comma separated; empty = all grids')),
    ];
    this.form = adminForm('token-form', el('h3', 'admin-form-title', '新建 API 令牌 New API token'), fields, [cancel, this.save], () => this.submit());

    // The secret, shown once right after creation.
    this.secretCode = el('code', { className: 'secret-value', id: 'token-secret' });
    this.secretName = el('span', 'secret-name');
    this.copyBtn = el('button', { type: 'button', className: 'btn btn-small' }, '复制 Copy');
    this.copyBtn.addEventListener('click', () => this.copy());
    const done = el('button', { type: 'button', className: 'btn btn-small' }, '我已保存 I have saved it');
    done.addEventListener('click', () => this.hideSecret());
    this.secretBox = el(
      'div',
      { className: 'secret-box', hidden: true, role: 'alert' },
      el('div', 'secret-head', el('strong', '', '新令牌 New token '), this.secretName),
      el('div', 'secret-row', this.secretCode, this.copyBtn),
      el('p', 'secret-note', '此密钥只显示这一次，关闭后无法再次查看 · This secret is shown only once: copy it now — you won’t see it again. Use it as “Authorization: Bearer …”.'),
      el('div', 'form-actions', done),
    );

    const { wrap, tbody } = table('tokens-table', ['名称 Name', '角色 Role', '网格 Grids', '创建 Created', '创建者 By', '最近使用 Last used', '过期 Expires', '状态 Status', '']);
    this.tbody = tbody;
    tbody.addEventListener('click', (ev) => {
      const b = ev.target.closest('button[data-action="revoke"]');
      const t = b && this.tokens.find((x) => String(x.id) === b.dataset.id);
      if (t) this.revoke(t, b);
    });
    this.root = el('section', 'admin-tab', el('div', 'admin-toolbar', add, refresh, this.status), this.secretBox, this.form, wrap);
  }

  load() {
    return loadTable(this.status, '/api/v1/tokens', 'tokens', '个令牌 tokens', (list) => {
      this.tokens = list;
      const now = serverNow();
      fillRows(this.tbody, list, '没有令牌 No tokens', (t) => this.row(t, now));
    });
  }

  row(t, now) {
    const expired = t.expires_at && new Date(t.expires_at).getTime() <= now;
    const state = t.revoked_at ? 'revoked' : expired ? 'expired' : 'on';
    const stateText = { revoked: `已吊销 Revoked ${formatTime(t.revoked_at)}`, expired: '已过期 Expired', on: '有效 Active' }[state];
    const revoke = t.revoked_at ? null : el('button', { type: 'button', className: 'btn btn-small btn-danger', dataset: { action: 'revoke', id: String(t.id) } }, '吊销 Revoke');
    return el(
      'tr',
      { dataset: { tokenId: String(t.id) }, className: state === 'on' ? '' : 'is-disabled' },
      el('td', 'strong', t.name ?? ''),
      el('td', '', roleBadge(t.role)),
      el('td', 'mono wrap', gridsText(t.grids)),
      el('td', 'time', formatTime(t.created_at)),
      el('td', '', nameOf(t.created_by)),
      el('td', 'time', formatTime(t.last_used_at)),
      el('td', 'time', t.expires_at ? formatTime(t.expires_at) : '永不 Never'),
      el('td', '', el('span', { className: 'state', dataset: { state: state === 'on' ? 'on' : 'off' } }, stateText)),
      el('td', 'actions', revoke),
    );
  }

  showForm() {
    const f = this.f;
    formError(this.form, null);
    f.name.value = '';
    roleOptions(f.role, 'integration');
    f.grid_codes.value = '';
    f.expires_at.value = '';
    this.form.hidden = false;
    f.name.focus();
  }

  async submit() {
    const f = this.f;
    const body = { name: f.name.value.trim(), role: f.role.value, grid_codes: parseCodes(f.grid_codes.value), expires_at: null };
    if (!body.name) {
      formError(this.form, { message: '请填写名称 · A name is required.', details: { field: 'name' } });
      return;
    }
    if (f.expires_at.value) {
      const d = new Date(f.expires_at.value); // datetime-local is local time
      if (Number.isNaN(d.getTime()) || d.getTime() <= Date.now()) {
        formError(this.form, { message: '过期时间须在将来 · The expiry must be in the future.', details: { field: 'expires_at' } });
        return;
      }
      body.expires_at = d.toISOString();
    }
    this.save.disabled = true;
    try {
      const res = await sendJSON('POST', '/api/v1/tokens', body);
      this.form.hidden = true;
      this.showSecret(res?.token?.name ?? body.name, res?.secret ?? '');
      await this.load();
    } catch (err) {
      formError(this.form, err);
    } finally {
      this.save.disabled = false;
    }
  }

  showSecret(name, secret) {
    this.secretName.textContent = `${name} · ${roleLabel(this.f.role.value)}`;
    this.secretCode.textContent = secret;
    this.copyBtn.textContent = '复制 Copy';
    this.secretBox.hidden = false;
    this.copyBtn.focus();
  }

  hideSecret() {
    this.secretCode.textContent = '';
    this.secretBox.hidden = true;
  }

  async copy() {
    const text = this.secretCode.textContent;
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // No clipboard API (plain http on a LAN address): select it for Ctrl+C.
      getSelection().selectAllChildren(this.secretCode);
      this.copyBtn.textContent = '已选中，按 Ctrl+C · Selected: press Ctrl+C';
      return;
    }
    this.copyBtn.textContent = '已复制 Copied ✓';
  }

  async revoke(t, button) {
    if (!confirm(`吊销令牌 Revoke token “${t.name}”?\n使用它的系统将立即失去访问权限 · Anything using it loses access at once.`)) return;
    button.disabled = true;
    try {
      await request('DELETE', `/api/v1/tokens/${encodeURIComponent(t.id)}`);
      await this.load();
      flash(this.status, `已吊销 Revoked ${t.name}`);
    } catch (err) {
      button.disabled = false;
      flash(this.status, describe(err), 'error');
    }
  }
}
