// The map legend folds to its title ("图例 Legend", a button with
// aria-expanded): open by default on a wide screen, as it always was, and
// folded by default on a narrow or short one (a tablet, a phone), where it
// would cover much of the map. Once the person has opened or folded it, their
// choice holds for the page; until then it follows the screen (a rotated
// tablet). The state is on #legend as data-collapsed="true|false".

/** LEGEND_FOLDED is the media query under which the legend starts folded. */
export const LEGEND_FOLDED = '(max-width: 1100px), (max-height: 640px)';

export class Legend {
  constructor({ root = document.querySelector('#legend'), toggle = document.querySelector('#legend-toggle'), body = document.querySelector('#legend-body') } = {}) {
    Object.assign(this, { root, toggle, body });
    this.chosen = false;
    this.folded = window.matchMedia(LEGEND_FOLDED);
    this.set(!this.folded.matches);
    toggle.addEventListener('click', () => {
      this.chosen = true;
      this.set(!this.expanded);
    });
    this.folded.addEventListener('change', () => {
      if (!this.chosen) this.set(!this.folded.matches);
    });
  }

  get expanded() {
    return this.toggle.getAttribute('aria-expanded') === 'true';
  }

  set(expanded) {
    this.toggle.setAttribute('aria-expanded', String(expanded));
    this.body.hidden = !expanded;
    this.root.dataset.collapsed = String(!expanded);
  }
}
