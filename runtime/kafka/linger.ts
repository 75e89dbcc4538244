// Batches sends from concurrent callers into one produce request. Callers that arrive
// within `lingerMs` of each other share a request, whatever their topics; while a request
// is in flight (kafkajs's idempotent producer keeps one in flight per broker) everything
// that arrives waits, and goes out together once it is acknowledged and the first waiting
// message has lingered `lingerMs` (as Kafka's linger.ms counts: from a batch's first
// message), so batches grow with load instead of queueing up one small request behind
// another. A full batch goes at once. Each caller's promise settles with the
// acknowledgement of the request its messages went in.
//
// (Before, what waited went out the moment the previous request was acknowledged: under a
// steady moderate load a request was always in flight, so the linger never applied and
// requests followed each other every round trip with two or three events each. Every
// produce request costs the producer a socket write and the broker a request's handling,
// which at 1,000 single-event requests a second was most of what an event cost; issue #26.)
// (librdkafka batches natively with linger.ms; kafkajs sends one request per send() call.)
import type { OutgoingMessage, Producer, TopicMessages } from './types.ts';

interface Waiting {
  topic: string;
  messages: OutgoingMessage[];
  resolve(): void;
  reject(err: unknown): void;
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
  let waiting: Waiting[] = [];
  let count = 0;
  let bytes = 0;
  let timer: NodeJS.Timeout | undefined;
  let inFlight = 0;
  /** When the first of the waiting sends arrived (performance.now()). */
  let firstAt = 0;

  /** The linger of what waits is over: send it now (when allowed); else when it is. */
  const schedule = () => {
    const left = opts.lingerMs - (performance.now() - firstAt);
    if (left <= 0) flush();
    else timer = setTimeout(() => flush(), left);
  };

  const sendAll = (batches: TopicMessages[]): Promise<void> => {
    if (batches.length === 1) return inner.send(batches[0]!.topic, batches[0]!.messages);
    if (inner.sendBatch) return inner.sendBatch(batches);
    return Promise.all(batches.map((b) => inner.send(b.topic, b.messages))).then(() => {});
  };

  /** Sends what is waiting, unless the in-flight limit says wait (then the ack sends it). */
  const flush = (force = false) => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (waiting.length === 0) return;
    if (!force && inFlight >= maxInFlight) return;
    const taken = waiting;
    waiting = [];
    count = 0;
    bytes = 0;
    inFlight++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      clearTimeout(stall);
      inFlight--;
      if (waiting.length > 0 && !timer) schedule();
    };
    const stall = setTimeout(release, stallMs);
    stall.unref();
    // one entry per topic, messages in the order they were sent
    const byTopic = new Map<string, OutgoingMessage[]>();
    for (const w of taken) {
      const list = byTopic.get(w.topic);
      if (list) for (const m of w.messages) list.push(m);
      else byTopic.set(w.topic, [...w.messages]);
    }
    sendAll([...byTopic].map(([topic, messages]) => ({ topic, messages }))).then(
      () => {
        for (const w of taken) w.resolve();
        release();
      },
      (err) => {
        for (const w of taken) w.reject(err);
        release();
      },
    );
  };

  return {
    connect: () => inner.connect(),
    send(topic, messages) {
      return new Promise<void>((resolve, reject) => {
        const size = messages.reduce((n, m) => n + m.value.length + m.key.length, 0);
        // a full batch goes out even past the in-flight limit: kafkajs queues it
        if (waiting.length > 0 && bytes + size > maxBytes) flush(true);
        if (waiting.length === 0) firstAt = performance.now();
        waiting.push({ topic, messages, resolve, reject });
        count += messages.length;
        bytes += size;
        if (count >= maxMessages || bytes >= maxBytes) flush(true);
        else if (!timer && inFlight < maxInFlight) timer = setTimeout(() => flush(), opts.lingerMs);
      });
    },
    async disconnect() {
      flush(true);
      await inner.disconnect();
    },
  };
}
