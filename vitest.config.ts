import { defineConfig } from 'vitest/config';

// Multi-process tests spawn real workers; on 2 cores, run files one at a time so timings stay sane.
export default defineConfig({
  test: {
    include: [
      'packages/*/test/**/*.test.ts',
      'native/test/**/*.test.ts',
      'bench/test/**/*.test.ts',
      'test/**/*.test.ts', // what spans packages: installing the packed tarballs
    ],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
