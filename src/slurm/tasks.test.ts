import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { useTempTrees } from '../bids/tree.fixture.js';
import { runConfigSchema } from '../config.js';
import { planTasks } from './tasks.js';

const tree = useTempTrees();

const output = (subject: string, session: string | null, written: boolean, reason: string | null = null) => ({
  subject,
  session,
  method: 'deface',
  status: written ? 'ok' : 'failed',
  written,
  output: written ? `sub-${subject}/${session ? `ses-${session}/` : ''}anat/defaced.nii.gz` : null,
  reason,
});
const record = (outputs: object[], methods = ['deface']) => ({ methods, outputLayout: 'derivatives', outputs });

describe('which participants a rerun submits', () => {
  it('only those whose run record is missing, failed, older in method, or whose output is gone', async () => {
    const bids = await tree({
      'sub-01/anat/sub-01_T1w.nii.gz': 'x',
      'sub-02/anat/sub-02_T1w.nii.gz': 'x',
      'sub-03/anat/sub-03_T1w.nii.gz': 'x',
      'sub-04/anat/sub-04_T1w.nii.gz': 'x',
      'sub-05/ses-a/anat/sub-05_ses-a_T1w.nii.gz': 'x',
      'sub-05/ses-b/anat/sub-05_ses-b_T1w.nii.gz': 'x',
      'derivatives/m/logs/sub-01_micanon.json': record([output('01', null, true)]),
      'derivatives/m/sub-01/anat/defaced.nii.gz': 'x',
      'derivatives/m/logs/sub-02_micanon.json': record([output('02', null, false, 'QC failed: face left')]),
      'derivatives/m/logs/sub-03_micanon.json': record([output('03', null, true)]),
      'derivatives/m/logs/sub-05_ses-a_micanon.json': record([output('05', 'a', true)]),
      'derivatives/m/sub-05/ses-a/anat/defaced.nii.gz': 'x',
    });
    const config = runConfigSchema.parse({ bidsDir: bids, outputDir: path.join(bids, 'derivatives', 'm'), analysisLevel: 'participant', atlas: bids });
    const plan = await planTasks(config, false);
    expect(plan.done).toEqual([{ subject: '01', session: null }]);
    expect(plan.pending).toEqual([
      { subject: '02', session: null, reason: 'deface not written: QC failed: face left' },
      { subject: '03', session: null, reason: 'sub-03/anat/defaced.nii.gz missing from output_dir' },
      { subject: '04', session: null, reason: 'no run record yet' },
      { subject: '05', session: null, reason: 'ses-b: no run record yet' },
    ]);
    const bySession = await planTasks(config, true);
    expect(bySession.pending.map((t) => `${t.subject}/${t.session}`)).toEqual(['02/null', '03/null', '04/null', '05/b']);
    const reface = await planTasks({ ...config, methods: ['deface', 'reface'] }, false);
    expect(reface.pending[0]).toEqual({ subject: '01', session: null, reason: 'method reface not run yet' });
  });
});
