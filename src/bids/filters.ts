/**
 * `--bids-filter-file`: fMRIPrep's format, so one file serves both tools. A JSON object keyed by
 * image kind (`t1w`, `t2w`, `flair`, ...: the anatomical suffix in lower case), each a query of
 * PyBIDS entity names (`acquisition`, `reconstruction`, `run`, ...). Only the kinds a file names
 * are filtered; each query adds to the kind's default `{"datatype": "anat", "suffix": <Suffix>}`.
 * A value is a string (`"*"`: any value, the entity must be present), null (the entity must be
 * absent), a number (for index entities such as run), or a list of these (any one matches);
 * `"regex_search": true` makes the query's strings regular expressions, searched as PyBIDS does.
 * See https://fmriprep.org/en/stable/faq.html ("How do I select only certain files").
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ANAT_IMAGE_SUFFIXES } from './entities.js';
import { BidsError } from './errors.js';

/** PyBIDS entity names (its bids.json config) of raw anatomical file names, to our short keys. */
const PYBIDS_ENTITIES: Readonly<Record<string, string>> = {
  subject: 'sub',
  session: 'ses',
  task: 'task',
  acquisition: 'acq',
  ceagent: 'ce',
  reconstruction: 'rec',
  run: 'run',
  echo: 'echo',
  flip: 'flip',
  inversion: 'inv',
  mtransfer: 'mt',
  part: 'part',
  chunk: 'chunk',
  datatype: 'datatype',
  suffix: 'suffix',
  extension: 'extension',
};

/** Entities whose values are indices: `run-01` matches 1 and "1", as in PyBIDS. */
const INDEX_KEYS: ReadonlySet<string> = new Set(['run', 'echo', 'flip', 'inv', 'chunk']);

/** fMRIPrep's queries for images micanon never anonymizes: allowed in a shared file, not used. */
export const NON_ANAT_KINDS: ReadonlySet<string> = new Set(['bold', 'sbref', 'fmap', 'roi', 'dwi', 'asl', 'm0scan', 'pet', 'epi']);

/** Image kind of an anatomical suffix: `T1w` -> `t1w`. */
export function filterKindOf(suffix: string): string {
  return suffix.toLowerCase();
}

const KINDS: ReadonlyMap<string, string> = new Map([...ANAT_IMAGE_SUFFIXES].map((suffix) => [filterKindOf(suffix), suffix]));

const scalar = z.union([z.string(), z.number().int().nonnegative(), z.null()]);
const queryValue = z.union([scalar, z.array(scalar).min(1)]);
export type QueryValue = z.infer<typeof queryValue>;

/** One kind's query, keyed by PyBIDS entity name as written in the file. */
export interface KindFilter {
  entities: Record<string, QueryValue>;
  regex: boolean;
}

export interface BidsFilters {
  /** The file it came from (absolute), for messages and the run record. */
  file: string;
  /** By kind (`t1w`); kinds the file does not name are not filtered. */
  kinds: Record<string, KindFilter>;
  /** fMRIPrep kinds in the file that are not anatomical (left alone, said once in the log). */
  ignoredKinds: string[];
}

function invalid(file: string, what: string): BidsError {
  return new BidsError('BIDS_FILTER_INVALID', `--bids-filter-file ${file}: ${what}`, { path: file });
}

