// Footage exports (video.playback): POST /api/v1/exports for one camera and
// time range, then GET /api/v1/exports/{id} every 500 ms until it is done
// (a download link and the SHA-256: short, the full hash on hover) or failed
// (the error). Used by the footage view's selection and an incident's linked
// footage. followExport picks up an export already asked for (an incident's
// page shows again the exports made in this page session).
//
// A finished export shows whether an admin holds it (保全 · Held, kept past
// --export-max-age) and, for exports.manage (admins), Hold/Release and
// Delete (with a confirm); a deleted export's box says so and fires
// 'export-deleted' (bubbling) for the list that holds it. 播放 · Play opens
// the clip in a <video> (its length is the clip's, from 0).
//
// Test hooks: .export-status[data-status=queued|running|done|failed|error|deleted]
//   [data-export-id][data-sha256][data-held=true|false], with a.export-download and
//   .export-play → video.export-video when done; .export-held; .export-hold,
//   .export-delete → .export-delete-yes (admins).

import { can, describe, request } from './api.js';
import { el } from './dom.js';

const POLL_MS = 500;
const following = new WeakMap(); // box → the export id its one polling loop follows

function sizeText(bytes) {
  const n = Number(bytes);
  if (!Number.isFinite(n) || n <= 0) return '';
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/**
 * startExport posts an export of camera cameraId from..to (ms or ISO) into box
 * (an element it fills with the progress); incidentId links it to a case.
 * Polling stops when box leaves the page. onJob(job) gets the export once
 * the server took it. It resolves with the last state of the export (or null).
 */
export async function startExport(box, { cameraId, from, to, incidentId }, { onJob = () => {} } = {}) {
  const isoOf = (t) => (typeof t === 'number' ? new Date(t).toISOString() : t);
  following.delete(box); // a loop still following an earlier export into box stops
  box.className = 'export-status';
  box.hidden = false;
  const show = (status, ...children) => {
    box.dataset.status = status;
    box.replaceChildren(...children);
  };
  const bar = el('progress', { className: 'export-progress', max: 1, value: 0 });
  show('queued', el('span', 'export-label', '导出排队中 · Export queued…'), bar);
  const body = { camera_id: Number(cameraId), from: isoOf(from), to: isoOf(to) };
  if (incidentId) body.incident_id = Number(incidentId);
  let job;
  try {
    job = await request('POST', '/api/v1/exports', { json: body });
  } catch (err) {
    show('error', el('span', { className: 'form-error', role: 'alert' }, `无法导出 · Cannot export — ${describe(err)}`));
    return null;
  }
  onJob(job);
  return followExport(box, job);
}

/** isFinal: an export in this status changes no more. */
export const isFinal = (status) => status === 'done' || status === 'failed';

/**
 * followExport shows export job ({id, status?}) in box, polling until it is
 * done or failed (or box leaves the page); a job without a status is read
 * first. It resolves with the last state read.
 */
export async function followExport(box, job) {
  if (following.get(box) === job.id) return job; // already followed
  following.set(box, job.id);
  try {
    return await follow(box, job);
  } finally {
    if (following.get(box) === job.id) following.delete(box);
  }
}

async function follow(box, job) {
  box.hidden = false;
  box.dataset.exportId = String(job.id);
  const show = (status, ...children) => {
    box.dataset.status = status;
    box.replaceChildren(...children);
  };
  const bar = el('progress', { className: 'export-progress', max: 1, value: 0 });
  if (!job.status) {
    try {
      job = await request('GET', `/api/v1/exports/${encodeURIComponent(job.id)}`);
    } catch (err) {
      show('error', el('span', { className: 'form-error', role: 'alert' }, `无法查询导出 · Cannot read the export — ${describe(err)}`));
      return null;
    }
  }
  for (;;) {
    if (isFinal(job.status)) {
      showFinal(box, job);
      return job;
    }
    const p = Math.max(0, Math.min(1, Number(job.progress) || 0));
    bar.value = p;
    show(job.status === 'running' ? 'running' : 'queued', el('span', 'export-label', `${job.status === 'running' ? '导出中 · Exporting' : '导出排队中 · Export queued'} ${Math.round(p * 100)}%`), bar);
    await new Promise((r) => setTimeout(r, POLL_MS));
    if (!box.isConnected || following.get(box) !== job.id) return job; // gone, or following another export
    try {
      job = await request('GET', `/api/v1/exports/${encodeURIComponent(job.id)}`);
    } catch (err) {
      show('error', el('span', { className: 'form-error', role: 'alert' }, `无法查询导出 · Cannot read the export — ${describe(err)}`));
      return null;
    }
    if (following.get(box) !== job.id) return job;
  }
}

/** showFinal shows a done or failed export in box, with its hold state and the admin's controls. */
function showFinal(box, job) {
  box.dataset.status = job.status;
  box.dataset.held = String(Boolean(job.held));
  const fileURL = `/api/v1/exports/${encodeURIComponent(job.id)}/file`;
  const parts = [];
  if (job.status === 'done') {
    const sha = String(job.sha256 ?? '');
    box.dataset.sha256 = sha;
    const play = el('button', { type: 'button', className: 'btn btn-small export-play' }, '播放 · Play');
    play.addEventListener('click', () => {
      if (box.querySelector('video.export-video')) return;
      box.append(el('video', { className: 'export-video', controls: true, preload: 'metadata', src: fileURL }));
    });
    parts.push(
      el('span', 'export-label', `导出完成 · Export ready ${sizeText(job.bytes)}`.trim()),
      el('a', { className: 'btn btn-small export-download', href: fileURL, download: `gridwatch-export-${job.id}.mp4` }, '下载 · Download MP4'),
      play,
      el('span', 'export-sha', 'SHA-256 ', el('code', { className: 'export-sha-short', title: sha }, sha.slice(0, 12) + (sha.length > 12 ? '…' : ''))),
    );
  } else {
    parts.push(el('span', { className: 'form-error', role: 'alert' }, `导出失败 · Export failed — ${job.error || '—'}`));
  }
  if (job.held) {
    parts.push(el('span', { className: 'export-held', title: `${job.held_by ?? ''} ${job.held_at ?? ''}`.trim() }, '保全 · Held'));
  }
  if (can('exports.manage')) parts.push(...adminControls(box, job));
  box.replaceChildren(...parts);
}

/** adminControls: Hold/Release and Delete (after a confirm) for admins. */
function adminControls(box, job) {
  const id = encodeURIComponent(job.id);
  const fail = (what, err) => {
    box.querySelector('.export-admin-error')?.remove();
    box.append(el('span', { className: 'form-error export-admin-error', role: 'alert' }, `${what} — ${describe(err)}`));
  };
  const hold = el('button', { type: 'button', className: 'btn btn-small export-hold' }, job.held ? '解除保全 · Release' : '保全 · Hold');
  hold.addEventListener('click', async () => {
    hold.disabled = true;
    try {
      showFinal(box, await request('PUT', `/api/v1/exports/${id}/hold`, { json: { held: !job.held } }));
    } catch (err) {
      hold.disabled = false;
      fail('无法更改保全 · Cannot change the hold', err);
    }
  });
  const del = el('button', { type: 'button', className: 'btn btn-small btn-danger export-delete', disabled: Boolean(job.held), title: job.held ? '先解除保全 · Release the hold first' : '' }, '删除 · Delete');
  del.addEventListener('click', () => {
    const yes = el('button', { type: 'button', className: 'btn btn-small btn-danger export-delete-yes' }, '确认删除 · Delete for good');
    const no = el('button', { type: 'button', className: 'btn btn-small export-delete-no' }, '取消 · Cancel');
    const ask = el('span', 'export-confirm', yes, no);
    no.addEventListener('click', () => ask.replaceWith(del));
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      try {
        await request('DELETE', `/api/v1/exports/${id}`);
      } catch (err) {
        yes.disabled = false;
        fail('无法删除 · Cannot delete', err);
        return;
      }
      box.dataset.status = 'deleted';
      box.replaceChildren(el('span', 'export-label', `导出 #${job.id} 已删除 · Export deleted`));
      box.dispatchEvent(new CustomEvent('export-deleted', { bubbles: true, detail: { id: job.id } }));
    });
    del.replaceWith(ask);
  });
  return [hold, del];
}
