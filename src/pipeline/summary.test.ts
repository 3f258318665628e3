import { describe, expect, it } from 'vitest';
import { sessionTimeLine, summaryLine, summaryTable } from './summary.js';
import type { OutputRecord } from './session.js';

function record(fields: Partial<OutputRecord>): OutputRecord {
  return {
    subject: 'A',
    session: '01',
    input: '/bids/sub-A/ses-01/anat/sub-A_ses-01_T1w.nii.gz',
    method: 'deface',
    status: 'ok',
    written: true,
    output: '/out/x.nii.gz',
    reason: null,
    brainVoxelsChanged: 0,
    methodSeconds: 0.4,
    engine: null,
    ...fields,
  };
}

describe('the run summary', () => {
  it('counts outputs written although they failed QC (--qc-fail-ok), and each such row says FAILED', () => {
    const failedWritten = record({ status: 'failed', written: true, method: 'reface', reason: 'QC FAILED: x (written because of --qc-fail-ok)' });
    const records = [record({}), ...Array.from({ length: 6 }, () => failedWritten), record({}), record({})];
    expect(summaryLine(records)).toBe('9 written, 6 of them failed QC and were written because of --qc-fail-ok; 0 failed and not written');
    expect(summaryTable(records)[2]).toMatch(/reface +FAILED +yes +0 +0\.4 +QC FAILED/);
    expect(summaryLine([record({}), record({ status: 'failed', written: false, output: null })])).toBe('1 written; 1 failed and not written');
  });

  it('says what its time column measures, and gives each session its wall clock', () => {
    expect(summaryTable([record({})])[0]).toMatch(/method_s/);
    expect(sessionTimeLine('sub-A_ses-01', { wall: 45.04, t1w_to_atlas: 20.2, deface: 0.4, qc: 12.31, session: 30 })).toBe(
      'sub-A_ses-01: 45.0 s wall clock (stages, s: t1w_to_atlas 20.2, deface 0.4, qc 12.3)',
    );
  });
});
