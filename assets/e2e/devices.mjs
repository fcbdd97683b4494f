// End-to-end: a lost phone is signed out by an admin (issue 18).
//
//   node e2e/devices.mjs <baseURL> <artifactDir>
//
// demo-leader signs in to the field app on a phone with a device name (a
// device session); the field app shows their tasks. demo-admin opens Admin
// → Users → Devices on the dashboard, finds the phone by its name and signs
// it out. The phone's cookie is then refused by the API (401), and the field
// app, reloaded, asks to sign in again; the audit log has the revocation.
// Screenshots devices-*.png go to artifactDir. Prints one JSON line and
// exits 0, else "e2e: FAIL: …" and 1. Environment: CHROMIUM, E2E_TIMEOUT_MS.

import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { launch, main, openPage, scriptArgs, signIn, timeoutMs, waitFor, watch } from './common.mjs';

const { base, args: [artifactDir], started } = scriptArgs('devices.mjs', '<artifactDir>', timeoutMs * 6 + 30000);
const DEVICE = `e2e lost phone ${randomBytes(3).toString('hex')}`;
let browser;

async function run() {
  await mkdir(artifactDir, { recursive: true });
  browser = await launch();

  // The phone: the field app, signed in through its own form.
  const phoneCtx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const phone = await phoneCtx.newPage();
  const phoneWatch = watch(phone, base);
  phoneWatch.expect('GET', /^\/api\/v1\/me$/, 401);
  await phone.goto(new URL('/field/', base).href);
  await waitFor(phone, () => document.body.dataset.auth === 'login' && !!document.querySelector('#login-username'), null, 'the field app asking to sign in');
  await phone.fill('#login-username', 'demo-leader');
  await phone.fill('#login-password', 'gridwatch-leader');
  const device = phone.locator('#login-device');
  if ((await device.count()) !== 1) throw new Error('the field sign-in has no device name field');
  await device.fill(DEVICE);
  await phone.locator('#login-password').press('Enter');
  await waitFor(phone, () => document.body.dataset.auth === 'ok' && performance.getEntriesByName('field-tasks-rendered').length > 0, null, 'the field app signed in with its tasks');
  const me = await phone.evaluate(async () => (await fetch('/api/v1/me', { headers: { Accept: 'application/json' } })).json());
  if (me.session?.device !== DEVICE) throw new Error(`the phone's session: ${JSON.stringify(me.session)}; want device ${DEVICE}`);
  await phone.screenshot({ path: path.join(artifactDir, 'devices-phone.png') });

  // The admin finds the phone and signs it out.
  const { page, watcher } = await openPage(browser, base);
  await page.goto(base.href);
  await signIn(page, 'demo-admin', 'gridwatch-admin');
  await page.click('#admin-btn');
  await waitFor(page, () => !!document.querySelector('#users-table tbody tr[data-username="demo-leader"]'), null, 'the users table listing demo-leader');
  await page.click('#users-table tbody tr[data-username="demo-leader"] button[data-action="sessions"]');
  await waitFor(page, (d) => [...document.querySelectorAll('.session-item')].some((li) => li.dataset.device === d), DEVICE, `the phone "${DEVICE}" among demo-leader's sessions`);
  const expanded = await page.getAttribute('#users-table tbody tr[data-username="demo-leader"] button[data-action="sessions"]', 'aria-expanded');
  if (expanded !== 'true') throw new Error(`the Devices button's aria-expanded is ${expanded}`);
  await page.screenshot({ path: path.join(artifactDir, 'devices-admin.png') });
  const sid = await page.evaluate((d) => [...document.querySelectorAll('.session-item')].find((li) => li.dataset.device === d).dataset.sessionId, DEVICE);
  if (String(sid) !== String(me.session.id)) throw new Error(`the admin sees session ${sid} for the phone, the phone has ${me.session.id}`);
  await page.click(`.session-item[data-session-id="${sid}"] button[data-action="revoke-session"]`);
  await waitFor(page, (id) => !document.querySelector(`.session-item[data-session-id="${id}"]`) && !!document.querySelector('.sessions-row td'), sid, 'the phone gone from the list');
  await watcher.check('admin');

  // The phone's session is over: the API says so, the app asks to sign in.
  const status = await phone.evaluate(async () => (await fetch('/api/v1/me', { headers: { Accept: 'application/json' }, cache: 'no-store' })).status);
  if (status !== 401) throw new Error(`the revoked phone's /me: HTTP ${status}, want 401`);
  phoneWatch.expect('GET', /^\/api\/v1\/.*/, 401);
  await phoneWatch.check('phone before the reload');
  const from = phoneWatch.problems.length;
  await phone.reload();
  await waitFor(phone, () => document.body.dataset.auth === 'login', null, 'the field app asking to sign in again after the revocation');
  await phone.screenshot({ path: path.join(artifactDir, 'devices-phone-revoked.png') });
  // The reload cuts what the page had in flight (its event stream, a /me).
  for (let i = phoneWatch.problems.length - 1; i >= from; i--) {
    if (/\(net::ERR_ABORTED\)$/.test(phoneWatch.problems[i])) phoneWatch.problems.splice(i, 1);
  }
  await phoneWatch.check('phone');

  const audit = await page.evaluate(async () => (await fetch('/api/v1/audit?action=auth.session_revoked', { headers: { Accept: 'application/json' } })).json());
  const row = (audit.entries ?? []).find((e) => JSON.stringify(e).includes(DEVICE));
  if (!row) throw new Error(`no auth.session_revoked audit entry naming the phone: ${JSON.stringify(audit).slice(0, 400)}`);
  return { ok: true, device: DEVICE, session: sid, seconds: Math.round((Date.now() - started) / 1000) };
}

await main(run, () => browser);
