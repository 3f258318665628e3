/**
 * Find the anatomical images to anonymize: per participant and session, every raw anat NIfTI,
 * one reference image (the T1w the engine registers to the atlas) and, for images that are hard
 * to register on their own (UNIT1 and quantitative maps, inv-1, phase parts, later echoes), the
 * voxel-aligned partner of the same acquisition to register through (`registerVia`).
 * Reads names only (and never writes): the engine judges image content.
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { anatGroupOf, extensionOf, isImageExtension, parseBidsName } from './entities.js';
import { BidsError } from './errors.js';
import { filterOut, type BidsFilters } from './filters.js';
import { BidsIgnore, loadBidsIgnore } from './ignore.js';
import { listForMessage, selectLabels } from './selection.js';

export { normaliseLabels } from './selection.js';

/** One anatomical image of the plan. Paths are absolute. */
export interface AnatImage {
  path: string;
  /** Path relative to the dataset root, '/'-separated. */
  relativePath: string;
  suffix: string;
  entities: Record<string, string>;
  /** A voxel-aligned image of the same acquisition to register through, or null. */
  registerVia: string | null;
}

/** What to do for one participant and session (session null for sessionless datasets). */
export interface SessionPlan {
  subject: string;
  session: string | null;
  /** The image the engine registers to the atlas first; the others are aligned to it. */
  reference: string;
  /** Why this reference was chosen, for the log and the report. */
  referenceReason: string;
  /** False when the session has no T1w and another contrast stands in (the engine should check it). */
  referenceIsT1w: boolean;
  /** Every image to anonymize, reference first, then in path order. */
  images: AnatImage[];
}

/** A file discovery looked at and left out, with the reason (for the log). */
export interface SkippedFile {
  path: string;
  reason: string;
  /** True when --bids-filter-file left out an image discovery would have taken. */
  filtered?: boolean;
}

export interface DiscoverOptions {
  /** Participant labels, with or without `sub-`; all participants when absent or empty. */
  participants?: readonly string[] | null;
  /** Participants left out (--exclude-participant-label). */
  excludeParticipants?: readonly string[];
  /** Session labels, with or without `ses-`; all sessions when absent or empty. */
  sessions?: readonly string[] | null;
  /** Sessions left out (--exclude-session-label); sessionless data stays. */
  excludeSessions?: readonly string[];
  /** --bids-filter-file: images of a kind it names must match its query. */
  filters?: BidsFilters | null;
  /** Called for every file left out, so the caller can log it. */
  onSkip?: (skipped: SkippedFile) => void;
}

interface Entry {
  name: string;
  isDir: boolean;
}

