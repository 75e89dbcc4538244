// Bulk imports (query/imports/) against the real Kafka, Redis, chDB and processor: a traits
// CSV and a consent JSON-lines file through the pipeline onto profiles; malformed rows listed
// with their line numbers; a re-upload applying nothing again; an older imported decision not
// overriding a newer one on the profile, with its proof in consent_log; 413 past the size
// limit (the 1 MiB body limit of other routes does not apply); another workspace's admin
// seeing nothing; uploads in flight bounded per workspace; uploads at once; a process
// stopped mid-import resumed from its last committed line by another; and a large streamed
// file with its progress seen mid-way.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServices, startServices } from '../../cli/services.ts';
import { createQueryApp } from '../../query/app.ts';
import { type ImportDeps, rowMessageId, runImport } from '../../query/imports/jobs.ts';
import { type ClickHouseClient, createClickHouse } from '../../runtime/clickhouse.ts';
import type { Config } from '../../runtime/config.ts';
import { DefinitionStore } from '../../runtime/definitions.ts';
import { createKafka, type Producer } from '../../runtime/kafka/index.ts';
import { WriteKeyStore } from '../../runtime/write-keys.ts';
import type { ImportJob } from '../../schemas/import.ts';
import { importKeys } from '../../schemas/import.ts';
import { migrate } from '../../schemas/migrations.ts';
import { topics } from '../../schemas/topics.ts';
import { eventually, testConfig, testLogger, uniqueId } from '../harness.ts';

let cfg: Config;
let running: RunningServices;
let redis: Redis;
let ch: ClickHouseClient;
let producer: Producer;
let kafka: Kafka;
let ws: string;
const other = uniqueId('ws_other_');
const dir = mkdtempSync(join(tmpdir(), 'cdp-imports-'));
const MAX_BYTES = 4 * 1024 * 1024;

type App = ReturnType<typeof createQueryApp>;
let app: App;

function makeApp(
  over: {
    topicPrefix?: string;
    signal?: AbortSignal;
    batchRows?: number;
    producer?: Producer;
    maxUploads?: number;
  } = {},
): App {
  return createQueryApp({
    redis: redis as never,
    clickhouse: ch,
    defs: new DefinitionStore(redis as never, cfg.redis.prefix),
    writeKeys: new WriteKeyStore(redis as never, cfg.redis.prefix),
    redisPrefix: cfg.redis.prefix,
    resolveAdminKey: (k) => (k === 'admin-1' ? ws : k === 'admin-2' ? other : undefined),
    unsubscribeSecret: 'unsubscribe-secret-for-tests-0123456789',
    log: testLogger(cfg),
    producer: over.producer ?? producer,
    topicPrefix: over.topicPrefix ?? cfg.kafka.topicPrefix,
    imports: {
      dir,
      maxBytes: MAX_BYTES,
      profileWaitMs: 60_000,
      ...(over.signal && { signal: over.signal }),
      ...(over.batchRows && { batchRows: over.batchRows }),
      ...(over.maxUploads && { maxUploads: over.maxUploads }),
    },
  });
}

const auth = (key = 'admin-1') => ({ authorization: `Bearer ${key}` });
type View = ImportJob & { errors: string };

async function upload(
  a: App,
  kind: string,
  body: string | ReadableStream<Uint8Array>,
  type = 'text/csv',
  key = 'admin-1',
): Promise<Response> {
  return a.request(
    new Request(`http://local/v1/imports?kind=${kind}`, {
      method: 'POST',
      headers: { ...auth(key), 'content-type': type },
      body,
      // a stream body is sent as it is read
      ...(typeof body !== 'string' && { duplex: 'half' }),
    } as RequestInit),
  );
}
async function started(res: Response): Promise<View> {
  expect(res.status, await res.clone().text()).toBe(202);
  return (await res.json()) as View;
}
const get = async (path: string, key = 'admin-1', a = app) => a.request(path, { headers: auth(key) });
const status = async (id: string, a = app) =>
  (await (await get(`/v1/imports/${id}`, 'admin-1', a)).json()) as View;
