/**
 * What a run leaves behind, and what it removes: its own temporaries and work folder when it
 * ends (finished, failed or interrupted; the work folder stays with --no-cleanup), and at start
 * the leftovers of earlier runs of the same participants that were killed (SIGKILL, OOM killer,
 * a SLURM time limit) before they could clean up.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { discardInFlight, removeLeftoverTemps, removeLeftoverWorkFolders } from '../bids/atomic.js';
import type { RunConfig } from '../config.js';

let workFolder: { path: string; keep: boolean } | null = null;

/** The run's work folder, removed by cleanUpRun unless `keep` (--no-cleanup). */
export function setWorkFolder(folder: string, keep: boolean): void {
  workFolder = { path: folder, keep };
}

let stopping = false;
let removedFolder: string | null = null;

/** An interrupt is stopping the run: nothing may be created in the work folder from now on. */
export function markStopping(): void {
  stopping = true;
}

/** Throws once an interrupt is stopping the run (call before making anything in the work folder). */
export function checkNotStopping(): void {
  if (stopping) throw new Error('the run is being interrupted');
}

/** Remove this run's temporaries and (unless kept) its work folder; safe to call twice. */
export async function cleanUpRun(): Promise<void> {
  await discardInFlight();
  const folder = workFolder;
  workFolder = null;
  if (folder && !folder.keep) {
    removedFolder = folder.path;
    await rm(folder.path, { recursive: true, force: true }).catch(() => undefined);
  }
}

/**
 * The last step of an interrupted run, just before it exits: the work folder removed once more,
 * for a folder a step already under way (a mkdir issued before the interrupt) made again after
 * cleanUpRun removed it.
 */
export async function removeWorkFolderAgain(): Promise<void> {
  if (removedFolder) await rm(removedFolder, { recursive: true, force: true }).catch(() => undefined);
}

/** The work folder that cleanUpRun will keep, if any (for the end-of-run note). */
export function keptWorkFolder(): string | null {
  return workFolder?.keep ? workFolder.path : null;
}

/**
 * Remove what killed runs left for participant `subject`: temporaries under output_dir/sub-<label>
 * and <qc_dir>/sub-<label>, and its temporaries in the log folders (names starting
 * `.sub-<label>_`). A temporary of another participant, or of a run still going, is never
 * touched (bids/atomic.ts isLeftover). Returns the number of files removed.
 */
export async function removeParticipantLeftovers(config: Pick<RunConfig, 'outputDir' | 'qcDir'>, subject: string): Promise<number> {
  const folder = `sub-${subject}`;
  const own = (name: string) => name.startsWith(`.${folder}_`) || name.startsWith(`.${folder}.`);
  const roots = [...new Set([path.join(config.outputDir, folder), path.join(config.qcDir, folder)])];
  const logRoots = [...new Set([path.join(config.outputDir, 'logs'), path.join(config.qcDir, 'logs', 'qc')])];
  const removed = await Promise.all([
    ...roots.map((root) => removeLeftoverTemps(root)),
    ...logRoots.map((root) => removeLeftoverTemps(root, own)),
  ]);
  return removed.flat().length;
}

/** Remove the work folders killed runs left in `root` (the -w folder, or the system's temp). */
export async function removeLeftoverWork(root: string): Promise<number> {
  return (await removeLeftoverWorkFolders(root)).length;
}
