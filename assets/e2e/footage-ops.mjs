// Browser test of the operator's footage work, through the real service, in real time.
//
//   node e2e/footage-ops.mjs <baseURL> <artifactDir> [footage|exports]
//
// The Go test (TestFootageOpsInBrowser) starts gridwatch with 3 s recording
// files, so the demo cameras' footage is indexed within seconds.
// 1. As demo-operator: wait until a demo camera has a recorded run of ≥ 6 s;
//    file an incident at it (integration token); open its page.
// 2. The incident page lists the auto-linked footage (camera, window,
//    recorded seconds, source). 播放 · Play inline plays the clip in the page:
//    the <video>'s currentTime advances and decoded frames grow in real time.
// 3. 导出 · Export: progress until done, a download link and the SHA-256, the
//    API's; the export is listed under 导出 · Exports, not held, without the
//    admin's Hold/Delete. 播放 · Play opens the clip: its video.duration is the
//    clip's own length (last_frame_at − first_frame_at in the manifest, plus a
//    picture), starting at 0 — not the recording's timeline.
// 4. 手动关联录像 · Link footage by hand: another camera, the default window
//    (2 min before to 5 after the reported time): the list gains a manual
//    link; linking it again is refused (409) and the toast says why; Unlink
//    (with its confirm) removes it from the page and the API; the page's read
//    of the footage after the link, held back in the browser until the read
//    after the unlink has answered, does not bring the link back.
// 5. 时间轴 · Timeline opens the footage view at the link's window; the
//    operator tags the selected range, edits the tag (label, note and the
//    range through the From/To fields): the API has the new values. The tag
//    search finds it by part of its label; its result opens the camera at the
//    tag's range. The range is linked to the incident from the footage view.
// 6. As demo-commander (another non-admin with video.playback), in a second
//    browser: the tag is listed without 编辑 Edit / 删除 Delete, and the
//    server refuses a PATCH from them (403). That page is served a disk_full
//    recording status (a routed GET /api/v1/recording/status): the banner
//    "Recording stopped: disk full since HH:MM — N MB free" shows.
// 7. The operator deletes the tag (with its confirm): gone from the page and the API.
// 8. As demo-admin: an export of 4 s from well into the recording, listed on
//    the incident page: its video lasts about 4 s from 0 (not the recording's
//    time up to there). The export offers 保全 · Hold and 删除 · Delete;
//    Hold marks it held (badge, API) and disables Delete; Release, then
//    Delete with its confirm: the export leaves the list and the API (404).
// Prints one JSON line and exits 0, else prints "e2e: FAIL: …" and exits 1.

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { launch, signIn, timeoutMs, waitFor, waitGrids, main, demoToken, scriptArgs, openPage, fileIncident, holdAnswer } from './common.mjs';

const { base, args: [artifactDir, modeArg], started } = scriptArgs('footage-ops.mjs', '<artifactDir>', timeoutMs * 8 + 60000);
// footage: steps 1–7; exports: steps 1–3 and 8 (two runs, each within the
// Go test's time on a shared machine).
const mode = modeArg === 'exports' ? 'exports' : 'footage';
const token = demoToken;
const DLG = '#footage-dialog';
const IV = '#incident-view';
const RECORDINGS_WAIT_MS = 30000;

let browser;

/** session signs in a browser context and returns {page, watcher, api}. */
async function session(username, password, { route } = {}) {
  const { context, page, watcher } = await openPage(browser, base);
  if (route) await route(page);
  await page.goto(base.href);
  await signIn(page, username, password);
  await waitGrids(page, watcher.problems);
  let csrf = '';
  const api = async (method, p, body) => {
    if (!csrf && method !== 'GET') csrf = (await (await context.request.get(new URL('/api/v1/me', base).href)).json()).csrf_token ?? '';
    const res = await context.request.fetch(new URL(p, base).href, { method, headers: { Accept: 'application/json', ...(csrf ? { 'X-CSRF-Token': csrf } : {}) }, data: body });
    const text = await res.text();
    return { status: res.status(), body: text ? JSON.parse(text) : null };
  };
  return { page, watcher, api };
}