async function finished(id: string, a = app, timeoutMs = 120_000): Promise<View> {
  return eventually(
    `import ${id} finished`,
    async () => {
      const v = await status(id, a);
      return v.status !== 'processing' && v;
    },
    timeoutMs,
    200,
  );
}
async function profile(q: string) {
  const res = await get(`/v1/profiles?${q}`);
  return res.status === 200
    ? ((await res.json()) as { id: string; traits: Record<string, unknown> })
    : undefined;
}
/**
 * Messages on a topic so far (all partitions). Asked again while the broker answers that it is
 * not (yet) a partition's leader: kafkajs's admin does not follow a leader that moved, and
 * right after the topics are created, on a busy broker, leaders are still being settled.
 */
async function topicCount(topic: string): Promise<number> {
  return eventually(
    `the end offsets of ${topic}`,
    async () => {
      const admin = kafka.admin();
      await admin.connect();
      try {
        const offsets = await admin.fetchTopicOffsets(topic);
        return offsets.reduce((n, o) => n + Number(o.high), 0);
      } finally {
        await admin.disconnect();
      }
    },
    20_000,
    250,
  );
}
/** The messageIds on a topic (every partition from the beginning), read until `expected` arrived. */
async function messageIds(topic: string, expected: number): Promise<string[]> {
  const consumer = kafka.consumer({ groupId: uniqueId('imp-read-') });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const ids: string[] = [];
  await consumer.run({
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages)
        ids.push((JSON.parse(m.value!.toString()) as { messageId: string }).messageId);
    },
  });
  try {
    await eventually(`${expected} messages on ${topic}`, () => ids.length >= expected, 120_000, 200);
    return ids;
  } finally {
    await consumer.disconnect();
  }
}

beforeAll(async () => {
  cfg = testConfig();
  ws = cfg.keys.workspace;
  running = await startServices(cfg, ['processor'], testLogger(cfg));
  redis = new Redis(cfg.redis.url);
  ch = await createClickHouse(cfg.clickhouse);
  await migrate(ch);
  producer = createKafka(cfg.kafka, testLogger(cfg)).producer();
  await producer.connect();
  kafka = new Kafka({ brokers: cfg.kafka.brokers, logLevel: logLevel.NOTHING });
  app = makeApp();
}, 120_000);

afterAll(async () => {
  await running?.stop();
  await producer?.disconnect();
  redis?.disconnect();
});

