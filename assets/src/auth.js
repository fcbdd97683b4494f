// The login overlay (#login, a modal <dialog> so it sits above any other open
// dialog and makes the page behind it inert) and the signed-in user in the header.

import { ApiError, describe, login, logout } from './api.js';
import { roleLabel } from './dom.js';

/** LoginDialog asks for a username and password until the server accepts them. */
export class LoginDialog {
  constructor(dialog) {
    this.dialog = dialog;
    this.form = dialog.querySelector('form');
    this.username = dialog.querySelector('#login-username');
    this.password = dialog.querySelector('#login-password');
    this.error = dialog.querySelector('#login-error');
    this.submit = dialog.querySelector('#login-submit');
    this.expired = dialog.querySelector('#login-expired');
    this.waiters = [];
    this.returnFocus = null;
    this.throttleTimer = 0;

    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.trySignIn();
    });
    // Nobody gets past the overlay with Esc: keep it open while a sign-in is awaited.
    dialog.addEventListener('cancel', (ev) => ev.preventDefault());
    dialog.addEventListener('close', () => {
      if (this.waiters.length > 0) this.dialog.showModal();
    });
  }

  get isOpen() {
    return this.dialog.open;
  }

  /**
   * prompt shows the overlay and resolves with the /me body once signed in.
   * expired says the session ended under a working page; previous (the user
   * before) pre-fills the username.
   */
  prompt({ expired = false, previous = null } = {}) {
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      if (this.dialog.open) return;
      this.returnFocus = document.activeElement instanceof HTMLElement && document.activeElement !== document.body ? document.activeElement : null;
      this.expired.hidden = !expired;
      this.setError('');
      this.password.value = '';
      if (previous?.username) this.username.value = previous.username;
      this.submit.disabled = false;
      document.body.dataset.auth = 'login';
      this.dialog.showModal();
      (this.username.value ? this.password : this.username).focus();
    });
  }

  setError(text) {
    this.error.textContent = text;
    this.error.hidden = !text;
    this.dialog.classList.toggle('has-error', !!text);
  }

  async trySignIn() {
    if (this.submit.disabled) return;
    const username = this.username.value.trim();
    const password = this.password.value;
    if (!username || !password) {
      this.setError('请输入用户名和密码 · Enter your username and password.');
      (username ? this.password : this.username).focus();
      return;
    }
    this.submit.disabled = true;
    this.submit.dataset.busy = 'true';
    this.setError('');
    let me;
    try {
      me = await login(username, password);
    } catch (err) {
      this.submit.disabled = false;
      delete this.submit.dataset.busy;
      this.refused(err);
      return;
    }
    delete this.submit.dataset.busy;
    this.password.value = '';
    const waiters = this.waiters;
    this.waiters = [];
    this.dialog.close();
    document.body.dataset.auth = 'ok';
    if (this.returnFocus?.isConnected) this.returnFocus.focus({ preventScroll: true });
    this.returnFocus = null;
    for (const w of waiters) w(me);
  }

  refused(err) {
    const why = refusal(err);
    if (why.waitSeconds) {
      clearInterval(this.throttleTimer);
      this.throttleTimer = countdown(why.waitSeconds, this.submit, (text) => this.setError(text), () => this.password.focus());
      return;
    }
    this.setError(why.message);
    this.password.select();
    this.password.focus();
  }
}

/**
 * refusal says why a sign-in was refused: {waitSeconds} when the server
 * throttles attempts, else {message} to show (offline: offlineText, when given).
 */
export function refusal(err, { offlineText = '' } = {}) {
  if (err instanceof ApiError && err.code === 'throttled') return { waitSeconds: Number(err.details?.retry_after_seconds) || 30 };
  if (err instanceof ApiError && (err.code === 'invalid_credentials' || err.status === 401)) {
    return { message: `用户名或密码错误 · ${err.message || 'Wrong username or password.'}` };
  }
  if (offlineText && err instanceof ApiError && err.code === 'network') return { message: offlineText };
  return { message: `无法登录 Cannot sign in — ${describe(err)}` };
}

/**
 * countdown disables submit and shows, every second, the wait until the
 * server takes another attempt; then enables it and calls done. It returns
 * the interval (clear it to stop early).
 */
export function countdown(seconds, submit, show, done) {
  const until = Date.now() + seconds * 1000;
  submit.disabled = true;
  let timer = 0;
  const tick = () => {
    const left = Math.ceil((until - Date.now()) / 1000);
    if (left <= 0) {
      clearInterval(timer);
      submit.disabled = false;
      show('可以再试一次 · You can try again now.');
      done?.();
      return;
    }
    show(`尝试次数过多，请 ${left} 秒后再试 · Too many attempts — try again in ${left} s.`);
  };
  timer = setInterval(tick, 1000);
  tick();
  return timer;
}

/** showUser fills the header's user box and wires its sign-out button (once). */
export function showUser(me) {
  const box = document.querySelector('#user');
  box.hidden = !me;
  if (!me) return;
  document.querySelector('#user-name').textContent = me.display_name || me.username;
  box.title = `${me.username} · ${roleLabel(me.role)}`;
  const role = document.querySelector('#user-role');
  role.textContent = roleLabel(me.role);
  role.dataset.role = me.role;
  document.body.dataset.user = me.username;
  document.body.dataset.role = me.role;
  const out = document.querySelector('#logout-btn');
  if (out.dataset.wired) return;
  out.dataset.wired = 'true';
  out.addEventListener('click', async () => {
    out.disabled = true;
    try {
      await logout();
    } catch {
      // Signed out or not, the reload below shows the login overlay.
    }
    location.reload();
  });
}
