/**
 * The end of a run: a table on the console, and one JSON record per session under
 * output_dir/logs that the `group` level gathers into the dataset summary.
 */
import path from 'node:path';
import { writeFileAtomic } from '../bids/atomic.js';
import type { RunConfig } from '../config.js';
import { log } from '../log.js';
import { packageVersion } from '../version.js';
import type { InputWarning } from './inputs.js';
import type { RunValidation } from './validation.js';
import { sessionName, type OutputRecord } from './session.js';

export function summaryTable(records: readonly OutputRecord[]): string[] {
  const rows = records.map((r) => [
    sessionName(r),
    path.basename(r.input),
    r.method,
    r.status === 'ok' ? 'ok' : 'FAILED',
    r.written ? 'yes' : 'no',
    r.brainVoxelsChanged === null ? '-' : String(r.brainVoxelsChanged),
    r.methodSeconds === null ? '-' : r.methodSeconds.toFixed(1),
    r.reason ?? '',
  ]);
  const header = ['session', 'image', 'method', 'status', 'written', 'brain_changed', 'method_s', 'reason'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}

/** The run's outcome in one line: what was written, and what of it failed QC (--qc-fail-ok). */
export function summaryLine(records: readonly OutputRecord[]): string {
  const written = records.filter((r) => r.written);
  const failedWritten = written.filter((r) => r.status !== 'ok').length;
  const notWritten = records.length - written.length;
  const parts = [
    `${written.length} written`,
    ...(failedWritten ? [`${failedWritten} of them failed QC and were written because of --qc-fail-ok`] : []),
  ];
  return `${parts.join(', ')}; ${notWritten} failed and not written`;
}

/** Where the session's time went: wall clock, then the stages (registration, QC, ...). */
export function sessionTimeLine(name: string, timings: Record<string, number>): string {
  const { wall, session: _engineTotal, ...stages } = timings;
  const parts = Object.entries(stages)
    .filter(([, seconds]) => seconds >= 0.05)
    .map(([stage, seconds]) => `${stage} ${seconds.toFixed(1)}`);
  return `${name}: ${wall === undefined ? '?' : wall.toFixed(1)} s wall clock${parts.length ? ` (stages, s: ${parts.join(', ')})` : ''}`;
}

export function printSummary(records: readonly OutputRecord[], timings: ReadonlyMap<string, Record<string, number>> = new Map()): void {
  log.info(`summary: ${summaryLine(records)}`);
  for (const row of summaryTable(records)) log.info(`  ${row}`);
  log.info('  (method_s: seconds of the method itself on that image; registration, masks and QC are shared by the session:)');
  for (const [name, stages] of timings) log.info(`  ${sessionTimeLine(name, stages)}`);
}

/**
 * The run record of one session: `<output_dir>/logs/sub-<label>[_ses-<label>]_micanon.json`, written
 * once the session's run ends. The group level gathers them; `micanon slurm` reads them to tell
 * the participants that are done from those to submit again (src/slurm/tasks.ts).
 */
export function runRecordPath(outputDir: string, session: Parameters<typeof sessionName>[0]): string {
  return path.join(outputDir, 'logs', `${sessionName(session)}_micanon.json`);
}

/** Per-session run records (JSON) in output_dir/logs: what the group level reads. */
export async function writeRunSummary(
  config: RunConfig,
  records: readonly OutputRecord[],
  started: Date,
  timings: ReadonlyMap<string, Record<string, number>> = new Map(),
  references: ReadonlyMap<string, { input: string; reason: string }> = new Map(),
  inputWarnings: ReadonlyMap<string, readonly InputWarning[]> = new Map(),
  validation: RunValidation = { input: null, output: null },
): Promise<void> {
  const bySession = new Map<string, OutputRecord[]>();
  for (const record of records) {
    const key = sessionName(record);
    bySession.set(key, [...(bySession.get(key) ?? []), record]);
  }
  for (const [name, rows] of bySession) {
    const file = runRecordPath(config.outputDir, rows[0]!);
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
        ? { input: referenceName(config.bidsDir, references.get(name)!.input), reason: references.get(name)!.reason }
        : null,
      inputWarnings: (inputWarnings.get(name) ?? []).map((w) => ({ ...w, input: path.relative(config.bidsDir, w.input) })),
      // The resolved configuration, every default filled in (as fMRIPrep records its config).
      configuration: config,
      // What the official BIDS validator said of this run's input and output (null: not run).
      bidsValidation: validation,
      outputs: rows.map(({ engine, ...row }) => ({
        ...row,
        input: path.relative(config.bidsDir, row.input),
        output: row.output ? path.relative(config.outputDir, row.output) : null,
        registration: engine && 'registration' in engine ? engine.registration : null,
        ...(engine && 'warp' in engine && engine.warp ? { warp: engine.warp } : {}),
      })),
    };
    await writeFileAtomic(file, `${JSON.stringify(body, null, 2)}\n`);
  }
}

/** The reference as records name it: relative to bids_dir, or (a --t1w from elsewhere) its absolute path. */
function referenceName(bidsDir: string, file: string): string {
  const relative = path.relative(bidsDir, file);
  return relative.startsWith('..') || path.isAbsolute(relative) ? path.resolve(file) : relative;
}
