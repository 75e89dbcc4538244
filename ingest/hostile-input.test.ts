// Hostile input against the ingest edge through app.request(), without a port: every bad
// request gets a 4xx with `{success:false,error}` (never a 5xx, never a throw), nothing
// reaches the producer, and nothing pollutes a prototype. Then generated payloads
// (fast-check): whatever arrives, the answer is a 200 or a 4xx with a JSON body, and a 200
// only when the producer got exactly the request's events, each a valid normalised event.
// The producer records what it is given; the real Kafka path is test/e2e/ingest-faults.
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { OutgoingMessage, Producer } from '../runtime/kafka/index.ts';
import { createLogger } from '../runtime/log.ts';
import { normalizedEventCheck } from '../schemas/event.ts';
import { createIngestApp } from './app.ts';

const WRITE_KEY = 'wk-123456';
const WORKSPACE = 'ws1';
const auth = `Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}`;
const log = createLogger({ level: 'silent', name: 'test' });

/** Every message given to the producer since the last reset, in order. */
const sent: OutgoingMessage[] = [];
const producer: Producer = {
  connect: async () => {},
  disconnect: async () => {},
  send: async (_topic, messages) => {
    sent.push(...messages);
  },
};
const app = createIngestApp({
  producer,
  eventsTopic: 'events',
  resolveWriteKey: (k) => (k === WRITE_KEY ? WORKSPACE : undefined),
  log,
  now: () => new Date('2026-01-01T00:00:00Z'),
  produceTimeoutMs: 1000,
});

type Body = RequestInit['body'];

async function post(path: string, body: Body, headers: Record<string, string> = {}, method = 'POST') {
  sent.length = 0;
  const res = await app.request(path, {
    method,
    body,
    headers: { authorization: auth, 'content-type': 'application/json', ...headers },
  });
  const text = await res.text();
  return { status: res.status, text, contentType: res.headers.get('content-type') ?? '' };
}

/** A 4xx with `{success:false, error:string}`, and nothing produced. */
async function expectRejected(
  path: string,
  body: Body,
  headers: Record<string, string> = {},
  status?: number,
  method = 'POST',
): Promise<string> {
  const r = await post(path, body, headers, method);
  if (status !== undefined) expect(r.status, r.text.slice(0, 300)).toBe(status);
  expect(r.status, r.text.slice(0, 300)).toBeGreaterThanOrEqual(400);
  expect(r.status, r.text.slice(0, 300)).toBeLessThan(500);
  expect(r.contentType).toMatch(/^application\/json/);
  const json = JSON.parse(r.text) as { success: unknown; error: unknown };
  expect(json).toEqual({ success: false, error: expect.any(String) });
  expect(sent).toHaveLength(0);
  return json.error as string;
}

/** A 200 `{success:true}`; returns the produced events, each checked against the schema. */
async function expectAccepted(path: string, body: Body, headers: Record<string, string> = {}) {
  const r = await post(path, body, headers);
  expect(r.status, r.text.slice(0, 300)).toBe(200);
  expect(JSON.parse(r.text)).toEqual({ success: true });
  return producedEvents();
}

function producedEvents(): Record<string, unknown>[] {
  const problems: string[] = [];
  const events = sent.map((m) => {
    const e = JSON.parse(String(m.value)) as Record<string, unknown>;
    if (!normalizedEventCheck.Check(e)) problems.push(JSON.stringify([...normalizedEventCheck.Errors(e)][0]));
    if (e.workspaceId !== WORKSPACE) problems.push(`workspace ${String(e.workspaceId)}`);
    if (m.key !== `${WORKSPACE}:${e.userId ?? e.anonymousId ?? e.messageId}`) problems.push(`key ${m.key}`);
    return e;
  });
  expect(problems.slice(0, 5)).toEqual([]);
  return events;
}

const json = (v: unknown) => JSON.stringify(v);

/** Whether a JSON text has a `__proto__` key anywhere (README: such keys are dropped). */
function protoKeyIn(text: string): boolean {
  let found = false;
  JSON.parse(text, (k, v) => {
    if (k === '__proto__') found = true;
    return v;
  });
  return found;
}
const track = (extra: Record<string, unknown> = {}) => ({ userId: 'u1', event: 'Clicked', ...extra });

// --- prototype pollution watch: Object.prototype must look the same before and after ---
const protoNames = (o: object) => Reflect.ownKeys(o).map(String).sort();
let objectProtoBefore: string[];
let arrayProtoBefore: string[];
beforeAll(() => {
  objectProtoBefore = protoNames(Object.prototype);
  arrayProtoBefore = protoNames(Array.prototype);
});
function expectNoPollution() {
  for (const k of ['polluted', 'isAdmin', 'x']) {
    expect(({} as Record<string, unknown>)[k]).toBeUndefined();
    expect(([] as unknown as Record<string, unknown>)[k]).toBeUndefined();
  }
  expect(protoNames(Object.prototype)).toEqual(objectProtoBefore);
  expect(protoNames(Array.prototype)).toEqual(arrayProtoBefore);
  expect(Object.getPrototypeOf({})).toBe(Object.prototype);
}
beforeEach(() => {
  sent.length = 0;
});
afterAll(() => expectNoPollution());

