/**
 * Sidecar metadata of an anonymized image: read with the BIDS inheritance principle, scrub the
 * fields that identify a person, record how the data were de-identified.
 *
 * What is removed, and why:
 * - Always (direct identifiers; `keepFields` cannot keep them, asking is a usage error):
 *   patient name/ID/birth date/sex/age/weight/size and other patient fields, physicians and
 *   operators, accession number, study ID, every UID, and every key ending in `Date` or
 *   `DateTime` (HIPAA Safe Harbor treats dates as identifiers; age and sex belong in
 *   participants.tsv, where they can be binned).
 * - By default (quasi-identifiers; `keepFields` may keep them): institution and department name
 *   and address, station name, device serial number, free-text comments and descriptions, and
 *   time-of-day values. A time of day is a key ending in `Time` whose value is a clock time
 *   string (`"10:04:56.32"` or `"100456.32"`): with the scanner log it pins a scan to a person,
 *   and the DICOM Basic Profile removes it; but it is sometimes a study variable (circadian
 *   effects), so it can be kept. Durations such as EchoTime or RepetitionTime are numbers
 *   and are never touched.
 * - `dropFields` removes more keys (exact names or `*` globs).
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseBidsName } from './entities.js';
import { BidsError } from './errors.js';
import type { AnonymizationMethod } from './outputs.js';

export type Sidecar = Record<string, unknown>;

/** Keys always removed, whatever the options. */
export const ALWAYS_REMOVED: readonly string[] = [
  'PatientName', 'PatientID', 'PatientBirthDate', 'PatientBirthTime', 'PatientSex', 'PatientAge',
  'PatientWeight', 'PatientSize', 'PatientAddress', 'PatientTelephoneNumbers', 'PatientMotherBirthName',
  'PatientBirthName', 'OtherPatientIDs', 'OtherPatientNames', 'OtherPatientIDsSequence', 'IssuerOfPatientID',
  'MedicalRecordLocator', 'PatientComments', 'AdditionalPatientHistory', 'ResponsiblePerson',
  'AccessionNumber', 'ReferringPhysicianName', 'PerformingPhysicianName', 'PhysiciansOfRecord',
  'NameOfPhysiciansReadingStudy', 'RequestingPhysician', 'OperatorsName', 'StudyID',
];

/** Keys removed by default; `keepFields` may keep them. */
export const REMOVED_BY_DEFAULT: readonly string[] = [
  'InstitutionName', 'InstitutionAddress', 'InstitutionalDepartmentName', 'InstitutionCodeSequence',
  'StationName', 'DeviceSerialNumber', 'ImageComments', 'ProcedureStepDescription', 'StudyDescription',
  'StudyComments', 'RequestedProcedureDescription', 'PerformedProcedureStepDescription',
];

const CLOCK_TIME_RE = /^\d{2}:?\d{2}:?\d{2}(\.\d+)?$/;

/** Always removed by pattern: dates, date-times and UIDs. */
function isAlwaysRemoved(key: string): boolean {
  return ALWAYS_REMOVED.includes(key) || /(Date|DateTime)$/.test(key) || /UIDs?$/.test(key);
}

/** A time of day: `...Time` with a clock-time string value (durations are numbers). */
function isTimeOfDay(key: string, value: unknown): boolean {
  return /Time$/.test(key) && typeof value === 'string' && CLOCK_TIME_RE.test(value.trim());
}

export interface ScrubOptions {
  /** Keys to keep although removed by default (cannot include always-removed keys). */
  keepFields?: readonly string[];
  /** More keys to remove: exact names or globs with `*`. */
  dropFields?: readonly string[];
}

/**
 * Check scrub options before any work starts: throws BIDS_KEEP_FORBIDDEN when `keepFields`
 * names a key that is always removed.
 */
export function checkScrubOptions(options: ScrubOptions): void {
  const forbidden = (options.keepFields ?? []).filter(isAlwaysRemoved);
  if (forbidden.length) {
    throw new BidsError('BIDS_KEEP_FORBIDDEN', `cannot keep ${forbidden.join(', ')}: direct identifiers are always removed`);
  }
}

function globMatcher(patterns: readonly string[]): (key: string) => boolean {
  const res = patterns.map((p) => new RegExp(`^${p.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`));
  return (key) => res.some((re) => re.test(key));
}

/**
 * Remove identifying fields from a sidecar (nested objects and arrays too; their removed keys are
 * reported as dotted paths). Returns a new object and the removed keys in document order;
 * the input is not modified. Throws BIDS_KEEP_FORBIDDEN like checkScrubOptions.
 */
