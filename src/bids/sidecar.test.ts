import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  anonymizedSidecar,
  applicableSidecars,
  checkScrubOptions,
  rawBidsUri,
  readInheritedSidecar,
  scrubParticipantsTsv,
  scrubScansTsv,
  scrubSidecar,
  withDeidentification,
  withDerivativeFields,
} from './sidecar.js';
import { setTreeReadOnly, snapshotTree, type TreeSpec, useTempTrees } from './tree.fixture.js';

const tree = useTempTrees();

/** Fields like those dcm2niix writes, identifying ones fake. */
const IDENTIFYING = {
  PatientName: 'FAKE^NAME',
  PatientID: 'FAKE-0001',
  PatientBirthDate: '19700101',
  PatientSex: 'F',
  PatientAge: '051Y',
  PatientWeight: 70,
  AccessionNumber: 'A1',
  ReferringPhysicianName: 'DR^WHO',
  OperatorsName: 'OP',
  StudyInstanceUID: '1.2.3',
  SeriesInstanceUID: '1.2.3.4',
  AcquisitionDateTime: '2021-03-04T10:11:12.000000',
  AcquisitionDate: '20210304',
  ContentDate: '20210304',
  InstitutionName: 'Fake Institution',
  InstitutionAddress: '1 Test Street',
  StationName: 'FAKESTATION',
  DeviceSerialNumber: '00000',
  ImageComments: 'patient moved',
  AcquisitionTime: '10:11:12.000000',
  SeriesTime: '101112.000000',
};
const KEPT = { Modality: 'MR', MagneticFieldStrength: 3, Manufacturer: 'Siemens', EchoTime: 0.00226, RepetitionTime: 2.3, InversionTime: 0.9 };

describe('scrubSidecar', () => {
  it('removes identifiers, dates, UIDs, institution and time of day; keeps acquisition parameters', () => {
    const { sidecar, removed } = scrubSidecar({ ...KEPT, ...IDENTIFYING });
    expect(sidecar).toEqual(KEPT);
    expect(removed.sort()).toEqual(Object.keys(IDENTIFYING).sort());
  });

  it('scrubs nested objects and reports dotted paths, without modifying its input', () => {
    const input = { ...KEPT, Extra: { PatientName: 'X', Keep: 1 }, List: [{ StudyDate: '2020' }] };
    const { sidecar, removed } = scrubSidecar(input);
    expect(sidecar.Extra).toEqual({ Keep: 1 });
    expect(sidecar.List).toEqual([{}]);
    expect(removed).toEqual(['Extra.PatientName', 'List[0].StudyDate']);
    expect(input.Extra.PatientName).toBe('X');
  });

  it('keepFields keeps default-removed fields; dropFields removes more (globs too)', () => {
    const { sidecar, removed } = scrubSidecar(
      { ...KEPT, InstitutionName: 'I', AcquisitionTime: '10:11:12', SeriesDescription: 'mprage', ProtocolName: 'p', SoftwareVersions: 'x' },
      { keepFields: ['InstitutionName', 'AcquisitionTime'], dropFields: ['SeriesDescription', 'Software*'] },
    );
    expect(sidecar).toEqual({ ...KEPT, InstitutionName: 'I', AcquisitionTime: '10:11:12', ProtocolName: 'p' });
    expect(removed).toEqual(['SeriesDescription', 'SoftwareVersions']);
  });

  it('never keeps a direct identifier: asking is a usage error', () => {
    expect(() => checkScrubOptions({ keepFields: ['PatientName'] })).toThrow(expect.objectContaining({ code: 'BIDS_KEEP_FORBIDDEN', exitCode: 64 }));
    expect(() => scrubSidecar({}, { keepFields: ['AcquisitionDateTime', 'SeriesInstanceUID'] })).toThrow(/AcquisitionDateTime, SeriesInstanceUID/);
  });

  const shared = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../shared/data/bids-person-a');
  const personA = process.env.MICANON_SHARED_DATA ? path.join(process.env.MICANON_SHARED_DATA, 'bids-person-a') : shared;
  it.skipIf(!existsSync(personA))('scrubs every fake identifying field of person A (needs ../shared/data/bids-person-a; skipped where absent)', async () => {
    const file = path.join(personA, 'sub-A/ses-01/anat/sub-A_ses-01_T1w.json');
    const { sidecar, removed } = await anonymizedSidecar(personA, path.join(personA, 'sub-A/ses-01/anat/sub-A_ses-01_T1w.nii.gz'), {
      method: 'deface',
      version: '0.1.0',
    });
    const original = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    const leaked = Object.entries(original).filter(([, v]) => typeof v === 'string' && /FAKE|19700101|2021-03-04|Test Street/.test(v));
    expect(leaked.length).toBeGreaterThan(0);
    for (const [key] of leaked) expect(sidecar, key).not.toHaveProperty(key);
    expect(removed).toEqual(expect.arrayContaining(leaked.map(([k]) => k)));
    expect(sidecar).toMatchObject({ Modality: 'MR', MagneticFieldStrength: 3, Manufacturer: 'Siemens' });
  });
});

