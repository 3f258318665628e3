/**
 * Input checks before anything is written: the dataset exists and passes the built-in BIDS
 * check (and the external validator where installed), the scrub options are allowed.
 */
import { existsSync } from 'node:fs';
import { checkDataset, runExternalValidator } from '../bids/validate.js';
import { checkScrubOptions } from '../bids/sidecar.js';
import type { RunConfig } from '../config.js';
import { MicanonError } from '../errors.js';
import { log } from '../log.js';

export async function validateInput(config: RunConfig): Promise<void> {
  if (!existsSync(config.bidsDir)) {
    throw new MicanonError('INPUT_MISSING', `BIDS folder ${config.bidsDir} does not exist`);
  }
  if (config.t1w && !existsSync(config.t1w)) {
    throw new MicanonError('INPUT_MISSING', `--t1w ${config.t1w} does not exist`);
  }
  checkScrubOptions({ keepFields: config.keepFields, dropFields: config.dropFields });
  if (config.skipBidsValidation) {
    log.info('BIDS validation skipped (--skip-bids-validation)');
    return;
  }
  const problems = await checkDataset(config.bidsDir);
  for (const p of problems.filter((p) => p.severity === 'warning')) log.warn(`BIDS: ${p.path}: ${p.message}`);
  const errors = problems.filter((p) => p.severity === 'error');
  if (errors.length) {
    for (const p of errors) log.error(`BIDS: ${p.path}: ${p.message}`);
    throw new MicanonError('BIDS_INVALID', `${config.bidsDir} is not a valid BIDS dataset (${errors.length} problem(s) above)`);
  }
  const verdict = await runExternalValidator(config.bidsDir, config.participantLabels ?? []);
  if (!verdict.ran) {
    log.verbose(`external BIDS validator not run: ${verdict.reason}`);
  } else if (!verdict.valid) {
    throw new MicanonError('BIDS_INVALID', `bids-validator found ${verdict.errors} error(s) in ${config.bidsDir}`);
  } else {
    log.info(`bids-validator: valid (${verdict.warnings} warning(s))`);
  }
}