async function apiOK(api, method, p, body) {
  const r = await api(method, p, body);
  if (r.status < 200 || r.status > 299) throw new Error(`${method} ${p}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
  return r.body;
}

function isoS(ms) {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * playExport clicks 播放 · Play on the export in sel (job: its API state) and
 * checks the <video>: it starts at 0 and lasts the clip's own length — the
 * manifest's last_frame_at − first_frame_at plus a picture (give or take the
 * camera clock's drift against the server's, 1%), at most a GOP more than asked.
 */
async function playExport(page, sel, job) {
  await page.click(`${sel} .export-play`);
  await waitFor(
    page,
    (sel) => {
      const v = document.querySelector(`${sel} video.export-video`);
      return v && v.readyState >= 1 && Number.isFinite(v.duration) && v.duration > 0;
    },
    sel,
    async () => `the export's video loaded (${await page.evaluate((sel) => document.querySelector(`${sel} video.export-video`)?.outerHTML, sel)})`,
  );
  const clip = await page.evaluate((sel) => {
    const v = document.querySelector(`${sel} video.export-video`);
    return { duration: v.duration, start: v.seekable.length ? v.seekable.start(0) : null };
  }, sel);
  const m = job.manifest ?? {};
  const span = (Date.parse(m.last_frame_at) - Date.parse(m.first_frame_at)) / 1000;
  const asked = (Date.parse(job.to) - Date.parse(job.from)) / 1000;
  const slack = Math.max(0.3, span * 0.01);
  if (!(span >= 0) || Math.abs(clip.duration - m.duration_s) > 0.1 || Math.abs(clip.duration - span) > slack || clip.duration > asked + 1.5 || clip.start !== 0) {
    throw new Error(`the export's video: ${JSON.stringify(clip)}; manifest ${m.first_frame_at} – ${m.last_frame_at} (${span} s, duration_s ${m.duration_s}), asked ${asked} s`);
  }
  return clip;
}

