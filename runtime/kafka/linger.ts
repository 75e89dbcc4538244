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

export function withLinger(inner: Producer, opts: { lingerMs: number; maxMessages?: number }): Producer {
  const maxMessages = opts.maxMessages ?? 10_000;
  const pending = new Map<string, { waiting: Waiting[]; count: number; timer: NodeJS.Timeout }>();

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
        let p = pending.get(topic);
        if (!p) {
          p = { waiting: [], count: 0, timer: setTimeout(() => flush(topic), opts.lingerMs) };
          pending.set(topic, p);
        }
        p.waiting.push({ messages, resolve, reject });
        p.count += messages.length;
        if (p.count >= maxMessages) flush(topic);
      });
    },
    async disconnect() {
      for (const topic of [...pending.keys()]) flush(topic);
      await inner.disconnect();
    },
  };
}
