import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { attackReplySchema, type AttackRate, type AttackReply } from '../engine/schemas.js';
import { ATTACK_PROBE_TSV_COLUMNS, ATTACK_TSV_COLUMNS, attackProbesTsvPath, attackTsv, attackTsvPath } from './attack.js';
import { groupReportHtml, writeGroupReport } from './group.js';
import { goodRecord, useTempDirs, writeOutputDir } from './qc.fixture.js';
import { readQcRecords } from './records.js';

const newDir = useTempDirs();

function rate(protocol: AttackRate['protocol'], kind: AttackRate['kind'], hits: number, probes: number, extra: Partial<AttackRate> = {}): AttackRate {
  return { protocol, kind, probes, hits, no_face: 0, to_atlas: 0, gallery_identities: 3, rate: probes ? hits / probes : null, ci_low: 0.1, ci_high: 0.9, chance: 0.3333, ...extra };
}

/** An attack on two people and the atlas face, as the engine replies (validated by the bridge's schema). */
function attackResult(overrides: Partial<AttackReply> = {}): AttackReply {
  return attackReplySchema.parse({
    table: [
      rate('cross_view', 'input', 4, 4, { ci_low: 0.5101, ci_high: 1 }),
      rate('cross_view', 'deface', 0, 4, { no_face: 3, ci_low: 0, ci_high: 0.4899 }),
      rate('cross_view', 'reface', 1, 4, { to_atlas: 3 }),
      rate('cross_view', 'warpface', 3, 4),
      rate('same_view', 'reface', 2, 4),
    ],
    probes: [
      { protocol: 'cross_view', kind: 'deface', subject: 'A', session: '01', input: 'sub-A/ses-01/anat/sub-A_ses-01_T1w.nii.gz', views: 7, face_views: 0, nearest: null, nearest_score: null, own_score: null, hit: false, scores: {} },
      { protocol: 'cross_view', kind: 'input', subject: 'B', session: null, input: 'sub-B/anat/sub-B_T1w.nii.gz', views: 7, face_views: 5, nearest: 'B', nearest_score: 0.41, own_score: 0.41, hit: true, scores: { A: 0.52, B: 0.41, 'atlas-face': 0.6 } },
    ],
    gallery: { identities: ['A', 'B', 'atlas-face'], subjects: ['A', 'B'], images: 4, faces: 20, distractors: ['atlas-face'] },
    conclusive: true,
    verdict: 'the attack re-identified 4 of 4 inputs (100%, chance 33%), but the gallery holds 2 person(s)',
    views: ['front', 'high', 'left34', 'low'],
    ...overrides,
  });
}

const tsvRows = (text: string) => text.trimEnd().split('\n').map((line) => line.split('\t'));

