/**
 * The dataset's QC summary (the `group` analysis level): `<qc_dir>/group_qc.html`, one row per
 * output with status badges and links to the participant pages, and `<qc_dir>/logs/group_qc.tsv`
 * with the same rows for machines. Both are rebuilt from the QC records in `<qc_dir>/logs/qc/`
 * (qc_dir: --qc-dir, by default output_dir; see src/cli/config.ts).
 */
import path from 'node:path';
import { writeFileAtomic } from '../bids/atomic.js';
import { packageVersion } from '../version.js';
import { SUMMARY_HEADERS, summaryCells } from './checks.js';
import { badge, html, pageDocument, type Html } from './html.js';
import { compareFailedFirst, compareRecords, QC_METHODS, readQcRecords, type QcRecord, type UnreadableQcRecord } from './records.js';
import { existingPaths, outputAnchor, participantReportPath } from './report.js';
import { type PageValidation, validationSection } from './validation.js';

export function groupReportPath(qcDir: string): string {
  return path.join(qcDir, 'group_qc.html');
}

export function groupTsvPath(qcDir: string): string {
  return path.join(qcDir, 'logs', 'group_qc.tsv');
}

export const GROUP_TSV_COLUMNS = [
  'subject',
  'session',
  'input',
  'method',
  'status',
  'brain_voxels_changed',
  'face_pass',
  'identity_distance',
  'threshold',
  'registration_flag',
  'header_pass',
] as const;

/** One TSV cell: `n/a` for missing values (BIDS convention); tabs and line breaks cannot split a row. */
function tsvCell(value: string | number | boolean | null | undefined): string {
  if (value === null || value === undefined) return 'n/a';
  return String(value).replace(/[\t\r\n]+/g, ' ');
}

/** The TSV text (header + one row per record, in reading order). */
export function groupTsv(records: readonly QcRecord[]): string {
  const rows = [...records].sort(compareRecords).map((r) =>
    [
      r.subject,
      r.session,
      r.input,
      r.method,
      r.status,
      r.checks.brain_voxels_changed.value,
      r.checks.face.pass,
      r.checks.identity?.distance,
      r.checks.identity?.threshold,
      r.checks.registration.flag,
      r.checks.header.pass,
    ].map(tsvCell),
  );
  return [[...GROUP_TSV_COLUMNS], ...rows].map((row) => `${row.join('\t')}\n`).join('');
}

export interface GroupPage {
  records: readonly QcRecord[];
  unreadable?: readonly UnreadableQcRecord[];
  /** File names (relative to qc_dir) of the participant pages that exist, e.g. `sub-01.html`. */
  participantPages: ReadonlySet<string>;
  /** What the BIDS validator said of the output dataset, when it ran. */
  validation?: PageValidation;
  generated?: Date;
}

function methodTable(records: readonly QcRecord[]): Html {
  const methods = QC_METHODS.filter((m) => records.some((r) => r.method === m));
  return html`<table class="methods"><thead><tr><th>Method</th><th class="num">Outputs</th><th class="num">Passed</th><th class="num">Failed</th></tr></thead><tbody>
${methods.map((m) => {
  const rows = records.filter((r) => r.method === m);
  const failed = rows.filter((r) => r.status !== 'PASS').length;
  return html`<tr><td>${m}</td><td class="num">${rows.length}</td><td class="num">${rows.length - failed}</td><td class="num">${failed > 0 ? badge('fail', String(failed)) : '0'}</td></tr>`;
})}
</tbody></table>`;
}

