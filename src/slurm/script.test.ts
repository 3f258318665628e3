import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { arrayScript, groupScript, listText, shellQuote, type ScriptPlan } from './script.js';

const plan = (over: Partial<ScriptPlan> = {}): ScriptPlan => ({
  runner: { container: null, node: '/usr/bin/node', cli: '/opt/micanon/bin/micanon.js' },
  bidsDir: '/data/bids',
  outputDir: '/data/out',
  writable: [],
  readable: [],
  listFile: '/data/out/logs/slurm/micanon_X_tasks.txt',
  tasks: 40,
  logDir: '/data/out/logs/slurm',
  stem: 'micanon_X',
  arrayLimit: null,
  partition: null,
  time: '02:00:00',
  mem: '4G',
  cpusPerTask: 2,
  passThrough: [],
  sessionLabels: null,
  ...over,
});

describe('the sbatch scripts', () => {
  it('an array of one task per list line, limited when asked, with the resources given', () => {
    const text = arrayScript(plan({ arrayLimit: 8, partition: 'cpu', passThrough: ['--method', 'deface'] }));
    expect(text).toMatch(/^#!\/bin\/bash\n/);
    expect(text).toContain('#SBATCH --array=1-40%8\n');
    expect(text).toContain('#SBATCH --partition=cpu\n#SBATCH --output=/data/out/logs/slurm/micanon_X_%A_%a.log\n');
    expect(text).toContain(
      '/usr/bin/node /opt/micanon/bin/micanon.js /data/bids /data/out participant --participant-label "$subject"${session:+ --session-label "$session"} -w "$scratch" --nthreads "$SLURM_CPUS_PER_TASK" --method deface\n',
    );
    expect(text).toMatch(/exit "\$status"\n$/);
    expect(arrayScript(plan())).toContain('#SBATCH --array=1-40\n');
    expect(arrayScript(plan({ passThrough: ['--nthreads', '1'] }))).not.toContain('SLURM_CPUS_PER_TASK"');
  });

  it('the container: apptainer with every folder it touches bound at its own path', () => {
    const text = arrayScript(plan({ runner: { container: '/img/micanon 0.1.sif', node: 'n', cli: 'c' }, writable: ['/data/qc'], readable: ['/atlas'] }));
    expect(text).toContain(
      `apptainer run --cleanenv --containall --bind /data/bids:/data/bids:ro --bind /atlas:/atlas:ro --bind /data/out --bind /data/qc --bind "$scratch" '/img/micanon 0.1.sif' /data/bids /data/out participant`,
    );
    expect(groupScript(plan({ runner: { container: '/img/m.sif', node: 'n', cli: 'c' } }))).toContain('/img/m.sif /data/bids /data/out group\n');
  });

  it('runs in bash: line N of the list is task N, and the task ends with micanon\'s exit code', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'micanon-script-'));
    const list = path.join(dir, 'tasks.txt');
    writeFileSync(list, listText([{ subject: '01', session: null }, { subject: '02', session: 'b' }]));
    // A stand-in for node that prints its arguments and exits 65.
    const node = path.join(dir, 'node');
    writeFileSync(node, '#!/bin/bash\necho "ARGS $*"\nexit 65\n', { mode: 0o755 });
    const script = path.join(dir, 'job.sh');
    writeFileSync(script, arrayScript(plan({ runner: { container: null, node, cli: 'cli.js' }, listFile: list, logDir: dir })));
    let output = '';
    let status = 0;
    try {
      execFileSync('bash', [script], { env: { ...process.env, SLURM_ARRAY_TASK_ID: '2', SLURM_ARRAY_JOB_ID: '9', SLURM_CPUS_PER_TASK: '3', TMPDIR: dir } });
    } catch (err) {
      output = String((err as { stdout: Buffer }).stdout);
      status = (err as { status: number }).status;
    }
    expect(status).toBe(65);
    expect(output).toContain('micanon slurm: task 2 of job 9: sub-02 ses-b on');
    expect(output).toContain(`ARGS cli.js /data/bids /data/out participant --participant-label 02 --session-label b -w ${dir}/micanon-9_2 --nthreads 3`);
    expect(output).toContain('micanon slurm: sub-02 ses-b exit 65');
  });

  it('quotes what bash would split or expand', () => {
    expect(shellQuote('/plain/path-1.sif')).toBe('/plain/path-1.sif');
    expect(shellQuote("it's $HOME")).toBe(`'it'\\''s $HOME'`);
  });
});
