/**
 * Selection on a dataset built in code: three participants, two sessions each, two T1w
 * acquisitions per session (and a FLAIR with and without rec-norm). Discovery reads names only,
 * so the images are a few bytes each and these tests need no engine.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { discoverAnatomy, type SessionPlan, type SkippedFile } from './discover.js';
import { parseBidsFilters } from './filters.js';
import { expandLabelArgs, normaliseLabels, readLabelFile, selectLabels } from './selection.js';
import { type TreeSpec, useTempTrees } from './tree.fixture.js';

const tree = useTempTrees();

/** sub-{01,02,03} x ses-{pre,post} x T1w acq-{mprage,fast}, plus FLAIR (rec-norm and not). */
function cohort(): TreeSpec {
  const spec: TreeSpec = {};
  for (const sub of ['01', '02', '03']) {
    for (const ses of ['pre', 'post']) {
      const anat = `sub-${sub}/ses-${ses}/anat/sub-${sub}_ses-${ses}`;
      for (const name of ['acq-mprage_T1w', 'acq-fast_T1w', 'FLAIR', 'rec-norm_FLAIR']) spec[`${anat}_${name}.nii.gz`] = 'nifti';
    }
  }
  return spec;
}

const sessions = (plan: SessionPlan[]) => plan.map((p) => `${p.subject}/${p.session}`);
const images = (plan: SessionPlan[]) => plan.flatMap((p) => p.images.map((i) => path.basename(i.path)));
function filters(json: object) {
  return parseBidsFilters(JSON.stringify(json), '/cfg/filter.json');
}

describe('label rule', () => {
  it('accepts labels with or without the prefix and drops duplicates', () => {
    expect(normaliseLabels(['01', 'sub-02', ' sub-01 '], 'sub')).toEqual(['01', '02']);
    expect(() => normaliseLabels(['01_a'], 'sub')).toThrow(/not a valid sub label/);
  });

  it('reads label files with comments, blank lines, commas and prefixes, among plain labels', async () => {
    const root = await tree({ 'labels.txt': '# cohort A\nsub-01\n\n02  # late\n03,sub-04\n', 'ses.txt': 'ses-pre\n' });
    expect(readLabelFile(path.join(root, 'labels.txt'), 'sub')).toEqual(['01', '02', '03', '04']);
    expect(expandLabelArgs(['07', path.join(root, 'labels.txt')], 'sub')).toEqual(['07', '01', '02', '03', '04']);
    expect(expandLabelArgs([path.join(root, 'ses.txt')], 'ses')).toEqual(['pre']);
    expect(() => readLabelFile('/nonexistent/labels.txt', 'sub')).toThrow(expect.objectContaining({ code: 'BIDS_LABEL_FILE_UNREADABLE', exitCode: 66 }));
  });

  it('includes, then excludes; an exclusion that empties the selection is exit 18', () => {
    expect(selectLabels(['01', '02', '03'], { exclude: ['sub-02'] }, 'sub', '/d')).toEqual(['01', '03']);
    expect(selectLabels(['01', '02', '03'], { include: ['01', '02'], exclude: ['02', '09'] }, 'sub', '/d')).toEqual(['01']);
    expect(() => selectLabels(['01', '02'], { include: ['01'], exclude: ['01'] }, 'sub', '/d')).toThrow(
      expect.objectContaining({ code: 'BIDS_SELECTION_EMPTY', exitCode: 18 }),
    );
  });
});