describe('inheritance', () => {
  const spec: TreeSpec = {
    'T1w.json': { RepetitionTime: 2.0, Manufacturer: 'Siemens', InstitutionName: 'Top' },
    'T2w.json': { RepetitionTime: 9.9 },
    'sub-01/sub-01_T1w.json': { RepetitionTime: 2.3, EchoTime: 0.003 },
    'sub-01/ses-1/sub-01_ses-1_acq-hi_T1w.json': { FlipAngle: 7 },
    'sub-01/ses-1/anat/sub-01_ses-1_acq-hi_T1w.json': { EchoTime: 0.002, PatientName: 'X' },
    'sub-01/ses-1/anat/sub-01_ses-1_acq-hi_T1w.nii.gz': 'nifti',
    'sub-01/ses-1/anat/sub-01_ses-1_acq-lo_T1w.nii.gz': 'nifti',
    'sub-02/ses-1/anat/sub-02_ses-1_T1w.json': { EchoTime: 0.5 },
  };

  it('merges dataset-, subject-, session- and file-level sidecars, closest wins', async () => {
    const root = await tree(spec);
    const image = path.join(root, 'sub-01/ses-1/anat/sub-01_ses-1_acq-hi_T1w.nii.gz');
    const { sidecar, sources } = await readInheritedSidecar(root, image);
    expect(sources.map((s) => path.relative(root, s))).toEqual([
      'T1w.json',
      'sub-01/sub-01_T1w.json',
      'sub-01/ses-1/sub-01_ses-1_acq-hi_T1w.json',
      'sub-01/ses-1/anat/sub-01_ses-1_acq-hi_T1w.json',
    ]);
    expect(sidecar).toEqual({
      RepetitionTime: 2.3, // subject level overrides dataset level
      Manufacturer: 'Siemens', // dataset level, not overridden
      InstitutionName: 'Top',
      FlipAngle: 7, // session level
      EchoTime: 0.002, // file level overrides subject level
      PatientName: 'X',
    });
  });

  it('ignores sidecars of another suffix, another subject, or with an entity the image lacks', async () => {
    const root = await tree(spec);
    const image = path.join(root, 'sub-01/ses-1/anat/sub-01_ses-1_acq-lo_T1w.nii.gz');
    const { sidecar, sources } = await readInheritedSidecar(root, image);
    expect(sources.map((s) => path.relative(root, s))).toEqual(['T1w.json', 'sub-01/sub-01_T1w.json']);
    expect(sidecar).toEqual({ RepetitionTime: 2.3, Manufacturer: 'Siemens', InstitutionName: 'Top', EchoTime: 0.003 });
  });

  it('prefers the exact-entity sidecar when several apply at one level', async () => {
    const root = await tree({
      'sub-01/anat/sub-01_run-1_T1w.nii.gz': 'nifti',
      'sub-01/anat/sub-01_run-1_T1w.json': { EchoTime: 1 },
      'sub-01/anat/sub-01_T1w.json': { EchoTime: 2 },
    });
    const { sidecar } = await readInheritedSidecar(root, path.join(root, 'sub-01/anat/sub-01_run-1_T1w.nii.gz'));
    expect(sidecar).toEqual({ EchoTime: 1 });
  });

  it('reports two equally applicable sidecars at one level as ambiguous', async () => {
    const root = await tree({
      'sub-01/anat/sub-01_run-1_T1w.nii.gz': 'nifti',
      'sub-01/anat/sub-01_run-1_T1w.json': {},
      'acq-a_T1w.json': {},
      'sub-01/anat/sub-01_acq-a_run-1_T1w.nii.gz': 'nifti',
      'run-1_T1w.json': {},
    });
    await expect(applicableSidecars(root, path.join(root, 'sub-01/anat/sub-01_acq-a_run-1_T1w.nii.gz'))).rejects.toMatchObject({
      code: 'BIDS_SIDECAR_AMBIGUOUS',
      exitCode: 65,
    });
  });

  it('names the sidecar with broken JSON', async () => {
    const root = await tree({ 'sub-01/anat/sub-01_T1w.nii.gz': 'nifti', 'sub-01/anat/sub-01_T1w.json': '{"a": ' });
    await expect(readInheritedSidecar(root, path.join(root, 'sub-01/anat/sub-01_T1w.nii.gz'))).rejects.toThrow(/sub-01_T1w\.json/);
  });

  it('builds the anonymized sidecar from a read-only dataset without changing it', async () => {
    const root = await tree(spec);
    await setTreeReadOnly(root, true);
    const before = await snapshotTree(root);
    const rel = 'sub-01/ses-1/anat/sub-01_ses-1_acq-hi_T1w.nii.gz';
    const result = await anonymizedSidecar(root, path.join(root, rel), { method: 'reface', version: '1.2.3', sourceUri: rawBidsUri(rel) });
    expect(result.removed.sort()).toEqual(['InstitutionName', 'PatientName']);
    expect(result.sidecar).toMatchObject({ RepetitionTime: 2.3, EchoTime: 0.002, Sources: [`bids:raw:${rel}`] });
    expect(result.sidecar).not.toHaveProperty('PatientName');
    expect(result.inheritedFrom).toHaveLength(4);
    expect(await snapshotTree(root)).toEqual(before);
  });
});

