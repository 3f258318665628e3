import { mkdir, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  FOREIGN_TEMP_MAX_AGE_MS,
  commitAtomic,
  isLeftover,
  isMicanonTemp,
  moveFileAtomic,
  removeLeftoverTemps,
  removeLeftoverWorkFolders,
  runId,
  tempPathFor,
  workFolderName,
  writeFileAtomic,
} from './atomic.js';
import { useTempTrees } from './tree.fixture.js';

const newTree = useTempTrees();
const dir = (): Promise<string> => newTree({}, { bare: true });

describe('tempPathFor', () => {
  it('is hidden, beside the target, and keeps the .nii.gz ending', () => {
    const tmp = tempPathFor('/out/sub-01/anat/sub-01_desc-defaced_T1w.nii.gz');
    expect(path.dirname(tmp)).toBe('/out/sub-01/anat');
    expect(path.basename(tmp)).toBe(`.sub-01_desc-defaced_T1w.micanon-tmp-${runId}.${path.basename(tmp).split('.').at(-3)}.nii.gz`);
    expect(runId).toMatch(new RegExp(`^[a-z0-9]+\\.\\d+\\.${process.pid}\\.[0-9a-f]{6}$`));
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

  it('moves a work file into place through a temporary sibling, leaving nothing else', async () => {
    const root = await dir();
    const work = path.join(root, 'work.nii.gz');
    await writeFile(work, 'img');
    const target = path.join(root, 'out', 'sub-01', 'anat', 'sub-01_desc-defaced_T1w.nii.gz');
    let during: string[] = [];
    await moveFileAtomic(work, target, async () => {
      during = await readdir(path.dirname(target));
    });
    expect(during).toHaveLength(1);
    expect(isMicanonTemp(during[0]!)).toBe(true);
    expect(await readdir(path.dirname(target))).toEqual([path.basename(target)]);
    expect(await readFile(target, 'utf8')).toBe('img');
    expect(await readdir(root)).toEqual(['out']);
  });
});

describe('leftovers of killed runs', () => {
  const deadPid = 2 ** 22 + 7; // above pid_max's default: never a running process
  const sameMachine = runId.split('.').slice(0, 2).join('.');

  it('are the temporaries of a dead process of this machine, or old ones of another; never this run\'s', () => {
    const now = Date.now();
    expect(isLeftover(`.a.micanon-tmp-${sameMachine}.${deadPid}.abcdef.0000.json`, now, now)).toBe(true);
    expect(isLeftover(`.a.micanon-tmp-${sameMachine}.${process.pid}.abcdef.0000.json`, now, now)).toBe(false);
    expect(isLeftover(path.basename(tempPathFor('/x/a.json')), 0, now)).toBe(false);
    expect(isLeftover('.a.micanon-tmp-otherhost.1.1.abcdef.0000.json', now, now)).toBe(false);
    expect(isLeftover('.a.micanon-tmp-otherhost.1.1.abcdef.0000.json', now - FOREIGN_TEMP_MAX_AGE_MS - 1, now)).toBe(true);
    // Names of micanon before run ids (pid-random): by age only.
    expect(isLeftover('.a.micanon-tmp-111-aa.nii.gz', now, now)).toBe(false);
    expect(isLeftover('.a.micanon-tmp-111-aa.nii.gz', now - FOREIGN_TEMP_MAX_AGE_MS - 1, now)).toBe(true);
    expect(isLeftover('a.nii.gz', 0, now)).toBe(false);
  });

  it('are removed below a folder, the live and the accepted-only kept', async () => {
    const root = await dir();
    await mkdir(path.join(root, 'anat'));
    const dead = path.join(root, 'anat', `.sub-01_T1w.micanon-tmp-${sameMachine}.${deadPid}.abcdef.0000.nii.gz`);
    const live = tempPathFor(path.join(root, 'anat', 'sub-01_T1w.nii.gz'));
    const old = path.join(root, '.sub-02_x.micanon-tmp-111-aa.json');
    for (const file of [dead, live, old, path.join(root, 'anat', 'sub-01_T1w.nii.gz')]) await writeFile(file, '');
    const ancient = new Date(Date.now() - FOREIGN_TEMP_MAX_AGE_MS - 60_000);
    await utimes(old, ancient, ancient);
    expect(await removeLeftoverTemps(root, (name) => name.startsWith('.sub-01_'))).toEqual([dead]);
    expect(await removeLeftoverTemps(root)).toEqual([old]);
    expect((await readdir(path.join(root, 'anat'))).sort()).toEqual([path.basename(live), 'sub-01_T1w.nii.gz'].sort());
  });

  it('include the work folders of dead runs of this machine, not this run\'s', async () => {
    const root = await dir();
    const mine = path.join(root, workFolderName);
    const dead = path.join(root, `micanon-work-${sameMachine}.${deadPid}.abcdef`);
    for (const folder of [mine, dead, path.join(root, 'micanon-other')]) await mkdir(folder);
    expect(await removeLeftoverWorkFolders(root)).toEqual([dead]);
    expect((await readdir(root)).sort()).toEqual(['micanon-other', workFolderName].sort());
  });
});
