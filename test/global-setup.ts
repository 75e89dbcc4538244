// One Kafka broker and one redis-server for the whole test run, started as local
// processes (no Docker), unless KAFKA_BROKERS / REDIS_URL already point at running ones.
// Suites isolate themselves by topic prefix, Redis key prefix and workspace.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { type LocalStack, startLocalStack } from '../infra/local/stack.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    kafkaBrokers: string;
    redisUrl: string;
  }
}

let stack: LocalStack | undefined;
let dir: string | undefined;

export async function setup(project: TestProject) {
  dir = mkdtempSync(join(tmpdir(), 'cdp-test-stack-'));
  stack = await startLocalStack({ dataDir: dir, env: process.env });
  project.provide('kafkaBrokers', stack.kafkaBrokers);
  project.provide('redisUrl', stack.redisUrl);
}

export async function teardown() {
  await stack?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}
