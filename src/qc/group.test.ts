import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { GROUP_TSV_COLUMNS, groupReportPath, groupTsv, groupTsvPath, writeGroupReport } from './group.js';
import { brokenLinks, failedRecord, goodRecord, useTempDirs, writeOutputDir } from './qc.fixture.js';
import { readQcRecords } from './records.js';
import { outputAnchor, writeParticipantReport } from './report.js';

const newDir = useTempDirs();

function datasetRecords() {
  return [
    goodRecord({ subject: '01', method: 'deface' }),
    goodRecord({ subject: '01', method: 'reface' }),
    failedRecord({ subject: '02', session: null, method: 'warpface' }),
    goodRecord({ subject: '10', session: null, method: 'reface' }),
  ];
}

const tsvRows = (text: string) => text.trimEnd().split('\n').map((line) => line.split('\t'));

describe('groupTsv', () => {
  it('has the documented columns and one row per output, n/a where there is no value', () => {
    const rows = tsvRows(groupTsv(datasetRecords()));
    expect(rows[0]).toEqual([...GROUP_TSV_COLUMNS]);
    expect(rows.slice(1)).toEqual([
      ['01', '01', 'sub-01/ses-01/anat/sub-01_ses-01_T1w.nii.gz', 'deface', 'PASS', '0', 'true', 'n/a', 'n/a', 'ok', 'true'],
      ['01', '01', 'sub-01/ses-01/anat/sub-01_ses-01_T1w.nii.gz', 'reface', 'PASS', '0', 'true', '0.612', '0.4', 'ok', 'true'],
      ['02', 'n/a', 'sub-02/anat/sub-02_T1w.nii.gz', 'warpface', 'FAILED', '0', 'false', '0.31', '0.4', 'poor', 'true'],
      ['10', 'n/a', 'sub-10/anat/sub-10_T1w.nii.gz', 'reface', 'PASS', '0', 'true', '0.612', '0.4', 'ok', 'true'],
    ]);
  });

  it('keeps one line per row when a file name holds a tab or a line break', () => {
    const rows = tsvRows(groupTsv([goodRecord({ input: 'sub-01/ses-01/anat/sub-01_ses-01_acq-a\tb\nc_T1w.nii.gz' })]));
    expect(rows).toHaveLength(2);
    expect(rows[1]).toHaveLength(GROUP_TSV_COLUMNS.length);
  });
});

describe('writeGroupReport', () => {
  it('writes the TSV and a page with one row per output, FAILED first, linking to participant pages', async () => {
    const out = await newDir();
    const records = datasetRecords();
    await writeOutputDir(out, records);
    for (const subject of ['01', '02']) await writeParticipantReport(out, subject, records); // sub-10 has no page yet

    const written = await writeGroupReport(out);
    expect(written).toEqual({ html: groupReportPath(out), tsv: groupTsvPath(out), attackTsvs: [], records: 4, unreadable: 0 });
    expect(tsvRows(await readFile(groupTsvPath(out), 'utf8'))).toHaveLength(1 + records.length);

    const page = await readFile(groupReportPath(out), 'utf8');
    const table = page.slice(page.indexOf('<table class="outputs"'));
    const rows = table.split('<tr class="').slice(1);
    expect(rows).toHaveLength(records.length);
    expect(rows[0]).toMatch(/^failed"/);
    expect(rows[0]).toContain(`sub-02.html#${outputAnchor(records[2]!)}`);
    expect(rows[0]).toContain('<span class="badge fail">FAILED</span>');
    expect(rows.slice(1).map((row) => row.startsWith('passed"'))).toEqual([true, true, true]);
    expect(rows[3]).toContain('<span class="muted">no page</span>');
    // Every link resolves: participant pages exist and carry the anchors.
    expect(await brokenLinks(out, page)).toEqual([]);
    expect(page).not.toMatch(/<script|https?:\/\//i);
  });

  it('writes an existing participant page again from all its sessions (sessions run as parallel tasks)', async () => {
    const out = await newDir();
    const a = goodRecord({ subject: '01', session: 'a', method: 'deface' });
    const b = goodRecord({ subject: '01', session: 'b', method: 'deface' });
    await writeOutputDir(out, [a, b]);
    // The session that finished last rewrote the page before the other's record was on disk.
    await writeParticipantReport(out, '01', [b]);
    expect(await readFile(path.join(out, 'sub-01.html'), 'utf8')).not.toContain(outputAnchor(a));
    await writeGroupReport(out);
    const page = await readFile(path.join(out, 'sub-01.html'), 'utf8');
    expect(page).toContain(outputAnchor(a));
    expect(page).toContain(outputAnchor(b));
  });

  it('lists unreadable records and still writes the rest', async () => {
    const out = await newDir();
    await writeOutputDir(out, [goodRecord()]);
    await mkdir(path.join(out, 'logs', 'qc'), { recursive: true });
    await writeFile(path.join(out, 'logs', 'qc', 'sub-03_T1w_deface.json'), '{"subject": "03"}');
    const written = await writeGroupReport(out);
    expect(written.records).toBe(1);
    expect(written.unreadable).toBe(1);
    const page = await readFile(written.html, 'utf8');
    expect(page).toContain('QC records that could not be read');
    expect(page).toContain('sub-03_T1w_deface.json');
    expect((await readQcRecords(out)).records).toHaveLength(1);
  });

  it('writes an empty summary for an output folder without QC records', async () => {
    const out = await newDir();
    const written = await writeGroupReport(out);
    expect(await readFile(written.tsv, 'utf8')).toBe(`${GROUP_TSV_COLUMNS.join('\t')}\n`);
    expect(await readFile(written.html, 'utf8')).toContain('No QC records found');
  });
});
