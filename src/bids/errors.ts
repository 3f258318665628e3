/**
 * User-facing failures of the BIDS layer. Each code carries an exit code from the BIDS Apps
 * execution spec and a hint saying what to do; the message names the file. The lead merges these
 * into the global catalogue (src/errors.ts); until then they stand alone with the same shape.
 */

/** Exit codes of the BIDS Apps execution spec used by this layer. */
export const BidsExitCode = {
  validationFailed: 16,
  noFilesSelected: 18,
  usage: 64,
  badData: 65,
  inputMissing: 66,
  cannotCreateOutput: 73,
} as const;

export const bidsErrorCatalogue = {
  BIDS_ROOT_MISSING: { exit: BidsExitCode.inputMissing, hint: 'check the bids_dir path exists and is readable' },
  BIDS_INVALID: { exit: BidsExitCode.validationFailed, hint: 'fix the dataset or pass --skip-bids-validation' },
  BIDS_LABEL_INVALID: { exit: BidsExitCode.usage, hint: 'labels are letters and digits only, with or without "sub-"/"ses-"' },
  BIDS_LABEL_FILE_UNREADABLE: { exit: BidsExitCode.inputMissing, hint: 'give a readable text file with one label per line' },
  BIDS_LABEL_NOT_FOUND: { exit: BidsExitCode.noFilesSelected, hint: 'check --participant-label / --session-label' },
  BIDS_NO_ANAT_IMAGES: { exit: BidsExitCode.noFilesSelected, hint: 'check the selection holds anat/*.nii[.gz] images' },
  BIDS_SIDECAR_INVALID: { exit: BidsExitCode.badData, hint: 'fix the JSON syntax of that sidecar' },
  BIDS_SIDECAR_AMBIGUOUS: { exit: BidsExitCode.badData, hint: 'keep at most one applicable sidecar per folder level (BIDS inheritance principle)' },
  BIDS_NAME_INVALID: { exit: BidsExitCode.badData, hint: 'rename the file following BIDS: sub-<label>[_ses-<label>][_<key>-<value>...]_<suffix>.nii[.gz]' },
  BIDS_KEEP_FORBIDDEN: { exit: BidsExitCode.usage, hint: 'remove that field from --keep-fields: direct identifiers are always removed' },
  BIDS_OUTPUT_NOT_WRITABLE: { exit: BidsExitCode.cannotCreateOutput, hint: 'check the output folder is writable and has free space' },
  BIDS_OUTPUT_FOREIGN: { exit: BidsExitCode.cannotCreateOutput, hint: 'choose an empty output folder or one micanon wrote before' },
} as const;
export type BidsErrorCode = keyof typeof bidsErrorCatalogue;

export class BidsError extends Error {
  readonly code: BidsErrorCode;
  readonly exitCode: number;
  /** The file or folder the problem is about, when there is one. */
  readonly path: string | undefined;

  constructor(code: BidsErrorCode, message: string, options: { path?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'BidsError';
    this.code = code;
    this.exitCode = bidsErrorCatalogue[code].exit;
    this.path = options.path;
  }

  /** The single line a user sees: message, then what to do. */
  oneLine(): string {
    return `${this.message.replace(/\s+/g, ' ').trim()} (${bidsErrorCatalogue[this.code].hint})`;
  }
}
