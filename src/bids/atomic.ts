/**
 * Atomic file writes: data goes to a hidden temporary file in the destination's own folder
 * (same file system, so the final rename is atomic) and is renamed into place only when complete.
 * A reader, another participant job, or a BIDS validator never sees a half-written output.
 *
 * A temporary name carries the run that made it (`runId`: machine, process and a random part),
 * so a later run can tell the leftovers of a crashed run from the files of a run still going.
 * Temporaries exist only for the moment of a copy and a rename; every one is registered while it
 * exists so an interrupted run can remove its own.
 */
import { randomBytes } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { copyFile, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { BidsError } from './errors.js';
import { extensionOf, stemOf } from './entities.js';

const TEMP_MARK = '.micanon-tmp-';

/** This machine as seen from here: host name and PID namespace (containers share host names). */
function machineTag(): string {
  const host = hostname().toLowerCase().replace(/[^a-z0-9]/g, '').slice(0, 16) || 'host';
  let pidNamespace = '0';
  try {
    pidNamespace = /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))?.[1] ?? '0';
  } catch {
    // Not Linux: the host name alone.
  }
  return `${host}.${pidNamespace}`;
}

const thisMachine = machineTag();

/** This run: `<host>.<pid namespace>.<pid>.<random>`; in the name of every temporary it makes. */
export const runId = `${thisMachine}.${process.pid}.${randomBytes(3).toString('hex')}`;

/** A run id parsed: its machine and pid, or only a pid for names made before run ids. */
interface RunOwner {
  machine: string | null;
  pid: number;
}

function ownerOfId(id: string): RunOwner | null {
  const current = /^([a-z0-9]+\.\d+)\.(\d+)\.[0-9a-f]+/.exec(id);
  if (current) return { machine: current[1]!, pid: Number(current[2]) };
  const legacy = /^(\d+)-[0-9a-f]+/.exec(id);
  return legacy ? { machine: null, pid: Number(legacy[1]) } : null;
}

const WORK_MARK = 'micanon-work-';

/** The run owning a temporary file or a work folder, from its name; null for other names. */
function ownerOf(name: string): RunOwner | null {
  if (name.startsWith(WORK_MARK)) return ownerOfId(name.slice(WORK_MARK.length));
  const at = name.indexOf(TEMP_MARK);
  if (at < 0 || !name.startsWith('.')) return null;
  return ownerOfId(name.slice(at + TEMP_MARK.length));
}

/** The name of this run's work folder (removed by a later run if this one is killed). */
export const workFolderName = `${WORK_MARK}${runId}`;

/** True for work folder names made by any run (workFolderName). */
export function isWorkFolder(name: string): boolean {
  return name.startsWith(WORK_MARK) && ownerOf(name) !== null;
}

/**
 * A temporary path beside `finalPath`: `<dir>/.<stem>.micanon-tmp-<runId><ext>`. Hidden (so
 * BIDS tools and discovery skip it), keeping the extension (`.nii.gz` stays `.nii.gz`), and
 * naming its participant through the stem of the BIDS file it becomes.
 */
export function tempPathFor(finalPath: string): string {
  const unique = randomBytes(2).toString('hex');
  const name = `.${stemOf(finalPath)}${TEMP_MARK}${runId}.${unique}${extensionOf(finalPath)}`;
  return path.join(path.dirname(finalPath), name);
}

/** True for names made by tempPathFor (any run, this version or an older one). */
export function isMicanonTemp(nameOrPath: string): boolean {
  const name = path.basename(nameOrPath);
  return !name.startsWith(WORK_MARK) && ownerOf(name) !== null;
}

const inFlight = new Set<string>();

/** Temporaries of this run that exist right now (removed by discardInFlight on an interrupt). */
function track(tmpPath: string): string {
  inFlight.add(tmpPath);
  return tmpPath;
}

/** Remove a temporary file, ignoring every failure (it may never have been created). */
async function discard(tmpPath: string): Promise<void> {
  inFlight.delete(tmpPath);
  await rm(tmpPath, { force: true }).catch(() => undefined);
}

/** Remove every temporary of this run still on disk (interrupt, failure). */
export async function discardInFlight(): Promise<void> {
  await Promise.all([...inFlight].map(discard));
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
    inFlight.delete(tmpPath);
  } catch (err) {
    await discard(tmpPath);
    throw outputError(err, finalPath);
  }
}

/**
 * Put a file at `finalPath` through a temporary sibling made now: `fill(tmp)` writes it (and
 * flushes it to disk), then it is renamed into place. Creates missing parent folders; nothing is
 * left behind on failure. `beforeRename` runs between the two (the fault suite's hold point).
 */
