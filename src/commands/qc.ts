/**
 * `micanon qc IMAGE [--original ORIGINAL] [--method deface|reface|warpface] [--out DIR] [--atlas DIR] [--json]`
 * (parsed by src/cli/qc.ts): check one image anonymized by any tool (pydeface, AFNI refacer, mri_reface, micanon) with the
 * pipeline's own checks (python/micanon/standalone.py, through the engine call `qc_image`).
 *
 * IMAGE alone: its surface renders searched for faces (deface: PASS when the CNN finds none).
 * With ORIGINAL also: header kept, brain guard voxels bit for bit (the original registered to
 * the atlas as the pipeline does it), identity (reface, warpface) and the registration's quality.
 * A check that cannot run says "not checked", never "passed". Exit 0 when every check that ran
 * passed; QC_IMAGE_FAILED's code when one failed.
 *
 * Without --out nothing is kept: figures go to a temporary folder removed at the end. With
 * --out, an original's check is written as the pipeline writes it (logs/qc/<key>.json,
 * sub-XX.html, sub-XX/figures/); an image alone gets `<stem>_<method>_qc.json` and `.html`. The
 * figures are drawn in the temporary folder either way and moved in just before the record is
 * written: an interrupted check leaves no render of a face in --out, and the next run removes
 * the temporary folder a killed check left.
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { moveFilesInto, workFolderName, writeFileAtomic } from '../bids/atomic.js';
import { parseBidsName, stemOf } from '../bids/entities.js';
import { namesT1wContrast } from '../bids/reference.js';
import { defaults } from '../config.js';
import { Engine } from '../engine/bridge.js';
import { qcImage } from '../engine/contract.js';
import type { NotChecked, QcImageRecord } from '../engine/qc-record.js';
import { methodSchema } from '../engine/schemas.js';
import { MicanonError } from '../errors.js';
import { log } from '../log.js';
import { removeLeftoverWork } from '../pipeline/temps.js';
import { badge, figure, fileUrl, html, pageDocument, passBadge, type Html } from '../qc/html.js';
import { qcRecordPath, qcRecordSchema, readQcRecords, writeQcRecord } from '../qc/records.js';
import { participantFigureDir, writeParticipantReport } from '../qc/report.js';
import { packageVersion } from '../version.js';

/** The options of `micanon qc` (src/cli/qc.ts fills them from the command line). */
export const qcOptionsSchema = z.object({
  image: z.string().min(1).transform((p) => path.resolve(p)),
  original: z.string().min(1).nullable().default(null).transform((p) => (p ? path.resolve(p) : null)),
  method: methodSchema.default('deface'),
  out: z.string().min(1).nullable().default(null).transform((p) => (p ? path.resolve(p) : null)),
  atlas: z.string().default(defaults.atlas).transform((p) => path.resolve(p)),
  json: z.boolean().default(false),
});
export type QcOptions = z.output<typeof qcOptionsSchema>;

