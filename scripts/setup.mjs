#!/usr/bin/env node
/**
 * One-command setup, idempotent: build the TypeScript, create or refresh the project's Python
 * virtual environment from the hashed lock, and build the head atlas. Each step is skipped when
 * what it would make is already there and current, so `npm test` and `npm run example` can call
 * it every time.
 *
 * Environment: MICANON_VENV (venv folder, default .venv), MICANON_BOOTSTRAP_PYTHON (the
 * interpreter that creates it, default python3), MICANON_ATLAS (atlas folder), MICANON_SKIP_ATLAS=1.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const venv = path.resolve(process.env.MICANON_VENV ?? path.join(root, '.venv'));
const venvPython = path.join(venv, 'bin', 'python');
const lockFile = path.join(root, 'python', 'requirements.lock');
const atlasDir = path.resolve(process.env.MICANON_ATLAS ?? path.join(root, '.atlas', 'micanon-head-v1'));
const atlasCache = path.join(path.dirname(atlasDir), 'sources');
const supportedPython = { min: [3, 10], max: [3, 13] };

function say(message) {
  process.stderr.write(`setup: ${message}\n`);
}

function fail(message, fix) {
  process.stderr.write(`setup: ERROR: ${message}${fix ? `\n  fix: ${fix}` : ''}\n`);
  process.exit(1);
}

async function timed(label, fn) {
  const started = Date.now();
  const result = await fn();
  say(`${label} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  return result;
}

function checkNode() {
  const [major, minor] = process.versions.node.split('.').map(Number);
  if (!((major === 20 && minor >= 19) || (major === 22 && minor >= 12) || major > 22)) {
    fail(`Node ${process.versions.node} is too old`, 'install Node.js 20.19+ or 22.12+');
  }
}

async function buildTypeScript() {
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  if (!existsSync(tsc)) {
    if (!existsSync(path.join(root, 'dist', 'cli', 'micanon.js'))) {
      fail('dist/ is missing and TypeScript is not installed', 'run `npm ci` first');
    }
    return say('TypeScript: using the prebuilt dist/');
  }
  await timed('TypeScript built', () => execa(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' }));
}

async function bootstrapInterpreter() {
  const candidate = process.env.MICANON_BOOTSTRAP_PYTHON ?? 'python3';
  let version;
  try {
    const { stdout } = await execa(candidate, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])']);
    version = stdout.trim().split('.').map(Number);
  } catch {
    fail(`no Python interpreter "${candidate}" found`, 'install Python 3.11 (Debian: apt-get install python3 python3-venv) or set MICANON_BOOTSTRAP_PYTHON');
  }
  const cmp = (a, b) => a[0] - b[0] || a[1] - b[1];
  if (cmp(version, supportedPython.min) < 0 || cmp(version, supportedPython.max) > 0) {
    fail(`${candidate} is Python ${version.join('.')}; micanon's pinned wheels need 3.10 to 3.13`, 'set MICANON_BOOTSTRAP_PYTHON to a Python 3.11 interpreter');
  }
  return candidate;
}

async function ensureVenv() {
  const lockHash = createHash('sha256').update(readFileSync(lockFile)).digest('hex');
  const stamp = path.join(venv, '.micanon-lock.sha256');
  if (existsSync(venvPython) && existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === lockHash) {
    return say(`Python environment up to date (${venv})`);
  }
  if (!existsSync(venvPython)) {
    const python = await bootstrapInterpreter();
    await timed(`created ${venv}`, () =>
      execa(python, ['-m', 'venv', venv], { stdio: 'inherit' }).catch(() =>
        fail(`could not create a virtual environment with ${python}`, 'Debian/Ubuntu: apt-get install python3-venv'),
      ),
    );
  }
  await timed('installed the pinned Python packages (requirements.lock, hashes checked)', () =>
    execa(venvPython, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--require-hashes', '--no-deps', '-r', lockFile], {
      stdio: 'inherit',
    }).catch(() => fail('pip could not install python/requirements.lock', 'check network access to PyPI, then rerun `npm run setup`')),
  );
  // The engine is imported from the source tree: one .pth line, no copy to go stale.
  const { stdout: sitePackages } = await execa(venvPython, ['-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])']);
  writeFileSync(path.join(sitePackages.trim(), 'micanon.pth'), `${path.join(root, 'python')}\n`);
  writeFileSync(stamp, `${lockHash}\n`);
}

async function ensureAtlas() {
  if (process.env.MICANON_SKIP_ATLAS === '1') return say('atlas: skipped (MICANON_SKIP_ATLAS=1)');
  await timed(`atlas ready at ${atlasDir}`, () =>
    execa(venvPython, ['-m', 'micanon.atlas.build', '--out', atlasDir, '--cache', atlasCache], {
      stdio: 'inherit',
      env: { PYTHONPATH: path.join(root, 'python') },
    }).catch(() => fail('the atlas build failed (see above)', 'rerun `npm run setup`; the build log says which step failed')),
  );
}

checkNode();
await buildTypeScript();
await ensureVenv();
await ensureAtlas();
