/**
 * The end of a run: a table on the console, and one JSON record per session under
 * output_dir/logs that the `group` level gathers into the dataset summary.
 */
import path from 'node:path';
import { writeFileAtomic } from '../bids/atomic.js';
import type { RunConfig } from '../cli/config.js';
import { log } from '../log.js';
import { packageVersion } from '../version.js';
import { sessionName, type OutputRecord } from './session.js';

export function summaryTable(records: readonly OutputRecord[]): string[] {
  const rows = records.map((r) => [
    sessionName(r),
    path.basename(r.input),
    r.method,
    r.status === 'ok' ? 'ok' : 'FAILED',
    r.brainVoxelsChanged === null ? '-' : String(r.brainVoxelsChanged),
    r.seconds === null ? '-' : r.seconds.toFixed(1),
    r.reason ?? '',
  ]);
  const header = ['session', 'image', 'method', 'status', 'brain_changed', 'seconds', 'reason'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}

export function printSummary(records: readonly OutputRecord[]): void {
  const failed = records.filter((r) => r.status !== 'ok').length;
  log.info(`summary: ${records.length - failed} output(s) written, ${failed} failed`);
  for (const row of summaryTable(records)) log.info(`  ${row}`);
}

/** Per-session run records (JSON) in output_dir/logs: what the group level reads. */
export async function writeRunSummary(
  config: RunConfig,
  records: readonly OutputRecord[],
  started: Date,
  timings: ReadonlyMap<string, Record<string, number>> = new Map(),
  references: ReadonlyMap<string, { input: string; reason: string }> = new Map(),
): Promise<void> {
  const bySession = new Map<string, OutputRecord[]>();
  for (const record of records) {
    const key = sessionName(record);
    bySession.set(key, [...(bySession.get(key) ?? []), record]);
  }
  for (const [name, rows] of bySession) {
    const file = path.join(config.outputDir, 'logs', `${name}_micanon.json`);
    const body = {
      micanon: packageVersion,
      started: started.toISOString(),
      finished: new Date().toISOString(),
      methods: config.methods,
      threads: config.nthreads,
      // The group level must use the same layout and QC folder (summariseOutputs checks).
      outputLayout: config.outputLayout,
      qcDir: path.relative(config.outputDir, config.qcDir) || '.',
      timings: timings.get(name) ?? {},
      reference: references.has(name)
        ? { input: path.relative(config.bidsDir, references.get(name)!.input), reason: references.get(name)!.reason }
        : null,
      outputs: rows.map(({ engine, ...row }) => ({
        ...row,
        input: path.relative(config.bidsDir, row.input),
        output: row.output ? path.relative(config.outputDir, row.output) : null,
        registration: engine && 'registration' in engine ? engine.registration : null,
      })),
    };
    await writeFileAtomic(file, `${JSON.stringify(body, null, 2)}\n`);
  }
}
