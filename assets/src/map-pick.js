// Picking one point on the map for a dialog that had to step aside (the
// admin view's "Place" of a GB/T 28181 channel): start() shows a hint over
// the map and resolves with the next click's position, or null when the
// person cancels (the hint's Cancel, or Esc).
//
// Test hooks: document.body.dataset.mapPick (set while picking),
// .map-pick-hint with [data-field=map-pick-cancel].

import { el } from './dom.js';

/** MapPicker takes one click on the map; main.js hands it the clicks while active. */
export class MapPicker {
  constructor(map) {
    this.map = map;
    this.resolve = null;
    this.hint = null;
  }

  get active() {
    return this.resolve !== null;
  }

  /** start asks for one point (hint: what to click); a pick already waiting is cancelled. */
  start(hint) {
    this.finish(null);
    const cancel = el('button', { type: 'button', className: 'btn btn-small', dataset: { field: 'map-pick-cancel' } }, '取消 Cancel (Esc)');
    cancel.addEventListener('click', () => this.cancel());
    this.hint = el('div', { className: 'map-pick-hint', role: 'status' }, el('span', 'map-pick-text', hint), cancel);
    document.body.append(this.hint);
    document.body.dataset.mapPick = 'true';
    this.map.getCanvas().style.cursor = 'crosshair';
    return new Promise((resolve) => {
      this.resolve = resolve;
    });
  }

  /** at ends the pick with a map position (a click while active). */
  at(lngLat) {
    this.finish({ lng: lngLat.lng, lat: lngLat.lat });
  }

  cancel() {
    this.finish(null);
  }

  finish(value) {
    const done = this.resolve;
    this.resolve = null;
    this.hint?.remove();
    this.hint = null;
    delete document.body.dataset.mapPick;
    if (done) {
      this.map.getCanvas().style.cursor = '';
      done(value);
    }
  }
}
