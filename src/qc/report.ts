/**
 * The participant QC page, `<qc_dir>/sub-XX.html` (fMRIPrep style; qc_dir: --qc-dir, by default
 * output_dir): a summary at the top (counts, FAILED outputs first), then per session, per input
 * image, per method the before/after surface renders, mid-sagittal slices, mask and registration
 * overlays and the table of checks.
 *
 * Figures are referenced by relative links (`sub-XX/figures/...png`, as the QC record gives
 * them), not embedded: a dataset's renders run to hundreds of megabytes, and a page of links
 * opens at once and can be copied with its folder. A render the record lacks, or whose file is
 * missing, shows as a placeholder box, so every link on the page resolves.
 */
import { access } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../bids/atomic.js';
import { packageVersion } from '../version.js';
import { identityComparison, registrationBadge, statusBadge, SUMMARY_HEADERS, summaryCells } from './checks.js';
import { anchorId, badge, faceBadge, figure, fileUrl, html, pageDocument, passBadge, type Html } from './html.js';
import {
  compareFailedFirst,
  compareRecords,
  qcOutputKey,
  qcRecordSchema,
  qcSessionName,
  RENDER_VIEWS,
  SLICE_FIGURES,
  type QcRecord,
  type UnreadableQcRecord,
} from './records.js';
import { type PageValidation, validationSection } from './validation.js';

/** Every view the record names has its label (a view the engine adds unnamed shows its name). */
const VIEW_LABELS: Record<(typeof RENDER_VIEWS)[number], string> & Record<string, string> = {
  front: 'Front',
  left34: 'Left ¾',
  right34: 'Right ¾',
  left: 'Left',
  right: 'Right',
  low: 'Below',
  high: 'Above',
  left_low: 'Below, left',
  right_low: 'Below, right',
};

const SLICE_LABELS: Record<string, string> = {
  input_sagittal: 'Mid-sagittal, before',
  output_sagittal: 'Mid-sagittal, after',
  masks_overlay: 'Brain guard and face masks',
  registration_overlay: 'Atlas registered to the input',
};

/** The same figures when the input has no head surface and they are projections (e.g. a TOF angiogram). */
const PROJECTION_LABELS: Record<string, string> = {
  input_sagittal: 'Sagittal MIP, before',
  output_sagittal: 'Sagittal MIP, after',
  masks_overlay: 'Brain guard and face masks over the MIP (projected outlines)',
  registration_overlay: 'Atlas registered to the input (axial MIP)',
};

const viewLabel = (view: string): string => VIEW_LABELS[view] ?? view;

/** `<qc_dir>/sub-XX.html` */
export function participantReportPath(qcDir: string, subject: string): string {
  return path.join(qcDir, `sub-${subject}.html`);
}

/** Where a participant's figures belong: `<qc_dir>/sub-XX/figures` (render paths relative to qc_dir point here). */
export function participantFigureDir(qcDir: string, subject: string): string {
  return path.join(qcDir, `sub-${subject}`, 'figures');
}

/** The fragment id of one output's section on its participant page. */
export function outputAnchor(record: QcRecord): string {
  return anchorId(qcOutputKey(record));
}

/** Known keys first in their canonical order, then any others in the order first seen. */
function ordered(known: readonly string[], maps: ReadonlyArray<Record<string, unknown>>): string[] {
  const present = new Set(maps.flatMap((m) => Object.keys(m)));
  return [...known, ...[...present].filter((k) => !known.includes(k))];
}

/** Every render path a set of records names (relative to qc_dir). */
export function renderPaths(records: readonly QcRecord[]): string[] {
  return records.flatMap((r) => [
    ...Object.values(r.renders.input),
    ...Object.values(r.renders.output),
    ...Object.values(r.renders.slices),
    ...Object.values(r.renders.atlas ?? {}),
  ]);
}

/** Names of the checks that failed, for the line under a FAILED output's title. */
function failedChecks(record: QcRecord): string[] {
  const { checks } = record;
  return [
    !checks.brain_voxels_changed.pass && 'brain voxels changed',
    !checks.header.pass && 'header',
    !checks.face.pass && 'face',
    !checks.registration.pass && 'registration',
  ].filter((name): name is string => typeof name === 'string');
}

