/**
 * The re-identification attack of the group level, as the group page and the logs show it:
 * `<qc_dir>/logs/group_attack.tsv` (the rank-1 table, with the counts behind each rate) and
 * `<qc_dir>/logs/group_attack_probes.tsv` (one row per probe and protocol). The attack itself
 * runs in the engine (python/micanon/attack.py; protocol in docs/identity.md).
 */
import path from 'node:path';
import type { AttackRate, AttackReply } from '../engine/schemas.js';
import { html, type Html } from './html.js';
import { tsvText } from './tsv.js';

/** What the group level got from the attack: its result, or why it could not run. */
export type AttackOutcome = { result: AttackReply } | { error: string };

export function attackTsvPath(qcDir: string): string {
  return path.join(qcDir, 'logs', 'group_attack.tsv');
}

export function attackProbesTsvPath(qcDir: string): string {
  return path.join(qcDir, 'logs', 'group_attack_probes.tsv');
}

export const ATTACK_TSV_COLUMNS = [
  'protocol',
  'probes_of',
  'probes',
  'hits',
  'rate',
  'ci95_low',
  'ci95_high',
  'no_face',
  'nearest_atlas',
  'gallery_identities',
  'chance',
] as const;

export const ATTACK_PROBE_TSV_COLUMNS = [
  'protocol',
  'probe_of',
  'subject',
  'session',
  'input',
  'views',
  'face_views',
  'nearest',
  'nearest_score',
  'own_score',
  'hit',
  'scores',
] as const;

/** The rank-1 table as TSV: one row per (protocol, probe kind). */
export function attackTsv(result: AttackReply): string {
  return tsvText(
    ATTACK_TSV_COLUMNS,
    result.table.map((r) => [r.protocol, r.kind, r.probes, r.hits, r.rate, r.ci_low, r.ci_high, r.no_face, r.to_atlas, r.gallery_identities, r.chance]),
  );
}

/** Every probe's rank-1 answer as TSV. */
export function attackProbesTsv(result: AttackReply): string {
  return tsvText(
    ATTACK_PROBE_TSV_COLUMNS,
    result.probes.map((p) => {
      const scores = Object.entries(p.scores).map(([identity, score]) => `${identity}=${score}`);
      return [p.protocol, p.kind, p.subject, p.session, p.input, p.views, p.face_views, p.nearest, p.nearest_score, p.own_score, p.hit, scores.length ? scores.join(' ') : null];
    }),
  );
}

const percent = (value: number | null): string => (value === null ? 'n/a' : `${(100 * value).toFixed(0)}%`);

const KIND_LABELS: Record<AttackRate['kind'], string> = {
  input: 'inputs (unmodified)',
  deface: 'deface outputs',
  reface: 'reface outputs',
  warpface: 'warpface outputs',
};

const PROTOCOL_LABELS: Record<AttackRate['protocol'], string> = {
  cross_view: 'cross-view',
  same_view: 'same view',
};

function rateRow(r: AttackRate): Html {
  const interval = r.ci_low === null || r.ci_high === null ? 'n/a' : `${percent(r.ci_low)}–${percent(r.ci_high)}`;
  return html`<tr><td>${KIND_LABELS[r.kind]}</td><td>${PROTOCOL_LABELS[r.protocol]}</td><td class="num">${r.hits} / ${r.probes}</td><td class="num"><b>${percent(r.rate)}</b></td><td class="num">${interval}</td><td class="num">${r.no_face}</td><td class="num">${r.to_atlas}</td><td class="num">${percent(r.chance)}</td></tr>`;
}

/** The group page's section on the attack: the verdict first, then the rank-1 table and how it was made. */
export function attackSection(outcome: AttackOutcome | undefined): Html {
  if (outcome === undefined) return html``;
  if ('error' in outcome) {
    return html`<section id="attack"><h2>Re-identification attack</h2>
<div class="alert"><b>The attack did not run</b>: ${outcome.error}</div></section>`;
  }
  const { result } = outcome;
  const { gallery } = result;
  // Green only when the attack works on a gallery of more than two people; a warning otherwise.
  const tone = !result.conclusive ? '' : gallery.subjects.length > 2 ? ' ok' : ' warn';
  return html`<section id="attack"><h2>Re-identification attack</h2>
<div class="alert${tone}">${result.conclusive ? '' : html`<b>Inconclusive</b>: `}${result.verdict}.</div>
<table class="methods attack"><thead><tr><th>Probes</th><th>Protocol</th><th class="num">Re-identified</th><th class="num">Rank-1 rate</th><th class="num">95% CI (Wilson)</th><th class="num">No face</th><th class="num">Nearest: atlas face</th><th class="num">Chance</th></tr></thead><tbody>
${result.table.map(rateRow)}
</tbody></table>
<p class="muted">Face recognition (dlib's ResNet descriptor) matches each render set against a gallery of every input's renders (${gallery.subjects.length} participant(s), ${gallery.images} image(s), ${gallery.faces} faces) plus ${gallery.distractors.length > 0 ? html`the atlas face as a distractor` : 'no distractor'}: ${gallery.identities.length} identities. A probe is re-identified when its nearest identity (mean over its views of the nearest gallery face) is its own participant. <b>Cross-view</b>: a view meets the gallery's other views only, the same test for every row (an input never meets its own picture). <b>Same view</b>: an output's view against the gallery's same view only (input and output share the camera); inputs have none. A probe with no face in any view (${result.views.join(', ')}; profiles left out) counts as a miss. Published rates on real cohorts of 84-182 people: unmodified 83-98%, defacing 28-38%, mri_reface 8%. Rows and counts: <code>logs/group_attack.tsv</code>, one row per probe: <code>logs/group_attack_probes.tsv</code>.</p>
</section>`;
}
