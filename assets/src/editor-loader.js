// Loading the boundary editor on first use: editor.js and terra-draw are their
// own chunk (import()), so viewers never fetch them.

import { can } from './api.js';

/**
 * EditorLoader starts the editor for a grid, loading it the first time.
 * deps: the Editor's ({map, showProblemAt, clearProblemMarker, onClose,
 * onSaved}); showError(err, context); beforeOpen(id) runs once the editor is
 * loaded, before it opens grid id.
 */
export class EditorLoader {
  constructor({ showError, beforeOpen, ...editorDeps }) {
    this.showError = showError;
    this.beforeOpen = beforeOpen;
    this.editorDeps = editorDeps;
    /** editor is the Editor once loaded, else null. */
    this.editor = null;
    this.loading = null;
  }

  /** start opens grid id in the editor (grids.write only); button is disabled meanwhile. */
  async start(id, button) {
    if (!can('grids.write')) return;
    button.disabled = true;
    try {
      this.loading ??= import('./editor.js').then(({ Editor }) => new Editor(this.editorDeps));
      this.editor = await this.loading;
      this.beforeOpen(id);
      await this.editor.open(id);
    } catch (err) {
      this.loading = null;
      this.showError(err, 'Editor');
    } finally {
      button.disabled = false;
    }
  }
}
