// The footage dialog's timeline: the window of time it shows (following the
// clock, or the picture when zoomed, held still under a press), drawing the
// recorded runs, gaps, tags, selection, ticks and playhead (and, for a GB/T
// 28181 channel, the device's own recordings in their lane: footage-device.js),
// and what a hover, click, press and drag on it do. timelineMethods are
// FootageDialog's own (footage.js mixes them into its prototype).

import { el } from './dom.js';
import { DAY, clock, formatDuration, hhmm, iso, tagText } from './footage-format.js';
import { serverNow } from './clock.js';

/** SPANS are the zooms the timeline offers. */
export const SPANS = [
  { ms: DAY, label: '24 h' },
  { ms: 3600 * 1000, label: '1 h' },
  { ms: 5 * 60 * 1000, label: '5 min' },
];
// Tick steps (ms) the timeline picks from: the smallest with room for it.
const STEPS = [10e3, 30e3, 60e3, 5 * 60e3, 10 * 60e3, 15 * 60e3, 30 * 60e3, 3600e3, 2 * 3600e3, 3 * 3600e3, 6 * 3600e3];
const DRAG_PX = 4; // a press moved this far is a drag (a range), not a click

/** timelineMethods draw the footage dialog's timeline and take the pointer on it. */
export const timelineMethods = {
  // ---- the timeline ---------------------------------------------------------------------

  /**
   * view is the time window the track shows: [from, to] in ms. It follows
   * the clock (and a zoomed view the picture), except while a pointer is
   * down on the track: then it holds still, so a press or drag selects the
   * times that were under the pointer, not times the view scrolled to since.
   */
  view(now = serverNow()) {
    if (this.held) return [this.held[0], this.held[1]];
    const dayStart = now - DAY;
    if (this.span >= DAY) return [dayStart, now];
    const mid = this.focusAt ?? now - this.span / 2;
    let to = Math.min(now, mid + this.span / 2);
    let from = to - this.span;
    if (from < dayStart) {
      from = dayStart;
      to = from + this.span;
    }
    return [from, to];
  },

  zoom(span) {
    this.span = span;
    for (const b of this.zooms) b.setAttribute('aria-pressed', String(Number(b.dataset.span) === span));
    // Zoom in on the picture shown, else on the latest footage.
    const shown = this.shownTime();
    const last = this.runs[this.runs.length - 1];
    this.focusAt = Number.isFinite(shown) ? shown : last ? last.to - Math.min(span / 4, (last.to - last.from) / 2) : null;
    this.render();
  },

  timeAt(clientX) {
    const r = this.track.getBoundingClientRect();
    const [from, to] = this.view();
    const f = Math.min(1, Math.max(0, (clientX - r.left) / r.width));
    return from + f * (to - from);
  },

  onTrackHover(ev) {
    const t = this.timeAt(ev.clientX);
    const r = this.track.getBoundingClientRect();
    const box = this.track.parentElement.getBoundingClientRect();
    const gap = this.gaps.find((g) => t >= g.from && t < g.to);
    const run = this.runs.find((x) => t >= x.from && t < x.to);
    this.hover.hidden = false;
    const tag = this.tags.find((x) => t >= x.fromMs && t < x.toMs);
    this.hover.textContent = `${hhmm(t, this.span < DAY)}${run ? ' · 录像 recorded' : gap ? ` · 无录像 gap: ${gap.reason || '—'}` : ''}${tag ? ` · ${tagText(tag)}` : ''}`;
    const half = this.hover.offsetWidth / 2 + 2;
    this.hover.style.left = `${Math.round(Math.min(Math.max(ev.clientX - box.left, half), box.width - half))}px`;
    this.hover.style.top = `${Math.round(r.top - box.top - 4)}px`;
  },

  onTrackClick(ev) {
    if (this.suppressClick) {
      this.suppressClick = false;
      return;
    }
    // The time under the press when it was released (the view held still till then), else (a click
    // without a press on the track, e.g. from a script) the time under the pointer now.
    const t = Number.isFinite(this.clickAt) ? this.clickAt : this.timeAt(ev.clientX);
    this.clickAt = NaN;
    this.playAt(t);
  },

  // ---- selecting a range: a drag across the track ----------------------------------------

  onPointerDown(ev) {
    if (ev.button !== 0) return;
    this.suppressClick = false;
    this.clickAt = NaN;
    // Hold the view drawn until the press ends: the times under the pointer stay where they are drawn.
    this.held = this.drawnView ?? this.view();
    this.track.dataset.held = '';
    this.drag = { x: ev.clientX, t: this.timeAt(ev.clientX), moved: false };
    this.track.setPointerCapture?.(ev.pointerId);
  },

  /** endPress ends a press on the track without a selection (cancelled, or the view closed): the view follows again. */
  endPress() {
    this.drag = null;
    this.release();
  },

  /** release lets the view follow the clock (and the picture) again after a press held it. */
  release() {
    if (!this.held) return;
    this.held = null;
    if (this.track) delete this.track.dataset.held;
    // No redraw here: a click follows this pointerup only if the part pressed is still there.
    // The next tick (or the click's playback) draws the view following again.
  },

  onPointerMove(ev) {
    const d = this.drag;
    if (!d) return;
    if (!d.moved && Math.abs(ev.clientX - d.x) < DRAG_PX) return;
    d.moved = true;
    const t = this.timeAt(ev.clientX);
    this.setSelection({ from: Math.min(d.t, t), to: Math.max(d.t, t) }, { form: false });
  },

  onPointerUp(ev) {
    const d = this.drag;
    this.drag = null;
    // The time under the pointer in the view held since the press, before the view follows again.
    const t = this.timeAt(ev.clientX);
    this.release();
    if (!d) return;
    if (!d.moved) {
      this.clickAt = t;
      // A click follows the pointerup only when both hit the same element: forget it if none comes.
      setTimeout(() => {
        this.clickAt = NaN;
      }, 0);
      return;
    }
    this.suppressClick = true;
    setTimeout(() => {
      this.suppressClick = false;
    }, 0);
    this.setSelection({ from: Math.round(Math.min(d.t, t)), to: Math.round(Math.max(d.t, t)) });
    this.selLabel.focus({ preventScroll: true });
  },


  drawSel() {
    const s = this.sel;
    if (!s || !this.selEl) {
      if (this.selEl) this.selEl.hidden = true;
      return;
    }
    const [from, to] = this.view();
    const f = (t) => (Math.min(Math.max(t, from), to) - from) / (to - from);
    this.selEl.hidden = s.to <= from || s.from >= to;
    this.selEl.style.left = `${(f(s.from) * 100).toFixed(4)}%`;
    this.selEl.style.width = `${((f(s.to) - f(s.from)) * 100).toFixed(4)}%`;
  },


  render() {
    if (!this.dialog) return;
    const now = serverNow();
    const [from, to] = this.view(now);
    const span = to - from;
    const pct = (t) => `${(((Math.min(Math.max(t, from), to) - from) / span) * 100).toFixed(4)}%`;
    const seg = (cls, a, b, props) => {
      const s = el('span', { className: cls, ...props });
      s.style.left = pct(a);
      s.style.width = `calc(${pct(b)} - ${pct(a)})`;
      return s;
    };
    const width = this.track.clientWidth || 800;
    const msPerPx = span / width;
    const shown = this.shownTime();
    this.playhead ??= el('span', { className: 'tl-playhead', 'aria-hidden': 'true' });
    this.playhead.hidden = !(Number.isFinite(shown) && shown >= from && shown <= to);
    if (!this.playhead.hidden) this.playhead.style.left = pct(shown);
    this.track.setAttribute('aria-valuetext', Number.isFinite(shown) ? clock(shown) : '—');
    // The segments are drawn again only when the data or the view (by a pixel) changed:
    // a segment under the pointer keeps its tooltip.
    this.drawSel();
    this.drawDeviceMarks(from, to);
    // The view's window is always the one just computed: a press holds it (and a test reads it).
    this.drawnView = [from, to];
    this.track.dataset.viewFrom = String(Math.round(from));
    this.track.dataset.viewTo = String(Math.round(to));
    const key = `${this.listAt}/${this.devAt}/${span}/${Math.round(from / msPerPx)}/${width}/${this.tags.map((t) => t.id).join(',')}`;
    if (key === this.drawn && this.playhead.isConnected) return;
    // Under a press the parts stay (new recordings are drawn after it): were the part pressed
    // replaced, no click would follow the press.
    if (this.drag) return;
    this.drawn = key;
    const parts = [];
    for (const g of this.gaps) {
      if (g.to <= from || g.from >= to) continue;
      const reason = g.reason || '—';
      parts.push(seg('tl-gap', g.from, g.to, { title: `无录像 Gap ${clock(g.from)} – ${hhmm(g.to, true)}: ${reason}`, dataset: { reason, from: iso(g.from), to: iso(g.to) } }));
    }
    for (const m of this.missing) {
      if (m.to <= from || m.from >= to) continue;
      parts.push(seg('tl-gap tl-missing', m.from, m.to, { title: `文件缺失 · File missing ${clock(m.from)} – ${hhmm(m.to, true)}`, dataset: { reason: 'missing' } }));
    }
    for (const x of this.runs) {
      if (x.to <= from || x.from >= to) continue;
      parts.push(seg('tl-rec', x.from, x.to, { title: `录像 Recorded ${clock(x.from)} – ${hhmm(x.to, true)}`, dataset: { from: new Date(x.from).toISOString(), to: new Date(x.to).toISOString() } }));
    }
    for (const t of this.tags) {
      if (t.toMs <= from || t.fromMs >= to) continue;
      parts.push(seg('tl-tag', t.fromMs, t.toMs, { title: tagText(t), dataset: { id: String(t.id), label: t.label ?? '' } }));
      parts[parts.length - 1].append(el('span', 'tl-tag-label', t.label ?? ''));
    }
    this.track.replaceChildren(...parts, this.selEl, this.playhead);
    this.drawDevice(from, to, seg);

    // Ticks in local time: the smallest step that leaves ~40 px between ticks, labels ~90 px apart.
    const step = STEPS.find((s) => s / msPerPx >= 40) ?? STEPS[STEPS.length - 1];
    const labelStep = STEPS.find((s) => s >= step && s / msPerPx >= 90 && s % step === 0) ?? step;
    const tz = (t) => new Date(t).getTimezoneOffset() * 60e3;
    const ticks = [];
    for (let t = Math.ceil((from - tz(from)) / step) * step + tz(from); t <= to; t += step) {
      const local = t - tz(t);
      const px = (t - from) / msPerPx;
      const labelled = local % labelStep === 0 && px > 28 && px < width - 28; // no label cut by the edges
      const tick = el('span', labelled ? 'tl-tick tl-tick-major' : 'tl-tick', labelled ? el('span', 'tl-label', hhmm(t, labelStep < 60e3)) : null);
      tick.style.left = pct(t);
      ticks.push(tick);
    }
    this.ticks.replaceChildren(...ticks);

    const total = this.runs.reduce((s, x) => s + Math.max(0, Math.min(x.to, now) - Math.max(x.from, now - DAY)), 0);
    this.summary.textContent = this.listAt ? `最近 24 小时录像 ${this.runs.length} 段 · ${this.runs.length} recorded run${this.runs.length === 1 ? '' : 's'}, ${formatDuration(total)} in 24 h` : '';
  },

  tick() {
    this.tickDevicePlay();
    const shown = this.shownTime();
    if (Number.isFinite(shown)) {
      this.clockEl.textContent = clock(shown);
      this.clockEl.dateTime = new Date(shown).toISOString();
      this.clockEl.dataset.time = new Date(shown).toISOString();
      // A zoomed view follows the picture (not under a press: the view holds still then).
      if (this.span < DAY && !this.held) {
        const [from, to] = this.view();
        if (shown < from || shown > to - this.span * 0.05) this.focusAt = shown + this.span * 0.3;
      }
    }
    this.render();
  },
};
