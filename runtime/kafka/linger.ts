// Batches sends from concurrent callers into one produce request per topic. Callers that
// arrive within `lingerMs` of each other share a request; while a request is in flight
// (kafkajs's idempotent producer keeps one in flight per broker) everything that arrives
// waits and goes out together as soon as it is acknowledged, so batches grow with load
// instead of queueing up one small request behind another. Each caller's promise settles
// with the acknowledgement of the request its messages went in. (librdkafka batches
// natively with linger.ms; kafkajs sends one request per send() call.)
import type { OutgoingMessage, Producer } from './types.ts';

interface Waiting {
  messages: OutgoingMessage[];
  resolve(): void;
  reject(err: unknown): void;
}

interface TopicState {
  waiting: Waiting[];
  count: number;
  bytes: number;
  timer: NodeJS.Timeout | undefined;
  inFlight: number;
}

export function withLinger(
  inner: Producer,
  opts: {
    lingerMs: number;
    maxMessages?: number;
    maxBytes?: number;
    maxInFlight?: number;
    /** A request in flight longer than this stops holding back the next one. */
    stallMs?: number;
  },
): Producer {
  const maxMessages = opts.maxMessages ?? 10_000;
  // under the broker's default 1 MB limit, so merged requests never make a batch too large
  const maxBytes = opts.maxBytes ?? 900 * 1024;
  const maxInFlight = opts.maxInFlight ?? 1;
  // a send that hangs (a broker that vanished mid-request) must not stall every later caller
  const stallMs = opts.stallMs ?? 3000;
  const topics = new Map<string, TopicState>();

  const state = (topic: string): TopicState => {
    let s = topics.get(topic);
    if (!s) {
      s = { waiting: [], count: 0, bytes: 0, timer: undefined, inFlight: 0 };
      topics.set(topic, s);
    }
    return s;
  };

  /** Sends what is waiting, unless the in-flight limit says wait (then the ack sends it). */
  const flush = (topic: string, force = false) => {
    const s = state(topic);
    if (s.timer) clearTimeout(s.timer);
    s.timer = undefined;
    if (s.waiting.length === 0) return;
    if (!force && s.inFlight >= maxInFlight) return;
    const waiting = s.waiting;
    s.waiting = [];
    s.count = 0;
    s.bytes = 0;
    s.inFlight++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      clearTimeout(stall);
      s.inFlight--;
      if (s.waiting.length > 0 && !s.timer) flush(topic);
    };
    const stall = setTimeout(release, stallMs);
    stall.unref();
    const settle = release;
    inner
      .send(
        topic,
        waiting.flatMap((w) => w.messages),
      )
      .then(
        () => {
          for (const w of waiting) w.resolve();
          settle();
        },
        (err) => {
          for (const w of waiting) w.reject(err);
          settle();
        },
      );
  };

  return {
    connect: () => inner.connect(),
    send(topic, messages) {
      return new Promise<void>((resolve, reject) => {
        const s = state(topic);
        const bytes = messages.reduce((n, m) => n + m.value.length + m.key.length, 0);
        // a full batch goes out even past the in-flight limit: kafkajs queues it
        if (s.waiting.length > 0 && s.bytes + bytes > maxBytes) flush(topic, true);
        s.waiting.push({ messages, resolve, reject });
        s.count += messages.length;
        s.bytes += bytes;
        if (s.count >= maxMessages || s.bytes >= maxBytes) flush(topic, true);
        else if (!s.timer && s.inFlight < maxInFlight)
          s.timer = setTimeout(() => flush(topic), opts.lingerMs);
      });
    },
    async disconnect() {
      for (const topic of topics.keys()) flush(topic, true);
      await inner.disconnect();
    },
  };
}
