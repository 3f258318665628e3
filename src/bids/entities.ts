/**
 * BIDS file names as values: parse `sub-01_ses-1_acq-mprage_run-2_T1w.nii.gz` into entities,
 * suffix and extension, and format them back in the specification's entity order.
 * Follows the BIDS schema (rules/entities.yaml for the order, rules/files/raw/anat.yaml for
 * the anatomical suffixes and which entities each group allows).
 */

/**
 * Entity keys in the order the specification requires them in a file name
 * (schema rules/entities.yaml, short names).
 */
export const ENTITY_ORDER = [
  'sub', 'tpl', 'ses', 'cohort', 'sample', 'task', 'tracksys', 'acq', 'nuc', 'voi', 'ce', 'trc',
  'stain', 'rec', 'dir', 'run', 'mod', 'echo', 'flip', 'inv', 'mt', 'part', 'proc', 'hemi',
  'space', 'split', 'recording', 'chunk', 'atlas', 'seg', 'scale', 'res', 'den', 'label', 'desc',
] as const;
export type EntityKey = (typeof ENTITY_ORDER)[number];

/** Entities whose value is an index (non-negative integer), not a label. */
const INDEX_ENTITIES: ReadonlySet<string> = new Set(['run', 'echo', 'flip', 'inv', 'split', 'chunk']);

/** Extensions of the images micanon reads and writes. */
export const IMAGE_EXTENSIONS = ['.nii.gz', '.nii'] as const;

/**
 * Anatomical suffix groups of the raw anat datatype, with the entities each allows and requires
 * (schema rules/files/raw/anat.yaml; `defacemask` is left out on purpose: it is a mask, not a head).
 */
export const ANAT_SUFFIX_GROUPS = {
  nonparametric: {
    suffixes: ['T1w', 'T2w', 'PDw', 'T2starw', 'FLAIR', 'inplaneT1', 'inplaneT2', 'PDT2', 'angio'],
    allowed: ['sub', 'ses', 'task', 'acq', 'ce', 'rec', 'run', 'echo', 'part'],
    required: [],
  },
  deprecated: {
    suffixes: ['T2star', 'FLASH', 'PD'],
    allowed: ['sub', 'ses', 'task', 'acq', 'ce', 'rec', 'run', 'echo', 'part'],
    required: [],
  },
  parametric: {
    suffixes: [
      'T1map', 'T2map', 'T2starmap', 'R1map', 'R2map', 'R2starmap', 'PDmap', 'MTRmap', 'MTsat',
      'UNIT1', 'T1rho', 'MWFmap', 'MTVmap', 'Chimap', 'S0map', 'M0map',
    ],
    allowed: ['sub', 'ses', 'task', 'acq', 'ce', 'rec', 'run'],
    required: [],
  },
  multiecho: {
    suffixes: ['MESE', 'MEGRE'],
    allowed: ['sub', 'ses', 'task', 'acq', 'ce', 'rec', 'run', 'echo', 'part'],
    required: ['echo'],
  },
  multiflip: {
    suffixes: ['VFA'],
    allowed: ['sub', 'ses', 'task', 'acq', 'ce', 'rec', 'run', 'echo', 'flip', 'part'],
    required: ['flip'],
  },
  multiinversion: {
    suffixes: ['IRT1'],
    allowed: ['sub', 'ses', 'task', 'acq', 'ce', 'rec', 'run', 'inv', 'part'],
    required: ['inv'],
  },
  mp2rage: {
    suffixes: ['MP2RAGE'],
    allowed: ['sub', 'ses', 'task', 'acq', 'ce', 'rec', 'run', 'echo', 'flip', 'inv', 'part'],
    required: ['inv'],
  },
  vfamt: {
    suffixes: ['MPM', 'MTS'],
    allowed: ['sub', 'ses', 'task', 'acq', 'ce', 'rec', 'run', 'echo', 'flip', 'mt', 'part'],
    required: ['flip', 'mt'],
  },
  mtr: {
    suffixes: ['MTR'],
    allowed: ['sub', 'ses', 'task', 'acq', 'ce', 'rec', 'run', 'mt', 'part'],
    required: ['mt'],
  },
} as const satisfies Record<string, { suffixes: readonly string[]; allowed: readonly string[]; required: readonly string[] }>;
export type AnatSuffixGroup = keyof typeof ANAT_SUFFIX_GROUPS;

/** Every anatomical image suffix micanon anonymizes. */
export const ANAT_IMAGE_SUFFIXES: ReadonlySet<string> = new Set(
  Object.values(ANAT_SUFFIX_GROUPS).flatMap((group) => group.suffixes),
);

/** A parsed BIDS file name. `entities` keeps every key-value pair found, known or not. */
export interface BidsName {
  entities: Record<string, string>;
  suffix: string;
  /** Everything from the first dot of the name: `.nii.gz`, `.nii`, `.json`, `.tsv`. */
  extension: string;
}

const KEY_RE = /^[a-zA-Z]+$/;
const VALUE_RE = /^[a-zA-Z0-9]+$/;
const SUFFIX_RE = /^[a-zA-Z0-9]+$/;