describe('hostile input: each answered with a 4xx JSON error', () => {
  it.each([
    ['unterminated object', '{"userId":'],
    ['single quotes', "{'userId':'u'}"],
    ['trailing comma', '{"userId":"u","event":"e",}'],
    ['trailing garbage', '{"userId":"u","event":"e"}}'],
    ['two documents', '{"userId":"u","event":"e"}{"userId":"u","event":"e"}'],
    ['NaN', '{"userId":"u","event":"e","properties":{"n":NaN}}'],
    ['undefined literal', 'undefined'],
    ['leading zero', '{"userId":01,"event":"e"}'],
    ['unescaped control character', '{"userId":"a\u0001b","event":"e"}'],
    ['bad escape', '{"userId":"\\x41","event":"e"}'],
    ['comment', '{"userId":"u" /* hi */,"event":"e"}'],
    ['only whitespace', ' \n\t '],
    ['a lone brace', '{'],
    ['null', 'null'],
    ['a number', '42'],
    ['a string', '"track"'],
    ['true', 'true'],
    ['an array', '[]'],
    ['an array of events', json([track()])],
  ])('malformed or non-object JSON: %s', async (_name, body) => {
    await expectRejected('/v1/track', body, {}, 400);
  });

  // Every envelope field with values of the wrong type. (null is allowed where an SDK may
  // send it, and ids may be numbers, so those are not in the lists.)
  const notString = [true, false, [], ['u'], {}, { a: 1 }];
  const notObject = ['x', 1, true, [], [1, 2], ['a']];
  const wrong: Record<string, unknown[]> = {
    type: [1, true, null, [], {}, ['track']],
    messageId: [...notString, 1, null, ''],
    userId: notString,
    anonymousId: notString,
    previousId: notString,
    groupId: notString,
    event: [...notString, 1, null, ''],
    name: [...notString, 1],
    category: [...notString, 1],
    properties: notObject,
    traits: notObject,
    context: notObject,
    integrations: notObject,
    timestamp: [...notString, 1, 'yesterday', 'not a date', '2026-13-45T99:99:99Z', 'x'.repeat(65)],
    originalTimestamp: [...notString, 1, 'soon', '2026-02-30T25:00:00Z'],
    sentAt: [...notString, 1, 'later'],
    writeKey: [1, true, null, [], {}],
  };
  const wrongCases = Object.entries(wrong).flatMap(([field, values]) =>
    values.map((v) => [field, json(v), v] as const),
  );
  it.each(wrongCases)('wrong type in %s: %s', async (field, _shown, value) => {
    // alias and group need their own ids to get as far as the field under test
    const base = { ...track(), previousId: 'p1', groupId: 'g1', anonymousId: 'a1' };
    const err = await expectRejected('/v1/track', json({ ...base, [field]: value }), {}, 400);
    expect(err).toContain(field);
    // and the same inside a batch, named by its index
    const item = { ...base, type: 'track', [field]: value };
    const errBatch = await expectRejected(
      '/v1/batch',
      json({ batch: [{ ...base, type: 'track' }, item] }),
      {},
      400,
    );
    expect(errBatch).toMatch(/^batch\[1\]/);
  });

  it.each([
    ['track without any id', '/v1/track', { event: 'e' }],
    ['identify without any id', '/v1/identify', { traits: { a: 1 } }],
    ['page with only junk ids', '/v1/page', { userId: 'null', anonymousId: 'undefined' }],
    ['screen with empty ids', '/v1/screen', { userId: '', anonymousId: '   ' }],
    ['track with ids 0 / anonymous', '/v1/track', { userId: 0, anonymousId: 'Anonymous', event: 'e' }],
    ['track with null ids', '/v1/track', { userId: null, anonymousId: null, event: 'e' }],
    ['track without event', '/v1/track', { userId: 'u' }],
    ['alias without previousId', '/v1/alias', { userId: 'u' }],
    ['alias with a junk previousId', '/v1/alias', { userId: 'u', previousId: 'NaN' }],
    ['alias without userId', '/v1/alias', { anonymousId: 'a', previousId: 'p' }],
    ['group without groupId', '/v1/group', { userId: 'u' }],
    ['group with a junk groupId', '/v1/group', { userId: 'u', groupId: '[object Object]' }],
    ['a type other than the route', '/v1/track', { userId: 'u', event: 'e', type: 'identify' }],
    ['batch item without type', '/v1/batch', { batch: [{ userId: 'u', event: 'e' }] }],
    ['batch item with type batch', '/v1/batch', { batch: [{ userId: 'u', type: 'batch' }] }],
    ['batch item with an unknown type', '/v1/batch', { batch: [{ userId: 'u', type: 'purchase' }] }],
  ])('missing or junk ids: %s', async (_name, path, body) => {
    await expectRejected(path, json(body), {}, 400);
  });

  it('missing or unknown write key', async () => {
    await expectRejected('/v1/track', json(track()), { authorization: '' }, 401);
    await expectRejected('/v1/track', json(track()), { authorization: 'Basic !!!!' }, 401);
    await expectRejected('/v1/track', json(track()), { authorization: 'Basic Og==' }, 401); // ":"
    await expectRejected('/v1/track', json(track()), { authorization: 'Bearer wk-123456' }, 401);
    await expectRejected('/v1/track', json(track({ writeKey: 'nope' })), { authorization: '' }, 401);
    await expectRejected('/v1/track', json(track({ writeKey: '' })), { authorization: '' }, 401);
    const long = `Basic ${Buffer.from(`${'k'.repeat(8000)}:`).toString('base64')}`;
    await expectRejected('/v1/track', json(track()), { authorization: long }, 401);
  });

  describe('nesting bombs', () => {
    const deepArray = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
    const deepObject = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
    const inField = (field: string, nested: string) => `{"userId":"u","event":"e","${field}":${nested}}`;

    it('a deeply nested array as the whole body', async () => {
      await expectRejected('/v1/track', deepArray(200_000), {}, 400);
      await expectRejected('/v1/batch', deepArray(200_000), {}, 400);
    });

    it.each(['properties', 'traits', 'context', 'integrations'])(
      'deep arrays and objects in %s',
      async (field) => {
        for (const nested of [`{"x":${deepArray(100_000)}}`, deepObject(80_000), `{"x":${deepArray(26)}}`]) {
          const err = await expectRejected('/v1/track', inField(field, nested), {}, 400);
          expect(err).toMatch(/nested deeper than 24 levels/);
        }
      },
    );

    it('deep nesting in an unknown top-level field and inside a batch item', async () => {
      await expectRejected('/v1/track', `{"userId":"u","event":"e","extra":${deepObject(80_000)}}`, {}, 400);
      const err = await expectRejected(
        '/v1/batch',
        `{"batch":[{"type":"track","userId":"u","event":"e"},{"type":"track","userId":"u","event":"e","properties":${deepObject(50_000)}}]}`,
        {},
        400,
      );
      expect(err).toMatch(/^batch\[1\]\.properties/);
    });

    it.each(['context', 'integrations'])('deep nesting in the batch-level %s', async (field) => {
      // merged into every event of the batch; this used to overflow the stack in
      // JSON.stringify and answer 500
      for (const nested of [deepObject(5_000), deepObject(80_000), `{"x":${deepArray(100_000)}}`]) {
        const err = await expectRejected(
          '/v1/batch',
          `{"batch":[{"type":"track","userId":"u","event":"e"}],"${field}":${nested}}`,
          {},
          400,
        );
        expect(err).toMatch(new RegExp(`^${field}: .*nested deeper than 24 levels`));
      }
    });

    it('nesting up to the limit is accepted', async () => {
      // 24 levels below the event: properties is level 1
      const nested = `${'{"a":'.repeat(23)}1${'}'.repeat(23)}`;
      const [e] = await expectAccepted('/v1/track', inField('properties', nested));
      expect(e?.properties).toBeTypeOf('object');
    });
  });

  describe('huge strings', () => {
    const big = 'x'.repeat(400_000);
    it.each([
      ['event', { event: big }],
      ['messageId', { messageId: big }],
      ['userId', { userId: big }],
      ['anonymousId', { anonymousId: big }],
      ['name', { name: big }],
      ['timestamp', { timestamp: big }],
      ['a property value', { properties: { s: big } }],
      ['a property key', { properties: { [big]: 1 } }],
      ['a trait', { traits: { s: big } }],
      ['a context value', { context: { s: big } }],
    ])('in %s: 400', async (_name, extra) => {
      await expectRejected('/v1/track', json(track(extra)), {}, 400);
    });

    it('in an unknown top-level field: ignored, not produced', async () => {
      const events = await expectAccepted('/v1/track', json(track({ extra: big })));
      expect(events).toHaveLength(1);
      expect(String(sent[0]?.value)).not.toContain('xxxx');
    });

    it('in type: 400, without echoing the string back', async () => {
      const err = await expectRejected('/v1/track', json(track({ type: big })), {}, 400);
      expect(err.length).toBeLessThan(500);
    });

    it('over the request limit, plain and gzip: 413', async () => {
      const body = json(track({ properties: { s: 'x'.repeat(600_000) } }));
      await expectRejected('/v1/track', body, {}, 413);
      await expectRejected('/v1/track', gzipSync(body), { 'content-encoding': 'gzip' }, 413);
      await expectRejected('/v1/track', body, { 'content-length': '600000' }, 413);
    });

    it('in a route name: 4xx', async () => {
      await expectRejected(`/v1/${'t'.repeat(50_000)}`, json(track()), {});
    });
  });

  describe('many keys', () => {
    const keys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 0]));
    it.each([
      ['properties', { properties: keys(2001) }],
      ['traits', { traits: keys(40_000) }],
      ['context', { context: keys(3000) }],
      ['integrations', { integrations: keys(3000) }],
      ['an array', { properties: { list: Array.from({ length: 3000 }, () => 0) } }],
      ['spread over nested objects', { properties: { a: keys(1000), b: keys(1000), c: keys(10) } }],
      ['the top level', keys(5000)],
    ])('in %s: 400', async (_name, extra) => {
      const err = await expectRejected('/v1/track', json(track(extra)), {}, 400);
      expect(err).toMatch(/more than 2000 properties/);
    });

    it('in the batch-level context: 400', async () => {
      const err = await expectRejected(
        '/v1/batch',
        json({ context: keys(2500), batch: [{ type: 'track', userId: 'u', event: 'e' }] }),
        {},
        400,
      );
      expect(err).toMatch(/^context: .*more than 2000 properties/);
    });
  });

  describe('__proto__, constructor and prototype keys at every level', () => {
    const payloads = [
      '{"__proto__":{"polluted":1}}',
      '{"constructor":{"prototype":{"polluted":1}}}',
      '{"prototype":{"polluted":1}}',
      '{"__proto__":{"__proto__":{"polluted":1}}}',
      '{"a":{"b":{"__proto__":{"polluted":1},"constructor":{"prototype":{"polluted":1}}}}}',
      '{"list":[{"__proto__":{"polluted":1}},[{"constructor":{"prototype":{"polluted":1}}}]]}',
    ];
    // a JSON object literal spliced into a field of an otherwise valid event
    const at = (field: string, obj: string) => `{"userId":"u","event":"e","${field}":${obj}}`;
    const topLevel = (obj: string) => `{"userId":"u","event":"e",${obj.slice(1)}`;

    it.each(payloads)('%s is harmless everywhere, and __proto__ keys are dropped', async (obj) => {
      const bodies: Array<[string, string]> = [
        ['/v1/track', topLevel(obj)],
        ...['properties', 'traits', 'context', 'integrations'].map(
          (f) => ['/v1/track', at(f, obj)] as [string, string],
        ),
        ['/v1/batch', `{"batch":[${topLevel(obj).replace('{', '{"type":"track",')}]}`],
        ['/v1/batch', `{"batch":[${at('properties', obj).replace('{', '{"type":"track",')}]}`],
        ['/v1/batch', `{"context":${obj},"batch":[{"type":"track","userId":"u","event":"e"}]}`],
        ['/v1/batch', `{"integrations":${obj},"batch":[{"type":"track","userId":"u","event":"e"}]}`],
        ['/v1/batch', `{"batch":[{"type":"track","userId":"u","event":"e"}],${obj.slice(1)}`],
      ];
      for (const [path, body] of bodies) {
        const events = await expectAccepted(path, body);
        expect(events).toHaveLength(1);
        for (const m of sent) expect(protoKeyIn(String(m.value))).toBe(false);
        expectNoPollution();
      }
    });

    it('as the batch itself, the route, or the type', async () => {
      await expectRejected(
        '/v1/batch',
        '{"__proto__":{"batch":[{"type":"track","userId":"u","event":"e"}]}}',
      );
      await expectRejected('/v1/batch', '{"batch":{"__proto__":[]}}', {}, 400);
      for (const route of ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf'])
        await expectRejected(`/v1/${route}`, json(track()));
      await expectRejected('/v1/track', json(track({ type: '__proto__' })), {}, 400);
      await expectRejected('/v1/batch', json({ batch: [{ type: 'constructor', userId: 'u' }] }), {}, 400);
      expectNoPollution();
    });
  });

  describe('invalid UTF-8', () => {
    const wrap = (bytes: number[]) =>
      Buffer.concat([Buffer.from('{"userId":"u","event":"'), Buffer.from(bytes), Buffer.from('"}')]);
    it.each([
      ['0xFF', [0xff]],
      ['0xFE 0xFF', [0xfe, 0xff]],
      ['a lone continuation byte', [0x80]],
      ['an overlong "/"', [0xc0, 0xaf]],
      ['an overlong NUL', [0xe0, 0x80, 0x80]],
      ['a UTF-16 surrogate', [0xed, 0xa0, 0x80]],
      ['beyond U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
      ['a truncated sequence', [0xe2, 0x82]],
      ['a 5-byte form', [0xf8, 0x88, 0x80, 0x80, 0x80]],
    ])('%s inside a string: 400', async (_name, bytes) => {
      const err = await expectRejected('/v1/track', wrap(bytes), {}, 400);
      expect(err).toMatch(/UTF-8/);
      await expectRejected('/v1/track', gzipSync(wrap(bytes)), { 'content-encoding': 'gzip' }, 400);
    });

    it('UTF-16 and a truncated multi-byte character at the end: 400', async () => {
      await expectRejected('/v1/track', Buffer.from(json(track()), 'utf16le'), {}, 400);
      await expectRejected('/v1/track', Buffer.from([0x7b, 0xe2, 0x82]), {}, 400);
    });

    it('escaped lone surrogates are valid JSON: accepted and stored as valid JSON', async () => {
      const events = await expectAccepted('/v1/track', '{"userId":"u\\ud800","event":"e\\udfff"}');
      expect(events[0]?.userId).toBe('u\ud800');
      expect(Buffer.from(String(sent[0]?.value), 'utf8').toString('utf8')).toBe(String(sent[0]?.value));
    });
  });

  describe('empty bodies, content types, encodings', () => {
    it('empty bodies: 400', async () => {
      await expectRejected('/v1/track', '', {}, 400);
      await expectRejected('/v1/track', undefined, {}, 400);
      await expectRejected('/v1/track', new Uint8Array(0), {}, 400);
      await expectRejected('/v1/track', gzipSync(Buffer.alloc(0)), { 'content-encoding': 'gzip' }, 400);
      await expectRejected('/v1/batch', '', { 'content-type': 'text/plain' }, 400);
    });

    it.each([
      'application/xml',
      'text/html',
      'multipart/form-data; boundary=x',
      'application/json-patch+json',
      'application/octet-stream',
      'image/png',
      'application/json/x',
    ])('content type %s: 415', async (type) => {
      await expectRejected('/v1/track', json(track()), { 'content-type': type }, 415);
    });

    it.each([
      'br',
      'deflate',
      'compress',
      'zstd',
      'gzip, br',
      'gzip, gzip',
      'x-gzip',
      'identity, gzip',
      'gz\u00eep',
    ])('content encoding %s: 415', async (encoding) => {
      await expectRejected('/v1/track', gzipSync(json(track())), { 'content-encoding': encoding }, 415);
    });

    it('a real form body, where a form content type is tolerated for JSON: 400', async () => {
      // read-body.ts accepts application/x-www-form-urlencoded because an SDK labels its
      // JSON so; a body that really is a form must still be refused
      const form = { 'content-type': 'application/x-www-form-urlencoded' };
      await expectRejected('/v1/track', 'userId=u&event=e', form, 400);
      await expectRejected('/v1/track', '__proto__[polluted]=1&userId=u', form, 400);
      await expectRejected('/v1/batch', 'batch[0][type]=track', form, 400);
    });

    it('gzip declared but not gzip, or gzip twice: 400', async () => {
      await expectRejected('/v1/track', json(track()), { 'content-encoding': 'gzip' }, 400);
      await expectRejected(
        '/v1/track',
        gzipSync(gzipSync(json(track()))),
        { 'content-encoding': 'gzip' },
        400,
      );
      // gzip sent without saying so
      await expectRejected('/v1/track', gzipSync(json(track())), {}, 400);
    });

    it('truncated and corrupted gzip: 400', async () => {
      const gz = gzipSync(json(track({ properties: { text: 'lorem ipsum '.repeat(200) } })));
      const cuts = [1, 2, 10, 11, Math.floor(gz.length / 2), gz.length - 8, gz.length - 4, gz.length - 1];
      for (const cut of cuts) {
        const err = await expectRejected(
          '/v1/track',
          gz.subarray(0, cut),
          { 'content-encoding': 'gzip' },
          400,
        );
        expect(err).toMatch(/gzip/);
      }
      const badCrc = Buffer.from(gz);
      badCrc[gz.length - 6] = (badCrc[gz.length - 6] ?? 0) ^ 0xff;
      await expectRejected('/v1/track', badCrc, { 'content-encoding': 'gzip' }, 400);
      const badData = Buffer.from(gz);
      badData[20] = (badData[20] ?? 0) ^ 0xff;
      await expectRejected('/v1/track', badData, { 'content-encoding': 'gzip' }, 400);
    });

    it('a gzip bomb: 413', async () => {
      await expectRejected(
        '/v1/track',
        gzipSync(Buffer.alloc(20_000_000, 32)),
        { 'content-encoding': 'gzip' },
        413,
      );
    });

    it('other methods and unknown routes: 4xx', async () => {
      await expectRejected('/v1/track', undefined, {}, 404, 'GET');
      await expectRejected('/v1/track', json(track()), {}, 404, 'PUT');
      await expectRejected('/v1/track', undefined, {}, 404, 'DELETE');
      await expectRejected('/v1/nope', json(track()), {}, 400);
      await expectRejected('/v1/track/extra', json(track()), {}, 404);
      await expectRejected('/v2/track', json(track()), {}, 404);
      await expectRejected('/v1/%ZZ', json(track()));
      await expectRejected('/v1/', json(track()), {}, 404);
    });
  });

  describe('batches', () => {
    const item = (i: number) => ({ type: 'page', userId: 'u', messageId: `m${i}` });
    it.each([
      ['missing', {}],
      ['an object', { batch: { 0: item(0) } }],
      ['a string', { batch: 'track' }],
      ['a number', { batch: 1 }],
      ['null', { batch: null }],
      ['empty', { batch: [] }],
      ['of nulls', { batch: [null] }],
      ['of numbers', { batch: [1, 2] }],
      ['of strings', { batch: ['{"type":"page","userId":"u"}'] }],
      ['of arrays', { batch: [[item(0)]] }],
    ])('batch %s: 400', async (_name, body) => {
      await expectRejected('/v1/batch', json(body), {}, 400);
    });

    it('10,000 tiny events: all produced, in order, each valid', async () => {
      const batch = Array.from({ length: 10_000 }, (_, i) => item(i));
      const events = await expectAccepted('/v1/batch', json({ batch }));
      expect(events).toHaveLength(10_000);
      expect(events.map((e) => e.messageId)).toEqual(batch.map((b) => b.messageId));
    });

    it('10,000 tiny events with one invalid (the last): 400 naming it, nothing produced', async () => {
      const batch: unknown[] = Array.from({ length: 10_000 }, (_, i) => item(i));
      batch[9_999] = { type: 'page' };
      const err = await expectRejected('/v1/batch', json({ batch }), {}, 400);
      expect(err).toMatch(/^batch\[9999\]\.userId or anonymousId/);
    });

    it('mixed valid and invalid: 400 naming the first invalid one, nothing produced', async () => {
      const batch = [
        item(0),
        { type: 'track', userId: 'u', event: 'ok' },
        { type: 'track', userId: 'u' }, // no event
        { type: 'identify' }, // no id
        7,
      ];
      expect(await expectRejected('/v1/batch', json({ batch }), {}, 400)).toMatch(/^batch\[2\]\.event/);
      expect(await expectRejected('/v1/b', json({ batch: [item(0), 7] }), {}, 400)).toMatch(/^batch\[1\]/);
      expect(
        await expectRejected(
          '/v1/import',
          json({ batch: [item(0), { ...item(1), timestamp: 'nope' }] }),
          {},
          400,
        ),
      ).toMatch(/^batch\[1\]\.timestamp/);
    });

    it('an event over 32 KB inside a batch: 400 naming it', async () => {
      const batch = [item(0), { ...item(1), properties: { s: 'x'.repeat(40_000) } }];
      expect(await expectRejected('/v1/batch', json({ batch }), {}, 400)).toMatch(/^batch\[1\]: \d+ bytes/);
    });

    it('sentAt and originalTimestamp at the ends of the Date range: 400, not a 500', async () => {
      // used to give an Invalid Date after the skew correction, and a RangeError (500)
      const far = { sentAt: '+275760-09-13T00:00:00.000Z', originalTimestamp: '-271821-04-20T00:00:00.000Z' };
      await expectRejected('/v1/track', json(track(far)), {}, 400);
      await expectRejected('/v1/batch', json({ batch: [{ ...item(0), ...far }] }), {}, 400);
      // a valid Date but not one the history can store: a 400 naming the field
      expect(
        await expectRejected(
          '/v1/track',
          json(track({ sentAt: '+275760-09-13T00:00:00.000Z', originalTimestamp: '2026-01-01T00:00:00Z' })),
          {},
          400,
        ),
      ).toMatch(/^sentAt: .* outside the years 1900–2299/);
      // a client clock years off, corrected by sentAt: accepted
      const events = await expectAccepted(
        '/v1/track',
        json(track({ sentAt: '2031-01-01T00:00:05.000Z', originalTimestamp: '2031-01-01T00:00:00Z' })),
      );
      expect(events).toHaveLength(1);
    });

    // The batch-level context is copied into every event: without a cap on what a request
    // produces, 500 KB could become hundreds of MB of Kafka messages.
    it('a batch-level context copied into many events is refused with a 4xx', async () => {
      const context = Object.fromEntries(Array.from({ length: 1500 }, (_, i) => [`k${i}`, 0]));
      const batch = Array.from({ length: 2000 }, (_, i) => item(i));
      await expectRejected('/v1/batch', json({ context, batch }));
    });
  });
});

