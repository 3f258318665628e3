import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { goodRecord } from '../qc/qc.fixture.js';
import { engineInterpreter, pythonSource } from '../paths.js';
import { qcImageReplySchema, qcRecordSchema, qcRepliesSchema, RENDER_VIEWS } from './qc-record.js';

describe('the view names have one definition', () => {
  it("the engine names its render views with exactly the record's view names", () => {
    // python/micanon/qc/seeing.py REPORT_VIEWS: the renderer's view -> the record's name.
    const script = 'import json; from micanon.qc import REPORT_VIEWS; print(json.dumps(list(REPORT_VIEWS.values())))';
    const engine = JSON.parse(execFileSync(engineInterpreter(), ['-c', script], { encoding: 'utf8', env: { ...process.env, PYTHONPATH: pythonSource } })) as string[];
    expect([...engine].sort()).toEqual([...RENDER_VIEWS].sort());
  });
});

describe('one schema for the QC record', () => {
  it('an engine reply must say whether --qc-fail-ok may override each record', () => {
    const record = goodRecord();
    expect(qcRepliesSchema.safeParse({ records: [record] }).success).toBe(false);
    expect(qcRepliesSchema.parse({ records: [{ ...record, hard: false }] }).records[0]!.hard).toBe(false);
    // on disk, records written before the flag existed still read
    expect(qcRecordSchema.safeParse(record).success).toBe(true);
  });

  it('an inherited face verdict names the reference inside bids_dir, or a --t1w from elsewhere by its absolute path', () => {
    const record = goodRecord();
    const face = { ...record.checks.face, pass: false, verdict: 'fail' as const };
    const inherited = (from: string) => ({ ...record, checks: { ...record.checks, face: { ...face, inherited_from: from } } });
    expect(qcRecordSchema.safeParse(inherited('sub-01/anat/sub-01_T1w.nii.gz')).success).toBe(true);
    expect(qcRecordSchema.safeParse(inherited('../sub-01_T1w.nii.gz')).success).toBe(false);
    const referenced = (input: string) => ({ ...record, reference: { input, reason: '--t1w' } });
    expect(qcRecordSchema.safeParse(referenced('sub-01/anat/sub-01_T1w.nii.gz')).success).toBe(true);
    expect(qcRecordSchema.safeParse(referenced('/scans/other/sub-01_T1w.nii.gz')).success).toBe(true);
    expect(qcRecordSchema.safeParse(referenced('../sub-01_T1w.nii.gz')).success).toBe(false);
  });

  it('micanon qc of an image alone: the same record, its unanswerable checks not checked', () => {
    const record = goodRecord({ method: 'reface' });
    const notChecked = { verdict: 'not_checked', pass: null, detail: 'no original' };
    const alone = {
      ...record,
      input: null,
      output: 'sub-01_T1w_refaced.nii.gz',
      checks: {
        ...record.checks,
        brain_voxels_changed: notChecked,
        header: notChecked,
        face: { ...notChecked, rule: 'identity distance to the original' },
        identity: notChecked,
        registration: { ...record.checks.registration, check: null },
      },
      standalone: { image: '/data/x.nii.gz', original: null, atlas: '/atlas', registered: 'x.nii.gz' },
    };
    expect(qcImageReplySchema.parse({ record: alone }).record.checks.header).toEqual(notChecked);
    // a pipeline record never has a check that was not run
    expect(qcRecordSchema.safeParse({ ...alone, input: record.input }).success).toBe(false);
  });
});
