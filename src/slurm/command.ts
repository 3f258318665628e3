/**
 * `micanon slurm`: plan the tasks (leaving out the participants already done), write the list
 * file and the two sbatch scripts into `<output_dir>/logs/slurm/`, then print them or submit
 * them: the array first, then the group level with `--dependency=afterany:<array>` (afterany,
 * not afterok: with afterok one failed participant out of hundreds would leave the group job
 * pending for ever, and the group page is where that failure shows).
 */
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
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

/**
 * The tasks of earlier submissions (their `<stem>.json` in logDir) that are still pending or
 * running, by taskKey-like label `<subject>[ <session>]`: submitting them again would run one
 * participant twice at once. Empty when squeue cannot be asked (then nothing is left out).
 */
export async function stillQueued(logDir: string): Promise<Map<string, string>> {
  const queued = new Map<string, string>();
  const names = (await readdir(logDir).catch(() => [] as string[])).filter((n) => /^micanon_\w+\.json$/.test(n));
  if (names.length === 0) return queued;
  const submissions = new Map<string, PendingTask[]>();
  for (const name of names) {
    try {
      const body = JSON.parse(await readFile(path.join(logDir, name), 'utf8')) as Partial<Submission>;
      if (body.arrayJob && Array.isArray(body.tasks)) submissions.set(body.arrayJob, body.tasks);
    } catch {
      // A record that cannot be read names no job to wait for.
    }
  }
  // Every array task of this user on its own line (-r): `<array job id> <task id>`.
  const result = await execa('squeue', ['-h', '-r', '-u', userInfo().username, '-o', '%F %K'], { reject: false });
  if (result.failed) {
    log.verbose(`squeue not asked which earlier tasks still run: ${String(result.stderr || result.message).split('\n')[0]}`);
    return queued;
  }
  for (const row of String(result.stdout).split('\n')) {
    const [job, task] = row.trim().split(/\s+/);
    const tasks = job ? submissions.get(job) : undefined;
    const entry = tasks?.[Number(task) - 1];
    if (entry) queued.set(listText([entry]).trim(), `${job}_${task}`);
  }
  return queued;
}

export async function runSlurm(command: SlurmCommand, now = new Date()): Promise<{ code: number; submission: Submission | null }> {
  const { slurm, config, passThrough } = command;
  const planned = await planTasks(config, slurm.perSession);
  const { done } = planned;
  const logDir = path.join(config.outputDir, 'logs', 'slurm');
  const queued = await stillQueued(logDir);
  const pending = planned.pending.filter((task) => {
    const job = queued.get(listText([task]).trim());
    if (job) log.info(`  sub-${task.subject}${task.session ? ` ses-${task.session}` : ''}: still queued or running as ${job}, not submitted again`);
    return !job;
  });
  const unit = slurm.perSession ? 'session(s)' : 'participant(s)';
  if (done.length) log.info(`${done.length} ${unit} already done (their run records in ${path.join(config.outputDir, 'logs')} list every output written): not submitted`);
  for (const task of pending) log.info(`  submit sub-${task.subject}${task.session ? ` ses-${task.session}` : ''}: ${task.reason}`);
  if (pending.length === 0) {
    log.info(`nothing to submit: every selected ${slurm.perSession ? 'session' : 'participant'} is done${queued.size ? ' or still queued' : ''}`);
    return { code: ExitCode.ok, submission: null };
  }
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
  // Apptainer binds only folders that exist.
  for (const dir of plan.writable) await mkdir(dir, { recursive: true });
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
