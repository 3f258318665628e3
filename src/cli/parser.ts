/**
 * The BIDS-App command line: `micanon bids_dir output_dir {participant,group} [options]`.
 * This module only builds and runs the parser (commander) and validates the result (zod);
 * it never touches the dataset.
 */
import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { z } from 'zod';
import { readBidsFilterFile } from '../bids/filters.js';
import { expandLabelArgs } from '../bids/selection.js';
import { MicanonError } from '../errors.js';
import { logFormats } from '../log.js';
import { packageVersion } from '../version.js';
import { defaults, logLevels, methods, outputLayouts, runConfigSchema, type RunConfig } from '../config.js';

/** Spellings other BIDS Apps use, mapped to ours (fMRIPrep/MRIQC use underscores). */
const aliases: Record<string, string> = {
  '--participant_label': '--participant-label',
  '--session_label': '--session-label',
  '--exclude_participant_label': '--exclude-participant-label',
  '--exclude_session_label': '--exclude-session-label',
  '--bids_filter_file': '--bids-filter-file',
  '--skip_bids_validation': '--skip-bids-validation',
  '--skip_bids_validator': '--skip-bids-validation',
  '--skip-bids-validator': '--skip-bids-validation',
  '--n_cpus': '--nthreads',
  '--n-cpus': '--nthreads',
  '--nprocs': '--nthreads',
  '--work_dir': '--work-dir',
  '--no_cleanup': '--no-cleanup',
  '--output_layout': '--output-layout',
  '--qc_dir': '--qc-dir',
};

export function normaliseArgv(argv: readonly string[]): string[] {
  return argv.map((arg) => {
    const [flag, value] = arg.split(/=(.*)/s, 2);
    const canonical = flag !== undefined ? aliases[flag] : undefined;
    if (!canonical) return arg;
    return value === undefined ? canonical : `${canonical}=${value}`;
  });
}

/** Label arguments (or label files) as normalised labels; null when the option was not given. */
function labelsOf(values: string[] | undefined, prefix: 'sub' | 'ses'): string[] | null {
  return values && values.length > 0 ? expandLabelArgs(values, prefix) : null;
}

const number = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n)) throw new MicanonError('USAGE', `${name} takes a number, not "${value}"`);
  return n;
};

export const methodHelp =
  'deface zeroes the face and covers the cut with an even plate (no face left; the default, as OpenNeuro-style sharing expects); ' +
  'reface pastes the atlas face, ears and scalp, intensity-matched; warpface warps the own face toward the atlas face (ears and ' +
  'scalp pasted as reface does) and keeps the person\'s own skin in the face: it can still be recognised, and QC refuses such an output';

/** The commands other than the BIDS-App levels (src/cli/micanon.ts dispatches them). */
export const subcommandsHelp = `
Other commands:
  micanon doctor [ATLAS_DIR]        what is installed, what is missing, and the fix
  micanon example [DIR] [options]   make the built-in example dataset in DIR and anonymize it
  micanon qc IMAGE [--original ORIGINAL] [--method deface|reface|warpface] [--out DIR] [--json]
                                    check one image anonymized by any tool (micanon qc --help)
  micanon slurm bids_dir output_dir [--container SIF | --native] [--submit] [participant options]
                                    a SLURM job array, one participant per task, then the group level (micanon slurm --help)
  micapipe_anonymize -help          micapipe's command line, on the same engine

Exit codes: 0 ok, 1 failure, 16 validation failed, 17 unknown analysis level, 18 no files selected,
64 usage, 65 bad data, 66 input missing, 73 cannot create output, 130 interrupted (SIGINT), 143 terminated (SIGTERM).`;

