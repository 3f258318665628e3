import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, EngineCallError } from '../src/engine/bridge.js';
import { imageInfoSchema, versionsSchema } from '../src/engine/schemas.js';
import { MicanonError } from '../src/errors.js';
import { writeTinyNifti } from './helpers/nifti.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('the bridge into the real engine', () => {
  let engine: Engine;
  const dir = mkdtempSync(path.join(tmpdir(), 'micanon-bridge-'));

  beforeAll(async () => {
    engine = await Engine.start({ threads: 1 });
  });
  afterAll(async () => {
    await engine?.close();
  });

  it('reports the engine versions, antspyx and nibabel included', async () => {
    const versions = await engine.call('versions', {}, versionsSchema);
    const pkg = JSON.parse(readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };
    expect(versions.micanon).toBe(pkg.version);
    expect(versions.packages.antspyx).toMatch(/^\d+\.\d+/);
    expect(versions.packages.nibabel).toMatch(/^\d+\.\d+/);
  });

  it('reads back the header of a NIfTI written here, not by Python', async () => {
    const file = path.join(dir, 'tiny.nii.gz');
    const sform = [
      [-2, 0, 0, 30],
      [0, 2, 0, -40],
      [0, 0, 3, 12.5],
    ];
    writeTinyNifti(file, { shape: [5, 6, 7], sform, data: new Int16Array(5 * 6 * 7).fill(3) });
    const info = await engine.call('image_info', { path: file }, imageInfoSchema);
    expect(info.shape).toEqual([5, 6, 7]);
    expect(info.dtype).toBe('int16');
    expect(info.sform_code).toBe(2);
    expect(info.orientation).toBe('LAS');
    expect(info.affine.slice(0, 3)).toEqual(sform);
  });

  it('turns a Python exception into a typed one-line error and keeps going', async () => {
    const notNifti = path.join(dir, 'notes.nii');
    writeFileSync(notNifti, 'this is not an image');
    const failure = await engine.call('image_info', { path: notNifti }, imageInfoSchema).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(EngineCallError);
    const error = failure as EngineCallError;
    expect(error.kind).toBe('bad_input');
    expect(error.exitCode).toBe(65);
    expect(error.oneLine()).toContain(notNifti);
    expect(error.oneLine()).not.toContain('\n');
    expect(error.detail).toContain('Traceback');
    const missing = await engine.call('image_info', { path: path.join(dir, 'nope.nii') }, imageInfoSchema).catch((e: unknown) => e);
    expect((missing as EngineCallError).exitCode).toBe(66);
    // The engine survived both failures.
    await expect(engine.call('versions', {}, versionsSchema)).resolves.toBeTruthy();
  });
});

describe('the Python process lifecycle', () => {
  it('is gone after close', async () => {
    const engine = await Engine.start({ threads: 1 });
    const pid = engine.pid!;
    expect(alive(pid)).toBe(true);
    await engine.close();
    expect(alive(pid)).toBe(false);
  });

  it('fails pending and later calls instead of hanging when Python dies', async () => {
    const engine = await Engine.start({ threads: 1 });
    process.kill(engine.pid!, 'SIGKILL');
    const failure = await engine.call('versions', {}, versionsSchema).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(MicanonError);
    expect((failure as MicanonError).code).toBe('ENGINE_CRASHED');
    await engine.close();
  });

  it('says how to fix a missing interpreter', async () => {
    const failure = await Engine.start({ threads: 1, python: '/nonexistent/python' }).catch((e: unknown) => e);
    expect((failure as MicanonError).code).toBe('ENGINE_MISSING');
    expect((failure as MicanonError).oneLine()).toContain('npm run setup');
  });
});