describe('selection in discovery (3 participants x 2 sessions x 2 T1w acquisitions)', () => {
  it('takes everything by default: 6 sessions, the acq-less rule picks the reference', async () => {
    const plan = await discoverAnatomy(await tree(cohort()));
    expect(sessions(plan)).toEqual(['01/post', '01/pre', '02/post', '02/pre', '03/post', '03/pre']);
    expect(plan[0]!.images).toHaveLength(4);
  });

  it('--participant-label, with or without sub-, and from a file', async () => {
    const root = await tree(cohort());
    expect(sessions(await discoverAnatomy(root, { participants: ['sub-02'] }))).toEqual(['02/post', '02/pre']);
    writeFileSync(path.join(root, 'subjects.txt'), 'sub-01\n03\n');
    const fromFile = expandLabelArgs([path.join(root, 'subjects.txt')], 'sub');
    expect(sessions(await discoverAnatomy(root, { participants: fromFile }))).toEqual(['01/post', '01/pre', '03/post', '03/pre']);
  });

  it('--exclude-participant-label, alone and after --participant-label', async () => {
    const root = await tree(cohort());
    expect(sessions(await discoverAnatomy(root, { excludeParticipants: ['sub-01', '03'] }))).toEqual(['02/post', '02/pre']);
    const both = await discoverAnatomy(root, { participants: ['01', '02'], excludeParticipants: ['01'] });
    expect(sessions(both)).toEqual(['02/post', '02/pre']);
  });

  it('--session-label and --exclude-session-label', async () => {
    const root = await tree(cohort());
    expect(sessions(await discoverAnatomy(root, { sessions: ['ses-pre'] }))).toEqual(['01/pre', '02/pre', '03/pre']);
    expect(sessions(await discoverAnatomy(root, { participants: ['03'], excludeSessions: ['pre'] }))).toEqual(['03/post']);
  });

  it('an exclusion that leaves nothing: exit 18 and a message naming the options', async () => {
    const root = await tree(cohort());
    const everyone = await discoverAnatomy(root, { excludeParticipants: ['01', '02', '03'] }).catch((e: unknown) => e);
    expect(everyone).toMatchObject({ code: 'BIDS_SELECTION_EMPTY', exitCode: 18 });
    expect(String((everyone as Error).message)).toMatch(/no participant left to process: --exclude-participant-label sub-01, sub-02, sub-03 removes every participant of/);
    const selected = await discoverAnatomy(root, { participants: ['02'], excludeParticipants: ['sub-02'] }).catch((e: unknown) => e);
    expect(String((selected as Error).message)).toMatch(/removes the --participant-label selection \(sub-02\)/);
    const noSession = await discoverAnatomy(root, { sessions: ['pre'], excludeSessions: ['pre'] }).catch((e: unknown) => e);
    expect(noSession).toMatchObject({ code: 'BIDS_SELECTION_EMPTY', exitCode: 18 });
    expect(String((noSession as Error).message)).toMatch(/no session left to process: --exclude-session-label ses-pre/);
  });

  it('keeps sessionless data when only sessions are excluded, and drops it for --session-label', async () => {
    const root = await tree({ ...cohort(), 'sub-04/anat/sub-04_T1w.nii.gz': 'nifti' });
    const excluded = await discoverAnatomy(root, { excludeSessions: ['pre', 'post'] });
    expect(sessions(excluded)).toEqual(['04/null']);
    expect(sessions(await discoverAnatomy(root, { participants: ['01', '04'], sessions: ['post'] }))).toEqual(['01/post']);
  });

  it('--bids-filter-file restricts the T1w to acq-mprage and skips rec-norm', async () => {
    const root = await tree(cohort());
    const skipped: SkippedFile[] = [];
    const plan = await discoverAnatomy(root, {
      participants: ['01'],
      sessions: ['pre'],
      filters: filters({ t1w: { datatype: 'anat', suffix: 'T1w', acquisition: 'mprage' }, flair: { reconstruction: null } }),
      onSkip: (s) => skipped.push(s),
    });
    expect(images(plan)).toEqual(['sub-01_ses-pre_acq-mprage_T1w.nii.gz', 'sub-01_ses-pre_FLAIR.nii.gz']);
    expect(plan[0]!.referenceReason).toMatch(/the only T1w/);
    const why = Object.fromEntries(skipped.map((s) => [path.basename(s.path), s.reason]));
    expect(why['sub-01_ses-pre_acq-fast_T1w.nii.gz']).toBe(
      'left out by --bids-filter-file (t1w: acquisition is "fast", the filter wants "mprage")',
    );
    expect(why['sub-01_ses-pre_rec-norm_FLAIR.nii.gz']).toMatch(/flair: reconstruction is "norm", the filter wants absent/);
  });

  it('filters with lists, "*", session entities and regular expressions', async () => {
    const root = await tree(cohort());
    const any = await discoverAnatomy(root, { participants: ['02'], filters: filters({ flair: { reconstruction: '*' }, t1w: { session: ['post'] } }) });
    expect(images(any)).toEqual([
      'sub-02_ses-post_acq-fast_T1w.nii.gz',
      'sub-02_ses-post_acq-mprage_T1w.nii.gz',
      'sub-02_ses-post_rec-norm_FLAIR.nii.gz',
      // ses-pre has no T1w left: its FLAIR stands in.
      'sub-02_ses-pre_rec-norm_FLAIR.nii.gz',
    ]);
    const regex = await discoverAnatomy(root, { participants: ['03'], sessions: ['pre'], filters: filters({ t1w: { acquisition: '^mp', regex_search: true } }) });
    expect(images(regex).filter((n) => n.endsWith('T1w.nii.gz'))).toEqual(['sub-03_ses-pre_acq-mprage_T1w.nii.gz']);
  });

  it('a filter that leaves no image: exit 18 naming the filter file', async () => {
    const root = await tree(cohort());
    const err = await discoverAnatomy(root, { filters: filters({ t1w: { acquisition: 'none' }, flair: { suffix: 'T2w' } }) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'BIDS_SELECTION_EMPTY', exitCode: 18 });
    expect(String((err as Error).message)).toMatch(/^--bids-filter-file \/cfg\/filter.json leaves out every anatomical image of the selection \(24 image/);
  });
});

describe('--bids-filter-file format', () => {
  const bad = (json: unknown) => {
    try {
      parseBidsFilters(typeof json === 'string' ? json : JSON.stringify(json), '/cfg/f.json');
    } catch (err) {
      return err as Error & { exitCode: number };
    }
    throw new Error('expected a refusal');
  };

  it('refuses unknown kinds and entities, bad values and bad JSON with one line naming the file (exit 64)', () => {
    const kind = bad({ t1: { acquisition: 'mprage' } });
    expect(kind.exitCode).toBe(64);
    expect(kind.message).toMatch(/^--bids-filter-file \/cfg\/f.json: unknown image kind "t1" \(micanon's kinds .*t1w/);
    expect(bad({ t1w: { acq: 'mprage' } }).message).toMatch(/"t1w" filters on unknown entity "acq" \(PyBIDS names: .*acquisition/);
    expect(bad({ t1w: { run: true } }).message).toMatch(/"t1w.run" must be a string, null/);
    expect(bad({ t1w: { acquisition: '(', regex_search: true } }).message).toMatch(/is not a regular expression/);
    expect(bad('{"t1w": ').message).toMatch(/f.json: not valid JSON/);
    expect(bad(['t1w']).message).toMatch(/must be a JSON object keyed by image kind/);
    for (const err of [kind, bad({ t1w: { acq: 'x' } }), bad('{')]) expect(err.message).not.toMatch(/\n/);
  });

  it("accepts fMRIPrep's non-anatomical queries in a shared file and leaves them alone", () => {
    const parsed = parseBidsFilters(JSON.stringify({ bold: { task: 'rest' }, t1w: { run: 1 } }), '/f.json');
    expect(parsed.ignoredKinds).toEqual(['bold']);
    expect(Object.keys(parsed.kinds)).toEqual(['t1w']);
  });
});
