// GET /v1/live/segments against real Redis: counts, backfill status and latest entries as
// JSON, and as a server-sent event stream that sends again when a segment fills.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type ClickHouseClient, createClickHouse } from '../../runtime/clickhouse.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import { createLogger } from '../../runtime/log.ts';
import { migrate } from '../../schemas/migrations.ts';
import { globalKeys, workspaceKeys } from '../../schemas/redis-keys.ts';
import { segmentDef } from '../../test/fixtures.ts';
import { eventually, uniqueId } from '../../test/harness.ts';
import { createQueryApp } from '../app.ts';
import type { SegmentSummary } from '../segment-summary.ts';
import { MAX_STREAMS_PER_CREDENTIAL } from './live.ts';

const prefix = uniqueId('live');
const ws = uniqueId('ws_');
const other = uniqueId('ws_');
let redis: Redis;
let ch: ClickHouseClient;
let app: ReturnType<typeof createQueryApp>;
const auth = { authorization: 'Bearer admin-1' };

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'));
  ch = await createClickHouse({ kind: 'chdb', path: mkdtempSync(join(tmpdir(), 'cdp-live-')) });
  await migrate(ch);
  const defs = new DefinitionStore(redis, prefix);
  app = createQueryApp({
    redis,
    clickhouse: ch,
    defs,
    writeKeys: {} as never,
    redisPrefix: prefix,
    resolveAdminKey: (k) => (k === 'admin-1' ? ws : k === 'admin-2' ? other : undefined),
    unsubscribeSecret: 'unused-in-this-suite',
    log: createLogger({ level: 'silent', name: 'test' }),
    livePollMs: 50,
  });
  await defs.put(
    'segments',
    segmentDef('seg_a', { '==': [{ var: 'traits.plan' }, 'pro'] }, { workspaceId: ws }),
  );
  await defs.put(
    'segments',
    segmentDef('seg_b', { '==': [{ var: 'traits.plan' }, 'free'] }, { workspaceId: ws, version: 2 }),
  );
  await defs.put('segments', segmentDef('seg_x', { '==': [1, 1] }, { workspaceId: other }));
  const k = workspaceKeys(prefix, ws);
  await redis.zadd(k.segmentMembers('seg_a'), 1_000, 'p1', 3_000, 'p3', 2_000, 'p2');
  await redis.sadd(k.profileIdentities('p3'), 'user:zed', 'user:ada', 'anon:a-3');
  // seg_a's backfill is done; seg_b's finished for an older version, so it is backfilling again
  await redis.hset(
    globalKeys(prefix).backfills,
    `${ws}/seg_a`,
    JSON.stringify({
      version: 1,
      status: 'ready',
      scanned: 7,
      startedAt: 'x',
      finishedAt: 'y',
    }),
  );
  await redis.hset(
    globalKeys(prefix).backfills,
    `${ws}/seg_b`,
    JSON.stringify({
      version: 1,
      status: 'ready',
      scanned: 9,
      startedAt: 'x',
      finishedAt: 'y',
    }),
  );
  // membership history: p7 entered and left seg_a (the exit recorded twice), p8 entered
  // and left and entered again (its exit is still an exit), p9 left seg_x elsewhere
  const row = (segment: string, profile: string, epoch: number, at: number, workspace = ws) => ({
    workspace_id: workspace,
    segment_id: segment,
    segment_version: 1,
    profile_id: profile,
    type: epoch % 2 === 1 ? 'entered' : 'exited',
    epoch,
    message_id: `m${epoch}`,
    at,
  });
  await ch.insert({
    table: 'segment_membership_history',
    format: 'JSONEachRow',
    values: [
      row('seg_a', 'p7', 1, 4_000),
      row('seg_a', 'p7', 2, 5_000),
      row('seg_a', 'p7', 2, 5_000),
      row('seg_a', 'p8', 1, 1_000),
      row('seg_a', 'p8', 2, 2_000),
      row('seg_a', 'p8', 3, 6_000),
      row('seg_x', 'p9', 2, 7_000, other),
    ],
  });
});
afterAll(async () => {
  redis?.disconnect();
  await ch?.close();
});

