import { mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isMicanonTemp } from '../bids/atomic.js';
import { BidsIgnore } from '../bids/ignore.js';
import { scrubParticipantsTsv } from '../bids/sidecar.js';
import { DESCRIPTION, useTempTrees } from '../bids/tree.fixture.js';
import { runConfigSchema } from '../config.js';
import { bidsIgnoreText, prepareOutputDataset, qcLocationNote, summariseOutputs } from './outputs.js';

const out = path.resolve('/data/out');
const tree = useTempTrees();

describe('.bidsignore of output_dir', () => {
  it('is unchanged when QC is output_dir itself (derivatives and micapipe default)', () => {
    expect(bidsIgnoreText({ outputDir: out, qcDir: out })).toBe('logs/\nsub-*/figures\n*.html\n');
  });

  it('lists only logs/ when QC is elsewhere, so nothing hides a stray page or figure in the copy', () => {
    const text = bidsIgnoreText({ outputDir: out, qcDir: `${out}-qc` });
    expect(text).toBe('logs/\n');
    const rules = new BidsIgnore(text.split('\n'));
    expect(rules.ignores('/logs/sub-01_micanon.json')).toBe(true);
    expect(rules.ignores('/sub-01.html')).toBe(false);
    expect(rules.ignores('/sub-01/figures/a.png')).toBe(false);
  });

  it('hides a QC folder below output_dir as a whole, anchored at the root', () => {
    const rules = new BidsIgnore(bidsIgnoreText({ outputDir: out, qcDir: path.join(out, 'qc') }).split('\n'));
    expect(rules.ignores('/qc/sub-01.html')).toBe(true);
    expect(rules.ignores('/qc/sub-01/figures/a.png')).toBe(true);
    expect(rules.ignores('/qc/logs/qc/sub-01_T1w_deface.json')).toBe(true);
    expect(rules.ignores('/sub-01/anat/qc/x.nii.gz')).toBe(false);
    expect(rules.ignores('/sub-01/anat/sub-01_T1w.nii.gz')).toBe(false);
  });
});

describe('the log line saying where QC went', () => {
  it('says why for the raw layout, names --qc-dir otherwise, and is silent when QC is output_dir', () => {
    expect(qcLocationNote({ outputDir: out, qcDir: `${out}-qc`, outputLayout: 'raw' })).toBe(
      `QC records, figures and pages: ${out}-qc (QC figures show faces: kept out of the shareable copy)`,
    );
    expect(qcLocationNote({ outputDir: out, qcDir: '/data/qc', outputLayout: 'derivatives' })).toMatch(/\/data\/qc \(--qc-dir\)$/);
    expect(qcLocationNote({ outputDir: out, qcDir: out, outputLayout: 'derivatives' })).toBeNull();
  });
});

