import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // Engine tests start a real Python process (antspyx import ~2.5 s, registrations take longer).
    testTimeout: 180_000,
    hookTimeout: 180_000,
    // Two cores: running suites that each start Python in parallel only slows both.
    fileParallelism: false,
  },
});
