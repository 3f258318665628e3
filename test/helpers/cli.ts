/** Run the compiled CLI as a user would (built once per test process). */
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { packageRoot } from '../../src/paths.js';

let built: Promise<unknown> | null = null;

/** Compile src/ to dist/ once, so CLI tests never run a stale build. */
export function buildOnce(): Promise<unknown> {
  built ??= execa(process.execPath, [path.join(packageRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
    cwd: packageRoot,
  });
  return built;
}

export function runCli(
  bin: 'micanon' | 'micapipe_anonymize',
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; uid?: number; gid?: number } = {},
): ResultPromise<{ reject: false; all: true; env?: NodeJS.ProcessEnv; cwd?: string; uid?: number; gid?: number }> {
  return execa(process.execPath, [path.join(packageRoot, 'bin', `${bin}.js`), ...args], {
    reject: false,
    all: true,
    env: options.env,
    cwd: options.cwd,
    uid: options.uid,
    gid: options.gid,
  });
}
