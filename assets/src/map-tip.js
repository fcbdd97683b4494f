// The map's hover: the grid outlined under the pointer and the tooltip that
// names what is there (a grid, a camera, a case or a cluster of cases).

import { LEVEL_CN, gridFeature } from './layers.js';
import { can } from './api.js';
import { statusLabel } from './status.js';

// The hover's picture of a camera is asked again after this long (the
// server keeps a snapshot 5 s).
const SNAP_FRESH_MS = 10000;

const span = (className, textContent) => Object.assign(document.createElement('span'), { className, textContent });

/** MapTip is the map's hover state: the grid highlighted and the tooltip. */
export class MapTip {
  constructor(map) {
    this.map = map;
    this.hoverId = null;
    this.tip = document.querySelector('#map').appendChild(document.createElement('div'));
    this.tip.className = 'hover-tip';
    this.tip.hidden = true;
  }

  /** setHover outlines grid id (null: none). */
  setHover(id) {
    if (id === this.hoverId) return;
    if (this.hoverId !== null) this.map.setFeatureState(gridFeature(this.hoverId), { hover: false });
    this.hoverId = id;
    if (id !== null) this.map.setFeatureState(gridFeature(id), { hover: true });
  }

  /** forget drops the highlighted grid without touching the map (its layers were drawn again). */
  forget() {
    this.hoverId = null;
  }

  /** hide hides the tooltip. */
  hide() {
    this.tip.hidden = true;
  }

  /** clear outlines nothing and hides the tooltip. */
  clear() {
    this.setHover(null);
    this.hide();
  }

  /** show puts the tooltip next to screen point with the given content. */
  show(point, ...content) {
    this.tip.replaceChildren(...content);
    this.tip.style.transform = `translate(${Math.round(point.x + 14)}px, ${Math.round(point.y + 16)}px)`;
    this.tip.hidden = false;
  }

  /** showGrid names grid f ({properties}) at point. */
  showGrid(point, f) {
    const lv = span('tip-level', LEVEL_CN[f.properties.level] ?? f.properties.level);
    lv.dataset.level = f.properties.level;
    this.show(point, lv, ` ${f.properties.name ?? ''}`, span('tip-code', f.properties.code ?? ''));
  }

  /**
   * showCamera names camera cam ({id, code, name, status}) at point, with its
   * latest picture (the snapshot, cached a few seconds by the server) when
   * it is online and the user may watch it.
   */
  showCamera(point, cam) {
    this.setHover(null);
    const parts = [span('tip-code', cam.code ?? ''), ` ${cam.name ?? ''}`];
    if (cam.status === 'online' && can('video.live') && cam.id !== undefined) {
      // One <img> per camera hovered: moving over it does not ask again.
      if (this.snap?.id !== cam.id || performance.now() - this.snap.at > SNAP_FRESH_MS) {
        const img = Object.assign(document.createElement('img'), { className: 'tip-snap', alt: '', decoding: 'async' });
        img.src = `/api/v1/cameras/${encodeURIComponent(cam.id)}/snapshot.jpg?stream=sub`;
        img.addEventListener('error', () => img.remove());
        this.snap = { id: cam.id, img, at: performance.now() };
      }
      parts.push(this.snap.img);
    }
    this.show(point, ...parts);
  }

  /** showCluster counts a cluster of cases (its properties p) at point. */
  showCluster(point, p) {
    this.setHover(null);
    this.show(point, `${p.point_count} 件事件 incidents`, ...(p.overdue > 0 ? [span('tip-overdue', `${p.overdue} 超期 overdue`)] : []));
  }

  /** showIncident shows case inc's status and title at point. */
  showIncident(point, inc) {
    this.setHover(null);
    const badge = span('status-badge', statusLabel(inc.status));
    badge.dataset.status = inc.status;
    this.show(point, badge, ` ${inc.title}`);
  }
}
