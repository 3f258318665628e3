import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { outputPathsFor, removedFieldsLogPath, sidecarPathFor } from './outputs.js';

const out = '/out';
const j = (...parts: string[]) => path.join(out, ...parts);

describe('outputPathsFor', () => {
  it('derivatives: desc-<method>ed in its spec position, gzip, session kept', () => {
    const rel = 'sub-01/ses-01/anat/sub-01_ses-01_acq-mprage_run-1_T1w.nii';
    expect(outputPathsFor(rel, { layout: 'derivatives', method: 'deface', outputDir: out })).toEqual({
      image: j('sub-01/ses-01/anat/sub-01_ses-01_acq-mprage_run-1_desc-defaced_T1w.nii.gz'),
      sidecar: j('sub-01/ses-01/anat/sub-01_ses-01_acq-mprage_run-1_desc-defaced_T1w.json'),
    });
  });

  it('derivatives: reface, warpface, sessionless, MP2RAGE parts before desc', () => {
    expect(outputPathsFor('sub-01/anat/sub-01_T2w.nii.gz', { layout: 'derivatives', method: 'reface', outputDir: out }).image).toBe(
      j('sub-01/anat/sub-01_desc-refaced_T2w.nii.gz'),
    );
    expect(
      outputPathsFor('sub-01/anat/sub-01_inv-1_part-mag_MP2RAGE.nii.gz', { layout: 'derivatives', method: 'warpface', outputDir: out }).image,
    ).toBe(j('sub-01/anat/sub-01_inv-1_part-mag_desc-warpfaced_MP2RAGE.nii.gz'));
  });

  it('derivatives: an existing desc is kept and the method appended in camelCase', () => {
    expect(
      outputPathsFor('sub-01/anat/sub-01_desc-preproc_T1w.nii.gz', { layout: 'derivatives', method: 'deface', outputDir: out }).image,
    ).toBe(j('sub-01/anat/sub-01_desc-preprocDefaced_T1w.nii.gz'));
  });

  it('raw: same relative path and name as the input, extension kept', () => {
    expect(outputPathsFor('sub-01/ses-01/anat/sub-01_ses-01_T1w.nii', { layout: 'raw', method: 'deface', outputDir: out })).toEqual({
      image: j('sub-01/ses-01/anat/sub-01_ses-01_T1w.nii'),
      sidecar: j('sub-01/ses-01/anat/sub-01_ses-01_T1w.json'),
    });
  });

  it('micapipe: <stem>_<method>ed.nii.gz in the input folder layout', () => {
    const rel = 'sub-HC001/ses-01/anat/sub-HC001_ses-01_T1w.nii.gz';
    expect(outputPathsFor(rel, { layout: 'micapipe', method: 'deface', outputDir: out })).toEqual({
      image: j('sub-HC001/ses-01/anat/sub-HC001_ses-01_T1w_defaced.nii.gz'),
      sidecar: j('sub-HC001/ses-01/anat/sub-HC001_ses-01_T1w_defaced.json'),
    });
    expect(outputPathsFor(rel, { layout: 'micapipe', method: 'warpface', outputDir: out }).image).toMatch(/_T1w_warpfaced\.nii\.gz$/);
  });

  it('refuses to build a derivative name from a non-BIDS name', () => {
    expect(() => outputPathsFor('sub-01/anat/scan 3.nii.gz', { layout: 'derivatives', method: 'deface', outputDir: out })).toThrow(
      expect.objectContaining({ code: 'BIDS_NAME_INVALID' }),
    );
  });

  it('sidecar and log paths', () => {
    expect(sidecarPathFor('/a/sub-01_T1w.nii.gz')).toBe(path.join('/a', 'sub-01_T1w.json'));
    expect(removedFieldsLogPath(out, '01', null)).toBe(j('logs', 'sub-01_removed-fields.json'));
    expect(removedFieldsLogPath(out, '01', 'a')).toBe(j('logs', 'sub-01_ses-a_removed-fields.json'));
  });
});
