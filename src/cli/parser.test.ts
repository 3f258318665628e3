import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MicanonError } from '../errors.js';
import { parseMicapipeArgs } from './micapipe.js';
import { normaliseArgv, parseBidsAppArgs } from './parser.js';

const base = ['/data/bids', '/data/out', 'participant'];

function config(args: string[]) {
  const outcome = parseBidsAppArgs([...base, ...args]);
  if (outcome.kind !== 'run') throw new Error(`expected a run, got ${outcome.kind}`);
  return outcome.config;
}

function failure(run: () => unknown): MicanonError {
  try {
    run();
  } catch (err) {
    if (err instanceof MicanonError) return err;
    throw err;
  }
  throw new Error('expected a MicanonError');
}

describe('BIDS-App parser', () => {
  it('has the documented defaults', () => {
    const c = config([]);
    expect(c.methods).toEqual(['deface']);
    expect(c.dilate).toBe(6);
    expect(c.outputLayout).toBe('derivatives');
    expect(c.cleanup).toBe(true);
    expect(c.participantLabels).toBeNull();
    expect(c.nthreads).toBeGreaterThanOrEqual(1);
  });

  it.each([
    ['--participant_label', 'sub-01', '02'],
    ['--participant-label', '01', 'sub-02'],
  ])('accepts %s with or without sub-', (flag, a, b) => {
    expect(config([flag, a, b]).participantLabels).toEqual(['01', '02']);
  });

  it('reads labels from a file, one per line', () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'labels-')), 'subjects.txt');
    writeFileSync(file, 'sub-01\n# comment\n02\n\n');
    expect(config(['--participant-label', file]).participantLabels).toEqual(['01', '02']);
  });

  it('takes exclusions and a filter file (fMRIPrep spellings and ours)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'filter-'));
    const file = path.join(dir, 'filter.json');
    writeFileSync(file, JSON.stringify({ t1w: { acquisition: 'mprage' }, flair: { reconstruction: null } }));
    const c = config(['--exclude-participant-label', 'sub-03', '--exclude_session_label', 'ses-b', 'c', '--bids-filter-file', file]);
    expect(c.excludeParticipantLabels).toEqual(['03']);
    expect(c.excludeSessionLabels).toEqual(['b', 'c']);
    expect(c.bidsFilters?.file).toBe(file);
    expect(c.bidsFilters?.kinds.flair).toEqual({ entities: { reconstruction: null }, regex: false });
    expect(config([]).excludeParticipantLabels).toEqual([]);
    expect(config([]).bidsFilters).toBeNull();
    writeFileSync(file, '{"t1w": {"acq": "mprage"}}');
    const error = failure(() => config(['--bids-filter-file', file]));
    expect(error.exitCode).toBe(64);
    expect(error.message).toContain(`--bids-filter-file ${file}: "t1w" filters on unknown entity "acq"`);
    expect(failure(() => config(['--exclude-session-label', 'a_b'])).exitCode).toBe(64);
  });

  it.each(['--skip_bids_validation', '--skip-bids-validation', '--skip_bids_validator'])('accepts %s', (flag) => {
    expect(config([flag]).skipBidsValidation).toBe(true);
  });

  it('maps --all, --method, --no-cleanup, --nthreads aliases, -w', () => {
    expect(config(['--all']).methods).toEqual(['deface', 'reface', 'warpface']);
    expect(config(['--method', 'reface', 'warpface']).methods).toEqual(['reface', 'warpface']);
    expect(config(['--no-cleanup']).cleanup).toBe(false);
    expect(config(['--n_cpus', '3']).nthreads).toBe(3);
    expect(config(['--nthreads=2']).nthreads).toBe(2);
    expect(config(['-w', '/scratch/w']).workDir).toBe('/scratch/w');
    expect(config(['--session_label', 'ses-pre']).sessionLabels).toEqual(['pre']);
  });

  it('rejects bad values with exit code 64 and a message naming the option', () => {
    expect(failure(() => config(['--method', 'blur'])).exitCode).toBe(64);
    expect(failure(() => config(['--nthreads', '0'])).message).toMatch(/nthreads/);
    expect(failure(() => config(['--dilate', 'lots'])).message).toMatch(/--dilate/);
    expect(failure(() => config(['--participant-label', 'a_b'])).exitCode).toBe(64);
    expect(failure(() => config(['--all', '--method', 'deface'])).exitCode).toBe(64);
    expect(failure(() => config(['--bogus'])).exitCode).toBe(64);
    expect(failure(() => config(['--output-layout', 'raw', '--all'])).message).toMatch(/exactly one --method/);
  });

  it('gives 17 for an unknown analysis level', () => {
    expect(failure(() => parseBidsAppArgs(['/a', '/b', 'subject'])).exitCode).toBe(17);
  });

  it('refuses an output folder inside the input dataset, except under derivatives/', () => {
    expect(failure(() => parseBidsAppArgs(['/data/bids', '/data/bids/anon', 'participant'])).exitCode).toBe(64);
    const ok = parseBidsAppArgs(['/data/bids', '/data/bids/derivatives/micanon', 'participant']);
    expect(ok.kind).toBe('run');
  });

  it('puts QC in output_dir by default, and beside it (<output_dir>-qc) for the raw layout', () => {
    expect(config([]).qcDir).toBe('/data/out');
    expect(config(['--output-layout', 'micapipe']).qcDir).toBe('/data/out');
    expect(config(['--output-layout', 'raw']).qcDir).toBe('/data/out-qc');
    // The group level derives the same folder from the same options, so it finds the records.
    const group = parseBidsAppArgs(['/data/bids', '/data/out', 'group', '--output-layout', 'raw']);
    expect(group.kind === 'run' && group.config.qcDir).toBe('/data/out-qc');
    const micapipe = parseMicapipeArgs(['-sub', '01', '-out', '/o', '-bids', '/b', '-deface']);
    expect(micapipe.kind === 'run' && micapipe.config.qcDir).toBe('/o');
  });

  it('takes --qc-dir and its alias --qc_dir, resolved to an absolute path', () => {
    expect(config(['--qc-dir', '/data/qc']).qcDir).toBe('/data/qc');
    expect(config(['--qc_dir', '/data/qc']).qcDir).toBe('/data/qc');
    expect(config(['--qc_dir=/data/qc', '--output-layout', 'raw']).qcDir).toBe('/data/qc');
    expect(config(['--qc-dir', 'qc']).qcDir).toBe(path.resolve('qc'));
    // Outside the raw layout QC may sit in output_dir (.bidsignore hides it from validators).
    expect(config(['--qc-dir', '/data/out/qc']).qcDir).toBe('/data/out/qc');
  });

  it('refuses a QC folder inside the input dataset', () => {
    const inside = failure(() => config(['--qc-dir', '/data/bids/qc']));
    expect(inside.exitCode).toBe(64);
    expect(inside.message).toMatch(/--qc-dir may not be inside bids_dir/);
    expect(failure(() => config(['--qc-dir', '/data/bids'])).exitCode).toBe(64);
    // Under derivatives/, as for output_dir: the raw default beside a derivatives output is fine.
    const ok = parseBidsAppArgs(['/data/bids', '/data/bids/derivatives/copy', 'participant', '--output-layout', 'raw']);
    expect(ok.kind === 'run' && ok.config.qcDir).toBe('/data/bids/derivatives/copy-qc');
  });

  it('refuses, with the raw layout, a QC folder in the shareable copy', () => {
    for (const qcDir of ['/data/out', '/data/out/qc', '/data/out/sub-01/figures']) {
      const error = failure(() => config(['--output-layout', 'raw', '--qc-dir', qcDir]));
      expect(error.exitCode, qcDir).toBe(64);
      expect(error.message).toMatch(/--qc-dir may not be inside output_dir with --output-layout raw: .*QC figures show faces/);
      expect(error.message).not.toMatch(/\n/);
    }
    // A sibling whose name merely starts like output_dir is outside it.
    expect(config(['--output-layout', 'raw', '--qc-dir', '/data/out2']).qcDir).toBe('/data/out2');
  });

  it('treats -v as --version, not verbosity, and answers --bids-exec-spec', () => {
    expect(parseBidsAppArgs(['--bids-exec-spec'])).toEqual({ kind: 'spec' });
    expect(normaliseArgv(['--participant_label=01'])).toEqual(['--participant-label=01']);
  });
});