/** Reads server-sent events from a streamed response body. */
function sseReader(res: Response) {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  return {
    async next(): Promise<{ event: string; data: string }> {
      for (;;) {
        const end = buffer.indexOf('\n\n');
        if (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (block.startsWith(':')) continue;
          const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
          const data = [...block.matchAll(/^data: (.*)$/gm)].map((m) => m[1]).join('\n');
          return { event, data };
        }
        const { value, done } = await reader.read();
        if (done) throw new Error('stream ended');
        buffer += decoder.decode(value, { stream: true });
      }
    },
    cancel: () => reader.cancel(),
  };
}

describe('GET /v1/live/segments', () => {
  it('answers counts, status and the latest entries (newest first, with a userId) as JSON', async () => {
    const res = await app.request('/v1/live/segments', { headers: auth });
    expect(res.status).toBe(200);
    const { segments } = (await res.json()) as { segments: SegmentSummary[] };
    expect(segments.map((s) => s.id)).toEqual(['seg_a', 'seg_b']);
    expect(segments[0]).toMatchObject({ count: 3, status: 'ready', scanned: 7, version: 1 });
    expect(segments[0]!.recentEntries).toEqual([
      { profileId: 'p3', userId: 'ada', at: new Date(3_000).toISOString() },
      { profileId: 'p2', userId: null, at: new Date(2_000).toISOString() },
      { profileId: 'p1', userId: null, at: new Date(1_000).toISOString() },
    ]);
    expect(segments[0]!.recentExits).toEqual([
      { profileId: 'p7', userId: null, at: new Date(5_000).toISOString() },
      { profileId: 'p8', userId: null, at: new Date(2_000).toISOString() },
    ]);
    expect(segments[1]).toMatchObject({
      count: 0,
      status: 'backfilling',
      scanned: 0,
      recentEntries: [],
      recentExits: [],
    });
  });

  it('shows only the key’s workspace, and needs a key', async () => {
    const res = await app.request('/v1/live/segments', { headers: { authorization: 'Bearer admin-2' } });
    const { segments } = (await res.json()) as { segments: SegmentSummary[] };
    expect(segments.map((s) => [s.id, s.count])).toEqual([['seg_x', 0]]);
    expect((await app.request('/v1/live/segments')).status).toBe(401);
  });

  it('streams a segments event at once and another when a member enters', async () => {
    const res = await app.request('/v1/live/segments', {
      headers: { ...auth, accept: 'text/event-stream' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const sse = sseReader(res);
    const first = await sse.next();
    expect(first.event).toBe('segments');
    const before = (JSON.parse(first.data) as { segments: SegmentSummary[] }).segments;
    expect(before.find((s) => s.id === 'seg_b')!.count).toBe(0);

    await redis.zadd(workspaceKeys(prefix, ws).segmentMembers('seg_b'), Date.now(), 'p9');
    const after = await eventually('the next segments event', async () => {
      const e = await sse.next();
      return e.event === 'segments'
        ? (JSON.parse(e.data) as { segments: SegmentSummary[] }).segments
        : undefined;
    });
    const b = after.find((s) => s.id === 'seg_b')!;
    expect(b.count).toBe(1);
    expect(b.recentEntries.map((e) => e.profileId)).toEqual(['p9']);
    await sse.cancel();
  });
});

describe('GET /v1/live/segments as a stream: credentials', () => {
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await app.request(path, {
      method,
      headers: { ...auth, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json().catch(() => null)) as Record<string, string> };
  };
  const personWithToken = async (email: string) => {
    const person = await call('POST', '/v1/people', { email, role: 'analyst' });
    expect(person.status).toBe(201);
    const tok = await call('POST', `/v1/people/${person.json.id}/tokens`, {});
    expect(tok.status).toBe(201);
    return { personId: person.json.id!, tokenId: tok.json.id!, token: tok.json.token! };
  };
  const openStream = (key: string) =>
    app.request('/v1/live/segments', {
      headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream' },
    });
  /** Reads events until the stream ends; the events read, the last first. */
  const untilEnd = async (sse: ReturnType<typeof sseReader>) => {
    const seen: Array<{ event: string; data: string }> = [];
    for (;;) {
      try {
        seen.unshift(await sse.next());
      } catch {
        return seen;
      }
    }
  };
  const within = <T>(ms: number, p: Promise<T>) =>
    Promise.race([
      p,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`not within ${ms} ms`)), ms)),
    ]);

  it('ends an open stream, saying why, once its token is revoked', async () => {
    const { personId, tokenId, token } = await personWithToken(`${uniqueId('a')}@a.example`);
    const res = await openStream(token);
    expect(res.status).toBe(200);
    const sse = sseReader(res);
    expect((await sse.next()).event).toBe('segments');
    expect((await call('DELETE', `/v1/people/${personId}/tokens/${tokenId}`)).status).toBeLessThan(300);
    // credentials are re-checked every 5th round: 250 ms at this suite's 50 ms poll
    const events = await within(3_000, untilEnd(sse));
    expect(events[0]!.event).toBe('closed');
    expect(JSON.parse(events[0]!.data)).toEqual({ error: 'the token was revoked or its person removed' });
  });

  it('ends an open stream once its person is removed from the workspace', async () => {
    const { personId, token } = await personWithToken(`${uniqueId('b')}@a.example`);
    const sse = sseReader(await openStream(token));
    expect((await sse.next()).event).toBe('segments');
    expect((await call('DELETE', `/v1/people/${personId}`)).status).toBeLessThan(300);
    const events = await within(3_000, untilEnd(sse));
    expect(events[0]!.event).toBe('closed');
  });

  it('ends an open stream once its workspace is archived', async () => {
    const created = await call('POST', '/v1/workspaces', { name: uniqueId('live-arch') });
    expect(created.status).toBe(201);
    const id = created.json.id!;
    const inIt = { ...auth, 'content-type': 'application/json', 'x-workspace': id };
    const person = await app.request('/v1/people', {
      method: 'POST',
      headers: inIt,
      body: JSON.stringify({ email: `${uniqueId('d')}@a.example`, role: 'analyst' }),
    });
    expect(person.status).toBe(201);
    const personId = ((await person.json()) as { id: string }).id;
    const tok = await app.request(`/v1/people/${personId}/tokens`, {
      method: 'POST',
      headers: inIt,
      body: '{}',
    });
    const { token } = (await tok.json()) as { token: string };
    const sse = sseReader(await openStream(token));
    expect((await sse.next()).event).toBe('segments');
    expect((await call('POST', `/v1/workspaces/${id}/archive`)).status).toBe(200);
    const events = await within(3_000, untilEnd(sse));
    expect(events[0]!.event).toBe('closed');
    expect(JSON.parse(events[0]!.data)).toEqual({ error: `no access to workspace ${id}` });
  });

  it('keeps a stream whose token still works open', async () => {
    const { token } = await personWithToken(`${uniqueId('c')}@a.example`);
    const sse = sseReader(await openStream(token));
    expect((await sse.next()).event).toBe('segments');
    // several re-checks pass; a member entering is still delivered
    await new Promise((r) => setTimeout(r, 700));
    await redis.zadd(workspaceKeys(prefix, ws).segmentMembers('seg_b'), Date.now(), 'p_still');
    const got = await eventually('the entry', async () => {
      const e = await sse.next();
      return e.event === 'segments' && e.data.includes('p_still') ? e : undefined;
    });
    expect(got.event).toBe('segments');
    await sse.cancel();
  });

  it(`allows ${MAX_STREAMS_PER_CREDENTIAL} open streams per key, refuses one more, and frees a slot when one closes`, async () => {
    const key = 'Bearer admin-2';
    const open = (auth: string) =>
      app.request('/v1/live/segments', { headers: { authorization: auth, accept: 'text/event-stream' } });
    const streams = [];
    for (let i = 0; i < MAX_STREAMS_PER_CREDENTIAL; i++) {
      const res = await open(key);
      expect(res.status).toBe(200);
      streams.push(sseReader(res));
    }
    const refused = await open(key);
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { error: string }).error).toMatch(
      new RegExp(`at most ${MAX_STREAMS_PER_CREDENTIAL} live streams`),
    );
    // another key has its own streams; the JSON answer is no stream
    const other = await open('Bearer admin-1');
    expect(other.status).toBe(200);
    await other.body!.cancel();
    expect((await app.request('/v1/live/segments', { headers: { authorization: key } })).status).toBe(200);

    await streams.pop()!.cancel();
    const again = await eventually('a freed slot', async () => {
      const res = await open(key);
      if (res.status === 200) return res;
      await res.body?.cancel();
      return undefined;
    });
    streams.push(sseReader(again));
    for (const s of streams) await s.cancel();
  });
});