interface PageContext {
  /** Render paths (relative to qc_dir) whose files exist. */
  existing: ReadonlySet<string>;
}

function renderFigure(ctx: PageContext, relative: string | undefined, caption: string): Html {
  if (relative === undefined) return figure(null, caption, 'not rendered');
  if (!ctx.existing.has(relative)) return figure(null, caption, 'render file missing');
  return figure(fileUrl(relative), caption, '');
}

function renderStrip(ctx: PageContext, record: QcRecord): Html {
  const views = ordered(RENDER_VIEWS, [record.renders.input, record.renders.output]);
  const row = (label: string, renders: Record<string, string>, when: string) =>
    html`<div class="row-label">${label}</div>${views.map((v) => renderFigure(ctx, renders[v], `${viewLabel(v)}, ${when}`))}`;
  return html`<div class="strip" style="--views: ${views.length}">
<div></div>${views.map((v) => html`<div class="col-label">${viewLabel(v)}</div>`)}
${row('Before', record.renders.input, 'before')}
${row('After', record.renders.output, 'after')}
${record.renders.atlas ? row('Atlas', record.renders.atlas, 'the atlas face in this camera') : ''}
</div>`;
}

function sliceFigures(ctx: PageContext, record: QcRecord): Html {
  const names = ordered(SLICE_FIGURES, [record.renders.slices]);
  const labels = record.renders.projection === 'mip' ? PROJECTION_LABELS : SLICE_LABELS;
  return html`<div class="slices">${names.map((name) => renderFigure(ctx, record.renders.slices[name], labels[name] ?? name))}</div>`;
}

function identityRow(record: QcRecord): Html {
  const identity = record.checks.identity;
  if (!identity) {
    return html`<tr><th>Identity</th><td>${badge('none', 'n/a')}</td><td class="muted">not compared (${record.method} leaves no face to recognise)</td></tr>`;
  }
  if (identity.distance === null) {
    const why = identity.views_blind?.length ? 'removing the face does not move the descriptor past the threshold in any view: no view can tell' : 'no face found to compare';
    return html`<tr><th>Identity</th><td>${badge('none', 'n/a')}</td><td class="muted">${why} · threshold ${identity.threshold.toFixed(3)} · <code>${identity.model}</code></td></tr>`;
  }
  const pass = identity.distance > identity.threshold;
  // Scale so the threshold sits mid-bar and the distance fits.
  const scale = Math.max(identity.threshold * 2, identity.distance * 1.05, 1e-9);
  const pct = (x: number) => `${Math.min(100, (100 * x) / scale).toFixed(1)}%`;
  return html`<tr><th>Identity</th><td>${passBadge(pass)}</td><td>distance ${identityComparison(record)} (threshold): ${pass ? 'no longer matches the input face' : 'still matches the input face'}
<div class="gauge" role="img" aria-label="distance ${identity.distance.toFixed(3)}, threshold ${identity.threshold.toFixed(3)}"><div class="fill ${pass ? 'pass' : 'fail'}" style="width: ${pct(identity.distance)}"></div><div class="mark" style="left: ${pct(identity.threshold)}"></div></div>
${yardstick(identity)}<span class="muted">model <code>${identity.model}</code></span></td></tr>`;
}

/** What the same descriptor says of this input with its face removed: how much room the check has on this head. */
function yardstick(identity: NonNullable<QcRecord['checks']['identity']>): Html {
  const removed = identity.face_removed;
  if (!removed) return html``;
  const blind = identity.views_blind ?? [];
  const perView = Object.entries(removed.per_view).map(([view, d]) => `${view} ${d.toFixed(3)}`).join(', ');
  return html`<div class="muted">for scale, the same views of this input with its face removed (as deface leaves it): ${perView}${blind.length ? html`; not deciding, as removing the face moves them no further than the threshold: ${blind.join(', ')}` : ''}</div>`;
}

