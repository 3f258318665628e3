/**
 * `micanon qc IMAGE [--original ORIGINAL] [--method deface|reface|warpface] [--out DIR] [--atlas DIR] [--json]`:
 * the command line only (commander, then zod). src/commands/qc.ts runs the check.
 */
import { Command, CommanderError, Option } from 'commander';
import { qcOptionsSchema, type QcOptions } from '../commands/qc.js';
import { MicanonError } from '../errors.js';
import { packageVersion } from '../version.js';

export function buildQcParser(): Command {
  return new Command('micanon qc')
    .description(
      'Check an image anonymized by any tool: faces left in its 3D renders; with --original also the header, ' +
        'every brain voxel (bit for bit), identity and registration. Exit 0 when every check that ran passed.',
    )
    .argument('<image>', 'the anonymized image (NIfTI)')
    .option('--original <path>', 'the image before anonymization, on the same voxel grid (without it brain, header and identity are not checked)')
    .addOption(
      new Option('--method <method>', 'how IMAGE was anonymized, which sets the face rule: deface (no face may be found), reface or warpface (the face must no longer be the original\'s; needs --original). Default: deface')
        .choices(['deface', 'reface', 'warpface']),
    )
    .option('--out <dir>', 'write the figures, the JSON record and an HTML page here (default: nothing is kept)')
    .option('--atlas <dir>', 'atlas folder (default: the one `npm run setup` built)')
    .option('--json', 'print the QC record as JSON on stdout instead of the verdict')
    .version(packageVersion, '-v, --version', 'print the version and exit')
    .configureOutput({ writeErr: () => undefined, outputError: () => undefined });
}

export type QcParseOutcome = { kind: 'run'; options: QcOptions } | { kind: 'exit'; code: number };

/** Parse `micanon qc` arguments (without the word `qc`); usage errors throw MicanonError (64). */
export function parseQcArgs(argv: readonly string[]): QcParseOutcome {
  const program = buildQcParser().exitOverride();
  try {
    program.parse([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return { kind: 'exit', code: 0 };
      throw new MicanonError('QC_USAGE', `micanon qc: ${err.message.replace(/^error: /, '')}`);
    }
    throw err;
  }
  const opts = program.opts<{ original?: string; method?: string; out?: string; atlas?: string; json?: boolean }>();
  const parsed = qcOptionsSchema.safeParse({ image: program.args[0], ...opts });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new MicanonError('QC_USAGE', `micanon qc: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid arguments'}`);
  }
  return { kind: 'run', options: parsed.data };
}