describe('traits import (CSV)', () => {
  const u = uniqueId('u');
  const file =
    '\uFEFFuserId,email,plan,note\r\n' +
    `${u}-1,One@Example.com,pro,"hello, ""quoted"""\r\n` +
    `${u}-2,,free,"two\r\nlines"\r\n` +
    ',not-an-email,pro,x\r\n' +
    `${u}-4,four@example.com,pro\r\n` +
    `,${u}-five@example.com,team,"=HYPERLINK(""http://evil.example"")"\r\n` +
    `${u}-6,six@example.com,pro,bad"quote\r\n`;
  let first: View;

  it('applies valid rows through the pipeline and lists the rejected ones by line', async () => {
    const before = await topicCount(topics(cfg.kafka.topicPrefix).events);
    first = await started(await upload(app, 'traits', file));
    expect(first).toMatchObject({ kind: 'traits', format: 'csv', status: 'processing', duplicateOf: null });
    expect(first.sha256).toMatch(/^[0-9a-f]{64}$/);
    const done = await finished(first.id);
    expect(done).toMatchObject({
      status: 'done',
      rowsRead: 6,
      rowsAccepted: 3,
      rowsRejected: 3,
      error: null,
    });
    expect(await topicCount(topics(cfg.kafka.topicPrefix).events)).toBe(before + 3);

    const errors = await (await get(`/v1/imports/${first.id}/errors`)).json();
    expect(errors).toEqual({
      importId: first.id,
      rowsRejected: 3,
      kept: 3,
      items: [
        // line 3's record goes on over line 4 (a quoted line break)
        { line: 5, reason: 'email: not an email address' },
        { line: 6, reason: 'has 3 fields where the header has 4' },
        { line: 8, reason: expect.stringContaining('quote inside an unquoted field') },
      ],
    });
    // no value from the file is repeated in a reason
    expect(JSON.stringify(errors)).not.toContain('not-an-email');

    const one = await eventually('profile 1', () => profile(`userId=${u}-1`), 60_000);
    expect(one.traits).toMatchObject({ plan: 'pro', note: 'hello, "quoted"', email: 'one@example.com' });
    const two = await eventually('profile 2', () => profile(`userId=${u}-2`), 60_000);
    expect(two.traits).toMatchObject({ plan: 'free', note: 'two\r\nlines' });
    // an email-only row: found by its email; a formula is kept as the text it is
    const five = await eventually('profile 5', () => profile(`email=${u}-five@example.com`), 60_000);
    expect(five.traits).toMatchObject({ plan: 'team', note: '=HYPERLINK("http://evil.example")' });
  });

  it('a re-upload of the same file applies nothing again', async () => {
    const before = await topicCount(topics(cfg.kafka.topicPrefix).events);
    const again = await started(await upload(app, 'traits', file));
    expect(again).toMatchObject({
      status: 'done',
      duplicateOf: first.id,
      rowsAccepted: 3,
      sha256: first.sha256,
    });
    expect(await topicCount(topics(cfg.kafka.topicPrefix).events)).toBe(before);
    // the same file as consent is another import (and its header is refused)
    const asConsent = await finished((await started(await upload(app, 'consent', file))).id);
    expect(asConsent).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(/^header: unknown column "plan"/),
    });
  });

  it('another workspace sees none of it', async () => {
    expect((await get(`/v1/imports/${first.id}`, 'admin-2')).status).toBe(404);
    expect((await get(`/v1/imports/${first.id}/errors`, 'admin-2')).status).toBe(404);
    const list = (await (await get('/v1/imports', 'admin-2')).json()) as { items: View[] };
    expect(list.items).toEqual([]);
    const mine = (await (await get('/v1/imports')).json()) as { items: View[] };
    expect(mine.items.map((j) => j.id)).toContain(first.id);
    expect((await get('/v1/imports/imp_../../x')).status).toBe(404);
  });

  it('is audited: who uploaded which file, and the outcome', async () => {
    const rs = await ch.query({
      query: `SELECT action, actor, after FROM audit_log
              WHERE workspace_id = {ws:String} AND entity_type = 'import' AND entity_id = {id:String}
              ORDER BY at, action`,
      query_params: { ws, id: first.id },
      format: 'JSONEachRow',
    });
    const rows = await rs.json<{ action: string; actor: string; after: string }>();
    expect(rows.map((r) => r.action).sort()).toEqual(['create', 'update']);
    for (const r of rows) {
      expect(r.actor).toMatch(/^key:[0-9a-f]{12}$/);
      expect(JSON.parse(r.after)).toMatchObject({ sha256: first.sha256 });
    }
    expect(JSON.parse(rows.find((r) => r.action === 'update')!.after)).toMatchObject({
      status: 'done',
      rowsAccepted: 3,
      rowsRejected: 3,
    });
  });
});

describe("JSON rows under the ingest edge's structural bounds", () => {
  it('a row nested too deep, with a prototype key or too many keys is rejected with its reason; the good rows are imported', async () => {
    const u = uniqueId('j');
    const nest = (levels: number) => {
      let s = '1';
      for (let i = 0; i < levels; i++) s = `{"a":${s}}`;
      return s;
    };
    const many = `{${Array.from({ length: 2100 }, (_, i) => `"k${i}":${i}`).join(',')}}`;
    const lines = [
      `{"userId":"${u}-1","traits":{"plan":"pro","prefs":{"theme":"dark"}}}`,
      `{"userId":"${u}-2","traits":{"x":${nest(30)}}}`,
      `{"userId":"${u}-3","traits":{"prefs":{"__proto__":{"admin":true}}}}`,
      `{"userId":"${u}-4","traits":{"prefs":${many}}}`,
      // deep enough to overflow JSON.stringify's stack: once the whole job failed on it
      `{"userId":"${u}-5","traits":{"x":${nest(5000)}}}`,
      `{"userId":"${u}-6","traits":{"plan":"team"}}`,
    ];
    const job = await finished(
      (await started(await upload(app, 'traits', `${lines.join('\n')}\n`, 'application/x-ndjson'))).id,
    );
    expect(job).toMatchObject({ status: 'done', error: null, rowsRead: 6, rowsAccepted: 2, rowsRejected: 4 });
    const errors = (await (await get(`/v1/imports/${job.id}/errors`)).json()) as { items: unknown[] };
    expect(errors.items).toEqual([
      { line: 2, reason: expect.stringMatching(/^"traits\.x(\.a)+": nested deeper than 24 levels$/) },
      { line: 3, reason: '"traits.prefs": key "__proto__" is not allowed' },
      { line: 4, reason: expect.stringMatching(/^"traits\.prefs(\.k\d+)?": more than 2000 properties$/) },
      { line: 5, reason: expect.stringMatching(/nested deeper than 24 levels$/) },
    ]);
    const one = await eventually('profile 1', () => profile(`userId=${u}-1`), 60_000);
    expect(one.traits).toMatchObject({ plan: 'pro', prefs: { theme: 'dark' } });
    const six = await eventually('profile 6', () => profile(`userId=${u}-6`), 60_000);
    expect(six.traits).toMatchObject({ plan: 'team' });
    expect(await profile(`userId=${u}-3`)).toBeUndefined();
  }, 180_000);
});

