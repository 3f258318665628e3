/**
 * `micanon doctor`: what this installation has, what is missing, and the command that fixes it.
 * It starts the real engine, so "ok" means the engine really answers.
 */
import { tmpdir } from 'node:os';
import { validatorCheck } from '../bids/validator.js';
import { Engine } from '../engine/bridge.js';
import { atlasInfo, engineVersions } from '../engine/contract.js';
import { catalogue, describeError } from '../errors.js';
import { defaultAtlasDir, engineInterpreter, interpreterProblem, venvDir } from '../paths.js';
import { packageVersion } from '../version.js';

interface Check {
  name: string;
  ok: boolean;
  value: string;
  fix?: string;
}

const requiredPackages = ['antspyx', 'nibabel', 'numpy', 'scipy', 'pillow', 'dlib', 'face_recognition_models'];

export async function runDoctor(options: { atlas?: string } = {}): Promise<number> {
  const checks: Check[] = [];
  const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
  checks.push({
    name: 'node',
    ok: (major === 20 && minor >= 19) || major >= 22,
    value: process.versions.node,
    fix: 'install Node.js 20.19+ or 22.12+',
  });
  checks.push({ name: 'micanon', ok: true, value: packageVersion });
  const interpreter = engineInterpreter();
  const problem = interpreterProblem(interpreter);
  checks.push({
    name: 'venv',
    ok: problem === null,
    value: problem === null ? venvDir() : problem.message,
    fix: problem?.kind === 'unreadable' ? catalogue.ENGINE_UNREADABLE.hint : 'npm run setup',
  });
  const atlasDir = options.atlas ?? defaultAtlasDir();
  if (problem === null) {
    let engine: Engine | null = null;
    try {
      engine = await Engine.start({ threads: 1 });
      const versions = await engineVersions(engine, {});
      checks.push({ name: 'python', ok: true, value: `${versions.python} (${versions.executable})` });
      checks.push({
        name: 'engine',
        ok: versions.micanon === packageVersion,
        value: versions.micanon,
        fix: 'the Python engine and package.json disagree: reinstall micanon',
      });
      for (const name of requiredPackages) {
        const version = versions.packages[name] ?? null;
        checks.push({ name, ok: version !== null, value: version ?? 'missing', fix: 'npm run setup' });
      }
      try {
        const atlas = await atlasInfo(engine, { path: atlasDir });
        checks.push({ name: 'atlas', ok: true, value: `${atlas.path} (${atlas.kind})` });
      } catch (err) {
        checks.push({ name: 'atlas', ok: false, value: describeError(err), fix: 'npm run setup (builds the atlas)' });
      }
    } catch (err) {
      checks.push({ name: 'engine', ok: false, value: describeError(err), fix: 'npm run setup' });
    } finally {
      await engine?.close();
    }
    // The official BIDS validator every run uses on its input and output (from the same venv).
    const validator = await validatorCheck(tmpdir()).catch((err: unknown) => ({ ok: false, value: describeError(err) }));
    checks.push({ name: 'bids-validator', ...validator, fix: 'npm run setup' });
  }
  const width = Math.max(...checks.map((c) => c.name.length));
  for (const check of checks) {
    const fix = check.ok || !check.fix ? '' : `   -> fix: ${check.fix}`;
    process.stdout.write(`${check.ok ? 'ok     ' : 'MISSING'} ${check.name.padEnd(width)}  ${check.value}${fix}\n`);
  }
  return checks.every((c) => c.ok) ? 0 : 1;
}
