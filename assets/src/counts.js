// The header's figures: grids by level, open and overdue cases, and the grid
// shading (choropleth) by open or overdue count with its ramp.


const $ = (sel) => document.querySelector(sel);
const numberFmt = new Intl.NumberFormat('en-US');
const numberOrDash = (n) => (Number.isFinite(n) ? numberFmt.format(n) : '—');

/** showGridCounts shows the count of each level of prepared grids g. */
export function showGridCounts(g) {
  $('#grid-count').textContent = numberFmt.format(g.counts.grid);
  $('#stats').title = `${numberFmt.format(g.total)} areas in all`;
  // Only the header's figures: [data-count] elsewhere (the editor's moves,
  // footage lists) is other code's, and writing it would wipe their contents.
  for (const node of document.querySelectorAll('#stats [data-level-count]')) {
    node.textContent = numberFmt.format(g.counts[node.dataset.levelCount] ?? 0);
  }
}

/**
 * IncidentCounts shows the open and overdue counts of store, and the shading
 * of incLayer (an IncidentLayer) with its ramp; the [data-choropleth] buttons
 * switch it.
 */
export class IncidentCounts {
  constructor(store, incLayer) {
    this.store = store;
    this.incLayer = incLayer;
    this.frame = 0;
    setInterval(() => this.show(), 60000); // deadlines pass
    for (const b of document.querySelectorAll('[data-choropleth]')) b.addEventListener('click', () => this.setChoropleth(b.dataset.choropleth));
  }

  /** show draws the counts at the next frame (once however often it is called before). */
  show() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      const c = this.store.counts();
      $('#open-count').textContent = numberOrDash(c.open);
      $('#overdue-count').textContent = numberOrDash(c.overdue);
      $('#overdue-count').closest('.stat').dataset.hot = String(c.overdue > 0);
      $('#open-count').closest('.stat').title = `${c.unassigned} 件无网格 unassigned${this.store.truncated ? ' · only the newest are loaded' : ''}`;
      this.showRamp();
    });
  }

  /** setChoropleth shades the grids by mode (see IncidentLayer.setChoropleth). */
  setChoropleth(mode) {
    this.incLayer.setChoropleth(mode);
    for (const b of document.querySelectorAll('[data-choropleth]')) b.setAttribute('aria-pressed', String(b.dataset.choropleth === this.incLayer.mode));
    this.showRamp();
  }

  showRamp() {
    const ramp = $('#choro-ramp');
    ramp.hidden = this.incLayer.mode === 'none';
    ramp.dataset.mode = this.incLayer.mode;
    $('#ramp-max').textContent = String(this.incLayer.maxCount() || 0);
  }
}
