/**
 * Test fixtures: build small BIDS trees in a temporary folder, snapshot them, make them
 * read-only. Used by the src/bids tests only (not part of the runtime).
 */
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach } from 'vitest';

/** File contents by relative path; objects are written as JSON, strings as they are. */
export type TreeSpec = Record<string, string | object>;

/** A minimal valid dataset_description.json. */
export const DESCRIPTION = { Name: 'test dataset', BIDSVersion: '1.10.0', DatasetType: 'raw' };

/** Create the tree under a new temporary folder; returns the folder. */
export async function makeTree(spec: TreeSpec): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'micanon-bids-test-'));
  try {
    await addToTree(root, spec);
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    throw err;
  }
  return root;
}

export async function addToTree(root: string, spec: TreeSpec): Promise<void> {
  for (const [rel, content] of Object.entries(spec)) {
    const file = path.join(root, rel);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  }
}

/** Every file and folder below root with its mode, size, mtime and content hash. */
export async function snapshotTree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      const s = await stat(full);
      const rel = path.relative(root, full);
      if (entry.isDirectory()) {
        out[rel] = `dir ${s.mode.toString(8)} ${s.mtimeMs}`;
        await walk(full);
      } else {
        const hash = createHash('sha256').update(await readFile(full)).digest('hex');
        out[rel] = `file ${s.mode.toString(8)} ${s.size} ${s.mtimeMs} ${hash}`;
      }
    }
  };
  await walk(root);
  return out;
}

/** Make every file and folder below (and including) root read-only, or writable again. */
export async function setTreeReadOnly(root: string, readOnly: boolean): Promise<void> {
  const walk = async (dir: string): Promise<void> => {
    if (!readOnly) await chmod(dir, 0o755);
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else await chmod(full, readOnly ? 0o444 : 0o644);
    }
    if (readOnly) await chmod(dir, 0o555);
  };
  await walk(root);
}

/** Remove a test tree, read-only or not. */
export async function removeTree(root: string): Promise<void> {
  await setTreeReadOnly(root, false).catch(() => undefined);
  await rm(root, { recursive: true, force: true });
}

/**
 * A tree maker for one test file: each call builds a tree (with a valid dataset_description.json
 * unless `bare`), and every tree is removed after each test.
 */
export function useTempTrees(): (spec?: TreeSpec, options?: { bare?: boolean }) => Promise<string> {
  const roots: string[] = [];
  afterEach(async () => {
    await Promise.all(roots.splice(0).map(removeTree));
  });
  return async (spec = {}, options = {}) => {
    const root = await makeTree(options.bare ? spec : { 'dataset_description.json': DESCRIPTION, ...spec });
    roots.push(root);
    return root;
  };
}
