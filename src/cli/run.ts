/**
 * Shared ending of every command: print one line per failure, close the engine, flush the log,
 * exit with the catalogue's code. Ctrl-C and SIGTERM stop the engine and remove partial files
 * and the work folder. (SIGKILL cannot be caught: the engine then ends itself, see
 * python/micanon/lifeline.py, and the next run removes the leftovers, see pipeline/temps.ts.)
 */
import { activeEngine } from '../engine/bridge.js';
import { ExitCode, MicanonError, describeError } from '../errors.js';
import { flushLog, log, silenceConsole } from '../log.js';
import { cleanUpRun, markStopping, removeWorkFolderAgain } from '../pipeline/temps.js';

let stopping = false;

async function stopOnSignal(signal: NodeJS.Signals): Promise<void> {
  if (stopping) return;
  stopping = true;
  markStopping();
  log.error(`interrupted by ${signal}: stopping the engine, removing partial outputs and the work folder`);
  // One line per interrupt: what fails from here on (the engine call the stop cuts short) is a
  // consequence of it, kept in the run's log file only.
  silenceConsole();
  await activeEngine()?.close();
  await cleanUpRun();
  await flushLog().catch(() => undefined);
  await removeWorkFolderAgain();
  process.exit(signal === 'SIGINT' ? ExitCode.interrupted : ExitCode.terminated);
}

/** Run a command's body with the process-level guarantees every micanon command gives. */
export async function runCommand(body: () => Promise<number>): Promise<never> {
  process.once('SIGINT', (s) => void stopOnSignal(s));
  process.once('SIGTERM', (s) => void stopOnSignal(s));
  let code: number;
  try {
    code = await body();
  } catch (err) {
    log.error(describeError(err));
    if (err instanceof MicanonError && err.detail) log.debug(err.detail);
    else if (!(err instanceof MicanonError) && err instanceof Error && err.stack) log.debug(err.stack);
    code = exitCodeOf(err);
  }
  // An interrupt owns the ending (its exit code, its one line): the body only ended because of it.
  if (stopping) await new Promise<never>(() => undefined);
  await activeEngine()?.close();
  await cleanUpRun();
  await flushLog().catch(() => undefined);
  process.exit(code);
}

/** Errors from any layer carry their BIDS-Apps exit code; anything else is a plain failure. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof MicanonError) return err.exitCode;
  if (err && typeof err === 'object' && 'exitCode' in err && typeof err.exitCode === 'number') return err.exitCode;
  return ExitCode.failure;
}