export function buildParser(): Command {
  return new Command('micanon')
    .description(
      'Anonymize the face of every anatomical MRI in a BIDS dataset (deface, reface, warpface); ' +
        'every brain voxel is kept bit for bit and checked.',
    )
    .argument('<bids_dir>', 'the root of the BIDS dataset (read only)')
    .argument('<output_dir>', 'where outputs go (a BIDS derivatives dataset by default)')
    .argument('<analysis_level>', '"participant" (anonymize) or "group" (dataset summary)')
    .option('--participant-label <label...>', 'participants to process (with or without "sub-"; or a file with one per line). Alias: --participant_label. Default: all')
    .option('--exclude-participant-label <label...>', 'participants to leave out (with or without "sub-"; or a file with one per line), after --participant-label')
    .option('--session-label <label...>', 'sessions to process (with or without "ses-"; or a file with one per line). Alias: --session_label. Default: all, sessionless data too')
    .option('--exclude-session-label <label...>', 'sessions to leave out (with or without "ses-"; or a file with one per line); sessionless data stays')
    .option(
      '--bids-filter-file <file>',
      'JSON of entity filters per image kind, fMRIPrep\'s format: {"t1w": {"acquisition": "mprage"}, "flair": {"reconstruction": null}}; ' +
        'kinds are anatomical suffixes in lower case, entities PyBIDS names; null: absent, "*": any value; a kind not named is not filtered',
    )
    .addOption(new Option('--method <method...>', methodHelp).choices(methods))
    .option('--all', 'run all three methods (same as --method deface reface warpface)')
    .option('--dilate <mm>', `warpface: the brain+neck mask is dilated by this many millimetres before the warp is masked (default: ${defaults.dilateMm}, as micapipe)`, number('--dilate'))
    .option('--remove-ears', 'deface: also remove the ears (the atlas ears ROI, less the brain guard); reface replaces the ears whatever this says')
    .option('--robust', 'slower, more thorough registration search: more starting rotations, quarter and half turns (a header with mislabelled axes), finer levels')
    .option('--nthreads <n>', 'threads of the engine\'s numeric pools (ITK, BLAS). ANTs registrations always run on one thread, so the same input gives the same bytes at any --nthreads. Aliases: --n_cpus, --nprocs. Default: all cores', number('--nthreads'))
    .option('-w, --work-dir <dir>', 'folder for intermediate files (default: a temporary folder; use one on a mounted volume in read-only containers)')
    .option('--no-cleanup', 'keep transforms, native masks and warps in the work folder')
    .option('--t1w <path>', 'the T1w to register (reference) instead of the session\'s own run-1 T1w')
    .option('--atlas <dir>', 'atlas folder (ours, or micapipe\'s MICs60 files under their own names)')
    .addOption(new Option('--output-layout <layout>', `derivatives: BIDS derivatives with desc-<method>; raw: a shareable copy of the dataset (one method); micapipe: <name>_<method>ed.nii.gz. Default: ${defaults.outputLayout}`).choices(outputLayouts))
    .option(
      '--qc-dir <dir>',
      'where QC goes: records (logs/qc/*.json), figures (sub-XX/figures/), pages (sub-XX.html, group_qc.html), logs/group_qc.tsv; ' +
        'the figures show faces. Default: output_dir; with --output-layout raw, <output_dir>-qc (never inside the shareable copy). ' +
        'Give the group level the same --output-layout and --qc-dir as the participant run. Alias: --qc_dir',
    )
    .option('--skip-bids-validation', 'skip the official BIDS validator, which otherwise checks the selected participants of the input (errors: exit 16) and the output (errors: exit 1) (aliases: --skip_bids_validation, --skip_bids_validator)')
    .option('--keep-field <key...>', 'keep this sidecar field that is scrubbed by default (e.g. InstitutionName)')
    .option('--drop-field <key...>', 'also remove this sidecar field')
    .option('--qc-fail-ok', 'write outputs whose face, identity or registration check failed and exit 0 (the QC record still says FAILED); an output whose brain or header check failed is never written')
    .option('--verbose', 'more detail on the console (same as --log-level verbose)')
    .addOption(new Option('--log-level <level>', 'console log level').choices(logLevels))
    .addOption(
      new Option(
        '--log-format <format>',
        'console log: text (for people; on a terminal with a live progress line) or json (one JSON object per line). Default: text',
      ).choices(logFormats),
    )
    .option('--bids-exec-spec', 'print the Boutiques descriptor (bids_app_spec.json) and exit')
    .version(packageVersion, '-v, --version', 'print the version and exit')
    .addHelpText('after', subcommandsHelp)
    // Help and version go to stdout; errors are not printed here but thrown, so the user sees
    // one line with the usage (from the error catalogue), not commander's and ours.
    .configureOutput({ writeErr: () => undefined, outputError: () => undefined });
}

