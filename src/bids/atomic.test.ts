import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { commitAtomic, isMicanonTemp, removeStaleTemps, tempPathFor, writeFileAtomic } from './atomic.js';
import { useTempTrees } from './tree.fixture.js';

const newTree = useTempTrees();
const dir = (): Promise<string> => newTree({}, { bare: true });

describe('tempPathFor', () => {
  it('is hidden, beside the target, and keeps the .nii.gz ending', () => {
    const tmp = tempPathFor('/out/sub-01/anat/sub-01_desc-defaced_T1w.nii.gz');
    expect(path.dirname(tmp)).toBe('/out/sub-01/anat');
    expect(path.basename(tmp)).toMatch(new RegExp(`^\\.sub-01_desc-defaced_T1w\\.micanon-tmp-${process.pid}-[0-9a-f]{8}\\.nii\\.gz$`));
    expect(isMicanonTemp(tmp)).toBe(true);
    expect(isMicanonTemp('/out/sub-01_T1w.nii.gz')).toBe(false);
    expect(tempPathFor('/x/a.json')).not.toBe(tempPathFor('/x/a.json'));
  });
});

describe('writeFileAtomic', () => {
  it('writes the data, creating folders, and leaves no temporary file', async () => {
    const root = await dir();
    const target = path.join(root, 'sub-01', 'anat', 'x.json');
    await writeFileAtomic(target, '{"a":1}');
    expect(await readFile(target, 'utf8')).toBe('{"a":1}');
    expect(await readdir(path.dirname(target))).toEqual(['x.json']);
  });

  it('replaces an existing file whole', async () => {
    const root = await dir();
    const target = path.join(root, 'x.json');
    await writeFile(target, 'old old old old');
    await writeFileAtomic(target, 'new');
    expect(await readFile(target, 'utf8')).toBe('new');
  });

  it('leaves no temporary file and keeps the old content when the final rename fails', async () => {
    const root = await dir();
    // A non-empty folder under the final name: the temp file is written, the rename fails.
    const target = path.join(root, 'blocked.nii.gz');
    await mkdir(target);
    await writeFile(path.join(target, 'keep'), 'k');
    await expect(writeFileAtomic(target, 'data')).rejects.toMatchObject({ code: 'BIDS_OUTPUT_NOT_WRITABLE', exitCode: 73 });
    expect(await readdir(root)).toEqual(['blocked.nii.gz']);
    expect(await readdir(target)).toEqual(['keep']);
  });

  it('leaves nothing when the folder cannot be created', async () => {
    const root = await dir();
    await writeFile(path.join(root, 'file'), 'x');
    await expect(writeFileAtomic(path.join(root, 'file', 'sub', 'x.json'), 'data')).rejects.toMatchObject({ code: 'BIDS_OUTPUT_NOT_WRITABLE' });
    expect(await readdir(root)).toEqual(['file']);
  });
});

describe('commitAtomic and removeStaleTemps', () => {
  it('moves a finished temp into place, removes it on failure', async () => {
    const root = await dir();
    const target = path.join(root, 'a.nii.gz');
    const tmp = tempPathFor(target);
    await writeFile(tmp, 'img');
    await commitAtomic(tmp, target);
    expect(await readdir(root)).toEqual(['a.nii.gz']);

    const tmp2 = tempPathFor(path.join(root, 'missing', 'b.nii.gz'));
    await writeFile(path.join(root, path.basename(tmp2)), 'img');
    await expect(commitAtomic(path.join(root, path.basename(tmp2)), path.join(root, 'missing', 'b.nii.gz'))).rejects.toMatchObject({
      code: 'BIDS_OUTPUT_NOT_WRITABLE',
    });
    expect(await readdir(root)).toEqual(['a.nii.gz']);
  });

  it('removes only the stale temps of the given pid', async () => {
    const root = await dir();
    await writeFile(path.join(root, '.x.micanon-tmp-111-aa.nii.gz'), '');
    await writeFile(path.join(root, '.y.micanon-tmp-222-bb.json'), '');
    await writeFile(path.join(root, 'z.nii.gz'), '');
    expect((await removeStaleTemps(root, 111)).map((p) => path.basename(p))).toEqual(['.x.micanon-tmp-111-aa.nii.gz']);
    expect((await readdir(root)).sort()).toEqual(['.y.micanon-tmp-222-bb.json', 'z.nii.gz']);
  });
});
