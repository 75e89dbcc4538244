import { defineConfig } from 'vitest/config';

// Each test file runs in its own forked process: chDB allows one data directory per
// process, and the integration suites each open their own. The global setup starts one
// Kafka broker and one redis-server for the whole run (unless KAFKA_BROKERS / REDIS_URL
// point at existing ones); every suite isolates itself by topic prefix, key prefix and
// workspace id.
export default defineConfig({
  test: {
    pool: 'forks',
    globalSetup: ['./test/global-setup.ts'],
    setupFiles: ['./test/setup-kafkajs.ts'],
    include: ['**/*.test.ts'],
    exclude: ['**/node_modules/**', '.data/**', '.cache/**'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    fileParallelism: true,
    maxWorkers: 2,
    // expect.poll waits on the UI and the pipeline (console suites): 1 s, vitest's default,
    // is too short when the whole suite shares two cores (a backfill badge took longer in CI)
    expect: { poll: { timeout: 15_000, interval: 100 } },
  },
});
