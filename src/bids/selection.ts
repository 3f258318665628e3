/**
 * Which participants and sessions a run takes: the one label rule (with or without `sub-`/`ses-`,
 * letters and digits only), label files, and the include/exclude options of fMRIPrep and MRIQC
 * (--participant-label, --exclude-participant-label, --session-label, --exclude-session-label).
 * Both command lines and discovery use these functions; nothing else decides what a label is.
 */
import { readFileSync, statSync } from 'node:fs';
import { BidsError } from './errors.js';

export type LabelPrefix = 'sub' | 'ses';

/** What a BIDS label is: letters and digits only (the one rule; zod schemas use it too). */
export const LABEL_RE = /^[a-zA-Z0-9]+$/;

/** A label as given (`sub-01`, ` 01 `) without its prefix and spaces; not checked. */
export function stripLabelPrefix(raw: string, prefix: LabelPrefix): string {
  return raw.trim().replace(new RegExp(`^${prefix}-`), '');
}

/** True when `value` (with or without its prefix) is a valid label, so it cannot name a label file. */
export function isLabelLike(value: string, prefix: LabelPrefix): boolean {
  return LABEL_RE.test(stripLabelPrefix(value, prefix));
}

/**
 * Strip `sub-`/`ses-` prefixes, drop duplicates, keep order; throws BIDS_LABEL_INVALID for a label
 * with characters BIDS does not allow.
 */
export function normaliseLabels(labels: readonly string[], prefix: LabelPrefix): string[] {
  const out: string[] = [];
  for (const raw of labels) {
    const label = stripLabelPrefix(raw, prefix);
    if (!LABEL_RE.test(label)) {
      throw new BidsError('BIDS_LABEL_INVALID', `"${raw}" is not a valid ${prefix} label`);
    }
    if (!out.includes(label)) out.push(label);
  }
  return out;
}

/** The labels a label file lists: one per line (whitespace or commas also separate), `#` comments. */
export function labelsInText(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.replace(/#.*/, ''))
    .flatMap((line) => line.split(/[\s,]+/))
    .filter(Boolean);
}

/** The labels of a label file, normalised; BIDS_LABEL_FILE_UNREADABLE (66) when it cannot be read. */
export function readLabelFile(file: string, prefix: LabelPrefix): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new BidsError('BIDS_LABEL_FILE_UNREADABLE', `cannot read label file ${file}`, { path: file, cause: err });
  }
  return normaliseLabels(labelsInText(text), prefix);
}

/**
 * Command-line label arguments as labels: a value that is not a valid label (`labels.txt`,
 * `lists/sub.txt`) and names a file contributes the labels in it (as fMRIPrep accepts); anything
 * else is a label. Synchronous, because command-line parsing is. Returns the normalised labels.
 */
export function expandLabelArgs(values: readonly string[], prefix: LabelPrefix): string[] {
  const labels: string[] = [];
  for (const value of values) {
    if (!isLabelLike(value, prefix) && statSync(value, { throwIfNoEntry: false })?.isFile()) {
      labels.push(...readLabelFile(value, prefix));
    } else {
      labels.push(value);
    }
  }
  return normaliseLabels(labels, prefix);
}

/** At most 20 labels with their prefix, for a message. */
export function listForMessage(labels: readonly string[], prefix: string): string {
  if (labels.length === 0) return 'none';
  const shown = labels.slice(0, 20).map((l) => `${prefix}-${l}`).join(', ');
  return labels.length > 20 ? `${shown} and ${labels.length - 20} more` : shown;
}

/** What the user asked for; labels normalised or not (they are normalised here). */
export interface LabelSelection {
  /** Only these (all when absent or empty). Each must exist. */
  include?: readonly string[] | null;
  /** Never these; a label that does not exist is simply not there to exclude. */
  exclude?: readonly string[] | null;
}

const OPTION: Record<LabelPrefix, { include: string; exclude: string; noun: string }> = {
  sub: { include: '--participant-label', exclude: '--exclude-participant-label', noun: 'participant' },
  ses: { include: '--session-label', exclude: '--exclude-session-label', noun: 'session' },
};

/**
 * The labels a run takes out of those present (`where` names the dataset for messages):
 * included ones (each must exist: BIDS_LABEL_NOT_FOUND, exit 18) minus excluded ones. A selection
 * that the exclusion empties is BIDS_SELECTION_EMPTY (exit 18), naming both options' effect,
 * unless `othersRemain` (sessionless data stays when every session is excluded).
 */
export function selectLabels(
  present: readonly string[],
  selection: LabelSelection,
  prefix: LabelPrefix,
  where: string,
  othersRemain = false,
): string[] {
  const option = OPTION[prefix];
  const include = normaliseLabels(selection.include ?? [], prefix);
  const exclude = normaliseLabels(selection.exclude ?? [], prefix);
  const missing = include.filter((label) => !present.includes(label));
  if (missing.length) {
    throw new BidsError(
      'BIDS_LABEL_NOT_FOUND',
      `${option.noun} ${listForMessage(missing, prefix)} not found in ${where}; present: ${listForMessage(present, prefix)}`,
      { path: where },
    );
  }
  const included = include.length ? include : [...present];
  const selected = included.filter((label) => !exclude.includes(label));
  if (selected.length === 0 && included.length > 0 && !(othersRemain && include.length === 0)) {
    const from = include.length ? `the ${option.include} selection (${listForMessage(include, prefix)})` : `every ${option.noun} of ${where}`;
    throw new BidsError(
      'BIDS_SELECTION_EMPTY',
      `no ${option.noun} left to process: ${option.exclude} ${listForMessage(exclude, prefix)} removes ${from}`,
      { path: where },
    );
  }
  return selected;
}
