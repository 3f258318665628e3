/**
 * The output dataset as a whole: created (or reused) before any participant runs, safe when
 * several participant jobs share it; and the `group` level summary gathered from it.
 */
import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { copyFileAtomic, writeFileAtomic } from '../bids/atomic.js';
import { ensureDerivativeDescription } from '../bids/derivatives.js';
import { scrubParticipantsTsv, scrubScansTsv, scrubSidecar } from '../bids/sidecar.js';
import type { RunConfig } from '../config.js';
import { ExitCode, MicanonError } from '../errors.js';
import { log } from '../log.js';
import { discoverAnatomy } from '../bids/discover.js';
import { selectLabels } from '../bids/selection.js';
import { writeGroupReport, type MissingResult } from '../qc/group.js';
import { taskKey, taskLogErrors } from '../slurm/tasklogs.js';
import { runRecordPath } from './summary.js';
import { qcFolder, readQcRecords } from '../qc/records.js';
import { reidentifyDataset } from './attack.js';
import { packageRepository, packageVersion } from '../version.js';
import { validateOutput } from './validation.js';

/**
 * `.bidsignore` of output_dir: run logs are never BIDS; QC (records, pages, figures) only where it
 * is written inside output_dir (the default outside the raw layout).
 *
 * Folder patterns carry no trailing slash: the BIDS validator 3 tests a folder by its path without
 * one, so a pattern `.../figures/` hides the figures but not their folder, which it then reports
 * as NOT_INCLUDED; `.../figures` hides both (gitignore: a pattern without a slash at the end
 * matches files and folders alike).
 */
export function bidsIgnoreText(config: Pick<RunConfig, 'outputDir' | 'qcDir'>): string {
  const qcRelative = path.relative(config.outputDir, config.qcDir);
  if (qcRelative === '') return 'logs/\nsub-*/figures\n*.html\n';
  if (!qcRelative.startsWith('..')) return `logs/\n/${qcRelative.split(path.sep).join('/')}\n`;
  return 'logs/\n';
}

/**
 * One INFO line when QC is not beside the outputs: where it went and why, or null when QC is in
 * output_dir (nothing to say).
 */
export function qcLocationNote(config: Pick<RunConfig, 'outputDir' | 'qcDir' | 'outputLayout'>): string | null {
  if (config.qcDir === config.outputDir) return null;
  const why = config.outputLayout === 'raw' ? 'QC figures show faces: kept out of the shareable copy' : '--qc-dir';
  return `QC records, figures and pages: ${config.qcDir} (${why})`;
}

/** Container facts from the image's environment (set in the Dockerfile / Singularity.def). */
function containerInfo(): { Type: string; Tag: string } | undefined {
  const type = process.env.MICANON_CONTAINER_TYPE;
  const tag = process.env.MICANON_CONTAINER_TAG;
  return type && tag ? { Type: type, Tag: tag } : undefined;
}

async function ensureDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw new MicanonError('CANNOT_CREATE_OUTPUT', `cannot create ${dir}: ${(err as Error).message}`);
  }
}

/**
 * Raw layout: a shareable copy of the dataset. Anatomical images are never copied (the pipeline
 * writes the anonymized ones; those of participants not selected would carry faces), every
 * other sidecar is scrubbed, ages >= 89 are binned and acquisition times blanked.
 * A run copies the dataset's own files and the folders of the participants it selected, not the
 * others': every task of a SLURM array (one participant each) would otherwise copy every
 * participant's functional and diffusion data again, the whole dataset once per participant.
 * Every participant job writes this copy into the same output_dir at once: each
 * file is replaced whole (a temporary sibling renamed into place) with the same bytes, so
 * whichever job writes last, no reader ever sees a torn participants.tsv.
 */
