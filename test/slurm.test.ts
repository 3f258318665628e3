/**
 * `micanon slurm` on a real one-node SLURM cluster (slurmctld + slurmd 22.05 on loopback, started
 * here, see test/helpers/slurm.ts): three participants, two copies of person A's T1w and one whose
 * T1w is truncated, submitted with `micanon slurm --native --submit`. Checks what the scheduler,
 * the task logs and output_dir say after the array and the group job, then that a second run of
 * the same command submits only the failed participant. Skips, saying why, where slurm-wlm cannot
 * run (not root, not installed) or person A is absent.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMicanonTemp } from '../src/bids/atomic.js';
import { packageRoot } from '../src/paths.js';
import { buildOnce } from './helpers/cli.js';
import { slurmUnavailable, startCluster, type Cluster } from './helpers/slurm.js';

const personA = path.resolve(packageRoot, '..', 'shared', 'data', 'bids-person-a');
const T1W = path.join(personA, 'sub-A', 'ses-01', 'anat', 'sub-A_ses-01_T1w');
const skipReason = slurmUnavailable() ?? (existsSync(`${T1W}.nii.gz`) ? null : `person A is absent (${personA})`);
if (skipReason) process.stderr.write(`\nslurm test skipped: ${skipReason}\n`);

let root = '';
let bids = '';
let out = '';

/** One record of `scontrol -o show job`: its fields. */
function jobRecords(text: string): Array<Record<string, string>> {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => Object.fromEntries([...l.matchAll(/(\w+)=(\S*)/g)].map((m) => [m[1]!, m[2]!])));
}

const FINAL = /^(COMPLETED|FAILED|CANCELLED|TIMEOUT|OUT_OF_MEMORY|NODE_FAIL|BOOT_FAIL|DEADLINE)$/;

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

