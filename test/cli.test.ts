import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { buildOnce, runCli } from './helpers/cli.js';
import { writeTinyNifti } from './helpers/nifti.js';

const pkg = JSON.parse(readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };

beforeAll(async () => {
  await buildOnce();
});

describe('micanon command line', () => {
  it('prints its version for -v and --version', async () => {
    for (const flag of ['-v', '--version']) {
      const run = await runCli('micanon', [flag]);
      expect(run.exitCode).toBe(0);
      expect(run.stdout.trim()).toBe(pkg.version);
    }
  });

  it('prints help on stdout with the BIDS-App usage', async () => {
    const run = await runCli('micanon', ['--help']);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toMatch(/Usage: micanon \[options\] <bids_dir> <output_dir> <analysis_level>/);
  });

  it('answers an unknown option with 64 and one line holding the usage', async () => {
    const run = await runCli('micanon', ['/a', '/b', 'participant', '--bogus']);
    expect(run.exitCode).toBe(64);
    const lines = run.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/unknown option '--bogus'.*usage: micanon bids_dir output_dir/);
  });

  it('answers an unknown analysis level with 17', async () => {
    const run = await runCli('micanon', ['/a', '/b', 'subjects']);
    expect(run.exitCode).toBe(17);
  });

  it('answers a missing dataset with 66, naming it', async () => {
    const out = mkdtempSync(path.join(tmpdir(), 'micanon-out-'));
    const run = await runCli('micanon', ['/nonexistent/bids', out, 'participant']);
    expect(run.exitCode).toBe(66);
    expect(run.stderr).toContain('/nonexistent/bids');
  });

  it('stops with 16 and the BIDS validator\'s own messages when the input breaks BIDS, creating nothing', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'micanon-invalid-'));
    const bids = path.join(root, 'bids');
    mkdirSync(path.join(bids, 'sub-01', 'anat'), { recursive: true });
    writeFileSync(path.join(bids, 'dataset_description.json'), JSON.stringify({ Name: 'tiny', BIDSVersion: '1.10.0' }));
    const tiny = { shape: [8, 8, 8] as [number, number, number], sform: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], data: new Int16Array(512).fill(100) };
    writeTinyNifti(path.join(bids, 'sub-01', 'anat', 'sub-01_T1w.nii.gz'), tiny);
    // desc- has no place in a raw name, and the entities are out of order.
    writeTinyNifti(path.join(bids, 'sub-01', 'anat', 'sub-01_desc-x_acq-y_T2w.nii.gz'), tiny);
    const out = path.join(root, 'out');
    const run = await runCli('micanon', [bids, out, 'participant', '-w', path.join(root, 'work')]);
    expect(run.exitCode, run.all).toBe(16);
    expect(run.stderr).toMatch(/ERROR: BIDS: ENTITY_NOT_IN_RULE \/sub-01\/anat\/sub-01_desc-x_acq-y_T2w\.nii\.gz: .*desc not in rule/);
    expect(run.stderr).toMatch(/bids-validator 3\.0\.2 \(schema [^)]+\) on the input .*: [1-9]\d* error\(s\).*nothing was done/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(path.join(root, 'work'))).toEqual([]);
    // An excluded participant's errors do not stop the others: sub-02 is valid, and with sub-01
    // excluded the validator passes and the run goes on, here as far as the engine, which
    // refuses the folder given as atlas.
    mkdirSync(path.join(bids, 'sub-02', 'anat'), { recursive: true });
    writeTinyNifti(path.join(bids, 'sub-02', 'anat', 'sub-02_T1w.nii.gz'), tiny);
    const excluded = await runCli('micanon', [bids, out, 'participant', '--exclude-participant-label', '01', '--atlas', root]);
    expect(excluded.stderr).toMatch(/bids-validator 3\.0\.2 \(schema [^)]+\) on the input .* \(sub-02\): 0 error\(s\)/);
    expect(excluded.exitCode, excluded.all).toBe(65);
    // --skip-bids-validation lets the run go on, here as far as the engine, which refuses the folder given as atlas.
    const skipped = await runCli('micanon', [bids, out, 'participant', '--skip-bids-validation', '--atlas', root]);
    expect(skipped.stderr).toContain('BIDS validation skipped (--skip-bids-validation)');
    expect(skipped.exitCode, skipped.all).toBe(65);
  });

  it('prints the Boutiques descriptor for --bids-exec-spec', async () => {
    const run = await runCli('micanon', ['--bids-exec-spec']);
    expect(run.exitCode).toBe(0);
    expect(JSON.parse(run.stdout).name).toBe('micanon');
  });
});

