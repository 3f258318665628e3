import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { brokenLinks, failedRecord, goodRecord, useTempDirs, writeOutputDir } from './qc.fixture.js';
import { outputAnchor, participantReportHtml, participantReportPath, writeParticipantReport } from './report.js';
import { RENDER_VIEWS, SLICE_FIGURES, type QcRecord } from './records.js';

const newDir = useTempDirs();

/** Two sessions, three methods, one FAILED output in the second session. */
function sessionRecords(): QcRecord[] {
  return [
    goodRecord({ method: 'deface' }),
    goodRecord({ method: 'reface' }),
    goodRecord({ session: '02', method: 'reface' }),
    failedRecord({ session: '02', method: 'warpface' }),
    goodRecord({ session: '02', method: 'deface', input: 'sub-01/ses-02/anat/sub-01_ses-02_PDw.nii.gz' }),
  ];
}

async function writtenPage(records: QcRecord[], skip: ReadonlySet<string> = new Set()): Promise<{ out: string; page: string }> {
  const out = await newDir();
  await writeOutputDir(out, records, skip);
  const file = await writeParticipantReport(out, '01', records);
  expect(file).toBe(participantReportPath(out, '01'));
  return { out, page: await readFile(file, 'utf8') };
}

describe('writeParticipantReport', () => {
  it('shows every output once, with its own section', async () => {
    const records = sessionRecords();
    const { page } = await writtenPage(records);
    for (const record of records) {
      expect(page.split(`id="${outputAnchor(record)}"`)).toHaveLength(2);
    }
    expect(page.match(/<section class="card/g)).toHaveLength(records.length);
    expect(page).toContain('Session 01');
    expect(page).toContain('Session 02');
    expect(page).toContain('sub-01_ses-02_PDw.nii.gz');
  });

  it('lists FAILED outputs first and marks them', async () => {
    const records = sessionRecords();
    const { page } = await writtenPage(records);
    const failed = records.find((r) => r.status === 'FAILED')!;
    // The overview table: its first row is the FAILED output.
    const overview = page.slice(page.indexOf('<table class="overview"'), page.indexOf('</table>', page.indexOf('<table class="overview"')));
    const rows = overview.split('<tr class="').slice(1);
    expect(rows).toHaveLength(records.length);
    expect(rows[0]).toMatch(/^failed"/);
    expect(rows[0]).toContain(`#${outputAnchor(failed)}`);
    expect(rows.slice(1).every((row) => row.startsWith('passed"'))).toBe(true);
    // The alert at the top names it, and its card is marked.
    expect(page.indexOf('1 output(s) FAILED QC')).toBeLessThan(page.indexOf('<table class="overview"'));
    expect(page).toContain(`<section class="card failed" id="${outputAnchor(failed)}">`);
    expect(page).toContain('a face is still recognised in the front view');
    expect(page).toContain('output not written');
  });

  it('says "written (--qc-fail-ok)" for a FAILED output that was written anyway', async () => {
    const written = failedRecord({ output: 'sub-01/anat/sub-01_desc-refaced_T1w.nii.gz', method: 'reface' });
    const { page } = await writtenPage([written, goodRecord({ method: 'deface' })]);
    expect(page).toContain('sub-01/anat/sub-01_desc-refaced_T1w.nii.gz · written (--qc-fail-ok)');
    expect(page).toContain('1 output(s) FAILED QC</b> (0 not written, 1 written (--qc-fail-ok))');
    expect(page).not.toContain('output not written');
  });

  it('says so when every output passed', async () => {
    const { page } = await writtenPage([goodRecord()]);
    expect(page).toContain('All 1 output(s) passed QC.');
    expect(page).not.toContain('FAILED QC');
  });

  it('shows user file names as text, never as markup', async () => {
    const evil = 'sub-01/ses-01/anat/sub-01_ses-01_acq-<script>alert(1)</script>_T1w.nii.gz';
    const record = goodRecord({ input: evil });
    record.renders.input.front = 'sub-01/figures/"><img src=y onerror=alert(2)> #1?.png';
    record.checks.header.differences = ['<img src=x onerror=alert(3)>'];
    const { out, page } = await writtenPage([record]);
    expect(page).not.toMatch(/<script/i);
    expect(page).not.toMatch(/<img src=[xy]/);
    expect(page).toContain('sub-01_ses-01_acq-&lt;script&gt;alert(1)&lt;/script&gt;_T1w.nii.gz');
    expect(page).toContain('&lt;img src=x onerror=alert(3)&gt;');
    // The odd render name is still a working link.
    expect(page).toContain('sub-01/figures/%22%3E%3Cimg%20src%3Dy%20onerror%3Dalert(2)%3E%20%231%3F.png');
    expect(await brokenLinks(out, page)).toEqual([]);
  });

  it('links only to files that exist, and shows placeholders for missing renders', async () => {
    const record = failedRecord();
    const missing = record.renders.output.left!;
    delete record.renders.output.high;
    delete record.renders.slices.registration_overlay;
    const { out, page } = await writtenPage([record, goodRecord({ method: 'deface' })], new Set([missing]));
    expect(await brokenLinks(out, page)).toEqual([]);
    expect(page).not.toContain(missing);
    expect(page).toContain('render file missing');
    expect(page.match(/<span>not rendered<\/span>/g)).toHaveLength(2);
    // Every existing render is shown: every view x 2 rows + 4 slices per output, minus the three gaps.
    expect(page.match(/<img /g)).toHaveLength(2 * (2 * RENDER_VIEWS.length + SLICE_FIGURES.length) - 3);
  });

  it('shows the atlas face in the input\'s camera as a third row when QC rendered it', async () => {
    const base = goodRecord({ method: 'reface' });
    const atlas = Object.fromEntries(Object.keys(base.renders.input).map((view) => [view, `sub-01/figures/sub-01_T1w_atlas_${view}.png`]));
    const { out, page } = await writtenPage([{ ...base, renders: { ...base.renders, atlas } }, goodRecord({ method: 'deface' })]);
    expect(await brokenLinks(out, page)).toEqual([]);
    expect(page.match(/<div class="row-label">Atlas<\/div>/g)).toHaveLength(1);
    for (const file of Object.values(atlas)) expect(page).toContain(file);
  });

  it('is self-contained: no script, no external resource, and no temporary file left', async () => {
    const { out, page } = await writtenPage(sessionRecords());
    expect(page).not.toMatch(/<script|<link|@import|https?:\/\//i);
    expect(page).toContain('Content-Security-Policy');
    expect((await readdir(out)).filter((name) => name.startsWith('.'))).toEqual([]);
  });

  it('shows the identity distance against its threshold, and n/a for deface', async () => {
    const { page } = await writtenPage([goodRecord(), failedRecord({ method: 'warpface' }), goodRecord({ method: 'deface' })]);
    expect(page).toContain('0.612 &gt; 0.400');
    expect(page).toContain('0.310 ≤ 0.400');
    expect(page).toContain('not compared (deface leaves no face to recognise)');
    expect(page).toContain('dlib_face_recognition_resnet_model_v1');
  });

  it('shows the face-removed control beside the identity distance, and the views it leaves out', () => {
    const base = failedRecord({ method: 'reface' });
    const identity = { ...base.checks.identity!, face_removed: { distance: 0.588, per_view: { front: 0.588 } } };
    const wide = participantReportHtml({ subject: '01', records: [{ ...base, checks: { ...base.checks, identity } }], existingRenders: new Set() });
    expect(wide).toContain('this input with its face removed (as deface leaves it): front 0.588');
    expect(wide).not.toContain('not deciding');
    const narrow = { ...identity, face_removed: { distance: 0.161, per_view: { front: 0.588, right: 0.161 } }, views_blind: ['right'] };
    const page = participantReportHtml({ subject: '01', records: [{ ...base, checks: { ...base.checks, identity: narrow } }], existingRenders: new Set() });
    expect(page).toContain('front 0.588, right 0.161; not deciding, as removing the face moves them no further than the threshold: right');
    const none = { ...identity, distance: null, face_removed: { distance: 0.1, per_view: { front: 0.1 } }, views_blind: ['front'] };
    const blindPage = participantReportHtml({ subject: '01', records: [{ ...base, checks: { ...base.checks, identity: none } }], existingRenders: new Set() });
    expect(blindPage).toContain('no view can tell');
    expect(participantReportHtml({ subject: '01', records: [base], existingRenders: new Set() })).not.toContain('face removed');
  });

  it('shows which detectors fired per view, before and after', () => {
    const record = goodRecord();
    const page = participantReportHtml({ subject: '01', records: [record], existingRenders: new Set() });
    const table = page.slice(page.indexOf('<table class="detectors"'), page.indexOf('</table>', page.indexOf('<table class="detectors"')));
    expect(table).toMatch(/<th>Front<\/th><td class="">hog, cnn<\/td><td class="fired">cnn<\/td><td class="num">0.612<\/td>/);
    expect(table).toMatch(/<th>Left<\/th><td class="none">none<\/td><td class="none">none<\/td><td class="num">—<\/td>/);
  });

  it('shows an image kept in scanner coordinates (not registered) as a warning, not a failure', () => {
    const base = goodRecord({ method: 'deface' });
    const registration = { metric: 'mi', value: 0.01, flag: 'scanner' as const, pass: true };
    const page = participantReportHtml({ subject: '01', records: [{ ...base, checks: { ...base.checks, registration } }], existingRenders: new Set() });
    expect(page).toContain('<span class="badge warn">scanner</span>');
    expect(page).not.toContain('<span class="badge fail">');
  });

  it('shows the fit check witnesses, what decided the face check, and a face ROI refused inside the brain', () => {
    const base = failedRecord({ method: 'deface' });
    const check = {
      flag: 'poor', hard: true, reason: 'the fit puts 4.2 ml of the face ROI inside the brain',
      witnesses: { brain: 'poor' as const, eyes: 'ok' as const, similarity: 'ok' as const },
      evidence: { brain_dice: 0.71, eye_error_mm: 6.1, similarity_metric: 'ncc' },
    };
    const checks = {
      ...base.checks,
      brain_voxels_changed: { ...base.checks.brain_voxels_changed, pass: false, face_roi_in_brain: check.reason },
      face: { ...base.checks.face, evidence: 'landmarks' },
      registration: { metric: 'ncc', value: 0.8, flag: 'poor' as const, pass: false, check },
    };
    const page = participantReportHtml({ subject: '01', records: [{ ...base, checks }], existingRenders: new Set() });
    expect(page).toContain('fit check: poor; witnesses: brain poor, eyes ok, similarity ok (brain_dice 0.71, eye_error_mm 6.1)');
    expect(page).toContain('the fit puts 4.2 ml of the face ROI inside the brain: refused');
    expect(page).toContain('decided by: landmarks');
  });

  it("shows a warpface output's face warp (reach and smallest Jacobian), and no such row for other methods", () => {
    const base = goodRecord({ method: 'warpface' });
    const warped = { ...base, checks: { ...base.checks, warp: { max_mm: 18.04, min_jacobian: 0.097 } } };
    const page = participantReportHtml({ subject: '01', records: [warped], existingRenders: new Set() });
    expect(page).toContain('<th>Face warp</th>');
    expect(page).toContain('moves the face up to 18.0 mm; smallest Jacobian determinant 0.10');
    const plain = participantReportHtml({ subject: '01', records: [goodRecord({ method: 'reface' })], existingRenders: new Set() });
    expect(plain).not.toContain('Face warp');
  });

  it('labels the slice figures as projections when QC drew MIPs (an input with no head surface)', () => {
    const slicePage = participantReportHtml({ subject: '01', records: [goodRecord()], existingRenders: new Set() });
    expect(slicePage).toContain('Mid-sagittal, before');
    expect(slicePage).not.toContain('MIP');
    const base = goodRecord({ method: 'deface' });
    const mip = { ...base, renders: { ...base.renders, projection: 'mip' as const } };
    const page = participantReportHtml({ subject: '01', records: [mip], existingRenders: new Set() });
    expect(page).toContain('Sagittal MIP, before');
    expect(page).toContain('Sagittal MIP, after');
    expect(page).not.toContain('Mid-sagittal');
  });

  it('ignores records of other subjects and rejects a subject that is not a BIDS label', async () => {
    const out = await newDir();
    const file = await writeParticipantReport(out, '01', [goodRecord(), goodRecord({ subject: '02' })]);
    const page = await readFile(file, 'utf8');
    expect(page.match(/<section class="card/g)).toHaveLength(1);
    expect(page).not.toContain('sub-02');
    await expect(writeParticipantReport(out, '../x', [])).rejects.toThrow();
    expect(await readdir(path.dirname(out))).toContain(path.basename(out));
  });
});

describe('inconclusive face checks', () => {
  it('shows an inconclusive face check as a warning, never as a green PASS', async () => {
    const { faceBadge } = await import('./html.js');
    expect(String(faceBadge({ pass: true, verdict: 'inconclusive' }))).toContain('INCONCLUSIVE');
    expect(String(faceBadge({ pass: true, verdict: 'inconclusive' }))).not.toContain('PASS');
    expect(String(faceBadge({ pass: true }))).toContain('PASS');
    expect(String(faceBadge({ pass: false, verdict: 'fail' }))).toContain('FAIL');
  });
});

describe('the BIDS validation section', () => {
  const report = (errors: number) => ({
    validator: 'bids-validator 3.0.2 (schema 1.2.7)',
    dataset: '/data/out',
    participants: ['01'],
    errors: Array.from({ length: errors }, (_, i) => ({ code: 'FILENAME_MISMATCH', severity: 'error' as const, location: `/sub-01/anat/bad${i}<x>.nii.gz`, message: 'The filename is not formatted correctly' })),
    warnings: [{ code: 'README_FILE_MISSING', severity: 'warning' as const, location: '/dataset_description.json', message: 'The recommended file /README is missing.' }],
    totalFiles: 3,
  });

  it('names every error of the output and folds the warnings away', () => {
    const page = participantReportHtml({ subject: '01', records: [goodRecord()], existingRenders: new Set(), validation: { input: report(0), output: report(2) } });
    expect(page).toContain('<a href="#bids-validation">BIDS validation</a>');
    expect(page).toMatch(/<div class="alert ok"><b>Input: 0 error\(s\)<\/b>, 1 warning\(s\)/);
    expect(page).toMatch(/<div class="alert"><b>Output \(micanon&#39;s own: an error here is a bug in micanon\): 2 error\(s\)<\/b>/);
    // File names are text, never markup.
    expect(page).toContain('<code>FILENAME_MISMATCH /sub-01/anat/bad1&lt;x&gt;.nii.gz: The filename is not formatted correctly</code>');
    expect(page).toContain('<summary>Warnings: README_FILE_MISSING x1</summary>');
  });

  it('is absent when the validator did not run (--skip-bids-validation)', () => {
    const page = participantReportHtml({ subject: '01', records: [goodRecord()], existingRenders: new Set() });
    expect(page).not.toContain('bids-validation');
  });
});
