/**
 * `micanon doctor` run by a user who is not root on an install whose venv links into root's home:
 * it must say exactly that (which folder, which user) and a fix that helps.
 */
import { chmodSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildOnce, runCli } from './helpers/cli.js';

beforeAll(async () => {
  await buildOnce();
});

describe('micanon doctor, as a user who cannot read the interpreter', () => {
  // Root reads every folder: the run drops to `nobody`, which needs root to start it.
  it.skipIf(process.getuid?.() !== 0)('names the closed folder and the user, and how to get an engine of their own', async () => {
    const home = mkdtempSync(path.join(tmpdir(), 'micanon-roothome-'));
    mkdirSync(path.join(home, 'bin'));
    writeFileSync(path.join(home, 'bin', 'python3'), '#!/bin/sh\n', { mode: 0o755 });
    chmodSync(home, 0o700);
    const venv = mkdtempSync(path.join(tmpdir(), 'micanon-venv-'));
    chmodSync(venv, 0o755);
    symlinkSync(path.join(home, 'bin', 'python3'), path.join(venv, 'python'));
    const run = await runCli('micanon', ['doctor'], { env: { ...process.env, MICANON_PYTHON: path.join(venv, 'python') }, cwd: tmpdir(), uid: 65534, gid: 65534 });
    expect(run.exitCode).toBe(1);
    expect(run.stdout).toContain(`MISSING venv`);
    expect(run.stdout).toContain(
      `${path.join(venv, 'python')} (${path.join(venv, 'python')} -> ${path.join(home, 'bin', 'python3')}) cannot be run by user nobody (uid 65534): the folder ${home} is not readable by this user`,
    );
    expect(run.stdout).toContain('MICANON_VENV=$HOME/micanon-venv npm run setup');
  });
});