describe('refused uploads', () => {
  it('413 past the size limit, by Content-Length and while streaming; bigger than 1 MiB is fine below it', async () => {
    const big = `userId,plan\n${'u,x\n'.repeat(MAX_BYTES / 4 + 10)}`;
    const byLength = await upload(app, 'traits', big);
    expect(byLength.status).toBe(413);
    // no Content-Length: counted as it arrives
    const chunk = new TextEncoder().encode(`${'u,x\n'.repeat(16_384)}`);
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent > MAX_BYTES * 2) return c.close();
        sent += chunk.length;
        c.enqueue(sent === chunk.length ? new TextEncoder().encode('userId,plan\n') : chunk);
      },
    });
    const streamed = await upload(app, 'traits', stream);
    expect(streamed.status).toBe(413);
    expect(((await streamed.json()) as { error: string }).error).toMatch(/over/);
    // 1.5 MiB: over the other routes' 1 MiB, under the import limit
    const u = uniqueId('m');
    const rows = Array.from({ length: 60_000 }, (_, i) => `${u}-${i},p${i % 7}`).join('\n');
    expect(rows.length).toBeGreaterThan(1024 * 1024);
    const ok = await finished((await started(await upload(app, 'traits', `userId,plan\n${rows}\n`))).id);
    expect(ok).toMatchObject({ status: 'done', rowsRead: 60_000, rowsAccepted: 60_000 });
  }, 180_000);

  it('400 for an unknown kind, 400 for another content type, 401 without a key, 400 for an empty file', async () => {
    expect((await upload(app, 'profiles', 'userId\nu\n')).status).toBe(400);
    expect((await upload(app, 'traits', '{}', 'application/json')).status).toBe(400);
    expect((await upload(app, 'traits', 'userId\nu\n', 'text/csv; charset=latin1')).status).toBe(400);
    expect((await upload(app, 'traits', '')).status).toBe(400);
    const res = await app.request('/v1/imports?kind=traits', {
      method: 'POST',
      headers: { 'content-type': 'text/csv' },
      body: 'userId\nu\n',
    });
    expect(res.status).toBe(401);
  });
});

