/**
 * `micanon`: the BIDS-App entry point.
 *   micanon bids_dir output_dir {participant,group} [options]
 *   micanon doctor            what is installed, what is missing
 *   micanon example [dir]     run on the built-in example dataset
 *   micanon qc IMAGE [--original ORIGINAL] [--method m] [--out DIR]
 *                             check an image anonymized by any tool (see src/commands/qc.ts)
 *   micanon slurm bids_dir output_dir [options]
 *                             a SLURM job array over participants + the group job (src/slurm/)
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { runDoctor } from '../commands/doctor.js';
import { runExample } from '../commands/example.js';
import { runQc } from '../commands/qc.js';
import type { RunConfig } from '../config.js';
import { setConsoleFormat, setConsoleLevel } from '../log.js';
import { packageRoot } from '../paths.js';
import { runDataset } from '../pipeline/dataset.js';
import { parseBidsAppArgs, parseExampleArgs } from './parser.js';
import { parseQcArgs } from './qc.js';
import { runCommand } from './run.js';
import { parseSlurmArgs } from './slurm.js';
import { runSlurm } from '../slurm/command.js';

function setUpConsole(config: RunConfig): void {
  setConsoleLevel(config.logLevel);
  setConsoleFormat(config.logFormat);
}

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === 'doctor') return runDoctor({ atlas: rest[0] });
  if (first === 'example') {
    const { root, outcome } = parseExampleArgs(rest);
    if (outcome.kind !== 'run') return outcome.kind === 'exit' ? outcome.code : 0;
    setUpConsole(outcome.config);
    return runExample(root, outcome.config);
  }
  if (first === 'qc') {
    const outcome = parseQcArgs(rest);
    return outcome.kind === 'exit' ? outcome.code : runQc(outcome.options);
  }
  if (first === 'slurm') {
    const command = parseSlurmArgs(rest);
    return command ? (await runSlurm(command)).code : 0;
  }
  const outcome = parseBidsAppArgs(argv);
  if (outcome.kind === 'spec') {
    process.stdout.write(readFileSync(path.join(packageRoot, 'bids_app_spec.json'), 'utf8'));
    return 0;
  }
  if (outcome.kind === 'exit') return outcome.code;
  setUpConsole(outcome.config);
  return runDataset(outcome.config);
}

await runCommand(() => main(process.argv.slice(2)));