/** The fit check's witnesses and figures, one muted line: "witnesses: brain ok, eyes ok, similarity poor (brain_dice 0.94, ...)". */
function fitCheckLine(check: QcRecord['checks']['registration']['check']): Html | string {
  if (!check) return '';
  const witnesses = Object.entries(check.witnesses).map(([name, say]) => `${name} ${say}`).join(', ');
  const figures = Object.entries(check.evidence)
    .filter(([, value]) => typeof value === 'number')
    .map(([name, value]) => `${name} ${String(value)}`)
    .join(', ');
  return html`<br><span class="muted">fit check: ${check.flag}; witnesses: ${witnesses}${figures ? ` (${figures})` : ''}${check.reason ? `; ${check.reason}` : ''}</span>`;
}

/** warpface: how far the face warp moved the face and how near it came to folding (0: a fold; the engine refuses one). */
function warpRow(warp: QcRecord['checks']['warp']): Html | string {
  if (!warp) return '';
  return html`<tr><th>Face warp</th><td>${badge('none', 'info')}</td><td>moves the face up to ${warp.max_mm.toFixed(1)} mm; smallest Jacobian determinant ${warp.min_jacobian.toFixed(2)} (above 0: it nowhere folds; near 0: skin squeezed)</td></tr>`;
}

function checksTable(record: QcRecord): Html {
  const { checks } = record;
  const brain = checks.brain_voxels_changed;
  const reg = checks.registration;
  const differences = checks.header.differences.map((d) => (typeof d === 'string' ? d : JSON.stringify(d)));
  return html`<table class="checks"><thead><tr><th>Check</th><th>Result</th><th>Detail</th></tr></thead><tbody>
<tr><th>Brain voxels changed</th><td>${passBadge(brain.pass)}</td><td>${brain.value.toLocaleString('en-US')} of ${brain.guard_voxels.toLocaleString('en-US')} guarded voxels differ from the input${brain.face_roi_in_brain ? html`<br><span class="muted">${brain.face_roi_in_brain}: refused</span>` : ''}</td></tr>
<tr><th>Header</th><td>${passBadge(checks.header.pass)}</td><td>${
    differences.length === 0
      ? 'shape, affine, qform/sform, data type and scaling kept'
      : html`<ul class="diffs">${differences.map((d) => html`<li>${d}</li>`)}</ul>`
  }</td></tr>
<tr><th>Face</th><td>${faceBadge(checks.face)}</td><td>${checks.face.rule}${checks.face.detail ? html`<br><span class="muted">${checks.face.detail}</span>` : ''}${checks.face.evidence ? html`<br><span class="muted">decided by: ${checks.face.evidence}</span>` : ''}</td></tr>
${identityRow(record)}
<tr><th>Registration</th><td>${registrationBadge(record)}</td><td><code>${reg.metric}</code> = ${reg.value === null ? 'n/a' : reg.value.toFixed(3)}${fitCheckLine(reg.check)}</td></tr>
${warpRow(checks.warp)}
</tbody></table>`;
}

function detectorTable(record: QcRecord): Html {
  const { face_views_input: before, face_views_output: after, identity } = record.checks;
  const views = ordered(RENDER_VIEWS, [before, after]).filter((v) => v in before || v in after);
  const cell = (detectors: string[] | undefined, flagFired: boolean) => {
    if (detectors === undefined) return html`<td class="none">—</td>`;
    if (detectors.length === 0) return html`<td class="none">none</td>`;
    return html`<td class="${flagFired ? 'fired' : ''}">${detectors.join(', ')}</td>`;
  };
  return html`<table class="detectors"><thead><tr><th>View</th><th>Before</th><th>After</th>${identity ? html`<th class="num">Distance</th>` : ''}</tr></thead><tbody>
${views.map((v) => {
  const distance = identity?.per_view[v];
  return html`<tr><th>${viewLabel(v)}</th>${cell(before[v], false)}${cell(after[v], true)}${
    identity ? html`<td class="num">${distance === undefined || distance === null ? '—' : distance.toFixed(3)}</td>` : ''
  }</tr>`;
})}
</tbody></table>`;
}

