import { describe, expect, it } from 'vitest';
import { BidsIgnore } from './ignore.js';

describe('BidsIgnore', () => {
  const rules = new BidsIgnore([
    '# comment',
    '',
    '*_acq-localizer_*',
    'extra_data/',
    '/sub-*/ses-*/anat/*_scout.nii.gz',
    '**/tmp/**',
    '*.txt',
    '!keep.txt',
  ]);

  it.each([
    ['/sub-01/anat/sub-01_acq-localizer_T1w.nii.gz', true], // basename pattern at any depth
    ['/extra_data/x.nii', true], // folder pattern ignores its content
    ['/sub-01/extra_data/x.nii', true],
    ['/sub-01/ses-1/anat/sub-01_ses-1_scout.nii.gz', true], // anchored
    ['/other/sub-01/ses-1/anat/sub-01_ses-1_scout.nii.gz', false],
    ['/sub-01/tmp/a/b.nii', true],
    ['/notes.txt', true],
    ['/keep.txt', false], // re-included
    ['/sub-01/anat/sub-01_T1w.nii.gz', false],
    ['sub-01/anat/sub-01_acq-localizer_T2w.nii', true], // leading slash optional
  ])('%s -> %s', (p, ignored) => {
    expect(rules.ignores(p)).toBe(ignored);
  });

  it('treats ? as one character and escapes regex characters', () => {
    const r = new BidsIgnore(['sub-0?_T1w.nii', 'a+b.json']);
    expect(r.ignores('/sub-01_T1w.nii')).toBe(true);
    expect(r.ignores('/sub-011_T1w.nii')).toBe(false);
    expect(r.ignores('/a+b.json')).toBe(true);
    expect(r.ignores('/aab.json')).toBe(false);
  });
});
