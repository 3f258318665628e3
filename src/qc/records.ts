/**
 * QC records: the JSON the Python engine writes for every output image (after deface, reface or
 * warpface), one file per output under `<qc_dir>/logs/qc/` (qc_dir: --qc-dir, by default output_dir;
 * `<output_dir>-qc` for the raw layout, see src/config.ts). This module owns their schema,
 * their file names and reading them back; the reports (report.ts, group.ts) only format them.
 *
 * Paths inside a record: `input` is relative to bids_dir, `output` relative to output_dir, and
 * every render relative to qc_dir (the folder holding `sub-XX.html`), normally
 * `sub-XX/figures/<name>.png`.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { isMicanonTemp, writeFileAtomic } from '../bids/atomic.js';
import { stemOf } from '../bids/entities.js';
import { LABEL_RE } from '../bids/selection.js';

/** BIDS labels are alphanumeric; they also become parts of file names here, so hold them to it. */
const bidsLabel = z.string().regex(LABEL_RE, 'a BIDS label (letters and digits only)');

/**
 * A path relative to a folder the report knows (POSIX separators), never escaping it:
 * the report turns these into links, and a link must stay inside the output folder.
 */
const relativePath = z
  .string()
  .min(1)
  .refine((p) => !path.posix.isAbsolute(p) && !/^[A-Za-z][A-Za-z0-9+.-]*:/.test(p) && !p.includes('\\'), 'a relative POSIX path')
  .refine((p) => !path.posix.normalize(p).startsWith('../') && path.posix.normalize(p) !== '..', 'a path inside its folder');

export const QC_METHODS = ['deface', 'reface', 'warpface'] as const;
export const qcMethodSchema = z.enum(QC_METHODS);
export type QcMethod = z.infer<typeof qcMethodSchema>;

export const qcStatusSchema = z.enum(['PASS', 'FAILED']);
export type QcStatus = z.infer<typeof qcStatusSchema>;

/** Surface-render views, in the order reports show them (any may be missing from a record). */
export const RENDER_VIEWS = ['front', 'left34', 'right34', 'left', 'right', 'low', 'high'] as const;
/** Slice figures, in the order reports show them. */
export const SLICE_FIGURES = ['input_sagittal', 'output_sagittal', 'masks_overlay', 'registration_overlay'] as const;

const viewMap = <T extends z.ZodType>(value: T) => z.record(z.string().min(1), value);

const checksSchema = z.looseObject({
  brain_voxels_changed: z.looseObject({
    value: z.number().int().nonnegative(),
    guard_voxels: z.number().int().nonnegative(),
    pass: z.boolean(),
    /** Set when the fit put the face ROI inside the subject's own brain: the check fails on it. */
    face_roi_in_brain: z.string().optional(),
  }),
  header: z.looseObject({
    pass: z.boolean(),
    // Differences are sentences from the engine ("sform differs"); objects are accepted and shown as JSON.
    differences: z.array(z.union([z.string(), z.record(z.string(), z.unknown())])),
  }),
  face: z.looseObject({
    pass: z.boolean(),
    rule: z.string(),
    detail: z.string(),
    /** "inconclusive" when the input shows no face the detectors trust: passes, but says so. */
    verdict: z.enum(['pass', 'fail', 'inconclusive']).optional(),
    /** What decided: the renders, the landmarks found in the volume (deface), or none. */
    evidence: z.string().optional(),
  }),
  /** Per view: the face detectors that fired (e.g. ["hog", "cnn"]); an empty list means none. */
  face_views_input: viewMap(z.array(z.string())),
  face_views_output: viewMap(z.array(z.string())),
  /** null for deface (nothing left to compare). */
  identity: z
    .looseObject({
      distance: z.number().nonnegative().nullable(),
      threshold: z.number().nonnegative(),
      model: z.string(),
      per_view: viewMap(z.number().nonnegative().nullable()),
      /** The input with its face ROI set to background, compared the same way: a yardstick, not a verdict. */
      face_removed: z
        .looseObject({ distance: z.number().nonnegative(), per_view: viewMap(z.number().nonnegative()) })
        .optional(),
      /** Views with an input face where removing it moves the descriptor no further than the threshold: recorded, not deciding. */
      views_blind: z.array(z.string()).optional(),
    })
    .nullable(),
  registration: z.looseObject({
    metric: z.string(),
    value: z.number().nullable(),
    flag: z.enum(['ok', 'scanner', 'poor']),
    pass: z.boolean(),
    /** The fit check of the session's reference (python/micanon/anonymize/fit_check.py). */
    check: z
      .looseObject({
        flag: z.string(),
        hard: z.boolean(),
        witnesses: z.record(z.string(), z.enum(['ok', 'poor', 'abstain'])),
        evidence: z.record(z.string(), z.union([z.number(), z.string(), z.null()])),
        reason: z.string(),
      })
      .optional(),
  }),
});

const rendersSchema = z.looseObject({
  input: viewMap(relativePath),
  output: viewMap(relativePath),
  slices: viewMap(relativePath),
  /** "mip": the slice figures are maximum intensity projections (an input with no head surface, e.g. a TOF angiogram). */
  projection: z.enum(['mip']).optional(),
});

export const qcRecordSchema = z.looseObject({
  subject: bidsLabel,
  session: bidsLabel.nullable(),
  /** Relative to bids_dir. */
  input: relativePath,
  /** Relative to output_dir; null when the output was not written (FAILED). */
  output: relativePath.nullable(),
  method: qcMethodSchema,
  status: qcStatusSchema,
  /** Optional one-line reason for a FAILED status (shown in the reports when present). */
  reason: z.string().nullable().optional(),
  checks: checksSchema,
  renders: rendersSchema,
  /** The session's reference image (relative to bids_dir) and why it was chosen; set by the pipeline. */
  reference: z.object({ input: relativePath, reason: z.string() }).optional(),
});
export type QcRecord = z.infer<typeof qcRecordSchema>;
export type QcChecks = QcRecord['checks'];

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
