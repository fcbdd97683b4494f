// The card of a member on patrol (#patrol-card, on the right like the grid
// panel; a sheet from the bottom on a phone): who, since when, how long, how
// far, how many grids, how old and how precise the last fix is — kept
// current by the patrol layer's updates and a one-second clock (stopped once
// the patrol ends: the card then shows its end and its final figures) — and
// "今日轨迹 Today's tracks": the member's patrols of a day (a date picker
// for other days) drawn on the map, coloured by time.
//
// Test hooks: #patrol-card[data-patrol-id][data-freshness], its
// [data-field=name|started|ended|duration|distance|grids|last-age|accuracy],
// [data-field=tracks-btn|track-day|tracks-list|tracks-note], and
// #patrol-card[data-tracks="loading|shown|none|error"].

import { describe, getJSON } from './api.js';
import { el, formatTime } from './dom.js';
import { clockTime, dayValue, formatAge, formatDistance, formatDuration, freshness, mergePatrol, readPatrol, trackPoints } from './patrol-data.js';
import { browserZone, fetchPatrols } from './patrol-layer.js';

const FRESH_LABEL = { fresh: '在线 Fresh', stale: '信号迟滞 Stale', lost: '失联 Lost', ended: '已结束 Ended' };

export class PatrolCard {
  /** layer is the PatrolLayer; onOpen() runs as the card opens (the grid panel steps aside). */
  constructor({ map, layer, onOpen = () => {} }) {
    Object.assign(this, { map, layer, onOpen });
    this.patrolId = null;
    this.opener = null; // the marker the card was opened from, by keyboard
    this.patrol = null; // the patrol shown (kept once it leaves the active list)
    this.trackSeq = 0;
    this.clock = 0;
    this.endAsked = null; // the patrol whose end was asked of the API (once)
    this.build();
    layer.subscribe((id) => {
      if (this.isOpen && id === this.patrolId) this.render();
    });
  }

  build() {
    const f = (name, tag = 'dd', props = {}) => el(tag, { ...props, dataset: { field: name } });
    const fact = (label, name, wide = false) => el('div', wide ? 'fact fact-wide' : 'fact', el('dt', '', label), f(name));
    this.endedFact = fact('结束 Ended', 'ended');
    this.endedFact.hidden = true;
    this.close_ = el('button', { type: 'button', className: 'panel-close', 'aria-label': '关闭 Close' }, '×');
    this.badge = el('span', { className: 'fresh-badge', dataset: { field: 'freshness' } });
    this.code = el('span', { className: 'code', dataset: { field: 'patrol-code' } });
    this.name = el('h2', { className: 'detail-name', id: 'patrol-name', dataset: { field: 'name' } });
    this.centre = el('button', { type: 'button', className: 'btn btn-small', dataset: { field: 'centre-btn' }, title: '在地图上居中 Centre the map on the member' }, '居中 · Centre');
    this.day = el('input', { type: 'date', dataset: { field: 'track-day' }, value: dayValue(), max: dayValue(), 'aria-label': '日期 Day' });
    this.tracksBtn = el('button', { type: 'button', className: 'btn btn-small btn-primary', dataset: { field: 'tracks-btn' } }, '今日轨迹 · Today’s tracks');
    this.clearBtn = el('button', { type: 'button', className: 'btn btn-small', dataset: { field: 'tracks-clear' }, hidden: true }, '清除 · Clear');
    this.ramp = el('div', { className: 'tracks-ramp', hidden: true }, el('span', { dataset: { field: 'ramp-from' } }), el('span', 'tracks-ramp-bar'), el('span', { dataset: { field: 'ramp-to' } }));
    this.note = el('div', { className: 'tracks-note', dataset: { field: 'tracks-note' }, role: 'status' });
    this.list = el('ol', { className: 'tracks-list', dataset: { field: 'tracks-list' }, 'aria-label': '巡查 Patrols of the day' });
    this.root = el(
      'aside',
      { id: 'patrol-card', className: 'panel patrol-card', hidden: true, 'aria-labelledby': 'patrol-name' },
      this.close_,
      el('div', 'detail-head', this.badge, this.code),
      this.name,
      el(
        'dl',
        'facts',
        fact('距离 Distance', 'distance'),
        fact('开始 Started', 'started'),
        this.endedFact,
        fact('时长 Duration', 'duration'),
        fact('网格 Grids covered', 'grids'),
        fact('最后定位 Last fix', 'last-age'),
        fact('精度 Accuracy', 'accuracy'),
        fact('定位点 Fixes', 'points'),
      ),
      el('div', 'grid-actions', this.centre),
      el(
        'section',
        'tracks',
        el('div', 'section-title', '轨迹 Tracks'),
        el('div', 'tracks-toolbar', el('label', 'field', el('span', 'field-label', '日期 Day'), this.day), this.tracksBtn, this.clearBtn),
        this.ramp,
        this.note,
        this.list,
      ),
    );
    document.querySelector('.stage').append(this.root);
    this.close_.addEventListener('click', () => this.close());
    this.centre.addEventListener('click', () => {
      const last = this.patrol?.last;
      if (last) this.map.flyTo({ center: [last.lon, last.lat], zoom: Math.max(this.map.getZoom(), 16), duration: 700 });
    });
    this.tracksBtn.addEventListener('click', () => this.showTracks());
    this.clearBtn.addEventListener('click', () => this.clearTracks());
    this.day.addEventListener('change', () => {
      this.labelTracksBtn();
      // Also while a day loads: the newer request wins (trackSeq), the picker's day is the one drawn.
      if (this.root.dataset.tracks) this.showTracks();
    });
  }

