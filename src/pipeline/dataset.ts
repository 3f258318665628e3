/**
 * A whole run over a dataset: check the input, plan every session, prepare the output dataset,
 * start the engine once, anonymize session after session, end with a summary. The exit code
 * says whether anything failed; other participants always go on.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runId, workFolderName } from '../bids/atomic.js';
import { discoverAnatomy, type SessionPlan } from '../bids/discover.js';
import type { RunConfig } from '../config.js';
import { Engine } from '../engine/bridge.js';
import { atlasInfo } from '../engine/contract.js';
import { ExitCode, MicanonError } from '../errors.js';
import { addJsonLogFile, log } from '../log.js';
import { packageVersion } from '../version.js';
import { prepareOutputDataset, qcLocationNote, summariseOutputs } from './outputs.js';
import { readQcRecords } from '../qc/records.js';
import { participantReportPath, writeParticipantReport } from '../qc/report.js';
import { faultPoint } from './faults.js';
import { RunProgress } from './progress.js';
import { checkParticipantInputs, type InputWarning, type ParticipantInputs } from './inputs.js';
import { anonymizeSession, sessionName, type OutputRecord } from './session.js';
import { cleanUpRun, keptWorkFolder, removeLeftoverWork, removeParticipantLeftovers, setWorkFolder } from './temps.js';
import { printSummary, writeRunSummary } from './summary.js';
import { type RunValidation, validateInput, validateOutput } from './validation.js';

/** The run's work folder `<-w or system temp>/micanon-work-<run id>`, removed when the run ends. */
async function makeWorkDir(config: RunConfig): Promise<string> {
  const root = config.workDir ?? tmpdir();
  const folder = path.join(root, workFolderName);
  try {
    await mkdir(folder, { recursive: true });
  } catch (err) {
    throw new MicanonError(
      'CANNOT_CREATE_OUTPUT',
      `cannot create a work folder in ${root}: ${(err as Error).message} (read-only container? pass -w/--work-dir on a mounted volume)`,
    );
  }
  setWorkFolder(folder, !config.cleanup);
  return folder;
}

/**
 * The run's own JSON-lines log: `micanon_<start>_[sub-<label>_]<run id>.jsonl`. The run id (host,
 * pid namespace, pid, random) keeps two runs apart even when SLURM tasks on two nodes start in
 * the same millisecond with the same pid, so no two runs ever append to one file; the label
 * (when the run has one participant, as a SLURM task does) says whose log it is.
 */
function runLogName(started: Date, plans: readonly SessionPlan[]): string {
  const subjects = [...new Set(plans.map((p) => p.subject))];
  const whose = subjects.length === 1 ? `sub-${subjects[0]}_` : '';
  return `micanon_${started.toISOString().replace(/[:.]/g, '-')}_${whose}${runId}.jsonl`;
}

/**
 * The exit code of a run: a refused input's (65/66) first, then 73 when a vetted output could not
 * be written into output_dir, then 1 when any other output was not written.
 */
function runExitCode(refused: readonly ParticipantInputs[], records: readonly OutputRecord[]): number {
  const code = refused.find((r) => r.exitCode !== null)?.exitCode;
  if (code) return code;
  if (records.some((r) => r.cannotWrite)) return ExitCode.cannotCreateOutput;
  return records.every((r) => r.written) ? ExitCode.ok : ExitCode.failure;
}