describe('participant jobs sharing one output_dir (a SLURM array)', () => {
  const participants = `participant_id\tage\n${Array.from({ length: 4000 }, (_, i) => `sub-${i}\t${20 + (i % 80)}`).join('\n')}\n`;

  /** Read `file` over and over while `work` runs; every read that is not ENOENT, as read. */
  async function readWhile(file: string, work: Promise<unknown>): Promise<string[]> {
    const seen: string[] = [];
    let done = false;
    void work.finally(() => (done = true));
    while (!done) {
      const text = await readFile(file, 'utf8').catch(() => null);
      if (text !== null) seen.push(text);
      await new Promise((r) => setImmediate(r));
    }
    await work;
    return seen;
  }

  it('raw layout: six jobs copying the dataset at once never show a torn file, and leave no temporary', async () => {
    const root = await tree(
      {
        'bids/dataset_description.json': DESCRIPTION,
        'bids/participants.tsv': participants,
        'bids/sub-01/anat/sub-01_T1w.json': { PatientName: 'x' },
        'bids/sub-01/func/sub-01_task-rest_bold.json': { RepetitionTime: 2, InstitutionName: 'x' },
        'bids/sub-01/func/sub-01_task-rest_bold.nii.gz': 'x'.repeat(1 << 20),
      },
      { bare: true },
    );
    const bids = path.join(root, 'bids');
    const out = path.join(root, 'copy');
    const config = runConfigSchema.parse({ bidsDir: bids, outputDir: out, analysisLevel: 'participant', outputLayout: 'raw', atlas: bids });
    await mkdir(out, { recursive: true });
    const jobs = Promise.all(Array.from({ length: 6 }, () => prepareOutputDataset(config)));
    const expected = scrubParticipantsTsv(participants).text;
    const reads = await readWhile(path.join(out, 'participants.tsv'), jobs);
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.filter((r) => r !== expected)).toEqual([]);
    const files = (await readdir(out, { recursive: true })).map(String);
    expect(files.filter((f) => isMicanonTemp(f))).toEqual([]);
    expect((await readFile(path.join(out, 'sub-01/func/sub-01_task-rest_bold.nii.gz'))).length).toBe(1 << 20);
    expect(JSON.parse(await readFile(path.join(out, 'sub-01/func/sub-01_task-rest_bold.json'), 'utf8'))).toEqual({ RepetitionTime: 2 });
    expect(files).not.toContain(path.join('sub-01', 'anat', 'sub-01_T1w.json'));
  });

  it("raw layout: a participant's run copies the dataset's own files and its own folder, not the other participants'", async () => {
    const root = await tree(
      {
        'bids/dataset_description.json': DESCRIPTION,
        'bids/participants.tsv': participants,
        'bids/task-rest_bold.json': { RepetitionTime: 2 },
        'bids/sub-01/func/sub-01_task-rest_bold.nii.gz': 'one',
        'bids/sub-02/func/sub-02_task-rest_bold.nii.gz': 'two',
        'bids/sub-03/dwi/sub-03_dwi.nii.gz': 'three',
      },
      { bare: true },
    );
    const bids = path.join(root, 'bids');
    const copy = async (out: string, selection: Record<string, unknown>) => {
      const config = runConfigSchema.parse({ bidsDir: bids, outputDir: path.join(root, out), analysisLevel: 'participant', outputLayout: 'raw', atlas: bids, ...selection });
      await mkdir(config.outputDir, { recursive: true });
      await prepareOutputDataset(config);
      return (await readdir(config.outputDir, { recursive: true })).map(String).filter((f) => f.endsWith('.nii.gz') || f.endsWith('.json')).sort();
    };
    expect(await copy('one', { participantLabels: ['02'] })).toEqual(['dataset_description.json', 'sub-02/func/sub-02_task-rest_bold.nii.gz', 'task-rest_bold.json']);
    expect(await copy('but-one', { excludeParticipantLabels: ['02'] })).toEqual([
      'dataset_description.json',
      'sub-01/func/sub-01_task-rest_bold.nii.gz',
      'sub-03/dwi/sub-03_dwi.nii.gz',
      'task-rest_bold.json',
    ]);
  });

  it('derivatives: one dataset_description.json and one .bidsignore, whole, whichever job comes first', async () => {
    const bids = await tree();
    const out = path.join(bids, 'derivatives', 'micanon');
    const config = runConfigSchema.parse({ bidsDir: bids, outputDir: out, analysisLevel: 'participant', atlas: bids });
    await Promise.all(Array.from({ length: 6 }, () => prepareOutputDataset(config)));
    expect(JSON.parse(await readFile(path.join(out, 'dataset_description.json'), 'utf8'))).toMatchObject({ DatasetType: 'derivative' });
    expect(await readFile(path.join(out, '.bidsignore'), 'utf8')).toBe(bidsIgnoreText(config));
    expect((await readdir(out)).filter((f) => isMicanonTemp(f))).toEqual([]);
  });
});

describe('the group level and participants without a result', () => {
  it('lists a participant with no run record, with the first error line of its SLURM task log', async () => {
    const record = (subject: string) => ({
      outputLayout: 'derivatives',
      qcDir: '.',
      methods: ['deface'],
      outputs: [{ subject, session: null, input: `sub-${subject}/anat/sub-${subject}_T1w.nii.gz`, method: 'deface', status: 'ok', output: `sub-${subject}/anat/sub-${subject}_desc-defaced_T1w.nii.gz`, reason: null, brainVoxelsChanged: 0 }],
    });
    const bids = await tree({
      'sub-01/anat/sub-01_T1w.nii.gz': 'x',
      'sub-02/anat/sub-02_T1w.nii.gz': 'x',
      'sub-03/anat/sub-03_T1w.nii.gz': 'x',
      'derivatives/micanon/logs/sub-01_micanon.json': record('01'),
      'derivatives/micanon/logs/slurm/micanon_20260101T000000Z_7_2.log':
        'micanon slurm: task 2 of job 7: sub-02 on node1\n10:00:00 ERROR: sub-02: sub-02_T1w.nii.gz is not a readable NIfTI: truncated (check the file is a valid NIfTI image)\n10:00:00 ERROR: sub-02: input refused, nothing done for this participant\nmicanon slurm: sub-02 exit 65\n',
    });
    const out = path.join(bids, 'derivatives', 'micanon');
    const config = runConfigSchema.parse({ bidsDir: bids, outputDir: out, analysisLevel: 'group', atlas: bids });
    expect(await summariseOutputs(config)).toBe(0);
    const rows = (await readFile(path.join(out, 'logs', 'group_summary.tsv'), 'utf8')).trimEnd().split('\n').map((l) => l.split('\t'));
    expect(rows.slice(1).map((r) => [r[0], r[4], r[7]])).toEqual([
      ['01', 'ok', ''],
      ['02', 'no result', 'sub-02: sub-02_T1w.nii.gz is not a readable NIfTI: truncated (check the file is a valid NIfTI image)'],
      ['03', 'no result', 'no run record: not run yet, or refused, failed or killed (see its log)'],
    ]);
    const page = await readFile(path.join(out, 'group_qc.html'), 'utf8');
    expect(page).toContain('Sessions without a result');
    expect(page).toContain('sub-02: sub-02_T1w.nii.gz is not a readable NIfTI');
  });
});