describe('withDeidentification', () => {
  it('records DICOM 113102 and a micanon code with the version', () => {
    const s = withDeidentification({ EchoTime: 0.003 }, { method: 'deface', version: '0.1.0' });
    expect(s.DeidentificationMethod).toEqual([expect.stringMatching(/^micanon 0\.1\.0 deface: face region set to zero/)]);
    expect(s.DeidentificationMethodCodeSequence).toEqual([
      { CodeValue: '113102', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Clean Recognizable Visual Features Option' },
      { CodeValue: 'DEFACE', CodingSchemeDesignator: '99MICANON', CodingSchemeVersion: '0.1.0', CodeMeaning: 'micanon deface' },
    ]);
    expect(s).not.toHaveProperty('Sources');
  });

  it('keeps an earlier de-identification record and does not duplicate codes', () => {
    const earlier = {
      DeidentificationMethod: 'pydeface 2.0',
      DeidentificationMethodCodeSequence: [{ CodeValue: '113102', CodingSchemeDesignator: 'DCM', CodeMeaning: 'Clean Recognizable Visual Features Option' }],
    };
    const s = withDeidentification(earlier, { method: 'warpface', version: '0.1.0' });
    expect(s.DeidentificationMethod).toEqual(['pydeface 2.0', expect.stringMatching(/^micanon 0\.1\.0 warpface/)]);
    expect((s.DeidentificationMethodCodeSequence as unknown[]).length).toBe(2);
    // A list stays a list, and our step is not added twice.
    const twice = withDeidentification(s, { method: 'warpface', version: '0.1.0' });
    expect(twice.DeidentificationMethod).toEqual(s.DeidentificationMethod);
  });
});

describe('withDerivativeFields', () => {
  it('says the image is not skull-stripped and describes it, keeping a description the input had', () => {
    expect(withDerivativeFields({ EchoTime: 0.003 }, 'deface')).toEqual({
      EchoTime: 0.003,
      SkullStripped: false,
      Description: expect.stringMatching(/^The input image, face-anonymized by micanon deface \(face region set to zero\)/),
    });
    expect(withDerivativeFields({ Description: 'MPRAGE, 1 mm' }, 'reface')).toEqual({ Description: 'MPRAGE, 1 mm', SkullStripped: false });
  });
});

describe('tsv scrubbing', () => {
  it('blanks acq_time in scans.tsv, keeping the column and line endings', () => {
    const text = 'filename\tacq_time\toperator\r\nanat/sub-01_T1w.nii.gz\t2021-03-04T10:11:12\tX\r\nanat/sub-01_T2w.nii.gz\tn/a\tY\r\n';
    const { text: out, blanked } = scrubScansTsv(text);
    expect(out).toBe('filename\tacq_time\toperator\r\nanat/sub-01_T1w.nii.gz\tn/a\tX\r\nanat/sub-01_T2w.nii.gz\tn/a\tY\r\n');
    expect(blanked).toBe(1);
    expect(scrubScansTsv('filename\nx.nii.gz\n').text).toBe('filename\nx.nii.gz\n');
  });

  it('bins ages of 89 and above as 89+ in participants.tsv', () => {
    const text = 'participant_id\tage\tsex\nsub-01\t34\tF\nsub-02\t89\tM\nsub-03\t97.5\tF\nsub-04\tn/a\tM\n';
    const { text: out, binned } = scrubParticipantsTsv(text);
    expect(out).toBe('participant_id\tage\tsex\nsub-01\t34\tF\nsub-02\t89+\tM\nsub-03\t89+\tF\nsub-04\tn/a\tM\n');
    expect(binned).toBe(2);
  });
});
