import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { derivativeDescription, ensureDerivativeDescription, isMicanonDerivative } from './derivatives.js';
import { DESCRIPTION, useTempTrees } from './tree.fixture.js';

const newTree = useTempTrees();
const dir = (): Promise<string> => newTree({}, { bare: true });

describe('derivative dataset_description.json', () => {
  it('creates a micanon derivative description with a bids:raw link', async () => {
    const raw = await dir();
    const out = path.join(raw, 'derivatives', 'micanon');
    const outcome = await ensureDerivativeDescription(out, {
      version: '0.1.0',
      codeUrl: 'https://example.org/micanon',
      container: { Type: 'docker', Tag: 'micanon:0.1.0' },
      sourceRoot: raw,
    });
    expect(outcome).toBe('created');
    const description = JSON.parse(await readFile(path.join(out, 'dataset_description.json'), 'utf8'));
    expect(description).toEqual({
      Name: 'micanon: face-anonymized anatomical images',
      BIDSVersion: '1.10.0',
      DatasetType: 'derivative',
      GeneratedBy: [{ Name: 'micanon', Version: '0.1.0', CodeURL: 'https://example.org/micanon', Container: { Type: 'docker', Tag: 'micanon:0.1.0' } }],
      SourceDatasets: [{ URL: 'bids:raw:' }],
      DatasetLinks: { raw: '../../' },
    });
    expect(await readdir(out)).toEqual(['dataset_description.json']);
  });

  it('links an outside source by file URI, or by the URL given', () => {
    expect(derivativeDescription('/out', { version: '1', sourceRoot: '/data/raw' }).DatasetLinks).toEqual({ raw: 'file:///data/raw' });
    expect(derivativeDescription('/out', { version: '1', sourceRoot: '/data/raw', sourceUrl: 'https://doi.org/x' }).DatasetLinks).toEqual({
      raw: 'https://doi.org/x',
    });
    expect(derivativeDescription('/out', { version: '1', sourceRoot: '/data/raw' }).GeneratedBy).toEqual([{ Name: 'micanon', Version: '1' }]);
  });

  it('keeps an existing micanon description: parallel jobs agree on one file', async () => {
    const out = await dir();
    const outcomes = await Promise.all(
      Array.from({ length: 8 }, (_, i) => ensureDerivativeDescription(out, { version: `0.${i}`, sourceRoot: '/data/raw' })),
    );
    expect(outcomes.filter((o) => o === 'created')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'kept')).toHaveLength(7);
    expect(await readdir(out)).toEqual(['dataset_description.json']);
    expect(isMicanonDerivative(JSON.parse(await readFile(path.join(out, 'dataset_description.json'), 'utf8')))).toBe(true);
  });

  it('refuses an output folder holding another dataset', async () => {
    const out = await dir();
    await writeFile(path.join(out, 'dataset_description.json'), JSON.stringify(DESCRIPTION));
    await expect(ensureDerivativeDescription(out, { version: '1', sourceRoot: '/data/raw' })).rejects.toMatchObject({
      code: 'BIDS_OUTPUT_FOREIGN',
      exitCode: 73,
    });
    const fmriprep = { ...DESCRIPTION, DatasetType: 'derivative', GeneratedBy: [{ Name: 'fMRIPrep' }] };
    await writeFile(path.join(out, 'dataset_description.json'), JSON.stringify(fmriprep));
    await expect(ensureDerivativeDescription(out, { version: '1', sourceRoot: '/data/raw' })).rejects.toThrow(/did not generate/);
    expect(JSON.parse(await readFile(path.join(out, 'dataset_description.json'), 'utf8'))).toEqual(fmriprep);
    expect(await readdir(out)).toEqual(['dataset_description.json']);
  });
});
