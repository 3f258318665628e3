/**
 * The README's first step works as written: `npm install -g .` (what `npm link` does, into a
 * prefix of our own here) puts `micanon` and `micapipe_anonymize` on a PATH, and they run from
 * any folder.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../src/paths.js';
import { buildOnce } from './helpers/cli.js';

const prefix = mkdtempSync(path.join(tmpdir(), 'micanon-global-'));
const elsewhere = mkdtempSync(path.join(tmpdir(), 'micanon-elsewhere-'));
const env = { ...process.env, PATH: `${path.join(prefix, 'bin')}${path.delimiter}${process.env.PATH}` };

beforeAll(async () => {
  await buildOnce();
  await execa('npm', ['install', '-g', packageRoot, '--prefix', prefix, '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], { env });
}, 120_000);

describe('micanon on PATH from a clone (npm install -g . / npm link)', () => {
  it('runs `micanon --help` from another folder, listing the other commands', async () => {
    const run = await execa('micanon', ['--help'], { cwd: elsewhere, env });
    expect(run.stdout).toMatch(/^Usage: micanon /);
    for (const command of ['micanon doctor', 'micanon example', 'micanon qc IMAGE', 'micapipe_anonymize -help']) expect(run.stdout).toContain(command);
  });

  it('runs `micapipe_anonymize -help` from another folder, saying what -threads sets', async () => {
    const run = await execa('micapipe_anonymize', ['-help'], { cwd: elsewhere, env, reject: false });
    expect(run.stdout).toMatch(/-threads <n> +threads of the engine's numeric pools/);
  });
});