// --- generated payloads ------------------------------------------------------------

const SINGLE_ROUTES = ['track', 'identify', 'page', 'screen', 'group', 'alias', 't', 'i', 'p', 's', 'g', 'a'];
const BATCH_ROUTES = ['batch', 'b', 'import'];
const ROUTE_TYPE: Record<string, string> = {
  t: 'track',
  i: 'identify',
  p: 'page',
  s: 'screen',
  g: 'group',
  a: 'alias',
};
const TYPES = ['track', 'identify', 'page', 'screen', 'group', 'alias'];
const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty'];

const protoKey = fc.constantFrom(...PROTO_KEYS);
const key = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 8 }) },
  { weight: 1, arbitrary: protoKey },
);
/** Arbitrary JSON, with prototype-ish keys mixed in. */
const anyJson: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.dictionary(key, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 6 }) },
);
const objectish = fc.oneof(
  { weight: 4, arbitrary: fc.dictionary(key, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 6 }) },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: anyJson },
);
const id = fc.oneof(
  { weight: 4, arbitrary: fc.string({ minLength: 1, maxLength: 12 }) },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.constantFrom('null', 'undefined', '0', 'anonymous', '', ' ', 'NaN', null) },
  { weight: 1, arbitrary: anyJson },
);
const time = fc.oneof(
  { weight: 3, arbitrary: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()) },
  { weight: 1, arbitrary: fc.constantFrom('+275760-09-13T00:00:00.000Z', '-271821-04-20T00:00:00.000Z') },
  { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
  { weight: 1, arbitrary: anyJson },
);
const str = (max: number) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.string({ minLength: 1, maxLength: max }) },
    { weight: 1, arbitrary: anyJson },
  );

