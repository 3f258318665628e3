/**
 * BIDS validation of a run: the input before anything is written (the dataset exists, micanon's
 * own checks, the official validator on the selected participants, the scrub options allowed),
 * and the output dataset at the end of every participant and group run.
 *
 * Errors in the input stop the run (exit 16) with the validator's own messages; errors in the
 * output are micanon's failure (exit 1), named in the log, the run record and the QC pages.
 * Warnings go to the log (a count per code at info, each one at verbose) and to the records.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { checkDataset } from '../bids/validate.js';
import { issueLine, reportSummary, runBidsValidator, type ValidatorReport } from '../bids/validator.js';
import { checkScrubOptions } from '../bids/sidecar.js';
import { selectLabels } from '../bids/selection.js';
import type { RunConfig } from '../config.js';
import { MicanonError } from '../errors.js';
import { log } from '../log.js';

/** How many of the validator's errors are printed before "and N more". */
const SHOWN_ERRORS = 5;

/** The validator's reports of one run, for the run record and the QC pages (null: not run). */
export interface RunValidation {
  input: ValidatorReport | null;
  output: ValidatorReport | null;
}

function logIssues(report: ValidatorReport, level: 'error' | 'warn', shown: number): void {
  for (const issue of report.errors.slice(0, shown)) log.log(level, `BIDS: ${issueLine(issue)}`);
  const more = report.errors.length - shown;
  if (more > 0) log.log(level, `BIDS: ... and ${more} more error(s) (--log-level debug lists every one)`);
  for (const issue of report.errors.slice(shown)) log.debug(`BIDS: ${issueLine(issue)}`);
  for (const issue of report.warnings) log.verbose(`BIDS warning: ${issueLine(issue)}`);
}

/**
 * Check the input before anything is written: throws INPUT_MISSING, BIDS_KEEP_FORBIDDEN, or
 * BIDS_INVALID (exit 16) when the validator finds errors. `tempRoot` takes the validator's view
 * of the dataset for the time of the call (the run's work folder). Returns the validator's report,
 * or null with --skip-bids-validation.
 */
export async function validateInput(config: RunConfig, tempRoot: string): Promise<ValidatorReport | null> {
  if (!existsSync(config.bidsDir)) {
    throw new MicanonError('INPUT_MISSING', `BIDS folder ${config.bidsDir} does not exist`);
  }
  if (config.t1w && !existsSync(config.t1w)) {
    throw new MicanonError('INPUT_MISSING', `--t1w ${config.t1w} does not exist`);
  }
  checkScrubOptions({ keepFields: config.keepFields, dropFields: config.dropFields });
  if (config.skipBidsValidation) {
    log.info('BIDS validation skipped (--skip-bids-validation): neither the input nor the output is validated');
    return null;
  }
  for (const p of await checkDataset(config.bidsDir)) log.warn(`BIDS: ${p.path}: ${p.message}`);
  const report = await runBidsValidator(config.bidsDir, { participants: selectedParticipants(config), tempRoot });
  const what = `the input ${config.bidsDir}${report.participants.length ? ` (sub-${report.participants.join(', sub-')})` : ''}`;
  if (report.errors.length > 0) {
    logIssues(report, 'error', SHOWN_ERRORS);
    throw new MicanonError('BIDS_INVALID', `${reportSummary(what, report)}: nothing was done`);
  }
  log.info(reportSummary(what, report));
  logIssues(report, 'error', SHOWN_ERRORS);
  return report;
}

/**
 * The participants the run takes, for the validator (empty: all): --participant-label less
 * --exclude-participant-label, so an excluded participant's problems never stop the others.
 * A selection that names no participant is left to discovery, which says so (exit 18).
 */
function selectedParticipants(config: RunConfig): string[] {
  const include = config.participantLabels ?? [];
  if (config.excludeParticipantLabels.length === 0) return [...include];
  const present = readdirSync(config.bidsDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && entry.name.startsWith('sub-'))
    .map((entry) => entry.name.slice(4));
  try {
    return selectLabels(present, { include, exclude: config.excludeParticipantLabels }, 'sub', config.bidsDir);
  } catch {
    return [...include];
  }
}

/** The layouts whose output is a BIDS dataset (micapipe's is its own folder tree). */
const BIDS_LAYOUTS: ReadonlySet<string> = new Set(['derivatives', 'raw']);

/**
 * Validate the output dataset at the end of a run (the selected participants; at the group level
 * every one). Returns the report, or null when there is nothing to validate (--skip-bids-validation,
 * the micapipe layout, no output folder). Errors are logged here; the caller turns them into exit 1.
 */
export async function validateOutput(config: RunConfig, tempRoot: string, participants: readonly string[]): Promise<ValidatorReport | null> {
  if (config.skipBidsValidation || !BIDS_LAYOUTS.has(config.outputLayout) || !existsSync(path.join(config.outputDir, 'dataset_description.json'))) {
    return null;
  }
  const report = await runBidsValidator(config.outputDir, { participants, tempRoot });
  const what = `the output ${config.outputDir}${report.participants.length ? ` (sub-${report.participants.join(', sub-')})` : ''}`;
  if (report.errors.length > 0) {
    log.error(`${reportSummary(what, report)}: micanon wrote output that breaks BIDS (a bug in micanon: please report it)`);
    logIssues(report, 'error', 20);
  } else {
    log.info(reportSummary(what, report));
    logIssues(report, 'error', 0);
  }
  return report;
}
