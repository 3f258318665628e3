/**
 * The stand-in reference of a session with no T1w, chosen from the images' headers: the best 3D
 * anatomical image (whole head, then highest resolution), as issue 4 asks, with suffix priority
 * (discover.ts) only as the tie-breaker. Discovery ranks by file names alone; this runs once the
 * engine can read headers, and only for sessions with no T1w (and no --t1w).
 */
import path from 'node:path';
import { compareImages, suffixRank, type AnatImage } from './discover.js';
import { anatGroupOf, parseBidsName } from './entities.js';

/** What the ranking needs of a header (the engine's image_info gives it). */
export interface Geometry {
  shape: readonly number[];
  zooms: readonly number[];
}

/** Field of view (mm) at least this along every axis: the image covers a whole head. */
export const WHOLE_HEAD_MM = 140;
/**
 * 3D: no voxel edge more than ISOTROPY times the shortest (a 3D acquisition, whatever its voxel
 * size: a 3 mm isotropic volume is 3D; 0.45x0.45x5 mm slices are not). Resolution ranks later.
 */
export const ISOTROPY = 2;

interface Ranked {
  image: AnatImage;
  geometry: Geometry | null;
  /** coverageOf the geometry. */
  coverage: number;
  /** 0 a weighted image, 1 a quantitative map, in-plane image or angiogram. */
  map: number;
  /** Voxel volume (mm³), to 0.01. */
  voxel: number;
}

const MAP_RANK = suffixRank('T1map');

const usable = (geometry: Geometry | null): geometry is Geometry =>
  geometry !== null && geometry.shape.length >= 3 && geometry.zooms.length >= 3;

/** 0 whole-head 3D, 1 whole head only, 2 partial coverage, 3 header unreadable. */
function coverageOf(geometry: Geometry | null): number {
  if (!usable(geometry)) return 3;
  const zooms = geometry.zooms.slice(0, 3);
  const fov = zooms.map((z, i) => z * (geometry.shape[i] ?? 0));
  const wholeHead = Math.min(...fov) >= WHOLE_HEAD_MM;
  const threeD = Math.max(...zooms) <= ISOTROPY * Math.min(...zooms);
  return wholeHead ? (threeD ? 0 : 1) : 2;
}

function rank(image: AnatImage, geometry: Geometry | null): Ranked {
  const map = suffixRank(image.suffix) >= MAP_RANK ? 1 : 0;
  if (!usable(geometry)) return { image, geometry: null, coverage: 3, map, voxel: Infinity };
  const voxel = Math.round(geometry.zooms.slice(0, 3).reduce((a, b) => a * b, 1) * 100) / 100;
  return { image, geometry, coverage: coverageOf(geometry), map, voxel };
}

const COVERAGE = ['whole-head 3D', 'whole head, 2D slices', 'partial coverage', 'header unreadable'];

/** "1.0x1.0x1.2 mm voxels, 256x256x180 mm field of view, whole-head 3D" */
export function describeGeometry(geometry: Geometry | null): string {
  if (!usable(geometry)) return COVERAGE[3]!;
  const zooms = geometry.zooms.slice(0, 3);
  const fov = zooms.map((z, i) => Math.round(z * (geometry.shape[i] ?? 0)));
  return `${zooms.map((z) => z.toFixed(2).replace(/0$/, '')).join('x')} mm voxels, ${fov.join('x')} mm field of view, ${COVERAGE[coverageOf(geometry)]}`;
}

const CRITERIA: Array<{ key: (r: Ranked) => number; why: string }> = [
  { key: (r) => r.coverage, why: 'coverage (whole-head 3D first)' },
  { key: (r) => r.map, why: 'weighted images before maps and angiograms' },
  { key: (r) => r.voxel, why: 'higher resolution' },
];

function compareRanked(a: Ranked, b: Ranked): number {
  for (const c of CRITERIA) {
    const d = c.key(a) - c.key(b);
    if (d) return d;
  }
  return compareImages(a.image, b.image);
}

/**
 * The session's stand-in reference and why, from each image's geometry (null: unreadable).
 * Registered to the atlas by mutual information, as every reference is.
 */
export function chooseStandIn(
  images: readonly AnatImage[],
  geometries: ReadonlyMap<string, Geometry | null>,
): { reference: AnatImage; reason: string } {
  if (images.length === 0) throw new Error('no image to choose a reference from');
  const ranked = images.map((img) => rank(img, geometries.get(img.path) ?? null)).sort(compareRanked);
  const best = ranked[0]!;
  let reason = `no T1w in this session; ${best.image.suffix} stands in as the best 3D anatomical image (${describeGeometry(best.geometry)})`;
  const runnerUp = ranked[1];
  if (runnerUp) {
    const decisive = CRITERIA.find((c) => c.key(best) !== c.key(runnerUp));
    const by = decisive ? decisive.why : `suffix priority and names (${best.image.suffix} before ${runnerUp.image.suffix})`;
    reason += `, over ${path.basename(runnerUp.image.path)} (${describeGeometry(runnerUp.geometry)}) by ${by}`;
  }
  return { reference: best.image, reason: `${reason}; registered to the atlas by mutual information` };
}

/**
 * False when a file's BIDS name ends in another anatomical contrast's suffix (`sub-01_T2w.nii.gz`):
 * it is registered to the atlas as a stand-in reference is. Any other name counts as a T1w.
 */
export function namesT1wContrast(nameOrPath: string): boolean {
  const name = parseBidsName(path.basename(nameOrPath));
  return !name || name.suffix === 'T1w' || anatGroupOf(name.suffix) === null;
}
