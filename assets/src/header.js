// The dashboard's header: the error banner, the connection status and the
// clock.

import { describe } from './api.js';

const $ = (sel) => document.querySelector(sel);

/**
 * Header shows errors in the banner and the state of the connection. online()
 * says whether closing the banner puts the status back to online (the grids
 * are drawn).
 */
export class Header {
  constructor({ online = () => true } = {}) {
    this.online = online;
    this.banner = $('#banner');
    $('#banner-close').addEventListener('click', () => this.hideBanner());
    this.tick();
    setInterval(() => this.tick(), 1000);
  }

  /** bannerShown reports whether an error is on show. */
  get bannerShown() {
    return !this.banner.hidden;
  }

  /** showError puts err (with what was being done, context) in the banner. */
  showError(err, context) {
    const msg = describe(err);
    $('#banner-text').textContent = context ? `${context}: ${msg}` : msg;
    this.banner.hidden = false;
    this.setStatus('error', 'API error');
  }

  hideBanner() {
    this.banner.hidden = true;
    if (this.online()) this.setStatus('ok', '在线 Online');
  }

  setStatus(kind, text) {
    $('#status').dataset.state = kind;
    $('#status-text').textContent = text;
  }

  tick() {
    const d = new Date();
    const p = (n) => String(n).padStart(2, '0');
    $('#clock').textContent = `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
    $('#clock').dateTime = d.toISOString();
  }
}