  get isOpen() {
    return !this.root.hidden;
  }

  /** open shows the card of patrol id. */
  open(id) {
    const p = this.layer.get(id);
    if (!p) return;
    const again = this.isOpen && this.patrolId === Number(id);
    // A marker chosen by keyboard gets the focus back when the card closes.
    const from = document.activeElement;
    if (from instanceof HTMLElement && from.matches('.patrol-marker')) this.opener = from;
    this.onOpen();
    this.patrolId = Number(id);
    this.patrol = p;
    this.layer.select(id);
    if (!again) {
      this.clearTracks();
      this.day.value = dayValue();
      this.day.max = dayValue();
      this.labelTracksBtn();
    }
    this.root.hidden = false;
    document.body.classList.add('patrol-open');
    this.render();
    clearInterval(this.clock);
    this.clock = setInterval(() => this.render(), 1000);
    if (!again) this.close_.focus({ preventScroll: true });
  }

  close() {
    if (!this.isOpen) return;
    clearInterval(this.clock);
    this.trackSeq++;
    const focused = this.root.contains(document.activeElement);
    this.root.hidden = true;
    document.body.classList.remove('patrol-open');
    this.layer.select(null);
    this.clearTracks();
    this.patrolId = null;
    this.patrol = null;
    this.endAsked = null;
    const back = this.opener;
    this.opener = null;
    if (back?.isConnected && focused) back.focus({ preventScroll: true });
  }

  field(name) {
    return this.root.querySelector(`[data-field="${name}"]`);
  }

  render() {
    const live = this.layer.get(this.patrolId);
    if (live) this.patrol = live;
    else {
      // Off the map: the patrol ended. The layer keeps it as it left, with the end the live feed told.
      const gone = this.layer.ended(this.patrolId);
      if (gone) this.patrol = gone;
    }
    const p = this.patrol;
    if (!p) return;
    const now = this.layer.now();
    const ended = !live || Number.isFinite(p.endedAt);
    if (ended) {
      // Nothing moves any more: the clock stops, and an end nobody told is asked of the API, once.
      clearInterval(this.clock);
      this.clock = 0;
      if (!Number.isFinite(p.endedAt) && this.endAsked !== p.id) this.askEnd(p.id);
    }
    const fresh = ended ? 'ended' : freshness(p.last?.at, now);
    this.root.dataset.patrolId = String(p.id);
    this.root.dataset.freshness = fresh;
    this.badge.dataset.freshness = fresh;
    this.badge.textContent = FRESH_LABEL[fresh];
    this.code.textContent = `巡查 #${p.id}`;
    this.name.textContent = p.name || p.username || `#${p.id}`;
    this.name.title = p.username || '';
    const started = this.field('started');
    const startedFull = Number.isFinite(p.startedAt) ? formatTime(new Date(p.startedAt).toISOString()) : '—';
    // Today's start by its time; an older one with its date.
    started.textContent = startedFull.startsWith(dayValue(new Date(now))) ? clockTime(p.startedAt) : startedFull;
    started.title = startedFull;
    this.field('points').textContent = Number.isFinite(p.points) ? String(p.points) : '—';
    const endFull = Number.isFinite(p.endedAt) ? formatTime(new Date(p.endedAt).toISOString()) : '—';
    this.endedFact.hidden = !ended;
    this.field('ended').textContent = endFull.startsWith(dayValue(new Date(now))) ? clockTime(p.endedAt) : endFull;
    this.field('ended').title = endFull;
    // An ended patrol's duration is its own (to its end), not a clock's; without a known end it is not guessed.
    const end = Number.isFinite(p.endedAt) ? p.endedAt : ended ? NaN : now;
    this.field('duration').textContent = formatDuration(end - p.startedAt);
    this.field('distance').textContent = formatDistance(p.distanceM);
    const grids = this.field('grids');
    grids.textContent = Number.isFinite(p.grids) ? String(p.grids) : '—';
    grids.title = p.gridNames.join(', ');
    // Once ended, the last fix by its time (an age would have to keep counting).
    this.field('last-age').textContent = !p.last ? '—' : ended ? clockTime(p.last.at) : formatAge(p.last.at, now);
    this.field('last-age').title = p.last && Number.isFinite(p.last.at) ? formatTime(new Date(p.last.at).toISOString(), { seconds: true }) : '';
    this.field('accuracy').textContent = p.last && Number.isFinite(p.last.accuracy) ? `± ${Math.round(p.last.accuracy)} m` : '—';
    this.centre.disabled = !p.last;
  }

