import { defineConfig } from 'vitest/config';

/**
 * Two projects: `unit` (fast, parallel, no Docker) and `e2e` (real Docker through bin/orca,
 * one file at a time so timings stay honest on two cores). scripts/test.sh runs both.
 */
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['**/*.test.ts'],
          exclude: ['node_modules/**', 'dist/**', 'test/e2e/**', 'runtime/docker-runtime.test.ts', 'store/etcd-store.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts', 'runtime/docker-runtime.test.ts', 'store/etcd-store.test.ts'],
          exclude: ['node_modules/**', 'dist/**'],
          globalSetup: ['test/e2e/global-setup.ts'],
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
