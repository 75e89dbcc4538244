// Batches sends from concurrent callers into one produce request per topic: callers that
// arrive within `lingerMs` of each other share a request, and each caller's promise
// settles with that request's acknowledgement. (librdkafka does this natively with
// linger.ms; kafkajs sends one request per send() call.)
import type { OutgoingMessage, Producer } from './types.ts';

interface Waiting {
  messages: OutgoingMessage[];
  resolve(): void;
  reject(err: unknown): void;
}

export function withLinger(
  inner: Producer,
  opts: { lingerMs: number; maxMessages?: number; maxBytes?: number },
): Producer {
  const maxMessages = opts.maxMessages ?? 10_000;
  // under the broker's default 1 MB limit, so merged requests never make a batch too large
  const maxBytes = opts.maxBytes ?? 900 * 1024;
  const pending = new Map<
    string,
    { waiting: Waiting[]; count: number; bytes: number; timer: NodeJS.Timeout }
  >();

  const flush = (topic: string) => {
    const p = pending.get(topic);
    if (!p) return;
    pending.delete(topic);
    clearTimeout(p.timer);
    const all = p.waiting.flatMap((w) => w.messages);
    inner.send(topic, all).then(
      () => {
        for (const w of p.waiting) w.resolve();
      },
      (err) => {
        for (const w of p.waiting) w.reject(err);
      },
    );
  };

  return {
    connect: () => inner.connect(),
    send(topic, messages) {
      return new Promise<void>((resolve, reject) => {
        const bytes = messages.reduce((n, m) => n + m.value.length + m.key.length, 0);
        let p = pending.get(topic);
        if (p && p.bytes + bytes > maxBytes) {
          flush(topic);
          p = undefined;
        }
        if (!p) {
          p = { waiting: [], count: 0, bytes: 0, timer: setTimeout(() => flush(topic), opts.lingerMs) };
          pending.set(topic, p);
        }
        p.waiting.push({ messages, resolve, reject });
        p.count += messages.length;
        p.bytes += bytes;
        if (p.count >= maxMessages || p.bytes >= maxBytes) flush(topic);
      });
    },
    async disconnect() {
      for (const topic of [...pending.keys()]) flush(topic);
      await inner.disconnect();
    },
  };
}
