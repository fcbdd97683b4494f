// Signing in on the phone, once: username, password and the name of this
// device (prefilled from the browser), POST /api/v1/auth/login with
// "device" — a device session that lasts weeks, revocable by an admin.
// The same screen comes back if the session ends (api.js asks for it on a
// 401) and the page carries on from where it was.

import { request, session } from '../api.js';
import { countdown, refusal } from '../auth.js';
import { deviceName } from './ui.js';

/** SIGNED_IN_KEY notes in localStorage that this phone has a session ("1"), to read the tasks beside "who am I" at start. */
export const SIGNED_IN_KEY = 'gridwatch.field.signed-in';
const DEVICE_KEY = 'gridwatch.field.device';
const USER_KEY = 'gridwatch.field.user';

/** SignIn is the sign-in screen (#login). */
export class SignIn {
  constructor() {
    this.box = document.querySelector('#login');
    this.form = document.querySelector('#login-form');
    this.username = document.querySelector('#login-username');
    this.password = document.querySelector('#login-password');
    this.device = document.querySelector('#login-device');
    this.error = document.querySelector('#login-error');
    this.submit = document.querySelector('#login-submit');
    this.expired = document.querySelector('#login-expired');
    this.waiters = [];
    this.throttle = 0;
    this.expiredText = this.expired.textContent;
    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.trySignIn();
    });
  }

  /**
   * prompt shows the screen and resolves with the /me body once signed in.
   * previous: who was signed in (their username is filled in); note: why
   * signing in is asked for, instead of "your session has ended".
   */
  prompt({ expired = false, previous = null, note = '' } = {}) {
    forget(SIGNED_IN_KEY);
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      if (!this.box.hidden) return;
      this.expired.textContent = note || this.expiredText;
      this.expired.hidden = !(expired || note);
      this.show('');
      this.username.value = previous?.username || remembered(USER_KEY) || '';
      this.device.value = remembered(DEVICE_KEY) || deviceName();
      this.password.value = '';
      this.submit.disabled = false;
      this.box.hidden = false;
      document.body.dataset.auth = 'login';
      (this.username.value ? this.password : this.username).focus();
    });
  }

  show(text) {
    this.error.textContent = text;
    this.error.hidden = !text;
  }

  async trySignIn() {
    if (this.submit.disabled) return;
    const username = this.username.value.trim();
    const password = this.password.value;
    const device = this.device.value.trim() || deviceName();
    if (!username || !password) {
      this.show('请输入用户名和密码 · Enter your username and password.');
      (username ? this.password : this.username).focus();
      return;
    }
    this.submit.disabled = true;
    this.submit.dataset.busy = 'true';
    this.show('');
    let me;
    try {
      me = await request('POST', '/api/v1/auth/login', { json: { username, password, device }, auth: false });
    } catch (err) {
      this.submit.disabled = false;
      delete this.submit.dataset.busy;
      this.refused(err);
      return;
    }
    delete this.submit.dataset.busy;
    session.user = me;
    session.csrf = me?.csrf_token ?? '';
    remember(USER_KEY, username);
    remember(SIGNED_IN_KEY, '1');
    remember(DEVICE_KEY, device);
    this.password.value = '';
    this.box.hidden = true;
    document.body.dataset.auth = 'checking'; // main.js decides: this phone's data may be someone else's
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w(me);
  }

  /** forgetUser forgets the last username (signed out: the next person types theirs). */
  forgetUser() {
    forget(USER_KEY);
    this.username.value = '';
  }

  refused(err) {
    const why = refusal(err, { offlineText: '无网络，无法登录 · No network: signing in needs the server once.' });
    if (why.waitSeconds) {
      clearInterval(this.throttle);
      this.throttle = countdown(why.waitSeconds, this.submit, (text) => this.show(text));
      return;
    }
    this.show(why.message);
    this.password.select();
  }
}

function remembered(k) {
  try {
    return localStorage.getItem(k) || '';
  } catch {
    return '';
  }
}

function remember(k, v) {
  try {
    localStorage.setItem(k, v);
  } catch {
    // private mode: the form is filled by hand next time
  }
}

function forget(k) {
  try {
    localStorage.removeItem(k);
  } catch {
    // nothing kept
  }
}
