import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { failedRecord, goodRecord, useTempDirs } from './qc.fixture.js';
import { compareFailedFirst, qcRecordPath, qcRecordSchema, readQcRecords, writeQcRecord } from './records.js';

const newDir = useTempDirs();

describe('qcRecordSchema', () => {
  it('accepts a good record and keeps extra keys', () => {
    const record = { ...goodRecord(), engine_version: '0.1.0' };
    const parsed = qcRecordSchema.parse(record);
    expect(parsed.checks.identity?.distance).toBe(0.612);
    expect((parsed as Record<string, unknown>).engine_version).toBe('0.1.0');
    expect(qcRecordSchema.safeParse(goodRecord({ method: 'deface', session: null })).success).toBe(true);
    expect(qcRecordSchema.safeParse(failedRecord()).success).toBe(true);
  });

  it('accepts a record with missing renders (the report shows placeholders)', () => {
    const record = goodRecord();
    expect(qcRecordSchema.safeParse({ ...record, renders: { input: {}, output: { front: 'f.png' }, slices: {} } }).success).toBe(true);
  });

  it.each([
    ['an unknown status', (r: any) => ({ ...r, status: 'ok' })],
    ['an unknown method', (r: any) => ({ ...r, method: 'blur' })],
    ['a subject that is not a BIDS label', (r: any) => ({ ...r, subject: '../01' })],
    ['a missing face check', (r: any) => ({ ...r, checks: { ...r.checks, face: undefined } })],
    ['a negative brain voxel count', (r: any) => ({ ...r, checks: { ...r.checks, brain_voxels_changed: { value: -1, guard_voxels: 1, pass: true } } })],
    ['a pass that is a string', (r: any) => ({ ...r, checks: { ...r.checks, header: { pass: 'yes', differences: [] } } })],
    ['an absolute render path', (r: any) => ({ ...r, renders: { ...r.renders, input: { front: '/etc/passwd' } } })],
    ['a render path leaving the output folder', (r: any) => ({ ...r, renders: { ...r.renders, slices: { masks_overlay: 'sub-01/../../x.png' } } })],
    ['a URL as render path', (r: any) => ({ ...r, renders: { ...r.renders, output: { front: 'https://example.org/x.png' } } })],
    ['a registration flag outside ok/poor', (r: any) => ({ ...r, checks: { ...r.checks, registration: { metric: 'mi', value: 1, flag: 'bad', pass: true } } })],
  ])('rejects %s', (_what, spoil) => {
    expect(qcRecordSchema.safeParse(spoil(goodRecord())).success).toBe(false);
  });
});

describe('qcRecordPath', () => {
  it('names one file per (input, method) under logs/qc, starting with the session name', () => {
    expect(qcRecordPath('/out', goodRecord())).toBe('/out/logs/qc/sub-01_ses-01_T1w_reface.json');
    expect(qcRecordPath('/out', goodRecord({ method: 'deface' }))).toBe('/out/logs/qc/sub-01_ses-01_T1w_deface.json');
    expect(qcRecordPath('/out', goodRecord({ session: null, input: 'sub-01/anat/sub-01_acq-mp2_run-2_T1w.nii.gz' }))).toBe(
      '/out/logs/qc/sub-01_acq-mp2_run-2_T1w_reface.json',
    );
  });

  it('makes unsafe input names safe and still unique', () => {
    const a = path.basename(qcRecordPath('/out', goodRecord({ input: 'sub-01/ses-01/anat/sub-01_ses-01_acq-<a>_T1w.nii.gz' })));
    const b = path.basename(qcRecordPath('/out', goodRecord({ input: 'sub-01/ses-01/anat/sub-01_ses-01_acq-<b>_T1w.nii.gz' })));
    expect(a).toMatch(/^sub-01_ses-01_[A-Za-z0-9_-]+_reface\.json$/);
    expect(a).not.toBe(b);
  });
});

describe('readQcRecords', () => {
  it('reads back what writeQcRecord wrote, per subject (sub-01 does not pick up sub-010)', async () => {
    const out = await newDir();
    await writeQcRecord(out, goodRecord());
    await writeQcRecord(out, failedRecord({ method: 'warpface' }));
    await writeQcRecord(out, goodRecord({ subject: '010' }));
    const one = await readQcRecords(out, '01');
    expect(one.unreadable).toEqual([]);
    expect(one.records.map((r) => [r.subject, r.method, r.status])).toEqual([
      ['01', 'reface', 'PASS'],
      ['01', 'warpface', 'FAILED'],
    ]);
    expect((await readQcRecords(out)).records).toHaveLength(3);
    expect(await readdir(path.join(out, 'logs', 'qc'))).toHaveLength(3); // no temporary files left
  });

  it('reports unreadable files with a reason instead of dropping them', async () => {
    const out = await newDir();
    const qc = path.join(out, 'logs', 'qc');
    await mkdir(qc, { recursive: true });
    await writeFile(path.join(qc, 'sub-01_broken.json'), '{ not json');
    await writeFile(path.join(qc, 'sub-01_ses-01_T1w_reface.json'), JSON.stringify({ ...goodRecord(), status: 'maybe' }));
    await writeFile(path.join(qc, 'sub-01_other.json'), JSON.stringify(goodRecord({ subject: '02' })));
    await writeFile(path.join(qc, '.sub-01_x.micanon-tmp-1-abcd.json'), 'partial'); // a writer's temp: ignored
    await writeFile(path.join(qc, 'README.txt'), 'ignored');
    const { records, unreadable } = await readQcRecords(out);
    expect(records).toEqual([]);
    expect(unreadable.map((u) => u.file).sort()).toEqual(
      ['sub-01_broken.json', 'sub-01_other.json', 'sub-01_ses-01_T1w_reface.json'].map((f) => path.join('logs', 'qc', f)),
    );
    expect(unreadable.find((u) => u.file.endsWith('reface.json'))!.reason).toMatch(/^status: /);
    expect(unreadable.find((u) => u.file.endsWith('other.json'))!.reason).toMatch(/does not match/);
    expect(JSON.parse(await readFile(path.join(qc, 'sub-01_other.json'), 'utf8')).subject).toBe('02');
  });

  it('reads a missing folder as no records', async () => {
    expect(await readQcRecords(path.join(await newDir(), 'nothing-here'))).toEqual({ records: [], unreadable: [] });
  });

  it('rejects a subject filter that is not a BIDS label', async () => {
    await expect(readQcRecords(await newDir(), '.*')).rejects.toThrow();
  });
});

describe('compareFailedFirst', () => {
  it('puts FAILED before PASS, then subject, session, input, method', () => {
    const rows = [goodRecord({ subject: '02' }), goodRecord({ method: 'deface' }), failedRecord({ subject: '03' }), goodRecord({ subject: '10' })];
    expect(rows.sort(compareFailedFirst).map((r) => `${r.status} ${r.subject} ${r.method}`)).toEqual([
      'FAILED 03 reface',
      'PASS 01 deface',
      'PASS 02 reface',
      'PASS 10 reface',
    ]);
  });
});