async function placeViaTemp(finalPath: string, fill: (tmpPath: string) => Promise<void>, beforeRename?: () => Promise<void>): Promise<void> {
  const tmpPath = track(tempPathFor(finalPath));
  try {
    await mkdir(path.dirname(finalPath), { recursive: true });
    await fill(tmpPath);
  } catch (err) {
    await discard(tmpPath);
    throw outputError(err, finalPath);
  }
  await beforeRename?.();
  await commitAtomic(tmpPath, finalPath);
}

/** Flush a file to disk. Opened read-only: a copy keeps its source's mode, which may be 0444. */
async function syncFile(file: string): Promise<void> {
  const handle = await open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Write `data` to `finalPath` atomically, creating missing parent folders. The data is flushed
 * to disk before the rename so a crash cannot leave an empty file under the final name.
 * Nothing is left behind on failure.
 */
export async function writeFileAtomic(finalPath: string, data: string | Uint8Array): Promise<void> {
  await placeViaTemp(finalPath, async (tmpPath) => {
    const handle = await open(tmpPath, 'wx');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
  });
}

/**
 * Copy `source` to `finalPath` atomically (a temporary sibling, flushed, then renamed): several
 * runs copying the same file at once each replace it whole, never leave it half-written.
 */
export async function copyFileAtomic(source: string, finalPath: string): Promise<void> {
  await placeViaTemp(finalPath, async (tmpPath) => {
    await copyFile(source, tmpPath);
    await syncFile(tmpPath);
  });
}

/**
 * Move a finished file (from the work folder) to `finalPath` atomically: renamed into a temporary
 * sibling of the destination (copied and flushed when the work folder is on another file
 * system), then renamed into place. The source is gone afterwards, or left alone on failure.
 */
export async function moveFileAtomic(source: string, finalPath: string, beforeRename?: () => Promise<void>): Promise<void> {
  await placeViaTemp(
    finalPath,
    async (tmpPath) => {
      try {
        await rename(source, tmpPath);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
        await copyFile(source, tmpPath);
        await syncFile(tmpPath);
        await rm(source, { force: true });
      }
    },
    beforeRename,
  );
}

/**
 * Move every file of `sourceDir` (drawn in a work folder) into `destDir`, each atomically
 * ({@link moveFileAtomic}): figures join the QC folder only once their records are ready, so an
 * interrupted run leaves none behind without its record.
 */
export async function moveFilesInto(sourceDir: string, destDir: string): Promise<void> {
  for (const name of await readdir(sourceDir)) await moveFileAtomic(path.join(sourceDir, name), path.join(destDir, name));
}

/** True while process `pid` of this machine runs (EPERM: it runs as another user). */
function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A temporary older than this was left by a run that is gone even when that run was on another
 * machine (whose processes cannot be asked): temporaries live for one copy and rename.
 */
export const FOREIGN_TEMP_MAX_AGE_MS = 10 * 60 * 1000;

/**
 * Whether a temporary file or a work folder named `name`, last modified at `mtimeMs`, belongs to a run
 * that is gone: never this run's; on this machine, when its process no longer runs; from another
 * machine (or an older micanon, whose names carry no machine), when it is older than
 * FOREIGN_TEMP_MAX_AGE_MS.
 */
export function isLeftover(name: string, mtimeMs: number, now = Date.now()): boolean {
  const owner = ownerOf(name);
  if (!owner || name.includes(runId)) return false;
  if (owner.machine === thisMachine) return !processRuns(owner.pid);
  return now - mtimeMs > FOREIGN_TEMP_MAX_AGE_MS;
}

/**
 * Remove the temporaries that crashed runs left in `dir` and below (only names made by
 * tempPathFor whose run is gone, see isLeftover; never this run's nor a live run's).
 * `accept` narrows the names considered (e.g. one participant's). Returns the paths removed.
 */
export async function removeLeftoverTemps(dir: string, accept: (name: string) => boolean = () => true): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { recursive: true, withFileTypes: true });
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const entry of entries) {
    if (!entry.isFile() || !isMicanonTemp(entry.name) || !accept(entry.name)) continue;
    const file = path.join(entry.parentPath, entry.name);
    const info = await stat(file).catch(() => null);
    if (!info || !isLeftover(entry.name, info.mtimeMs)) continue;
    await rm(file, { force: true }).catch(() => undefined);
    removed.push(file);
  }
  return removed;
}

/**
 * Remove the work folders that killed runs left in `root` (names made by workFolderName whose
 * run is gone, see isLeftover). Returns the folders removed.
 */
export async function removeLeftoverWorkFolders(root: string): Promise<string[]> {
  const names = await readdir(root).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names.filter(isWorkFolder)) {
    const folder = path.join(root, name);
    const info = await stat(folder).catch(() => null);
    if (!info?.isDirectory() || !isLeftover(name, info.mtimeMs)) continue;
    try {
      await rm(folder, { recursive: true, force: true });
      removed.push(folder);
    } catch {
      // Another user's folder in a shared /tmp: not ours to remove.
    }
  }
  return removed;
}
