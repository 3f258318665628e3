import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { useTempTrees } from '../bids/tree.fixture.js';
import { parseSlurmArgs } from './slurm.js';

const tree = useTempTrees();

describe('micanon slurm command line', () => {
  it('takes its own options anywhere and passes every other word to the participant run', async () => {
    const bids = await tree();
    const parsed = parseSlurmArgs([bids, 'out', '--method', 'deface', 'reface', '--array-limit=20', '--qc-dir', 'qc', '--submit', '--n_cpus', '4', '--time', '1-00:00:00'])!;
    expect(parsed.slurm).toMatchObject({ arrayLimit: 20, submit: true, time: '1-00:00:00', cpusPerTask: 2, mem: '4G', container: null });
    expect(parsed.passThrough).toEqual(['--method', 'deface', 'reface', '--qc-dir', path.resolve('qc'), '--nthreads', '4']);
    expect(parsed.config).toMatchObject({ outputDir: path.resolve('out'), methods: ['deface', 'reface'], qcDir: path.resolve('qc'), participantLabels: null });
  });

  it('keeps the participant selection for itself: it chooses the tasks, each task passes its own label', async () => {
    const bids = await tree();
    const parsed = parseSlurmArgs([bids, 'out', '--participant-label', 'sub-01', '02', '--per-session', '--skip-bids-validation'])!;
    expect(parsed.config.participantLabels).toEqual(['01', '02']);
    expect(parsed.slurm.perSession).toBe(true);
    expect(parsed.passThrough).toEqual(['--skip-bids-validation']);
  });

  it('refuses what the script sets itself, contradictions, and participant options the participant parser refuses', async () => {
    const bids = await tree();
    expect(() => parseSlurmArgs([bids, 'out', '-w', '/scratch'])).toThrow(/set by micanon slurm itself/);
    expect(() => parseSlurmArgs([bids, 'out', 'participant'])).toThrow(/leave out "participant"/);
    expect(() => parseSlurmArgs([bids, 'out', '--native', '--container', 'x.sif'])).toThrow(/exclude each other/);
    expect(() => parseSlurmArgs([bids, 'out', '--array-limit', '0'])).toThrow(/at least 1/);
    expect(() => parseSlurmArgs([bids, 'out', '--mem', 'lots'])).toThrow(/--mem/);
    expect(() => parseSlurmArgs([bids, 'out', '--methd', 'deface'])).toThrow(/unknown option '--methd'/);
    expect(() => parseSlurmArgs(['--submit', bids, 'out'])).toThrow(/bids_dir and output_dir first/);
    try {
      parseSlurmArgs([bids, 'out', '--time']);
    } catch (err) {
      expect((err as { exitCode: number }).exitCode).toBe(64);
    }
  });
});