export async function runDataset(config: RunConfig): Promise<number> {
  if (config.analysisLevel === 'group') return summariseOutputs(config);

  const started = new Date();
  // First, so the validator's view of the input lives in it and goes with it, however the run ends.
  const workDir = await makeWorkDir(config);
  let engine: Engine | null = null;
  const records: OutputRecord[] = [];
  const timings = new Map<string, Record<string, number>>();
  const references = new Map<string, { input: string; reason: string }>();
  const validation: RunValidation = { input: null, output: null };
  let plans: SessionPlan[] = [];
  let inputs: ParticipantInputs[] = [];
  let progress: RunProgress | null = null;
  // The engine starts (and imports its image stack) while the validator and discovery run.
  const starting = Engine.start({ threads: config.nthreads, scratchDir: workDir });
  starting.catch(() => undefined); // awaited below; a failure is raised there
  try {
    validation.input = await validateInput(config, workDir);
    plans = await discoverAnatomy(config.bidsDir, {
      participants: config.participantLabels,
      excludeParticipants: config.excludeParticipantLabels,
      sessions: config.sessionLabels,
      excludeSessions: config.excludeSessionLabels,
      filters: config.bidsFilters,
      onSkip: (skipped) => log.verbose(`skipped ${skipped.path}: ${skipped.reason}`),
    });
    if (config.bidsFilters?.ignoredKinds.length) {
      log.info(`--bids-filter-file: ${config.bidsFilters.ignoredKinds.join(', ')} ignored (micanon anonymizes anatomical images only)`);
    }
    engine = await starting;
    const running = engine;
    await atlasInfo(running, { path: config.atlas }).catch((err: unknown) => {
      // The engine's message already names the atlas file and what is wrong with it.
      const message = (err as Error).message;
      throw new MicanonError('ATLAS_INVALID', message.includes(config.atlas) ? message : `atlas ${config.atlas}: ${message}`);
    });
    // Every input image is checked before anything is created for its participant.
    inputs = await checkParticipantInputs(running, plans, config.t1w);
    const refusedSubjects = new Set(inputs.filter((i) => i.exitCode !== null).map((i) => i.subject));
    const accepted = plans.filter((plan) => !refusedSubjects.has(plan.subject));
    if (accepted.length > 0) {
      await prepareOutputDataset(config);
      addJsonLogFile(path.join(config.outputDir, 'logs', runLogName(started, accepted)));
    }
    log.info(
      `micanon ${packageVersion}: ${accepted.length === plans.length ? plans.length : `${accepted.length} of ${plans.length}`} session(s), methods ${config.methods.join(', ')}, ` +
        `${config.nthreads} thread(s), layout ${config.outputLayout}`,
    );
    for (const participant of inputs) {
      for (const error of participant.errors) log.error(`sub-${participant.subject}: ${error}`);
      if (participant.exitCode !== null) log.error(`sub-${participant.subject}: input refused, nothing done for this participant`);
      for (const warning of participant.warnings) log.warn(`sub-${participant.subject}: ${warning.message}`);
    }
    await faultPoint('inputs', { hold: true });
    const qcNote = qcLocationNote(config);
    if (qcNote && accepted.length > 0) log.info(qcNote);
    const leftoverWork = await removeLeftoverWork(config.workDir ?? tmpdir());
    if (leftoverWork > 0) log.info(`removed ${leftoverWork} work folder(s) of earlier runs that were killed`);
    for (const subject of new Set(accepted.map((plan) => plan.subject))) {
      const removed = await removeParticipantLeftovers(config, subject);
      log.log(removed > 0 ? 'info' : 'verbose', `sub-${subject}: removed ${removed} temporary file(s) of earlier runs that were killed`);
    }
    progress = new RunProgress(accepted, config.methods.length);
    progress.start();
    for (const [index, plan] of accepted.entries()) {
      log.info(`[${index + 1}/${accepted.length}] ${sessionName(plan)}`);
      const outcome = await anonymizeSession(running, plan, config, workDir, progress);
      progress.sessionDone(plan, outcome.records.length);
      records.push(...outcome.records);
      timings.set(sessionName(plan), outcome.timings);
      references.set(sessionName(plan), outcome.reference);
    }
    if (accepted.length > 0) validation.output = await validateOutput(config, workDir, [...new Set(accepted.map((plan) => plan.subject))]);
  } finally {
    progress?.stop();
    // Not yet taken when the run stopped before it: still closed, once it has started.
    await (engine ?? (await starting.catch(() => null)))?.close();
    const kept = keptWorkFolder();
    await cleanUpRun();
    if (kept) log.info(`work folder kept: ${kept}`);
  }
  if (records.length > 0) {
    printSummary(records, timings);
    const warnings = new Map<string, InputWarning[]>();
    for (const plan of plans) {
      const own = new Set(plan.images.map((image) => image.path));
      const all = inputs.find((i) => i.subject === plan.subject)?.warnings ?? [];
      warnings.set(sessionName(plan), all.filter((w) => own.has(w.input) || w.input === config.t1w));
    }
    await writeRunSummary(config, records, started, timings, references, warnings, validation);
  }
  for (const subject of new Set(records.map((r) => r.subject))) {
    const page = participantReportPath(config.qcDir, subject);
    // The page was written session by session; now it also gets what the validator said.
    if (existsSync(page) && (validation.input || validation.output)) {
      const { records: qc, unreadable } = await readQcRecords(config.qcDir, subject);
      await writeParticipantReport(config.qcDir, subject, qc, { unreadable, validation });
    }
    log.info(existsSync(page) ? `QC page of sub-${subject}: ${page}` : `sub-${subject}: no QC page (no output reached QC)`);
  }
  const code = runExitCode(inputs, records);
  // Output that breaks BIDS is micanon's own failure, whatever QC said of the images.
  const broken = validation.output?.errors.length ?? 0;
  if (broken === 0) return code;
  log.error(`${config.outputDir} breaks BIDS: ${broken} error(s) of the validator, named above, in the run record (bidsValidation) and on the QC page`);
  return code === ExitCode.ok ? ExitCode.failure : code;
}
