/**
 * The sbatch scripts of `micanon slurm` (pure: text in, text out). The array script runs one
 * task per line of its list file (`<subject>` or `<subject> <session>`), on node-local scratch,
 * and exits with micanon's own exit code, so the scheduler's record of each task says which
 * participant failed and how (the BIDS Apps codes: 65 bad data, 66 input missing, ...). The group
 * script runs the group level once the array has ended.
 */
import { packageVersion } from '../version.js';

export interface Runner {
  /** Apptainer image (absolute path), or null for this installation (node + bin/micanon.js). */
  container: string | null;
  /** Native: the node binary and the CLI script that submitted (on a shared file system). */
  node: string;
  cli: string;
}

export interface ScriptPlan {
  runner: Runner;
  bidsDir: string;
  outputDir: string;
  /** Folders the participant run writes besides output_dir (--qc-dir), bound read-write. */
  writable: string[];
  /** Files and folders it reads besides bids_dir (--atlas, --t1w), bound read-only. */
  readable: string[];
  listFile: string;
  tasks: number;
  /** Folder of the scripts, list and task logs (output_dir/logs/slurm). */
  logDir: string;
  /** Stem shared by this submission's files: `micanon_<time>`. */
  stem: string;
  arrayLimit: number | null;
  partition: string | null;
  time: string;
  mem: string;
  cpusPerTask: number;
  /** Pass-through participant options (already absolute paths). */
  passThrough: string[];
  /** --session-label given to the command: every per-participant task passes it on. */
  sessionLabels: string[] | null;
}

/** One word for bash: unchanged when plainly safe, else single-quoted. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

const line = (words: string[]) => words.map(shellQuote).join(' ');

function sbatchHeader(plan: ScriptPlan, job: { name: string; output: string; array?: string; cpus: number; mem: string }): string[] {
  return [
    '#!/bin/bash',
    `#SBATCH --job-name=${job.name}`,
    ...(job.array ? [`#SBATCH --array=${job.array}`] : []),
    `#SBATCH --cpus-per-task=${job.cpus}`,
    `#SBATCH --mem=${job.mem}`,
    `#SBATCH --time=${plan.time}`,
    ...(plan.partition ? [`#SBATCH --partition=${plan.partition}`] : []),
    `#SBATCH --output=${job.output}`,
  ];
}

/**
 * The command that runs micanon with `args` (a bash fragment whose words are already quoted):
 * the Apptainer image with every folder it touches bound at the same path, or the native CLI.
 */
function micanonCommand(plan: ScriptPlan, args: string, scratch: string | null): string {
  if (!plan.runner.container) return `${line([plan.runner.node, plan.runner.cli])} ${args}`;
  const binds = [
    `${plan.bidsDir}:${plan.bidsDir}:ro`,
    ...plan.readable.map((p) => `${p}:${p}:ro`),
    plan.outputDir,
    ...plan.writable,
  ].map((b) => `--bind ${shellQuote(b)}`);
  if (scratch) binds.push(`--bind "${scratch}"`);
  // --containall: no $HOME, /tmp or environment of the host; every path the run needs is bound.
  return `apptainer run --cleanenv --containall ${binds.join(' ')} ${shellQuote(plan.runner.container)} ${args}`;
}

/** The job array: one task per line of the list file. */
export function arrayScript(plan: ScriptPlan): string {
  const array = `1-${plan.tasks}${plan.arrayLimit ? `%${plan.arrayLimit}` : ''}`;
  const nthreads = plan.passThrough.includes('--nthreads') || plan.passThrough.some((w) => w.startsWith('--nthreads=')) ? '' : ' --nthreads "$SLURM_CPUS_PER_TASK"';
  const sessions = plan.sessionLabels ? ` --session-label ${line(plan.sessionLabels)}` : '';
  const args =
    `${line([plan.bidsDir, plan.outputDir, 'participant'])} --participant-label "$subject"` +
    `\${session:+ --session-label "$session"}${sessions} -w "$scratch"${nthreads}${plan.passThrough.length ? ` ${line(plan.passThrough)}` : ''}`;
  return [
    ...sbatchHeader(plan, { name: 'micanon', output: `${plan.logDir}/${plan.stem}_%A_%a.log`, array, cpus: plan.cpusPerTask, mem: plan.mem }),
    `# micanon ${packageVersion} slurm: task N runs line N of the list below ("<participant>" or "<participant> <session>").`,
    `# Exit status = micanon's (0 ok, 1 failed, 65 bad data, 66 input missing, 73 cannot write; see micanon --help).`,
    'set -uo pipefail',
    `list=${shellQuote(plan.listFile)}`,
    'read -r subject session < <(sed -n "${SLURM_ARRAY_TASK_ID}p" "$list")',
    'if [ -z "${subject:-}" ]; then echo "micanon slurm: no line ${SLURM_ARRAY_TASK_ID} in $list" >&2; exit 64; fi',
    '# Node-local scratch for the work folder, removed however the task ends.',
    'scratch="${SLURM_TMPDIR:-${TMPDIR:-/tmp}}/micanon-${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"',
    'mkdir -p "$scratch" || exit 73',
    'trap \'rm -rf "$scratch"\' EXIT',
    'echo "micanon slurm: task ${SLURM_ARRAY_TASK_ID} of job ${SLURM_ARRAY_JOB_ID}: sub-${subject}${session:+ ses-$session} on $(hostname)"',
    micanonCommand(plan, args, '$scratch'),
    'status=$?',
    'echo "micanon slurm: sub-${subject}${session:+ ses-$session} exit ${status}"',
    'exit "$status"',
    '',
  ].join('\n');
}

/** The group job (submitted to start once every array task has ended, failed or not). */
export function groupScript(plan: ScriptPlan): string {
  const args = `${line([plan.bidsDir, plan.outputDir, 'group'])}${plan.passThrough.length ? ` ${line(plan.passThrough)}` : ''}`;
  return [
    ...sbatchHeader(plan, { name: 'micanon-group', output: `${plan.logDir}/${plan.stem}_group_%j.log`, cpus: 1, mem: '2G' }),
    `# micanon ${packageVersion} slurm: the group level, after the array (dependency set by sbatch).`,
    micanonCommand(plan, args, null),
    '',
  ].join('\n');
}

/** The list file: line N is task N's `<subject>` or `<subject> <session>`. */
export function listText(tasks: ReadonlyArray<{ subject: string; session: string | null }>): string {
  return tasks.map((t) => (t.session ? `${t.subject} ${t.session}\n` : `${t.subject}\n`)).join('');
}