/** An envelope where every field is either plausible or arbitrary JSON, and may be absent. */
const hostileEnvelope = fc.record(
  {
    type: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...TYPES) }, { weight: 1, arbitrary: anyJson }),
    messageId: fc.oneof({ weight: 4, arbitrary: fc.uuid() }, { weight: 1, arbitrary: anyJson }),
    userId: id,
    anonymousId: id,
    previousId: id,
    groupId: id,
    event: str(20),
    name: str(20),
    category: str(20),
    properties: objectish,
    traits: objectish,
    context: objectish,
    integrations: objectish,
    timestamp: time,
    originalTimestamp: time,
    sentAt: time,
    writeKey: fc.oneof(fc.constant(WRITE_KEY), anyJson),
  },
  { requiredKeys: [] },
);

/** A mostly well-formed envelope (so many are accepted), still with prototype-ish keys. */
const plausibleTime = fc.oneof(
  // near the app's clock (2026-01-01), inside the accepted event times
  {
    weight: 9,
    arbitrary: fc
      .date({
        min: new Date('2022-01-01T00:00:00Z'),
        max: new Date('2026-01-01T12:00:00Z'),
        noInvalidDate: true,
      })
      .map((d) => d.toISOString()),
  },
  { weight: 1, arbitrary: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()) },
);
const dict = fc.dictionary(key, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 6 });
const plausibleEnvelope = fc.record(
  {
    type: fc.constantFrom(...TYPES),
    messageId: fc.oneof(fc.uuid(), fc.string({ minLength: 1, maxLength: 40 })),
    userId: fc.oneof(fc.string({ minLength: 1, maxLength: 12 }), fc.integer()),
    anonymousId: fc.oneof(fc.string({ minLength: 1, maxLength: 12 }), fc.constant(null)),
    previousId: fc.string({ minLength: 1, maxLength: 12 }),
    groupId: fc.oneof(fc.string({ minLength: 1, maxLength: 12 }), fc.nat()),
    event: fc.string({ minLength: 1, maxLength: 20 }),
    name: fc.oneof(fc.string({ maxLength: 20 }), fc.constant(null)),
    properties: dict,
    traits: fc.oneof(dict, fc.constant(null)),
    context: dict,
    integrations: dict,
    timestamp: plausibleTime,
    originalTimestamp: plausibleTime,
    sentAt: plausibleTime,
  },
  { requiredKeys: ['userId', 'event', 'groupId', 'previousId'] },
);