async function copyRawDataset(config: RunConfig): Promise<void> {
  const isAnatFile = (rel: string) => rel.split(path.sep).includes('anat') && /\.(nii(\.gz)?|json)$/.test(rel);
  const top = await readdir(config.bidsDir, { withFileTypes: true });
  const participants = top.filter((e) => e.isDirectory() && /^sub-[A-Za-z0-9]+$/.test(e.name)).map((e) => e.name.slice(4));
  const selected = new Set(
    selectLabels(participants, { include: config.participantLabels, exclude: config.excludeParticipantLabels }, 'sub', config.bidsDir),
  );
  const entries = [];
  for (const entry of top) {
    if (/^sub-/.test(entry.name) && entry.isDirectory() && !selected.has(entry.name.slice(4))) continue;
    entries.push(entry);
    if (entry.isDirectory()) entries.push(...(await readdir(path.join(config.bidsDir, entry.name), { recursive: true, withFileTypes: true })));
  }
  for (const entry of entries) {
    const source = path.join(entry.parentPath, entry.name);
    const rel = path.relative(config.bidsDir, source);
    const top = rel.split(path.sep)[0];
    if (top === 'derivatives' || top === 'sourcedata' || isAnatFile(rel)) continue;
    // A link (DataLad) is copied as the file it points to; a folder is made by the files in it.
    if (!entry.isFile() && !(entry.isSymbolicLink() && (await stat(source).then((s) => s.isFile(), () => false)))) continue;
    const target = path.join(config.outputDir, rel);
    if (entry.name === 'participants.tsv') {
      const { text, binned } = scrubParticipantsTsv(await readFile(source, 'utf8'));
      if (binned) log.info(`participants.tsv: ${binned} age(s) >= 89 written as 89+`);
      await writeFileAtomic(target, text);
    } else if (entry.name.endsWith('_scans.tsv')) {
      await writeFileAtomic(target, scrubScansTsv(await readFile(source, 'utf8')).text);
    } else if (entry.name.endsWith('.json') && entry.name !== 'dataset_description.json') {
      const { sidecar } = scrubSidecar(JSON.parse(await readFile(source, 'utf8')) as Record<string, unknown>, {
        keepFields: config.keepFields,
        dropFields: config.dropFields,
      });
      await writeFileAtomic(target, `${JSON.stringify(sidecar, null, 2)}\n`);
    } else {
      await copyFileAtomic(source, target);
    }
  }
}

export async function prepareOutputDataset(config: RunConfig): Promise<void> {
  await ensureDir(config.outputDir);
  await ensureDir(path.join(config.outputDir, 'logs'));
  await ensureDir(config.qcDir);
  if (config.outputLayout === 'derivatives') {
    await ensureDerivativeDescription(config.outputDir, {
      version: packageVersion,
      // CodeURL only when package.json names the repository: micanon is not published yet.
      codeUrl: packageRepository ?? undefined,
      container: containerInfo(),
      sourceRoot: config.bidsDir,
    });
    await writeFileAtomic(path.join(config.outputDir, '.bidsignore'), bidsIgnoreText(config));
  } else if (config.outputLayout === 'raw') {
    await copyRawDataset(config);
    await writeFileAtomic(path.join(config.outputDir, '.bidsignore'), bidsIgnoreText(config));
  }
}

interface SessionSummaryFile {
  /** Absent in records of micanon before 0.1.0's --qc-dir: nothing to check them against. */
  outputLayout?: string;
  qcDir?: string;
  outputs: Array<{ subject: string; session: string | null; input: string; method: string; status: string; output: string | null; reason: string | null; brainVoxelsChanged: number | null }>;
}

function checkSameLayout(config: RunConfig, file: string, body: SessionSummaryFile): void {
  const layout = body.outputLayout;
  const qcDir = body.qcDir === undefined ? undefined : path.resolve(config.outputDir, body.qcDir);
  if ((layout === undefined || layout === config.outputLayout) && (qcDir === undefined || qcDir === config.qcDir)) return;
  throw new MicanonError(
    'USAGE',
    `logs/${file} was written with --output-layout ${layout ?? config.outputLayout} and QC in ${qcDir ?? config.qcDir}; ` +
      `the group level needs the same (it has --output-layout ${config.outputLayout}, QC in ${config.qcDir})`,
  );
}

/**
 * The selected sessions of bids_dir that have no run record: a participant whose input was
 * refused, or whose run failed or was killed before the end, is listed, not silently absent.
 * The reason comes from its SLURM task log when `micanon slurm` ran it.
 */
async function sessionsWithoutResult(config: RunConfig): Promise<MissingResult[]> {
  let plans;
  try {
    plans = await discoverAnatomy(config.bidsDir, { participants: config.participantLabels ?? [], sessions: config.sessionLabels ?? [] });
  } catch (err) {
    log.warn(`participants without a result not looked for: ${(err as Error).message}`);
    return [];
  }
  const absent = plans.filter((plan) => !existsSync(runRecordPath(config.outputDir, plan)));
  if (absent.length === 0) return [];
  const errors = await taskLogErrors(config.outputDir);
  return absent.map((plan) => ({
    subject: plan.subject,
    session: plan.session,
    reason: errors.get(taskKey(plan.subject, plan.session)) ?? errors.get(taskKey(plan.subject, null)) ?? 'no run record: not run yet, or refused, failed or killed (see its log)',
  }));
}

