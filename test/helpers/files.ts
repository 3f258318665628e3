/** File facts for tests. */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

/** Every file under `dir` (recursively), as paths relative to it, sorted; [] when `dir` is absent. */
export function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}
