// Browser test of recorded footage, through the real service, in real time.
//
//   node e2e/footage.mjs <baseURL> <artifactDir> <recordingsDir>
//
// The Go test starts gridwatch with 3 s recording files (1 s fragments), so
// the demo cameras' footage is indexed within seconds of the start.
// 1. As demo-operator (video.playback): wait (≤ 25 s) until GET
//    /api/v1/cameras/{id}/recordings lists at least 2 recordings, in one
//    recorded run of ≥ 6 s, for an online demo camera. Until footage plays,
//    hls.js (a separate chunk, hls.light-*.js) is not fetched: the map's first
//    load does not carry it.
// 2. Click the camera on the map; its card's 回放 · Playback opens the footage
//    view: the 24 h timeline draws the recorded run(s) (.tl-rec) with local
//    hour ticks.
// 3. Zoom to 5 min, click the timeline 5 s before the end of the latest run:
//    the <video> plays in real time (currentTime advances, decoded frames grow)
//    through hls.js, and the wall-clock time shown is within a few seconds of
//    the time clicked. Screenshot footage.png.
// 4. A click at the far left of the 24 h timeline (no footage then): the view
//    says so (the playlist's 404), no blank player. Esc closes the view, focus
//    goes back to the Playback button.
// 5. The live player's 回放 · Playback opens the same view, in place of the player.
// 6. Tags and exports: in the 5 min view (which scrolls with the clock), drag
//    across the latest recorded run, slowly (the clock runs 4 s on meanwhile):
//    the view holds still under the drag, the range selected is the one
//    dragged over, and after the drag the view follows the clock again;
//    the selection form (.footage-sel) appears; a label and note saved with
//    标记 · Tag appear at once as a .tl-tag band and GET /api/v1/tags?camera=
//    lists the tag; 导出 · Export of the same selection shows its progress
//    until done, with a download link and the SHA-256, which must equal GET
//    /api/v1/exports/{id}'s (and /verify must say ok). The author deletes the
//    tag again (删除, then its confirm).
// 7. An incident filed (integration token) at the camera's location: its page
//    lists the auto-linked footage of that camera (关联录像 · Linked footage);
//    its Play opens the footage view at that window, playing.
// 8. A recording that fails: another online demo camera's directory under
//    <recordingsDir> is replaced by a file, so its recorder cannot open its
//    next file. Its card (opened before the fault) says 未在录像 · Not
//    recording since HH:MM with the reason (what could not be made) within
//    seconds, live (a camera.recording event), and so does GET
//    /api/v1/cameras/{id}; the directory put back, the warning goes, live too.
// Any page error, console error, CSP violation, error banner or unexpected
// HTTP error fails the run. Prints one JSON line and exits 0, else prints
// "e2e: FAIL: …" and exits 1.
// Environment: CHROMIUM (default /usr/bin/chromium), E2E_TIMEOUT_MS (default 20000).

import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { launch, signIn, timeoutMs, waitFor, waitGrids, main, passed, demoToken, scriptArgs, openPage, clickAt, pointAt, fileIncident, holdAnswer } from './common.mjs';

const { base, args: [artifactDir, recordingsDir], started } = scriptArgs('footage.mjs', '<artifactDir> <recordingsDir>', timeoutMs * 7 + 60000);
const DLG = '#footage-dialog';
const token = demoToken;
const RECORDINGS_WAIT_MS = 25000;
const DRIFT_MS = 4000; // how far the clock runs on while a drag is held, in step 6

let browser;

/** sample reads a <video>'s clock and decoded pictures, and the time the view shows. */
function sample(page) {
  return page.evaluate((sel) => {
    const d = document.querySelector(sel);
    const v = d?.querySelector('video');
    if (!v) return null;
    const q = v.getVideoPlaybackQuality();
    return {
      t: v.currentTime,
      frames: q.totalVideoFrames,
      dropped: q.droppedVideoFrames,
      width: v.videoWidth,
      height: v.videoHeight,
      paused: v.paused,
      shown: Date.parse(d.querySelector('.footage-clock')?.dataset.time ?? ''),
      state: d.dataset.state,
      engine: d.dataset.engine,
      audioBytes: v.webkitAudioDecodedByteCount ?? 0,
      now: performance.now(),
    };
  }, DLG);
}

/** viewInfo describes the footage view: state, message, timeline window and recorded runs. */
function viewInfo(page) {
  return page.evaluate((sel) => {
    const d = document.querySelector(sel);
    if (!d) return null;
    const track = d.querySelector('.tl-track');
    const m = d.querySelector('.footage-message');
    return {
      open: d.open,
      camera: d.dataset.camera,
      state: d.dataset.state,
      engine: d.dataset.engine,
      message: m && !m.hidden ? m.textContent : '',
      kind: m?.dataset.kind,
      viewFrom: Number(track?.dataset.viewFrom),
      viewTo: Number(track?.dataset.viewTo),
      runs: [...d.querySelectorAll('.tl-rec')].map((r) => ({ from: Date.parse(r.dataset.from), to: Date.parse(r.dataset.to), w: r.getBoundingClientRect().width })),
      gaps: d.querySelectorAll('.tl-gap').length,
      labels: [...d.querySelectorAll('.tl-label')].map((l) => l.textContent),
      clock: d.querySelector('.footage-clock')?.textContent,
    };
  }, DLG);
}

