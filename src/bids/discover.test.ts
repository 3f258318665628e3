import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { discoverAnatomy, type SkippedFile } from './discover.js';
import { expandLabelArgs } from './selection.js';
import { BidsError } from './errors.js';
import { setTreeReadOnly, snapshotTree, type TreeSpec, useTempTrees } from './tree.fixture.js';

const tree = useTempTrees();

/** Image files need no content for discovery: it reads names only. */
const img = (...names: string[]): TreeSpec => Object.fromEntries(names.map((n) => [n, 'nifti']));
const names = (paths: string[]) => paths.map((p) => path.basename(p));

describe('discoverAnatomy', () => {
  it('finds sessions, picks run-1 T1w as reference and lists every image', async () => {
    const root = await tree(
      img(
        'sub-01/ses-1/anat/sub-01_ses-1_run-2_T1w.nii.gz',
        'sub-01/ses-1/anat/sub-01_ses-1_run-1_T1w.nii.gz',
        'sub-01/ses-1/anat/sub-01_ses-1_FLAIR.nii.gz',
        'sub-01/ses-2/anat/sub-01_ses-2_T1w.nii',
        'sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz',
      ),
    );
    const plan = await discoverAnatomy(root);
    expect(plan.map((p) => [p.subject, p.session])).toEqual([
      ['01', '1'],
      ['01', '2'],
      ['02', '1'],
    ]);
    const first = plan[0]!;
    expect(path.basename(first.reference)).toBe('sub-01_ses-1_run-1_T1w.nii.gz');
    expect(first.referenceReason).toMatch(/lowest run \(run-1\)/);
    expect(first.referenceIsT1w).toBe(true);
    expect(names(first.images.map((i) => i.path))).toEqual([
      'sub-01_ses-1_run-1_T1w.nii.gz',
      'sub-01_ses-1_FLAIR.nii.gz',
      'sub-01_ses-1_run-2_T1w.nii.gz',
    ]);
    expect(first.images[0]).toMatchObject({ suffix: 'T1w', entities: { sub: '01', ses: '1', run: '1' }, registerVia: null });
    expect(plan[1]!.referenceReason).toMatch(/only T1w/);
  });

  it('handles sessionless datasets', async () => {
    const root = await tree(img('sub-01/anat/sub-01_T1w.nii.gz', 'sub-01/anat/sub-01_T2w.nii.gz'));
    const plan = await discoverAnatomy(root);
    expect(plan).toHaveLength(1);
    expect(plan[0]).toMatchObject({ subject: '01', session: null });
    expect(plan[0]!.images.map((i) => i.suffix)).toEqual(['T1w', 'T2w']);
  });

  it('prefers the T1w without acq (or run) label, deterministically', async () => {
    const root = await tree(
      img('sub-01/anat/sub-01_acq-fast_T1w.nii.gz', 'sub-01/anat/sub-01_acq-fast_run-1_T1w.nii.gz', 'sub-01/anat/sub-01_run-3_T1w.nii.gz'),
    );
    const [plan] = await discoverAnatomy(root);
    expect(path.basename(plan!.reference)).toBe('sub-01_run-3_T1w.nii.gz');
    expect(plan!.referenceReason).toMatch(/no acq label/);
  });

  it('groups an MP2RAGE set: UNIT1, T1map and inv-1 register via the inv-2 magnitude', async () => {
    const root = await tree(
      img(
        'sub-01/anat/sub-01_inv-1_part-mag_MP2RAGE.nii.gz',
        'sub-01/anat/sub-01_inv-1_part-phase_MP2RAGE.nii.gz',
        'sub-01/anat/sub-01_inv-2_part-mag_MP2RAGE.nii.gz',
        'sub-01/anat/sub-01_UNIT1.nii.gz',
        'sub-01/anat/sub-01_T1map.nii.gz',
        'sub-01/anat/sub-01_T2w.nii.gz',
      ),
    );
    const [plan] = await discoverAnatomy(root);
    const byName = Object.fromEntries(plan!.images.map((i) => [path.basename(i.path), i.registerVia && path.basename(i.registerVia)]));
    const inv2 = 'sub-01_inv-2_part-mag_MP2RAGE.nii.gz';
    expect(byName).toEqual({
      'sub-01_UNIT1.nii.gz': inv2,
      'sub-01_T1map.nii.gz': inv2,
      'sub-01_inv-1_part-mag_MP2RAGE.nii.gz': inv2,
      // phase -> inv-1 magnitude -> inv-2 magnitude: chains resolve to an image that registers alone
      'sub-01_inv-1_part-phase_MP2RAGE.nii.gz': inv2,
      [inv2]: null,
      'sub-01_T2w.nii.gz': null,
    });
    // No T1w: the UNIT1 stands in, marked as such.
    expect(path.basename(plan!.reference)).toBe('sub-01_UNIT1.nii.gz');
    expect(plan!.referenceIsT1w).toBe(false);
    expect(plan!.referenceReason).toMatch(/no T1w in this session; UNIT1 stands in/);
  });

  it('matches MP2RAGE partners by acq when a session has two MP2RAGE series', async () => {
    const root = await tree(
      img(
        'sub-01/anat/sub-01_acq-lo_inv-2_MP2RAGE.nii.gz',
        'sub-01/anat/sub-01_acq-hi_inv-2_MP2RAGE.nii.gz',
        'sub-01/anat/sub-01_acq-hi_UNIT1.nii.gz',
        'sub-01/anat/sub-01_T1w.nii.gz',
      ),
    );
    const [plan] = await discoverAnatomy(root);
    const unit1 = plan!.images.find((i) => i.suffix === 'UNIT1')!;
    expect(path.basename(unit1.registerVia!)).toBe('sub-01_acq-hi_inv-2_MP2RAGE.nii.gz');
  });

  it('registers later echoes through the first echo', async () => {
    const root = await tree(img('sub-01/anat/sub-01_echo-1_MEGRE.nii.gz', 'sub-01/anat/sub-01_echo-2_MEGRE.nii.gz', 'sub-01/anat/sub-01_T1w.nii.gz'));
    const [plan] = await discoverAnatomy(root);
    const echo2 = plan!.images.find((i) => i.entities.echo === '2')!;
    expect(path.basename(echo2.registerVia!)).toBe('sub-01_echo-1_MEGRE.nii.gz');
  });

  it('falls back to T2w when a session has neither T1w nor MP2RAGE', async () => {
    const root = await tree(img('sub-01/anat/sub-01_FLAIR.nii.gz', 'sub-01/anat/sub-01_T2w.nii.gz', 'sub-01/anat/sub-01_angio.nii.gz'));
    const [plan] = await discoverAnatomy(root);
    expect(plan!.images[0]!.suffix).toBe('T2w');
    expect(plan!.referenceIsT1w).toBe(false);
  });

  it('skips junk, masks, derivatives in raw, .bidsignore, hidden files and non-raw folders', async () => {
    const root = await tree({
      ...img(
        'sub-01/anat/sub-01_T1w.nii.gz',
        'sub-01/anat/sub-01_T1w_mask.nii.gz',
        'sub-01/anat/sub-01_acq-brain_mask.nii.gz',
        'sub-01/anat/sub-01_dseg.nii.gz',
        'sub-01/anat/sub-01_label-GM_probseg.nii.gz',
        'sub-01/anat/sub-01_desc-brain_T1w.nii.gz',
        'sub-01/anat/sub-01_mod-T1w_defacemask.nii.gz',
        'sub-01/anat/sub-01_T1w.nii', // twin of the .nii.gz
        'sub-01/anat/notes.txt',
        'sub-01/anat/sub-01_T2w.png',
        'sub-01/anat/scan 3.nii.gz',
        'sub-01/anat/.sub-01_T1w.micanon-tmp-1-ab.nii.gz',
        'sub-01/anat/sub-02_T2w.nii.gz', // wrong subject
        'sub-01/anat/sub-01_acq-localizer_T1w.nii.gz',
        'sub-01/func/sub-01_task-rest_bold.nii.gz',
        'derivatives/fmriprep/sub-01/anat/sub-01_desc-preproc_T1w.nii.gz',
        'sourcedata/sub-01/anat/sub-01_T1w.nii.gz',
        'code/sub-01_T1w.nii.gz',
        '.git/sub-03/anat/sub-03_T1w.nii.gz',
      ),
      'sub-01/anat/sub-01_T1w.json': {},
      '.bidsignore': '# localizers\n*_acq-localizer_*\n',
    });
    const skipped: SkippedFile[] = [];
    const plan = await discoverAnatomy(root, { onSkip: (s) => skipped.push(s) });
    expect(plan).toHaveLength(1);
    expect(names(plan[0]!.images.map((i) => i.path))).toEqual(['sub-01_T1w.nii.gz']);
    const reasons = Object.fromEntries(skipped.map((s) => [path.basename(s.path), s.reason]));
    expect(reasons['sub-01_T1w_mask.nii.gz']).toMatch(/does not follow BIDS/);
    expect(reasons['sub-01_acq-brain_mask.nii.gz']).toMatch(/"mask" is not an anatomical image/);
    expect(reasons['sub-01_dseg.nii.gz']).toMatch(/"dseg" is not an anatomical image/);
    expect(reasons['sub-01_desc-brain_T1w.nii.gz']).toMatch(/derivative in raw data \(desc-brain\)/);
    expect(reasons['sub-01_label-GM_probseg.nii.gz']).toMatch(/derivative in raw data/);
    expect(reasons['sub-01_mod-T1w_defacemask.nii.gz']).toMatch(/not an anatomical image/);
    expect(reasons['sub-01_T1w.nii']).toMatch(/duplicate/);
    expect(reasons['notes.txt']).toMatch(/not a NIfTI/);
    expect(reasons['scan 3.nii.gz']).toMatch(/does not follow BIDS/);
    expect(reasons['sub-02_T2w.nii.gz']).toMatch(/sits in sub-01/);
    expect(reasons['sub-01_acq-localizer_T1w.nii.gz']).toBe('listed in .bidsignore');
    // Sidecars are expected beside images: not reported as junk.
    expect(reasons['sub-01_T1w.json']).toBeUndefined();
    expect(skipped.some((s) => /derivatives|sourcedata|code|\.git/.test(path.relative(root, s.path)))).toBe(false);
  });

  it('selects participants and sessions, with or without prefixes', async () => {
    const root = await tree(
      img('sub-01/ses-a/anat/sub-01_ses-a_T1w.nii.gz', 'sub-01/ses-b/anat/sub-01_ses-b_T1w.nii.gz', 'sub-02/ses-a/anat/sub-02_ses-a_T1w.nii.gz'),
    );
    const plan = await discoverAnatomy(root, { participants: ['sub-01'], sessions: ['b'] });
    expect(plan.map((p) => [p.subject, p.session])).toEqual([['01', 'b']]);
  });

  it('names the missing participants and lists the existing ones', async () => {
    const root = await tree(img('sub-01/anat/sub-01_T1w.nii.gz', 'sub-02/anat/sub-02_T1w.nii.gz'));
    const err = await discoverAnatomy(root, { participants: ['01', '09', 'sub-10'] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BidsError);
    expect(err).toMatchObject({ code: 'BIDS_LABEL_NOT_FOUND', exitCode: 18 });
    expect((err as BidsError).message).toMatch(/sub-09, sub-10 not found/);
    expect((err as BidsError).message).toMatch(/present: sub-01, sub-02/);
    expect((err as BidsError).oneLine()).toMatch(/--participant-label/);
  });

  it('names a missing session and the sessions present', async () => {
    const root = await tree(img('sub-01/ses-a/anat/sub-01_ses-a_T1w.nii.gz'));
    await expect(discoverAnatomy(root, { sessions: ['z'] })).rejects.toThrow(/session ses-z not found in sub-01 of .*; present: ses-a/);
  });

  it('reads the participants of a label file', async () => {
    const root = await tree({ ...img('sub-01/anat/sub-01_T1w.nii.gz', 'sub-02/anat/sub-02_T1w.nii.gz'), 'list.txt': 'sub-02\n' });
    const participants = expandLabelArgs([path.join(root, 'list.txt')], 'sub');
    const plan = await discoverAnatomy(root, { participants });
    expect(plan.map((p) => p.subject)).toEqual(['02']);
  });

  it('fails with exit 18 when the selection has no anatomical image, and 66 when the folder is missing', async () => {
    const root = await tree(img('sub-01/func/sub-01_task-rest_bold.nii.gz', 'sub-01/anat/sub-01_T1w_mask.nii.gz'));
    await expect(discoverAnatomy(root)).rejects.toMatchObject({ code: 'BIDS_NO_ANAT_IMAGES', exitCode: 18 });
    await expect(discoverAnatomy(path.join(root, 'nope'))).rejects.toMatchObject({ code: 'BIDS_ROOT_MISSING', exitCode: 66 });
  });

  it('reads a read-only dataset and changes nothing in it', async () => {
    const root = await tree({ ...img('sub-01/anat/sub-01_T1w.nii.gz', 'sub-01/anat/sub-01_T2w.nii.gz'), 'sub-01/anat/sub-01_T1w.json': { EchoTime: 0.003 } });
    await setTreeReadOnly(root, true);
    const before = await snapshotTree(root);
    const plan = await discoverAnatomy(root);
    expect(plan[0]!.images).toHaveLength(2);
    expect(await snapshotTree(root)).toEqual(before);
  });

  it('is deterministic: the same plan whatever order files were created in', async () => {
    const files = ['sub-01/anat/sub-01_run-2_T1w.nii.gz', 'sub-01/anat/sub-01_run-1_T1w.nii.gz', 'sub-01/anat/sub-01_T2w.nii.gz'];
    const a = await tree(img(...files));
    const b = await tree(img(...[...files].reverse()));
    const strip = (plan: Awaited<ReturnType<typeof discoverAnatomy>>, root: string) =>
      JSON.stringify(plan).split(root).join('<root>');
    expect(strip(await discoverAnatomy(a), a)).toBe(strip(await discoverAnatomy(b), b));
  });
});
