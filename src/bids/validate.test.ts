import { describe, expect, it } from 'vitest';
import { checkDataset } from './validate.js';
import { DESCRIPTION, useTempTrees } from './tree.fixture.js';

const newTree = useTempTrees();

describe('checkDataset (what the official validator does not check)', () => {
  it('has nothing to say of a raw dataset', async () => {
    const root = await newTree({ 'sub-01/anat/sub-01_T1w.nii.gz': 'x' });
    expect(await checkDataset(root)).toEqual([]);
  });

  it('warns that a derivative dataset is not what micanon anonymizes', async () => {
    const root = await newTree({ 'dataset_description.json': { ...DESCRIPTION, DatasetType: 'derivative' } }, { bare: true });
    expect(await checkDataset(root)).toEqual([expect.objectContaining({ code: 'DATASET_IS_DERIVATIVE', severity: 'warning' })]);
  });

  it('leaves a missing or broken description to the validator', async () => {
    expect(await checkDataset(await newTree({ README: 'x' }, { bare: true }))).toEqual([]);
    expect(await checkDataset(await newTree({ 'dataset_description.json': '{' }, { bare: true }))).toEqual([]);
  });
});