export function scrubSidecar(sidecar: Sidecar, options: ScrubOptions = {}): { sidecar: Sidecar; removed: string[] } {
  checkScrubOptions(options);
  const keep = new Set(options.keepFields ?? []);
  const dropped = globMatcher(options.dropFields ?? []);
  const removed: string[] = [];
  const shouldRemove = (key: string, value: unknown): boolean =>
    isAlwaysRemoved(key) ||
    dropped(key) ||
    (!keep.has(key) && (REMOVED_BY_DEFAULT.includes(key) || isTimeOfDay(key, value)));

  const clean = (value: unknown, where: string): unknown => {
    if (Array.isArray(value)) return value.map((item, i) => clean(item, `${where}[${i}]`));
    if (value === null || typeof value !== 'object') return value;
    const out: Sidecar = {};
    for (const [key, inner] of Object.entries(value as Sidecar)) {
      const dotted = where ? `${where}.${key}` : key;
      if (shouldRemove(key, inner)) removed.push(dotted);
      else out[key] = clean(inner, dotted);
    }
    return out;
  };
  return { sidecar: clean(sidecar, '') as Sidecar, removed };
}

/**
 * The JSON files that apply to `imagePath` under the inheritance principle, farthest first:
 * from the dataset root down to the image's folder, a `.json` file applies when it has the
 * image's suffix and its entities are a subset of the image's (same values). Several at one
 * level: the one with exactly the image's entities wins, else BIDS_SIDECAR_AMBIGUOUS.
 */
export async function applicableSidecars(root: string, imagePath: string): Promise<string[]> {
  const absRoot = path.resolve(root);
  const image = parseBidsName(imagePath);
  if (!image) throw new BidsError('BIDS_NAME_INVALID', `${imagePath} is not a BIDS file name`, { path: imagePath });
  const found: string[] = [];
  let dir = path.dirname(path.resolve(imagePath));
  for (;;) {
    const names = await readdir(dir).catch(() => [] as string[]);
    const candidates = names.filter((name) => {
      const p = parseBidsName(name);
      return (
        p !== null &&
        p.extension === '.json' &&
        p.suffix === image.suffix &&
        Object.entries(p.entities).every(([k, v]) => image.entities[k] === v)
      );
    });
    if (candidates.length > 1) {
      const exact = candidates.find((name) => {
        const p = parseBidsName(name);
        return p !== null && Object.keys(p.entities).length === Object.keys(image.entities).length;
      });
      if (!exact) {
        throw new BidsError(
          'BIDS_SIDECAR_AMBIGUOUS',
          `several sidecars apply to ${imagePath} in ${dir}: ${candidates.sort().join(', ')}`,
          { path: dir },
        );
      }
      found.push(path.join(dir, exact));
    } else if (candidates.length === 1) {
      found.push(path.join(dir, candidates[0] as string));
    }
    if (dir === absRoot || path.dirname(dir) === dir || !dir.startsWith(absRoot)) break;
    dir = path.dirname(dir);
  }
  return found.reverse();
}

async function readJsonObject(file: string): Promise<Sidecar> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new BidsError('BIDS_SIDECAR_INVALID', `cannot read sidecar ${file}: ${(err as Error).message}`, { path: file, cause: err });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new BidsError('BIDS_SIDECAR_INVALID', `sidecar ${file} is not a JSON object`, { path: file });
  }
  return value as Sidecar;
}

/**
 * The effective sidecar of `imagePath`: all applicable JSON files merged key by key, the closest
 * to the image winning. Returns the merged object and the files it came from (farthest first).
 */
export async function readInheritedSidecar(root: string, imagePath: string): Promise<{ sidecar: Sidecar; sources: string[] }> {
  const sources = await applicableSidecars(root, imagePath);
  const sidecar: Sidecar = {};
  for (const file of sources) Object.assign(sidecar, await readJsonObject(file));
  return { sidecar, sources };
}

/** DICOM CID 7050 code for what face removal does to pixel data. */
export const CLEAN_RECOGNIZABLE_VISUAL_FEATURES = {
  CodeValue: '113102',
  CodingSchemeDesignator: 'DCM',
  CodeMeaning: 'Clean Recognizable Visual Features Option',
} as const;

/** micanon's private coding scheme ("99" prefix: DICOM's convention for private schemes). */
export const MICANON_CODING_SCHEME = '99MICANON';

const METHOD_TEXT: Record<AnonymizationMethod, string> = {
  deface: 'face region set to zero',
  reface: 'face region replaced by an atlas face',
  warpface: 'face region non-linearly warped toward an atlas face',
};

export interface DeidentificationOptions {
  method: AnonymizationMethod;
  version: string;
  /** BIDS URI of the input image (`bids:raw:sub-01/anat/sub-01_T1w.nii.gz`); omitted when absent. */
  sourceUri?: string;
}

/** The BIDS URI of an input image under the `raw` dataset link. */
export function rawBidsUri(relativePath: string): string {
  return `bids:raw:${relativePath.split(path.sep).join('/').replace(/^\/+/, '')}`;
}

/**
 * Add DeidentificationMethod, DeidentificationMethodCodeSequence (DICOM 113102 plus a micanon
 * code carrying the method and version) and Sources. Earlier de-identification records of the
 * input (another tool's) are kept and ours appended, so the history stays complete.
 * DeidentificationMethod is a list of strings, one per step, as the BIDS schema has it (the
 * validator refuses a plain string); an earlier plain string becomes the first item.
 */
