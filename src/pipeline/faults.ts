/**
 * The fault suite's hook (test/faults.test.ts): with MICANON_TEST_HOLD=<point>, the run says on
 * stderr when it reaches that point (with the engine's pid) so the test can kill it there; at the
 * points TypeScript owns it also waits there forever, so the kill lands exactly there. Without
 * the variable this does nothing.
 */
import { activeEngine } from '../engine/bridge.js';

export type FaultPoint = 'registration' | 'qc' | 'rename' | 'report' | 'inputs';

const HOLD_ENV = 'MICANON_TEST_HOLD';

/** Announce `point` when it is the one asked for; with `hold`, never return. */
export async function faultPoint(point: FaultPoint, options: { hold: boolean }): Promise<void> {
  if (process.env[HOLD_ENV] !== point) return;
  process.stderr.write(`micanon-test-hold ${point} engine-pid=${activeEngine()?.pid ?? 'none'}\n`);
  if (!options.hold) return;
  await new Promise<never>(() => setInterval(() => undefined, 60_000));
}