async function run() {
  await mkdir(artifactDir, { recursive: true });
  browser = await launch({ args: ['--autoplay-policy=no-user-gesture-required'] });
  const op = await session('demo-operator', 'gridwatch-operator');
  const { page } = op;
  const { check, expect } = op.watcher;
  expect('POST', /^\/api\/v1\/incidents\/\d+\/footage$/, 409); // step 4: linked twice

  // 1. A camera with footage; an incident at it.
  const cameras = ((await apiOK(op.api, 'GET', '/api/v1/cameras?limit=1000')).cameras ?? []).filter((c) => c.status === 'online' && /^JS-CAM-/.test(c.code ?? ''));
  if (cameras.length < 2) throw new Error(`want 2 online demo cameras, have ${cameras.length}`);
  const waitStart = Date.now();
  let cam = null;
  while (!cam) {
    for (const c of cameras) {
      const now = Date.now();
      const q = new URLSearchParams({ from: new Date(now - 3600e3).toISOString(), to: new Date(now + 60e3).toISOString() });
      const ok = ((await apiOK(op.api, 'GET', `/api/v1/cameras/${c.id}/recordings?${q}`)).recordings ?? []).filter((r) => r.status === 'ok');
      if (ok.length >= 2 && Date.parse(ok.at(-1).to) - Date.parse(ok[0].from) >= 6000) {
        cam = c;
        break;
      }
    }
    if (cam) break;
    if (Date.now() - waitStart > RECORDINGS_WAIT_MS) throw new Error(`no demo camera has a 6 s recorded run after ${RECORDINGS_WAIT_MS} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
  const [lon, lat] = cam.location.coordinates;
  const inc = await fileIncident(base, token, `e2e 录像操作 ${Date.now()}`, [lon, lat]);
  const incId = Number(inc.id);
  await page.evaluate((id) => window.gridwatchIncidents.open(id), incId);
  await waitFor(
    page,
    ([id, cam]) => document.querySelector('#incident-view')?.dataset.incidentId === String(id) && !!document.querySelector(`#incident-view li.inc-footage-item[data-camera="${cam}"][data-source="auto"] .inc-footage-inline:not([disabled])`),
    [incId, cam.id],
    async () => `incident ${incId}'s auto-linked footage of ${cam.code} (${await page.evaluate(() => document.querySelector('#incident-view [data-field="footage"]')?.outerHTML.slice(0, 600))})`,
  );
  const links = (await apiOK(op.api, 'GET', `/api/v1/incidents/${incId}/footage`)).footage ?? [];
  const link = links.find((l) => l.camera_id === cam.id && l.source === 'auto');
  const LI = `${IV} li.inc-footage-item[data-link-id="${link.id}"]`;
  const row = await page.evaluate((sel) => document.querySelector(sel).textContent, LI);
  if (!row.includes(cam.code) || !row.includes(cam.name) || !/录像 \d+ s/.test(row) || !row.includes('自动 auto')) throw new Error(`the link's row lacks camera code/name, recorded seconds or source: ${row}`);
  await check('the incident page');

  // 2. Play inline.
  await page.click(`${LI} .inc-footage-inline`);
  const INL = `${LI} .inline-footage`;
  await waitFor(
    page,
    (sel) => {
      const d = document.querySelector(sel);
      const v = d?.querySelector('video');
      return d?.dataset.state === 'playing' && v.getVideoPlaybackQuality().totalVideoFrames > 0;
    },
    INL,
    async () => `the inline player playing (${await page.evaluate((sel) => document.querySelector(sel)?.outerHTML.slice(0, 400), INL)})`,
  );
  const sample = () =>
    page.evaluate((sel) => {
      const d = document.querySelector(sel);
      const v = d.querySelector('video');
      return { t: v.currentTime, frames: v.getVideoPlaybackQuality().totalVideoFrames, now: performance.now(), engine: d.dataset.engine, shown: d.querySelector('.footage-clock')?.dataset.time, w: v.videoWidth };
    }, INL);
  const a = await sample();
  await waitFor(
    page,
    ([sel, a]) => {
      const v = document.querySelector(`${sel} video`);
      return v.currentTime >= a.t + 1.5 && v.getVideoPlaybackQuality().totalVideoFrames >= a.frames + 12;
    },
    [INL, a],
    async () => `the inline clip advancing 1.5 s from ${JSON.stringify(a)} (now ${JSON.stringify(await sample())})`,
  );
  const b = await sample();
  const secs = (b.now - a.now) / 1000;
  if (b.t - a.t > secs * 1.6 + 0.5) throw new Error(`the clip ran ${(b.t - a.t).toFixed(2)} s in ${secs.toFixed(2)} s of real time`);
  if (b.engine !== 'hls.js' || !b.shown || !(b.w > 0)) throw new Error(`the inline player: ${JSON.stringify(b)}`);
  await page.screenshot({ path: path.join(artifactDir, 'incident-inline.png') });
  await check('playing inline');

  // 3. Export.
  await page.click(`${LI} .inc-footage-export`);
  const EXP = `${IV} .inc-exports li.inc-export`;
  await waitFor(
    page,
    (sel) => ['done', 'failed', 'error'].includes(document.querySelector(`${sel} .export-status`)?.dataset.status),
    EXP,
    async () => `the export done (${await page.evaluate((sel) => document.querySelector(sel)?.outerHTML.slice(0, 400), EXP)})`,
    Math.max(timeoutMs, 60000),
  );
  const exp = await page.evaluate((sel) => {
    const li = document.querySelector(sel);
    const b = li.querySelector('.export-status');
    return { li: li.dataset.exportId, status: b.dataset.status, id: b.dataset.exportId, sha: b.dataset.sha256, href: b.querySelector('a.export-download')?.getAttribute('href'), text: b.textContent };
  }, EXP);
  if (exp.status !== 'done') throw new Error(`the export ended ${exp.status}: ${exp.text}`);
  const job = await apiOK(op.api, 'GET', `/api/v1/exports/${exp.id}`);
  if (job.sha256 !== exp.sha || !/^[0-9a-f]{64}$/.test(exp.sha) || exp.li !== exp.id || exp.href !== `/api/v1/exports/${exp.id}/file` || Number(job.incident_id ?? incId) !== incId) throw new Error(`export: page ${JSON.stringify(exp)}, API ${JSON.stringify(job)}`);
  const opControls = await page.evaluate((sel) => {
    const b = document.querySelector(`${sel} .export-status`);
    return { held: b.dataset.held, badge: !!b.querySelector('.export-held'), hold: !!b.querySelector('.export-hold'), del: !!b.querySelector('.export-delete') };
  }, EXP);
  if (opControls.held !== 'false' || opControls.badge || opControls.hold || opControls.del) throw new Error(`the operator's export controls: ${JSON.stringify(opControls)}`);
  const clip = await playExport(page, EXP, job);
  await page.evaluate((sel) => document.querySelector(`${sel} video.export-video`)?.pause(), EXP);
  await check('the export');

  const out = {};
  if (mode === 'footage') {
    // 4. Link by hand, twice (409), then unlink.
    const other = cameras.find((c) => !links.some((l) => l.camera_id === c.id));
    if (!other) throw new Error('every demo camera is linked already');
    await page.click(`${IV} .inc-footage-add`);
    await waitFor(page, (id) => !!document.querySelector(`#incident-view form.inc-link-form select[name="camera_id"] option[value="${id}"]`), other.id, 'the link form with its cameras');
    const defaults = await page.evaluate(() => {
      const f = document.querySelector('#incident-view form.inc-link-form');
      return { from: Date.parse(f.elements.from.value), to: Date.parse(f.elements.to.value) };
    });
    const reported = Date.parse(inc.reported_at);
    if (Math.abs(defaults.from - (reported - 120e3)) > 1000 || Math.abs(defaults.to - (reported + 300e3)) > 1000) throw new Error(`the default window is ${JSON.stringify(defaults)}, reported ${inc.reported_at}`);
    const linkByHand = async () => {
      await page.selectOption(`${IV} form.inc-link-form select[name="camera_id"]`, String(other.id));
      await page.click(`${IV} form.inc-link-form .inc-link-submit`);
    };
    // The page reads the footage again after the link: that read is held
    // back, and given to the page after the unlink below.
    const linkedRead = await holdAnswer(page, new RegExp(`/api/v1/incidents/${incId}/footage$`), 'the read of the footage after the manual link');
    await linkByHand();
    await waitFor(page, (id) => !!document.querySelector(`#incident-view li.inc-footage-item[data-camera="${id}"][data-source="manual"]`) && !document.querySelector('#incident-view form.inc-link-form'), other.id, 'the manual link listed');
    const { res: withLink } = await linkedRead.read();
    if (!((await withLink.json()).footage ?? []).some((l) => l.camera_id === other.id && l.source === 'manual')) throw new Error('the held read of the footage does not have the manual link');
    const manual = ((await apiOK(op.api, 'GET', `/api/v1/incidents/${incId}/footage`)).footage ?? []).find((l) => l.camera_id === other.id && l.source === 'manual');
    if (!manual || Math.abs(Date.parse(manual.from) - defaults.from) > 1000) throw new Error(`the API's manual link: ${JSON.stringify(manual)}`);
    await page.click(`${IV} .inc-footage-add`);
    await waitFor(page, (id) => !!document.querySelector(`#incident-view form.inc-link-form select[name="camera_id"] option[value="${id}"]`), other.id, 'the link form again');
    await linkByHand();
    await waitFor(
      page,
      () => [...document.querySelectorAll('#toasts .toast[data-kind="warn"]')].some((t) => /already linked/.test(t.textContent)) && !document.querySelector('#incident-view form.inc-link-form .form-error').hidden,
      null,
      async () => `the 409 in a toast (${await page.evaluate(() => document.querySelector('#toasts')?.textContent)})`,
    );
    await page.click(`${IV} form.inc-link-form button:not([type=submit])`);
    const ML = `${IV} li.inc-footage-item[data-link-id="${manual.id}"]`;
    await page.click(`${ML} .inc-footage-unlink`);
    await waitFor(page, (sel) => !!document.querySelector(`${sel} .inc-footage-unlink-yes`), ML, 'the unlink confirm');
    if (!(await page.evaluate((sel) => !!document.querySelector(sel), ML))) throw new Error('unlinked before the confirm');
    const readsBefore = Number(await page.evaluate(() => document.querySelector('#incident-view').dataset.footageAnswered ?? 0));
    await page.click(`${ML} .inc-footage-unlink-yes`);
    await waitFor(page, (sel) => !document.querySelector(sel), ML, 'the manual link gone from the page');
    if (((await apiOK(op.api, 'GET', `/api/v1/incidents/${incId}/footage`)).footage ?? []).some((l) => l.id === manual.id)) throw new Error('the API still lists the unlinked footage');
    // The read after the unlink answered, then the one from before it: the
    // page keeps the unlink.
    await waitFor(page, (n) => Number(document.querySelector('#incident-view').dataset.footageAnswered) > n, readsBefore, 'the read of the footage after the unlink answered');
    await linkedRead.stop();
    await waitFor(page, (n) => Number(document.querySelector('#incident-view').dataset.footageAnswered) > n + 1, readsBefore, 'the page taking the read held since the link');
    if (await page.evaluate((sel) => !!document.querySelector(sel), ML)) throw new Error('a read of the footage from before the unlink, answered after it, brought the unlinked footage back');
    await check('link by hand and unlink');

    // 5. The footage view at the window: tag, edit, search, link the range.
    await page.click(`${LI} .inline-close`);
    await page.click(`${LI} .inc-footage-play`);
    await waitFor(page, ([sel, id]) => document.querySelector(sel)?.open && document.querySelector(sel).dataset.camera === String(id) && !document.querySelector(`${sel} .footage-sel`).hidden, [DLG, cam.id], 'the footage view with the window selected');
    const label = `e2e 占道 ${Math.random().toString(16).slice(2, 8)}`;
    await page.fill(`${DLG} .footage-sel input[name="label"]`, label);
    await page.click(`${DLG} .footage-sel .sel-tag`);
    await waitFor(page, ([sel, label]) => [...document.querySelectorAll(`${sel} .footage-tags li`)].some((li) => li.textContent.includes(label)), [DLG, label], 'the new tag listed');
    let tag = ((await apiOK(op.api, 'GET', `/api/v1/tags?camera=${cam.id}&label=${encodeURIComponent(label)}`)).tags ?? [])[0];
    if (!tag) throw new Error('the API does not list the tag');
    const TAG = `${DLG} .footage-tags li[data-tag-id="${tag.id}"]`;
    await page.click(`${TAG} .tag-edit`);
    await waitFor(page, ([sel, id]) => document.querySelector(`${sel} .footage-sel`).dataset.mode === 'edit' && document.querySelector(`${sel} .footage-sel`).dataset.tagId === String(id), [DLG, tag.id], 'edit mode');
    const label2 = `${label} 已核实`;
    // Within the recorded run the camera had when the case was filed.
    const newFrom = Date.parse(inc.reported_at) - 5000;
    const newTo = Date.parse(inc.reported_at) + 3000;
    await page.fill(`${DLG} .footage-sel input[name="label"]`, label2);
    await page.fill(`${DLG} .footage-sel input[name="note"]`, 'e2e: 已改');
    await page.evaluate(
      ([sel, a, b]) => {
        const pad = (n) => String(n).padStart(2, '0');
        const local = (ms) => {
          const d = new Date(ms);
          return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
        };
        const f = document.querySelector(`${sel} .footage-sel`);
        for (const [name, v] of [['from', a], ['to', b]]) {
          const i = f.querySelector(`input[name="${name}"]`);
          i.value = local(v);
          i.dispatchEvent(new Event('change', { bubbles: true }));
        }
      },
      [DLG, newFrom, newTo],
    );
    await page.click(`${DLG} .footage-sel .sel-tag`);
    await waitFor(page, ([sel, label2]) => !document.querySelector(`${sel} .footage-sel`).dataset.mode && [...document.querySelectorAll(`${sel} .footage-tags li`)].some((li) => li.textContent.includes(label2)), [DLG, label2], 'the edited tag listed');
    tag = await (async () => ((await apiOK(op.api, 'GET', `/api/v1/tags?camera=${cam.id}&label=${encodeURIComponent(label2)}`)).tags ?? [])[0])();
    if (!tag || tag.note !== 'e2e: 已改' || Math.abs(Date.parse(tag.from) - newFrom) > 1000 || Math.abs(Date.parse(tag.to) - newTo) > 1000) throw new Error(`the edited tag: ${JSON.stringify(tag)}`);

    await page.fill(`${DLG} .tag-search input[name="q"]`, '已核实');
    await page.press(`${DLG} .tag-search input[name="q"]`, 'Enter');
    const RES = `${DLG} .tag-results .tag-result[data-tag-id="${tag.id}"]`;
    await waitFor(page, (sel) => !!document.querySelector(sel), RES, 'the tag found by part of its label');
    await page.click(RES);
    await waitFor(
      page,
      ([sel, id, from]) => document.querySelector(sel)?.open && document.querySelector(sel).dataset.camera === String(id) && document.querySelector(`${sel} .footage-sel`).dataset.from === from,
      [DLG, cam.id, isoS(Date.parse(tag.from))],
      'the search result opened at the tag',
    );
    await page.click(`${DLG} .footage-sel .sel-link`);
    await page.fill(`${DLG} .sel-link-row input[name="incident_id"]`, String(incId));
    await page.click(`${DLG} .sel-link-row .sel-link-go`);
    await waitFor(page, (sel) => !!document.querySelector(`${sel} .sel-link-status`)?.dataset.linkId, DLG, 'the range linked to the incident');
    const fromView = ((await apiOK(op.api, 'GET', `/api/v1/incidents/${incId}/footage`)).footage ?? []).find((l) => l.source === 'manual' && l.camera_id === cam.id);
    if (!fromView || Math.abs(Date.parse(fromView.from) - Date.parse(tag.from)) > 1000) throw new Error(`the link made from the footage view: ${JSON.stringify(fromView)}`);
    await page.screenshot({ path: path.join(artifactDir, 'footage-tag-edit.png') });
    await check('tag, edit, search, link');

    // 6. Another non-admin: no edit/delete; the server refuses. The disk-full banner.
    const st = { state: 'disk_full', since: new Date(Date.now() - 600e3).toISOString(), free_bytes: 52428800, min_free_bytes: 1073741824, message: 'e2e' };
    const cmd = await session('demo-commander', 'gridwatch-commander', {
      route: (p) => p.route('**/api/v1/recording/status', (r) => r.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(st) })),
    });
    await waitFor(
      cmd.page,
      () => {
        const b = document.querySelector('#recording-banner');
        return b && !b.hidden && b.dataset.state === 'disk_full' && /Recording stopped: disk full since \d\d:\d\d — 50 MB free/.test(b.textContent);
      },
      null,
      async () => `the disk-full banner (${await cmd.page.evaluate(() => document.querySelector('#recording-banner')?.outerHTML)})`,
    );
    await cmd.page.evaluate((id) => window.gridwatchIncidents.open(id), incId);
    await waitFor(cmd.page, (id) => !!document.querySelector(`#incident-view li.inc-footage-item[data-link-id="${id}"] .inc-footage-play`), link.id, "the commander's incident page");
    await cmd.page.click(`${IV} li.inc-footage-item[data-link-id="${link.id}"] .inc-footage-play`);
    await waitFor(cmd.page, (sel) => !!document.querySelector(sel), TAG, "the operator's tag in the commander's footage view");
    const offered = await cmd.page.evaluate((sel) => ({ edit: !!document.querySelector(`${sel} .tag-edit`), del: !!document.querySelector(`${sel} .tag-delete`) }), TAG);
    if (offered.edit || offered.del) throw new Error(`the commander is offered ${JSON.stringify(offered)} on the operator's tag`);
    const refused = await cmd.api('PATCH', `/api/v1/tags/${tag.id}`, { label: 'not mine' });
    if (refused.status !== 403) throw new Error(`PATCH by the commander: HTTP ${refused.status}`);
    await cmd.page.keyboard.press('Escape');
    await cmd.watcher.check('the commander');
    await cmd.page.context().close(); // a shared machine: one browser fewer drawing the map

    // 7. The author deletes the tag.
    await page.click(`${TAG} .tag-delete`);
    await waitFor(page, (sel) => document.querySelector(`${sel} .tag-delete`)?.dataset.confirm === 'true', TAG, 'the delete confirm');
    await page.click(`${TAG} .tag-delete`);
    await waitFor(page, (sel) => !document.querySelector(sel), TAG, 'the tag deleted');
    if (((await apiOK(op.api, 'GET', `/api/v1/tags?camera=${cam.id}`)).tags ?? []).some((t) => t.id === tag.id)) throw new Error('the deleted tag is still listed');
    await page.keyboard.press('Escape');
    await check('delete');
      out.manual_link = manual.id;
      out.tag = { id: tag.id, label: tag.label };
  } else {
    // 8. The admin exports 4 s from well into the recording (its clock minutes
    // on): the clip lasts 4 s, not the recording's time up to there; then holds,
    // releases and deletes it.
    const adm = await session('demo-admin', 'gridwatch-admin');
    const nowQ = new URLSearchParams({ from: new Date(Date.now() - 3600e3).toISOString(), to: new Date(Date.now() + 60e3).toISOString() });
    const lastRec = ((await apiOK(adm.api, 'GET', `/api/v1/cameras/${cam.id}/recordings?${nowQ}`)).recordings ?? []).filter((r) => r.status === 'ok' && !r.open).at(-1);
    const lateTo = Date.parse(lastRec.to) - 500;
    const lateX = await apiOK(adm.api, 'POST', '/api/v1/exports', { camera_id: cam.id, from: new Date(lateTo - 4000).toISOString(), to: new Date(lateTo).toISOString(), incident_id: incId });
    let lateJob = lateX;
    for (const until = Date.now() + Math.max(timeoutMs, 60000); lateJob.status !== 'done' && lateJob.status !== 'failed'; ) {
      if (Date.now() > until) throw new Error(`the late export still ${lateJob.status}`);
      await new Promise((r) => setTimeout(r, 250)); // the export runs in the background: poll as a client would
      lateJob = await apiOK(adm.api, 'GET', `/api/v1/exports/${lateX.id}`);
    }
    if (lateJob.status !== 'done') throw new Error(`the late export: ${JSON.stringify(lateJob)}`);
    const lateId = String(lateX.id);
    await adm.page.evaluate((id) => window.gridwatchIncidents.open(id), incId);
    await waitFor(adm.page, (sel) => !!document.querySelector(`${sel} .export-status[data-status="done"] .export-play`), `${IV} .inc-exports li.inc-export[data-export-id="${lateId}"]`, 'the late export on the incident page');
    const lateClip = await playExport(adm.page, `${IV} .inc-exports li.inc-export[data-export-id="${lateId}"]`, lateJob);
    const AX = `${IV} .inc-exports li.inc-export[data-export-id="${lateId}"] .export-status`;
    await waitFor(adm.page, (sel) => !!document.querySelector(`${sel}[data-status="done"] .export-hold`), AX, "the admin's Hold on the export");
    await adm.page.click(`${AX} .export-hold`);
    await waitFor(adm.page, (sel) => document.querySelector(sel)?.dataset.held === 'true' && !!document.querySelector(`${sel} .export-held`) && document.querySelector(`${sel} .export-delete`)?.disabled, AX, 'the export held, Delete disabled');
    const heldJob = await apiOK(adm.api, 'GET', `/api/v1/exports/${lateId}`);
    if (heldJob.held !== true || heldJob.held_by !== 'demo-admin') throw new Error(`the held export: ${JSON.stringify(heldJob)}`);
    await adm.page.click(`${AX} .export-hold`);
    await waitFor(adm.page, (sel) => document.querySelector(sel)?.dataset.held === 'false' && !document.querySelector(`${sel} .export-delete`)?.disabled, AX, 'the export released');
    await adm.page.click(`${AX} .export-delete`);
    await adm.page.click(`${AX} .export-delete-yes`);
    await waitFor(adm.page, (sel) => !document.querySelector(sel), `${IV} .inc-exports li.inc-export[data-export-id="${lateId}"]`, 'the deleted export off the list');
    const gone = await adm.api('GET', `/api/v1/exports/${lateId}`);
    if (gone.status !== 404) throw new Error(`GET of the deleted export: HTTP ${gone.status}`);
    await adm.watcher.check('the admin');
      out.late_export = { id: Number(lateId), duration_s: +lateClip.duration.toFixed(3), manifest: { first: lateJob.manifest.first_frame_at, last: lateJob.manifest.last_frame_at } };
  }

  return {
    ok: true,
    mode,
    camera: cam.code,
    incident: incId,
    inline: { engine: b.engine, advanced_s: +(b.t - a.t).toFixed(2), frames: b.frames - a.frames, real_s: +secs.toFixed(2) },
    export: { id: Number(exp.id), sha256: exp.sha, duration_s: +clip.duration.toFixed(3) },
    ...out,
    total_ms: Date.now() - started,
  };

}

await main(run, () => browser);
