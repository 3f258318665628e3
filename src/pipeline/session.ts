/**
 * One participant session, start to finish: choose output names, let the engine write every
 * (image, method) output into the run's work folder, prove each one (QC), and only then move a
 * vetted output into output_dir (through a temporary sibling made at that moment, then renamed)
 * with its scrubbed sidecar. Nothing un-vetted is ever written inside output_dir, not even under
 * a hidden name. A failure of one image never stops the others.
 */
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { moveFileAtomic, moveFilesInto } from '../bids/atomic.js';
import type { SessionPlan } from '../bids/discover.js';
import { chooseStandIn, type Geometry } from '../bids/reference.js';
import { outputPathsFor } from '../bids/outputs.js';
import type { RunConfig } from '../config.js';
import type { Engine } from '../engine/bridge.js';
import { anonymizeSessionCall, imageInfo, qcOutputs } from '../engine/contract.js';
import type { ImageRecord, Method } from '../engine/schemas.js';
import { readQcRecords, writeQcRecord } from '../qc/records.js';
import { participantFigureDir, writeParticipantReport } from '../qc/report.js';
import { describeError } from '../errors.js';
import { log } from '../log.js';
import { faultPoint } from './faults.js';
import { checkNotStopping } from './temps.js';
import type { RunProgress } from './progress.js';
import { writeOutputSidecar, writeRemovedFieldsLog } from './sidecars.js';

/** What happened to one (image, method) pair: the row of the run's summary. */
export interface OutputRecord {
  subject: string;
  session: string | null;
  input: string;
  method: Method;
  /** 'failed' also for an output written only because of --qc-fail-ok (`written` says so). */
  status: 'ok' | 'failed';
  /** True when the output is in output_dir (passed, or failed QC and --qc-fail-ok wrote it). */
  written: boolean;
  output: string | null;
  reason: string | null;
  brainVoxelsChanged: number | null;
  /** True when the vetted output could not be written into output_dir (full, read-only): exit 73. */
  cannotWrite?: boolean;
  /** Seconds of this method's own step on this image (the session's shared stages are in timings). */
  methodSeconds: number | null;
  engine: ImageRecord | null;
}

export interface SessionOutcome {
  records: OutputRecord[];
  /** Seconds per stage: the engine's, plus qc, plus `wall` (the whole session, start to end). */
  timings: Record<string, number>;
  /** The image registered to the atlas (absolute path) and why it was chosen. */
  reference: { input: string; reason: string };
}

/**
 * The session's reference: --t1w, else discovery's T1w, else (no T1w) the best 3D anatomical
 * image by its header (bids/reference.ts). A header the engine cannot read ranks last; the
 * image's own error surfaces when it is anonymized.
 */
export async function resolveReference(engine: Engine, plan: SessionPlan, config: RunConfig): Promise<SessionPlan> {
  if (config.t1w) return { ...plan, reference: config.t1w, referenceReason: '--t1w', referenceIsT1w: true };
  if (plan.referenceIsT1w) return plan;
  const geometries = new Map<string, Geometry | null>();
  for (const image of plan.images) {
    const info = await imageInfo(engine, { path: image.path }).catch(() => null);
    geometries.set(image.path, info);
  }
  const { reference, reason } = chooseStandIn(plan.images, geometries);
  return { ...plan, reference: reference.path, referenceReason: reason, images: [reference, ...plan.images.filter((i) => i !== reference)] };
}

interface PlannedOutput {
  input: string;
  relativePath: string;
  method: Method;
  finalImage: string;
  finalSidecar: string;
  /** Where the engine writes it: the session's work folder, never output_dir. */
  workImage: string;
}

export function sessionName(plan: Pick<SessionPlan, 'subject' | 'session'>): string {
  return `sub-${plan.subject}${plan.session ? `_ses-${plan.session}` : ''}`;
}

function planOutputs(plan: SessionPlan, config: RunConfig, sessionWork: string): PlannedOutput[] {
  return plan.images.flatMap((image) =>
    config.methods.map((method) => {
      const paths = outputPathsFor(image.relativePath, { layout: config.outputLayout, method, outputDir: config.outputDir });
      return {
        input: image.path,
        relativePath: image.relativePath,
        method,
        finalImage: paths.image,
        finalSidecar: paths.sidecar,
        workImage: path.join(sessionWork, 'outputs', path.relative(config.outputDir, paths.image)),
      };
    }),
  );
}

