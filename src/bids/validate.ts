/**
 * micanon's own checks of an input dataset: only what the official BIDS validator
 * (bids/validator.ts, run on every input and output) does not cover. Problems are collected as
 * values (code, message, path, severity), never printed from here.
 *
 * Left to the validator, and so no longer checked here: dataset_description.json present, valid
 * JSON, with Name and BIDSVersion (its MISSING_DATASET_DESCRIPTION, JSON_INVALID,
 * JSON_KEY_REQUIRED), and the names of the images (NOT_INCLUDED, MISSING_REQUIRED_ENTITY,
 * ENTITY_NOT_IN_RULE, FILENAME_MISMATCH...). A dataset with no sub- folder is valid BIDS; it
 * selects no files, which discovery reports (exit 18). Images micanon cannot read are the
 * engine's input checks (python/micanon/inputs.py), before any work.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';

export type Severity = 'error' | 'warning';

export interface ValidationProblem {
  code: string;
  message: string;
  path: string;
  severity: Severity;
}

/**
 * The checks the validator does not make, on `root`. Returns every problem found (empty when fine).
 *
 * - DATASET_IS_DERIVATIVE (warning): a derivative dataset is valid BIDS, so the validator has
 *   nothing to say, but micanon anonymizes raw data and skips every name with desc-; the user
 *   should know why images are missing from the run.
 */
export async function checkDataset(root: string): Promise<ValidationProblem[]> {
  const descriptionPath = path.join(path.resolve(root), 'dataset_description.json');
  // A missing or broken description is the validator's to report; here it only hides the type.
  const description: unknown = await readFile(descriptionPath, 'utf8')
    .then((text) => JSON.parse(text) as unknown)
    .catch(() => null);
  const problems: ValidationProblem[] = [];
  if (description && typeof description === 'object' && (description as Record<string, unknown>).DatasetType === 'derivative') {
    problems.push({
      code: 'DATASET_IS_DERIVATIVE',
      message: 'the input is a derivative dataset; micanon expects raw data (names with desc- are skipped)',
      path: descriptionPath,
      severity: 'warning',
    });
  }
  return problems;
}