/**
 * Parse a BIDS file name (a path is fine: only its last part is read).
 * Returns null when the name is not `key-value_..._suffix.ext`: no suffix, a repeated key, or a
 * key or value with characters BIDS does not allow. Entity-less names (`T1w.json`, top-level
 * sidecars of the inheritance principle) parse with empty entities.
 */
export function parseBidsName(nameOrPath: string): BidsName | null {
  const [stem, extension] = splitExtension(nameOrPath);
  if (!stem || !extension || stem.startsWith('.')) return null;
  const parts = stem.split('_');
  const suffix = parts.pop() ?? '';
  if (!SUFFIX_RE.test(suffix)) return null;
  const entities: Record<string, string> = {};
  for (const part of parts) {
    const dash = part.indexOf('-');
    if (dash <= 0) return null;
    const key = part.slice(0, dash);
    const value = part.slice(dash + 1);
    if (!KEY_RE.test(key) || !VALUE_RE.test(value) || key in entities) return null;
    entities[key] = value;
  }
  return { entities, suffix, extension };
}

/** Position of an entity key in the file name; unknown keys go just before `desc`. */
function entityRank(key: string): number {
  const known = (ENTITY_ORDER as readonly string[]).indexOf(key);
  return known >= 0 ? known : ENTITY_ORDER.length - 1.5;
}

/** The entities of a parsed name sorted in specification order (unknown ones before `desc`, stable). */
export function orderedEntities(entities: Record<string, string>): Array<[string, string]> {
  return Object.entries(entities).sort(([a], [b]) => entityRank(a) - entityRank(b));
}

/** Format a parsed name back to a file name, entities in specification order. */
export function formatBidsName(name: BidsName): string {
  const pairs = orderedEntities(name.entities).map(([key, value]) => `${key}-${value}`);
  return [...pairs, name.suffix].join('_') + name.extension;
}

/** True when the entities, as written, appear in specification order. */
export function isInEntityOrder(entities: Record<string, string>): boolean {
  const ranks = Object.keys(entities).map(entityRank);
  return ranks.every((rank, i) => i === 0 || (ranks[i - 1] ?? -1) <= rank);
}

/** The suffix group an anatomical suffix belongs to, or null when it is not an anat image suffix. */
export function anatGroupOf(suffix: string): AnatSuffixGroup | null {
  for (const [group, spec] of Object.entries(ANAT_SUFFIX_GROUPS)) {
    if ((spec.suffixes as readonly string[]).includes(suffix)) return group as AnatSuffixGroup;
  }
  return null;
}

/** True for `.nii` and `.nii.gz`. */
export function isImageExtension(extension: string): boolean {
  return (IMAGE_EXTENSIONS as readonly string[]).includes(extension);
}

/**
 * Why a parsed name is not a valid raw anatomical image name, or null when it is one:
 * suffix must be an anat image suffix, extension .nii/.nii.gz, `sub` present, every entity
 * allowed for the suffix's group, required ones present, index entities numeric, entity order kept.
 */
export function anatNameProblem(name: BidsName): string | null {
  const group = anatGroupOf(name.suffix);
  if (!group) return `suffix "${name.suffix}" is not an anatomical image suffix`;
  if (!isImageExtension(name.extension)) return `extension "${name.extension}" is not .nii or .nii.gz`;
  if (!name.entities.sub) return 'the sub-<label> entity is missing';
  const spec = ANAT_SUFFIX_GROUPS[group];
  const allowed = spec.allowed as readonly string[];
  const extra = Object.keys(name.entities).filter((key) => !allowed.includes(key));
  if (extra.length) return `entity ${extra.map((k) => `"${k}"`).join(', ')} not allowed for ${name.suffix}`;
  const missing = (spec.required as readonly string[]).filter((key) => !(key in name.entities));
  if (missing.length) return `${name.suffix} requires ${missing.map((k) => `${k}-<index>`).join(', ')}`;
  for (const [key, value] of Object.entries(name.entities)) {
    if (INDEX_ENTITIES.has(key) && !/^\d+$/.test(value)) return `${key}-${value}: ${key} takes a number`;
  }
  if (name.entities.mt && !['on', 'off'].includes(name.entities.mt)) return `mt-${name.entities.mt}: mt is "on" or "off"`;
  if (name.entities.part && !['mag', 'phase', 'real', 'imag'].includes(name.entities.part)) {
    return `part-${name.entities.part}: part is mag, phase, real or imag`;
  }
  if (!isInEntityOrder(name.entities)) return `entities out of order (expected ${formatBidsName(name)})`;
  return null;
}

/** Split a file name at its first dot (a leading dot of a hidden name does not count). */
function splitExtension(nameOrPath: string): [stem: string, extension: string] {
  const name = nameOrPath.split(/[\\/]/).pop() ?? '';
  const dot = name.indexOf('.', 1);
  return dot < 0 ? [name, ''] : [name.slice(0, dot), name.slice(dot)];
}

/** The file name without its extension: `sub-01_T1w.nii.gz` -> `sub-01_T1w`. */
export function stemOf(nameOrPath: string): string {
  return splitExtension(nameOrPath)[0];
}

/** The extension from the first dot: `sub-01_T1w.nii.gz` -> `.nii.gz`; '' when there is none. */
export function extensionOf(nameOrPath: string): string {
  return splitExtension(nameOrPath)[1];
}
