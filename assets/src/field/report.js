// 上报 Report: where (the phone's position, its accuracy, a marker to drag
// on a small map, and the grid it falls in, shown before sending), what
// (category and subcategory, a title, a few words), photos from the camera
// (made smaller on the phone) and an optional voice note. Sending queues the
// report and its uploads in the outbox (a local id ties them together) and
// returns to the task list; the outbox files it when it can. The position
// is watched only while this screen is open, until the report is queued or
// the marker is placed by hand.

import { el } from '../dom.js';
import { getFresh, newKey } from './net.js';
import { accuracyText, watchPosition } from './position.js';
import { locate } from './grids.js';
import { addGrids, makeMap } from './mapview.js';
import { PhotoPicker, uploadDrafts } from './photopicker.js';
import { VoiceRecorder, extensionOf, voiceType } from './media.js';
import { bytes, clock, toast } from './ui.js';

const CATEGORY_KEY = 'gridwatch.field.category';

/** Report is the report screen. deps: outbox, grids (MyGrids), go(route). */
export class Report {
  constructor({ outbox, grids, go }) {
    this.outbox = outbox;
    this.grids = grids;
    this.go = go;
    this.form = document.querySelector('#report-form');
    this.posText = document.querySelector('#pos-text');
    this.posAcc = document.querySelector('#pos-acc');
    this.posGrid = document.querySelector('#pos-grid');
    this.mapBox = document.querySelector('#report-map');
    this.catMain = document.querySelector('#cat-main');
    this.catSub = document.querySelector('#cat-sub');
    this.title = document.querySelector('#report-title');
    this.desc = document.querySelector('#report-desc');
    this.error = document.querySelector('#report-error');
    this.submit = document.querySelector('#report-submit');
    this.voiceBtn = document.querySelector('#voice-btn');
    this.voiceLabel = document.querySelector('#voice-label');
    this.voiceBox = document.querySelector('#voice-note');
    this.voicePlay = document.querySelector('#voice-play');
    this.pos = null; // {lon, lat, accuracy, by: 'gps' | 'hand'}
    this.stopWatch = null;
    this.map = null;
    this.marker = null;
    this.mapping = null;
    this.categories = null;
    this.voice = null;
    this.recorder = null;
    this.locateSeq = 0;
    this.active = false;
    this.photos = new PhotoPicker(document.querySelector('#report-photos'), document.querySelector('#report-thumbs'), {
      onChange: () => {
        this.submit.disabled = this.photos.busy;
        if (this.photos.error) this.showError(this.photos.error);
      },
    });
    this.catMain.addEventListener('change', () => this.fillSub());
    document.querySelector('#pos-again').addEventListener('click', () => {
      this.pos = null;
      this.watch();
    });
    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.send();
    });
    this.setupVoice();
    outbox.addEventListener('sent', (ev) => {
      const { item, result } = ev.detail;
      if (item.kind === 'report') toast(`已上报 · Reported #${result?.id ?? '?'}: ${item.title ?? ''}`, { kind: 'ok', data: { incidentId: String(result?.id ?? '') } });
    });
    outbox.addEventListener('problem', (ev) => {
      const it = ev.detail.item;
      if (it?.kind === 'report') toast(`上报未被接受 · Report refused: ${it.error?.message ?? ''}`, { kind: 'warn', ms: 12000, action: { label: '查看 View', run: () => this.go('queue') } });
    });
  }

  /** enter: the screen is shown — watch the position, fill the categories. */
  enter() {
    this.active = true;
    this.loadCategories();
    if (!this.pos || this.pos.by === 'gps') this.watch();
    this.grids.load().then(() => this.showGrid()).catch(() => {});
  }

  /** leave: the screen is hidden — the position is no longer watched. */
  leave() {
    this.active = false;
    this.unwatch();
    if (this.recorder?.recording) this.stopVoice();
  }

  watch() {
    this.unwatch();
    this.posText.textContent = '正在定位 · Locating…';
    this.posAcc.textContent = '';
    this.stopWatch = watchPosition(
      (p) => this.setPos({ ...p, by: 'gps' }),
      (msg) => {
        if (!this.pos) this.posText.textContent = msg;
        this.drawMap(); // the map still lets the person place the point
      },
    );
    document.body.dataset.locating = 'report';
  }

  unwatch() {
    this.stopWatch?.();
    this.stopWatch = null;
    if (document.body.dataset.locating === 'report') delete document.body.dataset.locating;
  }

  setPos(p) {
    this.pos = p;
    this.posText.textContent = `${p.lat.toFixed(6)}, ${p.lon.toFixed(6)}${p.by === 'hand' ? ' · 手动 placed by hand' : ''}`;
    const acc = p.by === 'gps' ? accuracyText(p.accuracy) : { text: '', quality: '' };
    this.posAcc.textContent = acc.text;
    this.posAcc.dataset.quality = acc.quality;
    this.form.dataset.lon = String(p.lon);
    this.form.dataset.lat = String(p.lat);
    if (this.marker) this.marker.setLngLat([p.lon, p.lat]);
    if (p.by === 'gps' && this.map) this.map.easeTo({ center: [p.lon, p.lat], duration: 300 });
    this.drawMap();
    this.showGrid();
  }

  async drawMap() {
    if (this.mapping || this.map) return;
    this.mapping = (async () => {
      await this.grids.load().catch(() => null);
      const first = this.grids.fc?.features?.[0];
      const b = !this.pos && first ? this.grids.bbox(Number(first.id ?? first.properties?.id)) : null;
      const center = this.pos ? [this.pos.lon, this.pos.lat] : b ? [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2] : undefined;
      const m = await makeMap(this.mapBox, { center, zoom: 16 });
      if (!m) return;
      this.map = m.map;
      addGrids(this.map, this.grids.fc);
      const pin = el('div', { className: 'pin', title: '拖动调整 · drag to adjust' });
      this.marker = new m.ml.Marker({ element: pin, draggable: true, anchor: 'bottom-left', offset: [-4, 4] })
        .setLngLat(center ?? this.map.getCenter())
        .addTo(this.map);
      this.marker.on('dragend', () => this.placed(this.marker.getLngLat()));
      this.map.on('click', (ev) => this.placed(ev.lngLat));
    })();
    await this.mapping;
  }

  // placed: the person put the point on the map themselves; the position watch has done its job.
  placed(ll) {
    this.unwatch();
    this.setPos({ lon: ll.lng, lat: ll.lat, accuracy: null, by: 'hand' });
  }

  async showGrid() {
    if (!this.pos) return;
    const { lon, lat } = this.pos;
    const local = this.grids.fc ? this.grids.at(lon, lat) : undefined;
    if (local) this.setGrid(local.name, true, local.id);
    else if (local === null) this.setGrid('不在您的网格内 · outside your grids', false);
    if (!navigator.onLine) return;
    const seq = ++this.locateSeq;
    try {
      const chain = await locate(lon, lat);
      if (seq !== this.locateSeq) return;
      if (chain.length) this.setGrid(chain[0].name, true, chain[0].id);
      else this.setGrid('不在您的网格内 · outside your grids', false);
    } catch {
      // offline: the local answer stands
    }
  }

  setGrid(text, inside, id) {
    this.posGrid.textContent = `网格 Grid: ${text}`;
    this.posGrid.dataset.inside = String(inside);
    if (id) this.posGrid.dataset.gridId = String(id);
  }

  async loadCategories() {
    if (this.categories) return;
    try {
      const { body } = await getFresh('/api/v1/categories');
      this.categories = body?.categories ?? [];
    } catch (err) {
      this.showError(`无法读取类别 · Cannot read the categories: ${err.message}`);
      return;
    }
    const mains = this.categories.filter((c) => !c.parent_code);
    const last = localStorage.getItem(CATEGORY_KEY) || '';
    this.catMain.replaceChildren(el('option', { value: '' }, '— 选择 choose —'), ...mains.map((c) => el('option', { value: c.code }, `${c.name} ${c.code}`)));
    const lastMain = this.categories.find((c) => c.code === last)?.parent_code ?? '';
    this.catMain.value = lastMain;
    this.fillSub(last);
  }

  fillSub(selected = '') {
    const subs = (this.categories ?? []).filter((c) => c.parent_code === this.catMain.value);
    this.catSub.replaceChildren(el('option', { value: '' }, subs.length ? '— 选择 choose —' : '— 先选类别 choose a category —'), ...subs.map((c) => el('option', { value: c.code }, `${c.name} ${c.code}`)));
    this.catSub.value = subs.some((c) => c.code === selected) ? selected : '';
  }

  // ---- voice ------------------------------------------------------------------------

  setupVoice() {
    const type = voiceType();
    this.voiceBtn.hidden = !type;
    if (!type) return;
    this.voiceBtn.addEventListener('click', async () => {
      if (this.recorder?.recording) {
        this.stopVoice();
        return;
      }
      this.recorder = new VoiceRecorder(
        type,
        (ms) => {
          this.voiceLabel.textContent = `停止 Stop ${clock(ms)}`;
        },
        // At the cap the note is kept, as if Stop had been tapped.
        () => this.stopVoice(),
      );
      try {
        await this.recorder.start();
      } catch (err) {
        this.recorder = null;
        this.showError(`无法录音 · Cannot record: ${err.message}`);
        return;
      }
      this.voiceBtn.dataset.recording = 'true';
      this.voiceLabel.textContent = '停止 Stop 0:00';
    });
    document.querySelector('#voice-del').addEventListener('click', () => this.setVoice(null));
  }

  async stopVoice() {
    const rec = this.recorder;
    if (!rec || rec.stopping) return;
    rec.stopping = true;
    const blob = await rec.stop();
    this.voiceBtn.dataset.recording = 'false';
    this.voiceLabel.textContent = '录音 Voice';
    if (blob.size > 0) this.setVoice({ blob, name: `voice.${extensionOf(blob.type || rec.type)}` });
  }

  setVoice(v) {
    if (this.voice) URL.revokeObjectURL(this.voicePlay.src);
    this.voice = v;
    this.voiceBox.hidden = !v;
    this.voicePlay.src = v ? URL.createObjectURL(v.blob) : '';
    if (v) this.voiceBox.dataset.bytes = String(v.blob.size);
    this.voiceLabel.textContent = v ? `重录 Record again (${bytes(v.blob.size)})` : '录音 Voice';
  }

  // ---- sending ----------------------------------------------------------------------

  showError(text) {
    this.error.textContent = text;
    this.error.hidden = !text;
  }

  async send() {
    this.showError('');
    for (const f of this.form.querySelectorAll('[aria-invalid]')) f.removeAttribute('aria-invalid');
    const invalid = (input, msg) => {
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      this.showError(msg);
    };
    if (!this.pos) return this.showError('还没有位置：请等待定位或在地图上点选 · No position yet: wait for it, or tap the map');
    const category = this.catSub.value;
    if (!category) return invalid(this.catMain.value ? this.catSub : this.catMain, '请选择类别 · Choose a category');
    const title = this.title.value.trim();
    if (!title) return invalid(this.title, '请填写标题 · Enter a title');
    if (this.photos.busy || this.recorder?.recording) return this.showError('请稍候，照片或录音未完成 · Wait: a photo or the voice note is not ready');

    const local = `L:${newKey()}`;
    const body = {
      source: 'patrol',
      via: 'field',
      category,
      title,
      description: this.desc.value.trim(),
      location: { type: 'Point', coordinates: [round7(this.pos.lon), round7(this.pos.lat)] },
      reported_at: new Date().toISOString(),
    };
    if (this.pos.by === 'gps' && this.pos.accuracy >= 0) body.accuracy_m = Math.round(this.pos.accuracy * 10) / 10;
    const group = `inc:${local}`;
    const report = { kind: 'report', group, local, body, title, label: `上报 Report · ${title}` };
    const up = uploadDrafts({ photos: this.photos.photos, voice: this.voice, ref: local, group, parent: 0, label: title });
    this.submit.disabled = true;
    try {
      await this.outbox.add([report, ...up.drafts], up.blobs);
    } catch (err) {
      this.submit.disabled = false;
      this.showError(`无法保存到手机 · Cannot save on this phone: ${err.message}`);
      return;
    }
    this.submit.disabled = false;
    try {
      localStorage.setItem(CATEGORY_KEY, category);
    } catch {
      // not remembered: chosen again next time
    }
    this.reset();
    toast(navigator.onLine ? `发送中 · Sending: ${title}` : `已保存，联网后发送 · Saved, sent when online: ${title}`, { kind: navigator.onLine ? 'info' : 'new' });
    this.go('tasks');
  }

  reset() {
    this.title.value = '';
    this.desc.value = '';
    this.photos.clear();
    this.setVoice(null);
    this.pos = null;
    this.posText.textContent = '—';
    this.posAcc.textContent = '';
    this.posGrid.textContent = '网格 Grid: —';
    delete this.posGrid.dataset.inside;
    delete this.form.dataset.lon;
    delete this.form.dataset.lat;
  }
}

function round7(x) {
  return Math.round(x * 1e7) / 1e7;
}
