/**
 * `micanon example [dir] [options]`: make the built-in example BIDS dataset (the atlas template
 * on an oblique scanner grid, T1w + T2w) and run micanon on it with the given options (default:
 * deface). Everything goes under dir (default ./micanon-example): bids/ and derivatives/micanon/.
 *
 * The example head is the atlas's own average person, so reface and warpface give it back its
 * own face: their identity check rightly fails on it (pass --qc-fail-ok to see them anyway).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { Engine } from '../engine/bridge.js';
import { log, setConsoleFormat, setConsoleLevel } from '../log.js';
import { defaultAtlasDir } from '../paths.js';
import { runDataset } from '../pipeline/dataset.js';
import { parseBidsAppArgs } from './parser.js';

export async function runExample(args: string[]): Promise<number> {
  const dirArg = args[0] && !args[0].startsWith('-') ? args[0] : undefined;
  const root = path.resolve(dirArg ?? 'micanon-example');
  const extra = dirArg ? args.slice(1) : args;
  const bidsDir = path.join(root, 'bids');
  const outputDir = path.join(root, 'derivatives', 'micanon');
  if (!existsSync(path.join(bidsDir, 'dataset_description.json'))) {
    const engine = await Engine.start({ threads: 1 });
    try {
      await engine.call(
        'make_example',
        { root: bidsDir, atlas: defaultAtlasDir() },
        z.object({ root: z.string() }).loose(),
      );
    } finally {
      await engine.close();
    }
    log.info(`example dataset written to ${bidsDir}`);
  }
  const outcome = parseBidsAppArgs([bidsDir, outputDir, 'participant', ...extra]);
  if (outcome.kind !== 'run') return outcome.kind === 'exit' ? outcome.code : 0;
  setConsoleLevel(outcome.config.logLevel);
  setConsoleFormat(outcome.config.logFormat);
  const code = await runDataset(outcome.config);
  log.info(`example outputs: ${outputDir}`);
  return code;
}
