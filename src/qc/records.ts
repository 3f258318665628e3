/**
 * QC records: the JSON the Python engine writes for every output image (after deface, reface or
 * warpface), one file per output under `<qc_dir>/logs/qc/` (qc_dir: --qc-dir, by default output_dir;
 * `<output_dir>-qc` for the raw layout, see src/config.ts). This module owns their file names
 * and reading them back; their schema is the engine's (src/engine/qc-record.ts), and the reports
 * (report.ts, group.ts) only format them.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { z } from 'zod';
import { isMicanonTemp, writeFileAtomic } from '../bids/atomic.js';
import { stemOf } from '../bids/entities.js';
import { bidsLabel, qcRecordSchema, type QcRecord } from '../engine/qc-record.js';
import { methodSchema, type Method } from '../engine/schemas.js';

export { qcRecordSchema, qcStatusSchema, RENDER_VIEWS, SLICE_FIGURES, type QcChecks, type QcRecord, type QcStatus } from '../engine/qc-record.js';

export const QC_METHODS = methodSchema.options;
export type QcMethod = Method;

/** A file in logs/qc that could not be read as a QC record: shown in the reports, never dropped silently. */
export interface UnreadableQcRecord {
  /** Relative to qc_dir. */
  file: string;
  reason: string;
}

export interface QcRecordsRead {
  records: QcRecord[];
  unreadable: UnreadableQcRecord[];
}

/** `sub-01` or `sub-01_ses-02`: the prefix of every file of one participant session. */
export function qcSessionName(record: Pick<QcRecord, 'subject' | 'session'>): string {
  return `sub-${record.subject}${record.session ? `_ses-${record.session}` : ''}`;
}

/** `<qc_dir>/logs/qc`: the folder of the QC records. */
export function qcFolder(qcDir: string): string {
  return path.join(qcDir, 'logs', 'qc');
}

/**
 * A file-name-safe key for one output: `<session name>_<rest of the input stem>_<method>`,
 * e.g. `sub-01_ses-01_acq-mprage_T1w_deface`. Unique per (input, method) within a dataset;
 * a short hash is added when the input name needed changing to be safe in a file name.
 */
export function qcOutputKey(record: Pick<QcRecord, 'subject' | 'session' | 'input' | 'method'>): string {
  const prefix = qcSessionName(record);
  const stem = stemOf(path.posix.basename(record.input));
  const rest = stem.startsWith(`${prefix}_`) ? stem.slice(prefix.length + 1) : stem;
  const safe = rest.replace(/[^A-Za-z0-9_-]/g, '-');
  const suffix = safe === rest && rest.length > 0 ? safe : `${safe}-${createHash('sha256').update(record.input).digest('hex').slice(0, 8)}`;
  return `${prefix}_${suffix}_${record.method}`;
}

/** Where the record of one output lives: `<qc_dir>/logs/qc/<qcOutputKey>.json`. */
export function qcRecordPath(qcDir: string, record: Pick<QcRecord, 'subject' | 'session' | 'input' | 'method'>): string {
  return path.join(qcFolder(qcDir), `${qcOutputKey(record)}.json`);
}

/** Validate `record` and write it atomically to qcRecordPath; returns the path written. */
export async function writeQcRecord(qcDir: string, record: unknown): Promise<string> {
  const parsed = qcRecordSchema.parse(record);
  const file = qcRecordPath(qcDir, parsed);
  await writeFileAtomic(file, `${JSON.stringify(parsed, null, 2)}\n`);
  return file;
}

function zodReason(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => `${issue.path.join('.') || '(record)'}: ${issue.message}`)
    .join('; ');
}

/**
 * Read the QC records under `<qc_dir>/logs/qc/` (of one subject when given), sorted by file
 * name. Files that are not valid JSON, fail the schema, or name another subject than their
 * content are returned in `unreadable` with the reason. A missing folder reads as no records.
 */
export async function readQcRecords(qcDir: string, subject?: string): Promise<QcRecordsRead> {
  const folder = qcFolder(qcDir);
  const pattern = subject === undefined ? /^sub-[A-Za-z0-9]+_.*\.json$/ : new RegExp(`^sub-${bidsLabel.parse(subject)}_.*\\.json$`);
  let names: string[];
  try {
    names = await readdir(folder);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], unreadable: [] };
    throw err;
  }
  const chosen = names.filter((name) => pattern.test(name) && !isMicanonTemp(name)).sort();
  const result: QcRecordsRead = { records: [], unreadable: [] };
  for (const name of chosen) {
    const file = path.join(folder, name);
    const relative = path.relative(qcDir, file);
    let json: unknown;
    try {
      json = JSON.parse(await readFile(file, 'utf8'));
    } catch (err) {
      result.unreadable.push({ file: relative, reason: `not JSON: ${err instanceof Error ? err.message : String(err)}` });
      continue;
    }
    const parsed = qcRecordSchema.safeParse(json);
    if (!parsed.success) {
      result.unreadable.push({ file: relative, reason: zodReason(parsed.error) });
    } else if (!name.startsWith(`${qcSessionName(parsed.data)}_`)) {
      result.unreadable.push({ file: relative, reason: `file name does not match its content (${qcSessionName(parsed.data)})` });
    } else {
      result.records.push(parsed.data);
    }
  }
  return result;
}

const METHOD_RANK: Record<QcMethod, number> = { deface: 0, reface: 1, warpface: 2 };

/** Reading order: subject, session (none first), input, method (deface, reface, warpface). */
export function compareRecords(a: QcRecord, b: QcRecord): number {
  return (
    a.subject.localeCompare(b.subject, 'en', { numeric: true }) ||
    (a.session ?? '').localeCompare(b.session ?? '', 'en', { numeric: true }) ||
    a.input.localeCompare(b.input, 'en', { numeric: true }) ||
    METHOD_RANK[a.method] - METHOD_RANK[b.method]
  );
}

/** Reading order with every FAILED record before every PASS one. */
export function compareFailedFirst(a: QcRecord, b: QcRecord): number {
  return Number(a.status === 'PASS') - Number(b.status === 'PASS') || compareRecords(a, b);
}
