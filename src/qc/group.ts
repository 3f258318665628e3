/**
 * The dataset's QC summary (the `group` analysis level): `<qc_dir>/group_qc.html`, one row per
 * output with status badges and links to the participant pages, and `<qc_dir>/logs/group_qc.tsv`
 * with the same rows for machines. Both are rebuilt from the QC records in `<qc_dir>/logs/qc/`
 * (qc_dir: --qc-dir, by default output_dir; see src/config.ts).
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../bids/atomic.js';
import { packageVersion } from '../version.js';
import { attackProbesTsv, attackProbesTsvPath, attackSection, attackTsv, attackTsvPath, type AttackOutcome } from './attack.js';
import { SUMMARY_HEADERS, summaryCells } from './checks.js';
import { badge, html, pageDocument, type Html } from './html.js';
import { compareFailedFirst, compareRecords, QC_METHODS, readQcRecords, type QcRecord, type QcRecordsRead, type UnreadableQcRecord } from './records.js';
import { existingPaths, outputAnchor, participantReportPath, writeParticipantReport } from './report.js';
import { tsvText } from './tsv.js';
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

/** The TSV text (header + one row per record, in reading order). */
export function groupTsv(records: readonly QcRecord[]): string {
  const rows = [...records].sort(compareRecords).map((r) => [
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
  ]);
  return tsvText(GROUP_TSV_COLUMNS, rows);
}

/** A session of the dataset with no run record: not run yet, still running, or refused or killed. */
export interface MissingResult {
  subject: string;
  session: string | null;
  /** What is known of why (e.g. the error line of its SLURM task log). */
  reason: string;
}

export interface GroupPage {
  records: readonly QcRecord[];
  /** Sessions of bids_dir without a result: listed so a failed participant is not silently absent. */
  missing?: readonly MissingResult[];
  unreadable?: readonly UnreadableQcRecord[];
  /** File names (relative to qc_dir) of the participant pages that exist, e.g. `sub-01.html`. */
  participantPages: ReadonlySet<string>;
  /** The dataset's re-identification attack (absent: not run, no section). */
  attack?: AttackOutcome;
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
  const missing = page.missing ?? [];
  const subjects = [...new Set([...records.map((r) => r.subject), ...missing.map((m) => m.subject)])].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
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
${missing.length > 0 ? html`<div class="tile fail"><b>${missing.length}</b>sessions without a result</div>` : ''}
</div>
${
  missing.length > 0
    ? html`<div class="alert" id="missing"><b>Sessions without a result</b> (no run record in <code>logs/</code>: not run yet, or refused, failed or killed before the end; nothing of them was written):<table class="outputs"><thead><tr><th>Participant</th><th>Session</th><th>Why</th></tr></thead><tbody>${missing.map(
        (m) => html`<tr class="failed"><td>sub-${m.subject}</td><td>${m.session ?? '—'}</td><td>${m.reason}</td></tr>`,
      )}</tbody></table></div>`
    : ''
}
${
  unreadable.length > 0
    ? html`<div class="alert"><b>QC records that could not be read</b>:<ul>${unreadable.map((u) => html`<li><code>${u.file}</code>: ${u.reason}</li>`)}</ul></div>`
    : ''
}
${records.length > 0 ? methodTable(records) : html`<div class="alert">No QC records found in <code>logs/qc/</code>.</div>`}
</section>
${attackSection(page.attack)}
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
      ...(page.attack ? [{ href: '#attack', label: 'Attack' }] : []),
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
  /** logs/group_attack.tsv and logs/group_attack_probes.tsv, when the attack ran. */
  attackTsvs: string[];
  records: number;
  unreadable: number;
}

/**
 * Write `group_qc.html` and `logs/group_qc.tsv` under qc_dir (atomically) from the QC records
 * read there (`readQcRecords(qcDir)`, or `options.read`), every participant page `sub-XX.html`
 * that exists again, and the attack's TSVs when it ran (those of an earlier run are removed
 * when it did not: they would speak for outputs they never saw). Links go to participant pages
 * that exist at the time.
 */
export async function writeGroupReport(
  qcDir: string,
  options: { missing?: readonly MissingResult[]; read?: QcRecordsRead; attack?: AttackOutcome; validation?: PageValidation } = {},
): Promise<GroupReportWritten> {
  const { attack } = options;
  const { records, unreadable } = options.read ?? (await readQcRecords(qcDir));
  const pageNames = [...new Set(records.map((r) => path.basename(participantReportPath(qcDir, r.subject))))];
  // Each participant page again, from every record: the tasks of one participant's sessions
  // (micanon slurm --per-session) each rewrote it from the records there at that moment.
  const pages = await existingPaths(qcDir, pageNames);
  for (const subject of new Set(records.map((r) => r.subject))) {
    if (!pages.has(path.basename(participantReportPath(qcDir, subject)))) continue;
    const own = await readQcRecords(qcDir, subject);
    await writeParticipantReport(qcDir, subject, own.records, { unreadable: own.unreadable });
  }
  const htmlFile = groupReportPath(qcDir);
  const tsvFile = groupTsvPath(qcDir);
  const attackFiles = [attackTsvPath(qcDir), attackProbesTsvPath(qcDir)];
  await writeFileAtomic(
    htmlFile,
    groupReportHtml({ records, unreadable, missing: options.missing, attack, participantPages: pages, validation: options.validation }),
  );
  await writeFileAtomic(tsvFile, groupTsv(records));
  if (attack && 'result' in attack) {
    await writeFileAtomic(attackFiles[0]!, attackTsv(attack.result));
    await writeFileAtomic(attackFiles[1]!, attackProbesTsv(attack.result));
  } else {
    await Promise.all(attackFiles.map((file) => rm(file, { force: true })));
  }
  const attackTsvs = attack && 'result' in attack ? attackFiles : [];
  return { html: htmlFile, tsv: tsvFile, attackTsvs, records: records.length, unreadable: unreadable.length };
}
