/**
 * The engine's life is bound to the CLI's (python/micanon/lifeline.py): a Node process holding
 * the engine is SIGKILLed, and its Python must be gone within seconds, not go on writing.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa, execaSync } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../src/paths.js';
import { buildOnce } from './helpers/cli.js';
import { alive, waitUntil } from './helpers/processes.js';

beforeAll(async () => {
  await buildOnce();
});

describe('the engine dies with the process that started it', () => {
  it('is gone within 3 s of a SIGKILL of its Node parent, in the middle of a call', { timeout: 30_000 }, async () => {
    const bridge = path.join(packageRoot, 'dist', 'engine', 'bridge.js');
    // A named pipe no one writes to: reading it blocks the engine's main thread in C, as a long
    // registration does, so pythonia's own loop cannot notice that its parent is gone.
    const fifo = path.join(mkdtempSync(path.join(tmpdir(), 'micanon-lifeline-')), 'never_T1w.nii');
    execaSync('mkfifo', [fifo]);
    const holder = execa(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { Engine } from ${JSON.stringify(bridge)};
         const engine = await Engine.start({ threads: 1 });
         process.stdout.write(engine.pid + '\\n');
         await engine.call('check_inputs', { paths: [${JSON.stringify(fifo)}] }, { safeParse: (v) => ({ success: true, data: v }) });`,
      ],
      { reject: false, buffer: false },
    );
    const pythonPid = await new Promise<number>((resolve, reject) => {
      holder.stdout!.on('data', (chunk: Buffer) => resolve(Number(String(chunk).trim())));
      void holder.then((r) => reject(new Error(`the holder ended first: ${String(r.stderr)}`)));
    });
    await new Promise((r) => setTimeout(r, 500)); // into the blocking read
    expect(alive(pythonPid)).toBe(true);
    holder.kill('SIGKILL');
    await holder;
    const started = Date.now();
    expect(await waitUntil(() => !alive(pythonPid), 3000)).toBe(true);
    expect(Date.now() - started).toBeLessThan(3000);
  });
});