/** trackAt is where the timeline draws time t (ms) now: {x, y, msPerPx}; y at fraction fy of its height. */
function trackAt(page, t, fy = 0.5) {
  return page.evaluate(
    ([sel, t, fy]) => {
      const track = document.querySelector(`${sel} .tl-track`);
      const r = track.getBoundingClientRect();
      const from = Number(track.dataset.viewFrom);
      const to = Number(track.dataset.viewTo);
      return { x: r.left + ((t - from) / (to - from)) * r.width, y: r.top + r.height * fy, msPerPx: (to - from) / r.width };
    },
    [DLG, t, fy],
  );
}

/**
 * press puts the mouse button down at (x, y) on the timeline and waits until
 * the view holds still under it (.tl-track[data-held]); it returns that view
 * ({from, to, msPerPx, t: the time at x, now: the page's clock}). The live
 * view scrolls with the clock, so where a time was drawn before the press is
 * not where it is at the press on a loaded machine: the time under the
 * pointer is read from the view held at the press.
 */
async function press(page, x, y) {
  await page.mouse.down();
  await waitFor(page, (sel) => document.querySelector(`${sel} .tl-track`)?.dataset.held === '', DLG, 'the timeline held still under the press');
  return page.evaluate(
    ([sel, x]) => {
      const track = document.querySelector(`${sel} .tl-track`);
      const r = track.getBoundingClientRect();
      const from = Number(track.dataset.viewFrom);
      const to = Number(track.dataset.viewTo);
      return { from, to, msPerPx: (to - from) / r.width, t: from + ((x - r.left) / r.width) * (to - from), now: Date.now() };
    },
    [DLG, x],
  );
}

/** clickTime clicks the timeline where it draws time t (ms); it returns where, and the time there in the view held under the press (t). */
async function clickTime(page, t) {
  const at = await trackAt(page, t);
  await page.mouse.move(at.x, at.y - 30);
  await page.mouse.move(at.x, at.y, { steps: 3 });
  const hit = await page.evaluate(([x, y]) => document.elementFromPoint(x, y)?.closest('.tl-track') !== null, [at.x, at.y]);
  if (!hit) throw new Error(`the timeline is not at (${at.x.toFixed(0)}, ${at.y.toFixed(0)}) to click`);
  const held = await press(page, at.x, at.y);
  await page.mouse.up();
  return { ...at, t: held.t };
}

/** clickCamera centres the map on a camera and clicks its point; false if something else would take the click. */
async function clickCamera(page, cam) {
  const at = await pointAt(page, cam.location.coordinates, {
    blockers: { layers: ['inc-point', 'inc-cluster'], px: 14 },
    cam: { layers: ['cam-point'], px: 4 },
  });
  if (!at.onCanvas || at.near.blockers || !at.near.cam) return false;
  await clickAt(page, at, 20);
  return true;
}

