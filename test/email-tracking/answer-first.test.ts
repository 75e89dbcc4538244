// The pixel and the click redirect answer at once, whatever Redis and Kafka do: the open or
// click is recorded in the background (ingest/email-tracking.ts), its failure logged as
// email_track_failed and never an unhandled rejection. No real Redis or Kafka is needed:
// they are stand-ins that never answer, fail, or take the event.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createIngestApp } from '../../ingest/app.ts';
import type { TrackingRedis } from '../../ingest/email-tracking.ts';
import { signTrackingToken, trackingSecret } from '../../schemas/email-tracking-token.ts';
import { eventually } from '../harness.ts';

const secret = trackingSecret('unsub-secret-xxxxxxxxxxxxxxxxxxxxxxxx');
const never = () => new Promise<never>(() => {});
const HUMAN = { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.0' };

function setup(
  redis: TrackingRedis,
  send: (topic: string, msgs: unknown[]) => Promise<unknown>,
  produceTimeoutMs: number,
) {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  const producer = { connect: async () => {}, disconnect: async () => {}, send };
  const app = createIngestApp({
    producer: producer as never,
    eventsTopic: 'events',
    resolveWriteKey: () => undefined,
    log,
    emailTracking: {
      producer: producer as never,
      eventsTopic: 'events',
      redis,
      redisPrefix: 'cdp',
      secret,
      log,
      now: () => new Date(),
      produceTimeoutMs,
    },
  });
  return { app, lines };
}

/** A token's claims: a click's carries its target, an open's none. */
const claims = (s: string, kind: 'o' | 'c') => ({
  w: 'ws1',
  p: 'p1',
  k: 'camp',
  s,
  t: Date.now() - 60_000,
  ...(kind === 'c' ? { u: 'https://shop.example/x' } : {}),
});

describe('email tracking answers first', () => {
  it('the redirect and the GIF answer at once while Redis or Kafka never does; the failure is logged', async () => {
    const cases: Array<[string, TrackingRedis, () => Promise<unknown>]> = [
      ['redis never answers', { hget: never, smembers: never }, async () => {}],
      ['kafka never answers', { hget: async () => null, smembers: async () => ['user:u1'] }, never],
    ];
    for (const [label, redis, send] of cases) {
      const { app, lines } = setup(redis, send, 1000);
      const t0 = Date.now();
      const click = await app.request(
        `/v1/e/c/${signTrackingToken(secret, 'c', claims(`${label}-c`, 'c'))}`,
        {
          headers: HUMAN,
        },
      );
      expect(click.status, label).toBe(302);
      expect(click.headers.get('location'), label).toBe('https://shop.example/x');
      const open = await app.request(
        `/v1/e/o/${signTrackingToken(secret, 'o', claims(`${label}-o`, 'o'))}.gif`,
        {
          headers: HUMAN,
        },
      );
      expect(open.status, label).toBe(200);
      expect(open.headers.get('content-type'), label).toBe('image/gif');
      // well under the produce timeout (1 s) the record waits for in the background
      expect(Date.now() - t0, label).toBeLessThan(500);
      // the record gives up at its timeout and says so (no unhandled rejection: vitest fails on one)
      await eventually(`${label}: email_track_failed twice`, () =>
        lines.filter((l) => l.msg === 'email_track_failed').length === 2 ? true : undefined,
      );
    }
  });

  it('the event is still produced, after the answer, once for repeated loads', async () => {
    const sent: Array<{ key: string; value: string }> = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const { app, lines } = setup(
      { hget: async () => null, smembers: async () => ['user:u1'] },
      async (_t, msgs) => {
        await gate; // Kafka takes its time
        sent.push(...(msgs as typeof sent));
      },
      10_000,
    );
    const path = `/v1/e/o/${signTrackingToken(secret, 'o', claims('send-1', 'o'))}.gif`;
    for (let i = 0; i < 3; i++) expect((await app.request(path, { headers: HUMAN })).status).toBe(200);
    expect(sent).toHaveLength(0); // answered before Kafka took it
    release();
    await eventually('the open produced', () => (sent.length > 0 ? true : undefined));
    await new Promise((r) => setTimeout(r, 50));
    expect(sent).toHaveLength(1);
    expect(JSON.parse(sent[0]!.value)).toMatchObject({ event: 'Email Opened', userId: 'u1' });
    expect(lines.filter((l) => l.msg === 'email_track_failed')).toHaveLength(0);
  });
});
