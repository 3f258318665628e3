/**
 * What the task logs of `micanon slurm` (`<output_dir>/logs/slurm/*.log`, SLURM's --output of
 * each array task) say about a participant that left no run record: its first error line (the cause). The
 * group level shows it beside the participant, so a refused input is named on the group page.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

/** The first line the array script prints (src/slurm/script.ts): whose task this log is. */
const TASK_LINE = /^micanon slurm: task \d+ of job \d+: sub-([A-Za-z0-9]+)(?: ses-([A-Za-z0-9]+))?/m;
const ERROR_LINE = /^(?:\d\d:\d\d:\d\d )?ERROR: (.*)$/;

/** `sub-<label>` or `sub-<label>_ses-<label>`, the key of taskLogErrors. */
export function taskKey(subject: string, session: string | null): string {
  return `sub-${subject}${session ? `_ses-${session}` : ''}`;
}

/**
 * The first error line of each participant's (or session's) latest task log, by taskKey; empty
 * when there are no task logs. Names sort by submission time, then job and task id.
 */
export async function taskLogErrors(outputDir: string): Promise<Map<string, string>> {
  const folder = path.join(outputDir, 'logs', 'slurm');
  const names = (await readdir(folder).catch(() => [] as string[])).filter((n) => n.endsWith('.log')).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const errors = new Map<string, string>();
  for (const name of names) {
    const text = await readFile(path.join(folder, name), 'utf8').catch(() => '');
    const task = TASK_LINE.exec(text);
    if (!task) continue;
    // The first error is the cause (the file and what is wrong with it); later ones follow from it.
    const first = text
      .split('\n')
      .map((l) => ERROR_LINE.exec(l)?.[1])
      .find((l) => l !== undefined);
    const key = taskKey(task[1]!, task[2] ?? null);
    if (first) errors.set(key, first);
    else errors.delete(key);
  }
  return errors;
}