type ParsedOptions = {
  participantLabel?: string[];
  excludeParticipantLabel?: string[];
  sessionLabel?: string[];
  excludeSessionLabel?: string[];
  bidsFilterFile?: string;
  method?: string[];
  all?: boolean;
  dilate?: number;
  robust?: boolean;
  removeEars?: boolean;
  nthreads?: number;
  workDir?: string;
  cleanup: boolean;
  t1w?: string;
  atlas?: string;
  outputLayout?: string;
  skipBidsValidation?: boolean;
  keepField?: string[];
  dropField?: string[];
  qcFailOk?: boolean;
  qcDir?: string;
  verbose?: boolean;
  logLevel?: string;
  logFormat?: string;
};

/** Turn zod's complaint into one usage line naming the option. */
export function usageError(error: z.ZodError): MicanonError {
  const first = error.issues[0];
  const where = first?.path.length ? `${first.path.join('.')}: ` : '';
  return new MicanonError('USAGE', `${where}${first?.message ?? 'invalid arguments'}`);
}

export type ParseOutcome = { kind: 'run'; config: RunConfig } | { kind: 'exit'; code: number } | { kind: 'spec' };

/**
 * Parse a BIDS-App command line. Exits (help, version) come back as `{kind: 'exit'}`; usage
 * errors as MicanonError with exit code 64 (17 for an unknown analysis level).
 */
export function parseBidsAppArgs(argv: readonly string[]): ParseOutcome {
  const program = buildParser().exitOverride();
  if (argv.includes('--bids-exec-spec')) return { kind: 'spec' };
  try {
    program.parse(normaliseArgv(argv), { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return { kind: 'exit', code: 0 };
      throw new MicanonError('USAGE', err.message.replace(/^error: /, ''));
    }
    throw err;
  }
  const [bidsDir, outputDir, analysisLevel] = program.args;
  if (analysisLevel !== 'participant' && analysisLevel !== 'group') {
    throw new MicanonError('UNKNOWN_ANALYSIS_LEVEL', `unknown analysis level "${analysisLevel ?? ''}"`);
  }
  const opts = program.opts<ParsedOptions>();
  if (opts.all && opts.method) throw new MicanonError('USAGE', '--all and --method exclude each other');
  const parsed = runConfigSchema.safeParse({
    bidsDir,
    outputDir,
    analysisLevel,
    participantLabels: labelsOf(opts.participantLabel, 'sub'),
    excludeParticipantLabels: labelsOf(opts.excludeParticipantLabel, 'sub') ?? [],
    sessionLabels: labelsOf(opts.sessionLabel, 'ses'),
    excludeSessionLabels: labelsOf(opts.excludeSessionLabel, 'ses') ?? [],
    bidsFilters: opts.bidsFilterFile ? readBidsFilterFile(path.resolve(opts.bidsFilterFile)) : null,
    methods: opts.all ? [...methods] : opts.method,
    dilate: opts.dilate,
    robust: opts.robust ?? false,
    removeEars: opts.removeEars ?? false,
    nthreads: opts.nthreads,
    workDir: opts.workDir ?? null,
    cleanup: opts.cleanup,
    t1w: opts.t1w ?? null,
    atlas: opts.atlas,
    outputLayout: opts.outputLayout,
    skipBidsValidation: opts.skipBidsValidation ?? false,
    logLevel: opts.logLevel ?? (opts.verbose ? 'verbose' : undefined),
    logFormat: opts.logFormat,
    keepFields: opts.keepField ?? [],
    dropFields: opts.dropField ?? [],
    qcFailOk: opts.qcFailOk ?? false,
    qcDir: opts.qcDir ?? null,
  });
  if (!parsed.success) throw usageError(parsed.error);
  return { kind: 'run', config: parsed.data };
}

/**
 * `micanon example [DIR] [options]`: the BIDS-App options, on DIR/bids (default
 * ./micanon-example) with outputs in DIR/derivatives/micanon.
 */
export function parseExampleArgs(argv: readonly string[]): { root: string; outcome: ParseOutcome } {
  const dirArg = argv[0] && !argv[0].startsWith('-') ? argv[0] : undefined;
  const root = path.resolve(dirArg ?? 'micanon-example');
  const extra = dirArg ? argv.slice(1) : argv;
  return { root, outcome: parseBidsAppArgs([path.join(root, 'bids'), path.join(root, 'derivatives', 'micanon'), 'participant', ...extra]) };
}
