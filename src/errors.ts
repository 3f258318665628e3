/**
 * The catalogue of user-facing failures. Every problem a user can see has a code, an exit code
 * from the BIDS Apps execution spec and a one-line message naming the file and what to do.
 * Deep code throws a MicanonError; only the CLI prints and exits.
 */

/** Exit codes of the BIDS Apps execution spec (and sysexits.h, which it borrows from). */
export const ExitCode = {
  ok: 0,
  failure: 1,
  validationFailed: 16,
  unknownAnalysisLevel: 17,
  noFilesSelected: 18,
  usage: 64,
  badData: 65,
  inputMissing: 66,
  cannotCreateOutput: 73,
  interrupted: 130,
  terminated: 143,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export const catalogue = {
  USAGE: { exit: ExitCode.usage, hint: 'usage: micanon bids_dir output_dir {participant,group} [options]; see micanon --help' },
  QC_USAGE: { exit: ExitCode.usage, hint: 'usage: micanon qc IMAGE [--original ORIGINAL] [--method deface|reface|warpface] [--out DIR]; see micanon qc --help' },
  UNKNOWN_ANALYSIS_LEVEL: { exit: ExitCode.unknownAnalysisLevel, hint: 'use "participant" or "group"' },
  BIDS_INVALID: { exit: ExitCode.validationFailed, hint: 'fix what the BIDS validator named above (its first errors), or pass --skip-bids-validation' },
  BIDS_VALIDATOR_MISSING: { exit: ExitCode.failure, hint: 'run `npm run setup` (it installs the pinned BIDS validator into the venv), or pass --skip-bids-validation' },
  BIDS_VALIDATOR_FAILED: { exit: ExitCode.failure, hint: 'rerun with --log-level debug for its own output, or pass --skip-bids-validation' },
  BIDS_ROOT_MISSING: { exit: ExitCode.inputMissing, hint: 'check the bids_dir path exists and is readable' },
  BIDS_LABEL_INVALID: { exit: ExitCode.usage, hint: 'labels are letters and digits only, with or without "sub-"/"ses-"' },
  BIDS_LABEL_FILE_UNREADABLE: { exit: ExitCode.inputMissing, hint: 'give a readable text file with one label per line' },
  BIDS_LABEL_NOT_FOUND: { exit: ExitCode.noFilesSelected, hint: 'check --participant-label / --session-label' },
  BIDS_NO_ANAT_IMAGES: { exit: ExitCode.noFilesSelected, hint: 'check the selection holds anat/*.nii[.gz] images' },
  BIDS_SELECTION_EMPTY: {
    exit: ExitCode.noFilesSelected,
    hint: 'loosen --exclude-participant-label, --exclude-session-label or --bids-filter-file',
  },
  BIDS_FILTER_INVALID: {
    exit: ExitCode.usage,
    hint: 'write it as fMRIPrep\'s --bids-filter-file: {"t1w": {"acquisition": "mprage", "reconstruction": null}}, entities by their PyBIDS names, null for absent, "*" for any value',
  },
  BIDS_FILTER_FILE_UNREADABLE: { exit: ExitCode.inputMissing, hint: 'check the path of --bids-filter-file exists and is readable' },
  BIDS_SIDECAR_INVALID: { exit: ExitCode.badData, hint: 'fix the JSON syntax of that sidecar' },
  BIDS_SIDECAR_AMBIGUOUS: { exit: ExitCode.badData, hint: 'keep at most one applicable sidecar per folder level (BIDS inheritance principle)' },
  BIDS_NAME_INVALID: { exit: ExitCode.badData, hint: 'rename the file following BIDS: sub-<label>[_ses-<label>][_<key>-<value>...]_<suffix>.nii[.gz]' },
  BIDS_KEEP_FORBIDDEN: { exit: ExitCode.usage, hint: 'remove that field from --keep-field: direct identifiers are always removed' },
  BIDS_OUTPUT_NOT_WRITABLE: { exit: ExitCode.cannotCreateOutput, hint: 'check the output folder is writable and has free space' },
  BIDS_OUTPUT_FOREIGN: { exit: ExitCode.cannotCreateOutput, hint: 'choose an empty output folder or one micanon wrote before' },
  NO_FILES_SELECTED: { exit: ExitCode.noFilesSelected, hint: 'check --participant-label / --session-label' },
  BAD_DATA: { exit: ExitCode.badData, hint: 'check the file is a valid NIfTI image' },
  INPUT_MISSING: { exit: ExitCode.inputMissing, hint: 'check the path exists and is readable' },
  CANNOT_CREATE_OUTPUT: { exit: ExitCode.cannotCreateOutput, hint: 'check the output folder is writable' },
  ENGINE_MISSING: { exit: ExitCode.failure, hint: 'run `npm run setup` (or `micanon doctor`)' },
  ENGINE_UNREADABLE: {
    exit: ExitCode.failure,
    hint: 'ask whoever installed micanon to make that folder readable (chmod o+rx), or make your own engine: MICANON_VENV=$HOME/micanon-venv npm run setup, then export MICANON_VENV',
  },
  ENGINE_CRASHED: { exit: ExitCode.failure, hint: 'rerun with --log-level debug and report the log' },
  ENGINE_FAILED: { exit: ExitCode.failure, hint: 'rerun with --log-level debug for the Python traceback' },
  ATLAS_INVALID: { exit: ExitCode.badData, hint: 'rebuild it with `npm run setup` or fix the folder given to --atlas' },
  QC_FAILED: { exit: ExitCode.failure, hint: 'open the QC report; the output was not written' },
  QC_IMAGE_FAILED: { exit: ExitCode.failure, hint: 'the image fails a check: see the verdict above, and the page written with --out' },
  SLURM_USAGE: { exit: ExitCode.usage, hint: 'usage: micanon slurm bids_dir output_dir [slurm options] [participant options]; see micanon slurm --help' },
  SLURM_UNAVAILABLE: { exit: ExitCode.failure, hint: 'run micanon slurm on a login node where sbatch works, or use --print and submit the script yourself' },
  SLURM_SUBMIT_FAILED: { exit: ExitCode.failure, hint: 'check the partition, time and memory against the cluster\'s limits (sinfo), then run the same command again' },
  INTERRUPTED: { exit: ExitCode.interrupted, hint: 'nothing partial was kept' },
} as const;
export type ErrorCode = keyof typeof catalogue;

export class MicanonError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;
  /** Longer detail for the debug log (e.g. a Python traceback); never printed at info level. */
  readonly detail: string | undefined;

  constructor(code: ErrorCode, message: string, options: { detail?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'MicanonError';
    this.code = code;
    this.exitCode = catalogue[code].exit;
    this.detail = options.detail;
  }

  /** The single line a user sees: message, then what to do. */
  oneLine(): string {
    return `${this.message.replace(/\s+/g, ' ').trim()} (${catalogue[this.code].hint})`;
  }
}

/** Any thrown value as a one-line message (MicanonError keeps its hint). */
export function describeError(err: unknown): string {
  // MicanonError, and the layer errors of the same shape (BidsError), say what to do.
  if (err && typeof err === 'object' && 'oneLine' in err && typeof err.oneLine === 'function') {
    return String(err.oneLine());
  }
  if (err instanceof Error) return err.message.split('\n')[0] ?? String(err);
  return String(err);
}