/** `micanon qc ...`: check, print the verdict (or the record), write the report with --out. */
export async function runQc(options: QcOptions): Promise<number> {
  // A killed run's work folder holds renders of a face: removed first, whatever this run finds.
  const removed = await removeLeftoverWork(tmpdir());
  if (removed > 0) log.verbose(`removed ${removed} work folder(s) of earlier runs that were killed`);
  for (const file of [options.image, options.original]) {
    if (file && !statSync(file, { throwIfNoEntry: false })?.isFile()) {
      throw new MicanonError('INPUT_MISSING', `${file}: no such file`);
    }
  }
  if (!existsSync(options.atlas)) throw new MicanonError('ATLAS_INVALID', `atlas folder ${options.atlas} not found`);
  if (options.out) {
    await mkdir(options.out, { recursive: true }).catch((err: unknown) => {
      throw new MicanonError('CANNOT_CREATE_OUTPUT', `${options.out}: cannot create the folder`, { cause: err });
    });
  }
  // Python's temporary files and the figures until they move in: removed whatever happens, and
  // named as the pipeline names its work folders, so that a later run (a check or the pipeline)
  // removes it when this one is killed.
  const scratch = path.join(tmpdir(), workFolderName);
  await mkdir(scratch, { recursive: true });
  try {
    const outDir = options.out ?? scratch;
    const labels = recordLabels(options.original ?? options.image);
    const figuresDir = participantFigureDir(outDir, labels.subject);
    const staging = path.join(scratch, 'qc-figures');
    log.info(`checking ${path.basename(options.image)}${options.original ? ` against ${path.basename(options.original)}` : ''} (${options.method})`);
    const engine = await Engine.start({ threads: availableParallelism(), scratchDir: scratch });
    let reply: { record: QcImageRecord; log: string[] };
    try {
      reply = await qcImage(engine, {
        image: options.image,
        original: options.original,
        method: options.method,
        atlas: options.atlas,
        output_dir: outDir,
        figures_dir: figuresDir,
        // With --out the figures are drawn in the scratch folder and moved in with their record:
        // an interrupted check leaves no render of the face in the QC folder.
        ...(options.out ? { staging_dir: staging } : {}),
        seed: defaults.seed,
        reference_is_t1w: namesT1wContrast(options.original ?? options.image),
        ...labels,
      });
    } finally {
      await engine.close();
    }
    for (const line of reply.log) log.verbose(line);
    const { record } = reply;
    if (options.out) await moveFilesInto(staging, figuresDir);
    const written = options.out ? await writeReport(options.out, record) : [];
    process.stdout.write(options.json ? `${JSON.stringify(record, null, 2)}\n` : verdictText(record, written));
    if (record.status === 'FAILED') {
      throw new MicanonError('QC_IMAGE_FAILED', `${options.image}: QC FAILED: ${record.reason ?? 'a check failed'}`);
    }
    return 0;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** The record's subject/session: the BIDS labels of the file's name, else its stem as a label. */
export function recordLabels(file: string): { subject: string; session: string | null } {
  const entities = parseBidsName(file)?.entities ?? {};
  const subject = entities.sub ?? (stemOf(path.basename(file)).replace(/[^A-Za-z0-9]/g, '').slice(0, 40) || 'image');
  return { subject, session: entities.ses ?? null };
}

// ----------------------------------------------------------------------------- the verdict

type Tone = 'PASS' | 'FAILED' | 'INCONCLUSIVE' | 'not checked' | 'n/a';

const count = (n: number): string => n.toLocaleString('en-US');

const notChecked = (check: object | null): check is NotChecked => check !== null && 'verdict' in check && check.verdict === 'not_checked';

/** One row per check: name, tone, detail (what the printed verdict and the image-only page show). */
export function checkRows(record: QcImageRecord): Array<[string, Tone, string]> {
  const { checks } = record;
  const passed = (pass: boolean): Tone => (pass ? 'PASS' : 'FAILED');
  const rows: Array<[string, Tone, string]> = [];
  const brain = checks.brain_voxels_changed;
  rows.push(
    notChecked(brain)
      ? ['brain', 'not checked', brain.detail]
      : ['brain', passed(brain.pass), `${count(brain.value)} of ${count(brain.guard_voxels)} brain-guard voxels differ from the original${brain.detail ? `; ${brain.detail}` : ''}`],
  );
  const header = checks.header;
  rows.push(
    notChecked(header)
      ? ['header', 'not checked', header.detail]
      : ['header', passed(header.pass), header.differences.length === 0 ? 'shape, affine, qform/sform, data type and scaling kept' : header.differences.map((d) => (typeof d === 'string' ? d : JSON.stringify(d))).join('; ')],
  );
  const face = checks.face;
  const faceTone: Tone = face.verdict === 'not_checked' ? 'not checked' : face.verdict === 'inconclusive' ? 'INCONCLUSIVE' : passed(face.pass === true);
  rows.push(['face', faceTone, `${face.rule}: ${face.detail}`]);
  const identity = checks.identity;
  if (identity === null) rows.push(['identity', 'n/a', `${record.method} leaves no face to compare`]);
  else if (notChecked(identity)) rows.push(['identity', 'not checked', identity.detail]);
  else if (identity.distance === null) rows.push(['identity', 'INCONCLUSIVE', `the input shows no face in any view (threshold ${identity.threshold.toFixed(3)})`]);
  else {
    const pass = identity.distance > identity.threshold;
    rows.push(['identity', passed(pass), `distance ${identity.distance.toFixed(3)} ${pass ? '>' : '<='} ${identity.threshold.toFixed(3)}: ${pass ? 'no longer the same face' : 'still the original face'}`]);
  }
  const reg = checks.registration;
  rows.push(['registration', passed(reg.pass), `${reg.metric} ${reg.value === null ? 'n/a' : reg.value.toFixed(3)} (${reg.flag}): ${record.standalone.registered} registered to the atlas`]);
  return rows;
}

/** Per view: the detectors that fired on the original and on the image ("-" where not searched). */
function faceViewRows(record: QcImageRecord): string[][] {
  const { face_views_input: before, face_views_output: after } = record.checks;
  const views = [...new Set([...Object.keys(before), ...Object.keys(after)])];
  const cell = (fired: string[] | undefined) => (fired === undefined ? '-' : fired.length === 0 ? 'none' : fired.join(', '));
  return views.map((v) => (record.standalone.original ? [v, cell(before[v]), cell(after[v])] : [v, cell(after[v])]));
}

/** The one-screen verdict printed by `micanon qc`. */
export function verdictText(record: QcImageRecord, written: readonly string[]): string {
  const { standalone } = record;
  const lines = [
    `micanon qc: ${path.basename(standalone.image)} (${record.method})${standalone.original ? ` against ${path.basename(standalone.original)}` : ', alone'}`,
  ];
  for (const [name, tone, detail] of checkRows(record)) lines.push(`  ${name.padEnd(14)}${tone.padEnd(13)}${detail}`);
  const views = faceViewRows(record);
  if (views.length > 0) {
    const header = standalone.original ? ['faces per view', 'original', 'image'] : ['faces per view', 'image'];
    const widths = header.map((h, i) => Math.max(h.length, ...views.map((row) => row[i]!.length)) + 2);
    for (const row of [header, ...views]) lines.push(`  ${row.map((cell, i) => cell.padEnd(widths[i]!)).join('').trimEnd()}`);
  }
  for (const file of written) lines.push(`  written: ${file}`);
  const rows = checkRows(record);
  const skipped = rows.filter(([, tone]) => tone === 'not checked').map(([name]) => name);
  const unsure = rows.filter(([, tone]) => tone === 'INCONCLUSIVE').map(([name]) => name);
  const notes = [
    ...(unsure.length > 0 ? [`inconclusive: ${unsure.join(', ')}`] : []),
    ...(skipped.length > 0 ? [`not checked: ${skipped.join(', ')}`] : []),
  ];
  lines.push(
    record.status === 'PASS'
      ? `PASS: every check that ran passed${notes.length > 0 ? ` (${notes.join('; ')})` : ''}`
      : `FAILED: ${record.reason ?? 'a check failed'}`,
  );
  return `${lines.join('\n')}\n`;
}

// ----------------------------------------------------------------------------- --out

/**
 * Write the record and its page under `outDir`; returns the files written. An original's record
 * is a pipeline record: written and shown the pipeline's way. An image alone gets its own pair.
 */
async function writeReport(outDir: string, record: QcImageRecord): Promise<string[]> {
  if (record.standalone.original) {
    const parsed = qcRecordSchema.parse(record);
    await writeQcRecord(outDir, parsed);
    const { records, unreadable } = await readQcRecords(outDir, parsed.subject);
    const page = await writeParticipantReport(outDir, parsed.subject, records, { unreadable });
    return [qcRecordPath(outDir, parsed), page];
  }
  const base = path.join(outDir, `${stemOf(path.basename(record.standalone.image))}_${record.method}_qc`);
  await writeFileAtomic(`${base}.json`, `${JSON.stringify(record, null, 2)}\n`);
  await writeFileAtomic(`${base}.html`, imageAlonePage(record));
  return [`${base}.json`, `${base}.html`];
}

const TONE_BADGE: Record<Tone, () => Html> = {
  PASS: () => passBadge(true),
  FAILED: () => passBadge(false),
  INCONCLUSIVE: () => badge('warn', 'INCONCLUSIVE'),
  'not checked': () => badge('none', 'NOT CHECKED'),
  'n/a': () => badge('none', 'n/a'),
};

/** A one-card page for an image checked alone: its views, its slice, the checks. */
export function imageAlonePage(record: QcImageRecord): string {
  const name = path.basename(record.standalone.image);
  const fired = record.checks.face_views_output;
  const renders = Object.entries(record.renders.output);
  const faces = (view: string) => (fired[view]?.length ? fired[view].join(', ') : 'no face');
  const slices = Object.entries(record.renders.slices).map(([slice, file]) => figure(fileUrl(file), slice, ''));
  const rows = checkRows(record).map(([check, tone, detail]) => html`<tr><th>${check}</th><td>${TONE_BADGE[tone]()}</td><td>${detail}</td></tr>`);
  const status = record.status === 'PASS' ? badge('pass', 'PASS') : badge('fail', 'FAILED');
  const body = html`<section class="card${record.status === 'PASS' ? '' : ' failed'}">
<div class="card-head"><h4>${name} · ${record.method} ${status}</h4><span class="path">${record.standalone.image}</span></div>
<div class="card-body">
${record.reason ? html`<p class="reason">${record.reason}</p>` : ''}
<div class="strip" style="--views: ${renders.length}"><div></div>${renders.map(([view]) => html`<div class="col-label">${view}</div>`)}
<div class="row-label">Image</div>${renders.map(([view, file]) => figure(fileUrl(file), `${view}: ${faces(view)}`, ''))}
<div class="row-label">Faces</div>${renders.map(([view]) => html`<div class="col-label">${faces(view)}</div>`)}</div>
<div class="slices">${slices}</div>
<table class="checks"><thead><tr><th>Check</th><th>Result</th><th>Detail</th></tr></thead><tbody>${rows}</tbody></table>
<p class="muted">Checked alone: brain, header and identity need the original (<code>micanon qc IMAGE --original ORIGINAL</code>).</p>
</div>
</section>`;
  return pageDocument({
    title: `${name} · micanon QC`,
    subtitle: name,
    nav: [],
    body,
    footer: html`Generated by micanon ${packageVersion} on ${new Date().toISOString()}. Figures are read from <code>${path.posix.dirname(Object.values(record.renders.output)[0] ?? 'figures/x')}/</code> beside this page.`,
  });
}
