/**
 * The tasks of a SLURM array: one per participant (or per session) of the selection, leaving out
 * those already done. "Done" is read from the run records the participant level writes at the
 * end of each session (`logs/sub-<label>[_ses-<label>]_micanon.json`, src/pipeline/summary.ts):
 * a session is done when its record exists, was made with the same layout and at least the
 * requested methods, and every output it lists was written and is still in output_dir. A task
 * that failed (input refused, QC failed, killed, time limit) leaves no record or a record with
 * an output not written, so a rerun of the same command submits exactly those again.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { discoverAnatomy } from '../bids/discover.js';
import type { RunConfig } from '../config.js';
import { runRecordPath } from '../pipeline/summary.js';

/** One array task: a participant (session null: all its sessions) or one of its sessions. */
export interface SlurmTask {
  subject: string;
  session: string | null;
}

export interface PendingTask extends SlurmTask {
  /** Why it is submitted: no record yet, or what its record says went wrong. */
  reason: string;
}

export interface TaskPlan {
  pending: PendingTask[];
  done: SlurmTask[];
}

const runRecordSchema = z.looseObject({
  methods: z.array(z.string()),
  outputLayout: z.string().optional(),
  outputs: z.array(z.looseObject({ method: z.string(), written: z.boolean(), output: z.string().nullable(), reason: z.string().nullable().optional() })),
});

/** Null when the session is done; else why it must run (again). */
export async function sessionNotDone(config: RunConfig, session: SlurmTask): Promise<string | null> {
  const file = runRecordPath(config.outputDir, session);
  let record: z.infer<typeof runRecordSchema>;
  try {
    record = runRecordSchema.parse(JSON.parse(await readFile(file, 'utf8')));
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no run record yet' : `run record ${path.basename(file)} unreadable`;
  }
  if (record.outputLayout !== undefined && record.outputLayout !== config.outputLayout) return `last run used --output-layout ${record.outputLayout}`;
  const missingMethods = config.methods.filter((m) => !record.methods.includes(m));
  if (missingMethods.length) return `method ${missingMethods.join(', ')} not run yet`;
  const failed = record.outputs.find((o) => !o.written);
  if (failed) return `${failed.method} not written${failed.reason ? `: ${failed.reason}` : ''}`;
  const gone = record.outputs.find((o) => o.output && !existsSync(path.resolve(config.outputDir, o.output)));
  if (gone) return `${gone.output} missing from output_dir`;
  return record.outputs.length === 0 ? 'run record lists no output' : null;
}

/**
 * The selection's tasks (bids_dir read as the participant level reads it), split into those to
 * submit and those done. `perSession`: one task per session instead of per participant.
 */
export async function planTasks(config: RunConfig, perSession: boolean): Promise<TaskPlan> {
  const plans = await discoverAnatomy(config.bidsDir, {
    participants: config.participantLabels ?? [],
    sessions: config.sessionLabels ?? [],
  });
  const verdicts = await Promise.all(plans.map(async (plan) => ({ plan, reason: await sessionNotDone(config, plan) })));
  const pending: PendingTask[] = [];
  const done: SlurmTask[] = [];
  if (perSession) {
    for (const { plan, reason } of verdicts) {
      if (reason) pending.push({ subject: plan.subject, session: plan.session, reason });
      else done.push({ subject: plan.subject, session: plan.session });
    }
    return { pending, done };
  }
  for (const subject of [...new Set(plans.map((p) => p.subject))]) {
    const own = verdicts.filter((v) => v.plan.subject === subject);
    const first = own.find((v) => v.reason);
    if (first) pending.push({ subject, session: null, reason: `${first.plan.session ? `ses-${first.plan.session}: ` : ''}${first.reason}` });
    else done.push({ subject, session: null });
  }
  return { pending, done };
}
