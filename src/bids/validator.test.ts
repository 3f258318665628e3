/**
 * The official BIDS validator as micanon runs it: the real one from the venv (installed by
 * `npm run setup` from python/requirements.lock), on small datasets built here.
 */
import { chmod, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeTinyNifti } from '../../test/helpers/nifti.js';
import { bidsIgnoreText } from '../pipeline/outputs.js';
import { derivativeDescription } from './derivatives.js';
import { withDeidentification, withDerivativeFields } from './sidecar.js';
import { addToTree, setTreeReadOnly, snapshotTree, useTempTrees } from './tree.fixture.js';
import { countsByCode, issueLine, parseValidatorJson, reportSummary, runBidsValidator, validatorExecutable } from './validator.js';

const newTree = useTempTrees();
const scratch = await mkdtemp(path.join(os.tmpdir(), 'micanon-validator-test-'));
afterAll(() => rm(scratch, { recursive: true, force: true }));

/** A tiny but real NIfTI image (8 mm voxels), enough for the validator's header checks. */
function image(file: string): void {
  writeTinyNifti(file, {
    shape: [8, 8, 8],
    sform: [
      [8, 0, 0, -32],
      [0, 8, 0, -32],
      [0, 0, 8, -32],
    ],
    data: new Int16Array(512).fill(100),
  });
}

/** A raw dataset with these images (relative paths) and a participants.tsv. */
async function rawDataset(images: string[]): Promise<string> {
  const root = await newTree({
    README: 'A small dataset made by micanon tests, to see what the official BIDS validator says about it.\n'.repeat(3),
    'participants.tsv': 'participant_id\nsub-01\nsub-02\n',
  });
  for (const rel of images) {
    await addToTree(root, { [rel]: '' });
    image(path.join(root, rel));
  }
  return root;
}

describe('runBidsValidator (the real validator)', () => {
  it('is the venv\'s bids-validator-deno', () => {
    expect(validatorExecutable({ MICANON_VENV: '/opt/v' })).toBe('/opt/v/bin/bids-validator-deno');
  });

  it('validates only the selected participants, through a view that leaves the input untouched', async () => {
    const root = await rawDataset(['sub-01/anat/sub-01_T1w.nii.gz', 'sub-02/anat/sub-02_acq-x_desc-y_T1w.nii.gz']);
    await setTreeReadOnly(root, true);
    const before = await snapshotTree(root);

    const one = await runBidsValidator(root, { participants: ['sub-01'], tempRoot: scratch });
    expect(one).toMatchObject({ validator: expect.stringMatching(/^bids-validator 3\.0\.2 \(schema \d/), dataset: root, participants: ['01'], errors: [] });

    const all = await runBidsValidator(root, { participants: [], tempRoot: scratch });
    expect(all.errors.map((e) => [e.code, e.location])).toContainEqual(['ENTITY_NOT_IN_RULE', '/sub-02/anat/sub-02_acq-x_desc-y_T1w.nii.gz']);
    const line = issueLine(all.errors.find((e) => e.code === 'ENTITY_NOT_IN_RULE')!);
    expect(line).toMatch(/^ENTITY_NOT_IN_RULE \/sub-02\/anat\/sub-02_acq-x_desc-y_T1w\.nii\.gz: .*desc not in rule/);
    expect(reportSummary('the input', all)).toMatch(/^bids-validator 3\.0\.2 \(schema [^)]+\) on the input: [1-9]\d* error\(s\), \d+ warning\(s\)/);

    // Nothing written into the dataset, and the view and deno's cache are gone.
    expect(await snapshotTree(root)).toEqual(before);
    expect(await readdir(scratch)).toEqual([]);
  });

  it('passes the derivative dataset micanon writes (description, sidecars, .bidsignore over QC)', async () => {
    const out = await newTree({ 'dataset_description.json': derivativeDescription(path.join(scratch, 'out'), { version: '0.1.0', sourceRoot: scratch }) }, { bare: true });
    const sidecar = withDerivativeFields(
      withDeidentification({ RepetitionTime: 2.3 }, { method: 'deface', version: '0.1.0', sourceUri: 'bids:raw:sub-01/anat/sub-01_T1w.nii.gz' }),
      'deface',
    );
    await addToTree(out, {
      'sub-01/anat/sub-01_desc-defaced_T1w.json': sidecar,
      'sub-01/figures/sub-01_T1w_deface_front.png': 'png',
      'sub-01.html': '<html></html>',
      'logs/sub-01_micanon.json': '{}',
      '.bidsignore': bidsIgnoreText({ outputDir: out, qcDir: out }),
    });
    image(path.join(out, 'sub-01/anat/sub-01_desc-defaced_T1w.nii.gz'));
    const report = await runBidsValidator(out, { participants: ['01'], tempRoot: scratch });
    expect(report.errors.map(issueLine)).toEqual([]);

    // The same output with the entities out of order is refused, and the file named.
    await addToTree(out, { 'sub-01/anat/sub-01_desc-defaced_acq-x_T1w.json': sidecar });
    image(path.join(out, 'sub-01/anat/sub-01_desc-defaced_acq-x_T1w.nii.gz'));
    const broken = await runBidsValidator(out, { participants: ['01'], tempRoot: scratch });
    expect(broken.errors.map((e) => e.location)).toContain('/sub-01/anat/sub-01_desc-defaced_acq-x_T1w.nii.gz');
  });

  it('says when it is not installed, or gives no report', async () => {
    const root = await rawDataset([]);
    await expect(runBidsValidator(root, { tempRoot: scratch, executable: path.join(scratch, 'none') })).rejects.toMatchObject({
      code: 'BIDS_VALIDATOR_MISSING',
      exitCode: 1,
    });
    const bin = await newTree({ 'bids-validator-deno': '#!/bin/sh\necho "boom" >&2\nexit 2\n' }, { bare: true });
    await chmod(path.join(bin, 'bids-validator-deno'), 0o755);
    await expect(runBidsValidator(root, { tempRoot: scratch, executable: path.join(bin, 'bids-validator-deno') })).rejects.toMatchObject({
      code: 'BIDS_VALIDATOR_FAILED',
      message: expect.stringMatching(/no report on .* \(exit 2\): boom/),
    });
    expect(await readdir(scratch)).toEqual([]);
  });
});