describe('micapipe_anonymize parser', () => {
  it('maps micapipe flags to the same configuration', () => {
    const outcome = parseMicapipeArgs(['-sub', 'sub-01', '-ses', '02', '-out', '/o', '-bids', '/b', '-all', '-dilate', '8', '-ears', '-robust', '-nocleanup', '-threads', '4', '-T1', '/b/t1.nii.gz']);
    expect(outcome.kind).toBe('run');
    if (outcome.kind !== 'run') return;
    const c = outcome.config;
    expect(c.participantLabels).toEqual(['01']);
    expect(c.sessionLabels).toEqual(['02']);
    expect(c.methods).toEqual(['deface', 'reface', 'warpface']);
    expect([c.dilate, c.removeEars, c.robust, c.cleanup, c.nthreads, c.t1w, c.outputLayout]).toEqual([8, true, true, false, 4, '/b/t1.nii.gz', 'micapipe']);
    const plain = parseMicapipeArgs(['-sub', '01', '-out', '/o', '-bids', '/b', '-deface']);
    expect(plain.kind === 'run' && plain.config.removeEars).toBe(false);
  });

  it('defaults to every session, not micapipe\'s "ses-pre"', () => {
    const outcome = parseMicapipeArgs(['-sub', '01', '-out', '/o', '-bids', '/b', '-warpface']);
    expect(outcome.kind === 'run' && outcome.config.sessionLabels).toBeNull();
    expect(outcome.kind === 'run' && outcome.config.methods).toEqual(['warpface']);
  });

  it('accepts -refacePro as warpface and -h as help', () => {
    const outcome = parseMicapipeArgs(['-sub', '01', '-out', '/o', '-bids', '/b', '-refacePro']);
    expect(outcome.kind === 'run' && outcome.config.methods).toEqual(['warpface']);
    expect(parseMicapipeArgs(['-h'])).toEqual({ kind: 'help' });
  });

  it('fails with 64 on missing arguments, a missing method or an unknown flag', () => {
    expect(failure(() => parseMicapipeArgs(['-sub', '01', '-out', '/o', '-all'])).message).toMatch(/-bids/);
    expect(failure(() => parseMicapipeArgs(['-sub', '01', '-out', '/o', '-bids', '/b'])).message).toMatch(/method/);
    expect(failure(() => parseMicapipeArgs(['-sub', '01', '-out', '/o', '-bids', '/b', '-all', '-x'])).exitCode).toBe(64);
  });
});
