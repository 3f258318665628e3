/**
 * Atomic file writes: data goes to a hidden temporary file in the destination's own folder
 * (same file system, so the final rename is atomic) and is renamed into place only when complete.
 * A reader, another participant job, or a BIDS validator never sees a half-written output.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { BidsError } from './errors.js';
import { extensionOf, stemOf } from './entities.js';

const TEMP_MARK = '.micanon-tmp-';

/**
 * A temporary path beside `finalPath`: `<dir>/.<stem>.micanon-tmp-<pid>-<rand><ext>`.
 * Hidden (so BIDS tools and discovery skip it) and keeping the extension (`.nii.gz` stays
 * `.nii.gz`, so writers that choose compression from the name still do the right thing).
 */
export function tempPathFor(finalPath: string): string {
  const rand = randomBytes(4).toString('hex');
  const name = `.${stemOf(finalPath)}${TEMP_MARK}${process.pid}-${rand}${extensionOf(finalPath)}`;
  return path.join(path.dirname(finalPath), name);
}

/** True for names made by tempPathFor (any process). */
export function isMicanonTemp(nameOrPath: string): boolean {
  return path.basename(nameOrPath).startsWith('.') && path.basename(nameOrPath).includes(TEMP_MARK);
}

/** Remove a temporary file, ignoring every failure (it may never have been created). */
async function discard(tmpPath: string): Promise<void> {
  await rm(tmpPath, { force: true }).catch(() => undefined);
}

function outputError(err: unknown, target: string): BidsError {
  const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
  return new BidsError('BIDS_OUTPUT_NOT_WRITABLE', `cannot write ${target}: ${reason}`, { path: target, cause: err });
}

/**
 * Move a finished temporary file onto its final path (atomic rename, replacing any old file).
 * On failure the temporary file is removed and a BIDS_OUTPUT_NOT_WRITABLE error is thrown.
 */
export async function commitAtomic(tmpPath: string, finalPath: string): Promise<void> {
  try {
    await rename(tmpPath, finalPath);
  } catch (err) {
    await discard(tmpPath);
    throw outputError(err, finalPath);
  }
}

/**
 * Write `data` to `finalPath` atomically, creating missing parent folders. The data is flushed
 * to disk before the rename so a crash cannot leave an empty file under the final name.
 * Nothing is left behind on failure.
 */
export async function writeFileAtomic(finalPath: string, data: string | Uint8Array): Promise<void> {
  const tmpPath = tempPathFor(finalPath);
  try {
    await mkdir(path.dirname(finalPath), { recursive: true });
    const handle = await open(tmpPath, 'wx');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (err) {
    await discard(tmpPath);
    throw outputError(err, finalPath);
  }
  await commitAtomic(tmpPath, finalPath);
}

/**
 * Remove temporary files left in `dir` by processes that died before committing
 * (only those of `pid` when given; never files of other live jobs when a pid is passed).
 * Returns the paths removed.
 */
export async function removeStaleTemps(dir: string, pid?: number): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const stale = names.filter((name) => isMicanonTemp(name) && (pid === undefined || name.includes(`${TEMP_MARK}${pid}-`)));
  const removed = stale.map((name) => path.join(dir, name));
  await Promise.all(removed.map(discard));
  return removed;
}