describe('parseValidatorJson', () => {
  it('keeps code, place, field and the validator\'s words, and counts warnings by code', () => {
    const json = JSON.stringify({
      issues: {
        issues: [
          { code: 'JSON_SCHEMA_VALIDATION_ERROR', severity: 'error', location: '/a.json', subCode: 'DeidentificationMethod', issueMessage: 'must be array\n\nField description: ...' },
          { code: 'SIDECAR_KEY_RECOMMENDED', severity: 'warning', location: '/a.nii.gz', subCode: 'Description', issueMessage: 'Field description: Free-form' },
          { code: 'SIDECAR_KEY_RECOMMENDED', severity: 'warning', location: '/b.nii.gz', subCode: 'Description' },
          { code: 'README_FILE_MISSING', severity: 'warning', location: '/dataset_description.json' },
        ],
        codeMessages: {
          JSON_SCHEMA_VALIDATION_ERROR: 'Invalid JSON sidecar file. The sidecar is not formatted according the schema.',
          SIDECAR_KEY_RECOMMENDED: "A data file's JSON sidecar is missing a key listed as recommended.",
        },
      },
      summary: { totalFiles: 4 },
    });
    const parsed = parseValidatorJson(`Some banner\n${json}`)!;
    expect(parsed.errors.map(issueLine)).toEqual(['JSON_SCHEMA_VALIDATION_ERROR /a.json [DeidentificationMethod]: Invalid JSON sidecar file: must be array']);
    expect(issueLine(parsed.warnings[0]!)).toBe("SIDECAR_KEY_RECOMMENDED /a.nii.gz [Description]: A data file's JSON sidecar is missing a key listed as recommended.");
    expect(countsByCode(parsed.warnings)).toBe('SIDECAR_KEY_RECOMMENDED x2, README_FILE_MISSING x1');
    expect(parsed.totalFiles).toBe(4);
    expect(parseValidatorJson('not json')).toBeNull();
  });
});
