// The dashboard's header: the error banner, the connection status, the
// clock, and on a phone the word to grid members that the field app suits
// them better.

import { describe } from './api.js';

const $ = (sel) => document.querySelector(sel);

/** PHONE is the media query of a phone-sized screen (upright, or on its side). */
export const PHONE = '(max-width: 640px), (max-height: 500px) and (pointer: coarse)';

// FIELD_DISMISSED keeps, per browser, that the field-app banner was put away.
const FIELD_DISMISSED = 'gridwatch.fieldBanner.dismissed';

function stored(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null; // storage refused (a private window's policy): show the banner
  }
}

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

  /**
   * suggestFieldApp shows a grid leader on a phone-sized screen the way to
   * the field app (/field/), until they dismiss it; it follows the screen
   * (a phone turned, a window resized).
   */
  suggestFieldApp(me) {
    const box = $('#field-banner');
    if (!box || me?.role !== 'grid_leader') return;
    const phone = window.matchMedia(PHONE);
    const show = () => {
      box.hidden = !phone.matches || stored(FIELD_DISMISSED) === '1';
      // The map's zoom buttons move down out from under it.
      document.body.classList.toggle('field-banner-shown', !box.hidden);
      if (!box.hidden) document.body.style.setProperty('--field-banner-h', `${box.offsetHeight + 8}px`);
    };
    $('#field-banner-close').addEventListener('click', () => {
      try {
        localStorage.setItem(FIELD_DISMISSED, '1');
      } catch {
        // not kept: it is gone for this page at least
      }
      box.hidden = true;
      document.body.classList.remove('field-banner-shown');
      phone.removeEventListener('change', show);
    });
    phone.addEventListener('change', show);
    show();
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
