/**
 * `micanon qc` through the compiled CLI, the real bridge and the real engine, on the built-in
 * example: its T1w against the pipeline's own deface of it (PASS), against a copy with brain
 * voxels altered (FAILED, one line), and a missing file (the catalogue's code, one line).
 */
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildOnce, runCli } from './helpers/cli.js';
import { filesUnder } from './helpers/files.js';
import { waitUntil } from './helpers/processes.js';

const root = mkdtempSync(path.join(tmpdir(), 'micanon-qc-command-'));
const original = path.join(root, 'bids', 'sub-example', 'anat', 'sub-example_T1w.nii.gz');
const defaced = path.join(root, 'derivatives', 'micanon', 'sub-example', 'anat', 'sub-example_desc-defaced_T1w.nii.gz');

/**
 * A copy of an int16 NIfTI-1 .nii.gz with `add` added to a 5x5x5 block of voxels at the centre of
 * its grid (in the example head: deep in the brain). Returns the number of voxels altered.
 */
function alterCentre(from: string, to: string, add: number): number {
  const file = gunzipSync(readFileSync(from));
  const dims = [0, 1, 2].map((i) => file.readInt16LE(42 + 2 * i)) as [number, number, number];
  expect(file.readInt16LE(70)).toBe(4); // int16
  const offset = file.readFloatLE(108);
  let altered = 0;
  for (let k = -2; k <= 2; k++) {
    for (let j = -2; j <= 2; j++) {
      for (let i = -2; i <= 2; i++) {
        const [x, y, z] = [dims[0] / 2 + i, dims[1] / 2 + j, dims[2] / 2 + k].map(Math.floor) as [number, number, number];
        const at = offset + 2 * (x + dims[0] * (y + dims[1] * z));
        file.writeInt16LE(file.readInt16LE(at) + add, at);
        altered += 1;
      }
    }
  }
  writeFileSync(to, gzipSync(file));
  return altered;
}

beforeAll(async () => {
  await buildOnce();
  // The pipeline's own deface of the example T1w: the file another tool would have written.
  const example = await runCli('micanon', ['example', root, '--nthreads', '2']);
  expect(example.exitCode, example.all).toBe(0);
  expect(existsSync(defaced)).toBe(true);
});

describe('micanon qc', () => {
  it('passes the pipeline deface against its original and writes the pipeline-style report with --out', async () => {
    const out = path.join(root, 'qc-pass');
    const run = await runCli('micanon', ['qc', defaced, '--original', original, '--out', out]);
    expect(run.exitCode, run.all).toBe(0);
    expect(run.stdout).toMatch(/^ {2}brain +PASS +0 of [\d,]+ brain-guard voxels differ/m);
    expect(run.stdout).toMatch(/^ {2}header +PASS/m);
    expect(run.stdout).toMatch(/^ {2}face +PASS/m);
    expect(run.stdout).toMatch(/^PASS: every check that ran passed$/m);
    expect(existsSync(path.join(out, 'sub-example.html'))).toBe(true);
    const record = JSON.parse(readFileSync(path.join(out, 'logs', 'qc', 'sub-example_T1w_deface.json'), 'utf8'));
    expect(record.status).toBe('PASS');
    for (const figure of Object.values<string>(record.renders.output)) expect(existsSync(path.join(out, figure))).toBe(true);
  });

  it('fails a copy with altered brain voxels: non-zero exit, the count in one line, nothing left behind', async () => {
    const altered = path.join(root, 'altered_T1w.nii.gz');
    const count = alterCentre(defaced, altered, 300);
    const scratch = mkdtempSync(path.join(tmpdir(), 'micanon-qc-tmp-'));
    const run = await runCli('micanon', ['qc', altered, '--original', original, '--json'], { env: { ...process.env, TMPDIR: scratch } });
    expect(run.exitCode, run.all).toBe(1);
    const record = JSON.parse(run.stdout);
    expect(record.status).toBe('FAILED');
    expect(record.checks.brain_voxels_changed.value).toBe(count);
    const errors = run.stderr.split('\n').filter((line) => line.includes('ERROR'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain(`${altered}: QC FAILED: ${count} brain voxels changed`);
    // Without --out, the figures and Python's work went to a temporary folder, now removed.
    expect(readdirSync(scratch)).toEqual([]);
  });

  it('draws its figures in a temporary folder and moves them in with the record: killed mid-check, --out holds no figure and the next check removes that folder', async () => {
    const out = path.join(root, 'qc-killed');
    const scratch = mkdtempSync(path.join(tmpdir(), 'micanon-qc-tmp-'));
    const run = runCli('micanon', ['qc', defaced, '--original', original, '--out', out], { env: { ...process.env, TMPDIR: scratch } });
    // The first figure drawn is a render of the original's face.
    const drawn = await waitUntil(() => filesUnder(scratch).some((f) => f.endsWith('.png')), 120_000, 20);
    run.kill('SIGKILL');
    await run;
    expect(drawn, 'no figure was drawn in the temporary folder').toBe(true);
    expect(filesUnder(out).filter((f) => f.endsWith('.png'))).toEqual([]);
    // The killed check's temporary folder holds renders of the face: the next check removes it
    // (the engine died with the check: it runs with a parent-death signal).
    expect(readdirSync(scratch)).toHaveLength(1);
    const next = await runCli('micanon', ['qc', path.join(root, 'nothere.nii.gz')], { env: { ...process.env, TMPDIR: scratch } });
    expect(next.exitCode).toBe(66);
    expect(readdirSync(scratch)).toEqual([]);
  });

  it('names a missing file in one line with exit 66', async () => {
    const missing = path.join(root, 'nothere_T1w.nii.gz');
    copyFileSync(defaced, path.join(root, 'present_T1w.nii.gz'));
    for (const args of [[missing], [path.join(root, 'present_T1w.nii.gz'), '--original', missing]]) {
      const run = await runCli('micanon', ['qc', ...args]);
      expect(run.exitCode).toBe(66);
      const lines = run.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`${missing}: no such file`);
      expect(run.stdout).toBe('');
    }
  });

  it('answers a bad method with 64 and the qc usage', async () => {
    const run = await runCli('micanon', ['qc', defaced, '--method', 'blur']);
    expect(run.exitCode).toBe(64);
    expect(run.stderr).toMatch(/usage: micanon qc IMAGE/);
  });
});