describe('consent import (JSON lines)', () => {
  it('records decisions with proof; an older imported decision does not override a newer one', async () => {
    const u = uniqueId('c');
    // a person known already, whose newer decision is on the profile
    const known = await started(await upload(app, 'traits', `userId,plan\n${u}-known,pro\n`));
    await finished(known.id);
    const pid = (await eventually('known profile', () => profile(`userId=${u}-known`), 60_000)).id;
    const put = await app.request(`/v1/profiles/${pid}/consent`, {
      method: 'PUT',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ channel: 'email', purpose: 'news', subscribed: true }),
    });
    expect(put.status, await put.clone().text()).toBe(200);

    const lines = [
      // older than the API's decision (now): logged, not applied
      {
        userId: `${u}-known`,
        channel: 'email',
        purpose: 'news',
        status: 'revoked',
        timestamp: '2025-01-02T03:04:05Z',
        source: 'crm:legacy',
      },
      // new people, made by the import's identify
      {
        email: `${u}-new@example.com`,
        channel: 'sms',
        purpose: 'offers',
        status: 'subscribed',
        timestamp: '2026-01-01',
        source: 'preference-centre',
        text: 'Texts about offers',
      },
      {
        userId: `${u}-third`,
        channel: 'email',
        status: 'revoked',
        timestamp: '2026-02-01T00:00:00+01:00',
        source: 'crm',
      },
      { userId: `${u}-bad`, channel: 'email', status: 'maybe', timestamp: '2026-02-01', source: 'crm' },
      { userId: `${u}-nosrc`, channel: 'email', status: 'revoked', timestamp: '2026-02-01' },
    ];
    const body = `${lines.map((l) => JSON.stringify(l)).join('\n')}\n{"userId":\n`;
    const job = await finished(
      (await started(await upload(app, 'consent', body, 'application/x-ndjson'))).id,
    );
    expect(job).toMatchObject({ status: 'done', rowsRead: 6, rowsAccepted: 3, rowsRejected: 3 });
    expect(
      ((await (await get(`/v1/imports/${job.id}/errors`)).json()) as { items: unknown[] }).items,
    ).toEqual([
      { line: 4, reason: 'status: subscribed or revoked' },
      { line: 5, reason: expect.stringMatching(/^source: required/) },
      { line: 6, reason: expect.stringMatching(/^malformed JSON/) },
    ]);

    const consentOf = async (p: string) =>
      (
        (await (await get(`/v1/profiles/${p}/consent`)).json()) as {
          consents: Array<Record<string, unknown>>;
        }
      ).consents;
    expect(await consentOf(pid)).toEqual([
      expect.objectContaining({ channel: 'email', purpose: 'news', status: 'subscribed', source: 'api' }),
    ]);
    const fresh = (await profile(`email=${u}-new@example.com`))!;
    expect(await consentOf(fresh.id)).toEqual([
      expect.objectContaining({
        channel: 'sms',
        purpose: 'offers',
        status: 'subscribed',
        source: `import:${job.id}`,
        updatedAt: '2026-01-01T00:00:00.000Z',
      }),
    ]);
    const third = (await profile(`userId=${u}-third`))!;
    expect(await consentOf(third.id)).toEqual([
      expect.objectContaining({
        channel: 'email',
        purpose: '*',
        status: 'revoked',
        updatedAt: '2026-01-31T23:00:00.000Z',
      }),
    ]);

    // the proof: the import, the file's hash and line, where the decision was made
    const history = (await (await get(`/v1/profiles/${pid}/consent/history`)).json()) as {
      history: Array<Record<string, unknown>>;
    };
    expect(history.history).toEqual([
      expect.objectContaining({ source: 'api', status: 'subscribed' }),
      expect.objectContaining({
        source: `import:${job.id}`,
        status: 'revoked',
        at: '2025-01-02T03:04:05.000Z',
        confirmation: `sha256:${job.sha256}#line=1;source=crm:legacy`,
      }),
    ]);
    const newHistory = (await (await get(`/v1/profiles/${fresh.id}/consent/history`)).json()) as {
      history: Array<Record<string, unknown>>;
    };
    expect(newHistory.history).toEqual([
      expect.objectContaining({
        text: 'Texts about offers',
        confirmation: `sha256:${job.sha256}#line=2;source=preference-centre`,
      }),
    ]);

    // the same file again: no second proof row
    const again = await started(await upload(app, 'consent', body, 'application/x-ndjson'));
    expect(again).toMatchObject({ status: 'done', duplicateOf: job.id });
    const rs = await ch.query({
      query: `SELECT count() AS n FROM consent_log WHERE workspace_id = {ws:String} AND source = {s:String}`,
      query_params: { ws, s: `import:${job.id}` },
      format: 'JSONEachRow',
    });
    expect(Number((await rs.json<{ n: string }>())[0]!.n)).toBe(3);
  }, 180_000);
});

