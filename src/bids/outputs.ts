/**
 * Where each anonymized image and its sidecar go, for the three output layouts:
 *
 * - `derivatives`: a BIDS derivative dataset,
 *   `<out>/sub-01[/ses-01]/anat/sub-01[_ses-01]_..._desc-defaced_T1w.nii.gz`
 *   (`desc-refaced`, `desc-warpfaced`), desc in its specification position (last entity).
 *   An input that already has a desc (a derivative used as input) keeps it, with the method
 *   appended in camelCase: `desc-preproc` -> `desc-preprocDefaced`, still one valid label.
 *   Always gzip-compressed.
 * - `raw`: a raw BIDS dataset with the same relative paths and names as the input (extension
 *   kept, so scans.tsv and IntendedFor entries stay valid).
 * - `micapipe`: micapipe's convention, `<out>/sub-XX[/ses-YY]/anat/<input stem>_defaced.nii.gz`.
 */
import path from 'node:path';
import { formatBidsName, parseBidsName, stemOf } from './entities.js';
import { BidsError } from './errors.js';

export type OutputLayout = 'derivatives' | 'raw' | 'micapipe';
export type AnonymizationMethod = 'deface' | 'reface' | 'warpface';

/** The past participle used in names: deface -> defaced. */
export function methodLabel(method: AnonymizationMethod): string {
  return `${method}d`;
}

export interface OutputPaths {
  image: string;
  sidecar: string;
}

/** The sidecar path of an image path: same folder and name, `.json` instead of `.nii[.gz]`. */
export function sidecarPathFor(imagePath: string): string {
  return path.join(path.dirname(imagePath), `${stemOf(imagePath)}.json`);
}

/**
 * Output image and sidecar paths for one input image.
 * `inputRelativePath` is the input's path relative to the dataset root ('/'-separated,
 * e.g. `sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz`). Throws BIDS_NAME_INVALID when the
 * name does not parse as BIDS (the derivative name is built from its entities).
 */
export function outputPathsFor(
  inputRelativePath: string,
  options: { layout: OutputLayout; method: AnonymizationMethod; outputDir: string },
): OutputPaths {
  const relDir = path.posix.dirname(inputRelativePath.split(path.sep).join('/'));
  const inputName = path.posix.basename(inputRelativePath);
  const outDir = path.resolve(options.outputDir);
  let name: string;
  switch (options.layout) {
    case 'raw':
      name = inputName;
      break;
    case 'micapipe':
      name = `${stemOf(inputName)}_${methodLabel(options.method)}.nii.gz`;
      break;
    case 'derivatives': {
      const parsed = parseBidsName(inputName);
      if (!parsed) {
        throw new BidsError('BIDS_NAME_INVALID', `cannot name the output of ${inputRelativePath}: not a BIDS file name`, {
          path: inputRelativePath,
        });
      }
      const label = methodLabel(options.method);
      const desc = parsed.entities.desc ? `${parsed.entities.desc}${label[0]?.toUpperCase()}${label.slice(1)}` : label;
      name = formatBidsName({ entities: { ...parsed.entities, desc }, suffix: parsed.suffix, extension: '.nii.gz' });
      break;
    }
  }
  const image = path.join(outDir, ...relDir.split('/').filter((p) => p && p !== '.'), name);
  return { image, sidecar: sidecarPathFor(image) };
}

/**
 * Where the per-participant record of removed sidecar fields goes: `<out>/logs/`, never inside
 * the dataset tree (`logs/` is not BIDS; list it in the output's .bidsignore).
 */
export function removedFieldsLogPath(outputDir: string, subject: string, session: string | null): string {
  const name = `sub-${subject}${session ? `_ses-${session}` : ''}_removed-fields.json`;
  return path.join(path.resolve(outputDir), 'logs', name);
}