describe('the attack on the group page', () => {
  it('shows the rank-1 table with the counts behind every rate, inputs first', () => {
    const page = groupReportHtml({ records: [goodRecord()], participantPages: new Set(), attack: { result: attackResult() } });
    const section = page.slice(page.indexOf('<section id="attack">'), page.indexOf('<section id="outputs">'));
    // conclusive, but on two people: a warning, not green
    expect(section).toContain('<div class="alert warn">the attack re-identified 4 of 4 inputs');
    const rows = section.split('<tbody>')[1]!.split('</tbody>')[0]!.split('<tr>').slice(1);
    expect(rows.map((row) => row.match(/<td>([^<]*)<\/td><td>([^<]*)<\/td>/)!.slice(1))).toEqual([
      ['inputs (unmodified)', 'cross-view'],
      ['deface outputs', 'cross-view'],
      ['reface outputs', 'cross-view'],
      ['warpface outputs', 'cross-view'],
      ['reface outputs', 'same view'],
    ]);
    // hits / probes, rate, Wilson interval, probes without a face, nearest = atlas, chance
    expect(rows[0]).toContain('<td class="num">4 / 4</td><td class="num"><b>100%</b></td><td class="num">51%–100%</td><td class="num">0</td><td class="num">0</td><td class="num">33%</td>');
    expect(rows[1]).toContain('<td class="num">0 / 4</td><td class="num"><b>0%</b></td><td class="num">0%–49%</td><td class="num">3</td>');
    expect(rows[2]).toContain('<td class="num">1 / 4</td><td class="num"><b>25%</b></td><td class="num">10%–90%</td><td class="num">0</td><td class="num">3</td>');
    expect(section).toContain('2 participant(s), 4 image(s), 20 faces');
    expect(page).toContain('<a href="#attack">Attack</a>');
  });

  it('is green only when the attack works on more than two people', () => {
    const gallery = { identities: ['A', 'B', 'C', 'atlas-face'], subjects: ['A', 'B', 'C'], images: 3, faces: 9, distractors: ['atlas-face'] };
    const page = groupReportHtml({ records: [goodRecord()], participantPages: new Set(), attack: { result: attackResult({ gallery, verdict: 'the attack re-identified 3 of 3 inputs' }) } });
    expect(page).toContain('<div class="alert ok">the attack re-identified 3 of 3 inputs.</div>');
  });

  it('says the attack proves nothing when it does not re-identify most inputs', () => {
    const verdict = 'the attack re-identified 1 of 4 inputs (25%, chance 33%): not a majority, so it proves nothing on this dataset';
    const page = groupReportHtml({ records: [goodRecord()], participantPages: new Set(), attack: { result: attackResult({ conclusive: false, verdict }) } });
    expect(page).toContain(`<div class="alert"><b>Inconclusive</b>: ${verdict}.</div>`);
  });

  it('says when the attack could not run, and has no section when it was not asked for', () => {
    const failed = groupReportHtml({ records: [goodRecord()], participantPages: new Set(), attack: { error: 'render missing: sub-01/figures/x.png' } });
    expect(failed).toContain('<b>The attack did not run</b>: render missing: sub-01/figures/x.png');
    const none = groupReportHtml({ records: [goodRecord()], participantPages: new Set() });
    expect(none).not.toContain('id="attack"');
    expect(none).not.toContain('#attack');
  });
});

describe('the attack TSVs', () => {
  it('keep the counts of every row, n/a where a rate has no probes', () => {
    const rows = tsvRows(attackTsv(attackResult({ table: [rate('cross_view', 'input', 0, 0, { ci_low: null, ci_high: null })] })));
    expect(rows[0]).toEqual([...ATTACK_TSV_COLUMNS]);
    expect(rows[1]).toEqual(['cross_view', 'input', '0', '0', 'n/a', 'n/a', 'n/a', '0', '0', '3', '0.3333']);
  });

  it('are written beside the group TSV when the attack ran, and removed when it did not', async () => {
    const out = await newDir();
    await writeOutputDir(out, [goodRecord()]);
    const read = await readQcRecords(out);
    const written = await writeGroupReport(out, { read, attack: { result: attackResult() } });
    expect(written.attackTsvs).toEqual([attackTsvPath(out), attackProbesTsvPath(out)]);
    const table = tsvRows(await readFile(attackTsvPath(out), 'utf8'));
    expect(table).toHaveLength(6);
    expect(table[2]!.slice(0, 5)).toEqual(['cross_view', 'deface', '4', '0', '0']);
    expect(table[2]![ATTACK_TSV_COLUMNS.indexOf('no_face')]).toBe('3');
    const probes = tsvRows(await readFile(attackProbesTsvPath(out), 'utf8'));
    expect(probes[0]).toEqual([...ATTACK_PROBE_TSV_COLUMNS]);
    expect(probes[1]).toEqual(['cross_view', 'deface', 'A', '01', 'sub-A/ses-01/anat/sub-A_ses-01_T1w.nii.gz', '7', '0', 'n/a', 'n/a', 'n/a', 'false', 'n/a']);
    expect(probes[2]!.at(-1)).toBe('A=0.52 B=0.41 atlas-face=0.6');

    const again = await writeGroupReport(out, { read, attack: { error: 'the Python engine did not start' } });
    expect(again.attackTsvs).toEqual([]);
    await expect(readFile(attackTsvPath(out), 'utf8')).rejects.toThrow(/ENOENT/);
    expect(await readFile(again.html, 'utf8')).toContain('The attack did not run');
  });
});
