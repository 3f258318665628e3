/**
 * How one QC record's checks read at a glance: the cells of a summary row, shared by the
 * participant page's overview and the group page, so both say the same thing the same way.
 */
import { badge, faceBadge, html, passBadge, type Html } from './html.js';
import type { QcRecord } from './records.js';

export function statusBadge(record: QcRecord): Html {
  return record.status === 'PASS' ? badge('pass', 'PASS') : badge('fail', 'FAILED');
}

/** `0.612 ≥ 0.400` style comparison, or null when there is nothing to compare (deface, no face found). */
export function identityComparison(record: QcRecord): string | null {
  const identity = record.checks.identity;
  if (!identity || identity.distance === null) return null;
  const relation = identity.distance > identity.threshold ? '>' : '≤';
  return `${identity.distance.toFixed(3)} ${relation} ${identity.threshold.toFixed(3)}`;
}

export function registrationBadge(record: QcRecord): Html {
  const { flag, pass } = record.checks.registration;
  if (!pass) return badge('fail', flag);
  return flag === 'ok' ? badge('pass', 'ok') : badge('warn', flag);
}

/** Column headers matching summaryCells. */
export const SUMMARY_HEADERS = ['Status', 'Brain voxels changed', 'Header', 'Face', 'Identity distance', 'Registration'] as const;

/** The `<td>` cells of one record's summary row (see SUMMARY_HEADERS). */
export function summaryCells(record: QcRecord): Html {
  const { checks } = record;
  const brain = checks.brain_voxels_changed;
  const identity = identityComparison(record);
  return html`<td>${statusBadge(record)}</td>
<td class="num">${brain.pass ? '' : html`${passBadge(false)} `}${brain.value.toLocaleString('en-US')}</td>
<td>${passBadge(checks.header.pass)}</td>
<td>${faceBadge(checks.face)}</td>
<td class="num">${identity ?? html`<span class="muted">n/a</span>`}</td>
<td>${registrationBadge(record)}</td>`;
}
