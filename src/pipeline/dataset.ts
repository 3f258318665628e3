/**
 * A whole run over a dataset: check the input, plan every session, prepare the output dataset,
 * start the engine once, anonymize session after session, end with a summary. The exit code
 * says whether anything failed; other participants always go on.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { discoverAnatomy } from '../bids/discover.js';
import type { RunConfig } from '../cli/config.js';
import { Engine } from '../engine/bridge.js';
import { atlasInfoSchema } from '../engine/schemas.js';
import { ExitCode, MicanonError } from '../errors.js';
import { addJsonLogFile, log } from '../log.js';
import { packageVersion } from '../version.js';
import { prepareOutputDataset, qcLocationNote, summariseOutputs } from './outputs.js';
import { anonymizeSession, sessionName, type OutputRecord } from './session.js';
import { printSummary, writeRunSummary } from './summary.js';
import { validateInput } from './validation.js';

async function makeWorkDir(config: RunConfig): Promise<string> {
  try {
    if (config.workDir) {
      await mkdir(config.workDir, { recursive: true });
      return await mkdtemp(path.join(config.workDir, 'micanon-'));
    }
    return await mkdtemp(path.join(tmpdir(), 'micanon-'));
  } catch (err) {
    throw new MicanonError(
      'CANNOT_CREATE_OUTPUT',
      `cannot create a work folder in ${config.workDir ?? tmpdir()}: ${(err as Error).message} (read-only container? pass -w/--work-dir on a mounted volume)`,
    );
  }
}

export async function runDataset(config: RunConfig): Promise<number> {
  if (config.analysisLevel === 'group') return summariseOutputs(config);

  await validateInput(config);
  const plans = await discoverAnatomy(config.bidsDir, {
    participants: config.participantLabels ?? [],
    sessions: config.sessionLabels ?? [],
    onSkip: (skipped) => log.verbose(`skipped ${skipped.path}: ${skipped.reason}`),
  });
  await prepareOutputDataset(config);
  const started = new Date();
  addJsonLogFile(path.join(config.outputDir, 'logs', `micanon_${started.toISOString().replace(/[:.]/g, '-')}_${process.pid}.jsonl`));
  log.info(
    `micanon ${packageVersion}: ${plans.length} session(s), methods ${config.methods.join(', ')}, ` +
      `${config.nthreads} thread(s), layout ${config.outputLayout}`,
  );
  const qcNote = qcLocationNote(config);
  if (qcNote) log.info(qcNote);

  const workDir = await makeWorkDir(config);
  const engine = await Engine.start({ threads: config.nthreads, scratchDir: workDir });
  const records: OutputRecord[] = [];
  const timings = new Map<string, Record<string, number>>();
  const references = new Map<string, { input: string; reason: string }>();
  try {
    await engine.call('atlas_info', { path: config.atlas }, atlasInfoSchema).catch((err: unknown) => {
      // The engine's message already names the atlas file and what is wrong with it.
      const message = (err as Error).message;
      throw new MicanonError('ATLAS_INVALID', message.includes(config.atlas) ? message : `atlas ${config.atlas}: ${message}`);
    });
    for (const [index, plan] of plans.entries()) {
      log.info(`[${index + 1}/${plans.length}] ${sessionName(plan)}`);
      const outcome = await anonymizeSession(engine, plan, config, workDir);
      records.push(...outcome.records);
      timings.set(sessionName(plan), outcome.timings);
      references.set(sessionName(plan), outcome.reference);
    }
  } finally {
    await engine.close();
    if (config.cleanup) await rm(workDir, { recursive: true, force: true });
    else log.info(`work folder kept: ${workDir}`);
  }
  printSummary(records);
  await writeRunSummary(config, records, started, timings, references);
  return records.every((r) => r.status === 'ok') ? ExitCode.ok : ExitCode.failure;
}
