// The dashboard on a phone, a tablet and a desktop screen, in headless
// Chromium, as a commander and as a grid leader.
//
//   node e2e/responsive.mjs <baseURL> <artifactDir>
//
// Sizes: phone 390×844 and 360×740 (isMobile, touch), tablet 820×1180
// (touch), desktop 1440×900. At each size, for demo-commander and
// demo-leader:
//   - the map fills the screen under the top bar;
//   - nothing runs off the side: no horizontal overflow (scrollWidth ≤
//     clientWidth, the layout viewport as wide as the screen, and no element
//     outside a clipping box past the right edge), menu open or shut;
//   - every action of the top bar (locate, all grids, new incident, stats,
//     import, admin, sign out — those the role has) is on the first screen or
//     one tap away: in the ☰ menu, which opens with aria-expanded, takes the
//     focus, closes on Esc and gives the focus back, and closes when
//     Shift+Tab takes the focus back past ☰ (out of both); stats and new incident
//     are used through it. On the desktop everything is in the bar and there
//     is no ☰ button (the layout of old);
//   - the legend starts folded on a phone and a tablet (open on the desktop),
//     folded covers at most LEGEND_SHARE of the map, and opens and folds again
//     with its "图例 Legend" toggle;
//   - a grid tapped (clicked) on the map opens its panel: on a phone as a
//     sheet the width of the screen at the bottom, elsewhere at the side;
//   - the new-incident form is a sheet on a phone;
//   - the field-app banner ("Use the field app", a link to /field/) shows for
//     the grid leader on a phone only, and stays away once dismissed.
// Screenshots: responsive-<size>-<user>.png (and -menu.png) in artifactDir.
// Prints one JSON line; exits 0 on success, 1 on failure (with the reason).

import path from 'node:path';
import { freeGridPoint, gridCandidates, gridFeatures, launch, main, panelShows, passed, scriptArgs, signIn, timeoutMs, waitFor, waitGrids, watch } from './common.mjs';

const { base, args: [artifactDir], started } = scriptArgs('responsive.mjs', '<artifactDir>', timeoutMs * 16 + 60000);

/** LEGEND_SHARE is the most of the map a folded legend may cover. */
const LEGEND_SHARE = 0.05;

const SIZES = [
  { name: 'phone', width: 390, height: 844, isMobile: true, hasTouch: true, phone: true },
  { name: 'phone-small', width: 360, height: 740, isMobile: true, hasTouch: true, phone: true },
  { name: 'tablet', width: 820, height: 1180, isMobile: true, hasTouch: true, phone: false },
  { name: 'desktop', width: 1440, height: 900, isMobile: false, hasTouch: false, phone: false, desktop: true },
];
const USERS = [
  { username: 'demo-commander', password: 'gridwatch-commander', role: 'commander' },
  { username: 'demo-leader', password: 'gridwatch-leader', role: 'grid_leader' },
];
// The top bar's actions, and those each role must have.
const ACTIONS = ['#locate-btn', '#fit-btn', '#new-incident-btn', '#stats-btn', '#import-btn', '#admin-btn', '#logout-btn'];
const REQUIRED = ['#locate-btn', '#fit-btn', '#new-incident-btn', '#stats-btn', '#logout-btn'];

let browser;