const envelope = fc.oneof(plausibleEnvelope, hostileEnvelope).chain((env) =>
  // extra keys, prototype-ish among them, defined as own data properties
  fc.dictionary(key, anyJson, { maxKeys: 3 }).map((extra) => ({ ...extra, ...env })),
);
/** For the single-event routes: the route implies the type, which is mostly left out. */
const singleEnvelope = fc
  .tuple(envelope, fc.nat(3))
  .map(([env, n]) => (n === 0 ? env : (({ type: _type, ...rest }) => rest)(env)));

interface Outcome {
  status: number;
  body: { success?: unknown; error?: unknown };
}

async function send(path: string, body: Body, headers: Record<string, string> = {}): Promise<Outcome> {
  const r = await post(path, body, headers);
  // never a 5xx, always a JSON body of the documented shape
  expect(r.status === 200 || (r.status >= 400 && r.status < 500), `${r.status} ${r.text}`).toBe(true);
  expect(r.contentType).toMatch(/^application\/json/);
  const parsed = JSON.parse(r.text) as Outcome['body'];
  if (r.status === 200) expect(parsed).toEqual({ success: true });
  else {
    expect(parsed).toEqual({ success: false, error: expect.any(String) });
    expect(sent).toHaveLength(0); // a refused request produced nothing
  }
  return { status: r.status, body: parsed };
}