/**
 * A request body sent in two parts: `text` at once, then nothing until finish() (the rest and
 * the end) or abort() (the client gone). `reading` resolves once the server has read the first
 * part (a stream pulls again only when its queue was taken).
 */
function heldBody(text: string, rest = '') {
  let finish!: () => void;
  let abort!: (err: Error) => void;
  let read!: () => void;
  const reading = new Promise<void>((r) => {
    read = r;
  });
  const ended = new Promise<void>((res, rej) => {
    finish = res;
    abort = rej;
  });
  let pulls = 0;
  const stream = new ReadableStream<Uint8Array>({
    async pull(c) {
      if (pulls++ === 0) return c.enqueue(new TextEncoder().encode(text));
      read();
      try {
        await ended;
        if (rest) c.enqueue(new TextEncoder().encode(rest));
        c.close();
      } catch (err) {
        c.error(err);
      }
    },
  });
  return { stream, reading, finish, abort, pulled: () => pulls };
}

describe('uploads in flight', () => {
  it('two uploads received at once per workspace: the next is a 429 before its body is read; every way out gives the place back', async () => {
    const a = makeApp(); // the default: 2
    const u = uniqueId('f');
    const csv = (n: number) => `userId,plan\n${u}-${n},p${n}\n`;
    const [h1, h2] = [heldBody(csv(1)), heldBody(csv(2), `${u}-2b,q\n`)];
    const p1 = upload(a, 'traits', h1.stream);
    const p2 = upload(a, 'traits', h2.stream);
    await Promise.all([h1.reading, h2.reading]);

    // the third: refused at once, its body never read (it would never end)
    const h3 = heldBody(csv(3));
    const third = await upload(a, 'traits', h3.stream);
    expect(third.status).toBe(429);
    expect(third.headers.get('retry-after')).toBe('10');
    expect(((await third.json()) as { error: string }).error).toBe(
      '2 uploads are already being received in this workspace; wait for one to finish',
    );
    expect(h3.pulled()).toBeLessThanOrEqual(1);
    // per workspace: another one's upload is taken meanwhile
    const elsewhere = await started(await upload(a, 'traits', csv(4), 'text/csv', 'admin-2'));

    // the client gone mid-body: a 400, and its place given back
    h1.abort(new Error('client went away'));
    const gone = await p1;
    expect(gone.status).toBe(400);
    expect(((await gone.json()) as { error: string }).error).toMatch(/did not arrive whole/);
    const fifth = await started(await upload(a, 'traits', csv(5)));
    // an empty file (refused after it was received): its place given back too
    const h6 = heldBody('');
    const p6 = upload(a, 'traits', h6.stream);
    await h6.reading;
    expect((await upload(a, 'traits', csv(7))).status).toBe(429);
    h6.finish();
    expect((await p6).status).toBe(400);
    // the second ends: accepted with both its parts
    h2.finish();
    const second = await started(await p2);
    for (const id of [fifth.id, second.id]) expect(await finished(id, a)).toMatchObject({ status: 'done' });
    expect(await status(second.id, a)).toMatchObject({ rowsRead: 2, rowsAccepted: 2 });
    expect(
      await eventually(
        'the other workspace import',
        async () => {
          const v = (await (await get(`/v1/imports/${elsewhere.id}`, 'admin-2', a)).json()) as View;
          return v.status !== 'processing' && v;
        },
        120_000,
        200,
      ),
    ).toMatchObject({ status: 'done' });

    // nothing leaked: two can be held again, and only the third is refused
    const [h8, h9] = [heldBody(csv(8)), heldBody(csv(9))];
    const p8 = upload(a, 'traits', h8.stream);
    const p9 = upload(a, 'traits', h9.stream);
    await Promise.all([h8.reading, h9.reading]);
    expect((await upload(a, 'traits', csv(10))).status).toBe(429);
    h8.finish();
    h9.finish();
    for (const p of [p8, p9])
      expect(await finished((await started(await p)).id, a)).toMatchObject({ status: 'done' });
    expect(await finished((await started(await upload(a, 'traits', csv(11)))).id, a)).toMatchObject({
      status: 'done',
      rowsAccepted: 1,
    });
  }, 180_000);
});

