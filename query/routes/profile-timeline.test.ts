// GET /v1/profiles/{id}/timeline against real Redis and chDB: events of every identifier
// of the person, ledger decisions (a repeated ledger row once) and segment entries, newest first.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { LedgerRow } from '../../activation/pipeline.ts';
import { type ClickHouseClient, createClickHouse } from '../../runtime/clickhouse.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import { createLogger } from '../../runtime/log.ts';
import { migrate } from '../../schemas/migrations.ts';
import { workspaceKeys } from '../../schemas/redis-keys.ts';
import { ledgerRow } from '../../test/fixtures.ts';
import { uniqueId } from '../../test/harness.ts';
import { createQueryApp } from '../app.ts';
import type { TimelineItem } from './profile-timeline.ts';

const prefix = uniqueId('tl');
const ws = uniqueId('ws_');
let redis: Redis;
let ch: ClickHouseClient;
let app: ReturnType<typeof createQueryApp>;
const T = Date.parse('2026-04-01T12:00:00Z');
const chTime = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'));
  ch = await createClickHouse({ kind: 'chdb', path: mkdtempSync(join(tmpdir(), 'cdp-timeline-')) });
  await migrate(ch);
  app = createQueryApp({
    redis,
    clickhouse: ch,
    defs: new DefinitionStore(redis, prefix),
    writeKeys: {} as never,
    redisPrefix: prefix,
    resolveAdminKey: (k) => (k === 'admin-1' ? ws : undefined),
    unsubscribeSecret: 'unused-in-this-suite',
    log: createLogger({ level: 'silent', name: 'test' }),
  });
  const k = workspaceKeys(prefix, ws);
  await redis.hset(k.profile('p1'), { id: 'p1', firstSeenAt: String(T), lastSeenAt: String(T + 5000) });
  await redis.sadd(k.profileIdentities('p1'), 'user:ada', 'anon:a-1');
  await redis.hset(k.profileSegments('p1'), { seg_a: '1', seg_old: '2' });
  await redis.zadd(k.segmentMembers('seg_a'), T + 2500, 'p1');
  const ev = (id: string, at: number, extra: Record<string, unknown>) => ({
    workspace_id: ws,
    message_id: id,
    type: 'track',
    timestamp: chTime(at),
    received_at: chTime(at),
    properties: '{"plan":"pro"}',
    traits: '{}',
    context: '{}',
    integrations: '{}',
    ...extra,
  });
  await ch.insert({
    table: 'events',
    format: 'JSONEachRow',
    values: [
      ev('m1', T + 1000, { event: 'Signed Up', anonymous_id: 'a-1' }),
      ev('m2', T + 2000, { event: 'Upgraded', user_id: 'ada' }),
      ev('m2', T + 2000, { event: 'Upgraded', user_id: 'ada' }), // a replayed row
      ev('m3', T + 4000, { event: 'Upgraded', user_id: 'someone-else' }),
      { ...ev('m4', T + 4500, { event: 'Upgraded', user_id: 'ada' }), workspace_id: `${ws}-other` },
    ],
  });
  const row = (at: number, outcome: LedgerRow['outcome'], reason = '') =>
    ledgerRow({
      workspace_id: ws,
      at: chTime(at),
      send_key: 'cmp_1:p1:seg_a:1',
      campaign_id: 'cmp_1',
      segment_id: 'seg_a',
      profile_id: 'p1',
      outcome,
      reason,
    });
  await ch.insert({
    table: 'activation_ledger',
    format: 'JSONEachRow',
    values: [row(T + 3000, 'sent'), row(T + 3000, 'sent'), { ...row(T + 3500, 'sent'), profile_id: 'p2' }],
  });
});
afterAll(async () => {
  redis?.disconnect();
  await ch?.close();
});

describe('GET /v1/profiles/{id}/timeline', () => {
  it('merges events, sends and segment entries, newest first', async () => {
    const res = await app.request('/v1/profiles/p1/timeline', {
      headers: { authorization: 'Bearer admin-1' },
    });
    expect(res.status).toBe(200);
    const { items } = (await res.json()) as { items: TimelineItem[] };
    expect(items.map((i) => [i.kind, i.at])).toEqual([
      ['send', new Date(T + 3000).toISOString()],
      ['segment', new Date(T + 2500).toISOString()],
      ['event', new Date(T + 2000).toISOString()],
      ['event', new Date(T + 1000).toISOString()],
    ]);
    expect(items[0]).toMatchObject({
      kind: 'send',
      campaignId: 'cmp_1',
      channel: 'webhook',
      outcome: 'sent',
    });
    expect(items[1]).toMatchObject({ kind: 'segment', segmentId: 'seg_a', change: 'entered' });
    expect(items[2]).toMatchObject({
      kind: 'event',
      messageId: 'm2',
      event: 'Upgraded',
      properties: { plan: 'pro' },
    });
  });

  it('limits, and answers 404 and 400 with the reason', async () => {
    const h = { authorization: 'Bearer admin-1' };
    const one = (await (await app.request('/v1/profiles/p1/timeline?limit=1', { headers: h })).json()) as {
      items: TimelineItem[];
    };
    expect(one.items).toHaveLength(1);
    expect((await app.request('/v1/profiles/nobody/timeline', { headers: h })).status).toBe(404);
    const bad = await app.request('/v1/profiles/p1/timeline?limit=0', { headers: h });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/^limit/);
  });
});