describe.skipIf(skipReason !== null)('micanon slurm on a one-node cluster', () => {
  let cluster: Cluster | null = null;
  const slurmArgs = () => [bids, out, '--native', '--submit', '--partition', 'debug', '--cpus-per-task', '1', '--mem', '3G', '--time', '00:40:00', '--method', 'deface', '--skip-bids-validation'];

  const scontrol = async (id: string) => jobRecords(String((await execa('scontrol', ['-o', 'show', 'job', id], { env: cluster!.env })).stdout));

  /** Submit with micanon slurm; wait until the group job has ended; the array's and group's records. */
  async function submitAndWait(): Promise<{ stdout: string; stderr: string; array: Array<Record<string, string>>; group: Record<string, string>; tasks: string[] }> {
    const run = await execa(process.execPath, [path.join(packageRoot, 'bin', 'micanon.js'), 'slurm', ...slurmArgs()], { env: cluster!.env, reject: false });
    expect(run.exitCode, run.stderr).toBe(0);
    const [arrayId, groupId] = String(run.stdout).trim().split(/\s+/);
    expect(arrayId).toMatch(/^\d+$/);
    let group: Record<string, string> = {};
    const deadline = Date.now() + 20 * 60_000;
    while (!FINAL.test(group.JobState ?? '') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 2000));
      group = (await scontrol(groupId!).catch(() => []))[0] ?? group;
    }
    const ended = FINAL.test(group.JobState ?? '');
    expect(ended, `group job ${groupId}: ${JSON.stringify(group)}`).toBe(true);
    const submission = JSON.parse(readFileSync(readdirSync(path.join(out, 'logs', 'slurm')).filter((f) => f.endsWith('.json')).map((f) => path.join(out, 'logs', 'slurm', f)).sort().pop()!, 'utf8')) as {
      arrayJob: string;
      listFile: string;
    };
    expect(submission.arrayJob).toBe(arrayId);
    const tasks = readFileSync(submission.listFile, 'utf8').trim().split('\n');
    return { stdout: String(run.stdout), stderr: String(run.stderr), array: (await scontrol(arrayId!)).filter((r) => r.ArrayTaskId), group, tasks };
  }

  beforeAll(async () => {
    await buildOnce();
    root = mkdtempSync(path.join(tmpdir(), 'micanon-slurm-test-'));
    bids = path.join(root, 'bids');
    out = path.join(root, 'out');
    mkdirSync(bids, { recursive: true });
    writeFileSync(path.join(bids, 'dataset_description.json'), JSON.stringify({ Name: 'slurm test', BIDSVersion: '1.10.0' }));
    for (const subject of ['01', '02', '03']) {
      const anat = path.join(bids, `sub-${subject}`, 'anat');
      mkdirSync(anat, { recursive: true });
      const image = readFileSync(`${T1W}.nii.gz`);
      // sub-03: the first half of the file only (a transfer cut short).
      writeFileSync(path.join(anat, `sub-${subject}_T1w.nii.gz`), subject === '03' ? image.subarray(0, image.length >> 1) : image);
      writeFileSync(path.join(anat, `sub-${subject}_T1w.json`), readFileSync(`${T1W}.json`));
    }
    const started = Date.now();
    cluster = await startCluster();
    process.stderr.write(`slurm test: cluster up in ${((Date.now() - started) / 1000).toFixed(1)} s (${cluster.dir})\n`);
  }, 120_000);

  afterAll(async () => {
    await cluster?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('runs the array and the group job: two anonymized, the corrupt one failed with its exit code and line', async () => {
    const { array, group, tasks, stdout } = await submitAndWait();
    expect(tasks).toEqual(['01', '02', '03']);
    const script = readdirSync(path.join(out, 'logs', 'slurm')).find((f) => f.endsWith('.sbatch') && !f.includes('_group'))!;
    const starts = array.map((r) => Date.parse(r.StartTime!));
    const ends = array.map((r) => Date.parse(r.EndTime!));
    process.stderr.write(
      `\nslurm test: the sbatch script (${script}):\n${readFileSync(path.join(out, 'logs', 'slurm', script), 'utf8')}\n` +
        `slurm test: array wall time ${((Math.max(...ends) - Math.min(...starts)) / 1000).toFixed(0)} s (first start to last end); ` +
        `tasks: ${array.map((r) => `${r.ArrayTaskId} ${r.JobState} ${r.ExitCode} ${r.RunTime}`).join(', ')}; group ${group.JobState} ${group.ExitCode} ${group.RunTime}; ids ${stdout.trim()}\n`,
    );

    // The scheduler's record of each task: micanon's own exit code (65: bad data).
    const byLabel = new Map(array.map((r) => [tasks[Number(r.ArrayTaskId) - 1], r]));
    expect(byLabel.get('01')).toMatchObject({ JobState: 'COMPLETED', ExitCode: '0:0' });
    expect(byLabel.get('02')).toMatchObject({ JobState: 'COMPLETED', ExitCode: '0:0' });
    expect(byLabel.get('03')).toMatchObject({ JobState: 'FAILED', ExitCode: '65:0' });
    expect(group).toMatchObject({ JobState: 'COMPLETED', ExitCode: '0:0' });

    // Its task log names the file and what is wrong with it, in one line.
    const logDir = path.join(out, 'logs', 'slurm');
    const log03 = readFileSync(path.join(logDir, readdirSync(logDir).find((f) => f.endsWith(`_${byLabel.get('03')!.ArrayJobId}_${byLabel.get('03')!.ArrayTaskId}.log`))!), 'utf8');
    const errorLine = log03.split('\n').find((l) => l.includes('ERROR: sub-03:') && l.includes('sub-03_T1w.nii.gz'));
    expect(errorLine, log03).toBeDefined();
    expect(log03).toContain('micanon slurm: sub-03 exit 65');

    // Two participants anonymized and verified: written, QC PASS, no brain voxel changed.
    for (const subject of ['01', '02']) {
      expect(existsSync(path.join(out, `sub-${subject}`, 'anat', `sub-${subject}_desc-defaced_T1w.nii.gz`))).toBe(true);
      const record = JSON.parse(readFileSync(path.join(out, 'logs', `sub-${subject}_micanon.json`), 'utf8')) as { outputs: Array<{ status: string; written: boolean; brainVoxelsChanged: number }> };
      expect(record.outputs).toEqual([expect.objectContaining({ status: 'ok', written: true, brainVoxelsChanged: 0 })]);
    }
    expect(existsSync(path.join(out, 'sub-03'))).toBe(false);

    // The group level lists all three, the corrupt one with its error line.
    const page = readFileSync(path.join(out, 'group_qc.html'), 'utf8');
    for (const subject of ['01', '02', '03']) expect(page).toContain(`sub-${subject}`);
    expect(page).toContain('Sessions without a result');
    const summary = readFileSync(path.join(out, 'logs', 'group_summary.tsv'), 'utf8').trimEnd().split('\n').map((l) => l.split('\t'));
    expect(summary.map((r) => [r[0], r[4]])).toEqual([['subject', 'status'], ['01', 'ok'], ['02', 'ok'], ['03', 'no result']]);
    expect(summary[3]![7]).toContain('sub-03_T1w.nii.gz');

    // Nothing torn or interleaved: every file whole, every log line one JSON object, no temporaries.
    const files = filesUnder(out);
    expect(files.filter((f) => isMicanonTemp(f))).toEqual([]);
    for (const file of files) {
      const full = path.join(out, file);
      if (file.endsWith('.nii.gz')) expect(() => gunzipSync(readFileSync(full)), file).not.toThrow();
      else if (file.endsWith('.json')) expect(() => JSON.parse(readFileSync(full, 'utf8')), file).not.toThrow();
      else if (file.endsWith('.jsonl')) for (const l of readFileSync(full, 'utf8').trimEnd().split('\n')) expect(() => JSON.parse(l), `${file}: ${l}`).not.toThrow();
      else if (file.endsWith('.tsv')) {
        const widths = new Set(readFileSync(full, 'utf8').trimEnd().split('\n').map((l) => l.split('\t').length));
        expect(widths.size, file).toBe(1);
      }
    }
    // One run log per participant run that got as far as output_dir, named by its participant.
    expect(files.filter((f) => f.endsWith('.jsonl')).map((f) => /_(sub-\d+)_/.exec(f)?.[1]).sort()).toEqual(['sub-01', 'sub-02']);
  }, 25 * 60_000);

  it('a second run of the same command submits only the participant that failed', async () => {
    const { array, tasks, stderr } = await submitAndWait();
    expect(stderr).toContain('2 participant(s) already done');
    expect(tasks).toEqual(['03']);
    expect(array).toHaveLength(1);
    expect(array[0]).toMatchObject({ JobState: 'FAILED', ExitCode: '65:0' });
  }, 25 * 60_000);
});
