// Erasure that finishes: jobs with state that a retry completes, everything of a merged
// person, contact state, scheduled sends, events still in flight, erase by email, export.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, SERVICE_NAMES, startServices } from '../../cli/services.ts';
import { startProcessor } from '../../processor/main.ts';
import { createErasure, type ErasureJobDeps, runErasure } from '../../query/erasure-job.ts';
import { type ClickHouseClient, createClickHouse } from '../../runtime/clickhouse.ts';
import { createClients } from '../../runtime/clients.ts';
import type { Config } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import { createKafka } from '../../runtime/kafka/index.ts';
import type { RunningService } from '../../runtime/service.ts';
import { ACTIVATION_HEADERS } from '../../schemas/activation-job.ts';
import type { ErasureJob } from '../../schemas/erasure.ts';
import { globalKeys, workspaceKeys } from '../../schemas/redis-keys.ts';
import { topics } from '../../schemas/topics.ts';
import { ledgerRow } from '../fixtures.ts';
import { eventually, testConfig, testLogger } from '../harness.ts';
import { startWebhookReceiver } from '../webhook-receiver.ts';

let cfg: Config;
let running: RunningServices;
let processor: RunningService | undefined;
let redis: Redis;
let ch: ClickHouseClient;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
const ws = () => cfg.keys.workspace;
const keys = () => workspaceKeys(cfg.redis.prefix, ws());
const admin = () => ({ authorization: `Bearer ${cfg.keys.adminKey}`, 'content-type': 'application/json' });
const q = (path: string, init: RequestInit = {}) =>
  fetch(`${running.urls.query}${path}`, { ...init, headers: admin() });
