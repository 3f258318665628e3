import os from 'node:os';
import path from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // Engine tests start a real Python process (antspyx import ~2.5 s); a session extracts its
    // reference's brain with ROBEX (about a minute per new head) besides registering it.
    testTimeout: 600_000,
    hookTimeout: 600_000,
    // Two cores: running suites that each start Python in parallel only slows both.
    fileParallelism: false,
    // ROBEX's brain of the same head is the same mask (fixed seed): one extraction per head for the
    // whole suite instead of one per run (python/micanon/anonymize/native_brain.py, CACHE_VAR).
    env: { MICANON_NATIVE_BRAIN_CACHE: path.join(os.tmpdir(), 'micanon-test-native-brain') },
  },
});
