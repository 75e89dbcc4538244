// An activation worker killed (SIGKILL) while its webhook request is in flight, then a new
// worker started: the send is retried under the same webhook-id once the claim's lease has
// run out, and the receiver acknowledges exactly one delivery.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import { topics } from '../../schemas/topics.ts';
import { change, segmentChangeProducer } from '../activation-peers.ts';
import { eventually, testConfig, uniqueId } from '../harness.ts';

let cfg: Config;
let redis: Redis;
const workers: ChildProcess[] = [];

/** Holds the first request open forever (the worker dies waiting); answers 200 after that. */
async function startHangingReceiver() {
  const requests: Array<{ headers: IncomingHttpHeaders; body: string }> = [];
  const acknowledged: string[] = [];
  const held: ServerResponse[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ headers: req.headers, body: Buffer.concat(chunks).toString() });
      if (requests.length === 1) {
        held.push(res);
        return;
      }
      res.statusCode = 200;
      res.end();
      acknowledged.push(String(req.headers['webhook-id']));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    requests,
    acknowledged,
    close: () => {
      for (const r of held) r.destroy();
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function startWorker(): ChildProcess {
  const env = {
    ...process.env,
    NODE_ENV: 'test',
    LOG_LEVEL: 'warn',
    KAFKA_BROKERS: cfg.kafka.brokers.join(','),
    REDIS_URL: cfg.redis.url,
    CDP_TOPIC_PREFIX: cfg.kafka.topicPrefix,
    CDP_TOPIC_PARTITIONS: String(cfg.kafka.partitions),
    CDP_REDIS_PREFIX: cfg.redis.prefix,
    CDP_DEFAULT_WORKSPACE: cfg.keys.workspace,
    CDP_DATA_DIR: mkdtempSync(join(tmpdir(), 'cdp-crash-')),
    CDP_ACTIVATION_CLAIM_LEASE_MS: '3000',
    // a send's deadline must end before its claim's lease (the worker is killed long before)
    CDP_WEBHOOK_TIMEOUT_MS: '2500',
    CDP_CHANNEL_TIMEOUT_MS: '2500',
  };
  const child = spawn(process.execPath, ['bin/cdp.js', 'start', 'activation'], {
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  workers.push(child);
  return child;
}

beforeAll(() => {
  cfg = testConfig();
  redis = new Redis(cfg.redis.url);
});

afterAll(async () => {
  for (const w of workers) if (w.exitCode === null) w.kill('SIGKILL');
  redis?.disconnect();
});

describe('worker killed mid-send', () => {
  it('delivers once after a restart (same webhook-id, one acknowledged delivery)', async () => {
    const receiver = await startHangingReceiver();
    try {
      const defs = new DefinitionStore(redis, cfg.redis.prefix);
      const seg = uniqueId('seg_');
      const at = new Date().toISOString();
      await defs.put('campaigns', {
        id: uniqueId('cmp_'),
        workspaceId: cfg.keys.workspace,
        name: 'crash',
        segmentId: seg,
        on: 'enter',
        channel: 'webhook',
        webhook: { url: receiver.url, secret: 'whsec_AAAA' },
        status: 'active',
        version: 1,
        createdAt: at,
        updatedAt: at,
      });
      const first = startWorker();
      const changes = await segmentChangeProducer(
        cfg.kafka.brokers,
        topics(cfg.kafka.topicPrefix).segmentChanges,
      );
      await eventually('the topic', async () => {
        await changes.send([change(cfg.keys.workspace, seg, 'p-crash', {})]);
        return true;
      });
      await changes.close();
      await eventually('the first request, held open', () => receiver.requests.length === 1, 60_000);
      first.kill('SIGKILL');
      await new Promise<void>((r) => (first.exitCode !== null ? r() : first.once('exit', () => r())));

      startWorker();
      await eventually('an acknowledged delivery', () => receiver.acknowledged.length === 1, 90_000);
      // nothing more arrives afterwards
      await new Promise((r) => setTimeout(r, 3000));
      expect(receiver.acknowledged).toHaveLength(1);
      const ids = new Set(receiver.requests.map((r) => String(r.headers['webhook-id'])));
      expect(ids.size).toBe(1);
      expect(receiver.requests).toHaveLength(2);
    } finally {
      await receiver.close();
    }
  }, 150_000);
});