async function run() {
  await mkdir(artifactDir, { recursive: true });
  browser = await launch({ args: ['--autoplay-policy=no-user-gesture-required'] });
  const { context, page, watcher } = await openPage(browser, base);
  const { problems, check } = watcher;
  watcher.expect('GET', /^\/api\/v1\/cameras\/\d+\/playback\.m3u8$/, 404); // step 4: a time without footage
  const chunks = []; // requests for the hls.js chunk
  const footageRequests = { playlists: 0, files: 0 };
  page.on('request', (req) => {
    const p = new URL(req.url()).pathname;
    if (/^\/hls[^/]*\.js$/.test(p)) chunks.push({ path: p, at: Date.now() });
    if (/\/playback\.m3u8$/.test(p)) footageRequests.playlists++;
    if (/^\/api\/v1\/recordings\/\d+\/file\.mp4$/.test(p)) footageRequests.files++;
  });

  await page.goto(base.href);
  await signIn(page, 'demo-operator', 'gridwatch-operator');
  const gridsLoaded = await waitGrids(page, problems);
  await waitFor(page, () => Number(document.body.dataset.camerasLoaded) > 0, null, 'the camera layer');
  if (chunks.length) throw new Error(`the first load fetched hls.js already: ${JSON.stringify(chunks)}`);

  // 1. An online demo camera with ≥ 2 recordings in one run of ≥ 6 s.
  const get = async (p) => {
    const res = await context.request.get(new URL(p, base).href);
    if (!res.ok()) throw new Error(`GET ${p} as demo-operator: HTTP ${res.status()} ${(await res.text()).slice(0, 300)}`);
    return res.json();
  };
  const cameras = ((await get('/api/v1/cameras?limit=1000')).cameras ?? []).filter((c) => c.status === 'online' && /^JS-CAM-/.test(c.code ?? ''));
  if (!cameras.length) throw new Error('no online demo camera (JS-CAM-…)');
  // The G.711 camera when there is one: its recordings carry a sound track
  // ('alaw') no browser plays, and its footage must play all the same.
  const g711 = cameras.filter((c) => c.code === 'JS-CAM-02');
  if (g711.length) cameras.splice(0, cameras.length, ...g711);
  const waitStart = Date.now();
  let cam = null;
  let recs = null;
  let runEnd = 0;
  let last = '';
  while (!cam) {
    for (const c of cameras) {
      const now = Date.now();
      const q = new URLSearchParams({ from: new Date(now - 3600e3).toISOString(), to: new Date(now + 60e3).toISOString() });
      const body = await get(`/api/v1/cameras/${c.id}/recordings?${q}`);
      const ok = (body.recordings ?? []).filter((r) => r.status === 'ok');
      last = `${c.code}: ${ok.length} recordings ${JSON.stringify(ok.map((r) => [r.from, r.to]))}`;
      if (ok.length < 2) continue;
      // The latest run: recordings less than 2 s apart.
      let from = Date.parse(ok[ok.length - 1].from);
      const to = Date.parse(ok[ok.length - 1].to);
      for (let i = ok.length - 2; i >= 0 && from - Date.parse(ok[i].to) <= 2000; i--) from = Date.parse(ok[i].from);
      if (to - from >= 6000) {
        cam = c;
        recs = ok;
        runEnd = to;
        break;
      }
    }
    if (cam) break;
    if (Date.now() - waitStart > RECORDINGS_WAIT_MS) throw new Error(`no demo camera has 2 recordings in one 6 s run after ${RECORDINGS_WAIT_MS} ms (last: ${last})`);
    await new Promise((r) => setTimeout(r, 500));
  }
  const recordingsWaitMs = Date.now() - waitStart;
  await check('after load');

  // 2. The camera's card, its Playback, the 24 h timeline.
  const order = [cam, ...cameras.filter((c) => c !== cam)];
  let clicked = false;
  for (let i = 0; i < 3 && !clicked; i++) clicked = await clickCamera(page, cam);
  if (!clicked) throw new Error(`camera ${cam.code}'s point on the map is covered (by an incident?): cannot click it (${order.length} cameras)`);
  await waitFor(
    page,
    (id) => {
      const card = document.querySelector('#camera-card');
      const b = card?.querySelector('[data-field="cam-footage"]');
      return card && !card.hidden && card.dataset.camera === String(id) && b && !b.hidden;
    },
    cam.id,
    async () => `the camera card of ${cam.code} with its Playback button (${await page.evaluate(() => document.querySelector('#camera-card')?.outerHTML.slice(0, 300))})`,
  );
  await page.click('#camera-card [data-field="cam-footage"]');
  await waitFor(
    page,
    ([sel, id]) => {
      const d = document.querySelector(sel);
      return d?.open && d.dataset.camera === String(id) && d.querySelectorAll('.tl-rec').length > 0;
    },
    [DLG, cam.id],
    async () => `the footage view of ${cam.code} with its recorded runs (${JSON.stringify(await viewInfo(page))})`,
  );
  const day = await viewInfo(page);
  if (Math.abs(day.viewTo - day.viewFrom - 24 * 3600e3) > 1000) throw new Error(`the timeline spans ${(day.viewTo - day.viewFrom) / 3600e3} h, want 24 h`);
  if (day.labels.length < 6 || !day.labels.every((l) => /^\d\d:00$/.test(l))) throw new Error(`the 24 h timeline's labels: ${JSON.stringify(day.labels)}`);
  const drawn = day.runs.find((r) => r.from <= runEnd - 6000 && r.to >= runEnd - 1);
  if (!drawn || drawn.w < 1) throw new Error(`the timeline does not draw the run ending ${new Date(runEnd).toISOString()}: ${JSON.stringify(day.runs)}`);
  if (chunks.length) throw new Error(`hls.js was fetched before any footage played: ${JSON.stringify(chunks)}`);
  await check('the footage view');

  // 3. Zoom to 5 min; click 5 s before the end of the run; it plays from there.
  await page.click(`${DLG} .tl-zoom[data-span="300000"]`);
  await waitFor(page, (sel) => {
    const t = document.querySelector(`${sel} .tl-track`);
    return Number(t.dataset.viewTo) - Number(t.dataset.viewFrom) === 300000 && t.querySelectorAll('.tl-rec').length > 0;
  }, DLG, 'the 5 min view');
  const clickedAt = Date.now();
  const at = await clickTime(page, runEnd - 5000);
  const want = at.t;
  await waitFor(
    page,
    (sel) => {
      const d = document.querySelector(sel);
      const v = d.querySelector('video');
      return d.dataset.state === 'playing' && v.getVideoPlaybackQuality().totalVideoFrames > 0 && d.querySelector('.footage-clock')?.dataset.time;
    },
    DLG,
    async () => `the footage playing after the click (${JSON.stringify(await viewInfo(page))}; ${problems.join('; ')})`,
  );
  const firstPictureMs = Date.now() - clickedAt;
  const a = await sample(page);
  const firstOffset = (a.shown - want) / 1000;
  // The playlist starts at the keyframe at or before the time asked; the player seeks to it.
  if (!(firstOffset > -2.5 && firstOffset < 4)) throw new Error(`the view shows ${new Date(a.shown).toISOString()}, ${firstOffset.toFixed(2)} s from the time clicked ${new Date(want).toISOString()}`);
  await page.waitForTimeout(1500);
  const b = await sample(page);
  const secs = (b.now - a.now) / 1000;
  if (!(b.t - a.t >= secs * 0.5)) throw new Error(`currentTime went ${a.t.toFixed(3)} → ${b.t.toFixed(3)} in ${secs.toFixed(1)} s of real time (${JSON.stringify({ a, b })})`);
  if (!(b.frames - a.frames >= secs * 8)) throw new Error(`${b.frames - a.frames} pictures decoded in ${secs.toFixed(1)} s of real time (${JSON.stringify({ a, b })})`);
  if (!(b.shown - a.shown >= secs * 500)) throw new Error(`the time shown went ${new Date(a.shown).toISOString()} → ${new Date(b.shown).toISOString()} in ${secs.toFixed(1)} s`);
  if (b.engine !== 'hls.js') throw new Error(`the footage plays through ${b.engine}, want hls.js`);
  // The G.711 camera's sound is recorded (as FLAC) and plays with its pictures.
  if (cam.code === 'JS-CAM-02' && !(b.audioBytes > a.audioBytes)) throw new Error(`the G.711 camera's recorded sound is not decoded (${a.audioBytes} → ${b.audioBytes} bytes)`);
  if (chunks.length !== 1) throw new Error(`hls.js chunk requests: ${JSON.stringify(chunks)}, want exactly 1`);
  const shot = path.join(artifactDir, 'footage.png');
  await page.screenshot({ path: shot });
  const playing = await viewInfo(page);
  await check('footage playing');

  // 4. A time without footage: a message, not a blank player.
  await page.click(`${DLG} .tl-zoom[data-span="86400000"]`);
  await waitFor(page, (sel) => {
    const t = document.querySelector(`${sel} .tl-track`);
    return Number(t.dataset.viewTo) - Number(t.dataset.viewFrom) === 86400000;
  }, DLG, 'the 24 h view again');
  const emptyAt = await page.evaluate((sel) => Number(document.querySelector(`${sel} .tl-track`).dataset.viewFrom) + 600e3, DLG);
  await clickTime(page, emptyAt);
  await waitFor(
    page,
    (sel) => {
      const d = document.querySelector(sel);
      const m = d.querySelector('.footage-message');
      return d.dataset.state === 'empty' && !m.hidden && m.dataset.kind === 'empty' && /无录像/.test(m.textContent) && /No footage/.test(m.textContent);
    },
    DLG,
    async () => `the "no footage" message (${JSON.stringify(await viewInfo(page))}; playlists ${footageRequests.playlists})`,
  );
  const empty = await viewInfo(page);
  const emptyVideo = await page.evaluate((sel) => {
    const v = document.querySelector(`${sel} video`);
    return { src: v.getAttribute('src'), paused: v.paused };
  }, DLG);
  if (emptyVideo.src !== null || !emptyVideo.paused) throw new Error(`after the empty range the video still plays: ${JSON.stringify(emptyVideo)}`);

  // Esc closes; focus goes back to the Playback button.
  await page.keyboard.press('Escape');
  await waitFor(page, (sel) => !document.querySelector(sel)?.open, DLG, 'the footage view closed by Esc');
  await waitFor(page, () => document.activeElement?.dataset.field === 'cam-footage', null, async () => `focus back on Playback (it is on ${await page.evaluate(() => document.activeElement?.outerHTML.slice(0, 120))})`, 3000);
  await check('the empty range');

  // 5. From the live player: its Playback replaces it with the footage view.
  await page.click('#camera-card [data-field="cam-play"]');
  await waitFor(page, (id) => document.querySelector('#player-dialog')?.open && document.querySelector('#player-dialog').dataset.camera === String(id), cam.id, 'the live player');
  await waitFor(page, () => !document.querySelector('#player-dialog .player-footage').hidden, null, "the live player's Playback button");
  await page.click('#player-dialog .player-footage');
  await waitFor(
    page,
    ([sel, id]) => document.querySelector(sel)?.open && document.querySelector(sel).dataset.camera === String(id) && !document.querySelector('#player-dialog').open,
    [DLG, cam.id],
    'the footage view opened from the live player, the player closed',
  );
  await page.keyboard.press('Escape');
  await waitFor(page, (sel) => !document.querySelector(sel)?.open, DLG, 'the footage view closed by Esc');
  await check('from the live player');

  // 6. Drag-select a recorded range; tag it; export it.
  const tagsStart = Date.now();
  await page.click('#camera-card [data-field="cam-footage"]');
  await waitFor(page, ([sel, id]) => document.querySelector(sel)?.open && document.querySelector(sel).dataset.camera === String(id) && document.querySelectorAll(`${sel} .tl-rec`).length > 0, [DLG, cam.id], 'the footage view again');
  await page.click(`${DLG} .tl-zoom[data-span="300000"]`);
  await waitFor(page, (sel) => {
    const t = document.querySelector(`${sel} .tl-track`);
    return Number(t.dataset.viewTo) - Number(t.dataset.viewFrom) === 300000 && t.querySelectorAll('.tl-rec').length > 0;
  }, DLG, 'the 5 min view');
  const latest = (await viewInfo(page)).runs.at(-1);
  if (!latest || latest.to - latest.from < 6000) throw new Error(`the latest run is too short to select: ${JSON.stringify(latest)}`);
  // The 5 min view ends at the clock and scrolls with it. The drag lasts
  // while the clock runs DRIFT_MS on (as a user's slow drag would): the view
  // must hold still under it, so the range selected is the one dragged over.
  const x1 = await trackAt(page, latest.to - 5000, 0.7);
  await page.mouse.move(x1.x, x1.y);
  const held = await press(page, x1.x, x1.y);
  const selWant = { from: held.t, to: held.t + 4000 };
  const x2 = x1.x + 4000 / held.msPerPx;
  await page.mouse.move((x1.x + x2) / 2, x1.y, { steps: 3 });
  await waitFor(page, (t) => Date.now() >= t, held.now + DRIFT_MS, `the clock ${DRIFT_MS} ms on under the drag`, DRIFT_MS + timeoutMs);
  const during = await viewInfo(page);
  await page.mouse.move(x2, x1.y, { steps: 3 });
  await page.mouse.up();
  if (during.viewFrom !== held.from || during.viewTo !== held.to) throw new Error(`the timeline scrolled under the drag: held ${JSON.stringify([held.from, held.to])}, ${DRIFT_MS} ms on it shows ${JSON.stringify([during.viewFrom, during.viewTo])}`);
  await waitFor(page, (sel) => !document.querySelector(`${sel} .footage-sel`).hidden, DLG, 'the selection form after the drag');
  const selGot = await page.evaluate((sel) => {
    const f = document.querySelector(`${sel} .footage-sel`);
    return { from: Date.parse(f.dataset.from), to: Date.parse(f.dataset.to), state: document.querySelector(sel).dataset.state, active: document.activeElement?.name };
  }, DLG);
  // data-from/to are whole seconds (cut, not rounded), and the pointer lands on whole pixels.
  const slack = (ms) => ms > -1000 - 1.5 * held.msPerPx && ms < 1.5 * held.msPerPx;
  if (!(slack(selGot.from - selWant.from) && slack(selGot.to - selWant.to) && selGot.to > selGot.from)) throw new Error(`dragged ${JSON.stringify(selWant)} (${held.msPerPx.toFixed(0)} ms/px), the selection is ${JSON.stringify(selGot)}`);
  // Released, the view follows the clock again.
  await waitFor(
    page,
    ([sel, to]) => {
      const t = document.querySelector(`${sel} .tl-track`);
      return t.dataset.held === undefined && Number(t.dataset.viewTo) > to + 1000;
    },
    [DLG, held.to],
    async () => `the timeline following the clock again after the drag (${JSON.stringify(await viewInfo(page))})`,
  );
  if (selGot.state === 'loading' || selGot.state === 'playing') throw new Error(`the drag also started playback (state ${selGot.state})`);
  const label = `e2e 占道 ${Math.random().toString(16).slice(2, 8)}`;
  await page.fill(`${DLG} .footage-sel input[name="label"]`, label);
  await page.fill(`${DLG} .footage-sel input[name="note"]`, 'e2e: 三轮车摊位');
  await page.click(`${DLG} .footage-sel .sel-tag`);
  await waitFor(page, ([sel, label]) => [...document.querySelectorAll(`${sel} .tl-tag`)].some((t) => t.dataset.label === label), [DLG, label], 'the new tag on the timeline');
  const tagsListed = (await get(`/api/v1/tags?camera=${cam.id}`)).tags ?? [];
  const tag = tagsListed.find((t) => t.label === label);
  if (!tag) throw new Error(`GET /api/v1/tags?camera=${cam.id} does not list "${label}": ${JSON.stringify(tagsListed).slice(0, 400)}`);
  if (Math.abs(Date.parse(tag.from) - selGot.from) > 1000 || Math.abs(Date.parse(tag.to) - selGot.to) > 1000 || tag.note !== 'e2e: 三轮车摊位') throw new Error(`the tag saved is ${JSON.stringify(tag)}, the selection ${JSON.stringify(selGot)}`);
  // The view follows the clock: where the band should be is computed from the view drawn now.
  const band = await page.evaluate(([sel, label, a, b]) => {
    const track = document.querySelector(`${sel} .tl-track`);
    const tr = track.getBoundingClientRect();
    const from = Number(track.dataset.viewFrom);
    const to = Number(track.dataset.viewTo);
    const x = (t) => tr.left + ((t - from) / (to - from)) * tr.width;
    const r = [...track.querySelectorAll('.tl-tag')].find((t) => t.dataset.label === label)?.getBoundingClientRect();
    return r && { left: r.left, right: r.right, want: [x(a), x(b)] };
  }, [DLG, label, Date.parse(tag.from), Date.parse(tag.to)]);
  if (!band || Math.abs(band.left - band.want[0]) > 3 || Math.abs(band.right - band.want[1]) > 3) throw new Error(`the tag band spans x ${JSON.stringify(band)}`);
  const tagTitle = await page.evaluate(([sel, label]) => [...document.querySelectorAll(`${sel} .tl-tag`)].find((t) => t.dataset.label === label)?.title ?? '', [DLG, label]);
  if (!tagTitle.includes('三轮车摊位') || !tagTitle.includes(tag.author)) throw new Error(`the tag's hover text "${tagTitle}" lacks its note or author (${tag.author})`);
  const tagMs = Date.now() - tagsStart;

  const exportStart = Date.now();
  await page.click(`${DLG} .footage-sel .sel-export`);
  await waitFor(
    page,
    (sel) => ['done', 'failed', 'error'].includes(document.querySelector(`${sel} .footage-sel .export-status`)?.dataset.status),
    DLG,
    async () => `the export done (${await page.evaluate((sel) => document.querySelector(`${sel} .footage-sel .export-status`)?.outerHTML.slice(0, 300), DLG)})`,
    Math.max(timeoutMs, 60000),
  );
  const exp = await page.evaluate((sel) => {
    const b = document.querySelector(`${sel} .footage-sel .export-status`);
    return { status: b.dataset.status, id: b.dataset.exportId, sha: b.dataset.sha256, short: b.querySelector('.export-sha-short')?.textContent, title: b.querySelector('.export-sha-short')?.title, href: b.querySelector('a.export-download')?.getAttribute('href'), text: b.textContent };
  }, DLG);
  if (exp.status !== 'done') throw new Error(`the export ended ${exp.status}: ${exp.text}`);
  const exportMs = Date.now() - exportStart;
  const job = await get(`/api/v1/exports/${exp.id}`);
  if (job.status !== 'done' || !/^[0-9a-f]{64}$/.test(job.sha256 ?? '') || exp.sha !== job.sha256 || exp.title !== job.sha256 || !job.sha256.startsWith(exp.short.replace('…', ''))) throw new Error(`the page shows SHA-256 ${JSON.stringify(exp)}, the API ${JSON.stringify(job)}`);
  if (exp.href !== `/api/v1/exports/${exp.id}/file`) throw new Error(`the download link is ${exp.href}`);
  const verify = await get(`/api/v1/exports/${exp.id}/verify`);
  if (!verify.ok || verify.recomputed !== job.sha256) throw new Error(`/verify: ${JSON.stringify(verify)}`);
  const exportShot = path.join(artifactDir, 'footage-export.png');
  await page.screenshot({ path: exportShot });

  // The author deletes the tag (twice: 删除, then 确认删除 · Confirm delete).
  // Turning away (a click elsewhere) takes the question back; the question
  // asked again then stays until it is answered (no clock runs it out).
  const armed = ([sel, id]) => document.querySelector(`${sel} .footage-tags li[data-tag-id="${id}"] .tag-delete`)?.dataset.confirm === 'true';
  await page.click(`${DLG} .footage-tags li[data-tag-id="${tag.id}"] .tag-delete`);
  await waitFor(page, armed, [DLG, tag.id], 'the delete confirm');
  await page.click(`${DLG} .footage-tags li[data-tag-id="${tag.id}"] .tag-time`);
  await waitFor(page, (a) => !document.querySelector(`${a[0]} .footage-tags li[data-tag-id="${a[1]}"] .tag-delete`)?.dataset.confirm, [DLG, tag.id], 'the delete confirm taken back by a click elsewhere');
  if (!(await page.evaluate(([sel, id]) => !!document.querySelector(`${sel} .footage-tags li[data-tag-id="${id}"]`), [DLG, tag.id]))) throw new Error('the tag went with a click beside its delete button');
  await page.click(`${DLG} .footage-tags li[data-tag-id="${tag.id}"] .tag-delete`);
  await waitFor(page, armed, [DLG, tag.id], 'the delete confirm asked again');
  await page.click(`${DLG} .footage-tags li[data-tag-id="${tag.id}"] .tag-delete`);
  await waitFor(page, ([sel, id]) => !document.querySelector(`${sel} .footage-tags li[data-tag-id="${id}"]`) && !document.querySelector(`${sel} .tl-tag[data-id="${id}"]`), [DLG, tag.id], async () => `the tag deleted (${await page.evaluate(([sel, id]) => JSON.stringify({ li: document.querySelector(`${sel} .footage-tags li[data-tag-id="${id}"]`)?.outerHTML.slice(0, 300), band: !!document.querySelector(`${sel} .tl-tag[data-id="${id}"]`), held: document.querySelector(`${sel} .tl-track`).dataset.held, toasts: [...document.querySelectorAll('.toast, [role=status]')].map((t) => t.textContent).join(' | ').slice(0, 300) }), [DLG, tag.id])}; ${problems.join('; ')})`);
  if (((await get(`/api/v1/tags?camera=${cam.id}`)).tags ?? []).some((t) => t.id === tag.id)) throw new Error('the deleted tag is still listed');
  await page.keyboard.press('Escape');
  await waitFor(page, (sel) => !document.querySelector(sel)?.open, DLG, 'the footage view closed by Esc');
  await check('tags and exports');

  // 7. An incident at the camera: its page lists the auto-linked footage.
  const [lon, lat] = cam.location.coordinates;
  const incId = Number((await fileIncident(base, token, `e2e 录像关联 ${label}`, [lon, lat])).id);
  await page.evaluate((id) => window.gridwatchIncidents.open(id), incId);
  await waitFor(
    page,
    ([id, cam]) => {
      const box = document.querySelector('#incident-view [data-field="footage"]');
      return document.querySelector('#incident-view')?.dataset.incidentId === String(id) && !!box?.querySelector(`li[data-camera="${cam}"][data-source="auto"]`);
    },
    [incId, cam.id],
    async () => `incident ${incId}'s page listing the auto-linked footage of ${cam.code} (${await page.evaluate(() => document.querySelector('#incident-view [data-field="footage"]')?.outerHTML.slice(0, 400))})`,
  );
  const links = (await get(`/api/v1/incidents/${incId}/footage`)).footage ?? [];
  const shownLinks = await page.evaluate(() => [...document.querySelectorAll('#incident-view [data-field="footage"] li[data-link-id]')].map((li) => Number(li.dataset.linkId)));
  if (shownLinks.length !== links.length || !links.every((l) => shownLinks.includes(l.id))) throw new Error(`the page lists links ${JSON.stringify(shownLinks)}, the API ${JSON.stringify(links.map((l) => l.id))}`);
  const link = links.find((l) => l.camera_id === cam.id && l.source === 'auto');
  await page.click(`#incident-view li[data-link-id="${link.id}"] .inc-footage-play`);
  await waitFor(
    page,
    ([sel, id, from]) => {
      const d = document.querySelector(sel);
      return d?.open && d.dataset.camera === String(id) && d.dataset.state === 'playing' && document.querySelector(`${sel} .footage-sel`).dataset.from === from;
    },
    [DLG, cam.id, new Date(Date.parse(link.from)).toISOString().replace(/\.\d{3}Z$/, 'Z')],
    async () => `the linked footage playing (${JSON.stringify(await viewInfo(page))})`,
  );
  await page.keyboard.press('Escape');
  await waitFor(page, (sel) => !document.querySelector(sel)?.open, DLG, 'the footage view closed by Esc');
  await check('the linked footage');

  // 8. Another recording camera's files cannot be made: its card says so, live, and stops saying so once they can.
  await page.keyboard.press('Escape'); // the incident's page closes
  await waitFor(page, () => document.querySelector('#incident-view')?.hidden, null, 'the incident page closed by Esc');
  const others = ((await get('/api/v1/cameras?limit=1000')).cameras ?? []).filter((c) => c.status === 'online' && c.record && c.id !== cam.id && /^JS-CAM-/.test(c.code ?? ''));
  // The card's first load of the camera is answered before the fault and
  // held until the card has heard of it: a late answer must not undo what
  // the event said.
  const otherPaths = new Set(others.map((c) => `/api/v1/cameras/${c.id}`));
  const firstLoad = await holdAnswer(page, /\/api\/v1\/cameras\/\d+$/, "the card's first load of the camera", (u) => otherPaths.has(u.pathname));
  let failing = null;
  try {
    for (const c of others) {
      if (await clickCamera(page, c)) {
        failing = c;
        break;
      }
    }
  } finally {
    if (!failing) await firstLoad.stop();
  }
  if (!failing) throw new Error(`no other recording demo camera to click on the map (${others.map((c) => c.code).join(', ')})`);
  const cardOf = (id) => page.evaluate((id) => {
    const card = document.querySelector('#camera-card');
    const w = card?.querySelector('[data-field="cam-rec-error"]');
    return { shown: !!card && !card.hidden && card.dataset.camera === String(id), warning: w && !w.hidden ? w.textContent : '' };
  }, id);
  await waitFor(page, (id) => document.querySelector('#camera-card')?.dataset.camera === String(id), failing.id, `the camera card of ${failing.code}`);
  if ((await cardOf(failing.id)).warning) throw new Error(`${failing.code}'s card warns before any fault: ${(await cardOf(failing.id)).warning}`);
  const { path: loaded, res: early } = await firstLoad.read(); // read before the fault
  if (loaded !== `/api/v1/cameras/${failing.id}`) throw new Error(`the card's first load was ${loaded}, not /api/v1/cameras/${failing.id}`);
  if ((await early.json()).recording_error) throw new Error(`${failing.code} has a recording_error before any fault`);
  const camDir = path.join(recordingsDir, String(failing.id));
  await rename(camDir, `${camDir}.away`);
  await writeFile(camDir, 'in the way of the recorder');
  const faultAt = Date.now();
  let warned;
  try {
    await waitFor(
      page,
      (id) => {
        const card = document.querySelector('#camera-card');
        const w = card?.querySelector('[data-field="cam-rec-error"]');
        return card?.dataset.camera === String(id) && w && !w.hidden && /^未在录像 · Not recording since \d\d:\d\d — .*not a directory/.test(w.textContent);
      },
      failing.id,
      async () => `${failing.code}'s card saying it does not record (${JSON.stringify(await cardOf(failing.id))})`,
    );
    warned = { ...(await cardOf(failing.id)), ms: Date.now() - faultAt };
    const api = await get(`/api/v1/cameras/${failing.id}`);
    if (!/not a directory/.test(api.recording_error ?? '') || !api.recording_error_since) throw new Error(`GET /api/v1/cameras/${failing.id}: recording_error ${JSON.stringify(api.recording_error)} since ${api.recording_error_since}`);
    // The load answered before the fault comes now: the card keeps the warning.
    const answered = await page.evaluate(() => document.querySelector('#camera-card')?.dataset.answered);
    firstLoad.release();
    await waitFor(page, (n) => document.querySelector('#camera-card')?.dataset.answered !== n, answered, 'the card taking its late load');
    const after = await cardOf(failing.id);
    if (!after.shown || !/not a directory/.test(after.warning)) throw new Error(`a load of ${failing.code} answered before the fault, taken after it showed, undid the card's warning: ${JSON.stringify(after)}`);
  } finally {
    await rm(camDir, { force: true });
    await rename(`${camDir}.away`, camDir);
    await firstLoad.stop();
  }
  const backAt = Date.now();
  await waitFor(page, (id) => {
    const card = document.querySelector('#camera-card');
    return card?.dataset.camera === String(id) && card.querySelector('[data-field="cam-rec-error"]').hidden;
  }, failing.id, async () => `${failing.code}'s warning gone once it records again (${JSON.stringify(await cardOf(failing.id))})`);
  const clearedMs = Date.now() - backAt;
  const back = await get(`/api/v1/cameras/${failing.id}`);
  if (back.recording_error) throw new Error(`the card of ${failing.code} says it records, GET /api/v1/cameras/${failing.id} still has a recording_error ${JSON.stringify(back.recording_error)} since ${back.recording_error_since} (${clearedMs} ms after the directory was back)`);
  return passed(check, 'the recording problem', base, {
    grids_loaded: gridsLoaded,
    camera: { id: cam.id, code: cam.code, recordings: recs.length },
    recordings_wait_ms: recordingsWaitMs,
    timeline_24h: { runs: day.runs.length, gaps: day.gaps, labels: day.labels.length },
    clicked: new Date(want).toISOString(),
    click_ms_per_px: +at.msPerPx.toFixed(1),
    first_picture_ms: firstPictureMs,
    shown_offset_s: +firstOffset.toFixed(3),
    playback: { engine: b.engine, audio_bytes_decoded: b.audioBytes, fps: +((b.frames - a.frames) / secs).toFixed(1), advanced_s: +(b.t - a.t).toFixed(3), size: `${b.width}x${b.height}`, clock: playing.clock },
    hls_chunk: chunks[0]?.path,
    requests: footageRequests,
    empty_message: empty.message,
    screenshot: shot,
    tag: { id: tag.id, label, author: tag.author, ms: tagMs },
    export: { id: Number(exp.id), sha256: job.sha256, bytes: job.bytes, ms: exportMs, screenshot: exportShot },
    incident: { id: incId, links: links.length, auto: links.filter((l) => l.source === 'auto').length, recorded_s: link.recorded_seconds },
    recording_problem: { camera: failing.code, warning: warned.warning.slice(0, 160), shown_ms: warned.ms, cleared_ms: clearedMs },
    total_ms: Date.now() - started,
  });
}

await main(run, () => browser);