/** Folder entries sorted by name (so every result is deterministic), hidden ones left out. */
async function listVisible(dir: string): Promise<Entry[]> {
  let dirents;
  try {
    dirents = await readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const entries: Entry[] = [];
  for (const d of dirents) {
    if (d.name.startsWith('.')) continue;
    // Follow symbolic links (datalad/git-annex datasets are mostly links).
    const isDir = d.isDirectory() || (d.isSymbolicLink() && (await stat(path.join(dir, d.name)).then((s) => s.isDirectory(), () => false)));
    entries.push({ name: d.name, isDir });
  }
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function prefixed(entries: Entry[], prefix: 'sub' | 'ses', ignore: BidsIgnore, relDir: string): string[] {
  const re = new RegExp(`^${prefix}-([a-zA-Z0-9]+)$`);
  return entries
    .filter((e) => e.isDir && re.test(e.name) && !ignore.ignores(`${relDir}/${e.name}`))
    .map((e) => e.name.slice(prefix.length + 1));
}

/** Participant labels present at the dataset root (without `sub-`), sorted. */
export async function listSubjects(root: string): Promise<string[]> {
  return prefixed(await listVisible(root), 'sub', await loadBidsIgnore(root), '');
}

/** Entities that only derivatives carry: a raw file with one of them is not a raw image. */
const DERIVATIVE_ENTITIES = ['desc', 'space', 'label', 'seg', 'res', 'den', 'atlas', 'hemi'];

/** Decide whether one file of an anat folder is an image to anonymize; a reason when it is not. */
function classify(
  name: string,
  subject: string,
  session: string | null,
): { ok: true; suffix: string; entities: Record<string, string> } | { ok: false; reason: string; silent?: boolean } {
  const parsed = parseBidsName(name);
  const extension = extensionOf(name);
  // Sidecars and tables belong in an anat folder: not images, not worth a log line.
  if (['.json', '.tsv', '.bval', '.bvec'].includes(extension)) return { ok: false, reason: 'metadata', silent: true };
  if (!isImageExtension(extension)) return { ok: false, reason: 'not a NIfTI image (.nii/.nii.gz)' };
  if (!parsed) return { ok: false, reason: 'name does not follow BIDS (sub-<label>_..._<suffix>)' };
  const derived = DERIVATIVE_ENTITIES.filter((key) => key in parsed.entities);
  if (derived.length) {
    return { ok: false, reason: `derivative in raw data (${derived.map((k) => `${k}-${parsed.entities[k]}`).join(', ')})` };
  }
  if (!anatGroupOf(parsed.suffix)) {
    return { ok: false, reason: `suffix "${parsed.suffix}" is not an anatomical image (masks and segmentations are left alone)` };
  }
  if (parsed.entities.sub !== subject) return { ok: false, reason: `file names sub-${parsed.entities.sub ?? '?'} but sits in sub-${subject}/` };
  if ((parsed.entities.ses ?? null) !== session) {
    return { ok: false, reason: `session entity ${parsed.entities.ses ? `ses-${parsed.entities.ses}` : 'missing'} does not match its folder` };
  }
  return { ok: true, suffix: parsed.suffix, entities: parsed.entities };
}

/** Anat images of one subject/session folder; `relDir` is dataset-relative (`sub-01/ses-1`). */
async function anatImagesIn(
  root: string,
  relDir: string,
  subject: string,
  session: string | null,
  ignore: BidsIgnore,
  filters: BidsFilters | null,
  onSkip: (s: SkippedFile) => void,
): Promise<AnatImage[]> {
  const anatRel = `${relDir}/anat`;
  const entries = await listVisible(path.join(root, anatRel));
  const names = new Set(entries.map((e) => e.name));
  const images: AnatImage[] = [];
  for (const entry of entries) {
    const relativePath = `${anatRel}/${entry.name}`;
    const absolute = path.join(root, relativePath);
    if (entry.isDir) {
      onSkip({ path: absolute, reason: 'folder inside anat/' });
      continue;
    }
    if (ignore.ignores(relativePath)) {
      onSkip({ path: absolute, reason: 'listed in .bidsignore' });
      continue;
    }
    // `x.nii` beside `x.nii.gz` would write the same derivative twice; the compressed one wins.
    if (entry.name.endsWith('.nii') && names.has(`${entry.name}.gz`)) {
      onSkip({ path: absolute, reason: `duplicate of ${entry.name}.gz` });
      continue;
    }
    const verdict = classify(entry.name, subject, session);
    if (!verdict.ok) {
      if (!verdict.silent) onSkip({ path: absolute, reason: verdict.reason });
      continue;
    }
    const filteredOut = filters && filterOut({ suffix: verdict.suffix, entities: verdict.entities, extension: extensionOf(entry.name) }, filters);
    if (filteredOut) {
      onSkip({ path: absolute, reason: filteredOut, filtered: true });
      continue;
    }
    images.push({ path: absolute, relativePath, suffix: verdict.suffix, entities: verdict.entities, registerVia: null });
  }
  return images;
}

/**
 * Reference priority when a session has no T1w: contrasts closest to the atlas T1w (and whole-head
 * 3D acquisitions in practice) first; angiograms, maps and thick-slab images last.
 */
export const REFERENCE_PRIORITY = [
  'T1w', 'UNIT1', 'MP2RAGE', 'MPM', 'T2w', 'FLAIR', 'PDw', 'T2starw', 'PDT2', 'MEGRE', 'MESE', 'VFA',
  'MTS', 'IRT1', 'MTR', 'FLASH', 'PD', 'T2star', 'T1map', 'R1map', 'PDmap', 'T2map', 'T2starmap',
  'R2map', 'R2starmap', 'MTsat', 'MTRmap', 'T1rho', 'MWFmap', 'MTVmap', 'Chimap', 'S0map', 'M0map',
  'inplaneT1', 'inplaneT2', 'angio',
] as const;

export function suffixRank(suffix: string): number {
  const i = (REFERENCE_PRIORITY as readonly string[]).indexOf(suffix);
  return i < 0 ? REFERENCE_PRIORITY.length : i;
}

function indexOr(entities: Record<string, string>, key: string, absent: number): number {
  const v = entities[key];
  return v === undefined ? absent : Number(v);
}

/**
 * Tie-breakers among images of the chosen suffix, in order, each with how to explain it.
 * Magnitude (or no part) first, then no contrast agent, no acq label, no rec label, lowest run,
 * for MP2RAGE the second inversion (whole-head, PD-like contrast), lowest echo and flip, path.
 */
const TIE_BREAKERS: Array<{ key: (img: AnatImage) => number; explain: (img: AnatImage) => string }> = [
  { key: (img) => (img.entities.part && img.entities.part !== 'mag' ? 1 : 0), explain: () => 'magnitude image' },
  { key: (img) => (img.entities.ce ? 1 : 0), explain: () => 'no contrast agent' },
  { key: (img) => (img.entities.acq ? 1 : 0), explain: () => 'no acq label' },
  { key: (img) => (img.entities.rec ? 1 : 0), explain: () => 'no rec label' },
  { key: (img) => indexOr(img.entities, 'run', 0), explain: (img) => (img.entities.run ? `lowest run (run-${img.entities.run})` : 'no run index') },
  { key: (img) => (img.suffix === 'MP2RAGE' ? Math.abs(indexOr(img.entities, 'inv', 2) - 2) : 0), explain: () => 'second inversion (inv-2)' },
  { key: (img) => indexOr(img.entities, 'echo', 0), explain: (img) => `lowest echo (echo-${img.entities.echo})` },
  { key: (img) => indexOr(img.entities, 'flip', 0), explain: (img) => `lowest flip (flip-${img.entities.flip})` },
];

/** Suffix priority, then the tie-breakers, then path: the order discovery ranks images in. */
export function compareImages(a: AnatImage, b: AnatImage): number {
  const bySuffix = suffixRank(a.suffix) - suffixRank(b.suffix);
  if (bySuffix) return bySuffix;
  for (const tb of TIE_BREAKERS) {
    const d = tb.key(a) - tb.key(b);
    if (d) return d;
  }
  return a.relativePath < b.relativePath ? -1 : a.relativePath > b.relativePath ? 1 : 0;
}

/** Pick the reference and say why, naming the criterion that separated it from the runner-up. */
function chooseReference(images: AnatImage[]): { reference: AnatImage; reason: string; isT1w: boolean } {
  const sorted = [...images].sort(compareImages);
  const reference = sorted[0] as AnatImage;
  const isT1w = reference.suffix === 'T1w';
  const same = sorted.filter((img) => img.suffix === reference.suffix);
  const prefix = isT1w
    ? 'T1w'
    : `no T1w in this session; ${reference.suffix} stands in by suffix priority (${REFERENCE_PRIORITY.slice(0, 6).join(' > ')} > ...)`;
  if (same.length === 1) return { reference, reason: `${prefix}; the only ${reference.suffix} image`, isT1w };
  const runnerUp = same[1] as AnatImage;
  const decisive = TIE_BREAKERS.find((tb) => tb.key(reference) !== tb.key(runnerUp));
  const why = decisive ? decisive.explain(reference) : 'first in path order';
  return { reference, reason: `${prefix}; ${same.length} ${reference.suffix} images, picked by ${why}`, isT1w };
}

function sameExcept(a: Record<string, string>, b: Record<string, string>, keys: string[]): boolean {
  const all = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of all) if (!keys.includes(k) && a[k] !== b[k]) return false;
  return true;
}

function isMagnitude(img: AnatImage): boolean {
  return !img.entities.part || img.entities.part === 'mag';
}

/** Suffixes computed from an MP2RAGE acquisition (voxel-aligned with its inversions). */
const MP2RAGE_PRODUCTS: ReadonlySet<string> = new Set(['UNIT1', 'T1map', 'R1map']);

/**
 * The image to register `img` through, or null when it registers well on its own.
 * UNIT1/T1map/R1map (noisy or flat background) and MP2RAGE inv-1 (near-nulled tissue) go
 * through the MP2RAGE inv-2 magnitude (whole head, good contrast); phase/real/imag parts
 * through their magnitude; later echoes of a multi-echo series through the first echo.
 * All of these are the same acquisition on the same voxel grid.
 */
function partnerOf(img: AnatImage, session: AnatImage[]): AnatImage | null {
  const others = session.filter((o) => o !== img);
  if (img.entities.part && img.entities.part !== 'mag') {
    const mag = others.find((o) => o.suffix === img.suffix && isMagnitude(o) && sameExcept(o.entities, img.entities, ['part']));
    if (mag) return mag;
  }
  const inv2 = others.filter((o) => o.suffix === 'MP2RAGE' && o.entities.inv === '2' && isMagnitude(o));
  if (img.suffix === 'MP2RAGE' && img.entities.inv !== '2') {
    const match = inv2.find((o) => sameExcept(o.entities, img.entities, ['inv', 'part']));
    if (match) return match;
  }
  if (MP2RAGE_PRODUCTS.has(img.suffix) && inv2.length) {
    // Same acquisition: acq/run/ce agree; with one MP2RAGE series in the session it is that one.
    const match = inv2.find((o) => ['acq', 'run', 'ce'].every((k) => o.entities[k] === img.entities[k]));
    if (match) return match;
    if (inv2.length === 1) return inv2[0] as AnatImage;
  }
  if (img.entities.echo) {
    const series = others.filter((o) => o.suffix === img.suffix && o.entities.echo && sameExcept(o.entities, img.entities, ['echo']));
    const first = series.sort((a, b) => Number(a.entities.echo) - Number(b.entities.echo))[0];
    if (first && Number(first.entities.echo) < Number(img.entities.echo)) return first;
  }
  return null;
}

/** Set registerVia for every image, following chains to an image that registers on its own. */
function assignRegisterVia(images: AnatImage[]): void {
  const direct = new Map(images.map((img) => [img, partnerOf(img, images)]));
  for (const img of images) {
    let via = direct.get(img) ?? null;
    const seen = new Set<AnatImage>([img]);
    while (via && direct.get(via) && !seen.has(via)) {
      seen.add(via);
      via = direct.get(via) ?? null;
    }
    img.registerVia = via && via !== img ? via.path : null;
  }
}

/**
 * Build the plan for a BIDS dataset: participants and sessions selected, anat images found,
 * reference chosen, registration partners assigned. Sessionless datasets give session null.
 *
 * Throws BIDS_ROOT_MISSING when `root` is not a folder, BIDS_LABEL_NOT_FOUND when a requested
 * participant or session does not exist (the message lists those that do), BIDS_SELECTION_EMPTY
 * when an exclusion or the filter file leaves nothing, BIDS_NO_ANAT_IMAGES when the selection
 * holds no anatomical image at all.
 */
export async function discoverAnatomy(root: string, options: DiscoverOptions = {}): Promise<SessionPlan[]> {
  const absRoot = path.resolve(root);
  const onSkip = options.onSkip ?? (() => undefined);
  if (!(await stat(absRoot).then((s) => s.isDirectory(), () => false))) {
    throw new BidsError('BIDS_ROOT_MISSING', `BIDS folder ${absRoot} does not exist or is not a folder`, { path: absRoot });
  }
  const ignore = await loadBidsIgnore(absRoot);
  const existing = prefixed(await listVisible(absRoot), 'sub', ignore, '');
  const subjects = selectLabels(existing, { include: options.participants, exclude: options.excludeParticipants }, 'sub', absRoot);

  // Every (subject, session) folder holding data, before the session selection.
  const folders: Array<{ subject: string; session: string | null; relDir: string }> = [];
  for (const subject of subjects) {
    const subRel = `sub-${subject}`;
    const entries = await listVisible(path.join(absRoot, subRel));
    for (const session of prefixed(entries, 'ses', ignore, `/${subRel}`)) {
      folders.push({ subject, session, relDir: `${subRel}/ses-${session}` });
    }
    if (entries.some((e) => e.isDir && e.name === 'anat')) folders.push({ subject, session: null, relDir: subRel });
  }
  const present = [...new Set(folders.flatMap((f) => (f.session ? [f.session] : [])))].sort();
  const wantedSessions = options.sessions?.length ? options.sessions : null;
  const sessions = selectLabels(
    present,
    { include: wantedSessions, exclude: options.excludeSessions },
    'ses',
    `${listForMessage(subjects, 'sub')} of ${absRoot}`,
    folders.some((f) => f.session === null),
  );
  // --session-label takes sessions only; without it sessionless data stays selected.
  const selected = folders.filter((f) => (f.session === null ? !wantedSessions : sessions.includes(f.session)));

  let filteredOut = 0;
  const skip = (skipped: SkippedFile) => {
    if (skipped.filtered) filteredOut++;
    onSkip(skipped);
  };
  const plan: SessionPlan[] = [];
  for (const folder of selected) {
    const images = await anatImagesIn(absRoot, folder.relDir, folder.subject, folder.session, ignore, options.filters ?? null, skip);
    if (images.length === 0) {
      onSkip({ path: path.join(absRoot, folder.relDir), reason: 'no anatomical image in this session' });
      continue;
    }
    assignRegisterVia(images);
    const { reference, reason, isT1w } = chooseReference(images);
    const rest = images.filter((img) => img !== reference).sort((a, b) => (a.relativePath < b.relativePath ? -1 : 1));
    plan.push({
      subject: folder.subject,
      session: folder.session,
      reference: reference.path,
      referenceReason: reason,
      referenceIsT1w: isT1w,
      images: [reference, ...rest],
    });
  }
  if (plan.length === 0 && filteredOut > 0) {
    throw new BidsError(
      'BIDS_SELECTION_EMPTY',
      `--bids-filter-file ${options.filters?.file ?? ''} leaves out every anatomical image of the selection (${filteredOut} image(s); the log at --log-level verbose says why each)`,
      { path: options.filters?.file ?? absRoot },
    );
  }
  if (plan.length === 0) {
    throw new BidsError(
      'BIDS_NO_ANAT_IMAGES',
      `no anatomical image (anat/*.nii[.gz]) found for ${listForMessage(subjects, 'sub')}${wantedSessions ? ` ${listForMessage(sessions, 'ses')}` : ''} in ${absRoot}`,
      { path: absRoot },
    );
  }
  return plan;
}