const send = (path: string, body: object) =>
  fetch(`${running.urls.ingest}${path}`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${cfg.keys.writeKey}:`).toString('base64')}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify(body),
  });
const profileOf = async (userId: string) => {
  const r = await q(`/v1/profiles?userId=${encodeURIComponent(userId)}`);
  return r.status === 200 ? ((await r.json()) as { id: string; segments: string[] }) : undefined;
};
const count = async (sql: string, params: Record<string, unknown>) => {
  const rs = await ch.query({
    query: sql,
    query_params: { ws: ws(), ...params },
    format: 'JSONEachRow',
  });
  return Number((await rs.json<{ n: string }>())[0]!.n);
};
const eventsOf = (ids: string[]) =>
  count(
    'SELECT count() AS n FROM events WHERE workspace_id = {ws:String} AND (user_id IN {ids:Array(String)} OR anonymous_id IN {ids:Array(String)})',
    { ids },
  );
const rowsOfProfiles = (table: string, pids: string[]) =>
  count(
    `SELECT count() AS n FROM ${table} WHERE workspace_id = {ws:String} AND profile_id IN {pids:Array(String)}`,
    {
      pids,
    },
  );
const jobDone = (id: string) =>
  eventually(
    `erasure ${id} done`,
    async () => {
      const job = (await (await q(`/v1/erasures/${id}`)).json()) as ErasureJob;
      return job.status === 'done' ? job : undefined;
    },
    60_000,
    200,
  );
const postJson = (path: string, body: object) => q(path, { method: 'POST', body: JSON.stringify(body) });

beforeAll(async () => {
  receiver = await startWebhookReceiver();
  cfg = testConfig({ CDP_WEBHOOK_ALLOW_LOOPBACK: 'true' });
  running = await startServices(cfg, SERVICE_NAMES, testLogger(cfg));
  redis = new Redis(cfg.redis.url);
  ch = await createClickHouse(cfg.clickhouse);
});
afterAll(async () => {
  await processor?.stop();
  await running?.stop();
  await receiver?.close();
  redis?.disconnect();
});

describe('erasure jobs', () => {
  it('erase by email: the merged person, the merged-away ids rows, contact state, delayed sends; export before, audit after', async () => {
    const seg = (await (
      await postJson('/v1/segments', { name: 'VIP', rule: { '==': [{ var: 'traits.vip' }, true] } })
    ).json()) as { id: string };
    const campaign = (await (
      await postJson('/v1/campaigns', {
        name: 'Hello VIP',
        segmentId: seg.id,
        on: 'enter',
        channel: 'webhook',
        webhook: { url: receiver.url },
      })
    ).json()) as { id: string };
    // two profiles: an anonymous visitor first (it survives the merge: seen first), then
    // the user, a VIP: the user's profile enters the segment before it is merged away
    expect((await send('/v1/track', { anonymousId: 'anon-m', event: 'Visited' })).status).toBe(200);
    await eventually(
      'the visitor',
      async () => (await redis.get(keys().identity('anon', 'anon-m'))) ?? undefined,
    );
    expect(
      (await send('/v1/identify', { userId: 'user-m', traits: { vip: true, email: 'M@Example.com' } }))
        .status,
    ).toBe(200);
    const away = await eventually('the user in the segment', async () => {
      const p = await profileOf('user-m');
      return p?.segments.includes(seg.id) ? p.id : undefined;
    });
    expect((await send('/v1/identify', { userId: 'user-m', anonymousId: 'anon-m' })).status).toBe(200);
    const survivor = await eventually('the merge', async () => {
      const p = await profileOf('user-m');
      return p && p.id !== away ? p.id : undefined;
    });
    const pids = [survivor, away];
    await eventually('three events stored', async () => (await eventsOf(['user-m', 'anon-m'])) === 3);
    await eventually('membership history of the merged-away id', async () =>
      (await rowsOfProfiles('segment_membership_history', [away])) > 0 ? true : undefined,
    );
    // the campaign's send to the user (a ledger row of the merged-away id), more ledger
    // rows of both ids as activation writes them, and another person's, which stays
    await eventually('the send to the user in the ledger', async () =>
      (await rowsOfProfiles('activation_ledger', [away])) > 0 ? true : undefined,
    );
    await ch.insert({
      table: 'activation_ledger',
      format: 'JSONEachRow',
      values: [
        ledgerRow({ workspace_id: ws(), at: Date.now(), profile_id: away, send_key: 'k1' }),
        ledgerRow({ workspace_id: ws(), at: Date.now(), profile_id: survivor, send_key: 'k2' }),
        ledgerRow({ workspace_id: ws(), at: Date.now(), profile_id: 'someone-else', send_key: 'k3' }),
      ],
    });
    // contact state of both ids: consent (through the API for the survivor), cap logs,
    // re-entry records (per campaign, and the profile's own hash)
    expect(
      (
        await q(`/v1/profiles/${survivor}/consent`, {
          method: 'PUT',
          body: JSON.stringify({ channel: 'email', subscribed: false }),
        })
      ).status,
    ).toBeLessThan(300);
    const k = keys();
    const contactKeys = (pid: string) => [
      k.consent(pid),
      ...['webhook', 'email', 'sms', 'push', 'all'].map((c) => k.capLog(pid, c)),
      // re-entry records: the profile's hash, and the older key per campaign
      k.reentry(pid),
      k.legacyReentry(campaign.id, pid),
    ];
    for (const pid of pids) {
      await redis.hset(k.consent(pid), 'sms:*', `revoked:${Date.now()}:api`);
      for (const c of ['webhook', 'email', 'sms', 'push', 'all'])
        await redis.zadd(k.capLog(pid, c), Date.now(), 'sk');
      await redis.set(k.legacyReentry(campaign.id, pid), `sk|${Date.now()}`);
      await redis.hset(k.reentry(pid), campaign.id, `sk|${Date.now()}`);
    }
    // a delayed send for the person (quiet hours), and one for someone else
    const g = globalKeys(cfg.redis.prefix);
    const delayed = (profileId: string) =>
      JSON.stringify({
        job: {
          campaignId: campaign.id,
          change: {
            workspaceId: ws(),
            profileId,
            segmentId: seg.id,
            segmentVersion: 1,
            type: 'entered',
            epoch: 99,
            messageId: null,
            occurredAt: new Date().toISOString(),
            userId: null,
            traits: {},
          },
        },
        attempt: 0,
        firstSeen: Date.now(),
        reason: 'quiet_hours',
      });
    const ledgerRows = await rowsOfProfiles('activation_ledger', pids);
    expect(ledgerRows).toBeGreaterThanOrEqual(3);
    const later = Date.now() + 3600_000;
    const [theirs, others] = [delayed(survivor), delayed('someone-else')];
    await redis.zadd(g.activationDelayed, later, theirs, later, others);

    // the access request first: everything held, as NDJSON
    const exp = await q(`/v1/profiles/${survivor}/export`);
    expect(exp.status).toBe(200);
    expect(exp.headers.get('content-type')).toContain('application/x-ndjson');
    const lines = (await exp.text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string } & Record<string, unknown>);
    const of = (type: string) => lines.filter((l) => l.type === type);
    expect(of('profile')[0]).toMatchObject({ id: survivor, userIds: ['user-m'], mergedProfileIds: [away] });
    expect(of('event')).toHaveLength(3);
    expect(of('consent')).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ profileId: survivor, channel: 'email', subscribed: false }),
      ]),
    );
    expect(of('ledger')).toHaveLength(ledgerRows);
    expect(of('membership').length).toBeGreaterThan(0);
    expect(lines.at(-1)).toMatchObject({ type: 'end' });

    // erase by email (as given, any case)
    const del = await q('/v1/profiles?email=m@example.COM', { method: 'DELETE' });
    expect([200, 202]).toContain(del.status);
    const body = (await del.json()) as { erased: string; job: ErasureJob };
    expect(body.erased).toBe(survivor);
    expect(del.headers.get('location')).toBe(`/v1/erasures/${body.job.id}`);
    const job = await jobDone(body.job.id);
    expect(job.counts).toMatchObject({ profiles: 2, identities: 3, events: 3, delayedSends: 1 });
    expect(job.counts.activation_ledger).toBe(ledgerRows);

    // Redis: nothing of either id, the other person's delayed send stays
    for (const pid of pids) {
      for (const key of contactKeys(pid)) expect(await redis.exists(key), key).toBe(0);
      expect(await redis.exists(k.profile(pid))).toBe(0);
      expect(await redis.zscore(k.segmentMembers(seg.id), pid)).toBeNull();
    }
    expect(await redis.get(k.identity('email', 'm@example.com'))).toBeNull();
    expect(await redis.zrange(g.activationDelayed, 0, -1)).toEqual([others]);
    // the finished job keeps counts, not the identifiers
    expect(JSON.stringify(await redis.hgetall(k.erasure(job.id)))).not.toContain('user-m');

    // ClickHouse: events of every identifier, and the rows of both profile ids
    expect(await eventsOf(['user-m', 'anon-m'])).toBe(0);
    for (const table of ['segment_membership_history', 'activation_ledger'])
      expect(await rowsOfProfiles(table, pids), table).toBe(0);
    expect(await rowsOfProfiles('activation_ledger', ['someone-else'])).toBe(1);
    expect(
      await count(
        "SELECT count() AS n FROM identity_links WHERE workspace_id = {ws:String} AND (profile_id IN {pids:Array(String)} OR id_value IN ['user-m', 'anon-m', 'm@example.com'])",
        { pids },
      ),
    ).toBe(0);

    // audited: who, when, how much; never what
    const audit = await ch.query({
      query:
        "SELECT actor, entity_id, before, after FROM audit_log WHERE workspace_id = {ws:String} AND action = 'erase'",
      query_params: { ws: ws() },
      format: 'JSONEachRow',
    });
    const rows = await audit.json<{ actor: string; entity_id: string; before: string; after: string }>();
    expect(rows).toHaveLength(1);
    expect(rows[0]!.entity_id).toBe(survivor);
    expect(rows[0]!.actor).toMatch(/^key:/);
    expect(JSON.parse(rows[0]!.before)).toMatchObject({ identities: 3, events: 3, profiles: 2 });
    expect(rows[0]!.before + rows[0]!.after).not.toMatch(/user-m|anon-m|example/i);
    // the consent decision made through the API stays audited, no longer saying whose
    expect(job.counts.audit_consent).toBe(1);
    expect(
      await count(
        "SELECT count() AS n FROM audit_log WHERE workspace_id = {ws:String} AND entity_type = 'consent' AND entity_id IN {pids:Array(String)}",
        { pids },
      ),
    ).toBe(0);
    expect(
      await count(
        "SELECT count() AS n FROM audit_log WHERE workspace_id = {ws:String} AND entity_type = 'consent' AND entity_id = 'erased'",
        {},
      ),
    ).toBe(1);

    // a repeated request answers the same, finished job; the erased email resolves to nothing
    const again = await q(`/v1/profiles/${survivor}`, { method: 'DELETE' });
    expect(again.status).toBe(200);
    expect(((await again.json()) as { job: ErasureJob }).job.id).toBe(job.id);
    expect((await q('/v1/profiles?email=m@example.com', { method: 'DELETE' })).status).toBe(404);

    // a retry of a send for the erased profile, still on the retry topic: suppressed, not sent
    const deliveredBefore = receiver.deliveries.length;
    const producer = createKafka(cfg.kafka, testLogger(cfg)).producer();
    await producer.connect();
    const retried = JSON.parse(theirs) as { job: unknown };
    await producer.send(topics(cfg.kafka.topicPrefix).activationRetry, [
      {
        key: `${ws()}:${survivor}`,
        value: JSON.stringify(retried.job),
        headers: { [ACTIVATION_HEADERS.attempt]: '1', [ACTIVATION_HEADERS.notBefore]: String(Date.now()) },
      },
    ]);
    await producer.disconnect();
    await eventually(
      'the retry suppressed as erased',
      async () =>
        (await count(
          "SELECT count() AS n FROM activation_ledger WHERE workspace_id = {ws:String} AND profile_id = {p:String} AND outcome = 'suppressed' AND reason = 'erased'",
          { p: survivor },
        )) === 1,
      30_000,
      200,
    );
    expect(receiver.deliveries.slice(deliveredBefore)).toEqual([]);
  });

  it('an event in flight at the erasure (sent before, consumed after) does not reappear in history', async () => {
    expect((await send('/v1/identify', { userId: 'user-f', traits: { plan: 'free' } })).status).toBe(200);
    const pid = await eventually('the profile', async () => (await profileOf('user-f'))?.id);
    await eventually('its event stored', async () => (await eventsOf(['user-f'])) === 1);
    // the processor and its history sink stop: the next event waits in Kafka
    const first = running.services.find((s) => s.name === 'processor')!;
    await first.stop();
    running.services.splice(running.services.indexOf(first), 1);
    expect(
      (await send('/v1/track', { userId: 'user-f', event: 'Late', properties: { secret: 'x' } })).status,
    ).toBe(200);
    const del = await q(`/v1/profiles/${pid}`, { method: 'DELETE' });
    await jobDone(((await del.json()) as { job: ErasureJob }).job.id);
    // erased, then the processor comes back and consumes the late event, and a marker after it
    const clients = createClients(cfg, testLogger(cfg));
    processor = await startProcessor(cfg, clients, testLogger(cfg));
    expect((await send('/v1/track', { userId: 'marker-f', event: 'Marker' })).status).toBe(200);
    await eventually('the marker stored', async () => (await eventsOf(['marker-f'])) === 1, 60_000, 200);
    expect(await eventsOf(['user-f'])).toBe(0);
    // nor in Redis: the processor dropped it too, no profile was made from it
    expect(await profileOf('user-f')).toBeUndefined();
    // and an event received after the erasure is kept: a new person
    expect((await send('/v1/track', { userId: 'user-f', event: 'Came Back' })).status).toBe(200);
    await eventually('the new event stored', async () => (await eventsOf(['user-f'])) === 1, 60_000, 200);
    const back = await eventually('the new person', () => profileOf('user-f'));
    expect(back.id).not.toBe(pid);
  });

  it('a job interrupted by a failing step is completed by a retry (a restart or a repeated DELETE)', async () => {
    expect((await send('/v1/identify', { userId: 'user-i', anonymousId: 'anon-i' })).status).toBe(200);
    const pid = await eventually('the profile', async () => (await profileOf('user-i'))?.id);
    await eventually('its event stored', async () => (await eventsOf(['user-i'])) === 1);
    // a ClickHouse that fails the events delete once (as if down, or the process dying there)
    let failed = 0;
    const flaky = new Proxy(ch, {
      get(target, prop, recv) {
        if (prop === 'command')
          return async (params: { query: string }) => {
            if (failed === 0 && params.query.includes('ALTER TABLE events')) {
              failed++;
              throw new Error('ECONNREFUSED: ClickHouse down');
            }
            return target.command(params as never);
          };
        return Reflect.get(target, prop, recv);
      },
    });
    const deps: ErasureJobDeps = {
      redis,
      clickhouse: flaky,
      defs: new DefinitionStore(redis, cfg.redis.prefix),
      redisPrefix: cfg.redis.prefix,
      log: testLogger(cfg),
      now: () => new Date(),
      sweepDelayMs: 60_000,
    };
    const created = await createErasure(deps, ws(), pid, 'key:test');
    const stopped = (await runErasure(deps, ws(), created.id))!;
    expect(failed).toBe(1);
    expect(stopped.status).toBe('pending');
    expect(stopped.done).toEqual(['redis', 'scheduled']);
    expect(stopped.lastError).toContain('ECONNREFUSED');
    // the person is gone from Redis, the history not yet
    expect(await profileOf('user-i')).toBeUndefined();
    expect(await eventsOf(['user-i'])).toBe(1);
    // a repeated DELETE (the profile is gone) finds the job and resumes it; the query
    // service's worker would do the same after a restart
    const again = await q(`/v1/profiles/${pid}`, { method: 'DELETE' });
    expect([200, 202]).toContain(again.status);
    expect(((await again.json()) as { job: ErasureJob }).job.id).toBe(created.id);
    const job = await jobDone(created.id);
    expect(job.attempts).toBeGreaterThanOrEqual(1);
    expect(job.counts.events).toBe(1);
    expect(await eventsOf(['user-i', 'anon-i'])).toBe(0);
  });

  it('two DELETEs at once share one job, which the list shows', async () => {
    expect((await send('/v1/identify', { userId: 'user-c' })).status).toBe(200);
    const pid = await eventually('the profile', async () => (await profileOf('user-c'))?.id);
    const answers = await Promise.all([
      q(`/v1/profiles/${pid}`, { method: 'DELETE' }),
      q('/v1/profiles?userId=user-c', { method: 'DELETE' }),
    ]);
    const ids = new Set<string>();
    for (const a of answers) {
      // the second may come after the first erased the identifier: 404 is fair then
      if (a.status === 404) continue;
      expect([200, 202]).toContain(a.status);
      ids.add(((await a.json()) as { job: ErasureJob }).job.id);
    }
    expect(ids.size).toBe(1);
    const [id] = [...ids];
    await jobDone(id!);
    const list = (await (await q('/v1/erasures?limit=100')).json()) as { erasures: ErasureJob[] };
    expect(list.erasures.filter((j) => j.profileId === pid).map((j) => j.id)).toEqual([id]);
    expect((await q('/v1/erasures?limit=0')).status).toBe(400);
  });

  it('answers 404 for an unknown profile, identifier or job, and 400 for no identifier', async () => {
    expect((await q('/v1/profiles/nope', { method: 'DELETE' })).status).toBe(404);
    expect((await q('/v1/profiles?userId=nobody', { method: 'DELETE' })).status).toBe(404);
    expect((await q('/v1/profiles', { method: 'DELETE' })).status).toBe(400);
    expect((await q('/v1/erasures/er_000000000000000000000000')).status).toBe(404);
    expect((await q('/v1/erasures/..%2F..')).status).toBe(404);
  });
});