/** Parse the file's JSON text into filters; throws BIDS_FILTER_INVALID naming the file and the key. */
export function parseBidsFilters(text: string, file: string): BidsFilters {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw invalid(file, `not valid JSON (${(err as Error).message})`);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw invalid(file, 'must be a JSON object keyed by image kind, e.g. {"t1w": {"acquisition": "mprage"}}');
  const kinds: Record<string, KindFilter> = {};
  const ignoredKinds: string[] = [];
  for (const [kind, query] of Object.entries(json)) {
    if (NON_ANAT_KINDS.has(kind)) {
      ignoredKinds.push(kind);
      continue;
    }
    if (!KINDS.has(kind)) throw invalid(file, `unknown image kind "${kind}" (micanon's kinds are the anatomical suffixes in lower case: ${[...KINDS.keys()].join(', ')})`);
    if (!query || typeof query !== 'object' || Array.isArray(query)) throw invalid(file, `"${kind}" must be an object of entity filters`);
    const filter: KindFilter = { entities: {}, regex: false };
    for (const [name, value] of Object.entries(query as Record<string, unknown>)) {
      if (name === 'regex_search') {
        if (typeof value !== 'boolean') throw invalid(file, `"${kind}.regex_search" must be true or false`);
        filter.regex = value;
        continue;
      }
      if (!Object.hasOwn(PYBIDS_ENTITIES, name)) throw invalid(file, `"${kind}" filters on unknown entity "${name}" (PyBIDS names: ${Object.keys(PYBIDS_ENTITIES).join(', ')})`);
      const parsed = queryValue.safeParse(value);
      if (!parsed.success) throw invalid(file, `"${kind}.${name}" must be a string, null, a non-negative integer or a list of these`);
      filter.entities[name] = parsed.data;
    }
    if (filter.regex) {
      for (const [name, value] of Object.entries(filter.entities)) {
        for (const pattern of [value].flat()) {
          if (typeof pattern !== 'string' || pattern === '*') continue;
          try {
            new RegExp(pattern);
          } catch {
            throw invalid(file, `"${kind}.${name}": "${pattern}" is not a regular expression`);
          }
        }
      }
    }
    kinds[kind] = filter;
  }
  return { file, kinds, ignoredKinds };
}

/** Read and parse a filter file; BIDS_FILTER_FILE_UNREADABLE (66) when it cannot be read. */
export function readBidsFilterFile(file: string): BidsFilters {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new BidsError('BIDS_FILTER_FILE_UNREADABLE', `--bids-filter-file ${file} cannot be read`, { path: file, cause: err });
  }
  return parseBidsFilters(text, file);
}

/** One entity value against one filter element. */
function matchesOne(key: string, actual: string | undefined, wanted: string | number | null, regex: boolean): boolean {
  if (wanted === null) return actual === undefined;
  if (actual === undefined) return false;
  if (wanted === '*') return true;
  if (INDEX_KEYS.has(key) && /^\d+$/.test(String(wanted)) && /^\d+$/.test(actual)) return Number(wanted) === Number(actual);
  if (key === 'extension') return actual === `.${String(wanted).replace(/^\./, '')}`;
  return regex ? new RegExp(String(wanted)).test(actual) : actual === String(wanted);
}

function describeWanted(value: QueryValue): string {
  const one = (v: string | number | null) => (v === null ? 'absent' : v === '*' ? 'present' : JSON.stringify(v));
  return Array.isArray(value) ? `one of ${value.map(one).join(', ')}` : one(value);
}

/** An anatomical image as filters see it: its suffix, entities (short keys) and extension. */
export interface FilterableImage {
  suffix: string;
  entities: Record<string, string>;
  extension: string;
}

/**
 * Null when the image passes the filters, else why it is left out (for the log), naming the
 * kind and the first entity that does not match.
 */
export function filterOut(image: FilterableImage, filters: BidsFilters): string | null {
  const kind = filterKindOf(image.suffix);
  const filter = filters.kinds[kind];
  if (!filter) return null;
  const actual: Record<string, string> = { ...image.entities, datatype: 'anat', suffix: image.suffix, extension: image.extension };
  for (const [name, wanted] of Object.entries(filter.entities)) {
    const key = PYBIDS_ENTITIES[name] ?? name;
    const value = actual[key];
    const ok = [wanted].flat().some((w) => matchesOne(key, value, w, filter.regex));
    if (!ok) {
      const has = value === undefined ? 'absent' : JSON.stringify(value);
      return `left out by --bids-filter-file (${kind}: ${name} is ${has}, the filter wants ${describeWanted(wanted)})`;
    }
  }
  return null;
}
