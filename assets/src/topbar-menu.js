// The top bar on a narrow screen (a tablet, a phone): below NARROW the bar
// keeps the brand and a ☰ button, and the figures, the tools, the connection
// status and the signed-in user drop down under it (#topbar-menu). On a wide
// screen the menu's box is no box (CSS display: contents) and none of this
// shows. The button is a disclosure: aria-expanded says whether the menu is
// open; opening it moves the focus to its first control, Esc closes it and
// gives the focus back to the button, as does a tap outside it (without the
// focus), a control chosen inside it, or the focus leaving it and the ☰
// button (Tab past its last control, Shift+Tab past the button).
//
// On a wide screen the bar must still fit: how wide it is depends on the
// role (an admin has two tools more) and the user's name. When it would run
// past the edge, .topbar gets data-fit="short", "lean", "icons" or "tight",
// each dropping more of what is least needed (see style.css); every control
// stays in the bar, by its id.

/** NARROW is the media query under which the top bar collapses into the menu. */
export const NARROW = '(max-width: 1100px)';

const FOCUSABLE = 'button:not([disabled]), a[href], input:not([disabled]), select:not([disabled]), [tabindex]:not([tabindex="-1"])';

/** visible reports whether node is rendered (not hidden by an attribute, display or an ancestor). */
function visible(node) {
  return node.getClientRects().length > 0 && !node.closest('[hidden]');
}

export class TopbarMenu {
  constructor({ button = document.querySelector('#menu-btn'), menu = document.querySelector('#topbar-menu') } = {}) {
    this.button = button;
    this.menu = menu;
    this.narrow = window.matchMedia(NARROW);
    button.addEventListener('click', () => (this.isOpen ? this.close({ focus: true }) : this.open()));
    // Capture: the map's own Esc handler (close the panel, …) must not see this Esc.
    document.addEventListener(
      'keydown',
      (ev) => {
        if (ev.key !== 'Escape' || !this.isOpen) return;
        ev.preventDefault();
        ev.stopPropagation();
        this.close({ focus: true });
      },
      true,
    );
    document.addEventListener(
      'pointerdown',
      (ev) => {
        if (this.isOpen && !menu.contains(ev.target) && !button.contains(ev.target)) this.close();
      },
      true,
    );
    // A press inside the menu on what takes no focus (its figures) moves the focus to the
    // page: that is no leaving. The flag lasts the press's own task.
    this.pressing = false;
    for (const type of ['pointerdown', 'mousedown']) {
      document.addEventListener(
        type,
        (ev) => {
          if (!this.holds(ev.target)) return;
          this.pressing = true;
          setTimeout(() => (this.pressing = false), 0);
        },
        true,
      );
    }
    // A tool chosen in the menu does its work on the map or in a dialog: the menu steps aside.
    menu.addEventListener('click', (ev) => {
      if (!this.isOpen) return;
      const b = ev.target.closest('button, a');
      if (b && menu.contains(b)) this.close();
    });
    // The focus leaving the menu or the ☰ button, for anything but the other, closes the menu.
    const leave = (ev) => {
      if (!this.isOpen) return;
      const to = ev.relatedTarget;
      if (to instanceof Node) {
        if (!this.holds(to)) this.close();
        return;
      }
      // No new target: the focus left the page (Shift+Tab past ☰ at the start of it), the
      // window lost it (the button keeps it: document.activeElement stays), or a press in the menu.
      if (this.pressing) return;
      setTimeout(() => {
        if (this.isOpen && !this.pressing && !this.holds(document.activeElement)) this.close();
      }, 0);
    };
    menu.addEventListener('focusout', leave);
    button.addEventListener('focusout', leave);
    this.narrow.addEventListener('change', () => {
      if (!this.narrow.matches) this.close();
      this.fitSoon();
    });
    this.bar = button.closest('.topbar');
    this.fitFrame = 0;
    window.addEventListener('resize', () => this.fitSoon());
    // The bar's parts change size as they fill in (figures, the user, tools shown by permission).
    const ro = new ResizeObserver(() => this.fitSoon());
    for (const part of menu.children) ro.observe(part);
    this.fit();
    // A dialog opened from the menu gives the focus back to its opener when it closes: a
    // tool inside the shut menu cannot take it, so the ☰ button does. ('close' does not
    // bubble; the capture phase still sees it. The dialog's own handler runs first.)
    document.addEventListener(
      'close',
      (ev) => {
        if (!(ev.target instanceof HTMLDialogElement) || ev.target.id === 'login') return;
        setTimeout(() => {
          const a = document.activeElement;
          if (this.narrow.matches && (!a || a === document.body || (this.menu.contains(a) && !this.isOpen))) this.button.focus({ preventScroll: true });
        }, 0);
      },
      true,
    );
  }

  fitSoon() {
    if (!this.fitFrame) {
      this.fitFrame = requestAnimationFrame(() => {
        this.fitFrame = 0;
        this.fit();
      });
    }
  }

  /** fit picks the roomiest form of the wide bar that stays on the screen. */
  fit() {
    const bar = this.bar;
    if (!bar) return;
    if (this.narrow.matches) {
      delete bar.dataset.fit;
      return;
    }
    const edge = bar.getBoundingClientRect().right;
    const overflows = () => [...this.menu.querySelectorAll('.tools > *, .stats')].some((e) => e.getBoundingClientRect().right > edge - 8);
    for (const level of ['', 'short', 'lean', 'icons', 'tight']) {
      if (level) bar.dataset.fit = level;
      else delete bar.dataset.fit;
      if (!overflows()) return;
    }
  }

  /** holds says whether node is the ☰ button or inside the menu. */
  holds(node) {
    return node instanceof Node && (this.menu.contains(node) || this.button.contains(node));
  }

  get isOpen() {
    return this.button.getAttribute('aria-expanded') === 'true';
  }

  open() {
    this.button.setAttribute('aria-expanded', 'true');
    document.body.classList.add('menu-open');
    const first = [...this.menu.querySelectorAll(FOCUSABLE)].find(visible);
    first?.focus({ preventScroll: true });
  }

  /** close shuts the menu; with focus the button takes the focus back (Esc, the button itself). */
  close({ focus = false } = {}) {
    if (!this.isOpen) return;
    const inside = this.menu.contains(document.activeElement);
    this.button.setAttribute('aria-expanded', 'false');
    document.body.classList.remove('menu-open');
    if (focus || inside) this.button.focus({ preventScroll: true });
  }
}
