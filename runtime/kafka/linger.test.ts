import { describe, expect, it } from 'vitest';
import { withLinger } from './linger.ts';
import type { OutgoingMessage, Producer } from './types.ts';

/** A producer whose acknowledgements the test releases by hand (pure batching logic). */
function manualProducer() {
  const requests: Array<{ messages: OutgoingMessage[]; ack(): void; fail(e: Error): void }> = [];
  const producer: Producer = {
    connect: async () => {},
    disconnect: async () => {},
    send: (_topic, messages) =>
      new Promise<void>((ack, fail) => {
        requests.push({ messages, ack, fail });
      }),
  };
  return { producer, requests };
}

const msg = (v: string): OutgoingMessage => ({ key: 'k', value: v });
const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

describe('withLinger', () => {
  it('merges concurrent sends and coalesces everything that arrives while one is in flight', async () => {
    const { producer, requests } = manualProducer();
    const p = withLinger(producer, { lingerMs: 1 });
    const settled: string[] = [];
    const a = p.send('t', [msg('a')]).then(() => settled.push('a'));
    const b = p.send('t', [msg('b')]).then(() => settled.push('b'));
    await tick();
    expect(requests.map((r) => r.messages.map((m) => m.value))).toEqual([['a', 'b']]);
    // while the first request is unacknowledged, c and d wait together
    const c = p.send('t', [msg('c')]).then(() => settled.push('c'));
    const d = p.send('t', [msg('d')]).then(() => settled.push('d'));
    await tick();
    expect(requests).toHaveLength(1);
    requests[0]!.ack();
    await Promise.all([a, b]);
    await tick();
    expect(requests.map((r) => r.messages.map((m) => m.value))).toEqual([
      ['a', 'b'],
      ['c', 'd'],
    ]);
    expect(settled).toEqual(['a', 'b']);
    requests[1]!.ack();
    await Promise.all([c, d]);
    expect(settled).toEqual(['a', 'b', 'c', 'd']);
  });

  it('sends concurrent callers of different topics in one request', async () => {
    const batches: Array<Array<{ topic: string; values: string[] }>> = [];
    const producer: Producer = {
      connect: async () => {},
      disconnect: async () => {},
      send: async () => {
        throw new Error('send() should not be used for several topics');
      },
      sendBatch: async (list) => {
        batches.push(list.map((b) => ({ topic: b.topic, values: b.messages.map((m) => String(m.value)) })));
      },
    };
    const p = withLinger(producer, { lingerMs: 1 });
    await Promise.all([p.send('a', [msg('1')]), p.send('b', [msg('2')]), p.send('a', [msg('3')])]);
    expect(batches).toEqual([
      [
        { topic: 'a', values: ['1', '3'] },
        { topic: 'b', values: ['2'] },
      ],
    ]);
  });

  it('lingers from the first waiting message, also after an acknowledgement', async () => {
    const { producer, requests } = manualProducer();
    const p = withLinger(producer, { lingerMs: 150 });
    const t0 = performance.now();
    const a = p.send('t', [msg('a')]);
    await tick(5);
    expect(requests).toHaveLength(0); // a lingers
    await tick(200);
    expect(requests).toHaveLength(1);
    const b = p.send('t', [msg('b')]); // arrives while a is in flight
    requests[0]!.ack();
    await a;
    await tick(5);
    // acknowledged, but b has not lingered yet: c joins it rather than going in a request of its own
    expect(requests).toHaveLength(1);
    const c = p.send('t', [msg('c')]);
    await Promise.all([
      b,
      (async () => {
        while (requests.length < 2) await tick(5);
        requests[1]!.ack();
      })(),
      c,
    ]);
    expect(requests.map((r) => r.messages.map((m) => m.value))).toEqual([['a'], ['b', 'c']]);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(300); // each request waited its linger
  });

  it('sends what waited at once when its linger passed during the request in flight', async () => {
    const { producer, requests } = manualProducer();
    const p = withLinger(producer, { lingerMs: 20 });
    void p.send('t', [msg('a')]);
    await tick(40);
    const b = p.send('t', [msg('b')]);
    await tick(40); // b's linger is over while a is still unacknowledged
    expect(requests).toHaveLength(1);
    requests[0]!.ack();
    await tick(2);
    expect(requests.map((r) => r.messages.map((m) => m.value))).toEqual([['a'], ['b']]);
    requests[1]!.ack();
    await expect(b).resolves.toBeUndefined();
  });

  it('stops holding later sends back behind a request that hangs', async () => {
    const { producer, requests } = manualProducer();
    const p = withLinger(producer, { lingerMs: 1, stallMs: 30 });
    const a = p.send('t', [msg('a')]);
    await tick();
    const b = p.send('t', [msg('b')]);
    await tick();
    expect(requests).toHaveLength(1); // b waits for a's acknowledgement...
    await tick(60);
    expect(requests.map((r) => r.messages.map((m) => m.value))).toEqual([['a'], ['b']]); // ...not forever
    requests[1]!.ack();
    await expect(b).resolves.toBeUndefined();
    requests[0]!.fail(new Error('late'));
    await expect(a).rejects.toThrow('late');
  });

  it('fails every caller of a failed request, and only those', async () => {
    const { producer, requests } = manualProducer();
    const p = withLinger(producer, { lingerMs: 1 });
    const a = p.send('t', [msg('a')]);
    await tick();
    const b = p.send('t', [msg('b')]);
    requests[0]!.fail(new Error('broker down'));
    await expect(a).rejects.toThrow('broker down');
    await tick();
    requests[1]!.ack();
    await expect(b).resolves.toBeUndefined();
  });

  it('never lets a merged request pass the byte limit', async () => {
    const { producer, requests } = manualProducer();
    const p = withLinger(producer, { lingerMs: 50, maxBytes: 10 });
    void p.send('t', [msg('aaaa')]);
    void p.send('t', [msg('bbbb')]);
    void p.send('t', [msg('cccc')]);
    await tick();
    requests[0]!.ack(); // cccc waits for the in-flight request, then for its linger
    await tick(80);
    for (const r of requests)
      expect(r.messages.reduce((n, m) => n + m.value.length + m.key.length, 0)).toBeLessThanOrEqual(10);
    expect(requests.flatMap((r) => r.messages.map((m) => m.value))).toEqual(['aaaa', 'bbbb', 'cccc']);
  });
});