/** After a 200: exactly the request's events were produced, in order, each valid. */
function expectProducedExactly(items: Array<Record<string, unknown>>, routeType?: string) {
  const events = producedEvents();
  expect(events).toHaveLength(items.length);
  events.forEach((e, i) => {
    const given = items[i]!;
    if (typeof given.messageId === 'string') expect(e.messageId).toBe(given.messageId);
    expect(e.type).toBe(routeType ?? given.type);
  });
  for (const m of sent) expect(protoKeyIn(String(m.value))).toBe(false);
}

type Stats = { runs: number; ok: number; rejected: number; produced: number };
const stats: Record<'single' | 'batch' | 'bytes', Stats> = {
  single: { runs: 0, ok: 0, rejected: 0, produced: 0 },
  batch: { runs: 0, ok: 0, rejected: 0, produced: 0 },
  bytes: { runs: 0, ok: 0, rejected: 0, produced: 0 },
};
function count(which: keyof typeof stats, o: Outcome) {
  const st = stats[which];
  st.runs++;
  if (o.status === 200) st.ok++;
  else st.rejected++;
  st.produced += sent.length;
}

describe('generated payloads (fast-check)', () => {
  afterAll(() => {
    // visible with --reporter=verbose; the numbers show the properties hit both outcomes
    console.info(`fast-check: ${JSON.stringify(stats)}`);
    for (const st of Object.values(stats)) {
      expect(st.ok).toBeGreaterThan(st.runs / 50);
      expect(st.rejected).toBeGreaterThan(st.runs / 50);
    }
  });

  it('single events with arbitrary fields on every route', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...SINGLE_ROUTES), singleEnvelope, async (route, env) => {
        const o = await send(`/v1/${route}`, JSON.stringify(env));
        count('single', o);
        if (o.status === 200) expectProducedExactly([env], ROUTE_TYPE[route] ?? route);
      }),
      { numRuns: 1400 },
    );
    expectNoPollution();
  });

  it('batches of arbitrary events, with arbitrary batch-level fields', async () => {
    const batchBody = fc.record(
      {
        batch: fc.oneof(
          { weight: 4, arbitrary: fc.array(envelope, { minLength: 0, maxLength: 6 }) },
          { weight: 3, arbitrary: fc.array(plausibleEnvelope, { minLength: 1, maxLength: 6 }) },
          { weight: 1, arbitrary: anyJson },
        ),
        context: objectish,
        integrations: objectish,
        writeKey: fc.oneof(fc.constant(WRITE_KEY), anyJson),
        sentAt: time,
      },
      { requiredKeys: ['batch'] },
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...BATCH_ROUTES), batchBody, async (route, body) => {
        const o = await send(`/v1/${route}`, JSON.stringify(body));
        count('batch', o);
        if (o.status === 200) {
          expect(Array.isArray(body.batch)).toBe(true);
          expectProducedExactly(body.batch as Array<Record<string, unknown>>);
        }
      }),
      { numRuns: 600 },
    );
    expectNoPollution();
  });

  it('arbitrary bytes, strings and gzip as bodies, arbitrary headers, random routes', async () => {
    const route = fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom(...SINGLE_ROUTES, ...BATCH_ROUTES) },
      { weight: 1, arbitrary: fc.constantFrom(...PROTO_KEYS, 'x', '', 'track/x', '%2e%2e', '%ZZ') },
      { weight: 1, arbitrary: fc.string({ maxLength: 10 }).map(encodeURIComponent) },
    );
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 512 }),
      fc.string({ unit: 'binary', maxLength: 200 }).map((s) => new TextEncoder().encode(s)),
      anyJson.map((v) => new TextEncoder().encode(JSON.stringify(v) ?? '')),
      envelope.map((e) => new TextEncoder().encode(JSON.stringify(e))),
      plausibleEnvelope.map((e) => {
        const { type: _type, ...rest } = e;
        return new TextEncoder().encode(JSON.stringify(rest));
      }),
    );
    const body = fc.oneof(
      { weight: 3, arbitrary: bytes.map((b) => ({ b, gzip: false })) },
      { weight: 1, arbitrary: bytes.map((b) => ({ b: new Uint8Array(gzipSync(b)), gzip: true })) },
      {
        weight: 1, // truncated gzip
        arbitrary: fc.tuple(bytes, fc.nat()).map(([b, n]) => {
          const gz = gzipSync(b);
          return { b: new Uint8Array(gz.subarray(0, n % gz.length)), gzip: true };
        }),
      },
    );
    const headers = fc.oneof(
      { weight: 1, arbitrary: fc.constant({}) }, // the defaults: JSON and the right key
      {
        weight: 2,
        arbitrary: fc.record(
          {
            'content-type': fc.constantFrom(
              'application/json',
              'text/plain',
              'text/plain; charset=utf-8',
              'application/x-www-form-urlencoded',
              'x/y',
              '',
            ),
            'content-encoding': fc.constantFrom('gzip', 'identity', 'br', 'GZIP', ' gzip '),
            authorization: fc.oneof(fc.constant(auth), fc.stringMatching(/^[ -~]{0,24}$/)),
          },
          { requiredKeys: [] },
        ),
      },
    );
    await fc.assert(
      fc.asyncProperty(route, body, headers, async (r, { b, gzip }, h) => {
        const hh: Record<string, string> = { ...h };
        if (gzip && hh['content-encoding'] === undefined) hh['content-encoding'] = 'gzip';
        const o = await send(`/v1/${r}`, b, hh);
        count('bytes', o);
        if (o.status === 200) producedEvents();
      }),
      { numRuns: 1000 },
    );
    expectNoPollution();
  });
});