describe('uploads at once and a stopped process', () => {
  it('uploads sent at once: three places per workspace, the rest told to wait; each accepted one finishes with its own rows', async () => {
    // the real producer, held until released, so the accepted imports are still under way
    // when the others arrive
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    const slow: Producer = {
      connect: () => producer.connect(),
      disconnect: async () => {},
      send: async (t, m) => {
        await held;
        return producer.send(t, m);
      },
    };
    // five uploads in flight allowed, so the three places of imports under way are what is tested
    const a = makeApp({ producer: slow, maxUploads: 5 });
    const files = Array.from({ length: 5 }, (_, f) => {
      const u = uniqueId(`k${f}-`);
      return `userId,plan\n${Array.from({ length: 3000 }, (_, i) => `${u}-${i},p`).join('\n')}\n`;
    });
    const answers = await Promise.all(files.map((f) => upload(a, 'traits', f)));
    expect(answers.map((r) => r.status).sort()).toEqual([202, 202, 202, 429, 429]);
    const busy = answers.find((r) => r.status === 429)!;
    expect(busy.headers.get('retry-after')).toBe('30');
    expect(((await busy.json()) as { error: string }).error).toMatch(/already under way/);
    release();
    for (const r of answers.filter((x) => x.status === 202)) {
      const v = (await r.json()) as View;
      expect(await finished(v.id, a)).toMatchObject({ status: 'done', rowsRead: 3000, rowsAccepted: 3000 });
    }
    // places given back: another upload is taken
    const next = await started(await upload(a, 'traits', files[0]!.replace('userId,plan', 'userId,tier')));
    expect(await finished(next.id, a)).toMatchObject({ status: 'done', rowsAccepted: 3000 });
  }, 180_000);

  it('a process stopped mid-import leaves it processing; the next one goes on after the committed line', async () => {
    const prefix = uniqueId('imp-stop');
    const eventsTopic = topics(prefix).events;
    const admin = createKafka(cfg.kafka, testLogger(cfg)).admin();
    await admin.ensureTopics([{ topic: eventsTopic, partitions: 2 }]);
    await admin.disconnect();
    const stop = new AbortController();
    const a = makeApp({ topicPrefix: prefix, signal: stop.signal, batchRows: 500 });
    const u = uniqueId('s');
    const total = 20_000;
    const file = `userId,plan\n${Array.from({ length: total }, (_, i) => `${u}-${i},p${i % 3}`).join('\n')}\n`;
    const job = await started(await upload(a, 'traits', file));
    const mid = await eventually(
      'some rows committed',
      async () => {
        const v = await status(job.id, a);
        return v.committedLine > 1 && v;
      },
      60_000,
      20,
    );
    stop.abort();
    const k = importKeys(cfg.redis.prefix, ws);
    await eventually('the lease given back', async () => (await redis.exists(k.lease(job.id))) === 0, 30_000);
    const left = await status(job.id, a);
    expect(left.status).toBe('processing');
    expect(left.rowsRead).toBeGreaterThanOrEqual(mid.rowsRead);
    expect(left.rowsRead).toBeLessThan(total);
    expect(left.committedLine).toBe(left.rowsRead + 1);

    // the next process: another runner on the same Redis and upload directory
    const deps: ImportDeps = {
      redis: redis as never,
      redisPrefix: cfg.redis.prefix,
      clickhouse: ch,
      producer,
      topicPrefix: prefix,
      log: testLogger(cfg),
      now: () => new Date(),
      dir,
      maxBytes: MAX_BYTES,
      batchRows: 500,
    };
    expect(await runImport(deps, ws, job.id)).toBe(true);
    const done = await status(job.id, a);
    expect(done).toMatchObject({ status: 'done', rowsRead: total, rowsAccepted: total, rowsRejected: 0 });
    // every row once on Kafka (a batch sent but not committed before the stop is sent again
    // with the same messageIds, which the processor drops)
    const ids = await messageIds(eventsTopic, total);
    const distinct = new Set(ids);
    expect(distinct.size).toBe(total);
    expect(distinct.has(rowMessageId(ws, 'traits', job.sha256, 2))).toBe(true);
    expect(ids.length - total).toBeLessThanOrEqual(500);
  }, 240_000);
});