/**
 * Why an engine record may not become an output, or null when it may. This reads the engine's
 * reply to `anonymize_session`, before QC: an error, or the engine's own count of brain voxels it
 * changed (belt and braces: the engine refuses such an output itself, and QC would fail it too).
 * It decides nothing about QC; the QC verdict is the engine's (python/micanon/qc/verdict.py).
 */
function rejection(record: ImageRecord): string | null {
  if ('error' in record) return String(record.error);
  if (record.brain_voxels_changed !== 0) {
    return `${record.brain_voxels_changed} brain voxels differ from the input (must be 0); output discarded`;
  }
  return null;
}

/** The engine's QC verdict on one output (python/micanon/qc/verdict.py decides it). */
export interface QcVerdict {
  status: 'PASS' | 'FAILED';
  reason: string | null;
  /** A failure --qc-fail-ok may not override (brain or header proof, a fit inside the brain, or QC not run). */
  hard: boolean;
}

/**
 * The commit policy of one output: why it may not be written (`refused`, null: write it), and the
 * QC failure it is written despite, because of --qc-fail-ok (`writtenDespite`). An engine
 * rejection or a hard QC failure always refuses; an output without a QC verdict is refused too.
 */
export function commitPolicy(
  engineWhy: string | null,
  qc: QcVerdict | undefined,
  qcFailOk: boolean,
): { refused: string | null; writtenDespite: string | null } {
  if (engineWhy) return { refused: engineWhy, writtenDespite: null };
  if (!qc) return { refused: 'QC returned no verdict for this output', writtenDespite: null };
  if (qc.status === 'PASS') return { refused: null, writtenDespite: null };
  const failed = `QC FAILED: ${qc.reason ?? 'see the QC report'}`;
  return qcFailOk && !qc.hard ? { refused: null, writtenDespite: failed } : { refused: failed, writtenDespite: null };
}

/**
 * Prove every output before it lands: renders, face detection, identity, header and an
 * independent brain re-count (python/micanon/qc/). The engine returns each output's verdict
 * (status, reason, and `hard`), an image's inherited from its session's reference included; here
 * only --qc-fail-ok is applied to the record (where the output is written). Records go to
 * <qc_dir>/logs/qc, figures to <qc_dir>/sub-XX/figures; the participant report is rewritten from
 * all records on disk. The engine draws the figures in the session's work folder (`qcFigures`),
 * and they are moved into the QC folder only once every record is back, just before the records
 * are written: a run killed during QC leaves no renders of the input's face (and no figure
 * without its record) behind. The QC dir is the engine's `output_dir` here: render paths in the records
 * are relative to it. Returns the verdict per work-folder output path.
 */
