// Incident vocabulary shared by the map layer, the incident view, the grid
// panel and the statistics: statuses (GB/T 30428 case workflow), who may take
// each step, and the display names of priorities and sources.

import { serverNow } from './clock.js';

/** STATUSES lists every status in workflow order. */
export const STATUSES = ['reported', 'registered', 'dispatched', 'in_progress', 'handled', 'verified', 'closed', 'rejected', 'returned'];

export const STATUS_CN = {
  reported: '上报',
  registered: '立案',
  dispatched: '派遣',
  in_progress: '处置',
  handled: '反馈',
  verified: '核查',
  closed: '结案',
  rejected: '不予立案',
  returned: '退回',
};

export const STATUS_EN = {
  reported: 'reported',
  registered: 'registered',
  dispatched: 'dispatched',
  in_progress: 'in progress',
  handled: 'handled',
  verified: 'verified',
  closed: 'closed',
  rejected: 'rejected',
  returned: 'returned',
};

/** STATUS_COLOR is each status's colour on the map and in badges. */
export const STATUS_COLOR = {
  reported: '#fbbf24',
  registered: '#38bdf8',
  dispatched: '#818cf8',
  in_progress: '#c084fc',
  handled: '#2dd4bf',
  verified: '#34d399',
  closed: '#64748b',
  rejected: '#475569',
  returned: '#fb923c',
};

export const OVERDUE_COLOR = '#f87171';

/** OPEN_STATUSES are the statuses of a case still being worked. */
export const OPEN_STATUSES = STATUSES.filter((s) => s !== 'closed' && s !== 'rejected');
export const CLOSED_STATUSES = ['closed', 'rejected'];

export function isOpen(status) {
  return status !== 'closed' && status !== 'rejected';
}

/** statusLabel is e.g. "派遣 dispatched". */
export function statusLabel(status) {
  return STATUS_CN[status] ? `${STATUS_CN[status]} ${STATUS_EN[status]}` : String(status ?? '');
}

/**
 * permissionFor is the permission a step needs: the command centre registers,
 * rejects, dispatches, verifies, closes and sends handled work back; those on
 * the ground accept, return and report it handled.
 */
export function permissionFor(from, to) {
  if (to === 'in_progress') return from === 'handled' ? 'incidents.command' : 'incidents.handle';
  if (to === 'returned' || to === 'handled') return 'incidents.handle';
  return 'incidents.command';
}

/** actionLabel names the button that moves a case from → to. */
export function actionLabel(from, to) {
  switch (to) {
    case 'registered':
      return '立案 Register';
    case 'rejected':
      return '不予立案 Reject';
    case 'dispatched':
      return from === 'returned' ? '重新派遣 Re-dispatch' : '派遣 Dispatch';
    case 'in_progress':
      return from === 'handled' ? '返工 Rework' : '接单处置 Accept';
    case 'returned':
      return '退回 Return';
    case 'handled':
      return '反馈 Report handled';
    case 'verified':
      return '核查 Verify';
    case 'closed':
      return '结案 Close';
  }
  return statusLabel(to);
}

export const PRIORITIES = ['low', 'normal', 'high', 'urgent'];
export const PRIORITY_LABEL = { low: '低 Low', normal: '普通 Normal', high: '高 High', urgent: '紧急 Urgent' };

export const SOURCES = ['patrol', 'hotline', 'citizen', 'camera', 'sensor', 'superior'];
export const SOURCE_LABEL = {
  patrol: '巡查 Patrol',
  hotline: '12345 热线 Hotline',
  citizen: '市民 Citizen app',
  camera: '视频 Camera',
  sensor: '传感器 Sensor',
  superior: '上级交办 Superior',
};

export const STAFF_ROLE_LABEL = { leader: '网格长 Leader', volunteer: '志愿者 Volunteer', staff: '工作人员 Staff' };

/** overdueNow says whether an open case is past its deadline (the server's flag, or the clock). */
export function overdueNow(inc, now = serverNow()) {
  if (!inc || !isOpen(inc.status)) return false;
  if (inc.overdue) return true;
  const d = Date.parse(inc.deadline);
  return Number.isFinite(d) && d < now;
}

/** dueText is e.g. "剩余 3 h left" or "超期 2 d overdue" for a deadline. */
export function dueText(inc, now = serverNow()) {
  const d = Date.parse(inc?.deadline);
  if (!Number.isFinite(d)) return '';
  if (!isOpen(inc.status)) return '';
  const ms = d - now;
  const span = humanSpan(Math.abs(ms));
  return ms >= 0 && !inc.overdue ? `剩余 ${span} left` : `超期 ${span} overdue`;
}

function humanSpan(ms) {
  const min = Math.round(ms / 60000);
  if (min < 60) return `${Math.max(min, 1)} min`;
  const h = ms / 3600000;
  if (h < 48) return `${Math.round(h)} h`;
  return `${Math.round(h / 24)} d`;
}
