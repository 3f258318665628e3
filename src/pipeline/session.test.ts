import { describe, expect, it } from 'vitest';
import { commitPolicy, type QcVerdict } from './session.js';

const passed: QcVerdict = { status: 'PASS', reason: null, hard: false };
const faceFailed: QcVerdict = { status: 'FAILED', reason: 'reface: distance 0.2 <= 0.4', hard: false };
const brainFailed: QcVerdict = { status: 'FAILED', reason: '3 brain voxels changed', hard: true };

describe('the commit policy applies the engine verdict, it does not judge', () => {
  it('writes a passed output, refuses a failed one', () => {
    expect(commitPolicy(null, passed, false)).toEqual({ refused: null, writtenDespite: null });
    expect(commitPolicy(null, faceFailed, false)).toEqual({ refused: 'QC FAILED: reface: distance 0.2 <= 0.4', writtenDespite: null });
  });

  it('--qc-fail-ok writes a failure the engine did not call hard, and says which', () => {
    expect(commitPolicy(null, faceFailed, true)).toEqual({ refused: null, writtenDespite: 'QC FAILED: reface: distance 0.2 <= 0.4' });
    expect(commitPolicy(null, brainFailed, true)).toEqual({ refused: 'QC FAILED: 3 brain voxels changed', writtenDespite: null });
  });

  it('an engine rejection or a missing verdict always refuses', () => {
    expect(commitPolicy('2 brain voxels differ from the input', passed, true).refused).toBe('2 brain voxels differ from the input');
    expect(commitPolicy(null, undefined, true).refused).toBe('QC returned no verdict for this output');
  });
});