async function checkOutputs(
  engine: Engine,
  plan: SessionPlan,
  config: RunConfig,
  candidates: ReadonlyArray<{ output: PlannedOutput; record: ImageRecord | null }>,
  qcFigures: string,
): Promise<Map<string, QcVerdict>> {
  const verdicts = new Map<string, QcVerdict>();
  if (candidates.length === 0) return verdicts;
  const items = candidates.map(({ output, record }) => {
    const engineRecord = record && !('error' in record) ? record : null;
    return {
      input: output.input,
      output: output.workImage,
      output_name: path.relative(config.outputDir, output.finalImage).split(path.sep).join('/'),
      method: output.method,
      brain_voxels_changed: engineRecord?.brain_voxels_changed ?? 0,
      guard_voxels: engineRecord?.guard_voxels ?? 0,
      brain_guard: engineRecord?.brain_guard_mask ?? null,
      face_roi: engineRecord?.face_roi_mask ?? null,
      atlas_head: engineRecord?.atlas_head_image ?? null,
      warp: engineRecord?.warp ?? null,
      head_affine: engineRecord?.image_to_atlas ?? null,
      registration: { flag: 'ok', ...(engineRecord?.registration ?? {}) },
    };
  });
  const figuresDir = participantFigureDir(config.qcDir, plan.subject);
  const pending = qcOutputs(engine, {
    output_dir: config.qcDir,
    bids_dir: config.bidsDir,
    subject: plan.subject,
    session: plan.session,
    figures_dir: figuresDir,
    staging_dir: qcFigures,
    reference: { input: plan.reference, reason: plan.referenceReason },
    items,
  });
  await faultPoint('qc', { hold: false });
  const reply = await pending;
  if (reply.records.length !== items.length) {
    throw new Error(`the engine returned ${reply.records.length} QC records for ${items.length} outputs`);
  }
  await moveFilesInto(qcFigures, figuresDir);
  for (const [index, record] of reply.records.entries()) {
    // --qc-fail-ok writes failures that are not hard anyway: the record says where.
    if (record.status === 'FAILED' && config.qcFailOk && !record.hard) record.output = items[index]!.output_name;
    await writeQcRecord(config.qcDir, record);
    verdicts.set(candidates[index]!.output.workImage, { status: record.status, reason: record.reason ?? null, hard: record.hard });
    log.info(`${record.input} ${record.method}: QC ${record.status}${record.reason ? ` (${record.reason})` : ''}`);
  }
  return verdicts;
}

/** Rewrite the participant's QC page from every record on disk; returns its path. */
async function updateReport(config: RunConfig, subject: string): Promise<string> {
  await faultPoint('report', { hold: true });
  const { records, unreadable } = await readQcRecords(config.qcDir, subject);
  return writeParticipantReport(config.qcDir, subject, records, { unreadable });
}

/**
 * An output refused now must not stay in output_dir from an earlier run: its QC record (just
 * rewritten) no longer allows it.
 */
async function removeRefusedOutput(output: PlannedOutput, config: RunConfig): Promise<void> {
  const removed = await rm(output.finalImage).then(
    () => true,
    () => false,
  );
  if (!removed) return;
  await rm(output.finalSidecar, { force: true });
  log.warn(`${path.relative(config.outputDir, output.finalImage)}: removed (written by an earlier run; refused now)`);
}

