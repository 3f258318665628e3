/**
 * Partial outputs in flight. Every temporary output name is registered here before the engine
 * writes it and released once renamed, so an interrupted or failed run can remove them all.
 */
import { rm } from 'node:fs/promises';

const inFlight = new Set<string>();

export function registerTemp(tempPath: string): string {
  inFlight.add(tempPath);
  return tempPath;
}

export function releaseTemp(tempPath: string): void {
  inFlight.delete(tempPath);
}

export async function removeRegisteredTemps(): Promise<void> {
  const paths = [...inFlight];
  inFlight.clear();
  await Promise.all(paths.map((p) => rm(p, { force: true, recursive: true }).catch(() => undefined)));
}