/** layout reads what the checks need of the page's geometry. */
function layout(page) {
  return page.evaluate(() => {
    const rect = (sel) => {
      const e = document.querySelector(sel);
      if (!e || e.closest('[hidden]')) return null;
      const r = e.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) return null;
      return { left: r.left, top: r.top, right: r.right, bottom: r.bottom, width: r.width, height: r.height };
    };
    const de = document.documentElement;
    // Elements past the right (or left) edge with no clipping box between them and the page.
    const clipped = (e) => {
      for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
        const s = getComputedStyle(a);
        if (s.overflowX !== 'visible' || s.display === 'none') return true;
      }
      return false;
    };
    const out = [];
    for (const e of document.body.querySelectorAll('*')) {
      const r = e.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      if (getComputedStyle(e).visibility === 'hidden') continue;
      if (r.right <= innerWidth + 0.5 && r.left >= -0.5) continue;
      if (clipped(e)) continue;
      out.push(`${e.tagName.toLowerCase()}${e.id ? `#${e.id}` : ''}${e.classList.length ? `.${[...e.classList].join('.')}` : ''} [${Math.round(r.left)}, ${Math.round(r.right)}]`);
    }
    const canvas = document.querySelector('#map canvas');
    return {
      innerWidth,
      innerHeight,
      scrollWidth: de.scrollWidth,
      clientWidth: de.clientWidth,
      bodyScrollWidth: document.body.scrollWidth,
      bodyClientWidth: document.body.clientWidth,
      visualWidth: window.visualViewport?.width ?? innerWidth,
      offside: out.slice(0, 12),
      topbar: rect('.topbar'),
      map: rect('#map'),
      canvas: canvas ? { width: canvas.clientWidth, height: canvas.clientHeight } : null,
      legend: rect('#legend'),
      legendExpanded: document.querySelector('#legend-toggle')?.getAttribute('aria-expanded'),
      menuBtn: rect('#menu-btn'),
      menuExpanded: document.querySelector('#menu-btn')?.getAttribute('aria-expanded'),
      fieldBanner: rect('#field-banner'),
      fieldHref: document.querySelector('#field-banner-link')?.getAttribute('href'),
    };
  });
}

function noOverflow(l, what) {
  const bad = [];
  if (l.scrollWidth > l.clientWidth) bad.push(`document scrollWidth ${l.scrollWidth} > clientWidth ${l.clientWidth}`);
  if (l.bodyScrollWidth > l.bodyClientWidth) bad.push(`body scrollWidth ${l.bodyScrollWidth} > clientWidth ${l.bodyClientWidth}`);
  if (l.offside.length) bad.push(`off the screen: ${l.offside.join(', ')}`);
  if (bad.length) throw new Error(`${what}: horizontal overflow: ${bad.join('; ')}`);
}

/** reachable says whether the button sel is on screen and is what a tap at its middle hits. */
function reachable(page, sel) {
  return page.evaluate((sel) => {
    const e = document.querySelector(sel);
    if (!e || e.closest('[hidden]')) return { present: false };
    const r = e.getBoundingClientRect();
    if (r.width < 1 || r.height < 1) return { present: true, shown: false };
    const x = r.left + r.width / 2;
    const y = r.top + r.height / 2;
    const inView = r.left >= -0.5 && r.top >= -0.5 && r.right <= innerWidth + 0.5 && r.bottom <= innerHeight + 0.5;
    const hit = document.elementFromPoint(x, y);
    return { present: true, shown: true, inView, hit: !!hit && (hit === e || e.contains(hit)), x, y, w: r.width, h: r.height };
  }, sel);
}

/** press taps (touch) or clicks (mouse) the middle of the element sel. */
async function press(page, sel, touch) {
  const r = await reachable(page, sel);
  if (!r.present || !r.shown || !r.hit) throw new Error(`${sel} cannot be pressed: ${JSON.stringify(r)}`);
  if (touch) await page.touchscreen.tap(r.x, r.y);
  else await page.mouse.click(r.x, r.y);
}

const menuOpen = (page) => page.evaluate(() => document.querySelector('#menu-btn')?.getAttribute('aria-expanded') === 'true');

/** closeMenuWithEsc presses Esc in the open menu and checks it shut and gave the focus back to ☰. */
async function closeMenuWithEsc(page, what) {
  await page.keyboard.press('Escape');
  await waitFor(page, () => document.querySelector('#menu-btn').getAttribute('aria-expanded') === 'false' && document.activeElement?.id === 'menu-btn', null, `${what}: Esc closes the menu and focuses ☰`);
}

/** tapGrid finds a free point of grid cand on the map and taps (or clicks) it. */
async function tapGrid(page, cand, touch) {
  const at = await freeGridPoint(page, cand, 18);
  if (!at) throw new Error(`no free point of grid ${cand.code} to tap on the map`);
  if (touch) await page.touchscreen.tap(at.x, at.y);
  else {
    await page.mouse.move(at.x - 10, at.y - 10);
    await page.mouse.click(at.x, at.y);
  }
}

const near = (a, b, tol = 1.5) => Math.abs(a - b) <= tol;

