import { describe, expect, it } from 'vitest';
import { goodRecord } from '../qc/qc.fixture.js';
import type { QcRecord } from '../qc/records.js';
import { inheritReferenceFaceVerdict } from './session.js';

const T1W = 'sub-01/ses-01/anat/sub-01_ses-01_T1w.nii.gz';
const PDW = 'sub-01/ses-01/anat/sub-01_ses-01_PDw.nii.gz';

function inconclusive(method: QcRecord['method']): QcRecord {
  const record = goodRecord({ input: PDW, method });
  record.checks.face = { pass: true, verdict: 'inconclusive', rule: 'inconclusive', detail: 'no face in the input' };
  return record;
}

function reference(method: QcRecord['method'], facePass: boolean): QcRecord {
  const record = goodRecord({ input: T1W, method, status: facePass ? 'PASS' : 'FAILED' });
  record.checks.face = { pass: facePass, verdict: facePass ? 'pass' : 'fail', rule: 'identity', detail: '' };
  return record;
}

describe('an inconclusive face check inherits the reference verdict', () => {
  it('fails an image whose reference failed by the same method', () => {
    const pdw = inconclusive('warpface');
    inheritReferenceFaceVerdict(pdw, [reference('warpface', false), pdw], T1W);
    expect([pdw.status, pdw.checks.face.pass, pdw.checks.face.verdict, pdw.output]).toEqual(['FAILED', false, 'fail', null]);
    expect(pdw.reason).toBe('warpface: inconclusive here, and the reference (sub-01_ses-01_T1w.nii.gz) still shows the person after warpface');
  });

  it('keeps it when the reference passed, or failed only by another method', () => {
    const passed = inconclusive('warpface');
    inheritReferenceFaceVerdict(passed, [reference('warpface', true), passed], T1W);
    expect(passed.status).toBe('PASS');
    const other = inconclusive('deface');
    inheritReferenceFaceVerdict(other, [reference('warpface', false), other], T1W);
    expect(other.status).toBe('PASS');
  });

  it('never touches a conclusive check or the reference itself', () => {
    const conclusive = goodRecord({ input: PDW, method: 'reface' });
    inheritReferenceFaceVerdict(conclusive, [reference('reface', false), conclusive], T1W);
    expect(conclusive.status).toBe('PASS');
  });
});
