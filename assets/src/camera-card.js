// The camera card: a camera picked on the map or in a grid's list, shown in
// the panel and kept fresh (its live figures) while it shows; with several
// nodes, which node pulls it; for a GB/T 28181 channel, its device.

import { can, getJSON } from './api.js';
import { el } from './dom.js';
import { Loads } from './freshness.js';
import { gbChannelOf } from './gb-url.js';
import { flyNear } from './map-setup.js';

const REFRESH_MS = 10000;

/**
 * CameraCard shows one camera in the panel. deps: map, camLayer, panel,
 * showError(err, context); begin() starts a new selection (the grid and the
 * locate marker go) and returns its seq; current(seq) reports whether that
 * selection is still the one on show; onGBDevice(id) opens GB/T 28181 device
 * id in the admin view.
 */
export class CameraCard {
  constructor(deps) {
    this.deps = deps;
    this.timer = 0;
    // The card's loads: an answer after a later one's is dropped.
    this.loads = new Loads();
  }

  /** open shows camera id (flying to it when fly). */
  async open(id, { fly = false } = {}) {
    const { map, camLayer, panel, current } = this.deps;
    const seq = this.deps.begin();
    let cam = camLayer.get(id);
    const cached = !!cam;
    if (!cam) {
      const sent = performance.now();
      try {
        cam = await getJSON(`/api/v1/cameras/${encodeURIComponent(id)}`);
      } catch (err) {
        if (current(seq)) this.deps.showError(err, `Camera ${id}`);
        return;
      }
      if (!current(seq)) return;
      cam = panel.fresher(cam, sent);
    }
    camLayer.select(cam.id);
    panel.showCamera(cam);
    showNode(panel.camera, cam);
    this.showGB(panel.camera, cam);
    document.title = `${cam.code ?? ''} ${cam.name ?? ''} — Gridwatch`;
    const c = cam.location?.coordinates;
    if (fly && Array.isArray(c)) flyNear(map, [c[0], c[1]], 16.5, 800);
    // The list has no live figures: the camera itself has them (streams), refreshed while the card shows.
    if (cached) this.refresh(cam.id, seq);
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      if (!current(seq) || !panel.isOpen) clearInterval(this.timer);
      else this.refresh(cam.id, seq);
    }, REFRESH_MS);
  }

  /** refresh reloads GET /api/v1/cameras/{id} into the card if it still shows that camera (selection seq). */
  async refresh(id, seq) {
    const { panel, current } = this.deps;
    const t = this.loads.ask();
    try {
      let cam = await getJSON(`/api/v1/cameras/${encodeURIComponent(id)}`);
      if (!current(seq) || Number(panel.shownCamera?.id) !== Number(id) || !this.loads.take(t)) return;
      // Events heard while it was on its way are newer than what it says.
      cam = panel.fresher(cam, t.sent);
      panel.showCamera(cam);
      showNode(panel.camera, cam);
      this.showGB(panel.camera, cam);
    } catch (err) {
      if (current(seq)) console.warn('camera', err);
    } finally {
      if (current(seq)) panel.camera.dataset.answered = String(t.n); // a hook: the card has taken (or dropped) load n
    }
  }

  /**
   * showGB says in the card (#camera-card) that camera cam is a GB/T 28181
   * channel, and of which device: a link to the device in the admin view for
   * a user who may manage the devices (cameras.write). Any other camera shows
   * none. Hook: [data-field="cam-gb"][data-device][data-channel] with
   * [data-field="cam-gb-device"] (a button when it links).
   */
  showGB(card, cam) {
    let line = card.querySelector('[data-field="cam-gb"]');
    if (!line) {
      line = el('p', { className: 'cam-gb', dataset: { field: 'cam-gb' } });
      card.querySelector('.detail-name').after(line);
    }
    const gb = gbChannelOf(cam.main_url);
    line.hidden = !gb;
    line.dataset.device = gb?.device ?? '';
    line.dataset.channel = gb?.channel ?? '';
    if (!gb) {
      line.replaceChildren();
      return;
    }
    const linked = can('cameras.write') && this.deps.onGBDevice;
    const device = linked
      ? el('button', { type: 'button', className: 'link-btn mono', dataset: { field: 'cam-gb-device' }, title: '在管理视图中打开此设备 · Open this device in the admin view' }, gb.device)
      : el('span', { className: 'mono', dataset: { field: 'cam-gb-device' } }, gb.device);
    if (linked) device.addEventListener('click', () => this.deps.onGBDevice(gb.device));
    line.replaceChildren(el('span', 'cam-gb-kind', '国标通道 GB/T 28181 channel'), ' · 设备 device ', device);
  }
}

/**
 * showNode says in the card (#camera-card) which node pulls camera cam — its
 * "node", a node's id, or null while none does — in a small line under the
 * name; a camera without the field (an older server) shows none.
 */
function showNode(card, cam) {
  let line = card.querySelector('[data-field="cam-node"]');
  if (!line) {
    line = document.createElement('p');
    line.className = 'cam-node';
    line.dataset.field = 'cam-node';
    card.querySelector('.detail-name').after(line);
  }
  line.hidden = !('node' in cam);
  line.dataset.node = cam.node ?? '';
  line.textContent = line.hidden ? '' : cam.node ? `由节点 ${cam.node} 拉流 · pulled by ${cam.node}` : '无节点拉流 · not pulled';
}
