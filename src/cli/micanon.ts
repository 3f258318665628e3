/**
 * `micanon`: the BIDS-App entry point.
 *   micanon bids_dir output_dir {participant,group} [options]
 *   micanon doctor            what is installed, what is missing
 *   micanon example [dir]     run on the built-in example dataset
 *   micanon qc IMAGE [--original ORIGINAL] [--method m] [--out DIR]
 *                             check an image anonymized by any tool (see src/cli/qc.ts)
 *   micanon slurm bids_dir output_dir [options]
 *                             a SLURM job array over participants + the group job (src/slurm/)
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setConsoleLevel } from '../log.js';
import { packageRoot } from '../paths.js';
import { runDataset } from '../pipeline/dataset.js';
import { runDoctor } from './doctor.js';
import { runExample } from './example.js';
import { parseBidsAppArgs } from './parser.js';
import { runQc } from './qc.js';
import { runCommand } from './run.js';
import { parseSlurmArgs } from './slurm.js';
import { runSlurm } from '../slurm/command.js';

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === 'doctor') return runDoctor({ atlas: rest[0] });
  if (first === 'example') return runExample(rest);
  if (first === 'qc') return runQc(rest);
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
  setConsoleLevel(outcome.config.logLevel);
  return runDataset(outcome.config);
}

await runCommand(() => main(process.argv.slice(2)));