/** `group` level: gather every participant's run record into logs/group_summary.tsv. */
export async function summariseOutputs(config: RunConfig): Promise<number> {
  const logs = path.join(config.outputDir, 'logs');
  const files = (await readdir(logs).catch(() => [])).filter((f) => f.endsWith('_micanon.json')).sort();
  if (files.length === 0) {
    throw new MicanonError('INPUT_MISSING', `no participant results in ${logs}: run the participant level first`);
  }
  const header = ['subject', 'session', 'input', 'method', 'status', 'brain_voxels_changed', 'output', 'reason'];
  const rows: string[][] = [];
  const bodies = await Promise.all(files.map(async (file) => [file, JSON.parse(await readFile(path.join(logs, file), 'utf8')) as SessionSummaryFile] as const));
  // Before anything is written: a group run with another layout would put its (empty) QC page
  // into a raw output_dir, the copy meant for sharing, and miss the participants' QC records.
  for (const [file, body] of bodies) checkSameLayout(config, file, body);
  for (const [, body] of bodies) {
    for (const o of body.outputs) {
      rows.push([o.subject, o.session ?? 'n/a', o.input, o.method, o.status, String(o.brainVoxelsChanged ?? 'n/a'), o.output ?? 'n/a', o.reason ?? '']);
    }
  }
  const missing = await sessionsWithoutResult(config);
  for (const m of missing) rows.push([m.subject, m.session ?? 'n/a', 'n/a', 'n/a', 'no result', 'n/a', 'n/a', m.reason]);
  for (const m of missing) log.warn(`${taskKey(m.subject, m.session)}: no result (${m.reason})`);
  const tsv = [header, ...rows].map((r) => r.map((c) => c.replace(/[\t\n]/g, ' ')).join('\t')).join('\n');
  await writeFileAtomic(path.join(logs, 'group_summary.tsv'), `${tsv}\n`);
  const note = qcLocationNote(config);
  if (note) log.info(note);
  const read = await readQcRecords(config.qcDir);
  const attack = await reidentifyDataset(config, read.records);
  // Every participant's outputs together, as they will be shared (the group files are in logs/
  // and the QC pages, both in .bidsignore).
  const tempRoot = config.workDir ?? tmpdir();
  await ensureDir(tempRoot);
  const validation = await validateOutput(config, tempRoot, []);
  const qc = await writeGroupReport(config.qcDir, { missing, read, attack, validation: { output: validation } });
  if (qc.records === 0) log.warn(`no QC records in ${qcFolder(config.qcDir)}: give the group level the --output-layout and --qc-dir of the participant run`);
  if (attack && 'result' in attack) {
    const rate = (kind: string) => attack.result.table.find((r) => r.protocol === 'cross_view' && r.kind === kind);
    const rates = ['input', 'deface', 'reface', 'warpface'].flatMap((kind) => {
      const r = rate(kind);
      return r && r.probes > 0 ? [`${kind} ${r.hits}/${r.probes}`] : [];
    });
    log.info(`re-identification attack (rank-1, cross-view): ${rates.join(', ')}; ${attack.result.verdict} -> ${qc.attackTsvs[0]}`);
  }
  log.info(`group QC report: ${qc.html}`);
  const failed = rows.filter((r) => r[4] !== 'ok' && r[4] !== 'no result');
  const notWritten = failed.filter((r) => r[6] === 'n/a').length;
  const writtenAnyway = failed.length - notWritten;
  log.info(
    `group: ${rows.length - missing.length} output(s) from ${files.length} session(s), ${failed.length} failed` +
      `${writtenAnyway ? ` (${writtenAnyway} of them written because of --qc-fail-ok)` : ''}` +
      `${missing.length ? `, ${missing.length} session(s) without a result` : ''} -> ${path.join(logs, 'group_summary.tsv')}`,
  );
  const broken = validation?.errors.length ?? 0;
  if (broken > 0) log.error(`${config.outputDir} breaks BIDS: ${broken} error(s) of the validator, named above and on the group QC page`);
  return notWritten || broken > 0 ? ExitCode.failure : ExitCode.ok;
}
