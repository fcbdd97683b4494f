// The case drawers: the incident view (one case) and the new-incident form,
// one open at a time, with the map's selection of the case and the pick mode
// of the form.

import { flyNear } from './map-setup.js';
import { IncidentForm } from './incident-form.js';
import { IncidentView } from './incident-view.js';
import { toast } from './toast.js';

const $ = (sel) => document.querySelector(sel);

/**
 * IncidentPanels opens cases and the new-incident form. deps: map, store,
 * incLayer, locator (the Locator: picking a place ends locating);
 * showGrid(id); gridLabel(id); gridOptions(); showError(err, context);
 * onFootage(cam, range, opener).
 */
export class IncidentPanels {
  constructor(deps) {
    const { map, store, gridLabel } = deps;
    this.deps = deps;
    this.view = new IncidentView($('#incident-view'), {
      store,
      onClose: () => this.close(),
      onShowGrid: (id) => deps.showGrid(id),
      onFly: (inc) => this.flyTo(inc),
      gridName: gridLabel,
      gridOptions: deps.gridOptions,
      onError: deps.showError,
      onFootage: deps.onFootage,
    });
    this.form = new IncidentForm($('#incident-new'), map, {
      onPicking: (on) => this.setPicking(on),
      onClose: () => this.closeForm(),
      onCreated: (inc) => {
        store.upsert(inc);
        this.closeForm();
        this.open(inc.id);
        toast(`已上报 Reported: ${inc.title}`, { detail: inc.grid ? gridLabel(inc.grid.id) || inc.grid.name : '无网格 unassigned' });
      },
    });
    $('#new-incident-btn').addEventListener('click', () => {
      if (this.view.isOpen) this.close();
      if (this.form.isOpen) this.form.setPicking(true);
      else this.form.open();
    });
  }

  /** flyTo flies to case inc's location. */
  flyTo(inc) {
    const c = inc?.location?.coordinates;
    if (!Array.isArray(c)) return;
    flyNear(this.deps.map, [c[0], c[1]], 16, 800);
  }

  /** open shows case id (flying to it when fly and its place is known). */
  open(id, { fly = false } = {}) {
    if (this.form.isOpen) this.closeForm();
    this.deps.incLayer.select(id);
    this.view.open(id);
    if (fly) {
      const known = this.deps.store.get(id);
      if (known) this.flyTo(known);
    }
  }

  close() {
    this.view.close();
    this.deps.incLayer.select(null);
  }

  closeForm() {
    this.form.close();
  }

  setPicking(on) {
    $('#pick-hint').hidden = !on;
    document.body.classList.toggle('locating', on);
    this.deps.map.getCanvas().style.cursor = on ? 'crosshair' : '';
    if (on && this.deps.locator.active) this.deps.locator.set(false);
  }
}
