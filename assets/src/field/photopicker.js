// The photos of a form (a report, a task reported handled): taken with the
// phone's camera through a file input, each made smaller at once (media.js)
// and shown as a thumbnail with its size before and after.

import { el } from '../dom.js';
import { shrinkPhoto } from './media.js';
import { bytes } from './ui.js';

/** MAX_PHOTOS caps the photos of one form. */
export const MAX_PHOTOS = 9;

/**
 * PhotoPicker keeps the photos picked with input (an <input type=file>) and
 * lists them in thumbs (a <ul>). photos: [{blob, name, originalBytes, url}].
 * onChange() after every change; busy is true while photos are being shrunk.
 */
export class PhotoPicker {
  constructor(input, thumbs, { onChange = () => {} } = {}) {
    this.input = input;
    this.thumbs = thumbs;
    this.onChange = onChange;
    this.photos = [];
    this.pending = 0;
    this.error = '';
    input.addEventListener('change', () => this.take([...(input.files ?? [])]));
  }

  get busy() {
    return this.pending > 0;
  }

  async take(files) {
    this.input.value = ''; // the same photo may be picked again after removing it
    // Room counts the photos still being made smaller too: two quick picks do not pass the cap.
    const room = Math.max(0, MAX_PHOTOS - this.photos.length - this.pending);
    this.error = files.length > room ? `最多 ${MAX_PHOTOS} 张照片 · at most ${MAX_PHOTOS} photos` : '';
    const list = files.filter((f) => f.type.startsWith('image/') || f.type === '').slice(0, room);
    this.pending += list.length;
    this.thumbs.dataset.busy = 'true';
    this.onChange();
    const round = this.cleared ?? 0;
    for (const f of list) {
      try {
        const shrunk = await shrinkPhoto(f);
        if ((this.cleared ?? 0) !== round) continue; // the form was cleared meanwhile
        const name = shrunk.resized ? `${(f.name || 'photo').replace(/\.[^.]+$/, '')}.jpg` : f.name || 'photo.jpg';
        this.photos.push({ blob: shrunk.blob, name, originalBytes: shrunk.originalBytes, width: shrunk.width, height: shrunk.height, url: URL.createObjectURL(shrunk.blob) });
      } catch (err) {
        this.error = `无法读取照片 · Cannot read a photo: ${err?.message ?? err}`;
      } finally {
        this.pending--;
      }
      this.render();
    }
    if (this.pending === 0) delete this.thumbs.dataset.busy;
    this.render();
  }

  render() {
    this.thumbs.replaceChildren(
      ...this.photos.map((p, i) => {
        const remove = el('button', { type: 'button', className: 'remove', 'aria-label': '删除照片 Remove photo' }, '×');
        remove.addEventListener('click', () => this.remove(i));
        const size = p.originalBytes !== p.blob.size ? `${bytes(p.originalBytes)} → ${bytes(p.blob.size)}` : bytes(p.blob.size);
        return el('li', { dataset: { bytes: String(p.blob.size), originalBytes: String(p.originalBytes) } }, el('img', { src: p.url, alt: p.name }), el('span', 'size', size), remove);
      }),
    );
    this.onChange();
  }

  remove(i) {
    const [p] = this.photos.splice(i, 1);
    if (p) URL.revokeObjectURL(p.url);
    this.render();
  }

  /** clear forgets every photo (queued, or the form cancelled) and lets go of their previews. */
  clear() {
    for (const p of this.photos) URL.revokeObjectURL(p.url);
    this.photos = [];
    this.cleared = (this.cleared ?? 0) + 1; // photos still being made smaller are dropped when done
    this.error = '';
    this.render();
  }
}

/**
 * uploadDrafts turns photos (and a voice note) into outbox drafts and blobs:
 * each an upload of incident ref in group, belonging to the item at index
 * parent of the same batch. label names what they belong to.
 */
export function uploadDrafts({ photos = [], voice = null, ref, group, parent, label }) {
  const drafts = [];
  const blobs = [];
  const all = [...photos.map((p) => ({ blob: p.blob, name: p.name, what: '照片 Photo' })), ...(voice ? [{ blob: voice.blob, name: voice.name, what: '语音 Voice note' }] : [])];
  all.forEach((a, i) => {
    const id = `b${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}${i}`;
    blobs.push({ id, blob: a.blob });
    drafts.push({ kind: 'upload', group, incident: ref, blob: id, filename: a.name, total: a.blob.size, parent, label: `${a.what} ${i + 1}/${all.length} · ${label}` });
  });
  return { drafts, blobs };
}
