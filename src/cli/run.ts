/**
 * Shared ending of every command: print one line per failure, close the engine, flush the log,
 * exit with the catalogue's code. Ctrl-C and SIGTERM stop the engine and remove partial files.
 */
import { activeEngine } from '../engine/bridge.js';
import { ExitCode, MicanonError, describeError } from '../errors.js';
import { flushLog, log } from '../log.js';
import { removeRegisteredTemps } from '../pipeline/temps.js';

let stopping = false;

async function stopOnSignal(signal: NodeJS.Signals): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.error(`interrupted by ${signal}: stopping the engine, removing partial outputs`);
  await activeEngine()?.close();
  await removeRegisteredTemps();
  await flushLog().catch(() => undefined);
  process.exit(signal === 'SIGINT' ? ExitCode.interrupted : 128 + 15);
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
  await activeEngine()?.close();
  await removeRegisteredTemps();
  await flushLog().catch(() => undefined);
  process.exit(code);
}

/** Errors from any layer carry their BIDS-Apps exit code; anything else is a plain failure. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof MicanonError) return err.exitCode;
  if (err && typeof err === 'object' && 'exitCode' in err && typeof err.exitCode === 'number') return err.exitCode;
  return ExitCode.failure;
}
