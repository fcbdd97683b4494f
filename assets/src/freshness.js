// Late answers. The dashboard loads a thing (a camera, the cameras of the
// map, a grid's lists, the recorder's state) while live events change it:
// a load read before an event may be answered after it, and two loads of
// the same thing may be answered out of order. Loads numbers the loads so
// that an answer older than one already shown is dropped; Heard keeps what
// events said of each thing, and when, so that what a load read before them
// does not undo it. (Events missed while the stream was down are replayed
// on reconnect, so what an event said stands until the next one.)

/** Loads orders the answers of overlapping loads of one thing. */
export class Loads {
  constructor() {
    this.asked = 0;
    this.applied = 0;
  }

  /** ask starts a load: its ticket {n, sent} (sent: performance.now()). */
  ask() {
    return { n: ++this.asked, sent: performance.now() };
  }

  /** take reports whether the answer to ticket t may be shown (no later load's was), and marks it shown. */
  take(t) {
    if (t.n < this.applied) return false;
    this.applied = t.n;
    return true;
  }

  /** pending reports whether a load asked has not been shown yet (in flight, dropped or failed). */
  get pending() {
    return this.applied < this.asked;
  }
}

/** Heard keeps what live events said of things, by id, and when. */
export class Heard {
  constructor() {
    this.byId = new Map();
  }

  /** note keeps value as what was heard of id, now. */
  note(id, value) {
    this.byId.set(Number(id), { value, at: performance.now() });
  }

  /** since returns what was heard of id after sent (performance.now()), or undefined. */
  since(id, sent) {
    const h = this.byId.get(Number(id));
    return h && h.at > sent ? h.value : undefined;
  }

  /** forget drops what was heard before sent: a load sent since has read it. */
  forget(sent) {
    for (const [id, h] of this.byId) if (h.at <= sent) this.byId.delete(id);
  }
}

/** withStatus returns camera c with the status st an event gave it ({status, reason, since}), if any. */
export function withStatus(c, st) {
  return st ? { ...c, status: st.status, status_reason: st.reason ?? '', status_since: st.since ?? null } : c;
}
