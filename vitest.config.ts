import os from 'node:os';
import path from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // Engine tests start a real Python process (antspyx import ~2.5 s, registrations take longer).
    testTimeout: 180_000,
    hookTimeout: 180_000,
    // Two cores: running suites that each start Python in parallel only slows both.
    fileParallelism: false,
    // ROBEX's brain of the same head is the same mask (fixed seed): one extraction per head for the
    // whole suite instead of one per run (python/micanon/anonymize/native_brain.py, CACHE_VAR).
    env: { MICANON_NATIVE_BRAIN_CACHE: path.join(os.tmpdir(), 'micanon-test-native-brain') },
  },
});
