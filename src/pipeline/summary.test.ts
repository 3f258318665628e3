import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readBidsFilterFile } from '../bids/filters.js';
import { runConfigSchema } from '../config.js';
import { sessionTimeLine, summaryLine, summaryTable, writeRunSummary } from './summary.js';
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

  it('writes the resolved configuration, every default filled in, into the run record', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'micanon-record-'));
    const filter = path.join(root, 'filter.json');
    writeFileSync(filter, JSON.stringify({ t1w: { acquisition: 'mprage' } }));
    const config = runConfigSchema.parse({
      bidsDir: path.join(root, 'bids'),
      outputDir: path.join(root, 'out'),
      analysisLevel: 'participant',
      excludeSessionLabels: ['ses-b'],
      bidsFilters: readBidsFilterFile(filter),
    });
    mkdirSync(path.join(root, 'out', 'logs'), { recursive: true });
    await writeRunSummary(config, [record({ input: path.join(root, 'bids', 'sub-A', 'ses-01', 'anat', 'sub-A_ses-01_T1w.nii.gz') })], new Date());
    const body = JSON.parse(readFileSync(path.join(root, 'out', 'logs', 'sub-A_ses-01_micanon.json'), 'utf8')) as { configuration: Record<string, unknown> };
    expect(body.configuration).toMatchObject({
      bidsDir: path.join(root, 'bids'),
      methods: ['deface'],
      dilate: 6,
      seed: 1,
      outputLayout: 'derivatives',
      excludeSessionLabels: ['b'],
      participantLabels: null,
      bidsFilters: { file: filter, kinds: { t1w: { entities: { acquisition: 'mprage' }, regex: false } } },
      qcDir: path.join(root, 'out'),
    });
  });

  it("gives a warpface row its face warp's reach and smallest Jacobian, and other rows none", async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'micanon-record-'));
    const config = runConfigSchema.parse({ bidsDir: path.join(root, 'bids'), outputDir: path.join(root, 'out'), analysisLevel: 'participant' });
    mkdirSync(path.join(root, 'out', 'logs'), { recursive: true });
    const input = path.join(root, 'bids', 'sub-A', 'ses-01', 'anat', 'sub-A_ses-01_T1w.nii.gz');
    const engine = (method: 'reface' | 'warpface') => ({
      input, method, output: '/work/x.nii.gz', brain_voxels_changed: 0, guard_voxels: 10, registered: true, dtype: 'int16', seconds: 1,
      ...(method === 'warpface' ? { warp: { max_mm: 18.04, min_jacobian: 0.097 } } : {}),
    });
    await writeRunSummary(config, [record({ input, method: 'reface', engine: engine('reface') }), record({ input, method: 'warpface', engine: engine('warpface') })], new Date());
    const body = JSON.parse(readFileSync(path.join(root, 'out', 'logs', 'sub-A_ses-01_micanon.json'), 'utf8')) as { outputs: Array<Record<string, unknown>> };
    expect(body.outputs.map((o) => o.warp)).toEqual([undefined, { max_mm: 18.04, min_jacobian: 0.097 }]);
  });
});
