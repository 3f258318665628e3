import { chmod, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkDataset, findBidsValidator, runExternalValidator } from './validate.js';
import { DESCRIPTION, setTreeReadOnly, snapshotTree, type TreeSpec, useTempTrees } from './tree.fixture.js';

const newTree = useTempTrees();
const tree = (spec: TreeSpec): Promise<string> => newTree(spec, { bare: true });

describe('checkDataset', () => {
  it('passes a minimal valid dataset', async () => {
    const root = await tree({ 'dataset_description.json': DESCRIPTION, 'sub-01/anat/sub-01_T1w.nii.gz': 'x' });
    expect(await checkDataset(root, [path.join(root, 'sub-01/anat/sub-01_T1w.nii.gz')])).toEqual([]);
  });

  it('reports a missing description, missing fields, no subjects and bad names', async () => {
    const bare = await tree({ README: 'x' });
    expect((await checkDataset(bare)).map((p) => p.code)).toEqual(['DATASET_DESCRIPTION_MISSING', 'NO_SUBJECT_FOLDERS']);

    const root = await tree({ 'dataset_description.json': { Name: 'x' }, 'sub-01/anat/sub-01_MP2RAGE.nii.gz': 'x' });
    const problems = await checkDataset(root, [path.join(root, 'sub-01/anat/sub-01_MP2RAGE.nii.gz')]);
    expect(problems).toEqual([
      expect.objectContaining({ code: 'DATASET_DESCRIPTION_FIELD_MISSING', message: expect.stringMatching(/BIDSVersion/), severity: 'error' }),
      expect.objectContaining({ code: 'ANAT_NAME_INVALID', message: 'sub-01_MP2RAGE.nii.gz: MP2RAGE requires inv-<index>' }),
    ]);

    const broken = await tree({ 'dataset_description.json': '{', 'sub-01/anat/sub-01_T1w.nii': 'x' });
    expect((await checkDataset(broken))[0]).toMatchObject({ code: 'DATASET_DESCRIPTION_INVALID', path: path.join(broken, 'dataset_description.json') });
  });
});

/**
 * A stand-in bids-validator: records the dataset it was shown (following links) and its
 * arguments, and reports one error when the dataset holds sub-02.
 */
const FAKE_VALIDATOR = `#!/usr/bin/env node
const fs = require('node:fs');
const path = require('node:path');
const args = process.argv.slice(2);
const root = args[0];
const seen = [];
const walk = (d) => { for (const n of fs.readdirSync(d)) { const f = path.join(d, n); if (fs.statSync(f).isDirectory()) walk(f); else seen.push(path.relative(root, f)); } };
walk(root);
const config = JSON.parse(fs.readFileSync(args[args.indexOf('--config') + 1], 'utf8'));
fs.writeFileSync(process.env.FAKE_RECORD, JSON.stringify({ args, seen: seen.sort(), config }));
const issues = seen.some((f) => f.startsWith('sub-02')) ? [{ code: 'NOT_INCLUDED', severity: 'error', location: '/sub-02/anat/bad.nii.gz' }] : [];
issues.push({ code: 'README_FILE_MISSING', severity: 'warning', location: '/README' });
process.stdout.write(JSON.stringify({ issues: { issues, codeMessages: {} }, summary: {} }));
process.exit(issues.some((i) => i.severity === 'error') ? 16 : 0);
`;

describe('runExternalValidator', () => {
  it('says it did not run when no bids-validator is installed', async () => {
    const empty = await tree({});
    expect(await findBidsValidator(empty, { PATH: empty })).toBeNull();
    const verdict = await runExternalValidator(empty, [], { searchFrom: empty, env: { PATH: empty } });
    expect(verdict).toEqual({ ran: false, reason: expect.stringMatching(/not installed/) });
  });

  it('validates only the selected participants, through a temporary view, leaving the input untouched', async () => {
    const root = await tree({
      'dataset_description.json': DESCRIPTION,
      'participants.tsv': 'participant_id\nsub-01\nsub-02\n',
      'sub-01/anat/sub-01_T1w.nii.gz': 'x',
      'sub-02/anat/bad.nii.gz': 'x',
      'derivatives/x/dataset_description.json': '{}',
    });
    const bin = await tree({ 'node_modules/.bin/bids-validator': FAKE_VALIDATOR });
    const binary = path.join(bin, 'node_modules/.bin/bids-validator');
    await chmod(binary, 0o755);
    const record = path.join(bin, 'record.json');
    await setTreeReadOnly(root, true);
    const before = await snapshotTree(root);

    expect(await findBidsValidator(path.join(bin, 'node_modules'), { PATH: '' })).toBe(binary);
    const env = { ...process.env, FAKE_RECORD: record };
    const one = await runExternalValidator(root, ['sub-01'], { searchFrom: bin, env });
    const shown = JSON.parse(await readFile(record, 'utf8'));
    expect(shown.seen).toEqual(['dataset_description.json', 'participants.tsv', 'sub-01/anat/sub-01_T1w.nii.gz']);
    expect(shown.args).toContain('--json');
    expect(shown.config).toEqual({ ignore: [{ code: 'PARTICIPANT_ID_MISMATCH' }] });
    expect(one).toMatchObject({ ran: true, valid: true, errors: 0, warnings: 1 });

    const all = await runExternalValidator(root, [], { binary, env });
    expect(all).toMatchObject({ ran: true, valid: false, errors: 1, issues: [{ code: 'NOT_INCLUDED', location: '/sub-02/anat/bad.nii.gz' }] });

    // The view is gone and the dataset unchanged.
    const viewDir = path.dirname(shown.args[0]);
    await expect(readFile(path.join(viewDir, 'validator-config.json'))).rejects.toThrow();
    expect(await snapshotTree(root)).toEqual(before);
  });

  it('reports a validator that prints no JSON as not run, with its message', async () => {
    const bin = await tree({ 'bids-validator': '#!/bin/sh\necho "boom" >&2\nexit 2\n' });
    await chmod(path.join(bin, 'bids-validator'), 0o755);
    const root = await tree({ 'dataset_description.json': DESCRIPTION });
    const verdict = await runExternalValidator(root, [], { binary: path.join(bin, 'bids-validator') });
    expect(verdict).toEqual({ ran: false, reason: expect.stringMatching(/no JSON report \(exit 2\): boom/) });
  });
});