/** Where the output is, and whether it was written although it failed (--qc-fail-ok). */
export function writtenNote(record: Pick<QcRecord, 'output' | 'status'>): string {
  if (record.output === null) return 'output not written';
  return record.status === 'PASS' ? record.output : `${record.output} · written (--qc-fail-ok)`;
}

function outputCard(ctx: PageContext, record: QcRecord): Html {
  const failed = record.status !== 'PASS';
  const failing = failedChecks(record);
  return html`<section class="card${failed ? ' failed' : ''}" id="${outputAnchor(record)}">
<div class="card-head"><h4>${record.method} ${statusBadge(record)}</h4><span class="path">${writtenNote(record)}</span></div>
<div class="card-body">
${failed ? html`<p class="reason">${record.reason ?? (failing.length > 0 ? `Failed: ${failing.join(', ')}` : 'Failed')}</p>` : ''}
${renderStrip(ctx, record)}
${sliceFigures(ctx, record)}
<div class="tables"><div><h5>Checks</h5>${checksTable(record)}</div><div><h5>Face detectors that fired, per view</h5>${detectorTable(record)}</div></div>
</div>
</section>`;
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) groups.set(key(item), [...(groups.get(key(item)) ?? []), item]);
  return groups;
}

const sessionTitle = (session: string | null) => (session === null ? 'No session' : `Session ${session}`);
const sessionAnchor = (session: string | null) => (session === null ? 'session-none' : anchorId(`ses-${session}`));

function failedWrittenCount(failed: readonly QcRecord[]): string {
  const written = failed.filter((r) => r.output !== null).length;
  return written === 0 ? 'not written' : `${failed.length - written} not written, ${written} written (--qc-fail-ok)`;
}

function summarySection(subject: string, records: readonly QcRecord[], unreadable: readonly UnreadableQcRecord[], generated: Date): Html {
  const failed = records.filter((r) => r.status !== 'PASS');
  const sessions = new Set(records.map((r) => r.session));
  const inputs = new Set(records.map((r) => r.input));
  return html`<section id="summary">
<h1>sub-${subject}</h1>
<p class="meta">${records.length} output(s) from ${inputs.size} input image(s) in ${sessions.size} session(s) · micanon ${packageVersion} · ${generated.toISOString()}</p>
<div class="tiles">
<div class="tile"><b>${records.length}</b>outputs</div>
<div class="tile pass"><b>${records.length - failed.length}</b>passed</div>
<div class="tile${failed.length > 0 ? ' fail' : ''}"><b>${failed.length}</b>failed</div>
${unreadable.length > 0 ? html`<div class="tile fail"><b>${unreadable.length}</b>unreadable QC records</div>` : ''}
</div>
${
  failed.length > 0
    ? html`<div class="alert"><b>${failed.length} output(s) FAILED QC</b> (${failedWrittenCount(failed)}):<ul>${failed.map(
        (r) => html`<li><a href="#${outputAnchor(r)}">${path.posix.basename(r.input)} · ${r.method}</a> · ${r.output === null ? 'not written' : 'written (--qc-fail-ok)'}${r.reason ? html` — ${r.reason}` : ''}</li>`,
      )}</ul></div>`
    : records.length > 0
      ? html`<div class="alert ok"><b>All ${records.length} output(s) passed QC.</b></div>`
      : html`<div class="alert">No QC records for this participant.</div>`
}
${
  unreadable.length > 0
    ? html`<div class="alert"><b>QC records that could not be read</b> (their outputs are not shown below):<ul>${unreadable.map(
        (u) => html`<li><code>${u.file}</code>: ${u.reason}</li>`,
      )}</ul></div>`
    : ''
}
<table class="overview"><thead><tr><th>Session</th><th>Image</th><th>Method</th>${SUMMARY_HEADERS.map((h) => html`<th>${h}</th>`)}<th></th></tr></thead><tbody>
${[...records].sort(compareFailedFirst).map(
  (r) => html`<tr class="${r.status === 'PASS' ? 'passed' : 'failed'}"><td>${r.session ?? '—'}</td><td class="path">${path.posix.basename(r.input)}</td><td>${r.method}</td>${summaryCells(r)}<td><a href="#${outputAnchor(r)}">details</a></td></tr>`,
)}
</tbody></table>
</section>`;
}

