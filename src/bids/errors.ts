/**
 * User-facing failures of the BIDS layer: MicanonErrors whose codes start with BIDS_ (their exit
 * codes and hints live in the one catalogue, src/errors.ts), carrying the file they are about.
 */
import { MicanonError, type ErrorCode } from '../errors.js';

export type BidsErrorCode = Extract<ErrorCode, `BIDS_${string}`>;

export class BidsError extends MicanonError {
  /** The file or folder the problem is about, when there is one. */
  readonly path: string | undefined;

  constructor(code: BidsErrorCode, message: string, options: { path?: string; cause?: unknown } = {}) {
    super(code, message, { cause: options.cause });
    this.name = 'BidsError';
    this.path = options.path;
  }
}