/** isSheet says whether rect r is a bottom sheet the width of the screen. */
function isSheet(r, l) {
  return !!r && near(r.left, 0) && near(r.right, l.innerWidth) && near(r.bottom, l.innerHeight, 2) && r.top > l.topbar.bottom;
}

async function runOne(size, user) {
  const touch = size.hasTouch;
  const what = `${size.name} ${size.width}×${size.height} as ${user.username}`;
  const context = await browser.newContext({ viewport: { width: size.width, height: size.height }, deviceScaleFactor: 1, isMobile: size.isMobile, hasTouch: size.hasTouch });
  const page = await context.newPage();
  const watcher = watch(page, base);
  watcher.expect('GET', /^\/api\/v1\/me$/, 401);
  const result = { size: size.name, user: user.username, via_menu: [], direct: [] };
  try {
    const resp = await page.goto(base.href, { waitUntil: 'domcontentloaded', timeout: timeoutMs });
    if (!resp?.ok()) throw new Error(`${what}: GET / → ${resp?.status()}`);
    await signIn(page, user.username, user.password);
    await waitGrids(page, watcher.problems);
    await watcher.check(`${what}: after load`);

    // The map fills the screen under the bar; nothing runs off the side.
    let l = await layout(page);
    if (l.innerWidth !== size.width || !near(l.visualWidth, size.width)) throw new Error(`${what}: the page is laid out ${l.innerWidth} px wide (visual ${l.visualWidth}), want ${size.width}: something is wider than the screen`);
    if (!l.map || !near(l.map.left, 0) || !near(l.map.right, l.innerWidth) || !near(l.map.bottom, l.innerHeight) || !near(l.map.top, l.topbar.bottom, 2)) {
      throw new Error(`${what}: the map does not fill the screen under the bar: map ${JSON.stringify(l.map)}, bar ${JSON.stringify(l.topbar)}`);
    }
    if (!l.canvas || !near(l.canvas.width, l.map.width, 2) || !near(l.canvas.height, l.map.height, 2)) throw new Error(`${what}: the map canvas ${JSON.stringify(l.canvas)} is not the map's size ${JSON.stringify(l.map)}`);
    if (l.topbar.height > 64) throw new Error(`${what}: the top bar is ${l.topbar.height} px tall`);
    noOverflow(l, `${what} (first screen)`);
    result.map_share = +((l.map.width * l.map.height) / (l.innerWidth * l.innerHeight)).toFixed(3);

    // The field-app banner: the grid leader on a phone only.
    const bannerWanted = user.role === 'grid_leader' && size.phone;
    if (bannerWanted !== !!l.fieldBanner) throw new Error(`${what}: field-app banner ${l.fieldBanner ? 'shown' : 'not shown'}, want ${bannerWanted ? 'shown' : 'not shown'}`);
    if (bannerWanted) {
      if (!/\/field\/$/.test(l.fieldHref ?? '')) throw new Error(`${what}: the field-app banner links to ${l.fieldHref}, want /field/`);
      const link = await reachable(page, '#field-banner-link');
      if (!link.inView || !link.hit) throw new Error(`${what}: the field-app link is not tappable: ${JSON.stringify(link)}`);
      result.field_banner = true;
    }

    // Every top-bar action: on the first screen, or one tap away in the ☰ menu.
    const shown = [];
    for (const sel of ACTIONS) {
      const r = await reachable(page, sel);
      if (!r.present) {
        if (REQUIRED.includes(sel)) throw new Error(`${what}: ${sel} is missing for ${user.role}`);
        continue;
      }
      shown.push(sel);
      if (r.shown && r.inView && r.hit) {
        result.direct.push(sel);
        continue;
      }
      if (size.desktop) throw new Error(`${what}: ${sel} is not in the bar on the desktop: ${JSON.stringify(r)}`);
      await press(page, '#menu-btn', touch);
      await waitFor(page, () => document.querySelector('#menu-btn').getAttribute('aria-expanded') === 'true', null, `${what}: ☰ opens the menu`);
      const m = await reachable(page, sel);
      if (!m.shown || !m.inView || !m.hit) throw new Error(`${what}: ${sel} is not reachable in the open menu: ${JSON.stringify(m)}`);
      if (touch && (m.h < 40 || m.w < 40)) throw new Error(`${what}: ${sel} in the menu is ${m.w}×${m.h} px, too small to tap`);
      result.via_menu.push(sel);
      await page.keyboard.press('Escape');
      await waitFor(page, () => document.querySelector('#menu-btn').getAttribute('aria-expanded') === 'false', null, `${what}: Esc closes the menu`);
    }
    const menuBtn = await reachable(page, '#menu-btn');
    if (size.desktop) {
      if (menuBtn.shown) throw new Error(`${what}: the ☰ button shows on the desktop`);
    } else {
      if (!menuBtn.shown || !menuBtn.inView || !menuBtn.hit) throw new Error(`${what}: no ☰ button to tap: ${JSON.stringify(menuBtn)}`);
      if (result.via_menu.length === 0) throw new Error(`${what}: the bar did not fold into the menu (all of ${shown.join(' ')} in the bar)`);

      // The menu by keyboard: Enter opens it and puts the focus in it; Esc shuts it and gives the focus back.
      await page.focus('#menu-btn');
      await page.keyboard.press('Enter');
      await waitFor(page, () => document.querySelector('#menu-btn').getAttribute('aria-expanded') === 'true' && document.querySelector('#topbar-menu').contains(document.activeElement), null, `${what}: Enter on ☰ opens the menu and focuses its first control`);
      l = await layout(page);
      noOverflow(l, `${what} (menu open)`);
      await page.screenshot({ path: path.join(artifactDir, `responsive-${size.name}-${user.role}-menu.png`) });
      await closeMenuWithEsc(page, what);

      // Shift+Tab from the menu's first control goes back to ☰ (the menu stays open); once
      // more, the focus leaves both (out of the page: nothing comes before ☰) and the menu closes.
      await page.keyboard.press('Enter');
      await waitFor(page, () => document.querySelector('#menu-btn').getAttribute('aria-expanded') === 'true' && document.querySelector('#topbar-menu').contains(document.activeElement), null, `${what}: Enter on ☰ opens the menu again`);
      await page.keyboard.press('Shift+Tab');
      await waitFor(page, () => document.activeElement?.id === 'menu-btn' && document.querySelector('#menu-btn').getAttribute('aria-expanded') === 'true', null, async () => `${what}: Shift+Tab from the menu's first control focuses ☰, the menu still open (focus on ${await page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName)})`);
      await page.keyboard.press('Shift+Tab');
      await waitFor(page, () => document.querySelector('#menu-btn').getAttribute('aria-expanded') === 'false' && document.activeElement?.id !== 'menu-btn', null, async () => `${what}: Shift+Tab past ☰ closes the menu (focus on ${await page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName)})`);

      // A tap outside the open menu (on the bar's name) closes it.
      await press(page, '#menu-btn', touch);
      await waitFor(page, () => document.querySelector('#menu-btn').getAttribute('aria-expanded') === 'true', null, `${what}: ☰ opens the menu`);
      await press(page, '.brand-name', touch);
      await waitFor(page, () => document.querySelector('#menu-btn').getAttribute('aria-expanded') === 'false', null, `${what}: a tap outside closes the menu`);

      // Stats through the menu: the dialog opens on the screen, and closes.
      await press(page, '#menu-btn', touch);
      await waitFor(page, () => document.querySelector('#menu-btn').getAttribute('aria-expanded') === 'true', null, `${what}: ☰ opens the menu`);
      await press(page, '#stats-btn', touch);
      await waitFor(page, () => document.querySelector('#stats-dialog')?.open && ['ok', 'error'].includes(document.querySelector('#stats-dialog').dataset.state), null, `${what}: stats from the menu`);
      if (await menuOpen(page)) throw new Error(`${what}: the menu stays open over the stats`);
      const dlg = await page.evaluate(() => {
        const r = document.querySelector('#stats-dialog').getBoundingClientRect();
        return { left: r.left, right: r.right, top: r.top, bottom: r.bottom, state: document.querySelector('#stats-dialog').dataset.state };
      });
      if (dlg.left < -0.5 || dlg.right > size.width + 0.5) throw new Error(`${what}: the stats dialog runs off the screen: ${JSON.stringify(dlg)}`);
      if (dlg.state !== 'ok') throw new Error(`${what}: the stats did not load: ${await page.textContent('#stats-dialog .tab-status')}`);
      await press(page, '#stats-dialog .dialog-close', touch);
      await waitFor(page, () => !document.querySelector('#stats-dialog').open, null, `${what}: the stats dialog closes`);
    }

    // The legend: folded on a narrow screen, open on the desktop; folded it covers little.
    l = await layout(page);
    const wantExpanded = size.desktop ? 'true' : 'false';
    if (l.legendExpanded !== wantExpanded) throw new Error(`${what}: the legend starts ${l.legendExpanded === 'true' ? 'open' : 'folded'}, want ${wantExpanded === 'true' ? 'open' : 'folded'}`);
    if (size.desktop) {
      await press(page, '#legend-toggle', touch);
      await waitFor(page, () => document.querySelector('#legend-toggle').getAttribute('aria-expanded') === 'false' && document.querySelector('#legend-body').hidden, null, `${what}: the legend folds`);
      l = await layout(page);
    }
    const share = (l.legend.width * l.legend.height) / (l.map.width * l.map.height);
    result.legend_folded_share = +share.toFixed(4);
    if (share > LEGEND_SHARE) throw new Error(`${what}: the folded legend covers ${(share * 100).toFixed(1)}% of the map (${Math.round(l.legend.width)}×${Math.round(l.legend.height)}), want ≤ ${LEGEND_SHARE * 100}%`);
    const toggle = await reachable(page, '#legend-toggle');
    if (!toggle.inView || !toggle.hit) throw new Error(`${what}: the legend toggle is not tappable: ${JSON.stringify(toggle)}`);
    if (touch && toggle.h < 32) throw new Error(`${what}: the legend toggle is ${toggle.h} px tall, too small to tap`);
    await press(page, '#legend-toggle', touch);
    await waitFor(page, () => document.querySelector('#legend-toggle').getAttribute('aria-expanded') === 'true' && !document.querySelector('#legend-body').hidden, null, `${what}: the legend opens`);
    l = await layout(page);
    noOverflow(l, `${what} (legend open)`);
    if (l.legend.top < l.map.top - 0.5 || l.legend.bottom > l.map.bottom + 0.5) throw new Error(`${what}: the open legend runs out of the map: ${JSON.stringify(l.legend)}`);
    result.legend_open_share = +((l.legend.width * l.legend.height) / (l.map.width * l.map.height)).toFixed(4);
    if (!size.desktop) {
      await press(page, '#legend-toggle', touch);
      await waitFor(page, () => document.querySelector('#legend-toggle').getAttribute('aria-expanded') === 'false', null, `${what}: the legend folds again`);
    }

    // A grid's panel: a sheet on the phone, at the side elsewhere.
    const cands = gridCandidates(await gridFeatures(page, base));
    if (!cands.length) throw new Error(`${what}: no grid to open`);
    const cand = cands[0];
    await tapGrid(page, cand, touch);
    await panelShows(page, { name: cand.name, code: cand.code });
    await waitFor(page, () => document.getAnimations().filter((a) => a.playState === 'running' && a.effect?.target?.id === 'panel').length === 0, null, `${what}: the panel settles`);
    l = await layout(page);
    const panel = await page.evaluate(() => {
      const r = document.querySelector('#panel').getBoundingClientRect();
      return { left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width, height: r.height };
    });
    if (size.phone) {
      if (!isSheet(panel, l)) throw new Error(`${what}: the grid panel is not a bottom sheet the width of the screen: ${JSON.stringify(panel)} (screen ${l.innerWidth}×${l.innerHeight})`);
      if (panel.height > l.map.height * 0.8) throw new Error(`${what}: the grid sheet covers ${Math.round((panel.height / l.map.height) * 100)}% of the map`);
    } else if (panel.width > l.innerWidth / 2 || panel.right > l.innerWidth + 0.5) {
      throw new Error(`${what}: the grid panel is not at the side: ${JSON.stringify(panel)}`);
    }
    noOverflow(l, `${what} (grid panel)`);

    // Framing a grid with the panel open keeps it clear of the panel: above the sheet on a phone,
    // beside the panel elsewhere (the chain's own entry fits the map to the grid).
    await page.evaluate(([lon, lat]) => window.gridwatchMap.jumpTo({ center: [lon + 0.05, lat + 0.03], zoom: 12 }), [cand.lon, cand.lat]);
    await press(page, '#panel [data-field="chain"] [aria-current="page"]', touch);
    await waitFor(
      page,
      ([lon, lat, phone]) => {
        const map = window.gridwatchMap;
        if (map.isMoving() || map.getZoom() < 13) return false;
        const r = map.getContainer().getBoundingClientRect();
        const p = map.project([lon, lat]);
        const panel = document.querySelector('#panel').getBoundingClientRect();
        const x = r.left + p.x;
        const y = r.top + p.y;
        return x > r.left && y > r.top && (phone ? x < r.right && y < panel.top : x < panel.left && y < r.bottom);
      },
      [cand.lon, cand.lat, !!size.phone],
      async () => `${what}: the grid framed clear of the panel (map ${JSON.stringify(await page.evaluate(() => ({ zoom: window.gridwatchMap.getZoom(), centre: window.gridwatchMap.getCenter() })))})`,
    );
    result.panel = { left: Math.round(panel.left), top: Math.round(panel.top), width: Math.round(panel.width), height: Math.round(panel.height) };
    await page.screenshot({ path: path.join(artifactDir, `responsive-${size.name}-${user.role}.png`) });
    await press(page, '#panel-close', touch);
    await waitFor(page, () => document.querySelector('#panel').hidden, null, `${what}: the panel closes`);

    // The new-incident form: a sheet on the phone.
    if (!result.direct.includes('#new-incident-btn')) {
      await press(page, '#menu-btn', touch);
      await waitFor(page, () => document.querySelector('#menu-btn').getAttribute('aria-expanded') === 'true', null, `${what}: ☰ opens the menu`);
    }
    await press(page, '#new-incident-btn', touch);
    await waitFor(page, () => !document.querySelector('#incident-new').hidden, null, `${what}: the new-incident form opens`);
    await waitFor(page, () => document.getAnimations().filter((a) => a.playState === 'running' && a.effect?.target?.id === 'incident-new').length === 0, null, `${what}: the form settles`);
    l = await layout(page);
    const form = await page.evaluate(() => {
      const r = document.querySelector('#incident-new').getBoundingClientRect();
      return { left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width, height: r.height };
    });
    if (size.phone && !isSheet(form, l)) throw new Error(`${what}: the new-incident form is not a bottom sheet: ${JSON.stringify(form)}`);
    noOverflow(l, `${what} (new-incident form)`);
    await press(page, '#incident-new [data-part="close"]', touch);
    await waitFor(page, () => document.querySelector('#incident-new').hidden, null, `${what}: the form closes`);

    // The field-app banner goes when dismissed, and stays away.
    if (bannerWanted) {
      await press(page, '#field-banner-close', touch);
      await waitFor(page, () => document.querySelector('#field-banner').hidden, null, `${what}: the field-app banner dismissed`);
      // Another page of the same browser (the same storage) does not show it again.
      const again = await context.newPage();
      const againWatcher = watch(again, base);
      await again.goto(base.href, { waitUntil: 'domcontentloaded', timeout: timeoutMs });
      await waitFor(again, () => document.body.dataset.auth === 'ok' && document.body.dataset.role === 'grid_leader', null, `${what}: a second page signed in`);
      if (!(await again.evaluate(() => document.querySelector('#field-banner').hidden))) throw new Error(`${what}: the field-app banner is back on the next page`);
      await againWatcher.check(`${what}: second page`);
      await again.close();
    }

    result.actions = shown.length;
    await watcher.check(`${what}: end`);
    return result;
  } finally {
    await context.close();
  }
}

async function run() {
  browser = await launch();
  const runs = [];
  for (const size of SIZES) {
    for (const user of USERS) runs.push(await runOne(size, user));
  }
  return passed(async () => {}, 'end', base, { runs, total_ms: Date.now() - started });
}

await main(run, () => browser);
