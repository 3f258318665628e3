/**
 * Where micanon's own parts live: the package root, the Python engine, its virtual environment
 * and the default atlas. One place, so nothing else builds paths from `import.meta.url`.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (holds package.json), from src/ (vitest) or dist/ (compiled) alike. */
export const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const pythonSource = path.join(packageRoot, 'python');

/** The project's virtual environment: $MICANON_VENV or <root>/.venv. */
export function venvDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.MICANON_VENV ?? path.join(packageRoot, '.venv'));
}

/** The interpreter the engine runs in: $MICANON_PYTHON, else the venv's python. */
export function engineInterpreter(env: NodeJS.ProcessEnv = process.env): string {
  return env.MICANON_PYTHON ?? path.join(venvDir(env), 'bin', 'python');
}

/** The default atlas folder: $MICANON_ATLAS or <root>/.atlas/micanon-head-v1 (built by setup). */
export function defaultAtlasDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.MICANON_ATLAS ?? path.join(packageRoot, '.atlas', 'micanon-head-v1'));
}

/** The shared real-data folder used by tests and the benchmark (absent on a fresh clone elsewhere). */
export function sharedDataDir(env: NodeJS.ProcessEnv = process.env): string | null {
  const dir = path.resolve(env.MICANON_SHARED_DATA ?? path.join(packageRoot, '..', 'shared', 'data'));
  return existsSync(dir) ? dir : null;
}
