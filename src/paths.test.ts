import { mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { interpreterProblem } from './paths.js';

describe('interpreterProblem', () => {
  it('is null for a runnable interpreter, "missing" for an absent one', () => {
    expect(interpreterProblem(process.execPath)).toBeNull();
    expect(interpreterProblem('/nonexistent/python')).toEqual({ kind: 'missing', message: 'Python engine not found at /nonexistent/python' });
    const dir = mkdtempSync(path.join(tmpdir(), 'micanon-interp-'));
    symlinkSync(path.join(dir, 'gone', 'python3'), path.join(dir, 'python'));
    expect(interpreterProblem(path.join(dir, 'python'))?.message).toMatch(/links to .*gone\/python3, which does not exist/);
  });
});
