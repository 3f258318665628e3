/**
 * `micanon slurm`: plan the tasks (leaving out the participants already done), write the list
 * file and the two sbatch scripts into `<output_dir>/logs/slurm/`, then print them or submit
 * them: the array first, then the group level with `--dependency=afterany:<array>` (afterany,
 * not afterok: with afterok one failed participant out of hundreds would leave the group job
 * pending for ever, and the group page is where that failure shows).
 */
import path from 'node:path';
import { execa } from 'execa';
import { writeFileAtomic } from '../bids/atomic.js';
import type { SlurmCommand } from '../cli/slurm.js';
import { ExitCode, MicanonError } from '../errors.js';
import { log } from '../log.js';
import { packageRoot } from '../paths.js';
import { arrayScript, groupScript, listText, type ScriptPlan } from './script.js';
import { planTasks, type PendingTask } from './tasks.js';

/** What a submission wrote and, with --submit, the scheduler's job ids. */
export interface Submission {
  arrayScript: string;
  groupScript: string;
  listFile: string;
  tasks: PendingTask[];
  arrayJob: string | null;
  groupJob: string | null;
}

/** Folders outside `outputDir` among `dirs` (inside ones are bound with it). */
function outside(outputDir: string, dirs: Array<string | null>): string[] {
  return [...new Set(dirs.filter((d): d is string => d !== null && path.relative(outputDir, d).startsWith('..')))];
}

/** `YYYYMMDDTHHMMSSZ`: sorts in time order, one per submission. */
function stamp(now: Date): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

async function sbatch(args: string[]): Promise<string> {
  let result;
  try {
    result = await execa('sbatch', ['--parsable', ...args], { reject: false, all: true });
  } catch (err) {
    throw new MicanonError('SLURM_UNAVAILABLE', `sbatch cannot be run: ${(err as Error).message.split('\n')[0]}`);
  }
  if (result.failed) {
    if ((result as { code?: string }).code === 'ENOENT') throw new MicanonError('SLURM_UNAVAILABLE', 'sbatch is not on PATH');
    throw new MicanonError('SLURM_SUBMIT_FAILED', `sbatch ${args.join(' ')} failed: ${String(result.all ?? '').trim().split('\n').pop() ?? ''}`);
  }
  // --parsable prints `<job id>[;<cluster>]`.
  const id = /^(\d+)/.exec(String(result.stdout).trim())?.[1];
  if (!id) throw new MicanonError('SLURM_SUBMIT_FAILED', `sbatch said "${String(result.stdout).trim()}", not a job id`);
  return id;
}

export async function runSlurm(command: SlurmCommand, now = new Date()): Promise<{ code: number; submission: Submission | null }> {
  const { slurm, config, passThrough } = command;
  const { pending, done } = await planTasks(config, slurm.perSession);
  const unit = slurm.perSession ? 'session(s)' : 'participant(s)';
  if (done.length) log.info(`${done.length} ${unit} already done (their run records in ${path.join(config.outputDir, 'logs')} list every output written): not submitted`);
  for (const task of pending) log.info(`  submit sub-${task.subject}${task.session ? ` ses-${task.session}` : ''}: ${task.reason}`);
  if (pending.length === 0) {
    log.info(`nothing to submit: every selected ${slurm.perSession ? 'session' : 'participant'} is done`);
    return { code: ExitCode.ok, submission: null };
  }
  const logDir = path.join(config.outputDir, 'logs', 'slurm');
  const stem = `micanon_${stamp(now)}`;
  const plan: ScriptPlan = {
    runner: { container: slurm.container, node: process.execPath, cli: path.join(packageRoot, 'bin', 'micanon.js') },
    bidsDir: config.bidsDir,
    outputDir: config.outputDir,
    writable: outside(config.outputDir, [config.qcDir]),
    // The atlas only when given: the image has its own (the default path is this installation's).
    readable: outside(config.bidsDir, [passThrough.some((w) => w === '--atlas' || w.startsWith('--atlas=')) ? config.atlas : null, config.t1w]),
    listFile: path.join(logDir, `${stem}_tasks.txt`),
    tasks: pending.length,
    logDir,
    stem,
    arrayLimit: slurm.arrayLimit,
    partition: slurm.partition,
    time: slurm.time,
    mem: slurm.mem,
    cpusPerTask: slurm.cpusPerTask,
    passThrough,
    sessionLabels: slurm.perSession ? null : config.sessionLabels,
  };
  const submission: Submission = {
    arrayScript: path.join(logDir, `${stem}.sbatch`),
    groupScript: path.join(logDir, `${stem}_group.sbatch`),
    listFile: plan.listFile,
    tasks: pending,
    arrayJob: null,
    groupJob: null,
  };
  const array = arrayScript(plan);
  await writeFileAtomic(submission.listFile, listText(pending));
  await writeFileAtomic(submission.arrayScript, array);
  await writeFileAtomic(submission.groupScript, groupScript(plan));
  if (!slurm.submit) {
    process.stdout.write(array);
    log.info(`wrote ${submission.arrayScript} (${pending.length} task(s), list ${submission.listFile}) and ${submission.groupScript}`);
    log.info(`submit: jid=$(sbatch --parsable ${submission.arrayScript}) && sbatch --dependency=afterany:$jid ${submission.groupScript}   (or run micanon slurm again with --submit)`);
    return { code: ExitCode.ok, submission };
  }
  submission.arrayJob = await sbatch([submission.arrayScript]);
  submission.groupJob = await sbatch([`--dependency=afterany:${submission.arrayJob}`, submission.groupScript]);
  await writeFileAtomic(path.join(logDir, `${stem}.json`), `${JSON.stringify(submission, null, 2)}\n`);
  process.stdout.write(`${submission.arrayJob} ${submission.groupJob}\n`);
  log.info(
    `submitted array job ${submission.arrayJob} (${pending.length} task(s)${slurm.arrayLimit ? `, at most ${slurm.arrayLimit} at once` : ''}) and group job ${submission.groupJob} after it; ` +
      `task logs ${path.join(logDir, `${stem}_<job>_<task>.log`)}; per task exit codes: sacct -j ${submission.arrayJob} (or scontrol show job ${submission.arrayJob})`,
  );
  return { code: ExitCode.ok, submission };
}
