// `cdp rebuild` replays a client key's events with the limits they had live: the history
// keeps each event's key kind (migration 008), so a rebuild does not merge into a known
// person what the live processor refused.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import { runRebuild } from '../../processor/main.ts';
import { createClients } from '../../runtime/clients.ts';
import type { Config } from '../../runtime/config.ts';
import { createKafka } from '../../runtime/kafka/index.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { topics } from '../../schemas/topics.ts';
import { eventually, testConfig, testLogger } from '../harness.ts';

let cfg: Config;
let running: RunningServices | undefined;
let redis: Redis;
const admin = () => ({ authorization: `Bearer ${cfg.keys.adminKey}`, 'content-type': 'application/json' });

beforeAll(async () => {
  cfg = testConfig();
  redis = new Redis(cfg.redis.url);
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
});
afterAll(async () => {
  await running?.stop();
  redis.disconnect();
});

async function send(key: string, call: string, body: Record<string, unknown>) {
  const res = await fetch(`${running!.urls.ingest}/v1/${call}`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${key}:`).toString('base64')}`,
      'content-type': 'text/plain',
    },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
}

/** The profile id an identifier resolves to in Redis (following merges), or null. */
async function ownerOf(kind: string, value: string): Promise<string | null> {
  const k = workspaceKeys(cfg.redis.prefix, cfg.keys.workspace);
  let pid = await redis.get(`${k.tag}:id:${kind}:${value}`);
  for (let i = 0; pid && i < 64; i++) {
    const next = await redis.hget(k.profile(pid), 'mergedInto');
    if (!next) break;
    pid = next;
  }
  return pid;
}

describe('rebuild and client keys', () => {
  it("a client key's refused email link stays refused after a rebuild from history", async () => {
    const created = await fetch(`${running!.urls.query}/v1/write-keys`, {
      method: 'POST',
      headers: admin(),
      body: JSON.stringify({ name: 'site', kind: 'client' }),
    });
    const clientKey = ((await created.json()) as { key: string }).key;
    await send(cfg.keys.writeKey, 'identify', {
      userId: 'ada',
      traits: { email: 'ada@victim.test', phone: '+15550100' },
    });
    await eventually('ada known', async () => (await ownerOf('user', 'ada')) !== null);
    // the client key works once ingest has reloaded its keys
    await eventually(
      'the client key accepted',
      async () =>
        (
          await fetch(`${running!.urls.ingest}/v1/identify`, {
            method: 'POST',
            headers: {
              authorization: `Basic ${Buffer.from(`${clientKey}:`).toString('base64')}`,
              'content-type': 'text/plain',
            },
            body: JSON.stringify({
              anonymousId: 'attacker',
              traits: { email: 'ada@victim.test', phone: '+15559999' },
            }),
          })
        ).status === 200,
      10_000,
      100,
    );
    await eventually('the attacker on a profile of its own', async () => {
      const [a, v] = [await ownerOf('anon', 'attacker'), await ownerOf('user', 'ada')];
      return a !== null && a !== v;
    });

    // everything stored, then the services stop (chDB: one process per data directory)
    const kafkaAdmin = createKafka({ ...cfg.kafka, driver: 'kafkajs' }, testLogger(cfg)).admin();
    const t = topics(cfg.kafka.topicPrefix);
    await eventually(
      'the history sink caught up',
      async () => {
        const parts = await kafkaAdmin.groupLag!(`${cfg.kafka.topicPrefix}.cdp-history`, [t.events]);
        return parts.length > 0 && parts.every((p) => p.lag === 0);
      },
      30_000,
      250,
    ).finally(() => kafkaAdmin.disconnect());
    await running!.stop();
    running = undefined;

    // Redis loses the workspace's profiles; the rebuild replays the history
    const tag = workspaceKeys(cfg.redis.prefix, cfg.keys.workspace).tag;
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${tag}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
    const log = testLogger(cfg);
    const clients = createClients(cfg, log);
    try {
      const { events } = await runRebuild(cfg, clients, log, cfg.keys.workspace);
      expect(events).toBe(2);
    } finally {
      await clients.close();
    }
    const victim = await ownerOf('user', 'ada');
    expect(victim).not.toBeNull();
    expect(await ownerOf('anon', 'attacker')).not.toBe(victim);
    expect(await ownerOf('email', 'ada@victim.test')).toBe(victim);
    const k = workspaceKeys(cfg.redis.prefix, cfg.keys.workspace);
    expect(await redis.hget(k.profileTraits(victim!), 'phone')).toBe('"+15550100"');
  });
});