export async function anonymizeSession(
  engine: Engine,
  plan: SessionPlan,
  config: RunConfig,
  workDir: string,
  progress: RunProgress | null = null,
): Promise<SessionOutcome> {
  const sessionStarted = Date.now();
  const name = sessionName(plan);
  plan = await resolveReference(engine, plan, config);
  const sessionWork = path.join(workDir, name);
  const planned = planOutputs(plan, config, sessionWork);
  const reference = plan.reference;
  const referenceOf = { input: reference, reason: plan.referenceReason };
  log.info(`${name}: reference ${path.basename(reference)} (${plan.referenceReason}); ` +
    `${plan.images.length} image(s) x ${config.methods.join(', ')}`);
  // Output folders in output_dir are made only when a vetted output is moved there. The session's
  // work folder is made without its parents: a run folder an interrupt removed stays removed.
  checkNotStopping();
  await mkdir(sessionWork).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  for (const output of planned) {
    checkNotStopping();
    await mkdir(path.dirname(output.workImage), { recursive: true });
  }
  const outputs: Record<string, Record<string, string>> = {};
  for (const output of planned) (outputs[output.input] ??= {})[output.method] = output.workImage;

  const finish = (output: PlannedOutput, fields: Partial<OutputRecord>): OutputRecord => ({
    subject: plan.subject,
    session: plan.session,
    input: output.input,
    method: output.method,
    status: 'failed',
    written: false,
    output: null,
    reason: null,
    brainVoxelsChanged: null,
    methodSeconds: null,
    engine: null,
    ...fields,
  });
  const wall = (timings: Record<string, number>) => ({ ...timings, wall: (Date.now() - sessionStarted) / 1000 });

  let images: ImageRecord[];
  let timings: Record<string, number> = {};
  progress?.stage(`${name}: registration and ${config.methods.join(', ')}`);
  try {
    const pending = anonymizeSessionCall(engine, {
      reference,
      others: plan.images
        .filter((image) => image.path !== reference)
        .map((image) => ({ path: image.path, register_via: image.registerVia })),
      methods: config.methods,
      atlas: config.atlas,
      outputs,
      dilate: config.dilate,
      robust: config.robust,
      remove_ears: config.removeEars,
      work_dir: sessionWork,
      keep_work: !config.cleanup,
      seed: config.seed,
      reference_is_t1w: plan.referenceIsT1w,
    });
    await faultPoint('registration', { hold: false });
    const result = await pending;
    for (const line of result.log) log.verbose(`${name}: ${line}`);
    log.verbose(`${name}: engine stages (s): ${JSON.stringify(result.timings)}`);
    images = result.images;
    timings = result.timings;
  } catch (err) {
    const reason = describeError(err);
    log.error(`${name}: ${path.basename(reference)}: ${reason}`);
    return { records: planned.map((output) => finish(output, { reason })), timings: wall(timings), reference: referenceOf };
  }

  const decided = planned.map((output) => {
    const record = images.find((r) => r.input === output.input && r.method === output.method) ?? null;
    return { output, record, why: record ? rejection(record) : 'the engine returned no result for this output' };
  });
  const passedEngine = decided.filter((d) => d.why === null);
  const qcStarted = Date.now();
  progress?.stage(`${name}: QC`);
  const qcVerdicts = await checkOutputs(engine, plan, config, passedEngine, path.join(sessionWork, 'qc-figures')).catch((err: unknown) => {
    // An output that could not be proven is treated as failing its proof.
    const reason = `QC could not run: ${describeError(err)}`;
    log.error(`${name}: ${reason}`);
    return new Map<string, QcVerdict>(passedEngine.map((d) => [d.output.workImage, { status: 'FAILED', reason, hard: true }]));
  });
  const qcSeconds = (Date.now() - qcStarted) / 1000;

  const records: OutputRecord[] = [];
  const removedFields: Record<string, string[]> = {};
  for (const { output, record, why: engineWhy } of decided) {
    const { refused: why, writtenDespite: qcWhy } = commitPolicy(engineWhy, qcVerdicts.get(output.workImage), config.qcFailOk);
    const fields = {
      engine: record,
      brainVoxelsChanged: record && 'brain_voxels_changed' in record ? Number(record.brain_voxels_changed) : null,
      methodSeconds: record && 'seconds' in record ? Number(record.seconds) : null,
    };
    if (why) {
      await rm(output.workImage, { force: true });
      await removeRefusedOutput(output, config);
      log.error(`${output.relativePath} ${output.method}: ${why}`);
      records.push(finish(output, { ...fields, reason: why }));
      continue;
    }
    try {
      // Sidecar first: an image never lands without its scrubbed sidecar.
      const removed = await writeOutputSidecar({ config, input: output.input, method: output.method, sidecarPath: output.finalSidecar });
      removedFields[path.relative(config.outputDir, output.finalSidecar)] = removed;
      await moveFileAtomic(output.workImage, output.finalImage, () => faultPoint('rename', { hold: true }));
      const where = path.relative(config.outputDir, output.finalImage);
      if (qcWhy) {
        log.warn(`${output.relativePath} ${output.method}: ${qcWhy}; written because of --qc-fail-ok -> ${where}`);
        records.push(finish(output, { ...fields, written: true, output: output.finalImage, reason: `${qcWhy} (written because of --qc-fail-ok)` }));
      } else {
        log.info(`${output.relativePath} ${output.method}: ok -> ${where}`);
        records.push(finish(output, { ...fields, status: 'ok', written: true, output: output.finalImage }));
      }
    } catch (err) {
      // Its image did not land, so neither may the sidecar written for it.
      await rm(output.finalSidecar, { force: true });
      const reason = describeError(err);
      log.error(`${output.relativePath} ${output.method}: ${reason}`);
      records.push(finish(output, { ...fields, reason, cannotWrite: true }));
    }
  }
  if (Object.keys(removedFields).length) await writeRemovedFieldsLog(config, plan, removedFields);
  if (passedEngine.length > 0) await updateReport(config, plan.subject);
  timings.qc = qcSeconds;
  return { records, timings: wall(timings), reference: referenceOf };
}
