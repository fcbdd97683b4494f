// The grids of the signed-in member's scope (GET /api/v1/grids.geojson,
// cached by the service worker): drawn on the maps, and used to tell,
// before sending and without a network, which grid a point falls in.

import { bboxOf, pointInGeometry } from '../geometry.js';
import { getJSON } from '../api.js';
import { getFresh } from './net.js';

const RANK = { district: 0, street: 1, community: 2, grid: 3 };

/** MyGrids holds the scope's grids once loaded. */
export class MyGrids {
  constructor() {
    this.fc = null;
    this.byId = new Map();
    this.loading = null;
  }

  /** load reads the scope's grids (once; again with force). */
  load({ force = false } = {}) {
    if (!this.loading || force) {
      this.loading = getFresh('/api/v1/grids.geojson').then(({ body }) => {
        this.fc = body;
        this.byId = new Map((body?.features ?? []).map((f) => [Number(f.id ?? f.properties?.id), f]));
        return this;
      });
      this.loading.catch(() => {
        this.loading = null;
      });
    }
    return this.loading;
  }

  /**
   * at returns the most specific grid of the scope covering [lon, lat]
   * ({id, code, name, level}), or null; a point on a shared edge goes to the
   * lowest code, as the server decides.
   */
  at(lon, lat) {
    let best = null;
    for (const f of this.fc?.features ?? []) {
      const p = f.properties ?? {};
      if (!pointInGeometry([lon, lat], f.geometry)) continue;
      const rank = RANK[p.level] ?? -1;
      if (!best || rank > best.rank || (rank === best.rank && String(p.code) < best.code)) {
        best = { id: Number(f.id ?? p.id), code: String(p.code), name: String(p.name), level: p.level, rank };
      }
    }
    return best;
  }

  /** within returns the features of grid id and its descendants. */
  within(id) {
    const root = this.byId.get(Number(id));
    if (!root) return [];
    const out = [root];
    const ids = new Set([Number(id)]);
    // Parents come before children in no particular order: sweep until nothing is added.
    for (let added = true; added; ) {
      added = false;
      for (const f of this.fc?.features ?? []) {
        const fid = Number(f.id ?? f.properties?.id);
        if (!ids.has(fid) && ids.has(Number(f.properties?.parent_id))) {
          ids.add(fid);
          out.push(f);
          added = true;
        }
      }
    }
    return out;
  }

  /** bbox of grid id (and its descendants): [w, s, e, n], or null. */
  bbox(id) {
    const b = [Infinity, Infinity, -Infinity, -Infinity];
    for (const f of this.within(id)) bboxOf(f.geometry, b);
    return Number.isFinite(b[0]) ? b : null;
  }
}

/** locate asks the server which of my grids covers [lon, lat] (most specific first); [] outside them. */
export async function locate(lon, lat) {
  const r = await getJSON(`/api/v1/locate?lon=${lon.toFixed(7)}&lat=${lat.toFixed(7)}`);
  return Array.isArray(r?.grids) ? r.grids : [];
}
