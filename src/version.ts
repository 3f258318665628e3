/** micanon's version and repository, read once from package.json (the single source; the engine checks the version matches). */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from './paths.js';

const pkg = JSON.parse(readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as {
  version: string;
  repository?: string | { url?: string };
};

export const packageVersion: string = pkg.version;

/** The project's source repository (package.json `repository`), or null while it names none. */
export const packageRepository: string | null =
  (typeof pkg.repository === 'string' ? pkg.repository : pkg.repository?.url)?.replace(/^git\+/, '').replace(/\.git$/, '') || null;
