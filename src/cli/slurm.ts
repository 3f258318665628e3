/**
 * `micanon slurm bids_dir output_dir [slurm options] [participant options]`: the command line of
 * the SLURM sub-command (the work is in src/slurm/). Only the slurm options are known here; every
 * other word goes to each task's `micanon bids_dir output_dir participant ...` unchanged, so an
 * option added to the participant level needs nothing here. The pass-through is checked by the
 * participant parser itself before anything is written.
 */
import path from 'node:path';
import { z } from 'zod';
import { MicanonError } from '../errors.js';
import { type RunConfig } from '../config.js';
import { normaliseArgv, parseBidsAppArgs, usageError } from './parser.js';

export const slurmHelp = `Usage: micanon slurm bids_dir output_dir [slurm options] [participant options]

Write a SLURM job array (one participant, or one session, per task) and a dependent group job;
print them (--print, the default) or submit them with sbatch (--submit). A rerun of the same
command submits only the participants whose run records (output_dir/logs/sub-*_micanon.json)
are missing or name an output that was not written.

Slurm options:
  --container <sif>          run the Apptainer image (apptainer run --cleanenv --containall)
  --native                   run this installation of micanon (the default)
  --array-limit <n>          at most n tasks at once (#SBATCH --array=1-N%n; default: no limit)
  --partition <p>            #SBATCH --partition
  --time <t>                 #SBATCH --time per task (default 02:00:00)
  --mem <m>                  #SBATCH --mem per task (default 4G; a participant peaks near 1.5 GB, docs/hpc.md)
  --cpus-per-task <c>        #SBATCH --cpus-per-task (default 2); the task runs --nthreads c
  --per-session              one session per task instead of one participant per task
  --participant-label <l...> participants to submit (default: all); --session-label likewise
  --submit                   submit with sbatch (needs sbatch on PATH)
  --print                    print the scripts and write nothing (the default)

Participant options: every other option (e.g. --method, --output-layout, --qc-dir,
--skip-bids-validation) is passed to each task's participant run, and the layout options to
the group job. Not allowed here: -w/--work-dir (each task uses node-local scratch:
$SLURM_TMPDIR, else $TMPDIR, else /tmp) and the analysis level.`;

/** Slurm options that take a value, by their flag. */
const valued = {
  '--container': 'container',
  '--array-limit': 'arrayLimit',
  '--partition': 'partition',
  '--time': 'time',
  '--mem': 'mem',
  '--cpus-per-task': 'cpusPerTask',
} as const;
const switches = { '--native': 'native', '--submit': 'submit', '--print': 'print', '--per-session': 'perSession' } as const;
/** Selection options (several values each): they choose the tasks, each task passes its own. */
const selection = { '--participant-label': 'participantLabel', '--session-label': 'sessionLabel' } as const;
/** Participant options the generated script sets itself. */
const forbidden = ['-w', '--work-dir', '--bids-exec-spec'];
/** Participant options naming a path: made absolute, since the task runs elsewhere. */
const pathOptions = ['--atlas', '--t1w', '--qc-dir'];

const positiveInt = (name: string) =>
  z.coerce.number({ message: `${name} takes a whole number` }).int(`${name} takes a whole number`).min(1, `${name} is at least 1`);

export const slurmOptionsSchema = z
  .object({
    container: z.string().min(1).nullable().default(null).transform((p) => (p ? path.resolve(p) : null)),
    native: z.boolean().default(false),
    arrayLimit: positiveInt('--array-limit').nullable().default(null),
    partition: z.string().regex(/^[\w.,-]+$/, '--partition: a partition name').nullable().default(null),
    time: z.string().regex(/^[\d:-]+$/, '--time: a SLURM time such as 02:00:00 or 1-00:00:00').default('02:00:00'),
    mem: z.string().regex(/^\d+[KMGT]?$/, '--mem: a SLURM size such as 4G or 4000M').default('4G'),
    cpusPerTask: positiveInt('--cpus-per-task').default(2),
    perSession: z.boolean().default(false),
    submit: z.boolean().default(false),
    print: z.boolean().default(false),
  })
  .superRefine((o, ctx) => {
    if (o.container && o.native) ctx.addIssue({ code: 'custom', path: ['native'], message: '--container and --native exclude each other' });
    if (o.submit && o.print) ctx.addIssue({ code: 'custom', path: ['submit'], message: '--submit and --print exclude each other' });
  });

