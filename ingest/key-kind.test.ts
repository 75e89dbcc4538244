// The key kind stamped on each event, and the per-profile trait bounds an event alone may
// not exceed, through app.request() (the producer records what it is given).
import { describe, expect, it } from 'vitest';
import type { OutgoingMessage, Producer } from '../runtime/kafka/index.ts';
import { createLogger } from '../runtime/log.ts';
import { createIngestApp } from './app.ts';

const log = createLogger({ level: 'silent', name: 'test' });

function setup(traitLimits?: { maxTraits: number; maxTraitBytes: number }) {
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
    resolveWriteKey: (k) =>
      k === 'browser-key' ? { workspaceId: 'ws1', kind: 'client' } : k === 'server-key' ? 'ws1' : undefined,
    log,
    traitLimits,
  });
  const post = (key: string, path: string, body: unknown) =>
    app.request(path, {
      method: 'POST',
      body: JSON.stringify(body),
      headers: {
        authorization: `Basic ${Buffer.from(`${key}:`).toString('base64')}`,
        'content-type': 'text/plain',
      },
    });
  const events = () => sent.map((m) => JSON.parse(String(m.value)) as Record<string, unknown>);
  return { post, events };
}

describe('key kinds', () => {
  it('stamps the kind of the key on every event; the body cannot choose it', async () => {
    const { post, events } = setup();
    expect(
      (
        await post('browser-key', '/v1/identify', {
          anonymousId: 'a',
          keyKind: 'server',
          traits: { email: 'x@y.z' },
        })
      ).status,
    ).toBe(200);
    expect(
      (
        await post('browser-key', '/v1/b', {
          batch: [{ type: 'track', event: 'e', anonymousId: 'a', keyKind: 'server' }],
          keyKind: 'server',
        })
      ).status,
    ).toBe(200);
    expect(
      (await post('server-key', '/v1/track', { userId: 'u', event: 'e', keyKind: 'client' })).status,
    ).toBe(200);
    expect(events().map((e) => e.keyKind)).toEqual(['client', 'client', 'server']);
  });
});

describe('trait bounds at ingest', () => {
  it('one event with more traits than a profile may hold is a 400 naming it', async () => {
    const { post, events } = setup({ maxTraits: 3, maxTraitBytes: 1024 * 1024 });
    const traits = { a: 1, b: 2, c: 3, d: 4 };
    const res = await post('server-key', '/v1/identify', { userId: 'u', traits });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe(
      'traits: 4 traits, over the per-profile limit of 3',
    );
    // context.traits count too, on any call; a batch names the event
    const batch = await post('server-key', '/v1/batch', {
      batch: [
        { type: 'track', event: 'ok', userId: 'u' },
        { type: 'track', event: 'e', userId: 'u', context: { traits } },
      ],
    });
    expect(batch.status).toBe(400);
    expect(((await batch.json()) as { error: string }).error).toMatch(/^batch\[1\]\.traits: 4 traits/);
    // a group call's traits are the account's, not the person's
    expect((await post('server-key', '/v1/group', { userId: 'u', groupId: 'g', traits })).status).toBe(200);
    expect(events()).toHaveLength(1);
  });

  it('one event with more trait bytes than a profile may hold is a 400', async () => {
    const { post } = setup({ maxTraits: 1000, maxTraitBytes: 2048 });
    const res = await post('server-key', '/v1/identify', { userId: 'u', traits: { bio: 'é'.repeat(1100) } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe(
      'traits: 2205 bytes of traits, over the per-profile limit of 2048',
    );
    expect(
      (await post('server-key', '/v1/identify', { userId: 'u', traits: { bio: 'é'.repeat(1000) } })).status,
    ).toBe(200);
  });
});

describe('trait operations at ingest', () => {
  it('accepts a server key’s well-formed operations; refuses malformed ones and a client key’s with a 400 naming the field', async () => {
    const { post, events } = setup();
    const ok = await post('server-key', '/v1/identify', {
      userId: 'u1',
      context: { traitOps: { increment: { score: 5 }, add: { lists: ['vip'] }, remove: { lists: 'trial' } } },
    });
    expect(ok.status).toBe(200);
    expect((events()[0]!.context as Record<string, unknown>).traitOps).toEqual({
      increment: { score: 5 },
      add: { lists: ['vip'] },
      remove: { lists: 'trial' },
    });
    const cases: Array<[string, unknown, string, string]> = [
      [
        'server-key',
        { type: 'identify', context: { traitOps: { increment: { score: '5' } } } },
        '/v1/identify',
        'context.traitOps.increment.score: a finite number of at most 1000000000000 in size',
      ],
      [
        'server-key',
        { context: { traitOps: { increment: { score: 1e13 } } } },
        '/v1/identify',
        'context.traitOps.increment.score: a finite number of at most 1000000000000 in size',
      ],
      [
        'server-key',
        { context: { traitOps: { add: { lists: [{ a: 1 }] } } } },
        '/v1/identify',
        'context.traitOps.add.lists: strings of 1 to 256 characters',
      ],
      [
        'server-key',
        { context: { traitOps: { multiply: { x: 2 } } } },
        '/v1/identify',
        'context.traitOps.multiply: not an operation (increment, add, remove)',
      ],
      [
        'server-key',
        { context: { traitOps: [1] } },
        '/v1/identify',
        'context.traitOps: an object {increment, add, remove}',
      ],
      [
        'server-key',
        { event: 'x', context: { traitOps: { increment: { a: 1 } } } },
        '/v1/track',
        'context.traitOps: only an identify carries trait operations',
      ],
      [
        'browser-key',
        { context: { traitOps: { increment: { a: 1 } } } },
        '/v1/identify',
        'context.traitOps: a client (public) write key may not change traits by operations',
      ],
      [
        'server-key',
        { context: { traitOps: { add: { lists: Array.from({ length: 51 }, (_, i) => `l${i}`) } } } },
        '/v1/identify',
        'context.traitOps: 51 operations, over the limit of 50',
      ],
    ];
    for (const [key, body, path, error] of cases) {
      const res = await post(key, path, { userId: 'u1', ...(body as object) });
      expect(res.status, error).toBe(400);
      expect(((await res.json()) as { error: string }).error).toBe(error);
    }
    expect(events()).toHaveLength(1);
  });
});
