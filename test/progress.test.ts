/**
 * Progress off a terminal: a real run (the real CLI, the real engine) with stdout and stderr sent
 * to a file, as SLURM and CI do, writes plain lines only: the progress as a log line per session,
 * no control characters (no live line, no cursor movement, no colours). The dataset is one tiny
 * head-less image, so the engine gives up on it quickly; progress is counted all the same.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../src/paths.js';
import { buildOnce } from './helpers/cli.js';
import { writeTinyNifti } from './helpers/nifti.js';

const roots: string[] = [];

beforeAll(async () => {
  await buildOnce();
});

afterAll(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

function tinyDataset(): string {
  const root = mkdtempSync(path.join(tmpdir(), 'micanon-progress-'));
  roots.push(root);
  const bids = path.join(root, 'bids');
  for (const sub of ['01', '02']) {
    mkdirSync(path.join(bids, `sub-${sub}`, 'anat'), { recursive: true });
    const n = 16;
    const data = new Int16Array(n * n * n).map((_, i) => (i * 7919) % 1000);
    const sform = [[2, 0, 0, -16], [0, 2, 0, -16], [0, 0, 2, -16]];
    writeTinyNifti(path.join(bids, `sub-${sub}`, 'anat', `sub-${sub}_T1w.nii.gz`), { shape: [n, n, n], sform, data });
  }
  writeFileSync(path.join(bids, 'dataset_description.json'), JSON.stringify({ Name: 'tiny', BIDSVersion: '1.10.0' }));
  return root;
}

// Control characters but newline and tab: ESC (colours, cursor moves), CR (redraws), BEL, ...
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f\u009b]/;

describe('progress with output to a file', () => {
  it('writes plain progress lines and no control characters', { timeout: 600_000 }, async () => {
    const root = tinyDataset();
    const logFile = path.join(root, 'run.log');
    const cli = path.join(packageRoot, 'bin', 'micanon.js');
    const run = await execa('sh', ['-c', `"${process.execPath}" "${cli}" "$1" "$2" participant --skip-bids-validation -w "$3" > "$4" 2>&1`, 'sh', path.join(root, 'bids'), path.join(root, 'out'), root, logFile], { reject: false });
    const text = readFileSync(logFile, 'utf8');
    expect(run.exitCode, text).not.toBe(0); // a head-less image is refused somewhere; the run still ends
    expect(text).toMatch(/\[2\/2\] sub-02/);
    expect(text).toMatch(/progress: participants 1\/2 \| images 1\/2 \| image x method 1\/2 \| \S+ elapsed, about \S+ left/);
    expect(text).toMatch(/progress: participants 2\/2 \| images 2\/2 \| image x method 2\/2 \| \S+ elapsed, about 0s left/);
    const bad = text.split('\n').filter((line) => CONTROL.test(line));
    expect(bad, JSON.stringify(bad)).toEqual([]);
  });

  it('--log-format json: one JSON object per line, the progress with its counts', { timeout: 600_000 }, async () => {
    const root = tinyDataset();
    const cli = path.join(packageRoot, 'bin', 'micanon.js');
    const run = await execa(process.execPath, [cli, path.join(root, 'bids'), path.join(root, 'out'), 'participant', '--participant-label', '01', '--skip-bids-validation', '-w', root, '--log-format', 'json'], { reject: false });
    const lines = run.stderr.trim().split('\n');
    const entries = lines.map((line) => JSON.parse(line) as { level: string; message: string; timestamp: string; progress?: Record<string, number | null> });
    for (const entry of entries) expect(Object.keys(entry)).toEqual(expect.arrayContaining(['level', 'message', 'timestamp']));
    const progress = entries.find((e) => e.progress)?.progress;
    expect(progress).toMatchObject({ participantsDone: 1, participantsTotal: 1, imagesDone: 1, imagesTotal: 1, outputsDone: 1, outputsTotal: 1, etaSeconds: 0 });
    expect(run.stdout).toBe('');
  });
});