export type SlurmOptions = z.output<typeof slurmOptionsSchema>;

export interface SlurmCommand {
  slurm: SlurmOptions;
  /** The participant run's configuration as each task will see it (for the label and the layout). */
  config: RunConfig;
  /** Words for `micanon bids_dir output_dir participant`, after the task's own label options. */
  passThrough: string[];
}

/** `--flag=value` or `--flag value`: the flag, its inline value if any. */
function splitFlag(word: string): [string, string | undefined] {
  const at = word.indexOf('=');
  return word.startsWith('--') && at > 0 ? [word.slice(0, at), word.slice(at + 1)] : [word, undefined];
}

/** Make the value of a path option absolute (`--atlas x` and `--atlas=x`). */
function absolutePaths(words: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const [flag, inline] = splitFlag(words[i]!);
    if (!pathOptions.includes(flag)) out.push(words[i]!);
    else if (inline !== undefined) out.push(`${flag}=${path.resolve(inline)}`);
    else if (i + 1 < words.length) out.push(flag, path.resolve(words[++i]!));
    else out.push(flag);
  }
  return out;
}

/**
 * Parse `micanon slurm ...` (argv without the word `slurm`). Returns null for --help (printed).
 * bids_dir and output_dir come first; the slurm options are taken out wherever they stand.
 */
export function parseSlurmArgs(argv: readonly string[]): SlurmCommand | null {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${slurmHelp}\n`);
    return null;
  }
  const words = normaliseArgv(argv);
  const [bidsDir, outputDir, ...rest] = words;
  if (!bidsDir || !outputDir || bidsDir.startsWith('-') || outputDir.startsWith('-')) {
    throw new MicanonError('SLURM_USAGE', 'micanon slurm needs bids_dir and output_dir first (micanon slurm --help)');
  }
  const raw: Record<string, unknown> = {};
  const labels: Record<string, string[]> = {};
  const passThrough: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const [flag, inline] = splitFlag(rest[i]!);
    if (flag in valued) {
      const value = inline ?? rest[++i];
      if (value === undefined || value.startsWith('--')) throw new MicanonError('SLURM_USAGE', `${flag} takes a value`);
      raw[valued[flag as keyof typeof valued]] = value;
    } else if (flag in switches) {
      raw[switches[flag as keyof typeof switches]] = true;
    } else if (flag in selection) {
      const values = inline !== undefined ? [inline] : [];
      while (inline === undefined && i + 1 < rest.length && !rest[i + 1]!.startsWith('-')) values.push(rest[++i]!);
      labels[selection[flag as keyof typeof selection]] = values;
    } else if (forbidden.includes(flag)) {
      throw new MicanonError('SLURM_USAGE', `${flag} is set by micanon slurm itself (node-local scratch per task); leave it out`);
    } else if (flag === 'participant' || flag === 'group') {
      throw new MicanonError('SLURM_USAGE', `micanon slurm runs the participant level, then the group level: leave out "${flag}"`);
    } else {
      passThrough.push(rest[i]!);
    }
  }
  const parsed = slurmOptionsSchema.safeParse(raw);
  if (!parsed.success) {
    const error = usageError(parsed.error);
    throw new MicanonError('SLURM_USAGE', error.message);
  }
  const forwarded = absolutePaths(passThrough);
  // The participant parser checks the pass-through now, not in every task an hour later.
  // The selection goes in too: its labels are checked (and label files read) by the same rules.
  const selected = Object.entries(labels).flatMap(([key, values]) => [key === 'participantLabel' ? '--participant-label' : '--session-label', ...values]);
  const outcome = parseBidsAppArgs([bidsDir, outputDir, 'participant', ...forwarded, ...selected]);
  if (outcome.kind !== 'run') throw new MicanonError('SLURM_USAGE', 'give the participant options of a run (micanon slurm --help)');
  return { slurm: parsed.data, config: outcome.config, passThrough: forwarded };
}
