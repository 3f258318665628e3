import { describe, expect, it } from 'vitest';
import {
  ANAT_IMAGE_SUFFIXES,
  anatNameProblem,
  extensionOf,
  formatBidsName,
  isInEntityOrder,
  parseBidsName,
  stemOf,
} from './entities.js';

describe('parseBidsName', () => {
  it('reads entities, suffix and a two-dot extension from a path', () => {
    expect(parseBidsName('/data/sub-01/ses-pre/anat/sub-01_ses-pre_acq-mprage_run-2_T1w.nii.gz')).toEqual({
      entities: { sub: '01', ses: 'pre', acq: 'mprage', run: '2' },
      suffix: 'T1w',
      extension: '.nii.gz',
    });
  });

  it('reads MP2RAGE parts', () => {
    const parsed = parseBidsName('sub-01_inv-1_part-mag_MP2RAGE.nii');
    expect(parsed?.entities).toEqual({ sub: '01', inv: '1', part: 'mag' });
    expect(parsed?.suffix).toBe('MP2RAGE');
    expect(parsed?.extension).toBe('.nii');
  });

  it('parses entity-less top-level sidecars (inheritance principle)', () => {
    expect(parseBidsName('T1w.json')).toEqual({ entities: {}, suffix: 'T1w', extension: '.json' });
  });

  it.each([
    ['sub-01_T1w'], // no extension
    ['sub-01_acq-a_acq-b_T1w.nii'], // repeated key
    ['sub-01_acq-a.b_T1w.nii'], // dot in a value breaks the extension
    ['sub-01_acq-a-b_T1w.nii.gz'], // dash in a value
    ['sub-01_run_T1w.nii.gz'], // key without value
    ['sub-01_T1-w.nii.gz'], // suffix with a dash
    ['.sub-01_T1w.nii.gz'], // hidden
  ])('rejects %s', (name) => {
    expect(parseBidsName(name)).toBeNull();
  });
});

describe('formatBidsName', () => {
  it('puts entities in specification order whatever order they were given in', () => {
    const name = formatBidsName({
      entities: { desc: 'defaced', run: '1', part: 'mag', inv: '2', echo: '1', acq: 'fast', ses: '1', sub: '01', ce: 'gad', rec: 'norm' },
      suffix: 'MP2RAGE',
      extension: '.nii.gz',
    });
    expect(name).toBe('sub-01_ses-1_acq-fast_ce-gad_rec-norm_run-1_echo-1_inv-2_part-mag_desc-defaced_MP2RAGE.nii.gz');
  });

  it('round-trips a well-ordered name', () => {
    const name = 'sub-01_ses-1_acq-mp2rage_run-1_flip-2_mt-on_part-mag_MPM.nii.gz';
    expect(formatBidsName(parseBidsName(name)!)).toBe(name);
  });

  it('places unknown entities just before desc', () => {
    expect(formatBidsName({ entities: { desc: 'x', foo: 'bar', sub: '1' }, suffix: 'T1w', extension: '.nii' })).toBe(
      'sub-1_foo-bar_desc-x_T1w.nii',
    );
  });
});

describe('anatomical names', () => {
  it('knows the current anat suffixes and leaves masks out', () => {
    for (const s of ['T1w', 'T2w', 'PDw', 'T2starw', 'FLAIR', 'UNIT1', 'MP2RAGE', 'MPM', 'MTS', 'MESE', 'MEGRE', 'VFA', 'IRT1', 'MTR', 'T1map', 'angio']) {
      expect(ANAT_IMAGE_SUFFIXES.has(s), s).toBe(true);
    }
    for (const s of ['defacemask', 'mask', 'dseg', 'probseg', 'bold', 'dwi']) expect(ANAT_IMAGE_SUFFIXES.has(s), s).toBe(false);
  });

  it.each([
    ['sub-01_T1w.nii.gz', null],
    ['sub-01_ses-1_acq-hi_rec-norm_run-2_T2w.nii', null],
    ['sub-01_inv-2_part-mag_MP2RAGE.nii.gz', null],
    ['sub-01_echo-3_MEGRE.nii.gz', null],
    ['sub-01_flip-1_mt-off_MPM.nii.gz', null],
    ['sub-01_MP2RAGE.nii.gz', 'MP2RAGE requires inv-<index>'],
    ['sub-01_MEGRE.nii.gz', 'MEGRE requires echo-<index>'],
    ['sub-01_echo-1_UNIT1.nii.gz', 'entity "echo" not allowed for UNIT1'],
    ['sub-01_run-a_T1w.nii.gz', 'run-a: run takes a number'],
    ['sub-01_part-phs_T1w.nii.gz', 'part-phs: part is mag, phase, real or imag'],
    ['sub-01_run-1_acq-x_T1w.nii.gz', 'entities out of order (expected sub-01_acq-x_run-1_T1w.nii.gz)'],
    ['sub-01_T1w.json', 'extension ".json" is not .nii or .nii.gz'],
    ['sub-01_dseg.nii.gz', 'suffix "dseg" is not an anatomical image suffix'],
    ['acq-x_T1w.nii.gz', 'the sub-<label> entity is missing'],
  ])('%s -> %s', (name, problem) => {
    expect(anatNameProblem(parseBidsName(name)!)).toBe(problem);
  });

  it('checks entity order', () => {
    expect(isInEntityOrder({ sub: '1', ses: '1', run: '1' })).toBe(true);
    expect(isInEntityOrder({ sub: '1', run: '1', ses: '1' })).toBe(false);
  });

  it('splits stem and extension at the first dot', () => {
    expect(stemOf('/a.b/sub-01_T1w.nii.gz')).toBe('sub-01_T1w');
    expect(extensionOf('/a.b/sub-01_T1w.nii.gz')).toBe('.nii.gz');
    expect(extensionOf('README')).toBe('');
  });
});