/** The group page as an HTML string (pure: no file access). Rows: FAILED first, then reading order. */
export function groupReportHtml(page: GroupPage): string {
  const records = [...page.records].sort(compareFailedFirst);
  const unreadable = page.unreadable ?? [];
  const failed = records.filter((r) => r.status !== 'PASS').length;
  const subjects = [...new Set(records.map((r) => r.subject))].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const generated = page.generated ?? new Date();
  const pageOf = (subject: string) => (page.participantPages.has(`sub-${subject}.html`) ? `sub-${subject}.html` : null);
  const body = html`<section id="summary">
<h1>Dataset QC summary</h1>
<p class="meta">${subjects.length} participant(s) · ${records.length} output(s) · micanon ${packageVersion} · ${generated.toISOString()}</p>
<div class="tiles">
<div class="tile"><b>${subjects.length}</b>participants</div>
<div class="tile"><b>${records.length}</b>outputs</div>
<div class="tile pass"><b>${records.length - failed}</b>passed</div>
<div class="tile${failed > 0 ? ' fail' : ''}"><b>${failed}</b>failed</div>
${unreadable.length > 0 ? html`<div class="tile fail"><b>${unreadable.length}</b>unreadable QC records</div>` : ''}
</div>
${
  unreadable.length > 0
    ? html`<div class="alert"><b>QC records that could not be read</b>:<ul>${unreadable.map((u) => html`<li><code>${u.file}</code>: ${u.reason}</li>`)}</ul></div>`
    : ''
}
${records.length > 0 ? methodTable(records) : html`<div class="alert">No QC records found in <code>logs/qc/</code>.</div>`}
</section>
<section id="outputs"><h2>Outputs</h2>
<table class="outputs"><thead><tr><th>Participant</th><th>Session</th><th>Image</th><th>Method</th>${SUMMARY_HEADERS.map((h) => html`<th>${h}</th>`)}<th>Report</th></tr></thead><tbody>
${records.map((r) => {
  const pageFile = pageOf(r.subject);
  return html`<tr class="${r.status === 'PASS' ? 'passed' : 'failed'}"><td>${pageFile ? html`<a href="${pageFile}">sub-${r.subject}</a>` : `sub-${r.subject}`}</td><td>${r.session ?? '—'}</td><td class="path">${path.posix.basename(r.input)}</td><td>${r.method}</td>${summaryCells(r)}<td>${
    pageFile ? html`<a href="${pageFile}#${outputAnchor(r)}">details</a>` : html`<span class="muted">no page</span>`
  }</td></tr>`;
})}
</tbody></table>
</section>${validationSection(page.validation)}`;
  return pageDocument({
    title: 'micanon QC · dataset summary',
    subtitle: 'dataset summary',
    nav: [
      { href: '#summary', label: 'Summary' },
      { href: '#outputs', label: 'Outputs' },
      ...(page.validation?.output ? [{ href: '#bids-validation', label: 'BIDS validation' }] : []),
      ...subjects.flatMap((s) => {
        const pageFile = pageOf(s);
        return pageFile ? [{ href: pageFile, label: `sub-${s}` }] : [];
      }),
    ],
    body,
    footer: html`Generated by micanon ${packageVersion} on ${generated.toISOString()} from <code>logs/qc/*.json</code>; the same rows are in <code>logs/group_qc.tsv</code>.`,
  });
}

export interface GroupReportWritten {
  html: string;
  tsv: string;
  records: number;
  unreadable: number;
}

/**
 * Read every QC record under `<qc_dir>/logs/qc/` and write `group_qc.html` and
 * `logs/group_qc.tsv` there (atomically). Links go to participant pages that exist at the time.
 */
export async function writeGroupReport(qcDir: string, options: { validation?: PageValidation } = {}): Promise<GroupReportWritten> {
  const { records, unreadable } = await readQcRecords(qcDir);
  const pageNames = [...new Set(records.map((r) => path.basename(participantReportPath(qcDir, r.subject))))];
  const htmlFile = groupReportPath(qcDir);
  const tsvFile = groupTsvPath(qcDir);
  await writeFileAtomic(htmlFile, groupReportHtml({ records, unreadable, participantPages: await existingPaths(qcDir, pageNames), validation: options.validation }));
  await writeFileAtomic(tsvFile, groupTsv(records));
  return { html: htmlFile, tsv: tsvFile, records: records.length, unreadable: unreadable.length };
}