export function withDeidentification(sidecar: Sidecar, options: DeidentificationOptions): Sidecar {
  const ours = `micanon ${options.version} ${options.method}: ${METHOD_TEXT[options.method]}, brain voxels unchanged; identifying sidecar fields removed`;
  const earlier = sidecar.DeidentificationMethod;
  const previousSteps = (Array.isArray(earlier) ? earlier : [earlier]).filter((step): step is string => typeof step === 'string' && step.trim() !== '');
  const previousCodes = Array.isArray(sidecar.DeidentificationMethodCodeSequence) ? sidecar.DeidentificationMethodCodeSequence : [];
  const micanonCode = {
    CodeValue: options.method.toUpperCase(),
    CodingSchemeDesignator: MICANON_CODING_SCHEME,
    CodingSchemeVersion: options.version,
    CodeMeaning: `micanon ${options.method}`,
  };
  const codes = [...previousCodes];
  for (const code of [CLEAN_RECOGNIZABLE_VISUAL_FEATURES, micanonCode]) {
    const present = codes.some(
      (c) => typeof c === 'object' && c !== null && (c as Sidecar).CodeValue === code.CodeValue &&
        (c as Sidecar).CodingSchemeDesignator === code.CodingSchemeDesignator,
    );
    if (!present) codes.push(code);
  }
  const out: Sidecar = {
    ...sidecar,
    DeidentificationMethod: previousSteps.includes(ours) ? previousSteps : [...previousSteps, ours],
    DeidentificationMethodCodeSequence: codes,
  };
  if (options.sourceUri) out.Sources = [options.sourceUri];
  return out;
}

/**
 * The fields BIDS asks of a derivative anatomical image (the validator's SIDECAR_KEY_REQUIRED and
 * SIDECAR_KEY_RECOMMENDED): SkullStripped is REQUIRED, and false, since no method of micanon
 * removes skull or brain-outside tissue (deface zeroes the face region only); Description is
 * RECOMMENDED, added when the input's metadata has none. Not for the raw layout, whose images
 * stand in for raw ones.
 */
export function withDerivativeFields(sidecar: Sidecar, method: AnonymizationMethod): Sidecar {
  return {
    ...sidecar,
    SkullStripped: false,
    ...(typeof sidecar.Description === 'string' && sidecar.Description.trim() !== ''
      ? {}
      : { Description: `The input image, face-anonymized by micanon ${method} (${METHOD_TEXT[method]}); every brain voxel unchanged.` }),
  };
}

/**
 * The sidecar to write beside an anonymized image: inherited metadata merged, scrubbed, and
 * de-identification recorded. `removed` lists the keys taken out (for output_dir/logs, never
 * for the dataset); `inheritedFrom` the files read.
 */
export async function anonymizedSidecar(
  root: string,
  imagePath: string,
  options: DeidentificationOptions & ScrubOptions,
): Promise<{ sidecar: Sidecar; removed: string[]; inheritedFrom: string[] }> {
  const { sidecar, sources } = await readInheritedSidecar(root, imagePath);
  const scrubbed = scrubSidecar(sidecar, options);
  return { sidecar: withDeidentification(scrubbed.sidecar, options), removed: scrubbed.removed, inheritedFrom: sources };
}

/**
 * Rewrite one named column of a TSV text: `replace` gets each data cell and returns the new value,
 * or null to leave it. Line endings and the final newline are kept. Returns the text and how many
 * cells changed (0 when the column is absent).
 */
function rewriteTsvColumn(text: string, column: string, replace: (cell: string) => string | null): { text: string; changed: number } {
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const trailing = text.endsWith('\n');
  const lines = text.split(/\r?\n/);
  if (trailing) lines.pop();
  const rows = lines.map((line) => line.split('\t'));
  const col = rows[0]?.indexOf(column) ?? -1;
  let changed = 0;
  if (col >= 0) {
    for (const row of rows.slice(1)) {
      const cell = row[col];
      const next = cell === undefined ? null : replace(cell);
      if (next !== null && next !== cell) {
        row[col] = next;
        changed++;
      }
    }
  }
  return { text: rows.map((r) => r.join('\t')).join(eol) + (trailing ? eol : ''), changed };
}

/**
 * scans.tsv with the `acq_time` column blanked to `n/a` (kept, not dropped, so a scans.json
 * describing the column stays valid). Returns the text and how many values were blanked.
 */
export function scrubScansTsv(text: string): { text: string; blanked: number } {
  const { text: out, changed } = rewriteTsvColumn(text, 'acq_time', (cell) => (cell === '' ? null : 'n/a'));
  return { text: out, blanked: changed };
}

/**
 * participants.tsv with ages of 89 and above written as `89+` (the HIPAA Safe Harbor bin, which
 * the BIDS specification recommends). Assumes `age` is in years, as BIDS does by default.
 * Returns the text and how many ages were binned.
 */
export function scrubParticipantsTsv(text: string): { text: string; binned: number } {
  const { text: out, changed } = rewriteTsvColumn(text, 'age', (cell) => {
    const age = Number(cell);
    return cell.trim() !== '' && Number.isFinite(age) && age >= 89 ? '89+' : null;
  });
  return { text: out, binned: changed };
}
