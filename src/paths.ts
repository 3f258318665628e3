/**
 * Where micanon's own parts live: the package root, the Python engine, its virtual environment
 * and the default atlas. One place, so nothing else builds paths from `import.meta.url`.
 */
import { accessSync, constants, existsSync, lstatSync, readlinkSync } from 'node:fs';
import { userInfo } from 'node:os';
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

/** The first folder on the way to `file` this user may not enter (search permission), or null. */
function firstClosedFolder(file: string): string | null {
  const parts = path.resolve(file).split(path.sep).slice(1, -1);
  let dir: string = path.sep;
  for (const part of parts) {
    dir = path.join(dir, part);
    try {
      accessSync(dir, constants.X_OK);
    } catch (err) {
      // A folder that is not there is a missing interpreter, not a closed way.
      return (err as NodeJS.ErrnoException).code === 'ENOENT' ? null : dir;
    }
  }
  return null;
}

/**
 * Why `interpreter` cannot be run by this user, in one line, or null when it can. A venv's
 * `bin/python` is a chain of links to the Python that made it; a venv made by root from a Python
 * in root's home is "not found" for everyone else, and only the chain says why.
 */
export interface InterpreterProblem {
  kind: 'missing' | 'unreadable';
  message: string;
}

export function interpreterProblem(interpreter: string): InterpreterProblem | null {
  try {
    accessSync(interpreter, constants.X_OK);
    return null;
  } catch {
    // Follow the links ourselves to name the place where the way is closed.
  }
  const user = (() => {
    try {
      return `${userInfo().username} (uid ${process.getuid?.() ?? '?'})`;
    } catch {
      return `uid ${process.getuid?.() ?? '?'}`;
    }
  })();
  let current = interpreter;
  const chain: string[] = [];
  for (let hop = 0; hop < 40; hop++) {
    const closed = firstClosedFolder(current);
    if (closed) {
      const via = chain.length ? ` (${[interpreter, ...chain].join(' -> ')})` : '';
      return {
        kind: 'unreadable',
        message: `the Python engine's interpreter ${interpreter}${via} cannot be run by user ${user}: the folder ${closed} is not readable by this user (the venv was made from a Python inside it)`,
      };
    }
    const stat = lstatSync(current, { throwIfNoEntry: false });
    if (!stat) {
      const message = chain.length
        ? `the Python engine's interpreter ${interpreter} links to ${current}, which does not exist (the Python that made the venv was removed)`
        : `Python engine not found at ${interpreter}`;
      return { kind: 'missing', message };
    }
    if (!stat.isSymbolicLink()) {
      return { kind: 'unreadable', message: `the Python engine's interpreter ${current} cannot be run by user ${user} (no execute permission)` };
    }
    current = path.resolve(path.dirname(current), readlinkSync(current));
    chain.push(current);
  }
  return { kind: 'missing', message: `the Python engine's interpreter ${interpreter} is a loop of symbolic links` };
}