describe('selection on the command line (no engine: the run ends before it starts)', () => {
  const roots: string[] = [];
  afterAll(() => {
    for (const root of roots) rmSync(root, { recursive: true, force: true });
  });

  /** Three participants, two sessions, two T1w acquisitions; discovery reads names only. */
  function cohort(): string {
    const root = mkdtempSync(path.join(tmpdir(), 'micanon-select-'));
    roots.push(root);
    const bids = path.join(root, 'bids');
    mkdirSync(bids);
    writeFileSync(path.join(bids, 'dataset_description.json'), JSON.stringify({ Name: 'selection', BIDSVersion: '1.10.0' }));
    for (const sub of ['01', '02', '03']) {
      for (const ses of ['pre', 'post']) {
        const anat = path.join(bids, `sub-${sub}`, `ses-${ses}`, 'anat');
        mkdirSync(anat, { recursive: true });
        for (const acq of ['mprage', 'fast']) writeFileSync(path.join(anat, `sub-${sub}_ses-${ses}_acq-${acq}_T1w.nii.gz`), 'nifti');
      }
    }
    return bids;
  }
  const run = (bids: string, args: string[]) =>
    runCli('micanon', [bids, path.join(path.dirname(bids), 'out'), 'participant', '--skip-bids-validation', ...args]);

  it('exits 18 with one clear line when the exclusion empties the selection, and creates nothing', async () => {
    const bids = cohort();
    const labels = path.join(path.dirname(bids), 'labels.txt');
    writeFileSync(labels, 'sub-01\nsub-02\n03\n');
    const result = await run(bids, ['--exclude-participant-label', labels]);
    expect(result.exitCode).toBe(18);
    const lines = result.stderr.trim().split('\n');
    expect(lines.at(-1)).toMatch(/no participant left to process: --exclude-participant-label sub-01, sub-02, sub-03 removes every participant of .*\(loosen --exclude-participant-label/);
    expect(existsSync(path.join(path.dirname(bids), 'out'))).toBe(false);
    const sessions = await run(bids, ['--session-label', 'pre', '--exclude_session_label', 'ses-pre']);
    expect(sessions.exitCode).toBe(18);
    expect(sessions.stderr).toMatch(/no session left to process/);
  });

  it('exits 18 when the filter file leaves no image, 64 when it is malformed, 66 when it is missing', async () => {
    const bids = cohort();
    const filter = (json: string) => {
      const file = path.join(path.dirname(bids), `filter-${Math.random().toString(36).slice(2)}.json`);
      writeFileSync(file, json);
      return file;
    };
    const none = filter('{"t1w": {"acquisition": ["flash", "spgr"]}}');
    const empty = await run(bids, ['--bids-filter-file', none]);
    expect(empty.exitCode).toBe(18);
    expect(empty.stderr).toContain(`--bids-filter-file ${none} leaves out every anatomical image`);
    const malformed = filter('{"T1w": {"acquisition": "mprage"}}');
    const bad = await run(bids, ['--bids-filter-file', malformed]);
    expect(bad.exitCode).toBe(64);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toContain(`--bids-filter-file ${malformed}: unknown image kind "T1w"`);
    const missing = await run(bids, ['--bids_filter_file', '/nonexistent/filter.json']);
    expect(missing.exitCode).toBe(66);
    expect(missing.stderr).toContain('/nonexistent/filter.json');
  });
});

describe('micapipe_anonymize command line', () => {
  it('prints its help for -h and exits 0', async () => {
    const run = await runCli('micapipe_anonymize', ['-h']);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toContain('-warpface');
  });

  it('fails with 64 when the method is missing', async () => {
    const run = await runCli('micapipe_anonymize', ['-sub', '01', '-out', '/tmp/x', '-bids', '/tmp/y']);
    expect(run.exitCode).toBe(64);
    expect(run.stderr).toMatch(/method is missing/);
  });
});

describe('a failing engine call', () => {
  async function enginePids(): Promise<string[]> {
    const found = await execa('pgrep', ['-f', 'pythonia/interface.py'], { reject: false });
    return found.stdout.split('\n').filter(Boolean).sort();
  }

  it('ends the run with one clear line, exit 65, and no Python left running', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'micanon-badatlas-'));
    const bids = path.join(root, 'bids');
    mkdirSync(path.join(bids, 'sub-01', 'anat'), { recursive: true });
    writeFileSync(path.join(bids, 'dataset_description.json'), JSON.stringify({ Name: 'tiny', BIDSVersion: '1.10.0' }));
    writeTinyNifti(path.join(bids, 'sub-01', 'anat', 'sub-01_T1w.nii.gz'), {
      shape: [8, 8, 8],
      sform: [
        [1, 0, 0, 0],
        [0, 1, 0, 0],
        [0, 0, 1, 0],
      ],
      data: new Int16Array(512).fill(100),
    });
    const emptyAtlas = path.join(root, 'atlas');
    mkdirSync(emptyAtlas);
    const before = await enginePids();
    const run = await runCli('micanon', [bids, path.join(root, 'out'), 'participant', '--atlas', emptyAtlas]);
    expect(run.exitCode, run.all).toBe(65);
    const errors = run.stderr.split('\n').filter((line) => line.includes('ERROR'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain(emptyAtlas);
    expect(errors[0]).not.toContain('Traceback');
    expect(await enginePids()).toEqual(before);
  });
});