  /** askEnd reads patrol id (GET /api/v1/patrols/{id}) for the end and the figures the card has not been told. */
  async askEnd(id) {
    this.endAsked = id;
    try {
      const p = readPatrol(await getJSON(`/api/v1/patrols/${encodeURIComponent(id)}`));
      if (!p || this.patrolId !== id || !this.isOpen || this.layer.get(id)) return;
      this.patrol = mergePatrol(this.patrol, { ...p, id });
      this.layer.remember(id, this.patrol);
      this.render();
    } catch (err) {
      console.warn('patrol', id, err);
    }
  }

  labelTracksBtn() {
    this.tracksBtn.textContent = this.day.value === dayValue() ? '今日轨迹 · Today’s tracks' : `轨迹 ${this.day.value} · Tracks`;
  }

  /** showTracks draws the member's tracks of the chosen day: their patrols that day, each patrol's track. */
  async showTracks() {
    const p = this.patrol;
    if (!p) return;
    const seq = ++this.trackSeq;
    const day = this.day.value || dayValue();
    this.root.dataset.tracks = 'loading';
    this.note.textContent = '加载中 Loading…';
    try {
      const q = { day };
      const tz = browserZone();
      if (tz) q.tz = tz;
      if (Number.isFinite(p.userId)) q.user_id = String(p.userId);
      const patrols = (await fetchPatrols(q))
        .map(readPatrol)
        .filter((x) => x && x.id > 0)
        .sort((a, b) => a.startedAt - b.startedAt);
      if (!Number.isFinite(p.userId) && !patrols.some((x) => x.id === p.id)) patrols.push(p);
      const tracks = await Promise.all(patrols.map((x) => getJSON(`/api/v1/patrols/${encodeURIComponent(x.id)}/track`).then(trackPoints)));
      if (seq !== this.trackSeq) return;
      const seg = this.layer.showTracks(tracks);
      this.list.replaceChildren(
        ...patrols.map((x, i) =>
          el(
            'li',
            { dataset: { patrolId: String(x.id), points: String(tracks[i].length) } },
            el('span', 'mono', `${clockTime(x.startedAt)}–${Number.isFinite(x.endedAt) ? clockTime(x.endedAt) : '…'}`),
            el('span', '', formatDistance(x.distanceM)),
            el('span', 'dim', Number.isFinite(x.grids) ? `${x.grids} 网格 grids` : ''),
          ),
        ),
      );
      const n = tracks.reduce((s, t) => s + t.length, 0);
      this.root.dataset.tracks = n > 1 ? 'shown' : 'none';
      this.note.textContent = patrols.length === 0 ? `${day} 无巡查 · No patrol that day` : `${patrols.length} 次巡查 patrols · ${n} 个定位 fixes`;
      this.ramp.hidden = !(n > 1);
      this.field('ramp-from').textContent = clockTime(seg.from);
      this.field('ramp-to').textContent = clockTime(seg.to);
      this.clearBtn.hidden = false;
      if (seg.bbox) this.fit(seg.bbox);
    } catch (err) {
      if (seq !== this.trackSeq) return;
      this.root.dataset.tracks = 'error';
      this.note.textContent = `轨迹加载失败 · Tracks: ${describe(err)}`;
    }
  }

  /** fit frames box ([minLon, minLat, maxLon, maxLat]) clear of the card: beside it, or above it when it is a sheet. */
  fit(box) {
    const r = this.root.getBoundingClientRect();
    const m = this.map.getContainer().getBoundingClientRect();
    const sheet = r.width > m.width * 0.8;
    const padding = { top: 48, left: 56, right: sheet ? 40 : Math.min(m.width / 2, r.width + 36), bottom: sheet ? Math.min(m.height / 2, m.bottom - r.top + 24) : 48 };
    this.map.fitBounds([[box[0], box[1]], [box[2], box[3]]], { padding, maxZoom: 17, duration: 600 });
  }

  clearTracks() {
    this.trackSeq++;
    this.layer.clearTracks();
    delete this.root.dataset.tracks;
    this.list.replaceChildren();
    this.note.textContent = '';
    this.ramp.hidden = true;
    this.clearBtn.hidden = true;
  }
}
