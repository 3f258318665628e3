/**
 * The group level's re-identification attack (docs/identity.md): the engine matches every
 * input's and every output's QC renders against a gallery of every input (and the atlas face)
 * and replies with the rank-1 table. TypeScript only chooses what to send and keeps the answer;
 * a failure to run is reported on the group page, never taken for a result.
 */
import type { RunConfig } from '../config.js';
import { Engine } from '../engine/bridge.js';
import { reidentifyCall } from '../engine/contract.js';
import { log } from '../log.js';
import type { AttackOutcome } from '../qc/attack.js';
import type { QcRecord } from '../qc/records.js';

/** What the engine needs of a record: who, which image, which method, where its renders are. */
function probeOf(record: QcRecord) {
  const { subject, session, input, method } = record;
  return { subject, session, input, method, renders: { input: record.renders.input, output: record.renders.output } };
}

/** Run the attack on the dataset's QC records (renders relative to config.qcDir). */
export async function reidentifyDataset(config: Pick<RunConfig, 'qcDir' | 'atlas' | 'nthreads'>, records: readonly QcRecord[]): Promise<AttackOutcome | undefined> {
  if (records.length === 0) return undefined;
  let engine: Engine | null = null;
  try {
    engine = await Engine.start({ threads: config.nthreads });
    const result = await reidentifyCall(engine, { qc_dir: config.qcDir, atlas: config.atlas, records: records.map(probeOf) });
    return { result };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    log.warn(`re-identification attack not run: ${message}`);
    return { error: message };
  } finally {
    await engine?.close();
  }
}
