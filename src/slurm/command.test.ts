import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { useTempTrees } from '../bids/tree.fixture.js';
import { parseSlurmArgs } from '../cli/slurm.js';
import { runSlurm } from './command.js';

const tree = useTempTrees();

/**
 * Stand-ins for sbatch and squeue on PATH: sbatch answers job ids 100, 101, ... and records its
 * arguments; squeue prints what `queue` holds.
 */
async function fakeSlurm(dir: string): Promise<{ calls: () => Promise<string[]>; setQueue: (rows: string) => Promise<void> }> {
  await mkdir(dir, { recursive: true });
  const sbatch = path.join(dir, 'sbatch');
  await writeFile(
    sbatch,
    `#!/bin/bash\nn=$(wc -l < "${dir}/calls" 2>/dev/null || echo 0)\necho "$*" >> "${dir}/calls"\necho "$((100 + n));cluster"\n`,
  );
  await writeFile(path.join(dir, 'squeue'), `#!/bin/bash\ncat "${dir}/queue" 2>/dev/null\n`);
  await chmod(sbatch, 0o755);
  await chmod(path.join(dir, 'squeue'), 0o755);
  return {
    calls: async () => (await readFile(path.join(dir, 'calls'), 'utf8').catch(() => '')).trim().split('\n').filter(Boolean),
    setQueue: (rows) => writeFile(path.join(dir, 'queue'), rows),
  };
}

describe('micanon slurm --submit (sbatch and squeue stood in for)', () => {
  const savedPath = process.env.PATH;
  afterEach(() => {
    process.env.PATH = savedPath;
  });

  it('submits the array, then the group after it; a rerun leaves out tasks done or still queued', async () => {
    const bids = await tree({ 'sub-01/anat/sub-01_T1w.nii.gz': 'x', 'sub-02/anat/sub-02_T1w.nii.gz': 'x', 'sub-03/anat/sub-03_T1w.nii.gz': 'x' });
    const bin = path.join(bids, '.bin');
    const fake = await fakeSlurm(bin);
    process.env.PATH = `${bin}:${savedPath}`;
    const out = path.join(bids, 'derivatives', 'micanon');
    const command = parseSlurmArgs([bids, out, '--submit', '--array-limit', '2', '--method', 'deface'])!;

    const first = await runSlurm(command, new Date('2026-01-01T00:00:00Z'));
    expect(first.submission).toMatchObject({ arrayJob: '100', groupJob: '101' });
    const calls = await fake.calls();
    expect(calls).toEqual([
      `--parsable ${out}/logs/slurm/micanon_20260101T000000Z.sbatch`,
      `--parsable --dependency=afterany:100 ${out}/logs/slurm/micanon_20260101T000000Z_group.sbatch`,
    ]);
    expect(await readFile(first.submission!.listFile, 'utf8')).toBe('01\n02\n03\n');
    expect(await readFile(first.submission!.arrayScript, 'utf8')).toContain('#SBATCH --array=1-3%2\n');

    // sub-01 finished; sub-02 is still running as task 2 of job 100; sub-03 failed.
    await writeFile(
      path.join(out, 'logs', 'sub-01_micanon.json'),
      JSON.stringify({ methods: ['deface'], outputLayout: 'derivatives', outputs: [{ method: 'deface', written: true, output: 'sub-01/anat/x.nii.gz' }] }),
    );
    await mkdir(path.join(out, 'sub-01', 'anat'), { recursive: true });
    await writeFile(path.join(out, 'sub-01', 'anat', 'x.nii.gz'), 'x');
    await fake.setQueue('100 2\n');
    const second = await runSlurm(command, new Date('2026-01-01T01:00:00Z'));
    expect(second.submission?.tasks.map((t) => t.subject)).toEqual(['03']);
    expect(await readFile(second.submission!.listFile, 'utf8')).toBe('03\n');
    expect((await fake.calls()).slice(2)).toEqual([
      `--parsable ${out}/logs/slurm/micanon_20260101T010000Z.sbatch`,
      `--parsable --dependency=afterany:102 ${out}/logs/slurm/micanon_20260101T010000Z_group.sbatch`,
    ]);
  });

  it('says so, in one line, when sbatch is not there', async () => {
    const bids = await tree({ 'sub-01/anat/sub-01_T1w.nii.gz': 'x' });
    process.env.PATH = '/nonexistent';
    const command = parseSlurmArgs([bids, path.join(bids, 'derivatives', 'm'), '--submit'])!;
    await expect(runSlurm(command)).rejects.toMatchObject({ code: 'SLURM_UNAVAILABLE', exitCode: 1, message: 'sbatch is not on PATH' });
  });
});
