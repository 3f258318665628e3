/**
 * The JSON sidecar of every output: the input's inherited sidecar, scrubbed, with the
 * de-identification recorded. What was removed is logged to output_dir/logs, never the dataset.
 */
import path from 'node:path';
import { writeFileAtomic } from '../bids/atomic.js';
import type { SessionPlan } from '../bids/discover.js';
import { removedFieldsLogPath } from '../bids/outputs.js';
import { anonymizedSidecar, rawBidsUri, withDerivativeFields } from '../bids/sidecar.js';
import type { RunConfig } from '../config.js';
import type { Method } from '../engine/schemas.js';
import { packageVersion } from '../version.js';

export interface SidecarRequest {
  config: RunConfig;
  input: string;
  method: Method;
  sidecarPath: string;
}

/** Write the output's sidecar atomically; returns the keys removed from the input's metadata. */
export async function writeOutputSidecar(request: SidecarRequest): Promise<string[]> {
  const { config, input, method } = request;
  const { sidecar, removed } = await anonymizedSidecar(config.bidsDir, input, {
    method,
    version: packageVersion,
    sourceUri: rawBidsUri(path.relative(config.bidsDir, input)),
    keepFields: config.keepFields,
    dropFields: config.dropFields,
  });
  const written = config.outputLayout === 'derivatives' ? withDerivativeFields(sidecar, method) : sidecar;
  await writeFileAtomic(request.sidecarPath, `${JSON.stringify(written, null, 2)}\n`);
  return removed;
}

/** The per-session record of removed fields (output_dir/logs/sub-X[_ses-Y]_removed-fields.json). */
export async function writeRemovedFieldsLog(
  config: RunConfig,
  plan: Pick<SessionPlan, 'subject' | 'session'>,
  removedBySidecar: Record<string, string[]>,
): Promise<void> {
  const file = removedFieldsLogPath(config.outputDir, plan.subject, plan.session);
  await writeFileAtomic(file, `${JSON.stringify(removedBySidecar, null, 2)}\n`);
}