export interface ParticipantPage {
  subject: string;
  /** Records of this subject (others are ignored). */
  records: readonly QcRecord[];
  unreadable?: readonly UnreadableQcRecord[];
  /** Render paths (relative to qc_dir) whose files exist; others show as placeholders. */
  existingRenders: ReadonlySet<string>;
  /** What the BIDS validator said of the run's input and output, when it ran. */
  validation?: PageValidation;
  generated?: Date;
}

/** The participant page as an HTML string (pure: no file access). */
export function participantReportHtml(page: ParticipantPage): string {
  const records = page.records.filter((r) => r.subject === page.subject).sort(compareRecords);
  const ctx: PageContext = { existing: page.existingRenders };
  const bySession = groupBy(records, (r) => r.session ?? '');
  const sessionSections = [...bySession.values()].map((rows) => {
    const session = rows[0]!.session;
    const images = [...groupBy(rows, (r) => r.input).entries()].map(
      ([input, outputs]) => html`<h3>${path.posix.basename(input)}</h3><p class="path muted">${input}</p>${outputs.map((r) => outputCard(ctx, r))}`,
    );
    const reference = rows.find((r) => r.reference)?.reference;
    const referenceLine = reference
      ? html`<p class="meta">Reference image (registered to the atlas): <span class="path">${path.posix.basename(reference.input)}</span>: ${reference.reason}</p>`
      : '';
    return html`<section id="${sessionAnchor(session)}"><h2>${sessionTitle(session)}</h2>${referenceLine}${images}</section>`;
  });
  const validation = validationSection(page.validation);
  const nav = [
    { href: '#summary', label: 'Summary' },
    ...(validation ? [{ href: '#bids-validation', label: 'BIDS validation' }] : []),
    ...[...bySession.values()].map((rows) => ({ href: `#${sessionAnchor(rows[0]!.session)}`, label: sessionTitle(rows[0]!.session) })),
  ];
  const generated = page.generated ?? new Date();
  return pageDocument({
    title: `sub-${page.subject} · micanon QC`,
    subtitle: `sub-${page.subject}`,
    nav,
    body: html`${summarySection(page.subject, records, page.unreadable ?? [], generated)}${validation}${sessionSections}`,
    footer: html`Generated by micanon ${packageVersion} on ${generated.toISOString()}. Figures are read from <code>sub-${page.subject}/figures/</code> beside this page; keep them together. QC records: <code>logs/qc/${qcSessionName({ subject: page.subject, session: null })}_*.json</code>.`,
  });
}

/** The subset of `relativePaths` (relative to `root`) that exist as files or folders. */
export async function existingPaths(root: string, relativePaths: readonly string[]): Promise<Set<string>> {
  const unique = [...new Set(relativePaths)];
  const found = await Promise.all(
    unique.map((rel) =>
      access(path.join(root, ...rel.split('/')))
        .then(() => true)
        .catch(() => false),
    ),
  );
  return new Set(unique.filter((_, i) => found[i]));
}

/**
 * Write `<qc_dir>/sub-XX.html` for `subject` from its QC records (atomically); renders are
 * linked relative to qc_dir. Returns the path of the page.
 */
export async function writeParticipantReport(
  qcDir: string,
  subject: string,
  records: readonly QcRecord[],
  options: { unreadable?: readonly UnreadableQcRecord[]; validation?: PageValidation } = {},
): Promise<string> {
  qcRecordSchema.shape.subject.parse(subject); // it becomes a file name
  const own = records.filter((r) => r.subject === subject);
  const page = participantReportHtml({
    subject,
    records: own,
    unreadable: options.unreadable ?? [],
    existingRenders: await existingPaths(qcDir, renderPaths(own)),
    validation: options.validation,
  });
  const file = participantReportPath(qcDir, subject);
  await writeFileAtomic(file, page);
  return file;
}
