/**
 * `micanon example [dir] [options]` (parsed by src/cli/parser.ts): make the built-in example BIDS dataset (the atlas template
 * on an oblique scanner grid, T1w + T2w) and run micanon on it with the given options (default:
 * deface). Everything goes under dir (default ./micanon-example): bids/ and derivatives/micanon/.
 *
 * The example head is the atlas's own average person, so reface and warpface give it back its
 * own face: their identity check rightly fails on it (pass --qc-fail-ok to see them anyway).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Engine } from '../engine/bridge.js';
import { makeExample } from '../engine/contract.js';
import { defaults, type RunConfig } from '../config.js';
import { log } from '../log.js';
import { runDataset } from '../pipeline/dataset.js';

/** Make the example dataset under `root` (once) and run `config` on it (built for root's folders). */
export async function runExample(root: string, config: RunConfig): Promise<number> {
  const bidsDir = config.bidsDir;
  if (!existsSync(path.join(bidsDir, 'dataset_description.json'))) {
    const engine = await Engine.start({ threads: 1 });
    try {
      await makeExample(engine, { root: bidsDir, atlas: defaults.atlas() });
    } finally {
      await engine.close();
    }
    log.info(`example dataset written to ${bidsDir}`);
  }
  const code = await runDataset(config);
  log.info(`example outputs: ${config.outputDir} (under ${root})`);
  return code;
}
